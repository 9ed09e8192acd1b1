//! A local stand-in for Google Drive API v3 and Google's OAuth token endpoint on 127.0.0.1,
//! speaking their wire format: `files.list` (`q` with `'id' in parents`, `or`, `and`,
//! `trashed = false`; `corpora`, `driveId`, `pageSize`/`pageToken`/`nextPageToken`,
//! `incompleteSearch`), `files.get` (metadata, or content with `alt=media`), `files.export`
//! (Google Docs, Sheets and Slides, with the 10 MB `exportSizeLimitExceeded` refusal),
//! `changes.getStartPageToken` and `changes.list` (`newStartPageToken`, `removed`), shared
//! drives (`supportsAllDrives`, `includeItemsFromAllDrives`), Google's error body
//! (`{"error": {"code", "message", "errors": [{"reason"}]}}`), 401 `authError`, 429
//! `rateLimitExceeded` with `Retry-After`, 403 `userRateLimitExceeded`; and `POST /token`
//! taking a service account's RS256-signed JWT (checked against the test key's public half)
//! or an OAuth refresh token.
//!
//! Int64 fields (`size`) are strings, as Drive sends them. Files change through its methods;
//! each change goes into the log that change tokens point into.
//!
//! One file, over the usual size: it is one fake service (state, routes and the token endpoint
//! share one lock), and splitting it would spread one wire format over several files.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// A service account JSON key for tests (a throwaway RSA key made for this stand-in, not a
/// credential of any account); the stand-in checks JWTs against its public half.
pub const TEST_SERVICE_ACCOUNT_EMAIL: &str =
    "lancesync-test@lancesync-test.iam.gserviceaccount.com";
const TEST_PRIVATE_KEY: &str = include_str!("fixtures/service-account-test-key.pem");
const TEST_PUBLIC_KEY: &[u8] = include_bytes!("fixtures/service-account-test-key.pub.der");
const FOLDER: &str = "application/vnd.google-apps.folder";
const DOC: &str = "application/vnd.google-apps.document";
const SHEET: &str = "application/vnd.google-apps.spreadsheet";
const SLIDES: &str = "application/vnd.google-apps.presentation";
const EXPORT_LIMIT: usize = 10 * 1024 * 1024;

/// The test service account's JSON key, as Google's console downloads it, with `token_uri`
/// pointing at `token_url`.
pub fn test_service_account_key(token_url: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "lancesync-test",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": TEST_PRIVATE_KEY,
        "client_email": TEST_SERVICE_ACCOUNT_EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_url,
    })
    .to_string()
}

#[derive(Debug, Clone)]
struct File {
    name: String,
    mime: String,
    parents: Vec<String>,
    drive: Option<String>,
    content: Vec<u8>,
    modified: String,
    /// The head revision's number (binary files only).
    revision: u64,
    trashed: bool,
}

#[derive(Debug)]
struct Shared {
    files: BTreeMap<String, File>,
    drives: BTreeMap<String, String>,
    /// Ids changed, in order; change token `n` is the position `n - 1`.
    log: Vec<String>,
    clock: u64,
    next_id: u64,
    page_size: usize,
    /// Issued access tokens and their expiry.
    tokens: HashMap<String, Instant>,
    lifetime: Duration,
    issued: u64,
    refresh: Option<(String, String, String)>,
    /// The `aud` a JWT must carry: this server's token URL.
    audience: String,
    /// The `sub` of the last service-account JWT (domain-wide delegation), if it had one.
    last_subject: Option<String>,
    /// Per coming request: `Some((status, retry_after))` refuses it.
    throttle: VecDeque<Option<(u16, Option<u64>)>>,
    /// Routes that answer 500 for their next n requests.
    /// Routes whose requests fail with 500: (requests let through first, failures).
    failing: HashMap<String, (usize, usize)>,
    requests: crate::requests::RequestLog,
    /// Added to every change token issued; raised to refuse the tokens issued before.
    token_base: usize,
}

/// The running stand-in; it stops when the test's runtime ends.
#[derive(Debug, Clone)]
pub struct DriveServer {
    /// The API's base URL: `http://127.0.0.1:PORT` (`/drive/v3/...`).
    pub url: String,
    /// The token endpoint: `{url}/token`.
    pub token_url: String,
    shared: Arc<Mutex<Shared>>,
}

fn google_error(status: StatusCode, reason: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": {
            "code": status.as_u16(),
            "message": message,
            "errors": [{ "message": message, "domain": "global", "reason": reason }],
        } })),
    )
        .into_response()
}

