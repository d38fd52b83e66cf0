//! Provenance: which field of the facility's own record produced an element of the Bundle.
//!
//! When SATUSEHAT (or gerbang's validator) refuses a record, its OperationOutcome names
//! elements of the Bundle (`Bundle.entry[3].resource.valueQuantity.value`,
//! `Encounter.identifier[0].system`). The facility cannot fix a Bundle it never saw: it must
//! learn which field of *its* record to correct, e.g. `/pengukuran/berat_badan`.
//!
//! Mappings are jq programs, so the link from fields to elements is not declared anywhere;
//! it is observed instead. Mapping is pure and deterministic, so each leaf of the record
//! (string, number or boolean, array elements included) is taken away in turn and the record
//! mapped again: the leaf produces every named element whose value then changes, appears or
//! disappears. A leaf the record cannot do without (the mapping then refuses the record) is
//! replaced by a neighbouring value of the same shape instead: a number plus one, a string
//! with its last letter or digit changed, a boolean negated. That costs one mapping per leaf
//! (two when the first is refused), checked against all expressions at once, and at most
//! [`MAX_LEAVES`] leaves are tried.
//!
//! Entries are matched across re-mappings by their deterministic `fullUrl`, not by position,
//! so a leaf that removes one Observation does not look as if it changed the next. A leaf
//! that renames entries (the record's own id is part of every fullUrl) is recognised too:
//! an entry with a new fullUrl at the place and of the type of one that vanished is taken as
//! the same entry, and references are compared under the old names; otherwise the record id
//! would seem to produce every element.
//!
//! Limits: a leaf whose removal and replacement are both refused (a required code from a
//! closed list, say) goes unreported; so does a field that only matters together with another.

use super::{Mappings, Sender};
use crate::fhir;
use serde_json::{Number, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// How many leaves of a record are tried at most (one mapping each, two when refused). A
/// visit record has a few dozen; the cap bounds the work for a pathological one.
pub const MAX_LEAVES: usize = 400;

/// For each expression (as SATUSEHAT or gerbang's validator writes them:
/// `Bundle.entry[3].resource.valueQuantity.value`, or resource-relative
/// `Observation.valueQuantity`, `Encounter.identifier[0].system`), the JSON pointers
/// (RFC 6901, e.g. `/peserta/nik`, `/pengukuran/berat_badan`) of the raw record's fields that
/// produce it, in the record's order; empty when unknown.
///
/// `raw` is the record as the facility sent it, in `format` when it came through an adapter;
/// `bundle` is the Bundle the expressions index into (the stored one, or the one sent
/// upstream: entries are identified by fullUrl, which both share). A bare `Type.path` means
/// that element in every entry of the type. The values compared are those of `raw` mapped
/// afresh, so a Bundle made by an older version of the mapping does not make every field
/// look responsible.
pub fn record_fields(
    mappings: &Mappings,
    record_type: &str,
    format: Option<&str>,
    raw: &Value,
    sender: &Sender,
    bundle: &Value,
    expressions: &[String],
) -> Vec<Vec<String>> {
    let mut found = vec![Vec::new(); expressions.len()];
    let targets: Vec<Option<Target>> = expressions
        .iter()
        .map(|e| Target::parse(e, bundle))
        .collect();
    if targets.iter().all(Option::is_none) {
        return found;
    }
    let map = |record: &Value| {
        mappings
            .map_record_as(record_type, format, record, sender)
            .ok()
            .map(|m| m.bundle)
    };
    let Some(baseline) = map(raw) else {
        return found;
    };
    let before: Vec<Option<Observed>> = targets
        .iter()
        .map(|t| t.as_ref().map(|t| t.observe(&baseline)))
        .collect();

    for leaf in leaves(raw) {
        let perturbed = without(raw, &leaf)
            .and_then(|r| map(&r))
            .or_else(|| replaced(raw, &leaf).and_then(|r| map(&r)));
        let Some(perturbed) = perturbed else { continue };
        let perturbed = same_names(&baseline, perturbed);
        for ((target, before), fields) in targets.iter().zip(&before).zip(&mut found) {
            if let (Some(target), Some(before)) = (target, before)
                && target.observe(&perturbed) != *before
            {
                fields.push(leaf.clone());
            }
        }
    }
    found
}

/// The values an expression names in one Bundle, by entry (fullUrl, or `#index` for an entry
/// without one). An absent element has no key, so appearing and disappearing both count as a
/// change.
type Observed = BTreeMap<String, Value>;

/// An expression, resolved against the Bundle it was written for.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    scope: Scope,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
enum Scope {
    /// One entry (`Bundle.entry[3]…`); `resource`: the path continues inside its resource
    /// (`.resource.…`) rather than in the entry (`.fullUrl`, `.request.url`).
    Entry { key: EntryKey, resource: bool },
    /// Every entry whose resource is of this type (`Observation.valueQuantity`).
    Type(String),
    /// The Bundle itself (`Bundle.type`).
    Bundle,
}

#[derive(Debug, Clone, PartialEq)]
enum EntryKey {
    Url(String),
    Index(usize),
}

/// One step of an element path: `name`, `name[2]`, `value[x]`, `extension[url=…]`.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    name: String,
    /// A choice element (`value[x]`, or `value` written for `valueQuantity`).
    choice: bool,
    index: Option<usize>,
    filter: Option<(String, String)>,
}

