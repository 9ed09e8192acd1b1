//! The remote-source benchmark of docs/benchmarks.md: requests sent and time taken by sync runs
//! of an S3 bucket (moto's server, behind a counting proxy), a Dropbox folder, a Google Drive
//! folder tree and a Notion workspace (the testkit's stand-ins), into real LanceDB tables with
//! the built-in embedder.
//!
//! Workload, for each source, documents of about 1 KB: `--objects` for S3 and Dropbox (md and
//! txt), `--drive-files` for Google Drive (in 50 folders; every fifth a Google Doc, exported),
//! `--notion-pages` for Notion (90% rows of two databases, 10% a page tree three levels deep;
//! every page has a heading, paragraphs and a toggle with a nested paragraph):
//! 1. cold sync;
//! 2. no-change sync: requests by kind (S3 must send list pages only, no GET; Dropbox one
//!    `list_folder/continue`; Drive one `changes.list`; Notion its listing only);
//! 3. 1% of the documents rewritten, then a sync.
//!
//! The stand-ins are not rate-limited here, so times show lancesync's own cost; the requests
//! are what a real service would be sent (at Notion's 3 requests/s, divide by 3 for seconds).
//!
//! Run: cargo bench --locked --workspace --bench remote -- [--objects 10000]
//! [--drive-files 5000] [--notion-pages 2000] [--only s3,dropbox,drive,notion]
//! (`--profile dev` builds it with the test build's artifacts when a release build is too long.)

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use lancesync_engine::{Engine, EngineConfig, NoProgress, SyncOptions, SyncReport};
use lancesync_ingest::HashingEmbedder;
use lancesync_sources::{
    DocumentSource, DropboxConfig, DropboxSource, GoogleDriveConfig, GoogleDriveSource,
    NotionConfig, NotionSource, S3Source, S3SourceConfig, SecretRef,
};
use lancesync_testkit::{
    DriveServer, DropboxServer, HttpProxy, NotionBlock, NotionServer, S3Server,
};
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
    config.http.requests_per_second = Some(10_000.0);
    let source = DropboxSource::new("bench-dropbox", config, &BTreeMap::new()).expect("source");
    let dir = tempfile::tempdir().expect("tmp");
    let engine = engine(dir.path());
    let counts = |server: &DropboxServer| by_route(server.total_requests(), server.counts());
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

/// Requests by route, as the stand-ins count them.
fn by_route(total: usize, counts: BTreeMap<String, usize>) -> String {
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    format!("{total} requests: {}", parts.join(", "))
}

async fn drive(files: usize, rows: &mut Vec<Row>) {
    let server = DriveServer::start().await;
    server.set_page_size(1000);
    let root = server.create_folder("root", "Bench");
    let folders: Vec<String> = (0..50)
        .map(|f| server.create_folder(&root, &format!("folder-{f:02}")))
        .collect();
    let ids: Vec<String> = (0..files)
        .map(|i| {
            let folder = &folders[i % folders.len()];
            if i.is_multiple_of(5) {
                server.put_doc(folder, &format!("doc-{i:06}"), &body(i, 0))
            } else {
                server.put_file(
                    folder,
                    name(i).rsplit('/').next().expect("name"),
                    body(i, 0).as_bytes(),
                )
            }
        })
        .collect();
    let env = BTreeMap::from([("KEY".to_string(), server.service_account_key())]);
    let mut config = GoogleDriveConfig::service_account([root.clone()], SecretRef::env("KEY"));
    config.api_url = Some(server.url.clone());
    config.token_url = Some(server.token_url.clone());
    config.http.requests_per_second = Some(10_000.0);
    let source = GoogleDriveSource::new("bench-drive", config, &env).expect("source");
    let dir = tempfile::tempdir().expect("tmp");
    let engine = engine(dir.path());
    for (step, change) in [
        ("cold sync", false),
        ("no-change sync", false),
        ("1% changed", true),
    ] {
        if change {
            // One in a hundred, a mix of Google Docs and binary files.
            for i in (0..files)
                .step_by(100)
                .map(|i| (i + (i / 100) % 5).min(files - 1))
            {
                server.update(&ids[i], body(i, 1).as_bytes());
            }
        }
        server.clear_requests();
        let (seconds, report) = timed(&engine, &source).await;
        rows.push(Row {
            source: "Google Drive (stand-in)",
            step,
            seconds,
            report,
            requests: by_route(server.total_requests(), server.counts()),
        });
    }
}

