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

mod check;
mod cluster_schedule;
mod counters;
mod error;
mod health;
mod history;
mod jobs;
mod registry;
mod reindex;
mod scan;
mod scheduler;
mod shared;
mod storage_jobs;
mod uploads;
mod watcher;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lancesync_config::Settings;
use lancesync_engine::Engine;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use scheduler::Scheduled;

pub use counters::Counters;
pub use error::{Error, Result};
pub use health::{ComponentHealth, Health, HealthStatus};
pub use jobs::{Job, JobState};
pub use registry::{RunProgress, SourceChange, SourceCheck, SourceInfo, SourceKey};
pub use watcher::{WatchOptions, Watcher};

/// The id of every user's uploads source (reserved: no configured source may take it).
pub const UPLOADS: &str = "uploads";
/// The id under which documents chunked by the caller are kept (reserved likewise; no run
/// lists it, so nothing deletes them but a request).
pub const MANUAL: &str = "manual";

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
    /// What this instance has seen of the shared source registry (with a coordinator).
    shared: Mutex<shared::SharedRegistry>,
    /// Changes of sources files (local ones and those pulled from the shared registry) one
    /// at a time.
    registry_gate: tokio::sync::Mutex<()>,
    /// Users with a run of the cluster's schedule in progress here (with a coordinator).
    cluster_runs: Mutex<std::collections::BTreeSet<String>>,
    /// Sources due cluster-wide at the last reading of the schedule (with a coordinator).
    cluster_due: AtomicUsize,
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
                shared: Mutex::default(),
                registry_gate: tokio::sync::Mutex::default(),
                cluster_runs: Mutex::default(),
                cluster_due: AtomicUsize::new(0),
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
}
