//! lancesync migration: adopt the original Python system's LanceDB data into lancesync's
//! per-user tables instead of ingesting everything again.
//!
//! The original system kept `processed_documents` and `document_chunks` either in one database
//! per user (`{location}/users/{user_id}`) or in one database whose rows carry `user_id`;
//! versions of it left out columns, stored times as timestamps, and used 1536-d or 384-d
//! vectors. A migration, per user:
//!
//! - matches each document row's `source_uri` with the user's configured sources (listed once),
//!   and compares the original checksum (MD5, SHA-256 or BLAKE3) with the content there: an
//!   unchanged document is *adopted* with its size, modification time and lancesync's
//!   checksum recorded, so the next sync skips it; a changed one is copied for search and
//!   read again by the next sync;
//! - copies the chunks in order, keeping their vectors when the original model is the index's
//!   ([`MigrateOptions::legacy_model`]), else embedding their text again with the configured
//!   embedder (no source is read for that);
//! - keeps documents that are in no configured source under the source
//!   [`lancesync_engine::MIGRATED_SOURCE`] (searchable, never synced), or only reports them;
//! - reports every row it does not adopt, with the reason; collapses the duplicate rows the
//!   original appended on re-ingestion, keeping the newest;
//! - never writes to the original tables, and skips documents already migrated, so running
//!   it again changes nothing. [`MigrateOptions::dry_run`] plans without writing.
//!
//! ```no_run
//! # async fn run(engine: std::sync::Arc<lancesync_engine::Engine>,
//! #              settings: lancesync_config::Settings) -> lancesync_migrate::Result<()> {
//! use lancesync_migrate::{MigrateOptions, Migrator};
//! let migrator = Migrator::new(engine, settings, std::collections::BTreeMap::new());
//! let mut options = MigrateOptions::new("/srv/old-app/lancedb");
//! options.dry_run = true;
//! let report = migrator.run(&options).await?;
//! println!("{}", report.summary());
//! # Ok(()) }
//! ```

mod columns;
mod convert;
mod copy;
mod error;
mod legacy;
mod matching;
mod options;
mod plan;
mod report;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use lancesync_engine::{Engine, ids};
use lancesync_ingest::Embedder;
use lancesync_sources::SourceRegistry;
use lancesync_storage::S3Target;

pub use error::{Error, Result};
pub use legacy::Layout;
pub use options::MigrateOptions;
pub use report::{MigrationReport, NotAdopted, UserMigration};

use legacy::LegacyStore;
use matching::SourceIndex;
use plan::{Plan, compare_contents, newest_by};

/// Documents per write (and per chunk read from the original tables).
const BATCH_DOCUMENTS: usize = 200;

/// Adopts the original system's data into an [`Engine`]'s tables.
pub struct Migrator {
    engine: Arc<Engine>,
    embedder: Arc<dyn Embedder>,
    settings: lancesync_config::Settings,
    env: BTreeMap<String, String>,
}

impl std::fmt::Debug for Migrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migrator").finish_non_exhaustive()
    }
}

impl Migrator {
    /// A migrator writing through `engine` and embedding with its embedder, reading
    /// users' sources from `settings`' state folder; `env` expands paths and credentials in
    /// source settings, as for a sync.
    pub fn new(
        engine: Arc<Engine>,
        settings: lancesync_config::Settings,
        env: BTreeMap<String, String>,
    ) -> Self {
        Self {
            embedder: engine.embedder_handle(),
            engine,
            settings,
            env,
        }
    }

    pub(crate) fn registry(&self, user_id: &str) -> SourceRegistry {
        SourceRegistry::at(
            self.settings
                .monitoring
                .state_dir
                .join("users")
                .join(user_id)
                .join("sources.toml"),
        )
    }

    /// Whether vectors of the original model can stay, and why (for the report).
    pub(crate) fn vector_policy(&self, options: &MigrateOptions) -> (bool, String) {
        let ours = self.engine.embedder();
        match &options.legacy_model {
            Some(model)
                if model.eq_ignore_ascii_case(&ours.model)
                    || model.eq_ignore_ascii_case(&format!("{}/{}", ours.name, ours.model)) =>
            {
                (
                    true,
                    format!("kept: {model} made them and is the index's model ({ours})"),
                )
            }
            Some(model) => (
                false,
                format!("embedded again with {ours}: the original vectors are {model}'s"),
            ),
            None => (
                false,
                format!(
                    "embedded again with {ours}: the original model is not known (set LEGACY_EMBEDDING_MODEL or --legacy-model to keep vectors of the index's model)"
                ),
            ),
        }
    }

