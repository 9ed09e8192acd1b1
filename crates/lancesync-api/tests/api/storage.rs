//! Backup and restore through S3.

use super::*;

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
