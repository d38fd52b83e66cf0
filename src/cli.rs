//! Commands: `serve` (the gateway, assembled in [`crate::server`]), `sandbox` (a standalone
//! SATUSEHAT look-alike), `map` and `validate` (the integrator's offline tools, same engine as
//! the server), `facility add` / `facility revoke` / `facility webhook` (API keys and the
//! facility's webhook), `operator add` (API keys), `client add` / `client revoke` (SMART
//! Backend Services pull clients), and `dead-letters` (list, show, replay, discard).

use crate::api;
use crate::config::Config;
use crate::fhir::Severity;
use crate::mapping::{Mappings, Sender};
use crate::profile::ndjson::{Limits, Read, Reader};
use crate::profile::{Context, Validator};
use crate::sandbox;
use crate::store::{Facility, Store, sha256_hex};
use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use serde_json::Value;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "gerbang",
    version,
    about = "FHIR R4 gateway from Indonesian primary care (ILP) to SATUSEHAT"
)]
pub struct Cli {
    /// Configuration file (TOML). GERBANG_* environment variables override it.
    #[arg(long, global = true, env = "GERBANG_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway. With no configuration: SQLite in ./data and the built-in sandbox.
    Serve {
        /// Address to listen on (overrides `listen`).
        #[arg(long)]
        listen: Option<String>,
        /// Data folder (overrides `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// SATUSEHAT host to deliver to, e.g. a `gerbang sandbox` (overrides `upstream`).
        #[arg(long)]
        upstream: Option<String>,
    },
    /// Run the SATUSEHAT sandbox on its own.
    Sandbox {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: String,
    },
    /// Map one record to its transaction Bundle and print it (no server, no network).
    Map {
        record_type: String,
        /// The record (JSON file, or - for standard input).
        file: PathBuf,
        /// SATUSEHAT organization id of the sender.
        #[arg(long, default_value = sandbox::DEMO_ORGANIZATION)]
        org: String,
        /// SATUSEHAT Location id of the sender.
        #[arg(long)]
        location: Option<String>,
        /// The record is in this local format (an adapter of the record type).
        #[arg(long)]
        format: Option<String>,
        /// Print the canonical record the adapter produced instead of the Bundle.
        #[arg(long, requires = "format")]
        canonical: bool,
    },
    /// Validate FHIR R4 JSON (a resource, a Bundle or NDJSON); print an OperationOutcome; exit 1 on errors.
    Validate {
        /// JSON or NDJSON file, or - for standard input.
        file: PathBuf,
        /// Sender's organization id, for the identifier-system rules (any id if omitted).
        #[arg(long)]
        org: Option<String>,
        /// Validate against this profile (canonical URL), e.g. https://fhir.kemkes.go.id/r4/StructureDefinition/Patient
        #[arg(long)]
        profile: Option<String>,
    },
    /// Print SATUSEHAT's rules as gerbang checks them: number, resource, element, severity,
    /// its evidence, and whether it is checked offline.
    Rules {
        /// Only this resource type, e.g. Immunization.
        #[arg(long)]
        resource: Option<String>,
    },
    /// Mappings: `test` runs every example against its golden Bundle and the mapping rules.
    Mappings {
        #[command(subcommand)]
        command: MappingsCommand,
    },
    /// Facilities and their API keys.
    Facility {
        #[command(subcommand)]
        command: FacilityCommand,
    },
    /// Pull clients (SMART Backend Services): register with their public keys, revoke.
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Operators and their API keys (for the /admin endpoints).
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// Records SATUSEHAT refused for good: list, show, replay after a fix, discard.
    #[command(name = "dead-letters")]
    DeadLetters {
        #[command(subcommand)]
        command: DeadLetterCommand,
    },
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Register an operator and print a new API key for the admin endpoints, once.
    Add {
        /// Who the key is for; audit entries name it.
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum DeadLetterCommand {
    /// List dead letters, newest first.
    List {
        #[command(flatten)]
        selection: Selection,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one receipt: raw record, Bundle, SATUSEHAT's OperationOutcome, every attempt.
    Show { receipt: String },
    /// Re-map with the current mappings, validate and queue again: one receipt, or --all
    /// that match the filters.
    Replay {
        #[arg(required_unless_present = "all")]
        receipt: Option<String>,
        #[arg(long, conflicts_with = "receipt")]
        all: bool,
        #[command(flatten)]
        selection: Selection,
    },
    /// Give up on a dead letter for good.
    Discard {
        receipt: String,
        /// Why (kept with the receipt and in the audit).
        #[arg(long)]
        reason: String,
    },
}

/// Which dead letters.
#[derive(clap::Args)]
struct Selection {
    #[arg(long)]
    record_type: Option<String>,
    /// SATUSEHAT organization id.
    #[arg(long)]
    org: Option<String>,
    #[arg(long)]
    facility: Option<String>,
    /// A SATUSEHAT rule number in the upstream OperationOutcome, e.g. 10306.
    #[arg(long)]
    rule: Option<u32>,
    /// Received at or after (RFC 3339, e.g. 2026-11-01T00:00:00+07:00).
    #[arg(long)]
    since: Option<String>,
}

impl Selection {
    fn filter(&self) -> Result<crate::store::ReceiptFilter> {
        let since = match &self.since {
            Some(t) => Some(
                crate::time::parse_instant(t)
                    .with_context(|| format!("--since {t}: not an RFC 3339 time"))?,
            ),
            None => None,
        };
        Ok(crate::store::ReceiptFilter {
            record_type: self.record_type.clone(),
            organization_id: self.org.clone(),
            facility_id: self.facility.clone(),
            rule: self.rule,
            since,
            ..Default::default()
        })
    }
}

#[derive(Subcommand)]
enum MappingsCommand {
    /// Map every example and check it against its golden Bundle, the mapping rules and the
    /// profile engine; exit 1 if any fails.
    Test {
        /// Only this record type.
        record_type: Option<String>,
    },
}

#[derive(Subcommand)]
enum FacilityCommand {
    /// Register a facility (or add a key to one) and print its new API key once.
    Add {
        /// Facility id, e.g. the kode puskesmas.
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// Its SATUSEHAT organization id.
        #[arg(long)]
        org: String,
        /// Its SATUSEHAT Location id (where visits take place).
        #[arg(long)]
        location: String,
    },
    /// A facility's webhook: where gerbang sends what became of its records (signed events).
    Webhook {
        #[command(subcommand)]
        command: WebhookCommand,
    },
    /// Revoke one API key (--key), or every key of a facility (--id); it is refused at once.
    Revoke {
        /// The key to revoke.
        #[arg(long, required_unless_present = "id", conflicts_with = "id")]
        key: Option<String>,
        /// Revoke every key of this facility.
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Subcommand)]
enum WebhookCommand {
    /// Register (or change) a facility's webhook; prints the signing secret once when gerbang
    /// makes it.
    Set {
        /// The facility id.
        #[arg(long)]
        id: String,
        /// Where events are POSTed, e.g. https://simpus.example/gerbang/events
        #[arg(long)]
        url: String,
        /// A Standard Webhooks secret (whsec_…) the facility system already has; made when absent.
        #[arg(long)]
        secret: Option<String>,
    },
    /// Show where delivery to a facility's webhook stands (or every webhook without --id).
    Show {
        #[arg(long)]
        id: Option<String>,
    },
    /// Remove a facility's webhook (its events stay readable at GET /events).
    Remove {
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a pull client (or replace its keys, scopes and organization).
    Add {
        /// Its client_id: the `iss` and `sub` of its client assertions.
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// A file with its public keys as a JWK Set: {"keys": [...]}.
        #[arg(long)]
        jwks: PathBuf,
        /// The scopes it may be granted, space separated, e.g. "system/*.read" or
        /// "gerbang.admin" for the /admin endpoints.
        #[arg(long)]
        scope: String,
        /// Limit it to this SATUSEHAT organization's data.
        #[arg(long)]
        org: Option<String>,
    },
    /// Revoke a client: its assertions are refused and its tokens stop working at once.
    Revoke {
        #[arg(long)]
        id: String,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Map {
            record_type,
            file,
            org,
            location,
            format,
            canonical,
        } => map(
            &cli.config,
            &record_type,
            &file,
            &org,
            location,
            format.as_deref(),
            canonical,
        ),
        Command::Validate { file, org, profile } => {
            validate(&cli.config, &file, org.as_deref(), profile.as_deref())
        }
        Command::Mappings {
            command: MappingsCommand::Test { record_type },
        } => mappings_test(&cli.config, record_type.as_deref()),
        Command::Rules { resource } => rules(&cli.config, resource.as_deref()),
        command => runtime()
            .and_then(|rt| rt.block_on(run_async(cli.config, command)))
            .map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

async fn run_async(config: Option<PathBuf>, command: Command) -> Result<()> {
    let mut cfg = Config::load(config.as_deref())?;
    match command {
        Command::Serve {
            listen,
            data_dir,
            upstream,
        } => {
            if let Some(l) = listen {
                cfg.listen = l;
            }
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            if let Some(u) = upstream {
                cfg.upstream.base_url = Some(u);
            }
            crate::server::serve(cfg).await
        }
        Command::Sandbox { listen } => crate::server::run_sandbox(cfg, &listen).await,
        Command::Facility {
            command:
                FacilityCommand::Add {
                    id,
                    name,
                    org,
                    location,
                },
        } => {
            let facility = Facility {
                id,
                name,
                organization_id: org,
                location_id: location,
            };
            issue_api_key(&cfg, async |store, hash, now| {
                store.add_facility_key(&facility, hash, now).await
            })
            .await
        }
        Command::Operator {
            command: OperatorCommand::Add { name },
        } => {
            issue_api_key(&cfg, async |store, hash, now| {
                store.add_operator_key(&name, hash, now).await
            })
            .await
        }
        Command::DeadLetters { command } => dead_letters(cfg, command).await,
        Command::Facility {
            command: FacilityCommand::Revoke { key, id },
        } => revoke_facility(cfg, key, id).await,
        Command::Facility {
            command: FacilityCommand::Webhook { command },
        } => webhooks(cfg, command).await,
        Command::Client { command } => clients(cfg, command).await,
        Command::Map { .. }
        | Command::Validate { .. }
        | Command::Mappings { .. }
        | Command::Rules { .. } => {
            unreachable!("handled without a runtime")
        }
    }
}

/// Issue a new API key (`facility add`, `operator add`): `keep` stores its hash, then the key
/// is printed, once.
async fn issue_api_key(
    cfg: &Config,
    keep: impl AsyncFnOnce(&Store, &str, i64) -> crate::store::Result<()>,
) -> Result<()> {
    let store = cfg.open_store().await?;
    let key = api::auth::new_api_key();
    keep(
        store.as_ref(),
        &sha256_hex(key.as_bytes()),
        crate::time::now_millis(),
    )
    .await?;
    println!("{key}");
    eprintln!("This key is shown once; gerbang stores only its hash.");
    Ok(())
}

async fn dead_letters(cfg: Config, command: DeadLetterCommand) -> Result<()> {
    let store = cfg.open_store().await?;
    let mappings = Mappings::load(&cfg.mappings_dir)
        .with_context(|| format!("loading mappings from {}", cfg.mappings_dir.display()))?;
    let validator = Validator::load(&cfg.profiles_dir)?;
    let letters = crate::dead_letters::DeadLetters {
        store: store.as_ref(),
        mappings: &mappings,
        validator: &validator,
    };
    let actor = cli_actor();
    match command {
        DeadLetterCommand::List { selection, limit } => {
            let found = letters.list(&selection.filter()?, limit).await?;
            println!(
                "{:<36}  {:<25}  {:<24}  {:<12}  {:>8}  upstream rules / last error",
                "receipt", "received", "record type", "organization", "attempts"
            );
            for r in &found {
                let rules = r
                    .upstream_outcome
                    .as_ref()
                    .map(|o| crate::fhir::Outcome::from_operation_outcome(o).rule_numbers())
                    .unwrap_or_default();
                let why = if rules.is_empty() {
                    r.last_error.clone().unwrap_or_default()
                } else {
                    rules
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                };
                println!(
                    "{:<36}  {:<25}  {:<24}  {:<12}  {:>8}  {}",
                    r.id,
                    crate::time::millis_to_utc(r.created_at),
                    r.record_type,
                    r.organization_id,
                    r.attempts,
                    why.chars().take(80).collect::<String>()
                );
            }
            eprintln!("{} dead letter(s)", found.len());
            Ok(())
        }
        DeadLetterCommand::Show { receipt } => {
            let i = letters.inspect(&receipt).await?;
            println!("{}", serde_json::to_string_pretty(&i)?);
            Ok(())
        }
        DeadLetterCommand::Replay {
            receipt: Some(id), ..
        } => match letters.replay(&id, &actor).await {
            Ok(r) => {
                println!("{} queued again", r.id);
                Ok(())
            }
            Err(crate::dead_letters::DeadLetterError::StillInvalid(outcome)) => {
                for issue in &outcome.issues {
                    eprintln!("{issue}");
                }
                anyhow::bail!("{id} was not replayed: the current mappings still refuse it")
            }
            Err(e) => Err(e.into()),
        },
        DeadLetterCommand::Replay {
            receipt: None,
            selection,
            ..
        } => {
            let done = letters
                .replay_matching(&selection.filter()?, &actor)
                .await?;
            for id in &done.replayed {
                println!("{id} queued again");
            }
            for f in &done.failed {
                eprintln!("{} not replayed: {}", f.receipt, f.reason);
            }
            eprintln!(
                "{} replayed, {} not replayed",
                done.replayed.len(),
                done.failed.len()
            );
            if done.failed.is_empty() {
                Ok(())
            } else {
                anyhow::bail!("{} dead letter(s) could not be replayed", done.failed.len())
            }
        }
        DeadLetterCommand::Discard { receipt, reason } => {
            letters.discard(&receipt, &reason, &actor).await?;
            println!("{receipt} discarded");
            Ok(())
        }
    }
}

async fn webhooks(cfg: Config, command: WebhookCommand) -> Result<()> {
    use crate::webhooks::registry;
    let store = cfg.open_store().await?;
    let actor = cli_actor();
    match command {
        WebhookCommand::Set { id, url, secret } => {
            let done = registry::register(&store, &id, &url, secret.as_deref(), &actor).await?;
            println!("webhook of facility {id}: {}", done.webhook.url);
            if let Some(secret) = done.new_secret {
                println!("{secret}");
                eprintln!(
                    "This signing secret is shown once; give it to the facility system to verify webhook-signature."
                );
            }
        }
        WebhookCommand::Show { id } => {
            let all = match id {
                Some(id) => vec![
                    store
                        .webhook(&id)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("facility {id} has no webhook"))?,
                ],
                None => store.webhooks().await?,
            };
            for w in &all {
                println!("{}", serde_json::to_string_pretty(&registry::view(w))?);
            }
        }
        WebhookCommand::Remove { id } => {
            registry::remove(&store, &id, &actor).await?;
            println!("webhook of facility {id} removed");
        }
    }
    Ok(())
}

/// The audit actor of a command run by hand.
fn cli_actor() -> String {
    format!(
        "operator:{}@cli",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

async fn revoke_facility(cfg: Config, key: Option<String>, id: Option<String>) -> Result<()> {
    let store = cfg.open_store().await?;
    let now = crate::time::now_millis();
    match (key, id) {
        (Some(key), _) => match store
            .revoke_facility_key(&sha256_hex(key.trim().as_bytes()), now)
            .await?
        {
            Some(facility) => println!("revoked a key of facility {facility}"),
            None => anyhow::bail!("no valid key matches (unknown, or already revoked)"),
        },
        (None, Some(id)) => {
            let n = store.revoke_facility_keys(&id, now).await?;
            if n == 0 && store.facility(&id).await?.is_none() {
                anyhow::bail!("no facility {id}");
            }
            println!("revoked {n} key(s) of facility {id}");
        }
        (None, None) => unreachable!("clap requires --key or --id"),
    }
    Ok(())
}

async fn clients(cfg: Config, command: ClientCommand) -> Result<()> {
    use crate::api::smart;
    match command {
        ClientCommand::Add {
            id,
            name,
            jwks,
            scope,
            org,
        } => {
            let keys = read_json(&jwks)?;
            let set = smart::check_jwks(&keys)
                .map_err(|e| anyhow::anyhow!("--jwks {}: {e}", jwks.display()))?;
            let scopes = smart::parse_scope_list(&scope);
            if scopes.is_empty() {
                anyhow::bail!("--scope: give at least one scope, e.g. \"system/*.read\"");
            }
            for s in &scopes {
                smart::check_registrable(s).map_err(|e| anyhow::anyhow!("--scope {e}"))?;
            }
            if org.is_some() && scopes.iter().any(|s| s == smart::ADMIN_SCOPE) {
                anyhow::bail!(
                    "--org with {}: the admin endpoints see every organization, so an admin client cannot be limited to one",
                    smart::ADMIN_SCOPE
                );
            }
            let store = cfg.open_store().await?;
            store
                .add_smart_client(
                    &crate::store::SmartClient {
                        id: id.clone(),
                        name,
                        jwks: keys,
                        scopes: scopes.clone(),
                        organization_id: org.clone(),
                        revoked_at: None,
                    },
                    crate::time::now_millis(),
                )
                .await?;
            println!(
                "client {id} registered: {} key(s), scopes {}{}",
                set.keys.len(),
                scopes.join(" "),
                org.map(|o| format!(", organization {o} only"))
                    .unwrap_or_default()
            );
            Ok(())
        }
        ClientCommand::Revoke { id } => {
            let store = cfg.open_store().await?;
            if !store
                .revoke_smart_client(&id, crate::time::now_millis())
                .await?
            {
                anyhow::bail!("no client {id} to revoke (unknown, or already revoked)");
            }
            println!("client {id} revoked; its tokens no longer work");
            Ok(())
        }
    }
}

fn read_json(file: &Path) -> Result<Value> {
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))
}

fn map(
    config: &Option<PathBuf>,
    record_type: &str,
    file: &Path,
    org: &str,
    location: Option<String>,
    format: Option<&str>,
    canonical_only: bool,
) -> Result<ExitCode> {
    let cfg = Config::load(config.as_deref())?;
    let mappings = Mappings::load(&cfg.mappings_dir)
        .with_context(|| format!("loading mappings from {}", cfg.mappings_dir.display()))?;
    let record = read_json(file)?;
    let location = location.unwrap_or_else(sandbox::demo_location);
    let sender = Sender {
        organization_id: org,
        location_id: &location,
    };
    let result = if canonical_only {
        mappings.to_canonical(record_type, format, &record, &sender)
    } else {
        mappings
            .map_record_as(record_type, format, &record, &sender)
            .map(|m| m.bundle)
    };
    match result {
        Ok(out) => {
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(outcome) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&outcome.to_operation_outcome())?
            );
            for issue in &outcome.issues {
                eprintln!("{issue}");
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// `gerbang rules`: the rules page.
fn rules(config: &Option<PathBuf>, resource: Option<&str>) -> Result<ExitCode> {
    let cfg = Config::load(config.as_deref())?;
    let validator = Validator::load(&cfg.profiles_dir)?;
    print!(
        "{}",
        crate::profile::rules_page::render(validator.rules(), resource)
    );
    Ok(ExitCode::SUCCESS)
}

fn validate(
    config: &Option<PathBuf>,
    file: &Path,
    org: Option<&str>,
    profile: Option<&str>,
) -> Result<ExitCode> {
    let cfg = Config::load(config.as_deref())?;
    let validator = Validator::load(&cfg.profiles_dir)?;
    let ctx = Context {
        organization_id: org,
        now: chrono::Utc::now(),
    };
    // Read in pieces: NDJSON is validated line by line as it comes, holding one line (a file
    // or a pipe of any size); one JSON document is held whole and validated as before.
    let limits = Limits {
        line: cfg.ingest.max_body_bytes,
        line_setting: "ingest.max_body_bytes",
        ..Limits::NONE
    };
    let mut reader = Reader::new(&validator, ctx, profile, limits);
    let mut input: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let f =
            std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
        Box::new(std::io::BufReader::with_capacity(64 * 1024, f))
    };
    let cannot_read = || format!("cannot read {}", file.display());
    loop {
        let piece = match input.fill_buf() {
            Ok([]) => break,
            Ok(piece) => piece,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(anyhow::Error::new(e).context(cannot_read())),
        };
        let n = piece.len();
        // Without a whole or total limit, nothing is too large.
        let _ = reader.push(piece);
        input.consume(n);
    }
    let outcome = match reader.finish() {
        Read::Ndjson(outcome) => outcome,
        Read::Whole(bytes) => {
            let text = String::from_utf8(bytes).with_context(cannot_read)?;
            validator.validate_text(&text, &ctx, profile)
        }
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&outcome.to_operation_outcome())?
    );
    for issue in &outcome.issues {
        eprintln!("{issue}");
    }
    let errors = outcome.error_count();
    let warnings = outcome
        .issues
        .iter()
        .filter(|i| i.severity == Severity::Warning)
        .count();
    let notes = outcome.issues.len() - errors - warnings;
    eprintln!("{errors} error(s), {warnings} warning(s), {notes} note(s)");
    Ok(if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn mappings_test(config: &Option<PathBuf>, only: Option<&str>) -> Result<ExitCode> {
    let cfg = Config::load(config.as_deref())?;
    let mappings = Mappings::load(&cfg.mappings_dir)
        .with_context(|| format!("loading mappings from {}", cfg.mappings_dir.display()))?;
    if let Some(rt) = only {
        if mappings.get(rt).is_none() {
            anyhow::bail!("no record type `{rt}` in {}", cfg.mappings_dir.display());
        }
    }
    let validator = Validator::load(&cfg.profiles_dir)?;
    let reports = crate::mapping::harness::run(&mappings, &validator, only);
    let failed = reports.iter().filter(|r| !r.passed()).count();
    for r in &reports {
        if r.passed() {
            println!("PASS {}/{}", r.record_type, r.name);
        } else {
            println!("FAIL {}/{}  ({})", r.record_type, r.name, r.input.display());
            for p in &r.problems {
                for (i, line) in p.lines().enumerate() {
                    println!("{}{line}", if i == 0 { "  - " } else { "    " });
                }
            }
        }
    }
    let (examples, folders): (Vec<_>, Vec<_>) = reports.iter().partition(|r| r.is_example());
    let examples_failed = examples.iter().filter(|r| !r.passed()).count();
    print!("{} example(s), {examples_failed} failed", examples.len());
    if !folders.is_empty() {
        print!("; {} folder(s) with too few examples", folders.len());
    }
    println!();
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
