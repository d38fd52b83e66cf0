//! Bulk Data `$export` jobs: the worker that writes them and the sweeper that deletes them.
//!
//! A kick-off ([`crate::api::pull`]) only inserts a job row. One worker per gateway process
//! ([`Exports::run`], started by `serve`) claims jobs from the store — with several instances
//! on PostgreSQL, `FOR UPDATE SKIP LOCKED` gives each job to one of them — and runs them one
//! at a time:
//!
//! 1. the job's snapshot is fixed at kick-off: feed positions up to `until_seq` (every
//!    delivery committed before the kick-off), filtered by organization and `_since`;
//! 2. the worker pages through it by feed position, [`PAGE`] records at a time — never the
//!    whole export at once, so a million resources take the memory of one page — and appends
//!    every resource of every Bundle, one NDJSON line each, to `<Type>.ndjson` in a partial
//!    folder of its own (`<exports>/<job>.partial.<worker>/`);
//! 3. after each page it records the progress, which also renews its lease on the job: a
//!    cancelled job, or one taken over after the lease ran out, stops there;
//! 4. at the end the files are synced, the partial folder is renamed to `<exports>/<job>/`,
//!    and the job is marked completed with its manifest (fenced by the lease).
//!
//! A worker that dies leaves its lease to run out ([`LEASE`]); the job is claimed again and
//! restarts from zero (its files were on the dead worker's disk). A process that stops
//! releases its job at once.
//!
//! **Expiry.** A finished job's files live `[export] ttl_secs` (default one hour); then the
//! sweeper of the instance that holds them deletes them, and the status URL answers 410.
//! Cancelled jobs' files are deleted at once (or by the next sweep). Job rows are forgotten a
//! day after they expire (the status URL then answers 404).
//!
//! **Several instances.** The files are on the disk of the instance that wrote them (the
//! job's `owner`); the status URL works on every instance, the file URLs only on that one.
//! Route a client's export requests to one instance (sticky sessions), or put
//! `[export] dir` on a volume all instances share.

use crate::internal_events::{
    ExportCompleted, ExportFailed, ExportFilesDeleted, ExportInterrupted, ExportJobsForgotten,
    ExportTrouble,
};
use crate::store::{ExportEnd, ExportJob, ExportProgress, FeedItem, FeedQuery, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Records (Bundles) read from the store at a time.
pub const PAGE: usize = 500;
/// How long a worker holds a job without reporting progress.
pub const LEASE: Duration = Duration::from_secs(30);
/// How often a worker looks for jobs kicked off on other instances.
const POLL: Duration = Duration::from_secs(2);
/// How long a job row is kept after it expired (its status answers 410 meanwhile).
const ROWS_KEPT_MS: i64 = 24 * 3600 * 1000;

/// `[export]` in the configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// How long the files of a finished export stay available, in seconds.
    pub ttl_secs: u64,
    /// Where export files are written; `<data_dir>/exports` when unset. With several
    /// instances, a volume they all mount lets any of them serve the files.
    pub dir: Option<PathBuf>,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            ttl_secs: 3600,
            dir: None,
        }
    }
}

/// The export machinery of one process: where files go, how long they live, and the wake-up
/// of its worker.
pub struct Exports {
    pub dir: PathBuf,
    pub ttl: Duration,
    /// This process's worker, as job owner.
    pub owner: String,
    /// Wakes the worker at a kick-off.
    pub wake: Notify,
}

impl Exports {
    pub fn new(config: &ExportConfig, data_dir: &Path, owner: String) -> Exports {
        Exports {
            dir: config
                .dir
                .clone()
                .unwrap_or_else(|| data_dir.join("exports")),
            ttl: Duration::from_secs(config.ttl_secs.max(1)),
            owner,
            wake: Notify::new(),
        }
    }

    /// The folder of a finished job's files.
    pub fn job_dir(&self, job: &str) -> PathBuf {
        self.dir.join(job)
    }

    fn partial_dir(&self, job: &str) -> PathBuf {
        self.dir.join(format!("{job}.partial.{}", self.owner))
    }

