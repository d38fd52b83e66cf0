//! Layer (a): the official FHIR R4 JSON Schema (`profiles/r4/fhir.schema.json`).
//!
//! One validator for every resource type, compiled once: its root sends a resource to its
//! type's definition by `resourceType` (an `if`/`then` per type), so each shared definition
//! (Extension, CodeableConcept, Reference, …) is compiled once for all ~150 types — one
//! validator per type compiled its own copy of each, some 150 MB and half a second at start.
//! The schema's `ResourceList` (a `oneOf` over all types) is replaced by "an object with a
//! resourceType", and nested resources — Bundle entries, contained resources — are checked on
//! their own instead. That keeps failures precise (an error names
//! `Bundle.entry[3].resource.code`, not "did not match any of 150 schemas") and validation
//! fast: `is_valid` first, the error walk only for what fails.

use crate::fhir::{Issue, IssueCode, Outcome};
use foldhash::{HashMap, HashMapExt, HashSet};
use jsonschema::paths::LocationSegment;
use jsonschema::{Draft, Registry, Validator};
use serde_json::{Value, json};
use std::path::Path;

const SCHEMA_URI: &str = "http://hl7.org/fhir/json-schema/4.0";
const MAX_ISSUES_PER_RESOURCE: usize = 25;
/// The definition gerbang adds: a resource checked by its own type's definition.
const DISPATCH: &str = "GerbangResourceByType";

