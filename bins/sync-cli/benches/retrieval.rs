//! The retrieval-quality benchmark of docs/benchmarks.md: how well `sync-cli search` finds the
//! passage that answers a question asked in other words, with the built-in hashing embedder
//! with the local model, and with the static model distilled from it.
//!
//! Workload: `benches/retrieval/set.json`, 42 passages (paragraphs of this repository's docs
//! and sample documents, each written as its own file) and 35 questions written by hand to ask
//! for a passage without its words, each with the passages that answer it. For each embedder:
//! one `sync-cli sync` of the passages into a fresh database, then one `sync-cli search
//! --limit 10 --json` per question and mode (vector, hybrid; full text once, it needs no
//! embedder). The tables are small, so every search is exact (no ANN index): these figures
//! are the embedders' own.
//!
//! Metrics over the questions: recall@10 (share of the relevant passages in the top 10),
//! nDCG@10 (binary relevance) and MRR@10.
//!
//! Run: cargo bench --locked --workspace --bench retrieval
//! Needs the model scripts/env.sh's `lancesync_model_setup` installs.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn model_folder() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").expect("HOME"))
        .join(".local/share/lancesync/models/all-MiniLM-L6-v2")
}

fn sync_cli(work: &Path, provider: &str, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_sync-cli"))
        .args(args)
        .arg("--json")
        .current_dir(work)
        .env_clear()
        .env("HOME", work)
        .env("EMBEDDING_PROVIDER", provider)
        .env("EMBEDDING_MODEL_PATH", model_folder())
        .output()
        .expect("sync-cli runs");
    assert!(
        out.status.success(),
        "sync-cli {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Passage ids of the hits, best first, each once.
fn ranked(hits: &Value) -> Vec<usize> {
    let mut ids = Vec::new();
    for hit in hits.as_array().expect("hits") {
        let uri = hit["source_uri"].as_str().unwrap_or("");
        let id = Path::new(uri)
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.strip_prefix('p'))
            .and_then(|s| s.parse::<usize>().ok());
        if let Some(id) = id
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    ids.truncate(10);
    ids
}

#[derive(Default)]
struct Scores {
    recall: f64,
    ndcg: f64,
    mrr: f64,
    questions: usize,
}

impl Scores {
    fn add(&mut self, ranking: &[usize], relevant: &[usize]) {
        let found = ranking.iter().filter(|id| relevant.contains(id)).count();
        self.recall += found as f64 / relevant.len() as f64;
        let dcg: f64 = ranking
            .iter()
            .enumerate()
            .filter(|(_, id)| relevant.contains(id))
            .map(|(rank, _)| 1.0 / (rank as f64 + 2.0).log2())
            .sum();
        let ideal: f64 = (0..relevant.len().min(10))
            .map(|rank| 1.0 / (rank as f64 + 2.0).log2())
            .sum();
        self.ndcg += dcg / ideal;
        self.mrr += ranking
            .iter()
            .position(|id| relevant.contains(id))
            .map_or(0.0, |rank| 1.0 / (rank as f64 + 1.0));
        self.questions += 1;
    }

    fn row(&self, name: &str) -> String {
        let n = self.questions as f64;
        format!(
            "| {name} | {:.3} | {:.3} | {:.3} |",
            self.recall / n,
            self.ndcg / n,
            self.mrr / n
        )
    }
}

fn main() {
    let set: Value =
        serde_json::from_str(include_str!("retrieval/set.json")).expect("the set is JSON");
    let work = tempfile::tempdir().unwrap();
    let passages = work.path().join("passages");
    std::fs::create_dir_all(&passages).unwrap();
    for p in set["passages"].as_array().unwrap() {
        let id = p["id"].as_u64().unwrap();
        std::fs::write(
            passages.join(format!("p{id:02}.txt")),
            p["text"].as_str().unwrap(),
        )
        .unwrap();
    }
    let questions: Vec<(String, Vec<usize>)> = set["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["question"].as_str().unwrap().to_string(),
                q["relevant"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_u64().unwrap() as usize)
                    .collect(),
            )
        })
        .collect();
    println!(
        "workload: {} passages, {} questions",
        set["passages"].as_array().unwrap().len(),
        questions.len()
    );
    println!("\n| embedder, mode | recall@10 | nDCG@10 | MRR@10 |");
    println!("| --- | --- | --- | --- |");
    for (i, provider) in ["builtin", "local", "static"].into_iter().enumerate() {
        let db = work.path().join(provider);
        std::fs::create_dir_all(&db).unwrap();
        sync_cli(&db, provider, &["sync", passages.to_str().unwrap()]);
        let modes: &[&str] = if i == 0 {
            &["full-text", "vector", "hybrid"]
        } else {
            &["vector", "hybrid"]
        };
        for mode in modes {
            let mut scores = Scores::default();
            for (question, relevant) in &questions {
                let hits = sync_cli(
                    &db,
                    provider,
                    &["search", question, "--limit", "10", "--mode", mode],
                );
                scores.add(&ranked(&hits), relevant);
            }
            let name = if *mode == "full-text" {
                "BM25 full text (no embedder)".to_string()
            } else {
                format!("{provider}, {mode}")
            };
            println!("{}", scores.row(&name));
        }
    }
}
