//! BERT's WordPiece tokenization, specialised for a static model: token ids only.
//!
//! A static model's speed is its tokenizer's (a vector is a table lookup and a mean), and the
//! general `tokenizers` pipeline keeps offsets and alignments for every character, which a
//! static model never reads. This does the same steps as the `tokenizers` models built from a
//! `tokenizer.json` with `BertNormalizer` (clean text, Chinese characters apart, accents
//! stripped, lower case), `BertPreTokenizer` and `WordPiece`, with the same Unicode tables
//! (`unicode_categories`, `unicode-normalization-alignments`), and the tests check it token for
//! token against `tokenizers`. A folder with any other tokenizer keeps using `tokenizers`, and
//! so does a text that contains one of the tokenizer's added tokens (`[CLS]` typed into a
//! document), which `tokenizers` matches before normalising.

use rustc_hash::FxHashMap;
use serde::Deserialize;
use unicode_categories::UnicodeCategories;
use unicode_normalization_alignments::UnicodeNormalization;

/// The parts of `tokenizer.json` that decide whether the specialised path applies.
#[derive(Deserialize)]
struct TokenizerJson {
    normalizer: Option<Normalizer>,
    pre_tokenizer: Option<Tagged>,
    model: Model,
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
}

#[derive(Deserialize)]
struct Normalizer {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    clean_text: bool,
    #[serde(default)]
    handle_chinese_chars: bool,
    #[serde(default)]
    strip_accents: Option<bool>,
    #[serde(default)]
    lowercase: bool,
}

#[derive(Deserialize)]
struct Tagged {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Model {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    unk_token: String,
    #[serde(default)]
    continuing_subword_prefix: String,
    #[serde(default)]
    max_input_chars_per_word: usize,
    #[serde(default)]
    vocab: FxHashMap<String, u32>,
}

#[derive(Deserialize)]
struct AddedToken {
    content: String,
    /// Whether `tokenizers` matches it in the normalised text (lower-cased, for instance)
    /// rather than the raw text.
    #[serde(default)]
    normalized: bool,
}

/// A BERT-style uncased WordPiece tokenizer.
pub(crate) struct WordPiece {
    vocab: FxHashMap<String, u32>,
    unk: u32,
    prefix: String,
    max_chars: usize,
    /// Texts containing one of these go through `tokenizers`.
    added: Vec<String>,
}

fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && c.is_other()
}

fn is_chinese_char(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || c.is_punctuation()
}

impl WordPiece {
    /// The specialised tokenizer for `tokenizer.json`'s text, if it describes an uncased BERT
    /// WordPiece tokenizer; `None` otherwise.
    pub(crate) fn from_json(json: &str) -> Option<Self> {
        let t: TokenizerJson = serde_json::from_str(json).ok()?;
        let n = t.normalizer?;
        let bert_normalizer = n.kind == "BertNormalizer"
            && n.clean_text
            && n.handle_chinese_chars
            && n.lowercase
            && n.strip_accents.unwrap_or(n.lowercase);
        if !bert_normalizer
            || t.pre_tokenizer?.kind != "BertPreTokenizer"
            || t.model.kind != "WordPiece"
        {
            return None;
        }
        // Added tokens matched after normalising would need the normaliser's offsets to find.
        if t.added_tokens.iter().any(|a| a.normalized) {
            return None;
        }
        let unk = *t.model.vocab.get(&t.model.unk_token)?;
        Some(Self {
            vocab: t.model.vocab,
            unk,
            prefix: t.model.continuing_subword_prefix,
            max_chars: t.model.max_input_chars_per_word,
            added: t.added_tokens.into_iter().map(|a| a.content).collect(),
        })
    }

    /// Whether `text` must go through `tokenizers` instead (it holds an added token).
    pub(crate) fn needs_general(&self, text: &str) -> bool {
        self.added.iter().any(|a| text.contains(a.as_str()))
    }

    /// The token ids of `text`, without special tokens, appended to `ids`.
    pub(crate) fn encode_into(&self, text: &str, ids: &mut Vec<u32>) {
        let normalized = normalize(text);
        let mut word_start = None;
        let mut piece = String::new();
        for (i, c) in normalized.char_indices() {
            if c.is_whitespace() || is_punctuation(c) {
                if let Some(start) = word_start.take() {
                    self.word(&normalized[start..i], &mut piece, ids);
                }
                if !c.is_whitespace() {
                    self.word(&normalized[i..i + c.len_utf8()], &mut piece, ids);
                }
            } else if word_start.is_none() {
                word_start = Some(i);
            }
        }
        if let Some(start) = word_start {
            self.word(&normalized[start..], &mut piece, ids);
        }
    }

    /// Greedy longest-match-first, as `tokenizers`' WordPiece: the whole word is one unknown
    /// token if it is too long or any part of it has no match.
    fn word(&self, word: &str, piece: &mut String, ids: &mut Vec<u32>) {
        if word.len() > self.max_chars && word.chars().count() > self.max_chars {
            ids.push(self.unk);
            return;
        }
        if let Some(&id) = self.vocab.get(word) {
            ids.push(id);
            return;
        }
        let first = ids.len();
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while start < end {
                let sub = &word[start..end];
                let id = if start == 0 {
                    self.vocab.get(sub)
                } else {
                    piece.clear();
                    piece.push_str(&self.prefix);
                    piece.push_str(sub);
                    self.vocab.get(piece.as_str())
                };
                if let Some(&id) = id {
                    found = Some(id);
                    break;
                }
                end -= sub.chars().next_back().map_or(1, char::len_utf8);
            }
            let Some(id) = found else {
                ids.truncate(first);
                ids.push(self.unk);
                return;
            };
            ids.push(id);
            start = end;
        }
    }
}

/// `BertNormalizer` with clean text, Chinese characters apart, accents stripped, lower case.
fn normalize(text: &str) -> String {
    if text.is_ascii() {
        // No Chinese characters, nothing to decompose, no non-spacing marks.
        let mut out = String::with_capacity(text.len());
        for b in text.bytes() {
            let c = b as char;
            if is_control(c) {
                continue;
            }
            out.push(if is_whitespace(c) {
                ' '
            } else {
                c.to_ascii_lowercase()
            });
        }
        return out;
    }
    let mut cleaned = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\0' || c == '\u{fffd}' || is_control(c) {
            continue;
        }
        if is_whitespace(c) {
            cleaned.push(' ');
        } else if is_chinese_char(c) {
            cleaned.push(' ');
            cleaned.push(c);
            cleaned.push(' ');
        } else {
            cleaned.push(c);
        }
    }
    let mut out = String::with_capacity(cleaned.len());
    for (c, _) in cleaned.nfd().filter(|(c, _)| !c.is_mark_nonspacing()) {
        out.extend(c.to_lowercase());
    }
    out
}
