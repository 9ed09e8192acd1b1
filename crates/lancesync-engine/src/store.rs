//! A user's two tables: opening (and creating) them, reading state, batched writes, deletes,
//! and maintenance.

use std::path::PathBuf;

use arrow_array::{RecordBatch, RecordBatchIterator};
use futures::TryStreamExt;
use lancedb::DistanceType;
use lancedb::index::Index;
use lancedb::index::vector::IvfPqIndexBuilder;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancedb::table::{CompactionOptions, OptimizeAction, OptimizeOptions};
use lancedb::{Connection, Table};
use lancesync_ingest::EmbedderIdentity;
use lancesync_storage::Database;

use crate::ids::{sql_in, sql_string, validate_user_id};
use crate::lock::FileLock;
use crate::rows::{self, ChunkRow, Columns, DocRow};
use crate::{Error, Result};

/// Index cache per user database: indexes (full text, vector, BTree) stay warm for search.
const INDEX_CACHE_BYTES: usize = 256 << 20;
/// Metadata cache per user database. Lance's default (1 GiB) fills with the manifests of the
/// many versions a long run writes, so peak memory would grow with the corpus; fragment
/// metadata of the current version fits easily in this.
const METADATA_CACHE_BYTES: usize = 32 << 20;

/// A session whose caches are bounded (see the constants above).
fn bounded_session() -> std::sync::Arc<lancedb::Session> {
    std::sync::Arc::new(lancedb::Session::new(
        INDEX_CACHE_BYTES,
        METADATA_CACHE_BYTES,
        std::sync::Arc::new(lancedb::ObjectStoreRegistry::default()),
    ))
}

/// Unindexed chunk rows (or 5% of the table, if more) before maintenance folds them into the
/// indexes.
const FOLD_MIN_ROWS: usize = 2_000;

/// Memory for building the full-text index, in MiB. Lance's default is 2 GiB per worker:
/// the builder then holds the postings of a whole large table in memory, so peak memory
/// grew with the corpus. Past this budget it writes a partition and starts the next.
const FTS_BUILD_MEMORY_MB: u64 = 128;

/// Key of the embedder identity in the chunks table's manifest config.
const EMBEDDER_KEY: &str = "lancesync.embedder";
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
            vector_index_rows: 100_000,
            fold_during_run_rows: 50_000,
            compact_small_fragments: 16,
            keep_versions_days: 7,
        }
    }
}

/// The listing state of one document, as read from `processed_documents`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocState {
    /// Id.
    pub doc_id: String,
    /// Where it is.
    pub source_uri: String,
    /// Size when last synced.
    pub size: i64,
    /// Modification time when last synced.
    pub modified: i64,
    /// Content hash when last synced.
    pub checksum: String,
    /// `completed` or `failed`.
    pub status: String,
    /// Failed attempts for this content.
    pub attempts: i32,
    /// RFC 3339 time of the last sync.
    pub last_synced: String,
    /// RFC 3339 time of the first ingest.
    pub ingested_at: String,
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

impl UserTables {
    /// Open user `user_id`'s database at `db`, creating the tables if needed. Vectors from
    /// another embedder are refused.
    pub async fn open(
        db: &Database,
        user_id: &str,
        settings: &TableSettings,
        embedder: &EmbedderIdentity,
    ) -> Result<Self> {
        Self::open_with(db, user_id, settings, embedder, true)
            .await?
            .ok_or_else(|| Error::Internal("tables missing after creation".into()))
    }

    /// Open user `user_id`'s database if both tables exist; `None` (and nothing written) if
    /// the user has none yet, so reads for unknown users leave no trace.
    pub async fn open_existing(
        db: &Database,
        user_id: &str,
        settings: &TableSettings,
        embedder: &EmbedderIdentity,
    ) -> Result<Option<Self>> {
        Self::open_with(db, user_id, settings, embedder, false).await
    }

