//! Layer (d): Bundle integrity, as SATUSEHAT checks it before looking at any resource
//! (rules 20011, 20017–20021), plus the references that must resolve inside a transaction.

use crate::fhir::{self, Issue, IssueCode, Outcome};
use foldhash::{HashMap, HashMapExt};
use serde_json::Value;

/// The resourceType of every entry, by fullUrl.
pub fn index(bundle: &Value) -> HashMap<String, String> {
    fhir::entries(bundle)
        .filter_map(|e| Some((e.full_url?.to_string(), e.resource_type()?.to_string())))
        .collect()
}

pub fn check(bundle: &Value) -> Outcome {
    let mut out = Outcome::new();
    let bundle_type = bundle.get("type").and_then(Value::as_str).unwrap_or("");
    let is_transaction = matches!(bundle_type, "transaction" | "batch");
    let mut seen: HashMap<&str, usize> = HashMap::new();

    for e in fhir::entries(bundle) {
        let at = format!("Bundle.entry[{}]", e.index);
        let rt = e.resource_type().unwrap_or("resource");
        if rt == "Bundle" {
            out.push(
                Issue::error(
                    IssueCode::Structure,
                    "a Bundle may not contain another Bundle; send the inner entries directly",
                )
                .at(format!("{at}.resource"))
                .rule(20011),
            );
        }
        match e.full_url {
            None if is_transaction => out.push(
                Issue::error(
                    IssueCode::Required,
                    format!("{rt} entry has no fullUrl; give it `urn:uuid:<uuid>`"),
                )
                .at(format!("{at}.fullUrl"))
                .rule(20021),
            ),
            None => {}
            Some(url) => {
                if is_transaction {
                    match url.strip_prefix("urn:uuid:") {
                        None => out.push(
                            Issue::error(
                                IssueCode::Value,
                                format!("{rt}.fullUrl must begin with `urn:uuid:`"),
                            )
                            .at(format!("{at}.fullUrl"))
                            .rule(20018),
                        ),
                        Some(u) if uuid::Uuid::try_parse(u).is_err() || u.len() != 36 => out.push(
                            Issue::error(
                                IssueCode::Value,
                                format!("{rt}.fullUrl is not `urn:uuid:` followed by a valid UUID"),
                            )
                            .at(format!("{at}.fullUrl"))
                            .rule(20019),
                        ),
                        _ => {}
                    }
                }
                if let Some(first) = seen.insert(url, e.index) {
                    out.push(
                        Issue::error(IssueCode::Duplicate, format!("duplicate fullUrl: entry {first} has the same; each entry needs its own"))
                            .at(format!("{at}.fullUrl"))
                            .rule(20020),
                    );
                }
            }
        }
        if is_transaction {
            let entry = &bundle["entry"][e.index];
            for field in ["method", "url"] {
                if entry
                    .pointer(&format!("/request/{field}"))
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    out.push(
                        Issue::error(
                            IssueCode::Required,
                            format!("a {bundle_type} entry needs request.{field} (e.g. POST {rt})"),
                        )
                        .at(format!("{at}.request.{field}")),
                    );
                }
            }
        }
        if e.resource.is_none() && is_transaction {
            let method = bundle["entry"][e.index]
                .pointer("/request/method")
                .and_then(Value::as_str)
                .unwrap_or("");
            if method != "DELETE" && method != "GET" {
                out.push(
                    Issue::error(IssueCode::Required, "entry has no resource")
                        .at(format!("{at}.resource")),
                );
            }
        }
    }

    if is_transaction {
        for e in fhir::entries(bundle) {
            let Some(resource) = e.resource else { continue };
            for (path, reference) in fhir::references(resource) {
                if reference.starts_with("urn:uuid:") && !seen.contains_key(reference) {
                    out.push(
                        Issue::error(
                            IssueCode::NotFound,
                            "reference to a urn:uuid that is not the fullUrl of any entry in this Bundle",
                        )
                        .at(format!("Bundle.entry[{}].resource.{path}.reference", e.index)),
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const U1: &str = "urn:uuid:0b7c3f5e-8a53-4b7f-9a41-2c1e5f6a7b80";

    #[test]
    fn integrity_rules() {
        let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": U1, "resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": U1, "resource": {"resourceType": "Encounter", "subject": {"reference": "urn:uuid:0b7c3f5e-8a53-4b7f-9a41-000000000000"}}, "request": {"method": "POST", "url": "Encounter"}},
            {"fullUrl": "Encounter/1", "resource": {"resourceType": "Bundle"}, "request": {"method": "POST"}},
            {"fullUrl": "urn:uuid:not-a-uuid", "resource": {"resourceType": "Observation"}, "request": {"method": "POST", "url": "Observation"}}
        ]});
        let o = check(&b);
        let rules = o.rule_numbers();
        for r in [20020, 20011, 20018, 20019] {
            assert!(rules.contains(&r), "missing {r} in {o:?}");
        }
        assert!(
            o.issues
                .iter()
                .any(|i| i.expression.as_deref() == Some("Bundle.entry[2].request.url"))
        );
        assert!(
            o.issues
                .iter()
                .any(|i| i.expression.as_deref()
                    == Some("Bundle.entry[1].resource.subject.reference"))
        );
    }
}
