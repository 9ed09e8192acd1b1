//! [`Coordination`] over PostgreSQL: one session per instance, session-level advisory locks
//! per user, a heartbeat that fences the instance when the session stops answering, and a
//! reconnecting loop.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, Row, Statement};

use crate::ClusterRun;
use crate::tls::Transport;
use crate::{
    ClusterSchedule, Coordination, CoordinatorOptions, CoordinatorStatus, Error, Result, RunClaim,
    RunRecord, ScheduleRows, ScheduledSource, SharedJob, SharedSource, UserHold, runs, schema,
    shared_sources,
};

/// How often a waiting instance asks again for a user another instance holds.
const LOCK_POLL: Duration = Duration::from_millis(200);

/// How long (at most) an instance keeps a user after its last hold is dropped: a user's runs
/// come one after another on the instance that runs them, and each would otherwise take and
/// give back the lock (three statements) for nothing. An eighth of the takeover time when
/// that is shorter.
const LINGER: Duration = Duration::from_millis(1500);

/// Take a user's lock (`$1` its key), and name this session (`$3`) its writer (`$2` the user),
/// in one statement: whether it was taken, the previous holder's name, and the row (written
/// only with the lock).
const ACQUIRE: &str = "
    WITH got AS (SELECT pg_try_advisory_lock($1) AS ok),
    previous AS (SELECT holder FROM lancesync_writers WHERE user_id = $2),
    mine AS (
        INSERT INTO lancesync_writers (user_id, holder, pid)
        SELECT $2, $3, pg_backend_pid() FROM got WHERE got.ok
        ON CONFLICT (user_id) DO UPDATE SET holder = EXCLUDED.holder,
            pid = EXCLUDED.pid, since = now()
        RETURNING 1)
    SELECT got.ok, (SELECT holder FROM previous), (SELECT count(*) FROM mine) FROM got";

/// Users given back: this session (`$2`) no longer writes them (`$1`).
const FORGET_HOLDERS: &str =
    "DELETE FROM lancesync_writers WHERE holder = $2 AND user_id = ANY($1::text[])";

/// Users' locks given back (`$1` their keys).
const UNLOCK: &str = "SELECT pg_advisory_unlock(key) FROM unnest($1::bigint[]) AS key";

/// Say whether this session (`$1`) takes scheduled work (`$2`), and forget dead instances.
const ANNOUNCE: &str = "
    WITH mine AS (
        INSERT INTO lancesync_instances (session, pid, taking_work)
        VALUES ($1, pg_backend_pid(), $2)
        ON CONFLICT (session) DO UPDATE SET taking_work = EXCLUDED.taking_work
        RETURNING 1),
    gone AS (
        DELETE FROM lancesync_instances AS i WHERE NOT EXISTS (
            SELECT 1 FROM pg_stat_activity AS a WHERE a.pid = i.pid)
        RETURNING 1)
    SELECT (SELECT count(*) FROM mine), (SELECT count(*) FROM gone)";

/// A reading of the schedule: the oldest transaction still running (rows it and later ones
/// write are read again next time), the server's time (ms since the epoch), and the rows
/// (`$rows_written` chooses which): each source's next time (ms since the epoch), its
/// outcome's version and the session running it. One row with no source when none match.
macro_rules! schedule_sql {
    ($rows_written:literal) => {
        concat!(
            "WITH reading AS (
                SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS from_xid,
                    (extract(epoch FROM now()) * 1000)::bigint AS now_ms)
            SELECT reading.from_xid, reading.now_ms, s.user_id, s.source_id,
                (extract(epoch FROM s.next_run_at) * 1000)::bigint, s.changed, s.running_by
            FROM reading LEFT JOIN (SELECT * FROM lancesync_schedule",
            $rows_written,
            ") AS s ON true"
        )
    };
}

/// The whole schedule.
const SCHEDULE_WHOLE: &str = schedule_sql!("");

/// The schedule's rows written by transactions from `$1` on.
const SCHEDULE_SINCE: &str = schedule_sql!(" WHERE written >= $1::bigint::text::xid8");

/// The schedule is read whole at least this often (rows removed, a session replaced); in
/// between, only the rows written since the last reading.
const WHOLE_READ_EVERY: Duration = Duration::from_secs(30);

/// The users other live sessions than `$1` hold, and the session holding each.
const HELD_ELSEWHERE: &str = "
    SELECT w.user_id, w.holder FROM lancesync_writers AS w WHERE w.holder <> $1
    AND EXISTS (SELECT 1 FROM pg_stat_activity AS a WHERE a.pid = w.pid)";

/// The live instances taking scheduled work.
const LIVE_INSTANCES: &str = "
    SELECT count(*) FROM lancesync_instances AS i WHERE i.taking_work
    AND EXISTS (SELECT 1 FROM pg_stat_activity AS a WHERE a.pid = i.pid)";

/// How long the end of a run waits for others to be written with it: runs' ends are written
/// to the schedule in one statement per this long at most (others read the schedule once a
/// second), not one per run.
const GATHER: Duration = Duration::from_millis(50);

/// The coordinator of one instance, backed by PostgreSQL. Cheap to clone.
#[derive(Clone)]
pub struct PostgresCoordinator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PostgresCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresCoordinator")
            .field("instance_id", &self.inner.instance_id)
            .field("url", &self.inner.url_shown)
            .finish()
    }
}

