//! lancesync REST API: an axum [`Router`] over the [`Orchestrator`].
//!
//! Bearer-token auth (an admin token and per-user tokens; a user token sees only its own
//! data), JSON errors `{error, message}` with the right status, body-size and per-token
//! rate limits, CORS for configured origins only, Prometheus metrics at `/metrics`, and an
//! OpenAPI document generated from the handlers at `/openapi.json` (rendered at `/docs`).
//!
//! ```no_run
//! # async fn run(
//! #     orchestrator: lancesync_orchestrator::Orchestrator,
//! #     config: std::sync::Arc<lancesync_config::Config>,
//! # ) -> std::io::Result<()> {
//! let api = lancesync_api::Api::new(orchestrator.clone(), config);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! lancesync_api::serve(listener, api.router(), std::future::pending()).await
//! # }
//! ```

mod actions;
mod auth;
mod error;
mod metrics;
mod openapi;
mod routes;
mod schemas;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use lancesync_orchestrator::Orchestrator;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};

pub use actions::{NewSource, SourceEdit};
pub use auth::{Auth, Principal};
pub use error::{ApiError, ErrorBody};
pub use metrics::Metrics;
pub use routes::ApiDoc;

/// Everything a handler needs.
#[derive(Clone)]
pub struct Api {
    pub(crate) orchestrator: Orchestrator,
    pub(crate) config: Arc<lancesync_config::Config>,
    pub(crate) auth: Auth,
    pub(crate) metrics: Arc<Metrics>,
    limiter: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    /// The last readiness answer and when it was computed.
    /// `{SYNC_STATE_DIR}/users/`: where uploads are kept, hidden from answers.
    users_root: Arc<str>,
    pub(crate) readiness:
        Arc<tokio::sync::Mutex<Option<(Instant, lancesync_orchestrator::ComponentHealth)>>>,
    max_body_bytes: usize,
    cors_origins: Vec<String>,
    /// A browser asking for `/` is sent to the dashboard (set by [`Api::router_with`]).
    pub(crate) ui_mounted: bool,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("auth", &self.auth)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// The API over `orchestrator`; `config` (whose settings the orchestrator runs with)
    /// supplies tokens, limits and CORS, and what `/api/v1/status` shows.
    pub fn new(orchestrator: Orchestrator, config: Arc<lancesync_config::Config>) -> Self {
        let api = config.settings().api.clone();
        let limiter = NonZeroU32::new(api.rate_limit_per_minute.min(u32::MAX as u64) as u32)
            .map(|n| Arc::new(RateLimiter::keyed(Quota::per_minute(n))));
        let users_root = format!(
            "{}/",
            orchestrator
                .settings()
                .monitoring
                .state_dir
                .join("users")
                .display()
        )
        .into();
        Self {
            auth: Auth::from_settings(&api),
            metrics: Metrics::new(orchestrator.clone()),
            orchestrator,
            config,
            limiter,
            users_root,
            readiness: Arc::default(),
            max_body_bytes: api.max_body_bytes.min(usize::MAX as u64) as usize,
            cors_origins: api.cors_origins,
            ui_mounted: false,
        }
    }

    /// The orchestrator.
    pub fn orchestrator(&self) -> &Orchestrator {
        &self.orchestrator
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Arc<lancesync_config::Config> {
        &self.config
    }

    /// The configured tokens.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The router: every endpoint with auth, limits, CORS, metrics and tracing.
    pub fn router(&self) -> Router {
        self.routes_with(Router::new())
    }

    /// [`Api::router`] with `ui` (the dashboard's routes, under `/ui`) behind the same limits,
    /// metrics and tracing; a browser that asks for `/` is sent to `/ui`.
    pub fn router_with(&self, ui: Router) -> Router {
        let mut api = self.clone();
        api.ui_mounted = true;
        api.routes_with(ui)
    }

    fn routes_with(&self, extra: Router) -> Router {
        let origins: Vec<HeaderValue> = self
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        let cors = CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
            ]);
        routes::routes()
            .with_state(self.clone())
            .merge(extra)
            .fallback(|| async { ApiError::not_found("no such endpoint; see /openapi.json") })
            .method_not_allowed_fallback(|| async {
                ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "this endpoint does not take that method; see /openapi.json",
                )
            })
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                hide_server_paths,
            ))
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                rate_limit,
            ))
            .layer(DefaultBodyLimit::max(self.max_body_bytes))
            .layer(axum::middleware::from_fn_with_state(self.clone(), record))
            .layer(cors)
            .layer(CatchPanicLayer::custom(
                |_: Box<dyn std::any::Any + Send>| {
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
                        .into_response()
                },
            ))
            .layer(
                // One span per request with method and path (never headers: they carry
                // tokens), and a line per response with status and latency.
                TraceLayer::new_for_http()
                    .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
                    .on_request(())
                    .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
            )
    }
}

