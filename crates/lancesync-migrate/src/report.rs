//! What a migration did (or, in a dry run, would do), per user.

use serde::Serialize;

use crate::legacy::{Layout, LegacyDoc};

/// The whole migration.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    /// The original data.
    pub from: String,
    /// Its layout.
    pub layout: Layout,
    /// Nothing was written.
    pub dry_run: bool,
    /// What happens to the original vectors, and why.
    pub vectors: String,
    /// Rows of a shared database whose `user_id` is missing or invalid: no user adopts them.
    pub rows_without_user: usize,
    /// Each user.
    pub users: Vec<UserMigration>,
}

/// One user's migration.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UserMigration {
    /// The user.
    pub user_id: String,
    /// The original database the rows came from.
    pub legacy_database: String,
    /// Document rows in the original table (duplicates included).
    pub legacy_documents: usize,
    /// Chunk rows in the original table.
    pub legacy_chunks: usize,
    /// Documents adopted into a configured source with content unchanged: their size,
    /// modification time and checksum are recorded, so the next sync skips them.
    pub adopted: usize,
    /// Documents copied into a configured source whose content changed since (or could not be
    /// compared): searchable now, read again by the next sync.
    pub adopted_changed: usize,
    /// Documents in no configured source, kept under the source `legacy`.
    pub kept_unmatched: usize,
    /// Documents of a configured source not copied (failed in the original system, no usable
    /// chunks, or changed with vectors to make anyway): the next sync ingests them.
    pub left_to_sync: usize,
    /// Documents lancesync already has (migrated before, or synced since): untouched.
    pub already_migrated: usize,
    /// Repeated rows collapsed into their newest (the original appended on re-ingestion).
    pub duplicate_rows: usize,
    /// Chunks written (or to write).
    pub chunks_written: usize,
    /// Of those, chunks whose original vector was kept.
    pub vectors_kept: usize,
    /// Of those, chunks whose text was (or would be) embedded again.
    pub vectors_reembedded: usize,
    /// Rows not adopted, each with the reason.
    pub not_adopted: Vec<NotAdopted>,
    /// Why this user's migration stopped, if it did (nothing after the error was written).
    pub error: Option<String>,
}

/// Rows that were not adopted.
#[derive(Debug, Clone, Serialize)]
pub struct NotAdopted {
    /// The original document id, when there is one.
    pub legacy_doc_id: Option<String>,
    /// Where the original said the document was.
    pub source_uri: Option<String>,
    /// Document rows concerned.
    pub rows: usize,
    /// Chunk rows concerned.
    pub chunks: usize,
    /// Why.
    pub reason: String,
}

impl NotAdopted {
    pub(crate) fn doc(doc: &LegacyDoc, reason: String) -> Self {
        Self {
            legacy_doc_id: Some(doc.doc_id.clone()),
            source_uri: doc.source_uri.clone(),
            rows: 1,
            chunks: 0,
            reason,
        }
    }

    pub(crate) fn rows(rows: usize, reason: &str) -> Self {
        Self {
            legacy_doc_id: None,
            source_uri: None,
            rows,
            chunks: 0,
            reason: reason.into(),
        }
    }
}

impl UserMigration {
    pub(crate) fn new(user_id: &str, legacy_database: String) -> Self {
        Self {
            user_id: user_id.into(),
            legacy_database,
            ..Default::default()
        }
    }

    /// Document rows not adopted.
    pub fn not_adopted_documents(&self) -> usize {
        self.not_adopted.iter().map(|n| n.rows).sum()
    }

    /// One line.
    pub fn summary(&self, dry_run: bool) -> String {
        let verb = if dry_run { "would adopt" } else { "adopted" };
        let mut line = format!(
            "{}: {} documents / {} chunks in the original; {verb} {} unchanged, {} changed (the next sync reads them again), kept {} from no configured source; {} left to the next sync, {} already migrated, {} not adopted, {} duplicate rows collapsed; {} chunks ({} vectors kept, {} embedded again)",
            self.user_id,
            self.legacy_documents,
            self.legacy_chunks,
            self.adopted,
            self.adopted_changed,
            self.kept_unmatched,
            self.left_to_sync,
            self.already_migrated,
            self.not_adopted_documents(),
            self.duplicate_rows,
            self.chunks_written,
            self.vectors_kept,
            self.vectors_reembedded,
        );
        if let Some(e) = &self.error {
            line.push_str(&format!("; STOPPED: {e}"));
        }
        line
    }
}

impl MigrationReport {
    /// Whether every selected user's migration ran to its end.
    pub fn complete(&self) -> bool {
        self.users.iter().all(|u| u.error.is_none())
    }

    /// A readable plan or summary: a header, a line per user, and every row not adopted.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{} {} ({}): {} user(s); vectors {}\n",
            if self.dry_run {
                "Migration plan (dry run: nothing written) for"
            } else {
                "Migrated"
            },
            self.from,
            self.layout,
            self.users.len(),
            self.vectors
        );
        if self.rows_without_user > 0 {
            out.push_str(&format!(
                "  {} document row(s) have no valid user_id: not adopted\n",
                self.rows_without_user
            ));
        }
        for user in &self.users {
            out.push_str(&format!("  {}\n", user.summary(self.dry_run)));
            for n in &user.not_adopted {
                out.push_str(&format!(
                    "    not adopted: {}{}{}: {}\n",
                    n.legacy_doc_id.as_deref().unwrap_or("-"),
                    n.source_uri
                        .as_deref()
                        .map(|u| format!(" ({u})"))
                        .unwrap_or_default(),
                    match (n.rows, n.chunks) {
                        (0, c) => format!(", {c} chunk(s)"),
                        (1, 0) => String::new(),
                        (r, 0) => format!(", {r} row(s)"),
                        (r, c) => format!(", {r} row(s), {c} chunk(s)"),
                    },
                    n.reason
                ));
            }
        }
        out
    }
}
