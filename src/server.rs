//! Assembling the gateway: `gerbang serve` opens the store, starts the built-in sandbox when no
//! upstream is configured, and runs the forwarder, the webhook dispatcher, the export worker,
//! retention and the HTTP API until a shutdown signal; `gerbang sandbox` runs the sandbox
//! alone.

use crate::api::{self, AppState};
use crate::config::Config;
use crate::deliver::Forwarder;
use crate::deliver::client::SatusehatClient;
use crate::mapping::Mappings;
use crate::profile::Validator;
use crate::sandbox::{self, Sandbox};
use crate::store::{Facility, Store, sha256_hex};
use crate::webhooks::dispatch::Dispatcher;
use anyhow::{Context as _, Result};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run_sandbox(cfg: Config, listen: &str) -> Result<()> {
    crate::logging::init(&cfg.log.format, &cfg.log.level);
    let validator = Arc::new(Validator::load(&cfg.profiles_dir)?);
    crate::allocator::give_back_freed_memory();
    let listener =
        TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let server = sandbox::server(Sandbox::new(cfg.sandbox.clone(), validator), listener)?;
    println!("SATUSEHAT sandbox listening on http://{addr}");
    let handle = server.handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        handle.stop(true).await;
    });
    server.await?;
    Ok(())
}

