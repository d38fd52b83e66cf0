//! SATUSEHAT's rule table (`profiles/satusehat/validation-rules.csv`): its rows read, its copy
//! errors mended from the reviewed exceptions file, and the checks each row implies derived.
//!
//! A row names an element (up to five path steps), whether it is mandatory or required only
//! under a condition (`has_term`), the systems allowed there, the resource types a Reference
//! may point to, a time type (`dateTime`: a full date-time, not in the future, not before the
//! earliest date) and a named custom check. Each of those is an *aspect*; every aspect of every
//! row ends up derived here, written by hand in `rules.yaml` (conditions, custom checks), left
//! to the R4 layer (plain types), or listed in `rule-table-exceptions.yaml` with a reason.
//! Pure: text in, rows and rules out.

use super::rules::{Check, Evidence, Rule};
use crate::fhir::Severity;
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use serde::Deserialize;

/// One step of a row's element path.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    /// The table's type name: `Array`, `Object`, `CodeableConcept`, `dateTime`, …
    pub kind: String,
    /// For an `Extension` step, the extension's url.
    pub url: String,
    /// Resource types a Reference here may point to; empty = any.
    pub ref_allowed: Vec<String>,
}

/// One row of the table, its number as read (copy errors mended).
#[derive(Debug, Clone)]
pub struct Row {
    /// 1-based line in the CSV file (the header is line 1).
    pub line: usize,
    pub number: Option<u32>,
    pub resource: String,
    pub steps: Vec<Step>,
    pub mandatory: bool,
    pub has_term: bool,
    pub systems: Vec<String>,
    pub custom: Option<String>,
    pub conditional_systems: Option<String>,
    /// `attribute_path` when it names an element (`Encounter.participant.type`).
    pub attribute_path: Option<String>,
}

/// What a row asks for, one thing at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Aspect {
    Required,
    Conditional,
    Systems,
    ConditionalSystems,
    References,
    Time,
    Positive,
    NotEmpty,
    Custom,
}

impl Aspect {
    pub fn as_str(self) -> &'static str {
        match self {
            Aspect::Required => "required",
            Aspect::Conditional => "conditional",
            Aspect::Systems => "systems",
            Aspect::ConditionalSystems => "conditional-systems",
            Aspect::References => "references",
            Aspect::Time => "time",
            Aspect::Positive => "positive",
            Aspect::NotEmpty => "not-empty",
            Aspect::Custom => "custom",
        }
    }
}

