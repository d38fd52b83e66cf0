//! SATUSEHAT's named custom checks (`customvalidation.…` in its rule table), for those whose
//! meaning is clear from the name and from the server's messages. The others are listed in
//! `rule-table-exceptions.yaml` as not checked offline. Pure: a resource in, findings out.

use super::path::{Selection, select};
use super::rules::RuleContext;
use crate::fhir::{IssueCode, Severity};
use serde_json::Value;

/// The custom checks gerbang implements; a rule naming another is a load error.
pub const IMPLEMENTED: &[&str] = &[
    "PeriodStartEndChecker",
    "EocPeriodEndValidation",
    "ServiceProviderMatchHeaderOrgId",
    "KfaAllowOneCode",
    "ImmunizationVaccineCodeCheck",
    "ImmunizationExpiredDateChecker",
    "ValidateImmunizationPerformer",
    "HasToReferMedication",
    "HasToReferMedicationRequest",
    "ValidateAddressParent",
    "ValidateEducationMotherKTPFormat",
    "ValidateEducationFatherKTPFormat",
];

/// One finding: where (relative to the resource), what was found, and a severity when it is
/// not the rule's own.
pub struct Found {
    pub at: String,
    pub detail: Option<String>,
    pub code: IssueCode,
    pub severity: Option<Severity>,
}

fn found(at: impl Into<String>, detail: impl Into<String>) -> Found {
    Found {
        at: at.into(),
        detail: Some(detail.into()),
        code: IssueCode::Invariant,
        severity: None,
    }
}

const KFA: &str = "http://sys-ids.kemkes.go.id/kfa";
const V2_0443: &str = "http://terminology.hl7.org/CodeSystem/v2-0443";
const ADMINISTRATIVE_CODE: &str =
    "https://fhir.kemkes.go.id/r4/StructureDefinition/administrativeCode";

/// Run the check `name` over the values its rule's path selected (`hits`).
pub fn run(
    name: &str,
    rule_path: &str,
    resource: &Value,
    hits: &Selection<'_>,
    ctx: &RuleContext,
) -> Vec<Found> {
    match name {
        "PeriodStartEndChecker" => periods_in_order(hits),
        // Its row names statusHistory.period.end; the period is what is checked.
        "EocPeriodEndValidation" => periods_in_order(&select(resource, "statusHistory")),
        "ServiceProviderMatchHeaderOrgId" => sender_is_provider(hits, ctx),
        "KfaAllowOneCode" => one_kfa_code(hits),
        "ImmunizationVaccineCodeCheck" => kfa_codes_well_formed(hits),
        "ImmunizationExpiredDateChecker" => not_expired(resource, hits),
        "ValidateImmunizationPerformer" => performer_function(resource),
        "HasToReferMedication" => refers_to(hits, "Medication", ctx),
        "HasToReferMedicationRequest" => refers_to(hits, "MedicationRequest", ctx),
        "ValidateAddressParent" => address_parents(resource, rule_path),
        "ValidateEducationMotherKTPFormat" | "ValidateEducationFatherKTPFormat" => ktp_format(hits),
        _ => Vec::new(),
    }
}

/// Each item's `period` ends no earlier than it starts.
fn periods_in_order(hits: &Selection<'_>) -> Vec<Found> {
    let mut out = Vec::new();
    for (loc, v) in hits.iter() {
        let time = |k: &str| {
            v.pointer(&format!("/period/{k}"))
                .and_then(Value::as_str)
                .and_then(crate::time::parse_fhir)
        };
        if let (Some(start), Some(end)) = (time("start"), time("end")) {
            if end < start {
                out.push(found(
                    format!("{loc}.period.end"),
                    "the period ends before it starts",
                ));
            }
        }
    }
    out
}

/// The service provider is the organization that sends (SATUSEHAT compares it with the
/// organization of the access token).
fn sender_is_provider(hits: &Selection<'_>, ctx: &RuleContext) -> Vec<Found> {
    let Some(org) = ctx.organization_id else {
        return Vec::new();
    };
    let want = format!("Organization/{org}");
    hits.iter()
        .filter_map(|(loc, v)| {
            let r = v.get("reference").and_then(Value::as_str)?;
            (r != want).then(|| {
                found(
                    format!("{loc}.reference"),
                    format!("found `{r}`; the sender is {want}"),
                )
            })
        })
        .collect()
}

