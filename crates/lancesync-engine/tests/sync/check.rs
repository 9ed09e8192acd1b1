//! `check`: every kind of damage done to real tables (with LanceDB's own API) or to the source
//! behind the index's back is found, and repaired; a consistent index reports nothing, twice.

use std::collections::BTreeSet;

use lancesync_engine::{CheckOptions, CheckReport, ProblemKind};

use super::*;

fn kinds(report: &CheckReport) -> BTreeSet<ProblemKind> {
    report.problems.iter().map(|p| p.kind).collect()
}

fn deep() -> CheckOptions {
    CheckOptions {
        deep: true,
        ..CheckOptions::default()
    }
}

impl Fixture {
    async fn check(&self, extra: &[&dyn DocumentSource], options: CheckOptions) -> CheckReport {
        let mut sources: Vec<&dyn DocumentSource> = vec![&self.source];
        sources.extend_from_slice(extra);
        self.engine.check("alice", &sources, options).await.unwrap()
    }

    async fn doc_id(&self, name: &str) -> String {
        let tables = self.engine.tables("alice").await.unwrap();
        tables
            .docs_where(None)
            .await
            .unwrap()
            .into_iter()
            .find(|d| d.source_uri.ends_with(name))
            .unwrap_or_else(|| panic!("{name} is indexed"))
            .doc_id
    }
}

