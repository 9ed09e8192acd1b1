//! Who may do what, bad input, rate limits and CORS.

use super::*;

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
            raw(r#"{"query": "x", "vector_weight": 1.5}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/search",
            raw(r#"{"query": "x", "mode": "vector", "vector_weight": 0.5}"#),
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
