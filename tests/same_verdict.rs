//! Same verdict everywhere: for every resource of the conformance corpus, `gerbang validate`,
//! `POST /fhir/$validate`, ingest (`POST /fhir/{Type}`) and the sandbox (a transaction
//! Bundle) name the same errors — rule number and element — and the sandbox refuses exactly
//! what the validator calls an error. Real processes over real HTTP.

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;

/// (rule number, element) of every error, the element named from the resource's type
/// (`Bundle.entry[0].resource.subject` → `Encounter.subject`); other entries' issues (the
/// look-ups ingest adds) are left out.
fn errors(oo: &Value, rt: &str) -> BTreeSet<(Option<u32>, String)> {
    gerbang::fhir::Outcome::from_operation_outcome(oo)
        .issues
        .into_iter()
        .filter(|i| i.is_error())
        .filter_map(|i| {
            let e = i.expression.unwrap_or_default();
            let e = match e.strip_prefix("Bundle.entry[0].resource") {
                Some(rest) => format!("{rt}{rest}"),
                None if e.starts_with("Bundle.") => return None,
                None => e,
            };
            Some((i.rule, e))
        })
        .collect()
}

fn corpus() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for dir in ["valid", "invalid"] {
        let d = manifest_dir().join("tests/conformance").join(dir);
        let mut paths: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for p in paths {
            let case: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            // Cases written for another sender compare differently on the identifier rules.
            if case.get("org").is_some_and(|o| o != ORG) {
                continue;
            }
            let r = case["resource"].clone();
            if r["resourceType"] == "Bundle" {
                continue;
            }
            out.push((p.file_name().unwrap().to_string_lossy().into_owned(), r));
        }
    }
    out
}

const ORG: &str = "1000000001";

/// `gerbang validate FILE --org ORG`: its OperationOutcome.
fn cli_validate(cfg: &Path, dir: &Path, file: &Path) -> Value {
    let out = std::process::Command::new(BIN)
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "validate",
            file.to_str().unwrap(),
            "--org",
            ORG,
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).expect("an OperationOutcome")
}

fn text_of(issue: &Value) -> &str {
    issue["details"]["text"]
        .as_str()
        .or(issue["diagnostics"].as_str())
        .unwrap_or("")
}

/// The lines an issue of an NDJSON answer names — `line 3: …`, `lines 3, 7 and 12: …`,
/// `lines 3, 7, 12, 15, 20 and 4,995 more (5,000 in all): …` — and whether that is all of them.
fn lines_named(text: &str) -> Option<(Vec<usize>, bool)> {
    let (head, _) = text.split_once(": ")?;
    let list = head
        .strip_prefix("lines ")
        .or_else(|| head.strip_prefix("line "))?;
    let (list, all) = match list.split_once(" more (") {
        Some((named, _)) => (named.rsplit_once(" and ")?.0, false),
        None => (list, true),
    };
    let lines = list
        .split(", ")
        .flat_map(|p| p.split(" and "))
        .map(|n| n.parse().ok())
        .collect::<Option<Vec<usize>>>()?;
    Some((lines, all))
}

