//! Reading, extracting, chunking and embedding one document: the work a run does
//! concurrently, each document ending in one [`Outcome`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use lancesync_ingest::{Chunk, DocType, Extracted, TokenCount, extract_with};
use lancesync_sources::SourceEntry;

use super::{Run, now};
use crate::ids::{chunk_id, doc_id};
use crate::rows::{ChunkRow, DocRow, STATUS_OK};
use crate::tables::DocState;

use super::plan::Job;

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

/// What became of one document.
pub(super) enum Outcome {
    Indexed {
        doc: Box<DocRow>,
        chunks: Vec<ChunkRow>,
        prior: Option<DocState>,
        bytes: u64,
        /// The chunks' tokens, as embedded (or, in a dry run, counted).
        tokens: TokenCount,
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
    pub(super) fn uri(&self) -> &str {
        match self {
            Outcome::Indexed { doc, .. } => &doc.source_uri,
            Outcome::Touched { entry, .. }
            | Outcome::Moved { entry, .. }
            | Outcome::Failed { entry, .. }
            | Outcome::Legacy { entry, .. } => &entry.uri,
        }
    }
}

impl Run<'_> {
    pub(super) async fn process(&self, job: Job) -> Outcome {
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
            Ok((doc, chunks, tokens)) => Outcome::Indexed {
                doc: Box::new(doc),
                chunks,
                prior,
                bytes: size,
                tokens,
            },
            Err((reason, takeable)) => {
                let reason = match &self.config.legacy_fallback {
                    // A dry run posts nothing: the fallback is expected to take it.
                    Some(_) if takeable && self.dry_run => {
                        return Outcome::Legacy {
                            entry,
                            prior,
                            reason,
                            checksum,
                            bytes: size,
                            status: 0,
                        };
                    }
                    Some(fallback) if takeable => {
                        let fields = [
                            ("user_id", self.user_id.as_str()),
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

    /// A document gone from the listing with this content, if any is left: the new document
    /// is that one moved.
    fn claim_move(&self, checksum: &str) -> Option<DocState> {
        let mut moves = self.move_candidates.lock().expect("lock");
        let list = moves.get_mut(checksum)?;
        let from = list.pop();
        if list.is_empty() {
            moves.remove(checksum);
        }
        from
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
    ) -> Result<(DocRow, Vec<ChunkRow>, TokenCount), (String, bool)> {
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
        let (extracted, chunks, vectors, tokens) =
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

        let user_id = &self.user_id;
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
            vector: mean_vector(&vectors, self.dim),
        };
        Ok((doc, chunk_rows, tokens))
    }

    /// The work of one document before its rows are built, stopped at `deadline`: extraction
    /// and chunking on a blocking thread, then embedding in batches (a dry run counts the
    /// tokens instead, and its vectors are empty). The error says whether the legacy fallback
    /// may take the document (not when the embedder failed or time ran out).
    async fn extract_chunk_embed(
        &self,
        bytes: Arc<Vec<u8>>,
        doc_type: DocType,
        deadline: Instant,
    ) -> Result<(Extracted, Vec<Chunk>, Vec<Vec<f32>>, TokenCount), (String, bool)> {
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
        if self.dry_run {
            let tokens = self
                .embedder
                .count_tokens(&texts)
                .map_err(|e| (e.to_string(), false))?;
            let mut sample = self.rate_sample.lock().expect("lock");
            let room = super::RATE_SAMPLE_CHUNKS.saturating_sub(sample.len());
            sample.extend(texts.iter().take(room).cloned());
            return Ok((extracted, chunks, vec![Vec::new(); texts.len()], tokens));
        }
        let mut vectors = Vec::with_capacity(texts.len());
        let mut tokens = TokenCount::default();
        // In batches, so that a document over its deadline stops within one batch.
        for batch in texts.chunks(EMBED_BATCH) {
            if Instant::now() >= deadline {
                return Err((out_of_time(budget, "embedding"), false));
            }
            let (found, counted) = self
                .embedder
                .embed_counted(batch)
                .await
                .map_err(|e| (e.to_string(), false))?;
            vectors.extend(found);
            tokens.add(counted);
        }
        Ok((extracted, chunks, vectors, tokens))
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
