//! Keeping the tables fast: the full-text, key and vector indexes, folding new rows into them,
//! compaction and pruning.

use lancedb::DistanceType;
use lancedb::index::Index;
use lancedb::index::vector::IvfSqIndexBuilder;
use lancedb::index::{IndexConfig, IndexType};
use lancedb::table::{CompactionOptions, OptimizeAction, OptimizeOptions};

use super::UserTables;
use crate::{Error, Result};

/// Unindexed chunk rows (or 5% of the table, if more) before maintenance folds them into the
/// indexes.
const FOLD_MIN_ROWS: usize = 2_000;

/// Size of one full-text index partition, in MiB of lance's estimate of its builder's memory.
///
/// Lance writes a partition when a build worker's postings reach its share of the build's
/// memory limit, and merges the workers' leftovers up to the same size. Everything that
/// later rewrites the index does so a partition at a time: a compaction remaps it by loading
/// a partition's postings back into a builder. With lance's default (2 GiB per worker) or a
/// 128 MiB budget, the index of a 100,000-document corpus was one partition, and remapping it
/// raised memory by about 100 MB at the end of the run, growing with the corpus. At 4 MiB a
/// partition holds about 60,000 chunks (347,513 chunks made 6 partitions), which a query
/// searches side by side.
const FTS_PARTITION_MB: u64 = 4;

/// Workers building the full-text index; the memory limit given to lance is one partition
/// per worker, so a partition's size does not depend on the machine's core count.
fn fts_build_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

impl UserTables {
    /// Build the full-text index on `chunk_text` if it is missing; full-text and hybrid
    /// search need it. Returns whether it was built now.
    pub async fn ensure_fts_index(&self) -> Result<bool> {
        use std::sync::atomic::Ordering;
        if self.fts_ready.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let indices = self.chunks.list_indices().await?;
        if indices
            .iter()
            .any(|i| i.columns.iter().any(|c| c == "chunk_text"))
        {
            self.fts_ready.store(true, Ordering::Relaxed);
            return Ok(false);
        }
        self.chunks
            .create_index(
                &["chunk_text"],
                Index::FTS(
                    lancedb::index::scalar::FtsIndexBuilder::default()
                        .num_workers(fts_build_workers())
                        .memory_limit_mb(FTS_PARTITION_MB * fts_build_workers() as u64),
                ),
            )
            .execute()
            .await?;
        self.fts_ready.store(true, Ordering::Relaxed);
        Ok(true)
    }

    /// During a long run, after a batch: build the full-text and vector indexes as soon as the
    /// table passes the size threshold, then fold new rows into them every
    /// `fold_during_run_rows`. Searches
    /// during a long first sync use the index, and the end of the run has little left to
    /// fold. Returns whether it did anything.
    pub async fn index_during_run(&self) -> Result<bool> {
        let rows = self.chunks.count_rows(None).await?;
        if rows < self.settings.vector_index_rows {
            return Ok(false);
        }
        // The full-text index too, from the same size: without it, the first full-text or
        // hybrid search during a long first sync built it inside the search request (17.5 s at
        // 100,000 documents), and later ones scanned every row since; folded below like the
        // vector index, it costs a first sync about 2% (docs/benchmarks.md).
        let step = std::time::Instant::now();
        if self.ensure_fts_index().await? {
            tracing::debug!(
                rows,
                ms = step.elapsed().as_millis() as u64,
                "built the full-text index during the run"
            );
        }
        let indices = self.chunks.list_indices().await?;
        let Some(vector_index) = current_vector_index(&indices, rows) else {
            let step = std::time::Instant::now();
            self.create_vector_index(&indices, rows).await?;
            tracing::debug!(
                rows,
                ms = step.elapsed().as_millis() as u64,
                "built the vector index during the run"
            );
            return Ok(true);
        };
        let unindexed = self
            .chunks
            .index_stats(&vector_index.name)
            .await?
            .map_or(0, |s| s.num_unindexed_rows);
        if unindexed < self.settings.fold_during_run_rows {
            return Ok(false);
        }
        self.fold_into_indexes(unindexed).await?;
        Ok(true)
    }

