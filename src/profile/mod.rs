//! Step 3 of a record's path: offline validation, for gerbang's own Bundles and for any
//! FHIR R4 JSON an integrator brings.
//!
//! Layers, in order (DESIGN.md): (a) the official R4 JSON Schema; (b) SATUSEHAT profile
//! constraints; (c) SATUSEHAT's business rules with their rule numbers; (d) Bundle
//! integrity. Everything is loaded from `profiles/` and compiled once; validating is pure —
//! "now" and the sender's organization come in through [`Context`]. The result is always an
//! [`Outcome`] whose expressions are FHIRPath-style locations.

pub mod bundle;
pub mod custom;
pub mod datetime;
pub mod ndjson;
pub mod path;
pub mod rule_load;
pub mod rule_table;
pub mod rules;
pub mod rules_page;
pub mod schema;
pub mod structure;

use crate::fhir::{self, Issue, IssueCode, Outcome};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("cannot load {what} from {path}: {message}")]
    Load {
        what: &'static str,
        path: String,
        message: String,
    },
}

/// What validation needs to know about the world.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The sender's SATUSEHAT organization id; `None` when validating a file whose sender is
    /// unknown (then any organization id is accepted in identifier systems).
    pub organization_id: Option<&'a str>,
    pub now: DateTime<Utc>,
}

pub struct Validator {
    schema: schema::R4Schema,
    structures: structure::Structures,
    rules: rules::Rules,
}

/// What could not be loaded, from which file, and why.
fn load_error(what: &'static str, path: &Path, message: String) -> LoadError {
    LoadError::Load {
        what,
        path: path.display().to_string(),
        message,
    }
}

impl Validator {
    /// Load and compile everything under `profiles/`.
    pub fn load(dir: &Path) -> Result<Validator, LoadError> {
        let schema_path = dir.join("r4/fhir.schema.json");
        // The JSON Schema compiles on a thread of its own while the StructureDefinitions and
        // rules load: start-up is the longer of the two, not their sum.
        std::thread::scope(|scope| {
            let schema = scope.spawn(|| schema::R4Schema::load(&schema_path));
            let rest = Self::load_profiles_and_rules(dir);
            let schema = schema
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                .map_err(|m| load_error("the FHIR R4 JSON Schema", &schema_path, m))?;
            let (structures, rules) = rest?;
            Ok(Validator {
                schema,
                structures,
                rules,
            })
        })
    }

    /// SATUSEHAT's StructureDefinitions, terminology and rules (everything but the R4 JSON
    /// Schema).
    fn load_profiles_and_rules(
        dir: &Path,
    ) -> Result<(structure::Structures, rules::Rules), LoadError> {
        let read = |what, path: &Path| {
            std::fs::read_to_string(path).map_err(|e| load_error(what, path, e.to_string()))
        };
        let table_path = dir.join("satusehat/validation-rules.csv");
        let exceptions_path = dir.join("satusehat/rule-table-exceptions.yaml");
        let table = rule_table::Table::load(
            &read("SATUSEHAT's rule table", &table_path)?,
            &read("the rule table's exceptions", &exceptions_path)?,
        )
        .map_err(|m| load_error("SATUSEHAT's rule table", &table_path, m))?;
        let structures = structure::Structures::load(dir)
            .map_err(|m| load_error("StructureDefinitions and terminology", dir, m))?;
        let rules_path = dir.join("satusehat/rules.yaml");
        let rules = rules::Rules::load(&read("SATUSEHAT rules", &rules_path)?, &table, &|system| {
            structures.whole_code_system(system)
        })
        .map_err(|m| load_error("SATUSEHAT rules", &rules_path, m))?;
        let structures = structures
            .with_satusehat_systems(rules.allowed_systems())
            .with_table_extensions(table.extensions());
        Ok((structures, rules))
    }

