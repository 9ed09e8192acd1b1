//! Blue/green re-index: a user's tables rebuilt with the configured embedder and chunk settings
//! beside the live ones, while searches keep answering from the live ones with the embedder
//! that built them; then one recorded switch, and a rollback that brings the old generation
//! back.
//!
//! The steps, each safe to interrupt (a second `reindex` resumes where the first stopped):
//! 1. **Build** the shadow tables (`{name}__reindex`, in the user's database): a run of every
//!    given source into them (every document is read again; a resumed build skips what it
//!    already wrote), then the documents of other sources (uploads made through the API,
//!    migrated ones) carried over with their chunk texts embedded again. Indexes built, the
//!    tables checked, and each source compared with the live one under the mass-delete guard.
//! 2. **Switch**: the live versions are tagged (kept for rollback, safe from pruning), and one
//!    commit of the live documents table sends readers to the shadow tables.
//! 3. **Copy back** after every reader has followed: the shadow rows overwrite the live names
//!    (one commit per table), indexes are built, and a second commit sends readers back. The
//!    live names then hold the new generation, as the original system's readers expect.
//! 4. The shadow tables are dropped once no reader can still be on them.
//!
//! Writes to the user's tables and a re-index exclude each other (a shared and an exclusive
//! file lock): a re-index waits for the writes in progress, and writes during it are refused,
//! so nothing written can be lost by the copy.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use lancesync_ingest::{ChunkConfig, EmbedderIdentity};
use lancesync_sources::DocumentSource;
use serde::{Deserialize, Serialize};

use crate::lock::FileLock;
use crate::rows::{self, ChunkRow, DocRow};
use crate::sync::{self, Progress, SyncOptions, SyncReport};
use crate::tables::{BEFORE_REINDEX_TAG, PREVIOUS_KEY, UserTables, shadow_database};
use crate::{Engine, Error, Result, ids};

/// How often a reader looks again at which pair of tables to read and which embedder built
/// them. A re-index waits a little more than twice this after each switch before it changes
/// what readers may still be reading.
pub const SERVING_RECHECK: Duration = Duration::from_secs(1);

/// The lock file, in the user's state folder, held for a whole re-index or rollback: a
/// second one is refused at once.
const REINDEX_LOCK: &str = "reindex.lock";

/// The lock file, in the user's state folder, that every write to the user's tables shares
/// for as long as it writes, and a re-index holds alone (after waiting for the writes in
/// progress).
const WRITES_LOCK: &str = "writes.lock";

/// Documents carried over (embedded again from their stored chunks) per batch.
const CARRY_BATCH_DOCS: usize = 64;

/// How a re-index runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReindexOptions {
    /// How long the old generation stays available to [`Engine::rollback_reindex`]; `None`:
    /// the engine's `reindex_keep` (`REINDEX_KEEP_DAYS`).
    pub keep: Option<Duration>,
    /// How long the re-index waits after each switch before changing what readers may still
    /// read: more than twice [`SERVING_RECHECK`], and more than any one search takes.
    pub switch_grace: Duration,
    /// Switch even if a source lists far fewer documents than the live tables hold (past the
    /// mass-delete guard).
    pub allow_mass_delete: bool,
}

impl Default for ReindexOptions {
    fn default() -> Self {
        Self {
            keep: None,
            switch_grace: SERVING_RECHECK * 3,
            allow_mass_delete: false,
        }
    }
}

/// The generation a re-index replaced, kept for rollback until `keep_until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousGeneration {
    /// The embedder that built it.
    pub embedder: Option<EmbedderIdentity>,
    /// Its chunk settings.
    pub chunking: Option<ChunkConfig>,
    /// Its documents table's version (tagged `lancesync-before-reindex`).
    pub documents_version: u64,
    /// Its chunks table's version (tagged likewise).
    pub chunks_version: u64,
    /// When the re-index replaced it (RFC 3339).
    pub replaced_at: String,
    /// Until when rollback is possible (RFC 3339); later maintenance forgets it.
    pub keep_until: String,
}

