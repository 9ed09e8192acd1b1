//! The endpoints. Each handler authenticates, resolves the user it acts for, validates ids
//! (the engine escapes every value that reaches a LanceDB filter) and answers JSON.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lancesync_engine::{DocumentFilter, SearchMode, SearchRequest};
use lancesync_ingest::DocType;
use lancesync_orchestrator::HealthStatus;
use lancesync_sources::SourceSpec;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::Api;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::openapi::CommonResponses;
use crate::schemas::*;

type ApiResult<T = Response> = Result<T, ApiError>;

// The document states the id rules the handlers enforce (lancesync-engine's `ids`) as
// patterns: user ids ^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,127}$, source ids
// ^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$ (tests/openapi.rs checks them against the validators).

/// Source types (documentation only: paths take them as text).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum SourceType {
    LocalFilesystem,
    S3,
    Dropbox,
    GoogleDrive,
    Notion,
}

/// Document types a filter takes.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum DocTypeName {
    Pdf,
    Docx,
    Html,
    Md,
    Txt,
}

/// Search modes.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum SearchModeName {
    Vector,
    FullText,
    Hybrid,
}

/// Processing states a document listing filters on.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum DocStatus {
    Completed,
    Failed,
}

/// The authenticated caller.
pub(crate) struct Caller(pub Principal);

impl FromRequestParts<Api> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        api.auth.authenticate(&parts.headers).map(Caller)
    }
}

/// The user a request acts for, from its token and `?user_id=` (see
/// [`Principal::user_for`]); for endpoints whose only query parameter is `user_id`.
pub(crate) struct ForUser(pub String);

impl FromRequestParts<Api> for ForUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        let Caller(caller) = Caller::from_request_parts(parts, api).await?;
        let Query(q) = Query::<UserQuery>::from_request_parts(parts, api).await?;
        caller.user_for(q.user_id.as_deref()).map(ForUser)
    }
}

/// The OpenAPI document, generated from the handlers below.
#[derive(OpenApi)]
#[openapi(
    info(title = "lancesync", description = "Keep a per-user LanceDB index true to users' documents."),
    paths(
        root, health, live, ready, metrics, openapi, docs, list_sources, add_source, get_source,
        delete_source, scan_source, get_job, system_status, sync_status, sync_cleanup,
        pipeline_start, pipeline_stop, search, list_documents, upload_document, get_document,
        delete_document, manual_sync, storage_status, storage_backup, storage_restore
    ),
    components(schemas(ErrorBody, lancesync_sources::LocalFsConfig, lancesync_sources::S3SourceConfig, lancesync_sources::DropboxConfig, lancesync_sources::GoogleDriveConfig, lancesync_sources::NotionConfig, AddSource, SearchBody, ManualDocument, UploadForm, SourceType, DocTypeName, SearchModeName, DocStatus)),
    modifiers(&BearerAuth, &CommonResponses)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

pub(crate) fn routes() -> Router<Api> {
    Router::new()
        .route("/", get(root))
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/docs", get(docs))
        .route("/api/v1/sources", get(list_sources).post(add_source))
        .route(
            "/api/v1/sources/{source_type}/{source_id}",
            get(get_source).delete(delete_source),
        )
        .route(
            "/api/v1/sources/{source_type}/{source_id}/scan",
            post(scan_source),
        )
        .route("/api/v1/jobs/{job_id}", get(get_job))
        .route("/api/v1/status", get(system_status))
        .route("/api/v1/sync/status", get(sync_status))
        .route("/api/v1/sync/cleanup", post(sync_cleanup))
        .route("/api/v1/pipeline/start", post(pipeline_start))
        .route("/api/v1/pipeline/stop", post(pipeline_stop))
        .route("/api/v1/search", post(search))
        .route(
            "/api/v1/documents",
            get(list_documents).post(upload_document),
        )
        .route("/api/v1/sync/manual", post(manual_sync))
        .route("/api/v1/storage/status", get(storage_status))
        .route("/api/v1/storage/backup", post(storage_backup))
        .route("/api/v1/storage/restore", post(storage_restore))
        .route(
            "/api/v1/documents/{doc_id}",
            get(get_document).delete(delete_document),
        )
}

fn ok(value: impl serde::Serialize) -> ApiResult {
    Ok(Json(value).into_response())
}

