//! Three real `sync-server` processes on one S3 primary (moto) coordinated by one PostgreSQL
//! server, all started here: many users and sources on short poll intervals, a source added
//! through one instance and scanned through another, `kill -9` of the instance holding the
//! most work in the middle of runs, and an instance cut off from PostgreSQL. Afterwards every
//! user's index holds exactly its sources' documents, no chunk twice and no orphan, and the
//! run history shows no two runs of a user at once and each schedule once per interval.
//! Run: cargo test --workspace --test cluster

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use lancesync_testkit::Postgres;
use lancesync_testkit::cluster::{ClusterSettings, Instance, busiest, users_held_by};
use lancesync_testkit::s3::{Relay, S3Server};
use reqwest::Method;
use serde_json::{Value, json};

/// Six users for three instances: each instance's fair share is two, so the instance behind
/// the relay always gets users of its own (with four, the other two could hold them all).
const USERS: [&str; 6] = ["ann", "ben", "cat", "dan", "eve", "fay"];
const SOURCES: [&str; 2] = ["notes", "mail"];
/// Short timings: fence after 1 s, the next holder waits 2 s.
const TAKEOVER_SECS: u64 = 4;
const POLL_SECS: u64 = 2;

fn folder(work: &Path, user: &str, source: &str) -> PathBuf {
    work.join("docs").join(user).join(source)
}

/// Add `n` notes to every source, numbered from `from`.
fn add_files(work: &Path, from: usize, n: usize) {
    for user in USERS {
        for source in SOURCES {
            let dir = folder(work, user, source);
            std::fs::create_dir_all(&dir).unwrap();
            for i in from..from + n {
                std::fs::write(
                    dir.join(format!("note-{i:04}.md")),
                    format!(
                        "# Note {i} of {user}'s {source}\n\nThe {i}th note says the harbour \
                         lights of {user} turn on at {i} minutes past seven, and that {source} \
                         is read every morning before the tide."
                    ),
                )
                .unwrap();
            }
        }
    }
}

async fn eventually<T>(
    limit: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn admin(pg: &Postgres) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .expect("connect to the coordinator's database");
    tokio::spawn(connection);
    client
}

/// Every source's runs so far, as the instances report them (`GET /api/v1/sources`).
async fn sources(instance: &Instance) -> Vec<Value> {
    let (status, v) = instance.call(Method::GET, "/api/v1/sources", None).await;
    assert_eq!(status, 200, "{v}");
    v["sources"].as_array().cloned().unwrap_or_default()
}

async fn documents(instance: &Instance, user: &str) -> Option<u64> {
    let (status, v) = instance
        .call(
            Method::GET,
            &format!("/api/v1/sync/status?user_id={user}"),
            None,
        )
        .await;
    (status == 200)
        .then(|| v["status"]["documents"].as_u64())
        .flatten()
}

