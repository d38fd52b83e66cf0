//! A small element-path walker: `statusHistory.period.start` over a resource's JSON, with
//! arrays flattened and `[x]` choice elements (`occurrence[x]` matches `occurrenceDateTime`).
//! Each match comes with its concrete FHIRPath-style location, e.g.
//! `statusHistory[1].period.start`, which is what an OperationOutcome names.
//!
//! This is deliberately not FHIRPath: rules only need to reach elements, and conditions are
//! expressed in the rule data (see `rules.rs`).

use serde_json::Value;

/// All values at `path` below `value`, each with its location (relative, no leading dot).
pub fn select<'a>(value: &'a Value, path: &str) -> Selection<'a> {
    let mut sel = Selection {
        places: Vec::new(),
        found: vec![(ROOT, value)],
    };
    if path.is_empty() {
        return sel;
    }
    for step in steps(path) {
        // `item*`: this element at any depth of nesting (item, item.item, …).
        if let Some(name) = step.strip_suffix('*') {
            let mut found = Vec::new();
            let mut frontier = std::mem::take(&mut sel.found);
            while !frontier.is_empty() {
                let level = sel.children(&frontier, name, None);
                found.extend(level.iter().copied());
                frontier = level;
            }
            sel.found = found;
            continue;
        }
        // `extension[url=value]`: only the items whose `url` is `value`.
        let (name, filter) = match step.split_once('[') {
            Some((n, rest)) if rest.ends_with(']') && rest.contains('=') => {
                let (k, v) = rest[..rest.len() - 1].split_once('=').unwrap_or_default();
                (n, Some((k, v)))
            }
            _ => (step, None),
        };
        let current = std::mem::take(&mut sel.found);
        sel.found = sel.children(&current, name, filter);
    }
    sel
}

/// The place of the resource itself (an empty location).
const ROOT: u32 = u32::MAX;

/// What [`select`] found: the values, and where each is. Rules select paths of every
/// resource they check and most values pass, so a location is kept as a chain of steps
/// (one shared entry per key walked through) and written out only when an issue needs it.
#[derive(Debug)]
pub struct Selection<'a> {
    /// Every place walked through: its parent place, its key, its index in an array.
    places: Vec<(u32, &'a str, Option<u32>)>,
    found: Vec<(u32, &'a Value)>,
}

/// Where one selected value is; `Display` writes it (`statusHistory[1].period.start`).
#[derive(Debug, Clone, Copy)]
pub struct Loc<'s> {
    places: &'s [(u32, &'s str, Option<u32>)],
    place: u32,
}

impl<'a> Selection<'a> {
    /// The values with their locations, in document order.
    pub fn iter(&self) -> impl Iterator<Item = (Loc<'_>, &'a Value)> + '_ {
        self.found.iter().map(|&(place, v)| {
            (
                Loc {
                    places: &self.places,
                    place,
                },
                v,
            )
        })
    }

    pub fn len(&self) -> usize {
        self.found.len()
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The children named `step` (`value[x]` for a choice) of every value in `current`.
    fn children(
        &mut self,
        current: &[(u32, &'a Value)],
        step: &str,
        filter: Option<(&str, &str)>,
    ) -> Vec<(u32, &'a Value)> {
        let mut next = Vec::new();
        let keep = |item: &Value| {
            filter.is_none_or(|(k, want)| item.get(k).and_then(Value::as_str) == Some(want))
        };
        for &(parent, v) in current {
            let Value::Object(map) = v else { continue };
            let mut visit = |key: &'a String, child: &'a Value| match child {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if keep(item) {
                            self.places.push((parent, key.as_str(), Some(i as u32)));
                            next.push((self.places.len() as u32 - 1, item));
                        }
                    }
                }
                other if keep(other) => {
                    self.places.push((parent, key.as_str(), None));
                    next.push((self.places.len() as u32 - 1, other));
                }
                _ => {}
            };
            match step.strip_suffix("[x]") {
                Some(prefix) => {
                    for (k, child) in map {
                        let is_choice = k
                            .strip_prefix(prefix)
                            .and_then(|rest| rest.chars().next())
                            .is_some_and(char::is_uppercase);
                        if is_choice {
                            visit(k, child);
                        }
                    }
                }
                None => {
                    if let Some((k, child)) = map.get_key_value(step) {
                        visit(k, child);
                    }
                }
            }
        }
        next
    }
}

impl std::fmt::Display for Loc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.place == ROOT {
            return Ok(());
        }
        let (parent, key, index) = self.places[self.place as usize];
        if parent != ROOT {
            write!(
                f,
                "{}.",
                Loc {
                    places: self.places,
                    place: parent
                }
            )?;
        }
        f.write_str(key)?;
        if let Some(i) = index {
            write!(f, "[{i}]")?;
        }
        Ok(())
    }
}