/// What a re-index did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReindexReport {
    /// User.
    pub user_id: String,
    /// The embedder of the tables before.
    pub embedder_before: Option<EmbedderIdentity>,
    /// The embedder of the tables now.
    pub embedder: EmbedderIdentity,
    /// The chunk settings before.
    pub chunking_before: Option<ChunkConfig>,
    /// The chunk settings now.
    pub chunking: ChunkConfig,
    /// Whether an interrupted re-index was resumed.
    pub resumed: bool,
    /// The build's run of each source (empty when a resumed re-index had already switched).
    pub runs: Vec<SyncReport>,
    /// Documents of other sources (uploads, migrated) carried over, their chunk texts
    /// embedded again.
    pub carried_over: usize,
    /// Documents in the tables now (failed ones included).
    pub documents: usize,
    /// Chunks in the tables now.
    pub chunks: usize,
    /// Documents whose processing failed (also in the runs' failures).
    pub failed: usize,
    /// Until when `reindex --rollback` can bring the old generation back (RFC 3339).
    pub rollback_until: String,
    /// Wall time, milliseconds.
    pub duration_ms: u64,
    /// What the storage mode did afterwards (S3 copy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<lancesync_storage::AfterWrite>,
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollbackReport {
    /// User.
    pub user_id: String,
    /// The embedder of the tables now (the one before the re-index).
    pub embedder: Option<EmbedderIdentity>,
    /// The embedder whose generation was rolled back.
    pub rolled_back: Option<EmbedderIdentity>,
    /// Documents in the tables now.
    pub documents: usize,
    /// Chunks in the tables now.
    pub chunks: usize,
    /// Wall time, milliseconds.
    pub duration_ms: u64,
}

fn keep_until(keep: Duration) -> String {
    let until = std::time::SystemTime::now()
        .checked_add(keep)
        .unwrap_or(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799));
    humantime::format_rfc3339_millis(until).to_string()
}

impl Engine {
    /// Rebuild `user_id`'s tables with the configured embedder and chunk settings from
    /// `sources` (and carry over documents of other sources), blue/green: searches answer
    /// from the old tables, with the old embedder, until one switch to the new ones. An
    /// interrupted re-index resumes. The old generation stays for
    /// [`rollback_reindex`](Self::rollback_reindex) for `options.keep`.
    pub async fn reindex(
        &self,
        user_id: &str,
        sources: &[&dyn DocumentSource],
        options: ReindexOptions,
        progress: &dyn Progress,
    ) -> Result<ReindexReport> {
        ids::validate_user_id(user_id)?;
        let db = self.config.storage.database(user_id)?;
        let cluster = self.writing_at(&db.state_dir, user_id, false).await?;
        cluster
            .fenced(self.reindex_holding(user_id, sources, options, progress))
            .await
    }

