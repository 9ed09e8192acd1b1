//! lancesync server: what `sync-server` does between reading its configuration and exiting,
//! as a library an application can call.
//!
//! [`run`] builds the engine, checks S3 ([`check_s3`]), adopts the original system's data when
//! `MIGRATE_EXISTING_DATA` asks ([`migrate_existing_data`]), listens where [`listen_host`] says
//! (loopback only while no API token is configured), starts the orchestrator, serves the API
//! until `shutdown` completes, then gives requests in flight and runs in progress one grace
//! period between them.
//!
//! ```no_run
//! # async fn demo(config: lancesync_config::Config) -> Result<(), lancesync_server::Error> {
//! let options = lancesync_server::ServerOptions::default();
//! let stop = async { let _ = tokio::signal::ctrl_c().await; };
//! lancesync_server::run(config, Default::default(), options, stop).await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use lancesync_config::{Config, Settings};
use lancesync_engine::{
    Engine, EngineConfig, Storage, embedder_from_settings, embedder_resolver_from_settings,
};

/// How the server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// Time, from the shutdown signal, that requests in flight and then runs in progress get
    /// to finish.
    pub shutdown_grace: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Why the server did not start, or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine could not be built or failed.
    #[error(transparent)]
    Engine(#[from] lancesync_engine::Error),
    /// The orchestrator failed to load the persisted sources.
    #[error(transparent)]
    Orchestrator(#[from] lancesync_orchestrator::Error),
    /// S3 refused or is missing where the server cannot do without it.
    #[error("S3 check failed at start-up: {0}")]
    S3(lancesync_storage::Error),
    /// `MIGRATE_EXISTING_DATA` could not be done.
    #[error("MIGRATE_EXISTING_DATA: {0}")]
    Migration(String),
    /// The address could not be listened on.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// `host:port`.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving failed: {0}")]
    Serve(std::io::Error),
    /// The coordinator of instances (`COORDINATOR_URL`) could not be joined.
    #[error(transparent)]
    Coordinator(#[from] lancesync_coordinator::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Run the server with `config` until `shutdown` completes; `env` expands paths and
/// credentials in source settings. Prints `sync-server listening on http://{address} ...` on
/// stderr once it accepts requests (tests and supervisors read the port from it).
pub async fn run(
    config: Config,
    env: BTreeMap<String, String>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let settings = config.settings().clone();
    let mut engine = Engine::new(
        EngineConfig::from_config(&config)?,
        embedder_from_settings(&settings)?,
    )?
    .with_embedder_resolver(embedder_resolver_from_settings(&settings))
    .with_search_memory(usize::try_from(settings.api.search_memory_bytes).unwrap_or(usize::MAX));
    if let Some(coordinator) = lancesync_coordinator::from_settings(&settings).await? {
        engine = engine.with_coordinator(coordinator);
    }
    let engine = Arc::new(engine);
    for note in config.notes() {
        tracing::info!("{note}");
    }
    tracing::info!(embedder = %engine.embedder(), "embedder ready");
    check_s3(engine.storage()).await?;
    if settings.integration.migrate_existing_data {
        migrate_existing_data(&engine, &settings, &env).await?;
    }
    let host = listen_host(&settings);
    let listener = tokio::net::TcpListener::bind((host.as_str(), settings.api.port))
        .await
        .map_err(|source| Error::Listen {
            address: format!("{host}:{}", settings.api.port),
            source,
        })?;
    let address = listener.local_addr().map_err(Error::Serve)?;

    let orchestrator = lancesync_orchestrator::Orchestrator::new(settings, env, engine);
    let sources = orchestrator.initialize().await?;
    orchestrator.start();
    let api = lancesync_api::Api::new(orchestrator.clone(), Arc::new(config));
    eprintln!("sync-server listening on http://{address} ({sources} source(s) loaded)");
    tracing::info!(%address, sources, "listening");

    let grace = options.shutdown_grace;
    let serve_options = lancesync_api::ServeOptions {
        shutdown_grace: grace,
        ..Default::default()
    };
    // One grace for both steps: requests in flight, then runs in progress.
    let signalled = Arc::new(OnceLock::new());
    let signal = {
        let signalled = signalled.clone();
        async move {
            shutdown.await;
            let _ = signalled.set(Instant::now());
        }
    };
    let router = api.router_with(lancesync_dashboard::Dashboard::new(api.clone()).router());
    lancesync_api::serve_with(listener, router, signal, serve_options)
        .await
        .map_err(Error::Serve)?;
    tracing::info!("stopped accepting requests; finishing runs");
    let spent = signalled
        .get()
        .map_or(Duration::ZERO, |at: &Instant| at.elapsed());
    orchestrator.shutdown(grace.saturating_sub(spent)).await;
    eprintln!("sync-server stopped");
    Ok(())
}

/// Where to listen: `API_HOST`, unless no API token is configured (then the API would be open
/// to the network): loopback only.
pub fn listen_host(settings: &Settings) -> String {
    if settings.api.auth_configured() {
        return settings.api.host.clone();
    }
    if settings.api.host != "127.0.0.1" && settings.api.host != "localhost" {
        tracing::warn!(
            configured = %settings.api.host,
            "no API token is configured (API_ADMIN_TOKEN, API_USER_TOKENS): listening on 127.0.0.1 only"
        );
    }
    "127.0.0.1".to_string()
}

/// At start-up: a missing bucket or refused credentials stop the server with a clear error;
/// S3 merely unreachable stops it only when S3 is the primary (local-primary modes serve
/// from local disk and queue their copies).
pub async fn check_s3(storage: &Storage) -> Result<()> {
    let Err(e) = storage.probe().await else {
        return Ok(());
    };
    let fatal = match &e {
        lancesync_storage::Error::Probe { failure, .. } => {
            failure.is_configuration() || storage.mode().s3_is_primary()
        }
        _ => true,
    };
    if fatal {
        return Err(Error::S3(e));
    }
    tracing::warn!(error = %e, "S3 does not answer; serving from local disk and queueing copies until it does");
    Ok(())
}

/// `MIGRATE_EXISTING_DATA`: adopt the original system's data before serving. Documents already
/// migrated are skipped, so every start may do it; unreadable original data stops the start,
/// while a user whose migration fails is logged and served as they are (the next start
/// tries again).
pub async fn migrate_existing_data(
    engine: &Arc<Engine>,
    settings: &Settings,
    env: &BTreeMap<String, String>,
) -> Result<()> {
    let options = lancesync_migrate::MigrateOptions::from_settings(settings).ok_or_else(|| {
        Error::Migration("MIGRATE_EXISTING_DATA=true needs LEGACY_LANCEDB_URI".into())
    })?;
    let migrator = lancesync_migrate::Migrator::new(engine.clone(), settings.clone(), env.clone());
    let report = migrator
        .run(&options)
        .await
        .map_err(|e| Error::Migration(format!("the original data cannot be migrated: {e}")))?;
    for user in &report.users {
        match &user.error {
            None => tracing::info!(user = %user.user_id, "{}", user.summary(false)),
            Some(_) => tracing::warn!(user = %user.user_id, "{}", user.summary(false)),
        }
    }
    let adopted: usize = report
        .users
        .iter()
        .map(|u| u.adopted + u.adopted_changed + u.kept_unmatched)
        .sum();
    let not_adopted: usize = report.users.iter().map(|u| u.not_adopted_documents()).sum();
    eprintln!(
        "migrated {} user(s) from {}: {adopted} document(s) adopted, {not_adopted} not adopted{}",
        report.users.len(),
        report.from,
        if report.complete() {
            String::new()
        } else {
            " (some users stopped: see the log)".to_string()
        }
    );
    Ok(())
}
