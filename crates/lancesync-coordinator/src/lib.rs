//! Coordination of several `sync-server` instances that share one S3 primary: **one writer
//! per user**, cluster-wide, with takeover when the writer dies or is cut off.
//!
//! The cluster's state lives in PostgreSQL ([`PostgresCoordinator`]), behind the small
//! [`Coordination`] trait. No consensus, leases or clocks of lancesync's own:
//!
//! - a user's writer holds a **session-level advisory lock** keyed by the user, on the
//!   instance's one coordinator session. Postgres frees it when that session ends: at once when
//!   the process dies (`kill -9` closes its socket), after the TCP keepalive and user timeouts
//!   the instance sets on its session when the network is cut.
//! - an instance that has not heard from Postgres for a quarter of the takeover time
//!   (**fence**) stops every write it holds: the futures doing them are dropped
//!   ([`UserHold::fenced`]), so nothing more is committed.
//! - a table row names each user's current holder. A new holder that finds another session's
//!   row there (the previous one never released: it died or was cut off) waits **half the
//!   takeover time** before it writes, by which time the previous holder has fenced itself,
//!   and tells the engine to repair what the interrupted write left ([`UserHold::taken_over`]).
//!
//! Timings all follow one setting, the takeover time `T` (`COORDINATOR_TAKEOVER_SECS`):
//! heartbeat every `T/20`, fence after `T/4` without an answer, Postgres drops a dead session
//! within `T/2` (keepalives and `tcp_user_timeout` set on the session), the next holder waits
//! `T/2`: a dead instance's users are written again within `T`.

mod error;
mod postgres;
mod runs;
mod schema;
mod shared_sources;
mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use error::{Error, Result};
use lancesync_config::mask_password;
pub use postgres::PostgresCoordinator;
pub use runs::{ClusterRun, RunRecord, SharedJob};
pub use schema::SCHEMA_VERSION;
use secrecy::{ExposeSecret, SecretString};
pub use shared_sources::SharedSource;
use tokio::sync::watch;

/// How an instance joins the cluster.
#[derive(Clone)]
pub struct CoordinatorOptions {
    /// `COORDINATOR_URL`: `postgres://user:password@host:port/database`.
    pub url: SecretString,
    /// `COORDINATOR_TAKEOVER_SECS`: how long a dead or cut-off instance's users wait before
    /// another instance writes them.
    pub takeover: Duration,
    /// This instance's name in the cluster (host name and process id when `None`).
    pub instance_id: Option<String>,
    /// `COORDINATOR_CA_FILE`: with `sslmode=require`, the authorities PostgreSQL's
    /// certificate must chain to (the system's roots when `None`).
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for CoordinatorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorOptions")
            .field("url", &mask_password(self.url.expose_secret()))
            .field("takeover", &self.takeover)
            .field("instance_id", &self.instance_id)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl CoordinatorOptions {
    /// Options for `url` with the default takeover time (60 s).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: SecretString::from(url.into()),
            takeover: DEFAULT_TAKEOVER,
            instance_id: None,
            ca_file: None,
        }
    }

    /// Fence: an instance that heard nothing from Postgres for this long stops writing.
    pub fn fence_after(&self) -> Duration {
        self.takeover / 4
    }

    /// How long a new holder waits after taking a user from a holder that never released it.
    pub fn takeover_wait(&self) -> Duration {
        self.takeover / 2
    }

    /// How often the instance checks that its session is alive.
    pub fn heartbeat_every(&self) -> Duration {
        (self.takeover / 20).max(Duration::from_millis(50))
    }
}

/// The default takeover time.
pub const DEFAULT_TAKEOVER: Duration = Duration::from_secs(60);

/// What `/health` shows of the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorStatus {
    /// This instance's name in the cluster.
    pub instance_id: String,
    /// Whether the instance's session to Postgres answers now.
    pub reachable: bool,
    /// Milliseconds since Postgres last answered; `None` before it ever did.
    pub last_contact_ms: Option<u64>,
    /// The users whose writes this instance holds now.
    pub users_held: Vec<String>,
    /// Statements sent to the coordinator so far (heartbeats and preparations included).
    pub statements: u64,
}

/// A cluster-wide coordinator of writers.
#[async_trait::async_trait]
pub trait Coordination: Send + Sync + std::fmt::Debug {
    /// Wait until this instance may write `user_id`'s tables (a user taken over from a
    /// holder that never gave it back: until that holder has stopped), and hold that until the
    /// returned hold (and every other hold of the user in this instance) is dropped. Holds of
    /// one user in one instance share the cluster-wide lock.
    async fn hold(&self, user_id: &str) -> Result<UserHold>;

    /// The coordinator as `/health` shows it.
    fn status(&self) -> CoordinatorStatus;

