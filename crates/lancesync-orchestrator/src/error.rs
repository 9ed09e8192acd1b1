//! The orchestrator's errors.

/// Errors of the orchestrator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No such source.
    #[error("user {user_id} has no source {source_type}/{source_id}")]
    NotFound {
        /// User.
        user_id: String,
        /// Type asked for.
        source_type: String,
        /// Id asked for.
        source_id: String,
    },
    /// No such job.
    #[error("no job {0} (finished jobs are kept for a while, then forgotten)")]
    NoSuchJob(String),
    /// The request conflicts with the current state (a source id taken, a run in progress).
    #[error("{0}")]
    Conflict(String),
    /// The source spec or an id is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The caller may not do this (a user token setting what only the admin may).
    #[error("{0}")]
    Forbidden(String),
    /// An upload of a type lancesync does not read; nothing was stored.
    #[error("{0}")]
    Unsupported(String),
    /// The orchestrator is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// A source registry failed.
    #[error(transparent)]
    Source(#[from] lancesync_sources::Error),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] lancesync_engine::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
