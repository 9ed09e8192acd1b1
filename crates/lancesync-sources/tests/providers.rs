//! What each remote source does on the wire beyond the conformance suite, tested on the
//! source itself against the testkit's stand-ins (real wire formats on 127.0.0.1): Dropbox's
//! token refresh, request pace and content-hash check of downloads, and Notion's pace and its
//! handling of `Retry-After` values. What the engine makes of a source (nothing deleted on a
//! failure, cursors kept by a stopped run) stays in the engine's tests.
//! Run: cargo test --workspace --test providers

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lancesync_sources::{
    DocumentSource, DropboxConfig, DropboxSource, NotionConfig, NotionSource, SecretRef,
};
use lancesync_testkit::{DropboxServer, NotionBlock, NotionServer};

const DROPBOX_TOKEN: &str = "sl.test-token";
const NOTION_TOKEN: &str = "ntn_test-integration-token";

fn text(topic: &str) -> String {
    format!("A note about {topic}. It mentions {topic} again.\n")
}

fn dropbox(server: &DropboxServer, tweak: impl FnOnce(&mut DropboxConfig)) -> DropboxSource {
    let env = BTreeMap::from([("DBX_TOKEN".to_string(), DROPBOX_TOKEN.to_string())]);
    let mut config = DropboxConfig::with_token("", SecretRef::env("DBX_TOKEN"));
    config.api_url = Some(server.url.clone());
    config.content_url = Some(server.url.clone());
    config.http.min_backoff_ms = 20;
    config.http.requests_per_second = Some(1000.0);
    tweak(&mut config);
    DropboxSource::new("dbx", config, &env).unwrap()
}

