//! The retrieval-quality benchmark of docs/benchmarks.md: how well the real `sync-server`'s
//! `POST /api/v1/search` ranks documents, per mode (full text, vector, hybrid) and embedder,
//! on public test sets and on lancesync's own paraphrase set, with each embedder's indexing
//! rate and the search latency beside the figures.
//!
//! Workload:
//! - the public sets in `--sets` (default `~/.cache/lancesync/retrieval-sets`, which
//!   `python3 scripts/retrieval-sets.py RAW_DIR DIR` builds from the public files): each a
//!   folder in BEIR's layout (corpus.jsonl, queries.jsonl, qrels/test.tsv). Every document
//!   becomes a Markdown file (`# title`, then the text) in one folder source;
//! - `own`: `benches/retrieval/set.json`, 42 passages (paragraphs of this repository's docs
//!   and sample documents) and 35 questions written by hand to ask for a passage without its
//!   words.
//!
//! For each set and embedder: a fresh server indexes the folder through the API (default
//! settings, so default chunking), then asks each test query once per mode with limit 10, one
//! request at a time. The ranking scored is the order of the documents of the 10 chunks
//! returned (a document once, where it first appears), as a user of the API sees it. Full text
//! does not depend on the embedder and is asked once per set.
//!
//! Metrics, averaged over the queries: nDCG@10 with the judgments' grades as gains (as
//! pytrec_eval and BEIR compute it), recall@10 (share of a query's relevant documents in its
//! top 10), and the search's p50 latency as the client saw it.
//!
//! Run: cargo bench --locked --profile dev --workspace --bench retrieval -- \
//!      [--sets DIR] [--only scifact,own] [--embedders builtin,static,local]
//!      [--weights W1,W2,..] [--split test|train]
//! The hybrid row uses the embedder's default weight; `--weights` adds a hybrid row per
//! weight (each search's `vector_weight`, on the same index). `--split train` scores a set's
//! training queries (SciFact's), on which the default weights were chosen:
//! `-- --only scifact --split train --weights 0.1,0.15,0.2`.
//! `local` (the transformer, 8 to 9 chunks/s on 2 cores) is not in the default list: SciFact
//! alone takes it half an hour to index.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value, json};

mod common;
use common::{add_and_scan, call, percentile};

struct Args {
    sets: PathBuf,
    only: Option<Vec<String>>,
    embedders: Vec<String>,
    weights: Vec<f64>,
    split: String,
}