impl Target {
    fn parse(expression: &str, bundle: &Value) -> Option<Target> {
        let expression = expression.trim();
        if let Some(rest) = expression.strip_prefix("Bundle.entry[") {
            let (index, rest) = rest.split_once(']')?;
            let index: usize = index.trim().parse().ok()?;
            let entry = bundle.get("entry")?.get(index)?;
            let key = match entry.get("fullUrl").and_then(Value::as_str) {
                Some(url) => EntryKey::Url(url.to_string()),
                None => EntryKey::Index(index),
            };
            let (resource, path) = match rest.strip_prefix(".resource") {
                Some(path) if path.is_empty() || path.starts_with('.') => (true, path),
                _ => (false, rest),
            };
            return Some(Target {
                scope: Scope::Entry { key, resource },
                steps: steps(path.strip_prefix('.').unwrap_or(path)),
            });
        }
        let (head, path) = expression.split_once('.').unwrap_or((expression, ""));
        if !head.starts_with(|c: char| c.is_ascii_uppercase())
            || !head.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return None;
        }
        let scope = match head {
            "Bundle" => Scope::Bundle,
            _ => Scope::Type(head.to_string()),
        };
        Some(Target {
            scope,
            steps: steps(path),
        })
    }

    fn observe(&self, bundle: &Value) -> Observed {
        let mut out = Observed::new();
        let mut put = |key: String, at: &Value| {
            if let Some(v) = value_at(at, &self.steps) {
                out.insert(key, v);
            }
        };
        match &self.scope {
            Scope::Bundle => put(String::new(), bundle),
            Scope::Entry { key, resource } => {
                let entry = fhir::entries(bundle).find(|e| match key {
                    EntryKey::Url(url) => e.full_url == Some(url.as_str()),
                    EntryKey::Index(i) => e.index == *i,
                });
                if let Some(e) = entry {
                    let at = if *resource {
                        e.resource
                    } else {
                        bundle.get("entry").and_then(|v| v.get(e.index))
                    };
                    if let Some(at) = at {
                        put(entry_key(e.full_url, e.index), at);
                    }
                }
            }
            Scope::Type(rt) => {
                for e in fhir::entries(bundle) {
                    if e.resource_type() == Some(rt.as_str())
                        && let Some(resource) = e.resource
                    {
                        put(entry_key(e.full_url, e.index), resource);
                    }
                }
            }
        }
        out
    }
}

fn entry_key(full_url: Option<&str>, index: usize) -> String {
    full_url.map_or_else(|| format!("#{index}"), str::to_string)
}

