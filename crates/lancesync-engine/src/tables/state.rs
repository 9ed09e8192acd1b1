//! Reading what change detection, views and status need, without one object per row where a
//! rescan compares thousands.

use arrow_array::{Array, Int32Array, Int64Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use lancedb::query::{ExecutableQuery, QueryBase, Select};

use super::{UserTables, query};
use crate::Result;
use crate::ids::{sql_in, sql_string};
use crate::rows::{self, ChunkRow, Columns, DocRow};

use super::IDS_PER_STATEMENT;

/// The listing state of one document, as read from `processed_documents`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocState {
    /// Id.
    pub doc_id: String,
    /// Where it is.
    pub source_uri: String,
    /// Size when last synced.
    pub size: i64,
    /// Modification time when last synced.
    pub modified: i64,
    /// Content hash when last synced.
    pub checksum: String,
    /// `completed` or `failed`.
    pub status: String,
    /// Failed attempts for this content.
    pub attempts: i32,
    /// RFC 3339 time of the last sync.
    pub last_synced: String,
    /// RFC 3339 time of the first ingest.
    pub ingested_at: String,
    /// Chunks indexed for it.
    pub total_chunks: i32,
}

/// Where one document is in a [`SourceDocs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocPos {
    part: u32,
    row: u32,
}

/// The stored documents of one source, as read: columns, not one object per document. A
/// rescan of 100,000 unchanged files compares the listing against these directly and builds
/// a [`DocState`] only for a document that needs work, which keeps a rescan's time and memory
/// close to the listing's own.
#[derive(Debug, Default)]
pub struct SourceDocs {
    parts: Vec<StateColumns>,
}

#[derive(Debug)]
struct StateColumns {
    doc_id: StringArray,
    source_uri: StringArray,
    size: Int64Array,
    modified: Int64Array,
    checksum: StringArray,
    status: StringArray,
    attempts: Int32Array,
    last_synced: StringArray,
    ingested_at: StringArray,
    source_version: StringArray,
    total_chunks: Int32Array,
}

impl StateColumns {
    fn new(batch: &RecordBatch) -> Result<Self> {
        let c = Columns(batch);
        Ok(Self {
            doc_id: c.str("doc_id")?.clone(),
            source_uri: c.str("source_uri")?.clone(),
            size: c.i64("size")?.clone(),
            modified: c.i64("modified")?.clone(),
            checksum: c.str("checksum")?.clone(),
            status: c.str("processing_status")?.clone(),
            attempts: c.i32("attempts")?.clone(),
            last_synced: c.str("last_synced")?.clone(),
            ingested_at: c.str("ingested_at")?.clone(),
            source_version: c.str("source_version")?.clone(),
            total_chunks: c.i32("total_chunks")?.clone(),
        })
    }
}

impl SourceDocs {
    const COLUMNS: [&str; 11] = [
        "doc_id",
        "source_uri",
        "size",
        "modified",
        "checksum",
        "processing_status",
        "attempts",
        "last_synced",
        "ingested_at",
        "source_version",
        "total_chunks",
    ];

    /// The state in batches of `processed_documents` rows (at least [`Self::COLUMNS`]).
    pub(crate) fn from_batches(batches: &[RecordBatch]) -> Result<Self> {
        let parts = batches
            .iter()
            .filter(|b| b.num_rows() > 0)
            .map(StateColumns::new)
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { parts })
    }

    /// How many documents.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.doc_id.len()).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every document's position.
    pub fn positions(&self) -> impl Iterator<Item = DocPos> + '_ {
        self.parts.iter().enumerate().flat_map(|(part, p)| {
            (0..p.doc_id.len()).map(move |row| DocPos {
                part: part as u32,
                row: row as u32,
            })
        })
    }

    fn part(&self, pos: DocPos) -> (&StateColumns, usize) {
        (&self.parts[pos.part as usize], pos.row as usize)
    }

    /// The document's id.
    pub fn doc_id(&self, pos: DocPos) -> &str {
        let (p, i) = self.part(pos);
        p.doc_id.value(i)
    }

    /// Where the document is.
    pub fn source_uri(&self, pos: DocPos) -> &str {
        let (p, i) = self.part(pos);
        p.source_uri.value(i)
    }

    /// Size and modification time when last synced.
    pub fn stat(&self, pos: DocPos) -> (i64, i64) {
        let (p, i) = self.part(pos);
        (p.size.value(i), p.modified.value(i))
    }

    /// The source's version marker (ETag, revision) when last synced.
    pub fn version(&self, pos: DocPos) -> Option<&str> {
        let (p, i) = self.part(pos);
        (!p.source_version.is_null(i)).then(|| p.source_version.value(i))
    }

    /// `completed` or `failed`.
    pub fn status(&self, pos: DocPos) -> &str {
        let (p, i) = self.part(pos);
        p.status.value(i)
    }

    /// The whole state of one document.
    pub fn state(&self, pos: DocPos) -> DocState {
        let (p, i) = self.part(pos);
        DocState {
            doc_id: p.doc_id.value(i).into(),
            source_uri: p.source_uri.value(i).into(),
            size: p.size.value(i),
            modified: p.modified.value(i),
            checksum: p.checksum.value(i).into(),
            status: p.status.value(i).into(),
            attempts: p.attempts.value(i),
            last_synced: p.last_synced.value(i).into(),
            ingested_at: p.ingested_at.value(i).into(),
            total_chunks: p.total_chunks.value(i),
        }
    }

    /// Chunks indexed for the document.
    pub fn total_chunks(&self, pos: DocPos) -> i32 {
        let (p, i) = self.part(pos);
        p.total_chunks.value(i)
    }
}

