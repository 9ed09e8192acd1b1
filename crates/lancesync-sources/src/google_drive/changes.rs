//! The change feed: Drive's page token, and what changed since it.

use std::collections::{BTreeMap, HashMap};

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::client::{Change, ChangeList, StartPageToken};
use super::listing::Folder;
use super::{FILE_FIELDS, FOLDER, GoogleDriveSource, PAGE_SIZE};
use crate::{ChangeKind, Result};

/// The cursor as stored: Drive's page token, the scope it is for, and the folders in scope
/// (so a change can be placed without asking Drive).
#[derive(Serialize, Deserialize)]
pub(super) struct StoredCursor {
    pub(super) scope: String,
    pub(super) token: String,
    pub(super) folders: BTreeMap<String, Folder>,
}

impl GoogleDriveSource {
    pub(super) async fn start_page_token(&self) -> Result<String> {
        let got: StartPageToken = self
            .get_json(
                "changes.getStartPageToken",
                "/drive/v3/changes/startPageToken",
                &[("supportsAllDrives", "true")],
            )
            .await?
            .map_err(|e| self.refused("changes.getStartPageToken", e))?;
        Ok(got.start_page_token)
    }

    /// What changed since the stored token; `None` when a complete listing must decide.
    pub(super) async fn delta(
        &self,
        stored: StoredCursor,
    ) -> Result<Option<(ChangeKind, StoredCursor)>> {
        let fields = format!(
            "nextPageToken,newStartPageToken,changes(changeType,removed,fileId,file({FILE_FIELDS}))"
        );
        let mut token = stored.token.clone();
        // The latest change of each file, in the order first seen.
        let mut latest: Vec<Change> = Vec::new();
        let mut at: HashMap<String, usize> = HashMap::new();
        let next = loop {
            let got = self
                .get_json::<ChangeList>(
                    "changes.list",
                    "/drive/v3/changes",
                    &[
                        ("pageToken", token.as_str()),
                        ("pageSize", PAGE_SIZE),
                        ("includeRemoved", "true"),
                        ("supportsAllDrives", "true"),
                        ("includeItemsFromAllDrives", "true"),
                        ("fields", fields.as_str()),
                    ],
                )
                .await?;
            let page = match got {
                Ok(page) => page,
                Err((status, e))
                    if status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND =>
                {
                    tracing::warn!(source = %self.id, reason = %e.message, "Google Drive refused the change token; listing in full");
                    return Ok(None);
                }
                Err(e) => return Err(self.refused("changes.list", e)),
            };
            for change in page.changes {
                if change.change_type.as_deref().is_some_and(|t| t != "file") {
                    continue;
                }
                let Some(id) = change
                    .file_id
                    .clone()
                    .or_else(|| change.file.as_ref().map(|f| f.id.clone()))
                else {
                    continue;
                };
                match at.get(&id) {
                    Some(&i) => latest[i] = change,
                    None => {
                        at.insert(id, latest.len());
                        latest.push(change);
                    }
                }
            }
            match (page.next_page_token, page.new_start_page_token) {
                (Some(t), _) => token = t,
                (None, Some(t)) => break t,
                (None, None) => {
                    return Err(self.http.remote(
                        "changes.list: Google Drive's answer has neither nextPageToken nor newStartPageToken; nothing is deleted".into(),
                    ));
                }
            }
        };
        let mut folders = stored.folders;
        // Folders first: a file is placed by the folders as they are now.
        for change in &latest {
            let id = change
                .file_id
                .as_deref()
                .or(change.file.as_ref().map(|f| f.id.as_str()))
                .unwrap_or_default();
            let is_folder = change.file.as_ref().is_some_and(|f| f.mime_type == FOLDER);
            if !is_folder && !folders.contains_key(id) {
                continue;
            }
            let gone = change.removed || change.file.as_ref().is_none_or(|f| f.trashed);
            let by_drive = change
                .file
                .as_ref()
                .and_then(|f| f.drive_id.as_ref())
                .is_some_and(|d| self.drive_ids.contains(d));
            if self.drive_ids.iter().any(|d| d == id) {
                continue;
            }
            let root = self.folder_ids.iter().any(|r| r == id);
            let parent = change.file.as_ref().and_then(|f| {
                f.parents
                    .iter()
                    .find(|p| *p != id && folders.contains_key(*p))
                    .cloned()
            });
            let now_in = !gone && (root || parent.is_some() || by_drive);
            let known = folders.contains_key(id);
            match (known, now_in) {
                (true, true) => {
                    let f = change
                        .file
                        .as_ref()
                        .expect("a folder in scope has metadata");
                    let entry = folders.get_mut(id).expect("known");
                    entry.name = if root { String::new() } else { f.name.clone() };
                    if !root {
                        entry.parent = parent.or_else(|| f.parents.first().cloned());
                    }
                }
                (false, false) => {}
                (false, true) if by_drive => {
                    let f = change
                        .file
                        .as_ref()
                        .expect("a folder in scope has metadata");
                    folders.insert(
                        id.to_string(),
                        Folder {
                            parent: f.parents.first().cloned(),
                            name: f.name.clone(),
                        },
                    );
                }
                _ => {
                    tracing::info!(source = %self.id, folder = id, "a folder entered or left the scope; listing in full");
                    return Ok(None);
                }
            }
        }
        let (mut entries, mut deleted, mut issues) = (Vec::new(), Vec::new(), Vec::new());
        for change in &latest {
            let file = change.file.as_ref();
            if file.is_some_and(|f| f.mime_type == FOLDER) {
                continue;
            }
            let Some(id) = change.file_id.as_deref().or(file.map(|f| f.id.as_str())) else {
                continue;
            };
            // Whatever name the file had before: the entry below, if any, takes its place.
            deleted.push(format!("gdrive:{id}"));
            let Some(f) = file.filter(|f| !change.removed && !f.trashed) else {
                continue;
            };
            let in_scope = f.parents.iter().any(|p| folders.contains_key(p))
                || f.drive_id
                    .as_ref()
                    .is_some_and(|d| self.drive_ids.contains(d));
            if in_scope && let Some(entry) = self.entry(f, &folders, &mut issues) {
                entries.push(entry);
            }
        }
        Ok(Some((
            ChangeKind::Delta {
                entries,
                deleted,
                issues,
            },
            StoredCursor {
                scope: stored.scope,
                token: next,
                folders,
            },
        )))
    }

    pub(super) fn stored(cursor: &StoredCursor) -> String {
        serde_json::to_string(cursor).expect("a cursor serializes")
    }
}
