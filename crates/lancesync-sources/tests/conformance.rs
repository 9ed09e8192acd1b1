//! Every source passes the testkit's conformance suite (`lancesync_testkit::conformance`):
//! the local filesystem over a temporary folder, S3 over moto's S3 server (behind a
//! fault-injecting proxy), and Dropbox, Google Drive and Notion over their stand-ins, which
//! speak the real wire formats on 127.0.0.1.
//! Run: cargo test --workspace --test conformance

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use lancesync_sources::{
    DocumentSource, DropboxConfig, DropboxSource, GoogleDriveConfig, GoogleDriveSource,
    LocalFsConfig, LocalFsSource, NotionConfig, NotionSource, S3Source, S3SourceConfig, SecretRef,
    SourceEntry,
};
use lancesync_testkit::conformance::{Fixture, run_all};
use lancesync_testkit::{
    DriveServer, DropboxServer, HttpProxy, InjectedFault, NotionBlock, NotionServer, S3Server,
};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;

/// The one error a proxy answers for every listing request while listings fail.
fn server_error() -> InjectedFault {
    InjectedFault {
        status: 500,
        body: "InternalError: injected".into(),
    }
}

// ---------------------------------------------------------------------------------------
// Local folders

struct LocalFolder {
    dir: tempfile::TempDir,
}

impl LocalFolder {
    fn root(&self) -> PathBuf {
        self.dir.path().join("docs")
    }

    fn source_over(&self, paths: Vec<PathBuf>, limit: Option<u64>) -> Box<dyn DocumentSource> {
        let mut config = LocalFsConfig::new(paths.iter().map(|p| p.display().to_string()));
        config.filter.max_file_size = limit;
        Box::new(LocalFsSource::new("local", config, &BTreeMap::new()).expect("source"))
    }
}

