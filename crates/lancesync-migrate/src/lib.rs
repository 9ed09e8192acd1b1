//! lancesync migration: adopt the original Python system's LanceDB data into lancesync's
//! per-user tables instead of ingesting everything again.
//!
//! The original system kept `processed_documents` and `document_chunks` either in one database
//! per user (`{location}/users/{user_id}`) or in one database whose rows carry `user_id`;
//! versions of it left out columns, stored times as timestamps, and used 1536-d or 384-d
//! vectors. A migration, per user:
//!
//! - matches each document row's `source_uri` with the user's configured sources (listed once),
//!   and compares the original checksum (MD5, SHA-256 or BLAKE3) with the content there: an
//!   unchanged document is *adopted* with its size, modification time and lancesync's
//!   checksum recorded, so the next sync skips it; a changed one is copied for search and
//!   read again by the next sync;
//! - copies the chunks in order, keeping their vectors when the original model is the index's
//!   ([`MigrateOptions::legacy_model`]), else embedding their text again with the configured
//!   embedder (no source is read for that);
//! - keeps documents that are in no configured source under the source
//!   [`lancesync_engine::MIGRATED_SOURCE`] (searchable, never synced), or only reports them;
//! - reports every row it does not adopt, with the reason; collapses the duplicate rows the
//!   original appended on re-ingestion, keeping the newest;
//! - never writes to the original tables, and skips documents already migrated, so running
//!   it again changes nothing. [`MigrateOptions::dry_run`] plans without writing.
//!
//! ```no_run
//! # async fn run(engine: std::sync::Arc<lancesync_engine::Engine>,
//! #              settings: lancesync_config::Settings) -> lancesync_migrate::Result<()> {
//! use lancesync_migrate::{MigrateOptions, Migrator};
//! let migrator = Migrator::new(engine, settings, std::collections::BTreeMap::new());
//! let mut options = MigrateOptions::new("/srv/old-app/lancedb");
//! options.dry_run = true;
//! let report = migrator.run(&options).await?;
//! println!("{}", report.summary());
//! # Ok(()) }
//! ```

mod columns;
mod legacy;
mod matching;
mod report;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use lancesync_engine::rows::{ChunkRow, DocRow, STATUS_OK};
use lancesync_engine::{Engine, MIGRATED_SOURCE, UserTables, ids};
use lancesync_ingest::Embedder;
use lancesync_sources::{DocumentSource, SourceEntry, SourceRegistry};
use lancesync_storage::S3Target;

pub use legacy::Layout;
pub use report::{MigrationReport, NotAdopted, UserMigration};

use legacy::{LegacyChunk, LegacyDoc, LegacyStore, LegacyTables};
use matching::{Content, Found, SourceIndex};

/// Documents per write (and per chunk read from the original tables).
const BATCH_DOCUMENTS: usize = 200;
/// Sources read at once to compare content with the original checksums.
const READS_AT_ONCE: usize = 8;

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

/// Adopts the original system's data into an [`Engine`]'s tables.
pub struct Migrator {
    engine: Arc<Engine>,
    embedder: Arc<dyn Embedder>,
    settings: lancesync_config::Settings,
    env: BTreeMap<String, String>,
}

impl std::fmt::Debug for Migrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migrator").finish_non_exhaustive()
    }
}

/// What becomes of one original document.
enum Plan {
    /// Listed by a configured source.
    Adopt {
        source: Arc<dyn DocumentSource>,
        entry: SourceEntry,
    },
    /// In no configured source: kept under [`MIGRATED_SOURCE`].
    Keep { uri: String },
    /// In a configured source but failed in the original system: the next sync ingests it.
    Sync,
}

struct Planned {
    legacy: LegacyDoc,
    plan: Plan,
    target_id: String,
    content: Content,
}