/// `?user_id=`: which user an admin acts for (a user token acts for its own).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UserQuery {
    /// User to act for; admin only (a user token may name only itself).
    #[param(pattern = r"^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,127}$", example = "alice")]
    user_id: Option<String>,
}

#[utoipa::path(get, path = "/", security(()), responses((status = 200, description = "Name, version, status", body = RootAnswer)))]
async fn root(State(api): State<Api>) -> ApiResult {
    ok(json!({
        "name": "lancesync",
        "version": env!("CARGO_PKG_VERSION"),
        "status": if api.orchestrator.is_running() { "running" } else { "stopped" },
        "docs": "/docs",
        "openapi": "/openapi.json",
    }))
}

/// Health without naming users or sources (it needs no token): per-source checks are
/// folded into one `sources` component.
#[utoipa::path(get, path = "/health", security(()), responses(
    (status = 200, description = "healthy or degraded, a check per component", body = HealthAnswer),
    (status = 503, description = "unhealthy", body = HealthAnswer),
))]
async fn health(State(api): State<Api>) -> ApiResult {
    let mut h = api.orchestrator.health().await;
    let sources: Vec<HealthStatus> = h
        .components
        .iter()
        .filter(|(k, _)| k.starts_with("source:"))
        .map(|(_, c)| c.status)
        .collect();
    let bad = sources
        .iter()
        .filter(|s| **s != HealthStatus::Healthy)
        .count();
    h.components.retain(|k, _| !k.starts_with("source:"));
    h.components.insert(
        "sources".into(),
        lancesync_orchestrator::ComponentHealth {
            status: if bad == 0 {
                HealthStatus::Healthy
            } else {
                HealthStatus::Degraded
            },
            message: format!("{} source(s), {bad} need attention", sources.len()),
        },
    );
    let status = if h.status == HealthStatus::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    Ok((status, Json(h)).into_response())
}

#[utoipa::path(get, path = "/health/live", security(()), responses((status = 200, description = "The process answers", body = ProbeAnswer)))]
async fn live() -> ApiResult {
    ok(json!({ "status": "alive" }))
}

#[utoipa::path(get, path = "/health/ready", security(()), responses(
    (status = 200, description = "Ready: the database can be written", body = ProbeAnswer),
    (status = 503, description = "Not ready", body = ProbeAnswer),
))]
async fn ready(State(api): State<Api>) -> ApiResult {
    // Probes are never rate limited, so the answer is computed at most once a second however
    // often they ask (one write probe of the database folder), and callers in between share it.
    let mut cached = api.readiness.lock().await;
    let database = match &*cached {
        Some((at, health)) if at.elapsed() < std::time::Duration::from_secs(1) => health.clone(),
        _ => {
            let health = api.orchestrator.database_health().await;
            *cached = Some((std::time::Instant::now(), health.clone()));
            health
        }
    };
    drop(cached);
    if database.status != HealthStatus::Unhealthy {
        ok(json!({ "status": "ready" }))
    } else {
        Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "database": database })),
        )
            .into_response())
    }
}

#[utoipa::path(get, path = "/metrics", responses(
    (status = 200, description = "Prometheus (OpenMetrics) text", content_type = "application/openmetrics-text"),
    (status = 403, description = "Admin only", body = ErrorBody),
))]
async fn metrics(State(api): State<Api>, Caller(caller): Caller) -> ApiResult {
    caller.require_admin()?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        api.metrics.render(),
    )
        .into_response())
}

#[utoipa::path(get, path = "/openapi.json", security(()), responses((status = 200, description = "This document (OpenAPI 3.1)")))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[utoipa::path(get, path = "/docs", security(()), responses((status = 200, description = "A page that renders this document", content_type = "text/html")))]
async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