    /// [`Self::reindex`], with the user held cluster-wide.
    async fn reindex_holding(
        &self,
        user_id: &str,
        sources: &[&dyn DocumentSource],
        options: ReindexOptions,
        progress: &dyn Progress,
    ) -> Result<ReindexReport> {
        let started = Instant::now();
        if let Err(e) = self.config.storage.before_write(user_id).await {
            tracing::warn!(user_id, error = %e, "could not check S3 for newer versions; re-indexing locally");
        }
        let db = self.config.storage.database(user_id)?;
        let _lock = reindex_lock(&db.state_dir, user_id).await?;
        let live = UserTables::open_any(&db, user_id, &self.config.tables)
            .await?
            .ok_or_else(|| {
                Error::InvalidRequest(format!(
                    "user {user_id} has no index to rebuild; `sync-cli sync` builds one"
                ))
            })?;
        let identity = self.embedder.identity();
        let shadow_db = shadow_database(&db);
        let shadow_settings = self.config.tables.shadow();
        let mut report = ReindexReport {
            user_id: user_id.to_string(),
            embedder_before: live.stored_embedder().await?,
            embedder: identity.clone(),
            chunking_before: live.stored_chunking().await?,
            chunking: self.config.chunking,
            resumed: false,
            runs: Vec::new(),
            carried_over: 0,
            documents: 0,
            chunks: 0,
            failed: 0,
            rollback_until: String::new(),
            duration_ms: 0,
            storage: None,
        };

        let shadow = if live.serves_shadow().await? {
            // Interrupted after the switch: the shadow tables are complete and serving.
            report.resumed = true;
            match UserTables::open_any(&shadow_db, user_id, &shadow_settings).await? {
                Some(shadow) => {
                    // The live tables may be copied in part already: what they were is in
                    // the record the switch left with the new tables.
                    if let Some(previous) = self.previous(&shadow).await? {
                        report.embedder_before = previous.embedder;
                        report.chunking_before = previous.chunking;
                    }
                    shadow
                }
                None => {
                    live.set_serves_shadow(false).await?;
                    return Err(Error::Internal(
                        "the switch pointed at shadow tables that are gone; readers are back on the live tables, run the re-index again".into(),
                    ));
                }
            }
        } else {
            let (shadow, resumed) = self.open_shadow(&live, &shadow_db).await?;
            report.resumed = resumed;
            self.build(&live, &shadow, sources, options, progress, &mut report)
                .await?;
            // Switch: the live versions are tagged first, so a rollback finds them whatever
            // happens next.
            let versions = live.versions().await?;
            live.tag_versions(BEFORE_REINDEX_TAG, versions).await?;
            let previous = PreviousGeneration {
                embedder: report.embedder_before.clone(),
                chunking: report.chunking_before,
                documents_version: versions.0,
                chunks_version: versions.1,
                replaced_at: sync::now(),
                keep_until: keep_until(options.keep.unwrap_or(self.config.reindex_keep)),
            };
            shadow
                .set_docs_config(PREVIOUS_KEY, Some(to_json(&previous)?))
                .await?;
            live.set_serves_shadow(true).await?;
            tracing::info!(user = %user_id, "re-index: searches now read the new tables");
            tokio::time::sleep(options.switch_grace).await;
            shadow
        };

        // Copy back into the live names, then send readers back to them.
        live.overwrite_from(&shadow).await?;
        live.set_serves_shadow(false).await?;
        self.forget_user(user_id).await;
        tracing::info!(user = %user_id, "re-index: the live tables hold the new generation");
        tokio::time::sleep(options.switch_grace).await;
        live.drop_named(&self.config.tables.shadow()).await?;
        move_reports(&shadow_db.state_dir, &db.state_dir).await;

        report.rollback_until = self
            .previous(&live)
            .await?
            .map(|p| p.keep_until)
            .unwrap_or_default();
        report.chunks = live.chunks.count_rows(None).await?;
        for (_, status, _) in live.doc_summaries().await? {
            report.documents += 1;
            if status == rows::STATUS_FAILED {
                report.failed += 1;
            }
        }
        report.storage = self.after_write(user_id).await;
        report.duration_ms = started.elapsed().as_millis() as u64;
        tracing::info!(user = %user_id, documents = report.documents, chunks = report.chunks, ms = report.duration_ms, "re-index finished");
        Ok(report)
    }

    /// Bring back the generation the last re-index replaced (while it is kept), blue/green
    /// like the re-index: it is served from shadow tables while the live names are restored
    /// to their tagged versions, indexes included. The embedder that built it must be
    /// configured again for later runs to write.
    pub async fn rollback_reindex(
        &self,
        user_id: &str,
        options: ReindexOptions,
    ) -> Result<RollbackReport> {
        ids::validate_user_id(user_id)?;
        let db = self.config.storage.database(user_id)?;
        let cluster = self.writing_at(&db.state_dir, user_id, false).await?;
        cluster
            .fenced(self.rollback_holding(user_id, options))
            .await
    }