impl Migrator {
    /// A migrator writing through `engine` and embedding with its embedder, reading
    /// users' sources from `settings`' state folder; `env` expands paths and credentials in
    /// source settings, as for a sync.
    pub fn new(
        engine: Arc<Engine>,
        settings: lancesync_config::Settings,
        env: BTreeMap<String, String>,
    ) -> Self {
        Self {
            embedder: engine.embedder_handle(),
            engine,
            settings,
            env,
        }
    }

    fn registry(&self, user_id: &str) -> SourceRegistry {
        SourceRegistry::at(
            self.settings
                .monitoring
                .state_dir
                .join("users")
                .join(user_id)
                .join("sources.toml"),
        )
    }

    /// Whether vectors of the original model can stay, and why (for the report).
    fn vector_policy(&self, options: &MigrateOptions) -> (bool, String) {
        let ours = self.engine.embedder();
        match &options.legacy_model {
            Some(model)
                if model.eq_ignore_ascii_case(&ours.model)
                    || model.eq_ignore_ascii_case(&format!("{}/{}", ours.name, ours.model)) =>
            {
                (
                    true,
                    format!("kept: {model} made them and is the index's model ({ours})"),
                )
            }
            Some(model) => (
                false,
                format!("embedded again with {ours}: the original vectors are {model}'s"),
            ),
            None => (
                false,
                format!(
                    "embedded again with {ours}: the original model is not known (set LEGACY_EMBEDDING_MODEL or --legacy-model to keep vectors of the index's model)"
                ),
            ),
        }
    }