#[async_trait]
impl Fixture for LocalFolder {
    fn name(&self) -> &'static str {
        "local_filesystem"
    }

    fn source(&self) -> Box<dyn DocumentSource> {
        self.source_over(vec![self.root()], None)
    }

    async fn put(&self, name: &str, text: &str) {
        std::fs::create_dir_all(self.root()).expect("dir");
        std::fs::write(self.root().join(name), text).expect("write");
    }

    async fn remove(&self, name: &str) {
        std::fs::remove_file(self.root().join(name)).expect("remove");
    }

    async fn rename(&self, from: &str, to: &str) -> bool {
        std::fs::rename(self.root().join(from), self.root().join(to)).expect("rename");
        true
    }

    async fn source_with_unseen_folder(&self) -> Box<dyn DocumentSource> {
        self.source_over(vec![self.root(), self.dir.path().join("not-mounted")], None)
    }

    async fn fail_listings(&self, _failing: bool) -> bool {
        false
    }

    fn refused_source(&self) -> Option<Box<dyn DocumentSource>> {
        None
    }

    async fn throttle(&self, _n: usize) {}

    fn source_with_limit(&self, bytes: u64) -> Option<Box<dyn DocumentSource>> {
        Some(self.source_over(vec![self.root()], Some(bytes)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_folders_conform() {
    let fixture = LocalFolder {
        dir: tempfile::tempdir().expect("dir"),
    };
    run_all(&fixture).await;
}

// ---------------------------------------------------------------------------------------
// S3

struct Bucket {
    _server: S3Server,
    proxy: HttpProxy,
    store: std::sync::Arc<dyn object_store::ObjectStore>,
    strict: S3Server,
    slow_downs: std::sync::Arc<AtomicUsize>,
}

const BUCKET: &str = "conformance";
const PREFIX: &str = "team/docs";

impl Bucket {
    fn key(name: &str) -> ObjectPath {
        ObjectPath::from(format!("{PREFIX}/{name}"))
    }

    fn config(&self, endpoint: &str, bucket: &str) -> S3SourceConfig {
        let mut config = S3SourceConfig::new(bucket, PREFIX);
        config.endpoint = Some(endpoint.to_string());
        config.region = Some("us-east-1".into());
        config.access_key_id = Some(SecretRef::inline(lancesync_testkit::s3::ACCESS_KEY));
        config.secret_access_key = Some(SecretRef::inline(lancesync_testkit::s3::SECRET_KEY));
        config.retry_timeout_secs = 2;
        config
    }

    fn build(config: S3SourceConfig) -> Box<dyn DocumentSource> {
        Box::new(S3Source::new("s3", config, &BTreeMap::new()).expect("source"))
    }

    /// The proxy's rule: listings fail while `failing`; the first requests counted by
    /// `slow_downs` answer 503 SlowDown.
    fn install_rule(&self, failing: bool) {
        let slow_downs = self.slow_downs.clone();
        self.proxy.fail_when(move |request| {
            if failing && request.is_s3_list() {
                return Some(server_error());
            }
            let left = slow_downs.load(Ordering::SeqCst);
            if left > 0 {
                slow_downs.store(left - 1, Ordering::SeqCst);
                return Some(InjectedFault {
                    status: 503,
                    body: "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>".into(),
                });
            }
            None
        });
    }
}

#[async_trait]
impl Fixture for Bucket {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn source(&self) -> Box<dyn DocumentSource> {
        Self::build(self.config(&self.proxy.url, BUCKET))
    }

    async fn put(&self, name: &str, text: &str) {
        let body: Vec<u8> = text.as_bytes().to_vec();
        self.store
            .put(&Self::key(name), body.into())
            .await
            .expect("put");
    }

    async fn remove(&self, name: &str) {
        self.store.delete(&Self::key(name)).await.expect("delete");
    }

    async fn rename(&self, from: &str, to: &str) -> bool {
        let (from, to) = (Self::key(from), Self::key(to));
        self.store.copy(&from, &to).await.expect("copy");
        self.store.delete(&from).await.expect("delete");
        true
    }

    async fn source_with_unseen_folder(&self) -> Box<dyn DocumentSource> {
        // A bucket that does not exist: S3 answers NoSuchBucket.
        Self::build(self.config(&self.proxy.url, "no-such-bucket"))
    }

    async fn fail_listings(&self, failing: bool) -> bool {
        self.install_rule(failing);
        true
    }

    fn refused_source(&self) -> Option<Box<dyn DocumentSource>> {
        Some(Self::build(self.config(&self.strict.endpoint(), BUCKET)))
    }

    async fn throttle(&self, n: usize) {
        self.slow_downs.store(n, Ordering::SeqCst);
        self.install_rule(false);
    }

    fn source_with_limit(&self, bytes: u64) -> Option<Box<dyn DocumentSource>> {
        let mut config = self.config(&self.proxy.url, BUCKET);
        config.filter.max_file_size = Some(bytes);
        Some(Self::build(config))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_buckets_conform() {
    let server = S3Server::start();
    server.create_bucket(BUCKET).await;
    let strict = S3Server::start_enforcing_auth();
    let proxy = HttpProxy::start(&server.endpoint()).await;
    let fixture = Bucket {
        store: server.client(BUCKET),
        _server: server,
        proxy,
        strict,
        slow_downs: Default::default(),
    };
    run_all(&fixture).await;
}

// ---------------------------------------------------------------------------------------
// Dropbox

const DROPBOX_TOKEN: &str = "sl.conformance-token";

struct Dropbox {
    server: DropboxServer,
    proxy: HttpProxy,
}

impl Dropbox {
    fn config(&self, path: &str, token: &str) -> DropboxConfig {
        let mut config = DropboxConfig::with_token(path, SecretRef::inline(token));
        config.api_url = Some(self.proxy.url.clone());
        config.content_url = Some(self.proxy.url.clone());
        config.http.min_backoff_ms = 20;
        config.http.max_retries = 2;
        config.http.requests_per_second = Some(1000.0);
        config
    }

    fn build(config: DropboxConfig) -> Box<dyn DocumentSource> {
        Box::new(DropboxSource::new("dbx", config, &BTreeMap::new()).expect("source"))
    }
}

#[async_trait]
impl Fixture for Dropbox {
    fn name(&self) -> &'static str {
        "dropbox"
    }

    fn source(&self) -> Box<dyn DocumentSource> {
        Self::build(self.config("/Team", DROPBOX_TOKEN))
    }

    async fn put(&self, name: &str, text: &str) {
        self.server.put(&format!("/Team/{name}"), text.as_bytes());
    }

    async fn remove(&self, name: &str) {
        self.server.delete(&format!("/Team/{name}"));
    }

    async fn rename(&self, from: &str, to: &str) -> bool {
        self.server
            .rename(&format!("/Team/{from}"), &format!("/Team/{to}"));
        true
    }

    async fn source_with_unseen_folder(&self) -> Box<dyn DocumentSource> {
        Self::build(self.config("/Not shared with us", DROPBOX_TOKEN))
    }

    async fn fail_listings(&self, failing: bool) -> bool {
        if failing {
            self.proxy
                .fail_when(|request| request.path.contains("list_folder").then(server_error));
        } else {
            self.proxy.heal();
        }
        true
    }

    fn refused_source(&self) -> Option<Box<dyn DocumentSource>> {
        Some(Self::build(self.config("/Team", "sl.revoked-token")))
    }

    async fn throttle(&self, n: usize) {
        self.server.throttle(n, 1);
    }

    fn source_with_limit(&self, bytes: u64) -> Option<Box<dyn DocumentSource>> {
        let mut config = self.config("/Team", DROPBOX_TOKEN);
        config.filter.max_file_size = Some(bytes);
        Some(Self::build(config))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropbox_folders_conform() {
    let server = DropboxServer::start(DROPBOX_TOKEN).await;
    let proxy = HttpProxy::start(&server.url).await;
    run_all(&Dropbox { server, proxy }).await;
}

// ---------------------------------------------------------------------------------------
// Google Drive

struct Drive {
    server: DriveServer,
    folder: String,
    /// Document name → Drive file id.
    files: Mutex<HashMap<String, String>>,
}

impl Drive {
    fn config(&self, folder: &str) -> GoogleDriveConfig {
        let mut config = GoogleDriveConfig::service_account(
            [folder.to_string()],
            SecretRef::inline(self.server.service_account_key()),
        );
        config.api_url = Some(self.server.url.clone());
        config.token_url = Some(self.server.token_url.clone());
        config.http.min_backoff_ms = 20;
        config.http.max_retries = 2;
        config.http.requests_per_second = Some(1000.0);
        config
    }

    fn build(config: GoogleDriveConfig) -> Box<dyn DocumentSource> {
        Box::new(GoogleDriveSource::new("gd", config, &BTreeMap::new()).expect("source"))
    }
}

#[async_trait]
impl Fixture for Drive {
    fn name(&self) -> &'static str {
        "google_drive"
    }

    fn source(&self) -> Box<dyn DocumentSource> {
        Self::build(self.config(&self.folder))
    }

    async fn put(&self, name: &str, text: &str) {
        let mut files = self.files.lock().expect("files");
        match files.get(name) {
            Some(id) => self.server.update(id, text.as_bytes()),
            None => {
                let id = self.server.put_file(&self.folder, name, text.as_bytes());
                files.insert(name.to_string(), id);
            }
        }
    }

    async fn remove(&self, name: &str) {
        let id = self
            .files
            .lock()
            .expect("files")
            .remove(name)
            .expect("a file");
        self.server.delete(&id);
    }

    async fn rename(&self, from: &str, to: &str) -> bool {
        let mut files = self.files.lock().expect("files");
        let id = files.remove(from).expect("a file");
        self.server.rename(&id, to);
        files.insert(to.to_string(), id);
        true
    }

    async fn source_with_unseen_folder(&self) -> Box<dyn DocumentSource> {
        let mut config = self.config(&self.folder);
        config
            .folder_ids
            .push("1NotSharedWithTheServiceAccount".into());
        Self::build(config)
    }

    async fn fail_listings(&self, failing: bool) -> bool {
        self.server
            .fail("files.list", if failing { usize::MAX / 2 } else { 0 });
        true
    }

    fn refused_source(&self) -> Option<Box<dyn DocumentSource>> {
        let mut config = self.config(&self.folder);
        config.service_account_key = None;
        config.client_id = Some("client-1.apps.googleusercontent.com".into());
        config.client_secret = Some(SecretRef::inline("client-secret-1"));
        config.refresh_token = Some(SecretRef::inline("1//revoked"));
        Some(Self::build(config))
    }

    async fn throttle(&self, n: usize) {
        self.server.throttle(n, 1);
    }

    fn source_with_limit(&self, bytes: u64) -> Option<Box<dyn DocumentSource>> {
        let mut config = self.config(&self.folder);
        config.filter.max_file_size = Some(bytes);
        Some(Self::build(config))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_drive_folders_conform() {
    let server = DriveServer::start().await;
    let folder = server.create_folder("root", "Team");
    run_all(&Drive {
        server,
        folder,
        files: Mutex::default(),
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Notion

const NOTION_TOKEN: &str = "secret_conformance";

struct Notion {
    server: NotionServer,
    /// Document name (the page title) → page id.
    pages: Mutex<HashMap<String, String>>,
}

impl Notion {
    fn config(&self, token: &str) -> NotionConfig {
        let mut config = NotionConfig::with_key(SecretRef::inline(token));
        config.api_url = Some(self.server.url.clone());
        config.http.min_backoff_ms = 20;
        config.http.max_retries = 2;
        config.http.requests_per_second = Some(1000.0);
        config
    }

    fn build(config: NotionConfig) -> Box<dyn DocumentSource> {
        Box::new(NotionSource::new("notion", config, &BTreeMap::new()).expect("source"))
    }

    /// A document's text as blocks: a paragraph a line (its `# Title` line is the title).
    fn blocks(text: &str) -> Vec<NotionBlock> {
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(NotionBlock::paragraph)
            .collect()
    }
}

#[async_trait]
impl Fixture for Notion {
    fn name(&self) -> &'static str {
        "notion"
    }

    fn source(&self) -> Box<dyn DocumentSource> {
        Self::build(self.config(NOTION_TOKEN))
    }

    async fn put(&self, name: &str, text: &str) {
        let mut pages = self.pages.lock().expect("pages");
        match pages.get(name) {
            Some(id) => self.server.set_blocks(id, &Self::blocks(text)),
            None => {
                let id = self.server.add_page(name, &Self::blocks(text));
                pages.insert(name.to_string(), id);
            }
        }
    }

    async fn remove(&self, name: &str) {
        let id = self
            .pages
            .lock()
            .expect("pages")
            .remove(name)
            .expect("a page");
        self.server.archive(&id);
    }

    /// Pages have ids, not paths: a renamed page is the same document.
    async fn rename(&self, _from: &str, _to: &str) -> bool {
        false
    }

    fn document_name(&self, entry: &SourceEntry) -> Option<String> {
        entry.title.clone()
    }

    fn reads_stored_bytes(&self) -> bool {
        false
    }

    async fn source_with_unseen_folder(&self) -> Box<dyn DocumentSource> {
        let mut config = self.config(NOTION_TOKEN);
        config.page_ids = vec!["0123456789abcdef0123456789abcdef".into()];
        Self::build(config)
    }

    async fn fail_listings(&self, failing: bool) -> bool {
        self.server
            .fail("search", if failing { usize::MAX / 2 } else { 0 });
        true
    }

    fn refused_source(&self) -> Option<Box<dyn DocumentSource>> {
        Some(Self::build(self.config("secret_revoked")))
    }

    async fn throttle(&self, n: usize) {
        self.server.throttle(n, 1);
    }

    /// Notion pages have no size limit of their own: they are rendered, not downloaded.
    fn source_with_limit(&self, _bytes: u64) -> Option<Box<dyn DocumentSource>> {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notion_workspaces_conform() {
    let server = NotionServer::start(NOTION_TOKEN).await;
    run_all(&Notion {
        server,
        pages: Mutex::default(),
    })
    .await;
}
