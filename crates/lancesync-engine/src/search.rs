//! Search over a user's chunks: vector, full-text (BM25) and hybrid (reciprocal-rank fusion).

use arrow_array::RecordBatch;
use futures::TryStreamExt;
use lancedb::DistanceType;
use lancedb::index::scalar::FullTextSearchQuery;
use lancedb::query::{ExecutableQuery, QueryBase, QueryExecutionOptions, Select};
use lancesync_ingest::{DocType, Embedder};
use serde::{Deserialize, Serialize};

use crate::ids::{sql_string, validate_source_id};
use crate::rows::Columns;
use crate::tables::UserTables;
use crate::{Error, Result};

/// The largest `limit` a search accepts.
pub const MAX_LIMIT: usize = 1000;

/// How to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// Nearest vectors (cosine).
    Vector,
    /// Full-text BM25.
    FullText,
    /// Both, fused by reciprocal rank.
    #[default]
    Hybrid,
}

/// A search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchRequest {
    /// What to look for.
    pub query: String,
    /// How.
    #[serde(default)]
    pub mode: SearchMode,
    /// Most results, 1 to [`MAX_LIMIT`].
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Only this source.
    #[serde(default)]
    pub source_id: Option<String>,
    /// Only this document type.
    #[serde(default)]
    pub doc_type: Option<DocType>,
}

fn default_limit() -> usize {
    10
}

impl SearchRequest {
    /// A hybrid search for `query` with 10 results.
    pub fn new(query: impl Into<String>) -> Self {
        Self {
            query: query.into(),
            mode: SearchMode::Hybrid,
            limit: 10,
            source_id: None,
            doc_type: None,
        }
    }

    /// Check the request without running it: a non-empty query, a limit in range, a valid
    /// source id.
    pub fn validate(&self) -> Result<()> {
        if self.query.trim().is_empty() {
            return Err(Error::InvalidRequest("the search query is empty".into()));
        }
        if !(1..=MAX_LIMIT).contains(&self.limit) {
            return Err(Error::InvalidRequest(format!(
                "limit must be 1 to {MAX_LIMIT}, not {}",
                self.limit
            )));
        }
        if let Some(source) = &self.source_id {
            validate_source_id(source)?;
        }
        Ok(())
    }
}

/// One matching chunk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    /// Document id.
    pub doc_id: String,
    /// Source id.
    pub source_id: String,
    /// Where the document is.
    pub source_uri: String,
    /// Document title.
    pub title: String,
    /// Document type.
    pub doc_type: String,
    /// The chunk's position in the document.
    pub chunk_index: i32,
    /// The chunk's text.
    pub chunk_text: String,
    /// Higher is better: cosine similarity (vector), BM25 (full text), fused relevance (hybrid).
    pub score: f32,
}

/// Candidates per requested hit that an indexed vector search re-ranks by exact distance.
///
/// The vector index's 8-bit scalar codes rank approximately: on the search benchmark's table
/// (102,882 chunks, the static model) recall@10 against exact search was 0.97 without
/// re-ranking and 1.00 re-ranking five times the requested hits by their stored vectors
/// (`scripts/vector-recall.py`, docs/benchmarks.md). Without an index the search is exact and
/// this does nothing.
const REFINE_FACTOR: u32 = 5;

const COLUMNS: [&str; 7] = [
    "doc_id",
    "source_id",
    "source_uri",
    "title",
    "doc_type",
    "chunk_index",
    "chunk_text",
];

pub(crate) async fn search(
    tables: &UserTables,
    embedder: &dyn Embedder,
    req: &SearchRequest,
) -> Result<Vec<SearchHit>> {
    req.validate()?;
    let mut filters = Vec::new();
    if let Some(source) = &req.source_id {
        filters.push(format!("source_id = {}", sql_string(source)));
    }
    if let Some(doc_type) = req.doc_type {
        filters.push(format!("doc_type = {}", sql_string(doc_type.as_str())));
    }
    let filter = (!filters.is_empty()).then(|| filters.join(" AND "));
    // An empty table has no full-text index to search; once the index is known, the
    // question (one more version check per search) is skipped.
    if !tables.fts_known() && tables.chunks.count_rows(None).await? == 0 {
        return Ok(Vec::new());
    }
    let vector = || async {
        let mut v = embedder.embed(std::slice::from_ref(&req.query)).await?;
        Ok::<_, Error>(v.pop().unwrap_or_default())
    };
    let select = Select::columns(&COLUMNS);
    // Vector searches name their distance column, as lance will require.
    let mut with_distance = COLUMNS.to_vec();
    with_distance.push("_distance");
    let select_distance = Select::columns(&with_distance);
    let (batches, score_column): (Vec<RecordBatch>, &str) = match req.mode {
        SearchMode::Vector => {
            let mut q = tables
                .chunks
                .vector_search(vector().await?)?
                .distance_type(DistanceType::Cosine)
                .refine_factor(REFINE_FACTOR)
                .limit(req.limit)
                .select(select_distance);
            if let Some(f) = &filter {
                q = q.only_if(f);
            }
            (q.execute().await?.try_collect().await?, "_distance")
        }
        SearchMode::FullText => {
            tables.ensure_fts_index().await?;
            let mut q = tables
                .chunks
                .query()
                .full_text_search(FullTextSearchQuery::new(req.query.clone()))
                .limit(req.limit)
                .select(select);
            if let Some(f) = &filter {
                q = q.only_if(f);
            }
            (q.execute().await?.try_collect().await?, "_score")
        }
        SearchMode::Hybrid => {
            tables.ensure_fts_index().await?;
            let mut q = tables
                .chunks
                .query()
                .full_text_search(FullTextSearchQuery::new(req.query.clone()))
                .nearest_to(vector().await?)?
                .distance_type(DistanceType::Cosine)
                .refine_factor(REFINE_FACTOR)
                .limit(req.limit)
                .select(select);
            if let Some(f) = &filter {
                q = q.only_if(f);
            }
            (
                q.execute_hybrid(QueryExecutionOptions::default())
                    .await?
                    .try_collect()
                    .await?,
                "_relevance_score",
            )
        }
    };
    let mut hits = Vec::new();
    // An empty result may come as a batch without the selected columns.
    for b in batches.iter().filter(|b| b.num_rows() > 0) {
        let c = Columns(b);
        let scores = c.f32(score_column)?;
        let (doc_id, source_id, uri, title) = (
            c.str("doc_id")?,
            c.str("source_id")?,
            c.str("source_uri")?,
            c.str("title")?,
        );
        let (doc_type, index, text) = (
            c.str("doc_type")?,
            c.i32("chunk_index")?,
            c.str("chunk_text")?,
        );
        for i in 0..b.num_rows() {
            let raw = scores.value(i);
            hits.push(SearchHit {
                doc_id: doc_id.value(i).into(),
                source_id: source_id.value(i).into(),
                source_uri: uri.value(i).into(),
                title: title.value(i).into(),
                doc_type: doc_type.value(i).into(),
                chunk_index: index.value(i),
                chunk_text: text.value(i).into(),
                score: if score_column == "_distance" {
                    1.0 - raw
                } else {
                    raw
                },
            });
        }
    }
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));
    hits.truncate(req.limit);
    Ok(hits)
}
