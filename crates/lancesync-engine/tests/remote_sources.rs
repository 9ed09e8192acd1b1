//! Remote sources synced into real LanceDB tables: the S3 bucket source against moto's S3
//! server (behind a counting proxy), and the Dropbox source against the testkit's stand-in.
//! Run: cargo test --workspace --test remote_sources

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lancesync_engine::{Error, NoProgress, SearchRequest, SyncOptions};
use lancesync_sources::{DropboxConfig, DropboxSource, S3Source, S3SourceConfig, SecretRef};
use lancesync_testkit::{DropboxServer, HttpProxy, InjectedFault, S3Server};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;

mod common;
use common::{Index, abort_sync_when, text};

// ---------------------------------------------------------------------------------------
// S3

struct Bucket {
    _server: S3Server,
    proxy: HttpProxy,
    store: Arc<dyn object_store::ObjectStore>,
}

impl Bucket {
    async fn start(name: &str) -> Self {
        let server = S3Server::start();
        server.create_bucket(name).await;
        let proxy = HttpProxy::start(&server.endpoint()).await;
        let store = server.client(name);
        Self {
            _server: server,
            proxy,
            store,
        }
    }

    async fn put(&self, key: &str, body: impl Into<Vec<u8>>) {
        let body: Vec<u8> = body.into();
        self.store
            .put(&ObjectPath::from(key), body.into())
            .await
            .unwrap();
    }

    async fn rename(&self, from: &str, to: &str) {
        let (from, to) = (ObjectPath::from(from), ObjectPath::from(to));
        self.store.copy(&from, &to).await.unwrap();
        self.store.delete(&from).await.unwrap();
    }

    async fn delete(&self, key: &str) {
        self.store.delete(&ObjectPath::from(key)).await.unwrap();
    }

    /// A source reading `prefix` through the proxy, credentials given as `env:` references.
    fn source(&self, id: &str, bucket: &str, prefix: &str) -> S3Source {
        self.source_with(id, bucket, prefix, |_| {})
    }

    fn source_with(
        &self,
        id: &str,
        bucket: &str,
        prefix: &str,
        tweak: impl FnOnce(&mut S3SourceConfig),
    ) -> S3Source {
        let env = BTreeMap::from([
            (
                "T_KEY".to_string(),
                lancesync_testkit::s3::ACCESS_KEY.to_string(),
            ),
            (
                "T_SECRET".to_string(),
                lancesync_testkit::s3::SECRET_KEY.to_string(),
            ),
        ]);
        let mut config = S3SourceConfig::new(bucket, prefix);
        config.endpoint = Some(self.proxy.url.clone());
        config.region = Some("us-east-1".into());
        config.access_key_id = Some(SecretRef::env("T_KEY"));
        config.secret_access_key = Some(SecretRef::env("T_SECRET"));
        config.retry_timeout_secs = 2;
        tweak(&mut config);
        S3Source::new(id, config, &env).unwrap()
    }

    fn gets(&self) -> usize {
        self.proxy
            .requests()
            .iter()
            .filter(|r| r.is_s3_get())
            .count()
    }

