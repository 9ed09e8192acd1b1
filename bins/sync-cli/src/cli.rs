//! Command-line arguments.

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::{Parser, Subcommand, ValueEnum};
use lancesync_config::{EnvFile, LoadOptions};
use lancesync_sources::SourceType;

/// Keep a per-user LanceDB index true to your documents.
#[derive(Debug, Parser)]
#[command(name = "sync-cli", version, about, max_term_width = 100)]
pub struct Cli {
    /// TOML config file [default: $LANCESYNC_CONFIG, else ./lancesync.toml when present]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// .env file to read [default: ./.env when present]
    #[arg(long, global = true, value_name = "FILE")]
    pub env_file: Option<PathBuf>,

    /// Read no .env file
    #[arg(long, global = true, conflicts_with = "env_file")]
    pub no_env_file: bool,

    /// Override a setting, above every other layer (repeatable): --set MAX_RETRIES=5
    #[arg(long = "set", global = true, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub overrides: Vec<(String, String)>,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Loading options from this process plus the command line.
    pub fn load_options(&self) -> LoadOptions {
        let mut opts = LoadOptions::from_process();
        opts.config_file = self.config.clone();
        opts.env_file = match (&self.env_file, self.no_env_file) {
            (_, true) => EnvFile::Disabled,
            (Some(path), false) => EnvFile::Path(path.clone()),
            (None, false) => EnvFile::Auto,
        };
        opts.overrides = self.overrides.clone();
        opts
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate, check and show the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Sync folders given here, or the user's configured sources, once
    Sync(SyncArgs),
    /// Sync continuously: on file-system events (debounced), and fully every poll interval
    Watch(WatchArgs),
    /// Search a user's index
    Search(SearchArgs),
    /// Documents, chunks, failures and the embedder of a user's index
    Status(UserArgs),
    /// List documents whose processing failed, with the reason
    Failed(UserArgs),
    /// Retry failed documents now (sync with every failure retried)
    Retry(SyncArgs),
    /// Compare the index with its sources and with itself; --repair fixes what it can
    #[command(after_help = "Examples:\n  \
        sync-cli check                      # the user's configured sources\n  \
        sync-cli check ~/Documents --deep   # an ad-hoc folder, comparing content hashes too\n  \
        sync-cli check --repair --json\n\n\
        Exit codes: 0 consistent (after --repair: everything found was repaired), 6 problems found (or left)")]
    Check(CheckArgs),
    /// Clear failure records; the documents are treated as new by the next sync
    Cleanup(UserArgs),
    /// Rebuild a user's tables with the configured embedder and chunk settings, blue/green:
    /// searches keep answering from the old tables until one switch; --rollback brings the
    /// old ones back
    #[command(after_help = "Examples:\n  \
        sync-cli reindex --user alice              # after changing EMBEDDING_PROVIDER or CHUNK_CHARACTERS\n  \
        sync-cli reindex --user alice --rollback   # the generation before it, kept REINDEX_KEEP_DAYS\n\n\
        An interrupted re-index resumes where it stopped when run again. Exit codes: 0 done, 4 done with \
        documents that failed (listed), 3 switch withheld (a source lists far fewer documents; \
        --allow-mass-delete), 5 another re-index of the user is running")]
    Reindex(ReindexArgs),
    /// Add, list and remove a user's sources
    #[command(subcommand)]
    Sources(SourcesCommand),
    /// Copy a user's database to S3 now (only files S3 lacks); in the local-primary modes with S3
    Backup(BackupArgs),
    /// Rebuild a user's database from S3, at its latest or an earlier version
    Restore(RestoreArgs),
    /// Storage mode, locations, S3 backlog and sizes
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Adopt the original system's LanceDB data into lancesync's tables (docs/migration.md)
    #[command(after_help = "Examples:\n  \
        sync-cli migrate --from /srv/app/lancedb-original --all-users --dry-run\n  \
        sync-cli migrate --user alice --legacy-model all-MiniLM-L6-v2")]
    Migrate(MigrateArgs),
}

/// `migrate`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["user", "all_users"])))]
pub struct MigrateArgs {
    /// The original data: a folder or s3://bucket/prefix [default: LEGACY_LANCEDB_URI]
    #[arg(long, value_name = "URI")]
    pub from: Option<String>,
    /// Only this user
    #[arg(long, short)]
    pub user: Option<String>,
    /// Every user the original data has
    #[arg(long)]
    pub all_users: bool,
    /// Print the plan (users, documents, chunks, what would be embedded again); write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// The model that made the original vectors; they are kept only if it is the index's
    /// [default: LEGACY_EMBEDDING_MODEL]
    #[arg(long, value_name = "MODEL")]
    pub legacy_model: Option<String>,
    /// Report documents that are in no configured source instead of keeping them under the
    /// source `legacy`
    #[arg(long)]
    pub skip_unmatched: bool,
    /// The original layout [default: found from the data]
    #[arg(long, value_enum)]
    pub layout: Option<LayoutArg>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// The original system's layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// One database per user: URI/users/USER
    PerUser,
    /// One database whose rows carry user_id
    Shared,
}

/// `backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Every user with a local database (instead of --user)
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub user: UserArgs,
}

/// `restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// Go back to this version of the documents table (see `sync-cli status` for the current one)
    #[arg(long)]
    pub version: Option<u64>,
    #[command(flatten)]
    pub user: UserArgs,
}