struct Inner {
    options: CoordinatorOptions,
    config: Config,
    transport: Transport,
    instance_id: String,
    /// The sessions' `application_name` (`lancesync:INSTANCE`), by which jobs tell whether
    /// their instance lives.
    application: String,
    url_shown: String,
    /// The live session, `None` while reconnecting.
    session: Mutex<Option<Session>>,
    /// The live session's generation, 0 while there is none: holds watch it to fence.
    live: watch::Sender<u64>,
    generations: AtomicU64,
    /// Numbers the takings over of users, for [`UserHold::takeover_id`].
    takeovers: AtomicU64,
    /// Statements sent, heartbeats and preparations included.
    statements: AtomicU64,
    last_contact: Mutex<Option<Instant>>,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
    held: Mutex<BTreeSet<String>>,
    /// Runs this instance has claimed (session locks are re-entrant: the set, not the lock,
    /// keeps one instance from claiming a run twice).
    claimed: Mutex<BTreeSet<(String, String)>>,
    /// This instance's block of job numbers.
    job_block: AtomicU64,
    /// The (session, taking work) last written to `lancesync_instances`.
    announced: Mutex<Option<(u64, bool)>>,
    /// Runs and jobs recorded: old ones are trimmed every [`runs::TRIM_EVERY`].
    records: AtomicU64,
    /// Ends of claimed runs waiting to be written ([`Inner::finish_together`]).
    finishing: Gathering<Finishing>,
    /// Users waiting to be given back ([`Inner::release_together`]).
    releasing: Gathering<Releasing>,
    /// The schedule as last read.
    schedule_copy: tokio::sync::Mutex<Option<ScheduleCopy>>,
}

/// This instance's copy of the schedule table, kept up to date by reading the rows written
/// since the last reading ([`SCHEDULE_SINCE`]), and read whole on a new session and every
/// [`WHOLE_READ_EVERY`]. The rows are shared with the [`ClusterSchedule`]s handed out
/// (changed in place once those are dropped, as they are between readings).
struct ScheduleCopy {
    /// The session it was read on.
    generation: u64,
    /// Rows written by transactions from this one on may not have been read yet (it was
    /// the oldest running at the last reading; every older one had ended and was read).
    from_xid: i64,
    read_whole_at: Instant,
    rows: Arc<ScheduleRows>,
}

/// Writes gathered into one (a group commit): what comes while a write is under way waits
/// for it, and the next write takes everything that came within [`GATHER`] of its start.
struct Gathering<T> {
    waiting: Mutex<Vec<T>>,
    writer: tokio::sync::Mutex<()>,
}

impl<T> Default for Gathering<T> {
    fn default() -> Self {
        Self {
            waiting: Mutex::default(),
            writer: tokio::sync::Mutex::new(()),
        }
    }
}

impl<T> Gathering<T> {
    fn push(&self, item: T) {
        lock(&self.waiting).push(item);
    }

    /// What to write now, with the writer's turn (held until the guard is dropped); `None`
    /// when an earlier write took it all.
    async fn gather(&self) -> Option<(tokio::sync::MutexGuard<'_, ()>, Vec<T>)> {
        let writer = self.writer.lock().await;
        if lock(&self.waiting).is_empty() {
            return None;
        }
        tokio::time::sleep(GATHER).await;
        Some((writer, std::mem::take(&mut *lock(&self.waiting))))
    }
}

/// A user given back, waiting to be written with others; its slot stays locked until then,
/// so that the user is not taken again here meanwhile.
struct Releasing {
    user_id: String,
    generation: u64,
    _slot: tokio::sync::OwnedMutexGuard<Slot>,
}

/// One run's outcome to record (`record`: none for a run skipped).
struct Outcome {
    user_id: String,
    source_id: String,
    next_in: Duration,
    record: Option<RunRecord>,
}

/// A claimed run's end, waiting to be written with others.
struct Finishing {
    outcome: Outcome,
    /// The session its claim's hold was taken on.
    generation: u64,
    written: oneshot::Sender<Result<()>>,
}

#[derive(Clone)]
struct Session {
    client: Arc<Client>,
    generation: u64,
    /// This session's name in `lancesync_writers.holder`.
    name: String,
    /// The statements prepared on this session, by their text.
    prepared: Arc<Mutex<HashMap<&'static str, Statement>>>,
}

/// One user's holds in this instance.
#[derive(Default)]
struct Slot {
    holders: usize,
    /// The session the cluster-wide lock is held on (while holds stand, and for [`LINGER`]
    /// after the last is dropped); 0 when not held.
    generation: u64,
    /// Counts takings and givings back, so that a delayed release knows whether the user
    /// was taken again meanwhile.
    epoch: u64,
    /// The id of this taking of the user, when it was taken over (shared by every hold
    /// until the user is given back).
    takeover: Option<u64>,
    /// When a user taken over may be written: the previous holder has fenced itself by then.
    writable_at: Option<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The advisory lock key of a user's writes.
fn lock_key(user_id: &str) -> i64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"lancesync-writer\0");
    hasher.update(user_id.as_bytes());
    let digest = hasher.finalize();
    let mut key = [0u8; 8];
    key.copy_from_slice(&digest.as_bytes()[..8]);
    i64::from_le_bytes(key)
}

fn default_instance_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "host".into());
    format!("{host}:{}", std::process::id())
}