    fn lists(&self) -> usize {
        self.proxy
            .requests()
            .iter()
            .filter(|r| r.is_s3_list())
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_objects_created_updated_renamed_and_deleted() {
    let bucket = Bucket::start("team-docs").await;
    bucket
        .put(
            "notes/rivers.md",
            format!("# Rivers\n\n{}", text("rivers", 6)),
        )
        .await;
    bucket
        .put("notes/mountains.txt", text("mountains", 4))
        .await;
    bucket
        .put(
            "notes/page.html",
            format!(
                "<html><head><title>Oceans</title></head><body><p>{}</p></body></html>",
                text("oceans", 3)
            ),
        )
        .await;
    bucket.put("notes/skip.bin", "not a document").await;
    bucket.put("elsewhere/outside.md", text("outside", 2)).await;
    let index = Index::new();
    let source = bucket.source("bucket", "team-docs", "notes");

    let first = index.sync(&source).await;
    assert_eq!((first.created, first.failed), (3, 0), "{first:?}");
    assert_eq!(
        index.uris().await,
        [
            "s3://team-docs/notes/mountains.txt",
            "s3://team-docs/notes/page.html",
            "s3://team-docs/notes/rivers.md"
        ]
    );
    assert_eq!(bucket.gets(), 3, "one GET per new document");
    assert_eq!(index.top_title("oceans").await, "Oceans");

    // Nothing changed: list pages only, no GET.
    bucket.proxy.clear();
    let again = index.sync(&source).await;
    assert_eq!((again.unchanged, again.created, again.updated), (3, 0, 0));
    assert_eq!(bucket.gets(), 0);
    assert_eq!(bucket.lists(), 1);
    assert_eq!(
        bucket.proxy.requests().len(),
        1,
        "{:?}",
        bucket.proxy.requests()
    );

    // An update, a rename (copy + delete: same ETag) and a deletion.
    bucket.put("notes/mountains.txt", text("glaciers", 5)).await;
    bucket
        .rename("notes/rivers.md", "notes/archive/rivers-2026.md")
        .await;
    bucket.delete("notes/page.html").await;
    bucket.proxy.clear();
    let embedded = index.embedded();
    let changed = index.sync(&source).await;
    assert_eq!(
        (
            changed.updated,
            changed.moved,
            changed.deleted,
            changed.failed
        ),
        (1, 1, 1, 0),
        "{changed:?}"
    );
    assert_eq!(bucket.gets(), 1, "only the updated object is downloaded");
    let glacier_chunks = index.embedded() - embedded;
    assert!(glacier_chunks > 0);
    let tables = index.engine.tables("alice").await.unwrap();
    let glaciers = tables
        .docs_where(Some(
            "source_uri = 's3://team-docs/notes/mountains.txt'".into(),
        ))
        .await
        .unwrap();
    assert_eq!(
        glacier_chunks, glaciers[0].total_chunks as usize,
        "the move embedded nothing"
    );
    assert_eq!(
        index.uris().await,
        [
            "s3://team-docs/notes/archive/rivers-2026.md",
            "s3://team-docs/notes/mountains.txt"
        ]
    );
    let hits = index
        .engine
        .search("alice", &SearchRequest::new("rivers"))
        .await
        .unwrap();
    assert_eq!(
        hits[0].source_uri,
        "s3://team-docs/notes/archive/rivers-2026.md"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_listings_page_through_thousands_and_a_failed_page_deletes_nothing() {
    let bucket = Bucket::start("big-bucket").await;
    let objects = 2_600;
    futures::stream::iter(0..objects)
        .map(|i| {
            let bucket = &bucket;
            async move {
                bucket
                    .put(
                        &format!("docs/{:02}/note-{i:05}.txt", i % 17),
                        format!("note {i} about topic{i}"),
                    )
                    .await
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let index = Index::new();
    let source = bucket.source("big", "big-bucket", "docs");
    let first = index.sync(&source).await;
    assert_eq!((first.created, first.failed), (objects, 0));
    assert_eq!(bucket.lists(), 3, "ListObjectsV2 pages of 1,000 keys");

    // The second page fails: the run fails as a whole and deletes nothing.
    bucket.proxy.clear();
    bucket.proxy.fail_when(|r| {
        (r.is_s3_list() && r.query.contains("continuation-token")).then(|| InjectedFault {
            status: 403,
            body: "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>".into(),
        })
    });
    let failed = index.try_sync(&source).await.unwrap_err();
    assert!(matches!(failed, Error::Source(_)), "{failed}");
    assert!(
        failed.to_string().contains("nothing is deleted"),
        "{failed}"
    );
    assert_eq!(index.uris().await.len(), objects);

    // Back to normal: nothing to do, and still list pages only.
    bucket.proxy.heal();
    bucket.proxy.clear();
    let healed = index.sync(&source).await;
    assert_eq!((healed.unchanged, healed.deleted), (objects, 0));
    assert_eq!(bucket.gets(), 0);
}

// ---------------------------------------------------------------------------------------
// Dropbox

fn dropbox(
    server: &DropboxServer,
    id: &str,
    path: &str,
    tweak: impl FnOnce(&mut DropboxConfig),
) -> DropboxSource {
    let env = BTreeMap::from([("DBX_TOKEN".to_string(), "sl.test-token".to_string())]);
    let mut config = DropboxConfig::with_token(path, SecretRef::env("DBX_TOKEN"));
    config.api_url = Some(server.url.clone());
    config.content_url = Some(server.url.clone());
    config.http.min_backoff_ms = 20;
    config.http.requests_per_second = Some(1000.0);
    tweak(&mut config);
    DropboxSource::new(id, config, &env).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropbox_first_sync_then_changes_through_the_cursor() {
    let server = DropboxServer::start("sl.test-token").await;
    server.set_page_size(2);
    server.put(
        "/Work/Rivers.md",
        format!("# Rivers\n\n{}", text("rivers", 6)).as_bytes(),
    );
    server.put("/Work/mountains.txt", text("mountains", 4).as_bytes());
    server.put("/Work/Résumé notes.md", text("career", 3).as_bytes());
    server.put(
        "/Work/sub/Page.html",
        format!("<p>{}</p>", text("oceans", 3)).as_bytes(),
    );
    server.put("/Work/sub/deep/Deltas.md", text("deltas", 2).as_bytes());
    server.put_cloud_only("/Work/Plan.md");
    server.put("/Work/photo.jpg", b"\xff\xd8 not a document");
    server.put("/Other/outside.md", text("outside", 2).as_bytes());
    let index = Index::new();
    let source = dropbox(&server, "dbx", "/Work", |_| {});

    let first = index.sync(&source).await;
    assert_eq!((first.created, first.failed), (5, 0), "{first:?}");
    assert_eq!(first.issues.len(), 1, "the cloud-only file is reported");
    assert_eq!(first.issues[0].uri, "dropbox:/work/plan.md");
    assert_eq!(server.count("files/list_folder"), 1);
    assert!(
        server.count("files/list_folder/continue") >= 3,
        "{:?}",
        server.counts()
    );
    assert_eq!(server.count("files/download"), 5);
    assert!(index.cursor("dbx").await.is_some());
    assert_eq!(
        index.top_title("career").await,
        "Résumé notes.md",
        "the display name is the title"
    );

    // Nothing changed: one request, no download, nothing written (the cursor stays).
    let cursor = index.cursor("dbx").await;
    let versions = index.engine.status("alice").await.unwrap().versions;
    server.clear_requests();
    let again = index.sync(&source).await;
    assert_eq!((again.unchanged, again.created), (5, 0));
    assert_eq!(server.total_requests(), 1, "{:?}", server.counts());
    assert_eq!(server.count("files/list_folder/continue"), 1);
    assert_eq!(index.cursor("dbx").await, cursor);
    assert_eq!(
        index.engine.status("alice").await.unwrap().versions,
        versions
    );

    // An edit, a move, a deletion, a folder deletion, and a change outside the folder.
    server.put("/Work/mountains.txt", text("glaciers", 5).as_bytes());
    server.rename("/Work/Rivers.md", "/Work/archive/Rivers 2026.md");
    server.delete("/Work/Résumé notes.md");
    server.delete_folder("/Work/sub/deep");
    server.put("/Other/outside.md", b"changed elsewhere");
    server.clear_requests();
    let embedded = index.embedded();
    let changed = index.sync(&source).await;
    assert_eq!(
        (
            changed.updated,
            changed.moved,
            changed.deleted,
            changed.created,
            changed.failed
        ),
        (1, 1, 2, 0, 0),
        "{changed:?}"
    );
    assert_eq!(
        server.count("files/download"),
        1,
        "the moved file is not downloaded"
    );
    assert_eq!(
        server.count("files/list_folder"),
        0,
        "changes come through the cursor"
    );
    let tables = index.engine.tables("alice").await.unwrap();
    let glaciers = tables
        .docs_where(Some("source_uri = 'dropbox:/work/mountains.txt'".into()))
        .await
        .unwrap();
    assert_eq!(
        index.embedded() - embedded,
        glaciers[0].total_chunks as usize,
        "only the edited file was embedded"
    );
    assert_eq!(
        index.uris().await,
        [
            "dropbox:/work/archive/rivers 2026.md",
            "dropbox:/work/mountains.txt",
            "dropbox:/work/sub/page.html"
        ]
    );
    assert_eq!(
        index.top_title("rivers").await,
        "Rivers",
        "the markdown heading stays the title"
    );
    assert_ne!(index.cursor("dbx").await, cursor, "the cursor advanced");

    // The source's documents removed: its cursor goes with them, so a new source of the same
    // id lists in full instead of trusting it.
    index
        .engine
        .remove_source_documents("alice", "dbx")
        .await
        .unwrap();
    assert_eq!(index.cursor("dbx").await, None);
    server.clear_requests();
    let relisted = index.sync(&source).await;
    assert_eq!(relisted.created, 3);
    assert_eq!(server.count("files/list_folder"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropbox_cursor_reset_falls_back_to_a_complete_listing() {
    let server = DropboxServer::start("sl.test-token").await;
    for name in ["a", "b", "c"] {
        server.put(&format!("/Docs/{name}.md"), text(name, 2).as_bytes());
    }
    let index = Index::new();
    let source = dropbox(&server, "dbx", "/Docs", |_| {});
    assert_eq!(index.sync(&source).await.created, 3);

    server.reset_cursors();
    server.delete("/Docs/b.md");
    server.clear_requests();
    let after = index.sync(&source).await;
    assert_eq!((after.deleted, after.unchanged), (1, 2), "{after:?}");
    assert_eq!(
        server.count("files/list_folder"),
        1,
        "listed in full after the reset"
    );
    assert_eq!(server.count("files/download"), 0);

    // A folder that is gone (or mistyped) is an error, not an empty listing.
    let missing = dropbox(&server, "dbx", "/Docs-typo", |_| {});
    let err = index.try_sync(&missing).await.unwrap_err().to_string();
    assert!(err.contains("is not in this Dropbox"), "{err}");
    assert_eq!(index.uris().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropbox_a_run_stopped_after_fetching_keeps_its_cursor_and_converges() {
    let server = DropboxServer::start("sl.test-token").await;
    for name in ["a", "b", "c"] {
        server.put(&format!("/{name}.md"), text(name, 3).as_bytes());
    }
    let index = Index::new();
    let source = Arc::new(dropbox(&server, "dbx", "", |_| {}));
    assert_eq!(index.sync(source.as_ref()).await.created, 3);
    let cursor = index.cursor("dbx").await.unwrap();

    // Two files change; one downloads at once, the other hangs: the run is stopped while
    // the first is fetched and processed but before anything is written.
    server.put("/a.md", text("apples", 3).as_bytes());
    server.put("/c.md", text("cherries", 3).as_bytes());
    server.slow_download("/c.md");
    server.clear_requests();
    abort_sync_when(&index, source.clone(), Duration::from_millis(300), || {
        server.count("files/download") >= 2
    })
    .await;
    assert_eq!(
        index.cursor("dbx").await.as_deref(),
        Some(cursor.as_str()),
        "the cursor did not advance"
    );

    // The next run replays the same changes and converges: no duplicates.
    server.fast_downloads();
    let replay = index.sync(source.as_ref()).await;
    assert_eq!((replay.updated, replay.failed), (2, 0), "{replay:?}");
    assert_ne!(index.cursor("dbx").await.as_deref(), Some(cursor.as_str()));
    assert_eq!(index.top_title("cherries").await, "c.md");
    index.assert_no_duplicate_chunks().await;
    assert_eq!(index.sync(source.as_ref()).await.unchanged, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_objects_over_the_size_limit_fail_without_a_download() {
    let bucket = Bucket::start("sized").await;
    bucket.put("small.txt", "small enough").await;
    bucket.put("big.txt", "x".repeat(10_000)).await;
    let source = bucket.source_with("sized", "sized", "", |c| {
        c.filter.max_file_size = Some(1_000)
    });
    let index = Index::new();
    let report = index.sync(&source).await;
    assert_eq!((report.created, report.failed), (1, 1), "{report:?}");
    assert!(
        report.failures[0]
            .reason
            .contains("over the 1000-byte limit"),
        "{report:?}"
    );
    assert_eq!(bucket.gets(), 1, "the big object is never downloaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropbox_a_page_that_keeps_failing_midway_deletes_nothing_and_keeps_the_cursor() {
    let server = DropboxServer::start("sl.test-token").await;
    server.set_page_size(5);
    for i in 0..24 {
        server.put(
            &format!("/n{i}.md"),
            text(&format!("topic{i}"), 1).as_bytes(),
        );
    }
    let index = Index::new();
    let source = dropbox(&server, "dbx", "", |c| c.http.max_retries = 2);
    assert_eq!(index.sync(&source).await.created, 24);
    let cursor = index.cursor("dbx").await;

    // After a reset, the complete listing's second page fails every try: nothing is
    // deleted (although most files are missing from what was listed), the cursor stays.
    for i in 0..14 {
        server.delete(&format!("/n{i}.md"));
    }
    server.reset_cursors();
    server.throttle_after(2, 3, 0);
    let err = index.try_sync(&source).await.unwrap_err().to_string();
    assert!(err.contains("429"), "{err}");
    assert_eq!(index.uris().await.len(), 24);
    assert_eq!(index.cursor("dbx").await, cursor);

    // The next run lists in full and deletes what that complete listing proves gone (past
    // the mass-delete guard only when told).
    let blocked = index.sync(&source).await;
    assert!(blocked.mass_delete_blocked.is_some(), "{blocked:?}");
    assert_eq!(index.uris().await.len(), 24);
    assert_eq!(
        index.cursor("dbx").await,
        cursor,
        "withheld deletions keep the cursor"
    );
    let allowed = index
        .engine
        .sync(
            "alice",
            &source,
            SyncOptions {
                allow_mass_delete: true,
                ..SyncOptions::default()
            },
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(allowed.deleted, 14);
    assert_eq!(index.uris().await.len(), 10);
    assert_ne!(index.cursor("dbx").await, cursor);
}
