//! The quick start's search with the default embedder (the static model distilled from the local
//! model) and with the local model itself: a question that shares no word with a sample
//! document finds it, where the built-in (feature-hashing) embedder cannot; status says which
//! embedder is active, and switching embedders asks for a re-index. Needs the model that
//! scripts/env.sh's `lancesync_model_setup` installs (scripts/test.sh runs it).
//! Run: cargo test --workspace --test semantic_search

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn checkout_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")
}

fn model_folder() -> PathBuf {
    let data = std::env::var("XDG_DATA_HOME")
        .ok()
        .filter(|d| d.starts_with('/'))
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var("HOME").expect("HOME")).join(".local/share"));
    let folder = data.join("lancesync/models/all-MiniLM-L6-v2");
    assert!(
        folder.join("model.safetensors").is_file(),
        "no model in {}: run `source scripts/env.sh && lancesync_model_setup`",
        folder.display()
    );
    folder
}

fn command(work: &Path, provider: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sync-cli"));
    command
        .args(args)
        .current_dir(work)
        .env_clear()
        .env("HOME", work)
        .env("EMBEDDING_PROVIDER", provider)
        .env("EMBEDDING_MODEL_PATH", model_folder());
    command
}

fn sync_cli(work: &Path, provider: &str, args: &[&str]) -> Output {
    command(work, provider, args)
        .output()
        .expect("sync-cli runs")
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn words(text: &str) -> BTreeSet<String> {
    // Function words carry no topic; everything else must differ.
    const GLUE: [&str; 9] = ["how", "do", "i", "a", "with", "at", "in", "on", "which"];
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !GLUE.contains(&w.as_str()))
        .collect()
}

