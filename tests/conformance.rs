//! The conformance corpus (`tests/conformance/`): for every SATUSEHAT rule gerbang enforces,
//! at least one resource that breaks it and the exact issue expected; and valid
//! SATUSEHAT-style resources, written from the playbooks, that must produce no error and no
//! warning.
//!
//! A case file (`invalid/*.json`):
//! ```json
//! {"description": "…", "org": "1000000001", "resource": {…},
//!  "expect": [{"severity": "error", "rule": 10118, "expression": "Encounter.subject"}]}
//! ```
//! Every expected issue must be reported exactly (severity, expression, rule number; `code`
//! and `text` — a substring — when given). Coverage is checked too: every rule of
//! `profiles/satusehat/rules.yaml` must be reported by at least one case.

use gerbang::fhir::{Issue, Severity};
use gerbang::profile::{Context, Validator};
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    description: String,
    #[serde(default)]
    org: Option<String>,
    resource: Value,
    #[serde(default)]
    expect: Vec<Expected>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    severity: Severity,
    #[serde(default)]
    rule: Option<u32>,
    expression: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn cases(dir: &str) -> Vec<(String, Case)> {
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(root().join("tests/conformance").join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for p in paths
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let case: Case = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        out.push((name, case));
    }
    out
}

fn run(validator: &Validator, case: &Case) -> Vec<Issue> {
    let org = case.org.as_deref().or(Some("1000000001"));
    validator
        .validate(
            &case.resource,
            &Context {
                organization_id: org,
                now: chrono::Utc::now(),
            },
        )
        .issues
}

fn matches(e: &Expected, i: &Issue) -> bool {
    i.severity == e.severity
        && i.rule == e.rule
        && i.expression.as_deref() == Some(e.expression.as_str())
        && e.code.as_ref().is_none_or(|c| i.code.as_str() == c)
        && e.text.as_ref().is_none_or(|t| i.text.contains(t.as_str()))
}

#[test]
fn every_invalid_case_reports_exactly_the_expected_issues() {
    let validator = Validator::load(&root().join("profiles")).unwrap();
    let cases = cases("invalid");
    assert!(
        cases.len() >= 100,
        "the corpus has {} invalid cases",
        cases.len()
    );
    let mut failures = Vec::new();
    for (name, case) in &cases {
        assert!(
            !case.expect.is_empty(),
            "{name}: an invalid case names the issue it expects"
        );
        let issues = run(&validator, case);
        for e in &case.expect {
            if !issues.iter().any(|i| matches(e, i)) {
                failures.push(format!(
                    "{name} ({}): expected {:?} [{:?}] at {}; got:\n    {}",
                    case.description,
                    e.severity,
                    e.rule,
                    e.expression,
                    issues
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join("\n    ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn valid_satusehat_style_resources_pass_without_warnings() {
    let validator = Validator::load(&root().join("profiles")).unwrap();
    let cases = cases("valid");
    assert!(
        cases.len() >= 15,
        "the corpus has {} valid resources",
        cases.len()
    );
    let mut failures = Vec::new();
    for (name, case) in &cases {
        let bad: Vec<String> = run(&validator, case)
            .into_iter()
            .filter(|i| i.severity != Severity::Information)
            .map(|i| i.to_string())
            .collect();
        if !bad.is_empty() {
            failures.push(format!(
                "{name} ({}):\n    {}",
                case.description,
                bad.join("\n    ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_rule_is_broken_by_at_least_one_case() {
    let validator = Validator::load(&root().join("profiles")).unwrap();
    let rules: Vec<Value> = serde_saphyr::from_str(
        &std::fs::read_to_string(root().join("profiles/satusehat/rules.yaml")).unwrap(),
    )
    .unwrap();
    let reported: Vec<Issue> = cases("invalid")
        .iter()
        .flat_map(|(_, c)| run(&validator, c))
        .collect();
    let uncovered: Vec<String> = rules
        .iter()
        .filter(|r| {
            let text = r["text"].as_str().unwrap();
            let number = r["rule"].as_u64().map(|n| n as u32);
            !reported
                .iter()
                .any(|i| i.rule == number && i.text.starts_with(text))
        })
        .map(|r| {
            format!(
                "{} {} {} ({})",
                r["rule"]
                    .as_u64()
                    .map_or("-".to_string(), |n| n.to_string()),
                r["resource"].as_str().unwrap(),
                r["path"].as_str().unwrap(),
                r["text"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        uncovered.is_empty(),
        "{} rule(s) no case breaks:\n{}",
        uncovered.len(),
        uncovered.join("\n")
    );
}