    /// Validate FHIR JSON text as an integrator brings it: one resource, a Bundle, or NDJSON
    /// (one resource per line; the answer a tally by line, see [`ndjson`]). `profile`, if
    /// given, is the canonical URL of the profile the content claims to conform to. Text
    /// arriving in pieces is better read with an [`ndjson::Reader`], which holds one line
    /// at a time.
    pub fn validate_text(&self, text: &str, ctx: &Context, profile: Option<&str>) -> Outcome {
        match serde_json::from_str::<Value>(text) {
            Ok(value) => self.validate_as(&value, ctx, profile),
            Err(whole) => {
                let non_blank = text.lines().filter(|l| !l.trim().is_empty()).take(2);
                if non_blank.count() < 2 {
                    return Outcome::one(Issue::error(
                        IssueCode::Structure,
                        format!("not JSON: {whole}"),
                    ));
                }
                ndjson::Reader::ndjson(self, *ctx, profile, ndjson::Limits::NONE)
                    .validate_all(text.as_bytes())
            }
        }
    }

    /// Validate a resource or Bundle, checking first that it is what `profile` (if any) and
    /// its own `meta.profile` say it is.
    pub fn validate_as(&self, value: &Value, ctx: &Context, profile: Option<&str>) -> Outcome {
        let rt = fhir::resource_type(value).unwrap_or("");
        let mut out = self.profile_claims(value, profile, rt);
        out.extend(self.validate_content(value, ctx));
        one_note_per_unchecked_system(out)
    }

