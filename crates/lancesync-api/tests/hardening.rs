//! What an attacker with a user token, or none, can make the server do: bounded connections
//! and shutdown, probes that rate limiting never blocks, uploads of unread types refused
//! before anything is stored, S3 regions that cannot redirect requests. Real servers on
//! 127.0.0.1 and a real orchestrator over LanceDB tables in a temp dir.
//! Run: cargo test -p lancesync-api --test hardening

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Without a valid token every caller from one address shares a bucket: past it, 429 with
/// Retry-After; the liveness and readiness probes still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_are_never_rate_limited_and_429_says_when_to_retry() {
    let s = server(&[("API_RATE_LIMIT", "5")]);
    let mut last = None;
    for _ in 0..8 {
        last = Some(
            s.get("/api/v1/sources", Some("wrong-token-0123456789"))
                .await,
        );
    }
    let limited = last.unwrap();
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text
    );
    let wait: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    for probe in ["/health/live", "/health/ready"] {
        for _ in 0..10 {
            let r = s.get(probe, None).await;
            assert_eq!(r.status, StatusCode::OK, "{probe}: {}", r.text);
        }
    }
}

/// An upload of a type no sync would index is refused with 415 and leaves no file behind
/// (a stored file without a row could never be deleted through the API).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_of_unread_types_are_refused_before_storing() {
    let s = server(&[]);
    let r = s
        .upload(ALICE, "payload.exe", b"MZ\x90\x00 not a document")
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
    assert!(r.error().1.contains("nothing was stored"), "{}", r.text);
    let r = s
        .post(
            "/api/v1/sync/manual",
            Some(ALICE),
            json!({ "filename": "sheet.xlsx", "text": "a,b" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
    let stored: Vec<_> = walk(&s.work.join("state"));
    assert!(
        !stored
            .iter()
            .any(|p| p.ends_with("payload.exe") || p.ends_with("sheet.xlsx")),
        "{stored:?}"
    );
    // A supported type is still indexed, and the answer does not say where the server
    // keeps it.
    let r = s.upload(ALICE, "ok.md", b"# Fine\n\nA note.").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.json()["document"]["source_uri"],
        "uploads/ok.md",
        "{}",
        r.text
    );
    let work = s.work.display().to_string();
    assert!(!r.text.contains(&work), "{}", r.text);
    let listed = s.get("/api/v1/documents", Some(ALICE)).await;
    assert!(
        listed.text.contains("uploads/ok.md") && !listed.text.contains(&work),
        "{}",
        listed.text
    );
    let hits = s
        .post(
            "/api/v1/search",
            Some(ALICE),
            json!({ "query": "note", "mode": "full_text" }),
        )
        .await;
    assert!(!hits.text.contains(&work), "{}", hits.text);
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

/// A user token may not point an S3 source anywhere but AWS: a region is a host-name label,
/// so every shape that would change the host is refused with 400 naming the region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_regions_that_would_change_the_host_are_refused() {
    let s = server(&[]);
    for region in [
        "x@127.0.0.1:19999/",
        "us-east-1.evil.example/x",
        "us-east-1:443",
        "us-east-1#",
        "us-east-1?a=b",
        "us-east-1%2eevil",
        "ｕｓ-east-1",
        "US-EAST-1",
        "",
    ] {
        let r = s
            .post(
                "/api/v1/sources",
                Some(ALICE),
                json!({
                    "source_id": "bucket",
                    "source_type": "s3",
                    "config": {
                        "bucket": "docs",
                        "region": region,
                        "access_key_id": "AKIDEXAMPLE",
                        "secret_access_key": "secret-example-123"
                    }
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{region:?}: {}", r.text);
        assert!(r.error().1.contains("region"), "{region:?}: {}", r.text);
    }
}

/// A connection that sends half a request line is closed once the header-read timeout
/// passes, instead of holding a file descriptor forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_is_closed_after_the_header_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = Router::new().route("/health/live", get(|| async { "ok" }));
    let options = lancesync_api::ServeOptions {
        header_read_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    tokio::spawn(lancesync_api::serve_with(
        listener,
        router,
        std::future::pending(),
        options,
    ));
    // A complete request is answered.
    let mut whole = tokio::net::TcpStream::connect(address).await.unwrap();
    whole
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    whole.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Half a request line, then silence.
    let mut slow = tokio::net::TcpStream::connect(address).await.unwrap();
    slow.write_all(b"GET /health/li").await.unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    // The read ends (EOF, or a reset) only when the server closes the connection.
    let _closed = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf))
        .await
        .expect("the server closes the connection");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(!text.contains("200 OK"), "{text}");
}

/// At shutdown a request still running after the grace does not keep the server up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_past_its_grace_for_a_stuck_request() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = Router::new()
        .route("/stuck", get(std::future::pending::<&'static str>))
        .route("/health/live", get(|| async { "ok" }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = lancesync_api::ServeOptions {
        shutdown_grace: Duration::from_millis(500),
        ..Default::default()
    };
    let server = tokio::spawn(lancesync_api::serve_with(
        listener,
        router,
        async move {
            let _ = stopped.await;
        },
        options,
    ));
    let mut stuck = tokio::net::TcpStream::connect(address).await.unwrap();
    stuck
        .write_all(b"GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve returns after its grace")
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

/// A rate a user chose that no `Duration` can hold (`1e-300` requests a second is one request
/// in 1e300 s) is a 400 naming the key, not a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_request_rates_are_refused_naming_the_key() {
    let s = server(&[]);
    for rate in [1e-300, 0.0, -3.0, 1e12] {
        let r = s
            .post(
                "/api/v1/sources",
                Some(ALICE),
                json!({
                    "source_id": "wiki",
                    "source_type": "notion",
                    "config": {
                        "api_key": "secret_notion_key",
                        "database_ids": ["1a2b3c4d5e6f4a8b9c0d1e2f3a4b5c6d"],
                        "requests_per_second": rate
                    }
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{rate}: {}", r.text);
        assert!(
            r.error().1.contains("requests_per_second"),
            "{rate}: {}",
            r.text
        );
    }
}
