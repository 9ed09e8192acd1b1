//! The coordinator's tables, created and upgraded by the first instance that starts with a
//! newer version: versioned steps, each applied once, under a transaction-level advisory lock
//! so that instances starting together do not race.

use tokio_postgres::Client;

use crate::{Error, Result};

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i32 = 6;

/// Key of the advisory lock held while the schema is changed ("lancesync" in ASCII).
const MIGRATION_LOCK: i64 = 0x6c61_6e63_6573_796e;

/// Each version's statements, in order; version `n` is `STEPS[n - 1]`.
const STEPS: [&str; SCHEMA_VERSION as usize] = [
    // 1: who writes each user now. A row outlives its holder only when the holder died or was
    // cut off: the next holder then waits the takeover time and repairs.
    "CREATE TABLE IF NOT EXISTS lancesync_writers (
        user_id text PRIMARY KEY,
        holder text NOT NULL,
        since timestamptz NOT NULL DEFAULT now()
    )",
    // 2: the source registry every instance schedules from: one row per source, the entry as
    // sources.toml stores it (NULL once removed, so that instances see removals), versions
    // from one sequence so that an instance asks for what changed since it last looked.
    "CREATE SEQUENCE IF NOT EXISTS lancesync_sources_version;
     CREATE TABLE IF NOT EXISTS lancesync_sources (
        user_id text NOT NULL,
        source_id text NOT NULL,
        entry text,
        added bigint NOT NULL,
        version bigint NOT NULL,
        PRIMARY KEY (user_id, source_id)
     );
     CREATE INDEX IF NOT EXISTS lancesync_sources_by_version ON lancesync_sources (version)",
    // 3: when each source runs next, cluster-wide (on the server's clock): an instance runs a
    // source that is due while it holds the source's run lock, and moves the time on when the
    // run ends; a run cut short leaves it due, for another instance to run.
    "CREATE TABLE IF NOT EXISTS lancesync_schedule (
        user_id text NOT NULL,
        source_id text NOT NULL,
        next_run_at timestamptz NOT NULL,
        last_run_by text NOT NULL,
        PRIMARY KEY (user_id, source_id)
     )",
    // 4: the holder's backend, so that instances can tell a row whose holder still lives
    // (leave its user's runs to it) from one left by a dead session.
    "ALTER TABLE lancesync_writers ADD COLUMN IF NOT EXISTS pid integer",
    // 5: what every instance shows of runs and jobs: each source's last outcome and which
    // session runs it now (`changed` grows with every change, so that instances fetch only
    // the outcomes that changed), the history of runs, and the jobs (with the session of
    // the instance running them, to tell a job that never ends because its instance died),
    // and which instances take scheduled work (for each one's fair share).
    "CREATE SEQUENCE IF NOT EXISTS lancesync_schedule_change;
     ALTER TABLE lancesync_schedule
        ADD COLUMN IF NOT EXISTS running_by text,
        ADD COLUMN IF NOT EXISTS changed bigint NOT NULL DEFAULT 0,
        ADD COLUMN IF NOT EXISTS runs bigint NOT NULL DEFAULT 0,
        ADD COLUMN IF NOT EXISTS last_run_at text,
        ADD COLUMN IF NOT EXISTS last_report text,
        ADD COLUMN IF NOT EXISTS last_error text;
     CREATE TABLE IF NOT EXISTS lancesync_runs (
        id bigserial PRIMARY KEY,
        user_id text NOT NULL,
        source_id text NOT NULL,
        summary text NOT NULL,
        instance text NOT NULL
     );
     CREATE INDEX IF NOT EXISTS lancesync_runs_by_source ON lancesync_runs (user_id, source_id, id);
     CREATE SEQUENCE IF NOT EXISTS lancesync_job_blocks;
     CREATE TABLE IF NOT EXISTS lancesync_jobs (
        id text PRIMARY KEY,
        user_id text NOT NULL,
        instance text NOT NULL,
        application text NOT NULL,
        pid integer NOT NULL,
        finished boolean NOT NULL,
        body text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
     );
     CREATE INDEX IF NOT EXISTS lancesync_jobs_unfinished ON lancesync_jobs (user_id) WHERE NOT finished;
     CREATE TABLE IF NOT EXISTS lancesync_instances (
        session text PRIMARY KEY,
        pid integer NOT NULL,
        taking_work boolean NOT NULL,
        since timestamptz NOT NULL DEFAULT now()
     )",
    // 6: the transaction that last wrote each schedule row (set by a trigger, so that no
    // statement can forget it), indexed: an instance reads only the rows written since the
    // oldest transaction still running at its last reading, not the whole table every second.
    "ALTER TABLE lancesync_schedule ADD COLUMN IF NOT EXISTS written xid8 NOT NULL DEFAULT '0';
     CREATE OR REPLACE FUNCTION lancesync_schedule_written() RETURNS trigger
        LANGUAGE plpgsql AS $$ BEGIN NEW.written := pg_current_xact_id(); RETURN NEW; END $$;
     DROP TRIGGER IF EXISTS lancesync_schedule_written ON lancesync_schedule;
     CREATE TRIGGER lancesync_schedule_written BEFORE INSERT OR UPDATE ON lancesync_schedule
        FOR EACH ROW EXECUTE FUNCTION lancesync_schedule_written();
     CREATE INDEX IF NOT EXISTS lancesync_schedule_by_written ON lancesync_schedule (written)",
];

/// Bring the schema to [`SCHEMA_VERSION`]; refuse one from a newer build.
pub(crate) async fn migrate(client: &mut Client) -> Result<()> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS lancesync_schema (
            version integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let found: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM lancesync_schema",
            &[],
        )
        .await?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for version in found + 1..=SCHEMA_VERSION {
        tx.batch_execute(STEPS[(version - 1) as usize]).await?;
        tx.execute(
            "INSERT INTO lancesync_schema (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        tracing::info!(version, "coordinator schema upgraded");
    }
    tx.commit().await?;
    Ok(())
}
