//! The local filesystem source: folders walked with include/exclude globs.
//!
//! Defaults: hidden files and folders (name starting with `.`) are skipped; symbolic links are
//! not followed (with `follow_symlinks`, loops are detected and reported). Unreadable entries,
//! symlink loops and non-UTF-8 names are reported as issues, never fatal, and an unreadable
//! folder or missing watch path is marked unlisted so nothing under it is deleted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::patterns::{FilterSettings, Patterns};
use crate::{DocumentSource, Error, Listing, ListingIssue, Result, SourceEntry};

/// The file patterns used when a source names none.
pub const DEFAULT_PATTERNS: &[&str] = &["*.pdf", "*.docx", "*.txt", "*.md", "*.html"];

/// Configuration of a local folder source, with the seeds' field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalFsConfig {
    /// Folders (or single files) to index; `~` and `${VAR}` expand.
    pub watch_paths: Vec<String>,
    /// Which files, and the size limit.
    #[serde(flatten)]
    pub filter: FilterSettings,
    /// Index hidden files and descend into hidden folders.
    #[serde(default)]
    pub include_hidden: bool,
    /// Follow symbolic links (loops are detected and reported).
    #[serde(default)]
    pub follow_symlinks: bool,
}

impl LocalFsConfig {
    /// Watch these paths with the default patterns.
    pub fn new<S: Into<String>>(watch_paths: impl IntoIterator<Item = S>) -> Self {
        Self {
            watch_paths: watch_paths.into_iter().map(Into::into).collect(),
            filter: FilterSettings::default(),
            include_hidden: false,
            follow_symlinks: false,
        }
    }
}

impl crate::spec::Settings for LocalFsConfig {
    fn build(&self, id: &str, env: &BTreeMap<String, String>) -> Result<Arc<dyn DocumentSource>> {
        Ok(Arc::new(LocalFsSource::new(id, self.clone(), env)?))
    }

    fn describe(&self) -> String {
        self.watch_paths.join(", ")
    }

    fn refused_for_untrusted(&self) -> Option<String> {
        Some("local_filesystem sources read the server's disk: only the admin may add them".into())
    }
}

/// Documents in local folders.
#[derive(Debug, Clone)]
pub struct LocalFsSource {
    id: String,
    walker: Arc<Walker>,
}

/// What a listing needs, shared with the blocking task that walks the folders.
#[derive(Debug)]
struct Walker {
    id: String,
    config: LocalFsConfig,
    roots: Vec<PathBuf>,
    include: Patterns,
    exclude: Patterns,
}

impl LocalFsSource {
    /// A source named `id`. `env` expands `~` and `${VAR}` in watch paths (pass the process
    /// environment, or a test's map). Relative watch paths must be made absolute by the caller.
    pub fn new(
        id: impl Into<String>,
        config: LocalFsConfig,
        env: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let id = id.into();
        let invalid = |m: String| Error::InvalidConfig(format!("source {id}: {m}"));
        if config.watch_paths.is_empty() {
            return Err(invalid(
                "a local_filesystem source needs at least one watch path".into(),
            ));
        }
        let mut roots = Vec::new();
        for raw in &config.watch_paths {
            let expanded = lancesync_config::expand_path(raw, env)
                .map_err(|e| invalid(format!("watch path {raw:?}: {e}")))?;
            let path = PathBuf::from(expanded);
            if !path.is_absolute() {
                return Err(invalid(format!("watch path {raw:?} is not absolute")));
            }
            roots.push(path);
        }
        let patterns = |list: &[String]| Patterns::new(list).map_err(|e| invalid(e.to_string()));
        let walker = Walker {
            id: id.clone(),
            include: patterns(&config.filter.includes(DEFAULT_PATTERNS))?,
            exclude: patterns(&config.filter.exclude_patterns)?,
            config,
            roots,
        };
        Ok(Self {
            id,
            walker: Arc::new(walker),
        })
    }

    /// The expanded watch paths.
    pub fn roots(&self) -> &[PathBuf] {
        &self.walker.roots
    }

    /// The configuration.
    pub fn config(&self) -> &LocalFsConfig {
        &self.walker.config
    }
}

/// What one directory contributed; merged into the listing once per directory.
#[derive(Default)]
struct Found {
    entries: Vec<SourceEntry>,
    issues: Vec<ListingIssue>,
    unlisted: Vec<String>,
}

impl Found {
    /// A path could not be read: reported, and nothing under it may be deleted.
    fn cannot_read(&mut self, path: &Path, error: &std::io::Error) {
        self.unreadable(
            path.to_string_lossy().into_owned(),
            format!("cannot read: {error}"),
        );
    }

    /// Something could not be looked at: reported, and nothing under it may be deleted.
    fn unreadable(&mut self, path: String, reason: String) {
        self.issues.push(ListingIssue {
            uri: path.clone(),
            reason,
        });
        self.unlisted.push(path);
    }
}

