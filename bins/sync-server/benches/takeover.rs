//! The takeover benchmark of docs/benchmarks.md: how long a killed instance's users wait
//! before another instance writes them again, over `--kills` (default 10) `kill -9`s.
//!
//! Workload: two real `sync-server` instances on one S3 primary (moto) and one PostgreSQL
//! coordinator, `--users` (default 6) users with one folder source each (poll interval 2 s);
//! before each kill every source gets 20 new notes, and the instance holding the most users
//! (in the middle of their runs) is killed with SIGKILL, then started again. Per kill:
//! - **lock**: until another instance holds every user the dead one held (Postgres frees a
//!   dead session's locks at once; the schedule is read every second);
//! - **writes**: until it may write them: the lock plus the wait of half the takeover time
//!   that keeps a holder cut off (rather than dead) from racing the new one;
//! - **run**: until a run of one of those users has finished on another instance.
//!
//! Run: cargo bench --locked --profile dev --workspace --bench takeover -- [--kills 10]
//!      [--takeover 10]
//!      [--users 6]

use std::path::Path;
use std::time::{Duration, Instant};

use lancesync_testkit::Postgres;
use lancesync_testkit::cluster::{ClusterSettings, Instance, busiest, users_held_by};
use lancesync_testkit::s3::S3Server;
use reqwest::Method;
use serde_json::json;

struct Args {
    kills: usize,
    takeover: u64,
    users: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        kills: 10,
        takeover: 10,
        users: 6,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--kills" => args.kills = value().parse().expect("--kills N"),
            "--takeover" => args.takeover = value().parse().expect("--takeover SECONDS"),
            "--users" => args.users = value().parse().expect("--users N"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

fn add_notes(dir: &Path, from: usize, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in from..from + n {
        std::fs::write(
            dir.join(format!("note-{i:05}.md")),
            format!("# Note {i}\n\nThe tide turns at {i} past the hour; the ferry waits."),
        )
        .unwrap();
    }
}

async fn wait_for<T>(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn summary(name: &str, mut seconds: Vec<f64>) {
    seconds.sort_by(f64::total_cmp);
    let median = if seconds.len() % 2 == 1 {
        seconds[seconds.len() / 2]
    } else {
        (seconds[seconds.len() / 2 - 1] + seconds[seconds.len() / 2]) / 2.0
    };
    println!(
        "{name:<8} min {:>6.2} s   median {:>6.2} s   max {:>6.2} s",
        seconds[0],
        median,
        seconds[seconds.len() - 1]
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = parse_args();
    let pg = Postgres::start();
    let s3 = S3Server::start();
    s3.create_bucket("lancesync").await;
    let (db, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let settings = ClusterSettings {
        s3_endpoint: s3.endpoint(),
        bucket: "lancesync".into(),
        takeover_secs: args.takeover,
        poll_secs: 2,
    };
    let binary = env!("CARGO_BIN_EXE_sync-server");
    let mut started = 0;
    let mut next_name = || {
        started += 1;
        format!("i{started}")
    };
    let mut pair = [
        Instance::start(binary, w, &next_name(), &pg.url(), &settings),
        Instance::start(binary, w, &next_name(), &pg.url(), &settings),
    ];
    let users: Vec<String> = (0..args.users).map(|i| format!("user{i}")).collect();
    let mut notes = 20;
    for user in &users {
        add_notes(&w.join("docs").join(user), 0, notes);
        let (status, v) = pair[0]
            .call(
                Method::POST,
                "/api/v1/sources",
                Some(json!({ "user_id": user, "source_id": "notes",
                    "config": { "watch_paths": [w.join("docs").join(user)] } })),
            )
            .await;
        assert_eq!(status, 201, "{v}");
    }
    println!(
        "takeover benchmark: {} kills, COORDINATOR_TAKEOVER_SECS={}, 2 instances, {} users",
        args.kills, args.takeover, args.users
    );
    let (mut lock, mut writes, mut run) = (Vec::new(), Vec::new(), Vec::new());
    for kill in 1..=args.kills {
        for user in &users {
            add_notes(&w.join("docs").join(user), notes, 20);
        }
        notes += 20;
        // The instance holding the most users, in the middle of their runs.
        let victim = wait_for(
            Duration::from_secs(120),
            "an instance holds a user",
            async || busiest(&[&pair[0], &pair[1]]).await,
        )
        .await;
        let victim_id = pair[victim].instance_id();
        let last_run: i64 = db
            .query_one("SELECT coalesce(max(id), 0) FROM lancesync_runs", &[])
            .await
            .unwrap()
            .get(0);
        let killed = Instant::now();
        pair[victim].kill();
        let orphaned = users_held_by(&db, &victim_id).await;
        let taken = wait_for(
            Duration::from_secs(args.takeover * 3),
            "takeover",
            async || {
                users_held_by(&db, &victim_id)
                    .await
                    .is_empty()
                    .then(|| killed.elapsed())
            },
        )
        .await;
        let orphaned: Vec<String> = orphaned.into_iter().collect();
        let ran = wait_for(
            Duration::from_secs(args.takeover * 6),
            "a run elsewhere",
            async || {
                let row = db
                    .query_opt(
                        "SELECT 1 FROM lancesync_runs WHERE id > $1 AND user_id = ANY($2) LIMIT 1",
                        &[&last_run, &orphaned],
                    )
                    .await
                    .unwrap();
                row.map(|_| killed.elapsed())
            },
        )
        .await;
        let resumed = taken + Duration::from_secs(args.takeover) / 2;
        println!(
            "kill {kill:>2}: {} user(s) held; lock {:.2} s, writes {:.2} s, first run done {:.2} s",
            orphaned.len(),
            taken.as_secs_f64(),
            resumed.as_secs_f64(),
            ran.as_secs_f64()
        );
        lock.push(taken.as_secs_f64());
        writes.push(resumed.as_secs_f64());
        run.push(ran.as_secs_f64());
        pair[victim] = Instance::start(binary, w, &next_name(), &pg.url(), &settings);
    }
    summary("lock", lock);
    summary("writes", writes);
    summary("run", run);
}
