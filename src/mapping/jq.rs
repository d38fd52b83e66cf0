//! Running mapping programs written in jq (the jaq crates).
//!
//! A program is compiled once when mappings are loaded and then run for every record. Values
//! cross between serde_json and jaq value by value, never as JSON text, and decimals such as
//! `1.50` stay exactly as the facility wrote them (jaq holds them as decimal strings, serde_json
//! keeps their text with `arbitrary_precision`).

use jaq_core::load::{Arena, File, Loader};
use jaq_core::native::{Fun, bome, unary, v};
use jaq_core::{Compiler, Ctx, Native, Vars, data};
use jaq_json::{Num, Val};
use serde_json::Value;

type Data = data::JustLut<Val>;
type Filter = jaq_core::Filter<Data>;

const PRELUDE: &str = include_str!("prelude.jq");

/// The global variables every mapping sees, in this order.
pub const GLOBALS: [&str; 5] = ["$org", "$location", "$record_type", "$local_id", "$tables"];

/// A JSON value converted once for repeated use by programs (the code tables).
pub struct JqValue(Val);

impl JqValue {
    pub fn from_json(v: &Value) -> Result<JqValue, String> {
        to_jaq(v).map(JqValue)
    }
}

/// A compiled jq program.
pub struct Program {
    filter: Filter,
}

/// What went wrong compiling a program: a message with line and column in the program file.
#[derive(Debug)]
pub struct CompileError(pub String);

impl Program {
    pub fn compile(code: &str) -> Result<Program, CompileError> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs())
            .chain(prelude_defs());
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(&arena, File { code, path: () })
            .map_err(|errs| CompileError(describe_load_errors(code, errs)))?;
        let filter = Compiler::default()
            .with_funs(funs())
            .with_global_vars(GLOBALS)
            .compile(modules)
            .map_err(|errs| {
                let mut msgs = Vec::new();
                for (_file, undefined) in errs {
                    for (name, kind) in undefined {
                        let (line, col) = line_col(code, name);
                        msgs.push(format!(
                            "line {line}, column {col}: undefined {kind:?} `{name}`"
                        ));
                    }
                }
                CompileError(msgs.join("; "))
            })?;
        Ok(Program { filter })
    }

    /// Run the program on `input`. `strings` are the first four [`GLOBALS`] (`$org`,
    /// `$location`, `$record_type`, `$local_id`), `tables` is `$tables`. Exactly one output
    /// value is expected.
    pub fn run(
        &self,
        input: &Value,
        strings: [&str; 4],
        tables: &JqValue,
    ) -> Result<Value, RunError> {
        let input = to_jaq(input).map_err(RunError::from)?;
        let mut vars: Vec<Val> = strings.iter().map(|s| Val::from(s.to_string())).collect();
        vars.push(tables.0.clone());
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new(vars));
        let mut outputs = self.filter.id.run((ctx, input)).map(jaq_core::unwrap_valr);
        let first = match outputs.next() {
            None => {
                return Err(
                    "the mapping produced no output (`empty` or `select` removed everything)"
                        .into(),
                );
            }
            Some(Err(e)) => return Err(error_text(&e)),
            Some(Ok(v)) => v,
        };
        match outputs.next() {
            None => {}
            Some(Err(e)) => return Err(error_text(&e)),
            Some(Ok(_)) => {
                return Err(
                    "the mapping produced more than one output; it must produce one Bundle".into(),
                );
            }
        }
        from_jaq(&first).map_err(RunError::from)
    }
}

/// A mapping that failed at run time: what went wrong and, when gerbang's own built-ins
/// failed, the input value that made them fail (to find the input field holding it).
#[derive(Debug, Clone, PartialEq)]
pub struct RunError {
    pub message: String,
    pub value: Option<Value>,
}

impl From<String> for RunError {
    fn from(message: String) -> Self {
        RunError {
            message,
            value: None,
        }
    }
}

impl From<&str> for RunError {
    fn from(message: &str) -> Self {
        RunError {
            message: message.to_string(),
            value: None,
        }
    }
}

fn error_text(e: &jaq_core::Error<Val>) -> RunError {
    let v = e.clone().into_val();
    // gerbang's built-ins fail with {gerbang, message, value}; `error("text")` carries a
    // string, shown as text rather than as a JSON string.
    if let Ok(Value::Object(obj)) = from_jaq(&v) {
        if obj.contains_key("gerbang") {
            let message = obj
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("mapping failed")
                .to_string();
            return RunError {
                message,
                value: obj.get("value").cloned(),
            };
        }
    }
    match v {
        Val::TStr(b) => String::from_utf8_lossy(&b).into_owned().into(),
        other => other.to_string().into(),
    }
}