    /// Migrate (or with `dry_run`, plan) every selected user. A user whose migration fails
    /// is reported with the error; the others go on.
    pub async fn run(&self, options: &MigrateOptions) -> Result<MigrationReport> {
        let (docs_table, chunks_table) = options.tables.clone().unwrap_or_else(|| {
            (
                self.settings.lancedb.documents_table.clone(),
                self.settings.lancedb.chunks_table.clone(),
            )
        });
        let s3 = if options.from.starts_with("s3://") {
            Some(
                S3Target::from_uri(&options.from, &self.settings).ok_or_else(|| {
                    Error::InvalidOptions(format!(
                        "{} is not an s3://bucket/prefix URI",
                        options.from
                    ))
                })?,
            )
        } else {
            None
        };
        let from = if s3.is_none() {
            expand_local(&options.from, &self.env)?
        } else {
            options.from.clone()
        };
        let store =
            LegacyStore::open(&from, &docs_table, &chunks_table, s3, options.layout).await?;
        let (all_users, rows_without_user) = store.users().await?;
        let users = match &options.users {
            Some(users) => {
                for u in users {
                    ids::validate_user_id(u)?;
                }
                users.clone()
            }
            None => all_users,
        };
        let (keep_vectors, vectors) = self.vector_policy(options);
        let mut report = MigrationReport {
            from: store.uri.clone(),
            layout: store.layout,
            dry_run: options.dry_run,
            vectors,
            rows_without_user,
            users: Vec::new(),
        };
        for user in users {
            let mut migration = UserMigration::new(&user, store.database_uri(&user));
            match self
                .migrate_user(&store, &user, options, keep_vectors, &mut migration)
                .await
            {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(user = %user, error = %e, "migration of this user stopped");
                    migration.error = Some(e.to_string());
                }
            }
            tracing::info!(user = %user, summary = %migration.summary(options.dry_run), "migration");
            report.users.push(migration);
        }
        Ok(report)
    }

    async fn migrate_user(
        &self,
        store: &LegacyStore,
        user: &str,
        options: &MigrateOptions,
        keep_vectors: bool,
        report: &mut UserMigration,
    ) -> Result<()> {
        let Some(legacy) = store.user_tables(user).await? else {
            return Err(Error::NoUserData {
                user_id: user.to_string(),
                uri: store.database_uri(user),
            });
        };
        let target = self.engine.storage().database(user)?;
        if same_location(&legacy.uri, &target.uri) {
            return Err(Error::SameLocation { uri: target.uri });
        }
        let (docs, without_id) = legacy.documents().await?;
        report.legacy_documents = docs.len() + without_id;
        if without_id > 0 {
            report.not_adopted.push(NotAdopted::rows(
                without_id,
                "document rows without a doc_id: nothing refers to them",
            ));
        }
        let (docs, duplicates) = newest_by(docs, |d| d.doc_id.clone());
        report.duplicate_rows += duplicates;

        let chunk_doc_ids = legacy.chunk_doc_ids().await?;
        report.legacy_chunks = chunk_doc_ids.len();
        let known: HashSet<&str> = docs.iter().map(|d| d.doc_id.as_str()).collect();
        let mut orphans: BTreeMap<&str, usize> = BTreeMap::new();
        for id in &chunk_doc_ids {
            if !known.contains(id.as_str()) {
                *orphans.entry(id.as_str()).or_default() += 1;
            }
        }
        for (id, chunks) in orphans {
            report.not_adopted.push(NotAdopted {
                legacy_doc_id: Some(id.to_string()),
                source_uri: None,
                rows: 0,
                chunks,
                reason: "chunks whose document row is missing".into(),
            });
        }

        let specs = self.registry(user).list()?;
        let sources = SourceIndex::build(&specs, &self.env).await?;
        let planned = self.plan(user, docs, &sources, options, report);
        let (planned, duplicates) = newest_by(planned, |p| p.1.clone());
        report.duplicate_rows += duplicates;
        let planned = self.skip_migrated(user, planned, report).await?;
        let planned: Vec<_> = planned
            .into_iter()
            .filter(|p| {
                let sync = matches!(p.2, Plan::Sync);
                report.left_to_sync += usize::from(sync);
                !sync
            })
            .collect();
        let planned = compare_contents(planned).await;
        let mut ready = Vec::new();
        for p in planned {
            match p {
                Ok(p) => ready.push(p),
                Err((legacy, e)) => report.not_adopted.push(NotAdopted::doc(
                    &legacy,
                    format!("its source could not be read now ({e}); run the migration again"),
                )),
            }
        }
        // Opened (and created) only when there is something to write.
        let mut tables = None;
        for batch in ready.chunks(BATCH_DOCUMENTS) {
            self.copy_batch(
                user,
                &legacy,
                batch,
                keep_vectors,
                (!options.dry_run).then_some(&mut tables),
                report,
            )
            .await?;
        }
        if let Some(tables) = &tables {
            // Many batches leave many small fragments: compact and index now, as a sync would.
            tables.maintain().await?;
            self.engine.after_write(user).await;
        }
        Ok(())
    }

    /// Decide each document's fate from its row and the sources.
    fn plan(
        &self,
        user: &str,
        docs: Vec<LegacyDoc>,
        sources: &SourceIndex,
        options: &MigrateOptions,
        report: &mut UserMigration,
    ) -> Vec<(LegacyDoc, String, Plan)> {
        let mut out = Vec::new();
        for doc in docs {
            if let Some(owner) = doc
                .user_id
                .as_deref()
                .filter(|o| !o.is_empty() && *o != user)
            {
                let reason = format!("the row belongs to user {owner:?}, not {user:?}");
                report.not_adopted.push(NotAdopted::doc(&doc, reason));
                continue;
            }
            let Some(uri) = doc
                .source_uri
                .clone()
                .filter(|u| !u.trim().is_empty() && u.len() <= 2048)
            else {
                report
                    .not_adopted
                    .push(NotAdopted::doc(&doc, "no usable source_uri".into()));
                continue;
            };
            let failed = !completed(doc.processing_status.as_deref());
            let plan = match sources.find(&uri) {
                Found::Listed(source, entry) if failed => {
                    let target_id = ids::doc_id(user, source.id(), &entry.uri);
                    out.push((doc, target_id, Plan::Sync));
                    continue;
                }
                Found::Listed(source, entry) => Plan::Adopt {
                    source: source.clone(),
                    entry: entry.clone(),
                },
                Found::Gone(source) => {
                    let reason = format!(
                        "no longer in source {:?}: the original kept a deleted document",
                        source.id()
                    );
                    report.not_adopted.push(NotAdopted::doc(&doc, reason));
                    continue;
                }
                Found::Unlisted(source) => {
                    let reason = format!(
                        "source {:?} could not list where it is now; run the migration again",
                        source.id()
                    );
                    report.not_adopted.push(NotAdopted::doc(&doc, reason));
                    continue;
                }
                Found::Elsewhere if failed => {
                    let reason = format!(
                        "processing failed in the original system ({}), and it is in no configured source",
                        doc.processing_status.as_deref().unwrap_or("no status")
                    );
                    report.not_adopted.push(NotAdopted::doc(&doc, reason));
                    continue;
                }
                Found::Elsewhere if !options.keep_unmatched => {
                    report.not_adopted.push(NotAdopted::doc(
                        &doc,
                        "in no configured source, and unmatched documents are not kept (--skip-unmatched)".into(),
                    ));
                    continue;
                }
                Found::Elsewhere => Plan::Keep {
                    uri: matching::normalise(&uri),
                },
            };
            let target_id = match &plan {
                Plan::Adopt { source, entry } => ids::doc_id(user, source.id(), &entry.uri),
                Plan::Keep { uri } => ids::doc_id(user, MIGRATED_SOURCE, uri),
                Plan::Sync => unreachable!("pushed above"),
            };
            out.push((doc, target_id, plan));
        }
        out
    }

    /// Drop documents lancesync already has (migrated before, or synced since).
    async fn skip_migrated(
        &self,
        user: &str,
        planned: Vec<(LegacyDoc, String, Plan)>,
        report: &mut UserMigration,
    ) -> Result<Vec<(LegacyDoc, String, Plan)>> {
        let Some(tables) = self.engine.existing_tables(user).await? else {
            return Ok(planned);
        };
        let ids: Vec<String> = planned.iter().map(|p| p.1.clone()).collect();
        let mut present = HashSet::new();
        for group in ids.chunks(500) {
            for row in tables
                .docs_where_without_vectors(Some(ids::sql_in("doc_id", group)))
                .await?
            {
                present.insert(row.doc_id);
            }
        }
        report.already_migrated += planned.iter().filter(|p| present.contains(&p.1)).count();
        Ok(planned
            .into_iter()
            .filter(|p| !present.contains(&p.1))
            .collect())
    }

    /// Copy one batch of documents' chunks (embedding where needed) and write them.
    async fn copy_batch(
        &self,
        user: &str,
        legacy: &LegacyTables,
        batch: &[Planned],
        keep_vectors: bool,
        tables: Option<&mut Option<UserTables>>,
        report: &mut UserMigration,
    ) -> Result<()> {
        let legacy_ids: Vec<String> = batch.iter().map(|p| p.legacy.doc_id.clone()).collect();
        let mut chunks_by_doc: HashMap<String, Vec<LegacyChunk>> = HashMap::new();
        for chunk in legacy.chunks_of(&legacy_ids).await? {
            chunks_by_doc
                .entry(chunk.doc_id.clone())
                .or_default()
                .push(chunk);
        }
        let dim = self.engine.embedder().dimension;
        let now = lancesync_engine::now_rfc3339();
        let mut doc_rows = Vec::new();
        let mut chunk_rows: Vec<ChunkRow> = Vec::new();
        let mut to_embed: Vec<usize> = Vec::new();
        for p in batch {
            let raw = chunks_by_doc.remove(&p.legacy.doc_id).unwrap_or_default();
            let (chunks, dropped) = usable_chunks(raw, user, keep_vectors, dim);
            let changed = p.content == Content::Changed;
            let adopt = matches!(p.plan, Plan::Adopt { .. });
            if dropped.other_user > 0 {
                report.not_adopted.push(NotAdopted {
                    legacy_doc_id: Some(p.legacy.doc_id.clone()),
                    source_uri: p.legacy.source_uri.clone(),
                    rows: 0,
                    chunks: dropped.other_user,
                    reason: "chunk rows that belong to another user".into(),
                });
            }
            if dropped.without_text > 0 {
                report.not_adopted.push(NotAdopted {
                    legacy_doc_id: Some(p.legacy.doc_id.clone()),
                    source_uri: p.legacy.source_uri.clone(),
                    rows: 0,
                    chunks: dropped.without_text,
                    reason: "chunks without text".into(),
                });
            }
            if chunks.is_empty() || (adopt && changed && chunks.iter().any(|c| c.vector.is_none()))
            {
                // Nothing worth copying, or a changed document whose vectors would be made
                // twice: the next sync reads and embeds it once.
                if adopt {
                    report.left_to_sync += 1;
                } else {
                    report.not_adopted.push(NotAdopted::doc(
                        &p.legacy,
                        "it has no chunk with text".into(),
                    ));
                }
                continue;
            }
            let (source_id, source_type, uri, title_hint, stat) = match &p.plan {
                Plan::Adopt { source, entry } => (
                    source.id().to_string(),
                    source.source_type().to_string(),
                    entry.uri.clone(),
                    entry.display_title().to_string(),
                    Some(entry),
                ),
                Plan::Sync => unreachable!("left to the sync before copying"),
                Plan::Keep { uri } => (
                    MIGRATED_SOURCE.to_string(),
                    MIGRATED_SOURCE.to_string(),
                    uri.clone(),
                    uri.rsplit('/').next().unwrap_or(uri).to_string(),
                    None,
                ),
            };
            let title = p
                .legacy
                .title
                .clone()
                .filter(|t| !t.trim().is_empty())
                .unwrap_or(title_hint);
            let doc_type = doc_type(p.legacy.doc_type.as_deref(), &uri);
            let first = chunk_rows.len();
            for (i, c) in chunks.into_iter().enumerate() {
                let text = c.chunk_text.unwrap_or_default();
                if c.vector.is_none() {
                    to_embed.push(chunk_rows.len());
                }
                chunk_rows.push(ChunkRow {
                    chunk_id: ids::chunk_id(&p.target_id, i as u32),
                    doc_id: p.target_id.clone(),
                    user_id: user.to_string(),
                    source_id: source_id.clone(),
                    source_uri: uri.clone(),
                    title: title.clone(),
                    doc_type: doc_type.clone(),
                    chunk_index: i as i32,
                    checksum: blake3::hash(text.as_bytes()).to_hex().to_string(),
                    chunk_text: text,
                    metadata: json_text(c.metadata.as_deref()),
                    created_at: c.created_at.unwrap_or_else(|| now.clone()),
                    vector: c.vector.unwrap_or_default(),
                });
            }
            let total = chunk_rows.len() - first;
            let (size, modified, version, checksum) = match (stat, &p.content) {
                (Some(entry), Content::Unchanged(sum)) => (
                    entry.size as i64,
                    entry.modified_ms,
                    entry.version.clone(),
                    sum.clone(),
                ),
                // Unknown stat and checksum: the next sync reads it and compares.
                _ => (-1, -1, None, String::new()),
            };
            match (stat, &p.content) {
                (None, _) => report.kept_unmatched += 1,
                (Some(_), Content::Unchanged(_)) => report.adopted += 1,
                (Some(_), Content::Changed) => report.adopted_changed += 1,
            }
            doc_rows.push((
                first,
                total,
                DocRow {
                    doc_id: p.target_id.clone(),
                    user_id: user.to_string(),
                    source_type,
                    source_id,
                    source_uri: uri,
                    doc_type,
                    title,
                    metadata_json: doc_metadata(&p.legacy, &legacy.uri),
                    ingested_at: p.legacy.ingested_at.clone().unwrap_or_else(|| now.clone()),
                    last_synced: now.clone(),
                    processing_status: STATUS_OK.into(),
                    error_message: None,
                    attempts: 0,
                    total_chunks: total as i32,
                    checksum,
                    size,
                    modified,
                    source_version: version,
                    vector: Vec::new(),
                },
            ));
        }
        report.vectors_reembedded += to_embed.len();
        report.vectors_kept += chunk_rows.len() - to_embed.len();
        report.chunks_written += chunk_rows.len();
        let Some(tables) = tables else {
            return Ok(());
        };
        if doc_rows.is_empty() {
            return Ok(());
        }
        let tables = match tables {
            Some(t) => t,
            None => tables.insert(self.engine.tables(user).await?),
        };
        if !to_embed.is_empty() {
            let texts: Vec<String> = to_embed
                .iter()
                .map(|&i| chunk_rows[i].chunk_text.clone())
                .collect();
            let vectors = self.embedder.embed(&texts).await?;
            for (&i, v) in to_embed.iter().zip(vectors) {
                chunk_rows[i].vector = v;
            }
        }
        let docs: Vec<DocRow> = doc_rows
            .into_iter()
            .map(|(first, total, mut row)| {
                let vectors: Vec<Vec<f32>> = chunk_rows[first..first + total]
                    .iter()
                    .map(|c| c.vector.clone())
                    .collect();
                row.vector = lancesync_engine::mean_vector(&vectors, dim);
                row
            })
            .collect();
        let ids: Vec<String> = docs.iter().map(|d| d.doc_id.clone()).collect();
        // Chunks first, the document rows last: a crash in between leaves chunks without a
        // row, which the next migration (or sync) replaces.
        tables.replace_chunks(&chunk_rows, &ids).await?;
        tables.upsert_docs(&docs).await?;
        Ok(())
    }
}

