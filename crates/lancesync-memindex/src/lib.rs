//! An in-memory search index of one version of a user's chunks table, for a server that
//! answers many searches of the same tables: what LanceDB plans, reads and decodes for every
//! query (several milliseconds of CPU even for ten rows) is done once, when the index is built.
//!
//! - Vector search ranks by cosine over int8 codes of the vectors: on a large table, first by
//!   each row's projection on the table's principal components, then the best candidates by
//!   their full codes (see [`vectors`]).
//! - Full-text search is BM25 exactly as LanceDB's full-text index scores it, with its
//!   analyzer (see [`text`]).
//! - A row's columns (document, source, title, type, chunk) are held once per document and
//!   once per chunk.
//!
//! An index is immutable. A table's next version is either a new index (built over all
//! cores) or a [`Layered`] view: an earlier version's index, the rows gone since, and small
//! indexes of the rows added since. Nothing here knows LanceDB; the engine feeds the rows in.

mod layered;
pub mod text;
pub mod vectors;

use rustc_hash::FxHashMap;

pub use layered::Layered;
pub use text::{TextMatch, for_each_term, terms};

/// What can go wrong building an index.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A row's vector is not of the index's length.
    #[error("a vector of {got} values in an index of {expected}")]
    WrongDimension {
        /// The index's length.
        expected: usize,
        /// The row's.
        got: usize,
    },
}

/// One row as the builder takes it.
#[derive(Debug, Clone, Copy)]
pub struct RowData<'a> {
    /// Document id.
    pub doc_id: &'a str,
    /// Source id.
    pub source_id: &'a str,
    /// Where the document is.
    pub source_uri: &'a str,
    /// Document title.
    pub title: &'a str,
    /// Document type.
    pub doc_type: &'a str,
    /// The chunk's position in its document.
    pub chunk_index: i32,
    /// The chunk's text.
    pub chunk_text: &'a str,
    /// The chunk's vector.
    pub vector: &'a [f32],
}

impl<'a> RowData<'a> {
    /// A row of `columns` with `vector`.
    pub fn new(columns: RowView<'a>, vector: &'a [f32]) -> Self {
        Self {
            doc_id: columns.doc_id,
            source_id: columns.source_id,
            source_uri: columns.source_uri,
            title: columns.title,
            doc_type: columns.doc_type,
            chunk_index: columns.chunk_index,
            chunk_text: columns.chunk_text,
            vector,
        }
    }
}

/// One row's columns: as the index gives them back, or as a caller reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowView<'a> {
    /// Document id.
    pub doc_id: &'a str,
    /// Source id.
    pub source_id: &'a str,
    /// Where the document is.
    pub source_uri: &'a str,
    /// Document title.
    pub title: &'a str,
    /// Document type.
    pub doc_type: &'a str,
    /// The chunk's position in its document.
    pub chunk_index: i32,
    /// The chunk's text.
    pub chunk_text: &'a str,
}

/// Which rows a search may return: all of one source, of one document type, or both.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'a> {
    /// Only this source.
    pub source_id: Option<&'a str>,
    /// Only this document type.
    pub doc_type: Option<&'a str>,
}

/// A vector search's match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VectorMatch {
    /// The row.
    pub row: u32,
    /// The cosine similarity of the row's vector (as stored, 8-bit) and the query's.
    pub score: f32,
}

#[derive(Debug)]
struct Document {
    doc_id: Box<str>,
    source: u32,
    source_uri: Box<str>,
    title: Box<str>,
    doc_type: u32,
}

/// Collects rows, then builds the index.
#[derive(Debug)]
pub struct MemIndexBuilder {
    vectors: vectors::VectorIndex,
    documents: Vec<Document>,
    document_ids: FxHashMap<Box<str>, u32>,
    sources: Vec<Box<str>>,
    doc_types: Vec<Box<str>>,
    row_documents: Vec<u32>,
    chunk_indexes: Vec<i32>,
    texts: String,
    /// Where each row's text starts in `texts`; one more entry than rows.
    text_starts: Vec<usize>,
}

fn intern(names: &mut Vec<Box<str>>, name: &str) -> u32 {
    match names.iter().position(|n| &**n == name) {
        Some(i) => i as u32,
        None => {
            names.push(name.into());
            (names.len() - 1) as u32
        }
    }
}

impl MemIndexBuilder {
    /// A builder for vectors of `dim` values.
    pub fn new(dim: usize) -> Self {
        Self {
            vectors: vectors::VectorIndex::new(dim),
            documents: Vec::new(),
            document_ids: FxHashMap::default(),
            sources: Vec::new(),
            doc_types: Vec::new(),
            row_documents: Vec::new(),
            chunk_indexes: Vec::new(),
            texts: String::new(),
            text_starts: vec![0],
        }
    }

