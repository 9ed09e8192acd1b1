//! A local stand-in for Dropbox's API v2 on 127.0.0.1, speaking its wire format: RPC calls as
//! `POST /2/{route}` with JSON bodies (`files/list_folder`, `files/list_folder/continue`),
//! content calls with the `Dropbox-API-Arg` header (ASCII JSON) and `Dropbox-API-Result`
//! (`files/download`), `POST /oauth2/token` for refresh tokens, metadata with `.tag`,
//! `path_lower`, `path_display`, `rev`, `server_modified`, `size` and `content_hash`,
//! `has_more` paging, 409 endpoint errors (`path/not_found/..`, `reset/..`), 401
//! `expired_access_token` and 429 with `Retry-After`.
//!
//! Files are changed through its methods; every change goes into a log that cursors point
//! into, so `list_folder/continue` reports what changed since a cursor, as Dropbox does.
//!
//! One file, over the usual size: it is one fake service (files, cursors, tokens and their
//! routes share one state), and splitting it would spread one wire format over several files.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Dropbox's content hash, computed here independently of the client under test.
fn block_hash(bytes: &[u8]) -> String {
    let digests: Vec<u8> = bytes
        .chunks(4 << 20)
        .flat_map(|block| Sha256::digest(block).to_vec())
        .collect();
    Sha256::digest(&digests)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Debug, Clone)]
struct File {
    path_display: String,
    id: String,
    rev: String,
    server_modified: String,
    content: Vec<u8>,
    downloadable: bool,
}

/// One change: a path (lowercase) whose state is now whatever the files map says.
#[derive(Debug, Clone)]
struct Change {
    path_lower: String,
    /// The display path of what was deleted (for `deleted` entries).
    display: String,
    /// A deleted folder, reported as one entry.
    folder: bool,
}

#[derive(Debug)]
struct Auth {
    /// Static tokens always valid, or issued tokens with their expiry.
    tokens: HashMap<String, Option<Instant>>,
    refresh: Option<(String, Option<String>, String)>,
    lifetime: Duration,
    issued: u64,
}

#[derive(Debug)]
struct Shared {
    files: BTreeMap<String, File>,
    log: Vec<Change>,
    epoch: u64,
    page_size: usize,
    next_rev: u64,
    clock: u64,
    auth: Auth,
    /// Per coming request: `Some(secs)` answers 429 with that Retry-After, `None` passes.
    throttle: VecDeque<Option<u64>>,
    requests: crate::requests::RequestLog,
    slow_downloads: BTreeSet<String>,
    download_delay: Duration,
}

/// The running stand-in; it stops when the test's runtime ends.
#[derive(Debug, Clone)]
pub struct DropboxServer {
    /// Base URL for both the RPC and the content endpoints: `http://127.0.0.1:PORT`.
    pub url: String,
    shared: Arc<Mutex<Shared>>,
}

fn error(status: StatusCode, summary: &str, error: Value) -> Response {
    (
        status,
        axum::Json(json!({ "error_summary": summary, "error": error })),
    )
        .into_response()
}

/// `Dropbox-API-Result`-style JSON: non-ASCII as `\uXXXX`.
fn ascii_json(value: &Value) -> String {
    value
        .to_string()
        .chars()
        .flat_map(|c| {
            if c.is_ascii() {
                vec![c.to_string()]
            } else {
                let mut units = [0u16; 2];
                c.encode_utf16(&mut units)
                    .iter()
                    .map(|u| format!("\\u{u:04x}"))
                    .collect()
            }
        })
        .collect()
}

/// A cursor: the epoch it was issued in, the folder, the log position it covers, and for a
/// listing in progress the offset into it.
fn encode_cursor(epoch: u64, root: &str, seq: usize, offset: Option<usize>) -> String {
    let raw = json!({ "e": epoch, "r": root, "s": seq, "o": offset }).to_string();
    let hex: String = raw.bytes().map(|b| format!("{b:02x}")).collect();
    format!("AAE{hex}")
}

fn decode_cursor(cursor: &str) -> Option<(u64, String, usize, Option<usize>)> {
    let hex = cursor.strip_prefix("AAE")?;
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    let v: Value = serde_json::from_slice(&bytes?).ok()?;
    Some((
        v["e"].as_u64()?,
        v["r"].as_str()?.to_string(),
        v["s"].as_u64()? as usize,
        v["o"].as_u64().map(|o| o as usize),
    ))
}

