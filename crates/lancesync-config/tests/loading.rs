//! Loading, layers, validation and redaction, through the public API with real files.
//! Run: cargo test -p lancesync-config --test loading

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lancesync_config::{
    BackendLocation, Config, EnvFile, Error, LoadOptions, LocationReason, Origin, Problem,
    StorageMode, TemplateFormat, template,
};
use secrecy::ExposeSecret;

/// Variables for a case of a table-driven test.
type Vars<'a> = Vec<(&'a str, &'a str)>;

fn opts(dir: &Path, env: &[(&str, &str)]) -> LoadOptions {
    LoadOptions::from_env_map(env.iter().copied(), dir)
}

fn problems(o: &LoadOptions) -> Vec<Problem> {
    Config::inspect(o).problems
}

fn problem_text(o: &LoadOptions) -> String {
    problems(o)
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn defaults_alone_are_valid_and_local_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(&opts(dir.path(), &[("HOME", "/home/u")])).unwrap();
    let s = config.settings();
    assert_eq!(config.storage_mode(), StorageMode::LocalOnly);
    assert_eq!(config.recommended_mode(), StorageMode::LocalOnly);
    assert_eq!(config.backend().location, BackendLocation::Local);
    assert_eq!(
        s.lancedb.uri,
        dir.path().join("data/lancedb").to_string_lossy()
    );
    assert_eq!(s.lancedb.documents_table, "processed_documents");
    assert_eq!(s.lancedb.chunks_table, "document_chunks");
    assert_eq!(s.monitoring.state_dir, dir.path().join("data/sync_state"));
    assert_eq!(s.sync.interval, Duration::from_secs(300));
    assert_eq!(s.sync.max_concurrent_processing, 5);
    assert_eq!(s.sync.max_retries, 3);
    assert_eq!(s.api.port, 8000);
    assert!(config.notes().is_empty(), "{:?}", config.notes());
    assert!(config.entries().iter().all(|e| e.origin == Origin::Default));
}

/// Each layer beats every layer below it: a table of which layers set MAX_RETRIES and which wins.
#[test]
fn precedence_of_all_five_layers() {
    // (file, .env, env, flag) -> expected value and layer
    let cases: &[([Option<&str>; 4], &str, &str)] = &[
        ([None, None, None, None], "3", "default"),
        ([Some("10"), None, None, None], "10", "file"),
        ([Some("10"), Some("20"), None, None], "20", ".env"),
        ([None, Some("20"), None, None], "20", ".env"),
        ([Some("10"), Some("20"), Some("30"), None], "30", "env"),
        ([Some("10"), None, Some("30"), None], "30", "env"),
        (
            [Some("10"), Some("20"), Some("30"), Some("40")],
            "40",
            "flag",
        ),
        ([None, None, None, Some("40")], "40", "flag"),
        ([Some("10"), None, None, Some("40")], "40", "flag"),
    ];
    for (layers, want, want_layer) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path(), &[]);
        if let Some(v) = layers[0] {
            let path = dir.path().join("conf.toml");
            std::fs::write(&path, format!("max_retries = {v}\n")).unwrap();
            o.config_file = Some(path);
        }
        if let Some(v) = layers[1] {
            let path = dir.path().join("my.env");
            std::fs::write(&path, format!("# comment\nMAX_RETRIES={v}\n")).unwrap();
            o.env_file = EnvFile::Path(path);
        }
        if let Some(v) = layers[2] {
            o.env.insert("MAX_RETRIES".into(), v.to_string());
        }
        if let Some(v) = layers[3] {
            o.overrides.push(("max_retries".into(), v.to_string()));
        }
        let config = Config::load(&o).unwrap_or_else(|e| panic!("{layers:?}: {e}"));
        assert_eq!(
            config.settings().sync.max_retries.to_string(),
            *want,
            "{layers:?}"
        );
        assert_eq!(
            config.origin("MAX_RETRIES").unwrap().layer(),
            *want_layer,
            "{layers:?}"
        );
    }
}

