//! What a run did: counts, failures, throughput, and the last report kept beside the tables.

use std::time::Duration;

use lancesync_sources::ListingIssue;
use serde::{Deserialize, Serialize};

use crate::tables::Maintenance;

/// A document that could not be processed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The document.
    pub uri: String,
    /// Why.
    pub reason: String,
}

/// Deletions withheld by the mass-delete guard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MassDeleteBlocked {
    /// Documents the run would have deleted.
    pub would_delete: usize,
    /// Documents of the source before the run.
    pub documents: usize,
    /// The configured largest share.
    pub max_share: f64,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncReport {
    /// User.
    pub user_id: String,
    /// Source.
    pub source_id: String,
    /// New documents indexed.
    pub created: usize,
    /// Changed documents re-indexed.
    pub updated: usize,
    /// Renamed or moved documents (no re-extraction, no re-embedding).
    pub moved: usize,
    /// Modification time changed, content the same (metadata only).
    pub touched: usize,
    /// Documents removed from the index.
    pub deleted: usize,
    /// Documents not read: size and modification time unchanged.
    pub unchanged: usize,
    /// Documents that failed in this run.
    pub failed: usize,
    /// Documents lancesync could not take that the legacy fallback took
    /// (`LEGACY_FALLBACK_URL`).
    #[serde(default)]
    pub legacy: usize,
    /// Earlier failures not retried yet (backoff, or out of retries).
    pub waiting_retry: usize,
    /// The failures of this run.
    pub failures: Vec<Failure>,
    /// What the listing could not look at.
    pub issues: Vec<ListingIssue>,
    /// Deletions withheld by the mass-delete guard.
    pub mass_delete_blocked: Option<MassDeleteBlocked>,
    /// Chunk rows written.
    pub chunks_written: usize,
    /// Bytes of documents read.
    pub bytes_read: u64,
    /// Orphan chunks removed after an interrupted earlier run (documents).
    pub repaired: usize,
    /// Maintenance done at the end.
    pub maintenance: Maintenance,
    /// When the run finished (RFC 3339).
    pub finished_at: String,
    /// Wall time.
    pub duration_ms: u64,
    /// Documents read per second.
    pub docs_per_sec: f64,
    /// MB read per second.
    pub mb_per_sec: f64,
    /// What the storage mode did after the run (S3 copy, cache refresh); absent when
    /// there is nothing to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<lancesync_storage::AfterWrite>,
}

impl SyncReport {
    /// Documents whose rows this run wrote (or removed): a run with none leaves nothing to
    /// index or compact.
    pub(super) fn rows_written(&self) -> usize {
        self.documents_read() + self.deleted + self.repaired
    }

    /// Documents this run read from the source.
    fn documents_read(&self) -> usize {
        self.created + self.updated + self.moved + self.touched + self.failed + self.legacy
    }

    /// Fill in the wall time, throughput and finishing time of a run that took `elapsed`.
    pub(super) fn finish(&mut self, elapsed: Duration, finished_at: String) {
        let secs = elapsed.as_secs_f64();
        self.duration_ms = (secs * 1000.0) as u64;
        let read = self.documents_read();
        self.docs_per_sec = if secs > 0.0 { read as f64 / secs } else { 0.0 };
        self.mb_per_sec = if secs > 0.0 {
            self.bytes_read as f64 / 1e6 / secs
        } else {
            0.0
        };
        self.finished_at = finished_at;
    }
}
