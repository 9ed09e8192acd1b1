//! Blue/green re-index (and its rollback) of a user's tables as a job.

use lancesync_engine::{ReindexOptions, ids};
use lancesync_sources::DocumentSource;

use crate::{Error, InProgress, Job, Orchestrator, Result, UPLOADS, jobs};

impl Orchestrator {
    /// Rebuild `user_id`'s tables with the configured embedder and chunk settings from the
    /// user's sources (uploads included), blue/green: searches keep answering from the old
    /// tables until one switch. As a job (`reindex`) whose progress counts the documents read;
    /// it waits for the user's runs in progress, and runs wait for it. With `rollback`, the
    /// generation the last re-index replaced comes back instead (job `rollback`).
    pub fn reindex(&self, user_id: &str, rollback: bool, allow_mass_delete: bool) -> Result<Job> {
        ids::validate_user_id(user_id)?;
        if *self.inner.shutdown.borrow() {
            return Err(Error::ShuttingDown);
        }
        let mut sources = self.user_sources(user_id, None);
        if self.uploads_dir(user_id).is_dir() && !sources.iter().any(|s| s.id() == UPLOADS) {
            sources.push(self.uploads_source(user_id)?);
        }
        let kind = if rollback { "rollback" } else { "reindex" };
        let id = self.inner.jobs.create(kind, user_id, "");
        let this = self.clone();
        let user = user_id.to_string();
        let job_id = id.clone();
        let working = InProgress::new(&self.inner);
        tokio::spawn(async move {
            let _working = working;
            let handle = jobs::JobHandle::attach(&this.inner.jobs, job_id);
            // Exclusive, like a restore: runs of this user wait for it.
            let gate = this.user_gate(&user);
            let _exclusive = gate.write().await;
            handle.running();
            let engine = &this.inner.engine;
            let options = ReindexOptions {
                allow_mass_delete,
                ..ReindexOptions::default()
            };
            let outcome = if rollback {
                engine
                    .rollback_reindex(&user, options)
                    .await
                    .map(|r| serde_json::to_value(r).unwrap_or_default())
            } else {
                let borrowed: Vec<&dyn DocumentSource> =
                    sources.iter().map(|s| s.as_ref()).collect();
                engine
                    .reindex(&user, &borrowed, options, &handle)
                    .await
                    .map(|r| serde_json::to_value(r).unwrap_or_default())
            };
            if let Err(e) = &outcome {
                tracing::warn!(user = %user, error = %e, "{} failed", if rollback { "rollback" } else { "re-index" });
            }
            handle.finish_with(outcome.map_err(|e| e.to_string()));
        });
        self.job(&id)
    }
}
