//! Settings for lancesync, loaded as a value: no global state, so tests pass an environment map.
//!
//! Five layers, lowest to highest: built-in defaults, a TOML file (`--config` or
//! `LANCESYNC_CONFIG`, else `lancesync.toml` in the working directory), a `.env` file, the
//! process environment, command-line overrides. Loading also detects the backend location
//! (cloud or local) and picks the storage mode, and validation reports every problem at once.
//!
//! ```
//! use lancesync_config::{Config, LoadOptions, StorageMode, BackendLocation};
//!
//! let opts = LoadOptions::from_env_map(
//!     [("FRONTEND_TYPE", "desktop"), ("S3_BACKUP_ENABLED", "true"), ("S3_BACKUP_BUCKET", "my-backups")],
//!     "/srv/lancesync",
//! );
//! let config = Config::load(&opts).expect("valid configuration");
//! assert_eq!(config.backend().location, BackendLocation::Local);
//! assert_eq!(config.storage_mode(), StorageMode::LocalPrimaryS3Backup);
//! assert_eq!(config.settings().lancedb.uri, "/srv/lancesync/data/lancedb");
//!
//! let bad = LoadOptions::from_env_map([("MAX_RETRIES", "abc"), ("S3_STORAGE_ENABLED", "true")], "/");
//! let problems = Config::inspect(&bad).problems;
//! assert_eq!(problems.len(), 2); // MAX_RETRIES is not a number; S3_BUCKET is missing
//! ```

mod expand;
mod layers;
mod location;
mod mode;
mod problem;
mod render;
mod settings;
pub mod spec;
mod validate;

use std::path::PathBuf;

pub use layers::{
    CONFIG_FILE_VAR, DEFAULT_CONFIG_FILE, DEFAULT_ENV_FILE, EnvFile, LoadOptions, Origin,
};
pub use location::{
    BackendDetection, BackendLocation, CLOUD_INDICATORS, CloudIndicator, LocationReason,
    detect_backend_location,
};
pub use mode::{FrontendType, StorageFlags, StorageMode, effective_mode, recommended_mode};
pub use problem::{Problem, Problems};
pub use render::{Entry, Explanation, TemplateFormat, mask_password, template};
pub use settings::{
    ApiSettings, AwsCredentials, BackupSettings, DeploymentSettings, EmbeddingProvider,
    EmbeddingSettings, IntegrationSettings, LanceDbSettings, MonitoringSettings, S3Settings,
    ServerSideEncryption, Settings, SyncSettings, parse_user_tokens,
};

/// Expand `~` (from `env["HOME"]`) and `${VAR}`/`$VAR` (from `env`) in a path, as settings
/// are expanded. A variable that is not set is an error naming it.
pub fn expand_path(
    raw: &str,
    env: &std::collections::BTreeMap<String, String>,
) -> std::result::Result<String, String> {
    expand::expand(raw, env, true)
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration has problems; all of them are listed.
    #[error("{}", Problems(problems.clone()))]
    Invalid {
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A loaded configuration: typed settings, where each came from, the detected backend location
/// and the storage mode. `Debug` and `Display` never show secrets.
#[derive(Debug, Clone)]
pub struct Config {
    settings: Settings,
    backend: BackendDetection,
    storage_mode: StorageMode,
    recommended_mode: StorageMode,
    entries: Vec<Entry>,
    notes: Vec<String>,
    config_file: Option<PathBuf>,
    env_file: Option<PathBuf>,
}

/// A configuration as far as it could be read, with every problem found. Bad values are
/// replaced by their defaults in `config`, so it can still be shown.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The best-effort configuration.
    pub config: Config,
    /// Every problem; empty when the configuration is valid.
    pub problems: Vec<Problem>,
}

impl Inspection {
    /// What `sync-cli config show` prints, problems included.
    pub fn explain(&self) -> Explanation<'_> {
        Explanation::new(&self.config, &self.problems)
    }
}

impl Config {
    /// Load and validate; fails with every problem when there is any.
    pub fn load(opts: &LoadOptions) -> Result<Config> {
        let Inspection { config, problems } = Self::inspect(opts);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(Error::Invalid { problems })
        }
    }

    /// Load as much as possible and collect every problem without failing.
    pub fn inspect(opts: &LoadOptions) -> Inspection {
        let layers = layers::Layers::gather(opts);
        let reader = settings::Reader::new(&layers, &opts.working_dir);
        let settings = reader.settings();
        let (type_problems, read) = reader.finish();
        debug_assert_eq!(
            read.len(),
            spec::SETTINGS.len(),
            "every registered setting is parsed"
        );

        let backend =
            detect_backend_location(settings.deployment.backend_location, &layers.env_view);
        let frontend = settings.deployment.frontend;
        let flags = StorageFlags {
            s3_storage_enabled: settings.s3.enabled,
            s3_backup_enabled: settings.backup.enabled,
            use_s3_as_primary: settings.s3.use_as_primary,
            local_cache_enabled: settings.s3.local_cache_enabled,
        };
        let storage_mode = effective_mode(frontend, flags);
        let recommended_mode = recommended_mode(
            frontend,
            backend.location,
            settings.s3.enabled || settings.backup.enabled,
        );
        let (rule_problems, notes) =
            validate::validate(&settings, &backend, storage_mode, recommended_mode);

        let entries = spec::SETTINGS
            .iter()
            .map(|spec| Entry::new(spec, layers.raw(spec), &settings))
            .collect();
        let mut problems = layers.problems.clone();
        problems.extend(type_problems);
        problems.extend(rule_problems);
        for p in &problems {
            tracing::debug!(setting = p.setting, problem = %p, "configuration problem");
        }
        let config = Config {
            settings,
            backend,
            storage_mode,
            recommended_mode,
            entries,
            notes,
            config_file: layers.config_file.clone(),
            env_file: layers.env_file.clone(),
        };
        Inspection { config, problems }
    }

    /// The typed settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The backend location and what decided it.
    pub fn backend(&self) -> &BackendDetection {
        &self.backend
    }

    /// The storage mode the settings select.
    pub fn storage_mode(&self) -> StorageMode {
        self.storage_mode
    }

    /// The storage mode recommended for this frontend type and backend location.
    pub fn recommended_mode(&self) -> StorageMode {
        self.recommended_mode
    }

    /// Notes that do not stop lancesync (for example a mode that differs from the recommended one).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Every setting with its shown value (secrets masked) and origin.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Where `name` (a setting's name or alias) got its value.
    pub fn origin(&self, name: &str) -> Option<&Origin> {
        let spec = spec::find(name)?;
        self.entries
            .iter()
            .find(|e| e.name == spec.name)
            .map(|e| &e.origin)
    }

    /// The TOML file that was read, if any.
    pub fn config_file(&self) -> Option<&std::path::Path> {
        self.config_file.as_deref()
    }

    /// The `.env` file that was read, if any.
    pub fn env_file(&self) -> Option<&std::path::Path> {
        self.env_file.as_deref()
    }

    /// What `sync-cli config show` prints.
    pub fn explain(&self) -> Explanation<'_> {
        Explanation::new(self, &[])
    }
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.explain().fmt(f)
    }
}
