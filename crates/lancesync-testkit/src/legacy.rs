//! A local stand-in for an application's previous ingestion path: an HTTP endpoint on
//! 127.0.0.1 that takes `multipart/form-data` posts of documents (lancesync's legacy
//! fallback, `LEGACY_FALLBACK_URL`), records each, and refuses files it is told to refuse.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

/// One document the endpoint received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyUpload {
    /// The text fields (`user_id`, `source_id`, `source_uri`, `filename`).
    pub fields: BTreeMap<String, String>,
    /// The `file` part's file name.
    pub file_name: String,
    /// The `file` part's bytes.
    pub bytes: Vec<u8>,
}

#[derive(Debug, Default)]
struct Shared {
    uploads: Vec<LegacyUpload>,
    refused: BTreeSet<String>,
}

/// The running stand-in; it stops when the test's runtime ends.
#[derive(Debug, Clone)]
pub struct LegacyIngestServer {
    /// The endpoint: `http://127.0.0.1:PORT/ingest`.
    pub url: String,
    shared: Arc<Mutex<Shared>>,
}

impl LegacyIngestServer {
    /// Start on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = axum::Router::new()
            .route("/ingest", post(ingest))
            .with_state(shared.clone());
        let addr = crate::serve(app).await;
        Self {
            url: format!("http://{addr}/ingest"),
            shared,
        }
    }

    /// Answer 422 for files of this name from now on.
    pub fn refuse(&self, file_name: &str) {
        self.shared
            .lock()
            .expect("legacy")
            .refused
            .insert(file_name.to_string());
    }

    /// What was taken so far.
    pub fn uploads(&self) -> Vec<LegacyUpload> {
        self.shared.lock().expect("legacy").uploads.clone()
    }
}

async fn ingest(State(shared): State<Arc<Mutex<Shared>>>, mut form: Multipart) -> Response {
    let mut upload = LegacyUpload {
        fields: BTreeMap::new(),
        file_name: String::new(),
        bytes: Vec::new(),
    };
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return (StatusCode::BAD_REQUEST, e.body_text()).into_response(),
        };
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            upload.file_name = field.file_name().unwrap_or_default().to_string();
            match field.bytes().await {
                Ok(b) => upload.bytes = b.to_vec(),
                Err(e) => return (StatusCode::BAD_REQUEST, e.body_text()).into_response(),
            }
        } else {
            match field.text().await {
                Ok(t) => {
                    upload.fields.insert(name, t);
                }
                Err(e) => return (StatusCode::BAD_REQUEST, e.body_text()).into_response(),
            }
        }
    }
    let mut s = shared.lock().expect("legacy");
    if upload.file_name.is_empty() {
        return (StatusCode::BAD_REQUEST, "no file part").into_response();
    }
    if s.refused.contains(&upload.file_name) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "this pipeline cannot read that file either",
        )
            .into_response();
    }
    s.uploads.push(upload);
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({ "status": "queued" })),
    )
        .into_response()
}