#[test]
fn default_files_are_discovered_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lancesync.toml"), "api_port = 9000\nfrontend_type = \"desktop\"\ns3_backup_enabled = true\ns3_backup_bucket = \"backups\"\n").unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "API_HOST=127.0.0.1\nKUBERNETES_SERVICE_HOST=10.0.0.1\n",
    )
    .unwrap();
    let mut o = opts(dir.path(), &[]);
    o.env_file = EnvFile::Auto;
    let config = Config::load(&o).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.settings().api.port, 9000);
    assert_eq!(config.settings().api.host, "127.0.0.1");
    assert_eq!(
        config.config_file(),
        Some(dir.path().join("lancesync.toml").as_path())
    );
    assert_eq!(config.env_file(), Some(dir.path().join(".env").as_path()));
    // A cloud indicator in .env counts for detection.
    assert_eq!(config.backend().location, BackendLocation::Cloud);
    assert!(
        matches!(&config.origin("API_HOST"), Some(Origin::DotEnv { variable, .. }) if variable == "API_HOST")
    );

    // LANCESYNC_CONFIG names another file, which then replaces the discovered one.
    let other = dir.path().join("other.toml");
    std::fs::write(&other, "api_port = 9100\n").unwrap();
    o.env.insert(
        "LANCESYNC_CONFIG".into(),
        other.to_string_lossy().into_owned(),
    );
    let config = Config::inspect(&o).config;
    assert_eq!(config.settings().api.port, 9100);
    // And --config wins over LANCESYNC_CONFIG.
    o.config_file = Some(dir.path().join("lancesync.toml"));
    assert_eq!(Config::inspect(&o).config.settings().api.port, 9000);
}

#[test]
fn aliases_and_empty_values() {
    let dir = tempfile::tempdir().unwrap();
    // AWS_REGION is read for S3_REGION; S3_REGION beats it within a layer.
    let c = Config::load(&opts(dir.path(), &[("AWS_REGION", "eu-west-1")])).unwrap();
    assert_eq!(c.settings().s3.region, "eu-west-1");
    assert_eq!(
        c.origin("S3_REGION"),
        Some(&Origin::Env {
            variable: "AWS_REGION".into()
        })
    );
    let c = Config::load(&opts(
        dir.path(),
        &[("AWS_REGION", "eu-west-1"), ("S3_REGION", "us-west-2")],
    ))
    .unwrap();
    assert_eq!(c.settings().s3.region, "us-west-2");
    // Empty means not set: the default stays.
    let c = Config::load(&opts(
        dir.path(),
        &[("S3_ENDPOINT", ""), ("MAX_RETRIES", "  ")],
    ))
    .unwrap();
    assert_eq!(c.settings().s3.endpoint, None);
    assert_eq!(c.settings().sync.max_retries, 3);
}

#[test]
fn paths_expand_tilde_and_variables() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("HOME", "/home/ada"),
        ("DATA", "/srv/data"),
        ("LANCEDB_URI", "~/lancedb"),
        ("SYNC_STATE_DIR", "${DATA}/state"),
    ];
    let c = Config::load(&opts(dir.path(), &env)).unwrap();
    assert_eq!(c.settings().lancedb.uri, "/home/ada/lancedb");
    assert_eq!(
        c.settings().monitoring.state_dir,
        Path::new("/srv/data/state")
    );

    // The config file path expands too.
    std::fs::write(dir.path().join("x.toml"), "max_retries = 7\n").unwrap();
    let mut o = opts(dir.path(), &[("CONF_DIR", &dir.path().to_string_lossy())]);
    o.config_file = Some("${CONF_DIR}/x.toml".into());
    assert_eq!(Config::load(&o).unwrap().settings().sync.max_retries, 7);

    // An unset variable is a problem that names it.
    let text = problem_text(&opts(dir.path(), &[("SYNC_STATE_DIR", "${NOPE}/state")]));
    assert!(
        text.contains("SYNC_STATE_DIR=${NOPE}/state") && text.contains("${NOPE} is not set"),
        "{text}"
    );
}