    /// Run jobs as they come, and sweep expired files, until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, store: Arc<Store>, shutdown: watch::Receiver<bool>) {
        let sweep_every = (self.ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        // Jobs of this process wake the worker; other instances' kick-offs (PostgreSQL) and
        // jobs whose worker died are found by looking.
        let poll = if store.exclusive() { LEASE } else { POLL };
        let mut last_sweep: Option<tokio::time::Instant> = None;
        loop {
            if *shutdown.borrow() {
                break;
            }
            if last_sweep.is_none_or(|t| t.elapsed() >= sweep_every) {
                self.sweep(store.as_ref()).await;
                last_sweep = Some(tokio::time::Instant::now());
            }
            let now = crate::time::now_millis();
            match store
                .claim_export_job(&self.owner, now, LEASE.as_millis() as i64)
                .await
            {
                Ok(Some(job)) => {
                    self.run_job(store.as_ref(), job, &shutdown).await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => ExportTrouble {
                    what: "cannot look for jobs",
                    job: None,
                    error: &e.to_string(),
                }
                .emit(),
            }
            let mut stop = shutdown.clone();
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll.min(sweep_every)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Write one job's files (see the module documentation for the steps).
    async fn run_job(&self, store: &Store, job: ExportJob, shutdown: &watch::Receiver<bool>) {
        let started = std::time::Instant::now();
        let partial = self.partial_dir(&job.id);
        let result = self.write_job(store, &job, &partial, shutdown).await;
        let now = crate::time::now_millis();
        let expires_at = now + self.ttl.as_millis() as i64;
        let end = match result {
            Ok(Written::Stopped) => {
                remove_dir(&partial);
                return;
            }
            Ok(Written::Done { output, records }) => {
                // The files go in place first (the job was still ours a moment ago: the last
                // progress report), then the job is marked completed. A sweep keeps the
                // folder of a job in progress, so another instance's sweep (shared `dir`)
                // cannot delete them in between.
                let dest = self.job_dir(&job.id);
                remove_dir(&dest);
                if let Err(e) = std::fs::rename(&partial, &dest) {
                    // Its partial files are deleted below, with a failure's.
                    ExportEnd::Failed {
                        error: format!("gerbang could not move the export files in place: {e}"),
                    }
                } else {
                    let manifest = manifest(&job, &output);
                    let end = ExportEnd::Completed { manifest };
                    match store
                        .finish_export_job(&job.id, &self.owner, &end, now, expires_at)
                        .await
                    {
                        Ok(true) => ExportCompleted {
                            job: &job.id,
                            records,
                            resources: output.values().map(|(n, _)| n).sum::<u64>(),
                            took_ms: started.elapsed().as_millis() as u64,
                        }
                        .emit(),
                        // Cancelled meanwhile, or taken over (its new worker writes again).
                        Ok(false) => remove_dir(&dest),
                        Err(e) => {
                            // Not recorded: the lease runs out and the job starts again.
                            ExportTrouble {
                                what: "cannot record the end",
                                job: Some(&job.id),
                                error: &e.to_string(),
                            }
                            .emit();
                            remove_dir(&dest);
                        }
                    }
                    return;
                }
            }
            Err(JobError::Store(e)) => {
                // The database is away: leave the job to be claimed again once it is back.
                ExportInterrupted {
                    job: &job.id,
                    error: &e.to_string(),
                }
                .emit();
                remove_dir(&partial);
                return;
            }
            Err(JobError::Files(e)) => {
                ExportFailed {
                    job: &job.id,
                    error: &e.to_string(),
                }
                .emit();
                ExportEnd::Failed {
                    error: format!("gerbang could not write the export files: {e}"),
                }
            }
        };
        remove_dir(&partial);
        if let Err(e) = store
            .finish_export_job(&job.id, &self.owner, &end, now, expires_at)
            .await
        {
            ExportTrouble {
                what: "cannot record the failure",
                job: Some(&job.id),
                error: &e.to_string(),
            }
            .emit();
        }
    }

    async fn write_job(
        &self,
        store: &Store,
        job: &ExportJob,
        partial: &Path,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Written, JobError> {
        remove_dir(partial);
        std::fs::create_dir_all(partial).map_err(JobError::Files)?;
        let mut query = FeedQuery {
            after_seq: 0,
            until_seq: Some(job.until_seq),
            since: job.since,
            organization_id: job.organization_id.clone(),
            limit: PAGE,
        };
        let total = store.feed_count(&query).await.map_err(JobError::Store)? as i64;
        let mut progress = ExportProgress {
            records_done: 0,
            records_total: total,
            resources_done: 0,
        };
        let mut files = Some(Files::new(partial.to_path_buf(), &job.types));
        loop {
            if !self.report(store, job, progress).await? {
                return Ok(Written::Stopped);
            }
            if *shutdown.borrow() {
                // Hand the job back at once (the lease ends now) for the next start.
                let _ = store
                    .export_progress(&job.id, &self.owner, progress, 0)
                    .await;
                return Ok(Written::Stopped);
            }
            let page = store.feed(&query).await.map_err(JobError::Store)?;
            let Some(last) = page.last() else {
                break;
            };
            query.after_seq = last.seq;
            progress.records_done += page.len() as i64;
            // Files are written off the async threads, one page at a time.
            let mut f = files.take().expect("files");
            let written = tokio::task::spawn_blocking(move || {
                let r = f.write_page(&page);
                (f, r)
            })
            .await
            .map_err(|e| JobError::Files(std::io::Error::other(e)))?;
            files = Some(written.0);
            progress.resources_done += written.1.map_err(JobError::Files)? as i64;
        }
        let f = files.take().expect("files");
        let output = tokio::task::spawn_blocking(move || f.finish())
            .await
            .map_err(|e| JobError::Files(std::io::Error::other(e)))?
            .map_err(JobError::Files)?;
        if !self.report(store, job, progress).await? {
            return Ok(Written::Stopped);
        }
        Ok(Written::Done {
            output,
            records: progress.records_done,
        })
    }

    /// Record progress and renew the lease; whether the job is still ours.
    async fn report(
        &self,
        store: &Store,
        job: &ExportJob,
        progress: ExportProgress,
    ) -> Result<bool, JobError> {
        let lease_until = crate::time::now_millis() + LEASE.as_millis() as i64;
        store
            .export_progress(&job.id, &self.owner, progress, lease_until)
            .await
            .map_err(JobError::Store)
    }

    /// Delete the files of jobs that expired, were cancelled or are unknown, and partial
    /// folders nobody is writing any more; forget job rows long expired.
    pub async fn sweep(&self, store: &Store) {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                ExportTrouble {
                    what: "cannot list the export folder",
                    job: None,
                    error: &format!("{}: {e}", self.dir.display()),
                }
                .emit();
                return;
            }
        };
        let now = crate::time::now_millis();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let (job_id, writer) = match name.split_once(".partial.") {
                Some((job, writer)) => (job.to_string(), Some(writer.to_string())),
                None => (name.clone(), None),
            };
            let job = match store.export_job(&job_id).await {
                Ok(j) => j,
                Err(e) => {
                    ExportTrouble {
                        what: "cannot sweep",
                        job: None,
                        error: &e.to_string(),
                    }
                    .emit();
                    return;
                }
            };
            let keep = match (&job, &writer) {
                (None, _) => false,
                // Partial files: only while their writer holds the job.
                (Some(j), Some(w)) => {
                    j.status == crate::store::ExportStatus::InProgress
                        && j.owner.as_deref() == Some(w.as_str())
                        && j.lease_until.is_some_and(|t| t >= now)
                }
                // Finished files until they expire; a job in progress may be moving its
                // files in place.
                (Some(j), None) => match j.status {
                    crate::store::ExportStatus::InProgress => true,
                    crate::store::ExportStatus::Completed => j.expires_at.is_none_or(|t| t > now),
                    _ => false,
                },
            };
            if !keep {
                remove_dir(&entry.path());
                ExportFilesDeleted { job: &job_id }.emit();
            }
        }
        match store.purge_export_jobs(now - ROWS_KEPT_MS).await {
            Ok(n) => ExportJobsForgotten { n }.emit(),
            Err(e) => ExportTrouble {
                what: "cannot forget old jobs",
                job: None,
                error: &e.to_string(),
            }
            .emit(),
        }
    }
}

enum Written {
    /// The job is no longer ours (cancelled, taken over) or the process stops.
    Stopped,
    Done {
        /// Per resource type: (resources, file name).
        output: BTreeMap<String, (u64, String)>,
        records: i64,
    },
}

enum JobError {
    Store(crate::store::StoreError),
    Files(std::io::Error),
}

pub fn remove_dir(path: &Path) {
    if let Err(e) = std::fs::remove_dir_all(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        ExportTrouble {
            what: "cannot delete files",
            job: None,
            error: &format!("{}: {e}", path.display()),
        }
        .emit();
    }
}

/// The NDJSON files of one job being written, opened as their first line comes.
struct Files {
    dir: PathBuf,
    /// Only these types (empty: all).
    types: HashSet<String>,
    open: BTreeMap<String, (BufWriter<File>, u64)>,
    /// The shared resources written so far (one per patient, health worker …, not per
    /// record), as a UUID of their `Type/id`: 16 bytes each.
    shared: HashSet<u128>,
}

impl Files {
    fn new(dir: PathBuf, types: &[String]) -> Files {
        Files {
            dir,
            types: types.iter().cloned().collect(),
            open: BTreeMap::new(),
            shared: HashSet::new(),
        }
    }