/// The reviewed exceptions file (`profiles/satusehat/rule-table-exceptions.yaml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exceptions {
    /// Copy errors in the number column: the line's number is read as `read_as`.
    pub renumbered: Vec<Renumbered>,
    /// Blocks pasted twice: a row identical to an earlier one of the block is skipped.
    pub duplicated_blocks: Vec<DuplicatedBlock>,
    /// Numbers the table uses on several resource types; a rule is (number, resource type).
    pub shared_numbers: Vec<SharedNumber>,
    /// Aspects gerbang does not check offline, and why.
    pub not_checked: Vec<NotChecked>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Renumbered {
    pub line: usize,
    pub number: String,
    pub read_as: Option<u32>,
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuplicatedBlock {
    pub resource: String,
    pub from: u32,
    pub to: u32,
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedNumber {
    pub number: u32,
    pub resources: Vec<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotChecked {
    pub rule: u32,
    pub resource: String,
    pub aspect: String,
    pub reason: String,
}

#[derive(Debug, Deserialize)]
struct RawRow {
    rule_number: String,
    resource_type: String,
    attribute_path: String,
    #[allow(dead_code)]
    value_set: String,
    mandatory: String,
    has_term: String,
    systems: String,
    additional_validation: String,
    conditional_systems: String,
    path1_name: String,
    path1_type: String,
    path1_url: String,
    path1_ref_allowed: String,
    path2_name: String,
    path2_type: String,
    path2_url: String,
    path2_ref_allowed: String,
    path3_name: String,
    path3_type: String,
    path3_url: String,
    path3_ref_allowed: String,
    path4_name: String,
    path4_type: String,
    path4_url: String,
    path4_ref_allowed: String,
    path5_name: String,
    path5_type: String,
    path5_url: String,
    path5_ref_allowed: String,
}

fn split(s: &str) -> Vec<String> {
    s.split('|')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

impl RawRow {
    fn steps(&self) -> Vec<Step> {
        [
            (
                &self.path1_name,
                &self.path1_type,
                &self.path1_url,
                &self.path1_ref_allowed,
            ),
            (
                &self.path2_name,
                &self.path2_type,
                &self.path2_url,
                &self.path2_ref_allowed,
            ),
            (
                &self.path3_name,
                &self.path3_type,
                &self.path3_url,
                &self.path3_ref_allowed,
            ),
            (
                &self.path4_name,
                &self.path4_type,
                &self.path4_url,
                &self.path4_ref_allowed,
            ),
            (
                &self.path5_name,
                &self.path5_type,
                &self.path5_url,
                &self.path5_ref_allowed,
            ),
        ]
        .into_iter()
        .filter(|(n, ..)| !n.trim().is_empty())
        .map(|(n, t, u, r)| Step {
            name: n.trim().to_string(),
            kind: t.trim().to_string(),
            url: u.trim().to_string(),
            ref_allowed: split(r),
        })
        .collect()
    }
}

/// The table, read and mended.
pub struct Table {
    pub rows: Vec<Row>,
    pub exceptions: Exceptions,
}

impl Table {
    /// Read the CSV and apply the exceptions file's mends. Every copy error must be listed:
    /// a number that is not a number, a number shared across resource types, an exact
    /// duplicate row — each is a load error until the exceptions file says what it is.
    pub fn load(csv_text: &str, exceptions_yaml: &str) -> Result<Table, String> {
        let exceptions: Exceptions = serde_saphyr::from_str(exceptions_yaml)
            .map_err(|e| format!("rule-table-exceptions.yaml: {e}"))?;
        let renumbered: HashMap<usize, &Renumbered> =
            exceptions.renumbered.iter().map(|r| (r.line, r)).collect();
        let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
        let mut rows = Vec::new();
        let mut seen: HashSet<Vec<String>> = HashSet::new();
        for (i, record) in reader.records().enumerate() {
            let line = i + 2;
            let record = record.map_err(|e| format!("validation-rules.csv line {line}: {e}"))?;
            let key: Vec<String> = record.iter().map(str::to_string).collect();
            let raw: RawRow = record
                .deserialize(None)
                .map_err(|e| format!("validation-rules.csv line {line}: {e}"))?;
            let number = match renumbered.get(&line) {
                Some(r) if r.number == raw.rule_number => r.read_as,
                Some(r) => {
                    return Err(format!(
                        "rule-table-exceptions.yaml: line {line} has number `{}`, not `{}`",
                        raw.rule_number, r.number
                    ));
                }
                None => match raw.rule_number.trim().parse::<u32>() {
                    Ok(n) if (10000..=11999).contains(&n) => Some(n),
                    _ => {
                        return Err(format!(
                            "validation-rules.csv line {line}: rule number `{}` is not a SATUSEHAT rule number; list it under `renumbered` in rule-table-exceptions.yaml",
                            raw.rule_number
                        ));
                    }
                },
            };
            if !seen.insert(key) {
                let listed = exceptions.duplicated_blocks.iter().any(|b| {
                    b.resource == raw.resource_type
                        && number.is_some_and(|n| (b.from..=b.to).contains(&n))
                });
                if !listed {
                    return Err(format!(
                        "validation-rules.csv line {line} repeats an earlier row ({} {}); list its block under `duplicated_blocks`",
                        raw.rule_number, raw.resource_type
                    ));
                }
                continue;
            }
            let attribute_path = Some(raw.attribute_path.trim())
                .filter(|p| p.starts_with(&format!("{}.", raw.resource_type)))
                .map(str::to_string);
            rows.push(Row {
                line,
                number,
                resource: raw.resource_type.trim().to_string(),
                steps: raw.steps(),
                mandatory: raw.mandatory.trim() == "true",
                has_term: raw.has_term.trim() == "true",
                systems: split(&raw.systems),
                custom: Some(raw.additional_validation.trim())
                    .filter(|s| !s.is_empty())
                    .map(|s| s.trim_start_matches("customvalidation.").to_string()),
                conditional_systems: Some(raw.conditional_systems.trim())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
                attribute_path,
            });
        }
        let mut by_number: HashMap<u32, HashSet<&str>> = HashMap::new();
        for r in &rows {
            if let Some(n) = r.number {
                by_number.entry(n).or_default().insert(&r.resource);
            }
        }
        for (n, resources) in &by_number {
            if resources.len() > 1 && !exceptions.shared_numbers.iter().any(|s| s.number == *n) {
                let mut rs: Vec<_> = resources.iter().collect();
                rs.sort();
                return Err(format!(
                    "rule {n} is used on {rs:?} in validation-rules.csv; list it under `shared_numbers`"
                ));
            }
        }
        Ok(Table { rows, exceptions })
    }

    /// The extensions the table names (by canonical URL), with the value types its rows give
    /// them directly (`valueCode` → `Code`); empty when its rows go on to sub-extensions.
    pub fn extensions(&self) -> HashMap<String, Vec<String>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for row in &self.rows {
            for (i, step) in row.steps.iter().enumerate() {
                if step.kind != "Extension" || !step.url.starts_with("http") {
                    continue;
                }
                let types = out.entry(step.url.clone()).or_default();
                if let Some(t) = row
                    .steps
                    .get(i + 1)
                    .and_then(|n| n.name.strip_prefix("value"))
                {
                    if !types.iter().any(|x| x == t) {
                        types.push(t.to_string());
                    }
                }
            }
        }
        out
    }

    pub fn not_checked(
        &self,
        number: Option<u32>,
        resource: &str,
        aspect: Aspect,
    ) -> Option<&NotChecked> {
        let n = number?;
        self.exceptions
            .not_checked
            .iter()
            .find(|x| x.rule == n && x.resource == resource && x.aspect == aspect.as_str())
    }
}

/// Time types the table names, and what each means offline.
fn time_checks(kind: &str) -> Option<Vec<Check>> {
    let earliest = || Check::NotBefore(EARLIEST.to_string());
    Some(match kind {
        // A full date-time, not in the future, not before the earliest date.
        "dateTime" => vec![Check::Datetime, Check::NotFuture, earliest()],
        // A date or a date-time (a dose recorded from history may have only its date).
        "ImmunizationDateTime" => vec![Check::NotFuture, earliest()],
        // A birth date: not in the future (old dates are normal).
        "PatientDateTime" => vec![Check::NotFuture],
        // Appointments, cover periods, expiry: the future is allowed.
        "FutureDateTime" | "dateTimeWithoutLimit" | "CoverageDateTime" => vec![Check::Datetime],
        _ => return None,
    })
}

/// The earliest date SATUSEHAT accepts (satusehat.md §1.5; "Future Date or Past Date before
/// 3rd June 2014", staging 2026-09).
pub const EARLIEST: &str = "2014-06-03";

/// Leaf types whose systems gerbang checks on a `system` (Coding, CodeableConcept, Identifier,
/// Quantity).
fn carries_system(kind: &str) -> bool {
    matches!(
        kind,
        "CodeableConcept" | "Coding" | "CodingArray" | "Identifier" | "Object" | "Money"
    )
}

impl Row {
    /// The element path in the validator's syntax: `location.extension[url=…].valueCode`.
    pub fn path(&self) -> String {
        if let Some(p) = &self.attribute_path {
            return p[self.resource.len() + 1..].to_string();
        }
        self.steps
            .iter()
            .map(|s| {
                if s.kind == "Extension" && !s.url.is_empty() {
                    format!("{}[url={}]", s.name, s.url)
                } else {
                    s.name.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(".")
    }

    fn leaf(&self) -> Option<&Step> {
        self.steps.last()
    }

    /// What this row asks for.
    pub fn aspects(&self) -> Vec<Aspect> {
        let mut out = Vec::new();
        if self.mandatory && !self.has_term {
            out.push(Aspect::Required);
        }
        if self.has_term {
            out.push(Aspect::Conditional);
        }
        if !self.systems.is_empty() {
            out.push(Aspect::Systems);
        }
        if self.conditional_systems.is_some() {
            out.push(Aspect::ConditionalSystems);
        }
        if self.steps.iter().any(|s| !s.ref_allowed.is_empty()) {
            out.push(Aspect::References);
        }
        let kind = self.leaf().map_or("", |s| s.kind.as_str());
        if time_checks(kind).is_some() {
            out.push(Aspect::Time);
        }
        if matches!(kind, "positiveInteger" | "positiveDecimal") {
            out.push(Aspect::Positive);
        }
        if kind == "TextNotEmpty" {
            out.push(Aspect::NotEmpty);
        }
        if self.custom.is_some() {
            out.push(Aspect::Custom);
        }
        out
    }

    /// The checks an aspect derives to, or `None` when it cannot be derived from the row alone
    /// (a condition the table does not state, a custom check, a system on a type without one).
    pub fn derive(&self, aspect: Aspect) -> Option<Vec<Rule>> {
        let path = self.path();
        let element = format!("{}.{}", self.resource, path);
        let leaf = self.leaf()?;
        let rule = |path: String, check: Check, text: String| Rule {
            rule: self.number,
            resource: self.resource.clone(),
            path,
            check,
            when: None,
            severity: Severity::Error,
            evidence: Evidence::Table,
            source: None,
            from_table: true,
            not_for_lookups: false,
            text,
        };
        match aspect {
            Aspect::Required => Some(vec![rule(
                path.clone(),
                Check::Required,
                format!("{element} is required (SATUSEHAT's rule table)"),
            )]),
            Aspect::Systems if carries_system(&leaf.kind) => {
                let systems: Vec<String> =
                    self.systems.iter().map(|s| org_placeholder(s)).collect();
                Some(vec![rule(
                    path.clone(),
                    Check::SystemIn(systems.clone()),
                    format!(
                        "{element} must use {} (SATUSEHAT's rule table)",
                        one_of(&systems)
                    ),
                )])
            }
            Aspect::References => {
                let mut out = Vec::new();
                let mut prefix: Vec<String> = Vec::new();
                for s in &self.steps {
                    prefix.push(if s.kind == "Extension" && !s.url.is_empty() {
                        format!("{}[url={}]", s.name, s.url)
                    } else {
                        s.name.clone()
                    });
                    if !s.ref_allowed.is_empty() {
                        let p = prefix.join(".");
                        out.push(rule(
                            p.clone(),
                            Check::ReferenceTo(s.ref_allowed.clone()),
                            format!(
                                "{}.{p} must reference {} (SATUSEHAT's rule table)",
                                self.resource,
                                s.ref_allowed.join(" or ")
                            ),
                        ));
                    }
                }
                Some(out)
            }
            Aspect::Time => {
                let checks = time_checks(&leaf.kind)?;
                Some(
                    checks
                        .into_iter()
                        .map(|c| {
                            let text = match &c {
                                Check::Datetime => format!("{element} must be a full date-time, YYYY-MM-DDThh:mm:ss+00:00"),
                                Check::NotFuture => format!("{element} must not be in the future; check the facility's clock and time zone"),
                                Check::NotBefore(d) => format!("{element} must not be before {d}, the earliest date SATUSEHAT accepts"),
                                _ => unreachable!("time checks only"),
                            };
                            rule(path.clone(), c, text)
                        })
                        .collect(),
                )
            }
            // The table's `positiveInteger` is read as "not negative": SATUSEHAT's own
            // prescription playbook sends dispenseRequest.numberOfRepeatsAllowed 0, and R4's
            // positiveInt elements are refused at 0 by the R4 layer already.
            Aspect::Positive => Some(vec![rule(
                path.clone(),
                Check::NotNegative,
                format!("{element} must not be negative"),
            )]),
            Aspect::NotEmpty => Some(vec![rule(
                path.clone(),
                Check::NotBlank,
                format!("{element} must not be empty or blank"),
            )]),
            _ => None,
        }
    }
}

/// `…/:id` is the sender's organization; `…/:skipid` any organization (at the end of the
/// system or inside it: `…/diagnostic/:id/lab`).
fn org_placeholder(system: &str) -> String {
    let mut s = format!("{system}/");
    s = s
        .replace("/:skipid/", "/{any-org}/")
        .replace("/:id/", "/{org}/");
    s.pop();
    s
}

fn one_of(systems: &[String]) -> String {
    let shown: Vec<String> = systems
        .iter()
        .map(|s| {
            s.replace("{org}", "{org-id}")
                .replace("{any-org}", "{organization-id}")
        })
        .collect();
    match shown.as_slice() {
        [one] => format!("the system {one}"),
        many => format!("one of the systems {}", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "rule_number,resource_type,attribute_path,value_set,mandatory,has_term,systems,additional_validation,conditional_systems,path1_name,path1_type,path1_url,path1_ref_allowed,path2_name,path2_type,path2_url,path2_ref_allowed,path3_name,path3_type,path3_url,path3_ref_allowed,path4_name,path4_type,path4_url,path4_ref_allowed,path5_name,path5_type,path5_url,path5_ref_allowed\n";
    const EMPTY: &str =
        "renumbered: []\nduplicated_blocks: []\nshared_numbers: []\nnot_checked: []\n";

    #[test]
    fn a_row_derives_its_checks() {
        let csv = format!(
            "{HEADER}10123,Encounter,,,true,false,,,,period,Object,,,start,dateTime,,,,,,,,,,,,,,\n10117,Encounter,,,true,false,http://sys-ids.kemkes.go.id/encounter/:id|http://sys-ids.kemkes.go.id/claim-number/:skipid,,,identifier,Identifier,,,,,,,,,,,,,,,,,,\n10780,Encounter,,,false,false,,,,basedOn,ReferenceArray,,ServiceRequest,,,,,,,,,,,,,,,,\n"
        );
        let t = Table::load(&csv, EMPTY).unwrap();
        assert_eq!(t.rows[0].path(), "period.start");
        assert_eq!(t.rows[0].aspects(), vec![Aspect::Required, Aspect::Time]);
        let time = t.rows[0].derive(Aspect::Time).unwrap();
        assert!(matches!(time[0].check, Check::Datetime));
        assert!(matches!(&time[2].check, Check::NotBefore(d) if d == EARLIEST));
        let sys = t.rows[1].derive(Aspect::Systems).unwrap();
        match &sys[0].check {
            Check::SystemIn(s) => assert_eq!(
                s,
                &vec![
                    "http://sys-ids.kemkes.go.id/encounter/{org}".to_string(),
                    "http://sys-ids.kemkes.go.id/claim-number/{any-org}".to_string()
                ]
            ),
            other => panic!("{other:?}"),
        }
        let refs = t.rows[2].derive(Aspect::References).unwrap();
        assert!(
            matches!(&refs[0].check, Check::ReferenceTo(t) if t == &vec!["ServiceRequest".to_string()])
        );
    }

    #[test]
    fn copy_errors_must_be_listed() {
        let csv = format!("{HEADER}106834,Patient,,,false,false,,,,name,Array,,,,,,,,,,,,,,,,,,\n");
        let err = Table::load(&csv, EMPTY).err().unwrap();
        assert!(err.contains("renumbered"), "{err}");
        let ex = "renumbered: [{line: 2, number: '106834', read_as: 10684, reason: a digit too many}]\nduplicated_blocks: []\nshared_numbers: []\nnot_checked: []\n";
        let t = Table::load(&csv, ex).unwrap();
        assert_eq!(t.rows[0].number, Some(10684));

        let twice = format!(
            "{HEADER}10710,RiskAssessment,,,true,false,,,,status,Code,,,,,,,,,,,,,,,,,,\n10710,RiskAssessment,,,true,false,,,,status,Code,,,,,,,,,,,,,,,,,,\n"
        );
        assert!(
            Table::load(&twice, EMPTY)
                .err()
                .unwrap()
                .contains("duplicated_blocks")
        );
        let ex = "renumbered: []\nduplicated_blocks: [{resource: RiskAssessment, from: 10710, to: 10728, reason: pasted twice}]\nshared_numbers: []\nnot_checked: []\n";
        assert_eq!(Table::load(&twice, ex).unwrap().rows.len(), 1);

        let shared = format!(
            "{HEADER}10174,Encounter,,,false,false,,,,statusHistory,Array,,,,,,,,,,,,,,,,,,\n10174,Coverage,,,true,false,,,,identifier,Identifier,,,,,,,,,,,,,,,,,,\n"
        );
        assert!(
            Table::load(&shared, EMPTY)
                .err()
                .unwrap()
                .contains("shared_numbers")
        );
    }
}
