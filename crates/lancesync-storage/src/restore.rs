//! Restores from S3 and time travel to an earlier version, and removing a user's database.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::mirror::{self, TransferReport};
use crate::state;
use crate::{Database, Error, Result, Storage, StorageMode, locked, validate_user_id};

/// The result of a restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    /// User.
    pub user_id: String,
    /// Where the database was restored from.
    pub from: String,
    /// What was downloaded (nothing for a time travel on S3).
    pub transfer: TransferReport,
    /// The versions restored (table -> version it now holds the content of).
    pub versions: BTreeMap<String, u64>,
    /// Where the database that was replaced was kept, if there was one.
    pub previous_kept_at: Option<PathBuf>,
}

impl Storage {
    /// Rebuild user `user_id`'s database from S3.
    ///
    /// - Local-primary modes: download the backup (or sync copy) into a staging folder,
    ///   optionally go back to `version`, then swap it in; the database it replaces is kept
    ///   beside it and named in the report.
    /// - `s3_primary_local_cache`: with `version`, time travel on S3; the replica is then
    ///   rebuilt from the primary.
    /// - `s3_only`: `version` is required (time travel on S3).
    ///
    /// `version` is the version of `documents_table`; `chunks_table` goes back to its last
    /// version written no later than that one (chunks are written before their documents).
    pub async fn restore(
        &self,
        user_id: &str,
        version: Option<u64>,
        documents_table: &str,
        chunks_table: &str,
    ) -> Result<RestoreReport> {
        validate_user_id(user_id)?;
        let t = self.remote_target()?;
        let lock = self.user_lock(user_id);
        let _one_at_a_time = lock.lock().await;
        let from = format!("{}/users/{user_id}", t.describe());
        if self.s3_primary() {
            let mut versions = BTreeMap::new();
            if let Some(v) = version {
                let db = self.database(user_id)?;
                versions = time_travel(&db, v, documents_table, chunks_table).await?;
            } else if self.mode == StorageMode::S3Only {
                return Err(Error::NotInMode {
                    mode: self.mode,
                    what: "restore without --version (the database already lives on S3)",
                });
            }
            let mut transfer = TransferReport::default();
            if self.mode == StorageMode::S3PrimaryLocalCache {
                let dir = self.local_dir(user_id);
                locked(&self.ready).remove(user_id);
                remove_dir_if_exists(&dir).await?;
                transfer =
                    mirror::pull(t.object_store().await?, &t.user_prefix(user_id), &dir, true)
                        .await?;
            }
            return Ok(RestoreReport {
                user_id: user_id.into(),
                from,
                transfer,
                versions,
                previous_kept_at: None,
            });
        }
        let store = t.object_store().await?;
        let prefix = t.user_prefix(user_id);
        let users_dir = self.local_base.join("users");
        let staging = users_dir.join(format!(".restore-{user_id}"));
        remove_dir_if_exists(&staging).await?;
        let transfer = mirror::pull(store, &prefix, &staging, false).await?;
        let remote_versions = mirror::latest_versions(&mirror::local_listing(&staging).await?);
        if remote_versions.is_empty() {
            remove_dir_if_exists(&staging).await?;
            return Err(Error::NothingToRestore { from });
        }
        let mut versions = remote_versions.clone();
        if let Some(v) = version {
            let staged = Database {
                uri: staging.to_string_lossy().into_owned(),
                storage_options: Vec::new(),
                local_dir: Some(staging.clone()),
                state_dir: staging.join(".lancesync"),
            };
            versions = time_travel(&staged, v, documents_table, chunks_table).await?;
        }
        let dir = self.local_dir(user_id);
        let mut previous_kept_at = None;
        if dir.exists() {
            let kept = users_dir.join(format!(".before-restore-{user_id}-{}", state::unix_now()));
            tokio::fs::rename(&dir, &kept)
                .await
                .map_err(|e| Error::Io {
                    path: dir.clone(),
                    source: e,
                })?;
            previous_kept_at = Some(kept);
        }
        tokio::fs::rename(&staging, &dir)
            .await
            .map_err(|e| Error::Io {
                path: staging.clone(),
                source: e,
            })?;
        let mut s = state::load(&self.state_dir, user_id)?;
        s.conflict = None;
        s.base_versions = remote_versions;
        if version.is_some() {
            // The restored version is a new version: it goes to S3 with the next copy.
            s.mark_pending();
        } else {
            s.succeeded();
        }
        state::save(&self.state_dir, user_id, &s)?;
        Ok(RestoreReport {
            user_id: user_id.into(),
            from,
            transfer,
            versions,
            previous_kept_at,
        })
    }

    /// Remove user `user_id`'s database where it is written (S3 objects in the S3-primary
    /// modes, the local folder otherwise) and any local replica. Backups are kept.
    pub async fn remove_user(&self, user_id: &str) -> Result<()> {
        validate_user_id(user_id)?;
        if self.s3_primary() {
            let t = self.remote_target()?;
            mirror::remove_prefix(t.object_store().await?.as_ref(), &t.user_prefix(user_id))
                .await?;
        }
        locked(&self.ready).remove(user_id);
        remove_dir_if_exists(&self.local_dir(user_id)).await
    }
}

pub(crate) async fn remove_dir_if_exists(dir: &Path) -> Result<()> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io {
            path: dir.to_path_buf(),
            source: e,
        }),
    }
}

/// Make `version` of the documents table (and the matching chunks version) the latest.
pub(crate) async fn time_travel(
    db: &Database,
    version: u64,
    documents_table: &str,
    chunks_table: &str,
) -> Result<BTreeMap<String, u64>> {
    let connection = lancedb::connect(&db.uri)
        .storage_options(db.storage_options.clone())
        .execute()
        .await?;
    let docs = connection.open_table(documents_table).execute().await?;
    let chunks = connection.open_table(chunks_table).execute().await?;
    let doc_versions = docs.list_versions().await?;
    let Some(target) = doc_versions.iter().find(|v| v.version == version) else {
        let available: Vec<u64> = doc_versions.iter().map(|v| v.version).collect();
        return Err(Error::NoSuchVersion {
            version,
            available: format!(
                "{}..={}",
                available.iter().min().unwrap_or(&0),
                available.iter().max().unwrap_or(&0)
            ),
        });
    };
    let chunk_version = chunks
        .list_versions()
        .await?
        .into_iter()
        .filter(|v| v.timestamp <= target.timestamp)
        .map(|v| v.version)
        .max()
        .ok_or_else(|| Error::NoSuchVersion {
            version,
            available: "no chunks version is that old".into(),
        })?;
    docs.checkout(version).await?;
    docs.restore().await?;
    chunks.checkout(chunk_version).await?;
    chunks.restore().await?;
    Ok(BTreeMap::from([
        (documents_table.to_string(), version),
        (chunks_table.to_string(), chunk_version),
    ]))
}