    async fn open_with(
        db: &Database,
        user_id: &str,
        settings: &TableSettings,
        embedder: &EmbedderIdentity,
        create: bool,
    ) -> Result<Option<Self>> {
        validate_user_id(user_id)?;
        if let Some(dir) = &db.local_dir {
            if !create && !dir.is_dir() {
                return Ok(None);
            }
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| Error::Io {
                    path: dir.clone(),
                    source: e,
                })?;
        }
        // Every read checks for a newer version, so a handle sees what other processes wrote
        // (a CLI sync while a server searches) at the cost of one manifest check per read.
        let connection = lancedb::connect(&db.uri)
            .storage_options(db.storage_options.clone())
            .read_consistency_interval(std::time::Duration::ZERO)
            .session(bounded_session())
            .execute()
            .await?;
        let dim = embedder.dimension;
        let (docs_name, chunks_name) = (&settings.documents_table, &settings.chunks_table);
        let names = connection.table_names().execute().await?;
        let listed = names.contains(docs_name) && names.contains(chunks_name);
        // Fast path: both tables listed and open. A table's folder is listed as soon as its
        // creation starts, so a failed open here falls through to the locked path.
        let opened = if listed {
            match futures::try_join!(
                connection.open_table(docs_name).execute(),
                connection.open_table(chunks_name).execute()
            ) {
                Ok(both) => Some(both),
                Err(e) => {
                    tracing::debug!(error = %e, "tables still being created; waiting for the creator");
                    None
                }
            }
        } else {
            None
        };
        // Creating is serialised by a lock file, so an opener never sees a table whose first
        // version is still being written: it waits for the creator, then opens.
        let mut _creating = None;
        let (docs, chunks) = match opened {
            Some(both) => both,
            None => {
                let lock = FileLock::acquire(db.state_dir.join("tables.lock")).await?;
                let names = connection.table_names().execute().await?;
                let both = names.contains(docs_name) && names.contains(chunks_name);
                if !create && !both {
                    return Ok(None);
                }
                let open_or_create = |name: &String, schema| {
                    let connection = connection.clone();
                    let exists = names.contains(name);
                    let name = name.clone();
                    async move {
                        if exists {
                            connection.open_table(&name).execute().await
                        } else {
                            connection.create_empty_table(&name, schema).execute().await
                        }
                    }
                };
                let docs = open_or_create(docs_name, rows::doc_schema(dim)).await?;
                let chunks = open_or_create(chunks_name, rows::chunk_schema(dim)).await?;
                // Held until the embedder identity is recorded below.
                _creating = Some(lock);
                (docs, chunks)
            }
        };
        let tables = Self {
            user_id: user_id.to_string(),
            uri: db.uri.clone(),
            state_dir: db.state_dir.clone(),
            docs,
            chunks,
            dim,
            settings: settings.clone(),
            connection,
            fts_ready: Default::default(),
        };
        tables.check_embedder(embedder, create).await?;
        Ok(Some(tables))
    }

    /// Compare the stored embedder identity with ours; record ours if none is stored and
    /// `record` (a read-only opener, such as a cache replica, never writes).
    async fn check_embedder(&self, embedder: &EmbedderIdentity, record: bool) -> Result<()> {
        let native = self
            .chunks
            .as_native()
            .ok_or_else(|| Error::Internal("chunks table is not a local table".into()))?;
        let json = match native.manifest().await?.config.get(EMBEDDER_KEY).cloned() {
            Some(json) => json,
            None if !record => return Ok(()),
            None => {
                let ours =
                    serde_json::to_string(embedder).map_err(|e| Error::Internal(e.to_string()))?;
                match native
                    .update_config([(EMBEDDER_KEY.to_string(), ours)])
                    .await
                {
                    Ok(()) => return Ok(()),
                    Err(write_error) => {
                        // Another opener recorded an identity first: compare with theirs.
                        self.chunks.checkout_latest().await?;
                        native
                            .manifest()
                            .await?
                            .config
                            .get(EMBEDDER_KEY)
                            .cloned()
                            .ok_or(write_error)?
                    }
                }
            }
        };
        let stored: EmbedderIdentity = serde_json::from_str(&json)
            .map_err(|e| Error::Internal(format!("unreadable embedder identity {json:?}: {e}")))?;
        if &stored == embedder {
            Ok(())
        } else {
            Err(Error::EmbedderMismatch {
                user_id: self.user_id.clone(),
                stored: Box::new(stored),
                configured: Box::new(embedder.clone()),
            })
        }
    }

    /// The embedder identity stored with the tables.
    pub async fn stored_embedder(&self) -> Result<Option<EmbedderIdentity>> {
        let native = self
            .chunks
            .as_native()
            .ok_or_else(|| Error::Internal("chunks table is not a local table".into()))?;
        Ok(native
            .manifest()
            .await?
            .config
            .get(EMBEDDER_KEY)
            .and_then(|j| serde_json::from_str(j).ok()))
    }

    /// Drop both tables (for a re-index with another embedder).
    pub async fn drop_all(self) -> Result<()> {
        self.connection
            .drop_table(&self.settings.documents_table, &[])
            .await?;
        self.connection
            .drop_table(&self.settings.chunks_table, &[])
            .await?;
        Ok(())
    }

    /// Every document of a source: what change detection needs, nothing more.
    pub async fn doc_states(&self, source_id: &str) -> Result<Vec<DocState>> {
        let columns = [
            "doc_id",
            "source_uri",
            "size",
            "modified",
            "checksum",
            "processing_status",
            "attempts",
            "last_synced",
            "ingested_at",
        ];
        let batches = query(
            &self.docs,
            Some(format!("source_id = {}", sql_string(source_id))),
            &columns,
        )
        .await?;
        let mut out = Vec::new();
        for b in &batches {
            let c = Columns(b);
            let (id, uri, size, modified) = (
                c.str("doc_id")?,
                c.str("source_uri")?,
                c.i64("size")?,
                c.i64("modified")?,
            );
            let (checksum, status, attempts, synced) = (
                c.str("checksum")?,
                c.str("processing_status")?,
                c.i32("attempts")?,
                c.str("last_synced")?,
            );
            let ingested = c.str("ingested_at")?;
            for i in 0..b.num_rows() {
                out.push(DocState {
                    doc_id: id.value(i).into(),
                    source_uri: uri.value(i).into(),
                    size: size.value(i),
                    modified: modified.value(i),
                    checksum: checksum.value(i).into(),
                    status: status.value(i).into(),
                    attempts: attempts.value(i),
                    last_synced: synced.value(i).into(),
                    ingested_at: ingested.value(i).into(),
                });
            }
        }
        Ok(out)
    }

    /// Full document rows by id.
    pub async fn fetch_docs(&self, ids: &[String]) -> Result<Vec<DocRow>> {
        let mut out = Vec::new();
        for slice in ids.chunks(IDS_PER_STATEMENT) {
            for b in query(&self.docs, Some(sql_in("doc_id", slice)), &[]).await? {
                out.extend(rows::docs_from_batch(&b)?);
            }
        }
        Ok(out)
    }

    /// Documents matching a filter (already escaped by the caller).
    pub async fn docs_where(&self, filter: Option<String>) -> Result<Vec<DocRow>> {
        let mut out = Vec::new();
        for b in query(&self.docs, filter, &[]).await? {
            out.extend(rows::docs_from_batch(&b)?);
        }
        Ok(out)
    }

    /// Documents matching a filter (already escaped by the caller), without their vectors.
    pub async fn docs_where_without_vectors(&self, filter: Option<String>) -> Result<Vec<DocRow>> {
        let columns: Vec<String> = rows::doc_schema(self.dim)
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| n != "vector")
            .collect();
        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
        let mut out = Vec::new();
        for b in query(&self.docs, filter, &columns).await? {
            out.extend(rows::docs_from_batch(&b)?);
        }
        Ok(out)
    }

    /// Full chunk rows of these documents.
    pub async fn fetch_chunks(&self, doc_ids: &[String]) -> Result<Vec<ChunkRow>> {
        let mut out = Vec::new();
        for slice in doc_ids.chunks(IDS_PER_STATEMENT) {
            for b in query(&self.chunks, Some(sql_in("doc_id", slice)), &[]).await? {
                out.extend(rows::chunks_from_batch(&b)?);
            }
        }
        out.sort_by(|a, b| (&a.doc_id, a.chunk_index).cmp(&(&b.doc_id, b.chunk_index)));
        Ok(out)
    }

    /// Append chunk rows (of documents that have none), in one commit.
    pub async fn add_chunks(&self, rows: &[ChunkRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let batch = rows::chunks_to_batch(rows, self.dim)?;
        self.chunks.add(reader(batch)).execute().await?;
        Ok(())
    }

    /// Append document rows (of documents that have none), in one commit.
    pub async fn add_docs(&self, rows: &[DocRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let batch = rows::docs_to_batch(rows, self.dim)?;
        self.docs.add(reader(batch)).execute().await?;
        Ok(())
    }

    /// Replace the chunks of `replace_docs` with `rows`, in one commit: rows are upserted by
    /// `chunk_id`, and every other chunk of those documents is deleted.
    pub async fn replace_chunks(&self, rows: &[ChunkRow], replace_docs: &[String]) -> Result<()> {
        if replace_docs.is_empty() {
            return Ok(());
        }
        if rows.is_empty() {
            self.chunks.delete(&sql_in("doc_id", replace_docs)).await?;
            return Ok(());
        }
        let batch = rows::chunks_to_batch(rows, self.dim)?;
        let mut merge = self.chunks.merge_insert(&["chunk_id"]);
        merge
            .when_matched_update_all(None)
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(Some(sql_in("doc_id", replace_docs)));
        merge.execute(reader(batch)).await?;
        Ok(())
    }

    /// Upsert document rows by `doc_id`, in one commit.
    pub async fn upsert_docs(&self, rows: &[DocRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let batch = rows::docs_to_batch(rows, self.dim)?;
        let mut merge = self.docs.merge_insert(&["doc_id"]);
        merge
            .when_matched_update_all(None)
            .when_not_matched_insert_all();
        merge.execute(reader(batch)).await?;
        Ok(())
    }

    /// Delete documents: their chunks first, then their rows, so a crash in between leaves a
    /// row the next run deletes again rather than chunks nobody points to.
    pub async fn delete_docs(&self, doc_ids: &[String]) -> Result<()> {
        for slice in doc_ids.chunks(IDS_PER_STATEMENT) {
            self.chunks.delete(&sql_in("doc_id", slice)).await?;
        }
        for slice in doc_ids.chunks(IDS_PER_STATEMENT) {
            self.docs.delete(&sql_in("doc_id", slice)).await?;
        }
        Ok(())
    }

    /// Chunks of `source_id` whose document row does not exist (left by a crash between the
    /// chunk write and the document write of a file that has since gone).
    pub async fn orphan_chunk_docs(&self, source_id: &str) -> Result<Vec<String>> {
        let filter = Some(format!("source_id = {}", sql_string(source_id)));
        let mut chunk_docs = std::collections::BTreeSet::new();
        for b in query(&self.chunks, filter.clone(), &["doc_id"]).await? {
            let ids = Columns(&b).str("doc_id")?;
            chunk_docs.extend((0..b.num_rows()).map(|i| ids.value(i).to_string()));
        }
        for b in query(&self.docs, filter, &["doc_id"]).await? {
            let ids = Columns(&b).str("doc_id")?;
            for i in 0..b.num_rows() {
                chunk_docs.remove(ids.value(i));
            }
        }
        Ok(chunk_docs.into_iter().collect())
    }

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
                        .memory_limit_mb(FTS_BUILD_MEMORY_MB),
                ),
            )
            .execute()
            .await?;
        self.fts_ready.store(true, Ordering::Relaxed);
        Ok(true)
    }

    /// During a long run, after a batch: build the vector index as soon as the table passes
    /// the size threshold, then fold new rows into it every `fold_during_run_rows`. Searches
    /// during a long first sync use the index, and the end of the run has little left to
    /// fold. Returns whether it did anything.
    pub async fn index_during_run(&self) -> Result<bool> {
        let rows = self.chunks.count_rows(None).await?;
        if rows < self.settings.vector_index_rows {
            return Ok(false);
        }
        let indices = self.chunks.list_indices().await?;
        let Some(vector_index) = indices
            .iter()
            .find(|i| i.columns.iter().any(|c| c == "vector"))
        else {
            let step = std::time::Instant::now();
            self.create_vector_index().await?;
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

    async fn create_vector_index(&self) -> Result<()> {
        self.chunks
            .create_index(&["vector"], Index::IvfPq(vector_index_builder(self.dim)))
            .execute()
            .await?;
        Ok(())
    }

    /// Whether the full-text index is known to exist (then the table has had rows).
    pub fn fts_known(&self) -> bool {
        self.fts_ready.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `(source_id, processing_status, attempts)` of every document: what a status needs,
    /// without reading vectors.
    pub async fn doc_summaries(&self) -> Result<Vec<(String, String, i32)>> {
        let mut out = Vec::new();
        for b in query(
            &self.docs,
            None,
            &["source_id", "processing_status", "attempts"],
        )
        .await?
        {
            let c = Columns(&b);
            let (source, status, attempts) = (
                c.str("source_id")?,
                c.str("processing_status")?,
                c.i32("attempts")?,
            );
            out.extend((0..b.num_rows()).map(|i| {
                (
                    source.value(i).to_string(),
                    status.value(i).to_string(),
                    attempts.value(i),
                )
            }));
        }
        Ok(out)
    }

    /// Keep the tables fast: full-text index present and current, a vector index past the
    /// size threshold, small fragments compacted, old versions pruned.
    pub async fn maintain(&self) -> Result<Maintenance> {
        let mut done = Maintenance::default();
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
            // Searches rank by cosine distance: an index built for another metric is not used
            // (lance falls back to a brute-force scan), so one is rebuilt.
            let vector_index = indices
                .iter()
                .find(|i| i.columns.iter().any(|c| c == "vector"));
            let cosine = match vector_index {
                Some(index) => self
                    .chunks
                    .index_stats(&index.name)
                    .await?
                    .is_some_and(|s| s.distance_type == Some(DistanceType::Cosine)),
                None => false,
            };
            if rows >= self.settings.vector_index_rows && !cosine {
                let step = std::time::Instant::now();
                self.create_vector_index().await?;
                tracing::debug!(
                    rows,
                    ms = step.elapsed().as_millis() as u64,
                    "built the vector index"
                );
                done.created_indexes.push("vector (IVF-PQ, cosine)".into());
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
        for table in [&self.docs, &self.chunks] {
            let stats = table.stats().await?;
            if stats.fragment_stats.num_small_fragments >= self.settings.compact_small_fragments {
                let step = std::time::Instant::now();
                table
                    .optimize(OptimizeAction::Compact {
                        options: compaction_options(),
                        remap_options: None,
                    })
                    .await?;
                table
                    .optimize(OptimizeAction::Prune {
                        older_than: Some(lancedb::table::Duration::days(
                            self.settings.keep_versions_days,
                        )),
                        delete_unverified: None,
                        error_if_tagged_old_versions: None,
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

/// The vector index: IVF-PQ for cosine distance with 4-bit codes, one sub-vector per four
/// dimensions.
///
/// Lance's default (8-bit codes, one sub-vector per 16 dimensions) trains 256 centroids per
/// sub-vector on a sample of 65,536 vectors: at 100,000 chunks the build took 19 to 26 s and
/// raised memory by about 250 MB, a fixed cost that made the peak of a large first sync. 4-bit
/// codes train 16 centroids on 4,096 vectors: the same build takes under 1 s, with no visible
/// rise in `sync-cli` (whose allocator is tuned, see `lancesync::tune_allocator`), and with
/// four times the sub-vectors recall@10 is about the default's (0.44 vs 0.46 against exact
/// search on the benchmark corpus, `scripts/vector-recall.py`; docs/benchmarks.md). 4-bit codes need an even number of
/// sub-vectors; other dimensions keep lance's default.
fn vector_index_builder(dim: usize) -> IvfPqIndexBuilder {
    let builder = IvfPqIndexBuilder::default().distance_type(DistanceType::Cosine);
    if dim >= 8 && dim.is_multiple_of(8) {
        builder.num_bits(4).num_sub_vectors((dim / 4) as u32)
    } else {
        builder
    }
}

/// Compaction: copy encoded pages where the files allow it (no decode and re-encode) and
/// one task at a time, which bounds the memory of rewriting a large table.
fn compaction_options() -> CompactionOptions {
    CompactionOptions {
        compaction_mode: Some(lancedb::table::CompactionMode::TryBinaryCopy),
        num_threads: Some(1),
        ..CompactionOptions::default()
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

fn reader(batch: RecordBatch) -> Box<dyn arrow_array::RecordBatchReader + Send> {
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
