//! The typed settings, parsed from the gathered layers.
//!
//! Over the usual size because it is one thing: the settings structs, one per group, each field
//! documented, and their parsing from the layers.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::layers::{Layers, Origin};
use crate::location::BackendLocation;
use crate::mode::FrontendType;
use crate::problem::Problem;
use crate::spec::{self, FALSE_WORDS, Kind, SettingSpec, TRUE_WORDS};

/// Where the per-user LanceDB databases live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanceDbSettings {
    /// `LANCEDB_URI`: an absolute local path, or a URI such as `s3://bucket/prefix`.
    pub uri: String,
    /// `LANCEDB_TABLE_NAME`.
    pub documents_table: String,
    /// `LANCEDB_CHUNKS_TABLE_NAME`.
    pub chunks_table: String,
}

impl LanceDbSettings {
    /// Whether `uri` names a remote store (has a scheme such as `s3://`).
    pub fn is_remote(&self) -> bool {
        self.uri.contains("://")
    }
}

/// Frontend type and an explicit backend location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeploymentSettings {
    /// `FRONTEND_TYPE`.
    pub frontend: FrontendType,
    /// `BACKEND_LOCATION` when set to cloud or local; `None` means detect.
    pub backend_location: Option<BackendLocation>,
}

/// S3 as primary storage or sync target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `S3_STORAGE_ENABLED`.
    pub enabled: bool,
    /// `S3_BUCKET`.
    pub bucket: Option<String>,
    /// `S3_PREFIX`, without leading or trailing slashes.
    pub prefix: String,
    /// `S3_REGION` (or `AWS_REGION`).
    pub region: String,
    /// `S3_ENDPOINT`.
    pub endpoint: Option<Url>,
    /// `USE_S3_AS_PRIMARY`.
    pub use_as_primary: bool,
    /// `LOCAL_CACHE_ENABLED`.
    pub local_cache_enabled: bool,
    /// `LOCAL_CACHE_REFRESH_INTERVAL`.
    pub cache_refresh_interval: Duration,
    /// `S3_SSE`.
    pub sse: ServerSideEncryption,
    /// `S3_SSE_KMS_KEY_ID`.
    pub sse_kms_key_id: Option<String>,
}

/// `S3_SSE`: server-side encryption of what lancesync writes to S3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerSideEncryption {
    /// The bucket's default.
    #[default]
    None,
    /// SSE-S3 (`AES256`).
    Aes256,
    /// SSE-KMS (`aws:kms`), with `S3_SSE_KMS_KEY_ID` or the bucket's default key.
    AwsKms,
}

impl FromStr for ServerSideEncryption {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "aes256" => Ok(Self::Aes256),
            "aws:kms" => Ok(Self::AwsKms),
            _ => Err(()),
        }
    }
}

/// S3 backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    /// `S3_BACKUP_ENABLED`.
    pub enabled: bool,
    /// `S3_BACKUP_BUCKET`.
    pub bucket: Option<String>,
    /// `S3_BACKUP_PREFIX`, without leading or trailing slashes.
    pub prefix: String,
}

/// Explicit S3 credentials. `Debug` shows `[REDACTED]`; there is no `Display`.
#[derive(Debug, Clone, Default)]
pub struct AwsCredentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<SecretString>,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<SecretString>,
    /// `AWS_SESSION_TOKEN`.
    pub session_token: Option<SecretString>,
}

/// Sync runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncSettings {
    /// `SYNC_ON_STARTUP`.
    pub on_startup: bool,
    /// `SYNC_INTERVAL`.
    pub interval: Duration,
    /// `MAX_CONCURRENT_PROCESSING`.
    pub max_concurrent_processing: u64,
    /// `CHUNK_SIZE_MB`.
    pub chunk_size_mb: u64,
    /// `MAX_RETRIES`.
    pub max_retries: u64,
    /// `CHECKSUM_ENABLED`.
    pub checksum_enabled: bool,
    /// `OCR_ENABLED`.
    pub ocr_enabled: bool,
    /// `EXTRACT_TIMEOUT`.
    pub extract_timeout: Duration,
    /// `EXTRACT_MEMORY_MB`.
    pub extract_memory_mb: u64,
    /// `DOCUMENT_TIMEOUT`.
    pub document_timeout: Duration,
    /// `MAX_DOCUMENT_TEXT_MB`.
    pub max_document_text_mb: u64,
    /// `SYNC_ENABLED_BY_DEFAULT`.
    pub enabled_by_default: bool,
    /// `MASS_DELETE_MAX_SHARE`.
    pub mass_delete_max_share: f64,
    /// `REINDEX_KEEP_DAYS`.
    pub reindex_keep_days: u64,
}

