//! Chunking: pieces of about `size` characters overlapping by `overlap`, cut at the largest
//! semantic boundary that fits (Markdown sections, paragraphs, sentences, words), never inside
//! a character or grapheme.

use text_splitter::{ChunkConfig as SplitterConfig, MarkdownSplitter, TextSplitter};

use crate::extract::{DocType, Extracted};
use crate::{Error, Result};

/// Chunk size and overlap, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkConfig {
    /// Largest chunk, in characters.
    pub size: usize,
    /// Characters shared by neighbouring chunks; less than `size`.
    pub overlap: usize,
}

impl Default for ChunkConfig {
    /// About 1000 characters with 200 overlap, like the original system.
    fn default() -> Self {
        Self {
            size: 1000,
            overlap: 200,
        }
    }
}

/// One piece of a document's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Position in the document, from 0.
    pub index: u32,
    /// The text.
    pub text: String,
    /// Byte offset of the chunk in the extracted text.
    pub start: usize,
    /// First page the chunk is on (PDFs).
    pub page_start: Option<u32>,
    /// Last page the chunk is on (PDFs).
    pub page_end: Option<u32>,
}

/// Splits extracted documents into chunks. Build once and reuse: building costs more than a split.
#[derive(Debug)]
pub struct Chunker {
    config: ChunkConfig,
    text: TextSplitter<text_splitter::Characters>,
    markdown: MarkdownSplitter<text_splitter::Characters>,
}

impl Chunker {
    /// A chunker for `config`; the overlap must be smaller than the size.
    pub fn new(config: ChunkConfig) -> Result<Self> {
        if config.size == 0 || config.overlap >= config.size {
            return Err(Error::InvalidChunking(format!(
                "chunk overlap ({}) must be smaller than chunk size ({}), and size above 0",
                config.overlap, config.size
            )));
        }
        let splitter = || {
            SplitterConfig::new(config.size)
                .with_overlap(config.overlap)
                .map_err(|e| Error::InvalidChunking(e.to_string()))
        };
        Ok(Self {
            config,
            text: TextSplitter::new(splitter()?),
            markdown: MarkdownSplitter::new(splitter()?),
        })
    }

    /// The configuration.
    pub fn config(&self) -> ChunkConfig {
        self.config
    }

    /// Split a document. Deterministic: the same text always gives the same chunks.
    pub fn chunk(&self, doc: &Extracted, doc_type: DocType) -> Vec<Chunk> {
        let pieces: Vec<(usize, &str)> = if doc_type.is_markdown_like() {
            self.markdown.chunk_indices(&doc.text).collect()
        } else {
            self.text.chunk_indices(&doc.text).collect()
        };
        pieces
            .into_iter()
            .filter(|(_, text)| !text.trim().is_empty())
            .enumerate()
            .map(|(index, (start, text))| Chunk {
                index: index as u32,
                text: text.to_string(),
                start,
                page_start: doc.page_at(start),
                page_end: doc.page_at(start + text.len().saturating_sub(1)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Extracted {
        Extracted {
            text: text.into(),
            ..Default::default()
        }
    }

    #[test]
    fn rejects_overlap_not_below_size() {
        assert!(
            Chunker::new(ChunkConfig {
                size: 100,
                overlap: 100
            })
            .is_err()
        );
        assert!(
            Chunker::new(ChunkConfig {
                size: 0,
                overlap: 0
            })
            .is_err()
        );
    }

    #[test]
    fn chunks_are_bounded_overlapping_and_cut_at_sentences() {
        let sentence = "The quick brown fox jumps over the lazy dog. ";
        let text = sentence.repeat(100);
        let chunker = Chunker::new(ChunkConfig {
            size: 200,
            overlap: 50,
        })
        .unwrap();
        let chunks = chunker.chunk(&doc(&text), DocType::Txt);
        assert!(chunks.len() > 20);
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.index as usize, i);
            assert!(c.text.chars().count() <= 200, "{}", c.text.len());
            assert!(c.text.ends_with('.'), "cut at a sentence end: {:?}", c.text);
            assert_eq!(&text[c.start..c.start + c.text.len()], c.text);
        }
        // Neighbours overlap.
        assert!(
            chunks
                .windows(2)
                .all(|w| w[1].start < w[0].start + w[0].text.len())
        );
        // Deterministic.
        assert_eq!(chunks, chunker.chunk(&doc(&text), DocType::Txt));
    }

    #[test]
    fn unicode_is_never_split_inside_a_character() {
        let text = "naïve café 日本語のテキスト 👩‍👩‍👧‍👦 ".repeat(200);
        let chunker = Chunker::new(ChunkConfig {
            size: 64,
            overlap: 16,
        })
        .unwrap();
        let chunks = chunker.chunk(&doc(&text), DocType::Txt);
        assert!(chunks.len() > 10);
        for c in &chunks {
            assert!(text.is_char_boundary(c.start));
            assert!(c.text.chars().count() <= 64);
        }
    }

    #[test]
    fn pages_follow_offsets() {
        let mut d = doc("page one text\n\npage two text\n\npage three");
        d.page_starts = vec![0, 15, 30];
        let chunker = Chunker::new(ChunkConfig {
            size: 14,
            overlap: 0,
        })
        .unwrap();
        let pages: Vec<_> = chunker
            .chunk(&d, DocType::Pdf)
            .iter()
            .map(|c| (c.text.clone(), c.page_start))
            .collect();
        assert_eq!(
            pages,
            vec![
                ("page one text".into(), Some(1)),
                ("page two text".into(), Some(2)),
                ("page three".into(), Some(3))
            ]
        );
    }

    #[test]
    fn empty_text_has_no_chunks() {
        let chunker = Chunker::new(ChunkConfig::default()).unwrap();
        assert!(chunker.chunk(&doc("  \n\n "), DocType::Txt).is_empty());
    }
}
