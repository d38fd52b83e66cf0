//! Layer (c): SATUSEHAT's business rules, as data.
//!
//! Two sources: the rows of SATUSEHAT's rule table (`validation-rules.csv`, derived by
//! [`super::rule_table`]) and `profiles/satusehat/rules.yaml`, written by hand for what the
//! table cannot say alone — conditions, custom checks, what a server was seen to do — with
//! the text that tells an integrator what to fix. A hand-written rule replaces the derived
//! check of the same number, resource and kind. Every rule carries its evidence, and only
//! evidence that SATUSEHAT refuses makes it an error. This module knows the kinds of check;
//! adding a rule is an edit to the data files, reviewed like code.

use super::path::{Selection, first_step_present, is_present, join, select};
use super::rule_load::RowCoverage;
use crate::fhir::{Issue, IssueCode, Outcome, Severity};
use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashMapExt, HashSet};
use serde::Deserialize;
use serde_json::Value;

/// What a rule checks at its path.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// The element must be present and not empty.
    Required,
    /// Every Coding (or Identifier, or Quantity) at the path uses one of these systems.
    /// `{org}` stands for the sender's organization id.
    SystemIn(Vec<String>),
    /// Every dateTime with a time part is written `YYYY-MM-DDThh:mm:ss+00:00`.
    Utc,
    /// A full date-time in UTC: like `utc`, and a bare date is refused too.
    Datetime,
    /// Not later than "now" (with a few minutes' tolerance for clock skew).
    NotFuture,
    /// Not earlier than this date (YYYY-MM-DD).
    NotBefore(String),
    /// Later than the value at this other path of the same resource.
    After(String),
    /// Every Reference at the path points to one of these resource types.
    ReferenceTo(Vec<String>),
    /// At least one of the References at the path (when there are any) points to one of
    /// these resource types; the others may point elsewhere.
    AnyReferenceTo(Vec<String>),
    /// An integer greater than zero.
    Positive,
    /// One of these exact values (codes, booleans, strings).
    OneOf(Vec<Value>),
    /// At least one of the Identifiers (or Codings) at the path has one of these systems.
    AnySystem(Vec<String>),
    /// A number not below zero.
    NotNegative,
    /// A string with something in it besides spaces.
    NotBlank,
    /// A `code` from one of these code systems (HL7 systems gerbang holds whole).
    CodeIn(Vec<String>),
    /// One of SATUSEHAT's named custom checks (`customvalidation.…`), see `custom.rs`.
    Custom(String),
}

impl Check {
    /// The kind, as rules.yaml spells it: a hand-written rule replaces the derived one of
    /// the same number, resource and kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Required => "required",
            Check::SystemIn(_) => "system-in",
            Check::Utc => "utc",
            Check::Datetime => "datetime",
            Check::NotFuture => "not-future",
            Check::NotBefore(_) => "not-before",
            Check::After(_) => "after",
            Check::ReferenceTo(_) => "reference-to",
            Check::AnyReferenceTo(_) => "any-reference-to",
            Check::Positive => "positive",
            Check::OneOf(_) => "one-of",
            Check::AnySystem(_) => "any-system",
            Check::NotNegative => "not-negative",
            Check::NotBlank => "not-blank",
            Check::CodeIn(_) => "code-in",
            Check::Custom(_) => "custom",
        }
    }

    /// In plain words, for the rules page.
    pub fn describe(&self) -> String {
        match self {
            Check::Required => "present".into(),
            Check::SystemIn(s) => format!("system one of {}", s.join(", ")),
            Check::Utc => "written in UTC (+00:00)".into(),
            Check::Datetime => "a full date-time (date and time)".into(),
            Check::NotFuture => "not in the future".into(),
            Check::NotBefore(d) => format!("not before {d}"),
            Check::After(p) => format!("later than {p}"),
            Check::ReferenceTo(t) => format!("references {}", t.join(" or ")),
            Check::AnyReferenceTo(t) => format!("at least one references {}", t.join(" or ")),
            Check::Positive => "greater than zero".into(),
            Check::OneOf(v) => format!(
                "one of {}",
                v.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Check::AnySystem(s) => format!("at least one with system {}", s.join(" or ")),
            Check::NotNegative => "not negative".into(),
            Check::NotBlank => "not blank".into(),
            Check::CodeIn(s) => format!("a code of {}", s.join(" or ")),
            Check::Custom(n) => format!("custom check {n}"),
        }
    }
}

