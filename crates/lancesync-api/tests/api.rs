//! Every endpoint through the router, on real LanceDB tables in temp dirs: the common flows,
//! auth and cross-user isolation, and bad input (malformed JSON, wrong types, huge bodies,
//! unknown types, injection attempts) answered with a clear 4xx that changes nothing.
//! Run: cargo test --workspace --test api

mod common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use lancesync_config::{Config, EnvFile, LoadOptions};
use serde_json::json;
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_common_flows_work_end_to_end() {
    let s = server(&[]);
    let docs = s.folder(
        "alice-docs",
        &[
            (
                "tomatoes.md",
                "# Tomatoes\n\nWater tomatoes deeply twice a week.",
            ),
            ("bread.txt", "Sourdough bread needs a lively starter."),
            (
                "notes.html",
                "<html><body><h1>Notes</h1><p>Compost feeds the garden soil.</p></body></html>",
            ),
        ],
    );

    let r = s.get("/", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["name"], "lancesync");
    for path in ["/health", "/health/live", "/health/ready"] {
        let r = s.get(path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
    }

    // Add a source, scan it (the answer carries the run's report).
    let job = s.add_and_scan("alice", "garden", &docs).await;
    assert_eq!(job["state"], "succeeded");
    assert_eq!(job["report"]["created"], 3, "{job}");
    let job_id = job["id"].as_str().unwrap();
    let r = s.get(&format!("/api/v1/jobs/{job_id}"), Some(ALICE)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["report"]["created"], 3);

    // The source as alice sees it, and in the admin's list.
    let r = s
        .get("/api/v1/sources/local_filesystem/garden", Some(ALICE))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["last_report"]["created"], 3);
    assert_eq!(
        s.get("/api/v1/sources", Some(ADMIN)).await.json()["count"],
        1
    );

    // Search in every mode, with filters.
    for mode in ["vector", "full_text", "hybrid"] {
        let r = s
            .post(
                "/api/v1/search",
                Some(ALICE),
                json!({ "query": "watering tomatoes", "mode": mode, "limit": 2 }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{mode}: {}", r.text);
        let v = r.json();
        assert!(v["count"].as_u64().unwrap() >= 1, "{mode}: {v}");
        assert!(
            v["results"][0]["source_uri"]
                .as_str()
                .unwrap()
                .ends_with("tomatoes.md"),
            "{mode}: {v}"
        );
    }
    let r = s
        .post(
            "/api/v1/search",
            Some(ALICE),
            json!({ "query": "garden", "doc_type": "txt" }),
        )
        .await;
    assert!(
        r.json()["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["doc_type"] == "txt")
    );

    // Documents: list with paging and filters, one with its chunks, delete one.
    let page = s.get("/api/v1/documents?limit=2", Some(ALICE)).await.json();
    assert_eq!(
        (
            page["total"].as_u64(),
            page["items"].as_array().unwrap().len()
        ),
        (Some(3), 2)
    );
    let page2 = s
        .get("/api/v1/documents?limit=2&offset=2", Some(ALICE))
        .await
        .json();
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    let md = s
        .get("/api/v1/documents?doc_type=md", Some(ALICE))
        .await
        .json();
    assert_eq!(md["total"], 1);
    let doc_id = md["items"][0]["doc_id"].as_str().unwrap().to_string();
    let doc = s
        .get(&format!("/api/v1/documents/{doc_id}"), Some(ALICE))
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    let doc = doc.json();
    assert_eq!(doc["title"], "Tomatoes");
    assert!(
        doc["chunks"][0]["chunk_text"]
            .as_str()
            .unwrap()
            .contains("Water tomatoes")
    );
    assert!(doc.get("vector").is_none(), "vectors are not sent");
    let r = s
        .delete(&format!("/api/v1/documents/{doc_id}"), Some(ALICE))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        s.get(&format!("/api/v1/documents/{doc_id}"), Some(ALICE))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.delete(&format!("/api/v1/documents/{doc_id}"), Some(ALICE))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Status for a user, cleanup, the system status, pipeline control.
    let st = s.get("/api/v1/sync/status", Some(ALICE)).await.json();
    assert_eq!(st["status"]["documents"], 2);
    assert_eq!(st["last_runs"][0]["source_id"], "garden");
    let r = s.post("/api/v1/sync/cleanup", Some(ALICE), json!({})).await;
    assert_eq!(r.json()["cleared"], 0);
    let sys = s.get("/api/v1/status", Some(ADMIN)).await;
    assert_eq!(sys.status, StatusCode::OK, "{}", sys.text);
    let v = sys.json();
    assert_eq!(v["storage_mode"], "local_only", "{v}");
    assert_eq!(
        v["metrics"]["sources_monitored"], 0,
        "monitoring is off in this test"
    );
    assert_eq!(v["metrics"]["s3_backup_enabled"], false);
    assert!(v["backend_location_reason"].is_string());
    for secret in [ADMIN, ALICE, BOB] {
        assert!(!sys.text.contains(secret), "the status shows no token");
    }
    assert_eq!(
        s.post("/api/v1/pipeline/stop", Some(ADMIN), json!({}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(s.get("/", None).await.json()["status"], "stopped");
    assert_eq!(
        s.post("/api/v1/pipeline/start", Some(ADMIN), json!({}))
            .await
            .status,
        StatusCode::OK
    );

    // Metrics and the API description.
    let m = s.get("/metrics", Some(ADMIN)).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(
        m.text
            .contains("lancesync_runs_total{outcome=\"succeeded\"} 1"),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains("lancesync_documents_total{outcome=\"created\"} 3"),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains("lancesync_http_request_duration_seconds_bucket"),
        "{}",
        m.text
    );
    assert!(m.text.contains("route=\"/api/v1/search\""), "{}", m.text);
    let spec = s.get("/openapi.json", None).await.json();
    for path in [
        "/api/v1/sources",
        "/api/v1/search",
        "/api/v1/documents/{doc_id}",
        "/health",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} documented");
    }
    assert!(s.get("/docs", None).await.text.contains("/openapi.json"));

    // Removing the source removes its documents.
    let r = s
        .delete(
            "/api/v1/sources/local_filesystem/garden?user_id=alice",
            Some(ADMIN),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["documents_removed"], 2);
    assert_eq!(
        s.get("/api/v1/sync/status", Some(ALICE)).await.json()["status"]["documents"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_and_users_see_only_their_own_data() {
    let s = server(&[]);
    let a = s.folder("a", &[("a.md", "# Alpha\n\nalice's secret recipe")]);
    let b = s.folder("b", &[("b.md", "# Beta\n\nbob's private plans")]);
    let alice_job = s.add_and_scan("alice", "mine", &a).await;
    s.add_and_scan("bob", "mine", &b).await;

    // No token, a wrong token, a malformed header: 401 with a JSON body.
    for token in [None, Some("wrong-token-0123456789")] {
        let r = s.get("/api/v1/sources", token).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.error().0, "unauthorized");
        assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
    }
    // Admin endpoints are the admin's.
    for (method, uri) in [
        (Method::GET, "/api/v1/status"),
        (Method::GET, "/metrics"),
        (Method::POST, "/api/v1/pipeline/stop"),
    ] {
        let r = s.call(method, uri, Some(BOB), Some(Body::from("{}"))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}");
        assert_eq!(r.error().0, "forbidden");
    }
    // A user token cannot act for another user, in any endpoint.
    for uri in [
        "/api/v1/sources?user_id=bob",
        "/api/v1/sync/status?user_id=bob",
        "/api/v1/documents?user_id=bob",
        "/api/v1/sources/local_filesystem/mine?user_id=bob",
    ] {
        assert_eq!(
            s.get(uri, Some(ALICE)).await.status,
            StatusCode::FORBIDDEN,
            "{uri}"
        );
    }
    let r = s
        .post(
            "/api/v1/search",
            Some(ALICE),
            json!({ "user_id": "bob", "query": "plans" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Searching their own index never returns another user's chunks.
    let r = s
        .post(
            "/api/v1/search",
            Some(ALICE),
            json!({ "query": "bob private plans" }),
        )
        .await;
    assert!(
        r.json()["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| !h["chunk_text"].as_str().unwrap().contains("bob"))
    );
    // Lists are their own.
    let mine = s.get("/api/v1/sources", Some(ALICE)).await.json();
    assert_eq!(mine["count"], 1);
    assert_eq!(mine["sources"][0]["user_id"], "alice");
    // Another user's document id or job is not found for them.
    let bob_doc = s.get("/api/v1/documents", Some(BOB)).await.json()["items"][0]["doc_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        s.get(&format!("/api/v1/documents/{bob_doc}"), Some(ALICE))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.delete(&format!("/api/v1/documents/{bob_doc}"), Some(ALICE))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let job = alice_job["id"].as_str().unwrap();
    assert_eq!(
        s.get(&format!("/api/v1/jobs/{job}"), Some(BOB))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Users cannot point a folder source at the server's disk.
    let r = s
        .post(
            "/api/v1/sources",
            Some(ALICE),
            json!({ "source_id": "etc", "config": { "watch_paths": ["/etc"] } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.error().1.contains("admin"));
    // Bob's data is intact.
    assert_eq!(
        s.get("/api/v1/sync/status", Some(BOB)).await.json()["status"]["documents"],
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let s = server(&[]);
    let a = s.folder("a", &[("a.md", "# Alpha\n\nkept safe")]);
    s.add_and_scan("alice", "mine", &a).await;
    let before = s.get("/api/v1/documents", Some(ALICE)).await.json();

    let raw = |body: &'static str| Some(Body::from(body));
    let cases: Vec<(Method, &str, Option<Body>, StatusCode)> = vec![
        (
            Method::POST,
            "/api/v1/search",
            raw("{not json"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/search",
            raw(r#"{"query": 42}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/search",
            raw(r#"{"query": "x", "limit": "ten"}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/search",
            raw(r#"{"query": "x", "limit": 100000}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/search",
            raw(r#"{"query": "x", "surprise": 1}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/search",
            raw(r#"{"query": "   "}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/search",
            raw(r#"{"query": "x", "mode": "telepathy"}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/search",
            raw(r#"{"query": "x", "source_id": "a' OR '1'='1"}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/search",
            raw(r#"{"query": "x", "user_id": "alice' OR 1=1 --"}"#),
            StatusCode::FORBIDDEN,
        ),
        (
            Method::GET,
            "/api/v1/documents?status=completed'%20OR%20'1'='1",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/documents?source_id=x'%20OR%201=1",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/documents?doc_type=exe",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/documents?limit=0",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/documents?limit=-1",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/documents/abc'%20OR%20'1'='1",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            "/api/v1/documents/..%2F..%2Fetc",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/sources/local_filesystem/nope",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/api/v1/sources/local_filesystem/nope/scan",
            raw("{}"),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/api/v1/jobs/job-424242",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/api/v1/nothing-here",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PUT,
            "/api/v1/search",
            raw("{}"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (method, uri, body, want) in cases {
        let r = s.call(method.clone(), uri, Some(ALICE), body).await;
        assert_eq!(r.status, want, "{method} {uri}: {}", r.text);
        let (code, message) = r.error();
        assert!(!code.is_empty() && !message.is_empty(), "{uri}");
        assert!(
            !message.contains("panicked") && !message.contains("backtrace"),
            "{message}"
        );
    }
    // Admin-side bad sources: unknown type, a missing config, a bad id, a taken id.
    for (body, want) in [
        (
            json!({ "user_id": "alice", "source_id": "n", "source_type": "notion", "config": {} }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "user_id": "alice", "source_id": "n" }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "user_id": "alice", "source_id": "bad/id", "config": { "watch_paths": ["/tmp"] } }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "user_id": "../../etc", "source_id": "n", "config": { "watch_paths": ["/tmp"] } }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "user_id": "alice", "source_id": "mine", "config": { "watch_paths": ["/tmp"] } }),
            StatusCode::CONFLICT,
        ),
        (
            json!({ "user_id": "alice", "source_id": "n", "config": { "watch_paths": [] } }),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let r = s.post("/api/v1/sources", Some(ADMIN), body.clone()).await;
        assert_eq!(r.status, want, "{body}: {}", r.text);
        assert!(!r.error().1.is_empty());
    }
    // A body over API_MAX_BODY_MB (1 MB here) is refused with 413.
    let huge = format!(r#"{{"query": "{}"}}"#, "x".repeat(2_000_000));
    let r = s
        .call(
            Method::POST,
            "/api/v1/search",
            Some(ALICE),
            Some(Body::from(huge)),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(r.error().0, "payload_too_large");

    // Nothing changed.
    assert_eq!(s.get("/api/v1/documents", Some(ALICE)).await.json(), before);
    assert_eq!(
        s.get("/api/v1/sources", Some(ADMIN)).await.json()["count"],
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_cors_follow_the_settings() {
    let s = server(&[
        ("API_RATE_LIMIT", "5"),
        ("API_CORS_ORIGINS", "https://app.example.com"),
    ]);
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(s.get("/api/v1/sources", Some(ALICE)).await.status);
    }
    assert_eq!(&statuses[..5], &[StatusCode::OK; 5]);
    assert_eq!(statuses[6], StatusCode::TOO_MANY_REQUESTS);
    let r = s.get("/api/v1/sources", Some(ALICE)).await;
    assert_eq!(r.error().0, "too_many_requests");
    // Limits are per token: bob is not held up by alice.
    assert_eq!(
        s.get("/api/v1/sources", Some(BOB)).await.status,
        StatusCode::OK
    );

    let preflight = |origin: &'static str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/v1/search")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .body(Body::empty())
            .unwrap()
    };
    let ok = s
        .router
        .clone()
        .oneshot(preflight("https://app.example.com"))
        .await
        .unwrap();
    assert_eq!(
        ok.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    let other = s
        .router
        .clone()
        .oneshot(preflight("https://evil.example"))
        .await
        .unwrap();
    assert!(
        other
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );
}

#[test]
fn a_token_configuration_problem_is_reported_without_the_token() {
    let work = tempfile::tempdir().unwrap();
    let mut env = BTreeMap::new();
    env.insert(
        "API_USER_TOKENS".to_string(),
        "alice=abc123xyz,bob".to_string(),
    );
    env.insert("API_ADMIN_TOKEN".to_string(), "tiny".to_string());
    env.insert("API_CORS_ORIGINS".to_string(), "*".to_string());
    let opts = LoadOptions {
        env,
        config_file: None,
        env_file: EnvFile::Disabled,
        overrides: Vec::new(),
        working_dir: work.path().to_path_buf(),
    };
    let problems = match Config::load(&opts) {
        Err(lancesync_config::Error::Invalid { problems }) => problems,
        other => panic!("expected problems, got {other:?}"),
    };
    let text = lancesync_config::Problems(problems.clone()).to_string();
    for setting in ["API_USER_TOKENS", "API_ADMIN_TOKEN", "API_CORS_ORIGINS"] {
        assert!(
            problems.iter().any(|p| p.setting == Some(setting)),
            "{setting}: {text}"
        );
    }
    assert!(
        !text.contains("abc123xyz") && !text.contains("tiny"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_manual_documents_are_indexed_at_once() {
    let s = server(&[]);
    // A multipart upload: indexed before the answer, with its id and chunk count.
    let r = s
        .upload(
            ALICE,
            "harvest.md",
            b"# Harvest\n\nPick tomatoes when they are deep red.",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let v = r.json();
    let doc_id = v["doc_id"].as_str().unwrap().to_string();
    assert!(v["chunks"].as_i64().unwrap() >= 1, "{v}");
    let hits = s
        .post(
            "/api/v1/search",
            Some(ALICE),
            json!({ "query": "deep red tomatoes", "mode": "full_text" }),
        )
        .await
        .json();
    assert_eq!(hits["results"][0]["doc_id"], doc_id.as_str(), "{hits}");
    // Uploading the same name again replaces it (same id, new content).
    let r = s
        .upload(ALICE, "harvest.md", b"# Harvest\n\nPick beans while young.")
        .await;
    assert_eq!(r.json()["doc_id"], doc_id.as_str());
    let doc = s
        .get(&format!("/api/v1/documents/{doc_id}"), Some(ALICE))
        .await
        .json();
    assert!(
        doc["chunks"][0]["chunk_text"]
            .as_str()
            .unwrap()
            .contains("beans"),
        "{doc}"
    );

    // A corrupt PDF is a recorded failure with its reason, not a crash.
    let r = s
        .upload(ALICE, "broken.pdf", b"%PDF-1.7 this is not a pdf")
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.json()["processing_status"], "failed");
    assert!(!r.json()["error_message"].as_str().unwrap().is_empty());
    // Names with folders, hidden names and names without a type are refused.
    for bad in ["../escape.md", "a/b.md", ".hidden.md", "noextension"] {
        let r = s.upload(ALICE, bad, b"x").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }

    // The seeds' manual path: text, or bytes in base64.
    let r = s
        .post(
            "/api/v1/sync/manual",
            Some(BOB),
            json!({ "filename": "plan.txt", "text": "Bob plans a greenhouse." }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = s
        .post(
            "/api/v1/sync/manual",
            Some(BOB),
            json!({ "filename": "page.html", "content_base64": "PGh0bWw+PGhlYWQ+PHRpdGxlPkdyZWVuaG91c2U8L3RpdGxlPjwvaGVhZD48Ym9keT48cD5HbGFzcyB3YWxscy48L3A+PC9ib2R5PjwvaHRtbD4=" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json()["document"]["title"], "Greenhouse");
    for body in [
        json!({ "filename": "x.txt" }),
        json!({ "filename": "x.txt", "text": "a", "content_base64": "YQ==" }),
        json!({ "filename": "x.txt", "content_base64": "not base64!" }),
    ] {
        let r = s.post("/api/v1/sync/manual", Some(BOB), body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
    }
    // The original's integration path: chunks (and embeddings) made by the caller.
    let mut embedding = vec![0.0f32; 384];
    embedding[7] = 1.0;
    let r = s
        .post(
            "/api/v1/sync/manual",
            Some(BOB),
            json!({
                "filename": "crm-note.txt",
                "uri": "crm://notes/42",
                "title": "Call with Ada",
                "metadata": { "account": "ACME" },
                "chunks": [
                    { "text": "Ada asked for a greenhouse quote.", "embedding": embedding },
                    { "text": "Follow up next Tuesday about glass panels." }
                ]
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let manual_id = r.json()["doc_id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["chunks"], 2);
    let doc = s
        .get(&format!("/api/v1/documents/{manual_id}"), Some(BOB))
        .await
        .json();
    assert_eq!(doc["title"], "Call with Ada");
    assert_eq!(doc["source_id"], "manual");
    assert_eq!(doc["metadata"]["properties"]["account"], "ACME");
    let hits = s
        .post(
            "/api/v1/search",
            Some(BOB),
            json!({ "query": "glass panels Tuesday", "mode": "full_text" }),
        )
        .await
        .json();
    assert_eq!(hits["results"][0]["doc_id"], manual_id.as_str(), "{hits}");
    for body in [
        json!({ "filename": "x.txt", "chunks": [{ "text": "a", "embedding": [1.0, 2.0] }] }),
        json!({ "filename": "x.txt", "chunks": [] }),
        json!({ "filename": "x.exe", "chunks": [{ "text": "a" }] }),
        json!({ "filename": "x.txt", "text": "a", "chunks": [{ "text": "a" }] }),
    ] {
        let r = s.post("/api/v1/sync/manual", Some(BOB), body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
    }
    assert_eq!(
        s.get("/api/v1/sync/status", Some(BOB)).await.json()["status"]["documents"],
        3
    );
    assert_eq!(
        s.get("/api/v1/sync/status", Some(ALICE)).await.json()["status"]["documents"],
        1
    );

    // Deleting an upload deletes the stored file too: a later upload does not bring it back.
    assert_eq!(
        s.delete(&format!("/api/v1/documents/{doc_id}"), Some(ALICE))
            .await
            .status,
        StatusCode::OK
    );
    s.upload(ALICE, "other.md", b"# Other\n\nSomething else.")
        .await;
    let docs = s.get("/api/v1/documents", Some(ALICE)).await.json();
    let uris: Vec<&str> = docs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["source_uri"].as_str().unwrap())
        .collect();
    assert!(uris.iter().all(|u| !u.ends_with("harvest.md")), "{uris:?}");
    assert!(uris.iter().any(|u| u.ends_with("other.md")));
    // The uploads source id is reserved.
    let r = s
        .post(
            "/api/v1/sources",
            Some(ADMIN),
            json!({ "source_id": "uploads", "config": { "watch_paths": ["/tmp"] } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_endpoints_back_up_and_restore_through_s3() {
    use lancesync_testkit::S3Server;
    use lancesync_testkit::s3::{ACCESS_KEY, SECRET_KEY};

    // Without S3 there is nothing to back up: a clear 400.
    let local = server(&[]);
    let r = local
        .call(
            Method::POST,
            "/api/v1/storage/backup?wait=5",
            Some(ALICE),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.error().1.contains("local_only"));

    let s3 = S3Server::start();
    s3.create_bucket("api-backups").await;
    let endpoint = s3.endpoint();
    let s = server(&[
        ("FRONTEND_TYPE", "desktop"),
        ("S3_BACKUP_ENABLED", "true"),
        ("S3_BACKUP_BUCKET", "api-backups"),
        ("S3_ENDPOINT", &endpoint),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ]);
    // Writes are backed up as they happen.
    let r = s
        .post(
            "/api/v1/sync/manual",
            Some(ALICE),
            json!({ "filename": "tide.md", "text": "# Tides\n\nThe spring tide floods the marsh." }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let doc_id = r.json()["document"]["doc_id"].as_str().unwrap().to_string();
    let r = s.get("/api/v1/storage/status", Some(ALICE)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "admin only");
    let status = s.get("/api/v1/storage/status", Some(ADMIN)).await.json();
    assert_eq!(status["mode"], "local_primary_s3_backup", "{status}");
    assert_eq!(status["backlog"], 0);
    let alice = status["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user_id"] == "alice")
        .expect("alice's state");
    assert!(
        alice["state"]["last_backup"]["files"].as_u64().unwrap() > 0,
        "{alice}"
    );
    let metrics = s.get("/metrics", Some(ADMIN)).await.text;
    assert!(
        metrics.contains("lancesync_s3_backlog_users 0"),
        "{metrics}"
    );
    let health = s.get("/health", None).await.json();
    assert_eq!(health["components"]["s3"]["status"], "healthy", "{health}");
    assert!(
        health["components"]["s3"]["message"]
            .as_str()
            .unwrap()
            .contains("s3://api-backups/lancedb-backup answers"),
        "{health}"
    );
    let r = s
        .call(
            Method::POST,
            "/api/v1/storage/backup?wait=30",
            Some(ALICE),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["state"], "succeeded", "{}", r.text);
    assert_eq!(r.json()["result"]["files"], 0, "nothing new to send");

    // Deleted by mistake (and backed up without it), then restored from the version before.
    let before = s.get("/api/v1/sync/status", Some(ALICE)).await.json();
    let r = s
        .call(
            Method::DELETE,
            &format!("/api/v1/documents/{doc_id}"),
            Some(ALICE),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let version = before["status"]["versions"][0]
        .as_u64()
        .expect("documents version");
    let r = s
        .call(
            Method::POST,
            &format!("/api/v1/storage/restore?version={version}&wait=60"),
            Some(ALICE),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["state"], "succeeded", "{}", r.text);
    let r = s
        .get(&format!("/api/v1/documents/{doc_id}"), Some(ALICE))
        .await;
    assert_eq!(r.status, StatusCode::OK, "the document is back: {}", r.text);
    let r = s
        .call(
            Method::POST,
            "/api/v1/storage/restore?version=999999&wait=60",
            Some(ALICE),
            None,
        )
        .await;
    assert_eq!(r.json()["state"], "failed", "{}", r.text);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
    let r = s
        .call(
            Method::POST,
            "/api/v1/storage/restore?user_id=bob",
            Some(ALICE),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_sources_are_added_scanned_and_shown_without_secrets() {
    use lancesync_testkit::s3::{ACCESS_KEY, SECRET_KEY};
    use lancesync_testkit::{DropboxServer, S3Server};

    let dropbox = DropboxServer::start("sl.api-token-secret").await;
    dropbox.put(
        "/Garden/Tomatoes.md",
        b"# Tomatoes\n\nWater tomatoes deeply twice a week.",
    );
    dropbox.put("/Garden/compost.txt", b"Compost feeds the garden soil.");
    let s = server(&[("DROPBOX_TOKEN", "sl.api-token-secret")]);

    // What only the operator may set is refused to a user token, naming why.
    for (config, why) in [
        (
            json!({ "path": "/Garden", "access_token": "env:DROPBOX_TOKEN" }),
            "env: references",
        ),
        (
            json!({ "path": "/Garden", "access_token": "t", "api_url": dropbox.url }),
            "api_url",
        ),
    ] {
        let r = s
            .post(
                "/api/v1/sources",
                Some(ALICE),
                json!({ "source_id": "dbx", "source_type": "dropbox", "config": config }),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert!(r.error().1.contains(why), "{}", r.text);
    }
    let r = s
        .post(
            "/api/v1/sources",
            Some(ALICE),
            json!({ "source_id": "b", "source_type": "s3", "config": { "bucket": "any-bucket" } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.error().1.contains("its own access_key_id"), "{}", r.text);
    // A typo in a setting is a 400 that names it.
    let r = s
        .post("/api/v1/sources", Some(ADMIN), json!({ "user_id": "alice", "source_id": "dbx", "source_type": "dropbox", "config": { "paht": "/Garden", "access_token": "t" } }))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.error().1.contains("unknown field `paht`"), "{}", r.text);

    // The admin adds a Dropbox source for alice; she scans it and searches it.
    let r = s
        .post(
            "/api/v1/sources",
            Some(ADMIN),
            json!({ "user_id": "alice", "source_id": "dbx", "source_type": "dropbox", "config": {
                "path": "/Garden", "access_token": "env:DROPBOX_TOKEN",
                "api_url": dropbox.url, "content_url": dropbox.url } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = s
        .post(
            "/api/v1/sources/dropbox/dbx/scan?wait=60",
            Some(ALICE),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["report"]["created"], 2, "{}", r.text);
    let r = s
        .post(
            "/api/v1/search",
            Some(ALICE),
            json!({ "query": "tomatoes", "limit": 3 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["results"][0]["title"], "Tomatoes", "{}", r.text);
    assert_eq!(
        r.json()["results"][0]["source_uri"],
        "dropbox:/garden/tomatoes.md"
    );

    // S3, with inline keys: shown masked everywhere.
    let moto = S3Server::start();
    moto.create_bucket("garden-notes").await;
    object_store::ObjectStoreExt::put(
        &moto.client("garden-notes"),
        &object_store::path::Path::from("beds/raised.md"),
        b"# Raised beds\n\nRaised beds drain well in spring."
            .to_vec()
            .into(),
    )
    .await
    .unwrap();
    let r = s
        .post(
            "/api/v1/sources",
            Some(ADMIN),
            json!({ "user_id": "alice", "source_id": "notes", "source_type": "s3", "config": {
                "bucket": "garden-notes", "endpoint": moto.endpoint(), "region": "us-east-1",
                "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(!r.text.contains(SECRET_KEY), "{}", r.text);
    let r = s
        .post(
            "/api/v1/sources/s3/notes/scan?wait=60",
            Some(ALICE),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["report"]["created"], 1, "{}", r.text);

    let listed = s.get("/api/v1/sources", Some(ALICE)).await;
    assert_eq!(listed.status, StatusCode::OK);
    for secret in [SECRET_KEY, ACCESS_KEY, "sl.api-token-secret"] {
        assert!(!listed.text.contains(secret), "{}", listed.text);
    }
    let one = s.get("/api/v1/sources/s3/notes", Some(ALICE)).await.json();
    assert_eq!(one["config"]["secret_access_key"], "********", "{one}");
    let one = s
        .get("/api/v1/sources/dropbox/dbx", Some(ALICE))
        .await
        .json();
    assert_eq!(one["config"]["access_token"], "env:DROPBOX_TOKEN", "{one}");
    let status = s.get("/api/v1/sync/status", Some(ALICE)).await;
    assert!(!status.text.contains(SECRET_KEY), "{}", status.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_drive_and_notion_sources_through_the_api() {
    use lancesync_testkit::{DriveServer, NotionBlock, NotionServer};

    let drive = DriveServer::start().await;
    let folder = drive.create_folder("root", "Garden");
    drive.put_doc(
        &folder,
        "Tomatoes",
        "# Tomatoes\n\nWater tomatoes deeply twice a week.",
    );
    let notion = NotionServer::start("ntn_api-token-secret").await;
    let page = notion.add_page(
        "Orchard",
        &[NotionBlock::bullet("Prune apple trees in winter.")],
    );
    let key = drive.service_account_key();
    let s = server(&[
        ("GDRIVE_KEY", key.as_str()),
        ("NOTION_TOKEN", "ntn_api-token-secret"),
    ]);

    // A user may not point a source at the server's files or another token endpoint.
    for (config, why) in [
        (
            json!({ "folder_ids": [folder], "service_account_key_file": "/etc/shadow" }),
            "service_account_key_file",
        ),
        (
            json!({ "folder_ids": [folder], "access_token": "t", "token_url": "http://169.254.169.254/" }),
            "token_url",
        ),
    ] {
        let r = s
            .post(
                "/api/v1/sources",
                Some(ALICE),
                json!({ "source_id": "gd", "source_type": "google_drive", "config": config }),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert!(r.error().1.contains(why), "{}", r.text);
    }

    let r = s
        .post(
            "/api/v1/sources",
            Some(ADMIN),
            json!({ "user_id": "alice", "source_id": "gd", "source_type": "google_drive", "config": {
                "folder_ids": [folder], "service_account_key": "env:GDRIVE_KEY",
                "api_url": drive.url, "token_url": drive.token_url } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = s
        .post(
            "/api/v1/sources",
            Some(ADMIN),
            json!({ "user_id": "alice", "source_id": "orchard", "source_type": "notion", "config": {
                "api_key": "env:NOTION_TOKEN", "page_ids": [page], "api_url": notion.url } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    for (path, created) in [
        ("/api/v1/sources/google_drive/gd/scan?wait=60", 1),
        ("/api/v1/sources/notion/orchard/scan?wait=60", 1),
    ] {
        let r = s.post(path, Some(ALICE), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json()["report"]["created"], created, "{}", r.text);
    }
    for (query, title) in [
        ("water tomatoes", "Tomatoes"),
        ("prune apple trees", "Orchard"),
    ] {
        let r = s
            .post(
                "/api/v1/search",
                Some(ALICE),
                json!({ "query": query, "limit": 3 }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json()["results"][0]["title"], title, "{}", r.text);
    }
    let listed = s.get("/api/v1/sources", Some(ALICE)).await;
    assert!(
        !listed.text.contains("PRIVATE KEY") && !listed.text.contains("ntn_api-token-secret"),
        "{}",
        listed.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_sources_start_as_sync_enabled_by_default_says() {
    let folder = tempfile::tempdir().unwrap();
    for (setting, expected) in [("false", false), ("true", true)] {
        let s = server(&[("SYNC_ENABLED_BY_DEFAULT", setting)]);
        let r = s
            .post(
                "/api/v1/sources",
                Some(ADMIN),
                json!({ "user_id": "alice", "source_id": "notes", "config": { "watch_paths": [folder.path()] } }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.json()["enabled"], expected, "{}", r.text);
        // A source that says otherwise keeps its word.
        let r = s
            .post(
                "/api/v1/sources",
                Some(ADMIN),
                json!({ "user_id": "alice", "source_id": "other", "enabled": !expected, "config": { "watch_paths": [folder.path()] } }),
            )
            .await;
        assert_eq!(r.json()["enabled"], !expected, "{}", r.text);
    }
}
