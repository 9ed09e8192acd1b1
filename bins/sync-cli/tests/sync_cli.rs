//! The real `sync-cli` binary syncing folders into LanceDB: the zero-setup main job, sources,
//! exit codes, and convergence after being killed (SIGKILL) mid-run, again and again.
//! Run: cargo test -p sync-cli --test sync_cli

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use lancesync_testkit::cli::json;
use serde_json::Value;

fn sync_cli(work: &Path, args: &[&str]) -> Command {
    let mut cmd = lancesync_testkit::cli::isolated(env!("CARGO_BIN_EXE_sync-cli"), work);
    cmd.args(args)
        .env("CHUNK_CHARACTERS", "300")
        .env("CHUNK_OVERLAP", "50");
    cmd
}

fn run(work: &Path, args: &[&str]) -> Output {
    sync_cli(work, args).output().expect("sync-cli runs")
}

fn corpus(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let body: String = (0..6)
            .map(|p| {
                format!(
                    "Note {i}, paragraph {p}: topic {} and detail {}.\n\n",
                    i % 13,
                    i * 7 + p
                )
            })
            .collect();
        std::fs::write(
            dir.join(format!("note-{i:04}.md")),
            format!("# Note {i}\n\n{body}"),
        )
        .unwrap();
    }
}