impl PostgresCoordinator {
    /// Connect, bring the coordinator's schema up to date, and keep the session alive in the
    /// background. Fails with a message naming `COORDINATOR_URL` when Postgres does not
    /// answer, and refuses a schema from a newer lancesync.
    pub async fn connect(options: CoordinatorOptions) -> Result<Self> {
        let url_shown = lancesync_config::mask_password(options.url.expose_secret());
        let mut config: Config = options.url.expose_secret().parse().map_err(|_| {
            Error::BadUrl(format!(
                "={url_shown} is not a PostgreSQL URL (postgres://user:password@host:port/database)"
            ))
        })?;
        let transport =
            Transport::for_config(&config, options.ca_file.as_deref()).map_err(|e| match e {
                Error::BadUrl(why) => Error::BadUrl(format!("={url_shown} {why}")),
                other => other,
            })?;
        let instance_id = options
            .instance_id
            .clone()
            .unwrap_or_else(default_instance_id);
        let application = format!("lancesync:{instance_id}");
        let takeover = options.takeover;
        // The client side of a cut: connection attempts and dead sockets give up in time.
        config
            .application_name(&application)
            .connect_timeout(options.fence_after().max(Duration::from_secs(1)))
            .keepalives(true)
            .keepalives_idle((takeover / 8).max(Duration::from_secs(1)))
            .keepalives_interval((takeover / 16).max(Duration::from_secs(1)))
            .keepalives_retries(3)
            .tcp_user_timeout(options.fence_after().max(Duration::from_secs(1)));
        let (live, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            options,
            config,
            transport,
            instance_id,
            application,
            url_shown,
            session: Mutex::new(None),
            live,
            generations: AtomicU64::new(0),
            takeovers: AtomicU64::new(0),
            statements: AtomicU64::new(0),
            last_contact: Mutex::new(None),
            slots: Mutex::default(),
            held: Mutex::default(),
            claimed: Mutex::default(),
            job_block: AtomicU64::new(0),
            announced: Mutex::new(None),
            records: AtomicU64::new(0),
            finishing: Gathering::default(),
            releasing: Gathering::default(),
            schedule_copy: tokio::sync::Mutex::new(None),
        });
        let (client, done) = inner.open_session().await.map_err(|e| match e {
            Error::Query(reason) => Error::Unreachable {
                url: inner.url_shown.clone(),
                reason,
            },
            other => other,
        })?;
        // Numbers for this instance's jobs, unique cluster-wide.
        let block: i64 = client
            .query_one("SELECT nextval('lancesync_job_blocks')", &[])
            .await?
            .try_get(0)?;
        inner
            .job_block
            .store(u64::try_from(block).unwrap_or(0), Ordering::Relaxed);
        let generation = inner.begin_session(client.clone());
        tokio::spawn(keep_session(
            Arc::downgrade(&inner),
            client,
            done,
            generation,
        ));
        tracing::info!(instance = %inner.instance_id, url = %inner.url_shown, "joined the coordinator");
        Ok(Self { inner })
    }

    /// This instance's name in the cluster.
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// Statements this instance has sent to PostgreSQL (heartbeats and preparations
    /// included): what the coordination costs, for benchmarks and metrics.
    pub fn statements_sent(&self) -> u64 {
        self.inner.statements.load(Ordering::Relaxed)
    }

    /// The user's hold: waiting for another instance to give it back (`wait`), or `None`
    /// when another instance holds it. With `claim` (sources of the user), the due ones are
    /// claimed too ([`runs::CLAIM`]) when that takes no round trip more (the user was not
    /// held here): the claimed ones come back with the hold.
    async fn hold_user(
        &self,
        user_id: &str,
        wait: bool,
        claim: &[&str],
    ) -> Result<Option<(UserHold, Option<Vec<Row>>)>> {
        let inner = &self.inner;
        let started = Instant::now();
        let slot = inner.slot(user_id);
        let mut slot = slot.lock().await;
        loop {
            let session = inner.wait_session(user_id, started).await?;
            let mut claimed = None;
            // Held here already (or still, lingering): share it.
            if slot.generation == session.generation {
                slot.holders += 1;
                slot.epoch += 1;
            } else {
                match inner.acquire(&session, user_id, wait, claim).await {
                    Ok(Some((taken_over, rows))) => {
                        claimed = rows;
                        slot.holders = 1;
                        slot.epoch += 1;
                        slot.generation = session.generation;
                        slot.takeover =
                            taken_over.then(|| inner.takeovers.fetch_add(1, Ordering::SeqCst) + 1);
                        slot.writable_at =
                            taken_over.then(|| Instant::now() + inner.options.takeover_wait());
                        lock(&inner.held).insert(user_id.to_string());
                    }
                    Ok(None) => return Ok(None),
                    // The session ended while waiting: wait for the next one.
                    Err(Error::Lost { .. }) => continue,
                    Err(e) => return Err(e),
                }
            };
            let give_back = {
                let inner = Arc::downgrade(&self.inner);
                let user = user_id.to_string();
                let generation = session.generation;
                move || release_later(inner, user, generation)
            };
            let hold = UserHold::new(
                user_id,
                slot.takeover,
                session.generation,
                inner.live.subscribe(),
                Box::new(give_back),
            );
            return Ok(Some((hold.writable_at(slot.writable_at), claimed)));
        }
    }
}

