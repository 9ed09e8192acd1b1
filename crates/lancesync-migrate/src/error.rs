//! The errors of migration.

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The options cannot work.
    #[error("{0}")]
    InvalidOptions(String),
    /// Nothing of the original system at the location.
    #[error(
        "no original LanceDB data at {uri}: neither a {table} table there nor databases in {uri}/users/<user>"
    )]
    NoLegacyData {
        /// Where.
        uri: String,
        /// The documents table looked for.
        table: String,
    },
    /// Both layouts are present.
    #[error(
        "{uri} has both a shared documents table and per-user databases; say which to migrate with --layout"
    )]
    AmbiguousLayout {
        /// Where.
        uri: String,
    },
    /// The user has nothing in the original data.
    #[error("user {user_id} has no documents table at {uri}")]
    NoUserData {
        /// User.
        user_id: String,
        /// Where it was looked for.
        uri: String,
    },
    /// The original data is where lancesync keeps this user's tables.
    #[error(
        "the original tables are at {uri}, where lancesync keeps its own; a migration never changes its source, so move them aside first (e.g. `mv data/lancedb data/lancedb-original`) and migrate from there"
    )]
    SameLocation {
        /// Where.
        uri: String,
    },
    /// A column of the original tables cannot be read.
    #[error("original column {column}: {detail}")]
    LegacyColumn {
        /// Which.
        column: String,
        /// Why.
        detail: String,
    },
    /// The original data could not be read.
    #[error("reading {uri}: {detail}")]
    Read {
        /// Where.
        uri: String,
        /// Why.
        detail: String,
    },
    /// A configured source could not be listed: the user's migration waits for it.
    #[error(
        "source {source_id} could not be listed ({detail}); without its listing present documents would look deleted, so this user's migration waits for it"
    )]
    SourceListing {
        /// Which source.
        source_id: String,
        /// Why.
        detail: String,
    },
    /// A document could not be read to compare its content.
    #[error("reading {uri}: {detail}")]
    SourceRead {
        /// Which document.
        uri: String,
        /// Why.
        detail: String,
    },
    /// lancesync's side failed.
    #[error(transparent)]
    Engine(#[from] lancesync_engine::Error),
    /// A source's settings are wrong.
    #[error(transparent)]
    Sources(#[from] lancesync_sources::Error),
    /// S3 settings or listing failed.
    #[error(transparent)]
    Storage(#[from] lancesync_storage::Error),
    /// Embedding failed.
    #[error(transparent)]
    Ingest(#[from] lancesync_ingest::Error),
    /// LanceDB failed on the original tables.
    #[error("lancedb: {0}")]
    LanceDb(#[from] lancedb::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
