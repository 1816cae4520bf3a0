//! Read-your-writes over Vectorize's eventual consistency.
//!
//! Vectorize accepts an upsert or a delete with a mutation id and applies it later:
//! "typically within a few seconds", minutes under load (Cloudflare's Vectorize
//! documentation on inserting vectors; observed; the list of behaviours relied on is in
//! `docs/ARCHITECTURE.md`). Until then a query does not see a new vector and still sees a
//! deleted one. D1 is read-after-write, and every result goes through D1, so a deleted
//! memory never comes back; but a new memory would be missing from semantic search, an
//! update would find no vector to copy, and `check` would call both a half-written store.
//!
//! [`PendingWrites`] remembers the vector writes this process made and Vectorize may not
//! apply yet, so that:
//! * a search merges the pending upserts (scored locally, by cosine) with the index's
//!   answer, and ranks the union;
//! * a read of vectors (`get_by_ids`: exact search, `get_embeddings`, update, re-keying)
//!   takes the pending upsert's values where the index has none yet, or an older version;
//! * `check` reports a disagreement about an id with a pending write as pending, not as an
//!   issue, and `repair` leaves it alone.
//!
//! An entry is settled when the index says it has processed it: its
//! `processedUpToMutation` is the entry's mutation or a later one of ours (ours are in
//! order), or its `processedUpToDatetime` is at least [`CLOCK_SKEW`] past the moment the
//! write was accepted (Vectorize applies mutations in order). Else it expires after
//! [`PENDING_TTL`]; and at most [`MAX_PENDING`] are kept, oldest dropped first. A settled
//! entry (or a write whose call failed) is remembered until then too: it tells `check` that
//! nothing of this process is on its way for that id, even if its row changed a moment ago.
//!
//! This is per process: a write made by another process (another device, the CLI while the
//! server runs) is not known here. For those, `check` uses the rows' change times instead
//! (see [`changed_recently`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cloudflare_vectorize::Vector;

/// How long a write is assumed possibly pending when the index never says it processed
/// it: Cloudflare documents "a few seconds" and minutes have been observed under load.
pub(crate) const PENDING_TTL: Duration = Duration::from_secs(300);

/// The margin between this machine's clock and Cloudflare's when comparing a write's time
/// with the index's `processedUpToDatetime`. Why as large as 2 s: clocks synchronised by
/// NTP agree far better, and a larger margin only keeps an entry pending a little longer.
pub(crate) const CLOCK_SKEW: Duration = Duration::from_secs(2);

/// The most entries kept (about 30 MB of 384-dimension vectors); the oldest go first, as
/// they are the likeliest to be visible already.
pub(crate) const MAX_PENDING: usize = 20_000;

/// A write Vectorize may not show yet.
#[derive(Debug, Clone)]
pub(crate) enum PendingOp {
    /// The vector as written.
    Upsert(Arc<Vector>),
    /// The vector was deleted.
    Delete,
}

/// What this process knows of an id's last vector write.
#[derive(Debug, Clone)]
enum Known {
    /// Accepted, maybe not applied yet.
    Pending(PendingOp),
    /// Applied (the index said so) or refused (the call failed): nothing of ours is on its
    /// way, so a disagreement about the id is an issue even if its row changed a moment ago.
    Settled,
}

#[derive(Debug)]
struct Entry {
    op: Known,
    seq: u64,
    at: Instant,
    /// Seconds since the epoch when the write was accepted (to compare with the index's
    /// `processedUpToDatetime`).
    wall: f64,
}

#[derive(Debug, Default)]
struct State {
    next_seq: u64,
    by_id: HashMap<String, Entry>,
    /// Every (seq, id) recorded, oldest first; pairs whose entry was overwritten or settled
    /// are skipped when they reach the front.
    order: VecDeque<(u64, String)>,
    /// Our mutation ids with the seq of the write that returned them, oldest first.
    mutations: VecDeque<(u64, String)>,
    /// Entries dropped because of [`MAX_PENDING`] (logged once).
    overflowed: bool,
}

/// The vector writes of this process that Vectorize may not show yet (see the module
/// documentation).
#[derive(Debug, Default)]
pub(crate) struct PendingWrites {
    state: Mutex<State>,
}

