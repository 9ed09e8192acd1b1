//! Two engines as two instances of one cluster, coordinated by a real PostgreSQL server: a
//! user is written by one at a time, an instance that loses the coordinator stops writing, and
//! the instance that takes the user over repairs what the other left.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lancesync_coordinator::{CoordinatorOptions, PostgresCoordinator};
use lancesync_engine::rows::ChunkRow;
use lancesync_engine::{Engine, EngineConfig, Error, NoProgress, SyncOptions, ids};
use lancesync_ingest::{Embedder, EmbedderIdentity, HashingEmbedder, TokenCount};
use lancesync_sources::{LocalFsConfig, LocalFsSource};
use lancesync_testkit::Postgres;
use tokio::sync::Notify;

const TAKEOVER: Duration = Duration::from_secs(2);
const USER: &str = "alice";

/// The hashing embedder, which can be made to stop inside a run (as a slow embedding API
/// would), so that the run is in progress when its instance loses the coordinator.
#[derive(Debug, Default)]
struct GatedEmbedder {
    inner: HashingEmbedder,
    closed: AtomicBool,
    entered: Notify,
}

#[async_trait]
impl Embedder for GatedEmbedder {
    fn identity(&self) -> EmbedderIdentity {
        self.inner.identity()
    }

    async fn embed(&self, texts: &[String]) -> lancesync_ingest::Result<Vec<Vec<f32>>> {
        if self.closed.load(Ordering::SeqCst) {
            self.entered.notify_one();
            std::future::pending::<()>().await;
        }
        self.inner.embed(texts).await
    }

    fn count_tokens(&self, texts: &[String]) -> lancesync_ingest::Result<TokenCount> {
        self.inner.count_tokens(texts)
    }
}

async fn instance(pg: &Postgres, name: &str, db: &Path, embedder: Arc<dyn Embedder>) -> Engine {
    let coordinator = PostgresCoordinator::connect(CoordinatorOptions {
        takeover: TAKEOVER,
        instance_id: Some(name.into()),
        ..CoordinatorOptions::new(pg.url())
    })
    .await
    .expect("join the coordinator");
    Engine::new(EngineConfig::new(db), embedder)
        .expect("engine")
        .with_coordinator(Arc::new(coordinator))
}

fn source(root: &Path) -> LocalFsSource {
    LocalFsSource::new(
        "docs",
        LocalFsConfig::new([root.to_str().unwrap()]),
        &BTreeMap::new(),
    )
    .unwrap()
}

