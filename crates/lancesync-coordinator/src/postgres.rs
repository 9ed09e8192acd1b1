//! [`Coordination`] over PostgreSQL: one session per instance, session-level advisory locks
//! per user, a heartbeat that fences the instance when the session stops answering, and a
//! reconnecting loop.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};

use crate::{
    Coordination, CoordinatorOptions, CoordinatorStatus, Error, Result, RunClaim, SharedSource,
    UserHold, masked_url, schema, shared_sources,
};

/// How often a waiting instance asks again for a user another instance holds.
const LOCK_POLL: Duration = Duration::from_millis(200);

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
    instance_id: String,
    url_shown: String,
    /// The live session, `None` while reconnecting.
    session: Mutex<Option<Session>>,
    /// The live session's generation, 0 while there is none: holds watch it to fence.
    live: watch::Sender<u64>,
    generations: AtomicU64,
    last_contact: Mutex<Option<Instant>>,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
    held: Mutex<BTreeSet<String>>,
    /// Runs this instance has claimed (session locks are re-entrant: the set, not the lock,
    /// keeps one instance from claiming a run twice).
    claimed: Mutex<BTreeSet<(String, String)>>,
}

#[derive(Clone)]
struct Session {
    client: Arc<Client>,
    generation: u64,
    /// This session's name in `lancesync_writers.holder`.
    name: String,
}

/// One user's holds in this instance.
#[derive(Default)]
struct Slot {
    holders: usize,
    /// The session the cluster-wide lock was taken on; 0 when not held.
    generation: u64,
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

/// The advisory lock key of a source's runs.
fn run_key(user_id: &str, source_id: &str) -> i64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"lancesync-run\0");
    hasher.update(user_id.as_bytes());
    hasher.update(b"\0");
    hasher.update(source_id.as_bytes());
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
        let url_shown = masked_url(options.url.expose_secret());
        let mut config: Config = options.url.expose_secret().parse().map_err(|_| {
            Error::BadUrl(format!(
                "={url_shown} is not a PostgreSQL URL (postgres://user:password@host:port/database)"
            ))
        })?;
        if config.get_ssl_mode() == SslMode::Require {
            return Err(Error::BadUrl(format!(
                "={url_shown} asks for TLS (sslmode=require), which this build does not speak yet: use sslmode=disable on a private network, or a TLS sidecar on loopback"
            )));
        }
        let instance_id = options
            .instance_id
            .clone()
            .unwrap_or_else(default_instance_id);
        let takeover = options.takeover;
        // The client side of a cut: connection attempts and dead sockets give up in time.
        config
            .application_name(format!("lancesync:{instance_id}"))
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
            instance_id,
            url_shown,
            session: Mutex::new(None),
            live,
            generations: AtomicU64::new(0),
            last_contact: Mutex::new(None),
            slots: Mutex::default(),
            held: Mutex::default(),
            claimed: Mutex::default(),
        });
        let (client, done) = inner.open_session().await.map_err(|e| match e {
            Error::Query(reason) => Error::Unreachable {
                url: inner.url_shown.clone(),
                reason,
            },
            other => other,
        })?;
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
}

