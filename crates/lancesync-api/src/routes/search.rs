//! Searching a user's chunks.

use axum::extract::State;
use lancesync_engine::{SearchMode, SearchRequest};
use lancesync_ingest::DocType;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::extract::{ActsFor, UserBody};
use super::{ApiResult, DocTypeName, SearchModeName, ok};
use crate::Api;
use crate::error::ErrorBody;
use crate::schemas::*;

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
    /// Hybrid only: the vector half's share of the score, 0 to 1 (default
    /// `SEARCH_VECTOR_WEIGHT`, or the embedder's own).
    #[schema(minimum = 0, maximum = 1)]
    vector_weight: Option<f32>,
}

impl ActsFor for SearchBody {
    fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
}

#[utoipa::path(post, path = "/api/v1/search", request_body = SearchBody, responses(
    (status = 200, description = "Matching chunks, best first", body = SearchAnswer),
    (status = 400, description = "Invalid request", body = ErrorBody),
))]
pub(super) async fn search(
    State(api): State<Api>,
    UserBody { user, body: b, .. }: UserBody<SearchBody>,
) -> ApiResult {
    let request = SearchRequest {
        query: b.query,
        mode: b.mode.unwrap_or_default(),
        limit: b.limit.unwrap_or(10),
        source_id: b.source_id,
        doc_type: b.doc_type,
        vector_weight: b.vector_weight,
    };
    let results = api.orchestrator.engine().search(&user, &request).await?;
    ok(json!({ "user_id": user, "count": results.len(), "results": results }))
}
