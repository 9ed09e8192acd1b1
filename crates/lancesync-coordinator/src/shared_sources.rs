//! The source registry shared by the instances: one row per (user, source) with the entry as
//! `sources.toml` stores it, a tombstone once removed, and a cluster-wide version that grows
//! with every change, so an instance asks only for what changed since it last looked.

use crate::{Error, Result};

/// One source entry shared through the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedSource {
    /// User.
    pub user_id: String,
    /// Source id.
    pub source_id: String,
    /// The entry as `sources.toml` stores it (TOML); `None` once removed.
    pub entry: Option<String>,
    /// Order of addition among the user's sources (a version).
    pub added: i64,
    /// The version of this change; versions grow with every change, cluster-wide.
    pub version: i64,
}

/// Key of the transaction-level advisory lock that serialises registry changes, so that
/// versions commit in the order they are taken and `version > since` misses nothing.
pub(crate) const REGISTRY_LOCK: i64 = 0x6c73_7265_6769_7374;

/// Publish one entry (or its removal); returns the change's version.
pub(crate) const PUBLISH: &str = "
    INSERT INTO lancesync_sources (user_id, source_id, entry, version, added)
    SELECT $1, $2, $3, next.v, next.v
    FROM (SELECT pg_advisory_xact_lock($4)::text AS locked) AS serialised,
         LATERAL (SELECT nextval('lancesync_sources_version') AS v
                  WHERE serialised.locked IS NOT NULL) AS next
    ON CONFLICT (user_id, source_id) DO UPDATE SET
        entry = EXCLUDED.entry,
        version = EXCLUDED.version,
        added = CASE WHEN lancesync_sources.entry IS NULL THEN EXCLUDED.added
                     ELSE lancesync_sources.added END
    RETURNING version";

/// Every change after a version, oldest first.
pub(crate) const SINCE: &str = "
    SELECT user_id, source_id, entry, added, version FROM lancesync_sources
    WHERE version > $1 ORDER BY version";

pub(crate) fn from_row(row: &tokio_postgres::Row) -> Result<SharedSource> {
    Ok(SharedSource {
        user_id: row.try_get(0).map_err(Error::from)?,
        source_id: row.try_get(1).map_err(Error::from)?,
        entry: row.try_get(2).map_err(Error::from)?,
        added: row.try_get(3).map_err(Error::from)?,
        version: row.try_get(4).map_err(Error::from)?,
    })
}
