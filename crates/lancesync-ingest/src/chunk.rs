//! Chunking: pieces of about `size` characters overlapping by `overlap`, cut at the largest
//! semantic boundary that fits (Markdown sections, paragraphs, sentences, words), never inside
//! a character or grapheme.
//!
//! The splitter's cost grows with the square of the longest stretch of text without a line
//! break (it re-segments the rest of the paragraph for every chunk), so a document of one long
//! paragraph would take minutes. The text is therefore handed to it in windows of at most
//! [`window_bytes`], each cut at the best boundary near its end (a blank line, a line break, a
//! sentence end, a space): the cost is linear in the text's length whatever its shape, and a
//! document shorter than one window is chunked exactly as before. A deadline is checked
//! between windows, so abandoned work stops within one window's time.

use std::time::Instant;

use text_splitter::{ChunkConfig as SplitterConfig, MarkdownSplitter, TextSplitter};

use crate::extract::{DocType, Extracted};
use crate::{Error, Result};

/// Chunk size and overlap, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
        self.chunk_until(doc, doc_type, None)
            .expect("no deadline, so never out of time")
    }

    /// [`Chunker::chunk`], giving up with [`Error::OutOfTime`] once `deadline` has passed
    /// (checked between windows of [`window_bytes`]).
    pub fn chunk_until(
        &self,
        doc: &Extracted,
        doc_type: DocType,
        deadline: Option<Instant>,
    ) -> Result<Vec<Chunk>> {
        let window = window_bytes(self.config);
        let mut pieces: Vec<(usize, &str)> = Vec::new();
        for (offset, part) in windows(&doc.text, window) {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::OutOfTime("chunking".into()));
            }
            let found: Vec<(usize, &str)> = if doc_type.is_markdown_like() {
                self.markdown.chunk_indices(part).collect()
            } else {
                self.text.chunk_indices(part).collect()
            };
            pieces.extend(
                found
                    .into_iter()
                    .map(|(start, text)| (offset + start, text)),
            );
        }
        Ok(pieces
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
            .collect())
    }
}

/// The longest text, in bytes, the splitter is given at once: 32 chunks' worth, at least
/// 32 KiB. Its cost within a window may be quadratic; over windows it adds up linearly.
pub fn window_bytes(config: ChunkConfig) -> usize {
    config.size.saturating_mul(32).max(32 * 1024)
}

/// `text` in consecutive pieces of at most `window` bytes (with their byte offsets), each cut
/// at the strongest boundary in its second half: a blank line, a line break, a sentence end,
/// a space, else a character boundary.
fn windows(text: &str, window: usize) -> impl Iterator<Item = (usize, &str)> {
    let mut offset = 0;
    std::iter::from_fn(move || {
        let rest = &text[offset..];
        if rest.is_empty() {
            return None;
        }
        let len = if rest.len() <= window {
            rest.len()
        } else {
            cut_point(rest, window)
        };
        let piece = (offset, &rest[..len]);
        offset += len;
        Some(piece)
    })
}

