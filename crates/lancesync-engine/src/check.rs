//! Verifying a user's index against its sources and against itself, and repairing what can be
//! repaired with the engine's own safe writes ([`Engine::check`]).
//!
//! Against each source: documents listed but not indexed, indexed but gone, changed (size,
//! modification time or version) but not re-indexed, and with `deep`, content that differs
//! under an unchanged size and time. Within the tables: document rows whose chunk count differs
//! from their chunk rows, chunks without a document row, duplicate chunk ids, (with `deep`)
//! vectors with NaN or infinite values, indexes missing or behind, a change cursor with no documents behind it,
//! and a stored embedder or chunk settings that are not the configured ones.
//!
//! Repair removes chunks without a document, marks damaged documents as changed and deletes
//! their chunks (so a run re-indexes them from the source, replacing their chunks whole), runs
//! each source (which indexes what is missing or stale and deletes what is gone, behind the
//! mass-delete guard), and runs maintenance. Then it checks again and reports what remains.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use arrow_array::{Array, FixedSizeListArray, Float32Array, RecordBatch};
use futures::{StreamExt, TryStreamExt};
use lancedb::Table;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancesync_sources::{ChangeKind, DocumentSource};
use serde::{Deserialize, Serialize};

use crate::ids::sql_in;
use crate::rows::{Columns, STATUS_FAILED, STATUS_OK};
use crate::tables::UserTables;
use crate::{Engine, Error, NoProgress, Result, SyncOptions, SyncReport};

/// Examples kept per problem.
const EXAMPLES: usize = 5;

/// What to check and whether to repair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// Also read every document whose size and modification time are unchanged and compare
    /// its content hash with the stored one, and read every vector for NaN and infinite
    /// values.
    pub deep: bool,
    /// Repair what can be repaired, then check again.
    pub repair: bool,
    /// Let the repair's runs apply deletions past the mass-delete guard.
    pub allow_mass_delete: bool,
}

/// A kind of disagreement between the index and its sources, or within the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Listed by the source, not indexed (and not a recorded failure).
    NotIndexed,
    /// Indexed, no longer listed by the source.
    GoneFromSource,
    /// Size, modification time or version changed since it was indexed.
    Stale,
    /// Content differs from what was indexed under the same size and time (`deep` only).
    ContentChanged,
    /// Listed, but could not be read to compare its content (`deep` only).
    Unreadable,
    /// A document row's `total_chunks` differs from its chunk rows.
    ChunkCountMismatch,
    /// Chunk rows whose document row does not exist.
    OrphanChunks,
    /// A chunk id on more than one row.
    DuplicateChunks,
    /// Vectors holding NaN or infinite values (`deep` only).
    BadVectors,
    /// The tables' embedder is not the configured one.
    EmbedderMismatch,
    /// The chunks were made with other chunk settings than the configured ones.
    ChunkingChanged,
    /// An index maintenance keeps is missing.
    IndexMissing,
    /// Rows waiting to be folded into the indexes, past maintenance's threshold.
    IndexBehind,
    /// A stored change cursor for a source with no documents.
    CursorWithoutDocuments,
    /// Local changes not yet copied to S3 (the local-primary modes with S3).
    BackupBehind,
    /// The copy to S3 is withheld: S3 and this device both moved on (multi-device sync).
    BackupConflict,
    /// A re-index was interrupted: its new tables wait beside the live ones.
    ReindexUnfinished,
}

