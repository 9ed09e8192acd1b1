//! lancesync engine: keep a user's LanceDB tables true to a source, and search them.
//!
//! One database per user at `{base}/users/{user_id}` with `processed_documents` and
//! `document_chunks`. A [`Engine::sync`] run reads only changed documents, replaces a
//! document's chunks atomically, writes in batches and survives being killed at any point.
//!
//! ```no_run
//! use std::sync::Arc;
//! use lancesync_engine::{Engine, EngineConfig, NoProgress, SearchRequest, SyncOptions};
//! use lancesync_ingest::HashingEmbedder;
//! use lancesync_sources::{LocalFsConfig, LocalFsSource};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::new(EngineConfig::new("data/lancedb"), Arc::new(HashingEmbedder::default()))?;
//! let source = LocalFsSource::new("notes", LocalFsConfig::new(["/home/ada/notes"]), &Default::default())?;
//! let report = engine.sync("ada", &source, SyncOptions::default(), &NoProgress).await?;
//! println!("{} created, {} updated", report.created, report.updated);
//! for hit in engine.search("ada", &SearchRequest::new("vector databases")).await? {
//!     println!("{:.3} {} #{}", hit.score, hit.source_uri, hit.chunk_index);
//! }
//! # Ok(()) }
//! ```

mod check;
mod config;
mod documents;
mod error;
mod fallback;
mod history;
pub mod ids;
mod lock;
mod reindex;
mod resident;
pub mod rows;
mod search;
mod sync;
mod tables;
mod writing;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use lancesync_ingest::{Chunker, Embedder, EmbedderIdentity};
use lancesync_sources::DocumentSource;
pub use lancesync_storage::Storage;
use serde::Serialize;
use tokio::sync::Mutex;

pub use check::{CheckOptions, CheckReport, Problem, ProblemKind, Repair};
pub use config::{
    EmbedderResolver, EngineConfig, MassDeleteGuard, embedder_from_settings,
    embedder_resolver_from_settings,
};
pub use documents::{
    ChunkInfo, DocumentFilter, DocumentInfo, DocumentWithChunks, MAX_PAGE, Page, PrecomputedChunk,
    PrecomputedDocument,
};
pub use error::{Error, Result};
pub use fallback::{LegacyFallback, STATUS_LEGACY};
pub use history::{KEEP as RUNS_KEPT, RunSummary};
pub use reindex::{
    PreviousGeneration, ReindexOptions, ReindexReport, RollbackReport, SERVING_RECHECK, WriteGuard,
};
pub use resident::SearchMemoryIndex;
pub use search::{MAX_LIMIT, SearchHit, SearchMode, SearchRequest, default_vector_weight};
pub use sync::{
    EmbeddingCost, Failure, MassDeleteBlocked, NoProgress, PlannedMove, Progress, RunPlan,
    SyncOptions, SyncReport,
};
pub use tables::{
    BEFORE_REINDEX_TAG, DocPos, DocState, IndexHealth, Maintenance, SHADOW_SUFFIX, SourceDocs,
    TableSettings, UserTables,
};

/// The source id of documents migrated from the original system that are in no configured
/// source: kept searchable, never listed by a run (so never deleted by one).
pub const MIGRATED_SOURCE: &str = "legacy";

/// Lock a std mutex, carrying on after a panic elsewhere (it holds plain bookkeeping).
fn lock_std<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A document's vector: the normalised mean of its chunks' vectors (zeros for none).
pub fn mean_vector(vectors: &[Vec<f32>], dim: usize) -> Vec<f32> {
    sync::mean_vector(vectors, dim)
}

/// The current time as RFC 3339 with milliseconds, as the tables record it.
pub fn now_rfc3339() -> String {
    sync::now()
}

/// A user's index at a glance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserStatus {
    /// User.
    pub user_id: String,
    /// Documents indexed (completed).
    pub documents: usize,
    /// Chunks.
    pub chunks: usize,
    /// Documents whose last processing failed.
    pub failed: usize,
    /// Failed documents that later runs will retry (attempts below MAX_RETRIES).
    pub pending_retry: usize,
    /// Documents per source.
    pub by_source: BTreeMap<String, usize>,
    /// The embedder the tables were built with.
    pub embedder: Option<EmbedderIdentity>,
    /// Table versions: (documents, chunks).
    pub versions: (u64, u64),
}

