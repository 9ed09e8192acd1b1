//! Tokens: a service account's signed JWT, an OAuth refresh token, or a bare access token.

use secrecy::ExposeSecret;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::SecretString;
use serde::Deserialize;

use super::{GoogleDriveSource, SCOPE};
use crate::oauth::{TokenAnswer, request_token};
use crate::{Error, Result};

/// A service account's JSON key, as Google's console downloads it.
#[derive(Deserialize)]
pub(super) struct ServiceAccountKey {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) client_email: String,
    pub(super) private_key: String,
    #[serde(default)]
    pub(super) private_key_id: Option<String>,
}

pub(super) enum Grant {
    Token,
    Refresh {
        client_id: String,
        client_secret: Option<SecretString>,
        refresh_token: SecretString,
    },
    ServiceAccount {
        email: String,
        key: Box<ring::signature::RsaKeyPair>,
        key_id: Option<String>,
        subject: Option<String>,
    },
}

/// The DER bytes of a PEM block (`-----BEGIN PRIVATE KEY-----` ...).
pub(super) fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    STANDARD.decode(body).ok()
}

impl GoogleDriveSource {
    pub(super) fn auth_error(&self, reason: String) -> Error {
        Error::Auth {
            source_id: self.id.clone(),
            reason,
        }
    }

    /// A signed JWT asking for a token for the service account (RFC 7523).
    pub(super) fn assertion(
        &self,
        email: &str,
        key: &ring::signature::RsaKeyPair,
        key_id: Option<&str>,
        subject: Option<&str>,
    ) -> Result<String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut header = serde_json::json!({ "alg": "RS256", "typ": "JWT" });
        if let Some(kid) = key_id {
            header["kid"] = kid.into();
        }
        let mut claims = serde_json::json!({
            "iss": email, "scope": SCOPE, "aud": self.token_url, "iat": now, "exp": now + 3600,
        });
        if let Some(sub) = subject {
            claims["sub"] = sub.into();
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; key.public().modulus_len()];
        key.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| self.auth_error("cannot sign the service account's token request".into()))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    /// A new access token from the token endpoint.
    pub(super) async fn fetch_token(&self) -> Result<(SecretString, Duration)> {
        // The form is built apart: its serializer may not be held across an await.
        let (body, who) = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            let who = match &self.grant {
                Grant::Token => {
                    return Err(self.auth_error(
                    "Google refused the access token, and there is no refresh_token or service account key to get a new one: give one of them".into(),
                ));
                }
                Grant::Refresh {
                    client_id,
                    client_secret,
                    refresh_token,
                } => {
                    form.append_pair("grant_type", "refresh_token")
                        .append_pair("refresh_token", refresh_token.expose_secret())
                        .append_pair("client_id", client_id);
                    if let Some(secret) = client_secret {
                        form.append_pair("client_secret", secret.expose_secret());
                    }
                    format!("the refresh token of client {client_id}")
                }
                Grant::ServiceAccount {
                    email,
                    key,
                    key_id,
                    subject,
                } => {
                    let jwt = self.assertion(email, key, key_id.as_deref(), subject.as_deref())?;
                    form.append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
                        .append_pair("assertion", &jwt);
                    format!("service account {email}")
                }
            };
            (form.finish(), who)
        };
        match request_token(&self.http, &self.token_url, body, Duration::from_secs(3600)).await? {
            TokenAnswer::Granted(token, lifetime) => {
                tracing::debug!(source = %self.id, "Google access token fetched");
                Ok((token, lifetime))
            }
            TokenAnswer::Refused(status, refused) => Err(self.auth_error(format!(
                "Google refused {who} ({status} {}: {}); the index is left as it is. Check the credentials and that the account can read the folders",
                refused.error, refused.error_description
            ))),
            TokenAnswer::Garbled(e) => Err(self.auth_error(format!(
                "Google's token answer is not what its API documents: {e}"
            ))),
        }
    }
}