pub struct R4Schema {
    /// Every resource type, checked by its own definition.
    validator: Validator,
    types: HashSet<String>,
    /// The dateTime elements of every type, for the date-without-time check.
    pub date_times: super::datetime::DateTimes,
    /// regex → primitive type name, so a pattern failure reads "not a valid dateTime".
    patterns: HashMap<String, (String, &'static str)>,
}

impl R4Schema {
    pub fn load(path: &Path) -> Result<R4Schema, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut schema: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let defs = schema
            .get_mut("definitions")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| format!("{} has no definitions", path.display()))?;
        defs.insert(
            "ResourceList".into(),
            json!({"type": "object", "required": ["resourceType"], "properties": {"resourceType": {"type": "string"}}}),
        );
        // The official schema's complex types do not say they are objects, so `"subject":
        // "Patient/1"` or `"class": [ … ]` would pass; every type with elements of its own is
        // an object.
        for (name, def) in defs.iter_mut() {
            if name.starts_with(|c: char| c.is_ascii_uppercase())
                && def.get("properties").is_some()
                && def.get("type").is_none()
                && let Some(obj) = def.as_object_mut()
            {
                obj.insert("type".into(), json!("object"));
            }
        }
        let date_times = super::datetime::DateTimes::from_definitions(defs);
        let mut patterns = HashMap::new();
        for (name, def) in defs.iter() {
            if let Some(p) = def.get("pattern").and_then(Value::as_str) {
                if name.chars().next().is_some_and(char::is_lowercase) {
                    patterns.insert(p.to_string(), (name.clone(), primitive_hint(name)));
                }
            }
        }
        let types: HashSet<String> = schema
            .pointer("/discriminator/mapping")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("{} has no discriminator mapping", path.display()))?
            .keys()
            .cloned()
            .collect();
        let mut sorted: Vec<&String> = types.iter().collect();
        sorted.sort();
        // Two ways to the type's definition, in one compilation so they share every compiled
        // definition: an `anyOf` of the types, which jsonschema dispatches on the
        // `resourceType` constant each definition pins (one lookup), decides validity; only a
        // resource that fails it walks the `if`/`then` per type, whose errors are the type's
        // own (an `anyOf` would report every one of its ~150 branches).
        let by_type_fast: Vec<Value> = sorted
            .iter()
            .map(|t| json!({"$ref": format!("#/definitions/{t}")}))
            .collect();
        let by_type_errors: Vec<Value> = sorted
            .iter()
            .map(|t| {
                json!({
                    "if": {"required": ["resourceType"], "properties": {"resourceType": {"const": t}}},
                    "then": {"$ref": format!("#/definitions/{t}")}
                })
            })
            .collect();
        schema["definitions"][DISPATCH] = json!({
            "if": {"anyOf": by_type_fast},
            "then": true,
            "else": {"allOf": by_type_errors}
        });
        // `if`/`then` is draft-07; the FHIR schema uses nothing that reads differently there.
        schema["$schema"] = json!("http://json-schema.org/draft-07/schema#");
        let registry = Registry::new()
            .draft(Draft::Draft7)
            .add(SCHEMA_URI, &schema)
            .and_then(|b| b.prepare())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let root = json!({"$schema": "http://json-schema.org/draft-07/schema#", "$ref": format!("{SCHEMA_URI}#/definitions/{DISPATCH}")});
        let validator = jsonschema::options()
            .with_draft(Draft::Draft7)
            .with_registry(&registry)
            .build(&root)
            .map_err(|e| format!("{}: cannot compile it: {e}", path.display()))?;
        Ok(R4Schema {
            validator,
            types,
            date_times,
            patterns,
        })
    }

    pub fn knows(&self, resource_type: &str) -> bool {
        self.types.contains(resource_type)
    }

    pub fn resource_types(&self) -> impl Iterator<Item = &str> {
        self.types.iter().map(String::as_str)
    }

    /// Check one resource and, recursively, its contained resources. `at` is the resource's
    /// own location (`Patient`, or `Bundle.entry[2].resource`).
    pub fn check(&self, resource: &Value, at: &str) -> Outcome {
        let mut out = Outcome::new();
        let Some(rt) = resource.get("resourceType").and_then(Value::as_str) else {
            out.push(
                Issue::error(
                    IssueCode::Structure,
                    "resourceType is missing: every FHIR resource names its type",
                )
                .at(at),
            );
            return out;
        };
        if !self.types.contains(rt) {
            out.push(
                Issue::error(
                    IssueCode::NotSupported,
                    format!("`{rt}` is not a FHIR R4 resource type"),
                )
                .at(format!("{at}.resourceType")),
            );
            return out;
        }
        if !self.validator.is_valid(resource) {
            for error in self
                .validator
                .iter_errors(resource)
                .take(MAX_ISSUES_PER_RESOURCE)
            {
                let mut loc = at.to_string();
                for seg in error.instance_path() {
                    match seg {
                        LocationSegment::Property(p) => {
                            loc.push('.');
                            loc.push_str(&p);
                        }
                        LocationSegment::Index(i) => loc.push_str(&format!("[{i}]")),
                    }
                }
                let text = self.describe(&error);
                out.push(Issue::error(IssueCode::Structure, text).at(loc));
            }
        }
        if let Some(contained) = resource.get("contained").and_then(Value::as_array) {
            for (i, c) in contained.iter().enumerate() {
                out.extend(self.check(c, &format!("{at}.contained[{i}]")));
            }
        }
        out
    }

    fn describe(&self, error: &jsonschema::ValidationError) -> String {
        use jsonschema::error::ValidationErrorKind as K;
        match error.kind() {
            K::Pattern { pattern } => match self.patterns.get(pattern) {
                Some((name, hint)) => format!("not a valid FHIR {name}{hint}"),
                None => error.masked().to_string(),
            },
            K::AdditionalProperties { unexpected } => format!(
                "unknown element{} {}: FHIR R4 does not define {} here (check spelling and nesting)",
                if unexpected.len() > 1 { "s" } else { "" },
                unexpected
                    .iter()
                    .map(|u| format!("`{u}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if unexpected.len() > 1 { "them" } else { "it" },
            ),
            K::Required { property } => format!("{property} is required by FHIR R4"),
            K::Type { kind } => {
                let wanted = match kind {
                    jsonschema::error::TypeKind::Single(t) => json_kind(t.as_str()),
                    jsonschema::error::TypeKind::Multiple(_) => "another kind of value",
                };
                format!(
                    "must be {wanted} here, not {}",
                    json_kind(value_kind(error.instance()))
                )
            }
            K::Enum { options } => format!("must be one of {options}"),
            K::Constant { expected_value } => format!("must be {expected_value}"),
            K::MinItems { .. } | K::MinLength { .. } | K::MinProperties { .. } => {
                "may not be empty: leave the element out rather than send it empty".to_string()
            }
            // Plain words whatever else the schema says: no JSON Schema keyword reaches a
            // facility system pushing FHIR.
            _ => "is not a form FHIR R4 allows for this element; check it against the resource's definition".to_string(),
        }
    }
}

/// A JSON kind in words.
fn json_kind(kind: &str) -> &'static str {
    match kind {
        "object" => "an object (an element with fields of its own)",
        "array" => "a list ([…])",
        "string" => "text",
        "number" | "integer" => "a number",
        "boolean" => "true or false",
        "null" => "null",
        _ => "another kind of value",
    }
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
    }
}

fn primitive_hint(name: &str) -> &'static str {
    match name {
        "dateTime" => " (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz)",
        "date" => " (YYYY, YYYY-MM or YYYY-MM-DD)",
        "instant" => " (YYYY-MM-DDThh:mm:ss.sss+zz:zz)",
        "time" => " (hh:mm:ss)",
        "id" => " (1–64 letters, digits, '-' or '.')",
        "code" => " (no leading/trailing or repeated whitespace)",
        "uri" | "url" | "canonical" => " (no whitespace)",
        "positiveInt" => " (an integer greater than 0)",
        "unsignedInt" => " (an integer of 0 or more)",
        _ => "",
    }
}
