//! Sync runs over real LanceDB tables in temp dirs.
//! Run: cargo test --workspace --test sync

mod changes;
mod check;
mod dry_run;
mod failures;
mod reindex;
mod search;
mod tables;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use lancesync_engine::{
    Engine, EngineConfig, Error, NoProgress, Progress, SearchMode, SearchRequest, SyncOptions,
    SyncReport,
};
use lancesync_ingest::{DocType, HashingEmbedder};
use lancesync_sources::{DocumentSource, Listing, LocalFsConfig, LocalFsSource, SourceEntry};
use lancesync_testkit::{Docx, pdf};

/// A source that counts reads, around the real local source.
#[derive(Debug)]
struct Counting {
    inner: LocalFsSource,
    reads: Mutex<Vec<String>>,
}

#[async_trait]
impl DocumentSource for Counting {
    fn id(&self) -> &str {
        self.inner.id()
    }
    fn source_type(&self) -> &'static str {
        self.inner.source_type()
    }
    async fn list(&self) -> lancesync_sources::Result<Listing> {
        self.inner.list().await
    }
    async fn read(&self, entry: &SourceEntry) -> lancesync_sources::Result<Vec<u8>> {
        self.reads.lock().unwrap().push(entry.uri.clone());
        self.inner.read(entry).await
    }
}

use lancesync_testkit::CountingEmbedder;

struct Fixture {
    _dir: tempfile::TempDir,
    docs: PathBuf,
    db: PathBuf,
    engine: Engine,
    embedder: Arc<CountingEmbedder>,
    source: Counting,
}

impl Fixture {
    fn new(tweak: impl FnOnce(&mut EngineConfig)) -> Self {
        Self::new_with_patterns(lancesync_sources::DEFAULT_PATTERNS, tweak)
    }

    fn new_with_patterns(patterns: &[&str], tweak: impl FnOnce(&mut EngineConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let docs = dir.path().join("docs");
        let db = dir.path().join("db");
        std::fs::create_dir_all(&docs).unwrap();
        let mut config = EngineConfig::new(&db);
        config.chunking.size = 200;
        config.chunking.overlap = 40;
        config.retry_backoff = Duration::ZERO;
        tweak(&mut config);
        let embedder = Arc::new(CountingEmbedder::default());
        let engine = Engine::new(config, embedder.clone()).unwrap();
        let mut local = LocalFsConfig::new([docs.to_str().unwrap()]);
        local.filter.file_patterns = Some(patterns.iter().map(|p| p.to_string()).collect());
        let source = Counting {
            inner: LocalFsSource::new("docs", local, &BTreeMap::new()).unwrap(),
            reads: Mutex::default(),
        };
        Self {
            _dir: dir,
            docs,
            db,
            engine,
            embedder,
            source,
        }
    }

    fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) {
        let path = self.docs.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    async fn sync(&self) -> SyncReport {
        self.sync_with(SyncOptions::default()).await
    }

    async fn sync_with(&self, options: SyncOptions) -> SyncReport {
        self.source.reads.lock().unwrap().clear();
        self.engine
            .sync("alice", &self.source, options, &NoProgress)
            .await
            .unwrap()
    }

    fn reads(&self) -> Vec<String> {
        self.source.reads.lock().unwrap().clone()
    }

    fn embedded(&self) -> usize {
        self.embedder.embedded()
    }

    /// The tables agree with each other: no duplicate chunk ids, no chunk without a document,
    /// every document's chunk count matches its rows.
    async fn assert_consistent(&self) {
        let tables = self.engine.tables("alice").await.unwrap();
        let docs = tables.docs_where(None).await.unwrap();
        let ids: Vec<String> = docs.iter().map(|d| d.doc_id.clone()).collect();
        let chunks = tables.fetch_chunks(&ids).await.unwrap();
        let total = tables.chunks.count_rows(None).await.unwrap();
        assert_eq!(chunks.len(), total, "every chunk belongs to a document row");
        let unique: HashSet<_> = chunks.iter().map(|c| c.chunk_id.clone()).collect();
        assert_eq!(unique.len(), chunks.len(), "no duplicate chunks");
        let mut per_doc: BTreeMap<&str, i32> = BTreeMap::new();
        for c in &chunks {
            *per_doc.entry(c.doc_id.as_str()).or_default() += 1;
        }
        for d in docs.iter().filter(|d| d.processing_status == "completed") {
            assert_eq!(
                per_doc.get(d.doc_id.as_str()).copied().unwrap_or(0),
                d.total_chunks,
                "{}",
                d.source_uri
            );
        }
    }

    async fn uris(&self) -> Vec<String> {
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
}

fn local_source(id: &str, root: &Path) -> LocalFsSource {
    LocalFsSource::new(
        id,
        LocalFsConfig::new([root.to_str().unwrap()]),
        &BTreeMap::new(),
    )
    .unwrap()
}

fn text(topic: &str, n: usize) -> String {
    (0..n).map(|i| format!("Paragraph {i} is about {topic}. It mentions {topic} again, with detail number {i}.\n\n")).collect()
}

fn set_mtime(path: &Path, secs_from_now: i64) {
    let t = if secs_from_now >= 0 {
        SystemTime::now() + Duration::from_secs(secs_from_now as u64)
    } else {
        SystemTime::now() - Duration::from_secs((-secs_from_now) as u64)
    };
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}
