//! An embedder for any server speaking OpenAI's `POST /embeddings`: OpenAI, Ollama, vLLM,
//! Hugging Face TEI, LiteLLM. Batches requests and retries 429/5xx and connection errors with
//! exponential backoff (honouring `Retry-After`).

use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::{Embedder, EmbedderIdentity, TokenCount};
use crate::{Error, Result};

/// How to reach the embedding server.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Base URL up to and including the API version, e.g. `https://api.openai.com/v1` or
    /// `http://localhost:11434/v1`; `/embeddings` is appended.
    pub base_url: Url,
    /// Model name, e.g. `text-embedding-3-small`.
    pub model: String,
    /// Vector length the model returns; a different length is an error.
    pub dimension: usize,
    /// Bearer token; `None` for servers without authentication. Never logged.
    pub api_key: Option<SecretString>,
    /// Send `dimensions` in the request (OpenAI's text-embedding-3 models can shorten vectors;
    /// other servers may reject the field).
    pub send_dimensions: bool,
    /// Texts per request.
    pub batch_size: usize,
    /// Retries of one request after the first try.
    pub max_retries: usize,
    /// First backoff delay; doubles each retry.
    pub min_backoff: Duration,
    /// Longest backoff delay (and longest `Retry-After` honoured).
    pub max_backoff: Duration,
    /// Timeout of one request.
    pub timeout: Duration,
}

impl OpenAiConfig {
    /// Defaults for a model: batches of 64, 5 retries from 500 ms up to 30 s, 60 s timeout.
    pub fn new(base_url: Url, model: impl Into<String>, dimension: usize) -> Self {
        Self {
            base_url,
            model: model.into(),
            dimension,
            api_key: None,
            send_dimensions: false,
            batch_size: 64,
            max_retries: 5,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(60),
        }
    }
}

/// The OpenAI-compatible HTTP embedder.
#[derive(Debug, Clone)]
pub struct OpenAiEmbedder {
    config: OpenAiConfig,
    endpoint: Url,
    client: reqwest::Client,
}

/// One failed request: retry it or not.
#[derive(Debug)]
struct Attempt {
    retryable: bool,
    retry_after: Option<Duration>,
    message: String,
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Item>,
    /// What the server counted (OpenAI, vLLM, TEI and Ollama send it; others may not).
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: u64,
}

#[derive(Deserialize)]
struct Item {
    embedding: Vec<f32>,
    index: usize,
}

impl OpenAiEmbedder {
    /// An embedder for `config`.
    pub fn new(config: OpenAiConfig) -> Result<Self> {
        if config.batch_size == 0 || config.dimension == 0 {
            return Err(Error::Embed(
                "batch size and dimension must be at least 1".into(),
            ));
        }
        let mut base = config.base_url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let endpoint = base
            .join("embeddings")
            .map_err(|e| Error::Embed(format!("bad base URL {}: {e}", config.base_url)))?;
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("lancesync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Embed(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            config,
            endpoint,
            client,
        })
    }

    /// One request: the vectors, and the tokens the server says it read.
    async fn post(
        &self,
        batch: &[String],
    ) -> std::result::Result<(Vec<Vec<f32>>, Option<u64>), Attempt> {
        let mut body = serde_json::json!({ "model": self.config.model, "input": batch, "encoding_format": "float" });
        if self.config.send_dimensions {
            body["dimensions"] = self.config.dimension.into();
        }
        let mut request = self.client.post(self.endpoint.clone()).json(&body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response = request.send().await.map_err(|e| Attempt {
            retryable: e.is_connect() || e.is_timeout() || e.is_request(),
            retry_after: None,
            message: format!("request to {} failed: {}", self.endpoint, without_url(&e)),
        })?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = response.text().await.unwrap_or_default();
            let snippet: String = text.chars().take(300).collect();
            return Err(Attempt {
                retryable: status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::REQUEST_TIMEOUT
                    || status.is_server_error(),
                retry_after,
                message: format!("{} answered {status}: {snippet}", self.endpoint),
            });
        }
        let parsed: Response = response.json().await.map_err(|e| Attempt {
            retryable: false,
            retry_after: None,
            message: format!(
                "{} sent a response that is not an embeddings list: {}",
                self.endpoint,
                without_url(&e)
            ),
        })?;
        let tokens = parsed.usage.as_ref().map(|u| u.prompt_tokens);
        let vectors = self
            .order_and_check(parsed, batch.len())
            .map_err(|message| Attempt {
                retryable: false,
                retry_after: None,
                message,
            })?;
        Ok((vectors, tokens))
    }

    fn order_and_check(
        &self,
        response: Response,
        expected: usize,
    ) -> std::result::Result<Vec<Vec<f32>>, String> {
        if response.data.len() != expected {
            return Err(format!(
                "asked for {expected} embeddings, got {}",
                response.data.len()
            ));
        }
        let mut out: Vec<Option<Vec<f32>>> = vec![None; expected];
        for item in response.data {
            if item.embedding.len() != self.config.dimension {
                return Err(format!(
                    "model {} returned {}-dimensional vectors, but the configured dimension is {}",
                    self.config.model,
                    item.embedding.len(),
                    self.config.dimension
                ));
            }
            match out.get_mut(item.index) {
                Some(slot @ None) => *slot = Some(item.embedding),
                _ => {
                    return Err(format!(
                        "bad or repeated index {} in the response",
                        item.index
                    ));
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|v| v.expect("every index filled"))
            .collect())
    }
}

