//! Tokens (refreshed before they expire and once on a 401), RPC calls and the shapes of
//! Dropbox's answers.

use secrecy::ExposeSecret;
use std::time::Duration;

use reqwest::StatusCode;
use secrecy::SecretString;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{Auth, DropboxSource};
use crate::oauth::{TokenAnswer, request_token};
use crate::{Error, Result};

#[derive(Deserialize)]
pub(super) struct ListFolderResult {
    pub(super) entries: Vec<Metadata>,
    pub(super) cursor: String,
    pub(super) has_more: bool,
}

#[derive(Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub(super) enum Metadata {
    File(FileMetadata),
    Deleted(DeletedMetadata),
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
pub(super) struct FileMetadata {
    pub(super) name: String,
    pub(super) path_lower: Option<String>,
    pub(super) path_display: Option<String>,
    pub(super) server_modified: String,
    pub(super) rev: String,
    pub(super) size: u64,
    pub(super) content_hash: Option<String>,
    #[serde(default = "yes")]
    pub(super) is_downloadable: bool,
}

pub(super) fn yes() -> bool {
    true
}

#[derive(Deserialize)]
pub(super) struct DeletedMetadata {
    pub(super) path_lower: Option<String>,
}

/// Dropbox's error body for 409 (and most others).
#[derive(Debug, Default, Deserialize)]
pub(super) struct ApiError {
    #[serde(default)]
    pub(super) error_summary: String,
}

impl ApiError {
    pub(super) fn is(&self, tag: &str) -> bool {
        self.error_summary.starts_with(tag)
    }
}

/// JSON for the `Dropbox-API-Arg` header, which must be ASCII: other characters go as
/// `\uXXXX` escapes (UTF-16, surrogate pairs beyond the BMP).
pub(super) fn header_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    for c in value.to_string().chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

impl DropboxSource {
    pub(super) fn auth_error(&self, reason: String) -> Error {
        Error::Auth {
            source_id: self.id.clone(),
            reason,
        }
    }

    /// The bearer token to send; refreshed when close to expiry, or when `stale` (the one
    /// sent was refused).
    pub(super) async fn bearer(&self, stale: Option<&SecretString>) -> Result<SecretString> {
        let (app_key, app_secret, refresh_token, current) = match &*self.auth {
            Auth::Token(token) => return Ok(token.clone()),
            Auth::Refresh {
                app_key,
                app_secret,
                refresh_token,
                current,
            } => (app_key, app_secret, refresh_token, current),
        };
        current
            .get(stale, || {
                self.refresh(app_key, app_secret.as_ref(), refresh_token)
            })
            .await
    }

    /// A new access token for the refresh token, and its lifetime.
    pub(super) async fn refresh(
        &self,
        app_key: &str,
        app_secret: Option<&SecretString>,
        refresh_token: &SecretString,
    ) -> Result<(SecretString, Duration)> {
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "refresh_token")
                .append_pair("refresh_token", refresh_token.expose_secret())
                .append_pair("client_id", app_key);
            if let Some(secret) = app_secret {
                form.append_pair("client_secret", secret.expose_secret());
            }
            form.finish()
        };
        let url = format!("{}/oauth2/token", self.api);
        match request_token(&self.http, &url, body, Duration::from_secs(4 * 3600)).await? {
            TokenAnswer::Granted(token, lifetime) => {
                tracing::debug!(source = %self.id, expires_in_s = lifetime.as_secs(), "Dropbox access token refreshed");
                Ok((token, lifetime))
            }
            TokenAnswer::Refused(status, refused) => Err(self.auth_error(format!(
                "Dropbox refused to refresh the access token ({status} {}: {}); the index is left as it is. Create a new refresh token for app key {app_key} and update the source",
                refused.error, refused.error_description
            ))),
            TokenAnswer::Garbled(e) => Err(self.auth_error(format!(
                "Dropbox's token answer is not what its API documents: {e}"
            ))),
        }
    }

    /// Send a request that carries the bearer token; on 401, refresh once and resend.
    pub(super) async fn authorized(
        &self,
        what: &str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let mut token = self.bearer(None).await?;
        let mut refreshed = false;
        loop {
            let response = self
                .http
                .send(what, || build(&format!("Bearer {}", token.expose_secret())))
                .await?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            let refused: ApiError = response.json().await.unwrap_or_default();
            if refreshed || matches!(&*self.auth, Auth::Token(_)) {
                let hint = if matches!(&*self.auth, Auth::Token(_)) {
                    "give a new access_token, or an app_key with a refresh_token so lancesync refreshes tokens itself"
                } else {
                    "the refreshed token was refused too: check the app's permissions (files.metadata.read, files.content.read)"
                };
                return Err(self.auth_error(format!(
                    "Dropbox refused the access token ({}); the index is left as it is: {hint}",
                    refused.error_summary.trim_end_matches('/')
                )));
            }
            tracing::info!(source = %self.id, reason = %refused.error_summary, "Dropbox refused the access token; refreshing it");
            token = self.bearer(Some(&token)).await?;
            refreshed = true;
        }
    }

    /// One RPC call: `Ok(Err(..))` for the endpoint's own errors (409).
    pub(super) async fn rpc<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        body: serde_json::Value,
    ) -> Result<std::result::Result<T, ApiError>> {
        let url = format!("{}/2/{endpoint}", self.api);
        let response = self
            .authorized(endpoint, |bearer| {
                self.http
                    .client()
                    .post(&url)
                    .header(reqwest::header::AUTHORIZATION, bearer)
                    .json(&body)
            })
            .await?;
        match response.status() {
            StatusCode::OK => response.json().await.map(Ok).map_err(|e| {
                self.http.remote(format!(
                    "{endpoint}: Dropbox's answer is not what its API documents: {}",
                    e.without_url()
                ))
            }),
            StatusCode::CONFLICT => Ok(Err(response.json().await.unwrap_or_default())),
            _ => Err(self.http.failure(endpoint, response).await),
        }
    }
}
