//! Access tokens that expire: fetched on first use, refreshed a margin before they expire and
//! once more when the service refuses one, by whatever grant the source uses (a refresh
//! token, a service account's signed JWT).

use std::future::Future;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::Result;
use crate::http::Http;

/// A token this close to its expiry is refreshed before use (or a quarter of its lifetime,
/// for shorter-lived tokens).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The current access token of one source, and when to refresh it.
#[derive(Default)]
pub(crate) struct TokenCache {
    current: tokio::sync::Mutex<Option<(SecretString, Instant)>>,
}

/// An OAuth 2.0 token endpoint's answer (RFC 6749 §5.1).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// An OAuth 2.0 token endpoint's refusal (RFC 6749 §5.2).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TokenError {
    #[serde(default)]
    pub(crate) error: String,
    #[serde(default)]
    pub(crate) error_description: String,
}

impl TokenCache {
    /// A cache that starts with `token`, used until it is refused or `lifetime` runs out.
    pub(crate) fn with(token: SecretString, lifetime: Duration) -> Self {
        Self {
            current: tokio::sync::Mutex::new(Some((token, Instant::now() + lifetime))),
        }
    }

    /// The token to send: the cached one unless it is close to expiry or is `stale` (the one
    /// just refused); otherwise a new one from `fetch` (token and lifetime). Callers wait for
    /// one another, so one refresh serves them all.
    pub(crate) async fn get<F, Fut>(
        &self,
        stale: Option<&SecretString>,
        fetch: F,
    ) -> Result<SecretString>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(SecretString, Duration)>>,
    {
        let mut current = self.current.lock().await;
        if let Some((token, refresh_at)) = &*current {
            let refused = stale.is_some_and(|s| s.expose_secret() == token.expose_secret());
            if !refused && Instant::now() < *refresh_at {
                return Ok(token.clone());
            }
        }
        let (token, lifetime) = fetch().await?;
        let margin = REFRESH_MARGIN.min(lifetime / 4);
        *current = Some((token.clone(), Instant::now() + lifetime - margin));
        Ok(token)
    }
}

/// What a token endpoint answered.
pub(crate) enum TokenAnswer {
    /// A token and its lifetime.
    Granted(SecretString, Duration),
    /// A refusal: the status and the endpoint's error.
    Refused(reqwest::StatusCode, TokenError),
    /// A success whose body is not a token answer.
    Garbled(String),
}

/// POST the form-encoded `body` (a grant) to the token endpoint `url`. A token without
/// `expires_in` lives `default_lifetime`. `Err` only when no answer came at all.
pub(crate) async fn request_token(
    http: &Http,
    url: &str,
    body: String,
    default_lifetime: Duration,
) -> Result<TokenAnswer> {
    let response = http
        .send("getting an access token", || {
            http.client()
                .post(url)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body.clone())
        })
        .await?;
    let status = response.status();
    if !status.is_success() {
        return Ok(TokenAnswer::Refused(
            status,
            response.json().await.unwrap_or_default(),
        ));
    }
    Ok(match response.json::<TokenResponse>().await {
        Ok(fresh) => TokenAnswer::Granted(
            SecretString::from(fresh.access_token),
            fresh
                .expires_in
                .map_or(default_lifetime, Duration::from_secs),
        ),
        Err(e) => TokenAnswer::Garbled(e.without_url().to_string()),
    })
}
