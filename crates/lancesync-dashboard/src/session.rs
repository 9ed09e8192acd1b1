//! Sessions: who a browser signed in as, kept on the server; the browser holds a random id in
//! an `HttpOnly`, `SameSite=Strict` cookie. Also the headers every page gets, and the checks
//! that keep another site from acting through a signed-in browser.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use lancesync_api::Principal;
use ring::rand::{SecureRandom, SystemRandom};

use crate::Ui;
use crate::error::Error;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "lancesync_session";
/// A session unused this long is forgotten.
const IDLE: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept; past it, the least recently used go first.
const MAX_SESSIONS: usize = 10_000;

/// A message shown once, on the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flash {
    pub(crate) ok: bool,
    pub(crate) text: String,
}

/// One signed-in browser.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) principal: Principal,
    /// Sent with every form that changes something.
    pub(crate) csrf: String,
    flashes: Mutex<Vec<Flash>>,
    last_seen: Mutex<Instant>,
}

impl Session {
    /// Say `text` on the next page.
    pub(crate) fn flash(&self, ok: bool, text: impl Into<String>) {
        self.flashes.lock().expect("flash lock").push(Flash {
            ok,
            text: text.into(),
        });
    }

    /// The messages not shown yet; they are then gone.
    pub(crate) fn take_flashes(&self) -> Vec<Flash> {
        std::mem::take(&mut *self.flashes.lock().expect("flash lock"))
    }
}

/// Every session, by the BLAKE3 hash of its id (the ids themselves are not kept).
pub(crate) struct Sessions {
    by_id: Mutex<HashMap<blake3::Hash, Arc<Session>>>,
    random: SystemRandom,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            by_id: Mutex::default(),
            random: SystemRandom::new(),
        }
    }
}

impl Sessions {
    fn token(&self) -> String {
        let mut bytes = [0u8; 32];
        self.random
            .fill(&mut bytes)
            .expect("the system's random number generator failed");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A new session for `principal`: its id, for the cookie.
    pub(crate) fn create(&self, principal: Principal) -> (String, Arc<Session>) {
        let id = self.token();
        let session = Arc::new(Session {
            principal,
            csrf: self.token(),
            flashes: Mutex::default(),
            last_seen: Mutex::new(Instant::now()),
        });
        let mut by_id = self.by_id.lock().expect("sessions lock");
        by_id.retain(|_, s| s.last_seen.lock().expect("seen lock").elapsed() < IDLE);
        if by_id.len() >= MAX_SESSIONS
            && let Some(oldest) = by_id
                .iter()
                .min_by_key(|(_, s)| *s.last_seen.lock().expect("seen lock"))
                .map(|(k, _)| *k)
        {
            by_id.remove(&oldest);
        }
        by_id.insert(blake3::hash(id.as_bytes()), session.clone());
        (id, session)
    }

    fn find(&self, id: &str) -> Option<Arc<Session>> {
        let key = blake3::hash(id.as_bytes());
        let mut by_id = self.by_id.lock().expect("sessions lock");
        let session = by_id.get(&key)?.clone();
        let mut seen = session.last_seen.lock().expect("seen lock");
        if seen.elapsed() >= IDLE {
            drop(seen);
            by_id.remove(&key);
            return None;
        }
        *seen = Instant::now();
        drop(seen);
        Some(session)
    }

    /// Forget the session with this id.
    pub(crate) fn remove(&self, id: &str) {
        self.by_id
            .lock()
            .expect("sessions lock")
            .remove(&blake3::hash(id.as_bytes()));
    }
}

/// The `Set-Cookie` value that gives a browser session `id`: `Secure` too when the browser
/// came over HTTPS (a TLS proxy in front says so in `X-Forwarded-Proto`; the flag can only
/// keep the cookie off plain connections, so trusting the header risks nothing).
pub(crate) fn cookie(id: &str, request: &HeaderMap) -> HeaderValue {
    let https = request
        .get("x-forwarded-proto")
        .and_then(|p| p.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("a session id is a cookie value")
}

/// The `Set-Cookie` value that makes a browser forget its session.
pub(crate) fn expired_cookie() -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"
    ))
    .expect("static cookie")
}

