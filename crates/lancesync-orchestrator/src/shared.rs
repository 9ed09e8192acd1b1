//! With a coordinator (`COORDINATOR_URL`): the source registry every instance shares.
//!
//! Each instance keeps its users' `sources.toml` files as before, and schedules from them; the
//! coordinator holds one row per source. A change made through any instance (add, change,
//! remove) is written to the local file, then published; every instance asks for what changed
//! every [`PULL_EVERY`], writes the changed users' files from the shared rows, and brings
//! their schedules in line (new sources scheduled, removed ones unscheduled, changed ones
//! rescheduled with their run history kept). At start, entries an instance has that the
//! cluster never had (it ran alone before) are published first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lancesync_coordinator::{SharedCoordinator, SharedSource};
use lancesync_sources::{SourceSpec, StoredSource};

use crate::registry::SourceKey;
use crate::scheduler::RunState;
use crate::{Error, Orchestrator, Result};

/// How often an instance asks for changes of the shared registry.
pub(crate) const PULL_EVERY: Duration = Duration::from_secs(2);

/// What this instance has seen of the shared registry.
#[derive(Debug, Default)]
pub(crate) struct SharedRegistry {
    /// The newest version seen.
    seen: i64,
    /// Every (user, source) seen, live or removed.
    rows: BTreeMap<(String, String), SharedSource>,
    /// Users whose schedules could not follow yet (a run of a changed source was in
    /// progress): tried again at the next pull.
    behind: BTreeSet<String>,
}

pub(crate) fn coordinator_error(e: lancesync_coordinator::Error) -> Error {
    Error::Engine(lancesync_engine::Error::Coordinator(e))
}

fn entry_text(stored: &StoredSource) -> Result<String> {
    toml::to_string(stored).map_err(|e| Error::Invalid(format!("source {}: {e}", stored.id)))
}

impl Orchestrator {
    pub(crate) fn coordinator(&self) -> Option<SharedCoordinator> {
        self.inner.engine.coordinator().cloned()
    }

    /// Join the shared registry at start: publish the entries the cluster never had, then
    /// write every user's file from the cluster's rows.
    pub(crate) async fn join_shared_registry(&self) -> Result<()> {
        let Some(coordinator) = self.coordinator() else {
            return Ok(());
        };
        let known: BTreeSet<(String, String)> = coordinator
            .sources_since(0)
            .await
            .map_err(coordinator_error)?
            .into_iter()
            .map(|s| (s.user_id, s.source_id))
            .collect();
        let mut adopted = 0;
        for user in self.users_with_sources() {
            for stored in self.registry(&user)?.stored()? {
                if !known.contains(&(user.clone(), stored.id.clone())) {
                    coordinator
                        .publish_source(&user, &stored.id, Some(&entry_text(&stored)?))
                        .await
                        .map_err(coordinator_error)?;
                    adopted += 1;
                }
            }
        }
        let users = self.pull_shared_registry().await?;
        tracing::info!(
            adopted,
            users = users.len(),
            "joined the shared source registry"
        );
        Ok(())
    }

    /// Share the user's entry `source_id` (`None`: its removal) before the local file takes
    /// it, so that no pull in between can take it back (callers hold
    /// `registry_gate`). Nothing without a coordinator.
    pub(crate) async fn publish_entry(
        &self,
        user_id: &str,
        source_id: &str,
        stored: Option<StoredSource>,
    ) -> Result<()> {
        let Some(coordinator) = self.coordinator() else {
            return Ok(());
        };
        let entry = stored.as_ref().map(entry_text).transpose()?;
        coordinator
            .publish_source(user_id, source_id, entry.as_deref())
            .await
            .map_err(coordinator_error)?;
        Ok(())
    }