#[test]
fn sync_search_status_and_exit_codes() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    corpus(&w.join("docs"), 12);
    std::fs::write(w.join("docs/broken.pdf"), b"%PDF-1.7 not really").unwrap();

    let out = run(w, &["sync", "docs", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "a failed document gives exit 4: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports = json(&out);
    assert_eq!(reports[0]["created"], 12);
    assert_eq!(reports[0]["failed"], 1);

    let out = run(w, &["search", "topic 5 detail", "--json", "--limit", "3"]);
    assert_eq!(out.status.code(), Some(0));
    let hits = json(&out);
    assert_eq!(hits.as_array().unwrap().len(), 3);
    for key in [
        "doc_id",
        "source_uri",
        "title",
        "chunk_text",
        "chunk_index",
        "score",
    ] {
        assert!(hits[0].get(key).is_some(), "{key} missing from {hits}");
    }
    let score = |hit: &Value| hit["score"].as_f64().unwrap();
    assert!(
        hits.as_array()
            .unwrap()
            .iter()
            .all(|h| (0.0..=1.0).contains(&score(h))),
        "scores are 0 to 1: {hits}"
    );
    // --vector-weight 0 ranks by full text, whose best hit scores 1.
    let by_text = json(&run(
        w,
        &["search", "topic 5 detail", "--json", "--vector-weight", "0"],
    ));
    assert_eq!(score(&by_text[0]), 1.0, "{by_text}");
    let out = run(
        w,
        &[
            "search",
            "topic",
            "--mode",
            "vector",
            "--vector-weight",
            "0.5",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "a weight for a vector search is a usage error"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hybrid searches only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let status = json(&run(w, &["status", "--json"]));
    assert_eq!(status["status"]["documents"], 12);
    assert_eq!(status["status"]["failed"], 1);
    let failed = String::from_utf8(run(w, &["failed"]).stdout).unwrap();
    assert!(
        failed.contains("broken.pdf") && failed.contains("damaged beyond repair"),
        "{failed}"
    );

    std::fs::remove_file(w.join("docs/broken.pdf")).unwrap();
    let out = run(w, &["sync", "docs"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("unchanged 12"));

    // Invalid configuration: exit 2 before touching anything.
    let out = sync_cli(w, &["sync", "docs"])
        .env("MAX_RETRIES", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MAX_RETRIES=lots"));
    // A user id that could escape the data folder is refused.
    let out = run(w, &["status", "--user", "../../etc"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid user id"));
}

/// PDFs that would crash, stall or exhaust an in-process parser are parsed in sync-cli's
/// worker processes: each ends as text or as its own failure with a true reason, within
/// EXTRACT_TIMEOUT, and the rest of the run is indexed as usual.
#[test]
fn hostile_pdfs_fail_alone_within_the_time_bound() {
    use lancesync_testkit::{encrypted_pdf, fan_out_form_pdf, recursive_form_pdf};
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    corpus(&w.join("docs"), 12);
    let docs = w.join("docs");
    std::fs::write(
        docs.join("self-drawing.pdf"),
        recursive_form_pdf("Weather stations report hourly gusts"),
    )
    .unwrap();
    std::fs::write(
        docs.join("billion-draws.pdf"),
        fan_out_form_pdf("Never read in time", 10, 10),
    )
    .unwrap();
    std::fs::write(docs.join("locked.pdf"), encrypted_pdf(&["Private"])).unwrap();

    let started = std::time::Instant::now();
    let out = sync_cli(w, &["sync", "docs", "--json"])
        .env("EXTRACT_TIMEOUT", "3")
        .env("EXTRACT_MEMORY_MB", "512")
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports = json(&out);
    assert_eq!(reports[0]["created"], 13, "{reports}");
    assert_eq!(reports[0]["failed"], 2, "{reports}");
    // The stalled file costs its 3 s budget, not the run.
    assert!(took < Duration::from_secs(60), "took {took:?}");

    let failed = json(&run(w, &["failed", "--json"]));
    let reason = |name: &str| {
        failed
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["source_uri"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("{name} not in {failed}"))["error_message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let stalled = reason("billion-draws.pdf");
    assert!(
        stalled.contains("timed out") && stalled.contains("over 3 s"),
        "{stalled}"
    );
    assert!(reason("locked.pdf").contains("encrypted PDF"), "{failed}");

    let hits = json(&run(
        w,
        &["search", "hourly gusts", "--json", "--limit", "1"],
    ));
    assert!(
        hits[0]["source_uri"]
            .as_str()
            .unwrap()
            .ends_with("self-drawing.pdf"),
        "{hits}"
    );
}

#[test]
fn configured_sources_and_the_mass_delete_guard() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    corpus(&w.join("notes"), 20);
    let docs = w.join("notes");
    assert_eq!(
        run(w, &["sources", "add", "notes", docs.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    let listed = json(&run(w, &["sources", "list", "--json"]));
    assert_eq!(listed[0]["id"], "notes");
    assert_eq!(run(w, &["sync"]).status.code(), Some(0));

    // While another process runs this source (it holds the source's run lock), a sync is
    // refused with exit code 5 and changes nothing; once the lock is free it runs.
    let lock_path = w.join("db/users/default/.lancesync/notes.lock");
    let held = std::fs::File::options()
        .write(true)
        .open(&lock_path)
        .expect("the first run created the lock file");
    held.lock().unwrap();
    let out = run(w, &["sync"]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("being synced by another run"));
    drop(held);
    assert_eq!(run(w, &["sync"]).status.code(), Some(0));

    for i in 0..15 {
        std::fs::remove_file(docs.join(format!("note-{i:04}.md"))).unwrap();
    }
    let out = run(w, &["sync"]);
    assert_eq!(out.status.code(), Some(3), "guard tripped");
    assert!(String::from_utf8_lossy(&out.stdout).contains("--allow-mass-delete"));
    assert_eq!(
        json(&run(w, &["status", "--json"]))["status"]["documents"],
        20
    );
    assert_eq!(
        run(w, &["sync", "--allow-mass-delete"]).status.code(),
        Some(0)
    );
    assert_eq!(
        json(&run(w, &["status", "--json"]))["status"]["documents"],
        5
    );

    let out = run(w, &["sources", "remove", "notes"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        json(&run(w, &["status", "--json"]))["status"]["documents"],
        0
    );
    assert_eq!(run(w, &["sync"]).status.code(), Some(1), "no sources left");
}

/// Source types come from one list: an unknown `--type` is refused with the types named.
/// A sources-file entry that no longer checks (a hand edit, a type this build lacks) is shown
/// as invalid, stops a sync that would run it, leaves the others usable, and is removed only
/// when asked.
#[test]
fn source_types_are_checked_and_a_broken_entry_is_kept_and_shown() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    corpus(&w.join("notes"), 3);
    let docs = w.join("notes");
    let out = run(w, &["sources", "add", "x", "--type", "sharepoint"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sharepoint") && err.contains("google_drive") && err.contains("notion"),
        "{err}"
    );
    let out = run(
        w,
        &[
            "sources", "add", "d", "--type", "dropbox", "--option", "paht=/x",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `paht`"));

    assert_eq!(
        run(w, &["sources", "add", "notes", docs.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    let file = w.join("state/users/default/sources.toml");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("\n[[source]]\nid = \"old\"\nsource_type = \"sharepoint\"\n\n[source.config]\nsite = \"intranet\"\n");
    std::fs::write(&file, text).unwrap();

    let listed = json(&run(w, &["sources", "list", "--json"]));
    assert_eq!(listed[0]["id"], "notes");
    assert_eq!(listed[1]["id"], "old");
    assert!(
        listed[1]["error"]
            .as_str()
            .unwrap()
            .contains("unknown source type \"sharepoint\""),
        "{listed}"
    );
    let plain = String::from_utf8_lossy(&run(w, &["sources", "list"]).stdout).to_string();
    assert!(plain.contains("old  sharepoint  invalid"), "{plain}");

    let out = run(w, &["sync"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("source old"));
    let out = run(w, &["sync", "--source", "notes", "--json"]);
    assert_eq!(json(&out)[0]["created"], 3);
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("sharepoint")
    );

    let out = run(w, &["sources", "remove", "old", "--json"]);
    assert_eq!(json(&out)["removed"]["source_type"], "sharepoint");
    assert_eq!(run(w, &["sync"]).status.code(), Some(0));
}

#[test]
fn killed_mid_run_it_converges_with_no_duplicate_or_orphan_chunks() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    corpus(&w.join("docs"), 400);
    // Kill the sync at different moments, several times over, while it writes.
    for delay_ms in [150u64, 300, 500, 800, 1200] {
        let mut child = sync_cli(w, &["sync", "docs"])
            .env("MAX_CONCURRENT_PROCESSING", "2")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    let out = run(w, &["sync", "docs", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = json(&run(w, &["sync", "docs", "--json"]));
    assert_eq!(
        (again[0]["unchanged"].as_u64(), again[0]["created"].as_u64()),
        (Some(400), Some(0)),
        "{again}"
    );

    // The tables hold exactly the folder: one row per file, chunks that match the rows.
    let status = json(&run(w, &["status", "--json"]));
    assert_eq!(status["status"]["documents"], 400);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use lancesync_engine::{Engine, EngineConfig};
        let mut config = EngineConfig::new(w.join("db"));
        config.chunking = lancesync_ingest::ChunkConfig {
            size: 300,
            overlap: 50,
        };
        let engine = Engine::new(
            config,
            std::sync::Arc::new(lancesync_ingest::HashingEmbedder::default()),
        )
        .unwrap();
        let tables = engine.tables("default").await.unwrap();
        let docs = tables.docs_where(None).await.unwrap();
        let expected: i64 = docs.iter().map(|d| d.total_chunks as i64).sum();
        let chunks = tables.chunks.count_rows(None).await.unwrap() as i64;
        assert_eq!(chunks, expected, "no duplicate or orphan chunks");
        let ids: Vec<String> = docs.iter().map(|d| d.doc_id.clone()).collect();
        let rows = tables.fetch_chunks(&ids).await.unwrap();
        let unique: std::collections::HashSet<_> = rows.iter().map(|c| &c.chunk_id).collect();
        assert_eq!(unique.len() as i64, expected);
    });
}

/// Poll `status` until `documents` reaches `want` (or fail after a minute).
fn wait_for_documents(w: &Path, want: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let out = run(w, &["status", "--json"]);
        let docs = serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v["status"]["documents"].as_u64());
        if docs == Some(want) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "documents stayed at {docs:?}, want {want}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn watch_follows_file_events_and_stops_on_sigterm() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    corpus(&w.join("docs"), 3);
    let child = sync_cli(
        w,
        &[
            "watch",
            "docs",
            "--debounce-ms",
            "200",
            "--poll-interval",
            "3600",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_for_documents(w, 3);
    std::fs::write(w.join("docs/new.md"), "# New\n\nwritten while watching").unwrap();
    wait_for_documents(w, 4);
    std::fs::remove_file(w.join("docs/note-0000.md")).unwrap();
    wait_for_documents(w, 3);
    let hits = json(&run(
        w,
        &[
            "search",
            "written while watching",
            "--mode",
            "full-text",
            "--json",
        ],
    ));
    assert!(
        hits[0]["source_uri"].as_str().unwrap().ends_with("new.md"),
        "{hits}"
    );

    assert!(
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit {:?}", out.status);
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopped watching"));
}

/// Names and documents an attacker controls: a file name with terminal escapes and a line
/// break is printed as visible escapes by every command; a one-line 3 MB Markdown file is
/// indexed like any other; and what the run writes is private to the user running it.
#[test]
fn hostile_names_are_shown_escaped_and_files_stay_private() {
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let docs = w.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let evil = "red\u{1b}[31mnote\nforged: all good.md";
    std::fs::write(docs.join(evil), "# Herons\n\nHerons wade in the shallows.").unwrap();
    std::fs::write(docs.join("bad\u{1b}]0;pwned\u{7}.pdf"), b"%PDF-1.7 broken").unwrap();
    let sentence = "The marsh floods slowly when the tide turns. ";
    std::fs::write(
        docs.join("line.md"),
        sentence.repeat((3 << 20) / sentence.len()),
    )
    .unwrap();

    let raw = |out: &Output| {
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "raw control characters reached the terminal: {text:?}"
        );
        text
    };
    let synced = run(w, &["sync", "docs"]);
    assert_eq!(synced.status.code(), Some(4), "{}", raw(&synced));
    let text = raw(&synced);
    assert!(text.contains("bad\\u{1b}]0;pwned\\u{7}.pdf"), "{text}");
    // The one-line file: 3 MB in chunks of at most 300 characters.
    let status = json(&run(w, &["status", "--json"]));
    assert_eq!(status["status"]["failed"], 1, "{status}");
    assert!(
        status["status"]["chunks"].as_u64().unwrap() > 10_000,
        "{status}"
    );

    let found = run(w, &["search", "herons wade", "--mode", "full-text"]);
    let text = raw(&found);
    assert!(
        text.contains("red\\u{1b}[31mnote\\u{a}forged: all good.md"),
        "{text}"
    );
    assert!(!text.contains("\nforged"), "{text}");
    let failed = run(w, &["failed"]);
    assert!(raw(&failed).contains("pwned\\u{7}.pdf"));

    let folder = docs.join("sub\u{1b}[2Jdir");
    std::fs::create_dir_all(&folder).unwrap();
    let added = run(w, &["sources", "add", "weird", folder.to_str().unwrap()]);
    assert_eq!(added.status.code(), Some(0), "{}", raw(&added));
    let listed = run(w, &["sources", "list"]);
    assert!(raw(&listed).contains("sub\\u{1b}[2Jdir"));

    // Tables, state and lock files: no group or other permission bits.
    let mut checked = 0;
    let mut stack = vec![w.join("db"), w.join("state")];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
        checked += 1;
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    assert!(checked > 10, "{checked}");
}

#[test]
fn a_dry_run_plans_with_its_cost_and_the_next_sync_does_exactly_that() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    corpus(&w.join("docs"), 8);
    assert_eq!(run(w, &["sync", "docs"]).status.code(), Some(0));
    let status = |w: &Path| json(&run(w, &["status", "--json"]))["status"].clone();
    let before = status(w);
    assert!(before["versions"][0].as_u64().unwrap() > 0, "{before}");

    std::fs::remove_file(w.join("docs/note-0001.md")).unwrap();
    std::fs::write(
        w.join("docs/note-0002.md"),
        "# Note 2\n\nRewritten about tides.",
    )
    .unwrap();
    corpus(&w.join("docs/more"), 3);
    let out = run(w, &["sync", "docs", "--dry-run", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let planned = json(&out);
    let plan = &planned[0]["plan"];
    assert_eq!(planned[0]["dry_run"], true);
    // more/note-0001.md has the removed note-0001.md's content: a move, not a new document.
    assert_eq!(plan["created"].as_array().unwrap().len(), 2, "{planned}");
    assert!(
        plan["updated"][0]
            .as_str()
            .unwrap()
            .ends_with("note-0002.md")
    );
    assert!(
        plan["moved"][0]["from"]
            .as_str()
            .unwrap()
            .ends_with("docs/note-0001.md")
    );
    assert!(
        plan["moved"][0]["to"]
            .as_str()
            .unwrap()
            .ends_with("more/note-0001.md")
    );
    assert_eq!(plan["deleted"], serde_json::json!([]));
    assert!(plan["cost"]["tokens"].as_u64().unwrap() > 0);
    assert_eq!(plan["cost"]["tokens_exact"], true);
    assert!(plan["cost"]["estimated_seconds"].as_f64().is_some());
    assert_eq!(status(w)["versions"], before["versions"], "nothing written");

    // The text form, with a price.
    let text = sync_cli(w, &["sync", "docs", "--dry-run"])
        .env("EMBEDDING_PRICE_PER_MILLION_TOKENS", "0.02")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("nothing was written"), "{text}");
    assert!(
        text.contains("a run would create 2, update 1, move 1"),
        "{text}"
    );
    assert!(text.contains("per million tokens"), "{text}");
    assert!(text.contains("move: "), "{text}");

    let out = run(w, &["sync", "docs", "--json"]);
    let real = json(&out);
    for key in [
        "created",
        "updated",
        "deleted",
        "unchanged",
        "chunks_written",
        "tokens_embedded",
        "chunks_saved",
    ] {
        assert_eq!(real[0][key], planned[0][key], "{key}");
    }
    assert!(real[0].get("plan").is_none());
    assert_ne!(status(w)["versions"], before["versions"]);
    assert!(
        !run(w, &["watch", "docs", "--dry-run"]).status.success(),
        "watch has no dry run"
    );
}

#[test]
fn check_reports_drift_with_exit_6_and_repair_makes_it_consistent() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    corpus(&w.join("docs"), 5);
    assert_eq!(run(w, &["sync", "docs"]).status.code(), Some(0));
    let out = run(w, &["check", "docs"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("consistent: nothing to repair"));

    std::fs::remove_file(w.join("docs/note-0003.md")).unwrap();
    std::fs::write(w.join("docs/note-0001.md"), "# Note 1\n\nRewritten.").unwrap();
    let out = run(w, &["check", "docs", "--json"]);
    assert_eq!(out.status.code(), Some(6), "problems found: exit 6");
    let found = json(&out);
    let kinds: Vec<&str> = found["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["gone_from_source", "stale"], "{found}");

    let out = run(w, &["check", "docs", "--repair"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("1: indexed but gone from the source"),
        "{text}"
    );
    assert!(
        text.contains("updated 1") && text.contains("deleted 1"),
        "{text}"
    );
    assert!(text.contains("consistent now"), "{text}");
    for _ in 0..2 {
        assert_eq!(run(w, &["check", "docs", "--deep"]).status.code(), Some(0));
    }
    assert!(!run(w, &["check", "docs", "--dry-run"]).status.success());
    // A user with no sources has only tables to check: the default user's index (synced from
    // an ad-hoc folder) checks out, and so does a user with nothing.
    for user in ["default", "nobody"] {
        let out = run(w, &["check", "--user", user, "--json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(json(&out)["sources"], serde_json::json!([]));
    }
}