    /// Migrate (or with `dry_run`, plan) every selected user. A user whose migration fails
    /// is reported with the error; the others go on.
    pub async fn run(&self, options: &MigrateOptions) -> Result<MigrationReport> {
        let (docs_table, chunks_table) = options.tables.clone().unwrap_or_else(|| {
            (
                self.settings.lancedb.documents_table.clone(),
                self.settings.lancedb.chunks_table.clone(),
            )
        });
        let s3 = if options.from.starts_with("s3://") {
            Some(
                S3Target::from_uri(&options.from, &self.settings).ok_or_else(|| {
                    Error::InvalidOptions(format!(
                        "{} is not an s3://bucket/prefix URI",
                        options.from
                    ))
                })?,
            )
        } else {
            None
        };
        let from = if s3.is_none() {
            expand_local(&options.from, &self.env)?
        } else {
            options.from.clone()
        };
        let store =
            LegacyStore::open(&from, &docs_table, &chunks_table, s3, options.layout).await?;
        let (all_users, rows_without_user) = store.users().await?;
        let users = match &options.users {
            Some(users) => {
                for u in users {
                    ids::validate_user_id(u)?;
                }
                users.clone()
            }
            None => all_users,
        };
        let (keep_vectors, vectors) = self.vector_policy(options);
        let mut report = MigrationReport {
            from: store.uri.clone(),
            layout: store.layout,
            dry_run: options.dry_run,
            vectors,
            rows_without_user,
            users: Vec::new(),
        };
        for user in users {
            let mut migration = UserMigration::new(&user, store.database_uri(&user));
            match self
                .migrate_user(&store, &user, options, keep_vectors, &mut migration)
                .await
            {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(user = %user, error = %e, "migration of this user stopped");
                    migration.error = Some(e.to_string());
                }
            }
            tracing::info!(user = %user, summary = %migration.summary(options.dry_run), "migration");
            report.users.push(migration);
        }
        Ok(report)
    }

    pub(crate) async fn migrate_user(
        &self,
        store: &LegacyStore,
        user: &str,
        options: &MigrateOptions,
        keep_vectors: bool,
        report: &mut UserMigration,
    ) -> Result<()> {
        let Some(legacy) = store.user_tables(user).await? else {
            return Err(Error::NoUserData {
                user_id: user.to_string(),
                uri: store.database_uri(user),
            });
        };
        let target = self.engine.storage().database(user)?;
        if same_location(&legacy.uri, &target.uri) {
            return Err(Error::SameLocation { uri: target.uri });
        }
        let (docs, without_id) = legacy.documents().await?;
        report.legacy_documents = docs.len() + without_id;
        if without_id > 0 {
            report.not_adopted.push(NotAdopted::rows(
                without_id,
                "document rows without a doc_id: nothing refers to them",
            ));
        }
        let (docs, duplicates) = newest_by(docs, |d| d.doc_id.clone());
        report.duplicate_rows += duplicates;

        let chunk_doc_ids = legacy.chunk_doc_ids().await?;
        report.legacy_chunks = chunk_doc_ids.len();
        let known: HashSet<&str> = docs.iter().map(|d| d.doc_id.as_str()).collect();
        let mut orphans: BTreeMap<&str, usize> = BTreeMap::new();
        for id in &chunk_doc_ids {
            if !known.contains(id.as_str()) {
                *orphans.entry(id.as_str()).or_default() += 1;
            }
        }
        for (id, chunks) in orphans {
            report.not_adopted.push(NotAdopted {
                legacy_doc_id: Some(id.to_string()),
                source_uri: None,
                rows: 0,
                chunks,
                reason: "chunks whose document row is missing".into(),
            });
        }

        let specs = self.registry(user).list()?;
        let sources = SourceIndex::build(&specs, &self.env).await?;
        let planned = self.plan(user, docs, &sources, options, report);
        let (planned, duplicates) = newest_by(planned, |p| p.1.clone());
        report.duplicate_rows += duplicates;
        let planned = self.skip_migrated(user, planned, report).await?;
        let planned: Vec<_> = planned
            .into_iter()
            .filter(|p| {
                let sync = matches!(p.2, Plan::Sync);
                report.left_to_sync += usize::from(sync);
                !sync
            })
            .collect();
        let planned = compare_contents(planned).await;
        let mut ready = Vec::new();
        for p in planned {
            match p {
                Ok(p) => ready.push(p),
                Err((legacy, e)) => report.not_adopted.push(NotAdopted::doc(
                    &legacy,
                    format!("its source could not be read now ({e}); run the migration again"),
                )),
            }
        }
        // Opened (and created) only when there is something to write.
        let mut tables = None;
        for batch in ready.chunks(BATCH_DOCUMENTS) {
            self.copy_batch(
                user,
                &legacy,
                batch,
                keep_vectors,
                (!options.dry_run).then_some(&mut tables),
                report,
            )
            .await?;
        }
        if let Some((tables, _writing)) = &tables {
            // Many batches leave many small fragments: compact and index now, as a sync would.
            tables.maintain().await?;
            self.engine.after_write(user).await;
        }
        Ok(())
    }
}

/// `~` and `${VAR}` expanded, made absolute.
pub(crate) fn expand_local(path: &str, env: &BTreeMap<String, String>) -> Result<String> {
    let expanded = lancesync_config::expand_path(path, env)
        .map_err(|e| Error::InvalidOptions(format!("{path}: {e}")))?;
    let path = PathBuf::from(expanded);
    let path = if path.is_absolute() {
        path
    } else {
        std::env::current_dir()
            .map_err(|e| Error::InvalidOptions(e.to_string()))?
            .join(path)
    };
    Ok(path.to_string_lossy().into_owned())
}

/// Whether two database locations are the same place.
pub(crate) fn same_location(a: &str, b: &str) -> bool {
    let canon = |s: &str| {
        let s = s.trim_end_matches('/');
        if s.contains("://") {
            s.to_string()
        } else {
            std::fs::canonicalize(s)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| s.to_string())
        }
    };
    canon(a) == canon(b)
}
