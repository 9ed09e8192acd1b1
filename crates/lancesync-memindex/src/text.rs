//! BM25 over the chunks' terms, as LanceDB's full-text index scores it: the same analyzer,
//! `idf = ln((N - n + 0.5) / (n + 0.5) + 1)`, `k1 = 1.2`, `b = 0.75` and lance's `(k1 + 1)`
//! numerator, a term the query repeats counted as often as it appears, and rows without a
//! term left out of `N` and of the average length.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashSet};
use std::sync::LazyLock;

use lance_tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    StopWordFilter, TextAnalyzer, TokenStream,
};
use rayon::prelude::*;
use rustc_hash::FxHashMap;

const K1: f32 = 1.2;
const B: f32 = 0.75;

/// The analyzer of lancedb's full-text index with its default settings (as the index on
/// `chunk_text` is built): simple words of at most 40 bytes, lower-cased, stemmed (English),
/// English stop words dropped, accents folded.
static ANALYZER: LazyLock<TextAnalyzer> = LazyLock::new(|| {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(Stemmer::new(Language::English))
        .filter(StopWordFilter::new(Language::English).expect("English has stop words"))
        .filter(AsciiFoldingFilter)
        .build()
});

/// Calls `each` with every term of `text` as the full-text index sees it, repeats included.
pub fn for_each_term(text: &str, mut each: impl FnMut(&str)) {
    let mut analyzer = ANALYZER.clone();
    let mut stream = analyzer.token_stream(text);
    while let Some(token) = stream.next() {
        each(&token.text);
    }
}

/// A text's distinct terms as the full-text index sees them.
pub fn terms(text: &str) -> HashSet<String> {
    let mut terms = HashSet::new();
    for_each_term(text, |t| {
        if !terms.contains(t) {
            terms.insert(t.to_string());
        }
    });
    terms
}

/// One row's match: its BM25 score and how many of the query's distinct terms it holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextMatch {
    /// The row.
    pub row: u32,
    /// Its BM25 score.
    pub score: f32,
    /// The query's distinct terms it holds.
    pub matched_terms: u32,
}

/// A row's score in a heap: higher scores first, and of equal scores the lower row (as the
/// final order has it).
#[derive(Debug, Clone, Copy)]
struct Ranked(f32, u32);

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .total_cmp(&other.0)
            .then_with(|| other.1.cmp(&self.1))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

/// Postings of every term, by row.
#[derive(Debug, Default)]
pub(crate) struct TextIndex {
    term_ids: FxHashMap<Box<str>, u32>,
    /// Per term: the rows holding it (ascending) and the term's count in each; once built,
    /// [`Self::weights`] replaces the counts.
    postings: Vec<(Vec<u32>, Vec<u16>)>,
    /// Per term and row of its postings: BM25's document part,
    /// `(k1 + 1) tf / (tf + k1 (1 - b + b dl / avgdl))`, which a search multiplies by idf.
    weights: Vec<Vec<f32>>,
    /// Terms per row, repeats included.
    lengths: Vec<u32>,
    /// Rows with at least one term.
    counted_rows: u32,
    total_terms: u64,
}

impl TextIndex {
    /// Adds the next row's text.
    fn push(&mut self, text: &str) {
        let row = self.lengths.len() as u32;
        let mut counts: FxHashMap<u32, u16> = FxHashMap::default();
        let mut length = 0u32;
        for_each_term(text, |t| {
            length += 1;
            let next = self.term_ids.len() as u32;
            let id = match self.term_ids.get(t) {
                Some(id) => *id,
                None => {
                    self.term_ids.insert(t.into(), next);
                    self.postings.push((Vec::new(), Vec::new()));
                    next
                }
            };
            let c = counts.entry(id).or_default();
            *c = c.saturating_add(1);
        });
        for (id, count) in counts {
            let (rows, tfs) = &mut self.postings[id as usize];
            rows.push(row);
            tfs.push(count);
        }
        self.lengths.push(length);
        if length > 0 {
            self.counted_rows += 1;
            self.total_terms += u64::from(length);
        }
    }

