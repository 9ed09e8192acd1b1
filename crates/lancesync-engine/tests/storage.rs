//! Every storage mode end to end with the engine, against a real S3-compatible server (moto)
//! that the tests start on 127.0.0.1.
//! Run: cargo test --workspace --test storage

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lancesync_engine::{
    Engine, EngineConfig, NoProgress, SearchMode, SearchRequest, Storage, SyncOptions,
};
use lancesync_ingest::HashingEmbedder;
use lancesync_sources::{LocalFsConfig, LocalFsSource};
use lancesync_storage::{AfterWrite, S3Target, StorageMode};
use lancesync_testkit::corpus::{mutate_mixed, write_mixed};
use lancesync_testkit::s3::{ACCESS_KEY, SECRET_KEY};
use lancesync_testkit::{Relay, S3Server};

const USER: &str = "alice";
const DOCS: usize = 40;

fn target(endpoint: &str, bucket: &str) -> S3Target {
    S3Target::new(bucket, "lancedb-backup")
        .with_endpoint(endpoint)
        .with_option("aws_region", "us-east-1")
        .with_option("aws_access_key_id", ACCESS_KEY)
        .with_option("aws_secret_access_key", SECRET_KEY)
        .with_retry_timeout(Duration::from_secs(2))
}

/// An S3 server with `bucket`, and a temp dir holding a mixed corpus of `documents` in
/// `docs/`.
async fn start(bucket: &str, documents: usize) -> (S3Server, tempfile::TempDir, PathBuf) {
    let s3 = S3Server::start();
    s3.create_bucket(bucket).await;
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    write_mixed(&docs, documents).unwrap();
    (s3, dir, docs)
}

/// One device: its own local folder and state, sharing S3 with others.
struct Device {
    root: PathBuf,
    engine: Engine,
}

impl Device {
    fn new(root: &Path, mode: StorageMode, target: S3Target) -> Self {
        Self::with_dimension(root, mode, target, 64)
    }

    /// A device whose (built-in) embedder makes vectors of `dimension`.
    fn with_dimension(root: &Path, mode: StorageMode, target: S3Target, dimension: usize) -> Self {
        let storage = Storage::new(mode, root.join("db"), root.join("state"), Some(target))
            .with_cache_refresh_interval(Duration::ZERO);
        let mut config = EngineConfig::new(root.join("db")).with_storage(Arc::new(storage));
        config.chunking.size = 300;
        config.chunking.overlap = 50;
        let engine = Engine::new(config, Arc::new(HashingEmbedder::new(dimension))).unwrap();
        Self {
            root: root.to_path_buf(),
            engine,
        }
    }

    async fn sync(&self, folder: &Path) -> lancesync_engine::SyncReport {
        self.engine
            .sync(USER, &source(folder), SyncOptions::default(), &NoProgress)
            .await
            .unwrap()
    }

    fn local_db(&self) -> PathBuf {
        self.root.join("db").join("users").join(USER)
    }
}

fn source(folder: &Path) -> LocalFsSource {
    LocalFsSource::new(
        "docs",
        LocalFsConfig::new([folder.to_str().unwrap()]),
        &BTreeMap::new(),
    )
    .unwrap()
}

/// A hit: document, chunk, and score in millionths.
type Hit = (String, i32, i64);

/// What a user sees: counts and ranked results of a few searches in every mode. Hits with
/// equal scores are put in a fixed order: which of several tied rows a search's limit keeps
/// follows the physical row layout, which a restore and re-sync may change.
async fn snapshot(engine: &Engine) -> (usize, usize, Vec<Vec<Hit>>) {
    let status = engine.status(USER).await.unwrap();
    let mut results = Vec::new();
    let queries = ["harbor", "quarterly report", "garden", "alpha beta"];
    for (q, mode) in queries.iter().flat_map(|q| {
        [SearchMode::Vector, SearchMode::FullText, SearchMode::Hybrid].map(|mode| (q, mode))
    }) {
        let mut request = SearchRequest::new(*q);
        request.mode = mode;
        request.limit = 8;
        let hits = engine.search(USER, &request).await.unwrap();
        let mut hits: Vec<Hit> = hits
            .into_iter()
            .map(|h| (h.doc_id, h.chunk_index, (h.score * 1e6).round() as i64))
            .collect();
        hits.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| (&a.0, a.1).cmp(&(&b.0, b.1))));
        results.push(hits);
    }
    (status.documents, status.chunks, results)
}