    /// [`Self::rollback_reindex`], with the user held cluster-wide.
    async fn rollback_holding(
        &self,
        user_id: &str,
        options: ReindexOptions,
    ) -> Result<RollbackReport> {
        let started = Instant::now();
        let db = self.config.storage.database(user_id)?;
        let _lock = reindex_lock(&db.state_dir, user_id).await?;
        let no_rollback = || {
            Error::InvalidRequest(format!(
                "user {user_id} has no earlier generation to roll back to (none was kept, or its time ran out)"
            ))
        };
        let live = UserTables::open_any(&db, user_id, &self.config.tables)
            .await?
            .ok_or_else(no_rollback)?;
        if live.serves_shadow().await? {
            return Err(Error::InvalidRequest(format!(
                "a re-index of user {user_id} was interrupted after its switch; run `sync-cli reindex` to finish it first"
            )));
        }
        let previous = self.previous(&live).await?.ok_or_else(no_rollback)?;
        if live.tagged_versions(BEFORE_REINDEX_TAG).await?.is_none() {
            return Err(no_rollback());
        }
        let rolled_back = live.stored_embedder().await?;
        let shadow_settings = self.config.tables.shadow();
        let (old_docs, old_chunks) = live.at_tag(BEFORE_REINDEX_TAG).await?;
        live.create_copy(&shadow_settings, &old_docs, &old_chunks)
            .await?;
        let shadow_db = shadow_database(&db);
        let shadow = UserTables::open_any(&shadow_db, user_id, &shadow_settings)
            .await?
            .ok_or_else(|| Error::Internal("the rollback's copy is missing".into()))?;
        shadow.maintain().await?;
        live.set_serves_shadow(true).await?;
        tokio::time::sleep(options.switch_grace).await;
        // The tagged versions come back as they were: without the switch, with their indexes.
        live.restore_tag(BEFORE_REINDEX_TAG).await?;
        live.set_serves_shadow(false).await?;
        live.untag(BEFORE_REINDEX_TAG).await?;
        live.set_docs_config(PREVIOUS_KEY, None).await?;
        self.forget_user(user_id).await;
        tokio::time::sleep(options.switch_grace).await;
        live.drop_named(&shadow_settings).await?;
        let _ = tokio::fs::remove_dir_all(&shadow_db.state_dir).await;
        let report = RollbackReport {
            user_id: user_id.to_string(),
            embedder: live.stored_embedder().await?,
            rolled_back,
            documents: live.docs.count_rows(None).await?,
            chunks: live.chunks.count_rows(None).await?,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        self.after_write(user_id).await;
        tracing::info!(user = %user_id, embedder = ?report.embedder, from = %previous.replaced_at, "re-index rolled back");
        Ok(report)
    }

    /// The generation the last re-index replaced, if it is still kept.
    pub async fn previous_generation(&self, user_id: &str) -> Result<Option<PreviousGeneration>> {
        ids::validate_user_id(user_id)?;
        let db = self.config.storage.database(user_id)?;
        match UserTables::open_any(&db, user_id, &self.config.tables).await? {
            Some(live) => self.previous(&live).await,
            None => Ok(None),
        }
    }

    async fn previous(&self, tables: &UserTables) -> Result<Option<PreviousGeneration>> {
        tables.expire_previous_generation().await?;
        Ok(tables
            .docs_config(PREVIOUS_KEY)
            .await?
            .and_then(|json| serde_json::from_str(&json).ok()))
    }

    /// The shadow tables to build into: those of an interrupted build for the same embedder
    /// and chunk settings (resumed), else new ones.
    async fn open_shadow(
        &self,
        live: &UserTables,
        shadow_db: &lancesync_storage::Database,
    ) -> Result<(UserTables, bool)> {
        let settings = self.config.tables.shadow();
        let identity = self.embedder.identity();
        if let Some(existing) = UserTables::open_any(shadow_db, &live.user_id, &settings).await? {
            let same = existing.stored_embedder().await?.as_ref() == Some(&identity)
                && existing.stored_chunking().await? == Some(self.config.chunking);
            if same {
                return Ok((existing, true));
            }
            tracing::info!(user = %live.user_id, "re-index: an interrupted build for other settings is dropped");
        }
        live.drop_named(&settings).await?;
        let _ = tokio::fs::remove_dir_all(&shadow_db.state_dir).await;
        let shadow = UserTables::open(shadow_db, &live.user_id, &settings, &identity).await?;
        shadow.check_chunking(&self.config.chunking, true).await?;
        Ok((shadow, false))
    }

    async fn build(
        &self,
        live: &UserTables,
        shadow: &UserTables,
        sources: &[&dyn DocumentSource],
        options: ReindexOptions,
        progress: &dyn Progress,
        report: &mut ReindexReport,
    ) -> Result<()> {
        for source in sources {
            let run = sync::Run::new(
                &self.config,
                self.embedder.as_ref(),
                &self.chunker,
                shadow,
                *source,
            )
            .execute(SyncOptions::default(), progress)
            .await?;
            report.runs.push(run);
        }
        let rebuilt: HashSet<&str> = sources.iter().map(|s| s.id()).collect();
        report.carried_over = self.carry_over(live, shadow, &rebuilt).await?;
        shadow.forget_indexes();
        shadow.maintain().await?;

        // The new tables must be sound, and hold what the live ones hold: a source that now
        // lists far fewer documents (an outage, a wrong path) must not empty the index.
        let problems: Vec<String> = crate::check::table_problems(shadow)
            .await?
            .into_iter()
            .map(|p| format!("{}: {}", p.kind.describe(), p.examples.join(", ")))
            .collect();
        if !problems.is_empty() {
            return Err(Error::Internal(format!(
                "the rebuilt tables failed their check ({}); the live tables are untouched, and `sync-cli reindex` tries again",
                problems.join("; ")
            )));
        }
        if !options.allow_mass_delete {
            let guard = self.config.mass_delete;
            for source in sources {
                let before = live.source_docs(source.id()).await?.len();
                let after = shadow.source_docs(source.id()).await?.len();
                let lost = before.saturating_sub(after);
                if lost >= guard.min_documents && lost as f64 > guard.max_share * before as f64 {
                    return Err(Error::SwitchWithheld(format!(
                        "source {} now gives {after} documents where the live tables hold {before}; the switch is withheld (the mass-delete guard). Check the source, then run the re-index again (it resumes), or allow it with --allow-mass-delete",
                        source.id()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Copy the documents of sources that are not rebuilt into the shadow tables, their
    /// chunk texts embedded again (their content may exist nowhere else). Documents already
    /// copied by an interrupted re-index are skipped. Returns how many the shadow tables
    /// hold.
    async fn carry_over(
        &self,
        live: &UserTables,
        shadow: &UserTables,
        rebuilt: &HashSet<&str>,
    ) -> Result<usize> {
        let docs: Vec<DocRow> = live
            .docs_where_without_vectors(None)
            .await?
            .into_iter()
            .filter(|d| !rebuilt.contains(d.source_id.as_str()))
            .collect();
        for batch in docs.chunks(CARRY_BATCH_DOCS) {
            let ids: Vec<String> = batch.iter().map(|d| d.doc_id.clone()).collect();
            let done: HashMap<String, String> = shadow
                .fetch_docs(&ids)
                .await?
                .into_iter()
                .map(|d| (d.doc_id, d.checksum))
                .collect();
            let todo: Vec<&DocRow> = batch
                .iter()
                .filter(|d| done.get(&d.doc_id) != Some(&d.checksum))
                .collect();
            if todo.is_empty() {
                continue;
            }
            let ids: Vec<String> = todo.iter().map(|d| d.doc_id.clone()).collect();
            let chunks: Vec<ChunkRow> = live.fetch_chunks(&ids).await?;
            let texts: Vec<String> = chunks.iter().map(|c| c.chunk_text.clone()).collect();
            let vectors = if texts.is_empty() {
                Vec::new()
            } else {
                self.embedder.embed(&texts).await?
            };
            let mut by_doc: HashMap<&str, Vec<Vec<f32>>> = HashMap::new();
            let chunks: Vec<ChunkRow> = chunks
                .iter()
                .zip(vectors)
                .map(|(c, v)| {
                    by_doc.entry(c.doc_id.as_str()).or_default().push(v.clone());
                    ChunkRow {
                        vector: v,
                        ..c.clone()
                    }
                })
                .collect();
            let rows: Vec<DocRow> = todo
                .iter()
                .map(|d| DocRow {
                    vector: sync::mean_vector(
                        by_doc.get(d.doc_id.as_str()).map_or(&[][..], |v| v),
                        shadow.dim,
                    ),
                    ..(*d).clone()
                })
                .collect();
            shadow.replace_chunks(&chunks, &ids).await?;
            shadow.upsert_docs(&rows).await?;
        }
        Ok(docs.len())
    }
}

/// The user's re-index lock, or [`Error::Reindexing`] if another re-index holds it; then the
/// user's writes lock alone, once the writes in progress (in any process) have finished.
async fn reindex_lock(state_dir: &Path, user_id: &str) -> Result<(FileLock, FileLock)> {
    let path = state_dir.join(REINDEX_LOCK);
    let reindex = FileLock::try_acquire(&path)?.ok_or_else(|| Error::Reindexing {
        user_id: user_id.to_string(),
        holder: FileLock::holder(&path),
    })?;
    let writes_path = state_dir.join(WRITES_LOCK);
    let writes = match FileLock::try_acquire(&writes_path)? {
        Some(lock) => lock,
        None => {
            tracing::info!(user = %user_id, "re-index: waiting for the writes in progress to finish");
            FileLock::acquire(writes_path).await?
        }
    };
    Ok((reindex, writes))
}

/// Held by code that writes to a user's tables through [`UserTables`] for as long as it
/// writes: a re-index of the user waits for it, and it is refused during one
/// ([`Engine::write_guard`]).
#[derive(Debug)]
pub struct WriteGuard {
    _writing: crate::writing::Writing,
}

impl Engine {
    /// Before writing to `user_id`'s tables directly (through [`UserTables`], as a migration
    /// does): hold this until done. [`Error::Reindexing`] while a re-index of the user runs in
    /// any process; the engine's own writes take it themselves.
    pub async fn write_guard(&self, user_id: &str) -> Result<WriteGuard> {
        let tables = self.tables(user_id).await?;
        Ok(WriteGuard {
            _writing: self.writing(&tables).await?,
        })
    }
}

/// What a write to the user's tables holds while it writes: refused (with
/// [`Error::Reindexing`]) while a re-index of the user runs in any process, since the
/// re-index copies the tables and a write in between would be lost.
pub(crate) fn write_guard(state_dir: &Path, user_id: &str) -> Result<FileLock> {
    FileLock::try_acquire_shared(&state_dir.join(WRITES_LOCK))?.ok_or_else(|| Error::Reindexing {
        user_id: user_id.to_string(),
        holder: FileLock::holder(&state_dir.join(REINDEX_LOCK)),
    })
}

/// The build's last reports become the sources' last reports.
async fn move_reports(from: &Path, to: &Path) {
    if let Ok(mut entries) = tokio::fs::read_dir(from).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(".last.json") {
                let _ = tokio::fs::copy(entry.path(), to.join(&name)).await;
            }
        }
    }
    let _ = tokio::fs::remove_dir_all(from).await;
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(e.to_string()))
}