    /// Fold rows written since the indexes were built into them: no retraining, and each
    /// index stays one segment.
    ///
    /// Merging into the latest segment (`merge(1)`) rather than lance's default keeps the
    /// IVF partitions as trained: the default splits a grown partition, which reloads its
    /// raw vectors and merges every delta (measured: 5 s and +170 MB at 350,000 rows, against
    /// 0.3 s and no rise), and appending a delta per fold instead would leave searches one
    /// more segment to scan each time.
    async fn fold_into_indexes(&self, unindexed: usize) -> Result<()> {
        let step = std::time::Instant::now();
        self.chunks
            .optimize(OptimizeAction::Index(OptimizeOptions::merge(1)))
            .await?;
        tracing::debug!(
            unindexed,
            ms = step.elapsed().as_millis() as u64,
            "folded new rows into the indexes"
        );
        Ok(())
    }

    /// Train the vector index on the table's `rows` rows, replacing any other index on the
    /// vector column (another kind, metric, or one trained on a much smaller table).
    async fn create_vector_index(&self, indices: &[IndexConfig], rows: usize) -> Result<()> {
        for old in indices
            .iter()
            .filter(|i| i.columns.iter().any(|c| c == "vector"))
        {
            self.chunks.drop_index(&old.name).await?;
        }
        self.chunks
            .create_index(
                &["vector"],
                Index::IvfSq(IvfSqIndexBuilder::default().distance_type(DistanceType::Cosine)),
            )
            .name(vector_index_name(rows))
            .execute()
            .await?;
        Ok(())
    }

    /// How the chunks table's indexes stand against what [`Self::maintain`] keeps: indexes
    /// missing, and rows not yet folded into them when there are enough that maintenance would
    /// fold them.
    pub async fn index_health(&self) -> Result<IndexHealth> {
        let mut health = IndexHealth::default();
        let rows = self.chunks.count_rows(None).await?;
        if rows == 0 {
            return Ok(health);
        }
        let indices = self.chunks.list_indices().await?;
        let has = |column: &str| {
            indices
                .iter()
                .any(|i| i.columns.iter().any(|c| c == column))
        };
        if !has("chunk_text") {
            health.missing.push("chunk_text (full text)".into());
        }
        if !has("chunk_id") {
            health.missing.push("chunk_id (btree)".into());
        }
        if rows >= self.settings.vector_index_rows && current_vector_index(&indices, rows).is_none()
        {
            health.missing.push("vector (IVF-SQ, cosine)".into());
        }
        for index in &indices {
            if let Some(stats) = self.chunks.index_stats(&index.name).await? {
                health.unindexed_rows = health.unindexed_rows.max(stats.num_unindexed_rows);
            }
        }
        health.fold_threshold = FOLD_MIN_ROWS.max(rows / 20);
        Ok(health)
    }

