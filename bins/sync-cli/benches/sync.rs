//! The sync benchmark of docs/benchmarks.md: the real `sync-cli` binary on generated corpora,
//! measured as a user would meet it (whole process: start, open tables, list, read, write).
//!
//! Workload, in one run:
//! 1. cold sync of a mixed md/txt/html/pdf/docx corpus of `--docs` documents (built-in
//!    embedder): documents/s, MB/s, peak RSS;
//! 2. rescan after changing 1% of its documents, against the cold time (target <= 5%);
//! 3. a no-change rescan of a tree of `--tree` small text files against
//!    `find DIR -type f -printf '%s %T@\n'` over the same tree (median of `--repeat`; target
//!    within 2x);
//! 4. cold sync of a mixed corpus 10x larger: peak RSS against step 1 (target <= 1.5x).
//!
//! Steps 1 (with every embedder) and 2 are each preceded by `sync --dry-run`, timed against
//! the run it plans, whose counts it must predict exactly. After step 3, `check` (and
//! `check --deep`) of the tree is timed against its no-change rescan.
//!
//! Run: cargo bench --locked --workspace --bench sync -- [--docs 10000] [--tree 100000]
//!      [--repeat 5] [--dir /tmp/lancesync-bench] [--skip-large] [--embedders static,local]
//! (`--embedders`: step 1 again with those embedders; they need the model scripts/env.sh
//! installs.)
//! Needs GNU time at /usr/bin/time (Debian package `time`) for peak RSS.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use lancesync_testkit::corpus;
use serde_json::Value;

struct Args {
    docs: usize,
    tree: usize,
    repeat: usize,
    dir: PathBuf,
    skip_large: bool,
    /// Embedders also timed on step 1's corpus (`static`, `local`), against the built-in one.
    embedders: Vec<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        docs: 10_000,
        tree: 100_000,
        repeat: 5,
        dir: std::env::temp_dir().join("lancesync-bench"),
        skip_large: false,
        embedders: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--docs" => args.docs = value().parse().expect("--docs N"),
            "--tree" => args.tree = value().parse().expect("--tree N"),
            "--repeat" => args.repeat = value().parse().expect("--repeat N"),
            "--dir" => args.dir = PathBuf::from(value()),
            "--skip-large" => args.skip_large = true,
            "--embedders" => args.embedders = value().split(',').map(String::from).collect(),
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// One measured `sync-cli` process.
struct Measured {
    seconds: f64,
    peak_rss_mb: f64,
    report: Value,
}

/// The local model's folder, as scripts/env.sh installs it (for `--embedders`).
fn model_folder() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").expect("HOME"))
        .join(".local/share/lancesync/models/all-MiniLM-L6-v2")
}

/// Run `cmd` on `db`'s own database, state and home, with `embedder`, and nothing else from
/// this process's environment.
fn isolated(cmd: &mut Command, db: &Path, embedder: &str) {
    cmd.env_clear()
        .env("HOME", db)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LANCEDB_URI", db.join("db"))
        .env("SYNC_STATE_DIR", db.join("state"))
        .env("RUST_LOG", "warn")
        .env("EMBEDDING_PROVIDER", embedder)
        .env("EMBEDDING_MODEL_PATH", model_folder());
}

fn sync_cli(db: &Path, folder: &Path) -> Measured {
    sync_cli_with(db, folder, "builtin")
}

fn sync_cli_with(db: &Path, folder: &Path, embedder: &str) -> Measured {
    sync_cli_args(db, folder, embedder, &[])
}

/// `sync-cli sync FOLDER --json --allow-mass-delete EXTRA...` with `embedder`.
fn sync_cli_args(db: &Path, folder: &Path, embedder: &str, extra: &[&str]) -> Measured {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "%e %M", env!("CARGO_BIN_EXE_sync-cli"), "sync"])
        .arg(folder)
        .args(["--json", "--allow-mass-delete"])
        .args(extra);
    isolated(&mut cmd, db, embedder);
    let started = Instant::now();
    let out = cmd
        .output()
        .expect("/usr/bin/time runs (apt-get install time)");
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "sync-cli failed ({}): {stderr}",
        out.status
    );
    let last = stderr.lines().last().unwrap_or_default();
    let kib: f64 = last
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no GNU time output in {stderr:?}"));
    let reports: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    Measured {
        seconds,
        peak_rss_mb: kib / 1024.0,
        report: reports[0].clone(),
    }
}

/// `sync-cli check FOLDER --json EXTRA...`: wall seconds and the report.
fn check_cli(db: &Path, folder: &Path, extra: &[&str]) -> (f64, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sync-cli"));
    cmd.arg("check").arg(folder).arg("--json").args(extra);
    isolated(&mut cmd, db, "builtin");
    let started = Instant::now();
    let out = cmd.output().expect("sync-cli runs");
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "check found problems or failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    (
        seconds,
        serde_json::from_slice(&out.stdout).expect("JSON report"),
    )
}