/// A source to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "user_id": "alice",
    "source_id": "notes",
    "source_type": "local_filesystem",
    "config": { "watch_paths": ["/srv/lancesync-example/notes"], "file_patterns": ["*.md"] },
    "poll_interval": 600
}))]
pub(crate) struct AddSource {
    /// User it belongs to (admin only; a user token adds to its own user).
    #[schema(pattern = r"^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,127}$")]
    user_id: Option<String>,
    /// Unique per user: letters, digits, `_`, `-`, `.`, not starting with `.`.
    #[serde(alias = "id")]
    #[schema(pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    source_id: String,
    /// `local_filesystem` (admin only), `s3`, `dropbox`, `google_drive` or `notion`.
    #[serde(default = "local_filesystem")]
    #[schema(value_type = Option<SourceType>)]
    source_type: String,
    /// Scheduled (default SYNC_ENABLED_BY_DEFAULT).
    enabled: Option<bool>,
    /// Seconds between polls (default DEFAULT_POLL_INTERVAL; 0 means the default).
    #[schema(minimum = 0)]
    poll_interval: Option<u64>,
    /// The type's settings (docs/sources.md), one of the five shapes by `source_type`;
    /// unknown keys are refused. Inline credentials are never shown back.
    #[schema(schema_with = source_config_schema)]
    config: Value,
}

/// `config` of [`AddSource`]: the settings of one of the source types.
fn source_config_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::{Ref, schema::AnyOfBuilder};
    AnyOfBuilder::new()
        .item(Ref::from_schema_name("LocalFsConfig"))
        .item(Ref::from_schema_name("S3SourceConfig"))
        .item(Ref::from_schema_name("DropboxConfig"))
        .item(Ref::from_schema_name("GoogleDriveConfig"))
        .item(Ref::from_schema_name("NotionConfig"))
        .description(Some(
            "by source_type: local_filesystem takes LocalFsConfig, s3 S3SourceConfig, dropbox DropboxConfig, google_drive GoogleDriveConfig, notion NotionConfig; unknown keys are refused",
        ))
        .build()
        .into()
}

fn local_filesystem() -> String {
    "local_filesystem".into()
}

#[utoipa::path(post, path = "/api/v1/sources", request_body = AddSource, responses(
    (status = 201, description = "Added and scheduled: the source, credentials masked", body = SourceAnswer),
    (status = 400, description = "Invalid spec (unknown key, bad id, bad setting)", body = ErrorBody),
    (status = 403, description = "Not allowed: local_filesystem, env: references, endpoint overrides and S3 without keys are the admin's", body = ErrorBody),
    (status = 409, description = "Id taken or reserved", body = ErrorBody),
))]
async fn add_source(
    State(api): State<Api>,
    Caller(caller): Caller,
    body: Result<Json<AddSource>, JsonRejection>,
) -> ApiResult {
    let Json(body) = body?;
    let user = caller.user_for(body.user_id.as_deref())?;
    // A folder source reads the server's disk: only the admin may point one anywhere.
    if body.source_type == "local_filesystem" {
        caller.require_admin().map_err(|_| {
            ApiError::forbidden("local_filesystem sources read the server's disk: only the admin token may add them")
        })?;
    }
    let config = match toml::Value::try_from(&body.config) {
        Ok(toml::Value::Table(t)) => t,
        _ => {
            return Err(ApiError::bad_request(
                "config must be a JSON object without nulls",
            ));
        }
    };
    let spec = SourceSpec {
        id: body.source_id,
        source_type: body.source_type,
        enabled: body
            .enabled
            .unwrap_or(api.orchestrator.settings().sync.enabled_by_default),
        poll_interval: body.poll_interval,
        config,
    };
    if caller.require_admin().is_err() {
        spec.check_untrusted()
            .map_err(|e| ApiError::forbidden(e.to_string()))?;
    }
    let info = api.orchestrator.add_source(&user, spec)?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

#[utoipa::path(get, path = "/api/v1/sources", params(UserQuery), responses(
    (status = 200, description = "Sources with their last run", body = SourcesAnswer),
))]
async fn list_sources(
    State(api): State<Api>,
    Caller(caller): Caller,
    query: Result<Query<UserQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = query?;
    let sources = match (&caller, q.user_id.as_deref()) {
        (Principal::Admin, None) => api.orchestrator.sources(None),
        (_, asked) => {
            let user = caller.user_for(asked)?;
            api.orchestrator.sources(Some(&user))
        }
    };
    ok(json!({ "sources": sources, "count": sources.len() }))
}

/// `{source_type}/{source_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct SourcePath {
    /// The source's type.
    #[param(value_type = SourceType, example = "local_filesystem")]
    source_type: String,
    /// The source's id.
    #[param(pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$", example = "notes")]
    source_id: String,
}

