//! Where on S3 users' databases live, and how to reach it.

use std::sync::Arc;
use std::time::Duration;

use lancesync_config::ServerSideEncryption;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

use crate::{Error, Result};

/// A bucket and key prefix under which user `U`'s database is `{prefix}/users/U/`.
///
/// The same options reach LanceDB (as storage options) and lancesync's own S3 client, so
/// both see one endpoint, region, encryption and credentials. Credentials come from the
/// settings when given, else from the standard AWS chain (environment, web identity, ECS
/// and EC2 instance roles). `Debug` never shows option values.
#[derive(Clone)]
pub struct S3Target {
    bucket: String,
    prefix: String,
    options: Vec<(String, String)>,
    retry_timeout: Duration,
    isolated: bool,
    store: Arc<tokio::sync::OnceCell<Arc<dyn ObjectStore>>>,
}

impl std::fmt::Debug for S3Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("S3Target")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("option_keys", &keys)
            .finish()
    }
}

/// Option keys whose values are credentials.
const SECRET_KEYS: [&str; 3] = [
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
];

impl S3Target {
    /// `bucket` with keys under `prefix` (no leading or trailing slash needed).
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: prefix.into().trim_matches('/').to_string(),
            options: Vec::new(),
            retry_timeout: Duration::from_secs(30),
            isolated: false,
            store: Arc::default(),
        }
    }

    /// Add an object_store/LanceDB S3 option (`aws_region`, `aws_endpoint`, `allow_http`,
    /// `aws_server_side_encryption`, ...).
    pub fn with_option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.push((key.into(), value.into()));
        self.store = Arc::default();
        self
    }

    /// An S3-compatible server at `endpoint`; plain http only when the URL says so.
    pub fn with_endpoint(self, endpoint: &str) -> Self {
        let http = endpoint.starts_with("http://");
        let t = self.with_option("aws_endpoint", endpoint.trim_end_matches('/'));
        if http {
            t.with_option("allow_http", "true")
        } else {
            t
        }
    }

    /// How long lancesync's own requests are retried (5xx, 429, timeouts) before a transfer
    /// gives up and is queued for later. Default 30 s.
    pub fn with_retry_timeout(mut self, timeout: Duration) -> Self {
        self.retry_timeout = timeout;
        self.store = Arc::default();
        self
    }

    /// Take nothing from the process environment (`AWS_SESSION_TOKEN`, `AWS_ENDPOINT`,
    /// credentials, profiles): only this target's own options. For a target whose owner
    /// brings their own keys, so the server's AWS identity never travels with their requests.
    pub fn isolated_from_environment(mut self) -> Self {
        self.isolated = true;
        self.store = Arc::default();
        self
    }

    /// The primary (or multi-device sync) target of lancesync's settings: S3_BUCKET under
    /// S3_PREFIX. `None` without a bucket.
    pub fn primary_from_settings(settings: &lancesync_config::Settings) -> Option<Self> {
        let bucket = settings.s3.bucket.clone()?;
        Some(Self::with_common(
            Self::new(bucket, settings.s3.prefix.clone()),
            settings,
        ))
    }

    /// The backup target of lancesync's settings: S3_BACKUP_BUCKET under S3_BACKUP_PREFIX.
    pub fn backup_from_settings(settings: &lancesync_config::Settings) -> Option<Self> {
        let bucket = settings.backup.bucket.clone()?;
        Some(Self::with_common(
            Self::new(bucket, settings.backup.prefix.clone()),
            settings,
        ))
    }

    /// A target at `uri` (`s3://bucket/prefix`) with the region, endpoint, encryption and
    /// credentials of lancesync's settings: another location on the same S3 service, such as
    /// the original system's data. `None` if `uri` is not an `s3://` URI with a bucket.
    pub fn from_uri(uri: &str, settings: &lancesync_config::Settings) -> Option<Self> {
        let rest = uri.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return None;
        }
        Some(Self::with_common(Self::new(bucket, prefix), settings))
    }

    fn with_common(mut t: Self, settings: &lancesync_config::Settings) -> Self {
        use secrecy::ExposeSecret;
        t = t.with_option("aws_region", settings.s3.region.clone());
        if let Some(endpoint) = &settings.s3.endpoint {
            t = t.with_endpoint(endpoint.as_str());
        }
        match settings.s3.sse {
            ServerSideEncryption::Aes256 => {
                t = t.with_option("aws_server_side_encryption", "AES256");
            }
            ServerSideEncryption::AwsKms => {
                t = t.with_option("aws_server_side_encryption", "aws:kms");
                if let Some(key) = &settings.s3.sse_kms_key_id {
                    t = t.with_option("aws_sse_kms_key_id", key.clone());
                }
            }
            ServerSideEncryption::None => {}
        }
        let c = &settings.credentials;
        for (key, value) in [
            ("aws_access_key_id", &c.access_key_id),
            ("aws_secret_access_key", &c.secret_access_key),
            ("aws_session_token", &c.session_token),
        ] {
            if let Some(v) = value {
                t = t.with_option(key, v.expose_secret().to_string());
            }
        }
        t
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `s3://bucket/prefix`, for people (no credentials).
    pub fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// The endpoint, when not AWS's own.
    pub fn endpoint(&self) -> Option<&str> {
        self.option("aws_endpoint")
    }

    fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Key prefix of user `user_id`'s database.
    pub fn user_prefix(&self, user_id: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(format!("users/{user_id}"))
        } else {
            ObjectPath::from(format!("{}/users/{user_id}", self.prefix))
        }
    }

    /// Key prefix holding every user (`{prefix}/users`).
    pub fn users_prefix(&self) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from("users")
        } else {
            ObjectPath::from(format!("{}/users", self.prefix))
        }
    }

    /// LanceDB URI of user `user_id`'s database.
    pub fn user_uri(&self, user_id: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.user_prefix(user_id))
    }

    /// Options for `lancedb::connect(..).storage_options(..)`. Holds credentials when the
    /// settings gave them: never log it.
    pub fn storage_options(&self) -> Vec<(String, String)> {
        self.options.clone()
    }

    /// The options with credential values replaced, for display.
    pub fn redacted_options(&self) -> Vec<(String, String)> {
        self.options
            .iter()
            .map(|(k, v)| {
                let v = if SECRET_KEYS.contains(&k.as_str()) {
                    "[REDACTED]".to_string()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// lancesync's own client for this bucket (built once, shared).
    pub async fn object_store(&self) -> Result<Arc<dyn ObjectStore>> {
        self.store
            .get_or_try_init(|| self.build_store())
            .await
            .cloned()
    }

    async fn build_store(&self) -> Result<Arc<dyn ObjectStore>> {
        let client = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(60));
        let base = if self.isolated {
            AmazonS3Builder::new()
        } else {
            AmazonS3Builder::from_env()
        };
        let mut builder = base
            .with_client_options(client)
            .with_bucket_name(&self.bucket)
            .with_retry(RetryConfig {
                retry_timeout: self.retry_timeout,
                max_retries: 10,
                ..RetryConfig::default()
            });
        for (key, value) in &self.options {
            let parsed: AmazonS3ConfigKey = key.parse().map_err(|e| Error::Config {
                message: format!("S3 option {key}: {e}"),
            })?;
            builder = builder.with_config(parsed, value);
        }
        // Without keys in the settings or the environment, use the AWS credential chain
        // LanceDB uses (environment, shared profile, web identity, ECS and EC2 roles), so both
        // sides authenticate alike.
        let explicit = self.option("aws_access_key_id").is_some()
            || (!self.isolated && std::env::var_os("AWS_ACCESS_KEY_ID").is_some());
        if !explicit {
            let (credentials, _) = lance_io::object_store::providers::aws::build_aws_credential(
                Duration::from_secs(60),
                None,
                None,
                self.option("aws_region").map(str::to_string),
                None,
                None,
            )
            .await
            .map_err(|e| Error::Config {
                message: format!("AWS credentials for {}: {e}", self.describe()),
            })?;
            builder = builder.with_credentials(credentials);
        }
        let store: Arc<dyn ObjectStore> = Arc::new(builder.build().map_err(|e| Error::Config {
            message: format!("S3 client for {}: {e}", self.describe()),
        })?);
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_original_layout_and_debug_hides_values() {
        let t = S3Target::new("b", "/lancedb-backup/")
            .with_endpoint("http://127.0.0.1:9000/")
            .with_option("aws_secret_access_key", "very-secret-value");
        assert_eq!(
            t.user_prefix("alice").as_ref(),
            "lancedb-backup/users/alice"
        );
        assert_eq!(t.user_uri("alice"), "s3://b/lancedb-backup/users/alice");
        assert_eq!(t.endpoint(), Some("http://127.0.0.1:9000"));
        assert!(
            t.storage_options()
                .contains(&("allow_http".into(), "true".into()))
        );
        let shown = format!("{t:?} {:?}", t.redacted_options());
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(shown.contains("[REDACTED]"));
        let https = S3Target::new("b", "").with_endpoint("https://s3.example.com");
        assert_eq!(https.describe(), "s3://b");
        assert!(
            !https
                .storage_options()
                .iter()
                .any(|(k, _)| k == "allow_http")
        );
        assert_eq!(https.user_prefix("u").as_ref(), "users/u");
    }

    #[test]
    fn settings_give_encryption_endpoint_and_credentials_to_both_clients() {
        use lancesync_config::{Config, LoadOptions, StorageMode};
        let opts = LoadOptions::from_env_map(
            [
                ("FRONTEND_TYPE", "web"),
                ("BACKEND_LOCATION", "cloud"),
                ("S3_STORAGE_ENABLED", "true"),
                ("USE_S3_AS_PRIMARY", "true"),
                ("S3_BUCKET", "corp-index"),
                ("S3_PREFIX", "/tenants/"),
                ("S3_REGION", "eu-west-1"),
                ("S3_ENDPOINT", "https://minio.internal:9000"),
                ("S3_SSE", "aws:kms"),
                ("S3_SSE_KMS_KEY_ID", "alias/lancesync"),
                ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", "secret-value-123"),
            ],
            "/",
        );
        let config = Config::load(&opts).unwrap();
        assert_eq!(config.storage_mode(), StorageMode::S3PrimaryLocalCache);
        let t = S3Target::primary_from_settings(config.settings()).unwrap();
        assert_eq!(t.user_uri("u"), "s3://corp-index/tenants/users/u");
        let options = t.storage_options();
        for (k, v) in [
            ("aws_region", "eu-west-1"),
            ("aws_endpoint", "https://minio.internal:9000"),
            ("aws_server_side_encryption", "aws:kms"),
            ("aws_sse_kms_key_id", "alias/lancesync"),
            ("aws_access_key_id", "AKIDEXAMPLE"),
        ] {
            assert!(
                options.contains(&(k.into(), v.into())),
                "{k} missing: {t:?}"
            );
        }
        assert!(
            !options.iter().any(|(k, _)| k == "allow_http"),
            "https stays https"
        );
        assert!(!format!("{t:?}{:?}", t.redacted_options()).contains("secret-value-123"));
        assert!(S3Target::backup_from_settings(config.settings()).is_none());

        let bad = LoadOptions::from_env_map([("S3_SSE", "rot13")], "/");
        let problems = Config::inspect(&bad).problems;
        assert!(
            problems.iter().any(|p| p.to_string().contains("S3_SSE")),
            "{problems:?}"
        );
    }
}