/// Whether a status of the original means the document was indexed (a missing status column
/// means every row was).
fn completed(status: Option<&str>) -> bool {
    match status {
        None => true,
        Some(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "" | "completed" | "complete" | "processed" | "success" | "done" | "indexed"
        ),
    }
}

#[derive(Default)]
struct Dropped {
    without_text: usize,
    other_user: usize,
}

/// A document's chunks in order, one per index (the newest of duplicates), those with text;
/// vectors kept only when allowed and of the index's length.
fn usable_chunks(
    raw: Vec<LegacyChunk>,
    user: &str,
    keep_vectors: bool,
    dim: usize,
) -> (Vec<LegacyChunk>, Dropped) {
    let mut dropped = Dropped::default();
    let mut by_index: BTreeMap<i64, LegacyChunk> = BTreeMap::new();
    let mut position = 0i64;
    for mut c in raw {
        if c.user_id
            .as_deref()
            .is_some_and(|o| !o.is_empty() && o != user)
        {
            dropped.other_user += 1;
            continue;
        }
        if c.chunk_text.as_deref().is_none_or(|t| t.trim().is_empty()) {
            dropped.without_text += 1;
            continue;
        }
        if !keep_vectors
            || c.vector
                .as_ref()
                .is_some_and(|v| v.len() != dim || v.iter().any(|x| !x.is_finite()))
        {
            c.vector = None;
        }
        let index = c.chunk_index.unwrap_or_else(|| {
            position += 1;
            i64::MAX / 2 + position
        });
        match by_index.get(&index) {
            Some(kept) if kept.created_at >= c.created_at => {}
            _ => {
                by_index.insert(index, c);
            }
        }
    }
    (by_index.into_values().collect(), dropped)
}

