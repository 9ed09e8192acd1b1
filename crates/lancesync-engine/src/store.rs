//! A user's two tables: opening (and creating) them, reading state, batched writes, deletes,
//! and maintenance.

use std::path::PathBuf;

use arrow_array::{Array, Int32Array, Int64Array, RecordBatch, RecordBatchIterator, StringArray};
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
/// Metadata cache per user database. Lance caches the manifest of every version it reads, and a
/// long run writes hundreds, each listing every fragment so far: lance's default (1 GiB), and
/// even 32 MiB, filled during a 100,000-document first sync (about 45 MB of its peak). The
/// current version's manifest, file and index metadata fit easily in this.
const METADATA_CACHE_BYTES: usize = 4 << 20;

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

/// Key of the embedder identity in the chunks table's manifest config.
const EMBEDDER_KEY: &str = "lancesync.embedder";

/// The manifest key of a source's change cursor (source ids are validated: no separators).
fn cursor_key(source_id: &str) -> String {
    format!("lancesync.cursor.{source_id}")
}
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

/// Where one document is in a [`SourceDocs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocPos {
    part: u32,
    row: u32,
}

/// The stored documents of one source, as read: columns, not one object per document. A
/// rescan of 100,000 unchanged files compares the listing against these directly and builds
/// a [`DocState`] only for a document that needs work, which keeps a rescan's time and memory
/// close to the listing's own.
#[derive(Debug, Default)]
pub struct SourceDocs {
    parts: Vec<StateColumns>,
}

#[derive(Debug)]
struct StateColumns {
    doc_id: StringArray,
    source_uri: StringArray,
    size: Int64Array,
    modified: Int64Array,
    checksum: StringArray,
    status: StringArray,
    attempts: Int32Array,
    last_synced: StringArray,
    ingested_at: StringArray,
    source_version: StringArray,
}

impl StateColumns {
    fn new(batch: &RecordBatch) -> Result<Self> {
        let c = Columns(batch);
        Ok(Self {
            doc_id: c.str("doc_id")?.clone(),
            source_uri: c.str("source_uri")?.clone(),
            size: c.i64("size")?.clone(),
            modified: c.i64("modified")?.clone(),
            checksum: c.str("checksum")?.clone(),
            status: c.str("processing_status")?.clone(),
            attempts: c.i32("attempts")?.clone(),
            last_synced: c.str("last_synced")?.clone(),
            ingested_at: c.str("ingested_at")?.clone(),
            source_version: c.str("source_version")?.clone(),
        })
    }
}

impl SourceDocs {
    const COLUMNS: [&str; 10] = [
        "doc_id",
        "source_uri",
        "size",
        "modified",
        "checksum",
        "processing_status",
        "attempts",
        "last_synced",
        "ingested_at",
        "source_version",
    ];

