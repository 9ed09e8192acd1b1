//! Batched writes: appends for new documents, keyed replacements for the rest, deletes chunks
//! first.

use super::{IDS_PER_STATEMENT, UserTables, reader};
use crate::Result;
use crate::ids::sql_in;
use crate::rows::{self, ChunkRow, DocRow};

impl UserTables {
    /// Append chunk rows (of documents that have none), in one commit.
    pub async fn add_chunks(&self, rows: &[ChunkRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let batch = rows::chunks_to_batch(rows, self.dim)?;
        self.chunks.add(reader(batch)).execute().await?;
        Ok(())
    }

    /// Append document rows (of documents that have none), in one commit.
    pub async fn add_docs(&self, rows: &[DocRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let batch = rows::docs_to_batch(rows, self.dim)?;
        self.docs.add(reader(batch)).execute().await?;
        Ok(())
    }

    /// Replace the chunks of `replace_docs` with `rows`, in one commit: rows are upserted by
    /// `chunk_id`, and every other chunk of those documents is deleted.
    pub async fn replace_chunks(&self, rows: &[ChunkRow], replace_docs: &[String]) -> Result<()> {
        if replace_docs.is_empty() {
            return Ok(());
        }
        if rows.is_empty() {
            self.chunks.delete(&sql_in("doc_id", replace_docs)).await?;
            return Ok(());
        }
        let batch = rows::chunks_to_batch(rows, self.dim)?;
        let mut merge = self.chunks.merge_insert(&["chunk_id"]);
        merge
            .when_matched_update_all(None)
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(Some(sql_in("doc_id", replace_docs)));
        merge.execute(reader(batch)).await?;
        Ok(())
    }

    /// Upsert document rows by `doc_id`, in one commit.
    pub async fn upsert_docs(&self, rows: &[DocRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let batch = rows::docs_to_batch(rows, self.dim)?;
        let mut merge = self.docs.merge_insert(&["doc_id"]);
        merge
            .when_matched_update_all(None)
            .when_not_matched_insert_all();
        merge.execute(reader(batch)).await?;
        Ok(())
    }

    /// Delete documents: their chunks first, then their rows, so a crash in between leaves a
    /// row the next run deletes again rather than chunks nobody points to.
    pub async fn delete_docs(&self, doc_ids: &[String]) -> Result<()> {
        for slice in doc_ids.chunks(IDS_PER_STATEMENT) {
            self.chunks.delete(&sql_in("doc_id", slice)).await?;
        }
        for slice in doc_ids.chunks(IDS_PER_STATEMENT) {
            self.docs.delete(&sql_in("doc_id", slice)).await?;
        }
        Ok(())
    }
}
