//! JSON shown pretty-printed with an HTML `id` on every element, so an issue can link to the
//! element it names (`#el-Bundle.entry-3.resource.subject`) and CSS `:target` highlights it —
//! no script needed. The playground ([`super::playground`]) shows the Bundle and the record
//! this way.
//!
//! **Ids** are the element's location written as `prefix` + one part per step: `.name` for
//! an object member and `-N` for an array item. A name keeps its ASCII letters, digits and
//! underscores (`berat_badan`); every other byte is written `~XX` (hex). So ids hold only
//! letters, digits, `_`, `.`, `-` and `~` — valid HTML ids that need no escaping in a URL
//! fragment — and two different locations never share one (a name never yields `.` or `-`,
//! and `~` only starts an escape).
//!
//! **Finding an element**: a FHIRPath expression as the validator writes it
//! (`Bundle.entry[3].resource.code.coding[0]`, `value[x]`) or a JSON pointer of the record
//! (`/pengukuran/berat_badan`) is followed as far as the JSON goes: an element that is
//! missing (a required field left out) is shown by its nearest existing parent.

use maud::{Markup, PreEscaped};
use serde_json::Value;
use std::fmt::Write;

/// The prefix of the FHIR JSON's ids (the Bundle, or a resource being validated).
pub const FHIR: &str = "el";
/// The prefix of the record's ids.
pub const RECORD: &str = "rec";
/// The prefix of the canonical record's ids (a local format's record, adapted).
pub const CANONICAL: &str = "can";

/// One step into a JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// The id of the element at `steps` under `prefix`.
pub fn id(prefix: &str, steps: &[Step]) -> String {
    let mut out = prefix.to_string();
    for s in steps {
        push_step(&mut out, s);
    }
    out
}

fn push_step(id: &mut String, step: &Step) {
    match step {
        Step::Key(k) => {
            id.push('.');
            for b in k.bytes() {
                if b.is_ascii_alphanumeric() || b == b'_' {
                    id.push(b as char);
                } else {
                    let _ = write!(id, "~{b:02X}");
                }
            }
        }
        Step::Index(i) => {
            let _ = write!(id, "-{i}");
        }
    }
}

/// The prefix of a FHIR document's ids: `el-Bundle`, `el-Patient` (`el-JSON` for JSON that
/// names no resource type).
pub fn fhir_prefix(value: &Value) -> String {
    let root = crate::fhir::resource_type(value).unwrap_or("JSON");
    let mut out = format!("{FHIR}-");
    // The root's name encoded as a member name is, without its leading dot.
    let mut name = String::new();
    push_step(&mut name, &Step::Key(root.to_string()));
    out.push_str(&name[1..]);
    out
}

/// `value` pretty-printed (two spaces, as `serde_json::to_string_pretty`), every element in
/// a `<span class="jv" id=…>`, HTML-escaped. For the inside of a `<pre>`.
pub fn render(value: &Value, prefix: &str) -> Markup {
    let mut out = String::new();
    let mut at = prefix.to_string();
    write_value(&mut out, value, &mut at, 0, true);
    PreEscaped(out)
}

