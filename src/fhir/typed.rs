//! gerbang's side of the typed-model boundary: converts its own types and calls the
//! `gerbang-fhir-typed` crate (src/fhir-typed), where every use of fhir-sdk lives so that the
//! heavy model is compiled once.

use super::IssueCode;
use super::outcome::Issue;
use serde_json::{Value, json};

/// Build an OperationOutcome from issues. Never fails: the caller must still be able to
/// answer even if the typed builder refused something.
pub fn operation_outcome(issues: &[Issue]) -> Value {
    let specs: Vec<gerbang_fhir_typed::IssueSpec> = issues
        .iter()
        .map(|i| gerbang_fhir_typed::IssueSpec {
            severity: i.severity.as_str(),
            code: i.code.as_str(),
            text: i.details_text(),
            expression: i.expression.as_deref(),
        })
        .collect();
    gerbang_fhir_typed::operation_outcome(&specs).unwrap_or_else(|e| fallback(&e))
}

/// A `transaction-response` Bundle with one `201 Created` entry per location.
pub fn transaction_response(locations: &[String]) -> Value {
    gerbang_fhir_typed::transaction_response(locations).unwrap_or_else(|e| fallback(&e))
}

/// Whether the typed FHIR model can read this resource (a second structural opinion).
pub fn structural_check(resource: &Value) -> Result<(), String> {
    gerbang_fhir_typed::structural_check(resource)
}

fn fallback(e: &str) -> Value {
    json!({"resourceType": "OperationOutcome", "issue": [{"severity": "fatal", "code": IssueCode::Exception.as_str(),
        "details": {"text": format!("gerbang could not build its answer: {e}")}}]})
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_operation_outcome_with_expression() {
        let oo = operation_outcome(&[Issue::error(IssueCode::Required, "subject is required")
            .at("Encounter.subject")
            .rule(10118)]);
        assert_eq!(oo["resourceType"], "OperationOutcome");
        assert_eq!(oo["issue"][0]["code"], "required");
        assert_eq!(oo["issue"][0]["expression"][0], "Encounter.subject");
        assert_eq!(
            oo["issue"][0]["details"]["text"],
            "subject is required (RuleNumber: 10118)"
        );
    }

    #[test]
    fn every_issue_code_is_a_fhir_issue_type() {
        use IssueCode::*;
        for code in [
            Invalid,
            Structure,
            Required,
            Value,
            Invariant,
            Security,
            Login,
            Forbidden,
            Processing,
            NotSupported,
            Duplicate,
            NotFound,
            TooLong,
            CodeInvalid,
            BusinessRule,
            Conflict,
            Throttled,
            Exception,
            Transient,
            Timeout,
            Informational,
        ] {
            let oo = operation_outcome(&[Issue::error(code, "x")]);
            assert_eq!(oo["issue"][0]["code"], code.as_str(), "{code:?}");
        }
    }

    #[test]
    fn transaction_response_has_locations() {
        let b = transaction_response(&["Encounter/abc/_history/1".to_string()]);
        assert_eq!(b["type"], "transaction-response");
        assert_eq!(
            b["entry"][0]["response"]["location"],
            "Encounter/abc/_history/1"
        );
        assert_eq!(b["entry"][0]["response"]["status"], "201 Created");
    }

    #[test]
    fn structural_check_reads_valid_and_rejects_wrong_types() {
        assert!(structural_check(&json!({"resourceType": "Patient", "gender": "female"})).is_ok());
        assert!(structural_check(&json!({"resourceType": "Patient", "active": "yes"})).is_err());
        // Decimals inside choice types (value[x]) and nested quantities.
        let obs: Value = serde_json::from_str(
            r#"{"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "valueQuantity": {"value": 8.10, "unit": "kg"}}"#,
        )
        .unwrap();
        assert_eq!(structural_check(&obs), Ok(()));
        let imm: Value = serde_json::from_str(
            r#"{"resourceType": "Immunization", "status": "completed", "vaccineCode": {"text": "x"},
            "patient": {"reference": "Patient/1"}, "occurrenceDateTime": "2026-01-01", "doseQuantity": {"value": 0.5},
            "protocolApplied": [{"doseNumberPositiveInt": 1}]}"#,
        )
        .unwrap();
        assert_eq!(structural_check(&imm), Ok(()));
    }
}
