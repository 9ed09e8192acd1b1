//! `sync-cli config generate|check|show`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use lancesync_config::{Config, LoadOptions, TemplateFormat, template};

use crate::cli::{ConfigCommand, Format};

/// Exit code for an invalid configuration.
pub const INVALID_CONFIG: u8 = 2;

pub fn run(cmd: ConfigCommand, opts: &LoadOptions) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Generate {
            format,
            output,
            force,
        } => {
            let format = match format {
                Format::Env => TemplateFormat::Env,
                Format::Toml => TemplateFormat::Toml,
                Format::Markdown => TemplateFormat::Markdown,
            };
            let text = template(format);
            match output {
                Some(path) => {
                    let mut file = std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .create_new(!force)
                        .open(&path)
                        .with_context(|| {
                            format!("cannot write {} (use --force to overwrite)", path.display())
                        })?;
                    file.write_all(text.as_bytes())
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("wrote {}", path.display());
                }
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Check { probe } => {
            let inspection = Config::inspect(opts);
            let config = &inspection.config;
            for note in config.notes() {
                println!("note: {note}");
            }
            if inspection.problems.is_empty() {
                println!(
                    "configuration is valid: storage mode {}, backend {}",
                    config.storage_mode(),
                    config.backend()
                );
                if probe {
                    return probe_s3(config);
                }
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{}",
                lancesync_config::Problems(inspection.problems.clone())
            );
            Ok(ExitCode::from(INVALID_CONFIG))
        }
        ConfigCommand::Show { json } => {
            let inspection = Config::inspect(opts);
            let explanation = inspection.explain();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&explanation).context("cannot render JSON")?
                );
            } else {
                println!("{explanation}");
            }
            Ok(if inspection.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(INVALID_CONFIG)
            })
        }
    }
}

/// `config check --probe`: ask S3 whether the bucket exists and the credentials may list it.
fn probe_s3(config: &Config) -> anyhow::Result<ExitCode> {
    let storage =
        lancesync_storage::Storage::from_settings(config.settings(), config.storage_mode())?;
    let Some(target) = storage.remote() else {
        println!("probe: storage mode {} uses no S3", storage.mode());
        return Ok(ExitCode::SUCCESS);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(storage.probe()) {
        Ok(()) => {
            println!("probe: {} answers", target.describe());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("probe failed: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
