//! Search over a user's chunks: vector, full-text (BM25) and hybrid (a weighted sum of the
//! two, each on a 0-1 scale).
//!
//! Every hit's `score` is on a 0-1 scale, higher is better:
//! - vector: the cosine similarity of the query's and the chunk's vectors (below 0 shown as 0);
//! - full text: the chunk's BM25 score divided by the best BM25 score of the query's hits, so
//!   the best match scores 1;
//! - hybrid: `w * vector + (1 - w) * full text`, both as above, a half the chunk is not among
//!   the candidates of counting 0; `w` is [`SearchRequest::vector_weight`] or the default for
//!   the embedder ([`default_vector_weight`]). When the question has three or more terms (as
//!   the full-text index sees them: stemmed, stop words dropped) and no full-text hit holds two
//!   of them, full text has no evidence to give (a question in other words that shares one
//!   stray word with some document) and the hit's score is its vector score alone.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use arrow_array::{Int32Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use lancedb::DistanceType;
use lancedb::index::scalar::FullTextSearchQuery;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancesync_ingest::{DocType, Embedder, EmbedderIdentity};
use lancesync_memindex::{Filter, Layered, RowView, terms};
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
    /// Both, fused by a weighted sum of their 0-1 scores.
    #[default]
    Hybrid,
}