/// The steps of an element path. FHIRPath beyond plain navigation (`where(…)`, `first()` …)
/// ends the path there: the element reached so far still names the right neighbourhood.
/// `ofType(T)` turns the choice before it into its typed name (`value.ofType(Quantity)` →
/// `valueQuantity`).
fn steps(path: &str) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    for part in split_outside_brackets(path) {
        if let Some(t) = part
            .strip_prefix("ofType(")
            .and_then(|t| t.strip_suffix(')'))
        {
            let Some(last) = out.last_mut() else { break };
            let mut chars = t.trim().chars();
            let Some(first) = chars.next() else { break };
            last.name = format!(
                "{}{}{}",
                last.name,
                first.to_ascii_uppercase(),
                chars.as_str()
            );
            last.choice = false;
            continue;
        }
        let (name, bracket) = match part.split_once('[') {
            Some((n, b)) => (n, b.strip_suffix(']')),
            None => (part, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            break;
        }
        let mut step = Step {
            name: name.to_string(),
            choice: false,
            index: None,
            filter: None,
        };
        match bracket {
            None => {}
            Some("x") => step.choice = true,
            Some(b) => {
                if let Ok(i) = b.trim().parse() {
                    step.index = Some(i);
                } else if let Some((k, v)) = b.split_once('=') {
                    step.filter = Some((k.trim().to_string(), v.trim().to_string()));
                } else {
                    break;
                }
            }
        }
        out.push(step);
    }
    out
}

/// `a.b[url=http://x.y/z].c` → `a`, `b[url=http://x.y/z]`, `c`: dots inside brackets and
/// parentheses (URLs, function arguments) do not separate steps.
fn split_outside_brackets(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in path.char_indices() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth -= 1,
            '.' if depth == 0 => {
                out.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < path.len() {
        out.push(&path[start..]);
    }
    out
}

/// The value at `steps` below `at`, arrays flattened as FHIRPath does: None when absent, the
/// value itself when one, an array of them when several.
fn value_at(at: &Value, steps: &[Step]) -> Option<Value> {
    let mut current: Vec<&Value> = vec![at];
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            let Value::Object(map) = v else { continue };
            let children: Vec<&Value> = match map.get(&step.name) {
                Some(child) if !step.choice => vec![child],
                // A choice, named generically: `value` or `value[x]` for `valueQuantity`.
                _ => map
                    .iter()
                    .filter(|(k, _)| {
                        k.strip_prefix(step.name.as_str())
                            .and_then(|rest| rest.chars().next())
                            .is_some_and(|c| c.is_ascii_uppercase())
                    })
                    .map(|(_, child)| child)
                    .collect(),
            };
            for child in children {
                let items: Vec<&Value> = match child {
                    Value::Array(items) => items.iter().collect(),
                    single => vec![single],
                };
                let items = items.into_iter().filter(|item| {
                    step.filter.as_ref().is_none_or(|(k, want)| {
                        item.get(k).and_then(Value::as_str) == Some(want.as_str())
                    })
                });
                match step.index {
                    Some(i) => next.extend(items.skip(i).take(1)),
                    None => next.extend(items),
                }
            }
        }
        current = next;
    }
    match current.as_slice() {
        [] => None,
        [one] => Some((*one).clone()),
        many => Some(Value::Array(many.iter().map(|v| (*v).clone()).collect())),
    }
}

/// JSON pointers of the record's leaves (strings, numbers, booleans; inside arrays too), in
/// document order, at most [`MAX_LEAVES`].
fn leaves(raw: &Value) -> Vec<String> {
    fn walk(v: &Value, at: String, out: &mut Vec<String>) {
        if out.len() >= MAX_LEAVES {
            return;
        }
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    let key = k.replace('~', "~0").replace('/', "~1");
                    walk(child, format!("{at}/{key}"), out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, format!("{at}/{i}"), out);
                }
            }
            Value::String(_) | Value::Number(_) | Value::Bool(_) => out.push(at),
            Value::Null => {}
        }
    }
    let mut out = Vec::new();
    walk(raw, String::new(), &mut out);
    out
}

/// The record without the leaf at `pointer` (its key deleted, or its array element removed).
fn without(raw: &Value, pointer: &str) -> Option<Value> {
    let (parent, last) = pointer.rsplit_once('/')?;
    let last = last.replace("~1", "/").replace("~0", "~");
    let mut out = raw.clone();
    match out.pointer_mut(parent)? {
        // shift_remove: jq sees the other keys in their original order.
        Value::Object(map) => {
            map.shift_remove(&last)?;
        }
        Value::Array(items) => {
            let i: usize = last.parse().ok()?;
            (i < items.len()).then(|| items.remove(i))?;
        }
        _ => return None,
    }
    Some(out)
}