impl Inner {
    /// A new session: connected, its server-side timeouts set, the schema checked.
    async fn open_session(&self) -> Result<(Arc<Client>, JoinHandle<()>)> {
        let connect = self.config.connect(NoTls);
        let wait = self.options.fence_after().max(Duration::from_secs(1));
        let (mut client, connection) = tokio::time::timeout(wait, connect)
            .await
            .map_err(|_| Error::Query(format!("no answer within {} s", wait.as_secs())))??;
        let done = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "coordinator connection ended");
            }
        });
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

    fn is_live(&self, generation: u64) -> bool {
        *self.live.borrow() == generation
    }

    /// `work` on `session`, given up as soon as the session is no longer live.
    async fn on_session<T>(
        &self,
        session: &Session,
        user_id: &str,
        work: impl Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        let mut live = self.live.subscribe();
        let generation = session.generation;
        tokio::select! {
            biased;
            _ = live.wait_for(|g| *g != generation) => Err(Error::Lost { user_id: user_id.to_string() }),
            out = work => Ok(out?),
        }
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

    /// Take `user_id`'s cluster-wide lock on `session`; whether it was taken over from a
    /// holder that never gave it back (after waiting for that holder to have fenced itself).
    async fn acquire(&self, session: &Session, user_id: &str) -> Result<bool> {
        let key = lock_key(user_id);
        let client = &session.client;
        let mut waiting_logged = false;
        loop {
            let got: bool = self
                .on_session(
                    session,
                    user_id,
                    client.query_one("SELECT pg_try_advisory_lock($1)", &[&key]),
                )
                .await?
                .get(0);
            if got {
                break;
            }
            if !waiting_logged {
                tracing::debug!(user = user_id, "another instance writes this user; waiting");
                waiting_logged = true;
            }
            tokio::time::sleep(LOCK_POLL.min(self.options.heartbeat_every())).await;
        }
        let result = self.claim(session, user_id).await;
        if result.is_err() && self.is_live(session.generation) {
            // Do not keep a lock nobody will give back.
            let _ = self
                .on_session(
                    session,
                    user_id,
                    client.query_one("SELECT pg_advisory_unlock($1)", &[&key]),
                )
                .await;
        }
        result
    }

    /// With the lock taken: wait out a previous holder that never gave the user back, then
    /// record this session as the holder.
    async fn claim(&self, session: &Session, user_id: &str) -> Result<bool> {
        let client = &session.client;
        let previous: Option<String> = self
            .on_session(
                session,
                user_id,
                client.query_opt(
                    "SELECT holder FROM lancesync_writers WHERE user_id = $1",
                    &[&user_id],
                ),
            )
            .await?
            .map(|row| row.get(0));
        let taken_over = previous.as_deref().is_some_and(|p| p != session.name);
        if let Some(previous) = previous.filter(|_| taken_over) {
            let wait = self.options.takeover_wait();
            tracing::warn!(
                user = user_id, previous = %previous, wait_ms = wait.as_millis() as u64,
                "taking over a user whose writer never gave it back; waiting for it to have stopped"
            );
            let mut live = self.live.subscribe();
            let generation = session.generation;
            tokio::select! {
                biased;
                _ = live.wait_for(|g| *g != generation) => {
                    return Err(Error::Lost { user_id: user_id.to_string() });
                }
                () = tokio::time::sleep(wait) => {}
            }
        }
        self.on_session(
            session,
            user_id,
            client.execute(
                "INSERT INTO lancesync_writers (user_id, holder) VALUES ($1, $2) \
                 ON CONFLICT (user_id) DO UPDATE SET holder = EXCLUDED.holder, since = now()",
                &[&user_id, &session.name],
            ),
        )
        .await?;
        Ok(taken_over)
    }

    fn slot(&self, user_id: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        lock(&self.slots)
            .entry(user_id.to_string())
            .or_default()
            .clone()
    }

    /// One hold of `user_id` taken on `generation` was dropped.
    async fn release(&self, user_id: &str, generation: u64) {
        let slot = self.slot(user_id);
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
        slot.generation = 0;
        lock(&self.held).remove(user_id);
        let Some(session) = self.current().filter(|s| s.generation == generation) else {
            return;
        };
        // The row first: a row left behind only makes the next holder wait and repair.
        let client = &session.client;
        let released = async {
            self.on_session(
                &session,
                user_id,
                client.execute(
                    "DELETE FROM lancesync_writers WHERE user_id = $1 AND holder = $2",
                    &[&user_id, &session.name],
                ),
            )
            .await?;
            self.on_session(
                &session,
                user_id,
                client.query_one("SELECT pg_advisory_unlock($1)", &[&lock_key(user_id)]),
            )
            .await
        };
        if let Err(e) = released.await {
            tracing::warn!(user = user_id, error = %e, "could not give a user back to the coordinator; it is freed with the session");
        }
    }
}