    /// How many documents.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.doc_id.len()).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every document's position.
    pub fn positions(&self) -> impl Iterator<Item = DocPos> + '_ {
        self.parts.iter().enumerate().flat_map(|(part, p)| {
            (0..p.doc_id.len()).map(move |row| DocPos {
                part: part as u32,
                row: row as u32,
            })
        })
    }

    fn part(&self, pos: DocPos) -> (&StateColumns, usize) {
        (&self.parts[pos.part as usize], pos.row as usize)
    }

    /// The document's id.
    pub fn doc_id(&self, pos: DocPos) -> &str {
        let (p, i) = self.part(pos);
        p.doc_id.value(i)
    }

    /// Where the document is.
    pub fn source_uri(&self, pos: DocPos) -> &str {
        let (p, i) = self.part(pos);
        p.source_uri.value(i)
    }

    /// Size and modification time when last synced.
    pub fn stat(&self, pos: DocPos) -> (i64, i64) {
        let (p, i) = self.part(pos);
        (p.size.value(i), p.modified.value(i))
    }

    /// The source's version marker (ETag, revision) when last synced.
    pub fn version(&self, pos: DocPos) -> Option<&str> {
        let (p, i) = self.part(pos);
        (!p.source_version.is_null(i)).then(|| p.source_version.value(i))
    }

    /// `completed` or `failed`.
    pub fn status(&self, pos: DocPos) -> &str {
        let (p, i) = self.part(pos);
        p.status.value(i)
    }

    /// The whole state of one document.
    pub fn state(&self, pos: DocPos) -> DocState {
        let (p, i) = self.part(pos);
        DocState {
            doc_id: p.doc_id.value(i).into(),
            source_uri: p.source_uri.value(i).into(),
            size: p.size.value(i),
            modified: p.modified.value(i),
            checksum: p.checksum.value(i).into(),
            status: p.status.value(i).into(),
            attempts: p.attempts.value(i),
            last_synced: p.last_synced.value(i).into(),
            ingested_at: p.ingested_at.value(i).into(),
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
                // An original documents table alone: refused before a lock file or a table is
                // written beside it.
                if names.contains(docs_name)
                    && let Ok(docs) = connection.open_table(docs_name).execute().await
                {
                    ensure_not_original(&docs, &db.uri).await?;
                }
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
                // Checked before the other table is created beside an original one.
                ensure_not_original(&docs, &db.uri).await?;
                let chunks = open_or_create(chunks_name, rows::chunk_schema(dim)).await?;
                // Held until the embedder identity is recorded below.
                _creating = Some(lock);
                (docs, chunks)
            }
        };
        ensure_not_original(&docs, &db.uri).await?;
        ensure_not_original(&chunks, &db.uri).await?;
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

    /// The change cursor stored for a source (a remote API's cursor or page token).
    ///
    /// Cursors live in the documents table's manifest, not in a file beside it: they are
    /// written after the changes they cover, in a commit of their own, and they travel with
    /// the data through backups, restores, multi-device sync and re-indexing, so a cursor can
    /// never be ahead of the tables it describes.
    pub async fn cursor(&self, source_id: &str) -> Result<Option<String>> {
        Ok(self
            .native_docs()?
            .manifest()
            .await?
            .config
            .get(&cursor_key(source_id))
            .cloned())
    }

    /// Store a source's cursor (after the changes it covers are written).
    pub async fn set_cursor(&self, source_id: &str, cursor: &str) -> Result<()> {
        self.native_docs()?
            .update_config([(cursor_key(source_id), cursor.to_string())])
            .await?;
        Ok(())
    }

    /// Forget a source's cursor (its documents were removed): its next run lists in full.
    pub async fn clear_cursor(&self, source_id: &str) -> Result<()> {
        if self.cursor(source_id).await?.is_some() {
            self.native_docs()?
                .delete_config_keys(&[cursor_key(source_id).as_str()])
                .await?;
        }
        Ok(())
    }

    fn native_docs(&self) -> Result<&lancedb::table::NativeTable> {
        self.docs
            .as_native()
            .ok_or_else(|| Error::Internal("documents table is not a local table".into()))
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

    /// Every document of a source: what change detection needs, nothing more, kept in the
    /// columns it was read in.
    pub async fn source_docs(&self, source_id: &str) -> Result<SourceDocs> {
        let batches = query(
            &self.docs,
            Some(format!("source_id = {}", sql_string(source_id))),
            &SourceDocs::COLUMNS,
        )
        .await?;
        let parts = batches
            .iter()
            .filter(|b| b.num_rows() > 0)
            .map(StateColumns::new)
            .collect::<Result<Vec<_>>>()?;
        Ok(SourceDocs { parts })
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
                        .num_workers(fts_build_workers())
                        .memory_limit_mb(FTS_PARTITION_MB * fts_build_workers() as u64),
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

/// The original system's tables share lancesync's names but lack `source_id`; lancesync must
/// not touch them (recording the embedder identity would already write a version).
async fn ensure_not_original(table: &Table, uri: &str) -> Result<()> {
    if table.schema().await?.index_of("source_id").is_err() {
        return Err(Error::LegacyTables {
            uri: uri.to_string(),
            column: "source_id",
        });
    }
    Ok(())
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
