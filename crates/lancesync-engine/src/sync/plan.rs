//! Planning a run: stored state and the source's changes in, the documents to read, the ones
//! that may be gone and the counts of the rest out. A pure function: no I/O, no clock of its
//! own, so every rule has a table-driven test without LanceDB.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use lancesync_sources::{ChangeKind, Listing, ListingIssue, SourceEntry, under};

use crate::rows::{STATUS_FAILED, STATUS_OK};
use crate::tables::{DocPos, DocState, SourceDocs};

/// A document to read. Every job of a run is planned before the first is read (moves and
/// deletions need the whole listing), so a job is kept small: the prior state is boxed, which
/// keeps a 100,000-document first sync's plan at 7 MB instead of 25 MB.
pub(crate) struct Job {
    pub entry: SourceEntry,
    pub prior: Option<Box<DocState>>,
}

/// When a failed document is tried again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// Failed attempts after which a document waits for new content.
    pub max_retries: u64,
    /// The wait after the first failure; it doubles with every further one.
    pub backoff: Duration,
    /// Retry every failed document now (`--retry-failed`).
    pub retry_all: bool,
    /// The time the run plans at.
    pub now: SystemTime,
}

impl RetryPolicy {
    /// Whether a document that failed `prior.attempts` times, last at `prior.last_synced`, is
    /// due another try.
    pub fn due(&self, prior: &DocState) -> bool {
        if self.retry_all {
            return true;
        }
        let Some(wait) = retry_wait(self.max_retries, self.backoff, prior.attempts) else {
            return false;
        };
        let elapsed = humantime::parse_rfc3339(&prior.last_synced)
            .ok()
            .and_then(|t| self.now.duration_since(t).ok())
            .unwrap_or(Duration::MAX);
        elapsed >= wait
    }
}

/// How long a document that failed `attempts` times waits before it is tried again: the
/// backoff after the first failure, doubled with every further one; `None` once it is out of
/// retries (it then waits for new content).
pub(crate) fn retry_wait(max_retries: u64, backoff: Duration, attempts: i32) -> Option<Duration> {
    if attempts as u64 >= max_retries {
        return None;
    }
    let exp = (attempts.max(1) - 1).min(16) as u32;
    Some(backoff.saturating_mul(2u32.saturating_pow(exp)))
}

/// What a run will do.
pub(crate) struct Plan {
    /// Documents to read, in listing order.
    pub jobs: Vec<Job>,
    /// Stored documents the changes say are gone, by uri; each may yet turn out to be a move.
    pub delete_candidates: Vec<DocState>,
    /// Documents not read: size, modification time and version unchanged.
    pub unchanged: usize,
    /// The chunks of the unchanged documents: embedding not repeated.
    pub unchanged_chunks: u64,
    /// Failed documents whose retry is not due.
    pub waiting_retry: usize,
    /// What the listing could not look at.
    pub issues: Vec<ListingIssue>,
    /// A delta that reports nothing at all (its cursor need not be stored again).
    pub delta_is_empty: bool,
}

impl Plan {
    /// Gone documents with content that a new document of the same content would be a move
    /// of, by checksum.
    pub fn move_candidates(&self) -> HashMap<String, Vec<DocState>> {
        let mut moves: HashMap<String, Vec<DocState>> = HashMap::new();
        for s in self
            .delete_candidates
            .iter()
            .filter(|s| s.status == STATUS_OK && !s.checksum.is_empty())
        {
            moves.entry(s.checksum.clone()).or_default().push(s.clone());
        }
        moves
    }
}

/// Which stored documents that a run's changes do not mention are gone.
enum Gone {
    /// A complete listing: all of them, but for those under these uri prefixes (folders the
    /// listing could not see).
    Unlisted(Vec<String>),
    /// A delta: only those at or under these uris.
    Only(Vec<String>),
}

