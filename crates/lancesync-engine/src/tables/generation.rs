//! Blue/green generations of a user's tables: the shadow tables a re-index builds beside the
//! live ones, the record in the live documents table that tells readers which pair to read,
//! and copying one generation into the live names (LanceDB OSS cannot rename a table, and
//! the original system's readers open the tables by name).

use std::collections::HashMap;

use lancedb::Table;
use lancedb::query::ExecutableQuery;
use lancedb::table::AddDataMode;
use lancesync_storage::Database;

use super::{TableSettings, UserTables};
use crate::{Error, Result};

/// Appended to the configured table names for the shadow tables.
pub const SHADOW_SUFFIX: &str = "__reindex";

/// Key, in the live documents table's manifest, of the switch readers follow: present (with
/// the value [`SERVING_SHADOW`]) while searches must read the shadow tables.
const SERVING_KEY: &str = "lancesync.serving";
const SERVING_SHADOW: &str = "shadow";

/// Prefix of the manifest keys lancesync owns (identity, chunking, cursors, records).
const OWN_KEYS: &str = "lancesync.";

/// Key, in the live documents table's manifest, of the record of the generation the last
/// re-index replaced (`lancesync_engine::PreviousGeneration`).
pub(crate) const PREVIOUS_KEY: &str = "lancesync.reindex.previous";

/// The tag naming the live tables' versions from before the last re-index (kept for
/// `reindex --rollback`; tagged versions survive pruning).
pub const BEFORE_REINDEX_TAG: &str = "lancesync-before-reindex";

impl TableSettings {
    /// The same settings for the shadow tables.
    pub fn shadow(&self) -> TableSettings {
        TableSettings {
            documents_table: format!("{}{SHADOW_SUFFIX}", self.documents_table),
            chunks_table: format!("{}{SHADOW_SUFFIX}", self.chunks_table),
            ..self.clone()
        }
    }
}

/// The shadow tables' database: the user's database, with its own folder for run locks,
/// markers and reports, so the re-index's runs never meet the live tables' runs there.
pub fn shadow_database(db: &Database) -> Database {
    Database {
        state_dir: db.state_dir.join("reindex"),
        ..db.clone()
    }
}

async fn manifest_config(table: &Table) -> Result<HashMap<String, String>> {
    let native = table
        .as_native()
        .ok_or_else(|| Error::Internal(format!("{} is not a local table", table.name())))?;
    Ok(native.manifest().await?.config)
}

/// Whether a commit lost to a concurrent one that lance will not merge with it (two config
/// updates of one table are refused as incompatible, whatever keys they touch).
pub(super) fn lost_to_concurrent_commit(e: &lancedb::Error) -> bool {
    let text = e.to_string();
    text.contains("ncompatible transaction") || text.contains("ommit conflict")
}