pub async fn serve(mut cfg: Config) -> Result<()> {
    crate::logging::init(&cfg.log.format, &cfg.log.level);
    // Mappings and profiles compile side by side: start-up is the longer of the two.
    let (mappings, mappings_ms, validator, profiles_ms) = std::thread::scope(|scope| {
        let mappings = scope.spawn(|| {
            let t0 = Instant::now();
            (Mappings::load(&cfg.mappings_dir), t0.elapsed())
        });
        let t0 = Instant::now();
        let validator = Validator::load(&cfg.profiles_dir);
        let profiles_ms = t0.elapsed().as_millis() as u64;
        let (mappings, t_map) = mappings
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let mappings = mappings
            .with_context(|| format!("loading mappings from {}", cfg.mappings_dir.display()))?;
        anyhow::Ok((mappings, t_map.as_millis() as u64, validator?, profiles_ms))
    })?;
    let (mappings, validator) = (Arc::new(mappings), Arc::new(validator));
    crate::allocator::give_back_freed_memory();
    tracing::info!(
        record_types = mappings.record_types().count(),
        rules = validator.rule_count(),
        mappings_ms,
        profiles_ms,
        "mappings and profiles compiled"
    );

    let store: Arc<Store> = cfg.open_store().await?;
    // One process owns a SQLite file: leases left by a crash can be taken back at once. With
    // several gateways on PostgreSQL they expire instead.
    if store.exclusive() {
        let released = store.release_all_leases().await?;
        if released > 0 {
            tracing::info!(released, "resuming deliveries interrupted by the last stop");
        }
    }

    // Upstream: SATUSEHAT, or the built-in sandbox.
    let mut sandbox_server = None;
    // The zero-configuration sandbox setup also opens the console to a demo operator.
    let mut demo_operator_key = None;
    let base_url = match cfg.upstream.base_url() {
        Some(url) => url,
        None => {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            let server = sandbox::server(
                Sandbox::new(cfg.sandbox.clone(), validator.clone()),
                listener,
            )?;
            sandbox_server = Some(server.handle());
            tokio::spawn(server);
            for c in &cfg.sandbox.clients {
                cfg.organizations
                    .entry(c.organization_id.clone())
                    .or_insert(crate::deliver::client::Credentials {
                        client_id: c.client_id.clone(),
                        client_secret: c.client_secret.clone(),
                    });
            }
            let demo_key = ensure_demo_facility(store.as_ref(), &cfg.data_dir).await?;
            demo_operator_key = Some(ensure_demo_operator(store.as_ref(), &cfg.data_dir).await?);
            println!("built-in SATUSEHAT sandbox on http://{addr}");
            println!("demo facility API key: {demo_key}");
            format!("http://{addr}")
        }
    };
    tracing::info!(upstream = %base_url, "delivering to");

    let client = Arc::new(SatusehatClient::new(
        &base_url,
        cfg.organizations.clone(),
        Duration::from_secs(cfg.upstream.timeout_secs),
    )?);
    let wake = Arc::new(tokio::sync::Notify::new());
    // Names this process: lease owner of deliveries, webhooks and exports, and its readiness
    // probe row.
    let instance = format!("{}-{}", hostname(), uuid::Uuid::new_v4().simple());
    let breakers = Arc::new(crate::deliver::breaker::FlowControl::new(
        cfg.deliver.breaker.clone(),
        cfg.deliver.per_organization,
    ));
    let forwarder = Arc::new(Forwarder {
        store: store.clone(),
        client,
        policy: cfg.deliver.retry.clone(),
        owner: instance.clone(),
        concurrency: cfg.deliver.concurrency.max(1),
        lease: cfg.delivery_lease(),
        wake: wake.clone(),
        flow: breakers.clone(),
        in_flight: Default::default(),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let forwarder_task = tokio::spawn(forwarder.run(stop_rx.clone()));
    // Facilities' webhooks: their events, in order, signed.
    let dispatcher = Arc::new(Dispatcher::new(
        store.clone(),
        cfg.webhooks.clone(),
        instance.clone(),
    )?);
    let webhook_task = tokio::spawn(dispatcher.run(stop_rx.clone()));
    // Bulk Data export: one worker per process runs the jobs and deletes expired files;
    // stops with the forwarder (a running job is handed back for the next start).
    let exports = Arc::new(crate::pull::export::Exports::new(
        &cfg.export,
        &cfg.data_dir,
        instance.clone(),
    ));
    let export_task = tokio::spawn(exports.clone().run(store.clone(), stop_rx.clone()));
    // Retention: prune delivered payloads in the background; stops with the forwarder.
    let retention_task = crate::store::retention::Retention::from_secs(
        cfg.store.retention_secs,
        cfg.store.prune_interval_secs,
    )
    .map(|r| tokio::spawn(r.run(store.clone(), stop_rx)));

    let limits = Arc::new(api::limits::Limits::new(&cfg.limits));
    let metrics = metrics_recorder()?;
    let state = actix_web::web::Data::new(AppState {
        mappings,
        validator,
        store,
        wake,
        max_body_bytes: cfg.ingest.max_body_bytes,
        batch: api::batch::BatchLimits {
            max_records: cfg.ingest.max_batch_records,
            max_bytes: cfg.ingest.max_batch_bytes,
        },
        auth: cfg.auth.clone(),
        limits: limits.clone(),
        metrics: Some(metrics),
        exports,
        instance,
        explained: Default::default(),
        console: crate::console::ConsoleState {
            sign_in: Default::default(),
            breakers: Some(breakers),
            flash: Default::default(),
        },
    });
    // Housekeeping of in-memory state: histogram windows, idle rate-limit buckets.
    {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                if let Some(m) = &state.metrics {
                    m.run_upkeep();
                }
                state.limits.forget_idle();
                state.console.sign_in.forget_idle();
            }
        });
    }
    let listener = TcpListener::bind(&cfg.listen)
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let server = http_server(state, listener)?;
    if let Some(key) = demo_operator_key {
        println!("demo operator key: {key}");
        println!("console: http://{addr}/console");
    }
    println!("gerbang listening on http://{addr}");
    tracing::info!(listen = %addr, "gerbang ready");

    let handle = server.handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        handle.stop(true).await;
    });
    server.await?;
    let _ = stop_tx.send(true);
    let _ = forwarder_task.await;
    let _ = webhook_task.await;
    let _ = export_task.await;
    if let Some(t) = retention_task {
        let _ = t.await;
    }
    if let Some(h) = sandbox_server {
        h.stop(true).await;
    }
    Ok(())
}

