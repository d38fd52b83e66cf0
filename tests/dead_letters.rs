//! Dead letters end to end, against the real binary and a standalone sandbox: a record
//! SATUSEHAT refuses becomes a dead letter; an operator lists and inspects it through the
//! admin API, fixes the cause, replays it (re-mapped with the current mappings) and it is
//! delivered exactly once; another is discarded with a reason; everything is audited.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The sandbox knows two clients: the right one for the demo organization, and one that
/// belongs to another organization (SATUSEHAT answers 10117 for its Bundles).
const SANDBOX: &str = r#"
[sandbox]
[[sandbox.clients]]
client_id = "gerbang-demo"
client_secret = "gerbang-demo-secret"
organization_id = "1000000001"
[[sandbox.clients]]
client_id = "salah-kirim"
client_secret = "salah-kirim-secret"
organization_id = "1000099999"
"#;

/// A gateway config for `dir` with the given SATUSEHAT client for the demo organization.
fn config(
    dir: &Path,
    sandbox_url: &str,
    client: &str,
    mappings: Option<&Path>,
) -> std::path::PathBuf {
    let path = dir.join(format!("gerbang-{client}.toml"));
    let mappings = mappings.map_or(String::new(), |m| {
        format!("mappings_dir = \"{}\"\n", m.display())
    });
    std::fs::write(
        &path,
        format!(
            r#"
data_dir = "{data}"
{mappings}
[upstream]
base_url = "{sandbox_url}"
timeout_secs = 2
[organizations."{ORG}"]
client_id = "{client}"
client_secret = "{client}-secret"
[deliver.retry]
base = 0.2
cap = 1.0
"#,
            data = dir.join("data").display()
        ),
    )
    .unwrap();
    path
}

