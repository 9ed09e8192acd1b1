//! The persisted sources of every user: loading them at start, adding and removing them, and
//! what the orchestrator tells of each.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use lancesync_engine::{SyncReport, ids};
use lancesync_sources::{SourceRegistry, SourceSpec};
use serde::Serialize;

use crate::scheduler::Scheduled;
use crate::{Error, MANUAL, Orchestrator, Result, UPLOADS};

/// A source's place: user and source id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SourceKey {
    /// User.
    pub user_id: String,
    /// Source id, unique per user.
    pub source_id: String,
}

/// A check a change must pass before it is made (who may set what), by the caller's rules.
pub type SourceCheck = Box<dyn Fn(&SourceSpec) -> Result<()> + Send + Sync>;

/// What to change of a source; `None` keeps it.
#[derive(Default)]
pub struct SourceChange {
    /// Scheduled or not.
    pub enabled: Option<bool>,
    /// Seconds between runs; 0 means DEFAULT_POLL_INTERVAL.
    pub poll_interval: Option<u64>,
    /// The type's settings, whole: what they leave out takes the type's default, except
    /// credentials, which keep their stored values (they are never shown back, so a caller
    /// cannot send them again).
    pub settings: Option<toml::Table>,
    /// Checked on the changed source before anything is written, when `settings` are given.
    pub check: Option<SourceCheck>,
}

impl std::fmt::Debug for SourceChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceChange")
            .field("enabled", &self.enabled)
            .field("poll_interval", &self.poll_interval)
            .field("settings", &self.settings.as_ref().map(|_| "(hidden)"))
            .finish_non_exhaustive()
    }
}

/// What the orchestrator knows of one source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceInfo {
    /// User.
    pub user_id: String,
    /// Source id, unique per user.
    pub source_id: String,
    /// Source type.
    pub source_type: String,
    /// Scheduled.
    pub enabled: bool,
    /// The type's settings, as persisted.
    pub config: toml::Table,
    /// Seconds between scheduled runs.
    pub poll_interval_seconds: u64,
    /// A run is in progress (with a coordinator: on any instance).
    pub running: bool,
    /// With a coordinator: the instance running it, when another instance does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_on: Option<String>,
    /// A scheduled run is waiting for the pipeline to start again.
    pub pending: bool,
    /// Runs since the orchestrator started (with a coordinator: the cluster's runs of it).
    pub runs: u64,
    /// The last finished run's report.
    pub last_report: Option<SyncReport>,
    /// The last run's error, if it failed as a whole.
    pub last_error: Option<String>,
    /// RFC 3339 time of the last finished run.
    pub last_run_at: Option<String>,
    /// RFC 3339 time of the next scheduled run, while the schedule waits for it (none for a
    /// disabled source, or while a run is due or in progress).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run_at: Option<String>,
    /// The run in progress, when there is one: documents looked at so far, and of how many
    /// once the source is listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<RunProgress>,
}

/// How far a run in progress is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RunProgress {
    /// Documents looked at.
    pub done: usize,
    /// Documents to look at, once listed.
    pub total: Option<usize>,
}

impl Orchestrator {
    pub(crate) fn state_dir(&self) -> PathBuf {
        self.inner.settings.monitoring.state_dir.join("users")
    }

    pub(crate) fn registry(&self, user_id: &str) -> Result<SourceRegistry> {
        ids::validate_user_id(user_id)?;
        Ok(SourceRegistry::at(
            self.state_dir().join(user_id).join("sources.toml"),
        ))
    }

    /// Load every user's persisted sources and schedule them (they run once the pipeline is
    /// started). Returns how many sources were loaded. With a coordinator, the registry
    /// shared by the instances is joined first, and followed from then on. A source that no longer checks or
    /// builds (its entry names an unknown type or key, say) is logged and skipped, not fatal,
    /// and stays in the user's sources file.
    pub async fn initialize(&self) -> Result<usize> {
        // With a coordinator, the users' files are the cluster's first, and jobs are shared.
        self.join_shared_registry().await?;
        if let Some(coordinator) = self.coordinator() {
            self.inner.jobs.share(coordinator);
        }
        let users = self.users_with_sources();
        let mut loaded = 0;
        for user in users {
            let entries = self.registry(&user)?.load()?;
            for (stored, e) in entries.invalid {
                tracing::error!(user = %user, source = %stored.id, error = %e, "source skipped");
            }
            for spec in entries.sources {
                match spec.build(&self.inner.env) {
                    Ok(source) => {
                        self.schedule(&user, spec, source);
                        loaded += 1;
                    }
                    Err(e) => {
                        tracing::error!(user = %user, source = %spec.id, error = %e, "source skipped")
                    }
                }
            }
        }
        self.spawn_background();
        tracing::info!(sources = loaded, "orchestrator initialized");
        Ok(loaded)
    }