/// The gateway's HTTP server: actix-web's `HttpServer`, assembled by hand from the same
/// parts (actix-server accepting, actix-http's HTTP/1 service, the App) for one reason:
/// `HttpServer` takes the TCP connection as it is, and each connection must be wrapped in
/// [`api::wire::Answering`] so that the parse errors actix-http answers itself, with an empty
/// body, get an OperationOutcome. The settings are `HttpServer`'s defaults, written out.
fn http_server(
    state: actix_web::web::Data<AppState>,
    listener: TcpListener,
) -> Result<actix_web::dev::Server> {
    use actix_service::{ServiceFactoryExt as _, fn_service, map_config};
    let addr = listener.local_addr()?;
    let builder = actix_web::dev::Server::build();
    // On a graceful stop, idle keep-alive connections are told to close at once (as
    // `HttpServer` does), so stopping does not wait out their keep-alive.
    let stopping = builder.graceful_shutdown_signal();
    let server = builder
        .disable_signals()
        .listen("gerbang", listener, move || {
            let app = actix_web::App::new()
                .wrap(actix_web::middleware::from_fn(api::body::middleware))
                .wrap(actix_web::middleware::from_fn(api::limits::middleware))
                .wrap(actix_web::middleware::from_fn(api::request_id::middleware))
                .configure(api::configure(state.clone()))
                .configure(crate::console::configure);
            let stopping = stopping.clone();
            let http = actix_http::HttpService::build()
                .graceful_shutdown_signal(move || {
                    let stopping = stopping.clone();
                    async move { stopping.notified().await }
                })
                .keep_alive(Duration::from_secs(5))
                // A request head (request line and headers) must be complete within 5 s of
                // the connection's first byte, or actix answers 408 and closes: the
                // stalled-headers half of a slow client. The stalled-body half is
                // `[limits] body_timeout_secs` ([`api::body`]).
                .client_request_timeout(Duration::from_secs(api::wire::HEAD_TIMEOUT_SECS))
                .client_disconnect_timeout(Duration::from_secs(1))
                .local_addr(addr)
                .h1(map_config(app, move |_| {
                    // What `HttpServer` gives the App: plain HTTP, the listener's address
                    // as the host of requests that name none.
                    actix_web::dev::AppConfig::__priv_test_new(false, addr.to_string(), addr)
                })
                .map_err(|e: actix_web::Error| e.error_response()));
            fn_service(|io: actix_web::rt::net::TcpStream| async move {
                let peer = io.peer_addr().ok();
                Ok::<_, actix_http::error::DispatchError>((api::wire::Answering::new(io), peer))
            })
            .and_then(http)
        })?
        .run();
    Ok(server)
}

/// The process-wide metrics recorder, rendered at `/metrics`. Delivery latency is a
/// histogram with buckets from 50 ms (loopback) to 2 minutes (a slow upstream with retries
/// inside one attempt), so alerting can use quantiles across instances.
fn metrics_recorder() -> Result<metrics_exporter_prometheus::PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("gerbang_delivery_latency_seconds".into()),
            &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0],
        )?
        .install_recorder()?)
}

/// The demo facility of the zero-configuration setup, and its key (kept in the data folder
/// so it stays the same across restarts).
async fn ensure_demo_facility(store: &Store, data_dir: &Path) -> Result<String> {
    let key = demo_key(&data_dir.join("demo-facility.key"))?;
    let facility = Facility {
        id: "demo-posyandu".into(),
        name: "Posyandu Melati 07 (demo)".into(),
        organization_id: sandbox::DEMO_ORGANIZATION.into(),
        location_id: sandbox::demo_location(),
    };
    store
        .add_facility_key(
            &facility,
            &sha256_hex(key.as_bytes()),
            crate::time::now_millis(),
        )
        .await?;
    Ok(key)
}

/// The demo operator of the zero-configuration setup, and its key (in the data folder, like
/// the facility's): the README's one command leads straight into the console. Never made
/// when an upstream is configured — a real gateway gets operators from `gerbang operator add`.
async fn ensure_demo_operator(store: &Store, data_dir: &Path) -> Result<String> {
    let key = demo_key(&data_dir.join("demo-operator.key"))?;
    store
        .add_operator_key(
            "demo-operator",
            &sha256_hex(key.as_bytes()),
            crate::time::now_millis(),
        )
        .await?;
    Ok(key)
}

/// A demo key kept in `path` (readable by its owner only), made on first use.
fn demo_key(path: &Path) -> Result<String> {
    if let Ok(k) = std::fs::read_to_string(path)
        && !k.trim().is_empty()
    {
        return Ok(k.trim().to_string());
    }
    let k = api::auth::new_api_key();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, &k).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(k)
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "gerbang".into())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