/// A search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Hybrid only: the vector half's share of the fused score, 0 to 1 (0 ranks by full text
    /// alone, 1 by vectors alone); `None` takes the engine's default for its embedder.
    #[serde(default)]
    pub vector_weight: Option<f32>,
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
            vector_weight: None,
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
        if let Some(w) = self.vector_weight {
            if self.mode != SearchMode::Hybrid {
                return Err(Error::InvalidRequest(
                    "vector_weight applies to hybrid searches only".into(),
                ));
            }
            if !(0.0..=1.0).contains(&w) {
                return Err(Error::InvalidRequest(format!(
                    "vector_weight must be 0 to 1, not {w}"
                )));
            }
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
    /// 0 to 1, higher is better: cosine similarity (vector), BM25 relative to the query's best
    /// hit (full text), their weighted sum (hybrid); see the module's documentation.
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

/// Candidates each half of a hybrid search brings to the fusion, when the search asks for
/// fewer hits. A chunk only one half found counts 0 for the other; deeper lists make that rarer
/// but cost time: on SciFact (docs/benchmarks.md, the static model) 30, 50 and 100 gave
/// nDCG@10 0.668, 0.673 and 0.671 at p50 10.1, 10.7 and 16.6 ms; its train queries scored 50
/// and 100 within 0.001 of each other.
const HYBRID_CANDIDATES: usize = 50;

/// The vector half's default share of a hybrid search's score for an embedder: how much its
/// similarities can add to BM25. Chosen on SciFact's train queries (docs/benchmarks.md),
/// never on the queries the figures are reported for: the best weight (local), or within the
/// plateau of weights within 0.002 nDCG@10 of the best (static: its middle; builtin, whose
/// plateau runs from 0 to 0.2: its low end).
pub fn default_vector_weight(embedder: &EmbedderIdentity) -> f32 {
    match embedder.name.as_str() {
        // Feature hashing matches words, as BM25 does, only worse: a tie-breaker.
        "builtin" => 0.05,
        "static" => 0.15,
        // Sentence-embedding models: the local transformer and OpenAI-compatible servers.
        _ => 0.6,
    }
}

/// The columns a hit shows.
pub(crate) const COLUMNS: [&str; 7] = [
    "doc_id",
    "source_id",
    "source_uri",
    "title",
    "doc_type",
    "chunk_index",
    "chunk_text",
];

/// Searches `tables`, from `resident` when it is the index of the version about to be read
/// (the same hits, found in memory), else through LanceDB.
pub(crate) async fn search(
    tables: &UserTables,
    resident: Option<&Layered>,
    embedder: &dyn Embedder,
    default_weight: Option<f32>,
    req: &SearchRequest,
) -> Result<Vec<SearchHit>> {
    req.validate()?;
    if let Some(index) = resident {
        return search_in_memory(index, embedder, default_weight, req).await;
    }
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
    let filter = filter.as_deref();
    let hits = match req.mode {
        SearchMode::Vector => {
            let v = query_vector(embedder, &req.query).await?;
            vector_hits(tables, v, filter, req.limit).await?
        }
        SearchMode::FullText => {
            relative_bm25(text_hits(tables, &req.query, filter, req.limit).await?)
        }
        SearchMode::Hybrid => {
            let weight = hybrid_weight(req, embedder, default_weight);
            let depth = req.limit.max(HYBRID_CANDIDATES);
            let vectors = async {
                let v = query_vector(embedder, &req.query).await?;
                vector_hits(tables, v, filter, depth).await
            };
            let (vectors, texts) =
                futures::try_join!(vectors, text_hits(tables, &req.query, filter, depth))?;
            let evidence = full_text_has_evidence(&req.query, &texts);
            fuse_halves(vectors, texts, evidence, weight, req.limit)
        }
    };
    Ok(hits)
}

/// The same search as [`search`]'s, over an in-memory index.
async fn search_in_memory(
    index: &Layered,
    embedder: &dyn Embedder,
    default_weight: Option<f32>,
    req: &SearchRequest,
) -> Result<Vec<SearchHit>> {
    let filter = Filter {
        source_id: req.source_id.as_deref(),
        doc_type: req.doc_type.map(|t| t.as_str()),
    };
    let vector_half = |v: &[f32], limit: usize| -> Vec<SearchHit> {
        index
            .nearest(v, limit, &filter)
            .into_iter()
            .map(|m| memory_hit(index, m.row, m.score.clamp(0.0, 1.0)))
            .collect()
    };
    // The text half's hits, and the most of the query's terms any of them holds.
    let text_half = |limit: usize| {
        let found = index.bm25(&req.query, limit, &filter);
        let most_terms = found.iter().map(|m| m.matched_terms).max().unwrap_or(0);
        let hits = found
            .into_iter()
            .map(|m| memory_hit(index, m.row, m.score))
            .collect::<Vec<_>>();
        (hits, most_terms)
    };
    Ok(match req.mode {
        SearchMode::Vector => vector_half(&query_vector(embedder, &req.query).await?, req.limit),
        SearchMode::FullText => relative_bm25(text_half(req.limit).0),
        SearchMode::Hybrid => {
            let weight = hybrid_weight(req, embedder, default_weight);
            let depth = req.limit.max(HYBRID_CANDIDATES);
            let vectors = vector_half(&query_vector(embedder, &req.query).await?, depth);
            let (texts, most_terms) = text_half(depth);
            let evidence = terms(&req.query).len() < EVIDENCE_TERMS || most_terms >= 2;
            fuse_halves(vectors, texts, evidence, weight, req.limit)
        }
    })
}

fn memory_hit(index: &Layered, row: u32, score: f32) -> SearchHit {
    hit(index.row(row), score)
}

/// A hit of `row` scored `score`.
fn hit(row: RowView<'_>, score: f32) -> SearchHit {
    SearchHit {
        doc_id: row.doc_id.into(),
        source_id: row.source_id.into(),
        source_uri: row.source_uri.into(),
        title: row.title.into(),
        doc_type: row.doc_type.into(),
        chunk_index: row.chunk_index,
        chunk_text: row.chunk_text.into(),
        score,
    }
}

/// A batch's [`COLUMNS`], typed.
pub(crate) struct HitColumns<'a> {
    doc_id: &'a StringArray,
    source_id: &'a StringArray,
    source_uri: &'a StringArray,
    title: &'a StringArray,
    doc_type: &'a StringArray,
    chunk_index: &'a Int32Array,
    chunk_text: &'a StringArray,
}

