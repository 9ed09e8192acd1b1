//! Searches answered from memory: for each user's chunks table version that searches read, an
//! in-memory index ([`lancesync_memindex`]), made in the background within a memory budget.
//!
//! A search asks for the index of the version it is about to read. It gets one only when it
//! serves exactly that version (or, during a sync of this engine, an earlier one: below), so a
//! search never sees rows that a finished write removed or misses rows it added: until then,
//! searches read the tables through LanceDB as before.
//!
//! - **Whole builds.** The first search of a user starts one at once; later, a version that
//!   stays current for [`QUIET`] does, when no layered view serves (see below) or the layers
//!   have drifted too far from their first. Builds run one at a time.
//! - **Layers.** A newer version is served at once by the last view plus what changed, read
//!   from the table's manifest: rows of fragments deleted whole or deleted from since are
//!   marked gone (from the fragments' deletion files), and only the rows of fragments added
//!   since are read, into a small index laid over the others ([`Layered`]). Lance never
//!   reuses a fragment id, and a fragment's data files do not change while it lives; a
//!   version that breaks either (a fragment rewritten in place, a restore bringing old ones
//!   back) or a table with stable row ids is built whole instead. A table in the middle of a
//!   sync, new rows every few seconds, is searched from memory this way.
//! - **Compactions** move rows into new fragments without changing them. Their versions are
//!   followed from the transaction lance records (see [`remap`]): the view keeps its indexes,
//!   only its row ids move.
//! - **A sync of this engine writing.** While one runs ([`Resident::writing`]), the versions
//!   it commits are states of an unfinished write: a search answers from the newest view
//!   made and does not wait for the layering of a newer one. Otherwise a search waits for
//!   the view of the version it found, so that it never answers from a state older than a
//!   write that ended before it began.
//! - **Budget.** Indexes past the budget are dropped, least recently searched first; a table
//!   larger than the whole budget is always searched through LanceDB.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::{
    Array, FixedSizeListArray, Float32Array, Int32Array, RecordBatch, StringArray, UInt64Array,
};
use futures::TryStreamExt;
use lance_table::transaction::{Operation, RewriteGroup, Transaction};
use lancedb::Table;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancesync_memindex::{Layered, MemIndex, MemIndexBuilder, RowData};

use crate::search::{self, HitColumns};
use crate::tables::UserTables;
use crate::{Error, Result};

/// How long a table version must stay current before a build of its index starts, when an
/// index of an earlier version exists.
pub const QUIET: Duration = Duration::from_secs(2);

/// How long a search waits for the layers of a newer version before it reads the tables: a
/// layering reads only what changed (tens of milliseconds), while a search of a table that a
/// sync is writing takes LanceDB up to seconds.
pub(crate) const LAYERING_WAIT: Duration = Duration::from_millis(500);

/// The longest wait for a quiet table (see [`Slot::quiet`]).
const MOST_QUIET: Duration = Duration::from_secs(32);

/// How long an index no search asks for is kept.
const IDLE: Duration = Duration::from_secs(30 * 60);

/// Bytes a row is assumed to take at least before an index is built, besides its vector's
/// length in bytes: text, terms, columns and its row id. Measured: about 730 bytes a row in
/// all for chunks of 250 characters at 384 dimensions. A table estimated larger than the
/// budget is not read; one that turns out larger once built is dropped and not built again
/// at that version.
const ROW_ESTIMATE: usize = 300;

/// Layers a view holds at most: past it, the layers above the first are read again as one.
const MOST_LAYERS: usize = 8;

/// A view whose added or gone rows exceed this share of its first layer's (or
/// [`CHANGED_ROWS_FLOOR`]) is rebuilt whole once its table is quiet; below it, a view serves
/// as long as its table changes no other way. Its BM25 weighs rows by the first layer's
/// average length, and new rows are ranked by their own layer's projection.
const CHANGED_SHARE: f64 = 0.1;
const CHANGED_ROWS_FLOOR: usize = 2_000;

/// Beyond this many added rows (or the first layer's rows, if more) a view is not extended:
/// searches read LanceDB until the table is quiet and a whole index is built.
const MOST_ADDED_ROWS: usize = 50_000;

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
    /// Tables a sync of this engine is writing, and how many.
    writing: HashMap<String, usize>,
}