/// The newest of rows sharing a key (by `last_synced`, then `ingested_at`), and how many
/// were dropped.
fn newest_by<T: Newest>(rows: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, usize) {
    let total = rows.len();
    let mut order = Vec::new();
    let mut best: HashMap<String, T> = HashMap::new();
    for row in rows {
        let k = key(&row);
        match best.get(&k) {
            Some(kept) if kept.age() >= row.age() => {}
            Some(_) => {
                best.insert(k, row);
            }
            None => {
                order.push(k.clone());
                best.insert(k, row);
            }
        }
    }
    let kept: Vec<T> = order.into_iter().filter_map(|k| best.remove(&k)).collect();
    let dropped = total - kept.len();
    (kept, dropped)
}

trait Newest {
    fn age(&self) -> (Option<String>, Option<String>);
}

impl Newest for LegacyDoc {
    fn age(&self) -> (Option<String>, Option<String>) {
        (self.last_synced.clone(), self.ingested_at.clone())
    }
}

impl Newest for (LegacyDoc, String, Plan) {
    fn age(&self) -> (Option<String>, Option<String>) {
        self.0.age()
    }
}

/// Compare each adopted document's content with the original checksum, a few at a time.
async fn compare_contents(
    planned: Vec<(LegacyDoc, String, Plan)>,
) -> Vec<std::result::Result<Planned, (LegacyDoc, Error)>> {
    futures::stream::iter(planned)
        .map(|(legacy, target_id, plan)| async move {
            let content = match &plan {
                Plan::Adopt { source, entry } => {
                    match matching::compare(source, entry, legacy.checksum.as_deref()).await {
                        Ok(c) => c,
                        Err(e) => return Err((legacy, e)),
                    }
                }
                Plan::Keep { .. } | Plan::Sync => Content::Changed,
            };
            Ok(Planned {
                legacy,
                plan,
                target_id,
                content,
            })
        })
        .buffered(READS_AT_ONCE)
        .collect()
        .await
}

