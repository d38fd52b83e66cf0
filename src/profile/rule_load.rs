//! Loading SATUSEHAT's rules: the hand-written rules of `rules.yaml` checked against the rule
//! table and their evidence, then every row's aspects derived, taken by hand or excepted —
//! and how each row ends up covered, for the rules page and the tests. The checks themselves
//! are in `rules.rs`.

use super::rule_table::{Aspect, Row as TableRow, Table};
use super::rules::{Check, Evidence, Rule, Rules};
use crate::fhir::Severity;
use foldhash::{HashMap, HashMapExt, HashSet};

/// How one aspect of a table row is checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Covered {
    /// Derived from the row itself.
    Derived,
    /// By a rule written in rules.yaml (a condition, a custom check, a better text).
    ByHand,
    /// Not checked offline, and why (the exceptions file, or terminology gerbang lacks).
    NotChecked(String),
}

/// One row of the rule table and how gerbang covers what it asks.
#[derive(Debug, Clone)]
pub struct RowCoverage {
    pub line: usize,
    pub number: Option<u32>,
    pub resource: String,
    pub path: String,
    pub aspects: Vec<(Aspect, Covered)>,
}

/// What the loader needs from the terminology layer: the whole code list of a code system,
/// where gerbang holds one.
pub type CodeLookup<'a> = &'a dyn Fn(&str) -> Option<HashSet<String>>;

