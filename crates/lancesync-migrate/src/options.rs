//! What to migrate and how.

use crate::Layout;

/// What to migrate and how.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// The original data: a folder or `s3://bucket/prefix` (`LEGACY_LANCEDB_URI`).
    pub from: String,
    /// Its layout; `None` finds it.
    pub layout: Option<Layout>,
    /// These users; `None` is every user the original data has.
    pub users: Option<Vec<String>>,
    /// Plan and report; write nothing.
    pub dry_run: bool,
    /// The model that made the original vectors (`LEGACY_EMBEDDING_MODEL`). Vectors are kept
    /// only when it is the index's model (same name and dimension); otherwise every chunk's
    /// text is embedded again with the configured embedder, since vectors of two models are
    /// not comparable even when their lengths agree.
    pub legacy_model: Option<String>,
    /// Keep documents that are in no configured source, under the source `legacy`.
    pub keep_unmatched: bool,
    /// The original tables' names; `None` is lancesync's (`LANCEDB_TABLE_NAME`,
    /// `LANCEDB_CHUNKS_TABLE_NAME`), which the original read from the same settings.
    pub tables: Option<(String, String)>,
}

impl MigrateOptions {
    /// Every user at `from`, writing, keeping unmatched documents, vectors re-embedded.
    pub fn new(from: impl Into<String>) -> Self {
        Self {
            from: from.into(),
            layout: None,
            users: None,
            dry_run: false,
            legacy_model: None,
            keep_unmatched: true,
            tables: None,
        }
    }

    /// From `LEGACY_LANCEDB_URI` and `LEGACY_EMBEDDING_MODEL`; `None` without the first.
    pub fn from_settings(settings: &lancesync_config::Settings) -> Option<Self> {
        let from = settings.integration.legacy_lancedb_uri.clone()?;
        let mut options = Self::new(from);
        options.legacy_model = settings.integration.legacy_embedding_model.clone();
        Some(options)
    }
}
