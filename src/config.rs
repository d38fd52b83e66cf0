//! Configuration: one TOML file (optional) plus `GERBANG_*` environment variables
//! (`GERBANG_LISTEN`, `GERBANG_DATA_DIR`, nested keys with `__`, e.g.
//! `GERBANG_UPSTREAM__ENVIRONMENT=staging`). With neither, gerbang runs the whole path on
//! SQLite in `./data` against its built-in SATUSEHAT sandbox.

use crate::deliver::client::Credentials;
use crate::deliver::policy::RetryPolicy;
use crate::sandbox::SandboxConfig;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the gateway's HTTP server.
    pub listen: String,
    /// Where the SQLite database and the demo facility key live.
    pub data_dir: PathBuf,
    pub mappings_dir: PathBuf,
    pub profiles_dir: PathBuf,
    pub upstream: UpstreamConfig,
    /// SATUSEHAT credentials, one set per organization id: `[organizations."1000000001"]`.
    pub organizations: HashMap<String, Credentials>,
    pub store: StoreConfig,
    pub deliver: DeliverConfig,
    pub ingest: IngestConfig,
    /// Access tokens for pull clients (SMART Backend Services): `[auth]`.
    pub auth: crate::api::auth::AuthConfig,
    /// JSON depth and per-credential rate limits.
    pub limits: crate::api::limits::LimitsConfig,
    /// Bulk Data export files: how long they live, where they go: `[export]`.
    pub export: crate::pull::export::ExportConfig,
    pub webhooks: crate::webhooks::dispatch::WebhookPolicy,
    pub log: LogConfig,
    /// The built-in sandbox, used when `upstream.environment = "sandbox"`.
    pub sandbox: SandboxConfig,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// gerbang's own SATUSEHAT look-alike, started in-process.
    Sandbox,
    Dev,
    Staging,
    Production,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    pub environment: Environment,
    /// Overrides the environment's host, e.g. an external `gerbang sandbox`.
    pub base_url: Option<String>,
    pub timeout_secs: u64,
}

impl UpstreamConfig {
    /// The SATUSEHAT host to use (satusehat.md §1.1), or `None` for the built-in sandbox.
    pub fn base_url(&self) -> Option<String> {
        if let Some(url) = &self.base_url {
            return Some(url.clone());
        }
        match self.environment {
            Environment::Sandbox => None,
            Environment::Dev => Some("https://api-satusehat-dev.dto.kemkes.go.id".into()),
            Environment::Staging => Some("https://api-satusehat-stg.dto.kemkes.go.id".into()),
            Environment::Production => Some("https://api-satusehat.kemkes.go.id".into()),
        }
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            environment: Environment::Sandbox,
            base_url: None,
            timeout_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// One gateway, embedded database in `data_dir` (the default).
    Sqlite,
    /// Several gateways sharing one PostgreSQL database.
    Postgres,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    pub backend: Backend,
    /// e.g. `postgres://gerbang@db.dinkes.local/gerbang` (backend = "postgres").
    pub postgres_url: Option<String>,
    /// PostgreSQL schema to use (created if missing); the user's default when absent.
    pub postgres_schema: Option<String>,
    pub max_connections: usize,
    /// Delete the raw record and Bundle of delivered or discarded records after this many
    /// seconds (the receipt stays); 0 keeps them forever.
    pub retention_secs: u64,
    /// How often the retention task looks for payloads to prune, in seconds (at least 1).
    pub prune_interval_secs: u64,
    /// SQLite: new records are refused (503) while less than this is free on the data disk;
    /// deliveries go on. 0: no watermark.
    pub min_free_mb: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: Backend::Sqlite,
            postgres_url: None,
            postgres_schema: None,
            max_connections: 16,
            retention_secs: 90 * 24 * 3600,
            prune_interval_secs: 3600,
            min_free_mb: 64,
        }
    }
}

/// The delivery lease unless configured (`deliver.lease_secs = 0`).
pub const DEFAULT_LEASE_SECS: u64 = 30;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverConfig {
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Deliveries in flight at once for one organization.
    pub per_organization: usize,
    pub breaker: crate::deliver::breaker::BreakerPolicy,
    #[serde(skip_serializing)]
    pub retry: RetryPolicy,
    /// How long a forwarder holds a record it is delivering, in seconds. When an instance
    /// dies, its records wait this long before another instance takes them over, so it must
    /// outlast the slowest attempt (token, NIK look-ups and the transaction, each up to
    /// `upstream.timeout_secs`). 0 (the default) derives it: `upstream.timeout_secs * 5 + 30`.
    pub lease_secs: u64,
}

impl Default for DeliverConfig {
    fn default() -> Self {
        DeliverConfig {
            concurrency: 8,
            per_organization: 4,
            breaker: Default::default(),
            retry: RetryPolicy::default(),
            lease_secs: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest accepted request body of one record or one FHIR Bundle, in bytes.
    pub max_body_bytes: usize,
    /// Most records (NDJSON lines, or Bundles of a FHIR `batch`) one batch request may carry.
    pub max_batch_records: usize,
    /// Largest accepted body of a batch, in bytes: a day of a posyandu is well under 1 MiB.
    pub max_batch_bytes: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_body_bytes: 1024 * 1024,
            max_batch_records: 1000,
            max_batch_bytes: 16 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` for people, `json` for log shippers.
    pub format: String,
    /// A tracing filter, e.g. `info` or `gerbang=debug,actix_web=info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("data"),
            mappings_dir: default_dir("mappings"),
            profiles_dir: default_dir("profiles"),
            upstream: UpstreamConfig::default(),
            organizations: HashMap::new(),
            store: StoreConfig::default(),
            deliver: DeliverConfig::default(),
            ingest: IngestConfig::default(),
            auth: Default::default(),
            limits: Default::default(),
            export: Default::default(),
            webhooks: Default::default(),
            log: LogConfig::default(),
            sandbox: SandboxConfig::default(),
        }
    }
}

