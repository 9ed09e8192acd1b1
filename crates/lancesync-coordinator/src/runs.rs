//! Run state and jobs shared by the instances, so that any instance answers for a source's
//! runs and for a job as the instance that ran it would: the last outcome of each source (on
//! its schedule row), the history of runs, and the jobs with their progress.

use crate::{Error, Result};

/// A run's outcome, as the cluster records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// User.
    pub user_id: String,
    /// Source.
    pub source_id: String,
    /// When it finished (RFC 3339).
    pub finished_at: String,
    /// The run's report (JSON), when it succeeded.
    pub report: Option<String>,
    /// The run's line in the history (JSON), when it succeeded.
    pub summary: Option<String>,
    /// Why it failed as a whole.
    pub error: Option<String>,
}

/// A source's runs as the cluster knows them (the whole cluster's, not one instance's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRun {
    /// User.
    pub user_id: String,
    /// Source.
    pub source_id: String,
    /// Runs recorded, cluster-wide.
    pub runs: i64,
    /// When the last one finished (RFC 3339).
    pub last_run_at: Option<String>,
    /// The last successful run's report (JSON).
    pub last_report: Option<String>,
    /// The last run's error, when it failed as a whole.
    pub last_error: Option<String>,
}

/// A job as the cluster stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedJob {
    /// Id.
    pub id: String,
    /// User.
    pub user_id: String,
    /// Whether it is over.
    pub finished: bool,
    /// The job as the API shows it (JSON).
    pub body: String,
    /// The instance that runs (or ran) it.
    pub instance_id: String,
    /// Whether that instance is alive (its session to Postgres is open): an unfinished job
    /// of a dead instance never finishes.
    pub instance_alive: bool,
}

/// Runs kept per source in the shared history (as many as one instance keeps on disk).
pub(crate) const RUNS_KEPT: usize = 500;

/// Trim a source's history (and old finished jobs) once every this many records.
pub(crate) const TRIM_EVERY: u64 = 64;

/// Finished jobs are forgotten after this long.
pub(crate) const JOBS_KEPT_HOURS: i32 = 24;

/// Mark the due ones among a user's sources (`$1` the user, `$2` the sources, distinct) as
/// running on this session (`$3`), in the statement that checks they are due: a row for each
/// source claimed. A source never scheduled is due. Nothing unless this session is the
/// user's writer (its row is written only with the user's lock).
pub(crate) const CLAIM: &str = "
    INSERT INTO lancesync_schedule (user_id, source_id, next_run_at, last_run_by, running_by, changed)
    SELECT $1, wanted.source_id, now(), $3, $3, nextval('lancesync_schedule_change')
    FROM unnest($2::text[]) AS wanted (source_id)
    WHERE EXISTS (SELECT 1 FROM lancesync_writers AS w WHERE w.user_id = $1 AND w.holder = $3)
    ON CONFLICT (user_id, source_id) DO UPDATE SET
        running_by = EXCLUDED.running_by, changed = EXCLUDED.changed
    WHERE lancesync_schedule.next_run_at <= now()
    RETURNING source_id";

/// Runs' outcomes, one row each from the arrays `$1`..`$9` (distinct sources), [`FINISH`] and
/// [`RECORD`] differing only in what else a conflict updates: `$1` user, `$2` source, `$3`
/// seconds to the next time of a new row, `$4` runs (0 or 1), `$5` finished at, `$6` report,
/// `$7` error, `$8` history line, `$9` whether to trim the source's history; `$10` the
/// session, `$11` runs kept.
macro_rules! outcome_sql {
    ($schedule_update:literal) => {
        concat!(
            "WITH i AS (
                SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::bigint[],
                    $5::text[], $6::text[], $7::text[], $8::text[], $9::bool[])
                AS i (user_id, source_id, secs, runs, finished_at, report, error, summary, trim_history)),
            s AS (
                INSERT INTO lancesync_schedule (user_id, source_id, last_run_by, changed, runs,
                    last_run_at, last_report, last_error, running_by, next_run_at)
                SELECT i.user_id, i.source_id, $10, nextval('lancesync_schedule_change'), i.runs,
                    i.finished_at, i.report, i.error, NULL, now() + make_interval(secs => i.secs)
                FROM i
                ON CONFLICT (user_id, source_id) DO UPDATE SET
                    last_run_by = EXCLUDED.last_run_by,
                    changed = EXCLUDED.changed,
                    runs = lancesync_schedule.runs + EXCLUDED.runs,
                    last_run_at = coalesce(EXCLUDED.last_run_at, lancesync_schedule.last_run_at),
                    last_report = CASE WHEN EXCLUDED.runs > 0 AND EXCLUDED.last_error IS NULL
                        THEN EXCLUDED.last_report ELSE lancesync_schedule.last_report END,
                    last_error = CASE WHEN EXCLUDED.runs > 0 THEN EXCLUDED.last_error
                        ELSE lancesync_schedule.last_error END", $schedule_update, "
                RETURNING 1),
            h AS (
                INSERT INTO lancesync_runs (user_id, source_id, summary, instance)
                SELECT i.user_id, i.source_id, i.summary, $10 FROM i WHERE i.summary IS NOT NULL
                RETURNING 1),
            t AS (
                DELETE FROM lancesync_runs AS r USING i
                WHERE i.trim_history AND r.user_id = i.user_id AND r.source_id = i.source_id
                AND r.id <= (SELECT k.id FROM lancesync_runs AS k
                             WHERE k.user_id = i.user_id AND k.source_id = i.source_id
                             ORDER BY k.id DESC OFFSET $11 LIMIT 1)
                RETURNING 1)
            SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM h), (SELECT count(*) FROM t)"
        )
    };
}