impl Walker {
    fn list_blocking(&self) -> Listing {
        let found = Mutex::new(Found::default());
        for root in &self.roots {
            self.list_root(root, &found);
        }
        let Found {
            mut entries,
            mut issues,
            mut unlisted,
        } = found.into_inner().unwrap_or_else(|e| e.into_inner());
        // Directories are read in parallel; the listing's order is the uris'.
        entries.sort_unstable_by(|a, b| a.uri.cmp(&b.uri));
        // Only overlapping watch paths can list a file twice.
        entries.dedup_by(|a, b| a.uri == b.uri);
        issues.sort_by(|a, b| a.uri.cmp(&b.uri));
        unlisted.sort();
        Listing {
            entries,
            unlisted,
            issues,
        }
    }

    fn list_root(&self, root: &Path, out: &Mutex<Found>) {
        let root_text = root.to_string_lossy().into_owned();
        let meta = match std::fs::metadata(root) {
            Ok(meta) => meta,
            Err(e) => {
                let reason = if e.kind() == std::io::ErrorKind::NotFound {
                    "watch path does not exist".to_string()
                } else {
                    format!("watch path cannot be read: {e}")
                };
                tracing::warn!(source = %self.id, path = %root_text, %reason, "nothing listed under this watch path; nothing under it is deleted");
                lock(out).unreadable(root_text, reason);
                return;
            }
        };
        if !meta.is_dir() {
            // A single file as a watch path: its name must still match the patterns.
            let mut found = Found::default();
            let name = root.file_name().unwrap_or_default().to_string_lossy();
            if self.include.matches(&name, Path::new("")) {
                self.add_file(root.to_path_buf(), Ok(meta), &mut found);
            }
            merge(out, found);
            return;
        }
        // Loop detection needs the real paths of the folders above; only when following links.
        let ancestors = if self.config.follow_symlinks {
            vec![std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf())]
        } else {
            Vec::new()
        };
        rayon::scope(|scope| self.walk_dir(scope, root, root.to_path_buf(), ancestors, out));
    }

    /// Read one directory: files become entries, subdirectories are walked as tasks of their
    /// own. `std`'s directory entries stat relative to the open directory (no full path
    /// lookup per file), which is most of what a rescan of a large tree costs.
    fn walk_dir<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        root: &'s Path,
        dir: PathBuf,
        ancestors: Vec<PathBuf>,
        out: &'s Mutex<Found>,
    ) {
        let mut found = Found::default();
        let read = match std::fs::read_dir(&dir) {
            Ok(read) => read,
            Err(e) => {
                found.cannot_read(&dir, &e);
                merge(out, found);
                return;
            }
        };
        for item in read {
            let entry = match item {
                Ok(entry) => entry,
                Err(e) => {
                    found.cannot_read(&dir, &e);
                    continue;
                }
            };
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && !self.config.include_hidden {
                continue;
            }
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap_or(&path);
            if self.exclude.matches(&name, relative) {
                continue;
            }
            let file_type = match entry.file_type() {
                Ok(t) => t,
                Err(e) => {
                    found.cannot_read(&path, &e);
                    continue;
                }
            };
            // A followed link is looked at through its target; a link not followed is skipped.
            let (is_dir, is_file, meta) = if file_type.is_symlink() {
                if !self.config.follow_symlinks {
                    tracing::debug!(path = %path.display(), "symbolic link not followed");
                    continue;
                }
                match std::fs::metadata(&path) {
                    Ok(meta) => (meta.is_dir(), meta.is_file(), Some(meta)),
                    Err(e) => {
                        found.cannot_read(&path, &e);
                        continue;
                    }
                }
            } else {
                (file_type.is_dir(), file_type.is_file(), None)
            };
            if is_dir {
                let mut below = ancestors.clone();
                if self.config.follow_symlinks {
                    let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
                    if let Some(ancestor) = ancestors.iter().find(|a| **a == real) {
                        found.unreadable(
                            path.to_string_lossy().into_owned(),
                            format!("symlink loop back to {}", ancestor.display()),
                        );
                        continue;
                    }
                    below.push(real);
                }
                scope.spawn(move |scope| self.walk_dir(scope, root, path, below, out));
                continue;
            }
            // Sockets, fifos and devices are not documents.
            if !is_file || !self.include.matches(&name, relative) {
                continue;
            }
            let meta = meta.map_or_else(|| entry.metadata(), Ok);
            self.add_file(path, meta, &mut found);
        }
        merge(out, found);
    }

    fn add_file(&self, path: PathBuf, meta: std::io::Result<std::fs::Metadata>, found: &mut Found) {
        let uri = match path.into_os_string().into_string() {
            Ok(uri) => uri,
            Err(raw) => {
                found.issues.push(ListingIssue {
                    uri: raw.to_string_lossy().into_owned(),
                    reason: "file name is not valid UTF-8; skipped".into(),
                });
                return;
            }
        };
        match meta {
            Ok(meta) => {
                let modified_ms = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_millis() as i64);
                found
                    .entries
                    .push(SourceEntry::new(uri, meta.len(), modified_ms));
            }
            Err(e) => found.unreadable(uri, format!("cannot stat: {e}")),
        }
    }
}

