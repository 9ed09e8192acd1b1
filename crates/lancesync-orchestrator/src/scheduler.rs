//! Running sources: one schedule per source, one run limit across all of them, the retry pass
//! every `SYNC_INTERVAL`, and the per-user gate that keeps a restore and runs apart.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lancesync_coordinator::RunRecord;
use lancesync_engine::{SyncOptions, SyncReport};
use lancesync_sources::{DocumentSource, SourceSpec};
use tokio::task::JoinHandle;

use crate::{Error, InProgress, Orchestrator, Result, SourceKey};

#[derive(Default)]
pub(crate) struct RunState {
    pub(crate) running: bool,
    pub(crate) pending: bool,
    pub(crate) runs: u64,
    pub(crate) last_report: Option<SyncReport>,
    pub(crate) last_error: Option<String>,
    pub(crate) last_run_at: Option<String>,
    /// The run in progress: documents looked at, of how many (`None` until listed).
    pub(crate) done: usize,
    pub(crate) total: Option<usize>,
    /// When the schedule runs the source next (while it waits for that time).
    pub(crate) next_run: Option<std::time::SystemTime>,
    /// With a coordinator: the instance running the source now, when it is another one.
    pub(crate) running_on: Option<String>,
    /// With a coordinator: the version of the cluster's record of the source's runs that
    /// this state shows.
    pub(crate) cluster_version: i64,
}

/// A run's progress, told to its caller and kept in the source's run state (so that runs
/// started by a schedule show progress too).
struct Tracked<'a> {
    state: &'a Mutex<RunState>,
    inner: &'a dyn lancesync_engine::Progress,
}

impl lancesync_engine::Progress for Tracked<'_> {
    fn start(&self, total: usize) {
        self.state.lock().expect("lock").total = Some(total);
        self.inner.start(total);
    }
    fn advance(&self, uri: &str) {
        self.state.lock().expect("lock").done += 1;
        self.inner.advance(uri);
    }
}

/// What a run of a source needs: its key, the source, its run state.
type Runnable = (SourceKey, Arc<dyn DocumentSource>, Arc<Mutex<RunState>>);

pub(crate) struct Scheduled {
    pub(crate) spec: SourceSpec,
    pub(crate) source: Arc<dyn DocumentSource>,
    pub(crate) state: Arc<Mutex<RunState>>,
    pub(crate) task: Option<JoinHandle<()>>,
}

impl Drop for Scheduled {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Orchestrator {
    pub(crate) fn schedule(
        &self,
        user_id: &str,
        spec: SourceSpec,
        source: Arc<dyn DocumentSource>,
    ) -> SourceKey {
        self.schedule_with(user_id, spec, source, Arc::default())
    }

    /// [`schedule`](Self::schedule), keeping a run state (a source whose settings changed
    /// keeps its last report and run count).
    pub(crate) fn schedule_with(
        &self,
        user_id: &str,
        spec: SourceSpec,
        source: Arc<dyn DocumentSource>,
        state: Arc<Mutex<RunState>>,
    ) -> SourceKey {
        let key = SourceKey {
            user_id: user_id.into(),
            source_id: spec.id.clone(),
        };
        // With a coordinator, the cluster's schedule runs the source (cluster_schedule.rs).
        let monitored =
            self.inner.settings.monitoring.enabled && spec.enabled && self.coordinator().is_none();
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
    pub(crate) async fn schedule_loop(
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
                state.lock().expect("lock").next_run =
                    Some(std::time::SystemTime::now() + interval);
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = shutdown.changed() => return,
                }
            }
            due_now = false;
            {
                let mut s = state.lock().expect("lock");
                s.pending = true;
                s.next_run = None;
            }
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
    pub(crate) async fn run(
        &self,
        key: &SourceKey,
        source: &dyn DocumentSource,
        state: &Mutex<RunState>,
        progress: &dyn lancesync_engine::Progress,
    ) -> Result<SyncReport> {
        self.run_recorded(key, source, state, progress).await.0
    }

