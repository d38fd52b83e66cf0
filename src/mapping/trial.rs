//! A record tried without sending it: steps 1–3 of its path as `POST /ingest/{record-type}`
//! runs them — adapt a local format, check the input (with the clock passed in, as ingest
//! checks "not in the future"), map, validate the Bundle — with nothing stored and nothing
//! sent. It is the integrators' playground's engine (`/console/playground`), built from the
//! very functions `gerbang map` ([`Mappings::map_record_as`]'s parts) and `gerbang validate`
//! ([`Validator::validate`]) call, so a record the playground takes is one ingest takes.
//!
//! Like [`super::harness`] (`gerbang mappings test`), it runs the profile engine after the
//! mapping: the one place of this module that reaches past `fhir`, both pure.
//!
//! Each issue says where its expression points — the record as sent, the canonical record an
//! adapter made, or the Bundle — and an issue on the Bundle carries the fields of the record
//! that produced its element ([`super::provenance`]), as a refused record's errors do.

use super::{Mappings, Sender, provenance};
use crate::fhir::{Issue, Outcome};
use crate::profile::{Context, Validator};
use serde_json::Value;

/// What an issue's expression is a path into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The record as sent (a JSON path: `$.pengukuran.berat_badan`).
    Record,
    /// The canonical record an adapter made of it (a JSON path).
    Canonical,
    /// The Bundle (FHIRPath: `Bundle.entry[3].resource.subject`).
    Bundle,
}

/// One issue of a trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub place: Place,
    pub issue: Issue,
    /// For an issue on the Bundle: the fields of the record as sent (JSON pointers) that
    /// produced its element; empty when unknown.
    pub record_fields: Vec<String>,
}

/// What became of a record.
#[derive(Debug, Clone, Default)]
pub struct Trial {
    /// The canonical record, when a local format's adapter made one.
    pub canonical: Option<Value>,
    /// The transaction Bundle, when the record was mapped.
    pub bundle: Option<Value>,
    pub issues: Vec<Found>,
}

impl Trial {
    /// Every issue as one OperationOutcome's content.
    pub fn outcome(&self) -> Outcome {
        Outcome::from(
            self.issues
                .iter()
                .map(|f| f.issue.clone())
                .collect::<Vec<_>>(),
        )
    }

    fn stop(mut self, place: Place, outcome: Outcome) -> Trial {
        self.issues
            .extend(outcome.issues.into_iter().map(|issue| Found {
                place,
                issue,
                record_fields: Vec::new(),
            }));
        self
    }
}

