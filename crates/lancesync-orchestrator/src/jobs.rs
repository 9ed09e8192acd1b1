//! Jobs: long work (a source scan) answered at once with an id whose progress can be polled.
//!
//! With a coordinator, every change of a job is also saved in PostgreSQL (a few times a
//! second at most, and at once when it finishes), so that any instance answers for it; ids
//! are numbered from the instance's block of numbers, unique cluster-wide.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use lancesync_coordinator::SharedCoordinator;
use lancesync_engine::{Progress, SyncReport};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

/// Finished jobs kept for polling; older ones are forgotten first.
const KEEP_FINISHED: usize = 1000;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a run slot.
    Queued,
    /// Running.
    Running,
    /// Finished with a report.
    Succeeded,
    /// Finished with an error.
    Failed,
}

impl JobState {
    /// Whether the job is over.
    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed)
    }
}

/// A job as seen by a poller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Id (`job-N`).
    pub id: String,
    /// What it does (`scan`).
    pub kind: String,
    /// User.
    pub user_id: String,
    /// Source.
    pub source_id: String,
    /// Where it is.
    pub state: JobState,
    /// Documents looked at so far.
    pub done: usize,
    /// Documents to look at (known once listing finished).
    pub total: usize,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 end time.
    pub finished_at: Option<String>,
    /// The run's report, when it succeeded.
    pub report: Option<SyncReport>,
    /// What a backup or restore job did, when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
}

/// `job-N`'s N, to order jobs as they were made.
fn job_number(id: &str) -> u64 {
    id.strip_prefix("job-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Every job of this process.
#[derive(Debug, Default)]
pub(crate) struct Jobs {
    next: AtomicU64,
    table: Mutex<JobTable>,
    /// With a coordinator: where every change goes to be saved in it.
    mirror: OnceLock<mpsc::UnboundedSender<Job>>,
}

/// Progress of a job is saved in the coordinator at most this often.
const SAVE_EVERY: Duration = Duration::from_millis(250);

/// Numbers in one instance's block of job ids.
const BLOCK: u64 = 1_000_000_000;

#[derive(Debug, Default)]
struct JobTable {
    jobs: BTreeMap<String, watch::Sender<Job>>,
    finished: VecDeque<String>,
}

impl Jobs {
    /// Save every job in `coordinator` from now on, numbering new jobs from this instance's
    /// block. Call once, before the first job.
    pub(crate) fn share(&self, coordinator: SharedCoordinator) {
        let (tx, rx) = mpsc::unbounded_channel();
        if self.mirror.set(tx).is_err() {
            return;
        }
        let base = coordinator.job_block().saturating_mul(BLOCK);
        self.next.fetch_max(base, Ordering::SeqCst);
        tokio::spawn(save_jobs(coordinator, rx));
    }

    fn mirror(&self, job: &Job) {
        if let Some(tx) = self.mirror.get() {
            let _ = tx.send(job.clone());
        }
    }

    /// A new queued job.
    pub(crate) fn create(&self, kind: &str, user_id: &str, source_id: &str) -> String {
        let id = format!("job-{}", self.next.fetch_add(1, Ordering::Relaxed) + 1);
        let job = Job {
            id: id.clone(),
            kind: kind.into(),
            user_id: user_id.into(),
            source_id: source_id.into(),
            state: JobState::Queued,
            done: 0,
            total: 0,
            created_at: lancesync_engine::now_rfc3339(),
            finished_at: None,
            report: None,
            result: None,
            error: None,
        };
        self.mirror(&job);
        let (tx, _) = watch::channel(job);
        self.table
            .lock()
            .expect("jobs lock")
            .jobs
            .insert(id.clone(), tx);
        id
    }

    /// A job's current state.
    pub(crate) fn get(&self, id: &str) -> Option<Job> {
        let table = self.table.lock().expect("jobs lock");
        table.jobs.get(id).map(|tx| tx.borrow().clone())
    }

    /// Follow a job's changes.
    pub(crate) fn subscribe(&self, id: &str) -> Option<watch::Receiver<Job>> {
        let table = self.table.lock().expect("jobs lock");
        table.jobs.get(id).map(watch::Sender::subscribe)
    }

    /// The jobs not finished yet, oldest first.
    pub(crate) fn unfinished(&self) -> Vec<Job> {
        let table = self.table.lock().expect("jobs lock");
        let mut jobs: Vec<Job> = table
            .jobs
            .values()
            .map(|tx| tx.borrow().clone())
            .filter(|job| !job.state.is_finished())
            .collect();
        jobs.sort_by_key(|job| job_number(&job.id));
        jobs
    }

    /// Jobs not finished yet.
    pub(crate) fn active(&self) -> usize {
        let table = self.table.lock().expect("jobs lock");
        table
            .jobs
            .values()
            .filter(|tx| !tx.borrow().state.is_finished())
            .count()
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut Job)) {
        let mut table = self.table.lock().expect("jobs lock");
        let Some(tx) = table.jobs.get(id) else {
            return;
        };
        let mut finished_now = false;
        tx.send_modify(|job| {
            let was = job.state.is_finished();
            change(job);
            finished_now = !was && job.state.is_finished();
        });
        self.mirror(&tx.borrow());
        if finished_now {
            table.finished.push_back(id.to_string());
            while table.finished.len() > KEEP_FINISHED {
                if let Some(old) = table.finished.pop_front() {
                    table.jobs.remove(&old);
                }
            }
        }
    }
}

/// The writer side of one job; also the [`Progress`] of its run.
pub(crate) struct JobHandle<'a> {
    jobs: &'a Jobs,
    id: String,
}