/// The tables a user's searches read now, and the embedder that built them.
#[derive(Clone)]
struct Served {
    checked: Instant,
    tables: UserTables,
    shadow: bool,
    embedder: Arc<dyn Embedder>,
}

/// The sync engine. Cheap to share (`Arc`); keeps one handle per user's tables.
pub struct Engine {
    config: EngineConfig,
    embedder: Arc<dyn Embedder>,
    chunker: Arc<Chunker>,
    open: Mutex<HashMap<String, UserTables>>,
    replicas: Mutex<HashMap<String, UserTables>>,
    /// What each user's searches read, looked at again every [`SERVING_RECHECK`].
    served: Mutex<HashMap<String, Served>>,
    /// Builds query embedders for tables another embedder built.
    resolver: Option<EmbedderResolver>,
    /// Query embedders built by the resolver, by identity.
    resolved: std::sync::Mutex<HashMap<EmbedderIdentity, Arc<dyn Embedder>>>,
    /// In-memory indexes searches answer from, when turned on.
    resident: Option<resident::Resident>,
    /// Several instances' writes, when a coordinator is set.
    coordinated: writing::Coordinated,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .field("embedder", &self.embedder.identity())
            .finish()
    }
}

impl Engine {
    /// An engine writing under `config.base_dir` with `embedder`.
    pub fn new(config: EngineConfig, embedder: Arc<dyn Embedder>) -> Result<Self> {
        let chunker = Arc::new(Chunker::new(config.chunking)?);
        Ok(Self {
            config,
            embedder,
            chunker,
            open: Mutex::default(),
            replicas: Mutex::default(),
            served: Mutex::default(),
            resolver: None,
            resolved: std::sync::Mutex::default(),
            resident: None,
            coordinated: writing::Coordinated::default(),
        })
    }

    /// Searches answer from in-memory indexes of the tables' current versions, built in the
    /// background, of at most `bytes` in all (`SEARCH_MEMORY_MB`; 0 keeps none): for a
    /// process that answers many searches, such as a server. The hits are the same; see
    /// [`lancesync_memindex`] and the `resident` module.
    pub fn with_search_memory(mut self, bytes: usize) -> Self {
        self.resident = (bytes > 0).then(|| resident::Resident::new(bytes));
        self
    }

    /// The in-memory search indexes held now (none unless [`Self::with_search_memory`]).
    pub fn search_memory(&self) -> Vec<SearchMemoryIndex> {
        self.resident
            .as_ref()
            .map_or_else(Vec::new, |r| r.indexes())
    }

    /// Searches of tables built by another embedder than the configured one (before a
    /// re-index switches, or after one by another process) embed their query with the
    /// embedder `resolver` builds for the tables' identity. Without a resolver, only the
    /// built-in embedder is rebuilt that way; other tables of another embedder are refused.
    pub fn with_embedder_resolver(mut self, resolver: EmbedderResolver) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The embedder's identity.
    pub fn embedder(&self) -> EmbedderIdentity {
        self.embedder.identity()
    }

    /// The embedder itself, for code that writes rows through [`UserTables`].
    pub fn embedder_handle(&self) -> Arc<dyn Embedder> {
        self.embedder.clone()
    }

    /// A user's tables for writing, opened (and created) once per engine; each call checks
    /// they still hold this engine's embedder (a re-index in another process may have
    /// changed it) and that no re-index is copying them.
    pub async fn tables(&self, user_id: &str) -> Result<UserTables> {
        let identity = self.embedder.identity();
        let mut open = self.open.lock().await;
        let cached = match open.get(user_id).cloned() {
            Some(t) => {
                t.check_embedder(&identity, true).await?;
                (t.dim == identity.dimension).then_some(t)
            }
            None => None,
        };
        let t = match cached {
            Some(t) => t,
            None => {
                let t = UserTables::open(
                    &self.config.storage.database(user_id)?,
                    user_id,
                    &self.config.tables,
                    &identity,
                )
                .await?;
                open.insert(user_id.to_string(), t.clone());
                t
            }
        };
        // After opening: tables that are not lancesync's (the original system's) are refused
        // before anything is written beside them, the lock file included.
        drop(reindex::write_guard(&t.state_dir, user_id)?);
        Ok(t)
    }

