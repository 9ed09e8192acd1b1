//! With a coordinator: one schedule for the whole cluster instead of one per instance.
//!
//! Every [`TICK`] (or less often when reading takes long: [`next_reading`]), an instance reads
//! when each source is due (what changed since its last reading), and claims the due
//! sources of as many users as it has free run slots, and more from that list as soon as one
//! of its users' runs end ([`Coordination::claim_runs`]: the user's hold in PostgreSQL, and
//! each source marked as running, taken only while it is due, all of a user's due sources in
//! one statement). A user's claimed runs follow one another in one slot, as a user's runs do
//! on one instance anyway. The instance that ends a run moves the source's next time on by its
//! poll interval, on the server's clock (runs ending together are written in one statement).
//! So each source runs once per interval cluster-wide, on one instance at a time, wherever a
//! slot is free first, with no static sharding; a run cut short (its instance died or lost
//! PostgreSQL) leaves the source due, and another instance runs it once the lock is freed.
//!
//! [`Coordination::claim_runs`]: lancesync_coordinator::Coordination::claim_runs

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use lancesync_coordinator::{ClusterSchedule, SharedCoordinator};
use lancesync_sources::DocumentSource;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::scheduler::RunState;
use crate::shared::coordinator_error;
use crate::{InProgress, Orchestrator, Result, SourceKey};

/// How often an instance looks for due sources, at most.
pub(crate) const TICK: Duration = Duration::from_secs(1);

/// Reading the schedule takes at most one part in this many of an instance's time (and of
/// PostgreSQL's): the table is read whole every 30 s, about 0.4 s at 66,000 sources here.
const READ_SHARE: u32 = 20;

/// The longest wait between readings, however large the schedule.
const LONGEST_TICK: Duration = Duration::from_secs(15);