impl UserTables {
    /// Every document of a source: what change detection needs, nothing more, kept in the
    /// columns it was read in.
    pub async fn source_docs(&self, source_id: &str) -> Result<SourceDocs> {
        let batches = query(
            &self.docs,
            Some(format!("source_id = {}", sql_string(source_id))),
            &SourceDocs::COLUMNS,
        )
        .await?;
        SourceDocs::from_batches(&batches)
    }

    /// Full document rows by id.
    pub async fn fetch_docs(&self, ids: &[String]) -> Result<Vec<DocRow>> {
        let mut out = Vec::new();
        for slice in ids.chunks(IDS_PER_STATEMENT) {
            for b in query(&self.docs, Some(sql_in("doc_id", slice)), &[]).await? {
                out.extend(rows::docs_from_batch(&b)?);
            }
        }
        Ok(out)
    }

    /// Documents matching a filter (already escaped by the caller).
    pub async fn docs_where(&self, filter: Option<String>) -> Result<Vec<DocRow>> {
        let mut out = Vec::new();
        for b in query(&self.docs, filter, &[]).await? {
            out.extend(rows::docs_from_batch(&b)?);
        }
        Ok(out)
    }

    /// Documents matching a filter (already escaped by the caller), without their vectors.
    pub async fn docs_where_without_vectors(&self, filter: Option<String>) -> Result<Vec<DocRow>> {
        let columns: Vec<String> = rows::doc_schema(self.dim)
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| n != "vector")
            .collect();
        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
        let mut out = Vec::new();
        for b in query(&self.docs, filter, &columns).await? {
            out.extend(rows::docs_from_batch(&b)?);
        }
        Ok(out)
    }

    /// Full chunk rows of these documents.
    pub async fn fetch_chunks(&self, doc_ids: &[String]) -> Result<Vec<ChunkRow>> {
        let mut out = Vec::new();
        for slice in doc_ids.chunks(IDS_PER_STATEMENT) {
            for b in query(&self.chunks, Some(sql_in("doc_id", slice)), &[]).await? {
                out.extend(rows::chunks_from_batch(&b)?);
            }
        }
        out.sort_by(|a, b| (&a.doc_id, a.chunk_index).cmp(&(&b.doc_id, b.chunk_index)));
        Ok(out)
    }

    /// Chunks of `source_id` whose document row does not exist (left by a crash between the
    /// chunk write and the document write of a file that has since gone).
    pub async fn orphan_chunk_docs(&self, source_id: &str) -> Result<Vec<String>> {
        self.orphan_chunk_docs_where(Some(format!("source_id = {}", sql_string(source_id))))
            .await
    }

    /// The documents of every source that have chunks but no row.
    pub async fn orphan_chunk_docs_of_all(&self) -> Result<Vec<String>> {
        self.orphan_chunk_docs_where(None).await
    }

    async fn orphan_chunk_docs_where(&self, filter: Option<String>) -> Result<Vec<String>> {
        let mut chunk_docs = std::collections::BTreeSet::new();
        for b in query(&self.chunks, filter.clone(), &["doc_id"]).await? {
            let ids = Columns(&b).str("doc_id")?;
            chunk_docs.extend((0..b.num_rows()).map(|i| ids.value(i).to_string()));
        }
        for b in query(&self.docs, filter, &["doc_id"]).await? {
            let ids = Columns(&b).str("doc_id")?;
            for i in 0..b.num_rows() {
                chunk_docs.remove(ids.value(i));
            }
        }
        Ok(chunk_docs.into_iter().collect())
    }

    /// The texts of up to `limit` of a source's chunks, in storage order: a sample for
    /// estimating what its chunks cost to embed.
    pub async fn sample_chunk_texts(&self, source_id: &str, limit: usize) -> Result<Vec<String>> {
        let batches: Vec<RecordBatch> = self
            .chunks
            .query()
            .only_if(format!("source_id = {}", sql_string(source_id)))
            .select(Select::columns(&["chunk_text"]))
            .limit(limit)
            .execute()
            .await?
            .try_collect()
            .await?;
        let mut out = Vec::new();
        for b in &batches {
            let texts = Columns(b).str("chunk_text")?;
            out.extend((0..b.num_rows()).map(|i| texts.value(i).to_string()));
        }
        Ok(out)
    }

    /// `(source_id, processing_status, attempts)` of every document: what a status needs,
    /// without reading vectors.
    pub async fn doc_summaries(&self) -> Result<Vec<(String, String, i32)>> {
        let mut out = Vec::new();
        for b in query(
            &self.docs,
            None,
            &["source_id", "processing_status", "attempts"],
        )
        .await?
        {
            let c = Columns(&b);
            let (source, status, attempts) = (
                c.str("source_id")?,
                c.str("processing_status")?,
                c.i32("attempts")?,
            );
            out.extend((0..b.num_rows()).map(|i| {
                (
                    source.value(i).to_string(),
                    status.value(i).to_string(),
                    attempts.value(i),
                )
            }));
        }
        Ok(out)
    }
}