    /// What `profile` (if given) and the resource's own `meta.profile` claim it is: a profile
    /// of another type is an error; an unknown one a note (an error only when asked for).
    /// `at` is where the resource is (its type, or its Bundle entry).
    fn profile_claims(&self, value: &Value, profile: Option<&str>, at: &str) -> Outcome {
        let mut out = Outcome::new();
        let rt = fhir::resource_type(value).unwrap_or("");
        let mut claimed: Vec<String> = value
            .pointer("/meta/profile")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(p) = profile {
            claimed.insert(0, p.to_string());
        }
        for (i, url) in claimed.iter().enumerate() {
            let explicit = profile.is_some() && i == 0;
            match self.structures.profile_type(url) {
                Some(t) if t == rt => {}
                Some(t) => out.push(Issue::error(IssueCode::Invalid, format!("{url} is a profile of {t}, not of {rt}")).at(at)),
                None if explicit => out.push(Issue::error(
                    IssueCode::NotSupported,
                    format!(
                        "unknown profile {url}; gerbang validates against the FHIR R4 base and SATUSEHAT's profiles, e.g. {}",
                        self.structures.profile_urls().iter().take(4).cloned().collect::<Vec<_>>().join(", ")
                    ),
                )),
                None => out.push(
                    Issue::new(
                        fhir::Severity::Information,
                        IssueCode::Informational,
                        format!("profile {url} is unknown to gerbang; validated against the FHIR R4 base and SATUSEHAT's rules"),
                    )
                    .at(format!("{at}.meta.profile")),
                ),
            }
        }
        out
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// SATUSEHAT's rules as loaded: hand-written and derived from the rule table.
    pub fn rules(&self) -> &rules::Rules {
        &self.rules
    }

    /// Validate a resource or a Bundle, including what its `meta.profile` claims.
    pub fn validate(&self, value: &Value, ctx: &Context) -> Outcome {
        self.validate_as(value, ctx, None)
    }

    fn validate_content(&self, value: &Value, ctx: &Context) -> Outcome {
        match fhir::resource_type(value) {
            Some("Bundle") => self.validate_bundle(value, ctx),
            Some(rt) => {
                let rt = rt.to_string();
                let resolve = |_: &str| None;
                self.validate_resource(value, &rt, ctx, &resolve, false)
            }
            None => Outcome::one(Issue::error(
                IssueCode::Structure,
                "not a FHIR resource: a JSON object with `resourceType` is expected",
            )),
        }
    }

    fn validate_bundle(&self, bundle: &Value, ctx: &Context) -> Outcome {
        let mut out = self.schema.check(bundle, "Bundle");
        out.extend(bundle::check(bundle));
        // SATUSEHAT's rules about the Bundle itself (its meta.tag).
        let no_entries = |_: &str| None;
        out.extend(self.rules.check(
            bundle,
            "Bundle",
            &rules::RuleContext {
                organization_id: ctx.organization_id,
                now: ctx.now,
                resolve: &no_entries,
                lookup: false,
            },
        ));
        let index = bundle::index(bundle);
        let resolve = |r: &str| index.get(r).cloned();
        for e in fhir::entries(bundle) {
            if let Some(resource) = e.resource {
                if fhir::resource_type(resource) == Some("Bundle") {
                    continue; // reported as 20011; its content is not validated further
                }
                let at = format!("Bundle.entry[{}].resource", e.index);
                let lookup = bundle["entry"][e.index]
                    .pointer("/request/ifNoneExist")
                    .is_some();
                out.extend(self.profile_claims(resource, None, &at));
                out.extend(self.validate_resource(resource, &at, ctx, &resolve, lookup));
            }
        }
        out
    }

    fn validate_resource(
        &self,
        resource: &Value,
        at: &str,
        ctx: &Context,
        resolve: &dyn Fn(&str) -> Option<String>,
        lookup: bool,
    ) -> Outcome {
        // (a) R4 JSON Schema
        let mut out = self.schema.check(resource, at);
        let schema_ok = !out.has_errors();
        // (b) StructureDefinitions: cardinality, bindings, codes, extensions, targets … —
        // except where the schema already said what is wrong at the same place.
        let schema_errors: Vec<Option<String>> =
            out.issues.iter().map(|i| i.expression.clone()).collect();
        out.extend(Outcome::from(
            self.structures
                .check(resource, at, resolve)
                .issues
                .into_iter()
                .filter(|i| !(i.is_error() && schema_errors.contains(&i.expression)))
                .collect::<Vec<_>>(),
        ));
        // … and the typed model as a second structural opinion; it only warns, because the
        // JSON Schema is the authority on R4 and fhir-sdk models R4B.
        if schema_ok {
            if let Err(e) = fhir::typed::structural_check(resource) {
                out.push(
                    Issue::warning(
                        IssueCode::Structure,
                        format!("the typed FHIR model could not read this resource: {e}"),
                    )
                    .at(at),
                );
            }
        }
        // (c) SATUSEHAT rules
        let rctx = rules::RuleContext {
            organization_id: ctx.organization_id,
            now: ctx.now,
            resolve,
            lookup,
        };
        let ruled = self.rules.check(resource, at, &rctx);
        let reported: Vec<String> = ruled
            .issues
            .iter()
            .filter_map(|i| i.expression.clone())
            .collect();
        // One problem, one error: where a numbered SATUSEHAT rule reports an element, the
        // unnumbered structural error at the same element (e.g. a reference target R4 does
        // not allow either) says nothing more and is dropped.
        let ruled_errors: Vec<&str> = ruled
            .issues
            .iter()
            .filter(|i| i.is_error() && i.rule.is_some())
            .filter_map(|i| i.expression.as_deref())
            .collect();
        out.issues.retain(|i| {
            !(i.is_error()
                && i.rule.is_none()
                && i.expression
                    .as_deref()
                    .is_some_and(|e| ruled_errors.contains(&e)))
        });
        out.extend(ruled);
        out.extend(utc_everywhere(resource, at, &reported));
        out.extend(Outcome::from(
            self.schema
                .date_times
                .check(resource, at)
                .issues
                .into_iter()
                .filter(|i| i.expression.as_ref().is_none_or(|e| !reported.contains(e)))
                .collect::<Vec<_>>(),
        ));
        if fhir::resource_type(resource) == Some("Patient") {
            out.extend(nik_warnings(resource, at));
        }
        out
    }
}

/// SATUSEHAT's documentation asks for every date-time in UTC (`+00:00`); its servers accept
/// other offsets (`+07:00`, `Z`; satusehat-server-behaviour.md), and gerbang delivers such a
/// value as UTC. Rules name the elements they know with a rule number; this catches the rest,
/// as a warning.
fn utc_everywhere(resource: &Value, at: &str, already: &[String]) -> Outcome {
    let mut out = Outcome::new();
    let mut loc = at.to_string();
    offsets_below(resource, &mut loc, already, &mut out);
    out
}

/// The warnings of [`utc_everywhere`] for `v` at `loc`, in document order. `loc` is extended
/// for each child and cut back after: it is read only for strings that look like a time.
fn offsets_below(v: &Value, loc: &mut String, already: &[String], out: &mut Outcome) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if k == "contained" || k == "resourceType" {
                    continue;
                }
                let parent = loc.len();
                loc.push('.');
                loc.push_str(k);
                offsets_below(child, loc, already, out);
                loc.truncate(parent);
            }
        }
        Value::Array(items) => {
            let parent = loc.len();
            for (i, child) in items.iter().enumerate() {
                let _ = write!(loc, "[{i}]");
                offsets_below(child, loc, already, out);
                loc.truncate(parent);
            }
        }
        Value::String(s) if looks_like_datetime(s) && !already.iter().any(|a| a == loc) => {
            if let Some(utc) = crate::time::as_satusehat_utc(s) {
                out.push(
                    Issue::warning(IssueCode::Value, rules::offset_text(loc.clone(), s, &utc))
                        .at(loc.as_str()),
                );
            }
        }
        _ => {}
    }
}