/// Write `value` at location `at`; `own_span`: wrapped in a span with its id (a member's
/// value is not: the member's span, key and value together, carries the id).
fn write_value(out: &mut String, value: &Value, at: &mut String, depth: usize, own_span: bool) {
    if own_span {
        let _ = write!(out, r#"<span class="jv" id="{at}">"#);
    }
    match value {
        Value::Object(m) if !m.is_empty() => {
            out.push_str("{\n");
            for (i, (k, v)) in m.iter().enumerate() {
                indent(out, depth + 1);
                let len = at.len();
                push_step(at, &Step::Key(k.clone()));
                let _ = write!(out, r#"<span class="jv" id="{at}"><span class="jk">"#);
                escape_into(out, &json_text(&Value::String(k.clone())));
                out.push_str("</span>: ");
                write_value(out, v, at, depth + 1, false);
                out.push_str("</span>");
                at.truncate(len);
                if i + 1 < m.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(out, depth);
            out.push('}');
        }
        Value::Array(a) if !a.is_empty() => {
            out.push_str("[\n");
            for (i, v) in a.iter().enumerate() {
                indent(out, depth + 1);
                let len = at.len();
                push_step(at, &Step::Index(i));
                write_value(out, v, at, depth + 1, true);
                at.truncate(len);
                if i + 1 < a.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(out, depth);
            out.push(']');
        }
        other => write_scalar(out, other),
    }
    if own_span {
        out.push_str("</span>");
    }
}

fn write_scalar(out: &mut String, value: &Value) {
    let class = match value {
        Value::String(_) => "js",
        Value::Number(_) => "jn",
        Value::Bool(_) | Value::Null => "jb",
        _ => "",
    };
    let _ = write!(out, r#"<span class="{class}">"#);
    escape_into(out, &json_text(value));
    out.push_str("</span>");
}

fn json_text(v: &Value) -> String {
    match v {
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        // Numbers keep their exact text (`8.10`), strings their JSON escapes.
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Where an expression leads in a document: the id of the element (or of its nearest
/// existing parent) and whether the whole expression was followed.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub id: String,
    pub exact: bool,
}

/// Follow a FHIRPath expression as the validator writes them
/// (`Bundle.entry[3].resource.code.coding[0].code`, `Observation.value[x]`) in `doc`, whose
/// ids start with `prefix` ([`fhir_prefix`]). An expression that starts with another
/// resource type than the document's, in a Bundle, is looked for in the first entry of that
/// type. None when it leads nowhere in this document.
pub fn fhirpath_target(doc: &Value, prefix: &str, expression: &str) -> Option<Target> {
    let parts = split_fhirpath(expression.trim());
    let (first, rest) = parts.split_first()?;
    let root_type = crate::fhir::resource_type(doc);
    let mut steps: Vec<Step> = Vec::new();
    let mut at = doc;
    if Some(first.as_str()) != root_type {
        // `Observation.valueQuantity` in a Bundle: the first entry of that type.
        let (i, entry) = doc
            .get("entry")?
            .as_array()?
            .iter()
            .enumerate()
            .find(|(_, e)| crate::fhir::resource_type(&e["resource"]) == Some(first.as_str()))?;
        steps.extend([
            Step::Key("entry".into()),
            Step::Index(i),
            Step::Key("resource".into()),
        ]);
        at = &entry["resource"];
    }
    let mut exact = true;
    'walk: for part in rest {
        let Some((name, bracket)) = parse_part(part) else {
            exact = false;
            break;
        };
        let Some(obj) = at.as_object() else {
            exact = false;
            break;
        };
        let choice = bracket.as_deref() == Some("x");
        let key = if !choice && obj.contains_key(&name) {
            Some(name.clone())
        } else {
            // A choice element: `value[x]`, or `value` for `valueQuantity`.
            obj.keys()
                .find(|k| {
                    k.len() > name.len()
                        && k.starts_with(&name)
                        && k[name.len()..].starts_with(|c: char| c.is_ascii_uppercase())
                })
                .cloned()
        };
        let Some(key) = key else {
            exact = false;
            break;
        };
        at = &obj[&key];
        steps.push(Step::Key(key));
        match bracket.as_deref() {
            None | Some("x") => {}
            Some(b) => match (b.parse::<usize>(), at.as_array()) {
                (Ok(i), Some(items)) if i < items.len() => {
                    at = &items[i];
                    steps.push(Step::Index(i));
                }
                _ => {
                    exact = false;
                    break 'walk;
                }
            },
        }
    }
    Some(Target {
        id: id(prefix, &steps),
        exact,
    })
}

/// `a.b[2].c(x).d` → `a`, `b[2]`, `c(x)`, `d`: split on dots outside brackets and quotes.
fn split_fhirpath(expression: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    let mut quoted = false;
    for c in expression.chars() {
        match c {
            '\'' => quoted = !quoted,
            '[' | '(' if !quoted => depth += 1,
            ']' | ')' if !quoted => depth -= 1,
            '.' if !quoted && depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts
}

/// `name` or `name[...]` (a bracket's content as written); None for a function call.
fn parse_part(part: &str) -> Option<(String, Option<String>)> {
    if part.contains('(') || part.is_empty() {
        return None;
    }
    match part.split_once('[') {
        None => Some((part.to_string(), None)),
        Some((name, rest)) => {
            let inner = rest.strip_suffix(']')?;
            Some((name.to_string(), Some(inner.to_string())))
        }
    }
}

/// The JSON pointer (`/pengukuran/berat_badan`) of a JSON path as the input check writes
/// them (`$.pengukuran.berat_badan`, `$.imunisasi[0].rute`, `$`); None for another form.
pub fn pointer_of_json_path(path: &str) -> Option<String> {
    let rest = path.trim().strip_prefix('$')?;
    let mut pointer = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                let mut name = String::new();
                while let Some(&n) = chars.peek() {
                    if n == '.' || n == '[' {
                        break;
                    }
                    name.push(n);
                    chars.next();
                }
                if name.is_empty() {
                    return None;
                }
                pointer.push('/');
                pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
            }
            '[' => {
                let mut index = String::new();
                for n in chars.by_ref() {
                    if n == ']' {
                        break;
                    }
                    index.push(n);
                }
                index.parse::<usize>().ok()?;
                pointer.push('/');
                pointer.push_str(&index);
            }
            _ => return None,
        }
    }
    Some(pointer)
}

/// Follow a JSON pointer in `doc`, whose ids start with `prefix`.
pub fn pointer_target(doc: &Value, prefix: &str, pointer: &str) -> Target {
    let mut steps = Vec::new();
    let mut at = doc;
    let mut exact = true;
    if !pointer.is_empty() {
        for token in pointer.trim_start_matches('/').split('/') {
            let token = token.replace("~1", "/").replace("~0", "~");
            let next = match at {
                Value::Object(m) => m.get(&token).map(|v| (v, Step::Key(token.clone()))),
                Value::Array(a) => token
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| a.get(i).map(|v| (v, Step::Index(i)))),
                _ => None,
            };
            match next {
                Some((v, step)) => {
                    at = v;
                    steps.push(step);
                }
                None => {
                    exact = false;
                    break;
                }
            }
        }
    }
    Target {
        id: id(prefix, &steps),
        exact,
    }
}

/// Every id [`render`] gives `value` (for tests and for checking links).
pub fn ids(value: &Value, prefix: &str) -> Vec<String> {
    fn walk(v: &Value, at: &mut String, out: &mut Vec<String>) {
        out.push(at.clone());
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    let len = at.len();
                    push_step(at, &Step::Key(k.clone()));
                    walk(c, at, out);
                    at.truncate(len);
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    let len = at.len();
                    push_step(at, &Step::Index(i));
                    walk(c, at, out);
                    at.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut prefix.to_string(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashSet;

    /// Every `id="…"` in rendered HTML.
    pub fn rendered_ids(html: &str) -> Vec<String> {
        html.split(r#" id=""#)
            .skip(1)
            .map(|rest| rest[..rest.find('"').unwrap()].to_string())
            .collect()
    }

    fn valid_id(id: &str) -> bool {
        !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-~".contains(&b))
    }

    #[test]
    fn every_element_has_a_valid_unique_id_and_the_text_is_pretty_json() {
        let doc: Value = serde_json::from_str(
            r#"{
            "resourceType": "Bundle",
            "entry": [{"resource": {"resourceType": "Observation", "valueQuantity": {"value": 8.10}}}],
            "a.b": {"c": 1}, "a": {"b.c": 2}, "x y": "<script>", "_": [], "-": {}, "~2D": true,
            "ü": null, "a-1": 1, "berat_badan": 8
        }"#,
        )
        .unwrap();
        let prefix = fhir_prefix(&doc);
        assert_eq!(prefix, "el-Bundle");
        let html = render(&doc, &prefix).into_string();
        let found = rendered_ids(&html);
        assert_eq!(found, ids(&doc, &prefix), "one id per element, in order");
        assert!(found.iter().all(|i| valid_id(i)), "{found:?}");
        assert_eq!(found.iter().collect::<HashSet<_>>().len(), found.len());
        assert!(found.contains(&"el-Bundle.entry-0.resource.valueQuantity.value".to_string()));
        assert!(found.contains(&"el-Bundle.berat_badan".to_string()));
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
        assert!(html.contains(">8.10<"), "decimals as sent: {html}");
        // Without the markup, the text is serde_json's pretty printing.
        let mut text = String::new();
        let mut in_tag = false;
        for c in html.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => text.push(c),
                _ => {}
            }
        }
        let text = text
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&");
        assert_eq!(text, serde_json::to_string_pretty(&doc).unwrap());
    }

    #[test]
    fn fhirpath_expressions_lead_to_their_element_or_its_nearest_parent() {
        let doc = json!({"resourceType": "Bundle", "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "identifier": [{"system": "s"}]}},
            {"resource": {"resourceType": "Observation", "valueQuantity": {"value": 1}, "code": {"coding": [{"code": "x"}]}}}
        ]});
        let p = fhir_prefix(&doc);
        let t = |e: &str| fhirpath_target(&doc, &p, e).unwrap();
        assert_eq!(
            t("Bundle.entry[1].resource.code.coding[0].code"),
            Target {
                id: "el-Bundle.entry-1.resource.code.coding-0.code".into(),
                exact: true
            }
        );
        assert_eq!(
            t("Bundle.entry[1].resource.value[x]").id,
            "el-Bundle.entry-1.resource.valueQuantity"
        );
        assert_eq!(
            t("Bundle.entry[1].resource.value").id,
            "el-Bundle.entry-1.resource.valueQuantity"
        );
        let missing = t("Bundle.entry[0].resource.subject.reference");
        assert_eq!(missing.id, "el-Bundle.entry-0.resource");
        assert!(!missing.exact);
        assert_eq!(
            t("Observation.code.coding[0]").id,
            "el-Bundle.entry-1.resource.code.coding-0"
        );
        assert_eq!(t("Bundle.entry[7].resource").id, "el-Bundle.entry");
        assert_eq!(
            t("Bundle.entry[0].resource.identifier.where(system='a.b').value").id,
            "el-Bundle.entry-0.resource.identifier"
        );
        assert!(fhirpath_target(&doc, &p, "Encounter.status").is_none());
        let ids = ids(&doc, &p);
        for e in [
            "Bundle.entry[1].resource.code.coding[0].code",
            "Bundle.entry[0].resource.subject",
            "Observation.value",
        ] {
            assert!(ids.contains(&t(e).id), "{e}");
        }
    }

    #[test]
    fn json_paths_become_pointers_followed_as_far_as_the_record_goes() {
        assert_eq!(
            pointer_of_json_path("$.pengukuran.berat_badan").as_deref(),
            Some("/pengukuran/berat_badan")
        );
        assert_eq!(
            pointer_of_json_path("$.imunisasi[1].rute").as_deref(),
            Some("/imunisasi/1/rute")
        );
        assert_eq!(pointer_of_json_path("$").as_deref(), Some(""));
        assert_eq!(pointer_of_json_path("Bundle.entry"), None);
        let record = json!({"pengukuran": {"umur_bulan": 9}, "imunisasi": [{"rute": "SC"}]});
        assert_eq!(
            pointer_target(&record, RECORD, "/imunisasi/0/rute"),
            Target {
                id: "rec.imunisasi-0.rute".into(),
                exact: true
            }
        );
        let missing = pointer_target(&record, RECORD, "/pengukuran/berat_badan");
        assert_eq!(missing.id, "rec.pengukuran");
        assert!(!missing.exact);
        assert_eq!(pointer_target(&record, RECORD, "").id, "rec");
    }
}
