//! Corrections and cancellations: what a new revision of an already delivered record (or its
//! cancellation) must do upstream, resource by resource.
//!
//! A record's first revision went to SATUSEHAT as a transaction Bundle of POSTs, and
//! SATUSEHAT assigned ids that gerbang keeps per record as its *held ids* (fullUrl → type and
//! id). A new revision is mapped the same way, and because fullUrls are deterministic the
//! same thing keeps the same fullUrl from revision to revision. Comparing the two Bundles
//! entry by entry therefore says, without asking SATUSEHAT, what changed:
//!
//! - an entry SATUSEHAT does not hold is **created** (POST);
//! - a held entry whose resource differs from the delivered revision's is **updated**
//!   (`PUT {Type}/{id}`); so is every held entry when the delivered Bundle was pruned by
//!   retention, since nothing proves it unchanged;
//! - a held entry whose resource is identical is left alone (**unchanged**);
//! - a held resource the new revision no longer has is **retired**: SATUSEHAT offers no
//!   delete to facilities, so it is PUT back with its status set to entered-in-error
//!   ([`entered_in_error`]). A cancellation retires everything the record owns.
//!
//! Conditional entries (`request.ifNoneExist`: the patient and health worker looked up by NIK,
//! and resources shared between records such as a pregnancy's EpisodeOfCare) are never
//! planned here: the resolver finds or creates them on every delivery, and the record does
//! not own them, so a correction must not update or retire them.
//!
//! Pure: no clock, no I/O. The caller turns the plan into requests.

use crate::fhir;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};

/// A resource SATUSEHAT holds for this record: the entry it came from (`fullUrl`) and the id
/// SATUSEHAT gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldId {
    pub full_url: String,
    pub resource_type: String,
    pub id: String,
}

/// The held ids from their stored JSON, `[{"fullUrl": …, "resourceType": …, "id": …}]` (as
/// the forwarder records them). An id without a fullUrl cannot be matched to an entry of a
/// revision, so it is skipped; so is anything malformed.
pub fn held_ids(server_ids: &Value) -> Vec<HeldId> {
    let Some(items) = server_ids.as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let text = |key: &str| item.get(key).and_then(Value::as_str).map(str::to_string);
            Some(HeldId {
                full_url: text("fullUrl")?,
                resource_type: text("resourceType")?,
                id: text("id")?,
            })
        })
        .collect()
}

/// What a correction or cancellation does upstream. Every list holds fullUrls.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// fullUrls of entries of the new Bundle SATUSEHAT does not hold yet (POST). Never a
    /// conditional entry.
    pub create: Vec<String>,
    /// fullUrls of held entries whose resource differs from the base Bundle's (PUT), or that
    /// the base lacks, or when the base is unknown (pruned).
    pub update: Vec<String>,
    /// fullUrls of held entries whose resource is identical in base and new.
    pub unchanged: Vec<String>,
    /// fullUrls of held resources the record owns that the new revision no longer has (or
    /// all owned ones for a cancellation): to be marked entered-in-error.
    pub retire: Vec<String>,
}

/// Plan a correction (`new` is the new revision's Bundle) or a cancellation (`new` is None).
///
/// `base` is the delivered revision's Bundle, None once retention pruned it; `held` is what
/// SATUSEHAT holds for the record. Lists follow the new Bundle's entry order; `retire`
/// follows the base's order, or the held order when the base is unknown.
///
/// Only resources that can be marked entered-in-error are retired (see
/// [`entered_in_error`]); a Patient, Practitioner, Organization or Location is never
/// retired. Without a base, which held resources were conditional entries cannot be known:
/// every held resource of a retirable type that the new revision lacks is retired then.
pub fn plan(base: Option<&Value>, held: &[HeldId], new: Option<&Value>) -> Plan {
    let held_by_url: HashMap<&str, &HeldId> =
        held.iter().map(|h| (h.full_url.as_str(), h)).collect();
    let mut out = Plan::default();

    // Base resources by fullUrl, for the comparison.
    let base_resources: HashMap<&str, &Value> = base
        .map(|b| {
            fhir::entries(b)
                .filter_map(|e| Some((e.full_url?, e.resource?)))
                .collect()
        })
        .unwrap_or_default();

    // Every fullUrl the new revision has, conditional or not: none of them is retired.
    let mut in_new: HashSet<&str> = HashSet::new();
    if let Some(new) = new {
        for e in fhir::entries(new) {
            let Some(url) = e.full_url else { continue };
            in_new.insert(url);
            if is_conditional(new, e.index) {
                continue;
            }
            if !held_by_url.contains_key(url) {
                out.create.push(url.to_string());
                continue;
            }
            let same = base.is_some()
                && e.resource.is_some()
                && base_resources.get(url).copied() == e.resource;
            if same {
                out.unchanged.push(url.to_string());
            } else {
                out.update.push(url.to_string());
            }
        }
    }

    match base {
        // The record owns the base's unconditional entries; retire the held ones that are
        // gone. A held id the base lacks was retired already by an earlier correction.
        Some(base) => {
            for e in fhir::entries(base) {
                let (Some(url), Some(resource)) = (e.full_url, e.resource) else {
                    continue;
                };
                if is_conditional(base, e.index)
                    || in_new.contains(url)
                    || !held_by_url.contains_key(url)
                {
                    continue;
                }
                if fhir::resource_type(resource).and_then(retirable).is_some() {
                    out.retire.push(url.to_string());
                }
            }
        }
        None => {
            for h in held {
                if !in_new.contains(h.full_url.as_str()) && retirable(&h.resource_type).is_some() {
                    out.retire.push(h.full_url.clone());
                }
            }
        }
    }
    out
}

