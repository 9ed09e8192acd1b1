//! Migrations of tables written by LanceDB's Python package as the original system wrote
//! them, into real lancesync tables in temp dirs.
//! Run: cargo test -p lancesync-migrate --test migrate

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lancesync_config::{Config, EnvFile, LoadOptions};
use lancesync_engine::{Engine, EngineConfig, NoProgress, SearchRequest, SyncOptions};
use lancesync_ingest::{Embedder, HashingEmbedder};
use lancesync_migrate::{Layout, MigrateOptions, MigrationReport, Migrator, UserMigration};
use lancesync_sources::{LocalFsConfig, SourceRegistry, SourceSpec};
use lancesync_testkit::{
    LegacyTable, legacy_chunk, legacy_document, md5_hex, python_lancedb_available,
    write_legacy_tables,
};
use serde_json::json;

use lancesync_testkit::CountingEmbedder;

struct World {
    dir: tempfile::TempDir,
    env: BTreeMap<String, String>,
    engine: Arc<Engine>,
    embedder: Arc<CountingEmbedder>,
    migrator: Migrator,
}

impl World {
    fn new() -> Self {
        Self::with_settings(None, &[])
    }

    /// lancesync's tables at `lancedb_uri` (default: `{dir}/db`), with more settings.
    fn with_settings(lancedb_uri: Option<&Path>, settings: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = lancedb_uri.map_or_else(|| dir.path().join("db"), Path::to_path_buf);
        let mut env: BTreeMap<String, String> = [
            ("HOME", dir.path().to_path_buf()),
            ("LANCEDB_URI", db),
            ("SYNC_STATE_DIR", dir.path().join("state")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string_lossy().into_owned()))
        .collect();
        env.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let opts = LoadOptions {
            env: env.clone(),
            config_file: None,
            env_file: EnvFile::Disabled,
            overrides: Vec::new(),
            working_dir: dir.path().to_path_buf(),
        };
        let config = Config::load(&opts).unwrap();
        let embedder = Arc::new(CountingEmbedder::default());
        let engine = Arc::new(
            Engine::new(
                EngineConfig::from_config(&config).unwrap(),
                embedder.clone(),
            )
            .unwrap(),
        );
        let migrator = Migrator::new(engine.clone(), config.settings().clone(), env.clone());
        Self {
            dir,
            env,
            engine,
            embedder,
            migrator,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> String {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn add_folder_source(&self, user: &str, id: &str, folder: &str) {
        let registry = SourceRegistry::at(self.path(&format!("state/users/{user}/sources.toml")));
        let spec = SourceSpec::local(
            id,
            &LocalFsConfig::new([self.path(folder).to_string_lossy().into_owned()]),
        );
        registry.add(spec, &self.env).unwrap();
    }

    async fn vectors(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        let texts: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
        // The same vectors as the counting embedder gives, without counting them.
        HashingEmbedder::default().embed(&texts).await.unwrap()
    }

    fn our_model(&self) -> String {
        self.embedder.identity().model
    }

    fn embedded(&self) -> usize {
        self.embedder.embedded()
    }

    async fn migrate(&self, options: &MigrateOptions) -> MigrationReport {
        self.migrator.run(options).await.unwrap()
    }
}

/// Every file under `dir` with its size and modification time: a migration must not change it.
fn snapshot(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                out.push((
                    entry.path().to_string_lossy().into_owned(),
                    meta.len(),
                    meta.modified().unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn user<'a>(report: &'a MigrationReport, id: &str) -> &'a UserMigration {
    report
        .users
        .iter()
        .find(|u| u.user_id == id)
        .unwrap_or_else(|| panic!("no {id} in {report:#?}"))
}

fn reasons(u: &UserMigration) -> Vec<String> {
    u.not_adopted
        .iter()
        .map(|n| {
            format!(
                "{} {}",
                n.legacy_doc_id.clone().unwrap_or_default(),
                n.reason
            )
        })
        .collect()
}

const BREAD: &str = "Sourdough starter needs flour and water, fed every day until it bubbles.";
const BREAD_2: &str = "Bake the loaf in a hot dutch oven for forty minutes.";
const GARDEN: &str = "Tomatoes want full sun and deep watering twice a week.";
const TAXES: &str = "The tax return is due in April; keep receipts for deductions.";
const TAXES_2: &str = "Deductions include home office costs and charity.";

/// Alice (a folder source) and Bob (no sources, 1536-d OpenAI vectors) in per-user databases.
async fn per_user_legacy(w: &World) -> PathBuf {
    let a = w.write("docs/bread.md", &format!("{BREAD}\n\n{BREAD_2}\n"));
    let b = w.write("docs/garden.md", "Tomatoes and peppers, rewritten since.\n");
    let e = w.write(
        "docs/failed.md",
        "This one failed in the original system.\n",
    );
    let gone = w.path("docs/deleted.md").to_string_lossy().into_owned();
    w.add_folder_source("alice", "docs", "docs");

    let v = w.vectors(&[BREAD, BREAD_2, GARDEN, TAXES, TAXES_2]).await;
    let dim = v[0].len();
    let a_sum = md5_hex(format!("{BREAD}\n\n{BREAD_2}\n").as_bytes());
    let mut failed = legacy_document("old-e", "alice", &e, "", 0, &v[0]);
    failed["processing_status"] = json!("failed");
    failed["error_message"] = json!("parser crashed");
    let mut reingested = legacy_document("old-a", "alice", &a, &a_sum, 2, &v[0]);
    reingested["last_synced"] = json!("2024-06-01T10:00:00Z");
    let legacy = w.path("legacy");
    let alice = legacy.join("users/alice");
    write_legacy_tables(
        alice.to_str().unwrap(),
        None,
        &[
            LegacyTable::documents(dim)
                .rows([
                    legacy_document("old-a", "alice", &a, &a_sum, 2, &v[0]),
                    legacy_document("old-b", "alice", &b, &md5_hex(b"the old text"), 1, &v[2]),
                    legacy_document("old-c", "alice", &gone, &md5_hex(b"x"), 1, &v[2]),
                    legacy_document("old-d", "alice", "/srv/uploads/taxes.txt", "", 2, &v[3]),
                    failed,
                    legacy_document("old-m", "mallory", "/srv/uploads/m.txt", "", 1, &v[3]),
                ])
                .append([reingested]),
            LegacyTable::chunks(dim)
                .rows([
                    legacy_chunk("old-a", "alice", 0, BREAD, &v[0]),
                    legacy_chunk("old-a", "alice", 1, BREAD_2, &v[1]),
                    legacy_chunk("old-b", "alice", 0, GARDEN, &v[2]),
                    legacy_chunk("old-c", "alice", 0, GARDEN, &v[2]),
                    // Stored out of order: the index decides.
                    legacy_chunk("old-d", "alice", 1, TAXES_2, &v[4]),
                    legacy_chunk("old-d", "alice", 0, TAXES, &v[3]),
                    legacy_chunk("ghost", "alice", 0, "a chunk of nothing", &v[3]),
                    legacy_chunk("old-m", "mallory", 0, TAXES, &v[3]),
                ])
                .append([
                    legacy_chunk("old-a", "alice", 0, BREAD, &v[0]),
                    legacy_chunk("old-a", "alice", 1, BREAD_2, &v[1]),
                ]),
        ],
    );
    let wide = vec![0.01f32; 1536];
    write_legacy_tables(
        legacy.join("users/bob").to_str().unwrap(),
        None,
        &[
            LegacyTable::documents(1536).rows([legacy_document(
                "old-r",
                "bob",
                "/srv/uploads/report.txt",
                "",
                1,
                &wide,
            )]),
            LegacyTable::chunks(1536).rows([legacy_chunk("old-r", "bob", 0, GARDEN, &wide)]),
        ],
    );
    legacy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_databases_are_planned_adopted_synced_and_migrated_once() {
    if !python_lancedb_available() {
        return;
    }
    let w = World::new();
    let legacy = per_user_legacy(&w).await;
    let before = snapshot(&legacy);
    let mut options = MigrateOptions::new(legacy.to_string_lossy());
    options.legacy_model = Some(w.our_model());

    // The plan writes nothing.
    options.dry_run = true;
    let plan = w.migrate(&options).await;
    assert_eq!(plan.layout, Layout::PerUser);
    assert!(plan.complete(), "{}", plan.summary());
    let alice = user(&plan, "alice");
    assert_eq!(
        (alice.legacy_documents, alice.legacy_chunks),
        (7, 10),
        "{alice:#?}"
    );
    assert_eq!(
        (
            alice.adopted,
            alice.adopted_changed,
            alice.kept_unmatched,
            alice.left_to_sync
        ),
        (1, 1, 1, 1),
        "{}",
        plan.summary()
    );
    assert_eq!(alice.duplicate_rows, 1);
    assert_eq!(
        (
            alice.chunks_written,
            alice.vectors_kept,
            alice.vectors_reembedded
        ),
        (5, 5, 0)
    );
    let why = reasons(alice).join("\n");
    assert!(why.contains("old-c no longer in source \"docs\""), "{why}");
    assert!(
        why.contains("old-m the row belongs to user \"mallory\""),
        "{why}"
    );
    assert!(
        why.contains("ghost chunks whose document row is missing"),
        "{why}"
    );
    let bob = user(&plan, "bob");
    assert_eq!(
        (
            bob.kept_unmatched,
            bob.chunks_written,
            bob.vectors_reembedded
        ),
        (1, 1, 1),
        "1536-d vectors cannot stay in a {}-d index",
        w.embedder.identity().dimension
    );
    assert!(plan.summary().contains("Migration plan (dry run"));
    assert!(w.engine.existing_tables("alice").await.unwrap().is_none());
    assert!(!w.path("db/users").exists(), "a dry run writes nothing");
    assert_eq!(w.embedded(), 0);

    // The migration writes what the plan said.
    options.dry_run = false;
    let done = w.migrate(&options).await;
    assert!(done.complete(), "{}", done.summary());
    let alice = user(&done, "alice");
    assert_eq!(
        (
            alice.adopted,
            alice.adopted_changed,
            alice.kept_unmatched,
            alice.chunks_written
        ),
        (1, 1, 1, 5)
    );
    assert_eq!(w.embedded(), 1, "only Bob's chunk is embedded again");
    let tables = w.engine.tables("alice").await.unwrap();
    let mut docs = tables.docs_where(None).await.unwrap();
    docs.sort_by(|a, b| a.source_uri.cmp(&b.source_uri));
    let uris: Vec<(&str, &str)> = docs
        .iter()
        .map(|d| (d.source_id.as_str(), d.source_uri.as_str()))
        .collect();
    let bread = w.path("docs/bread.md");
    let garden = w.path("docs/garden.md");
    assert_eq!(
        uris,
        [
            ("legacy", "/srv/uploads/taxes.txt"),
            ("docs", bread.to_str().unwrap()),
            ("docs", garden.to_str().unwrap()),
        ]
    );
    let adopted = docs
        .iter()
        .find(|d| d.source_uri.ends_with("bread.md"))
        .unwrap();
    let meta = std::fs::metadata(&bread).unwrap();
    assert_eq!(adopted.size, meta.len() as i64);
    assert_eq!(
        adopted.modified,
        meta.modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    );
    let content = std::fs::read(&bread).unwrap();
    assert_eq!(
        adopted.checksum,
        blake3::hash(&content).to_hex().to_string()
    );
    assert_eq!(adopted.total_chunks, 2);
    assert_eq!(adopted.ingested_at, "2024-05-01T10:00:00Z");
    let meta: serde_json::Value = serde_json::from_str(&adopted.metadata_json).unwrap();
    assert_eq!(meta["migrated_from"]["doc_id"], "old-a");
    assert_eq!(meta["original"], true);
    let chunks = tables
        .fetch_chunks(std::slice::from_ref(&adopted.doc_id))
        .await
        .unwrap();
    let texts: Vec<&str> = chunks.iter().map(|c| c.chunk_text.as_str()).collect();
    assert_eq!(texts, [BREAD, BREAD_2], "in order, duplicates collapsed");
    assert_eq!(
        chunks[0].vector,
        w.vectors(&[BREAD]).await[0],
        "vectors kept"
    );
    let taxes = docs.iter().find(|d| d.source_id == "legacy").unwrap();
    let taxes_chunks = tables
        .fetch_chunks(std::slice::from_ref(&taxes.doc_id))
        .await
        .unwrap();
    let texts: Vec<&str> = taxes_chunks.iter().map(|c| c.chunk_text.as_str()).collect();
    assert_eq!(texts, [TAXES, TAXES_2], "ordered by chunk_index");
    let hits = w
        .engine
        .search("alice", &SearchRequest::new("sourdough starter flour"))
        .await
        .unwrap();
    assert_eq!(hits[0].source_uri, bread.to_string_lossy());
    let bob = w.engine.tables("bob").await.unwrap();
    assert_eq!(bob.chunks.count_rows(None).await.unwrap(), 1);

    // The next sync skips the adopted document, reads the changed one again and ingests the
    // one that failed before; the deleted one stays gone and the kept one stays.
    let source = SourceSpec::local(
        "docs",
        &LocalFsConfig::new([w.path("docs").to_string_lossy().into_owned()]),
    )
    .build(&w.env)
    .unwrap();
    let embedded = w.embedded();
    let report = w
        .engine
        .sync(
            "alice",
            source.as_ref(),
            SyncOptions::default(),
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(
        (
            report.unchanged,
            report.updated,
            report.created,
            report.deleted
        ),
        (1, 1, 1, 0),
        "{report:#?}"
    );
    assert_eq!(
        w.embedded() - embedded,
        2,
        "garden.md and failed.md, one chunk each"
    );
    assert_eq!(tables.docs_where(None).await.unwrap().len(), 4);

    // Again: nothing changes, not even a table version.
    let versions = (
        tables.docs.version().await.unwrap(),
        tables.chunks.version().await.unwrap(),
    );
    let embedded = w.embedded();
    let again = w.migrate(&options).await;
    let alice = user(&again, "alice");
    assert_eq!(alice.already_migrated, 4, "{}", again.summary());
    assert_eq!(
        (
            alice.adopted,
            alice.adopted_changed,
            alice.kept_unmatched,
            alice.chunks_written
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(user(&again, "bob").already_migrated, 1);
    tables.docs.checkout_latest().await.unwrap();
    tables.chunks.checkout_latest().await.unwrap();
    assert_eq!(
        (
            tables.docs.version().await.unwrap(),
            tables.chunks.version().await.unwrap()
        ),
        versions
    );
    assert_eq!(w.embedded(), embedded);
    assert_eq!(
        snapshot(&legacy),
        before,
        "the original tables are never written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_database_with_missing_columns_and_timestamps() {
    if !python_lancedb_available() {
        return;
    }
    let w = World::new();
    let a = w.write("docs/bread.md", &format!("{BREAD}\n"));
    w.add_folder_source("alice", "docs", "docs");
    let v = w.vectors(&[BREAD, TAXES]).await;
    let dim = v[0].len();
    let shared = w.path("shared");
    let mut nobody = legacy_document("old-n", "", "/srv/n.txt", "", 1, &v[1]);
    nobody["user_id"] = serde_json::Value::Null;
    write_legacy_tables(
        shared.to_str().unwrap(),
        None,
        &[
            LegacyTable::documents(dim)
                .without(&["checksum", "title", "metadata_json"])
                .with_timestamps()
                .rows([
                    legacy_document("old-a", "alice", &a, "", 1, &v[0]),
                    legacy_document("old-t", "alice", "/srv/uploads/taxes.txt", "", 1, &v[1]),
                    legacy_document("old-c", "carol", "/srv/c.txt", "", 1, &v[1]),
                    nobody,
                ]),
            LegacyTable::chunks(dim)
                .without(&["metadata", "chunk_id"])
                .with_timestamps()
                .rows([
                    legacy_chunk("old-a", "alice", 0, BREAD, &v[0]),
                    legacy_chunk("old-t", "alice", 0, TAXES, &v[1]),
                    legacy_chunk("old-c", "carol", 0, TAXES, &v[1]),
                ]),
        ],
    );
    let before = snapshot(&shared);

    let mut options = MigrateOptions::new(shared.to_string_lossy());
    options.users = Some(vec!["alice".into()]);
    options.keep_unmatched = false;
    let report = w.migrate(&options).await;
    assert_eq!(report.layout, Layout::Shared);
    assert_eq!(report.rows_without_user, 1);
    assert_eq!(report.users.len(), 1, "only the user asked for");
    let alice = user(&report, "alice");
    assert_eq!(alice.legacy_documents, 2, "carol's rows are not alice's");
    // Without a checksum the content cannot be compared, and without the original model the
    // vectors are made anyway: the next sync ingests it once rather than twice.
    assert_eq!(
        (alice.adopted, alice.left_to_sync, alice.chunks_written),
        (0, 1, 0)
    );
    assert!(
        reasons(alice)
            .join("\n")
            .contains("old-t in no configured source, and unmatched documents are not kept"),
        "{}",
        report.summary()
    );
    assert!(w.engine.existing_tables("alice").await.unwrap().is_none());

    options.keep_unmatched = true;
    options.legacy_model = Some(w.our_model());
    options.users = None;
    let report = w.migrate(&options).await;
    assert_eq!(report.users.len(), 2, "{}", report.summary());
    let alice = user(&report, "alice");
    assert_eq!(
        (
            alice.adopted_changed,
            alice.kept_unmatched,
            alice.vectors_kept
        ),
        (1, 1, 2),
        "{}",
        report.summary()
    );
    let tables = w.engine.tables("alice").await.unwrap();
    let docs = tables.docs_where(None).await.unwrap();
    let bread = docs.iter().find(|d| d.source_uri == a).unwrap();
    assert!(
        bread.ingested_at.starts_with("2024-05-01T10:00:00"),
        "{}",
        bread.ingested_at
    );
    assert_eq!(bread.title, "bread.md", "no title column: the file name");
    assert_eq!(
        (bread.size, bread.checksum.as_str()),
        (-1, ""),
        "read again by the next sync"
    );
    let carol = w.engine.tables("carol").await.unwrap();
    assert_eq!(carol.docs.count_rows(None).await.unwrap(), 1);
    assert_eq!(snapshot(&shared), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_tables_where_lancesync_keeps_its_own_are_never_written() {
    if !python_lancedb_available() {
        return;
    }
    let outer = World::new();
    let legacy = per_user_legacy(&outer).await;
    let before = snapshot(&legacy);
    // lancesync pointed at the original data: opening refuses, naming the way out.
    let w = World::with_settings(Some(&legacy), &[]);
    let err = w.engine.tables("alice").await.unwrap_err();
    assert!(
        matches!(err, lancesync_engine::Error::LegacyTables { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("sync-cli migrate --from"), "{err}");
    // Nor is a chunks table created beside an original documents table alone.
    let lone = w.path("lone");
    write_legacy_tables(
        lone.join("users/carol").to_str().unwrap(),
        None,
        &[LegacyTable::documents(4)
            .rows([legacy_document("1", "carol", "/a.txt", "", 0, &[0.0; 4])])],
    );
    let lone_before = snapshot(&lone);
    let beside = World::with_settings(Some(&lone), &[]);
    let err = beside.engine.tables("carol").await.unwrap_err();
    assert!(
        matches!(err, lancesync_engine::Error::LegacyTables { .. }),
        "{err}"
    );
    assert_eq!(snapshot(&lone), lone_before);
    let report = w
        .migrate(&MigrateOptions::new(legacy.to_string_lossy()))
        .await;
    assert!(!report.complete());
    let error = user(&report, "alice").error.clone().unwrap();
    assert!(error.contains("move them aside"), "{error}");
    assert_eq!(snapshot(&legacy), before);

    // Nothing there at all is a clear error too.
    let err = w
        .migrator
        .run(&MigrateOptions::new(w.path("nothing").to_string_lossy()))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no original LanceDB data"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_s3_with_the_s3_settings() {
    use lancesync_testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
    if !python_lancedb_available() {
        return;
    }
    let s3 = S3Server::start();
    s3.create_bucket("original-app").await;
    let endpoint = s3.endpoint();
    let w = World::with_settings(
        None,
        &[
            ("S3_ENDPOINT", &endpoint),
            ("S3_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ],
    );
    let v = w.vectors(&[BREAD, TAXES]).await;
    let dim = v[0].len();
    let options = json!({
        "aws_endpoint": endpoint,
        "allow_http": "true",
        "aws_region": "us-east-1",
        "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY,
    });
    for (user, text, vector) in [("alice", BREAD, &v[0]), ("bob", TAXES, &v[1])] {
        write_legacy_tables(
            &format!("s3://original-app/backend/users/{user}"),
            Some(options.clone()),
            &[
                LegacyTable::documents(dim).rows([legacy_document(
                    "old-1",
                    user,
                    "/srv/uploads/note.txt",
                    "",
                    1,
                    vector,
                )]),
                LegacyTable::chunks(dim).rows([legacy_chunk("old-1", user, 0, text, vector)]),
            ],
        );
    }
    let mut options = MigrateOptions::new("s3://original-app/backend");
    options.legacy_model = Some(w.our_model());
    let report = w.migrate(&options).await;
    assert!(report.complete(), "{}", report.summary());
    assert_eq!(report.layout, Layout::PerUser);
    let users: Vec<&str> = report.users.iter().map(|u| u.user_id.as_str()).collect();
    assert_eq!(users, ["alice", "bob"]);
    assert_eq!(
        (
            user(&report, "bob").kept_unmatched,
            user(&report, "bob").vectors_kept
        ),
        (1, 1)
    );
    let hits = w
        .engine
        .search("bob", &SearchRequest::new("tax return receipts"))
        .await
        .unwrap();
    assert_eq!(hits[0].chunk_text, TAXES);
}