#[test]
fn the_embedding_model_folder_and_provider() {
    use lancesync_config::EmbeddingProvider;
    let dir = tempfile::tempdir().unwrap();
    let model_path = |env: &[(&str, &str)]| {
        Config::load(&opts(dir.path(), env))
            .unwrap()
            .settings()
            .embedding
            .model_path
            .clone()
    };
    let default = "lancesync/models/all-MiniLM-L6-v2";
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Env, Option<String>); 5] = [
        (
            &[("HOME", "/home/ada")],
            Some(format!("/home/ada/.local/share/{default}")),
        ),
        (
            &[("HOME", "/home/ada"), ("XDG_DATA_HOME", "/data")],
            Some(format!("/data/{default}")),
        ),
        // A relative XDG_DATA_HOME is invalid by the XDG rules and ignored.
        (
            &[("HOME", "/home/ada"), ("XDG_DATA_HOME", "data")],
            Some(format!("/home/ada/.local/share/{default}")),
        ),
        (
            &[
                ("HOME", "/home/ada"),
                ("EMBEDDING_MODEL_PATH", "~/models/minilm"),
            ],
            Some("/home/ada/models/minilm".to_string()),
        ),
        (&[], None),
    ];
    for (env, want) in cases {
        assert_eq!(model_path(env), want.map(PathBuf::from), "{env:?}");
    }
    let provider = |value: &str| {
        Config::load(&opts(dir.path(), &[("EMBEDDING_PROVIDER", value)]))
            .unwrap()
            .settings()
            .embedding
            .provider
    };
    assert_eq!(provider("auto"), EmbeddingProvider::Auto);
    assert_eq!(provider("LOCAL"), EmbeddingProvider::Local);
    assert_eq!(provider("builtin"), EmbeddingProvider::Builtin);
    let defaults = Config::load(&opts(dir.path(), &[])).unwrap();
    assert_eq!(
        defaults.settings().embedding.provider,
        EmbeddingProvider::Auto
    );
    assert!(
        problem_text(&opts(dir.path(), &[("EMBEDDING_PROVIDER", "bert")]))
            .contains("EMBEDDING_PROVIDER=bert")
    );
}

#[test]
fn unknown_toml_keys_are_errors_that_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "max_retrys = 5\nlancedb_uri = \"db\"\ntotally_unknown = 1\n[lancedb]\nuri = \"x\"\n",
    )
    .unwrap();
    let mut o = opts(dir.path(), &[]);
    o.config_file = Some(path);
    let text = problem_text(&o);
    assert!(
        text.contains("unknown setting 'max_retrys'") && text.contains("did you mean max_retries"),
        "{text}"
    );
    assert!(text.contains("unknown setting 'totally_unknown'"), "{text}");
    assert!(text.contains("unknown setting 'lancedb'"), "{text}");
    // The known key still applies.
    let c = Config::inspect(&o).config;
    assert!(c.settings().lancedb.uri.ends_with("/db"));
    assert!(matches!(Config::load(&o), Err(Error::Invalid { problems }) if problems.len() == 3));
}

#[test]
fn file_problems_are_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), &[("MAX_RETRIES", "x")]);
    o.config_file = Some(dir.path().join("missing.toml"));
    o.env_file = EnvFile::Path(dir.path().join("missing.env"));
    let text = problem_text(&o);
    assert!(text.contains("missing.toml does not exist"), "{text}");
    assert!(text.contains("missing.env does not exist"), "{text}");
    assert!(
        text.contains("MAX_RETRIES=x is not a whole number"),
        "{text}"
    );

    std::fs::write(dir.path().join("bad.toml"), "max_retries = = 3\n").unwrap();
    std::fs::write(
        dir.path().join("list.toml"),
        "watch = 1\napi_port = [1, 2]\n",
    )
    .unwrap();
    o.config_file = Some(dir.path().join("bad.toml"));
    assert!(problem_text(&o).contains("is not valid TOML"));
    o.config_file = Some(dir.path().join("list.toml"));
    let text = problem_text(&o);
    assert!(
        text.contains("api_port in config file")
            && text.contains("must be a single value, not a array"),
        "{text}"
    );
}

#[test]
fn overrides_with_unknown_keys_are_problems() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), &[]);
    o.overrides.push(("API_PROT".into(), "1".into()));
    let text = problem_text(&o);
    assert!(
        text.contains("unknown setting 'API_PROT' in --set")
            && text.contains("did you mean api_port"),
        "{text}"
    );
}

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

const SECRETS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "AKIAVERYSECRETKEYID"),
    ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMIsupersecret"),
    ("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEsessiontoken"),
];

