//! Pulling: the national platform (or any authorised system) reads back what gerbang
//! delivered — step [6] of the path in DESIGN.md. Two ways, both over the same store feed
//! ([`crate::store::pull`]):
//!
//! - **the `_since` feed** (`GET /fhir/Bundle`, [`crate::api::pull`]): the delivered
//!   transaction Bundles, page by page, in the order their deliveries were committed. The
//!   cursor of a page is its last feed position, so a puller that follows `next` links never
//!   misses or repeats a Bundle, even with deliveries committing while it reads;
//! - **Bulk Data `$export`** ([`export`]): an asynchronous job that writes every resource of
//!   the matching Bundles as NDJSON, one file per resource type.
//!
//! **What can be pulled.** Delivered records whose payload is still held: payloads of
//! delivered records are pruned after `[store] retention_secs` (the receipt stays), and a
//! pruned record is skipped by both. A puller must therefore pull more often than the
//! retention (the default, 90 days, leaves ample room; a short retention does not).
//!
//! **What a record exports as.** The Bundle as gerbang stored and sent it, before NIKs were
//! resolved to IHS numbers: the conditional Patient and Practitioner entries with their NIK
//! identifiers are part of it. They are personal data (PHI); a client is given them because
//! its registration and its token's scope authorise it to read them. In an export every
//! resource gets the id of its deterministic `urn:uuid` fullUrl and references between the
//! resources of a Bundle become `Type/id`, so the NDJSON files stand on their own. A shared
//! resource (a conditional entry: the patient, the health worker, a pregnancy's
//! EpisodeOfCare) gets an id derived from its identifier instead — the same person has one id
//! in every record — and is written once per export, the first time it occurs (the earliest
//! delivery). The export remembers which shared resources it wrote: 16 bytes each, so memory
//! grows with the number of distinct patients and health workers in it, not with the number
//! of resources.

pub mod export;

use crate::fhir;
use chrono::{SecondsFormat, TimeZone, Utc};
use serde_json::Value;
use std::collections::HashMap;

/// A FHIR instant with milliseconds, `2026-11-03T01:02:03.456+00:00`: feed and export times
/// are given to the millisecond so that one used as `_since` loses nothing.
pub fn instant(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// One resource of a delivered Bundle, as exported.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    pub resource_type: String,
    /// The resource with its id and its references rewritten (see the module documentation).
    pub resource: Value,
    /// A conditional entry (looked up, or created only if absent): the same resource recurs
    /// in many Bundles and is exported once.
    pub shared: bool,
}

/// The resources of a stored transaction Bundle, in entry order.
/// The Bundle of a feed item as SATUSEHAT now holds it: for a cancelled record, each resource
/// the record owns is entered-in-error (look-ups and shared resources are not the record's).
pub fn held_bundle(item: &crate::store::FeedItem) -> std::borrow::Cow<'_, Value> {
    if !item.cancelled {
        return std::borrow::Cow::Borrowed(&item.bundle);
    }
    let mut bundle = item.bundle.clone();
    if let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) {
        for entry in entries {
            if entry.pointer("/request/ifNoneExist").is_some() {
                continue;
            }
            if let Some(retired) = entry
                .get("resource")
                .and_then(crate::deliver::plan::entered_in_error)
            {
                entry["resource"] = retired;
            }
        }
    }
    std::borrow::Cow::Owned(bundle)
}

pub fn resources(bundle: &Value) -> Vec<Exported> {
    // Each entry's id, and urn:uuid fullUrl → `Type/id`.
    let mut ids: Vec<Option<String>> = Vec::new();
    let mut local: HashMap<String, String> = HashMap::new();
    for e in fhir::entries(bundle) {
        let id = e.resource_type().and_then(|rt| export_id(bundle, &e, rt));
        if let (Some(url), Some(rt), Some(id)) = (e.full_url, e.resource_type(), &id)
            && url.starts_with("urn:uuid:")
        {
            local.insert(url.to_string(), format!("{rt}/{id}"));
        }
        ids.push(id);
    }
    let mut out = Vec::new();
    for e in fhir::entries(bundle) {
        let (Some(resource), Some(rt)) = (e.resource, e.resource_type()) else {
            continue;
        };
        let mut resource = resource.clone();
        if resource.get("id").is_none()
            && let Some(id) = &ids[e.index]
            && let Some(map) = resource.as_object_mut()
        {
            // `id` right after `resourceType`, where people look for it.
            let mut with_id = serde_json::Map::with_capacity(map.len() + 1);
            for (k, v) in std::mem::take(map) {
                let first = k == "resourceType";
                with_id.insert(k, v);
                if first {
                    with_id.insert("id".into(), Value::String(id.clone()));
                }
            }
            if !with_id.contains_key("id") {
                with_id.insert("id".into(), Value::String(id.clone()));
            }
            *map = with_id;
        }
        fhir::rewrite_references(&mut resource, &mut |r| local.get(r).cloned());
        out.push(Exported {
            resource_type: rt.to_string(),
            resource,
            shared: conditional(bundle, e.index).is_some(),
        });
    }
    out
}

