//! The integrator's tools, no server: `gerbang map`, `gerbang validate` and `gerbang rules`.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(manifest_dir())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const EXAMPLES: &str = "mappings/posyandu.balita/examples";

#[test]
fn map_prints_the_golden_bundle() {
    let (code, stdout, stderr) = run(&[
        "map",
        "posyandu.balita",
        &format!("{EXAMPLES}/bayi-9-bulan-imunisasi.input.json"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let got: Value = serde_json::from_str(&stdout).unwrap();
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(
            manifest_dir()
                .join(EXAMPLES)
                .join("bayi-9-bulan-imunisasi.bundle.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(got, expected);
}

#[test]
fn map_reports_bad_input_with_paths_and_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"id_kunjungan": "X", "waktu_mulai": "kemarin"}"#).unwrap();
    let (code, stdout, stderr) = run(&["map", "posyandu.balita", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    let oo: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(oo["resourceType"], "OperationOutcome");
    let exprs = expressions(&oo);
    assert!(exprs.contains(&"$.waktu_mulai".to_string()), "{exprs:?}");
    assert!(stderr.contains("$.waktu_mulai"), "{stderr}");
}

#[test]
fn validate_accepts_a_good_bundle() {
    let (code, stdout, stderr) = run(&[
        "validate",
        &format!("{EXAMPLES}/balita-vitamin-a-kejar.bundle.json"),
        "--org",
        ORG,
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stderr.contains("0 error(s)"), "{stderr}");
}

#[test]
fn validate_reports_errors_with_expressions_and_rule_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.json");
    let mut bundle = minimal_bundle();
    // Another organization's identifier system (10117), a subject removed (10118), a local
    // time (not UTC).
    let enc = &mut bundle["entry"][2]["resource"];
    enc["identifier"][0]["system"] = "http://sys-ids.kemkes.go.id/encounter/100025753".into();
    enc.as_object_mut().unwrap().remove("subject");
    enc["period"]["start"] = "2026-05-14T09:10:00+08:00".into();
    std::fs::write(&path, serde_json::to_string(&bundle).unwrap()).unwrap();

    let (code, stdout, _) = run(&["validate", path.to_str().unwrap(), "--org", ORG]);
    assert_eq!(code, 1);
    let oo: Value = serde_json::from_str(&stdout).unwrap();
    let text = texts(&oo);
    assert!(
        text.contains("(RuleNumber: 10117)") && text.contains("(RuleNumber: 10118)"),
        "{text}"
    );
    let exprs = expressions(&oo);
    for e in [
        "Bundle.entry[2].resource.identifier[0].system",
        "Bundle.entry[2].resource.subject",
        "Bundle.entry[2].resource.period.start",
    ] {
        assert!(exprs.contains(&e.to_string()), "missing {e} in {exprs:?}");
    }
    // Unknown element: the R4 JSON Schema names it.
    bundle["entry"][4]["resource"]["valueQuantitiy"] = serde_json::json!({});
    std::fs::write(&path, serde_json::to_string(&bundle).unwrap()).unwrap();
    let (_, stdout, _) = run(&["validate", path.to_str().unwrap()]);
    assert!(stdout.contains("valueQuantitiy"), "{stdout}");
}

#[test]
fn validate_refuses_what_is_not_fhir() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.json");
    std::fs::write(&path, r#"{"hello": "world"}"#).unwrap();
    let (code, stdout, _) = run(&["validate", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stdout.contains("resourceType"), "{stdout}");
}

/// The posyandu.balita example Bundle `balita-wita-minimal`.
fn minimal_bundle() -> Value {
    let path = manifest_dir()
        .join(EXAMPLES)
        .join("balita-wita-minimal.bundle.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The example Encounter as one NDJSON line: valid on its own, and without its subject one
/// error (rule 10118).
fn encounter_lines() -> (String, String) {
    let bundle = minimal_bundle();
    let enc = bundle["entry"][2]["resource"].clone();
    let mut no_subject = enc.clone();
    no_subject.as_object_mut().unwrap().remove("subject");
    (enc.to_string(), no_subject.to_string())
}

#[test]
fn validate_tallies_ndjson_by_line() {
    let (good, bad) = encounter_lines();
    let mut text = String::new();
    for n in 1..=100 {
        let line = match n {
            50 => r#"{"resourceType": "Encounter", "status": "#,
            _ if n % 4 == 0 => &bad,
            _ => &good,
        };
        text.push_str(line);
        text.push('\n');
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("day.ndjson");
    std::fs::write(&path, &text).unwrap();
    let (code, stdout, stderr) = run(&["validate", path.to_str().unwrap(), "--org", ORG]);
    assert_eq!(code, 1, "{stderr}");
    let oo: Value = serde_json::from_str(&stdout).unwrap();
    let issues = oo["issue"].as_array().unwrap();
    // 100 lines: 25 without a subject (4, 8 … 100), line 50 not JSON, the others valid. The
    // missing subject is one issue, not 25.
    assert_eq!(issues.len(), 3, "{stdout}");
    assert_eq!(issues[0]["severity"], "information");
    assert_eq!(
        issues[0]["details"]["text"],
        "NDJSON: 100 lines read, 74 valid, 26 with errors; an issue found on several lines is listed once, with its lines"
    );
    assert_eq!(issues[1]["severity"], "error");
    assert_eq!(issues[1]["expression"][0], "Encounter.subject");
    let subject = issues[1]["details"]["text"].as_str().unwrap();
    assert!(
        subject.starts_with(
            "lines 4, 8, 12, 16, 20 and 20 more (25 in all): Encounter.subject is required"
        ) && subject.ends_with("(RuleNumber: 10118)"),
        "{subject}"
    );
    assert_eq!(issues[2]["severity"], "error");
    let not_json = issues[2]["details"]["text"].as_str().unwrap();
    assert!(not_json.starts_with("line 50: not JSON: "), "{not_json}");
    assert!(
        stderr.contains("2 error(s), 0 warning(s), 1 note(s)"),
        "{stderr}"
    );
}

#[test]
fn validate_streams_ndjson_from_stdin_and_the_answer_stays_small() {
    let (good, bad) = encounter_lines();
    // About 3 MB: 2,000 lines, every other one missing its subject.
    let mut text = String::new();
    for n in 1..=2000 {
        text.push_str(if n % 2 == 0 { &bad } else { &good });
        text.push('\n');
    }
    assert!(text.len() > 2_500_000, "{} bytes", text.len());
    let mut child = Command::new(BIN)
        .args(["validate", "-", "--org", ORG])
        .current_dir(manifest_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(text.as_bytes()).unwrap();
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let oo: Value = serde_json::from_str(&stdout).unwrap();
    let text = texts(&oo);
    assert!(
        text.contains("NDJSON: 2,000 lines read, 1,000 valid, 1,000 with errors"),
        "{text}"
    );
    assert!(
        text.contains(
            "lines 2, 4, 6, 8, 10 and 995 more (1,000 in all): Encounter.subject is required"
        ),
        "{text}"
    );
    // The answer grows with the kinds of problem found, not with the lines.
    assert!(stdout.len() < 2_000, "{} bytes:\n{stdout}", stdout.len());
    assert!(stderr.len() < 1_000, "{} bytes:\n{stderr}", stderr.len());
}

#[test]
fn rules_prints_every_rule_with_its_evidence_and_what_is_not_checked_offline() {
    let (code, stdout, stderr) = run(&["rules", "--resource", "Immunization"]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("RULE"), "{}", lines[0]);
    // Only Immunization.
    assert!(
        lines[1..]
            .iter()
            .filter(|l| !l.is_empty() && !l.contains("rule numbers"))
            .all(|l| l.split_whitespace().nth(1) == Some("Immunization")),
        "{stdout}"
    );
    // Seen refused on staging: an error, with that evidence.
    let performer = lines
        .iter()
        .find(|l| l.starts_with("10307") && l.contains("performer.actor"))
        .expect("rule 10307 performer function");
    assert!(
        performer.contains("error") && performer.contains("seen refused"),
        "{performer}"
    );
    // Only the Kamus wording: a warning.
    let recorded = lines
        .iter()
        .find(|l| l.starts_with("10451") && l.contains("recorded"))
        .expect("rule 10451");
    assert!(recorded.contains("warning"), "{recorded}");
    // The table's own rows, derived.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("10820") && l.contains("references Observation")),
        "{stdout}"
    );
    // What is not checked offline says why.
    assert!(
        lines.iter().any(|l| l.contains(" no ") && l.contains(':')),
        "{stdout}"
    );
    let tally = lines.last().unwrap();
    assert!(
        tally.contains("of the rule table's 20 rule numbers for Immunization"),
        "{tally}"
    );
}
