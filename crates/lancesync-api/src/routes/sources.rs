//! A user's sources: add, list, show, remove, scan now.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use lancesync_sources::SourceType;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ActsFor, Caller, ForUser, UserBody, UserQuery, UserScoped};
use super::jobs::answer_job;
use super::{ApiResult, ok};
use crate::Api;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::schemas::*;

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
    /// The source type; `local_filesystem` (the default) only the admin may add.
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

/// `config` of [`AddSource`]: the settings of one of the source types, by
/// [`SourceType::settings_schema`].
pub(super) fn source_config_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::{Ref, schema::AnyOfBuilder};
    let mut builder = AnyOfBuilder::new();
    let mut by_type = Vec::new();
    for ty in SourceType::all() {
        let name = ty.settings_schema(&mut Vec::new());
        by_type.push(format!("{ty} takes {name}"));
        builder = builder.item(Ref::from_schema_name(name));
    }
    builder
        .description(Some(format!(
            "by source_type: {}; unknown keys are refused",
            by_type.join(", ")
        )))
        .build()
        .into()
}

/// The settings schemas of every source type, for the OpenAPI document's components.
pub(super) fn source_config_schemas() -> Vec<(
    String,
    utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
)> {
    let mut schemas = Vec::new();
    for ty in SourceType::all() {
        ty.settings_schema(&mut schemas);
    }
    schemas
}

pub(super) fn local_filesystem() -> String {
    "local_filesystem".into()
}

impl ActsFor for AddSource {
    fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
}

#[utoipa::path(post, path = "/api/v1/sources", request_body = AddSource, responses(
    (status = 201, description = "Added and scheduled: the source, credentials masked", body = SourceAnswer),
    (status = 400, description = "Invalid spec (unknown key, bad id, bad setting)", body = ErrorBody),
    (status = 403, description = "Not allowed: local_filesystem, env: references, endpoint overrides and S3 without keys are the admin's", body = ErrorBody),
    (status = 409, description = "Id taken or reserved", body = ErrorBody),
))]
pub(super) async fn add_source(State(api): State<Api>, request: UserBody<AddSource>) -> ApiResult {
    let UserBody { user, body, caller } = request;
    let config = match toml::Value::try_from(&body.config) {
        Ok(toml::Value::Table(t)) => t,
        _ => {
            return Err(ApiError::bad_request(
                "config must be a JSON object without nulls",
            ));
        }
    };
    let info = api
        .add_source(
            &caller,
            &user,
            crate::NewSource {
                source_id: body.source_id,
                source_type: body.source_type,
                config,
                enabled: body.enabled,
                poll_interval: body.poll_interval,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

#[utoipa::path(get, path = "/api/v1/sources", params(UserQuery), responses(
    (status = 200, description = "Sources with their last run", body = SourcesAnswer),
))]
pub(super) async fn list_sources(
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

#[utoipa::path(get, path = "/api/v1/sources/{source_type}/{source_id}", params(SourcePath, UserQuery), responses(
    (status = 200, description = "The source", body = SourceAnswer),
    (status = 404, description = "No such source", body = ErrorBody),
))]
pub(super) async fn get_source(
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
pub(super) async fn delete_source(
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
    /// Write nothing: the job's report says what a scan would do (`plan`: every document by
    /// what would happen to it) and what its embedding would cost (tokens, time measured on
    /// this machine, price at EMBEDDING_PRICE_PER_MILLION_TOKENS).
    #[param(example = true)]
    dry_run: Option<bool>,
}

impl ActsFor for ScanQuery {
    fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
}

#[utoipa::path(post, path = "/api/v1/sources/{source_type}/{source_id}/scan", params(SourcePath, ScanQuery), responses(
    (status = 200, description = "The run finished: its job with the report", body = JobAnswer),
    (status = 202, description = "Still running: poll /api/v1/jobs/{id}", body = JobAnswer),
    (status = 404, description = "No such source", body = ErrorBody),
))]
pub(super) async fn scan_source(
    State(api): State<Api>,
    path: Result<Path<SourcePath>, PathRejection>,
    UserScoped { user, query }: UserScoped<ScanQuery>,
) -> ApiResult {
    let Path(p) = path?;
    let job = if query.dry_run.unwrap_or(false) {
        api.orchestrator
            .dry_run_scan(&user, &p.source_type, &p.source_id)?
    } else {
        api.orchestrator.scan(&user, &p.source_type, &p.source_id)?
    };
    answer_job(&api, job, query.wait).await
}

/// A change to a source; what is left out stays as it is.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "enabled": false, "poll_interval": 3600 }))]
pub(crate) struct UpdateSource {
    /// User it belongs to (admin only; a user token changes its own user's).
    #[schema(pattern = r"^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,127}$")]
    user_id: Option<String>,
    /// Scheduled or not.
    enabled: Option<bool>,
    /// Seconds between polls (0 means DEFAULT_POLL_INTERVAL).
    #[schema(minimum = 0)]
    poll_interval: Option<u64>,
    /// The type's settings, whole (what is left out takes the type's default), checked as
    /// when adding; inline credentials left out keep their stored values. New settings make
    /// the next run list the source in full.
    #[schema(schema_with = source_config_schema)]
    config: Option<Value>,
}

impl ActsFor for UpdateSource {
    fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
}

#[utoipa::path(patch, path = "/api/v1/sources/{source_type}/{source_id}", params(SourcePath), request_body = UpdateSource, responses(
    (status = 200, description = "Changed and rescheduled: the source, credentials masked", body = SourceAnswer),
    (status = 400, description = "Invalid settings (unknown key, bad setting)", body = ErrorBody),
    (status = 403, description = "Not allowed: what acts as the server is the admin's", body = ErrorBody),
    (status = 404, description = "No such source", body = ErrorBody),
    (status = 409, description = "A run of the source is in progress; try again once it has finished", body = ErrorBody),
))]
pub(super) async fn update_source(
    State(api): State<Api>,
    path: Result<Path<SourcePath>, PathRejection>,
    request: UserBody<UpdateSource>,
) -> ApiResult {
    let Path(p) = path?;
    let UserBody { user, body, caller } = request;
    let config = match body.config.as_ref().map(toml::Value::try_from) {
        None => None,
        Some(Ok(toml::Value::Table(t))) => Some(t),
        Some(_) => {
            return Err(ApiError::bad_request(
                "config must be a JSON object without nulls",
            ));
        }
    };
    let info = api
        .update_source(
            &caller,
            &user,
            &p.source_type,
            &p.source_id,
            crate::SourceEdit {
                enabled: body.enabled,
                poll_interval: body.poll_interval,
                config,
            },
        )
        .await?;
    ok(info)
}
