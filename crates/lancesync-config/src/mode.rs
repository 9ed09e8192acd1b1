//! Frontend type and the five storage modes.
//!
//! The *recommended* mode follows the matrix of frontend type and backend location; the
//! *effective* mode is what the S3 flags actually ask for. Validation rejects the
//! combinations the rules forbid, and a difference between the two is reported as a note.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::location::BackendLocation;

/// Which frontend the backend serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrontendType {
    /// A web app: cloud-native storage on a cloud backend.
    Web,
    /// A desktop app: always local-first.
    Desktop,
}

impl FrontendType {
    /// The word used in settings.
    pub fn as_str(&self) -> &'static str {
        match self {
            FrontendType::Web => "web",
            FrontendType::Desktop => "desktop",
        }
    }
}

impl fmt::Display for FrontendType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FrontendType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "web" => Ok(FrontendType::Web),
            "desktop" => Ok(FrontendType::Desktop),
            _ => Err(()),
        }
    }
}

/// Where each user's LanceDB database lives and what S3 does for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageMode {
    /// Local LanceDB only; no S3.
    LocalOnly,
    /// Local primary; mirrored incrementally to the S3 backup location after runs.
    LocalPrimaryS3Backup,
    /// Local primary; synced through S3 so several devices share one index.
    LocalPrimaryS3Sync,
    /// LanceDB on S3; searches served from a local replica.
    S3PrimaryLocalCache,
    /// LanceDB on S3, read and written there.
    S3Only,
}

impl StorageMode {
    /// Every mode.
    pub const ALL: [StorageMode; 5] = [
        StorageMode::LocalOnly,
        StorageMode::LocalPrimaryS3Backup,
        StorageMode::LocalPrimaryS3Sync,
        StorageMode::S3PrimaryLocalCache,
        StorageMode::S3Only,
    ];

    /// The mode's name, as in the architecture document.
    pub fn as_str(&self) -> &'static str {
        match self {
            StorageMode::LocalOnly => "local_only",
            StorageMode::LocalPrimaryS3Backup => "local_primary_s3_backup",
            StorageMode::LocalPrimaryS3Sync => "local_primary_s3_sync",
            StorageMode::S3PrimaryLocalCache => "s3_primary_local_cache",
            StorageMode::S3Only => "s3_only",
        }
    }

    /// Whether the primary copy lives on S3.
    pub fn s3_is_primary(&self) -> bool {
        matches!(self, StorageMode::S3PrimaryLocalCache | StorageMode::S3Only)
    }

    /// The settings that select this mode, for hints.
    pub fn how_to_select(&self) -> &'static str {
        match self {
            StorageMode::LocalOnly => {
                "S3_STORAGE_ENABLED=false S3_BACKUP_ENABLED=false USE_S3_AS_PRIMARY=false"
            }
            StorageMode::LocalPrimaryS3Backup => {
                "S3_BACKUP_ENABLED=true with S3_BACKUP_BUCKET, USE_S3_AS_PRIMARY=false (and, for a web frontend, S3_STORAGE_ENABLED=false)"
            }
            StorageMode::LocalPrimaryS3Sync => {
                "S3_STORAGE_ENABLED=true with S3_BUCKET, USE_S3_AS_PRIMARY=false"
            }
            StorageMode::S3PrimaryLocalCache => {
                "S3_STORAGE_ENABLED=true with S3_BUCKET, USE_S3_AS_PRIMARY=true, LOCAL_CACHE_ENABLED=true"
            }
            StorageMode::S3Only => {
                "S3_STORAGE_ENABLED=true with S3_BUCKET, USE_S3_AS_PRIMARY=true, LOCAL_CACHE_ENABLED=false"
            }
        }
    }
}

impl fmt::Display for StorageMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The S3 flags that decide the effective mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageFlags {
    /// `S3_STORAGE_ENABLED`.
    pub s3_storage_enabled: bool,
    /// `S3_BACKUP_ENABLED`.
    pub s3_backup_enabled: bool,
    /// `USE_S3_AS_PRIMARY`.
    pub use_s3_as_primary: bool,
    /// `LOCAL_CACHE_ENABLED`.
    pub local_cache_enabled: bool,
}

