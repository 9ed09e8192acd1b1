//! Remote sources through the API.

use super::*;

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
    // So is a type this build does not have, with the types it has.
    let r = s
        .post("/api/v1/sources", Some(ADMIN), json!({ "user_id": "alice", "source_id": "sp", "source_type": "sharepoint", "config": {} }))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.error().1.contains("unknown source type \"sharepoint\"")
            && r.error().1.contains("google_drive"),
        "{}",
        r.text
    );

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
    // A dry run first: the plan, its cost, and nothing written or recorded as a run.
    let r = s
        .post(
            "/api/v1/sources/dropbox/dbx/scan?wait=60&dry_run=true",
            Some(ALICE),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let planned = r.json();
    assert_eq!(planned["kind"], "dry-run", "{}", r.text);
    assert_eq!(planned["report"]["dry_run"], true, "{}", r.text);
    let mut created: Vec<String> = planned["report"]["plan"]["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    created.sort();
    assert_eq!(
        created,
        ["dropbox:/garden/compost.txt", "dropbox:/garden/tomatoes.md"]
    );
    assert!(
        planned["report"]["plan"]["cost"]["tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    let r = s.get("/api/v1/sources/dropbox/dbx", Some(ALICE)).await;
    assert!(r.json()["last_report"].is_null(), "{}", r.text);
    let r = s
        .post(
            "/api/v1/search",
            Some(ALICE),
            json!({ "query": "tomatoes" }),
        )
        .await;
    assert_eq!(r.json()["results"], json!([]), "{}", r.text);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_is_changed_and_keeps_the_credentials_left_out() {
    use lancesync_testkit::DropboxServer;

    let dropbox = DropboxServer::start("sl.inline-token-secret").await;
    dropbox.put(
        "/Garden/Tomatoes.md",
        b"# Tomatoes\n\nWater tomatoes deeply.",
    );
    dropbox.put(
        "/Garden/Beds/Beans.md",
        b"# Beans\n\nBeans climb their poles.",
    );
    let s = server(&[]);
    let patch = |body: serde_json::Value, token: &'static str| {
        s.call(
            Method::PATCH,
            "/api/v1/sources/dropbox/dbx",
            Some(token),
            Some(Body::from(body.to_string())),
        )
    };
    let r = s
        .post(
            "/api/v1/sources",
            Some(ADMIN),
            json!({ "user_id": "alice", "source_id": "dbx", "source_type": "dropbox", "enabled": false, "config": {
                "path": "/Garden", "access_token": "sl.inline-token-secret",
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
    assert_eq!(r.json()["report"]["created"], 2, "{}", r.text);

    // New settings without the token: the stored token is kept (never shown back), and the
    // next run lists the new folder in full.
    let r = patch(
        json!({ "user_id": "alice", "config": {
            "path": "/Garden/Beds", "api_url": dropbox.url, "content_url": dropbox.url } }),
        ADMIN,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let changed = r.json();
    assert_eq!(changed["config"]["path"], "/Garden/Beds", "{changed}");
    assert_ne!(
        changed["config"]["access_token"], "sl.inline-token-secret",
        "masked: {changed}"
    );
    assert!(
        changed["config"]["access_token"].is_string(),
        "kept: {changed}"
    );
    let r = s
        .post(
            "/api/v1/sources/dropbox/dbx/scan?wait=60",
            Some(ALICE),
            json!({}),
        )
        .await;
    let report = &r.json()["report"];
    assert!(
        r.json()["error"].is_null(),
        "the kept token still works: {}",
        r.text
    );
    assert_eq!(
        report["deleted"], 1,
        "the tomato note is outside the folder now: {report}"
    );
    assert_eq!(report["unchanged"], 1, "{report}");

    // Alice may change her schedule, but not point the source elsewhere; a typo names the key.
    let r = patch(json!({ "enabled": true, "poll_interval": 900 }), ALICE).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["poll_interval_seconds"], 900);
    let r = patch(
        json!({ "config": { "path": "/Garden", "api_url": "http://127.0.0.1:9/evil" } }),
        ALICE,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.error().1.contains("api_url"), "{}", r.text);
    let r = patch(
        json!({ "user_id": "alice", "config": { "paht": "/x" } }),
        ADMIN,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.error().1.contains("paht"), "{}", r.text);
    let r = s
        .call(
            Method::PATCH,
            "/api/v1/sources/dropbox/nope",
            Some(ALICE),
            Some(Body::from(json!({ "enabled": false }).to_string())),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}
