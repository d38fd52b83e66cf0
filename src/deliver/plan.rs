//! What a correction or a cancellation must do upstream (provisional; replaced by the
//! reviewed version from the `wip/pure` branch).

use serde_json::{Value, json};

pub struct HeldId {
    pub full_url: String,
    pub resource_type: String,
    pub id: String,
}

pub fn held_ids(server_ids: &Value) -> Vec<HeldId> {
    server_ids
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| {
                    Some(HeldId {
                        full_url: s.get("fullUrl")?.as_str()?.to_string(),
                        resource_type: s.get("resourceType")?.as_str()?.to_string(),
                        id: s.get("id")?.as_str()?.to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub create: Vec<String>,
    pub update: Vec<String>,
    pub unchanged: Vec<String>,
    pub retire: Vec<String>,
}

fn owned(bundle: &Value) -> Vec<(String, Value)> {
    bundle["entry"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e.pointer("/request/ifNoneExist").is_none())
                .filter_map(|e| Some((e["fullUrl"].as_str()?.to_string(), e["resource"].clone())))
                .collect()
        })
        .unwrap_or_default()
}

pub fn plan(base: Option<&Value>, held: &[HeldId], new: Option<&Value>) -> Plan {
    let mut p = Plan::default();
    let is_held = |u: &str| held.iter().any(|h| h.full_url == u);
    let base_owned = base.map(owned);
    let new_owned = new.map(owned).unwrap_or_default();
    for (url, res) in &new_owned {
        if !is_held(url) {
            p.create.push(url.clone());
            continue;
        }
        let same = base_owned
            .as_ref()
            .and_then(|b| b.iter().find(|(u, _)| u == url))
            .is_some_and(|(_, r)| r == res);
        if same {
            p.unchanged.push(url.clone());
        } else {
            p.update.push(url.clone());
        }
    }
    match &base_owned {
        Some(b) => {
            for (url, res) in b {
                if is_held(url)
                    && !new_owned.iter().any(|(u, _)| u == url)
                    && entered_in_error(res).is_some()
                {
                    p.retire.push(url.clone());
                }
            }
        }
        None if new.is_none() => {
            for h in held {
                let stub = json!({"resourceType": h.resource_type});
                if entered_in_error(&stub).is_some() {
                    p.retire.push(h.full_url.clone());
                }
            }
        }
        None => {}
    }
    p
}

pub fn entered_in_error(resource: &Value) -> Option<Value> {
    let mut r = resource.clone();
    match resource.get("resourceType")?.as_str()? {
        "Condition" => {
            r["verificationStatus"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "entered-in-error", "display": "Entered in Error"}]});
        }
        "AllergyIntolerance" => {
            r["verificationStatus"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "code": "entered-in-error", "display": "Entered in Error"}]});
        }
        "Patient" | "Practitioner" | "Organization" | "Location" | "PractitionerRole" => {
            return None;
        }
        _ => r["status"] = json!("entered-in-error"),
    }
    Some(r)
}

pub fn changes(plan: &Plan) -> Value {
    json!({"created": plan.create.len(), "updated": plan.update.len(), "retired": plan.retire.len(), "unchanged": plan.unchanged.len()})
}