fn find(tree: &Path) -> f64 {
    let started = Instant::now();
    let out = Command::new("find")
        .arg(tree)
        .args(["-type", "f", "-printf", "%s %T@\\n"])
        .output()
        .expect("find runs");
    assert!(out.status.success());
    started.elapsed().as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn fresh(dir: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    dir.to_path_buf()
}

fn count(report: &Value, key: &str) -> u64 {
    report[key].as_u64().unwrap_or_default()
}

/// A dry run's counts are the next run's.
fn same_counts(planned: &Value, real: &Value) {
    assert_eq!(planned["dry_run"], true);
    for key in [
        "created",
        "updated",
        "moved",
        "touched",
        "deleted",
        "unchanged",
        "failed",
        "chunks_written",
        "tokens_embedded",
    ] {
        assert_eq!(planned[key], real[key], "{key}: {planned} vs {real}");
    }
}

/// A dry run's time against the run it planned, and its cost estimate against the run's.
fn dry_run_line(what: &str, embedder: &str, planned: &Measured, real: &Measured) -> String {
    let cost = &planned.report["plan"]["cost"];
    let estimated = cost["estimated_seconds"].as_f64().unwrap_or(f64::NAN);
    format!(
        "dry run of the {what}, {embedder} embedder: {:.2} s = {:.2}x the run's {:.2} s; predicted the run's counts exactly; {} tokens, embedding estimated at {:.2} s ({:.0} tokens/s measured)",
        planned.seconds,
        planned.seconds / real.seconds,
        real.seconds,
        count(&planned.report, "tokens_embedded"),
        estimated,
        cost["measured_tokens_per_second"]
            .as_f64()
            .unwrap_or(f64::NAN)
    )
}

fn main() {
    let args = parse_args();
    let root = fresh(&args.dir);
    let mut lines = Vec::new();
    let mut say = |line: String| {
        println!("{line}");
        lines.push(line);
    };
    say(format!(
        "workload: mixed corpus {} docs, small-file tree {} files, {}x larger corpus {}",
        args.docs,
        args.tree,
        10,
        if args.skip_large {
            "skipped"
        } else {
            "included"
        }
    ));

    // 1. Cold sync of the mixed corpus.
    let mixed = root.join("mixed");
    let t = Instant::now();
    let written = corpus::write_mixed(&mixed, args.docs).unwrap();
    eprintln!(
        "generated {} files in {:.1} s",
        written.files,
        t.elapsed().as_secs_f64()
    );
    let db = fresh(&root.join("db-mixed"));
    // 0. The dry run of the cold sync, then the sync itself.
    let planned_cold = sync_cli_args(&db, &mixed, "builtin", &["--dry-run"]);
    let cold = sync_cli(&db, &mixed);
    same_counts(&planned_cold.report, &cold.report);
    assert_eq!(
        count(&cold.report, "created") as usize,
        args.docs,
        "{}",
        cold.report
    );
    say(format!(
        "cold sync, {} mixed docs ({:.1} MB): {:.1} s wall, {:.0} docs/s, {:.2} MB/s, {} chunks, peak RSS {:.0} MB",
        args.docs,
        written.bytes as f64 / 1e6,
        cold.seconds,
        args.docs as f64 / cold.seconds,
        written.bytes as f64 / 1e6 / cold.seconds,
        count(&cold.report, "chunks_written"),
        cold.peak_rss_mb
    ));

    say(dry_run_line("cold sync", "builtin", &planned_cold, &cold));

    // 1b. The same cold sync with other embedders, against the built-in one (each after its
    // dry run).
    for embedder in &args.embedders {
        let other_db = fresh(&root.join(format!("db-{embedder}")));
        let planned = sync_cli_args(&other_db, &mixed, embedder, &["--dry-run"]);
        let other = sync_cli_with(&other_db, &mixed, embedder);
        same_counts(&planned.report, &other.report);
        say(dry_run_line("cold sync", embedder, &planned, &other));
        assert_eq!(
            count(&other.report, "created") as usize,
            args.docs,
            "{}",
            other.report
        );
        say(format!(
            "cold sync, {} mixed docs, {embedder} embedder: {:.1} s wall ({:.2}x the built-in embedder's), {:.0} docs/s, {} chunks, peak RSS {:.0} MB",
            args.docs,
            other.seconds,
            other.seconds / cold.seconds,
            args.docs as f64 / other.seconds,
            count(&other.report, "chunks_written"),
            other.peak_rss_mb
        ));
    }

    // 2. No-change rescan, then a rescan after changing 1% of the documents.
    let unchanged = sync_cli(&db, &mixed);
    assert_eq!(count(&unchanged.report, "unchanged") as usize, args.docs);
    say(format!(
        "no-change rescan, {} mixed docs: {:.2} s ({:.1}% of cold)",
        args.docs,
        unchanged.seconds,
        100.0 * unchanged.seconds / cold.seconds
    ));
    let changed = corpus::mutate_mixed(&mixed, args.docs, 0.01, 1).unwrap();
    let planned_rescan = sync_cli_args(&db, &mixed, "builtin", &["--dry-run"]);
    let rescan = sync_cli(&db, &mixed);
    same_counts(&planned_rescan.report, &rescan.report);
    assert_eq!(
        count(&rescan.report, "updated") as usize,
        changed.files,
        "{}",
        rescan.report
    );
    let share = rescan.seconds / cold.seconds;
    say(format!(
        "rescan after changing {} docs (1%): {:.2} s = {:.1}% of cold (target <= 5%: {})",
        changed.files,
        rescan.seconds,
        100.0 * share,
        if share <= 0.05 { "met" } else { "MISSED" }
    ));
    say(dry_run_line(
        "rescan after changing 1%",
        "builtin",
        &planned_rescan,
        &rescan,
    ));

    // 3. The small-file tree: cold sync, then no-change rescans against find.
    let tree = root.join("tree");
    let written = corpus::write_small_files(&tree, args.tree).unwrap();
    let tree_db = fresh(&root.join("db-tree"));
    let tree_cold = sync_cli(&tree_db, &tree);
    assert_eq!(count(&tree_cold.report, "created") as usize, args.tree);
    say(format!(
        "cold sync, {} small files ({:.1} MB): {:.1} s, {:.0} docs/s, peak RSS {:.0} MB",
        args.tree,
        written.bytes as f64 / 1e6,
        tree_cold.seconds,
        args.tree as f64 / tree_cold.seconds,
        tree_cold.peak_rss_mb
    ));
    find(&tree); // warm the same caches the sync runs warmed
    let mut rescans = Vec::new();
    let mut finds = Vec::new();
    for _ in 0..args.repeat {
        let m = sync_cli(&tree_db, &tree);
        assert_eq!(count(&m.report, "unchanged") as usize, args.tree);
        rescans.push(m.seconds);
        finds.push(find(&tree));
    }
    let (rescan, find_s) = (median(rescans), median(finds));
    say(format!(
        "no-change rescan, {} files: sync-cli {:.3} s vs find {:.3} s = {:.2}x (median of {}; target <= 2x: {})",
        args.tree,
        rescan,
        find_s,
        rescan / find_s,
        args.repeat,
        if rescan / find_s <= 2.0 {
            "met"
        } else {
            "MISSED"
        }
    ));

    // 3b. `check` of the same tree (consistent), against the no-change rescan; and with
    // --deep, which reads and hashes every file.
    let mut checks = Vec::new();
    for _ in 0..args.repeat {
        let (seconds, report) = check_cli(&tree_db, &tree, &[]);
        assert_eq!(report["problems"], serde_json::json!([]), "{report}");
        checks.push(seconds);
    }
    let check_s = median(checks);
    let (deep_s, report) = check_cli(&tree_db, &tree, &["--deep"]);
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    say(format!(
        "check, {} files, consistent: {:.3} s = {:.2}x the no-change rescan (median of {}); --deep (reads and hashes every file): {:.3} s = {:.2}x",
        args.tree,
        check_s,
        check_s / rescan,
        args.repeat,
        deep_s,
        deep_s / rescan
    ));

    // 4. Peak memory on a corpus 10x larger.
    if !args.skip_large {
        let large = root.join("mixed-large");
        let written = corpus::write_mixed(&large, args.docs * 10).unwrap();
        let large_db = fresh(&root.join("db-large"));
        let big = sync_cli(&large_db, &large);
        assert_eq!(count(&big.report, "created") as usize, args.docs * 10);
        let ratio = big.peak_rss_mb / cold.peak_rss_mb;
        say(format!(
            "cold sync, {} mixed docs ({:.1} MB): {:.1} s, {:.0} docs/s, peak RSS {:.0} MB = {:.2}x the {}-doc run (target <= 1.5x: {})",
            args.docs * 10,
            written.bytes as f64 / 1e6,
            big.seconds,
            (args.docs * 10) as f64 / big.seconds,
            big.peak_rss_mb,
            ratio,
            args.docs,
            if ratio <= 1.5 { "met" } else { "MISSED" }
        ));
    }
    let results = args.dir.join("results.txt");
    std::fs::write(&results, lines.join("\n") + "\n").unwrap();
    eprintln!("results written to {}", results.display());
}
