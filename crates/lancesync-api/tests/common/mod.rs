//! The test server shared by the API's test files: a router over a real orchestrator and
//! engine in a temp dir, with an admin and two user tokens.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use lancesync_api::Api;
use lancesync_config::{Config, EnvFile, LoadOptions};
use lancesync_engine::{
    Engine, EngineConfig, embedder_from_settings, embedder_resolver_from_settings,
};
use lancesync_orchestrator::Orchestrator;
use serde_json::{Value, json};
use tower::ServiceExt;

pub const ADMIN: &str = "admin-token-0123456789abcdef";
pub const ALICE: &str = "alice-token-0123456789abcdef";
pub const BOB: &str = "bob-token-0123456789abcdef";

pub struct Server {
    pub router: Router,
    _work: Option<tempfile::TempDir>,
    pub work: PathBuf,
}

pub fn server(extra: &[(&str, &str)]) -> Server {
    let work = tempfile::tempdir().unwrap();
    let w = work.path().to_path_buf();
    let (mut s, _) = server_in(w, extra, None);
    s._work = Some(work);
    s
}

/// A second server on `other`'s folders (data, state, sources), started as `sync-server`
/// starts (the registered sources loaded): the same deployment restarted with other settings.
pub async fn server_sharing(other: &Server, extra: &[(&str, &str)]) -> Server {
    let (s, orchestrator) = server_in(other.work.clone(), extra, None);
    orchestrator.initialize().await.unwrap();
    s
}

/// A server whose engine is coordinated by `coordinator` (one instance of a cluster), started
/// as `sync-server` starts.
pub async fn server_coordinated(
    coordinator: lancesync_coordinator::SharedCoordinator,
) -> (Server, Orchestrator) {
    let work = tempfile::tempdir().unwrap();
    let (mut s, orchestrator) = server_in(work.path().to_path_buf(), &[], Some(coordinator));
    s._work = Some(work);
    orchestrator.initialize().await.unwrap();
    (s, orchestrator)
}

fn server_in(
    w: PathBuf,
    extra: &[(&str, &str)],
    coordinator: Option<lancesync_coordinator::SharedCoordinator>,
) -> (Server, Orchestrator) {
    let mut env = BTreeMap::new();
    for (k, v) in [
        ("HOME", w.display().to_string()),
        ("LANCEDB_URI", w.join("db").display().to_string()),
        ("SYNC_STATE_DIR", w.join("state").display().to_string()),
        ("CHUNK_CHARACTERS", "300".into()),
        ("CHUNK_OVERLAP", "50".into()),
        ("ENABLE_SOURCE_MONITORING", "false".into()),
        ("API_ADMIN_TOKEN", ADMIN.into()),
        ("API_USER_TOKENS", format!("alice={ALICE},bob={BOB}")),
        ("API_MAX_BODY_MB", "1".into()),
    ] {
        env.insert(k.to_string(), v);
    }
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    let opts = LoadOptions {
        env,
        config_file: None,
        env_file: EnvFile::Disabled,
        overrides: Vec::new(),
        working_dir: w.clone(),
    };
    let config = Config::load(&opts).expect("valid configuration");
    let settings = config.settings().clone();
    let mut engine = Engine::new(
        EngineConfig::from_config(&config).unwrap(),
        embedder_from_settings(&settings).unwrap(),
    )
    .unwrap()
    .with_embedder_resolver(embedder_resolver_from_settings(&settings));
    if let Some(coordinator) = coordinator {
        engine = engine.with_coordinator(coordinator);
    }
    let engine = Arc::new(engine);
    // The process environment the orchestrator builds sources with (`env:VAR` credentials).
    let orchestrator = Orchestrator::new(settings, opts.env.clone(), engine);
    orchestrator.start();
    let router = Api::new(orchestrator.clone(), Arc::new(config)).router();
    let server = Server {
        router,
        _work: None,
        work: w,
    };
    (server, orchestrator)
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }
    /// A 4xx/5xx must be JSON `{error, message}`.
    pub fn error(&self) -> (String, String) {
        let v = self.json();
        (
            v["error"].as_str().expect("error code").to_string(),
            v["message"].as_str().expect("message").to_string(),
        )
    }
}

impl Server {
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Body>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(b),
            None => req.body(Body::empty()),
        }
        .unwrap();
        self.send(req).await
    }
    pub async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
    pub async fn get(&self, uri: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, uri, token, None).await
    }
    pub async fn post(&self, uri: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, uri, token, Some(Body::from(body.to_string())))
            .await
    }
    pub async fn delete(&self, uri: &str, token: Option<&str>) -> Reply {
        self.call(Method::DELETE, uri, token, None).await
    }

    pub fn folder(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.work.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, text) in files {
            std::fs::write(dir.join(file), text).unwrap();
        }
        dir
    }

    pub async fn add_and_scan(&self, user: &str, id: &str, dir: &Path) -> Value {
        let r = self
            .post(
                "/api/v1/sources",
                Some(ADMIN),
                json!({ "user_id": user, "source_id": id, "config": { "watch_paths": [dir] } }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let r = self
            .post(
                &format!("/api/v1/sources/local_filesystem/{id}/scan?user_id={user}&wait=60"),
                Some(ADMIN),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json()
    }
}

/// A multipart body with one `file` field, and its content type.
pub fn multipart(filename: &str, content: &[u8]) -> (String, Vec<u8>) {
    let boundary = "lancesync-test-boundary-7d2f";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

impl Server {
    /// Upload `content` as `filename` with `token`.
    pub async fn upload(&self, token: &str, filename: &str, content: &[u8]) -> Reply {
        let (content_type, body) = multipart(filename, content);
        let req = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/documents")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap();
        self.send(req).await
    }
}
