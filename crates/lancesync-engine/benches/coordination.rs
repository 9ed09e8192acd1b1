//! What the coordinator of several instances costs (docs/benchmarks.md, "Coordination"): a
//! no-change pass over `--users` users × `--sources` local sources (`--files` small Markdown
//! files each, 1 by default: the cheapest run, where coordination weighs most), in real LanceDB tables with the built-in embedder, against a real PostgreSQL server
//! started here (Debian's package), run three ways, alternately, `--rounds` times:
//!
//! - `alone`: one engine without a coordinator (the embedded default);
//! - `coordinated`: one engine whose writes hold each user in PostgreSQL, each run claimed and
//!   finished through the cluster's schedule as `sync-server` does;
//! - `three`: three such engines (three instances, on this one machine) sharing the runs.
//!
//! Every pass runs `--concurrency` runs at a time in all (MAX_CONCURRENT_PROCESSING's
//! default), so the three ways do the same work with the same parallelism; PostgreSQL
//! statements per run are counted by the coordinators (heartbeats included).
//!
//! Run: cargo bench --locked --profile dev --workspace --bench coordination --
//! [--users 1000] [--sources 5] [--files 1] [--rounds 2] [--concurrency 4]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lancesync_coordinator::{Coordination, CoordinatorOptions, PostgresCoordinator, RunRecord};
use lancesync_engine::{Engine, EngineConfig, NoProgress, RunSummary, SyncOptions};
use lancesync_ingest::HashingEmbedder;
use lancesync_sources::{DocumentSource, LocalFsConfig, LocalFsSource};
use lancesync_testkit::Postgres;

struct Args {
    users: usize,
    sources: usize,
    files: usize,
    rounds: usize,
    concurrency: usize,
}

fn args() -> Args {
    let mut args = Args {
        users: 1000,
        sources: 5,
        files: 1,
        rounds: 2,
        concurrency: 4,
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
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// One run to do: user, source.
type Work = (String, Arc<LocalFsSource>);

fn work(root: &Path, args: &Args) -> Vec<Work> {
    let mut work = Vec::new();
    for u in 0..args.users {
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
            work.push((format!("u{u:04}"), Arc::new(source)));
        }
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
}

impl Instance {
    /// One run as the server makes it: claimed through the cluster's schedule, synced,
    /// finished (due again at once, so every pass finds every source due).
    async fn run(&self, (user, source): &Work, files: usize) {
        let claim = match &self.coordinator {
            // Another instance may still hold the user for a moment after its last run (the
            // schedule would try again at its next tick): ask again.
            Some(c) => loop {
                if let Some(claim) = c.claim_run(user, source.id()).await.unwrap() {
                    break Some(claim);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            },
            None => None,
        };
        let report = self
            .engine
            .sync(user, source.as_ref(), SyncOptions::default(), &NoProgress)
            .await
            .unwrap();
        assert_eq!(report.unchanged, files, "a no-change pass");
        // As sync-server does: the run's slot is free once the run ends; its outcome (the
        // report, its line in the history) and the source's next time are recorded after, by
        // a task that holds the claim until then.
        if let (Some(c), Some(claim)) = (&self.coordinator, claim) {
            let c = Arc::clone(c);
            let record = RunRecord {
                user_id: user.clone(),
                source_id: source.id().to_string(),
                finished_at: report.finished_at.clone(),
                report: serde_json::to_string(&report).ok(),
                summary: serde_json::to_string(&RunSummary::from(&report)).ok(),
                error: None,
            };
            tokio::spawn(async move {
                c.finish_run(claim, Duration::ZERO, Some(&record))
                    .await
                    .unwrap()
            });
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

/// A no-change pass over `work` by `instances`, `concurrency` at a time in all; each user's
/// runs go to one instance (users dealt round-robin), as the cluster's schedule leaves a
/// user's due runs to the instance that holds the user; (seconds, PostgreSQL statements per
/// run).
async fn pass(
    instances: &[Instance],
    work: &[Work],
    sources: usize,
    files: usize,
    concurrency: usize,
) -> (f64, f64) {
    // Users held by the previous pass's instances are given back first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = statements(instances);
    let started = Instant::now();
    futures::stream::iter(work.iter().enumerate())
        .for_each_concurrent(concurrency, |(i, w)| {
            instances[(i / sources) % instances.len()].run(w, files)
        })
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let spent = statements(instances) - before;
    (seconds, spent as f64 / work.len() as f64)
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

        let alone = [Instance {
            engine: engine(&db),
            coordinator: None,
        }];
        let started = Instant::now();
        futures::stream::iter(work.iter())
            .for_each_concurrent(args.concurrency, |(user, source)| {
                let engine = &alone[0].engine;
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
        let coordinated = [Instance {
            engine: engine(&db).with_coordinator(one_coordinator.clone()),
            coordinator: Some(one_coordinator),
        }];
        let mut three = Vec::new();
        for name in ["i1", "i2", "i3"] {
            let c = coordinator(&pg.url(), name).await;
            three.push(Instance {
                engine: engine(&db).with_coordinator(c.clone()),
                coordinator: Some(c),
            });
        }

        let ways: [(&str, &[Instance]); 3] = [
            ("alone", &alone),
            ("coordinated", &coordinated),
            ("three", &three),
        ];
        let mut results: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
        for round in 0..args.rounds {
            for (name, instances) in ways {
                let (seconds, per_run) = pass(instances, &work, args.sources, args.files, args.concurrency).await;
                eprintln!(
                    "round {round} {name}: {seconds:.2} s, {:.0} runs/s, {per_run:.1} statements/run",
                    work.len() as f64 / seconds
                );
                results.entry(name).or_default().push((seconds, per_run));
            }
        }
        let runs = work.len() as f64;
        let best = |name: &str| {
            results[name]
                .iter()
                .map(|r| r.0)
                .fold(f64::INFINITY, f64::min)
        };
        println!(
            "| way | runs | best pass (s) | runs/s | vs alone | PostgreSQL statements per run |"
        );
        println!("| --- | --- | --- | --- | --- | --- |");
        for (name, _) in ways {
            let per_run = results[name].iter().map(|r| r.1).sum::<f64>() / args.rounds as f64;
            println!(
                "| {name} | {runs} | {:.2} | {:.0} | {:.2}× | {per_run:.1} |",
                best(name),
                runs / best(name),
                best(name) / best("alone")
            );
        }
    });
}
