//! Two orchestrators as two instances of a cluster, each with its own state folder, sharing
//! their sources through a real PostgreSQL server: a source added, changed or removed through
//! one is scheduled, changed or unscheduled on the other, and an instance that ran alone
//! before joining brings its sources along.
//! Run: cargo test --workspace --test shared_registry

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lancesync_coordinator::{CoordinatorOptions, PostgresCoordinator};
use lancesync_orchestrator::{JobState, Orchestrator, SourceChange};
use lancesync_sources::{LocalFsConfig, SourceRegistry, SourceSpec};
use lancesync_testkit::Postgres;

mod common;

use common::folder;

fn settings(work: &Path, state: &str) -> lancesync_config::Settings {
    common::config(work, state, &[("EMBEDDING_PROVIDER", "builtin")])
        .settings()
        .clone()
}

/// An instance: its own state folder, the shared database folder, the coordinator at `url`.
async fn instance(work: &Path, name: &str, url: &str) -> Orchestrator {
    let settings = settings(work, &format!("state-{name}"));
    let coordinator = PostgresCoordinator::connect(CoordinatorOptions {
        takeover: Duration::from_secs(4),
        instance_id: Some(name.into()),
        ..CoordinatorOptions::new(url)
    })
    .await
    .expect("join the coordinator");
    let engine = common::engine(&settings).with_coordinator(Arc::new(coordinator));
    let orchestrator = Orchestrator::new(settings, BTreeMap::new(), Arc::new(engine));
    orchestrator.initialize().await.expect("initialize");
    orchestrator
}

fn spec(id: &str, dir: &Path) -> SourceSpec {
    SourceSpec::local(id, &LocalFsConfig::new([dir.display().to_string()]))
}

fn source_ids(o: &Orchestrator, user: &str) -> Vec<String> {
    o.sources(Some(user))
        .into_iter()
        .map(|s| s.source_id)
        .collect()
}