fn codings(v: &Value) -> impl Iterator<Item = (usize, &Value)> {
    v.get("coding")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

/// At most one KFA coding.
fn one_kfa_code(hits: &Selection<'_>) -> Vec<Found> {
    hits.iter()
        .filter_map(|(loc, v)| {
            let n = codings(v)
                .filter(|(_, c)| c.get("system").and_then(Value::as_str) == Some(KFA))
                .count();
            (n > 1).then(|| found(format!("{loc}.coding"), format!("{n} KFA codes; send one")))
        })
        .collect()
}

/// A KFA code is checked against SATUSEHAT's KFA master, which gerbang does not hold: it
/// must at least look like one (an 8-digit product code, or a vaccine group `VG…`).
fn kfa_codes_well_formed(hits: &Selection<'_>) -> Vec<Found> {
    let mut out = Vec::new();
    for (loc, v) in hits.iter() {
        for (i, c) in codings(v) {
            if c.get("system").and_then(Value::as_str) != Some(KFA) {
                continue;
            }
            let code = c.get("code").and_then(Value::as_str).unwrap_or("");
            let at = format!("{loc}.coding[{i}].code");
            let product = code.len() == 8 && code.bytes().all(|b| b.is_ascii_digit());
            let group = code
                .strip_prefix("VG")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            // A well-formed one is noted as not checked offline by the terminology layer.
            if !(product || group) {
                out.push(Found {
                    code: IssueCode::CodeInvalid,
                    ..found(
                        at,
                        format!("`{code}` is not a KFA code (8 digits, or VG and digits)"),
                    )
                });
            }
        }
    }
    out
}

/// The vaccine had not expired when it was given.
fn not_expired(resource: &Value, hits: &Selection<'_>) -> Vec<Found> {
    let given = resource
        .get("occurrenceDateTime")
        .and_then(Value::as_str)
        .map(|s| s.get(..10).unwrap_or(s).to_string());
    let Some(given) = given else {
        return Vec::new();
    };
    hits.iter()
        .filter_map(|(loc, v)| {
            let exp = v.as_str()?;
            // Both are YYYY-MM-DD here, so text order is date order.
            (exp.len() == 10 && exp < given.as_str()).then(|| {
                found(
                    loc.to_string(),
                    format!("expired on {exp}, before the dose on {given}"),
                )
            })
        })
        .collect()
}

/// A dose given now names its administering or ordering provider (AP/OP); one recorded from
/// history names who entered it (EP): "Performer function must contains code EP (RuleNumber:
/// 10307)" (staging, 2026-09).
fn performer_function(resource: &Value) -> Vec<Found> {
    let Some(primary) = resource.get("primarySource").and_then(Value::as_bool) else {
        return Vec::new();
    };
    let want: &[&str] = if primary { &["AP", "OP"] } else { &["EP"] };
    let functions: Vec<&str> = select(resource, "performer.function.coding")
        .iter()
        .filter(|(_, c)| c.get("system").and_then(Value::as_str) == Some(V2_0443))
        .filter_map(|(_, c)| c.get("code").and_then(Value::as_str))
        .collect();
    if functions.iter().any(|f| want.contains(f)) {
        return Vec::new();
    }
    vec![found(
        "performer",
        format!(
            "performer function must contain code {} (http://terminology.hl7.org/CodeSystem/v2-0443) when primarySource is {primary}",
            want.join(" or ")
        ),
    )]
}

fn refers_to(hits: &Selection<'_>, target: &str, ctx: &RuleContext) -> Vec<Found> {
    hits.iter()
        .filter_map(|(loc, v)| {
            let r = v.get("reference").and_then(Value::as_str)?;
            let t = if r.starts_with("urn:uuid:") {
                (ctx.resolve)(r)
            } else {
                r.split('/').rev().nth(1).map(str::to_string)
            }?;
            (t != target).then(|| {
                found(
                    format!("{loc}.reference"),
                    format!("points to {t}; expected {target}"),
                )
            })
        })
        .collect()
}

/// An administrative code starts with its parent's: village (10 digits) with its district
/// (6), district with its city (4), city with its province (2). The level is the one the
/// rule's path names (`…extension[url=village].valueCode`).
fn address_parents(resource: &Value, rule_path: &str) -> Vec<Found> {
    let mut out = Vec::new();
    let level = rule_path
        .rsplit("extension[url=")
        .next()
        .and_then(|s| s.split(']').next())
        .unwrap_or("");
    let path = format!("address.extension[url={ADMINISTRATIVE_CODE}]");
    let administrative_codes = select(resource, &path);
    for (loc, ext) in administrative_codes.iter() {
        let parts: Vec<(usize, &str, &str)> = ext
            .get("extension")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, e)| Some((i, e.get("url")?.as_str()?, e.get("valueCode")?.as_str()?)))
            .collect();
        let code = |level: &str| {
            parts
                .iter()
                .find(|(_, u, _)| *u == level)
                .map(|(i, _, c)| (*i, *c))
        };
        for (child, parent) in [
            ("village", "district"),
            ("district", "city"),
            ("city", "province"),
        ]
        .into_iter()
        .filter(|(c, _)| *c == level)
        {
            if let (Some((i, c)), Some((_, p))) = (code(child), code(parent)) {
                if !c.starts_with(p) {
                    out.push(found(
                        format!("{loc}.extension[{i}].valueCode"),
                        format!("{child} `{c}` does not lie in {parent} `{p}`"),
                    ));
                }
            }
        }
    }
    out
}

/// A parent's identifier in the education extension is a NIK as on the KTP: 16 digits.
fn ktp_format(hits: &Selection<'_>) -> Vec<Found> {
    hits.iter()
        .filter_map(|(loc, v)| {
            let s = v.as_str()?;
            let why = if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_digit()) {
                Some("a NIK is 16 digits".to_string())
            } else {
                crate::fhir::nik::impossible(s).map(|w| w.to_string())
            };
            why.map(|why| found(loc.to_string(), format!("not a NIK: {why}")))
        })
        .collect()
}
