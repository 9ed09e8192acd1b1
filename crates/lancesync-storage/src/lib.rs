//! lancesync storage: where each user's LanceDB database lives in each storage mode, and
//! the S3 copies around it.
//!
//! | mode | writes | searches | S3 |
//! | --- | --- | --- | --- |
//! | `local_only` | local | local | none |
//! | `local_primary_s3_backup` | local | local | incremental backup after writes; restore |
//! | `local_primary_s3_sync` | local | local | backup, plus pull of a newer remote (multi-device) |
//! | `s3_primary_local_cache` | S3 | local replica, refreshed incrementally | primary |
//! | `s3_only` | S3 | S3 | primary |
//!
//! The entry point is [`Storage`]: [`Storage::database`] says where a user's database is
//! written, [`Storage::read_replica`] where searches read it, and [`Storage::after_write`],
//! [`Storage::backup`] and [`Storage::restore`] move it to and from S3.
//!
//! ```no_run
//! # async fn demo() -> Result<(), lancesync_storage::Error> {
//! use lancesync_storage::{S3Target, Storage};
//! use lancesync_config::StorageMode;
//!
//! let backup = S3Target::new("my-backups", "lancedb-backup").with_endpoint("http://127.0.0.1:9000");
//! let storage = Storage::new(StorageMode::LocalPrimaryS3Backup, "data/lancedb", "data/sync_state", Some(backup));
//! let db = storage.database("alice")?; // data/lancedb/users/alice
//! // ... write with LanceDB at db.uri, then:
//! let record = storage.backup("alice").await?;
//! println!("sent {} files, {} bytes", record.files, record.bytes);
//! # Ok(()) }
//! ```

mod mirror;
mod state;
mod target;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

pub use lancesync_config::StorageMode;
pub use mirror::{TransferReport, pull, push, remove_prefix};
pub use state::{BackupRecord, UserState, now_rfc3339};
pub use target::S3Target;

use serde::{Deserialize, Serialize};

/// Where one user's database is, as LanceDB should open it.
#[derive(Clone, PartialEq, Eq)]
pub struct Database {
    /// `lancedb::connect` URI: a local folder or `s3://bucket/prefix/users/U`.
    pub uri: String,
    /// Storage options for that URI (credentials included when configured: never log).
    pub storage_options: Vec<(String, String)>,
    /// The folder, when the database is local.
    pub local_dir: Option<PathBuf>,
    /// A local folder for lock files, run markers and reports about this database.
    pub state_dir: PathBuf,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("uri", &self.uri)
            .field("local_dir", &self.local_dir)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Whether the database is on S3.
    pub fn is_remote(&self) -> bool {
        self.local_dir.is_none()
    }
}

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

/// One user's storage at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserStorageStatus {
    /// User.
    pub user_id: String,
    /// Local size in bytes (the database or its replica).
    pub local_bytes: u64,
    /// What lancesync remembers about S3 for this user.
    pub state: UserState,
}

/// Storage at a glance, for `sync-cli storage status` and the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StorageStatus {
    /// The mode.
    pub mode: String,
    /// Where writes go (`{base}/users/U` or `s3://bucket/prefix/users/U`).
    pub primary: String,
    /// Where searches read, when not the primary.
    pub cache: Option<String>,
    /// Where copies go, in the local-primary modes with S3.
    pub backup: Option<String>,
    /// Users with changes not yet copied to S3.
    pub backlog: usize,
    /// Per user.
    pub users: Vec<UserStorageStatus>,
}

