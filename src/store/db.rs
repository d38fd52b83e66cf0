//! The one SQL the store is written in, and the two databases that run it.
//!
//! Every statement of the store is written once, in PostgreSQL's notation: placeholders
//! `$1`, `$2` …, and two tokens for what the dialects really spell differently:
//!
//! | token | SQLite | PostgreSQL |
//! |---|---|---|
//! | `{now}` | the database's clock, ms since the epoch | the same (`clock_timestamp()`) |
//! | `{skip_locked}` | nothing (one writer: rows cannot be locked by another) | `FOR UPDATE SKIP LOCKED` |
//! | `{for_update}` | nothing | `FOR UPDATE` (the row is held until the transaction ends) |
//!
//! For SQLite, [`rewrite`] turns `$N` into `?N` (SQLite numbers a `$N` by first appearance,
//! not by N). Statements must not hold `$`, `{` or `}` inside string literals.
//!
//! A store operation is an `async fn` over a [`Tx`]: it may await only the [`Tx`]'s own
//! methods. On PostgreSQL those are real round trips; on SQLite they run at once on the
//! calling thread (the writer thread, or a reader), so the operation completes in one poll
//! ([`run_now`]) inside the writer's group transaction.
//!
//! Values cross as [`Cell`]s and come back in [`Row`]s whose getters turn a missing or
//! ill-typed value — and a JSON column that does not parse — into [`StoreError::Corrupt`], the
//! same on both databases.

use super::{Result, StoreError};
use async_trait::async_trait;
use serde_json::Value;
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A value bound to a placeholder or read from a column. Times are ms since the epoch
/// (`Int`); JSON is stored as text (what a facility sent is kept byte for byte).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Cell {
    fn from(v: i64) -> Self {
        Cell::Int(v)
    }
}
impl From<bool> for Cell {
    fn from(v: bool) -> Self {
        Cell::Int(v as i64)
    }
}
impl From<&str> for Cell {
    fn from(v: &str) -> Self {
        Cell::Text(v.to_string())
    }
}
impl From<String> for Cell {
    fn from(v: String) -> Self {
        Cell::Text(v)
    }
}
impl From<&String> for Cell {
    fn from(v: &String) -> Self {
        Cell::Text(v.clone())
    }
}
impl From<&Value> for Cell {
    fn from(v: &Value) -> Self {
        Cell::Text(v.to_string())
    }
}
impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Self {
        v.map_or(Cell::Null, Into::into)
    }
}
impl From<&Option<String>> for Cell {
    fn from(v: &Option<String>) -> Self {
        v.as_deref().into()
    }
}

/// The arguments of a statement: `args![a, b, c]`.
#[macro_export]
macro_rules! args {
    () => { &[] as &[$crate::store::db::Cell] };
    ($($v:expr),+ $(,)?) => { &[$($crate::store::db::Cell::from($v)),+][..] };
}
pub use args;

/// One row of an answer.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Cell>);

/// A column type a [`Row`] can be read into.
pub trait FromCell: Sized {
    fn from_cell(cell: &Cell) -> Option<Self>;
}
impl FromCell for i64 {
    fn from_cell(c: &Cell) -> Option<Self> {
        match c {
            Cell::Int(v) => Some(*v),
            _ => None,
        }
    }
}
impl FromCell for bool {
    fn from_cell(c: &Cell) -> Option<Self> {
        i64::from_cell(c).map(|v| v != 0)
    }
}
impl FromCell for String {
    fn from_cell(c: &Cell) -> Option<Self> {
        match c {
            Cell::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}
impl<T: FromCell> FromCell for Option<T> {
    fn from_cell(c: &Cell) -> Option<Self> {
        match c {
            Cell::Null => Some(None),
            other => T::from_cell(other).map(Some),
        }
    }
}

impl Row {
    /// Column `i` as `T`; a missing column, a NULL where a value is required or a value of
    /// another type is corrupt data.
    pub fn get<T: FromCell>(&self, i: usize) -> Result<T> {
        let cell = self
            .0
            .get(i)
            .ok_or_else(|| StoreError::Corrupt(format!("column {i} is missing")))?;
        T::from_cell(cell).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "column {i} holds {cell:?}, not a {}",
                std::any::type_name::<T>()
            ))
        })
    }

    /// A JSON column that may be NULL; text that does not parse is corrupt data.
    pub fn json_opt(&self, i: usize) -> Result<Option<Value>> {
        self.get::<Option<String>>(i)?
            .map(|s| {
                serde_json::from_str(&s)
                    .map_err(|e| StoreError::Corrupt(format!("JSON in column {i}: {e}")))
            })
            .transpose()
    }

    /// A JSON column that must hold a value.
    pub fn json(&self, i: usize) -> Result<Value> {
        self.json_opt(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {i} is NULL, JSON expected")))
    }
}

/// A connection inside a transaction (writes) or not (reads), of either database.
#[async_trait]
pub trait Tx: Send {
    /// Run a statement; how many rows it changed.
    async fn execute(&mut self, sql: &str, args: &[Cell]) -> Result<u64>;
    /// Run a query; every row.
    async fn query(&mut self, sql: &str, args: &[Cell]) -> Result<Vec<Row>>;
    /// Hold `key` until this transaction ends: transactions taking the same key run their
    /// remaining statements one after the other, and each commits before the next one's
    /// next statement reads. (PostgreSQL: an advisory transaction lock. SQLite: there is
    /// one writer, so writes are serial already.)
    async fn serialize(&mut self, key: i64) -> Result<()>;

