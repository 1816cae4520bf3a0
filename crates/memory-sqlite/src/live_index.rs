//! The in-process vector index of all live memories, kept in step with the database file
//! even when other processes write to it.
//!
//! Every write transaction increments `meta.seq` and stamps it on the rows it writes
//! (inserts, revivals, updates and soft deletes alike). The index remembers the last `seq`
//! it has seen; before a search it asks its own connection for `PRAGMA data_version`
//! (which changes whenever any other connection, in this process or another, committed)
//! and, only if that changed, loads the rows with a newer `seq`. Writes through this
//! process refresh the index right after they commit, so a search that follows them pays
//! nothing. Hard deletes (purging tombstones) leave no row to find, so they increment
//! `meta.purge_epoch`, upon which the index drops the ids that are no longer live.
//!
//! Live rows whose embedding cannot be searched with (missing, wrong size, NaN, not unit
//! length) are kept out, with a warning; `check` reports them and `repair` embeds them
//! again. `verify` compares the index with a snapshot of the table and `rebuild` reloads it,
//! for `check` and `repair` of writes that bypassed `meta.seq`.
//!
//! Refreshes are serialised by one mutex and each reads a newer snapshot than the one
//! before, so changes are applied in commit order. Searches take a read lock and run in
//! parallel with each other.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError, RwLock};

use memory_storage::{MemoryFilter, TagMatch};
use rusqlite::types::Type;
use rusqlite::{Connection, Row};

use crate::codec::decode_stored;
use crate::connection::lock;
use crate::schema::{META_PURGE_EPOCH, META_SEQ, meta_counter};
use crate::vector::{DimensionMismatch, Hit, VectorIndex};

/// Interned string id (tags and memory types), so filters compare integers.
type Sym = u32;

/// What a filter needs to know about a row without asking SQLite.
#[derive(Debug, Clone)]
pub(crate) struct RowAttrs {
    created_us: i64,
    memory_type: Option<Sym>,
    tags: Box<[Sym]>,
}

/// Tag and type strings seen so far, each with a small integer id.
#[derive(Debug, Default)]
struct Symbols {
    ids: HashMap<Box<str>, Sym>,
}

impl Symbols {
    fn intern(&mut self, s: &str) -> Sym {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        // More than 4 billion distinct tags cannot fit in one database's memory anyway.
        let id = Sym::try_from(self.ids.len()).unwrap_or(Sym::MAX);
        self.ids.insert(s.into(), id);
        id
    }

    fn get(&self, s: &str) -> Option<Sym> {
        self.ids.get(s).copied()
    }
}

#[derive(Debug)]
struct IndexState {
    vectors: VectorIndex<RowAttrs>,
    symbols: Symbols,
}

impl IndexState {
    fn upsert(&mut self, id: i64, row: &LiveRow) -> Result<(), DimensionMismatch> {
        let memory_type = row.memory_type.as_deref().map(|t| self.symbols.intern(t));
        let tags = row
            .tags
            .split(',')
            .filter(|t| !t.is_empty())
            .map(|t| self.symbols.intern(t))
            .collect();
        self.vectors.upsert(
            id,
            &row.vector,
            RowAttrs {
                created_us: row.created_us,
                memory_type,
                tags,
            },
        )
    }
}

/// The connection that follows the file's changes, and how far it has followed them.
#[derive(Debug)]
struct Follower {
    conn: Connection,
    data_version: Option<i64>,
    last_seq: i64,
    purge_epoch: i64,
}

/// A live row as the index needs it.
#[derive(Debug)]
struct LiveRow {
    vector: Vec<f32>,
    created_us: i64,
    memory_type: Option<String>,
    tags: String,
}

/// A row as a change to the index.
#[derive(Debug)]
enum Change {
    /// A live row with a usable vector: put it in the index.
    Live(LiveRow),
    /// A soft-deleted row: take it out.
    Deleted,
    /// A live row whose embedding cannot be searched with (missing, wrong size, NaN...):
    /// kept out of the index until `repair` embeds it again.
    Unusable,
}

