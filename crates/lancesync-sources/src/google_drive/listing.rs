//! Complete listings: every folder in scope, walked breadth first, and every file in them.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::changes::StoredCursor;
use super::client::{DriveFile, FileList};
use super::export::export_of;
use super::{FILE_FIELDS, FOLDER, FOLDERS_PER_QUERY, GoogleDriveSource, NATIVE, PAGE_SIZE, millis};
use crate::{Listing, ListingIssue, Result, SourceEntry};

/// A folder in scope: its parent (`None` for a configured root) and name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Folder {
    pub(super) parent: Option<String>,
    pub(super) name: String,
}

impl GoogleDriveSource {
    /// Every page of one files.list query, each file handed to `each`.
    pub(super) async fn list_all(
        &self,
        query: &[(&str, &str)],
        mut each: impl FnMut(DriveFile),
    ) -> Result<()> {
        let fields = format!("nextPageToken,incompleteSearch,files({FILE_FIELDS})");
        let mut page_token: Option<String> = None;
        loop {
            let mut q: Vec<(&str, &str)> = query.to_vec();
            q.extend([
                ("pageSize", PAGE_SIZE),
                ("fields", fields.as_str()),
                ("supportsAllDrives", "true"),
                ("includeItemsFromAllDrives", "true"),
            ]);
            if let Some(t) = &page_token {
                q.push(("pageToken", t));
            }
            let page: FileList = self
                .get_json("files.list", "/drive/v3/files", &q)
                .await?
                .map_err(|e| self.refused("files.list", e))?;
            if page.incomplete_search {
                return Err(self.http.remote(
                    "files.list: Google Drive says the listing is incomplete; nothing is deleted, the next run lists again".into(),
                ));
            }
            page.files.into_iter().for_each(&mut each);
            match page.next_page_token {
                Some(t) => page_token = Some(t),
                None => return Ok(()),
            }
        }
    }

