//! One writer per user across instances, against a real PostgreSQL server started here.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lancesync_coordinator::{
    Coordination, CoordinatorOptions, Error, PostgresCoordinator, RunRecord, SCHEMA_VERSION,
};
use lancesync_testkit::{Postgres, Relay};
use tokio_postgres::NoTls;

/// Short timings: fence after 0.5 s, takeover wait 1 s.
const TAKEOVER: Duration = Duration::from_secs(2);

async fn instance(url: &str, name: &str) -> PostgresCoordinator {
    PostgresCoordinator::connect(CoordinatorOptions {
        takeover: TAKEOVER,
        instance_id: Some(name.into()),
        ..CoordinatorOptions::new(url)
    })
    .await
    .expect("connect")
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("admin");
    tokio::spawn(connection);
    client
}

/// Whether `hold` is still waiting after `within`.
async fn still_waiting<F: std::future::Future>(
    hold: &mut std::pin::Pin<Box<F>>,
    within: Duration,
) -> bool {
    tokio::time::timeout(within, hold.as_mut()).await.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_is_written_by_one_instance_at_a_time() {
    let pg = Postgres::start();
    let (a, b) = (
        instance(&pg.url(), "a").await,
        instance(&pg.url(), "b").await,
    );

    let held = a.hold("alice").await.expect("a holds alice");
    assert!(!held.taken_over(), "nobody held alice before");
    assert_eq!(a.status().users_held, vec!["alice".to_string()]);

    // Another user is free; alice waits for a.
    let bob = tokio::time::timeout(Duration::from_secs(5), b.hold("bob"))
        .await
        .expect("bob is free")
        .expect("b holds bob");
    let mut waiting = Box::pin(b.hold("alice"));
    assert!(still_waiting(&mut waiting, Duration::from_millis(800)).await);

    // Given back cleanly: b gets alice soon, and with nothing to repair.
    let released = Instant::now();
    drop(held);
    let taken = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("b gets alice once a gives it back")
        .expect("hold");
    assert!(!taken.taken_over(), "a gave alice back: nothing to repair");
    assert!(
        released.elapsed() < TAKEOVER / 2,
        "a clean hand-over does not wait the takeover time ({:?})",
        released.elapsed()
    );
    assert_eq!(
        b.status().users_held,
        vec!["alice".to_string(), "bob".to_string()]
    );
    assert!(a.status().users_held.is_empty());
    let seen_by_a = a.schedule(true).await.unwrap();
    let seen_by_a: Vec<&str> = seen_by_a.users_held_elsewhere().collect();
    assert!(
        seen_by_a.contains(&"alice") && seen_by_a.contains(&"bob"),
        "{seen_by_a:?}"
    );
    assert!(
        b.schedule(true)
            .await
            .unwrap()
            .users_held_elsewhere()
            .next()
            .is_none(),
        "b's own users are not elsewhere"
    );
    drop(bob);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_in_one_instance_share_the_user() {
    let pg = Postgres::start();
    let (a, b) = (
        instance(&pg.url(), "a").await,
        instance(&pg.url(), "b").await,
    );

    let first = a.hold("carol").await.expect("first");
    let second = tokio::time::timeout(Duration::from_secs(1), a.hold("carol"))
        .await
        .expect("a second hold in the same instance does not wait")
        .expect("second");
    let mut waiting = Box::pin(b.hold("carol"));
    drop(first);
    assert!(
        still_waiting(&mut waiting, Duration::from_millis(800)).await,
        "a still holds carol while one of its holds stands"
    );
    drop(second);
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("b gets carol once every hold of a is dropped")
        .expect("hold");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_session_is_fenced_and_its_users_taken_over_after_the_wait() {
    let pg = Postgres::start();
    let (a, b) = (
        instance(&pg.url(), "a").await,
        instance(&pg.url(), "b").await,
    );
    let held = a.hold("dave").await.expect("a holds dave");
    let writes = Arc::new(Mutex::new(Vec::<(char, Instant)>::new()));

    // a writes until it is stopped.
    let a_writes = {
        let writes = writes.clone();
        async move {
            held.fenced(async {
                loop {
                    writes.lock().unwrap().push(('a', Instant::now()));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
        }
    };
    let a_task = tokio::spawn(a_writes);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Postgres ends a's session (as when its process dies).
    let killed = Instant::now();
    assert!(pg.end_sessions_of("a").await);
    let stopped = tokio::time::timeout(Duration::from_secs(2), a_task)
        .await
        .expect("a stops writing when its session ends")
        .expect("task");
    assert!(
        matches!(stopped, Err(Error::Lost { ref user_id }) if user_id == "dave"),
        "{stopped:?}"
    );

    let taken = b.hold("dave").await.expect("b takes dave over");
    let waited = killed.elapsed();
    assert!(taken.taken_over(), "a never gave dave back: b must repair");
    assert!(
        waited >= TAKEOVER / 2 && waited < TAKEOVER + Duration::from_secs(1),
        "taken over after the wait, within the takeover time: {waited:?}"
    );
    writes.lock().unwrap().push(('b', Instant::now()));
    let writes = writes.lock().unwrap().clone();
    let last_a = writes.iter().filter(|w| w.0 == 'a').map(|w| w.1).max();
    let first_b = writes.iter().filter(|w| w.0 == 'b').map(|w| w.1).min();
    assert!(
        last_a.is_some() && last_a < first_b,
        "no write of a after b started"
    );

    // a joins again with a new session and waits for dave like anyone else.
    tokio::time::timeout(Duration::from_secs(5), async {
        while !a.status().reachable {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a reconnects");
    let mut again = Box::pin(a.hold("dave"));
    assert!(still_waiting(&mut again, Duration::from_millis(500)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_instance_stops_writing_before_another_starts() {
    let pg = Postgres::start();
    let relay = Relay::start(([127, 0, 0, 1], pg.port()).into()).await;
    let through_relay = relay.endpoint().replace("http://", "postgres://lancesync@") + "/postgres";
    let a = instance(&through_relay, "a").await;
    let b = instance(&pg.url(), "b").await;
    let held = a.hold("erin").await.expect("a holds erin");
    let writes = Arc::new(Mutex::new(Vec::<(char, Instant)>::new()));
    let a_task = {
        let writes = writes.clone();
        tokio::spawn(async move {
            held.fenced(async {
                loop {
                    writes.lock().unwrap().push(('a', Instant::now()));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Packets dropped: Postgres sees a's session closed at once and frees its lock, while a
    // hears nothing. b gets the lock at once, but must not write before a has stopped.
    let cut = Instant::now();
    relay.silence();
    let taken = b.hold("erin").await.expect("b takes erin over");
    let b_starts = Instant::now();
    assert!(taken.taken_over());
    let stopped = tokio::time::timeout(Duration::from_secs(2), a_task)
        .await
        .expect("a fences itself")
        .expect("task");
    assert!(matches!(stopped, Err(Error::Lost { .. })), "{stopped:?}");
    let last_a = writes
        .lock()
        .unwrap()
        .iter()
        .map(|w| w.1)
        .max()
        .expect("a wrote");
    assert!(
        last_a < b_starts,
        "a's last write {:?} after the cut, b's first {:?}",
        last_a - cut,
        b_starts - cut
    );
    assert!(!a.status().reachable);
    assert!(b_starts - cut < TAKEOVER + Duration::from_secs(1));

    // The network comes back: a joins again.
    relay.restore().await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while !a.status().reachable {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a reconnects after the cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_is_made_once_and_a_newer_one_is_refused() {
    let pg = Postgres::start();
    // Instances starting together make it once.
    let url = pg.url();
    let (a, b) = tokio::join!(instance(&url, "a"), instance(&url, "b"));
    let db = admin(&pg.url()).await;
    let versions: Vec<i32> = db
        .query("SELECT version FROM lancesync_schema ORDER BY version", &[])
        .await
        .expect("versions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    drop((a, b));

    db.execute(
        "INSERT INTO lancesync_schema (version) VALUES ($1)",
        &[&(SCHEMA_VERSION + 1)],
    )
    .await
    .expect("a newer version");
    let refused = PostgresCoordinator::connect(CoordinatorOptions::new(pg.url()))
        .await
        .expect_err("a newer schema is refused");
    assert!(
        matches!(refused, Error::SchemaTooNew { found, .. } if found == SCHEMA_VERSION + 1),
        "{refused}"
    );
    assert!(refused.to_string().contains("upgrade"), "{refused}");
}

#[tokio::test]
async fn an_unreachable_coordinator_names_the_setting_and_hides_the_password() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://sync:s3cret@127.0.0.1:{closed}/lancesync");
    let err = PostgresCoordinator::connect(CoordinatorOptions::new(url))
        .await
        .expect_err("nothing listens there");
    let message = err.to_string();
    assert!(message.contains("COORDINATOR_URL"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    assert!(message.contains("sync:****@127.0.0.1"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_registry_is_shared_and_no_change_is_missed() {
    let pg = Postgres::start();
    let (a, b) = (
        instance(&pg.url(), "a").await,
        instance(&pg.url(), "b").await,
    );
    let first = a
        .publish_source("alice", "notes", Some("entry 1"))
        .await
        .unwrap();
    a.publish_source("alice", "mail", Some("entry 2"))
        .await
        .unwrap();
    let all = b.sources_since(0).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|s| s.source_id.as_str()).collect();
    assert_eq!(ids, ["notes", "mail"]);
    assert_eq!(all[0].entry.as_deref(), Some("entry 1"));
    let seen = all.last().unwrap().version;

    // A change, a removal: seen as such by whoever asks after `seen`.
    b.publish_source("alice", "notes", Some("entry 1, changed"))
        .await
        .unwrap();
    b.publish_source("alice", "mail", None).await.unwrap();
    let changes = a.sources_since(seen).await.unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0].entry.as_deref(), Some("entry 1, changed"));
    assert_eq!(changes[0].added, first, "a change keeps its place");
    assert_eq!(changes[1].entry, None, "a removal is a tombstone");
    // Added again: last in order.
    let again = a
        .publish_source("alice", "mail", Some("entry 3"))
        .await
        .unwrap();
    let now = b.sources_since(0).await.unwrap();
    let mail = now.iter().find(|s| s.source_id == "mail").unwrap();
    assert_eq!(mail.added, again);

    // Many writers at once, one reader asking only for what is new: nothing is missed.
    let written = std::sync::atomic::AtomicBool::new(false);
    let reader = async {
        let mut since = 0;
        let mut seen = std::collections::BTreeMap::new();
        loop {
            // Whether the writers had finished before this look: then it is the last one.
            let last = written.load(std::sync::atomic::Ordering::SeqCst);
            for s in b.sources_since(since).await.unwrap() {
                assert!(s.version > since);
                since = s.version;
                seen.insert((s.user_id.clone(), s.source_id.clone()), s.entry.clone());
            }
            if last {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let writers = async {
        let write = |c: PostgresCoordinator, who: &'static str| async move {
            for i in 0..40 {
                c.publish_source("bob", &format!("{who}{i}"), Some(&format!("{who} {i}")))
                    .await
                    .unwrap();
            }
        };
        tokio::join!(write(a.clone(), "a"), write(b.clone(), "b"));
        written.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let (seen, ()) = tokio::join!(reader, writers);
    let bob: Vec<_> = seen.keys().filter(|(u, _)| u == "bob").collect();
    assert_eq!(bob.len(), 80, "every change seen by asking for what is new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_run_is_claimed_once_and_a_cut_short_one_stays_due() {
    let pg = Postgres::start();
    let (a, b) = (
        instance(&pg.url(), "a").await,
        instance(&pg.url(), "b").await,
    );
    let schedule = a.schedule(true).await.unwrap();
    assert!(schedule.is_empty(), "nothing has run");
    assert_eq!(schedule.live_instances, 1, "only a takes work yet");
    assert_eq!(b.schedule(false).await.unwrap().live_instances, 1);
    assert_eq!(b.schedule(true).await.unwrap().live_instances, 2);
    assert_eq!(
        a.schedule(true).await.unwrap().live_instances,
        2,
        "b's pipeline started"
    );
    assert!(
        schedule.users_held_elsewhere().next().is_none(),
        "nobody holds a user"
    );

    // Never run: due. One instance gets it, and only once; the claim holds the user.
    let claim = a.claim_run("alice", "notes").await.unwrap().expect("due");
    assert!(
        a.claim_run("alice", "notes").await.unwrap().is_none(),
        "not twice in one instance"
    );
    assert!(
        b.claim_run("alice", "notes").await.unwrap().is_none(),
        "nor in another"
    );
    assert!(
        b.claim_run("alice", "mail").await.unwrap().is_none(),
        "nor another source of the user: a holds her"
    );
    let bobs = b.claim_run("bob", "mail").await.unwrap();
    assert!(bobs.is_some(), "another user is free");
    drop(bobs);

    // Running on a: b sees it so.
    let seen_by_b = b.schedule(true).await.unwrap();
    assert_eq!(seen_by_b.running_elsewhere("alice", "notes"), Some("a"));
    assert!(
        a.schedule(true)
            .await
            .unwrap()
            .running_elsewhere("alice", "notes")
            .is_none(),
        "a's own run is not elsewhere"
    );

    // Finished: not due until the interval has passed, on any instance.
    a.finish_run(claim, Duration::from_millis(1500), None)
        .await
        .unwrap();
    assert!(
        b.schedule(true)
            .await
            .unwrap()
            .running_elsewhere("alice", "notes")
            .is_none(),
        "no longer running"
    );
    assert!(
        b.claim_run("alice", "notes").await.unwrap().is_none(),
        "ran just now"
    );
    let due_in = a.schedule(true).await.unwrap().due_in("alice", "notes");
    assert!(
        due_in > Duration::from_millis(500) && due_in <= Duration::from_millis(1500),
        "{due_in:?}"
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let claim = b
        .claim_run("alice", "notes")
        .await
        .unwrap()
        .expect("due again");

    // b dies in the run: the run stays due, and a runs it.
    assert!(pg.end_sessions_of("b").await);
    let taken = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(taken) = a.claim_run("alice", "notes").await.unwrap() {
                return taken;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a runs what b left");
    // b never gave alice back: the claim comes at once, but a writes only once b has
    // stopped (half the takeover time), without holding a run slot meanwhile.
    let left = taken.ready_in().expect("a user taken over waits");
    assert!(left <= TAKEOVER / 2, "{left:?}");
    let waited = Instant::now();
    taken.ready().await.unwrap();
    assert!(waited.elapsed() + Duration::from_millis(50) >= left);
    assert!(taken.ready_in().is_none());
    drop(taken);
    drop(claim);

    // A claim dropped without finishing leaves the source due.
    // (b has a new session by now: claims wait for one.)
    let dropped = b.claim_run("bob", "docs").await.unwrap().expect("due");
    drop(dropped);
    tokio::time::timeout(Duration::from_secs(5), async {
        while a.claim_run("bob", "docs").await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("still due after a dropped claim");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_due_sources_are_claimed_together_and_runs_end_and_users_go_back_in_batches() {
    let pg = Postgres::start();
    // A takeover time of a minute: a heartbeat every 3 s, so that the statements counted
    // below are the claims', the ends' and the givings back.
    let quiet = |name: &str| {
        PostgresCoordinator::connect(CoordinatorOptions {
            takeover: Duration::from_secs(60),
            instance_id: Some(name.into()),
            ..CoordinatorOptions::new(pg.url())
        })
    };
    let (a, b) = (quiet("a").await.unwrap(), quiet("b").await.unwrap());
    let db = admin(&pg.url()).await;
    let sources = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    // mail ran a moment ago; notes and docs never ran: those two are claimed, together.
    let mail = a.claim_run("alice", "mail").await.unwrap().expect("due");
    a.finish_run(mail, Duration::from_secs(60), None)
        .await
        .unwrap();
    let claims = a
        .claim_runs("alice", &sources(&["notes", "mail", "docs", "notes"]))
        .await
        .unwrap();
    let mut claimed: Vec<&str> = claims.iter().map(|c| c.source_id.as_str()).collect();
    claimed.sort_unstable();
    assert_eq!(claimed, ["docs", "notes"], "the due ones, once each");
    assert!(
        a.claim_runs("alice", &sources(&["notes", "docs"]))
            .await
            .unwrap()
            .is_empty(),
        "not twice"
    );

    // b cannot claim a user a holds, and marks nothing as running (the claim sent with the
    // lock's statement claims only with the lock).
    assert!(
        b.claim_runs("alice", &sources(&["mail", "photos"]))
            .await
            .unwrap()
            .is_empty()
    );
    let marked: Vec<(String, Option<String>)> = db
        .query(
            "SELECT source_id, running_by FROM lancesync_schedule WHERE user_id = 'alice' ORDER BY source_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(marked.len(), 3, "{marked:?}");
    for (source, running_by) in &marked {
        match source.as_str() {
            "mail" => assert_eq!(running_by, &None, "finished, and not b's"),
            _ => assert!(
                running_by.as_deref().is_some_and(|r| r.starts_with("a#")),
                "{source}: {running_by:?}"
            ),
        }
    }
    drop(claims);

    // Twenty users' runs ending at once are written in a statement or two, not twenty.
    let users: Vec<String> = (0..20).map(|i| format!("user{i:02}")).collect();
    let mut runs = Vec::new();
    for user in &users {
        runs.push(a.claim_run(user, "notes").await.unwrap().expect("due"));
    }
    let before = a.statements_sent();
    let ends: Vec<_> = runs
        .into_iter()
        .enumerate()
        .map(|(i, claim)| {
            let a = a.clone();
            let at = format!("2026-12-07T10:00:{i:02}Z");
            tokio::spawn(async move {
                let outcome = record(&claim.user_id.clone(), "notes", &at, Ok(1));
                a.finish_run(claim, Duration::from_secs(60), Some(&outcome))
                    .await
            })
        })
        .collect();
    for end in ends {
        end.await.unwrap().unwrap();
    }
    let ends_cost = a.statements_sent() - before;
    assert!(ends_cost <= 3, "{ends_cost} statements for 20 ends");
    let keys: Vec<(String, String)> = users
        .iter()
        .map(|u| (u.clone(), "notes".to_string()))
        .collect();
    let details = b.run_details(&keys).await.unwrap();
    assert_eq!(details.len(), 20);
    assert!(
        details
            .iter()
            .all(|d| d.runs == 1 && d.last_report.is_some())
    );
    assert_eq!(b.run_history("user07", 10).await.unwrap().len(), 1);

    // The claims are dropped with their ends written: the users are given back together
    // once they linger no more (1.5 s), and b takes each of them at once.
    let before = a.statements_sent();
    let given_back = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !a.status().users_held.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("given back");
    for user in &users {
        tokio::time::timeout(Duration::from_secs(3), async {
            while b.claim_run(user, "mail").await.unwrap().is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("b takes {user}"));
    }
    assert!(given_back.elapsed() < Duration::from_secs(6));
    let give_back_cost = a.statements_sent() - before;
    assert!(
        give_back_cost <= 6,
        "{give_back_cost} statements to give 21 users back"
    );
}

fn record(user: &str, source: &str, at: &str, outcome: Result<u32, &str>) -> RunRecord {
    RunRecord {
        user_id: user.into(),
        source_id: source.into(),
        finished_at: at.into(),
        report: outcome.ok().map(|n| format!("{{\"created\":{n}}}")),
        summary: outcome.ok().map(|n| format!("{{\"run\":{n}}}")),
        error: outcome.err().map(String::from),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_and_jobs_recorded_by_one_instance_are_read_by_another() {
    let pg = Postgres::start();
    let (a, b) = (
        instance(&pg.url(), "a").await,
        instance(&pg.url(), "b").await,
    );
    let notes = ("alice".to_string(), "notes".to_string());

    // A scheduled run on a, and a scan on request: b reads both outcomes, in order.
    let claim = a.claim_run("alice", "notes").await.unwrap().expect("due");
    let first = record("alice", "notes", "2026-12-07T10:00:00Z", Ok(3));
    a.finish_run(claim, Duration::from_secs(60), Some(&first))
        .await
        .unwrap();
    let before = b.schedule(true).await.unwrap().changed("alice", "notes");
    let failed = record(
        "alice",
        "notes",
        "2026-12-07T10:05:00Z",
        Err("listing failed"),
    );
    a.record_run(&failed).await.unwrap();
    let after = b.schedule(true).await.unwrap();
    assert!(
        after.changed("alice", "notes") > before,
        "a new record has a newer version"
    );
    assert!(
        after.due_in("alice", "notes") > Duration::from_secs(50),
        "a scan on request does not move the schedule"
    );
    let details = b.run_details(std::slice::from_ref(&notes)).await.unwrap();
    assert_eq!(details.len(), 1);
    let run = &details[0];
    assert_eq!(run.runs, 2);
    assert_eq!(run.last_run_at.as_deref(), Some("2026-12-07T10:05:00Z"));
    assert_eq!(run.last_error.as_deref(), Some("listing failed"));
    assert_eq!(
        run.last_report.as_deref(),
        Some("{\"created\":3}"),
        "a failed run keeps the last report"
    );
    assert!(
        b.run_details(&[("bob".into(), "mail".into())])
            .await
            .unwrap()
            .is_empty(),
        "never run"
    );

    // The history holds successful runs, oldest first, of every source of the user.
    a.record_run(&record("alice", "mail", "2026-12-07T10:06:00Z", Ok(7)))
        .await
        .unwrap();
    assert_eq!(
        b.run_history("alice", 10).await.unwrap(),
        vec!["{\"run\":3}".to_string(), "{\"run\":7}".to_string()]
    );
    assert_eq!(
        b.run_history("alice", 1).await.unwrap().len(),
        2,
        "the newest one of each source"
    );

    // A removed source's record goes with it.
    a.publish_source("alice", "mail", None).await.unwrap();
    assert_eq!(
        b.run_history("alice", 10).await.unwrap(),
        vec!["{\"run\":3}".to_string()]
    );

    // Jobs: numbered apart, saved by a, read by b, told apart once a is gone.
    assert_ne!(a.job_block(), b.job_block());
    let id = format!("job-{}", a.job_block() * 1_000_000_000 + 1);
    a.save_job(&id, "alice", false, "{\"done\":1}")
        .await
        .unwrap();
    let seen = b.job(&id).await.unwrap().expect("saved");
    assert_eq!((seen.body.as_str(), seen.finished), ("{\"done\":1}", false));
    assert_eq!(seen.instance_id, "a");
    assert!(seen.instance_alive);
    assert_eq!(b.unfinished_jobs(Some("alice")).await.unwrap().len(), 1);
    assert!(b.unfinished_jobs(Some("bob")).await.unwrap().is_empty());
    assert!(b.job("job-1").await.unwrap().is_none());

    assert!(pg.end_sessions_of("a").await);
    // (The backend ends shortly after it is told to.)
    tokio::time::timeout(Duration::from_secs(5), async {
        while b
            .job(&id)
            .await
            .unwrap()
            .expect("still saved")
            .instance_alive
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("its instance's session is gone");
    // Once a is back, its job's row names a's new session only when a saves it again.
    tokio::time::timeout(Duration::from_secs(5), async {
        while a
            .save_job(&id, "alice", true, "{\"done\":2}")
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a reconnects");
    let seen = b.job(&id).await.unwrap().expect("saved");
    assert!(seen.finished && seen.instance_alive);
    assert!(b.unfinished_jobs(None).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_speaks_tls_and_checks_the_certificate() {
    let pg = Postgres::start_tls();
    let url = format!(
        "postgres://lancesync@127.0.0.1:{}/postgres?sslmode=require",
        pg.port()
    );

    // Trusting the authority that signed the server's certificate: the session is TLS.
    let coordinator = PostgresCoordinator::connect(CoordinatorOptions {
        takeover: TAKEOVER,
        instance_id: Some("tls".into()),
        ca_file: pg.ca_file(),
        ..CoordinatorOptions::new(&url)
    })
    .await
    .expect("TLS with the test authority");
    drop(coordinator.hold("alice").await.expect("a hold over TLS"));
    let admin = admin(&pg.url()).await;
    let encrypted: bool = admin
        .query_one(
            "SELECT s.ssl FROM pg_stat_ssl AS s JOIN pg_stat_activity AS a USING (pid) \
             WHERE a.application_name = 'lancesync:tls'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted, "the instance's session is encrypted");

    // Trusting only the system's roots: refused, saying why, before anything is sent.
    let refused = PostgresCoordinator::connect(CoordinatorOptions {
        takeover: TAKEOVER,
        instance_id: Some("untrusted".into()),
        ..CoordinatorOptions::new(&url)
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains("COORDINATOR_URL") && refused.to_lowercase().contains("certificate"),
        "{refused}"
    );

    // A file that holds no certificate is named.
    let empty = pg.dir().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let refused = PostgresCoordinator::connect(CoordinatorOptions {
        takeover: TAKEOVER,
        ca_file: Some(empty),
        ..CoordinatorOptions::new(&url)
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains("COORDINATOR_CA_FILE") && refused.contains("empty.pem"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_reading_of_the_schedule_brings_what_changed_even_what_was_committed_late() {
    let pg = Postgres::start();
    let (a, b) = (
        instance(&pg.url(), "a").await,
        instance(&pg.url(), "b").await,
    );
    let ran_recently = |due_in: Duration| due_in > Duration::from_secs(500);

    // b runs alice's notes: a sees it running there, then (reading only what changed) its
    // next time.
    let notes = b.claim_run("alice", "notes").await.unwrap().expect("due");
    let seen = a.schedule(true).await.unwrap();
    assert_eq!(seen.running_elsewhere("alice", "notes"), Some("b"));
    b.finish_run(notes, Duration::from_secs(600), None)
        .await
        .unwrap();
    let seen = a.schedule(true).await.unwrap();
    assert_eq!(seen.running_elsewhere("alice", "notes"), None);
    assert!(ran_recently(seen.due_in("alice", "notes")));
    assert_eq!(seen.overdue("alice", "notes"), None);

    // A transaction still open at a reading, while a later one has committed: the later one
    // is read at once, the open one at the first reading after it commits (a reading that
    // went only by what it had seen last would skip it for good).
    let mut db = admin(&pg.url()).await;
    let late = db.transaction().await.unwrap();
    late.execute(
        "UPDATE lancesync_schedule SET next_run_at = now() - interval '1 minute'
         WHERE user_id = 'alice' AND source_id = 'notes'",
        &[],
    )
    .await
    .unwrap();
    let docs = b.claim_run("bob", "docs").await.unwrap().expect("due");
    b.finish_run(docs, Duration::from_secs(600), None)
        .await
        .unwrap();
    let seen = a.schedule(true).await.unwrap();
    assert!(ran_recently(seen.due_in("bob", "docs")));
    assert_eq!(seen.overdue("alice", "notes"), None, "not committed yet");
    late.commit().await.unwrap();
    let seen = a.schedule(true).await.unwrap();
    let overdue = seen.overdue("alice", "notes");
    assert!(
        overdue.is_some_and(|d| d >= Duration::from_secs(50)),
        "committed after a later transaction was read, and read now: {overdue:?}"
    );
    assert!(ran_recently(seen.due_in("bob", "docs")), "kept");

    // The readings between whole ones read only rows written since: a row removed stays in
    // this instance's copy until the next whole reading (a new session, or every 30 s).
    db.execute("DELETE FROM lancesync_schedule WHERE user_id = 'bob'", &[])
        .await
        .unwrap();
    assert!(a.schedule(true).await.unwrap().has_run("bob", "docs"));
    let fresh = instance(&pg.url(), "c").await;
    let whole = fresh.schedule(true).await.unwrap();
    assert!(!whole.has_run("bob", "docs"));
    assert!(whole.overdue("alice", "notes").is_some());
}