fn parse_args() -> Args {
    let mut args = Args {
        sets: PathBuf::from(std::env::var_os("HOME").expect("HOME"))
            .join(".cache/lancesync/retrieval-sets"),
        only: None,
        embedders: vec!["builtin".into(), "static".into()],
        weights: Vec::new(),
        split: "test".into(),
    };
    let list = |s: String| s.split(',').map(str::to_string).collect::<Vec<_>>();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--sets" => args.sets = PathBuf::from(value()),
            "--only" => args.only = Some(list(value())),
            "--embedders" => args.embedders = list(value()),
            "--weights" => {
                args.weights = list(value())
                    .iter()
                    .map(|w| w.parse().unwrap_or_else(|_| panic!("--weights: {w}?")))
                    .collect()
            }
            "--split" => args.split = value(),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// A test set: documents (id, Markdown text), queries (id, text), and per query the graded
/// relevant documents.
struct TestSet {
    name: String,
    documents: Vec<(String, String)>,
    queries: Vec<(String, String)>,
    judgments: HashMap<String, HashMap<String, f64>>,
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// A set in BEIR's layout, scored on the queries judged in `qrels/{split}.tsv`.
fn beir_set(dir: &Path, split: &str) -> TestSet {
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let documents = jsonl(&dir.join("corpus.jsonl"))
        .iter()
        .map(|d| {
            let (title, body) = (text(d, "title"), text(d, "text"));
            let markdown = if title.is_empty() {
                format!("{body}\n")
            } else {
                format!("# {title}\n\n{body}\n")
            };
            (text(d, "_id"), markdown)
        })
        .collect();
    let mut judgments: HashMap<String, HashMap<String, f64>> = HashMap::new();
    let qrels_file = dir.join(format!("qrels/{split}.tsv"));
    let qrels = std::fs::read_to_string(&qrels_file)
        .unwrap_or_else(|e| panic!("{}: {e}", qrels_file.display()));
    for line in qrels.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let gain: f64 = f[2].trim().parse().expect("a grade");
        if gain > 0.0 {
            judgments
                .entry(f[0].into())
                .or_default()
                .insert(f[1].into(), gain);
        }
    }
    let queries = jsonl(&dir.join("queries.jsonl"))
        .iter()
        .map(|q| (text(q, "_id"), text(q, "text")))
        .filter(|(id, _)| judgments.contains_key(id))
        .collect();
    TestSet {
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        documents,
        queries,
        judgments,
    }
}

/// lancesync's own paraphrase set.
fn own_set() -> TestSet {
    let set: Value =
        serde_json::from_str(include_str!("retrieval/set.json")).expect("the set is JSON");
    let documents = set["passages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                format!("p{:02}", p["id"]),
                p["text"].as_str().unwrap().into(),
            )
        })
        .collect();
    let (mut queries, mut judgments) = (Vec::new(), HashMap::new());
    for (i, q) in set["questions"].as_array().unwrap().iter().enumerate() {
        queries.push((i.to_string(), q["question"].as_str().unwrap().into()));
        let relevant = q["relevant"].as_array().unwrap().iter();
        let grades = relevant.map(|r| (format!("p{r:02}"), 1.0)).collect();
        judgments.insert(i.to_string(), grades);
    }
    TestSet {
        name: "own".into(),
        documents,
        queries,
        judgments,
    }
}

#[derive(Default)]
struct Scores {
    ndcg: f64,
    recall: f64,
    latencies_ms: Vec<f64>,
}

impl Scores {
    fn add(&mut self, ranking: &[String], relevant: &HashMap<String, f64>) {
        let dcg: f64 = ranking
            .iter()
            .enumerate()
            .map(|(rank, id)| relevant.get(id).unwrap_or(&0.0) / (rank as f64 + 2.0).log2())
            .sum();
        let mut gains: Vec<f64> = relevant.values().copied().collect();
        gains.sort_by(|a, b| b.total_cmp(a));
        let ideal: f64 = gains
            .iter()
            .take(10)
            .enumerate()
            .map(|(rank, g)| g / (rank as f64 + 2.0).log2())
            .sum();
        self.ndcg += dcg / ideal;
        let found = ranking
            .iter()
            .filter(|id| relevant.contains_key(*id))
            .count();
        self.recall += found as f64 / relevant.len() as f64;
    }

    fn row(&mut self, set: &str, what: &str, queries: usize) -> String {
        self.latencies_ms.sort_by(f64::total_cmp);
        let n = queries as f64;
        format!(
            "| {set} | {what} | {:.3} | {:.3} | {:.1} |",
            self.ndcg / n,
            self.recall / n,
            percentile(&self.latencies_ms, 0.5)
        )
    }
}

/// Document ids of the hits, best first, each once (a file's name is its document's id).
fn ranked(hits: &Value) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for hit in hits["results"].as_array().expect("results") {
        let uri = hit["source_uri"].as_str().unwrap_or_default();
        let id = Path::new(uri).file_stem().unwrap().to_string_lossy();
        if !ids.iter().any(|seen| *seen == id) {
            ids.push(id.into_owned());
        }
    }
    ids
}