/// The record with the leaf at `pointer` replaced by a neighbouring value of the same shape,
/// for a leaf the record cannot do without; None when there is no cheap one.
fn replaced(raw: &Value, pointer: &str) -> Option<Value> {
    let mut out = raw.clone();
    let leaf = out.pointer_mut(pointer)?;
    *leaf = match &*leaf {
        Value::Bool(b) => Value::Bool(!b),
        Value::Number(n) => Value::Number(other_number(n)?),
        Value::String(s) => Value::String(other_string(s)?),
        _ => return None,
    };
    Some(out)
}

fn other_number(n: &Number) -> Option<Number> {
    if let Some(i) = n.as_i64() {
        return i.checked_add(1).map(Number::from);
    }
    if let Some(u) = n.as_u64() {
        return u.checked_add(1).map(Number::from);
    }
    Number::from_f64(n.as_f64()? + 1.0)
}

/// The string with its last letter or digit moved to a neighbour (`…09:10:00` →
/// `…09:10:01`, `2023-04-12` → `2023-04-13`, `9` → `8`), so that dates, times, ids and NIKs
/// usually stay valid.
fn other_string(s: &str) -> Option<String> {
    let (i, c) = s
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_ascii_alphanumeric())?;
    let next = match c {
        '9' => '8',
        'z' => 'y',
        'Z' => 'Y',
        _ => (c as u8 + 1) as char,
    };
    let mut out = s.to_string();
    out.replace_range(i..i + 1, next.encode_utf8(&mut [0; 4]));
    Some(out)
}