fn not_found(id: &str) -> Response {
    google_error(
        StatusCode::NOT_FOUND,
        "notFound",
        &format!("File not found: {id}."),
    )
}

fn invalid(location: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": {
            "code": 400, "message": "Invalid Value",
            "errors": [{ "message": "Invalid Value", "domain": "global", "reason": "invalid", "location": location, "locationType": "parameter" }],
        } })),
    )
        .into_response()
}

impl Shared {
    fn tick(&mut self) -> String {
        self.clock += 1;
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_780_000_000 + self.clock * 60);
        humantime::format_rfc3339_millis(t).to_string()
    }

    fn id(&mut self) -> String {
        self.next_id += 1;
        // Drive ids: 33 characters of letters, digits, '-' and '_'.
        format!("1{:0>32}", format!("Gd{:x}", self.next_id * 7919))
    }

    fn resource(&self, id: &str, f: &File) -> Value {
        let mut v = json!({
            "kind": "drive#file",
            "id": id,
            "name": f.name,
            "mimeType": f.mime,
            "parents": f.parents,
            "modifiedTime": f.modified,
            "trashed": f.trashed,
        });
        if let Some(d) = &f.drive {
            v["driveId"] = d.clone().into();
        }
        if !f.mime.starts_with("application/vnd.google-apps.") {
            v["size"] = f.content.len().to_string().into();
            v["md5Checksum"] = crate::md5_hex(&f.content).into();
            v["headRevisionId"] = format!("0B{}r{}", &id[1..13], f.revision).into();
        }
        v
    }

    /// The drive a new item under `parent` belongs to.
    fn drive_of(&self, parent: &str) -> Option<String> {
        if self.drives.contains_key(parent) {
            return Some(parent.to_string());
        }
        self.files.get(parent).and_then(|f| f.drive.clone())
    }
}