    /// A user's tables if they exist, holding this engine's embedder's vectors (else
    /// [`Error::EmbedderMismatch`]); `None` for a user with no index yet, so asking about an
    /// unknown user creates nothing.
    pub async fn existing_tables(&self, user_id: &str) -> Result<Option<UserTables>> {
        let db = self.config.storage.database(user_id)?;
        let identity = self.embedder.identity();
        let Some(t) = self.open_existing_cached(&self.open, &db, user_id).await? else {
            return Ok(None);
        };
        t.check_embedder(&identity, false).await?;
        if t.dim == identity.dimension || t.stored_embedder().await?.is_none() {
            return Ok(Some(t));
        }
        // Opened before a re-index in another process changed the vectors' length.
        self.open.lock().await.remove(user_id);
        self.open_existing_cached(&self.open, &db, user_id).await
    }

    /// A user's tables if they exist, whatever embedder built them: for reading what does not
    /// depend on it (counts, failures, reports).
    async fn any_tables(&self, user_id: &str) -> Result<Option<UserTables>> {
        let db = self.config.storage.database(user_id)?;
        self.open_existing_cached(&self.open, &db, user_id).await
    }

    /// A user's tables at `db` from `cache`, opened (never created) on first use, whatever
    /// embedder built them.
    async fn open_existing_cached(
        &self,
        cache: &Mutex<HashMap<String, UserTables>>,
        db: &lancesync_storage::Database,
        user_id: &str,
    ) -> Result<Option<UserTables>> {
        let mut open = cache.lock().await;
        if let Some(t) = open.get(user_id) {
            return Ok(Some(t.clone()));
        }
        let found = UserTables::open_any(db, user_id, &self.config.tables).await?;
        if let Some(t) = &found {
            open.insert(user_id.to_string(), t.clone());
        }
        Ok(found)
    }

    /// The tables searches and listings read: the local replica in
    /// `s3_primary_local_cache` (fetched on first use, refreshed in the background), the
    /// primary otherwise; during a re-index's switch, its new tables. `None` for a user with
    /// no index.
    pub async fn read_tables(&self, user_id: &str) -> Result<Option<UserTables>> {
        Ok(self.served(user_id).await?.map(|s| s.tables))
    }

    /// What `user_id`'s searches read now and the embedder for their queries, looked at
    /// again every [`SERVING_RECHECK`]: a re-index (here or in another process) switches
    /// readers with one commit, and waits for them to follow.
    async fn served(&self, user_id: &str) -> Result<Option<Served>> {
        ids::validate_user_id(user_id)?;
        let before = self.served.lock().await.get(user_id).cloned();
        if let Some(s) = &before
            && s.checked.elapsed() < SERVING_RECHECK
        {
            return Ok(Some(s.clone()));
        }
        let (db, cache) = match self.config.storage.read_replica(user_id).await? {
            Some(replica) => (replica, &self.replicas),
            None => (self.config.storage.database(user_id)?, &self.open),
        };
        let Some(mut live) = self.open_existing_cached(cache, &db, user_id).await? else {
            return Ok(None);
        };
        let shadow = if live.serves_shadow().await? {
            match before.filter(|s| s.shadow) {
                Some(s) => Some(s.tables),
                None => {
                    UserTables::open_any(
                        &tables::shadow_database(&db),
                        user_id,
                        &self.config.tables.shadow(),
                    )
                    .await?
                }
            }
        } else {
            None
        };
        let serving_shadow = shadow.is_some();
        let mut tables = shadow.unwrap_or(live.clone());
        let mut stored = tables.stored_embedder().await?;
        if let Some(identity) = &stored
            && identity.dimension != tables.dim
            && !serving_shadow
        {
            // Opened before a re-index in another process changed the vectors' length.
            cache.lock().await.remove(user_id);
            live = self
                .open_existing_cached(cache, &db, user_id)
                .await?
                .ok_or_else(|| Error::Internal("the tables went away".into()))?;
            tables = live;
            stored = tables.stored_embedder().await?;
        }
        let served = Served {
            checked: Instant::now(),
            embedder: self.query_embedder(user_id, stored.as_ref())?,
            tables,
            shadow: serving_shadow,
        };
        self.served
            .lock()
            .await
            .insert(user_id.to_string(), served.clone());
        Ok(Some(served))
    }