/// Whether entry `index` of `bundle` is a conditional create (a look-up or shared resource).
fn is_conditional(bundle: &Value, index: usize) -> bool {
    bundle["entry"][index]
        .pointer("/request/ifNoneExist")
        .is_some_and(|q| !q.is_null())
}

/// Where a resource type records that it was entered in error.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ErrorElement {
    /// A `code` element whose required value set has `entered-in-error`.
    Code(&'static str),
    /// `verificationStatus`, a CodeableConcept from this code system.
    Verification(&'static str),
}

use ErrorElement::{Code, Verification};

const CONDITION_VER_STATUS: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";
const ALLERGY_VERIFICATION: &str =
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification";

/// Every R4 resource type with a top-level element whose *required* binding allows
/// `entered-in-error`, and that element. Derived from the R4 definitions under
/// `profiles/r4/`: each resource's snapshot elements (`structure-definitions.json`) joined
/// with the codes of their bound value sets (`value-sets.json`); the test
/// `table_matches_the_r4_definitions` re-derives it. DocumentReference has two such elements;
/// `status` is the reference's own record status (`docStatus` is the document's), so it is
/// the one used. Types absent here (Patient, Practitioner, Organization, Location …) have no
/// entered-in-error state.
const TABLE: &[(&str, ErrorElement)] = &[
    ("Account", Code("status")),
    ("AllergyIntolerance", Verification(ALLERGY_VERIFICATION)),
    ("Appointment", Code("status")),
    ("CarePlan", Code("status")),
    ("CareTeam", Code("status")),
    ("ChargeItem", Code("status")),
    ("Claim", Code("status")),
    ("ClaimResponse", Code("status")),
    ("ClinicalImpression", Code("status")),
    ("Communication", Code("status")),
    ("CommunicationRequest", Code("status")),
    ("Composition", Code("status")),
    ("Condition", Verification(CONDITION_VER_STATUS)),
    ("Consent", Code("status")),
    ("Contract", Code("status")),
    ("Coverage", Code("status")),
    ("CoverageEligibilityRequest", Code("status")),
    ("CoverageEligibilityResponse", Code("status")),
    ("DetectedIssue", Code("status")),
    ("Device", Code("status")),
    ("DeviceMetric", Code("operationalStatus")),
    ("DeviceRequest", Code("status")),
    ("DeviceUseStatement", Code("status")),
    ("DiagnosticReport", Code("status")),
    ("DocumentManifest", Code("status")),
    ("DocumentReference", Code("status")),
    ("Encounter", Code("status")),
    ("Endpoint", Code("status")),
    ("EnrollmentRequest", Code("status")),
    ("EnrollmentResponse", Code("status")),
    ("EpisodeOfCare", Code("status")),
    ("ExplanationOfBenefit", Code("status")),
    ("FamilyMemberHistory", Code("status")),
    ("Flag", Code("status")),
    ("Goal", Code("lifecycleStatus")),
    ("GuidanceResponse", Code("status")),
    ("ImagingStudy", Code("status")),
    ("Immunization", Code("status")),
    ("ImmunizationEvaluation", Code("status")),
    ("Invoice", Code("status")),
    ("List", Code("status")),
    ("Media", Code("status")),
    ("Medication", Code("status")),
    ("MedicationAdministration", Code("status")),
    ("MedicationDispense", Code("status")),
    ("MedicationKnowledge", Code("status")),
    ("MedicationRequest", Code("status")),
    ("MedicationStatement", Code("status")),
    ("NutritionOrder", Code("status")),
    ("Observation", Code("status")),
    ("PaymentNotice", Code("status")),
    ("PaymentReconciliation", Code("status")),
    ("Procedure", Code("status")),
    ("QuestionnaireResponse", Code("status")),
    ("RequestGroup", Code("status")),
    ("RiskAssessment", Code("status")),
    ("ServiceRequest", Code("status")),
    ("Slot", Code("status")),
    ("Specimen", Code("status")),
    ("Substance", Code("status")),
    ("SupplyDelivery", Code("status")),
    ("SupplyRequest", Code("status")),
    ("Task", Code("status")),
    ("TestReport", Code("status")),
    ("VisionPrescription", Code("status")),
];

fn retirable(resource_type: &str) -> Option<ErrorElement> {
    TABLE
        .iter()
        .find(|(t, _)| *t == resource_type)
        .map(|(_, e)| *e)
}

/// The resource as "entered in error": the element its type has for that state set to
/// `entered-in-error`; None for types without one (Patient, Practitioner, Organization,
/// Location …), which are never retired.
///
/// - Most types: a `status` code (Goal: `lifecycleStatus`, DeviceMetric:
///   `operationalStatus`).
/// - Condition and AllergyIntolerance: `verificationStatus` becomes the code
///   `entered-in-error` ("Entered in Error") of their verification code system, and
///   `clinicalStatus` is removed, as R4 requires (invariants con-5 and ait-2: clinicalStatus
///   SHALL NOT be present when the verification status is entered-in-error).
/// - Encounter: only `status` changes. SATUSEHAT wants `statusHistory` consistent with the
///   status, but a new history entry needs the time of the retirement, and this module has no
///   clock; the caller may append one.
///
/// Everything else (id, references, other elements) is left as it was.
pub fn entered_in_error(resource: &Value) -> Option<Value> {
    let element = retirable(fhir::resource_type(resource)?)?;
    let mut out = resource.clone();
    let map = out.as_object_mut()?;
    match element {
        Code(name) => {
            map.insert(name.to_string(), json!("entered-in-error"));
        }
        Verification(system) => {
            map.insert(
                "verificationStatus".to_string(),
                json!({"coding": [{"system": system, "code": "entered-in-error", "display": "Entered in Error"}]}),
            );
            map.remove("clinicalStatus");
        }
    }
    Some(out)
}

/// The plan's counts, for receipts and logs: `{"created", "updated", "retired",
/// "unchanged"}`.
pub fn changes(plan: &Plan) -> Value {
    json!({
        "created": plan.create.len(),
        "updated": plan.update.len(),
        "retired": plan.retire.len(),
        "unchanged": plan.unchanged.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    const PATIENT: &str = "urn:uuid:00000000-0000-5000-8000-000000000001";
    const NAKES: &str = "urn:uuid:00000000-0000-5000-8000-000000000002";
    const EPISODE: &str = "urn:uuid:00000000-0000-5000-8000-000000000003";
    const ENCOUNTER: &str = "urn:uuid:00000000-0000-5000-8000-000000000004";
    const WEIGHT: &str = "urn:uuid:00000000-0000-5000-8000-000000000005";
    const HEIGHT: &str = "urn:uuid:00000000-0000-5000-8000-000000000006";
    const MUAC: &str = "urn:uuid:00000000-0000-5000-8000-000000000007";

    fn post(url: &str, resource: Value) -> Value {
        let rt = resource["resourceType"].clone();
        json!({"fullUrl": url, "resource": resource, "request": {"method": "POST", "url": rt}})
    }

    fn lookup(url: &str, resource: Value, query: &str) -> Value {
        let mut e = post(url, resource);
        e["request"]["ifNoneExist"] = json!(query);
        e
    }

    fn observation(code: &str, value: &str) -> Value {
        json!({
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": PATIENT}, "encounter": {"reference": ENCOUNTER},
            "valueQuantity": {"value": serde_json::from_str::<Value>(value).unwrap()}
        })
    }

    /// A visit: patient and health worker looked up, a shared EpisodeOfCare, then what the
    /// record owns.
    fn bundle(owned: Vec<Value>) -> Value {
        let mut entries = vec![
            lookup(
                PATIENT,
                json!({"resourceType": "Patient"}),
                "identifier=https://fhir.kemkes.go.id/id/nik|3273010309710012",
            ),
            lookup(
                NAKES,
                json!({"resourceType": "Practitioner"}),
                "identifier=https://fhir.kemkes.go.id/id/nik|3273014507850008",
            ),
            lookup(
                EPISODE,
                json!({"resourceType": "EpisodeOfCare", "status": "active"}),
                "identifier=http://sys-ids.kemkes.go.id/episode-of-care/1000000001|KH-1",
            ),
        ];
        entries.extend(owned);
        json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    }

    fn encounter(end: &str) -> Value {
        post(
            ENCOUNTER,
            json!({"resourceType": "Encounter", "status": "finished",
                   "subject": {"reference": PATIENT}, "episodeOfCare": [{"reference": EPISODE}],
                   "period": {"start": "2026-05-14T01:10:00+00:00", "end": end}}),
        )
    }

    fn held(items: &[(&str, &str, &str)]) -> Vec<HeldId> {
        items
            .iter()
            .map(|(u, t, i)| HeldId {
                full_url: u.to_string(),
                resource_type: t.to_string(),
                id: i.to_string(),
            })
            .collect()
    }

    /// First revision: encounter, weight, height. SATUSEHAT holds them and the shared
    /// EpisodeOfCare this record's delivery created.
    fn delivered() -> (Value, Vec<HeldId>) {
        let base = bundle(vec![
            encounter("2026-05-14T01:20:00+00:00"),
            post(WEIGHT, observation("29463-7", "13.25")),
            post(HEIGHT, observation("8302-2", "94.0")),
        ]);
        let held = held(&[
            (EPISODE, "EpisodeOfCare", "eoc-1"),
            (ENCOUNTER, "Encounter", "enc-1"),
            (WEIGHT, "Observation", "obs-1"),
            (HEIGHT, "Observation", "obs-2"),
        ]);
        (base, held)
    }

    fn urls(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn held_ids_skip_entries_without_full_url() {
        let stored = json!([
            {"fullUrl": ENCOUNTER, "resourceType": "Encounter", "id": "enc-1"},
            {"resourceType": "Patient", "id": "P100"},
            {"fullUrl": WEIGHT, "resourceType": "Observation", "id": "obs-1"}
        ]);
        assert_eq!(
            held_ids(&stored),
            held(&[
                (ENCOUNTER, "Encounter", "enc-1"),
                (WEIGHT, "Observation", "obs-1")
            ])
        );
        assert!(held_ids(&json!(null)).is_empty());
    }

    #[test]
    fn correction_creates_updates_keeps_and_retires() {
        let (base, held) = delivered();
        // The weight was corrected, the height removed, a MUAC added; the encounter is the same.
        let new = bundle(vec![
            encounter("2026-05-14T01:20:00+00:00"),
            post(WEIGHT, observation("29463-7", "13.5")),
            post(MUAC, observation("56072-2", "14.5")),
        ]);
        let p = plan(Some(&base), &held, Some(&new));
        assert_eq!(
            p,
            Plan {
                create: urls(&[MUAC]),
                update: urls(&[WEIGHT]),
                unchanged: urls(&[ENCOUNTER]),
                retire: urls(&[HEIGHT]),
            }
        );
        assert_eq!(
            changes(&p),
            json!({"created": 1, "updated": 1, "retired": 1, "unchanged": 1})
        );
    }

    #[test]
    fn an_identical_revision_changes_nothing() {
        let (base, held) = delivered();
        let p = plan(Some(&base), &held, Some(&base.clone()));
        assert_eq!(p.unchanged, urls(&[ENCOUNTER, WEIGHT, HEIGHT]));
        assert!(p.create.is_empty() && p.update.is_empty() && p.retire.is_empty());
    }

    #[test]
    fn conditional_entries_are_never_planned() {
        let (base, held) = delivered();
        // The shared EpisodeOfCare is held (this record's delivery created it) and changed,
        // and the patient is not held at all: neither is created, updated or retired.
        let mut new = bundle(vec![encounter("2026-05-14T01:20:00+00:00")]);
        new["entry"][2]["resource"]["status"] = json!("finished");
        let p = plan(Some(&base), &held, Some(&new));
        for list in [&p.create, &p.update, &p.unchanged, &p.retire] {
            assert!(
                !list
                    .iter()
                    .any(|u| u == EPISODE || u == PATIENT || u == NAKES)
            );
        }
        assert_eq!(p.retire, urls(&[WEIGHT, HEIGHT]));
        // Dropped altogether from the new revision, it is still not retired: the record
        // never owned it.
        let mut without = new.clone();
        without["entry"].as_array_mut().unwrap().remove(2);
        assert_eq!(
            plan(Some(&base), &held, Some(&without)).retire,
            urls(&[WEIGHT, HEIGHT])
        );
    }

    #[test]
    fn a_held_entry_the_base_lacks_is_updated() {
        // HEIGHT was retired by an earlier correction (still held) and comes back.
        let (_, held) = delivered();
        let base = bundle(vec![
            encounter("2026-05-14T01:20:00+00:00"),
            post(WEIGHT, observation("29463-7", "13.25")),
        ]);
        let new = bundle(vec![
            encounter("2026-05-14T01:20:00+00:00"),
            post(WEIGHT, observation("29463-7", "13.25")),
            post(HEIGHT, observation("8302-2", "94.0")),
        ]);
        let p = plan(Some(&base), &held, Some(&new));
        assert_eq!(p.update, urls(&[HEIGHT]));
        assert_eq!(p.unchanged, urls(&[ENCOUNTER, WEIGHT]));
        assert!(p.retire.is_empty() && p.create.is_empty());
    }

    #[test]
    fn without_the_base_every_held_entry_is_updated() {
        let (_, held) = delivered();
        let new = bundle(vec![
            encounter("2026-05-14T01:20:00+00:00"),
            post(WEIGHT, observation("29463-7", "13.25")),
            post(MUAC, observation("56072-2", "14.5")),
        ]);
        let p = plan(None, &held, Some(&new));
        assert_eq!(p.create, urls(&[MUAC]));
        assert_eq!(p.update, urls(&[ENCOUNTER, WEIGHT]));
        assert!(p.unchanged.is_empty());
        // Held and gone from the new revision: retired, even though the base is unknown.
        assert_eq!(p.retire, urls(&[HEIGHT]));
    }

    #[test]
    fn cancellation_retires_what_the_record_owns() {
        let (base, held) = delivered();
        let p = plan(Some(&base), &held, None);
        assert_eq!(p.retire, urls(&[ENCOUNTER, WEIGHT, HEIGHT]));
        assert!(p.create.is_empty() && p.update.is_empty() && p.unchanged.is_empty());
        assert_eq!(
            changes(&p),
            json!({"created": 0, "updated": 0, "retired": 3, "unchanged": 0})
        );
    }

    #[test]
    fn cancellation_without_base_retires_held_retirable_types_in_held_order() {
        let held = held(&[
            (PATIENT, "Patient", "P100"),
            (HEIGHT, "Observation", "obs-2"),
            (ENCOUNTER, "Encounter", "enc-1"),
            (NAKES, "Practitioner", "N100"),
            (WEIGHT, "Observation", "obs-1"),
        ]);
        let p = plan(None, &held, None);
        assert_eq!(p.retire, urls(&[HEIGHT, ENCOUNTER, WEIGHT]));
    }

    #[test]
    fn status_codes_become_entered_in_error() {
        for (rt, element) in [
            ("Encounter", "status"),
            ("Observation", "status"),
            ("Immunization", "status"),
            ("MedicationRequest", "status"),
            ("ServiceRequest", "status"),
            ("EpisodeOfCare", "status"),
            ("Goal", "lifecycleStatus"),
        ] {
            let r = json!({"resourceType": rt, "id": "x1", element: "active", "note": [{"text": "kept"}]});
            let out = entered_in_error(&r).unwrap_or_else(|| panic!("{rt}"));
            assert_eq!(out[element], "entered-in-error", "{rt}");
            assert_eq!(out["id"], "x1");
            assert_eq!(out["note"], r["note"]);
        }
    }

    #[test]
    fn encounter_keeps_its_status_history() {
        let r = json!({"resourceType": "Encounter", "status": "finished",
            "statusHistory": [{"status": "finished", "period": {"start": "2026-05-14T01:20:00+00:00"}}]});
        let out = entered_in_error(&r).unwrap();
        assert_eq!(out["status"], "entered-in-error");
        assert_eq!(out["statusHistory"], r["statusHistory"]);
    }

    #[test]
    fn condition_and_allergy_use_verification_status() {
        for (rt, system) in [
            ("Condition", CONDITION_VER_STATUS),
            ("AllergyIntolerance", ALLERGY_VERIFICATION),
        ] {
            let r = json!({
                "resourceType": rt,
                "clinicalStatus": {"coding": [{"code": "active"}]},
                "verificationStatus": {"coding": [{"system": system, "code": "confirmed"}]},
                "code": {"text": "x"}
            });
            let out = entered_in_error(&r).unwrap();
            assert_eq!(
                out["verificationStatus"],
                json!({"coding": [{"system": system, "code": "entered-in-error", "display": "Entered in Error"}]})
            );
            // con-5 / ait-2.
            assert!(out.get("clinicalStatus").is_none(), "{rt}");
            assert_eq!(out["code"], r["code"]);
        }
    }

    #[test]
    fn people_and_places_are_never_entered_in_error() {
        for rt in [
            "Patient",
            "Practitioner",
            "Organization",
            "Location",
            "Bundle",
        ] {
            assert!(
                entered_in_error(&json!({"resourceType": rt})).is_none(),
                "{rt}"
            );
        }
        assert!(entered_in_error(&json!({"status": "final"})).is_none());
    }

    /// Every type a mapping produces (besides the looked-up people and the Bundle itself)
    /// can be retired.
    #[test]
    fn every_type_the_mappings_produce_can_be_retired() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
        let mut produced = BTreeSet::new();
        for d in std::fs::read_dir(&dir).unwrap() {
            let map = d.unwrap().path().join("map.jq");
            let Ok(text) = std::fs::read_to_string(&map) else {
                continue;
            };
            for part in text.split("resourceType:").skip(1) {
                let name: String = part
                    .trim_start()
                    .trim_start_matches('"')
                    .chars()
                    .take_while(char::is_ascii_alphabetic)
                    .collect();
                produced.insert(name);
            }
        }
        assert!(produced.contains("Observation") && produced.contains("Encounter"));
        for rt in produced {
            if ["Bundle", "Patient", "Practitioner"].contains(&rt.as_str()) {
                continue;
            }
            assert!(
                entered_in_error(&json!({"resourceType": rt})).is_some(),
                "{rt} is produced by a mapping but cannot be marked entered-in-error"
            );
        }
    }

    /// The table is exactly what the R4 definitions allow: for each resource type, the
    /// top-level elements with a required binding whose value set has `entered-in-error`.
    #[test]
    fn table_matches_the_r4_definitions() {
        let r4 = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/r4");
        let read = |f: &str| -> Value {
            serde_json::from_str(&std::fs::read_to_string(r4.join(f)).unwrap()).unwrap()
        };
        let (sds, value_sets, schema) = (
            read("structure-definitions.json"),
            read("value-sets.json"),
            read("fhir.schema.json"),
        );
        let resource_types = schema["discriminator"]["mapping"].as_object().unwrap();
        let mut derived: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (rt, sd) in sds.as_object().unwrap() {
            if !resource_types.contains_key(rt) {
                continue;
            }
            for e in sd["elements"].as_array().unwrap() {
                let path = e["path"].as_str().unwrap();
                let Some(name) = path.strip_prefix(&format!("{rt}.")) else {
                    continue;
                };
                if name.contains('.') || e["binding"]["strength"] != "required" {
                    continue;
                }
                let vs = e["binding"]["valueSet"].as_str().unwrap();
                let allows = value_sets[vs.split('|').next().unwrap()]
                    .as_object()
                    .is_some_and(|systems| {
                        systems.values().any(|codes| {
                            codes
                                .as_array()
                                .is_some_and(|c| c.contains(&json!("entered-in-error")))
                        })
                    });
                if allows {
                    derived
                        .entry(rt.clone())
                        .or_default()
                        .push(name.to_string());
                }
            }
        }
        let table: BTreeMap<String, String> = TABLE
            .iter()
            .map(|(rt, e)| {
                let name = match e {
                    Code(n) => n.to_string(),
                    Verification(_) => "verificationStatus".to_string(),
                };
                (rt.to_string(), name)
            })
            .collect();
        assert_eq!(
            table.keys().collect::<Vec<_>>(),
            derived.keys().collect::<Vec<_>>()
        );
        for (rt, name) in &table {
            assert!(derived[rt].contains(name), "{rt}.{name}: {:?}", derived[rt]);
        }
    }
}
