//! Scans on request, as jobs with progress, and waiting for jobs.

use std::sync::Arc;
use std::time::Duration;

use lancesync_engine::SyncOptions;

use crate::{Error, InProgress, Job, JobState, Orchestrator, Result, SourceKey, jobs, shared};

/// A job as another instance saved it; failed when that instance died before finishing it.
fn shared_job(shared: lancesync_coordinator::SharedJob) -> Result<Job> {
    let mut job: Job = serde_json::from_str(&shared.body)
        .map_err(|e| Error::Invalid(format!("job {} as saved by the cluster: {e}", shared.id)))?;
    if !shared.finished && !shared.instance_alive {
        job.state = JobState::Failed;
        job.error = Some(format!(
            "the instance that ran this job ({}) stopped before it finished; scheduled runs continue on the other instances, and a scan can be asked for again",
            shared.instance_id
        ));
    }
    Ok(job)
}

impl Orchestrator {
    /// Scan a source now (whether or not the pipeline is started): returns a job id at once;
    /// follow it with [`job`](Self::job) or [`wait_job`](Self::wait_job).
    pub fn scan(&self, user_id: &str, source_type: &str, source_id: &str) -> Result<Job> {
        self.scan_job(user_id, source_type, source_id, false)
    }

    /// Plan a scan of a source without writing anything (a dry run, [`SyncOptions::dry_run`]):
    /// a job like [`scan`](Self::scan)'s, whose report says what a scan would do and what its
    /// embedding would cost. It is not a run: the source's last run and the run counters stay.
    pub fn dry_run_scan(&self, user_id: &str, source_type: &str, source_id: &str) -> Result<Job> {
        self.scan_job(user_id, source_type, source_id, true)
    }

    fn scan_job(
        &self,
        user_id: &str,
        source_type: &str,
        source_id: &str,
        dry_run: bool,
    ) -> Result<Job> {
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
        let kind = if dry_run { "dry-run" } else { "scan" };
        let id = self.inner.jobs.create(kind, user_id, source_id);
        let this = self.clone();
        let job_id = id.clone();
        // Counted from now, so a shutdown right after this call waits for it.
        let working = InProgress::new(&self.inner);
        tokio::spawn(async move {
            let _working = working;
            let handle = jobs::JobHandle::attach(&this.inner.jobs, job_id);
            handle.running();
            let outcome = if dry_run {
                this.dry_run(&key, source.as_ref(), &handle).await
            } else {
                let (outcome, record) = this
                    .run_recorded(&key, source.as_ref(), &state, &handle)
                    .await;
                if let (Some(coordinator), Some(record)) = (this.coordinator(), record)
                    && let Err(e) = coordinator.record_run(&record).await
                {
                    tracing::warn!(user = %key.user_id, source = %key.source_id, error = %e, "could not record the run in the coordinator; other instances show the previous one");
                }
                outcome
            }
            .map_err(|e| e.to_string());
            handle.finish(&outcome);
        });
        self.job(&id)
    }

    /// A dry run of one source: bounded by the run slots like a run, and kept out of the
    /// way of a restore, but recorded nowhere.
    async fn dry_run(
        &self,
        key: &SourceKey,
        source: &dyn lancesync_sources::DocumentSource,
        progress: &dyn lancesync_engine::Progress,
    ) -> Result<lancesync_engine::SyncReport> {
        let _permit = self.run_permit(&key.user_id).await?;
        let options = SyncOptions {
            dry_run: true,
            ..SyncOptions::default()
        };
        Ok(self
            .inner
            .engine
            .sync(&key.user_id, source, options, progress)
            .await?)
    }

    /// A job's state, if this instance runs (or ran) it; see [`find_job`](Self::find_job)
    /// for any instance's.
    pub fn job(&self, id: &str) -> Result<Job> {
        self.inner
            .jobs
            .get(id)
            .ok_or_else(|| Error::NoSuchJob(id.into()))
    }

    /// A job's state, whichever instance runs it (with a coordinator). A job whose instance
    /// died before it finished is reported failed, saying so: it will never finish.
    pub async fn find_job(&self, id: &str) -> Result<Job> {
        if let Some(job) = self.inner.jobs.get(id) {
            return Ok(job);
        }
        let Some(coordinator) = self.coordinator() else {
            return Err(Error::NoSuchJob(id.into()));
        };
        let shared = coordinator
            .job(id)
            .await
            .map_err(shared::coordinator_error)?
            .ok_or_else(|| Error::NoSuchJob(id.into()))?;
        shared_job(shared)
    }

    /// The jobs not finished yet (scans, re-indexes, backups, restores), of one user or of
    /// all, oldest first; with a coordinator, every instance's.
    pub async fn unfinished_jobs(&self, user_id: Option<&str>) -> Result<Vec<Job>> {
        let mut jobs = self.inner.jobs.unfinished();
        jobs.retain(|job| user_id.is_none_or(|u| job.user_id == u));
        if let Some(coordinator) = self.coordinator() {
            let here: std::collections::BTreeSet<String> =
                jobs.iter().map(|j| j.id.clone()).collect();
            for shared in coordinator
                .unfinished_jobs(user_id)
                .await
                .map_err(shared::coordinator_error)?
            {
                if here.contains(&shared.id) {
                    continue;
                }
                let job = shared_job(shared)?;
                if !job.state.is_finished() {
                    jobs.push(job);
                }
            }
            jobs.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        }
        Ok(jobs)
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
}