/// The mode seed 003's matrix recommends: web on a cloud backend uses S3 as primary with a
/// local cache; otherwise storage is local-first, synced through S3 for web and backed up to
/// S3 for desktop, and local only when S3 is off altogether.
pub fn recommended_mode(
    frontend: FrontendType,
    location: BackendLocation,
    s3_enabled: bool,
) -> StorageMode {
    match (frontend, location) {
        (FrontendType::Web, BackendLocation::Cloud) => StorageMode::S3PrimaryLocalCache,
        _ if !s3_enabled => StorageMode::LocalOnly,
        (FrontendType::Web, BackendLocation::Local) => StorageMode::LocalPrimaryS3Sync,
        (FrontendType::Desktop, _) => StorageMode::LocalPrimaryS3Backup,
    }
}

/// The mode the flags select. A web frontend with S3 storage on shares its index through S3;
/// a desktop with backup on is backed up; a desktop with only S3 storage on is synced.
pub fn effective_mode(frontend: FrontendType, flags: StorageFlags) -> StorageMode {
    if flags.use_s3_as_primary {
        return if flags.local_cache_enabled {
            StorageMode::S3PrimaryLocalCache
        } else {
            StorageMode::S3Only
        };
    }
    let web = frontend == FrontendType::Web;
    if flags.s3_storage_enabled && (web || !flags.s3_backup_enabled) {
        StorageMode::LocalPrimaryS3Sync
    } else if flags.s3_backup_enabled {
        StorageMode::LocalPrimaryS3Backup
    } else {
        StorageMode::LocalOnly
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BackendLocation::*;
    use FrontendType::*;
    use StorageMode::*;

    #[test]
    fn recommendation_matrix() {
        let table = [
            (Web, Cloud, true, S3PrimaryLocalCache),
            (Web, Cloud, false, S3PrimaryLocalCache),
            (Web, Local, true, LocalPrimaryS3Sync),
            (Web, Local, false, LocalOnly),
            (Desktop, Cloud, true, LocalPrimaryS3Backup),
            (Desktop, Local, true, LocalPrimaryS3Backup),
            (Desktop, Cloud, false, LocalOnly),
            (Desktop, Local, false, LocalOnly),
        ];
        for (frontend, location, s3, want) in table {
            assert_eq!(
                recommended_mode(frontend, location, s3),
                want,
                "{frontend} {location} s3={s3}"
            );
        }
    }

    #[test]
    fn flags_select_the_mode() {
        let f = |s3, backup, primary, cache| StorageFlags {
            s3_storage_enabled: s3,
            s3_backup_enabled: backup,
            use_s3_as_primary: primary,
            local_cache_enabled: cache,
        };
        let table = [
            (Web, f(true, false, true, true), S3PrimaryLocalCache),
            (Web, f(true, true, true, false), S3Only),
            (Web, f(true, false, false, true), LocalPrimaryS3Sync),
            (Web, f(true, true, false, true), LocalPrimaryS3Sync),
            (Web, f(false, true, false, true), LocalPrimaryS3Backup),
            (Web, f(false, false, false, true), LocalOnly),
            (Desktop, f(false, true, false, true), LocalPrimaryS3Backup),
            (Desktop, f(true, true, false, true), LocalPrimaryS3Backup),
            (Desktop, f(true, false, false, true), LocalPrimaryS3Sync),
            (Desktop, f(false, false, false, false), LocalOnly),
        ];
        for (frontend, flags, want) in table {
            assert_eq!(
                effective_mode(frontend, flags),
                want,
                "{frontend} {flags:?}"
            );
        }
    }

    #[test]
    fn names_round_trip_through_serde() {
        for mode in StorageMode::ALL {
            assert_eq!(
                serde_json::to_value(mode).unwrap(),
                serde_json::Value::String(mode.as_str().into())
            );
        }
    }
}