/// Which embedder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingProvider {
    /// The static model distilled from the local model when its folder holds one, else the
    /// built-in embedder.
    Auto,
    /// The local sentence-embedding model, required.
    Local,
    /// A static model distilled from the local model (token vectors averaged), required.
    Static,
    /// The built-in offline embedder (feature hashing).
    Builtin,
    /// An OpenAI-compatible server.
    OpenAi,
}

impl FromStr for EmbeddingProvider {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(EmbeddingProvider::Auto),
            "local" => Ok(EmbeddingProvider::Local),
            "static" => Ok(EmbeddingProvider::Static),
            "builtin" => Ok(EmbeddingProvider::Builtin),
            "openai" => Ok(EmbeddingProvider::OpenAi),
            _ => Err(()),
        }
    }
}

/// Where the local model lives unless `EMBEDDING_MODEL_PATH` says: under the XDG data folder,
/// as scripts/env.sh installs it.
const DEFAULT_MODEL_FOLDER: &str = "lancesync/models/all-MiniLM-L6-v2";

/// Chunking and embedding.
#[derive(Debug, Clone)]
pub struct EmbeddingSettings {
    /// `CHUNK_CHARACTERS`.
    pub chunk_characters: u64,
    /// `CHUNK_OVERLAP`.
    pub chunk_overlap: u64,
    /// `EMBEDDING_PROVIDER`.
    pub provider: EmbeddingProvider,
    /// `EMBEDDING_MODEL_PATH`, absolute (resolved: the XDG data folder's copy unless set;
    /// `None` without `HOME` or `XDG_DATA_HOME`).
    pub model_path: Option<PathBuf>,
    /// `EMBEDDING_BASE_URL`.
    pub base_url: Url,
    /// `EMBEDDING_MODEL`.
    pub model: String,
    /// `EMBEDDING_DIMENSION` (resolved: 384 builtin, 1536 openai unless set; the local model
    /// uses its own).
    pub dimension: u64,
    /// `EMBEDDING_API_KEY`.
    pub api_key: Option<SecretString>,
    /// `EMBEDDING_BATCH_SIZE`.
    pub batch_size: u64,
    /// `SEARCH_VECTOR_WEIGHT`; `None` (auto) takes the embedder's default.
    pub search_vector_weight: Option<f64>,
    /// `EMBEDDING_PRICE_PER_MILLION_TOKENS`, when set.
    pub price_per_million_tokens: Option<f64>,
}

/// Source monitoring and health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitoringSettings {
    /// `ENABLE_SOURCE_MONITORING`.
    pub enabled: bool,
    /// `SYNC_STATE_DIR`, absolute.
    pub state_dir: PathBuf,
    /// `HEALTH_CHECK_INTERVAL`.
    pub health_check_interval: Duration,
    /// `DEFAULT_POLL_INTERVAL`.
    pub default_poll_interval: Duration,
}

/// The REST API server. `Debug` shows tokens as `[REDACTED]`.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// `API_HOST`.
    pub host: String,
    /// `API_PORT`.
    pub port: u16,
    /// `API_ADMIN_TOKEN`.
    pub admin_token: Option<SecretString>,
    /// `API_USER_TOKENS`, as (user, token) pairs.
    pub user_tokens: Vec<(String, SecretString)>,
    /// `API_CORS_ORIGINS`.
    pub cors_origins: Vec<String>,
    /// `API_MAX_BODY_MB` in bytes.
    pub max_body_bytes: u64,
    /// `API_RATE_LIMIT`: requests per minute per token; 0 is no limit.
    pub rate_limit_per_minute: u64,
    /// `LOG_FORMAT` is `json`.
    pub json_logs: bool,
    /// `SEARCH_MEMORY_MB` in bytes: what the server may hold for in-memory search; 0 is none.
    pub search_memory_bytes: u64,
}

impl ApiSettings {
    /// Whether any token is configured (otherwise the server binds to loopback only).
    pub fn auth_configured(&self) -> bool {
        self.admin_token.is_some() || !self.user_tokens.is_empty()
    }
}

