//! Embedders: text in, vectors out.

mod builtin;
mod local;
mod openai;
mod sentence_fit;
mod static_model;
mod wordpiece;

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use builtin::HashingEmbedder;
pub use local::LocalEmbedder;
pub use openai::{OpenAiConfig, OpenAiEmbedder};
pub use static_model::{DistillOptions, StaticEmbedder, distill as distill_static_model};

use crate::Result;

/// What produced a table's vectors. Stored with the tables: vectors from different embedders
/// are not comparable, so opening a table with another embedder is refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EmbedderIdentity {
    /// The embedder kind, e.g. `builtin` or `openai-compatible`.
    pub name: String,
    /// The model.
    pub model: String,
    /// Vector length.
    pub dimension: usize,
}

impl fmt::Display for EmbedderIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} ({} dimensions)",
            self.name, self.model, self.dimension
        )
    }
}

/// Turns texts into vectors. Object-safe: use it as `Arc<dyn Embedder>`.
#[async_trait]
pub trait Embedder: Send + Sync + fmt::Debug {
    /// What this embedder is; stored with the tables.
    fn identity(&self) -> EmbedderIdentity;

    /// One vector of `identity().dimension` floats per text, in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>>;

    /// How many tokens embedding `texts` costs, without embedding them: by the embedder's own
    /// tokenizer where it has one, else an estimate of one token per four characters (the
    /// usual figure for English; `exact` is then false).
    fn count_tokens(&self, texts: &[String]) -> Result<TokenCount> {
        Ok(TokenCount::estimate(texts))
    }

    /// [`embed`](Self::embed) and [`count_tokens`](Self::count_tokens) at once; an embedder
    /// that tokenizes anyway (or is told the count by its server) overrides it to count once.
    async fn embed_counted(&self, texts: &[String]) -> Result<(Vec<Vec<f32>>, TokenCount)> {
        let vectors = self.embed(texts).await?;
        Ok((vectors, self.count_tokens(texts)?))
    }

    /// Whether embedding runs on this machine (its speed can be measured here), not on a
    /// server that may bill for it.
    fn runs_locally(&self) -> bool {
        true
    }
}

/// Tokens counted for embedding some texts. The default is nothing counted, exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCount {
    /// Tokens.
    pub tokens: u64,
    /// Counted by the embedder's own tokenizer (or its server), not estimated.
    pub exact: bool,
}

impl TokenCount {
    /// Characters per token of the estimate for embedders without a tokenizer.
    pub const CHARACTERS_PER_TOKEN: u64 = 4;

    /// One token per [`Self::CHARACTERS_PER_TOKEN`] characters of each text, rounded up.
    pub fn estimate(texts: &[String]) -> Self {
        Self {
            tokens: texts
                .iter()
                .map(|t| (t.chars().count() as u64).div_ceil(Self::CHARACTERS_PER_TOKEN))
                .sum(),
            exact: false,
        }
    }

    /// An exact count.
    pub fn exact(tokens: u64) -> Self {
        Self {
            tokens,
            exact: true,
        }
    }

    /// Both counts together: exact only if both are.
    pub fn add(&mut self, other: TokenCount) {
        self.exact &= other.exact;
        self.tokens += other.tokens;
    }
}

impl Default for TokenCount {
    fn default() -> Self {
        Self::exact(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_counts_add_up_and_stay_exact_only_if_every_part_was() {
        let texts = ["abcd".to_string(), "abcde".to_string(), String::new()];
        assert_eq!(
            TokenCount::estimate(&texts),
            TokenCount {
                tokens: 3,
                exact: false
            }
        );
        let mut sum = TokenCount::default();
        assert_eq!(sum, TokenCount::exact(0));
        sum.add(TokenCount::exact(5));
        assert!(sum.exact);
        sum.add(TokenCount::estimate(&texts));
        assert_eq!(
            sum,
            TokenCount {
                tokens: 8,
                exact: false
            }
        );
    }

    #[tokio::test]
    async fn the_hashing_embedders_tokens_are_its_words() {
        let embedder = HashingEmbedder::default();
        let texts = vec!["Two words".to_string(), "and, three more!".to_string()];
        assert_eq!(embedder.count_tokens(&texts).unwrap(), TokenCount::exact(5));
        let (vectors, counted) = embedder.embed_counted(&texts).await.unwrap();
        assert_eq!((vectors.len(), counted), (2, TokenCount::exact(5)));
    }
}
