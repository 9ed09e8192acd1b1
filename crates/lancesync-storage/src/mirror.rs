//! Incremental copies of a LanceDB database between a local folder and an S3 prefix.
//!
//! Lance never rewrites a data file, index file or manifest: a commit adds files and then
//! one manifest naming them. So a copy moves only the files the other side lacks, data
//! before manifests, oldest manifest first. Interrupted at any point, the copy is a
//! database at its latest complete version, and the next copy carries on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::{Error, Result};

/// Files moved at once.
const PARALLEL_TRANSFERS: usize = 8;
/// Files up to this size are sent in one request; larger ones in parts.
const SINGLE_PUT_MAX: u64 = 8 * 1024 * 1024;

/// What one copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TransferReport {
    /// Files copied.
    pub files: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// Requests made to S3 (lists, puts, gets, parts).
    pub requests: u64,
    /// Files already present on the other side.
    pub unchanged: u64,
    /// Local files removed because the source no longer has them (replica pulls only).
    pub removed: u64,
    /// Wall time in milliseconds.
    pub millis: u64,
}

/// A file of a database: path relative to the database folder, and size.
pub(crate) type Listing = BTreeMap<String, u64>;

/// Whether `rel` is a manifest: the file a commit writes last.
pub(crate) fn is_manifest(rel: &str) -> bool {
    rel.ends_with(".manifest") && (rel.contains("_versions/") || rel.ends_with("_latest.manifest"))
}

/// The version a manifest file names. Lance names manifests either `{version}.manifest`
/// or, in its newer scheme, `{u64::MAX - version}` in 20 digits, so listing order is newest
/// first; both are read here. `_latest.manifest` sorts after every version.
pub(crate) fn manifest_version(rel: &str) -> Option<u64> {
    let name = rel.rsplit('/').next()?;
    if name == "_latest.manifest" {
        return Some(u64::MAX);
    }
    let stem = name.strip_suffix(".manifest")?;
    let n: u64 = stem.parse().ok()?;
    Some(if stem.len() == 20 { u64::MAX - n } else { n })
}

/// The table folder (`name.lance`) a file belongs to.
pub(crate) fn table_of(rel: &str) -> Option<&str> {
    rel.split('/').next().filter(|t| t.ends_with(".lance"))
}

/// Latest version of each table in a listing (table name without `.lance`).
pub(crate) fn latest_versions(listing: &Listing) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for rel in listing.keys().filter(|r| is_manifest(r)) {
        if let (Some(table), Some(v)) = (table_of(rel), manifest_version(rel))
            && v != u64::MAX
        {
            let name = table.trim_end_matches(".lance").to_string();
            let e = out.entry(name).or_insert(0);
            *e = (*e).max(v);
        }
    }
    out
}

/// Skip lancesync's own state (`.lancesync/`), partial downloads, other hidden files and
/// the staging files of a local write in progress (`name#n`): not part of the database.
fn is_hidden(rel: &str) -> bool {
    rel.split('/')
        .any(|part| part.starts_with('.') || part.contains('#'))
}

/// The database files under `dir`, manifests listed before data so a manifest in the
/// listing never names a file that was still being written when it was listed.
pub(crate) async fn local_listing(dir: &Path) -> Result<Listing> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut out = Listing::new();
        if !dir.exists() {
            return Ok(out);
        }
        let mut manifests = Vec::new();
        let mut data = Vec::new();
        for entry in walk(&dir)? {
            let rel = entry
                .strip_prefix(&dir)
                .map_err(|e| Error::Internal(e.to_string()))?
                .to_string_lossy()
                .replace('\\', "/");
            if is_hidden(&rel) {
                continue;
            }
            if is_manifest(&rel) {
                manifests.push((rel, entry));
            } else {
                data.push((rel, entry));
            }
        }
        for (rel, path) in manifests.into_iter().chain(data) {
            match std::fs::metadata(&path) {
                Ok(m) => {
                    out.insert(rel, m.len());
                }
                // Removed since the walk (a cleanup of old versions): not part of the copy.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::Io { path, source: e }),
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::Io { path: d, source: e }),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::Io {
                path: d.clone(),
                source: e,
            })?;
            let kind = entry.file_type().map_err(|e| Error::Io {
                path: entry.path(),
                source: e,
            })?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    Ok(files)
}