    /// At most one row.
    async fn query_opt(&mut self, sql: &str, args: &[Cell]) -> Result<Option<Row>> {
        Ok(self.query(sql, args).await?.into_iter().next())
    }
    /// Exactly one row.
    async fn query_one(&mut self, sql: &str, args: &[Cell]) -> Result<Row> {
        self.query_opt(sql, args)
            .await?
            .ok_or_else(|| StoreError::Database(format!("no row for: {sql}")))
    }
}

/// A store operation: runs with a [`Tx`], inside a transaction when it writes.
pub type Op<T> = Box<
    dyn for<'t> FnOnce(
            &'t mut dyn Tx,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<T>> + Send + 't>>
        + Send,
>;

/// A statement whose conditions depend on the request (list filters): conditions are
/// appended with their values, and each value gets the next placeholder.
#[derive(Debug, Default)]
pub struct Query {
    pub sql: String,
    pub args: Vec<Cell>,
}

impl Query {
    pub fn new(sql: impl Into<String>) -> Query {
        Query {
            sql: sql.into(),
            args: Vec::new(),
        }
    }
    /// The placeholder of a new argument.
    pub fn bind(&mut self, v: impl Into<Cell>) -> String {
        self.args.push(v.into());
        format!("${}", self.args.len())
    }
    /// Append SQL text.
    pub fn push(&mut self, sql: &str) -> &mut Query {
        self.sql.push_str(sql);
        self
    }
    /// Append ` AND <column> = <value>` when there is a value.
    pub fn and_eq(&mut self, column: &str, v: Option<impl Into<Cell>>) -> &mut Query {
        if let Some(v) = v {
            let p = self.bind(v);
            self.sql.push_str(&format!(" AND {column} = {p}"));
        }
        self
    }
}

/// `sql` as `dialect` spells it.
pub fn rewrite(sql: &str, dialect: Dialect) -> Cow<'_, str> {
    let untouched = match dialect {
        Dialect::Sqlite => !sql.contains(['$', '{']),
        Dialect::Postgres => !sql.contains('{'),
    };
    if untouched {
        return Cow::Borrowed(sql);
    }
    let (now, skip_locked, for_update) = match dialect {
        Dialect::Sqlite => ("CAST(unixepoch('subsec') * 1000 AS INTEGER)", "", ""),
        Dialect::Postgres => (
            "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
            "FOR UPDATE SKIP LOCKED",
            "FOR UPDATE",
        ),
    };
    let mut out = String::with_capacity(sql.len() + 32);
    let mut rest = sql;
    while let Some(at) = rest.find(['$', '{']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("{now}") {
            out.push_str(now);
            rest = after;
        } else if let Some(after) = rest.strip_prefix("{skip_locked}") {
            out.push_str(skip_locked);
            rest = after;
        } else if let Some(after) = rest.strip_prefix("{for_update}") {
            out.push_str(for_update);
            rest = after;
        } else if rest.starts_with('$') && dialect == Dialect::Sqlite {
            out.push('?');
            rest = &rest[1..];
        } else {
            out.push_str(&rest[..1]);
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Run an operation whose every await is a SQLite call (which completes at once): one poll.
pub fn run_now<T>(fut: impl Future<Output = Result<T>>) -> Result<T> {
    use std::task::{Context, Poll, Waker};
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => Err(StoreError::Database(
            "a store operation waited on something other than SQLite; this is a bug in gerbang"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_tokens_are_rewritten_for_each_dialect() {
        let sql = "UPDATE t SET a = $2, u = {now} + $1 WHERE id IN (SELECT id FROM t LIMIT $10 {skip_locked})";
        assert_eq!(
            rewrite(sql, Dialect::Sqlite),
            "UPDATE t SET a = ?2, u = CAST(unixepoch('subsec') * 1000 AS INTEGER) + ?1 WHERE id IN (SELECT id FROM t LIMIT ?10 )"
        );
        assert_eq!(
            rewrite(sql, Dialect::Postgres),
            "UPDATE t SET a = $2, u = CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) + $1 \
             WHERE id IN (SELECT id FROM t LIMIT $10 FOR UPDATE SKIP LOCKED)"
        );
        assert!(matches!(
            rewrite("SELECT 1", Dialect::Sqlite),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn rows_read_typed_values_and_refuse_corrupt_ones() {
        let row = Row(vec![
            Cell::Int(7),
            Cell::Null,
            Cell::Text("{\"a\": 1.50}".into()),
            Cell::Text("{not json".into()),
        ]);
        assert_eq!(row.get::<i64>(0).unwrap(), 7);
        assert_eq!(row.get::<Option<String>>(1).unwrap(), None);
        assert!(row.get::<String>(1).is_err());
        assert!(row.get::<String>(0).is_err());
        assert_eq!(row.json(2).unwrap().to_string(), "{\"a\":1.50}");
        assert!(matches!(row.json_opt(3), Err(StoreError::Corrupt(_))));
        assert_eq!(row.json_opt(1).unwrap(), None);
        assert!(row.get::<i64>(9).is_err());
    }
}