impl Inner {
    /// Runs' outcomes with [`runs::FINISH`] or [`runs::RECORD`], in one statement (one
    /// source at most once).
    async fn record(
        &self,
        session: &Session,
        statement: &'static str,
        outcomes: &[Outcome],
    ) -> Result<()> {
        let Some(first) = outcomes.first() else {
            return Ok(());
        };
        let records = outcomes.iter().map(|o| o.record.as_ref());
        let users: Vec<&str> = outcomes.iter().map(|o| o.user_id.as_str()).collect();
        let sources: Vec<&str> = outcomes.iter().map(|o| o.source_id.as_str()).collect();
        let next_in: Vec<f64> = outcomes.iter().map(|o| o.next_in.as_secs_f64()).collect();
        let runs_added: Vec<i64> = records.clone().map(|r| i64::from(r.is_some())).collect();
        let finished_at: Vec<Option<&str>> = records
            .clone()
            .map(|r| r.map(|r| r.finished_at.as_str()))
            .collect();
        let reports: Vec<Option<&str>> = records
            .clone()
            .map(|r| r.and_then(|r| r.report.as_deref()))
            .collect();
        let errors: Vec<Option<&str>> = records
            .clone()
            .map(|r| r.and_then(|r| r.error.as_deref()))
            .collect();
        let summaries: Vec<Option<&str>> = records
            .clone()
            .map(|r| r.and_then(|r| r.summary.as_deref()))
            .collect();
        let trim: Vec<bool> = records
            .map(|r| {
                r.is_some()
                    && self
                        .records
                        .fetch_add(1, Ordering::Relaxed)
                        .is_multiple_of(runs::TRIM_EVERY)
            })
            .collect();
        let keep = i64::try_from(runs::RUNS_KEPT).unwrap_or(i64::MAX);
        self.query_one(
            session,
            &first.user_id,
            statement,
            &[
                &users,
                &sources,
                &next_in,
                &runs_added,
                &finished_at,
                &reports,
                &errors,
                &summaries,
                &trim,
                &session.name,
                &keep,
            ],
        )
        .await?;
        Ok(())
    }

    /// Write the ends of the claimed runs waiting, in one statement: those that end within
    /// [`GATHER`] of the first, and while the write is under way, go together (a group
    /// commit), so that a busy instance records many runs per statement.
    async fn finish_together(&self) {
        let Some((_writer, waiting)) = self.finishing.gather().await else {
            return;
        };
        let session = self.current();
        let mut batch = Vec::with_capacity(waiting.len());
        for finishing in waiting {
            if session
                .as_ref()
                .is_some_and(|s| s.generation == finishing.generation)
            {
                batch.push((finishing.outcome, finishing.written));
            } else {
                // A hold lost with its session: the run stays due, for whoever claims it
                // next.
                let _ = finishing.written.send(Ok(()));
            }
        }
        let Some(session) = session.filter(|_| !batch.is_empty()) else {
            return;
        };
        // Claims are one per source (`claimed`), so no source comes twice; in order, so that
        // instances writing at once lock rows in the same order.
        batch.sort_by(|(a, _), (b, _)| (&a.user_id, &a.source_id).cmp(&(&b.user_id, &b.source_id)));
        let (outcomes, written): (Vec<Outcome>, Vec<_>) = batch.into_iter().unzip();
        let result = self.record(&session, runs::FINISH, &outcomes).await;
        for done in written {
            let _ = done.send(result.clone());
        }
    }

    /// A new session: connected, its server-side timeouts set, the schema checked.
    async fn open_session(&self) -> Result<(Arc<Client>, JoinHandle<()>)> {
        let wait = self.options.fence_after().max(Duration::from_secs(1));
        let (mut client, done) = self.transport.connect(&self.config, wait).await?;
        // The server side of a cut: Postgres drops a session it cannot reach within half the
        // takeover time, which frees its locks.
        let takeover = self.options.takeover;
        let idle = (takeover.as_secs() / 8).max(1);
        let interval = (takeover.as_secs() / 16).max(1);
        let user_timeout_ms = (takeover.as_millis() / 2).max(1000);
        let setup = async {
            client
                .batch_execute(&format!(
                    "SET tcp_keepalives_idle = {idle}; SET tcp_keepalives_interval = {interval}; \
                     SET tcp_keepalives_count = 3; SET tcp_user_timeout = {user_timeout_ms}"
                ))
                .await?;
            schema::migrate(&mut client).await
        };
        match tokio::time::timeout(wait, setup).await {
            Ok(Ok(())) => Ok((Arc::new(client), done)),
            Ok(Err(e)) => {
                done.abort();
                Err(e)
            }
            Err(_) => {
                done.abort();
                Err(Error::Query(format!(
                    "no answer within {} s",
                    wait.as_secs()
                )))
            }
        }
    }

    fn begin_session(&self, client: Arc<Client>) -> u64 {
        let generation = self.generations.fetch_add(1, Ordering::SeqCst) + 1;
        *lock(&self.session) = Some(Session {
            client,
            generation,
            name: format!("{}#{generation}", self.instance_id),
            prepared: Arc::default(),
        });
        *lock(&self.last_contact) = Some(Instant::now());
        self.live.send_replace(generation);
        generation
    }

    /// Fence: every hold taken on `generation` is lost from now on.
    fn end_session(&self, generation: u64) {
        let mut session = lock(&self.session);
        if session.as_ref().is_some_and(|s| s.generation == generation) {
            *session = None;
            self.live.send_replace(0);
            lock(&self.held).clear();
        }
    }

