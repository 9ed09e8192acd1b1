//! Copies to S3: after every write (queued with backoff when S3 fails), on request, the
//! multi-device pull of `local_primary_s3_sync` and its conflict detection.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::mirror::{self, TransferReport};
use crate::state::{self, BackupRecord, UserState};
use crate::{Error, Result, S3Target, Storage, StorageMode, locked, now_rfc3339, validate_user_id};

/// What happened to S3 after a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AfterWrite {
    /// Nothing to do in this mode.
    Nothing,
    /// The backup (or sync copy) is up to date.
    BackedUp {
        /// What was sent.
        record: BackupRecord,
    },
    /// The replica was refreshed from the primary.
    Refreshed {
        /// What was fetched.
        report: TransferReport,
    },
    /// The copy failed and is queued; it is retried with backoff.
    Queued {
        /// Why.
        error: String,
    },
    /// S3 has versions this device has not seen, and this device has its own: nothing
    /// was overwritten. Restore from S3 (then sync again) to resolve.
    Conflict {
        /// What differs.
        message: String,
    },
}

impl Storage {
    /// Before a write in `local_primary_s3_sync`: if S3 holds newer versions and this device
    /// has no changes of its own since it last agreed with S3 (or no database at all), fetch
    /// them. Returns what was fetched; `None` when nothing was needed. A conflict is recorded
    /// (see [`Storage::status`]) and local work goes on: nothing is overwritten either way.
    pub async fn before_write(&self, user_id: &str) -> Result<Option<TransferReport>> {
        if self.mode != StorageMode::LocalPrimaryS3Sync {
            return Ok(None);
        }
        let t = self.remote_target()?;
        let lock = self.user_lock(user_id);
        let _one_at_a_time = lock.lock().await;
        let store = t.object_store().await?;
        let prefix = t.user_prefix(user_id);
        let dir = self.local_dir(user_id);
        let (remote, local) = latest_versions_both(store.as_ref(), &prefix, &dir).await?;
        let mut s = state::load(&self.state_dir, user_id)?;
        if remote.is_empty() || remote == s.base_versions && !s.base_versions.is_empty() {
            return Ok(None);
        }
        let local_unchanged = local.is_empty() || local == s.base_versions;
        if !local_unchanged {
            if remote != local {
                let message = conflict_message(user_id, &s.base_versions, &local, &remote);
                tracing::warn!(user_id, "{message}");
                s.conflict = Some(message);
                state::save(&self.state_dir, user_id, &s)?;
            }
            return Ok(None);
        }
        let report = mirror::pull(store, &prefix, &dir, false).await?;
        s.base_versions = remote;
        s.conflict = None;
        state::save(&self.state_dir, user_id, &s)?;
        tracing::info!(
            user_id,
            files = report.files,
            "fetched newer versions from S3"
        );
        Ok(Some(report))
    }

    /// After a write: copy to S3 in the local-primary modes with S3 (queued with backoff if
    /// S3 fails), refresh the replica in cache mode. Never fails: the write itself is done.
    pub async fn after_write(&self, user_id: &str) -> AfterWrite {
        match self.mode {
            StorageMode::LocalOnly | StorageMode::S3Only => AfterWrite::Nothing,
            StorageMode::S3PrimaryLocalCache => match self.refresh_replica(user_id).await {
                Ok(report) => AfterWrite::Refreshed { report },
                Err(e) => {
                    tracing::warn!(user_id, error = %e, "refreshing the local cache failed; the next search retries");
                    locked(&self.last_check).remove(user_id);
                    AfterWrite::Queued {
                        error: e.to_string(),
                    }
                }
            },
            StorageMode::LocalPrimaryS3Backup | StorageMode::LocalPrimaryS3Sync => {
                if let Err(e) = self.mark_pending(user_id) {
                    tracing::error!(user_id, error = %e, "could not record the S3 backlog");
                }
                match self.backup(user_id).await {
                    Ok(record) => AfterWrite::BackedUp { record },
                    Err(Error::Conflict { message }) => AfterWrite::Conflict { message },
                    Err(e) => {
                        tracing::warn!(user_id, error = %e, "copy to S3 failed; queued for retry");
                        AfterWrite::Queued {
                            error: e.to_string(),
                        }
                    }
                }
            }
        }
    }

    pub(crate) fn mark_pending(&self, user_id: &str) -> Result<()> {
        let mut s = state::load(&self.state_dir, user_id)?;
        s.mark_pending();
        state::save(&self.state_dir, user_id, &s)
    }

