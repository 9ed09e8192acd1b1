//! Finding and reading the original system's tables: one database per user
//! (`{location}/users/{user}`) or one database whose rows carry `user_id`.

use std::collections::HashMap;
use std::path::Path;

use arrow_array::RecordBatch;
use futures::TryStreamExt;
use lancedb::Table;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancesync_engine::ids::{sql_in, sql_string, validate_user_id};
use lancesync_storage::S3Target;
use serde::Serialize;

use crate::columns::{integers, strings, vectors};
use crate::{Error, Result};

/// How the original system laid out its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// One database per user: `{location}/users/{user_id}`.
    PerUser,
    /// One database; every row names its user in `user_id`.
    Shared,
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layout::PerUser => "one database per user",
            Layout::Shared => "one database with a user_id column",
        })
    }
}

/// The original system's data, opened read-only: nothing here writes.
#[derive(Debug, Clone)]
pub(crate) struct LegacyStore {
    pub uri: String,
    pub layout: Layout,
    docs_table: String,
    chunks_table: String,
    storage_options: HashMap<String, String>,
    s3: Option<S3Target>,
}

/// One user's rows in the original tables.
pub(crate) struct LegacyTables {
    /// The database the rows are in.
    pub uri: String,
    docs: Table,
    chunks: Option<Table>,
    /// `user_id = '…'` in the shared layout.
    user_filter: Option<String>,
}

/// A row of the original `processed_documents`; every column may be missing.
#[derive(Debug, Clone, Default)]
pub(crate) struct LegacyDoc {
    pub doc_id: String,
    pub user_id: Option<String>,
    pub source_uri: Option<String>,
    pub doc_type: Option<String>,
    pub title: Option<String>,
    pub metadata_json: Option<String>,
    pub ingested_at: Option<String>,
    pub last_synced: Option<String>,
    pub processing_status: Option<String>,
    pub checksum: Option<String>,
}

/// A row of the original `document_chunks`.
#[derive(Debug, Clone, Default)]
pub(crate) struct LegacyChunk {
    pub doc_id: String,
    pub user_id: Option<String>,
    pub chunk_index: Option<i64>,
    pub chunk_text: Option<String>,
    pub metadata: Option<String>,
    pub created_at: Option<String>,
    pub vector: Option<Vec<f32>>,
}

const DOC_COLUMNS: [&str; 10] = [
    "doc_id",
    "user_id",
    "source_uri",
    "doc_type",
    "title",
    "metadata_json",
    "ingested_at",
    "last_synced",
    "processing_status",
    "checksum",
];
const CHUNK_COLUMNS: [&str; 7] = [
    "doc_id",
    "user_id",
    "chunk_index",
    "chunk_text",
    "metadata",
    "created_at",
    "vector",
];

async fn connect(uri: &str, options: &HashMap<String, String>) -> Result<lancedb::Connection> {
    Ok(lancedb::connect(uri)
        .storage_options(options.clone())
        .execute()
        .await?)
}

impl LegacyStore {
    /// Open the original data at `uri` (a folder or `s3://bucket/prefix`), with S3 options
    /// from `s3`, and find its layout unless `layout` says it.
    pub async fn open(
        uri: &str,
        docs_table: &str,
        chunks_table: &str,
        s3: Option<S3Target>,
        layout: Option<Layout>,
    ) -> Result<Self> {
        let uri = uri.trim_end_matches('/').to_string();
        let storage_options: HashMap<String, String> = s3
            .as_ref()
            .map(|t| t.storage_options().into_iter().collect())
            .unwrap_or_default();
        let mut store = Self {
            uri,
            layout: layout.unwrap_or(Layout::PerUser),
            docs_table: docs_table.to_string(),
            chunks_table: chunks_table.to_string(),
            storage_options,
            s3,
        };
        if layout.is_some() {
            return Ok(store);
        }
        let shared = store.has_docs_table(&store.uri).await?;
        let per_user = !store.users_with_databases().await?.is_empty();
        store.layout = match (shared, per_user) {
            (true, false) => Layout::Shared,
            (false, true) => Layout::PerUser,
            (true, true) => {
                return Err(Error::AmbiguousLayout {
                    uri: store.uri.clone(),
                });
            }
            (false, false) => {
                return Err(Error::NoLegacyData {
                    uri: store.uri.clone(),
                    table: store.docs_table.clone(),
                });
            }
        };
        Ok(store)
    }

