//! Code tables: a facility's local codes (antigen names, routes, injection sites, …) to the
//! national codes SATUSEHAT expects. Tables are data under `mappings/tables/`, one JSON file
//! each, reviewed like code:
//!
//! ```json
//! { "about": "what the table maps and where its codes come from",
//!   "codes": { "MR 1": { "kfa": "…", "display": "…" }, … } }
//! ```
//!
//! A mapping looks codes up with `lookup("table")`; a value that is not in the table is an
//! error naming the table and the value, never a silently empty coding.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TableError {
    #[error("cannot read code table {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("code table {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Deserialize)]
struct TableFile {
    #[allow(dead_code)]
    about: String,
    codes: Map<String, Value>,
}

/// All code tables, by name (the file stem).
#[derive(Debug, Clone, Default)]
pub struct CodeTables {
    tables: BTreeMap<String, Map<String, Value>>,
}

impl CodeTables {
    pub fn load_dir(dir: &Path) -> Result<Self, TableError> {
        let mut tables = BTreeMap::new();
        let read_dir = match std::fs::read_dir(dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(TableError::Read {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        };
        let mut paths: Vec<PathBuf> = read_dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| TableError::Read {
                path: path.clone(),
                source,
            })?;
            let file: TableFile = serde_json::from_str(&text).map_err(|e| TableError::Invalid {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let name = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            tables.insert(name, file.codes);
        }
        Ok(CodeTables { tables })
    }

    pub fn get(&self, table: &str, key: &str) -> Option<&Value> {
        self.tables.get(table)?.get(key)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }

    /// All tables as one JSON object `{table: {code: value}}`, as mappings see them.
    pub fn to_value(&self) -> Value {
        Value::Object(
            self.tables
                .iter()
                .map(|(k, v)| (k.clone(), Value::Object(v.clone())))
                .collect(),
        )
    }
}
