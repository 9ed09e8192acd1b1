//! lancesync ingest: extract → chunk → embed. Pure: no LanceDB, no sources.
//!
//! ```
//! use lancesync_ingest::{extract, ChunkConfig, Chunker, DocType, Embedder, HashingEmbedder};
//!
//! # tokio_test();
//! # fn tokio_test() { tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let doc = extract(b"# Notes\n\nLanceDB keeps vectors next to the data.", DocType::Md)?;
//! let chunks = Chunker::new(ChunkConfig::default())?.chunk(&doc, DocType::Md);
//! let texts: Vec<String> = chunks.iter().map(|c| c.text.clone()).collect();
//! let vectors = HashingEmbedder::default().embed(&texts).await?;
//! assert_eq!(doc.title.as_deref(), Some("Notes"));
//! assert_eq!(vectors.len(), chunks.len());
//! assert_eq!(vectors[0].len(), 384);
//! # Ok::<(), lancesync_ingest::Error>(()) }).unwrap(); }
//! ```

mod chunk;
mod embed;
mod extract;

pub use chunk::{Chunk, ChunkConfig, Chunker, window_bytes as chunk_window_bytes};
pub use embed::{
    DistillOptions, Embedder, EmbedderIdentity, HashingEmbedder, LocalEmbedder, OpenAiConfig,
    OpenAiEmbedder, StaticEmbedder, TokenCount, distill_static_model,
};
pub use extract::{
    DocType, ExtractOptions, Extracted, enable_pdf_isolation, extract, extract_with,
    pdf_isolation_enabled,
};

/// Errors of this crate. Extraction errors are per-document: the message is what gets recorded
/// as the document's `error_message`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file type is not one lancesync reads.
    #[error("unsupported document type: {0} (lancesync reads pdf, docx, html, md and txt)")]
    Unsupported(String),
    /// The document could not be read.
    #[error("cannot extract {doc_type}: {reason}")]
    Extract {
        /// The type it was read as.
        doc_type: DocType,
        /// Why.
        reason: String,
    },
    /// A PDF needs a password.
    #[error(
        "encrypted PDF: it needs a password to be read; remove the password or exclude the file"
    )]
    Encrypted,
    /// The document's work ran past its deadline (`DOCUMENT_TIMEOUT`); the step it was in.
    #[error(
        "out of time while {0}: the document's work is over its time budget (DOCUMENT_TIMEOUT); raise it or exclude the file"
    )]
    OutOfTime(String),
    /// The document's extracted text is larger than allowed (`MAX_DOCUMENT_TEXT_MB`).
    #[error(
        "the document's text is {size} bytes, over the limit of {limit} bytes (MAX_DOCUMENT_TEXT_MB); split the document or raise the limit"
    )]
    TextTooLarge {
        /// Bytes of extracted text.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Chunk size and overlap do not fit together.
    #[error("invalid chunking: {0}")]
    InvalidChunking(String),
    /// The embedder failed (after retries, for transient errors).
    #[error("embedding failed: {0}")]
    Embed(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