    async fn has_docs_table(&self, uri: &str) -> Result<bool> {
        if !self.is_remote() && !Path::new(uri).is_dir() {
            return Ok(false);
        }
        let names = connect(uri, &self.storage_options)
            .await?
            .table_names()
            .execute()
            .await?;
        Ok(names.contains(&self.docs_table))
    }

    fn is_remote(&self) -> bool {
        self.uri.contains("://")
    }

    /// The database holding user `user_id`'s rows.
    pub fn database_uri(&self, user_id: &str) -> String {
        match self.layout {
            Layout::PerUser => format!("{}/users/{user_id}", self.uri),
            Layout::Shared => self.uri.clone(),
        }
    }

    /// Folder names under `{uri}/users` that hold a documents table.
    async fn users_with_databases(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        if let Some(target) = &self.s3 {
            let store = target.object_store().await?;
            let listed = store
                .list_with_delimiter(Some(&target.users_prefix()))
                .await
                .map_err(|e| Error::Read {
                    uri: self.uri.clone(),
                    detail: e.to_string(),
                })?;
            names.extend(
                listed
                    .common_prefixes
                    .iter()
                    .filter_map(|p| p.filename().map(str::to_string)),
            );
        } else {
            let dir = Path::new(&self.uri).join("users");
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => {
                    return Err(Error::Read {
                        uri: dir.display().to_string(),
                        detail: e.to_string(),
                    });
                }
            };
            for entry in entries.flatten() {
                if entry.path().is_dir()
                    && let Some(name) = entry.file_name().to_str()
                {
                    names.push(name.to_string());
                }
            }
        }
        let mut users = Vec::new();
        for name in names {
            if validate_user_id(&name).is_ok()
                && self
                    .has_docs_table(&format!("{}/users/{name}", self.uri))
                    .await?
            {
                users.push(name);
            }
        }
        users.sort();
        Ok(users)
    }

    /// Every user with rows, and (shared layout) the number of rows whose `user_id` is missing
    /// or not a valid user id, which no user can adopt.
    pub async fn users(&self) -> Result<(Vec<String>, usize)> {
        match self.layout {
            Layout::PerUser => Ok((self.users_with_databases().await?, 0)),
            Layout::Shared => {
                let db = connect(&self.uri, &self.storage_options).await?;
                let docs = db.open_table(&self.docs_table).execute().await?;
                let batches = run(&docs, None, &["user_id"]).await?;
                let mut users = std::collections::BTreeSet::new();
                let mut invalid = 0;
                for batch in &batches {
                    let ids = strings(batch, "user_id")?.ok_or_else(|| Error::LegacyColumn {
                        column: "user_id".into(),
                        detail: format!(
                            "{} in one database has no user_id column, so its rows cannot be given to users",
                            self.docs_table
                        ),
                    })?;
                    for id in ids {
                        match id {
                            Some(id) if validate_user_id(&id).is_ok() => {
                                users.insert(id);
                            }
                            _ => invalid += 1,
                        }
                    }
                }
                Ok((users.into_iter().collect(), invalid))
            }
        }
    }

    /// User `user_id`'s tables; `None` if the original system has nothing for them.
    pub async fn user_tables(&self, user_id: &str) -> Result<Option<LegacyTables>> {
        let uri = self.database_uri(user_id);
        if !self.has_docs_table(&uri).await? {
            return Ok(None);
        }
        let db = connect(&uri, &self.storage_options).await?;
        let names = db.table_names().execute().await?;
        let docs = db.open_table(&self.docs_table).execute().await?;
        let chunks = if names.contains(&self.chunks_table) {
            Some(db.open_table(&self.chunks_table).execute().await?)
        } else {
            None
        };
        let user_filter =
            (self.layout == Layout::Shared).then(|| format!("user_id = {}", sql_string(user_id)));
        Ok(Some(LegacyTables {
            uri,
            docs,
            chunks,
            user_filter,
        }))
    }
}

/// Run a query selecting those of `wanted` the table has.
async fn run(table: &Table, filter: Option<String>, wanted: &[&str]) -> Result<Vec<RecordBatch>> {
    let schema = table.schema().await?;
    let columns: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|c| schema.index_of(c).is_ok())
        .collect();
    let mut q = table.query().select(Select::columns(&columns));
    if let Some(f) = filter {
        q = q.only_if(f);
    }
    Ok(q.execute().await?.try_collect().await?)
}