    /// A complete listing, the folders in scope, and the change token from before it.
    pub(super) async fn full(&self) -> Result<(Listing, StoredCursor)> {
        // The token comes first: what changes while the listing runs is replayed next time.
        let token = self.start_page_token().await?;
        let mut folders: BTreeMap<String, Folder> = BTreeMap::new();
        let mut files: BTreeMap<String, DriveFile> = BTreeMap::new();
        for root in &self.folder_ids {
            let path = format!("/drive/v3/files/{root}");
            let meta: DriveFile = self
                .get_json(
                    "files.get",
                    &path,
                    &[("fields", FILE_FIELDS), ("supportsAllDrives", "true")],
                )
                .await?
                .map_err(|(status, e)| {
                    self.http.remote(if status == StatusCode::NOT_FOUND {
                        format!("folder {root} is not in Google Drive, or not shared with this account; nothing is deleted")
                    } else {
                        format!("files.get {root}: Google Drive answered {status}: {}; nothing is deleted", e.message)
                    })
                })?;
            if meta.mime_type != FOLDER || meta.trashed {
                return Err(self.http.remote(format!(
                    "{root} ({:?}) is {}, not a folder; nothing is deleted",
                    meta.name,
                    if meta.trashed {
                        "in the trash"
                    } else {
                        "a file"
                    }
                )));
            }
            folders.insert(
                root.clone(),
                Folder {
                    parent: None,
                    name: String::new(),
                },
            );
        }
        let mut queue: Vec<String> = self.folder_ids.clone();
        while !queue.is_empty() {
            let batch: Vec<String> = queue.drain(..queue.len().min(FOLDERS_PER_QUERY)).collect();
            let q = format!(
                "({}) and trashed = false",
                batch
                    .iter()
                    .map(|id| format!("'{id}' in parents"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            );
            self.list_all(&[("q", q.as_str()), ("corpora", "allDrives")], |f| {
                if f.mime_type == FOLDER {
                    if !folders.contains_key(&f.id) {
                        let parent = f.parents.iter().find(|p| batch.contains(p)).cloned();
                        queue.push(f.id.clone());
                        folders.insert(
                            f.id.clone(),
                            Folder {
                                parent,
                                name: f.name,
                            },
                        );
                    }
                } else {
                    files.insert(f.id.clone(), f);
                }
            })
            .await?;
        }
        for drive in &self.drive_ids {
            folders.entry(drive.clone()).or_insert(Folder {
                parent: None,
                name: String::new(),
            });
            let mut found = Vec::new();
            self.list_all(
                &[
                    ("q", "trashed = false"),
                    ("corpora", "drive"),
                    ("driveId", drive),
                ],
                |f| found.push(f),
            )
            .await?;
            for f in found {
                if f.mime_type == FOLDER {
                    let parent = f.parents.first().cloned();
                    folders.entry(f.id.clone()).or_insert(Folder {
                        parent,
                        name: f.name,
                    });
                } else {
                    files.insert(f.id.clone(), f);
                }
            }
        }
        let mut listing = Listing::default();
        for f in files.values() {
            if let Some(entry) = self.entry(f, &folders, &mut listing.issues) {
                listing.entries.push(entry);
            }
        }
        listing.entries.sort_unstable_by(|a, b| a.uri.cmp(&b.uri));
        let cursor = StoredCursor {
            scope: self.scope_key(),
            token,
            folders,
        };
        Ok((listing, cursor))
    }

    /// The path of folder `id` below its root, by names (`Reports/2024`).
    pub(super) fn folder_path(folders: &BTreeMap<String, Folder>, id: &str) -> String {
        let mut names = Vec::new();
        let mut at = Some(id.to_string());
        while let Some(folder) = at.as_ref().and_then(|i| folders.get(i)) {
            if names.len() > 64 {
                break;
            }
            if !folder.name.is_empty() {
                names.push(folder.name.clone());
            }
            at = folder.parent.clone();
        }
        names.reverse();
        names.join("/")
    }

    /// A listed file as an entry, if it is a document the patterns take.
    pub(super) fn entry(
        &self,
        f: &DriveFile,
        folders: &BTreeMap<String, Folder>,
        issues: &mut Vec<ListingIssue>,
    ) -> Option<SourceEntry> {
        let export = export_of(&f.mime_type);
        if f.mime_type.starts_with(NATIVE) && export.is_none() {
            // Folders, shortcuts, forms, drawings: nothing to read as text.
            return None;
        }
        let mut name = f.name.replace('/', "\u{2215}");
        if let Some((_, ext)) = export
            && !name.to_ascii_lowercase().ends_with(&format!(".{ext}"))
        {
            name = format!("{name}.{ext}");
        }
        let parent = f.parents.iter().find(|p| folders.contains_key(*p));
        let relative = match parent.map(|p| Self::folder_path(folders, p)) {
            Some(dir) if !dir.is_empty() => format!("{dir}/{name}"),
            _ => name.clone(),
        };
        if !self.filter.accepts(&relative) {
            return None;
        }
        let uri = format!("gdrive:{}/{name}", f.id);
        self.exports
            .lock()
            .expect("exports")
            .insert(f.id.clone(), export.map(|(mime, _)| mime));
        let size = f.size.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0);
        if export.is_none()
            && let Some(limit) = self.max_file_size
            && size > limit
        {
            issues.push(ListingIssue {
                uri: uri.clone(),
                reason: format!(
                    "{size} bytes, over the {limit}-byte limit; recorded as failed when read"
                ),
            });
        }
        let version = f
            .head_revision_id
            .clone()
            .or_else(|| f.modified_time.clone());
        Some(SourceEntry {
            version,
            content_hash: f.md5_checksum.as_ref().map(|m| format!("gdrive-md5:{m}")),
            title: Some(f.name.clone()),
            ..SourceEntry::new(uri, size, millis(f.modified_time.as_deref()))
        })
    }
}