/// Parse `API_USER_TOKENS`: `user=token` pairs separated by commas. Problems name the pair
/// by position, never the token.
pub fn parse_user_tokens(value: &str) -> Result<Vec<(String, SecretString)>, String> {
    let mut out = Vec::new();
    for (n, pair) in value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        let Some((user, token)) = pair.split_once('=') else {
            return Err(format!("pair {} is not user=token", n + 1));
        };
        let (user, token) = (user.trim(), token.trim());
        let user_ok = (1..=128).contains(&user.len())
            && user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
        if !user_ok {
            return Err(format!("pair {}: {user:?} is not a valid user id", n + 1));
        }
        if token.len() < 16 {
            return Err(format!(
                "pair {} ({user}): the token is shorter than 16 characters",
                n + 1
            ));
        }
        // One token for two users would let each act as the other (the first pair wins).
        if let Some(earlier) = out
            .iter()
            .position(|(_, t): &(String, SecretString)| t.expose_secret() == token)
        {
            return Err(format!(
                "pairs {} ({}) and {} ({user}) have the same token; every user needs a token of their own",
                earlier + 1,
                out[earlier].0,
                n + 1
            ));
        }
        out.push((user.to_string(), SecretString::from(token.to_string())));
    }
    Ok(out)
}

/// Integration with an existing application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationSettings {
    /// `ENABLE_LEGACY_FALLBACK`.
    pub legacy_fallback: bool,
    /// `LEGACY_FALLBACK_URL`: where documents lancesync cannot take are posted.
    pub legacy_fallback_url: Option<Url>,
    /// `MIGRATE_EXISTING_DATA`.
    pub migrate_existing_data: bool,
    /// `LEGACY_LANCEDB_URI`: the original system's data (a folder or `s3://` URI).
    pub legacy_lancedb_uri: Option<String>,
    /// `LEGACY_EMBEDDING_MODEL`: the model that made the original vectors.
    pub legacy_embedding_model: Option<String>,
}

/// Every setting, typed. Built by [`crate::Config::load`]; plain data that can also be built
/// or changed by hand in tests.
#[derive(Debug, Clone)]
pub struct Settings {
    /// LanceDB location and tables.
    pub lancedb: LanceDbSettings,
    /// Frontend type and backend location.
    pub deployment: DeploymentSettings,
    /// S3 storage.
    pub s3: S3Settings,
    /// S3 backup.
    pub backup: BackupSettings,
    /// S3 credentials.
    pub credentials: AwsCredentials,
    /// Sync runs.
    pub sync: SyncSettings,
    /// Chunking and embedding.
    pub embedding: EmbeddingSettings,
    /// Monitoring.
    pub monitoring: MonitoringSettings,
    /// REST API.
    pub api: ApiSettings,
    /// Integration.
    pub integration: IntegrationSettings,
    /// Several instances.
    pub cluster: ClusterSettings,
}

/// Several sync-server instances coordinated by PostgreSQL. `Debug` hides the URL.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// `COORDINATOR_URL`; `None`: one instance, nothing shared.
    pub coordinator_url: Option<SecretString>,
    /// `COORDINATOR_TAKEOVER_SECS`.
    pub takeover: Duration,
    /// `COORDINATOR_CA_FILE`: the authorities PostgreSQL's certificate must chain to.
    pub ca_file: Option<PathBuf>,
}

/// Parses settings from the layers, recording a problem for each bad value and using the
/// default in its place so the rest can still be checked.
pub(crate) struct Reader<'a> {
    layers: &'a Layers,
    working_dir: &'a Path,
    problems: RefCell<Vec<Problem>>,
    read: RefCell<BTreeSet<&'static str>>,
}

impl<'a> Reader<'a> {
    pub fn new(layers: &'a Layers, working_dir: &'a Path) -> Self {
        Self {
            layers,
            working_dir,
            problems: RefCell::default(),
            read: RefCell::default(),
        }
    }

    pub fn finish(self) -> (Vec<Problem>, BTreeSet<&'static str>) {
        (self.problems.into_inner(), self.read.into_inner())
    }