    /// The index of every text of `texts` (row `i` is `text(i)`), built over all cores: each
    /// range of rows on its own, then the ranges merged in order. Rows are weighed by
    /// `average_length` when given (a layer's rows weighed as the rows of the index it is
    /// laid over), else by their own.
    pub(crate) fn build<'a>(
        rows: usize,
        text: impl Fn(usize) -> &'a str + Sync,
        average_length: Option<f32>,
    ) -> Self {
        let ranges = rayon::current_num_threads().max(1) * 4;
        let per = rows.div_ceil(ranges).max(1);
        let parts: Vec<TextIndex> = (0..rows)
            .step_by(per)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|start| {
                let mut part = TextIndex::default();
                for row in start..(start + per).min(rows) {
                    part.push(text(row));
                }
                part
            })
            .collect();
        let mut index = TextIndex::default();
        for part in parts {
            index.append(part);
        }
        index.weigh(average_length);
        index
    }

    /// Computes every posting's document weight, now that the average length is known, and
    /// drops the counts.
    fn weigh(&mut self, average_length: Option<f32>) {
        let avgdl = average_length.or(self.average_length()).unwrap_or(1.0);
        let lengths = &self.lengths;
        self.weights = self
            .postings
            .par_iter_mut()
            .map(|(rows, tfs)| {
                let weights = rows
                    .iter()
                    .zip(tfs.iter())
                    .map(|(&row, &tf)| {
                        let tf = f32::from(tf);
                        let dl = lengths[row as usize] as f32;
                        (K1 + 1.0) * tf / (tf + K1 * (1.0 - B + B * dl / avgdl))
                    })
                    .collect();
                rows.shrink_to_fit();
                *tfs = Vec::new();
                weights
            })
            .collect();
        self.postings.shrink_to_fit();
    }

    /// Appends the rows of `part` after this index's rows.
    fn append(&mut self, part: TextIndex) {
        let offset = self.lengths.len() as u32;
        let mut ids: Vec<(u32, Box<str>)> =
            part.term_ids.into_iter().map(|(t, id)| (id, t)).collect();
        ids.sort_unstable_by_key(|(id, _)| *id);
        for ((_, term), (rows, tfs)) in ids.into_iter().zip(part.postings) {
            let next = self.term_ids.len() as u32;
            let id = *self.term_ids.entry(term).or_insert_with(|| {
                self.postings.push((Vec::new(), Vec::new()));
                next
            });
            let (all_rows, all_tfs) = &mut self.postings[id as usize];
            all_rows.extend(rows.into_iter().map(|r| r + offset));
            all_tfs.extend(tfs);
        }
        self.lengths.extend(part.lengths);
        self.counted_rows += part.counted_rows;
        self.total_terms += part.total_terms;
    }

    /// The average terms per row of the rows with any, which BM25 weighs rows by.
    pub(crate) fn average_length(&self) -> Option<f32> {
        (self.counted_rows > 0).then(|| self.total_terms as f32 / self.counted_rows as f32)
    }

    /// Rows with at least one term, leaving out those `gone` marks.
    pub(crate) fn counted_rows_but(&self, gone: &[bool]) -> u32 {
        if gone.is_empty() {
            return self.counted_rows;
        }
        let gone_counted = self
            .lengths
            .iter()
            .zip(gone)
            .filter(|(length, gone)| **gone && **length > 0)
            .count() as u32;
        self.counted_rows - gone_counted
    }

    /// Rows holding `term`, leaving out those `gone` marks.
    pub(crate) fn document_frequency_but(&self, term: &str, gone: &[bool]) -> u32 {
        let Some(id) = self.term_ids.get(term) else {
            return 0;
        };
        let rows = &self.postings[*id as usize].0;
        if gone.is_empty() {
            return rows.len() as u32;
        }
        rows.iter().filter(|r| !gone[**r as usize]).count() as u32
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        let postings: usize = self
            .postings
            .iter()
            .map(|(r, t)| r.len() * 4 + t.len() * 2)
            .sum();
        let terms: usize = self.term_ids.keys().map(|k| k.len() + 16).sum();
        postings + self.postings.len() * 48 + terms + self.lengths.len() * 4
    }

    /// The query's distinct terms that the index holds, with their ids.
    fn query_term_ids(&self, query: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        for_each_term(query, |t| {
            if let Some(id) = self.term_ids.get(t)
                && !ids.contains(id)
            {
                ids.push(*id);
            }
        });
        ids
    }

    /// Whether `row` holds `term`.
    fn holds(&self, term: u32, row: u32) -> bool {
        self.postings[term as usize].0.binary_search(&row).is_ok()
    }

    /// How many of `query`'s distinct terms `row` holds.
    pub(crate) fn matched_terms(&self, query: &str, row: u32) -> u32 {
        self.query_term_ids(query)
            .into_iter()
            .filter(|t| self.holds(*t, row))
            .count() as u32
    }

    /// The `limit` best rows for `query` that `allow` lets through, best first (equal scores
    /// by row).
    pub(crate) fn search(
        &self,
        query: &str,
        limit: usize,
        allow: impl Fn(u32) -> bool,
    ) -> Vec<TextMatch> {
        if self.counted_rows == 0 {
            return Vec::new();
        }
        let n = self.counted_rows as f32;
        let asked = query_terms(query);
        let weighted: Vec<(&str, f32)> = asked
            .iter()
            .filter_map(|(term, repeats)| {
                let df = self.document_frequency_but(term, &[]);
                (df > 0).then(|| (term.as_str(), idf(n, df as f32) * repeats))
            })
            .collect();
        self.score(&weighted, limit, allow)
    }

    /// The `limit` best rows that `allow` lets through, scored by `terms`: each a term and
    /// what its document weights are multiplied by (its idf, times its repeats in the query).
    pub(crate) fn score(
        &self,
        terms: &[(&str, f32)],
        limit: usize,
        allow: impl Fn(u32) -> bool,
    ) -> Vec<TextMatch> {
        let ids: Vec<(u32, f32)> = terms
            .iter()
            .filter_map(|(term, idf)| Some((*self.term_ids.get(*term)?, *idf)))
            .collect();
        if ids.is_empty() {
            return Vec::new();
        }
        // Dense accumulators: a common term's postings run to a good share of the rows, and
        // an array indexed by row beats a map there. A row's score and matched terms sit side
        // by side (one memory access a posting), and the list of rows touched is kept too;
        // all are kept per thread between searches, and cleared where this search wrote.
        ACCUMULATORS.with_borrow_mut(|(cells, touched)| {
            if cells.len() < self.lengths.len() {
                cells.resize(self.lengths.len(), (0.0, 0));
            }
            touched.clear();
            for &(id, idf) in &ids {
                let rows = &self.postings[id as usize].0;
                for (&row, &weight) in rows.iter().zip(&self.weights[id as usize]) {
                    let cell = &mut cells[row as usize];
                    if cell.1 == 0 {
                        touched.push(row);
                    }
                    cell.0 += idf * weight;
                    cell.1 += 1;
                }
            }
            let found = best_of(touched, cells, limit, &allow);
            for &row in touched.iter() {
                cells[row as usize] = (0.0, 0);
            }
            found
        })
    }
}

