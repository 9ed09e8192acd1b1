//! `migrate`: adopting the original system's tables.

use std::process::ExitCode;
use std::sync::Arc;

use super::{Ctx, exit};
use crate::cli::{LayoutArg, MigrateArgs};
use crate::output::terminal;

pub(super) async fn migrate(ctx: Ctx, args: &MigrateArgs) -> anyhow::Result<ExitCode> {
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
