//! The search-latency benchmark of docs/benchmarks.md: the real `sync-server` binary on
//! 127.0.0.1, 8 concurrent clients searching one user's index of about 100,000 chunks, first
//! with the server idle, then while a sync of another source runs.
//!
//! Workload: a mixed corpus of `--docs` documents (default 10,000) chunked at 250 characters
//! (overlap 50), indexed with the built-in embedder; queries are two or three words from the
//! corpus vocabulary, hybrid mode, limit 10; each phase lasts `--seconds` (default 20).
//!
//! Run: cargo bench --locked --workspace --bench search -- [--docs 10000] [--clients 8]
//!      [--seconds 20] [--dir /tmp/lancesync-search-bench] [--embedder builtin|static|local]
//!      [--mode hybrid|vector|full_text] [--reuse]
//!
//! `--reuse` searches the index a previous run left in `--dir` (idle phase only), so the
//! server can be profiled or its settings compared without building the index again.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lancesync_testkit::corpus;
use serde_json::{Value, json};

mod common;
use common::{TOKEN, add_and_scan, percentile};

/// The server on `dir`'s index, chunking at 250 characters (overlap 50).
fn start(dir: &std::path::Path, embedder: &str) -> common::Server {
    common::start(
        dir,
        embedder,
        &[("CHUNK_CHARACTERS", "250"), ("CHUNK_OVERLAP", "50")],
    )
}

const WORDS: &[&str] = &[
    "garden", "tomato", "vector", "database", "search", "storage", "backup", "memory", "table",
    "schema", "policy", "network", "retry", "coffee", "museum", "physics", "guitar", "harvest",
];

struct Args {
    docs: usize,
    clients: usize,
    seconds: u64,
    dir: PathBuf,
    /// EMBEDDING_PROVIDER: `builtin` (default), `static` or `local` (the installed model).
    embedder: String,
    mode: String,
    reuse: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        docs: 10_000,
        clients: 8,
        seconds: 20,
        dir: std::env::temp_dir().join("lancesync-search-bench"),
        embedder: "builtin".into(),
        mode: "hybrid".into(),
        reuse: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--docs" => args.docs = value().parse().expect("--docs N"),
            "--clients" => args.clients = value().parse().expect("--clients N"),
            "--seconds" => args.seconds = value().parse().expect("--seconds N"),
            "--dir" => args.dir = PathBuf::from(value()),
            "--embedder" => args.embedder = value(),
            "--mode" => args.mode = value(),
            "--reuse" => args.reuse = true,
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

struct Phase {
    latencies_ms: Vec<f64>,
    errors: usize,
    seconds: f64,
}

async fn load(base: &str, clients: usize, seconds: u64, mode: &str) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let base = base.to_string();
        let stop = Arc::clone(&stop);
        let mode = mode.to_string();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut latencies, mut errors, mut n) = (Vec::new(), 0usize, c);
            while !stop.load(Ordering::Relaxed) {
                n += 7;
                let query = format!(
                    "{} {} {}",
                    WORDS[n % WORDS.len()],
                    WORDS[(n / 3) % WORDS.len()],
                    WORDS[(n / 5) % WORDS.len()]
                );
                let t = Instant::now();
                let res = client
                    .post(format!("{base}/api/v1/search"))
                    .bearer_auth(TOKEN)
                    .json(&json!({ "user_id": "bench", "query": query, "limit": 10, "mode": mode }))
                    .send()
                    .await;
                let ok = match res {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut phase = Phase {
        latencies_ms: Vec::new(),
        errors: 0,
        seconds: 0.0,
    };
    for t in tasks {
        let (l, e) = t.await.unwrap();
        phase.latencies_ms.extend(l);
        phase.errors += e;
    }
    phase.seconds = started.elapsed().as_secs_f64();
    phase.latencies_ms.sort_by(f64::total_cmp);
    phase
}

fn describe(name: &str, p: &Phase) -> String {
    let l = &p.latencies_ms;
    format!(
        "{name}: {} searches in {:.1} s ({:.0}/s), p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms, errors {}",
        l.len(),
        p.seconds,
        l.len() as f64 / p.seconds,
        percentile(l, 0.50),
        percentile(l, 0.95),
        percentile(l, 0.99),
        l.last().copied().unwrap_or(f64::NAN),
        p.errors
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = parse_args();
    if args.reuse {
        let server = start(&args.dir, &args.embedder);
        let idle = load(&server.base, args.clients, args.seconds, &args.mode).await;
        println!(
            "reused index in {}; {} clients, {} search, limit 10",
            args.dir.display(),
            args.clients,
            args.mode
        );
        println!("{}", describe("idle", &idle));
        return;
    }
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir).unwrap();
    let indexed = args.dir.join("indexed");
    let live = args.dir.join("live");
    corpus::write_mixed(&indexed, args.docs).unwrap();
    corpus::write_mixed(&live, args.docs / 2).unwrap();

    let server = start(&args.dir, &args.embedder);
    let client = reqwest::Client::new();
    let t = Instant::now();
    let job = add_and_scan(&client, &server.base, "indexed", &indexed, true).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let chunks = job["report"]["chunks_written"].as_u64().unwrap_or(0);
    let mut lines = vec![format!(
        "index: {} docs, {chunks} chunks, built in {:.0} s; {} clients, {} search, limit 10",
        args.docs,
        t.elapsed().as_secs_f64(),
        args.clients,
        args.mode
    )];
    let idle = load(&server.base, args.clients, args.seconds, &args.mode).await;
    lines.push(describe("idle", &idle));

    // A sync of another source of the same user runs while the clients search.
    let job = add_and_scan(&client, &server.base, "live", &live, false).await;
    let busy = load(&server.base, args.clients, args.seconds, &args.mode).await;
    let still_running = {
        let res = client
            .get(format!(
                "{}/api/v1/jobs/{}",
                server.base,
                job["id"].as_str().unwrap()
            ))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let j: Value = res.json().await.unwrap();
        j["state"] == "running" || j["state"] == "queued"
    };
    lines.push(describe("while a sync runs", &busy));
    lines.push(format!(
        "p50 while syncing / idle: {:.2}x; the sync was {} at the end of the phase",
        percentile(&busy.latencies_ms, 0.5) / percentile(&idle.latencies_ms, 0.5),
        if still_running {
            "still running"
        } else {
            "finished"
        }
    ));
    for line in &lines {
        println!("{line}");
    }
    std::fs::write(args.dir.join("results.txt"), lines.join("\n") + "\n").unwrap();
}
