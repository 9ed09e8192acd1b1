//! The storage benchmark of docs/benchmarks.md, against moto's S3 server on 127.0.0.1
//! (started here; `pip install 'moto[server]'`).
//!
//! Workload, in one run:
//! 1. `local_primary_s3_backup`: sync a mixed corpus of `--docs` documents and back it up
//!    (the first, full backup); change 1% of the documents, sync, back up again. Reported:
//!    files, bytes and requests of both, and the ratio (target <= 5%).
//! 2. The same corpus synced into an S3 primary. Then `--searches` hybrid searches
//!    (sequential, after a warm-up) served straight from S3 (`s3_only`) and from the local
//!    replica (`s3_primary_local_cache`) of the same data: p50/p99 of each, and the ratio.
//!
//! Run: cargo bench --locked --workspace --bench storage -- [--docs 2000] [--searches 200]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lancesync_engine::{Engine, EngineConfig, NoProgress, SearchRequest, Storage, SyncOptions};
use lancesync_ingest::HashingEmbedder;
use lancesync_sources::{LocalFsConfig, LocalFsSource};
use lancesync_storage::{AfterWrite, BackupRecord, S3Target, StorageMode};
use lancesync_testkit::S3Server;
use lancesync_testkit::corpus;
use lancesync_testkit::s3::{ACCESS_KEY, SECRET_KEY};

const USER: &str = "bench";
const QUERIES: [&str; 8] = [
    "harbor report",
    "quarterly garden",
    "alpha beta gamma",
    "meeting notes budget",
    "river bridge",
    "summary of results",
    "winter schedule",
    "customer feedback",
];

fn main() {
    let mut docs = 2_000usize;
    let mut searches = 200usize;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--docs" => docs = value().parse().expect("--docs N"),
            "--searches" => searches = value().parse().expect("--searches N"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench(docs, searches));
}

fn target(endpoint: &str, bucket: &str) -> S3Target {
    S3Target::new(bucket, "lancedb")
        .with_endpoint(endpoint)
        .with_option("aws_region", "us-east-1")
        .with_option("aws_access_key_id", ACCESS_KEY)
        .with_option("aws_secret_access_key", SECRET_KEY)
}

fn engine(root: &Path, mode: StorageMode, target: S3Target) -> Engine {
    let storage = Storage::new(mode, root.join("db"), root.join("state"), Some(target))
        .with_cache_refresh_interval(Duration::from_secs(3600));
    Engine::new(
        EngineConfig::new(root.join("db")).with_storage(Arc::new(storage)),
        Arc::new(HashingEmbedder::new(384)),
    )
    .expect("engine")
}

async fn sync(engine: &Engine, folder: &Path) -> lancesync_engine::SyncReport {
    let source = LocalFsSource::new(
        "docs",
        LocalFsConfig::new([folder.to_str().expect("utf-8 path")]),
        &BTreeMap::new(),
    )
    .expect("source");
    engine
        .sync(USER, &source, SyncOptions::default(), &NoProgress)
        .await
        .expect("sync")
}

fn record(report: &lancesync_engine::SyncReport) -> BackupRecord {
    match &report.storage {
        Some(AfterWrite::BackedUp { record }) => record.clone(),
        other => panic!("expected a backup, got {other:?}"),
    }
}

async fn latencies(engine: &Engine, searches: usize) -> (f64, f64) {
    for q in QUERIES {
        engine
            .search(USER, &SearchRequest::new(q))
            .await
            .expect("warm-up search");
    }
    let mut ms = Vec::with_capacity(searches);
    for i in 0..searches {
        let started = Instant::now();
        let hits = engine
            .search(USER, &SearchRequest::new(QUERIES[i % QUERIES.len()]))
            .await
            .expect("search");
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(!hits.is_empty());
    }
    ms.sort_by(f64::total_cmp);
    (percentile(&ms, 0.50), percentile(&ms, 0.99))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn bench(docs: usize, searches: usize) {
    let s3 = S3Server::start();
    s3.create_bucket("backups").await;
    s3.create_bucket("primary").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let folder = dir.path().join("docs");
    let stats = corpus::write_mixed(&folder, docs).expect("corpus");
    println!(
        "corpus: {docs} mixed documents, {:.1} MB",
        stats.bytes as f64 / 1e6
    );

    // 1. Incremental backup.
    let device = engine(
        &dir.path().join("device"),
        StorageMode::LocalPrimaryS3Backup,
        target(&s3.endpoint(), "backups"),
    );
    let started = Instant::now();
    let full = record(&sync(&device, &folder).await);
    println!(
        "cold sync + first backup: {:.1} s; backup {} files, {} bytes, {} requests",
        started.elapsed().as_secs_f64(),
        full.files,
        full.bytes,
        full.requests
    );
    let changed = corpus::mutate_mixed(&folder, docs, 0.01, 1).expect("mutate");
    let report = sync(&device, &folder).await;
    let incremental = record(&report);
    println!(
        "changed {} documents ({} updated): backup {} files, {} bytes, {} requests",
        changed.files, report.updated, incremental.files, incremental.bytes, incremental.requests
    );
    println!(
        "incremental / full: bytes {:.2}%, requests {:.2}%, files {:.2}%",
        100.0 * incremental.bytes as f64 / full.bytes as f64,
        100.0 * incremental.requests as f64 / full.requests as f64,
        100.0 * incremental.files as f64 / full.files as f64
    );

    // 2. Search latency: straight from S3 vs from the local replica of the same data.
    let writer = engine(
        &dir.path().join("writer"),
        StorageMode::S3Only,
        target(&s3.endpoint(), "primary"),
    );
    sync(&writer, &folder).await;
    let chunks = writer.status(USER).await.expect("status").chunks;
    let from_s3 = engine(
        &dir.path().join("reader-s3"),
        StorageMode::S3Only,
        target(&s3.endpoint(), "primary"),
    );
    let (s3_p50, s3_p99) = latencies(&from_s3, searches).await;
    let cached = engine(
        &dir.path().join("reader-cache"),
        StorageMode::S3PrimaryLocalCache,
        target(&s3.endpoint(), "primary"),
    );
    let fetch = Instant::now();
    cached
        .storage()
        .refresh_replica(USER)
        .await
        .expect("replica");
    println!("replica fetched in {:.2} s", fetch.elapsed().as_secs_f64());
    let (cache_p50, cache_p99) = latencies(&cached, searches).await;
    println!("search over {chunks} chunks, {searches} hybrid searches each:");
    println!("  straight from S3: p50 {s3_p50:.2} ms, p99 {s3_p99:.2} ms");
    println!("  local cache:      p50 {cache_p50:.2} ms, p99 {cache_p99:.2} ms");
    println!(
        "  S3 / cache: p50 {:.1}x, p99 {:.1}x",
        s3_p50 / cache_p50,
        s3_p99 / cache_p99
    );
}
