//! Implement your own `DocumentSource` (here: documents held in memory, as an app's own store
//! would hold them) and sync it like any other source.
//!
//! Run: `cargo run --example custom_source`

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use lancesync::engine::{Engine, EngineConfig, NoProgress, SearchRequest, SyncOptions};
use lancesync::ingest::HashingEmbedder;
use lancesync::sources::{DocumentSource, Error, Listing, Result, SourceEntry};

/// Documents keyed by a uri whose extension gives the type (`.md`, `.txt`, `.html`, ...).
#[derive(Debug, Default)]
struct MemorySource {
    docs: Mutex<BTreeMap<String, (i64, Vec<u8>)>>,
}

impl MemorySource {
    fn put(&self, uri: &str, version: i64, body: &str) {
        self.docs
            .lock()
            .unwrap()
            .insert(uri.into(), (version, body.as_bytes().to_vec()));
    }
}

#[async_trait]
impl DocumentSource for MemorySource {
    fn id(&self) -> &str {
        "memory"
    }

    fn source_type(&self) -> &'static str {
        "memory"
    }

    async fn list(&self) -> Result<Listing> {
        let entries = self
            .docs
            .lock()
            .unwrap()
            .iter()
            // The version stands in for a modification time: a new version is a change.
            .map(|(uri, (version, body))| SourceEntry {
                version: Some(version.to_string()),
                ..SourceEntry::new(uri.clone(), body.len() as u64, *version)
            })
            .collect();
        Ok(Listing {
            entries,
            ..Default::default()
        })
    }

    async fn read(&self, entry: &SourceEntry) -> Result<Vec<u8>> {
        let docs = self.docs.lock().unwrap();
        docs.get(&entry.uri)
            .map(|(_, b)| b.clone())
            .ok_or_else(|| Error::Read {
                uri: entry.uri.clone(),
                reason: "gone".into(),
            })
    }
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let data = tempfile::tempdir()?;
    let engine = Engine::new(
        EngineConfig::new(data.path()),
        Arc::new(HashingEmbedder::default()),
    )?;
    let source = MemorySource::default();
    source.put(
        "mem://notes/meeting.md",
        1,
        "# Meeting\n\nWe chose LanceDB for the index.",
    );
    source.put("mem://notes/todo.txt", 1, "Buy tomatoes and basil.");
    let report = engine
        .sync("u1", &source, SyncOptions::default(), &NoProgress)
        .await?;
    println!("first run: created {}", report.created);

    source.put("mem://notes/todo.txt", 2, "Buy tomatoes, basil and bread.");
    let report = engine
        .sync("u1", &source, SyncOptions::default(), &NoProgress)
        .await?;
    println!(
        "second run: updated {}, unchanged {}",
        report.updated, report.unchanged
    );

    let hits = engine.search("u1", &SearchRequest::new("bread")).await?;
    println!("best match for 'bread': {}", hits[0].source_uri);
    Ok(())
}
