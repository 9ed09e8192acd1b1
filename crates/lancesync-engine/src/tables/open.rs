//! Finding or creating a user's tables, one creator at a time.

use lancedb::Table;
use lancesync_ingest::EmbedderIdentity;
use lancesync_storage::Database;

use super::{TableSettings, UserTables};
use crate::ids::validate_user_id;
use crate::lock::FileLock;
use crate::rows;
use crate::{Error, Result};

/// Index cache per user database: indexes (full text, vector, BTree) stay warm for search.
const INDEX_CACHE_BYTES: usize = 256 << 20;
/// Metadata cache per user database. Lance caches the manifest of every version it reads, and a
/// long run writes hundreds, each listing every fragment so far: lance's default (1 GiB), and
/// even 32 MiB, filled during a 100,000-document first sync (about 45 MB of its peak). The
/// current version's manifest, file and index metadata fit easily in this.
const METADATA_CACHE_BYTES: usize = 4 << 20;

/// A session whose caches are bounded (see the constants above).
fn bounded_session() -> std::sync::Arc<lancedb::Session> {
    std::sync::Arc::new(lancedb::Session::new(
        INDEX_CACHE_BYTES,
        METADATA_CACHE_BYTES,
        std::sync::Arc::new(lancedb::ObjectStoreRegistry::default()),
    ))
}

impl UserTables {
    /// Open user `user_id`'s database at `db`, creating the tables if needed. Vectors from
    /// another embedder are refused.
    pub async fn open(
        db: &Database,
        user_id: &str,
        settings: &TableSettings,
        embedder: &EmbedderIdentity,
    ) -> Result<Self> {
        Self::open_with(db, user_id, settings, Some(embedder), true)
            .await?
            .ok_or_else(|| Error::Internal("tables missing after creation".into()))
    }

    /// Open user `user_id`'s database if both tables exist; `None` (and nothing written) if
    /// the user has none yet, so reads for unknown users leave no trace.
    pub async fn open_existing(
        db: &Database,
        user_id: &str,
        settings: &TableSettings,
        embedder: &EmbedderIdentity,
    ) -> Result<Option<Self>> {
        Self::open_with(db, user_id, settings, Some(embedder), false).await
    }

    /// Open user `user_id`'s database if both tables exist, whatever embedder built them (its
    /// dimension is taken from the tables): for readers, which pick the query embedder by
    /// the identity the tables hold.
    pub async fn open_any(
        db: &Database,
        user_id: &str,
        settings: &TableSettings,
    ) -> Result<Option<Self>> {
        Self::open_with(db, user_id, settings, None, false).await
    }

    /// `expected`: the embedder identity the tables must hold (recorded when `create`
    /// creates them); `None` accepts any (never with `create`).
    async fn open_with(
        db: &Database,
        user_id: &str,
        settings: &TableSettings,
        expected: Option<&EmbedderIdentity>,
        create: bool,
    ) -> Result<Option<Self>> {
        validate_user_id(user_id)?;
        if let Some(dir) = &db.local_dir {
            if !create && !dir.is_dir() {
                return Ok(None);
            }
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| Error::Io {
                    path: dir.clone(),
                    source: e,
                })?;
        }
        // Every read checks for a newer version, so a handle sees what other processes wrote
        // (a CLI sync while a server searches) at the cost of one manifest check per read.
        let connection = lancedb::connect(&db.uri)
            .storage_options(db.storage_options.clone())
            .read_consistency_interval(std::time::Duration::ZERO)
            .session(bounded_session())
            .execute()
            .await?;
        let dim = expected.map_or(0, |e| e.dimension);
        if create && expected.is_none() {
            return Err(Error::Internal("tables are created for an embedder".into()));
        }
        let (docs_name, chunks_name) = (&settings.documents_table, &settings.chunks_table);
        let names = connection.table_names().execute().await?;
        let listed = names.contains(docs_name) && names.contains(chunks_name);
        // Fast path: both tables listed and open. A table's folder is listed as soon as its
        // creation starts, so a failed open here falls through to the locked path.
        let opened = if listed {
            match futures::try_join!(
                connection.open_table(docs_name).execute(),
                connection.open_table(chunks_name).execute()
            ) {
                Ok(both) => Some(both),
                Err(e) => {
                    tracing::debug!(error = %e, "tables still being created; waiting for the creator");
                    None
                }
            }
        } else {
            None
        };
        // Creating is serialised by a lock file, so an opener never sees a table whose first
        // version is still being written: it waits for the creator, then opens.
        let mut _creating = None;
        let (docs, chunks) = match opened {
            Some(both) => both,
            None => {
                // An original documents table alone: refused before a lock file or a table is
                // written beside it.
                if names.contains(docs_name)
                    && let Ok(docs) = connection.open_table(docs_name).execute().await
                {
                    ensure_not_original(&docs, &db.uri).await?;
                }
                let lock = FileLock::acquire(db.state_dir.join("tables.lock")).await?;
                let names = connection.table_names().execute().await?;
                let both = names.contains(docs_name) && names.contains(chunks_name);
                if !create && !both {
                    return Ok(None);
                }
                let open_or_create = |name: &String, schema| {
                    let connection = connection.clone();
                    let exists = names.contains(name);
                    let name = name.clone();
                    async move {
                        if exists {
                            connection.open_table(&name).execute().await
                        } else {
                            connection.create_empty_table(&name, schema).execute().await
                        }
                    }
                };
                let docs = open_or_create(docs_name, rows::doc_schema(dim)).await?;
                // Checked before the other table is created beside an original one.
                ensure_not_original(&docs, &db.uri).await?;
                let chunks = open_or_create(chunks_name, rows::chunk_schema(dim)).await?;
                // Held until the embedder identity is recorded below.
                _creating = Some(lock);
                (docs, chunks)
            }
        };
        ensure_not_original(&docs, &db.uri).await?;
        ensure_not_original(&chunks, &db.uri).await?;
        let mut tables = Self {
            user_id: user_id.to_string(),
            uri: db.uri.clone(),
            state_dir: db.state_dir.clone(),
            docs,
            chunks,
            dim,
            settings: settings.clone(),
            connection,
            fts_ready: Default::default(),
            maintaining: Default::default(),
        };
        match expected {
            Some(embedder) => tables.check_embedder(embedder, create).await?,
            None => tables.dim = vector_dimension(&*tables.chunks.schema().await?)?,
        }
        Ok(Some(tables))
    }

    /// Drop both tables (for a re-index with another embedder).
    pub async fn drop_all(self) -> Result<()> {
        self.connection
            .drop_table(&self.settings.documents_table, &[])
            .await?;
        self.connection
            .drop_table(&self.settings.chunks_table, &[])
            .await?;
        Ok(())
    }
}

/// The length of the `vector` column of a table's schema.
pub(super) fn vector_dimension(schema: &arrow_schema::Schema) -> Result<usize> {
    match schema.field_with_name("vector").map(|f| f.data_type()) {
        Ok(arrow_schema::DataType::FixedSizeList(_, n)) => Ok(*n as usize),
        _ => Err(Error::Internal(
            "the chunks table has no fixed-size vector column".into(),
        )),
    }
}

/// The original system's tables share lancesync's names but lack `source_id`; lancesync must
/// not touch them (recording the embedder identity would already write a version).
async fn ensure_not_original(table: &Table, uri: &str) -> Result<()> {
    if table.schema().await?.index_of("source_id").is_err() {
        return Err(Error::LegacyTables {
            uri: uri.to_string(),
            column: "source_id",
        });
    }
    Ok(())
}
