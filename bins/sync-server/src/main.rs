//! `sync-server`: lancesync's REST API and orchestrator in one process.
//!
//! Reads the configuration like `sync-cli` (defaults, TOML file, `.env`, environment,
//! `--set`), starts the orchestrator (every user's sources on their schedules), serves the
//! API on API_HOST:API_PORT, and shuts down gracefully on SIGINT or SIGTERM: the listener
//! stops, requests in flight finish, runs get a grace period and are then abandoned safely.
//!
//! Exit codes: 0 after a clean shutdown, 1 on failure, 2 on invalid configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use lancesync_config::{Config, EnvFile, LoadOptions};

/// lancesync's REST server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML config file [default: $LANCESYNC_CONFIG, else ./lancesync.toml when present]
    #[arg(long)]
    config: Option<PathBuf>,
    /// `.env` file [default: ./.env when present]
    #[arg(long)]
    env_file: Option<PathBuf>,
    /// Override a setting, above every other layer (repeatable): --set API_PORT=9000
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    overrides: Vec<(String, String)>,
    /// Seconds runs in progress get to finish at shutdown.
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

fn main() -> ExitCode {
    // Before any thread starts: index builds and compaction otherwise peak far higher.
    lancesync::tune_allocator();
    // Indexes, uploads and state are private to the service account (umask 077).
    lancesync::private_files();
    // PDFs are parsed in copies of this program, bounded in memory and time; in such a copy
    // this call serves and exits.
    lancesync::ingest::enable_pdf_isolation();
    let args = Args::parse();
    let mut opts = LoadOptions::from_process();
    opts.config_file = args.config.clone();
    if let Some(path) = &args.env_file {
        opts.env_file = EnvFile::Path(path.clone());
    }
    opts.overrides = args.overrides.clone();
    let config = match Config::load(&opts) {
        Ok(c) => c,
        Err(lancesync_config::Error::Invalid { problems }) => {
            eprintln!("{}", lancesync_config::Problems(problems));
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    init_tracing(config.settings().api.json_logs);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(serve(config, opts, args));
    // Work abandoned at shutdown (a document still being chunked or embedded on a blocking
    // thread) must not keep the process alive: give it a moment, then exit regardless.
    runtime.shutdown_timeout(Duration::from_secs(2));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,lance::dataset::scanner=error".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(config: Config, opts: LoadOptions, args: Args) -> anyhow::Result<()> {
    let settings = config.settings().clone();
    let engine = Arc::new(lancesync_engine::Engine::new(
        lancesync_engine::EngineConfig::from_config(&config)?,
        lancesync_engine::embedder_from_settings(&settings)?,
    )?);
    for note in config.notes() {
        tracing::info!("{note}");
    }
    tracing::info!(embedder = %engine.embedder(), "embedder ready");
    check_s3(engine.storage()).await?;
    if settings.integration.migrate_existing_data {
        migrate_existing_data(&engine, &settings, &opts.env).await?;
    }
    // Without any token the API would be open to the network: listen on loopback only.
    let host = if settings.api.auth_configured() {
        settings.api.host.clone()
    } else {
        if settings.api.host != "127.0.0.1" && settings.api.host != "localhost" {
            tracing::warn!(
                configured = %settings.api.host,
                "no API token is configured (API_ADMIN_TOKEN, API_USER_TOKENS): listening on 127.0.0.1 only"
            );
        }
        "127.0.0.1".to_string()
    };
    let listener = tokio::net::TcpListener::bind((host.as_str(), settings.api.port))
        .await
        .with_context(|| format!("cannot listen on {host}:{}", settings.api.port))?;
    let address = listener.local_addr()?;

    let orchestrator = lancesync_orchestrator::Orchestrator::new(settings, opts.env, engine);
    let sources = orchestrator.initialize().await?;
    orchestrator.start();
    let api = lancesync_api::Api::new(orchestrator.clone(), Arc::new(config));
    // Tests and supervisors read this line to learn the port (API_PORT=0 picks one).
    eprintln!("sync-server listening on http://{address} ({sources} source(s) loaded)");
    tracing::info!(%address, sources, "listening");

    let grace = Duration::from_secs(args.shutdown_grace);
    let serve_options = lancesync_api::ServeOptions {
        shutdown_grace: grace,
        ..Default::default()
    };
    // One grace for both steps: requests in flight, then runs in progress.
    let signalled = Arc::new(std::sync::OnceLock::new());
    let signal = {
        let signalled = signalled.clone();
        async move {
            shutdown_signal().await;
            let _ = signalled.set(std::time::Instant::now());
        }
    };
    lancesync_api::serve_with(listener, api.router(), signal, serve_options).await?;
    tracing::info!("stopped accepting requests; finishing runs");
    let spent = signalled
        .get()
        .map_or(Duration::ZERO, |at: &std::time::Instant| at.elapsed());
    orchestrator.shutdown(grace.saturating_sub(spent)).await;
    eprintln!("sync-server stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; Ctrl-C still works");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
    }
}

/// MIGRATE_EXISTING_DATA: adopt the original system's data before serving. Documents already
/// migrated are skipped, so every start may do it; unreadable original data stops the start,
/// while a user whose migration fails is logged and served as they are (the next start
/// tries again).
async fn migrate_existing_data(
    engine: &Arc<lancesync_engine::Engine>,
    settings: &lancesync_config::Settings,
    env: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let options = lancesync_migrate::MigrateOptions::from_settings(settings)
        .context("MIGRATE_EXISTING_DATA=true needs LEGACY_LANCEDB_URI")?;
    let migrator = lancesync_migrate::Migrator::new(engine.clone(), settings.clone(), env.clone());
    let report = migrator
        .run(&options)
        .await
        .context("MIGRATE_EXISTING_DATA: the original data cannot be migrated")?;
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

/// At start-up: a missing bucket or refused credentials stop the server with a clear error;
/// S3 merely unreachable stops it only when S3 is the primary (local-primary modes serve
/// from local disk and queue their copies).
async fn check_s3(storage: &lancesync_engine::Storage) -> anyhow::Result<()> {
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
        anyhow::bail!("S3 check failed at start-up: {e}");
    }
    tracing::warn!(error = %e, "S3 does not answer; serving from local disk and queueing copies until it does");
    Ok(())
}
