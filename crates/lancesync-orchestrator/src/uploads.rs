//! Documents given to the API: uploads (kept in the user's uploads folder, the `uploads`
//! source), documents the caller chunked (the `manual` source), and deleting one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lancesync_engine::{SyncOptions, ids};
use lancesync_sources::DocumentSource;

use crate::{Error, InProgress, MANUAL, Orchestrator, Result, UPLOADS};

/// Check an upload's file name: a plain name (no folders), not hidden, with an extension.
fn upload_name(filename: &str) -> Result<String> {
    let name = filename.trim();
    let plain = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && std::path::Path::new(name).extension().is_some();
    if plain {
        Ok(name.to_string())
    } else {
        Err(Error::Invalid(format!(
            "{:?} is not an acceptable file name: give a plain name with an extension (notes.md), no folders",
            name.chars().take(80).collect::<String>()
        )))
    }
}

impl Orchestrator {
    /// Where a user's uploaded files are kept: the folder of the `uploads` source.
    pub(crate) fn uploads_dir(&self, user_id: &str) -> PathBuf {
        self.state_dir().join(user_id).join(UPLOADS)
    }

    pub(crate) fn uploads_source(&self, user_id: &str) -> Result<Arc<dyn DocumentSource>> {
        let dir = self.uploads_dir(user_id);
        let config = lancesync_sources::LocalFsConfig::new([dir.display().to_string()]);
        Ok(Arc::new(lancesync_sources::LocalFsSource::new(
            UPLOADS,
            config,
            &self.inner.env,
        )?))
    }

    /// Index a document given as bytes (an upload): it is kept in the user's uploads folder
    /// (the `uploads` source) and indexed at once, replacing an earlier upload of the same
    /// name. Returns the document as indexed; a document that could not be processed (an
    /// unsupported type, a corrupt PDF) comes back with `processing_status = failed` and
    /// the reason.
    pub async fn upload(
        &self,
        user_id: &str,
        filename: &str,
        bytes: &[u8],
    ) -> Result<lancesync_engine::DocumentInfo> {
        if *self.inner.shutdown.borrow() {
            return Err(Error::ShuttingDown);
        }
        ids::validate_user_id(user_id)?;
        let name = upload_name(filename)?;
        // Refused before anything is stored: a file no sync would index would sit in the
        // uploads folder with no row through which the API could delete it.
        let named = std::path::Path::new(&name);
        if lancesync_ingest::DocType::from_path(named).is_none() {
            let extension = named.extension().unwrap_or_default().to_string_lossy();
            let why = lancesync_ingest::Error::Unsupported(extension.into_owned());
            return Err(Error::Unsupported(format!(
                "{name}: {why}; nothing was stored"
            )));
        }
        let dir = self.uploads_dir(user_id);
        let path = dir.join(&name);
        let io = |e: std::io::Error| Error::Invalid(format!("cannot store the upload: {e}"));
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        // Written beside, then renamed: a scan never sees half a file.
        let partial = dir.join(format!(".{name}.partial"));
        tokio::fs::write(&partial, bytes).await.map_err(io)?;
        tokio::fs::rename(&partial, &path).await.map_err(io)?;
        let source = self.uploads_source(user_id)?;
        let _working = InProgress::new(&self.inner);
        let mut waited = 0;
        loop {
            match self
                .inner
                .engine
                .sync(
                    user_id,
                    source.as_ref(),
                    SyncOptions {
                        allow_mass_delete: true,
                        retry_failed: true,
                        dry_run: false,
                    },
                    &lancesync_engine::NoProgress,
                )
                .await
            {
                // Another upload of this user is being indexed: it will be done shortly.
                Err(
                    lancesync_engine::Error::Busy { .. }
                    | lancesync_engine::Error::Reindexing { .. },
                ) if waited < 600 => {
                    waited += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => {
                    other?;
                    break;
                }
            }
        }
        let uri = source
            .watch_roots()
            .first()
            .map(|root| root.join(&name).display().to_string())
            .unwrap_or_default();
        let doc_id = ids::doc_id(user_id, UPLOADS, &uri);
        match self.inner.engine.document(user_id, &doc_id).await? {
            Some(found) => Ok(found.document),
            None => {
                // Not indexed, so no row could ever delete it: do not keep it.
                let _ = tokio::fs::remove_file(&path).await;
                Err(Error::Invalid(format!(
                    "{name} could not be indexed and was not kept; see the server log"
                )))
            }
        }
    }

    /// Write a document the caller chunked (and perhaps embedded) under the `manual` source.
    pub async fn ingest_precomputed(
        &self,
        user_id: &str,
        doc: lancesync_engine::PrecomputedDocument,
    ) -> Result<lancesync_engine::DocumentInfo> {
        if *self.inner.shutdown.borrow() {
            return Err(Error::ShuttingDown);
        }
        let _working = InProgress::new(&self.inner);
        Ok(self
            .inner
            .engine
            .ingest_precomputed(user_id, MANUAL, doc)
            .await?)
    }

    /// Remove a document from a user's index; an uploaded one is also deleted from the
    /// uploads folder (a folder source's document returns on the next run if still there).
    /// Returns whether it existed.
    pub async fn delete_document(&self, user_id: &str, doc_id: &str) -> Result<bool> {
        let engine = &self.inner.engine;
        let Some(doc) = engine.document(user_id, doc_id).await? else {
            return Ok(false);
        };
        if doc.document.source_id == UPLOADS {
            let dir = self.uploads_dir(user_id);
            let path = PathBuf::from(&doc.document.source_uri);
            // Only ever a file directly inside this user's uploads folder.
            if path.parent() == Some(dir.as_path()) {
                match tokio::fs::remove_file(&path).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::Invalid(format!("cannot delete the upload: {e}"))),
                }
            }
        }
        Ok(engine.delete_document(user_id, doc_id).await?)
    }
}
