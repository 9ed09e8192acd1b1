//! `sources`: adding, listing, showing, enabling and removing a user's sources.

use std::path::Path;
use std::process::ExitCode;

use lancesync_sources::{LocalFsConfig, SourceConfig, SourceSpec, StoredSource};

use super::{Ctx, exit, print};
use crate::cli::SourcesCommand;
use crate::output::one_line;

pub(super) async fn sources(ctx: &Ctx, cmd: SourcesCommand) -> anyhow::Result<ExitCode> {
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
            let mut config = if source_type == "local_filesystem" {
                SourceConfig::from(LocalFsConfig::new(paths.iter().map(|p| absolute(p)))).to_table()
            } else {
                if !paths.is_empty() {
                    eprintln!(
                        "error: a {source_type} source takes no paths; give its settings with --option KEY=VALUE"
                    );
                    return Ok(ExitCode::from(exit::INVALID));
                }
                toml::Table::new()
            };
            for (key, value) in options {
                config.insert(key, option_value(&value));
            }
            if !patterns.is_empty() {
                config.insert("file_patterns".into(), patterns.into());
            }
            if !excludes.is_empty() {
                config.insert("exclude_patterns".into(), excludes.into());
            }
            let mut spec = match SourceSpec::from_table(&id, &source_type, config) {
                Ok(spec) => spec,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(exit::INVALID));
                }
            };
            spec.poll_interval = poll_interval;
            spec.enabled = ctx.settings.sync.enabled_by_default;
            let registry = ctx.registry(&user.user)?;
            if registry.contains(&spec.id)? {
                eprintln!(
                    "error: a source with id {:?} exists already; remove it first or pick another id",
                    spec.id
                );
                return Ok(ExitCode::from(exit::INVALID));
            }
            if let Err(e) = spec.build(&ctx.env) {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(exit::INVALID));
            }
            // With a coordinator, every instance gets the source (shared first, so that no
            // instance's next look at the shared registry takes it back from this file).
            if let Some(coordinator) = ctx.engine.coordinator() {
                let entry = toml::to_string(&StoredSource::from(spec.clone()))?;
                coordinator
                    .publish_source(&user.user, &spec.id, Some(&entry))
                    .await?;
            }
            if let Err(e) = registry.add(spec.clone(), &ctx.env) {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(exit::INVALID));
            }
            print(&user, &shown(&spec)?, || {
                format!(
                    "added {source_type} source {id} for user {}: {}",
                    user.user,
                    spec.describe()
                )
            })
        }
        SourcesCommand::List(user) => {
            let loaded = ctx.registry(&user.user)?.load()?;
            let mut shown_specs = loaded
                .sources
                .iter()
                .map(shown)
                .collect::<anyhow::Result<Vec<_>>>()?;
            for (stored, e) in &loaded.invalid {
                let mut value = serde_json::to_value(stored.redacted())?;
                value["error"] = e.to_string().into();
                shown_specs.push(value);
            }
            print(&user, &serde_json::Value::Array(shown_specs), || {
                if loaded.sources.is_empty() && loaded.invalid.is_empty() {
                    return format!("user {} has no sources", user.user);
                }
                let valid = loaded.sources.iter().map(|s| {
                    format!(
                        "{}  {}  {}  {}",
                        one_line(&s.id),
                        s.source_type(),
                        if s.enabled { "enabled" } else { "disabled" },
                        one_line(&s.describe())
                    )
                });
                let invalid = loaded.invalid.iter().map(|(s, e)| {
                    format!(
                        "{}  {}  invalid  {}",
                        one_line(&s.id),
                        one_line(&s.source_type),
                        one_line(&e.to_string())
                    )
                });
                valid.chain(invalid).collect::<Vec<_>>().join("\n")
            })
        }
        SourcesCommand::Remove {
            id,
            keep_documents,
            user,
        } => {
            let registry = ctx.registry(&user.user)?;
            if let Some(coordinator) = ctx.engine.coordinator()
                && registry.contains(&id)?
            {
                coordinator.publish_source(&user.user, &id, None).await?;
            }
            let removed = registry.remove(&id)?;
            let documents = if keep_documents {
                0
            } else {
                ctx.engine.remove_source_documents(&user.user, &id).await?
            };
            print(
                &user,
                &serde_json::json!({ "removed": removed.redacted(), "documents_removed": documents }),
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
    Ok(serde_json::to_value(
        StoredSource::from(spec.clone()).redacted(),
    )?)
}

/// A `--option` value: TOML when it parses as a value (numbers, booleans, arrays), else the
/// text itself.
pub(super) fn option_value(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}

/// Relative paths are made absolute against the working directory; `~` and `${VAR}` are left
/// for the source to expand.
pub(super) fn absolute(p: &str) -> String {
    if p.starts_with('~') || p.starts_with('$') || Path::new(p).is_absolute() {
        return p.to_string();
    }
    std::env::current_dir()
        .map(|d| d.join(p).to_string_lossy().into_owned())
        .unwrap_or_else(|_| p.to_string())
}