    /// Adds a row. A document's columns are taken from its first row.
    pub fn push(&mut self, row: RowData<'_>) -> Result<(), Error> {
        if row.vector.len() != self.vectors.dim() {
            return Err(Error::WrongDimension {
                expected: self.vectors.dim(),
                got: row.vector.len(),
            });
        }
        let document = match self.document_ids.get(row.doc_id) {
            Some(d) => *d,
            None => {
                let d = self.documents.len() as u32;
                self.documents.push(Document {
                    doc_id: row.doc_id.into(),
                    source: intern(&mut self.sources, row.source_id),
                    source_uri: row.source_uri.into(),
                    title: row.title.into(),
                    doc_type: intern(&mut self.doc_types, row.doc_type),
                });
                self.document_ids.insert(row.doc_id.into(), d);
                d
            }
        };
        self.vectors.push(row.vector);
        self.row_documents.push(document);
        self.chunk_indexes.push(row.chunk_index);
        self.texts.push_str(row.chunk_text);
        self.text_starts.push(self.texts.len());
        Ok(())
    }

    /// The index of every row pushed.
    pub fn finish(self) -> MemIndex {
        self.finish_weighed(None)
    }

    /// The index of every row pushed, to be laid over `under` (see [`Layered`]): BM25 weighs
    /// its rows by `under`'s average length, so that the scores of both compare.
    pub fn finish_over(self, under: &MemIndex) -> MemIndex {
        let average_length = under.text.average_length();
        self.finish_weighed(average_length)
    }

    fn finish_weighed(mut self, average_length: Option<f32>) -> MemIndex {
        self.vectors.finish();
        let texts = &self.texts;
        let starts = &self.text_starts;
        let text = text::TextIndex::build(
            self.row_documents.len(),
            |i| &texts[starts[i]..starts[i + 1]],
            average_length,
        );
        self.texts.shrink_to_fit();
        self.row_documents.shrink_to_fit();
        self.chunk_indexes.shrink_to_fit();
        MemIndex {
            vectors: self.vectors,
            text,
            documents: self.documents,
            sources: self.sources,
            doc_types: self.doc_types,
            row_documents: self.row_documents,
            chunk_indexes: self.chunk_indexes,
            texts: self.texts,
            text_starts: self.text_starts,
        }
    }
}

/// The index of one table version.
#[derive(Debug)]
pub struct MemIndex {
    vectors: vectors::VectorIndex,
    text: text::TextIndex,
    documents: Vec<Document>,
    sources: Vec<Box<str>>,
    doc_types: Vec<Box<str>>,
    row_documents: Vec<u32>,
    chunk_indexes: Vec<i32>,
    texts: String,
    text_starts: Vec<usize>,
}

impl MemIndex {
    /// Rows.
    pub fn len(&self) -> usize {
        self.row_documents.len()
    }

    /// Whether the index has no rows.
    pub fn is_empty(&self) -> bool {
        self.row_documents.is_empty()
    }

    /// The vectors' length.
    pub fn dim(&self) -> usize {
        self.vectors.dim()
    }

    /// Values per row a vector search's first pass reads: the principal components a large
    /// table's rows are projected on, or the vectors' full (even) length when no few
    /// components hold them; 0 below 4,096 rows, where every row is scored exactly.
    pub fn components(&self) -> usize {
        self.vectors.components()
    }

    /// The memory the index holds, in bytes (its heap allocations, approximately).
    pub fn heap_bytes(&self) -> usize {
        let documents: usize = self
            .documents
            .iter()
            .map(|d| 48 + d.doc_id.len() + d.source_uri.len() + d.title.len())
            .sum();
        self.vectors.heap_bytes()
            + self.text.heap_bytes()
            + documents
            + self.row_documents.len() * 8
            + self.texts.len()
            + self.text_starts.len() * 8
    }