    /// [`run`](Self::run), and the run's outcome as the cluster records it (`None` for a run
    /// skipped because the user was busy).
    pub(crate) async fn run_recorded(
        &self,
        key: &SourceKey,
        source: &dyn DocumentSource,
        state: &Mutex<RunState>,
        progress: &dyn lancesync_engine::Progress,
    ) -> (Result<SyncReport>, Option<RunRecord>) {
        let _permit = match self.run_permit(&key.user_id).await {
            Ok(permit) => permit,
            Err(e) => return (Err(e), None),
        };
        {
            let mut s = state.lock().expect("lock");
            s.running = true;
            s.pending = false;
            s.done = 0;
            s.total = None;
        }
        let progress = Tracked {
            state,
            inner: progress,
        };
        // A panic inside a run (a bug, never an input we expect) must not leave the source
        // marked running forever: it ends this run as failed, and the next run starts afresh.
        let run = self
            .inner
            .engine
            .sync(&key.user_id, source, SyncOptions::default(), &progress);
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
        let record = run_record(key, &outcome);
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
            Err(
                e @ (lancesync_engine::Error::Busy { .. }
                | lancesync_engine::Error::Reindexing { .. }),
            ) => {
                counters.runs_skipped_busy += 1;
                tracing::info!(user = %key.user_id, source = %key.source_id, reason = %e, "run skipped");
            }
            Err(e) => {
                s.runs += 1;
                s.last_error = Some(e.to_string());
                s.last_run_at = Some(lancesync_engine::now_rfc3339());
                counters.runs_failed += 1;
                tracing::warn!(user = %key.user_id, source = %key.source_id, error = %e, "run failed");
            }
        }
        let outcome = outcome.map_err(|e| match e {
            lancesync_engine::Error::Busy { .. } | lancesync_engine::Error::Reindexing { .. } => {
                Error::Conflict(e.to_string())
            }
            e => Error::Engine(e),
        });
        (outcome, record)
    }

    /// What anything that runs a source's work holds: one of the run slots, and the user's
    /// gate for reading (a restore takes it for writing, so none runs during one).
    pub(crate) async fn run_permit(&self, user_id: &str) -> Result<RunPermit<'_>> {
        let slot = self
            .inner
            .run_slots
            .acquire()
            .await
            .map_err(|_| Error::ShuttingDown)?;
        let no_restore = self.user_gate(user_id).read_owned().await;
        Ok(RunPermit {
            _slot: slot,
            _no_restore: no_restore,
        })
    }

    pub(crate) fn user_gate(&self, user_id: &str) -> Arc<tokio::sync::RwLock<()>> {
        self.inner
            .user_gates
            .lock()
            .expect("lock")
            .entry(user_id.to_string())
            .or_default()
            .clone()
    }

    /// Background work: the health log ([`Self::spawn_health_log`]) and the retry pass every
    /// SYNC_INTERVAL (sources whose last run failed, or that have failures due a retry, run
    /// again; S3 copies that failed are retried once their backoff has passed).
    pub(crate) fn spawn_background(&self) {
        let health = self.spawn_health_log();
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
                // With a coordinator, the cluster's schedule brings failed sources back sooner
                // (on one instance, not on every one).
                let due: Vec<Runnable> = if this.coordinator().is_some() {
                    Vec::new()
                } else {
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
        let mut background = self.inner.background.lock().expect("lock");
        background.extend([health, retry]);
        background.extend(self.spawn_registry_pull());
        background.extend(self.spawn_cluster_schedule());
    }
}

/// Held while a source's work runs ([`Orchestrator::run_permit`]).
pub(crate) struct RunPermit<'a> {
    _slot: tokio::sync::SemaphorePermit<'a>,
    _no_restore: tokio::sync::OwnedRwLockReadGuard<()>,
}

/// A run's outcome as the cluster records it; `None` for a run skipped because the user was
/// busy (it did nothing).
fn run_record(
    key: &SourceKey,
    outcome: &std::result::Result<SyncReport, lancesync_engine::Error>,
) -> Option<RunRecord> {
    let record = RunRecord {
        user_id: key.user_id.clone(),
        source_id: key.source_id.clone(),
        finished_at: lancesync_engine::now_rfc3339(),
        report: None,
        summary: None,
        error: None,
    };
    match outcome {
        Ok(report) => Some(RunRecord {
            finished_at: report.finished_at.clone(),
            report: serde_json::to_string(report).ok(),
            summary: serde_json::to_string(&lancesync_engine::RunSummary::from(report)).ok(),
            ..record
        }),
        Err(lancesync_engine::Error::Busy { .. } | lancesync_engine::Error::Reindexing { .. }) => {
            None
        }
        Err(e) => Some(RunRecord {
            error: Some(e.to_string()),
            ..record
        }),
    }
}
