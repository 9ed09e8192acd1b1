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

mod backup;
mod error;
mod location;
mod mirror;
mod probe;
mod replica;
mod restore;
mod state;
mod target;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

pub use backup::AfterWrite;
pub use error::{Error, ProbeFailure, Result};
pub use lancesync_config::StorageMode;
pub use location::{Database, is_valid_user_id};
pub use mirror::{TransferReport, pull, push, remove_prefix};
pub use probe::{StorageStatus, UserStorageStatus};
pub use restore::RestoreReport;
pub use state::{BackupRecord, UserState, now_rfc3339};
pub use target::S3Target;

use location::validate_user_id;

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

    pub(crate) fn s3_primary(&self) -> bool {
        self.mode.s3_is_primary()
    }

    pub(crate) fn local_dir(&self, user_id: &str) -> PathBuf {
        self.local_base.join("users").join(user_id)
    }

    pub(crate) fn remote_target(&self) -> Result<&S3Target> {
        self.remote.as_ref().ok_or(Error::NoS3 { mode: self.mode })
    }
}

/// Lock `m`, carrying on after a panic elsewhere: these maps hold plain bookkeeping.
pub(crate) fn locked<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
