//! Steps 1 and 2 of a record's path: check the facility's record against its record type's
//! input schema, then map it with the record type's jq program into a transaction Bundle.
//!
//! The input check ([`RecordType::check_input`]) is three pure parts: content guards over
//! every value ([`guard`], also usable on FHIR resources pushed directly), the input schema
//! with its errors in the facility's terms ([`input`]), and the dates `mapping.yaml` declares
//! ([`dates`]; "not in the future" only with a clock passed in).
//!
//! Each record type is a folder under `mappings/` (see the README, "Writing a mapping"):
//! `mapping.yaml` (metadata), `input.schema.json`, `map.jq` and `examples/`. Everything is
//! loaded and compiled once at start; mapping a record is then a pure function of the record
//! and the sender's organization — no clock, no I/O — so the CLI, the server and the tests
//! produce byte-identical Bundles.

pub mod adapter;
pub mod dates;
pub mod guard;
pub mod harness;
pub mod input;
pub mod jq;
pub mod provenance;
pub mod trial;

use crate::fhir::{Issue, IssueCode, Outcome};
use crate::terminology::CodeTables;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// `mapping.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// The record type's name, also its folder name and the `{record-type}` of
    /// `POST /ingest/{record-type}`.
    pub record_type: String,
    /// Bumped whenever the mapping's output changes.
    pub version: u32,
    pub description: String,
    /// JSON pointer to the facility's own id of the record, e.g. `/id_kunjungan`. With the
    /// facility and the record type it is the idempotency key.
    pub local_id: String,
    /// FHIR resource types (and their SATUSEHAT profiles) the mapping produces.
    #[serde(default)]
    pub produces: Vec<String>,
    /// Which fields say when the visit was and when people were born, checked before mapping
    /// (see [`dates`]).
    #[serde(default)]
    pub dates: dates::DateFields,
}

/// One loaded record type.
pub struct RecordType {
    pub meta: Meta,
    pub dir: PathBuf,
    input: input::InputSchema,
    program: jq::Program,
    /// Local formats this record type also accepts, by format name (`adapters/<format>/`).
    pub adapters: BTreeMap<String, adapter::Adapter>,
}

/// What the mapping knows about the sender. Nothing else about the world is visible to it.
#[derive(Debug, Clone)]
pub struct Sender<'a> {
    pub organization_id: &'a str,
    pub location_id: &'a str,
}

/// A record that passed the input check and was mapped.
#[derive(Debug, Clone)]
pub struct Mapped {
    pub local_id: String,
    pub bundle: Value,
}

/// A mapping folder that does not load. Files are named relative to the mappings folder
/// (`posyandu.balita/map.jq`), never by a path of the server's file system: the message may
/// travel further than the operator's terminal, and the caller names the folder itself
/// ("loading mappings from …").
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file} is not valid: {message}")]
    Invalid { file: String, message: String },
    #[error(transparent)]
    Tables(#[from] crate::terminology::TableError),
}

/// All record types, by name.
pub struct Mappings {
    types: BTreeMap<String, RecordType>,
    tables: CodeTables,
    tables_value: jq::JqValue,
}