/// One in-memory search index an engine holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchMemoryIndex {
    /// Whose chunks.
    pub user_id: String,
    /// The chunks table version it serves.
    pub version: u64,
    /// Chunks.
    pub rows: usize,
    /// Memory held, in bytes (approximately).
    pub bytes: usize,
    /// Indexes of rows added since the first was built, laid over it (0 for a whole index).
    pub added_layers: usize,
    /// Rows held that are no longer in the table (deleted or replaced since they were read).
    pub gone_rows: usize,
}

/// A fragment of a table version as a view saw it: what its rows are, and which are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FragmentSeen {
    /// A hash of the fragment's data files (and overlays): the same rows while it is equal.
    data: u64,
    /// Its deletion file, if any: `(read_version, id)`.
    deletions: Option<(u64, u64)>,
}

/// What searches of one table version are answered from.
#[derive(Debug, Clone)]
struct Served {
    version: u64,
    view: Arc<Layered>,
    /// Per layer: each row's LanceDB row id (`fragment << 32 | offset`).
    row_ids: Vec<Arc<[u64]>>,
    /// The first fragment id the layers above the first were read from (every fragment from
    /// it on), when there are any.
    added_from: Option<u64>,
    /// The version's fragments.
    fragments: HashMap<u64, FragmentSeen>,
    /// Whether later versions may be seen as layers over this view: false once a version
    /// changed its rows another way than adding fragments, deleting rows and compacting.
    layerable: bool,
    /// Whether a compaction moved the rows of its added layers: they can no longer be read
    /// again by fragment (see [`merge`]), so the view is rebuilt whole once the table is
    /// quiet.
    remapped: bool,
}

impl Served {
    fn bytes(&self) -> usize {
        self.view.heap_bytes() + self.row_ids.iter().map(|r| r.len() * 8).sum::<usize>()
    }

    fn added_rows(&self) -> usize {
        self.row_ids[1..].iter().map(|r| r.len()).sum()
    }

    /// Whether the view has drifted far enough from its first layer to be rebuilt whole.
    fn worn(&self) -> bool {
        let first = self.row_ids[0].len();
        let gone = self.row_ids.iter().map(|r| r.len()).sum::<usize>() - self.view.len();
        let bound = ((first as f64 * CHANGED_SHARE) as usize).max(CHANGED_ROWS_FLOOR);
        !self.layerable || self.remapped || self.added_rows() > bound || gone > bound
    }
}

#[derive(Debug)]
struct Slot {
    user_id: String,
    served: Option<Served>,
    building: bool,
    /// A later version's view is being made from `served`.
    layering: bool,
    /// Woken when a layering ends, for searches waiting for it.
    layered: Arc<tokio::sync::Notify>,
    /// A view's added layers are being read again as one (see [`merge`]).
    merging: bool,
    /// The version last asked for, and since when.
    seen: (u64, Instant),
    used: Instant,
    /// A version found larger than the budget: not built again.
    too_large: Option<u64>,
    /// Whether a build was started before: the first starts without waiting, and so does
    /// the first after a version layers could not show.
    attempted: bool,
    /// How long a version must stay current before a build: [`QUIET`], doubled after each
    /// build that failed, up to [`MOST_QUIET`].
    quiet: Duration,
}

/// A sync of an engine writing a table, while it lives (see [`Resident::writing`]).
pub(crate) struct Writing {
    state: Arc<Mutex<State>>,
    key: String,
}

impl Drop for Writing {
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = state.writing.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                state.writing.remove(&self.key);
            }
        }
    }
}

/// What a build gives.
enum Built {
    /// What searches of this version are answered from.
    Index(Box<Served>),
    /// The table does not fit the budget.
    TooLarge,
}

/// What a lookup finds: the index of the version asked for, or none (yet).
pub(crate) enum Lookup {
    Ready(Arc<Layered>),
    /// The view of an earlier version, while a sync of this engine writes the table and the
    /// layers of the newer one are being made.
    Behind(Arc<Layered>),
    /// Layers of a newer version are being made: ask again when this resolves.
    Layering(tokio::sync::futures::OwnedNotified),
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

