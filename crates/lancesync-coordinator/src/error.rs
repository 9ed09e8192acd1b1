//! The coordinator's errors.

/// What can go wrong coordinating instances.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// `COORDINATOR_URL` is not a PostgreSQL URL this build can use.
    #[error("COORDINATOR_URL {0}")]
    BadUrl(String),
    /// Postgres did not answer at start.
    #[error("cannot reach the coordinator at COORDINATOR_URL={url}: {reason}")]
    Unreachable {
        /// The URL, password masked.
        url: String,
        /// Why.
        reason: String,
    },
    /// The coordinator's tables were made by a newer lancesync.
    #[error(
        "the coordinator's schema is version {found}, newer than this lancesync's {supported}: upgrade this instance (or point COORDINATOR_URL at another database)"
    )]
    SchemaTooNew {
        /// The version found.
        found: i32,
        /// The newest version this build knows.
        supported: i32,
    },
    /// The coordinator has been unreachable for too long to wait for a user's lock.
    #[error(
        "the coordinator (COORDINATOR_URL) has not answered for {waited_secs} s; no writes for user {user_id} until it does"
    )]
    Unavailable {
        /// The user whose writes wait.
        user_id: String,
        /// How long it waited.
        waited_secs: u64,
    },
    /// This instance lost its session to the coordinator while holding a user: its writes
    /// were stopped, and another instance takes the user over.
    #[error(
        "this instance lost the coordinator while writing for user {user_id}: its writes stopped, another instance takes over"
    )]
    Lost {
        /// The user whose writes were stopped.
        user_id: String,
    },
    /// A query failed.
    #[error("coordinator query failed: {0}")]
    Query(String),
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        // The cause (a refused certificate, a reset connection) is in the error's sources.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        Error::Query(text)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