    fn current(&self) -> Option<Session> {
        lock(&self.session).clone()
    }

    /// `work` on `session`, given up as soon as the session is no longer live.
    async fn on_session<T>(
        &self,
        session: &Session,
        user_id: &str,
        work: impl Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        self.statements.fetch_add(1, Ordering::Relaxed);
        let mut live = self.live.subscribe();
        let generation = session.generation;
        tokio::select! {
            biased;
            _ = live.wait_for(|g| *g != generation) => Err(Error::Lost { user_id: user_id.to_string() }),
            out = work => Ok(out?),
        }
    }

    /// `sql` prepared on `session`: once per session, so that each later use of it is one
    /// round trip (a statement given as text is prepared again every time, a round trip
    /// more).
    async fn prepared(
        &self,
        session: &Session,
        what: &str,
        sql: &'static str,
    ) -> Result<Statement> {
        if let Some(statement) = lock(&session.prepared).get(sql) {
            return Ok(statement.clone());
        }
        let statement = self
            .on_session(session, what, session.client.prepare(sql))
            .await?;
        lock(&session.prepared).insert(sql, statement.clone());
        Ok(statement)
    }

    /// `sql` on `session`, its rows; `what`: the user or the part of the coordinator it is
    /// for, in errors.
    async fn query(
        &self,
        session: &Session,
        what: &str,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let statement = self.prepared(session, what, sql).await?;
        self.on_session(session, what, session.client.query(&statement, params))
            .await
    }

    /// `sql` on `session`, its one row.
    async fn query_one(
        &self,
        session: &Session,
        what: &str,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row> {
        let statement = self.prepared(session, what, sql).await?;
        self.on_session(session, what, session.client.query_one(&statement, params))
            .await
    }

    /// One statement on the live session (waiting for one), its rows.
    async fn query_now(
        &self,
        what: &str,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let session = self.wait_session(what, Instant::now()).await?;
        self.query(&session, what, sql, params).await
    }

    /// A live session, waiting up to the takeover time for one.
    async fn wait_session(&self, user_id: &str, started: Instant) -> Result<Session> {
        let mut live = self.live.subscribe();
        loop {
            if let Some(session) = self.current() {
                return Ok(session);
            }
            let waited = started.elapsed();
            let Some(left) = self.options.takeover.checked_sub(waited) else {
                return Err(Error::Unavailable {
                    user_id: user_id.to_string(),
                    waited_secs: waited.as_secs(),
                });
            };
            let _ = tokio::time::timeout(left, live.changed()).await;
        }
    }

    /// Take `user_id`'s cluster-wide lock on `session`, naming this session its holder;
    /// whether it was taken over from a holder that never gave it back (the hold then waits
    /// for that holder to have fenced itself before writing: [`UserHold::ready`]). Without
    /// `wait`, `None` when another instance holds the user.
    ///
    /// With `claim` (sources of the user), [`runs::CLAIM`] is sent right behind the lock's
    /// statement, in the same round trip; it claims nothing unless the lock was taken (it
    /// runs after the lock's statement has committed this session's row). Its rows come
    /// back with the lock.
    async fn acquire(
        &self,
        session: &Session,
        user_id: &str,
        wait: bool,
        claim: &[&str],
    ) -> Result<Option<(bool, Option<Vec<Row>>)>> {
        let key = lock_key(user_id);
        let mut waiting_logged = false;
        let mut claim = (!claim.is_empty()).then_some(claim);
        let (previous, claimed) = loop {
            let (row, claimed) = match claim.take() {
                None => (
                    self.query_one(session, user_id, ACQUIRE, &[&key, &user_id, &session.name])
                        .await?,
                    None,
                ),
                Some(sources) => {
                    let acquire = self.prepared(session, user_id, ACQUIRE).await?;
                    let claim = self.prepared(session, user_id, runs::CLAIM).await?;
                    let acquire_params: [&(dyn ToSql + Sync); 3] = [&key, &user_id, &session.name];
                    let claim_params: [&(dyn ToSql + Sync); 3] =
                        [&user_id, &sources, &session.name];
                    let client = &session.client;
                    let (row, rows) = tokio::try_join!(
                        self.on_session(
                            session,
                            user_id,
                            client.query_one(&acquire, &acquire_params)
                        ),
                        self.on_session(session, user_id, client.query(&claim, &claim_params)),
                    )?;
                    (row, Some(rows))
                }
            };
            if row.try_get::<_, bool>(0)? {
                break (row.try_get::<_, Option<String>>(1)?, claimed);
            }
            if !wait {
                return Ok(None);
            }
            if !waiting_logged {
                tracing::debug!(user = user_id, "another instance writes this user; waiting");
                waiting_logged = true;
            }
            tokio::time::sleep(LOCK_POLL.min(self.options.heartbeat_every())).await;
        };
        let taken_over = previous.as_deref().is_some_and(|p| p != session.name);
        if let Some(previous) = previous.filter(|_| taken_over) {
            let wait = self.options.takeover_wait();
            tracing::warn!(
                user = user_id, previous = %previous, wait_ms = wait.as_millis() as u64,
                "taking over a user whose writer never gave it back; waiting for it to have stopped"
            );
        }
        Ok(Some((taken_over, claimed)))
    }

    fn slot(&self, user_id: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        lock(&self.slots)
            .entry(user_id.to_string())
            .or_default()
            .clone()
    }

    /// One hold of `user_id` taken on `generation` was dropped: the last one gives the user
    /// back after [`LINGER`], unless it is taken again meanwhile.
    async fn release(&self, user_id: &str, generation: u64) {
        let slot = self.slot(user_id);
        let epoch = {
            let mut slot = slot.lock().await;
            // A hold of a session that ended counts for nothing: the count restarted with the
            // session that took the lock again.
            if slot.generation != generation || slot.holders == 0 {
                return;
            }
            slot.holders -= 1;
            if slot.holders > 0 {
                return;
            }
            slot.epoch += 1;
            slot.epoch
        };
        tokio::time::sleep(LINGER.min(self.options.takeover / 8)).await;
        let mut slot = slot.lock_owned().await;
        if slot.epoch != epoch || slot.holders > 0 || slot.generation != generation {
            return;
        }
        slot.generation = 0;
        slot.takeover = None;
        slot.writable_at = None;
        lock(&self.held).remove(user_id);
        if self.current().is_none_or(|s| s.generation != generation) {
            return;
        }
        self.releasing.push(Releasing {
            user_id: user_id.to_string(),
            generation,
            _slot: slot,
        });
        self.release_together().await;
    }

    /// Give back the users waiting to be, in one round trip: those given back within
    /// [`GATHER`] of the first, and while the write is under way, go together.
    async fn release_together(&self) {
        // Dropped at the end: the users are not taken again here before they are given back.
        let Some((_writer, waiting)) = self.releasing.gather().await else {
            return;
        };
        // The locks of a session that ended went with it.
        let Some(session) = self.current() else {
            return;
        };
        let users: Vec<&str> = waiting
            .iter()
            .filter(|r| r.generation == session.generation)
            .map(|r| r.user_id.as_str())
            .collect();
        let Some(first) = users.first().copied() else {
            return;
        };
        let keys: Vec<i64> = users.iter().map(|user| lock_key(user)).collect();
        // The rows first: a row left behind only makes the next holder wait and repair (the
        // unlock is not transactional: in one statement, another instance could take a lock
        // before the row's deletion is committed). Both are sent at once (one round trip) and
        // run one after the other, each its own transaction, in the order sent.
        let released = async {
            let forget = self.prepared(&session, first, FORGET_HOLDERS).await?;
            let unlock = self.prepared(&session, first, UNLOCK).await?;
            let client = &session.client;
            let forget_params: [&(dyn ToSql + Sync); 2] = [&users, &session.name];
            let unlock_params: [&(dyn ToSql + Sync); 1] = [&keys];
            tokio::try_join!(
                self.on_session(&session, first, client.execute(&forget, &forget_params)),
                self.on_session(&session, first, client.query(&unlock, &unlock_params)),
            )
        };
        if let Err(e) = released.await {
            tracing::warn!(users = users.len(), error = %e, "could not give users back to the coordinator; they are freed with the session");
        }
    }
}

#[async_trait::async_trait]
impl Coordination for PostgresCoordinator {
    async fn hold(&self, user_id: &str) -> Result<UserHold> {
        let (hold, _) = self
            .hold_user(user_id, true, &[])
            .await?
            .ok_or_else(|| Error::Query("a waiting hold came back empty".into()))?;
        hold.ready().await?;
        Ok(hold)
    }