/// Every query of `set` once in `mode` (with `weight` as the search's `vector_weight`).
async fn evaluate(
    client: &reqwest::Client,
    base: &str,
    set: &TestSet,
    mode: &str,
    weight: Option<f64>,
) -> Scores {
    let mut scores = Scores::default();
    for (id, query) in &set.queries {
        let mut body = json!({ "user_id": "bench", "query": query, "mode": mode, "limit": 10 });
        if let Some(w) = weight {
            body["vector_weight"] = json!(w);
        }
        let started = Instant::now();
        let hits = call(client, base, "/api/v1/search", body).await;
        scores
            .latencies_ms
            .push(started.elapsed().as_secs_f64() * 1000.0);
        scores.add(&ranked(&hits), &set.judgments[id]);
    }
    scores
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = parse_args();
    let mut sets: Vec<TestSet> = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&args.sets)
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    let wanted = |name: &str| {
        args.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|n| n == name))
    };
    let has_split = |d: &PathBuf| d.join(format!("qrels/{}.tsv", args.split)).exists();
    for dir in names
        .iter()
        .filter(|d| d.join("corpus.jsonl").exists() && has_split(d))
    {
        if wanted(&dir.file_name().unwrap().to_string_lossy()) {
            sets.push(beir_set(dir, &args.split));
        }
    }
    if sets.is_empty() && args.only.is_none() {
        println!(
            "no public sets in {} (scripts/retrieval-sets.py builds them): own set only",
            args.sets.display()
        );
    }
    if wanted("own") && args.split == "test" {
        sets.push(own_set());
    }
    let work = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut index_lines = BTreeMap::new();
    let mut rows = Vec::new();
    for set in &sets {
        println!(
            "{}: {} documents, {} queries",
            set.name,
            set.documents.len(),
            set.queries.len()
        );
        let folder = work.path().join("sets").join(&set.name);
        std::fs::create_dir_all(&folder).unwrap();
        for (id, text) in &set.documents {
            std::fs::write(folder.join(format!("{id}.md")), text).unwrap();
        }
        for (i, embedder) in args.embedders.iter().enumerate() {
            let state = work.path().join(format!("{}-{embedder}", set.name));
            std::fs::create_dir_all(&state).unwrap();
            let server = common::start(&state, embedder, &[]);
            let started = Instant::now();
            let job = add_and_scan(&client, &server.base, &set.name, &folder, true).await;
            let seconds = started.elapsed().as_secs_f64();
            assert_eq!(job["state"], "succeeded", "{job}");
            let chunks = job["report"]["chunks_written"].as_u64().unwrap_or(0);
            index_lines.insert(
                (set.name.clone(), embedder.clone()),
                format!(
                    "| {} | {embedder} | {chunks} | {seconds:.1} | {:.0} |",
                    set.name,
                    chunks as f64 / seconds
                ),
            );
            let modes: &[&str] = if i == 0 {
                &["full_text", "vector", "hybrid"]
            } else {
                &["vector", "hybrid"]
            };
            let runs = modes
                .iter()
                .map(|m| (*m, None))
                .chain(args.weights.iter().map(|w| ("hybrid", Some(*w))));
            for (mode, weight) in runs {
                let mut scores = evaluate(&client, &server.base, set, mode, weight).await;
                let what = match (mode, weight) {
                    ("full_text", _) => "full text (BM25)".to_string(),
                    (m, Some(w)) => format!("{m}, {embedder}, w = {w}"),
                    (m, None) => format!("{m}, {embedder}"),
                };
                let row = scores.row(&set.name, &what, set.queries.len());
                println!("{row}");
                rows.push(row);
            }
        }
    }
    println!("\n| set | embedder | chunks | seconds to index | chunks/s |");
    println!("| --- | --- | --- | --- | --- |");
    for line in index_lines.values() {
        println!("{line}");
    }
    println!("\n| set | ranking | nDCG@10 | recall@10 | p50 ms |");
    println!("| --- | --- | --- | --- | --- |");
    for row in &rows {
        println!("{row}");
    }
}
