//! The S3 bucket source (`source_type = "s3"`): objects under a prefix of a bucket on AWS or
//! an S3-compatible server, listed with ListObjectsV2 page by page (continuation tokens) and
//! read with GET only when the plan needs their content.
//!
//! Change detection uses S3's own markers: the ETag (with size and LastModified). An object
//! whose ETag matches the stored one is not downloaded, and one copied to a new key keeps its
//! ETag, so a rename (copy + delete) keeps its chunks and vectors. A listing that fails on
//! any page is an error as a whole: nothing is deleted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lancesync_storage::S3Target;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::local::DEFAULT_PATTERNS;
use crate::patterns::{Filter, FilterSettings};
use crate::{DocumentSource, Error, Listing, Result, SecretRef, SourceEntry};

/// Configuration of an S3 bucket source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct S3SourceConfig {
    /// The bucket.
    pub bucket: String,
    /// Only objects under this folder of the bucket (`reports/2026`); empty for all.
    #[serde(default)]
    pub prefix: String,
    /// The bucket's region (default: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1).
    #[serde(default)]
    pub region: Option<String>,
    /// An S3-compatible server (`http://127.0.0.1:9000`, MinIO, R2, ...); plain http only
    /// when the URL says so.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Access key id (inline or `env:VAR`); without it, the standard AWS chain (environment,
    /// shared profile, web identity, ECS and EC2 roles).
    #[serde(default)]
    pub access_key_id: Option<SecretRef>,
    /// Secret access key (inline or `env:VAR`), with `access_key_id`.
    #[serde(default)]
    pub secret_access_key: Option<SecretRef>,
    /// Session token of temporary credentials (inline or `env:VAR`).
    #[serde(default)]
    pub session_token: Option<SecretRef>,
    /// Which files, and the size limit.
    #[serde(flatten)]
    pub filter: FilterSettings,
    /// How long a request is retried (5xx, 429, timeouts) before the run gives up, seconds.
    #[serde(default = "default_retry_timeout")]
    pub retry_timeout_secs: u64,
}

impl crate::spec::Settings for S3SourceConfig {
    fn build(&self, id: &str, env: &BTreeMap<String, String>) -> Result<Arc<dyn DocumentSource>> {
        Ok(Arc::new(S3Source::new(id, self.clone(), env)?))
    }

    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    fn refused_for_untrusted(&self) -> Option<String> {
        if self.endpoint.is_some() {
            return Some("only the admin may set endpoint".into());
        }
        if self.access_key_id.is_none() || self.secret_access_key.is_none() {
            return Some("an S3 source needs its own access_key_id and secret_access_key (the server's AWS credentials are the admin's)".into());
        }
        None
    }
}

fn default_retry_timeout() -> u64 {
    30
}

impl S3SourceConfig {
    /// Every object of `bucket` under `prefix`, with the default patterns.
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: prefix.into(),
            region: None,
            endpoint: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            filter: FilterSettings::default(),
            retry_timeout_secs: default_retry_timeout(),
        }
    }
}

/// Documents in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Source {
    id: String,
    bucket: String,
    prefix: String,
    target: S3Target,
    filter: Arc<Filter>,
    max_file_size: Option<u64>,
}

/// Bucket names as S3 allows them (3-63 of lowercase letters, digits, `.` and `-`, starting
/// and ending with a letter or digit, no `..`), which also keeps them safe inside URLs.
fn valid_bucket(name: &str) -> bool {
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && edge(name.bytes().next())
        && edge(name.bytes().last())
        && !name.contains("..")
}

/// Regions as AWS names them (`eu-west-1`; S3-compatible servers use the same shape): the
/// region becomes part of a host name (`s3.{region}.amazonaws.com`), so anything else
/// (`x@host:port/`, `.evil.example`, `%2e`, non-ASCII) could send requests elsewhere.
pub(crate) fn valid_region(region: &str) -> bool {
    (1..=64).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-')
}

impl S3Source {
    /// A source named `id`; `env` resolves `env:VAR` credentials.
    pub fn new(
        id: impl Into<String>,
        config: S3SourceConfig,
        env: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let id = id.into();
        let invalid = |m: String| Error::InvalidConfig(format!("source {id}: {m}"));
        if !valid_bucket(&config.bucket) {
            return Err(invalid(format!(
                "bucket {:?} is not a valid S3 bucket name (3-63 lowercase letters, digits, '.', '-')",
                config.bucket
            )));
        }
        let prefix = config.prefix.trim_matches('/').to_string();
        if prefix.split('/').any(|p| p == "." || p == "..") {
            return Err(invalid(format!(
                "prefix {:?} has '.' or '..'",
                config.prefix
            )));
        }
        let mut target = S3Target::new(&config.bucket, &prefix)
            .with_retry_timeout(Duration::from_secs(config.retry_timeout_secs.max(1)));
        if let Some(endpoint) = &config.endpoint {
            url::Url::parse(endpoint)
                .map_err(|e| invalid(format!("endpoint {endpoint:?} is not a URL: {e}")))?;
            target = target.with_endpoint(endpoint);
        }
        let region = config
            .region
            .clone()
            .or_else(|| env.get("AWS_REGION").cloned())
            .or_else(|| env.get("AWS_DEFAULT_REGION").cloned())
            .unwrap_or_else(|| "us-east-1".into());
        if !valid_region(&region) {
            return Err(invalid(format!(
                "region {:?} is not an AWS region name (lowercase letters, digits and '-', like eu-west-1)",
                region.chars().take(80).collect::<String>()
            )));
        }
        target = target.with_option("aws_region", region);
        match (&config.access_key_id, &config.secret_access_key) {
            (Some(key), Some(secret)) => {
                // Its own keys and nothing of the server's (no AWS_SESSION_TOKEN, profile or
                // endpoint from the server's environment).
                target = target
                    .isolated_from_environment()
                    .with_option(
                        "aws_access_key_id",
                        key.resolve("access_key_id", env)?.expose_secret(),
                    )
                    .with_option(
                        "aws_secret_access_key",
                        secret.resolve("secret_access_key", env)?.expose_secret(),
                    );
                if let Some(token) = &config.session_token {
                    target = target.with_option(
                        "aws_session_token",
                        token.resolve("session_token", env)?.expose_secret(),
                    );
                }
            }
            (None, None) => {}
            _ => {
                return Err(invalid(
                    "give both access_key_id and secret_access_key, or neither (the AWS credential chain)".into(),
                ));
            }
        }
        Ok(Self {
            filter: Arc::new(
                config
                    .filter
                    .filter(DEFAULT_PATTERNS)
                    .map_err(|e| invalid(e.to_string()))?,
            ),
            id,
            bucket: config.bucket,
            prefix,
            target,
            max_file_size: config.filter.max_file_size,
        })
    }

