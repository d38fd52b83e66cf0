//! SATUSEHAT's rule table (`profiles/satusehat/validation-rules.csv`) is the source of the
//! rules: every row is implemented or excepted with a reason, and every check derived from a
//! row is enforced. For each derived check this builds, from the row's own path steps, a
//! resource that breaks it — expecting that exact issue (rule number, severity, location) —
//! and one that passes it.

use gerbang::fhir::{Issue, Severity};
use gerbang::profile::rule_load::Covered;
use gerbang::profile::rule_table::{Aspect, Row, Step, Table};
use gerbang::profile::rules::{Check, Rule};
use gerbang::profile::{Context, Validator};
use serde_json::{Map, Value, json};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap()
}

fn table() -> Table {
    Table::load(
        &read("profiles/satusehat/validation-rules.csv"),
        &read("profiles/satusehat/rule-table-exceptions.yaml"),
    )
    .unwrap()
}

const ORG: &str = "1000000001";

fn validate(v: &Validator, resource: &Value) -> Vec<Issue> {
    v.validate(
        resource,
        &Context {
            organization_id: Some(ORG),
            now: chrono::Utc::now(),
        },
    )
    .issues
}

#[test]
fn every_row_of_the_table_is_implemented_or_excepted() {
    let validator = Validator::load(&root().join("profiles")).unwrap();
    let table = table();
    let coverage = validator.rules().coverage();
    assert_eq!(
        coverage.len(),
        table.rows.len(),
        "one coverage line per row"
    );
    // 1,161 lines less the pasted-twice copies.
    assert!(table.rows.len() > 1050, "{} rows", table.rows.len());
    for (row, cov) in table.rows.iter().zip(coverage) {
        let aspects: Vec<Aspect> = cov.aspects.iter().map(|(a, _)| *a).collect();
        assert_eq!(
            aspects,
            row.aspects(),
            "line {}: every aspect is covered",
            row.line
        );
    }
    // Every exception names an aspect some row has: a stale exception is an error too.
    for x in &table.exceptions.not_checked {
        let used = coverage.iter().any(|c| {
            c.number == Some(x.rule)
                && c.resource == x.resource
                && c.aspects.iter().any(|(a, cov)| {
                    a.as_str() == x.aspect
                        && matches!(cov, Covered::NotChecked(r) if *r == x.reason)
                })
        });
        assert!(
            used,
            "exception {} {} {} matches no uncovered aspect",
            x.rule, x.resource, x.aspect
        );
    }
}

#[test]
fn a_row_neither_implemented_nor_excepted_stops_the_validator_from_loading() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root().join("profiles"), dir.path());
    let path = dir.path().join("satusehat/rule-table-exceptions.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("rule: 10982"))
        .expect("AppointmentSlotCheck is excepted")
        .to_string();
    std::fs::write(&path, text.replace(&format!("{line}\n"), "")).unwrap();
    let err = Validator::load(dir.path())
        .err()
        .expect("load fails")
        .to_string();
    assert!(err.contains("10982 Appointment slot"), "{err}");
    assert!(
        err.contains("custom aspect is neither implemented"),
        "{err}"
    );
}