/// Reads columns `id, deleted, embedding, created_at_us, memory_type, tags` from index 0.
fn read_change(row: &Row<'_>, dims: usize) -> rusqlite::Result<(i64, Change)> {
    let id: i64 = row.get(0)?;
    let deleted: bool = row.get(1)?;
    if deleted {
        return Ok((id, Change::Deleted));
    }
    let mut vector = Vec::with_capacity(dims);
    if let Err(problem) = decode_stored(row.get_ref(2)?, dims, &mut vector) {
        tracing::warn!(
            row = id,
            problem = %problem.detail,
            "a live memory has an unusable embedding and is left out of semantic search; \
             run `mcp-memory check`, then `mcp-memory repair`"
        );
        return Ok((id, Change::Unusable));
    }
    Ok((
        id,
        Change::Live(LiveRow {
            vector,
            created_us: row.get(3)?,
            memory_type: row.get(4)?,
            tags: row.get(5)?,
        }),
    ))
}

const CHANGE_COLUMNS: &str =
    "id, deleted_at IS NOT NULL, embedding, created_at_us, memory_type, tags";

/// A filter translated to symbol ids.
struct Compiled {
    tags: Option<(TagMatch, Vec<Sym>)>,
    memory_type: Option<Sym>,
    time: Option<(i64, i64)>,
}

impl Compiled {
    /// `None` when nothing can match (a tag or type no live row has ever carried).
    fn new(filter: &MemoryFilter, symbols: &Symbols) -> Option<Self> {
        if filter.matches_nothing() {
            return None;
        }
        let tags = match &filter.tags {
            None => None,
            Some(f) => {
                let syms: Vec<Sym> = match f.mode {
                    TagMatch::Any => f.tags.iter().filter_map(|t| symbols.get(t)).collect(),
                    TagMatch::All => f
                        .tags
                        .iter()
                        .map(|t| symbols.get(t))
                        .collect::<Option<Vec<_>>>()?,
                };
                if syms.is_empty() {
                    return None;
                }
                Some((f.mode, syms))
            }
        };
        let memory_type = match &filter.memory_type {
            None => None,
            Some(t) => Some(symbols.get(t)?),
        };
        Some(Self {
            tags,
            memory_type,
            time: filter
                .time
                .map(|r| (r.start.epoch_micros(), r.end.epoch_micros())),
        })
    }

    fn matches(&self, row: &RowAttrs) -> bool {
        if let Some((start, end)) = self.time
            && !(start..=end).contains(&row.created_us)
        {
            return false;
        }
        if let Some(t) = self.memory_type
            && row.memory_type != Some(t)
        {
            return false;
        }
        match &self.tags {
            None => true,
            Some((TagMatch::Any, wanted)) => wanted.iter().any(|t| row.tags.contains(t)),
            Some((TagMatch::All, wanted)) => wanted.iter().all(|t| row.tags.contains(t)),
        }
    }
}

/// The live embeddings of one database file, searchable in memory.
#[derive(Debug)]
pub(crate) struct LiveIndex {
    dims: NonZeroUsize,
    state: RwLock<IndexState>,
    follower: Mutex<Follower>,
}

impl LiveIndex {
    /// Loads every live embedding through `conn`, which the index keeps for following
    /// later changes (give it a connection of its own).
    pub(crate) fn load(mut conn: Connection, dims: NonZeroUsize) -> rusqlite::Result<Self> {
        // Read the version before the snapshot: a commit in between is then seen as a
        // change by the next refresh, never missed.
        let data_version = data_version(&conn)?;
        let (state, last_seq, purge_epoch) = load_state(&mut conn, dims)?;
        Ok(Self {
            dims,
            state: RwLock::new(state),
            follower: Mutex::new(Follower {
                conn,
                data_version: Some(data_version),
                last_seq,
                purge_epoch,
            }),
        })
    }