/// The steps of a path: split at dots outside brackets, so that
/// `extension[url=https://fhir.kemkes.go.id/r4/StructureDefinition/administrativeCode]` is one step.
pub fn steps(path: &str) -> Steps<'_> {
    Steps { rest: Some(path) }
}

/// The iterator [`steps`] returns (no allocation: rules walk paths for every resource).
pub struct Steps<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for Steps<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        let mut depth = 0usize;
        for (i, c) in rest.char_indices() {
            match c {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                '.' if depth == 0 => {
                    self.rest = Some(&rest[i + 1..]);
                    return Some(&rest[..i]);
                }
                _ => {}
            }
        }
        self.rest = None;
        Some(rest)
    }
}

/// Whether the first step of `path` is there at all in `value` (a choice `x[x]` by any of its
/// types): a rule about an absent element has nothing to walk.
pub fn first_step_present(value: &Value, path: &str) -> bool {
    let Some(map) = value.as_object() else {
        return false;
    };
    let first = steps(path).next().unwrap_or("");
    if let Some(prefix) = first.strip_suffix("[x]") {
        return map.keys().any(|k| {
            k.strip_prefix(prefix)
                .and_then(|rest| rest.chars().next())
                .is_some_and(char::is_uppercase)
        });
    }
    let name = first
        .split('[')
        .next()
        .unwrap_or(first)
        .trim_end_matches('*');
    map.contains_key(name)
}

/// Whether a value counts as present: FHIR forbids empty strings, arrays and objects.
pub fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.trim().is_empty(),
        Value::Array(a) => a.iter().any(is_present),
        Value::Object(o) => o.values().any(is_present),
        _ => true,
    }
}

/// Join a parent location and a child path for messages: `Encounter` + `period.start`.
pub fn join(parent: &str, child: &str) -> String {
    match (parent.is_empty(), child.is_empty()) {
        (true, _) => child.to_string(),
        (_, true) => parent.to_string(),
        _ => format!("{parent}.{child}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn walks_arrays_and_choices() {
        let r = json!({
            "statusHistory": [{"period": {"start": "a"}}, {"period": {"start": "b", "end": "c"}}],
            "occurrenceDateTime": "t",
            "occurrenceString": "s",
            "occurrences": "no"
        });
        let got: Vec<_> = select(&r, "statusHistory.period.start")
            .iter()
            .map(|(l, v)| (l.to_string(), v.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("statusHistory[0].period.start".to_string(), json!("a")),
                ("statusHistory[1].period.start".to_string(), json!("b"))
            ]
        );
        let choice: Vec<_> = select(&r, "occurrence[x]")
            .iter()
            .map(|(l, _)| l.to_string())
            .collect();
        assert_eq!(choice, vec!["occurrenceDateTime", "occurrenceString"]);
        assert!(select(&r, "missing.path").is_empty());
    }

    #[test]
    fn recursion_and_filters() {
        let qr = json!({"item": [{"answer": [{"v": 1}], "item": [{"answer": [{"v": 2}], "item": [{"answer": [{"v": 3}]}]}]}]});
        let got: Vec<_> = select(&qr, "item*.answer.v")
            .iter()
            .map(|(l, v)| (l.to_string(), v.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("item[0].answer[0].v".to_string(), json!(1)),
                ("item[0].item[0].answer[0].v".to_string(), json!(2)),
                ("item[0].item[0].item[0].answer[0].v".to_string(), json!(3))
            ]
        );
        let ext = json!({"extension": [{"url": "upgradeClassIndicator", "valueCode": "a"}, {"url": "value", "valueCode": "b"}]});
        let got: Vec<_> = select(&ext, "extension[url=value].valueCode")
            .iter()
            .map(|(l, _)| l.to_string())
            .collect();
        assert_eq!(got, vec!["extension[1].valueCode"]);
        let url = json!({"extension": [{"url": "https://fhir.kemkes.go.id/r4/StructureDefinition/x", "valueCode": "c"}]});
        let got: Vec<_> = select(
            &url,
            "extension[url=https://fhir.kemkes.go.id/r4/StructureDefinition/x].valueCode",
        )
        .iter()
        .map(|(l, _)| l.to_string())
        .collect();
        assert_eq!(got, vec!["extension[0].valueCode"]);
    }

    #[test]
    fn presence() {
        assert!(!is_present(&json!("")));
        assert!(!is_present(&json!([])));
        assert!(!is_present(&json!({"a": null})));
        assert!(is_present(&json!(false)));
        assert!(is_present(&json!({"reference": "Patient/1"})));
    }
}