    pub fn settings(&self) -> Settings {
        Settings {
            lancedb: LanceDbSettings {
                uri: self.location("LANCEDB_URI"),
                documents_table: self.text("LANCEDB_TABLE_NAME"),
                chunks_table: self.text("LANCEDB_CHUNKS_TABLE_NAME"),
            },
            deployment: DeploymentSettings {
                frontend: self.choice("FRONTEND_TYPE"),
                backend_location: self.backend_location(),
            },
            s3: S3Settings {
                enabled: self.bool("S3_STORAGE_ENABLED"),
                bucket: self.optional_text("S3_BUCKET"),
                prefix: trim_slashes(&self.text("S3_PREFIX")),
                region: self.text("S3_REGION"),
                endpoint: self.url("S3_ENDPOINT"),
                use_as_primary: self.bool("USE_S3_AS_PRIMARY"),
                local_cache_enabled: self.bool("LOCAL_CACHE_ENABLED"),
                cache_refresh_interval: self.seconds("LOCAL_CACHE_REFRESH_INTERVAL"),
                sse: self.choice("S3_SSE"),
                sse_kms_key_id: self.optional_text("S3_SSE_KMS_KEY_ID"),
            },
            backup: BackupSettings {
                enabled: self.bool("S3_BACKUP_ENABLED"),
                bucket: self.optional_text("S3_BACKUP_BUCKET"),
                prefix: trim_slashes(&self.text("S3_BACKUP_PREFIX")),
            },
            credentials: AwsCredentials {
                access_key_id: self.secret("AWS_ACCESS_KEY_ID"),
                secret_access_key: self.secret("AWS_SECRET_ACCESS_KEY"),
                session_token: self.secret("AWS_SESSION_TOKEN"),
            },
            sync: SyncSettings {
                on_startup: self.bool("SYNC_ON_STARTUP"),
                interval: self.seconds("SYNC_INTERVAL"),
                max_concurrent_processing: self.number("MAX_CONCURRENT_PROCESSING"),
                chunk_size_mb: self.number("CHUNK_SIZE_MB"),
                max_retries: self.number("MAX_RETRIES"),
                checksum_enabled: self.bool("CHECKSUM_ENABLED"),
                ocr_enabled: self.bool("OCR_ENABLED"),
                extract_timeout: self.seconds("EXTRACT_TIMEOUT"),
                extract_memory_mb: self.number("EXTRACT_MEMORY_MB"),
                document_timeout: self.seconds("DOCUMENT_TIMEOUT"),
                max_document_text_mb: self.number("MAX_DOCUMENT_TEXT_MB"),
                enabled_by_default: self.bool("SYNC_ENABLED_BY_DEFAULT"),
                mass_delete_max_share: self.required("MASS_DELETE_MAX_SHARE", parse_fraction),
                reindex_keep_days: self.number("REINDEX_KEEP_DAYS"),
            },
            embedding: {
                let provider = self.choice("EMBEDDING_PROVIDER");
                let default_dimension = match provider {
                    EmbeddingProvider::Auto
                    | EmbeddingProvider::Local
                    | EmbeddingProvider::Static
                    | EmbeddingProvider::Builtin => 384,
                    EmbeddingProvider::OpenAi => 1536,
                };
                EmbeddingSettings {
                    chunk_characters: self.number("CHUNK_CHARACTERS"),
                    chunk_overlap: self.number("CHUNK_OVERLAP"),
                    provider,
                    model_path: self.model_path(),
                    base_url: self.url("EMBEDDING_BASE_URL").expect("has a default"),
                    model: self.text("EMBEDDING_MODEL"),
                    dimension: self
                        .get("EMBEDDING_DIMENSION", |s| match s {
                            "auto" => Ok(None),
                            s => s
                                .parse::<u64>()
                                .map(Some)
                                .map_err(|_| "is not a whole number".to_string()),
                        })
                        .flatten()
                        .unwrap_or(default_dimension),
                    api_key: self.secret("EMBEDDING_API_KEY"),
                    batch_size: self.number("EMBEDDING_BATCH_SIZE"),
                    search_vector_weight: self
                        .get("SEARCH_VECTOR_WEIGHT", |s| match s {
                            "auto" => Ok(None),
                            s => parse_fraction(s).map(Some),
                        })
                        .flatten(),
                    price_per_million_tokens: self
                        .get("EMBEDDING_PRICE_PER_MILLION_TOKENS", parse_amount),
                }
            },
            monitoring: MonitoringSettings {
                enabled: self.bool("ENABLE_SOURCE_MONITORING"),
                state_dir: PathBuf::from(self.location("SYNC_STATE_DIR")),
                health_check_interval: self.seconds("HEALTH_CHECK_INTERVAL"),
                default_poll_interval: self.seconds("DEFAULT_POLL_INTERVAL"),
            },
            api: ApiSettings {
                host: self.text("API_HOST"),
                port: self.port("API_PORT"),
                admin_token: self.secret("API_ADMIN_TOKEN"),
                user_tokens: self
                    .get("API_USER_TOKENS", parse_user_tokens)
                    .unwrap_or_default(),
                cors_origins: self
                    .optional_text("API_CORS_ORIGINS")
                    .map(|v| {
                        v.split(',')
                            .map(|o| o.trim().trim_end_matches('/').to_string())
                            .filter(|o| !o.is_empty())
                            .collect()
                    })
                    .unwrap_or_default(),
                max_body_bytes: self.number("API_MAX_BODY_MB").saturating_mul(1_000_000),
                search_memory_bytes: self.number("SEARCH_MEMORY_MB").saturating_mul(1 << 20),
                rate_limit_per_minute: self.number("API_RATE_LIMIT"),
                json_logs: self.text("LOG_FORMAT").eq_ignore_ascii_case("json"),
            },
            cluster: ClusterSettings {
                coordinator_url: self.get("COORDINATOR_URL", |s| {
                    let url = Url::parse(s).map_err(|_| {
                        "is not a URL (postgres://user:password@host:port/database)".to_string()
                    })?;
                    match url.scheme() {
                        "postgres" | "postgresql" => Ok(SecretString::from(s.to_string())),
                        other => Err(format!(
                            "has scheme {other}: only postgres:// and postgresql:// are accepted"
                        )),
                    }
                }),
                takeover: self.seconds("COORDINATOR_TAKEOVER_SECS"),
                ca_file: self.get("COORDINATOR_CA_FILE", |s| {
                    self.layers.expand_path(s, self.working_dir)
                }),
            },
            integration: IntegrationSettings {
                legacy_fallback: self.bool("ENABLE_LEGACY_FALLBACK"),
                legacy_fallback_url: self.url("LEGACY_FALLBACK_URL"),
                migrate_existing_data: self.bool("MIGRATE_EXISTING_DATA"),
                legacy_lancedb_uri: self.optional_location("LEGACY_LANCEDB_URI"),
                legacy_embedding_model: self
                    .optional_text("LEGACY_EMBEDDING_MODEL")
                    .filter(|m| !m.trim().is_empty()),
            },
        }
    }

