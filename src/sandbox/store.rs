//! What the sandbox holds: resources with their versions, the identifier index behind 20002
//! and identifier search, and the check that a reference names something SATUSEHAT would
//! know.
//!
//! The index answers two questions differently, as SATUSEHAT does: "is this identifier
//! taken?" (20002) sees every write at once, while identifier *search* finds a resource only
//! once `search_delay_ms` has passed since it was last written (see [`Resources::find`]).
//!
//! **Bounded memory.** The sandbox is also the zero-configuration gateway's upstream, which
//! may run for months: keeping everything it was ever sent grew the process by tens of KB
//! per delivered record, for good. So it holds at most `max_versions` resource versions
//! (every create and every update is one; 0: no limit). Past that it forgets the resource
//! written longest ago — all its versions, and its identifiers in the index — and so on
//! until the count fits again. One number, counted on every write, is what makes the bound
//! obvious: memory is at most `max_versions` × the size of one version (plus its index
//! entries). A forgotten resource is gone as upstream data would be: reads, `_history` and
//! updates answer 404 (20007), references to it are unknown (20007), and its identifiers are
//! free again — the same record sent again is accepted as new, not refused with 20002. Only
//! when the resource just written holds more versions than the limit on its own are its
//! oldest versions forgotten instead (`_history/{vid}` of those: 404); its version numbers
//! go on counting.
//!
//! Each version is kept as its compact JSON text, not as a parsed `serde_json::Value`: with
//! gerbang's `preserve_order` and `arbitrary_precision` a parsed resource takes several times
//! the bytes of its text. Answers parse or copy the text; the text is what `serde_json` writes
//! for the value, so answers are the same bytes as before.

use crate::fhir::{self, Issue, IssueCode, Outcome};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// One resource and the versions held of it.
pub(super) struct Stored {
    pub resource_type: String,
    /// The versions held, oldest first, as compact JSON text: `versions[k]` has
    /// `meta.versionId` `forgotten + k + 1`.
    versions: VecDeque<Box<str>>,
    /// How many of its oldest versions were forgotten (see the module documentation).
    forgotten: usize,
    /// The `system|value` of each identifier of the current version: what it holds in the
    /// index, and what `/sandbox/received` lists.
    pub identifiers: Vec<String>,
    /// When the current version was stored: search lags from here.
    written: Instant,
    /// Its place in [`Resources::by_age`].
    age: u64,
}

/// A version's text back as the value it was stored from.
fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("the sandbox stores versions as serde_json wrote them")
}

impl Stored {
    /// The current version's number (`meta.versionId`).
    pub fn version_id(&self) -> usize {
        self.forgotten + self.versions.len()
    }

    /// The current version, as JSON text.
    pub fn current_text(&self) -> &str {
        self.versions
            .back()
            .expect("a stored resource has a version")
    }

    pub fn current(&self) -> Value {
        parse(self.current_text())
    }

    /// Version `vid` ("1", "2", …) as JSON text, if it is held.
    pub fn version(&self, vid: &str) -> Option<&str> {
        let n: usize = vid.parse().ok()?;
        let k = n.checked_sub(self.forgotten + 1)?;
        self.versions.get(k).map(|v| &**v)
    }

    /// The versions held, oldest first.
    pub fn versions(&self) -> impl DoubleEndedIterator<Item = Value> + '_ {
        self.versions.iter().map(|v| parse(v))
    }

    /// How many versions are held.
    pub fn held(&self) -> usize {
        self.versions.len()
    }
}

pub(super) struct Resources {
    by_id: HashMap<String, Stored>,
    /// `(resourceType, system|value)` → id, for the current version of each resource.
    by_identifier: HashMap<(String, String), String>,
    /// Write order → id: the first is the resource written longest ago, forgotten first.
    by_age: BTreeMap<u64, String>,
    next_age: u64,
    /// Versions held, over all resources: at most `max_versions` after every write.
    held: usize,
    /// 0: no limit.
    max_versions: usize,
    /// Resources forgotten to stay within `max_versions`.
    pub forgotten: u64,
}

impl Resources {
    /// An empty store holding at most `max_versions` versions (0: no limit).
    pub fn new(max_versions: usize) -> Resources {
        Resources {
            by_id: HashMap::new(),
            by_identifier: HashMap::new(),
            by_age: BTreeMap::new(),
            next_age: 0,
            held: 0,
            max_versions,
            forgotten: 0,
        }
    }

