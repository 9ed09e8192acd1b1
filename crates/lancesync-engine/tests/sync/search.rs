//! Search modes, filters and injection; reads that create nothing.

use super::*;

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

/// Scores are on a 0-1 scale in every mode, and a hybrid search's weight moves its ranking
/// from full text's (0) to the vectors' (1), on real tables.
#[tokio::test]
async fn scores_are_0_to_1_and_the_hybrid_weight_runs_from_full_text_to_vectors() {
    let f = Fixture::new(|_| {});
    let topics = [
        "river otters and their dens",
        "otters hunting fish in cold rivers",
        "baking rye bread with a starter",
        "river boats carrying grain",
        "mountain goats on steep cliffs",
        "fish markets at the harbour",
    ];
    for (i, topic) in topics.iter().enumerate() {
        f.write(&format!("t{i}.txt"), text(topic, 2));
    }
    f.sync().await;
    let search = |mode, vector_weight| {
        let engine = &f.engine;
        async move {
            let request = SearchRequest {
                mode,
                vector_weight,
                limit: 6,
                ..SearchRequest::new("otters in rivers")
            };
            engine.search("alice", &request).await.unwrap()
        }
    };
    let docs = |hits: &[lancesync_engine::SearchHit]| {
        hits.iter()
            .map(|h| (h.doc_id.clone(), h.chunk_index))
            .collect::<Vec<_>>()
    };
    for mode in [SearchMode::Vector, SearchMode::FullText, SearchMode::Hybrid] {
        let hits = search(mode, None).await;
        assert!(!hits.is_empty(), "{mode:?}");
        assert!(
            hits.iter().all(|h| (0.0..=1.0).contains(&h.score)),
            "{mode:?}: {:?}",
            hits.iter().map(|h| h.score).collect::<Vec<_>>()
        );
    }
    let full_text = search(SearchMode::FullText, None).await;
    assert_eq!(full_text[0].score, 1.0, "the best BM25 match scores 1");
    // `hybrid` ranks and scores its first hits as `alone` does.
    let same = |hybrid: &[lancesync_engine::SearchHit], alone: &[lancesync_engine::SearchHit]| {
        assert_eq!(docs(&hybrid[..alone.len()]), docs(alone));
        for (h, a) in hybrid.iter().zip(alone) {
            assert!(
                (h.score - a.score).abs() < 1e-6,
                "{} vs {}",
                h.score,
                a.score
            );
        }
    };
    // Weight 0: full text's order (its hits first; chunks only the vectors found after, at 0).
    same(&search(SearchMode::Hybrid, Some(0.0)).await, &full_text);
    // Weight 1: the vectors' order and scores.
    let vector = search(SearchMode::Vector, None).await;
    let hybrid_vector = search(SearchMode::Hybrid, Some(1.0)).await;
    assert_eq!(hybrid_vector.len(), vector.len());
    same(&hybrid_vector, &vector);
    // Out of range: refused (a weight on another mode is checked by the unit and API tests).
    let too_much = SearchRequest {
        vector_weight: Some(1.5),
        ..SearchRequest::new("otters")
    };
    let err = f.engine.search("alice", &too_much).await.unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
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

/// Hits as (document, chunk) pairs.
fn pairs(hits: &[lancesync_engine::SearchHit]) -> Vec<(String, i32)> {
    hits.iter()
        .map(|h| (h.doc_id.clone(), h.chunk_index))
        .collect()
}

/// Another engine over `f`'s tables, with `bytes` of search memory.
fn memory_engine(f: &Fixture, bytes: usize) -> Engine {
    let mut config = EngineConfig::new(&f.db);
    config.chunking.size = 200;
    config.chunking.overlap = 40;
    Engine::new(config, f.embedder.clone())
        .unwrap()
        .with_search_memory(bytes)
}

/// Waits until `engine` holds an in-memory index of alice's chunks newer than `after`.
async fn index_built(engine: &Engine, after: Option<u64>) -> lancesync_engine::SearchMemoryIndex {
    index_where(engine, |version| Some(version) > after).await
}

/// Waits until `engine` holds an in-memory index of alice's chunks at `version`.
async fn index_at(engine: &Engine, version: u64) -> lancesync_engine::SearchMemoryIndex {
    index_where(engine, |v| v == version).await
}

/// Waits until `engine` holds an in-memory index of alice's chunks at a version `wanted`
/// accepts, searching meanwhile (searches are what start builds and layerings).
async fn index_where(
    engine: &Engine,
    wanted: impl Fn(u64) -> bool,
) -> lancesync_engine::SearchMemoryIndex {
    for _ in 0..1200 {
        engine
            .search("alice", &SearchRequest::new("warm"))
            .await
            .unwrap();
        if let Some(i) = engine
            .search_memory()
            .into_iter()
            .find(|i| i.user_id == "alice" && wanted(i.version))
        {
            return i;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no in-memory index of the version wanted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_search_finds_what_lancedb_finds_and_never_a_stale_row() {
    let f = Fixture::new(|_| {});
    lancesync_testkit::corpus::write_mixed(&f.docs, 400).unwrap();
    f.sync().await;
    // A second engine over the same tables, answering from memory; `f.engine` reads LanceDB.
    let memory = memory_engine(&f, 256 << 20);
    assert!(memory.search_memory().is_empty(), "nothing before a search");
    let built = index_built(&memory, None).await;
    let tables = f.engine.tables("alice").await.unwrap();
    let rows = tables.chunks.count_rows(None).await.unwrap();
    assert!(rows >= 4096, "{rows} chunks: enough for the projected scan");
    assert_eq!(built.rows, rows);
    assert!(built.bytes > 0);

    // Questions made of words from stored chunks.
    let docs = tables.docs_where(None).await.unwrap();
    let ids: Vec<String> = docs.iter().step_by(10).map(|d| d.doc_id.clone()).collect();
    let sample = tables.fetch_chunks(&ids).await.unwrap();
    let questions: Vec<String> = sample
        .iter()
        .step_by(sample.len() / 40)
        .map(|c| {
            c.chunk_text
                .split_whitespace()
                .skip(3)
                .take(4)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|q| !q.is_empty())
        .collect();
    assert!(questions.len() >= 30);
    let (mut same, mut total) = (0usize, 0usize);
    for (n, q) in questions.iter().enumerate() {
        for mode in [SearchMode::FullText, SearchMode::Vector, SearchMode::Hybrid] {
            let mut req = SearchRequest {
                mode,
                limit: 10,
                ..SearchRequest::new(q.clone())
            };
            if n % 3 == 1 {
                req.doc_type = Some(DocType::Md);
            }
            let from_lance = f.engine.search("alice", &req).await.unwrap();
            let from_memory = memory.search("alice", &req).await.unwrap();
            assert_eq!(from_lance.len(), from_memory.len(), "{mode:?} {q:?}");
            if n % 3 == 1 {
                assert!(from_memory.iter().all(|h| h.doc_type == "md"));
            }
            let lance_pairs = pairs(&from_lance);
            same += pairs(&from_memory)
                .iter()
                .filter(|p| lance_pairs.contains(p))
                .count();
            total += from_lance.len();
            // The same scores, rank by rank: full text exactly; vectors and their fusion on
            // average within 0.01 (8-bit codes against LanceDB's floats, and LanceDB's own
            // index is approximate past 5,000 chunks).
            let differences: Vec<f32> = from_lance
                .iter()
                .zip(&from_memory)
                .map(|(a, b)| (a.score - b.score).abs())
                .collect();
            let mean = differences.iter().sum::<f32>() / differences.len().max(1) as f32;
            let (most, on_average) = if mode == SearchMode::FullText {
                (1e-3, 1e-3)
            } else {
                (0.05, 0.01)
            };
            assert!(
                differences.iter().all(|d| *d <= most) && mean <= on_average,
                "{mode:?} {q:?}: {differences:?}"
            );
        }
    }
    let agreement = same as f64 / total as f64;
    assert!(
        agreement >= 0.95,
        "hits in common with LanceDB's: {agreement:.3}"
    );

    // A new document is found at once, and a deleted one is gone at once: a search never
    // reads an index of an older version.
    add_one_remove_one(&f);
    f.sync().await;
    finds_the_added_not_the_removed(&memory).await;
    // Then the index of the new version answers the same.
    let rebuilt = index_built(&memory, Some(built.version)).await;
    assert_eq!(rebuilt.rows, tables.chunks.count_rows(None).await.unwrap());
    finds_the_added_not_the_removed(&memory).await;
}

/// Adds a document on zymurgy to `f`'s folder and removes the mixed corpus's first.
fn add_one_remove_one(f: &Fixture) {
    f.write(
        "new/zymurgy.md",
        "# Zymurgy\n\nZymurgy is the chemistry of fermentation.",
    );
    std::fs::remove_file(f.docs.join(lancesync_testkit::corpus::mixed_path(0))).unwrap();
}

/// Asserts that `engine`'s full-text searches see what [`add_one_remove_one`] did, synced.
async fn finds_the_added_not_the_removed(engine: &Engine) {
    let full_text = |q: &str| SearchRequest {
        mode: SearchMode::FullText,
        ..SearchRequest::new(q)
    };
    let hits = engine.search("alice", &full_text("zymurgy")).await.unwrap();
    assert!(
        hits.first().is_some_and(|h| h.title == "Zymurgy"),
        "{hits:?}"
    );
    let gone_title = first_title(0);
    let hits = engine
        .search("alice", &full_text(&gone_title))
        .await
        .unwrap();
    assert!(hits.iter().all(|h| h.title != gone_title), "{hits:?}");
}

/// The title mixed-corpus document `i` gets (its first line names it).
fn first_title(i: usize) -> String {
    let bytes = lancesync_testkit::corpus::mixed_document(i, 0);
    let text = String::from_utf8_lossy(&bytes);
    text.lines()
        .next()
        .unwrap()
        .trim_start_matches("# ")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_larger_than_the_search_memory_is_searched_through_lancedb() {
    let f = Fixture::new(|_| {});
    lancesync_testkit::corpus::write_mixed(&f.docs, 60).unwrap();
    f.sync().await;
    // 64 KB: far less than the user's chunks need.
    let memory = memory_engine(&f, 64 << 10);
    let req = SearchRequest {
        mode: SearchMode::FullText,
        ..SearchRequest::new(first_title(3))
    };
    let want = f.engine.search("alice", &req).await.unwrap();
    assert!(!want.is_empty());
    for _ in 0..20 {
        assert_eq!(
            pairs(&memory.search("alice", &req).await.unwrap()),
            pairs(&want)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        memory.search_memory().is_empty(),
        "nothing held past the budget"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_after_a_sync_of_the_same_engine_answers_from_what_it_wrote() {
    // While its own sync writes, an engine's searches may answer from the view of a version
    // a moment old; once the sync has returned, never.
    let f = Fixture::new(|_| {});
    lancesync_testkit::corpus::write_mixed(&f.docs, 40).unwrap();
    f.sync().await;
    let memory = memory_engine(&f, 256 << 20);
    let built = index_built(&memory, None).await;
    add_one_remove_one(&f);
    let report = memory
        .sync("alice", &f.source, SyncOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!((report.created, report.deleted), (1, 1), "{report:?}");
    finds_the_added_not_the_removed(&memory).await;
    // Answered from memory: the view is the table's version, layered over the first index.
    let version = f
        .engine
        .tables("alice")
        .await
        .unwrap()
        .chunks
        .version()
        .await
        .unwrap();
    let held = memory.search_memory();
    assert!(
        held.iter()
            .any(|i| i.version == version && i.version > built.version && i.added_layers == 1),
        "{held:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_table_is_searched_from_layers_over_the_index_it_had() {
    let f = Fixture::new(|_| {});
    lancesync_testkit::corpus::write_mixed(&f.docs, 150).unwrap();
    f.write(
        "notes/baking.md",
        "# Baking\n\nSourdough needs a starter of flour and water.",
    );
    f.sync().await;
    let memory = memory_engine(&f, 256 << 20);
    let first = index_built(&memory, None).await;
    assert_eq!(first.added_layers, 0);
    let tables = f.engine.tables("alice").await.unwrap();
    let full_text = |q: &str| SearchRequest {
        mode: SearchMode::FullText,
        ..SearchRequest::new(q)
    };
    let gone_title = first_title(0);
    let mut layers_seen = Vec::new();
    for round in 0..10 {
        // A new document every round; the first round also edits one and deletes another.
        f.write(
            &format!("new/round{round}.md"),
            format!("# Round {round}\n\nQuokka{round} visits the zymurgy lab at dawn."),
        );
        if round == 0 {
            f.write(
                "notes/baking.md",
                "# Baking\n\nFocaccia needs olive oil and a hot oven.",
            );
            std::fs::remove_file(f.docs.join(lancesync_testkit::corpus::mixed_path(0))).unwrap();
        }
        f.sync().await;
        let version = tables.chunks.version().await.unwrap();
        let now = index_at(&memory, version).await;
        assert_eq!(now.rows, tables.chunks.count_rows(None).await.unwrap());
        layers_seen.push(now.added_layers);

        // Served by the layers: every new document is found, the deleted one and the
        // edited one's old text are not, and the hits are LanceDB's.
        for r in 0..=round {
            let hits = memory
                .search("alice", &full_text(&format!("quokka{r}")))
                .await
                .unwrap();
            assert_eq!(
                hits.first().map(|h| h.title.clone()),
                Some(format!("Round {r}")),
                "round {round}"
            );
        }
        let hits = memory
            .search("alice", &full_text("sourdough"))
            .await
            .unwrap();
        assert!(hits.iter().all(|h| h.title != "Baking"), "{hits:?}");
        let hits = memory
            .search("alice", &full_text("focaccia"))
            .await
            .unwrap();
        assert_eq!(hits.first().map(|h| h.title.as_str()), Some("Baking"));
        let hits = memory
            .search("alice", &full_text(&gone_title))
            .await
            .unwrap();
        assert!(hits.iter().all(|h| h.title != gone_title), "{hits:?}");
        // The same hits as one index of this version (which LanceDB's are too, but for its
        // own approximations: its full-text index does not cover the newest rows yet).
        let whole = memory_engine(&f, 256 << 20);
        assert_eq!(index_at(&whole, version).await.added_layers, 0);
        for q in [
            "zymurgy lab dawn",
            "olive oven",
            &first_title(7),
            &first_title(42),
        ] {
            for mode in [SearchMode::FullText, SearchMode::Vector, SearchMode::Hybrid] {
                let req = SearchRequest {
                    mode,
                    limit: 10,
                    ..SearchRequest::new(q)
                };
                let from_layers = memory.search("alice", &req).await.unwrap();
                let from_whole = whole.search("alice", &req).await.unwrap();
                assert_eq!(
                    pairs(&from_layers),
                    pairs(&from_whole),
                    "round {round}, {mode:?} {q:?}"
                );
                for (a, b) in from_layers.iter().zip(&from_whole) {
                    assert!((a.score - b.score).abs() < 0.02, "{q:?}: {a:?} {b:?}");
                }
                let from_lance = f.engine.search("alice", &req).await.unwrap();
                let lance_pairs = pairs(&from_lance);
                let same = pairs(&from_layers)
                    .iter()
                    .filter(|p| lance_pairs.contains(p))
                    .count();
                assert!(
                    same + 1 >= from_lance.len(),
                    "round {round}, {mode:?} {q:?}: {from_layers:?} against {from_lance:?}"
                );
            }
        }
    }
    assert!(
        layers_seen.iter().all(|l| (1..9).contains(l)),
        "every round served from layers, never many over the first: {layers_seen:?}"
    );
    assert!(
        layers_seen.windows(2).any(|w| w[1] < w[0]),
        "added layers were read again as one: {layers_seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_table_is_searched_without_a_row_twice_or_missing() {
    // Two documents a batch: the first sync writes 3 fragments, too few to compact; the
    // second writes 20 more, and all of them are compacted at its end, the first index's too.
    let f = Fixture::new(|c| c.batch_docs = 2);
    for i in 0..6 {
        f.write(&format!("a{i:02}.md"), text(&format!("subject{i}"), 3));
    }
    assert!(f.sync().await.maintenance.compacted.is_empty());
    let memory = memory_engine(&f, 256 << 20);
    index_built(&memory, None).await;
    for i in 6..46 {
        f.write(&format!("b{i:02}.md"), text(&format!("subject{i}"), 3));
    }
    let report = f.sync().await;
    assert_eq!(
        report.maintenance.compacted,
        ["processed_documents", "document_chunks"]
    );
    let tables = f.engine.tables("alice").await.unwrap();
    let version = tables.chunks.version().await.unwrap();
    let now = index_at(&memory, version).await;
    assert_eq!(now.rows, tables.chunks.count_rows(None).await.unwrap());
    // The compaction moved the rows of the view's first layer and of the layer added for
    // the second sync: the view followed them, nothing marked gone and read again.
    assert!(
        now.added_layers >= 1 && now.gone_rows == 0,
        "served by the same layers, rows moved: {now:?}"
    );
    for i in (0..46).step_by(5) {
        for mode in [SearchMode::FullText, SearchMode::Vector, SearchMode::Hybrid] {
            let req = SearchRequest {
                mode,
                limit: 20,
                ..SearchRequest::new(format!("subject{i}"))
            };
            let from_memory = memory.search("alice", &req).await.unwrap();
            let found = pairs(&from_memory);
            let distinct: HashSet<_> = found.iter().collect();
            assert_eq!(distinct.len(), found.len(), "a row twice: {found:?}");
            // LanceDB's rows: all of them in full text; on vectors, where these near-identical
            // texts' hashed vectors tie past the document's own chunks (and 8-bit codes and
            // floats break ties apart), its own chunks first.
            let want = pairs(&f.engine.search("alice", &req).await.unwrap());
            if mode == SearchMode::FullText {
                assert_eq!(found, want, "subject{i}");
            } else {
                let mut best: Vec<_> = found.iter().take(2).collect();
                let mut want_best: Vec<_> = want.iter().take(2).collect();
                best.sort();
                want_best.sort();
                assert_eq!(best, want_best, "{mode:?} subject{i}");
            }
        }
    }
}