/// Wait until `check` holds, polling; fails after `limit`.
async fn eventually(limit: Duration, what: &str, check: impl Fn() -> bool) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within {limit:?}: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_added_changed_and_removed_through_one_instance_follow_on_the_other() {
    let pg = Postgres::start();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (old, notes) = (folder(w, "old", 2), folder(w, "notes", 3));

    // a ran alone before: its source is in its own file only.
    SourceRegistry::at(w.join("state-a/users/alice/sources.toml"))
        .add(spec("old", &old), &BTreeMap::new())
        .unwrap();
    let a = instance(w, "a", &pg.url()).await;
    let b = instance(w, "b", &pg.url()).await;
    assert_eq!(source_ids(&a, "alice"), ["old"]);
    assert_eq!(
        source_ids(&b, "alice"),
        ["old"],
        "b starts with what a brought"
    );

    // Added through a: scheduled on b, and b can scan it.
    a.add_source("alice", spec("notes", &notes)).await.unwrap();
    eventually(Duration::from_secs(10), "b schedules notes", || {
        source_ids(&b, "alice") == ["notes", "old"]
    })
    .await;
    b.start();
    let job = b.scan("alice", "local_filesystem", "notes").unwrap();
    let job = b.wait_job(&job.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert_eq!(job.report.as_ref().unwrap().created, 3);

    // a answers for b's job and b's run as b does.
    assert!(a.job(&job.id).is_err(), "not a's own job");
    let started = Instant::now();
    loop {
        let seen = a.find_job(&job.id).await;
        // (Rates in the report are floats: compared by what they count.)
        if let Ok(seen) = &seen
            && (&seen.id, seen.state, seen.done, seen.total)
                == (&job.id, job.state, job.done, job.total)
            && seen.report.as_ref().map(|r| (r.created, r.chunks_written))
                == job.report.as_ref().map(|r| (r.created, r.chunks_written))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a finds b's job finished: {seen:?}, b has {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // (b's schedule may run notes again meanwhile, as it is due once scanned by hand too, and
    // old, never run: b claims a user's due sources together and runs them back to back.)
    eventually(Duration::from_secs(5), "a shows b's runs of notes", || {
        a.source("alice", "local_filesystem", "notes")
            .is_ok_and(|s| s.runs >= 1 && s.last_report.is_some())
    })
    .await;
    let history = a.run_history("alice").await.unwrap();
    let first_of_notes = history.iter().find(|r| r.source_id == "notes");
    assert!(
        first_of_notes.is_some_and(|r| r.created == 3)
            && history.iter().all(|r| r.source_id == "notes"
                || (r.source_id == "old" && r.created + r.unchanged == 2)),
        "{history:?}"
    );
    let last = a.last_runs("alice").await.unwrap();
    assert!(
        last.iter().any(|r| r.source_id == "notes")
            && last
                .iter()
                .all(|r| ["notes", "old"].contains(&r.source_id.as_str()))
            && last.len() <= 2,
        "{last:?}"
    );

    // Changed through b (once b's scheduled run of it, if one is in progress, has ended):
    // a follows, with the new interval.
    b.stop();
    let started = Instant::now();
    loop {
        let change = SourceChange {
            poll_interval: Some(120),
            ..SourceChange::default()
        };
        match b
            .update_source("alice", "local_filesystem", "notes", change)
            .await
        {
            Ok(_) => break,
            Err(lancesync_orchestrator::Error::Conflict(e))
                if started.elapsed() < Duration::from_secs(10) =>
            {
                eprintln!("waiting: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    eventually(Duration::from_secs(10), "a follows the change", || {
        a.source("alice", "local_filesystem", "notes")
            .is_ok_and(|s| s.poll_interval_seconds == 120)
    })
    .await;

    // Removed through a: b unschedules it, and b's file no longer has it.
    a.remove_source("alice", "local_filesystem", "notes")
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "b unschedules notes", || {
        source_ids(&b, "alice") == ["old"]
    })
    .await;
    let b_file = SourceRegistry::at(w.join("state-b/users/alice/sources.toml"));
    let ids: Vec<String> = b_file.list().unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, ["old"]);

    // A third instance that starts now has the same sources.
    let c = instance(w, "c", &pg.url()).await;
    assert_eq!(source_ids(&c, "alice"), ["old"]);
}

/// (start, end) of each finished run of a user, from the run history both instances write.
async fn runs(o: &Orchestrator, user: &str) -> Vec<(String, SystemTime, SystemTime)> {
    let mut runs: Vec<_> = o
        .run_history(user)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            let end = humantime::parse_rfc3339_weak(&r.finished_at).unwrap();
            (r.source_id, end - Duration::from_millis(r.duration_ms), end)
        })
        .collect();
    runs.sort_by_key(|r| r.1);
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_source_runs_once_per_interval_on_one_instance_at_a_time() {
    let pg = Postgres::start();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let a = instance(w, "a", &pg.url()).await;
    let b = instance(w, "b", &pg.url()).await;
    let users = ["ann", "ben", "cat"];
    for user in users {
        for source in ["s1", "s2"] {
            let mut spec = spec(source, &folder(w, &format!("{user}-{source}"), 2));
            spec.poll_interval = Some(2);
            a.add_source(user, spec).await.unwrap();
        }
    }
    eventually(Duration::from_secs(10), "b has every source", || {
        users.iter().all(|u| source_ids(&b, u).len() == 2)
    })
    .await;
    a.start();
    b.start();
    let started = SystemTime::now();
    tokio::time::sleep(Duration::from_secs(9)).await;

    for user in users {
        let runs = runs(&a, user).await;
        for source in ["s1", "s2"] {
            let n = runs.iter().filter(|r| r.0 == source).count();
            // Due at once, then every 2 s after each run ends: 3 to 5 runs in 9 s on the
            // cluster (two instances each on its own schedule would make twice that).
            assert!(
                (3..=5).contains(&n),
                "{user}/{source}: {n} runs in 9 s: {runs:?}"
            );
        }
        for pair in runs.windows(2) {
            assert!(pair[1].1 >= pair[0].2, "{user}: two runs overlap: {pair:?}");
        }
    }

    // a's session ends (as a killed instance's does): b runs every source from then on.

    a.stop();
    let killed = SystemTime::now();
    assert!(pg.end_sessions_of("a").await);
    // Taking a's users over waits half the takeover time (2 s) once.
    tokio::time::sleep(Duration::from_secs(9)).await;
    for user in users {
        let after: Vec<_> = runs(&b, user)
            .await
            .into_iter()
            .filter(|r| r.1 > killed)
            .collect();
        for source in ["s1", "s2"] {
            let n = after.iter().filter(|r| r.0 == source).count();
            assert!(n >= 2, "{user}/{source} runs on after a went: {after:?}");
        }
    }
    assert!(started.elapsed().unwrap() < Duration::from_secs(60));
}