    /// The resource `rt/id` (the type must match: ids are unique, but `Observation/{id of an
    /// Encounter}` names nothing).
    pub fn get(&self, rt: &str, id: &str) -> Option<&Stored> {
        self.by_id.get(id).filter(|s| s.resource_type == rt)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Stored)> {
        self.by_id.iter()
    }

    /// How many resources are held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_id.len()
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
    pub fn find(&self, rt: &str, key: &str, delay: Duration) -> Option<Value> {
        let stored = self.get(rt, self.holder(rt, key)?)?;
        (stored.written.elapsed() >= delay).then(|| stored.current())
    }

    /// Store a new resource as version 1 under `id` (chosen by the caller, so that a
    /// transaction can rewrite references between its entries first) and index its
    /// identifiers. The caller has checked for duplicates.
    pub fn create(&mut self, rt: &str, id: &str, mut resource: Value, now: &str) {
        stamp(&mut resource, id, 1, now);
        let identifiers = fhir::identifier_keys(&resource);
        for key in &identifiers {
            self.by_identifier
                .insert((rt.to_string(), key.clone()), id.to_string());
        }
        let age = self.next_age;
        self.next_age += 1;
        self.by_age.insert(age, id.to_string());
        self.by_id.insert(
            id.to_string(),
            Stored {
                resource_type: rt.to_string(),
                versions: VecDeque::from([resource.to_string().into_boxed_str()]),
                forgotten: 0,
                identifiers,
                written: Instant::now(),
                age,
            },
        );
        self.held += 1;
        self.trim();
    }

    /// Store `resource` as the next version of `rt/id` (which must exist), moving the
    /// identifier index from the old version's identifiers to the new one's. The caller has
    /// checked that no other resource holds the new identifiers. The stored version: its
    /// number and its JSON text.
    pub fn update(
        &mut self,
        rt: &str,
        id: &str,
        mut resource: Value,
        now: &str,
    ) -> Option<(usize, String)> {
        let stored = self.by_id.get_mut(id).filter(|s| s.resource_type == rt)?;
        for key in std::mem::take(&mut stored.identifiers) {
            let k = (rt.to_string(), key);
            if self
                .by_identifier
                .get(&k)
                .is_some_and(|holder| holder == id)
            {
                self.by_identifier.remove(&k);
            }
        }
        let vid = stored.version_id() + 1;
        stamp(&mut resource, id, vid, now);
        stored.identifiers = fhir::identifier_keys(&resource);
        for key in &stored.identifiers {
            self.by_identifier
                .insert((rt.to_string(), key.clone()), id.to_string());
        }
        let text = resource.to_string();
        stored.versions.push_back(text.clone().into_boxed_str());
        stored.written = Instant::now();
        // Now the newest: forgotten last.
        self.by_age.remove(&stored.age);
        stored.age = self.next_age;
        self.next_age += 1;
        self.by_age.insert(stored.age, id.to_string());
        self.held += 1;
        self.trim();
        Some((vid, text))
    }

    /// Forget the resources written longest ago until at most `max_versions` versions are
    /// held; if the one left (the one just written) holds more on its own, its oldest
    /// versions.
    fn trim(&mut self) {
        if self.max_versions == 0 {
            return;
        }
        while self.held > self.max_versions {
            let Some((_, oldest)) = self.by_age.first_key_value() else {
                return;
            };
            let oldest = oldest.clone();
            if self.by_id.len() == 1 {
                let Some(only) = self.by_id.get_mut(&oldest) else {
                    return;
                };
                while self.held > self.max_versions && only.versions.len() > 1 {
                    only.versions.pop_front();
                    only.forgotten += 1;
                    self.held -= 1;
                }
                return;
            }
            self.forget(&oldest);
        }
    }

