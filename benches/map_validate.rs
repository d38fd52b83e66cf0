//! Map + validate throughput, one thread: how many facility records per second steps 1–3
//! of the path (input check, jq mapping, full validation) take on one core.
//!
//! `cargo bench --bench map_validate [-- --seconds N]`; `benches/run.sh` prints the table.

use gerbang::mapping::{Mappings, Sender};
use gerbang::profile::{Context, Validator};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

fn main() {
    let seconds: f64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
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
    let now = chrono::Utc::now();
    let ctx = Context {
        organization_id: Some("1000000001"),
        now,
    };
    let budget = Duration::from_secs_f64(seconds);

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
        let records: Vec<Value> = inputs
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect();
        let map_rate = rate(budget, |i| {
            let r = &records[i % records.len()];
            std::hint::black_box(mappings.map_record(rt.name(), r, &sender).unwrap());
        });
        eprintln!("{}: map {map_rate:.0}/s", rt.name());
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
            let r = &records[i % records.len()];
            let m = mappings.map_record(rt.name(), r, &sender).unwrap();
            let o = validator.validate(&m.bundle, &ctx);
            assert!(!o.has_errors());
            std::hint::black_box(o);
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
            "RESULT {} map_validate_per_s {:.0} resources_per_record {}",
            rt.name(),
            both_rate,
            resources
        );
    }
}

/// Calls per second of `f` over `budget` (after a short warm-up).
fn rate(budget: Duration, mut f: impl FnMut(usize)) -> f64 {
    for i in 0..50 {
        f(i);
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