impl PendingWrites {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records accepted upserts; `mutation` is the id Vectorize returned for the last of
    /// them (once processed, all are).
    pub(crate) fn record_upserts(&self, vectors: &[Vector], mutation: Option<&str>) {
        let ops = vectors.iter().map(|v| {
            let op = Known::Pending(PendingOp::Upsert(Arc::new(v.clone())));
            (v.id.clone(), op)
        });
        self.record(ops, mutation, Instant::now(), now_epoch());
    }

    /// Records accepted deletes of `ids`.
    pub(crate) fn record_deletes(&self, ids: &[String], mutation: Option<&str>) {
        let ops = ids
            .iter()
            .map(|id| (id.clone(), Known::Pending(PendingOp::Delete)));
        self.record(ops, mutation, Instant::now(), now_epoch());
    }

    /// Records writes of `ids` that failed: nothing new of this process is on its way for
    /// them, so a disagreement about them is an issue even if their row changed a moment
    /// ago. An earlier write still pending stays pending (its mutation was accepted); the
    /// failure only moves the time of this process's last action on the id.
    pub(crate) fn record_failed(&self, ids: &[String]) {
        let (at, wall) = (Instant::now(), now_epoch());
        let mut s = self.lock();
        let mut fresh = Vec::new();
        for id in ids {
            match s.by_id.get_mut(id) {
                Some(e) if matches!(e.op, Known::Pending(_)) => e.wall = e.wall.max(wall),
                _ => fresh.push((id.clone(), Known::Settled)),
            }
        }
        drop(s);
        self.record(fresh.into_iter(), None, at, wall);
    }

    /// A mark between the writes recorded so far and those to come (see
    /// [`settle_before`](Self::settle_before)).
    pub(crate) fn mark(&self) -> u64 {
        self.lock().next_seq
    }

    /// Settles every write recorded before `mark`: the caller saw the index process a
    /// mutation accepted after them (Vectorize applies mutations in order).
    pub(crate) fn settle_before(&self, mark: u64) {
        let mut s = self.lock();
        for e in s.by_id.values_mut() {
            if e.seq < mark {
                e.op = Known::Settled;
            }
        }
        s.mutations.retain(|(seq, _)| *seq >= mark);
        prune(&mut s, Instant::now());
    }

    fn record(
        &self,
        ops: impl Iterator<Item = (String, Known)>,
        mutation: Option<&str>,
        at: Instant,
        wall: f64,
    ) {
        let mut s = self.lock();
        let seq = s.next_seq;
        s.next_seq += 1;
        for (id, op) in ops {
            s.order.push_back((seq, id.clone()));
            // The later write wins: an upsert after a delete of the same id, or the reverse.
            s.by_id.insert(id, Entry { op, seq, at, wall });
        }
        if let Some(m) = mutation {
            s.mutations.push_back((seq, m.to_owned()));
        }
        prune(&mut s, at);
    }

    /// Forgets what the index has processed, given its `processedUpToMutation` and
    /// `processedUpToDatetime` (seconds since the epoch).
    pub(crate) fn settle(&self, processed_mutation: Option<&str>, processed_at: Option<f64>) {
        let mut s = self.lock();
        // Our mutations are processed in the order they were accepted, so reaching one of
        // ours settles every earlier one too.
        let upto = processed_mutation
            .and_then(|m| s.mutations.iter().find(|(_, id)| id == m).map(|(q, _)| *q));
        let skew = CLOCK_SKEW.as_secs_f64();
        for e in s.by_id.values_mut() {
            let by_mutation = upto.is_some_and(|q| e.seq <= q);
            let by_time = processed_at.is_some_and(|p| p >= e.wall + skew);
            if by_mutation || by_time {
                e.op = Known::Settled;
            }
        }
        if let Some(q) = upto {
            s.mutations.retain(|(seq, _)| *seq > q);
        }
        prune(&mut s, Instant::now());
    }

    /// The pending write of `id`, if any.
    pub(crate) fn get(&self, id: &str) -> Option<PendingOp> {
        let mut s = self.lock();
        prune(&mut s, Instant::now());
        match &s.by_id.get(id)?.op {
            Known::Pending(op) => Some(op.clone()),
            Known::Settled => None,
        }
    }

    /// When (seconds since the epoch) this process's last write of `id` was made, if it is
    /// settled (applied or failed) and still remembered.
    pub(crate) fn settled_at(&self, id: &str) -> Option<f64> {
        let mut s = self.lock();
        prune(&mut s, Instant::now());
        s.by_id
            .get(id)
            .filter(|e| matches!(e.op, Known::Settled))
            .map(|e| e.wall)
    }

