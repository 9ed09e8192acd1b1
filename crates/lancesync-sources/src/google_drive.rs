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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use md5::{Digest, Md5};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::http::{Http, HttpSettings};
use crate::local::default_patterns;
use crate::oauth::{TokenAnswer, TokenCache, request_token};
use crate::patterns::Filter;
use crate::{
    ChangeKind, Changes, DocumentSource, Error, Listing, ListingIssue, Result, SecretRef,
    SourceEntry,
};

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
/// The largest export Drive makes of one Google Docs, Sheets or Slides file.
const EXPORT_LIMIT: &str = "10 MB";

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

/// A service account's JSON key, as Google's console downloads it.
#[derive(Deserialize)]
struct ServiceAccountKey {
    #[serde(rename = "type")]
    kind: String,
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
}

enum Grant {
    Token,
    Refresh {
        client_id: String,
        client_secret: Option<SecretString>,
        refresh_token: SecretString,
    },
    ServiceAccount {
        email: String,
        key: Box<ring::signature::RsaKeyPair>,
        key_id: Option<String>,
        subject: Option<String>,
    },
}

/// How to export one of Google's own formats: the MIME type asked for and the extension the
/// document gets.
fn export_of(mime: &str) -> Option<(&'static str, &'static str)> {
    match mime {
        "application/vnd.google-apps.document" => Some(("text/markdown", "md")),
        "application/vnd.google-apps.spreadsheet" => Some(("text/csv", "csv")),
        "application/vnd.google-apps.presentation" => Some(("text/plain", "txt")),
        _ => None,
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DriveFile {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    mime_type: String,
    #[serde(default)]
    parents: Vec<String>,
    #[serde(default)]
    drive_id: Option<String>,
    #[serde(default)]
    md5_checksum: Option<String>,
    #[serde(default)]
    head_revision_id: Option<String>,
    #[serde(default)]
    modified_time: Option<String>,
    /// Drive sends int64 values as strings.
    #[serde(default)]
    size: Option<String>,
    #[serde(default)]
    trashed: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileList {
    #[serde(default)]
    files: Vec<DriveFile>,
    #[serde(default)]
    next_page_token: Option<String>,
    #[serde(default)]
    incomplete_search: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartPageToken {
    start_page_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangeList {
    #[serde(default)]
    changes: Vec<Change>,
    #[serde(default)]
    next_page_token: Option<String>,
    #[serde(default)]
    new_start_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Change {
    #[serde(default)]
    change_type: Option<String>,
    #[serde(default)]
    removed: bool,
    #[serde(default)]
    file_id: Option<String>,
    #[serde(default)]
    file: Option<DriveFile>,
}

/// Google's error body: `{"error": {"code", "message", "errors": [{"reason"}]}}`.
#[derive(Debug, Default, Deserialize)]
struct ApiErrorBody {
    #[serde(default)]
    error: ApiError,
}

#[derive(Debug, Default, Deserialize)]
struct ApiError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    reason: String,
}

impl ApiError {
    fn has(&self, reason: &str) -> bool {
        self.errors.iter().any(|e| e.reason == reason)
    }
}

/// A folder in scope: its parent (`None` for a configured root) and name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Folder {
    parent: Option<String>,
    name: String,
}

/// The cursor as stored: Drive's page token, the scope it is for, and the folders in scope
/// (so a change can be placed without asking Drive).
#[derive(Serialize, Deserialize)]
struct StoredCursor {
    scope: String,
    token: String,
    folders: BTreeMap<String, Folder>,
}

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
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn millis(rfc3339: Option<&str>) -> i64 {
    rfc3339
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

/// The DER bytes of a PEM block (`-----BEGIN PRIVATE KEY-----` ...).
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    STANDARD.decode(body).ok()
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
            filter: Filter::new(&config.file_patterns, &config.exclude_patterns)
                .map_err(|e| invalid(e.to_string()))?,
            folder_ids: config.folder_ids,
            drive_ids: config.drive_ids,
            grant,
            tokens,
            max_file_size: config.max_file_size,
            exports: Mutex::new(HashMap::new()),
            id,
        })
    }

    fn auth_error(&self, reason: String) -> Error {
        Error::Auth {
            source_id: self.id.clone(),
            reason,
        }
    }

    /// A signed JWT asking for a token for the service account (RFC 7523).
    fn assertion(
        &self,
        email: &str,
        key: &ring::signature::RsaKeyPair,
        key_id: Option<&str>,
        subject: Option<&str>,
    ) -> Result<String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut header = serde_json::json!({ "alg": "RS256", "typ": "JWT" });
        if let Some(kid) = key_id {
            header["kid"] = kid.into();
        }
        let mut claims = serde_json::json!({
            "iss": email, "scope": SCOPE, "aud": self.token_url, "iat": now, "exp": now + 3600,
        });
        if let Some(sub) = subject {
            claims["sub"] = sub.into();
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; key.public().modulus_len()];
        key.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| self.auth_error("cannot sign the service account's token request".into()))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    /// A new access token from the token endpoint.
    async fn fetch_token(&self) -> Result<(SecretString, Duration)> {
        // The form is built apart: its serializer may not be held across an await.
        let (body, who) = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            let who = match &self.grant {
                Grant::Token => {
                    return Err(self.auth_error(
                    "Google refused the access token, and there is no refresh_token or service account key to get a new one: give one of them".into(),
                ));
                }
                Grant::Refresh {
                    client_id,
                    client_secret,
                    refresh_token,
                } => {
                    form.append_pair("grant_type", "refresh_token")
                        .append_pair("refresh_token", refresh_token.expose_secret())
                        .append_pair("client_id", client_id);
                    if let Some(secret) = client_secret {
                        form.append_pair("client_secret", secret.expose_secret());
                    }
                    format!("the refresh token of client {client_id}")
                }
                Grant::ServiceAccount {
                    email,
                    key,
                    key_id,
                    subject,
                } => {
                    let jwt = self.assertion(email, key, key_id.as_deref(), subject.as_deref())?;
                    form.append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
                        .append_pair("assertion", &jwt);
                    format!("service account {email}")
                }
            };
            (form.finish(), who)
        };
        match request_token(&self.http, &self.token_url, body, Duration::from_secs(3600)).await? {
            TokenAnswer::Granted(token, lifetime) => {
                tracing::debug!(source = %self.id, "Google access token fetched");
                Ok((token, lifetime))
            }
            TokenAnswer::Refused(status, refused) => Err(self.auth_error(format!(
                "Google refused {who} ({status} {}: {}); the index is left as it is. Check the credentials and that the account can read the folders",
                refused.error, refused.error_description
            ))),
            TokenAnswer::Garbled(e) => Err(self.auth_error(format!(
                "Google's token answer is not what its API documents: {e}"
            ))),
        }
    }

    /// `GET {api}{path}` with the bearer token: refreshed once on 401, and Drive's 403 rate
    /// limits (`userRateLimitExceeded`, `rateLimitExceeded`) waited out like 429s. Server
    /// errors that outlast the retries are `Err`.
    async fn get(&self, what: &str, path: &str, query: &[(&str, &str)]) -> Result<Answer> {
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
    async fn get_json<T: serde::de::DeserializeOwned>(
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

    fn refused(&self, what: &str, (status, e): (StatusCode, ApiError)) -> Error {
        self.http.remote(format!(
            "{what}: Google Drive answered {status}: {}; nothing is deleted",
            e.message
        ))
    }

    fn scope_key(&self) -> String {
        let folders: BTreeSet<&String> = self.folder_ids.iter().collect();
        let drives: BTreeSet<&String> = self.drive_ids.iter().collect();
        serde_json::json!({ "folders": folders, "drives": drives }).to_string()
    }

    async fn start_page_token(&self) -> Result<String> {
        let got: StartPageToken = self
            .get_json(
                "changes.getStartPageToken",
                "/drive/v3/changes/startPageToken",
                &[("supportsAllDrives", "true")],
            )
            .await?
            .map_err(|e| self.refused("changes.getStartPageToken", e))?;
        Ok(got.start_page_token)
    }

    /// Every page of one files.list query, each file handed to `each`.
    async fn list_all(
        &self,
        query: &[(&str, &str)],
        mut each: impl FnMut(DriveFile),
    ) -> Result<()> {
        let fields = format!("nextPageToken,incompleteSearch,files({FILE_FIELDS})");
        let mut page_token: Option<String> = None;
        loop {
            let mut q: Vec<(&str, &str)> = query.to_vec();
            q.extend([
                ("pageSize", PAGE_SIZE),
                ("fields", fields.as_str()),
                ("supportsAllDrives", "true"),
                ("includeItemsFromAllDrives", "true"),
            ]);
            if let Some(t) = &page_token {
                q.push(("pageToken", t));
            }
            let page: FileList = self
                .get_json("files.list", "/drive/v3/files", &q)
                .await?
                .map_err(|e| self.refused("files.list", e))?;
            if page.incomplete_search {
                return Err(self.http.remote(
                    "files.list: Google Drive says the listing is incomplete; nothing is deleted, the next run lists again".into(),
                ));
            }
            page.files.into_iter().for_each(&mut each);
            match page.next_page_token {
                Some(t) => page_token = Some(t),
                None => return Ok(()),
            }
        }
    }

    /// A complete listing, the folders in scope, and the change token from before it.
    async fn full(&self) -> Result<(Listing, StoredCursor)> {
        // The token comes first: what changes while the listing runs is replayed next time.
        let token = self.start_page_token().await?;
        let mut folders: BTreeMap<String, Folder> = BTreeMap::new();
        let mut files: BTreeMap<String, DriveFile> = BTreeMap::new();
        for root in &self.folder_ids {
            let path = format!("/drive/v3/files/{root}");
            let meta: DriveFile = self
                .get_json(
                    "files.get",
                    &path,
                    &[("fields", FILE_FIELDS), ("supportsAllDrives", "true")],
                )
                .await?
                .map_err(|(status, e)| {
                    self.http.remote(if status == StatusCode::NOT_FOUND {
                        format!("folder {root} is not in Google Drive, or not shared with this account; nothing is deleted")
                    } else {
                        format!("files.get {root}: Google Drive answered {status}: {}; nothing is deleted", e.message)
                    })
                })?;
            if meta.mime_type != FOLDER || meta.trashed {
                return Err(self.http.remote(format!(
                    "{root} ({:?}) is {}, not a folder; nothing is deleted",
                    meta.name,
                    if meta.trashed {
                        "in the trash"
                    } else {
                        "a file"
                    }
                )));
            }
            folders.insert(
                root.clone(),
                Folder {
                    parent: None,
                    name: String::new(),
                },
            );
        }
        let mut queue: Vec<String> = self.folder_ids.clone();
        while !queue.is_empty() {
            let batch: Vec<String> = queue.drain(..queue.len().min(FOLDERS_PER_QUERY)).collect();
            let q = format!(
                "({}) and trashed = false",
                batch
                    .iter()
                    .map(|id| format!("'{id}' in parents"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            );
            self.list_all(&[("q", q.as_str()), ("corpora", "allDrives")], |f| {
                if f.mime_type == FOLDER {
                    if !folders.contains_key(&f.id) {
                        let parent = f.parents.iter().find(|p| batch.contains(p)).cloned();
                        queue.push(f.id.clone());
                        folders.insert(
                            f.id.clone(),
                            Folder {
                                parent,
                                name: f.name,
                            },
                        );
                    }
                } else {
                    files.insert(f.id.clone(), f);
                }
            })
            .await?;
        }
        for drive in &self.drive_ids {
            folders.entry(drive.clone()).or_insert(Folder {
                parent: None,
                name: String::new(),
            });
            let mut found = Vec::new();
            self.list_all(
                &[
                    ("q", "trashed = false"),
                    ("corpora", "drive"),
                    ("driveId", drive),
                ],
                |f| found.push(f),
            )
            .await?;
            for f in found {
                if f.mime_type == FOLDER {
                    let parent = f.parents.first().cloned();
                    folders.entry(f.id.clone()).or_insert(Folder {
                        parent,
                        name: f.name,
                    });
                } else {
                    files.insert(f.id.clone(), f);
                }
            }
        }
        let mut listing = Listing::default();
        for f in files.values() {
            if let Some(entry) = self.entry(f, &folders, &mut listing.issues) {
                listing.entries.push(entry);
            }
        }
        listing.entries.sort_unstable_by(|a, b| a.uri.cmp(&b.uri));
        let cursor = StoredCursor {
            scope: self.scope_key(),
            token,
            folders,
        };
        Ok((listing, cursor))
    }

    /// The path of folder `id` below its root, by names (`Reports/2024`).
    fn folder_path(folders: &BTreeMap<String, Folder>, id: &str) -> String {
        let mut names = Vec::new();
        let mut at = Some(id.to_string());
        while let Some(folder) = at.as_ref().and_then(|i| folders.get(i)) {
            if names.len() > 64 {
                break;
            }
            if !folder.name.is_empty() {
                names.push(folder.name.clone());
            }
            at = folder.parent.clone();
        }
        names.reverse();
        names.join("/")
    }

    /// A listed file as an entry, if it is a document the patterns take.
    fn entry(
        &self,
        f: &DriveFile,
        folders: &BTreeMap<String, Folder>,
        issues: &mut Vec<ListingIssue>,
    ) -> Option<SourceEntry> {
        let export = export_of(&f.mime_type);
        if f.mime_type.starts_with(NATIVE) && export.is_none() {
            // Folders, shortcuts, forms, drawings: nothing to read as text.
            return None;
        }
        let mut name = f.name.replace('/', "\u{2215}");
        if let Some((_, ext)) = export
            && !name.to_ascii_lowercase().ends_with(&format!(".{ext}"))
        {
            name = format!("{name}.{ext}");
        }
        let parent = f.parents.iter().find(|p| folders.contains_key(*p));
        let relative = match parent.map(|p| Self::folder_path(folders, p)) {
            Some(dir) if !dir.is_empty() => format!("{dir}/{name}"),
            _ => name.clone(),
        };
        if !self.filter.accepts(&relative) {
            return None;
        }
        let uri = format!("gdrive:{}/{name}", f.id);
        self.exports
            .lock()
            .expect("exports")
            .insert(f.id.clone(), export.map(|(mime, _)| mime));
        let size = f.size.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0);
        if export.is_none()
            && let Some(limit) = self.max_file_size
            && size > limit
        {
            issues.push(ListingIssue {
                uri: uri.clone(),
                reason: format!(
                    "{size} bytes, over the {limit}-byte limit; recorded as failed when read"
                ),
            });
        }
        let version = f
            .head_revision_id
            .clone()
            .or_else(|| f.modified_time.clone());
        Some(SourceEntry {
            version,
            content_hash: f.md5_checksum.as_ref().map(|m| format!("gdrive-md5:{m}")),
            title: Some(f.name.clone()),
            ..SourceEntry::new(uri, size, millis(f.modified_time.as_deref()))
        })
    }

    /// What changed since the stored token; `None` when a complete listing must decide.
    async fn delta(&self, stored: StoredCursor) -> Result<Option<(ChangeKind, StoredCursor)>> {
        let fields = format!(
            "nextPageToken,newStartPageToken,changes(changeType,removed,fileId,file({FILE_FIELDS}))"
        );
        let mut token = stored.token.clone();
        // The latest change of each file, in the order first seen.
        let mut latest: Vec<Change> = Vec::new();
        let mut at: HashMap<String, usize> = HashMap::new();
        let next = loop {
            let got = self
                .get_json::<ChangeList>(
                    "changes.list",
                    "/drive/v3/changes",
                    &[
                        ("pageToken", token.as_str()),
                        ("pageSize", PAGE_SIZE),
                        ("includeRemoved", "true"),
                        ("supportsAllDrives", "true"),
                        ("includeItemsFromAllDrives", "true"),
                        ("fields", fields.as_str()),
                    ],
                )
                .await?;
            let page = match got {
                Ok(page) => page,
                Err((status, e))
                    if status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND =>
                {
                    tracing::warn!(source = %self.id, reason = %e.message, "Google Drive refused the change token; listing in full");
                    return Ok(None);
                }
                Err(e) => return Err(self.refused("changes.list", e)),
            };
            for change in page.changes {
                if change.change_type.as_deref().is_some_and(|t| t != "file") {
                    continue;
                }
                let Some(id) = change
                    .file_id
                    .clone()
                    .or_else(|| change.file.as_ref().map(|f| f.id.clone()))
                else {
                    continue;
                };
                match at.get(&id) {
                    Some(&i) => latest[i] = change,
                    None => {
                        at.insert(id, latest.len());
                        latest.push(change);
                    }
                }
            }
            match (page.next_page_token, page.new_start_page_token) {
                (Some(t), _) => token = t,
                (None, Some(t)) => break t,
                (None, None) => {
                    return Err(self.http.remote(
                        "changes.list: Google Drive's answer has neither nextPageToken nor newStartPageToken; nothing is deleted".into(),
                    ));
                }
            }
        };
        let mut folders = stored.folders;
        // Folders first: a file is placed by the folders as they are now.
        for change in &latest {
            let id = change
                .file_id
                .as_deref()
                .or(change.file.as_ref().map(|f| f.id.as_str()))
                .unwrap_or_default();
            let is_folder = change.file.as_ref().is_some_and(|f| f.mime_type == FOLDER);
            if !is_folder && !folders.contains_key(id) {
                continue;
            }
            let gone = change.removed || change.file.as_ref().is_none_or(|f| f.trashed);
            let by_drive = change
                .file
                .as_ref()
                .and_then(|f| f.drive_id.as_ref())
                .is_some_and(|d| self.drive_ids.contains(d));
            if self.drive_ids.iter().any(|d| d == id) {
                continue;
            }
            let root = self.folder_ids.iter().any(|r| r == id);
            let parent = change.file.as_ref().and_then(|f| {
                f.parents
                    .iter()
                    .find(|p| *p != id && folders.contains_key(*p))
                    .cloned()
            });
            let now_in = !gone && (root || parent.is_some() || by_drive);
            let known = folders.contains_key(id);
            match (known, now_in) {
                (true, true) => {
                    let f = change
                        .file
                        .as_ref()
                        .expect("a folder in scope has metadata");
                    let entry = folders.get_mut(id).expect("known");
                    entry.name = if root { String::new() } else { f.name.clone() };
                    if !root {
                        entry.parent = parent.or_else(|| f.parents.first().cloned());
                    }
                }
                (false, false) => {}
                (false, true) if by_drive => {
                    let f = change
                        .file
                        .as_ref()
                        .expect("a folder in scope has metadata");
                    folders.insert(
                        id.to_string(),
                        Folder {
                            parent: f.parents.first().cloned(),
                            name: f.name.clone(),
                        },
                    );
                }
                _ => {
                    tracing::info!(source = %self.id, folder = id, "a folder entered or left the scope; listing in full");
                    return Ok(None);
                }
            }
        }
        let (mut entries, mut deleted, mut issues) = (Vec::new(), Vec::new(), Vec::new());
        for change in &latest {
            let file = change.file.as_ref();
            if file.is_some_and(|f| f.mime_type == FOLDER) {
                continue;
            }
            let Some(id) = change.file_id.as_deref().or(file.map(|f| f.id.as_str())) else {
                continue;
            };
            // Whatever name the file had before: the entry below, if any, takes its place.
            deleted.push(format!("gdrive:{id}"));
            let Some(f) = file.filter(|f| !change.removed && !f.trashed) else {
                continue;
            };
            let in_scope = f.parents.iter().any(|p| folders.contains_key(p))
                || f.drive_id
                    .as_ref()
                    .is_some_and(|d| self.drive_ids.contains(d));
            if in_scope && let Some(entry) = self.entry(f, &folders, &mut issues) {
                entries.push(entry);
            }
        }
        Ok(Some((
            ChangeKind::Delta {
                entries,
                deleted,
                issues,
            },
            StoredCursor {
                scope: stored.scope,
                token: next,
                folders,
            },
        )))
    }

    fn stored(cursor: &StoredCursor) -> String {
        serde_json::to_string(cursor).expect("a cursor serializes")
    }

    /// The export MIME type of file `id` (`None`: binary), from this run's listing or Drive.
    async fn export_mime(&self, id: &str) -> std::result::Result<Option<&'static str>, String> {
        if let Some(known) = self.exports.lock().expect("exports").get(id) {
            return Ok(*known);
        }
        let path = format!("/drive/v3/files/{id}");
        match self
            .get_json::<DriveFile>(
                "files.get",
                &path,
                &[("fields", FILE_FIELDS), ("supportsAllDrives", "true")],
            )
            .await
        {
            Ok(Ok(f)) => Ok(export_of(&f.mime_type).map(|(mime, _)| mime)),
            Ok(Err((StatusCode::NOT_FOUND, _))) => Err("no longer in Google Drive".into()),
            Ok(Err((status, e))) => Err(format!("Google Drive answered {status}: {}", e.message)),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// What Drive answered: a success, or its refusal (a 4xx with Google's error body).
enum Answer {
    Body(reqwest::Response),
    Refused(StatusCode, ApiError),
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
        let read_error = |reason: String| Error::Read {
            uri: entry.uri.clone(),
            reason,
        };
        let id = entry
            .uri
            .strip_prefix("gdrive:")
            .and_then(|rest| rest.split('/').next())
            .filter(|id| valid_id(id))
            .ok_or_else(|| read_error("not a Google Drive document".into()))?;
        let export = self.export_mime(id).await.map_err(read_error)?;
        if export.is_none()
            && let Some(limit) = self.max_file_size
            && entry.size > limit
        {
            return Err(Error::TooLarge {
                uri: entry.uri.clone(),
                size: entry.size,
                limit,
            });
        }
        let answer = match export {
            Some(mime) => {
                self.get(
                    "files.export",
                    &format!("/drive/v3/files/{id}/export"),
                    &[("mimeType", mime)],
                )
                .await
            }
            None => {
                self.get(
                    "files.get",
                    &format!("/drive/v3/files/{id}"),
                    &[("alt", "media"), ("supportsAllDrives", "true")],
                )
                .await
            }
        };
        let response = match answer {
            Ok(Answer::Body(response)) => response,
            Ok(Answer::Refused(status, e)) => {
                return Err(read_error(if e.has("exportSizeLimitExceeded") {
                    format!(
                        "Google Drive exports at most {EXPORT_LIMIT} of a Google Docs, Sheets or Slides file, and this one is larger; split it, or download it as a file"
                    )
                } else if status == StatusCode::NOT_FOUND {
                    "no longer in Google Drive".into()
                } else {
                    format!("Google Drive answered {status}: {}", e.message)
                }));
            }
            // A token refused for good stops the run; any other failure is this document's.
            Err(e @ Error::Auth { .. }) => return Err(e),
            Err(e) => return Err(read_error(e.to_string())),
        };
        let bytes = response
            .bytes()
            .await
            .map_err(|e| read_error(format!("download cut short: {}", e.without_url())))?;
        if let Some(limit) = self.max_file_size
            && bytes.len() as u64 > limit
        {
            return Err(Error::TooLarge {
                uri: entry.uri.clone(),
                size: bytes.len() as u64,
                limit,
            });
        }
        if let Some(listed) = entry
            .content_hash
            .as_deref()
            .and_then(|h| h.strip_prefix("gdrive-md5:"))
        {
            let got: String = Md5::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if got != listed {
                return Err(read_error(
                    "changed in Google Drive since it was listed (or damaged in transit); read again on the next run".into(),
                ));
            }
        }
        Ok(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
