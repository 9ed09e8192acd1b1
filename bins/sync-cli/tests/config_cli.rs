//! The real `sync-cli` binary's `config` commands, run in a clean environment.
//! Run: cargo test -p sync-cli --test config_cli

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// `sync-cli` with only the given variables set, in `dir`.
fn sync_cli(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sync-cli"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("sync-cli runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn check_prints_every_problem_and_exits_2_on_a_bad_environment() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("HOME", "/home/u"),
        ("MAX_RETRIES", "abc"),
        ("API_PORT", "70000"),
        ("CHECKSUM_ENABLED", "maybe"),
        ("S3_STORAGE_ENABLED", "true"),
        ("S3_BACKUP_ENABLED", "true"),
        ("FRONTEND_TYPE", "desktop"),
        ("USE_S3_AS_PRIMARY", "true"),
        ("SYNC_INTERVAL", "0"),
        ("LANCEDB_URI", "${UNSET_VAR}/db"),
    ];
    let out = sync_cli(dir.path(), &env, &["config", "check"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let expected = [
        "8 configuration problems",
        "MAX_RETRIES=abc is not a whole number (from env MAX_RETRIES)",
        "API_PORT=70000 is not a port number",
        "CHECKSUM_ENABLED=maybe is not true or false",
        "S3 storage is enabled but S3_BUCKET is not set",
        "S3 backup is enabled but S3_BACKUP_BUCKET is not set",
        "a desktop app never uses S3 as primary storage",
        "SYNC_INTERVAL must be at least 1 second",
        "LANCEDB_URI=${UNSET_VAR}/db ${UNSET_VAR} is not set",
    ];
    for needle in expected {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    // Each problem says what to do.
    assert_eq!(
        text.lines().filter(|l| l.starts_with("  - ")).count(),
        8,
        "{text}"
    );
    assert!(
        text.lines()
            .filter(|l| l.starts_with("  - "))
            .all(|l| l.contains(": ")),
        "{text}"
    );
}

#[test]
fn check_passes_on_the_defaults_and_show_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let out = sync_cli(dir.path(), &[("HOME", "/home/u")], &["config", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("configuration is valid: storage mode local_only, backend local"),
        "{}",
        stdout(&out)
    );

    let out = sync_cli(dir.path(), &[("HOME", "/home/u")], &["config", "show"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.contains("backend location: local (no cloud platform variable is set)"),
        "{text}"
    );
    assert!(text.contains("storage mode:     local_only"), "{text}");
    // Every setting is acted on now; the last was the migration's.
    assert!(
        text.contains("MAX_RETRIES") && !text.contains("accepted, not yet used"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("MIGRATE_EXISTING_DATA") && l.contains("used: migration")),
        "{text}"
    );
}

#[test]
fn show_json_reports_every_layer_detection_and_mode() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("conf.toml"),
        "max_retries = 9\nchunk_size_mb = 10\nsync_interval = \"5m\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join(".env"), "CHUNK_SIZE_MB=20\nAPI_PORT=9001\n").unwrap();
    let env = [
        ("HOME", "/home/u"),
        ("LANCESYNC_CONFIG", "conf.toml"),
        ("API_PORT", "9002"),
        ("DEFAULT_POLL_INTERVAL", "60"),
        ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
        ("S3_STORAGE_ENABLED", "true"),
        ("S3_BUCKET", "primary-bucket"),
        ("USE_S3_AS_PRIMARY", "true"),
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID"),
        ("AWS_SECRET_ACCESS_KEY", "very-secret-value"),
    ];
    let out = sync_cli(
        dir.path(),
        &env,
        &[
            "config",
            "show",
            "--json",
            "--set",
            "DEFAULT_POLL_INTERVAL=120",
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        !text.contains("very-secret-value") && !text.contains("AKIAEXAMPLEKEYID"),
        "secret leaked: {text}"
    );
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["backend"]["location"], "cloud");
    assert_eq!(
        json["backend"]["reason"]["variable"],
        "KUBERNETES_SERVICE_HOST"
    );
    assert_eq!(json["storage_mode"], "s3_primary_local_cache");
    assert_eq!(json["recommended_mode"], "s3_primary_local_cache");
    let setting = |name: &str| {
        json["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    let expect = [
        ("S3_PREFIX", "lancedb-primary", "default"),
        ("MAX_RETRIES", "9", "file"),
        ("SYNC_INTERVAL", "5m", "file"),
        ("CHUNK_SIZE_MB", "20", ".env"),
        ("API_PORT", "9002", "env"),
        ("DEFAULT_POLL_INTERVAL", "120", "flag"),
        ("AWS_SECRET_ACCESS_KEY", "****", "env"),
    ];
    for (name, value, layer) in expect {
        let s = setting(name);
        assert_eq!(
            (
                s["value"].as_str().unwrap(),
                s["origin"]["layer"].as_str().unwrap()
            ),
            (value, layer),
            "{name}"
        );
    }
    assert!(
        setting("LANCEDB_URI")["value"]
            .as_str()
            .unwrap()
            .ends_with("/data/lancedb")
    );
}

#[test]
fn unknown_toml_key_and_missing_config_file_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.toml"), "max_retrys = 5\n").unwrap();
    let out = sync_cli(dir.path(), &[], &["--config", "c.toml", "config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("unknown setting 'max_retrys'")
            && stdout(&out).contains("did you mean max_retries"),
        "{}",
        stdout(&out)
    );

    let out = sync_cli(
        dir.path(),
        &[],
        &["--config", "nope.toml", "config", "show"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("nope.toml does not exist"),
        "{}",
        stdout(&out)
    );

    let out = sync_cli(dir.path(), &[], &["config", "check", "--set", "novalue"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a malformed flag is a usage error"
    );
}

#[test]
fn generate_writes_templates_that_load_back() {
    let dir = tempfile::tempdir().unwrap();
    for (format, file, flag) in [
        ("env", "gen.env", "--env-file"),
        ("toml", "gen.toml", "--config"),
    ] {
        let out = sync_cli(
            dir.path(),
            &[],
            &["config", "generate", "--format", format, "--output", file],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert!(
            body.contains("MAX_CONCURRENT_PROCESSING")
                || body.contains("max_concurrent_processing")
        );
        // A second write without --force refuses and keeps the file.
        let again = sync_cli(
            dir.path(),
            &[],
            &["config", "generate", "--format", format, "--output", file],
        );
        assert_eq!(again.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
        // Uncomment a line and the setting takes effect from that file.
        let key = if format == "env" {
            "#MAX_RETRIES=3"
        } else {
            "#max_retries = 3"
        };
        let edited = body.replace(key, &key[1..].replace('3', "6"));
        std::fs::write(dir.path().join(file), edited).unwrap();
        let out = sync_cli(dir.path(), &[], &[flag, file, "config", "show", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
        let retries = json["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "MAX_RETRIES")
            .unwrap()
            .clone();
        assert_eq!(retries["value"], "6", "{format}");
    }
    let out = sync_cli(
        dir.path(),
        &[],
        &["config", "generate", "--format", "markdown"],
    );
    assert!(stdout(&out).starts_with("# Configuration"));
}
