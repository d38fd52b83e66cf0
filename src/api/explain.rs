//! SATUSEHAT's refusal in the facility's terms: each error of the upstream OperationOutcome
//! with its rule number, its text, the element it names, and the fields of the facility's
//! own record that produced that element — found by mapping the record again
//! ([`crate::mapping::provenance`]), so it holds for every mapping without annotations.

use super::AppState;
use super::error::ApiError;
use crate::fhir::Outcome;
use crate::mapping::{Sender, provenance};
use crate::store::{Receipt, Status};
use serde_json::{Value, json};

/// One error of SATUSEHAT's answer, explained.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Explanation {
    /// SATUSEHAT's text.
    pub text: String,
    /// Its rule number (`RuleNumber: NNNNN`), when it gave one.
    pub rule: Option<u32>,
    /// The element it names (FHIRPath), when it named one.
    pub expression: Option<String>,
    /// The fields of the facility's record (JSON pointers) that produced the element.
    pub record_fields: Vec<String>,
}

/// The errors of a refused record (None when it is not refused), each with its rule, its
/// element and the fields of the record behind it. The API answers them as JSON
/// ([`errors`]); the console shows them.
pub async fn explanations(
    state: &AppState,
    r: &Receipt,
) -> Result<Option<Vec<Explanation>>, ApiError> {
    if !matches!(r.status, Status::Dead | Status::Discarded) {
        return Ok(None);
    }
    let Some(outcome) = &r.upstream_outcome else {
        return Ok(None);
    };
    let outcome = Outcome::from_operation_outcome(outcome);
    let issues: Vec<_> = outcome.issues.iter().filter(|i| i.is_error()).collect();
    let expressions: Vec<String> = issues
        .iter()
        .map(|i| i.expression.clone().unwrap_or_default())
        .collect();
    let fields = record_fields(state, r, &expressions).await?;
    Ok(Some(
        issues
            .iter()
            .zip(expressions.into_iter().zip(fields))
            .map(|(issue, (expression, fields))| Explanation {
                text: issue.text.clone(),
                rule: issue.rule,
                expression: (!expression.is_empty()).then_some(expression),
                record_fields: fields,
            })
            .collect(),
    ))
}

/// The errors of a refused record as JSON (None when it is not refused).
pub async fn errors(state: &AppState, r: &Receipt) -> Result<Option<Value>, ApiError> {
    Ok(explanations(state, r).await?.map(|all| {
        json!(
            all.iter()
                .map(|x| {
                    let mut e = json!({"text": x.text});
                    if let Some(rule) = x.rule {
                        e["rule"] = json!(rule);
                    }
                    if let Some(expression) = &x.expression {
                        e["expression"] = json!(expression);
                    }
                    if !x.record_fields.is_empty() {
                        e["record_fields"] = json!(x.record_fields);
                    }
                    e
                })
                .collect::<Vec<_>>()
        )
    }))
}

/// Field look-ups already made, per receipt and revision: finding them maps the record once
/// per field, and a refused record is looked at again and again. Bounded; when full, it
/// starts afresh.
#[derive(Default)]
pub struct Explained {
    found: std::sync::Mutex<std::collections::HashMap<Revision, Fields>>,
}

/// A receipt and one of its revisions.
type Revision = (String, i64);
/// Per expression, the record's fields (JSON pointers).
type Fields = Vec<Vec<String>>;

/// How many refused records' fields are remembered.
const EXPLAINED_CAP: usize = 2048;

/// For each expression, the JSON pointers of the record's fields that produced it (empty
/// when unknown, or when the record's payload was pruned).
async fn record_fields(
    state: &AppState,
    r: &Receipt,
    expressions: &[String],
) -> Result<Vec<Vec<String>>, ApiError> {
    let none = vec![Vec::new(); expressions.len()];
    // FHIR the facility built itself: the element SATUSEHAT names is its own field already.
    if expressions.iter().all(String::is_empty) || r.record_type == crate::fhir_in::RECORD_TYPE {
        return Ok(none);
    }
    let key = (r.id.clone(), r.revision);
    if let Some(hit) = state.explained.found.lock().expect("explained").get(&key) {
        return Ok(hit.clone());
    }
    let Some(payload) = state
        .store
        .payload(&r.id)
        .await
        .map_err(ApiError::unavailable)?
    else {
        return Ok(none);
    };
    let Some(facility) = state
        .store
        .facility(&r.facility_id)
        .await
        .map_err(ApiError::unavailable)?
    else {
        return Ok(none);
    };
    // Mapping the record once per field is CPU work: off the request threads.
    let mappings = state.mappings.clone();
    let (record_type, format) = (r.record_type.clone(), r.format.clone());
    // As the stored Bundle was mapped: for the receipt's organization.
    let organization_id = r.organization_id.clone();
    let exprs = expressions.to_vec();
    let fields = tokio::task::spawn_blocking(move || {
        let sender = Sender {
            organization_id: &organization_id,
            location_id: &facility.location_id,
        };
        provenance::record_fields(
            &mappings,
            &record_type,
            format.as_deref(),
            &payload.raw,
            &sender,
            &payload.bundle,
            &exprs,
        )
    })
    .await
    .unwrap_or(none);
    let mut found = state.explained.found.lock().expect("explained");
    if found.len() >= EXPLAINED_CAP {
        found.clear();
    }
    found.insert(key, fields.clone());
    Ok(fields)
}