/// `commit` on `table`'s native handle, made again on the latest version when another
/// writer's commit got in first (lance refuses two config updates of one table as
/// incompatible, whatever keys they touch).
async fn commit_config<'a, F, Fut>(table: &'a Table, commit: F) -> Result<()>
where
    F: Fn(&'a lancedb::table::NativeTable) -> Fut,
    Fut: std::future::Future<Output = lancedb::Result<()>>,
{
    let native = table
        .as_native()
        .ok_or_else(|| Error::Internal(format!("{} is not a local table", table.name())))?;
    let mut attempt = 0u32;
    loop {
        match commit(native).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 8 && lost_to_concurrent_commit(&e) => {
                attempt += 1;
                table.checkout_latest().await?;
                tokio::time::sleep(std::time::Duration::from_millis(5 << attempt.min(6))).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Write manifest config values (again after a concurrent commit: runs of two sources of one
/// user store their cursors, and a new user's first runs their chunk settings, at the same
/// moments).
pub(super) async fn update_config(table: &Table, values: Vec<(String, String)>) -> Result<()> {
    if values.is_empty() {
        return Ok(());
    }
    commit_config(table, |native| native.update_config(values.clone())).await
}

/// Delete manifest config keys (again after a concurrent commit).
pub(super) async fn delete_config(table: &Table, keys: &[&str]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    commit_config(table, |native| native.delete_config_keys(keys)).await
}

impl UserTables {
    /// Whether readers must read the shadow tables (a re-index is switching generations).
    pub async fn serves_shadow(&self) -> Result<bool> {
        Ok(manifest_config(&self.docs)
            .await?
            .get(SERVING_KEY)
            .is_some_and(|v| v == SERVING_SHADOW))
    }

    /// Send readers to the shadow tables, or back to these: one commit of the documents
    /// table, which every reader reads.
    pub(crate) async fn set_serves_shadow(&self, shadow: bool) -> Result<()> {
        if shadow {
            update_config(
                &self.docs,
                vec![(SERVING_KEY.into(), SERVING_SHADOW.into())],
            )
            .await
        } else if self.serves_shadow().await? {
            delete_config(&self.docs, &[SERVING_KEY]).await
        } else {
            Ok(())
        }
    }

    /// A value lancesync keeps in the documents table's manifest.
    pub(crate) async fn docs_config(&self, key: &str) -> Result<Option<String>> {
        Ok(manifest_config(&self.docs).await?.get(key).cloned())
    }

    /// Keep (or with `None`, forget) a value in the documents table's manifest.
    pub(crate) async fn set_docs_config(&self, key: &str, value: Option<String>) -> Result<()> {
        match value {
            Some(v) => update_config(&self.docs, vec![(key.into(), v)]).await,
            None if self.docs_config(key).await?.is_some() => {
                delete_config(&self.docs, &[key]).await
            }
            None => Ok(()),
        }
    }

    /// Forget the generation the last re-index replaced once its time is up: its tag goes,
    /// so pruning may free its files. Returns whether it did.
    pub(crate) async fn expire_previous_generation(&self) -> Result<bool> {
        let Some(json) = self.docs_config(PREVIOUS_KEY).await? else {
            return Ok(false);
        };
        let keep_until = serde_json::from_str::<serde_json::Value>(&json)
            .ok()
            .and_then(|v| v.get("keep_until")?.as_str().map(str::to_string))
            .and_then(|t| humantime::parse_rfc3339(&t).ok());
        if keep_until.is_some_and(|t| t > std::time::SystemTime::now()) {
            return Ok(false);
        }
        self.untag(BEFORE_REINDEX_TAG).await?;
        self.set_docs_config(PREVIOUS_KEY, None).await?;
        tracing::info!(user = %self.user_id, "the generation before the last re-index is no longer kept");
        Ok(true)
    }

    /// Replace these tables' rows and lancesync's manifest values by those of `from` (the
    /// same layout, any embedder): one overwrite commit per table, the chunks first, each
    /// streamed rather than held in memory. The switch to the shadow is kept. Indexes are
    /// then built again.
    pub(crate) async fn overwrite_from(&self, from: &UserTables) -> Result<()> {
        for (to, source) in [(&self.chunks, &from.chunks), (&self.docs, &from.docs)] {
            let rows = source.query().execute().await?;
            to.add(rows).mode(AddDataMode::Overwrite).execute().await?;
            copy_own_config(source, to, to.name() == self.docs.name()).await?;
        }
        self.forget_indexes();
        self.maintain().await?;
        Ok(())
    }

    /// Versions of the documents and chunks tables now.
    pub(crate) async fn versions(&self) -> Result<(u64, u64)> {
        Ok((self.docs.version().await?, self.chunks.version().await?))
    }

    /// Name `versions` (documents, chunks) with `tag`, replacing an earlier tag of that name.
    pub(crate) async fn tag_versions(&self, tag: &str, versions: (u64, u64)) -> Result<()> {
        for (table, version) in [(&self.docs, versions.0), (&self.chunks, versions.1)] {
            let mut tags = table.tags().await?;
            if tags.list().await?.contains_key(tag) {
                tags.delete(tag).await?;
            }
            tags.create(tag, version).await?;
        }
        Ok(())
    }

    /// The versions named `tag` (documents, chunks), if both tables have it.
    pub(crate) async fn tagged_versions(&self, tag: &str) -> Result<Option<(u64, u64)>> {
        let docs = self.docs.tags().await?.list().await?;
        let chunks = self.chunks.tags().await?.list().await?;
        Ok(match (docs.get(tag), chunks.get(tag)) {
            (Some(d), Some(c)) => Some((d.version, c.version)),
            _ => None,
        })
    }

    /// Forget `tag` on both tables; their versions can then be pruned.
    pub(crate) async fn untag(&self, tag: &str) -> Result<()> {
        for table in [&self.docs, &self.chunks] {
            let mut tags = table.tags().await?;
            if tags.list().await?.contains_key(tag) {
                tags.delete(tag).await?;
            }
        }
        Ok(())
    }

    /// A fresh handle on the chunks table pinned at `version`, or at its latest: reads through
    /// it see that version however the table moves on meanwhile.
    pub(crate) async fn chunks_pinned(&self, version: Option<u64>) -> Result<Table> {
        let chunks = self
            .connection
            .open_table(self.chunks.name())
            .execute()
            .await?;
        let version = match version {
            Some(v) => v,
            None => chunks.version().await?,
        };
        chunks.checkout(version).await?;
        Ok(chunks)
    }

    /// Fresh handles on these tables at the versions named `tag`, read-only.
    pub(crate) async fn at_tag(&self, tag: &str) -> Result<(Table, Table)> {
        let docs = self
            .connection
            .open_table(self.docs.name())
            .execute()
            .await?;
        let chunks = self
            .connection
            .open_table(self.chunks.name())
            .execute()
            .await?;
        docs.checkout_tag(tag).await?;
        chunks.checkout_tag(tag).await?;
        Ok((docs, chunks))
    }

    /// Make the versions named `tag` the latest again (a restore commit per table, the chunks
    /// first), with the indexes they had.
    pub(crate) async fn restore_tag(&self, tag: &str) -> Result<()> {
        let (docs, chunks) = self.at_tag(tag).await?;
        for table in [chunks, docs] {
            table.restore().await?;
        }
        self.forget_indexes();
        Ok(())
    }

    /// Create tables named by `settings` in this database from `docs` and `chunks` (rows and
    /// lancesync's manifest values), replacing any of those names. For a rollback, whose
    /// old generation is served from the shadow names while the live names are restored.
    pub(crate) async fn create_copy(
        &self,
        settings: &TableSettings,
        docs: &Table,
        chunks: &Table,
    ) -> Result<()> {
        let names = self.connection.table_names().execute().await?;
        for (name, source) in [
            (&settings.chunks_table, chunks),
            (&settings.documents_table, docs),
        ] {
            if names.contains(name) {
                self.connection.drop_table(name, &[]).await?;
            }
            let rows = source.query().execute().await?;
            let created = self.connection.create_table(name, rows).execute().await?;
            copy_own_config(source, &created, false).await?;
        }
        Ok(())
    }

    /// Whether shadow tables of a re-index exist beside these.
    pub async fn has_shadow(&self) -> Result<bool> {
        let shadow = self.settings.shadow();
        let names = self.connection.table_names().execute().await?;
        Ok(names.contains(&shadow.documents_table) || names.contains(&shadow.chunks_table))
    }

    /// Drop the tables named by `settings` in this database, if they exist.
    pub(crate) async fn drop_named(&self, settings: &TableSettings) -> Result<()> {
        let names = self.connection.table_names().execute().await?;
        for name in [&settings.documents_table, &settings.chunks_table] {
            if names.contains(name) {
                self.connection.drop_table(name, &[]).await?;
            }
        }
        Ok(())
    }
}

/// Make `to`'s lancesync manifest values those of `from` (identity, chunking, cursors,
/// records), in one commit; `keep_switch` keeps `to`'s switch to the shadow as it is.
async fn copy_own_config(from: &Table, to: &Table, keep_switch: bool) -> Result<()> {
    let theirs = manifest_config(from).await?;
    let ours = manifest_config(to).await?;
    let stale: Vec<&str> = ours
        .keys()
        .filter(|k| k.starts_with(OWN_KEYS) && !theirs.contains_key(*k))
        .filter(|k| !(keep_switch && k.as_str() == SERVING_KEY))
        .map(String::as_str)
        .collect();
    delete_config(to, &stale).await?;
    let mut values: Vec<(String, String)> = theirs
        .into_iter()
        .filter(|(k, _)| k.starts_with(OWN_KEYS) && k != SERVING_KEY)
        .collect();
    if keep_switch && ours.get(SERVING_KEY).is_some_and(|v| v == SERVING_SHADOW) {
        values.push((SERVING_KEY.into(), SERVING_SHADOW.into()));
    }
    update_config(to, values).await
}
