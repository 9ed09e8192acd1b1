//! Checking (and repairing) a user's index against the user's registered sources.

use std::sync::Arc;

use lancesync_engine::{CheckOptions, CheckReport};
use lancesync_sources::DocumentSource;

use crate::{Error, Orchestrator, Result};

impl Orchestrator {
    /// Check `user_id`'s index against the user's sources (or only `source_id`) and against
    /// itself; with [`CheckOptions::repair`], repair it. Bounded by the run slots like a run,
    /// and kept out of the way of a restore. A repair whose source is being synced right now
    /// is refused as a conflict.
    pub async fn check(
        &self,
        user_id: &str,
        source_id: Option<&str>,
        options: CheckOptions,
    ) -> Result<CheckReport> {
        if *self.inner.shutdown.borrow() {
            return Err(Error::ShuttingDown);
        }
        let sources = self.user_sources(user_id, source_id);
        if let Some(id) = source_id
            && sources.is_empty()
        {
            return Err(Error::NotFound {
                user_id: user_id.into(),
                source_type: "*".into(),
                source_id: id.into(),
            });
        }
        let _permit = self.run_permit(user_id).await?;
        let borrowed: Vec<&dyn DocumentSource> = sources.iter().map(|s| s.as_ref()).collect();
        self.inner
            .engine
            .check(user_id, &borrowed, options)
            .await
            .map_err(|e| match e {
                lancesync_engine::Error::Busy { .. }
                | lancesync_engine::Error::Reindexing { .. } => Error::Conflict(e.to_string()),
                e => Error::Engine(e),
            })
    }

    /// The scheduled sources of `user_id` (or only `source_id`).
    pub(crate) fn user_sources(
        &self,
        user_id: &str,
        source_id: Option<&str>,
    ) -> Vec<Arc<dyn DocumentSource>> {
        let sources = self.inner.sources.lock().expect("lock");
        sources
            .iter()
            .filter(|(k, _)| k.user_id == user_id)
            .filter(|(k, _)| source_id.is_none_or(|id| k.source_id == id))
            .map(|(_, s)| Arc::clone(&s.source))
            .collect()
    }
}
