//! `sync-cli`: lancesync from the command line.
//!
//! Exit codes: 0 success, 1 failure, 2 invalid configuration or usage, 3 deletions withheld by
//! the mass-delete guard, 4 finished with some documents failed.

mod cli;
mod commands;
mod config_cmd;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Before any thread starts: index builds and compaction otherwise peak far higher.
    lancesync::tune_allocator();
    // Indexes, uploads and state are private to the service account (umask 077).
    lancesync::private_files();
    // PDFs are parsed in copies of this program, bounded in memory and time; in such a copy
    // this call serves and exits.
    lancesync::ingest::enable_pdf_isolation();
    let cli = cli::Cli::parse();
    init_tracing();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", output::terminal(&format!("{err:#}")));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    let opts = cli.load_options();
    match cli.command {
        cli::Command::Config(cmd) => config_cmd::run(cmd, &opts),
        command => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(commands::run(command, &opts))
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings), so stdout stays parseable.
fn init_tracing() {
    let filter =
        // lance's scanner warns about its own future API changes on every search: not for users.
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| "warn,lance::dataset::scanner=error".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
