//! What the server benchmarks share: the real `sync-server` on 127.0.0.1 with one admin
//! token, folder sources scanned through the API, latency percentiles.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

pub const TOKEN: &str = "bench-admin-token-0123456789";

/// The installed local model (scripts/env.sh's `lancesync_model_setup`).
pub fn model_folder() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").expect("HOME"))
        .join(".local/share/lancesync/models/all-MiniLM-L6-v2")
}

/// A running `sync-server`, killed when dropped.
pub type Server = lancesync_testkit::cli::RunningServer;

/// Start `sync-server` with its state in `work`, the embedder `embedder` and `settings`
/// (name, value) on top of the benchmark's own. `LANCESYNC_BENCH_SERVER` names another
/// `sync-server` binary to run instead of this build's (a baseline build, for an A/B).
pub fn start(work: &Path, embedder: &str, settings: &[(&str, &str)]) -> Server {
    let binary = std::env::var_os("LANCESYNC_BENCH_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sync-server")));
    let mut command = Command::new(binary);
    command
        .current_dir(work)
        .env_clear()
        .env("HOME", work)
        .env("LANCEDB_URI", work.join("db"))
        .env("SYNC_STATE_DIR", work.join("state"))
        .env("API_PORT", "0")
        .env("API_ADMIN_TOKEN", TOKEN)
        .env("API_RATE_LIMIT", "0")
        .env("ENABLE_SOURCE_MONITORING", "false")
        .env("RUST_LOG", "warn")
        .env("EMBEDDING_PROVIDER", embedder)
        .env("EMBEDDING_MODEL_PATH", model_folder());
    for (name, value) in settings {
        command.env(name, value);
    }
    lancesync_testkit::cli::start_server(command)
}

/// POST `body` to `path`; panics unless the answer is a success.
pub async fn call(client: &reqwest::Client, base: &str, path: &str, body: Value) -> Value {
    let res = client
        .post(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .expect("answered");
    let status = res.status();
    let v: Value = res.json().await.expect("JSON");
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

/// Add a folder source for user `bench` and scan it; with `wait`, until it finishes.
pub async fn add_and_scan(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    dir: &Path,
    wait: bool,
) -> Value {
    call(
        client,
        base,
        "/api/v1/sources",
        json!({ "user_id": "bench", "source_id": id, "config": { "watch_paths": [dir] } }),
    )
    .await;
    let path = format!("/api/v1/sources/local_filesystem/{id}/scan?user_id=bench&wait=0");
    let job = call(client, base, &path, json!({})).await;
    let id = job["id"].as_str().unwrap().to_string();
    loop {
        let res = client
            .get(format!("{base}/api/v1/jobs/{id}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let job: Value = res.json().await.unwrap();
        if !wait || job["state"] == "succeeded" || job["state"] == "failed" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `p` quantile (0 to 1) of ascending `sorted`.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
