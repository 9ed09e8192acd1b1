//! Deciding each original document's fate: adopted by a source (its content compared with the
//! original checksum), kept under the `legacy` source, or not adopted, and the newest of
//! duplicate rows.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;

use lancesync_engine::{MIGRATED_SOURCE, ids};
use lancesync_sources::{DocumentSource, SourceEntry};

use crate::convert::completed;
use crate::error::{Error, Result};
use crate::legacy::LegacyDoc;
use crate::matching::{Content, Found, SourceIndex};
use crate::options::MigrateOptions;
use crate::report::{NotAdopted, UserMigration};
use crate::{Migrator, matching};

/// Sources read at once to compare content with the original checksums.
pub(crate) const READS_AT_ONCE: usize = 8;

/// What becomes of one original document.
pub(crate) enum Plan {
    /// Listed by a configured source.
    Adopt {
        source: Arc<dyn DocumentSource>,
        entry: SourceEntry,
    },
    /// In no configured source: kept under [`MIGRATED_SOURCE`].
    Keep { uri: String },
    /// In a configured source but failed in the original system: the next sync ingests it.
    Sync,
}

pub(crate) struct Planned {
    pub(crate) legacy: LegacyDoc,
    pub(crate) plan: Plan,
    pub(crate) target_id: String,
    pub(crate) content: Content,
}

impl Migrator {
    /// Decide each document's fate from its row and the sources.
    pub(crate) fn plan(
        &self,
        user: &str,
        docs: Vec<LegacyDoc>,
        sources: &SourceIndex,
        options: &MigrateOptions,
        report: &mut UserMigration,
    ) -> Vec<(LegacyDoc, String, Plan)> {
        let mut out = Vec::new();
        for doc in docs {
            if let Some(owner) = doc
                .user_id
                .as_deref()
                .filter(|o| !o.is_empty() && *o != user)
            {
                let reason = format!("the row belongs to user {owner:?}, not {user:?}");
                report.not_adopted.push(NotAdopted::doc(&doc, reason));
                continue;
            }
            let Some(uri) = doc
                .source_uri
                .clone()
                .filter(|u| !u.trim().is_empty() && u.len() <= 2048)
            else {
                report
                    .not_adopted
                    .push(NotAdopted::doc(&doc, "no usable source_uri".into()));
                continue;
            };
            let failed = !completed(doc.processing_status.as_deref());
            let plan = match sources.find(&uri) {
                Found::Listed(source, entry) if failed => {
                    let target_id = ids::doc_id(user, source.id(), &entry.uri);
                    out.push((doc, target_id, Plan::Sync));
                    continue;
                }
                Found::Listed(source, entry) => Plan::Adopt {
                    source: source.clone(),
                    entry: entry.clone(),
                },
                Found::Gone(source) => {
                    let reason = format!(
                        "no longer in source {:?}: the original kept a deleted document",
                        source.id()
                    );
                    report.not_adopted.push(NotAdopted::doc(&doc, reason));
                    continue;
                }
                Found::Unlisted(source) => {
                    let reason = format!(
                        "source {:?} could not list where it is now; run the migration again",
                        source.id()
                    );
                    report.not_adopted.push(NotAdopted::doc(&doc, reason));
                    continue;
                }
                Found::Elsewhere if failed => {
                    let reason = format!(
                        "processing failed in the original system ({}), and it is in no configured source",
                        doc.processing_status.as_deref().unwrap_or("no status")
                    );
                    report.not_adopted.push(NotAdopted::doc(&doc, reason));
                    continue;
                }
                Found::Elsewhere if !options.keep_unmatched => {
                    report.not_adopted.push(NotAdopted::doc(
                        &doc,
                        "in no configured source, and unmatched documents are not kept (--skip-unmatched)".into(),
                    ));
                    continue;
                }
                Found::Elsewhere => Plan::Keep {
                    uri: matching::normalise(&uri),
                },
            };
            let target_id = match &plan {
                Plan::Adopt { source, entry } => ids::doc_id(user, source.id(), &entry.uri),
                Plan::Keep { uri } => ids::doc_id(user, MIGRATED_SOURCE, uri),
                Plan::Sync => unreachable!("pushed above"),
            };
            out.push((doc, target_id, plan));
        }
        out
    }

    /// Drop documents lancesync already has (migrated before, or synced since).
    pub(crate) async fn skip_migrated(
        &self,
        user: &str,
        planned: Vec<(LegacyDoc, String, Plan)>,
        report: &mut UserMigration,
    ) -> Result<Vec<(LegacyDoc, String, Plan)>> {
        let Some(tables) = self.engine.existing_tables(user).await? else {
            return Ok(planned);
        };
        let ids: Vec<String> = planned.iter().map(|p| p.1.clone()).collect();
        let mut present = HashSet::new();
        for group in ids.chunks(500) {
            for row in tables
                .docs_where_without_vectors(Some(ids::sql_in("doc_id", group)))
                .await?
            {
                present.insert(row.doc_id);
            }
        }
        report.already_migrated += planned.iter().filter(|p| present.contains(&p.1)).count();
        Ok(planned
            .into_iter()
            .filter(|p| !present.contains(&p.1))
            .collect())
    }
}

/// The newest of rows sharing a key (by `last_synced`, then `ingested_at`), and how many
/// were dropped.
pub(crate) fn newest_by<T: Newest>(rows: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, usize) {
    let total = rows.len();
    let mut order = Vec::new();
    let mut best: HashMap<String, T> = HashMap::new();
    for row in rows {
        let k = key(&row);
        match best.get(&k) {
            Some(kept) if kept.age() >= row.age() => {}
            Some(_) => {
                best.insert(k, row);
            }
            None => {
                order.push(k.clone());
                best.insert(k, row);
            }
        }
    }
    let kept: Vec<T> = order.into_iter().filter_map(|k| best.remove(&k)).collect();
    let dropped = total - kept.len();
    (kept, dropped)
}

pub(crate) trait Newest {
    fn age(&self) -> (Option<String>, Option<String>);
}

impl Newest for LegacyDoc {
    fn age(&self) -> (Option<String>, Option<String>) {
        (self.last_synced.clone(), self.ingested_at.clone())
    }
}

impl Newest for (LegacyDoc, String, Plan) {
    fn age(&self) -> (Option<String>, Option<String>) {
        self.0.age()
    }
}

/// Compare each adopted document's content with the original checksum, a few at a time.
pub(crate) async fn compare_contents(
    planned: Vec<(LegacyDoc, String, Plan)>,
) -> Vec<std::result::Result<Planned, (LegacyDoc, Error)>> {
    futures::stream::iter(planned)
        .map(|(legacy, target_id, plan)| async move {
            let content = match &plan {
                Plan::Adopt { source, entry } => {
                    match matching::compare(source, entry, legacy.checksum.as_deref()).await {
                        Ok(c) => c,
                        Err(e) => return Err((legacy, e)),
                    }
                }
                Plan::Keep { .. } | Plan::Sync => Content::Changed,
            };
            Ok(Planned {
                legacy,
                plan,
                target_id,
                content,
            })
        })
        .buffered(READS_AT_ONCE)
        .collect()
        .await
}
