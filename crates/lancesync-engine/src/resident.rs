//! Searches answered from memory: for each user's chunks table version that searches read, an
//! in-memory index ([`lancesync_memindex`]) built in the background, within a memory budget.
//!
//! A search asks for the index of the version it is about to read. It gets one only when it
//! was built from exactly that version, so a search never sees rows that are gone or misses
//! rows that arrived: until the index of the current version is built, searches read the
//! tables through LanceDB as before. A version that stays current for [`QUIET`] starts a build
//! (a table in the middle of a sync changes every few seconds, and an index of every passing
//! version would only cost the sync CPU); the first search of a user starts one at once.
//! Builds run one at a time. Indexes past the budget are dropped, least recently searched
//! first; a table larger than the whole budget is always searched through LanceDB.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::{Array, FixedSizeListArray, Float32Array, RecordBatch};
use futures::TryStreamExt;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancesync_memindex::{MemIndex, MemIndexBuilder, RowData};

use crate::search::{self, HitColumns};
use crate::tables::UserTables;
use crate::{Error, Result};

/// How long a table version must stay current before a build of its index starts, when an
/// index of an earlier version exists.
pub const QUIET: Duration = Duration::from_secs(2);

/// The longest wait for a quiet table (see [`Slot::quiet`]).
const MOST_QUIET: Duration = Duration::from_secs(32);

/// How long an index no search asks for is kept.
const IDLE: Duration = Duration::from_secs(30 * 60);

/// Bytes a row is assumed to take at least before an index is built, besides its vector's
/// length in bytes: text, terms and columns. Measured: about 730 bytes a row in all for chunks
/// of 250 characters at 384 dimensions. A table estimated larger than the budget is not read;
/// one that turns out larger once built is dropped and not built again at that version.
const ROW_ESTIMATE: usize = 300;

/// The in-memory indexes of an engine.
#[derive(Debug)]
pub(crate) struct Resident {
    budget: usize,
    state: Arc<Mutex<State>>,
    /// One build at a time: builds are CPU- and memory-heavy.
    builds: Arc<tokio::sync::Semaphore>,
}

#[derive(Debug, Default)]
struct State {
    slots: HashMap<String, Slot>,
}

/// One in-memory search index an engine holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchMemoryIndex {
    /// Whose chunks.
    pub user_id: String,
    /// The chunks table version it was built from.
    pub version: u64,
    /// Chunks.
    pub rows: usize,
    /// Memory held, in bytes (approximately).
    pub bytes: usize,
}

#[derive(Debug)]
struct Slot {
    user_id: String,
    built: Option<(u64, Arc<MemIndex>)>,
    building: bool,
    /// The version last asked for, and since when.
    seen: (u64, Instant),
    used: Instant,
    /// A version found larger than the budget: not built again.
    too_large: Option<u64>,
    /// Whether a build was started before: the first starts without waiting.
    attempted: bool,
    /// How long a version must stay current before a build: [`QUIET`], doubled after each
    /// build the table outran (a sync in progress) or that failed, up to [`MOST_QUIET`].
    quiet: Duration,
}

/// What a build gives.
enum Built {
    /// The index of this version.
    Index(u64, Box<MemIndex>),
    /// The table does not fit the budget.
    TooLarge,
    /// The table changed while it was read.
    Moved,
}

/// What a lookup finds: the index of the version asked for, or none (yet).
pub(crate) enum Lookup {
    Ready(Arc<MemIndex>),
    NotReady,
}