    /// A row's columns.
    ///
    /// # Panics
    /// When `row` is not below [`Self::len`].
    pub fn row(&self, row: u32) -> RowView<'_> {
        let r = row as usize;
        let d = &self.documents[self.row_documents[r] as usize];
        RowView {
            doc_id: &d.doc_id,
            source_id: &self.sources[d.source as usize],
            source_uri: &d.source_uri,
            title: &d.title,
            doc_type: &self.doc_types[d.doc_type as usize],
            chunk_index: self.chunk_indexes[r],
            chunk_text: &self.texts[self.text_starts[r]..self.text_starts[r + 1]],
        }
    }

    /// Whether `filter` lets rows through at all, and the test for one row when it narrows.
    fn allowed(&self, filter: &Filter<'_>) -> Option<impl Fn(u32) -> bool + '_> {
        let wanted = |names: &[Box<str>], name: Option<&str>| match name {
            None => Some(None),
            Some(n) => names.iter().position(|x| &**x == n).map(|i| Some(i as u32)),
        };
        let source = wanted(&self.sources, filter.source_id)?;
        let doc_type = wanted(&self.doc_types, filter.doc_type)?;
        Some(move |row: u32| {
            let d = &self.documents[self.row_documents[row as usize] as usize];
            source.is_none_or(|s| d.source == s) && doc_type.is_none_or(|t| d.doc_type == t)
        })
    }

    /// The `limit` rows nearest to `query` by cosine, best first (equal scores by row).
    pub fn nearest(&self, query: &[f32], limit: usize, filter: &Filter<'_>) -> Vec<VectorMatch> {
        let Some(allow) = self.allowed(filter) else {
            return Vec::new();
        };
        self.vectors
            .nearest(query, limit, allow)
            .into_iter()
            .map(|(row, score)| VectorMatch { row, score })
            .collect()
    }

    /// The `limit` best BM25 matches of `query`, best first (equal scores by row).
    pub fn bm25(&self, query: &str, limit: usize, filter: &Filter<'_>) -> Vec<TextMatch> {
        let Some(allow) = self.allowed(filter) else {
            return Vec::new();
        };
        self.text.search(query, limit, allow)
    }

    /// How many of `query`'s distinct terms (as the full-text index sees them) `row` holds.
    pub fn matched_terms(&self, query: &str, row: u32) -> u32 {
        self.text.matched_terms(query, row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(
        doc: &'a str,
        source: &'a str,
        kind: &'a str,
        i: i32,
        text: &'a str,
        v: &'a [f32],
    ) -> RowData<'a> {
        RowData {
            doc_id: doc,
            source_id: source,
            source_uri: "/x",
            title: doc,
            doc_type: kind,
            chunk_index: i,
            chunk_text: text,
            vector: v,
        }
    }

    #[test]
    fn rows_come_back_as_given_and_filters_narrow_both_searches() {
        let mut b = MemIndexBuilder::new(3);
        b.push(row(
            "a",
            "notes",
            "md",
            0,
            "sourdough bread",
            &[1.0, 0.0, 0.0],
        ))
        .unwrap();
        b.push(row("a", "notes", "md", 1, "rye bread", &[0.9, 0.1, 0.0]))
            .unwrap();
        b.push(row(
            "b",
            "papers",
            "pdf",
            0,
            "bread statistics",
            &[0.8, 0.2, 0.0],
        ))
        .unwrap();
        let err = b.push(row("c", "notes", "md", 0, "x", &[1.0])).unwrap_err();
        assert!(
            err.to_string()
                .contains("a vector of 1 values in an index of 3")
        );
        let index = b.finish();
        assert_eq!(index.len(), 3);
        let r = index.row(1);
        assert_eq!(
            (
                r.doc_id,
                r.source_id,
                r.doc_type,
                r.chunk_index,
                r.chunk_text
            ),
            ("a", "notes", "md", 1, "rye bread")
        );
        assert_eq!(index.row(2).title, "b");

        let all = Filter::default();
        let papers = Filter {
            source_id: Some("papers"),
            ..Filter::default()
        };
        let md = Filter {
            doc_type: Some("md"),
            ..Filter::default()
        };
        let none = Filter {
            source_id: Some("gone"),
            ..Filter::default()
        };
        let rows = |m: Vec<VectorMatch>| m.into_iter().map(|m| m.row).collect::<Vec<_>>();
        assert_eq!(rows(index.nearest(&[1.0, 0.0, 0.0], 10, &all)), [0, 1, 2]);
        assert_eq!(rows(index.nearest(&[1.0, 0.0, 0.0], 10, &papers)), [2]);
        assert_eq!(rows(index.nearest(&[1.0, 0.0, 0.0], 10, &md)), [0, 1]);
        assert!(index.nearest(&[1.0, 0.0, 0.0], 10, &none).is_empty());
        assert_eq!(index.bm25("bread", 10, &all).len(), 3);
        assert_eq!(index.bm25("bread", 10, &papers)[0].row, 2);
        assert!(index.bm25("bread", 10, &none).is_empty());
        assert_eq!(index.matched_terms("sourdough bread loaf", 0), 2);
        assert!(index.heap_bytes() > 0);
    }
}