/// Where a rule's severity comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Evidence {
    /// A SATUSEHAT server was seen refusing it (`source` says where).
    Seen,
    /// SATUSEHAT's rule table (the server's own configuration, as far as can be told).
    Table,
    /// Only the Kamus Validasi's wording: a warning, never an error.
    Kamus,
    /// FHIR R4 itself (cardinality, reference targets): any FHIR server refuses it.
    R4,
    /// gerbang's own advice (a narrower reference target, a convention of the playbooks):
    /// a warning, never an error.
    Gerbang,
    /// Not stated in rules.yaml: worked out at load from the rule number.
    #[serde(skip)]
    Unstated,
}

impl Evidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Evidence::Seen => "seen refused",
            Evidence::Table => "rule table",
            Evidence::Kamus => "Kamus wording",
            Evidence::R4 => "FHIR R4",
            Evidence::Gerbang => "gerbang",
            Evidence::Unstated => "unstated",
        }
    }
}

fn unstated() -> Evidence {
    Evidence::Unstated
}

/// Applies a rule only when any value at `path` equals `equals` (or, without `equals`, when
/// the path is present).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    pub path: String,
    #[serde(default)]
    pub equals: Option<Value>,
}

/// One condition, or a list of conditions that must all hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Conditions {
    One(When),
    All(Vec<When>),
}

impl Conditions {
    fn hold(&self, resource: &Value) -> bool {
        match self {
            Conditions::One(w) => w.holds(resource),
            Conditions::All(ws) => ws.iter().all(|w| w.holds(resource)),
        }
    }
}

