//! The Dropbox source (`source_type = "dropbox"`): a folder of a Dropbox account, listed with
//! `files/list_folder` (recursive) and `files/list_folder/continue`, changes since the stored
//! cursor reported by the same `continue` call, content read with `files/download`.
//!
//! - Auth: an access token, or an app key and refresh token (with the app secret unless the
//!   token came from a PKCE flow). Short-lived tokens are refreshed before they expire and
//!   once more on a 401; a refresh that fails is a clear source error and nothing is deleted.
//! - Changes: `rev` is the version, `content_hash` the content: an entry whose hash is the
//!   stored one is not downloaded, and a moved file (a `deleted` entry plus a file with the
//!   same hash) keeps its chunks and vectors.
//! - A cursor Dropbox rejects (`reset`) falls back to a complete listing, which then decides
//!   deletions; a failed page fails the whole run (nothing deleted, cursor kept).
//!
//! [`config`] holds the settings; [`client`] authenticates and makes requests; [`listing`] lists
//! folders and follows the cursor; this file reads.

mod client;
mod config;
mod listing;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use crate::http::Http;
use crate::local::DEFAULT_PATTERNS;
use crate::oauth::TokenCache;
use crate::patterns::Filter;
use crate::{ChangeKind, Changes, DocumentSource, Error, Listing, Result, SourceEntry};

pub use config::DropboxConfig;

use client::{ApiError, header_json};
use listing::StoredCursor;

const API_URL: &str = "https://api.dropboxapi.com";
const CONTENT_URL: &str = "https://content.dropboxapi.com";
/// Dropbox's largest page.
const PAGE_LIMIT: u32 = 2000;

