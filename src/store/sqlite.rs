//! The embedded database: SQLite in WAL mode with `synchronous=FULL`, so a commit is on disk
//! before it is acknowledged.
//!
//! All writes go through one writer thread, which groups the writes that arrive together
//! into one transaction (group commit): under load many facilities' records share one fsync,
//! and each write still runs in its own savepoint so one failure does not undo the others.
//! Reads use a small pool of separate connections, which WAL lets run beside the writer.
//! Both run the store's operations through [`SqliteTx`], on their own thread, in one poll.

use super::db::{Cell, Dialect, Op, Row, Tx, rewrite, run_now};
use super::{Result, StoreError};
use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("migrations/sqlite/0002_dead_letters_retention.sql"),
    ),
    (
        3,
        include_str!("migrations/sqlite/0003_formats_operators.sql"),
    ),
    (4, include_str!("migrations/sqlite/0004_replay_budget.sql")),
    (5, include_str!("migrations/sqlite/0005_access.sql")),
    (6, include_str!("migrations/sqlite/0006_pull.sql")),
    (7, include_str!("migrations/0007_lifecycle.sql")),
    (8, include_str!("migrations/0008_console.sql")),
];

/// How many queued writes one transaction may take.
const MAX_GROUP: usize = 256;

/// Reader connections kept open between reads.
const READERS_KEPT: usize = 8;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

type Finish = Box<dyn FnOnce(Result<()>) + Send>;
/// A write: run with the connection inside the group's transaction, or with `None` when the
/// transaction could not even begin (the caller then gets the error, nothing runs).
type Job = Box<dyn FnOnce(Option<&mut Connection>) -> (bool, Finish) + Send>;

pub struct Sqlite {
    jobs: mpsc::Sender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
}

fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Pruned payloads give their pages back to the file system (takes effect on a new
    // database, before the first table exists).
    conn.execute_batch("PRAGMA auto_vacuum=INCREMENTAL;")?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
    )?;
    Ok(conn)
}

impl Sqlite {
    /// Open (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Sqlite> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Database(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let conn = open(path)?;
        migrate(&conn)?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("gerbang-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(Sqlite {
            jobs: tx,
            readers: Arc::new(Mutex::new(Vec::new())),
            path: path.to_path_buf(),
        })
    }

    /// Run `op` in the writer's next group transaction; its result once that committed.
    pub async fn write<T: Send + 'static>(&self, op: Op<T>) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let Some(conn) = conn else {
                let _ = tx.send(Err(StoreError::Database(
                    "cannot begin a write transaction".into(),
                )));
                return (false, Box::new(|_| {}) as Finish);
            };
            let result = run_now(op(&mut SqliteTx { conn }));
            let ok = result.is_ok();
            let finish: Finish = Box::new(move |committed| {
                let _ = tx.send(committed.and(result));
            });
            (ok, finish)
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Run `op` on a reader connection, beside the writer.
    pub async fn read<T: Send + 'static>(&self, op: Op<T>) -> Result<T> {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let popped = readers.lock().expect("reader pool").pop();
            let mut conn = match popped {
                Some(c) => c,
                None => open(&path)?,
            };
            let result = run_now(op(&mut SqliteTx { conn: &mut conn }));
            let mut pool = readers.lock().expect("reader pool");
            if pool.len() < READERS_KEPT {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Database(format!("reader task failed: {e}")))?
    }

    /// Give the pages freed by a prune back to the file system (outside any transaction).
    pub async fn vacuum(&self) -> Result<()> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let c = open(&path)?;
            // The pragma frees one page per step of its statement: step it to the end, or
            // it gives back a single page.
            let mut freeing = c.prepare("PRAGMA incremental_vacuum")?;
            let mut pages = freeing.query([])?;
            while pages.next()?.is_some() {}
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Database(e.to_string()))?
    }
}

/// A SQLite connection running store operations.
pub struct SqliteTx<'c> {
    conn: &'c mut Connection,
}

impl rusqlite::ToSql for Cell {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Cell::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Cell::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Cell::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

fn cell(v: ValueRef<'_>) -> Cell {
    match v {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Int(i),
        // No column holds reals; arithmetic on the clock may give one.
        ValueRef::Real(f) => Cell::Int(f.round() as i64),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            Cell::Text(String::from_utf8_lossy(t).into_owned())
        }
    }
}

#[async_trait]
impl Tx for SqliteTx<'_> {
    async fn execute(&mut self, sql: &str, args: &[Cell]) -> Result<u64> {
        let sql = rewrite(sql, Dialect::Sqlite);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(args.iter()))? as u64)
    }

    async fn query(&mut self, sql: &str, args: &[Cell]) -> Result<Vec<Row>> {
        let sql = rewrite(sql, Dialect::Sqlite);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut cells = Vec::with_capacity(columns);
            for i in 0..columns {
                cells.push(cell(r.get_ref(i)?));
            }
            out.push(Row(cells));
        }
        Ok(out)
    }

    async fn serialize(&mut self, _key: i64) -> Result<()> {
        // One writer thread: every write transaction is already alone.
        Ok(())
    }
}

fn migrate(conn: &Connection) -> Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    for (version, sql) in MIGRATIONS {
        if *version > current {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![version, crate::time::now_millis()],
            )?;
            tx.commit()?;
        }
    }
    Ok(())
}

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut finishes = Vec::with_capacity(group.len());
        let begun = conn.execute_batch("BEGIN IMMEDIATE");
        if let Err(e) = begun {
            tracing::error!(error = %e, "sqlite: cannot begin a transaction");
            for job in group {
                let _ = job(None);
            }
            continue;
        }
        for job in group {
            let savepoint = conn.execute_batch("SAVEPOINT job");
            let (ok, finish) = job(Some(&mut conn));
            if savepoint.is_ok() {
                let _ = if ok {
                    conn.execute_batch("RELEASE job")
                } else {
                    conn.execute_batch("ROLLBACK TO job; RELEASE job")
                };
            }
            finishes.push(finish);
        }
        let committed = conn.execute_batch("COMMIT").map_err(StoreError::from);
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for finish in finishes {
            finish(match &committed {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Database(format!("commit failed: {e}"))),
            });
        }
    }
}
