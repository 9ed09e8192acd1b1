//! The one HTTP layer of every remote source: timeouts, a per-source rate limit, and retries
//! with exponential backoff on 429, 408, 5xx and connection errors that honour `Retry-After`.
//! Credentials travel in headers only and never reach an error message or a log line.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How a remote source talks HTTP. Every field has a default; sources take these keys in
/// their own configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Largest number of requests per second to the service (a token bucket, bursts of up
    /// to one second's worth). Unset: the service's own documented pace (Dropbox and Google
    /// Drive 10, Notion 3).
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Seconds one request may take, body included.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Tries after the first on 429, 408, 5xx and connection errors.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// First backoff in milliseconds; doubled per try, up to 30 s.
    #[serde(default = "default_backoff")]
    pub min_backoff_ms: u64,
    /// A `Retry-After` longer than this many seconds ends the run instead of waiting (the
    /// next scheduled run goes on).
    #[serde(default = "default_max_retry_after")]
    pub max_retry_after_secs: u64,
}

fn default_timeout() -> u64 {
    60
}
fn default_retries() -> u32 {
    5
}
fn default_backoff() -> u64 {
    500
}
fn default_max_retry_after() -> u64 {
    120
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            requests_per_second: None,
            timeout_secs: default_timeout(),
            max_retries: default_retries(),
            min_backoff_ms: default_backoff(),
            max_retry_after_secs: default_max_retry_after(),
        }
    }
}

/// An HTTP client for one source.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    source_id: String,
    service: &'static str,
    client: reqwest::Client,
    limiter: Arc<DefaultDirectRateLimiter>,
    settings: HttpSettings,
}

impl Http {
    /// A client pacing itself at `settings.requests_per_second`, or `default_rate` when that
    /// is unset.
    pub(crate) fn new(
        source_id: &str,
        service: &'static str,
        settings: &HttpSettings,
        default_rate: f64,
    ) -> Result<Self> {
        let rate = settings.requests_per_second.unwrap_or(default_rate);
        if !(rate.is_finite() && rate > 0.0) {
            return Err(Error::InvalidConfig(format!(
                "source {source_id}: requests_per_second must be above 0, got {rate}"
            )));
        }
        // A quota of one request per 1/rate seconds, bursting to a second's worth.
        let period = Duration::from_secs_f64(1.0 / rate);
        let burst = NonZeroU32::new(rate.ceil().min(1000.0) as u32).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .ok_or_else(|| Error::InvalidConfig(format!("source {source_id}: rate too high")))?
            .allow_burst(burst);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("lancesync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::InvalidConfig(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self {
            source_id: source_id.to_string(),
            service,
            client,
            limiter: Arc::new(RateLimiter::direct(quota)),
            settings: settings.clone(),
        })
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Send the request `build` makes (called again for each try), waiting for the rate
    /// limit first. Answers with any status that is not retried, or the last answer once the
    /// tries are spent; `Err` only when no answer came at all.
    pub(crate) async fn send(
        &self,
        what: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response> {
        let mut attempt = 0u32;
        loop {
            self.limiter.until_ready().await;
            let tries_left = attempt < self.settings.max_retries;
            let (wait, status) = match build().send().await {
                Ok(response) if retryable(response.status()) && tries_left => {
                    let wait = match retry_after(&response) {
                        Some(asked) if asked > self.max_retry_after() => {
                            return Err(self.remote(format!(
                                "{what}: {} asks to wait {} s before the next request (over the {} s this source waits); the next run goes on",
                                self.service,
                                asked.as_secs(),
                                self.settings.max_retry_after_secs
                            )));
                        }
                        Some(asked) => asked,
                        None => self.backoff(attempt),
                    };
                    (wait, Some(response.status().as_u16()))
                }
                Ok(response) => return Ok(response),
                Err(e) if transient(&e) && tries_left => (self.backoff(attempt), None),
                Err(e) => {
                    return Err(self.remote(format!(
                        "{what}: no answer from {} after {} tries: {}",
                        self.service,
                        attempt + 1,
                        e.without_url()
                    )));
                }
            };
            tracing::warn!(source = %self.source_id, service = self.service, what, ?status, attempt = attempt + 1, wait_ms = wait.as_millis() as u64, "retrying a request");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// An error for an answer that is not a success: status and the start of the body.
    pub(crate) async fn failure(&self, what: &str, response: Response) -> Error {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let snippet: String = body.chars().take(300).collect();
        self.remote(format!(
            "{what}: {} answered {status}: {snippet}",
            self.service
        ))
    }

    /// A failure of this source that is not about one document.
    pub(crate) fn remote(&self, reason: String) -> Error {
        Error::List {
            source_id: self.source_id.clone(),
            reason,
        }
    }

    /// Tries after the first.
    pub(crate) fn max_retries(&self) -> u32 {
        self.settings.max_retries
    }

    /// How long to wait before try `attempt + 1`.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let base = Duration::from_millis(self.settings.min_backoff_ms);
        base.saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(Duration::from_secs(30))
    }

    fn max_retry_after(&self) -> Duration {
        Duration::from_secs(self.settings.max_retry_after_secs)
    }
}

fn transient(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request()
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// `Retry-After` in seconds (the form Dropbox, Google and Notion send).
fn retry_after(response: &Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}
