//! What lancesync remembers per user about S3: the backup backlog, the last backup, and
//! (multi-device sync) the remote versions this device last agreed with.
//!
//! Kept in `{SYNC_STATE_DIR}/users/{user}/storage.json`, written atomically, so a change
//! that could not be sent survives a restart and is sent when S3 returns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One completed copy to S3.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// When it completed (RFC 3339).
    pub at: String,
    /// The version of each table it holds.
    pub versions: BTreeMap<String, u64>,
    /// Files sent.
    pub files: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Requests made.
    pub requests: u64,
}

/// A user's S3 state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserState {
    /// Since when local changes wait to be copied to S3 (RFC 3339); `None` when none wait.
    #[serde(default)]
    pub pending_since: Option<String>,
    /// Failed attempts since the last success.
    #[serde(default)]
    pub attempts: u32,
    /// No new attempt before this time (seconds since the Unix epoch).
    #[serde(default)]
    pub next_attempt_unix: Option<u64>,
    /// Why the last attempt failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Set when S3 and this device both moved on from the versions they last shared.
    #[serde(default)]
    pub conflict: Option<String>,
    /// The last complete backup.
    #[serde(default)]
    pub last_backup: Option<BackupRecord>,
    /// Multi-device sync: the remote tables' versions this device last pushed or pulled.
    #[serde(default)]
    pub base_versions: BTreeMap<String, u64>,
    /// Local cache: when the replica was last brought up to date (RFC 3339).
    #[serde(default)]
    pub last_refresh: Option<String>,
}

impl UserState {
    /// Whether a new attempt is allowed now.
    pub fn attempt_due(&self) -> bool {
        self.next_attempt_unix.is_none_or(|t| unix_now() >= t)
    }

    /// Record a failed attempt and when to try again: 30 s, doubling, at most 30 minutes.
    pub fn failed(&mut self, error: String) {
        self.attempts = self.attempts.saturating_add(1);
        let wait = Duration::from_secs(30)
            .saturating_mul(1 << (self.attempts - 1).min(6))
            .min(Duration::from_secs(30 * 60));
        self.next_attempt_unix = Some(unix_now() + wait.as_secs());
        self.last_error = Some(error);
    }

    /// Record that local changes wait to be copied.
    pub fn mark_pending(&mut self) {
        if self.pending_since.is_none() {
            self.pending_since = Some(now_rfc3339());
        }
    }

    /// Record a success: nothing waits any more.
    pub fn succeeded(&mut self) {
        self.pending_since = None;
        self.attempts = 0;
        self.next_attempt_unix = None;
        self.last_error = None;
    }
}

/// Where a user's state file lives.
pub fn state_path(state_dir: &Path, user_id: &str) -> PathBuf {
    state_dir.join("users").join(user_id).join("storage.json")
}

/// Read a user's state; a missing file is the empty state.
pub fn load(state_dir: &Path, user_id: &str) -> Result<UserState> {
    let path = state_path(state_dir, user_id);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Internal(format!(
            "{} is not a valid storage state ({e}); remove it to start over (the next backup then compares with S3 again)",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UserState::default()),
        Err(e) => Err(Error::Io { path, source: e }),
    }
}

/// Write a user's state atomically.
pub fn save(state_dir: &Path, user_id: &str, state: &UserState) -> Result<()> {
    let path = state_path(state_dir, user_id);
    let io = |e| Error::Io {
        path: path.clone(),
        source: e,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("json.tmp");
    let body = serde_json::to_vec_pretty(state).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::write(&tmp, body).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)
}

/// Users with a state file.
pub fn users(state_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(state_dir.join("users")) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().join("storage.json").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    out.sort();
    out
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Now, as RFC 3339 in UTC, to the second.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_a_round_trip_and_backs_off() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path(), "u").unwrap(), UserState::default());
        let mut s = UserState::default();
        s.mark_pending();
        s.failed("S3 unreachable".into());
        assert!(!s.attempt_due());
        save(dir.path(), "u", &s).unwrap();
        assert_eq!(load(dir.path(), "u").unwrap(), s);
        assert_eq!(users(dir.path()), vec!["u".to_string()]);
        s.succeeded();
        assert!(s.attempt_due() && s.pending_since.is_none() && s.last_error.is_none());
    }
}
