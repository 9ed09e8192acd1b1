//! The two tables' rows and their Arrow form. Column names follow the original system so its
//! readers keep working; chunks also carry `source_uri`, `title` and `doc_type` so search results
//! and filters need no join.

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::{Error, Result};

/// Status of a document row.
pub const STATUS_OK: &str = "completed";
/// Status of a document that could not be processed.
pub const STATUS_FAILED: &str = "failed";

/// One row of `processed_documents`.
#[derive(Debug, Clone, PartialEq)]
pub struct DocRow {
    /// Deterministic id: see [`crate::ids::doc_id`].
    pub doc_id: String,
    /// Owner.
    pub user_id: String,
    /// Source type, e.g. `local_filesystem`.
    pub source_type: String,
    /// Source id.
    pub source_id: String,
    /// Where the document is.
    pub source_uri: String,
    /// `pdf`, `docx`, `html`, `md`, `txt`, or the extension of an unsupported file.
    pub doc_type: String,
    /// Title (from the document, else the file name).
    pub title: String,
    /// Extraction metadata and warnings, as JSON.
    pub metadata_json: String,
    /// When first ingested (RFC 3339).
    pub ingested_at: String,
    /// When last seen by a sync (RFC 3339).
    pub last_synced: String,
    /// [`STATUS_OK`] or [`STATUS_FAILED`].
    pub processing_status: String,
    /// Why processing failed.
    pub error_message: Option<String>,
    /// Failed attempts for the current content.
    pub attempts: i32,
    /// Number of chunks.
    pub total_chunks: i32,
    /// BLAKE3 of the content, hex.
    pub checksum: String,
    /// Size in bytes.
    pub size: i64,
    /// Modification time, ms since the epoch.
    pub modified: i64,
    /// Remote version marker.
    pub source_version: Option<String>,
    /// Document vector: the normalised mean of its chunk vectors.
    pub vector: Vec<f32>,
}

/// One row of `document_chunks`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRow {
    /// `{doc_id}:{index}`.
    pub chunk_id: String,
    /// The document.
    pub doc_id: String,
    /// Owner.
    pub user_id: String,
    /// Source id.
    pub source_id: String,
    /// Where the document is.
    pub source_uri: String,
    /// Document title.
    pub title: String,
    /// Document type.
    pub doc_type: String,
    /// Position in the document.
    pub chunk_index: i32,
    /// The text.
    pub chunk_text: String,
    /// Page numbers and offsets, as JSON.
    pub metadata: String,
    /// When written (RFC 3339).
    pub created_at: String,
    /// BLAKE3 of `chunk_text`, hex.
    pub checksum: String,
    /// The embedding.
    pub vector: Vec<f32>,
}

fn vector_field(dim: usize) -> Field {
    Field::new(
        "vector",
        DataType::FixedSizeList(
            Arc::new(Field::new("item", DataType::Float32, true)),
            dim as i32,
        ),
        false,
    )
}

/// Schema of `processed_documents` for vectors of `dim`.
pub fn doc_schema(dim: usize) -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, false);
    let o = |n: &str| Field::new(n, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        s("doc_id"),
        s("user_id"),
        s("source_type"),
        s("source_id"),
        s("source_uri"),
        s("doc_type"),
        s("title"),
        s("metadata_json"),
        s("ingested_at"),
        s("last_synced"),
        s("processing_status"),
        o("error_message"),
        Field::new("attempts", DataType::Int32, false),
        Field::new("total_chunks", DataType::Int32, false),
        s("checksum"),
        Field::new("size", DataType::Int64, false),
        Field::new("modified", DataType::Int64, false),
        o("source_version"),
        vector_field(dim),
    ]))
}

/// Schema of `document_chunks` for vectors of `dim`.
pub fn chunk_schema(dim: usize) -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        s("chunk_id"),
        s("doc_id"),
        s("user_id"),
        s("source_id"),
        s("source_uri"),
        s("title"),
        s("doc_type"),
        Field::new("chunk_index", DataType::Int32, false),
        s("chunk_text"),
        s("metadata"),
        s("created_at"),
        s("checksum"),
        vector_field(dim),
    ]))
}

fn strings<'a>(it: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(it))
}

fn opt_strings<'a>(it: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(it))
}