/// Codes gerbang cannot check offline are noted once per code system, not once per code: the
/// answer stays proportionate to what there is to say.
fn one_note_per_unchecked_system(out: Outcome) -> Outcome {
    let system_of = |i: &Issue| -> Option<String> {
        (i.severity == fhir::Severity::Information)
            .then(|| i.text.split_once(structure::NOT_CHECKED_OFFLINE))
            .flatten()
            .map(|(_, rest)| rest.split(';').next().unwrap_or(rest).to_string())
    };
    let mut codes: Vec<(String, Vec<String>)> = Vec::new();
    for i in &out.issues {
        if let Some(system) = system_of(i) {
            let code = i.text.split('`').nth(1).unwrap_or("").to_string();
            match codes.iter_mut().find(|(s, _)| *s == system) {
                Some((_, c)) => c.push(code),
                None => codes.push((system, vec![code])),
            }
        }
    }
    let mut issues = Vec::with_capacity(out.issues.len());
    for mut i in out.issues {
        let Some(system) = system_of(&i) else {
            issues.push(i);
            continue;
        };
        let Some(pos) = codes.iter().position(|(s, _)| *s == system) else {
            continue; // already noted
        };
        let (_, all) = codes.swap_remove(pos);
        let mut seen: Vec<String> = Vec::new();
        for c in all {
            if !seen.contains(&c) {
                seen.push(c);
            }
        }
        if seen.len() > 1 {
            let n = seen.len();
            let shown: Vec<String> = seen.iter().take(5).map(|c| format!("`{c}`")).collect();
            i.text = format!(
                "{n} codes of {system} not checked offline ({}{}): gerbang holds no list of its codes; SATUSEHAT looks them up",
                shown.join(", "),
                if n > 5 { ", …" } else { "" }
            );
        }
        issues.push(i);
    }
    Outcome::from(issues)
}

fn looks_like_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 16
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[..4].iter().all(u8::is_ascii_digit)
}

fn nik_warnings(patient: &Value, at: &str) -> Outcome {
    let mut out = Outcome::new();
    let Some(ids) = patient.get("identifier").and_then(Value::as_array) else {
        return out;
    };
    for (i, id) in ids.iter().enumerate() {
        let system = id.get("system").and_then(Value::as_str);
        if system != Some(fhir::system::NIK) && system != Some(fhir::system::NIK_IBU) {
            continue;
        }
        let Some(nik) = id.get("value").and_then(Value::as_str) else {
            continue;
        };
        let loc = format!("{at}.identifier[{i}].value");
        if let Some(why) = fhir::nik::impossible(nik) {
            out.push(
                Issue::error(
                    IssueCode::Value,
                    format!("not a NIK: {why}; send the NIK from the KTP or KK (a newborn without one: the mother's NIK as nik-ibu)"),
                )
                .at(loc),
            );
            continue;
        }
        match fhir::nik::parse(nik) {
            Err(why) => out.push(
                Issue::warning(
                    IssueCode::Value,
                    format!("unusual NIK: {why}; SATUSEHAT may not find this patient"),
                )
                .at(loc),
            ),
            Ok(_) if system == Some(fhir::system::NIK) => {
                let gender = patient.get("gender").and_then(Value::as_str);
                let birth = patient.get("birthDate").and_then(Value::as_str);
                for d in fhir::nik::disagreements(nik, gender, birth) {
                    out.push(
                        Issue::warning(
                            IssueCode::Value,
                            format!(
                                "{d}; check the record (SATUSEHAT test identities also do this)"
                            ),
                        )
                        .at(loc.clone()),
                    );
                }
            }
            Ok(_) => {}
        }
    }
    out
}
