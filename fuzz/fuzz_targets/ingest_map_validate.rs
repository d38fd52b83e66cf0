//! Fuzz the path a pushed record takes before it is acknowledged: JSON depth check → parse →
//! adapter (local format) → input schema → jq mapping → profile validation of the Bundle;
//! and the validator on the raw input as any FHIR JSON (`$validate`). Any panic is a bug:
//! bad input must come back as an OperationOutcome.
//!
//! The first byte picks the record type (and local format); the rest is the body.

#![no_main]

use gerbang::mapping::{Mappings, Sender};
use gerbang::profile::{Context, Validator};
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;

struct Engine {
    mappings: Mappings,
    validator: Validator,
    /// (record type, local format)
    targets: Vec<(String, Option<String>)>,
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mappings = Mappings::load(&root.join("mappings")).expect("mappings");
        let validator = Validator::load(&root.join("profiles")).expect("profiles");
        let mut targets = Vec::new();
        for rt in mappings.record_types() {
            targets.push((rt.name().to_string(), None));
            for f in rt.adapters.keys() {
                targets.push((rt.name().to_string(), Some(f.clone())));
            }
        }
        Engine { mappings, validator, targets }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let e = engine();
    // The server refuses deep nesting before parsing; the fuzzer goes through the same gate.
    if gerbang::api::body::check_depth(body, 64).is_err() {
        return;
    }
    let ctx = Context { organization_id: Some("1000000001"), now: chrono::Utc::now() };
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = e.validator.validate_text(text, &ctx, None);
    }
    let Ok(record) = serde_json::from_slice::<serde_json::Value>(body) else { return };
    let (record_type, format) = &e.targets[pick as usize % e.targets.len()];
    let sender = Sender { organization_id: "1000000001", location_id: "loc-1" };
    if let Ok(mapped) = e.mappings.map_record_as(record_type, format.as_deref(), &record, &sender) {
        let _ = e.validator.validate(&mapped.bundle, &ctx);
    }
});
