//! Every validation rule, all problems at once, the storage-mode matrix, API tokens.

use super::*;

/// Every validation rule, each broken alone on top of an otherwise valid configuration.
#[test]
fn every_validation_rule() {
    let s3_web = [("S3_STORAGE_ENABLED", "true"), ("S3_BUCKET", "primary")];
    let cases: Vec<(&str, Vars, &str, &str)> = vec![
        (
            "cloud web without S3",
            vec![("BACKEND_LOCATION", "cloud")],
            "S3_STORAGE_ENABLED",
            "cloud backend requires S3 storage",
        ),
        (
            "cloud web detected without S3",
            vec![("VERCEL", "1")],
            "S3_STORAGE_ENABLED",
            "VERCEL is set",
        ),
        (
            "cloud desktop without S3",
            vec![("BACKEND_LOCATION", "cloud"), ("FRONTEND_TYPE", "desktop")],
            "S3_BACKUP_ENABLED",
            "cloud backend requires S3",
        ),
        (
            "desktop with S3 primary",
            vec![
                ("FRONTEND_TYPE", "desktop"),
                ("USE_S3_AS_PRIMARY", "true"),
                s3_web[0],
                s3_web[1],
            ],
            "USE_S3_AS_PRIMARY",
            "a desktop app never uses S3 as primary",
        ),
        (
            "S3 primary without S3",
            vec![("USE_S3_AS_PRIMARY", "true")],
            "USE_S3_AS_PRIMARY",
            "needs S3 storage",
        ),
        (
            "S3 without bucket",
            vec![("S3_STORAGE_ENABLED", "true")],
            "S3_BUCKET",
            "S3_BUCKET is not set",
        ),
        (
            "backup without bucket",
            vec![("S3_BACKUP_ENABLED", "true")],
            "S3_BACKUP_BUCKET",
            "S3_BACKUP_BUCKET is not set",
        ),
        (
            "bad bucket name",
            vec![s3_web[0], ("S3_BUCKET", "Bad_Bucket")],
            "S3_BUCKET",
            "not a valid S3 bucket name",
        ),
        (
            "bad backup bucket name",
            vec![("S3_BACKUP_ENABLED", "true"), ("S3_BACKUP_BUCKET", "x")],
            "S3_BACKUP_BUCKET",
            "not a valid S3 bucket name",
        ),
        (
            "key without secret",
            vec![("AWS_ACCESS_KEY_ID", "AKIA1")],
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID is set but",
        ),
        (
            "secret without key",
            vec![("AWS_SECRET_ACCESS_KEY", "s")],
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY is set but",
        ),
        (
            "token without keys",
            vec![("AWS_SESSION_TOKEN", "t")],
            "AWS_SESSION_TOKEN",
            "without AWS_ACCESS_KEY_ID",
        ),
        (
            "remote LanceDB URI",
            vec![("LANCEDB_URI", "s3://b/p")],
            "LANCEDB_URI",
            "is not a local folder",
        ),
        (
            "bad table name",
            vec![("LANCEDB_TABLE_NAME", "docs;drop")],
            "LANCEDB_TABLE_NAME",
            "not a valid table name",
        ),
        (
            "same table names",
            vec![
                ("LANCEDB_TABLE_NAME", "t"),
                ("LANCEDB_CHUNKS_TABLE_NAME", "t"),
            ],
            "LANCEDB_CHUNKS_TABLE_NAME",
            "are both t",
        ),
        (
            "bad host",
            vec![("API_HOST", "not a host")],
            "API_HOST",
            "not an IP address or host name",
        ),
        (
            "zero sync interval",
            vec![("SYNC_INTERVAL", "0")],
            "SYNC_INTERVAL",
            "at least 1 second",
        ),
        (
            "zero health interval",
            vec![("HEALTH_CHECK_INTERVAL", "0s")],
            "HEALTH_CHECK_INTERVAL",
            "at least 1 second",
        ),
        (
            "zero poll interval",
            vec![("DEFAULT_POLL_INTERVAL", "0")],
            "DEFAULT_POLL_INTERVAL",
            "at least 1 second",
        ),
        (
            "zero concurrency",
            vec![("MAX_CONCURRENT_PROCESSING", "0")],
            "MAX_CONCURRENT_PROCESSING",
            "out of range",
        ),
        (
            "huge concurrency",
            vec![("MAX_CONCURRENT_PROCESSING", "5000")],
            "MAX_CONCURRENT_PROCESSING",
            "out of range",
        ),
        (
            "zero chunk size",
            vec![("CHUNK_SIZE_MB", "0")],
            "CHUNK_SIZE_MB",
            "out of range",
        ),
        (
            "not a number",
            vec![("MAX_RETRIES", "abc")],
            "MAX_RETRIES",
            "MAX_RETRIES=abc is not a whole number",
        ),
        (
            "negative number",
            vec![("MAX_RETRIES", "-1")],
            "MAX_RETRIES",
            "is not a whole number",
        ),
        (
            "not a bool",
            vec![("CHECKSUM_ENABLED", "maybe")],
            "CHECKSUM_ENABLED",
            "is not true or false",
        ),
        (
            "not a port",
            vec![("API_PORT", "70000")],
            "API_PORT",
            "is not a port number",
        ),
        (
            "not a duration",
            vec![("SYNC_INTERVAL", "soon")],
            "SYNC_INTERVAL",
            "not a number of seconds",
        ),
        (
            "not a frontend",
            vec![("FRONTEND_TYPE", "mobile")],
            "FRONTEND_TYPE",
            "use one of: web, desktop",
        ),
        (
            "not a location",
            vec![("BACKEND_LOCATION", "moon")],
            "BACKEND_LOCATION",
            "use one of: cloud, local, auto",
        ),
        (
            "not a URL",
            vec![("S3_ENDPOINT", "localhost:9000")],
            "S3_ENDPOINT",
            "only http:// and https://",
        ),
        (
            "a hybrid weight above 1",
            vec![("SEARCH_VECTOR_WEIGHT", "1.5")],
            "SEARCH_VECTOR_WEIGHT",
            "is not a number from 0 to 1",
        ),
        (
            "a coordinator of instances that write local tables",
            vec![("COORDINATOR_URL", "postgres://sync@db/lancesync")],
            "COORDINATOR_URL",
            "the storage mode is local_only",
        ),
        (
            "a coordinator that is not PostgreSQL",
            vec![
                ("S3_STORAGE_ENABLED", "true"),
                ("S3_BUCKET", "primary"),
                ("USE_S3_AS_PRIMARY", "true"),
                ("COORDINATOR_URL", "mysql://sync:pw@db/lancesync"),
            ],
            "COORDINATOR_URL",
            "only postgres:// and postgresql:// are accepted",
        ),
        (
            "authorities for a connection that is not TLS",
            vec![
                ("S3_STORAGE_ENABLED", "true"),
                ("S3_BUCKET", "primary"),
                ("USE_S3_AS_PRIMARY", "true"),
                ("COORDINATOR_URL", "postgres://sync:pw@db/lancesync"),
                ("COORDINATOR_CA_FILE", "/etc/passwd"),
            ],
            "COORDINATOR_CA_FILE",
            "would not be encrypted",
        ),
        (
            "authorities that are not a file",
            vec![
                ("S3_STORAGE_ENABLED", "true"),
                ("S3_BUCKET", "primary"),
                ("USE_S3_AS_PRIMARY", "true"),
                (
                    "COORDINATOR_URL",
                    "postgres://sync:pw@db/lancesync?sslmode=require",
                ),
                ("COORDINATOR_CA_FILE", "/nonexistent/ca.pem"),
            ],
            "COORDINATOR_CA_FILE",
            "is not a file",
        ),
        (
            "a takeover time too short to tell",
            vec![("COORDINATOR_TAKEOVER_SECS", "1")],
            "COORDINATOR_TAKEOVER_SECS",
            "too short",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (what, env, setting, needle) in cases {
        let found = problems(&opts(dir.path(), &env));
        assert_eq!(
            found.len(),
            1,
            "{what}: expected one problem, got {found:#?}"
        );
        assert_eq!(found[0].setting, Some(setting), "{what}");
        assert!(
            found[0].to_string().contains(needle),
            "{what}: {}",
            found[0]
        );
        assert!(
            !found[0].hint.is_empty(),
            "{what}: every problem says what to do"
        );
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("MAX_RETRIES", "abc"),
        ("S3_STORAGE_ENABLED", "true"),
        ("FRONTEND_TYPE", "desktop"),
        ("USE_S3_AS_PRIMARY", "true"),
        ("SYNC_INTERVAL", "0"),
        ("S3_BACKUP_ENABLED", "true"),
    ];
    let found = problems(&opts(dir.path(), &env));
    let settings: Vec<_> = found.iter().filter_map(|p| p.setting).collect();
    for s in [
        "MAX_RETRIES",
        "S3_BUCKET",
        "USE_S3_AS_PRIMARY",
        "SYNC_INTERVAL",
        "S3_BACKUP_BUCKET",
    ] {
        assert!(settings.contains(&s), "{s} missing from {found:#?}");
    }
    let err = Config::load(&opts(dir.path(), &env)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{} configuration problems", found.len())),
        "{err}"
    );
}

#[test]
fn modes_follow_the_seed_matrix_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = [("S3_STORAGE_ENABLED", "true"), ("S3_BUCKET", "primary")];
    let backup = [
        ("S3_BACKUP_ENABLED", "true"),
        ("S3_BACKUP_BUCKET", "backups"),
    ];
    let cases: Vec<(Vars, StorageMode, StorageMode)> = vec![
        // web + cloud, as in seed 003's production example
        (
            vec![
                ("BACKEND_LOCATION", "cloud"),
                s3[0],
                s3[1],
                ("USE_S3_AS_PRIMARY", "true"),
            ],
            StorageMode::S3PrimaryLocalCache,
            StorageMode::S3PrimaryLocalCache,
        ),
        (
            vec![
                ("KUBERNETES_SERVICE_HOST", "h"),
                s3[0],
                s3[1],
                ("USE_S3_AS_PRIMARY", "true"),
                ("LOCAL_CACHE_ENABLED", "false"),
            ],
            StorageMode::S3Only,
            StorageMode::S3PrimaryLocalCache,
        ),
        // web + local
        (
            vec![s3[0], s3[1]],
            StorageMode::LocalPrimaryS3Sync,
            StorageMode::LocalPrimaryS3Sync,
        ),
        (vec![], StorageMode::LocalOnly, StorageMode::LocalOnly),
        // desktop, any location
        (
            vec![("FRONTEND_TYPE", "desktop"), backup[0], backup[1]],
            StorageMode::LocalPrimaryS3Backup,
            StorageMode::LocalPrimaryS3Backup,
        ),
        (
            vec![
                ("FRONTEND_TYPE", "desktop"),
                ("BACKEND_LOCATION", "cloud"),
                backup[0],
                backup[1],
            ],
            StorageMode::LocalPrimaryS3Backup,
            StorageMode::LocalPrimaryS3Backup,
        ),
        (
            vec![("FRONTEND_TYPE", "desktop")],
            StorageMode::LocalOnly,
            StorageMode::LocalOnly,
        ),
    ];
    for (env, effective, recommended) in cases {
        let c = Config::load(&opts(dir.path(), &env)).unwrap_or_else(|e| panic!("{env:?}: {e}"));
        assert_eq!(
            (c.storage_mode(), c.recommended_mode()),
            (effective, recommended),
            "{env:?}"
        );
        // A mode other than the recommended one is allowed, with a note that says how to switch.
        assert_eq!(
            c.notes().iter().any(|n| n.contains("recommended")),
            effective != recommended,
            "{env:?}"
        );
    }
    // Explicit local beats an indicator; explicit cloud beats its absence.
    let c = Config::load(&opts(
        dir.path(),
        &[
            ("KUBERNETES_SERVICE_HOST", "h"),
            ("BACKEND_LOCATION", "local"),
        ],
    ))
    .unwrap();
    assert_eq!(c.backend().reason, LocationReason::Explicit);
    assert_eq!(c.backend().location, BackendLocation::Local);
}

/// A token shared by two users, or a user token equal to the admin token, would let one
/// caller act as another: both are refused, naming users and pairs, never the token.
#[test]
fn api_tokens_are_never_shared() {
    let dir = tempfile::tempdir().unwrap();
    let admin = "admin-token-0123456789abcdef";
    let shared = "shared-token-0123456789abcdef";
    let users = format!("alice={shared},bob={shared}");
    let text = problem_text(&opts(dir.path(), &[("API_USER_TOKENS", &users)]));
    assert!(
        text.contains("pairs 1 (alice) and 2 (bob) have the same token"),
        "{text}"
    );
    assert!(!text.contains(shared), "{text}");

    let users = format!("alice=alice-token-0123456789abcdef,bob={admin}");
    let text = problem_text(&opts(
        dir.path(),
        &[("API_ADMIN_TOKEN", admin), ("API_USER_TOKENS", &users)],
    ));
    assert!(
        text.contains("user bob's token is the admin token"),
        "{text}"
    );
    assert!(!text.contains(admin), "{text}");

    // Distinct tokens, and one user with two (a rotation), are fine.
    let users = "alice=alice-token-0123456789abcdef,alice=alice-token-new-456789abcdef,bob=bob-token-0123456789abcdef";
    let ok = opts(
        dir.path(),
        &[("API_ADMIN_TOKEN", admin), ("API_USER_TOKENS", users)],
    );
    assert!(problems(&ok).is_empty(), "{}", problem_text(&ok));
}
