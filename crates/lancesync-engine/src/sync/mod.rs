//! One sync run of one source into one user's tables.
//!
//! State comes from the tables; the listing decides what to look at ([`plan`], a pure
//! function); only documents whose size or modification time changed are read, bounded in
//! concurrency ([`process`]); writes go in batches, chunks first and document rows last
//! ([`write`]); deletions come last, only for documents a complete listing no longer has, and
//! only past the mass-delete guard. [`report`] holds what a run tells its caller.

mod dry_run;
mod plan;
mod process;
mod report;
mod write;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use futures::StreamExt;
use lancesync_ingest::{Chunker, Embedder, TokenCount};
use lancesync_sources::{ChangeKind, Changes, DocumentSource};

use crate::ids::validate_source_id;
use crate::lock::FileLock;
use crate::tables::{DocState, SourceDocs, UserTables};
use crate::{EngineConfig, Error, Result};

pub(crate) use plan::retry_wait;
pub(crate) use process::mean_vector;
pub use report::{EmbeddingCost, Failure, MassDeleteBlocked, PlannedMove, RunPlan, SyncReport};

/// Options of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOptions {
    /// Apply deletions even past the mass-delete guard.
    pub allow_mass_delete: bool,
    /// Retry every failed document now, whatever its attempts and backoff.
    pub retry_failed: bool,
    /// Plan only: list and read as a run would, extract and chunk changed documents and count
    /// their tokens, write nothing (no rows, cursor, lock, marker or report file), and report
    /// what a run would do ([`SyncReport::plan`]) with its embedding's cost.
    pub dry_run: bool,
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

/// Chunk texts a dry run embeds to measure the embedder's speed on this machine.
const RATE_SAMPLE_CHUNKS: usize = 256;
/// Stored chunks whose tokens are counted to estimate the tokens a run without new chunks
/// saved.
const SAVED_SAMPLE_CHUNKS: usize = 64;

/// What processing needs, shared by the concurrent workers.
pub(crate) struct Run<'a> {
    pub config: &'a EngineConfig,
    pub embedder: &'a dyn Embedder,
    pub chunker: &'a Arc<Chunker>,
    /// The user's tables; `None` only for a dry run of a user who has none yet.
    tables: Option<&'a UserTables>,
    user_id: String,
    dim: usize,
    pub source: &'a dyn DocumentSource,
    /// Documents missing from the listing, by checksum: a new file with the same content is
    /// a move of one of them.
    move_candidates: Mutex<HashMap<String, Vec<DocState>>>,
    /// Plan only ([`SyncOptions::dry_run`]).
    dry_run: bool,
    /// Tokens of the chunks written (or, in a dry run, that would be).
    embedded: Mutex<TokenCount>,
    /// A dry run's chunk texts for measuring the embedder's speed.
    rate_sample: Mutex<Vec<String>>,
}

/// What planning a run found.
struct Planned {
    plan: plan::Plan,
    /// The stored cursor the changes were asked from.
    cursor: Option<String>,
    /// The cursor that covers this run's changes.
    next_cursor: Option<String>,
    /// Documents of the source before the run.
    documents_before: usize,
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
    /// A run into `tables`.
    pub fn new(
        config: &'a EngineConfig,
        embedder: &'a dyn Embedder,
        chunker: &'a Arc<Chunker>,
        tables: &'a UserTables,
        source: &'a dyn DocumentSource,
    ) -> Self {
        Self::new_for(
            config,
            embedder,
            chunker,
            &tables.user_id,
            Some(tables),
            source,
        )
    }

    /// A run for `user_id`, whose tables may not exist yet (a dry run only).
    pub fn new_for(
        config: &'a EngineConfig,
        embedder: &'a dyn Embedder,
        chunker: &'a Arc<Chunker>,
        user_id: &str,
        tables: Option<&'a UserTables>,
        source: &'a dyn DocumentSource,
    ) -> Self {
        Self {
            config,
            embedder,
            chunker,
            tables,
            user_id: user_id.to_string(),
            dim: tables.map_or(embedder.identity().dimension, |t| t.dim),
            source,
            move_candidates: Mutex::default(),
            dry_run: false,
            embedded: Mutex::default(),
            rate_sample: Mutex::default(),
        }
    }

