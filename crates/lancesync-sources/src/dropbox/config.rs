//! A Dropbox source's settings.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::DropboxSource;
use crate::http::HttpSettings;
use crate::patterns::FilterSettings;
use crate::{DocumentSource, Result, SecretRef};

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
    /// Which files, and the size limit.
    #[serde(flatten)]
    pub filter: FilterSettings,
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

impl crate::spec::Settings for DropboxConfig {
    fn build(&self, id: &str, env: &BTreeMap<String, String>) -> Result<Arc<dyn DocumentSource>> {
        Ok(Arc::new(DropboxSource::new(id, self.clone(), env)?))
    }

    fn describe(&self) -> String {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        format!("dropbox:{path}")
    }

    fn refused_for_untrusted(&self) -> Option<String> {
        [
            ("api_url", &self.api_url),
            ("content_url", &self.content_url),
        ]
        .into_iter()
        .find(|(_, value)| value.is_some())
        .map(|(key, _)| format!("only the admin may set {key}"))
    }
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
            filter: FilterSettings::default(),
            http: HttpSettings::default(),
            api_url: None,
            content_url: None,
        }
    }
}