impl ProblemKind {
    /// What it means, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Self::NotIndexed => "in the source but not indexed",
            Self::GoneFromSource => "indexed but gone from the source",
            Self::Stale => "changed in the source but not re-indexed",
            Self::ContentChanged => "content changed under the same size and time",
            Self::Unreadable => "listed but unreadable, so not compared",
            Self::ChunkCountMismatch => "documents whose chunk count differs from their chunks",
            Self::OrphanChunks => "chunks without a document",
            Self::DuplicateChunks => "duplicate chunk ids",
            Self::BadVectors => "vectors with NaN or infinite values",
            Self::EmbedderMismatch => "tables of another embedder",
            Self::ChunkingChanged => "chunks made with other chunk settings",
            Self::IndexMissing => "indexes missing",
            Self::IndexBehind => "rows not yet in the indexes",
            Self::CursorWithoutDocuments => "a change cursor with no documents behind it",
            Self::BackupBehind => "changes not yet copied to S3",
            Self::BackupConflict => "the copy to S3 withheld by a conflict",
            Self::ReindexUnfinished => "a re-index interrupted before it finished",
        }
    }
}

/// One kind of problem, with how many and some examples (uris, ids or index names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// What.
    pub kind: ProblemKind,
    /// The source, for problems of one source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// How many documents, chunks, rows or indexes.
    pub count: usize,
    /// Up to five of them.
    pub examples: Vec<String>,
}

/// What a repair did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Repair {
    /// Documents whose chunks were removed for having no document row.
    pub orphans_removed: usize,
    /// Damaged documents marked for re-indexing (their chunks deleted).
    pub documents_reindexed: usize,
    /// The runs of the sources, as each reported.
    pub runs: Vec<SyncReport>,
    /// Indexes built by maintenance.
    pub indexes_built: Vec<String>,
    /// What the repair could not do, and why.
    pub not_repaired: Vec<String>,
}

/// What a check found (and, with `repair`, did and left).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    /// The user.
    pub user_id: String,
    /// The sources compared with the index.
    pub sources: Vec<String>,
    /// Whether content was compared (`deep`).
    pub deep: bool,
    /// The problems found.
    pub problems: Vec<Problem>,
    /// What the repair did, when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair: Option<Repair>,
    /// The problems a check after the repair still found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<Vec<Problem>>,
    /// Wall time.
    pub duration_ms: u64,
}

impl CheckReport {
    /// Whether the index is consistent: nothing found, or everything found repaired.
    pub fn consistent(&self) -> bool {
        match &self.remaining {
            Some(remaining) => remaining.is_empty(),
            None => self.problems.is_empty(),
        }
    }
}

/// Collects one problem kind's count and examples.
#[derive(Default)]
struct Found {
    problems: Vec<Problem>,
}

impl Found {
    fn add(&mut self, kind: ProblemKind, source_id: Option<&str>, items: &[String]) {
        if items.is_empty() {
            return;
        }
        let mut examples: Vec<String> = items.iter().take(EXAMPLES).cloned().collect();
        examples.sort();
        self.problems.push(Problem {
            kind,
            source_id: source_id.map(String::from),
            count: items.len(),
            examples,
        });
    }
}

/// What the checks found, with what the repair needs beyond the report.
#[derive(Default)]
struct Findings {
    found: Found,
    /// Doc ids of chunks without a document row.
    orphan_docs: Vec<String>,
    /// Doc ids whose chunks are damaged (count, duplicates, vectors) or whose content changed.
    damaged_docs: HashSet<String>,
    /// Sources whose stored cursor has no documents behind it.
    stale_cursors: Vec<String>,
    /// The chunk settings changed: no run may write until a re-index.
    chunking_changed: bool,
    /// Local changes wait to be copied to S3.
    backup_behind: bool,
    /// A re-index was interrupted.
    reindex_unfinished: bool,
}

