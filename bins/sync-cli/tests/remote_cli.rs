//! The real `sync-cli` binary with remote sources: a Dropbox folder (the testkit's stand-in)
//! and an S3 bucket (moto), added with `sources add --type`, synced, searched, listed without
//! their credentials, and synced again through the stored cursor.
//! Run: cargo test --workspace --test remote_cli

use std::path::Path;
use std::process::{Command, Output};

use lancesync_testkit::s3::{ACCESS_KEY, SECRET_KEY};
use lancesync_testkit::{DropboxServer, S3Server};
use serde_json::Value;

const TOKEN: &str = "sl.cli-token-never-shown";

fn sync_cli(work: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sync-cli"))
        .args(args)
        .current_dir(work)
        .env_clear()
        .env("HOME", work)
        .env("LANCEDB_URI", work.join("db"))
        .env("SYNC_STATE_DIR", work.join("state"))
        .env("DROPBOX_TOKEN", TOKEN)
        .env("S3_SOURCE_KEY", ACCESS_KEY)
        .env("S3_SOURCE_SECRET", SECRET_KEY)
        .output()
        .expect("sync-cli runs")
}

/// Run the binary off the async workers, so the stand-in servers keep answering.
async fn run(work: &Path, args: &[&str]) -> Output {
    let work = work.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sync_cli(&work, &args)
    })
    .await
    .unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropbox_and_s3_sources_through_the_cli() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let dropbox = DropboxServer::start(TOKEN).await;
    dropbox.put(
        "/Recipes/Bread.md",
        b"# Bread\n\nSourdough bread needs a lively starter.",
    );
    dropbox.put("/Recipes/soup.txt", b"Leek soup wants slow cooking.");
    let moto = S3Server::start();
    moto.create_bucket("cli-notes").await;
    object_store::ObjectStoreExt::put(
        &moto.client("cli-notes"),
        &object_store::path::Path::from("garden/compost.md"),
        b"# Compost\n\nCompost feeds the garden soil."
            .to_vec()
            .into(),
    )
    .await
    .unwrap();

    // A setting the type does not have: exit 2, the key named.
    let typo = run(
        w,
        &[
            "sources",
            "add",
            "dbx",
            "--type",
            "dropbox",
            "--option",
            "paht=/Recipes",
        ],
    )
    .await;
    assert_eq!(typo.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("unknown field `paht`"));

    let added = run(
        w,
        &[
            "sources",
            "add",
            "dbx",
            "--type",
            "dropbox",
            "--option",
            "path=/Recipes",
            "--option",
            "access_token=env:DROPBOX_TOKEN",
            "--option",
            &format!("api_url={}", dropbox.url),
            "--option",
            &format!("content_url={}", dropbox.url),
            "--option",
            "requests_per_second=50",
        ],
    )
    .await;
    assert_eq!(
        added.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let added = run(
        w,
        &[
            "sources",
            "add",
            "notes",
            "--type",
            "s3",
            "--option",
            "bucket=cli-notes",
            "--option",
            &format!("endpoint={}", moto.endpoint()),
            "--option",
            "region=us-east-1",
            "--option",
            "access_key_id=env:S3_SOURCE_KEY",
            "--option",
            &format!("secret_access_key={SECRET_KEY}"),
            "--pattern",
            "*.md",
        ],
    )
    .await;
    assert_eq!(
        added.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(!String::from_utf8_lossy(&added.stdout).contains(SECRET_KEY));

    let listed = run(w, &["sources", "list", "--json"]).await;
    let text = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        !text.contains(SECRET_KEY) && !text.contains(TOKEN),
        "{text}"
    );
    let listed = json(&listed);
    assert_eq!(listed[0]["config"]["access_token"], "env:DROPBOX_TOKEN");
    assert_eq!(listed[1]["config"]["secret_access_key"], "********");
    let plain = run(w, &["sources", "list"]).await;
    assert!(String::from_utf8_lossy(&plain.stdout).contains("s3://cli-notes/"));

    let first = run(w, &["sync", "--json"]).await;
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let reports = json(&first);
    let created: Vec<u64> = reports
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["created"].as_u64().unwrap())
        .collect();
    assert_eq!(created, [2, 1], "{reports}");

    let hits = json(&run(w, &["search", "sourdough starter", "--json"]).await);
    assert_eq!(hits[0]["source_uri"], "dropbox:/recipes/bread.md", "{hits}");
    let hits = json(&run(w, &["search", "compost soil", "--json"]).await);
    assert_eq!(
        hits[0]["source_uri"], "s3://cli-notes/garden/compost.md",
        "{hits}"
    );

    // Again, in a new process: the Dropbox cursor stored with the tables is used, one request.
    dropbox.clear_requests();
    let again = json(&run(w, &["sync", "--json"]).await);
    assert_eq!(again[0]["unchanged"], 2, "{again}");
    assert_eq!(dropbox.total_requests(), 1, "{:?}", dropbox.counts());
    dropbox.delete("/Recipes/soup.txt");
    let third = json(&run(w, &["sync", "--json"]).await);
    assert_eq!(third[0]["deleted"], 1, "{third}");
}