fn vectors<'a>(dim: usize, it: impl Iterator<Item = &'a Vec<f32>>) -> Result<ArrayRef> {
    let mut flat = Vec::new();
    for v in it {
        if v.len() != dim {
            return Err(Error::Internal(format!(
                "vector of length {} where {dim} is expected",
                v.len()
            )));
        }
        flat.extend_from_slice(v);
    }
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let list =
        FixedSizeListArray::try_new(item, dim as i32, Arc::new(Float32Array::from(flat)), None)?;
    Ok(Arc::new(list))
}

/// Documents as a record batch.
pub fn docs_to_batch(rows: &[DocRow], dim: usize) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        strings(rows.iter().map(|r| r.doc_id.as_str())),
        strings(rows.iter().map(|r| r.user_id.as_str())),
        strings(rows.iter().map(|r| r.source_type.as_str())),
        strings(rows.iter().map(|r| r.source_id.as_str())),
        strings(rows.iter().map(|r| r.source_uri.as_str())),
        strings(rows.iter().map(|r| r.doc_type.as_str())),
        strings(rows.iter().map(|r| r.title.as_str())),
        strings(rows.iter().map(|r| r.metadata_json.as_str())),
        strings(rows.iter().map(|r| r.ingested_at.as_str())),
        strings(rows.iter().map(|r| r.last_synced.as_str())),
        strings(rows.iter().map(|r| r.processing_status.as_str())),
        opt_strings(rows.iter().map(|r| r.error_message.as_deref())),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.attempts),
        )),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.total_chunks),
        )),
        strings(rows.iter().map(|r| r.checksum.as_str())),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.size))),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.modified),
        )),
        opt_strings(rows.iter().map(|r| r.source_version.as_deref())),
        vectors(dim, rows.iter().map(|r| &r.vector))?,
    ];
    Ok(RecordBatch::try_new(doc_schema(dim), columns)?)
}

/// Chunks as a record batch.
pub fn chunks_to_batch(rows: &[ChunkRow], dim: usize) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        strings(rows.iter().map(|r| r.chunk_id.as_str())),
        strings(rows.iter().map(|r| r.doc_id.as_str())),
        strings(rows.iter().map(|r| r.user_id.as_str())),
        strings(rows.iter().map(|r| r.source_id.as_str())),
        strings(rows.iter().map(|r| r.source_uri.as_str())),
        strings(rows.iter().map(|r| r.title.as_str())),
        strings(rows.iter().map(|r| r.doc_type.as_str())),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.chunk_index),
        )),
        strings(rows.iter().map(|r| r.chunk_text.as_str())),
        strings(rows.iter().map(|r| r.metadata.as_str())),
        strings(rows.iter().map(|r| r.created_at.as_str())),
        strings(rows.iter().map(|r| r.checksum.as_str())),
        vectors(dim, rows.iter().map(|r| &r.vector))?,
    ];
    Ok(RecordBatch::try_new(chunk_schema(dim), columns)?)
}

/// Typed access to a batch's columns by name.
pub(crate) struct Columns<'a>(pub &'a RecordBatch);

impl<'a> Columns<'a> {
    fn column(&self, name: &str) -> Result<&'a ArrayRef> {
        self.0
            .column_by_name(name)
            .ok_or_else(|| Error::Internal(format!("column {name} missing from query result")))
    }

    pub fn str(&self, name: &str) -> Result<&'a StringArray> {
        self.column(name)?
            .as_any()
            .downcast_ref()
            .ok_or_else(|| Error::Internal(format!("column {name} is not text")))
    }

    pub fn i32(&self, name: &str) -> Result<&'a Int32Array> {
        self.column(name)?
            .as_any()
            .downcast_ref()
            .ok_or_else(|| Error::Internal(format!("column {name} is not int32")))
    }

    pub fn i64(&self, name: &str) -> Result<&'a Int64Array> {
        self.column(name)?
            .as_any()
            .downcast_ref()
            .ok_or_else(|| Error::Internal(format!("column {name} is not int64")))
    }

    pub fn f32(&self, name: &str) -> Result<&'a Float32Array> {
        self.column(name)?
            .as_any()
            .downcast_ref()
            .ok_or_else(|| Error::Internal(format!("column {name} is not float32")))
    }

    pub fn vectors(&self, name: &str) -> Result<Vec<Vec<f32>>> {
        let list: &FixedSizeListArray = self
            .column(name)?
            .as_any()
            .downcast_ref()
            .ok_or_else(|| Error::Internal(format!("column {name} is not a vector")))?;
        let values = list
            .values()
            .as_any()
            .downcast_ref::<Float32Array>()
            .ok_or_else(|| Error::Internal("vector items are not float32".into()))?;
        let dim = list.value_length() as usize;
        Ok((0..list.len())
            .map(|i| values.values()[i * dim..(i + 1) * dim].to_vec())
            .collect())
    }
}