    /// The tables a run writes to.
    fn tables(&self) -> Result<&'a UserTables> {
        self.tables
            .ok_or_else(|| Error::Internal("a run that writes needs the user's tables".into()))
    }

    pub async fn execute(
        mut self,
        options: SyncOptions,
        progress: &dyn Progress,
    ) -> Result<SyncReport> {
        if options.dry_run {
            self.dry_run = true;
            return self.execute_dry(options, progress).await;
        }
        let tables = self.tables()?;
        let started = Instant::now();
        let source_id = self.source.id().to_string();
        validate_source_id(&source_id)?;
        let mut report = SyncReport {
            user_id: self.user_id.clone(),
            source_id: source_id.clone(),
            ..Default::default()
        };

        // One run per source at a time, across processes: a second `sync` of the same source
        // (a CLI next to a server or a watcher) is refused rather than doing the work twice.
        let lock_path = tables.state_dir.join(format!("{source_id}.lock"));
        let Some(_running) = FileLock::try_acquire(&lock_path)? else {
            return Err(Error::Busy {
                user_id: self.user_id.clone(),
                source_id,
                holder: FileLock::holder(&lock_path),
            });
        };
        // With the lock held, a marker left behind can only be from a run that died.
        let marker = marker_path(tables, &source_id);
        let interrupted = marker.exists();
        write_file(&marker, &now()).await?;

        // Chunks whose document row was never written (the run was killed between the two
        // commits) are removed first: new documents' chunks are then plain appends that
        // cannot duplicate anything.
        if interrupted {
            let orphans = tables.orphan_chunk_docs(&source_id).await?;
            if !orphans.is_empty() {
                tracing::info!(source = %source_id, documents = orphans.len(), "removing chunks left by an interrupted run");
                tables.delete_docs(&orphans).await?;
            }
            report.repaired = orphans.len();
        }
        let Planned {
            plan,
            cursor,
            next_cursor,
            documents_before,
        } = self.plan_run(&source_id, options, &mut report).await?;
        let delta_is_empty = plan.delta_is_empty;
        let deletions: Vec<String> = self
            .process_planned(plan, progress, &mut report)
            .await?
            .into_iter()
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
            tables.set_cursor(&source_id, &next).await?;
        }

        // A run that wrote nothing leaves nothing to index or compact.
        if report.rows_written() > 0 {
            report.maintenance = tables.maintain().await?;
        }
        tokio::fs::remove_file(&marker)
            .await
            .map_err(|e| Error::Io {
                path: marker.clone(),
                source: e,
            })?;

        self.count_tokens(&source_id, &mut report).await;
        report.finish(started.elapsed(), now());
        let last = tables.state_dir.join(format!("{source_id}.last.json"));
        let json =
            serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?;
        write_file(&last, &json).await?;
        crate::history::record(&tables.state_dir, &report).await;
        tracing::info!(
            user = %report.user_id, source = %source_id, created = report.created, updated = report.updated,
            moved = report.moved, touched = report.touched, deleted = report.deleted, unchanged = report.unchanged,
            failed = report.failed, ms = report.duration_ms, "sync finished"
        );
        Ok(report)
    }

    /// Read the tables' state and the source's changes, and plan the run. Fills in the
    /// report's counts of documents not read.
    async fn plan_run(
        &self,
        source_id: &str,
        options: SyncOptions,
        report: &mut SyncReport,
    ) -> Result<Planned> {
        // The tables' state and the source's changes are independent: read both at once (a
        // rescan with nothing to do is mostly these two). A remote source with a stored cursor
        // reports only what changed since it.
        let timed = |what: &'static str, started: Instant| {
            tracing::debug!(what, ms = started.elapsed().as_millis() as u64, "read");
        };
        let cursor = match self.tables {
            Some(tables) => tables.cursor(source_id).await?,
            None => None,
        };
        let (stored, changes) = tokio::join!(
            async {
                let t = Instant::now();
                let stored = match self.tables {
                    Some(tables) => tables.source_docs(source_id).await,
                    None => Ok(SourceDocs::default()),
                };
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
        let mut plan = plan::plan(&stored, kind, &retry);
        report.unchanged = plan.unchanged;
        report.waiting_retry = plan.waiting_retry;
        report.chunks_saved = plan.unchanged_chunks;
        report.issues = std::mem::take(&mut plan.issues);
        *self.move_candidates.lock().expect("lock") = plan.move_candidates();
        Ok(Planned {
            plan,
            cursor,
            next_cursor,
            documents_before,
        })
    }

    /// Read and index the plan's documents; returns the stored documents that are gone (those
    /// found moved are not).
    async fn process_planned(
        &self,
        plan: plan::Plan,
        progress: &dyn Progress,
        report: &mut SyncReport,
    ) -> Result<Vec<DocState>> {
        let plan::Plan {
            jobs,
            delete_candidates,
            ..
        } = plan;
        let moved_from = self.process_all(jobs, progress, report).await?;
        Ok(delete_candidates
            .into_iter()
            .filter(|s| !moved_from.contains(&s.doc_id))
            .collect())
    }

    /// Fill in the tokens embedded and saved. The saved ones are estimated at the mean tokens
    /// per chunk of this run's chunks, or, with none, of a sample of the source's stored ones;
    /// an estimate that cannot be made (the sample unreadable) is logged and left at 0, never
    /// failing the run.
    async fn count_tokens(&self, source_id: &str, report: &mut SyncReport) {
        let embedded = *self.embedded.lock().expect("lock");
        report.tokens_embedded = embedded.tokens;
        report.tokens_exact = embedded.exact;
        if report.chunks_saved == 0 {
            return;
        }
        let per_chunk = if report.chunks_written > 0 {
            embedded.tokens as f64 / report.chunks_written as f64
        } else if let Some(mean) = self.last_tokens_per_chunk(source_id) {
            mean
        } else {
            let Some(tables) = self.tables else { return };
            let counted = match tables
                .sample_chunk_texts(source_id, SAVED_SAMPLE_CHUNKS)
                .await
            {
                Ok(sample) if !sample.is_empty() => self
                    .embedder
                    .count_tokens(&sample)
                    .map(|c| c.tokens as f64 / sample.len() as f64)
                    .map_err(Error::from),
                Ok(_) => Ok(0.0),
                Err(e) => Err(e),
            };
            match counted {
                Ok(mean) => mean,
                Err(e) => {
                    tracing::warn!(source = %source_id, error = %e, "cannot estimate the tokens saved");
                    return;
                }
            }
        };
        report.tokens_saved = (report.chunks_saved as f64 * per_chunk).round() as u64;
    }

    /// The mean tokens per chunk the source's last report knew (of the chunks it embedded, or
    /// as it estimated them), so that a run without new chunks need not read a sample.
    fn last_tokens_per_chunk(&self, source_id: &str) -> Option<f64> {
        let path = self
            .tables?
            .state_dir
            .join(format!("{source_id}.last.json"));
        let last: SyncReport = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        if last.chunks_written > 0 && last.tokens_embedded > 0 {
            Some(last.tokens_embedded as f64 / last.chunks_written as f64)
        } else if last.chunks_saved > 0 && last.tokens_saved > 0 {
            Some(last.tokens_saved as f64 / last.chunks_saved as f64)
        } else {
            None
        }
    }

    /// Read and index the planned documents, `max_concurrency` at a time, writing a batch
    /// whenever it has `batch_docs` documents or `batch_chunks` chunks (a dry run tallies each
    /// outcome instead). Returns the ids of documents found moved (their old rows are gone, not
    /// deleted).
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
            if self.dry_run {
                if let process::Outcome::Moved { from, .. } = &outcome {
                    moved_from.insert(from.doc_id.clone());
                }
                self.tally_planned(outcome, report);
                continue;
            }
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
}

/// A marker that exists while a run of this source is writing; found at the start of a run,
/// it means the last one was interrupted and orphans may need removing. Run markers, locks and
/// last reports live in the tables' state folder.
fn marker_path(tables: &UserTables, source_id: &str) -> PathBuf {
    tables.state_dir.join(format!("{source_id}.running"))
}