impl DriveServer {
    /// Start on a free port of 127.0.0.1. Tokens come only from `POST /token`: a service
    /// account JWT signed with [`test_service_account_key`]'s key, or (after
    /// [`DriveServer::accept_refresh_token`]) a refresh token.
    pub async fn start() -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            files: BTreeMap::new(),
            drives: BTreeMap::new(),
            log: Vec::new(),
            clock: 0,
            next_id: 0,
            page_size: 100,
            tokens: HashMap::new(),
            lifetime: Duration::from_secs(3599),
            issued: 0,
            refresh: None,
            audience: String::new(),
            last_subject: None,
            throttle: VecDeque::new(),
            failing: HashMap::new(),
            requests: Default::default(),
            token_base: 0,
        }));
        let app = axum::Router::new()
            .route("/token", post(token))
            .route("/drive/v3/files", get(files_list))
            .route("/drive/v3/files/{id}", get(files_get))
            .route("/drive/v3/files/{id}/export", get(files_export))
            .route("/drive/v3/changes/startPageToken", get(start_page_token))
            .route("/drive/v3/changes", get(changes_list))
            .with_state(shared.clone());
        let addr = crate::serve(app).await;
        let url = format!("http://{addr}");
        let token_url = format!("{url}/token");
        shared.lock().expect("drive").audience = token_url.clone();
        Self {
            url,
            token_url,
            shared,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().expect("drive")
    }

    /// The test service account's JSON key, for this server's token endpoint.
    pub fn service_account_key(&self) -> String {
        test_service_account_key(&self.token_url)
    }

    /// Also issue tokens for this OAuth client's refresh token.
    pub fn accept_refresh_token(&self, client_id: &str, client_secret: &str, refresh_token: &str) {
        self.lock().refresh = Some((
            client_id.to_string(),
            client_secret.to_string(),
            refresh_token.to_string(),
        ));
    }

    /// How long issued tokens live (default 3599 s, as Google's).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().lifetime = lifetime;
    }

    /// Expire every issued token: requests with them get 401.
    pub fn expire_tokens(&self) {
        for expiry in self.lock().tokens.values_mut() {
            *expiry = Instant::now();
        }
    }

    /// The user the last service-account JWT asked to act as (`sub`), if any.
    pub fn last_jwt_subject(&self) -> Option<String> {
        self.lock().last_subject.clone()
    }

    /// Access tokens issued so far.
    pub fn tokens_issued(&self) -> u64 {
        self.lock().issued
    }

    fn insert(&self, parent: &str, name: &str, mime: &str, content: &[u8]) -> String {
        let mut s = self.lock();
        let id = s.id();
        let modified = s.tick();
        let drive = s.drive_of(parent);
        s.files.insert(
            id.clone(),
            File {
                name: name.to_string(),
                mime: mime.to_string(),
                parents: vec![parent.to_string()],
                drive,
                content: content.to_vec(),
                modified,
                revision: 1,
                trashed: false,
            },
        );
        s.log.push(id.clone());
        id
    }

    /// A shared drive; its id is the parent of its top-level items.
    pub fn create_drive(&self, name: &str) -> String {
        let mut s = self.lock();
        let id = format!("0A{}", &s.id()[2..21]);
        s.drives.insert(id.clone(), name.to_string());
        id
    }

    /// A folder under `parent` (a folder id, a shared drive id, or `root`).
    pub fn create_folder(&self, parent: &str, name: &str) -> String {
        self.insert(parent, name, FOLDER, b"")
    }

    /// A binary file (its MIME type from the name's extension).
    pub fn put_file(&self, parent: &str, name: &str, content: &[u8]) -> String {
        let mime = match name.rsplit('.').next() {
            Some("pdf") => "application/pdf",
            Some("md") => "text/markdown",
            Some("txt") => "text/plain",
            Some("docx") => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            _ => "application/octet-stream",
        };
        self.insert(parent, name, mime, content)
    }

    /// A Google Doc whose Markdown export is `markdown`.
    pub fn put_doc(&self, parent: &str, name: &str, markdown: &str) -> String {
        self.insert(parent, name, DOC, markdown.as_bytes())
    }

    /// A Google Sheet whose CSV export is `csv`.
    pub fn put_sheet(&self, parent: &str, name: &str, csv: &str) -> String {
        self.insert(parent, name, SHEET, csv.as_bytes())
    }

    /// Google Slides whose text export is `text`.
    pub fn put_slides(&self, parent: &str, name: &str, text: &str) -> String {
        self.insert(parent, name, SLIDES, text.as_bytes())
    }

    fn change(&self, id: &str, edit: impl FnOnce(&mut File)) {
        let mut s = self.lock();
        let modified = s.tick();
        let f = s
            .files
            .get_mut(id)
            .unwrap_or_else(|| panic!("no file {id}"));
        edit(f);
        f.modified = modified;
        s.log.push(id.to_string());
    }

    /// New content (and, for binary files, a new head revision).
    pub fn update(&self, id: &str, content: &[u8]) {
        self.change(id, |f| {
            f.content = content.to_vec();
            f.revision += 1;
        });
    }

    /// A new name.
    pub fn rename(&self, id: &str, name: &str) {
        self.change(id, |f| f.name = name.to_string());
    }

    /// A new parent (a move).
    pub fn move_to(&self, id: &str, parent: &str) {
        let drive = self.lock().drive_of(parent);
        self.change(id, |f| {
            f.parents = vec![parent.to_string()];
            f.drive = drive;
        });
    }

    /// Into the trash (still listed by id, `trashed: true`).
    pub fn trash(&self, id: &str) {
        self.change(id, |f| f.trashed = true);
    }

    /// Deleted for good: changes report it `removed`.
    pub fn delete(&self, id: &str) {
        let mut s = self.lock();
        s.files.remove(id);
        s.log.push(id.to_string());
    }

    /// Items per page (default 100; Drive's own default).
    pub fn set_page_size(&self, n: usize) {
        self.lock().page_size = n.max(1);
    }

    /// Every change token issued so far is refused from now on.
    pub fn expire_change_tokens(&self) {
        let mut s = self.lock();
        s.token_base += 1_000_000;
    }

    /// The next `n` requests get 429 with `Retry-After: secs`.
    pub fn throttle(&self, n: usize, secs: u64) {
        self.lock()
            .throttle
            .extend(std::iter::repeat_n(Some((429, Some(secs))), n));
    }

    /// The next `n` requests get 403 `userRateLimitExceeded` (no `Retry-After`).
    pub fn throttle_403(&self, n: usize) {
        self.lock()
            .throttle
            .extend(std::iter::repeat_n(Some((403, None)), n));
    }

    /// The next `n` requests of `route` (as in [`DriveServer::counts`]) answer 500.
    pub fn fail(&self, route: &str, n: usize) {
        self.fail_after(route, 0, n);
    }

    /// Let `pass` requests of `route` through, then answer the next `n` with 500.
    pub fn fail_after(&self, route: &str, pass: usize, n: usize) {
        self.lock().failing.insert(route.to_string(), (pass, n));
    }

    /// Let the next `pass` requests through, then answer `n` with 429 and
    /// `Retry-After: secs`.
    pub fn throttle_after(&self, pass: usize, n: usize, secs: u64) {
        let mut s = self.lock();
        s.throttle.extend(std::iter::repeat_n(None, pass));
        s.throttle
            .extend(std::iter::repeat_n(Some((429, Some(secs))), n));
    }

    /// Forget throttling still to come.
    pub fn clear_throttle(&self) {
        self.lock().throttle.clear();
    }

    /// Requests per route: `token`, `files.list`, `files.get`, `files.get.media`,
    /// `files.export`, `changes.getStartPageToken`, `changes.list`.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.lock().requests.counts()
    }

    /// Requests of one route.
    pub fn count(&self, route: &str) -> usize {
        self.lock().requests.count(route)
    }

    /// Every request so far.
    pub fn total_requests(&self) -> usize {
        self.lock().requests.total()
    }

    /// Forget the requests so far.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }
}

