//! What lives in the tables' manifests: the embedder identity, the chunk settings and the
//! sources' change cursors.

use lancesync_ingest::{ChunkConfig, EmbedderIdentity};

use super::UserTables;
use crate::{Error, Result};

/// Key of the embedder identity in the chunks table's manifest config.
const EMBEDDER_KEY: &str = "lancesync.embedder";

/// Key of the chunk settings in the chunks table's manifest config.
const CHUNKING_KEY: &str = "lancesync.chunking";

/// The manifest key of a source's change cursor (source ids are validated: no separators).
fn cursor_key(source_id: &str) -> String {
    format!("lancesync.cursor.{source_id}")
}

impl UserTables {
    /// Compare the stored embedder identity with ours; record ours if none is stored and
    /// `record` (a read-only opener, such as a cache replica, never writes).
    pub(crate) async fn check_embedder(
        &self,
        embedder: &EmbedderIdentity,
        record: bool,
    ) -> Result<()> {
        let native = self
            .chunks
            .as_native()
            .ok_or_else(|| Error::Internal("chunks table is not a local table".into()))?;
        let json = match native.manifest().await?.config.get(EMBEDDER_KEY).cloned() {
            Some(json) => json,
            None if !record => return Ok(()),
            None => {
                let ours =
                    serde_json::to_string(embedder).map_err(|e| Error::Internal(e.to_string()))?;
                match native
                    .update_config([(EMBEDDER_KEY.to_string(), ours)])
                    .await
                {
                    Ok(()) => return Ok(()),
                    Err(write_error) => {
                        // Another opener recorded an identity first: compare with theirs.
                        self.chunks.checkout_latest().await?;
                        native
                            .manifest()
                            .await?
                            .config
                            .get(EMBEDDER_KEY)
                            .cloned()
                            .ok_or(write_error)?
                    }
                }
            }
        };
        let stored: EmbedderIdentity = serde_json::from_str(&json)
            .map_err(|e| Error::Internal(format!("unreadable embedder identity {json:?}: {e}")))?;
        if &stored == embedder {
            Ok(())
        } else {
            Err(Error::EmbedderMismatch {
                user_id: self.user_id.clone(),
                stored: Box::new(stored),
                configured: Box::new(embedder.clone()),
            })
        }
    }

    /// Compare the chunk settings stored with the tables with `chunking`, recording it if
    /// none is stored and `record` (tables from before settings were recorded take the
    /// current ones; a dry run records nothing).
    /// Called before writing chunks: documents chunked two ways would search unevenly and
    /// overlap where they should not.
    pub async fn check_chunking(&self, chunking: &ChunkConfig, record: bool) -> Result<()> {
        match self.stored_chunking().await? {
            Some(stored) if &stored == chunking => Ok(()),
            Some(stored) => Err(Error::ChunkingChanged {
                user_id: self.user_id.clone(),
                stored,
                configured: *chunking,
            }),
            None if !record => Ok(()),
            None => {
                let ours =
                    serde_json::to_string(chunking).map_err(|e| Error::Internal(e.to_string()))?;
                // Two first runs of a new user record the same settings: the second write
                // goes again on the first's version.
                super::generation::update_config(
                    &self.chunks,
                    vec![(CHUNKING_KEY.to_string(), ours)],
                )
                .await
            }
        }
    }

    /// The chunk settings stored with the tables.
    pub async fn stored_chunking(&self) -> Result<Option<ChunkConfig>> {
        Ok(self
            .native_chunks()?
            .manifest()
            .await?
            .config
            .get(CHUNKING_KEY)
            .and_then(|j| serde_json::from_str(j).ok()))
    }

    /// The embedder identity stored with the tables.
    pub async fn stored_embedder(&self) -> Result<Option<EmbedderIdentity>> {
        let native = self
            .chunks
            .as_native()
            .ok_or_else(|| Error::Internal("chunks table is not a local table".into()))?;
        Ok(native
            .manifest()
            .await?
            .config
            .get(EMBEDDER_KEY)
            .and_then(|j| serde_json::from_str(j).ok()))
    }

    /// The change cursor stored for a source (a remote API's cursor or page token).
    ///
    /// Cursors live in the documents table's manifest, not in a file beside it: they are
    /// written after the changes they cover, in a commit of their own, and they travel with
    /// the data through backups, restores, multi-device sync and re-indexing, so a cursor can
    /// never be ahead of the tables it describes.
    pub async fn cursor(&self, source_id: &str) -> Result<Option<String>> {
        Ok(self
            .native_docs()?
            .manifest()
            .await?
            .config
            .get(&cursor_key(source_id))
            .cloned())
    }

    /// Store a source's cursor (after the changes it covers are written).
    pub async fn set_cursor(&self, source_id: &str, cursor: &str) -> Result<()> {
        super::generation::update_config(
            &self.docs,
            vec![(cursor_key(source_id), cursor.to_string())],
        )
        .await
    }

    /// Forget a source's cursor (its documents were removed): its next run lists in full.
    pub async fn clear_cursor(&self, source_id: &str) -> Result<()> {
        if self.cursor(source_id).await?.is_some() {
            super::generation::delete_config(&self.docs, &[cursor_key(source_id).as_str()]).await?;
        }
        Ok(())
    }

    fn native_chunks(&self) -> Result<&lancedb::table::NativeTable> {
        self.chunks
            .as_native()
            .ok_or_else(|| Error::Internal("chunks table is not a local table".into()))
    }

    fn native_docs(&self) -> Result<&lancedb::table::NativeTable> {
        self.docs
            .as_native()
            .ok_or_else(|| Error::Internal("documents table is not a local table".into()))
    }
}
