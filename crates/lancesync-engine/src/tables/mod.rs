//! A user's two tables: opening (and creating) them, reading state, batched writes, deletes,
//! and maintenance, a file a job: [`open`] finds or creates the tables, [`meta`] keeps what lives
//! in their manifests (embedder identity, change cursors), [`state`] reads what change detection
//! and status need, [`write`] writes rows, [`maintain`] keeps indexes and fragments in shape,
//! [`generation`] keeps the shadow tables of a blue/green re-index and the switch readers follow.

mod generation;
mod maintain;
mod meta;
mod open;
mod state;
mod write;

use std::path::PathBuf;

use arrow_array::{RecordBatch, RecordBatchIterator};
use futures::TryStreamExt;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancedb::{Connection, Table};

use crate::Result;

pub(crate) use generation::PREVIOUS_KEY;
pub use generation::{BEFORE_REINDEX_TAG, SHADOW_SUFFIX, shadow_database};
pub use maintain::{IndexHealth, Maintenance};
pub use state::{DocPos, DocState, SourceDocs};

/// Ids per `IN (...)` statement.
const IDS_PER_STATEMENT: usize = 500;

/// Table names and maintenance thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSettings {
    /// `LANCEDB_TABLE_NAME`.
    pub documents_table: String,
    /// `LANCEDB_CHUNKS_TABLE_NAME`.
    pub chunks_table: String,
    /// Build a vector index once the chunks table has this many rows (below it, exact search
    /// is fast enough and exact).
    pub vector_index_rows: usize,
    /// During a run, fold new rows into the vector index once this many wait, so a long run
    /// keeps its index current and no fold handles more than this many vectors.
    pub fold_during_run_rows: usize,
    /// Compact once this many small fragments pile up.
    pub compact_small_fragments: usize,
    /// Keep old versions this long (time travel, restore).
    pub keep_versions_days: i64,
}

impl Default for TableSettings {
    fn default() -> Self {
        Self {
            documents_table: "processed_documents".into(),
            chunks_table: "document_chunks".into(),
            vector_index_rows: 5_000,
            fold_during_run_rows: 50_000,
            compact_small_fragments: 16,
            keep_versions_days: 7,
        }
    }
}

/// A user's database and its two tables.
#[derive(Clone)]
pub struct UserTables {
    /// The user.
    pub user_id: String,
    /// Where the database lives: a local folder or an `s3://` URI.
    pub uri: String,
    /// Local folder for this database's lock files, run markers and last reports.
    pub state_dir: PathBuf,
    /// `processed_documents`.
    pub docs: Table,
    /// `document_chunks`.
    pub chunks: Table,
    /// Vector length.
    pub dim: usize,
    settings: TableSettings,
    connection: Connection,
    /// Set once the full-text index is known to exist (indexes are never dropped while the
    /// tables are open), so searches skip asking.
    fts_ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// One maintenance at a time per user in this process: runs of two sources end at the
    /// same moments, and lance refuses the second of two concurrent index builds.
    maintaining: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for UserTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTables")
            .field("user_id", &self.user_id)
            .field("uri", &self.uri)
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

pub(crate) fn reader(batch: RecordBatch) -> Box<dyn arrow_array::RecordBatchReader + Send> {
    let schema = batch.schema();
    Box::new(RecordBatchIterator::new(vec![Ok(batch)], schema))
}

/// Run a plain query; `columns` empty means all.
pub(crate) async fn query(
    table: &Table,
    filter: Option<String>,
    columns: &[&str],
) -> Result<Vec<RecordBatch>> {
    let mut q = table.query();
    if let Some(f) = filter {
        q = q.only_if(f);
    }
    if !columns.is_empty() {
        q = q.select(Select::columns(columns));
    }
    Ok(q.execute().await?.try_collect().await?)
}
