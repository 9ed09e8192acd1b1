//! A dry run: the same listing, reading, extraction, chunking, move detection and mass-delete
//! guard as a run, with the writes left out and the embedding replaced by counting its
//! tokens. It reports the counts a run would report and, document by document, what it would do.

use std::time::{Duration, Instant};

use super::process::Outcome;
use super::report::{EmbeddingCost, Failure, PlannedMove, RunPlan, SyncReport};
use super::{Planned, Progress, Run, SyncOptions, marker_path, now};
use crate::ids::validate_source_id;
use crate::rows::STATUS_FAILED;
use crate::{Error, Result};

/// Chunks embedded per call while measuring the embedder's speed.
const RATE_SAMPLE_BATCH: usize = 16;
/// How long measuring the embedder's speed may take (after the batch that passes it).
const RATE_SAMPLE_TIME: Duration = Duration::from_secs(2);

impl Run<'_> {
    /// Plan a run without writing anything. Takes no lock: a run of the same source going on
    /// meanwhile can make the plan out of date, never wrong about what was stored when read.
    pub(super) async fn execute_dry(
        &self,
        options: SyncOptions,
        progress: &dyn Progress,
    ) -> Result<SyncReport> {
        let started = Instant::now();
        let source_id = self.source.id().to_string();
        validate_source_id(&source_id)?;
        let mut report = SyncReport {
            user_id: self.user_id.clone(),
            source_id: source_id.clone(),
            dry_run: true,
            plan: Some(RunPlan::default()),
            ..Default::default()
        };
        // What the next run would repair first: chunks an interrupted run left without rows.
        if let Some(tables) = self.tables
            && marker_path(tables, &source_id).exists()
        {
            report.repaired = tables.orphan_chunk_docs(&source_id).await?.len();
        }
        let Planned {
            plan,
            documents_before,
            ..
        } = self.plan_run(&source_id, options, &mut report).await?;
        let deletions: Vec<String> = self
            .process_planned(plan, progress, &mut report)
            .await?
            .into_iter()
            .map(|s| s.source_uri)
            .collect();
        let planned = report.plan.as_mut().expect("set above");
        match self.withheld(deletions.len(), documents_before, options) {
            Some(blocked) => {
                report.mass_delete_blocked = Some(blocked);
                planned.withheld = deletions;
            }
            None => {
                report.deleted = deletions.len();
                planned.deleted = deletions;
            }
        }

        self.count_tokens(&source_id, &mut report).await;
        let cost = self.embedding_cost(&report).await?;
        report.plan.as_mut().expect("set above").cost = cost;
        report.finish(started.elapsed(), now());
        tracing::info!(
            user = %report.user_id, source = %source_id, created = report.created, updated = report.updated,
            moved = report.moved, touched = report.touched, deleted = report.deleted, unchanged = report.unchanged,
            failed = report.failed, tokens = report.tokens_embedded, ms = report.duration_ms, "dry run finished"
        );
        Ok(report)
    }

    /// Count one document's outcome as a run's write would, and note its uri in the plan.
    pub(super) fn tally_planned(&self, outcome: Outcome, report: &mut SyncReport) {
        let planned = report.plan.get_or_insert_with(RunPlan::default);
        let retried = |prior: Option<&crate::tables::DocState>| {
            prior.is_some_and(|p| p.status == STATUS_FAILED)
        };
        match outcome {
            Outcome::Indexed {
                doc,
                chunks,
                prior,
                bytes,
                tokens,
            } => {
                report.bytes_read += bytes;
                report.chunks_written += chunks.len();
                self.embedded.lock().expect("lock").add(tokens);
                if retried(prior.as_ref()) {
                    planned.retried.push(doc.source_uri.clone());
                }
                if prior.is_some() {
                    report.updated += 1;
                    planned.updated.push(doc.source_uri);
                } else {
                    report.created += 1;
                    planned.created.push(doc.source_uri);
                }
            }
            Outcome::Touched {
                prior,
                entry,
                bytes,
            } => {
                report.bytes_read += bytes;
                report.touched += 1;
                report.chunks_saved += prior.total_chunks.max(0) as u64;
                planned.touched.push(entry.uri);
            }
            Outcome::Moved { from, entry, bytes } => {
                report.bytes_read += bytes;
                report.moved += 1;
                report.chunks_saved += from.total_chunks.max(0) as u64;
                planned.moved.push(PlannedMove {
                    from: from.source_uri,
                    to: entry.uri,
                });
            }
            Outcome::Failed {
                entry,
                prior,
                reason,
                bytes,
                ..
            } => {
                report.bytes_read += bytes;
                report.failed += 1;
                if retried(prior.as_ref()) {
                    planned.retried.push(entry.uri.clone());
                }
                report.failures.push(Failure {
                    uri: entry.uri,
                    reason,
                });
            }
            Outcome::Legacy {
                entry,
                prior,
                bytes,
                ..
            } => {
                report.bytes_read += bytes;
                report.legacy += 1;
                if retried(prior.as_ref()) {
                    planned.retried.push(entry.uri.clone());
                }
                planned.legacy.push(entry.uri);
            }
        }
    }

    /// What embedding the planned chunks would cost: money at the configured price, and time
    /// at the embedder's speed measured here on a sample of them (a local embedder only: a
    /// remote one would bill the sample).
    async fn embedding_cost(&self, report: &SyncReport) -> Result<EmbeddingCost> {
        let price_per_million = self.config.embedding_price_per_million_tokens;
        let mut cost = EmbeddingCost {
            embedder: self.embedder.identity().to_string(),
            chunks: report.chunks_written as u64,
            tokens: report.tokens_embedded,
            tokens_exact: report.tokens_exact,
            price_per_million_tokens: price_per_million,
            price: price_per_million.map(|p| p * report.tokens_embedded as f64 / 1e6),
            ..Default::default()
        };
        let sample = std::mem::take(&mut *self.rate_sample.lock().expect("lock"));
        if sample.is_empty() || !self.embedder.runs_locally() {
            return Ok(cost);
        }
        // Untimed first: a model's first call pays for loading and warming up, once.
        self.embedder
            .embed(&sample[..1])
            .await
            .map_err(Error::from)?;
        // In small batches until the sample or the time budget runs out: a transformer on
        // two cores embeds a few chunks a second, and the measurement must stay a small part
        // of the dry run.
        let timer = Instant::now();
        let mut tokens = 0;
        for batch in sample.chunks(RATE_SAMPLE_BATCH) {
            let (_, counted) = self
                .embedder
                .embed_counted(batch)
                .await
                .map_err(Error::from)?;
            tokens += counted.tokens;
            if timer.elapsed() >= RATE_SAMPLE_TIME {
                break;
            }
        }
        let seconds = timer.elapsed().as_secs_f64();
        if tokens > 0 && seconds > 0.0 {
            let rate = tokens as f64 / seconds;
            cost.measured_tokens_per_second = Some(rate);
            cost.estimated_seconds = Some(report.tokens_embedded as f64 / rate);
        }
        Ok(cost)
    }
}
