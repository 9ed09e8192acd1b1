//! lancesync orchestrator: runs every user's sources on their schedules.
//!
//! The [`Orchestrator`] owns the persisted source registries (one TOML file per user under
//! `SYNC_STATE_DIR/users/{user}/sources.toml`), one schedule per source at its poll interval,
//! a background pass every `SYNC_INTERVAL` that retries sources whose last run failed, one
//! limit on concurrent runs across all sources, pipeline start/stop (pause without losing
//! changes: the next run after a resume sees everything), jobs for scans, health checks and
//! counters for metrics.
//!
//! ```no_run
//! use std::sync::Arc;
//! use lancesync_orchestrator::Orchestrator;
//!
//! # async fn run(settings: lancesync_config::Settings) -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Arc::new(lancesync_engine::Engine::new(
//!     lancesync_engine::EngineConfig::from_settings(&settings),
//!     lancesync_engine::embedder_from_settings(&settings)?,
//! )?);
//! let orchestrator = Orchestrator::new(settings, Default::default(), engine);
//! orchestrator.initialize().await?;
//! orchestrator.start();
//! // ... serve requests ...
//! orchestrator.shutdown(std::time::Duration::from_secs(30)).await;
//! # Ok(()) }
//! ```

mod health;
mod jobs;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lancesync_config::Settings;
use lancesync_engine::{Engine, SyncOptions, SyncReport, ids};
use lancesync_sources::{DocumentSource, SourceRegistry, SourceSpec};
use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

pub use health::{ComponentHealth, Health, HealthStatus};
pub use jobs::{Job, JobState};

/// The id of every user's uploads source (reserved: no configured source may take it).
pub const UPLOADS: &str = "uploads";
/// The id under which documents chunked by the caller are kept (reserved likewise; no run
/// lists it, so nothing deletes them but a request).
pub const MANUAL: &str = "manual";

/// Check an upload's file name: a plain name (no folders), not hidden, with an extension.
fn upload_name(filename: &str) -> Result<String> {
    let name = filename.trim();
    let plain = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && std::path::Path::new(name).extension().is_some();
    if plain {
        Ok(name.to_string())
    } else {
        Err(Error::Invalid(format!(
            "{:?} is not an acceptable file name: give a plain name with an extension (notes.md), no folders",
            name.chars().take(80).collect::<String>()
        )))
    }
}

/// A source's place: user and source id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SourceKey {
    /// User.
    pub user_id: String,
    /// Source id, unique per user.
    pub source_id: String,
}

/// What the orchestrator knows of one source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceInfo {
    /// User.
    pub user_id: String,
    /// Source id, unique per user.
    pub source_id: String,
    /// Source type.
    pub source_type: String,
    /// Scheduled.
    pub enabled: bool,
    /// The type's settings, as persisted.
    pub config: toml::Table,
    /// Seconds between scheduled runs.
    pub poll_interval_seconds: u64,
    /// A run is in progress.
    pub running: bool,
    /// A scheduled run is waiting for the pipeline to start again.
    pub pending: bool,
    /// Runs since the orchestrator started.
    pub runs: u64,
    /// The last finished run's report.
    pub last_report: Option<SyncReport>,
    /// The last run's error, if it failed as a whole.
    pub last_error: Option<String>,
    /// RFC 3339 time of the last finished run.
    pub last_run_at: Option<String>,
}

/// Counters for metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counters {
    /// Runs that finished with a report.
    pub runs_succeeded: u64,
    /// Runs that failed as a whole (listing failed, database error).
    pub runs_failed: u64,
    /// Runs skipped because the same source was already running.
    pub runs_skipped_busy: u64,
    /// Documents by outcome: created, updated, moved, touched, deleted, unchanged, failed.
    pub documents: BTreeMap<String, u64>,
    /// Chunk rows written.
    pub chunks_written: u64,
    /// Sum of run durations, seconds.
    pub run_seconds_total: f64,
    /// Runs in progress now.
    pub runs_in_progress: usize,
    /// Scheduled runs waiting (paused pipeline or run slots).
    pub pending_runs: usize,
    /// Sources scheduled.
    pub sources: usize,
}