fn under(path_lower: &str, root: &str) -> bool {
    root.is_empty()
        || path_lower == root
        || path_lower
            .strip_prefix(root)
            .is_some_and(|r| r.starts_with('/'))
}

impl Shared {
    fn metadata(&self, path_lower: &str, f: &File) -> Value {
        let name = f.path_display.rsplit('/').next().unwrap_or_default();
        json!({
            ".tag": "file",
            "name": name,
            "path_lower": path_lower,
            "path_display": f.path_display,
            "id": f.id,
            "client_modified": f.server_modified,
            "server_modified": f.server_modified,
            "rev": f.rev,
            "size": f.content.len(),
            "is_downloadable": f.downloadable,
            "content_hash": block_hash(&f.content),
        })
    }

    /// Files and folders under `root`, as a full listing returns them (folders first).
    fn snapshot(&self, root: &str) -> Vec<Value> {
        let mut folders = BTreeMap::new();
        let mut files = Vec::new();
        for (lower, f) in self.files.iter().filter(|(p, _)| under(p, root)) {
            let (mut l, mut d) = (lower.as_str(), f.path_display.as_str());
            while let (Some((lp, _)), Some((dp, _))) = (l.rsplit_once('/'), d.rsplit_once('/')) {
                if lp.len() <= root.len() {
                    break;
                }
                folders.insert(lp.to_string(), dp.to_string());
                (l, d) = (lp, dp);
            }
            files.push(self.metadata(lower, f));
        }
        let mut out: Vec<Value> = folders
            .into_iter()
            .map(|(lower, display)| {
                json!({ ".tag": "folder", "name": display.rsplit('/').next(), "path_lower": lower, "path_display": display, "id": format!("id:folder{}", lower.len()) })
            })
            .collect();
        out.extend(files);
        out
    }

    /// What changed under `root` after log position `seq`: the latest state of each path.
    fn changes_since(&self, root: &str, seq: usize) -> Vec<Value> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for change in self.log[seq.min(self.log.len())..].iter() {
            if !under(&change.path_lower, root) || !seen.insert(change.path_lower.clone()) {
                continue;
            }
            match self.files.get(&change.path_lower) {
                Some(f) if !change.folder => out.push(self.metadata(&change.path_lower, f)),
                _ => out.push(json!({
                    ".tag": "deleted",
                    "name": change.display.rsplit('/').next(),
                    "path_lower": change.path_lower,
                    "path_display": change.display,
                })),
            }
        }
        out
    }

    fn record(&mut self, path_lower: String, display: String, folder: bool) {
        self.log.push(Change {
            path_lower,
            display,
            folder,
        });
    }

    fn tick(&mut self) -> (String, String) {
        self.next_rev += 1;
        self.clock += 1;
        let secs = 1_780_000_000 + self.clock;
        let time =
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs))
                .to_string();
        (
            format!("{:012x}", 0x5f00_0000_0000u64 + self.next_rev),
            time,
        )
    }
}

impl DropboxServer {
    /// Start on a free port of 127.0.0.1, accepting the access token `token`.
    pub async fn start(token: &str) -> Self {
        Self::start_with_auth(HashMap::from([(token.to_string(), None)]), None).await
    }

    /// Start with refresh-token auth only: `POST /oauth2/token` with this app key (and
    /// secret, unless `None`) and refresh token issues tokens valid for `lifetime`.
    pub async fn start_with_refresh(
        app_key: &str,
        app_secret: Option<&str>,
        refresh_token: &str,
        lifetime: Duration,
    ) -> Self {
        let server = Self::start_with_auth(
            HashMap::new(),
            Some((
                app_key.to_string(),
                app_secret.map(String::from),
                refresh_token.to_string(),
            )),
        )
        .await;
        server.shared.lock().expect("dropbox").auth.lifetime = lifetime;
        server
    }