    /// Parse `name`'s value with `parse`; on failure record a problem and parse the default.
    fn get<T>(&self, name: &'static str, parse: impl Fn(&str) -> Result<T, String>) -> Option<T> {
        let spec =
            spec::find(name).unwrap_or_else(|| panic!("{name} is not in the settings registry"));
        assert_eq!(spec.name, name, "read settings by their own name");
        self.read.borrow_mut().insert(spec.name);
        let default = || {
            spec.default
                .value()
                .map(|d| parse(d).unwrap_or_else(|e| panic!("default of {name}: {e}")))
        };
        match self.layers.raw(spec) {
            None => default(),
            Some((raw, origin)) => match parse(raw) {
                Ok(v) => Some(v),
                Err(why) => {
                    self.problems
                        .borrow_mut()
                        .push(type_problem(spec, raw, origin, &why));
                    default()
                }
            },
        }
    }

    fn required<T>(&self, name: &'static str, parse: impl Fn(&str) -> Result<T, String>) -> T {
        self.get(name, parse)
            .unwrap_or_else(|| panic!("{name} has a default"))
    }

    fn text(&self, name: &'static str) -> String {
        self.required(name, |s| Ok(s.to_string()))
    }

    fn optional_text(&self, name: &'static str) -> Option<String> {
        self.get(name, |s| Ok(s.to_string()))
    }

    fn secret(&self, name: &'static str) -> Option<SecretString> {
        self.get(name, |s| Ok(SecretString::from(s.to_string())))
    }

    fn bool(&self, name: &'static str) -> bool {
        self.required(name, parse_bool)
    }

    fn number(&self, name: &'static str) -> u64 {
        self.required(name, |s| {
            s.parse::<u64>()
                .map_err(|_| "is not a whole number".to_string())
        })
    }

    fn port(&self, name: &'static str) -> u16 {
        self.required(name, |s| {
            s.parse::<u16>()
                .map_err(|_| "is not a port number (0 to 65535)".to_string())
        })
    }

    fn seconds(&self, name: &'static str) -> Duration {
        self.required(name, parse_duration)
    }