    async fn publish_source(
        &self,
        user_id: &str,
        source_id: &str,
        entry: Option<&str>,
    ) -> Result<i64> {
        let inner = &self.inner;
        let session = inner.wait_session(user_id, Instant::now()).await?;
        let row = inner
            .query_one(
                &session,
                user_id,
                shared_sources::PUBLISH,
                &[&user_id, &source_id, &entry, &shared_sources::REGISTRY_LOCK],
            )
            .await?;
        if entry.is_none() {
            inner
                .query_one(
                    &session,
                    user_id,
                    runs::FORGET_SOURCE,
                    &[&user_id, &source_id],
                )
                .await?;
        }
        Ok(row.try_get(0)?)
    }

    async fn sources_since(&self, version: i64) -> Result<Vec<SharedSource>> {
        let rows = self
            .inner
            .query_now("(registry)", shared_sources::SINCE, &[&version])
            .await?;
        rows.iter().map(shared_sources::from_row).collect()
    }

    async fn schedule(&self, taking_work: bool) -> Result<ClusterSchedule> {
        let inner = &self.inner;
        let session = inner.wait_session("(schedule)", Instant::now()).await?;
        // Say whether this instance takes work, once per session and change.
        let state = (session.generation, taking_work);
        if *lock(&inner.announced) != Some(state) {
            inner
                .query_one(
                    &session,
                    "(schedule)",
                    ANNOUNCE,
                    &[&session.name, &taking_work],
                )
                .await?;
            *lock(&inner.announced) = Some(state);
        }
        let mut kept = inner.schedule_copy.lock().await;
        let since = match kept.as_ref() {
            Some(copy)
                if copy.generation == session.generation
                    && copy.read_whole_at.elapsed() < WHOLE_READ_EVERY =>
            {
                Some(copy.from_xid)
            }
            _ => None,
        };
        let read_rows = async {
            match since {
                Some(from_xid) => {
                    inner
                        .query(&session, "(schedule)", SCHEDULE_SINCE, &[&from_xid])
                        .await
                }
                None => {
                    inner
                        .query(&session, "(schedule)", SCHEDULE_WHOLE, &[])
                        .await
                }
            }
        };
        // Three statements, sent together: one round trip.
        let held_params: [&(dyn ToSql + Sync); 1] = [&session.name];
        let (rows, writers, live) = tokio::try_join!(
            read_rows,
            inner.query(&session, "(schedule)", HELD_ELSEWHERE, &held_params),
            inner.query_one(&session, "(schedule)", LIVE_INSTANCES, &[]),
        )?;
        let Some(first) = rows.first() else {
            return Err(Error::Query("reading the schedule returned no row".into()));
        };
        let (from_xid, now_ms): (i64, i64) = (first.try_get(0)?, first.try_get(1)?);
        if since.is_none() {
            *kept = None;
        }
        let copy = kept.get_or_insert_with(|| ScheduleCopy {
            generation: session.generation,
            from_xid,
            read_whole_at: Instant::now(),
            rows: Arc::default(),
        });
        copy.from_xid = from_xid;
        let sources = Arc::make_mut(&mut copy.rows);
        for row in &rows {
            // The one row of a reading that found no source has none.
            let Some(user_id) = row.try_get::<_, Option<String>>(2)? else {
                continue;
            };
            sources.entry(user_id).or_default().insert(
                row.try_get(3)?,
                ScheduledSource {
                    next_run_ms: row.try_get(4)?,
                    changed: row.try_get(5)?,
                    running_by: row.try_get(6)?,
                },
            );
        }
        let holders = writers
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<HashMap<String, String>>>()?;
        let live: i64 = live.try_get(0)?;
        Ok(ClusterSchedule {
            live_instances: usize::try_from(live).unwrap_or(1).max(1),
            sources: Arc::clone(&copy.rows),
            now_ms,
            session: session.name.clone(),
            holders,
        })
    }