/// Record the request, then apply throttling, injected failures and the bearer token.
fn admit(s: &mut Shared, route: &str, headers: &HeaderMap) -> Option<Response> {
    s.requests.record(route);
    if let Some(Some((status, retry_after))) = s.throttle.pop_front() {
        let (reason, message) = if status == 429 {
            ("rateLimitExceeded", "Rate Limit Exceeded")
        } else {
            ("userRateLimitExceeded", "User Rate Limit Exceeded")
        };
        let mut r = google_error(
            StatusCode::from_u16(status).expect("status"),
            reason,
            message,
        );
        if let Some(secs) = retry_after {
            r.headers_mut()
                .insert("Retry-After", secs.to_string().parse().expect("header"));
        }
        return Some(r);
    }
    if let Some((pass, n)) = s.failing.get_mut(route)
        && *n > 0
    {
        if *pass > 0 {
            *pass -= 1;
        } else {
            *n -= 1;
            return Some(google_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "backendError",
                "Backend Error",
            ));
        }
    }
    if route == "token" {
        return None;
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token.and_then(|t| s.tokens.get(t)) {
        Some(expiry) if Instant::now() < *expiry => None,
        _ => {
            let mut r = google_error(
                StatusCode::UNAUTHORIZED,
                "authError",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            );
            r.headers_mut().insert(
                "WWW-Authenticate",
                "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\""
                    .parse()
                    .expect("header"),
            );
            Some(r)
        }
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// Check a service account's JWT: RS256 over `header.claims` with the test key, the claims
/// Google requires (`iss`, `scope`, `aud`, `iat`, `exp` at most an hour after `iat`).
fn check_jwt(jwt: &str, audience: &str) -> Result<Option<String>, &'static str> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
        );
    };
    let decode = |p: &str| {
        URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| "Invalid JWT Signature.")
    };
    let header: Value =
        serde_json::from_slice(&decode(header)?).map_err(|_| "Invalid JWT Signature.")?;
    if header["alg"] != "RS256" {
        return Err("Invalid JWT Signature.");
    }
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        TEST_PUBLIC_KEY,
    );
    let signed = &jwt[..jwt.rfind('.').expect("three parts")];
    key.verify(signed.as_bytes(), &decode(signature)?)
        .map_err(|_| "Invalid JWT Signature.")?;
    let c: Value =
        serde_json::from_slice(&decode(claims)?).map_err(|_| "Invalid JWT Signature.")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (iat, exp) = (
        c["iat"].as_u64().unwrap_or(0),
        c["exp"].as_u64().unwrap_or(0),
    );
    if c["iss"] != TEST_SERVICE_ACCOUNT_EMAIL {
        return Err("Invalid grant: account not found");
    }
    if c["aud"] != audience {
        return Err("Invalid JWT: Failed audience check.");
    }
    if !c["scope"].as_str().is_some_and(|s| {
        s.split(' ')
            .any(|s| s.starts_with("https://www.googleapis.com/auth/drive"))
    }) {
        return Err("Invalid OAuth scope or ID token audience provided.");
    }
    if exp <= now || exp > iat + 3600 || iat > now + 300 {
        return Err(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    Ok(c["sub"].as_str().map(str::to_string))
}

async fn token(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = shared.lock().expect("drive");
    if let Some(r) = admit(&mut s, "token", &headers) {
        return r;
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    match form.get("grant_type").map(String::as_str) {
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            let jwt = form
                .get("assertion")
                .map(String::as_str)
                .unwrap_or_default();
            match check_jwt(jwt, &s.audience) {
                Ok(subject) => s.last_subject = subject,
                Err(why) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why),
            }
        }
        Some("refresh_token") => {
            let Some((id, secret, refresh)) = s.refresh.clone() else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Bad Request");
            };
            if form.get("client_id") != Some(&id) || form.get("client_secret") != Some(&secret) {
                return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized");
            }
            if form.get("refresh_token") != Some(&refresh) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Token has been expired or revoked.",
                );
            }
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Invalid grant_type: ",
            );
        }
    }
    s.issued += 1;
    let access = format!("ya29.stand-in-{}", s.issued);
    let lifetime = s.lifetime;
    s.tokens.insert(access.clone(), Instant::now() + lifetime);
    axum::Json(
        json!({ "access_token": access, "expires_in": lifetime.as_secs(), "token_type": "Bearer" }),
    )
    .into_response()
}

