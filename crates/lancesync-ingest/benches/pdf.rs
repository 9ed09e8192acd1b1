//! The PDF extraction benchmark of docs/benchmarks.md: success and time, before and after
//! repair and isolation, on two corpora.
//!
//! - "before" is what lancesync did before it repaired or isolated anything: pdf-extract in
//!   the calling process, panics caught. Each file of the hostile corpus is tried in a child
//!   process of its own, since some of them kill the process that parses them or never end
//!   (stopped after `--stall` seconds).
//! - "after" is `extract_with` as `sync-cli` runs it: pdf-extract in worker processes under
//!   the default 1 GiB memory limit and an `--timeout` (default 10 s) budget, poppler's
//!   `pdftotext` for what it cannot read.
//!
//! Corpora: the test corpus (four kinds of xref damage, an owner-password and a user-password
//! file, an image-only file, garbage, a form that draws itself, a billion-draw form tree and a
//! 1 GiB decompression bomb), and the PDFs of the sync benchmark's mixed corpus (`--docs`
//! documents, 3 in 20 of them PDFs), read one after another on one thread.
//!
//! Run: cargo bench --locked --workspace --bench pdf -- [--docs 10000] [--timeout 10] [--stall 60]
//! Needs pdftotext (poppler-utils) and prlimit (util-linux).

use std::time::{Duration, Instant};

use lancesync_ingest::{DocType, ExtractOptions, extract_with};
use lancesync_testkit::{
    corpus, damaged_pdfs, encrypted_pdf, fan_out_form_pdf, flate_bomb_pdf, owner_password_pdf, pdf,
    recursive_form_pdf,
};

/// Set in a child: parse the file at this path the "before" way and print the outcome.
const BEFORE_VAR: &str = "PDF_BENCH_BEFORE";

fn main() {
    if let Some(path) = std::env::var_os(BEFORE_VAR) {
        let bytes = std::fs::read(path).expect("the PDF to parse");
        let outcome = before(&bytes).0;
        println!("{outcome}, peak {} MB", peak_rss_mb());
        return;
    }
    lancesync_ingest::enable_pdf_isolation();

    let mut docs = 10_000;
    let mut timeout = 10;
    let mut stall = 60;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse().ok()).expect("a number");
        match arg.as_str() {
            "--docs" => docs = value(),
            "--timeout" => timeout = value() as u64,
            "--stall" => stall = value() as u64,
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    let options = ExtractOptions {
        timeout: Duration::from_secs(timeout),
        ..ExtractOptions::default()
    };
    hostile_corpus(&options, Duration::from_secs(stall));
    benchmark_corpus(&options, docs);
}

/// pdf-extract in process, panics caught: (outcome, pages of text or None).
fn before(bytes: &[u8]) -> (String, bool) {
    let parsed = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem_by_pages(bytes));
    match parsed {
        Ok(Ok(pages)) if pages.iter().any(|p| !p.trim().is_empty()) => {
            ("text (pdf-extract)".into(), true)
        }
        Ok(Ok(_)) => ("no text".into(), false),
        Ok(Err(e)) => (format!("failed: {}", first_words(&e.to_string())), false),
        Err(_) => ("failed: parser panicked".into(), false),
    }
}

/// This process's peak resident memory, from /proc.
fn peak_rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn first_words(reason: &str) -> String {
    let reason = reason
        .strip_prefix("cannot extract pdf: ")
        .unwrap_or(reason);
    let words: Vec<&str> = reason.split_whitespace().take(8).collect();
    let mut out = words.join(" ");
    if reason.split_whitespace().count() > 8 {
        out.push_str(" …");
    }
    out.replace('|', "/")
}

