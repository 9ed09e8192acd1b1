//! Credentials in source configurations: inline, or `env:VAR` references resolved when the
//! source is built. Neither form is ever printed: `Debug` shows only which form it is, and
//! [`redact`] masks inline values wherever a configuration is shown (status, API, CLI).

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Configuration keys whose values are credentials, in every source type.
pub(crate) const SECRET_KEYS: &[&str] = &[
    "access_token",
    "refresh_token",
    "app_secret",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "client_secret",
    "service_account_key",
    "api_key",
];

/// What an inline credential shows as.
pub(crate) const MASK: &str = "********";

/// A credential as configured: an inline value, or `env:VAR` to read it from the
/// environment when the source is built (so it need not be stored in the sources file).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct SecretRef(String);

impl std::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.env_var() {
            Some(var) => write!(f, "SecretRef(env:{var})"),
            None => write!(f, "SecretRef({MASK})"),
        }
    }
}

impl SecretRef {
    /// A credential given inline.
    pub fn inline(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// A reference to the environment variable `var`.
    pub fn env(var: &str) -> Self {
        Self(format!("env:{var}"))
    }

    fn env_var(&self) -> Option<&str> {
        self.0.strip_prefix("env:")
    }

    /// The credential's value; `field` names it in errors (never the value).
    pub fn resolve(&self, field: &str, env: &BTreeMap<String, String>) -> Result<SecretString> {
        let value = match self.env_var() {
            Some(var) => env.get(var).cloned().ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "{field} refers to the environment variable {var}, which is not set: set it, or give the value inline"
                ))
            })?,
            None => self.0.clone(),
        };
        if value.trim().is_empty() {
            return Err(Error::InvalidConfig(format!("{field} is empty")));
        }
        Ok(SecretString::from(value))
    }
}

/// `config` with every inline credential masked (`env:VAR` references are shown: they hold
/// no secret).
pub fn redact(config: &toml::Table) -> toml::Table {
    config
        .iter()
        .map(|(key, value)| {
            let value = match value {
                toml::Value::String(s)
                    if SECRET_KEYS.contains(&key.as_str()) && !s.starts_with("env:") =>
                {
                    toml::Value::String(MASK.into())
                }
                other => other.clone(),
            };
            (key.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn references_resolve_and_nothing_prints() {
        let env = BTreeMap::from([("DBX".to_string(), "sl.token-value".to_string())]);
        let by_env = SecretRef::env("DBX");
        assert_eq!(
            by_env
                .resolve("access_token", &env)
                .unwrap()
                .expose_secret(),
            "sl.token-value"
        );
        assert_eq!(format!("{by_env:?}"), "SecretRef(env:DBX)");
        let inline = SecretRef::inline("hunter2");
        assert!(!format!("{inline:?}").contains("hunter2"));
        let missing = SecretRef::env("NOPE")
            .resolve("refresh_token", &env)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("NOPE") && missing.contains("refresh_token"));

        let config: toml::Table =
            toml::from_str("access_token = 'hunter2'\nrefresh_token = 'env:DBX'\npath = '/a'")
                .unwrap();
        let shown = redact(&config);
        assert_eq!(shown["access_token"].as_str(), Some(MASK));
        assert_eq!(shown["refresh_token"].as_str(), Some("env:DBX"));
        assert_eq!(shown["path"].as_str(), Some("/a"));
    }
}