    async fn claim_runs(&self, user_id: &str, source_ids: &[String]) -> Result<Vec<RunClaim>> {
        let inner = &self.inner;
        // Not the runs this instance has claimed already (nor one twice).
        let wanted: Vec<&str> = {
            let mut claimed = lock(&inner.claimed);
            source_ids
                .iter()
                .filter(|s| claimed.insert((user_id.to_string(), s.to_string())))
                .map(String::as_str)
                .collect()
        };
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        // The user's hold, without waiting: with it, no other instance runs any of the
        // user's sources, so whether they are due cannot change under the runs.
        let claimed = async {
            let Some((hold, claimed)) = self.hold_user(user_id, false, &wanted).await? else {
                return Ok(None);
            };
            let Some(session) = inner
                .current()
                .filter(|s| s.generation == hold.generation())
            else {
                return Ok(None);
            };
            // The due ones, now marked as running here (in the round trip that took the
            // user, when it was taken now).
            let rows = match claimed {
                Some(rows) => rows,
                None => {
                    inner
                        .query(
                            &session,
                            user_id,
                            runs::CLAIM,
                            &[&user_id, &wanted, &session.name],
                        )
                        .await?
                }
            };
            let due = rows
                .iter()
                .map(|row| row.try_get::<_, String>(0))
                .collect::<std::result::Result<BTreeSet<String>, _>>()?;
            Ok(Some((Arc::new(hold), due)))
        };
        let (hold, due) = match claimed.await {
            Ok(Some(claimed)) => claimed,
            other => {
                let mut claimed = lock(&inner.claimed);
                for source in &wanted {
                    claimed.remove(&(user_id.to_string(), source.to_string()));
                }
                return other.map(|_| Vec::new());
            }
        };
        let mut claims = Vec::with_capacity(due.len());
        for source in wanted {
            let run = (user_id.to_string(), source.to_string());
            if !due.contains(source) {
                lock(&inner.claimed).remove(&run);
                continue;
            }
            let forget = {
                let inner = Arc::downgrade(&self.inner);
                move || {
                    if let Some(inner) = inner.upgrade() {
                        lock(&inner.claimed).remove(&run);
                    }
                }
            };
            claims.push(RunClaim {
                user_id: user_id.to_string(),
                source_id: source.to_string(),
                hold: Some(Arc::clone(&hold)),
                on_drop: Some(Box::new(forget)),
            });
        }
        Ok(claims)
    }

    async fn finish_run(
        &self,
        claim: RunClaim,
        next_in: Duration,
        outcome: Option<&RunRecord>,
    ) -> Result<()> {
        let inner = &self.inner;
        // A hold lost with its session: the run stays due, for whoever claims it next.
        let Some(hold) = claim.hold.as_ref().filter(|h| h.is_live()) else {
            return Ok(());
        };
        let (done, written) = oneshot::channel();
        inner.finishing.push(Finishing {
            outcome: Outcome {
                user_id: claim.user_id.clone(),
                source_id: claim.source_id.clone(),
                next_in,
                record: outcome.cloned(),
            },
            generation: hold.generation(),
            written: done,
        });
        // In a task of its own: a caller that stops waiting does not stop the others' write.
        let writer = Arc::clone(inner);
        tokio::spawn(async move { writer.finish_together().await });
        let result = written
            .await
            .unwrap_or_else(|_| Err(Error::Query("the run's end was not written".into())));
        // Dropping the claim (only now: the source is not claimed again before its end is
        // written) gives the user's hold back (after the linger).
        drop(claim);
        result
    }