    /// Marks `tables` as written by a sync of this engine until the guard is dropped: its
    /// searches meanwhile answer from the newest view made rather than wait for a newer one.
    pub(crate) fn writing(&self, tables: &UserTables) -> Writing {
        let key = Self::key(tables);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *state.writing.entry(key.clone()).or_default() += 1;
        Writing {
            state: self.state.clone(),
            key,
        }
    }

    /// The index of `tables`' chunks at `version` if it is built; otherwise starts making it
    /// when due (see the module's documentation).
    pub(crate) fn lookup(&self, tables: &UserTables, version: u64) -> Lookup {
        let key = Self::key(tables);
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let writing = state.writing.contains_key(&key);
        let slot = state.slots.entry(key.clone()).or_insert_with(|| Slot {
            user_id: tables.user_id.clone(),
            served: None,
            building: false,
            layering: false,
            layered: Arc::default(),
            merging: false,
            seen: (version, now),
            used: now,
            too_large: None,
            attempted: false,
            quiet: QUIET,
        });
        slot.used = now;
        if slot.seen.0 != version {
            slot.seen = (version, now);
        }
        let due = !slot.attempted || slot.seen.1.elapsed() >= slot.quiet;
        // A whole build is due when no view serves well: none yet, or one whose layers have
        // drifted far from their first (see [`Served::worn`]), once the table is quiet.
        let build = due
            && !slot.building
            && slot.too_large != Some(version)
            && slot.served.as_ref().is_none_or(Served::worn);
        let found = match &slot.served {
            Some(served) if served.version == version => Lookup::Ready(served.view.clone()),
            // A later version than the view's: its new rows are layered over it at once, and
            // the search waits for that rather than read the tables (unless a sync of this
            // engine is still writing them).
            Some(served) if served.layerable && served.version < version => {
                // Created under the lock, so the end of the layering cannot be missed.
                let ended = slot.layered.clone().notified_owned();
                if !slot.layering {
                    slot.layering = true;
                    self.spawn_layering(key.clone(), tables.clone(), served.clone());
                }
                if writing {
                    Lookup::Behind(served.view.clone())
                } else {
                    Lookup::Layering(ended)
                }
            }
            _ => Lookup::NotReady,
        };
        if build {
            slot.building = true;
            slot.attempted = true;
            forget_idle(&mut state, now);
            drop(state);
            self.spawn_build(key, tables.clone(), version);
        }
        found
    }