    /// The embedder for queries of tables built by `stored` (the configured one if it is
    /// that, or the tables record none yet).
    fn query_embedder(
        &self,
        user_id: &str,
        stored: Option<&EmbedderIdentity>,
    ) -> Result<Arc<dyn Embedder>> {
        let configured = self.embedder.identity();
        let Some(stored) = stored.filter(|s| **s != configured) else {
            return Ok(self.embedder.clone());
        };
        if let Some(e) = lock_std(&self.resolved).get(stored) {
            return Ok(e.clone());
        }
        let built = match &self.resolver {
            Some(resolve) => resolve(stored)?,
            None => config::builtin_for(stored),
        };
        match built {
            Some(e) if e.identity() == *stored => {
                lock_std(&self.resolved).insert(stored.clone(), e.clone());
                Ok(e)
            }
            _ => Err(Error::EmbedderMismatch {
                user_id: user_id.to_string(),
                stored: Box::new(stored.clone()),
                configured: Box::new(configured),
            }),
        }
    }

    /// Drop every handle and record kept for `user_id` (its tables changed underneath).
    async fn forget_user(&self, user_id: &str) {
        self.open.lock().await.remove(user_id);
        self.replicas.lock().await.remove(user_id);
        self.served.lock().await.remove(user_id);
    }

    /// After writing to a user's tables directly (through [`UserTables`]): what the storage
    /// mode asks (S3 copy, cache refresh). Runs and the engine's own writes call it.
    pub async fn after_write(&self, user_id: &str) -> Option<lancesync_storage::AfterWrite> {
        match self.config.storage.after_write(user_id).await {
            lancesync_storage::AfterWrite::Nothing => None,
            other => Some(other),
        }
    }

    /// The storage (mode, S3 target, backup state).
    pub fn storage(&self) -> &Arc<Storage> {
        &self.config.storage
    }

    /// Copy a user's database to S3 now (local-primary modes with S3).
    pub async fn backup(&self, user_id: &str) -> Result<lancesync_storage::BackupRecord> {
        ids::validate_user_id(user_id)?;
        Ok(self.config.storage.backup(user_id).await?)
    }

    /// Rebuild a user's database from S3, optionally at an earlier `version` of the
    /// documents table (see [`Storage::restore`]). Open handles are dropped first.
    pub async fn restore(
        &self,
        user_id: &str,
        version: Option<u64>,
    ) -> Result<lancesync_storage::RestoreReport> {
        ids::validate_user_id(user_id)?;
        let db = self.config.storage.database(user_id)?;
        // The user cluster-wide only: a lock file in the database's folder would make the
        // restore find a local database that is not there.
        let writing = self.writing_at(&db.state_dir, user_id, false).await?;
        self.forget_user(user_id).await;
        writing
            .fenced(async {
                Ok(self
                    .config
                    .storage
                    .restore(
                        user_id,
                        version,
                        &self.config.tables.documents_table,
                        &self.config.tables.chunks_table,
                    )
                    .await?)
            })
            .await
    }

    /// Whether `user_id` has an index.
    pub async fn user_exists(&self, user_id: &str) -> Result<bool> {
        Ok(self.any_tables(user_id).await?.is_some())
    }

