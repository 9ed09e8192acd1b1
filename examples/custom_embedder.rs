//! Plug in your own `Embedder` — a local model, a company gateway — and the engine uses it for
//! documents and queries alike. Its identity is stored with the tables, so a later run with a
//! different embedder is refused until `sync-cli reindex`.
//!
//! Run: `cargo run --example custom_embedder`

use std::sync::Arc;

use async_trait::async_trait;
use lancesync::engine::{Engine, EngineConfig, NoProgress, SearchRequest, SyncOptions};
use lancesync::ingest::{Embedder, EmbedderIdentity, Result};
use lancesync::sources::{LocalFsConfig, LocalFsSource};

/// Letter-frequency vectors: a toy stand-in for a real model call.
#[derive(Debug)]
struct LetterCounts;

#[async_trait]
impl Embedder for LetterCounts {
    fn identity(&self) -> EmbedderIdentity {
        EmbedderIdentity {
            name: "example".into(),
            model: "letter-counts-v1".into(),
            dimension: 26,
        }
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0f32; 26];
                for c in t.chars().filter(char::is_ascii_alphabetic) {
                    v[(c.to_ascii_lowercase() as u8 - b'a') as usize] += 1.0;
                }
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
                v.into_iter().map(|x| x / norm).collect()
            })
            .collect())
    }
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let data = tempfile::tempdir()?;
    let engine = Engine::new(EngineConfig::new(data.path()), Arc::new(LetterCounts))?;
    let folder = std::fs::canonicalize("examples/sample-docs")?;
    let source = LocalFsSource::new(
        "samples",
        LocalFsConfig::new([folder.to_string_lossy().into_owned()]),
        &Default::default(),
    )?;
    let report = engine
        .sync("u1", &source, SyncOptions::default(), &NoProgress)
        .await?;
    println!(
        "indexed {} documents with {}",
        report.created,
        engine.embedder()
    );
    for hit in engine
        .search("u1", &SearchRequest::new("sourdough"))
        .await?
        .iter()
        .take(3)
    {
        println!("{:.3}  {}", hit.score, hit.source_uri);
    }
    Ok(())
}