/// Dropbox's content hash: SHA-256 of the concatenated SHA-256 digests of each 4 MiB block,
/// in hex (<https://www.dropbox.com/developers/reference/content-hash>).
pub fn dropbox_content_hash(bytes: &[u8]) -> String {
    let mut overall = Sha256::new();
    for block in bytes.chunks(4 * 1024 * 1024) {
        overall.update(Sha256::digest(block));
    }
    overall
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

enum Auth {
    Token(SecretString),
    Refresh {
        app_key: String,
        app_secret: Option<SecretString>,
        refresh_token: SecretString,
        /// The token in use, and when to refresh it.
        current: TokenCache,
    },
}

/// Documents in a Dropbox folder.
pub struct DropboxSource {
    id: String,
    /// The configured folder, lowercased as Dropbox's `path_lower` (empty: the root).
    root: String,
    root_display: String,
    api: String,
    content: String,
    http: Http,
    auth: Arc<Auth>,
    filter: Filter,
    max_file_size: Option<u64>,
}

impl std::fmt::Debug for DropboxSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DropboxSource")
            .field("id", &self.id)
            .field("path", &self.root_display)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl DropboxSource {
    /// A source named `id`; `env` resolves `env:VAR` credentials.
    pub fn new(
        id: impl Into<String>,
        config: DropboxConfig,
        env: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let id = id.into();
        let invalid = |m: String| Error::InvalidConfig(format!("source {id}: {m}"));
        let root_display = config.path.trim_end_matches('/').to_string();
        if !root_display.is_empty() && !root_display.starts_with('/') {
            return Err(invalid(format!(
                "path {:?} must start with '/' (or be empty for the whole Dropbox)",
                config.path
            )));
        }
        let auth = match (&config.access_token, &config.refresh_token, &config.app_key) {
            (_, Some(refresh), Some(app_key)) => Auth::Refresh {
                app_key: app_key.clone(),
                app_secret: config
                    .app_secret
                    .as_ref()
                    .map(|s| s.resolve("app_secret", env))
                    .transpose()?,
                refresh_token: refresh.resolve("refresh_token", env)?,
                current: match &config.access_token {
                    // A token given beside a refresh token is used until it is refused.
                    Some(t) => {
                        TokenCache::with(t.resolve("access_token", env)?, Duration::from_secs(3600))
                    }
                    None => TokenCache::default(),
                },
            },
            (_, Some(_), None) => {
                return Err(invalid(
                    "a refresh_token needs the app_key it was issued to".into(),
                ));
            }
            (Some(token), None, _) => Auth::Token(token.resolve("access_token", env)?),
            (None, None, _) => {
                return Err(invalid(
                    "give an access_token, or an app_key with a refresh_token".into(),
                ));
            }
        };
        let base = |url: &Option<String>, default: &str| -> Result<String> {
            let url = url.clone().unwrap_or_else(|| default.to_string());
            url::Url::parse(&url).map_err(|e| invalid(format!("{url:?} is not a URL: {e}")))?;
            Ok(url.trim_end_matches('/').to_string())
        };
        Ok(Self {
            api: base(&config.api_url, API_URL)?,
            content: base(&config.content_url, CONTENT_URL)?,
            http: Http::new(&id, "Dropbox", &config.http, 10.0)?,
            filter: config
                .filter
                .filter(DEFAULT_PATTERNS)
                .map_err(|e| invalid(e.to_string()))?,
            root: root_display.to_lowercase(),
            root_display,
            auth: Arc::new(auth),
            max_file_size: config.filter.max_file_size,
            id,
        })
    }
}

#[async_trait]
impl DocumentSource for DropboxSource {
    fn id(&self) -> &str {
        &self.id
    }

    fn source_type(&self) -> &'static str {
        "dropbox"
    }

    async fn list(&self) -> Result<Listing> {
        Ok(self.full().await?.0)
    }

    async fn changes(&self, cursor: Option<&str>) -> Result<Changes> {
        let ours = cursor
            .and_then(|c| serde_json::from_str::<StoredCursor>(c).ok())
            .filter(|c| c.root == self.root);
        if let Some(stored) = ours {
            match self.delta(&stored.cursor).await? {
                Some((kind, next)) => {
                    return Ok(Changes {
                        kind,
                        cursor: Some(self.stored(next)),
                    });
                }
                None => {
                    tracing::warn!(source = %self.id, "Dropbox reset the cursor; listing the folder in full");
                }
            }
        }
        let (listing, next) = self.full().await?;
        Ok(Changes {
            kind: ChangeKind::Full(listing),
            cursor: Some(self.stored(next)),
        })
    }

    async fn read(&self, entry: &SourceEntry) -> Result<Vec<u8>> {
        let read_error = |reason: String| Error::Read {
            uri: entry.uri.clone(),
            reason,
        };
        let path = entry
            .uri
            .strip_prefix("dropbox:")
            .ok_or_else(|| read_error("not a Dropbox document".into()))?;
        if let Some(limit) = self.max_file_size
            && entry.size > limit
        {
            return Err(Error::TooLarge {
                uri: entry.uri.clone(),
                size: entry.size,
                limit,
            });
        }
        let arg = header_json(&serde_json::json!({ "path": path }));
        let url = format!("{}/2/files/download", self.content);
        let response = self
            .authorized("files/download", |bearer| {
                self.http
                    .client()
                    .post(&url)
                    .header(reqwest::header::AUTHORIZATION, bearer)
                    .header("Dropbox-API-Arg", arg.as_str())
            })
            .await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::CONFLICT => {
                let e: ApiError = response.json().await.unwrap_or_default();
                return Err(read_error(if e.is("path/not_found") {
                    "no longer in Dropbox".into()
                } else {
                    format!("Dropbox refused the download: {}", e.error_summary)
                }));
            }
            _ => {
                let e = self.http.failure("files/download", response).await;
                return Err(read_error(e.to_string()));
            }
        }
        let served: Option<String> = response
            .headers()
            .get("Dropbox-API-Result")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
            .and_then(|v| v["content_hash"].as_str().map(str::to_string));
        let bytes = response
            .bytes()
            .await
            .map_err(|e| read_error(format!("download cut short: {}", e.without_url())))?;
        let hash = dropbox_content_hash(&bytes);
        if served.as_ref().is_some_and(|s| *s != hash) {
            return Err(read_error(
                "the downloaded bytes do not match Dropbox's content hash (damaged in transit); read again on the next run".into(),
            ));
        }
        if let Some(listed) = &entry.content_hash
            && listed.strip_prefix("dropbox:") != Some(hash.as_str())
        {
            return Err(read_error(
                "changed in Dropbox since it was listed; read again on the next run".into(),
            ));
        }
        Ok(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretRef;

    #[test]
    fn content_hash_is_dropbox_s_block_hash() {
        // Reference values from Python's hashlib, computed the way Dropbox documents:
        // sha256(b"".join(sha256(block).digest() for block in 4 MiB blocks)).hexdigest()
        assert_eq!(
            dropbox_content_hash(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            dropbox_content_hash(b"hello"),
            "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50"
        );
        let big: Vec<u8> = (0..(9 * 1024 * 1024 + 7))
            .map(|i| (i % 251) as u8)
            .collect();
        assert_eq!(dropbox_content_hash(&big), BIG_HASH);
    }

    const BIG_HASH: &str = "5efc8f2601e10bf67436aa13168114e583d7f15f826e99b353972ab2ca9af179";

    #[test]
    fn header_args_are_ascii() {
        let arg = header_json(&serde_json::json!({ "path": "/Résumé 🎉.md" }));
        assert!(arg.is_ascii());
        assert_eq!(arg, r#"{"path":"/R\u00e9sum\u00e9 \ud83c\udf89.md"}"#);
        let back: serde_json::Value = serde_json::from_str(&arg).unwrap();
        assert_eq!(back["path"], "/Résumé 🎉.md");
    }

    #[test]
    fn configs_need_credentials_and_a_rooted_path() {
        let env = BTreeMap::new();
        let token = SecretRef::inline("sl.abc");
        let ok = DropboxSource::new(
            "d",
            DropboxConfig::with_token("/Work/", token.clone()),
            &env,
        )
        .unwrap();
        assert_eq!(ok.root, "/work");
        assert!(!format!("{ok:?}").contains("sl.abc"));
        let err =
            DropboxSource::new("d", DropboxConfig::with_token("Work", token), &env).unwrap_err();
        assert!(err.to_string().contains("must start with '/'"));
        let mut none = DropboxConfig::with_token("", SecretRef::inline("x"));
        none.access_token = None;
        let err = DropboxSource::new("d", none.clone(), &env).unwrap_err();
        assert!(err.to_string().contains("access_token"));
        none.refresh_token = Some(SecretRef::inline("r"));
        let err = DropboxSource::new("d", none, &env).unwrap_err();
        assert!(err.to_string().contains("app_key"));
    }
}
