//! One sync run of one source into one user's tables.
//!
//! State comes from the tables; the listing decides what to look at; only documents whose size
//! or modification time changed are read; processing is bounded in concurrency; writes go in
//! batches (chunks first, document rows last); deletions come last, only for documents a
//! complete listing no longer has, and only past the mass-delete guard.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use lancesync_ingest::{Chunk, Chunker, DocType, Embedder, Extracted, extract_with};
use lancesync_sources::{
    ChangeKind, Changes, DocumentSource, Listing, ListingIssue, SourceEntry, under,
};
use serde::{Deserialize, Serialize};

use crate::fallback::STATUS_LEGACY;
use crate::ids::{chunk_id, doc_id, validate_source_id};
use crate::lock::FileLock;
use crate::rows::{ChunkRow, DocRow, STATUS_FAILED, STATUS_OK};
use crate::store::{DocPos, DocState, Maintenance, UserTables};
use crate::{EngineConfig, Error, Result};

/// Chunks embedded per call while indexing one document: the granularity at which a document
/// over its deadline stops.
const EMBED_BATCH: usize = 256;

/// The recorded reason of a document that ran out of its time budget during `step`.
fn out_of_time(budget: Duration, step: &str) -> String {
    format!(
        "timed out: {step} took over {} s (DOCUMENT_TIMEOUT); raise DOCUMENT_TIMEOUT or exclude the file",
        budget.as_secs_f64()
    )
}

/// Options of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOptions {
    /// Apply deletions even past the mass-delete guard.
    pub allow_mass_delete: bool,
    /// Retry every failed document now, whatever its attempts and backoff.
    pub retry_failed: bool,
}

/// Told about progress; the CLI draws a bar with it.
pub trait Progress: Send + Sync {
    /// `total` documents will be looked at (read) in this run.
    fn start(&self, _total: usize) {}
    /// One document is done.
    fn advance(&self, _uri: &str) {}
}

/// No progress reporting.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// A document that could not be processed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The document.
    pub uri: String,
    /// Why.
    pub reason: String,
}

/// Deletions withheld by the mass-delete guard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MassDeleteBlocked {
    /// Documents the run would have deleted.
    pub would_delete: usize,
    /// Documents of the source before the run.
    pub documents: usize,
    /// The configured largest share.
    pub max_share: f64,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncReport {
    /// User.
    pub user_id: String,
    /// Source.
    pub source_id: String,
    /// New documents indexed.
    pub created: usize,
    /// Changed documents re-indexed.
    pub updated: usize,
    /// Renamed or moved documents (no re-extraction, no re-embedding).
    pub moved: usize,
    /// Modification time changed, content the same (metadata only).
    pub touched: usize,
    /// Documents removed from the index.
    pub deleted: usize,
    /// Documents not read: size and modification time unchanged.
    pub unchanged: usize,
    /// Documents that failed in this run.
    pub failed: usize,
    /// Documents lancesync could not take that the legacy fallback took
    /// (`LEGACY_FALLBACK_URL`).
    #[serde(default)]
    pub legacy: usize,
    /// Earlier failures not retried yet (backoff, or out of retries).
    pub waiting_retry: usize,
    /// The failures of this run.
    pub failures: Vec<Failure>,
    /// What the listing could not look at.
    pub issues: Vec<ListingIssue>,
    /// Deletions withheld by the mass-delete guard.
    pub mass_delete_blocked: Option<MassDeleteBlocked>,
    /// Chunk rows written.
    pub chunks_written: usize,
    /// Bytes of documents read.
    pub bytes_read: u64,
    /// Orphan chunks removed after an interrupted earlier run (documents).
    pub repaired: usize,
    /// Maintenance done at the end.
    pub maintenance: Maintenance,
    /// When the run finished (RFC 3339).
    pub finished_at: String,
    /// Wall time.
    pub duration_ms: u64,
    /// Documents read per second.
    pub docs_per_sec: f64,
    /// MB read per second.
    pub mb_per_sec: f64,
    /// What the storage mode did after the run (S3 copy, cache refresh); absent when
    /// there is nothing to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<lancesync_storage::AfterWrite>,
}

/// A document to read. Every job of a run is planned before the first is read (moves and
/// deletions need the whole listing), so a job is kept small: the prior state is boxed, which
/// keeps a 100,000-document first sync's plan at 7 MB instead of 25 MB.
struct Job {
    entry: SourceEntry,
    prior: Option<Box<DocState>>,
}

