//! `sync`, `retry` and `watch`: running sources now, or whenever their folders change.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use lancesync_engine::{Progress, SyncOptions, SyncReport};
use lancesync_orchestrator::{WatchOptions, Watcher};
use lancesync_sources::{DocumentSource, LocalFsConfig, LocalFsSource, SourceSpec};

use super::storage::storage_text;
use super::{Ctx, exit};
use crate::cli::{SyncArgs, WatchArgs};
use crate::output::{one_line, terminal};

/// An ad-hoc source for folders named on the command line. Its id comes from the folders, so
/// syncing the same folders again is incremental.
pub(super) fn adhoc_source(
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
pub(super) type Scheduled = (Arc<dyn DocumentSource>, Option<u64>);

/// The sources a `sync` or `watch` acts on, with their poll intervals.
pub(super) fn resolve_sources(ctx: &Ctx, args: &SyncArgs) -> anyhow::Result<Vec<Scheduled>> {
    let user = &args.user.user;
    if !args.paths.is_empty() {
        return Ok(vec![(Arc::new(adhoc_source(&args.paths, &ctx.env)?), None)]);
    }
    let loaded = ctx.registry(user)?.load()?;
    // An entry that no longer checks stops the command when it is one it would sync.
    if let Some((_, e)) = loaded.invalid.iter().find(|(s, _)| match &args.source {
        Some(id) => &s.id == id,
        None => s.enabled,
    }) {
        bail!("{e}");
    }
    let specs = loaded.sources;
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

pub(super) async fn sync(ctx: &Ctx, args: &SyncArgs, retry: bool) -> anyhow::Result<ExitCode> {
    let sources: Vec<Arc<dyn DocumentSource>> = resolve_sources(ctx, args)?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    sync_sources(ctx, args, &sources, retry).await
}

pub(super) async fn sync_sources(
    ctx: &Ctx,
    args: &SyncArgs,
    sources: &[Arc<dyn DocumentSource>],
    retry: bool,
) -> anyhow::Result<ExitCode> {
    let user = &args.user.user;
    let options = SyncOptions {
        allow_mass_delete: args.allow_mass_delete,
        retry_failed: retry,
        dry_run: args.dry_run,
    };
    let mut reports = Vec::new();
    let mut code = 0u8;
    for source in sources {
        let bar = Bar::new(!args.user.json && std::io::stderr().is_terminal());
        match ctx.engine.sync(user, source.as_ref(), options, &bar).await {
            Ok(report) => {
                bar.finish();
                // A plan that could be made is a success, whatever it foresees.
                if report.dry_run {
                } else if report.mass_delete_blocked.is_some() {
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

pub(super) async fn watch(ctx: &Ctx, args: &WatchArgs) -> anyhow::Result<ExitCode> {
    if args.sync.dry_run {
        bail!("watch has no dry run: `sync-cli sync --dry-run` plans one run");
    }
    let resolved = resolve_sources(ctx, &args.sync)?;
    let default_poll = ctx.settings.monitoring.default_poll_interval.as_secs();
    let poll = args
        .poll_interval
        .or_else(|| resolved.iter().filter_map(|(_, p)| *p).min())
        .unwrap_or(default_poll)
        .max(1);
    let sources: Vec<Arc<dyn DocumentSource>> = resolved.into_iter().map(|(s, _)| s).collect();
    let roots: Vec<PathBuf> = sources.iter().flat_map(|s| s.watch_roots()).collect();
    let watcher = Watcher::new(
        &roots,
        WatchOptions {
            debounce: Duration::from_millis(args.debounce_ms),
            poll: Duration::from_secs(poll),
        },
    )?;
    for (root, why) in watcher.unwatched() {
        eprintln!(
            "warning: cannot watch {}: {why}; it is still rescanned every {poll} s",
            terminal(&root.display().to_string())
        );
    }
    eprintln!(
        "watching {} source(s); full rescan every {poll} s; Ctrl-C to stop",
        sources.len()
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stop = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    let code = watcher
        .run(stop, || sync_sources(ctx, &args.sync, &sources, false))
        .await?;
    eprintln!("stopped watching");
    Ok(code)
}

/// Uris listed per kind in a dry run's text; `--json` lists them all.
const PLAN_LINES: usize = 20;

pub(super) fn report_text(r: &SyncReport) -> String {
    if let Some(plan) = r.plan.as_ref().filter(|_| r.dry_run) {
        return plan_text(r, plan);
    }
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
    out.push_str(&tokens_text(r));
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

/// Tokens embedded and saved by the incremental path, when there are any.
fn tokens_text(r: &SyncReport) -> String {
    let mut out = String::new();
    if r.chunks_written > 0 {
        let how = if r.tokens_exact {
            "counted by the embedder's tokenizer"
        } else {
            "estimated at 4 characters per token"
        };
        out.push_str(&format!(
            "\n  {} tokens embedded ({how})",
            r.tokens_embedded
        ));
    }
    if r.chunks_saved > 0 {
        out.push_str(&format!(
            "\n  {} chunks (about {} tokens) of unchanged, touched and moved documents not embedded again",
            r.chunks_saved, r.tokens_saved
        ));
    }
    out
}

/// A dry run's report: what a run would do, and what its embedding would cost.
fn plan_text(r: &SyncReport, plan: &lancesync_engine::RunPlan) -> String {
    let mut out = format!(
        "dry run of source {} for user {} in {:.2} s: nothing was written\n  a run would create {}, update {}, move {}, touch {}, delete {}, leave {} unchanged, fail {}",
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
    let cost = &plan.cost;
    let how = if cost.tokens_exact {
        "counted by the embedder's tokenizer"
    } else {
        "estimated at 4 characters per token"
    };
    out.push_str(&format!(
        "\n  embedding with {}: {} chunks, {} tokens ({how})",
        cost.embedder, cost.chunks, cost.tokens
    ));
    if let (Some(seconds), Some(rate)) = (cost.estimated_seconds, cost.measured_tokens_per_second) {
        let time = if seconds < 0.1 {
            "under 0.1 s".to_string()
        } else {
            format!("about {seconds:.1} s")
        };
        out.push_str(&format!(
            "\n  {time} of embedding at {rate:.0} tokens/s, measured on this machine"
        ));
    }
    if let (Some(price), Some(per_million)) = (cost.price, cost.price_per_million_tokens) {
        out.push_str(&format!(
            "\n  about {price:.4} at {per_million} per million tokens (EMBEDDING_PRICE_PER_MILLION_TOKENS)"
        ));
    }
    if r.chunks_saved > 0 {
        out.push_str(&format!(
            "\n  {} chunks (about {} tokens) of unchanged, touched and moved documents would not be embedded again",
            r.chunks_saved, r.tokens_saved
        ));
    }
    if r.repaired > 0 {
        out.push_str(&format!(
            "\n  would first repair the leftovers of an interrupted run ({} document(s))",
            r.repaired
        ));
    }
    let moves: Vec<String> = plan
        .moved
        .iter()
        .map(|m| format!("{} -> {}", m.from, m.to))
        .collect();
    let failures: Vec<String> = r
        .failures
        .iter()
        .map(|f| format!("{}: {}", f.uri, f.reason))
        .collect();
    for (what, uris) in [
        ("create", &plan.created),
        ("update", &plan.updated),
        ("touch", &plan.touched),
        ("move", &moves),
        ("delete", &plan.deleted),
        ("withhold deleting", &plan.withheld),
        ("retry", &plan.retried),
        ("fail", &failures),
        ("hand to the legacy fallback", &plan.legacy),
    ] {
        for uri in uris.iter().take(PLAN_LINES) {
            out.push_str(&format!("\n  {what}: {}", one_line(uri)));
        }
        if uris.len() > PLAN_LINES {
            out.push_str(&format!(
                "\n  {what}: ... and {} more (--json lists all)",
                uris.len() - PLAN_LINES
            ));
        }
    }
    if let Some(b) = &r.mass_delete_blocked {
        out.push_str(&format!(
            "\n  the mass-delete guard would withhold {} deletions of {} documents (more than {:.0}%); --allow-mass-delete applies them",
            b.would_delete,
            b.documents,
            b.max_share * 100.0
        ));
    }
    out
}

/// A progress bar on stderr when it is a terminal; nothing otherwise.
pub(super) struct Bar(Option<ProgressBar>);

impl Bar {
    pub(super) fn new(visible: bool) -> Self {
        Self(visible.then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} {per_sec} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        }))
    }

    pub(super) fn finish(&self) {
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