impl Mappings {
    /// Load every record type under `dir` (one folder each) and the code tables under
    /// `dir/tables`.
    pub fn load(dir: &Path) -> Result<Mappings, LoadError> {
        let tables = CodeTables::load_dir(&dir.join("tables"))?;
        let mut types = BTreeMap::new();
        let read_dir = std::fs::read_dir(dir).map_err(|source| LoadError::Read {
            file: "the mappings folder".to_string(),
            source,
        })?;
        let mut dirs: Vec<PathBuf> = read_dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("mapping.yaml").is_file())
            .collect();
        dirs.sort();
        for d in dirs {
            let rt = RecordType::load(&d)?;
            types.insert(rt.meta.record_type.clone(), rt);
        }
        let tables_value =
            jq::JqValue::from_json(&tables.to_value()).map_err(|message| LoadError::Invalid {
                file: "tables/".to_string(),
                message,
            })?;
        Ok(Mappings {
            types,
            tables,
            tables_value,
        })
    }

    pub fn get(&self, record_type: &str) -> Option<&RecordType> {
        self.types.get(record_type)
    }

    pub fn record_types(&self) -> impl Iterator<Item = &RecordType> {
        self.types.values()
    }

    pub fn tables(&self) -> &CodeTables {
        &self.tables
    }

    fn record_type(&self, record_type: &str) -> Result<&RecordType, Outcome> {
        self.get(record_type).ok_or_else(|| {
            Outcome::one(Issue::error(
                IssueCode::NotSupported,
                format!(
                    "unknown record type `{record_type}`; known types: {}",
                    self.types.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ))
        })
    }

    /// A record in a local format (`format`, e.g. `sikda-generik`) turned into the record
    /// type's canonical record; without a format the record is canonical already.
    pub fn to_canonical(
        &self,
        record_type: &str,
        format: Option<&str>,
        record: &Value,
        sender: &Sender,
    ) -> Result<Value, Outcome> {
        let rt = self.record_type(record_type)?;
        let Some(format) = format else {
            return Ok(record.clone());
        };
        let adapter = rt.adapters.get(format).ok_or_else(|| {
            let known: Vec<&str> = rt.adapters.keys().map(String::as_str).collect();
            Outcome::one(Issue::error(
                IssueCode::NotSupported,
                if known.is_empty() {
                    format!("record type `{record_type}` accepts only its canonical format, not `{format}`")
                } else {
                    format!("record type `{record_type}` has no adapter for format `{format}`; known formats: {}", known.join(", "))
                },
            ))
        })?;
        adapter.adapt(record, record_type, sender, &self.tables_value)
    }

    /// Steps 1 and 2 for a record in any accepted format: adapt (if a local format), then
    /// [`Mappings::map_record`].
    pub fn map_record_as(
        &self,
        record_type: &str,
        format: Option<&str>,
        record: &Value,
        sender: &Sender,
    ) -> Result<Mapped, Outcome> {
        let canonical = self.to_canonical(record_type, format, record, sender)?;
        self.map_record(record_type, &canonical, sender)
    }

    /// Steps 1 and 2: input check, local id, map. Errors come back as an Outcome whose
    /// expressions are JSON paths into the record.
    pub fn map_record(
        &self,
        record_type: &str,
        record: &Value,
        sender: &Sender,
    ) -> Result<Mapped, Outcome> {
        let rt = self.record_type(record_type)?;
        // No clock here: mapping stays a pure function. The ingest endpoint checks the
        // future with its own clock first (`check_input(record, Some(now))`).
        let issues = rt.check_input(record, None);
        if issues.has_errors() {
            return Err(issues);
        }
        let local_id = rt.local_id(record).map_err(Outcome::one)?;
        self.map_checked(rt, record, local_id, sender)
    }

    /// Step 2 alone, for a record that already passed [`RecordType::check_input`] and whose
    /// local id is known (the ingest endpoint checks with its clock first; checking again
    /// would only repeat the work).
    pub fn map_checked(
        &self,
        rt: &RecordType,
        record: &Value,
        local_id: String,
        sender: &Sender,
    ) -> Result<Mapped, Outcome> {
        let bundle = rt
            .map(record, &local_id, sender, &self.tables_value)
            .map_err(Outcome::one)?;
        Ok(Mapped { local_id, bundle })
    }
}

/// A failed jq program as an issue naming the program (`mapping posyandu.balita (map.jq)`: a
/// name relative to the mappings, never a path of the server's file system) and, when a
/// built-in choked on an input value, the input field(s) holding it.
fn run_error_issue(program: &str, record: &Value, e: jq::RunError) -> Issue {
    let paths = e
        .value
        .as_ref()
        .map(|v| paths_of(record, v))
        .unwrap_or_default();
    let at = match paths.as_slice() {
        [] => String::new(),
        many => format!(" (input {})", many.join(", ")),
    };
    let issue = Issue::error(
        IssueCode::Processing,
        format!("{program}: {}{at}", e.message),
    );
    match paths.into_iter().next() {
        Some(p) => issue.at(p),
        None => issue,
    }
}

