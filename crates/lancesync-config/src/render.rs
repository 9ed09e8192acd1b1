//! What people read: `config show` (text and JSON), `config generate` templates and the
//! settings reference in `docs/configuration.md`.

use std::fmt::{self, Write as _};
use std::path::Path;

use serde::Serialize;

use crate::layers::Origin;
use crate::location::{BackendDetection, CLOUD_INDICATORS};
use crate::mode::{FrontendType, StorageMode};
use crate::problem::Problem;
use crate::settings::Settings;
use crate::spec::{self, Default, Group, Kind, SETTINGS, SettingSpec};
use crate::{Config, layers};

/// What is shown for a secret that is set.
const MASK: &str = "****";
/// The status of a setting whose part of lancesync does not exist yet.
const NOT_YET_USED: &str = "accepted, not yet used";

/// One setting as shown: its value (secrets masked), where it came from, and what uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The setting's name.
    pub name: &'static str,
    /// The value as shown; `None` when unset. Secrets show as `****`.
    pub value: Option<String>,
    /// Where the value came from.
    pub origin: Origin,
    /// What acts on it, or "accepted, not yet used".
    pub status: String,
}

impl Entry {
    pub(crate) fn new(
        spec: &'static SettingSpec,
        raw: Option<(&str, &Origin)>,
        settings: &Settings,
    ) -> Self {
        let (raw_value, origin) = match raw {
            Some((v, o)) => (Some(v.to_string()), o.clone()),
            None => (
                match spec.default {
                    Default::Value(v) => Some(v.to_string()),
                    Default::Auto(_) => Some("auto".into()),
                    Default::Unset => None,
                },
                Origin::Default,
            ),
        };
        let value = match spec.name {
            _ if spec.is_secret() => raw_value.map(|_| MASK.to_string()),
            _ if spec.kind == Kind::DatabaseUrl => raw_value.map(|v| mask_password(&v)),
            // Paths are shown as resolved: expanded and absolute.
            "LANCEDB_URI" => Some(settings.lancedb.uri.clone()),
            "SYNC_STATE_DIR" => Some(settings.monitoring.state_dir.display().to_string()),
            _ => raw_value,
        };
        Entry {
            name: spec.name,
            value,
            origin,
            status: status(spec),
        }
    }
}

fn status(spec: &SettingSpec) -> String {
    match spec.used_by {
        Some(by) => format!("used: {by}"),
        None => NOT_YET_USED.to_string(),
    }
}

/// The effective configuration as `sync-cli config show` prints it: text via `Display`,
/// JSON via `Serialize`.
#[derive(Debug, Serialize)]
pub struct Explanation<'a> {
    /// The TOML file read, if any.
    pub config_file: Option<&'a Path>,
    /// The `.env` file read, if any.
    pub env_file: Option<&'a Path>,
    /// Backend location and why.
    pub backend: &'a BackendDetection,
    /// Frontend type.
    pub frontend: FrontendType,
    /// The storage mode the settings select.
    pub storage_mode: StorageMode,
    /// The storage mode recommended for this frontend and backend.
    pub recommended_mode: StorageMode,
    /// Every setting.
    pub settings: &'a [Entry],
    /// Notes that do not stop lancesync.
    pub notes: &'a [String],
    /// Problems that do.
    pub problems: &'a [Problem],
}

impl<'a> Explanation<'a> {
    pub(crate) fn new(config: &'a Config, problems: &'a [Problem]) -> Self {
        Explanation {
            config_file: config.config_file(),
            env_file: config.env_file(),
            backend: config.backend(),
            frontend: config.settings().deployment.frontend,
            storage_mode: config.storage_mode(),
            recommended_mode: config.recommended_mode(),
            settings: config.entries(),
            notes: config.notes(),
            problems,
        }
    }
}

impl fmt::Display for Explanation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file =
            |p: Option<&Path>| p.map_or_else(|| "none".to_string(), |p| p.display().to_string());
        writeln!(f, "config file:      {}", file(self.config_file))?;
        writeln!(f, ".env file:        {}", file(self.env_file))?;
        writeln!(f, "backend location: {}", self.backend)?;
        writeln!(f, "frontend type:    {}", self.frontend)?;
        writeln!(
            f,
            "storage mode:     {} (recommended: {})",
            self.storage_mode, self.recommended_mode
        )?;
        writeln!(f)?;
        let rows: Vec<[String; 4]> = self
            .settings
            .iter()
            .map(|e| {
                [
                    e.name.to_string(),
                    e.value.clone().unwrap_or_else(|| "(unset)".into()),
                    e.origin.to_string(),
                    e.status.clone(),
                ]
            })
            .collect();
        let header = ["SETTING", "VALUE", "FROM", "STATUS"].map(String::from);
        let widths: Vec<usize> = (0..3)
            .map(|i| {
                rows.iter()
                    .chain([&header])
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in std::iter::once(&header).chain(&rows) {
            writeln!(
                f,
                "{:w0$}  {:w1$}  {:w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            )?;
        }
        for note in self.notes {
            write!(f, "\nnote: {note}")?;
        }
        for problem in self.problems {
            write!(f, "\nproblem: {problem}")?;
        }
        Ok(())
    }
}

/// The forms `config generate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateFormat {
    /// A `.env` file (also valid as shell `export`-less assignments).
    Env,
    /// A TOML file for `--config`.
    Toml,
    /// The settings reference in Markdown (`docs/configuration.md`).
    Markdown,
}