/// `sync-cli storage ...`
#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Mode, where the primary, cache and backup live, last backup, backlog and sizes
    Status {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// The user and output format.
#[derive(Debug, clap::Args)]
pub struct UserArgs {
    /// Whose index
    #[arg(long, short, default_value = "default")]
    pub user: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `sync` and `retry`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Folders or files to sync as one ad-hoc source (default: the user's configured sources)
    pub paths: Vec<PathBuf>,
    /// Only this configured source
    #[arg(long, conflicts_with = "paths")]
    pub source: Option<String>,
    /// Apply deletions even when they exceed MASS_DELETE_MAX_SHARE of a source
    #[arg(long)]
    pub allow_mass_delete: bool,
    /// Write nothing: list, read and chunk as a run would, and report what it would do (every
    /// path with --json) and what its embedding would cost in tokens, time and money
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub user: UserArgs,
}

/// `check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub sync: SyncArgs,
    /// Also read documents whose size and modification time are unchanged and compare their
    /// content hashes, and read every vector for NaN and infinite values
    #[arg(long)]
    pub deep: bool,
    /// Repair what can be repaired (re-index missing, stale and damaged documents, remove
    /// orphans and duplicates, build indexes), then check again
    #[arg(long)]
    pub repair: bool,
}

/// `watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub sync: SyncArgs,
    /// Seconds between full rescans [default: the source's poll interval, else DEFAULT_POLL_INTERVAL]
    #[arg(long)]
    pub poll_interval: Option<u64>,
    /// Milliseconds of quiet after a file-system event before syncing
    #[arg(long, default_value_t = 1000)]
    pub debounce_ms: u64,
}

/// `search`.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// What to look for
    pub query: String,
    /// vector, full-text or hybrid
    #[arg(long, value_enum, default_value_t = Mode::Hybrid)]
    pub mode: Mode,
    /// Most results
    #[arg(long, short = 'n', default_value_t = 10)]
    pub limit: usize,
    /// Only this source
    #[arg(long)]
    pub source: Option<String>,
    /// Only this document type (pdf, docx, html, md, txt)
    #[arg(long = "type")]
    pub doc_type: Option<String>,
    /// Hybrid only: the vector half's share of the score, 0 to 1 (default SEARCH_VECTOR_WEIGHT)
    #[arg(long)]
    pub vector_weight: Option<f32>,
    #[command(flatten)]
    pub user: UserArgs,
}

/// Search modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Nearest vectors
    Vector,
    /// BM25 full text
    FullText,
    /// Both: a weighted sum of their 0-1 scores
    Hybrid,
}

/// `reindex`.
#[derive(Debug, clap::Args)]
pub struct ReindexArgs {
    /// Bring back the generation the last re-index replaced (while it is kept)
    #[arg(long)]
    pub rollback: bool,
    /// Switch even if a source now lists far fewer documents than the index holds
    #[arg(long, conflicts_with = "rollback")]
    pub allow_mass_delete: bool,
    /// Accepted for scripts written for the earlier re-index, which dropped the tables and
    /// had to be confirmed; nothing is dropped now
    #[arg(long, hide = true)]
    pub yes: bool,
    #[command(flatten)]
    pub user: UserArgs,
}

/// `sources ...`
#[derive(Debug, Subcommand)]
pub enum SourcesCommand {
    /// Add a source: local folders, an S3 bucket, a Dropbox folder, Google Drive or Notion
    /// (docs/sources.md)
    #[command(after_help = "Examples:\n  \
        sync-cli sources add notes ~/Notes --pattern '*.md'\n  \
        sync-cli sources add reports --type s3 --option bucket=acme-docs --option prefix=reports --option region=eu-west-1\n  \
        sync-cli sources add dbx --type dropbox --option path=/Work --option app_key=KEY --option refresh_token=env:DROPBOX_REFRESH_TOKEN")]
    Add {
        /// Source id (letters, digits, '_', '-', '.')
        id: String,
        /// Folders or files to watch (local_filesystem only)
        #[arg(required_if_eq("source_type", "local_filesystem"))]
        paths: Vec<String>,
        /// Source type
        #[arg(long = "type", default_value = "local_filesystem",
              value_parser = PossibleValuesParser::new(SourceType::names().iter().copied()))]
        source_type: String,
        /// A setting of the source type (repeatable; values parse as TOML when they can:
        /// numbers, booleans, ['a','b']). Credentials may be `env:VAR` references
        #[arg(long = "option", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        options: Vec<(String, String)>,
        /// Include glob (repeatable) [default: *.pdf *.docx *.txt *.md *.html]
        #[arg(long = "pattern")]
        patterns: Vec<String>,
        /// Exclude glob (repeatable)
        #[arg(long = "exclude")]
        excludes: Vec<String>,
        /// Seconds between polls [default: DEFAULT_POLL_INTERVAL]
        #[arg(long)]
        poll_interval: Option<u64>,
        #[command(flatten)]
        user: UserArgs,
    },
    /// List the user's sources
    List(UserArgs),
    /// Remove a source and its documents from the index
    Remove {
        /// Source id
        id: String,
        /// Keep the source's documents in the index
        #[arg(long)]
        keep_documents: bool,
        #[command(flatten)]
        user: UserArgs,
    },
}

/// `sync-cli config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Write a commented template with every setting, its default and meaning
    Generate {
        /// Template format
        #[arg(long, value_enum, default_value_t = Format::Env)]
        format: Format,
        /// Write to this file instead of stdout (refuses to overwrite without --force)
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Overwrite --output if it exists
        #[arg(long, requires = "output")]
        force: bool,
    },
    /// Print every configuration problem; exit 2 when there is any
    Check {
        /// Also check that S3 answers: the bucket exists and the credentials may list it (exit 1 if not)
        #[arg(long)]
        probe: bool,
    },
    /// Print the effective settings, where each came from, the backend location and storage mode
    Show {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
}

/// Template formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A .env file
    Env,
    /// A TOML file for --config
    Toml,
    /// The Markdown settings reference (docs/configuration.md)
    Markdown,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}
