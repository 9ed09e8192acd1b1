//! `sync-cli` with S3 backup against a real S3-compatible server (moto) on 127.0.0.1:
//! probe, sync with backup, storage status, losing the database, restore, identical search.
//! Run: cargo test --workspace --test storage_cli

use std::path::Path;
use std::process::Output;

use lancesync_testkit::S3Server;
use lancesync_testkit::s3::{ACCESS_KEY, SECRET_KEY};
use serde_json::Value;

fn run(work: &Path, endpoint: &str, args: &[&str]) -> Output {
    lancesync_testkit::cli::isolated(env!("CARGO_BIN_EXE_sync-cli"), work)
        .args(args)
        .env("FRONTEND_TYPE", "desktop")
        .env("S3_BACKUP_ENABLED", "true")
        .env("S3_BACKUP_BUCKET", "cli-backups")
        .env("S3_ENDPOINT", endpoint)
        .env("S3_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .output()
        .expect("sync-cli runs")
}

fn ok_json(out: &Output) -> Value {
    lancesync_testkit::cli::succeeded(out);
    lancesync_testkit::cli::json(out)
}

fn hits(work: &Path, endpoint: &str) -> Vec<(String, i64)> {
    let out = run(
        work,
        endpoint,
        &["search", "harbor lights", "--json", "--limit", "5"],
    );
    ok_json(&out)
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["doc_id"].as_str().unwrap().to_string(),
                h["chunk_index"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_through_the_cli() {
    let s3 = S3Server::start();
    let endpoint = s3.endpoint();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let docs = w.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for i in 0..8 {
        std::fs::write(
            docs.join(format!("n{i}.md")),
            format!("# Note {i}\n\nThe harbor lights of town {i}.\n\nTides and boats, item {i}."),
        )
        .unwrap();
    }

    // A missing bucket is named at the probe, and nothing leaks the secret.
    let out = run(w, &endpoint, &["config", "check", "--probe"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("\"cli-backups\" does not exist"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET_KEY));
    s3.create_bucket("cli-backups").await;
    let out = run(w, &endpoint, &["config", "check", "--probe"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("local_primary_s3_backup"));

    // A sync backs up after the run.
    let reports = ok_json(&run(w, &endpoint, &["sync", "docs", "--json"]));
    assert_eq!(reports[0]["created"], 8);
    assert_eq!(reports[0]["storage"]["outcome"], "backed_up", "{reports}");
    assert!(reports[0]["storage"]["record"]["files"].as_u64().unwrap() > 0);
    let text = run(w, &endpoint, &["storage", "status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("storage mode: local_primary_s3_backup"),
        "{text}"
    );
    assert!(text.contains("backup:       s3://cli-backups/lancedb-backup/users/{user}"));
    let status = ok_json(&run(w, &endpoint, &["storage", "status", "--json"]));
    assert_eq!(status["backlog"], 0);
    assert!(
        status["users"][0]["state"]["last_backup"]["bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    let before = hits(w, &endpoint);
    assert_eq!(before.len(), 5);

    // Nothing new: the backup sends nothing.
    let again = ok_json(&run(w, &endpoint, &["backup", "--json"]));
    assert_eq!(again[0]["backup"]["files"], 0);

    // The database is lost; restore brings back the same answers.
    std::fs::remove_dir_all(w.join("db")).unwrap();
    assert!(hits(w, &endpoint).is_empty());
    let restored = ok_json(&run(w, &endpoint, &["restore", "--json"]));
    assert!(restored["transfer"]["files"].as_u64().unwrap() > 0);
    assert_eq!(hits(w, &endpoint), before);
    let out = run(w, &endpoint, &["restore", "--version", "9999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("version 9999 does not exist"));
}
