//! Errors as JSON `{error, message}` with the right status; never a panic or a stack trace.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: bad_request, unauthorized, forbidden, not_found, conflict,
    /// payload_too_large, too_many_requests, unavailable, internal.
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
}

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong.
    pub message: String,
}

impl ApiError {
    /// An error with this status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    fn code(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.code().into(),
                message: self.message.clone(),
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request(r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::bad_request(r.body_text())
    }
}

impl From<lancesync_engine::Error> for ApiError {
    fn from(e: lancesync_engine::Error) -> Self {
        use lancesync_engine::Error as E;
        match &e {
            E::InvalidId { .. } | E::InvalidRequest(_) => Self::bad_request(e.to_string()),
            E::Busy { .. } | E::Reindexing { .. } | E::SwitchWithheld(_) => {
                Self::new(StatusCode::CONFLICT, e.to_string())
            }
            E::EmbedderMismatch { .. } => Self::new(StatusCode::CONFLICT, e.to_string()),
            E::Source(_) | E::Coordinator(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            E::Storage(s) => {
                use lancesync_storage::Error as S;
                match s {
                    S::Conflict { .. } => Self::new(StatusCode::CONFLICT, e.to_string()),
                    S::NoSuchVersion { .. }
                    | S::InvalidUser { .. }
                    | S::NotInMode { .. }
                    | S::NoS3 { .. } => Self::bad_request(e.to_string()),
                    S::UnknownUser { .. } | S::NothingToRestore { .. } => {
                        Self::not_found(e.to_string())
                    }
                    _ => Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                }
            }
            _ => {
                tracing::error!(error = %e, "request failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

impl From<lancesync_orchestrator::Error> for ApiError {
    fn from(e: lancesync_orchestrator::Error) -> Self {
        use lancesync_orchestrator::Error as E;
        match e {
            E::NotFound { .. } | E::NoSuchJob(_) => Self::not_found(e.to_string()),
            E::Conflict(_) => Self::new(StatusCode::CONFLICT, e.to_string()),
            E::Forbidden(_) => Self::forbidden(e.to_string()),
            E::Invalid(_) | E::Source(_) => Self::bad_request(e.to_string()),
            E::Unsupported(_) => Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()),
            E::ShuttingDown => Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            E::Engine(e) => e.into(),
            other => Self::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}
