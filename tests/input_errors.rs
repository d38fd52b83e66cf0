//! Input errors a facility can get, tried from outside (issue 10, points 4–6): every bad
//! record gets a 4xx with an OperationOutcome whose issue names the field of the facility's
//! own record in plain words — no JSON Schema keyword, no path of the server's file system —
//! and nothing is stored. Posyandu visits without a health worker are normal records.
//!
//! The first tests run the real binary (`gerbang serve`, zero configuration); the last ones
//! walk every input schema through the library, where a missing message is found without a
//! server.

mod common;

use common::*;
use gerbang::mapping::{Mappings, Sender};
use serde_json::{Value, json};

fn start() -> (tempfile::TempDir, Gateway, String) {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), None, &[]);
    let key = gw.demo_key.clone().unwrap();
    (dir, gw, key)
}

/// Words of JSON Schema that no facility should have to read.
const KEYWORDS: [&str; 16] = [
    "anyOf",
    "oneOf",
    "allOf",
    "schema",
    "keyword",
    "const",
    "\"if\"",
    "\"then\"",
    "\"else\"",
    "dependent",
    "additionalProperties",
    "exclusiveM",
    "minLength",
    "maxLength",
    "minItems",
    "is not valid under",
];

fn assert_plain(text: &str) {
    for k in KEYWORDS {
        assert!(!text.contains(k), "`{k}` in: {text}");
    }
}

/// No absolute path of the server's file system: nothing that starts a path with `/` after a
/// space, a bracket or a quote, and not the folders this test runs in.
fn assert_no_server_path(text: &str) {
    let manifest = manifest_dir();
    assert!(!text.contains(manifest.to_str().unwrap()), "{text}");
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'/'
            && (i == 0 || matches!(bytes[i - 1], b' ' | b'(' | b'"' | b'\'' | b'`' | b'\n'))
        {
            let next = bytes.get(i + 1).copied().unwrap_or(b' ');
            assert!(!next.is_ascii_alphabetic(), "a file-system path in: {text}");
        }
    }
}

/// How many records this facility has stored.
async fn stored(url: &str, key: &str) -> u64 {
    let (status, body) = get_json(&format!("{url}/receipts"), key).await;
    assert_eq!(status, 200, "{body}");
    body["count"].as_u64().unwrap()
}

/// Push `record` as `record_type` (in `format`), expect a 4xx OperationOutcome whose issues
/// include one at `field` and say nothing in JSON Schema's words; return its texts.
async fn refused(
    gw: &Gateway,
    key: &str,
    record_type: &str,
    format: Option<&str>,
    record: &Value,
    field: &str,
) -> String {
    let before = stored(&gw.url, key).await;
    let query = format.map(|f| format!("?format={f}")).unwrap_or_default();
    let r = client()
        .post(format!("{}/ingest/{record_type}{query}", gw.url))
        .bearer_auth(key)
        .json(record)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let oo: Value = r.json().await.unwrap_or(Value::Null);
    assert!((400..500).contains(&status), "{status}: {oo}");
    assert_eq!(oo["resourceType"], "OperationOutcome", "{oo}");
    let exprs = expressions(&oo);
    assert!(
        exprs.iter().any(|e| e == field),
        "no issue at {field}: {exprs:?}\n{}",
        texts(&oo)
    );
    let text = texts(&oo);
    assert!(text.contains(field), "the text names the field: {text}");
    assert_plain(&text);
    assert_no_server_path(&text);
    assert!(text.len() < 20_000, "the answer repeats what it refuses");
    assert_eq!(stored(&gw.url, key).await, before, "nothing is stored");
    text
}

fn balita(id: &str) -> Value {
    let mut r = example("balita-wita-minimal");
    r["id_kunjungan"] = json!(id);
    r
}

