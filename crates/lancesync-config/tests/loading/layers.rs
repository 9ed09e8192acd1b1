//! The five layers, their precedence, discovery, aliases, paths and unknown keys.

use super::*;

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
    // The hybrid search's vector weight: auto (the embedder's own) unless set.
    let weight = |env: &[(&str, &str)]| {
        Config::load(&opts(dir.path(), env))
            .unwrap()
            .settings()
            .embedding
            .search_vector_weight
    };
    assert_eq!(weight(&[]), None);
    assert_eq!(weight(&[("SEARCH_VECTOR_WEIGHT", "auto")]), None);
    assert_eq!(weight(&[("SEARCH_VECTOR_WEIGHT", "0.4")]), Some(0.4));
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