    /// One sync run of `source` into `user_id`'s tables; with [`SyncOptions::dry_run`], its
    /// plan, writing nothing.
    pub async fn sync(
        &self,
        user_id: &str,
        source: &dyn DocumentSource,
        options: SyncOptions,
        progress: &dyn Progress,
    ) -> Result<SyncReport> {
        ids::validate_user_id(user_id)?;
        if options.dry_run {
            // Writes nothing, so it creates no tables and fetches nothing from S3 first.
            let tables = self.existing_tables(user_id).await?;
            if let Some(tables) = &tables {
                tables.check_chunking(&self.config.chunking, false).await?;
            }
            return sync::Run::new_for(
                &self.config,
                self.embedder.as_ref(),
                &self.chunker,
                user_id,
                tables.as_ref(),
                source,
            )
            .execute(options, progress)
            .await;
        }
        // Multi-device sync: fetch a newer remote first. S3 being away must not stop local
        // work, so a failure here is only logged; the copy after the run is then queued.
        if let Err(e) = self.config.storage.before_write(user_id).await {
            tracing::warn!(user_id, error = %e, "could not check S3 for newer versions; syncing locally");
        }
        let tables = self.tables(user_id).await?;
        let writing = self.writing(&tables).await?;
        tables.check_chunking(&self.config.chunking, true).await?;
        // The versions the run commits are states of an unfinished write: searches meanwhile
        // answer from the newest in-memory view made rather than wait for a newer one.
        let searched_meanwhile = self.resident.as_ref().map(|r| r.writing(&tables));
        let report = writing
            .fenced(
                sync::Run::new(
                    &self.config,
                    self.embedder.as_ref(),
                    &self.chunker,
                    &tables,
                    source,
                )
                .execute(options, progress),
            )
            .await;
        drop(searched_meanwhile);
        let mut report = report?;
        report.storage = self.after_write(user_id).await;
        Ok(report)
    }