    /// Throws the index away and loads every live embedding again (what `repair` does
    /// when [`verify`](Self::verify) found a disagreement).
    pub(crate) fn rebuild(&self) -> rusqlite::Result<()> {
        let mut guard = lock(&self.follower);
        let follower = &mut *guard;
        let data_version = data_version(&follower.conn)?;
        let (state, last_seq, purge_epoch) = load_state(&mut follower.conn, self.dims)?;
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = state;
        follower.data_version = Some(data_version);
        follower.last_seq = last_seq;
        follower.purge_epoch = purge_epoch;
        Ok(())
    }

    /// Compares the index with a snapshot of the table taken at change sequence `seq` and
    /// purge epoch `purge_epoch`: `expected` maps the row id of every live memory with a
    /// usable vector to [`fingerprint`] of that vector. `None` when the index has followed
    /// the file to another point than the snapshot (refresh and take a new snapshot);
    /// otherwise the disagreements, by row id.
    pub(crate) fn verify(
        &self,
        seq: i64,
        purge_epoch: i64,
        expected: &HashMap<i64, u64>,
    ) -> Option<Vec<IndexDisagreement>> {
        let follower = lock(&self.follower);
        if follower.last_seq != seq || follower.purge_epoch != purge_epoch {
            return None;
        }
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        for (&id, &print) in expected {
            match state.vectors.vector(id) {
                None => out.push(IndexDisagreement::Absent(id)),
                Some(v) if fingerprint(v) != print => out.push(IndexDisagreement::Stale(id)),
                Some(_) => {}
            }
        }
        for &id in state.vectors.ids() {
            if !expected.contains_key(&id) {
                out.push(IndexDisagreement::Extra(id));
            }
        }
        drop(state);
        drop(follower);
        out.sort_by_key(|d| d.id());
        Some(out)
    }

    /// Number of vectors held.
    pub(crate) fn len(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .vectors
            .len()
    }

    /// Brings the index up to date with the file; a no-op when nobody committed since the
    /// last refresh.
    pub(crate) fn refresh(&self) -> rusqlite::Result<()> {
        let mut guard = lock(&self.follower);
        let follower = &mut *guard;
        let version = data_version(&follower.conn)?;
        if follower.data_version == Some(version) {
            return Ok(());
        }
        let dims = self.dims.get();
        let tx = follower.conn.transaction()?;
        let last_seq = meta_counter(&tx, META_SEQ)?;
        let purge_epoch = meta_counter(&tx, META_PURGE_EPOCH)?;
        let live_ids: Option<HashSet<i64>> = if purge_epoch != follower.purge_epoch {
            let mut stmt = tx.prepare("SELECT id FROM memories WHERE deleted_at IS NULL")?;
            let ids = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Some(ids)
        } else {
            None
        };
        let changes: Vec<(i64, Change)> = if last_seq != follower.last_seq {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {CHANGE_COLUMNS} FROM memories WHERE seq > ?1 ORDER BY seq"
            ))?;
            stmt.query_map([follower.last_seq], |r| read_change(r, dims))?
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        tx.finish()?;

        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = &live_ids {
            state.vectors.retain(|id| live.contains(&id));
        }
        let changed = changes.len();
        for (id, row) in changes {
            match row {
                Change::Live(row) => state.upsert(id, &row).map_err(dims_error)?,
                Change::Deleted | Change::Unusable => {
                    state.vectors.remove(id);
                }
            }
        }
        drop(state);
        tracing::trace!(changed, last_seq, "vector index refreshed");
        follower.data_version = Some(version);
        follower.last_seq = last_seq;
        follower.purge_epoch = purge_epoch;
        Ok(())
    }

    /// The best `k` live rows for `query` among those matching `filter`, best first.
    pub(crate) fn search(
        &self,
        query: &[f32],
        k: usize,
        min_score: Option<f32>,
        filter: &MemoryFilter,
    ) -> Result<Vec<Hit>, DimensionMismatch> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let Some(compiled) = Compiled::new(filter, &state.symbols) else {
            return Ok(Vec::new());
        };
        state
            .vectors
            .search(query, k, min_score, |row| compiled.matches(row))
    }
}

