//! Health checks of the local database, S3 and each source.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;

use crate::{Orchestrator, SourceKey};

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
    /// One check per component: `database`, `s3`, `coordinator` (with `COORDINATOR_URL`),
    /// `pipeline`, `source:{user}/{id}`.
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

/// The coordinator of instances: reachable or not, this instance's name, the users it holds,
/// and the sources due cluster-wide (`due`).
pub(crate) fn coordinator_health(
    status: &lancesync_coordinator::CoordinatorStatus,
    due: Option<usize>,
) -> ComponentHealth {
    let held = if status.users_held.is_empty() {
        "no user held".to_string()
    } else {
        // Which users stays out too: health is read without a token.
        format!("holding {} user(s)", status.users_held.len())
    };
    let contact = status.last_contact_ms.map_or_else(
        || "never answered".to_string(),
        |ms| format!("last answer {ms} ms ago"),
    );
    let queue = due.map_or_else(String::new, |n| format!("; {n} source(s) due cluster-wide"));
    // The coordinator's address stays out: health is read by probes without a token.
    if status.reachable {
        ComponentHealth::ok(format!(
            "instance {}: {contact}; {held}{queue}",
            status.instance_id
        ))
    } else {
        ComponentHealth::unhealthy(format!(
            "instance {} cannot reach the coordinator ({contact}): it writes nothing, and other instances take its users over",
            status.instance_id
        ))
    }
}

impl Orchestrator {
    /// Whether the database folder can be written: what a readiness probe asks, without the
    /// rest of [`health`](Self::health) (no S3 request).
    pub async fn database_health(&self) -> ComponentHealth {
        check_database(&self.inner.engine.config().base_dir).await
    }

    /// Check the database, S3 and every source now.
    pub async fn health(&self) -> Health {
        let mut components = BTreeMap::new();
        components.insert(
            "database".to_string(),
            check_database(&self.inner.engine.config().base_dir).await,
        );
        components.insert("s3".to_string(), self.s3_health().await);
        if let Some(coordinator) = self.inner.engine.coordinator() {
            components.insert(
                "coordinator".to_string(),
                coordinator_health(&coordinator.status(), self.cluster_queue_depth()),
            );
        }
        components.insert(
            "pipeline".to_string(),
            if self.is_running() {
                ComponentHealth::ok("started")
            } else {
                ComponentHealth::degraded("stopped: scheduled runs wait until it is started")
            },
        );
        let sources: Vec<(SourceKey, Vec<PathBuf>, Option<String>)> = {
            let sources = self.inner.sources.lock().expect("lock");
            sources
                .iter()
                .map(|(k, s)| {
                    (
                        k.clone(),
                        s.source.watch_roots(),
                        s.state.lock().expect("lock").last_error.clone(),
                    )
                })
                .collect()
        };
        for (key, roots, last_error) in sources {
            let mut check = check_roots(&roots).await;
            if check.status == HealthStatus::Healthy
                && let Some(e) = last_error
            {
                check = ComponentHealth::degraded(format!("last run failed: {e}"));
            }
            components.insert(format!("source:{}/{}", key.user_id, key.source_id), check);
        }
        let status = components
            .values()
            .map(|c| c.status)
            .max()
            .unwrap_or(HealthStatus::Healthy);
        Health {
            status,
            components,
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.inner.started.elapsed().as_secs(),
            users: self.users().len(),
            checked_at: lancesync_engine::now_rfc3339(),
        }
    }

    /// S3: whether it answers, and the backlog of copies waiting for it.
    pub(crate) async fn s3_health(&self) -> ComponentHealth {
        let storage = self.inner.engine.storage();
        let Some(target) = storage.remote() else {
            return ComponentHealth::ok("not configured (local_only)");
        };
        if let Err(e) = storage.probe().await {
            // Local-primary modes keep serving from local disk; S3-primary ones cannot.
            return if storage.mode().s3_is_primary() {
                ComponentHealth::unhealthy(e.to_string())
            } else {
                ComponentHealth::degraded(format!("{e}; copies are queued until S3 answers"))
            };
        }
        let conflicts = storage.conflicts();
        if !conflicts.is_empty() {
            return ComponentHealth::degraded(format!(
                "{} answers; {} user(s) have a multi-device conflict (see /api/v1/storage/status)",
                target.describe(),
                conflicts.len()
            ));
        }
        let backlog = storage.backlog();
        if backlog.is_empty() {
            ComponentHealth::ok(format!(
                "{} answers ({})",
                target.describe(),
                storage.mode()
            ))
        } else {
            // A count only: /health names no user (who waits is in /api/v1/storage/status).
            ComponentHealth::degraded(format!(
                "{} answers; {} user(s) have changes waiting to be copied",
                target.describe(),
                backlog.len()
            ))
        }
    }

    /// Log the health status whenever it changes, every `HEALTH_CHECK_INTERVAL`.
    pub(crate) fn spawn_health_log(&self) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let every = this
                .inner
                .settings
                .monitoring
                .health_check_interval
                .max(Duration::from_secs(1));
            let mut last = None;
            let mut shutdown = this.inner.shutdown.subscribe();
            loop {
                let h = this.health().await;
                if last != Some(h.status) {
                    let bad: Vec<String> = h
                        .components
                        .iter()
                        .filter(|(_, c)| c.status != HealthStatus::Healthy)
                        .map(|(n, c)| format!("{n}: {}", c.message))
                        .collect();
                    tracing::info!(status = ?h.status, problems = ?bad, "health");
                    last = Some(h.status);
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = shutdown.changed() => return,
                }
            }
        })
    }
}
