//! The engine's errors.

use std::path::PathBuf;

use lancesync_ingest::EmbedderIdentity;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A user or source id is not acceptable.
    #[error("invalid {what} {value:?}: {rule}")]
    InvalidId {
        /// Which id.
        what: &'static str,
        /// The value given.
        value: String,
        /// What a valid one looks like.
        rule: &'static str,
    },
    /// A request is not acceptable.
    #[error("{0}")]
    InvalidRequest(String),
    /// The tables were built with another embedder.
    #[error(
        "user {user_id}'s tables were built with embedder {stored}, but {configured} is configured: vectors would not be comparable; run `sync-cli reindex --user {user_id}` to rebuild them, or configure {stored} again"
    )]
    EmbedderMismatch {
        /// User.
        user_id: String,
        /// What built the tables.
        stored: Box<EmbedderIdentity>,
        /// What is configured now.
        configured: Box<EmbedderIdentity>,
    },
    /// The user's chunks were made with other chunk settings than the configured ones.
    #[error(
        "user {user_id}'s chunks were made with CHUNK_CHARACTERS={} and CHUNK_OVERLAP={}, but {} and {} are configured: documents would be chunked two ways; run `sync-cli reindex --user {user_id}` to chunk everything again, or configure {} and {} again",
        stored.size, stored.overlap, configured.size, configured.overlap, stored.size, stored.overlap
    )]
    ChunkingChanged {
        /// User.
        user_id: String,
        /// What the chunks were made with.
        stored: lancesync_ingest::ChunkConfig,
        /// What is configured now.
        configured: lancesync_ingest::ChunkConfig,
    },
    /// The tables where a user's index belongs were written by the original system.
    #[error(
        "{uri} holds tables written by the original system (they have no {column} column); lancesync never writes to them: move them aside and adopt them with `sync-cli migrate --from <their new place>`"
    )]
    LegacyTables {
        /// The database.
        uri: String,
        /// A column lancesync's tables have and these lack.
        column: &'static str,
    },
    /// Another run of the same source is in progress (in this or another process).
    #[error(
        "source {source_id} of user {user_id} is being synced by another run{}; try again when it finishes",
        holder.map(|pid| format!(" (process {pid})")).unwrap_or_default()
    )]
    Busy {
        /// User.
        user_id: String,
        /// Source.
        source_id: String,
        /// The process holding the run lock, if known.
        holder: Option<u32>,
    },
    /// A re-index (or its rollback) of the user is in progress, in this or another process:
    /// writes wait for it, since it copies the tables.
    #[error(
        "user {user_id}'s tables are being re-indexed{}; writes resume when it finishes",
        holder.map(|pid| format!(" (process {pid})")).unwrap_or_default()
    )]
    Reindexing {
        /// User.
        user_id: String,
        /// The process holding the re-index lock, if known.
        holder: Option<u32>,
    },
    /// A re-index built new tables but withheld the switch: a source now gives far fewer
    /// documents than the live tables hold (the mass-delete guard).
    #[error("{0}")]
    SwitchWithheld(String),
    /// The coordinator of several instances (`COORDINATOR_URL`) did not let this instance
    /// write the user: it could not be reached, or this instance lost it while writing (and
    /// stopped; another instance takes over).
    #[error(transparent)]
    Coordinator(#[from] lancesync_coordinator::Error),
    /// Listing or reading the source failed as a whole; nothing was deleted.
    #[error(transparent)]
    Source(#[from] lancesync_sources::Error),
    /// The storage mode's S3 side failed (backup, restore, cache, S3 configuration).
    #[error(transparent)]
    Storage(#[from] lancesync_storage::Error),
    /// Ingest configuration or the embedder failed.
    #[error(transparent)]
    Ingest(#[from] lancesync_ingest::Error),
    /// LanceDB failed.
    #[error("lancedb: {0}")]
    LanceDb(#[from] lancedb::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Something that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<arrow_schema::ArrowError> for Error {
    fn from(e: arrow_schema::ArrowError) -> Self {
        Error::Internal(format!("arrow: {e}"))
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
