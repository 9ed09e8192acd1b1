//! Embed lancesync in your own axum application, as seed 000's "Direct Integration" does in
//! Python: the sync system starts with the application (sources loaded from
//! `SYNC_STATE_DIR`, schedules running), its REST API is mounted under `/sync`, the
//! application's own routes use the engine directly, and on shutdown the application stops
//! taking requests, then lets the runs in progress finish.
//!
//! Run: `API_ADMIN_TOKEN=secret cargo run --example axum_app`, then
//! `curl 'localhost:3000/ask?q=sourdough'` and
//! `curl -H 'Authorization: Bearer secret' localhost:3000/sync/api/v1/status`.
//! (`tests/axum_embedding.rs` runs this code end to end.)

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use lancesync::config::{Config, LoadOptions};
use lancesync::engine::{Engine, EngineConfig, SearchRequest, embedder_from_settings};
use lancesync_orchestrator::Orchestrator;
use serde::Deserialize;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// lancesync inside the application: started with it, stopped with it.
#[derive(Clone)]
pub struct SyncSystem {
    orchestrator: Orchestrator,
    api: lancesync_api::Api,
    /// The user this application's own routes search for (an application with sign-in takes
    /// it from the session instead).
    user: String,
}

impl SyncSystem {
    /// Load lancesync's settings (environment, `.env`, `lancesync.toml`, as `sync-server`
    /// does), open the engine, load the configured sources and start their schedules.
    pub async fn start(options: LoadOptions, user: &str) -> Result<Self, BoxError> {
        let env: BTreeMap<String, String> = options.env.clone();
        let config = Config::load(&options)?;
        let settings = config.settings().clone();
        let engine = Arc::new(Engine::new(
            EngineConfig::from_config(&config)?,
            embedder_from_settings(&settings)?,
        )?);
        let orchestrator = Orchestrator::new(settings, env, engine);
        let sources = orchestrator.initialize().await?;
        orchestrator.start();
        eprintln!("sync system started: {sources} source(s)");
        Ok(Self {
            api: lancesync_api::Api::new(orchestrator.clone(), Arc::new(config)),
            orchestrator,
            user: user.to_string(),
        })
    }

    /// The application's routes, with lancesync's REST API under `/sync`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(|| async { "my application" }))
            .route("/ask", get(ask))
            .with_state(self.clone())
            .nest("/sync", self.api.router())
    }

    /// Stop the schedules and wait up to `grace` for runs in progress.
    pub async fn stop(&self, grace: Duration) {
        self.orchestrator.shutdown(grace).await;
        eprintln!("sync system stopped");
    }
}

#[derive(Deserialize)]
struct Ask {
    q: String,
}

/// The application's own feature: answer from the user's documents.
async fn ask(State(system): State<SyncSystem>, Query(ask): Query<Ask>) -> impl IntoResponse {
    let request = SearchRequest {
        limit: 3,
        ..SearchRequest::new(&ask.q)
    };
    match system
        .orchestrator
        .engine()
        .search(&system.user, &request)
        .await
    {
        Ok(hits) => Json(serde_json::json!({
            "sources": hits.iter().map(|h| serde_json::json!({ "title": h.title, "uri": h.source_uri, "text": h.chunk_text })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("search failed: {e}"),
        )
            .into_response(),
    }
}

#[allow(dead_code)] // the test includes this file and runs `SyncSystem`, not `main`
fn main() -> Result<(), BoxError> {
    // As sync-server does: glibc's allocator tuned for large syncs, and PDFs parsed in
    // worker copies of this program (a worker started by it runs and exits here).
    lancesync::tune_allocator();
    // Indexes, uploads and state are private to the service account (umask 077).
    lancesync::private_files();
    lancesync::ingest::enable_pdf_isolation();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve())
}

#[allow(dead_code)]
async fn serve() -> Result<(), BoxError> {
    let system = SyncSystem::start(LoadOptions::from_process(), "default").await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    eprintln!("my application on http://{}", listener.local_addr()?);
    axum::serve(listener, system.router())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    system.stop(Duration::from_secs(30)).await;
    Ok(())
}
