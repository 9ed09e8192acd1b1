//! `check`: the index against its sources and against itself, repaired on request.

use std::process::ExitCode;
use std::sync::Arc;

use lancesync_engine::{CheckOptions, CheckReport, Problem};
use lancesync_sources::DocumentSource;

use super::sync::{report_text, resolve_sources};
use super::{Ctx, exit};
use crate::cli::CheckArgs;
use crate::output::{one_line, terminal};

pub(super) async fn check(ctx: &Ctx, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    if args.sync.dry_run {
        anyhow::bail!("check writes nothing unless asked to --repair; it has no --dry-run");
    }
    let user = &args.sync.user.user;
    // A user without sources (uploads and manual documents only) still has tables to check.
    let no_sources = args.sync.paths.is_empty()
        && args.sync.source.is_none()
        && ctx
            .registry(user)?
            .load()?
            .sources
            .iter()
            .all(|s| !s.enabled);
    let sources: Vec<Arc<dyn DocumentSource>> = if no_sources {
        Vec::new()
    } else {
        resolve_sources(ctx, &args.sync)?
            .into_iter()
            .map(|(s, _)| s)
            .collect()
    };
    let borrowed: Vec<&dyn DocumentSource> = sources.iter().map(|s| s.as_ref()).collect();
    let options = CheckOptions {
        deep: args.deep,
        repair: args.repair,
        allow_mass_delete: args.sync.allow_mass_delete,
    };
    let report = ctx.engine.check(user, &borrowed, options).await?;
    if args.sync.user.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", terminal(&check_text(&report)));
    }
    Ok(if report.consistent() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::PROBLEMS_FOUND)
    })
}

fn problems_text(out: &mut String, problems: &[Problem]) {
    for p in problems {
        let source = p
            .source_id
            .as_deref()
            .map(|s| format!(" (source {s})"))
            .unwrap_or_default();
        out.push_str(&format!("\n  {}: {}{source}", p.count, p.kind.describe()));
        for example in &p.examples {
            out.push_str(&format!("\n    {}", one_line(example)));
        }
        if p.count > p.examples.len() {
            out.push_str(&format!(
                "\n    ... and {} more (--json)",
                p.count - p.examples.len()
            ));
        }
    }
}

fn check_text(r: &CheckReport) -> String {
    let what = if r.deep {
        "contents compared"
    } else {
        "sizes and times compared; --deep compares contents"
    };
    let mut out = format!(
        "checked user {} against {} source(s) in {:.2} s ({what})",
        r.user_id,
        r.sources.len(),
        r.duration_ms as f64 / 1000.0
    );
    if r.problems.is_empty() {
        out.push_str("\n  consistent: nothing to repair");
        return out;
    }
    problems_text(&mut out, &r.problems);
    let Some(repair) = &r.repair else {
        out.push_str("\n  `sync-cli check --repair` repairs what it can");
        return out;
    };
    out.push_str("\nrepair:");
    if repair.orphans_removed > 0 {
        out.push_str(&format!(
            "\n  removed the chunks of {} document(s) without a row",
            repair.orphans_removed
        ));
    }
    if repair.documents_reindexed > 0 {
        out.push_str(&format!(
            "\n  re-indexed {} damaged document(s) from their source",
            repair.documents_reindexed
        ));
    }
    for run in &repair.runs {
        for line in report_text(run).lines() {
            out.push_str(&format!("\n  {line}"));
        }
    }
    if !repair.indexes_built.is_empty() {
        out.push_str(&format!(
            "\n  built indexes: {}",
            repair.indexes_built.join(", ")
        ));
    }
    for why in &repair.not_repaired {
        out.push_str(&format!("\n  not repaired: {}", one_line(why)));
    }
    match r.remaining.as_deref() {
        Some([]) => out.push_str("\n  consistent now"),
        Some(left) => {
            out.push_str("\nstill found after the repair:");
            problems_text(&mut out, left);
        }
        None => {}
    }
    out
}
