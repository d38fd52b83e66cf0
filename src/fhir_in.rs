//! FHIR a facility system built itself (`POST /fhir`, `POST /fhir/{Type}`), made ready for
//! step [3] of the path: the same validation, queue, corrections and pull as a mapped record.
//!
//! Pure, like mapping: the sender's organization comes in, a transaction Bundle shaped as a
//! mapping would have made it comes out —
//! - **identity**: every resource carries its SATUSEHAT identifier
//!   (`http://sys-ids.kemkes.go.id/<type>/<org id>`), under the sender's own organization;
//!   the record's local id is `<Type>/<value>` of the first resource's, so the same Bundle
//!   sent again is recognised and a changed one is a correction of it;
//! - **the sender's organization**: identifier systems and `serviceProvider` must be its own;
//! - **people by NIK**: a reference `Patient?identifier=https://fhir.kemkes.go.id/id/nik|…`
//!   (or `Practitioner?…`) becomes a look-up entry, resolved by the forwarder to the IHS
//!   number exactly as for mapped records;
//! - **time**: a date-time with another offset (`+07:00`, `Z`) is rewritten as the same
//!   instant in UTC `+00:00`, and the sender is told so.
//!
//! Entries are sent as `POST`: gerbang makes updates itself when a correction arrives.

use crate::fhir::{self, Issue, IssueCode, Outcome, Severity, system};
use serde_json::{Map, Value, json};

/// The record type under which FHIR pushed directly is held.
pub const RECORD_TYPE: &str = "fhir";

/// A Bundle ready for validation.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// `<Type>/<identifier value>` of the Bundle's first resource.
    pub local_id: String,
    pub bundle: Value,
    /// What the sender should know: date-times converted to UTC.
    pub notes: Vec<Issue>,
}

/// Why FHIR content is not taken.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// Not the sender's to push: another organization's identifier system or serviceProvider.
    Forbidden(Outcome),
    /// Not a Bundle gerbang can take as it is: what to fix is in the outcome.
    Invalid(Outcome),
}

impl Refused {
    pub fn into_outcome(self) -> Outcome {
        match self {
            Refused::Forbidden(o) | Refused::Invalid(o) => o,
        }
    }
}

/// What a facility sent — a transaction Bundle, or one resource — prepared again (a replay
/// after a fix of the facility's registration).
pub fn prepare(sent: &Value, org: &str) -> Result<Prepared, Refused> {
    match fhir::resource_type(sent) {
        Some("Bundle") | None => prepare_bundle(sent, org),
        Some(rt) => prepare_resource(sent, rt, org),
    }
}

/// One resource sent to `POST /fhir/{Type}`: checked to be a `resource_type` and prepared as
/// a Bundle of one entry.
pub fn prepare_resource(sent: &Value, resource_type: &str, org: &str) -> Result<Prepared, Refused> {
    let found = fhir::resource_type(sent);
    if found != Some(resource_type) {
        return Err(invalid(
            IssueCode::Invalid,
            match found {
                Some("Bundle") => "this is a Bundle: send Bundles to POST /fhir".to_string(),
                Some(t) => format!("POST /fhir/{resource_type} takes a {resource_type}, not a {t}"),
                None => format!(
                    "POST /fhir/{resource_type} takes a {resource_type} resource: a JSON object with \"resourceType\": \"{resource_type}\""
                ),
            },
            resource_type,
        ));
    }
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": sent, "request": {"method": "POST", "url": resource_type}}]
    });
    let mut prepared = prepare_bundle(&bundle, org).map_err(|refused| match refused {
        Refused::Forbidden(o) => Refused::Forbidden(as_sent(o, resource_type)),
        Refused::Invalid(o) => Refused::Invalid(as_sent(o, resource_type)),
    })?;
    prepared.notes = as_sent(Outcome::from(prepared.notes), resource_type).issues;
    Ok(prepared)
}

/// Issues about the Bundle made around one resource, named as places in that resource
/// (`Observation.effectiveDateTime`, not `Bundle.entry[0].resource.effectiveDateTime`).
pub fn as_sent(mut outcome: Outcome, resource_type: &str) -> Outcome {
    for issue in &mut outcome.issues {
        if let Some(e) = &issue.expression {
            if let Some(rest) = e.strip_prefix("Bundle.entry[0].resource") {
                issue.expression = Some(format!("{resource_type}{rest}"));
            }
        }
    }
    outcome
}