/// `{doc_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct DocPath {
    /// The document's id: the 32 hexadecimal digits lancesync gave it.
    #[param(
        pattern = r"^[0-9a-f]{32}$",
        example = "0123456789abcdef0123456789abcdef"
    )]
    doc_id: String,
}

/// `{job_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct JobPath {
    /// The job's id, as a scan, backup or restore answered it.
    #[param(pattern = r"^job-[0-9]+$", example = "job-1")]
    job_id: String,
}

#[utoipa::path(get, path = "/api/v1/sources/{source_type}/{source_id}", params(SourcePath, UserQuery), responses(
    (status = 200, description = "The source", body = SourceAnswer),
    (status = 404, description = "No such source", body = ErrorBody),
))]
async fn get_source(
    State(api): State<Api>,
    ForUser(user): ForUser,
    path: Result<Path<SourcePath>, PathRejection>,
) -> ApiResult {
    let Path(p) = path?;
    ok(api
        .orchestrator
        .source(&user, &p.source_type, &p.source_id)?)
}

#[utoipa::path(delete, path = "/api/v1/sources/{source_type}/{source_id}", params(SourcePath, UserQuery), responses(
    (status = 200, description = "Removed, with its documents", body = SourceRemoved),
    (status = 404, description = "No such source", body = ErrorBody),
))]
async fn delete_source(
    State(api): State<Api>,
    ForUser(user): ForUser,
    path: Result<Path<SourcePath>, PathRejection>,
) -> ApiResult {
    let Path(p) = path?;
    let documents = api
        .orchestrator
        .remove_source(&user, &p.source_type, &p.source_id)
        .await?;
    ok(json!({ "removed": p.source_id, "documents_removed": documents }))
}

/// `?wait=`: seconds to wait for the scan before answering with its job.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ScanQuery {
    /// User to act for (admin).
    #[param(pattern = r"^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,127}$", example = "alice")]
    user_id: Option<String>,
    /// Seconds to wait for the run (0 to 300, default 30): finished in time, the answer is
    /// 200 with the report; otherwise 202 with a job to poll.
    #[param(minimum = 0, maximum = 300, example = 5)]
    wait: Option<u64>,
}

#[utoipa::path(post, path = "/api/v1/sources/{source_type}/{source_id}/scan", params(SourcePath, ScanQuery), responses(
    (status = 200, description = "The run finished: its job with the report", body = JobAnswer),
    (status = 202, description = "Still running: poll /api/v1/jobs/{id}", body = JobAnswer),
    (status = 404, description = "No such source", body = ErrorBody),
))]
async fn scan_source(
    State(api): State<Api>,
    Caller(caller): Caller,
    path: Result<Path<SourcePath>, PathRejection>,
    query: Result<Query<ScanQuery>, QueryRejection>,
) -> ApiResult {
    let (Path(p), Query(q)) = (path?, query?);
    let user = caller.user_for(q.user_id.as_deref())?;
    let wait = Duration::from_secs(q.wait.unwrap_or(30).min(300));
    let job = api.orchestrator.scan(&user, &p.source_type, &p.source_id)?;
    let job = api.orchestrator.wait_job(&job.id, wait).await?;
    let status = if job.state.is_finished() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(job)).into_response())
}

#[utoipa::path(get, path = "/api/v1/storage/status", responses(
    (status = 200, description = "Storage mode, where the primary, cache and backup live, S3 backlog, per-user last backup", body = StorageStatusAnswer),
    (status = 403, description = "Admin only", body = ErrorBody),
))]
async fn storage_status(State(api): State<Api>, Caller(caller): Caller) -> ApiResult {
    caller.require_admin()?;
    ok(api.orchestrator.storage_status().await?)
}

/// `?user_id=&wait=` for a backup.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct BackupQuery {
    /// User to act for (admin).
    #[param(pattern = r"^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,127}$", example = "alice")]
    user_id: Option<String>,
    /// Seconds to wait for the job (0 to 300, default 30): finished in time, 200 with its
    /// result; otherwise 202 with a job to poll.
    #[param(minimum = 0, maximum = 300, example = 5)]
    wait: Option<u64>,
}