fn lock(found: &Mutex<Found>) -> std::sync::MutexGuard<'_, Found> {
    found.lock().unwrap_or_else(|e| e.into_inner())
}

fn merge(out: &Mutex<Found>, found: Found) {
    let mut out = lock(out);
    out.entries.extend(found.entries);
    out.issues.extend(found.issues);
    out.unlisted.extend(found.unlisted);
}

#[async_trait]
impl DocumentSource for LocalFsSource {
    fn id(&self) -> &str {
        &self.id
    }

    fn source_type(&self) -> &'static str {
        "local_filesystem"
    }

    fn watch_roots(&self) -> Vec<PathBuf> {
        self.walker.roots.clone()
    }

    async fn list(&self) -> Result<Listing> {
        // Walking is blocking I/O; keep it off the async workers.
        let walker = self.walker.clone();
        tokio::task::spawn_blocking(move || walker.list_blocking())
            .await
            .map_err(|e| Error::List {
                source_id: self.id.clone(),
                reason: e.to_string(),
            })
    }

    async fn read(&self, entry: &SourceEntry) -> Result<Vec<u8>> {
        let path = Path::new(&entry.uri);
        if !self.walker.roots.iter().any(|root| path.starts_with(root)) {
            return Err(Error::Read {
                uri: entry.uri.clone(),
                reason: "not under this source's watch paths".into(),
            });
        }
        let owned = path.to_path_buf();
        let limit = self.walker.config.filter.max_file_size;
        let uri = entry.uri.clone();
        tokio::task::spawn_blocking(move || read_regular_file(&owned, &uri, limit))
            .await
            .map_err(|e| Error::Read {
                uri: entry.uri.clone(),
                reason: e.to_string(),
            })?
    }
}

/// The bytes of the regular file at `path`, at most `limit`. Opened without blocking and
/// checked on the open handle, so a file replaced by a FIFO, socket or device between listing
/// and reading is refused instead of hanging the run (and nothing is swapped in after the check).
fn read_regular_file(path: &Path, uri: &str, limit: Option<u64>) -> Result<Vec<u8>> {
    use std::io::Read;
    let failed = |reason: String| Error::Read {
        uri: uri.to_string(),
        reason,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| failed(e.to_string()))?;
    let meta = file.metadata().map_err(|e| failed(e.to_string()))?;
    if !meta.is_file() {
        return Err(failed(
            "not a regular file (a FIFO, socket or device took its place); not read".into(),
        ));
    }
    let too_large = |size: u64, limit: u64| Error::TooLarge {
        uri: uri.to_string(),
        size,
        limit,
    };
    if let Some(limit) = limit
        && meta.len() > limit
    {
        return Err(too_large(meta.len(), limit));
    }
    let mut bytes = Vec::with_capacity(meta.len().min(1 << 30) as usize);
    // The file may grow after the check: never read past the limit.
    file.take(limit.map_or(u64::MAX, |l| l.saturating_add(1)))
        .read_to_end(&mut bytes)
        .map_err(|e| failed(e.to_string()))?;
    if let Some(limit) = limit
        && bytes.len() as u64 > limit
    {
        return Err(too_large(bytes.len() as u64, limit));
    }
    Ok(bytes)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fifo_in_place_of_a_listed_file_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("notes.md");
        std::fs::write(&file, "# Notes\n\nhello").unwrap();
        let source = LocalFsSource::new(
            "docs",
            LocalFsConfig::new([dir.path().display().to_string()]),
            &BTreeMap::new(),
        )
        .unwrap();
        let listing = source.list().await.unwrap();
        assert_eq!(listing.entries.len(), 1);
        let entry = listing.entries[0].clone();
        assert_eq!(source.read(&entry).await.unwrap(), b"# Notes\n\nhello");
        // Replaced by a FIFO with no writer between listing and reading: a blocking open
        // would wait forever.
        std::fs::remove_file(&file).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&file)
            .status()
            .unwrap();
        assert!(made.success());
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), source.read(&entry))
            .await
            .expect("reading a FIFO must not block");
        let err = read.unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }

    #[tokio::test]
    async fn a_file_that_grew_past_the_limit_is_not_read_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big.txt");
        std::fs::write(&file, "x".repeat(10)).unwrap();
        let mut config = LocalFsConfig::new([dir.path().display().to_string()]);
        config.filter.max_file_size = Some(100);
        let source = LocalFsSource::new("docs", config, &BTreeMap::new()).unwrap();
        let entry = source.list().await.unwrap().entries[0].clone();
        std::fs::write(&file, "x".repeat(1000)).unwrap();
        let err = source.read(&entry).await.unwrap_err();
        assert!(matches!(err, Error::TooLarge { limit: 100, .. }), "{err}");
    }
}