impl<'a> JobHandle<'a> {
    pub(crate) fn attach(jobs: &'a Jobs, id: String) -> Self {
        Self { jobs, id }
    }

    pub(crate) fn running(&self) {
        self.jobs.update(&self.id, |j| j.state = JobState::Running);
    }

    pub(crate) fn finish(&self, outcome: &Result<SyncReport, String>) {
        self.jobs.update(&self.id, |j| {
            j.finished_at = Some(lancesync_engine::now_rfc3339());
            match outcome {
                Ok(report) => {
                    j.state = JobState::Succeeded;
                    j.report = Some(report.clone());
                }
                Err(e) => {
                    j.state = JobState::Failed;
                    j.error = Some(e.clone());
                }
            }
        });
    }
}

impl JobHandle<'_> {
    pub(crate) fn finish_with(&self, outcome: Result<serde_json::Value, String>) {
        self.jobs.update(&self.id, |j| {
            j.finished_at = Some(lancesync_engine::now_rfc3339());
            match outcome {
                Ok(value) => {
                    j.state = JobState::Succeeded;
                    j.result = Some(value);
                }
                Err(e) => {
                    j.state = JobState::Failed;
                    j.error = Some(e);
                }
            }
        });
    }
}

impl Progress for JobHandle<'_> {
    fn start(&self, total: usize) {
        // A re-index runs every source of the user in one job: their totals add up.
        self.jobs.update(&self.id, |j| j.total += total);
    }
    fn advance(&self, _uri: &str) {
        self.jobs.update(&self.id, |j| j.done += 1);
    }
}

/// Save jobs' changes in the coordinator: the newest state of each, a few times a second.
/// A failed save is tried again with the next round (unless a newer state replaced it).
async fn save_jobs(coordinator: SharedCoordinator, mut changes: mpsc::UnboundedReceiver<Job>) {
    let mut newest: BTreeMap<String, Job> = BTreeMap::new();
    loop {
        if newest.is_empty() {
            let Some(job) = changes.recv().await else {
                return;
            };
            newest.insert(job.id.clone(), job);
        }
        while let Ok(job) = changes.try_recv() {
            newest.insert(job.id.clone(), job);
        }
        for (id, job) in std::mem::take(&mut newest) {
            let Ok(body) = serde_json::to_string(&job) else {
                continue;
            };
            let finished = job.state.is_finished();
            if let Err(e) = coordinator
                .save_job(&id, &job.user_id, finished, &body)
                .await
            {
                tracing::warn!(job = %id, error = %e, "could not save a job in the coordinator; trying again");
                newest.insert(id, job);
            }
        }
        tokio::time::sleep(SAVE_EVERY).await;
    }
}
