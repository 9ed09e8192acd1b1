//! The rules a configuration must follow. Every broken rule becomes a [`Problem`]; notes that
//! do not stop lancesync from running are returned separately.

use std::net::IpAddr;
use std::time::Duration;

use secrecy::ExposeSecret;

use crate::location::{BackendDetection, BackendLocation};
use crate::mode::{FrontendType, StorageMode};
use crate::problem::Problem;
use crate::settings::Settings;

/// S3 allows parts up to 5 GiB.
const MAX_CHUNK_SIZE_MB: u64 = 5 * 1024;
/// More than this many documents at once only thrashes a machine.
const MAX_CONCURRENCY: u64 = 1024;

/// Check `settings` against every rule; returns (problems, notes).
pub(crate) fn validate(
    settings: &Settings,
    backend: &BackendDetection,
    effective: StorageMode,
    recommended: StorageMode,
) -> (Vec<Problem>, Vec<String>) {
    let mut problems = Vec::new();
    let s3 = &settings.s3;
    let backup = &settings.backup;
    let frontend = settings.deployment.frontend;
    let mut err = |setting, message: String, hint: &str| {
        problems.push(Problem::new(Some(setting), message, hint))
    };

    // Storage rules of seed 003.
    if backend.location == BackendLocation::Cloud {
        match frontend {
            FrontendType::Web if !s3.enabled => err(
                "S3_STORAGE_ENABLED",
                format!(
                    "cloud backend requires S3 storage to be enabled; the backend is {backend}"
                ),
                "set S3_STORAGE_ENABLED=true and S3_BUCKET, or BACKEND_LOCATION=local",
            ),
            FrontendType::Desktop if !s3.enabled && !backup.enabled => err(
                "S3_BACKUP_ENABLED",
                format!(
                    "cloud backend requires S3: a desktop app on a cloud backend keeps its backup there; the backend is {backend}"
                ),
                "set S3_BACKUP_ENABLED=true and S3_BACKUP_BUCKET, or BACKEND_LOCATION=local",
            ),
            _ => {}
        }
    }
    if s3.use_as_primary && frontend == FrontendType::Desktop {
        err(
            "USE_S3_AS_PRIMARY",
            "a desktop app never uses S3 as primary storage (FRONTEND_TYPE=desktop, USE_S3_AS_PRIMARY=true)".into(),
            "set USE_S3_AS_PRIMARY=false; use S3_BACKUP_ENABLED=true for an S3 copy",
        );
    }
    if s3.use_as_primary && !s3.enabled {
        err(
            "USE_S3_AS_PRIMARY",
            "USE_S3_AS_PRIMARY=true needs S3 storage, but S3_STORAGE_ENABLED=false".into(),
            "set S3_STORAGE_ENABLED=true and S3_BUCKET, or USE_S3_AS_PRIMARY=false",
        );
    }
    if s3.enabled && s3.bucket.is_none() {
        err(
            "S3_BUCKET",
            "S3 storage is enabled but S3_BUCKET is not set".into(),
            "set S3_BUCKET to the bucket's name, or S3_STORAGE_ENABLED=false",
        );
    }
    let integration = &settings.integration;
    if integration.migrate_existing_data && integration.legacy_lancedb_uri.is_none() {
        err(
            "LEGACY_LANCEDB_URI",
            "MIGRATE_EXISTING_DATA=true needs to know where the original data is, but LEGACY_LANCEDB_URI is not set".into(),
            "set LEGACY_LANCEDB_URI to the original LanceDB folder or s3:// URI, or MIGRATE_EXISTING_DATA=false",
        );
    }
    if backup.enabled && backup.bucket.is_none() {
        err(
            "S3_BACKUP_BUCKET",
            "S3 backup is enabled but S3_BACKUP_BUCKET is not set".into(),
            "set S3_BACKUP_BUCKET to the bucket's name, or S3_BACKUP_ENABLED=false",
        );
    }
    for (setting, bucket) in [
        ("S3_BUCKET", &s3.bucket),
        ("S3_BACKUP_BUCKET", &backup.bucket),
    ] {
        if let Some(bucket) = bucket
            && let Err(why) = check_bucket_name(bucket)
        {
            err(
                setting,
                format!("{setting}={bucket} is not a valid S3 bucket name: {why}"),
                "use 3 to 63 lowercase letters, digits, dots and hyphens",
            );
        }
    }
    let cluster = &settings.cluster;
    if cluster.coordinator_url.is_some()
        && !matches!(
            effective,
            StorageMode::S3Only | StorageMode::S3PrimaryLocalCache
        )
    {
        err(
            "COORDINATOR_URL",
            format!(
                "COORDINATOR_URL coordinates instances that share one S3 primary, but the storage mode is {effective}: each instance would write its own local tables"
            ),
            "set S3_STORAGE_ENABLED=true, USE_S3_AS_PRIMARY=true and S3_BUCKET, or unset COORDINATOR_URL",
        );
    }
    if let Some(ca_file) = &cluster.ca_file {
        let requires_tls = cluster.coordinator_url.as_ref().is_some_and(|url| {
            url.expose_secret()
                .split_once('?')
                .is_some_and(|(_, query)| query.split('&').any(|p| p == "sslmode=require"))
        });
        if !ca_file.is_file() {
            err(
                "COORDINATOR_CA_FILE",
                format!("COORDINATOR_CA_FILE={} is not a file", ca_file.display()),
                "give the PEM file of the authorities that signed PostgreSQL's certificate",
            );
        } else if !requires_tls {
            err(
                "COORDINATOR_CA_FILE",
                "COORDINATOR_CA_FILE is set but COORDINATOR_URL does not ask for TLS: the connection would not be encrypted".to_string(),
                "add ?sslmode=require to COORDINATOR_URL",
            );
        }
    }
    if cluster.takeover < std::time::Duration::from_secs(2) {
        err(
            "COORDINATOR_TAKEOVER_SECS",
            format!(
                "COORDINATOR_TAKEOVER_SECS={} s is too short to tell a slow coordinator from a lost one",
                cluster.takeover.as_secs_f64()
            ),
            "use 2 or more (60 by default)",
        );
    }
    let creds = &settings.credentials;
    if creds.access_key_id.is_some() != creds.secret_access_key.is_some() {
        let (missing, present) = if creds.access_key_id.is_some() {
            ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
        } else {
            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        };
        err(
            missing,
            format!("{present} is set but {missing} is not"),
            "set both, or neither to use the standard AWS credential chain",
        );
    }
    if creds
        .session_token
        .as_ref()
        .is_some_and(|t| !t.expose_secret().is_empty())
        && creds.access_key_id.is_none()
    {
        err(
            "AWS_SESSION_TOKEN",
            "AWS_SESSION_TOKEN is set without AWS_ACCESS_KEY_ID".into(),
            "set the key pair it belongs to, or unset it",
        );
    }

    // Locations and names.
    if settings.lancedb.is_remote() {
        err(
            "LANCEDB_URI",
            format!("LANCEDB_URI={} is not a local folder", settings.lancedb.uri),
            "set a local folder; S3 storage is chosen with S3_STORAGE_ENABLED, S3_BUCKET, S3_PREFIX and USE_S3_AS_PRIMARY",
        );
    }
    for (setting, name) in [
        ("LANCEDB_TABLE_NAME", &settings.lancedb.documents_table),
        ("LANCEDB_CHUNKS_TABLE_NAME", &settings.lancedb.chunks_table),
    ] {
        if !is_table_name(name) {
            err(
                setting,
                format!("{setting}={name} is not a valid table name"),
                "use letters, digits, '_', '-' and '.'",
            );
        }
    }
    if settings.lancedb.documents_table == settings.lancedb.chunks_table {
        err(
            "LANCEDB_CHUNKS_TABLE_NAME",
            format!(
                "LANCEDB_TABLE_NAME and LANCEDB_CHUNKS_TABLE_NAME are both {}",
                settings.lancedb.chunks_table
            ),
            "give the two tables different names",
        );
    }
    if !is_host(&settings.api.host) {
        err(
            "API_HOST",
            format!(
                "API_HOST={} is not an IP address or host name",
                settings.api.host
            ),
            "use an address such as 127.0.0.1 or 0.0.0.0",
        );
    }

    if let Some(token) = &settings.api.admin_token
        && token.expose_secret().len() < 16
    {
        err(
            "API_ADMIN_TOKEN",
            "API_ADMIN_TOKEN is shorter than 16 characters".to_string(),
            "use a long random token, e.g. from `openssl rand -hex 32`",
        );
    }
    // A user token equal to the admin token would act as the admin.
    if let Some(admin) = &settings.api.admin_token
        && let Some((user, _)) = settings
            .api
            .user_tokens
            .iter()
            .find(|(_, token)| token.expose_secret() == admin.expose_secret())
    {
        err(
            "API_USER_TOKENS",
            format!("API_USER_TOKENS: user {user}'s token is the admin token (API_ADMIN_TOKEN)"),
            "give every user a token of their own, different from the admin's",
        );
    }
    for origin in &settings.api.cors_origins {
        let ok = url::Url::parse(origin)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.path() == "/");
        if !ok {
            err(
                "API_CORS_ORIGINS",
                format!("API_CORS_ORIGINS: {origin:?} is not an origin"),
                "list origins such as https://app.example.com (scheme, host, optional port; no path, no *)",
            );
        }
    }

    // Intervals and limits.
    for (setting, value) in [
        ("SYNC_INTERVAL", settings.sync.interval),
        (
            "HEALTH_CHECK_INTERVAL",
            settings.monitoring.health_check_interval,
        ),
        (
            "DEFAULT_POLL_INTERVAL",
            settings.monitoring.default_poll_interval,
        ),
    ] {
        if value < Duration::from_secs(1) {
            err(
                setting,
                format!(
                    "{setting} must be at least 1 second, not {}",
                    humantime::format_duration(value)
                ),
                "use a number of seconds such as 300",
            );
        }
    }
    let limits = [
        (
            "MAX_CONCURRENT_PROCESSING",
            settings.sync.max_concurrent_processing,
            MAX_CONCURRENCY,
        ),
        (
            "CHUNK_SIZE_MB",
            settings.sync.chunk_size_mb,
            MAX_CHUNK_SIZE_MB,
        ),
    ];
    for (setting, value, max) in limits {
        if value == 0 || value > max {
            err(
                setting,
                format!("{setting}={value} is out of range"),
                &format!("use a whole number from 1 to {max}"),
            );
        }
    }

    let e = &settings.embedding;
    if e.chunk_overlap >= e.chunk_characters {
        err(
            "CHUNK_OVERLAP",
            format!(
                "CHUNK_OVERLAP={} must be smaller than CHUNK_CHARACTERS={}",
                e.chunk_overlap, e.chunk_characters
            ),
            "use an overlap of about a fifth of the chunk size, e.g. 200 for 1000",
        );
    }
    for (setting, value) in [
        ("CHUNK_CHARACTERS", e.chunk_characters),
        ("EMBEDDING_DIMENSION", e.dimension),
        ("EMBEDDING_BATCH_SIZE", e.batch_size),
    ] {
        if value == 0 {
            err(
                setting,
                format!("{setting} must be at least 1"),
                "use a whole number of 1 or more",
            );
        }
    }

    // Notes: allowed, but worth knowing.
    let mut notes = Vec::new();
    if effective != recommended {
        notes.push(format!(
            "storage mode {effective} differs from {recommended}, recommended for a {frontend} frontend on a {} backend; to follow the recommendation set {}",
            backend.location,
            recommended.how_to_select()
        ));
    }
    if effective == StorageMode::LocalOnly && s3.endpoint.is_some() {
        notes.push(
            "S3_ENDPOINT is set but no S3 storage or backup is enabled, so it is not used".into(),
        );
    }
    (problems, notes)
}

