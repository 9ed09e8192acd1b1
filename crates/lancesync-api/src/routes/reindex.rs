//! Blue/green re-index of a user's tables, and its rollback.

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use super::ApiResult;
use super::extract::{ActsFor, UserScoped};
use super::jobs::answer_job;
use crate::Api;
use crate::error::ErrorBody;
use crate::schemas::*;

/// `?user_id=&rollback=&allow_mass_delete=&wait=` for a re-index.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReindexQuery {
    /// User to act for (admin).
    #[param(pattern = r"^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,127}$", example = "alice")]
    user_id: Option<String>,
    /// Bring back the generation the last re-index replaced instead (kept for
    /// REINDEX_KEEP_DAYS).
    rollback: Option<bool>,
    /// Switch even if a source now lists far fewer documents than the index holds.
    allow_mass_delete: Option<bool>,
    /// Seconds to wait for the job (0 to 300, default 30): finished in time, 200 with its
    /// result; otherwise 202 with a job to poll.
    #[param(minimum = 0, maximum = 300, example = 5)]
    wait: Option<u64>,
}

impl ActsFor for ReindexQuery {
    fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
}

#[utoipa::path(post, path = "/api/v1/reindex", params(ReindexQuery), responses(
    (status = 200, description = "The job, finished: its result (embedders before and after, the build's runs, documents, chunks, until when rollback is possible) or error", body = JobAnswer),
    (status = 202, description = "Still re-indexing (searches keep answering from the old tables): poll /api/v1/jobs/{id}, whose done/total count the documents read", body = JobAnswer),
    (status = 400, description = "Invalid parameters", body = ErrorBody),
))]
pub(super) async fn reindex(
    State(api): State<Api>,
    UserScoped { user, query }: UserScoped<ReindexQuery>,
) -> ApiResult {
    let job = api.orchestrator.reindex(
        &user,
        query.rollback.unwrap_or(false),
        query.allow_mass_delete.unwrap_or(false),
    )?;
    answer_job(&api, job, query.wait).await
}