/// Claimed runs ended: their outcomes, and each source's next time (`$3` seconds from now).
pub(crate) const FINISH: &str =
    outcome_sql!(", next_run_at = EXCLUDED.next_run_at, running_by = NULL");

/// Runs outside the schedule (scans on request) ended: their outcomes only; their next times
/// stay (`$3` 0: a source never scheduled is due).
pub(crate) const RECORD: &str = outcome_sql!("");

/// The outcome of the given sources (`$1` users, `$2` sources, pairwise).
pub(crate) const DETAILS: &str = "
    SELECT s.user_id, s.source_id, s.runs, s.last_run_at, s.last_report, s.last_error
    FROM lancesync_schedule AS s
    JOIN unnest($1::text[], $2::text[]) AS wanted (user_id, source_id)
      ON s.user_id = wanted.user_id AND s.source_id = wanted.source_id";

/// A user's runs, oldest first, the newest `$2` of each source.
pub(crate) const HISTORY: &str = "
    SELECT summary FROM (
        SELECT summary, id,
               row_number() OVER (PARTITION BY source_id ORDER BY id DESC) AS newest
        FROM lancesync_runs WHERE user_id = $1) AS r
    WHERE newest <= $2 ORDER BY id";

/// A removed source's schedule and history go with it.
pub(crate) const FORGET_SOURCE: &str = "
    WITH s AS (DELETE FROM lancesync_schedule WHERE user_id = $1 AND source_id = $2 RETURNING 1),
         h AS (DELETE FROM lancesync_runs WHERE user_id = $1 AND source_id = $2 RETURNING 1)
    SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM h)";

/// Save a job's state (`$3` the instance, `$4` its application name in Postgres).
pub(crate) const SAVE_JOB: &str = "
    WITH j AS (
        INSERT INTO lancesync_jobs (id, user_id, instance, application, pid, finished, body, updated_at)
        VALUES ($1, $2, $3, $4, pg_backend_pid(), $5, $6, now())
        ON CONFLICT (id) DO UPDATE SET finished = EXCLUDED.finished, body = EXCLUDED.body,
            pid = EXCLUDED.pid, updated_at = now()
        RETURNING 1),
    t AS (
        DELETE FROM lancesync_jobs WHERE $7 AND finished
        AND updated_at < now() - make_interval(hours => $8)
        RETURNING 1)
    SELECT (SELECT count(*) FROM j), (SELECT count(*) FROM t)";

/// Jobs with whether their instance's session is still open.
macro_rules! job_columns {
    () => {
        "SELECT j.id, j.user_id, j.finished, j.body, j.instance,
                EXISTS (SELECT 1 FROM pg_stat_activity AS a
                        WHERE a.pid = j.pid AND a.application_name = left(j.application, 63))
         FROM lancesync_jobs AS j"
    };
}

/// One job.
pub(crate) const JOB: &str = concat!(job_columns!(), " WHERE j.id = $1");

/// The unfinished jobs, of one user (`$1`) or of all (`$1` NULL), oldest first.
pub(crate) const UNFINISHED_JOBS: &str = concat!(
    job_columns!(),
    " WHERE NOT j.finished AND ($1::text IS NULL OR j.user_id = $1) ORDER BY j.updated_at"
);

pub(crate) fn job_from_row(row: &tokio_postgres::Row) -> Result<SharedJob> {
    Ok(SharedJob {
        id: row.try_get(0).map_err(Error::from)?,
        user_id: row.try_get(1).map_err(Error::from)?,
        finished: row.try_get(2).map_err(Error::from)?,
        body: row.try_get(3).map_err(Error::from)?,
        instance_id: row.try_get(4).map_err(Error::from)?,
        instance_alive: row.try_get(5).map_err(Error::from)?,
    })
}

pub(crate) fn run_from_row(row: &tokio_postgres::Row) -> Result<ClusterRun> {
    Ok(ClusterRun {
        user_id: row.try_get(0).map_err(Error::from)?,
        source_id: row.try_get(1).map_err(Error::from)?,
        runs: row.try_get(2).map_err(Error::from)?,
        last_run_at: row.try_get(3).map_err(Error::from)?,
        last_report: row.try_get(4).map_err(Error::from)?,
        last_error: row.try_get(5).map_err(Error::from)?,
    })
}