    /// Append the resources of a page of records; how many were written.
    fn write_page(&mut self, page: &[FeedItem]) -> std::io::Result<u64> {
        let mut written = 0;
        for item in page {
            for r in super::resources(&super::held_bundle(item)) {
                if !self.types.is_empty() && !self.types.contains(&r.resource_type) {
                    continue;
                }
                if r.shared {
                    let key = crate::fhir::uuid5(&format!(
                        "{}/{}",
                        r.resource_type,
                        r.resource["id"].as_str().unwrap_or_default()
                    ))
                    .as_u128();
                    if !self.shared.insert(key) {
                        continue;
                    }
                }
                let (out, count) = match self.open.get_mut(&r.resource_type) {
                    Some(f) => f,
                    None => {
                        let file = File::create(self.dir.join(file_name(&r.resource_type)))?;
                        self.open
                            .entry(r.resource_type.clone())
                            .or_insert((BufWriter::with_capacity(64 * 1024, file), 0))
                    }
                };
                serde_json::to_writer(&mut *out, &r.resource)?;
                out.write_all(b"\n")?;
                *count += 1;
                written += 1;
            }
        }
        Ok(written)
    }

    /// Flush and sync every file; per type, (resources, file name).
    fn finish(self) -> std::io::Result<BTreeMap<String, (u64, String)>> {
        let mut out = BTreeMap::new();
        for (rt, (w, count)) in self.open {
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            out.insert(rt.clone(), (count, file_name(&rt)));
        }
        Ok(out)
    }
}

/// `Observation.ndjson`.
pub fn file_name(resource_type: &str) -> String {
    format!("{resource_type}.ndjson")
}

/// The base URL of the kick-off (`https://host`), from its recorded URL.
pub fn base_of(request: &str) -> &str {
    request.find("/fhir/").map_or(request, |i| &request[..i])
}

/// The completion manifest of the Bulk Data IG.
fn manifest(job: &ExportJob, output: &BTreeMap<String, (u64, String)>) -> Value {
    let base = base_of(&job.request);
    json!({
        "transactionTime": super::instant(job.transaction_time),
        "request": job.request,
        "requiresAccessToken": true,
        "output": output.iter().map(|(rt, (count, file))| json!({
            "type": rt,
            "url": format!("{base}/fhir/$export-file/{}/{file}", job.id),
            "count": count,
        })).collect::<Vec<_>>(),
        "error": [],
    })
}
