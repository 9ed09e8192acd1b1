//! The index commands: sync, search, status, failed, retry, cleanup, reindex, sources.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use lancesync_config::{Config, LoadOptions, Settings};
use lancesync_engine::{
    Engine, EngineConfig, Progress, SearchMode, SearchRequest, SyncOptions, SyncReport,
    embedder_from_settings,
};
use lancesync_sources::{DocumentSource, LocalFsConfig, LocalFsSource, SourceRegistry, SourceSpec};

use crate::cli::{
    BackupArgs, Command, LayoutArg, MigrateArgs, Mode, ReindexArgs, RestoreArgs, SearchArgs,
    SourcesCommand, StorageCommand, SyncArgs, UserArgs, WatchArgs,
};
use crate::output::{one_line, terminal};

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
    let engine = Engine::new(EngineConfig::from_config(&config)?, embedder)?;
    let ctx = Ctx {
        settings,
        env: opts.env.clone(),
        engine,
    };
    match cmd {
        Command::Config(_) => unreachable!("handled before loading"),
        Command::Sync(args) => sync(&ctx, &args, false).await,
        Command::Retry(args) => sync(&ctx, &args, true).await,
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

async fn migrate(ctx: Ctx, args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let mut options = match (
        &args.from,
        lancesync_migrate::MigrateOptions::from_settings(&ctx.settings),
    ) {
        (Some(from), configured) => {
            let mut o = lancesync_migrate::MigrateOptions::new(from.clone());
            o.legacy_model = configured.and_then(|c| c.legacy_model);
            o
        }
        (None, Some(configured)) => configured,
        (None, None) => {
            eprintln!(
                "where is the original data? give --from DIR_OR_S3_URI, or set LEGACY_LANCEDB_URI"
            );
            return Ok(ExitCode::from(exit::INVALID));
        }
    };
    if let Some(model) = &args.legacy_model {
        options.legacy_model = Some(model.clone());
    }
    options.users = args.user.clone().map(|u| vec![u]);
    options.dry_run = args.dry_run;
    options.keep_unmatched = !args.skip_unmatched;
    options.layout = args.layout.map(|l| match l {
        LayoutArg::PerUser => lancesync_migrate::Layout::PerUser,
        LayoutArg::Shared => lancesync_migrate::Layout::Shared,
    });
    let migrator = lancesync_migrate::Migrator::new(
        Arc::new(ctx.engine),
        ctx.settings.clone(),
        ctx.env.clone(),
    );
    let report = migrator.run(&options).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", terminal(&report.summary()));
    }
    Ok(if report.complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Users with a local database.
fn local_users(ctx: &Ctx) -> Vec<String> {
    let mut users: Vec<String> = std::fs::read_dir(ctx.engine.config().base_dir.join("users"))
        .map(|dir| {
            dir.flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|u| lancesync_engine::ids::validate_user_id(u).is_ok())
                .collect()
        })
        .unwrap_or_default();
    users.sort();
    users
}

async fn backup(ctx: &Ctx, args: &BackupArgs) -> anyhow::Result<ExitCode> {
    let users = if args.all {
        local_users(ctx)
    } else {
        vec![args.user.user.clone()]
    };
    let mut results = Vec::new();
    let mut failed = false;
    for user in users {
        match ctx.engine.backup(&user).await {
            Ok(record) => {
                if !args.user.json {
                    println!(
                        "backed up user {user} to {}: {} file(s), {} bytes sent in {} request(s); versions {:?}",
                        ctx.engine
                            .storage()
                            .remote()
                            .map(|t| t.describe())
                            .unwrap_or_default(),
                        record.files,
                        record.bytes,
                        record.requests,
                        record.versions
                    );
                }
                results.push(serde_json::json!({ "user_id": user, "ok": true, "backup": record }));
            }
            Err(e) => {
                failed = true;
                eprintln!("error: backup of user {user}: {e}");
                results.push(
                    serde_json::json!({ "user_id": user, "ok": false, "error": e.to_string() }),
                );
            }
        }
    }
    if args.user.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn restore(ctx: &Ctx, args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let user = &args.user.user;
    let report = ctx.engine.restore(user, args.version).await?;
    print(&args.user, &serde_json::to_value(&report)?, || {
        let mut text = format!(
            "restored user {user} from {}: {} file(s), {} bytes downloaded; versions {:?}",
            report.from, report.transfer.files, report.transfer.bytes, report.versions
        );
        if let Some(kept) = &report.previous_kept_at {
            text.push_str(&format!(
                "\n  the database it replaced is kept at {} (remove it when satisfied)",
                kept.display()
            ));
        }
        text
    })
}

async fn storage_status(ctx: &Ctx, json: bool) -> anyhow::Result<ExitCode> {
    let status = ctx.engine.storage().status(&local_users(ctx)).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("storage mode: {}", status.mode);
    println!("primary:      {}", status.primary);
    if let Some(cache) = &status.cache {
        println!("cache:        {cache}");
    }
    if let Some(backup) = &status.backup {
        println!("backup:       {backup}");
    }
    println!(
        "backlog:      {} user(s) with changes not yet on S3",
        status.backlog
    );
    for u in &status.users {
        let s = &u.state;
        let last = s
            .last_backup
            .as_ref()
            .map(|b| format!("last backup {} (versions {:?})", b.at, b.versions))
            .unwrap_or_else(|| "never backed up".into());
        println!(
            "  {}: {:.2} MB local, {last}",
            u.user_id,
            u.local_bytes as f64 / 1e6
        );
        if let Some(since) = &s.pending_since {
            println!(
                "    pending since {since}, {} failed attempt(s){}",
                s.attempts,
                s.last_error
                    .as_ref()
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default()
            );
        }
        if let Some(c) = &s.conflict {
            println!("    CONFLICT: {c}");
        }
    }
    Ok(ExitCode::SUCCESS)
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

/// An ad-hoc source for folders named on the command line. Its id comes from the folders, so
/// syncing the same folders again is incremental.
fn adhoc_source(
    paths: &[PathBuf],
    env: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<LocalFsSource> {
    let mut absolute = Vec::new();
    for p in paths {
        let abs = std::fs::canonicalize(p).with_context(|| {
            format!(
                "cannot sync {}: it does not exist or cannot be read",
                p.display()
            )
        })?;
        absolute.push(
            abs.to_str()
                .with_context(|| format!("{} is not a UTF-8 path", abs.display()))?
                .to_string(),
        );
    }
    let name: String = Path::new(&absolute[0])
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                .take(40)
                .collect()
        })
        .filter(|n: &String| !n.is_empty() && n != "." && n != "..")
        .unwrap_or_else(|| "root".into());
    let hash = blake3::hash(absolute.join("\n").as_bytes()).to_hex();
    let id = format!("{name}-{}", &hash[..8]);
    Ok(LocalFsSource::new(id, LocalFsConfig::new(absolute), env)?)
}

/// A source with its own poll interval, if it has one.
type Scheduled = (Arc<dyn DocumentSource>, Option<u64>);

/// The sources a `sync` or `watch` acts on, with their poll intervals.
fn resolve_sources(ctx: &Ctx, args: &SyncArgs) -> anyhow::Result<Vec<Scheduled>> {
    let user = &args.user.user;
    if !args.paths.is_empty() {
        return Ok(vec![(Arc::new(adhoc_source(&args.paths, &ctx.env)?), None)]);
    }
    let specs = ctx.registry(user)?.list()?;
    let chosen: Vec<&SourceSpec> = match &args.source {
        Some(id) => specs.iter().filter(|s| &s.id == id).collect(),
        None => specs.iter().filter(|s| s.enabled).collect(),
    };
    if chosen.is_empty() {
        match &args.source {
            Some(id) => bail!(
                "user {user} has no source {id:?}; `sync-cli sources list --user {user}` shows them"
            ),
            None => bail!(
                "user {user} has no enabled sources: pass folders (`sync-cli sync PATH`) or add one (`sync-cli sources add ID PATH`)"
            ),
        }
    }
    chosen
        .into_iter()
        .map(|s| Ok((s.build(&ctx.env)?, s.poll_interval)))
        .collect()
}

async fn sync(ctx: &Ctx, args: &SyncArgs, retry: bool) -> anyhow::Result<ExitCode> {
    let sources: Vec<Arc<dyn DocumentSource>> = resolve_sources(ctx, args)?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    sync_sources(ctx, args, &sources, retry).await
}

async fn sync_sources(
    ctx: &Ctx,
    args: &SyncArgs,
    sources: &[Arc<dyn DocumentSource>],
    retry: bool,
) -> anyhow::Result<ExitCode> {
    let user = &args.user.user;
    let options = SyncOptions {
        allow_mass_delete: args.allow_mass_delete,
        retry_failed: retry,
    };
    let mut reports = Vec::new();
    let mut code = 0u8;
    for source in sources {
        let bar = Bar::new(!args.user.json && std::io::stderr().is_terminal());
        match ctx.engine.sync(user, source.as_ref(), options, &bar).await {
            Ok(report) => {
                bar.finish();
                if report.mass_delete_blocked.is_some() {
                    code = code.max(exit::MASS_DELETE_BLOCKED);
                } else if report.failed > 0 {
                    code = code.max(exit::DOCUMENTS_FAILED);
                }
                if !args.user.json {
                    println!("{}", terminal(&report_text(&report)));
                }
                reports.push(report);
            }
            Err(e) => {
                bar.finish();
                eprintln!("error: source {}: {e}", source.id());
                code = code.max(match e {
                    lancesync_engine::Error::Busy { .. } => exit::BUSY,
                    _ => 1,
                });
            }
        }
    }
    if args.user.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(if code == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(code)
    })
}

async fn watch(ctx: &Ctx, args: &WatchArgs) -> anyhow::Result<ExitCode> {
    use notify_debouncer_full::notify::RecursiveMode;

    let resolved = resolve_sources(ctx, &args.sync)?;
    let default_poll = ctx.settings.monitoring.default_poll_interval.as_secs();
    let poll = args
        .poll_interval
        .or_else(|| resolved.iter().filter_map(|(_, p)| *p).min())
        .unwrap_or(default_poll)
        .max(1);
    let sources: Vec<Arc<dyn DocumentSource>> = resolved.into_iter().map(|(s, _)| s).collect();

    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut debouncer = notify_debouncer_full::new_debouncer(
        Duration::from_millis(args.debounce_ms),
        None,
        move |result: notify_debouncer_full::DebounceEventResult| {
            if result.is_ok_and(|events| !events.is_empty()) {
                // A full channel already holds a wake-up: the next sync sees every change.
                let _ = tx.try_send(());
            }
        },
    )?;
    for source in &sources {
        for root in source.watch_roots() {
            match debouncer.watch(&root, RecursiveMode::Recursive) {
                Ok(()) => tracing::info!(path = %root.display(), "watching"),
                Err(e) => eprintln!(
                    "warning: cannot watch {}: {e}; it is still rescanned every {poll} s",
                    root.display()
                ),
            }
        }
    }
    eprintln!(
        "watching {} source(s); full rescan every {poll} s; Ctrl-C to stop",
        sources.len()
    );
    let mut code = sync_sources(ctx, &args.sync, &sources, false).await?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            woke = rx.recv() => if woke.is_none() { break },
            _ = tokio::time::sleep(Duration::from_secs(poll)) => {},
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
        code = sync_sources(ctx, &args.sync, &sources, false).await?;
    }
    eprintln!("stopped watching");
    Ok(code)
}