impl When {
    fn holds(&self, resource: &Value) -> bool {
        let hits = select(resource, &self.path);
        match &self.equals {
            Some(expected) => hits.iter().any(|(_, v)| v == expected),
            None => hits.iter().any(|(_, v)| is_present(v)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// SATUSEHAT's rule number (Kamus Validasi); absent for gerbang's own checks.
    #[serde(default)]
    pub rule: Option<u32>,
    pub resource: String,
    pub path: String,
    pub check: Check,
    #[serde(default)]
    pub when: Option<Conditions>,
    #[serde(default = "default_severity")]
    pub severity: Severity,
    /// Where the severity comes from; without it, the rule table if the number is there for
    /// this resource, else the Kamus.
    #[serde(default = "unstated")]
    pub evidence: Evidence,
    /// For `seen`: where it was seen (a public record of SATUSEHAT's answer).
    #[serde(default)]
    pub source: Option<String>,
    /// Derived from a row of the rule table, not written in rules.yaml.
    #[serde(skip)]
    pub from_table: bool,
    /// Not applied to a Bundle entry that only looks a resource up (`request.ifNoneExist`):
    /// for rules about resources SATUSEHAT creates, such as a Patient's address.
    #[serde(default)]
    pub not_for_lookups: bool,
    /// What is wrong and what to do about it.
    pub text: String,
}

fn default_severity() -> Severity {
    Severity::Error
}

/// What a rule may need to know beyond the resource itself.
pub struct RuleContext<'a> {
    /// The sender's SATUSEHAT organization id. Without it, `{org}` matches any id.
    pub organization_id: Option<&'a str>,
    pub now: DateTime<Utc>,
    /// Resolves a `urn:uuid:` reference to the resourceType of the Bundle entry it names.
    pub resolve: &'a dyn Fn(&str) -> Option<String>,
    /// The resource is a Bundle entry that only looks it up (`request.ifNoneExist`).
    pub lookup: bool,
}

/// Clock skew tolerated by `not-future`: facility PCs are rarely exact.
use crate::time::FUTURE_TOLERANCE_SECS;

pub struct Rules {
    by_resource: HashMap<String, Vec<Rule>>,
    count: usize,
    /// Codes of the code systems `code-in` rules name.
    codes: HashMap<String, HashSet<String>>,
    /// How each row of the rule table is covered (empty without a table).
    coverage: Vec<RowCoverage>,
}

impl Rules {
    /// rules.yaml alone, every rule taken at its word (unit tests and tools).
    pub fn from_yaml(text: &str) -> Result<Rules, String> {
        let mut rules: Vec<Rule> = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        for r in &mut rules {
            if r.evidence == Evidence::Unstated {
                r.evidence = Evidence::Table;
            }
        }
        Self::build(rules, HashMap::new(), Vec::new())
    }

    pub(super) fn build(
        rules: Vec<Rule>,
        codes: HashMap<String, HashSet<String>>,
        coverage: Vec<RowCoverage>,
    ) -> Result<Rules, String> {
        let count = rules.len();
        let mut by_resource: HashMap<String, Vec<Rule>> = HashMap::new();
        for r in rules {
            if let Check::NotBefore(d) = &r.check {
                crate::time::parse_fhir(d)
                    .ok_or_else(|| format!("rule {:?}: `{d}` is not a date", r.rule))?;
            }
            by_resource.entry(r.resource.clone()).or_default().push(r);
        }
        Ok(Rules {
            by_resource,
            count,
            codes,
            coverage,
        })
    }

    /// How each row of SATUSEHAT's rule table is covered.
    pub fn coverage(&self) -> &[RowCoverage] {
        &self.coverage
    }

    /// The rules for one resource type, in the order they run.
    pub fn for_resource(&self, resource: &str) -> &[Rule] {
        self.by_resource
            .get(resource)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Element path (`Observation.interpretation`) → the code systems SATUSEHAT's rules allow
    /// there (organization-specific identifier systems left out).
    pub fn allowed_systems(&self) -> HashMap<String, Vec<String>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for r in self.all() {
            if let Check::SystemIn(systems) = &r.check {
                let path = format!("{}.{}", r.resource, r.path.trim_end_matches("[x]"));
                out.entry(path).or_default().extend(
                    systems
                        .iter()
                        .filter(|s| !s.contains("{org}") && !s.contains("{any-org}"))
                        .cloned(),
                );
            }
        }
        out
    }

    pub fn all(&self) -> impl Iterator<Item = &Rule> {
        self.by_resource.values().flatten()
    }

    /// Apply every rule for this resource's type. `at` is the resource's location.
    pub fn check(&self, resource: &Value, at: &str, ctx: &RuleContext) -> Outcome {
        let mut out = Outcome::new();
        let Some(rt) = resource.get("resourceType").and_then(Value::as_str) else {
            return out;
        };
        let mut last: Option<(&str, Selection)> = None;
        for rule in self
            .by_resource
            .get(rt)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if rule.when.as_ref().is_some_and(|w| !w.hold(resource))
                || (rule.not_for_lookups && ctx.lookup)
            {
                continue;
            }
            // Most rules are about elements a given resource does not have: only a rule
            // that asks for presence (or a custom check, which reads the resource) has
            // anything to say then.
            if !matches!(
                rule.check,
                Check::Required | Check::AnySystem(_) | Check::Custom(_)
            ) && !first_step_present(resource, &rule.path)
            {
                continue;
            }
            // Rules about one element come one after another (a date-time's format, future
            // and earliest date): its values are selected once.
            if last
                .as_ref()
                .is_none_or(|(path, _)| *path != rule.path.as_str())
            {
                last = Some((rule.path.as_str(), select(resource, &rule.path)));
            }
            let hits = &last.as_ref().expect("selected above").1;
            apply(rule, resource, hits, at, ctx, &self.codes, &mut out);
        }
        // A hand-written rule and a derived one of another kind may find the same thing
        // (an offset, say): one problem, one issue.
        let mut kept: Vec<Issue> = Vec::with_capacity(out.issues.len());
        for i in out.issues {
            let twice = kept.iter().any(|k| {
                k.severity == i.severity
                    && k.rule == i.rule
                    && k.expression == i.expression
                    && k.text == i.text
            });
            if !twice {
                kept.push(i);
            }
        }
        Outcome::from(kept)
    }
}

#[allow(clippy::too_many_arguments)]
fn apply(
    rule: &Rule,
    resource: &Value,
    hits: &Selection<'_>,
    at: &str,
    ctx: &RuleContext,
    codes: &HashMap<String, HashSet<String>>,
    out: &mut Outcome,
) {
    // Locations are written out here, for an issue found, not for every value checked.
    let issue = |code: IssueCode, loc: &dyn std::fmt::Display, detail: Option<String>| {
        let text = match detail {
            Some(d) => format!("{} ({d})", rule.text),
            None => rule.text.clone(),
        };
        let mut i = Issue::new(rule.severity, code, text).at(join(at, &loc.to_string()));
        i.rule = rule.rule;
        i
    };
    match &rule.check {
        Check::Required => {
            if !hits.iter().any(|(_, v)| is_present(v)) {
                out.push(issue(IssueCode::Required, &rule.path, None));
            }
        }
        Check::SystemIn(allowed) => {
            for (loc, v) in hits.iter() {
                for (coding, system) in systems_of(v) {
                    match system {
                        None => out.push(issue(
                            IssueCode::Required,
                            &system_loc(loc, coding),
                            Some("system is missing".into()),
                        )),
                        Some(s)
                            if !allowed
                                .iter()
                                .any(|a| system_matches(a, s, ctx.organization_id)) =>
                        {
                            out.push(issue(
                                IssueCode::CodeInvalid,
                                &system_loc(loc, coding),
                                Some(format!("found `{s}`")),
                            ))
                        }
                        _ => {}
                    }
                }
            }
        }
        Check::Utc | Check::Datetime => {
            let need_time = matches!(rule.check, Check::Datetime);
            for (loc, v) in hits.iter() {
                let Some(s) = v.as_str() else { continue };
                if let Some(utc) = crate::time::as_satusehat_utc(s) {
                    // Another offset (`+07:00`, `Z`): SATUSEHAT's servers accept it
                    // (satusehat-server-behaviour.md); its docs ask for +00:00.
                    let mut i = issue(IssueCode::Value, &loc, Some(format!("found `{s}`")));
                    i.severity = Severity::Warning;
                    i.text = offset_text(loc_name(at, &loc.to_string()), s, &utc);
                    out.push(i);
                } else if (need_time || s.contains('T')) && !crate::time::is_satusehat_utc(s) {
                    out.push(issue(IssueCode::Value, &loc, Some(format!("found `{s}`"))));
                }
            }
        }
        Check::NotFuture => {
            for (loc, v) in hits.iter() {
                if let Some(t) = v.as_str().and_then(crate::time::parse_fhir) {
                    if (t - ctx.now).num_seconds() > FUTURE_TOLERANCE_SECS {
                        out.push(issue(
                            IssueCode::Value,
                            &loc,
                            Some(format!("`{}` is in the future", v.as_str().unwrap_or(""))),
                        ));
                    }
                }
            }
        }
        Check::NotBefore(date) => {
            let limit = crate::time::parse_fhir(date).expect("checked at load");
            for (loc, v) in hits.iter() {
                if let Some(t) = v.as_str().and_then(crate::time::parse_fhir) {
                    if t < limit {
                        out.push(issue(
                            IssueCode::Value,
                            &loc,
                            Some(format!("`{}` is before {date}", v.as_str().unwrap_or(""))),
                        ));
                    }
                }
            }
        }
        Check::After(other) => {
            let other_time = select(resource, other)
                .iter()
                .find_map(|(_, v)| v.as_str().and_then(crate::time::parse_fhir));
            if let Some(other_time) = other_time {
                for (loc, v) in hits.iter() {
                    if let Some(t) = v.as_str().and_then(crate::time::parse_fhir) {
                        if t <= other_time {
                            out.push(issue(
                                IssueCode::Invariant,
                                &loc,
                                Some(format!("must be after {other}")),
                            ));
                        }
                    }
                }
            }
        }
        Check::AnyReferenceTo(types) => {
            // Reported at the first reference, only when none points to one of the types.
            let mut first_other = None;
            let mut any_matches = false;
            for (loc, v) in hits.iter() {
                if let Some(t) = target_of(v, ctx) {
                    if types.contains(&t) {
                        any_matches = true;
                        break;
                    }
                    first_other.get_or_insert((loc, t));
                }
            }
            if let (false, Some((loc, t))) = (any_matches, first_other) {
                out.push(issue(
                    IssueCode::Invalid,
                    &format!("{loc}.reference"),
                    Some(format!(
                        "points to {t}, and none of them to a {}",
                        types.join(" or ")
                    )),
                ));
            }
        }
        Check::ReferenceTo(types) => {
            for (loc, v) in hits.iter() {
                if let Some(t) = target_of(v, ctx) {
                    if !types.iter().any(|x| *x == t) {
                        out.push(issue(
                            IssueCode::Invalid,
                            &format!("{loc}.reference"),
                            Some(format!("points to {t}; expected {}", types.join(" or "))),
                        ));
                    }
                }
            }
        }
        Check::Positive => {
            for (loc, v) in hits.iter() {
                let positive = v
                    .as_i64()
                    .map(|n| n > 0)
                    .or_else(|| v.as_f64().map(|n| n > 0.0));
                if positive != Some(true) {
                    out.push(issue(IssueCode::Value, &loc, Some(format!("found {v}"))));
                }
            }
        }
        Check::NotNegative => {
            for (loc, v) in hits.iter() {
                if v.as_f64().is_some_and(|n| n < 0.0) {
                    out.push(issue(IssueCode::Value, &loc, Some(format!("found {v}"))));
                }
            }
        }
        Check::NotBlank => {
            for (loc, v) in hits.iter() {
                if v.as_str().is_some_and(|s| s.trim().is_empty()) {
                    out.push(issue(IssueCode::Value, &loc, None));
                }
            }
        }
        Check::CodeIn(systems) => {
            for (loc, v) in hits.iter() {
                let Some(code) = v.as_str() else { continue };
                let known = systems
                    .iter()
                    .any(|s| codes.get(s).is_some_and(|c| c.contains(code)));
                if !known {
                    out.push(issue(
                        IssueCode::CodeInvalid,
                        &loc,
                        Some(format!("found `{code}`")),
                    ));
                }
            }
        }
        Check::Custom(name) => {
            for found in super::custom::run(name, &rule.path, resource, hits, ctx) {
                // A note (what was not checked offline) says only that, not the rule's text.
                let note = found.severity == Some(Severity::Information);
                let detail = found.detail.clone();
                let mut i = issue(found.code, &found.at, found.detail);
                if let Some(sev) = found.severity {
                    i.severity = sev;
                }
                if note {
                    i.text = detail.unwrap_or_default();
                }
                out.push(i);
            }
        }
        Check::AnySystem(allowed) => {
            let present = hits.iter().any(|(_, v)| {
                systems_of(v).iter().any(|(_, s)| {
                    s.is_some_and(|s| {
                        allowed
                            .iter()
                            .any(|a| system_matches(a, s, ctx.organization_id))
                    })
                })
            });
            if !present {
                out.push(issue(IssueCode::Required, &rule.path, None));
            }
        }
        Check::OneOf(values) => {
            for (loc, v) in hits.iter() {
                if !values.contains(v) {
                    out.push(issue(
                        IssueCode::CodeInvalid,
                        &loc,
                        Some(format!("found {v}")),
                    ));
                }
            }
        }
    }
}

/// The resource type a Reference points to (a `urn:uuid:` one resolved in its Bundle).
fn target_of(v: &Value, ctx: &RuleContext) -> Option<String> {
    let reference = v.get("reference").and_then(Value::as_str)?;
    if reference.starts_with("urn:uuid:") {
        (ctx.resolve)(reference)
    } else {
        reference.split('/').rev().nth(1).map(str::to_string)
    }
}

/// Where an element is, for a message: `Encounter.period.end`.
fn loc_name(at: &str, loc: &str) -> String {
    join(at, loc)
}

/// The warning for a date-time written with another offset than +00:00.
pub fn offset_text(element: String, found: &str, utc: &str) -> String {
    format!(
        "{element} is written `{found}`; SATUSEHAT accepts this offset, but its documentation asks for UTC — gerbang delivers it as UTC, `{utc}`"
    )
}

/// The `system` of every Coding in a CodeableConcept (with the coding's index), or of an
/// Identifier/Coding/Quantity itself (`None`).
fn systems_of(v: &Value) -> Vec<(Option<usize>, Option<&str>)> {
    // A CodeableConcept with only `text` has no coding to check (whether a coding is
    // required is a `required` rule's business).
    let is_concept = v.get("coding").is_some()
        || (v.get("text").is_some() && v.get("system").is_none() && v.get("code").is_none());
    if is_concept {
        let Some(codings) = v.get("coding").and_then(Value::as_array) else {
            return Vec::new();
        };
        return codings
            .iter()
            .enumerate()
            .map(|(i, c)| (Some(i), c.get("system").and_then(Value::as_str)))
            .collect();
    }
    // An Identifier, Coding or Quantity; an object with none of system, code or value is
    // not one (the rule table calls Appointment.participant an Identifier).
    if v.is_object()
        && ["system", "code", "value"]
            .iter()
            .any(|k| v.get(k).is_some())
    {
        return vec![(None, v.get("system").and_then(Value::as_str))];
    }
    Vec::new()
}

/// Where a `system` [`systems_of`] found is: `….coding[1].system` or `….system`.
fn system_loc(loc: impl std::fmt::Display, coding: Option<usize>) -> String {
    match coding {
        Some(i) => format!("{loc}.coding[{i}].system"),
        None => format!("{loc}.system"),
    }
}

/// `http://sys-ids.kemkes.go.id/encounter/{org}` matches the sender's own org id, or any id
/// when the sender is unknown (validating a file on the command line).
pub fn system_matches(pattern: &str, system: &str, org: Option<&str>) -> bool {
    if let Some((prefix, suffix)) = pattern.split_once("{any-org}") {
        return system
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'));
    }
    match pattern.split_once("{org}") {
        None => pattern == system,
        Some((prefix, suffix)) => match org {
            Some(org) => {
                system
                    .strip_prefix(prefix)
                    .and_then(|r| r.strip_suffix(suffix))
                    == Some(org)
            }
            None => system
                .strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(suffix))
                .is_some_and(|id| !id.is_empty() && !id.contains('/')),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx_now() -> DateTime<Utc> {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    fn run(rules: &str, r: &Value) -> Outcome {
        let rules = Rules::from_yaml(rules).unwrap();
        let resolve = |_: &str| Some("Practitioner".to_string());
        let ctx = RuleContext {
            organization_id: Some("100000001"),
            now: ctx_now(),
            resolve: &resolve,
            lookup: false,
        };
        rules.check(r, "Encounter", &ctx)
    }

    #[test]
    fn required_and_conditional() {
        let rules = r#"
- {rule: 10118, resource: Encounter, path: subject, check: required, text: "subject is required"}
- {rule: 10121, resource: Encounter, path: period.end, check: required, when: {path: status, equals: finished}, text: "end required when finished"}
"#;
        let o = run(
            rules,
            &json!({"resourceType": "Encounter", "status": "finished", "period": {"start": "x"}}),
        );
        assert_eq!(o.rule_numbers(), vec![10118, 10121]);
        assert_eq!(
            o.issues[1].expression.as_deref(),
            Some("Encounter.period.end")
        );
        let o = run(
            rules,
            &json!({"resourceType": "Encounter", "status": "arrived", "subject": {"reference": "Patient/1"}}),
        );
        assert!(o.is_empty());
    }

    #[test]
    fn any_reference_to_wants_one_of_the_references() {
        let rules = r#"[{rule: 10383, resource: Encounter, path: participant.individual, check: {any-reference-to: [Practitioner]}, severity: warning, text: "no health worker"}]"#;
        let who = |refs: &[&str]| {
            let parts: Vec<Value> = refs
                .iter()
                .map(|r| json!({"individual": {"reference": r}}))
                .collect();
            json!({"resourceType": "Encounter", "participant": parts})
        };
        assert!(run(rules, &who(&["Practitioner/1", "Organization/2"])).is_empty());
        assert!(run(rules, &who(&["Organization/2", "Practitioner/1"])).is_empty());
        assert!(run(rules, &json!({"resourceType": "Encounter"})).is_empty());
        let o = run(rules, &who(&["Organization/2", "Patient/3"]));
        assert_eq!(o.issues.len(), 1);
        assert_eq!(
            o.issues[0].expression.as_deref(),
            Some("Encounter.participant[0].individual.reference")
        );
        assert!(
            o.issues[0].text.contains("points to Organization"),
            "{}",
            o.issues[0].text
        );
    }

    #[test]
    fn organization_in_identifier_system() {
        let rules = r#"[{rule: 10117, resource: Encounter, path: identifier, check: {system-in: ["http://sys-ids.kemkes.go.id/encounter/{org}"]}, text: "wrong org"}]"#;
        let ok = json!({"resourceType": "Encounter", "identifier": [{"system": "http://sys-ids.kemkes.go.id/encounter/100000001", "value": "1"}]});
        assert!(run(rules, &ok).is_empty());
        let bad = json!({"resourceType": "Encounter", "identifier": [{"system": "http://sys-ids.kemkes.go.id/encounter/100025753", "value": "1"}]});
        let o = run(rules, &bad);
        assert_eq!(
            o.issues[0].expression.as_deref(),
            Some("Encounter.identifier[0].system")
        );
        assert!(system_matches(
            "http://sys-ids.kemkes.go.id/encounter/{org}",
            "http://sys-ids.kemkes.go.id/encounter/999",
            None
        ));
    }

    #[test]
    fn times() {
        let rules = r#"
- {rule: 1, resource: Encounter, path: period.start, check: utc, text: "utc"}
- {rule: 2, resource: Encounter, path: period.start, check: not-future, text: "future"}
- {rule: 3, resource: Encounter, path: period.start, check: {not-before: "2014-06-03"}, text: "too old"}
- {rule: 4, resource: Encounter, path: period.end, check: {after: period.start}, text: "order"}
"#;
        let o = run(
            rules,
            &json!({"resourceType": "Encounter", "period": {"start": "2026-05-12T08:00:00+07:00", "end": "2026-05-12T00:30:00+00:00"}}),
        );
        assert_eq!(o.rule_numbers(), vec![1, 4]);
        let o = run(
            rules,
            &json!({"resourceType": "Encounter", "period": {"start": "2027-01-01T00:00:00+00:00"}}),
        );
        assert_eq!(o.rule_numbers(), vec![2]);
        let o = run(
            rules,
            &json!({"resourceType": "Encounter", "period": {"start": "2010-01-01T00:00:00+00:00"}}),
        );
        assert_eq!(o.rule_numbers(), vec![3]);
    }

    #[test]
    fn conditions_lists_and_datetime() {
        let rules = r#"
- {rule: 1, resource: Encounter, path: lot, check: required, when: [{path: status, equals: completed}, {path: primary, equals: true}], text: "lot"}
- {rule: 2, resource: Encounter, path: value, check: datetime, text: "dt"}
- {rule: 3, resource: Encounter, path: code, check: {system-in: ["s"]}, text: "sys"}
"#;
        let o = run(
            rules,
            &json!({"resourceType": "Encounter", "status": "not-done", "primary": true, "value": "2026-01-20", "code": {"text": "only text"}}),
        );
        assert_eq!(o.rule_numbers(), vec![2]);
        let o = run(
            rules,
            &json!({"resourceType": "Encounter", "status": "completed", "primary": true, "value": "2026-01-20T00:00:00+00:00", "code": {"coding": [{"code": "x"}]}}),
        );
        assert_eq!(o.rule_numbers(), vec![1, 3]);
    }

    #[test]
    fn reference_targets() {
        let rules = r#"[{rule: 10383, resource: Encounter, path: performer, check: {reference-to: [Organization]}, text: "performer"}]"#;
        // The resolver says every urn:uuid is a Practitioner.
        let o = run(
            rules,
            &json!({"resourceType": "Encounter", "performer": [{"reference": "urn:uuid:x"}, {"reference": "Organization/1"}]}),
        );
        assert_eq!(o.issues.len(), 1);
        assert_eq!(
            o.issues[0].expression.as_deref(),
            Some("Encounter.performer[0].reference")
        );
    }
}