fn opt(a: &StringArray, i: usize) -> Option<String> {
    (!a.is_null(i)).then(|| a.value(i).to_string())
}

/// The `vector` column, or empty vectors when the query left it out (listing documents
/// without reading 1.5 KB per row).
fn vectors_if_present(batch: &RecordBatch) -> Result<Vec<Vec<f32>>> {
    if batch.schema().column_with_name("vector").is_some() {
        Columns(batch).vectors("vector")
    } else {
        Ok(vec![Vec::new(); batch.num_rows()])
    }
}

/// Documents from a batch holding every column (the vector may be left out).
pub fn docs_from_batch(batch: &RecordBatch) -> Result<Vec<DocRow>> {
    let c = Columns(batch);
    let (doc_id, user_id, source_type, source_id) = (
        c.str("doc_id")?,
        c.str("user_id")?,
        c.str("source_type")?,
        c.str("source_id")?,
    );
    let (source_uri, doc_type, title, metadata_json) = (
        c.str("source_uri")?,
        c.str("doc_type")?,
        c.str("title")?,
        c.str("metadata_json")?,
    );
    let (ingested_at, last_synced, status, error) = (
        c.str("ingested_at")?,
        c.str("last_synced")?,
        c.str("processing_status")?,
        c.str("error_message")?,
    );
    let (attempts, total_chunks, checksum) = (
        c.i32("attempts")?,
        c.i32("total_chunks")?,
        c.str("checksum")?,
    );
    let (size, modified, version, vectors) = (
        c.i64("size")?,
        c.i64("modified")?,
        c.str("source_version")?,
        vectors_if_present(batch)?,
    );
    Ok((0..batch.num_rows())
        .zip(vectors)
        .map(|(i, vector)| DocRow {
            doc_id: doc_id.value(i).into(),
            user_id: user_id.value(i).into(),
            source_type: source_type.value(i).into(),
            source_id: source_id.value(i).into(),
            source_uri: source_uri.value(i).into(),
            doc_type: doc_type.value(i).into(),
            title: title.value(i).into(),
            metadata_json: metadata_json.value(i).into(),
            ingested_at: ingested_at.value(i).into(),
            last_synced: last_synced.value(i).into(),
            processing_status: status.value(i).into(),
            error_message: opt(error, i),
            attempts: attempts.value(i),
            total_chunks: total_chunks.value(i),
            checksum: checksum.value(i).into(),
            size: size.value(i),
            modified: modified.value(i),
            source_version: opt(version, i),
            vector,
        })
        .collect())
}

/// Chunks from a batch holding every column (the vector may be left out).
pub fn chunks_from_batch(batch: &RecordBatch) -> Result<Vec<ChunkRow>> {
    let c = Columns(batch);
    let (chunk_id, doc_id, user_id, source_id) = (
        c.str("chunk_id")?,
        c.str("doc_id")?,
        c.str("user_id")?,
        c.str("source_id")?,
    );
    let (source_uri, title, doc_type, index) = (
        c.str("source_uri")?,
        c.str("title")?,
        c.str("doc_type")?,
        c.i32("chunk_index")?,
    );
    let (text, metadata, created_at, checksum, vectors) = (
        c.str("chunk_text")?,
        c.str("metadata")?,
        c.str("created_at")?,
        c.str("checksum")?,
        vectors_if_present(batch)?,
    );
    Ok((0..batch.num_rows())
        .zip(vectors)
        .map(|(i, vector)| ChunkRow {
            chunk_id: chunk_id.value(i).into(),
            doc_id: doc_id.value(i).into(),
            user_id: user_id.value(i).into(),
            source_id: source_id.value(i).into(),
            source_uri: source_uri.value(i).into(),
            title: title.value(i).into(),
            doc_type: doc_type.value(i).into(),
            chunk_index: index.value(i),
            chunk_text: text.value(i).into(),
            metadata: metadata.value(i).into(),
            created_at: created_at.value(i).into(),
            checksum: checksum.value(i).into(),
            vector,
        })
        .collect())
}