    /// Forget that the full-text index was seen, so the next maintenance looks again (after
    /// it may have been dropped by something else).
    pub fn forget_indexes(&self) {
        self.fts_ready
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the full-text index is known to exist (then the table has had rows).
    pub fn fts_known(&self) -> bool {
        self.fts_ready.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Keep the tables fast: full-text index present and current, a vector index past the
    /// size threshold, small fragments compacted, old versions pruned.
    pub async fn maintain(&self) -> Result<Maintenance> {
        let _one_at_a_time = self.maintaining.lock().await;
        match self.maintain_now().await {
            // Another process maintained the table at the same moment: its commit stands,
            // and whatever is left is done after the next write.
            Err(Error::LanceDb(e)) if super::generation::lost_to_concurrent_commit(&e) => {
                tracing::info!(user = %self.user_id, error = %e, "maintenance met another writer's; left for the next run");
                Ok(Maintenance::default())
            }
            other => other,
        }
    }

    async fn maintain_now(&self) -> Result<Maintenance> {
        let mut done = Maintenance::default();
        self.expire_previous_generation().await?;
        let rows = self.chunks.count_rows(None).await?;
        if rows > 0 {
            let indices = self.chunks.list_indices().await?;
            let has = |column: &str| {
                indices
                    .iter()
                    .any(|i| i.columns.iter().any(|c| c == column))
            };
            let step = std::time::Instant::now();
            if self.ensure_fts_index().await? {
                tracing::debug!(
                    rows,
                    ms = step.elapsed().as_millis() as u64,
                    "built the full-text index"
                );
                done.created_indexes.push("chunk_text (full text)".into());
            }
            if !has("chunk_id") {
                let step = std::time::Instant::now();
                self.chunks
                    .create_index(&["chunk_id"], Index::BTree(Default::default()))
                    .execute()
                    .await?;
                tracing::debug!(
                    rows,
                    ms = step.elapsed().as_millis() as u64,
                    "built the chunk_id index"
                );
                done.created_indexes.push("chunk_id (btree)".into());
            }
            if rows >= self.settings.vector_index_rows
                && current_vector_index(&indices, rows).is_none()
            {
                let step = std::time::Instant::now();
                self.create_vector_index(&indices, rows).await?;
                tracing::debug!(
                    rows,
                    ms = step.elapsed().as_millis() as u64,
                    "built the vector index"
                );
                done.created_indexes.push("vector (IVF-SQ, cosine)".into());
            }
            // Fold rows written since the indexes were built into them once there are enough
            // to matter: searches scan unindexed rows anyway, and folding rewrites index
            // files, which would dominate a small incremental run.
            let mut unindexed = 0;
            for index in self.chunks.list_indices().await? {
                if let Some(stats) = self.chunks.index_stats(&index.name).await? {
                    unindexed = unindexed.max(stats.num_unindexed_rows);
                }
            }
            if unindexed >= FOLD_MIN_ROWS.max(rows / 20) {
                self.fold_into_indexes(unindexed).await?;
            }
        }
        for (table, options) in [
            (&self.docs, documents_compaction()),
            (&self.chunks, chunks_compaction()),
        ] {
            let stats = table.stats().await?;
            // Lancedb counts fragments under 100,000 rows as small, which a compacted
            // documents table's full fragments are too: compact only when there are this many
            // more fragments than compaction would leave.
            let compacted = stats
                .num_rows
                .div_ceil(options.target_rows_per_fragment)
                .max(1);
            let piled_up = stats.fragment_stats.num_small_fragments
                >= self.settings.compact_small_fragments
                && stats.fragment_stats.num_fragments
                    >= compacted + self.settings.compact_small_fragments;
            if piled_up {
                let step = std::time::Instant::now();
                table
                    .optimize(OptimizeAction::Compact {
                        options,
                        remap_options: None,
                    })
                    .await?;
                table
                    .optimize(OptimizeAction::Prune {
                        older_than: Some(lancedb::table::Duration::days(
                            self.settings.keep_versions_days,
                        )),
                        delete_unverified: None,
                        // The versions kept for `reindex --rollback` are tagged: pruning
                        // skips them instead of failing.
                        error_if_tagged_old_versions: Some(false),
                    })
                    .await?;
                tracing::debug!(
                    table = table.name(),
                    ms = step.elapsed().as_millis() as u64,
                    "compacted and pruned"
                );
                done.compacted.push(table.name().to_string());
            }
        }
        Ok(done)
    }
}

/// Prefix of the vector index's name; the rest is the row count it was trained on.
///
/// The index is IVF-SQ for cosine distance (8-bit scalar codes). Searches rank by cosine: an
/// index built for another metric is not used (lance falls back to a brute-force scan), and
/// the 4-bit IVF-PQ index of earlier versions reached recall@10 0.93 with re-ranking where
/// IVF-SQ reaches 1.00 and builds faster (0.7 s against 2.0 s at 102,882 rows;
/// `scripts/vector-recall.py`, docs/benchmarks.md, "Vector index from 5,000 rows"). Any
/// vector index without this prefix is replaced at the next maintenance.
const VECTOR_INDEX_PREFIX: &str = "vector_ivf_sq_cosine_";

/// The vector index is trained again once the table has this many times the rows it was
/// trained on: its partitions are fixed at training (lance aims at a few thousand rows
/// each), and folds only append to them, so an index trained on 5,000 rows would leave a
/// million-row table in one partition, scanned whole by every search. Growing by four
/// each time keeps retraining to a small share of the work that wrote the rows.
const VECTOR_INDEX_GROWTH: usize = 4;

fn vector_index_name(rows: usize) -> String {
    format!("{VECTOR_INDEX_PREFIX}{rows}")
}

/// The vector index, if it is of the current kind and was trained on enough of the table's
/// `rows`; `None` means it has to be (re)built.
fn current_vector_index(indices: &[IndexConfig], rows: usize) -> Option<&IndexConfig> {
    indices.iter().find(|i| {
        i.columns.iter().any(|c| c == "vector")
            && i.index_type == IndexType::IvfSq
            && i.name
                .strip_prefix(VECTOR_INDEX_PREFIX)
                .and_then(|trained| trained.parse::<usize>().ok())
                .is_some_and(|trained| rows < trained.saturating_mul(VECTOR_INDEX_GROWTH))
    })
}

/// Rows per compacted fragment of the documents table.
///
/// The documents table is re-encoded when compacted: a rescan reads nine of its columns
/// whole, and copied pages would keep the small pages of every batch that wrote it (the state
/// of 100,000 documents then took 500 ms to read instead of 100 to 250 ms). Lance's writer
/// buffers up to 8 MiB per column before it writes a page, so re-encoding 100,000 documents
/// into one fragment raised a first sync's peak by about 30 MB; fragments of this size keep
/// what it buffers small.
const DOCUMENTS_FRAGMENT_ROWS: usize = 32_768;

/// Compaction of the documents table: re-encoded, into fragments of
/// [`DOCUMENTS_FRAGMENT_ROWS`], one task at a time.
fn documents_compaction() -> CompactionOptions {
    CompactionOptions {
        compaction_mode: Some(lancedb::table::CompactionMode::Reencode),
        target_rows_per_fragment: DOCUMENTS_FRAGMENT_ROWS,
        num_threads: Some(1),
        ..CompactionOptions::default()
    }
}

/// Compaction of the chunks table, which is read by row and through its indexes: encoded pages
/// are copied where the files allow it (no decode and re-encode), one task at a time, which
/// bounds the memory of rewriting a large table.
fn chunks_compaction() -> CompactionOptions {
    CompactionOptions {
        compaction_mode: Some(lancedb::table::CompactionMode::TryBinaryCopy),
        num_threads: Some(1),
        ..CompactionOptions::default()
    }
}

/// How the chunks table's indexes stand ([`UserTables::index_health`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexHealth {
    /// Indexes maintenance would build now.
    pub missing: Vec<String>,
    /// The most rows any index has not folded in yet.
    pub unindexed_rows: usize,
    /// Unindexed rows from which maintenance folds them in.
    pub fold_threshold: usize,
}

impl IndexHealth {
    /// Whether maintenance would fold rows in now.
    pub fn behind(&self) -> bool {
        self.fold_threshold > 0 && self.unindexed_rows >= self.fold_threshold
    }
}

/// What maintenance did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Maintenance {
    /// Indexes created.
    pub created_indexes: Vec<String>,
    /// Tables compacted.
    pub compacted: Vec<String>,
}
