//! The legacy fallback (`ENABLE_LEGACY_FALLBACK`, `LEGACY_FALLBACK_URL`): a document lancesync
//! cannot take (a type it does not read, an extraction that failed) is posted to the
//! application's previous ingestion path instead of only failing, and its row records that
//! the fallback took it.

use std::time::Duration;

use reqwest::Url;

use crate::{Error, Result};

/// Status of a document the legacy fallback took (no chunks in lancesync's tables).
pub const STATUS_LEGACY: &str = "legacy";

/// Where documents lancesync cannot take are posted: `multipart/form-data` with the fields
/// `user_id`, `source_id`, `source_uri`, `filename` and `file`.
#[derive(Debug, Clone)]
pub struct LegacyFallback {
    url: Url,
    client: reqwest::Client,
}

/// Characters a form field's quoted `filename` cannot hold as they are.
fn quoted_filename(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '"' => "%22".to_string(),
            '\r' | '\n' => " ".to_string(),
            c => c.to_string(),
        })
        .collect()
}

impl LegacyFallback {
    /// Post to `url`; each post may take `timeout`.
    pub fn new(url: Url, timeout: Duration) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("lancesync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::InvalidRequest(format!("LEGACY_FALLBACK_URL: cannot build a client: {e}"))
            })?;
        Ok(Self { url, client })
    }

    /// The endpoint.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Post one document; the answer's status when it is a success, else why not.
    pub(crate) async fn forward(
        &self,
        fields: &[(&str, &str)],
        filename: &str,
        bytes: &[u8],
    ) -> std::result::Result<u16, String> {
        let boundary = format!(
            "lancesync-{}",
            &blake3::hash(
                format!("{:?}{}", std::time::SystemTime::now(), std::process::id()).as_bytes()
            )
            .to_hex()[..32]
        );
        let mut body = Vec::with_capacity(bytes.len() + 1024);
        for (name, value) in fields {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                quoted_filename(filename)
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let answer = self
            .client
            .post(self.url.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| format!("no answer from {}: {}", self.url, e.without_url()))?;
        let status = answer.status();
        if status.is_success() {
            return Ok(status.as_u16());
        }
        let text = answer.text().await.unwrap_or_default();
        Err(format!(
            "{} answered {status}: {}",
            self.url,
            text.chars().take(200).collect::<String>()
        ))
    }
}
