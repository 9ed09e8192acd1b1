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

/// A document found moved: its chunks follow it without being embedded again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedMove {
    /// Where it was.
    pub from: String,
    /// Where it is now.
    pub to: String,
}

/// What a dry run found a run would do, by document (uris in listing order within each list).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunPlan {
    /// New documents that would be indexed.
    pub created: Vec<String>,
    /// Changed documents that would be re-indexed.
    pub updated: Vec<String>,
    /// Documents whose content is unchanged under a new modification time (metadata only).
    pub touched: Vec<String>,
    /// Documents renamed or moved.
    pub moved: Vec<PlannedMove>,
    /// Documents that would be removed from the index.
    pub deleted: Vec<String>,
    /// Deletions the mass-delete guard would withhold (`--allow-mass-delete` applies them).
    pub withheld: Vec<String>,
    /// Documents that failed before and would be tried again now (whatever the outcome).
    pub retried: Vec<String>,
    /// Documents lancesync cannot take that would go to the legacy fallback.
    pub legacy: Vec<String>,
    /// What the embedding would cost.
    pub cost: EmbeddingCost,
}

/// What embedding a run's new chunks would cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingCost {
    /// The embedder, as stored with the tables.
    pub embedder: String,
    /// Chunks to embed.
    pub chunks: u64,
    /// Their tokens.
    pub tokens: u64,
    /// Counted by the embedder's own tokenizer, not estimated.
    pub tokens_exact: bool,
    /// `EMBEDDING_PRICE_PER_MILLION_TOKENS`, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_per_million_tokens: Option<f64>,
    /// `tokens` at that price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    /// The embedder's speed on this machine, measured on a sample of the run's chunks (local
    /// embedders only: a remote one is not called by a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_tokens_per_second: Option<f64>,
    /// `tokens` at that speed: the embedding's share of the run's time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_seconds: Option<f64>,
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
    /// Chunk rows written (in a dry run: that would be written).
    pub chunks_written: usize,
    /// Tokens embedded for the chunks written, by the embedder's tokenizer (or its server's
    /// count); in a dry run, tokens that would be embedded.
    #[serde(default)]
    pub tokens_embedded: u64,
    /// Whether `tokens_embedded` was counted, not estimated (an embedder without a known
    /// tokenizer is estimated at four characters per token).
    #[serde(default)]
    pub tokens_exact: bool,
    /// Chunks not embedded again thanks to the incremental path: those of unchanged, touched
    /// and moved documents.
    #[serde(default)]
    pub chunks_saved: u64,
    /// About how many tokens `chunks_saved` are: their number times the mean tokens per chunk
    /// (of the chunks this run embedded, else as the source's last report knew it, else of a
    /// sample of the source's stored chunks).
    #[serde(default)]
    pub tokens_saved: u64,
    /// A dry run: nothing was written, and `plan` says what a run would do.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// What a run would do, document by document, with what its embedding would cost (dry
    /// runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<RunPlan>,
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