fn check_bucket_name(name: &str) -> Result<(), &'static str> {
    if !(3..=63).contains(&name.len()) {
        return Err("it must be 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Err("it may hold only lowercase letters, digits, dots and hyphens");
    }
    let ends_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !ends_ok(name.as_bytes()[0]) || !ends_ok(name.as_bytes()[name.len() - 1]) {
        return Err("it must begin and end with a letter or digit");
    }
    if name.contains("..") {
        return Err("it must not hold two dots in a row");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err("it must not look like an IP address");
    }
    Ok(())
}

fn is_table_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn is_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket", "my.bucket.2", &"a".repeat(63)] {
            assert_eq!(check_bucket_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ab",
            "My-Bucket",
            "-bucket",
            "bucket-",
            "a..b",
            "192.168.1.1",
            "under_score",
            &"a".repeat(64),
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_and_table_names() {
        for ok in [
            "0.0.0.0",
            "127.0.0.1",
            "::1",
            "localhost",
            "api.example.com",
        ] {
            assert!(is_host(ok), "{ok}");
        }
        for bad in ["", "bad host", "-x.com", "a..b"] {
            assert!(!is_host(bad), "{bad}");
        }
        assert!(is_table_name("document_chunks"));
        assert!(!is_table_name("chunks; drop"));
        assert!(!is_table_name(""));
    }
}
