//! The orchestrator on real LanceDB tables in temp dirs: schedules, pipeline stop/start without
//! losing changes, persistence across restarts, source removal, scans as jobs, health.
//! Run: cargo test --workspace --test orchestrator

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lancesync_config::Config;
use lancesync_orchestrator::{HealthStatus, JobState, Orchestrator};
use lancesync_sources::{LocalFsConfig, SourceSpec};

mod common;

use common::folder;

fn config(work: &Path, extra: &[(&str, &str)]) -> Config {
    let mut settings = vec![("CHUNK_CHARACTERS", "300"), ("CHUNK_OVERLAP", "50")];
    settings.extend_from_slice(extra);
    common::config(work, "state", &settings)
}

fn orchestrator(work: &Path, extra: &[(&str, &str)]) -> Orchestrator {
    let settings = config(work, extra).settings().clone();
    let engine = Arc::new(common::engine(&settings));
    Orchestrator::new(settings, BTreeMap::new(), engine)
}

fn spec(id: &str, dir: &Path, poll: Option<u64>) -> SourceSpec {
    let mut s = SourceSpec::local(id, &LocalFsConfig::new([dir.display().to_string()]));
    s.poll_interval = poll;
    s
}

async fn documents(o: &Orchestrator, user: &str) -> usize {
    o.engine().status(user).await.unwrap().documents
}

/// Wait until `check` holds, polling; fails after `limit`.
async fn eventually(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within {limit:?}: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_run_and_a_stopped_pipeline_loses_no_changes() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let docs = folder(w, "docs", 3);
    let o = orchestrator(w, &[("DEFAULT_POLL_INTERVAL", "1")]);
    assert_eq!(o.initialize().await.unwrap(), 0);
    o.add_source("alice", spec("notes", &docs, None))
        .await
        .unwrap();
    // Nothing runs before the pipeline is started.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(documents(&o, "alice").await, 0);
    assert!(
        o.sources(Some("alice"))[0].pending,
        "a due run waits for start"
    );

    o.start();
    eventually(Duration::from_secs(20), "the first run", async || {
        documents(&o, "alice").await == 3
    })
    .await;

    // Stopped: changes pile up, nothing is written, the due run is pending.
    o.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await; // let a run in progress end
    std::fs::write(docs.join("late.md"), "# Late\n\nwritten while stopped").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(documents(&o, "alice").await, 3, "no run while stopped");
    assert!(o.sources(Some("alice"))[0].pending);
    assert_eq!(
        o.health().await.status,
        HealthStatus::Degraded,
        "a stopped pipeline is reported"
    );

    // Started again: the change is picked up.
    o.start();
    eventually(Duration::from_secs(20), "the resumed run", async || {
        documents(&o, "alice").await == 4
    })
    .await;
    let info = &o.sources(Some("alice"))[0];
    assert!(info.runs >= 2 && info.last_error.is_none(), "{info:?}");
    assert!(o.counters().runs_succeeded >= 2);
    o.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_survive_a_restart_and_removal_takes_their_documents() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let a = folder(w, "a", 2);
    let b = folder(w, "b", 5);
    {
        let o = orchestrator(w, &[("ENABLE_SOURCE_MONITORING", "false")]);
        o.initialize().await.unwrap();
        o.add_source("alice", spec("a", &a, Some(60)))
            .await
            .unwrap();
        o.add_source("bob", spec("b", &b, None)).await.unwrap();
        // Ids are unique per user, and invalid ones are refused before anything is stored.
        assert!(o.add_source("alice", spec("a", &b, None)).await.is_err());
        assert!(
            o.add_source("alice", spec("bad id", &b, None))
                .await
                .is_err()
        );
        assert!(o.add_source("../x", spec("c", &b, None)).await.is_err());
        let job = o.scan("alice", "local_filesystem", "a").unwrap();
        let job = o.wait_job(&job.id, Duration::from_secs(30)).await.unwrap();
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        assert_eq!(job.report.as_ref().unwrap().created, 2);
        assert_eq!((job.done, job.total), (2, 2));
        o.shutdown(Duration::from_secs(5)).await;
    }
    // A new process finds both sources, with their settings.
    let o = orchestrator(w, &[("ENABLE_SOURCE_MONITORING", "false")]);
    assert_eq!(o.initialize().await.unwrap(), 2);
    let listed = o.sources(None);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].poll_interval_seconds, 60);
    assert_eq!(o.users().into_iter().collect::<Vec<_>>(), ["alice", "bob"]);
    // Monitoring is off: nothing runs on its own, even when started.
    o.start();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(documents(&o, "bob").await, 0);
    // Wrong type or unknown id: not found.
    assert!(o.scan("alice", "notion", "a").is_err());
    assert!(
        o.scan("alice", "local_filesystem", "b").is_err(),
        "bob's source is not alice's"
    );
    assert!(o.job("job-999").is_err());

    assert_eq!(documents(&o, "alice").await, 2);
    let removed = o
        .remove_source("alice", "local_filesystem", "a")
        .await
        .unwrap();
    assert_eq!(removed, 2);
    assert_eq!(documents(&o, "alice").await, 0);
    assert!(o.sources(Some("alice")).is_empty());
    let o2 = orchestrator(w, &[("ENABLE_SOURCE_MONITORING", "false")]);
    assert_eq!(
        o2.initialize().await.unwrap(),
        1,
        "the removal was persisted"
    );
    o.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_a_missing_folder_and_shutdown_waits_for_runs() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let docs = folder(w, "docs", 30);
    let o = orchestrator(w, &[("ENABLE_SOURCE_MONITORING", "false")]);
    o.initialize().await.unwrap();
    o.start();
    o.add_source("carol", spec("docs", &docs, None))
        .await
        .unwrap();
    let h = o.health().await;
    assert_eq!(h.status, HealthStatus::Healthy, "{h:?}");
    assert_eq!(h.components["database"].status, HealthStatus::Healthy);

    // A scan runs; shutdown waits for it, and what it wrote is complete.
    let job = o.scan("carol", "local_filesystem", "docs").unwrap();
    let waiter = tokio::spawn({
        let o = o.clone();
        async move { o.wait_until_stopped().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "still running");
    o.shutdown(Duration::from_secs(60)).await;
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("wait_until_stopped returns after shutdown")
        .unwrap();
    let job = o.job(&job.id).unwrap();
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert_eq!(documents(&o, "carol").await, 30);
    assert!(
        o.scan("carol", "local_filesystem", "docs").is_err(),
        "no new work after shutdown"
    );

    // The folder disappears: the source is degraded, the database still healthy.
    let o = orchestrator(w, &[("ENABLE_SOURCE_MONITORING", "false")]);
    o.initialize().await.unwrap();
    o.start();
    std::fs::rename(&docs, w.join("moved-away")).unwrap();
    let h = o.health().await;
    assert_eq!(h.status, HealthStatus::Degraded);
    let source = &h.components["source:carol/docs"];
    assert_eq!(source.status, HealthStatus::Degraded);
    assert!(
        source.message.contains("nothing under it is deleted"),
        "{}",
        source.message
    );
    // And a scan of it deletes nothing.
    let job = o.scan("carol", "local_filesystem", "docs").unwrap();
    let job = o.wait_job(&job.id, Duration::from_secs(30)).await.unwrap();
    assert!(job.state.is_finished());
    assert_eq!(documents(&o, "carol").await, 30);
    o.shutdown(Duration::from_secs(5)).await;
}
