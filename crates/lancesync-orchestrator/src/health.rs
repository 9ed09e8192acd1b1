//! Health checks of the local database, S3 and each source.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

/// healthy, degraded (serving, but something needs attention) or unhealthy (cannot serve).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Everything works.
    Healthy,
    /// Serving, with a part that needs attention (a source folder gone, a failing run).
    Degraded,
    /// Cannot serve (the database cannot be written).
    Unhealthy,
}

/// The check of one component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentHealth {
    /// Its status.
    pub status: HealthStatus,
    /// What was found, for people.
    pub message: String,
}

impl ComponentHealth {
    pub(crate) fn ok(message: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Healthy,
            message: message.into(),
        }
    }
    pub(crate) fn degraded(message: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Degraded,
            message: message.into(),
        }
    }
    pub(crate) fn unhealthy(message: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Unhealthy,
            message: message.into(),
        }
    }
}

/// The whole picture.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// The worst component status.
    pub status: HealthStatus,
    /// One check per component: `database`, `s3`, `pipeline`, `source:{user}/{id}`.
    pub components: BTreeMap<String, ComponentHealth>,
    /// This build's version.
    pub version: String,
    /// Seconds since the orchestrator was created.
    pub uptime_seconds: u64,
    /// Users with at least one source or an index.
    pub users: usize,
    /// RFC 3339 time of the check.
    pub checked_at: String,
}

/// Whether the database directory can be written: create it if needed, write and remove a
/// probe file.
pub(crate) async fn check_database(base: &Path) -> ComponentHealth {
    if let Err(e) = tokio::fs::create_dir_all(base).await {
        return ComponentHealth::unhealthy(format!("cannot create {}: {e}", base.display()));
    }
    let probe = base.join(format!(".health-{}", std::process::id()));
    match tokio::fs::write(&probe, b"ok").await {
        Ok(()) => {
            let _ = tokio::fs::remove_file(&probe).await;
            ComponentHealth::ok(format!("{} is writable", base.display()))
        }
        Err(e) => ComponentHealth::unhealthy(format!("cannot write in {}: {e}", base.display())),
    }
}

/// Whether every folder a source reads exists and can be listed.
pub(crate) async fn check_roots(roots: &[std::path::PathBuf]) -> ComponentHealth {
    let mut missing = Vec::new();
    for root in roots {
        if let Err(e) = tokio::fs::read_dir(root).await {
            missing.push(format!("{}: {e}", root.display()));
        }
    }
    if missing.is_empty() {
        ComponentHealth::ok(format!("{} folder(s) readable", roots.len()))
    } else {
        ComponentHealth::degraded(format!(
            "cannot read {} (nothing under it is deleted until it is back)",
            missing.join("; ")
        ))
    }
}
