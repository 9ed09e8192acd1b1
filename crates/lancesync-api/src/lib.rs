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

mod auth;
mod error;
mod metrics;
mod openapi;
mod routes;
mod schemas;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

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
    max_body_bytes: usize,
    cors_origins: Vec<String>,
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
        Self {
            auth: Auth::from_settings(&api),
            metrics: Metrics::new(orchestrator.clone()),
            orchestrator,
            config,
            limiter,
            max_body_bytes: api.max_body_bytes.min(usize::MAX as u64) as usize,
            cors_origins: api.cors_origins,
        }
    }

    /// The orchestrator.
    pub fn orchestrator(&self) -> &Orchestrator {
        &self.orchestrator
    }

    /// The router: every endpoint with auth, limits, CORS, metrics and tracing.
    pub fn router(&self) -> Router {
        let origins: Vec<HeaderValue> = self
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        let cors = CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
            ]);
        routes::routes()
            .fallback(|| async { ApiError::not_found("no such endpoint; see /openapi.json") })
            .method_not_allowed_fallback(|| async {
                ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "this endpoint does not take that method; see /openapi.json",
                )
            })
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
            .with_state(self.clone())
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

/// Per-token (or, without a valid token, per-address) rate limit: 429 past it.
async fn rate_limit(State(api): State<Api>, request: Request, next: Next) -> Response {
    if let Some(limiter) = &api.limiter {
        let key = match api.auth.authenticate(request.headers()) {
            Ok(p) if api.auth.is_enabled() => p.limit_key(),
            _ => request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| format!("ip:{}", c.0.ip()))
                .unwrap_or_else(|| "ip:unknown".into()),
        };
        if limiter.check_key(&key).is_err() {
            return ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests for this token; slow down and retry shortly",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// Serve `router` on `listener` until `shutdown` resolves, then finish requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
