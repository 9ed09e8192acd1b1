//! One sync run of one source into one user's tables.
//!
//! State comes from the tables; the listing decides what to look at ([`plan`], a pure
//! function); only documents whose size or modification time changed are read, bounded in
//! concurrency ([`process`]); writes go in batches, chunks first and document rows last
//! ([`write`]); deletions come last, only for documents a complete listing no longer has, and
//! only past the mass-delete guard. [`report`] holds what a run tells its caller.

mod plan;
mod process;
mod report;
mod write;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use futures::StreamExt;
use lancesync_ingest::{Chunker, Embedder};
use lancesync_sources::{ChangeKind, Changes, DocumentSource};

use crate::ids::validate_source_id;
use crate::lock::FileLock;
use crate::tables::{DocState, UserTables};
use crate::{EngineConfig, Error, Result};

pub(crate) use process::mean_vector;
pub use report::{Failure, MassDeleteBlocked, SyncReport};

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

/// Create `path`'s folder and write `contents` to it.
async fn write_file(path: &Path, contents: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| Error::Io {
                path: dir.to_path_buf(),
                source: e,
            })?;
    }
    tokio::fs::write(path, contents)
        .await
        .map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })
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
        write_file(&marker, &now()).await?;

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
        let retry = plan::RetryPolicy {
            max_retries: self.config.max_retries,
            backoff: self.config.retry_backoff,
            retry_all: options.retry_failed,
            now: SystemTime::now(),
        };
        let plan = plan::plan(&stored, kind, &retry);
        drop(stored);
        report.unchanged = plan.unchanged;
        report.waiting_retry = plan.waiting_retry;
        *self.move_candidates.lock().expect("lock") = plan.move_candidates();
        let plan::Plan {
            jobs,
            delete_candidates,
            issues,
            delta_is_empty,
            ..
        } = plan;
        report.issues = issues;

        let moved_from = self.process_all(jobs, progress, &mut report).await?;

        let deletions: Vec<String> = delete_candidates
            .into_iter()
            .filter(|s| !moved_from.contains(&s.doc_id))
            .map(|s| s.doc_id)
            .collect();
        let applied = self
            .delete_unless_too_many(deletions, documents_before, options, &mut report)
            .await?;
        // Everything the cursor covers is written now. A delta that changed nothing leaves the
        // stored cursor as it is (it still covers the same state), so a run with nothing to do
        // writes nothing; withheld deletions keep the old cursor, so the next run sees them
        // again.
        if applied
            && let Some(next) = next_cursor
            && cursor.as_deref() != Some(next.as_str())
            && !delta_is_empty
        {
            self.tables.set_cursor(&source_id, &next).await?;
        }

        // A run that wrote nothing leaves nothing to index or compact.
        if report.rows_written() > 0 {
            report.maintenance = self.tables.maintain().await?;
        }
        tokio::fs::remove_file(&marker)
            .await
            .map_err(|e| Error::Io {
                path: marker.clone(),
                source: e,
            })?;

        report.finish(started.elapsed(), now());
        let last = self.tables.state_dir.join(format!("{source_id}.last.json"));
        let json =
            serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?;
        write_file(&last, &json).await?;
        tracing::info!(
            user = %report.user_id, source = %source_id, created = report.created, updated = report.updated,
            moved = report.moved, touched = report.touched, deleted = report.deleted, unchanged = report.unchanged,
            failed = report.failed, ms = report.duration_ms, "sync finished"
        );
        Ok(report)
    }

    /// Read and index the planned documents, `max_concurrency` at a time, writing a batch
    /// whenever it has `batch_docs` documents or `batch_chunks` chunks. Returns the ids of
    /// documents found moved (their old rows are gone, not deleted).
    async fn process_all(
        &self,
        jobs: Vec<plan::Job>,
        progress: &dyn Progress,
        report: &mut SyncReport,
    ) -> Result<HashSet<String>> {
        progress.start(jobs.len());
        let mut outcomes = futures::stream::iter(jobs.into_iter().map(|job| self.process(job)))
            .buffer_unordered(self.config.max_concurrency.max(1));
        let mut batch = Vec::new();
        let mut batch_chunks = 0usize;
        let mut moved_from = HashSet::new();
        while let Some(outcome) = outcomes.next().await {
            progress.advance(outcome.uri());
            match &outcome {
                process::Outcome::Moved { from, .. } => {
                    moved_from.insert(from.doc_id.clone());
                }
                process::Outcome::Indexed { chunks, .. } => batch_chunks += chunks.len(),
                _ => {}
            }
            batch.push(outcome);
            if batch.len() >= self.config.batch_docs || batch_chunks >= self.config.batch_chunks {
                self.flush(std::mem::take(&mut batch), report).await?;
                batch_chunks = 0;
            }
        }
        drop(outcomes);
        self.flush(batch, report).await?;
        Ok(moved_from)
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
}