fn notion_blocks(i: usize, round: usize) -> Vec<NotionBlock> {
    let text = body(i, round);
    let mut lines = text.lines();
    vec![
        NotionBlock::heading(2, &format!("Page {i}")),
        NotionBlock::paragraph(lines.next().unwrap_or_default()),
        NotionBlock::paragraph(&lines.by_ref().take(4).collect::<Vec<_>>().join(" ")),
        NotionBlock::toggle(
            "Details",
            vec![NotionBlock::paragraph(&lines.collect::<Vec<_>>().join(" "))],
        ),
    ]
}

async fn notion(pages: usize, rows: &mut Vec<Row>) {
    let server = NotionServer::start("ntn_bench").await;
    let tree_pages = pages / 10;
    let databases = [
        server.add_database(None, "Bench A"),
        server.add_database(None, "Bench B"),
    ];
    let mut ids = Vec::new();
    for i in 0..pages - tree_pages {
        ids.push(server.add_row(
            &databases[i % 2],
            &format!("Row {i}"),
            vec![],
            &notion_blocks(i, 0),
        ));
    }
    // A tree: a root, ten sections under it, the rest spread under the sections.
    let root = server.add_page("Bench handbook", &notion_blocks(pages, 0));
    let sections: Vec<String> = (0..10.min(tree_pages.saturating_sub(1)))
        .map(|s| {
            server.add_child_page(
                &root,
                &format!("Section {s}"),
                &notion_blocks(pages + 1 + s, 0),
            )
        })
        .collect();
    ids.push(root.clone());
    ids.extend(sections.iter().cloned());
    for i in (pages - tree_pages + 1 + sections.len())..pages {
        let parent = &sections[i % sections.len()];
        ids.push(server.add_child_page(parent, &format!("Leaf {i}"), &notion_blocks(i, 0)));
    }
    let mut config = NotionConfig::with_key(SecretRef::inline("ntn_bench"));
    config.api_url = Some(server.url.clone());
    config.database_ids = databases.to_vec();
    config.page_ids = vec![root];
    config.http.requests_per_second = Some(10_000.0);
    let source = NotionSource::new("bench-notion", config, &BTreeMap::new()).expect("source");
    let dir = tempfile::tempdir().expect("tmp");
    let engine = engine(dir.path());
    for (step, change) in [
        ("cold sync", false),
        ("no-change sync", false),
        ("1% changed", true),
    ] {
        if change {
            // Spread over rows and the tree's leaves.
            for i in (0..ids.len()).step_by(100) {
                server.set_blocks(&ids[i], &notion_blocks(i, 1));
            }
        }
        server.clear_requests();
        let (seconds, report) = timed(&engine, &source).await;
        rows.push(Row {
            source: "Notion (stand-in)",
            step,
            seconds,
            report,
            requests: by_route(server.total_requests(), server.counts()),
        });
    }
}

fn main() {
    let mut objects = 10_000;
    let mut drive_files = 5_000;
    let mut notion_pages = 2_000;
    let mut only: Vec<String> = ["s3", "dropbox", "drive", "notion"]
        .map(String::from)
        .to_vec();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--objects" => {
                objects = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--objects N")
            }
            "--drive-files" => {
                drive_files = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--drive-files N")
            }
            "--notion-pages" => {
                notion_pages = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--notion-pages N")
            }
            "--only" => {
                only = args
                    .next()
                    .expect("--only s3,dropbox,drive,notion")
                    .split(',')
                    .map(String::from)
                    .collect()
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
    let wanted = |s: &str| only.iter().any(|o| o == s);
    runtime.block_on(async {
        if wanted("s3") {
            s3(objects, &mut rows).await;
        }
        if wanted("dropbox") {
            dropbox(objects, &mut rows).await;
        }
        if wanted("drive") {
            drive(drive_files, &mut rows).await;
        }
        if wanted("notion") {
            notion(notion_pages, &mut rows).await;
        }
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