/// `?user_id=&version=&wait=` for a restore.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RestoreQuery {
    /// User to act for (admin).
    #[param(pattern = r"^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,127}$", example = "alice")]
    user_id: Option<String>,
    /// Version of the documents table to go back to; the latest copy on S3 when absent.
    #[param(minimum = 1)]
    version: Option<u64>,
    /// Seconds to wait for the job (0 to 300, default 30).
    #[param(minimum = 0, maximum = 300, example = 5)]
    wait: Option<u64>,
}

async fn answer_job(api: &Api, job: lancesync_orchestrator::Job, wait: Option<u64>) -> ApiResult {
    let wait = Duration::from_secs(wait.unwrap_or(30).min(300));
    let job = api.orchestrator.wait_job(&job.id, wait).await?;
    let status = if job.state.is_finished() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(job)).into_response())
}

#[utoipa::path(post, path = "/api/v1/storage/backup", params(BackupQuery), responses(
    (status = 200, description = "The backup job, finished: its result (files, bytes, requests, versions) or error", body = JobAnswer),
    (status = 202, description = "Still copying: poll /api/v1/jobs/{id}", body = JobAnswer),
    (status = 400, description = "This storage mode uses no S3", body = ErrorBody),
))]
async fn storage_backup(
    State(api): State<Api>,
    Caller(caller): Caller,
    query: Result<Query<BackupQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = query?;
    let user = caller.user_for(q.user_id.as_deref())?;
    let job = api.orchestrator.backup(&user)?;
    answer_job(&api, job, q.wait).await
}

#[utoipa::path(post, path = "/api/v1/storage/restore", params(RestoreQuery), responses(
    (status = 200, description = "The restore job, finished: its result (versions, files downloaded, where the replaced copy was kept) or error", body = JobAnswer),
    (status = 202, description = "Still restoring: poll /api/v1/jobs/{id}", body = JobAnswer),
    (status = 400, description = "This storage mode uses no S3, or no such version", body = ErrorBody),
    (status = 404, description = "Nothing on S3 to restore for this user", body = ErrorBody),
    (status = 409, description = "A run or another restore holds the user's tables", body = ErrorBody),
))]
async fn storage_restore(
    State(api): State<Api>,
    Caller(caller): Caller,
    query: Result<Query<RestoreQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = query?;
    let user = caller.user_for(q.user_id.as_deref())?;
    let job = api.orchestrator.restore(&user, q.version)?;
    answer_job(&api, job, q.wait).await
}

#[utoipa::path(get, path = "/api/v1/jobs/{job_id}", params(JobPath), responses(
    (status = 200, description = "The job: state, progress, report or error", body = JobAnswer),
    (status = 404, description = "No such job", body = ErrorBody),
))]
async fn get_job(
    State(api): State<Api>,
    Caller(caller): Caller,
    path: Result<Path<JobPath>, PathRejection>,
) -> ApiResult {
    let Path(JobPath { job_id: id }) = path?;
    let job = api.orchestrator.job(&id)?;
    // Another user's job is reported as missing, not as forbidden: ids are not secrets,
    // but whose they are is.
    if let Principal::User(own) = &caller
        && own != &job.user_id
    {
        return Err(ApiError::not_found(format!("no job {id}")));
    }
    ok(job)
}

