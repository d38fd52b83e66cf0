//! The mapping test harness (`gerbang mappings test`, and `cargo test`): every example of every
//! record type is mapped and checked against its reviewed golden Bundle and against the rules
//! no mapping may break (after FHIR-Converter's rule-based tests):
//!
//! - the output equals `examples/<name>.bundle.json` (a readable diff if not);
//! - the same input gives a byte-identical Bundle;
//! - every reference resolves inside the Bundle (or names a SATUSEHAT master resource:
//!   Organization, Location, or a resource already known upstream by its id);
//! - no null, empty string, empty array or empty object;
//! - every dateTime with a time part is UTC (`+00:00`);
//! - every resource carries an identifier;
//! - the Bundle passes the profile engine with no error.

use super::{Mappings, Sender};
use crate::fhir;
use crate::profile::{Context, Validator};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The sender every golden Bundle is produced for: the sandbox's demo organization and
/// Location.
pub const GOLDEN_ORG: &str = crate::sandbox::DEMO_ORGANIZATION;

pub fn golden_location() -> String {
    crate::sandbox::demo_location()
}

#[derive(Debug)]
pub struct ExampleReport {
    pub record_type: String,
    pub name: String,
    pub input: PathBuf,
    /// Empty when the example passes.
    pub problems: Vec<String>,
}

/// The name of the report on a folder that holds too few examples (not an example itself).
const TOO_FEW_EXAMPLES: &str = "(examples)";

impl ExampleReport {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    /// Whether this reports on one example, rather than on a folder with too few of them.
    pub fn is_example(&self) -> bool {
        self.name != TOO_FEW_EXAMPLES
    }
}

/// Input files of a record type's examples, sorted.
pub fn example_inputs(dir: &Path) -> Vec<PathBuf> {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(dir.join("examples"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    inputs.retain(|p| p.to_string_lossy().ends_with(".input.json"));
    inputs.sort();
    inputs
}

/// Run every example (of `only` record type, if given).
pub fn run(mappings: &Mappings, validator: &Validator, only: Option<&str>) -> Vec<ExampleReport> {
    let location = golden_location();
    let sender = Sender {
        organization_id: GOLDEN_ORG,
        location_id: &location,
    };
    let ctx = Context {
        organization_id: Some(GOLDEN_ORG),
        now: chrono::Utc::now(),
    };
    let mut reports = Vec::new();
    for rt in mappings
        .record_types()
        .filter(|rt| only.is_none_or(|o| o == rt.name()))
    {
        let inputs = example_inputs(&rt.dir);
        if inputs.len() < 3 {
            reports.push(ExampleReport {
                record_type: rt.name().to_string(),
                name: TOO_FEW_EXAMPLES.into(),
                input: rt.dir.join("examples"),
                problems: vec![format!(
                    "only {} example(s); every record type needs at least three",
                    inputs.len()
                )],
            });
        }
        for input in inputs {
            let name = input
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .replace(".input.json", "");
            let golden = input.with_file_name(format!("{name}.bundle.json"));
            let problems = check_example(
                mappings,
                validator,
                rt.name(),
                &input,
                &golden,
                &sender,
                &ctx,
            );
            reports.push(ExampleReport {
                record_type: rt.name().to_string(),
                name,
                input,
                problems,
            });
        }
        for (format, adapter) in &rt.adapters {
            let inputs = example_inputs(&adapter.dir);
            let label = format!("{}[{format}]", rt.name());
            if inputs.len() < 2 {
                reports.push(ExampleReport {
                    record_type: label.clone(),
                    name: TOO_FEW_EXAMPLES.into(),
                    input: adapter.dir.join("examples"),
                    problems: vec![format!(
                        "only {} example(s); every adapter needs at least two",
                        inputs.len()
                    )],
                });
            }
            for input in inputs {
                let name = input
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .replace(".input.json", "");
                let golden = input.with_file_name(format!("{name}.canonical.json"));
                let problems = check_adapter_example(
                    mappings,
                    validator,
                    rt.name(),
                    format,
                    &input,
                    &golden,
                    &sender,
                    &ctx,
                );
                reports.push(ExampleReport {
                    record_type: label.clone(),
                    name,
                    input,
                    problems,
                });
            }
        }
    }
    reports
}

/// An adapter example: the canonical record equals its golden file, and then maps and
/// validates like any canonical record.
#[allow(clippy::too_many_arguments)]
fn check_adapter_example(
    mappings: &Mappings,
    validator: &Validator,
    record_type: &str,
    format: &str,
    input: &Path,
    golden: &Path,
    sender: &Sender,
    ctx: &Context,
) -> Vec<String> {
    let record: Value = match read(input) {
        Ok(r) => r,
        Err(e) => return vec![e],
    };
    let canonical = match mappings.to_canonical(record_type, Some(format), &record, sender) {
        Ok(c) => c,
        Err(outcome) => {
            return outcome
                .issues
                .iter()
                .map(|i| format!("adapter failed: {i}"))
                .collect();
        }
    };
    let mut problems = Vec::new();
    let produced = serde_json::to_string_pretty(&canonical).expect("JSON");
    match read(golden) {
        Err(_) => problems.push(format!(
            "no golden canonical record {} — review `gerbang map {record_type} {} --format {format} --canonical` and save it there",
            golden.display(),
            input.display()
        )),
        Ok(expected) if expected != canonical => {
            let expected = serde_json::to_string_pretty(&expected).expect("JSON");
            problems.push(format!("canonical record differs from {}:\n{}", golden.display(), diff(&expected, &produced)));
        }
        Ok(_) => {}
    }
    match mappings.map_record(record_type, &canonical, sender) {
        Err(outcome) => problems.extend(
            outcome
                .issues
                .iter()
                .map(|i| format!("the canonical record does not map: {i}")),
        ),
        Ok(mapped) => {
            problems.extend(rule_problems(&mapped.bundle));
            let outcome = validator.validate(&mapped.bundle, ctx);
            problems.extend(
                outcome
                    .issues
                    .iter()
                    .filter(|i| i.is_error())
                    .map(|i| format!("profile engine: {i}")),
            );
        }
    }
    problems
}

fn read(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}

fn check_example(
    mappings: &Mappings,
    validator: &Validator,
    record_type: &str,
    input: &Path,
    golden: &Path,
    sender: &Sender,
    ctx: &Context,
) -> Vec<String> {
    let mut problems = Vec::new();
    let record: Value = match std::fs::read_to_string(input)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => return vec![format!("cannot read {}: {e}", input.display())],
    };
    let bundle = match mappings.map_record(record_type, &record, sender) {
        Ok(m) => m.bundle,
        Err(outcome) => {
            return outcome
                .issues
                .iter()
                .map(|i| format!("mapping failed: {i}"))
                .collect();
        }
    };
    let produced = serde_json::to_string_pretty(&bundle).expect("JSON");

    match std::fs::read_to_string(golden) {
        Err(_) => problems.push(format!(
            "no golden file {} — review the output (`gerbang map {record_type} {}`) and save it there",
            golden.display(),
            input.display()
        )),
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Err(e) => problems.push(format!("{} is not JSON: {e}", golden.display())),
            Ok(expected) if expected != bundle => {
                let expected = serde_json::to_string_pretty(&expected).expect("JSON");
                problems.push(format!("output differs from {}:\n{}", golden.display(), diff(&expected, &produced)));
            }
            Ok(_) => {}
        },
    }

    if let Ok(again) = mappings.map_record(record_type, &record, sender) {
        if serde_json::to_string_pretty(&again.bundle).expect("JSON") != produced {
            problems.push("mapping the same input twice gave different Bundles".into());
        }
    }
    problems.extend(rule_problems(&bundle));
    let outcome = validator.validate(&bundle, ctx);
    for issue in outcome.issues.iter().filter(|i| i.is_error()) {
        problems.push(format!("profile engine: {issue}"));
    }
    problems
}