/// serde_json → jaq, value by value (no JSON text in between). A number keeps its text:
/// integers become jaq integers, everything else a decimal string, exactly as jaq's own
/// parser reads them, so `1.50` stays `1.50`.
fn to_jaq(v: &Value) -> Result<Val, String> {
    Ok(match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => Val::Num(num_to_jaq(n.as_str())),
        Value::String(s) => Val::from(s.clone()),
        Value::Array(items) => items.iter().map(to_jaq).collect::<Result<Val, _>>()?,
        Value::Object(fields) => {
            let mut map = jaq_json::Map::with_capacity_and_hasher(fields.len(), Default::default());
            for (k, x) in fields {
                map.insert(Val::from(k.clone()), to_jaq(x)?);
            }
            Val::obj(map)
        }
    })
}

fn num_to_jaq(text: &str) -> Num {
    let integer = !text.contains(['.', 'e', 'E']);
    match integer.then(|| Num::from_str_radix(text, 10)).flatten() {
        Some(n) => n,
        None => Num::Dec(jaq_json::Rc::new(text.to_string())),
    }
}

/// jaq → serde_json, value by value. Decimals keep their text; what JSON cannot hold (an
/// object key that is not a string, a byte string) is an error naming it.
fn from_jaq(v: &Val) -> Result<Value, String> {
    Ok(match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(Num::Int(i)) => Value::from(*i as i64),
        Val::Num(Num::Dec(text)) => Value::Number(text.parse().map_err(|e| {
            format!("the mapping produced a number that is not JSON ({text}): {e}")
        })?),
        // Floats (results of arithmetic) and big integers: as jaq writes them.
        Val::Num(_) => serde_json::from_str(&v.to_string())
            .map_err(|e| format!("the mapping produced a number that is not JSON ({v}): {e}"))?,
        Val::TStr(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Val::BStr(_) => {
            return Err(format!(
                "the mapping produced a byte string ({v}), which is not JSON"
            ));
        }
        Val::Arr(items) => Value::Array(items.iter().map(from_jaq).collect::<Result<_, _>>()?),
        Val::Obj(fields) => {
            let mut map = serde_json::Map::with_capacity(fields.len());
            for (k, x) in fields.iter() {
                let Val::TStr(key) = k else {
                    return Err(format!(
                        "the mapping produced an object key that is not a string ({k})"
                    ));
                };
                map.insert(String::from_utf8_lossy(key).into_owned(), from_jaq(x)?);
            }
            Value::Object(map)
        }
    })
}

fn prelude_defs() -> impl Iterator<Item = jaq_core::load::parse::Def<&'static str>> {
    jaq_core::load::parse(PRELUDE, |p| p.defs())
        .expect("the built-in prelude parses")
        .into_iter()
}

fn funs() -> impl Iterator<Item = Fun<Data>> {
    jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .chain(gerbang_funs())
}

/// Natives for what jq lacks. They are pure: no clock, no I/O.
fn gerbang_funs<D: jaq_core::DataT>() -> impl Iterator<Item = Fun<D>>
where
    for<'a> D::V<'a>: jaq_std::ValT + From<String>,
{
    fn text<V: jaq_std::ValT>(v: &V) -> Result<&str, jaq_core::Error<V>> {
        std::str::from_utf8(v.try_as_utf8_bytes()?).map_err(jaq_core::Error::str)
    }
    let natives: [jaq_core::native::Filter<jaq_core::RunPtr<D>>; 2] = [
        ("uuid5", v(0), |cv| {
            bome(text(&cv.1).map(|s| crate::fhir::uuid5(s).to_string().into()))
        }),
        ("to_utc", v(1), |cv| {
            unary(cv, |v, zone| {
                // Fail with {gerbang, message, value} so the input field can be located.
                let utc = crate::time::to_utc(text(&v)?, text(&zone)?).map_err(|e| {
                    let fields = [
                        ("gerbang", D::V::from("time".to_string())),
                        ("message", D::V::from(e.to_string())),
                        ("value", v.clone()),
                    ];
                    match <D::V<'_> as jaq_core::ValT>::from_map(
                        fields.map(|(k, x)| (D::V::from(k.to_string()), x)),
                    ) {
                        Ok(obj) => jaq_core::Error::new(obj),
                        Err(e) => e,
                    }
                })?;
                Ok(utc.into())
            })
        }),
    ];
    natives
        .into_iter()
        .map(|(name, args, run)| (name, args, Native::new(run)))
}

fn describe_load_errors(code: &str, errs: jaq_core::load::Errors<&str, ()>) -> String {
    use jaq_core::load::Error;
    let mut msgs = Vec::new();
    for (_file, err) in errs {
        match err {
            Error::Io(e) => msgs.extend(
                e.into_iter()
                    .map(|(p, m)| format!("cannot include {p}: {m}")),
            ),
            Error::Lex(e) => msgs.extend(e.into_iter().map(|(expected, found)| {
                let (line, col) = line_col(code, found);
                format!("line {line}, column {col}: expected {}", expected.as_str())
            })),
            Error::Parse(e) => msgs.extend(e.into_iter().map(|(expected, found)| {
                let (line, col) = line_col(code, found);
                format!("line {line}, column {col}: expected {}", expected.as_str())
            })),
        }
    }
    msgs.join("; ")
}