#[async_trait::async_trait]
impl Coordination for PostgresCoordinator {
    async fn hold(&self, user_id: &str) -> Result<UserHold> {
        let inner = &self.inner;
        let started = Instant::now();
        let slot = inner.slot(user_id);
        let mut slot = slot.lock().await;
        loop {
            let session = inner.wait_session(user_id, started).await?;
            let taken_over = if slot.holders > 0 && slot.generation == session.generation {
                slot.holders += 1;
                false
            } else {
                match inner.acquire(&session, user_id).await {
                    Ok(taken_over) => {
                        slot.holders = 1;
                        slot.generation = session.generation;
                        lock(&inner.held).insert(user_id.to_string());
                        taken_over
                    }
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
            return Ok(UserHold::new(
                user_id,
                taken_over,
                session.generation,
                inner.live.subscribe(),
                Box::new(give_back),
            ));
        }
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
            .on_session(
                &session,
                user_id,
                session.client.query_one(
                    shared_sources::PUBLISH,
                    &[&user_id, &source_id, &entry, &shared_sources::REGISTRY_LOCK],
                ),
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn sources_since(&self, version: i64) -> Result<Vec<SharedSource>> {
        let inner = &self.inner;
        let session = inner.wait_session("(registry)", Instant::now()).await?;
        let rows = inner
            .on_session(
                &session,
                "(registry)",
                session.client.query(shared_sources::SINCE, &[&version]),
            )
            .await?;
        rows.iter().map(shared_sources::from_row).collect()
    }

    async fn schedule(&self) -> Result<HashMap<(String, String), Duration>> {
        let inner = &self.inner;
        let session = inner.wait_session("(schedule)", Instant::now()).await?;
        let rows = inner
            .on_session(
                &session,
                "(schedule)",
                session.client.query(
                    "SELECT user_id, source_id, \
                     greatest(0, extract(epoch FROM next_run_at - now()) * 1000)::bigint \
                     FROM lancesync_schedule",
                    &[],
                ),
            )
            .await?;
        rows.iter()
            .map(|row| {
                let ms: i64 = row.try_get(2)?;
                Ok((
                    (row.try_get(0)?, row.try_get(1)?),
                    Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
                ))
            })
            .collect()
    }

    async fn claim_run(&self, user_id: &str, source_id: &str) -> Result<Option<RunClaim>> {
        let inner = &self.inner;
        let run = (user_id.to_string(), source_id.to_string());
        if !lock(&inner.claimed).insert(run.clone()) {
            return Ok(None);
        }
        let claimed = async {
            let session = inner.wait_session(user_id, Instant::now()).await?;
            let key = run_key(user_id, source_id);
            let client = &session.client;
            let got: bool = inner
                .on_session(
                    &session,
                    user_id,
                    client.query_one("SELECT pg_try_advisory_lock($1)", &[&key]),
                )
                .await?
                .try_get(0)?;
            if !got {
                return Ok(None);
            }
            let due: Option<bool> = inner
                .on_session(
                    &session,
                    user_id,
                    client.query_opt(
                        "SELECT next_run_at <= now() FROM lancesync_schedule \
                         WHERE user_id = $1 AND source_id = $2",
                        &[&user_id, &source_id],
                    ),
                )
                .await?
                .map(|row| row.try_get(0))
                .transpose()?;
            if due == Some(false) {
                inner
                    .on_session(
                        &session,
                        user_id,
                        client.query_one("SELECT pg_advisory_unlock($1)", &[&key]),
                    )
                    .await?;
                return Ok(None);
            }
            Ok(Some(session.generation))
        };
        match claimed.await {
            Ok(Some(generation)) => {
                let give_back = {
                    let inner = Arc::downgrade(&self.inner);
                    move || release_run_later(inner, run, generation)
                };
                Ok(Some(RunClaim {
                    user_id: user_id.to_string(),
                    source_id: source_id.to_string(),
                    generation,
                    on_drop: Some(Box::new(give_back)),
                }))
            }
            other => {
                lock(&inner.claimed).remove(&run);
                other.map(|_| None)
            }
        }
    }

    async fn finish_run(&self, mut claim: RunClaim, next_in: Duration) -> Result<()> {
        claim.on_drop = None;
        let inner = &self.inner;
        let run = (claim.user_id.clone(), claim.source_id.clone());
        let finished = async {
            // A session that ended took the lock with it: the run stays due, for whoever
            // claims it next.
            let Some(session) = inner.current().filter(|s| s.generation == claim.generation) else {
                return Ok(());
            };
            let client = &session.client;
            inner
                .on_session(
                    &session,
                    &claim.user_id,
                    client.execute(
                        "INSERT INTO lancesync_schedule (user_id, source_id, next_run_at, last_run_by) \
                         VALUES ($1, $2, now() + make_interval(secs => $3), $4) \
                         ON CONFLICT (user_id, source_id) DO UPDATE SET \
                         next_run_at = EXCLUDED.next_run_at, last_run_by = EXCLUDED.last_run_by",
                        &[
                            &claim.user_id,
                            &claim.source_id,
                            &next_in.as_secs_f64(),
                            &session.name,
                        ],
                    ),
                )
                .await?;
            inner
                .on_session(
                    &session,
                    &claim.user_id,
                    client.query_one(
                        "SELECT pg_advisory_unlock($1)",
                        &[&run_key(&claim.user_id, &claim.source_id)],
                    ),
                )
                .await?;
            Ok(())
        };
        let result = finished.await;
        lock(&inner.claimed).remove(&run);
        result
    }

    fn status(&self) -> CoordinatorStatus {
        let inner = &self.inner;
        CoordinatorStatus {
            instance_id: inner.instance_id.clone(),
            reachable: inner.current().is_some(),
            last_contact_ms: lock(&inner.last_contact)
                .map(|at| u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX)),
            users_held: lock(&inner.held).iter().cloned().collect(),
            url: inner.url_shown.clone(),
        }
    }
}

/// A claimed run dropped without finishing: the lock is given back, the source stays due.
fn release_run_later(inner: Weak<Inner>, run: (String, String), generation: u64) {
    let Some(inner) = inner.upgrade() else {
        return;
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        if let Some(session) = inner.current().filter(|s| s.generation == generation) {
            let key = run_key(&run.0, &run.1);
            let _ = inner
                .on_session(
                    &session,
                    &run.0,
                    session
                        .client
                        .query_one("SELECT pg_advisory_unlock($1)", &[&key]),
                )
                .await;
        }
        lock(&inner.claimed).remove(&run);
    });
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
            match tokio::time::timeout_at(
                (last_answer + fence).into(),
                client.simple_query("SELECT 1"),
            )
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