/// `doc_type` as lancesync names it: the original's (`pdf`, `.pdf`, `application/pdf`), else
/// the uri's extension.
fn doc_type(original: Option<&str>, uri: &str) -> String {
    let from_original = original
        .map(|t| t.trim().trim_start_matches('.').to_ascii_lowercase())
        .map(|t| t.rsplit('/').next().unwrap_or(&t).to_string())
        .filter(|t| !t.is_empty());
    from_original.unwrap_or_else(|| {
        let name = uri.rsplit('/').next().unwrap_or(uri);
        name.rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .unwrap_or_else(|| "txt".into())
    })
}

/// The original chunk metadata when it is JSON, else the text kept under `original`.
fn json_text(value: Option<&str>) -> String {
    match value {
        None => "{}".into(),
        Some(v) if serde_json::from_str::<serde_json::Value>(v).is_ok() => v.to_string(),
        Some(v) => serde_json::json!({ "original": v }).to_string(),
    }
}

/// The original document metadata plus where it was migrated from.
fn doc_metadata(doc: &LegacyDoc, location: &str) -> String {
    let mut meta = match doc
        .metadata_json
        .as_deref()
        .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
    {
        Some(serde_json::Value::Object(map)) => map,
        Some(other) => serde_json::Map::from_iter([("original".to_string(), other)]),
        None => serde_json::Map::new(),
    };
    meta.insert(
        "migrated_from".into(),
        serde_json::json!({
            "database": location,
            "doc_id": doc.doc_id,
            "checksum": doc.checksum,
        }),
    );
    serde_json::Value::Object(meta).to_string()
}

