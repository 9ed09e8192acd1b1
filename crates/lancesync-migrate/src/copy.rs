//! Copying a batch of adopted documents: chunks in order, vectors kept or text embedded again,
//! chunks written before their documents.

use std::collections::HashMap;

use lancesync_engine::rows::{ChunkRow, DocRow, STATUS_OK};
use lancesync_engine::{MIGRATED_SOURCE, UserTables, WriteGuard, ids};

use crate::Migrator;
use crate::convert::{doc_metadata, doc_type, json_text, usable_chunks};
use crate::error::Result;
use crate::legacy::{LegacyChunk, LegacyTables};
use crate::matching::Content;
use crate::plan::{Plan, Planned};
use crate::report::{NotAdopted, UserMigration};

impl Migrator {
    /// Copy one batch of documents' chunks (embedding where needed) and write them.
    pub(crate) async fn copy_batch(
        &self,
        user: &str,
        legacy: &LegacyTables,
        batch: &[Planned],
        keep_vectors: bool,
        tables: Option<&mut Option<(UserTables, WriteGuard)>>,
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
        // Held until the migration of the user is done: a re-index waits for it.
        let (tables, _) = match tables {
            Some(t) => t,
            None => {
                let opened = self.engine.tables(user).await?;
                tables.insert((opened, self.engine.write_guard(user).await?))
            }
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
