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

fn sync_cli(work: &Path, provider: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sync-cli"))
        .args(args)
        .current_dir(work)
        .env_clear()
        .env("HOME", work)
        .env("EMBEDDING_PROVIDER", provider)
        .env("EMBEDDING_MODEL_PATH", model_folder())
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
    // first; it also refuses the tables the model built until they are re-indexed.
    let out = sync_cli(w, "builtin", &["search", cases[0].0, "--json"]);
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
