//! Sync runs over real LanceDB tables in temp dirs.
//! Run: cargo test -p lancesync-engine --test sync

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use lancesync_engine::{
    Engine, EngineConfig, Error, NoProgress, Progress, SearchMode, SearchRequest, SyncOptions,
    SyncReport,
};
use lancesync_ingest::{DocType, Embedder, EmbedderIdentity, HashingEmbedder};
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

/// An embedder that counts the texts it embeds.
#[derive(Debug, Default)]
struct CountingEmbedder {
    inner: HashingEmbedder,
    texts: AtomicUsize,
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
}

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
        local.file_patterns = patterns.iter().map(|p| p.to_string()).collect();
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
        self.embedder.texts.load(Ordering::SeqCst)
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

#[tokio::test]
async fn every_change_type_and_a_second_run_reads_nothing() {
    let f = Fixture::new(|_| {});
    f.write(
        "notes/rivers.md",
        format!("# Rivers\n\n{}", text("rivers", 8)),
    );
    f.write("mountains.txt", text("mountains", 5));
    f.write(
        "page.html",
        format!(
            "<html><head><title>Oceans</title></head><body><p>{}</p></body></html>",
            text("oceans", 3)
        ),
    );
    f.write(
        "report.pdf",
        pdf(&["Deserts cover a third of the land.", "Deserts are dry."]),
    );
    f.write(
        "memo.docx",
        Docx::new()
            .title("Forest memo")
            .heading(1, "Forests")
            .paragraph(&text("forests", 2))
            .build(),
    );
    f.write("empty.txt", "");

    let r = f.sync().await;
    assert_eq!(
        (r.created, r.updated, r.failed, r.unchanged),
        (6, 0, 0, 0),
        "{r:#?}"
    );
    assert!(r.chunks_written > 6 && r.bytes_read > 0);
    f.assert_consistent().await;
    let embedded = f.embedded();

    // Nothing changed: no file is read, nothing is embedded.
    let r = f.sync().await;
    assert_eq!(
        (r.created, r.updated, r.unchanged, r.deleted),
        (0, 0, 6, 0),
        "{r:#?}"
    );
    assert!(
        f.reads().is_empty(),
        "unchanged files were read: {:?}",
        f.reads()
    );
    assert_eq!(f.embedded(), embedded);

    // Updated content: re-indexed, old chunks replaced (fewer paragraphs now).
    f.write(
        "notes/rivers.md",
        format!("# Rivers\n\n{}", text("rivers and lakes", 2)),
    );
    // Touched: same bytes, new mtime: metadata only.
    set_mtime(&f.docs.join("mountains.txt"), 60);
    // Moved: renamed, same content: no re-extraction, no re-embedding.
    std::fs::rename(f.docs.join("page.html"), f.docs.join("renamed-page.html")).unwrap();
    // Deleted.
    std::fs::remove_file(f.docs.join("empty.txt")).unwrap();
    let before_update = f.embedded();
    let r = f.sync().await;
    assert_eq!(
        (
            r.created,
            r.updated,
            r.touched,
            r.moved,
            r.deleted,
            r.unchanged
        ),
        (0, 1, 1, 1, 1, 2),
        "{r:#?}"
    );
    let rivers_chunks = f.embedded() - before_update;
    assert!(rivers_chunks > 0, "the updated file was embedded");
    // Only the updated file's chunks were embedded: the touched and moved ones were not.
    let tables = f.engine.tables("alice").await.unwrap();
    let rivers = tables
        .docs_where(Some("title = 'Rivers'".into()))
        .await
        .unwrap();
    assert_eq!(rivers[0].total_chunks as usize, rivers_chunks);
    f.assert_consistent().await;
    assert!(
        f.uris()
            .await
            .iter()
            .any(|u| u.ends_with("renamed-page.html"))
    );
    assert!(
        !f.uris()
            .await
            .iter()
            .any(|u| u.ends_with("/page.html") || u.ends_with("empty.txt"))
    );

    // Searches see the new state.
    let hits = f
        .engine
        .search(
            "alice",
            &SearchRequest {
                mode: SearchMode::FullText,
                ..SearchRequest::new("oceans")
            },
        )
        .await
        .unwrap();
    assert!(
        !hits.is_empty()
            && hits
                .iter()
                .all(|h| h.source_uri.ends_with("renamed-page.html")),
        "{hits:#?}"
    );
    assert_eq!(hits[0].title, "Oceans");
    let hits = f
        .engine
        .search("alice", &SearchRequest::new("lakes"))
        .await
        .unwrap();
    assert!(hits[0].source_uri.ends_with("rivers.md"));
    assert!(
        hits.iter()
            .all(|h| !h.chunk_text.contains("detail number 7")),
        "stale chunks of the old version remain"
    );
}