    async fn start_with_auth(
        tokens: HashMap<String, Option<Instant>>,
        refresh: Option<(String, Option<String>, String)>,
    ) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            files: BTreeMap::new(),
            log: Vec::new(),
            epoch: 1,
            page_size: 500,
            next_rev: 0,
            clock: 0,
            auth: Auth {
                tokens,
                refresh,
                lifetime: Duration::from_secs(14_400),
                issued: 0,
            },
            throttle: VecDeque::new(),
            requests: Default::default(),
            slow_downloads: BTreeSet::new(),
            download_delay: Duration::from_secs(30),
        }));
        let app = axum::Router::new()
            .route("/oauth2/token", post(token))
            .route("/2/{*route}", post(route))
            .with_state(shared.clone());
        let addr = crate::serve(app).await;
        Self {
            url: format!("http://{addr}"),
            shared,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().expect("dropbox")
    }

    /// Create or overwrite a file (`/Folder/Name.md`; case kept for display).
    pub fn put(&self, path: &str, content: &[u8]) {
        let mut s = self.lock();
        let lower = path.to_lowercase();
        let (rev, time) = s.tick();
        let id = s
            .files
            .get(&lower)
            .map(|f| f.id.clone())
            .unwrap_or_else(|| format!("id:{:016x}", s.next_rev));
        s.files.insert(
            lower.clone(),
            File {
                path_display: path.to_string(),
                id,
                rev,
                server_modified: time,
                content: content.to_vec(),
                downloadable: true,
            },
        );
        s.record(lower, path.to_string(), false);
    }

    /// A file Dropbox lists but cannot download (a cloud-only document).
    pub fn put_cloud_only(&self, path: &str) {
        self.put(path, b"");
        let mut s = self.lock();
        if let Some(f) = s.files.get_mut(&path.to_lowercase()) {
            f.downloadable = false;
        }
    }

    /// Delete a file.
    pub fn delete(&self, path: &str) {
        let mut s = self.lock();
        let lower = path.to_lowercase();
        if let Some(f) = s.files.remove(&lower) {
            s.record(lower, f.path_display, false);
        }
    }

    /// Delete a folder and everything in it: one `deleted` entry for the folder.
    pub fn delete_folder(&self, path: &str) {
        let mut s = self.lock();
        let lower = path.to_lowercase();
        let gone: Vec<String> = s
            .files
            .keys()
            .filter(|p| under(p, &lower) && **p != lower)
            .cloned()
            .collect();
        for p in gone {
            s.files.remove(&p);
        }
        s.record(lower, path.to_string(), true);
    }

    /// Move a file: its id and content stay; the old path is reported deleted.
    pub fn rename(&self, from: &str, to: &str) {
        let mut s = self.lock();
        let Some(mut f) = s.files.remove(&from.to_lowercase()) else {
            panic!("no file {from}");
        };
        let old = f.path_display.clone();
        let (rev, time) = s.tick();
        f.path_display = to.to_string();
        f.rev = rev;
        f.server_modified = time;
        s.files.insert(to.to_lowercase(), f);
        s.record(from.to_lowercase(), old, false);
        s.record(to.to_lowercase(), to.to_string(), false);
    }

    /// Entries per page of `list_folder` and `continue` (default 500).
    pub fn set_page_size(&self, n: usize) {
        self.lock().page_size = n.max(1);
    }

    /// Invalidate every cursor: `continue` answers 409 `reset`.
    pub fn reset_cursors(&self) {
        self.lock().epoch += 1;
    }

    /// Expire every issued token: requests with them get 401 `expired_access_token`.
    pub fn expire_tokens(&self) {
        let mut s = self.lock();
        for expiry in s.auth.tokens.values_mut() {
            *expiry = Some(Instant::now());
        }
    }

    /// Answer the next `n` requests with 429 and `Retry-After: secs`.
    pub fn throttle(&self, n: usize, secs: u64) {
        self.throttle_after(0, n, secs);
    }

    /// Let the next `pass` requests through, then answer `n` with 429 and `Retry-After: secs`.
    pub fn throttle_after(&self, pass: usize, n: usize, secs: u64) {
        let mut s = self.lock();
        s.throttle.extend(std::iter::repeat_n(None, pass));
        s.throttle.extend(std::iter::repeat_n(Some(secs), n));
    }

    /// Downloads of this path hang (30 s) before answering, so a test can stop a run mid-way.
    pub fn slow_download(&self, path: &str) {
        self.lock().slow_downloads.insert(path.to_lowercase());
    }

    /// Downloads answer at once again.
    pub fn fast_downloads(&self) {
        self.lock().slow_downloads.clear();
    }

    /// Requests per route (`files/list_folder`, `files/download`, `oauth2/token`, ...).
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.lock().requests.counts()
    }

    /// Requests of one route.
    pub fn count(&self, route: &str) -> usize {
        self.lock().requests.count(route)
    }

    /// Every request so far, in total.
    pub fn total_requests(&self) -> usize {
        self.lock().requests.total()
    }

    /// When each request arrived.
    pub fn request_times(&self) -> Vec<Instant> {
        self.lock().requests.times()
    }

    /// Forget the requests so far.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// Access tokens issued by refresh so far.
    pub fn tokens_issued(&self) -> u64 {
        self.lock().auth.issued
    }

    /// The content hash Dropbox gives `bytes`.
    pub fn content_hash(bytes: &[u8]) -> String {
        block_hash(bytes)
    }
}

