//! Google Drive and Notion sources synced into real LanceDB tables, against the testkit's
//! stand-ins for both APIs: first sync, incremental runs that send only the changed
//! documents' requests (counted), deletions, moves without re-embedding, shared drives,
//! exports, token refresh, rate limits, failures mid-listing, and a run stopped mid-way.
//! Run: cargo test --workspace --test drive_notion

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lancesync_sources::{
    GoogleDriveConfig, GoogleDriveSource, NotionConfig, NotionSource, SecretRef,
};
use lancesync_testkit::{DriveServer, NotionBlock, NotionServer};
use serde_json::json;

mod common;
use common::{Index, abort_sync_when, text};

// ---------------------------------------------------------------------------------------
// Google Drive

fn drive(
    server: &DriveServer,
    id: &str,
    tweak: impl FnOnce(&mut GoogleDriveConfig),
) -> GoogleDriveSource {
    let env = BTreeMap::from([("GDRIVE_KEY".to_string(), server.service_account_key())]);
    let mut config =
        GoogleDriveConfig::service_account(Vec::<String>::new(), SecretRef::env("GDRIVE_KEY"));
    config.api_url = Some(server.url.clone());
    config.token_url = Some(server.token_url.clone());
    config.http.min_backoff_ms = 20;
    config.http.requests_per_second = Some(1000.0);
    tweak(&mut config);
    GoogleDriveSource::new(id, config, &env).unwrap()
}

