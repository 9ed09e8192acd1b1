//! What the orchestrator's tests share: settings over temp folders, an engine from them, and
//! folders of notes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lancesync_config::{Config, EnvFile, LoadOptions};
use lancesync_engine::{Engine, EngineConfig, embedder_from_settings};

/// The configuration of an instance whose tables are in `work/db` and whose state is in
/// `work/{state}`, with `extra` settings.
pub fn config(work: &Path, state: &str, extra: &[(&str, &str)]) -> Config {
    let mut env = BTreeMap::new();
    env.insert("HOME".to_string(), work.display().to_string());
    env.insert("LANCEDB_URI".into(), work.join("db").display().to_string());
    env.insert(
        "SYNC_STATE_DIR".into(),
        work.join(state).display().to_string(),
    );
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    let opts = LoadOptions {
        env,
        config_file: None,
        env_file: EnvFile::Disabled,
        overrides: Vec::new(),
        working_dir: work.to_path_buf(),
    };
    Config::load(&opts).expect("valid test configuration")
}

/// An engine configured by `settings`.
pub fn engine(settings: &lancesync_config::Settings) -> Engine {
    Engine::new(
        EngineConfig::from_settings(settings),
        embedder_from_settings(settings).unwrap(),
    )
    .unwrap()
}

/// A folder `work/name` of `files` small notes.
pub fn folder(work: &Path, name: &str, files: usize) -> PathBuf {
    let dir = work.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..files {
        std::fs::write(
            dir.join(format!("note-{i}.md")),
            format!("# Note {i}\n\nabout gardens and tomatoes, number {i}"),
        )
        .unwrap();
    }
    dir
}