fn number(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn impossible_and_out_of_range_dates_are_refused_by_field() {
    let (_dir, gw, key) = start();
    let t = "posyandu.balita";

    let mut r = balita("D-1");
    r["peserta"]["tanggal_lahir"] = json!("2026-02-30");
    let text = refused(&gw, &key, t, None, &r, "$.peserta.tanggal_lahir").await;
    assert!(text.contains("real calendar date"), "{text}");

    let mut r = balita("D-2");
    r["waktu_mulai"] = json!("2026-02-30T09:10:00");
    refused(&gw, &key, t, None, &r, "$.waktu_mulai").await;

    let mut r = balita("D-3");
    r["waktu_selesai"] = json!("2026-05-14T24:20:00");
    refused(&gw, &key, t, None, &r, "$.waktu_selesai").await;

    let mut r = balita("D-4");
    r["peserta"]["tanggal_lahir"] = json!("2026-05-15");
    let text = refused(&gw, &key, t, None, &r, "$.peserta.tanggal_lahir").await;
    assert!(text.contains("after the visit"), "{text}");

    // Two hours ahead, in the record's own zone (WITA): already more than the few minutes a
    // clock may run ahead.
    let later = (chrono::Utc::now() + chrono::Duration::hours(8 + 2)).format("%Y-%m-%dT%H:%M:00");
    let later_end =
        (chrono::Utc::now() + chrono::Duration::hours(8 + 2) + chrono::Duration::minutes(10))
            .format("%Y-%m-%dT%H:%M:00");
    let mut r = balita("D-5");
    r["waktu_mulai"] = json!(later.to_string());
    r["waktu_selesai"] = json!(later_end.to_string());
    let text = refused(&gw, &key, t, None, &r, "$.waktu_mulai").await;
    assert!(
        text.contains("future") && text.contains("5 minutes"),
        "{text}"
    );

    let mut r = balita("D-5b");
    r["waktu_selesai"] = json!("2026-05-14T09:05:00");
    let text = refused(&gw, &key, t, None, &r, "$.waktu_selesai").await;
    assert!(text.contains("must be after $.waktu_mulai"), "{text}");

    let mut r = balita("D-6");
    r["waktu_mulai"] = json!("2014-06-02T09:10:00");
    r["waktu_selesai"] = json!("2014-06-02T09:20:00");
    r["peserta"]["tanggal_lahir"] = json!("2012-04-12");
    let text = refused(&gw, &key, t, None, &r, "$.waktu_mulai").await;
    assert!(text.contains("3 June 2014"), "{text}");

    let mut r = example("bayi-9-bulan-imunisasi");
    r["id_kunjungan"] = json!("D-7");
    r["imunisasi"][0]["kadaluarsa"] = json!("2027-02-29");
    refused(&gw, &key, t, None, &r, "$.imunisasi[0].kadaluarsa").await;

    // A local format's own dates: P-Care writes dd-mm-yyyy.
    let mut pcare: Value =
        serde_json::from_str(
            &std::fs::read_to_string(manifest_dir().join(
                "mappings/rawat-jalan/adapters/pcare/examples/contoh-b-hipertensi.input.json",
            ))
            .unwrap(),
        )
        .unwrap();
    pcare["pcare"]["tglDaftar"] = json!("31-02-2026");
    let text = refused(
        &gw,
        &key,
        "rawat-jalan",
        Some("pcare"),
        &pcare,
        "$.pcare.tglDaftar",
    )
    .await;
    assert!(text.contains("dd-mm-yyyy"), "{text}");

    // A visit that just ended, in WIT (UTC+9): from 15:00 UTC on its date is tomorrow's in
    // UTC, and it is still a visit of today, not one in the future. (A fixed 00:20 WIT was in
    // the future between 15:00 and 15:25 UTC.)
    let wit = |minutes_ago: i64| {
        (chrono::Utc::now() + chrono::Duration::hours(9) - chrono::Duration::minutes(minutes_ago))
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let mut r = balita("D-8");
    r["waktu_mulai"] = json!(wit(10));
    r["waktu_selesai"] = json!(wit(1));
    r["zona_waktu"] = json!("WIT");
    let (status, body) = ingest(&gw.url, &key, &r).await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn control_characters_huge_text_and_numbers_and_an_all_zero_nik_are_refused_by_field() {
    let (_dir, gw, key) = start();
    let t = "posyandu.balita";

    let mut r = balita("C-1");
    r["peserta"]["nama"] = json!("Muhammad\u{0}Rizky");
    let text = refused(&gw, &key, t, None, &r, "$.peserta.nama").await;
    assert!(text.contains("NUL"), "{text}");

    let mut r = balita("C-2");
    r["nama_posyandu"] = json!("Posyandu \u{1b}[0mAnggrek");
    refused(&gw, &key, t, None, &r, "$.nama_posyandu").await;

    let mut r = balita("C-3");
    r["peserta"]["nama"] = json!("A".repeat(1_000_000));
    let text = refused(&gw, &key, t, None, &r, "$.peserta.nama").await;
    assert!(text.contains("10000"), "says the limit: {text}");

    for (i, n) in ["1e-400", "1e400"].into_iter().enumerate() {
        let mut r = balita(&format!("C-4{i}"));
        r["pengukuran"]["berat_badan"] = number(n);
        refused(&gw, &key, t, None, &r, "$.pengukuran.berat_badan").await;
    }
    let mut r = balita("C-5");
    r["pengukuran"]["berat_badan"] = number(&format!("1{}", "0".repeat(100_000)));
    let text = refused(&gw, &key, t, None, &r, "$.pengukuran.berat_badan").await;
    assert!(text.contains("at most 30"), "{text}");

    let mut r = balita("C-6");
    r["peserta"]["nik"] = json!("0000000000000000");
    let text = refused(&gw, &key, t, None, &r, "$.peserta.nik").await;
    assert!(
        text.contains("NIK") && !text.contains("0000000000000000"),
        "{text}"
    );

    // A text field of another record type, and a local format through its adapter: the
    // field is named in the facility's own format.
    let row: Value = serde_json::from_str(
        &std::fs::read_to_string(manifest_dir().join(
            "mappings/rawat-jalan/adapters/sikda-generik/examples/contoh-b-hipertensi.input.json",
        ))
        .unwrap(),
    )
    .unwrap();
    let mut bad = row.clone();
    bad["PASIEN"]["NAMA_LENGKAP"] = json!("Budi\u{7}");
    refused(
        &gw,
        &key,
        "rawat-jalan",
        Some("sikda-generik"),
        &bad,
        "$.PASIEN.NAMA_LENGKAP",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_between_fields_say_what_to_send_in_the_facilitys_terms() {
    let (_dir, gw, key) = start();

    // A newborn without NIK and without what replaces it.
    let mut r = example("bayi-baru-lahir-nik-ibu-wit");
    r["id_kunjungan"] = json!("R-1");
    let p = r["peserta"].as_object_mut().unwrap();
    p.remove("kelahiran_ke");
    p.remove("alamat");
    let text = refused(&gw, &key, "posyandu.balita", None, &r, "$.peserta").await;
    assert!(
        text.contains("a newborn without NIK needs nik_ibu, kelahiran_ke and alamat"),
        "{text}"
    );

    // The same in SIKDA's own columns.
    let path = manifest_dir().join(
        "mappings/rawat-jalan/adapters/sikda-generik/examples/contoh-b-hipertensi.input.json",
    );
    let mut row: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    row["PASIEN"].as_object_mut().unwrap().remove("NIK");
    let text = refused(
        &gw,
        &key,
        "rawat-jalan",
        Some("sikda-generik"),
        &row,
        "$.PASIEN",
    )
    .await;
    assert!(text.contains("NIK_IBU, KELAHIRAN_KE and ALAMAT"), "{text}");

    // A missing field, a wrong type, an unknown field, a value outside the list.
    let mut r = balita("R-2");
    r.as_object_mut().unwrap().remove("waktu_selesai");
    r["pengukuran"]["berat_badan"] = json!("tiga belas");
    r["peserta"]["jenis_kelamin"] = json!("X");
    r["catatan_kader"] = json!("…");
    let before = stored(&gw.url, &key).await;
    let (status, oo) = ingest(&gw.url, &key, &r).await;
    assert_eq!(status, 422, "{oo}");
    let exprs = expressions(&oo);
    for field in [
        "$.waktu_selesai",
        "$.pengukuran.berat_badan",
        "$.peserta.jenis_kelamin",
        "$.catatan_kader",
    ] {
        assert!(exprs.iter().any(|e| e == field), "{field} not in {exprs:?}");
    }
    assert_plain(&texts(&oo));
    assert_eq!(stored(&gw.url, &key).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_mapping_names_the_mapping_not_a_server_path() {
    let (_dir, gw, key) = start();
    let mut r = example("bayi-9-bulan-imunisasi");
    r["id_kunjungan"] = json!("M-1");
    r["imunisasi"][0]["lokasi_suntik"] = json!("bokong kiri");
    let text = refused(
        &gw,
        &key,
        "posyandu.balita",
        None,
        &r,
        "$.imunisasi[0].lokasi_suntik",
    )
    .await;
    assert!(text.contains("mapping posyandu.balita (map.jq)"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn posyandu_visits_without_nakes_are_normal_records() {
    let (_dir, gw, key) = start();
    let mut receipts = Vec::new();
    for (record_type, example) in [
        ("posyandu.balita", "kader-tanpa-nakes-vitamin-a"),
        ("posyandu.remaja", "remaja-kader-tanpa-nakes"),
        ("posyandu.usia-produktif", "dewasa-kader-tanpa-nakes"),
        ("posyandu.lansia", "lansia-kader-tanpa-nakes"),
    ] {
        let path = manifest_dir()
            .join("mappings")
            .join(record_type)
            .join("examples")
            .join(format!("{example}.input.json"));
        let record: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(record.get("nakes").is_none());
        let r = client()
            .post(format!("{}/ingest/{record_type}", gw.url))
            .bearer_auth(&key)
            .json(&record)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{record_type}");
        let body: Value = r.json().await.unwrap();
        receipts.push(body["receipt"].as_str().unwrap().to_string());
        // Accepted, with warnings naming the rules that would like a health worker.
        let warnings = texts(&body["warnings"]);
        assert!(
            warnings.contains("nakes") && body["warnings"].to_string().contains("10383"),
            "{record_type}: {body}"
        );
    }

    // And delivered: the built-in sandbox judges Bundles with the same profile engine.
    for id in receipts {
        eventually(std::time::Duration::from_secs(30), "kader visit delivered", || {
            let (url, key, id) = (gw.url.clone(), key.clone(), id.clone());
            async move { (receipt(&url, &key, &id).await["status"] == "delivered").then_some(()) }
        })
        .await;
    }

    // Immunizations given need the health worker who gave them: the error names the rules
    // and what to send.
    let mut r = example("bayi-9-bulan-imunisasi");
    r["id_kunjungan"] = json!("N-1");
    r.as_object_mut().unwrap().remove("nakes");
    let text = refused(&gw, &key, "posyandu.balita", None, &r, "$.nakes").await;
    assert!(text.contains("10294") && text.contains("nik"), "{text}");

    // So does a TB referral.
    let mut r = example("balita-obat-cacing-tbc-rujukan");
    r["id_kunjungan"] = json!("N-2");
    r.as_object_mut().unwrap().remove("nakes");
    let text = refused(&gw, &key, "posyandu.balita", None, &r, "$.nakes").await;
    assert!(text.contains("10376"), "{text}");
}

// ------------------------------------------------------------ every schema, no server

fn mappings() -> Mappings {
    Mappings::load(&manifest_dir().join("mappings")).unwrap()
}

#[test]
fn every_rule_between_fields_in_every_input_schema_has_a_message() {
    let m = mappings();
    let mut missing = Vec::new();
    for rt in m.record_types() {
        for at in gerbang::mapping::input::rules_without_message(rt.input_schema()) {
            missing.push(format!("mappings/{}/input.schema.json#{at}", rt.name()));
        }
        for (format, adapter) in &rt.adapters {
            for at in gerbang::mapping::input::rules_without_message(adapter.input_schema()) {
                missing.push(format!(
                    "mappings/{}/adapters/{format}/input.schema.json#{at}",
                    rt.name()
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "add an \"x-message\" (what the facility must send) beside each of: {missing:#?}"
    );
}

/// Bad variants of a record: each top-level field removed, each leaf given the wrong type,
/// an unknown field at every object.
fn variants(record: &Value) -> Vec<Value> {
    fn leaves(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                out.push(at.clone());
                m.iter()
                    .for_each(|(k, c)| leaves(c, format!("{at}/{k}"), out))
            }
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, c)| leaves(c, format!("{at}/{i}"), out)),
            _ => out.push(at),
        }
    }
    let mut pointers = Vec::new();
    leaves(record, String::new(), &mut pointers);
    let mut out = Vec::new();
    for p in &pointers {
        let Some((parent, key)) = p.rsplit_once('/') else {
            continue;
        };
        // Removed.
        let mut v = record.clone();
        if let Some(Value::Object(m)) = v.pointer_mut(parent) {
            m.remove(key);
            out.push(v);
        }
        // The wrong kind of value.
        let mut v = record.clone();
        if let Some(slot) = v.pointer_mut(p) {
            *slot = match slot {
                Value::String(_) => json!(12),
                Value::Object(_) => json!("x"),
                _ => json!({"x": 1}),
            };
            out.push(v);
        }
    }
    for p in pointers {
        let mut v = record.clone();
        if let Some(Value::Object(m)) = v.pointer_mut(&p) {
            m.insert("bidang_tak_dikenal".into(), json!(1));
            out.push(v);
        }
    }
    out
}

#[test]
fn no_input_error_of_any_record_type_speaks_json_schema() {
    let m = mappings();
    let sender = Sender {
        organization_id: "1000000001",
        location_id: "L-1",
    };
    let read = |p: std::path::PathBuf| -> Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let mut checked = 0;
    for rt in m.record_types() {
        let inputs = gerbang::mapping::harness::example_inputs(&rt.dir);
        for v in variants(&read(inputs[0].clone())) {
            if let Err(outcome) = m.map_record(rt.name(), &v, &sender) {
                for issue in &outcome.issues {
                    if issue.code == gerbang::fhir::IssueCode::Processing {
                        continue; // the mapping's own errors (code tables …), not the input check
                    }
                    assert_plain(&issue.text);
                    assert_no_server_path(&issue.text);
                    let at = issue.expression.as_deref().unwrap_or("");
                    assert!(
                        at.starts_with('$'),
                        "{}: no field named: {issue:?}",
                        rt.name()
                    );
                    assert!(issue.text.contains(at), "{}: {issue:?}", rt.name());
                    checked += 1;
                }
            }
        }
        for (format, adapter) in &rt.adapters {
            let inputs = gerbang::mapping::harness::example_inputs(&adapter.dir);
            for v in variants(&read(inputs[0].clone())) {
                if let Err(outcome) = m.to_canonical(rt.name(), Some(format), &v, &sender) {
                    for issue in &outcome.issues {
                        if issue.code == gerbang::fhir::IssueCode::Processing {
                            continue;
                        }
                        assert_plain(&issue.text);
                        let at = issue.expression.as_deref().unwrap_or("");
                        assert!(at.starts_with('$'), "{format}: {issue:?}");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 200, "only {checked} issues looked at");
}

#[test]
fn a_mapping_that_does_not_load_is_named_relative_to_the_mappings_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mappings");
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.path().is_file() {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    };
    copy(
        &manifest_dir().join("mappings/tables"),
        &root.join("tables"),
    );
    copy(
        &manifest_dir().join("mappings/posyandu.balita"),
        &root.join("posyandu.balita"),
    );
    std::fs::write(
        root.join("posyandu.balita/map.jq"),
        "{entry: [ .x | undefined_fn ]}",
    )
    .unwrap();
    let Err(e) = Mappings::load(&root) else {
        panic!("a broken map.jq loads")
    };
    let text = e.to_string();
    assert!(text.starts_with("posyandu.balita/map.jq"), "{text}");
    assert!(!text.contains(dir.path().to_str().unwrap()), "{text}");
    assert_no_server_path(&text);
}
