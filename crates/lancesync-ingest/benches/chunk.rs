//! The chunking benchmark of docs/benchmarks.md: seconds per MB of text for text of every
//! shape, through lancesync's chunker (windows of at most `window_bytes`) and, as the baseline
//! in the same run, text-splitter given the whole text at once (what lancesync did before).
//!
//! Workload: generated English-like sentences (8-20 words of 2-10 letters), shaped as
//! - `paragraphs`: a blank line every 5 sentences (ordinary prose),
//! - `one paragraph`: no line break at all (the 51 KB DOCX holding 20 MB of text),
//! - `one line of words`: words and spaces, no sentence end or line break,
//! - `no spaces`: one unbroken run of letters,
//!
//! each at `--sizes` MB (default 0.25,0.5,1,2,4), default chunk settings (1,000 characters,
//! 200 overlap), through the plain-text splitter (txt, html, pdf) and the Markdown splitter
//! (md, and docx, whose text is Markdown). The baseline runs only where it takes under `--baseline-limit` seconds
//! (default 60) at the previous size, doubling, so the quadratic cases stop early.
//!
//! Run: cargo bench --locked -p lancesync-ingest --bench chunk -- [--sizes 0.25,0.5,1,2,4]

use std::time::{Duration, Instant};

use lancesync_ingest::{ChunkConfig, Chunker, DocType, Extracted};
use text_splitter::{ChunkConfig as SplitterConfig, MarkdownSplitter, TextSplitter};

/// A small deterministic generator (xorshift), so every run chunks the same text.
struct Words(u64);

impl Words {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn word(&mut self) -> String {
        let len = 2 + (self.next() % 9) as usize;
        (0..len)
            .map(|_| (b'a' + (self.next() % 26) as u8) as char)
            .collect()
    }
    fn sentence(&mut self) -> String {
        let words = 8 + (self.next() % 13) as usize;
        let mut s: Vec<String> = (0..words).map(|_| self.word()).collect();
        s[0] = s[0][..1].to_uppercase() + &s[0][1..];
        s.join(" ") + "."
    }
}

fn text(shape: &str, bytes: usize) -> String {
    let mut words = Words(0x9e37_79b9_7f4a_7c15);
    let mut out = String::with_capacity(bytes + 256);
    let mut n = 0;
    while out.len() < bytes {
        match shape {
            "paragraphs" => {
                out.push_str(&words.sentence());
                n += 1;
                out.push_str(if n % 5 == 0 { "\n\n" } else { " " });
            }
            "one paragraph" => {
                out.push_str(&words.sentence());
                out.push(' ');
            }
            "one line of words" => {
                out.push_str(&words.word());
                out.push(' ');
            }
            _ => out.push_str(&words.word()),
        }
    }
    out.truncate(bytes);
    out
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let out = f();
    (out, started.elapsed())
}

fn main() {
    let mut sizes = vec![0.25, 0.5, 1.0, 2.0, 4.0];
    let mut baseline_limit = 60.0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sizes" => {
                sizes = args
                    .next()
                    .expect("sizes")
                    .split(',')
                    .map(|s| s.parse().expect("a number of MB"))
                    .collect()
            }
            "--baseline-limit" => {
                baseline_limit = args.next().and_then(|v| v.parse().ok()).expect("seconds")
            }
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    let config = ChunkConfig::default();
    let chunker = Chunker::new(config).unwrap();
    let splitter_config = || {
        SplitterConfig::new(config.size)
            .with_overlap(config.overlap)
            .unwrap()
    };
    let whole_text = TextSplitter::new(splitter_config());
    let whole_markdown = MarkdownSplitter::new(splitter_config());
    println!(
        "chunk size {}, overlap {}, window {} bytes",
        config.size,
        config.overlap,
        lancesync_ingest::chunk_window_bytes(config)
    );
    println!(
        "| splitter | shape | MB | chunks | lancesync s | s per MB | whole text at once (before) s | before ÷ now |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (splitter, doc_type) in [("text", DocType::Txt), ("markdown", DocType::Md)] {
        for shape in [
            "paragraphs",
            "one paragraph",
            "one line of words",
            "no spaces",
        ] {
            let mut baseline_ok = true;
            for &mb in &sizes {
                let doc = Extracted {
                    text: text(shape, (mb * 1_048_576.0) as usize),
                    ..Default::default()
                };
                let (chunks, ours) = time(|| chunker.chunk(&doc, doc_type));
                let before = if baseline_ok {
                    let (_, t) = time(|| match doc_type {
                        DocType::Md => whole_markdown.chunk_indices(&doc.text).count(),
                        _ => whole_text.chunk_indices(&doc.text).count(),
                    });
                    baseline_ok = t.as_secs_f64() * 4.0 < baseline_limit;
                    Some(t)
                } else {
                    None
                };
                println!(
                    "| {splitter} | {shape} | {mb} | {} | {:.3} | {:.3} | {} | {} |",
                    chunks.len(),
                    ours.as_secs_f64(),
                    ours.as_secs_f64() / mb,
                    before.map_or("not run (quadratic)".into(), |t| format!(
                        "{:.3}",
                        t.as_secs_f64()
                    )),
                    before.map_or("—".into(), |t| format!(
                        "{:.1}×",
                        t.as_secs_f64() / ours.as_secs_f64()
                    )),
                );
            }
        }
    }
}
