//! `examples/axum_app.rs` run end to end: lancesync started inside an axum application, a
//! folder source added through the mounted API (`/sync/api/v1/...`) and synced by the
//! schedules running in the application, the application's own route answering from the
//! index, and a clean stop.
//! Run: cargo test --workspace --test axum_embedding

#[path = "../examples/axum_app.rs"]
mod axum_app;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lancesync::config::{EnvFile, LoadOptions};
use serde_json::{Value, json};

const ADMIN: &str = "axum-example-admin-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_system_starts_serves_and_stops_with_the_application() {
    let work = tempfile::tempdir().unwrap();
    let docs = work.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("bread.md"),
        "# Bread\n\nSourdough bread needs a lively starter and a slow rise.",
    )
    .unwrap();
    let options = LoadOptions {
        env: BTreeMap::from([
            ("HOME".to_string(), work.path().display().to_string()),
            (
                "LANCEDB_URI".to_string(),
                work.path().join("db").display().to_string(),
            ),
            (
                "SYNC_STATE_DIR".to_string(),
                work.path().join("state").display().to_string(),
            ),
            ("API_ADMIN_TOKEN".to_string(), ADMIN.to_string()),
            ("EMBEDDING_PROVIDER".to_string(), "builtin".to_string()),
        ]),
        env_file: EnvFile::Disabled,
        working_dir: work.path().to_path_buf(),
        ..LoadOptions::default()
    };
    let system = axum_app::SyncSystem::start(options, "default")
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, system.router())
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .into_future(),
    );
    let client = reqwest::Client::new();

    assert_eq!(
        client
            .get(&base)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "my application"
    );
    // lancesync's own API, mounted under /sync, with its authentication.
    let refused = client
        .get(format!("{base}/sync/api/v1/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let added = client
        .post(format!("{base}/sync/api/v1/sources"))
        .bearer_auth(ADMIN)
        .json(&json!({ "user_id": "default", "source_id": "notes", "config": { "watch_paths": [docs] } }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        added.status().as_u16(),
        201,
        "{}",
        added.text().await.unwrap()
    );
    // The source is scheduled at once: the application's own route, answering from the
    // index through the engine, finds the document as soon as that run has written it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer: Value = client
            .get(format!("{base}/ask?q=sourdough%20starter"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null);
        if answer["sources"][0]["title"] == "Bread" {
            break;
        }
        assert!(Instant::now() < deadline, "not indexed in time: {answer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Shutdown: requests stop first, then the sync system, within its grace period.
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
    let started = Instant::now();
    system.stop(Duration::from_secs(10)).await;
    assert!(started.elapsed() < Duration::from_secs(10));
}
