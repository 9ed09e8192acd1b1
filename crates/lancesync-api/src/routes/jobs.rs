//! Jobs (scans, backups, restores): answering with one, and looking one up.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::Caller;
use super::{ApiResult, ok};
use crate::Api;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::schemas::*;

/// `{job_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct JobPath {
    /// The job's id, as a scan, backup or restore answered it.
    #[param(pattern = r"^job-[0-9]+$", example = "job-1")]
    job_id: String,
}

/// Wait up to `wait` seconds (0 to 300, default 30) for `job`: 200 with it finished, 202 with
/// it still running.
pub(super) async fn answer_job(
    api: &Api,
    job: lancesync_orchestrator::Job,
    wait: Option<u64>,
) -> ApiResult {
    let wait = Duration::from_secs(wait.unwrap_or(30).min(300));
    let job = api.orchestrator.wait_job(&job.id, wait).await?;
    let status = if job.state.is_finished() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(job)).into_response())
}

#[utoipa::path(get, path = "/api/v1/jobs/{job_id}", params(JobPath), responses(
    (status = 200, description = "The job: state, progress, report or error", body = JobAnswer),
    (status = 404, description = "No such job", body = ErrorBody),
))]
pub(super) async fn get_job(
    State(api): State<Api>,
    Caller(caller): Caller,
    path: Result<Path<JobPath>, PathRejection>,
) -> ApiResult {
    let Path(JobPath { job_id: id }) = path?;
    let job = api.orchestrator.find_job(&id).await?;
    // Another user's job is reported as missing, not as forbidden: ids are not secrets,
    // but whose they are is.
    if let Principal::User(own) = &caller
        && own != &job.user_id
    {
        return Err(ApiError::not_found(format!("no job {id}")));
    }
    ok(job)
}
