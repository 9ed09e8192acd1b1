//! What the coordinator of several instances costs (docs/benchmarks.md, "Coordination"): a
//! no-change pass over `--users` users × `--sources` local sources (`--files` small Markdown
//! files each, 1 by default: the cheapest run, where coordination weighs most), in real
//! LanceDB tables with the built-in embedder, against a real PostgreSQL server started here
//! (Debian's package), run these ways, alternately, `--rounds` times:
//!
//! - `alone`: one engine without a coordinator (the embedded default);
//! - `coordinated`: one engine whose writes hold each user in PostgreSQL, runs claimed and
//!   finished through the cluster's schedule as `sync-server` does (a user's due sources
//!   claimed in the round trip that takes the user and run one after another, their ends
//!   written together with other runs' ends);
//! - `three`: three such engines (three instances, on this one machine) sharing the runs.
//!
//! And two ways that tell what is not the coordinator's: `alone, by user` (one engine, a
//! user's runs one after another, as `coordinated` makes them) and `three alone` (three
//! engines without a coordinator, each with its own users, as `three` deals them: what three
//! instances on one machine cost without coordination).
//!
//! Every pass runs `--concurrency` runs at a time in all (MAX_CONCURRENT_PROCESSING's
//! default), so the ways do the same work with the same parallelism (alone, any runs,
//! as one instance's scheduler does; coordinated, the runs of that many users); PostgreSQL
//! statements per run are counted by the coordinators (heartbeats and preparations
//! included).
//!
//! Run: cargo bench --locked --profile dev --workspace --bench coordination --
//! [--users 1000] [--sources 5] [--files 1] [--rounds 2] [--concurrency 4]
//! [--schedule-rows N]...
//!
//! `--schedule-rows N` (repeatable) then fills the schedule up to N sources (rows as runs
//! leave them, with a report each) and times the reading of it that every instance makes
//! each tick (`Coordination::schedule`, the server's query and this process's handling):
//! once with every row new (as costly as the whole reading made every 30 s), then with 500
//! rows changed before each reading.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lancesync_coordinator::{Coordination, CoordinatorOptions, PostgresCoordinator, RunRecord};
use lancesync_engine::{Engine, EngineConfig, NoProgress, RunSummary, SyncOptions, SyncReport};
use lancesync_ingest::HashingEmbedder;
use lancesync_sources::{DocumentSource, LocalFsConfig, LocalFsSource};
use lancesync_testkit::Postgres;

struct Args {
    users: usize,
    sources: usize,
    files: usize,
    rounds: usize,
    concurrency: usize,
    /// Schedule sizes at which to time one reading of the cluster's schedule.
    schedule_rows: Vec<usize>,
}

