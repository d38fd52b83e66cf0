//! `cargo test` runs the same mapping checks as `gerbang mappings test`: every example of every
//! record type against its reviewed golden Bundle, the mapping rules and the profile engine.

use gerbang::mapping::{Mappings, harness};
use gerbang::profile::Validator;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_example_of_every_record_type_passes() {
    let mappings = Mappings::load(&root().join("mappings")).unwrap();
    let validator = Validator::load(&root().join("profiles")).unwrap();
    let reports = harness::run(&mappings, &validator, None);
    assert!(reports.len() >= 4);
    let failures: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            format!(
                "{}/{}:\n  {}",
                r.record_type,
                r.name,
                r.problems.join("\n  ")
            )
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_cli_reports_a_broken_golden_file_with_a_diff() {
    // A copy of the mappings in which one golden file is wrong.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("mappings");
    copy_dir(&root().join("mappings"), &copy);
    let golden = copy.join("posyandu.balita/examples/balita-wita-minimal.bundle.json");
    let text = std::fs::read_to_string(&golden)
        .unwrap()
        .replace("13.25", "13.52");
    std::fs::write(&golden, text).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_gerbang"))
        .args(["mappings", "test", "posyandu.balita"])
        .env("GERBANG_MAPPINGS_DIR", &copy)
        .env("GERBANG_PROFILES_DIR", root().join("profiles"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL posyandu.balita/balita-wita-minimal"),
        "{stdout}"
    );
    assert!(
        stdout.contains("-          \"value\": 13.52,")
            && stdout.contains("+          \"value\": 13.25,"),
        "{stdout}"
    );
    assert!(
        stdout.contains("PASS posyandu.balita/bayi-9-bulan-imunisasi"),
        "{stdout}"
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