fn gerbang(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("USER", "ops-dinkes")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn admin(method: &str, url: &str, key: &str, body: Option<Value>) -> (u16, Value) {
    let c = client();
    let mut req = match method {
        "GET" => c.get(url),
        _ => c.post(url),
    };
    if !key.is_empty() {
        req = req.bearer_auth(key);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn wait_status(url: &str, key: &str, id: &str, status: &str) -> Value {
    eventually(
        Duration::from_secs(30),
        &format!("receipt {id} {status}"),
        || async {
            let r = receipt(url, key, id).await;
            (r["status"] == status).then_some(r)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_listed_inspected_replayed_after_a_fix_and_discarded_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let sb_cfg = dir.path().join("sandbox.toml");
    std::fs::write(&sb_cfg, SANDBOX).unwrap();
    let sandbox = Sandbox::start(dir.path(), Some(&sb_cfg));

    // Misconfigured: the demo organization's records are sent with another's credentials.
    let wrong = config(dir.path(), &sandbox.url, "salah-kirim", None);
    let key = add_facility(&wrong, "pkm-dl", ORG);
    let (ok, operator_key, err) = gerbang(&wrong, &["operator", "add", "--name", "ops-dinkes"]);
    assert!(ok, "{err}");
    let operator_key = operator_key.trim().to_string();
    let mut gw = Gateway::start(dir.path(), Some(&wrong), &[]);

    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, body) = ingest(&gw.url, &key, &record(&format!("DL-{i}"))).await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["receipt"].as_str().unwrap().to_string());
    }
    for id in &ids {
        wait_status(&gw.url, &key, id, "dead").await;
    }
    assert!(sandbox.identifiers("Encounter").await.is_empty());

    // Only operators get in.
    let list_url = format!("{}/admin/dead-letters?rule=10117", gw.url);
    let (status, oo) = admin("GET", &list_url, "", None).await;
    assert_eq!(status, 401, "{oo}");
    let (status, oo) = admin("GET", &list_url, &key, None).await;
    assert_eq!(status, 403, "a facility key is not an operator key: {oo}");
    assert_eq!(oo["resourceType"], "OperationOutcome");

    // List, filtered by the SATUSEHAT rule; and a filter that matches nothing.
    let (status, listed) = admin("GET", &list_url, &operator_key, None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["count"], 3, "{listed}");
    assert!(
        listed["dead_letters"][0]["upstream_rules"]
            .as_array()
            .unwrap()
            .contains(&json!(10117))
    );
    let (_, none) = admin(
        "GET",
        &format!("{}/admin/dead-letters?rule=10306", gw.url),
        &operator_key,
        None,
    )
    .await;
    assert_eq!(none["count"], 0, "{none}");
    let (status, bad) = admin(
        "GET",
        &format!("{}/admin/dead-letters?since=yesterday", gw.url),
        &operator_key,
        None,
    )
    .await;
    assert_eq!(status, 400, "{bad}");
    assert!(texts(&bad).contains("RFC 3339"), "{bad}");

    // Inspect: raw record, Bundle, SATUSEHAT's outcome, the attempt.
    let (status, one) = admin(
        "GET",
        &format!("{}/admin/receipts/{}", gw.url, ids[0]),
        &operator_key,
        None,
    )
    .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["record"]["id_kunjungan"], "DL-0");
    assert_eq!(one["bundle"]["resourceType"], "Bundle");
    assert!(texts(&one["upstream_outcome"]).contains("10117"), "{one}");
    assert_eq!(one["attempts_log"][0]["result"], "dead", "{one}");

    // Discard one, with a reason; a discard without one is refused.
    let discard_url = format!("{}/admin/dead-letters/{}/discard", gw.url, ids[2]);
    let (status, oo) = admin(
        "POST",
        &discard_url,
        &operator_key,
        Some(json!({"reason": "  "})),
    )
    .await;
    assert_eq!(status, 400, "{oo}");
    let (status, discarded) = admin(
        "POST",
        &discard_url,
        &operator_key,
        Some(json!({"reason": "kunjungan ganda, sudah dikirim lewat P-Care"})),
    )
    .await;
    assert_eq!(status, 200, "{discarded}");
    assert_eq!(discarded["status"], "discarded");
    assert_eq!(
        discarded["discard_reason"],
        "kunjungan ganda, sudah dikirim lewat P-Care"
    );

    // The fix: the right credentials. Restart on the same data folder.
    gw.proc.kill();
    let fixed_mappings = dir.path().join("mappings");
    copy_dir(&manifest_dir().join("mappings"), &fixed_mappings);
    let right = config(
        dir.path(),
        &sandbox.url,
        "gerbang-demo",
        Some(&fixed_mappings),
    );
    let gw = Gateway::start(dir.path(), Some(&right), &[]);

    // Replay one through the CLI after a mapping change: it is re-mapped with the current
    // mappings, not re-sent as it was.
    let map_jq = fixed_mappings.join("posyandu.balita/map.jq");
    let jq = std::fs::read_to_string(&map_jq).unwrap();
    assert!(jq.contains(r#"loinc("29463-7"; "Body weight")"#));
    std::fs::write(
        &map_jq,
        jq.replace(
            r#"loinc("29463-7"; "Body weight")"#,
            r#"loinc("29463-7"; "Body weight (dikoreksi)")"#,
        ),
    )
    .unwrap();
    let (ok, out, err) = gerbang(&right, &["dead-letters", "replay", &ids[0]]);
    assert!(ok, "{out}{err}");
    let (ok, shown, err) = gerbang(&right, &["dead-letters", "show", &ids[0]]);
    assert!(ok, "{err}");
    assert!(
        shown.contains("Body weight (dikoreksi)"),
        "re-mapped with the current mappings"
    );

    // Replay the rest through the API, by filter; the discarded one stays discarded.
    let (status, done) = admin(
        "POST",
        &format!("{}/admin/dead-letters/replay", gw.url),
        &operator_key,
        Some(json!({"rule": 10117})),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["replayed"], 1, "{done}");
    assert_eq!(done["receipts"], json!([ids[1]]));
    let (status, oo) = admin(
        "POST",
        &format!("{}/admin/dead-letters/{}/replay", gw.url, ids[2]),
        &operator_key,
        None,
    )
    .await;
    assert_eq!(status, 409, "a discarded record is not replayed: {oo}");

    for id in &ids[..2] {
        let r = wait_status(&gw.url, &key, id, "delivered").await;
        assert!(!r["upstream_ids"].as_array().unwrap().is_empty(), "{r}");
    }
    let mut encounters = sandbox.identifiers("Encounter").await;
    encounters.sort();
    assert_eq!(
        encounters.len(),
        2,
        "each replayed record exactly once: {encounters:?}"
    );
    encounters.dedup();
    assert_eq!(encounters.len(), 2);
    let (_, dead_now) = admin(
        "GET",
        &format!("{}/admin/dead-letters", gw.url),
        &operator_key,
        None,
    )
    .await;
    assert_eq!(dead_now["count"], 0, "{dead_now}");

    // The audit names who replayed and discarded what.
    let (status, audit) = admin(
        "GET",
        &format!("{}/admin/audit", gw.url),
        &operator_key,
        None,
    )
    .await;
    assert_eq!(status, 200, "{audit}");
    let events = audit["events"].as_array().unwrap();
    let has = |actor: &str, action: &str, id: &str| {
        events
            .iter()
            .any(|e| e["actor"] == actor && e["action"] == action && e["receipt"] == id)
    };
    assert!(has("operator:ops-dinkes", "discard", &ids[2]), "{audit}");
    assert!(has("operator:ops-dinkes@cli", "replay", &ids[0]), "{audit}");
    assert!(has("operator:ops-dinkes", "replay", &ids[1]), "{audit}");
    assert!(
        has("facility:pkm-dl", "push", &ids[0]),
        "pushes are audited too: {audit}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A facility registered under the wrong organization: its records are refused (10117). The
/// operator fixes the facility's organization and replays: the replay maps and sends for the
/// facility's organization as it is now, not the one stored on the receipt.
#[tokio::test(flavor = "multi_thread")]
async fn a_replay_after_the_facility_organization_was_fixed_sends_for_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), None);
    // Credentials exist for both ids, but SATUSEHAT knows the client as 1000000001's.
    let cfg = write_config(
        dir.path(),
        &sandbox.url,
        "[organizations.\"1000000002\"]\nclient_id = \"gerbang-demo\"\nclient_secret = \"gerbang-demo-secret\"\n",
    );
    let key = add_facility(&cfg, "pkm-typo", "1000000002");
    let (ok, operator, err) = gerbang(&cfg, &["operator", "add", "--name", "ops-dinkes"]);
    assert!(ok, "{err}");
    let gw = Gateway::start(dir.path(), Some(&cfg), &[]);
    let (status, body) = ingest(&gw.url, &key, &record("ORG-1")).await;
    assert_eq!(status, 202, "{body}");
    let id = body["receipt"].as_str().unwrap().to_string();
    let dead = wait_status(&gw.url, &key, &id, "dead").await;
    assert!(texts(&dead["upstream_outcome"]).contains("10117"), "{dead}");

    // The fix: the facility's organization (its key stays valid).
    add_facility(&cfg, "pkm-typo", ORG);
    let (status, replayed) = admin(
        "POST",
        &format!("{}/admin/dead-letters/{id}/replay", gw.url),
        operator.trim(),
        None,
    )
    .await;
    assert_eq!(status, 202, "{replayed}");
    assert_eq!(replayed["organization_id"], ORG, "{replayed}");
    let delivered = wait_status(&gw.url, &key, &id, "delivered").await;
    assert_eq!(delivered["organization_id"], ORG);
    let encounters = sandbox.identifiers("Encounter").await;
    assert_eq!(
        encounters,
        vec![format!("http://sys-ids.kemkes.go.id/encounter/{ORG}|ORG-1")],
        "sent once, under the fixed organization"
    );
}
