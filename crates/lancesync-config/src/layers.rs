//! Gathering raw values from the five layers, lowest to highest: built-in defaults,
//! a TOML file, a `.env` file, the process environment, command-line overrides.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::problem::Problem;
use crate::spec::{self, SETTINGS, SettingSpec};

/// The environment variable that names a TOML config file.
pub const CONFIG_FILE_VAR: &str = "LANCESYNC_CONFIG";
/// The config file read from the working directory when none is named.
pub const DEFAULT_CONFIG_FILE: &str = "lancesync.toml";
/// The dotenv file read from the working directory when none is named.
pub const DEFAULT_ENV_FILE: &str = ".env";

/// Which `.env` file to read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EnvFile {
    /// `.env` in the working directory, if there is one.
    #[default]
    Auto,
    /// This file; a missing file is a problem.
    Path(PathBuf),
    /// No `.env` file.
    Disabled,
}

/// Everything loading depends on. Loading reads no global state beyond the files named here:
/// tests build this value by hand.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The process environment (or a test's stand-in for it).
    pub env: BTreeMap<String, String>,
    /// A TOML config file named on the command line; wins over `LANCESYNC_CONFIG`.
    pub config_file: Option<PathBuf>,
    /// Which `.env` file to read.
    pub env_file: EnvFile,
    /// `KEY=VALUE` overrides from the command line, highest priority.
    pub overrides: Vec<(String, String)>,
    /// Where relative paths and the default files are looked up.
    pub working_dir: PathBuf,
}

impl LoadOptions {
    /// Options from this process: its environment and working directory, `.env` and
    /// `lancesync.toml` discovered there, no overrides.
    pub fn from_process() -> Self {
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let working_dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Self {
            env,
            working_dir,
            ..Self::default()
        }
    }

    /// Options with only this environment map, no files and no overrides.
    pub fn from_env_map<K: Into<String>, V: Into<String>>(
        env: impl IntoIterator<Item = (K, V)>,
        working_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            env: env.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
            env_file: EnvFile::Disabled,
            working_dir: working_dir.into(),
            ..Self::default()
        }
    }
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "layer", rename_all = "snake_case")]
pub enum Origin {
    /// The built-in default.
    Default,
    /// A TOML config file.
    File {
        /// The file.
        path: PathBuf,
    },
    /// A `.env` file.
    #[serde(rename = ".env")]
    DotEnv {
        /// The file.
        path: PathBuf,
        /// The variable name used in it (the setting's name or an alias).
        variable: String,
    },
    /// The process environment.
    Env {
        /// The variable name used (the setting's name or an alias).
        variable: String,
    },
    /// A command-line override (`--set KEY=VALUE`).
    Flag,
}

impl Origin {
    /// The layer's short name: default, file, .env, env or flag.
    pub fn layer(&self) -> &'static str {
        match self {
            Origin::Default => "default",
            Origin::File { .. } => "file",
            Origin::DotEnv { .. } => ".env",
            Origin::Env { .. } => "env",
            Origin::Flag => "flag",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File { path } => write!(f, "file {}", path.display()),
            Origin::DotEnv { path, variable } => write!(f, ".env {} ({variable})", path.display()),
            Origin::Env { variable } => write!(f, "env {variable}"),
            Origin::Flag => f.write_str("flag --set"),
        }
    }
}

/// The winning raw value of every setting that some layer set.
///
/// Deliberately not `Debug`: raw values include secrets.
pub(crate) struct Layers {
    values: BTreeMap<&'static str, (String, Origin)>,
    /// The `.env` file's variables overlaid by the process environment: what detection and
    /// `${VAR}` expansion see.
    pub env_view: BTreeMap<String, String>,
    pub config_file: Option<PathBuf>,
    pub env_file: Option<PathBuf>,
    pub problems: Vec<Problem>,
}

impl Layers {
    /// Read every layer. Problems (unreadable files, unknown keys) are collected, not returned
    /// early, so one report can list them all.
    pub fn gather(opts: &LoadOptions) -> Self {
        let mut layers = Layers {
            values: BTreeMap::new(),
            env_view: BTreeMap::new(),
            config_file: None,
            env_file: None,
            problems: Vec::new(),
        };

        let dotenv = layers.read_env_file(opts);
        layers.env_view = dotenv.iter().cloned().collect();
        layers
            .env_view
            .extend(opts.env.iter().map(|(k, v)| (k.clone(), v.clone())));

        if let Some(path) = layers.config_file_path(opts) {
            layers.read_toml(&path);
        }
        if let Some(path) = layers.env_file.clone() {
            let map: BTreeMap<String, String> = dotenv.into_iter().collect();
            layers.take_env_layer(&map, |variable| Origin::DotEnv {
                path: path.clone(),
                variable,
            });
        }
        layers.take_env_layer(&opts.env, |variable| Origin::Env { variable });
        for (key, value) in &opts.overrides {
            match spec::find(key) {
                Some(spec) => layers.set(spec, value, Origin::Flag),
                None => layers.problems.push(unknown_key(key, "--set")),
            }
        }
        layers
    }

    /// The raw value for `spec`, falling back to its default.
    pub fn raw(&self, spec: &SettingSpec) -> Option<(&str, &Origin)> {
        self.values.get(spec.name).map(|(v, o)| (v.as_str(), o))
    }

    /// Resolve a path relative to the working directory, expanding `~` and `${VAR}`.
    pub fn expand_path(&self, raw: &str, working_dir: &Path) -> Result<PathBuf, String> {
        let expanded = crate::expand::expand(raw, &self.env_view, true)?;
        Ok(absolutize(Path::new(&expanded), working_dir))
    }

