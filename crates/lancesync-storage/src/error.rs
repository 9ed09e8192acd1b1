//! The errors of storage.

use std::path::PathBuf;

use serde::Serialize;

use crate::{S3Target, StorageMode};

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
    pub(crate) fn probe(t: &S3Target, e: object_store::Error) -> Self {
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
        ) || has_status(&text, "403")
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

/// Whether `text` names HTTP status `code` as a number of its own: not inside another number,
/// such as the "2.164032881s" an error gives for the time its retries took.
fn has_status(text: &str, code: &str) -> bool {
    let bytes = text.as_bytes();
    text.match_indices(code).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + code.len()).copied();
        let part_of_number = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_digit() || b == b'.');
        !part_of_number(before) && !part_of_number(after)
    })
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
    use super::has_status;

    #[test]
    fn a_status_is_a_number_of_its_own() {
        assert!(has_status("Client error with status 403 Forbidden", "403"));
        assert!(has_status("(403)", "403"));
        // The time an unreachable endpoint's retries took is not a refusal.
        assert!(!has_status(
            "Error performing GET http://127.0.0.1:1/present in 2.164032881s, after 8 retries",
            "403"
        ));
        assert!(!has_status("request 14031 failed", "403"));
    }
}