fn args() -> Args {
    let mut args = Args {
        users: 1000,
        sources: 5,
        files: 1,
        rounds: 2,
        concurrency: 4,
        schedule_rows: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse().ok()).expect("a number");
        match flag.as_str() {
            "--users" => args.users = value(),
            "--sources" => args.sources = value(),
            "--files" => args.files = value(),
            "--rounds" => args.rounds = value(),
            "--concurrency" => args.concurrency = value(),
            "--schedule-rows" => args.schedule_rows.push(value()),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// One user's runs to do: the user, its sources.
type Work = (String, Vec<Arc<LocalFsSource>>);

fn work(root: &Path, args: &Args) -> Vec<Work> {
    let mut work = Vec::new();
    for u in 0..args.users {
        let mut sources = Vec::new();
        for s in 0..args.sources {
            let dir = root.join(format!("u{u:04}/s{s}"));
            std::fs::create_dir_all(&dir).unwrap();
            for f in 0..args.files {
                std::fs::write(
                    dir.join(format!("note-{f}.md")),
                    format!(
                        "# Note {f} of user {u}, source {s}\n\nSome text about topic {}.",
                        (u + f) % 17
                    ),
                )
                .unwrap();
            }
            let source = LocalFsSource::new(
                format!("s{s}"),
                LocalFsConfig::new([dir.to_str().unwrap()]),
                &BTreeMap::new(),
            )
            .unwrap();
            sources.push(Arc::new(source));
        }
        work.push((format!("u{u:04}"), sources));
    }
    work
}

fn engine(db: &Path) -> Engine {
    Engine::new(EngineConfig::new(db), Arc::new(HashingEmbedder::default())).unwrap()
}

async fn coordinator(url: &str, name: &str) -> Arc<PostgresCoordinator> {
    Arc::new(
        PostgresCoordinator::connect(CoordinatorOptions {
            instance_id: Some(name.into()),
            ..CoordinatorOptions::new(url)
        })
        .await
        .unwrap(),
    )
}

/// One instance: an engine, and its coordinator when there is one.
struct Instance {
    engine: Engine,
    coordinator: Option<Arc<PostgresCoordinator>>,
    /// The writes of runs' ends under way.
    ends: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Instance {
    fn new(engine: Engine, coordinator: Option<Arc<PostgresCoordinator>>) -> Self {
        Self {
            engine,
            coordinator,
            ends: std::sync::Mutex::default(),
        }
    }

    /// A user's runs as the server makes them: the user's due sources claimed through the
    /// cluster's schedule in one statement, synced one after another, each finished (due
    /// again at once, so that every pass finds every source due) while the next runs.
    /// Without a coordinator, the same runs one after another, unclaimed.
    async fn run_user(&self, (user, sources): &Work, files: usize) {
        let Some(coordinator) = &self.coordinator else {
            for source in sources {
                sync_unchanged(&self.engine, user, source.as_ref(), files).await;
            }
            return;
        };
        let ids: Vec<String> = sources.iter().map(|s| s.id().to_string()).collect();
        // Another instance may still hold the user for a moment after its last run (the
        // schedule would try again at its next tick): ask again.
        let claims = loop {
            let claims = coordinator.claim_runs(user, &ids).await.unwrap();
            if !claims.is_empty() {
                assert_eq!(claims.len(), ids.len(), "every source is due");
                break claims;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut ends = Vec::new();
        for (claim, source) in claims.into_iter().zip(sources) {
            assert_eq!(claim.source_id, source.id());
            let report = sync_unchanged(&self.engine, user, source.as_ref(), files).await;
            let coordinator = Arc::clone(coordinator);
            let record = RunRecord {
                user_id: user.clone(),
                source_id: source.id().to_string(),
                finished_at: report.finished_at.clone(),
                report: serde_json::to_string(&report).ok(),
                summary: serde_json::to_string(&RunSummary::from(&report)).ok(),
                error: None,
            };
            ends.push(tokio::spawn(async move {
                coordinator
                    .finish_run(claim, Duration::ZERO, Some(&record))
                    .await
                    .unwrap()
            }));
        }
        // As sync-server does: the slot is free once the runs end; their ends are written
        // meanwhile (the pass waits for them before it ends).
        self.ends.lock().unwrap().extend(ends);
    }

    /// Wait until the ends of the runs made so far are written.
    async fn ends_written(&self) {
        let ends = std::mem::take(&mut *self.ends.lock().unwrap());
        for end in ends {
            end.await.unwrap();
        }
    }
}

fn statements(instances: &[Instance]) -> u64 {
    instances
        .iter()
        .filter_map(|i| i.coordinator.as_ref())
        .map(|c| c.statements_sent())
        .sum()
}

/// A no-change pass over `work` by `instances`, `concurrency` users at a time in all; each
/// user's runs go to one instance (users dealt round-robin), as the cluster's schedule leaves
/// a user's due runs to the instance that holds the user; (seconds, PostgreSQL statements per
/// run).
async fn coordinated_pass(
    instances: &[Instance],
    work: &[Work],
    files: usize,
    concurrency: usize,
) -> (f64, f64) {
    // Users held by the previous pass's instances are given back first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = statements(instances);
    let started = Instant::now();
    futures::stream::iter(work.iter().enumerate())
        .for_each_concurrent(concurrency, |(i, w)| {
            instances[i % instances.len()].run_user(w, files)
        })
        .await;
    for instance in instances {
        instance.ends_written().await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let spent = statements(instances) - before;
    let runs: usize = work.iter().map(|(_, sources)| sources.len()).sum();
    (seconds, spent as f64 / runs as f64)
}

/// A no-change pass over `work` by one engine alone, `concurrency` runs at a time, as one
/// instance's scheduler runs them; (seconds, 0 statements).
async fn alone_pass(
    engine: &Engine,
    work: &[Work],
    files: usize,
    concurrency: usize,
) -> (f64, f64) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    futures::stream::iter(runs(work))
        .for_each_concurrent(concurrency, |(user, source)| async move {
            sync_unchanged(engine, user, source.as_ref(), files).await;
        })
        .await;
    (started.elapsed().as_secs_f64(), 0.0)
}

/// One no-change run of `source`: every one of its `files` found unchanged.
async fn sync_unchanged(
    engine: &Engine,
    user: &str,
    source: &dyn DocumentSource,
    files: usize,
) -> SyncReport {
    let report = engine
        .sync(user, source, SyncOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(report.unchanged, files, "a no-change pass");
    report
}

/// Every (user, source) run of `work`.
fn runs(work: &[Work]) -> impl Iterator<Item = (&String, &Arc<LocalFsSource>)> {
    work.iter()
        .flat_map(|(user, sources)| sources.iter().map(move |source| (user, source)))
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pg = Postgres::start();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let work = work(&dir.path().join("docs"), &args);

        let alone = engine(&db);
        let started = Instant::now();
        futures::stream::iter(runs(&work))
            .for_each_concurrent(args.concurrency, |(user, source)| {
                let engine = &alone;
                async move {
                    engine
                        .sync(user, source.as_ref(), SyncOptions::default(), &NoProgress)
                        .await
                        .unwrap();
                }
            })
            .await;
        eprintln!(
            "first sync of {} users × {} sources × {} files: {:.1} s",
            args.users,
            args.sources,
            args.files,
            started.elapsed().as_secs_f64()
        );
        let one_coordinator = coordinator(&pg.url(), "one").await;
        let coordinated = [Instance::new(
            engine(&db).with_coordinator(one_coordinator.clone()),
            Some(one_coordinator),
        )];
        let mut three = Vec::new();
        for name in ["i1", "i2", "i3"] {
            let c = coordinator(&pg.url(), name).await;
            three.push(Instance::new(
                engine(&db).with_coordinator(c.clone()),
                Some(c),
            ));
        }

        let by_user = [Instance::new(engine(&db), None)];
        let three_alone = [
            Instance::new(engine(&db), None),
            Instance::new(engine(&db), None),
            Instance::new(engine(&db), None),
        ];
        let ways: [(&str, &[Instance]); 5] = [
            ("alone", &[]),
            ("alone, by user", &by_user),
            ("coordinated", &coordinated),
            ("three alone", &three_alone),
            ("three", &three),
        ];
        let mut runs = runs(&work).count() as f64;
        let mut results: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
        for round in 0..args.rounds {
            // Each round starts with another way: the machine's drift over a run (it slows
            // as the bench goes on) falls on every way alike.
            for k in 0..ways.len() {
                let (name, instances) = ways[(round + k) % ways.len()];
                let (seconds, per_run) = if instances.is_empty() {
                    alone_pass(&alone, &work, args.files, args.concurrency).await
                } else {
                    coordinated_pass(instances, &work, args.files, args.concurrency).await
                };
                eprintln!(
                    "round {round} {name}: {seconds:.2} s, {:.0} runs/s, {per_run:.1} statements/run",
                    runs / seconds
                );
                results.entry(name).or_default().push((seconds, per_run));
            }
        }
        let best = |name: &str| {
            results[name]
                .iter()
                .map(|r| r.0)
                .fold(f64::INFINITY, f64::min)
        };
        // Each round's pass against the same round's pass alone, the median over rounds.
        let median_ratio = |name: &str| {
            let mut ratios: Vec<f64> = results[name]
                .iter()
                .zip(&results["alone"])
                .map(|(way, alone)| way.0 / alone.0)
                .collect();
            ratios.sort_by(f64::total_cmp);
            let mid = ratios.len() / 2;
            if ratios.len().is_multiple_of(2) {
                (ratios[mid - 1] + ratios[mid]) / 2.0
            } else {
                ratios[mid]
            }
        };
        println!(
            "| way | runs | best pass (s) | runs/s | vs alone, best passes | vs alone, median of rounds | PostgreSQL statements per run |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- |");
        for (name, _) in ways {
            let per_run = results[name].iter().map(|r| r.1).sum::<f64>() / args.rounds as f64;
            println!(
                "| {name} | {runs} | {:.2} | {:.0} | {:.2}× | {:.2}× | {per_run:.1} |",
                best(name),
                runs / best(name),
                best(name) / best("alone"),
                median_ratio(name)
            );
        }
        for rows in &args.schedule_rows {
            let have = runs as usize;
            pg.execute(&format!(
                "INSERT INTO lancesync_schedule (user_id, source_id, next_run_at, last_run_by,
                     changed, runs, last_run_at, last_report)
                 SELECT 'many' || (i / 5), 's' || (i % 5), now() + (i % 300) * interval '1 second',
                     'filler#1', nextval('lancesync_schedule_change'), 1, '2026-12-08T00:00:00Z',
                     repeat('{{\"unchanged\":1}}', 60)
                 FROM generate_series({have} + 1, {rows}) AS i
                 ON CONFLICT DO NOTHING"
            ))
            .await;
            pg.execute("VACUUM ANALYZE lancesync_schedule").await;
            let coordinator = coordinated[0].coordinator.as_ref().expect("coordinated");
            let read = || async {
                let started = Instant::now();
                let schedule = coordinator.schedule(true).await.unwrap();
                assert!(schedule.len() >= *rows);
                started.elapsed().as_secs_f64() * 1000.0
            };
            // The first reading after filling reads every row (as the whole reading every
            // 30 s does); then 500 rows change before each reading, as ending runs change them.
            let every_row = read().await;
            let mut times = Vec::new();
            for _ in 0..5 {
                pg.execute(
                    "UPDATE lancesync_schedule SET next_run_at = now() + interval '5 minutes',
                         changed = nextval('lancesync_schedule_change')
                     WHERE ctid IN (SELECT ctid FROM lancesync_schedule ORDER BY random() LIMIT 500)",
                )
                .await;
                times.push(read().await);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "reading the schedule of {rows} sources: every row {every_row:.0} ms; 500 rows changed: median {:.0} ms (min {:.0}, max {:.0})",
                times[2], times[0], times[4]
            );
            runs = runs.max(*rows as f64);
        }
    });
}
