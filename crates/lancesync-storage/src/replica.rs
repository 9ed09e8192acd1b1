//! The local replica of `s3_primary_local_cache`: served at once, refreshed incrementally in
//! the background, at most once per refresh interval.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::mirror::{self, TransferReport};
use crate::state::{self, now_rfc3339};
use crate::{Database, Result, Storage, StorageMode, locked, validate_user_id};

impl Storage {
    /// Where searches read user `user_id`'s database, when not where it is written: the
    /// local replica in `s3_primary_local_cache`. A replica that does not exist yet is
    /// fetched first; an existing one is served at once, and checked against S3 in the
    /// background at most once per refresh interval.
    pub async fn read_replica(self: &Arc<Self>, user_id: &str) -> Result<Option<Database>> {
        if self.mode != StorageMode::S3PrimaryLocalCache {
            return Ok(None);
        }
        let primary = self.database(user_id)?;
        let dir = self.local_dir(user_id);
        let replica = Database {
            uri: dir.to_string_lossy().into_owned(),
            storage_options: Vec::new(),
            local_dir: Some(dir.clone()),
            state_dir: primary.state_dir,
        };
        if !locked(&self.ready).contains(user_id) {
            if !has_versions(&dir) {
                self.refresh_replica(user_id).await?;
                return Ok(Some(replica));
            }
            locked(&self.ready).insert(user_id.to_string());
        }
        let due = {
            let mut checks = locked(&self.last_check);
            let due = checks
                .get(user_id)
                .is_none_or(|t| t.elapsed() >= self.cache_refresh_interval);
            if due {
                checks.insert(user_id.to_string(), Instant::now());
            }
            due
        };
        // A refresh already under way covers this one; otherwise one starts holding the
        // user's lock, so whoever waits for the lock next knows no refresh is in flight.
        if due && let Ok(guard) = self.user_lock(user_id).try_lock_owned() {
            let me = self.clone();
            let user = user_id.to_string();
            tokio::spawn(async move {
                let _one_at_a_time = guard;
                if let Err(e) = me.pull_replica(&user).await {
                    tracing::warn!(user_id = %user, error = %e, "refreshing the local cache from S3 failed; searches use the cached version");
                }
            });
        }
        Ok(Some(replica))
    }

    pub(crate) fn user_lock(&self, user_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        locked(&self.busy)
            .entry(user_id.to_string())
            .or_default()
            .clone()
    }

    /// Bring the local replica up to the primary's latest version, fetching only the files
    /// it lacks.
    pub async fn refresh_replica(&self, user_id: &str) -> Result<TransferReport> {
        validate_user_id(user_id)?;
        let lock = self.user_lock(user_id);
        let _one_at_a_time = lock.lock().await;
        self.pull_replica(user_id).await
    }

    /// [`Storage::refresh_replica`] with the user's lock held by the caller.
    pub(crate) async fn pull_replica(&self, user_id: &str) -> Result<TransferReport> {
        let t = self.remote_target()?;
        let report = mirror::pull(
            t.object_store().await?,
            &t.user_prefix(user_id),
            &self.local_dir(user_id),
            true,
        )
        .await?;
        locked(&self.last_check).insert(user_id.to_string(), Instant::now());
        let mut s = state::load(&self.state_dir, user_id)?;
        s.last_refresh = Some(now_rfc3339());
        state::save(&self.state_dir, user_id, &s)?;
        tracing::debug!(
            user_id,
            files = report.files,
            bytes = report.bytes,
            "local cache refreshed"
        );
        Ok(report)
    }
}

/// Whether `dir` holds a table with at least one version: a usable replica.
pub(crate) fn has_versions(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        e.file_name().to_string_lossy().ends_with(".lance")
            && std::fs::read_dir(e.path().join("_versions")).is_ok_and(|mut v| v.next().is_some())
    })
}
