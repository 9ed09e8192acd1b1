//! A Google Drive source's settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::SecretRef;
use crate::http::HttpSettings;
use crate::local::default_patterns;

/// Configuration of a Google Drive source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GoogleDriveConfig {
    /// Folders to index, with everything under them (`root` is My Drive).
    #[serde(default)]
    pub folder_ids: Vec<String>,
    /// Shared drives to index whole.
    #[serde(default)]
    pub drive_ids: Vec<String>,
    /// A service account's JSON key (inline or `env:VAR`).
    #[serde(default)]
    pub service_account_key: Option<SecretRef>,
    /// A file holding a service account's JSON key.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub service_account_key_file: Option<PathBuf>,
    /// With a service account: the Workspace user to act as (domain-wide delegation).
    #[serde(default)]
    pub subject: Option<String>,
    /// The OAuth client id a refresh token was issued to.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The OAuth client secret (inline or `env:VAR`).
    #[serde(default)]
    pub client_secret: Option<SecretRef>,
    /// An OAuth refresh token (inline or `env:VAR`), with `client_id`.
    #[serde(default)]
    pub refresh_token: Option<SecretRef>,
    /// An access token used as it is (it expires within the hour; for trials).
    #[serde(default)]
    pub access_token: Option<SecretRef>,
    /// Include globs, matched against file names (Google's own formats by their export name:
    /// `Plan.md`, `Budget.csv`, `Deck.txt`) or paths relative to the folder.
    #[serde(default = "drive_patterns")]
    pub file_patterns: Vec<String>,
    /// Exclude globs, matched like `file_patterns`.
    #[serde(default)]
    pub exclude_patterns: Vec<String>,
    /// Files larger than this many bytes are recorded as failures, never downloaded.
    #[serde(default)]
    pub max_file_size: Option<u64>,
    /// Rate limit, timeouts and retries.
    #[serde(default, flatten)]
    pub http: HttpSettings,
    /// The API's base URL (a proxy, or a test's stand-in).
    #[serde(default)]
    pub api_url: Option<String>,
    /// The token endpoint.
    #[serde(default)]
    pub token_url: Option<String>,
}

fn drive_patterns() -> Vec<String> {
    let mut patterns = default_patterns();
    patterns.push("*.csv".into());
    patterns
}

impl GoogleDriveConfig {
    /// The folders `folder_ids`, read as the service account whose JSON key is `key`.
    pub fn service_account(
        folder_ids: impl IntoIterator<Item = impl Into<String>>,
        key: SecretRef,
    ) -> Self {
        Self {
            folder_ids: folder_ids.into_iter().map(Into::into).collect(),
            drive_ids: Vec::new(),
            service_account_key: Some(key),
            service_account_key_file: None,
            subject: None,
            client_id: None,
            client_secret: None,
            refresh_token: None,
            access_token: None,
            file_patterns: drive_patterns(),
            exclude_patterns: Vec::new(),
            max_file_size: None,
            http: HttpSettings::default(),
            api_url: None,
            token_url: None,
        }
    }
}