/// reqwest's error text can hold the URL; ours never holds credentials, but keep messages short.
fn without_url(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    let mut last = e.to_string();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn identity(&self) -> EmbedderIdentity {
        EmbedderIdentity {
            name: "openai-compatible".into(),
            model: self.config.model.clone(),
            dimension: self.config.dimension,
        }
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        Ok(self.embed_counted(texts).await?.0)
    }

    /// OpenAI's own embedding models are counted with their tokenizer (cl100k_base), any
    /// other model is estimated.
    fn count_tokens(&self, texts: &[String]) -> Result<TokenCount> {
        if !is_openai_model(&self.config.model) {
            return Ok(TokenCount::estimate(texts));
        }
        let bpe = cl100k()?;
        Ok(TokenCount::exact(
            texts
                .iter()
                .map(|t| bpe.encode_ordinary(t).len() as u64)
                .sum(),
        ))
    }

    fn runs_locally(&self) -> bool {
        false
    }

    /// The server's own count where it sends one (what it bills), else [`Self::count_tokens`].
    async fn embed_counted(&self, texts: &[String]) -> Result<(Vec<Vec<f32>>, TokenCount)> {
        let mut tokens = TokenCount::default();
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.config.batch_size) {
            let backoff = ExponentialBuilder::default()
                .with_min_delay(self.config.min_backoff)
                .with_max_delay(self.config.max_backoff)
                .with_max_times(self.config.max_retries)
                .with_jitter();
            let max = self.config.max_backoff;
            let (vectors, counted) = (|| self.post(batch))
                .retry(backoff)
                .sleep(tokio::time::sleep)
                .when(|a: &Attempt| a.retryable)
                .adjust(|a: &Attempt, planned| match (a.retry_after, planned) {
                    (Some(after), Some(_)) => Some(after.min(max)),
                    (_, planned) => planned,
                })
                .notify(|a: &Attempt, wait| tracing::warn!(error = %a.message, ?wait, "embedding request failed; retrying"))
                .await
                .map_err(|a| Error::Embed(a.message))?;
            out.extend(vectors);
            tokens.add(match counted {
                Some(counted) => TokenCount::exact(counted),
                None => self.count_tokens(batch)?,
            });
        }
        Ok((out, tokens))
    }
}

/// Whether `model` is one of OpenAI's embedding models, all of which use cl100k_base.
fn is_openai_model(model: &str) -> bool {
    model.starts_with("text-embedding-")
}

/// OpenAI's cl100k_base, loaded once (its table is parsed on first use, some tens of ms).
fn cl100k() -> Result<&'static tiktoken_rs::CoreBPE> {
    static BPE: std::sync::OnceLock<std::result::Result<tiktoken_rs::CoreBPE, String>> =
        std::sync::OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::cl100k_base().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::Embed(format!("cannot load OpenAI's tokenizer: {e}")))
}