/// BM25's idf of a term `df` of `n` rows hold.
pub(crate) fn idf(n: f32, df: f32) -> f32 {
    ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
}

/// A query's distinct terms, in order, each with how often the query repeats it: a term the
/// query repeats counts as often as it appears, as in LanceDB's search.
pub(crate) fn query_terms(query: &str) -> Vec<(String, f32)> {
    let mut terms: Vec<(String, f32)> = Vec::new();
    for_each_term(query, |t| match terms.iter_mut().find(|(x, _)| x == t) {
        Some((_, repeats)) => *repeats += 1.0,
        None => terms.push((t.to_string(), 1.0)),
    });
    terms
}

/// A row's score so far in one search, and how many of the query's terms it holds.
type Cell = (f32, u32);

thread_local! {
    /// Per row: a search's score and matched terms so far; and the rows a search touched
    /// (see [`TextIndex::search`]).
    static ACCUMULATORS: std::cell::RefCell<(Vec<Cell>, Vec<u32>)> = const {
        std::cell::RefCell::new((Vec::new(), Vec::new()))
    };
}

/// The best `limit` of `touched` rows by their score in `cells` that `allow` lets through,
/// best first.
fn best_of(
    touched: &[u32],
    cells: &[Cell],
    limit: usize,
    allow: &impl Fn(u32) -> bool,
) -> Vec<TextMatch> {
    // The best `limit` in a min-heap (worst on top): most rows fall below its worst.
    let mut best: BinaryHeap<Reverse<Ranked>> = BinaryHeap::with_capacity(limit + 1);
    for &row in touched {
        let score = cells[row as usize].0;
        if best.len() == limit
            && best
                .peek()
                .is_some_and(|worst| Ranked(score, row) <= worst.0)
        {
            continue;
        }
        if !allow(row) {
            continue;
        }
        best.push(Reverse(Ranked(score, row)));
        if best.len() > limit {
            best.pop();
        }
    }
    let mut found: Vec<TextMatch> = best
        .into_iter()
        .map(|Reverse(Ranked(score, row))| TextMatch {
            row,
            score,
            matched_terms: cells[row as usize].1,
        })
        .collect();
    found.sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.row.cmp(&b.row)));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_seen_as_the_full_text_index_sees_them() {
        let seen = terms("The Loaves, a LOAF; baking café-baked breads!");
        let want: HashSet<String> = ["loav", "loaf", "bake", "cafe", "bread"]
            .map(String::from)
            .into();
        assert_eq!(seen, want, "stems, no stop words, accents folded");
    }

    fn index(texts: &[&str]) -> TextIndex {
        TextIndex::build(texts.len(), |i| texts[i], None)
    }

    /// BM25 written out term by term, from the formula in the module's documentation.
    fn by_hand(texts: &[&str], query: &str, row: usize) -> f32 {
        let docs: Vec<Vec<String>> = texts
            .iter()
            .map(|t| {
                let mut v = Vec::new();
                for_each_term(t, |x| v.push(x.to_string()));
                v
            })
            .collect();
        let counted: Vec<&Vec<String>> = docs.iter().filter(|d| !d.is_empty()).collect();
        let n = counted.len() as f32;
        let avgdl = counted.iter().map(|d| d.len()).sum::<usize>() as f32 / n;
        let mut score = 0.0;
        let mut asked = Vec::new();
        for_each_term(query, |t| asked.push(t.to_string()));
        for term in asked {
            let df = counted.iter().filter(|d| d.contains(&term)).count() as f32;
            let tf = docs[row].iter().filter(|t| **t == term).count() as f32;
            if tf == 0.0 {
                continue;
            }
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            let norm = K1 * (1.0 - B + B * docs[row].len() as f32 / avgdl);
            score += idf * (K1 + 1.0) * tf / (tf + norm);
        }
        score
    }

    #[test]
    fn scores_are_bm25_and_the_best_come_first() {
        let texts = [
            "sourdough bread needs a starter and time",
            "bread bread bread, and more bread",
            "",
            "the starter is flour and water",
            "nothing about baking here at all",
        ];
        let index = index(&texts);
        let query = "sourdough starter bread starter";
        let found = index.search(query, 10, |_| true);
        assert_eq!(
            found.iter().map(|m| m.row).collect::<Vec<_>>(),
            [0, 3, 1],
            "{found:?}: \"starter\", asked twice, outweighs \"bread\""
        );
        for m in &found {
            let want = by_hand(&texts, query, m.row as usize);
            assert!(
                (m.score - want).abs() < 1e-5,
                "row {}: {} vs {want}",
                m.row,
                m.score
            );
        }
        assert_eq!(found[0].matched_terms, 3);
        assert_eq!(found[2].matched_terms, 1);
        assert_eq!(index.matched_terms(query, 3), 1);
        assert_eq!(index.search(query, 1, |_| true).len(), 1);
        assert_eq!(index.search(query, 10, |r| r != 0)[0].row, 3);
        assert!(index.search("unknown words only", 10, |_| true).is_empty());
        assert!(
            index.search("the and", 10, |_| true).is_empty(),
            "stop words"
        );
    }

    #[test]
    fn built_in_ranges_it_equals_one_built_row_by_row() {
        let texts: Vec<String> = (0..997)
            .map(|i| {
                format!(
                    "word{} shared term{} and bread {}",
                    i % 13,
                    i % 7,
                    "x ".repeat(i % 5)
                )
            })
            .collect();
        let built = TextIndex::build(texts.len(), |i| texts[i].as_str(), None);
        let mut by_row = TextIndex::default();
        texts.iter().for_each(|t| by_row.push(t));
        by_row.weigh(None);
        for query in ["word3 term4", "bread", "shared word12 term0 x"] {
            assert_eq!(
                built.search(query, 50, |_| true),
                by_row.search(query, 50, |_| true)
            );
        }
    }
}