/// Adapt (when `format` names a local format), check with `now`, map for `sender`,
/// validate for the sender's organization; then find the record's fields behind each
/// issue the validator raised on the Bundle.
pub fn run(
    mappings: &Mappings,
    validator: &Validator,
    record_type: &str,
    format: Option<&str>,
    record: &Value,
    sender: &Sender,
    now: chrono::DateTime<chrono::Utc>,
) -> Trial {
    let trial = Trial::default();
    // Without an adapter the canonical record is the record as sent.
    let canonical_place = if format.is_some() {
        Place::Canonical
    } else {
        Place::Record
    };
    // [1] adapt, then the input check with the clock, as ingest does.
    let canonical = match mappings.to_canonical(record_type, format, record, sender) {
        Ok(c) => c,
        Err(outcome) => return trial.stop(Place::Record, outcome),
    };
    let mut trial = Trial {
        canonical: format.is_some().then(|| canonical.clone()),
        ..trial
    };
    let Some(rt) = mappings.get(record_type) else {
        // to_canonical refuses an unknown type first; this is never reached.
        return trial;
    };
    let checked = rt.check_input(&canonical, Some(now));
    if checked.has_errors() {
        return trial.stop(canonical_place, checked);
    }
    let local_id = match rt.local_id(&canonical) {
        Ok(id) => id,
        Err(issue) => return trial.stop(canonical_place, Outcome::one(issue)),
    };
    // [2] map
    let bundle = match mappings.map_checked(rt, &canonical, local_id, sender) {
        Ok(mapped) => mapped.bundle,
        Err(outcome) => return trial.stop(canonical_place, outcome),
    };
    // Notes of the input check (no errors) come first, about the record.
    trial = trial.stop(canonical_place, checked);
    // [3] validate, for the sender's organization
    let ctx = Context {
        organization_id: Some(sender.organization_id),
        now,
    };
    let validation = validator.validate(&bundle, &ctx);
    let expressions: Vec<String> = validation
        .issues
        .iter()
        .map(|i| i.expression.clone().unwrap_or_default())
        .collect();
    let fields = if expressions.iter().any(|e| !e.is_empty()) {
        provenance::record_fields(
            mappings,
            record_type,
            format,
            record,
            sender,
            &bundle,
            &expressions,
        )
    } else {
        vec![Vec::new(); expressions.len()]
    };
    trial.issues.extend(
        validation
            .issues
            .into_iter()
            .zip(fields)
            .map(|(issue, record_fields)| Found {
                place: Place::Bundle,
                issue,
                record_fields,
            }),
    );
    trial.bundle = Some(bundle);
    trial
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn engine() -> (Mappings, Validator) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        (
            Mappings::load(&root.join("mappings")).unwrap(),
            Validator::load(&root.join("profiles")).unwrap(),
        )
    }

    fn example(name: &str) -> Value {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("mappings/posyandu.balita/examples")
            .join(format!("{name}.input.json"));
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
    }

    #[test]
    fn a_record_is_tried_as_ingest_takes_it() {
        let (mappings, validator) = engine();
        let location = crate::sandbox::demo_location();
        let sender = Sender {
            organization_id: crate::sandbox::DEMO_ORGANIZATION,
            location_id: &location,
        };
        let now = chrono::Utc::now();
        let record = example("bayi-9-bulan-imunisasi");
        let ok = run(
            &mappings,
            &validator,
            "posyandu.balita",
            None,
            &record,
            &sender,
            now,
        );
        assert!(!ok.outcome().has_errors(), "{:?}", ok.issues);
        // The same Bundle `gerbang map` prints.
        let mapped = mappings
            .map_record_as("posyandu.balita", None, &record, &sender)
            .unwrap();
        assert_eq!(ok.bundle.as_ref(), Some(&mapped.bundle));
        // The validator's notes name elements, and provenance the record's fields.
        let noted: Vec<&Found> = ok
            .issues
            .iter()
            .filter(|f| f.place == Place::Bundle && f.issue.expression.is_some())
            .collect();
        assert!(!noted.is_empty());
        assert!(
            noted.iter().any(|f| !f.record_fields.is_empty()),
            "{noted:?}"
        );

        // A required field left out: stopped at the input check, the field named.
        let mut broken = record.clone();
        broken["pengukuran"]
            .as_object_mut()
            .unwrap()
            .remove("berat_badan");
        let refused = run(
            &mappings,
            &validator,
            "posyandu.balita",
            None,
            &broken,
            &sender,
            now,
        );
        assert!(refused.bundle.is_none());
        assert!(refused.issues.iter().all(|f| f.place == Place::Record));
        assert!(
            refused
                .issues
                .iter()
                .any(|f| f.issue.expression.as_deref() == Some("$.pengukuran.berat_badan")),
            "{:?}",
            refused.issues
        );

        // An unknown record type and an unknown format are outcomes too.
        let unknown = run(&mappings, &validator, "nope", None, &record, &sender, now);
        assert!(unknown.outcome().has_errors());
        let no_format = run(
            &mappings,
            &validator,
            "posyandu.balita",
            Some("pcare"),
            &record,
            &sender,
            now,
        );
        assert!(no_format.outcome().has_errors());
        assert!(no_format.canonical.is_none());
    }
}