/// The `ifNoneExist` of a conditional entry (a resource looked up by its identifier).
fn conditional(bundle: &Value, index: usize) -> Option<&str> {
    bundle["entry"][index]
        .pointer("/request/ifNoneExist")
        .and_then(Value::as_str)
}

/// The id a resource is exported under: its own; for a conditional entry, one derived from
/// its identifier (`uuid5("Patient?identifier=…|NIK")`), so that the same patient or health
/// worker has one id across every record that names them (their fullUrls differ per
/// record); otherwise the UUID of its `urn:uuid` fullUrl.
fn export_id(bundle: &Value, e: &fhir::EntryRef<'_>, rt: &str) -> Option<String> {
    if let Some(own) = e.resource?.get("id").and_then(Value::as_str) {
        return Some(own.to_string());
    }
    if let Some(query) = conditional(bundle, e.index) {
        return Some(fhir::uuid5(&format!("{rt}?{query}")).to_string());
    }
    e.full_url?.strip_prefix("urn:uuid:").map(str::to_string)
}

/// The resource types gerbang's mappings produce (the first word of each `produces` line of
/// every `mapping.yaml`): what `_type` may name.
pub fn supported_types(mappings: &crate::mapping::Mappings) -> Vec<String> {
    let mut types: Vec<String> = mappings
        .record_types()
        .flat_map(|t| t.meta.produces.iter())
        .filter_map(|p| p.split_whitespace().next())
        .filter(|t| t.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(str::to_string)
        .collect();
    types.sort();
    types.dedup();
    types
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resources_get_their_ids_and_local_references() {
        let bundle = json!({
            "resourceType": "Bundle", "type": "transaction",
            "entry": [
                {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "identifier": [{"value": "x"}]},
                 "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=x"}},
                {"fullUrl": "urn:uuid:e1", "resource": {"resourceType": "Encounter", "subject": {"reference": "urn:uuid:p1", "display": "A"},
                 "serviceProvider": {"reference": "Organization/100"}},
                 "request": {"method": "POST", "url": "Encounter"}},
                {"fullUrl": "urn:uuid:o1", "resource": {"resourceType": "Observation", "id": "own", "encounter": {"reference": "urn:uuid:e1"}}}
            ]
        });
        let mut bundle = bundle;
        bundle["entry"][2]["resource"]["valueQuantity"] =
            serde_json::from_str(r#"{"value": 1.50}"#).unwrap();
        let out = resources(&bundle);
        assert_eq!(out.len(), 3);
        // The patient's id comes from its identifier: the same in every record.
        let patient = fhir::uuid5("Patient?identifier=x").to_string();
        assert_eq!(
            serde_json::to_string(&out[0].resource).unwrap(),
            format!(
                r#"{{"resourceType":"Patient","id":"{patient}","identifier":[{{"value":"x"}}]}}"#
            )
        );
        assert!(out[0].shared);
        assert!(!out[1].shared);
        assert_eq!(out[1].resource["id"], "e1");
        assert_eq!(
            out[1].resource["subject"]["reference"],
            format!("Patient/{patient}").as_str()
        );
        assert_eq!(
            out[1].resource["serviceProvider"]["reference"],
            "Organization/100"
        );
        // An id of its own is kept; decimals stay exactly as sent.
        assert_eq!(out[2].resource["id"], "own");
        assert_eq!(out[2].resource["encounter"]["reference"], "Encounter/e1");
        assert!(
            serde_json::to_string(&out[2].resource)
                .unwrap()
                .contains("1.50")
        );
    }

    #[test]
    fn instants_keep_milliseconds() {
        assert_eq!(instant(1_700_000_000_123), "2023-11-14T22:13:20.123+00:00");
    }
}