    /// Search a user's chunks.
    pub async fn search(&self, user_id: &str, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        request.validate()?;
        let mut looked_again = false;
        loop {
            let Some(served) = self.served(user_id).await? else {
                return Ok(Vec::new());
            };
            let searched = match self.resident_index(&served.tables).await {
                Ok(resident) => {
                    search::search(
                        &served.tables,
                        resident.as_deref(),
                        served.embedder.as_ref(),
                        self.config.search_vector_weight,
                        request,
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            match searched {
                // What the searches read may have changed under a record up to a second old
                // (a replica refreshed from a primary that another process re-indexed, to
                // vectors of another length): look again now, and search once more.
                Err(e) if !looked_again => {
                    tracing::debug!(user = %user_id, error = %e, "search failed; looking again at what to read");
                    self.served.lock().await.remove(user_id);
                    looked_again = true;
                }
                found => return found,
            }
        }
    }

    /// The in-memory index of `tables`' current version, when one is built (else its build
    /// may start).
    async fn resident_index(
        &self,
        tables: &UserTables,
    ) -> Result<Option<Arc<lancesync_memindex::Layered>>> {
        let Some(resident) = &self.resident else {
            return Ok(None);
        };
        let version = tables.chunks.version().await?;
        let deadline = tokio::time::Instant::now() + resident::LAYERING_WAIT;
        loop {
            match resident.lookup(tables, version) {
                resident::Lookup::Ready(index) | resident::Lookup::Behind(index) => {
                    return Ok(Some(index));
                }
                resident::Lookup::NotReady => return Ok(None),
                resident::Lookup::Layering(ended) => {
                    if tokio::time::timeout_at(deadline, ended).await.is_err() {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Counts for a user.
    pub async fn status(&self, user_id: &str) -> Result<UserStatus> {
        let Some(tables) = self.any_tables(user_id).await? else {
            return Ok(UserStatus {
                user_id: user_id.into(),
                documents: 0,
                chunks: 0,
                failed: 0,
                pending_retry: 0,
                by_source: BTreeMap::new(),
                embedder: None,
                versions: (0, 0),
            });
        };
        let docs = tables.doc_summaries().await?;
        let mut status = UserStatus {
            user_id: user_id.into(),
            documents: 0,
            chunks: tables.chunks.count_rows(None).await?,
            failed: 0,
            pending_retry: 0,
            by_source: BTreeMap::new(),
            embedder: tables.stored_embedder().await?,
            versions: (tables.docs.version().await?, tables.chunks.version().await?),
        };
        for (source_id, processing_status, attempts) in docs {
            *status.by_source.entry(source_id).or_default() += 1;
            if processing_status == rows::STATUS_FAILED {
                status.failed += 1;
                if (attempts as u64) < self.config.max_retries {
                    status.pending_retry += 1;
                }
            } else {
                status.documents += 1;
            }
        }
        Ok(status)
    }

    /// A user's failed documents.
    pub async fn failed(&self, user_id: &str) -> Result<Vec<rows::DocRow>> {
        let Some(tables) = self.any_tables(user_id).await? else {
            return Ok(Vec::new());
        };
        tables
            .docs_where(Some(format!(
                "processing_status = {}",
                ids::sql_string(rows::STATUS_FAILED)
            )))
            .await
    }

    /// Clear failure records: failed documents' rows (and any chunks they kept) are removed,
    /// so the next run treats them as new. Returns how many.
    pub async fn clear_failures(&self, user_id: &str) -> Result<usize> {
        self.clear_failures_where(user_id, |_| true).await
    }

    /// Clear one document's failure record, as [`clear_failures`](Self::clear_failures)
    /// does for all: the next run of its source reads it again. `false` when the user has
    /// no failed document with this id.
    pub async fn clear_failure(&self, user_id: &str, doc_id: &str) -> Result<bool> {
        ids::validate_doc_id(doc_id)?;
        Ok(self
            .clear_failures_where(user_id, |id| id == doc_id)
            .await?
            == 1)
    }

    async fn clear_failures_where(
        &self,
        user_id: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<usize> {
        let failed: Vec<String> = self
            .failed(user_id)
            .await?
            .into_iter()
            .map(|d| d.doc_id)
            .filter(|id| keep(id))
            .collect();
        if failed.is_empty() {
            return Ok(0);
        }
        let tables = self.tables(user_id).await?;
        let writing = self.writing(&tables).await?;
        writing.fenced(tables.delete_docs(&failed)).await?;
        self.after_write(user_id).await;
        Ok(failed.len())
    }

    /// Forget a source's change cursor, so that its next run lists it in full (its settings
    /// changed: a cursor of what it listed before says nothing of what it lists now).
    pub async fn forget_cursor(&self, user_id: &str, source_id: &str) -> Result<()> {
        ids::validate_source_id(source_id)?;
        let Some(tables) = self.existing_tables(user_id).await? else {
            return Ok(());
        };
        let writing = self.writing(&tables).await?;
        writing.fenced(tables.clear_cursor(source_id)).await?;
        self.after_write(user_id).await;
        Ok(())
    }

    /// Remove every document of a source from a user's index. Returns how many.
    pub async fn remove_source_documents(&self, user_id: &str, source_id: &str) -> Result<usize> {
        ids::validate_source_id(source_id)?;
        let Some(tables) = self.existing_tables(user_id).await? else {
            return Ok(0);
        };
        let writing = self.writing(&tables).await?;
        let ids = writing
            .fenced(async {
                let docs = tables.source_docs(source_id).await?;
                let ids: Vec<String> = docs
                    .positions()
                    .map(|p| docs.doc_id(p).to_string())
                    .collect();
                tables.delete_docs(&ids).await?;
                tables.clear_cursor(source_id).await?;
                Ok(ids)
            })
            .await?;
        let last = tables.state_dir.join(format!("{source_id}.last.json"));
        let _ = tokio::fs::remove_file(last).await;
        history::forget(&tables.state_dir, source_id).await;
        self.after_write(user_id).await;
        Ok(ids.len())
    }

    /// When a failed document is next tried (RFC 3339): by the first run of its source after
    /// that time. `None` once it is out of retries (`MAX_RETRIES`): it then waits for new
    /// content, or a retry by hand.
    pub fn next_retry(&self, failed: &DocumentInfo) -> Option<String> {
        let wait = sync::retry_wait(
            self.config.max_retries,
            self.config.retry_backoff,
            failed.attempts,
        )?;
        let last = humantime::parse_rfc3339(&failed.last_synced).ok()?;
        Some(humantime::format_rfc3339_seconds(last + wait).to_string())
    }

    /// The user's finished runs, every source's, oldest first (the newest [`RUNS_KEPT`] of
    /// each source).
    pub async fn run_history(&self, user_id: &str) -> Result<Vec<RunSummary>> {
        let Some(tables) = self.any_tables(user_id).await? else {
            return Ok(Vec::new());
        };
        Ok(history::read(&tables.state_dir).await)
    }

    /// The last report of each source's runs, newest state of each.
    pub async fn last_runs(&self, user_id: &str) -> Result<Vec<SyncReport>> {
        let Some(tables) = self.any_tables(user_id).await? else {
            return Ok(Vec::new());
        };
        let dir = tables.state_dir.clone();
        let mut out = Vec::new();
        let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
            return Ok(out);
        };
        while let Some(entry) = entries.next_entry().await.map_err(|e| Error::Io {
            path: dir.clone(),
            source: e,
        })? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".last.json")
                && let Ok(text) = tokio::fs::read_to_string(entry.path()).await
                && let Ok(report) = serde_json::from_str::<SyncReport>(&text)
            {
                out.push(report);
            }
        }
        out.sort_by(|a, b| a.source_id.cmp(&b.source_id));
        Ok(out)
    }

    /// A page of a user's documents (no vectors), ordered by source then URI.
    pub async fn documents(
        &self,
        user_id: &str,
        filter: &DocumentFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Page<DocumentInfo>> {
        documents::check_page(limit)?;
        let sql = filter.to_sql()?;
        let Some(tables) = self.read_tables(user_id).await? else {
            return Ok(Page {
                items: Vec::new(),
                total: 0,
                offset,
                limit,
            });
        };
        let mut docs = tables.docs_where_without_vectors(sql).await?;
        docs.sort_by(|a, b| (&a.source_id, &a.source_uri).cmp(&(&b.source_id, &b.source_uri)));
        let total = docs.len();
        let items = docs
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(DocumentInfo::from)
            .collect();
        Ok(Page {
            items,
            total,
            offset,
            limit,
        })
    }

    /// One of a user's documents with its chunks; `None` if the user has no such document.
    pub async fn document(
        &self,
        user_id: &str,
        doc_id: &str,
    ) -> Result<Option<DocumentWithChunks>> {
        ids::validate_doc_id(doc_id)?;
        let Some(tables) = self.read_tables(user_id).await? else {
            return Ok(None);
        };
        let Some(doc) = tables.fetch_docs(&[doc_id.to_string()]).await?.pop() else {
            return Ok(None);
        };
        let chunks = tables.fetch_chunks(&[doc_id.to_string()]).await?;
        Ok(Some(DocumentWithChunks {
            document: DocumentInfo::from(doc),
            chunks: chunks.into_iter().map(ChunkInfo::from).collect(),
        }))
    }

    /// Write a document whose chunks the caller made, into `source_id` of a user's index:
    /// missing embeddings are computed, given ones must have the index's dimension; the
    /// document's earlier chunks are replaced in one commit, then its row is written. The
    /// source should be one no sync run lists (a run would delete what its listing lacks).
    pub async fn ingest_precomputed(
        &self,
        user_id: &str,
        source_id: &str,
        doc: PrecomputedDocument,
    ) -> Result<DocumentInfo> {
        ids::validate_source_id(source_id)?;
        if doc.uri.trim().is_empty() || doc.uri.len() > 2048 {
            return Err(Error::InvalidRequest(
                "the document needs a uri of 1 to 2048 characters".into(),
            ));
        }
        if doc.chunks.is_empty() || doc.chunks.iter().any(|c| c.text.trim().is_empty()) {
            return Err(Error::InvalidRequest(
                "give at least one chunk, none of them empty".into(),
            ));
        }
        let tables = self.tables(user_id).await?;
        let writing = self.writing(&tables).await?;
        let dim = tables.dim;
        if let Some((i, c)) = doc.chunks.iter().enumerate().find(|(_, c)| {
            c.embedding
                .as_ref()
                .is_some_and(|e| e.len() != dim || e.iter().any(|x| !x.is_finite()))
        }) {
            return Err(Error::InvalidRequest(format!(
                "chunk {i}: the embedding has {} values (or a non-finite one); this index takes {dim} from {}",
                c.embedding.as_ref().map_or(0, Vec::len),
                self.embedder.identity().name
            )));
        }
        let missing: Vec<String> = doc
            .chunks
            .iter()
            .filter(|c| c.embedding.is_none())
            .map(|c| c.text.clone())
            .collect();
        let mut computed = if missing.is_empty() {
            Vec::new()
        } else {
            self.embedder.embed(&missing).await?
        }
        .into_iter();
        let vectors: Vec<Vec<f32>> = doc
            .chunks
            .iter()
            .map(|c| {
                c.embedding
                    .clone()
                    .or_else(|| computed.next())
                    .unwrap_or_default()
            })
            .collect();
        let id = ids::doc_id(user_id, source_id, &doc.uri);
        let now = sync::now();
        let prior = tables.fetch_docs(std::slice::from_ref(&id)).await?.pop();
        let mut hasher = blake3::Hasher::new();
        let chunk_rows: Vec<rows::ChunkRow> = doc
            .chunks
            .iter()
            .zip(&vectors)
            .enumerate()
            .map(|(i, (c, v))| {
                hasher.update(c.text.as_bytes());
                rows::ChunkRow {
                    chunk_id: ids::chunk_id(&id, i as u32),
                    doc_id: id.clone(),
                    user_id: user_id.into(),
                    source_id: source_id.into(),
                    source_uri: doc.uri.clone(),
                    title: doc.title.clone(),
                    doc_type: doc.doc_type.as_str().into(),
                    chunk_index: i as i32,
                    chunk_text: c.text.clone(),
                    metadata: serde_json::json!({ "precomputed": c.embedding.is_some() })
                        .to_string(),
                    created_at: now.clone(),
                    checksum: blake3::hash(c.text.as_bytes()).to_hex().to_string(),
                    vector: v.clone(),
                }
            })
            .collect();
        let size: usize = doc.chunks.iter().map(|c| c.text.len()).sum();
        let row = rows::DocRow {
            doc_id: id.clone(),
            user_id: user_id.into(),
            source_type: "manual".into(),
            source_id: source_id.into(),
            source_uri: doc.uri.clone(),
            doc_type: doc.doc_type.as_str().into(),
            title: doc.title.clone(),
            metadata_json: serde_json::json!({ "properties": doc.metadata }).to_string(),
            ingested_at: prior.map_or_else(|| now.clone(), |p| p.ingested_at),
            last_synced: now,
            processing_status: rows::STATUS_OK.into(),
            error_message: None,
            attempts: 0,
            total_chunks: chunk_rows.len() as i32,
            checksum: hasher.finalize().to_hex().to_string(),
            size: size as i64,
            modified: 0,
            source_version: None,
            vector: sync::mean_vector(&vectors, dim),
        };
        writing
            .fenced(async {
                tables
                    .replace_chunks(&chunk_rows, std::slice::from_ref(&id))
                    .await?;
                tables.upsert_docs(std::slice::from_ref(&row)).await
            })
            .await?;
        self.after_write(user_id).await;
        Ok(DocumentInfo::from(row))
    }

    /// Remove one document and its chunks from a user's index. Returns whether it existed.
    /// A document still in its source comes back on the source's next run.
    pub async fn delete_document(&self, user_id: &str, doc_id: &str) -> Result<bool> {
        ids::validate_doc_id(doc_id)?;
        let Some(tables) = self.existing_tables(user_id).await? else {
            return Ok(false);
        };
        let writing = self.writing(&tables).await?;
        let id = [doc_id.to_string()];
        if tables.fetch_docs(&id).await?.is_empty() {
            return Ok(false);
        }
        writing.fenced(tables.delete_docs(&id)).await?;
        self.after_write(user_id).await;
        Ok(true)
    }

    /// Drop a user's tables so they can be rebuilt (with this engine's embedder) by syncing
    /// the sources again. Works whatever embedder built them.
    pub async fn drop_user(&self, user_id: &str) -> Result<()> {
        ids::validate_user_id(user_id)?;
        let db = self.config.storage.database(user_id)?;
        let writing = self.writing_at(&db.state_dir, user_id, true).await?;
        self.forget_user(user_id).await;
        writing
            .fenced(async { Ok(self.config.storage.remove_user(user_id).await?) })
            .await
    }
}
