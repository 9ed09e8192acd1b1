//! A Google Drive source's settings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::GoogleDriveSource;
use crate::http::HttpSettings;
use crate::patterns::FilterSettings;
use crate::spec::described_ids;
use crate::{DocumentSource, Result, SecretRef};

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
    /// Which files, and the size limit.
    #[serde(flatten)]
    pub filter: FilterSettings,
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

/// Google Drive's default include globs: the file sources' defaults, and `*.csv`, the form
/// Google Sheets export to.
pub(crate) const DRIVE_PATTERNS: &[&str] = &["*.pdf", "*.docx", "*.txt", "*.md", "*.html", "*.csv"];

impl crate::spec::Settings for GoogleDriveConfig {
    fn build(&self, id: &str, env: &BTreeMap<String, String>) -> Result<Arc<dyn DocumentSource>> {
        Ok(Arc::new(GoogleDriveSource::new(id, self.clone(), env)?))
    }

    fn describe(&self) -> String {
        described_ids(
            "gdrive",
            [("folders", &self.folder_ids), ("drives", &self.drive_ids)],
        )
    }

    fn refused_for_untrusted(&self) -> Option<String> {
        let set = [
            (
                "service_account_key_file",
                self.service_account_key_file.is_some(),
            ),
            ("api_url", self.api_url.is_some()),
            ("token_url", self.token_url.is_some()),
        ];
        set.into_iter()
            .find(|(_, set)| *set)
            .map(|(key, _)| format!("only the admin may set {key}"))
    }
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
            filter: FilterSettings::default(),
            http: HttpSettings::default(),
            api_url: None,
            token_url: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::DEFAULT_PATTERNS;

    #[test]
    fn drive_patterns_are_the_defaults_and_csv() {
        assert_eq!(&DRIVE_PATTERNS[..DEFAULT_PATTERNS.len()], DEFAULT_PATTERNS);
        assert_eq!(DRIVE_PATTERNS[DEFAULT_PATTERNS.len()..], ["*.csv"]);
    }
}