/// The database files under `prefix` on S3.
pub(crate) async fn remote_listing(
    store: &dyn ObjectStore,
    prefix: &ObjectPath,
    requests: &AtomicU64,
) -> Result<Listing> {
    requests.fetch_add(1, Ordering::Relaxed);
    let metas: Vec<_> = store
        .list(Some(prefix))
        .try_collect()
        .await
        .map_err(Error::S3)?;
    let skip = prefix.as_ref().len() + 1;
    Ok(metas
        .into_iter()
        .filter_map(|m| {
            let rel = m.location.as_ref().get(skip..)?.to_string();
            (!is_hidden(&rel)).then_some((rel, m.size))
        })
        .collect())
}

fn key(prefix: &ObjectPath, rel: &str) -> ObjectPath {
    ObjectPath::from(format!("{prefix}/{rel}"))
}

/// Split files to copy into data (any order) and manifests (oldest first).
fn plan<'a>(wanted: impl Iterator<Item = &'a String>) -> (Vec<String>, Vec<String>) {
    let (mut manifests, data): (Vec<String>, Vec<String>) =
        wanted.cloned().partition(|r| is_manifest(r));
    manifests.sort_by_key(|r| (manifest_version(r), r.clone()));
    (data, manifests)
}

/// Upload what `prefix` lacks of the database in `local_dir`. Manifests are created with
/// `If-None-Match`, so one that another writer put there first is never overwritten: that
/// is [`Error::Conflict`].
pub async fn push(
    local_dir: &Path,
    store: Arc<dyn ObjectStore>,
    prefix: &ObjectPath,
) -> Result<TransferReport> {
    let started = Instant::now();
    let requests = AtomicU64::new(0);
    let local = local_listing(local_dir).await?;
    let remote = remote_listing(store.as_ref(), prefix, &requests).await?;
    let missing = local
        .iter()
        .filter(|(rel, size)| remote.get(*rel) != Some(size))
        .map(|(rel, _)| rel);
    let (data, manifests) = plan(missing);
    for rel in &manifests {
        if remote.contains_key(rel) {
            return Err(Error::Conflict {
                message: format!(
                    "{prefix}/{rel} already exists on S3 with other content: another device wrote this version"
                ),
            });
        }
    }
    let unchanged = (local.len() - data.len() - manifests.len()) as u64;
    let bytes = AtomicU64::new(0);
    let sent: Vec<(u64, u64)> = futures::stream::iter(data.iter().cloned())
        .map(|rel| {
            let (store, path, to) = (store.clone(), local_dir.join(&rel), key(prefix, &rel));
            async move {
                let requests = AtomicU64::new(0);
                let sent = upload(store, &path, &to, None, &requests).await?;
                Ok::<_, Error>((sent, requests.into_inner()))
            }
        })
        .buffer_unordered(PARALLEL_TRANSFERS)
        .try_collect()
        .await?;
    for (b, r) in sent {
        bytes.fetch_add(b, Ordering::Relaxed);
        requests.fetch_add(r, Ordering::Relaxed);
    }
    for rel in &manifests {
        let path = local_dir.join(rel);
        let sent = upload(
            store.clone(),
            &path,
            &key(prefix, rel),
            Some(PutMode::Create),
            &requests,
        )
        .await?;
        bytes.fetch_add(sent, Ordering::Relaxed);
    }
    Ok(TransferReport {
        files: (data.len() + manifests.len()) as u64,
        bytes: bytes.into_inner(),
        requests: requests.into_inner(),
        unchanged,
        removed: 0,
        millis: started.elapsed().as_millis() as u64,
    })
}

