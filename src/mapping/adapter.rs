//! Adapters: a facility system that cannot produce a record type's canonical record sends its
//! own format instead (SIKDA Generik rows, a BPJS P-Care payload …), and an adapter turns it
//! into the canonical record with the same machinery as a mapping — an input schema and a jq
//! program. The canonical record then goes through the record type's own path, so there is
//! exactly one mapping per record type however many formats feed it.
//!
//! Layout: `mappings/<record-type>/adapters/<format>/` with `adapter.yaml`,
//! `input.schema.json`, `adapt.jq` and `examples/` (`<name>.input.json` and the golden
//! canonical record `<name>.canonical.json`).

use super::{Folder, LoadError, Sender, input, jq, prune, run_error_issue};
use crate::fhir::Outcome;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `adapter.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterMeta {
    /// The format's name, also its folder name and the `?format=` of the ingest endpoint.
    pub format: String,
    /// The system that produces this format, e.g. "SIKDA Generik".
    pub source: String,
    pub description: String,
}

pub struct Adapter {
    pub meta: AdapterMeta,
    pub dir: PathBuf,
    input: input::InputSchema,
    program: jq::Program,
}

/// Every adapter under `dir` (which may not exist: most record types have none).
pub fn load_all(dir: &Path, record_type: &str) -> Result<BTreeMap<String, Adapter>, LoadError> {
    let mut out = BTreeMap::new();
    let Ok(read_dir) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    let mut dirs: Vec<PathBuf> = read_dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("adapter.yaml").is_file())
        .collect();
    dirs.sort();
    for d in dirs {
        let a = Adapter::load(&d, record_type)?;
        out.insert(a.meta.format.clone(), a);
    }
    Ok(out)
}

impl Adapter {
    fn load(dir: &Path, record_type: &str) -> Result<Adapter, LoadError> {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let folder = Folder::new(dir, format!("{record_type}/adapters/{name}"));
        let meta: AdapterMeta =
            folder.meta("adapter.yaml", "format", |m: &AdapterMeta| &m.format)?;
        let input = folder.input_schema()?;
        let program = folder.program("adapt.jq")?;
        Ok(Adapter {
            meta,
            dir: dir.to_path_buf(),
            input,
            program,
        })
    }

    /// The local format's input schema, as written (with its `x-message`s).
    pub fn input_schema(&self) -> &Value {
        self.input.schema()
    }

    /// The canonical record for a record in this format. Errors are JSON paths into the
    /// local record.

    pub fn adapt(
        &self,
        record: &Value,
        record_type: &str,
        sender: &Sender,
        tables: &jq::JqValue,
    ) -> Result<Value, Outcome> {
        // Guards and schema on the local record, so errors name the facility's own fields.
        let checked = self.input.check(record);
        if checked.has_errors() {
            return Err(checked);
        }
        // The local id is only known once adapted; adapters see it empty.
        let strings = [sender.organization_id, sender.location_id, record_type, ""];
        let mut out = self.program.run(record, strings, tables).map_err(|e| {
            let program = format!("adapter {} of {record_type} (adapt.jq)", self.meta.format);
            Outcome::one(run_error_issue(&program, record, e))
        })?;
        prune(&mut out);
        Ok(out)
    }
}
