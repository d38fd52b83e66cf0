//! The database for several gateway instances: PostgreSQL through tokio-postgres and a
//! deadpool connection pool. The store's operations run on it as they do on SQLite; what
//! PostgreSQL adds is concurrency between instances, which the operations handle with
//! `FOR UPDATE SKIP LOCKED` leases (`{skip_locked}`) and advisory locks ([`Tx::serialize`]).

use super::db::{Cell, Dialect, Op, Row, Tx, rewrite};
use super::{Result, StoreError};
use async_trait::async_trait;
use bytes::BytesMut;
use deadpool_postgres::{Config as PoolConfig, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("migrations/postgres/0002_dead_letters_retention.sql"),
    ),
    (
        3,
        include_str!("migrations/postgres/0003_formats_operators.sql"),
    ),
    (
        4,
        include_str!("migrations/postgres/0004_replay_budget.sql"),
    ),
    (5, include_str!("migrations/postgres/0005_access.sql")),
    (6, include_str!("migrations/postgres/0006_pull.sql")),
    (7, include_str!("migrations/0007_lifecycle.sql")),
    (8, include_str!("migrations/0008_console.sql")),
];

/// Serialises schema migrations of concurrently starting instances.
const MIGRATION_LOCK: i64 = 0x6765_7262_616e_67;

pub struct Postgres {
    pool: Pool,
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // tokio-postgres displays a server error as just "db error"; the server's message
        // (which names the constraint, the relation …) is what tells an operator what to do.
        match std::error::Error::source(&e) {
            Some(cause) => StoreError::Database(format!("{e}: {cause}")),
            None => StoreError::Database(e.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Database(format!("no PostgreSQL connection: {e}"))
    }
}

impl Postgres {
    /// Connect (URL such as `postgres://postgres@127.0.0.1/test`), optionally inside a
    /// `schema` (created if missing; tests use one each), and migrate.
    pub async fn connect(
        url: &str,
        schema: Option<&str>,
        max_connections: usize,
    ) -> Result<Postgres> {
        let mut cfg = PoolConfig::new();
        cfg.url = Some(url.to_string());
        if let Some(s) = schema {
            if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(StoreError::Database(format!("invalid schema name `{s}`")));
            }
            cfg.options = Some(format!("-c search_path={s}"));
        }
        cfg.manager = Some(ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        });
        cfg.pool = Some(deadpool_postgres::PoolConfig::new(max_connections.max(2)));
        let pool = cfg
            .create_pool(Some(Runtime::Tokio1), NoTls)
            .map_err(|e| StoreError::Database(e.to_string()))?;
        let db = Postgres { pool };
        db.migrate(schema).await?;
        Ok(db)
    }

    async fn migrate(&self, schema: Option<&str>) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        // Under the lock: `CREATE SCHEMA IF NOT EXISTS` is not safe against itself, and
        // instances starting together on a new schema would fail on its unique name.
        if let Some(s) = schema {
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
                .await?;
        }
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)").await?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await?
            .get(0);
        for (version, sql) in MIGRATIONS {
            if *version > current {
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                    &[version, &crate::time::now_millis()],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Run `op` in a transaction of its own; its result once that committed.
    pub async fn write<T: Send + 'static>(&self, op: Op<T>) -> Result<T> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut conn = PgTx::Tx(tx);
        let result = op(&mut conn).await;
        let PgTx::Tx(tx) = conn else {
            unreachable!("a write runs in a transaction")
        };
        match result {
            Ok(v) => {
                tx.commit().await?;
                Ok(v)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    /// Run `op` on a pooled connection, each statement on its own.
    pub async fn read<T: Send + 'static>(&self, op: Op<T>) -> Result<T> {
        let client = self.pool.get().await?;
        op(&mut PgTx::Client(&client)).await
    }
}

/// A PostgreSQL connection running store operations.
pub enum PgTx<'a> {
    Client(&'a deadpool_postgres::Client),
    Tx(deadpool_postgres::Transaction<'a>),
}

impl ToSql for Cell {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Cell::Null => Ok(IsNull::Yes),
            Cell::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                _ => Err(format!("an integer cannot be bound to a {ty} parameter").into()),
            },
            Cell::Text(s) => match *ty {
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    s.as_str().to_sql(ty, out)
                }
                _ => Err(format!("text cannot be bound to a {ty} parameter").into()),
            },
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT8
                | Type::INT4
                | Type::INT2
                | Type::BOOL
                | Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
                | Type::UNKNOWN
        )
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Cell {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT8 => Cell::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Cell::Int(i32::from_sql(ty, raw)? as i64),
            Type::INT2 => Cell::Int(i16::from_sql(ty, raw)? as i64),
            Type::BOOL => Cell::Int(bool::from_sql(ty, raw)? as i64),
            _ => Cell::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Cell::Null)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::INT8 | Type::INT4 | Type::INT2 | Type::BOOL)
            || <String as FromSql>::accepts(ty)
    }
}

fn params(args: &[Cell]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|c| c as &(dyn ToSql + Sync)).collect()
}

fn rows(rows: Vec<tokio_postgres::Row>) -> Result<Vec<Row>> {
    rows.iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.try_get::<_, Cell>(i))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(Row)
                .map_err(StoreError::from)
        })
        .collect()
}

#[async_trait]
impl Tx for PgTx<'_> {
    async fn execute(&mut self, sql: &str, args: &[Cell]) -> Result<u64> {
        let sql = rewrite(sql, Dialect::Postgres);
        let args = params(args);
        Ok(match self {
            PgTx::Client(c) => {
                let st = c.prepare_cached(&sql).await?;
                c.execute(&st, &args).await?
            }
            PgTx::Tx(t) => {
                let st = t.prepare_cached(&sql).await?;
                t.execute(&st, &args).await?
            }
        })
    }

    async fn query(&mut self, sql: &str, args: &[Cell]) -> Result<Vec<Row>> {
        let sql = rewrite(sql, Dialect::Postgres);
        let args = params(args);
        rows(match self {
            PgTx::Client(c) => {
                let st = c.prepare_cached(&sql).await?;
                c.query(&st, &args).await?
            }
            PgTx::Tx(t) => {
                let st = t.prepare_cached(&sql).await?;
                t.query(&st, &args).await?
            }
        })
    }

    async fn serialize(&mut self, key: i64) -> Result<()> {
        self.execute("SELECT pg_advisory_xact_lock($1)", &[Cell::Int(key)])
            .await
            .map(|_| ())
    }
}
