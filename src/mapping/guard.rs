//! Content guards: limits on what any string or number of a pushed document may be, whatever
//! its record type or resource type. They run before the record's own schema, over every
//! value, so no input schema has to remember them.
//!
//! Why: a facility record is clinical data typed by people and copied by systems. A NUL byte
//! or another control character in a name is a copy accident that breaks SATUSEHAT's
//! consumers and log lines; a megabyte "name" is never a name (one was accepted and delivered);
//! a number of a hundred thousand digits, or one too small or too large for any decimal a
//! FHIR server stores (`1e-400`, `1e400`), would be forwarded exactly as written — gerbang keeps
//! numbers as their text (serde_json `arbitrary_precision`) — and refused or silently rounded
//! upstream. Each issue names the field (a JSON path, `$.peserta.nama`) and what to send;
//! the value itself is never repeated (it may be a NIK or a name, or a megabyte).
//!
//! [`check_values`] is pure and public: the input check calls it on every record (and on the
//! local record of an adapter), and it serves FHIR resources pushed directly just as well
//! (`Outcome::from(check_values(&resource)).prefixed("Bundle.entry[0].resource")`, or paths
//! of its own with [`check_values_at`]).

use crate::fhir::{Issue, IssueCode};
use serde_json::Value;

/// The longest string accepted, in characters. The longest free text of a primary-care record
/// (a note, an address, a list of complaints) is a few hundred characters; 10,000 leaves room
/// for any real one.
pub const MAX_STRING_CHARS: usize = 10_000;

/// The longest number accepted, in characters as written. A measurement, a z-score or a dose
/// has a handful of digits; 30 covers any decimal a FHIR server stores (FHIR asks for at least
/// 18 significant digits).
pub const MAX_NUMBER_CHARS: usize = 30;

/// Past this many issues, more only bury the first ones.
const MAX_ISSUES: usize = 50;

/// Every string (object keys included) and number of `v` checked against the limits above;
/// each issue carries the JSON path of the field (`$.imunisasi[0].no_batch`).
pub fn check_values(v: &Value) -> Vec<Issue> {
    check_values_at(v, "$")
}

/// [`check_values`] with paths starting at `root` instead of `$` (e.g. `Patient` for a FHIR
/// resource, so the issues read `Patient.name[0].text`).
pub fn check_values_at(v: &Value, root: &str) -> Vec<Issue> {
    let mut out = Vec::new();
    walk(v, root.to_string(), &mut out);
    out.truncate(MAX_ISSUES);
    out
}

