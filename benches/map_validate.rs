//! Map + validate throughput, one thread: how many facility records per second steps 1–3
//! of the path (parse the record's JSON text, input check, jq mapping, full validation) take
//! on one core — per record type (its examples in turn), and for one record given with
//! `--record` (default: the canonical posyandu.balita example the Python peer maps too).
//!
//! And the floor: a bare serde_json parse + serialise (the crate's own serde_json, with its
//! `arbitrary_precision` and `preserve_order` features) of that record, of its Bundle, and of
//! both — the least any JSON gateway does per record, so "map + validate is within N× of the
//! floor" says how much the work itself costs.
//!
//! `cargo bench --bench map_validate [-- --seconds S] [--record RECORD_TYPE=FILE]`;
//! `benches/compare.sh` prints the table. Machine-readable lines start with `RESULT`:
//!   RESULT map_validate RECORD_TYPE records_per_s X resources_per_record N
//!   RESULT map_validate_record RECORD_TYPE records_per_s X resources N file F
//!   RESULT floor record|bundle|record+bundle records_per_s X bytes N

use gerbang::mapping::{Mappings, Sender};
use gerbang::profile::{Context, Validator};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DEFAULT_RECORD: &str =
    "posyandu.balita=mappings/posyandu.balita/examples/bayi-9-bulan-imunisasi.input.json";

fn arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

fn main() {
    let seconds: f64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let record_arg = arg("--record").unwrap_or_else(|| DEFAULT_RECORD.into());
    let Some((record_type, record_file)) = record_arg.split_once('=') else {
        eprintln!("--record takes RECORD_TYPE=FILE, e.g. {DEFAULT_RECORD}");
        std::process::exit(2);
    };
    let record_file = root.join(PathBuf::from(record_file));

    let t0 = Instant::now();
    let mappings = Mappings::load(&root.join("mappings")).expect("mappings");
    let t_map = t0.elapsed();
    let validator = Validator::load(&root.join("profiles")).expect("profiles");
    let t_profiles = t0.elapsed() - t_map;
    println!(
        "load: mappings {:.0} ms, profiles {:.0} ms",
        t_map.as_secs_f64() * 1e3,
        t_profiles.as_secs_f64() * 1e3
    );

    let sender = Sender {
        organization_id: "1000000001",
        location_id: "70042929-ee04-5d6d-8203-d679ec2d1bd2",
    };
    let ctx = Context {
        organization_id: Some("1000000001"),
        now: chrono::Utc::now(),
    };
    let budget = Duration::from_secs_f64(seconds);
    // Steps 1–3 from the record's text, as a push arrives; the Python peer parses its record
    // from text too.
    let map_validate = |rt: &str, text: &str| {
        let record: Value = serde_json::from_str(text).expect("the example is JSON");
        let m = mappings.map_record(rt, &record, &sender).expect("maps");
        let o = validator.validate(&m.bundle, &ctx);
        assert!(!o.has_errors(), "the example's Bundle has errors");
        o
    };

    println!(
        "{:<28} {:>10} {:>12} {:>12} {:>14}",
        "record type / example", "resources", "map/s", "validate/s", "map+validate/s"
    );
    for rt in mappings.record_types() {
        let mut inputs: Vec<_> = std::fs::read_dir(rt.dir.join("examples"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        inputs.retain(|p| p.to_string_lossy().ends_with(".input.json"));
        inputs.sort();
        let texts: Vec<String> = inputs
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        let records: Vec<Value> = texts
            .iter()
            .map(|t| serde_json::from_str(t).unwrap())
            .collect();
        let map_rate = rate(budget, |i| {
            let r = &records[i % records.len()];
            std::hint::black_box(mappings.map_record(rt.name(), r, &sender).unwrap());
        });
        let bundles: Vec<Value> = records
            .iter()
            .map(|r| mappings.map_record(rt.name(), r, &sender).unwrap().bundle)
            .collect();
        let resources: usize = bundles
            .iter()
            .map(|b| b["entry"].as_array().unwrap().len())
            .sum::<usize>()
            / bundles.len();

        let validate_rate = rate(budget, |i| {
            let o = validator.validate(&bundles[i % bundles.len()], &ctx);
            assert!(!o.has_errors());
            std::hint::black_box(o);
        });
        let both_rate = rate(budget, |i| {
            std::hint::black_box(map_validate(rt.name(), &texts[i % texts.len()]));
        });
        println!(
            "{:<28} {:>10} {:>12.0} {:>12.0} {:>14.0}",
            rt.name(),
            resources,
            map_rate,
            validate_rate,
            both_rate
        );
        println!(
            "RESULT map_validate {} records_per_s {:.0} resources_per_record {}",
            rt.name(),
            both_rate,
            resources
        );
    }

    // The one record, and the floor on the same record and its Bundle.
    let text = std::fs::read_to_string(&record_file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", record_file.display()));
    let record: Value = serde_json::from_str(&text).expect("the record is JSON");
    let bundle = mappings
        .map_record(record_type, &record, &sender)
        .expect("the record maps")
        .bundle;
    let bundle_text = serde_json::to_string(&bundle).unwrap();
    let resources = bundle["entry"].as_array().map_or(0, Vec::len);
    let name = record_file.file_name().unwrap().to_string_lossy();
    let one = rate(budget, |_| {
        std::hint::black_box(map_validate(record_type, &text));
    });
    println!(
        "RESULT map_validate_record {record_type} records_per_s {one:.0} resources {resources} file {name}"
    );
    let parse_serialise = |t: &str| {
        let v: Value = serde_json::from_str(t).unwrap();
        serde_json::to_vec(&v).unwrap()
    };
    let floor_record = rate(budget, |_| {
        std::hint::black_box(parse_serialise(&text));
    });
    let floor_bundle = rate(budget, |_| {
        std::hint::black_box(parse_serialise(&bundle_text));
    });
    let floor_both = rate(budget, |_| {
        std::hint::black_box(parse_serialise(&text));
        std::hint::black_box(parse_serialise(&bundle_text));
    });
    println!(
        "RESULT floor record records_per_s {floor_record:.0} bytes {}",
        text.len()
    );
    println!(
        "RESULT floor bundle records_per_s {floor_bundle:.0} bytes {}",
        bundle_text.len()
    );
    println!(
        "RESULT floor record+bundle records_per_s {floor_both:.0} bytes {}",
        text.len() + bundle_text.len()
    );
}

/// Calls per second of `f` over `budget`, after a short warm-up (50 calls, or a quarter of
/// the budget if that is shorter: a debug build in smoke mode is slow).
fn rate(budget: Duration, mut f: impl FnMut(usize)) -> f64 {
    let warm = Instant::now();
    for i in 0..50 {
        f(i);
        if warm.elapsed() > budget / 4 {
            break;
        }
    }
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < budget {
        for _ in 0..10 {
            f(n);
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}