    /// Copy user `user_id`'s local database to S3 now: only files S3 lacks, data before
    /// manifests. In `local_primary_s3_sync`, refused with [`Error::Conflict`] when S3 has
    /// moved on since this device last agreed with it.
    pub async fn backup(&self, user_id: &str) -> Result<BackupRecord> {
        validate_user_id(user_id)?;
        if self.s3_primary() {
            return Err(Error::NotInMode {
                mode: self.mode,
                what: "backup (the database is written to S3 directly)",
            });
        }
        let t = self.remote_target()?;
        let dir = self.local_dir(user_id);
        if !dir.is_dir() {
            return Err(Error::UnknownUser {
                user_id: user_id.into(),
            });
        }
        let lock = self.user_lock(user_id);
        let _one_at_a_time = lock.lock().await;
        let mut s = state::load(&self.state_dir, user_id)?;
        let result = self.copy_up(t, user_id, &dir, &mut s).await;
        match &result {
            Ok(record) => {
                s.succeeded();
                s.conflict = None;
                s.last_backup = Some(record.clone());
                tracing::info!(
                    user_id,
                    files = record.files,
                    bytes = record.bytes,
                    "S3 copy complete"
                );
            }
            Err(Error::Conflict { message }) => {
                s.mark_pending();
                s.conflict = Some(message.clone());
            }
            Err(e) => {
                s.mark_pending();
                s.failed(e.to_string());
            }
        }
        state::save(&self.state_dir, user_id, &s)?;
        result
    }

    pub(crate) async fn copy_up(
        &self,
        t: &S3Target,
        user_id: &str,
        dir: &Path,
        s: &mut UserState,
    ) -> Result<BackupRecord> {
        let store = t.object_store().await?;
        let prefix = t.user_prefix(user_id);
        if self.mode == StorageMode::LocalPrimaryS3Sync {
            let (remote, local) = latest_versions_both(store.as_ref(), &prefix, dir).await?;
            let remote_moved = !remote.is_empty() && remote != s.base_versions;
            if remote_moved && remote != local {
                return Err(Error::Conflict {
                    message: conflict_message(user_id, &s.base_versions, &local, &remote),
                });
            }
        }
        let report = mirror::push(dir, store, &prefix).await?;
        let versions = mirror::latest_versions(&mirror::local_listing(dir).await?);
        s.base_versions = versions.clone();
        Ok(BackupRecord {
            at: now_rfc3339(),
            versions,
            files: report.files,
            bytes: report.bytes,
            requests: report.requests,
        })
    }

    /// Retry queued copies whose backoff has passed. Returns each user tried and the result.
    pub async fn retry_pending(&self) -> Vec<(String, Result<BackupRecord>)> {
        if !matches!(
            self.mode,
            StorageMode::LocalPrimaryS3Backup | StorageMode::LocalPrimaryS3Sync
        ) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for user in state::users(&self.state_dir) {
            let Ok(s) = state::load(&self.state_dir, &user) else {
                continue;
            };
            if s.pending_since.is_some() && s.attempt_due() && s.conflict.is_none() {
                let result = self.backup(&user).await;
                out.push((user, result));
            }
        }
        out
    }

    /// Users whose changes wait to be copied to S3.
    pub fn backlog(&self) -> Vec<String> {
        state::users(&self.state_dir)
            .into_iter()
            .filter(|u| state::load(&self.state_dir, u).is_ok_and(|s| s.pending_since.is_some()))
            .collect()
    }

    /// Users whose copy to S3 is withheld by a multi-device conflict.
    pub fn conflicts(&self) -> Vec<String> {
        state::users(&self.state_dir)
            .into_iter()
            .filter(|u| state::load(&self.state_dir, u).is_ok_and(|s| s.conflict.is_some()))
            .collect()
    }

    /// A user's S3 state.
    pub fn user_state(&self, user_id: &str) -> Result<UserState> {
        validate_user_id(user_id)?;
        state::load(&self.state_dir, user_id)
    }
}

/// The latest version of each table on S3 under `prefix` and in `dir`.
pub(crate) async fn latest_versions_both(
    store: &dyn object_store::ObjectStore,
    prefix: &object_store::path::Path,
    dir: &Path,
) -> Result<(BTreeMap<String, u64>, BTreeMap<String, u64>)> {
    let requests = std::sync::atomic::AtomicU64::new(0);
    let remote = mirror::latest_versions(&mirror::remote_listing(store, prefix, &requests).await?);
    let local = mirror::latest_versions(&mirror::local_listing(dir).await?);
    Ok((remote, local))
}

pub(crate) fn conflict_message(
    user_id: &str,
    base: &BTreeMap<String, u64>,
    local: &BTreeMap<String, u64>,
    remote: &BTreeMap<String, u64>,
) -> String {
    format!(
        "user {user_id}: S3 and this device both changed since they last agreed (last shared versions {base:?}, this device {local:?}, S3 {remote:?}); nothing was overwritten. Run `sync-cli restore --user {user_id}` to take S3's copy, then sync again to re-apply this device's sources"
    )
}