fn report_text(r: &SyncReport) -> String {
    let mut out = format!(
        "synced source {} for user {} in {:.2} s\n  created {}, updated {}, moved {}, touched {}, deleted {}, unchanged {}, failed {}",
        r.source_id,
        r.user_id,
        r.duration_ms as f64 / 1000.0,
        r.created,
        r.updated,
        r.moved,
        r.touched,
        r.deleted,
        r.unchanged,
        r.failed
    );
    out.push_str(&format!(
        "\n  {} chunks written, {:.2} MB read, {:.1} documents/s, {:.2} MB/s",
        r.chunks_written,
        r.bytes_read as f64 / 1e6,
        r.docs_per_sec,
        r.mb_per_sec
    ));
    if r.legacy > 0 {
        out.push_str(&format!(
            "\n  {} handed to the legacy fallback (LEGACY_FALLBACK_URL)",
            r.legacy
        ));
    }
    if r.waiting_retry > 0 {
        out.push_str(&format!(
            "\n  {} earlier failure(s) wait for a retry (`sync-cli failed`, `sync-cli retry`)",
            r.waiting_retry
        ));
    }
    if r.repaired > 0 {
        out.push_str(&format!(
            "\n  repaired the leftovers of an interrupted run ({} document(s))",
            r.repaired
        ));
    }
    for f in &r.failures {
        out.push_str(&format!(
            "\n  failed: {}: {}",
            one_line(&f.uri),
            one_line(&f.reason)
        ));
    }
    for i in &r.issues {
        out.push_str(&format!(
            "\n  skipped: {}: {} (nothing under it was deleted)",
            one_line(&i.uri),
            one_line(&i.reason)
        ));
    }
    if let Some(storage) = &r.storage {
        out.push_str(&format!("\n  {}", storage_text(storage)));
    }
    if let Some(b) = &r.mass_delete_blocked {
        out.push_str(&format!(
            "\n  deletions withheld: this run would delete {} of {} documents (more than {:.0}%); if that is intended, run again with --allow-mass-delete",
            b.would_delete,
            b.documents,
            b.max_share * 100.0
        ));
    }
    out
}

