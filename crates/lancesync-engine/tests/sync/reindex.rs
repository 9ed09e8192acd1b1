//! Blue/green re-index: searches keep answering while the tables are rebuilt with another
//! embedder, the switch is one step that every reader follows, writes wait, a rollback
//! brings the old generation back, an interrupted re-index resumes, documents of other
//! sources are carried over, and a switch that would lose documents is withheld.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use lancesync_engine::{
    BEFORE_REINDEX_TAG, PrecomputedChunk, PrecomputedDocument, ReindexOptions, ReindexReport,
    SHADOW_SUFFIX, UserTables,
};
use lancesync_ingest::{ChunkConfig, Embedder};

use super::*;

/// An engine on the fixture's database with `embedder` and `chunking`, writing every 16
/// documents (so an interrupted build has written some).
fn engine_with(fx: &Fixture, embedder: Arc<dyn Embedder>, chunking: ChunkConfig) -> Arc<Engine> {
    let mut config = EngineConfig::new(&fx.db);
    config.chunking = chunking;
    config.batch_docs = 16;
    config.retry_backoff = Duration::ZERO;
    Arc::new(Engine::new(config, embedder).unwrap())
}

fn fixture_chunking() -> ChunkConfig {
    ChunkConfig {
        size: 200,
        overlap: 40,
    }
}

const TOPICS: [&str; 6] = [
    "sourdough",
    "glaciers",
    "violins",
    "volcanoes",
    "orchids",
    "lighthouses",
];

async fn indexed_fixture(per_topic: usize) -> Fixture {
    let fx = Fixture::new(|_| {});
    for topic in TOPICS {
        for i in 0..per_topic {
            fx.write(
                &format!("{topic}/{i}.md"),
                format!("# {topic} {i}\n\n{}", text(topic, 2 + i % 3)),
            );
        }
    }
    let report = fx.sync().await;
    assert_eq!(report.created, TOPICS.len() * per_topic);
    fx
}

