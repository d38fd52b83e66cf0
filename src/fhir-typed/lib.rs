//! The only place that touches fhir-sdk's typed R4B model (see gerbang's `fhir::typed`).
//!
//! Typed construction is used where it helps — the OperationOutcomes and transaction
//! responses gerbang answers with — and deserialising into the typed model is an extra
//! structural check. The model never re-serialises what gerbang forwards: it drops unknown
//! elements and turns decimals into floats. Every function is non-generic, so the heavy
//! instantiations happen here, once.

use fhir_sdk::r4b::codes::{BundleType, IssueSeverity, IssueType};
use fhir_sdk::r4b::resources::{
    Bundle, BundleEntry, BundleEntryResponse, OperationOutcome, OperationOutcomeIssue, Resource,
};
use fhir_sdk::r4b::types::CodeableConcept;
use serde_json::Value;
use std::str::FromStr;

type Error = Box<dyn std::error::Error>;

/// One OperationOutcome issue, in FHIR's own words.
pub struct IssueSpec<'a> {
    /// `fatal`, `error`, `warning` or `information`.
    pub severity: &'a str,
    /// A FHIR IssueType code, e.g. `required`.
    pub code: &'a str,
    pub text: String,
    pub expression: Option<&'a str>,
}

/// Build an OperationOutcome. An empty list becomes one `information` issue (FHIR requires
/// at least one).
pub fn operation_outcome(issues: &[IssueSpec]) -> Result<Value, String> {
    build_operation_outcome(issues)
        .map_err(|e| e.to_string())
        .and_then(|oo| serde_json::to_value(oo).map_err(|e| e.to_string()))
}

fn build_operation_outcome(issues: &[IssueSpec]) -> Result<OperationOutcome, Error> {
    let mut out = Vec::with_capacity(issues.len().max(1));
    for issue in issues {
        let severity = IssueSeverity::from_str(issue.severity)
            .map_err(|_| format!("unknown severity {}", issue.severity))?;
        let code = IssueType::from_str(issue.code)
            .map_err(|_| format!("unknown issue type {}", issue.code))?;
        let details = CodeableConcept::builder()
            .text(issue.text.clone())
            .build()?;
        let mut b = OperationOutcomeIssue::builder()
            .severity(severity)
            .code(code)
            .details(details);
        if let Some(expr) = issue.expression {
            b = b.expression(vec![Some(expr.to_string())]);
        }
        out.push(Some(b.build()?));
    }
    if out.is_empty() {
        let details = CodeableConcept::builder()
            .text("All OK".to_string())
            .build()?;
        out.push(Some(
            OperationOutcomeIssue::builder()
                .severity(IssueSeverity::Information)
                .code(IssueType::Informational)
                .details(details)
                .build()?,
        ));
    }
    Ok(OperationOutcome::builder().issue(out).build()?)
}

/// A `transaction-response` Bundle: one entry per created resource, in request order, each
/// `201 Created` with its location (`Encounter/{id}/_history/1`).
pub fn transaction_response(locations: &[String]) -> Result<Value, String> {
    let build = || -> Result<Bundle, Error> {
        let mut entries = Vec::with_capacity(locations.len());
        for location in locations {
            let response = BundleEntryResponse::builder()
                .status("201 Created".to_string())
                .location(location.clone())
                .etag("W/\"1\"".to_string())
                .build()?;
            entries.push(Some(BundleEntry::builder().response(response).build()?));
        }
        Ok(Bundle::builder()
            .r#type(BundleType::TransactionResponse)
            .entry(entries)
            .build()?)
    };
    build()
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::to_value(b).map_err(|e| e.to_string()))
}

/// Whether the typed FHIR model can read this resource. `Err` carries serde's message
/// (which names the element, not the value). The resource itself is left untouched.
pub fn structural_check(resource: &Value) -> Result<(), String> {
    // serde_json's `arbitrary_precision` numbers cannot pass through the buffering serde does
    // for FHIR's choice types, so the typed model reads a copy whose numbers are plain
    // integers and floats (a CBOR value tree).
    to_cbor(resource)
        .deserialized::<Resource>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn to_cbor(v: &Value) -> ciborium::Value {
    use ciborium::Value as C;
    match v {
        Value::Null => C::Null,
        Value::Bool(b) => C::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => C::Integer(i.into()),
            (_, Some(u), _) => C::Integer(u.into()),
            (_, _, Some(f)) => C::Float(f),
            _ => C::Text(n.to_string()),
        },
        Value::String(s) => C::Text(s.clone()),
        Value::Array(a) => C::Array(a.iter().map(to_cbor).collect()),
        Value::Object(m) => C::Map(
            m.iter()
                .map(|(k, v)| (C::Text(k.clone()), to_cbor(v)))
                .collect(),
        ),
    }
}
