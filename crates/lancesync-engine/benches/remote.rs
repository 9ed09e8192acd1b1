//! The remote-source benchmark of docs/benchmarks.md: requests sent and time taken by sync runs
//! of an S3 bucket (moto's server, behind a counting proxy) and of a Dropbox folder (the
//! testkit's stand-in), into real LanceDB tables with the built-in embedder.
//!
//! Workload, for each source, `--objects` documents of about 1 KB (md and txt):
//! 1. cold sync;
//! 2. no-change sync: requests by kind (S3 must send list pages only, no GET; Dropbox one
//!    `list_folder/continue`);
//! 3. 1% of the documents rewritten, then a sync.
//!
//! Run: cargo bench --locked --workspace --bench remote -- [--objects 10000]
//! (`--profile dev` builds it with the test build's artifacts when a release build is too long.)

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use lancesync_engine::{Engine, EngineConfig, NoProgress, SyncOptions, SyncReport};
use lancesync_ingest::HashingEmbedder;
use lancesync_sources::{
    DocumentSource, DropboxConfig, DropboxSource, S3Source, S3SourceConfig, SecretRef,
};
use lancesync_testkit::{DropboxServer, HttpProxy, S3Server};
use object_store::ObjectStoreExt;

fn body(i: usize, round: usize) -> String {
    (0..8)
        .map(|p| {
            format!(
                "Document {i}, round {round}, paragraph {p}: topic{} and detail {}.\n",
                i % 97,
                i * 13 + p
            )
        })
        .collect()
}

fn name(i: usize) -> String {
    let ext = if i.is_multiple_of(2) { "md" } else { "txt" };
    format!("folder-{:02}/doc-{i:06}.{ext}", i % 50)
}

struct Row {
    source: &'static str,
    step: &'static str,
    seconds: f64,
    report: SyncReport,
    requests: String,
}

async fn timed(engine: &Engine, source: &dyn DocumentSource) -> (f64, SyncReport) {
    let started = Instant::now();
    let report = engine
        .sync("bench", source, SyncOptions::default(), &NoProgress)
        .await
        .expect("sync");
    (started.elapsed().as_secs_f64(), report)
}

fn engine(dir: &std::path::Path) -> Engine {
    Engine::new(EngineConfig::new(dir), Arc::new(HashingEmbedder::default())).expect("engine")
}

async fn s3(objects: usize, rows: &mut Vec<Row>) {
    let server = S3Server::start();
    server.create_bucket("bench").await;
    let proxy = HttpProxy::start(&server.endpoint()).await;
    let store = server.client("bench");
    let put = |keys: Vec<usize>, round: usize| {
        let store = store.clone();
        async move {
            futures::stream::iter(keys)
                .map(|i| {
                    let store = store.clone();
                    async move {
                        store
                            .put(
                                &format!("docs/{}", name(i)).into(),
                                body(i, round).into_bytes().into(),
                            )
                            .await
                            .expect("put")
                    }
                })
                .buffer_unordered(32)
                .collect::<Vec<_>>()
                .await;
        }
    };
    let t = Instant::now();
    put((0..objects).collect(), 0).await;
    eprintln!(
        "s3: {objects} objects uploaded in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let mut config = S3SourceConfig::new("bench", "docs");
    config.endpoint = Some(proxy.url.clone());
    config.region = Some("us-east-1".into());
    config.access_key_id = Some(SecretRef::inline(lancesync_testkit::s3::ACCESS_KEY));
    config.secret_access_key = Some(SecretRef::inline(lancesync_testkit::s3::SECRET_KEY));
    let source = S3Source::new("bench-s3", config, &BTreeMap::new()).expect("source");
    let dir = tempfile::tempdir().expect("tmp");
    let engine = engine(dir.path());
    let counts = |proxy: &HttpProxy| {
        let r = proxy.requests();
        let lists = r.iter().filter(|q| q.is_s3_list()).count();
        let gets = r.iter().filter(|q| q.is_s3_get()).count();
        format!(
            "{} requests: {lists} list pages, {gets} GETs, {} other",
            r.len(),
            r.len() - lists - gets
        )
    };
    for (step, change) in [
        ("cold sync", false),
        ("no-change sync", false),
        ("1% changed", true),
    ] {
        if change {
            put((0..objects).step_by(100).collect(), 1).await;
        }
        proxy.clear();
        let (seconds, report) = timed(&engine, &source).await;
        rows.push(Row {
            source: "S3 (moto)",
            step,
            seconds,
            report,
            requests: counts(&proxy),
        });
    }
}

async fn dropbox(objects: usize, rows: &mut Vec<Row>) {
    let server = DropboxServer::start("sl.bench").await;
    server.set_page_size(2000);
    for i in 0..objects {
        server.put(&format!("/Bench/{}", name(i)), body(i, 0).as_bytes());
    }
    let mut config = DropboxConfig::with_token("/Bench", SecretRef::inline("sl.bench"));
    config.api_url = Some(server.url.clone());
    config.content_url = Some(server.url.clone());
    config.http.requests_per_second = 10_000.0;
    let source = DropboxSource::new("bench-dropbox", config, &BTreeMap::new()).expect("source");
    let dir = tempfile::tempdir().expect("tmp");
    let engine = engine(dir.path());
    let counts = |server: &DropboxServer| {
        let c = server.counts();
        let parts: Vec<String> = c.iter().map(|(k, v)| format!("{v} {k}")).collect();
        format!("{} requests: {}", server.total_requests(), parts.join(", "))
    };
    for (step, change) in [
        ("cold sync", false),
        ("no-change sync", false),
        ("1% changed", true),
    ] {
        if change {
            for i in (0..objects).step_by(100) {
                server.put(&format!("/Bench/{}", name(i)), body(i, 1).as_bytes());
            }
        }
        server.clear_requests();
        let (seconds, report) = timed(&engine, &source).await;
        rows.push(Row {
            source: "Dropbox (stand-in)",
            step,
            seconds,
            report,
            requests: counts(&server),
        });
    }
}

fn main() {
    let mut objects = 10_000;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--objects" => {
                objects = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--objects N")
            }
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    runtime.block_on(async {
        s3(objects, &mut rows).await;
        dropbox(objects, &mut rows).await;
    });
    println!("| source | step | seconds | vs cold | created | updated | unchanged | requests |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut cold = 0.0;
    for r in &rows {
        if r.step == "cold sync" {
            cold = r.seconds;
        }
        println!(
            "| {} | {} | {:.2} | {:.3} | {} | {} | {} | {} |",
            r.source,
            r.step,
            r.seconds,
            r.seconds / cold,
            r.report.created,
            r.report.updated,
            r.report.unchanged,
            r.requests
        );
    }
}
