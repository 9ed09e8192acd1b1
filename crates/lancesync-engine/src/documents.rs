//! Documents as people and APIs see them: listed with filters and paging, one with its chunks,
//! deleted one at a time.

use lancesync_ingest::DocType;
use serde::{Deserialize, Serialize};

use crate::ids::{sql_string, validate_source_id};
use crate::rows::{ChunkRow, DocRow, STATUS_FAILED, STATUS_OK};
use crate::{Error, Result};

/// Most documents one page lists.
pub const MAX_PAGE: usize = 1000;

/// A document without its vector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentInfo {
    /// Id.
    pub doc_id: String,
    /// Source type (`local_filesystem`, `upload`).
    pub source_type: String,
    /// Source id.
    pub source_id: String,
    /// Where it is.
    pub source_uri: String,
    /// pdf, docx, html, md or txt.
    pub doc_type: String,
    /// Title.
    pub title: String,
    /// Extracted properties and warnings.
    pub metadata: serde_json::Value,
    /// RFC 3339 time of the first ingest.
    pub ingested_at: String,
    /// RFC 3339 time of the last sync.
    pub last_synced: String,
    /// `completed` or `failed`.
    pub processing_status: String,
    /// Why it failed.
    pub error_message: Option<String>,
    /// Failed attempts for this content.
    pub attempts: i32,
    /// Chunks.
    pub total_chunks: i32,
    /// BLAKE3 of the content.
    pub checksum: String,
    /// Bytes.
    pub size: i64,
    /// Modification time, ms since the epoch.
    pub modified: i64,
}

impl From<DocRow> for DocumentInfo {
    fn from(d: DocRow) -> Self {
        Self {
            metadata: serde_json::from_str(&d.metadata_json).unwrap_or(serde_json::Value::Null),
            doc_id: d.doc_id,
            source_type: d.source_type,
            source_id: d.source_id,
            source_uri: d.source_uri,
            doc_type: d.doc_type,
            title: d.title,
            ingested_at: d.ingested_at,
            last_synced: d.last_synced,
            processing_status: d.processing_status,
            error_message: d.error_message,
            attempts: d.attempts,
            total_chunks: d.total_chunks,
            checksum: d.checksum,
            size: d.size,
            modified: d.modified,
        }
    }
}

/// A chunk without its vector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkInfo {
    /// Id.
    pub chunk_id: String,
    /// Position in the document.
    pub chunk_index: i32,
    /// Text.
    pub chunk_text: String,
    /// Offsets and pages.
    pub metadata: serde_json::Value,
}

impl From<ChunkRow> for ChunkInfo {
    fn from(c: ChunkRow) -> Self {
        Self {
            metadata: serde_json::from_str(&c.metadata).unwrap_or(serde_json::Value::Null),
            chunk_id: c.chunk_id,
            chunk_index: c.chunk_index,
            chunk_text: c.chunk_text,
        }
    }
}

/// A document with its chunks, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentWithChunks {
    /// The document.
    #[serde(flatten)]
    pub document: DocumentInfo,
    /// Its chunks.
    pub chunks: Vec<ChunkInfo>,
}

/// Which documents to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct DocumentFilter {
    /// Only this source.
    #[serde(default)]
    pub source_id: Option<String>,
    /// Only this type.
    #[serde(default)]
    pub doc_type: Option<DocType>,
    /// Only `completed` or only `failed`.
    #[serde(default)]
    pub status: Option<String>,
}

impl DocumentFilter {
    /// The filter as an escaped SQL predicate; invalid values are errors.
    pub(crate) fn to_sql(&self) -> Result<Option<String>> {
        let mut parts = Vec::new();
        if let Some(source) = &self.source_id {
            validate_source_id(source)?;
            parts.push(format!("source_id = {}", sql_string(source)));
        }
        if let Some(doc_type) = self.doc_type {
            parts.push(format!("doc_type = {}", sql_string(doc_type.as_str())));
        }
        if let Some(status) = &self.status {
            if status != STATUS_OK && status != STATUS_FAILED {
                return Err(Error::InvalidRequest(format!(
                    "status must be {STATUS_OK} or {STATUS_FAILED}, not {status:?}"
                )));
            }
            parts.push(format!("processing_status = {}", sql_string(status)));
        }
        Ok((!parts.is_empty()).then(|| parts.join(" AND ")))
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The items, ordered by source then URI.
    pub items: Vec<T>,
    /// Items matching in all.
    pub total: usize,
    /// Items skipped.
    pub offset: usize,
    /// Most items asked for.
    pub limit: usize,
}

/// Check paging parameters.
pub(crate) fn check_page(limit: usize) -> Result<()> {
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Error::InvalidRequest(format!(
            "limit must be 1 to {MAX_PAGE}, not {limit}"
        )));
    }
    Ok(())
}

/// A chunk given by the caller, with its embedding when it was computed elsewhere.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PrecomputedChunk {
    /// The chunk's text.
    pub text: String,
    /// Its embedding; missing ones are computed with the engine's embedder.
    #[serde(default)]
    pub embedding: Option<Vec<f32>>,
}

/// A document whose chunks (and optionally embeddings) were made by the caller: the
/// original system's integration path, where an application chunks and embeds itself.
#[derive(Debug, Clone, PartialEq)]
pub struct PrecomputedDocument {
    /// Where the document is, as the application names it (a URL, a path, an id).
    pub uri: String,
    /// Title.
    pub title: String,
    /// Type.
    pub doc_type: DocType,
    /// Properties kept with the document.
    pub metadata: serde_json::Value,
    /// The chunks, in order.
    pub chunks: Vec<PrecomputedChunk>,
}
