//! The real `sync-server` binary on 127.0.0.1, end to end: start, add a folder source, wait for
//! the scheduled sync, search, delete a file and see it vanish from results, SIGTERM, restart
//! with the state intact; and without tokens it binds to loopback only.
//! Run: cargo test --workspace --test server

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ADMIN: &str = "admin-token-for-the-e2e-test";
const ALICE: &str = "alice-token-for-the-e2e-test";

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(work: &Path, extra: &[(&str, &str)]) -> Server {
    start_with_args(work, extra, &[])
}

fn start_with_args(work: &Path, extra: &[(&str, &str)], args: &[&str]) -> Server {
    let mut cmd = lancesync_testkit::cli::isolated(env!("CARGO_BIN_EXE_sync-server"), work);
    cmd.args(args)
        .env("API_PORT", "0")
        .env("DEFAULT_POLL_INTERVAL", "1")
        .env("CHUNK_CHARACTERS", "300")
        .env("CHUNK_OVERLAP", "50")
        .env("RUST_LOG", "info");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let (child, base) = lancesync_testkit::cli::spawn_server(cmd);
    Server { child, base }
}

impl Server {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let client = reqwest::Client::new();
        let mut req = client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(
                if path.contains("pipeline")
                    || path.starts_with("/api/v1/sources")
                    || path == "/metrics"
                {
                    ADMIN
                } else {
                    ALICE
                },
            );
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request answered");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn search(&self, query: &str) -> Vec<String> {
        let (status, v) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/search",
                Some(json!({ "query": query, "limit": 20 })),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["source_uri"].as_str().unwrap().to_string())
            .collect()
    }

    /// Chunks the server holds in memory for searches (`/metrics`).
    async fn chunks_in_memory(&self) -> u64 {
        let (_, v) = self.call(reqwest::Method::GET, "/metrics", None).await;
        v.as_str()
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("lancesync_search_memory_chunks "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    async fn documents(&self) -> u64 {
        let (_, v) = self
            .call(reqwest::Method::GET, "/api/v1/sync/status", None)
            .await;
        v["status"]["documents"].as_u64().unwrap_or(0)
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A folder `docs` with one note about tomatoes.
fn tomatoes(work: &Path) -> std::path::PathBuf {
    let docs = work.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("tomatoes.md"),
        "# Tomatoes\n\nWater tomatoes deeply.",
    )
    .unwrap();
    docs
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("not within 60 s: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_syncs_and_survives_a_restart() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let docs = tomatoes(w);
    std::fs::write(
        docs.join("basil.md"),
        "# Basil\n\nBasil likes warm tomatoes nearby.",
    )
    .unwrap();
    let tokens = [
        ("API_ADMIN_TOKEN", ADMIN.to_string()),
        ("API_USER_TOKENS", format!("alice={ALICE}")),
    ];
    let extra: Vec<(&str, &str)> = tokens.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let server = start(w, &extra);
    let (status, v) = server.call(reqwest::Method::GET, "/health", None).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = server
        .call(
            reqwest::Method::POST,
            "/api/v1/sources",
            Some(json!({ "user_id": "alice", "source_id": "garden", "config": { "watch_paths": [docs] } })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    // The schedule (poll interval 1 s) syncs it without being asked.
    eventually("the scheduled sync", async || server.documents().await == 2).await;
    assert!(
        server
            .search("tomatoes")
            .await
            .iter()
            .any(|u| u.ends_with("basil.md"))
    );
    // Searches then answer from memory (SEARCH_MEMORY_MB's default), with the same hits.
    eventually("the in-memory search index", async || {
        server.search("tomatoes").await;
        server.chunks_in_memory().await > 0
    })
    .await;
    let hits = server.search("tomatoes").await;
    assert!(hits.iter().any(|u| u.ends_with("basil.md")), "{hits:?}");
    assert!(hits.iter().any(|u| u.ends_with("tomatoes.md")), "{hits:?}");

    // A deleted file vanishes from results after the next scheduled run: the index in memory
    // is of the version before, and no search reads it.
    std::fs::remove_file(docs.join("basil.md")).unwrap();
    eventually("the deletion", async || server.documents().await == 1).await;
    assert!(
        server
            .search("basil")
            .await
            .iter()
            .all(|u| !u.ends_with("basil.md"))
    );

    let status = server.terminate();
    assert!(status.success(), "a clean exit after SIGTERM: {status:?}");

    // Restarted: the source is still there, and so is the index.
    let server = start(w, &extra);
    let (status, v) = server
        .call(reqwest::Method::GET, "/api/v1/sources", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["count"], 1, "{v}");
    assert_eq!(v["sources"][0]["source_id"], "garden");
    assert_eq!(server.documents().await, 1);
    assert!(
        server
            .search("tomatoes")
            .await
            .iter()
            .any(|u| u.ends_with("tomatoes.md"))
    );
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_it_listens_on_loopback_only_and_says_so() {
    let work = tempfile::tempdir().unwrap();
    let server = start(work.path(), &[("API_HOST", "0.0.0.0")]);
    assert!(
        server.base.starts_with("http://127.0.0.1:"),
        "{}",
        server.base
    );
    let (status, _) = server
        .call(reqwest::Method::GET, "/api/v1/sources", None)
        .await;
    assert_eq!(status, 200, "open on loopback");
    assert!(server.terminate().success());
}

#[test]
fn an_invalid_configuration_exits_2_with_every_problem() {
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sync-server"))
        .current_dir(work.path())
        .env_clear()
        .env("HOME", work.path())
        .env("API_PORT", "not-a-port")
        .env("API_ADMIN_TOKEN", "abc123xyz")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("API_PORT") && err.contains("API_ADMIN_TOKEN"),
        "{err}"
    );
    assert!(
        !err.contains("abc123xyz"),
        "the token is never shown: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_curl_example_script_works() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let docs = tomatoes(w);
    let server = start(
        w,
        &[
            ("API_ADMIN_TOKEN", ADMIN),
            ("ENABLE_SOURCE_MONITORING", "false"),
        ],
    );
    let script = Path::new(&checkout_dir()).join("../../examples/api.sh");
    let out = tokio::task::spawn_blocking({
        let base = server.base.clone();
        let docs = docs.clone();
        move || {
            Command::new("bash")
                .arg(script)
                .arg(&docs)
                .arg("watering tomatoes")
                .env("LANCESYNC_URL", base)
                .env("LANCESYNC_TOKEN", ADMIN)
                .output()
                .expect("bash runs")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("\"created\":1"),
        "the scan's report: {stdout}"
    );
    assert!(
        stdout.contains("tomatoes.md"),
        "the search found it: {stdout}"
    );
    assert!(stdout.contains("\"documents_removed\":1"), "{stdout}");
    assert!(server.terminate().success());
}

/// This package's folder in the checkout under test: read when the test runs, since a test
/// binary reused from a shared target directory may have been compiled in another checkout.
fn checkout_dir() -> std::ffi::OsString {
    std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_existing_data_at_start_up_adopts_the_original_tables_once() {
    use lancesync_testkit::{LegacyTable, legacy_chunk, legacy_document, md5_hex};
    if !lancesync_testkit::python_lancedb_available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let docs = tomatoes(w);
    let tomato_file = docs.join("tomatoes.md");
    let tomato_text = std::fs::read(&tomato_file).unwrap();
    // Alice's garden folder is a configured source; her upload is in none.
    std::fs::create_dir_all(w.join("state/users/alice")).unwrap();
    std::fs::write(
        w.join("state/users/alice/sources.toml"),
        format!(
            "[[source]]\nid = \"garden\"\nsource_type = \"local_filesystem\"\n\n[source.config]\nwatch_paths = [{:?}]\n",
            docs.to_string_lossy()
        ),
    )
    .unwrap();
    let vector = vec![0.5f32; 1536];
    let original = w.join("original");
    lancesync_testkit::write_legacy_tables(
        original.join("users/alice").to_str().unwrap(),
        None,
        &[
            LegacyTable::documents(1536).rows([
                legacy_document(
                    "old-1",
                    "alice",
                    tomato_file.to_str().unwrap(),
                    &md5_hex(&tomato_text),
                    1,
                    &vector,
                ),
                legacy_document(
                    "old-2",
                    "alice",
                    "/srv/uploads/sourdough.txt",
                    "",
                    1,
                    &vector,
                ),
            ]),
            LegacyTable::chunks(1536).rows([
                legacy_chunk(
                    "old-1",
                    "alice",
                    0,
                    &String::from_utf8_lossy(&tomato_text),
                    &vector,
                ),
                legacy_chunk(
                    "old-2",
                    "alice",
                    0,
                    "Sourdough starter needs flour and water every day.",
                    &vector,
                ),
            ]),
        ],
    );
    let original_uri = original.to_string_lossy().into_owned();
    let env = [
        ("API_ADMIN_TOKEN", ADMIN),
        ("API_USER_TOKENS", &format!("alice={ALICE}")),
        ("EMBEDDING_PROVIDER", "builtin"),
        ("MIGRATE_EXISTING_DATA", "true"),
        ("LEGACY_LANCEDB_URI", &original_uri),
    ];
    let server = start(w, &env);
    assert_eq!(server.documents().await, 2, "migrated before serving");
    assert!(
        server
            .search("sourdough starter flour")
            .await
            .iter()
            .any(|u| u == "/srv/uploads/sourdough.txt")
    );
    // The scheduled sync of the garden keeps the adopted document and the kept upload.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(server.documents().await, 2);
    assert!(server.terminate().success());

    // Every start migrates again, and finds everything migrated already.
    let server = start(w, &env);
    assert_eq!(server.documents().await, 2);
    assert!(server.terminate().success());

    // Without LEGACY_LANCEDB_URI the start is refused with the reason.
    let out = Command::new(env!("CARGO_BIN_EXE_sync-server"))
        .current_dir(w)
        .env_clear()
        .env("HOME", w)
        .env("MIGRATE_EXISTING_DATA", "true")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("LEGACY_LANCEDB_URI"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// SIGTERM while a large upload is being chunked and embedded: the server is gone within its
/// shutdown grace (plus a moment), not kept alive by the abandoned work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_server_within_its_grace_during_a_long_upload() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let tokens = [
        ("API_ADMIN_TOKEN", ADMIN.to_string()),
        ("API_USER_TOKENS", format!("alice={ALICE}")),
        ("API_MAX_BODY_MB", "50".to_string()),
    ];
    let extra: Vec<(&str, &str)> = tokens.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = start_with_args(w, &extra, &["--shutdown-grace", "1"]);
    // 30 MB of text with no line break, in a DOCX of a few hundred KB.
    let sentence = "The tide turns twice a day and the marsh floods slowly. ";
    let docx = lancesync_testkit::Docx::new()
        .paragraph(&sentence.repeat((30 << 20) / sentence.len()))
        .build();
    let url = format!("{}/api/v1/documents", server.base);
    let upload = tokio::spawn(async move {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(docx).file_name("tides.docx"),
        );
        reqwest::Client::new()
            .post(url)
            .bearer_auth(ALICE)
            .multipart(form)
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !upload.is_finished(),
        "the upload should still be in progress"
    );
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "{took:?}, {status:?}");
    // The client saw its connection end, with or without an answer.
    tokio::time::timeout(Duration::from_secs(10), upload)
        .await
        .expect("the upload's connection ends")
        .unwrap()
        .ok();
}
