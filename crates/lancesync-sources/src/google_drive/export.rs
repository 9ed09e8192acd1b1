//! Reading a file: binary content with `alt=media`, Google's own formats exported.

use md5::Digest;
use md5::Md5;
use reqwest::StatusCode;

use super::client::{Answer, DriveFile};
use super::{FILE_FIELDS, GoogleDriveSource, valid_id};
use crate::{Error, Result, SourceEntry};

/// The largest export Drive makes of one Google Docs, Sheets or Slides file.
pub(super) const EXPORT_LIMIT: &str = "10 MB";

/// How to export one of Google's own formats: the MIME type asked for and the extension the
/// document gets.
pub(super) fn export_of(mime: &str) -> Option<(&'static str, &'static str)> {
    match mime {
        "application/vnd.google-apps.document" => Some(("text/markdown", "md")),
        "application/vnd.google-apps.spreadsheet" => Some(("text/csv", "csv")),
        "application/vnd.google-apps.presentation" => Some(("text/plain", "txt")),
        _ => None,
    }
}

impl GoogleDriveSource {
    /// The export MIME type of file `id` (`None`: binary), from this run's listing or Drive.
    pub(super) async fn export_mime(
        &self,
        id: &str,
    ) -> std::result::Result<Option<&'static str>, String> {
        if let Some(known) = self.exports.lock().expect("exports").get(id) {
            return Ok(*known);
        }
        let path = format!("/drive/v3/files/{id}");
        match self
            .get_json::<DriveFile>(
                "files.get",
                &path,
                &[("fields", FILE_FIELDS), ("supportsAllDrives", "true")],
            )
            .await
        {
            Ok(Ok(f)) => Ok(export_of(&f.mime_type).map(|(mime, _)| mime)),
            Ok(Err((StatusCode::NOT_FOUND, _))) => Err("no longer in Google Drive".into()),
            Ok(Err((status, e))) => Err(format!("Google Drive answered {status}: {}", e.message)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The bytes of a listed file: its content, or for Google's own formats their export.
    pub(super) async fn download(&self, entry: &SourceEntry) -> Result<Vec<u8>> {
        let read_error = |reason: String| Error::Read {
            uri: entry.uri.clone(),
            reason,
        };
        let id = entry
            .uri
            .strip_prefix("gdrive:")
            .and_then(|rest| rest.split('/').next())
            .filter(|id| valid_id(id))
            .ok_or_else(|| read_error("not a Google Drive document".into()))?;
        let export = self.export_mime(id).await.map_err(read_error)?;
        if export.is_none()
            && let Some(limit) = self.max_file_size
            && entry.size > limit
        {
            return Err(Error::TooLarge {
                uri: entry.uri.clone(),
                size: entry.size,
                limit,
            });
        }
        let answer = match export {
            Some(mime) => {
                self.get(
                    "files.export",
                    &format!("/drive/v3/files/{id}/export"),
                    &[("mimeType", mime)],
                )
                .await
            }
            None => {
                self.get(
                    "files.get",
                    &format!("/drive/v3/files/{id}"),
                    &[("alt", "media"), ("supportsAllDrives", "true")],
                )
                .await
            }
        };
        let response = match answer {
            Ok(Answer::Body(response)) => response,
            Ok(Answer::Refused(status, e)) => {
                return Err(read_error(if e.has("exportSizeLimitExceeded") {
                    format!(
                        "Google Drive exports at most {EXPORT_LIMIT} of a Google Docs, Sheets or Slides file, and this one is larger; split it, or download it as a file"
                    )
                } else if status == StatusCode::NOT_FOUND {
                    "no longer in Google Drive".into()
                } else {
                    format!("Google Drive answered {status}: {}", e.message)
                }));
            }
            // A token refused for good stops the run; any other failure is this document's.
            Err(e @ Error::Auth { .. }) => return Err(e),
            Err(e) => return Err(read_error(e.to_string())),
        };
        let bytes = response
            .bytes()
            .await
            .map_err(|e| read_error(format!("download cut short: {}", e.without_url())))?;
        if let Some(limit) = self.max_file_size
            && bytes.len() as u64 > limit
        {
            return Err(Error::TooLarge {
                uri: entry.uri.clone(),
                size: bytes.len() as u64,
                limit,
            });
        }
        if let Some(listed) = entry
            .content_hash
            .as_deref()
            .and_then(|h| h.strip_prefix("gdrive-md5:"))
        {
            let got: String = Md5::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if got != listed {
                return Err(read_error(
                    "changed in Google Drive since it was listed (or damaged in transit); read again on the next run".into(),
                ));
            }
        }
        Ok(bytes.to_vec())
    }
}
