//! The real `sync-cli` binary with remote sources: a Dropbox folder, a Google Drive folder and
//! a Notion database (the testkit's stand-ins) and an S3 bucket (moto), added with
//! `sources add --type`, synced, searched, listed without their credentials, and synced again
//! through the stored cursor.
//! Run: cargo test --workspace --test remote_cli

use std::path::Path;
use std::process::{Command, Output};

use lancesync_testkit::cli::{json, succeeded as ok};
use lancesync_testkit::s3::{ACCESS_KEY, SECRET_KEY};
use lancesync_testkit::{DriveServer, DropboxServer, NotionBlock, NotionServer, S3Server};

const TOKEN: &str = "sl.cli-token-never-shown";
const NOTION_TOKEN: &str = "ntn_cli-token-never-shown";

fn sync_cli(work: &Path, args: &[&str]) -> Output {
    lancesync_testkit::cli::isolated(env!("CARGO_BIN_EXE_sync-cli"), work)
        .args(args)
        .env("DROPBOX_TOKEN", TOKEN)
        .env("S3_SOURCE_KEY", ACCESS_KEY)
        .env("S3_SOURCE_SECRET", SECRET_KEY)
        .env("NOTION_TOKEN", NOTION_TOKEN)
        // The key's own token_uri is not used: the source's token_url is.
        .env(
            "GDRIVE_KEY",
            lancesync_testkit::test_service_account_key("https://oauth2.googleapis.com/token"),
        )
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_drive_and_notion_sources_through_the_cli() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let drive = DriveServer::start().await;
    let folder = drive.create_folder("root", "Recipes");
    let bread = drive.put_file(
        &folder,
        "Bread.md",
        b"# Bread\n\nSourdough bread needs a lively starter.",
    );
    drive.put_doc(
        &folder,
        "Soup plan",
        "# Soup plan\n\nLeek soup wants slow cooking.",
    );
    let notion = NotionServer::start(NOTION_TOKEN).await;
    let garden = notion.add_database(None, "Garden");
    notion.add_row(
        &garden,
        "Compost",
        vec![],
        &[NotionBlock::paragraph("Compost feeds the garden soil.")],
    );

    ok(&run(
        w,
        &[
            "sources",
            "add",
            "drv",
            "--type",
            "google_drive",
            "--option",
            &format!("folder_ids=[\"{folder}\"]"),
            "--option",
            "service_account_key=env:GDRIVE_KEY",
            "--option",
            &format!("api_url={}", drive.url),
            "--option",
            &format!("token_url={}", drive.token_url),
            "--option",
            "requests_per_second=50",
        ],
    )
    .await);
    ok(&run(
        w,
        &[
            "sources",
            "add",
            "garden",
            "--type",
            "notion",
            "--option",
            "api_key=env:NOTION_TOKEN",
            "--option",
            &format!("database_ids=[\"{garden}\"]"),
            "--option",
            &format!("api_url={}", notion.url),
            "--option",
            "requests_per_second=50",
        ],
    )
    .await);
    // A Notion id that is not one: refused, naming it.
    let bad = run(
        w,
        &[
            "sources",
            "add",
            "x",
            "--type",
            "notion",
            "--option",
            "api_key=k",
            "--option",
            "page_ids=[\"../v1/users\"]",
        ],
    )
    .await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a Notion page id"));

    let plain = run(w, &["sources", "list"]).await;
    let text = String::from_utf8_lossy(&plain.stdout).to_string();
    assert!(
        text.contains(&format!("gdrive: folders {folder}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("notion: databases {garden}")),
        "{text}"
    );
    let listed = run(w, &["sources", "list", "--json"]).await;
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("PRIVATE KEY"));
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(NOTION_TOKEN));

    let first = run(w, &["sync", "--json"]).await;
    ok(&first);
    let created: Vec<u64> = json(&first)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["created"].as_u64().unwrap())
        .collect();
    assert_eq!(created, [2, 1]);
    let hits = json(&run(w, &["search", "sourdough starter", "--json"]).await);
    assert_eq!(
        hits[0]["source_uri"],
        format!("gdrive:{bread}/Bread.md"),
        "{hits}"
    );
    let hits = json(&run(w, &["search", "leek soup", "--json"]).await);
    assert_eq!(hits[0]["title"], "Soup plan", "{hits}");
    let hits = json(&run(w, &["search", "compost soil", "--json"]).await);
    assert_eq!(hits[0]["title"], "Compost", "{hits}");

    // Again, in a new process: a token and one changes.list for Drive, one query for Notion.
    drive.clear_requests();
    notion.clear_requests();
    let again = json(&run(w, &["sync", "--json"]).await);
    assert_eq!(
        (
            again[0]["unchanged"].as_u64(),
            again[1]["unchanged"].as_u64()
        ),
        (Some(2), Some(1)),
        "{again}"
    );
    assert_eq!(drive.total_requests(), 2, "{:?}", drive.counts());
    assert_eq!(drive.count("changes.list"), 1);
    assert_eq!(notion.counts().len(), 1, "{:?}", notion.counts());
    drive.delete(&bread);
    let third = json(&run(w, &["sync", "--json", "--source", "drv"]).await);
    assert_eq!(third[0]["deleted"], 1, "{third}");
}