#[utoipa::path(get, path = "/api/v1/status", responses(
    (status = 200, description = "Components, deployment, storage mode, redacted config, sources, metrics", body = SystemStatusAnswer),
    (status = 403, description = "Admin only", body = ErrorBody),
))]
async fn system_status(State(api): State<Api>, Caller(caller): Caller) -> ApiResult {
    caller.require_admin()?;
    let o = &api.orchestrator;
    let settings = o.settings();
    let health = o.health().await;
    let counters = o.counters();
    let sources = o.sources(None);
    let failed_syncs = sources
        .iter()
        .filter(|s| s.last_error.is_some() || s.last_report.as_ref().is_some_and(|r| r.failed > 0))
        .count();
    let config = &api.config;
    ok(json!({
        "status": health.status,
        "components": health.components,
        "pipeline_running": o.is_running(),
        "backend_location": config.backend().location,
        "backend_location_reason": config.backend().to_string(),
        "frontend_type": settings.deployment.frontend,
        "storage_mode": config.storage_mode(),
        "recommended_storage_mode": config.recommended_mode(),
        "config": config.explain(),
        "sources": sources,
        "metrics": {
            "pending_syncs": counters.pending_runs,
            "failed_syncs": failed_syncs,
            "storage_service_available": health.components.get("database").is_some_and(|d| d.status != HealthStatus::Unhealthy),
            "s3_primary_enabled": settings.s3.enabled && settings.s3.use_as_primary,
            "s3_backup_enabled": settings.backup.enabled,
            "local_cache_enabled": settings.s3.local_cache_enabled,
            "s3_backlog_users": o.engine().storage().backlog().len(),
            "sources_monitored": sources.iter().filter(|s| s.enabled && settings.monitoring.enabled).count(),
            "runs": counters,
        },
        "embedder": o.engine().embedder(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": health.uptime_seconds,
    }))
}

#[utoipa::path(get, path = "/api/v1/sync/status", params(UserQuery), responses(
    (status = 200, description = "A user's counts and last runs", body = SyncStatusAnswer),
))]
async fn sync_status(State(api): State<Api>, ForUser(user): ForUser) -> ApiResult {
    let engine = api.orchestrator.engine();
    let status = engine.status(&user).await?;
    let last_runs = engine.last_runs(&user).await?;
    let sources = api.orchestrator.sources(Some(&user));
    ok(json!({
        "user_id": user,
        "status": status,
        "pending_syncs": sources.iter().filter(|s| s.pending || s.running).count(),
        "last_runs": last_runs,
    }))
}

#[utoipa::path(post, path = "/api/v1/sync/cleanup", params(UserQuery), responses(
    (status = 200, description = "Failure records cleared; the next run treats them as new", body = CleanupAnswer),
))]
async fn sync_cleanup(State(api): State<Api>, ForUser(user): ForUser) -> ApiResult {
    let cleared = api.orchestrator.engine().clear_failures(&user).await?;
    ok(json!({ "user_id": user, "cleared": cleared }))
}

#[utoipa::path(post, path = "/api/v1/pipeline/start", responses(
    (status = 200, description = "Started", body = PipelineAnswer),
    (status = 403, description = "Admin only", body = ErrorBody),
))]
async fn pipeline_start(State(api): State<Api>, Caller(caller): Caller) -> ApiResult {
    caller.require_admin()?;
    api.orchestrator.start();
    ok(json!({ "pipeline": "started" }))
}

#[utoipa::path(post, path = "/api/v1/pipeline/stop", responses(
    (status = 200, description = "Stopped (paused)", body = PipelineAnswer),
    (status = 403, description = "Admin only", body = ErrorBody),
))]
async fn pipeline_stop(State(api): State<Api>, Caller(caller): Caller) -> ApiResult {
    caller.require_admin()?;
    api.orchestrator.stop();
    ok(json!({ "pipeline": "stopped" }))
}

/// A search.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "query": "tomato watering", "mode": "hybrid", "limit": 5 }))]
pub(crate) struct SearchBody {
    /// User to search (admin; a user token searches its own).
    #[schema(pattern = r"^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,127}$")]
    user_id: Option<String>,
    /// What to look for: not blank.
    #[schema(min_length = 1, pattern = r"\S")]
    query: String,
    /// vector, full_text or hybrid (default).
    #[serde(default)]
    #[schema(value_type = Option<SearchModeName>)]
    mode: Option<SearchMode>,
    /// 1 to 1000 (default 10).
    #[schema(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Only this source.
    #[schema(pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    source_id: Option<String>,
    /// Only this type.
    #[schema(value_type = Option<DocTypeName>)]
    doc_type: Option<DocType>,
}

#[utoipa::path(post, path = "/api/v1/search", request_body = SearchBody, responses(
    (status = 200, description = "Matching chunks, best first", body = SearchAnswer),
    (status = 400, description = "Invalid request", body = ErrorBody),
))]
async fn search(
    State(api): State<Api>,
    Caller(caller): Caller,
    body: Result<Json<SearchBody>, JsonRejection>,
) -> ApiResult {
    let Json(b) = body?;
    let user = caller.user_for(b.user_id.as_deref())?;
    let request = SearchRequest {
        query: b.query,
        mode: b.mode.unwrap_or_default(),
        limit: b.limit.unwrap_or(10),
        source_id: b.source_id,
        doc_type: b.doc_type,
    };
    let results = api.orchestrator.engine().search(&user, &request).await?;
    ok(json!({ "user_id": user, "count": results.len(), "results": results }))
}

