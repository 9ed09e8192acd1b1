//! Watching folders for a foreground sync loop (`sync-cli watch`): a pass at once, then one
//! whenever something under a watched folder changes (debounced) or the poll interval
//! passes, until told to stop.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use notify_debouncer_full::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache};

use crate::{Error, Result};

/// How a [`Watcher`] wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    /// Quiet time after a change before a pass starts, so a burst of writes is one pass.
    pub debounce: Duration,
    /// Longest time between passes, change or not (remote sources and unwatchable folders
    /// are only seen this way).
    pub poll: Duration,
}

/// Folders watched for changes; see the module docs.
pub struct Watcher {
    // Kept alive: dropping it stops the watching.
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    wakes: tokio::sync::mpsc::Receiver<()>,
    poll: Duration,
    unwatched: Vec<(PathBuf, String)>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("poll", &self.poll)
            .field("unwatched", &self.unwatched)
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// Watch `roots` recursively. A root that cannot be watched (missing, no inotify slots
    /// left) is not an error: it is listed by [`unwatched`](Self::unwatched) and still seen
    /// every poll interval.
    pub fn new(roots: &[PathBuf], options: WatchOptions) -> Result<Self> {
        let (tx, wakes) = tokio::sync::mpsc::channel::<()>(1);
        let mut debouncer = notify_debouncer_full::new_debouncer(
            options.debounce,
            None,
            move |result: DebounceEventResult| {
                if result.is_ok_and(|events| !events.is_empty()) {
                    // A full channel already holds a wake-up: the next pass sees every change.
                    let _ = tx.try_send(());
                }
            },
        )
        .map_err(|e| Error::Invalid(format!("cannot watch for changes: {e}")))?;
        let mut unwatched = Vec::new();
        for root in roots {
            match debouncer.watch(root, RecursiveMode::Recursive) {
                Ok(()) => tracing::info!(path = %root.display(), "watching"),
                Err(e) => unwatched.push((root.clone(), e.to_string())),
            }
        }
        Ok(Self {
            _debouncer: debouncer,
            wakes,
            poll: options.poll.max(Duration::from_secs(1)),
            unwatched,
        })
    }

    /// Roots that could not be watched, and why.
    pub fn unwatched(&self) -> &[(PathBuf, String)] {
        &self.unwatched
    }

    /// Wait until the next pass is due: a change settled, or the poll interval passed.
    pub async fn next_pass(&mut self) {
        tokio::select! {
            _ = self.wakes.recv() => {}
            _ = tokio::time::sleep(self.poll) => {}
        }
    }

    /// Run `pass` at once, then whenever a pass is due, until `stop` completes (a pass in
    /// progress finishes first) or a pass fails. Returns the last pass's outcome.
    pub async fn run<T, E, F, Fut>(
        mut self,
        stop: impl Future<Output = ()>,
        mut pass: F,
    ) -> std::result::Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        let mut last = pass().await?;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = self.next_pass() => {}
                _ = &mut stop => return Ok(last),
            }
            last = pass().await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn options(poll: Duration) -> WatchOptions {
        WatchOptions {
            debounce: Duration::from_millis(50),
            poll,
        }
    }

    #[tokio::test]
    async fn a_change_wakes_a_pass_long_before_the_poll_interval() {
        let dir = tempfile::tempdir().expect("dir");
        let watcher = Watcher::new(
            &[dir.path().to_path_buf()],
            options(Duration::from_secs(600)),
        )
        .expect("watcher");
        assert!(watcher.unwatched().is_empty());
        let passes = Arc::new(AtomicUsize::new(0));
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let mut done_tx = Some(done_tx);
        let counted = passes.clone();
        let file = dir.path().join("new.md");
        let outcome: std::result::Result<usize, ()> = tokio::time::timeout(
            Duration::from_secs(30),
            watcher.run(
                async {
                    let _ = done_rx.await;
                },
                || {
                    let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
                    if n == 1 {
                        std::fs::write(&file, "# new").expect("write");
                    } else if let Some(tx) = done_tx.take() {
                        let _ = tx.send(());
                    }
                    async move { Ok(n) }
                },
            ),
        )
        .await
        .expect("the change woke a second pass within 30 s, not after the 600 s poll");
        assert_eq!(outcome, Ok(2));
        assert_eq!(passes.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_missing_root_is_reported_and_polled_and_a_failed_pass_ends_the_loop() {
        let dir = tempfile::tempdir().expect("dir");
        let missing = dir.path().join("not-there");
        let watcher = Watcher::new(
            std::slice::from_ref(&missing),
            options(Duration::from_secs(1)),
        )
        .expect("watcher");
        assert_eq!(watcher.unwatched().len(), 1);
        assert_eq!(watcher.unwatched()[0].0, missing);
        let mut passes = 0;
        let outcome: std::result::Result<(), String> = tokio::time::timeout(
            Duration::from_secs(30),
            watcher.run(std::future::pending(), || {
                passes += 1;
                let n = passes;
                async move {
                    if n < 3 {
                        Ok(())
                    } else {
                        Err(format!("pass {n} failed"))
                    }
                }
            }),
        )
        .await
        .expect("polled every second");
        assert_eq!(outcome, Err("pass 3 failed".to_string()));
    }
}