    async fn record_run(&self, outcome: &RunRecord) -> Result<()> {
        let inner = &self.inner;
        let session = inner.wait_session(&outcome.user_id, Instant::now()).await?;
        let outcome = Outcome {
            user_id: outcome.user_id.clone(),
            source_id: outcome.source_id.clone(),
            next_in: Duration::ZERO,
            record: Some(outcome.clone()),
        };
        inner.record(&session, runs::RECORD, &[outcome]).await
    }

    async fn run_details(&self, sources: &[(String, String)]) -> Result<Vec<ClusterRun>> {
        if sources.is_empty() {
            return Ok(Vec::new());
        }
        let (users, ids): (Vec<&str>, Vec<&str>) = sources
            .iter()
            .map(|(u, s)| (u.as_str(), s.as_str()))
            .unzip();
        let rows = self
            .inner
            .query_now("(runs)", runs::DETAILS, &[&users, &ids])
            .await?;
        rows.iter().map(runs::run_from_row).collect()
    }

    async fn run_history(&self, user_id: &str, keep: usize) -> Result<Vec<String>> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        let rows = self
            .inner
            .query_now(user_id, runs::HISTORY, &[&user_id, &keep])
            .await?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(Error::from))
            .collect()
    }

    fn job_block(&self) -> u64 {
        self.inner.job_block.load(Ordering::Relaxed)
    }

    async fn save_job(&self, id: &str, user_id: &str, finished: bool, body: &str) -> Result<()> {
        let inner = &self.inner;
        let trim = inner
            .records
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(runs::TRIM_EVERY);
        inner
            .query_now(
                user_id,
                runs::SAVE_JOB,
                &[
                    &id,
                    &user_id,
                    &inner.instance_id,
                    &inner.application,
                    &finished,
                    &body,
                    &trim,
                    &runs::JOBS_KEPT_HOURS,
                ],
            )
            .await?;
        Ok(())
    }

    async fn job(&self, id: &str) -> Result<Option<SharedJob>> {
        let rows = self.inner.query_now("(jobs)", runs::JOB, &[&id]).await?;
        rows.first().map(runs::job_from_row).transpose()
    }

    async fn unfinished_jobs(&self, user_id: Option<&str>) -> Result<Vec<SharedJob>> {
        let rows = self
            .inner
            .query_now("(jobs)", runs::UNFINISHED_JOBS, &[&user_id])
            .await?;
        rows.iter().map(runs::job_from_row).collect()
    }

    fn status(&self) -> CoordinatorStatus {
        let inner = &self.inner;
        CoordinatorStatus {
            instance_id: inner.instance_id.clone(),
            reachable: inner.current().is_some(),
            last_contact_ms: lock(&inner.last_contact)
                .map(|at| u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX)),
            users_held: lock(&inner.held).iter().cloned().collect(),
            statements: inner.statements.load(Ordering::Relaxed),
        }
    }
}

fn release_later(inner: Weak<Inner>, user: String, generation: u64) {
    let Some(inner) = inner.upgrade() else {
        return;
    };
    // Outside a runtime (the process is ending) the session's end frees the lock.
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move { inner.release(&user, generation).await });
    }
}

/// Keep the instance's session alive: a heartbeat every `T/20`; no answer for `T/4` (or the
/// connection closed) fences every hold of the session, then a new session is opened.
async fn keep_session(
    inner: Weak<Inner>,
    mut client: Arc<Client>,
    mut done: JoinHandle<()>,
    mut generation: u64,
) {
    loop {
        let mut last_answer = Instant::now();
        loop {
            let Some((every, fence)) = inner
                .upgrade()
                .map(|i| (i.options.heartbeat_every(), i.options.fence_after()))
            else {
                return;
            };
            tokio::select! {
                _ = &mut done => {
                    tracing::warn!("coordinator session closed; writes stop until a new one is open");
                    break;
                }
                () = tokio::time::sleep(every) => {}
            }
            match tokio::time::timeout_at((last_answer + fence).into(), {
                if let Some(i) = inner.upgrade() {
                    i.statements.fetch_add(1, Ordering::Relaxed);
                }
                client.simple_query("SELECT 1")
            })
            .await
            {
                Ok(Ok(_)) => {
                    last_answer = Instant::now();
                    if let Some(i) = inner.upgrade() {
                        *lock(&i.last_contact) = Some(last_answer);
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "coordinator session failed; writes stop until a new one is open");
                    break;
                }
                Err(_) => {
                    tracing::warn!(
                        fence_ms = fence.as_millis() as u64,
                        "no answer from the coordinator: this instance stops writing (another takes its users over)"
                    );
                    break;
                }
            }
        }
        match inner.upgrade() {
            Some(i) => i.end_session(generation),
            None => return,
        }
        done.abort();
        drop(client);
        // Reconnect, trying again every heartbeat.
        loop {
            let Some(i) = inner.upgrade() else {
                return;
            };
            match i.open_session().await {
                Ok((new_client, new_done)) => {
                    generation = i.begin_session(new_client.clone());
                    client = new_client;
                    done = new_done;
                    tracing::info!(generation, "coordinator session open again");
                    break;
                }
                Err(e) => {
                    let every = i.options.heartbeat_every();
                    drop(i);
                    tracing::debug!(error = %e, "coordinator still unreachable");
                    tokio::time::sleep(every.max(Duration::from_millis(500))).await;
                }
            }
        }
    }
}
