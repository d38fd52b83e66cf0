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

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(value: &str) -> Value {
        json!({"resourceType": "Observation", "status": "final",
            "meta": {"profile": ["https://example.org/p"], "versionId": "9"},
            "identifier": [{"system": "s", "value": value}]})
    }

    #[test]
    fn updates_keep_every_version_and_move_the_index() {
        let mut r = Resources::default();
        r.create("Observation", "o1", obs("a"), "2026-01-01T00:00:00+00:00");
        let v1 = r.get("Observation", "o1").unwrap().current().clone();
        assert_eq!(v1["id"], "o1");
        assert_eq!(v1["meta"]["versionId"], "1", "the server sets the version");
        assert_eq!(v1["meta"]["profile"][0], "https://example.org/p");
        assert!(r.get("Encounter", "o1").is_none());

        let v2 = r
            .update("Observation", "o1", obs("b"), "2026-01-02T00:00:00+00:00")
            .unwrap()
            .clone();
        assert_eq!(v2["meta"]["versionId"], "2");
        assert_eq!(v2["meta"]["lastUpdated"], "2026-01-02T00:00:00+00:00");
        let stored = r.get("Observation", "o1").unwrap();
        assert_eq!(stored.versions.len(), 2);
        assert_eq!(stored.version("1"), Some(&v1));
        assert_eq!(stored.version("2"), Some(&v2));
        assert!(stored.version("0").is_none() && stored.version("3").is_none());
        assert_eq!(r.holder("Observation", "s|a"), None);
        assert_eq!(r.holder("Observation", "s|b"), Some("o1"));
        assert!(r.update("Encounter", "o1", obs("c"), "x").is_none());
    }

    #[test]
    fn search_lags_by_the_delay_given_but_the_duplicate_check_does_not() {
        let mut r = Resources::default();
        r.create("Observation", "o1", obs("a"), "2026-01-01T00:00:00+00:00");
        let hour = Duration::from_secs(3600);
        assert!(r.find("Observation", "s|a", hour).is_none());
        assert_eq!(r.holder("Observation", "s|a"), Some("o1"));
        assert_eq!(
            r.find("Observation", "s|a", Duration::ZERO).unwrap()["id"],
            "o1"
        );
        assert!(r.find("Encounter", "s|a", Duration::ZERO).is_none());
    }

    #[test]
    fn references_must_name_what_the_sandbox_knows() {
        let mut r = Resources::default();
        r.create("Encounter", "e1", json!({"resourceType": "Encounter"}), "t");
        let resource = json!({"resourceType": "Observation",
            "subject": {"reference": "Patient/P00000000001"},
            "performer": [{"reference": "Practitioner/100000000001"}, {"reference": "Organization/1000000001"}],
            "encounter": {"reference": "Encounter/e1"},
            "basedOn": [{"reference": "Location/anything"}, {"reference": "#contained"}]});
        let none = unknown_references(&r, "1000000001", &resource, "Observation", &|_| false);
        assert!(none.is_empty(), "{none:?}");

        let bad = json!({"resourceType": "Observation",
            "subject": {"reference": "Patient/123"},
            "performer": [{"reference": "Practitioner/P00000000001"}, {"reference": "Organization/999"}],
            "encounter": {"reference": "Observation/e1"},
            "hasMember": [{"reference": "urn:uuid:0b6c4b0e-1111-4c6f-9c3e-000000000000"}]});
        let missing = unknown_references(&r, "1000000001", &bad, "Observation", &|_| false);
        assert_eq!(missing.issues.len(), 5, "{missing:?}");
        assert!(missing.issues.iter().all(|i| i.rule == Some(20007)));
        // A urn:uuid the request itself resolves is fine.
        let local = unknown_references(&r, "1000000001", &bad, "Observation", &|u| {
            u.starts_with("urn:uuid:")
        });
        assert_eq!(local.issues.len(), 4);
    }
}