/// Wait until every user's index holds `files` documents per source, as `instance` reads it.
async fn all_indexed(instance: &Instance, files: u64, limit: Duration, what: &str) {
    eventually(limit, what, async || {
        for user in USERS {
            if documents(instance, user).await != Some(files * SOURCES.len() as u64) {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// The problems a check of each user finds that a run cut short or run twice would leave.
async fn damage(instance: &Instance) -> Vec<String> {
    let mut found = Vec::new();
    for user in USERS {
        let (status, v) = instance
            .call(Method::POST, &format!("/api/v1/check?user_id={user}"), None)
            .await;
        assert_eq!(status, 200, "{v}");
        for problem in v["problems"].as_array().unwrap() {
            let kind = problem["kind"].as_str().unwrap_or_default();
            if [
                "not_indexed",
                "gone_from_source",
                "stale",
                "chunk_count_mismatch",
                "orphan_chunks",
                "duplicate_chunks",
            ]
            .contains(&kind)
            {
                found.push(format!("{user}: {problem}"));
            }
        }
    }
    found
}

/// Users whose writer row names `instance`.
async fn held_by(db: &tokio_postgres::Client, instance: &str) -> Vec<String> {
    users_held_by(db, instance).await.into_iter().collect()
}

/// The instance with the most users held now, once one holds any.
async fn busiest_of(instances: &[&Instance]) -> usize {
    eventually(
        Duration::from_secs(60),
        "an instance holds a user",
        async || busiest(instances).await,
    )
    .await
}

struct Run {
    user: String,
    source: String,
    start: SystemTime,
    end: SystemTime,
}

/// Every finished run recorded in the cluster's history.
async fn history(pg: &tokio_postgres::Client) -> Vec<Run> {
    pg.query(
        "SELECT user_id, source_id, summary FROM lancesync_runs ORDER BY id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|row| {
        let summary: Value = serde_json::from_str(row.get::<_, &str>(2)).unwrap();
        let end = humantime::parse_rfc3339_weak(summary["finished_at"].as_str().unwrap()).unwrap();
        let took = Duration::from_millis(summary["duration_ms"].as_u64().unwrap());
        Run {
            user: row.get(0),
            source: row.get(1),
            start: end - took,
            end,
        }
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_share_the_work_survive_a_kill_and_a_cut_and_lose_nothing() {
    let pg = Postgres::start();
    let s3 = S3Server::start();
    s3.create_bucket("lancesync").await;
    // c reaches PostgreSQL through a relay the test can cut.
    let relay = Relay::start(SocketAddr::from(([127, 0, 0, 1], pg.port()))).await;
    let relayed = format!(
        "postgres://lancesync@{}/postgres",
        relay.endpoint().trim_start_matches("http://")
    );
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let settings = ClusterSettings {
        s3_endpoint: s3.endpoint(),
        bucket: "lancesync".into(),
        takeover_secs: TAKEOVER_SECS,
        poll_secs: POLL_SECS,
    };
    let binary = env!("CARGO_BIN_EXE_sync-server");
    // a and b on PostgreSQL directly; c through the relay.
    let mut pair = [
        Instance::start(binary, w, "a", &pg.url(), &settings),
        Instance::start(binary, w, "b", &pg.url(), &settings),
    ];
    let c = Instance::start(binary, w, "c", &relayed, &settings);
    let db = admin(&pg).await;
    let mut files = 3;
    add_files(w, 0, files);

    // Every source added through a; every instance lists them at once.
    for user in USERS {
        for source in SOURCES {
            let (status, v) = pair[0]
                .call(
                    Method::POST,
                    "/api/v1/sources",
                    Some(json!({ "user_id": user, "source_id": source,
                        "config": { "watch_paths": [folder(w, user, source)] } })),
                )
                .await;
            assert_eq!(status, 201, "{v}");
        }
    }
    let all = USERS.len() * SOURCES.len();
    for instance in [&pair[1], &c] {
        eventually(
            Duration::from_secs(10),
            "every instance lists every source",
            async || (sources(instance).await.len() == all).then_some(()),
        )
        .await;
    }

    // The schedule syncs them all, spread over the instances; b and c show every run,
    // whichever instance ran it.
    all_indexed(
        &pair[1],
        files as u64,
        Duration::from_secs(120),
        "the first syncs",
    )
    .await;
    for instance in [&pair[1], &c] {
        eventually(
            Duration::from_secs(10),
            "every instance shows every run",
            async || {
                sources(instance)
                    .await
                    .iter()
                    .all(|s| s["runs"].as_u64() >= Some(1) && s["last_report"].is_object())
                    .then_some(())
            },
        )
        .await;
    }

    // A source added through a, scanned through b, its job answered by c.
    let (status, job) = pair[1]
        .call(
            Method::POST,
            "/api/v1/sources/local_filesystem/notes/scan?user_id=ann&wait=0",
            None,
        )
        .await;
    assert!(status == 200 || status == 202, "{status} {job}");
    let id = job["id"].as_str().unwrap().to_string();
    let done = eventually(
        Duration::from_secs(60),
        "c answers for b's job",
        async || {
            let (status, job) = c
                .call(Method::GET, &format!("/api/v1/jobs/{id}"), None)
                .await;
            (status == 200 && job["state"] == "succeeded").then_some(job)
        },
    )
    .await;
    assert_eq!(done["report"]["unchanged"], files, "{done}");

    // kill -9 of the instance (a or b) holding the most users, in the middle of runs of new
    // files.
    add_files(w, files, 40);
    files += 40;
    let victim = busiest_of(&[&pair[0], &pair[1]]).await;
    let victim_id = pair[victim].instance_id();
    let killed_at = Instant::now();
    pair[victim].kill();
    let orphaned = held_by(&db, &victim_id).await;
    assert!(!orphaned.is_empty(), "{victim_id} held users when killed");
    let taken = eventually(
        Duration::from_secs(TAKEOVER_SECS * 3),
        "the killed instance's users are taken over",
        async || {
            held_by(&db, &victim_id)
                .await
                .is_empty()
                .then(|| killed_at.elapsed())
        },
    )
    .await;
    // The new holder writes once it has waited half the takeover time.
    let writes_again = taken + Duration::from_secs(TAKEOVER_SECS) / 2;
    assert!(
        writes_again <= Duration::from_secs(TAKEOVER_SECS) + Duration::from_secs(2),
        "a killed instance's users are written again within the takeover time (plus a tick): {writes_again:?}"
    );
    let survivor = &pair[1 - victim];
    all_indexed(
        survivor,
        files as u64,
        Duration::from_secs(180),
        "the runs the kill cut short",
    )
    .await;
    let found = damage(survivor).await;
    assert!(found.is_empty(), "after the kill: {found:#?}");
    // Started again, as an orchestrator would.
    pair[victim] = Instance::start(binary, w, "a2", &pg.url(), &settings);

    // c cut off from PostgreSQL while it writes: it stops before anyone else starts.
    add_files(w, files, 40);
    files += 40;
    eventually(Duration::from_secs(90), "c holds a user", async || {
        (c.metric("lancesync_coordinator_users_held")
            .await
            .unwrap_or(0.0)
            >= 1.0)
            .then_some(())
    })
    .await;
    let c_users = held_by(&db, &c.instance_id()).await;
    assert!(!c_users.is_empty(), "c's writer rows name it");
    let cut_at = Instant::now();
    relay.silence();
    let fenced = eventually(Duration::from_secs(10), "c fences itself", async || {
        c.logged_since(cut_at, "no answer from the coordinator")
    })
    .await;
    assert!(
        fenced.duration_since(cut_at)
            <= Duration::from_secs(TAKEOVER_SECS) / 4 + Duration::from_millis(800),
        "c stops within a quarter of the takeover time: {:?}",
        fenced.duration_since(cut_at)
    );
    let live = [&pair[0], &pair[1]];
    let takeover_logged = eventually(
        Duration::from_secs(TAKEOVER_SECS * 3),
        "another instance takes c's users over",
        async || {
            live.iter()
                .filter_map(|i| {
                    i.logged_since(cut_at, "taking over a user whose writer never gave it back")
                })
                .min()
        },
    )
    .await;
    assert!(
        fenced < takeover_logged + Duration::from_secs(TAKEOVER_SECS) / 2,
        "c stopped writing ({:?} after the cut) before the next holder wrote ({:?} after)",
        fenced.duration_since(cut_at),
        (takeover_logged + Duration::from_secs(TAKEOVER_SECS) / 2).duration_since(cut_at)
    );
    relay.restore().await;
    all_indexed(
        &pair[0],
        files as u64,
        Duration::from_secs(180),
        "the runs the cut stopped",
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "c is back in the cluster",
        async || (c.metric("lancesync_coordinator_reachable").await == Some(1.0)).then_some(()),
    )
    .await;
    let found = damage(&pair[0]).await;
    assert!(found.is_empty(), "after the cut: {found:#?}");

    // From the run history: no two runs of one user at once, and each schedule once per
    // interval cluster-wide (ann's notes, scanned by hand too, aside).
    let runs = history(&db).await;
    assert!(runs.len() >= all * 3, "{} runs", runs.len());
    let spread: BTreeMap<String, i64> = db
        .query(
            "SELECT instance, count(*) FROM lancesync_runs GROUP BY instance",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    eprintln!(
        "takeover after kill: {writes_again:?}; c fenced {:?} after the cut; runs by session: {spread:?}",
        fenced.duration_since(cut_at)
    );
    let ran: std::collections::BTreeSet<&str> = spread
        .keys()
        .filter_map(|session| session.split(':').next())
        .collect();
    assert!(
        ["a", "b", "c"].iter().all(|name| ran.contains(name)),
        "runs spread over every instance, with no static sharding: {spread:?}"
    );
    let mut by_user: BTreeMap<&str, Vec<&Run>> = BTreeMap::new();
    for run in &runs {
        by_user.entry(&run.user).or_default().push(run);
    }
    let slack = Duration::from_millis(5);
    for (user, mut runs) in by_user {
        runs.sort_by_key(|r| r.start);
        for pair in runs.windows(2) {
            assert!(
                pair[1].start + slack >= pair[0].end,
                "{user}: runs of {} and {} overlap",
                pair[0].source,
                pair[1].source
            );
        }
        for source in SOURCES {
            if (user, source) == ("ann", "notes") {
                continue;
            }
            let ends: Vec<SystemTime> = runs
                .iter()
                .filter(|r| r.source == source)
                .map(|r| r.end)
                .collect();
            for pair in ends.windows(2) {
                let gap = pair[1].duration_since(pair[0]).unwrap_or_default();
                assert!(
                    gap + Duration::from_millis(100) >= Duration::from_secs(POLL_SECS),
                    "{user}/{source}: two runs {gap:?} apart, under the poll interval"
                );
            }
        }
    }
}
