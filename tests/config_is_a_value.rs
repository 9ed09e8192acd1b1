//! Configuration is a value passed in, never process-global state: loads with different
//! environments, at the same time in one process, do not see each other.
//! Run: cargo test -p lancesync --test config_is_a_value

use std::thread;

use lancesync::config::{BackendLocation, Config, LoadOptions, StorageMode};

#[test]
fn concurrent_loads_with_different_environments_stay_apart() {
    let handles: Vec<_> = (0..16)
        .map(|i| {
            thread::spawn(move || {
                let retries = i.to_string();
                let mut env = vec![
                    ("MAX_RETRIES", retries.as_str()),
                    ("FRONTEND_TYPE", "desktop"),
                ];
                if i % 2 == 0 {
                    env.push(("KUBERNETES_SERVICE_HOST", "10.0.0.1"));
                    env.push(("S3_BACKUP_ENABLED", "true"));
                    env.push(("S3_BACKUP_BUCKET", "backups"));
                }
                let dir = format!("/srv/tenant-{i}");
                let config = Config::load(&LoadOptions::from_env_map(env, &dir)).unwrap();
                (i, config)
            })
        })
        .collect();
    for handle in handles {
        let (i, config) = handle.join().unwrap();
        assert_eq!(config.settings().sync.max_retries, i);
        assert_eq!(
            config.settings().lancedb.uri,
            format!("/srv/tenant-{i}/data/lancedb")
        );
        let (location, mode) = if i % 2 == 0 {
            (BackendLocation::Cloud, StorageMode::LocalPrimaryS3Backup)
        } else {
            (BackendLocation::Local, StorageMode::LocalOnly)
        };
        assert_eq!(
            (config.backend().location, config.storage_mode()),
            (location, mode),
            "tenant {i}"
        );
    }
}

#[test]
fn the_process_environment_is_not_read_unless_asked() {
    // This process may have any variables set; a map-built load must not see them.
    let config = Config::load(&LoadOptions::from_env_map([("API_PORT", "1234")], "/x")).unwrap();
    assert_eq!(config.settings().api.port, 1234);
    assert_eq!(config.backend().location, BackendLocation::Local);
    assert!(
        config
            .entries()
            .iter()
            .filter(|e| e.name != "API_PORT")
            .all(|e| e.origin.layer() == "default")
    );
}