    /// Share one source entry of a user with every instance (`entry`: the source as
    /// `sources.toml` stores it), or its removal (`None`). Returns the change's version.
    async fn publish_source(
        &self,
        user_id: &str,
        source_id: &str,
        entry: Option<&str>,
    ) -> Result<i64>;

    /// Every source entry changed after `version` (0: all), oldest change first.
    async fn sources_since(&self, version: i64) -> Result<Vec<SharedSource>>;

    /// When each source runs next, and which users another instance holds now (one round
    /// trip; only the schedule's rows written since the last call are read, the whole table
    /// now and then); `taking_work`: whether this instance runs scheduled work now (its pipeline is started),
    /// so that the others count it in [`ClusterSchedule::live_instances`].
    async fn schedule(&self, taking_work: bool) -> Result<ClusterSchedule>;

    /// Claim the runs of those of a user's sources that are due, in one statement: none when
    /// another instance holds the user now, and none of the sources not due (or claimed by
    /// this instance already). The claims hold the user, so no other instance runs any of the
    /// user's sources meanwhile. A user taken over may be written only once
    /// [`RunClaim::ready`]. Call [`Coordination::finish_run`] once each run ends; a claim
    /// dropped without leaves its source due.
    async fn claim_runs(&self, user_id: &str, source_ids: &[String]) -> Result<Vec<RunClaim>>;

    /// [`Coordination::claim_runs`] of one source: `None` when it is not claimed.
    async fn claim_run(&self, user_id: &str, source_id: &str) -> Result<Option<RunClaim>> {
        Ok(self
            .claim_runs(user_id, &[source_id.to_string()])
            .await?
            .pop())
    }

    /// The claimed run ended (`outcome`, unless it was skipped): the source is due again in
    /// `next_in`. Runs that end together are written together (one statement while the
    /// previous one is under way), so it returns once the run's end is written.
    async fn finish_run(
        &self,
        claim: RunClaim,
        next_in: Duration,
        outcome: Option<&RunRecord>,
    ) -> Result<()>;

    /// A run outside the schedule (a scan on request) ended: record its outcome.
    async fn record_run(&self, outcome: &RunRecord) -> Result<()>;

    /// The cluster's record of the given (user, source) runs; sources never run are left out.
    async fn run_details(&self, sources: &[(String, String)]) -> Result<Vec<ClusterRun>>;

    /// A user's run history (each run's line as recorded), oldest first, the newest `keep`
    /// of each source.
    async fn run_history(&self, user_id: &str, keep: usize) -> Result<Vec<String>>;

    /// This instance's block of job numbers: its jobs are numbered from
    /// `block × 1,000,000,000`, so that ids are unique cluster-wide.
    fn job_block(&self) -> u64;

    /// Save a job's state (`body`: the job as the API shows it).
    async fn save_job(&self, id: &str, user_id: &str, finished: bool, body: &str) -> Result<()>;

    /// A job, whichever instance runs it.
    async fn job(&self, id: &str) -> Result<Option<SharedJob>>;

    /// The unfinished jobs of one user (or of all), whichever instance runs them.
    async fn unfinished_jobs(&self, user_id: Option<&str>) -> Result<Vec<SharedJob>>;
}

/// The cluster's schedule as one instance reads it, looked up by user and source. Cheap to
/// make at any size: the sources' rows are shared with the coordinator's copy of the table.
#[derive(Debug, Clone, Default)]
pub struct ClusterSchedule {
    /// Instances that take scheduled work now, alive (this one included when it does).
    pub live_instances: usize,
    /// user → source → its row.
    pub(crate) sources: std::sync::Arc<ScheduleRows>,
    /// The server's time at the reading, ms since the epoch.
    pub(crate) now_ms: i64,
    /// The session this instance read it on.
    pub(crate) session: String,
    /// user → the live session (another one) holding it.
    pub(crate) holders: std::collections::HashMap<String, String>,
}

/// The schedule's rows: user → source → row.
pub(crate) type ScheduleRows =
    std::collections::HashMap<String, std::collections::HashMap<String, ScheduledSource>>;

/// One source's row of the schedule.
#[derive(Debug, Clone)]
pub(crate) struct ScheduledSource {
    /// Its next time, ms since the epoch on the server's clock.
    pub(crate) next_run_ms: i64,
    /// The version of its recorded outcome.
    pub(crate) changed: i64,
    /// The session running it, if one is.
    pub(crate) running_by: Option<String>,
}

impl ClusterSchedule {
    fn row(&self, user_id: &str, source_id: &str) -> Option<&ScheduledSource> {
        self.sources.get(user_id)?.get(source_id)
    }