/// The parents a `q` asks for (`None`: any), or `Err` for what this stand-in (and lancesync)
/// does not send. Grammar: terms joined by ` and `; a term is `trashed = false`, or
/// `'id' in parents`, or such terms in parentheses joined by ` or `.
fn parse_q(q: &str) -> Result<(Option<Vec<String>>, bool), ()> {
    let mut parents: Option<Vec<String>> = None;
    let mut untrashed = false;
    for term in q.split(" and ") {
        let term = term.trim();
        if term == "trashed = false" {
            untrashed = true;
            continue;
        }
        let inner = term
            .strip_prefix('(')
            .and_then(|t| t.strip_suffix(')'))
            .unwrap_or(term);
        let mut ids = Vec::new();
        for alternative in inner.split(" or ") {
            let id = alternative
                .trim()
                .strip_suffix(" in parents")
                .and_then(|a| a.strip_prefix('\''))
                .and_then(|a| a.strip_suffix('\''))
                .ok_or(())?;
            if id.contains(['\'', '\\']) {
                return Err(());
            }
            ids.push(id.to_string());
        }
        parents = Some(ids);
    }
    Ok((parents, untrashed))
}

fn flag(query: &HashMap<String, String>, key: &str) -> bool {
    query.get(key).map(String::as_str) == Some("true")
}

async fn files_list(
    State(shared): State<Arc<Mutex<Shared>>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = shared.lock().expect("drive");
    if let Some(r) = admit(&mut s, "files.list", &headers) {
        return r;
    }
    let all_drives = flag(&query, "includeItemsFromAllDrives");
    let Ok((parents, untrashed)) = parse_q(query.get("q").map(String::as_str).unwrap_or_default())
    else {
        return invalid("q");
    };
    let drive = match query.get("corpora").map(String::as_str) {
        Some("drive") => {
            let Some(d) = query.get("driveId") else {
                return invalid("driveId");
            };
            if !all_drives || !flag(&query, "supportsAllDrives") {
                return google_error(
                    StatusCode::FORBIDDEN,
                    "teamDriveOnly",
                    "The includeItemsFromAllDrives parameter must be set to true when driveId is specified.",
                );
            }
            if !s.drives.contains_key(d) {
                return google_error(
                    StatusCode::NOT_FOUND,
                    "notFound",
                    &format!("Shared drive not found: {d}"),
                );
            }
            Some(d.clone())
        }
        None | Some("user") | Some("allDrives") => None,
        Some(_) => return invalid("corpora"),
    };
    let page_size = query
        .get("pageSize")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 1000)
        .min(s.page_size);
    let matching: Vec<Value> = s
        .files
        .iter()
        .filter(|(_, f)| !untrashed || !f.trashed)
        .filter(|(_, f)| all_drives || f.drive.is_none())
        .filter(|(_, f)| drive.is_none() || f.drive == drive)
        .filter(|(_, f)| {
            parents
                .as_ref()
                .is_none_or(|ps| f.parents.iter().any(|p| ps.contains(p)))
        })
        .map(|(id, f)| s.resource(id, f))
        .collect();
    let offset: usize = match query.get("pageToken") {
        Some(t) => match t.strip_prefix("~!!~").and_then(|o| o.parse().ok()) {
            Some(o) => o,
            None => return invalid("pageToken"),
        },
        None => 0,
    };
    let end = (offset + page_size).min(matching.len());
    let mut out = json!({ "kind": "drive#fileList", "incompleteSearch": false, "files": matching[offset.min(end)..end] });
    if end < matching.len() {
        out["nextPageToken"] = format!("~!!~{end}").into();
    }
    axum::Json(out).into_response()
}