/// How the index disagrees with the table about one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexDisagreement {
    /// A live row with a usable vector is not in the index: search cannot find it.
    Absent(i64),
    /// The index holds another vector than the row.
    Stale(i64),
    /// The index holds a row that is deleted, gone, or has no usable vector.
    Extra(i64),
}

impl IndexDisagreement {
    /// The row id concerned.
    pub(crate) fn id(self) -> i64 {
        match self {
            Self::Absent(id) | Self::Stale(id) | Self::Extra(id) => id,
        }
    }
}

/// A 64-bit FNV-1a hash of a vector's bit patterns: equal vectors, equal prints.
pub(crate) fn fingerprint(v: &[f32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for x in v {
        for b in x.to_bits().to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// Reads every live, usable embedding in one snapshot: the state, `meta.seq` and
/// `meta.purge_epoch` as of that snapshot.
fn load_state(
    conn: &mut Connection,
    dims: NonZeroUsize,
) -> rusqlite::Result<(IndexState, i64, i64)> {
    let tx = conn.transaction()?;
    let last_seq = meta_counter(&tx, META_SEQ)?;
    let purge_epoch = meta_counter(&tx, META_PURGE_EPOCH)?;
    let live: i64 = tx.query_row(
        "SELECT COUNT(*) FROM memories WHERE deleted_at IS NULL",
        [],
        |r| r.get(0),
    )?;
    let mut state = IndexState {
        vectors: VectorIndex::with_capacity(dims, usize::try_from(live).unwrap_or(0)),
        symbols: Symbols::default(),
    };
    {
        let mut stmt = tx.prepare(&format!(
            "SELECT {CHANGE_COLUMNS} FROM memories WHERE deleted_at IS NULL"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            if let (id, Change::Live(live)) = read_change(row, dims.get())? {
                state.upsert(id, &live).map_err(dims_error)?;
            }
        }
    }
    tx.finish()?;
    Ok((state, last_seq, purge_epoch))
}

/// `PRAGMA data_version` of `conn`: changes when another connection commits.
fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "data_version", |r| r.get(0))
}

fn dims_error(e: DimensionMismatch) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(2, Type::Blob, Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use memory_core::{Tags, TimeRange, Timestamp};
    use memory_storage::TagFilter;

    fn attrs(symbols: &mut Symbols, created_us: i64, ty: Option<&str>, tags: &[&str]) -> RowAttrs {
        RowAttrs {
            created_us,
            memory_type: ty.map(|t| symbols.intern(t)),
            tags: tags.iter().map(|t| symbols.intern(t)).collect(),
        }
    }

    #[test]
    fn compiled_filter_follows_the_reference_semantics() {
        let mut s = Symbols::default();
        let row = attrs(&mut s, 100, Some("note"), &["a", "b"]);
        let tags = |t: &str| Tags::parse(t).unwrap();
        let check = |f: MemoryFilter| Compiled::new(&f, &s).is_some_and(|c| c.matches(&row));
        assert!(check(MemoryFilter::all()));
        assert!(check(
            MemoryFilter::all().with_tags(TagFilter::any(tags("a,zzz")))
        ));
        assert!(!check(
            MemoryFilter::all().with_tags(TagFilter::all(tags("a,zzz")))
        ));
        assert!(check(
            MemoryFilter::all().with_tags(TagFilter::all(tags("b,a")))
        ));
        assert!(!check(
            MemoryFilter::all().with_tags(TagFilter::any(Tags::empty()))
        ));
        assert!(check(MemoryFilter::all().with_memory_type("note")));
        assert!(!check(MemoryFilter::all().with_memory_type("Note")));
        let at = |us| Timestamp::from_epoch_micros(us).unwrap();
        assert!(check(MemoryFilter::all().with_time(TimeRange {
            start: at(100),
            end: at(100)
        })));
        assert!(!check(MemoryFilter::all().with_time(TimeRange {
            start: at(101),
            end: at(200)
        })));
    }
}