/// `perturbed` with the entries it renamed given back their baseline names. An entry whose
/// fullUrl the baseline lacks, at the position and of the type of a baseline entry the
/// perturbed Bundle lacks, is the same entry renamed (the record id is part of every
/// fullUrl); references to it are renamed too, so only real changes remain.
fn same_names(baseline: &Value, mut perturbed: Value) -> Value {
    let urls = |b: &Value| -> HashSet<String> {
        fhir::entries(b)
            .filter_map(|e| e.full_url.map(str::to_string))
            .collect()
    };
    let (old_urls, new_urls) = (urls(baseline), urls(&perturbed));
    let mut renamed: HashMap<String, String> = HashMap::new();
    for (old, new) in fhir::entries(baseline).zip(fhir::entries(&perturbed)) {
        if let (Some(old_url), Some(new_url)) = (old.full_url, new.full_url)
            && !old_urls.contains(new_url)
            && !new_urls.contains(old_url)
            && old.resource_type() == new.resource_type()
        {
            renamed.insert(new_url.to_string(), old_url.to_string());
        }
    }
    if renamed.is_empty() {
        return perturbed;
    }
    if let Some(entries) = perturbed.get_mut("entry").and_then(Value::as_array_mut) {
        for entry in entries {
            let name = entry
                .get("fullUrl")
                .and_then(Value::as_str)
                .and_then(|u| renamed.get(u));
            if let Some(name) = name {
                entry["fullUrl"] = Value::String(name.clone());
            }
            fhir::rewrite_references(entry, &mut |r| renamed.get(r).cloned());
        }
    }
    perturbed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::harness::{GOLDEN_ORG, golden_location};
    use serde_json::json;
    use std::path::Path;
    use std::sync::OnceLock;

    fn mappings() -> &'static Mappings {
        static M: OnceLock<Mappings> = OnceLock::new();
        M.get_or_init(|| {
            Mappings::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings")).unwrap()
        })
    }

    fn example(path: &str) -> Value {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("mappings")
            .join(path);
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
    }

    /// The record's fields for `expressions`, with the Bundle mapped from the record.
    fn fields(
        record_type: &str,
        format: Option<&str>,
        raw: &Value,
        expressions: &[&str],
    ) -> (Value, Vec<Vec<String>>) {
        let location = golden_location();
        let sender = Sender {
            organization_id: GOLDEN_ORG,
            location_id: &location,
        };
        let bundle = mappings()
            .map_record_as(record_type, format, raw, &sender)
            .unwrap()
            .bundle;
        let expressions: Vec<String> = expressions.iter().map(|s| s.to_string()).collect();
        let found = record_fields(
            mappings(),
            record_type,
            format,
            raw,
            &sender,
            &bundle,
            &expressions,
        );
        (bundle, found)
    }

    /// The index of the entry whose resource has this identifier value suffix.
    fn entry_with_identifier(bundle: &Value, suffix: &str) -> usize {
        fhir::entries(bundle)
            .find(|e| {
                e.resource
                    .and_then(|r| r.pointer("/identifier/0/value"))
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.ends_with(suffix))
            })
            .unwrap_or_else(|| panic!("no entry with identifier …{suffix}"))
            .index
    }

    #[test]
    fn posyandu_balita_fields() {
        let raw = example("posyandu.balita/examples/balita-wita-minimal.input.json");
        let bundle = mappings()
            .map_record_as(
                "posyandu.balita",
                None,
                &raw,
                &Sender {
                    organization_id: GOLDEN_ORG,
                    location_id: &golden_location(),
                },
            )
            .unwrap()
            .bundle;
        let weight = entry_with_identifier(&bundle, "/berat-badan");
        let (_, found) = fields(
            "posyandu.balita",
            None,
            &raw,
            &[
                &format!("Bundle.entry[{weight}].resource.valueQuantity.value"),
                "Encounter.period.start",
                "Encounter.identifier[0].value",
                "Encounter.class",
                "Encounter.serviceProvider",
                "Patient.birthDate",
                "Bundle.entry[99].resource.status",
                "not an expression",
            ],
        );
        assert_eq!(found[0], ["/pengukuran/berat_badan"]);
        // The start is the local time converted from the record's time zone.
        assert_eq!(found[1], ["/waktu_mulai", "/zona_waktu"]);
        // The record's id is in every fullUrl, yet only the identifier that carries it is
        // attributed to it.
        assert_eq!(found[2], ["/id_kunjungan"]);
        // Constant, or from the sender: nothing in the record.
        assert!(found[3].is_empty(), "{:?}", found[3]);
        assert!(found[4].is_empty(), "{:?}", found[4]);
        assert_eq!(found[5], ["/peserta/tanggal_lahir"]);
        assert!(found[6].is_empty() && found[7].is_empty());
    }

    #[test]
    fn an_absent_element_is_produced_by_nothing_present() {
        // The minimal example gives no birth order: the element is absent, and no field of
        // the record makes it appear. The visit's end is there, from its end time and zone.
        let raw = example("posyandu.balita/examples/balita-wita-minimal.input.json");
        let (bundle, found) = fields(
            "posyandu.balita",
            None,
            &raw,
            &[
                "Patient.multipleBirthInteger",
                "Bundle.entry[2].resource.period.end",
            ],
        );
        assert!(
            bundle["entry"][0]["resource"]
                .get("multipleBirthInteger")
                .is_none()
        );
        assert_eq!(bundle["entry"][2]["resource"]["resourceType"], "Encounter");
        assert!(found[0].is_empty(), "{:?}", found[0]);
        assert_eq!(found[1], ["/waktu_selesai", "/zona_waktu"]);
    }

    #[test]
    fn through_an_adapter_the_fields_are_the_local_formats() {
        let raw = example(
            "rawat-jalan/adapters/sikda-generik/examples/abses-dm-tiga-diagnosa-karcis.input.json",
        );
        let location = golden_location();
        let sender = Sender {
            organization_id: GOLDEN_ORG,
            location_id: &location,
        };
        let bundle = mappings()
            .map_record_as("rawat-jalan", Some("sikda-generik"), &raw, &sender)
            .unwrap()
            .bundle;
        let systolic = fhir::entries(&bundle)
            .find(|e| {
                e.resource
                    .and_then(|r| r.pointer("/code/coding/0/code"))
                    .and_then(Value::as_str)
                    == Some("8480-6")
            })
            .expect("a systolic blood pressure")
            .index;
        let (_, found) = fields(
            "rawat-jalan",
            Some("sikda-generik"),
            &raw,
            &[
                &format!("Bundle.entry[{systolic}].resource.valueQuantity.value"),
                "Practitioner.identifier[0].value",
            ],
        );
        assert_eq!(found[0], ["/TEKANAN_DARAH"]);
        assert_eq!(found[1], ["/DOKTER/NIK"]);
    }

    #[test]
    fn expressions_parse_into_scopes_and_steps() {
        let bundle = json!({"entry": [{"fullUrl": "urn:uuid:a", "resource": {"resourceType": "Observation"}}]});
        let t = Target::parse("Bundle.entry[0].resource.valueQuantity.value", &bundle).unwrap();
        assert_eq!(
            t.scope,
            Scope::Entry {
                key: EntryKey::Url("urn:uuid:a".into()),
                resource: true
            }
        );
        assert_eq!(t.steps.len(), 2);
        let t = Target::parse("Bundle.entry[0].fullUrl", &bundle).unwrap();
        assert_eq!(
            t.scope,
            Scope::Entry {
                key: EntryKey::Url("urn:uuid:a".into()),
                resource: false
            }
        );
        assert!(Target::parse("Bundle.entry[1].resource", &bundle).is_none());
        let t = Target::parse(
            "Patient.address[0].extension[url=https://fhir.kemkes.go.id/r4/StructureDefinition/administrativeCode].extension.valueCode",
            &bundle,
        )
        .unwrap();
        assert_eq!(t.scope, Scope::Type("Patient".into()));
        assert_eq!(t.steps.len(), 4);
        assert_eq!(t.steps[0].index, Some(0));
        assert_eq!(
            t.steps[1].filter,
            Some((
                "url".into(),
                "https://fhir.kemkes.go.id/r4/StructureDefinition/administrativeCode".into()
            ))
        );
    }

    #[test]
    fn values_follow_fhirpath_navigation() {
        let r = json!({
            "valueQuantity": {"value": 13.25},
            "identifier": [{"system": "a", "value": "1"}, {"system": "b", "value": "2"}],
            "extension": [{"url": "u1", "valueCode": "x"}, {"url": "u2", "valueCode": "y"}]
        });
        let at = |p: &str| value_at(&r, &steps(p));
        assert_eq!(at("value"), Some(json!({"value": 13.25})));
        assert_eq!(at("value[x].value"), Some(json!(13.25)));
        assert_eq!(at("value.ofType(Quantity).value"), Some(json!(13.25)));
        assert_eq!(at("identifier[1].system"), Some(json!("b")));
        assert_eq!(at("identifier.value"), Some(json!(["1", "2"])));
        assert_eq!(at("identifier[2].value"), None);
        assert_eq!(at("extension[url=u2].valueCode"), Some(json!("y")));
        assert_eq!(at("identifier.where(system='a').value"), at("identifier"));
        assert_eq!(at("missing"), None);
    }

    #[test]
    fn leaves_are_removed_or_replaced() {
        let raw = json!({"a": {"b/c": 1, "d": [true, "x9"]}, "e": null, "f": 2.5});
        assert_eq!(leaves(&raw), ["/a/b~1c", "/a/d/0", "/a/d/1", "/f"]);
        assert_eq!(
            without(&raw, "/a/b~1c").unwrap(),
            json!({"a": {"d": [true, "x9"]}, "e": null, "f": 2.5})
        );
        assert_eq!(without(&raw, "/a/d/0").unwrap()["a"]["d"], json!(["x9"]));
        assert_eq!(replaced(&raw, "/a/d/1").unwrap()["a"]["d"][1], "x8");
        assert_eq!(replaced(&raw, "/a/d/0").unwrap()["a"]["d"][0], false);
        assert_eq!(replaced(&raw, "/f").unwrap()["f"], json!(3.5));
        assert_eq!(replaced(&raw, "/a/b~1c").unwrap()["a"]["b/c"], json!(2));
        assert_eq!(
            other_string("2026-05-14T09:10:00").unwrap(),
            "2026-05-14T09:10:01"
        );
        assert_eq!(other_string("WITA").unwrap(), "WITB");
        assert_eq!(other_string("-/-"), None);
    }
}
