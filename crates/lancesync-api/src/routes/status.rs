//! The system's status, a user's sync status and cleanup, starting and stopping the pipeline.

use axum::extract::State;
use lancesync_engine::CheckOptions;
use lancesync_orchestrator::HealthStatus;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::extract::{ActsFor, Admin, ForUser, UserQuery, UserScoped};
use super::{ApiResult, ok};
use crate::Api;
use crate::error::ErrorBody;
use crate::schemas::*;

#[utoipa::path(get, path = "/api/v1/status", responses(
    (status = 200, description = "Components, deployment, storage mode, redacted config, sources, metrics", body = SystemStatusAnswer),
    (status = 403, description = "Admin only", body = ErrorBody),
))]
pub(super) async fn system_status(State(api): State<Api>, _: Admin) -> ApiResult {
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
pub(super) async fn sync_status(State(api): State<Api>, ForUser(user): ForUser) -> ApiResult {
    let engine = api.orchestrator.engine();
    let status = engine.status(&user).await?;
    let last_runs = api.orchestrator.last_runs(&user).await?;
    let previous = engine.previous_generation(&user).await?;
    let sources = api.orchestrator.sources(Some(&user));
    ok(json!({
        "user_id": user,
        "status": status,
        "pending_syncs": sources.iter().filter(|s| s.pending || s.running).count(),
        "last_runs": last_runs,
        "previous_generation": previous,
    }))
}

#[utoipa::path(post, path = "/api/v1/sync/cleanup", params(UserQuery), responses(
    (status = 200, description = "Failure records cleared; the next run treats them as new", body = CleanupAnswer),
))]
pub(super) async fn sync_cleanup(State(api): State<Api>, ForUser(user): ForUser) -> ApiResult {
    let cleared = api.orchestrator.engine().clear_failures(&user).await?;
    ok(json!({ "user_id": user, "cleared": cleared }))
}

/// What `POST /api/v1/check` checks and whether it repairs.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CheckQuery {
    /// User to act for (admin).
    #[param(pattern = r"^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,127}$", example = "alice")]
    user_id: Option<String>,
    /// Only this source (default: all of the user's sources).
    #[param(example = "notes")]
    source_id: Option<String>,
    /// Also read documents whose size and modification time are unchanged and compare their
    /// content hashes.
    deep: Option<bool>,
    /// Repair what can be repaired, then check again (`remaining`).
    repair: Option<bool>,
    /// Let the repair delete past the mass-delete guard.
    allow_mass_delete: Option<bool>,
}

impl ActsFor for CheckQuery {
    fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
}

#[utoipa::path(post, path = "/api/v1/check", params(CheckQuery), responses(
    (status = 200, description = "What the check found (and repaired, and left)", body = CheckAnswer),
    (status = 404, description = "No such source", body = ErrorBody),
    (status = 409, description = "A run of the source is in progress; try again", body = ErrorBody),
))]
pub(super) async fn check(
    State(api): State<Api>,
    UserScoped { user, query }: UserScoped<CheckQuery>,
) -> ApiResult {
    let options = CheckOptions {
        deep: query.deep.unwrap_or(false),
        repair: query.repair.unwrap_or(false),
        allow_mass_delete: query.allow_mass_delete.unwrap_or(false),
    };
    let report = api
        .orchestrator
        .check(&user, query.source_id.as_deref(), options)
        .await?;
    let consistent = report.consistent();
    let mut answer = serde_json::to_value(report).map_err(|e| {
        crate::error::ApiError::from(lancesync_orchestrator::Error::Invalid(e.to_string()))
    })?;
    answer["consistent"] = consistent.into();
    ok(answer)
}

#[utoipa::path(post, path = "/api/v1/pipeline/start", responses(
    (status = 200, description = "Started", body = PipelineAnswer),
    (status = 403, description = "Admin only", body = ErrorBody),
))]
pub(super) async fn pipeline_start(State(api): State<Api>, _: Admin) -> ApiResult {
    api.orchestrator.start();
    ok(json!({ "pipeline": "started" }))
}

#[utoipa::path(post, path = "/api/v1/pipeline/stop", responses(
    (status = 200, description = "Stopped (paused)", body = PipelineAnswer),
    (status = 403, description = "Admin only", body = ErrorBody),
))]
pub(super) async fn pipeline_stop(State(api): State<Api>, _: Admin) -> ApiResult {
    api.orchestrator.stop();
    ok(json!({ "pipeline": "stopped" }))
}
