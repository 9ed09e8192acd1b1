//! An embedder that counts what it embeds: how tests prove that unchanged or moved documents
//! are not embedded again.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use lancesync_ingest::{Embedder, EmbedderIdentity, HashingEmbedder, TokenCount};

/// The built-in hashing embedder, counting the texts it is given.
#[derive(Debug, Default)]
pub struct CountingEmbedder {
    inner: HashingEmbedder,
    texts: AtomicUsize,
}

impl CountingEmbedder {
    /// Texts embedded so far.
    pub fn embedded(&self) -> usize {
        self.texts.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Embedder for CountingEmbedder {
    fn identity(&self) -> EmbedderIdentity {
        self.inner.identity()
    }

    async fn embed(&self, texts: &[String]) -> lancesync_ingest::Result<Vec<Vec<f32>>> {
        self.texts.fetch_add(texts.len(), Ordering::SeqCst);
        self.inner.embed(texts).await
    }

    fn count_tokens(&self, texts: &[String]) -> lancesync_ingest::Result<TokenCount> {
        self.inner.count_tokens(texts)
    }
}