/// The structural rules every mapped Bundle obeys.
pub fn rule_problems(bundle: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let urls: Vec<&str> = fhir::entries(bundle).filter_map(|e| e.full_url).collect();
    for e in fhir::entries(bundle) {
        let Some(resource) = e.resource else {
            problems.push(format!("entry[{}] has no resource", e.index));
            continue;
        };
        for (path, r) in fhir::references(resource) {
            let resolves = urls.contains(&r)
                || (!r.starts_with("urn:") && r.split('/').count() == 2 && !r.ends_with('/'));
            if !resolves {
                problems.push(format!(
                    "entry[{}].{path} = {r} does not resolve inside the Bundle",
                    e.index
                ));
            }
        }
        if fhir::identifier_keys(resource).is_empty() {
            problems.push(format!(
                "entry[{}] ({}) has no identifier",
                e.index,
                e.resource_type().unwrap_or("?")
            ));
        }
        walk(resource, &format!("entry[{}]", e.index), &mut problems);
    }
    problems
}

fn walk(v: &Value, at: &str, problems: &mut Vec<String>) {
    match v {
        Value::Null => problems.push(format!("{at} is null")),
        Value::Object(m) if m.is_empty() => problems.push(format!("{at} is an empty object")),
        Value::Array(a) if a.is_empty() => problems.push(format!("{at} is an empty array")),
        Value::Object(m) => m
            .iter()
            .for_each(|(k, c)| walk(c, &format!("{at}.{k}"), problems)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, c)| walk(c, &format!("{at}[{i}]"), problems)),
        Value::String(s) if s.trim().is_empty() => {
            problems.push(format!("{at} is an empty string"))
        }
        Value::String(s) => {
            let b = s.as_bytes();
            if b.len() > 10
                && b[4] == b'-'
                && b[7] == b'-'
                && b[10] == b'T'
                && !crate::time::is_satusehat_utc(s)
            {
                problems.push(format!("{at} = {s} is not UTC (YYYY-MM-DDThh:mm:ss+00:00)"));
            }
        }
        _ => {}
    }
}

/// A unified line diff of two texts, `-` expected, `+` produced.
pub fn diff(expected: &str, produced: &str) -> String {
    similar::TextDiff::from_lines(expected, produced)
        .unified_diff()
        .context_radius(3)
        .header("golden", "produced")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rule_problems_catch_broken_bundles() {
        let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Observation", "identifier": [{"system": "s", "value": "v"}],
              "subject": {"reference": "urn:uuid:2"}, "note": [], "effectiveDateTime": "2026-05-12T08:00:00+07:00", "x": null}},
            {"fullUrl": "urn:uuid:3", "resource": {"resourceType": "Encounter", "serviceProvider": {"reference": "Organization/1"}}}
        ]});
        let p = rule_problems(&b).join("\n");
        assert!(p.contains("urn:uuid:2 does not resolve"), "{p}");
        assert!(p.contains("note is an empty array"), "{p}");
        assert!(p.contains("is not UTC"), "{p}");
        assert!(p.contains("x is null"), "{p}");
        assert!(p.contains("(Encounter) has no identifier"), "{p}");
        assert!(!p.contains("Organization/1"), "{p}");
    }

    #[test]
    fn diff_is_readable() {
        let d = diff("a\nb\nc\n", "a\nB\nc\n");
        assert!(d.contains("-b") && d.contains("+B"), "{d}");
    }
}