#[tokio::test]
async fn every_kind_of_damage_is_found_and_repaired() {
    let f = Fixture::new(|_| {});
    for name in [
        "rivers.md",
        "stale.md",
        "same.md",
        "gone.md",
        "orphan.md",
        "dup.md",
        "nan.md",
    ] {
        f.write(name, text(&name.replace(".md", " topic"), 6));
    }
    let empty_dir = f.docs.parent().unwrap().join("empty");
    std::fs::create_dir_all(&empty_dir).unwrap();
    let empty = local_source("empty", &empty_dir);
    f.sync().await;
    f.engine
        .sync("alice", &empty, SyncOptions::default(), &NoProgress)
        .await
        .unwrap();

    // Consistent: nothing found, twice in a row (the first check changes nothing).
    for _ in 0..2 {
        let clean = f.check(&[&empty], deep()).await;
        assert!(clean.problems.is_empty(), "{clean:#?}");
        assert!(clean.consistent());
    }

    // The source changes behind the index's back.
    f.write("new.md", text("new topic", 3));
    std::fs::remove_file(f.docs.join("gone.md")).unwrap();
    f.write(
        "stale.md",
        text("stale topic, rewritten at another length", 2),
    );
    let same = f.docs.join("same.md");
    let modified = std::fs::metadata(&same).unwrap().modified().unwrap();
    let content = std::fs::read_to_string(&same).unwrap();
    std::fs::write(&same, content.replace("same topic", "SAME TOPIC")).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&same)
        .unwrap()
        .set_modified(modified)
        .unwrap();

    // The tables are damaged with LanceDB's own API.
    let tables = f.engine.tables("alice").await.unwrap();
    let rivers = f.doc_id("rivers.md").await;
    tables
        .chunks
        .delete(&format!(
            "chunk_id = '{}'",
            lancesync_engine::ids::chunk_id(&rivers, 0)
        ))
        .await
        .unwrap();
    let orphan = f.doc_id("orphan.md").await;
    tables
        .docs
        .delete(&format!("doc_id = '{orphan}'"))
        .await
        .unwrap();
    let dup = f.doc_id("dup.md").await;
    let dup_chunks = tables
        .fetch_chunks(std::slice::from_ref(&dup))
        .await
        .unwrap();
    tables.add_chunks(&dup_chunks[..2]).await.unwrap();
    let nan = f.doc_id("nan.md").await;
    let mut nan_chunk = tables
        .fetch_chunks(std::slice::from_ref(&nan))
        .await
        .unwrap()[0]
        .clone();
    tables
        .chunks
        .delete(&format!("chunk_id = '{}'", nan_chunk.chunk_id))
        .await
        .unwrap();
    nan_chunk.vector[3] = f32::NAN;
    // LanceDB refuses such vectors unless told to keep them, as another writer may.
    let batch = lancesync_engine::rows::chunks_to_batch(&[nan_chunk], tables.dim).unwrap();
    let schema = batch.schema();
    let reader: Box<dyn arrow_array::RecordBatchReader + Send> = Box::new(
        arrow_array::RecordBatchIterator::new(vec![Ok(batch)], schema),
    );
    tables
        .chunks
        .add(reader)
        .on_nan_vectors(lancedb::table::NaNVectorBehavior::Keep)
        .execute()
        .await
        .unwrap();
    for index in tables.chunks.list_indices().await.unwrap() {
        if index.columns.iter().any(|c| c == "chunk_text") {
            tables.chunks.drop_index(&index.name).await.unwrap();
        }
    }
    tables
        .set_cursor("empty", "cursor-without-documents")
        .await
        .unwrap();

    let quick = f.check(&[&empty], CheckOptions::default()).await;
    let expected: BTreeSet<ProblemKind> = [
        ProblemKind::NotIndexed,
        ProblemKind::GoneFromSource,
        ProblemKind::Stale,
        ProblemKind::ChunkCountMismatch,
        ProblemKind::OrphanChunks,
        ProblemKind::DuplicateChunks,
        ProblemKind::IndexMissing,
        ProblemKind::CursorWithoutDocuments,
    ]
    .into();
    assert_eq!(kinds(&quick), expected, "{quick:#?}");
    assert!(!quick.consistent());
    let problem = |report: &CheckReport, kind| {
        report
            .problems
            .iter()
            .find(|p| p.kind == kind)
            .cloned()
            .unwrap()
    };
    let not_indexed = problem(&quick, ProblemKind::NotIndexed);
    // orphan.md lost its row: listed, not indexed.
    assert_eq!(not_indexed.count, 2, "{not_indexed:?}");
    assert!(problem(&quick, ProblemKind::GoneFromSource).examples[0].ends_with("gone.md"));
    assert!(problem(&quick, ProblemKind::Stale).examples[0].ends_with("stale.md"));
    assert_eq!(problem(&quick, ProblemKind::DuplicateChunks).count, 2);
    // rivers.md lost a chunk, dup.md has two too many.
    let mismatch = problem(&quick, ProblemKind::ChunkCountMismatch);
    assert_eq!(mismatch.count, 2, "{mismatch:?}");
    assert!(mismatch.examples.iter().any(|e| e.contains("rivers.md")));
    assert_eq!(
        problem(&quick, ProblemKind::IndexMissing).examples,
        ["chunk_text (full text)"]
    );
    // Only a deep check sees content changed under the same size and time, and reads every
    // vector.
    let thorough = f.check(&[&empty], deep()).await;
    let mut with_content = expected.clone();
    with_content.insert(ProblemKind::ContentChanged);
    with_content.insert(ProblemKind::BadVectors);
    assert_eq!(kinds(&thorough), with_content);
    assert_eq!(problem(&thorough, ProblemKind::BadVectors).count, 1);
    assert!(problem(&thorough, ProblemKind::ContentChanged).examples[0].ends_with("same.md"));

    let repaired = f
        .check(
            &[&empty],
            CheckOptions {
                repair: true,
                ..deep()
            },
        )
        .await;
    let repair = repaired.repair.as_ref().unwrap();
    assert_eq!(repair.orphans_removed, 1, "{repaired:#?}");
    assert_eq!(
        repair.documents_reindexed, 4,
        "rivers, dup, nan, same, and none else: {repaired:#?}"
    );
    assert!(repair.not_repaired.is_empty(), "{repaired:#?}");
    assert!(repair.indexes_built.iter().any(|i| i.contains("full text")));
    assert_eq!(
        repaired.remaining.as_deref(),
        Some(&[][..]),
        "{repaired:#?}"
    );
    assert!(repaired.consistent());

    for _ in 0..2 {
        let clean = f.check(&[&empty], deep()).await;
        assert!(clean.problems.is_empty(), "{clean:#?}");
    }
    f.assert_consistent().await;
    assert_eq!(
        f.uris()
            .await
            .iter()
            .filter(|u| u.ends_with("gone.md"))
            .count(),
        0
    );
    // Full-text search works again, and finds the repaired content.
    let hits = f
        .engine
        .search(
            "alice",
            &SearchRequest {
                mode: SearchMode::FullText,
                ..SearchRequest::new("SAME TOPIC")
            },
        )
        .await
        .unwrap();
    assert!(hits[0].source_uri.ends_with("same.md"), "{hits:?}");
}

#[tokio::test]
async fn deletions_past_the_guard_are_left_for_the_user_to_allow() {
    let f = Fixture::new(|c| c.mass_delete.min_documents = 2);
    for i in 0..4 {
        f.write(&format!("doc{i}.md"), text(&format!("topic {i}"), 2));
    }
    f.sync().await;
    for i in 0..3 {
        std::fs::remove_file(f.docs.join(format!("doc{i}.md"))).unwrap();
    }
    let repair = CheckOptions {
        repair: true,
        ..CheckOptions::default()
    };
    let withheld = f.check(&[], repair).await;
    assert!(!withheld.consistent());
    let why = &withheld.repair.as_ref().unwrap().not_repaired;
    assert!(why[0].contains("mass-delete guard"), "{why:?}");
    assert_eq!(withheld.remaining.as_ref().unwrap()[0].count, 3);
    let allowed = f
        .check(
            &[],
            CheckOptions {
                allow_mass_delete: true,
                ..repair
            },
        )
        .await;
    assert!(allowed.consistent(), "{allowed:#?}");
    assert_eq!(f.uris().await.len(), 1);
}

