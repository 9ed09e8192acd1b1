//! The Google Drive source (`source_type = "google_drive"`): folders (recursively) and whole
//! shared drives, listed with Drive API v3 `files.list`, then followed through
//! `changes.getStartPageToken` / `changes.list`; binary files read with `alt=media`, Google
//! Docs, Sheets and Slides exported as Markdown, CSV and plain text.
//!
//! - Auth: a service account's JSON key (a signed JWT exchanged for a token, optionally for a
//!   delegated `subject`), or an OAuth client with a refresh token, or a bare access token.
//!   Tokens are refreshed before they expire and once more on a 401; a refusal is a clear
//!   source error and nothing is deleted.
//! - Documents are `gdrive:{file id}/{name}`: a move between folders keeps the uri, a rename
//!   is a move (the old uri goes, the content hash carries chunks and vectors over).
//! - Versions: `headRevisionId` and `md5Checksum` for binary files, `modifiedTime` for Google's
//!   own formats. Removed or trashed files and files moved out of scope are deletions.
//! - A folder entering or leaving the scope, a token Drive refuses, or a listing Drive marks
//!   incomplete sends the run back to a complete listing (or an error: nothing is deleted).
//!
//! A file a job: [`config`] (settings), [`auth`] (tokens), [`client`] (requests and Drive's
//! answers), [`listing`] (complete listings), [`changes`] (the change feed), [`export`]
//! (reading content and exports).

mod auth;
mod changes;
mod client;
mod config;
mod export;
mod listing;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use crate::http::Http;
use crate::oauth::TokenCache;
use crate::patterns::Filter;
use crate::{ChangeKind, Changes, DocumentSource, Error, Listing, Result, SourceEntry};

use config::DRIVE_PATTERNS;
pub use config::GoogleDriveConfig;

use auth::{Grant, ServiceAccountKey, pem_body};
use changes::StoredCursor;

const API_URL: &str = "https://www.googleapis.com";
const TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Read-only access to file content and metadata.
const SCOPE: &str = "https://www.googleapis.com/auth/drive.readonly";
const FOLDER: &str = "application/vnd.google-apps.folder";
const NATIVE: &str = "application/vnd.google-apps.";
/// Drive's largest page for files.list and changes.list.
const PAGE_SIZE: &str = "1000";
/// Folders asked for in one files.list query (`'a' in parents or 'b' in parents ...`).
const FOLDERS_PER_QUERY: usize = 40;
const FILE_FIELDS: &str =
    "id,name,mimeType,parents,driveId,md5Checksum,headRevisionId,modifiedTime,size,trashed";
/// Drive's documented pace for one user is well above this; 10 per second keeps bursts polite.
const DEFAULT_RATE: f64 = 10.0;

/// Documents in Google Drive folders and shared drives.
pub struct GoogleDriveSource {
    id: String,
    folder_ids: Vec<String>,
    drive_ids: Vec<String>,
    api: String,
    token_url: String,
    http: Http,
    grant: Grant,
    /// A bare access token lives here too, with a lifetime that never runs out.
    tokens: TokenCache,
    filter: Filter,
    max_file_size: Option<u64>,
    /// Each listed file's export MIME type (`None`: binary), for reads in the same run.
    exports: Mutex<HashMap<String, Option<&'static str>>>,
}

impl std::fmt::Debug for GoogleDriveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleDriveSource")
            .field("id", &self.id)
            .field("folder_ids", &self.folder_ids)
            .field("drive_ids", &self.drive_ids)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