#[test]
fn secrets_never_appear_in_debug_display_json_or_logs() {
    let dir = tempfile::tempdir().unwrap();
    // From a file, a .env and the environment, with another problem so they go through the
    // problem path too.
    std::fs::write(
        dir.path().join("c.toml"),
        format!(
            "aws_session_token = \"{}\"\nmax_retries = \"x\"\n",
            SECRETS[2].1
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("e.env"),
        format!("AWS_SECRET_ACCESS_KEY={}\n", SECRETS[1].1),
    )
    .unwrap();
    let mut o = opts(dir.path(), &[SECRETS[0]]);
    o.config_file = Some(dir.path().join("c.toml"));
    o.env_file = EnvFile::Path(dir.path().join("e.env"));

    let logs = capture_logs(|| Config::inspect(&o));
    let inspection = Config::inspect(&o);
    let c = &inspection.config;
    // The values are there for the code that needs them...
    assert_eq!(
        c.settings()
            .credentials
            .secret_access_key
            .as_ref()
            .unwrap()
            .expose_secret(),
        SECRETS[1].1
    );
    // ...and nowhere else.
    let outputs = [
        format!("{c:?}"),
        format!("{c}"),
        format!("{:?}", c.settings()),
        format!("{inspection:?}"),
        inspection.explain().to_string(),
        serde_json::to_string(&inspection.explain()).unwrap(),
        problem_text(&o),
        format!("{:?}", Config::load(&o).unwrap_err()),
        logs,
    ];
    for out in &outputs {
        for (_, secret) in SECRETS {
            assert!(!out.contains(secret), "secret leaked in: {out}");
        }
    }
    let shown: BTreeMap<_, _> = c
        .entries()
        .iter()
        .map(|e| (e.name, e.value.clone()))
        .collect();
    for (name, _) in SECRETS {
        assert_eq!(shown[name].as_deref(), Some("****"), "{name}");
    }
}

#[test]
fn a_malformed_secret_is_not_echoed() {
    // A secret in a TOML file given as a list is reported without its content.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "aws_secret_access_key = [\"hunter2hunter2\"]\n",
    )
    .unwrap();
    let mut o = opts(dir.path(), &[]);
    o.config_file = Some(dir.path().join("c.toml"));
    let text = problem_text(&o);
    assert!(
        text.contains("aws_secret_access_key") && !text.contains("hunter2hunter2"),
        "{text}"
    );
}

fn capture_logs<T>(f: impl FnOnce() -> T) -> String {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buf.0.lock().unwrap().clone();
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.contains("configuration problem"),
        "logging was captured: {text}"
    );
    text
}

#[test]
fn templates_list_every_setting_and_load_back_as_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let defaults = Config::load(&opts(dir.path(), &[])).unwrap();
    for (format, file) in [
        (TemplateFormat::Env, "t.env"),
        (TemplateFormat::Toml, "t.toml"),
    ] {
        let text = template(format);
        for spec in lancesync_config::spec::SETTINGS {
            let key = if format == TemplateFormat::Toml {
                spec.toml_key()
            } else {
                spec.name.to_string()
            };
            assert!(
                text.contains(&format!("\n#{key}")),
                "{key} missing from {format:?} template"
            );
        }
        // Commented out, the template changes nothing; uncommented, it sets every default.
        let uncommented: String = text
            .lines()
            .map(|l| {
                if l.starts_with('#') && l[1..].starts_with(|c: char| c.is_ascii_alphabetic()) {
                    &l[1..]
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        for body in [text.clone(), uncommented] {
            let path = dir.path().join(file);
            std::fs::write(&path, &body).unwrap();
            let mut o = opts(dir.path(), &[]);
            match format {
                TemplateFormat::Toml => o.config_file = Some(path),
                _ => o.env_file = EnvFile::Path(path),
            }
            let loaded = Config::load(&o).unwrap_or_else(|e| panic!("{format:?}: {e}"));
            let values = |c: &Config| {
                c.entries()
                    .iter()
                    .map(|e| (e.name, e.value.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(values(&loaded), values(&defaults), "{format:?}");
        }
    }
}

#[test]
fn docs_configuration_md_is_generated_from_the_code() {
    let path = Path::new(&checkout_dir()).join("../../docs/configuration.md");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == template(TemplateFormat::Markdown),
        "docs/configuration.md is out of date: run `cargo run -p sync-cli -- config generate --format markdown --output docs/configuration.md --force`"
    );
}

/// This package's folder in the checkout under test: read when the test runs, since a test
/// binary reused from a shared target directory may have been compiled in another checkout.
fn checkout_dir() -> std::ffi::OsString {
    std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR")
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
