//! The tables: versions, the embedder identity, concurrent openers and runs, indexes, compaction.

use super::*;

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
    // Searches embed their query with the embedder that built the tables.
    let hits = other
        .search("alice", &SearchRequest::new("text"))
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    // Writes would mix vectors: refused, naming the way out.
    let err = other
        .sync("alice", &f.source, SyncOptions::default(), &NoProgress)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_builds_the_indexes_midway_and_keeps_them_current() {
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
    // The full-text index too: built from the same size and folded with the vector index.
    assert!(
        !report
            .maintenance
            .created_indexes
            .iter()
            .any(|i| i.contains("full text")),
        "the full-text index was not left for the end: {:?}",
        report.maintenance
    );
    let indices = tables.chunks.list_indices().await.unwrap();
    let text = indices
        .iter()
        .find(|i| i.columns.iter().any(|c| c == "chunk_text"))
        .expect("a full-text index");
    let stats = tables
        .chunks
        .index_stats(&text.name)
        .await
        .unwrap()
        .unwrap();
    assert!(stats.num_unindexed_rows < 300, "{stats:?}");
    assert!(stats.num_indexed_rows >= 600 + 300, "folded: {stats:?}");
    assert_vector_search_finds(&f, "topic42").await;
}

/// A vector search of alice's index for `word` finds a chunk holding it.
async fn assert_vector_search_finds(f: &Fixture, word: &str) {
    let mut request = SearchRequest::new(word);
    request.mode = SearchMode::Vector;
    let hits = f.engine.search("alice", &request).await.unwrap();
    assert!(
        hits.iter().any(|h| h.chunk_text.contains(word)),
        "{word}: {hits:?}"
    );
}

/// The vector index on `tables`' chunks: its name and kind.
async fn vector_indexes(tables: &lancesync_engine::UserTables) -> Vec<(String, String)> {
    tables
        .chunks
        .list_indices()
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.columns.iter().any(|c| c == "vector"))
        .map(|i| (i.name, format!("{:?}", i.index_type)))
        .collect()
}

/// The row count a `vector_ivf_sq_cosine_<rows>` index was trained on.
fn trained_rows(name: &str) -> usize {
    name.strip_prefix("vector_ivf_sq_cosine_")
        .and_then(|rows| rows.parse().ok())
        .unwrap_or_else(|| panic!("not lancesync's vector index name: {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_kind_of_vector_index_is_replaced_and_a_grown_table_retrains_it() {
    let f = Fixture::new(|c| c.tables.vector_index_rows = 600);
    for i in 0..70 {
        f.write(&format!("a{i:03}.md"), text(&format!("alpha{i}"), 25));
    }
    assert_eq!(f.sync().await.created, 70);
    let tables = f.engine.existing_tables("alice").await.unwrap().unwrap();
    let rows = tables.chunks.count_rows(None).await.unwrap();
    let [(name, kind)] = &vector_indexes(&tables).await[..] else {
        panic!("one vector index: {:?}", vector_indexes(&tables).await)
    };
    assert_eq!(kind, "IvfSq");
    assert!(
        trained_rows(name) >= 600 && trained_rows(name) <= rows,
        "{name} at {rows} rows"
    );

    // An index as lancesync built it before IVF-SQ: 4-bit IVF-PQ, lance's default name.
    tables.chunks.drop_index(name).await.unwrap();
    tables
        .chunks
        .create_index(
            &["vector"],
            lancedb::index::Index::IvfPq(
                lancedb::index::vector::IvfPqIndexBuilder::default()
                    .distance_type(lancedb::DistanceType::Cosine)
                    .num_bits(4)
                    .num_sub_vectors(32),
            ),
        )
        .name("vector_idx".into())
        .execute()
        .await
        .unwrap();
    let done = tables.maintain().await.unwrap();
    assert!(
        done.created_indexes.iter().any(|i| i.starts_with("vector")),
        "{done:?}"
    );
    let [(name, kind)] = &vector_indexes(&tables).await[..] else {
        panic!(
            "the old index was dropped: {:?}",
            vector_indexes(&tables).await
        )
    };
    assert_eq!((kind.as_str(), trained_rows(name)), ("IvfSq", rows));
    // Current: maintenance leaves it alone.
    let again = tables.maintain().await.unwrap();
    assert!(again.created_indexes.is_empty(), "{again:?}");

    // Grow the table past four times the rows the index was trained on: retrained, once.
    for i in 0..240 {
        f.write(&format!("b{i:03}.md"), text(&format!("beta{i}"), 25));
    }
    assert_eq!(f.sync().await.created, 240);
    let grown = tables.chunks.count_rows(None).await.unwrap();
    assert!(grown >= 4 * rows, "{grown} rows after growing from {rows}");
    let [(name, kind)] = &vector_indexes(&tables).await[..] else {
        panic!("one vector index: {:?}", vector_indexes(&tables).await)
    };
    assert_eq!(kind, "IvfSq");
    assert!(
        trained_rows(name) >= 4 * rows,
        "retrained past {} rows: {name}",
        4 * rows
    );
    let stats = tables.chunks.index_stats(name).await.unwrap().unwrap();
    assert_eq!(stats.num_indexed_rows + stats.num_unindexed_rows, grown);
    assert_vector_search_finds(&f, "beta117").await;
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

/// A new user's sources synced at the same moment (a server's start): both record the same
/// chunk settings in the manifest, and lance refuses the second of two concurrent config
/// updates; it is made again on the first's version instead of failing the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_runs_of_a_new_users_sources_at_once_all_succeed() {
    for round in 0..3 {
        let f = Fixture::new(|_| {});
        let folders: Vec<_> = (0..4)
            .map(|i| {
                let dir = f.docs.join(format!("s{i}"));
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("a.md"), format!("# Source {i}\n\nround {round}")).unwrap();
                LocalFsSource::new(
                    format!("s{i}"),
                    LocalFsConfig::new([dir.to_str().unwrap()]),
                    &BTreeMap::new(),
                )
                .unwrap()
            })
            .collect();
        // The tables exist; the first runs race to record the chunk settings.
        f.engine.tables("alice").await.unwrap();
        let runs = folders.iter().map(|source| {
            f.engine
                .sync("alice", source, SyncOptions::default(), &NoProgress)
        });
        for report in futures::future::join_all(runs).await {
            assert_eq!(report.expect("every first run succeeds").created, 1);
        }
        assert_eq!(f.engine.status("alice").await.unwrap().documents, 4);
    }
}