    fn set(&mut self, spec: &'static SettingSpec, value: &str, origin: Origin) {
        // An empty value counts as not set, so `S3_ENDPOINT=` in a template changes nothing.
        if !value.trim().is_empty() {
            self.values
                .insert(spec.name, (value.trim().to_string(), origin));
        }
    }

    fn take_env_layer(
        &mut self,
        env: &BTreeMap<String, String>,
        origin: impl Fn(String) -> Origin,
    ) {
        for spec in SETTINGS {
            // The setting's own name beats an alias within one layer.
            let found = std::iter::once(spec.name)
                .chain(spec.aliases.iter().copied())
                .find_map(|name| {
                    env.get(name)
                        .filter(|v| !v.trim().is_empty())
                        .map(|v| (name, v))
                });
            if let Some((name, value)) = found {
                self.set(spec, value, origin(name.to_string()));
            }
        }
    }

    fn config_file_path(&mut self, opts: &LoadOptions) -> Option<PathBuf> {
        let named = opts
            .config_file
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .or_else(|| {
                self.env_view
                    .get(CONFIG_FILE_VAR)
                    .filter(|v| !v.is_empty())
                    .cloned()
            });
        match named {
            Some(raw) => match self.expand_path(&raw, &opts.working_dir) {
                Ok(path) if path.is_file() => Some(path),
                Ok(path) => {
                    self.problems.push(Problem::new(
                        None,
                        format!("config file {} does not exist", path.display()),
                        format!("create it (`sync-cli config generate --format toml`) or fix --config / {CONFIG_FILE_VAR}"),
                    ));
                    None
                }
                Err(e) => {
                    self.problems.push(Problem::new(
                        None,
                        format!("config file path {raw:?}: {e}"),
                        "fix --config / LANCESYNC_CONFIG",
                    ));
                    None
                }
            },
            None => {
                let default = opts.working_dir.join(DEFAULT_CONFIG_FILE);
                default.is_file().then_some(default)
            }
        }
    }

    fn read_toml(&mut self, path: &Path) {
        self.config_file = Some(path.to_path_buf());
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                self.problems.push(Problem::new(
                    None,
                    format!("cannot read config file {}: {e}", path.display()),
                    "check the path and its permissions",
                ));
                return;
            }
        };
        let table: toml::Table = match text.parse() {
            Ok(table) => table,
            Err(e) => {
                let msg = e.to_string();
                self.problems.push(Problem::new(
                    None,
                    format!("config file {} is not valid TOML: {}", path.display(), msg.trim_end()),
                    "fix the syntax; `sync-cli config generate --format toml` shows the expected shape",
                ));
                return;
            }
        };
        let origin = Origin::File {
            path: path.to_path_buf(),
        };
        for (key, value) in &table {
            let Some(spec) = spec::find(key) else {
                self.problems
                    .push(unknown_key(key, &format!("config file {}", path.display())));
                continue;
            };
            let raw = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(x) => x.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Datetime(d) => d.to_string(),
                toml::Value::Array(_) | toml::Value::Table(_) => {
                    self.problems.push(Problem::new(
                        Some(spec.name),
                        format!(
                            "{key} in config file {} must be a single value, not a {}",
                            path.display(),
                            value.type_str()
                        ),
                        format!("write it as {} = \"...\"", spec.toml_key()),
                    ));
                    continue;
                }
            };
            self.set(spec, &raw, origin.clone());
        }
    }

    /// Read the `.env` file's variables (all of them: non-setting variables such as cloud
    /// indicators still count for detection).
    fn read_env_file(&mut self, opts: &LoadOptions) -> Vec<(String, String)> {
        let path = match &opts.env_file {
            EnvFile::Disabled => return Vec::new(),
            EnvFile::Auto => {
                let path = opts.working_dir.join(DEFAULT_ENV_FILE);
                if !path.is_file() {
                    return Vec::new();
                }
                path
            }
            EnvFile::Path(p) => {
                let path = absolutize(p, &opts.working_dir);
                if !path.is_file() {
                    self.problems.push(Problem::new(
                        None,
                        format!(".env file {} does not exist", path.display()),
                        "fix --env-file",
                    ));
                    return Vec::new();
                }
                path
            }
        };
        self.env_file = Some(path.clone());
        let iter = match dotenvy::from_path_iter(&path) {
            Ok(iter) => iter,
            Err(e) => {
                self.problems.push(Problem::new(
                    None,
                    format!("cannot read .env file {}: {e}", path.display()),
                    "check the path and its permissions",
                ));
                return Vec::new();
            }
        };
        let mut vars = Vec::new();
        for item in iter {
            match item {
                Ok(pair) => vars.push(pair),
                Err(e) => {
                    self.problems.push(Problem::new(
                        None,
                        format!(
                            ".env file {} has a line that cannot be read: {e}",
                            path.display()
                        ),
                        "write each line as NAME=value",
                    ));
                    break;
                }
            }
        }
        vars
    }
}

fn unknown_key(key: &str, place: &str) -> Problem {
    let hint = match spec::closest(key) {
        Some(s) => format!(
            "did you mean {}? `sync-cli config generate` lists every setting",
            s.toml_key()
        ),
        None => "`sync-cli config generate` lists every setting".to_string(),
    };
    Problem::new(None, format!("unknown setting '{key}' in {place}"), hint)
}

pub(crate) fn absolutize(path: &Path, working_dir: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        working_dir.join(path)
    }
}
