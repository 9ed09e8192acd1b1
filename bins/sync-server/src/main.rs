//! `sync-server`: lancesync's REST API and orchestrator in one process.
//!
//! Reads the configuration like `sync-cli` (defaults, TOML file, `.env`, environment,
//! `--set`), starts the orchestrator (every user's sources on their schedules), serves the
//! API on API_HOST:API_PORT, and shuts down gracefully on SIGINT or SIGTERM: the listener
//! stops, requests in flight finish, runs get a grace period and are then abandoned safely.
//!
//! What the server does is `lancesync_server::run`; this file parses, initialises and calls it.
//!
//! Exit codes: 0 after a clean shutdown, 1 on failure, 2 on invalid configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
    let options = lancesync_server::ServerOptions {
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
    };
    let outcome = runtime.block_on(lancesync_server::run(
        config,
        opts.env,
        options,
        shutdown_signal(),
    ));
    // Work abandoned at shutdown (a document still being chunked or embedded on a blocking
    // thread) must not keep the process alive: give it a moment, then exit regardless.
    runtime.shutdown_timeout(Duration::from_secs(2));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
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