async fn chunks_of(index: &Index, uri: &str) -> usize {
    let tables = index.engine.tables("alice").await.unwrap();
    let docs = tables
        .docs_where(Some(format!("source_uri = '{}'", uri.replace('\'', "''"))))
        .await
        .unwrap();
    docs.first().map_or(0, |d| d.total_chunks as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drive_first_sync_then_changes_through_the_change_token() {
    let server = DriveServer::start().await;
    server.set_page_size(3);
    let work = server.create_folder("root", "Work");
    let sub = server.create_folder(&work, "Reports");
    let elsewhere = server.create_folder("root", "Personal");
    let rivers = server.put_file(
        &work,
        "Rivers.md",
        format!("# Rivers\n\n{}", text("rivers", 6)).as_bytes(),
    );
    let mountains = server.put_file(&work, "mountains.txt", text("mountains", 4).as_bytes());
    let plan = server.put_doc(
        &sub,
        "Quarterly plan",
        &format!("# Quarterly plan\n\n{}", text("roadmap", 4)),
    );
    server.put_sheet(
        &sub,
        "Budget",
        "item,cost\nflour,3\nyeast,1\nbudget spreadsheet rows,9\n",
    );
    server.put_slides(&work, "Pitch deck", &text("slides pitch", 3));
    server.put_file(&work, "photo.jpg", b"\xff\xd8 not a document");
    let outside = server.put_file(&elsewhere, "diary.md", text("diary", 2).as_bytes());
    let index = Index::new();
    let source = drive(&server, "gd", |c| c.folder_ids = vec![work.clone()]);

    let first = index.sync(&source).await;
    assert_eq!((first.created, first.failed), (5, 0), "{first:?}");
    assert_eq!(server.count("token"), 1, "one token for the run");
    assert_eq!(server.count("files.export"), 3, "{:?}", server.counts());
    assert_eq!(server.count("files.get.media"), 2);
    assert!(
        server.count("files.list") >= 3,
        "pages of 3: {:?}",
        server.counts()
    );
    assert_eq!(index.top_title("roadmap").await, "Quarterly plan");
    assert_eq!(index.top_title("budget spreadsheet").await, "Budget");
    assert_eq!(index.top_title("pitch").await, "Pitch deck");
    let uris = index.uris().await;
    assert!(
        uris.contains(&format!("gdrive:{plan}/Quarterly plan.md")),
        "{uris:?}"
    );
    assert!(uris.iter().all(|u| !u.contains(&outside)));

    // Nothing changed: one changes.list request, no download, nothing written.
    let cursor = index.cursor("gd").await;
    server.clear_requests();
    let again = index.sync(&source).await;
    assert_eq!(
        (again.unchanged, again.created, again.updated),
        (5, 0, 0),
        "{again:?}"
    );
    assert_eq!(
        server.counts(),
        BTreeMap::from([("changes.list".to_string(), 1)])
    );
    assert_eq!(index.cursor("gd").await, cursor);

    // An edit, a rename, a move within scope, a move out of scope, a trashed file, a file
    // deleted for good, and a change outside the folder.
    server.update(&mountains, text("glaciers", 5).as_bytes());
    server.rename(&rivers, "Rivers 2026.md");
    server.move_to(&plan, &work);
    let deck = index
        .uris()
        .await
        .into_iter()
        .find(|u| u.ends_with("Pitch deck.txt"))
        .unwrap();
    server.move_to(deck.split(['/', ':']).nth(1).unwrap(), &elsewhere);
    let budget = index
        .uris()
        .await
        .into_iter()
        .find(|u| u.ends_with("Budget.csv"))
        .unwrap();
    server.trash(budget.split(['/', ':']).nth(1).unwrap());
    server.update(&outside, b"changed elsewhere");
    server.clear_requests();
    let embedded = index.embedded();
    let changed = index.sync(&source).await;
    assert_eq!(
        (
            changed.updated,
            changed.moved,
            changed.touched,
            changed.deleted,
            changed.created,
            changed.failed
        ),
        (1, 1, 1, 2, 0, 0),
        "{changed:?} (the Doc moved within the folder is exported again, same text: touched)"
    );
    assert_eq!(
        server.count("files.get.media"),
        1,
        "only the edit is downloaded: {:?}",
        server.counts()
    );
    assert_eq!(
        server.count("files.list"),
        0,
        "changes come through the change token"
    );
    assert_eq!(
        index.embedded() - embedded,
        chunks_of(&index, &format!("gdrive:{mountains}/mountains.txt")).await,
        "only the edited file was embedded"
    );
    let uris = index.uris().await;
    assert!(
        uris.contains(&format!("gdrive:{rivers}/Rivers 2026.md")),
        "{uris:?}"
    );
    assert!(
        uris.contains(&format!("gdrive:{plan}/Quarterly plan.md")),
        "moved within: same uri"
    );
    assert_eq!(uris.len(), 3, "{uris:?}");
    assert_ne!(
        index.cursor("gd").await,
        cursor,
        "the change token advanced"
    );

    // Deleted for good, and a new file in a new subfolder (a folder entering the scope is
    // listed in full, so its files are found whatever the order of changes).
    server.delete(&mountains);
    let new_folder = server.create_folder(&work, "New");
    server.put_file(&new_folder, "fresh.md", text("fresh", 2).as_bytes());
    let last = index.sync(&source).await;
    assert_eq!((last.deleted, last.created), (1, 1), "{last:?}");
    assert_eq!(index.top_title("fresh").await, "fresh.md");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drive_shared_drives_whole_and_exports_over_the_limit_fail_alone() {
    let server = DriveServer::start().await;
    let team = server.create_drive("Team");
    let specs = server.create_folder(&team, "Specs");
    server.put_file(&team, "charter.md", text("charter", 3).as_bytes());
    let spec = server.put_doc(&specs, "API spec", &text("endpoints", 3));
    // Over Drive's 10 MB export limit.
    let huge = "x".repeat(11 * 1024 * 1024);
    server.put_doc(&specs, "Huge log", &huge);
    server.put_file("root", "mine.md", text("mine", 2).as_bytes());
    let index = Index::new();
    // Acting for a Workspace user (domain-wide delegation): the JWT carries `sub`.
    let source = drive(&server, "team", |c| {
        c.drive_ids = vec![team.clone()];
        c.subject = Some("alice@example.com".into());
    });
    let first = index.sync(&source).await;
    assert_eq!(
        server.last_jwt_subject().as_deref(),
        Some("alice@example.com")
    );
    assert_eq!((first.created, first.failed), (2, 1), "{first:?}");
    assert!(
        first.failures[0].reason.contains("exports at most 10 MB"),
        "{:?}",
        first.failures
    );
    assert_eq!(index.top_title("endpoints").await, "API spec");

    // Changes in the shared drive come through the same change token.
    server.update(&spec, text("webhooks", 3).as_bytes());
    server.put_file(&specs, "notes.md", text("notes", 2).as_bytes());
    server.put_file("root", "other.md", b"not in the drive");
    server.clear_requests();
    let next = index.sync(&source).await;
    assert_eq!((next.updated, next.created), (1, 1), "{next:?}");
    assert_eq!(server.count("files.list"), 0, "{:?}", server.counts());
    assert_eq!(index.top_title("webhooks").await, "API spec");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drive_tokens_refresh_on_expiry_and_401_and_a_refused_grant_deletes_nothing() {
    let server = DriveServer::start().await;
    server.accept_refresh_token(
        "client-1.apps.googleusercontent.com",
        "client-secret-1",
        "1//refresh-1",
    );
    server.set_token_lifetime(Duration::from_secs(3599));
    let folder = server.create_folder("root", "Docs");
    server.put_file(&folder, "a.md", text("alpha", 2).as_bytes());
    server.put_file(&folder, "b.md", text("beta", 2).as_bytes());
    let oauth = |refresh: &str| {
        let mut config =
            GoogleDriveConfig::service_account([folder.clone()], SecretRef::inline("unused"));
        config.service_account_key = None;
        config.client_id = Some("client-1.apps.googleusercontent.com".into());
        config.client_secret = Some(SecretRef::inline("client-secret-1"));
        config.refresh_token = Some(SecretRef::inline(refresh));
        config.api_url = Some(server.url.clone());
        config.token_url = Some(server.token_url.clone());
        config.http.requests_per_second = Some(1000.0);
        GoogleDriveSource::new("gd", config, &BTreeMap::new()).unwrap()
    };
    let source = oauth("1//refresh-1");
    let index = Index::new();
    assert_eq!(index.sync(&source).await.created, 2);
    assert_eq!(server.tokens_issued(), 1);

    // The token is refused mid-life: refreshed once, the request sent again.
    server.expire_tokens();
    server.put_file(&folder, "c.md", text("gamma", 2).as_bytes());
    let next = index.sync(&source).await;
    assert_eq!(next.created, 1, "{next:?}");
    assert_eq!(server.tokens_issued(), 2);

    // A token is refreshed before it expires: with 2 s tokens, after 1.5 s (a quarter of
    // its life is the margin).
    server.set_token_lifetime(Duration::from_secs(2));
    let short = oauth("1//refresh-1");
    index.sync(&short).await;
    let issued = server.tokens_issued();
    index.sync(&short).await;
    assert_eq!(server.tokens_issued(), issued, "a fresh token is reused");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    index.sync(&short).await;
    assert_eq!(
        server.tokens_issued(),
        issued + 1,
        "a token near its end is refreshed"
    );

    // A revoked refresh token: a clear error, and nothing is deleted.
    server.expire_tokens();
    let revoked = oauth("1//revoked");
    let err = index.try_sync(&revoked).await.unwrap_err().to_string();
    assert!(err.contains("Google refused the refresh token"), "{err}");
    assert!(!err.contains("1//revoked"), "the token never shows: {err}");
    assert_eq!(index.uris().await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drive_rate_limits_are_waited_out_and_a_failing_page_deletes_nothing() {
    let server = DriveServer::start().await;
    server.set_page_size(2);
    let folder = server.create_folder("root", "Docs");
    for name in ["a", "b", "c", "d", "e"] {
        server.put_file(&folder, &format!("{name}.md"), text(name, 2).as_bytes());
    }
    let index = Index::new();
    let source = drive(&server, "gd", |c| c.folder_ids = vec![folder.clone()]);
    assert_eq!(index.sync(&source).await.created, 5);

    // 429 with Retry-After, then 403 userRateLimitExceeded (no Retry-After): both waited out.
    server.put_file(&folder, "f.md", text("f", 2).as_bytes());
    server.throttle(1, 1);
    server.throttle_403(2);
    let started = Instant::now();
    assert_eq!(index.sync(&source).await.created, 1);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );

    // A full listing whose third page keeps failing: an error, nothing deleted, the cursor
    // stays.
    let cursor = index.cursor("gd").await;
    server.expire_change_tokens();
    server.fail_after("files.list", 2, 100);
    let strict = drive(&server, "gd", |c| {
        c.folder_ids = vec![folder.clone()];
        c.http.max_retries = 1;
    });
    let err = index.try_sync(&strict).await.unwrap_err().to_string();
    assert!(err.contains("files.list") && err.contains("500"), "{err}");
    assert_eq!(index.uris().await.len(), 6);
    assert_eq!(index.cursor("gd").await, cursor);

    // Drive refused the stored change token: the next run lists in full and converges.
    server.fail("files.list", 0);
    let relisted = index.sync(&source).await;
    assert_eq!(
        (relisted.unchanged, relisted.deleted),
        (6, 0),
        "{relisted:?}"
    );
    assert_ne!(index.cursor("gd").await, cursor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drive_a_run_stopped_mid_way_keeps_its_token_and_converges() {
    let server = DriveServer::start().await;
    let folder = server.create_folder("root", "Docs");
    let ids: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| server.put_file(&folder, &format!("{n}.md"), text(n, 3).as_bytes()))
        .collect();
    let index = Index::new();
    let source = Arc::new(drive(&server, "gd", |c| {
        c.folder_ids = vec![folder.clone()]
    }));
    assert_eq!(index.sync(source.as_ref()).await.created, 3);
    let cursor = index.cursor("gd").await.unwrap();

    // Two files change; the changes are fetched, then every download is told to wait 30 s:
    // the run is stopped there.
    server.update(&ids[0], text("apples", 3).as_bytes());
    server.update(&ids[2], text("cherries", 3).as_bytes());
    server.clear_requests();
    server.throttle_after(1, 10, 30);
    abort_sync_when(&index, source.clone(), Duration::ZERO, || {
        server.count("files.get.media") >= 1
    })
    .await;
    assert_eq!(index.cursor("gd").await.as_deref(), Some(cursor.as_str()));

    server.clear_throttle();
    let replay = index.sync(source.as_ref()).await;
    assert_eq!((replay.updated, replay.failed), (2, 0), "{replay:?}");
    assert_eq!(index.top_title("cherries").await, "c.md");
    index.assert_no_duplicate_chunks().await;
    assert_eq!(index.sync(source.as_ref()).await.unchanged, 3);
}

// ---------------------------------------------------------------------------------------
// Notion

const NOTION_TOKEN: &str = "ntn_test-integration-token";

fn notion(server: &NotionServer, tweak: impl FnOnce(&mut NotionConfig)) -> NotionSource {
    let env = BTreeMap::from([("NOTION_TOKEN".to_string(), NOTION_TOKEN.to_string())]);
    let mut config = NotionConfig::with_key(SecretRef::env("NOTION_TOKEN"));
    config.api_url = Some(server.url.clone());
    config.http.min_backoff_ms = 20;
    config.http.requests_per_second = Some(1000.0);
    tweak(&mut config);
    NotionSource::new("notion", config, &env).unwrap()
}

fn select(name: &str) -> serde_json::Value {
    json!({ "type": "select", "select": { "id": "s1", "name": name, "color": "green" } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notion_databases_and_page_trees_then_only_edited_pages_are_fetched() {
    let server = NotionServer::start(NOTION_TOKEN).await;
    server.set_page_size(2);
    let recipes = server.add_database(None, "Recipes");
    let bread = server.add_row(
        &recipes,
        "Sourdough",
        vec![("Status", select("Tested")), ("Tags", json!({ "type": "multi_select", "multi_select": [{ "name": "bread" }, { "name": "slow" }] }))],
        &[
            NotionBlock::heading(2, "Method"),
            NotionBlock::numbered("Feed the starter"),
            NotionBlock::numbered("Fold the dough"),
            NotionBlock::toggle("Troubleshooting", vec![NotionBlock::paragraph("A flat loaf means a weak starter.")]),
        ],
    );
    let soup = server.add_row(
        &recipes,
        "Leek soup",
        vec![("Status", select("Draft"))],
        &[NotionBlock::paragraph("Leeks want slow cooking.")],
    );
    server.add_row(
        &recipes,
        "Pancakes",
        vec![],
        &[NotionBlock::paragraph("Pancakes need a hot pan.")],
    );
    let handbook = server.add_page(
        "Handbook",
        &[
            NotionBlock::paragraph("Welcome to the team handbook."),
            NotionBlock::table(&[&["Day", "Meeting"], &["Monday", "Planning"]]),
        ],
    );
    let onboarding = server.add_child_page(
        &handbook,
        "Onboarding",
        &[NotionBlock::todo("Get a laptop", false)],
    );
    let deep = server.add_child_page(
        &onboarding,
        "Security",
        &[NotionBlock::callout("🔒", "Use a password manager.")],
    );
    let projects = server.add_database(Some(&handbook), "Projects");
    server.add_row(
        &projects,
        "Lighthouse",
        vec![("Status", select("Active"))],
        &[NotionBlock::code("rust", "fn beacon() {}")],
    );
    server.add_page(
        "Not shared with this source",
        &[NotionBlock::paragraph("elsewhere")],
    );
    let index = Index::new();
    let source = notion(&server, |c| {
        c.database_ids = vec![recipes.clone()];
        c.page_ids = vec![handbook.clone()];
    });

    let first = index.sync(&source).await;
    assert_eq!((first.created, first.failed), (7, 0), "{first:?}");
    assert_eq!(server.count("search"), 0);
    assert_eq!(index.top_title("weak starter flat loaf").await, "Sourdough");
    assert_eq!(index.top_title("password manager").await, "Security");
    assert_eq!(index.top_title("beacon").await, "Lighthouse");
    let tables = index.engine.tables("alice").await.unwrap();
    let row = tables
        .docs_where(Some(format!("source_uri = 'notion:{bread}.md'")))
        .await
        .unwrap();
    let metadata: serde_json::Value = serde_json::from_str(&row[0].metadata_json).unwrap();
    assert_eq!(metadata["properties"]["Status"], "Tested", "{metadata}");
    assert_eq!(metadata["properties"]["Tags"], "bread, slow");
    assert!(
        metadata["properties"]["notion_url"]
            .as_str()
            .unwrap()
            .starts_with("https://www.notion.so/")
    );
    let chunk = tables.fetch_chunks(&[row[0].doc_id.clone()]).await.unwrap();
    let body: String = chunk.iter().map(|c| c.chunk_text.as_str()).collect();
    assert!(
        body.contains("1. Feed the starter\n2. Fold the dough"),
        "{body}"
    );

    // Nothing changed: the listing only (database pages of 2, one request per tree page),
    // no blocks fetched, nothing written.
    server.clear_requests();
    let again = index.sync(&source).await;
    assert_eq!(
        (again.unchanged, again.created, again.updated),
        (7, 0, 0),
        "{again:?}"
    );
    let counts = server.counts();
    assert_eq!(counts.get("blocks.children.list"), None, "{counts:?}");
    assert_eq!(counts["pages.retrieve"], 3, "{counts:?}");
    assert_eq!(
        counts["databases.query"], 3,
        "two pages of Recipes, one of Projects: {counts:?}"
    );

    // One row edited: only its blocks are fetched; one archived; one page unshared.
    server.set_blocks(
        &soup,
        &[NotionBlock::paragraph("Leeks and potatoes, slowly.")],
    );
    server.archive(&bread);
    server.unshare(&deep);
    server.clear_requests();
    let changed = index.sync(&source).await;
    assert_eq!(
        (changed.updated, changed.deleted, changed.failed),
        (1, 2, 0),
        "{changed:?}"
    );
    assert_eq!(
        server.count("blocks.children.list"),
        1,
        "only the edited row's blocks: {:?}",
        server.counts()
    );
    assert_eq!(index.top_title("potatoes").await, "Leek soup");
    assert!(!index.uris().await.contains(&format!("notion:{deep}.md")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notion_everything_shared_through_search_and_failures_delete_nothing() {
    let server = NotionServer::start(NOTION_TOKEN).await;
    server.set_page_size(2);
    for (title, body) in [
        ("Alpha", "alpha notes"),
        ("Beta", "beta notes"),
        ("Gamma", "gamma notes"),
    ] {
        server.add_page(title, &[NotionBlock::paragraph(body)]);
    }
    let db = server.add_database(None, "Tasks");
    server.add_row(
        &db,
        "Write report",
        vec![],
        &[NotionBlock::paragraph("report due friday")],
    );
    let index = Index::new();
    let source = notion(&server, |_| {});
    let first = index.sync(&source).await;
    assert_eq!(first.created, 4, "{first:?}");
    assert!(server.count("search") >= 2, "paged: {:?}", server.counts());

    // The second search page fails (after its retries): an error, nothing deleted.
    let strict = notion(&server, |c| c.http.max_retries = 1);
    server.fail_after("search", 1, 100);
    let err = index.try_sync(&strict).await.unwrap_err().to_string();
    assert!(err.contains("search") && err.contains("500"), "{err}");
    assert_eq!(index.uris().await.len(), 4);

    // A wrong token: a clear error naming Notion, nothing deleted, the token never shown.
    server.fail("search", 0);
    let mut config = NotionConfig::with_key(SecretRef::inline("ntn_wrong-token"));
    config.api_url = Some(server.url.clone());
    let wrong = NotionSource::new("notion", config, &BTreeMap::new()).unwrap();
    let err = index.try_sync(&wrong).await.unwrap_err().to_string();
    assert!(
        err.contains("Notion refused the integration token"),
        "{err}"
    );
    assert!(!err.contains("ntn_wrong-token"));
    assert_eq!(index.uris().await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notion_an_edit_within_the_same_rounded_minute_is_not_missed() {
    let server = NotionServer::start(NOTION_TOKEN).await;
    server.stamp_real_time();
    let page = server.add_page(
        "Draft",
        &[NotionBlock::paragraph("first version of the draft")],
    );
    let index = Index::new();
    let source = notion(&server, |c| c.page_ids = vec![page.clone()]);
    assert_eq!(index.sync(&source).await.created, 1);
    // Edited again at once: Notion's last_edited_time, rounded to the minute, may not move.
    server.set_blocks(
        &page,
        &[NotionBlock::paragraph("second version with zebras")],
    );
    let next = index.sync(&source).await;
    assert_eq!(next.updated, 1, "{next:?}");
    assert_eq!(index.top_title("zebras").await, "Draft");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notion_a_run_stopped_mid_way_converges() {
    let server = NotionServer::start(NOTION_TOKEN).await;
    let db = server.add_database(None, "Notes");
    let rows: Vec<String> = (0..3)
        .map(|i| {
            server.add_row(
                &db,
                &format!("Note {i}"),
                vec![],
                &[NotionBlock::paragraph(&format!("note number {i}"))],
            )
        })
        .collect();
    let index = Index::new();
    let source = Arc::new(notion(&server, |c| c.database_ids = vec![db.clone()]));
    assert_eq!(index.sync(source.as_ref()).await.created, 3);

    // Two rows edited; the listing passes, then every block request is told to wait 30 s.
    server.set_blocks(&rows[0], &[NotionBlock::paragraph("apples and pears")]);
    server.set_blocks(&rows[2], &[NotionBlock::paragraph("cherries and plums")]);
    server.clear_requests();
    server.throttle_after(1, 10, 30);
    abort_sync_when(&index, source.clone(), Duration::ZERO, || {
        server.count("blocks.children.list") >= 1
    })
    .await;

    server.clear_throttle();
    let replay = index.sync(source.as_ref()).await;
    assert_eq!((replay.updated, replay.failed), (2, 0), "{replay:?}");
    assert_eq!(index.top_title("cherries plums").await, "Note 2");
    index.assert_no_duplicate_chunks().await;
    assert_eq!(index.sync(source.as_ref()).await.unchanged, 3);
}