/// Errors of the orchestrator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No such source.
    #[error("user {user_id} has no source {source_type}/{source_id}")]
    NotFound {
        /// User.
        user_id: String,
        /// Type asked for.
        source_type: String,
        /// Id asked for.
        source_id: String,
    },
    /// No such job.
    #[error("no job {0} (finished jobs are kept for a while, then forgotten)")]
    NoSuchJob(String),
    /// The request conflicts with the current state (a source id taken, a run in progress).
    #[error("{0}")]
    Conflict(String),
    /// The source spec or an id is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// An upload of a type lancesync does not read; nothing was stored.
    #[error("{0}")]
    Unsupported(String),
    /// The orchestrator is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// A source registry failed.
    #[error(transparent)]
    Source(#[from] lancesync_sources::Error),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] lancesync_engine::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Default)]
struct RunState {
    running: bool,
    pending: bool,
    runs: u64,
    last_report: Option<SyncReport>,
    last_error: Option<String>,
    last_run_at: Option<String>,
}

/// What a run of a source needs: its key, the source, its run state.
type Runnable = (SourceKey, Arc<dyn DocumentSource>, Arc<Mutex<RunState>>);

struct Scheduled {
    spec: SourceSpec,
    source: Arc<dyn DocumentSource>,
    state: Arc<Mutex<RunState>>,
    task: Option<JoinHandle<()>>,
}

impl Drop for Scheduled {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct Inner {
    settings: Settings,
    env: BTreeMap<String, String>,
    engine: Arc<Engine>,
    sources: Mutex<BTreeMap<SourceKey, Scheduled>>,
    run_slots: Semaphore,
    pipeline: watch::Sender<bool>,
    shutdown: watch::Sender<bool>,
    stopped: watch::Sender<bool>,
    jobs: jobs::Jobs,
    counters: Mutex<Counters>,
    /// Per user: runs hold it shared, a restore exclusively, so a restore never swaps a
    /// database under a run.
    user_gates: Mutex<BTreeMap<String, Arc<tokio::sync::RwLock<()>>>>,
    in_progress: AtomicUsize,
    started: Instant,
    background: Mutex<Vec<JoinHandle<()>>>,
}

/// Counts work in progress (for a graceful shutdown) from creation to drop.
struct InProgress(Arc<Inner>);

impl InProgress {
    fn new(inner: &Arc<Inner>) -> Self {
        inner.in_progress.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(inner))
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.in_progress.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs sources on schedules; see the crate docs. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Orchestrator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator")
            .field("running", &self.is_running())
            .finish_non_exhaustive()
    }
}

impl Orchestrator {
    /// An orchestrator over `engine`, configured by `settings`; `env` expands `~` and
    /// `${VAR}` in source paths. Nothing runs until [`initialize`](Self::initialize) and
    /// [`start`](Self::start).
    pub fn new(settings: Settings, env: BTreeMap<String, String>, engine: Arc<Engine>) -> Self {
        let slots = settings.sync.max_concurrent_processing.max(1) as usize;
        Self {
            inner: Arc::new(Inner {
                settings,
                env,
                engine,
                sources: Mutex::default(),
                run_slots: Semaphore::new(slots),
                pipeline: watch::channel(false).0,
                shutdown: watch::channel(false).0,
                stopped: watch::channel(false).0,
                jobs: jobs::Jobs::default(),
                counters: Mutex::default(),
                user_gates: Mutex::default(),
                in_progress: AtomicUsize::new(0),
                started: Instant::now(),
                background: Mutex::default(),
            }),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    fn state_dir(&self) -> PathBuf {
        self.inner.settings.monitoring.state_dir.join("users")
    }

    fn registry(&self, user_id: &str) -> Result<SourceRegistry> {
        ids::validate_user_id(user_id)?;
        Ok(SourceRegistry::at(
            self.state_dir().join(user_id).join("sources.toml"),
        ))
    }

    /// Load every user's persisted sources and schedule them (they run once the pipeline is
    /// started). Returns how many sources were loaded. A source that no longer builds (its
    /// spec names an unknown type) is logged and skipped, not fatal.
    pub async fn initialize(&self) -> Result<usize> {
        let users = self.users_with_sources();
        let mut loaded = 0;
        for user in users {
            for spec in self.registry(&user)?.list()? {
                match spec.build(&self.inner.env) {
                    Ok(source) => {
                        self.schedule(&user, spec, source);
                        loaded += 1;
                    }
                    Err(e) => {
                        tracing::error!(user = %user, source = %spec.id, error = %e, "source skipped")
                    }
                }
            }
        }
        self.spawn_background();
        tracing::info!(sources = loaded, "orchestrator initialized");
        Ok(loaded)
    }

    fn users_with_sources(&self) -> Vec<String> {
        let mut users = Vec::new();
        if let Ok(dir) = std::fs::read_dir(self.state_dir()) {
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if ids::validate_user_id(&name).is_ok()
                    && entry.path().join("sources.toml").is_file()
                {
                    users.push(name);
                }
            }
        }
        users.sort();
        users
    }

    /// Users known to the orchestrator: with a source, or with an index.
    pub fn users(&self) -> BTreeSet<String> {
        let mut users: BTreeSet<String> = self.users_with_sources().into_iter().collect();
        if let Ok(dir) = std::fs::read_dir(self.inner.engine.config().base_dir.join("users")) {
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if ids::validate_user_id(&name).is_ok() && entry.path().is_dir() {
                    users.insert(name);
                }
            }
        }
        users
    }

    /// Start (or resume) the pipeline: scheduled runs proceed; runs that came due while it
    /// was stopped run now.
    pub fn start(&self) {
        self.inner.pipeline.send_replace(true);
        tracing::info!("pipeline started");
    }

    /// Stop (pause) the pipeline: no scheduled run starts until [`start`](Self::start); a
    /// run in progress finishes. Nothing is lost: changes are found by the next run.
    pub fn stop(&self) {
        self.inner.pipeline.send_replace(false);
        tracing::info!("pipeline stopped");
    }

    /// Whether the pipeline is started.
    pub fn is_running(&self) -> bool {
        *self.inner.pipeline.borrow()
    }

    /// Stop everything: no new runs; wait up to `grace` for runs in progress to finish, then
    /// abandon them (the engine's writes are batch-atomic and the next run repairs a cut
    /// one).
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.shutdown.send_replace(true);
        self.stop();
        let deadline = Instant::now() + grace;
        while self.inner.in_progress.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.inner.in_progress.load(Ordering::SeqCst);
        if left > 0 {
            tracing::warn!(
                runs = left,
                "abandoning runs still in progress after the grace period"
            );
        }
        for task in self.inner.background.lock().expect("lock").drain(..) {
            task.abort();
        }
        self.inner.sources.lock().expect("lock").clear();
        self.inner.stopped.send_replace(true);
        tracing::info!("orchestrator shut down");
    }

    /// Wait until [`shutdown`](Self::shutdown) has finished (from another task).
    pub async fn wait_until_stopped(&self) {
        let mut stopped = self.inner.stopped.subscribe();
        let _ = stopped.wait_for(|s| *s).await;
    }

    /// Every source (of one user, or of all).
    pub fn sources(&self, user_id: Option<&str>) -> Vec<SourceInfo> {
        let sources = self.inner.sources.lock().expect("lock");
        sources
            .iter()
            .filter(|(k, _)| user_id.is_none_or(|u| k.user_id == u))
            .map(|(k, s)| self.info(k, s))
            .collect()
    }

    /// One source, by type and id.
    pub fn source(&self, user_id: &str, source_type: &str, source_id: &str) -> Result<SourceInfo> {
        let sources = self.inner.sources.lock().expect("lock");
        let key = SourceKey {
            user_id: user_id.into(),
            source_id: source_id.into(),
        };
        match sources.get(&key) {
            Some(s) if s.spec.source_type == source_type => Ok(self.info(&key, s)),
            _ => Err(Error::NotFound {
                user_id: user_id.into(),
                source_type: source_type.into(),
                source_id: source_id.into(),
            }),
        }
    }

    fn info(&self, key: &SourceKey, s: &Scheduled) -> SourceInfo {
        let state = s.state.lock().expect("lock");
        SourceInfo {
            user_id: key.user_id.clone(),
            source_id: s.spec.id.clone(),
            source_type: s.spec.source_type.clone(),
            enabled: s.spec.enabled,
            config: s.spec.redacted_config(),
            poll_interval_seconds: self.poll_interval(&s.spec).as_secs(),
            running: state.running,
            pending: state.pending,
            runs: state.runs,
            last_report: state.last_report.clone(),
            last_error: state.last_error.clone(),
            last_run_at: state.last_run_at.clone(),
        }
    }

    fn poll_interval(&self, spec: &SourceSpec) -> Duration {
        spec.poll_interval
            .map(Duration::from_secs)
            .unwrap_or(self.inner.settings.monitoring.default_poll_interval)
            .max(Duration::from_secs(1))
    }

    /// Add a source for a user: validated, persisted, scheduled at once. `enabled: None`
    /// takes SYNC_ENABLED_BY_DEFAULT.
    pub fn add_source(&self, user_id: &str, mut spec: SourceSpec) -> Result<SourceInfo> {
        if *self.inner.shutdown.borrow() {
            return Err(Error::ShuttingDown);
        }
        ids::validate_source_id(&spec.id)?;
        if spec.id == UPLOADS || spec.id == MANUAL || spec.id == lancesync_engine::MIGRATED_SOURCE {
            return Err(Error::Conflict(format!(
                "the source ids {UPLOADS:?}, {MANUAL:?} and {:?} are reserved for documents sent to the API or migrated; pick another",
                lancesync_engine::MIGRATED_SOURCE
            )));
        }
        let registry = self.registry(user_id)?;
        if registry.get(&spec.id)?.is_some() {
            return Err(Error::Conflict(format!(
                "user {user_id} has a source {:?} already; delete it first or pick another id",
                spec.id
            )));
        }
        let source = spec
            .build(&self.inner.env)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        if spec.poll_interval == Some(0) {
            spec.poll_interval = None;
        }
        registry.add(spec.clone(), &self.inner.env)?;
        let key = self.schedule(user_id, spec, source);
        tracing::info!(user = %key.user_id, source = %key.source_id, "source added");
        let sources = self.inner.sources.lock().expect("lock");
        Ok(self.info(&key, &sources[&key]))
    }

    /// Remove a source: unscheduled, forgotten, and its documents removed from the user's
    /// index. Returns how many documents were removed.
    pub async fn remove_source(
        &self,
        user_id: &str,
        source_type: &str,
        source_id: &str,
    ) -> Result<usize> {
        self.source(user_id, source_type, source_id)?;
        let key = SourceKey {
            user_id: user_id.into(),
            source_id: source_id.into(),
        };
        // Unschedule first, so no new run starts; a run in progress is waited for by the
        // engine's per-source lock below.
        let removed = self.inner.sources.lock().expect("lock").remove(&key);
        drop(removed);
        self.registry(user_id)?.remove(source_id)?;
        let mut attempts = 0;
        let documents = loop {
            match self
                .inner
                .engine
                .remove_source_documents(user_id, source_id)
                .await
            {
                Err(lancesync_engine::Error::Busy { .. }) if attempts < 600 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => break other?,
            }
        };
        tracing::info!(user = %user_id, source = %source_id, documents, "source removed");
        Ok(documents)
    }

    fn schedule(
        &self,
        user_id: &str,
        spec: SourceSpec,
        source: Arc<dyn DocumentSource>,
    ) -> SourceKey {
        let key = SourceKey {
            user_id: user_id.into(),
            source_id: spec.id.clone(),
        };
        let state = Arc::new(Mutex::new(RunState::default()));
        let monitored = self.inner.settings.monitoring.enabled && spec.enabled;
        let task = monitored.then(|| {
            let this = self.clone();
            let key = key.clone();
            let interval = self.poll_interval(&spec);
            let source = Arc::clone(&source);
            let state = Arc::clone(&state);
            tokio::spawn(async move { this.schedule_loop(key, source, state, interval).await })
        });
        let scheduled = Scheduled {
            spec,
            source,
            state,
            task,
        };
        self.inner
            .sources
            .lock()
            .expect("lock")
            .insert(key.clone(), scheduled);
        key
    }

    /// One source's schedule: a run when the pipeline starts (if SYNC_ON_STARTUP), then one
    /// every poll interval. While the pipeline is stopped a due run waits (pending) and
    /// runs as soon as it starts again.
    async fn schedule_loop(
        self,
        key: SourceKey,
        source: Arc<dyn DocumentSource>,
        state: Arc<Mutex<RunState>>,
        interval: Duration,
    ) {
        let mut shutdown = self.inner.shutdown.subscribe();
        let mut pipeline = self.inner.pipeline.subscribe();
        let mut due_now = self.inner.settings.sync.on_startup;
        loop {
            if !due_now {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = shutdown.changed() => return,
                }
            }
            due_now = false;
            state.lock().expect("lock").pending = true;
            // Wait for the pipeline to be started.
            loop {
                if *shutdown.borrow() {
                    return;
                }
                if *pipeline.borrow_and_update() {
                    break;
                }
                tokio::select! {
                    changed = pipeline.changed() => if changed.is_err() { return },
                    _ = shutdown.changed() => return,
                }
            }
            let _working = InProgress::new(&self.inner);
            let _ = self
                .run(&key, source.as_ref(), &state, &lancesync_engine::NoProgress)
                .await;
        }
    }

    /// One run of a source, under the shared run limit; records the outcome.
    async fn run(
        &self,
        key: &SourceKey,
        source: &dyn DocumentSource,
        state: &Mutex<RunState>,
        progress: &dyn lancesync_engine::Progress,
    ) -> Result<SyncReport> {
        let _slot = self
            .inner
            .run_slots
            .acquire()
            .await
            .map_err(|_| Error::ShuttingDown)?;
        let gate = self.user_gate(&key.user_id);
        let _no_restore = gate.read().await;
        {
            let mut s = state.lock().expect("lock");
            s.running = true;
            s.pending = false;
        }
        // A panic inside a run (a bug, never an input we expect) must not leave the source
        // marked running forever: it ends this run as failed, and the next run starts afresh.
        let run = self
            .inner
            .engine
            .sync(&key.user_id, source, SyncOptions::default(), progress);
        let outcome = match futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run))
            .await
        {
            Ok(outcome) => outcome,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(user = %key.user_id, source = %key.source_id, panic = %what, "run stopped on an internal error");
                Err(lancesync_engine::Error::Internal(format!(
                    "the run stopped ({what}); the next run starts afresh"
                )))
            }
        };
        let mut s = state.lock().expect("lock");
        s.running = false;
        let mut counters = self.inner.counters.lock().expect("lock");
        match &outcome {
            Ok(report) => {
                s.runs += 1;
                s.last_report = Some(report.clone());
                s.last_error = None;
                s.last_run_at = Some(report.finished_at.clone());
                counters.runs_succeeded += 1;
                counters.chunks_written += report.chunks_written as u64;
                counters.run_seconds_total += report.duration_ms as f64 / 1000.0;
                for (name, n) in [
                    ("created", report.created),
                    ("updated", report.updated),
                    ("moved", report.moved),
                    ("touched", report.touched),
                    ("deleted", report.deleted),
                    ("unchanged", report.unchanged),
                    ("failed", report.failed),
                ] {
                    *counters.documents.entry(name.into()).or_default() += n as u64;
                }
                tracing::info!(user = %key.user_id, source = %key.source_id, created = report.created,
                    updated = report.updated, deleted = report.deleted, failed = report.failed, "run finished");
            }
            Err(lancesync_engine::Error::Busy { .. }) => {
                counters.runs_skipped_busy += 1;
                tracing::info!(user = %key.user_id, source = %key.source_id, "run skipped: the source is being synced by another run");
            }
            Err(e) => {
                s.runs += 1;
                s.last_error = Some(e.to_string());
                s.last_run_at = Some(lancesync_engine::now_rfc3339());
                counters.runs_failed += 1;
                tracing::warn!(user = %key.user_id, source = %key.source_id, error = %e, "run failed");
            }
        }
        outcome.map_err(|e| match e {
            lancesync_engine::Error::Busy { .. } => Error::Conflict(e.to_string()),
            e => Error::Engine(e),
        })
    }

    fn user_gate(&self, user_id: &str) -> Arc<tokio::sync::RwLock<()>> {
        self.inner
            .user_gates
            .lock()
            .expect("lock")
            .entry(user_id.to_string())
            .or_default()
            .clone()
    }

    /// Copy a user's database to S3 now, as a job (local-primary modes with S3).
    pub fn backup(&self, user_id: &str) -> Result<Job> {
        ids::validate_user_id(user_id)?;
        let this = self.clone();
        let user = user_id.to_string();
        self.storage_job("backup", user_id, async move {
            let record = this.inner.engine.backup(&user).await?;
            Ok(serde_json::to_value(record).unwrap_or_default())
        })
    }

    /// Rebuild a user's database from S3 (at `version` of the documents table, or the
    /// latest), as a job. It waits for the user's runs in progress, and runs wait for it.
    pub fn restore(&self, user_id: &str, version: Option<u64>) -> Result<Job> {
        ids::validate_user_id(user_id)?;
        let this = self.clone();
        let user = user_id.to_string();
        self.storage_job("restore", user_id, async move {
            let gate = this.user_gate(&user);
            let _exclusive = gate.write().await;
            let report = this.inner.engine.restore(&user, version).await?;
            Ok(serde_json::to_value(report).unwrap_or_default())
        })
    }

    fn storage_job(
        &self,
        kind: &str,
        user_id: &str,
        work: impl std::future::Future<Output = Result<serde_json::Value>> + Send + 'static,
    ) -> Result<Job> {
        if *self.inner.shutdown.borrow() {
            return Err(Error::ShuttingDown);
        }
        if self.inner.engine.storage().remote().is_none() {
            return Err(Error::Invalid(format!(
                "storage mode {} uses no S3: there is nothing to {kind}",
                self.inner.engine.storage().mode()
            )));
        }
        let id = self.inner.jobs.create(kind, user_id, "");
        let this = self.clone();
        let job_id = id.clone();
        let working = InProgress::new(&self.inner);
        tokio::spawn(async move {
            let _working = working;
            let handle = jobs::JobHandle::attach(&this.inner.jobs, job_id);
            handle.running();
            handle.finish_with(work.await.map_err(|e| e.to_string()));
        });
        self.job(&id)
    }

    /// Mode, locations, backlog and per-user S3 state.
    pub async fn storage_status(&self) -> Result<lancesync_storage::StorageStatus> {
        let users: Vec<String> = self.users().into_iter().collect();
        Ok(self
            .inner
            .engine
            .storage()
            .status(&users)
            .await
            .map_err(lancesync_engine::Error::from)?)
    }

    /// Scan a source now (whether or not the pipeline is started): returns a job id at once;
    /// follow it with [`job`](Self::job) or [`wait_job`](Self::wait_job).
    pub fn scan(&self, user_id: &str, source_type: &str, source_id: &str) -> Result<Job> {
        if *self.inner.shutdown.borrow() {
            return Err(Error::ShuttingDown);
        }
        self.source(user_id, source_type, source_id)?;
        let key = SourceKey {
            user_id: user_id.into(),
            source_id: source_id.into(),
        };
        let (source, state) = {
            let sources = self.inner.sources.lock().expect("lock");
            let s = &sources[&key];
            (Arc::clone(&s.source), Arc::clone(&s.state))
        };
        let id = self.inner.jobs.create("scan", user_id, source_id);
        let this = self.clone();
        let job_id = id.clone();
        // Counted from now, so a shutdown right after this call waits for it.
        let working = InProgress::new(&self.inner);
        tokio::spawn(async move {
            let _working = working;
            let handle = jobs::JobHandle::attach(&this.inner.jobs, job_id);
            handle.running();
            let outcome = this
                .run(&key, source.as_ref(), &state, &handle)
                .await
                .map_err(|e| e.to_string());
            handle.finish(&outcome);
        });
        self.job(&id)
    }

    /// A job's state.
    pub fn job(&self, id: &str) -> Result<Job> {
        self.inner
            .jobs
            .get(id)
            .ok_or_else(|| Error::NoSuchJob(id.into()))
    }

    /// Wait up to `timeout` for a job to finish; returns its state either way.
    pub async fn wait_job(&self, id: &str, timeout: Duration) -> Result<Job> {
        let mut rx = self
            .inner
            .jobs
            .subscribe(id)
            .ok_or_else(|| Error::NoSuchJob(id.into()))?;
        let _ = tokio::time::timeout(timeout, rx.wait_for(|j| j.state.is_finished())).await;
        let job = rx.borrow().clone();
        Ok(job)
    }

    /// Where a user's uploaded files are kept: the folder of the `uploads` source.
    fn uploads_dir(&self, user_id: &str) -> PathBuf {
        self.state_dir().join(user_id).join(UPLOADS)
    }

    fn uploads_source(&self, user_id: &str) -> Result<Arc<dyn DocumentSource>> {
        let dir = self.uploads_dir(user_id);
        let config = lancesync_sources::LocalFsConfig::new([dir.display().to_string()]);
        Ok(Arc::new(lancesync_sources::LocalFsSource::new(
            UPLOADS,
            config,
            &self.inner.env,
        )?))
    }

    /// Index a document given as bytes (an upload): it is kept in the user's uploads folder
    /// (the `uploads` source) and indexed at once, replacing an earlier upload of the same
    /// name. Returns the document as indexed; a document that could not be processed (an
    /// unsupported type, a corrupt PDF) comes back with `processing_status = failed` and
    /// the reason.
    pub async fn upload(
        &self,
        user_id: &str,
        filename: &str,
        bytes: &[u8],
    ) -> Result<lancesync_engine::DocumentInfo> {
        if *self.inner.shutdown.borrow() {
            return Err(Error::ShuttingDown);
        }
        ids::validate_user_id(user_id)?;
        let name = upload_name(filename)?;
        // Refused before anything is stored: a file no sync would index would sit in the
        // uploads folder with no row through which the API could delete it.
        let named = std::path::Path::new(&name);
        if lancesync_ingest::DocType::from_path(named).is_none() {
            let extension = named.extension().unwrap_or_default().to_string_lossy();
            let why = lancesync_ingest::Error::Unsupported(extension.into_owned());
            return Err(Error::Unsupported(format!(
                "{name}: {why}; nothing was stored"
            )));
        }
        let dir = self.uploads_dir(user_id);
        let path = dir.join(&name);
        let io = |e: std::io::Error| Error::Invalid(format!("cannot store the upload: {e}"));
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        // Written beside, then renamed: a scan never sees half a file.
        let partial = dir.join(format!(".{name}.partial"));
        tokio::fs::write(&partial, bytes).await.map_err(io)?;
        tokio::fs::rename(&partial, &path).await.map_err(io)?;
        let source = self.uploads_source(user_id)?;
        let _working = InProgress::new(&self.inner);
        let mut waited = 0;
        loop {
            match self
                .inner
                .engine
                .sync(
                    user_id,
                    source.as_ref(),
                    SyncOptions {
                        allow_mass_delete: true,
                        retry_failed: true,
                    },
                    &lancesync_engine::NoProgress,
                )
                .await
            {
                // Another upload of this user is being indexed: it will be done shortly.
                Err(lancesync_engine::Error::Busy { .. }) if waited < 600 => {
                    waited += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => {
                    other?;
                    break;
                }
            }
        }
        let uri = source
            .watch_roots()
            .first()
            .map(|root| root.join(&name).display().to_string())
            .unwrap_or_default();
        let doc_id = ids::doc_id(user_id, UPLOADS, &uri);
        match self.inner.engine.document(user_id, &doc_id).await? {
            Some(found) => Ok(found.document),
            None => {
                // Not indexed, so no row could ever delete it: do not keep it.
                let _ = tokio::fs::remove_file(&path).await;
                Err(Error::Invalid(format!(
                    "{name} could not be indexed and was not kept; see the server log"
                )))
            }
        }
    }

    /// Write a document the caller chunked (and perhaps embedded) under the `manual` source.
    pub async fn ingest_precomputed(
        &self,
        user_id: &str,
        doc: lancesync_engine::PrecomputedDocument,
    ) -> Result<lancesync_engine::DocumentInfo> {
        if *self.inner.shutdown.borrow() {
            return Err(Error::ShuttingDown);
        }
        let _working = InProgress::new(&self.inner);
        Ok(self
            .inner
            .engine
            .ingest_precomputed(user_id, MANUAL, doc)
            .await?)
    }

    /// Remove a document from a user's index; an uploaded one is also deleted from the
    /// uploads folder (a folder source's document returns on the next run if still there).
    /// Returns whether it existed.
    pub async fn delete_document(&self, user_id: &str, doc_id: &str) -> Result<bool> {
        let engine = &self.inner.engine;
        let Some(doc) = engine.document(user_id, doc_id).await? else {
            return Ok(false);
        };
        if doc.document.source_id == UPLOADS {
            let dir = self.uploads_dir(user_id);
            let path = PathBuf::from(&doc.document.source_uri);
            // Only ever a file directly inside this user's uploads folder.
            if path.parent() == Some(dir.as_path()) {
                match tokio::fs::remove_file(&path).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::Invalid(format!("cannot delete the upload: {e}"))),
                }
            }
        }
        Ok(engine.delete_document(user_id, doc_id).await?)
    }

    /// Counters for metrics.
    pub fn counters(&self) -> Counters {
        let mut c = self.inner.counters.lock().expect("lock").clone();
        c.runs_in_progress = self.inner.in_progress.load(Ordering::SeqCst);
        let sources = self.inner.sources.lock().expect("lock");
        c.sources = sources.len();
        c.pending_runs = sources
            .values()
            .filter(|s| s.state.lock().expect("lock").pending)
            .count()
            + self.inner.jobs.active();
        c
    }

    /// Whether the database folder can be written: what a readiness probe asks, without the
    /// rest of [`health`](Self::health) (no S3 request).
    pub async fn database_health(&self) -> ComponentHealth {
        health::check_database(&self.inner.engine.config().base_dir).await
    }

    /// Check the database, S3 and every source now.
    pub async fn health(&self) -> Health {
        let mut components = BTreeMap::new();
        components.insert(
            "database".to_string(),
            health::check_database(&self.inner.engine.config().base_dir).await,
        );
        components.insert("s3".to_string(), self.s3_health().await);
        components.insert(
            "pipeline".to_string(),
            if self.is_running() {
                ComponentHealth::ok("started")
            } else {
                ComponentHealth::degraded("stopped: scheduled runs wait until it is started")
            },
        );
        let sources: Vec<(SourceKey, Vec<PathBuf>, Option<String>)> = {
            let sources = self.inner.sources.lock().expect("lock");
            sources
                .iter()
                .map(|(k, s)| {
                    (
                        k.clone(),
                        s.source.watch_roots(),
                        s.state.lock().expect("lock").last_error.clone(),
                    )
                })
                .collect()
        };
        for (key, roots, last_error) in sources {
            let mut check = health::check_roots(&roots).await;
            if check.status == HealthStatus::Healthy
                && let Some(e) = last_error
            {
                check = ComponentHealth::degraded(format!("last run failed: {e}"));
            }
            components.insert(format!("source:{}/{}", key.user_id, key.source_id), check);
        }
        let status = components
            .values()
            .map(|c| c.status)
            .max()
            .unwrap_or(HealthStatus::Healthy);
        Health {
            status,
            components,
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.inner.started.elapsed().as_secs(),
            users: self.users().len(),
            checked_at: lancesync_engine::now_rfc3339(),
        }
    }

    /// S3: whether it answers, and the backlog of copies waiting for it.
    async fn s3_health(&self) -> ComponentHealth {
        let storage = self.inner.engine.storage();
        let Some(target) = storage.remote() else {
            return ComponentHealth::ok("not configured (local_only)");
        };
        if let Err(e) = storage.probe().await {
            // Local-primary modes keep serving from local disk; S3-primary ones cannot.
            return if storage.mode().s3_is_primary() {
                ComponentHealth::unhealthy(e.to_string())
            } else {
                ComponentHealth::degraded(format!("{e}; copies are queued until S3 answers"))
            };
        }
        let conflicts = storage.conflicts();
        if !conflicts.is_empty() {
            return ComponentHealth::degraded(format!(
                "{} answers; {} user(s) have a multi-device conflict (see /api/v1/storage/status)",
                target.describe(),
                conflicts.len()
            ));
        }
        let backlog = storage.backlog();
        if backlog.is_empty() {
            ComponentHealth::ok(format!(
                "{} answers ({})",
                target.describe(),
                storage.mode()
            ))
        } else {
            // A count only: /health names no user (who waits is in /api/v1/storage/status).
            ComponentHealth::degraded(format!(
                "{} answers; {} user(s) have changes waiting to be copied",
                target.describe(),
                backlog.len()
            ))
        }
    }

    /// Background work: the health loop (logs changes of status) and the retry pass every
    /// SYNC_INTERVAL (sources whose last run failed, or that have failures due a retry, run
    /// again; S3 copies that failed are retried once their backoff has passed).
    fn spawn_background(&self) {
        let this = self.clone();
        let health = tokio::spawn(async move {
            let every = this
                .inner
                .settings
                .monitoring
                .health_check_interval
                .max(Duration::from_secs(1));
            let mut last = None;
            let mut shutdown = this.inner.shutdown.subscribe();
            loop {
                let h = this.health().await;
                if last != Some(h.status) {
                    let bad: Vec<String> = h
                        .components
                        .iter()
                        .filter(|(_, c)| c.status != HealthStatus::Healthy)
                        .map(|(n, c)| format!("{n}: {}", c.message))
                        .collect();
                    tracing::info!(status = ?h.status, problems = ?bad, "health");
                    last = Some(h.status);
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = shutdown.changed() => return,
                }
            }
        });
        let this = self.clone();
        let retry = tokio::spawn(async move {
            let every = this
                .inner
                .settings
                .sync
                .interval
                .max(Duration::from_secs(1));
            let mut shutdown = this.inner.shutdown.subscribe();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = shutdown.changed() => return,
                }
                if !this.is_running() {
                    continue;
                }
                let due: Vec<Runnable> = {
                    let sources = this.inner.sources.lock().expect("lock");
                    sources
                        .iter()
                        .filter(|(_, s)| s.spec.enabled)
                        .filter(|(_, s)| {
                            let st = s.state.lock().expect("lock");
                            !st.running
                                && (st.last_error.is_some()
                                    || st.last_report.as_ref().is_some_and(|r| r.waiting_retry > 0))
                        })
                        .map(|(k, s)| (k.clone(), Arc::clone(&s.source), Arc::clone(&s.state)))
                        .collect()
                };
                for (key, source, state) in due {
                    let _working = InProgress::new(&this.inner);
                    let _ = this
                        .run(&key, source.as_ref(), &state, &lancesync_engine::NoProgress)
                        .await;
                }
                for (user_id, result) in this.inner.engine.storage().retry_pending().await {
                    match result {
                        Ok(r) => {
                            tracing::info!(%user_id, files = r.files, bytes = r.bytes, "queued S3 copy completed")
                        }
                        Err(e) => {
                            tracing::warn!(%user_id, error = %e, "queued S3 copy failed again; backing off")
                        }
                    }
                }
            }
        });
        self.inner
            .background
            .lock()
            .expect("lock")
            .extend([health, retry]);
    }
}
