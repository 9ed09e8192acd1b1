//! Who answers and how it is: the root, health and probes, metrics, the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use lancesync_orchestrator::HealthStatus;
use serde_json::json;
use utoipa::OpenApi;

use super::extract::Admin;
use super::{ApiDoc, ApiResult, ok};
use crate::Api;
use crate::error::ErrorBody;
use crate::schemas::*;

#[utoipa::path(get, path = "/", security(()), responses((status = 200, description = "Name, version, status", body = RootAnswer)))]
pub(super) async fn root(State(api): State<Api>, headers: axum::http::HeaderMap) -> ApiResult {
    // A person's browser asks for HTML first: the dashboard is what they want.
    let browser = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.starts_with("text/html"));
    if api.ui_mounted && browser {
        return Ok(axum::response::Redirect::to("/ui").into_response());
    }
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
pub(super) async fn health(State(api): State<Api>) -> ApiResult {
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
pub(super) async fn live() -> ApiResult {
    ok(json!({ "status": "alive" }))
}

#[utoipa::path(get, path = "/health/ready", security(()), responses(
    (status = 200, description = "Ready: the database can be written", body = ProbeAnswer),
    (status = 503, description = "Not ready", body = ProbeAnswer),
))]
pub(super) async fn ready(State(api): State<Api>) -> ApiResult {
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
pub(super) async fn metrics(State(api): State<Api>, _: Admin) -> ApiResult {
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
pub(super) async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[utoipa::path(get, path = "/docs", security(()), responses((status = 200, description = "A page that renders this document", content_type = "text/html")))]
pub(super) async fn docs() -> Html<&'static str> {
    Html(include_str!("../docs.html"))
}