    /// Apply what changed in the shared registry since the last look; returns the users whose
    /// files were written.
    pub(crate) async fn pull_shared_registry(&self) -> Result<BTreeSet<String>> {
        let Some(coordinator) = self.coordinator() else {
            return Ok(BTreeSet::new());
        };
        // Local changes publish and write their file under the same gate: a pull never sees
        // a file that holds a change not yet shared.
        let _one_at_a_time = self.inner.registry_gate.lock().await;
        let since = self.inner.shared.lock().expect("lock").seen;
        let changes = coordinator
            .sources_since(since)
            .await
            .map_err(coordinator_error)?;
        let (users, behind) = {
            let mut shared = self.inner.shared.lock().expect("lock");
            let mut users = BTreeSet::new();
            for change in changes {
                shared.seen = shared.seen.max(change.version);
                users.insert(change.user_id.clone());
                shared
                    .rows
                    .insert((change.user_id.clone(), change.source_id.clone()), change);
            }
            (users, std::mem::take(&mut shared.behind))
        };
        for user in &users {
            self.write_shared_file(user)?;
        }
        for user in users.union(&behind) {
            if !self.follow_registry(user)? {
                self.inner
                    .shared
                    .lock()
                    .expect("lock")
                    .behind
                    .insert(user.clone());
            }
        }
        Ok(users)
    }

    /// Write `user_id`'s sources file from the shared rows, in the order the sources were
    /// added. An entry that does not parse is kept out and logged.
    fn write_shared_file(&self, user_id: &str) -> Result<()> {
        let mut rows: Vec<SharedSource> = {
            let shared = self.inner.shared.lock().expect("lock");
            shared
                .rows
                .values()
                .filter(|r| r.user_id == user_id && r.entry.is_some())
                .cloned()
                .collect()
        };
        rows.sort_by_key(|r| r.added);
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            match toml::from_str::<StoredSource>(row.entry.as_deref().unwrap_or_default()) {
                Ok(stored) => entries.push(stored),
                Err(e) => tracing::error!(
                    user = %user_id, source = %row.source_id, error = %e,
                    "a shared source entry does not parse; left out"
                ),
            }
        }
        self.registry(user_id)?.store(entries)?;
        Ok(())
    }

    /// Bring `user_id`'s schedules in line with its sources file. `false` when a source that
    /// changed or went is running: its schedule follows once the run ends.
    fn follow_registry(&self, user_id: &str) -> Result<bool> {
        let wanted: BTreeMap<String, SourceSpec> = self
            .registry(user_id)?
            .load()?
            .sources
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
        let current: Vec<(SourceKey, SourceSpec, Arc<Mutex<RunState>>)> = {
            let sources = self.inner.sources.lock().expect("lock");
            sources
                .iter()
                .filter(|(k, _)| k.user_id == user_id)
                .map(|(k, s)| (k.clone(), s.spec.clone(), Arc::clone(&s.state)))
                .collect()
        };
        let mut complete = true;
        for (key, spec, state) in &current {
            let change = match wanted.get(&key.source_id) {
                Some(w) if w == spec => continue,
                other => other,
            };
            if state.lock().expect("lock").running {
                complete = false;
                continue;
            }
            let old = self.inner.sources.lock().expect("lock").remove(key);
            drop(old);
            match change {
                None => {
                    tracing::info!(user = %user_id, source = %key.source_id, "source removed through another instance")
                }
                Some(spec) => match spec.build(&self.inner.env) {
                    Ok(source) => {
                        self.schedule_with(user_id, spec.clone(), source, Arc::clone(state));
                        tracing::info!(user = %user_id, source = %key.source_id, "source changed through another instance");
                    }
                    Err(e) => {
                        tracing::error!(user = %user_id, source = %key.source_id, error = %e, "a changed source does not build here; unscheduled")
                    }
                },
            }
        }
        for (id, spec) in wanted {
            if current.iter().any(|(k, _, _)| k.source_id == id) {
                continue;
            }
            match spec.build(&self.inner.env) {
                Ok(source) => {
                    self.schedule(user_id, spec, source);
                    tracing::info!(user = %user_id, source = %id, "source added through another instance");
                }
                Err(e) => {
                    tracing::error!(user = %user_id, source = %id, error = %e, "a shared source does not build here; skipped")
                }
            }
        }
        Ok(complete)
    }

    /// The loop that follows the shared registry, when there is a coordinator.
    pub(crate) fn spawn_registry_pull(&self) -> Option<tokio::task::JoinHandle<()>> {
        self.coordinator()?;
        let this = self.clone();
        Some(tokio::spawn(async move {
            let mut shutdown = this.inner.shutdown.subscribe();
            loop {
                tokio::select! {
                    () = tokio::time::sleep(PULL_EVERY) => {}
                    _ = shutdown.changed() => return,
                }
                if let Err(e) = this.pull_shared_registry().await {
                    tracing::warn!(error = %e, "could not follow the shared source registry; trying again");
                }
            }
        }))
    }
}