/// Listing filters and paging.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DocumentsQuery {
    /// User (admin).
    #[param(pattern = r"^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,127}$", example = "alice")]
    user_id: Option<String>,
    /// Only this source.
    #[param(pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    source_id: Option<String>,
    /// Only this type.
    #[param(value_type = Option<DocTypeName>)]
    doc_type: Option<DocType>,
    /// completed or failed.
    #[param(value_type = Option<DocStatus>)]
    status: Option<String>,
    /// Items to skip (default 0).
    #[param(minimum = 0)]
    offset: Option<usize>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000, example = 20)]
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/documents", params(DocumentsQuery), responses(
    (status = 200, description = "A page of documents", body = DocumentsAnswer),
))]
async fn list_documents(
    State(api): State<Api>,
    Caller(caller): Caller,
    query: Result<Query<DocumentsQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = query?;
    let user = caller.user_for(q.user_id.as_deref())?;
    let filter = DocumentFilter {
        source_id: q.source_id,
        doc_type: q.doc_type,
        status: q.status,
    };
    let page = api
        .orchestrator
        .engine()
        .documents(&user, &filter, q.offset.unwrap_or(0), q.limit.unwrap_or(50))
        .await?;
    ok(page)
}

#[utoipa::path(get, path = "/api/v1/documents/{doc_id}", params(DocPath, UserQuery), responses(
    (status = 200, description = "The document with its chunks", body = DocumentAnswer),
    (status = 404, description = "No such document", body = ErrorBody),
))]
async fn get_document(
    State(api): State<Api>,
    ForUser(user): ForUser,
    path: Result<Path<DocPath>, PathRejection>,
) -> ApiResult {
    let Path(DocPath { doc_id }) = path?;
    match api.orchestrator.engine().document(&user, &doc_id).await? {
        Some(doc) => ok(doc),
        None => Err(ApiError::not_found(format!(
            "user {user} has no document {doc_id}"
        ))),
    }
}

#[utoipa::path(delete, path = "/api/v1/documents/{doc_id}", params(DocPath, UserQuery), responses(
    (status = 200, description = "Removed from the index (it returns if its source still has it)", body = DocumentRemoved),
    (status = 404, description = "No such document", body = ErrorBody),
))]
async fn delete_document(
    State(api): State<Api>,
    ForUser(user): ForUser,
    path: Result<Path<DocPath>, PathRejection>,
) -> ApiResult {
    let Path(DocPath { doc_id }) = path?;
    if api.orchestrator.delete_document(&user, &doc_id).await? {
        ok(json!({ "deleted": doc_id }))
    } else {
        Err(ApiError::not_found(format!(
            "user {user} has no document {doc_id}"
        )))
    }
}

/// Answer for an indexed upload: 201 when it was indexed, 422 when it could not be processed
/// (unsupported type, corrupt file), with the document row either way.
fn indexed(doc: lancesync_engine::DocumentInfo) -> ApiResult {
    let status = if doc.processing_status == "completed" {
        StatusCode::CREATED
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((
        status,
        Json(json!({
            "doc_id": doc.doc_id,
            "chunks": doc.total_chunks,
            "processing_status": doc.processing_status,
            "error_message": doc.error_message,
            "document": doc,
        })),
    )
        .into_response())
}

/// The multipart form of an upload.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct UploadForm {
    /// The document; its file name's extension decides the type (pdf, docx, html, md, txt).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

#[utoipa::path(post, path = "/api/v1/documents", params(UserQuery),
    request_body(content = UploadForm, content_type = "multipart/form-data", description = "A `file` field (its file name decides the type: pdf, docx, html, md, txt)"),
    responses(
        (status = 201, description = "Indexed: doc_id and chunk count", body = IndexedAnswer),
        (status = 413, description = "Over API_MAX_BODY_MB", body = ErrorBody),
        (status = 415, description = "A type lancesync does not read (by the file name's extension); nothing stored", body = ErrorBody),
        (status = 422, description = "Stored but not processable: the row says why (error_message)", body = IndexedAnswer),
))]
async fn upload_document(
    State(api): State<Api>,
    ForUser(user): ForUser,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult {
    let mut multipart = multipart.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let multipart_error =
        |e: axum::extract::multipart::MultipartError| ApiError::new(e.status(), e.body_text());
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("file") {
            continue;
        }
        let filename = field.file_name().map(str::to_string).ok_or_else(|| {
            ApiError::bad_request(
                "the file field needs a file name (its extension decides the type)",
            )
        })?;
        let bytes = field.bytes().await.map_err(multipart_error)?;
        let doc = api.orchestrator.upload(&user, &filename, &bytes).await?;
        return indexed(doc);
    }
    Err(ApiError::bad_request(
        "send the document in a multipart field named file",
    ))
}