/// `mappings/` and `profiles/` next to where gerbang runs, or in its source tree.
fn default_dir(name: &str) -> PathBuf {
    let local = PathBuf::from(name);
    if local.is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

impl Config {
    /// Defaults, then the TOML file (if given), then `GERBANG_*` variables.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.is_file() {
                anyhow::bail!("configuration file {} does not exist", f.display());
            }
            fig = fig.merge(Toml::file(f));
        }
        // GERBANG_CONFIG names the file itself (see the CLI), it is not a setting.
        fig = fig.merge(Env::prefixed("GERBANG_").ignore(&["CONFIG"]).split("__"));
        let cfg: Config = fig
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Settings that parse but cannot work together.
    fn check(&self) -> anyhow::Result<()> {
        let lease = self.deliver.lease_secs;
        if lease != 0 && lease < 3 {
            anyhow::bail!(
                "invalid configuration: deliver.lease_secs ({lease}) must be at least 3: a lease is renewed every third of it \
                 while an attempt runs (0 takes the default, {DEFAULT_LEASE_SECS})"
            );
        }
        if self.store.prune_interval_secs == 0 {
            anyhow::bail!(
                "invalid configuration: store.prune_interval_secs must be at least 1 \
                 (to keep payloads forever, set store.retention_secs = 0)"
            );
        }
        if self.export.ttl_secs == 0 {
            anyhow::bail!("invalid configuration: export.ttl_secs must be at least 1");
        }
        let limits = &self.limits;
        if limits.body_timeout_secs == 0 || limits.body_deadline_secs < limits.body_timeout_secs {
            anyhow::bail!(
                "invalid configuration: limits.body_timeout_secs ({}) must be at least 1, and limits.body_deadline_secs ({}) at least as long: \
                 the first is how long a body may stall, the second how long it may take in all",
                limits.body_timeout_secs,
                limits.body_deadline_secs
            );
        }
        if limits.max_uri_bytes < 1024 {
            anyhow::bail!(
                "invalid configuration: limits.max_uri_bytes ({}) must be at least 1024: gerbang's own links (export files, feed pages) must fit",
                limits.max_uri_bytes
            );
        }
        if self.auth.token_ttl_secs == 0 {
            anyhow::bail!("invalid configuration: auth.token_ttl_secs must be at least 1");
        }
        if let Some(url) = &self.auth.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            anyhow::bail!(
                "invalid configuration: auth.public_url ({url}) must be an http(s) URL such as https://gerbang.dinkes.example"
            );
        }
        Ok(())
    }

    /// How long a forwarder's lease on a record lasts (see `deliver.lease_secs`).
    /// How long a delivery lease lasts without renewal: how soon a killed instance's work
    /// moves to another. The forwarder renews it every third of it while an attempt runs, so
    /// it need not outlast the slowest attempt.
    pub fn delivery_lease(&self) -> std::time::Duration {
        std::time::Duration::from_secs(match self.deliver.lease_secs {
            0 => DEFAULT_LEASE_SECS,
            n => n,
        })
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("gerbang.sqlite3")
    }

    /// Open the configured store.
    pub async fn open_store(&self) -> anyhow::Result<std::sync::Arc<crate::store::Store>> {
        Ok(std::sync::Arc::new(match self.store.backend {
            Backend::Sqlite => crate::store::Store::sqlite(&self.database_path())?
                .keep_free(self.store.min_free_mb * 1024 * 1024),
            Backend::Postgres => {
                let url = self.store.postgres_url.as_deref().ok_or_else(|| {
                    anyhow::anyhow!("store.backend = \"postgres\" needs store.postgres_url")
                })?;
                crate::store::Store::postgres(
                    url,
                    self.store.postgres_schema.as_deref(),
                    self.store.max_connections,
                )
                .await
                .map_err(|e| anyhow::anyhow!("cannot open the PostgreSQL store: {e}"))?
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::Config;
    use std::time::Duration;

    fn load(toml: &str) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gerbang.toml");
        std::fs::write(&file, toml).unwrap();
        Config::load(Some(&file))
    }

    #[test]
    fn the_lease_is_short_and_renewed() {
        // Renewed by the heartbeat, the lease need not outlast a slow upstream: a killed
        // instance's work moves after one lease.
        let derived = load("[upstream]\ntimeout_secs = 60\n").unwrap();
        assert_eq!(derived.delivery_lease(), Duration::from_secs(30));
        let short = load("[deliver]\nlease_secs = 3\n").unwrap();
        assert_eq!(short.delivery_lease(), Duration::from_secs(3));
        let err = load("[deliver]\nlease_secs = 2\n").unwrap_err().to_string();
        assert!(err.contains("deliver.lease_secs (2)"), "{err}");
    }

    #[test]
    fn body_time_limits_must_make_sense() {
        let limits = load("").unwrap().limits;
        assert_eq!(
            (limits.body_timeout_secs, limits.body_deadline_secs),
            (30, 300)
        );
        let err = load("[limits]\nbody_timeout_secs = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("limits.body_timeout_secs (0)"), "{err}");
        let err = load("[limits]\nbody_timeout_secs = 60\nbody_deadline_secs = 10\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("body_deadline_secs (10)"), "{err}");
        let err = load("[limits]\nmax_uri_bytes = 10\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_uri_bytes (10)"), "{err}");
    }

    #[test]
    fn pruning_needs_an_interval() {
        assert_eq!(load("").unwrap().store.prune_interval_secs, 3600);
        let err = load("[store]\nprune_interval_secs = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("prune_interval_secs"), "{err}");
    }
}
