//! Text extraction: bytes of a known document type in, plain text with metadata out.

mod docx;
mod html;
mod pdf;
mod pdf_worker;
mod text;

pub use pdf_worker::{enable_pdf_isolation, pdf_isolation_enabled};

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The document types lancesync extracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocType {
    /// PDF with a text layer.
    Pdf,
    /// Word (Office Open XML).
    Docx,
    /// HTML.
    Html,
    /// Markdown.
    Md,
    /// Plain text.
    Txt,
}

impl DocType {
    /// Every type.
    pub const ALL: [DocType; 5] = [
        DocType::Pdf,
        DocType::Docx,
        DocType::Html,
        DocType::Md,
        DocType::Txt,
    ];

    /// The type named by a file's extension (case-insensitive), if lancesync reads it.
    pub fn from_path(path: &Path) -> Option<DocType> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "pdf" => DocType::Pdf,
            "docx" => DocType::Docx,
            "html" | "htm" | "xhtml" => DocType::Html,
            "md" | "markdown" => DocType::Md,
            // CSV is read as the text it is (Google Sheets export as CSV).
            "txt" | "text" | "csv" => DocType::Txt,
            _ => return None,
        })
    }

    /// The value stored in the `doc_type` column.
    pub fn as_str(&self) -> &'static str {
        match self {
            DocType::Pdf => "pdf",
            DocType::Docx => "docx",
            DocType::Html => "html",
            DocType::Md => "md",
            DocType::Txt => "txt",
        }
    }

    /// Whether the extracted text uses Markdown structure (headings, lists), which chunking follows.
    pub fn is_markdown_like(&self) -> bool {
        matches!(self, DocType::Md | DocType::Docx)
    }
}

impl fmt::Display for DocType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DocType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        DocType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::Unsupported(s.to_string()))
    }
}

/// The text of a document and what was learned about it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extracted {
    /// The document's text; structure kept as line breaks and, for DOCX, Markdown markers.
    pub text: String,
    /// A title found in the document (HTML `<title>`, DOCX core title, first Markdown heading).
    pub title: Option<String>,
    /// Other metadata (DOCX core properties, HTML meta description).
    pub metadata: BTreeMap<String, String>,
    /// For PDFs: the byte offset in `text` where each page starts (page 1 first).
    pub page_starts: Vec<usize>,
    /// Things worth recording that did not stop extraction (e.g. invalid UTF-8 replaced).
    pub warnings: Vec<String>,
}

impl Extracted {
    /// The 1-based page holding byte `offset` of `text`, for PDFs.
    pub fn page_at(&self, offset: usize) -> Option<u32> {
        if self.page_starts.is_empty() {
            return None;
        }
        let page = self
            .page_starts
            .partition_point(|&start| start <= offset)
            .max(1);
        Some(page as u32)
    }
}

/// Extract the text of a document. A corrupt, encrypted or binary file is an [`Error`] with a
/// reason a person can act on; it never panics.
pub fn extract(bytes: &[u8], doc_type: DocType) -> Result<Extracted> {
    extract_with(bytes, doc_type, &ExtractOptions::default())
}

/// How extraction may go beyond a document's own text, and how far it may go for one
/// document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractOptions {
    /// Read image-only PDF pages with OCR (tesseract on pages rendered by poppler's
    /// pdftoppm), when both are installed (`OCR_ENABLED`).
    pub ocr: bool,
    /// How long parsing and repairing one PDF may take in all; OCR gets as long per page
    /// (`EXTRACT_TIMEOUT`). A parser still at work then is stopped: in a worker process
    /// (see [`enable_pdf_isolation`]) or a poppler helper, it is killed.
    pub timeout: Duration,
    /// The address space a PDF parser or helper process may use (`EXTRACT_MEMORY_MB`).
    pub memory_bytes: u64,
    /// The most text one document may yield, in bytes (`MAX_DOCUMENT_TEXT_MB`): a small
    /// file can unpack to far more text than its size (a DOCX of 51 KB to 20 MB), and every
    /// byte of text costs chunking and embedding.
    pub max_text_bytes: usize,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        Self {
            ocr: false,
            timeout: Duration::from_secs(60),
            memory_bytes: 1 << 30,
            max_text_bytes: 32 << 20,
        }
    }
}

/// [`extract`] with options.
pub fn extract_with(
    bytes: &[u8],
    doc_type: DocType,
    options: &ExtractOptions,
) -> Result<Extracted> {
    let extracted = match doc_type {
        DocType::Txt => text::extract_plain(bytes)?,
        DocType::Md => text::extract_markdown(bytes)?,
        DocType::Html => html::extract(bytes)?,
        DocType::Pdf => pdf::extract(bytes, options)?,
        DocType::Docx => docx::extract(bytes)?,
    };
    if extracted.text.len() > options.max_text_bytes {
        return Err(Error::TextTooLarge {
            size: extracted.text.len(),
            limit: options.max_text_bytes,
        });
    }
    Ok(extracted)
}

pub(crate) fn failed(doc_type: DocType, reason: impl Into<String>) -> Error {
    Error::Extract {
        doc_type,
        reason: reason.into(),
    }
}
