//! The embedding benchmark of docs/benchmarks.md: throughput of the local model
//! (all-MiniLM-L6-v2 on the CPU) and of the static model distilled from it, against the
//! built-in hashing embedder, on the chunks of the
//! sync benchmark's mixed corpus, and the latency of embedding one search query.
//!
//! Workload: the first `--docs` documents of the mixed corpus (default 1,000), extracted and
//! chunked with the default chunker; the chunks embedded in calls of 64 (the engine's batch),
//! then `--queries` single short queries one after another. The static model's row is followed
//! by its tokenizer alone on the same chunks: a static model's vector is a table lookup and a
//! mean of the tokens' rows, so the tokenizer's rate is the most it can reach. Both of its
//! tokenizers are timed: the specialised WordPiece it uses and `tokenizers`, the baseline.
//!
//! Run: cargo bench --locked --workspace --bench embed -- [--docs 1000] [--queries 200]
//! [--embedders builtin,static,local] (default: all three)
//! Needs the model scripts/env.sh's `lancesync_model_setup` installs (or EMBEDDING_MODEL_PATH).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lancesync_ingest::{
    ChunkConfig, Chunker, DocType, Embedder, HashingEmbedder, LocalEmbedder, StaticEmbedder,
    extract,
};
use lancesync_testkit::corpus;

fn model_folder() -> PathBuf {
    std::env::var_os("EMBEDDING_MODEL_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".local/share/lancesync/models/all-MiniLM-L6-v2")
        })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let mut docs = 1_000;
    let mut queries = 200;
    let mut chosen = vec!["builtin".to_string(), "static".into(), "local".into()];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse().ok()).expect("a number");
        match arg.as_str() {
            "--docs" => docs = value(),
            "--queries" => queries = value(),
            "--embedders" => {
                chosen = args
                    .next()
                    .expect("a list of embedders")
                    .split(',')
                    .map(str::to_string)
                    .collect()
            }
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    let chunker = Chunker::new(ChunkConfig::default()).unwrap();
    let mut texts = Vec::new();
    for i in 0..docs {
        let path = corpus::mixed_path(i);
        let doc_type = DocType::from_path(&path).unwrap();
        let doc = extract(&corpus::mixed_document(i, 0), doc_type).unwrap();
        texts.extend(chunker.chunk(&doc, doc_type).into_iter().map(|c| c.text));
    }
    let characters: usize = texts.iter().map(String::len).sum();
    println!(
        "workload: {docs} documents, {} chunks, {:.0} characters per chunk on average, {} cores",
        texts.len(),
        characters as f64 / texts.len() as f64,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let wanted = |name: &str| chosen.iter().any(|c| c == name);
    let mut embedders: Vec<(&str, Box<dyn Embedder>)> = Vec::new();
    let mut tokenizer = None;
    if wanted("builtin") {
        embedders.push(("builtin hashing", Box::new(HashingEmbedder::default())));
    }
    if wanted("static") {
        let started = Instant::now();
        let distilled = StaticEmbedder::load_or_distill(&model_folder()).expect("the static model");
        println!(
            "static model loaded (or distilled) in {:.2} s: {}",
            started.elapsed().as_secs_f64(),
            distilled.identity()
        );
        tokenizer = Some(distilled.clone());
        embedders.push(("static model (distilled)", Box::new(distilled)));
    }
    if wanted("local") {
        let started = Instant::now();
        let local = LocalEmbedder::load(&model_folder()).expect("the model loads");
        println!(
            "local model loaded in {:.2} s: {}",
            started.elapsed().as_secs_f64(),
            local.identity()
        );
        embedders.push(("local model", Box::new(local)));
    }

    println!(
        "\n| embedder | chunks/s | seconds for {} chunks | query p50 ms | query p99 ms |",
        texts.len()
    );
    println!("| --- | --- | --- | --- | --- |");
    for (name, embedder) in &embedders {
        let started = Instant::now();
        for batch in texts.chunks(64) {
            embedder.embed(batch).await.unwrap();
        }
        let took = started.elapsed().as_secs_f64();
        let mut latencies = Vec::with_capacity(queries);
        for q in 0..queries {
            let query = [format!("how do I keep document {q} in sync with its index")];
            let started = Instant::now();
            embedder.embed(&query).await.unwrap();
            latencies.push(started.elapsed());
        }
        latencies.sort();
        println!(
            "| {name} | {:.0} | {took:.2} | {:.2} | {:.2} |",
            texts.len() as f64 / took,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }
    if let Some(model) = tokenizer {
        // The same chunks in the same batches through the static model's tokenizers alone:
        // the specialised WordPiece it uses, and `tokenizers` (the baseline it replaced).
        let mut tokens = 0;
        type Tokenize = fn(&StaticEmbedder, &[String]) -> Vec<Vec<u32>>;
        let tokenizers: [(&str, Tokenize); 2] = [
            ("specialised WordPiece", |m, t| m.token_ids(t).unwrap()),
            ("`tokenizers`", |m, t| m.general_ids(t).unwrap()),
        ];
        for (name, tokenize) in tokenizers {
            let started = Instant::now();
            tokens = 0;
            for batch in texts.chunks(64) {
                tokens += tokenize(&model, batch).iter().map(Vec::len).sum::<usize>();
            }
            let took = started.elapsed().as_secs_f64();
            println!(
                "| static model's tokenizer alone: {name} | {:.0} | {took:.2} | | |",
                texts.len() as f64 / took
            );
        }
        println!(
            "\n{tokens} tokens, {:.0} per chunk",
            tokens as f64 / texts.len() as f64
        );
    }
}
