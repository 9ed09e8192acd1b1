//! The common flows, end to end.

use super::*;

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
        let score = v["results"][0]["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score), "{mode}: {v}");
    }
    // A hybrid search may weigh its halves itself: 0 is full text alone, best hit 1.
    let r = s
        .post(
            "/api/v1/search",
            Some(ALICE),
            json!({ "query": "watering tomatoes", "vector_weight": 0.0 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["results"][0]["score"], 1.0, "{}", r.text);
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
    // Every source type and its settings are documented, from the source types themselves.
    let schemas = &spec["components"]["schemas"];
    assert_eq!(
        schemas["SourceType"]["enum"],
        json!([
            "local_filesystem",
            "s3",
            "dropbox",
            "google_drive",
            "notion"
        ])
    );
    for name in [
        "LocalFsConfig",
        "S3SourceConfig",
        "DropboxConfig",
        "GoogleDriveConfig",
        "NotionConfig",
        "FilterSettings",
        "HttpSettings",
    ] {
        assert!(schemas[name].is_object(), "{name} documented");
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
async fn check_finds_drift_repairs_it_and_stays_within_the_user() {
    let s = server(&[]);
    let docs = s.folder(
        "alice-check",
        &[
            ("kept.md", "# Kept\n\nKept notes about kale."),
            ("gone.md", "# Gone\n\nNotes about gourds, soon removed."),
        ],
    );
    let job = s.add_and_scan("alice", "notes", &docs).await;
    assert_eq!(job["report"]["created"], 2, "{job}");
    let r = s.post("/api/v1/check", Some(ALICE), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["consistent"], true, "{}", r.text);

    std::fs::remove_file(docs.join("gone.md")).unwrap();
    std::fs::write(docs.join("new.md"), "# New\n\nNotes about nasturtiums.").unwrap();
    let r = s.post("/api/v1/check", Some(ALICE), json!({})).await;
    let found = r.json();
    assert_eq!(found["consistent"], false, "{found}");
    let kinds: Vec<&str> = found["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["not_indexed", "gone_from_source"], "{found}");

    // Bob cannot check alice's index; an unknown source is a 404.
    let r = s
        .post("/api/v1/check?user_id=alice", Some(BOB), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = s
        .post("/api/v1/check?source_id=nope", Some(ALICE), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    let r = s
        .post("/api/v1/check?repair=true", Some(ALICE), json!({}))
        .await;
    let repaired = r.json();
    assert_eq!(repaired["consistent"], true, "{repaired}");
    assert_eq!(repaired["remaining"], json!([]));
    assert_eq!(repaired["repair"]["runs"][0]["created"], 1, "{repaired}");
    assert_eq!(repaired["repair"]["runs"][0]["deleted"], 1, "{repaired}");
    let r = s
        .post(
            "/api/v1/check?source_id=notes&deep=true",
            Some(ALICE),
            json!({}),
        )
        .await;
    assert_eq!(r.json()["consistent"], true, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_is_a_job_that_moves_to_the_configured_embedder_keeps_uploads_and_rolls_back() {
    let s = server(&[]);
    let docs = s.folder(
        "alice-reindex",
        &[
            ("kale.md", "# Kale\n\nKale grows through the winter."),
            ("figs.md", "# Figs\n\nFigs ripen at the end of summer."),
        ],
    );
    let job = s.add_and_scan("alice", "notes", &docs).await;
    assert_eq!(job["report"]["created"], 2, "{job}");
    let r = s
        .upload(
            ALICE,
            "quince.md",
            b"# Quince\n\nQuince jelly needs patience.",
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);

    // The deployment restarts with longer vectors: searches answer from the tables as they
    // are (with their embedder), writes wait for the re-index.
    let s2 = server_sharing(&s, &[("EMBEDDING_DIMENSION", "128")]).await;
    let search = |body| s2.post("/api/v1/search", Some(ALICE), body);
    let r = search(json!({ "query": "quince jelly" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.json()["results"][0]["source_uri"]
            .as_str()
            .unwrap()
            .ends_with("quince.md")
    );
    let r = s2
        .post("/api/v1/reindex?user_id=alice", Some(BOB), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

    let r = s2
        .post("/api/v1/reindex?wait=120", Some(ALICE), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let job = r.json();
    assert_eq!(job["kind"], "reindex", "{job}");
    assert_eq!(job["state"], "succeeded", "{job}");
    let result = &job["result"];
    assert_eq!(result["embedder_before"]["dimension"], 384, "{job}");
    assert_eq!(result["embedder"]["dimension"], 128, "{job}");
    assert_eq!(result["documents"], 3, "{job}");
    let sources: Vec<&str> = result["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["source_id"].as_str().unwrap())
        .collect();
    assert!(
        sources.contains(&"notes") && sources.contains(&"uploads"),
        "{job}"
    );
    // Progress counted every document read.
    assert_eq!(
        (job["done"].as_u64(), job["total"].as_u64()),
        (Some(3), Some(3)),
        "{job}"
    );
    let status = s2.get("/api/v1/sync/status", Some(ALICE)).await.json();
    assert_eq!(status["status"]["embedder"]["dimension"], 128, "{status}");
    assert_eq!(
        status["previous_generation"]["embedder"]["dimension"], 384,
        "{status}"
    );
    let r = search(json!({ "query": "quince jelly" })).await;
    assert!(
        r.json()["results"][0]["source_uri"]
            .as_str()
            .unwrap()
            .ends_with("quince.md")
    );
    // The re-indexed tables take writes again.
    std::fs::write(
        docs.join("pears.md"),
        "# Pears\n\nPears keep in a cool cellar.",
    )
    .unwrap();
    let r = s2
        .post(
            "/api/v1/sources/local_filesystem/notes/scan?wait=60",
            Some(ALICE),
            json!({}),
        )
        .await;
    let job = r.json();
    assert_eq!(job["report"]["created"], 1, "{job}");

    let r = s2
        .post(
            "/api/v1/reindex?rollback=true&wait=120",
            Some(ALICE),
            json!({}),
        )
        .await;
    let job = r.json();
    assert_eq!(job["kind"], "rollback", "{job}");
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["embedder"]["dimension"], 384, "{job}");
    let status = s2.get("/api/v1/sync/status", Some(ALICE)).await.json();
    assert!(status["previous_generation"].is_null(), "{status}");
    let r = search(json!({ "query": "quince jelly" })).await;
    assert!(
        r.json()["results"][0]["source_uri"]
            .as_str()
            .unwrap()
            .ends_with("quince.md")
    );
    let r = s2
        .post(
            "/api/v1/reindex?rollback=true&wait=120",
            Some(ALICE),
            json!({}),
        )
        .await;
    let job = r.json();
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("no earlier generation"),
        "{job}"
    );
}
