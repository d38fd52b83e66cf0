//! dateTime elements that hold a date without a time. R4 allows `2026-05-12` in a dateTime;
//! SATUSEHAT refuses it ("Invalid date time format : 2022-06-14", satusehat-server-behaviour.md)
//! — in every element the R4 JSON Schema types as dateTime, found from the schema's own
//! definitions at load, not from a list kept by hand. (`date` elements such as
//! `Patient.birthDate` are not dateTimes and keep their dates.)

use crate::fhir::{Issue, IssueCode, Outcome};

/// Elements SATUSEHAT's rule table types otherwise than `dateTime`, where a date alone is
/// taken: `Immunization.occurrenceDateTime` is an `ImmunizationDateTime` (rule 10156) — a dose
/// recorded from history is often known by its day only.
const DATE_ALLOWED: &[(&str, &str)] = &[("Immunization", "occurrenceDateTime")];
use foldhash::{HashMap, HashMapExt};
use serde_json::Value;
use std::fmt::Write as _;

/// Where an element leads: a dateTime, or a complex type to look into.
#[derive(Debug, Clone)]
enum Slot {
    DateTime,
    Complex(String),
}

/// For each type of the R4 schema, its elements that are dateTimes or lead to some.
#[derive(Debug, Default)]
pub struct DateTimes {
    types: HashMap<String, HashMap<String, Slot>>,
}

impl DateTimes {
    /// Read the schema's `definitions`: an element is a dateTime when it refers to
    /// `#/definitions/dateTime` or repeats its pattern (choice elements such as
    /// `effectiveDateTime` carry the pattern inline).
    pub fn from_definitions(defs: &serde_json::Map<String, Value>) -> DateTimes {
        let pattern = defs
            .get("dateTime")
            .and_then(|d| d.get("pattern"))
            .and_then(Value::as_str);
        let target = |p: &Value| -> Option<String> {
            let r = p
                .get("$ref")
                .or_else(|| p.pointer("/items/$ref"))
                .and_then(Value::as_str)?;
            r.strip_prefix("#/definitions/").map(str::to_string)
        };
        let mut all: HashMap<String, HashMap<String, Slot>> = HashMap::new();
        for (name, def) in defs {
            let Some(props) = def.get("properties").and_then(Value::as_object) else {
                continue;
            };
            let mut slots = HashMap::new();
            for (prop, p) in props {
                if prop.starts_with('_') {
                    continue;
                }
                let inline = p.get("pattern").and_then(Value::as_str);
                let slot = match target(p) {
                    Some(t) if t == "dateTime" => Slot::DateTime,
                    _ if inline.is_some() && inline == pattern => Slot::DateTime,
                    // Nested resources are validated as resources of their own.
                    Some(t) if t == "ResourceList" => continue,
                    Some(t) if t.starts_with(|c: char| c.is_ascii_uppercase()) => Slot::Complex(t),
                    _ => continue,
                };
                slots.insert(prop.clone(), slot);
            }
            all.insert(name.clone(), slots);
        }
        // Keep only the paths that lead to a dateTime somewhere, so the walk stays short.
        let mut leads: HashMap<String, bool> = HashMap::new();
        let names: Vec<String> = all.keys().cloned().collect();
        for n in &names {
            leads_to_date_time(n, &all, &mut leads, &mut Vec::new());
        }
        for slots in all.values_mut() {
            slots.retain(|_, s| match s {
                Slot::DateTime => true,
                Slot::Complex(t) => leads.get(t).copied().unwrap_or(false),
            });
        }
        all.retain(|_, s| !s.is_empty());
        DateTimes { types: all }
    }

    /// Errors for the dateTime elements of `resource` (at `at`) that hold only a date.
    pub fn check(&self, resource: &Value, at: &str) -> Outcome {
        let mut out = Outcome::new();
        if let Some(rt) = resource.get("resourceType").and_then(Value::as_str) {
            let mut loc = at.to_string();
            self.walk(rt, resource, &mut loc, &mut out);
        }
        out
    }

