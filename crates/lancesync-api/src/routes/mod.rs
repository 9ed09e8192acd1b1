//! The endpoints, a file a resource: [`health`] (probes, metrics, the OpenAPI document),
//! [`sources`], [`jobs`], [`storage`], [`status`] (system and sync status, the pipeline),
//! [`search`] and [`documents`]. Every handler authenticates through the extractors of
//! [`extract`], which also resolve the user a request acts for; ids are validated (the engine
//! escapes every value that reaches a LanceDB filter) and answers are JSON.

mod documents;
mod extract;
mod health;
mod jobs;
mod reindex;
mod search;
mod sources;
mod status;
mod storage;

use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use axum::{Json, Router};
use serde::Deserialize;
use utoipa::{OpenApi, ToSchema};

use crate::Api;
use crate::error::{ApiError, ErrorBody};
use crate::openapi::CommonResponses;

use documents::{ManualDocument, UploadForm};
use search::SearchBody;
use sources::{AddSource, UpdateSource};

type ApiResult<T = Response> = Result<T, ApiError>;

// The document states the id rules the handlers enforce (lancesync-engine's `ids`) as
// patterns: user ids ^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,127}$, source ids
// ^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$ (tests/openapi.rs checks them against the validators).

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

/// The OpenAPI document, generated from the handlers below.
#[derive(OpenApi)]
#[openapi(
    info(title = "lancesync", description = "Keep a per-user LanceDB index true to users' documents."),
    paths(
        health::root, health::health, health::live, health::ready, health::metrics, health::openapi, health::docs, sources::list_sources, sources::add_source, sources::get_source, sources::update_source, sources::delete_source, sources::scan_source, jobs::get_job, status::system_status, status::sync_status, status::sync_cleanup, status::check, status::pipeline_start, status::pipeline_stop, search::search, documents::list_documents, documents::upload_document, documents::get_document, documents::delete_document, documents::manual_sync, storage::storage_status, storage::storage_backup, storage::storage_restore, reindex::reindex
    ),
    components(schemas(ErrorBody, AddSource, UpdateSource, SearchBody, ManualDocument, UploadForm, lancesync_sources::SourceType, DocTypeName, SearchModeName, DocStatus)),
    modifiers(&BearerAuth, &CommonResponses, &SourceSettings)
)]
pub struct ApiDoc;

struct BearerAuth;

/// Every source type's settings schema, from the source types themselves.
struct SourceSettings;

impl utoipa::Modify for SourceSettings {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, schema) in sources::source_config_schemas() {
            components.schemas.insert(name, schema);
        }
    }
}

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
        .route("/", get(health::root))
        .route("/health", get(health::health))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
        .route("/docs", get(health::docs))
        .route(
            "/api/v1/sources",
            get(sources::list_sources).post(sources::add_source),
        )
        .route(
            "/api/v1/sources/{source_type}/{source_id}",
            get(sources::get_source)
                .patch(sources::update_source)
                .delete(sources::delete_source),
        )
        .route(
            "/api/v1/sources/{source_type}/{source_id}/scan",
            post(sources::scan_source),
        )
        .route("/api/v1/jobs/{job_id}", get(jobs::get_job))
        .route("/api/v1/status", get(status::system_status))
        .route("/api/v1/sync/status", get(status::sync_status))
        .route("/api/v1/sync/cleanup", post(status::sync_cleanup))
        .route("/api/v1/check", post(status::check))
        .route("/api/v1/pipeline/start", post(status::pipeline_start))
        .route("/api/v1/pipeline/stop", post(status::pipeline_stop))
        .route("/api/v1/search", post(search::search))
        .route(
            "/api/v1/documents",
            get(documents::list_documents).post(documents::upload_document),
        )
        .route("/api/v1/sync/manual", post(documents::manual_sync))
        .route("/api/v1/storage/status", get(storage::storage_status))
        .route("/api/v1/storage/backup", post(storage::storage_backup))
        .route("/api/v1/storage/restore", post(storage::storage_restore))
        .route("/api/v1/reindex", post(reindex::reindex))
        .route(
            "/api/v1/documents/{doc_id}",
            get(documents::get_document).delete(documents::delete_document),
        )
}

fn ok(value: impl serde::Serialize) -> ApiResult {
    Ok(Json(value).into_response())
}
