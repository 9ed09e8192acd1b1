//! A local stand-in for OpenAI's `POST /v1/embeddings`, on 127.0.0.1, with scripted faults.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// An answer the server gives instead of embeddings, once, in order.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Answer with this status; with `Some(secs)`, also a `Retry-After` header.
    Status(u16, Option<u64>),
    /// Answer 200 with vectors of this (wrong) length.
    WrongDimension(usize),
}

#[derive(Debug, Default)]
struct Shared {
    dimension: usize,
    api_key: Option<String>,
    faults: VecDeque<Fault>,
    requests: usize,
    texts: usize,
    bodies: Vec<Value>,
}

/// The running server; it stops when the test's runtime ends.
#[derive(Debug, Clone)]
pub struct EmbeddingServer {
    /// Base URL to configure an embedder with, ending in `/v1`.
    pub base_url: String,
    shared: Arc<Mutex<Shared>>,
}

impl EmbeddingServer {
    /// Start on a free port of 127.0.0.1. With `api_key`, requests must carry
    /// `Authorization: Bearer {api_key}`.
    pub async fn start(dimension: usize, api_key: Option<&str>, faults: Vec<Fault>) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            dimension,
            api_key: api_key.map(String::from),
            faults: faults.into(),
            ..Default::default()
        }));
        let app = axum::Router::new()
            .route("/v1/embeddings", post(embeddings))
            .with_state(shared.clone());
        let addr = crate::serve(app).await;
        Self {
            base_url: format!("http://{addr}/v1"),
            shared,
        }
    }

    /// Requests received, faults included.
    pub fn requests(&self) -> usize {
        self.shared.lock().expect("lock").requests
    }

    /// Texts embedded successfully.
    pub fn texts_embedded(&self) -> usize {
        self.shared.lock().expect("lock").texts
    }

    /// The JSON bodies received.
    pub fn bodies(&self) -> Vec<Value> {
        self.shared.lock().expect("lock").bodies.clone()
    }

    /// The vector this server returns for `text`: deterministic, so tests can check order.
    pub fn vector_for(text: &str, dimension: usize) -> Vec<f32> {
        (0..dimension)
            .map(|j| (text.len() + j) as f32 / 1000.0)
            .collect()
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "message": message, "type": "invalid_request_error" } })),
    )
        .into_response()
}

async fn embeddings(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: Json<Value>,
) -> Response {
    let mut s = shared.lock().expect("lock");
    s.requests += 1;
    s.bodies.push(body.0.clone());
    if let Some(key) = &s.api_key {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if sent != Some(format!("Bearer {key}").as_str()) {
            return error(StatusCode::UNAUTHORIZED, "Incorrect API key provided");
        }
    }
    let mut dimension = s.dimension;
    match s.faults.pop_front() {
        Some(Fault::Status(code, retry_after)) => {
            let status = StatusCode::from_u16(code).expect("valid status");
            let mut response = error(status, "scripted fault");
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, secs.into());
            }
            return response;
        }
        Some(Fault::WrongDimension(d)) => dimension = d,
        None => {}
    }
    let inputs: Vec<String> = match &body.0["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "'input' must be a string or an array of strings",
            );
        }
    };
    if body.0["model"].as_str().is_none_or(str::is_empty) {
        return error(
            StatusCode::BAD_REQUEST,
            "you must provide a model parameter",
        );
    }
    s.texts += inputs.len();
    // Answer in reverse order: clients must sort by `index`.
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(i, text)| json!({ "object": "embedding", "index": i, "embedding": EmbeddingServer::vector_for(text, dimension) }))
        .collect();
    Json(json!({
        "object": "list",
        "data": data,
        "model": body.0["model"],
        "usage": { "prompt_tokens": inputs.len(), "total_tokens": inputs.len() },
    }))
    .into_response()
}
