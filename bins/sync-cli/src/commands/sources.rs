//! `sources`: adding, listing, showing, enabling and removing a user's sources.

use std::path::Path;
use std::process::ExitCode;

use lancesync_sources::{LocalFsConfig, SourceSpec};

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
pub(super) fn shown(spec: &SourceSpec) -> anyhow::Result<serde_json::Value> {
    let mut value = serde_json::to_value(spec)?;
    value["config"] = serde_json::to_value(spec.redacted_config())?;
    Ok(value)
}

/// Where a source reads, in a few words.
pub(super) fn describe(spec: &SourceSpec) -> String {
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