/// A transaction Bundle sent to `POST /fhir`.
pub fn prepare_bundle(sent: &Value, org: &str) -> Result<Prepared, Refused> {
    if fhir::resource_type(sent) != Some("Bundle") {
        return Err(invalid(
            IssueCode::Invalid,
            "POST /fhir takes a Bundle of type transaction (or a batch of them); send one resource to POST /fhir/{Type}",
            "",
        ));
    }
    let kind = sent.get("type").and_then(Value::as_str).unwrap_or("");
    if kind != "transaction" {
        return Err(invalid(
            IssueCode::Invalid,
            format!(
                "Bundle.type is `{kind}`; SATUSEHAT takes a `transaction` Bundle (a `batch` Bundle is taken only as a batch of transaction Bundles)"
            ),
            "Bundle.type",
        ));
    }
    let mut bundle = sent.clone();
    let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) else {
        return Err(invalid(
            IssueCode::Required,
            "the Bundle has no entries",
            "Bundle.entry",
        ));
    };
    if entries.is_empty() {
        return Err(invalid(
            IssueCode::Required,
            "the Bundle has no entries",
            "Bundle.entry",
        ));
    }
    let mut local_id = None;
    for (i, entry) in entries.iter_mut().enumerate() {
        let at = format!("Bundle.entry[{i}]");
        let Some(resource) = entry.get("resource").filter(|r| r.is_object()) else {
            return Err(invalid(
                IssueCode::Required,
                "every entry carries a resource",
                format!("{at}.resource"),
            ));
        };
        let Some(rt) = fhir::resource_type(resource).map(str::to_string) else {
            return Err(invalid(
                IssueCode::Required,
                "a resource needs its resourceType",
                format!("{at}.resource.resourceType"),
            ));
        };
        if person_by_nik(entry).is_some() {
            continue;
        }
        let own = own_identifier(resource, &rt, org, &at)?;
        if local_id.is_none() {
            local_id = Some(format!("{rt}/{own}"));
        }
        service_provider(resource, org, &at)?;
        set_request(entry, &rt, &at)?;
        if entry.get("fullUrl").is_none() {
            let id = fhir::uuid5(&format!("{org}/{RECORD_TYPE}/{rt}/{own}"));
            entry["fullUrl"] = json!(format!("urn:uuid:{id}"));
        }
    }
    let Some(local_id) = local_id else {
        return Err(invalid(
            IssueCode::Required,
            "the Bundle only looks people up; it needs at least one resource of the visit (an Encounter, an Observation, …)",
            "Bundle.entry",
        ));
    };
    let notes = to_utc(&mut bundle);
    people_by_nik(&mut bundle, org)?;
    Ok(Prepared {
        local_id,
        bundle,
        notes,
    })
}

/// The local id of the record holding the resource that carries `identifier`
/// (`system|value`), for a cancellation: `<Type>/<value>`; the system must be the sender's.
pub fn local_id_of(resource_type: &str, identifier: &str, org: &str) -> Result<String, Refused> {
    let Some((sys, value)) = identifier.split_once('|').filter(|(_, v)| !v.is_empty()) else {
        return Err(invalid(
            IssueCode::Required,
            format!(
                "name the record by its first resource's SATUSEHAT identifier: ?identifier={}|<value>",
                suggested_system(resource_type, org)
            ),
            "identifier",
        ));
    };
    let resource = json!({"identifier": [{"system": sys, "value": value}]});
    own_identifier(&resource, resource_type, org, "identifier")?;
    Ok(format!("{resource_type}/{value}"))
}

/// The NIK a look-up entry finds a person by: a Patient or Practitioner sent as a conditional
/// create on its NIK (as gerbang's mappings write them).
fn person_by_nik(entry: &Value) -> Option<(&str, &str)> {
    let query = entry.pointer("/request/ifNoneExist")?.as_str()?;
    let rt = fhir::resource_type(entry.get("resource")?)?;
    let (sys, nik) = query.strip_prefix("identifier=")?.split_once('|')?;
    (matches!(rt, "Patient" | "Practitioner") && (sys == system::NIK || sys == system::NIK_IBU))
        .then_some((rt, nik))
}