/// Where to end a window of `text` (longer than `window`): just after the last strong
/// boundary in `window / 2 ..= window`, always after at least one character.
fn cut_point(text: &str, window: usize) -> usize {
    let mut end = window;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut start = end / 2;
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let span = &text[start..end];
    let after = |needle: &str| span.rfind(needle).map(|i| start + i + needle.len());
    let sentence_end = || {
        span.char_indices()
            .rev()
            .find(|&(i, c)| {
                c.is_whitespace()
                    && span[..i]
                        .chars()
                        .next_back()
                        .is_some_and(|p| matches!(p, '.' | '!' | '?' | '。' | '！' | '？'))
            })
            .map(|(i, c)| start + i + c.len_utf8())
    };
    let space = || {
        span.char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map(|(i, c)| start + i + c.len_utf8())
    };
    let cut = after("\n\n")
        .or_else(|| after("\n"))
        .or_else(sentence_end)
        .or_else(space)
        .unwrap_or(end);
    if cut == 0 {
        // A window smaller than one character: take that character whole.
        text.chars().next().map_or(text.len(), char::len_utf8)
    } else {
        cut
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
    fn text_within_one_window_is_chunked_exactly_as_the_splitter_does() {
        let config = ChunkConfig::default();
        let text = "A sentence of some words. Another one follows it.\n\n".repeat(500);
        assert!(text.len() < window_bytes(config));
        let chunker = Chunker::new(config).unwrap();
        let splitter = TextSplitter::new(
            SplitterConfig::new(config.size)
                .with_overlap(config.overlap)
                .unwrap(),
        );
        let ours: Vec<(usize, String)> = chunker
            .chunk(&doc(&text), DocType::Txt)
            .into_iter()
            .map(|c| (c.start, c.text))
            .collect();
        let theirs: Vec<(usize, String)> = splitter
            .chunk_indices(&text)
            .map(|(i, t)| (i, t.to_string()))
            .collect();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn a_long_paragraph_is_cut_at_sentence_ends_into_bounded_windows() {
        let text = "This sentence has no line break after it. ".repeat(20_000);
        let window = 32 * 1024;
        let pieces: Vec<(usize, &str)> = windows(&text, window).collect();
        assert!(pieces.len() > 20);
        for (i, (offset, piece)) in pieces.iter().enumerate() {
            assert!(piece.len() <= window);
            assert_eq!(&text[*offset..*offset + piece.len()], *piece);
            if i + 1 < pieces.len() {
                assert!(piece.ends_with(". "), "{:?}", &piece[piece.len() - 20..]);
                assert!(piece.len() >= window / 2);
            }
        }
    }

    #[test]
    fn a_deadline_in_the_past_stops_chunking() {
        let chunker = Chunker::new(ChunkConfig::default()).unwrap();
        let text = "word ".repeat(100_000);
        let past = Instant::now() - std::time::Duration::from_secs(1);
        let err = chunker
            .chunk_until(&doc(&text), DocType::Txt, Some(past))
            .unwrap_err();
        assert!(matches!(err, Error::OutOfTime(_)), "{err}");
        assert!(err.to_string().contains("DOCUMENT_TIMEOUT"));
    }

    /// Text of many shapes: words, sentence ends, line breaks, blank lines, runs without
    /// spaces, multi-byte characters and emoji, in random proportions.
    fn shaped_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            8 => "[a-z]{1,12}".prop_map(|w| w + " "),
            2 => Just(". ".to_string()),
            1 => Just("\n".to_string()),
            1 => Just("\n\n".to_string()),
            1 => "[a-zé日本🎉]{50,400}",
            1 => Just("👩‍👩‍👧‍👦".to_string()),
        ];
        proptest::collection::vec(piece, 0..1500).prop_map(|p| p.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(48))]

        // Windows partition the text exactly, never exceed the window and, except the
        // last, are at least half a window: the splitter's work per window is bounded, so
        // the whole is linear in the text's length.
        #[test]
        fn windows_partition_the_text(text in shaped_text(), window in 4usize..4096) {
            let mut next = 0;
            let pieces: Vec<(usize, &str)> = windows(&text, window).collect();
            for (i, (offset, piece)) in pieces.iter().enumerate() {
                proptest::prop_assert_eq!(*offset, next);
                proptest::prop_assert!(!piece.is_empty());
                proptest::prop_assert!(piece.len() <= window.max(4));
                if i + 1 < pieces.len() {
                    proptest::prop_assert!(piece.len() + 6 >= window / 2);
                }
                next += piece.len();
            }
            proptest::prop_assert_eq!(next, text.len());
        }

        // Chunks of any text are bounded in characters, sit where they say in the text,
        // and are numbered in order.
        #[test]
        fn chunks_of_any_text_are_bounded_and_located(text in shaped_text(), size in 20usize..400) {
            let chunker = Chunker::new(ChunkConfig { size, overlap: size / 5 }).unwrap();
            for (i, c) in chunker.chunk(&doc(&text), DocType::Txt).iter().enumerate() {
                proptest::prop_assert_eq!(c.index as usize, i);
                proptest::prop_assert!(c.text.chars().count() <= size);
                proptest::prop_assert_eq!(&text[c.start..c.start + c.text.len()], c.text.as_str());
            }
        }
    }

    #[test]
    fn empty_text_has_no_chunks() {
        let chunker = Chunker::new(ChunkConfig::default()).unwrap();
        assert!(chunker.chunk(&doc("  \n\n "), DocType::Txt).is_empty());
    }
}
