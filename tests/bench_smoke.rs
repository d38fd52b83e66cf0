//! The benchmarks cannot rot: `benches/compare.sh --smoke` builds the benches (in the profile
//! this test was built in, whose library `cargo test` has already compiled), runs every part
//! of the comparison for a few seconds with this build's `gerbang`, and fails unless its table
//! has every row with its numbers. No timing is asserted: figures belong to the benchmark.
//!
//! Needs wrk and the pinned peers (`benches/peers/install.sh`: a Python venv and
//! @medplum/core). Without them the test is skipped with a notice on the terminal, unless
//! BENCH_SMOKE_REQUIRED=1 (as in CI, whose `.ci/run` installs them), which makes it fail.

use std::path::{Path, PathBuf};
use std::process::Command;

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn peer_dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        Path::new(&std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/gerbang")
            .join(default)
    })
}

/// What the smoke run lacks on this machine, if anything.
fn missing() -> Vec<String> {
    let mut lacking: Vec<String> = ["wrk", "node", "npm", "python3", "taskset", "curl"]
        .into_iter()
        .filter(|t| !on_path(t))
        .map(|t| format!("{t} (not on PATH)"))
        .collect();
    for (var, default, what) in [
        ("PYTHON_PEER_DIR", "python-peer", "the Python peer"),
        ("MEDPLUM_PEER_DIR", "medplum-peer", "the @medplum/core peer"),
    ] {
        let dir = peer_dir(var, default);
        if !dir.join(".installed").is_file() {
            lacking.push(format!("{what} (not installed in {})", dir.display()));
        }
    }
    lacking
}

#[test]
fn compare_script_smoke_run_has_every_row() {
    let lacking = missing();
    if !lacking.is_empty() {
        let why = lacking.join(", ");
        if std::env::var("BENCH_SMOKE_REQUIRED").is_ok_and(|v| v == "1") {
            panic!(
                "the benchmark smoke run is required (BENCH_SMOKE_REQUIRED=1) but this machine lacks: {why}. \
                 Install wrk (apt-get install -y wrk) and run benches/peers/install.sh."
            );
        }
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "\nNOTICE: benchmark smoke run SKIPPED — missing {why}. Install wrk (apt-get install -y wrk) and run \
             benches/peers/install.sh, or set BENCH_SMOKE_REQUIRED=1 to fail instead."
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let gerbang = Path::new(env!("CARGO_BIN_EXE_gerbang"));
    // The target folder this test was built in (…/target/debug/gerbang), so that the benches
    // are built beside it and reuse its library, whatever --target-dir cargo test was given.
    let target_dir = gerbang.parent().and_then(Path::parent).expect("target dir");
    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };
    let out = Command::new("bash")
        .arg(root.join("benches/compare.sh"))
        .args(["--smoke", "--profile", profile])
        .env("BENCH_GERBANG_BIN", gerbang)
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(root)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "benches/compare.sh --smoke failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("smoke: all"),
        "the smoke run did not check its table:\n{stdout}"
    );
    // Every part of the comparison printed its rows.
    for measure in [
        "map+validate records/s, bayi-9-bulan-imunisasi.input.json",
        "map+validate records/s, rawat-jalan",
        "floor: serde_json parse+serialise of the record+bundle",
        "validation resources/s, abses-dm-tiga-obat.bundle",
        "validation resources/s, bayi-9-bulan-imunisasi.bundle",
        "ms from process start until /readyz is 200",
        "RSS once ready",
        "durable ingest records/s (peer: /healthz req/s, same server), (a) no-op upstream",
        "durable ingest records/s (peer: /healthz req/s, same server), (b) built-in sandbox",
        "peak RSS (VmHWM)",
        "records ingested + delivered: peak RSS",
    ] {
        assert!(
            stdout.contains(measure),
            "no row '{measure}' in the table:\n{stdout}"
        );
    }
}