    /// Drop `id` with all its versions and its identifiers.
    fn forget(&mut self, id: &str) {
        let Some(stored) = self.by_id.remove(id) else {
            return;
        };
        self.by_age.remove(&stored.age);
        self.held -= stored.versions.len();
        self.forgotten += 1;
        for key in stored.identifiers {
            let k = (stored.resource_type.clone(), key);
            if self
                .by_identifier
                .get(&k)
                .is_some_and(|holder| holder == id)
            {
                self.by_identifier.remove(&k);
            }
        }
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
        let mut r = Resources::new(0);
        r.create("Observation", "o1", obs("a"), "2026-01-01T00:00:00+00:00");
        let v1 = r.get("Observation", "o1").unwrap().current();
        assert_eq!(v1["id"], "o1");
        assert_eq!(v1["meta"]["versionId"], "1", "the server sets the version");
        assert_eq!(v1["meta"]["profile"][0], "https://example.org/p");
        assert!(r.get("Encounter", "o1").is_none());

        let v2: Value = serde_json::from_str(
            &r.update("Observation", "o1", obs("b"), "2026-01-02T00:00:00+00:00")
                .unwrap()
                .1,
        )
        .unwrap();
        assert_eq!(v2["meta"]["versionId"], "2");
        assert_eq!(v2["meta"]["lastUpdated"], "2026-01-02T00:00:00+00:00");
        let stored = r.get("Observation", "o1").unwrap();
        assert_eq!(stored.held(), 2);
        assert_eq!(stored.version("1"), Some(v1.to_string().as_str()));
        assert_eq!(stored.version("2"), Some(v2.to_string().as_str()));
        assert_eq!(stored.current(), v2);
        assert_eq!(stored.identifiers, ["s|b"]);
        assert!(stored.version("0").is_none() && stored.version("3").is_none());
        assert_eq!(r.holder("Observation", "s|a"), None);
        assert_eq!(r.holder("Observation", "s|b"), Some("o1"));
        assert!(r.update("Encounter", "o1", obs("c"), "x").is_none());
    }

    #[test]
    fn versions_are_kept_as_the_text_serde_json_writes() {
        // Decimals keep their digits and keys their order: an answer built from the stored
        // text is the same bytes as one built from the value.
        let mut r = Resources::new(0);
        let resource: Value = serde_json::from_str(
            r#"{"resourceType": "Observation", "valueQuantity": {"value": 13.250, "unit": "kg"},
                "status": "final", "identifier": [{"system": "s", "value": "a"}]}"#,
        )
        .unwrap();
        r.create("Observation", "o1", resource, "t");
        let stored = r.get("Observation", "o1").unwrap();
        let text = stored.current_text();
        assert!(text.contains(r#""value":13.250"#), "{text}");
        assert!(
            text.starts_with(r#"{"resourceType":"Observation","valueQuantity""#),
            "{text}"
        );
        assert_eq!(stored.current().to_string(), text);
    }

    /// The bound: never more than `max_versions` versions held, the resource written longest
    /// ago forgotten first with its identifiers — which are then free again.
    #[test]
    fn at_most_max_versions_are_held_and_the_oldest_written_go_first() {
        let mut r = Resources::new(3);
        for n in 1..=5 {
            r.create("Observation", &format!("o{n}"), obs(&format!("v{n}")), "t");
            assert!(r.held <= 3, "{} versions held after {n} creates", r.held);
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.forgotten, 2);
        for gone in ["o1", "o2"] {
            assert!(r.get("Observation", gone).is_none(), "{gone} is still held");
        }
        assert_eq!(
            r.holder("Observation", "s|v1"),
            None,
            "a forgotten identifier is free"
        );
        assert!(r.find("Observation", "s|v2", Duration::ZERO).is_none());
        assert_eq!(r.holder("Observation", "s|v5"), Some("o5"));

        // An update makes o3 the newest: o4 is now the oldest written and goes next.
        r.update("Observation", "o3", obs("v3"), "t").unwrap();
        assert_eq!(r.held, 3);
        assert!(r.get("Observation", "o4").is_none());
        assert_eq!(r.holder("Observation", "s|v4"), None);
        assert_eq!(r.get("Observation", "o3").unwrap().held(), 2);
        assert!(r.get("Observation", "o5").is_some());

        // A resource that alone holds more than the limit loses its oldest versions, and its
        // version numbers go on.
        for _ in 0..3 {
            r.update("Observation", "o3", obs("v3"), "t").unwrap();
        }
        assert_eq!((r.len(), r.held), (1, 3));
        let o3 = r.get("Observation", "o3").unwrap();
        assert_eq!(o3.version_id(), 5);
        assert_eq!(o3.current()["meta"]["versionId"], "5");
        assert!(o3.version("2").is_none());
        assert!(o3.version("3").is_some());
        let held: Vec<Value> = o3
            .versions()
            .map(|v| v["meta"]["versionId"].clone())
            .collect();
        assert_eq!(held, [json!("3"), json!("4"), json!("5")]);
    }

    #[test]
    fn no_limit_with_zero() {
        let mut r = Resources::new(0);
        for n in 0..100 {
            r.create("Observation", &format!("o{n}"), obs(&format!("v{n}")), "t");
        }
        assert_eq!((r.len(), r.held, r.forgotten), (100, 100, 0));
    }

    #[test]
    fn search_lags_by_the_delay_given_but_the_duplicate_check_does_not() {
        let mut r = Resources::new(0);
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
        let mut r = Resources::new(0);
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
