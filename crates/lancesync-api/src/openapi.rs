//! The error answers the shared layers give, added to every operation of the OpenAPI document
//! they apply to, so the document lists each status a route can return: the rate limit (429)
//! and authentication (401) in front of every route, the body limit (413), the extractors'
//! rejections (400), the per-user checks (403), and the index's own conflicts (409) and
//! unavailability (503).

use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

/// Adds the shared error responses; see the module docs.
pub(crate) struct CommonResponses;

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

fn add(op: &mut Operation, status: u16, description: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| error_response(description));
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.post.as_mut(),
        item.put.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let api = path.starts_with("/api/v1/");
            // Routes whose handlers open a user's tables (or the storage under them).
            let index =
                api && !path.starts_with("/api/v1/jobs/") && !path.starts_with("/api/v1/pipeline/");
            for op in operations(item) {
                let public = op.security.as_ref().is_some_and(|s| {
                    s.iter()
                        .all(|r| *r == utoipa::openapi::security::SecurityRequirement::default())
                });
                let takes_input = op.parameters.as_ref().is_some_and(|p| !p.is_empty())
                    || op.request_body.is_some();
                add(
                    op,
                    429,
                    "Too many requests for this token or address (API_RATE_LIMIT_PER_MINUTE); retry shortly",
                );
                if !public {
                    add(op, 401, "No bearer token, or one the server does not know");
                }
                if takes_input {
                    add(
                        op,
                        400,
                        "A parameter or the body breaks the rules stated here (type, pattern, range, unknown field)",
                    );
                }
                if op.request_body.is_some() {
                    add(op, 413, "The body is over API_MAX_BODY_MB");
                }
                let for_user = op.request_body.is_some()
                    || op
                        .parameters
                        .as_ref()
                        .is_some_and(|p| p.iter().any(|p| p.name == "user_id"));
                if api && for_user {
                    add(op, 403, "A user token may act for its own user only");
                }
                if index {
                    add(
                        op,
                        409,
                        "The user's tables were built with another embedder (run sync-cli reindex), or another run holds them",
                    );
                    add(
                        op,
                        503,
                        "The database's storage (S3 in the S3 modes) cannot be reached, or the server is shutting down",
                    );
                }
            }
        }
    }
}