impl Resident {
    /// Indexes of at most `budget` bytes in all.
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            budget,
            state: Arc::default(),
            builds: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }

    fn key(tables: &UserTables) -> String {
        format!("{}\n{}", tables.uri, tables.chunks.name())
    }

    /// The index of `tables`' chunks at `version` if it is built; otherwise starts its build
    /// when due (see the module's documentation).
    pub(crate) fn lookup(&self, tables: &UserTables, version: u64) -> Lookup {
        let key = Self::key(tables);
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let slot = state.slots.entry(key.clone()).or_insert_with(|| Slot {
            user_id: tables.user_id.clone(),
            built: None,
            building: false,
            seen: (version, now),
            used: now,
            too_large: None,
            attempted: false,
            quiet: QUIET,
        });
        slot.used = now;
        if let Some((v, index)) = &slot.built
            && *v == version
        {
            return Lookup::Ready(index.clone());
        }
        if slot.seen.0 != version {
            slot.seen = (version, now);
        }
        let due = !slot.attempted || slot.seen.1.elapsed() >= slot.quiet;
        if slot.building || !due || slot.too_large == Some(version) {
            return Lookup::NotReady;
        }
        slot.building = true;
        slot.attempted = true;
        forget_idle(&mut state, now);
        drop(state);
        let (state, builds, budget, tables) = (
            self.state.clone(),
            self.builds.clone(),
            self.budget,
            tables.clone(),
        );
        tokio::spawn(async move {
            let _one = builds.acquire_owned().await;
            let built = build(&tables, budget).await;
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            match built {
                Ok(Built::Index(version, index)) => {
                    let bytes = index.heap_bytes();
                    tracing::debug!(user = %tables.user_id, version, rows = index.len(), bytes, components = index.components(), "search index built in memory");
                    if bytes <= budget {
                        make_room(&mut state, &key, bytes, budget);
                    }
                    if let Some(slot) = state.slots.get_mut(&key) {
                        slot.quiet = QUIET;
                        if bytes > budget {
                            slot.too_large = Some(version);
                            slot.built = None;
                        } else {
                            slot.built = Some((version, Arc::from(index)));
                        }
                    }
                }
                Ok(Built::TooLarge) => {
                    if let Some(slot) = state.slots.get_mut(&key) {
                        slot.too_large = Some(version);
                    }
                }
                Ok(Built::Moved) => {
                    if let Some(slot) = state.slots.get_mut(&key) {
                        slot.quiet = (slot.quiet * 2).min(MOST_QUIET);
                    }
                }
                Err(e) => {
                    tracing::warn!(user = %tables.user_id, version, error = %e, "could not build the in-memory search index; searches read the tables");
                    if let Some(slot) = state.slots.get_mut(&key) {
                        slot.quiet = (slot.quiet * 2).min(MOST_QUIET);
                    }
                }
            }
            if let Some(slot) = state.slots.get_mut(&key) {
                slot.building = false;
            }
        });
        Lookup::NotReady
    }

    /// The indexes built now.
    pub(crate) fn indexes(&self) -> Vec<SearchMemoryIndex> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<SearchMemoryIndex> = state
            .slots
            .values()
            .filter_map(|s| {
                let (version, index) = s.built.as_ref()?;
                Some(SearchMemoryIndex {
                    user_id: s.user_id.clone(),
                    version: *version,
                    rows: index.len(),
                    bytes: index.heap_bytes(),
                })
            })
            .collect();
        all.sort_by(|a, b| a.user_id.cmp(&b.user_id).then(a.version.cmp(&b.version)));
        all
    }
}

/// Forgets the tables no search has asked for in [`IDLE`] (a re-index's dropped tables among
/// them).
fn forget_idle(state: &mut State, now: Instant) {
    state
        .slots
        .retain(|_, s| s.building || now.duration_since(s.used) < IDLE);
}

/// Drops the least recently searched indexes of other tables until `bytes` more fit.
fn make_room(state: &mut State, key: &str, bytes: usize, budget: usize) {
    loop {
        let held: usize = state
            .slots
            .iter()
            .filter(|(k, _)| k.as_str() != key)
            .filter_map(|(_, s)| s.built.as_ref())
            .map(|(_, i)| i.heap_bytes())
            .sum();
        if held + bytes <= budget {
            return;
        }
        let Some(oldest) = state
            .slots
            .iter_mut()
            .filter(|(k, s)| k.as_str() != key && s.built.is_some())
            .min_by_key(|(_, s)| s.used)
        else {
            return;
        };
        oldest.1.built = None;
    }
}

/// The index of `tables`' chunks at their current version, unless they do not fit `budget`
/// or change while they are read (a later search builds the newer version).
async fn build(tables: &UserTables, budget: usize) -> Result<Built> {
    let version = tables.chunks.version().await?;
    let rows = tables.chunks.count_rows(None).await?;
    if rows.saturating_mul(tables.dim + ROW_ESTIMATE) > budget {
        tracing::info!(user = %tables.user_id, rows, budget, "the user's chunks do not fit SEARCH_MEMORY_MB; searches read the tables");
        return Ok(Built::TooLarge);
    }
    let mut columns = search::COLUMNS.to_vec();
    columns.push("vector");
    let mut stream = tables
        .chunks
        .query()
        .select(Select::columns(&columns))
        .execute()
        .await?;
    let mut builder = MemIndexBuilder::new(tables.dim);
    let mut batches = 0usize;
    while let Some(batch) = stream.try_next().await? {
        push_batch(&mut builder, &batch)?;
        batches += 1;
        // A table that moved on makes the rest of the read wasted work.
        if batches.is_multiple_of(32) && tables.chunks.version().await? != version {
            return Ok(Built::Moved);
        }
    }
    if tables.chunks.version().await? != version {
        return Ok(Built::Moved);
    }
    let index = tokio::task::spawn_blocking(move || builder.finish())
        .await
        .map_err(|e| Error::Internal(format!("building the search index: {e}")))?;
    Ok(Built::Index(version, Box::new(index)))
}

fn push_batch(builder: &mut MemIndexBuilder, batch: &RecordBatch) -> Result<()> {
    if batch.num_rows() == 0 {
        return Ok(());
    }
    let columns = HitColumns::of(batch)?;
    let list: &FixedSizeListArray = batch
        .column_by_name("vector")
        .and_then(|v| v.as_any().downcast_ref())
        .ok_or_else(|| Error::Internal("vector column is not a fixed-size list".into()))?;
    let values: &Float32Array = list
        .values()
        .as_any()
        .downcast_ref()
        .ok_or_else(|| Error::Internal("vector items are not float32".into()))?;
    let dim = list.value_length() as usize;
    let start = list.offset() * dim;
    for i in 0..batch.num_rows() {
        let at = start + i * dim;
        builder
            .push(RowData::new(columns.row(i), &values.values()[at..at + dim]))
            .map_err(|e| Error::Internal(format!("building the search index: {e}")))?;
    }
    Ok(())
}
