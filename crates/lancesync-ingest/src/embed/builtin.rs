//! The built-in embedder: offline, deterministic, no model download.
//!
//! It is *feature hashing*, not a neural model: each lowercase word and each pair of adjacent
//! words is hashed (BLAKE3) to one of `dimension` buckets with a sign, and the vector is
//! L2-normalised. Texts that share words get similar vectors, so vector search behaves like a
//! smoothed keyword search: good for tests and as the fallback when no model is installed; for
//! meaning-level search use the [`LocalEmbedder`](super::LocalEmbedder) (offline, in process)
//! or an [`OpenAiEmbedder`](super::OpenAiEmbedder) against a model server.

use async_trait::async_trait;

use super::{Embedder, EmbedderIdentity, TokenCount};
use crate::Result;

/// The default vector length, the same as all-MiniLM-L6-v2 / bge-small.
pub const DEFAULT_DIMENSION: usize = 384;

/// Feature-hashing embedder. See the module docs for what it is and is not.
#[derive(Debug, Clone)]
pub struct HashingEmbedder {
    dimension: usize,
}

impl Default for HashingEmbedder {
    fn default() -> Self {
        Self::new(DEFAULT_DIMENSION)
    }
}

impl HashingEmbedder {
    /// An embedder producing `dimension`-long vectors (at least 1).
    pub fn new(dimension: usize) -> Self {
        Self {
            dimension: dimension.max(1),
        }
    }

    /// Embed one text, synchronously.
    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0f32; self.dimension];
        let words: Vec<String> = words(text).map(str::to_lowercase).collect();
        for w in &words {
            self.add(&mut v, w.as_bytes(), 1.0);
        }
        for pair in words.windows(2) {
            self.add(&mut v, format!("{} {}", pair[0], pair[1]).as_bytes(), 0.5);
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }

    fn add(&self, v: &mut [f32], feature: &[u8], weight: f32) {
        let hash = blake3::hash(feature);
        let bytes = hash.as_bytes();
        let bucket =
            u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) % self.dimension as u64;
        let sign = if bytes[8] & 1 == 0 { 1.0 } else { -1.0 };
        v[bucket as usize] += sign * weight;
    }
}

#[async_trait]
impl Embedder for HashingEmbedder {
    fn identity(&self) -> EmbedderIdentity {
        EmbedderIdentity {
            name: "builtin".into(),
            model: "hashing-v1".into(),
            dimension: self.dimension,
        }
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.embed_one(t)).collect())
    }

    /// Its tokens are the words it hashes.
    fn count_tokens(&self, texts: &[String]) -> Result<TokenCount> {
        Ok(TokenCount::exact(
            texts.iter().map(|t| words(t).count() as u64).sum(),
        ))
    }
}

/// The words of `text`: runs of letters and digits.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn deterministic_normalised_and_lexically_similar() {
        let e = HashingEmbedder::default();
        let a = e.embed_one("LanceDB stores vectors on disk");
        assert_eq!(a.len(), 384);
        assert_eq!(a, e.embed_one("lancedb STORES vectors, on disk!"));
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-5);
        let near = e.embed_one("vectors stored on disk by LanceDB");
        let far = e.embed_one("a recipe for tomato soup with basil");
        assert!(cosine(&a, &near) > 0.5, "{}", cosine(&a, &near));
        assert!(cosine(&a, &far) < 0.3, "{}", cosine(&a, &far));
    }

    #[test]
    fn pinned_values_never_change() {
        // Stored vectors must stay comparable across releases: these values are fixed forever
        // for "builtin/hashing-v1". A change needs a new model name.
        let v = HashingEmbedder::new(8).embed_one("hello world");
        let rounded: Vec<i32> = v.iter().map(|x| (x * 1000.0).round() as i32).collect();
        assert_eq!(rounded, PINNED);
    }
    const PINNED: [i32; 8] = [0, 0, 555, 0, 0, 0, 0, -832];

    #[test]
    fn no_words_gives_a_zero_vector() {
        assert!(
            HashingEmbedder::default()
                .embed_one(" ,.; ")
                .iter()
                .all(|x| *x == 0.0)
        );
    }
}