/// Searches in every mode through each engine, over and over, until `stop`: each must answer
/// without error and with at least one hit. Returns the searches made and what went wrong.
fn search_continuously(
    engines: Vec<Arc<Engine>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    tokio::spawn(async move {
        let (mut made, mut wrong) = (0, Vec::new());
        while !stop.load(Ordering::SeqCst) {
            for (e, engine) in engines.iter().enumerate() {
                for topic in TOPICS {
                    for mode in [SearchMode::Hybrid, SearchMode::Vector, SearchMode::FullText] {
                        let request = SearchRequest {
                            mode,
                            ..SearchRequest::new(topic)
                        };
                        made += 1;
                        match engine.search("alice", &request).await {
                            Ok(hits) if hits.is_empty() => {
                                wrong.push(format!("engine {e}, {mode:?} {topic}: no hits"))
                            }
                            Ok(_) => {}
                            Err(err) => wrong.push(format!("engine {e}, {mode:?} {topic}: {err}")),
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (made, wrong)
    })
}

async fn live_and_shadow_names(engine: &Engine) -> Vec<String> {
    let db = engine.storage().database("alice").unwrap();
    let tables = UserTables::open_any(&db, "alice", &engine.config().tables)
        .await
        .unwrap()
        .unwrap();
    let mut names: Vec<String> = std::fs::read_dir(db.local_dir.unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".lance"))
        .collect();
    names.sort();
    drop(tables);
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn searches_never_fail_during_a_reindex_to_another_embedder_and_a_rollback_restores_it() {
    let fx = indexed_fixture(4).await;
    let before = fx.engine.embedder();
    let old = engine_with(
        &fx,
        Arc::new(HashingEmbedder::default()),
        fixture_chunking(),
    );
    let new = engine_with(&fx, Arc::new(HashingEmbedder::new(256)), fixture_chunking());
    assert_eq!(old.embedder(), before);
    assert_ne!(new.embedder(), before);
    // Before: the new engine may search tables another embedder built (with that embedder),
    // but not write to them.
    assert!(
        !new.search("alice", &SearchRequest::new("glaciers"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        new.sync("alice", &fx.source, SyncOptions::default(), &NoProgress)
            .await,
        Err(Error::EmbedderMismatch { .. })
    ));

    // Readers configured either way search throughout: the old server's and the new one's.
    let stop = Arc::new(AtomicBool::new(false));
    let readers = search_continuously(vec![old.clone(), new.clone()], stop.clone());
    let report: ReindexReport = new
        .reindex(
            "alice",
            &[&fx.source],
            ReindexOptions::default(),
            &NoProgress,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let (made, wrong) = readers.await.unwrap();
    assert!(
        wrong.is_empty(),
        "{} of {made} searches went wrong: {wrong:?}",
        wrong.len()
    );
    assert!(
        made >= 200,
        "only {made} searches were made during the re-index"
    );

    assert_eq!(report.embedder_before.as_ref(), Some(&before));
    assert_eq!(report.embedder, new.embedder());
    assert_eq!(report.documents, 24);
    assert_eq!(report.failed, 0);
    assert_eq!(report.carried_over, 0);
    assert!(!report.resumed);
    assert!(!report.rollback_until.is_empty());
    assert_eq!(report.runs.len(), 1);
    assert_eq!(report.runs[0].created, 24);

    // After: the live names hold the new generation; the shadow tables are gone.
    let status = new.status("alice").await.unwrap();
    assert_eq!(status.embedder.as_ref(), Some(&new.embedder()));
    assert_eq!((status.documents, status.chunks), (24, report.chunks));
    let tables = new.tables("alice").await.unwrap();
    assert_eq!(tables.dim, 256);
    let names = live_and_shadow_names(&new).await;
    assert!(
        names.iter().all(|n| !n.contains(SHADOW_SUFFIX)),
        "shadow tables left: {names:?}"
    );
    // The new engine writes; its next run finds nothing to do (state, cursors and stats
    // came along); the old one is refused.
    let again = new
        .sync("alice", &fx.source, SyncOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!((again.created, again.updated, again.unchanged), (0, 0, 24));
    assert!(matches!(
        old.sync("alice", &fx.source, SyncOptions::default(), &NoProgress)
            .await,
        Err(Error::EmbedderMismatch { .. })
    ));
    // The previous generation is kept, and named for rollback.
    let previous = new.previous_generation("alice").await.unwrap().unwrap();
    assert_eq!(previous.embedder.as_ref(), Some(&before));

    // Rollback, with searches running again.
    let stop = Arc::new(AtomicBool::new(false));
    let readers = search_continuously(vec![old.clone(), new.clone()], stop.clone());
    let rolled = new
        .rollback_reindex("alice", ReindexOptions::default())
        .await
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    let (made, wrong) = readers.await.unwrap();
    assert!(
        wrong.is_empty(),
        "{} of {made} searches went wrong: {wrong:?}",
        wrong.len()
    );
    assert_eq!(rolled.embedder.as_ref(), Some(&before));
    assert_eq!(rolled.rolled_back.as_ref(), Some(&new.embedder()));
    assert_eq!(rolled.documents, 24);
    let back = old
        .sync("alice", &fx.source, SyncOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!((back.created, back.updated, back.unchanged), (0, 0, 24));
    assert_eq!(old.tables("alice").await.unwrap().dim, before.dimension);
    assert!(new.previous_generation("alice").await.unwrap().is_none());
    assert!(matches!(
        new.rollback_reindex("alice", ReindexOptions::default())
            .await,
        Err(Error::InvalidRequest(_))
    ));
    let names = live_and_shadow_names(&old).await;
    assert!(
        names.iter().all(|n| !n.contains(SHADOW_SUFFIX)),
        "{names:?}"
    );
    fx.assert_consistent().await;
}

/// Counts documents read; past 100 it slows the run down (20 ms a document), so that the
/// test can act while the build is still going.
#[derive(Default)]
struct Gate {
    read: AtomicUsize,
}

impl Progress for Gate {
    fn advance(&self, _uri: &str) {
        if self.read.fetch_add(1, Ordering::SeqCst) >= 100 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_wait_for_a_reindex_and_an_interrupted_one_resumes_at_every_step() {
    let fx = indexed_fixture(40).await;
    let new = engine_with(
        &fx,
        Arc::new(HashingEmbedder::new(128)),
        ChunkConfig {
            size: 300,
            overlap: 60,
        },
    );
    // Chunk settings changed: runs refuse until the re-index.
    assert!(matches!(
        new.sync("alice", &fx.source, SyncOptions::default(), &NoProgress)
            .await,
        Err(Error::EmbedderMismatch { .. } | Error::ChunkingChanged { .. })
    ));

    // Interrupted while building, as a crash would (the task is dropped mid-await).
    let gate = Arc::new(Gate::default());
    let source: Arc<dyn DocumentSource> = Arc::new(
        LocalFsSource::new(
            "docs",
            LocalFsConfig::new([fx.docs.to_str().unwrap()]),
            &BTreeMap::new(),
        )
        .unwrap(),
    );
    let run = {
        let (new, gate, source) = (new.clone(), gate.clone(), source.clone());
        tokio::spawn(async move {
            new.reindex(
                "alice",
                &[source.as_ref()],
                ReindexOptions::default(),
                gate.as_ref(),
            )
            .await
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while gate.read.load(Ordering::SeqCst) < 120 {
        assert!(
            std::time::Instant::now() < deadline,
            "the build did not get going"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Meanwhile every write to the user waits (is refused, from another engine).
    let refused = fx
        .engine
        .sync("alice", &fx.source, SyncOptions::default(), &NoProgress)
        .await;
    assert!(
        matches!(refused, Err(Error::Reindexing { .. })),
        "{refused:?}"
    );
    // So does code writing through the tables itself (a migration).
    assert!(matches!(
        fx.engine.write_guard("alice").await,
        Err(Error::Reindexing { .. })
    ));
    let doc = fx
        .engine
        .search("alice", &SearchRequest::new("orchids"))
        .await
        .unwrap();
    assert!(!doc.is_empty(), "searches answer during the build");
    assert!(matches!(
        fx.engine.delete_document("alice", &doc[0].doc_id).await,
        Err(Error::Reindexing { .. })
    ));
    run.abort();
    let _ = run.await;
    let interrupted_at = gate.read.load(Ordering::SeqCst);
    assert!(
        interrupted_at < 240,
        "the build finished before it was interrupted"
    );
    // The live tables are untouched: the old engine still writes and searches; `check`
    // names the unfinished re-index.
    assert_eq!(fx.sync().await.unchanged, 240);
    let check = fx
        .engine
        .check("alice", &[&fx.source], Default::default())
        .await
        .unwrap();
    let kinds: Vec<_> = check.problems.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [lancesync_engine::ProblemKind::ReindexUnfinished],
        "{check:?}"
    );

    // Resumed: what the first build wrote is not read again.
    let stop = Arc::new(AtomicBool::new(false));
    let readers = search_continuously(vec![new.clone()], stop.clone());
    let resumed = new
        .reindex(
            "alice",
            &[source.as_ref()],
            ReindexOptions::default(),
            &NoProgress,
        )
        .await
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    let (made, wrong) = readers.await.unwrap();
    assert!(
        wrong.is_empty(),
        "{} of {made} searches went wrong: {wrong:?}",
        wrong.len()
    );
    assert!(resumed.resumed);
    let run = &resumed.runs[0];
    assert!(
        run.unchanged > 0,
        "nothing of the first build was kept: {run:?}"
    );
    assert_eq!(run.created + run.unchanged, 240, "{run:?}");
    assert_eq!(resumed.documents, 240);
    let check = new
        .check("alice", &[&fx.source], Default::default())
        .await
        .unwrap();
    assert!(check.consistent(), "{:?}", check.problems);
    let chunked = new.tables("alice").await.unwrap();
    assert_eq!(chunked.stored_chunking().await.unwrap().unwrap().size, 300);

    // Interrupted after its switch (readers on the new tables, the live names not yet
    // copied): readers keep answering, and the next re-index finishes the copy.
    let back = engine_with(
        &fx,
        Arc::new(HashingEmbedder::default()),
        fixture_chunking(),
    );
    let run = {
        let (back, source) = (back.clone(), source.clone());
        tokio::spawn(async move {
            back.reindex(
                "alice",
                &[source.as_ref()],
                ReindexOptions::default(),
                &NoProgress,
            )
            .await
        })
    };
    let db = new.storage().database("alice").unwrap();
    let live = UserTables::open_any(&db, "alice", &new.config().tables)
        .await
        .unwrap()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !live.serves_shadow().await.unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "the switch did not come"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    run.abort();
    let _ = run.await;
    assert!(
        live.serves_shadow().await.unwrap(),
        "the interruption came after the switch"
    );
    tokio::time::sleep(ReindexOptions::default().switch_grace).await;
    for engine in [&new, &back] {
        let hits = engine
            .search("alice", &SearchRequest::new("volcanoes"))
            .await
            .unwrap();
        assert!(!hits.is_empty());
    }
    let finished = back
        .reindex(
            "alice",
            &[source.as_ref()],
            ReindexOptions::default(),
            &NoProgress,
        )
        .await
        .unwrap();
    assert!(finished.resumed && finished.runs.is_empty(), "{finished:?}");
    assert_eq!(finished.embedder_before.as_ref(), Some(&new.embedder()));
    assert_eq!(finished.chunking_before.map(|c| c.size), Some(300));
    assert_eq!(finished.documents, 240);
    assert!(!live.serves_shadow().await.unwrap());
    assert_eq!(
        back.status("alice").await.unwrap().embedder,
        Some(back.embedder())
    );
    let check = back
        .check("alice", &[&fx.source], Default::default())
        .await
        .unwrap();
    assert!(check.consistent(), "{:?}", check.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reindex_carries_over_other_documents_and_withholds_a_switch_that_would_lose_many() {
    let fx = indexed_fixture(3).await;
    fx.engine
        .ingest_precomputed(
            "alice",
            "manual",
            PrecomputedDocument {
                uri: "app://notes/1".into(),
                title: "Kept notes".into(),
                doc_type: lancesync_ingest::DocType::Txt,
                metadata: serde_json::json!({}),
                chunks: vec![
                    PrecomputedChunk {
                        text: "The zeppelin hangar was built in 1929.".into(),
                        embedding: None,
                    },
                    PrecomputedChunk {
                        text: "Zeppelins were filled with hydrogen.".into(),
                        embedding: None,
                    },
                ],
            },
        )
        .await
        .unwrap();
    // Most of the source is gone (a wrong path, an outage): the switch is withheld.
    for topic in &TOPICS[1..] {
        std::fs::remove_dir_all(fx.docs.join(topic)).unwrap();
    }
    let new = engine_with(&fx, Arc::new(HashingEmbedder::new(192)), fixture_chunking());
    let withheld = new
        .reindex(
            "alice",
            &[&fx.source],
            ReindexOptions::default(),
            &NoProgress,
        )
        .await;
    assert!(
        matches!(withheld, Err(Error::SwitchWithheld(_))),
        "{withheld:?}"
    );
    assert_eq!(
        new.status("alice").await.unwrap().embedder,
        Some(fx.engine.embedder()),
        "the live tables are untouched"
    );
    assert_eq!(new.status("alice").await.unwrap().documents, 19);

    let report = new
        .reindex(
            "alice",
            &[&fx.source],
            ReindexOptions {
                allow_mass_delete: true,
                ..ReindexOptions::default()
            },
            &NoProgress,
        )
        .await
        .unwrap();
    assert!(report.resumed, "the withheld build is reused");
    assert_eq!(report.carried_over, 1);
    assert_eq!(report.documents, 4);
    let hits = new
        .search(
            "alice",
            &SearchRequest {
                mode: SearchMode::Vector,
                ..SearchRequest::new("zeppelin hangar")
            },
        )
        .await
        .unwrap();
    assert_eq!(hits[0].source_uri, "app://notes/1");
    assert_eq!(hits[0].title, "Kept notes");
    let doc = new
        .document("alice", &hits[0].doc_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(doc.chunks.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_generation_is_kept_for_its_time_then_its_versions_are_released() {
    let fx = indexed_fixture(2).await;
    let new = engine_with(&fx, Arc::new(HashingEmbedder::new(96)), fixture_chunking());
    let tags = |tables: UserTables| async move {
        let docs = tables.docs.tags().await.unwrap().list().await.unwrap();
        let chunks = tables.chunks.tags().await.unwrap().list().await.unwrap();
        (
            docs.contains_key(BEFORE_REINDEX_TAG),
            chunks.contains_key(BEFORE_REINDEX_TAG),
        )
    };
    // Kept: tagged, recorded until its time.
    let report = new
        .reindex(
            "alice",
            &[&fx.source],
            ReindexOptions::default(),
            &NoProgress,
        )
        .await
        .unwrap();
    let kept = new.previous_generation("alice").await.unwrap().unwrap();
    assert_eq!(kept.keep_until, report.rollback_until);
    assert!(kept.keep_until > lancesync_engine::now_rfc3339());
    assert_eq!(tags(new.tables("alice").await.unwrap()).await, (true, true));

    // Kept for no time: released by the maintenance that follows the copy.
    let back = engine_with(
        &fx,
        Arc::new(HashingEmbedder::default()),
        fixture_chunking(),
    );
    let report = back
        .reindex(
            "alice",
            &[&fx.source],
            ReindexOptions {
                keep: Some(Duration::ZERO),
                ..ReindexOptions::default()
            },
            &NoProgress,
        )
        .await
        .unwrap();
    assert!(report.rollback_until.is_empty(), "{report:?}");
    assert!(back.previous_generation("alice").await.unwrap().is_none());
    assert_eq!(
        tags(back.tables("alice").await.unwrap()).await,
        (false, false)
    );
    assert!(matches!(
        back.rollback_reindex("alice", ReindexOptions::default())
            .await,
        Err(Error::InvalidRequest(_))
    ));
}
