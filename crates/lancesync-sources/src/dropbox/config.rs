//! A Dropbox source's settings.

use serde::{Deserialize, Serialize};

use crate::SecretRef;
use crate::http::HttpSettings;
use crate::local::default_patterns;

/// Configuration of a Dropbox source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DropboxConfig {
    /// The folder to index (`/Work/Reports`); empty for the whole account (or app folder).
    #[serde(default)]
    pub path: String,
    /// A (long- or short-lived) access token, inline or `env:VAR`.
    #[serde(default)]
    pub access_token: Option<SecretRef>,
    /// A refresh token (inline or `env:VAR`), with `app_key`: tokens are then refreshed.
    #[serde(default)]
    pub refresh_token: Option<SecretRef>,
    /// The app key (OAuth client id) the refresh token was issued to.
    #[serde(default)]
    pub app_key: Option<String>,
    /// The app secret (inline or `env:VAR`); not needed for refresh tokens from a PKCE flow.
    #[serde(default)]
    pub app_secret: Option<SecretRef>,
    /// Include globs, matched against file names (`*.pdf`) or paths relative to `path`.
    #[serde(default = "default_patterns")]
    pub file_patterns: Vec<String>,
    /// Exclude globs, matched like `file_patterns` against every folder of a path too.
    #[serde(default)]
    pub exclude_patterns: Vec<String>,
    /// Files larger than this many bytes are recorded as failures, never downloaded.
    #[serde(default)]
    pub max_file_size: Option<u64>,
    /// Rate limit, timeouts and retries.
    #[serde(default, flatten)]
    pub http: HttpSettings,
    /// The RPC endpoint's base URL (a proxy, or a test's stand-in).
    #[serde(default)]
    pub api_url: Option<String>,
    /// The content endpoint's base URL.
    #[serde(default)]
    pub content_url: Option<String>,
}

impl DropboxConfig {
    /// The folder `path` read with `access_token`.
    pub fn with_token(path: impl Into<String>, access_token: SecretRef) -> Self {
        Self {
            path: path.into(),
            access_token: Some(access_token),
            refresh_token: None,
            app_key: None,
            app_secret: None,
            file_patterns: default_patterns(),
            exclude_patterns: Vec::new(),
            max_file_size: None,
            http: HttpSettings::default(),
            api_url: None,
            content_url: None,
        }
    }
}
