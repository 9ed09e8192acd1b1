//! Writing one batch of outcomes: chunks first (replacing a document's chunks atomically),
//! then document rows, then the old rows of moved documents.

use std::collections::{HashMap, HashSet};

use lancesync_sources::SourceEntry;

use super::Run;
use super::process::Outcome;
use super::report::{Failure, MassDeleteBlocked, SyncReport};
use super::{SyncOptions, now};
use crate::Result;
use crate::fallback::STATUS_LEGACY;
use crate::ids::{chunk_id, doc_id};
use crate::rows::{ChunkRow, DocRow, STATUS_FAILED};

impl Run<'_> {
    /// Delete `deletions` unless they are more than the mass-delete guard allows of the
    /// `documents_before` the source had (and the caller did not allow it). Returns whether
    /// they were applied.
    pub(super) async fn delete_unless_too_many(
        &self,
        deletions: Vec<String>,
        documents_before: usize,
        options: SyncOptions,
        report: &mut SyncReport,
    ) -> Result<bool> {
        if let Some(blocked) = self.withheld(deletions.len(), documents_before, options) {
            tracing::warn!(source = %self.source.id(), would_delete = deletions.len(), documents = documents_before, "mass-delete guard: deletions withheld");
            report.mass_delete_blocked = Some(blocked);
            return Ok(false);
        }
        self.tables()?.delete_docs(&deletions).await?;
        report.deleted = deletions.len();
        Ok(true)
    }

    /// Whether the mass-delete guard withholds `deletions` of the `documents_before` the
    /// source had, and what it tells.
    pub(super) fn withheld(
        &self,
        deletions: usize,
        documents_before: usize,
        options: SyncOptions,
    ) -> Option<MassDeleteBlocked> {
        let guard = &self.config.mass_delete;
        let too_many = deletions >= guard.min_documents
            && deletions as f64 > guard.max_share * documents_before as f64;
        (too_many && !options.allow_mass_delete).then_some(MassDeleteBlocked {
            would_delete: deletions,
            documents: documents_before,
            max_share: guard.max_share,
        })
    }

    /// Write one batch: chunks (replacing the batch's documents' chunks atomically), then
    /// document rows, then the old rows of moved documents.
    pub(super) async fn flush(&self, batch: Vec<Outcome>, report: &mut SyncReport) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let tables = self.tables()?;
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
                    tokens,
                } => {
                    report.bytes_read += bytes;
                    self.embedded.lock().expect("lock").add(tokens);
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
        let current: HashMap<String, DocRow> = tables
            .fetch_docs(&wanted)
            .await?
            .into_iter()
            .map(|d| (d.doc_id.clone(), d))
            .collect();

        let old_ids: Vec<String> = moved.iter().map(|(f, _)| f.doc_id.clone()).collect();
        let mut old_chunks: HashMap<String, Vec<ChunkRow>> = HashMap::new();
        for c in tables.fetch_chunks(&old_ids).await? {
            old_chunks.entry(c.doc_id.clone()).or_default().push(c);
        }
        for (from, entry) in &moved {
            let Some(old) = current.get(&from.doc_id) else {
                continue;
            };
            let new_id = doc_id(&self.user_id, self.source.id(), &entry.uri);
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
            report.chunks_saved += old.total_chunks.max(0) as u64;
        }
        for (prior, entry) in &touched {
            if let Some(old) = current.get(&prior.doc_id) {
                doc_rows.push(restamped(old, entry, &now));
                report.touched += 1;
                report.chunks_saved += old.total_chunks.max(0) as u64;
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
        tables.add_chunks(&new_chunks).await?;
        tables.replace_chunks(&other_chunks, &replaced).await?;
        tables.add_docs(&new_docs).await?;
        tables.upsert_docs(&other_docs).await?;
        tables.delete_docs(&old_ids).await?;
        tables.index_during_run().await?;
        Ok(())
    }

    /// The row of a document seen for the first time that has no chunks (yet).
    fn new_row(&self, entry: &SourceEntry, now: &str) -> DocRow {
        DocRow {
            doc_id: doc_id(&self.user_id, self.source.id(), &entry.uri),
            user_id: self.user_id.clone(),
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
            vector: vec![0.0; self.dim],
        }
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