impl<'a> HitColumns<'a> {
    /// The columns of `batch` (an error names one it lacks).
    pub(crate) fn of(batch: &'a RecordBatch) -> Result<Self> {
        let c = Columns(batch);
        Ok(Self {
            doc_id: c.str("doc_id")?,
            source_id: c.str("source_id")?,
            source_uri: c.str("source_uri")?,
            title: c.str("title")?,
            doc_type: c.str("doc_type")?,
            chunk_index: c.i32("chunk_index")?,
            chunk_text: c.str("chunk_text")?,
        })
    }

    /// Row `i`.
    pub(crate) fn row(&self, i: usize) -> RowView<'a> {
        RowView {
            doc_id: self.doc_id.value(i),
            source_id: self.source_id.value(i),
            source_uri: self.source_uri.value(i),
            title: self.title.value(i),
            doc_type: self.doc_type.value(i),
            chunk_index: self.chunk_index.value(i),
            chunk_text: self.chunk_text.value(i),
        }
    }
}

fn hybrid_weight(req: &SearchRequest, embedder: &dyn Embedder, default_weight: Option<f32>) -> f32 {
    req.vector_weight
        .or(default_weight)
        .unwrap_or_else(|| default_vector_weight(&embedder.identity()))
}

/// A hybrid search's hits from its two halves: fused when full text has evidence to give,
/// else ranked by the vector half alone.
fn fuse_halves(
    vectors: Vec<SearchHit>,
    texts: Vec<SearchHit>,
    evidence: bool,
    weight: f32,
    limit: usize,
) -> Vec<SearchHit> {
    if evidence {
        fuse(vectors, relative_bm25(texts), weight, limit)
    } else {
        fuse(vectors, Vec::new(), 1.0, limit)
    }
}

async fn query_vector(embedder: &dyn Embedder, query: &str) -> Result<Vec<f32>> {
    let mut v = embedder.embed(&[query.to_string()]).await?;
    Ok(v.pop().unwrap_or_default())
}

/// The `limit` nearest chunks, scored by cosine similarity (below 0 as 0), best first.
async fn vector_hits(
    tables: &UserTables,
    vector: Vec<f32>,
    filter: Option<&str>,
    limit: usize,
) -> Result<Vec<SearchHit>> {
    // Vector searches name their distance column, as lance will require.
    let mut columns = COLUMNS.to_vec();
    columns.push("_distance");
    let mut q = tables
        .chunks
        .vector_search(vector)?
        .distance_type(DistanceType::Cosine)
        .refine_factor(REFINE_FACTOR)
        .limit(limit)
        .select(Select::columns(&columns));
    if let Some(f) = filter {
        q = q.only_if(f);
    }
    let batches: Vec<RecordBatch> = q.execute().await?.try_collect().await?;
    // Cosine distance is 1 - similarity.
    hits(&batches, "_distance", |d| (1.0 - d).clamp(0.0, 1.0), limit)
}

/// The `limit` best BM25 matches, scored by their raw BM25 score, best first.
async fn text_hits(
    tables: &UserTables,
    query: &str,
    filter: Option<&str>,
    limit: usize,
) -> Result<Vec<SearchHit>> {
    tables.ensure_fts_index().await?;
    let mut q = tables
        .chunks
        .query()
        .full_text_search(FullTextSearchQuery::new(query.to_string()))
        .limit(limit)
        .select(Select::columns(&COLUMNS));
    if let Some(f) = filter {
        q = q.only_if(f);
    }
    let batches: Vec<RecordBatch> = q.execute().await?.try_collect().await?;
    hits(&batches, "_score", |s| s, limit)
}

/// A question needs at least this many terms before a hybrid search asks full text for
/// evidence of two of them.
const EVIDENCE_TERMS: usize = 3;

/// Whether full text has evidence for a hybrid search of `query`: a question of fewer than
/// [`EVIDENCE_TERMS`] terms takes any hit, a longer one needs a hit that holds two of its
/// terms. On the public sets of docs/benchmarks.md this changed no ranking (SciFact's train
/// queries: -0.001 nDCG@10), while a question in other words that shares one stray term
/// with some document ("make" in "how do I make a loaf ...") is ranked by meaning.
fn full_text_has_evidence(query: &str, hits: &[SearchHit]) -> bool {
    let asked = terms(query);
    asked.len() < EVIDENCE_TERMS
        || hits
            .iter()
            .any(|hit| terms(&hit.chunk_text).intersection(&asked).nth(1).is_some())
}