    /// Builds the whole index of `tables`' current version in the background.
    fn spawn_build(&self, key: String, tables: UserTables, version: u64) {
        let (state, builds, budget) = (self.state.clone(), self.builds.clone(), self.budget);
        tokio::spawn(async move {
            let _one = builds.acquire_owned().await;
            let built = build(&tables, budget).await;
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            match built {
                Ok(Built::Index(served)) => {
                    let bytes = served.bytes();
                    tracing::debug!(user = %tables.user_id, version = served.version, rows = served.view.len(), bytes, "search index built in memory");
                    if bytes <= budget {
                        make_room(&mut state, &key, bytes, budget);
                    }
                    if let Some(slot) = state.slots.get_mut(&key) {
                        slot.quiet = QUIET;
                        if bytes > budget {
                            slot.too_large = Some(served.version);
                            slot.served = None;
                        } else if slot
                            .served
                            .as_ref()
                            .is_none_or(|s| s.version <= served.version)
                        {
                            slot.served = Some(*served);
                        }
                    }
                }
                Ok(Built::TooLarge) => {
                    if let Some(slot) = state.slots.get_mut(&key) {
                        slot.too_large = Some(version);
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
    }

    /// Makes the view of `tables`' current version from `served`'s in the background (see
    /// [`layer`]). Not one of the one-at-a-time builds: it reads only what changed. A view
    /// that reaches [`MOST_LAYERS`] has its added layers read again as one, in another task,
    /// while later versions are layered over it meanwhile.
    fn spawn_layering(&self, key: String, tables: UserTables, served: Served) {
        let (state, budget) = (self.state.clone(), self.budget);
        tokio::spawn(async move {
            let started = Instant::now();
            let layered = layer(&tables, &served).await;
            let took_ms = started.elapsed().as_millis() as u64;
            let merge_from = {
                let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
                let Some(slot) = guard.slots.get_mut(&key) else {
                    return;
                };
                slot.layering = false;
                slot.layered.notify_waiters();
                match layered {
                    Ok(Layering::Served(next)) if next.bytes() <= budget => {
                        tracing::debug!(user = %tables.user_id, version = next.version, layers = next.row_ids.len(), rows = next.view.len(), took_ms, "search index layered in memory");
                        let merge =
                            next.row_ids.len() >= MOST_LAYERS && !slot.merging && !next.remapped;
                        if merge {
                            slot.merging = true;
                        }
                        let next = *next;
                        let from = merge.then(|| next.clone());
                        publish(&mut guard, &key, next, budget);
                        from
                    }
                    Ok(Layering::Served(_) | Layering::NotLayerable) => {
                        if let Some(s) = slot.served.as_mut() {
                            s.layerable = false;
                        }
                        // A version layers cannot show (a compaction at a sync's end) is
                        // built whole at the next search, not after the quiet wait: its
                        // searches read LanceDB until then.
                        slot.attempted = false;
                        None
                    }
                    Ok(Layering::Unchanged) => None,
                    Err(e) => {
                        tracing::warn!(user = %tables.user_id, error = %e, "could not layer the in-memory search index; it is built again once the table is quiet");
                        if let Some(s) = slot.served.as_mut() {
                            s.layerable = false;
                        }
                        None
                    }
                }
            };
            let Some(from) = merge_from else {
                return;
            };
            let merged = match merge(&tables, &from).await {
                // Later versions may have been layered over the unmerged view meanwhile:
                // the merged one is brought up to the latest too, and the fewer layers win.
                Ok(merged) => match layer(&tables, &merged).await {
                    Ok(Layering::Served(next)) => Ok(*next),
                    Ok(_) => Ok(merged),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
            let Some(slot) = guard.slots.get_mut(&key) else {
                return;
            };
            slot.merging = false;
            match merged {
                Ok(merged) => {
                    tracing::debug!(user = %tables.user_id, version = merged.version, "search index layers read again as one");
                    publish(&mut guard, &key, merged, budget);
                }
                Err(e) => {
                    tracing::warn!(user = %tables.user_id, error = %e, "could not read the in-memory search index's layers again; it is built again once the table is quiet");
                    if let Some(s) = slot.served.as_mut() {
                        s.layerable = false;
                    }
                }
            }
        });
    }

    /// The indexes held now.
    pub(crate) fn indexes(&self) -> Vec<SearchMemoryIndex> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<SearchMemoryIndex> = state
            .slots
            .values()
            .filter_map(|s| {
                let served = s.served.as_ref()?;
                Some(SearchMemoryIndex {
                    user_id: s.user_id.clone(),
                    version: served.version,
                    rows: served.view.len(),
                    bytes: served.bytes(),
                    added_layers: served.row_ids.len() - 1,
                    gone_rows: served.row_ids.iter().map(|r| r.len()).sum::<usize>()
                        - served.view.len(),
                })
            })
            .collect();
        all.sort_by(|a, b| a.user_id.cmp(&b.user_id).then(a.version.cmp(&b.version)));
        all
    }
}

/// Makes `next` the view of the table `key` names, unless that serves a later version, or
/// the same one with no more layers (a merged view of an older version than served is
/// dropped: the next layering starts from the served one); the least recently searched
/// other tables' indexes are dropped to make room for it.
fn publish(state: &mut State, key: &str, next: Served, budget: usize) {
    let better = state.slots.get(key).is_some_and(|slot| {
        slot.served.as_ref().is_none_or(|now| {
            now.version < next.version
                || (now.version == next.version && next.row_ids.len() < now.row_ids.len())
        })
    });
    if !better {
        return;
    }
    make_room(state, key, next.bytes(), budget);
    if let Some(slot) = state.slots.get_mut(key) {
        slot.served = Some(next);
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
            .filter_map(|(_, s)| s.served.as_ref())
            .map(Served::bytes)
            .sum();
        if held + bytes <= budget {
            return;
        }
        let Some(oldest) = state
            .slots
            .iter_mut()
            .filter(|(k, s)| k.as_str() != key && s.served.is_some())
            .min_by_key(|(_, s)| s.used)
        else {
            return;
        };
        oldest.1.served = None;
    }
}

/// The version of `chunks` (a pinned handle) and its fragments; `None` when the table's row
/// ids are not fragment addresses (stable row ids) or it is not a local or object-store
/// table: its versions are then never layered.
async fn fragments(chunks: &Table) -> Result<(u64, Option<HashMap<u64, FragmentSeen>>)> {
    let Some(wrapper) = chunks.dataset() else {
        return Ok((chunks.version().await?, None));
    };
    let dataset = wrapper.get().await?;
    let version = dataset.version().version;
    if dataset.manifest().uses_stable_row_ids() {
        return Ok((version, None));
    }
    let seen = dataset
        .fragments()
        .iter()
        .map(|f| {
            let mut hasher = DefaultHasher::new();
            for file in &f.files {
                file.path.hash(&mut hasher);
            }
            format!("{:?}", f.overlays).hash(&mut hasher);
            let deletions = f.deletion_file.as_ref().map(|d| (d.read_version, d.id));
            let data = hasher.finish();
            (f.id, FragmentSeen { data, deletions })
        })
        .collect();
    Ok((version, Some(seen)))
}

/// Reads the rows of `chunks` (a pinned handle) whose row ids are `from` or above (all when
/// `from` is 0) into an index of vectors of `dim`, laid over `under` when given.
async fn read_rows(
    chunks: &Table,
    dim: usize,
    from: u64,
    under: Option<Arc<MemIndex>>,
) -> Result<(MemIndex, Vec<u64>)> {
    let mut columns = search::COLUMNS.to_vec();
    columns.push("vector");
    let mut query = chunks
        .query()
        .select(Select::columns(&columns))
        .with_row_id();
    if from > 0 {
        query = query.only_if(format!("_rowid >= {from}"));
    }
    let mut stream = query.execute().await?;
    let mut builder = MemIndexBuilder::new(dim);
    let mut row_ids = Vec::new();
    while let Some(batch) = stream.try_next().await? {
        push_batch(&mut builder, &mut row_ids, &batch)?;
    }
    let index = tokio::task::spawn_blocking(move || match under {
        Some(under) => builder.finish_over(&under),
        None => builder.finish(),
    })
    .await
    .map_err(|e| Error::Internal(format!("building the search index: {e}")))?;
    Ok((index, row_ids))
}

/// The index of `tables`' chunks at their current version, unless they do not fit `budget`.
async fn build(tables: &UserTables, budget: usize) -> Result<Built> {
    let chunks = tables.chunks_pinned(None).await?;
    let (version, fragments) = fragments(&chunks).await?;
    let rows = chunks.count_rows(None).await?;
    if rows.saturating_mul(tables.dim + ROW_ESTIMATE) > budget {
        tracing::info!(user = %tables.user_id, rows, budget, "the user's chunks do not fit SEARCH_MEMORY_MB; searches read the tables");
        return Ok(Built::TooLarge);
    }
    let (index, row_ids) = read_rows(&chunks, tables.dim, 0, None).await?;
    Ok(Built::Index(Box::new(Served {
        version,
        view: Arc::new(Layered::whole(Arc::new(index))),
        row_ids: vec![row_ids.into()],
        added_from: None,
        layerable: fragments.is_some(),
        fragments: fragments.unwrap_or_default(),
        remapped: false,
    })))
}

/// Whether a fragment's row at an offset is deleted.
type Deleted = Arc<dyn Fn(u32) -> bool + Send + Sync>;

/// What layering gives.
enum Layering {
    /// The view of a later version.
    Served(Box<Served>),
    /// The table changed in a way layers cannot show (fragments rewritten in place or
    /// brought back, too many rows added): it is built whole at the next search.
    NotLayerable,
    /// The table is still at the view's version.
    Unchanged,
}

/// The view of `tables`' current version made from `served`'s (see [`layer_onto`]). A
/// compaction among the versions since is followed: the view is first brought to the version
/// before it, then its row ids are moved as the compaction moved the rows ([`remap`]).
async fn layer(tables: &UserTables, served: &Served) -> Result<Layering> {
    let chunks = tables.chunks_pinned(None).await?;
    let (version, Some(now)) = fragments(&chunks).await? else {
        return Ok(Layering::NotLayerable);
    };
    if version <= served.version {
        return Ok(Layering::Unchanged);
    }
    let mut moved: Option<Served> = None;
    // Only a version that removed fragments can be a compaction.
    if served.fragments.keys().any(|id| !now.contains_key(id)) {
        let Some(found) = rewrites(&chunks, served.version, version).await? else {
            return Ok(Layering::NotLayerable);
        };
        for (at, groups) in found {
            let base = moved.as_ref().unwrap_or(served);
            if base.version + 1 < at {
                let before = tables.chunks_pinned(Some(at - 1)).await?;
                match layer_onto(tables.dim, base, &before).await? {
                    Layering::Served(next) => moved = Some(*next),
                    Layering::Unchanged => {}
                    Layering::NotLayerable => return Ok(Layering::NotLayerable),
                }
            }
            let base = moved.as_ref().unwrap_or(served);
            let rewritten = tables.chunks_pinned(Some(at)).await?;
            match remap(base, &groups, &rewritten).await? {
                Some(next) => moved = Some(next),
                None => return Ok(Layering::NotLayerable),
            }
        }
    }
    let base = moved.as_ref().unwrap_or(served);
    match layer_onto(tables.dim, base, &chunks).await? {
        Layering::Unchanged => Ok(match moved {
            Some(next) => Layering::Served(Box::new(next)),
            None => Layering::Unchanged,
        }),
        other => Ok(other),
    }
}

/// The view of `chunks`' version (a pinned handle) made from `served`'s: rows of fragments
/// that are gone or rows deleted since are marked gone, and the rows of the fragments added
/// since (always above every fragment id the table held: lance never reuses one) are read
/// into a new layer.
async fn layer_onto(dim: usize, served: &Served, chunks: &Table) -> Result<Layering> {
    let (version, Some(now)) = fragments(chunks).await? else {
        return Ok(Layering::NotLayerable);
    };
    if version <= served.version {
        return Ok(Layering::Unchanged);
    }
    let next_fragment = served.fragments.keys().max().map_or(0, |m| m + 1);
    // Deletions per fragment that changed: `None` for a fragment gone whole.
    let mut changed: HashMap<u64, Option<Deleted>> = HashMap::new();
    for (id, before) in &served.fragments {
        match now.get(id) {
            None => {
                changed.insert(*id, None);
            }
            Some(seen) if seen.data != before.data => return Ok(Layering::NotLayerable),
            Some(seen) if seen.deletions != before.deletions => {
                changed.insert(*id, Some(deletions(chunks, *id).await?));
            }
            Some(_) => {}
        }
    }
    if now
        .keys()
        .any(|id| *id < next_fragment && !served.fragments.contains_key(id))
    {
        return Ok(Layering::NotLayerable);
    }
    let mut layers: Vec<(Arc<MemIndex>, Vec<bool>)> = Vec::new();
    let mut row_ids = served.row_ids.clone();
    for ((index, gone), ids) in served.view.layers().zip(&served.row_ids) {
        let mut gone = gone.to_vec();
        if !changed.is_empty() {
            gone.resize(index.len(), false);
            for (row, id) in ids.iter().enumerate() {
                if let Some(deleted) = changed.get(&(id >> 32)) {
                    let offset = (id & u64::from(u32::MAX)) as u32;
                    if deleted.as_ref().is_none_or(|d| d(offset)) {
                        gone[row] = true;
                    }
                }
            }
        }
        layers.push((index.clone(), gone));
    }
    let added = now.keys().any(|id| *id >= next_fragment);
    if added {
        let first = served.view.layers().next().map(|(i, _)| i.clone());
        let (index, ids) = read_rows(chunks, dim, next_fragment << 32, first).await?;
        layers.push((Arc::new(index), Vec::new()));
        row_ids.push(ids.into());
    }
    let next = Served {
        version,
        view: Arc::new(Layered::new(layers)),
        row_ids,
        added_from: served.added_from.or(added.then_some(next_fragment)),
        fragments: now,
        layerable: true,
        remapped: served.remapped,
    };
    if next.added_rows() > served.row_ids[0].len().max(MOST_ADDED_ROWS) {
        return Ok(Layering::NotLayerable);
    }
    Ok(Layering::Served(Box::new(next)))
}

/// The most versions a layering reads the transactions of, looking for compactions; a view
/// further behind is built whole instead.
const MOST_VERSIONS_READ: u64 = 64;

/// A row id no row has: a row gone before a compaction moved the others.
const NO_ROW: u64 = u64::MAX;

/// The compactions (lance's `Rewrite` transactions) among the versions of `chunks` (a pinned
/// handle) after `after` up to `upto`, each with its version; `None` when there are too many
/// versions to read.
async fn rewrites(
    chunks: &Table,
    after: u64,
    upto: u64,
) -> Result<Option<Vec<(u64, Vec<RewriteGroup>)>>> {
    if upto - after > MOST_VERSIONS_READ {
        return Ok(None);
    }
    let dataset = chunks
        .dataset()
        .ok_or_else(|| Error::Internal("a table without its dataset".into()))?
        .get()
        .await?;
    let mut found = Vec::new();
    for version in after + 1..=upto {
        let transaction = dataset
            .read_transaction_by_version(version)
            .await
            .map_err(|e| {
                Error::Internal(format!("reading version {version}'s transaction: {e}"))
            })?;
        if let Some(Transaction {
            operation: Operation::Rewrite { groups, .. },
            ..
        }) = transaction
        {
            found.push((version, groups));
        }
    }
    Ok(Some(found))
}

/// `served`, a view of the version just before a compaction, with its row ids moved as the
/// compaction (`groups`, committed as `rewritten`'s version) moved the rows: lance writes a
/// group's live rows, in the order of their row ids, into the group's new fragments one
/// after another (its own index remapping, `transpose_row_addrs`, assumes the same). The
/// indexes stay as they are. `None` when what the view holds does not add up to what the
/// compaction wrote, or a few moved rows read back at their new ids are not the ones
/// expected: the version is then built whole.
async fn remap(
    served: &Served,
    groups: &[RewriteGroup],
    rewritten: &Table,
) -> Result<Option<Served>> {
    let (version, Some(now)) = fragments(rewritten).await? else {
        return Ok(None);
    };
    let mut group_of: HashMap<u64, usize> = HashMap::new();
    for (g, group) in groups.iter().enumerate() {
        for old in &group.old_fragments {
            if !served.fragments.contains_key(&old.id) || now.contains_key(&old.id) {
                return Ok(None);
            }
            group_of.insert(old.id, g);
        }
    }
    // Per group, the view's live rows it moved: (old row id, layer, row in the layer).
    let mut moving: Vec<Vec<(u64, usize, usize)>> = vec![Vec::new(); groups.len()];
    let mut row_ids: Vec<Vec<u64>> = served.row_ids.iter().map(|r| r.to_vec()).collect();
    for (layer, ((_, gone), ids)) in served.view.layers().zip(&served.row_ids).enumerate() {
        for (row, id) in ids.iter().enumerate() {
            let Some(&g) = group_of.get(&(id >> 32)) else {
                continue;
            };
            if gone.get(row).copied().unwrap_or(false) {
                row_ids[layer][row] = NO_ROW;
            } else {
                moving[g].push((*id, layer, row));
            }
        }
    }
    // A few moved rows of each group, to read back: (new row id, layer, row).
    let mut probes: Vec<(u64, usize, usize)> = Vec::new();
    for (group, mut rows) in groups.iter().zip(moving) {
        rows.sort_unstable_by_key(|r| r.0);
        let mut to = Vec::with_capacity(rows.len());
        for new in &group.new_fragments {
            let (Some(count), true) = (new.physical_rows, now.contains_key(&new.id)) else {
                return Ok(None);
            };
            to.extend((0..count as u64).map(|offset| (new.id << 32) | offset));
        }
        if to.len() != rows.len() {
            return Ok(None);
        }
        let last = rows.len().saturating_sub(1);
        for (i, ((_, layer, row), id)) in rows.into_iter().zip(to).enumerate() {
            row_ids[layer][row] = id;
            if i == 0 || i == last / 2 || i == last {
                probes.push((id, layer, row));
            }
        }
    }
    if !probes_match(served, rewritten, &probes).await? {
        tracing::warn!(
            version,
            "a compaction's rows are not where expected; the search index is built again"
        );
        return Ok(None);
    }
    let has_added_layers = served.row_ids.len() > 1;
    Ok(Some(Served {
        version,
        view: served.view.clone(),
        row_ids: row_ids.into_iter().map(Into::into).collect(),
        added_from: served.added_from.filter(|_| has_added_layers),
        fragments: now,
        layerable: true,
        remapped: served.remapped || has_added_layers,
    }))
}

/// Whether the rows of `rewritten` at the probes' new row ids are the view's rows they name
/// (the same document and chunk).
async fn probes_match(
    served: &Served,
    rewritten: &Table,
    probes: &[(u64, usize, usize)],
) -> Result<bool> {
    if probes.is_empty() {
        return Ok(true);
    }
    let batches: Vec<RecordBatch> = rewritten
        .take_row_ids(probes.iter().map(|p| p.0).collect())
        .select(Select::columns(&["doc_id", "chunk_index"]))
        .with_row_id()
        .execute()
        .await?
        .try_collect()
        .await?;
    let mut found: HashMap<u64, (String, i32)> = HashMap::new();
    for batch in &batches {
        let columns = (
            batch
                .column_by_name("_rowid")
                .and_then(|c| c.as_any().downcast_ref::<UInt64Array>()),
            batch
                .column_by_name("doc_id")
                .and_then(|c| c.as_any().downcast_ref::<StringArray>()),
            batch
                .column_by_name("chunk_index")
                .and_then(|c| c.as_any().downcast_ref::<Int32Array>()),
        );
        let (Some(ids), Some(docs), Some(chunks)) = columns else {
            return Err(Error::Internal(
                "reading moved rows back: unexpected columns".into(),
            ));
        };
        for i in 0..batch.num_rows() {
            found.insert(ids.value(i), (docs.value(i).to_string(), chunks.value(i)));
        }
    }
    let layers: Vec<&Arc<MemIndex>> = served.view.layers().map(|(index, _)| index).collect();
    Ok(probes.iter().all(|(id, layer, row)| {
        let expected = layers[*layer].row(*row as u32);
        found
            .get(id)
            .is_some_and(|(doc, chunk)| doc == expected.doc_id && *chunk == expected.chunk_index)
    }))
}

/// Which rows of fragment `id` of `chunks` (a pinned handle) are deleted.
async fn deletions(chunks: &Table, id: u64) -> Result<Deleted> {
    let dataset = chunks
        .dataset()
        .ok_or_else(|| Error::Internal("a table without its dataset".into()))?
        .get()
        .await?;
    let fragment = dataset
        .get_fragment(id as usize)
        .ok_or_else(|| Error::Internal(format!("fragment {id} not found")))?;
    let deleted = fragment
        .get_deletion_vector()
        .await
        .map_err(|e| Error::Internal(format!("reading deletions: {e}")))?;
    Ok(match deleted {
        Some(d) => Arc::new(move |offset| d.contains(offset)),
        None => Arc::new(|_| false),
    })
}

/// `served` with every layer above the first read again as one, at `served`'s version: a
/// search then scans one small index where it scanned many.
async fn merge(tables: &UserTables, served: &Served) -> Result<Served> {
    let Some(from_fragment) = served.added_from else {
        return Ok(served.clone());
    };
    let chunks = tables.chunks_pinned(Some(served.version)).await?;
    let (first, gone) = served
        .view
        .layers()
        .next()
        .map(|(i, g)| (i.clone(), g.to_vec()))
        .ok_or_else(|| Error::Internal("a view without layers".into()))?;
    let (index, ids) = read_rows(
        &chunks,
        tables.dim,
        from_fragment << 32,
        Some(first.clone()),
    )
    .await?;
    Ok(Served {
        version: served.version,
        view: Arc::new(Layered::new(vec![
            (first, gone),
            (Arc::new(index), Vec::new()),
        ])),
        row_ids: vec![served.row_ids[0].clone(), ids.into()],
        added_from: Some(from_fragment),
        fragments: served.fragments.clone(),
        layerable: served.layerable,
        remapped: false,
    })
}

fn push_batch(
    builder: &mut MemIndexBuilder,
    row_ids: &mut Vec<u64>,
    batch: &RecordBatch,
) -> Result<()> {
    if batch.num_rows() == 0 {
        return Ok(());
    }
    let columns = HitColumns::of(batch)?;
    let ids: &UInt64Array = batch
        .column_by_name("_rowid")
        .and_then(|v| v.as_any().downcast_ref())
        .ok_or_else(|| Error::Internal("no _rowid column".into()))?;
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
        row_ids.push(ids.value(i));
    }
    Ok(())
}