/// `~` and `${VAR}` expanded, made absolute.
fn expand_local(path: &str, env: &BTreeMap<String, String>) -> Result<String> {
    let expanded = lancesync_config::expand_path(path, env)
        .map_err(|e| Error::InvalidOptions(format!("{path}: {e}")))?;
    let path = PathBuf::from(expanded);
    let path = if path.is_absolute() {
        path
    } else {
        std::env::current_dir()
            .map_err(|e| Error::InvalidOptions(e.to_string()))?
            .join(path)
    };
    Ok(path.to_string_lossy().into_owned())
}

/// Whether two database locations are the same place.
fn same_location(a: &str, b: &str) -> bool {
    let canon = |s: &str| {
        let s = s.trim_end_matches('/');
        if s.contains("://") {
            s.to_string()
        } else {
            std::fs::canonicalize(s)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| s.to_string())
        }
    };
    canon(a) == canon(b)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(
        index: Option<i64>,
        text: &str,
        created: &str,
        vector: Option<Vec<f32>>,
    ) -> LegacyChunk {
        LegacyChunk {
            doc_id: "d".into(),
            user_id: Some("u".into()),
            chunk_index: index,
            chunk_text: Some(text.into()),
            metadata: None,
            created_at: Some(created.into()),
            vector,
        }
    }

    #[test]
    fn chunks_are_ordered_deduplicated_and_vectors_checked() {
        let raw = vec![
            chunk(Some(1), "second", "2024-01-01", Some(vec![1.0, 0.0])),
            chunk(Some(0), "first, old", "2024-01-01", Some(vec![1.0, 0.0])),
            chunk(Some(0), "first, new", "2024-02-01", Some(vec![0.0, 1.0])),
            chunk(Some(2), "   ", "2024-01-01", None),
            chunk(
                Some(3),
                "wrong length",
                "2024-01-01",
                Some(vec![1.0, 0.0, 0.0]),
            ),
            LegacyChunk {
                user_id: Some("someone-else".into()),
                ..chunk(Some(4), "theirs", "2024-01-01", None)
            },
        ];
        let (kept, dropped) = usable_chunks(raw.clone(), "u", true, 2);
        let texts: Vec<_> = kept.iter().map(|c| c.chunk_text.clone().unwrap()).collect();
        assert_eq!(texts, ["first, new", "second", "wrong length"]);
        assert_eq!(kept[0].vector, Some(vec![0.0, 1.0]));
        assert_eq!(
            kept[2].vector, None,
            "a vector of another length is re-embedded"
        );
        assert_eq!((dropped.without_text, dropped.other_user), (1, 1));
        let (kept, _) = usable_chunks(raw, "u", false, 2);
        assert!(kept.iter().all(|c| c.vector.is_none()));
    }

    #[test]
    fn types_statuses_and_metadata() {
        assert_eq!(doc_type(Some("application/pdf"), "x"), "pdf");
        assert_eq!(doc_type(Some(".DOCX"), "x"), "docx");
        assert_eq!(doc_type(None, "/a/b/notes.MD"), "md");
        assert_eq!(doc_type(Some(""), "/a/b/README"), "txt");
        assert!(completed(None) && completed(Some("completed")) && completed(Some("Processed")));
        assert!(!completed(Some("failed")) && !completed(Some("processing")));
        assert_eq!(json_text(Some("{\"page\":2}")), "{\"page\":2}");
        assert_eq!(json_text(Some("page 2")), "{\"original\":\"page 2\"}");
        let doc = LegacyDoc {
            doc_id: "old-1".into(),
            metadata_json: Some("{\"author\":\"Ann\"}".into()),
            ..Default::default()
        };
        let meta: serde_json::Value = serde_json::from_str(&doc_metadata(&doc, "/old")).unwrap();
        assert_eq!(meta["author"], "Ann");
        assert_eq!(meta["migrated_from"]["doc_id"], "old-1");
    }

    #[test]
    fn newest_row_wins() {
        let row = |id: &str, synced: &str, title: &str| LegacyDoc {
            doc_id: id.into(),
            last_synced: Some(synced.into()),
            title: Some(title.into()),
            ..Default::default()
        };
        let (kept, dropped) = newest_by(
            vec![
                row("a", "2024-01-01", "old"),
                row("b", "2024-01-01", "b"),
                row("a", "2024-03-01", "new"),
                row("a", "2024-02-01", "middle"),
            ],
            |d| d.doc_id.clone(),
        );
        assert_eq!(dropped, 2);
        let titles: Vec<_> = kept.iter().map(|d| d.title.clone().unwrap()).collect();
        assert_eq!(titles, ["new", "b"]);
    }
}
