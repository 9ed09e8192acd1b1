//! Reading the index: `search`, `status`, `failed`; rebuilding it: `reindex`.

use std::process::ExitCode;

use anyhow::bail;
use lancesync_engine::{SearchMode, SearchRequest};

use super::sync::sync;
use super::{Ctx, print};
use crate::cli::{Mode, ReindexArgs, SearchArgs, SyncArgs, UserArgs};
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
        dry_run: false,
        user: UserArgs {
            user: user.clone(),
            json: args.user.json,
        },
    };
    sync(ctx, &sync_args, false).await
}
