//! Uploads and documents given in the request.

use super::*;

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
