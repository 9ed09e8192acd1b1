//! Reading the index: `search`, `status`, `failed`; rebuilding it: `reindex`.

use std::process::ExitCode;

use std::io::IsTerminal;
use std::sync::Arc;

use lancesync_engine::{ReindexOptions, SearchMode, SearchRequest};
use lancesync_orchestrator::UPLOADS;
use lancesync_sources::{DocumentSource, LocalFsConfig, LocalFsSource};

use super::sync::Bar;
use super::{Ctx, exit, print};
use crate::cli::{Mode, ReindexArgs, SearchArgs, UserArgs};
use crate::output::one_line;

pub(super) async fn search(ctx: &Ctx, args: &SearchArgs) -> anyhow::Result<ExitCode> {
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
        vector_weight: args.vector_weight,
    };
    // A request the engine would refuse is a usage error (a limit of 0, a weight of 2).
    if let Err(e) = request.validate() {
        eprintln!("error: {}", crate::output::terminal(&e.to_string()));
        return Ok(ExitCode::from(super::exit::INVALID));
    }
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

pub(super) async fn status(ctx: &Ctx, user: &UserArgs) -> anyhow::Result<ExitCode> {
    let status = ctx.engine.status(&user.user).await?;
    let runs = ctx.engine.last_runs(&user.user).await?;
    let previous = ctx.engine.previous_generation(&user.user).await?;
    let active = ctx.engine.embedder();
    let json = serde_json::json!({ "status": status, "last_runs": runs, "active_embedder": active, "previous_generation": previous });
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
        if let Some(p) = &previous {
            out.push_str(&format!(
                "\n  re-indexed {}; `sync-cli reindex --rollback` brings back the tables built with {} until {}",
                p.replaced_at,
                describe(p.embedder.as_ref()),
                p.keep_until
            ));
        }
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

pub(super) async fn failed(ctx: &Ctx, user: &UserArgs) -> anyhow::Result<ExitCode> {
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

pub(super) async fn reindex(ctx: &Ctx, args: &ReindexArgs) -> anyhow::Result<ExitCode> {
    let user = &args.user.user;
    let options = ReindexOptions {
        allow_mass_delete: args.allow_mass_delete,
        ..ReindexOptions::default()
    };
    if args.rollback {
        let report = match ctx.engine.rollback_reindex(user, options).await {
            Ok(report) => report,
            Err(e) => return reindex_error(e),
        };
        return print(&args.user, &serde_json::to_value(&report)?, || {
            format!(
                "rolled back user {user}'s re-index: {} documents, {} chunks, built with {} (was {}) in {:.1} s{}",
                report.documents,
                report.chunks,
                describe(report.embedder.as_ref()),
                describe(report.rolled_back.as_ref()),
                report.duration_ms as f64 / 1000.0,
                if report.embedder.as_ref() == Some(&ctx.engine.embedder()) {
                    String::new()
                } else {
                    format!(
                        "\n  configure that embedder again for syncs to write (now configured: {})",
                        ctx.engine.embedder()
                    )
                }
            )
        });
    }
    let mut sources: Vec<Arc<dyn DocumentSource>> = Vec::new();
    let loaded = ctx.registry(user)?.load()?;
    for spec in loaded.sources.iter().filter(|s| s.enabled) {
        sources.push(spec.build(&ctx.env)?);
    }
    // Files uploaded through the server are a source of their own: read again too.
    let uploads = ctx
        .settings
        .monitoring
        .state_dir
        .join("users")
        .join(user)
        .join(UPLOADS);
    if uploads.is_dir() {
        let config = LocalFsConfig::new([uploads.display().to_string()]);
        sources.push(Arc::new(LocalFsSource::new(UPLOADS, config, &ctx.env)?));
    }
    let borrowed: Vec<&dyn DocumentSource> = sources.iter().map(|s| s.as_ref()).collect();
    let bar = Bar::new(!args.user.json && std::io::stderr().is_terminal());
    let outcome = ctx.engine.reindex(user, &borrowed, options, &bar).await;
    bar.finish();
    let report = match outcome {
        Ok(report) => report,
        Err(e) => return reindex_error(e),
    };
    let failed = report.failed;
    print(&args.user, &serde_json::to_value(&report)?, || {
        let mut out = format!(
            "re-indexed user {user}{}: {} documents, {} chunks, {} failed, with {} (was {}) in {:.1} s",
            if report.resumed { " (resumed)" } else { "" },
            report.documents,
            report.chunks,
            report.failed,
            report.embedder,
            describe(report.embedder_before.as_ref()),
            report.duration_ms as f64 / 1000.0
        );
        for run in &report.runs {
            out.push_str(&format!(
                "\n  source {}: {} read, {} failed",
                run.source_id,
                run.created + run.updated,
                run.failed
            ));
            for f in run.failures.iter().take(20) {
                out.push_str(&format!("\n    {}: {}", one_line(&f.uri), one_line(&f.reason)));
            }
        }
        if report.carried_over > 0 {
            out.push_str(&format!(
                "\n  {} documents of other sources (uploads, migrated) carried over, embedded again",
                report.carried_over
            ));
        }
        if !report.rollback_until.is_empty() {
            out.push_str(&format!(
                "\n  `sync-cli reindex --rollback --user {user}` brings the old tables back until {}",
                report.rollback_until
            ));
        }
        out
    })
    .map(|code| {
        if failed > 0 && code == ExitCode::SUCCESS {
            ExitCode::from(exit::DOCUMENTS_FAILED)
        } else {
            code
        }
    })
}

fn describe(identity: Option<&lancesync_ingest::EmbedderIdentity>) -> String {
    identity.map_or_else(|| "no embedder recorded".into(), ToString::to_string)
}

/// A re-index that could not finish: a clear message and the exit code of its kind.
fn reindex_error(e: lancesync_engine::Error) -> anyhow::Result<ExitCode> {
    eprintln!("error: {}", crate::output::terminal(&e.to_string()));
    Ok(ExitCode::from(match e {
        lancesync_engine::Error::Reindexing { .. } | lancesync_engine::Error::Busy { .. } => {
            exit::BUSY
        }
        lancesync_engine::Error::SwitchWithheld(_) => exit::MASS_DELETE_BLOCKED,
        _ => 1,
    }))
}