    /// Every pending upsert.
    pub(crate) fn upserts(&self) -> Vec<Arc<Vector>> {
        let mut s = self.lock();
        prune(&mut s, Instant::now());
        s.by_id
            .values()
            .filter_map(|e| match &e.op {
                Known::Pending(PendingOp::Upsert(v)) => Some(Arc::clone(v)),
                _ => None,
            })
            .collect()
    }

    /// Whether any write of this process may still be on its way.
    pub(crate) fn any_pending(&self) -> bool {
        let mut s = self.lock();
        prune(&mut s, Instant::now());
        s.by_id.values().any(|e| matches!(e.op, Known::Pending(_)))
    }

    /// Writes currently pending.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock()
            .by_id
            .values()
            .filter(|e| matches!(e.op, Known::Pending(_)))
            .count()
    }
}

/// Drops expired entries and those over [`MAX_PENDING`], and order pairs that no longer
/// name an entry.
fn prune(s: &mut State, now: Instant) {
    while let Some((seq, id)) = s.order.front() {
        let (seq, id) = (*seq, id.clone());
        let current = s.by_id.get(&id).is_some_and(|e| e.seq == seq);
        if !current {
            s.order.pop_front();
            continue;
        }
        let expired = s
            .by_id
            .get(&id)
            .is_some_and(|e| now.saturating_duration_since(e.at) >= PENDING_TTL);
        let over = s.by_id.len() > MAX_PENDING;
        if !(expired || over) {
            break;
        }
        if over && !expired && !s.overflowed {
            s.overflowed = true;
            tracing::warn!(
                max = MAX_PENDING,
                "more vector writes pending than remembered; searches right after this bulk \
                 write may miss the oldest until Vectorize applies them"
            );
        }
        s.by_id.remove(&id);
        s.order.pop_front();
    }
    // Mutation ids older than every remaining entry settle nothing more.
    let oldest = s.order.front().map_or(u64::MAX, |(seq, _)| *seq);
    while s.mutations.front().is_some_and(|(seq, _)| *seq < oldest) {
        s.mutations.pop_front();
    }
}

/// Now, in seconds since the epoch.
pub(crate) fn now_epoch() -> f64 {
    memory_core::Timestamp::now().epoch_seconds()
}

/// Whether a row changed at `changed` (seconds since the epoch) may have a vector write
/// still pending, for writes of other processes: it changed less than [`PENDING_TTL`] ago
/// and the index has not processed anything [`CLOCK_SKEW`] past the change.
///
/// Why `processedUpToDatetime` decides: Vectorize applies mutations in the order it
/// accepted them, and the write's mutation was accepted right after the row changed. (A
/// queue lagging behind can process an older mutation after that moment, so this can call
/// a still-pending write an issue; `repair` then writes the same vector again, which is
/// harmless.)
pub(crate) fn changed_recently(changed: f64, now: f64, processed_at: Option<f64>) -> bool {
    let recent = now - changed < PENDING_TTL.as_secs_f64();
    let processed = processed_at.is_some_and(|p| p >= changed + CLOCK_SKEW.as_secs_f64());
    recent && !processed
}

