//! lancesync keeps a per-user LanceDB index true to users' documents, incrementally and safely.
//!
//! This facade is what an application embeds; each part is also its own crate.
//!
//! ```
//! use lancesync::config::{Config, LoadOptions, StorageMode};
//!
//! let config = Config::load(&LoadOptions::from_env_map([("FRONTEND_TYPE", "desktop")], "/srv/app"))?;
//! assert_eq!(config.storage_mode(), StorageMode::LocalOnly);
//! # Ok::<(), lancesync::config::Error>(())
//! ```

pub use lancesync_config as config;
pub use lancesync_engine as engine;
pub use lancesync_ingest as ingest;
pub use lancesync_sources as sources;