/// How long after a reading that took `took` the next one comes: [`TICK`], or
/// [`READ_SHARE`] times the reading's time when that is longer (up to [`LONGEST_TICK`]).
fn next_reading(took: Duration) -> Duration {
    (took * READ_SHARE).clamp(TICK, LONGEST_TICK)
}

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
            let slots = this.inner.settings.sync.max_concurrent_processing.max(1) as usize;
            let in_flight = Arc::new(AtomicUsize::new(0));
            let run_ended = Arc::new(Notify::new());
            let mut due: VecDeque<Due> = VecDeque::new();
            let mut next_read = tokio::time::Instant::now();
            loop {
                // The schedule is read every tick; between ticks, a run that ends lets the
                // next due source of the last reading start at once.
                tokio::select! {
                    () = tokio::time::sleep_until(next_read) => {
                        let started = tokio::time::Instant::now();
                        let read = this.read_due(&coordinator).await;
                        next_read = started + next_reading(started.elapsed());
                        match read {
                            Ok(list) => due = list.into(),
                            Err(e) => {
                                tracing::warn!(error = %e, "could not read the cluster's schedule; trying again");
                                continue;
                            }
                        }
                    }
                    () = run_ended.notified() => {}
                    _ = shutdown.changed() => return,
                }
                if !this.is_running() || *this.inner.shutdown.borrow() {
                    continue;
                }
                // Claim no more than this instance has slots for: another may have them.
                while in_flight.load(Ordering::SeqCst) < slots {
                    let Some(next) = due.pop_front() else { break };
                    let user = next.0.user_id.clone();
                    let mut of_user = vec![next];
                    due.retain(|d| {
                        if d.0.user_id == user {
                            of_user.push(d.clone());
                            false
                        } else {
                            true
                        }
                    });
                    this.claim_and_run(&coordinator, of_user, &in_flight, &run_ended);
                }
            }
        }))
    }

    /// Read the cluster's schedule: show each source's next time, and list the due sources
    /// this instance may claim.
    async fn read_due(&self, coordinator: &SharedCoordinator) -> Result<Vec<Due>> {
        let started = self.is_running();
        let schedule = coordinator
            .schedule(started)
            .await
            .map_err(coordinator_error)?;
        let now = SystemTime::now();
        let mut due = Vec::new();
        let mut due_anywhere = 0;
        let mut outdated = HashMap::new();
        {
            let sources = self.inner.sources.lock().expect("lock");
            for (key, s) in sources.iter() {
                let (user_id, source_id) = (key.user_id.as_str(), key.source_id.as_str());
                let mut state = s.state.lock().expect("lock");
                state.running_on = schedule
                    .running_elsewhere(user_id, source_id)
                    .map(str::to_string);
                if let Some(version) = schedule.changed(user_id, source_id)
                    && version > state.cluster_version
                {
                    outdated.insert((user_id.to_string(), source_id.to_string()), version);
                }
                if !s.spec.enabled || state.running || state.running_on.is_some() {
                    continue;
                }
                let wait = schedule.due_in(user_id, source_id);
                if wait.is_zero() {
                    due_anywhere += 1;
                    state.next_run = None;
                    state.pending = !started;
                    // The instance that holds the user runs its due sources; this one would
                    // only wait for it.
                    if schedule.is_held_elsewhere(&key.user_id) {
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
        }
        self.inner
            .cluster_due
            .store(due_anywhere, Ordering::Relaxed);
        fair_share(&mut due, &schedule, coordinator.status().users_held);
        if !outdated.is_empty() {
            self.show_cluster_runs(coordinator, outdated).await?;
        }
        Ok(due)
    }

    /// Show the cluster's record of the runs of the sources whose record changed (runs on
    /// other instances, and this one's), as `/sources` and `/sync/status` answer them.
    async fn show_cluster_runs(
        &self,
        coordinator: &SharedCoordinator,
        outdated: HashMap<(String, String), i64>,
    ) -> Result<()> {
        let keys: Vec<(String, String)> = outdated.keys().cloned().collect();
        let runs = coordinator
            .run_details(&keys)
            .await
            .map_err(coordinator_error)?;
        let sources = self.inner.sources.lock().expect("lock");
        for run in runs {
            let key = SourceKey {
                user_id: run.user_id.clone(),
                source_id: run.source_id.clone(),
            };
            let Some(s) = sources.get(&key) else { continue };
            let mut state = s.state.lock().expect("lock");
            let runs = u64::try_from(run.runs).unwrap_or(0);
            // A run of this instance shows at once; the record is behind it until the
            // run's end is written.
            if state.running || runs < state.runs {
                continue;
            }
            state.runs = runs;
            state.last_run_at = run.last_run_at;
            state.last_error = run.last_error;
            state.last_report = run
                .last_report
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok());
            state.cluster_version = outdated
                .get(&(run.user_id, run.source_id))
                .copied()
                .unwrap_or_default();
        }
        Ok(())
    }

    /// With a coordinator: the cluster's queue depth, the enabled sources due and not running
    /// here at the last reading of the schedule (at most a second old).
    pub fn cluster_queue_depth(&self) -> Option<usize> {
        self.coordinator()
            .map(|_| self.inner.cluster_due.load(Ordering::Relaxed))
    }

    /// Claim a user's due sources (`due`, all of one user) and run them one after another, in
    /// a task of its own (a claim may wait for a user taken over from a dead instance);
    /// nothing when another instance (or a run of the same user here) has the user.
    fn claim_and_run(
        &self,
        coordinator: &SharedCoordinator,
        due: Vec<Due>,
        in_flight: &Arc<AtomicUsize>,
        run_ended: &Arc<Notify>,
    ) {
        let Some(user_id) = due.first().map(|d| d.0.user_id.clone()) else {
            return;
        };
        // One scheduled run of a user at a time here too: the cluster's runs of a user never
        // overlap (another instance waits for the user's hold anyway).
        if !self
            .inner
            .cluster_runs
            .lock()
            .expect("lock")
            .insert(user_id.clone())
        {
            return;
        }
        in_flight.fetch_add(1, Ordering::SeqCst);
        let this = self.clone();
        let coordinator = Arc::clone(coordinator);
        let (in_flight, run_ended) = (Arc::clone(in_flight), Arc::clone(run_ended));
        tokio::spawn(async move {
            let source_ids: Vec<String> = due.iter().map(|d| d.0.source_id.clone()).collect();
            let mut claims = match coordinator.claim_runs(&user_id, &source_ids).await {
                Ok(claims) => claims,
                Err(e) => {
                    tracing::warn!(user = %user_id, error = %e, "could not claim runs; they stay due");
                    Vec::new()
                }
            };
            // A user taken over: its previous holder may still be writing for a while. The
            // wait takes no run slot, so other due sources go on. (The claims share one hold.)
            if let Some(first) = claims.first()
                && first.ready_in().is_some()
            {
                in_flight.fetch_sub(1, Ordering::SeqCst);
                run_ended.notify_one();
                let ready = first.ready().await;
                in_flight.fetch_add(1, Ordering::SeqCst);
                if let Err(e) = ready {
                    tracing::warn!(user = %user_id, error = %e, "lost a claim while taking a user over; its sources stay due");
                    claims.clear();
                }
            }
            let mut ends = Vec::with_capacity(claims.len());
            for claim in claims {
                // A claim left unrun (the instance is stopping) leaves its source due.
                if !this.is_running() || *this.inner.shutdown.borrow() {
                    break;
                }
                let Some((key, source, state, interval)) =
                    due.iter().find(|d| d.0.source_id == claim.source_id)
                else {
                    continue;
                };
                let working = InProgress::new(&this.inner);
                let (outcome, record) = this
                    .run_recorded(key, source.as_ref(), state, &lancesync_engine::NoProgress)
                    .await;
                drop(working);
                // A run that failed (or left documents waiting for a retry) comes back after
                // SYNC_INTERVAL, as the retry pass of a single instance does.
                let retry = this
                    .inner
                    .settings
                    .sync
                    .interval
                    .max(Duration::from_secs(1));
                let next_in = match &outcome {
                    Ok(report) if report.waiting_retry == 0 => *interval,
                    _ => (*interval).min(retry),
                };
                // Written while the next run goes on (and with other runs' ends).
                let coordinator = Arc::clone(&coordinator);
                let key = key.clone();
                ends.push(tokio::spawn(async move {
                    if let Err(e) = coordinator
                        .finish_run(claim, next_in, record.as_ref())
                        .await
                    {
                        tracing::warn!(user = %key.user_id, source = %key.source_id, error = %e, "could not record the run's end; the source stays due");
                    }
                }));
            }
            // The slot is free: the loop may claim the next due sources now.
            in_flight.fetch_sub(1, Ordering::SeqCst);
            run_ended.notify_one();
            for end in ends {
                let _ = end.await;
            }
            this.inner
                .cluster_runs
                .lock()
                .expect("lock")
                .remove(&user_id);
        });
    }
}

/// How long a due source waits for an instance under its fair share before any instance
/// takes it.
const FAIR_SHARE_GRACE: Duration = Duration::from_secs(3);

/// Leave new users to the other instances once this one holds its share of the users with
/// work (those held anywhere and those due): users stay with the instance that holds them
/// (their runs follow one another there), so without this the first instance to read the
/// schedule would gather most of them. A source due for longer than [`FAIR_SHARE_GRACE`]
/// is for anyone: the others may be full.
fn fair_share(due: &mut Vec<Due>, schedule: &ClusterSchedule, mine: Vec<String>) {
    let mine: HashSet<String> = mine.into_iter().collect();
    let mut active: HashSet<&str> = schedule
        .users_held_elsewhere()
        .chain(mine.iter().map(String::as_str))
        .collect();
    active.extend(due.iter().map(|(key, ..)| key.user_id.as_str()));
    let share = active.len().div_ceil(schedule.live_instances.max(1));
    let mut taken: HashSet<String> = HashSet::new();
    due.retain(|(key, ..)| {
        if mine.contains(&key.user_id) || taken.contains(&key.user_id) {
            return true;
        }
        let overdue = schedule
            .overdue(&key.user_id, &key.source_id)
            .unwrap_or_default();
        if mine.len() + taken.len() < share || overdue > FAIR_SHARE_GRACE {
            taken.insert(key.user_id.clone());
            return true;
        }
        false
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_reading_of_the_schedule_is_made_less_often() {
        // A small schedule: every second.
        assert_eq!(next_reading(Duration::from_millis(3)), TICK);
        // 78 ms (66,000 sources here): its time at most a twentieth of the instance's.
        assert_eq!(
            next_reading(Duration::from_millis(78)),
            Duration::from_millis(1560)
        );
        // However long it takes, at least every 15 s.
        assert_eq!(next_reading(Duration::from_secs(4)), LONGEST_TICK);
    }
}