#[tokio::test]
async fn search_modes_filters_and_injection() {
    let f = Fixture::new(|_| {});
    f.write(
        "a.md",
        format!("# Astronomy\n\n{}", text("telescopes and galaxies", 4)),
    );
    f.write("b.txt", text("sourdough bread baking", 4));
    f.write(
        "c.pdf",
        pdf(&["Telescopes gather light from distant galaxies."]),
    );
    f.sync().await;
    for mode in [SearchMode::Vector, SearchMode::FullText, SearchMode::Hybrid] {
        let hits = f
            .engine
            .search(
                "alice",
                &SearchRequest {
                    mode,
                    limit: 3,
                    ..SearchRequest::new("bread baking")
                },
            )
            .await
            .unwrap();
        assert!(!hits.is_empty() && hits.len() <= 3, "{mode:?}");
        assert!(
            hits[0].source_uri.ends_with("b.txt"),
            "{mode:?}: {:?}",
            hits[0]
        );
        assert!(
            hits.windows(2).all(|w| w[0].score >= w[1].score),
            "{mode:?} sorted by score"
        );
        let h = &hits[0];
        assert!(
            !h.doc_id.is_empty()
                && h.source_id == "docs"
                && h.doc_type == "txt"
                && !h.chunk_text.is_empty()
        );
    }
    let pdf_only = SearchRequest {
        doc_type: Some(DocType::Pdf),
        ..SearchRequest::new("galaxies telescopes")
    };
    let hits = f.engine.search("alice", &pdf_only).await.unwrap();
    assert!(!hits.is_empty() && hits.iter().all(|h| h.doc_type == "pdf"));
    let other_source = SearchRequest {
        source_id: Some("elsewhere".into()),
        ..SearchRequest::new("galaxies")
    };
    assert!(
        f.engine
            .search("alice", &other_source)
            .await
            .unwrap()
            .is_empty()
    );

    // Injection attempts are refused before they reach a filter.
    let evil = SearchRequest {
        source_id: Some("docs' OR '1'='1".into()),
        ..SearchRequest::new("x")
    };
    assert!(matches!(
        f.engine.search("alice", &evil).await,
        Err(Error::InvalidId { .. })
    ));
    for user in ["../bob", "a/b", "x' OR 1=1 --", ""] {
        assert!(
            matches!(
                f.engine.search(user, &SearchRequest::new("x")).await,
                Err(Error::InvalidId { .. })
            ),
            "{user}"
        );
    }
    assert!(
        f.engine
            .search("alice", &SearchRequest::new("  "))
            .await
            .is_err()
    );
    assert!(
        f.engine
            .search(
                "alice",
                &SearchRequest {
                    limit: 0,
                    ..SearchRequest::new("x")
                }
            )
            .await
            .is_err()
    );
    // Another user sees nothing of alice's.
    assert!(
        f.engine
            .search("bob", &SearchRequest::new("galaxies"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn failures_are_recorded_retried_and_cleared() {
    let f = Fixture::new(|c| c.max_retries = 2);
    f.write("good.md", "# Good\n\nfine text");
    f.write("bad.pdf", b"%PDF-1.7 this is not really a pdf");
    f.write("locked.pdf", lancesync_testkit::encrypted_pdf(&["secret"]));
    let r = f.sync().await;
    assert_eq!((r.created, r.failed), (1, 2), "{r:#?}");
    let reasons: Vec<_> = r.failures.iter().map(|x| x.reason.as_str()).collect();
    assert!(
        reasons.iter().any(|x| x.contains("damaged beyond repair")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|x| x.contains("encrypted PDF")),
        "{reasons:?}"
    );
    let failed = f.engine.failed("alice").await.unwrap();
    assert_eq!(failed.len(), 2);
    assert!(
        failed
            .iter()
            .all(|d| d.attempts == 1 && d.error_message.is_some())
    );
    let status = f.engine.status("alice").await.unwrap();
    assert_eq!(
        (status.documents, status.failed, status.pending_retry),
        (1, 2, 2)
    );

    // Retried (backoff zero) until MAX_RETRIES, then left waiting.
    let r = f.sync().await;
    assert_eq!((r.failed, r.unchanged), (2, 1));
    assert!(
        f.engine
            .failed("alice")
            .await
            .unwrap()
            .iter()
            .all(|d| d.attempts == 2)
    );
    let r = f.sync().await;
    assert_eq!((r.failed, r.waiting_retry), (0, 2), "{r:#?}");
    assert!(f.reads().is_empty());
    // `retry` forces it.
    let r = f
        .sync_with(SyncOptions {
            retry_failed: true,
            ..Default::default()
        })
        .await;
    assert_eq!(r.failed, 2);

    // Fixing the content retries at once and succeeds.
    f.write("bad.pdf", pdf(&["Now a real PDF about volcanoes."]));
    let r = f.sync().await;
    assert_eq!((r.updated, r.waiting_retry), (1, 1), "{r:#?}");
    assert_eq!(f.engine.failed("alice").await.unwrap().len(), 1);
    f.assert_consistent().await;

    assert_eq!(f.engine.clear_failures("alice").await.unwrap(), 1);
    assert!(f.engine.failed("alice").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_lancesync_cannot_take_go_to_the_legacy_fallback() {
    let legacy = lancesync_testkit::LegacyIngestServer::start().await;
    let url = reqwest::Url::parse(&legacy.url).unwrap();
    let f = Fixture::new_with_patterns(&["*.md", "*.pdf", "*.xlsx"], |c| {
        c.legacy_fallback =
            Some(lancesync_engine::LegacyFallback::new(url, Duration::from_secs(10)).unwrap())
    });
    f.write("good.md", "# Good\n\nlancesync reads this one");
    f.write(
        "budget.xlsx",
        b"PK\x03\x04 a spreadsheet lancesync does not read",
    );
    f.write("scan.pdf", b"%PDF-1.7 damaged beyond any repair");
    f.write("refused.pdf", b"%PDF-1.7 the fallback refuses this one too");
    legacy.refuse("refused.pdf");
    let r = f.sync().await;
    assert_eq!((r.created, r.legacy, r.failed), (1, 2, 1), "{r:#?}");
    assert!(
        r.failures[0]
            .reason
            .contains("the legacy fallback did not take it either")
            && r.failures[0].reason.contains("422"),
        "{:?}",
        r.failures
    );
    let uploads = legacy.uploads();
    let mut names: Vec<&str> = uploads.iter().map(|u| u.file_name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["budget.xlsx", "scan.pdf"]);
    let budget = uploads
        .iter()
        .find(|u| u.file_name == "budget.xlsx")
        .unwrap();
    assert_eq!(
        budget.bytes,
        b"PK\x03\x04 a spreadsheet lancesync does not read"
    );
    assert_eq!(budget.fields["user_id"], "alice");
    assert_eq!(budget.fields["source_id"], "docs");
    assert!(budget.fields["source_uri"].ends_with("budget.xlsx"));

    // The rows say which path took each document.
    let tables = f.engine.tables("alice").await.unwrap();
    let rows = tables
        .docs_where(Some(format!(
            "processing_status = '{}'",
            lancesync_engine::STATUS_LEGACY
        )))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let metadata: serde_json::Value = serde_json::from_str(&rows[0].metadata_json).unwrap();
    assert_eq!(metadata["ingested_by"], "legacy_fallback", "{metadata}");
    assert_eq!(metadata["fallback_status"], 202);
    assert!(
        rows.iter()
            .all(|d| d.total_chunks == 0 && d.error_message.is_some())
    );

    // Unchanged next time: nothing is posted again.
    let r = f.sync().await;
    assert_eq!((r.unchanged, r.legacy), (3, 0), "{r:#?}");
    assert_eq!(legacy.uploads().len(), 2);
}

#[tokio::test]
async fn documents_over_chunk_size_mb_fail_without_being_read() {
    let f = Fixture::new(|c| c.max_document_bytes = 2 << 20);
    f.write("small.md", "# Small\n\nfits easily");
    f.write("huge.txt", "x".repeat(3 << 20));
    let r = f.sync().await;
    assert_eq!((r.created, r.failed), (1, 1), "{r:#?}");
    assert!(
        r.failures[0].reason.contains("over the 2 MB")
            && r.failures[0].reason.contains("CHUNK_SIZE_MB"),
        "{:?}",
        r.failures
    );
    assert!(
        !f.reads().iter().any(|u| u.ends_with("huge.txt")),
        "the listed size decided: {:?}",
        f.reads()
    );
    // Within the limit again, it is indexed.
    f.write("huge.txt", "not so huge any more");
    let r = f.sync().await;
    assert_eq!((r.updated, r.failed), (1, 0), "{r:#?}");
}

#[tokio::test]
async fn a_failed_update_keeps_the_last_good_version_searchable() {
    let f = Fixture::new(|_| {});
    f.write("doc.pdf", pdf(&["Glaciers carve valleys."]));
    f.sync().await;
    f.write("doc.pdf", b"%PDF-1.4 truncated garbage");
    let r = f.sync().await;
    assert_eq!(r.failed, 1);
    let hits = f
        .engine
        .search("alice", &SearchRequest::new("glaciers valleys"))
        .await
        .unwrap();
    assert!(!hits.is_empty(), "old chunks kept");
    assert_eq!(f.engine.failed("alice").await.unwrap()[0].total_chunks, 1);
}

#[tokio::test]
async fn a_missing_watch_path_deletes_nothing() {
    let f = Fixture::new(|_| {});
    f.write("sub/a.md", "# A\n\nalpha");
    f.write("sub/b.md", "# B\n\nbeta");
    let source = local_source("docs", &f.docs.join("sub"));
    f.engine
        .sync("alice", &source, SyncOptions::default(), &NoProgress)
        .await
        .unwrap();
    std::fs::rename(f.docs.join("sub"), f.docs.join("unplugged")).unwrap();
    let r = f
        .engine
        .sync("alice", &source, SyncOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(r.deleted, 0);
    assert!(r.issues[0].reason.contains("does not exist"));
    assert_eq!(f.engine.status("alice").await.unwrap().documents, 2);
}

#[tokio::test]
async fn the_mass_delete_guard_withholds_deletions_until_confirmed() {
    let f = Fixture::new(|_| {});
    for i in 0..20 {
        f.write(&format!("n{i:02}.txt"), format!("note {i}"));
    }
    f.sync().await;
    for i in 0..15 {
        std::fs::remove_file(f.docs.join(format!("n{i:02}.txt"))).unwrap();
    }
    f.write("new.txt", "a new note");
    let r = f.sync().await;
    let blocked = r.mass_delete_blocked.clone().expect("guard tripped");
    assert_eq!(
        (
            blocked.would_delete,
            blocked.documents,
            r.deleted,
            r.created
        ),
        (15, 20, 0, 1)
    );
    assert_eq!(f.engine.status("alice").await.unwrap().documents, 21);
    let r = f
        .sync_with(SyncOptions {
            allow_mass_delete: true,
            ..Default::default()
        })
        .await;
    assert_eq!((r.deleted, r.mass_delete_blocked), (15, None));
    assert_eq!(f.engine.status("alice").await.unwrap().documents, 6);
    // Below the minimum count the guard never trips.
    for i in 15..20 {
        std::fs::remove_file(f.docs.join(format!("n{i:02}.txt"))).unwrap();
    }
    assert_eq!(f.sync().await.deleted, 5);
}

#[tokio::test]
async fn versions_grow_with_batches_not_documents() {
    let f = Fixture::new(|c| c.batch_docs = 100);
    for i in 0..250 {
        f.write(
            &format!("d{i:03}.txt"),
            format!("document number {i} about topic {}", i % 7),
        );
    }
    let tables = f.engine.tables("alice").await.unwrap();
    let (d0, c0) = (
        tables.docs.version().await.unwrap(),
        tables.chunks.version().await.unwrap(),
    );
    let r = f.sync().await;
    assert_eq!(r.created, 250);
    let (d1, c1) = (
        tables.docs.version().await.unwrap(),
        tables.chunks.version().await.unwrap(),
    );
    // 3 batches: one docs write each; chunks: one write each plus index maintenance.
    assert!(
        d1 - d0 <= 5,
        "documents table went from version {d0} to {d1}"
    );
    assert!(c1 - c0 <= 10, "chunks table went from version {c0} to {c1}");
    f.assert_consistent().await;
}

#[tokio::test]
async fn another_embedder_is_refused_with_the_reindex_command() {
    let f = Fixture::new(|_| {});
    f.write("a.md", "text");
    f.sync().await;
    let other = Engine::new(EngineConfig::new(&f.db), Arc::new(HashingEmbedder::new(64))).unwrap();
    let err = other
        .search("alice", &SearchRequest::new("text"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::EmbedderMismatch { .. }));
    assert!(
        err.to_string().contains("sync-cli reindex --user alice"),
        "{err}"
    );
    // Dropping the user's tables lets the other embedder rebuild them.
    other.drop_user("alice").await.unwrap();
    let r = other
        .sync("alice", &f.source, SyncOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(r.created, 1);
}

#[tokio::test]
async fn an_interrupted_run_is_repaired() {
    // Simulate a crash after a batch's chunks were written and before its document rows:
    // chunks without a document, and the run marker left behind.
    let f = Fixture::new(|_| {});
    f.write("keep.md", "# Keep\n\nkept text");
    f.write("gone.md", "# Gone\n\nthis file disappears");
    f.sync().await;
    let tables = f.engine.tables("alice").await.unwrap();
    let gone = tables
        .docs_where(Some("title = 'Gone'".into()))
        .await
        .unwrap()
        .remove(0);
    tables
        .docs
        .delete(&format!("doc_id = '{}'", gone.doc_id))
        .await
        .unwrap();
    std::fs::remove_file(f.docs.join("gone.md")).unwrap();
    let marker = f.db.join("users/alice/.lancesync/docs.running");
    std::fs::write(&marker, "crashed").unwrap();

    let r = f.sync().await;
    assert_eq!(r.repaired, 1, "{r:#?}");
    assert!(!marker.exists());
    f.assert_consistent().await;
    assert!(
        f.engine
            .search("alice", &SearchRequest::new("disappears"))
            .await
            .unwrap()
            .iter()
            .all(|h| !h.source_uri.ends_with("gone.md"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn engines_opening_the_same_new_user_at_once_share_the_tables() {
    // Several processes (here engines on worker threads) creating one user's tables at the
    // same moment: all succeed and share the same tables. Repeated over users, because the
    // window this guards is a few milliseconds wide.
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("a.md"), "# A\n\nshared tables").unwrap();
    let engines: Vec<Arc<Engine>> = (0..4)
        .map(|_| {
            Arc::new(
                Engine::new(
                    EngineConfig::new(dir.path().join("db")),
                    Arc::new(HashingEmbedder::default()),
                )
                .unwrap(),
            )
        })
        .collect();
    for user in ["carol", "dave", "erin", "frank", "grace", "heidi"] {
        let tasks = engines.iter().map(|e| {
            let e = Arc::clone(e);
            tokio::spawn(async move { e.tables(user).await.map(|_| ()) })
        });
        let opened = futures::future::join_all(tasks).await;
        let errors: Vec<String> = opened
            .into_iter()
            .map(|joined| joined.unwrap())
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        assert!(errors.is_empty(), "user {user}: {errors:?}");
        let source = local_source("docs", &docs);
        engines[0]
            .sync(user, &source, SyncOptions::default(), &NoProgress)
            .await
            .unwrap();
        for engine in &engines {
            assert_eq!(engine.status(user).await.unwrap().documents, 1, "{user}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_of_the_same_source_is_refused_while_one_runs() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for i in 0..40 {
        std::fs::write(
            docs.join(format!("d{i}.md")),
            format!("# Doc {i}\n\n{}", "words to embed ".repeat(400)),
        )
        .unwrap();
    }
    let engine = |_| {
        Arc::new(
            Engine::new(
                EngineConfig::new(dir.path().join("db")),
                Arc::new(HashingEmbedder::default()),
            )
            .unwrap(),
        )
    };
    let (first, second) = (engine(0), engine(1));
    // The first run holds the source's lock from before listing until it has written; a
    // progress callback tells us it is inside.
    let (inside_tx, inside_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    type Channels = (std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>);
    struct Gate(Mutex<Option<Channels>>);
    impl Progress for Gate {
        fn start(&self, _total: usize) {
            if let Some((inside, release)) = self.0.lock().unwrap().take() {
                inside.send(()).unwrap();
                release.recv().unwrap();
            }
        }
    }
    let gate = Gate(Mutex::new(Some((inside_tx, release_rx))));
    let source = local_source("docs", &docs);
    let running = tokio::spawn({
        let first = Arc::clone(&first);
        let source = local_source("docs", &docs);
        async move {
            first
                .sync("ivan", &source, SyncOptions::default(), &gate)
                .await
        }
    });
    tokio::task::spawn_blocking(move || inside_rx.recv().unwrap())
        .await
        .unwrap();
    let refused = second
        .sync("ivan", &source, SyncOptions::default(), &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, Error::Busy { source_id, holder, .. }
            if source_id == "docs" && *holder == Some(std::process::id())),
        "{refused:?}"
    );
    assert!(
        refused.to_string().contains("being synced by another run"),
        "{refused}"
    );
    // Another source of the same user is not held up.
    let other = local_source("other", &docs);
    second
        .sync("ivan", &other, SyncOptions::default(), &NoProgress)
        .await
        .unwrap();
    release_tx.send(()).unwrap();
    let report = running.await.unwrap().unwrap();
    assert_eq!(report.created, 40);
    // Once the first run is over the source is free again, and nothing is left to do.
    let again = second
        .sync("ivan", &source, SyncOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!((again.created, again.unchanged), (0, 40));
}

#[tokio::test]
async fn reads_for_an_unknown_user_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(
        EngineConfig::new(dir.path().join("db")),
        Arc::new(HashingEmbedder::default()),
    )
    .unwrap();
    let status = engine.status("nobody").await.unwrap();
    assert_eq!(
        (status.documents, status.chunks, status.embedder),
        (0, 0, None)
    );
    assert!(
        engine
            .search("nobody", &SearchRequest::new("x"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(engine.failed("nobody").await.unwrap().is_empty());
    assert_eq!(engine.clear_failures("nobody").await.unwrap(), 0);
    assert_eq!(
        engine
            .remove_source_documents("nobody", "docs")
            .await
            .unwrap(),
        0
    );
    assert!(engine.last_runs("nobody").await.unwrap().is_empty());
    assert!(!engine.user_exists("nobody").await.unwrap());
    // Requests are still checked, and ids still validated.
    assert!(
        engine
            .search("nobody", &SearchRequest::new("  "))
            .await
            .is_err()
    );
    assert!(engine.status("../etc").await.is_err());
    assert!(
        !dir.path().join("db").join("users").join("nobody").exists(),
        "a read must not create the user's database"
    );
    engine.tables("nobody").await.unwrap();
    assert!(engine.user_exists("nobody").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_builds_the_vector_index_midway_and_keeps_it_current() {
    let f = Fixture::new(|c| {
        c.batch_docs = 20;
        c.tables.vector_index_rows = 600;
        c.tables.fold_during_run_rows = 300;
    });
    for i in 0..150 {
        f.write(&format!("n{i:03}.md"), text(&format!("topic{i}"), 25));
    }
    let report = f.sync().await;
    assert_eq!(report.created, 150);
    let tables = f.engine.existing_tables("alice").await.unwrap().unwrap();
    let rows = tables.chunks.count_rows(None).await.unwrap();
    assert!(rows > 1_500, "enough rows to need folds: {rows}");
    let indices = tables.chunks.list_indices().await.unwrap();
    let vector = indices
        .iter()
        .find(|i| i.columns.iter().any(|c| c == "vector"))
        .expect("a vector index was built during the run");
    let stats = tables
        .chunks
        .index_stats(&vector.name)
        .await
        .unwrap()
        .unwrap();
    // Built at the threshold, then folded during the run: what is left unindexed is less
    // than one fold's worth (the end of the run folds only past its own threshold).
    assert!(stats.num_unindexed_rows < 300, "{stats:?}");
    assert_eq!(stats.num_indexed_rows + stats.num_unindexed_rows, rows);
    // Folded after the build (more rows indexed than the build saw, which is at most one
    // batch past the threshold), into the index's one segment (searches scan one).
    assert!(
        stats.num_indexed_rows >= 600 + 300,
        "folded during the run: {stats:?}"
    );
    assert_eq!(stats.num_indices, Some(1), "one segment: {stats:?}");
    assert!(
        !report
            .maintenance
            .created_indexes
            .iter()
            .any(|i| i.starts_with("vector")),
        "the index was not left for the end: {:?}",
        report.maintenance
    );
    let mut request = SearchRequest::new("topic42");
    request.mode = SearchMode::Vector;
    let hits = f.engine.search("alice", &request).await.unwrap();
    assert!(
        hits.iter().any(|h| h.chunk_text.contains("topic42")),
        "{hits:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_fragments_are_compacted_once_they_pile_up() {
    let f = Fixture::new(|c| c.batch_docs = 2);
    for i in 0..40 {
        f.write(&format!("c{i:02}.md"), text(&format!("subject{i}"), 3));
    }
    let report = f.sync().await;
    assert_eq!(report.created, 40);
    // 20 batches wrote 20 fragments to each table: compacted at the end of the run.
    assert_eq!(
        report.maintenance.compacted,
        ["processed_documents", "document_chunks"]
    );
    let tables = f.engine.existing_tables("alice").await.unwrap().unwrap();
    let docs = tables.docs.stats().await.unwrap();
    assert_eq!(
        (docs.num_rows, docs.fragment_stats.num_fragments),
        (40, 1),
        "{docs:?}"
    );
    assert_eq!(
        tables
            .chunks
            .stats()
            .await
            .unwrap()
            .fragment_stats
            .num_fragments,
        1
    );

    // Ten updates in five batches leave six fragments: fewer than would be worth a rewrite.
    for i in 0..10 {
        f.write(&format!("c{i:02}.md"), text(&format!("changed{i}"), 4));
    }
    let report = f.sync().await;
    assert_eq!(report.updated, 10);
    assert!(report.maintenance.compacted.is_empty(), "{report:?}");
    f.assert_consistent().await;
    let mut request = SearchRequest::new("changed7");
    request.mode = SearchMode::FullText;
    let hits = f.engine.search("alice", &request).await.unwrap();
    assert!(
        hits.iter().any(|h| h.chunk_text.contains("changed7")),
        "{hits:?}"
    );
}
