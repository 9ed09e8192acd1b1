//! Sync a folder into a per-user LanceDB index and search it, with the engine as a library.
//!
//! Run: `cargo run --example sync_and_search -- examples/sample-docs "tomato watering"`

use std::sync::Arc;

use lancesync::engine::{Engine, EngineConfig, NoProgress, SearchRequest, SyncOptions};
use lancesync::ingest::HashingEmbedder;
use lancesync::sources::{LocalFsConfig, LocalFsSource};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let folder =
        std::fs::canonicalize(args.next().unwrap_or_else(|| "examples/sample-docs".into()))?;
    let query = args
        .next()
        .unwrap_or_else(|| "vector database versions".into());
    let data = tempfile::tempdir()?; // a real application keeps this, e.g. data/lancedb

    let engine = Engine::new(
        EngineConfig::new(data.path()),
        Arc::new(HashingEmbedder::default()),
    )?;
    let config = LocalFsConfig::new([folder.to_string_lossy().into_owned()]);
    let source = LocalFsSource::new("folder", config, &std::env::vars().collect())?;
    let report = engine
        .sync("example-user", &source, SyncOptions::default(), &NoProgress)
        .await?;
    println!(
        "indexed {} documents ({} chunks)",
        report.created, report.chunks_written
    );

    for hit in engine
        .search("example-user", &SearchRequest::new(query))
        .await?
    {
        println!("{:.3}  {}  #{}", hit.score, hit.source_uri, hit.chunk_index);
    }
    Ok(())
}