fn walk(v: &Value, at: String, out: &mut Vec<Issue>) {
    if out.len() >= MAX_ISSUES {
        return;
    }
    match v {
        Value::String(s) => {
            if let Some(issue) = string_issue(s, &at) {
                out.push(issue);
            }
        }
        Value::Number(n) => {
            if let Some(issue) = number_issue(&n.to_string(), &at) {
                out.push(issue);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, format!("{at}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (key, child) in map {
                let child_at = format!("{at}.{}", printable_key(key));
                // A key is text the facility chose, too.
                if let Some(issue) = key_issue(key, &child_at) {
                    out.push(issue);
                    continue;
                }
                walk(child, child_at, out);
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

/// Tab, line feed and carriage return belong in free text (a note of several lines); every
/// other C0 control character, and DEL, is a copy accident.
fn is_forbidden_control(c: char) -> bool {
    (c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{7f}'
}

fn describe_control(c: char) -> String {
    match c {
        '\0' => "a NUL character (\\u0000)".to_string(),
        c => format!("a control character (\\u{:04x})", c as u32),
    }
}

fn string_issue(s: &str, at: &str) -> Option<Issue> {
    if let Some((pos, c)) = s
        .chars()
        .enumerate()
        .find(|(_, c)| is_forbidden_control(*c))
    {
        return Some(
            Issue::error(
                IssueCode::Invalid,
                format!(
                    "{at} contains {} at character {}: text may not contain control characters other than tab and line breaks; remove it and send the record again",
                    describe_control(c),
                    pos + 1
                ),
            )
            .at(at),
        );
    }
    // Bytes bound characters from above: most strings need no count.
    if s.len() > MAX_STRING_CHARS {
        let chars = s.chars().count();
        if chars > MAX_STRING_CHARS {
            return Some(
                Issue::error(
                    IssueCode::TooLong,
                    format!(
                        "{at} is {chars} characters long; no text field may be longer than {MAX_STRING_CHARS} characters — send the field as it was entered, not a document or a file"
                    ),
                )
                .at(at),
            );
        }
    }
    None
}

fn key_issue(key: &str, at: &str) -> Option<Issue> {
    if key.chars().any(is_forbidden_control) || key.len() > 200 {
        return Some(
            Issue::error(
                IssueCode::Structure,
                format!("{at}: a field name may not contain control characters or be longer than 200 characters; check the field names of the record"),
            )
            .at(at),
        );
    }
    None
}

/// A field name as it appears in a path: control characters and overlong names are shown
/// shortened and escaped, so the path itself stays one short, printable line.
fn printable_key(key: &str) -> String {
    let mut out: String = key
        .chars()
        .take(40)
        .map(|c| if is_forbidden_control(c) { '?' } else { c })
        .collect();
    if key.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// A number as written (`12.50`, `1e-400`) that no FHIR server stores as written.
fn number_issue(text: &str, at: &str) -> Option<Issue> {
    if text.len() > MAX_NUMBER_CHARS {
        return Some(
            Issue::error(
                IssueCode::Value,
                format!(
                    "{at} is a number written with {} characters; numbers may have at most {MAX_NUMBER_CHARS} — send the value as measured (e.g. 12.5)",
                    text.len()
                ),
            )
            .at(at),
        );
    }
    let parsed: f64 = text.parse().ok()?;
    let problem = if !parsed.is_finite() {
        Some("is too large to be stored as a number")
    } else if parsed == 0.0 && mantissa_has_nonzero_digit(text) {
        Some("is too close to zero to be stored as a number (it would become 0)")
    } else if parsed != 0.0 && !parsed.is_normal() {
        Some("is too close to zero to be stored exactly as a number")
    } else {
        None
    };
    problem.map(|p| {
        Issue::error(
            IssueCode::Value,
            format!("{at} {p}; send the value as measured, in the unit the field asks for"),
        )
        .at(at)
    })
}

/// Whether the digits before any exponent are not all zero (`0.000` is zero, `1e-400` is not).
fn mantissa_has_nonzero_digit(text: &str) -> bool {
    text.split(['e', 'E'])
        .next()
        .unwrap_or("")
        .chars()
        .any(|c| c.is_ascii_digit() && c != '0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(v: &Value) -> Vec<String> {
        check_values(v)
            .into_iter()
            .map(|i| i.expression.unwrap_or_default())
            .collect()
    }

    fn number(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn ordinary_records_pass() {
        let v = json!({"nama": "Siti Nur'aini", "catatan": "baris 1\nbaris 2\tkolom", "bb": number("12.50"),
                       "zscore": number("-2.35"), "umur": 0, "ok": true, "x": null, "a": [number("0.0"), number("1E+2")]});
        assert!(check_values(&v).is_empty(), "{:?}", check_values(&v));
    }

    #[test]
    fn control_characters_are_refused_by_field() {
        let v =
            json!({"peserta": {"nama": "Ani\u{0}", "alamat": "Jl. \u{1b}[31m"}, "ok": "a\r\nb"});
        let issues = check_values(&v);
        assert_eq!(paths(&v), ["$.peserta.nama", "$.peserta.alamat"]);
        assert!(issues[0].text.contains("NUL"), "{}", issues[0].text);
        assert!(issues[1].text.contains("\\u001b"), "{}", issues[1].text);
        assert!(issues.iter().all(|i| i.is_error()));
    }

    #[test]
    fn a_megabyte_string_is_refused_saying_the_limit_without_repeating_it() {
        let v = json!({"imunisasi": [{"no_batch": "x".repeat(1 << 20)}]});
        let issues = check_values(&v);
        assert_eq!(paths(&v), ["$.imunisasi[0].no_batch"]);
        assert!(issues[0].text.contains("10000"), "{}", issues[0].text);
        assert!(issues[0].text.len() < 300);
        // Multi-byte text is counted in characters, not bytes.
        let long_but_fine = json!({"a": "é".repeat(MAX_STRING_CHARS)});
        assert!(check_values(&long_but_fine).is_empty());
    }

    #[test]
    fn unrepresentable_numbers_are_refused() {
        for text in ["1e-400", "1e400", "-1E+999", "0.0000001e-330"] {
            let v = json!({"bb": number(text)});
            assert_eq!(paths(&v), ["$.bb"], "{text}");
        }
        let digits = format!("1{}", "0".repeat(100_000));
        let issues = check_values(&json!({"bb": number(&digits)}));
        assert_eq!(issues.len(), 1);
        assert!(issues[0].text.contains("at most 30"), "{}", issues[0].text);
        assert!(issues[0].text.len() < 300);
        for fine in ["0e-400", "1e-300", "123456789.123456789", "-0.0"] {
            assert!(
                check_values(&json!({"a": number(fine)})).is_empty(),
                "{fine}"
            );
        }
    }

    #[test]
    fn keys_are_text_too_and_paths_start_where_asked() {
        let v = json!({"na\u{0}ma": "x"});
        let issues = check_values(&v);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].expression.as_deref(), Some("$.na?ma"));
        let issues = check_values_at(&json!({"name": [{"text": "a\u{7}"}]}), "Patient");
        assert_eq!(
            issues[0].expression.as_deref(),
            Some("Patient.name[0].text")
        );
    }
}