    async fn store(&self) -> Result<Arc<dyn ObjectStore>> {
        self.target.object_store().await.map_err(|e| Error::List {
            source_id: self.id.clone(),
            reason: e.to_string(),
        })
    }

    fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    fn key<'u>(&self, uri: &'u str) -> Option<&'u str> {
        uri.strip_prefix("s3://")?
            .strip_prefix(self.bucket.as_str())?
            .strip_prefix('/')
    }

    fn relative<'k>(&self, key: &'k str) -> &'k str {
        if self.prefix.is_empty() {
            key
        } else {
            key.strip_prefix(self.prefix.as_str())
                .map_or(key, |k| k.trim_start_matches('/'))
        }
    }
}

#[async_trait]
impl DocumentSource for S3Source {
    fn id(&self) -> &str {
        &self.id
    }

    fn source_type(&self) -> &'static str {
        "s3"
    }

    fn scopes(&self) -> Vec<String> {
        vec![self.uri(&self.prefix)]
    }

    async fn list(&self) -> Result<Listing> {
        let store = self.store().await?;
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        // ListObjectsV2, one page of up to 1,000 keys per request, continuation tokens
        // followed to the end; any page failing fails the listing.
        let mut pages = store.list(prefix.as_ref());
        let mut entries = Vec::new();
        while let Some(item) = pages.next().await {
            let meta = item.map_err(|e| Error::List {
                source_id: self.id.clone(),
                reason: format!(
                    "listing s3://{}/{} failed after {} objects: {e}; nothing is deleted, the next run lists again",
                    self.bucket,
                    self.prefix,
                    entries.len()
                ),
            })?;
            let key = meta.location.as_ref();
            // Folder markers (`reports/`) are not documents.
            if key.ends_with('/') || !self.filter.accepts(self.relative(key)) {
                continue;
            }
            let etag = meta
                .e_tag
                .as_deref()
                .map(|t| t.trim_matches('"').to_string());
            entries.push(SourceEntry {
                content_hash: etag.as_ref().map(|t| format!("s3-etag:{t}")),
                version: etag,
                ..SourceEntry::new(
                    self.uri(key),
                    meta.size,
                    meta.last_modified.timestamp_millis(),
                )
            });
        }
        entries.sort_unstable_by(|a, b| a.uri.cmp(&b.uri));
        Ok(Listing {
            entries,
            ..Default::default()
        })
    }

    async fn read(&self, entry: &SourceEntry) -> Result<Vec<u8>> {
        let read_error = |reason: String| Error::Read {
            uri: entry.uri.clone(),
            reason,
        };
        let key = self
            .key(&entry.uri)
            .ok_or_else(|| read_error(format!("not an object of bucket {}", self.bucket)))?;
        if let Some(limit) = self.max_file_size
            && entry.size > limit
        {
            return Err(Error::TooLarge {
                uri: entry.uri.clone(),
                size: entry.size,
                limit,
            });
        }
        let path = ObjectPath::parse(key).map_err(|e| read_error(e.to_string()))?;
        let store = self.store().await?;
        let got = store
            .get(&path)
            .await
            .map_err(|e| read_error(e.to_string()))?;
        let bytes = got.bytes().await.map_err(|e| read_error(e.to_string()))?;
        Ok(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_checked_and_keys_map_to_uris() {
        let env = BTreeMap::from([("KEY".to_string(), "k".to_string())]);
        let bad = S3Source::new("b", S3SourceConfig::new("Bad_Bucket", ""), &env).unwrap_err();
        assert!(bad.to_string().contains("not a valid S3 bucket name"));
        let mut half = S3SourceConfig::new("docs", "");
        half.access_key_id = Some(SecretRef::env("KEY"));
        let half = S3Source::new("b", half, &env).unwrap_err();
        assert!(
            half.to_string()
                .contains("both access_key_id and secret_access_key")
        );

        let source = S3Source::new("b", S3SourceConfig::new("docs", "/team/notes/"), &env).unwrap();
        assert_eq!(source.uri("team/notes/a.md"), "s3://docs/team/notes/a.md");
        assert_eq!(
            source.key("s3://docs/team/notes/a.md"),
            Some("team/notes/a.md")
        );
        assert_eq!(source.key("s3://other/team/notes/a.md"), None);
        assert_eq!(source.relative("team/notes/x/a.md"), "x/a.md");
    }
}
