//! Storage: status, backup to S3 and restore from it.

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{ActsFor, Admin, UserScoped};
use super::jobs::answer_job;
use super::{ApiResult, ok};
use crate::Api;
use crate::error::ErrorBody;
use crate::schemas::*;

#[utoipa::path(get, path = "/api/v1/storage/status", responses(
    (status = 200, description = "Storage mode, where the primary, cache and backup live, S3 backlog, per-user last backup", body = StorageStatusAnswer),
    (status = 403, description = "Admin only", body = ErrorBody),
))]
pub(super) async fn storage_status(State(api): State<Api>, _: Admin) -> ApiResult {
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

impl ActsFor for BackupQuery {
    fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
}

impl ActsFor for RestoreQuery {
    fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
}

#[utoipa::path(post, path = "/api/v1/storage/backup", params(BackupQuery), responses(
    (status = 200, description = "The backup job, finished: its result (files, bytes, requests, versions) or error", body = JobAnswer),
    (status = 202, description = "Still copying: poll /api/v1/jobs/{id}", body = JobAnswer),
    (status = 400, description = "This storage mode uses no S3", body = ErrorBody),
))]
pub(super) async fn storage_backup(
    State(api): State<Api>,
    UserScoped { user, query }: UserScoped<BackupQuery>,
) -> ApiResult {
    let job = api.orchestrator.backup(&user)?;
    answer_job(&api, job, query.wait).await
}

#[utoipa::path(post, path = "/api/v1/storage/restore", params(RestoreQuery), responses(
    (status = 200, description = "The restore job, finished: its result (versions, files downloaded, where the replaced copy was kept) or error", body = JobAnswer),
    (status = 202, description = "Still restoring: poll /api/v1/jobs/{id}", body = JobAnswer),
    (status = 400, description = "This storage mode uses no S3, or no such version", body = ErrorBody),
    (status = 404, description = "Nothing on S3 to restore for this user", body = ErrorBody),
    (status = 409, description = "A run or another restore holds the user's tables", body = ErrorBody),
))]
pub(super) async fn storage_restore(
    State(api): State<Api>,
    UserScoped { user, query }: UserScoped<RestoreQuery>,
) -> ApiResult {
    let job = api.orchestrator.restore(&user, query.version)?;
    answer_job(&api, job, query.wait).await
}
