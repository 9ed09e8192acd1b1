//! The index commands, a file a group: [`sync`](mod@sync) (sync, retry, watch),
//! [`index`] (search, status, failed, reindex), [`sources`](mod@sources),
//! [`storage`] (backup, restore, storage status) and [`migrate`](mod@migrate). Each prints text, or JSON with `--json`.

mod check;
mod index;
mod migrate;
mod sources;
mod storage;
mod sync;

use std::process::ExitCode;

use lancesync_config::{Config, LoadOptions, Settings};
use lancesync_engine::{
    Engine, EngineConfig, embedder_from_settings, embedder_resolver_from_settings,
};
use lancesync_sources::SourceRegistry;

use crate::cli::{Command, StorageCommand, UserArgs};
use crate::output::terminal;

use check::check;
use index::{failed, reindex, search, status};
use migrate::migrate;
use sources::sources;
use storage::{backup, restore, storage_status};
use sync::{sync, watch};

/// Exit codes beyond 0 (success) and 1 (failure).
pub mod exit {
    /// Invalid configuration or usage.
    pub const INVALID: u8 = 2;
    /// Deletions withheld by the mass-delete guard.
    pub const MASS_DELETE_BLOCKED: u8 = 3;
    /// The run finished, but some documents failed.
    pub const DOCUMENTS_FAILED: u8 = 4;
    /// Another run of the same source is in progress; nothing was done.
    pub const BUSY: u8 = 5;
    /// `check` found problems (or, with `--repair`, some are left).
    pub const PROBLEMS_FOUND: u8 = 6;
}

/// What every index command needs.
struct Ctx {
    settings: Settings,
    env: std::collections::BTreeMap<String, String>,
    engine: Engine,
}

impl Ctx {
    fn registry(&self, user: &str) -> anyhow::Result<SourceRegistry> {
        lancesync_engine::ids::validate_user_id(user)?;
        Ok(SourceRegistry::at(
            self.settings
                .monitoring
                .state_dir
                .join("users")
                .join(user)
                .join("sources.toml"),
        ))
    }
}

pub async fn run(cmd: Command, opts: &LoadOptions) -> anyhow::Result<ExitCode> {
    let config = match Config::load(opts) {
        Ok(c) => c,
        Err(lancesync_config::Error::Invalid { problems }) => {
            eprintln!("{}", lancesync_config::Problems(problems));
            return Ok(ExitCode::from(exit::INVALID));
        }
        Err(e) => return Err(e.into()),
    };
    let settings = config.settings().clone();
    let embedder = embedder_from_settings(&settings)?;
    let mut engine = Engine::new(EngineConfig::from_config(&config)?, embedder)?
        .with_embedder_resolver(embedder_resolver_from_settings(&settings));
    // Commands that write a user's tables hold the user cluster-wide, as the servers do, and
    // changes of sources are shared with every instance.
    if joins_coordinator(&cmd)
        && let Some(coordinator) = lancesync_coordinator::from_settings(&settings).await?
    {
        engine = engine.with_coordinator(coordinator);
    }
    let ctx = Ctx {
        settings,
        env: opts.env.clone(),
        engine,
    };
    match cmd {
        Command::Config(_) => unreachable!("handled before loading"),
        Command::Sync(args) => sync(&ctx, &args, false).await,
        Command::Retry(args) => sync(&ctx, &args, true).await,
        Command::Check(args) => check(&ctx, &args).await,
        Command::Watch(args) => watch(&ctx, &args).await,
        Command::Search(args) => search(&ctx, &args).await,
        Command::Status(user) => status(&ctx, &user).await,
        Command::Failed(user) => failed(&ctx, &user).await,
        Command::Cleanup(user) => {
            let n = ctx.engine.clear_failures(&user.user).await?;
            print(&user, &serde_json::json!({ "cleared": n }), || {
                format!(
                    "cleared {n} failure record(s); the next sync treats those documents as new"
                )
            })
        }
        Command::Reindex(args) => reindex(&ctx, &args).await,
        Command::Sources(cmd) => sources(&ctx, cmd).await,
        Command::Backup(args) => backup(&ctx, &args).await,
        Command::Restore(args) => restore(&ctx, &args).await,
        Command::Storage(StorageCommand::Status { json }) => storage_status(&ctx, json).await,
        Command::Migrate(args) => migrate(ctx, &args).await,
    }
}

/// Whether `cmd` may write a user's tables or change their sources.
fn joins_coordinator(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::Sync(_)
            | Command::Retry(_)
            | Command::Check(_)
            | Command::Watch(_)
            | Command::Cleanup(_)
            | Command::Reindex(_)
            | Command::Restore(_)
            | Command::Migrate(_)
            | Command::Sources(
                crate::cli::SourcesCommand::Remove { .. } | crate::cli::SourcesCommand::Add { .. }
            )
    )
}

fn print(
    user: &UserArgs,
    json: &serde_json::Value,
    text: impl FnOnce() -> String,
) -> anyhow::Result<ExitCode> {
    if user.json {
        println!("{}", serde_json::to_string_pretty(json)?);
    } else {
        println!("{}", terminal(&text()));
    }
    Ok(ExitCode::SUCCESS)
}