/// A commented template listing every setting, its default and what it does.
pub fn template(format: TemplateFormat) -> String {
    match format {
        TemplateFormat::Env | TemplateFormat::Toml => key_value_template(format),
        TemplateFormat::Markdown => markdown(),
    }
}

fn key_value_template(format: TemplateFormat) -> String {
    let mut out = String::new();
    let (title, how) = match format {
        TemplateFormat::Toml => (
            "lancesync configuration file (TOML). Pass it with --config FILE or LANCESYNC_CONFIG=FILE,\n# or name it lancesync.toml in the working directory.",
            "Keys are the setting names in lowercase.",
        ),
        _ => (
            "lancesync configuration as environment variables. Save as .env in the working\n# directory (or pass --env-file FILE); the process environment overrides it.",
            "Variable names are the setting names.",
        ),
    };
    let _ = writeln!(out, "# {title}");
    let _ = writeln!(
        out,
        "# {how} Every setting is listed with its default, commented out:"
    );
    let _ = writeln!(
        out,
        "# uncomment a line to change it. An empty value counts as not set."
    );
    let _ = writeln!(
        out,
        "# Generated by `sync-cli config generate`; docs/configuration.md explains each one."
    );
    for group in Group::ALL {
        let _ = writeln!(out, "\n# ==== {} ====", group.title());
        for spec in SETTINGS.iter().filter(|s| s.group == group) {
            let _ = writeln!(out);
            for line in wrap(spec.help, 86) {
                let _ = writeln!(out, "# {line}");
            }
            let mut accepts = format!(
                "Accepts {}. Default: {}.",
                spec.kind.describe(),
                spec.default.describe()
            );
            if !spec.aliases.is_empty() {
                let _ = write!(accepts, " Also read from: {}.", spec.aliases.join(", "));
            }
            if spec.used_by.is_none() {
                let _ = write!(accepts, " ({NOT_YET_USED}.)");
            }
            for line in wrap(&accepts, 86) {
                let _ = writeln!(out, "# {line}");
            }
            let value = match spec.default {
                Default::Value(v) => v,
                Default::Auto(_) => "auto",
                Default::Unset => "",
            };
            let _ = match format {
                TemplateFormat::Toml => writeln!(
                    out,
                    "#{} = {}",
                    spec.toml_key(),
                    toml_literal(spec.kind, value)
                ),
                _ => writeln!(out, "#{}={}", spec.name, value),
            };
        }
    }
    out
}

fn toml_literal(kind: Kind, value: &str) -> String {
    let bare = (matches!(
        kind,
        Kind::Bool | Kind::Count | Kind::Number | Kind::Port | Kind::Fraction | Kind::Amount
    ) && value != "auto")
        || (kind == Kind::Seconds && value.parse::<u64>().is_ok());
    if bare && !value.is_empty() {
        value.to_string()
    } else {
        format!("{value:?}")
    }
}

fn markdown() -> String {
    let mut out = String::new();
    out.push_str(MARKDOWN_INTRO);
    let indicators: Vec<String> = CLOUD_INDICATORS
        .iter()
        .map(|i| format!("`{}` ({})", i.variable, i.platform))
        .collect();
    let _ = writeln!(
        out,
        "Cloud indicators, checked in this order: {}.\n",
        indicators.join(", ")
    );
    out.push_str(MARKDOWN_MODES);
    let _ = writeln!(out, "## Every setting\n");
    let _ = writeln!(
        out,
        "The TOML key is the name in lowercase (`{}` → `{}`). \"Accepted, not yet used\" marks a setting that\n\
         is read and validated now and acted on once its part of lancesync exists.\n",
        spec::SETTINGS[0].name,
        spec::SETTINGS[0].toml_key()
    );
    for group in Group::ALL {
        let _ = writeln!(out, "### {}\n", group.title());
        let _ = writeln!(
            out,
            "| Setting | Default | Accepts | What it does | Status |"
        );
        let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
        for spec in SETTINGS.iter().filter(|s| s.group == group) {
            let mut name = format!("`{}`", spec.name);
            for alias in spec.aliases {
                let _ = write!(name, " (or `{alias}`)");
            }
            let default = match spec.default {
                Default::Value(v) => format!("`{v}`"),
                other => other.describe(),
            };
            let status = spec
                .used_by
                .map_or(NOT_YET_USED.to_string(), |by| format!("used: {by}"));
            let _ = writeln!(
                out,
                "| {name} | {default} | {} | {} | {status} |",
                spec.kind.describe(),
                spec.help.replace('|', "\\|")
            );
        }
        out.push('\n');
    }
    let _ = write!(
        out,
        "This page is generated: `cargo run -p sync-cli -- config generate --format markdown > docs/configuration.md`.\n\
         A test fails when it differs from the code. Config file variable: `{}`; default config file: `{}`; default .env file: `{}`.\n",
        layers::CONFIG_FILE_VAR,
        layers::DEFAULT_CONFIG_FILE,
        layers::DEFAULT_ENV_FILE
    );
    out
}

