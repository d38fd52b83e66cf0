//! The rules page (`gerbang rules`): every SATUSEHAT rule gerbang knows — number, resource,
//! element, what it checks, severity and the evidence for it — and the rule table's aspects
//! that are not checked offline, with why. Pure: rules in, text out.

use super::rule_load::Covered;
use super::rule_table::Aspect;
use super::rules::Rules;
use crate::fhir::Severity;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// How much of the rule table gerbang checks.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tally {
    /// Distinct rule numbers in the table.
    pub numbers: usize,
    /// … of which every aspect is checked offline.
    pub fully: usize,
    /// … of which some aspect is checked, some not.
    pub partly: usize,
}

/// Per resource type (`None` = the whole table): distinct (number, resource) rules, and how
/// many gerbang checks fully or partly.
pub fn tally(rules: &Rules, resource: Option<&str>) -> Tally {
    let mut state: BTreeMap<(u32, &str), (bool, bool)> = BTreeMap::new();
    for row in rules.coverage() {
        let Some(n) = row.number else { continue };
        if resource.is_some_and(|r| r != row.resource) {
            continue;
        }
        let e = state.entry((n, &row.resource)).or_insert((false, true));
        for (_, c) in &row.aspects {
            match c {
                Covered::NotChecked(_) => e.1 = false,
                _ => e.0 = true,
            }
        }
        if row.aspects.is_empty() {
            // Only a type: the R4 layer checks it.
            e.0 = true;
        }
    }
    let numbers: BTreeSet<u32> = state.keys().map(|(n, _)| *n).collect();
    let fully: BTreeSet<u32> = state
        .iter()
        .filter(|(_, (some, all))| *some && *all)
        .map(|((n, _), _)| *n)
        .collect();
    let partly: BTreeSet<u32> = state
        .iter()
        .filter(|(_, (some, all))| *some && !*all)
        .map(|((n, _), _)| *n)
        .filter(|n| !fully.contains(n))
        .collect();
    Tally {
        numbers: numbers.len(),
        fully: fully.len(),
        partly: partly.len(),
    }
}

/// The page, for one resource type or all.
pub fn render(rules: &Rules, resource: Option<&str>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<6} {:<22} {:<44} {:<8} {:<13} {:<9} CHECKS",
        "RULE", "RESOURCE", "ELEMENT", "SEVERITY", "EVIDENCE", "OFFLINE"
    );
    let mut resources: Vec<&str> = rules
        .all()
        .map(|r| r.resource.as_str())
        .chain(rules.coverage().iter().map(|c| c.resource.as_str()))
        .filter(|r| resource.is_none_or(|x| x == *r))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    resources.sort();
    for rt in resources {
        let mut lines: Vec<(u32, String)> = Vec::new();
        for r in rules.for_resource(rt) {
            let sev = match r.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                _ => "info",
            };
            let mut what = r.check.describe();
            if r.when.is_some() {
                what.push_str(" (under a condition)");
            }
            lines.push((
                r.rule.unwrap_or(0),
                format!(
                    "{:<6} {:<22} {:<44} {:<8} {:<13} {:<9} {}",
                    r.rule.map_or("-".into(), |n| n.to_string()),
                    rt,
                    r.path,
                    sev,
                    r.evidence.as_str(),
                    "yes",
                    what
                ),
            ));
        }
        for row in rules.coverage().iter().filter(|c| c.resource == rt) {
            for (aspect, c) in &row.aspects {
                if let Covered::NotChecked(why) = c {
                    lines.push((
                        row.number.unwrap_or(0),
                        format!(
                            "{:<6} {:<22} {:<44} {:<8} {:<13} {:<9} {}: {why}",
                            row.number.map_or("-".into(), |n| n.to_string()),
                            rt,
                            row.path,
                            "-",
                            "rule table",
                            "no",
                            aspect_words(*aspect)
                        ),
                    ));
                }
            }
        }
        lines.sort_by_key(|(n, _)| *n);
        for (_, l) in lines {
            let _ = writeln!(out, "{}", l.trim_end());
        }
    }
    let t = tally(rules, resource);
    let _ = writeln!(
        out,
        "\n{} of the rule table's {} rule numbers{} checked offline in full, {} in part",
        t.fully,
        t.numbers,
        resource.map(|r| format!(" for {r}")).unwrap_or_default(),
        t.partly
    );
    out
}

fn aspect_words(a: Aspect) -> &'static str {
    match a {
        Aspect::Required => "required",
        Aspect::Conditional => "required under a condition",
        Aspect::Systems => "allowed systems",
        Aspect::ConditionalSystems => "systems allowed under a condition",
        Aspect::References => "reference targets",
        Aspect::Time => "date-time",
        Aspect::Positive => "greater than zero",
        Aspect::NotEmpty => "not blank",
        Aspect::Custom => "custom check",
    }
}