    /// Time until the source is due: zero when it is, or when it never ran (it has no row).
    pub fn due_in(&self, user_id: &str, source_id: &str) -> Duration {
        self.row(user_id, source_id).map_or(Duration::ZERO, |row| {
            Duration::from_millis(u64::try_from(row.next_run_ms - self.now_ms).unwrap_or(0))
        })
    }

    /// How long the source has been due, when it is past its time (`None` when it is not,
    /// or never ran).
    pub fn overdue(&self, user_id: &str, source_id: &str) -> Option<Duration> {
        let row = self.row(user_id, source_id)?;
        (row.next_run_ms < self.now_ms)
            .then(|| Duration::from_millis((self.now_ms - row.next_run_ms).unsigned_abs()))
    }

    /// Whether the source has run (or been claimed) somewhere: it has a row.
    pub fn has_run(&self, user_id: &str, source_id: &str) -> bool {
        self.row(user_id, source_id).is_some()
    }

    /// The version of the source's recorded outcome: it grows with every change, so an
    /// instance fetches [`Coordination::run_details`] only for what changed.
    pub fn changed(&self, user_id: &str, source_id: &str) -> Option<i64> {
        self.row(user_id, source_id).map(|row| row.changed)
    }

    /// The instance running the source now, when that is another live instance.
    pub fn running_elsewhere(&self, user_id: &str, source_id: &str) -> Option<&str> {
        let running_by = self.row(user_id, source_id)?.running_by.as_deref()?;
        if running_by == self.session
            || self.holders.get(user_id).map(String::as_str) != Some(running_by)
        {
            return None;
        }
        // The session's name is the instance's and a generation number.
        Some(
            running_by
                .rsplit_once('#')
                .map_or(running_by, |(instance, _)| instance),
        )
    }

    /// Whether another instance holds the user now: its due runs are best left to that
    /// instance (this one would wait for the user).
    pub fn is_held_elsewhere(&self, user_id: &str) -> bool {
        self.holders.contains_key(user_id)
    }

    /// The users other instances hold now.
    pub fn users_held_elsewhere(&self) -> impl Iterator<Item = &str> {
        self.holders.keys().map(String::as_str)
    }

    /// How many sources have rows.
    pub fn len(&self) -> usize {
        self.sources
            .values()
            .map(std::collections::HashMap::len)
            .sum()
    }

    /// Whether no source has a row.
    pub fn is_empty(&self) -> bool {
        self.sources
            .values()
            .all(std::collections::HashMap::is_empty)
    }
}

/// This instance's claim on one run of a source (see [`Coordination::claim_runs`]).
/// It holds the user (as [`Coordination::hold`] does) until dropped.
pub struct RunClaim {
    /// User.
    pub user_id: String,
    /// Source.
    pub source_id: String,
    /// The user's hold, shared by the claims made together.
    pub(crate) hold: Option<std::sync::Arc<UserHold>>,
    pub(crate) on_drop: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl std::fmt::Debug for RunClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunClaim")
            .field("user_id", &self.user_id)
            .field("source_id", &self.source_id)
            .finish_non_exhaustive()
    }
}

impl RunClaim {
    /// How long until the claimed user may be written (a user taken over from a holder that
    /// never gave it back); `None` when it may be now.
    pub fn ready_in(&self) -> Option<Duration> {
        self.hold.as_deref().and_then(UserHold::ready_in)
    }

    /// Wait until the claimed user may be written; [`Error::Lost`] if the claim is lost
    /// meanwhile.
    pub async fn ready(&self) -> Result<()> {
        match &self.hold {
            Some(hold) => hold.ready().await,
            None => Ok(()),
        }
    }
}

impl Drop for RunClaim {
    fn drop(&mut self) {
        if let Some(give_back) = self.on_drop.take() {
            give_back();
        }
    }
}

/// Permission to write one user's tables. Dropping it gives the permission back (once the
/// instance's other holds of the user are dropped too).
pub struct UserHold {
    user_id: String,
    takeover: Option<u64>,
    writable_at: Option<std::time::Instant>,
    generation: u64,
    live: watch::Receiver<u64>,
    on_drop: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl std::fmt::Debug for UserHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserHold")
            .field("user_id", &self.user_id)
            .field("takeover", &self.takeover)
            .field("generation", &self.generation)
            .finish()
    }
}

impl UserHold {
    /// A hold of a coordinator whose live session is `generation` as long as `live` says so;
    /// `takeover`: the id of the taking of the user from a holder that never gave it back,
    /// when it was so taken; `on_drop` gives it back.
    pub fn new(
        user_id: &str,
        takeover: Option<u64>,
        generation: u64,
        live: watch::Receiver<u64>,
        on_drop: Box<dyn FnOnce() + Send + Sync>,
    ) -> Self {
        Self {
            user_id: user_id.to_string(),
            takeover,
            writable_at: None,
            generation,
            live,
            on_drop: Some(on_drop),
        }
    }

