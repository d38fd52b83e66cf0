//! Layer (b): StructureDefinition constraints over the base resources, checked against the
//! FHIR R4 definitions (`profiles/r4/`, extracted from the official package) and SATUSEHAT's
//! profiles and extensions (`profiles/satusehat/`):
//!
//! - cardinality of every element, primitives included (the JSON Schema cannot require a
//!   primitive, because its value may live in `_element` instead);
//! - fixed and pattern values;
//! - bindings: a code outside a `required` value set is an error, outside an `extensible` or
//!   `preferred` one a warning; a code system gerbang cannot enumerate offline (SNOMED CT,
//!   LOINC …) is never guessed at;
//! - codes of known code systems: an HL7 code system's code that does not exist is an error,
//!   a Kemkes one a warning (the Kemkes lists gerbang carries come from a draft IG);
//! - extensions: known URL, allowed value type, known sub-extensions;
//! - reference targets: what a Reference may point to.
//!
//! Everything is loaded and indexed once; validating walks the resource once.

use crate::fhir::{Issue, IssueCode, Outcome};
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
struct TypeRef {
    code: String,
    #[serde(default)]
    targets: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct BindingDef {
    strength: String,
    #[serde(rename = "valueSet")]
    value_set: String,
}

#[derive(Debug, Clone, Deserialize)]
struct ElementDef {
    path: String,
    min: u32,
    max: String,
    #[serde(default, rename = "sliceName")]
    slice_name: Option<String>,
    #[serde(default, rename = "contentReference")]
    content_reference: Option<String>,
    #[serde(default)]
    types: Vec<TypeRef>,
    #[serde(default)]
    binding: Option<BindingDef>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct TypeFile {
    #[allow(dead_code)]
    kind: String,
    elements: Vec<ElementDef>,
}

/// One child element of a node, ready for checking.
#[derive(Debug)]
struct Child {
    /// JSON key, or the prefix of a choice (`value` of `value[x]`).
    name: String,
    choice: bool,
    /// The definition path of this element (for its own children).
    path: String,
    min: u32,
    max: Option<u32>,
    types: Vec<TypeRef>,
    binding: Option<BindingDef>,
    fixed: Option<Value>,
    pattern: Option<Value>,
    /// Children are defined at this other path (`#Questionnaire.item`).
    content_ref: Option<String>,
    /// For a choice, the JSON key of each type, in the order of `types` (`valueQuantity`).
    choice_keys: Vec<String>,
    /// `_name`: where a primitive's extensions sit when it has no value.
    extension_key: String,
}

/// The children of every element of one resource or datatype, by parent path.
#[derive(Debug, Default)]
struct TypeDef {
    children: HashMap<String, Vec<Child>>,
}

/// A value set as gerbang knows it: per system, the codes, or `None` = any code (a system
/// that cannot be enumerated offline).
type Expansion = HashMap<String, Option<HashSet<String>>>;

#[derive(Debug, Default, Clone)]
struct ExtensionDef {
    /// Allowed `value[x]` types; empty when the extension has sub-extensions instead.
    value_types: Vec<String>,
    /// Sub-extensions by their URL.
    sub: HashMap<String, ExtensionDef>,
}

pub struct Structures {
    types: HashMap<String, TypeDef>,
    value_sets: HashMap<String, Expansion>,
    /// Codes of complete HL7 code systems (unknown code = error).
    hl7_codes: HashMap<String, HashSet<String>>,
    /// Codes of Kemkes code systems from the draft IG (unknown code = warning).
    kemkes_codes: HashMap<String, HashSet<String>>,
    extensions: HashMap<String, ExtensionDef>,
    /// Code systems SATUSEHAT's rules allow for an element (`Observation.interpretation` →
    /// clinical-term …): SATUSEHAT extends the base binding there, so such a coding satisfies
    /// an extensible or preferred binding.
    satusehat_systems: HashMap<String, Vec<String>>,
    /// Every code system gerbang knows of (enumerated or not); a coding in any other system
    /// is reported as unknown (information), never as an error.
    known_systems: HashSet<String>,
    /// SATUSEHAT and base profiles by canonical URL → the resource type they constrain.
    profiles: HashMap<String, String>,
}

/// Code systems gerbang knows but cannot (or need not) enumerate offline.
const EXTERNAL_SYSTEMS: &[&str] = &[
    "http://loinc.org",
    "http://snomed.info/sct",
    "http://unitsofmeasure.org",
    "http://hl7.org/fhir/sid/icd-10",
    "http://hl7.org/fhir/sid/icd-9-cm",
    "http://hl7.org/fhir/sid/cvx",
    "http://sys-ids.kemkes.go.id/kfa",
    "http://www.whocc.no/atc",
    "urn:ietf:bcp:47",
    "urn:iso:std:iso:3166",
    "urn:iso:std:iso:4217",
    "http://terminology.kemkes.go.id/CodeSystem/anc-custom-codes",
    "http://terminology.kemkes.go.id/CodeSystem/examination",
    "http://terminology.kemkes.go.id/CodeSystem/kptl",
    "http://terminology.kemkes.go.id/CodeSystem/episodeofcare-type",
    "http://terminology.kemkes.go.id/CodeSystem/tb-case-definition",
    "http://terminology.kemkes.go.id/CodeSystem/encounter-discharge-disposition",
];

/// What a note on a code gerbang cannot check offline says, between the code and its system.
pub const NOT_CHECKED_OFFLINE: &str =
    " not checked offline: gerbang holds no list of the codes of ";

/// Resolves a `urn:uuid:` reference to the resourceType of the Bundle entry it names.
pub type Resolver<'a> = &'a dyn Fn(&str) -> Option<String>;

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

impl Structures {
    pub fn load(profiles: &Path) -> Result<Structures, String> {
        let r4 = profiles.join("r4");
        let raw: HashMap<String, TypeFile> = read_json(&r4.join("structure-definitions.json"))?;
        let types: HashMap<String, TypeDef> = raw
            .into_iter()
            .map(|(name, file)| (name, index_type(file.elements)))
            .collect();

        let sets: HashMap<String, HashMap<String, Value>> = read_json(&r4.join("value-sets.json"))?;
        let value_sets: HashMap<String, Expansion> = sets
            .into_iter()
            .map(|(url, systems)| {
                let exp = systems
                    .into_iter()
                    .map(|(system, codes)| {
                        let codes = codes.as_array().map(|a| {
                            a.iter()
                                .filter_map(|c| c.as_str().map(str::to_string))
                                .collect()
                        });
                        (system, codes)
                    })
                    .collect();
                (url, exp)
            })
            .collect();

        let lists: HashMap<String, Vec<String>> = read_json(&r4.join("code-systems.json"))?;
        let hl7_codes: HashMap<String, HashSet<String>> = lists
            .into_iter()
            .map(|(u, c)| (u, c.into_iter().collect()))
            .collect();

        let mut extensions = HashMap::new();
        let hl7_ext: HashMap<String, Value> = read_json(&r4.join("extensions.json"))?;
        for (url, def) in hl7_ext {
            let value_types = def["valueTypes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            extensions.insert(
                url,
                ExtensionDef {
                    value_types,
                    sub: HashMap::new(),
                },
            );
        }

        let mut kemkes_codes = HashMap::new();
        let sat = profiles.join("satusehat");
        for entry in std::fs::read_dir(sat.join("structure-definitions"))
            .map_err(|e| format!("{}: {e}", sat.display()))?
        {
            let path = entry.map_err(|e| e.to_string())?.path();
            let sd: Value = read_json(&path)?;
            if sd["resourceType"] == "StructureDefinition" && sd["type"] == "Extension" {
                if let Some(url) = sd["url"].as_str() {
                    let def = satusehat_extension(&sd);
                    // Payloads write administrativeCode in lower camel case while the
                    // profile's URL has a capital (satusehat.md §2.3): accept both.
                    let (head, tail) = url.rsplit_once('/').unwrap_or(("", url));
                    let mut lower = tail.to_string();
                    if let Some(first) = lower.get(0..1) {
                        lower.replace_range(0..1, &first.to_lowercase());
                    }
                    extensions.insert(format!("{head}/{lower}"), def.clone());
                    extensions.insert(url.to_string(), def);
                }
            }
        }
        for entry in std::fs::read_dir(sat.join("terminology"))
            .map_err(|e| format!("{}: {e}", sat.display()))?
        {
            let path = entry.map_err(|e| e.to_string())?.path();
            let cs: Value = read_json(&path)?;
            if cs["resourceType"] == "CodeSystem" {
                let mut codes = HashSet::new();
                collect_codes(&cs["concept"], &mut codes);
                if let Some(url) = cs["url"].as_str() {
                    kemkes_codes.insert(url.to_string(), codes);
                }
            }
        }
        let mut profiles_by_url = HashMap::new();
        for entry in std::fs::read_dir(sat.join("structure-definitions"))
            .map_err(|e| format!("{}: {e}", sat.display()))?
        {
            let sd: Value = read_json(&entry.map_err(|e| e.to_string())?.path())?;
            if sd["resourceType"] == "StructureDefinition" && sd["kind"] == "resource" {
                if let (Some(url), Some(t)) = (sd["url"].as_str(), sd["type"].as_str()) {
                    profiles_by_url.insert(url.to_string(), t.to_string());
                }
            }
        }
        for name in types
            .keys()
            .filter(|n| n.chars().next().is_some_and(char::is_uppercase))
        {
            profiles_by_url.insert(
                format!("http://hl7.org/fhir/StructureDefinition/{name}"),
                name.clone(),
            );
        }
        let mut known_systems: HashSet<String> =
            EXTERNAL_SYSTEMS.iter().map(|s| s.to_string()).collect();
        known_systems.extend(hl7_codes.keys().cloned());
        known_systems.extend(kemkes_codes.keys().cloned());
        for exp in value_sets.values() {
            known_systems.extend(exp.keys().cloned());
        }
        Ok(Structures {
            types,
            value_sets,
            hl7_codes,
            kemkes_codes,
            extensions,
            satusehat_systems: HashMap::new(),
            known_systems,
            profiles: profiles_by_url,
        })
    }

