//! Hostile PDFs end as text or as a failure with the right reason, within the time bound, and
//! cannot take the process with them: PDFs are parsed in worker processes (copies of this test
//! binary), bounded in memory and time, as in `sync-cli` and `sync-server`. Needs poppler's
//! `pdftotext` and util-linux's `prlimit` (scripts/env.sh installs poppler-utils).
//! Run: cargo test --workspace --test pdf_limits
//!
//! No libtest harness: `main` must call `enable_pdf_isolation` before anything else, since a
//! worker is this binary started again.

use std::time::{Duration, Instant};

use lancesync_ingest::{DocType, Error, ExtractOptions, Extracted, extract_with};
use lancesync_testkit::{
    encrypted_pdf, fan_out_form_pdf, flate_bomb_pdf, owner_password_pdf, pdf, recursive_form_pdf,
};

/// With this set, the binary parses the PDF at that path in process and reports what became
/// of it: the control that shows a bomb really is one.
const IN_PROCESS_VAR: &str = "PDF_LIMITS_PARSE_IN_PROCESS";

fn main() {
    if let Some(path) = std::env::var_os(IN_PROCESS_VAR) {
        let bytes = std::fs::read(path).expect("the PDF to parse");
        let outcome = extract_with(&bytes, DocType::Pdf, &ExtractOptions::default());
        println!("survived (read: {})", outcome.is_ok());
        return;
    }
    lancesync_ingest::enable_pdf_isolation();
    assert!(lancesync_ingest::pdf_isolation_enabled());

    let tests: [(&str, fn()); 5] = [
        (
            "a_form_that_draws_itself_is_read_not_a_crash",
            a_form_that_draws_itself_is_read_not_a_crash,
        ),
        (
            "a_decompression_bomb_stays_within_the_memory_limit",
            a_decompression_bomb_stays_within_the_memory_limit,
        ),
        (
            "a_billion_draws_time_out_at_the_deadline",
            a_billion_draws_time_out_at_the_deadline,
        ),
        (
            "encryption_with_and_without_a_user_password",
            encryption_with_and_without_a_user_password,
        ),
        (
            "workers_are_reused_and_a_crash_costs_one_document",
            workers_are_reused_and_a_crash_costs_one_document,
        ),
    ];
    let mut failed = 0;
    for (name, test) in tests {
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(test);
        let verdict = if outcome.is_ok() { "ok" } else { "FAILED" };
        println!(
            "test {name} ... {verdict} ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        failed += usize::from(outcome.is_err());
    }
    println!(
        "\ntest result: {}. {} passed; {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" },
        tests.len() - failed
    );
    if failed > 0 {
        std::process::exit(101);
    }
}

fn options(timeout_secs: u64, memory_mib: u64) -> ExtractOptions {
    ExtractOptions {
        timeout: Duration::from_secs(timeout_secs),
        memory_bytes: memory_mib << 20,
        ..ExtractOptions::default()
    }
}

fn read(bytes: &[u8], options: &ExtractOptions) -> (Result<Extracted, Error>, Duration) {
    let started = Instant::now();
    let outcome = extract_with(bytes, DocType::Pdf, options);
    (outcome, started.elapsed())
}

fn extracted_by(doc: &Extracted) -> &str {
    doc.metadata
        .get("extracted_by")
        .map(String::as_str)
        .unwrap_or("")
}

/// Whether parsing `bytes` in process (in a child of this binary, without workers) lets the
/// process live.
fn survives_in_process(bytes: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.pdf");
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env(IN_PROCESS_VAR, &path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("survived")
}

fn a_form_that_draws_itself_is_read_not_a_crash() {
    let bomb = recursive_form_pdf("Harbour charts list every reef");
    assert!(
        !survives_in_process(&bomb),
        "the control: pdf-extract in process recurses until the process dies"
    );
    let (outcome, _) = read(&bomb, &options(30, 1024));
    let doc = outcome.expect("poppler reads the page once the parser's worker died");
    assert!(doc.text.contains("Harbour charts"), "{:?}", doc.text);
    assert_eq!(extracted_by(&doc), "pdftotext (repaired)");
}

fn a_decompression_bomb_stays_within_the_memory_limit() {
    // 1 GiB of content in about 1 MB; the parser inflates whole streams into memory.
    let bomb = flate_bomb_pdf("Tidal tables for the estuary", 1 << 30);
    assert!(bomb.len() < 4 << 20, "{} bytes", bomb.len());
    let (outcome, took) = read(&bomb, &options(20, 512));
    assert!(took < Duration::from_secs(25), "took {took:?}");
    match outcome {
        // Poppler reads the content as a stream, within the limit.
        Ok(doc) => {
            assert!(doc.text.contains("Tidal tables"), "{:?}", doc.text);
            assert_eq!(extracted_by(&doc), "pdftotext (repaired)");
        }
        Err(e) => {
            let reason = e.to_string();
            assert!(
                reason.contains("512 MiB of memory") || reason.contains("timed out"),
                "{reason}"
            );
        }
    }
}

fn a_billion_draws_time_out_at_the_deadline() {
    let bomb = fan_out_form_pdf("Lock keepers open the gates", 10, 10);
    assert!(bomb.len() < 8192, "{} bytes", bomb.len());
    let (outcome, took) = read(&bomb, &options(2, 1024));
    let reason = outcome.unwrap_err().to_string();
    assert!(
        reason.contains("timed out") && reason.contains("over 2 s"),
        "{reason}"
    );
    // The deadline holds: the worker is killed, not waited for.
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "took {took:?}"
    );
}

fn encryption_with_and_without_a_user_password() {
    let opened = extract_with(
        &owner_password_pdf(&["Permissions only, no password to open"]),
        DocType::Pdf,
        &ExtractOptions::default(),
    )
    .expect("a file with only an owner password opens");
    assert!(
        opened.text.contains("Permissions only"),
        "{:?}",
        opened.text
    );

    let locked = extract_with(
        &encrypted_pdf(&["Behind a password"]),
        DocType::Pdf,
        &ExtractOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(locked, Error::Encrypted), "{locked}");
}

/// This process's live children.
fn children() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
            let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
            let mut fields = rest.split_whitespace();
            let state = fields.next().unwrap_or("");
            fields.next() == Some(me.as_str()) && state != "Z"
        })
        .count()
}

fn workers_are_reused_and_a_crash_costs_one_document() {
    let bomb = recursive_form_pdf("Crash here");
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let bomb = bomb.clone();
            std::thread::spawn(move || {
                for i in 0..20 {
                    let text = format!("Thread {t} document {i} about canal boats");
                    let doc = extract_with(&pdf(&[&text]), DocType::Pdf, &options(30, 1024))
                        .expect("a good PDF is read");
                    assert!(doc.text.contains(&text), "{:?}", doc.text);
                    assert_eq!(extracted_by(&doc), "pdf-extract");
                    if i == 10 {
                        extract_with(&bomb, DocType::Pdf, &options(30, 1024))
                            .expect("the bomb's page is read by poppler");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Two callers at a time need two workers; the crashed ones were replaced, not kept.
    let live = children();
    assert!((1..=2).contains(&live), "{live} worker processes");
}
