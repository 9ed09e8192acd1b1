//! Backups and restores as jobs, and the storage status.

use crate::{Error, InProgress, Job, Orchestrator, Result, jobs};
use lancesync_engine::ids;

impl Orchestrator {
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

    pub(crate) fn storage_job(
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
}
