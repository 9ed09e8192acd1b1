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
}
