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
//!      [--mode hybrid|vector|full_text] [--reuse] [--search-memory MB]
//!
//! `--search-memory MB` sets SEARCH_MEMORY_MB (default: the server's default, searches answered
//! from memory once the index of the table's current version is built; 0: every search reads
//! LanceDB). Each measured phase on an unchanged table starts once that index is built.
//!
//! `--reuse` searches the index a previous run left in `--dir` (idle phase only), so the
//! server can be profiled or its settings compared without building the index again: first
//! a server reading LanceDB for every search (SEARCH_MEMORY_MB=0), then one answering from
//! memory, with the ratio of their latencies, and how many of the in-memory hits of 200
//! questions LanceDB's search returns too (agreement, per mode).
//!
//! `LANCESYNC_BENCH_SERVER=/path/to/sync-server` runs that binary instead of this build's
//! (a baseline built from another commit, for an A/B in one session).
//!
//! `--reindex-to static|local|builtin` measures a blue/green re-index instead of the sync
//! phase: after the idle phase the server restarts configured with that embedder (the
//! tables still hold the old one's vectors), the clients search idle again, then through a
//! `POST /api/v1/reindex` job until it finishes, then after it. Reported per phase: searches
//! sent, answered with hits, failed or empty, and latency percentiles.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lancesync_testkit::corpus;
use serde_json::{Value, json};

mod common;
use common::{TOKEN, add_and_scan, percentile};

/// The server on `dir`'s index, chunking at 250 characters (overlap 50), with
/// SEARCH_MEMORY_MB set to `memory_mb` when given.
fn start_with(dir: &std::path::Path, embedder: &str, memory_mb: Option<&str>) -> common::Server {
    let mut settings = vec![("CHUNK_CHARACTERS", "250"), ("CHUNK_OVERLAP", "50")];
    if let Some(mb) = memory_mb {
        settings.push(("SEARCH_MEMORY_MB", mb));
    }
    common::start(dir, embedder, &settings)
}