/// The common checks of every call: rate limit, then the bearer token. `Some` is the refusal.
fn refusal(s: &mut Shared, route: &str, headers: &HeaderMap) -> Option<Response> {
    s.requests.record(route);
    if let Some(Some(secs)) = s.throttle.pop_front() {
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests/...",
            json!({ "reason": { ".tag": "too_many_requests" }, "retry_after": secs }),
        );
        r.headers_mut()
            .insert("Retry-After", secs.to_string().parse().expect("header"));
        return Some(r);
    }
    if route == "oauth2/token" {
        return None;
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token.and_then(|t| s.auth.tokens.get(t)) {
        Some(None) => None,
        Some(Some(expiry)) if Instant::now() < *expiry => None,
        Some(Some(_)) => Some(error(
            StatusCode::UNAUTHORIZED,
            "expired_access_token/..",
            json!({ ".tag": "expired_access_token" }),
        )),
        None => Some(error(
            StatusCode::UNAUTHORIZED,
            "invalid_access_token/...",
            json!({ ".tag": "invalid_access_token" }),
        )),
    }
}

async fn token(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = shared.lock().expect("dropbox");
    if let Some(r) = refusal(&mut s, "oauth2/token", &headers) {
        return r;
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let bad = |error: &str, description: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": error, "error_description": description })),
        )
            .into_response()
    };
    let Some((key, secret, refresh)) = s.auth.refresh.clone() else {
        return bad("invalid_grant", "refresh token is malformed");
    };
    if form.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return bad("unsupported_grant_type", "grant_type must be refresh_token");
    }
    if form.get("client_id") != Some(&key)
        || secret.is_some_and(|s| form.get("client_secret") != Some(&s))
    {
        return bad("invalid_client", "Invalid client_id or client_secret");
    }
    if form.get("refresh_token") != Some(&refresh) {
        return bad("invalid_grant", "refresh token is invalid or revoked");
    }
    s.auth.issued += 1;
    let access = format!("sl.stand-in-{}", s.auth.issued);
    let lifetime = s.auth.lifetime;
    s.auth
        .tokens
        .insert(access.clone(), Some(Instant::now() + lifetime));
    axum::Json(
        json!({ "access_token": access, "token_type": "bearer", "expires_in": lifetime.as_secs() }),
    )
    .into_response()
}

async fn route(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path(route): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if route == "files/download" {
        return download(shared, headers).await;
    }
    let mut s = shared.lock().expect("dropbox");
    if let Some(r) = refusal(&mut s, &route, &headers) {
        return r;
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return (
            StatusCode::BAD_REQUEST,
            format!("Error in call to API function \"{route}\": Bad HTTP \"Content-Type\" header. Expecting \"application/json\"."),
        )
            .into_response();
    }
    let Ok(arg) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            format!("Error in call to API function \"{route}\": request body: could not decode input as JSON"),
        )
            .into_response();
    };
    match route.as_str() {
        "files/list_folder" => {
            let root = arg["path"].as_str().unwrap_or_default().to_lowercase();
            if arg["recursive"] != json!(true) {
                return (
                    StatusCode::BAD_REQUEST,
                    "this stand-in lists recursively only",
                )
                    .into_response();
            }
            if !root.is_empty() && !s.files.keys().any(|p| under(p, &root) && *p != root) {
                return error(
                    StatusCode::CONFLICT,
                    "path/not_found/..",
                    json!({ ".tag": "path", "path": { ".tag": "not_found" } }),
                );
            }
            let seq = s.log.len();
            page(&s, root, seq, 0, true)
        }
        "files/list_folder/continue" => {
            let Some((epoch, root, seq, offset)) = arg["cursor"].as_str().and_then(decode_cursor)
            else {
                return (
                    StatusCode::BAD_REQUEST,
                    "Error in call to API function \"files/list_folder/continue\": Invalid \"cursor\" parameter",
                )
                    .into_response();
            };
            if epoch != s.epoch {
                return error(StatusCode::CONFLICT, "reset/..", json!({ ".tag": "reset" }));
            }
            match offset {
                Some(offset) => page(&s, root, seq, offset, true),
                None => page(&s, root, seq, 0, false),
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            format!("Unknown API function: \"{route}\""),
        )
            .into_response(),
    }
}