/// A source with its own keys uses only them: the server's AWS identity in its environment
/// (a session token, other keys) travels with none of the source's requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_source_with_its_own_keys_sends_nothing_of_the_server_s_identity() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path().to_path_buf();
    let moto = S3Server::start();
    moto.create_bucket("own-keys").await;
    object_store::ObjectStoreExt::put(
        &moto.client("own-keys"),
        &object_store::path::Path::from("notes/herons.md"),
        b"# Notes\n\nHerons.".to_vec().into(),
    )
    .await
    .unwrap();
    let proxy = lancesync_testkit::HttpProxy::start(&moto.endpoint()).await;
    let with_server_identity = |args: Vec<String>| {
        let w = w.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_sync-cli"))
                .args(&args)
                .current_dir(&w)
                .env_clear()
                .env("HOME", &w)
                .env("LANCEDB_URI", w.join("db"))
                .env("SYNC_STATE_DIR", w.join("state"))
                // The server's own identity: none of it may reach the source's endpoint.
                .env("AWS_ACCESS_KEY_ID", "AKIDSERVERIDENTITY")
                .env("AWS_SECRET_ACCESS_KEY", "server-secret-never-sent")
                .env("AWS_SESSION_TOKEN", "server-session-token-never-sent")
                .output()
                .expect("sync-cli runs")
        })
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let added = with_server_identity(args(&[
        "sources",
        "add",
        "own",
        "--type",
        "s3",
        "--option",
        "bucket=own-keys",
        "--option",
        &format!("endpoint={}", proxy.url),
        "--option",
        "region=us-east-1",
        "--option",
        &format!("access_key_id={ACCESS_KEY}"),
        "--option",
        &format!("secret_access_key={SECRET_KEY}"),
    ]))
    .await
    .unwrap();
    assert_eq!(
        added.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let synced = with_server_identity(args(&["sync"])).await.unwrap();
    let shown = String::from_utf8_lossy(&synced.stdout).to_string();
    assert_eq!(
        synced.status.code(),
        Some(0),
        "{shown} {}",
        String::from_utf8_lossy(&synced.stderr)
    );
    let requests = proxy.requests();
    assert!(requests.iter().any(|r| r.is_s3_list()), "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|r| !r.header_names.iter().any(|h| h == "x-amz-security-token")),
        "the server's session token was sent: {requests:?}"
    );
    let found = with_server_identity(args(&["search", "herons", "--json"]))
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&found.stdout).contains("s3://own-keys/notes/herons.md"),
        "{}",
        String::from_utf8_lossy(&found.stdout)
    );
}