async fn files_get(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let media = query.get("alt").map(String::as_str) == Some("media");
    let mut s = shared.lock().expect("drive");
    if let Some(r) = admit(
        &mut s,
        if media {
            "files.get.media"
        } else {
            "files.get"
        },
        &headers,
    ) {
        return r;
    }
    let Some(f) = s.files.get(&id) else {
        return not_found(&id);
    };
    if f.drive.is_some() && !flag(&query, "supportsAllDrives") {
        return not_found(&id);
    }
    if !media {
        return axum::Json(s.resource(&id, f)).into_response();
    }
    if f.mime.starts_with("application/vnd.google-apps.") {
        return google_error(
            StatusCode::FORBIDDEN,
            "fileNotDownloadable",
            "Only files with binary content can be downloaded. Use Export with Docs Editors files.",
        );
    }
    Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", f.mime.as_str())
        .body(Body::from(f.content.clone()))
        .expect("response")
}

async fn files_export(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = shared.lock().expect("drive");
    if let Some(r) = admit(&mut s, "files.export", &headers) {
        return r;
    }
    let Some(f) = s.files.get(&id) else {
        return not_found(&id);
    };
    let wanted = query
        .get("mimeType")
        .map(String::as_str)
        .unwrap_or_default();
    let supported = match f.mime.as_str() {
        DOC => ["text/markdown", "text/plain"].contains(&wanted),
        SHEET => wanted == "text/csv",
        SLIDES => wanted == "text/plain",
        _ => {
            return google_error(
                StatusCode::FORBIDDEN,
                "fileNotExportable",
                "Export only supports Docs Editors files.",
            );
        }
    };
    if !supported {
        return google_error(
            StatusCode::BAD_REQUEST,
            "badRequest",
            "The requested conversion is not supported.",
        );
    }
    if f.content.len() > EXPORT_LIMIT {
        return google_error(
            StatusCode::FORBIDDEN,
            "exportSizeLimitExceeded",
            "This file is too large to be exported.",
        );
    }
    Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", wanted)
        .body(Body::from(f.content.clone()))
        .expect("response")
}

async fn start_page_token(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
) -> Response {
    let mut s = shared.lock().expect("drive");
    if let Some(r) = admit(&mut s, "changes.getStartPageToken", &headers) {
        return r;
    }
    axum::Json(
        json!({ "kind": "drive#startPageToken", "startPageToken": (s.token_base + s.log.len() + 1).to_string() }),
    )
    .into_response()
}

async fn changes_list(
    State(shared): State<Arc<Mutex<Shared>>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = shared.lock().expect("drive");
    if let Some(r) = admit(&mut s, "changes.list", &headers) {
        return r;
    }
    let Some(start) = query
        .get("pageToken")
        .and_then(|t| t.parse::<usize>().ok())
        .and_then(|t| t.checked_sub(s.token_base))
        .filter(|t| *t >= 1 && *t <= s.log.len() + 1)
    else {
        return invalid("pageToken");
    };
    let all_drives = flag(&query, "includeItemsFromAllDrives");
    let page_size = query
        .get("pageSize")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 1000)
        .min(s.page_size);
    let mut changes = Vec::new();
    let mut position = start - 1;
    while position < s.log.len() && changes.len() < page_size {
        let id = &s.log[position];
        position += 1;
        // Only the latest entry of a file in the rest of the log is reported (as Drive does).
        if s.log[position..].contains(id) {
            continue;
        }
        match s.files.get(id) {
            Some(f) if f.drive.is_some() && !all_drives => {}
            Some(f) => changes.push(json!({
                "kind": "drive#change", "changeType": "file", "type": "file", "time": f.modified,
                "removed": false, "fileId": id, "file": s.resource(id, f),
            })),
            None => changes.push(json!({
                "kind": "drive#change", "changeType": "file", "type": "file",
                "removed": true, "fileId": id,
            })),
        }
    }
    let mut out = json!({ "kind": "drive#changeList", "changes": changes });
    if position < s.log.len() {
        out["nextPageToken"] = (s.token_base + position + 1).to_string().into();
    } else {
        out["newStartPageToken"] = (s.token_base + s.log.len() + 1).to_string().into();
    }
    axum::Json(out).into_response()
}
