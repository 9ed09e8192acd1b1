//! What a run finds changed: created, updated, moved, touched, deleted; missing paths, the mass-delete guard, interrupted runs.

use super::*;

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