#[test]
fn an_error_the_table_row_does_not_say_stops_the_validator_from_loading() {
    // Row 10376 names ServiceRequest.requester but no reference target: a rule that makes a
    // narrower target an error on the table's word alone is refused.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root().join("profiles"), dir.path());
    let path = dir.path().join("satusehat/rules.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(
        "- {rule: 10376, resource: ServiceRequest, path: requester, check: {reference-to: [Practitioner]}, severity: error, evidence: table, text: requester must be a Practitioner}\n",
    );
    std::fs::write(&path, text).unwrap();
    let err = Validator::load(dir.path())
        .err()
        .expect("load fails")
        .to_string();
    assert!(
        err.contains("the rule table's row says nothing of this (reference-to)"),
        "{err}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn is_array(kind: &str) -> bool {
    matches!(
        kind,
        "Array" | "ReferenceArray" | "CodingArray" | "CodeArray" | "LoopedArray" | "Extension"
    )
}

/// A value of the leaf's type that passes every derived check of the row.
fn good_leaf(row: &Row, step: &Step) -> Value {
    let system = row
        .systems
        .first()
        .map(|s| {
            format!("{s}/")
                .replace("/:id/", &format!("/{ORG}/"))
                .replace("/:skipid/", "/123/")
        })
        .map(|s| s.trim_end_matches('/').to_string());
    let target = step.ref_allowed.first().map_or("Patient", String::as_str);
    match step.kind.as_str() {
        "Reference" | "ReferenceArray" => json!({"reference": format!("{target}/1")}),
        "CodeableConcept" => {
            json!({"coding": [{"system": system.unwrap_or("http://example.org".into()), "code": "x"}]})
        }
        "Coding" | "CodingArray" => {
            json!({"system": system.unwrap_or("http://example.org".into()), "code": "x"})
        }
        "Identifier" => {
            json!({"system": system.unwrap_or("http://example.org".into()), "value": "x"})
        }
        "dateTime"
        | "FutureDateTime"
        | "dateTimeWithoutLimit"
        | "CoverageDateTime"
        | "ImmunizationDateTime" => json!("2026-01-01T00:00:00+00:00"),
        "PatientDateTime" | "Date" | "FutureDate" => json!("2026-01-01"),
        "Code" | "code" | "CodeArray" => json!(first_code(&row.systems)),
        "Boolean" | "boolean" => json!(true),
        "Integer" | "positiveInteger" | "Decimal" | "positiveDecimal" => json!(1),
        "Money" => json!({"value": 1, "currency": "IDR"}),
        "Array" | "Object" | "LoopedArray" => json!({"text": "x"}),
        _ => json!("x"),
    }
}

/// A code of the first of these systems gerbang holds whole (R4's code systems).
fn first_code(systems: &[String]) -> String {
    static CODES: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let codes =
        CODES.get_or_init(|| serde_json::from_str(&read("profiles/r4/code-systems.json")).unwrap());
    systems
        .iter()
        .find_map(|s| codes[s.as_str()][0].as_str())
        .unwrap_or("x")
        .to_string()
}

/// The resource `{resourceType, …}` with `leaf` at the row's path, every step's container
/// built from its type; and the location the validator names for the leaf.
fn build(row: &Row, leaf: Value) -> (Value, String) {
    let steps = &row.steps;
    let mut value = leaf;
    for (i, s) in steps.iter().enumerate().rev() {
        if i == steps.len() - 1 {
            if is_array(&s.kind) && s.kind != "Extension" {
                value = json!([value]);
            }
        }
        if i > 0 {
            let parent = &steps[i - 1];
            let mut m = Map::new();
            if parent.kind == "Extension" && !parent.url.is_empty() {
                m.insert("url".into(), json!(parent.url));
            }
            m.insert(s.name.clone(), value);
            value = Value::Object(m);
            if is_array(&parent.kind) {
                value = json!([value]);
            }
        }
    }
    let mut resource = Map::new();
    resource.insert("resourceType".into(), json!(row.resource));
    resource.insert(steps[0].name.clone(), value);
    let mut loc = row.resource.clone();
    for s in steps {
        loc.push('.');
        loc.push_str(&s.name);
        if is_array(&s.kind) {
            loc.push_str("[0]");
        }
    }
    (Value::Object(resource), loc)
}

/// The value that breaks `check`, and where the issue is expected (relative to the leaf).
fn breaking(rule: &Rule, row: &Row, leaf: &Step) -> Option<(Value, String)> {
    Some(match &rule.check {
        Check::SystemIn(_) => match leaf.kind.as_str() {
            "CodeableConcept" => (
                json!({"coding": [{"system": "http://example.org/not-allowed", "code": "x"}]}),
                ".coding[0].system".into(),
            ),
            "Identifier" => (
                json!({"system": "http://example.org/not-allowed", "value": "x"}),
                ".system".into(),
            ),
            _ => (
                json!({"system": "http://example.org/not-allowed", "code": "x"}),
                ".system".into(),
            ),
        },
        Check::ReferenceTo(_) => (json!({"reference": "Basic/1"}), ".reference".into()),
        Check::Datetime => (json!("2026-01-01"), String::new()),
        Check::NotFuture => (json!("2999-01-01T00:00:00+00:00"), String::new()),
        Check::NotBefore(_) => (json!("2010-01-01T00:00:00+00:00"), String::new()),
        Check::Positive => (json!(0), String::new()),
        Check::NotNegative => (json!(-1), String::new()),
        Check::NotBlank => (json!(" "), String::new()),
        Check::CodeIn(_) => (json!("not-a-code"), String::new()),
        _ => {
            let _ = row;
            return None;
        }
    })
}

#[test]
fn every_check_derived_from_a_row_is_broken_and_passed() {
    let validator = Validator::load(&root().join("profiles")).unwrap();
    let table = table();
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut skipped = Vec::new();
    for (row, cov) in table.rows.iter().zip(validator.rules().coverage()) {
        for (aspect, covered) in &cov.aspects {
            if *covered != Covered::Derived {
                continue;
            }
            let steps_path: Vec<&str> = row.steps.iter().map(|s| s.name.as_str()).collect();
            if row
                .attribute_path
                .as_ref()
                .is_some_and(|p| p[row.resource.len() + 1..] != steps_path.join("."))
            {
                skipped.push(format!("line {}: {}", row.line, row.path()));
                continue;
            }
            let derived: Vec<Rule> = match row.derive(*aspect) {
                Some(d) => d,
                None => validator
                    .rules()
                    .for_resource(&row.resource)
                    .iter()
                    .filter(|r| {
                        r.from_table
                            && r.rule == row.number
                            && matches!(r.check, Check::CodeIn(_))
                            && r.path == row.path()
                    })
                    .cloned()
                    .collect(),
            };
            for rule in derived {
                // A rule written by hand replaces a derived one of the same kind.
                let live = validator
                    .rules()
                    .for_resource(&row.resource)
                    .iter()
                    .any(|r| {
                        r.from_table
                            && r.rule == rule.rule
                            && r.path == rule.path
                            && r.check.kind() == rule.check.kind()
                    });
                if !live {
                    continue;
                }
                let Some(leaf) = row.steps.last() else {
                    continue;
                };
                let good = good_leaf(row, leaf);
                let (passing, loc) = build(row, good.clone());
                let expect = |issues: &[Issue], at: &str| {
                    issues.iter().any(|i| {
                        i.rule == rule.rule
                            && i.severity == Severity::Error
                            && i.expression.as_deref() == Some(at)
                    })
                };
                let (bad, at) = match &rule.check {
                    Check::Required => {
                        let mut r = passing.clone();
                        r.as_object_mut().unwrap().remove(&row.steps[0].name);
                        (r, format!("{}.{}", row.resource, rule.path))
                    }
                    Check::ReferenceTo(_) => {
                        // The reference may sit on an inner step: build the path to it.
                        let depth = rule.path.split('.').count();
                        let mut inner = row.clone();
                        inner.steps.truncate(depth);
                        let (r, l) = build(&inner, json!({"reference": "Basic/1"}));
                        (r, format!("{l}.reference"))
                    }
                    _ => match breaking(&rule, row, leaf) {
                        Some((v, suffix)) => {
                            let (r, l) = build(row, v);
                            (r, format!("{l}{suffix}"))
                        }
                        None => {
                            failures.push(format!(
                                "line {}: no breaking value for {:?}",
                                row.line, rule.check
                            ));
                            continue;
                        }
                    },
                };
                checked += 1;
                let issues = validate(&validator, &bad);
                if !expect(&issues, &at) {
                    failures.push(format!(
                        "line {} rule {:?} {} {}: expected an error at {at}; got\n    {}",
                        row.line,
                        rule.rule,
                        row.resource,
                        rule.check.kind(),
                        issues
                            .iter()
                            .map(|i| i.to_string())
                            .collect::<Vec<_>>()
                            .join("\n    ")
                    ));
                }
                let issues = validate(&validator, &passing);
                let wrong: Vec<String> = issues
                    .iter()
                    .filter(|i| {
                        i.rule == rule.rule
                            && i.severity == Severity::Error
                            && i.expression.as_deref().is_some_and(|e| e.starts_with(&loc))
                    })
                    .filter(|i| i.text.starts_with(&rule.text))
                    .map(|i| i.to_string())
                    .collect();
                if !wrong.is_empty() {
                    failures.push(format!(
                        "line {} rule {:?} {} {}: the passing resource {passing} is refused:\n    {}",
                        row.line,
                        rule.rule,
                        row.resource,
                        rule.check.kind(),
                        wrong.join("\n    ")
                    ));
                }
            }
        }
    }
    assert!(skipped.len() <= 3, "rows skipped: {skipped:?}");
    assert!(checked > 400, "only {checked} derived checks exercised");
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