/// The value of the resource's SATUSEHAT identifier under the sender's organization.
fn own_identifier(resource: &Value, rt: &str, org: &str, at: &str) -> Result<String, Refused> {
    let mut own = None;
    for (loc, id) in fhir::identifiers(resource) {
        let Some(rest) = id
            .get("system")
            .and_then(Value::as_str)
            .and_then(|s| s.strip_prefix(system::SYS_IDS))
        else {
            continue;
        };
        // `<kind>/<org id>[/…]` names an organization; other SATUSEHAT systems
        // (`program`, `sub-program`, `source-channel`) name none and are not the resource's
        // own identifier.
        let named = rest.split('/').nth(1).unwrap_or("");
        if named.is_empty() || !named.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if named != org {
            return Err(Refused::Forbidden(Outcome::one(
                Issue::error(
                    IssueCode::Forbidden,
                    format!(
                        "identifier system http://sys-ids.kemkes.go.id/{rest} names organization `{named}`; this key pushes for organization {org} only — use {}",
                        suggested_system(rt, org)
                    ),
                )
                .at(format!("{at}.resource.{loc}.system")),
            )));
        }
        match id.get("value").and_then(Value::as_str) {
            Some(v) if !v.trim().is_empty() => {
                own.get_or_insert_with(|| v.to_string());
            }
            _ => {
                return Err(invalid(
                    IssueCode::Required,
                    "a SATUSEHAT identifier needs its value: the facility's own id of this resource",
                    format!("{at}.resource.{loc}.value"),
                ));
            }
        }
    }
    own.ok_or_else(|| {
        invalid(
            IssueCode::Required,
            format!(
                "this {rt} has no SATUSEHAT identifier; add {{\"system\": \"{}\", \"value\": \"<your own id of it>\"}} — it is how SATUSEHAT and gerbang recognise it when sent again",
                suggested_system(rt, org)
            ),
            format!("{at}.resource.identifier"),
        )
    })
}

/// The identifier system SATUSEHAT names for a resource type (satusehat.md §2.1).
fn suggested_system(rt: &str, org: &str) -> String {
    let kind = match rt {
        "EpisodeOfCare" => "episode-of-care".to_string(),
        "AllergyIntolerance" => "allergy".to_string(),
        "MedicationRequest" => "prescription".to_string(),
        "DiagnosticReport" => return format!("{}diagnostic/{org}/lab", system::SYS_IDS),
        other => other.to_ascii_lowercase(),
    };
    format!("{}{kind}/{org}", system::SYS_IDS)
}

fn service_provider(resource: &Value, org: &str, at: &str) -> Result<(), Refused> {
    let Some(named) = resource.pointer("/serviceProvider/reference") else {
        return Ok(());
    };
    let own = format!("Organization/{org}");
    if named.as_str() == Some(own.as_str()) {
        return Ok(());
    }
    Err(Refused::Forbidden(Outcome::one(
        Issue::error(
            IssueCode::Forbidden,
            format!(
                "serviceProvider is {named}; this key pushes for organization {org} only — write {{\"reference\": \"{own}\"}}"
            ),
        )
        .at(format!("{at}.resource.serviceProvider")),
    )))
}

/// Every resource is sent as a create; what SATUSEHAT holds is updated by gerbang itself
/// when the record is corrected.
fn set_request(entry: &mut Value, rt: &str, at: &str) -> Result<(), Refused> {
    let request = entry
        .as_object_mut()
        .map(|e| e.entry("request").or_insert_with(|| json!({})))
        .expect("entries were checked to be objects");
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("POST");
    if method != "POST" {
        return Err(invalid(
            IssueCode::NotSupported,
            format!(
                "request.method is {method}; send every resource as POST — to change what SATUSEHAT holds, send the whole corrected Bundle again (gerbang sends the updates), to withdraw it DELETE /fhir/{rt}?identifier=…"
            ),
            format!("{at}.request.method"),
        ));
    }
    request["method"] = json!("POST");
    request["url"] = json!(rt);
    Ok(())
}

