//! With a coordinator: one schedule for the whole cluster instead of one per instance.
//!
//! Every [`TICK`], an instance reads when each source is due (one query), and claims the due
//! sources it has a free run slot for ([`Coordination::claim_run`]: the source's run lock in
//! PostgreSQL, taken only while the source is due). The instance that ends a run moves the
//! source's next time on by its poll interval, on the server's clock. So each source runs once
//! per interval cluster-wide, on one instance at a time, wherever a slot is free first, with no
//! static sharding; a run cut short (its instance died or lost PostgreSQL) leaves the source
//! due, and another instance runs it once the lock is freed.
//!
//! [`Coordination::claim_run`]: lancesync_coordinator::Coordination::claim_run

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use lancesync_coordinator::SharedCoordinator;
use lancesync_sources::DocumentSource;
use tokio::task::JoinHandle;

use crate::scheduler::RunState;
use crate::shared::coordinator_error;
use crate::{InProgress, Orchestrator, Result, SourceKey};

/// How often an instance looks for due sources.
pub(crate) const TICK: Duration = Duration::from_secs(1);

type Due = (
    SourceKey,
    Arc<dyn DocumentSource>,
    Arc<Mutex<RunState>>,
    Duration,
);

impl Orchestrator {
    /// The cluster's schedule loop, when there is a coordinator and monitoring is on.
    pub(crate) fn spawn_cluster_schedule(&self) -> Option<JoinHandle<()>> {
        let coordinator = self.coordinator()?;
        if !self.inner.settings.monitoring.enabled {
            return None;
        }
        let this = self.clone();
        Some(tokio::spawn(async move {
            let mut shutdown = this.inner.shutdown.subscribe();
            loop {
                tokio::select! {
                    () = tokio::time::sleep(TICK) => {}
                    _ = shutdown.changed() => return,
                }
                if let Err(e) = this.run_due(&coordinator).await {
                    tracing::warn!(error = %e, "could not read the cluster's schedule; trying again");
                }
            }
        }))
    }

    /// Show each source's next time, and claim and start the due ones this instance has
    /// slots for.
    async fn run_due(&self, coordinator: &SharedCoordinator) -> Result<()> {
        let schedule = coordinator.schedule().await.map_err(coordinator_error)?;
        let started = self.is_running();
        let now = SystemTime::now();
        let due: Vec<Due> = {
            let sources = self.inner.sources.lock().expect("lock");
            let mut due = Vec::new();
            for (key, s) in sources.iter() {
                if !s.spec.enabled {
                    continue;
                }
                let wait = schedule
                    .due_in
                    .get(&(key.user_id.clone(), key.source_id.clone()))
                    .copied()
                    .unwrap_or(Duration::ZERO);
                let mut state = s.state.lock().expect("lock");
                if state.running {
                    continue;
                }
                if wait.is_zero() {
                    state.next_run = None;
                    state.pending = !started;
                    // The instance that holds the user runs its due sources; this one would
                    // only wait for it.
                    if schedule.held_elsewhere.contains(&key.user_id) {
                        continue;
                    }
                    due.push((
                        key.clone(),
                        Arc::clone(&s.source),
                        Arc::clone(&s.state),
                        self.poll_interval(&s.spec),
                    ));
                } else {
                    state.next_run = Some(now + wait);
                    state.pending = false;
                }
            }
            due
        };
        if !started || *self.inner.shutdown.borrow() {
            return Ok(());
        }
        // Claim no more than there are free slots: another instance may have them.
        let mut free = self.inner.run_slots.available_permits();
        for (key, source, state, interval) in due {
            if free == 0 {
                break;
            }
            // One scheduled run of a user at a time here too: the cluster's runs of a user
            // never overlap (another instance waits for the user's hold anyway).
            if !self
                .inner
                .cluster_runs
                .lock()
                .expect("lock")
                .insert(key.user_id.clone())
            {
                continue;
            }
            let claimed = coordinator
                .claim_run(&key.user_id, &key.source_id)
                .await
                .map_err(coordinator_error);
            let claim = match claimed {
                Ok(Some(claim)) => claim,
                other => {
                    self.inner
                        .cluster_runs
                        .lock()
                        .expect("lock")
                        .remove(&key.user_id);
                    other?;
                    continue;
                }
            };
            free -= 1;
            let this = self.clone();
            let coordinator = Arc::clone(coordinator);
            tokio::spawn(async move {
                let _working = InProgress::new(&this.inner);
                let _ = this
                    .run(&key, source.as_ref(), &state, &lancesync_engine::NoProgress)
                    .await;
                if let Err(e) = coordinator.finish_run(claim, interval).await {
                    tracing::warn!(user = %key.user_id, source = %key.source_id, error = %e, "could not record the run's end; the source stays due");
                }
                this.inner
                    .cluster_runs
                    .lock()
                    .expect("lock")
                    .remove(&key.user_id);
            });
        }
        Ok(())
    }
}
