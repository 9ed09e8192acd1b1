//! Listing a folder in full, and the changes since a stored cursor.

use serde::{Deserialize, Serialize};

use super::client::{ApiError, FileMetadata, ListFolderResult, Metadata};
use super::{DropboxSource, PAGE_LIMIT};
use crate::{ChangeKind, Listing, ListingIssue, Result, SourceEntry};

/// The cursor as stored: Dropbox's, with the folder it is for, so a cursor of another
/// folder is never used.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredCursor {
    pub(super) root: String,
    pub(super) cursor: String,
}

impl DropboxSource {
    /// Every page from `first` on, each entry handed to `each`. `Ok(Err(reset))` when the
    /// cursor was refused.
    pub(super) async fn pages(
        &self,
        first: std::result::Result<ListFolderResult, ApiError>,
        mut each: impl FnMut(Metadata),
    ) -> Result<std::result::Result<String, ApiError>> {
        let mut page = match first {
            Ok(page) => page,
            Err(e) => return Ok(Err(e)),
        };
        loop {
            page.entries.into_iter().for_each(&mut each);
            if !page.has_more {
                return Ok(Ok(page.cursor));
            }
            page = match self
                .rpc(
                    "files/list_folder/continue",
                    serde_json::json!({ "cursor": page.cursor }),
                )
                .await?
            {
                Ok(next) => next,
                Err(e) => return Ok(Err(e)),
            };
        }
    }

    /// A complete listing, and the cursor at its end.
    pub(super) async fn full(&self) -> Result<(Listing, String)> {
        let first = self
            .rpc(
                "files/list_folder",
                serde_json::json!({
                    "path": self.root_display,
                    "recursive": true,
                    "include_deleted": false,
                    "include_non_downloadable_files": true,
                    "limit": PAGE_LIMIT,
                }),
            )
            .await?;
        let mut listing = Listing::default();
        let ended = self
            .pages(first, |m| {
                if let Metadata::File(f) = m {
                    self.take(f, &mut listing.entries, &mut listing.issues);
                }
            })
            .await?;
        let cursor = ended.map_err(|e| {
            let hint = if e.is("path/not_found") {
                format!("the folder {:?} is not in this Dropbox", self.root_display)
            } else {
                e.error_summary.clone()
            };
            self.http
                .remote(format!("files/list_folder: {hint}; nothing is deleted"))
        })?;
        listing.entries.sort_unstable_by(|a, b| a.uri.cmp(&b.uri));
        Ok((listing, cursor))
    }

    pub(super) fn uri(path_lower: &str) -> String {
        format!("dropbox:{path_lower}")
    }

    /// A listed file as an entry, if the patterns take it.
    pub(super) fn take(
        &self,
        f: FileMetadata,
        entries: &mut Vec<SourceEntry>,
        issues: &mut Vec<ListingIssue>,
    ) {
        let Some(lower) = f.path_lower else {
            return;
        };
        let display = f.path_display.unwrap_or_else(|| lower.clone());
        let relative = display
            .get(self.root_display.len()..)
            .filter(|_| lower.starts_with(&self.root))
            .unwrap_or(&display);
        if !self.filter.accepts(relative) {
            return;
        }
        if !f.is_downloadable {
            issues.push(ListingIssue {
                uri: Self::uri(&lower),
                reason: "Dropbox cannot download this file (a cloud-only document); skipped".into(),
            });
            return;
        }
        let modified_ms = humantime::parse_rfc3339(&f.server_modified)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        entries.push(SourceEntry {
            version: Some(f.rev),
            content_hash: f.content_hash.map(|h| format!("dropbox:{h}")),
            title: Some(f.name),
            ..SourceEntry::new(Self::uri(&lower), f.size, modified_ms)
        });
    }

    /// What changed since Dropbox's `cursor`; `None` when Dropbox reset it.
    pub(super) async fn delta(&self, cursor: &str) -> Result<Option<(ChangeKind, String)>> {
        let first = self
            .rpc(
                "files/list_folder/continue",
                serde_json::json!({ "cursor": cursor }),
            )
            .await?;
        let (mut entries, mut deleted, mut issues) = (Vec::new(), Vec::new(), Vec::new());
        let ended = self
            .pages(first, |m| match m {
                Metadata::File(f) => self.take(f, &mut entries, &mut issues),
                Metadata::Deleted(d) => {
                    if let Some(lower) = d.path_lower {
                        deleted.push(Self::uri(&lower));
                    }
                }
                Metadata::Other => {}
            })
            .await?;
        match ended {
            Ok(next) => Ok(Some((
                ChangeKind::Delta {
                    entries,
                    deleted,
                    issues,
                },
                next,
            ))),
            Err(e) if e.is("reset") => Ok(None),
            Err(e) => Err(self.http.remote(format!(
                "files/list_folder/continue: {}; nothing is deleted",
                e.error_summary
            ))),
        }
    }

    pub(super) fn stored(&self, cursor: String) -> String {
        serde_json::to_string(&StoredCursor {
            root: self.root.clone(),
            cursor,
        })
        .expect("a cursor serializes")
    }
}