#[tokio::test]
async fn tables_of_another_embedder_are_reported_not_touched() {
    let f = Fixture::new(|_| {});
    f.write("a.md", text("alpha", 2));
    f.sync().await;
    let other = Engine::new(EngineConfig::new(&f.db), Arc::new(HashingEmbedder::new(16))).unwrap();
    let sources: Vec<&dyn DocumentSource> = vec![&f.source];
    let options = CheckOptions {
        repair: true,
        ..CheckOptions::default()
    };
    let report = other.check("alice", &sources, options).await.unwrap();
    assert_eq!(kinds(&report), [ProblemKind::EmbedderMismatch].into());
    assert!(!report.consistent());
    assert!(report.repair.unwrap().not_repaired[0].contains("reindex"));
    // Nothing was written: the right embedder still finds the index consistent.
    assert!(f.check(&[], CheckOptions::default()).await.consistent());
}

#[tokio::test]
async fn changed_chunk_settings_stop_runs_and_are_reported_until_a_reindex() {
    let f = Fixture::new(|_| {});
    f.write("a.md", text("alpha", 6));
    f.sync().await;
    let rechunked = |size| {
        let mut config = EngineConfig::new(&f.db);
        config.chunking.size = size;
        config.chunking.overlap = 40;
        Engine::new(config, Arc::new(HashingEmbedder::default())).unwrap()
    };
    let other = rechunked(300);
    // A run would chunk new documents another way than the stored ones: refused, naming both.
    let refused = other
        .sync("alice", &f.source, SyncOptions::default(), &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::ChunkingChanged { .. }),
        "{refused}"
    );
    let message = refused.to_string();
    assert!(
        message.contains("CHUNK_CHARACTERS=200") && message.contains("reindex"),
        "{message}"
    );
    let dry = SyncOptions {
        dry_run: true,
        ..SyncOptions::default()
    };
    assert!(
        other
            .sync("alice", &f.source, dry, &NoProgress)
            .await
            .is_err()
    );
    let sources: Vec<&dyn DocumentSource> = vec![&f.source];
    let options = CheckOptions {
        repair: true,
        ..CheckOptions::default()
    };
    let report = other.check("alice", &sources, options).await.unwrap();
    assert_eq!(
        kinds(&report),
        [ProblemKind::ChunkingChanged].into(),
        "{report:#?}"
    );
    assert!(!report.consistent());
    assert!(report.repair.unwrap().not_repaired[0].contains("reindex"));
    // The same settings as stored are fine; a re-index records the new ones.
    assert!(f.check(&[], CheckOptions::default()).await.consistent());
    other.drop_user("alice").await.unwrap();
    let run = other
        .sync("alice", &f.source, SyncOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(run.created, 1);
    assert!(
        other
            .check("alice", &sources, CheckOptions::default())
            .await
            .unwrap()
            .consistent()
    );
}

/// The local source, but one file cannot be read.
#[derive(Debug)]
struct OneUnreadable(LocalFsSource);

#[async_trait]
impl DocumentSource for OneUnreadable {
    fn id(&self) -> &str {
        self.0.id()
    }
    fn source_type(&self) -> &'static str {
        self.0.source_type()
    }
    async fn list(&self) -> lancesync_sources::Result<Listing> {
        self.0.list().await
    }
    async fn read(&self, entry: &SourceEntry) -> lancesync_sources::Result<Vec<u8>> {
        if entry.uri.ends_with("locked.md") {
            return Err(lancesync_sources::Error::Read {
                uri: entry.uri.clone(),
                reason: "permission denied".into(),
            });
        }
        self.0.read(entry).await
    }
}

#[tokio::test]
async fn a_file_that_cannot_be_read_is_reported_and_the_deep_check_goes_on() {
    let f = Fixture::new(|_| {});
    f.write("locked.md", text("locked", 2));
    f.write("open.md", text("open", 2));
    f.sync().await;
    let source = OneUnreadable(local_source("docs", &f.docs));
    let sources: Vec<&dyn DocumentSource> = vec![&source];
    let report = f.engine.check("alice", &sources, deep()).await.unwrap();
    assert_eq!(
        kinds(&report),
        [ProblemKind::Unreadable].into(),
        "{report:#?}"
    );
    assert!(report.problems[0].examples[0].contains("locked.md"));
}