    /// The resource type a profile (SATUSEHAT's, or a base FHIR resource) constrains.
    pub fn profile_type(&self, url: &str) -> Option<&str> {
        self.profiles
            .get(url.split('|').next().unwrap_or(url))
            .map(String::as_str)
    }

    /// The SATUSEHAT profile URLs gerbang can validate against.
    pub fn profile_urls(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .profiles
            .keys()
            .map(String::as_str)
            .filter(|u| u.contains("kemkes"))
            .collect();
        v.sort();
        v
    }

    /// Tell the binding checks which code systems SATUSEHAT allows per element path.
    /// Extensions SATUSEHAT's rule table names that no loaded definition describes: known,
    /// so not reported as unknown; a value type the table gives is checked, sub-extensions
    /// are not (the table does not list them all).
    pub fn with_table_extensions(mut self, table: HashMap<String, Vec<String>>) -> Self {
        for (url, value_types) in table {
            self.extensions.entry(url).or_insert(ExtensionDef {
                value_types,
                sub: HashMap::new(),
            });
        }
        self
    }

    /// The whole code list of a complete HL7 code system, for rules that need one.
    pub fn whole_code_system(&self, system: &str) -> Option<HashSet<String>> {
        self.hl7_codes.get(system).cloned()
    }

    pub fn with_satusehat_systems(mut self, systems: HashMap<String, Vec<String>>) -> Self {
        self.satusehat_systems = systems;
        self
    }