    /// `loc` is where `v` is: extended for each element walked into and cut back after,
    /// so a location is written out only for an element found wanting.
    fn walk(&self, ty: &str, v: &Value, loc: &mut String, out: &mut Outcome) {
        let (Some(slots), Some(obj)) = (self.types.get(ty), v.as_object()) else {
            return;
        };
        for (k, child) in obj {
            let Some(slot) = slots.get(k) else { continue };
            if DATE_ALLOWED.contains(&(ty, k.as_str())) {
                continue;
            }
            let parent = loc.len();
            loc.push('.');
            loc.push_str(k);
            match child {
                Value::Array(items) => {
                    let key_end = loc.len();
                    for (i, item) in items.iter().enumerate() {
                        let _ = write!(loc, "[{i}]");
                        self.check_item(slot, item, loc, out);
                        loc.truncate(key_end);
                    }
                }
                item => self.check_item(slot, item, loc, out),
            }
            loc.truncate(parent);
        }
    }

    fn check_item(&self, slot: &Slot, item: &Value, loc: &mut String, out: &mut Outcome) {
        match slot {
            Slot::DateTime => {
                if let Some(s) = item.as_str().filter(|s| !s.contains('T')) {
                    out.push(
                        Issue::error(
                            IssueCode::Value,
                            format!(
                                "`{s}` is a date without a time; SATUSEHAT refuses that in a date-time element — write the moment as YYYY-MM-DDThh:mm:ss+00:00"
                            ),
                        )
                        .at(loc.as_str()),
                    );
                }
            }
            Slot::Complex(t) => self.walk(t, item, loc, out),
        }
    }
}

fn leads_to_date_time(
    ty: &str,
    all: &HashMap<String, HashMap<String, Slot>>,
    memo: &mut HashMap<String, bool>,
    visiting: &mut Vec<String>,
) -> bool {
    if let Some(&known) = memo.get(ty) {
        return known;
    }
    if visiting.iter().any(|v| v == ty) {
        return false; // a recursive type (Extension in Extension): decided by its other paths
    }
    visiting.push(ty.to_string());
    let mut found = false;
    if let Some(slots) = all.get(ty) {
        for s in slots.values() {
            found |= match s {
                Slot::DateTime => true,
                Slot::Complex(t) => leads_to_date_time(t, all, memo, visiting),
            };
        }
    }
    visiting.pop();
    memo.insert(ty.to_string(), found);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defs() -> serde_json::Map<String, Value> {
        let dt = "^([0-9]{4})(-[0-9]{2}(-[0-9]{2}(T.*)?)?)?$";
        json!({
            "dateTime": {"pattern": dt, "type": "string"},
            "date": {"pattern": "^[0-9-]+$", "type": "string"},
            "Period": {"properties": {"start": {"$ref": "#/definitions/dateTime"}, "end": {"$ref": "#/definitions/dateTime"}}},
            "Extension": {"properties": {"extension": {"items": {"$ref": "#/definitions/Extension"}}, "valueDateTime": {"pattern": dt}, "valueString": {"$ref": "#/definitions/string"}}},
            "Encounter": {"properties": {"period": {"$ref": "#/definitions/Period"}, "extension": {"items": {"$ref": "#/definitions/Extension"}}, "contained": {"items": {"$ref": "#/definitions/ResourceList"}}}},
            "Patient": {"properties": {"birthDate": {"$ref": "#/definitions/date"}, "deceasedDateTime": {"pattern": dt}}}
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn a_date_alone_in_a_date_time_is_refused_where_the_schema_says_date_time() {
        let d = DateTimes::from_definitions(&defs());
        let enc = json!({"resourceType": "Encounter", "period": {"start": "2026-05-12", "end": "2026-05-12T01:00:00+00:00"},
            "extension": [{"extension": [{"valueDateTime": "2026-05"}]}]});
        let out = d.check(&enc, "Encounter");
        let at: Vec<&str> = out
            .issues
            .iter()
            .filter_map(|i| i.expression.as_deref())
            .collect();
        assert_eq!(
            at,
            [
                "Encounter.period.start",
                "Encounter.extension[0].extension[0].valueDateTime"
            ]
        );
        assert!(out.issues[0].text.contains("date without a time"));
        // A date element keeps its date.
        let p = json!({"resourceType": "Patient", "birthDate": "2025-08-10", "deceasedDateTime": "2026-01-01"});
        let out = d.check(&p, "Patient");
        assert_eq!(out.issues.len(), 1);
        assert_eq!(
            out.issues[0].expression.as_deref(),
            Some("Patient.deceasedDateTime")
        );
    }
}