    pub(crate) fn users_with_sources(&self) -> Vec<String> {
        let mut users = Vec::new();
        if let Ok(dir) = std::fs::read_dir(self.state_dir()) {
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if ids::validate_user_id(&name).is_ok()
                    && entry.path().join("sources.toml").is_file()
                {
                    users.push(name);
                }
            }
        }
        users.sort();
        users
    }

    /// Users known to the orchestrator: with a source, or with an index.
    pub fn users(&self) -> BTreeSet<String> {
        let mut users: BTreeSet<String> = self.users_with_sources().into_iter().collect();
        if let Ok(dir) = std::fs::read_dir(self.inner.engine.config().base_dir.join("users")) {
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if ids::validate_user_id(&name).is_ok() && entry.path().is_dir() {
                    users.insert(name);
                }
            }
        }
        users
    }

    /// Every source (of one user, or of all).
    pub fn sources(&self, user_id: Option<&str>) -> Vec<SourceInfo> {
        let sources = self.inner.sources.lock().expect("lock");
        sources
            .iter()
            .filter(|(k, _)| user_id.is_none_or(|u| k.user_id == u))
            .map(|(k, s)| self.info(k, s))
            .collect()
    }

    /// One source, by type and id.
    pub fn source(&self, user_id: &str, source_type: &str, source_id: &str) -> Result<SourceInfo> {
        let sources = self.inner.sources.lock().expect("lock");
        let key = SourceKey {
            user_id: user_id.into(),
            source_id: source_id.into(),
        };
        match sources.get(&key) {
            Some(s) if s.spec.source_type().as_str() == source_type => Ok(self.info(&key, s)),
            _ => Err(Error::NotFound {
                user_id: user_id.into(),
                source_type: source_type.into(),
                source_id: source_id.into(),
            }),
        }
    }

    pub(crate) fn info(&self, key: &SourceKey, s: &Scheduled) -> SourceInfo {
        let state = s.state.lock().expect("lock");
        SourceInfo {
            user_id: key.user_id.clone(),
            source_id: s.spec.id.clone(),
            source_type: s.spec.source_type().as_str().into(),
            enabled: s.spec.enabled,
            config: s.spec.redacted_config(),
            poll_interval_seconds: self.poll_interval(&s.spec).as_secs(),
            running: state.running || state.running_on.is_some(),
            running_on: state.running_on.clone().filter(|_| !state.running),
            pending: state.pending,
            runs: state.runs,
            last_report: state.last_report.clone(),
            last_error: state.last_error.clone(),
            last_run_at: state.last_run_at.clone(),
            next_run_at: state
                .next_run
                .filter(|_| s.spec.enabled)
                .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            progress: state.running.then_some(RunProgress {
                done: state.done,
                total: state.total,
            }),
        }
    }

    pub(crate) fn poll_interval(&self, spec: &SourceSpec) -> Duration {
        spec.poll_interval
            .map(Duration::from_secs)
            .unwrap_or(self.inner.settings.monitoring.default_poll_interval)
            .max(Duration::from_secs(1))
    }

    /// Add a source for a user: validated, persisted, scheduled at once. `enabled: None`
    /// takes SYNC_ENABLED_BY_DEFAULT.
    /// With a coordinator, the source is shared with every instance first.
    pub async fn add_source(&self, user_id: &str, mut spec: SourceSpec) -> Result<SourceInfo> {
        if *self.inner.shutdown.borrow() {
            return Err(Error::ShuttingDown);
        }
        ids::validate_source_id(&spec.id)?;
        if spec.id == UPLOADS || spec.id == MANUAL || spec.id == lancesync_engine::MIGRATED_SOURCE {
            return Err(Error::Conflict(format!(
                "the source ids {UPLOADS:?}, {MANUAL:?} and {:?} are reserved for documents sent to the API or migrated; pick another",
                lancesync_engine::MIGRATED_SOURCE
            )));
        }
        let registry = self.registry(user_id)?;
        let _edit = self.inner.registry_gate.lock().await;
        if registry.contains(&spec.id)? {
            return Err(Error::Conflict(format!(
                "user {user_id} has a source {:?} already; delete it first or pick another id",
                spec.id
            )));
        }
        let source = spec
            .build(&self.inner.env)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        if spec.poll_interval == Some(0) {
            spec.poll_interval = None;
        }
        self.publish_entry(user_id, &spec.id, Some(spec.clone().into()))
            .await?;
        registry.add(spec.clone(), &self.inner.env)?;
        let key = self.schedule(user_id, spec, source);
        tracing::info!(user = %key.user_id, source = %key.source_id, "source added");
        let sources = self.inner.sources.lock().expect("lock");
        Ok(self.info(&key, &sources[&key]))
    }

    /// Change a source: its schedule, its poll interval, its settings. The change is checked
    /// as an added source is (the settings must build), persisted, and the source rescheduled
    /// with its run history kept. New settings make the next run list the source in full (its
    /// change cursor is forgotten). Refused while a run of the source is in progress.
    pub async fn update_source(
        &self,
        user_id: &str,
        source_type: &str,
        source_id: &str,
        change: SourceChange,
    ) -> Result<SourceInfo> {
        if *self.inner.shutdown.borrow() {
            return Err(Error::ShuttingDown);
        }
        self.source(user_id, source_type, source_id)?;
        let registry = self.registry(user_id)?;
        let stored = registry.get(source_id)?.ok_or_else(|| Error::NotFound {
            user_id: user_id.into(),
            source_type: source_type.into(),
            source_id: source_id.into(),
        })?;
        let settings_changed = change.settings.is_some();
        let mut spec = match change.settings {
            None => stored.clone(),
            Some(mut table) => {
                // Credentials are what redaction hides.
                let shown = stored.redacted_config();
                for (key, value) in stored.config.to_table() {
                    if !table.contains_key(&key) && shown.get(&key) != Some(&value) {
                        table.insert(key, value);
                    }
                }
                let mut spec = SourceSpec::from_table(source_id, source_type, table)
                    .map_err(|e| Error::Invalid(e.to_string()))?;
                spec.enabled = stored.enabled;
                spec.poll_interval = stored.poll_interval;
                spec
            }
        };
        if let Some(enabled) = change.enabled {
            spec.enabled = enabled;
        }
        if let Some(seconds) = change.poll_interval {
            spec.poll_interval = (seconds > 0).then_some(seconds);
        }
        // Only settings a caller sends are the caller's: a user may pause or reschedule a
        // source the admin set up with settings only the admin may set.
        if settings_changed && let Some(check) = change.check {
            check(&spec)?;
        }
        let source = spec
            .build(&self.inner.env)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let key = SourceKey {
            user_id: user_id.into(),
            source_id: source_id.into(),
        };
        let state = {
            let sources = self.inner.sources.lock().expect("lock");
            let scheduled = sources.get(&key).ok_or_else(|| Error::NotFound {
                user_id: user_id.into(),
                source_type: source_type.into(),
                source_id: source_id.into(),
            })?;
            if scheduled.state.lock().expect("lock").running {
                return Err(Error::Conflict(format!(
                    "a run of {source_id} is in progress; change the source once it has finished"
                )));
            }
            scheduled.state.clone()
        };
        {
            let _edit = self.inner.registry_gate.lock().await;
            self.publish_entry(user_id, source_id, Some(spec.clone().into()))
                .await?;
            registry.replace(spec.clone(), &self.inner.env)?;
        }
        if settings_changed && spec.config != stored.config {
            self.inner.engine.forget_cursor(user_id, source_id).await?;
        }
        // The old schedule goes (its task is aborted on drop) and the new one starts.
        let old = self.inner.sources.lock().expect("lock").remove(&key);
        drop(old);
        let key = self.schedule_with(user_id, spec, source, state);
        tracing::info!(user = %key.user_id, source = %key.source_id, "source changed");
        let sources = self.inner.sources.lock().expect("lock");
        Ok(self.info(&key, &sources[&key]))
    }

    /// Remove a source: unscheduled, forgotten, and its documents removed from the user's
    /// index. Returns how many documents were removed.
    pub async fn remove_source(
        &self,
        user_id: &str,
        source_type: &str,
        source_id: &str,
    ) -> Result<usize> {
        self.source(user_id, source_type, source_id)?;
        let key = SourceKey {
            user_id: user_id.into(),
            source_id: source_id.into(),
        };
        // Unschedule first, so no new run starts; a run in progress is waited for by the
        // engine's per-source lock below.
        let removed = self.inner.sources.lock().expect("lock").remove(&key);
        drop(removed);
        {
            let _edit = self.inner.registry_gate.lock().await;
            self.publish_entry(user_id, source_id, None).await?;
            self.registry(user_id)?.remove(source_id)?;
        }
        let mut attempts = 0;
        let documents = loop {
            match self
                .inner
                .engine
                .remove_source_documents(user_id, source_id)
                .await
            {
                Err(
                    lancesync_engine::Error::Busy { .. }
                    | lancesync_engine::Error::Reindexing { .. },
                ) if attempts < 600 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => break other?,
            }
        };
        tracing::info!(user = %user_id, source = %source_id, documents, "source removed");
        Ok(documents)
    }
}