/// The resource carries an identifier under one of the sender's own systems.
fn own_identity(resource: &Value) -> bool {
    let ids = match &resource["identifier"] {
        Value::Array(a) => a.clone(),
        Value::Object(_) => vec![resource["identifier"].clone()],
        _ => Vec::new(),
    };
    ids.iter().any(|i| {
        i["system"].as_str().is_some_and(|s| {
            s.starts_with("http://sys-ids.kemkes.go.id/") && s.ends_with(&format!("/{ORG}"))
        }) && i["value"].is_string()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_dollar_validate_ingest_and_the_sandbox_agree() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), None);
    // ~1,000 requests in seconds: rate limits are another test's business.
    let cfg = write_config(
        dir.path(),
        &sandbox.url,
        "[limits]\nrequests_per_second = 0\n",
    );
    let key = add_facility(&cfg, "simrs-fhir", ORG);
    let gw = Gateway::start(dir.path(), Some(&cfg), &[]);
    let token = sandbox.token().await;
    let cases = corpus();
    assert!(cases.len() > 250, "{} cases", cases.len());

    // gerbang validate: the whole corpus as one NDJSON file; issues name their lines.
    let ndjson: String = cases.iter().map(|(_, r)| format!("{r}\n")).collect();
    let file = dir.path().join("corpus.ndjson");
    std::fs::write(&file, ndjson).unwrap();
    let cli = cli_validate(&cfg, dir.path(), &file);
    // An error found on more lines than the answer names cannot be placed by line; then
    // each resource is validated on its own by the CLI instead.
    let partly_named =
        cli["issue"].as_array().unwrap().iter().any(|i| {
            i["severity"] == "error" && lines_named(text_of(i)).is_some_and(|(_, all)| !all)
        });

    let mut disagreements = Vec::new();
    let mut ingested = 0;
    let mut refused_upstream = 0;
    for (n, (name, resource)) in cases.iter().enumerate() {
        let rt = resource["resourceType"].as_str().unwrap();
        let by_cli = if partly_named {
            let file = dir.path().join("one.json");
            std::fs::write(&file, resource.to_string()).unwrap();
            errors(&cli_validate(&cfg, dir.path(), &file), rt)
        } else {
            let cli_issues: Vec<Value> = cli["issue"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| lines_named(text_of(i)).is_some_and(|(l, _)| l.contains(&(n + 1))))
                .cloned()
                .collect();
            errors(&json!({"issue": cli_issues}), rt)
        };

        let r = client()
            .post(format!("{}/fhir/$validate", gw.url))
            .bearer_auth(&key)
            .header("Content-Type", "application/fhir+json")
            .body(resource.to_string())
            .send()
            .await
            .unwrap();
        let by_validate = errors(&r.json::<Value>().await.unwrap(), rt);
        if by_validate != by_cli {
            disagreements.push(format!(
                "{name}: $validate {by_validate:?} but gerbang validate {by_cli:?}"
            ));
        }

        // The sandbox: the resource in a transaction Bundle.
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
            "fullUrl": "urn:uuid:7c1d0a52-2b8e-4c9e-9d61-0f3b6a8e4a10",
            "resource": resource,
            "request": {"method": "POST", "url": rt}
        }]});
        let r = client()
            .post(format!("{}/fhir-r4/v1", sandbox.url))
            .bearer_auth(&token)
            .header("Content-Type", "application/fhir+json")
            .body(bundle.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let by_sandbox = if status < 300 {
            BTreeSet::new()
        } else {
            errors(&body, rt)
        };
        // Refused for what only a server knows (an unknown reference, a duplicate) is not a
        // validation verdict: it may follow only an error-free validation.
        let state_only = status >= 300
            && body["issue"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|i| i["code"] == "not-found" || i["code"] == "duplicate");
        if state_only {
            refused_upstream += 1;
            if !by_cli.is_empty() {
                disagreements.push(format!("{name}: the sandbox refused it only for server state, the validator for {by_cli:?}"));
            }
        } else if by_sandbox != by_cli {
            disagreements.push(format!(
                "{name}: the sandbox ({status}) {by_sandbox:?} but gerbang validate {by_cli:?}"
            ));
        }

        // Ingest: pushed as the facility's own FHIR, which needs the sender's own identifier
        // (its identity); Patients are looked up, never pushed. Others are refused before
        // validation, which says nothing about validation.
        if rt == "Patient" || !own_identity(resource) {
            continue;
        }
        let r = client()
            .post(format!("{}/fhir/{rt}", gw.url))
            .bearer_auth(&key)
            .header("Content-Type", "application/fhir+json")
            .body(resource.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        match status {
            200..=299 => {
                ingested += 1;
                if !by_cli.is_empty() {
                    disagreements.push(format!(
                        "{name}: ingest accepted it ({status}); gerbang validate: {by_cli:?}"
                    ));
                }
            }
            422 => {
                ingested += 1;
                let by_ingest = errors(&body, rt);
                if by_ingest != by_cli {
                    disagreements.push(format!(
                        "{name}: ingest {by_ingest:?} but gerbang validate {by_cli:?}"
                    ));
                }
            }
            _ => {}
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreement(s):\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert!(
        ingested > 80,
        "only {ingested} cases reached ingest's validation"
    );
    let _ = refused_upstream;
    let _ = Path::new("");
}

/// NDJSON: `gerbang validate` and `$validate` give the same tally, whether the NDJSON is seen
/// in its first lines or said by its `Content-Type`; a line past `ingest.max_body_bytes` is
/// named and skipped, while the other lines are still read. One document keeps the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_is_tallied_alike_by_validate_and_dollar_validate() {
    let dir = tempfile::tempdir().unwrap();
    // No sandbox: nothing is delivered.
    let cfg = write_config(
        dir.path(),
        "http://127.0.0.1:9",
        "[ingest]\nmax_body_bytes = 4000\n[limits]\nrequests_per_second = 0\n",
    );
    let key = add_facility(&cfg, "simrs-fhir", ORG);
    let gw = Gateway::start(dir.path(), Some(&cfg), &[]);

    let file =
        manifest_dir().join("mappings/posyandu.balita/examples/balita-wita-minimal.bundle.json");
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let good = bundle["entry"][2]["resource"].clone();
    let mut bad = good.clone();
    bad.as_object_mut().unwrap().remove("subject");
    assert!(bundle.to_string().len() > 4000);
    let mut text = String::new();
    for n in 1..=30 {
        match n {
            5 => text.push_str(&bundle.to_string()),
            7 => text.push_str("not json at all"),
            _ if n % 2 == 0 => text.push_str(&bad.to_string()),
            _ => text.push_str(&good.to_string()),
        }
        text.push('\n');
    }
    let path = dir.path().join("day.ndjson");
    std::fs::write(&path, &text).unwrap();
    let by_cli = cli_validate(&cfg, dir.path(), &path);

    for content_type in ["application/fhir+json", "application/fhir+ndjson"] {
        let r = client()
            .post(format!("{}/fhir/$validate", gw.url))
            .bearer_auth(&key)
            .header("Content-Type", content_type)
            .body(text.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{content_type}");
        let oo: Value = r.json().await.unwrap();
        assert_eq!(oo, by_cli, "{content_type}");
    }
    let texts: Vec<&str> = by_cli["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(text_of)
        .collect();
    // 30 lines: 15 without a subject (2, 4 … 30), 5 too long, 7 not JSON, 13 valid.
    assert_eq!(
        texts[0],
        "NDJSON: 30 lines read, 13 valid, 17 with errors; an issue found on several lines is listed once, with its lines"
    );
    assert!(
        texts.iter().any(|t| t.starts_with(
            "lines 2, 4, 6, 8, 10 and 10 more (15 in all): Encounter.subject is required"
        )),
        "{texts:#?}"
    );
    assert!(
        texts.contains(
            &"line 5: longer than 4,000 bytes (ingest.max_body_bytes), the most one resource may take; not validated"
        ),
        "{texts:#?}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with("line 7: not JSON: ")),
        "{texts:#?}"
    );
    assert_eq!(texts.len(), 4, "{texts:#?}");

    // One document (not NDJSON) past the body limit is refused, as before.
    let r = client()
        .post(format!("{}/fhir/$validate", gw.url))
        .bearer_auth(&key)
        .header("Content-Type", "application/fhir+json")
        .body(serde_json::to_string_pretty(&bundle).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}
