//! Advisory file locks (`flock` on Unix) that serialise work across processes and across
//! engines in one process: creating a user's tables, runs of one source, and a user's writes
//! (shared) against a re-index (exclusive).
//!
//! The lock belongs to the open file, so it is released when the [`FileLock`] is dropped and
//! by the kernel when a process dies, even by `kill -9`: a crash never leaves a stale lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A held exclusive lock on a file; released on drop.
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

fn open_lock_file(path: &Path) -> Result<File> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)
}

impl FileLock {
    /// Wait for the lock on `path` (created if missing).
    pub(crate) async fn acquire(path: PathBuf) -> Result<Self> {
        tokio::task::spawn_blocking(move || {
            let file = open_lock_file(&path)?;
            file.lock().map_err(|source| Error::Io { path, source })?;
            Ok(Self { _file: file })
        })
        .await
        .map_err(|e| Error::Internal(format!("lock task failed: {e}")))?
    }

    /// Take the lock on `path` if nobody holds it; `None` if somebody does. The holder's
    /// process id is written into the file, for the message of whoever finds it busy.
    pub(crate) fn try_acquire(path: &Path) -> Result<Option<Self>> {
        let mut file = open_lock_file(path)?;
        match file.try_lock() {
            Ok(()) => {
                // Best effort: the pid only makes the "busy" message more helpful.
                let _ = file.set_len(0);
                let _ = writeln!(file, "{}", std::process::id());
                Ok(Some(Self { _file: file }))
            }
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(source)) => Err(Error::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Share the lock on `path` with other sharers, if nobody holds it exclusively; `None` if
    /// somebody does. Writes nothing into the file.
    pub(crate) fn try_acquire_shared(path: &Path) -> Result<Option<Self>> {
        let file = open_lock_file(path)?;
        match file.try_lock_shared() {
            Ok(()) => Ok(Some(Self { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(source)) => Err(Error::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// The process id the current holder of `path` wrote, if readable.
    pub(crate) fn holder(path: &Path) -> Option<u32> {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_held_lock_is_busy_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("a.lock");
        let held = FileLock::try_acquire(&path)
            .unwrap()
            .expect("free at first");
        assert!(
            FileLock::try_acquire(&path).unwrap().is_none(),
            "second taker must wait"
        );
        assert_eq!(FileLock::holder(&path), Some(std::process::id()));
        drop(held);
        let again = FileLock::try_acquire(&path).unwrap();
        assert!(again.is_some(), "free again after drop");
        drop(again);
        // A blocking waiter gets it once the holder lets go.
        let held = FileLock::try_acquire(&path).unwrap().unwrap();
        let waiter = tokio::spawn(FileLock::acquire(path.clone()));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "waiter must block while the lock is held"
        );
        drop(held);
        waiter.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn sharers_exclude_only_an_exclusive_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("writes.lock");
        let a = FileLock::try_acquire_shared(&path).unwrap().expect("free");
        let b = FileLock::try_acquire_shared(&path).unwrap();
        assert!(b.is_some(), "writers share the lock");
        assert!(FileLock::try_acquire(&path).unwrap().is_none());
        // An exclusive waiter (a re-index) gets it when the last writer is done.
        let waiter = tokio::spawn(FileLock::acquire(path.clone()));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        drop(a);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "one writer is still writing");
        drop(b);
        let exclusive = waiter.await.unwrap().unwrap();
        assert!(
            FileLock::try_acquire_shared(&path).unwrap().is_none(),
            "no writer while it is held"
        );
        drop(exclusive);
        assert!(FileLock::try_acquire_shared(&path).unwrap().is_some());
    }
}
