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

/// The slowest pace a source may ask for: one request an hour. Slower would stall a run for
/// longer than any schedule, and the period must fit a `Duration`.
const MIN_RATE: f64 = 1.0 / 3600.0;
/// The fastest pace: a thousand requests a second (no provider allows more).
const MAX_RATE: f64 = 1000.0;

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
        if !(MIN_RATE..=MAX_RATE).contains(&rate) {
            return Err(Error::InvalidConfig(format!(
                "source {source_id}: requests_per_second must be from {MIN_RATE} (one request in {} s) to {MAX_RATE}, got {rate}",
                1.0 / MIN_RATE
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
                        RetryAfter::Wait(asked) if asked <= self.max_retry_after() => asked,
                        RetryAfter::Wait(_) | RetryAfter::TooLong => {
                            return Err(self.remote(format!(
                                "{what}: {} asks to wait {} before the next request (over the {} s this source waits); the next run goes on",
                                self.service,
                                retry_after_text(&response),
                                self.settings.max_retry_after_secs
                            )));
                        }
                        RetryAfter::Absent => self.backoff(attempt),
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

/// Whether `path` (`/v1/blocks/{id}/children`) is made only of segments a provider's ids and
/// endpoint names use: letters, digits, `-` and `_`. An id from a configuration, a listing or a
/// stored row that holds `.`, `%`, `?`, `#`, `@` or `:` would change which URL is asked for, so
/// such a path is refused before a request is built.
pub(crate) fn plain_path(path: &str) -> bool {
    path.strip_prefix('/').is_some_and(|rest| {
        rest.split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    })
}

fn transient(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request()
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// What a `Retry-After` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryAfter {
    /// No header, or one that is not a number of seconds: back off as usual.
    Absent,
    /// Wait this long.
    Wait(Duration),
    /// A wait beyond any `Duration` (`1e300`): the same as any wait over the limit.
    TooLong,
}

/// The `Retry-After` header's text, if it is text.
fn retry_after_header(response: &Response) -> Option<&str> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
}

/// `Retry-After` in seconds (the form Dropbox, Google and Notion send).
fn retry_after(response: &Response) -> RetryAfter {
    retry_after_header(response).map_or(RetryAfter::Absent, parse_retry_after)
}

/// The header as text, shortened, for an error message.
fn retry_after_text(response: &Response) -> String {
    let value = retry_after_header(response).unwrap_or_default();
    format!("{} s", value.trim().chars().take(32).collect::<String>())
}

/// A `Retry-After` value in seconds, whole or fractional; never panics, whatever the text.
pub(crate) fn parse_retry_after(value: &str) -> RetryAfter {
    match value.trim().parse::<f64>() {
        Ok(seconds) if seconds.is_nan() || seconds < 0.0 => RetryAfter::Absent,
        // -0.0 too, which `try_from_secs_f64` would call negative.
        Ok(0.0) => RetryAfter::Wait(Duration::ZERO),
        Ok(seconds) => {
            Duration::try_from_secs_f64(seconds).map_or(RetryAfter::TooLong, RetryAfter::Wait)
        }
        Err(_) => RetryAfter::Absent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn retry_after_values() {
        assert_eq!(
            parse_retry_after("3"),
            RetryAfter::Wait(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after(" 0.5 "),
            RetryAfter::Wait(Duration::from_millis(500))
        );
        assert_eq!(parse_retry_after("1e300"), RetryAfter::TooLong);
        assert_eq!(parse_retry_after("inf"), RetryAfter::TooLong);
        assert_eq!(parse_retry_after("NaN"), RetryAfter::Absent);
        assert_eq!(parse_retry_after("-1"), RetryAfter::Absent);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            RetryAfter::Absent
        );
    }

    #[test]
    fn rates_outside_the_range_are_refused_with_the_key_named() {
        for rate in [1e-300, 0.0, -1.0, f64::NAN, f64::INFINITY, 1e9] {
            let settings = HttpSettings {
                requests_per_second: Some(rate),
                ..HttpSettings::default()
            };
            let err = Http::new("n", "Notion", &settings, 3.0)
                .unwrap_err()
                .to_string();
            assert!(err.contains("requests_per_second"), "{rate}: {err}");
        }
        for rate in [MIN_RATE, 0.5, 3.0, MAX_RATE] {
            let settings = HttpSettings {
                requests_per_second: Some(rate),
                ..HttpSettings::default()
            };
            Http::new("n", "Notion", &settings, 3.0).unwrap();
        }
    }

    #[test]
    fn plain_paths() {
        assert!(plain_path("/v1/blocks/1a2b-3c_4d/children"));
        for bad in [
            "/v1/blocks/../x",
            "/v1/pages/a%2f",
            "/v1/pages/a?x=1",
            "/v1/pages/a#f",
            "/v1/pages/a@h",
            "/v1/pages/a:1",
            "/v1//x",
            "v1/x",
            "/v1/pag\u{e9}s",
        ] {
            assert!(!plain_path(bad), "{bad}");
        }
    }

    proptest! {
        // Whatever a provider sends, parsing gives an answer and never panics; a number gives
        // a wait or "too long", and the wait is exactly the number of seconds.
        #[test]
        fn retry_after_never_panics(value in ".{0,40}") {
            let _ = parse_retry_after(&value);
        }

        #[test]
        fn retry_after_numbers(seconds in proptest::num::f64::ANY) {
            match parse_retry_after(&seconds.to_string()) {
                RetryAfter::Wait(d) => prop_assert!((d.as_secs_f64() - seconds).abs() <= seconds * 1e-9 + 1e-9),
                RetryAfter::TooLong => prop_assert!(seconds > 1e18),
                RetryAfter::Absent => prop_assert!(seconds.is_nan() || seconds < 0.0),
            }
        }

        #[test]
        fn any_rate_builds_or_is_refused(rate in proptest::num::f64::ANY) {
            let settings = HttpSettings { requests_per_second: Some(rate), ..HttpSettings::default() };
            let _ = Http::new("n", "Notion", &settings, 3.0);
        }
    }
}