/// 1-based line and column of `part` inside `whole` (or 0, 0 if it is not a slice of it).
fn line_col(whole: &str, part: &str) -> (usize, usize) {
    let start = part.as_ptr() as usize;
    let base = whole.as_ptr() as usize;
    if start < base || start > base + whole.len() {
        return (0, 0);
    }
    let before = &whole[..start - base];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(code: &str, input: Value) -> Result<Value, String> {
        let p = Program::compile(code).map_err(|e| e.0)?;
        let tables = JqValue::from_json(&json!({"sex": {"P": "female", "L": "male"}})).unwrap();
        p.run(
            &input,
            ["100000001", "loc-1", "posyandu.balita", "K-1"],
            &tables,
        )
        .map_err(|e| e.message)
    }

    #[test]
    fn keeps_decimals_exactly() {
        let out = run("{w: .w}", serde_json::from_str(r#"{"w": 1.50}"#).unwrap()).unwrap();
        assert_eq!(serde_json::to_string(&out).unwrap(), r#"{"w":1.50}"#);
    }

    #[test]
    fn values_cross_both_ways_unchanged() {
        // Key order, decimals, exponents, integers beyond 64 bits, escapes and non-ASCII text.
        let text = r#"{"z":1,"a":[0.10,-2.5e3,12345678901234567890123,null,true],"é":"Dewi \"Ani\"\n","n":{"x":-7}}"#;
        let input: Value = serde_json::from_str(text).unwrap();
        let out = run(".", input.clone()).unwrap();
        // serde_json itself writes an exponent with its sign (`-2.5e+3`).
        assert_eq!(
            serde_json::to_string(&input).unwrap(),
            text.replace("e3", "e+3")
        );
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            serde_json::to_string(&input).unwrap()
        );
    }

    #[test]
    fn arithmetic_and_non_json_results() {
        let out = run(
            "{s: (.a + .b), i: (.a * 2), h: (1 / 2)}",
            json!({"a": 3, "b": 0.5}),
        )
        .unwrap();
        assert_eq!(out, json!({"s": 3.5, "i": 6, "h": 0.5}));
        let err = run("{(1): 2}", json!({})).unwrap_err();
        assert!(err.contains("not a string"), "{err}");
    }
    #[test]
    fn prelude_and_natives() {
        let out = run(r#"{s: sys_id("encounter"), u: full_url("Encounter"), t: ("2026-05-12T08:30" | to_utc("WITA")), x: ("P" | lookup("sex"))}"#, json!({})).unwrap();
        assert_eq!(out["s"], "http://sys-ids.kemkes.go.id/encounter/100000001");
        assert_eq!(out["t"], "2026-05-12T00:30:00+00:00");
        assert_eq!(out["x"], "female");
        let expected = format!(
            "urn:uuid:{}",
            crate::fhir::uuid5("100000001/posyandu.balita/K-1/Encounter")
        );
        assert_eq!(out["u"], expected.as_str());
    }

    #[test]
    fn unknown_code_names_table_and_value() {
        let err = run(r#""X" | lookup("sex")"#, json!({})).unwrap_err();
        assert!(err.contains("code table \"sex\""), "{err}");
        assert!(err.contains("\"X\""), "{err}");
    }

    #[test]
    fn builtin_errors_carry_the_offending_value() {
        let p = Program::compile(r#".a | lookup("sex")"#).unwrap();
        let tables = JqValue::from_json(&json!({"sex": {}})).unwrap();
        let e = p
            .run(&json!({"a": "Q"}), ["o", "l", "t", "i"], &tables)
            .unwrap_err();
        assert_eq!(e.value, Some(json!("Q")));
        let p = Program::compile(r#".t | to_utc("WIB")"#).unwrap();
        let e = p
            .run(&json!({"t": "12/05/2026"}), ["o", "l", "t", "i"], &tables)
            .unwrap_err();
        assert_eq!(e.value, Some(json!("12/05/2026")));
        assert!(e.message.contains("YYYY-MM-DD"), "{}", e.message);
    }

    #[test]
    fn compile_errors_have_line_numbers() {
        let err = Program::compile("{a: 1}\n| .b |||").err().unwrap().0;
        assert!(err.contains("line 2"), "{err}");
        let err = Program::compile("{a: nosuchfn}").err().unwrap().0;
        assert!(err.contains("nosuchfn"), "{err}");
    }
}