#[test]
fn a_question_in_other_words_finds_its_document() {
    let samples = Path::new(&checkout_dir()).join("../../examples/sample-docs");
    let cases = [
        (
            "how do I make a loaf with a natural leaven at home",
            "guides/bread.md",
        ),
        (
            "which veggies thrive in planters on a terrace",
            "guides/gardening.html",
        ),
    ];
    for (question, file) in cases {
        let document = std::fs::read_to_string(samples.join(file)).unwrap();
        let shared: Vec<_> = words(question)
            .intersection(&words(&document))
            .cloned()
            .collect();
        assert!(
            shared.is_empty(),
            "{question:?} shares {shared:?} with {file}"
        );
    }

    let samples = samples.to_str().unwrap();
    // The default (the static model distilled from the local model), and the local model.
    let mut kept = None;
    for (provider, name) in [("auto", "static"), ("local", "local")] {
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        json(&sync_cli(w, provider, &["sync", samples, "--json"]));
        let status = json(&sync_cli(w, provider, &["status", "--json"]));
        let active = status["active_embedder"]["model"].as_str().unwrap();
        assert_eq!(status["active_embedder"]["name"], name, "{status}");
        assert!(active.starts_with("all-MiniLM-L6-v2@"), "{status}");
        assert_eq!(status["status"]["embedder"], status["active_embedder"]);
        for (question, file) in cases {
            for mode in ["vector", "hybrid"] {
                let hits = json(&sync_cli(
                    w,
                    provider,
                    &["search", question, "--json", "--limit", "1", "--mode", mode],
                ));
                let found = hits[0]["source_uri"].as_str().unwrap();
                assert!(
                    found.ends_with(file),
                    "{provider}, {mode}: {question:?} found {found}"
                );
            }
        }
        kept.get_or_insert(work);
    }
    let work = kept.expect("the default's index");
    let w = work.path();

    // The control: feature hashing sees no shared word, so it cannot rank the bread guide
    // first. Configured instead of the model, it searches the model's tables with the model
    // (their embedder), and refuses to write into them until they are re-indexed.
    let hits = json(&sync_cli(
        w,
        "builtin",
        &["search", cases[0].0, "--json", "--limit", "1"],
    ));
    assert!(
        hits[0]["source_uri"]
            .as_str()
            .unwrap()
            .ends_with(cases[0].1)
    );
    let out = sync_cli(w, "builtin", &["sync", samples, "--json"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sync-cli reindex"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hashing = tempfile::tempdir().unwrap();
    let h = hashing.path();
    json(&sync_cli(h, "builtin", &["sync", samples, "--json"]));
    let hits = json(&sync_cli(
        h,
        "builtin",
        &["search", cases[0].0, "--json", "--limit", "1"],
    ));
    let found = hits
        .as_array()
        .unwrap()
        .first()
        .and_then(|h| h["source_uri"].as_str())
        .unwrap_or("");
    assert!(!found.ends_with(cases[0].1), "hashing found {found}");
}

/// Searches made by separate `sync-cli search` processes, configured with either embedder,
/// until `stop`: (searches made, what went wrong).
fn search_until(
    work: &Path,
    stop: &std::sync::atomic::AtomicBool,
    question: &str,
) -> (usize, Vec<String>) {
    let (mut made, mut wrong) = (0, Vec::new());
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        for provider in ["auto", "builtin"] {
            let out = sync_cli(work, provider, &["search", question, "--json"]);
            made += 1;
            if !out.status.success() {
                wrong.push(format!(
                    "{provider}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            } else if serde_json::from_slice::<Value>(&out.stdout)
                .map_or(true, |hits| hits.as_array().is_none_or(Vec::is_empty))
            {
                wrong.push(format!("{provider}: no hits"));
            }
        }
    }
    (made, wrong)
}

#[test]
fn a_reindex_from_hashing_to_the_static_model_keeps_searches_answering_and_resumes_after_kill_9() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let samples = Path::new(&checkout_dir()).join("../../examples/sample-docs");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let question = "how do I make a loaf with a natural leaven at home";
    json(&sync_cli(
        w,
        "builtin",
        &[
            "sources",
            "add",
            "samples",
            samples.to_str().unwrap(),
            "--json",
        ],
    ));
    json(&sync_cli(w, "builtin", &["sync", "--json"]));
    let before = json(&sync_cli(w, "builtin", &["status", "--json"]));
    assert_eq!(before["status"]["embedder"]["name"], "builtin");

    // The model is configured now; searches run from other processes throughout the re-index,
    // configured either way.
    let stop = AtomicBool::new(false);
    let (report, (made, wrong)) = std::thread::scope(|scope| {
        let searches = scope.spawn(|| search_until(w, &stop, question));
        let report = sync_cli(w, "auto", &["reindex", "--json"]);
        std::thread::sleep(std::time::Duration::from_secs(2));
        stop.store(true, Ordering::SeqCst);
        (report, searches.join().unwrap())
    });
    let report = json(&report);
    assert!(
        wrong.is_empty(),
        "{} of {made} searches went wrong: {wrong:?}",
        wrong.len()
    );
    assert!(made >= 6, "only {made} searches ran during the re-index");
    assert_eq!(report["embedder_before"]["name"], "builtin");
    assert_eq!(report["embedder"]["name"], "static");
    assert_eq!(report["failed"], 0);
    let after = json(&sync_cli(w, "auto", &["status", "--json"]));
    assert_eq!(after["status"]["embedder"]["name"], "static", "{after}");
    assert_eq!(
        after["previous_generation"]["embedder"]["name"], "builtin",
        "{after}"
    );
    let text = sync_cli(w, "auto", &["status"]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("sync-cli reindex --rollback"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
    assert_eq!(after["status"]["documents"], before["status"]["documents"]);
    // The answers come from the model now: a question in other words finds its document,
    // whichever embedder the searching process has configured.
    for provider in ["auto", "builtin"] {
        let hits = json(&sync_cli(
            w,
            provider,
            &[
                "search", question, "--json", "--limit", "1", "--mode", "vector",
            ],
        ));
        let found = hits[0]["source_uri"].as_str().unwrap();
        assert!(found.ends_with("guides/bread.md"), "{provider}: {found}");
    }
    // The model's runs write; the hashing configuration's are refused.
    json(&sync_cli(w, "auto", &["sync", "--json"]));
    assert!(!sync_cli(w, "builtin", &["sync", "--json"]).status.success());

    // Rollback brings the hashing tables back.
    let rolled = json(&sync_cli(
        w,
        "builtin",
        &["reindex", "--rollback", "--json"],
    ));
    assert_eq!(rolled["embedder"]["name"], "builtin", "{rolled}");
    json(&sync_cli(w, "builtin", &["sync", "--json"]));
    let out = sync_cli(w, "builtin", &["reindex", "--rollback"]);
    assert!(!out.status.success(), "nothing left to roll back to");

    // Killed mid-build (kill -9), then run again: it resumes and converges.
    let corpus = w.join("corpus");
    lancesync_testkit::corpus::write_mixed(&corpus, 1_500).unwrap();
    json(&sync_cli(
        w,
        "builtin",
        &[
            "sources",
            "add",
            "corpus",
            corpus.to_str().unwrap(),
            "--json",
        ],
    ));
    json(&sync_cli(w, "builtin", &["sync", "--json"]));
    let with_corpus = json(&sync_cli(w, "builtin", &["status", "--json"]));
    let shadow_versions =
        w.join("data/lancedb/users/default/processed_documents__reindex.lance/_versions");
    let mut child = command(w, "auto", &["reindex", "--json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    // Some batches of documents written into the new tables, not all.
    while std::fs::read_dir(&shadow_versions).map_or(0, |d| d.count()) < 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "the build did not get going"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the re-index ended before it was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The live tables are untouched by the killed build.
    let status = json(&sync_cli(w, "builtin", &["status", "--json"]));
    assert_eq!(status["status"]["embedder"]["name"], "builtin");
    let resumed = json(&sync_cli(w, "auto", &["reindex", "--json"]));
    assert_eq!(resumed["resumed"], true, "{resumed}");
    let kept: u64 = resumed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["unchanged"].as_u64().unwrap())
        .sum();
    assert!(kept > 0, "nothing of the killed build was kept: {resumed}");
    let check = sync_cli(w, "auto", &["check", "--json"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let status = json(&sync_cli(w, "auto", &["status", "--json"]));
    assert_eq!(status["status"]["embedder"]["name"], "static");
    for count in ["documents", "failed"] {
        assert_eq!(
            status["status"][count], with_corpus["status"][count],
            "{count}"
        );
    }
}
