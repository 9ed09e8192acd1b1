//! An HTTP proxy on 127.0.0.1 in front of a real server (moto's S3): it records every request
//! (method, path, query) so a test can count what a sync sent, and answers chosen requests
//! with an injected error instead of forwarding them.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::Response;

/// One request that reached the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedRequest {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The path, percent-encoded as sent.
    pub path: String,
    /// The query string, without `?`.
    pub query: String,
    /// The names of its headers, lowercase (values are not kept: they carry credentials).
    pub header_names: Vec<String>,
}

impl ProxiedRequest {
    /// An S3 ListObjectsV2 page.
    pub fn is_s3_list(&self) -> bool {
        self.method == "GET" && self.query.contains("list-type=2")
    }

    /// An S3 GetObject (a GET of a key, not a listing).
    pub fn is_s3_get(&self) -> bool {
        self.method == "GET"
            && !self.query.contains("list-type=")
            && self.path.matches('/').count() >= 2
    }
}

/// An answer the proxy gives instead of forwarding.
#[derive(Debug, Clone)]
pub struct InjectedFault {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: String,
}

type Rule = Box<dyn Fn(&ProxiedRequest) -> Option<InjectedFault> + Send>;

#[derive(Default)]
struct Shared {
    log: Vec<ProxiedRequest>,
    rule: Option<Rule>,
}

/// The running proxy; it stops when the test's runtime ends.
#[derive(Clone)]
pub struct HttpProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shared: Arc<Mutex<Shared>>,
}

impl std::fmt::Debug for HttpProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProxy").field("url", &self.url).finish()
    }
}

#[derive(Clone)]
struct Upstream {
    base: String,
    client: reqwest::Client,
    shared: Arc<Mutex<Shared>>,
}

impl HttpProxy {
    /// Proxy a free port of 127.0.0.1 to `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let state = Upstream {
            base: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
            shared: shared.clone(),
        };
        let app = axum::Router::new().fallback(forward).with_state(state);
        let addr = crate::serve(app).await;
        Self {
            url: format!("http://{addr}"),
            shared,
        }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.shared.lock().expect("proxy").log.clone()
    }

    /// Forget the requests so far.
    pub fn clear(&self) {
        self.shared.lock().expect("proxy").log.clear();
    }

    /// Answer requests for which `rule` gives a fault with it (they are still recorded).
    pub fn fail_when(
        &self,
        rule: impl Fn(&ProxiedRequest) -> Option<InjectedFault> + Send + 'static,
    ) {
        self.shared.lock().expect("proxy").rule = Some(Box::new(rule));
    }

    /// Forward everything again.
    pub fn heal(&self) {
        self.shared.lock().expect("proxy").rule = None;
    }
}

async fn forward(State(up): State<Upstream>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let seen = ProxiedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        header_names: parts
            .headers
            .keys()
            .map(|k| k.as_str().to_string())
            .collect(),
    };
    let fault = {
        let mut shared = up.shared.lock().expect("proxy");
        shared.log.push(seen.clone());
        shared.rule.as_ref().and_then(|rule| rule(&seen))
    };
    if let Some(fault) = fault {
        return Response::builder()
            .status(fault.status)
            .header("content-type", "application/xml")
            .body(Body::from(fault.body))
            .expect("response");
    }
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(_) => return status(StatusCode::BAD_REQUEST),
    };
    let target = match parts.uri.query() {
        Some(q) => format!("{}{}?{q}", up.base, parts.uri.path()),
        None => format!("{}{}", up.base, parts.uri.path()),
    };
    let mut outgoing = up.client.request(parts.method.clone(), &target).body(bytes);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = match outgoing.send().await {
        Ok(a) => a,
        Err(_) => return status(StatusCode::BAD_GATEWAY),
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    // Hop-by-hop headers belong to the upstream connection, not to this answer.
    let hop_by_hop = [
        HeaderName::from_static("transfer-encoding"),
        HeaderName::from_static("connection"),
    ];
    for (name, value) in answer.headers() {
        if !hop_by_hop.contains(name) {
            response = response.header(name, value);
        }
    }
    let body = answer.bytes().await.unwrap_or_default();
    response.body(Body::from(body)).expect("response")
}

fn status(code: StatusCode) -> Response {
    Response::builder()
        .status(code)
        .body(Body::empty())
        .expect("response")
}
