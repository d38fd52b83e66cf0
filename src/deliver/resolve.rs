//! Resolution: the stored Bundle names the patient and the health worker by NIK (as
//! conditional creates); SATUSEHAT wants `Patient/{IHS number}` and
//! `Practitioner/{IHS number}`. This step looks them up (through a persistent cache keyed by
//! a hash of the NIK), registers a newborn known only by the mother's NIK, rewrites the
//! references and drops the look-up entries from the Bundle that is sent. Other conditional
//! entries (a pregnancy's EpisodeOfCare shared by every ANC visit) are looked up by their
//! identifier the same way and created only if SATUSEHAT does not have them yet.
//!
//! After a 20002 (SATUSEHAT holds some of the Bundle already), [`by_identifier`] finds what it
//! holds, entry by entry, a few look-ups at a time.

use super::client::{CallError, SatusehatClient, ServerId};
use crate::fhir::{self, Issue, IssueCode, Outcome, system};
use crate::store::{Store, sha256_hex};
use serde_json::Value;
use std::collections::HashMap;

/// Identifier look-ups in flight at once for one Bundle after a 20002. Each is one small
/// search; a few at a time finish a Bundle of 8–20 entries in two to five round trips without
/// flooding SATUSEHAT (the per-organization cap counts deliveries, not these).
pub const LOOKUPS_AT_ONCE: usize = 4;

/// How long a NIK → IHS answer is trusted. IHS numbers do not change; the expiry only
/// bounds how long a merge or correction upstream goes unnoticed.
const CACHE_MS: i64 = 30 * 24 * 3600 * 1000;

#[derive(Debug)]
pub enum ResolveError {
    Call(CallError),
    /// SATUSEHAT does not know this person; only a fix upstream (registration) helps.
    Unknown {
        message: String,
        outcome: Value,
    },
}

impl From<CallError> for ResolveError {
    fn from(e: CallError) -> Self {
        ResolveError::Call(e)
    }
}

/// The Bundle to send upstream.
pub async fn resolve(
    bundle: &Value,
    org: &str,
    client: &SatusehatClient,
    store: &Store,
    now: i64,
) -> Result<Value, ResolveError> {
    // fullUrl → `Type/id` of what SATUSEHAT already has.
    let mut known: HashMap<String, String> = HashMap::new();
    for e in fhir::entries(bundle) {
        let entry = &bundle["entry"][e.index];
        let Some(query) = entry
            .pointer("/request/ifNoneExist")
            .and_then(Value::as_str)
        else {
            continue;
        };
        let (Some(resource), Some(full_url)) = (e.resource, e.full_url) else {
            continue;
        };
        let rt = fhir::resource_type(resource).unwrap_or("");
        let Some((sys, value)) = query
            .strip_prefix("identifier=")
            .and_then(|q| q.split_once('|'))
        else {
            continue;
        };
        let id = match (rt, sys) {
            ("Patient", system::NIK) => lookup(client, store, org, "Patient", sys, value, now).await?.ok_or_else(|| unknown(
                e.index,
                "SATUSEHAT has no patient with this NIK. Register the patient in SATUSEHAT (Dukcapil-verified NIK) and replay the record.",
            ))?,
            ("Practitioner", system::NIK) => lookup(client, store, org, "Practitioner", sys, value, now).await?.ok_or_else(|| unknown(
                e.index,
                "SATUSEHAT has no health worker with this NIK. Check the NIK against SISDMK/Master Nakes and replay the record.",
            ))?,
            ("Patient", system::NIK_IBU) => newborn(client, store, org, resource, now).await?,
            // Anything else shared between records (an ANC EpisodeOfCare …): use it if
            // SATUSEHAT has it, otherwise this Bundle creates it.
            _ => match lookup(client, store, org, rt, sys, value, now).await? {
                Some(id) => id,
                None => continue,
            },
        };
        known.insert(full_url.to_string(), format!("{rt}/{id}"));
    }
    Ok(without_known(bundle, &known))
}

/// The Bundle without the entries SATUSEHAT already has (`known`: fullUrl → `Type/id`), with
/// references to them rewritten, and without conditional-create markers: SATUSEHAT does not
/// document `ifNoneExist`, so what is left is created by plain POSTs.
pub fn without_known(bundle: &Value, known: &HashMap<String, String>) -> Value {
    let mut out = bundle.clone();
    if let Some(entries) = out.get_mut("entry").and_then(Value::as_array_mut) {
        entries.retain(|e| {
            e.get("fullUrl")
                .and_then(Value::as_str)
                .is_none_or(|u| !known.contains_key(u))
        });
        for entry in entries.iter_mut() {
            if let Some(request) = entry.get_mut("request").and_then(Value::as_object_mut) {
                request.remove("ifNoneExist");
            }
            fhir::rewrite_references(entry, &mut |r| known.get(r).cloned());
        }
    }
    out
}