/// The session id a request presents.
pub(crate) fn presented_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// The signed-in caller of a page.
#[derive(Clone)]
pub(crate) struct Viewer {
    pub(crate) session: Arc<Session>,
    /// Whether tokens are configured (then there is a sign-out).
    pub(crate) signed_in: bool,
}

impl Viewer {
    pub(crate) fn principal(&self) -> &Principal {
        &self.session.principal
    }

    pub(crate) fn is_admin(&self) -> bool {
        matches!(self.session.principal, Principal::Admin)
    }

    /// Refuse a form whose CSRF token is not this session's.
    pub(crate) fn check_csrf(&self, presented: &str) -> Result<(), Error> {
        let expected = blake3::hash(self.session.csrf.as_bytes());
        if blake3::hash(presented.as_bytes()) == expected {
            Ok(())
        } else {
            Err(Error::Csrf)
        }
    }
}

impl FromRequestParts<Ui> for Viewer {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &Ui) -> Result<Self, Error> {
        parts
            .extensions
            .get::<Viewer>()
            .cloned()
            .ok_or(Error::SignInNeeded)
    }
}

impl axum::extract::OptionalFromRequestParts<Ui> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &Ui,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Viewer>().cloned())
    }
}

/// For every dashboard request: find its session (in loopback-only mode, without tokens, a
/// browser gets one on its first page), refuse a state change from another origin, and add
/// the security headers.
pub(crate) async fn resolve(State(ui): State<Ui>, mut request: Request, next: Next) -> Response {
    let open = !ui.api.auth().is_enabled();
    let writes = request.method() != Method::GET && request.method() != Method::HEAD;
    if writes && !same_origin(request.headers()) {
        return with_headers(Error::Csrf.into_response());
    }
    let mut new_cookie = None;
    let found = presented_id(request.headers()).and_then(|id| ui.sessions.find(&id));
    let session = match found {
        Some(session) => Some(session),
        // A state change needs a session the browser already had: a cookie that a
        // cross-site request could not have sent.
        None if open && !writes => {
            let (id, session) = ui.sessions.create(Principal::Admin);
            new_cookie = Some(cookie(&id, request.headers()));
            Some(session)
        }
        // Signing in is the one change made without a session.
        None if writes && request.uri().path() != "/ui/login" => {
            return with_headers(if open {
                Error::Csrf.into_response()
            } else {
                Error::SignInNeeded.into_response()
            });
        }
        None => None,
    };
    if let Some(session) = session {
        request.extensions_mut().insert(Viewer {
            session,
            signed_in: !open,
        });
    }
    let mut response = next.run(request).await;
    if let Some(cookie) = new_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    with_headers(response)
}

/// Whether a request that changes something came from a dashboard page: its `Origin` (every
/// current browser sends one with a POST) names the host it was sent to. Without `Origin`, the
/// CSRF token and the `SameSite=Strict` cookie still stand.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

fn with_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_found_by_their_id_only() {
        let sessions = Sessions::default();
        let (id, session) = sessions.create(Principal::User("alice".into()));
        assert_eq!(id.len(), 43, "32 random bytes, base64url");
        assert_ne!(id, session.csrf);
        let found = sessions.find(&id).expect("found");
        assert_eq!(found.principal, Principal::User("alice".into()));
        assert!(sessions.find("not-an-id").is_none());
        sessions.remove(&id);
        assert!(sessions.find(&id).is_none());
    }

    #[test]
    fn the_cookie_is_read_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; lancesync_session=abc; b=2"),
        );
        assert_eq!(presented_id(&headers).as_deref(), Some("abc"));
        let plain = cookie("abc", &HeaderMap::new());
        let text = plain.to_str().unwrap();
        assert!(text.contains("HttpOnly") && text.contains("SameSite=Strict"));
        assert!(!text.contains("Secure"));
        let mut behind_tls = HeaderMap::new();
        behind_tls.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(
            cookie("abc", &behind_tls)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
    }

    #[test]
    fn a_post_from_another_origin_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8000"));
        assert!(same_origin(&headers), "no Origin: the token decides");
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8000"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&headers));
    }
}
