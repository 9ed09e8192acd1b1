//! Schemas of the success answers, for the OpenAPI document: the fields each answer always
//! has (required) and may have, with nested parts as objects (their fields are described in
//! docs/api.md). The answers themselves are serialized by the handlers and the crates below;
//! tests/openapi.rs checks every operation's real answer against these.

#![allow(dead_code)]

use serde_json::Value;
use utoipa::ToSchema;

/// `GET /`.
#[derive(ToSchema)]
pub(crate) struct RootAnswer {
    /// `lancesync`.
    name: String,
    /// The server's version.
    version: String,
    /// `running` or `stopped` (the pipeline).
    status: String,
    /// Where the rendered document is.
    docs: String,
    /// Where this document is.
    openapi: String,
}

/// `GET /health`.
#[derive(ToSchema)]
pub(crate) struct HealthAnswer {
    /// `healthy`, `degraded` or `unhealthy`.
    status: String,
    /// A check per component: `{status, message}`.
    #[schema(value_type = Object)]
    components: Value,
    /// The server's version.
    version: String,
    /// Seconds since start.
    uptime_seconds: u64,
    /// Users with an index.
    users: u64,
    /// When checked (RFC 3339).
    checked_at: String,
}

/// A probe's answer.
#[derive(ToSchema)]
pub(crate) struct ProbeAnswer {
    /// `alive`, `ready` or `not_ready`.
    status: String,
    /// The database's check, when not ready.
    #[schema(value_type = Option<Object>)]
    database: Option<Value>,
}

/// A source, credentials masked.
#[derive(ToSchema)]
pub(crate) struct SourceAnswer {
    /// User.
    user_id: String,
    /// Source id.
    source_id: String,
    /// Source type.
    source_type: String,
    /// Scheduled.
    enabled: bool,
    /// The type's settings; inline credentials show as `********`.
    #[schema(value_type = Object)]
    config: Value,
    /// Seconds between scheduled runs.
    poll_interval_seconds: u64,
    /// A run is in progress (in a cluster: on any instance).
    running: bool,
    /// In a cluster: the instance running it, when another instance than this one does.
    running_on: Option<String>,
    /// A scheduled run waits for the pipeline.
    pending: bool,
    /// Runs since the server started (in a cluster: the cluster's runs of the source).
    runs: u64,
    /// The last run's report.
    #[schema(value_type = Option<Object>)]
    last_report: Option<Value>,
    /// The last run's error, if it failed as a whole.
    last_error: Option<String>,
    /// When the last run finished.
    last_run_at: Option<String>,
    /// When the schedule runs the source next (absent when disabled, due or running).
    next_run_at: Option<String>,
    /// The run in progress, while `running`: `{done, total}` documents (`total` null until
    /// the source is listed).
    #[schema(value_type = Option<Object>)]
    progress: Option<Value>,
}

/// `GET /api/v1/sources`.
#[derive(ToSchema)]
pub(crate) struct SourcesAnswer {
    /// The sources.
    sources: Vec<SourceAnswer>,
    /// How many.
    count: u64,
}

/// A source removed.
#[derive(ToSchema)]
pub(crate) struct SourceRemoved {
    /// Its id.
    removed: String,
    /// Documents removed from the index with it.
    documents_removed: u64,
}

/// A job: a scan, a backup or a restore.
#[derive(ToSchema)]
pub(crate) struct JobAnswer {
    /// `job-N`.
    id: String,
    /// `scan`, `backup` or `restore`.
    kind: String,
    /// User.
    user_id: String,
    /// Source (scans).
    source_id: String,
    /// `queued`, `running`, `succeeded` or `failed`.
    state: String,
    /// Documents done.
    done: u64,
    /// Documents to do.
    total: u64,
    /// When created.
    created_at: String,
    /// When finished.
    finished_at: Option<String>,
    /// A scan's report (a dry run's has `dry_run: true`, and `plan`: what a scan would do
    /// and what its embedding would cost).
    #[schema(value_type = Option<Object>)]
    report: Option<Value>,
    /// A backup's or restore's result.
    #[schema(value_type = Option<Object>)]
    result: Option<Value>,
    /// Why it failed.
    error: Option<String>,
}

/// `POST /api/v1/search`.
#[derive(ToSchema)]
pub(crate) struct SearchAnswer {
    /// The user searched.
    user_id: String,
    /// Hits.
    count: u64,
    /// Chunks, best first: doc_id, source_id, source_uri, title, doc_type, chunk_index,
    /// chunk_text, score (0 to 1, higher is better: cosine similarity for vector, BM25 relative
    /// to the best hit for full text, their weighted sum for hybrid).
    #[schema(value_type = Vec<Object>)]
    results: Vec<Value>,
}

/// A page of documents.
#[derive(ToSchema)]
pub(crate) struct DocumentsAnswer {
    /// The documents.
    #[schema(value_type = Vec<Object>)]
    items: Vec<Value>,
    /// Matching in all.
    total: u64,
    /// Skipped.
    offset: u64,
    /// Page size.
    limit: u64,
}