async fn upload(
    store: Arc<dyn ObjectStore>,
    path: &Path,
    to: &ObjectPath,
    mode: Option<PutMode>,
    requests: &AtomicU64,
) -> Result<u64> {
    let io = |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let size = match tokio::fs::metadata(path).await {
        Ok(m) => m.len(),
        // Cleaned up since the listing (old versions pruned by a concurrent run): the
        // manifests that named it are gone too.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(e)),
    };
    if size <= SINGLE_PUT_MAX || mode.is_some() {
        let body = tokio::fs::read(path).await.map_err(io)?;
        requests.fetch_add(1, Ordering::Relaxed);
        let opts = PutOptions {
            mode: mode.unwrap_or(PutMode::Overwrite),
            ..PutOptions::default()
        };
        match store.put_opts(to, PutPayload::from(body), opts).await {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => {
                // A copy interrupted after this manifest was sent: fine if it is ours.
                requests.fetch_add(1, Ordering::Relaxed);
                let theirs = store.head(to).await.map_err(Error::S3)?;
                if theirs.size != size {
                    return Err(Error::Conflict {
                        message: format!(
                            "{to} already exists on S3 with other content: another device wrote this version"
                        ),
                    });
                }
            }
            Err(e) => return Err(Error::S3(e)),
        }
        return Ok(size);
    }
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    let mut writer = object_store::buffered::BufWriter::with_capacity(
        store,
        to.clone(),
        SINGLE_PUT_MAX as usize,
    );
    tokio::io::copy(&mut file, &mut writer).await.map_err(io)?;
    writer.shutdown().await.map_err(io)?;
    // Create, parts and complete.
    requests.fetch_add(2 + size.div_ceil(SINGLE_PUT_MAX), Ordering::Relaxed);
    Ok(size)
}

/// Download what `local_dir` lacks of the database under `prefix`. With `prune`, local
/// files the source no longer has are removed afterwards (a replica follows its primary's
/// cleanups); a backup restore keeps them.
pub async fn pull(
    store: Arc<dyn ObjectStore>,
    prefix: &ObjectPath,
    local_dir: &Path,
    prune: bool,
) -> Result<TransferReport> {
    let started = Instant::now();
    let requests = AtomicU64::new(0);
    let remote = remote_listing(store.as_ref(), prefix, &requests).await?;
    let local = local_listing(local_dir).await?;
    let missing = remote
        .iter()
        .filter(|(rel, size)| local.get(*rel) != Some(size))
        .map(|(rel, _)| rel);
    let (data, manifests) = plan(missing);
    let unchanged = (remote.len() - data.len() - manifests.len()) as u64;
    let bytes = AtomicU64::new(0);
    let got: Vec<u64> = futures::stream::iter(data.iter().cloned())
        .map(|rel| {
            let (store, from, to) = (store.clone(), key(prefix, &rel), local_dir.join(&rel));
            async move {
                let requests = AtomicU64::new(0);
                download(store, &from, &to, &requests).await
            }
        })
        .buffer_unordered(PARALLEL_TRANSFERS)
        .try_collect()
        .await?;
    bytes.fetch_add(got.iter().sum(), Ordering::Relaxed);
    requests.fetch_add(got.len() as u64, Ordering::Relaxed);
    for rel in &manifests {
        let got = download(
            store.clone(),
            &key(prefix, rel),
            &local_dir.join(rel),
            &requests,
        )
        .await?;
        bytes.fetch_add(got, Ordering::Relaxed);
    }
    let mut removed = 0;
    if prune {
        for rel in local.keys().filter(|r| !remote.contains_key(*r)) {
            let path = local_dir.join(rel);
            match tokio::fs::remove_file(&path).await {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::Io { path, source: e }),
            }
        }
    }
    Ok(TransferReport {
        files: (data.len() + manifests.len()) as u64,
        bytes: bytes.into_inner(),
        requests: requests.into_inner(),
        unchanged,
        removed,
        millis: started.elapsed().as_millis() as u64,
    })
}

/// Stream one object to `to` through a hidden partial file, renamed into place when
/// complete, so a reader never sees half a file.
async fn download(
    store: Arc<dyn ObjectStore>,
    from: &ObjectPath,
    to: &Path,
    requests: &AtomicU64,
) -> Result<u64> {
    let io = |e| Error::Io {
        path: to.to_path_buf(),
        source: e,
    };
    let dir = to
        .parent()
        .ok_or_else(|| Error::Internal(format!("{} has no parent", to.display())))?;
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    let name = to.file_name().map(|n| n.to_string_lossy().to_string());
    let partial = dir.join(format!(".{}.part", name.unwrap_or_default()));
    requests.fetch_add(1, Ordering::Relaxed);
    let mut stream = store.get(from).await.map_err(Error::S3)?.into_stream();
    let mut file = tokio::fs::File::create(&partial).await.map_err(io)?;
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(Error::S3)?;
        size += chunk.len() as u64;
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.sync_all().await.map_err(io)?;
    drop(file);
    tokio::fs::rename(&partial, to).await.map_err(io)?;
    Ok(size)
}

