//! What the remote-source tests share: an index in a temp dir with an embedder that counts
//! what it embeds, and generated text.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use lancesync_engine::{Engine, EngineConfig, NoProgress, SearchRequest, SyncOptions};
use lancesync_sources::DocumentSource;

pub use lancesync_testkit::CountingEmbedder;

pub struct Index {
    _dir: tempfile::TempDir,
    pub engine: Arc<Engine>,
    pub embedder: Arc<CountingEmbedder>,
}

impl Index {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = EngineConfig::new(dir.path().join("db"));
        config.retry_backoff = Duration::ZERO;
        let embedder = Arc::new(CountingEmbedder::default());
        let engine = Arc::new(Engine::new(config, embedder.clone()).unwrap());
        Self {
            _dir: dir,
            engine,
            embedder,
        }
    }

    pub async fn sync(&self, source: &dyn DocumentSource) -> lancesync_engine::SyncReport {
        self.try_sync(source).await.unwrap()
    }

    pub async fn try_sync(
        &self,
        source: &dyn DocumentSource,
    ) -> lancesync_engine::Result<lancesync_engine::SyncReport> {
        self.engine
            .sync("alice", source, SyncOptions::default(), &NoProgress)
            .await
    }

    pub fn embedded(&self) -> usize {
        self.embedder.embedded()
    }

    pub async fn uris(&self) -> Vec<String> {
        let tables = self.engine.tables("alice").await.unwrap();
        let mut uris: Vec<String> = tables
            .docs_where(None)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.source_uri)
            .collect();
        uris.sort();
        uris
    }

    pub async fn chunk_rows(&self) -> usize {
        let tables = self.engine.tables("alice").await.unwrap();
        tables.chunks.count_rows(None).await.unwrap()
    }

    pub async fn cursor(&self, source_id: &str) -> Option<String> {
        let tables = self.engine.tables("alice").await.unwrap();
        tables.cursor(source_id).await.unwrap()
    }

    pub async fn top_title(&self, query: &str) -> String {
        let hits = self
            .engine
            .search("alice", &SearchRequest::new(query))
            .await
            .unwrap();
        hits.first().map(|h| h.title.clone()).unwrap_or_default()
    }
}

pub fn text(topic: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "Paragraph {i} is about {topic}. It mentions {topic} again, with detail {i}.\n\n"
            )
        })
        .collect()
}

/// Start a sync of `source` for alice in the background and abort it once `reached()` holds
/// (then after `settle` more), as a crash or a stop would; the run must still be going.
pub async fn abort_sync_when(
    index: &Index,
    source: Arc<dyn DocumentSource>,
    settle: Duration,
    reached: impl Fn() -> bool,
) {
    let engine = index.engine.clone();
    let run = tokio::spawn(async move {
        engine
            .sync(
                "alice",
                source.as_ref(),
                SyncOptions::default(),
                &NoProgress,
            )
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reached() {
        assert!(
            Instant::now() < deadline,
            "the run did not get there in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(settle).await;
    run.abort();
    assert!(
        run.await.unwrap_err().is_cancelled(),
        "the run was still going"
    );
}

impl Index {
    /// Every document's chunks are there once: as many chunk rows as the rows count.
    pub async fn assert_no_duplicate_chunks(&self) {
        let tables = self.engine.tables("alice").await.unwrap();
        let total: i32 = tables
            .docs_where(None)
            .await
            .unwrap()
            .iter()
            .map(|d| d.total_chunks)
            .sum();
        assert_eq!(
            self.chunk_rows().await,
            total as usize,
            "no duplicate chunks"
        );
    }
}