    fn url(&self, name: &'static str) -> Option<Url> {
        self.get(name, |s| {
            let url = Url::parse(s).map_err(|e| format!("is not a URL ({e})"))?;
            match url.scheme() {
                "http" | "https" => Ok(url),
                other => Err(format!(
                    "has scheme {other}: only http:// and https:// are accepted"
                )),
            }
        })
    }

    fn choice<T: FromStr>(&self, name: &'static str) -> T {
        self.required(name, |s| {
            s.parse::<T>()
                .map_err(|_| "is not one of the accepted words".to_string())
        })
    }

    fn backend_location(&self) -> Option<BackendLocation> {
        self.get("BACKEND_LOCATION", |s| {
            match s.to_ascii_lowercase().as_str() {
                "auto" => Ok(None),
                other => other
                    .parse()
                    .map(Some)
                    .map_err(|_| "is not one of the accepted words".to_string()),
            }
        })
        .flatten()
    }

    /// `EMBEDDING_MODEL_PATH`, or the default folder under `$XDG_DATA_HOME` or
    /// `~/.local/share`.
    fn model_path(&self) -> Option<PathBuf> {
        if let Some(set) = self.get("EMBEDDING_MODEL_PATH", |s| {
            self.layers.expand_path(s, self.working_dir)
        }) {
            return Some(set);
        }
        let env = &self.layers.env_view;
        let data = env
            .get("XDG_DATA_HOME")
            .filter(|d| Path::new(d).is_absolute())
            .map(PathBuf::from)
            .or_else(|| {
                env.get("HOME")
                    .filter(|h| !h.is_empty())
                    .map(|h| Path::new(h).join(".local/share"))
            })?;
        Some(data.join(DEFAULT_MODEL_FOLDER))
    }

    /// A local path (expanded and made absolute) or a URI (only `${VAR}` expands).
    fn location(&self, name: &'static str) -> String {
        self.optional_location(name)
            .unwrap_or_else(|| panic!("{name} has a default"))
    }

    fn optional_location(&self, name: &'static str) -> Option<String> {
        self.get(name, |s| {
            if s.contains("://") {
                crate::expand::expand(s, &self.layers.env_view, false)
            } else {
                self.layers
                    .expand_path(s, self.working_dir)
                    .map(|p| p.to_string_lossy().into_owned())
            }
        })
    }
}

fn type_problem(spec: &'static SettingSpec, raw: &str, origin: &Origin, why: &str) -> Problem {
    // A secret's value is never echoed, even when it is malformed.
    let masked;
    let shown = if spec.is_secret() {
        "****"
    } else if spec.kind == Kind::DatabaseUrl {
        masked = crate::render::mask_password(raw);
        masked.as_str()
    } else {
        raw
    };
    let hint = match spec.kind {
        Kind::Choice(words) => format!("use one of: {}", words.join(", ")),
        Kind::Bool => "use true or false".to_string(),
        kind => format!("use {}", kind.describe()),
    };
    Problem::new(
        Some(spec.name),
        format!("{}={shown} {why} (from {origin})", spec.name),
        hint,
    )
}

pub(crate) fn parse_bool(s: &str) -> Result<bool, String> {
    let lower = s.to_ascii_lowercase();
    if TRUE_WORDS.contains(&lower.as_str()) {
        Ok(true)
    } else if FALSE_WORDS.contains(&lower.as_str()) {
        Ok(false)
    } else {
        Err("is not true or false".into())
    }
}

/// Whole seconds (`300`) or a humantime duration (`5m`, `1h 30m`).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s)
        .map_err(|_| "is not a number of seconds or a duration such as 5m".into())
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err("is not a number from 0 to 1".into()),
    }
}

fn parse_amount(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err("is not a number of 0 or more".into()),
    }
}

fn trim_slashes(s: &str) -> String {
    s.trim_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans() {
        for (raw, want) in [
            ("true", true),
            ("TRUE", true),
            ("1", true),
            ("yes", true),
            ("On", true),
        ] {
            assert_eq!(parse_bool(raw), Ok(want), "{raw}");
        }
        for (raw, want) in [
            ("false", false),
            ("0", false),
            ("no", false),
            ("OFF", false),
        ] {
            assert_eq!(parse_bool(raw), Ok(want), "{raw}");
        }
        assert!(parse_bool("maybe").is_err());
        assert!(parse_bool("").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("-5").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn prefixes_lose_their_slashes() {
        assert_eq!(trim_slashes("/a/b/"), "a/b");
        assert_eq!(trim_slashes("plain"), "plain");
    }
}