async fn versions(engine: &Engine) -> (u64, u64) {
    engine.status(USER).await.unwrap().versions
}

fn backed_up(report: &lancesync_engine::SyncReport) -> lancesync_storage::BackupRecord {
    match &report.storage {
        Some(AfterWrite::BackedUp { record }) => record.clone(),
        other => panic!("expected a backup after the run, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_mode_copies_incrementally_and_restores_identical_results() {
    let (s3, dir, docs) = start("backups", DOCS).await;
    let device = Device::new(
        &dir.path().join("a"),
        StorageMode::LocalPrimaryS3Backup,
        target(&s3.endpoint(), "backups"),
    );
    let first = backed_up(&device.sync(&docs).await);
    assert!(first.files > 4 && first.bytes > 10_000, "{first:?}");
    let before_change = snapshot(&device.engine).await;
    let (docs_version, _) = versions(&device.engine).await;
    assert!(before_change.0 == DOCS && before_change.1 > DOCS);

    // A second backup with nothing new sends nothing.
    let idle = device.engine.backup(USER).await.unwrap();
    assert_eq!((idle.files, idle.bytes), (0, 0));

    // Change 1 in 10 documents: the backup sends only the new files.
    mutate_mixed(&docs, DOCS, 0.1, 1).unwrap();
    let second = backed_up(&device.sync(&docs).await);
    assert!(second.files > 0);
    assert!(
        second.bytes * 2 < first.bytes,
        "incremental {} bytes vs full {} bytes",
        second.bytes,
        first.bytes
    );
    let after_change = snapshot(&device.engine).await;
    let state = device.engine.storage().user_state(USER).unwrap();
    assert!(state.pending_since.is_none() && state.last_error.is_none());
    assert_eq!(state.last_backup.as_ref().unwrap(), &second);

    // Lose the local database; a new process restores it from S3.
    std::fs::remove_dir_all(dir.path().join("a").join("db")).unwrap();
    let device = Device::new(
        &dir.path().join("a"),
        StorageMode::LocalPrimaryS3Backup,
        target(&s3.endpoint(), "backups"),
    );
    assert_eq!(snapshot(&device.engine).await.0, 0);
    let restored = device.engine.restore(USER, None).await.unwrap();
    assert!(restored.transfer.files >= first.files + second.files - 2);
    assert!(restored.previous_kept_at.is_none());
    assert_eq!(snapshot(&device.engine).await, after_change);

    // Back in time: the documents version before the change, with its chunks.
    let back = device
        .engine
        .restore(USER, Some(docs_version))
        .await
        .unwrap();
    assert!(back.previous_kept_at.as_ref().unwrap().exists());
    assert_eq!(snapshot(&device.engine).await, before_change);
    // The restored version is new locally: it is queued for the next copy, and a sync
    // brings the changed documents back.
    assert!(
        device
            .engine
            .storage()
            .user_state(USER)
            .unwrap()
            .pending_since
            .is_some()
    );
    let resync = device.sync(&docs).await;
    assert_eq!(resync.updated, DOCS / 10);
    assert_eq!(snapshot(&device.engine).await, after_change);

    let missing = device.engine.restore(USER, Some(10_000)).await;
    assert!(
        missing.unwrap_err().to_string().contains("does not exist"),
        "unknown version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_only_mode_keeps_everything_on_s3() {
    let (s3, dir, docs) = start("primary", 20).await;
    let device = Device::new(
        &dir.path().join("a"),
        StorageMode::S3Only,
        target(&s3.endpoint(), "primary"),
    );
    let report = device.sync(&docs).await;
    assert_eq!(report.created, 20);
    assert!(
        report.storage.is_none(),
        "s3_only has nothing to do after a run"
    );
    assert!(!device.local_db().exists(), "no local database in s3_only");
    let first = snapshot(&device.engine).await;
    assert_eq!(first.0, 20);
    let (docs_version, _) = versions(&device.engine).await;

    // Another process (say, a server) reads the same database from S3.
    let other = Device::new(
        &dir.path().join("b"),
        StorageMode::S3Only,
        target(&s3.endpoint(), "primary"),
    );
    assert_eq!(snapshot(&other.engine).await, first);

    // A change, then time travel back on S3.
    mutate_mixed(&docs, 20, 0.25, 1).unwrap();
    assert_eq!(device.sync(&docs).await.updated, 5);
    assert!(
        device.engine.restore(USER, None).await.is_err(),
        "needs a version"
    );
    device
        .engine
        .restore(USER, Some(docs_version))
        .await
        .unwrap();
    assert_eq!(snapshot(&device.engine).await, first);

    // Dropping the user removes its objects.
    device.engine.drop_user(USER).await.unwrap();
    let after = Device::new(
        &dir.path().join("c"),
        StorageMode::S3Only,
        target(&s3.endpoint(), "primary"),
    );
    assert_eq!(snapshot(&after.engine).await.0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_mode_serves_searches_from_a_replica_that_follows_the_primary() {
    let (s3, dir, docs) = start("primary", 20).await;
    let writer = Device::new(
        &dir.path().join("writer"),
        StorageMode::S3PrimaryLocalCache,
        target(&s3.endpoint(), "primary"),
    );
    let report = writer.sync(&docs).await;
    match &report.storage {
        Some(AfterWrite::Refreshed { report }) => assert!(report.files > 0),
        other => panic!("expected a cache refresh, got {other:?}"),
    }
    assert!(writer.local_db().exists(), "the writer's replica is local");
    let first = snapshot(&writer.engine).await;
    assert_eq!(first.0, 20);

    // A reader with no replica fetches one on first use and answers the same.
    let reader = Device::new(
        &dir.path().join("reader"),
        StorageMode::S3PrimaryLocalCache,
        target(&s3.endpoint(), "primary"),
    );
    assert!(!reader.local_db().exists());
    assert_eq!(snapshot(&reader.engine).await, first);
    assert!(reader.local_db().exists());

    // The writer changes documents; the reader's replica catches up in the background.
    mutate_mixed(&docs, 20, 0.25, 1).unwrap();
    std::fs::remove_file(docs.join(lancesync_testkit::corpus::mixed_path(1))).unwrap();
    writer.sync(&docs).await;
    let changed = snapshot(&writer.engine).await;
    assert_eq!(changed.0, 19);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let seen = snapshot(&reader.engine).await;
        if seen == changed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reader's replica never caught up: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Losing the replica costs a download, nothing else. (Taking the user's refresh lock
    // waits for a background refresh still writing into it.)
    reader.engine.storage().refresh_replica(USER).await.unwrap();
    std::fs::remove_dir_all(reader.local_db()).unwrap();
    let reader = Device::new(
        &dir.path().join("reader"),
        StorageMode::S3PrimaryLocalCache,
        target(&s3.endpoint(), "primary"),
    );
    assert_eq!(snapshot(&reader.engine).await, changed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_in_sync_mode_share_versions_and_detect_conflicts() {
    let s3 = S3Server::start();
    s3.create_bucket("shared").await;
    let relay = Relay::start(s3.addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let (docs_a, docs_b) = (dir.path().join("docs-a"), dir.path().join("docs-b"));
    write_mixed(&docs_a, 10).unwrap();
    std::fs::create_dir_all(&docs_b).unwrap();
    std::fs::write(
        docs_b.join("b-notes.md"),
        "# Device B\n\nNotes about the harbor.",
    )
    .unwrap();
    let a = Device::new(
        &dir.path().join("a"),
        StorageMode::LocalPrimaryS3Sync,
        target(&s3.endpoint(), "shared"),
    );
    // Device B reaches S3 through a relay the test can cut.
    let b = Device::new(
        &dir.path().join("b"),
        StorageMode::LocalPrimaryS3Sync,
        target(&relay.endpoint(), "shared"),
    );
    backed_up(&a.sync(&docs_a).await);

    // B has no database: it pulls A's first, then adds its own source's document.
    let source_b = LocalFsSource::new(
        "notes",
        LocalFsConfig::new([docs_b.to_str().unwrap()]),
        &BTreeMap::new(),
    )
    .unwrap();
    let report = b
        .engine
        .sync(USER, &source_b, SyncOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(report.created, 1);
    backed_up(&report);
    assert_eq!(b.engine.status(USER).await.unwrap().documents, 11);

    // A's next run fetches B's version first (A changed nothing since).
    let run = a.sync(&docs_a).await;
    assert_eq!(run.unchanged, 10);
    assert_eq!(a.engine.status(USER).await.unwrap().documents, 11);
    assert_eq!(snapshot(&a.engine).await, snapshot(&b.engine).await);

    // B works offline; A writes meanwhile. B's copy is refused, and S3 keeps A's version.
    relay.cut();
    std::fs::write(docs_b.join("b-more.md"), "# More\n\nGarden notes from B.").unwrap();
    let offline = b
        .engine
        .sync(USER, &source_b, SyncOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert!(
        matches!(offline.storage, Some(AfterWrite::Queued { .. })),
        "{:?}",
        offline.storage
    );
    assert_eq!(b.engine.storage().backlog(), vec![USER.to_string()]);
    mutate_mixed(&docs_a, 10, 0.5, 1).unwrap();
    backed_up(&a.sync(&docs_a).await);
    let a_view = snapshot(&a.engine).await;
    relay.restore().await;
    let conflict = b.engine.backup(USER).await.unwrap_err();
    assert!(conflict.to_string().contains("conflict"), "{conflict}");
    let state = b.engine.storage().user_state(USER).unwrap();
    assert!(state.conflict.is_some() && state.pending_since.is_some());
    let fresh = Device::new(
        &dir.path().join("c"),
        StorageMode::LocalPrimaryS3Sync,
        target(&s3.endpoint(), "shared"),
    );
    fresh.engine.restore(USER, None).await.unwrap();
    assert_eq!(
        snapshot(&fresh.engine).await,
        a_view,
        "S3 still holds A's version"
    );

    // Resolving: B takes S3's copy and syncs its source again; nothing of B's is lost.
    b.engine.restore(USER, None).await.unwrap();
    assert!(
        b.engine
            .storage()
            .user_state(USER)
            .unwrap()
            .conflict
            .is_none()
    );
    let again = b
        .engine
        .sync(USER, &source_b, SyncOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(again.created, 1, "B's offline document is re-applied");
    backed_up(&again);
    assert_eq!(b.engine.status(USER).await.unwrap().documents, 12);
    let run = a.sync(&docs_a).await;
    assert_eq!(run.unchanged, 10);
    assert_eq!(a.engine.status(USER).await.unwrap().documents, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_outages_mid_backup_lose_nothing() {
    let (mut s3, dir, docs) = start("backups", DOCS).await;
    let relay = Relay::start(s3.addr()).await;
    let device = Device::new(
        &dir.path().join("a"),
        StorageMode::LocalPrimaryS3Backup,
        target(&relay.endpoint(), "backups"),
    );
    backed_up(&device.sync(&docs).await);
    let first = snapshot(&device.engine).await;

    // S3 goes away before a run: local syncing goes on and the copy is queued durably.
    relay.cut();
    mutate_mixed(&docs, DOCS, 0.5, 1).unwrap();
    let offline = device.sync(&docs).await;
    assert_eq!(offline.updated, DOCS / 2);
    assert!(matches!(offline.storage, Some(AfterWrite::Queued { .. })));
    let latest = snapshot(&device.engine).await;
    let status = device.engine.storage().status(&[]).await.unwrap();
    assert_eq!(status.backlog, 1);
    assert!(status.users[0].state.last_error.is_some());
    assert!(!status.users[0].state.attempt_due(), "retries back off");

    // S3 returns, and goes away again in the middle of the copy.
    relay.restore().await;
    let start = relay.bytes_up();
    let copy = tokio::spawn({
        let storage = device.engine.storage().clone();
        async move { storage.backup(USER).await }
    });
    while relay.bytes_up() < start + 2_000 && !copy.is_finished() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    relay.cut();
    let interrupted = copy.await.unwrap();
    if interrupted.is_ok() {
        eprintln!("note: the copy finished before the cut; the outage part is covered above");
    }
    // Whatever got through, the backup opens at a complete version.
    let reader = Device::new(
        &dir.path().join("reader"),
        StorageMode::LocalPrimaryS3Backup,
        target(&s3.endpoint(), "backups"),
    );
    reader.engine.restore(USER, None).await.unwrap();
    let seen = snapshot(&reader.engine).await;
    assert!(
        seen == first || seen == latest,
        "backup opened at a partial version"
    );

    // Back again: the queued copy completes and the backup holds the latest version.
    relay.restore().await;
    device.engine.backup(USER).await.unwrap();
    assert_eq!(device.engine.storage().backlog(), Vec::<String>::new());
    reader.engine.restore(USER, None).await.unwrap();
    assert_eq!(snapshot(&reader.engine).await, latest);

    // The S3 server itself crashes and comes back empty: the next copy sends everything.
    s3.restart();
    s3.create_bucket("backups").await;
    let full = device.engine.backup(USER).await.unwrap();
    assert!(full.files > 4);
    let fresh = Device::new(
        &dir.path().join("fresh"),
        StorageMode::LocalPrimaryS3Backup,
        target(&s3.endpoint(), "backups"),
    );
    fresh.engine.restore(USER, None).await.unwrap();
    assert_eq!(snapshot(&fresh.engine).await, latest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_name_a_missing_bucket_and_refused_credentials() {
    let s3 = S3Server::start();
    s3.create_bucket("present").await;
    let dir = tempfile::tempdir().unwrap();
    let storage = |t: S3Target| {
        Storage::new(
            StorageMode::LocalPrimaryS3Backup,
            dir.path().join("db"),
            dir.path().join("state"),
            Some(t),
        )
    };
    storage(target(&s3.endpoint(), "present"))
        .probe()
        .await
        .unwrap();
    let missing = storage(target(&s3.endpoint(), "absent"))
        .probe()
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("\"absent\" does not exist"), "{missing}");

    let strict = S3Server::start_enforcing_auth();
    let refused = storage(target(&strict.endpoint(), "present"))
        .probe()
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("access refused"), "{refused}");

    let nobody = storage(target("http://127.0.0.1:1", "present"))
        .probe()
        .await
        .unwrap_err()
        .to_string();
    assert!(nobody.contains("unreachable"), "{nobody}");
    assert!(!format!("{missing}{refused}{nobody}").contains(SECRET_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_a_backup_behind_and_repair_copies_it() {
    let (s3, dir, docs) = start("checked", 6).await;
    let relay = Relay::start(s3.addr()).await;
    let device = Device::new(
        &dir.path().join("a"),
        StorageMode::LocalPrimaryS3Backup,
        target(&relay.endpoint(), "checked"),
    );
    backed_up(&device.sync(&docs).await);
    let source = LocalFsSource::new(
        "docs",
        LocalFsConfig::new([docs.to_str().unwrap()]),
        &BTreeMap::new(),
    )
    .unwrap();
    let sources: Vec<&dyn lancesync_sources::DocumentSource> = vec![&source];
    let quick = lancesync_engine::CheckOptions::default();
    let report = device.engine.check(USER, &sources, quick).await.unwrap();
    assert!(report.consistent(), "{report:#?}");

    // S3 away during a run: the copy is queued, and check says so, with the reason.
    relay.cut();
    mutate_mixed(&docs, 6, 0.5, 1).unwrap();
    assert!(matches!(
        device.sync(&docs).await.storage,
        Some(AfterWrite::Queued { .. })
    ));
    let report = device.engine.check(USER, &sources, quick).await.unwrap();
    let kinds: Vec<_> = report.problems.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [lancesync_engine::ProblemKind::BackupBehind],
        "{report:#?}"
    );
    assert!(report.problems[0].examples[0].contains("the last copy failed"));

    // Still away: the repair says it could not copy; back: it copies, whatever the backoff.
    let repair = lancesync_engine::CheckOptions {
        repair: true,
        ..quick
    };
    let failed = device.engine.check(USER, &sources, repair).await.unwrap();
    assert!(!failed.consistent());
    assert!(
        failed.repair.as_ref().unwrap().not_repaired[0].contains("copy to S3"),
        "{failed:#?}"
    );
    relay.restore().await;
    let repaired = device.engine.check(USER, &sources, repair).await.unwrap();
    assert!(repaired.consistent(), "{repaired:#?}");
    assert_eq!(device.engine.storage().backlog(), Vec::<String>::new());
    assert!(
        device
            .engine
            .check(USER, &sources, quick)
            .await
            .unwrap()
            .consistent()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reindex_on_s3_switches_every_reader_and_rolls_back() {
    let (s3, dir, docs) = start("primary", 20).await;
    let primary = |name: &str, dimension| {
        Device::with_dimension(
            &dir.path().join(name),
            StorageMode::S3Only,
            target(&s3.endpoint(), "primary"),
            dimension,
        )
    };
    let old = primary("old", 64);
    assert_eq!(old.sync(&docs).await.created, 20);
    let before = snapshot(&old.engine).await;
    // A reader from a local replica, configured with the old embedder.
    let cached = Device::new(
        &dir.path().join("cached"),
        StorageMode::S3PrimaryLocalCache,
        target(&s3.endpoint(), "primary"),
    );
    assert_eq!(snapshot(&cached.engine).await, before);

    let new = primary("new", 32);
    let report = new
        .engine
        .reindex(
            USER,
            &[&source(&docs)],
            lancesync_engine::ReindexOptions::default(),
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!((report.documents, report.failed), (20, 0));
    assert_eq!(report.embedder.dimension, 32);
    let after = snapshot(&new.engine).await;
    assert_eq!((after.0, after.1), (20, report.chunks));
    // A search that found something before finds something after (other vectors, so other
    // scores and perhaps other hits).
    for (b, a) in before.2.iter().zip(&after.2) {
        assert_eq!(b.is_empty(), a.is_empty(), "before {b:?}, after {a:?}");
    }
    // Every reader follows: the old engine from S3, the replica once refreshed; they embed
    // their queries with the new tables' embedder.
    assert_eq!(snapshot(&old.engine).await, after);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while snapshot(&cached.engine).await != after {
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never followed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(new.sync(&docs).await.unchanged == 20);

    let rolled = new
        .engine
        .rollback_reindex(USER, lancesync_engine::ReindexOptions::default())
        .await
        .unwrap();
    assert_eq!(rolled.embedder.map(|e| e.dimension), Some(64));
    assert_eq!(snapshot(&old.engine).await, before);
    assert_eq!(old.sync(&docs).await.unchanged, 20);
}
