//! Recall@10 of the in-memory vector search against exact search, beside its latency, on a
//! chunks table lancesync wrote (for example the one the search benchmark leaves).
//!
//! Workload: every row of the table's `document_chunks` is read into an index as the server
//! builds it; the questions are 200 vectors each the normalised sum of two rows' vectors (a
//! question between two chunks, harder than a chunk's own vector), picked by a fixed
//! generator. Exact search scores every row's float vector by cosine. Latency is one
//! search at a time on one thread, without HTTP.
//!
//! Run: cargo bench --locked --profile dev --workspace --bench recall -- USER_DB_DIR
//!      [--queries 200]
//! where USER_DB_DIR holds the user's tables (e.g. /tmp/sbm/db/users/bench).

use std::time::Instant;

use arrow_array::{Array, FixedSizeListArray, Float32Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancesync_memindex::{Filter, MemIndexBuilder, RowData};

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    v.iter().map(|x| x / n).collect()
}

fn strings<'a>(b: &'a RecordBatch, name: &str) -> &'a StringArray {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref())
        .unwrap_or_else(|| panic!("{name} is text"))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let dir = args.next().expect("USER_DB_DIR");
    let mut queries = 200usize;
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--queries" => {
                queries = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--queries N")
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let db = lancedb::connect(&dir).execute().await.expect("database");
    let table = db
        .open_table("document_chunks")
        .execute()
        .await
        .expect("chunks table");
    let columns = [
        "doc_id",
        "source_id",
        "source_uri",
        "title",
        "doc_type",
        "chunk_index",
        "chunk_text",
        "vector",
    ];
    let batches: Vec<RecordBatch> = table
        .query()
        .select(Select::columns(&columns))
        .execute()
        .await
        .expect("query")
        .try_collect()
        .await
        .expect("rows");
    let mut vectors: Vec<Vec<f32>> = Vec::new();
    let dim = batches
        .iter()
        .find_map(|b| {
            b.column_by_name("vector")
                .and_then(|c| c.as_any().downcast_ref::<FixedSizeListArray>())
                .map(|l| l.value_length() as usize)
        })
        .expect("a vector column");
    let started = Instant::now();
    let mut builder = MemIndexBuilder::new(dim);
    for b in &batches {
        let list: &FixedSizeListArray = b
            .column_by_name("vector")
            .unwrap()
            .as_any()
            .downcast_ref()
            .unwrap();
        let values: &Float32Array = list.values().as_any().downcast_ref().unwrap();
        let index: &arrow_array::Int32Array = b
            .column_by_name("chunk_index")
            .unwrap()
            .as_any()
            .downcast_ref()
            .unwrap();
        let (doc, source, uri, title, kind, text) = (
            strings(b, "doc_id"),
            strings(b, "source_id"),
            strings(b, "source_uri"),
            strings(b, "title"),
            strings(b, "doc_type"),
            strings(b, "chunk_text"),
        );
        let start = list.offset() * dim;
        for i in 0..b.num_rows() {
            let v = &values.values()[start + i * dim..start + (i + 1) * dim];
            builder
                .push(RowData {
                    doc_id: doc.value(i),
                    source_id: source.value(i),
                    source_uri: uri.value(i),
                    title: title.value(i),
                    doc_type: kind.value(i),
                    chunk_index: index.value(i),
                    chunk_text: text.value(i),
                    vector: v,
                })
                .expect("row");
            vectors.push(unit(v));
        }
    }
    let index = builder.finish();
    let built = started.elapsed().as_secs_f64();
    let rows = vectors.len();
    // A fixed generator, so runs compare.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut pick = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % rows as u64) as usize
    };
    let (mut found, mut latencies) = (0usize, Vec::new());
    for _ in 0..queries {
        let (a, b) = (pick(), pick());
        let q = unit(
            &vectors[a]
                .iter()
                .zip(&vectors[b])
                .map(|(x, y)| x + y)
                .collect::<Vec<_>>(),
        );
        let mut exact: Vec<(f32, usize)> = vectors
            .iter()
            .enumerate()
            .map(|(r, v)| (v.iter().zip(&q).map(|(x, y)| x * y).sum(), r))
            .collect();
        exact.select_nth_unstable_by(10, |x, y| y.0.total_cmp(&x.0));
        // Rows tied with the tenth best count as found.
        let tenth = exact[..10]
            .iter()
            .map(|e| e.0)
            .fold(f32::INFINITY, f32::min);
        let t = Instant::now();
        let got = index.nearest(&q, 10, &Filter::default());
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        found += got
            .iter()
            .filter(|m| {
                let v = &vectors[m.row as usize];
                v.iter().zip(&q).map(|(x, y)| x * y).sum::<f32>() >= tenth - 1e-6
            })
            .count()
            .min(10);
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "{rows} chunks of {dim} dimensions; index built in {built:.1} s, {} MB, first pass on {} values per row",
        index.heap_bytes() / 1_000_000,
        index.components()
    );
    println!(
        "recall@10 against exact search: {:.3} ({queries} questions); one search on one thread: p50 {:.2} ms, p99 {:.2} ms",
        found as f64 / (queries * 10) as f64,
        latencies[latencies.len() / 2],
        latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)]
    );
}
