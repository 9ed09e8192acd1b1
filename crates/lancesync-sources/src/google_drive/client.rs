//! Requests to Drive (bearer token, refreshed once on a 401; rate limits waited out) and the
//! shapes of its answers.

use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{GoogleDriveSource, SCOPE};
use crate::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DriveFile {
    pub(super) id: String,
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) mime_type: String,
    #[serde(default)]
    pub(super) parents: Vec<String>,
    #[serde(default)]
    pub(super) drive_id: Option<String>,
    #[serde(default)]
    pub(super) md5_checksum: Option<String>,
    #[serde(default)]
    pub(super) head_revision_id: Option<String>,
    #[serde(default)]
    pub(super) modified_time: Option<String>,
    /// Drive sends int64 values as strings.
    #[serde(default)]
    pub(super) size: Option<String>,
    #[serde(default)]
    pub(super) trashed: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FileList {
    #[serde(default)]
    pub(super) files: Vec<DriveFile>,
    #[serde(default)]
    pub(super) next_page_token: Option<String>,
    #[serde(default)]
    pub(super) incomplete_search: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StartPageToken {
    pub(super) start_page_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ChangeList {
    #[serde(default)]
    pub(super) changes: Vec<Change>,
    #[serde(default)]
    pub(super) next_page_token: Option<String>,
    #[serde(default)]
    pub(super) new_start_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Change {
    #[serde(default)]
    pub(super) change_type: Option<String>,
    #[serde(default)]
    pub(super) removed: bool,
    #[serde(default)]
    pub(super) file_id: Option<String>,
    #[serde(default)]
    pub(super) file: Option<DriveFile>,
}

/// Google's error body: `{"error": {"code", "message", "errors": [{"reason"}]}}`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ApiErrorBody {
    #[serde(default)]
    pub(super) error: ApiError,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ApiError {
    #[serde(default)]
    pub(super) message: String,
    #[serde(default)]
    pub(super) errors: Vec<ErrorItem>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ErrorItem {
    #[serde(default)]
    pub(super) reason: String,
}

impl ApiError {
    pub(super) fn has(&self, reason: &str) -> bool {
        self.errors.iter().any(|e| e.reason == reason)
    }
}

/// What Drive answered: a success, or its refusal (a 4xx with Google's error body).
pub(super) enum Answer {
    Body(reqwest::Response),
    Refused(StatusCode, ApiError),
}

impl GoogleDriveSource {
    /// `GET {api}{path}` with the bearer token: refreshed once on 401, and Drive's 403 rate
    /// limits (`userRateLimitExceeded`, `rateLimitExceeded`) waited out like 429s. Server
    /// errors that outlast the retries are `Err`.
    pub(super) async fn get(
        &self,
        what: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Answer> {
        if !crate::http::plain_path(path) {
            return Err(self.http.remote(format!(
                "{what}: refused to request {path:?}: a Drive id holds characters ids never have"
            )));
        }
        let url = url::Url::parse_with_params(&format!("{}{path}", self.api), query)
            .map_err(|e| self.http.remote(format!("{what}: bad URL: {e}")))?;
        let mut token = self.tokens.get(None, || self.fetch_token()).await?;
        let (mut refreshed, mut limited) = (false, 0u32);
        loop {
            let response = self
                .http
                .send(what, || {
                    self.http
                        .client()
                        .get(url.clone())
                        .bearer_auth(token.expose_secret())
                })
                .await?;
            let status = response.status();
            if status.is_success() {
                return Ok(Answer::Body(response));
            }
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                return Err(self.http.failure(what, response).await);
            }
            let body: ApiErrorBody = response.json().await.unwrap_or_default();
            match status {
                StatusCode::UNAUTHORIZED if !refreshed => {
                    tracing::info!(source = %self.id, "Google refused the access token; getting a new one");
                    token = self.tokens.get(Some(&token), || self.fetch_token()).await?;
                    refreshed = true;
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(self.auth_error(format!(
                        "Google refused a fresh access token too ({}); the index is left as it is: check that the account may read Drive ({SCOPE})",
                        body.error.message
                    )));
                }
                StatusCode::FORBIDDEN
                    if (body.error.has("userRateLimitExceeded")
                        || body.error.has("rateLimitExceeded"))
                        && limited < self.http.max_retries() =>
                {
                    let wait = self.http.backoff(limited);
                    tracing::warn!(source = %self.id, what, wait_ms = wait.as_millis() as u64, "Google Drive's rate limit; waiting");
                    tokio::time::sleep(wait).await;
                    limited += 1;
                }
                _ => return Ok(Answer::Refused(status, body.error)),
            }
        }
    }

    /// A JSON answer, or the error Drive gave.
    pub(super) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<std::result::Result<T, (StatusCode, ApiError)>> {
        match self.get(what, path, query).await? {
            Answer::Body(response) => response.json().await.map(Ok).map_err(|e| {
                self.http.remote(format!(
                    "{what}: Google Drive's answer is not what its API documents: {}",
                    e.without_url()
                ))
            }),
            Answer::Refused(status, e) => Ok(Err((status, e))),
        }
    }

    pub(super) fn refused(&self, what: &str, (status, e): (StatusCode, ApiError)) -> Error {
        self.http.remote(format!(
            "{what}: Google Drive answered {status}: {}; nothing is deleted",
            e.message
        ))
    }
}