const MARKDOWN_INTRO: &str = r#"# Configuration

lancesync reads its settings from five layers; a higher layer wins over a lower one:

1. built-in defaults (below);
2. a TOML file: `--config FILE`, else `LANCESYNC_CONFIG`, else `lancesync.toml` in the working
   directory when there is one. Keys are the setting names in lowercase (`max_retries = 5`); an
   unknown key is an error that names it and suggests the closest setting;
3. a `.env` file: `--env-file FILE`, else `.env` in the working directory when there is one;
4. the process environment;
5. command-line overrides: `sync-cli --set MAX_RETRIES=5 ...`.

An empty value counts as not set. In paths, `~` and `${VAR}` expand (from the `.env` file and the
environment); relative paths are taken from the working directory. Booleans accept
`true/false`, `1/0`, `yes/no`, `on/off`; durations accept seconds (`300`) or units (`5m`).

`sync-cli config show [--json]` prints every effective value and where it came from;
`sync-cli config check` prints every problem at once and exits 2 when there is any;
`sync-cli config generate [--format env|toml|markdown]` writes a commented template.

Secrets (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) are never shown by
`config show`, `Debug`, `Display` or logs: a set secret shows as `****`.

## Backend location

`BACKEND_LOCATION=cloud|local` wins when set. Otherwise the backend is `cloud` when any cloud
platform's variable is present (even empty), else `local`. `config show` says which variable decided.
"#;

const MARKDOWN_MODES: &str = r#"## Storage modes

| mode | primary | reads | S3 role |
| --- | --- | --- | --- |
| `local_only` | local LanceDB | local | none |
| `local_primary_s3_backup` | local | local | incremental backup after runs; restore on demand |
| `local_primary_s3_sync` | local | local | backup plus pull of newer state (multi-device) |
| `s3_primary_local_cache` | S3 LanceDB | local replica, refreshed incrementally | primary |
| `s3_only` | S3 LanceDB | S3 | primary |

The **recommended** mode follows the frontend type and backend location:

| frontend | backend | recommended |
| --- | --- | --- |
| web | cloud | `s3_primary_local_cache` |
| web | local | `local_primary_s3_sync` (`local_only` when S3 is off) |
| desktop | cloud or local | `local_primary_s3_backup` (`local_only` when S3 is off) |

The **effective** mode is what the flags select, checked in this order:

1. `USE_S3_AS_PRIMARY=true`: `s3_primary_local_cache`, or `s3_only` with `LOCAL_CACHE_ENABLED=false`;
2. `S3_STORAGE_ENABLED=true` with a web frontend, or with a desktop frontend and no backup: `local_primary_s3_sync`;
3. `S3_BACKUP_ENABLED=true`: `local_primary_s3_backup`;
4. otherwise `local_only`.

When the two differ, `config show` and `config check` print a note saying how to follow the
recommendation; it is not an error.

## Validation rules

Every broken rule is reported, each naming the setting and what to do:

- a web frontend on a cloud backend needs `S3_STORAGE_ENABLED=true`; a desktop frontend on a cloud
  backend needs S3 storage or `S3_BACKUP_ENABLED=true`;
- a desktop frontend never uses S3 as primary (`USE_S3_AS_PRIMARY=false`);
- `USE_S3_AS_PRIMARY=true` needs `S3_STORAGE_ENABLED=true`;
- S3 storage needs `S3_BUCKET`; S3 backup needs `S3_BACKUP_BUCKET`; bucket names follow S3's rules;
- `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` come together; `AWS_SESSION_TOKEN` needs them;
- `LANCEDB_URI` is a local folder; table names use letters, digits, `_`, `-`, `.` and differ;
- `API_HOST` is an IP address or host name;
- intervals are at least 1 second; `MAX_CONCURRENT_PROCESSING` is 1 to 1024; `CHUNK_SIZE_MB` is 1 to 5120;
- every value has the right type (`MAX_RETRIES=abc is not a whole number`), and every key in a
  TOML file or `--set` is a known setting.

"#;

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A URL with its password masked, for messages and status pages; anything that is not a URL
/// masked whole (it may be anything, a password included).
pub fn mask_password(value: &str) -> String {
    match url::Url::parse(value) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some(MASK));
            }
            url.to_string()
        }
        Err(_) => MASK.to_string(),
    }
}

#[cfg(test)]
mod mask_tests {
    use super::mask_password;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_password("postgres://sync:s3cret@db.internal:5432/lancesync"),
            "postgres://sync:****@db.internal:5432/lancesync"
        );
        assert_eq!(
            mask_password("postgres://sync@db.internal/lancesync"),
            "postgres://sync@db.internal/lancesync"
        );
        assert_eq!(mask_password("host=db password=s3cret"), "****");
    }
}