/// References to people by NIK become look-up entries (one per person, after the sender's
/// entries, so that every `Bundle.entry[i]` an answer names is the sender's own) that the
/// forwarder resolves; any other search reference is refused.
fn people_by_nik(bundle: &mut Value, org: &str) -> Result<(), Refused> {
    // `Patient?identifier=…|nik` → the fullUrl of its look-up entry.
    let mut lookups: Vec<(String, String, String)> = Vec::new();
    for e in bundle["entry"].as_array().into_iter().flatten() {
        if let (Some((rt, nik)), Some(url)) =
            (person_by_nik(e), e.get("fullUrl").and_then(Value::as_str))
        {
            lookups.push((rt.to_string(), nik.to_string(), url.to_string()));
        }
    }
    let mut added: Vec<Value> = Vec::new();
    let mut refused = None;
    let entries = bundle["entry"].as_array_mut().expect("checked above");
    for (i, entry) in entries.iter_mut().enumerate() {
        let Some(resource) = entry.get_mut("resource") else {
            continue;
        };
        fhir::rewrite_references(resource, &mut |r: &str| {
            let (target, query) = r.split_once('?')?;
            let person = query
                .strip_prefix("identifier=")
                .map(|q| q.replace("%7C", "|").replace("%7c", "|"))
                .and_then(|q| {
                    q.strip_prefix(system::NIK)
                        .and_then(|v| v.strip_prefix('|'))
                        .map(str::to_string)
                });
            let (Some(nik), "Patient" | "Practitioner") = (person, target) else {
                // Named by its type and parameter only: the value may be a NIK.
                let shown = match query.split_once('=') {
                    Some((param, _)) => format!("{target}?{param}=…"),
                    None => format!("{target}?…"),
                };
                refused.get_or_insert((i, shown));
                return None;
            };
            if let Some((_, _, url)) = lookups.iter().find(|(t, n, _)| t == target && *n == nik) {
                return Some(url.clone());
            }
            let url = format!(
                "urn:uuid:{}",
                fhir::uuid5(&format!("{org}/{RECORD_TYPE}/{target}/nik/{nik}"))
            );
            added.push(json!({
                "fullUrl": url,
                "resource": {
                    "resourceType": target,
                    "identifier": [{"use": "official", "system": system::NIK, "value": nik}]
                },
                "request": {
                    "method": "POST",
                    "url": target,
                    "ifNoneExist": format!("identifier={}|{nik}", system::NIK)
                }
            }));
            lookups.push((target.to_string(), nik, url.clone()));
            Some(url)
        });
    }
    if let Some((i, r)) = refused {
        return Err(invalid(
            IssueCode::NotSupported,
            format!(
                "`{r}`: a reference by search is resolved only for a Patient or Practitioner by NIK (Patient?identifier={}|<NIK>); refer to other resources by their fullUrl in this Bundle or as Type/<SATUSEHAT id>",
                system::NIK
            ),
            format!("Bundle.entry[{i}].resource"),
        ));
    }
    if !added.is_empty() {
        let entries = bundle["entry"].as_array_mut().expect("checked above");
        entries.extend(added);
    }
    Ok(())
}

/// Rewrite every date-time with another offset as the same instant in UTC `+00:00`, and say
/// where.
fn to_utc(bundle: &mut Value) -> Vec<Issue> {
    fn walk(v: &mut Value, at: String, notes: &mut Vec<Issue>) {
        match v {
            Value::Object(map) => walk_map(map, &at, notes),
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item, format!("{at}[{i}]"), notes);
                }
            }
            Value::String(s) => {
                if let Some(utc) = crate::time::as_satusehat_utc(s) {
                    notes.push(
                        Issue::new(
                            Severity::Information,
                            IssueCode::Informational,
                            format!("`{s}` is delivered as `{utc}`: the same instant in UTC, as SATUSEHAT asks"),
                        )
                        .at(at),
                    );
                    *s = utc;
                }
            }
            _ => {}
        }
    }
    fn walk_map(map: &mut Map<String, Value>, at: &str, notes: &mut Vec<Issue>) {
        for (k, child) in map.iter_mut() {
            if k == "request" || k == "fullUrl" {
                continue;
            }
            walk(child, format!("{at}.{k}"), notes);
        }
    }
    let mut notes = Vec::new();
    if let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) {
        for (i, entry) in entries.iter_mut().enumerate() {
            if let Some(resource) = entry.get_mut("resource") {
                walk(resource, format!("Bundle.entry[{i}].resource"), &mut notes);
            }
        }
    }
    notes
}