/// List and read everything, as a first sync does; returns how many documents were read.
async fn read_all(source: &dyn DocumentSource) -> lancesync_sources::Result<usize> {
    let listing = source.list().await?;
    for entry in &listing.entries {
        source.read(entry).await?;
    }
    Ok(listing.entries.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropbox_tokens_refresh_before_expiry_and_on_401() {
    let server = DropboxServer::start_with_refresh(
        "app-key-1",
        Some("app-secret-1"),
        "refresh-1",
        Duration::from_secs(3600),
    )
    .await;
    server.put("/a.md", text("alpha").as_bytes());
    let env = BTreeMap::from([("DBX_REFRESH".to_string(), "refresh-1".to_string())]);
    let mut config = DropboxConfig::with_token("", SecretRef::inline("unused"));
    config.access_token = None;
    config.refresh_token = Some(SecretRef::env("DBX_REFRESH"));
    config.app_key = Some("app-key-1".into());
    config.app_secret = Some(SecretRef::inline("app-secret-1"));
    config.api_url = Some(server.url.clone());
    config.content_url = Some(server.url.clone());
    let source = DropboxSource::new("dbx", config.clone(), &env).unwrap();

    assert_eq!(read_all(&source).await.unwrap(), 1);
    assert_eq!(server.tokens_issued(), 1);
    server.put("/b.md", text("beta").as_bytes());
    assert_eq!(read_all(&source).await.unwrap(), 2);
    assert_eq!(server.tokens_issued(), 1, "a valid token is reused");

    // Dropbox expires it early: 401 expired_access_token, one refresh, the call again.
    server.expire_tokens();
    assert_eq!(read_all(&source).await.unwrap(), 2);
    assert_eq!(server.tokens_issued(), 2);

    // A token close to its expiry (here: a 6 s lifetime, refreshed in its last quarter) is
    // refreshed before it is sent, so Dropbox never has to refuse it.
    let short = DropboxServer::start_with_refresh(
        "app-key-1",
        Some("app-secret-1"),
        "refresh-1",
        Duration::from_secs(6),
    )
    .await;
    short.put("/d.md", text("delta").as_bytes());
    let mut near = config.clone();
    near.api_url = Some(short.url.clone());
    near.content_url = Some(short.url.clone());
    let near = DropboxSource::new("near", near, &env).unwrap();
    read_all(&near).await.unwrap();
    assert_eq!(short.tokens_issued(), 1, "one token for the whole run");
    tokio::time::sleep(Duration::from_millis(4700)).await;
    short.clear_requests();
    read_all(&near).await.unwrap();
    assert_eq!(short.tokens_issued(), 2, "refreshed before expiry");
    assert_eq!(
        short.count("files/list_folder"),
        1,
        "no call was refused and sent again: {:?}",
        short.counts()
    );

    // A refresh token Dropbox refuses: a clear auth error, no secret shown.
    server.expire_tokens();
    let env = BTreeMap::from([("DBX_REFRESH".to_string(), "revoked-token".to_string())]);
    let revoked = DropboxSource::new("dbx", config, &env).unwrap();
    let err = revoked.list().await.unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("refused to refresh") && shown.contains("invalid_grant"),
        "{shown}"
    );
    assert!(
        !shown.contains("revoked-token") && !shown.contains("app-secret-1"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropbox_keeps_its_rate_and_waits_out_429s() {
    let server = DropboxServer::start(DROPBOX_TOKEN).await;
    server.set_page_size(1);
    for i in 0..10 {
        server.put(&format!("/n{i}.md"), text(&format!("topic{i}")).as_bytes());
    }

    // 429 with Retry-After: 1, twice: the source waits and goes on.
    server.throttle(2, 1);
    let started = Instant::now();
    assert_eq!(read_all(&dropbox(&server, |_| {})).await.unwrap(), 10);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // A rate of 5 requests/s: 11 listing pages and 10 downloads.
    let limited = dropbox(&server, |c| c.http.requests_per_second = Some(5.0));
    server.clear_requests();
    read_all(&limited).await.unwrap();
    let times = server.request_times();
    let n = times.len();
    assert!(n >= 20, "{n}");
    let span = *times.last().unwrap() - times[0];
    // A bucket of 5 lets the first 5 through at once; the rest come at 5/s.
    let least = Duration::from_secs_f64((n - 5) as f64 / 5.0 * 0.9);
    assert!(span >= least, "{n} requests in {span:?}");

    // A Retry-After beyond what the source waits ends the listing with a clear error.
    server.throttle(1, 3600);
    let err = limited.list().await.unwrap_err().to_string();
    assert!(err.contains("asks to wait 3600 s"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropbox_downloads_are_checked_against_the_listed_content_hash() {
    let server = DropboxServer::start(DROPBOX_TOKEN).await;
    server.put("/notes.md", text("notes").as_bytes());
    let source = dropbox(&server, |_| {});
    let listing = source.list().await.unwrap();
    let listed = listing.entries[0].clone();
    assert_eq!(
        listed.content_hash.as_deref(),
        Some(
            format!(
                "dropbox:{}",
                DropboxServer::content_hash(text("notes").as_bytes())
            )
            .as_str()
        )
    );
    assert_eq!(
        source.read(&listed).await.unwrap(),
        text("notes").as_bytes()
    );

    // Changed after the listing: the download is refused as stale, to be read again.
    server.put("/notes.md", b"rewritten since the listing");
    let err = source.read(&listed).await.unwrap_err().to_string();
    assert!(
        err.contains("changed in Dropbox since it was listed"),
        "{err}"
    );
    server.delete("/notes.md");
    let err = source.read(&listed).await.unwrap_err().to_string();
    assert!(err.contains("no longer in Dropbox"), "{err}");
}

fn notion(server: &NotionServer, tweak: impl FnOnce(&mut NotionConfig)) -> NotionSource {
    let env = BTreeMap::from([("NOTION_TOKEN".to_string(), NOTION_TOKEN.to_string())]);
    let mut config = NotionConfig::with_key(SecretRef::env("NOTION_TOKEN"));
    config.api_url = Some(server.url.clone());
    tweak(&mut config);
    NotionSource::new("notion", config, &env).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notion_keeps_to_three_requests_a_second_and_honours_retry_after() {
    let server = NotionServer::start(NOTION_TOKEN).await;
    let db = server.add_database(None, "Notes");
    for i in 0..5 {
        server.add_row(
            &db,
            &format!("Note {i}"),
            vec![],
            &[NotionBlock::paragraph(&format!("note number {i}"))],
        );
    }
    // The default pace: Notion's 3 requests per second.
    let source = notion(&server, |c| c.database_ids = vec![db.clone()]);
    server.throttle(1, 1);
    assert_eq!(read_all(&source).await.unwrap(), 5);
    let times = server.request_times();
    // 1 throttled + 1 query + 5 block lists.
    assert_eq!(times.len(), 7, "{:?}", server.counts());
    assert!(
        times[1] - times[0] >= Duration::from_millis(950),
        "Retry-After: 1 was honoured"
    );
    // After the burst of 3, one request every 1/3 s.
    let span = *times.last().unwrap() - times[1];
    assert!(
        span >= Duration::from_millis(900),
        "6 requests at 3/s after a burst take over a second: {span:?}"
    );
}

/// A provider's `Retry-After` is a number it chose: one beyond any wait (`1e300`, `inf`)
/// ends the listing with a clear error instead of a panic, and the next one works; one that
/// is no number of seconds is an ordinary backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notion_absurd_retry_after_values_end_the_listing_cleanly() {
    let server = NotionServer::start(NOTION_TOKEN).await;
    let db = server.add_database(None, "Notes");
    server.add_row(
        &db,
        "Note",
        vec![],
        &[NotionBlock::paragraph("herons wade")],
    );
    let source = notion(&server, |c| {
        c.database_ids = vec![db.clone()];
        c.http.min_backoff_ms = 20;
        c.http.requests_per_second = Some(1000.0);
    });
    assert_eq!(source.list().await.unwrap().entries.len(), 1);
    for absurd in ["1e300", "inf", "18446744073709551616"] {
        server.throttle_saying(1, absurd);
        let err = source.list().await.unwrap_err().to_string();
        assert!(
            err.contains("asks to wait") && err.contains(absurd),
            "{absurd}: {err}"
        );
    }
    for odd in ["NaN", "-5", "Wed, 21 Oct 2015 07:28:00 GMT"] {
        server.throttle_saying(1, odd);
        let listing = source.list().await.unwrap();
        assert_eq!(listing.entries.len(), 1, "{odd}");
    }
}
