//! Running mapping programs written in jq (the jaq crates).
//!
//! A program is compiled once when mappings are loaded and then run for every record. Values
//! cross between serde_json and jaq as JSON text, which keeps decimals such as `1.50` exactly
//! as the facility wrote them (jaq reads them as decimal strings, serde_json writes them back
//! verbatim with `arbitrary_precision`).

use jaq_core::load::{Arena, File, Loader};
use jaq_core::native::{Fun, bome, unary, v};
use jaq_core::{Compiler, Ctx, Native, Vars, data};
use jaq_json::Val;
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

fn to_jaq(v: &Value) -> Result<Val, String> {
    let text = serde_json::to_vec(v).map_err(|e| e.to_string())?;
    jaq_json::read::parse_single(&text).map_err(|e| format!("{e:?}"))
}

fn from_jaq(v: &Val) -> Result<Value, String> {
    serde_json::from_str(&v.to_string())
        .map_err(|e| format!("the mapping produced a value that is not JSON: {e}"))
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
