//! A table version seen as layers of indexes built earlier: the index of an earlier version,
//! then indexes of the rows added since, each with the rows of it that are gone since. A
//! table that changes every few seconds (a sync in progress) is searched from memory this way
//! at the cost of indexing its new rows, where a whole new index would cost reading it all.
//!
//! Searches give what one index of the same rows would, but for two approximations: BM25
//! weighs every layer's rows by the first layer's average length (its `N` and document
//! frequencies are exact: counted over the rows still there), and vector search ranks each
//! layer's rows by that layer's projection.

use std::sync::Arc;

use crate::text::{self, TextMatch};
use crate::{Filter, MemIndex, RowView, VectorMatch};

/// One layer: an index and which of its rows are gone.
#[derive(Debug, Clone)]
struct Layer {
    index: Arc<MemIndex>,
    /// Per row of `index`, whether it is gone; empty when none is.
    gone: Arc<[bool]>,
    /// The first row number of this layer in the view.
    start: u32,
}

/// Indexes laid over each other; rows are numbered across them, layer after layer (gone
/// rows keep their numbers).
#[derive(Debug, Clone)]
pub struct Layered {
    layers: Vec<Layer>,
    /// Rows with at least one term, gone rows left out: BM25's `N`.
    counted: u32,
    live: usize,
}

impl Layered {
    /// One index, whole.
    pub fn whole(index: Arc<MemIndex>) -> Self {
        Self::new(vec![(index, Vec::new())])
    }

    /// Layers of `indexes`, each with its rows' gone marks (empty when none is gone, else one
    /// per row). The first layer's average length weighs the others (see
    /// [`crate::MemIndexBuilder::finish_over`]).
    ///
    /// # Panics
    /// When marks are given for another number of rows than a layer holds.
    pub fn new(indexes: Vec<(Arc<MemIndex>, Vec<bool>)>) -> Self {
        let mut layers = Vec::with_capacity(indexes.len());
        let (mut start, mut counted, mut live) = (0u32, 0u32, 0usize);
        for (index, gone) in indexes {
            assert!(
                gone.is_empty() || gone.len() == index.len(),
                "gone marks for {} rows of a layer of {}",
                gone.len(),
                index.len()
            );
            counted += index.text.counted_rows_but(&gone);
            live += index.len() - gone.iter().filter(|g| **g).count();
            let rows = index.len() as u32;
            layers.push(Layer {
                index,
                gone: gone.into(),
                start,
            });
            start += rows;
        }
        Self {
            layers,
            counted,
            live,
        }
    }

    /// The layers' indexes and gone marks, in order.
    pub fn layers(&self) -> impl Iterator<Item = (&Arc<MemIndex>, &[bool])> {
        self.layers.iter().map(|l| (&l.index, &*l.gone))
    }