/// What SATUSEHAT already holds of `bundle`, found by each entry's first identifier,
/// [`LOOKUPS_AT_ONCE`] look-ups at a time, in entry order. Every look-up runs to its end,
/// so that what was found is known even when another look-up failed: the caller remembers
/// it for the next attempt. The second value is the first transient failure, if any — no
/// answer, so the caller must not take the entry as missing (re-sending it would meet 20002
/// again). A refused look-up counts as not found.
pub async fn by_identifier(
    client: &SatusehatClient,
    org: &str,
    bundle: &Value,
) -> (Vec<ServerId>, Option<CallError>) {
    let limit = tokio::sync::Semaphore::new(LOOKUPS_AT_ONCE);
    let mut lookups = Vec::new();
    for e in fhir::entries(bundle) {
        let Some(resource) = e.resource else { continue };
        let Some(rt) = fhir::resource_type(resource) else {
            continue;
        };
        let Some(ident) = resource.get("identifier").and_then(|i| i.get(0)) else {
            continue;
        };
        let (Some(sys), Some(val)) = (
            ident.get("system").and_then(Value::as_str),
            ident.get("value").and_then(Value::as_str),
        ) else {
            continue;
        };
        let limit = &limit;
        lookups.push(async move {
            let _turn = limit.acquire().await.expect("never closed");
            let answer = client.find_by_identifier(org, rt, sys, val).await;
            (e.index, e.full_url, rt, answer)
        });
    }
    let mut answers = futures_util::future::join_all(lookups).await;
    answers.sort_by_key(|(index, ..)| *index);
    let mut found = Vec::new();
    let mut failure = None;
    for (_, full_url, rt, answer) in answers {
        match answer {
            Ok(Some(id)) => found.push(ServerId {
                full_url: full_url.map(str::to_string),
                resource_type: rt.to_string(),
                id,
            }),
            Err(e @ (CallError::Transient { .. } | CallError::Config(_))) => {
                failure.get_or_insert(e);
            }
            Ok(None) | Err(CallError::Rejected { .. }) => {}
        }
    }
    (found, failure)
}

fn unknown(index: usize, text: &str) -> ResolveError {
    let outcome = Outcome::one(
        Issue::error(IssueCode::NotFound, text)
            .at(format!("Bundle.entry[{index}].resource.identifier")),
    );
    ResolveError::Unknown {
        message: text.to_string(),
        outcome: outcome.to_operation_outcome(),
    }
}

async fn lookup(
    client: &SatusehatClient,
    store: &Store,
    org: &str,
    rt: &str,
    sys: &str,
    value: &str,
    now: i64,
) -> Result<Option<String>, ResolveError> {
    let kind = format!("{rt}|{sys}");
    let key = sha256_hex(value.as_bytes());
    if let Ok(Some(hit)) = store.cached_lookup(&kind, &key, now).await {
        return Ok(Some(hit));
    }
    let found = client.find_by_identifier(org, rt, sys, value).await?;
    if let Some(id) = &found {
        // A cache write that fails only costs a look-up next time.
        let _ = store.cache_lookup(&kind, &key, id, now + CACHE_MS).await;
    }
    Ok(found)
}

/// A newborn without a NIK is registered once per (mother, birth date, birth order); the
/// answer is cached so a re-sent record does not register the child again.
async fn newborn(
    client: &SatusehatClient,
    store: &Store,
    org: &str,
    patient: &Value,
    now: i64,
) -> Result<String, ResolveError> {
    let mother = fhir::identifier_value(patient, system::NIK_IBU).unwrap_or_default();
    let birth = patient
        .get("birthDate")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let order = patient
        .get("multipleBirthInteger")
        .map(Value::to_string)
        .unwrap_or_default();
    let kind = "Patient|newborn";
    let key = sha256_hex(format!("{mother}|{birth}|{order}").as_bytes());
    if let Ok(Some(hit)) = store.cached_lookup(kind, &key, now).await {
        return Ok(hit);
    }
    let id = client.create_patient(org, patient).await?;
    let _ = store.cache_lookup(kind, &key, &id, now + CACHE_MS).await;
    Ok(id)
}