fn and(a: Option<&String>, b: String) -> String {
    match a {
        Some(a) => format!("{a} AND {b}"),
        None => b,
    }
}

impl LegacyTables {
    /// The user's document rows, without vectors. Rows without a `doc_id` are counted, not
    /// returned (nothing can refer to them).
    pub async fn documents(&self) -> Result<(Vec<LegacyDoc>, usize)> {
        let batches = run(&self.docs, self.user_filter.clone(), &DOC_COLUMNS).await?;
        let mut docs = Vec::new();
        let mut without_id = 0;
        for batch in &batches {
            let ids = strings(batch, "doc_id")?.ok_or_else(|| Error::LegacyColumn {
                column: "doc_id".into(),
                detail: "the documents table has no doc_id column".into(),
            })?;
            let col = |name| strings(batch, name);
            let (users, uris, types, titles, metadata, ingested, synced, statuses, checksums) = (
                col("user_id")?,
                col("source_uri")?,
                col("doc_type")?,
                col("title")?,
                col("metadata_json")?,
                col("ingested_at")?,
                col("last_synced")?,
                col("processing_status")?,
                col("checksum")?,
            );
            let at =
                |c: &Option<Vec<Option<String>>>, i: usize| c.as_ref().and_then(|v| v[i].clone());
            for (i, id) in ids.into_iter().enumerate() {
                let Some(doc_id) = id.filter(|s| !s.is_empty()) else {
                    without_id += 1;
                    continue;
                };
                docs.push(LegacyDoc {
                    doc_id,
                    user_id: at(&users, i),
                    source_uri: at(&uris, i),
                    doc_type: at(&types, i),
                    title: at(&titles, i),
                    metadata_json: at(&metadata, i),
                    ingested_at: at(&ingested, i),
                    last_synced: at(&synced, i),
                    processing_status: at(&statuses, i),
                    checksum: at(&checksums, i),
                });
            }
        }
        Ok((docs, without_id))
    }

    /// The `doc_id` of every chunk row (to find chunks whose document row is missing).
    pub async fn chunk_doc_ids(&self) -> Result<Vec<String>> {
        let Some(chunks) = &self.chunks else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for batch in run(chunks, self.user_filter.clone(), &["doc_id"]).await? {
            if let Some(ids) = strings(&batch, "doc_id")? {
                out.extend(ids.into_iter().map(Option::unwrap_or_default));
            }
        }
        Ok(out)
    }

    /// The chunk rows of the documents `doc_ids`.
    pub async fn chunks_of(&self, doc_ids: &[String]) -> Result<Vec<LegacyChunk>> {
        let Some(chunks) = &self.chunks else {
            return Ok(Vec::new());
        };
        if doc_ids.is_empty() {
            return Ok(Vec::new());
        }
        let filter = and(self.user_filter.as_ref(), sql_in("doc_id", doc_ids));
        let mut out = Vec::new();
        for batch in run(chunks, Some(filter), &CHUNK_COLUMNS).await? {
            let Some(ids) = strings(&batch, "doc_id")? else {
                return Err(Error::LegacyColumn {
                    column: "doc_id".into(),
                    detail: "the chunks table has no doc_id column".into(),
                });
            };
            let users = strings(&batch, "user_id")?;
            let indexes = integers(&batch, "chunk_index")?;
            let texts = strings(&batch, "chunk_text")?;
            let metadata = strings(&batch, "metadata")?;
            let created = strings(&batch, "created_at")?;
            let vecs = vectors(&batch, "vector")?;
            for (i, id) in ids.into_iter().enumerate() {
                out.push(LegacyChunk {
                    doc_id: id.unwrap_or_default(),
                    user_id: users.as_ref().and_then(|v| v[i].clone()),
                    chunk_index: indexes.as_ref().and_then(|v| v[i]),
                    chunk_text: texts.as_ref().and_then(|v| v[i].clone()),
                    metadata: metadata.as_ref().and_then(|v| v[i].clone()),
                    created_at: created.as_ref().and_then(|v| v[i].clone()),
                    vector: vecs.as_ref().and_then(|v| v[i].clone()),
                });
            }
        }
        Ok(out)
    }
}
