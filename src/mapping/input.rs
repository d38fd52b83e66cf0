//! Step 1 of the path: does the facility's record have the shape its record type promises?
//! Checked against `mappings/<type>/input.schema.json` (or an adapter's) before anything else
//! happens, so a facility learns exactly which field to fix and nothing is stored.
//!
//! The facility reads the answer, not a JSON Schema validator: every issue names the field as
//! a JSON path of its own record (`$.peserta.tanggal_lahir`) and says in plain words what to
//! send. No issue text names a JSON Schema keyword.
//!
//! - A rule between fields (`anyOf`, `oneOf`, `if`/`then`/`else`, `not`, `dependentSchemas`)
//!   carries its own sentence in the schema, as `"x-message"` beside the keyword (JSON Schema
//!   ignores unknown keywords): "a newborn without NIK needs nik_ibu, kelahiran_ke and alamat".
//!   The message of the innermost such rule an error lies under is used. Every schema must
//!   have one (a test walks them all).
//! - Every other kind of error (a missing field, a wrong type, a value outside the list or
//!   the range, an unknown field …) is translated generically in [`plain_words`].
//! - Values are never repeated: they may be a NIK or a name.
//!
//! Before the schema, [`super::guard::check_values`] refuses control characters, overlong
//! text and unrepresentable numbers anywhere in the record.

use crate::fhir::{Issue, IssueCode, Outcome};
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::{Location, LocationSegment};
use jsonschema::{JsonType, ValidationError, Validator};
use serde_json::Value;

/// Most records break a schema in a handful of places; past this, more issues only bury the
/// first ones.
const MAX_ISSUES: usize = 50;

/// The schema keywords whose failure is a rule between fields, explained by the `x-message`
/// of the schema object holding them.
const RULE_KEYWORDS: [&str; 7] = [
    "anyOf",
    "oneOf",
    "if",
    "then",
    "else",
    "not",
    "dependentSchemas",
];

/// The custom keyword holding the sentence for a rule between fields.
pub const MESSAGE_KEYWORD: &str = "x-message";

/// A compiled input schema with its source, which holds the messages.
pub struct InputSchema {
    validator: Validator,
    schema: Value,
}

impl InputSchema {
    /// Compile `schema`. Formats are checked: `date` is a real calendar date (no
    /// `2026-02-30`), `date-dmy` the same written dd-mm-yyyy (P-Care), `local-date-time` a
    /// real date and time of day, `nik` a NIK that can exist
    /// ([`crate::fhir::nik::impossible`]).
    pub fn compile(schema: Value) -> Result<InputSchema, String> {
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .with_format("nik", |s: &str| crate::fhir::nik::impossible(s).is_none())
            .with_format("local-date-time", |s: &str| super::dates::is_real(s))
            // P-Care writes dates dd-mm-yyyy.
            .with_format("date-dmy", |s: &str| {
                chrono::NaiveDate::parse_from_str(s, "%d-%m-%Y").is_ok()
            })
            .build(&schema)
            .map_err(|e| e.to_string())?;
        Ok(InputSchema { validator, schema })
    }

    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// Guards, then the schema. Errors name fields of `record` as JSON paths.
    pub fn check(&self, record: &Value) -> Outcome {
        let guarded = super::guard::check_values(record);
        if !guarded.is_empty() {
            // The rest of the record is not worth reading past a NUL or a megabyte.
            return Outcome::from(guarded);
        }
        if self.validator.is_valid(record) {
            return Outcome::new();
        }
        let mut outcome = Outcome::new();
        for error in self.validator.iter_errors(record) {
            for issue in self.translate(&error) {
                if !outcome.issues.contains(&issue) {
                    outcome.push(issue);
                }
            }
            if outcome.issues.len() >= MAX_ISSUES {
                break;
            }
        }
        outcome
    }

    /// One schema error as issues in the facility's terms.
    fn translate(&self, error: &ValidationError) -> Vec<Issue> {
        let at = json_path(error.instance_path());
        if let Some(message) = rule_message(&self.schema, error.schema_path()) {
            // A missing field is named itself, so the facility sees where it goes.
            let at = match error.kind() {
                ValidationErrorKind::Required { property } => {
                    format!("{at}.{}", property.as_str().unwrap_or_default())
                }
                _ => at,
            };
            return vec![Issue::error(IssueCode::Invalid, format!("{at}: {message}")).at(at)];
        }
        plain_words(error.kind(), &at, self.field_description(error))
    }

