//! Step 1 of the path: does the facility's record have the shape its record type promises?
//! Checked against `mappings/<type>/input.schema.json` before anything else happens, so a
//! facility learns exactly which field to fix and nothing is stored.

use crate::fhir::{Issue, IssueCode, Outcome};
use jsonschema::Validator;
use jsonschema::paths::{Location, LocationSegment};
use serde_json::Value;

/// Most records break a schema in a handful of places; past this, more issues only bury the
/// first ones.
const MAX_ISSUES: usize = 50;

pub fn check(validator: &Validator, record: &Value) -> Outcome {
    if validator.is_valid(record) {
        return Outcome::new();
    }
    let mut outcome = Outcome::new();
    for error in validator.iter_errors(record).take(MAX_ISSUES) {
        let path = json_path(error.instance_path());
        outcome
            .push(Issue::error(IssueCode::Invalid, format!("{path}: {}", error.masked())).at(path));
    }
    outcome
}

/// `/imunisasi/0/no_batch` → `$.imunisasi[0].no_batch`.
pub fn json_path(location: &Location) -> String {
    let mut out = String::from("$");
    for segment in location {
        match segment {
            LocationSegment::Property(p) => {
                out.push('.');
                out.push_str(&p);
            }
            LocationSegment::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}