/// "before" in a child process, so a crash or a stall is one row, not the benchmark's end.
fn before_in_child(bytes: &[u8], stall: Duration) -> (String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.pdf");
    std::fs::write(&path, bytes).unwrap();
    let started = Instant::now();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(BEFORE_VAR, &path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let took = started.elapsed();
            let mut out = String::new();
            std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
            return if status.success() {
                (out.trim().to_string(), took)
            } else {
                (format!("**process killed** ({status})"), took)
            };
        }
        if started.elapsed() > stall {
            let _ = child.kill();
            let _ = child.wait();
            return (
                format!("**still parsing after {} s** (stopped)", stall.as_secs()),
                started.elapsed(),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn after(bytes: &[u8], options: &ExtractOptions) -> (String, bool, Duration) {
    let started = Instant::now();
    let outcome = extract_with(bytes, DocType::Pdf, options);
    let took = started.elapsed();
    match outcome {
        Ok(doc) => (
            format!(
                "text ({})",
                doc.metadata
                    .get("extracted_by")
                    .cloned()
                    .unwrap_or_default()
            ),
            true,
            took,
        ),
        Err(e) => (
            format!("failed: {}", first_words(&e.to_string())),
            false,
            took,
        ),
    }
}

fn hostile_corpus(options: &ExtractOptions, stall: Duration) {
    let pages = [
        "The lighthouse keeper logs every passing ship.",
        "A second page about tides.",
    ];
    let mut files: Vec<(String, Vec<u8>)> = damaged_pdfs(&pages)
        .into_iter()
        .map(|(name, bytes)| (name.to_string(), bytes))
        .collect();
    files.extend([
        (
            "owner password only".to_string(),
            owner_password_pdf(&pages),
        ),
        ("user password".into(), encrypted_pdf(&pages)),
        ("image-only (no text layer)".into(), pdf(&["", ""])),
        (
            "garbage after the header".into(),
            b"%PDF-1.4\n%garbage only\n".to_vec(),
        ),
        (
            "form that draws itself".into(),
            recursive_form_pdf(pages[0]),
        ),
        ("10^9 form draws".into(), fan_out_form_pdf(pages[0], 10, 10)),
        (
            "1 GiB decompression bomb".into(),
            flate_bomb_pdf(pages[0], 1 << 30),
        ),
    ]);
    println!("## Test corpus ({} files)\n", files.len());
    println!("| file | bytes | before | s | after | s |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let (mut read_before, mut read_after) = (0, 0);
    let (mut total_before, mut total_after) = (Duration::ZERO, Duration::ZERO);
    for (name, bytes) in &files {
        let (was, took_before) = before_in_child(bytes, stall);
        let (now, ok, took_after) = after(bytes, options);
        read_before += usize::from(was.starts_with("text"));
        read_after += usize::from(ok);
        total_before += took_before;
        total_after += took_after;
        println!(
            "| {name} | {} | {was} | {:.2} | {now} | {:.2} |",
            bytes.len(),
            took_before.as_secs_f64(),
            took_after.as_secs_f64()
        );
    }
    println!(
        "\nread: before {read_before}/{n}, after {read_after}/{n}; time for the corpus: before {:.1} s (stalls stopped at {} s), after {:.1} s\n",
        total_before.as_secs_f64(),
        stall.as_secs(),
        total_after.as_secs_f64(),
        n = files.len()
    );
}

fn benchmark_corpus(options: &ExtractOptions, docs: usize) {
    let pdfs: Vec<Vec<u8>> = (0..docs)
        .filter(|&i| {
            corpus::mixed_path(i)
                .extension()
                .is_some_and(|e| e == "pdf")
        })
        .map(|i| corpus::mixed_document(i, 0))
        .collect();
    let bytes: usize = pdfs.iter().map(Vec::len).sum();
    println!(
        "## Benchmark corpus: the {} PDFs of the {docs}-document mixed corpus ({:.1} MB), one thread\n",
        pdfs.len(),
        bytes as f64 / 1e6
    );
    let started = Instant::now();
    let read_before = pdfs.iter().filter(|p| before(p).1).count();
    let before_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let read_after = pdfs.iter().filter(|p| after(p, options).1).count();
    let after_s = started.elapsed().as_secs_f64();
    let n = pdfs.len();
    println!("| path | read | seconds | PDFs/s |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| before: pdf-extract in process | {read_before}/{n} | {before_s:.2} | {:.0} |",
        n as f64 / before_s
    );
    println!(
        "| after: pdf-extract in a worker, poppler repair | {read_after}/{n} | {after_s:.2} | {:.0} |",
        n as f64 / after_s
    );
    println!("\nafter/before time: {:.2}x", after_s / before_s);
}