/// Parses an index's `processedUpToDatetime` (ISO 8601) to seconds since the epoch.
pub(crate) fn parse_processed_at(text: Option<&str>) -> Option<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(text?).ok()?;
    Some(t.timestamp_micros() as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str, x: f32) -> Vector {
        Vector::new(id, vec![x, 1.0])
    }

    fn values(p: &PendingWrites, id: &str) -> Option<Vec<f32>> {
        match p.get(id)? {
            PendingOp::Upsert(v) => Some(v.values.clone()),
            PendingOp::Delete => None,
        }
    }

    #[test]
    fn the_later_write_of_an_id_wins() {
        let p = PendingWrites::default();
        p.record_upserts(&[v("a", 1.0)], Some("m1"));
        p.record_deletes(&["a".into()], Some("m2"));
        assert!(matches!(p.get("a"), Some(PendingOp::Delete)));
        p.record_upserts(&[v("a", 2.0)], Some("m3"));
        assert_eq!(values(&p, "a"), Some(vec![2.0, 1.0]));
        assert_eq!(p.upserts().len(), 1);
    }

    #[test]
    fn reaching_one_of_our_mutations_settles_it_and_every_earlier_one() {
        let p = PendingWrites::default();
        p.record_upserts(&[v("a", 1.0), v("b", 1.0)], Some("m1"));
        p.record_deletes(&["c".into()], Some("m2"));
        p.record_upserts(&[v("d", 1.0)], Some("m3"));
        // Someone else's mutation settles nothing.
        p.settle(Some("other"), None);
        assert_eq!(p.len(), 4);
        p.settle(Some("m2"), None);
        assert_eq!(p.len(), 1);
        assert!(p.get("d").is_some());
        p.settle(Some("m3"), None);
        assert_eq!(p.len(), 0);
        assert!(!p.any_pending());
        // A failed write settles a new id at once, and leaves an earlier pending one be.
        p.record_failed(&["e".into()]);
        assert!(p.get("e").is_none() && p.settled_at("e").is_some());
        p.record_upserts(&[v("f", 1.0)], Some("m4"));
        p.record_failed(&["f".into()]);
        assert!(p.get("f").is_some());
    }

    #[test]
    fn a_barrier_settles_every_write_recorded_before_its_mark() {
        let p = PendingWrites::default();
        p.record_upserts(&[v("a", 1.0)], Some("m1"));
        p.record_deletes(&["b".into()], Some("m2"));
        let mark = p.mark();
        p.record_upserts(&[v("c", 1.0)], Some("m3"));
        p.settle_before(mark);
        assert!(p.get("a").is_none() && p.get("b").is_none());
        assert!(p.settled_at("a").is_some());
        assert!(p.get("c").is_some(), "recorded after the mark");
        assert_eq!(p.lock().mutations.len(), 1);
    }

    #[test]
    fn a_processed_time_past_the_write_and_the_skew_settles_it() {
        let p = PendingWrites::default();
        p.record(
            [("a".to_owned(), Known::Pending(PendingOp::Delete))].into_iter(),
            None,
            Instant::now(),
            1000.0,
        );
        p.settle(None, Some(1001.0));
        assert_eq!(p.len(), 1, "within the clock skew");
        p.settle(None, Some(1000.0 + CLOCK_SKEW.as_secs_f64()));
        assert_eq!(p.len(), 0);
        assert_eq!(p.settled_at("a"), Some(1000.0));
        assert!(p.get("a").is_none());
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let p = PendingWrites::default();
        let long_ago = Instant::now()
            .checked_sub(PENDING_TTL + Duration::from_secs(1))
            .expect("a monotonic clock this old");
        p.record(
            [("old".to_owned(), Known::Pending(PendingOp::Delete))].into_iter(),
            Some("m0"),
            long_ago,
            0.0,
        );
        p.record_deletes(&["new".into()], Some("m1"));
        assert!(p.get("old").is_none());
        assert!(p.settled_at("old").is_none(), "forgotten, not settled");
        assert!(p.get("new").is_some());
        assert_eq!(p.lock().mutations.len(), 1, "m0 settles nothing any more");
    }

    #[test]
    fn at_most_max_pending_are_kept_oldest_dropped_first() {
        let p = PendingWrites::default();
        let ids: Vec<String> = (0..=MAX_PENDING).map(|i| format!("v{i}")).collect();
        p.record_deletes(&ids[..1], None);
        p.record_deletes(&ids[1..], None);
        assert_eq!(p.len(), MAX_PENDING);
        assert!(p.get("v0").is_none());
        assert!(p.get(&format!("v{MAX_PENDING}")).is_some());
    }

    #[test]
    fn recent_changes_are_pending_until_processed_past_them() {
        let now = 10_000.0;
        assert!(changed_recently(now - 5.0, now, None));
        assert!(changed_recently(now - 5.0, now, Some(now - 4.0)));
        assert!(!changed_recently(now - 5.0, now, Some(now - 3.0 + 0.5)));
        let ttl = PENDING_TTL.as_secs_f64();
        assert!(!changed_recently(now - ttl - 1.0, now, None));
    }

    #[test]
    fn processed_at_parses_rfc3339_or_is_none() {
        assert_eq!(
            parse_processed_at(Some("1970-01-01T00:16:40.500000Z")),
            Some(1000.5)
        );
        assert_eq!(parse_processed_at(Some("yesterday")), None);
        assert_eq!(parse_processed_at(None), None);
    }
}
