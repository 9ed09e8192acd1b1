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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::http::{Http, HttpSettings};
use crate::local::default_patterns;
use crate::oauth::{TokenAnswer, TokenCache, request_token};
use crate::patterns::Filter;
use crate::{
    ChangeKind, Changes, DocumentSource, Error, Listing, ListingIssue, Result, SecretRef,
    SourceEntry,
};

const API_URL: &str = "https://api.dropboxapi.com";
const CONTENT_URL: &str = "https://content.dropboxapi.com";
/// Dropbox's largest page.
const PAGE_LIMIT: u32 = 2000;

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

#[derive(Deserialize)]
struct ListFolderResult {
    entries: Vec<Metadata>,
    cursor: String,
    has_more: bool,
}

#[derive(Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
enum Metadata {
    File(FileMetadata),
    Deleted(DeletedMetadata),
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct FileMetadata {
    name: String,
    path_lower: Option<String>,
    path_display: Option<String>,
    server_modified: String,
    rev: String,
    size: u64,
    content_hash: Option<String>,
    #[serde(default = "yes")]
    is_downloadable: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct DeletedMetadata {
    path_lower: Option<String>,
}

/// Dropbox's error body for 409 (and most others).
#[derive(Debug, Default, Deserialize)]
struct ApiError {
    #[serde(default)]
    error_summary: String,
}

impl ApiError {
    fn is(&self, tag: &str) -> bool {
        self.error_summary.starts_with(tag)
    }
}

/// The cursor as stored: Dropbox's, with the folder it is for, so a cursor of another
/// folder is never used.
#[derive(Serialize, Deserialize)]
struct StoredCursor {
    root: String,
    cursor: String,
}

/// JSON for the `Dropbox-API-Arg` header, which must be ASCII: other characters go as
/// `\uXXXX` escapes (UTF-16, surrogate pairs beyond the BMP).
fn header_json(value: &serde_json::Value) -> String {
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
            filter: Filter::new(&config.file_patterns, &config.exclude_patterns)
                .map_err(|e| invalid(e.to_string()))?,
            root: root_display.to_lowercase(),
            root_display,
            auth: Arc::new(auth),
            max_file_size: config.max_file_size,
            id,
        })
    }

    fn auth_error(&self, reason: String) -> Error {
        Error::Auth {
            source_id: self.id.clone(),
            reason,
        }
    }

    /// The bearer token to send; refreshed when close to expiry, or when `stale` (the one
    /// sent was refused).
    async fn bearer(&self, stale: Option<&SecretString>) -> Result<SecretString> {
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
    async fn refresh(
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
    async fn authorized(
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
    async fn rpc<T: DeserializeOwned>(
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

    /// Every page from `first` on, each entry handed to `each`. `Ok(Err(reset))` when the
    /// cursor was refused.
    async fn pages(
        &self,
        first: std::result::Result<ListFolderResult, ApiError>,
        mut each: impl FnMut(Metadata),
    ) -> Result<std::result::Result<String, ApiError>> {
        let mut page = match first {
            Ok(page) => page,
            Err(e) => return Ok(Err(e)),
        };
        loop {
            page.entries.into_iter().for_each(&mut each);
            if !page.has_more {
                return Ok(Ok(page.cursor));
            }
            page = match self
                .rpc(
                    "files/list_folder/continue",
                    serde_json::json!({ "cursor": page.cursor }),
                )
                .await?
            {
                Ok(next) => next,
                Err(e) => return Ok(Err(e)),
            };
        }
    }

    /// A complete listing, and the cursor at its end.
    async fn full(&self) -> Result<(Listing, String)> {
        let first = self
            .rpc(
                "files/list_folder",
                serde_json::json!({
                    "path": self.root_display,
                    "recursive": true,
                    "include_deleted": false,
                    "include_non_downloadable_files": true,
                    "limit": PAGE_LIMIT,
                }),
            )
            .await?;
        let mut listing = Listing::default();
        let ended = self
            .pages(first, |m| {
                if let Metadata::File(f) = m {
                    self.take(f, &mut listing.entries, &mut listing.issues);
                }
            })
            .await?;
        let cursor = ended.map_err(|e| {
            let hint = if e.is("path/not_found") {
                format!("the folder {:?} is not in this Dropbox", self.root_display)
            } else {
                e.error_summary.clone()
            };
            self.http
                .remote(format!("files/list_folder: {hint}; nothing is deleted"))
        })?;
        listing.entries.sort_unstable_by(|a, b| a.uri.cmp(&b.uri));
        Ok((listing, cursor))
    }

    fn uri(path_lower: &str) -> String {
        format!("dropbox:{path_lower}")
    }

    /// A listed file as an entry, if the patterns take it.
    fn take(
        &self,
        f: FileMetadata,
        entries: &mut Vec<SourceEntry>,
        issues: &mut Vec<ListingIssue>,
    ) {
        let Some(lower) = f.path_lower else {
            return;
        };
        let display = f.path_display.unwrap_or_else(|| lower.clone());
        let relative = display
            .get(self.root_display.len()..)
            .filter(|_| lower.starts_with(&self.root))
            .unwrap_or(&display);
        if !self.filter.accepts(relative) {
            return;
        }
        if !f.is_downloadable {
            issues.push(ListingIssue {
                uri: Self::uri(&lower),
                reason: "Dropbox cannot download this file (a cloud-only document); skipped".into(),
            });
            return;
        }
        let modified_ms = humantime::parse_rfc3339(&f.server_modified)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        entries.push(SourceEntry {
            version: Some(f.rev),
            content_hash: f.content_hash.map(|h| format!("dropbox:{h}")),
            title: Some(f.name),
            ..SourceEntry::new(Self::uri(&lower), f.size, modified_ms)
        });
    }

    /// What changed since Dropbox's `cursor`; `None` when Dropbox reset it.
    async fn delta(&self, cursor: &str) -> Result<Option<(ChangeKind, String)>> {
        let first = self
            .rpc(
                "files/list_folder/continue",
                serde_json::json!({ "cursor": cursor }),
            )
            .await?;
        let (mut entries, mut deleted, mut issues) = (Vec::new(), Vec::new(), Vec::new());
        let ended = self
            .pages(first, |m| match m {
                Metadata::File(f) => self.take(f, &mut entries, &mut issues),
                Metadata::Deleted(d) => {
                    if let Some(lower) = d.path_lower {
                        deleted.push(Self::uri(&lower));
                    }
                }
                Metadata::Other => {}
            })
            .await?;
        match ended {
            Ok(next) => Ok(Some((
                ChangeKind::Delta {
                    entries,
                    deleted,
                    issues,
                },
                next,
            ))),
            Err(e) if e.is("reset") => Ok(None),
            Err(e) => Err(self.http.remote(format!(
                "files/list_folder/continue: {}; nothing is deleted",
                e.error_summary
            ))),
        }
    }

    fn stored(&self, cursor: String) -> String {
        serde_json::to_string(&StoredCursor {
            root: self.root.clone(),
            cursor,
        })
        .expect("a cursor serializes")
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
