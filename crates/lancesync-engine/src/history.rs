//! Every finished run in one line, per source (`{state}/{source}.runs.jsonl`), so a user's
//! runs can be shown over time; the newest [`KEEP`] of each source are kept.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::SyncReport;

/// Runs kept per source.
pub const KEEP: usize = 500;

/// What one run did, in brief.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Source.
    pub source_id: String,
    /// When it finished (RFC 3339).
    pub finished_at: String,
    /// Documents indexed for the first time.
    pub created: usize,
    /// Documents indexed again.
    pub updated: usize,
    /// Documents moved or renamed.
    pub moved: usize,
    /// Documents whose time changed, content the same.
    pub touched: usize,
    /// Documents removed.
    pub deleted: usize,
    /// Documents not read.
    pub unchanged: usize,
    /// Documents that failed.
    pub failed: usize,
    /// Deletions withheld by the mass-delete guard.
    #[serde(default)]
    pub withheld: usize,
    /// Chunks written.
    pub chunks_written: usize,
    /// Wall time.
    pub duration_ms: u64,
}

impl From<&SyncReport> for RunSummary {
    fn from(r: &SyncReport) -> Self {
        Self {
            source_id: r.source_id.clone(),
            finished_at: r.finished_at.clone(),
            created: r.created,
            updated: r.updated,
            moved: r.moved,
            touched: r.touched,
            deleted: r.deleted,
            unchanged: r.unchanged,
            failed: r.failed,
            withheld: r.mass_delete_blocked.as_ref().map_or(0, |b| b.would_delete),
            chunks_written: r.chunks_written,
            duration_ms: r.duration_ms,
        }
    }
}

const SUFFIX: &str = ".runs.jsonl";

fn file(state_dir: &Path, source_id: &str) -> std::path::PathBuf {
    state_dir.join(format!("{source_id}{SUFFIX}"))
}

/// Add `report` to its source's history. A history that cannot be written is logged, never
/// an error: the run itself succeeded.
pub(crate) async fn record(state_dir: &Path, report: &SyncReport) {
    let path = file(state_dir, &report.source_id);
    let Ok(line) = serde_json::to_string(&RunSummary::from(report)) else {
        return;
    };
    let mut lines: Vec<String> = match tokio::fs::read_to_string(&path).await {
        Ok(text) => text.lines().map(String::from).collect(),
        Err(_) => Vec::new(),
    };
    lines.push(line);
    let keep_from = lines.len().saturating_sub(KEEP);
    let mut text = lines[keep_from..].join("\n");
    text.push('\n');
    // Written whole to a temporary file, then renamed: a crash leaves the old history or
    // the new one.
    let tmp = path.with_extension("jsonl.tmp");
    let written = async {
        tokio::fs::write(&tmp, text).await?;
        tokio::fs::rename(&tmp, &path).await
    };
    if let Err(e) = written.await {
        tracing::warn!(path = %path.display(), error = %e, "cannot record the run in the history");
    }
}

/// Every source's runs in `state_dir`, oldest first.
pub(crate) async fn read(state_dir: &Path) -> Vec<RunSummary> {
    let mut runs = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(state_dir).await else {
        return runs;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        if !entry.file_name().to_string_lossy().ends_with(SUFFIX) {
            continue;
        }
        if let Ok(text) = tokio::fs::read_to_string(entry.path()).await {
            // A line that does not parse (a newer version's, a torn write) is skipped.
            runs.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
        }
    }
    runs.sort_by(|a: &RunSummary, b| a.finished_at.cmp(&b.finished_at));
    runs
}

/// Forget a source's history (the source was removed).
pub(crate) async fn forget(state_dir: &Path, source_id: &str) {
    let _ = tokio::fs::remove_file(file(state_dir, source_id)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(source: &str, at: &str, created: usize) -> SyncReport {
        SyncReport {
            source_id: source.into(),
            finished_at: at.into(),
            created,
            ..SyncReport::default()
        }
    }

    #[tokio::test]
    async fn runs_are_kept_in_order_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        record(dir.path(), &report("a", "2026-01-01T00:00:02Z", 1)).await;
        record(dir.path(), &report("b", "2026-01-01T00:00:01Z", 2)).await;
        record(dir.path(), &report("a", "2026-01-01T00:00:03Z", 3)).await;
        let runs = read(dir.path()).await;
        let order: Vec<(&str, usize)> = runs
            .iter()
            .map(|r| (r.source_id.as_str(), r.created))
            .collect();
        assert_eq!(order, [("b", 2), ("a", 1), ("a", 3)]);
        for i in 0..KEEP + 5 {
            record(
                dir.path(),
                &report(
                    "c",
                    &format!("2027-01-01T00:{:02}:{:02}Z", i / 60, i % 60),
                    i,
                ),
            )
            .await;
        }
        let c: Vec<_> = read(dir.path())
            .await
            .into_iter()
            .filter(|r| r.source_id == "c")
            .collect();
        assert_eq!(c.len(), KEEP);
        assert_eq!(c[0].created, 5, "the oldest went first");
        forget(dir.path(), "c").await;
        assert_eq!(read(dir.path()).await.len(), 3);
    }
}