    /// The description the schema gives the failing field, if any (added to pattern errors,
    /// which otherwise only show the expected form).
    fn field_description(&self, error: &ValidationError) -> Option<String> {
        let segments: Vec<String> = error
            .schema_path()
            .iter()
            .map(|s| segment_text(&s))
            .collect();
        let parent = &segments[..segments.len().saturating_sub(1)];
        node(&self.schema, parent)
            .and_then(|n| n.get("description"))
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

fn segment_text(s: &LocationSegment) -> String {
    match s {
        LocationSegment::Property(p) => p.to_string(),
        LocationSegment::Index(i) => i.to_string(),
    }
}

/// The schema object at `segments` (a keyword location: property names and array indexes).
fn node<'a>(schema: &'a Value, segments: &[String]) -> Option<&'a Value> {
    let mut at = schema;
    for s in segments {
        at = match at {
            Value::Object(m) => m.get(s)?,
            Value::Array(a) => a.get(s.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

/// The `x-message` of the innermost rule between fields that the error at `schema_path` lies
/// under: for each rule keyword on the path, the schema object holding it.
fn rule_message(schema: &Value, schema_path: &Location) -> Option<String> {
    let segments: Vec<String> = schema_path.iter().map(|s| segment_text(&s)).collect();
    (0..segments.len())
        .rev()
        .filter(|&i| RULE_KEYWORDS.contains(&segments[i].as_str()))
        .find_map(|i| {
            node(schema, &segments[..i])?
                .get(MESSAGE_KEYWORD)?
                .as_str()
                .map(str::to_string)
        })
}

/// Every other error kind, in plain words naming the field at `at`.
fn plain_words(kind: &ValidationErrorKind, at: &str, description: Option<String>) -> Vec<Issue> {
    use ValidationErrorKind as K;
    let one = |code: IssueCode, path: String, text: String| {
        vec![Issue::error(code, format!("{path} {text}")).at(path)]
    };
    let at = at.to_string();
    match kind {
        K::Required { property } => {
            let field = format!("{at}.{}", property.as_str().unwrap_or_default());
            one(
                IssueCode::Required,
                field,
                "is missing: this record type needs it".to_string(),
            )
        }
        K::AdditionalProperties { unexpected } | K::UnevaluatedProperties { unexpected } => {
            unexpected
                .iter()
                .map(|name| {
                    let field = format!("{at}.{name}");
                    Issue::error(
                        IssueCode::Structure,
                        format!("{field} is not a field of this record type: check its spelling, or leave it out"),
                    )
                    .at(field)
                })
                .collect()
        }
        K::Type { kind } => one(
            IssueCode::Value,
            at,
            format!("must be {}", type_words(kind)),
        ),
        K::Enum { options } => one(
            IssueCode::Value,
            at,
            format!("must be one of: {}", list(options)),
        ),
        K::Constant { expected_value } => one(
            IssueCode::Value,
            at,
            format!("must be {expected_value}"),
        ),
        K::Pattern { pattern } => one(
            IssueCode::Value,
            at,
            // The field's description says it in words; the regular expression only when
            // there is none.
            match description {
                Some(d) => format!("is not written as expected: {d}"),
                None => format!("is not written in the expected form ({pattern})"),
            },
        ),
        K::Format { format } => one(IssueCode::Value, at, format_words(format)),
        K::Minimum { limit } => one(IssueCode::Value, at, format!("must be at least {limit}")),
        K::Maximum { limit } => one(IssueCode::Value, at, format!("must be at most {limit}")),
        K::ExclusiveMinimum { limit } => one(
            IssueCode::Value,
            at,
            format!("must be greater than {limit}"),
        ),
        K::ExclusiveMaximum { limit } => one(
            IssueCode::Value,
            at,
            format!("must be less than {limit}"),
        ),
        K::MultipleOf { multiple_of } => one(
            IssueCode::Value,
            at,
            format!("must be a multiple of {multiple_of}"),
        ),
        K::MinLength { limit: 1 } => one(
            IssueCode::Value,
            at,
            "must not be empty".to_string(),
        ),
        K::MinLength { limit } => one(
            IssueCode::Value,
            at,
            format!("must have at least {limit} characters"),
        ),
        K::MaxLength { limit } => one(
            IssueCode::TooLong,
            at,
            format!("must have at most {limit} characters"),
        ),
        K::MinItems { limit } => one(
            IssueCode::Value,
            at,
            format!("must list at least {limit} item(s)"),
        ),
        K::MaxItems { limit } => one(
            IssueCode::Value,
            at,
            format!("may list at most {limit} item(s)"),
        ),
        K::MinProperties { .. } => one(IssueCode::Value, at, "must not be empty".to_string()),
        K::MaxProperties { limit } => one(
            IssueCode::Value,
            at,
            format!("may have at most {limit} fields"),
        ),
        K::UniqueItems => one(
            IssueCode::Value,
            at,
            "lists the same item more than once".to_string(),
        ),
        K::FalseSchema => one(
            IssueCode::Structure,
            at,
            "is not accepted here: leave it out".to_string(),
        ),
        // A rule between fields without its message (a test keeps every schema from this).
        K::AnyOf { .. } | K::OneOfNotValid { .. } | K::OneOfMultipleValid { .. } | K::Not { .. } => {
            one(
                IssueCode::Invalid,
                at,
                "does not fit any of the accepted forms; see the description of this field".to_string(),
            )
        }
        _ => one(
            IssueCode::Invalid,
            at,
            "is not accepted; see the description of this field".to_string(),
        ),
    }
}

fn type_words(kind: &TypeKind) -> String {
    let word = |t: &JsonType| match t.as_str() {
        "string" => "text (a string)".to_string(),
        "integer" => "a whole number".to_string(),
        "number" => "a number".to_string(),
        "boolean" => "true or false".to_string(),
        "object" => "an object ({…})".to_string(),
        "array" => "a list ([…])".to_string(),
        "null" => "null".to_string(),
        other => other.to_string(),
    };
    match kind {
        TypeKind::Single(t) => word(t),
        TypeKind::Multiple(set) => set
            .iter()
            .map(|t| word(&t))
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

fn format_words(format: &str) -> String {
    match format {
        "date" => "is not a real calendar date: write it YYYY-MM-DD with a day that exists in that month (e.g. 2026-02-28)".to_string(),
        "local-date-time" => "is not a real date and time: write it YYYY-MM-DDThh:mm (local time) with a day that exists in that month and a time from 00:00 to 23:59".to_string(),
        "date-dmy" => "is not a real calendar date: write it dd-mm-yyyy with a day that exists in that month (e.g. 28-02-2026)".to_string(),
        "nik" => "cannot be a real NIK: its first two digits are the province code and 00 is no province (an all-zero or placeholder NIK?) — send the NIK from the KTP or KK".to_string(),
        other => format!("is not a valid {other}"),
    }
}

/// The allowed values of a list, written as JSON, shortened when long.
fn list(options: &Value) -> String {
    let items: Vec<String> = options
        .as_array()
        .map(|a| a.iter().map(Value::to_string).collect())
        .unwrap_or_default();
    if items.len() > 15 {
        format!("{}, … ({} values)", items[..15].join(", "), items.len())
    } else {
        items.join(", ")
    }
}

/// `/imunisasi/0/no_batch` → `$.imunisasi[0].no_batch`.
pub fn json_path(location: &Location) -> String {
    let mut out = String::from("$");
    for segment in location {
        match segment {
            LocationSegment::Property(p) => {
                out.push('.');
                out.push_str(&p);
            }
            LocationSegment::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// Schema objects (as JSON pointers) holding a rule between fields without an `x-message`.
/// A `not` inside an `if` never reports, so it needs none.
pub fn rules_without_message(schema: &Value) -> Vec<String> {
    fn walk(v: &Value, at: &str, in_if: bool, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                let needs = ["anyOf", "oneOf", "if", "dependentSchemas"]
                    .iter()
                    .any(|k| m.contains_key(*k))
                    || (m.contains_key("not") && !in_if);
                if needs && !m.get(MESSAGE_KEYWORD).is_some_and(Value::is_string) {
                    out.push(if at.is_empty() {
                        "/".to_string()
                    } else {
                        at.to_string()
                    });
                }
                for (k, c) in m {
                    walk(c, &format!("{at}/{k}"), in_if || k == "if", out);
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    walk(c, &format!("{at}/{i}"), in_if, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(schema, "", false, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> InputSchema {
        InputSchema::compile(json!({
            "type": "object",
            "required": ["id", "peserta"],
            "additionalProperties": false,
            "properties": {
                "id": {"type": "string", "minLength": 1},
                "jk": {"enum": ["L", "P"]},
                "bb": {"type": "number", "exclusiveMinimum": 0, "maximum": 40},
                "tgl": {"type": "string", "format": "date"},
                "nik": {"$ref": "#/$defs/nik"},
                "peserta": {
                    "type": "object",
                    "x-message": "a newborn without NIK needs nik_ibu, kelahiran_ke and alamat",
                    "anyOf": [{"required": ["nik"]}, {"required": ["nik_ibu", "kelahiran_ke", "alamat"]}]
                },
                "dosis": {
                    "type": "object",
                    "x-message": "a dose given needs no_batch",
                    "if": {"properties": {"status": {"const": "diberikan"}}},
                    "then": {"required": ["no_batch"]}
                }
            },
            "$defs": {"nik": {"type": "string", "pattern": "^[0-9]{16}$", "format": "nik", "description": "16-digit NIK."}}
        }))
        .unwrap()
    }

    fn texts(o: &Outcome) -> Vec<String> {
        o.issues
            .iter()
            .map(|i| format!("{} | {}", i.expression.clone().unwrap_or_default(), i.text))
            .collect()
    }

    #[test]
    fn rules_between_fields_use_their_message() {
        let o = schema().check(&json!({"id": "1", "peserta": {"nama": "Bayi"}}));
        assert_eq!(
            texts(&o),
            ["$.peserta | $.peserta: a newborn without NIK needs nik_ibu, kelahiran_ke and alamat"]
        );
        let o = schema()
            .check(&json!({"id": "1", "peserta": {"nik": "x"}, "dosis": {"status": "diberikan"}}));
        assert_eq!(
            texts(&o),
            ["$.dosis.no_batch | $.dosis.no_batch: a dose given needs no_batch"]
        );
    }

    #[test]
    fn every_other_error_is_plain_words_naming_the_field() {
        let o = schema().check(
            &json!({"peserta": {"nik": "x"}, "jk": "X", "bb": 0, "tgl": "2026-02-30",
                                        "nik": "0000000000000000", "extra": 1}),
        );
        let t = texts(&o);
        for expected in [
            "$.id | $.id is missing",
            "$.jk | $.jk must be one of: \"L\", \"P\"",
            "$.bb | $.bb must be greater than 0",
            "$.tgl | $.tgl is not a real calendar date",
            "$.nik | $.nik cannot be a real NIK",
            "$.extra | $.extra is not a field",
        ] {
            assert!(
                t.iter().any(|x| x.starts_with(expected)),
                "{expected} not in {t:#?}"
            );
        }
        for keyword in [
            "anyOf",
            "oneOf",
            "schema",
            "keyword",
            "const",
            "\"if\"",
            "additionalProperties",
            "exclusiveMinimum",
            "format",
        ] {
            assert!(
                t.iter().all(|x| !x.contains(keyword)),
                "{keyword} in {t:#?}"
            );
        }
        let o = schema().check(&json!({"id": "1", "peserta": {"nik": "x"}, "nik": "12345"}));
        assert_eq!(
            texts(&o),
            ["$.nik | $.nik is not written as expected: 16-digit NIK."]
        );
        // The NIK itself is not repeated.
        assert!(t.iter().all(|x| !x.contains("0000000000000000")));
    }

    #[test]
    fn real_dates_pass() {
        let o = schema().check(&json!({"id": "1", "peserta": {"nik": "x"}, "tgl": "2024-02-29", "nik": "3273015008250002"}));
        assert!(o.is_empty(), "{:?}", texts(&o));
        let o = schema().check(&json!({"id": "1", "peserta": {"nik": "x"}, "tgl": "2025-02-29"}));
        assert_eq!(o.issues.len(), 1);
    }

    #[test]
    fn guards_come_first() {
        let o = schema().check(&json!({"id": "a\u{0}", "peserta": {}}));
        assert_eq!(o.issues.len(), 1);
        assert!(o.issues[0].text.contains("NUL"));
    }

    #[test]
    fn rules_without_message_are_found() {
        let s = json!({"properties": {"a": {"anyOf": [{}]}, "b": {"x-message": "m", "oneOf": [{}]},
                       "c": {"x-message": "m", "if": {"not": {"required": ["x"]}}, "then": {}}, "d": {"not": {}}}});
        assert_eq!(
            rules_without_message(&s),
            ["/properties/a", "/properties/d"]
        );
    }
}
