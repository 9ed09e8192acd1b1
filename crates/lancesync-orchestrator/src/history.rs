//! A user's runs as every instance answers them: from the coordinator when there is one
//! (the cluster's runs), else from the engine's records on this machine.

use lancesync_engine::{RUNS_KEPT, RunSummary, SyncReport};

use crate::shared::coordinator_error;
use crate::{Orchestrator, Result};

impl Orchestrator {
    /// The user's finished runs, every source's, oldest first (the newest
    /// [`RUNS_KEPT`] of each source).
    pub async fn run_history(&self, user_id: &str) -> Result<Vec<RunSummary>> {
        let Some(coordinator) = self.coordinator() else {
            return Ok(self.inner.engine.run_history(user_id).await?);
        };
        let lines = coordinator
            .run_history(user_id, RUNS_KEPT)
            .await
            .map_err(coordinator_error)?;
        Ok(lines
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect())
    }

    /// The last successful run's report of each of the user's sources, by source id.
    pub async fn last_runs(&self, user_id: &str) -> Result<Vec<SyncReport>> {
        if self.coordinator().is_none() {
            return Ok(self.inner.engine.last_runs(user_id).await?);
        }
        // The cluster's record, as the schedule's reading brought it (at most a second old).
        let mut reports: Vec<SyncReport> = self
            .sources(Some(user_id))
            .into_iter()
            .filter_map(|s| s.last_report)
            .collect();
        reports.sort_by(|a, b| a.source_id.cmp(&b.source_id));
        Ok(reports)
    }
}