/// One page of a listing (`listing`: the folder's state when it started at `seq`) or of the
/// changes after `seq`.
fn page(s: &Shared, root: String, seq: usize, offset: usize, listing: bool) -> Response {
    let all = if listing {
        s.snapshot(&root)
    } else {
        s.changes_since(&root, seq)
    };
    let end = (offset + s.page_size).min(all.len());
    let has_more = end < all.len();
    let cursor = if has_more && listing {
        encode_cursor(s.epoch, &root, seq, Some(end))
    } else if has_more {
        // The rest of the changes: this stand-in pages changes by replaying from `seq`,
        // skipping what was sent; simplest is a cursor at the log position of the page end.
        encode_cursor(s.epoch, &root, change_seq_after(s, &root, seq, end), None)
    } else if listing {
        encode_cursor(s.epoch, &root, seq, None)
    } else {
        encode_cursor(s.epoch, &root, s.log.len(), None)
    };
    axum::Json(json!({ "entries": all[offset..end], "cursor": cursor, "has_more": has_more }))
        .into_response()
}

/// The log position just after the `count`-th distinct path changed under `root` since `seq`.
fn change_seq_after(s: &Shared, root: &str, seq: usize, count: usize) -> usize {
    let mut seen = BTreeSet::new();
    for (i, change) in s.log.iter().enumerate().skip(seq) {
        if under(&change.path_lower, root)
            && seen.insert(change.path_lower.clone())
            && seen.len() == count
        {
            return i + 1;
        }
    }
    s.log.len()
}

async fn download(shared: Arc<Mutex<Shared>>, headers: HeaderMap) -> Response {
    let (file, slow, delay) = {
        let mut s = shared.lock().expect("dropbox");
        if let Some(r) = refusal(&mut s, "files/download", &headers) {
            return r;
        }
        // The header must be ASCII JSON (Dropbox refuses other bytes).
        let Some(arg) = headers
            .get("Dropbox-API-Arg")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| serde_json::from_str::<Value>(v).ok())
        else {
            return (
                StatusCode::BAD_REQUEST,
                "Error in call to API function \"files/download\": Bad HTTP \"Dropbox-API-Arg\" header",
            )
                .into_response();
        };
        let wanted = arg["path"].as_str().unwrap_or_default();
        let found = if let Some(id) = wanted.strip_prefix("id:") {
            s.files.iter().find(|(_, f)| f.id == format!("id:{id}"))
        } else if let Some(rev) = wanted.strip_prefix("rev:") {
            s.files.iter().find(|(_, f)| f.rev == rev)
        } else {
            s.files.get_key_value(&wanted.to_lowercase())
        };
        let Some((lower, f)) = found else {
            return error(
                StatusCode::CONFLICT,
                "path/not_found/...",
                json!({ ".tag": "path", "path": { ".tag": "not_found" } }),
            );
        };
        if !f.downloadable {
            return error(
                StatusCode::CONFLICT,
                "unsupported_file/...",
                json!({ ".tag": "unsupported_file" }),
            );
        }
        let meta = s.metadata(lower, f);
        (
            (meta, f.content.clone()),
            s.slow_downloads.contains(lower),
            s.download_delay,
        )
    };
    if slow {
        tokio::time::sleep(delay).await;
    }
    let (meta, content) = file;
    Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/octet-stream")
        .header("Dropbox-API-Result", ascii_json(&meta))
        .body(Body::from(content))
        .expect("response")
}