/// JSON paths (`$.imunisasi[0].lokasi_suntik`) of every place in `record` equal to `value`.
fn paths_of(record: &Value, value: &Value) -> Vec<String> {
    fn walk(v: &Value, at: String, target: &Value, out: &mut Vec<String>) {
        if v == target {
            out.push(at.clone());
        }
        match v {
            Value::Object(m) => m
                .iter()
                .for_each(|(k, c)| walk(c, format!("{at}.{k}"), target, out)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, c)| walk(c, format!("{at}[{i}]"), target, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(record, "$".to_string(), value, &mut out);
    out.truncate(5);
    out
}

/// Remove nulls, empty strings, empty arrays and empty objects, recursively. FHIR forbids
/// them, and it lets a mapping write optional input straight through: absent stays absent.
pub fn prune(v: &mut Value) {
    fn is_empty(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        }
    }
    match v {
        Value::Object(map) => {
            for child in map.values_mut() {
                prune(child);
            }
            map.retain(|_, c| !is_empty(c));
        }
        Value::Array(items) => {
            for child in items.iter_mut() {
                prune(child);
            }
            items.retain(|c| !is_empty(c));
        }
        _ => {}
    }
}

/// A mapping folder being loaded — a record type, or one of its adapters: its files read,
/// parsed and compiled, every error naming the file relative to the mappings folder
/// (`label`, e.g. `posyandu.balita` or `rawat-jalan/adapters/pcare`).
struct Folder<'a> {
    dir: &'a Path,
    label: String,
}

impl<'a> Folder<'a> {
    fn new(dir: &'a Path, label: String) -> Self {
        Folder { dir, label }
    }

    fn read(&self, name: &str) -> Result<String, LoadError> {
        std::fs::read_to_string(self.dir.join(name)).map_err(|source| LoadError::Read {
            file: format!("{}/{name}", self.label),
            source,
        })
    }

    fn invalid(&self, name: &str, message: impl Into<String>) -> LoadError {
        LoadError::Invalid {
            file: format!("{}/{name}", self.label),
            message: message.into(),
        }
    }

    /// The folder's description (`file`), whose `key` must equal the folder's name.
    fn meta<T: serde::de::DeserializeOwned>(
        &self,
        file: &str,
        key: &str,
        name: impl Fn(&T) -> &str,
    ) -> Result<T, LoadError> {
        let meta: T = serde_saphyr::from_str(&self.read(file)?)
            .map_err(|e| self.invalid(file, e.to_string()))?;
        let folder = self.dir.file_name().unwrap_or_default().to_string_lossy();
        if name(&meta) != folder {
            return Err(self.invalid(
                file,
                format!(
                    "{key} `{}` must equal its folder name `{folder}`",
                    name(&meta)
                ),
            ));
        }
        Ok(meta)
    }

    fn input_schema(&self) -> Result<input::InputSchema, LoadError> {
        const FILE: &str = "input.schema.json";
        let schema: Value = serde_json::from_str(&self.read(FILE)?)
            .map_err(|e| self.invalid(FILE, e.to_string()))?;
        input::InputSchema::compile(schema).map_err(|e| self.invalid(FILE, e))
    }

    fn program(&self, file: &str) -> Result<jq::Program, LoadError> {
        jq::Program::compile(&self.read(file)?).map_err(|e| self.invalid(file, e.0))
    }
}

impl RecordType {
    fn load(dir: &Path) -> Result<RecordType, LoadError> {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let folder = Folder::new(dir, name.to_string());
        let meta: Meta = folder.meta("mapping.yaml", "record_type", |m: &Meta| &m.record_type)?;
        let input = folder.input_schema()?;
        let program = folder.program("map.jq")?;
        let adapters = adapter::load_all(&dir.join("adapters"), &meta.record_type)?;
        Ok(RecordType {
            meta,
            dir: dir.to_path_buf(),
            input,
            program,
            adapters,
        })
    }

    pub fn name(&self) -> &str {
        &self.meta.record_type
    }

    /// Step 1: content guards, the input schema, then the declared dates. `now` is the
    /// gateway's clock for "not in the future"; None (the CLI, golden tests, re-mapping a
    /// stored record) skips that one check and keeps this a pure function.
    pub fn check_input(
        &self,
        record: &Value,
        now: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Outcome {
        let mut outcome = self.input.check(record);
        if !outcome.has_errors() {
            outcome.extend(Outcome::from(dates::check(record, &self.meta.dates, now)));
        }
        outcome
    }

    /// The record type's input schema, as written (with its `x-message`s).
    pub fn input_schema(&self) -> &Value {
        self.input.schema()
    }

    /// The facility's own id of the record.
    pub fn local_id(&self, record: &Value) -> Result<String, Issue> {
        let path = format!("${}", self.meta.local_id.replace('/', "."));
        match record.pointer(&self.meta.local_id) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(Issue::error(
                IssueCode::Required,
                format!("{path} is required: the facility's own id of this record, used to recognise a record sent twice"),
            )
            .at(path)),
        }
    }

    /// Run the jq program and prune its output. The error names the mapping file.
    pub fn map(
        &self,
        record: &Value,
        local_id: &str,
        sender: &Sender,
        tables: &jq::JqValue,
    ) -> Result<Value, Issue> {
        let strings = [
            sender.organization_id,
            sender.location_id,
            self.meta.record_type.as_str(),
            local_id,
        ];
        let mut out = self.program.run(record, strings, tables).map_err(|e| {
            let program = format!("mapping {} (map.jq)", self.meta.record_type);
            run_error_issue(&program, record, e)
        })?;
        prune(&mut out);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::prune;
    use serde_json::json;

    #[test]
    fn prune_drops_empty_parts_recursively() {
        let mut v = json!({"a": null, "b": [], "c": {"d": null}, "e": [null, 1, {"x": ""}], "f": 0, "g": false, "h": "ok"});
        prune(&mut v);
        assert_eq!(v, json!({"e": [1], "f": 0, "g": false, "h": "ok"}));
    }
}