/// BM25 scores divided by the best one, so the best hit scores 1.
fn relative_bm25(mut hits: Vec<SearchHit>) -> Vec<SearchHit> {
    let best = hits.iter().map(|h| h.score).fold(0.0_f32, f32::max);
    for h in &mut hits {
        h.score = if best > 0.0 { h.score / best } else { 0.0 };
    }
    hits
}

/// Both halves' hits, each chunk once, scored `weight * vector + (1 - weight) * text`, best
/// first; a half that did not find a chunk counts 0 for it.
fn fuse(
    vectors: Vec<SearchHit>,
    texts: Vec<SearchHit>,
    weight: f32,
    limit: usize,
) -> Vec<SearchHit> {
    let mut fused: HashMap<(String, i32), SearchHit> = HashMap::new();
    for (hits, share) in [(vectors, weight), (texts, 1.0 - weight)] {
        for mut hit in hits {
            let part = share * hit.score;
            match fused.entry((hit.doc_id.clone(), hit.chunk_index)) {
                Entry::Occupied(mut seen) => seen.get_mut().score += part,
                Entry::Vacant(slot) => {
                    hit.score = part;
                    slot.insert(hit);
                }
            }
        }
    }
    let mut hits: Vec<SearchHit> = fused.into_values().collect();
    sort_best_first(&mut hits);
    hits.truncate(limit);
    hits
}

/// Best first; equal scores in a stable order (document, then chunk).
fn sort_best_first(hits: &mut [SearchHit]) {
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.doc_id.cmp(&b.doc_id))
            .then_with(|| a.chunk_index.cmp(&b.chunk_index))
    });
}

