//! Validation throughput, one thread, all checks on (R4 JSON Schema, StructureDefinitions,
//! bindings and codes, SATUSEHAT rules, Bundle integrity), on one file validated repeatedly;
//! plus start-up cost: time and resident memory to load and compile `profiles/`.
//!
//! `cargo bench --bench validate -- [FILE [N]]` (default: the 21-resource rawat-jalan Bundle,
//! 5000 times); `benches/compare.sh` runs it beside @medplum/core's validateResource on the
//! same Bundles, `benches/validate_before_after.sh` beside an earlier revision. Machine-readable
//! lines start with `RESULT`.

use gerbang::profile::{Context, Validator};
use serde_json::Value;
use std::path::Path;
use std::time::Instant;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let default = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("mappings/rawat-jalan/examples/abses-dm-tiga-obat.bundle.json")
        .to_string_lossy()
        .into_owned();
    let file = args.first().unwrap_or(&default);
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5000);
    let value: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let resources = value
        .get("entry")
        .and_then(Value::as_array)
        .map_or(1, Vec::len);

    let before = rss_kib();
    let t0 = Instant::now();
    let validator =
        Validator::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles")).expect("profiles");
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let after = rss_kib();
    println!(
        "RESULT load_ms {load_ms:.0} rss_mib_after_load {:.1} rss_mib_for_profiles {:.1}",
        after as f64 / 1024.0,
        (after - before) as f64 / 1024.0
    );

    let ctx = Context {
        organization_id: Some("1000000001"),
        now: chrono::Utc::now(),
    };
    let first = validator.validate(&value, &ctx);
    println!(
        "issues on this file: {} ({} errors)",
        first.issues.len(),
        first.error_count()
    );
    for _ in 0..200 {
        std::hint::black_box(validator.validate(&value, &ctx));
    }
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(validator.validate(&value, &ctx));
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "RESULT bundles_per_s {:.0} resources_per_s {:.0} entries {resources}",
        n as f64 / s,
        (n * resources) as f64 / s
    );
}