enum Outcome {
    Indexed {
        doc: Box<DocRow>,
        chunks: Vec<ChunkRow>,
        prior: Option<DocState>,
        bytes: u64,
    },
    Touched {
        prior: DocState,
        entry: SourceEntry,
        bytes: u64,
    },
    Moved {
        from: DocState,
        entry: SourceEntry,
        bytes: u64,
    },
    Failed {
        entry: SourceEntry,
        prior: Option<DocState>,
        reason: String,
        checksum: String,
        bytes: u64,
    },
    /// lancesync could not take it (`reason`); the legacy fallback did.
    Legacy {
        entry: SourceEntry,
        prior: Option<DocState>,
        reason: String,
        checksum: String,
        bytes: u64,
        status: u16,
    },
}

impl Outcome {
    fn uri(&self) -> &str {
        match self {
            Outcome::Indexed { doc, .. } => &doc.source_uri,
            Outcome::Touched { entry, .. }
            | Outcome::Moved { entry, .. }
            | Outcome::Failed { entry, .. }
            | Outcome::Legacy { entry, .. } => &entry.uri,
        }
    }
}

/// Which stored documents that a run's changes do not mention are gone.
enum Gone {
    /// A complete listing: all of them, but for those under these uri prefixes (folders the
    /// listing could not see).
    Unlisted(Vec<String>),
    /// A delta: only those at or under these uris.
    Only(Vec<String>),
}

/// What processing needs, shared by the concurrent workers.
pub(crate) struct Run<'a> {
    pub config: &'a EngineConfig,
    pub embedder: &'a dyn Embedder,
    pub chunker: &'a Arc<Chunker>,
    pub tables: &'a UserTables,
    pub source: &'a dyn DocumentSource,
    /// Documents missing from the listing, by checksum: a new file with the same content is
    /// a move of one of them.
    move_candidates: Mutex<HashMap<String, Vec<DocState>>>,
}

pub(crate) fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn elapsed_since(rfc3339: &str) -> Duration {
    humantime::parse_rfc3339(rfc3339)
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or(Duration::MAX)
}

impl<'a> Run<'a> {
    pub fn new(
        config: &'a EngineConfig,
        embedder: &'a dyn Embedder,
        chunker: &'a Arc<Chunker>,
        tables: &'a UserTables,
        source: &'a dyn DocumentSource,
    ) -> Self {
        Self {
            config,
            embedder,
            chunker,
            tables,
            source,
            move_candidates: Mutex::default(),
        }
    }

