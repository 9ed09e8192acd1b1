//! `backup`, `restore` and `storage status`.

use std::process::ExitCode;

use super::{Ctx, print};
use crate::cli::{BackupArgs, RestoreArgs};

/// Users with a local database.
pub(super) fn local_users(ctx: &Ctx) -> Vec<String> {
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

pub(super) async fn backup(ctx: &Ctx, args: &BackupArgs) -> anyhow::Result<ExitCode> {
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

pub(super) async fn restore(ctx: &Ctx, args: &RestoreArgs) -> anyhow::Result<ExitCode> {
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

pub(super) async fn storage_status(ctx: &Ctx, json: bool) -> anyhow::Result<ExitCode> {
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

pub(super) fn storage_text(outcome: &lancesync_storage::AfterWrite) -> String {
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