fn write_docs(root: &Path, names: &[&str]) {
    for name in names {
        let body: String = (0..12)
            .map(|i| format!("{name} paragraph {i} says something about {name}.\n\n"))
            .collect();
        std::fs::write(root.join(format!("{name}.md")), body).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_that_loses_the_coordinator_stops_and_the_next_one_repairs() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (db, root) = (dir.path().join("db"), dir.path().join("docs"));
    std::fs::create_dir_all(&root).unwrap();
    write_docs(&root, &["apple", "banana", "cherry"]);
    let gated = Arc::new(GatedEmbedder::default());
    let a = Arc::new(instance(&pg, "a", &db, gated.clone()).await);
    let b = instance(&pg, "b", &db, Arc::new(HashingEmbedder::default())).await;
    let docs = source(&root);

    let first = a
        .sync(USER, &docs, SyncOptions::default(), &NoProgress)
        .await
        .expect("a syncs");
    assert_eq!(first.created, 3);

    // a, mid-write: chunks of another source's document written, its row not yet (what a
    // process killed between the two commits leaves) ...
    let guard = a.write_guard(USER).await.expect("a holds alice");
    let tables = a.tables(USER).await.unwrap();
    let orphan = ids::doc_id(USER, "notes", "/notes/half-written.md");
    tables
        .add_chunks(&[ChunkRow {
            chunk_id: ids::chunk_id(&orphan, 0),
            doc_id: orphan.clone(),
            user_id: USER.into(),
            source_id: "notes".into(),
            source_uri: "/notes/half-written.md".into(),
            title: "half-written".into(),
            doc_type: "md".into(),
            chunk_index: 0,
            chunk_text: "a chunk whose document row was never written".into(),
            metadata: "{}".into(),
            created_at: "2026-12-07T00:00:00Z".into(),
            checksum: String::new(),
            vector: vec![0.1; tables.dim],
        }])
        .await
        .unwrap();
    // ... and a run of two new documents in progress, inside the embedder.
    write_docs(&root, &["damson", "elder"]);
    gated.closed.store(true, Ordering::SeqCst);
    let entered = gated.entered.notified();
    let running = {
        let (a, docs) = (a.clone(), source(&root));
        tokio::spawn(async move {
            a.sync(USER, &docs, SyncOptions::default(), &NoProgress)
                .await
        })
    };
    tokio::time::timeout(Duration::from_secs(20), entered)
        .await
        .expect("a's run reaches the embedder");

    // b waits for alice while a holds her.
    let docs_b = source(&root);
    let mut b_sync = Box::pin(b.sync(USER, &docs_b, SyncOptions::default(), &NoProgress));
    assert!(
        tokio::time::timeout(Duration::from_millis(800), b_sync.as_mut())
            .await
            .is_err(),
        "b does not write alice while a holds her"
    );

    // a's session ends (its process died, as Postgres sees it): its run stops at once.
    let ended = Instant::now();
    assert!(pg.end_sessions_of("a").await);
    let stopped = tokio::time::timeout(Duration::from_secs(2), running)
        .await
        .expect("a's run stops")
        .expect("task");
    assert!(
        matches!(stopped, Err(Error::Coordinator(_))),
        "a's run reports the lost coordinator: {stopped:?}"
    );
    drop(guard);

    // b takes alice over after the wait, repairs, and syncs.
    let report = tokio::time::timeout(Duration::from_secs(20), b_sync)
        .await
        .expect("b takes alice over")
        .expect("b syncs");
    assert!(
        ended.elapsed() >= TAKEOVER / 2,
        "b waited for a to have stopped"
    );
    assert_eq!(report.created, 2, "{report:?}");

    let tables = b.tables(USER).await.unwrap();
    assert!(
        tables.fetch_chunks(&[orphan]).await.unwrap().is_empty(),
        "the chunks a left without a document are gone"
    );
    let docs = tables.docs_where(None).await.unwrap();
    assert_eq!(docs.len(), 5);
    let doc_ids: Vec<String> = docs.iter().map(|d| d.doc_id.clone()).collect();
    let chunks = tables.fetch_chunks(&doc_ids).await.unwrap();
    let expected: usize = docs.iter().map(|d| d.total_chunks as usize).sum();
    assert_eq!(chunks.len(), expected, "every document's chunks, once");
    let unique: HashSet<&str> = chunks.iter().map(|c| c.chunk_id.as_str()).collect();
    assert_eq!(unique.len(), chunks.len(), "no chunk twice");
    assert_eq!(
        tables.chunks.count_rows(None).await.unwrap(),
        expected,
        "no chunk without a document"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_waits_for_the_instance_that_holds_the_user() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (db, root) = (dir.path().join("db"), dir.path().join("docs"));
    std::fs::create_dir_all(&root).unwrap();
    write_docs(&root, &["fig", "grape"]);
    let a = instance(&pg, "a", &db, Arc::new(HashingEmbedder::default())).await;
    let b = instance(&pg, "b", &db, Arc::new(HashingEmbedder::default())).await;
    a.sync(USER, &source(&root), SyncOptions::default(), &NoProgress)
        .await
        .expect("a syncs");
    let fig = a
        .tables(USER)
        .await
        .unwrap()
        .docs_where(None)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.source_uri.ends_with("fig.md"))
        .expect("fig is indexed")
        .doc_id;

    let guard = a.write_guard(USER).await.expect("a holds alice");
    let mut delete = Box::pin(b.delete_document(USER, &fig));
    assert!(
        tokio::time::timeout(Duration::from_millis(800), delete.as_mut())
            .await
            .is_err(),
        "b's delete waits while a holds alice"
    );
    // Another user is not held up.
    let other = tokio::time::timeout(
        Duration::from_secs(10),
        b.sync("bob", &source(&root), SyncOptions::default(), &NoProgress),
    )
    .await
    .expect("bob is not held by a")
    .expect("b syncs bob");
    assert_eq!(other.created, 2);

    let released = Instant::now();
    drop(guard);
    let deleted = tokio::time::timeout(Duration::from_secs(10), delete)
        .await
        .expect("b's delete goes ahead once a gives alice back")
        .expect("delete");
    assert!(deleted);
    assert!(
        released.elapsed() < TAKEOVER / 2,
        "a clean hand-over does not wait for a takeover"
    );
}