/// Waits until the server answers user `bench`'s searches from memory (its metrics count
/// chunks held in memory), searching to start the index's build; gives up after two minutes.
async fn warm(base: &str) -> bool {
    let client = reqwest::Client::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let _ = client
            .post(format!("{base}/api/v1/search"))
            .bearer_auth(TOKEN)
            .json(&json!({ "user_id": "bench", "query": "warm", "limit": 1 }))
            .send()
            .await;
        let metrics = client
            .get(format!("{base}/metrics"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let held = metrics
            .lines()
            .find_map(|l| l.strip_prefix("lancesync_search_memory_chunks "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if held > 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// The questions the clients ask, by number.
fn question(n: usize) -> String {
    format!(
        "{} {} {}",
        WORDS[n % WORDS.len()],
        WORDS[(n / 3) % WORDS.len()],
        WORDS[(n / 5) % WORDS.len()]
    )
}

/// The hits of `query` on the server at `base`, as (document, chunk) pairs.
async fn hits(client: &reqwest::Client, base: &str, query: &str, mode: &str) -> Vec<(String, u64)> {
    let v: Value = client
        .post(format!("{base}/api/v1/search"))
        .bearer_auth(TOKEN)
        .json(&json!({ "user_id": "bench", "query": query, "limit": 10, "mode": mode }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["results"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .map(|h| {
                    (
                        h["doc_id"].as_str().unwrap_or_default().to_string(),
                        h["chunk_index"].as_u64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Of the hits the server at `memory` gives for 200 questions (two words from the corpus
/// and one more, so that most are not in the clients' list), the share that the server at
/// `lance` gives too, per mode.
async fn agreement(memory: &str, lance: &str) -> String {
    let client = reqwest::Client::new();
    let mut parts = Vec::new();
    for mode in ["vector", "full_text", "hybrid"] {
        let (mut same, mut total) = (0usize, 0usize);
        for n in 0..200 {
            let q = format!("{} {}", question(n * 11), WORDS[(n * 7 + 3) % WORDS.len()]);
            let from_lance = hits(&client, lance, &q, mode).await;
            let from_memory = hits(&client, memory, &q, mode).await;
            same += from_memory
                .iter()
                .filter(|h| from_lance.contains(h))
                .count();
            total += from_lance.len().max(from_memory.len());
        }
        parts.push(format!("{mode} {:.3}", same as f64 / total.max(1) as f64));
    }
    format!(
        "agreement (in-memory hits LanceDB also returns, 200 questions): {}",
        parts.join(", ")
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
    reindex_to: Option<String>,
    /// SEARCH_MEMORY_MB, when given.
    memory_mb: Option<String>,
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
        reindex_to: None,
        memory_mb: None,
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
            "--search-memory" => args.memory_mb = Some(value()),
            "--reindex-to" => args.reindex_to = Some(value()),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

struct Phase {
    latencies_ms: Vec<f64>,
    errors: usize,
    /// Answered, with no hit (every query's words are in the corpus).
    empty: usize,
    seconds: f64,
}

async fn load(base: &str, clients: usize, seconds: u64, mode: &str) -> Phase {
    load_until(
        base,
        clients,
        mode,
        tokio::time::sleep(Duration::from_secs(seconds)),
    )
    .await
}

/// `clients` searching as fast as they are answered until `until` completes.
async fn load_until(
    base: &str,
    clients: usize,
    mode: &str,
    until: impl std::future::Future<Output = ()>,
) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let base = base.to_string();
        let stop = Arc::clone(&stop);
        let mode = mode.to_string();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut latencies, mut errors, mut empty, mut n) = (Vec::new(), 0usize, 0usize, c);
            while !stop.load(Ordering::Relaxed) {
                n += 7;
                let query = question(n);
                let t = Instant::now();
                let res = client
                    .post(format!("{base}/api/v1/search"))
                    .bearer_auth(TOKEN)
                    .json(&json!({ "user_id": "bench", "query": query, "limit": 10, "mode": mode }))
                    .send()
                    .await;
                let hits = match res {
                    Ok(r) if r.status().is_success() => r
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| v["count"].as_u64()),
                    _ => None,
                };
                match hits {
                    Some(n) => {
                        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                        if n == 0 {
                            empty += 1;
                        }
                    }
                    None => errors += 1,
                }
            }
            (latencies, errors, empty)
        }));
    }
    until.await;
    stop.store(true, Ordering::Relaxed);
    let mut phase = Phase {
        latencies_ms: Vec::new(),
        errors: 0,
        empty: 0,
        seconds: 0.0,
    };
    for t in tasks {
        let (l, e, m) = t.await.unwrap();
        phase.latencies_ms.extend(l);
        phase.errors += e;
        phase.empty += m;
    }
    phase.seconds = started.elapsed().as_secs_f64();
    phase.latencies_ms.sort_by(f64::total_cmp);
    phase
}

fn describe(name: &str, p: &Phase) -> String {
    let l = &p.latencies_ms;
    format!(
        "{name}: {} searches in {:.1} s ({:.0}/s), p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms, errors {}, empty {}",
        l.len(),
        p.seconds,
        l.len() as f64 / p.seconds,
        percentile(l, 0.50),
        percentile(l, 0.95),
        percentile(l, 0.99),
        l.last().copied().unwrap_or(f64::NAN),
        p.errors,
        p.empty
    )
}

/// The server restarted with `embedder`: searches idle on the old tables, through a re-index
/// job, and after its switch.
async fn reindex_phases(args: &Args, embedder: &str, idle: &Phase) -> Vec<String> {
    let server = start_with(&args.dir, embedder, args.memory_mb.as_deref());
    let client = reqwest::Client::new();
    let mut lines = Vec::new();
    let before = load(&server.base, args.clients, args.seconds, &args.mode).await;
    lines.push(describe(
        &format!("restarted with {embedder}, idle (old tables, old embedder's queries)"),
        &before,
    ));
    let job = common::call(
        &client,
        &server.base,
        "/api/v1/reindex?user_id=bench&wait=0",
        json!({}),
    )
    .await;
    let job_url = format!(
        "{}/api/v1/jobs/{}",
        server.base,
        job["id"].as_str().unwrap()
    );
    let started = Instant::now();
    let finished = Arc::new(std::sync::Mutex::new(Value::Null));
    let watch = {
        let (client, finished) = (client.clone(), finished.clone());
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let res = client.get(&job_url).bearer_auth(TOKEN).send().await;
                let Ok(res) = res else { continue };
                let job: Value = res.json().await.unwrap_or_default();
                if job["state"] == "succeeded" || job["state"] == "failed" {
                    *finished.lock().unwrap() = job;
                    return;
                }
            }
        }
    };
    let during = load_until(&server.base, args.clients, &args.mode, watch).await;
    let job = finished.lock().unwrap().clone();
    assert_eq!(job["state"], "succeeded", "{job}");
    let result = &job["result"];
    lines.push(format!(
        "re-index job: {} documents, {} chunks, {} -> {} in {:.1} s",
        result["documents"],
        result["chunks"],
        result["embedder_before"]["name"].as_str().unwrap_or("?"),
        result["embedder"]["name"].as_str().unwrap_or("?"),
        started.elapsed().as_secs_f64()
    ));
    lines.push(describe("during the re-index", &during));
    let sent = during.latencies_ms.len() + during.errors;
    lines.push(format!(
        "during the re-index: {} of {sent} searches answered with hits ({:.2}%); p99 {:.2}x the restarted idle p99",
        during.latencies_ms.len() - during.empty,
        100.0 * (during.latencies_ms.len() - during.empty) as f64 / sent.max(1) as f64,
        percentile(&during.latencies_ms, 0.99) / percentile(&before.latencies_ms, 0.99)
    ));
    let after = load(&server.base, args.clients, args.seconds, &args.mode).await;
    lines.push(describe("after the switch, idle", &after));
    lines.push(format!(
        "p50 after / first idle: {:.2}x",
        percentile(&after.latencies_ms, 0.5) / percentile(&idle.latencies_ms, 0.5)
    ));
    lines
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = parse_args();
    if args.reuse {
        let lance = start_with(&args.dir, &args.embedder, Some("0"));
        let from_lance = load(&lance.base, args.clients, args.seconds, &args.mode).await;
        let memory = start_with(&args.dir, &args.embedder, args.memory_mb.as_deref());
        let warmed = warm(&memory.base).await;
        let from_memory = load(&memory.base, args.clients, args.seconds, &args.mode).await;
        println!(
            "reused index in {}; {} clients, {} search, limit 10",
            args.dir.display(),
            args.clients,
            args.mode
        );
        println!(
            "{}",
            describe("idle, every search reads LanceDB", &from_lance)
        );
        println!(
            "{}",
            describe(
                if warmed {
                    "idle, answered from memory"
                } else {
                    "idle, in-memory index never built"
                },
                &from_memory
            )
        );
        println!(
            "p50 from memory / LanceDB: {:.3}x; p99 {:.3}x",
            percentile(&from_memory.latencies_ms, 0.5) / percentile(&from_lance.latencies_ms, 0.5),
            percentile(&from_memory.latencies_ms, 0.99)
                / percentile(&from_lance.latencies_ms, 0.99)
        );
        println!("{}", agreement(&memory.base, &lance.base).await);
        return;
    }
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir).unwrap();
    let indexed = args.dir.join("indexed");
    let live = args.dir.join("live");
    corpus::write_mixed(&indexed, args.docs).unwrap();
    corpus::write_mixed(&live, args.docs / 2).unwrap();

    let server = start_with(&args.dir, &args.embedder, args.memory_mb.as_deref());
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
    let from_memory = args.memory_mb.as_deref() != Some("0") && warm(&server.base).await;
    let idle = load(&server.base, args.clients, args.seconds, &args.mode).await;
    lines.push(describe(
        if from_memory {
            "idle (answered from memory)"
        } else {
            "idle"
        },
        &idle,
    ));
    if let Some(embedder) = &args.reindex_to {
        drop(server);
        lines.extend(reindex_phases(&args, embedder, &idle).await);
        for line in &lines {
            println!("{line}");
        }
        std::fs::write(args.dir.join("results.txt"), lines.join("\n") + "\n").unwrap();
        return;
    }

    // A sync of another source of the same user runs while the clients search.
    let sync_started = Instant::now();
    let job = add_and_scan(&client, &server.base, "live", &live, false).await;
    let busy = load(&server.base, args.clients, args.seconds, &args.mode).await;
    let job_state = || async {
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
        j["state"].as_str().unwrap_or_default().to_string()
    };
    let still_running = matches!(job_state().await.as_str(), "running" | "queued");
    // The sync's own time (searched for the phase, then alone), to compare builds by.
    while matches!(job_state().await.as_str(), "running" | "queued") {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sync_seconds = sync_started.elapsed().as_secs_f64();
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
    lines.push(format!(
        "the second sync ({} docs) took {sync_seconds:.1} s, searched for the first {:.0} s",
        args.docs / 2,
        busy.seconds
    ));
    for line in &lines {
        println!("{line}");
    }
    std::fs::write(args.dir.join("results.txt"), lines.join("\n") + "\n").unwrap();
}