/// Remove every object under `prefix` (a failed restore's staging copy, a test's bucket).
pub async fn remove_prefix(store: &dyn ObjectStore, prefix: &ObjectPath) -> Result<u64> {
    let requests = AtomicU64::new(0);
    let listing = remote_listing(store, prefix, &requests).await?;
    for rel in listing.keys() {
        store.delete(&key(prefix, rel)).await.map_err(Error::S3)?;
    }
    Ok(listing.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_names_of_both_schemes_give_versions() {
        assert_eq!(manifest_version("t.lance/_versions/7.manifest"), Some(7));
        let v2 = format!("t.lance/_versions/{:020}.manifest", u64::MAX - 7);
        assert_eq!(manifest_version(&v2), Some(7));
        assert!(is_manifest(&v2));
        assert!(!is_manifest("t.lance/data/abc.lance"));
        assert!(is_manifest("t.lance/_latest.manifest"));
        assert_eq!(manifest_version("t.lance/_latest.manifest"), Some(u64::MAX));
        let listing: Listing = [
            ("a.lance/_versions/1.manifest".to_string(), 1),
            (v2.replace("t.lance", "a.lance"), 1),
            ("b.lance/_versions/3.manifest".to_string(), 1),
            ("a.lance/_latest.manifest".to_string(), 1),
            ("a.lance/data/x.lance".to_string(), 1),
        ]
        .into_iter()
        .collect();
        let latest = latest_versions(&listing);
        assert_eq!(latest.get("a"), Some(&7));
        assert_eq!(latest.get("b"), Some(&3));
        let (data, manifests) = plan(listing.keys());
        assert_eq!(data, vec!["a.lance/data/x.lance".to_string()]);
        assert_eq!(manifests.last().unwrap(), "a.lance/_latest.manifest");
        assert_eq!(manifests.first().unwrap(), "a.lance/_versions/1.manifest");
        assert!(is_hidden(".lancesync/x.lock") && is_hidden("a.lance/data/.x.part"));
        assert!(is_hidden("a.lance/_versions/3.manifest#1") && !is_hidden("a.lance/data/x.lance"));
    }

    #[tokio::test]
    async fn copies_are_incremental_and_skip_lancesync_state() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::create_dir_all(db.join("t.lance/data")).unwrap();
        std::fs::create_dir_all(db.join("t.lance/_versions")).unwrap();
        std::fs::create_dir_all(db.join(".lancesync")).unwrap();
        std::fs::write(db.join("t.lance/data/a.lance"), vec![1u8; 100]).unwrap();
        std::fs::write(db.join("t.lance/_versions/1.manifest"), b"m1").unwrap();
        std::fs::write(db.join(".lancesync/run.lock"), b"x").unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let prefix = ObjectPath::from("p/users/u");
        let first = push(&db, store.clone(), &prefix).await.unwrap();
        assert_eq!((first.files, first.bytes), (2, 102));
        std::fs::write(db.join("t.lance/data/b.lance"), vec![2u8; 50]).unwrap();
        std::fs::write(db.join("t.lance/_versions/2.manifest"), b"m2").unwrap();
        let second = push(&db, store.clone(), &prefix).await.unwrap();
        assert_eq!((second.files, second.bytes, second.unchanged), (2, 52, 2));
        // Another writer's version 2 is never overwritten.
        std::fs::write(db.join("t.lance/_versions/2.manifest"), b"other").unwrap();
        assert!(matches!(
            push(&db, store.clone(), &prefix).await,
            Err(Error::Conflict { .. })
        ));
        let copy = dir.path().join("copy");
        let pulled = pull(store.clone(), &prefix, &copy, false).await.unwrap();
        assert_eq!(pulled.files, 4);
        assert!(!copy.join(".lancesync").exists());
        assert_eq!(
            std::fs::read(copy.join("t.lance/_versions/2.manifest")).unwrap(),
            b"m2"
        );
        // A replica follows removals; a second pull moves nothing.
        store
            .delete(&key(&prefix, "t.lance/data/a.lance"))
            .await
            .unwrap();
        let again = pull(store.clone(), &prefix, &copy, true).await.unwrap();
        assert_eq!((again.files, again.removed), (0, 1));
        assert!(!copy.join("t.lance/data/a.lance").exists());
    }
}