/// Drive ids are letters, digits, `-` and `_`; anything else is refused before it reaches a
/// query string or a URL path.
pub(super) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(super) fn millis(rfc3339: Option<&str>) -> i64 {
    rfc3339
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

impl GoogleDriveSource {
    /// A source named `id`; `env` resolves `env:VAR` credentials.
    pub fn new(
        id: impl Into<String>,
        config: GoogleDriveConfig,
        env: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let id = id.into();
        let invalid = |m: String| Error::InvalidConfig(format!("source {id}: {m}"));
        if config.folder_ids.is_empty() && config.drive_ids.is_empty() {
            return Err(invalid(
                "give folder_ids (\"root\" for all of My Drive) and/or drive_ids".into(),
            ));
        }
        if let Some(bad) = config
            .folder_ids
            .iter()
            .chain(&config.drive_ids)
            .find(|i| !valid_id(i))
        {
            return Err(invalid(format!(
                "{bad:?} is not a Drive id (letters, digits, '-' and '_'; copy it from the folder's URL)"
            )));
        }
        let key_text = match (
            &config.service_account_key,
            &config.service_account_key_file,
        ) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "give service_account_key or service_account_key_file, not both".into(),
                ));
            }
            (Some(key), None) => Some(key.resolve("service_account_key", env)?),
            (None, Some(path)) => Some(SecretString::from(std::fs::read_to_string(path).map_err(
                |e| {
                    invalid(format!(
                        "cannot read service_account_key_file {}: {e}",
                        path.display()
                    ))
                },
            )?)),
            (None, None) => None,
        };
        let (grant, tokens) = if let Some(text) = key_text {
            let key: ServiceAccountKey =
                serde_json::from_str(text.expose_secret()).map_err(|e| {
                    invalid(format!(
                        "the service account key is not Google's JSON key format: {e}"
                    ))
                })?;
            if key.kind != "service_account" {
                return Err(invalid(format!(
                    "the key's type is {:?}; a service account key has \"service_account\"",
                    key.kind
                )));
            }
            let der = pem_body(&key.private_key)
                .ok_or_else(|| invalid("the key's private_key is not a PEM block".into()))?;
            let pair = ring::signature::RsaKeyPair::from_pkcs8(&der)
                .map_err(|e| invalid(format!("the key's private_key is not an RSA key: {e}")))?;
            let grant = Grant::ServiceAccount {
                email: key.client_email,
                key: Box::new(pair),
                key_id: key.private_key_id,
                subject: config.subject.clone(),
            };
            (grant, TokenCache::default())
        } else if let Some(refresh) = &config.refresh_token {
            let client_id = config.client_id.clone().ok_or_else(|| {
                invalid("a refresh_token needs the client_id it was issued to".into())
            })?;
            let grant = Grant::Refresh {
                client_id,
                client_secret: config
                    .client_secret
                    .as_ref()
                    .map(|s| s.resolve("client_secret", env))
                    .transpose()?,
                refresh_token: refresh.resolve("refresh_token", env)?,
            };
            let tokens = match &config.access_token {
                // A token given beside a refresh token is used until it is refused.
                Some(t) => {
                    TokenCache::with(t.resolve("access_token", env)?, Duration::from_secs(3600))
                }
                None => TokenCache::default(),
            };
            (grant, tokens)
        } else if let Some(token) = &config.access_token {
            let token = token.resolve("access_token", env)?;
            (
                Grant::Token,
                TokenCache::with(token, Duration::from_secs(u32::MAX as u64)),
            )
        } else {
            return Err(invalid(
                "give a service_account_key (or _file), or a client_id with a refresh_token, or an access_token".into(),
            ));
        };
        let base = |url: &Option<String>, default: &str| -> Result<String> {
            let url = url.clone().unwrap_or_else(|| default.to_string());
            url::Url::parse(&url).map_err(|e| invalid(format!("{url:?} is not a URL: {e}")))?;
            Ok(url.trim_end_matches('/').to_string())
        };
        Ok(Self {
            api: base(&config.api_url, API_URL)?,
            token_url: base(&config.token_url, TOKEN_URL)?,
            http: Http::new(&id, "Google Drive", &config.http, DEFAULT_RATE)?,
            filter: config
                .filter
                .filter(DRIVE_PATTERNS)
                .map_err(|e| invalid(e.to_string()))?,
            folder_ids: config.folder_ids,
            drive_ids: config.drive_ids,
            grant,
            tokens,
            max_file_size: config.filter.max_file_size,
            exports: Mutex::new(HashMap::new()),
            id,
        })
    }

    fn scope_key(&self) -> String {
        let folders: BTreeSet<&String> = self.folder_ids.iter().collect();
        let drives: BTreeSet<&String> = self.drive_ids.iter().collect();
        serde_json::json!({ "folders": folders, "drives": drives }).to_string()
    }
}

#[async_trait]
impl DocumentSource for GoogleDriveSource {
    fn id(&self) -> &str {
        &self.id
    }

    fn source_type(&self) -> &'static str {
        "google_drive"
    }

    async fn list(&self) -> Result<Listing> {
        Ok(self.full().await?.0)
    }

    async fn changes(&self, cursor: Option<&str>) -> Result<Changes> {
        let ours = cursor
            .and_then(|c| serde_json::from_str::<StoredCursor>(c).ok())
            .filter(|c| c.scope == self.scope_key());
        if let Some(stored) = ours
            && let Some((kind, next)) = self.delta(stored).await?
        {
            return Ok(Changes {
                kind,
                cursor: Some(Self::stored(&next)),
            });
        }
        let (listing, next) = self.full().await?;
        Ok(Changes {
            kind: ChangeKind::Full(listing),
            cursor: Some(Self::stored(&next)),
        })
    }

    async fn read(&self, entry: &SourceEntry) -> Result<Vec<u8>> {
        self.download(entry).await
    }
}

#[cfg(test)]
mod tests {
    use super::export::export_of;
    use super::*;
    use crate::SecretRef;

    #[test]
    fn ids_are_checked_before_they_reach_a_query() {
        assert!(valid_id("1AbC-d_E"));
        assert!(valid_id("root"));
        assert!(!valid_id("x' or name contains '"));
        assert!(!valid_id("../files"));
        let env = BTreeMap::new();
        let mut config =
            GoogleDriveConfig::service_account(["a' in parents or '"], SecretRef::inline("{}"));
        let err = GoogleDriveSource::new("g", config.clone(), &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a Drive id"), "{err}");
        config.folder_ids = vec!["root".into()];
        let err = GoogleDriveSource::new("g", config.clone(), &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("service account key is not"), "{err}");
        config.service_account_key = None;
        let err = GoogleDriveSource::new("g", config.clone(), &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("give a service_account_key"), "{err}");
        config.refresh_token = Some(SecretRef::inline("1//r"));
        let err = GoogleDriveSource::new("g", config.clone(), &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("client_id"), "{err}");
        config.client_id = Some("c.apps.googleusercontent.com".into());
        let ok = GoogleDriveSource::new("g", config.clone(), &env).unwrap();
        assert!(!format!("{ok:?}").contains("1//r"));
        config.folder_ids.clear();
        let err = GoogleDriveSource::new("g", config, &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("folder_ids"), "{err}");
    }

    #[test]
    fn exports_name_google_formats_by_what_they_become() {
        assert_eq!(
            export_of("application/vnd.google-apps.document"),
            Some(("text/markdown", "md"))
        );
        assert_eq!(
            export_of("application/vnd.google-apps.spreadsheet"),
            Some(("text/csv", "csv"))
        );
        assert_eq!(export_of("application/vnd.google-apps.form"), None);
        assert_eq!(millis(Some("2026-05-01T10:00:00.123Z")), 1_777_629_600_123);
    }
}
