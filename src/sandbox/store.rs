//! What the sandbox holds: every resource with all its versions, the identifier index
//! behind 20002 and identifier search, and the check that a reference names something
//! SATUSEHAT would know.
//!
//! The index answers two questions differently, as SATUSEHAT does: "is this identifier
//! taken?" (20002) sees every write at once, while identifier *search* finds a resource only
//! once `search_delay_ms` has passed since it was last written (see [`Resources::find`]).

use crate::fhir::{self, Issue, IssueCode, Outcome};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One resource and its history.
pub(super) struct Stored {
    pub resource_type: String,
    /// Every version, oldest first: `versions[n - 1]` has `meta.versionId` "n".
    pub versions: Vec<Value>,
    /// When the current version was stored: search lags from here.
    written: Instant,
}

impl Stored {
    pub fn current(&self) -> &Value {
        self.versions
            .last()
            .expect("a stored resource has a version")
    }

    /// Version `vid` ("1", "2", …), if there is one.
    pub fn version(&self, vid: &str) -> Option<&Value> {
        let n: usize = vid.parse().ok()?;
        self.versions.get(n.checked_sub(1)?)
    }
}

#[derive(Default)]
pub(super) struct Resources {
    by_id: HashMap<String, Stored>,
    /// `(resourceType, system|value)` → id, for the current version of each resource.
    by_identifier: HashMap<(String, String), String>,
}

impl Resources {
    /// The resource `rt/id` (the type must match: ids are unique, but `Observation/{id of an
    /// Encounter}` names nothing).
    pub fn get(&self, rt: &str, id: &str) -> Option<&Stored> {
        self.by_id.get(id).filter(|s| s.resource_type == rt)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Stored)> {
        self.by_id.iter()
    }

    /// Which resource of type `rt` holds identifier `key` (`system|value`) right now — no lag:
    /// this is what 20002 is decided on.
    pub fn holder(&self, rt: &str, key: &str) -> Option<&str> {
        self.by_identifier
            .get(&(rt.to_string(), key.to_string()))
            .map(String::as_str)
    }

    /// Identifier search: the current version of the resource of type `rt` holding `key`, if
    /// it was last written at least `delay` ago. The delay is the one set at search time, so
    /// setting it back to 0 makes everything findable at once.
    pub fn find(&self, rt: &str, key: &str, delay: Duration) -> Option<&Value> {
        let stored = self.get(rt, self.holder(rt, key)?)?;
        (stored.written.elapsed() >= delay).then(|| stored.current())
    }

    /// Store a new resource as version 1 under `id` (chosen by the caller, so that a
    /// transaction can rewrite references between its entries first) and index its
    /// identifiers. The caller has checked for duplicates.
    pub fn create(&mut self, rt: &str, id: &str, mut resource: Value, now: &str) {
        stamp(&mut resource, id, 1, now);
        for key in fhir::identifier_keys(&resource) {
            self.by_identifier
                .insert((rt.to_string(), key), id.to_string());
        }
        self.by_id.insert(
            id.to_string(),
            Stored {
                resource_type: rt.to_string(),
                versions: vec![resource],
                written: Instant::now(),
            },
        );
    }

    /// Store `resource` as the next version of `rt/id` (which must exist), moving the
    /// identifier index from the old version's identifiers to the new one's. The caller has
    /// checked that no other resource holds the new identifiers. The stored version.
    pub fn update(&mut self, rt: &str, id: &str, mut resource: Value, now: &str) -> Option<&Value> {
        let stored = self.by_id.get_mut(id).filter(|s| s.resource_type == rt)?;
        for key in fhir::identifier_keys(stored.current()) {
            let k = (rt.to_string(), key);
            if self
                .by_identifier
                .get(&k)
                .is_some_and(|holder| holder == id)
            {
                self.by_identifier.remove(&k);
            }
        }
        stamp(&mut resource, id, stored.versions.len() + 1, now);
        for key in fhir::identifier_keys(&resource) {
            self.by_identifier
                .insert((rt.to_string(), key), id.to_string());
        }
        stored.versions.push(resource);
        stored.written = Instant::now();
        Some(stored.current())
    }
}

/// The server's part of a stored version: its id, `meta.versionId` (a string, as FHIR has
/// it) and `meta.lastUpdated`. Whatever else the client put in `meta` (a profile) stays; a
/// `versionId` or `lastUpdated` it sent is the server's to set.
fn stamp(resource: &mut Value, id: &str, version: usize, now: &str) {
    resource["id"] = json!(id);
    if !resource["meta"].is_object() {
        resource["meta"] = json!({});
    }
    resource["meta"]["versionId"] = json!(version.to_string());
    resource["meta"]["lastUpdated"] = json!(now);
}

/// The references of `resource` (which sits at `at`, e.g. `Bundle.entry[2].resource`) that
/// name nothing SATUSEHAT would know, as 20007 issues. `local` says whether a reference
/// resolves inside the request itself (a transaction's `urn:uuid:` fullUrls); anything else
/// must name a person registered by NIK (the IHS shapes of `ihs_number`), the caller's own
/// organization, a Location (the facility's, set up outside the sandbox) or a resource the
/// sandbox holds. A `urn:uuid:` that nothing in the request resolves dangles.
pub(super) fn unknown_references(
    resources: &Resources,
    org: &str,
    resource: &Value,
    at: &str,
    local: &dyn Fn(&str) -> bool,
) -> Outcome {
    let digits = |s: &str| s.len() == 11 && s.bytes().all(|b| b.is_ascii_digit());
    let mut missing = Outcome::new();
    for (path, reference) in fhir::references(resource) {
        if local(reference) {
            continue;
        }
        let known = if reference.starts_with("urn:") {
            false
        } else {
            match reference.split_once('/') {
                Some(("Patient", id)) => id.strip_prefix('P').is_some_and(digits),
                Some(("Practitioner", id)) => id.strip_prefix('1').is_some_and(digits),
                Some(("Organization", id)) => id == org,
                Some(("Location", _)) => true,
                Some((rt, id)) => resources.get(rt, id).is_some(),
                // `#contained` and the like: nothing to look up.
                None => true,
            }
        };
        if !known {
            missing.push(
                Issue::error(
                    IssueCode::NotFound,
                    format!("Resource not found {reference}"),
                )
                .at(format!("{at}.{path}"))
                .rule(20007),
            );
        }
    }
    missing
}