/// Count and time every request, labelled by route template.
async fn record(State(api): State<Api>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = metrics::RequestLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    api.metrics.requests.get_or_create(&labels).inc();
    api.metrics
        .latency
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Uploaded documents live in the server's state folder, and their rows name that absolute
/// path. Callers (and the dashboard's pages) see `uploads/{name}` instead: where the server keeps files is none of their
/// business (and the uri stays as stored, so ids do not change).
async fn hide_server_paths(State(api): State<Api>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    // JSON answers and the dashboard's pages.
    let text = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|t| {
            t.as_bytes().starts_with(b"application/json") || t.as_bytes().starts_with(b"text/html")
        });
    if !text {
        return response;
    }
    let root = &*api.users_root;
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    if !text.contains(root) {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    }
    let mut parts = parts;
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(
        parts,
        axum::body::Body::from(strip_upload_roots(&text, root)),
    )
}

/// `text` with every `{root}{user}/uploads/` replaced by `uploads/`.
fn strip_upload_roots(text: &str, root: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(root) {
        let after_root = &rest[at + root.len()..];
        let user_end = after_root.find('/').unwrap_or(after_root.len());
        match after_root[user_end..].strip_prefix("/uploads/") {
            Some(tail) => {
                out.push_str(&rest[..at]);
                out.push_str("uploads/");
                rest = tail;
            }
            None => {
                out.push_str(&rest[..at + root.len()]);
                rest = after_root;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Paths that liveness and readiness probes call: never rate limited, since behind a proxy
/// every probe shares one address with everyone else's bad requests.
const PROBE_PATHS: [&str; 2] = ["/health/live", "/health/ready"];

/// Per-token (or, without a valid token, per-address) rate limit: 429 past it, with
/// `Retry-After` saying when the next request is allowed. Probes are exempt.
async fn rate_limit(State(api): State<Api>, request: Request, next: Next) -> Response {
    if let Some(limiter) = &api.limiter
        && !PROBE_PATHS.contains(&request.uri().path())
    {
        let key = match api.auth.authenticate(request.headers()) {
            Ok(p) if api.auth.is_enabled() => p.limit_key(),
            _ => request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| format!("ip:{}", c.0.ip()))
                .unwrap_or_else(|| "ip:unknown".into()),
        };
        if let Err(not_until) = limiter.check_key(&key) {
            use governor::clock::{Clock, DefaultClock};
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests for this token; slow down and retry after the seconds in Retry-After",
            )
            .into_response();
            // Whole seconds, rounded up, at least 1 (RFC 9110's delay-seconds).
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from(seconds.max(1)),
            );
            return response;
        }
    }
    next.run(request).await
}

/// How the server treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// How long a client may take to send a request's headers before the connection is
    /// closed (a slow or half-sent request line never holds a connection open).
    pub header_read_timeout: Duration,
    /// How long requests in flight get to finish once shutdown begins; connections still
    /// open then are closed.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Serve `router` on `listener` until `shutdown` resolves, then finish requests in flight
/// (see [`serve_with`] for the limits).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, shutdown, ServeOptions::default()).await
}

/// [`serve`] with options: HTTP/1 and HTTP/2, each request told its peer's address
/// (`ConnectInfo<SocketAddr>`), headers read within `header_read_timeout`, and at shutdown
/// `shutdown_grace` for requests in flight before the remaining connections are dropped.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use tower::ServiceExt;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service =
            router
                .clone()
                .map_request(move |mut request: Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(remote));
                    request.map(axum::body::Body::new)
                });
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(stream),
                hyper_util::service::TowerToHyperService::new(service),
            )
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = options.shutdown_grace.as_secs(),
            "requests still in flight after the shutdown grace; closing their connections"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::strip_upload_roots;

    #[test]
    fn upload_roots_are_stripped() {
        let root = "/srv/state/users/";
        assert_eq!(
            strip_upload_roots(
                r#"{"source_uri":"/srv/state/users/alice/uploads/a.md","e":"cannot read /srv/state/users/bob/uploads/b.pdf: x"}"#,
                root
            ),
            r#"{"source_uri":"uploads/a.md","e":"cannot read uploads/b.pdf: x"}"#
        );
        // Other files under the root (a registry) are left alone.
        assert_eq!(
            strip_upload_roots("/srv/state/users/alice/sources.toml", root),
            "/srv/state/users/alice/sources.toml"
        );
        assert_eq!(strip_upload_roots("no paths", root), "no paths");
    }
}
