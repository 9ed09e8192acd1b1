//! Documents that fail: recorded, retried, cleared, given to the legacy fallback, too large.

use super::*;

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
