//! lancesync sources: where documents come from.
//!
//! A [`DocumentSource`] lists its documents cheaply (key, size, modification time, version)
//! and reads one document's bytes on demand. A listing says what it could *not* see
//! ([`Listing::unlisted`]), so a missing folder or a failed API call never looks like deleted
//! documents.
//!
//! ```no_run
//! use lancesync_sources::{DocumentSource, LocalFsConfig, LocalFsSource};
//!
//! # async fn run() -> lancesync_sources::Result<()> {
//! let config = LocalFsConfig::new(["~/Documents"]);
//! let source = LocalFsSource::new("docs", config, &std::env::vars().collect())?;
//! let listing = source.list().await?;
//! for entry in &listing.entries {
//!     println!("{} ({} bytes)", entry.uri, entry.size);
//! }
//! # Ok(()) }
//! ```

mod dropbox;
mod google_drive;
mod http;
mod local;
mod notion;
mod oauth;
mod patterns;
mod registry;
mod s3;
mod secret;
mod spec;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use dropbox::{DropboxConfig, DropboxSource, dropbox_content_hash};
pub use google_drive::{GoogleDriveConfig, GoogleDriveSource};
pub use http::HttpSettings;
pub use local::{DEFAULT_PATTERNS, LocalFsConfig, LocalFsSource};
pub use notion::{NotionConfig, NotionSource};
pub use patterns::FilterSettings;
pub use registry::{Loaded, SourceRegistry};
pub use s3::{S3Source, S3SourceConfig};
pub use secret::SecretRef;
pub use spec::{SourceConfig, SourceSpec, SourceType, StoredSource};

/// One document as a source lists it: enough to detect change without reading content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceEntry {
    /// Where the document is: an absolute path for local files, a URL or id for remote sources.
    /// Unique within the source.
    pub uri: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, in milliseconds since the Unix epoch.
    pub modified_ms: i64,
    /// A remote version marker (ETag, revision id); `None` for local files. A listed version
    /// that differs from the stored one is a change even when size and time are the same.
    #[serde(default)]
    pub version: Option<String>,
    /// The source's own hash of the content (Dropbox `content_hash`, S3 ETag), when the
    /// listing has one. It stands in for lancesync's own checksum: an entry whose hash matches
    /// the stored one is not downloaded, and a new key with a deleted document's hash is a
    /// move, so neither is read nor re-embedded.
    #[serde(default)]
    pub content_hash: Option<String>,
    /// A display name the source knows (a remote file's name as its owner wrote it), used as
    /// the title when the document has none of its own.
    #[serde(default)]
    pub title: Option<String>,
}

impl SourceEntry {
    /// An entry with no version, hash or title (a local file).
    pub fn new(uri: impl Into<String>, size: u64, modified_ms: i64) -> Self {
        Self {
            uri: uri.into(),
            size,
            modified_ms,
            version: None,
            content_hash: None,
            title: None,
        }
    }

    /// The file name part of the uri.
    pub fn file_name(&self) -> &str {
        self.uri.rsplit(['/', '\\']).next().unwrap_or(&self.uri)
    }

    /// The title a document without one of its own gets: the source's display name, else
    /// the file name.
    pub fn display_title(&self) -> &str {
        self.title.as_deref().unwrap_or_else(|| self.file_name())
    }
}

/// Something a listing could not look at. Never fatal; always reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingIssue {
    /// The path or uri concerned.
    pub uri: String,
    /// What went wrong.
    pub reason: String,
}

/// The result of listing a source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The documents found.
    pub entries: Vec<SourceEntry>,
    /// Uri prefixes whose content is unknown (a missing watch path, an unreadable folder):
    /// documents under them must not be treated as deleted.
    pub unlisted: Vec<String>,
    /// Everything that was skipped or could not be read, for the run's report.
    pub issues: Vec<ListingIssue>,
}

impl Listing {
    /// Whether a document at `uri` that is missing from `entries` may be treated as deleted.
    pub fn may_delete(&self, uri: &str) -> bool {
        !self.unlisted.iter().any(|prefix| under(uri, prefix))
    }
}