/// The hits in `batches`, scored by `score` applied to `score_column`, best first.
fn hits(
    batches: &[RecordBatch],
    score_column: &str,
    score: impl Fn(f32) -> f32,
    limit: usize,
) -> Result<Vec<SearchHit>> {
    let mut hits = Vec::new();
    // An empty result may come as a batch without the selected columns.
    for b in batches.iter().filter(|b| b.num_rows() > 0) {
        let scores = Columns(b).f32(score_column)?;
        let columns = HitColumns::of(b)?;
        for i in 0..b.num_rows() {
            hits.push(hit(columns.row(i), score(scores.value(i))));
        }
    }
    sort_best_first(&mut hits);
    hits.truncate(limit);
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(doc: &str, chunk: i32, score: f32) -> SearchHit {
        SearchHit {
            doc_id: doc.into(),
            source_id: "s".into(),
            source_uri: format!("/{doc}"),
            title: doc.into(),
            doc_type: "txt".into(),
            chunk_index: chunk,
            chunk_text: String::new(),
            score,
        }
    }

    fn order(hits: &[SearchHit]) -> Vec<(&str, i32)> {
        hits.iter()
            .map(|h| (h.doc_id.as_str(), h.chunk_index))
            .collect()
    }

    #[test]
    fn the_fused_score_is_the_weighted_sum_of_both_halves_and_a_missing_half_counts_zero() {
        let vectors = vec![hit("a", 0, 0.9), hit("b", 0, 0.5)];
        let texts = vec![hit("b", 0, 1.0), hit("c", 1, 0.4)];
        let fused = fuse(vectors, texts, 0.25, 10);
        let score = |doc: &str| fused.iter().find(|h| h.doc_id == doc).unwrap().score;
        assert!((score("a") - 0.25 * 0.9).abs() < 1e-6);
        assert!((score("b") - (0.25 * 0.5 + 0.75 * 1.0)).abs() < 1e-6);
        assert!((score("c") - 0.75 * 0.4).abs() < 1e-6);
        assert_eq!(order(&fused), [("b", 0), ("c", 1), ("a", 0)]);
    }

    #[test]
    fn weight_zero_keeps_the_text_order_and_one_the_vector_order() {
        let vectors = || vec![hit("a", 0, 0.9), hit("b", 0, 0.8), hit("c", 0, 0.1)];
        let texts = || vec![hit("c", 0, 1.0), hit("b", 0, 0.6), hit("d", 0, 0.2)];
        let by_text = fuse(vectors(), texts(), 0.0, 3);
        assert_eq!(order(&by_text), [("c", 0), ("b", 0), ("d", 0)]);
        let by_vector = fuse(vectors(), texts(), 1.0, 3);
        assert_eq!(order(&by_vector), [("a", 0), ("b", 0), ("c", 0)]);
    }

    #[test]
    fn the_same_chunk_twice_is_one_hit_and_chunks_of_one_document_stay_apart() {
        let vectors = vec![hit("a", 0, 0.5), hit("a", 1, 0.5)];
        let texts = vec![hit("a", 1, 1.0)];
        let fused = fuse(vectors, texts, 0.5, 10);
        assert_eq!(order(&fused), [("a", 1), ("a", 0)]);
        assert!((fused[0].score - 0.75).abs() < 1e-6);
    }

    #[test]
    fn ties_are_ordered_by_document_and_chunk() {
        let vectors = vec![hit("b", 0, 0.5), hit("a", 2, 0.5), hit("a", 1, 0.5)];
        let fused = fuse(vectors, Vec::new(), 1.0, 10);
        assert_eq!(order(&fused), [("a", 1), ("a", 2), ("b", 0)]);
    }

    #[test]
    fn full_text_needs_two_terms_of_a_longer_question() {
        let with_text = |text: &str| {
            let mut h = hit("a", 0, 1.0);
            h.chunk_text = text.into();
            h
        };
        let question = "how do I make a loaf with a natural leaven at home";
        let stray = [with_text("LanceDB makes search fast.")];
        assert!(!full_text_has_evidence(question, &stray));
        let real = [stray[0].clone(), with_text("A loaf made at home.")];
        assert!(full_text_has_evidence(question, &real));
        // Short questions take any hit: one term is all they have.
        assert!(full_text_has_evidence("loaf", &stray));
        assert!(full_text_has_evidence("making loaves", &stray));
        assert!(!full_text_has_evidence(question, &[]));
    }

    #[test]
    fn bm25_is_shown_relative_to_the_best_hit() {
        let hits = relative_bm25(vec![hit("a", 0, 8.0), hit("b", 0, 2.0)]);
        assert_eq!(hits[0].score, 1.0);
        assert!((hits[1].score - 0.25).abs() < 1e-6);
        assert!(relative_bm25(Vec::new()).is_empty());
    }

    #[test]
    fn a_weight_is_checked_and_only_for_hybrid() {
        let mut req = SearchRequest::new("x");
        for ok in [0.0, 0.3, 1.0] {
            req.vector_weight = Some(ok);
            req.validate().unwrap();
        }
        for bad in [-0.1, 1.5, f32::NAN] {
            req.vector_weight = Some(bad);
            let err = req.validate().unwrap_err().to_string();
            assert!(err.contains("vector_weight must be 0 to 1"), "{err}");
        }
        req.vector_weight = Some(0.5);
        req.mode = SearchMode::Vector;
        let err = req.validate().unwrap_err().to_string();
        assert!(err.contains("hybrid searches only"), "{err}");
    }

    #[test]
    fn default_weights_grow_with_the_embedder_s_quality() {
        let identity = |name: &str| EmbedderIdentity {
            name: name.into(),
            model: "m".into(),
            dimension: 384,
        };
        let builtin = default_vector_weight(&identity("builtin"));
        let fixed = default_vector_weight(&identity("static"));
        let local = default_vector_weight(&identity("local"));
        let openai = default_vector_weight(&identity("openai-compatible"));
        assert!(0.0 < builtin && builtin < fixed && fixed < local && local <= 1.0);
        assert_eq!(local, openai);
    }
}