/// The storage of every user, in one mode.
#[derive(Debug)]
pub struct Storage {
    mode: StorageMode,
    local_base: PathBuf,
    state_dir: PathBuf,
    remote: Option<S3Target>,
    cache_refresh_interval: Duration,
    last_check: StdMutex<HashMap<String, Instant>>,
    ready: StdMutex<std::collections::HashSet<String>>,
    busy: StdMutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Storage {
    /// Storage in `mode` with local databases (or replicas) under `local_base`, state under
    /// `state_dir`, and `remote` as the S3 primary, sync target or backup target. A mode
    /// that needs S3 without a target acts as `local_only`.
    pub fn new(
        mode: StorageMode,
        local_base: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
        remote: Option<S3Target>,
    ) -> Self {
        let mode = if remote.is_none() {
            StorageMode::LocalOnly
        } else {
            mode
        };
        Self {
            mode,
            local_base: local_base.into(),
            state_dir: state_dir.into(),
            remote: if mode == StorageMode::LocalOnly {
                None
            } else {
                remote
            },
            cache_refresh_interval: Duration::from_secs(30),
            last_check: StdMutex::default(),
            ready: StdMutex::default(),
            busy: StdMutex::default(),
        }
    }

    /// Local databases under `base`, no S3.
    pub fn local(base: impl Into<PathBuf>) -> Self {
        let base = base.into();
        Self::new(StorageMode::LocalOnly, base.clone(), base, None)
    }

    /// The storage lancesync's settings describe.
    pub fn from_settings(settings: &lancesync_config::Settings, mode: StorageMode) -> Result<Self> {
        let remote = match mode {
            StorageMode::LocalOnly => None,
            StorageMode::LocalPrimaryS3Backup => Some(
                S3Target::backup_from_settings(settings).ok_or_else(|| Error::Config {
                    message: "storage mode local_primary_s3_backup needs S3_BACKUP_BUCKET".into(),
                })?,
            ),
            _ => Some(
                S3Target::primary_from_settings(settings).ok_or_else(|| Error::Config {
                    message: format!("storage mode {mode} needs S3_BUCKET"),
                })?,
            ),
        };
        let mut storage = Self::new(
            mode,
            settings.lancedb.uri.clone(),
            settings.monitoring.state_dir.clone(),
            remote,
        );
        storage.cache_refresh_interval = settings.s3.cache_refresh_interval;
        Ok(storage)
    }

    /// How often a search may look for a newer primary (cache mode).
    pub fn with_cache_refresh_interval(mut self, interval: Duration) -> Self {
        self.cache_refresh_interval = interval;
        self
    }

    /// The mode.
    pub fn mode(&self) -> StorageMode {
        self.mode
    }

    /// The S3 target (primary, sync or backup), if any.
    pub fn remote(&self) -> Option<&S3Target> {
        self.remote.as_ref()
    }

    /// The folder holding local databases (`LANCEDB_URI`).
    pub fn local_base(&self) -> &Path {
        &self.local_base
    }

    fn s3_primary(&self) -> bool {
        self.mode.s3_is_primary()
    }

    fn local_dir(&self, user_id: &str) -> PathBuf {
        self.local_base.join("users").join(user_id)
    }

    fn remote_target(&self) -> Result<&S3Target> {
        self.remote.as_ref().ok_or(Error::NoS3 { mode: self.mode })
    }

    /// Where user `user_id`'s database is written.
    pub fn database(&self, user_id: &str) -> Result<Database> {
        validate_user_id(user_id)?;
        Ok(match (&self.remote, self.s3_primary()) {
            (Some(t), true) => Database {
                uri: t.user_uri(user_id),
                storage_options: t.storage_options(),
                local_dir: None,
                state_dir: self.state_dir.join("users").join(user_id).join("engine"),
            },
            _ => {
                let dir = self.local_dir(user_id);
                Database {
                    uri: dir.to_string_lossy().into_owned(),
                    storage_options: Vec::new(),
                    state_dir: dir.join(".lancesync"),
                    local_dir: Some(dir),
                }
            }
        })
    }

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

    fn user_lock(&self, user_id: &str) -> Arc<tokio::sync::Mutex<()>> {
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
    async fn pull_replica(&self, user_id: &str) -> Result<TransferReport> {
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

    fn mark_pending(&self, user_id: &str) -> Result<()> {
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

    async fn copy_up(
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

    /// Check that S3 answers: the bucket exists and the credentials may list it. A clear
    /// error otherwise (missing bucket, refused credentials, unreachable endpoint).
    pub async fn probe(&self) -> Result<()> {
        let Some(t) = &self.remote else {
            return Ok(());
        };
        t.object_store()
            .await?
            .list_with_delimiter(Some(&t.users_prefix()))
            .await
            .map_err(|e| Error::probe(t, e))?;
        Ok(())
    }

    /// Mode, locations, backlog and per-user state, for `users`.
    pub async fn status(&self, users: &[String]) -> Result<StorageStatus> {
        let primary = match (&self.remote, self.s3_primary()) {
            (Some(t), true) => format!("{}/users/{{user}}", t.describe()),
            _ => format!("{}/users/{{user}}", self.local_base.display()),
        };
        let cache = (self.mode == StorageMode::S3PrimaryLocalCache)
            .then(|| format!("{}/users/{{user}}", self.local_base.display()));
        let backup = match (&self.remote, self.s3_primary()) {
            (Some(t), false) => Some(format!("{}/users/{{user}}", t.describe())),
            _ => None,
        };
        let mut all: Vec<String> = users.to_vec();
        for u in state::users(&self.state_dir) {
            if !all.contains(&u) {
                all.push(u);
            }
        }
        all.sort();
        let mut out = Vec::new();
        for user_id in all {
            let listing = mirror::local_listing(&self.local_dir(&user_id)).await?;
            out.push(UserStorageStatus {
                local_bytes: listing.values().sum(),
                state: state::load(&self.state_dir, &user_id)?,
                user_id,
            });
        }
        Ok(StorageStatus {
            mode: self.mode.to_string(),
            primary,
            cache,
            backup,
            backlog: out
                .iter()
                .filter(|u| u.state.pending_since.is_some())
                .count(),
            users: out,
        })
    }
}

/// The latest version of each table on S3 under `prefix` and in `dir`.
async fn latest_versions_both(
    store: &dyn object_store::ObjectStore,
    prefix: &object_store::path::Path,
    dir: &Path,
) -> Result<(BTreeMap<String, u64>, BTreeMap<String, u64>)> {
    let requests = std::sync::atomic::AtomicU64::new(0);
    let remote = mirror::latest_versions(&mirror::remote_listing(store, prefix, &requests).await?);
    let local = mirror::latest_versions(&mirror::local_listing(dir).await?);
    Ok((remote, local))
}

/// Lock `m`, carrying on after a panic elsewhere: these maps hold plain bookkeeping.
fn locked<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn conflict_message(
    user_id: &str,
    base: &BTreeMap<String, u64>,
    local: &BTreeMap<String, u64>,
    remote: &BTreeMap<String, u64>,
) -> String {
    format!(
        "user {user_id}: S3 and this device both changed since they last agreed (last shared versions {base:?}, this device {local:?}, S3 {remote:?}); nothing was overwritten. Run `sync-cli restore --user {user_id}` to take S3's copy, then sync again to re-apply this device's sources"
    )
}

/// Whether `dir` holds a table with at least one version: a usable replica.
fn has_versions(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        e.file_name().to_string_lossy().ends_with(".lance")
            && std::fs::read_dir(e.path().join("_versions")).is_ok_and(|mut v| v.next().is_some())
    })
}

async fn remove_dir_if_exists(dir: &Path) -> Result<()> {
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
async fn time_travel(
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

/// Whether `user_id` may name a user: it names folders and key prefixes and appears in
/// filters, so 1 to 128 letters, digits, `-`, `_`, `.`, `@`, not starting with a dot (hidden
/// folders beside users' databases hold restores in progress). The engine uses this rule too.
pub fn is_valid_user_id(user_id: &str) -> bool {
    (1..=128).contains(&user_id.len())
        && !user_id.starts_with('.')
        && user_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

fn validate_user_id(user_id: &str) -> Result<()> {
    if is_valid_user_id(user_id) {
        Ok(())
    } else {
        Err(Error::InvalidUser {
            user_id: user_id.into(),
        })
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// S3 settings that cannot work.
    #[error("S3 configuration: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// An S3 request failed (after retries).
    #[error("S3: {0}")]
    S3(#[source] object_store::Error),
    /// S3 could not be reached or refused access at a probe.
    #[error("S3 at {target}: {message}")]
    Probe {
        /// Bucket and prefix.
        target: String,
        /// What kind of failure.
        failure: ProbeFailure,
        /// What went wrong, and what to check.
        message: String,
    },
    /// Another device wrote versions this one has not seen.
    #[error("conflict: {message}")]
    Conflict {
        /// What differs and how to resolve it.
        message: String,
    },
    /// The operation needs S3, and this mode has none.
    #[error("storage mode {mode} has no S3 location")]
    NoS3 {
        /// The mode.
        mode: StorageMode,
    },
    /// The operation does not apply in this mode.
    #[error("storage mode {mode} does not support {what}")]
    NotInMode {
        /// The mode.
        mode: StorageMode,
        /// What was asked.
        what: &'static str,
    },
    /// No database to back up for this user.
    #[error("user {user_id} has no local database")]
    UnknownUser {
        /// User.
        user_id: String,
    },
    /// The user id cannot name a folder or key prefix.
    #[error(
        "invalid user id {user_id:?}: use letters, digits, '-', '_', '.', '@' (at most 128, not starting with '.')"
    )]
    InvalidUser {
        /// The value given.
        user_id: String,
    },
    /// S3 holds no database for this user.
    #[error("nothing to restore: {from} holds no database")]
    NothingToRestore {
        /// Where we looked.
        from: String,
    },
    /// The version asked for does not exist.
    #[error("version {version} does not exist (available: {available})")]
    NoSuchVersion {
        /// Asked for.
        version: u64,
        /// What exists.
        available: String,
    },
    /// LanceDB failed.
    #[error("LanceDB: {0}")]
    Lance(#[from] lancedb::Error),
    /// A local file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    fn probe(t: &S3Target, e: object_store::Error) -> Self {
        let text = e.to_string();
        let mut chain = text.clone();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            chain.push_str(&format!(": {s}"));
            source = s.source();
        }
        // Listing a prefix of an existing bucket never answers 404: a 404 is the bucket.
        let (failure, hint) = if matches!(e, object_store::Error::NotFound { .. })
            || text.contains("NoSuchBucket")
        {
            (
                ProbeFailure::MissingBucket,
                format!(
                    "bucket {:?} does not exist: create it or fix the bucket setting",
                    t.bucket()
                ),
            )
        } else if matches!(
            e,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        ) || text.contains("403")
            || text.contains("InvalidAccessKeyId")
            || text.contains("SignatureDoesNotMatch")
        {
            (
                ProbeFailure::AccessDenied,
                "access refused: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the instance role) and the bucket policy".to_string(),
            )
        } else if [
            "connect",
            "Connection refused",
            "error sending request",
            "timed out",
            "dns",
        ]
        .iter()
        .any(|needle| chain.contains(needle))
        {
            (
                ProbeFailure::Unreachable,
                format!(
                    "unreachable: check S3_ENDPOINT ({}) and the network",
                    t.endpoint().unwrap_or("AWS")
                ),
            )
        } else {
            (ProbeFailure::Other, "request failed".to_string())
        };
        Error::Probe {
            target: t.describe(),
            failure,
            message: format!("{hint} ({text})"),
        }
    }
}

/// Why a probe of S3 failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeFailure {
    /// The bucket does not exist: a configuration error.
    MissingBucket,
    /// The credentials were refused: a configuration error.
    AccessDenied,
    /// No answer (endpoint down, network): may pass.
    Unreachable,
    /// Anything else S3 answered.
    Other,
}

impl ProbeFailure {
    /// Whether this is a settings mistake rather than a passing outage.
    pub fn is_configuration(self) -> bool {
        matches!(
            self,
            ProbeFailure::MissingBucket | ProbeFailure::AccessDenied
        )
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_puts_the_database_where_its_table_says() {
        let t = S3Target::new("bucket", "lancedb-primary");
        let local = Storage::new(StorageMode::LocalOnly, "/db", "/state", Some(t.clone()));
        assert!(local.remote().is_none());
        let db = local.database("alice").unwrap();
        assert_eq!(db.local_dir.as_deref(), Some(Path::new("/db/users/alice")));
        assert_eq!(db.state_dir, Path::new("/db/users/alice/.lancesync"));
        let s3 = Storage::new(StorageMode::S3Only, "/db", "/state", Some(t.clone()));
        let db = s3.database("alice").unwrap();
        assert!(db.is_remote());
        assert_eq!(db.uri, "s3://bucket/lancedb-primary/users/alice");
        assert_eq!(db.state_dir, Path::new("/state/users/alice/engine"));
        let backup = Storage::new(StorageMode::LocalPrimaryS3Backup, "/db", "/state", Some(t));
        assert!(!backup.database("alice").unwrap().is_remote());
        let none = Storage::new(StorageMode::S3Only, "/db", "/state", None);
        assert_eq!(none.mode(), StorageMode::LocalOnly);
        for bad in ["", "../x", ".hidden", "a/b", "a b"] {
            assert!(
                matches!(s3.database(bad), Err(Error::InvalidUser { .. })),
                "{bad}"
            );
        }
    }
}