impl Rules {
    /// rules.yaml over the rule table: the hand-written rules checked against the table and
    /// their evidence, then every row's aspects derived, taken by hand, or excepted. Any row
    /// left uncovered is a load error that names it.
    pub fn load(yaml: &str, table: &Table, codes: CodeLookup) -> Result<Rules, String> {
        let mut hand: Vec<Rule> = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        let mut problems = Vec::new();
        let rows_of = |n: u32, res: &str| -> Vec<&TableRow> {
            table
                .rows
                .iter()
                .filter(|r| r.number == Some(n) && r.resource == res)
                .collect()
        };
        for r in &mut hand {
            let name = format!(
                "rule {} {} {} ({})",
                r.rule.map_or("-".into(), |n| n.to_string()),
                r.resource,
                r.path,
                r.check.kind()
            );
            let rows: Vec<&TableRow> = r
                .rule
                .map(|n| rows_of(n, &r.resource))
                .unwrap_or_default()
                .into_iter()
                .filter(|row| same_element(&r.path, &row.path()))
                .collect();
            if r.evidence == Evidence::Unstated {
                r.evidence = match r.rule {
                    Some(_) if !rows.is_empty() => Evidence::Table,
                    Some(_) => Evidence::Kamus,
                    None => {
                        problems.push(format!("{name}: a rule without a SATUSEHAT number states its `evidence` (r4 or seen)"));
                        continue;
                    }
                };
            }
            if r.evidence == Evidence::Seen && r.source.is_none() {
                problems.push(format!("{name}: evidence `seen` names its `source`"));
            }
            if r.evidence == Evidence::Table && rows.is_empty() {
                problems.push(format!(
                    "{name}: evidence `table`, but the rule table has no such number for {}",
                    r.resource
                ));
            }
            if r.evidence == Evidence::Table
                && matches!(r.check, Check::Required)
                && r.severity == Severity::Error
            {
                let mandatory = rows.iter().any(|x| x.mandatory && !x.has_term);
                let conditional = rows.iter().any(|x| x.has_term);
                if !mandatory && !(conditional && r.when.is_some()) {
                    problems.push(format!(
                        "{name}: the rule table marks this {}; make it a warning, give its condition in `when`, or cite a server that refused it (evidence: seen)",
                        if conditional { "required only under a condition" } else { "optional" }
                    ));
                }
            }
            // The table backs an error only for what its rows say of the element.
            if r.evidence == Evidence::Table && r.severity == Severity::Error {
                let says = |f: &dyn Fn(&TableRow) -> bool| rows.iter().any(|x| f(x));
                let backed = match &r.check {
                    Check::Required => true, // checked above, with its condition
                    // Systems, or codes of the row's code system.
                    Check::SystemIn(_)
                    | Check::AnySystem(_)
                    | Check::CodeIn(_)
                    | Check::OneOf(_) => says(&|x| !x.systems.is_empty()),
                    Check::ReferenceTo(_) | Check::AnyReferenceTo(_) => {
                        says(&|x| x.steps.iter().any(|s| !s.ref_allowed.is_empty()))
                    }
                    Check::Utc | Check::Datetime | Check::NotFuture | Check::NotBefore(_) => {
                        says(&|x| x.aspects().contains(&Aspect::Time))
                    }
                    Check::Custom(name) => says(&|x| x.custom.as_deref() == Some(name.as_str())),
                    Check::Positive | Check::NotNegative => {
                        says(&|x| x.aspects().contains(&Aspect::Positive))
                    }
                    Check::NotBlank => says(&|x| x.aspects().contains(&Aspect::NotEmpty)),
                    // Not a kind of check the table has (the order of two times): its
                    // evidence must be stated.
                    Check::After(_) => false,
                };
                if !backed {
                    problems.push(format!(
                        "{name}: the rule table's row says nothing of this ({}); state the evidence for an error (seen, r4) or make it a warning",
                        r.check.kind()
                    ));
                }
            }
            if r.evidence == Evidence::Kamus && r.severity == Severity::Error {
                problems.push(format!(
                    "{name}: only the Kamus wording supports it, so it is a warning, not an error"
                ));
            }
            if r.evidence == Evidence::Gerbang && r.severity == Severity::Error {
                problems.push(format!("{name}: gerbang's own advice is a warning, not an error (SATUSEHAT was not seen refusing it)"));
            }
            if let Check::Custom(c) = &r.check {
                if !super::custom::IMPLEMENTED.contains(&c.as_str()) {
                    problems.push(format!("{name}: no custom check named {c}"));
                }
            }
        }
        let by_hand = |row: &TableRow, kind: &str| {
            let path = row.path();
            row.number.is_some_and(|n| {
                hand.iter().any(|r| {
                    r.rule == Some(n)
                        && r.resource == row.resource
                        && r.check.kind() == kind
                        && same_element(&r.path, &path)
                })
            })
        };
        let mut derived = Vec::new();
        let mut coverage = Vec::new();
        let mut code_sets: HashMap<String, HashSet<String>> = HashMap::new();
        for row in &table.rows {
            let mut aspects = Vec::new();
            for aspect in row.aspects() {
                let excepted = table.not_checked(row.number, &row.resource, aspect);
                let covered = match aspect {
                    // Systems allowed only to some senders: gerbang cannot tell offline.
                    Aspect::ConditionalSystems => {
                        excepted.map(|x| Covered::NotChecked(x.reason.clone()))
                    }
                    Aspect::Conditional | Aspect::Custom => {
                        let kind = match aspect {
                            Aspect::Conditional => "required",
                            _ => "custom",
                        };
                        if by_hand(row, kind) {
                            Some(Covered::ByHand)
                        } else {
                            excepted.map(|x| Covered::NotChecked(x.reason.clone()))
                        }
                    }
                    _ => match row.derive(aspect) {
                        Some(rules) => {
                            let mut any = false;
                            for r in rules {
                                if by_hand(row, r.check.kind()) {
                                    continue;
                                }
                                any = true;
                                derived.push(r);
                            }
                            Some(if any {
                                Covered::Derived
                            } else {
                                Covered::ByHand
                            })
                        }
                        None if aspect == Aspect::Systems => {
                            let leaf = row.steps.last().map_or("", |s| s.kind.as_str());
                            if by_hand(row, "system-in")
                                || by_hand(row, "custom")
                                || by_hand(row, "one-of")
                            {
                                Some(Covered::ByHand)
                            } else if let Some(x) = excepted {
                                Some(Covered::NotChecked(x.reason.clone()))
                            } else if matches!(leaf, "Code" | "code" | "CodeArray") {
                                let known: Vec<(String, HashSet<String>)> = row
                                    .systems
                                    .iter()
                                    .filter_map(|s| codes(s).map(|c| (s.clone(), c)))
                                    .collect();
                                if known.len() == row.systems.len() {
                                    for (s, c) in known {
                                        code_sets.insert(s, c);
                                    }
                                    derived.push(Rule {
                                        rule: row.number,
                                        resource: row.resource.clone(),
                                        path: row.path(),
                                        check: Check::CodeIn(row.systems.clone()),
                                        when: None,
                                        severity: Severity::Error,
                                        evidence: Evidence::Table,
                                        source: None,
                                        from_table: true,
                                        not_for_lookups: false,
                                        text: format!(
                                            "{}.{} must be a code of {} (SATUSEHAT's rule table)",
                                            row.resource,
                                            row.path(),
                                            row.systems.join(" or ")
                                        ),
                                    });
                                    Some(Covered::Derived)
                                } else {
                                    Some(Covered::NotChecked(format!(
                                        "terminology: the codes of {} are not available offline",
                                        row.systems.join(", ")
                                    )))
                                }
                            } else {
                                None
                            }
                        }
                        None => excepted.map(|x| Covered::NotChecked(x.reason.clone())),
                    },
                };
                match covered {
                    Some(c) => aspects.push((aspect, c)),
                    None => problems.push(format!(
                        "validation-rules.csv line {}: rule {} {} {} — its {} aspect is neither implemented (rules.yaml) nor listed in rule-table-exceptions.yaml",
                        row.line,
                        row.number.map_or("-".into(), |n| n.to_string()),
                        row.resource,
                        row.path(),
                        aspect.as_str()
                    )),
                }
            }
            coverage.push(RowCoverage {
                line: row.line,
                number: row.number,
                resource: row.resource.clone(),
                path: row.path(),
                aspects,
            });
        }
        if !problems.is_empty() {
            return Err(format!(
                "{} problem(s) with SATUSEHAT's rules:\n  {}",
                problems.len(),
                problems.join("\n  ")
            ));
        }
        hand.extend(derived);
        Self::build(hand, code_sets, coverage)
    }
}

/// Whether a rules.yaml path and a rule-table path name the same element: extension url
/// filters and `[x]` choices aside (`occurrence[x]` is `occurrenceDateTime`).
fn same_element(hand: &str, table: &str) -> bool {
    fn bare(p: &str) -> String {
        super::path::steps(p)
            .map(|s| s.split('[').next().unwrap_or(s).trim_end_matches('*'))
            .collect::<Vec<_>>()
            .join(".")
    }
    match hand.strip_suffix("[x]") {
        Some(prefix) => {
            let t = bare(table);
            let p = bare(prefix);
            t.strip_prefix(&p)
                .and_then(|rest| rest.chars().next())
                .is_some_and(char::is_uppercase)
        }
        None => bare(hand) == bare(table),
    }
}