async fn search(ctx: &Ctx, args: &SearchArgs) -> anyhow::Result<ExitCode> {
    let doc_type = args.doc_type.as_deref().map(str::parse).transpose()?;
    let request = SearchRequest {
        query: args.query.clone(),
        mode: match args.mode {
            Mode::Vector => SearchMode::Vector,
            Mode::FullText => SearchMode::FullText,
            Mode::Hybrid => SearchMode::Hybrid,
        },
        limit: args.limit,
        source_id: args.source.clone(),
        doc_type,
    };
    let hits = ctx.engine.search(&args.user.user, &request).await?;
    print(&args.user, &serde_json::to_value(&hits)?, || {
        if hits.is_empty() {
            return "no results".into();
        }
        hits.iter()
            .enumerate()
            .map(|(i, h)| {
                let text: String = h
                    .chunk_text
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .take(160)
                    .collect();
                format!(
                    "{:>2}. {:.3}  {}  (chunk {}, {})\n    {}",
                    i + 1,
                    h.score,
                    one_line(&h.source_uri),
                    h.chunk_index,
                    one_line(&h.title),
                    one_line(&text)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

async fn status(ctx: &Ctx, user: &UserArgs) -> anyhow::Result<ExitCode> {
    let status = ctx.engine.status(&user.user).await?;
    let runs = ctx.engine.last_runs(&user.user).await?;
    let active = ctx.engine.embedder();
    let json =
        serde_json::json!({ "status": status, "last_runs": runs, "active_embedder": active });
    print(user, &json, || {
        let mut out = format!(
            "user {}: {} documents, {} chunks, {} failed ({} will be retried)",
            status.user_id, status.documents, status.chunks, status.failed, status.pending_retry
        );
        out.push_str(&format!("\n  active embedder: {active}"));
        if let Some(e) = &status.embedder {
            out.push_str(&format!("\n  tables built with: {e}"));
        }
        out.push_str(&format!(
            "\n  table versions: documents {}, chunks {}",
            status.versions.0, status.versions.1
        ));
        for (source, n) in &status.by_source {
            out.push_str(&format!("\n  source {source}: {n} documents"));
        }
        for r in &runs {
            out.push_str(&format!(
                "\n  last run of {}: {} — created {}, updated {}, deleted {}, failed {} in {:.2} s",
                r.source_id,
                r.finished_at,
                r.created,
                r.updated,
                r.deleted,
                r.failed,
                r.duration_ms as f64 / 1000.0
            ));
        }
        out
    })
}

async fn failed(ctx: &Ctx, user: &UserArgs) -> anyhow::Result<ExitCode> {
    let failed = ctx.engine.failed(&user.user).await?;
    let rows: Vec<_> = failed
        .iter()
        .map(|d| serde_json::json!({ "doc_id": d.doc_id, "source_id": d.source_id, "source_uri": d.source_uri, "error_message": d.error_message, "attempts": d.attempts, "last_synced": d.last_synced }))
        .collect();
    print(user, &serde_json::Value::Array(rows), || {
        if failed.is_empty() {
            return "no failed documents".into();
        }
        failed
            .iter()
            .map(|d| {
                format!(
                    "{}  (attempts {}, last {})\n    {}",
                    one_line(&d.source_uri),
                    d.attempts,
                    one_line(&d.last_synced),
                    one_line(d.error_message.as_deref().unwrap_or(""))
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

async fn reindex(ctx: &Ctx, args: &ReindexArgs) -> anyhow::Result<ExitCode> {
    let user = &args.user.user;
    let specs = ctx.registry(user)?.list()?;
    if specs.is_empty() {
        bail!(
            "user {user} has no configured sources to rebuild from; add them with `sync-cli sources add` first"
        );
    }
    if !args.yes {
        bail!(
            "reindex drops user {user}'s tables and rebuilds them from {} source(s); run again with --yes to confirm",
            specs.len()
        );
    }
    ctx.engine.drop_user(user).await?;
    let sync_args = SyncArgs {
        paths: Vec::new(),
        source: None,
        allow_mass_delete: false,
        user: UserArgs {
            user: user.clone(),
            json: args.user.json,
        },
    };
    sync(ctx, &sync_args, false).await
}

async fn sources(ctx: &Ctx, cmd: SourcesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SourcesCommand::Add {
            id,
            paths,
            source_type,
            options,
            patterns,
            excludes,
            poll_interval,
            user,
        } => {
            lancesync_engine::ids::validate_source_id(&id)?;
            let mut spec = if source_type == "local_filesystem" {
                SourceSpec::local(&id, &LocalFsConfig::new(paths.iter().map(|p| absolute(p))))
            } else {
                if !paths.is_empty() {
                    eprintln!(
                        "error: a {source_type} source takes no paths; give its settings with --option KEY=VALUE"
                    );
                    return Ok(ExitCode::from(exit::INVALID));
                }
                SourceSpec::new(&id, &source_type, toml::Table::new())
            };
            for (key, value) in options {
                spec.config.insert(key, option_value(&value));
            }
            if !patterns.is_empty() {
                spec.config.insert("file_patterns".into(), patterns.into());
            }
            if !excludes.is_empty() {
                spec.config
                    .insert("exclude_patterns".into(), excludes.into());
            }
            spec.poll_interval = poll_interval;
            spec.enabled = ctx.settings.sync.enabled_by_default;
            let registry = ctx.registry(&user.user)?;
            if let Err(e) = registry.add(spec.clone(), &ctx.env) {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(exit::INVALID));
            }
            print(&user, &shown(&spec)?, || {
                format!(
                    "added {source_type} source {id} for user {}: {}",
                    user.user,
                    describe(&spec)
                )
            })
        }
        SourcesCommand::List(user) => {
            let specs = ctx.registry(&user.user)?.list()?;
            let shown_specs = specs
                .iter()
                .map(shown)
                .collect::<anyhow::Result<Vec<_>>>()?;
            print(&user, &serde_json::Value::Array(shown_specs), || {
                if specs.is_empty() {
                    return format!("user {} has no sources", user.user);
                }
                specs
                    .iter()
                    .map(|s| {
                        format!(
                            "{}  {}  {}  {}",
                            one_line(&s.id),
                            one_line(&s.source_type),
                            if s.enabled { "enabled" } else { "disabled" },
                            one_line(&describe(s))
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        SourcesCommand::Remove {
            id,
            keep_documents,
            user,
        } => {
            let removed = ctx.registry(&user.user)?.remove(&id)?;
            let documents = if keep_documents {
                0
            } else {
                ctx.engine.remove_source_documents(&user.user, &id).await?
            };
            print(
                &user,
                &serde_json::json!({ "removed": shown(&removed)?, "documents_removed": documents }),
                || {
                    format!(
                        "removed source {id} and {documents} of its documents from user {}'s index",
                        user.user
                    )
                },
            )
        }
    }
}

/// A spec as the CLI prints it: inline credentials masked.
fn shown(spec: &SourceSpec) -> anyhow::Result<serde_json::Value> {
    let mut value = serde_json::to_value(spec)?;
    value["config"] = serde_json::to_value(spec.redacted_config())?;
    Ok(value)
}

/// Where a source reads, in a few words.
fn describe(spec: &SourceSpec) -> String {
    let get = |key: &str| spec.config.get(key).and_then(|v| v.as_str()).unwrap_or("");
    match spec.source_type.as_str() {
        "s3" => format!("s3://{}/{}", get("bucket"), get("prefix")),
        "dropbox" => format!(
            "dropbox:{}",
            if get("path").is_empty() {
                "/"
            } else {
                get("path")
            }
        ),
        "google_drive" | "notion" => {
            let ids = |key: &str| {
                spec.config
                    .get(key)
                    .and_then(|v| v.as_array())
                    .map(|ids| ids.iter().filter_map(|i| i.as_str()).collect::<Vec<_>>())
                    .unwrap_or_default()
            };
            let (first, second, scheme) = if spec.source_type == "notion" {
                (
                    ("pages", ids("page_ids")),
                    ("databases", ids("database_ids")),
                    "notion",
                )
            } else {
                (
                    ("folders", ids("folder_ids")),
                    ("drives", ids("drive_ids")),
                    "gdrive",
                )
            };
            let parts: Vec<String> = [first, second]
                .into_iter()
                .filter(|(_, ids)| !ids.is_empty())
                .map(|(what, ids)| format!("{what} {}", ids.join(", ")))
                .collect();
            if parts.is_empty() {
                format!("{scheme}: everything shared with the integration")
            } else {
                format!("{scheme}: {}", parts.join("; "))
            }
        }
        _ => spec
            .config
            .get("watch_paths")
            .and_then(|v| v.as_array())
            .map(|paths| {
                paths
                    .iter()
                    .filter_map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
    }
}

/// A `--option` value: TOML when it parses as a value (numbers, booleans, arrays), else the
/// text itself.
fn option_value(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}

/// Relative paths are made absolute against the working directory; `~` and `${VAR}` are left
/// for the source to expand.
fn absolute(p: &str) -> String {
    if p.starts_with('~') || p.starts_with('$') || Path::new(p).is_absolute() {
        return p.to_string();
    }
    std::env::current_dir()
        .map(|d| d.join(p).to_string_lossy().into_owned())
        .unwrap_or_else(|_| p.to_string())
}

/// A progress bar on stderr when it is a terminal; nothing otherwise.
struct Bar(Option<ProgressBar>);

impl Bar {
    fn new(visible: bool) -> Self {
        Self(visible.then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} {per_sec} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        }))
    }

    fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn start(&self, total: usize) {
        if let Some(b) = &self.0 {
            b.set_length(total as u64);
        }
    }

    fn advance(&self, uri: &str) {
        if let Some(b) = &self.0 {
            b.inc(1);
            b.set_message(uri.rsplit('/').next().unwrap_or(uri).to_string());
        }
    }
}

fn storage_text(outcome: &lancesync_storage::AfterWrite) -> String {
    use lancesync_storage::AfterWrite;
    match outcome {
        AfterWrite::Nothing => String::new(),
        AfterWrite::BackedUp { record } => format!(
            "S3 copy up to date: {} file(s), {} bytes sent",
            record.files, record.bytes
        ),
        AfterWrite::Refreshed { report } => format!(
            "local cache refreshed: {} file(s), {} bytes fetched",
            report.files, report.bytes
        ),
        AfterWrite::Queued { error } => {
            format!("S3 copy failed and is queued for retry (`sync-cli storage status`): {error}")
        }
        AfterWrite::Conflict { message } => format!("S3 copy withheld: {message}"),
    }
}
