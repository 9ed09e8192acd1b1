//! Counters of runs and documents, for metrics.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::Orchestrator;

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

impl Orchestrator {
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
}
