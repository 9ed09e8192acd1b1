//! What a write to a user's tables holds while it writes: the user's writes lock on this
//! machine (refused during a re-index), and, with a coordinator of several instances
//! (`COORDINATOR_URL`), the user cluster-wide.
//!
//! A user taken over from an instance that died or was cut off mid-write is repaired before
//! anything else writes it: chunks whose document row was never written are removed (the
//! orphan sweep a run's marker file triggers on one machine; the marker is on the other
//! machine's disk).

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use lancesync_coordinator::{SharedCoordinator, UserHold};

use crate::lock::FileLock;
use crate::tables::UserTables;
use crate::{Engine, Result, lock_std, reindex};

/// Held while writing a user's tables; see the module's documentation.
#[derive(Debug)]
pub(crate) struct Writing {
    _local: Option<FileLock>,
    cluster: Option<UserHold>,
}

impl Writing {
    /// Run `work`, stopped (with [`crate::Error::Coordinator`]) as soon as this instance
    /// loses the user cluster-wide, so that it commits nothing after another instance may
    /// have started.
    pub(crate) async fn fenced<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        match &self.cluster {
            None => work.await,
            Some(hold) => hold.fenced(work).await?,
        }
    }
}

/// The engine's part of coordinating instances.
#[derive(Debug, Default)]
pub(crate) struct Coordinated {
    pub(crate) coordinator: Option<SharedCoordinator>,
    /// One taking of a user's hold (and its repair) at a time in this process, so that no
    /// write of the user starts before a taken-over user is repaired.
    gates: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Users taken over whose repair has not succeeded yet, with the taking's id.
    repair_pending: std::sync::Mutex<HashMap<String, u64>>,
    /// The last taking over of each user that was repaired: every hold of the user shares
    /// its id until the user is given back, and one repair is enough.
    repaired: std::sync::Mutex<HashMap<String, u64>>,
}

impl Coordinated {
    fn gate(&self, user_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock_std(&self.gates)
            .entry(user_id.to_string())
            .or_default()
            .clone()
    }
}

impl Engine {
    /// Hold what writing `tables` needs; a user taken over is repaired first.
    pub(crate) async fn writing(&self, tables: &UserTables) -> Result<Writing> {
        let writing = self
            .writing_at(&tables.state_dir, &tables.user_id, true)
            .await?;
        let user_id = &tables.user_id;
        if writing.cluster.is_some()
            && lock_std(&self.coordinated.repair_pending).contains_key(user_id)
        {
            let gate = self.coordinated.gate(user_id);
            let _one_at_a_time = gate.lock().await;
            let pending = lock_std(&self.coordinated.repair_pending)
                .get(user_id)
                .copied();
            if let Some(takeover) = pending {
                let repaired = writing
                    .fenced(async {
                        let orphans = tables.orphan_chunk_docs_of_all().await?;
                        if !orphans.is_empty() {
                            tables.delete_docs(&orphans).await?;
                        }
                        Ok(orphans.len())
                    })
                    .await?;
                tracing::warn!(
                    user = %user_id, orphans = repaired,
                    "took the user over from an instance that stopped mid-write; removed the chunks it left without a document"
                );
                lock_std(&self.coordinated.repair_pending).remove(user_id);
                lock_std(&self.coordinated.repaired).insert(user_id.to_string(), takeover);
            }
        }
        Ok(writing)
    }

    /// Hold what writing the user's database at `state_dir` needs, without the repair of a
    /// taken-over user (for what replaces the whole database: a drop, a restore). `local`:
    /// whether to take this machine's writes lock too (a re-index holds it exclusively
    /// itself).
    pub(crate) async fn writing_at(
        &self,
        state_dir: &Path,
        user_id: &str,
        local: bool,
    ) -> Result<Writing> {
        let local = if local {
            Some(reindex::write_guard(state_dir, user_id)?)
        } else {
            None
        };
        let cluster = match &self.coordinated.coordinator {
            None => None,
            Some(coordinator) => {
                let gate = self.coordinated.gate(user_id);
                let _one_at_a_time = gate.lock().await;
                let hold = coordinator.hold(user_id).await?;
                // The hold may share a taking over that another hold in this process made
                // (the cluster's schedule claims a run with the user held): repair once per
                // taking.
                if let Some(takeover) = hold.takeover_id()
                    && lock_std(&self.coordinated.repaired).get(user_id) != Some(&takeover)
                {
                    lock_std(&self.coordinated.repair_pending)
                        .insert(user_id.to_string(), takeover);
                }
                Some(hold)
            }
        };
        Ok(Writing {
            _local: local,
            cluster,
        })
    }

    /// Coordinate this engine's writes with other instances through `coordinator`: every
    /// write to a user's tables holds the user cluster-wide, and stops when the hold is lost.
    pub fn with_coordinator(mut self, coordinator: SharedCoordinator) -> Self {
        self.coordinated.coordinator = Some(coordinator);
        self
    }

    /// The coordinator of instances, if there is one.
    pub fn coordinator(&self) -> Option<&SharedCoordinator> {
        self.coordinated.coordinator.as_ref()
    }
}