    /// The same hold, writable only from `at` (a user taken over: the previous holder has
    /// stopped writing by then).
    pub fn writable_at(mut self, at: Option<std::time::Instant>) -> Self {
        self.writable_at = at;
        self
    }

    /// How long until the user may be written; `None` when it may be now.
    pub fn ready_in(&self) -> Option<Duration> {
        self.writable_at
            .and_then(|at| at.checked_duration_since(std::time::Instant::now()))
            .filter(|left| !left.is_zero())
    }

    /// Wait until the user may be written; [`Error::Lost`] if the hold is lost meanwhile.
    pub async fn ready(&self) -> Result<()> {
        let Some(left) = self.ready_in() else {
            return if self.is_live() {
                Ok(())
            } else {
                Err(self.lost())
            };
        };
        self.fenced(tokio::time::sleep(left)).await
    }

    /// The user held.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The previous holder never gave the user back (it died or was cut off during a write):
    /// what it left half-written must be repaired before writing.
    pub fn taken_over(&self) -> bool {
        self.takeover.is_some()
    }

    /// Which taking over this hold shares (every hold of the user in this instance does,
    /// until the instance gives the user back): repair once per id.
    pub fn takeover_id(&self) -> Option<u64> {
        self.takeover
    }

    /// The coordinator session the hold was taken on.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the hold still stands (the session it was taken on is alive).
    pub fn is_live(&self) -> bool {
        *self.live.borrow() == self.generation
    }

    /// Run `work`, dropping it (so it writes nothing more) as soon as the hold is lost;
    /// [`Error::Lost`] then.
    pub async fn fenced<F: Future>(&self, work: F) -> Result<F::Output> {
        let mut live = self.live.clone();
        let generation = self.generation;
        tokio::select! {
            biased;
            _ = live.wait_for(|g| *g != generation) => Err(self.lost()),
            out = work => {
                // Finished: but if the hold was lost meanwhile, what it wrote may have raced
                // another holder's writes; say so rather than report success.
                if self.is_live() { Ok(out) } else { Err(self.lost()) }
            }
        }
    }

    /// [`Error::Lost`] for this hold's user.
    pub fn lost(&self) -> Error {
        Error::Lost {
            user_id: self.user_id.clone(),
        }
    }
}

impl Drop for UserHold {
    fn drop(&mut self) {
        if let Some(give_back) = self.on_drop.take() {
            give_back();
        }
    }
}

/// A coordinator shared by the engine and the server.
pub type SharedCoordinator = Arc<dyn Coordination>;

/// Join the coordinator `COORDINATOR_URL` names (with `COORDINATOR_TAKEOVER_SECS`); `None`
/// without one. What `sync-server` and `sync-cli`'s writing commands do at start.
pub async fn from_settings(
    settings: &lancesync_config::Settings,
) -> Result<Option<SharedCoordinator>> {
    let Some(url) = &settings.cluster.coordinator_url else {
        return Ok(None);
    };
    let options = CoordinatorOptions {
        url: url.clone(),
        takeover: settings.cluster.takeover,
        instance_id: None,
        ca_file: settings.cluster.ca_file.clone(),
    };
    let coordinator = PostgresCoordinator::connect(options).await?;
    Ok(Some(Arc::new(coordinator)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_follow_the_takeover_time() {
        let options = CoordinatorOptions {
            takeover: Duration::from_secs(60),
            ..CoordinatorOptions::new("postgres://localhost/db")
        };
        assert_eq!(options.fence_after(), Duration::from_secs(15));
        assert_eq!(options.takeover_wait(), Duration::from_secs(30));
        assert_eq!(options.heartbeat_every(), Duration::from_secs(3));
        // The cut-off holder fences itself before the next holder may write.
        assert!(options.fence_after() < options.takeover_wait());
        let with_password = CoordinatorOptions::new("postgres://sync:s3cret@db/lancesync");
        let shown = format!("{with_password:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("sync:****@db"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn a_lost_hold_stops_its_work() {
        let (tx, rx) = watch::channel(1);
        let hold = UserHold::new("alice", None, 1, rx, Box::new(|| {}));
        assert!(hold.fenced(async { 5 }).await.is_ok());
        let work = hold.fenced(std::future::pending::<()>());
        let lose = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(0).unwrap();
        };
        let (out, ()) = tokio::join!(work, lose);
        assert!(matches!(out, Err(Error::Lost { user_id }) if user_id == "alice"));
        assert!(!hold.is_live());
    }
}