/// Compare `stored` with the source's `changes`.
///
/// A listed document is read when it is new, when its size, modification time or version
/// changed, or when it failed before and its retry is due. After a complete listing an
/// unlisted document is gone unless it is under a folder the listing could not see; after a
/// delta only what the delta names is gone, and failures among the rest are retried when due.
pub(crate) fn plan(stored: &SourceDocs, changes: ChangeKind, retry: &RetryPolicy) -> Plan {
    let (entries, gone, issues) = match changes {
        ChangeKind::Full(Listing {
            entries,
            unlisted,
            issues,
        }) => (entries, Gone::Unlisted(unlisted), issues),
        ChangeKind::Delta {
            entries,
            deleted,
            issues,
        } => (entries, Gone::Only(deleted), issues),
    };
    let mut plan = Plan {
        jobs: Vec::new(),
        delete_candidates: Vec::new(),
        unchanged: 0,
        unchanged_chunks: 0,
        waiting_retry: 0,
        issues,
        delta_is_empty: matches!(&gone, Gone::Only(d) if d.is_empty()) && entries.is_empty(),
    };
    let mut by_uri: HashMap<&str, DocPos> = stored
        .positions()
        .map(|p| (stored.source_uri(p), p))
        .collect();
    for entry in entries {
        let Some(pos) = by_uri.remove(entry.uri.as_str()) else {
            plan.jobs.push(Job { entry, prior: None });
            continue;
        };
        let same_stat = stored.stat(pos) == (entry.size as i64, entry.modified_ms)
            && entry
                .version
                .as_deref()
                .is_none_or(|v| stored.version(pos) == Some(v));
        if stored.status(pos) == STATUS_FAILED {
            let prior = stored.state(pos);
            if !same_stat || retry.due(&prior) {
                plan.jobs.push(Job {
                    entry,
                    prior: Some(Box::new(prior)),
                });
            } else {
                plan.waiting_retry += 1;
            }
        } else if same_stat {
            plan.unchanged += 1;
            plan.unchanged_chunks += stored.total_chunks(pos).max(0) as u64;
        } else {
            plan.jobs.push(Job {
                entry,
                prior: Some(Box::new(stored.state(pos))),
            });
        }
    }
    // What is left was not listed.
    for pos in by_uri.into_values() {
        let uri = stored.source_uri(pos);
        let deleted = match &gone {
            Gone::Unlisted(unlisted) => !unlisted.iter().any(|u| under(uri, u)),
            Gone::Only(deleted) => deleted.iter().any(|d| under(uri, d)),
        };
        if deleted {
            plan.delete_candidates.push(stored.state(pos));
        } else if matches!(gone, Gone::Unlisted(_)) {
            // Under a folder the listing could not see: left alone until it can.
        } else if stored.status(pos) != STATUS_FAILED {
            plan.unchanged += 1;
            plan.unchanged_chunks += stored.total_chunks(pos).max(0) as u64;
        } else {
            let prior = stored.state(pos);
            if retry.due(&prior) {
                let (size, modified) = stored.stat(pos);
                plan.jobs.push(Job {
                    entry: SourceEntry::new(uri, size.max(0) as u64, modified),
                    prior: Some(Box::new(prior)),
                });
            } else {
                plan.waiting_retry += 1;
            }
        }
    }
    plan.delete_candidates
        .sort_by(|a, b| a.source_uri.cmp(&b.source_uri));
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::{DocRow, docs_to_batch};

    const DIM: usize = 4;
    const HOUR: Duration = Duration::from_secs(3600);

    /// A stored document: `uri`, size, mtime, status, attempts, last synced `ago` before now.
    struct Stored {
        uri: &'static str,
        size: i64,
        modified: i64,
        status: &'static str,
        attempts: i32,
        ago: Duration,
        version: Option<&'static str>,
        checksum: &'static str,
    }

    fn ok(uri: &'static str, size: i64, modified: i64) -> Stored {
        Stored {
            uri,
            size,
            modified,
            status: STATUS_OK,
            attempts: 0,
            ago: HOUR,
            version: None,
            checksum: "c",
        }
    }

    fn failed(uri: &'static str, attempts: i32, ago: Duration) -> Stored {
        Stored {
            status: STATUS_FAILED,
            attempts,
            ago,
            ..ok(uri, 10, 1)
        }
    }

    fn now() -> SystemTime {
        humantime::parse_rfc3339("2026-06-01T12:00:00Z").expect("time")
    }

    fn stored(docs: &[Stored]) -> SourceDocs {
        let rows: Vec<DocRow> = docs
            .iter()
            .map(|d| DocRow {
                doc_id: format!("id:{}", d.uri),
                user_id: "u".into(),
                source_type: "local".into(),
                source_id: "s".into(),
                source_uri: d.uri.into(),
                doc_type: "txt".into(),
                title: d.uri.into(),
                metadata_json: "{}".into(),
                ingested_at: "2026-01-01T00:00:00Z".into(),
                last_synced: humantime::format_rfc3339(now() - d.ago).to_string(),
                processing_status: d.status.into(),
                error_message: None,
                attempts: d.attempts,
                total_chunks: 1,
                checksum: d.checksum.into(),
                size: d.size,
                modified: d.modified,
                source_version: d.version.map(String::from),
                vector: vec![0.0; DIM],
            })
            .collect();
        let batch = docs_to_batch(&rows, DIM).expect("batch");
        SourceDocs::from_batches(&[batch]).expect("state")
    }

    fn retry() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            backoff: Duration::from_secs(60),
            retry_all: false,
            now: now(),
        }
    }

    fn full(entries: Vec<SourceEntry>, unlisted: &[&str]) -> ChangeKind {
        ChangeKind::Full(Listing {
            entries,
            unlisted: unlisted.iter().map(|s| s.to_string()).collect(),
            issues: vec![],
        })
    }

    fn delta(entries: Vec<SourceEntry>, deleted: &[&str]) -> ChangeKind {
        ChangeKind::Delta {
            entries,
            deleted: deleted.iter().map(|s| s.to_string()).collect(),
            issues: vec![],
        }
    }

    fn entry(uri: &str, size: u64, modified: i64) -> SourceEntry {
        SourceEntry::new(uri, size, modified)
    }

    /// The plan in words: uris read (with `+` for new), uris gone, unchanged, waiting.
    fn summary(plan: &Plan) -> (Vec<String>, Vec<String>, usize, usize) {
        let mut jobs: Vec<String> = plan
            .jobs
            .iter()
            .map(|j| {
                let new = if j.prior.is_none() { "+" } else { "" };
                format!("{new}{}", j.entry.uri)
            })
            .collect();
        jobs.sort();
        let gone = plan
            .delete_candidates
            .iter()
            .map(|d| d.source_uri.clone())
            .collect();
        (jobs, gone, plan.unchanged, plan.waiting_retry)
    }

    /// Uris read, uris gone, unchanged, waiting for a retry.
    type Expected = (Vec<&'static str>, Vec<&'static str>, usize, usize);

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn complete_listings_are_compared_by_size_mtime_and_version() {
        let cases: Vec<(&str, Vec<Stored>, ChangeKind, Expected)> = vec![
            (
                "empty tables: everything is new",
                vec![],
                full(vec![entry("/a", 1, 1), entry("/b", 2, 2)], &[]),
                (vec!["+/a", "+/b"], vec![], 0, 0),
            ),
            (
                "same size and mtime: not read",
                vec![ok("/a", 1, 1)],
                full(vec![entry("/a", 1, 1)], &[]),
                (vec![], vec![], 1, 0),
            ),
            (
                "size changed",
                vec![ok("/a", 1, 1)],
                full(vec![entry("/a", 2, 1)], &[]),
                (vec!["/a"], vec![], 0, 0),
            ),
            (
                "mtime changed",
                vec![ok("/a", 1, 1)],
                full(vec![entry("/a", 1, 5)], &[]),
                (vec!["/a"], vec![], 0, 0),
            ),
            (
                "unlisted: gone",
                vec![ok("/a", 1, 1), ok("/b", 1, 1)],
                full(vec![entry("/a", 1, 1)], &[]),
                (vec![], vec!["/b"], 1, 0),
            ),
            (
                "under a folder the listing could not see: kept, not counted",
                vec![ok("/a", 1, 1), ok("/hidden/b", 1, 1), ok("/hiddenx", 1, 1)],
                full(vec![entry("/a", 1, 1)], &["/hidden"]),
                (vec![], vec!["/hiddenx"], 1, 0),
            ),
            (
                "an empty listing of a folder it could not see deletes nothing",
                vec![ok("/d/a", 1, 1), ok("/d/b", 1, 1)],
                full(vec![], &["/d"]),
                (vec![], vec![], 0, 0),
            ),
        ];
        for (name, docs, changes, expected) in cases {
            let plan = plan(&stored(&docs), changes, &retry());
            let (jobs, gone, unchanged, waiting) = expected;
            assert_eq!(
                summary(&plan),
                (strings(&jobs), strings(&gone), unchanged, waiting),
                "{name}"
            );
        }
    }

    #[test]
    fn a_version_marker_decides_where_the_source_has_one() {
        let mut doc = ok("/a", 1, 1);
        doc.version = Some("v1");
        let state = stored(&[doc]);
        let same = SourceEntry {
            version: Some("v1".into()),
            ..entry("/a", 1, 1)
        };
        let newer = SourceEntry {
            version: Some("v2".into()),
            ..entry("/a", 1, 1)
        };
        let unchanged = plan(&state, full(vec![same], &[]), &retry());
        assert_eq!(summary(&unchanged).2, 1);
        let changed = plan(&state, full(vec![newer], &[]), &retry());
        assert_eq!(summary(&changed).0, strings(&["/a"]));
    }

    #[test]
    fn deltas_delete_only_what_they_name() {
        let docs = [
            ok("/a", 1, 1),
            ok("/dir/b", 1, 1),
            ok("/dir/c", 1, 1),
            ok("/e", 1, 1),
        ];
        let cases = vec![
            (
                "a deleted folder takes what is under it",
                delta(vec![], &["/dir"]),
                (vec![], vec!["/dir/b", "/dir/c"], 2, 0),
            ),
            (
                "a changed entry is read, the rest unchanged",
                delta(vec![entry("/a", 9, 9)], &[]),
                (vec!["/a"], vec![], 3, 0),
            ),
            (
                "a new entry",
                delta(vec![entry("/f", 1, 1)], &[]),
                (vec!["+/f"], vec![], 4, 0),
            ),
        ];
        for (name, changes, (jobs, gone, unchanged, waiting)) in cases {
            let plan = plan(&stored(&docs), changes, &retry());
            assert_eq!(
                summary(&plan),
                (strings(&jobs), strings(&gone), unchanged, waiting),
                "{name}"
            );
        }
        assert!(plan(&stored(&docs), delta(vec![], &[]), &retry()).delta_is_empty);
        assert!(!plan(&stored(&docs), delta(vec![], &["/a"]), &retry()).delta_is_empty);
        assert!(!plan(&stored(&docs), full(vec![], &[]), &retry()).delta_is_empty);
    }

    #[test]
    fn failures_are_retried_with_doubling_backoff_up_to_the_limit() {
        // Backoff 60 s: after attempt 1 wait 60 s, after 2 wait 120 s; 3 attempts is the limit.
        let minute = Duration::from_secs(60);
        let cases = vec![
            (
                "first failure, 30 s ago: waits",
                failed("/a", 1, minute / 2),
                false,
            ),
            (
                "first failure, 61 s ago: due",
                failed("/a", 1, minute + Duration::from_secs(1)),
                true,
            ),
            (
                "second failure, 90 s ago: waits",
                failed("/a", 2, minute * 3 / 2),
                false,
            ),
            (
                "second failure, 121 s ago: due",
                failed("/a", 2, minute * 2 + Duration::from_secs(1)),
                true,
            ),
            (
                "out of retries: waits for new content",
                failed("/a", 3, HOUR * 24),
                false,
            ),
        ];
        for (name, doc, due) in cases {
            let docs = [doc];
            let listed = plan(
                &stored(&docs),
                full(vec![entry("/a", 10, 1)], &[]),
                &retry(),
            );
            let expected = if due { (1, 0) } else { (0, 1) };
            assert_eq!(
                (listed.jobs.len(), listed.waiting_retry),
                expected,
                "{name} (listing)"
            );
            // A delta that does not mention the document retries it on the same terms.
            let quiet = plan(&stored(&docs), delta(vec![], &[]), &retry());
            assert_eq!(
                (quiet.jobs.len(), quiet.waiting_retry),
                expected,
                "{name} (delta)"
            );
        }
        // New content starts over, whatever the attempts; --retry-failed retries everything.
        let spent = [failed("/a", 3, Duration::ZERO)];
        let changed = plan(
            &stored(&spent),
            full(vec![entry("/a", 11, 1)], &[]),
            &retry(),
        );
        assert_eq!(changed.jobs.len(), 1);
        let all = RetryPolicy {
            retry_all: true,
            ..retry()
        };
        let forced = plan(&stored(&spent), full(vec![entry("/a", 10, 1)], &[]), &all);
        assert_eq!(forced.jobs.len(), 1);
    }

    #[test]
    fn gone_documents_with_content_are_move_candidates() {
        let mut failed_gone = failed("/f", 1, HOUR);
        failed_gone.checksum = "x";
        let mut no_hash = ok("/n", 1, 1);
        no_hash.checksum = "";
        let docs = [ok("/a", 1, 1), ok("/b", 1, 1), failed_gone, no_hash];
        let plan = plan(&stored(&docs), full(vec![], &[]), &retry());
        assert_eq!(plan.delete_candidates.len(), 4);
        let moves = plan.move_candidates();
        assert_eq!(moves.len(), 1, "only completed documents with a checksum");
        assert_eq!(moves["c"].len(), 2);
    }
}