    pub async fn execute(
        &self,
        options: SyncOptions,
        progress: &dyn Progress,
    ) -> Result<SyncReport> {
        let started = Instant::now();
        let source_id = self.source.id().to_string();
        validate_source_id(&source_id)?;
        let mut report = SyncReport {
            user_id: self.tables.user_id.clone(),
            source_id: source_id.clone(),
            ..Default::default()
        };

        // One run per source at a time, across processes: a second `sync` of the same source
        // (a CLI next to a server or a watcher) is refused rather than doing the work twice.
        let lock_path = self.state_dir().join(format!("{source_id}.lock"));
        let Some(_running) = FileLock::try_acquire(&lock_path)? else {
            return Err(Error::Busy {
                user_id: self.tables.user_id.clone(),
                source_id,
                holder: FileLock::holder(&lock_path),
            });
        };
        // With the lock held, a marker left behind can only be from a run that died.
        let marker = self.marker_path(&source_id);
        let interrupted = marker.exists();
        if let Some(dir) = marker.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| Error::Io {
                    path: dir.to_path_buf(),
                    source: e,
                })?;
        }
        tokio::fs::write(&marker, now())
            .await
            .map_err(|e| Error::Io {
                path: marker.clone(),
                source: e,
            })?;

        // Chunks whose document row was never written (the run was killed between the two
        // commits) are removed first: new documents' chunks are then plain appends that
        // cannot duplicate anything.
        if interrupted {
            let orphans = self.tables.orphan_chunk_docs(&source_id).await?;
            if !orphans.is_empty() {
                tracing::info!(source = %source_id, documents = orphans.len(), "removing chunks left by an interrupted run");
                self.tables.delete_docs(&orphans).await?;
            }
            report.repaired = orphans.len();
        }
        // The tables' state and the source's changes are independent: read both at once (a
        // rescan with nothing to do is mostly these two). A remote source with a stored cursor
        // reports only what changed since it.
        let timed = |what: &'static str, started: Instant| {
            tracing::debug!(what, ms = started.elapsed().as_millis() as u64, "read");
        };
        let cursor = self.tables.cursor(&source_id).await?;
        let (stored, changes) = tokio::join!(
            async {
                let t = Instant::now();
                let stored = self.tables.source_docs(&source_id).await;
                timed("state", t);
                stored
            },
            async {
                let t = Instant::now();
                let changes = self.source.changes(cursor.as_deref()).await;
                timed("listing", t);
                changes
            }
        );
        let stored = stored?;
        let documents_before = stored.len();
        // A failed listing returns here: nothing is deleted, the cursor stays.
        let mut changes = changes?;
        // A cursor with no documents behind it (they were removed, or never written) does not
        // cover what the source holds: list it in full.
        if stored.is_empty() && matches!(changes.kind, ChangeKind::Delta { .. }) {
            changes = self.source.changes(None).await?;
        }
        let Changes {
            kind,
            cursor: next_cursor,
        } = changes;
        let (entries, gone) = match kind {
            ChangeKind::Full(Listing {
                entries,
                unlisted,
                issues,
            }) => {
                report.issues = issues;
                (entries, Gone::Unlisted(unlisted))
            }
            ChangeKind::Delta {
                entries,
                deleted,
                issues,
            } => {
                report.issues = issues;
                (entries, Gone::Only(deleted))
            }
        };
        let delta_is_empty = matches!(&gone, Gone::Only(d) if d.is_empty()) && entries.is_empty();
        let mut by_uri: HashMap<&str, DocPos> = stored
            .positions()
            .map(|p| (stored.source_uri(p), p))
            .collect();
        let mut jobs = Vec::new();
        for entry in entries {
            match by_uri.remove(entry.uri.as_str()) {
                None => jobs.push(Job { entry, prior: None }),
                Some(pos) => {
                    let same_stat = stored.stat(pos) == (entry.size as i64, entry.modified_ms)
                        && entry
                            .version
                            .as_deref()
                            .is_none_or(|v| stored.version(pos) == Some(v));
                    if stored.status(pos) == STATUS_FAILED {
                        let prior = stored.state(pos);
                        if !same_stat || options.retry_failed || self.retry_due(&prior) {
                            jobs.push(Job {
                                entry,
                                prior: Some(Box::new(prior)),
                            });
                        } else {
                            report.waiting_retry += 1;
                        }
                    } else if same_stat {
                        report.unchanged += 1;
                    } else {
                        jobs.push(Job {
                            entry,
                            prior: Some(Box::new(stored.state(pos))),
                        });
                    }
                }
            }
        }
        // What is left was not listed. After a complete listing it is deleted if the listing
        // could see where it was; after a delta, only if the delta says so, and the rest is
        // as it was (failures among it are retried when due).
        let mut delete_candidates: Vec<DocState> = Vec::new();
        for pos in by_uri.into_values() {
            let uri = stored.source_uri(pos);
            let deleted = match &gone {
                Gone::Unlisted(unlisted) => !unlisted.iter().any(|u| under(uri, u)),
                Gone::Only(deleted) => deleted.iter().any(|d| under(uri, d)),
            };
            if deleted {
                delete_candidates.push(stored.state(pos));
            } else if matches!(gone, Gone::Unlisted(_)) {
                // Under a folder the listing could not see: left alone until it can.
            } else if stored.status(pos) != STATUS_FAILED {
                report.unchanged += 1;
            } else {
                let prior = stored.state(pos);
                if options.retry_failed || self.retry_due(&prior) {
                    let (size, modified) = stored.stat(pos);
                    jobs.push(Job {
                        entry: SourceEntry::new(uri, size.max(0) as u64, modified),
                        prior: Some(Box::new(prior)),
                    });
                } else {
                    report.waiting_retry += 1;
                }
            }
        }
        delete_candidates.sort_by(|a, b| a.source_uri.cmp(&b.source_uri));
        drop(stored);
        {
            let mut moves = self.move_candidates.lock().expect("lock");
            for s in delete_candidates
                .iter()
                .filter(|s| s.status == STATUS_OK && !s.checksum.is_empty())
            {
                moves.entry(s.checksum.clone()).or_default().push(s.clone());
            }
        }

        progress.start(jobs.len());
        let mut outcomes = futures::stream::iter(jobs.into_iter().map(|job| self.process(job)))
            .buffer_unordered(self.config.max_concurrency.max(1));
        let mut batch = Vec::new();
        let mut batch_chunks = 0usize;
        let mut moved_from = HashSet::new();
        while let Some(outcome) = outcomes.next().await {
            progress.advance(outcome.uri());
            if let Outcome::Moved { from, .. } = &outcome {
                moved_from.insert(from.doc_id.clone());
            }
            if let Outcome::Indexed { chunks, .. } = &outcome {
                batch_chunks += chunks.len();
            }
            batch.push(outcome);
            if batch.len() >= self.config.batch_docs || batch_chunks >= self.config.batch_chunks {
                self.flush(std::mem::take(&mut batch), &mut report).await?;
                batch_chunks = 0;
            }
        }
        drop(outcomes);
        self.flush(batch, &mut report).await?;

        let deletions: Vec<String> = delete_candidates
            .into_iter()
            .filter(|s| !moved_from.contains(&s.doc_id))
            .map(|s| s.doc_id)
            .collect();
        let guard = &self.config.mass_delete;
        let too_many = deletions.len() >= guard.min_documents
            && deletions.len() as f64 > guard.max_share * documents_before as f64;
        if too_many && !options.allow_mass_delete {
            tracing::warn!(source = %source_id, would_delete = deletions.len(), documents = documents_before, "mass-delete guard: deletions withheld");
            report.mass_delete_blocked = Some(MassDeleteBlocked {
                would_delete: deletions.len(),
                documents: documents_before,
                max_share: guard.max_share,
            });
        } else {
            self.tables.delete_docs(&deletions).await?;
            report.deleted = deletions.len();
            // Everything the cursor covers is written now. A delta that changed nothing
            // leaves the stored cursor as it is (it still covers the same state), so a run
            // with nothing to do writes nothing; withheld deletions keep the old cursor, so
            // the next run sees them again.
            if let Some(next) = next_cursor
                && cursor.as_deref() != Some(next.as_str())
                && !delta_is_empty
            {
                self.tables.set_cursor(&source_id, &next).await?;
            }
        }

        // A run that wrote nothing leaves nothing to index or compact.
        let wrote = report.created
            + report.updated
            + report.moved
            + report.touched
            + report.failed
            + report.legacy
            + report.deleted
            + report.repaired;
        if wrote > 0 {
            report.maintenance = self.tables.maintain().await?;
        }
        tokio::fs::remove_file(&marker)
            .await
            .map_err(|e| Error::Io {
                path: marker.clone(),
                source: e,
            })?;

        let secs = started.elapsed().as_secs_f64();
        report.duration_ms = (secs * 1000.0) as u64;
        let read = report.created
            + report.updated
            + report.moved
            + report.touched
            + report.failed
            + report.legacy;
        report.docs_per_sec = if secs > 0.0 { read as f64 / secs } else { 0.0 };
        report.mb_per_sec = if secs > 0.0 {
            report.bytes_read as f64 / 1e6 / secs
        } else {
            0.0
        };
        report.finished_at = now();
        let last = self.tables.state_dir.join(format!("{source_id}.last.json"));
        let json =
            serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?;
        tokio::fs::write(&last, json).await.map_err(|e| Error::Io {
            path: last.clone(),
            source: e,
        })?;
        tracing::info!(
            user = %report.user_id, source = %source_id, created = report.created, updated = report.updated,
            moved = report.moved, touched = report.touched, deleted = report.deleted, unchanged = report.unchanged,
            failed = report.failed, ms = report.duration_ms, "sync finished"
        );
        Ok(report)
    }

    /// A marker that exists while a run of this source is writing; found at the start of a
    /// run, it means the last one was interrupted and orphans may need removing.
    fn marker_path(&self, source_id: &str) -> PathBuf {
        self.state_dir().join(format!("{source_id}.running"))
    }

    /// Where run markers, locks and last reports live, beside the user's tables.
    fn state_dir(&self) -> PathBuf {
        self.tables.state_dir.clone()
    }

    fn retry_due(&self, prior: &DocState) -> bool {
        if prior.attempts as u64 >= self.config.max_retries {
            return false;
        }
        let exp = (prior.attempts.max(1) - 1).min(16) as u32;
        let wait = self
            .config
            .retry_backoff
            .saturating_mul(2u32.saturating_pow(exp));
        elapsed_since(&prior.last_synced) >= wait
    }

    async fn process(&self, job: Job) -> Outcome {
        let Job { entry, prior } = job;
        let prior = prior.map(|p| *p);
        // The source's own content hash decides before any download: the same content is a
        // touch, and a new key with a vanished document's content is a move.
        if let Some(hash) = &entry.content_hash {
            if let Some(p) = &prior
                && p.status == STATUS_OK
                && self.config.checksum_enabled
                && p.checksum == *hash
            {
                return Outcome::Touched {
                    prior: prior.expect("checked"),
                    entry,
                    bytes: 0,
                };
            }
            if prior.is_none()
                && let Some(from) = self.claim_move(hash)
            {
                return Outcome::Moved {
                    from,
                    entry,
                    bytes: 0,
                };
            }
        }
        let limit = self.config.max_document_bytes;
        let too_large = |size: u64| {
            format!(
                "{:.1} MB, over the {} MB a document may have (CHUNK_SIZE_MB); raise CHUNK_SIZE_MB to index it",
                size as f64 / (1 << 20) as f64,
                limit >> 20
            )
        };
        if entry.size > limit {
            return Outcome::Failed {
                reason: too_large(entry.size),
                entry,
                prior,
                checksum: String::new(),
                bytes: 0,
            };
        }
        let bytes = match self.source.read(&entry).await {
            Ok(b) if b.len() as u64 > limit => {
                return Outcome::Failed {
                    reason: too_large(b.len() as u64),
                    entry,
                    prior,
                    checksum: String::new(),
                    bytes: b.len() as u64,
                };
            }
            Ok(b) => b,
            Err(e) => {
                return Outcome::Failed {
                    entry,
                    prior,
                    reason: e.to_string(),
                    checksum: String::new(),
                    bytes: 0,
                };
            }
        };
        let size = bytes.len() as u64;
        let checksum = entry
            .content_hash
            .clone()
            .unwrap_or_else(|| blake3::hash(&bytes).to_hex().to_string());
        if let Some(p) = &prior
            && p.status == STATUS_OK
            && self.config.checksum_enabled
            && p.checksum == checksum
        {
            return Outcome::Touched {
                prior: prior.expect("checked"),
                entry,
                bytes: size,
            };
        }
        if prior.is_none()
            && let Some(from) = self.claim_move(&checksum)
        {
            return Outcome::Moved {
                from,
                entry,
                bytes: size,
            };
        }
        // Shared with the extraction thread, so the legacy fallback can still post them.
        let bytes = Arc::new(bytes);
        match self
            .index(&entry, bytes.clone(), &checksum, prior.as_ref())
            .await
        {
            Ok((doc, chunks)) => Outcome::Indexed {
                doc: Box::new(doc),
                chunks,
                prior,
                bytes: size,
            },
            Err((reason, takeable)) => {
                let reason = match &self.config.legacy_fallback {
                    Some(fallback) if takeable => {
                        let fields = [
                            ("user_id", self.tables.user_id.as_str()),
                            ("source_id", self.source.id()),
                            ("source_uri", entry.uri.as_str()),
                            ("filename", entry.file_name()),
                        ];
                        match fallback.forward(&fields, entry.file_name(), &bytes).await {
                            Ok(status) => {
                                return Outcome::Legacy {
                                    entry,
                                    prior,
                                    reason,
                                    checksum,
                                    bytes: size,
                                    status,
                                };
                            }
                            Err(why) => format!(
                                "{reason}; the legacy fallback did not take it either: {why}"
                            ),
                        }
                    }
                    _ => reason,
                };
                Outcome::Failed {
                    entry,
                    prior,
                    reason,
                    checksum,
                    bytes: size,
                }
            }
        }
    }

    fn claim_move(&self, checksum: &str) -> Option<DocState> {
        let mut moves = self.move_candidates.lock().expect("lock");
        let list = moves.get_mut(checksum)?;
        let from = list.pop();
        if list.is_empty() {
            moves.remove(checksum);
        }
        from
    }

    /// The row of a document seen for the first time that has no chunks (yet).
    fn new_row(&self, entry: &SourceEntry, now: &str) -> DocRow {
        DocRow {
            doc_id: doc_id(&self.tables.user_id, self.source.id(), &entry.uri),
            user_id: self.tables.user_id.clone(),
            source_type: self.source.source_type().into(),
            source_id: self.source.id().into(),
            source_uri: entry.uri.clone(),
            doc_type: std::path::Path::new(&entry.uri)
                .extension()
                .map(|e| e.to_string_lossy().to_lowercase())
                .unwrap_or_default(),
            title: entry.display_title().to_string(),
            metadata_json: "{}".into(),
            ingested_at: now.to_string(),
            last_synced: now.to_string(),
            processing_status: STATUS_FAILED.into(),
            error_message: None,
            attempts: 0,
            total_chunks: 0,
            checksum: String::new(),
            size: 0,
            modified: 0,
            source_version: None,
            vector: vec![0.0; self.tables.dim],
        }
    }

    /// Extract, chunk and embed one document. The error is the reason recorded for it, and
    /// whether the legacy fallback may take the document instead (a type lancesync does not
    /// read, or an extraction that failed; not an embedding server that is down).
    async fn index(
        &self,
        entry: &SourceEntry,
        bytes: Arc<Vec<u8>>,
        checksum: &str,
        prior: Option<&DocState>,
    ) -> Result<(DocRow, Vec<ChunkRow>), (String, bool)> {
        let path = std::path::Path::new(&entry.uri);
        let doc_type = DocType::from_path(path).ok_or_else(|| {
            let ext = path
                .extension()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_else(|| "(none)".into());
            (lancesync_ingest::Error::Unsupported(ext).to_string(), true)
        })?;
        let budget = self.config.document_timeout;
        let deadline = Instant::now() + budget;
        let work = self.extract_chunk_embed(bytes, doc_type, deadline);
        let (extracted, chunks, vectors) =
            match tokio::time::timeout_at(deadline.into(), work).await {
                Ok(done) => done?,
                // The work is dropped here: chunking checks the deadline between windows and
                // embedding goes batch by batch, so what is still running stops shortly.
                Err(_) => {
                    return Err((
                        out_of_time(budget, "extracting, chunking and embedding"),
                        false,
                    ));
                }
            };

        let user_id = &self.tables.user_id;
        let source_id = self.source.id();
        let id = doc_id(user_id, source_id, &entry.uri);
        let title = extracted
            .title
            .clone()
            .unwrap_or_else(|| entry.display_title().to_string());
        let now = now();
        let chunk_rows: Vec<ChunkRow> = chunks
            .iter()
            .zip(&vectors)
            .map(|(c, v)| ChunkRow {
                chunk_id: chunk_id(&id, c.index),
                doc_id: id.clone(),
                user_id: user_id.clone(),
                source_id: source_id.to_string(),
                source_uri: entry.uri.clone(),
                title: title.clone(),
                doc_type: doc_type.as_str().into(),
                chunk_index: c.index as i32,
                chunk_text: c.text.clone(),
                metadata: serde_json::json!({ "start": c.start, "page_start": c.page_start, "page_end": c.page_end }).to_string(),
                created_at: now.clone(),
                checksum: blake3::hash(c.text.as_bytes()).to_hex().to_string(),
                vector: v.clone(),
            })
            .collect();
        let metadata =
            serde_json::json!({ "properties": extracted.metadata, "warnings": extracted.warnings });
        let doc = DocRow {
            doc_id: id,
            user_id: user_id.clone(),
            source_type: self.source.source_type().into(),
            source_id: source_id.into(),
            source_uri: entry.uri.clone(),
            doc_type: doc_type.as_str().into(),
            title,
            metadata_json: metadata.to_string(),
            ingested_at: prior.map_or_else(|| now.clone(), |p| p.ingested_at.clone()),
            last_synced: now,
            processing_status: STATUS_OK.into(),
            error_message: None,
            attempts: 0,
            total_chunks: chunk_rows.len() as i32,
            checksum: checksum.into(),
            size: entry.size as i64,
            modified: entry.modified_ms,
            source_version: entry.version.clone(),
            vector: mean_vector(&vectors, self.tables.dim),
        };
        Ok((doc, chunk_rows))
    }

    /// The work of one document before its rows are built, stopped at `deadline`: extraction
    /// and chunking on a blocking thread, then embedding in batches. The error says whether
    /// the legacy fallback may take the document (not when the embedder failed or time ran out).
    async fn extract_chunk_embed(
        &self,
        bytes: Arc<Vec<u8>>,
        doc_type: DocType,
        deadline: Instant,
    ) -> Result<(Extracted, Vec<Chunk>, Vec<Vec<f32>>), (String, bool)> {
        let chunker = self.chunker.clone();
        let options = self.config.extract;
        let budget = self.config.document_timeout;
        // Extraction and chunking are CPU work: keep them off the async workers.
        let (extracted, chunks) = tokio::task::spawn_blocking(move || {
            let extracted = extract_with(&bytes, doc_type, &options)?;
            let chunks = chunker.chunk_until(&extracted, doc_type, Some(deadline))?;
            Ok::<_, lancesync_ingest::Error>((extracted, chunks))
        })
        .await
        .map_err(|e| (format!("extraction crashed: {e}"), true))?
        .map_err(|e| match e {
            lancesync_ingest::Error::OutOfTime(step) => (out_of_time(budget, &step), false),
            other => (other.to_string(), true),
        })?;
        let texts: Vec<String> = chunks.iter().map(|c| c.text.clone()).collect();
        let mut vectors = Vec::with_capacity(texts.len());
        // In batches, so that a document over its deadline stops within one batch.
        for batch in texts.chunks(EMBED_BATCH) {
            if Instant::now() >= deadline {
                return Err((out_of_time(budget, "embedding"), false));
            }
            let found = self
                .embedder
                .embed(batch)
                .await
                .map_err(|e| (e.to_string(), false))?;
            vectors.extend(found);
        }
        Ok((extracted, chunks, vectors))
    }

    /// Write one batch: chunks (replacing the batch's documents' chunks atomically), then
    /// document rows, then the old rows of moved documents.
    async fn flush(&self, batch: Vec<Outcome>, report: &mut SyncReport) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let now = now();
        let mut chunk_rows = Vec::new();
        let mut replaced = Vec::new();
        let mut doc_rows = Vec::new();
        let mut touched = Vec::new();
        let mut moved = Vec::new();
        let mut failed = Vec::new();
        let mut legacy = Vec::new();
        // Documents with no row before this batch.
        let mut fresh: HashSet<String> = HashSet::new();
        for outcome in batch {
            match outcome {
                Outcome::Indexed {
                    doc,
                    chunks,
                    prior,
                    bytes,
                } => {
                    report.bytes_read += bytes;
                    if prior.is_some() {
                        report.updated += 1
                    } else {
                        report.created += 1
                    }
                    report.chunks_written += chunks.len();
                    if prior.is_none() {
                        fresh.insert(doc.doc_id.clone());
                    }
                    replaced.push(doc.doc_id.clone());
                    chunk_rows.extend(chunks);
                    doc_rows.push(*doc);
                }
                Outcome::Touched {
                    prior,
                    entry,
                    bytes,
                } => {
                    report.bytes_read += bytes;
                    touched.push((prior, entry));
                }
                Outcome::Moved { from, entry, bytes } => {
                    report.bytes_read += bytes;
                    moved.push((from, entry));
                }
                Outcome::Failed {
                    entry,
                    prior,
                    reason,
                    checksum,
                    bytes,
                } => {
                    report.bytes_read += bytes;
                    report.failures.push(Failure {
                        uri: entry.uri.clone(),
                        reason: reason.clone(),
                    });
                    failed.push((entry, prior, reason, checksum));
                }
                Outcome::Legacy {
                    entry,
                    prior,
                    reason,
                    checksum,
                    bytes,
                    status,
                } => {
                    report.bytes_read += bytes;
                    legacy.push((entry, prior, reason, checksum, status));
                }
            }
        }

        // Rows the batch rewrites from their current version.
        let mut wanted: Vec<String> = touched.iter().map(|(p, _)| p.doc_id.clone()).collect();
        wanted.extend(moved.iter().map(|(f, _)| f.doc_id.clone()));
        wanted.extend(
            failed
                .iter()
                .filter_map(|(_, p, _, _)| p.as_ref().map(|p| p.doc_id.clone())),
        );
        wanted.extend(
            legacy
                .iter()
                .filter_map(|(_, p, _, _, _)| p.as_ref().map(|p| p.doc_id.clone())),
        );
        let current: HashMap<String, DocRow> = self
            .tables
            .fetch_docs(&wanted)
            .await?
            .into_iter()
            .map(|d| (d.doc_id.clone(), d))
            .collect();

        let old_ids: Vec<String> = moved.iter().map(|(f, _)| f.doc_id.clone()).collect();
        let mut old_chunks: HashMap<String, Vec<ChunkRow>> = HashMap::new();
        for c in self.tables.fetch_chunks(&old_ids).await? {
            old_chunks.entry(c.doc_id.clone()).or_default().push(c);
        }
        for (from, entry) in &moved {
            let Some(old) = current.get(&from.doc_id) else {
                continue;
            };
            let new_id = doc_id(&self.tables.user_id, self.source.id(), &entry.uri);
            let old_name = std::path::Path::new(&old.source_uri)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            // A title that was only the file name follows the rename.
            let title = if old_name.is_some_and(|n| n.eq_ignore_ascii_case(&old.title)) {
                entry.display_title().to_string()
            } else {
                old.title.clone()
            };
            for c in old_chunks.remove(&from.doc_id).unwrap_or_default() {
                chunk_rows.push(ChunkRow {
                    chunk_id: chunk_id(&new_id, c.chunk_index as u32),
                    doc_id: new_id.clone(),
                    source_uri: entry.uri.clone(),
                    title: title.clone(),
                    ..c
                });
            }
            replaced.push(new_id.clone());
            doc_rows.push(DocRow {
                doc_id: new_id,
                source_uri: entry.uri.clone(),
                title,
                ..restamped(old, entry, &now)
            });
            report.moved += 1;
        }
        for (prior, entry) in &touched {
            if let Some(old) = current.get(&prior.doc_id) {
                doc_rows.push(restamped(old, entry, &now));
                report.touched += 1;
            }
        }
        for (entry, prior, reason, checksum) in failed {
            report.failed += 1;
            let existing = prior.as_ref().and_then(|p| current.get(&p.doc_id));
            // Same content failing again counts another attempt; new content starts over.
            let attempts = match (prior.as_ref(), existing) {
                (Some(p), Some(_)) if p.status == STATUS_FAILED && p.checksum == checksum => {
                    p.attempts + 1
                }
                _ => 1,
            };
            let base = existing
                .cloned()
                .unwrap_or_else(|| self.new_row(&entry, &now));
            // A failed update keeps the last good chunks searchable; the row says it failed.
            doc_rows.push(DocRow {
                processing_status: STATUS_FAILED.into(),
                error_message: Some(reason),
                attempts,
                checksum,
                ..restamped(&base, &entry, &now)
            });
        }
        for (entry, prior, reason, checksum, status) in legacy {
            report.legacy += 1;
            let existing = prior.as_ref().and_then(|p| current.get(&p.doc_id));
            let base = existing
                .cloned()
                .unwrap_or_else(|| self.new_row(&entry, &now));
            // The fallback owns this version: chunks of an earlier one go.
            if existing.is_some() {
                replaced.push(base.doc_id.clone());
            }
            let metadata = serde_json::json!({
                "ingested_by": "legacy_fallback",
                "fallback_status": status,
                "lancesync_reason": reason,
            });
            doc_rows.push(DocRow {
                processing_status: STATUS_LEGACY.into(),
                error_message: Some(reason),
                attempts: 0,
                total_chunks: 0,
                checksum,
                metadata_json: metadata.to_string(),
                ..restamped(&base, &entry, &now)
            });
        }

        // New documents have no rows and (after the start-of-run sweep, under the source's
        // lock) no chunks: their rows are appended, which costs the batch, not the table. The
        // rest replace what is there by key. Chunks before rows, as always.
        let (new_chunks, other_chunks): (Vec<ChunkRow>, Vec<ChunkRow>) = chunk_rows
            .into_iter()
            .partition(|c| fresh.contains(&c.doc_id));
        replaced.retain(|id| !fresh.contains(id));
        let (new_docs, other_docs): (Vec<DocRow>, Vec<DocRow>) = doc_rows
            .into_iter()
            .partition(|d| fresh.contains(&d.doc_id));
        self.tables.add_chunks(&new_chunks).await?;
        self.tables.replace_chunks(&other_chunks, &replaced).await?;
        self.tables.add_docs(&new_docs).await?;
        self.tables.upsert_docs(&other_docs).await?;
        self.tables.delete_docs(&old_ids).await?;
        self.tables.index_during_run().await?;
        Ok(())
    }
}

/// `row` as the listing sees it now: size, modification time, version, and when synced.
fn restamped(row: &DocRow, entry: &SourceEntry, now: &str) -> DocRow {
    DocRow {
        size: entry.size as i64,
        modified: entry.modified_ms,
        source_version: entry.version.clone(),
        last_synced: now.to_string(),
        ..row.clone()
    }
}

/// The normalised mean of chunk vectors: the document's own vector.
pub(crate) fn mean_vector(vectors: &[Vec<f32>], dim: usize) -> Vec<f32> {
    let mut mean = vec![0f32; dim];
    for v in vectors {
        for (m, x) in mean.iter_mut().zip(v) {
            *m += x;
        }
    }
    let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        mean.iter_mut().for_each(|x| *x /= norm);
    }
    mean
}