    pub fn knows(&self, resource_type: &str) -> bool {
        self.types.contains_key(resource_type)
    }

    /// Check one resource (not its contained resources: the caller validates those).
    pub fn check(&self, resource: &Value, at: &str, resolve: Resolver) -> Outcome {
        let mut out = Outcome::new();
        let Some(rt) = resource.get("resourceType").and_then(Value::as_str) else {
            return out;
        };
        let Some(obj) = resource.as_object() else {
            return out;
        };
        if self.types.contains_key(rt) {
            let mut loc = String::with_capacity(at.len() + 64);
            loc.push_str(at);
            self.check_node(rt, rt, obj, &mut loc, resolve, &mut out);
        }
        out
    }

    /// Walk one object against the children its definition declares. `loc` is the
    /// location of `obj`, a buffer extended for each child and cut back after it: the
    /// walk visits every value of every resource, and a location is only read when an
    /// issue is found, so none is built for the values that pass.
    fn check_node(
        &self,
        type_name: &str,
        def_path: &str,
        obj: &Map<String, Value>,
        loc: &mut String,
        resolve: Resolver,
        out: &mut Outcome,
    ) {
        let Some(def) = self.types.get(type_name) else {
            return;
        };
        let Some(children) = def.children.get(def_path) else {
            return;
        };
        for child in children {
            // The values of this element: (JSON key, index in its array, value, type).
            let mut values: Vec<(&str, Option<usize>, &Value, &str)> = Vec::new();
            let mut count = 0usize;
            if child.choice {
                for (key, v) in obj {
                    if !key.starts_with(child.name.as_str()) {
                        continue;
                    }
                    if let Some(i) = child.choice_keys.iter().position(|k| k == key) {
                        count += 1;
                        values.push((key, None, v, child.types[i].code.as_str()));
                    }
                }
                if count == 0 {
                    count += child
                        .choice_keys
                        .iter()
                        .filter(|k| obj.contains_key(&format!("_{k}")))
                        .count();
                }
            } else {
                let ty = child
                    .types
                    .first()
                    .map(|t| t.code.as_str())
                    .unwrap_or("BackboneElement");
                match obj.get(&child.name) {
                    Some(Value::Array(items)) => {
                        count = items.iter().filter(|v| !v.is_null()).count();
                        for (i, v) in items.iter().enumerate() {
                            values.push((child.name.as_str(), Some(i), v, ty));
                        }
                    }
                    Some(Value::Null) | None => {}
                    Some(v) => {
                        count = 1;
                        values.push((child.name.as_str(), None, v, ty));
                    }
                }
                if count == 0 {
                    // A primitive may carry only extensions (`_status`).
                    if let Some(ext) = obj.get(&child.extension_key) {
                        count = ext.as_array().map_or(1, Vec::len);
                    }
                }
            }
            let too_few = (count as u32) < child.min;
            let too_many = child.max.is_some_and(|max| count as u32 > max);
            if too_few || too_many {
                let name = if child.choice {
                    format!("{}[x]", child.name)
                } else {
                    child.name.clone()
                };
                if too_few {
                    out.push(
                        Issue::error(
                            IssueCode::Required,
                            format!(
                                "{} is required ({}..{} in the FHIR R4 definition of {type_name})",
                                name,
                                child.min,
                                child.max.map_or("*".into(), |m| m.to_string())
                            ),
                        )
                        .at(format!("{loc}.{}", child.name)),
                    );
                }
                if let Some(max) = child.max.filter(|_| too_many) {
                    out.push(
                        Issue::error(
                            IssueCode::Structure,
                            format!("{name} may occur at most {max} time(s); found {count}"),
                        )
                        .at(format!("{loc}.{}", child.name)),
                    );
                }
            }
            for (key, index, value, ty) in values {
                let parent = loc.len();
                loc.push('.');
                loc.push_str(key);
                if let Some(i) = index {
                    let _ = write!(loc, "[{i}]");
                }
                self.check_value(type_name, child, value, ty, loc, resolve, out);
                loc.truncate(parent);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check_value(
        &self,
        type_name: &str,
        child: &Child,
        value: &Value,
        ty: &str,
        loc: &mut String,
        resolve: Resolver,
        out: &mut Outcome,
    ) {
        if let Some(fixed) = &child.fixed {
            if value != fixed {
                out.push(
                    Issue::error(IssueCode::Value, format!("must be exactly {fixed}"))
                        .at(loc.as_str()),
                );
            }
        }
        if let Some(pattern) = &child.pattern {
            if !matches_pattern(value, pattern) {
                out.push(
                    Issue::error(
                        IssueCode::Value,
                        format!("must match the pattern {pattern}"),
                    )
                    .at(loc.as_str()),
                );
            }
        }
        if let Some(b) = &child.binding {
            self.check_binding(b, &child.path, value, ty, loc, out);
        }
        match ty {
            "Coding" => self.check_coding_code(value, loc, out),
            // A CodeableConcept's codings are checked as Codings when the walk reaches them.
            "Reference" => check_reference_target(child, value, loc, resolve, out),
            "Extension" => {
                self.check_extension(value, loc, out);
                return;
            }
            _ => {}
        }
        let Some(obj) = value.as_object() else { return };
        if let Some(reference) = &child.content_ref {
            // `#Questionnaire.item`: the same structure as that element.
            let path = reference.trim_start_matches('#');
            self.check_node(type_name, path, obj, loc, resolve, out);
        } else if self
            .types
            .get(type_name)
            .is_some_and(|d| d.children.contains_key(&child.path))
        {
            // A backbone element: its children are defined inline, below its own path.
            self.check_node(type_name, &child.path, obj, loc, resolve, out);
        } else if ty != "Resource" && self.types.contains_key(ty) {
            self.check_node(ty, ty, obj, loc, resolve, out);
        }
    }

    fn check_binding(
        &self,
        b: &BindingDef,
        path: &str,
        value: &Value,
        ty: &str,
        loc: &str,
        out: &mut Outcome,
    ) {
        let Some(exp) = self.value_sets.get(&b.value_set) else {
            return;
        };
        if ty == "code" {
            // Most required `code` bindings are enums in the R4 JSON Schema as well, but not
            // all (Immunization.status): check against the value set (the schema's error at the
            // same place, if any, wins — see `Validator::validate_resource`).
            let Some(code) = value.as_str() else { return };
            if b.strength != "required" || exp.values().any(Option::is_none) {
                return;
            }
            if !exp.values().flatten().any(|codes| codes.contains(code)) {
                let mut allowed: Vec<&String> = exp.values().flatten().flatten().collect();
                allowed.sort();
                out.push(
                    Issue::error(
                        IssueCode::CodeInvalid,
                        format!(
                            "`{code}` is not allowed here; use one of: {}",
                            allowed
                                .iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                    .at(loc),
                );
            }
            return;
        }
        let codings: Vec<&Value> = match ty {
            "Coding" => vec![value],
            "CodeableConcept" => value
                .get("coding")
                .and_then(Value::as_array)
                .map(|a| a.iter().collect())
                .unwrap_or_default(),
            "Quantity" => vec![value],
            _ => return,
        };
        if codings.is_empty() {
            if b.strength == "required" && ty == "CodeableConcept" {
                out.push(
                    Issue::error(
                        IssueCode::CodeInvalid,
                        format!("a coding from {} is required here", b.value_set),
                    )
                    .at(loc),
                );
            }
            return;
        }
        let in_set = |c: &Value| {
            let (Some(system), Some(code)) = (
                c.get("system").and_then(Value::as_str),
                c.get("code").and_then(Value::as_str),
            ) else {
                return Some(false);
            };
            match exp.get(system) {
                None => Some(false),
                Some(None) => None, // any code of a system gerbang cannot enumerate
                Some(Some(codes)) => Some(codes.contains(code)),
            }
        };
        let verdicts: Vec<Option<bool>> = codings.iter().map(|c| in_set(c)).collect();
        if verdicts.iter().any(|v| *v != Some(false)) {
            return;
        }
        if b.strength != "required" {
            let allowed = self.satusehat_systems.get(path.trim_end_matches("[x]"));
            let by_satusehat = |c: &&Value| {
                c.get("system")
                    .and_then(Value::as_str)
                    .is_some_and(|s| allowed.is_some_and(|a| a.iter().any(|x| x == s)))
            };
            if codings.iter().any(by_satusehat) {
                return;
            }
        }
        let found: Vec<String> = codings
            .iter()
            .map(|c| {
                format!(
                    "{}|{}",
                    c.get("system").and_then(Value::as_str).unwrap_or("?"),
                    c.get("code").and_then(Value::as_str).unwrap_or("?")
                )
            })
            .collect();
        let text = format!(
            "{} is not in the value set {} ({} binding)",
            found.join(", "),
            b.value_set,
            b.strength
        );
        out.push(match b.strength.as_str() {
            "required" => Issue::error(IssueCode::CodeInvalid, text).at(loc),
            _ => Issue::warning(IssueCode::CodeInvalid, text).at(loc),
        });
    }

    /// A coding in a code system gerbang knows completely must use one of its codes.
    fn check_coding_code(&self, coding: &Value, loc: &str, out: &mut Outcome) {
        let (Some(system), Some(code)) = (
            coding.get("system").and_then(Value::as_str),
            coding.get("code").and_then(Value::as_str),
        ) else {
            return;
        };
        if let Some(codes) = self.hl7_codes.get(system) {
            if !codes.contains(code) {
                out.push(
                    Issue::error(
                        IssueCode::CodeInvalid,
                        format!("`{code}` is not a code of {system}"),
                    )
                    .at(format!("{loc}.code")),
                );
            }
        } else if let Some(codes) = self.kemkes_codes.get(system) {
            if !codes.contains(code) {
                out.push(
                    Issue::warning(IssueCode::CodeInvalid, format!("`{code}` is not in {system} as gerbang knows it (Kemkes draft IG); check the code"))
                        .at(format!("{loc}.code")),
                );
            }
        } else if EXTERNAL_SYSTEMS.contains(&system) {
            // Known, but its codes are not held offline (SNOMED CT, LOINC, ICD-10, KFA …):
            // SATUSEHAT looks them up; say so rather than stay silent.
            out.push(
                Issue::new(
                    crate::fhir::Severity::Information,
                    IssueCode::Informational,
                    format!("`{code}`{NOT_CHECKED_OFFLINE}{system}; SATUSEHAT looks it up"),
                )
                .at(format!("{loc}.code")),
            );
        } else if !self.known_systems.contains(system)
            && !system.starts_with("http://sys-ids.kemkes.go.id/")
        {
            out.push(
                Issue::new(
                    crate::fhir::Severity::Information,
                    IssueCode::Informational,
                    format!(
                        "code system {system} is unknown to gerbang; its codes were not checked"
                    ),
                )
                .at(format!("{loc}.system")),
            );
        }
    }

    fn check_extension(&self, ext: &Value, loc: &str, out: &mut Outcome) {
        let Some(url) = ext.get("url").and_then(Value::as_str) else {
            out.push(
                Issue::error(IssueCode::Required, "an extension needs its url")
                    .at(format!("{loc}.url")),
            );
            return;
        };
        match self.extensions.get(url) {
            None => out.push(
                Issue::warning(IssueCode::Informational, format!("unknown extension {url}: not a SATUSEHAT or HL7 extension gerbang knows; SATUSEHAT may ignore or refuse it"))
                    .at(format!("{loc}.url")),
            ),
            Some(def) => check_extension_against(def, ext, loc, out),
        }
    }
}

fn check_extension_against(def: &ExtensionDef, ext: &Value, loc: &str, out: &mut Outcome) {
    let value_key = ext
        .as_object()
        .and_then(|o| o.keys().find(|k| k.starts_with("value")).cloned());
    match &value_key {
        Some(key) => {
            let ty = &key["value".len()..];
            if def.value_types.is_empty() {
                out.push(
                    Issue::error(
                        IssueCode::Structure,
                        "this extension has sub-extensions, not a value",
                    )
                    .at(format!("{loc}.{key}")),
                );
            } else if !def.value_types.iter().any(|t| type_suffix(t) == ty) {
                out.push(
                    Issue::error(
                        IssueCode::Structure,
                        format!(
                            "value{ty} is not allowed here; use value{}",
                            def.value_types
                                .iter()
                                .map(|t| type_suffix(t))
                                .collect::<Vec<_>>()
                                .join(" or value")
                        ),
                    )
                    .at(format!("{loc}.{key}")),
                );
            }
        }
        None if !def.value_types.is_empty() && ext.get("extension").is_none() => {
            out.push(Issue::error(IssueCode::Required, "this extension needs a value").at(loc));
        }
        None => {}
    }
    if let Some(subs) = ext.get("extension").and_then(Value::as_array) {
        if def.sub.is_empty() {
            return;
        }
        for (i, sub) in subs.iter().enumerate() {
            let sub_loc = format!("{loc}.extension[{i}]");
            let Some(url) = sub.get("url").and_then(Value::as_str) else {
                continue;
            };
            match def.sub.get(url) {
                Some(sd) => check_extension_against(sd, sub, &sub_loc, out),
                None => out.push(
                    Issue::warning(
                        IssueCode::Structure,
                        format!(
                            "unknown sub-extension `{url}`; this extension defines {}",
                            {
                                let mut k: Vec<&str> = def.sub.keys().map(String::as_str).collect();
                                k.sort();
                                k.join(", ")
                            }
                        ),
                    )
                    .at(format!("{sub_loc}.url")),
                ),
            }
        }
    }
}

fn check_reference_target(
    child: &Child,
    value: &Value,
    loc: &str,
    resolve: Resolver,
    out: &mut Outcome,
) {
    let targets: Vec<&str> = child
        .types
        .iter()
        .flat_map(|t| t.targets.iter().map(String::as_str))
        .collect();
    if targets.is_empty() || targets.contains(&"Resource") {
        return;
    }
    let Some(reference) = value.get("reference").and_then(Value::as_str) else {
        return;
    };
    let target = if reference.starts_with("urn:uuid:") {
        resolve(reference)
    } else if reference.starts_with('#') {
        None
    } else {
        reference.split('/').rev().nth(1).map(str::to_string)
    };
    if let Some(t) = target {
        if !targets.contains(&t.as_str()) {
            out.push(
                Issue::error(
                    IssueCode::Invalid,
                    format!(
                        "a reference to {t} is not allowed here; FHIR R4 allows {}",
                        targets.join(", ")
                    ),
                )
                .at(format!("{loc}.reference")),
            );
        }
    }
}

/// `Quantity` → `Quantity`, `dateTime` → `DateTime`: how a type appears in a choice key.
fn type_suffix(code: &str) -> String {
    let mut s = code.to_string();
    if let Some(first) = s.get(0..1) {
        s.replace_range(0..1, &first.to_uppercase());
    }
    s
}

/// FHIR pattern semantics: every element of the pattern is present with the same value.
fn matches_pattern(value: &Value, pattern: &Value) -> bool {
    match (value, pattern) {
        (Value::Object(v), Value::Object(p)) => p
            .iter()
            .all(|(k, pv)| v.get(k).is_some_and(|vv| matches_pattern(vv, pv))),
        (Value::Array(v), Value::Array(p)) => p
            .iter()
            .all(|pv| v.iter().any(|vv| matches_pattern(vv, pv))),
        (v, p) => v == p,
    }
}

fn collect_codes(concepts: &Value, out: &mut HashSet<String>) {
    for c in concepts.as_array().map(Vec::as_slice).unwrap_or_default() {
        if let Some(code) = c.get("code").and_then(Value::as_str) {
            out.insert(code.to_string());
        }
        collect_codes(&c["concept"], out);
    }
}

/// Group a type's elements by parent path.
fn index_type(elements: Vec<ElementDef>) -> TypeDef {
    let mut def = TypeDef::default();
    for e in elements.into_iter().skip(1) {
        if e.slice_name.is_some() {
            continue;
        }
        let Some((parent, name)) = e.path.rsplit_once('.') else {
            continue;
        };
        let (name, choice) = match name.strip_suffix("[x]") {
            Some(n) => (n.to_string(), true),
            None => (name.to_string(), false),
        };
        // `id` and `extension` of elements are everywhere and checked by the schema and the
        // extension walk; skip the noise.
        let max = if e.max == "*" {
            None
        } else {
            e.max.parse().ok()
        };
        let mut fixed = None;
        let mut pattern = None;
        for (k, v) in &e.rest {
            if k.starts_with("fixed") {
                fixed = Some(v.clone());
            } else if k.starts_with("pattern") {
                pattern = Some(v.clone());
            }
        }
        let choice_keys = if choice {
            e.types
                .iter()
                .map(|t| format!("{name}{}", type_suffix(&t.code)))
                .collect()
        } else {
            Vec::new()
        };
        let extension_key = format!("_{name}");
        def.children
            .entry(parent.to_string())
            .or_default()
            .push(Child {
                choice_keys,
                extension_key,
                name,
                choice,
                path: e.path.clone(),
                min: e.min,
                max,
                types: e.types,
                binding: e.binding,
                fixed,
                pattern,
                content_ref: e.content_reference,
            });
    }
    def
}

/// An extension definition from a SATUSEHAT StructureDefinition's differential.
fn satusehat_extension(sd: &Value) -> ExtensionDef {
    let elements = sd
        .pointer("/differential/element")
        .or_else(|| sd.pointer("/snapshot/element"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    build_extension(&elements, "Extension")
}

fn build_extension(elements: &[Value], prefix: &str) -> ExtensionDef {
    let mut def = ExtensionDef::default();
    let value_id = format!("{prefix}.value[x]");
    if let Some(v) = elements.iter().find(|e| e["id"] == value_id.as_str()) {
        if v["max"] != "0" {
            def.value_types = v["type"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t["code"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
        }
    }
    let slice_prefix = format!("{prefix}.extension:");
    for e in elements {
        let Some(id) = e["id"].as_str() else { continue };
        let Some(slice) = id.strip_prefix(slice_prefix.as_str()) else {
            continue;
        };
        if slice.contains('.') || slice.contains(':') {
            continue;
        }
        let slice_id = format!("{prefix}.extension:{slice}");
        let url = elements
            .iter()
            .find(|x| x["id"] == format!("{slice_id}.url").as_str())
            .and_then(|x| x["fixedUri"].as_str())
            .unwrap_or(slice)
            .to_string();
        let mut sub = build_extension(elements, &slice_id);
        if sub.value_types.is_empty() && sub.sub.is_empty() {
            // A slice without its own value[x] element: any value.
            sub.value_types = vec![
                "string".into(),
                "code".into(),
                "CodeableConcept".into(),
                "Coding".into(),
                "dateTime".into(),
                "Reference".into(),
            ];
        }
        def.sub.insert(url, sub);
    }
    def
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn structures() -> Structures {
        Structures::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles")).unwrap()
    }

    fn check(r: Value) -> Outcome {
        let resolve = |_: &str| None;
        structures().check(&r, r["resourceType"].as_str().unwrap(), &resolve)
    }

    #[test]
    fn primitive_cardinality() {
        let o = check(json!({"resourceType": "Observation", "code": {"text": "x"}}));
        assert!(
            o.issues
                .iter()
                .any(|i| i.expression.as_deref() == Some("Observation.status")
                    && i.code == IssueCode::Required),
            "{o:?}"
        );
        // A primitive present only through its extension counts.
        let o = check(
            json!({"resourceType": "Observation", "_status": {"extension": []}, "code": {"text": "x"}}),
        );
        assert!(
            !o.issues
                .iter()
                .any(|i| i.expression.as_deref() == Some("Observation.status")),
            "{o:?}"
        );
    }

    #[test]
    fn required_binding_on_codeable_concept() {
        let o = check(
            json!({"resourceType": "Condition", "subject": {"reference": "Patient/1"},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "sembuh"}]}}),
        );
        let e: Vec<_> = o
            .issues
            .iter()
            .filter(|i| i.is_error())
            .map(|i| i.expression.clone().unwrap())
            .collect();
        assert!(e.contains(&"Condition.clinicalStatus".to_string()), "{o:?}");
        assert!(
            e.contains(&"Condition.clinicalStatus.coding[0].code".to_string()),
            "{o:?}"
        );
    }

    #[test]
    fn reference_targets() {
        let o = check(
            json!({"resourceType": "Encounter", "status": "finished", "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": "Practitioner/1"}}),
        );
        assert!(
            o.issues
                .iter()
                .any(|i| i.expression.as_deref() == Some("Encounter.subject.reference")),
            "{o:?}"
        );
    }

    #[test]
    fn extensions_known_and_typed() {
        let o = check(json!({"resourceType": "Patient", "extension": [
            {"url": "https://fhir.kemkes.go.id/r4/StructureDefinition/citizenshipStatus", "valueCode": "WNI"},
            {"url": "https://fhir.kemkes.go.id/r4/StructureDefinition/citizenshipStatus", "valueString": "WNI"},
            {"url": "https://example.org/unknown", "valueString": "x"}],
            "address": [{"extension": [{"url": "https://fhir.kemkes.go.id/r4/StructureDefinition/administrativeCode",
                "extension": [{"url": "province", "valueCode": "32"}, {"url": "kecamatan", "valueCode": "x"}]}]}]}));
        let at = |e: &str| {
            o.issues
                .iter()
                .find(|i| i.expression.as_deref() == Some(e))
                .map(|i| i.severity)
        };
        assert_eq!(at("Patient.extension[0].valueCode"), None);
        assert_eq!(
            at("Patient.extension[1].valueString"),
            Some(crate::fhir::Severity::Error)
        );
        assert_eq!(
            at("Patient.extension[2].url"),
            Some(crate::fhir::Severity::Warning)
        );
        assert_eq!(
            at("Patient.address[0].extension[0].extension[1].url"),
            Some(crate::fhir::Severity::Warning),
            "{o:?}"
        );
        assert_eq!(at("Patient.address[0].extension[0].extension[0].url"), None);
    }

    #[test]
    fn kemkes_codes_are_checked_as_warnings() {
        let o = check(
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "interpretation": [{"coding": [{"system": "http://terminology.kemkes.go.id/CodeSystem/clinical-term", "code": "OI999999"}]}]}),
        );
        let i = o
            .issues
            .iter()
            .find(|i| {
                i.expression.as_deref() == Some("Observation.interpretation[0].coding[0].code")
            })
            .unwrap();
        assert_eq!(i.severity, crate::fhir::Severity::Warning);
    }
}