/// A document with its chunks.
#[derive(ToSchema)]
pub(crate) struct DocumentAnswer {
    /// Id.
    doc_id: String,
    /// Source.
    source_id: String,
    /// Where it is.
    source_uri: String,
    /// Title.
    title: String,
    /// `completed` or `failed`.
    processing_status: String,
    /// Its chunks: chunk_id, chunk_index, chunk_text, metadata.
    #[schema(value_type = Vec<Object>)]
    chunks: Vec<Value>,
}

/// A document removed.
#[derive(ToSchema)]
pub(crate) struct DocumentRemoved {
    /// Its id.
    deleted: String,
}

/// A document sent to the API, indexed (201) or stored as not processable (422).
#[derive(ToSchema)]
pub(crate) struct IndexedAnswer {
    /// Id.
    doc_id: String,
    /// Chunks written.
    chunks: u64,
    /// `completed` or `failed`.
    processing_status: String,
    /// Why it could not be processed.
    error_message: Option<String>,
    /// The document's row.
    #[schema(value_type = Object)]
    document: Value,
}

/// `GET /api/v1/sync/status`.
#[derive(ToSchema)]
pub(crate) struct SyncStatusAnswer {
    /// User.
    user_id: String,
    /// Counts, per source, embedder, table versions.
    #[schema(value_type = Object)]
    status: Value,
    /// Runs waiting or in progress.
    pending_syncs: u64,
    /// Each source's last report.
    #[schema(value_type = Vec<Object>)]
    last_runs: Vec<Value>,
    /// The generation the last re-index replaced, while it is kept for rollback (its
    /// embedder, chunk settings, table versions, `replaced_at`, `keep_until`); null otherwise.
    #[schema(value_type = Option<Object>)]
    previous_generation: Option<Value>,
}

/// `POST /api/v1/sync/cleanup`.
#[derive(ToSchema)]
pub(crate) struct CleanupAnswer {
    /// User.
    user_id: String,
    /// Failure records cleared.
    cleared: u64,
}

/// `POST /api/v1/check`.
#[derive(ToSchema)]
pub(crate) struct CheckAnswer {
    /// User.
    user_id: String,
    /// The sources compared with the index.
    sources: Vec<String>,
    /// Whether content hashes were compared.
    deep: bool,
    /// True when nothing was found, or everything found was repaired.
    consistent: bool,
    /// Each kind of problem found: `kind` (not_indexed, gone_from_source, stale,
    /// content_changed, unreadable, chunk_count_mismatch, orphan_chunks, duplicate_chunks,
    /// bad_vectors, embedder_mismatch, chunking_changed, index_missing, index_behind,
    /// cursor_without_documents, backup_behind, backup_conflict, reindex_unfinished), `source_id`
    /// for a source's problems, `count`, and up to five `examples`.
    #[schema(value_type = Vec<Object>)]
    problems: Vec<Value>,
    /// What the repair did (`orphans_removed`, `documents_reindexed`, `runs`,
    /// `indexes_built`, `not_repaired`), when asked.
    #[schema(value_type = Option<Object>)]
    repair: Option<Value>,
    /// The problems a check after the repair still found.
    #[schema(value_type = Option<Vec<Object>>)]
    remaining: Option<Vec<Value>>,
    /// Wall time.
    duration_ms: u64,
}

/// `POST /api/v1/pipeline/*`.
#[derive(ToSchema)]
pub(crate) struct PipelineAnswer {
    /// `started` or `stopped`.
    pipeline: String,
}

/// `GET /api/v1/status`.
#[derive(ToSchema)]
pub(crate) struct SystemStatusAnswer {
    /// Overall health.
    status: String,
    /// A check per component.
    #[schema(value_type = Object)]
    components: Value,
    /// Whether scheduled runs run.
    pipeline_running: bool,
    /// `cloud` or `local`.
    backend_location: String,
    /// Why.
    backend_location_reason: String,
    /// The storage mode in effect.
    storage_mode: String,
    /// The effective configuration, secrets as `****`.
    #[schema(value_type = Object)]
    config: Value,
    /// Every user's sources.
    #[schema(value_type = Vec<Object>)]
    sources: Vec<Value>,
    /// The seeds' metrics and run counters.
    #[schema(value_type = Object)]
    metrics: Value,
    /// The server's version.
    version: String,
    /// Seconds since start.
    uptime_seconds: u64,
}

/// `GET /api/v1/storage/status`.
#[derive(ToSchema)]
pub(crate) struct StorageStatusAnswer {
    /// The storage mode.
    mode: String,
    /// Where databases are written.
    primary: String,
    /// The local replica (cache mode).
    cache: Option<String>,
    /// The backup target.
    backup: Option<String>,
    /// Users whose S3 copy is behind.
    backlog: u64,
    /// Per user: last backup, pending copies, conflicts.
    #[schema(value_type = Vec<Object>)]
    users: Vec<Value>,
}