    /// Rows not gone.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether every row is gone (or there are none).
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The memory the layers hold, in bytes (approximately).
    pub fn heap_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.index.heap_bytes() + l.gone.len())
            .sum()
    }

    fn layer_of(&self, row: u32) -> &Layer {
        let at = self.layers.partition_point(|l| l.start <= row);
        &self.layers[at - 1]
    }

    /// A row's columns.
    ///
    /// # Panics
    /// When `row` is beyond the last layer.
    pub fn row(&self, row: u32) -> RowView<'_> {
        let layer = self.layer_of(row);
        layer.index.row(row - layer.start)
    }

    /// The `limit` rows not gone nearest to `query` by cosine, best first (equal scores by
    /// row).
    pub fn nearest(&self, query: &[f32], limit: usize, filter: &Filter<'_>) -> Vec<VectorMatch> {
        let mut found = Vec::new();
        for layer in &self.layers {
            let Some(allow) = layer.index.allowed(filter) else {
                continue;
            };
            let gone = &layer.gone;
            let hits = layer.index.vectors.nearest(query, limit, |r| {
                !gone.get(r as usize).copied().unwrap_or(false) && allow(r)
            });
            found.extend(hits.into_iter().map(|(row, score)| VectorMatch {
                row: row + layer.start,
                score,
            }));
        }
        found.sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
        found.truncate(limit);
        found
    }

    /// The `limit` best BM25 matches of `query` among the rows not gone, best first (equal
    /// scores by row).
    pub fn bm25(&self, query: &str, limit: usize, filter: &Filter<'_>) -> Vec<TextMatch> {
        if self.counted == 0 {
            return Vec::new();
        }
        let n = self.counted as f32;
        let asked = text::query_terms(query);
        let weighted: Vec<(&str, f32)> = asked
            .iter()
            .filter_map(|(term, repeats)| {
                let df: u32 = self
                    .layers
                    .iter()
                    .map(|l| l.index.text.document_frequency_but(term, &l.gone))
                    .sum();
                (df > 0).then(|| (term.as_str(), text::idf(n, df as f32) * repeats))
            })
            .collect();
        if weighted.is_empty() {
            return Vec::new();
        }
        let mut found = Vec::new();
        for layer in &self.layers {
            let Some(allow) = layer.index.allowed(filter) else {
                continue;
            };
            let gone = &layer.gone;
            let hits = layer.index.text.score(&weighted, limit, |r| {
                !gone.get(r as usize).copied().unwrap_or(false) && allow(r)
            });
            found.extend(hits.into_iter().map(|m| TextMatch {
                row: m.row + layer.start,
                ..m
            }));
        }
        found.sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
        found.truncate(limit);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemIndexBuilder;

    const DIM: usize = 8;

    /// Rows of distinct texts and vectors: row `i` says "word{i} shared" and points at
    /// dimension `i % DIM`, tilted by `i`.
    fn text_of(i: usize) -> String {
        format!("word{i} shared bread {}", "crumb ".repeat(i % 3))
    }

    fn vector_of(i: usize) -> Vec<f32> {
        let mut v = vec![0.1; DIM];
        v[i % DIM] = 1.0 + (i as f32) / 50.0;
        v[(i + 1) % DIM] = (i % 5) as f32 / 10.0;
        v
    }

    fn index_of(rows: &[usize], over: Option<&MemIndex>) -> MemIndex {
        let mut builder = MemIndexBuilder::new(DIM);
        for &i in rows {
            let (doc, text, vector) = (format!("doc{i}"), text_of(i), vector_of(i));
            builder
                .push(crate::RowData {
                    doc_id: &doc,
                    source_id: if i % 2 == 0 { "even" } else { "odd" },
                    source_uri: &doc,
                    title: &doc,
                    doc_type: "txt",
                    chunk_index: 0,
                    chunk_text: &text,
                    vector: &vector,
                })
                .unwrap();
        }
        match over {
            Some(under) => builder.finish_over(under),
            None => builder.finish(),
        }
    }

    fn docs(view: &Layered, rows: impl IntoIterator<Item = u32>) -> Vec<String> {
        rows.into_iter()
            .map(|r| view.row(r).doc_id.to_string())
            .collect()
    }

    /// Rows 0..40, then rows 5..10 and 30 gone and rows 40..50 added, as two layers; and the
    /// same final rows in one index.
    fn layered_and_whole() -> (Layered, Layered) {
        let base = Arc::new(index_of(&(0..40).collect::<Vec<_>>(), None));
        let gone: Vec<bool> = (0..40).map(|i| (5..10).contains(&i) || i == 30).collect();
        let added = Arc::new(index_of(&(40..50).collect::<Vec<_>>(), Some(&base)));
        let layered = Layered::new(vec![(base, gone), (added, Vec::new())]);
        let live: Vec<usize> = (0..50)
            .filter(|i| !(5..10).contains(i) && *i != 30)
            .collect();
        let whole = Layered::whole(Arc::new(index_of(&live, None)));
        (layered, whole)
    }

    #[test]
    fn gone_rows_are_never_found_and_added_rows_are() {
        let (layered, _) = layered_and_whole();
        assert_eq!(layered.len(), 44);
        let all = Filter::default();
        for i in [5usize, 7, 30] {
            let by_text = layered.bm25(&format!("word{i}"), 10, &all);
            assert!(by_text.is_empty(), "gone row {i} found by {by_text:?}");
            let by_vector = layered.nearest(&vector_of(i), 50, &all);
            assert!(
                !docs(&layered, by_vector.iter().map(|m| m.row)).contains(&format!("doc{i}")),
                "gone row {i} found by its vector"
            );
            assert_eq!(by_vector.len(), 44, "every live row, once");
        }
        let added = layered.bm25("word45", 10, &all);
        assert_eq!(docs(&layered, added.iter().map(|m| m.row)), ["doc45"]);
        let nearest = layered.nearest(&vector_of(47), 1, &all);
        assert_eq!(docs(&layered, nearest.iter().map(|m| m.row)), ["doc47"]);
        let odd = Filter {
            source_id: Some("odd"),
            doc_type: None,
        };
        let found = layered.bm25("shared", 50, &odd);
        assert_eq!(found.len(), 22, "the odd live rows of both layers");
        assert!(
            docs(&layered, found.iter().map(|m| m.row))
                .iter()
                .all(|d| d[3..].parse::<usize>().unwrap() % 2 == 1)
        );
    }

    #[test]
    fn searches_rank_as_one_index_of_the_same_rows() {
        let (layered, whole) = layered_and_whole();
        let all = Filter::default();
        for query in [
            "word12 shared",
            "word44 bread crumb",
            "crumb",
            "word3 word41",
        ] {
            let a = layered.bm25(query, 10, &all);
            let b = whole.bm25(query, 10, &all);
            assert_eq!(
                docs(&layered, a.iter().map(|m| m.row)),
                docs(&whole, b.iter().map(|m| m.row)),
                "{query}"
            );
            for (x, y) in a.iter().zip(&b) {
                // Equal idf; only the average length differs (the first layer's).
                assert!(
                    (x.score - y.score).abs() < 0.05 * y.score,
                    "{query}: {x:?} {y:?}"
                );
                assert_eq!(x.matched_terms, y.matched_terms);
            }
        }
        for i in [0usize, 3, 11, 42, 49] {
            let a = layered.nearest(&vector_of(i), 5, &all);
            let b = whole.nearest(&vector_of(i), 5, &all);
            assert_eq!(
                docs(&layered, a.iter().map(|m| m.row)),
                docs(&whole, b.iter().map(|m| m.row)),
                "row {i}'s vector"
            );
        }
    }
}