/// Read `columns` of every row of `table` a batch at a time.
async fn scan(
    table: &Table,
    columns: &[&str],
    mut each: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<()> {
    let mut stream = table
        .query()
        .select(Select::columns(columns))
        .execute()
        .await?;
    while let Some(batch) = stream.try_next().await? {
        each(&batch)?;
    }
    Ok(())
}

/// Rows of `batch`'s vector column holding a NaN or an infinite value (none when the vectors
/// were not `read`).
fn bad_vector_rows(batch: &RecordBatch, read: bool) -> Result<Vec<usize>> {
    if !read {
        return Ok(Vec::new());
    }
    let vectors = batch
        .column_by_name("vector")
        .and_then(|c| c.as_any().downcast_ref::<FixedSizeListArray>())
        .ok_or_else(|| Error::Internal("vector column is not a fixed-size list".into()))?;
    let dim = vectors.value_length() as usize;
    let values = vectors
        .values()
        .as_any()
        .downcast_ref::<Float32Array>()
        .ok_or_else(|| Error::Internal("vector values are not float32".into()))?;
    let offset = vectors.offset();
    Ok((0..vectors.len())
        .filter(|&row| {
            let start = (offset + row) * dim;
            values.values()[start..start + dim]
                .iter()
                .any(|x| !x.is_finite())
        })
        .collect())
}

/// The 128-bit hash of an id: a set of these finds duplicates among millions of chunk ids in
/// a sixth of the memory of the ids themselves.
fn id_hash(id: &str) -> u128 {
    let hash = blake3::hash(id.as_bytes());
    u128::from_le_bytes(hash.as_bytes()[..16].try_into().expect("16 bytes"))
}

/// The checks within the tables: chunk counts, orphans, duplicates, indexes, and with
/// `vectors`, every vector (most of what a check could read: 1.5 kB a row at 384 dimensions).
async fn check_tables(tables: &UserTables, vectors: bool, findings: &mut Findings) -> Result<()> {
    let with_vector = |columns: &[&'static str]| {
        let mut columns = columns.to_vec();
        if vectors {
            columns.push("vector");
        }
        columns
    };
    // Documents: their chunk counts and whether their vectors are sound.
    let mut expected: HashMap<String, (i32, String)> = HashMap::new();
    let mut bad_vectors = Vec::new();
    scan(
        &tables.docs,
        &with_vector(&["doc_id", "source_uri", "processing_status", "total_chunks"]),
        |b| {
            let c = Columns(b);
            let (ids, uris, status, totals) = (
                c.str("doc_id")?,
                c.str("source_uri")?,
                c.str("processing_status")?,
                c.i32("total_chunks")?,
            );
            for row in bad_vector_rows(b, vectors)? {
                bad_vectors.push(uris.value(row).to_string());
                findings.damaged_docs.insert(ids.value(row).to_string());
            }
            for i in 0..b.num_rows() {
                // A failed update keeps its last good chunks, so only completed documents
                // promise a count.
                let total = if status.value(i) == STATUS_OK {
                    totals.value(i)
                } else {
                    -1
                };
                expected.insert(ids.value(i).to_string(), (total, uris.value(i).to_string()));
            }
            Ok(())
        },
    )
    .await?;

    tracing::debug!(documents = expected.len(), "read the documents");
    // Chunks: counted per document, ids checked for duplicates, vectors checked.
    let mut counted: HashMap<String, i32> = HashMap::new();
    let mut seen: HashSet<u128> = HashSet::new();
    let mut duplicates = Vec::new();
    let mut orphan_chunks = Vec::new();
    let mut orphan_docs = std::collections::BTreeSet::new();
    scan(&tables.chunks, &with_vector(&["chunk_id", "doc_id"]), |b| {
        let c = Columns(b);
        let (chunk_ids, doc_ids) = (c.str("chunk_id")?, c.str("doc_id")?);
        for row in bad_vector_rows(b, vectors)? {
            bad_vectors.push(chunk_ids.value(row).to_string());
            findings.damaged_docs.insert(doc_ids.value(row).to_string());
        }
        for i in 0..b.num_rows() {
            let doc_id = doc_ids.value(i);
            if !seen.insert(id_hash(chunk_ids.value(i))) {
                duplicates.push(chunk_ids.value(i).to_string());
                findings.damaged_docs.insert(doc_id.to_string());
            }
            if !expected.contains_key(doc_id) {
                orphan_chunks.push(chunk_ids.value(i).to_string());
                orphan_docs.insert(doc_id.to_string());
                continue;
            }
            *counted.entry(doc_id.to_string()).or_default() += 1;
        }
        Ok(())
    })
    .await?;

    tracing::debug!(chunks = seen.len(), "read the chunks");
    let mut mismatched = Vec::new();
    for (doc_id, (total, uri)) in &expected {
        let have = counted.get(doc_id).copied().unwrap_or(0);
        if *total >= 0 && have != *total {
            mismatched.push(format!("{uri} ({have} chunks, row says {total})"));
            findings.damaged_docs.insert(doc_id.clone());
        }
    }
    mismatched.sort();
    let found = &mut findings.found;
    found.add(ProblemKind::ChunkCountMismatch, None, &mismatched);
    found.add(ProblemKind::OrphanChunks, None, &orphan_chunks);
    found.add(ProblemKind::DuplicateChunks, None, &duplicates);
    found.add(ProblemKind::BadVectors, None, &bad_vectors);

    let health = tables.index_health().await?;
    found.add(ProblemKind::IndexMissing, None, &health.missing);
    if health.behind() {
        findings.found.problems.push(Problem {
            kind: ProblemKind::IndexBehind,
            source_id: None,
            count: health.unindexed_rows,
            examples: vec![format!(
                "{} rows unindexed (maintenance folds from {})",
                health.unindexed_rows, health.fold_threshold
            )],
        });
    }
    findings.orphan_docs = orphan_docs.into_iter().collect();
    Ok(())
}

/// What is wrong within `tables` (vectors read too), apart from rows waiting to be folded
/// into the indexes: the check a re-index's new tables pass before the switch.
pub(crate) async fn table_problems(tables: &UserTables) -> Result<Vec<Problem>> {
    let mut findings = Findings::default();
    check_tables(tables, true, &mut findings).await?;
    Ok(findings
        .found
        .problems
        .into_iter()
        .filter(|p| p.kind != ProblemKind::IndexBehind)
        .collect())
}

/// The checks of one source against its stored documents.
async fn check_source(
    tables: &UserTables,
    source: &dyn DocumentSource,
    deep: bool,
    concurrency: usize,
    findings: &mut Findings,
) -> Result<()> {
    let source_id = source.id();
    let stored = tables.source_docs(source_id).await?;
    let cursor = tables.cursor(source_id).await?;
    if cursor.is_some() && stored.is_empty() {
        findings.stale_cursors.push(source_id.to_string());
        findings.found.add(
            ProblemKind::CursorWithoutDocuments,
            Some(source_id),
            &[source_id.to_string()],
        );
    }
    // Always the complete listing: a delta since the cursor would only show what the next
    // run would see anyway.
    let listing = match source.changes(None).await?.kind {
        ChangeKind::Full(listing) => listing,
        ChangeKind::Delta { .. } => {
            return Err(Error::Internal(format!(
                "source {source_id} answered a full listing with a delta"
            )));
        }
    };
    let mut by_uri: HashMap<&str, _> = stored
        .positions()
        .map(|p| (stored.source_uri(p), p))
        .collect();
    let (mut missing, mut stale, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    let mut to_hash = Vec::new();
    for entry in &listing.entries {
        let Some(pos) = by_uri.remove(entry.uri.as_str()) else {
            missing.push(entry.uri.clone());
            continue;
        };
        let status = stored.status(pos);
        if status == STATUS_FAILED {
            // A recorded failure: `sync-cli failed` lists it, its retry is planned.
            continue;
        }
        let same_stat = stored.stat(pos) == (entry.size as i64, entry.modified_ms)
            && entry
                .version
                .as_deref()
                .is_none_or(|v| stored.version(pos) == Some(v));
        if !same_stat {
            stale.push(entry.uri.clone());
        } else if deep && status == STATUS_OK {
            // Owned: a future borrowing the listing would not be `Send` for every lifetime,
            // which the API's handlers need.
            to_hash.push((entry.clone(), stored.state(pos)));
        }
    }
    // Read and hashed a few at a time, as a run reads.
    let mut hashed = futures::stream::iter(to_hash.into_iter().map(|(entry, state)| async move {
        let checksum = match &entry.content_hash {
            Some(hash) => Ok(hash.clone()),
            None => source
                .read(&entry)
                .await
                .map(|bytes| blake3::hash(&bytes).to_hex().to_string()),
        };
        (entry, state, checksum)
    }))
    .buffer_unordered(concurrency.max(1));
    let mut unreadable = Vec::new();
    while let Some((entry, state, checksum)) = hashed.next().await {
        match checksum {
            Ok(checksum) if checksum != state.checksum => {
                changed.push(entry.uri.clone());
                findings.damaged_docs.insert(state.doc_id);
            }
            Ok(_) => {}
            // One file that cannot be read does not stop the check: it is reported.
            Err(e) => unreadable.push(format!("{}: {e}", entry.uri)),
        }
    }
    // What is left is not listed: gone, unless under a folder the listing could not see.
    let mut gone: Vec<String> = by_uri
        .into_keys()
        .filter(|uri| {
            !listing
                .unlisted
                .iter()
                .any(|u| lancesync_sources::under(uri, u))
        })
        .map(String::from)
        .collect();
    gone.sort();
    missing.sort();
    stale.sort();
    changed.sort();
    let found = &mut findings.found;
    found.add(ProblemKind::NotIndexed, Some(source_id), &missing);
    found.add(ProblemKind::GoneFromSource, Some(source_id), &gone);
    found.add(ProblemKind::Stale, Some(source_id), &stale);
    found.add(ProblemKind::ContentChanged, Some(source_id), &changed);
    unreadable.sort();
    found.add(ProblemKind::Unreadable, Some(source_id), &unreadable);
    Ok(())
}

impl Engine {
    /// Check `user_id`'s index against `sources` and against itself; with
    /// [`CheckOptions::repair`], repair it and check again.
    pub async fn check(
        &self,
        user_id: &str,
        sources: &[&dyn DocumentSource],
        options: CheckOptions,
    ) -> Result<CheckReport> {
        let started = Instant::now();
        crate::ids::validate_user_id(user_id)?;
        let mut report = CheckReport {
            user_id: user_id.to_string(),
            sources: sources.iter().map(|s| s.id().to_string()).collect(),
            deep: options.deep,
            problems: Vec::new(),
            repair: None,
            remaining: None,
            duration_ms: 0,
        };
        let tables = match self.existing_tables(user_id).await {
            Ok(tables) => tables,
            Err(Error::EmbedderMismatch {
                stored, configured, ..
            }) => {
                report.problems.push(Problem {
                    kind: ProblemKind::EmbedderMismatch,
                    source_id: None,
                    count: 1,
                    examples: vec![format!("stored {stored}, configured {configured}")],
                });
                if options.repair {
                    report.repair = Some(Repair {
                        not_repaired: vec![
                            "the tables hold another embedder's vectors: `sync-cli reindex` rebuilds them with the configured one".into(),
                        ],
                        ..Repair::default()
                    });
                    report.remaining = Some(report.problems.clone());
                }
                report.duration_ms = started.elapsed().as_millis() as u64;
                return Ok(report);
            }
            Err(e) => return Err(e),
        };
        let findings = self
            .findings(tables.as_ref(), sources, options.deep)
            .await?;
        report.problems = findings.found.problems.clone();
        if options.repair && !report.problems.is_empty() {
            let repair = self.repair(user_id, sources, options, findings).await?;
            let after = self
                .findings(
                    self.existing_tables(user_id).await?.as_ref(),
                    sources,
                    options.deep,
                )
                .await?;
            report.repair = Some(repair);
            report.remaining = Some(after.found.problems);
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        tracing::info!(user = %user_id, problems = report.problems.len(), consistent = report.consistent(), ms = report.duration_ms, "check finished");
        Ok(report)
    }

    async fn findings(
        &self,
        tables: Option<&UserTables>,
        sources: &[&dyn DocumentSource],
        deep: bool,
    ) -> Result<Findings> {
        let mut findings = Findings::default();
        let Some(tables) = tables else {
            // No index yet: everything every source lists is missing.
            for source in sources {
                let listing = source.list().await?;
                let mut uris: Vec<String> = listing.entries.into_iter().map(|e| e.uri).collect();
                uris.sort();
                findings
                    .found
                    .add(ProblemKind::NotIndexed, Some(source.id()), &uris);
            }
            return Ok(findings);
        };
        if let Some(stored) = tables.stored_chunking().await?
            && stored != self.config.chunking
        {
            let configured = self.config.chunking;
            findings.found.add(
                ProblemKind::ChunkingChanged,
                None,
                &[format!(
                    "stored CHUNK_CHARACTERS={} CHUNK_OVERLAP={}, configured {} and {}",
                    stored.size, stored.overlap, configured.size, configured.overlap
                )],
            );
            findings.chunking_changed = true;
        }
        // New tables of a re-index, and no re-index running (it would hold the writes lock).
        if tables.has_shadow().await?
            && crate::reindex::write_guard(&tables.state_dir, &tables.user_id).is_ok()
        {
            let at = if tables.serves_shadow().await? {
                "interrupted after its switch: searches read its new tables"
            } else {
                "interrupted while building its new tables"
            };
            findings
                .found
                .add(ProblemKind::ReindexUnfinished, None, &[at.to_string()]);
            findings.reindex_unfinished = true;
        }
        let step = Instant::now();
        self.check_backup(&tables.user_id, &mut findings)?;
        check_tables(tables, deep, &mut findings).await?;
        tracing::debug!(ms = step.elapsed().as_millis() as u64, "checked the tables");
        for source in sources {
            let step = Instant::now();
            check_source(
                tables,
                *source,
                deep,
                self.config.max_concurrency,
                &mut findings,
            )
            .await?;
            tracing::debug!(
                source = source.id(),
                ms = step.elapsed().as_millis() as u64,
                "checked the source"
            );
        }
        findings
            .found
            .problems
            .sort_by(|a, b| (a.kind, &a.source_id).cmp(&(b.kind, &b.source_id)));
        Ok(findings)
    }

    /// In the local-primary modes with S3: whether changes wait to be copied, or the copy is
    /// withheld by a conflict.
    fn check_backup(&self, user_id: &str, findings: &mut Findings) -> Result<()> {
        use lancesync_storage::StorageMode;
        let storage = &self.config.storage;
        if !matches!(
            storage.mode(),
            StorageMode::LocalPrimaryS3Backup | StorageMode::LocalPrimaryS3Sync
        ) {
            return Ok(());
        }
        let state = storage.user_state(user_id)?;
        if let Some(conflict) = &state.conflict {
            findings.found.add(
                ProblemKind::BackupConflict,
                None,
                std::slice::from_ref(conflict),
            );
        } else if let Some(since) = &state.pending_since {
            let why = state
                .last_error
                .as_deref()
                .map(|e| format!("; the last copy failed: {e}"))
                .unwrap_or_default();
            findings.found.add(
                ProblemKind::BackupBehind,
                None,
                &[format!("changes since {since} wait to be copied{why}")],
            );
            findings.backup_behind = true;
        }
        Ok(())
    }

    async fn repair(
        &self,
        user_id: &str,
        sources: &[&dyn DocumentSource],
        options: CheckOptions,
        findings: Findings,
    ) -> Result<Repair> {
        let mut repair = Repair::default();
        if findings.reindex_unfinished {
            repair.not_repaired.push(
                "a re-index was interrupted: `sync-cli reindex` (or POST /api/v1/reindex) finishes it, resuming where it stopped".into(),
            );
        }
        if findings.chunking_changed {
            repair.not_repaired.push(
                "the chunks were made with other chunk settings: `sync-cli reindex` chunks everything again (or configure the stored settings again); nothing else was repaired, since repairs write chunks".into(),
            );
            return Ok(repair);
        }
        let tables = self.tables(user_id).await?;
        let writing = self.writing(&tables).await?;
        // What the runs below do not write themselves, stopped if the user is lost.
        writing
            .fenced(async {
                // Chunks nobody points to go first: a run would otherwise never see them.
                if !findings.orphan_docs.is_empty() {
                    tables.delete_docs(&findings.orphan_docs).await?;
                    repair.orphans_removed = findings.orphan_docs.len();
                }
                // Damaged documents of the checked sources are marked changed (size -1, which no file
                // has, and no checksum, so the content does not pass for unchanged) before their
                // chunks go: whatever happens next, the next run re-reads them and writes their
                // chunks whole.
                let checked: HashSet<&str> = sources.iter().map(|s| s.id()).collect();
                let damaged: Vec<String> = findings.damaged_docs.into_iter().collect();
                let mut reindex = Vec::new();
                for doc in tables.fetch_docs(&damaged).await? {
                    if checked.contains(doc.source_id.as_str()) {
                        reindex.push(doc.doc_id);
                    } else {
                        repair.not_repaired.push(format!(
                    "{}: its source {} was not checked; check it with its source to repair it",
                    doc.source_uri, doc.source_id
                ));
                    }
                }
                if !reindex.is_empty() {
                    for slice in reindex.chunks(500) {
                        tables
                            .docs
                            .update()
                            .only_if(sql_in("doc_id", slice))
                            .column("size", "-1")
                            .column("checksum", "''")
                            .execute()
                            .await?;
                        tables.chunks.delete(&sql_in("doc_id", slice)).await?;
                    }
                    repair.documents_reindexed = reindex.len();
                }
                // A cursor with nothing behind it would make the next delta skip what it covers.
                for source_id in &findings.stale_cursors {
                    tables.clear_cursor(source_id).await?;
                }
                Ok(())
            })
            .await?;
        // The runs index what is missing or stale and delete what is gone.
        let sync = SyncOptions {
            allow_mass_delete: options.allow_mass_delete,
            ..SyncOptions::default()
        };
        for source in sources {
            let run = self.sync(user_id, *source, sync, &NoProgress).await?;
            if let Some(blocked) = &run.mass_delete_blocked {
                repair.not_repaired.push(format!(
                    "source {}: {} deletions withheld by the mass-delete guard; --allow-mass-delete applies them",
                    source.id(),
                    blocked.would_delete
                ));
            }
            for failure in &run.failures {
                repair.not_repaired.push(format!(
                    "{}: could not be indexed: {}",
                    failure.uri, failure.reason
                ));
            }
            repair.runs.push(run);
        }
        // Indexes: looked for afresh (one may have been dropped behind this process's back).
        tables.forget_indexes();
        repair.indexes_built = tables.maintain().await?.created_indexes;
        // What the repair wrote is copied like any write; a copy that was already behind is
        // tried now, whatever its backoff.
        let after = self.after_write(user_id).await;
        let still_behind = self
            .config
            .storage
            .user_state(user_id)
            .is_ok_and(|s| s.pending_since.is_some() && s.conflict.is_none());
        if findings.backup_behind && still_behind {
            if let Err(e) = self.backup(user_id).await {
                repair
                    .not_repaired
                    .push(format!("the copy to S3 failed again: {e}"));
            }
        } else if let Some(lancesync_storage::AfterWrite::Conflict { message }) = after {
            repair.not_repaired.push(message);
        }
        Ok(repair)
    }
}