/// A document given in the request: text, or bytes in base64.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "filename": "tides.md", "text": "# Tides\n\nThe spring tide floods the marsh." }))]
pub(crate) struct ManualDocument {
    /// User (admin; a user token syncs into its own index).
    #[schema(pattern = r"^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,127}$")]
    user_id: Option<String>,
    /// File name; its extension decides the type (notes.md, report.pdf).
    #[schema(
        pattern = r"\.([Pp][Dd][Ff]|[Dd][Oo][Cc][Xx]|[Hh][Tt][Mm][Ll]|[Hh][Tt][Mm]|[Xx][Hh][Tt][Mm][Ll]|[Mm][Dd]|[Mm][Aa][Rr][Kk][Dd][Oo][Ww][Nn]|[Tt][Xx][Tt]|[Tt][Ee][Xx][Tt])$"
    )]
    filename: String,
    /// The content as text (md, txt, html).
    text: Option<String>,
    /// The content as base64 bytes (pdf, docx, or any type).
    content_base64: Option<String>,
    /// Chunks made by the caller, in order, each with its `text` and optionally its
    /// `embedding` (missing ones are computed). With chunks, `text`/`content_base64` are not
    /// given: the document is written as chunked, under the `manual` source.
    #[schema(value_type = Option<Vec<Object>>)]
    chunks: Option<Vec<lancesync_engine::PrecomputedChunk>>,
    /// Title (with chunks; default: the file name).
    title: Option<String>,
    /// Where the document lives in the caller's system (with chunks; default: the file name).
    uri: Option<String>,
    /// Properties kept with the document (with chunks).
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

#[utoipa::path(post, path = "/api/v1/sync/manual", request_body = ManualDocument, responses(
    (status = 201, description = "Indexed: doc_id and chunk count", body = IndexedAnswer),
    (status = 400, description = "Invalid request", body = ErrorBody),
    (status = 415, description = "A type lancesync does not read (by the file name's extension); nothing stored", body = ErrorBody),
    (status = 422, description = "Stored but not processable: the row says why (error_message)", body = IndexedAnswer),
))]
async fn manual_sync(
    State(api): State<Api>,
    Caller(caller): Caller,
    body: Result<Json<ManualDocument>, JsonRejection>,
) -> ApiResult {
    use base64::Engine as _;
    let Json(b) = body?;
    let user = caller.user_for(b.user_id.as_deref())?;
    if let Some(chunks) = b.chunks {
        if b.text.is_some() || b.content_base64.is_some() {
            return Err(ApiError::bad_request(
                "give either chunks or the content (text or content_base64), not both",
            ));
        }
        let doc_type = DocType::from_path(std::path::Path::new(&b.filename)).ok_or_else(|| {
            ApiError::bad_request(format!(
                "{:?}: the file name's extension must be one of pdf, docx, html, md, txt",
                b.filename
            ))
        })?;
        let doc = lancesync_engine::PrecomputedDocument {
            uri: b.uri.unwrap_or_else(|| b.filename.clone()),
            title: b.title.unwrap_or(b.filename),
            doc_type,
            metadata: b.metadata.unwrap_or(Value::Null),
            chunks,
        };
        let doc = api.orchestrator.ingest_precomputed(&user, doc).await?;
        return indexed(doc);
    }
    let bytes = match (b.text, b.content_base64) {
        (Some(text), None) => text.into_bytes(),
        (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| ApiError::bad_request(format!("content_base64 is not base64: {e}")))?,
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of text and content_base64",
            ));
        }
    };
    let doc = api.orchestrator.upload(&user, &b.filename, &bytes).await?;
    indexed(doc)
}