/// What a source reports for one run: a complete listing, or the changes since a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// What changed.
    pub kind: ChangeKind,
    /// The cursor to store once every change above is written to the tables, and to pass to
    /// the next run's [`DocumentSource::changes`]; `None` for sources that keep no cursor.
    pub cursor: Option<String>,
}

/// The two shapes of [`Changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// Every document: what a complete listing lacks (outside `unlisted`) is gone.
    Full(Listing),
    /// Only what changed since the cursor; documents not mentioned are as they were.
    Delta {
        /// Created or changed documents.
        entries: Vec<SourceEntry>,
        /// Uris (or uri prefixes: a deleted folder) of documents that are gone.
        deleted: Vec<String>,
        /// What could not be looked at.
        issues: Vec<ListingIssue>,
    },
}

/// Whether `uri` is `prefix` or inside it (path-component-wise, so `/a/bc` is not under `/a/b`).
pub fn under(uri: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    uri == prefix
        || uri
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A place documents come from. Object-safe: use it as `Arc<dyn DocumentSource>`.
#[async_trait]
pub trait DocumentSource: Send + Sync + std::fmt::Debug {
    /// The source's id, unique per user (e.g. `docs`).
    fn id(&self) -> &str;

    /// The source's type (e.g. `local_filesystem`).
    fn source_type(&self) -> &'static str;

    /// List every document. An `Err` means nothing is known: the caller deletes nothing.
    async fn list(&self) -> Result<Listing>;

    /// Read one listed document's bytes.
    async fn read(&self, entry: &SourceEntry) -> Result<Vec<u8>>;

    /// What changed since `cursor` (the one the last complete run stored, or `None`). Sources
    /// whose API reports changes since a cursor (Dropbox) answer with a delta; the others, and
    /// any source whose cursor the API rejects as expired or reset, with a complete listing.
    /// An `Err` means nothing is known: the caller deletes nothing and keeps its cursor.
    async fn changes(&self, cursor: Option<&str>) -> Result<Changes> {
        let _ = cursor;
        Ok(Changes {
            kind: ChangeKind::Full(self.list().await?),
            cursor: None,
        })
    }

    /// Local folders whose file-system events signal changes (for `watch`); remote sources
    /// have none and are polled.
    fn watch_roots(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }

    /// Uri prefixes this source covers: a document under one of them that a complete listing
    /// lacks is gone from the source (not merely from elsewhere). Local folders by default.
    fn scopes(&self) -> Vec<String> {
        self.watch_roots()
            .iter()
            .map(|root| root.to_string_lossy().into_owned())
            .collect()
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The source's configuration is unusable.
    #[error("invalid source configuration: {0}")]
    InvalidConfig(String),
    /// A document could not be read.
    #[error("cannot read {uri}: {reason}")]
    Read {
        /// The document.
        uri: String,
        /// Why.
        reason: String,
    },
    /// The document is larger than the configured limit.
    #[error("{uri} is {size} bytes, over the {limit}-byte limit for one document")]
    TooLarge {
        /// The document.
        uri: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The remote service refused the source's credentials.
    #[error("source {source_id} cannot sign in: {reason}")]
    Auth {
        /// The source.
        source_id: String,
        /// What was refused and what to do.
        reason: String,
    },
    /// Listing failed as a whole.
    #[error("cannot list source {source_id}: {reason}")]
    List {
        /// The source.
        source_id: String,
        /// Why.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_path_components() {
        assert!(under("/a/b/c.txt", "/a/b"));
        assert!(under("/a/b/c.txt", "/a/b/"));
        assert!(under("/a/b", "/a/b"));
        assert!(!under("/a/bc/d.txt", "/a/b"));
        let listing = Listing {
            unlisted: vec!["/mnt/usb".into()],
            ..Default::default()
        };
        assert!(!listing.may_delete("/mnt/usb/x.pdf"));
        assert!(listing.may_delete("/home/x.pdf"));
    }
}