fn invalid(code: IssueCode, text: impl Into<String>, at: impl Into<String>) -> Refused {
    let at = at.into();
    let issue = Issue::error(code, text);
    Refused::Invalid(Outcome::one(if at.is_empty() {
        issue
    } else {
        issue.at(at)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "1000000001";

    fn encounter() -> Value {
        json!({
            "resourceType": "Encounter",
            "identifier": [{"system": "http://sys-ids.kemkes.go.id/encounter/1000000001", "value": "K-1"}],
            "status": "finished",
            "subject": {"reference": "Patient?identifier=https://fhir.kemkes.go.id/id/nik|3273015008250002"},
            "participant": [{"individual": {"reference": "Practitioner?identifier=https://fhir.kemkes.go.id/id/nik|3273014703880001"}}],
            "period": {"start": "2026-05-12T08:30:00+07:00", "end": "2026-05-12T01:55:00+00:00"},
            "serviceProvider": {"reference": "Organization/1000000001"}
        })
    }

    fn observation() -> Value {
        json!({
            "resourceType": "Observation",
            "identifier": [{"system": "http://sys-ids.kemkes.go.id/observation/1000000001", "value": "K-1/bb"}],
            "subject": {"reference": "Patient?identifier=https://fhir.kemkes.go.id/id/nik|3273015008250002"},
            "encounter": {"reference": "urn:uuid:enc"},
            "effectiveDateTime": "2026-05-12T01:40:00Z"
        })
    }

    fn transaction(resources: Vec<Value>) -> Value {
        let entries: Vec<Value> = resources
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let rt = r["resourceType"].clone();
                let url = if i == 0 {
                    "urn:uuid:enc".to_string()
                } else {
                    format!("urn:uuid:{i}")
                };
                json!({"fullUrl": url, "resource": r, "request": {"method": "POST", "url": rt}})
            })
            .collect();
        json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    }

    fn refused_text(r: Refused) -> (bool, String, Option<String>) {
        let (forbidden, outcome) = match r {
            Refused::Forbidden(o) => (true, o),
            Refused::Invalid(o) => (false, o),
        };
        (
            forbidden,
            outcome.issues[0].text.clone(),
            outcome.issues[0].expression.clone(),
        )
    }

    #[test]
    fn people_by_nik_become_look_up_entries_once_each() {
        let p = prepare_bundle(&transaction(vec![encounter(), observation()]), ORG).unwrap();
        let entries = p.bundle["entry"].as_array().unwrap();
        assert_eq!(entries.len(), 4, "{:#}", p.bundle);
        // The sender's entries keep their places; the look-ups follow.
        assert_eq!(entries[0]["resource"]["resourceType"], "Encounter");
        assert_eq!(entries[2]["resource"]["resourceType"], "Patient");
        assert_eq!(
            entries[2]["request"]["ifNoneExist"],
            "identifier=https://fhir.kemkes.go.id/id/nik|3273015008250002"
        );
        assert_eq!(entries[3]["resource"]["resourceType"], "Practitioner");
        let patient = entries[2]["fullUrl"].as_str().unwrap();
        // Both references to the patient point at its one look-up entry.
        assert_eq!(entries[0]["resource"]["subject"]["reference"], patient);
        assert_eq!(entries[1]["resource"]["subject"]["reference"], patient);
        assert_eq!(
            entries[0]["resource"]["participant"][0]["individual"]["reference"],
            entries[3]["fullUrl"]
        );
        assert_eq!(p.local_id, "Encounter/K-1");
    }

    #[test]
    fn other_offsets_are_delivered_as_utc_and_said_so() {
        let p = prepare_bundle(&transaction(vec![encounter(), observation()]), ORG).unwrap();
        let enc = &p.bundle["entry"][0]["resource"];
        assert_eq!(enc["period"]["start"], "2026-05-12T01:30:00+00:00");
        assert_eq!(enc["period"]["end"], "2026-05-12T01:55:00+00:00");
        assert_eq!(
            p.bundle["entry"][1]["resource"]["effectiveDateTime"],
            "2026-05-12T01:40:00+00:00"
        );
        let at: Vec<&str> = p
            .notes
            .iter()
            .filter_map(|n| n.expression.as_deref())
            .collect();
        assert_eq!(
            at,
            [
                "Bundle.entry[0].resource.period.start",
                "Bundle.entry[1].resource.effectiveDateTime"
            ]
        );
        assert!(p.notes[0].text.contains("2026-05-12T08:30:00+07:00"));
    }

    #[test]
    fn a_resource_without_its_satusehat_identifier_is_refused_with_the_system_to_use() {
        let mut obs = observation();
        obs.as_object_mut().unwrap().remove("identifier");
        let (forbidden, text, at) =
            refused_text(prepare_bundle(&transaction(vec![encounter(), obs]), ORG).unwrap_err());
        assert!(!forbidden);
        assert!(
            text.contains("http://sys-ids.kemkes.go.id/observation/1000000001"),
            "{text}"
        );
        assert_eq!(at.as_deref(), Some("Bundle.entry[1].resource.identifier"));
    }

    #[test]
    fn another_organization_is_forbidden() {
        let mut enc = encounter();
        enc["identifier"][0]["system"] = json!("http://sys-ids.kemkes.go.id/encounter/1000000099");
        let (forbidden, text, _) =
            refused_text(prepare_bundle(&transaction(vec![enc]), ORG).unwrap_err());
        assert!(forbidden, "{text}");
        let mut enc = encounter();
        enc["serviceProvider"]["reference"] = json!("Organization/1000000099");
        let (forbidden, text, at) =
            refused_text(prepare_bundle(&transaction(vec![enc]), ORG).unwrap_err());
        assert!(forbidden, "{text}");
        assert_eq!(
            at.as_deref(),
            Some("Bundle.entry[0].resource.serviceProvider")
        );
    }

    #[test]
    fn identifiers_that_name_no_organization_are_neither_own_nor_foreign() {
        let mut enc = encounter();
        enc["identifier"] = json!([
            {"system": "http://sys-ids.kemkes.go.id/program", "value": "ILP"},
            {"system": "http://sys-ids.kemkes.go.id/encounter/1000000001", "value": "K-1"}
        ]);
        assert_eq!(
            prepare_bundle(&transaction(vec![enc.clone()]), ORG)
                .unwrap()
                .local_id,
            "Encounter/K-1"
        );
        enc["identifier"].as_array_mut().unwrap().pop();
        let (forbidden, text, _) =
            refused_text(prepare_bundle(&transaction(vec![enc]), ORG).unwrap_err());
        assert!(
            !forbidden && text.contains("no SATUSEHAT identifier"),
            "{text}"
        );
    }

    #[test]
    fn only_creates_and_only_people_by_search() {
        let mut b = transaction(vec![encounter()]);
        b["entry"][0]["request"] = json!({"method": "PUT", "url": "Encounter/abc"});
        let (_, text, _) = refused_text(prepare_bundle(&b, ORG).unwrap_err());
        assert!(text.contains("send every resource as POST"), "{text}");
        let mut obs = observation();
        obs["encounter"]["reference"] = json!("Encounter?identifier=x|y");
        let (_, text, _) =
            refused_text(prepare_bundle(&transaction(vec![encounter(), obs]), ORG).unwrap_err());
        assert!(
            text.contains("only for a Patient or Practitioner by NIK"),
            "{text}"
        );
        let (_, text, _) = refused_text(
            prepare_bundle(
                &json!({"resourceType": "Bundle", "type": "collection", "entry": []}),
                ORG,
            )
            .unwrap_err(),
        );
        assert!(text.contains("transaction"), "{text}");
    }

    #[test]
    fn one_resource_is_a_bundle_of_one_named_by_its_identifier() {
        let p = prepare_resource(&observation(), "Observation", ORG).unwrap();
        assert_eq!(p.local_id, "Observation/K-1/bb");
        assert_eq!(p.bundle["entry"].as_array().unwrap().len(), 2);
        assert!(
            p.bundle["entry"][0]["fullUrl"]
                .as_str()
                .unwrap()
                .starts_with("urn:uuid:")
        );
        assert_eq!(
            p.notes[0].expression.as_deref(),
            Some("Observation.effectiveDateTime")
        );
        assert!(prepare_resource(&observation(), "Encounter", ORG).is_err());
        // The same content gives the same Bundle: a re-send is recognised.
        assert_eq!(
            prepare_resource(&observation(), "Observation", ORG)
                .unwrap()
                .bundle,
            p.bundle
        );
    }

    #[test]
    fn a_cancellation_names_the_record_by_identifier() {
        assert_eq!(
            local_id_of(
                "Encounter",
                "http://sys-ids.kemkes.go.id/encounter/1000000001|K-1",
                ORG
            )
            .unwrap(),
            "Encounter/K-1"
        );
        assert!(matches!(
            local_id_of(
                "Encounter",
                "http://sys-ids.kemkes.go.id/encounter/9|K-1",
                ORG
            ),
            Err(Refused::Forbidden(_))
        ));
        assert!(local_id_of("Encounter", "K-1", ORG).is_err());
    }
}
