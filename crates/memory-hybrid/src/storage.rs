//! [`HybridStorage`]: the [`MemoryStorage`] of the hybrid backend. Every read and write is
//! the local SQLite store's (opened with its change log on, so each write records its
//! change in the same transaction); the [`SyncEngine`] moves changes to and from
//! Cloudflare in the background, and a tool call never waits for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use memory_core::{ContentHash, Memory, MemoryQueryResult, Tags, TimeRange, Timestamp};
use memory_sqlite::SqliteStorage;
use memory_storage::{
    CleanupReport, ConsistencyReport, DeleteReport, DeleteRequest, ListQuery, MemoryFilter,
    MemoryStorage, MemoryUpdate, RepairReport, SemanticQuery, StorageError, StorageResult,
    StorageStats, StoreOutcome, TagCount, TagFilter,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::engine::{SyncEngine, SyncReport};

/// How long the background loop waits between rounds by default while there is work (and
/// how soon after a local write it pushes).
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(5);
/// The longest wait between rounds that find nothing to do: an idle device still pulls
/// the others' changes at least this often (about 10 requests per 5 minutes, under 1 % of
/// the account's budget).
pub const MAX_IDLE_INTERVAL: Duration = Duration::from_secs(30);
/// The longest wait between failing rounds (Cloudflare down, or its budget spent): the
/// backlog waits in the outbox, and the device retries at least this often.
pub const MAX_SYNC_INTERVAL: Duration = Duration::from_secs(120);
/// How long a one-shot command's [`settle`](MemoryStorage::settle) lets a round take before
/// leaving its changes in the outbox for the next sync.
pub const DEFAULT_SETTLE_BUDGET: Duration = Duration::from_secs(10);

/// During a burst of local writes, the longest a push is held back, as a multiple of the
/// sync interval (30 s at the default 5 s): a burst is pushed when the writes pause (see
/// [`burst_hold`]) or after this long, whichever comes first.
pub const MAX_BURST_HOLD_INTERVALS: u32 = 6;

/// How long a check waits for a running sync round before comparing with Cloudflare.
const COMPARE_WAIT: Duration = Duration::from_secs(60);

/// The hybrid backend: local-first memory, synced through Cloudflare.
pub struct HybridStorage {
    local: Arc<SqliteStorage>,
    engine: Arc<SyncEngine>,
    writes: Arc<Writes>,
    background: std::sync::Mutex<Option<JoinHandle<()>>>,
    settle_budget: Duration,
}

impl std::fmt::Debug for HybridStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HybridStorage")
            .field("local", &self.local.path())
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl HybridStorage {
    /// The hybrid backend over `engine` (whose local store serves every call).
    #[must_use]
    pub fn new(engine: SyncEngine) -> Self {
        Self {
            local: Arc::clone(engine.local()),
            engine: Arc::new(engine),
            writes: Arc::new(Writes::new()),
            background: std::sync::Mutex::new(None),
            settle_budget: DEFAULT_SETTLE_BUDGET,
        }
    }

    /// Sets how long [`settle`](MemoryStorage::settle) may sync before giving up.
    #[must_use]
    pub fn with_settle_budget(mut self, budget: Duration) -> Self {
        self.settle_budget = budget;
        self
    }

    /// The sync engine (for `mcp-memory sync`).
    #[must_use]
    pub fn engine(&self) -> &Arc<SyncEngine> {
        &self.engine
    }

    /// The local store.
    #[must_use]
    pub fn local(&self) -> &Arc<SqliteStorage> {
        &self.local
    }

    /// Starts syncing in the background (the MCP server does; one-shot commands do not):
    /// a round every `interval` while rounds find work or local writes arrive, doubling
    /// up to [`MAX_IDLE_INTERVAL`] while idle and [`MAX_SYNC_INTERVAL`] while failing, and
    /// back to `interval` on the next local write or the next round that moves something.
    /// A local write is pushed `interval` after it, or, in a burst of writes, when the
    /// burst pauses (at most [`MAX_BURST_HOLD_INTERVALS`] intervals later). Stops when this
    /// storage is dropped. Starting twice is a no-op.
    pub fn start_background(&self, interval: Duration) {
        let mut slot = self
            .background
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_some() {
            return;
        }
        let engine = Arc::clone(&self.engine);
        let writes = Arc::clone(&self.writes);
        *slot = Some(tokio::spawn(background_loop(engine, writes, interval)));
    }

    /// Tells the background loop a local write happened.
    fn written(&self) {
        self.writes.record();
    }
}

/// The local writes the background loop waits for: a wake-up, and the times of the first
/// write since the loop last started a round and of the last write.
#[derive(Debug)]
struct Writes {
    wake: Notify,
    base: Instant,
    /// Microseconds from `base` to the first write since [`take_first`](Self::take_first)
    /// ([`NONE`](Self::NONE) when there was none).
    first: AtomicU64,
    /// Microseconds from `base` to the last write.
    last: AtomicU64,
}

impl Writes {
    /// `first` when no write happened since the last round started.
    const NONE: u64 = u64::MAX;

    fn new() -> Self {
        Self {
            wake: Notify::new(),
            base: Instant::now(),
            first: AtomicU64::new(Self::NONE),
            last: AtomicU64::new(0),
        }
    }

    fn record(&self) {
        let since = u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX - 1);
        self.first.fetch_min(since, Ordering::Relaxed);
        self.last.fetch_max(since, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Forgets the first write: called as a round starts, whose push takes every write
    /// made so far.
    fn take_first(&self) {
        self.first.store(Self::NONE, Ordering::Relaxed);
    }

    /// The first write since the current round started, if any.
    fn first(&self) -> Option<Instant> {
        let first = self.first.load(Ordering::Relaxed);
        (first != Self::NONE).then(|| self.base + Duration::from_micros(first))
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_micros(self.last.load(Ordering::Relaxed))
    }
}

impl Drop for HybridStorage {
    fn drop(&mut self) {
        if let Some(task) = self
            .background
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

/// The background rounds. Why a round is never run on the caller's task: a tool call must
/// never wait for Cloudflare (`sync never blocks a tool call`).
async fn background_loop(engine: Arc<SyncEngine>, writes: Arc<Writes>, interval: Duration) {
    let interval = interval.max(Duration::from_millis(50));
    let mut wait = interval;
    loop {
        writes.take_first();
        let outcome = engine.sync_once(false, &|_| {}).await;
        wait = next_wait(wait, interval, &outcome);
        if let Err(e) = &outcome {
            tracing::warn!(error = %e, retry_in = ?wait, "hybrid sync round failed; changes stay in the outbox");
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            // A local write: back to the base interval.
            () = writes.wake.notified() => wait = interval,
        }
        // Writes since the last round: push them `interval` after the first, held while a
        // burst goes on, whether a write or the timer woke the loop (a timer running out
        // in the middle of a burst would otherwise push the burst's first part alone).
        if let Some(first) = writes.first() {
            while let Some(until) = burst_hold(first, writes.last(), Instant::now(), interval) {
                tokio::time::sleep_until(until.into()).await;
            }
        }
    }
}

/// When the push of writes that began at `first` may run, given the `last` write and
/// `now`: `None` to run now, else the instant to look again. Never sooner than `interval`
/// after the first write, so a burst goes in one round; then held while writes keep coming
/// less than a fifth of the interval apart (1 s at the default), up to
/// [`MAX_BURST_HOLD_INTERVALS`] × `interval` after the first. Why hold: a round during a
/// burst competes with the writes for the machine (serialising, TLS, applying its pull) and
/// spends requests of the account's budget on a batch that is still growing; the burst
/// is pushed whole once it pauses, and never later than the cap.
fn burst_hold(first: Instant, last: Instant, now: Instant, interval: Duration) -> Option<Instant> {
    let earliest = first + interval;
    if now < earliest {
        return Some(earliest);
    }
    let deadline = first + interval * MAX_BURST_HOLD_INTERVALS;
    let quiet = interval / 5;
    let resume = last + quiet;
    (now < deadline && now < resume).then(|| resume.min(deadline))
}

/// The wait before the next round: `interval` after a round that moved something, else
/// twice the last wait, up to [`MAX_IDLE_INTERVAL`] when idle and [`MAX_SYNC_INTERVAL`]
/// when failing.
fn next_wait(last: Duration, interval: Duration, outcome: &StorageResult<SyncReport>) -> Duration {
    let cap = match outcome {
        Ok(r) if r.did_work() => return interval,
        Ok(_) => MAX_IDLE_INTERVAL,
        Err(_) => MAX_SYNC_INTERVAL,
    };
    (last * 2).clamp(interval, cap.max(interval))
}

#[async_trait]
impl MemoryStorage for HybridStorage {
    fn backend_name(&self) -> &'static str {
        "hybrid"
    }

    async fn initialize(&self) -> StorageResult<()> {
        self.local.initialize().await
    }

    async fn store(&self, memory: Memory) -> StorageResult<StoreOutcome> {
        let out = self.local.store(memory).await;
        self.written();
        out
    }

    async fn store_batch(
        &self,
        memories: Vec<Memory>,
    ) -> StorageResult<Vec<StorageResult<StoreOutcome>>> {
        let out = self.local.store_batch(memories).await;
        self.written();
        out
    }

    async fn search(&self, query: &SemanticQuery) -> StorageResult<Vec<MemoryQueryResult>> {
        self.local.search(query).await
    }

    async fn retrieve(&self, query: &str, n: usize) -> StorageResult<Vec<MemoryQueryResult>> {
        self.local.retrieve(query, n).await
    }

    async fn list(&self, query: &ListQuery) -> StorageResult<Vec<Memory>> {
        self.local.list(query).await
    }

    async fn count(&self, filter: &MemoryFilter) -> StorageResult<u64> {
        self.local.count(filter).await
    }

    async fn get_by_hash(&self, hash: &ContentHash) -> StorageResult<Option<Memory>> {
        self.local.get_by_hash(hash).await
    }

    async fn get_embeddings(&self, hashes: &[ContentHash]) -> StorageResult<Vec<Option<Vec<f32>>>> {
        self.local.get_embeddings(hashes).await
    }

    async fn search_by_tag(&self, tags: &Tags) -> StorageResult<Vec<Memory>> {
        self.local.search_by_tag(tags).await
    }

    async fn search_by_tags(
        &self,
        tags: &TagFilter,
        time: Option<TimeRange>,
    ) -> StorageResult<Vec<Memory>> {
        self.local.search_by_tags(tags, time).await
    }

    async fn get_memories_by_time_range(
        &self,
        start: Timestamp,
        end: Timestamp,
    ) -> StorageResult<Vec<Memory>> {
        self.local.get_memories_by_time_range(start, end).await
    }

    async fn get_recent_memories(&self, n: usize) -> StorageResult<Vec<Memory>> {
        self.local.get_recent_memories(n).await
    }

    async fn delete(&self, hash: &ContentHash) -> StorageResult<DeleteReport> {
        let out = self.local.delete(hash).await;
        self.written();
        out
    }

    async fn delete_by_tag(&self, tag: &str) -> StorageResult<usize> {
        let out = self.local.delete_by_tag(tag).await;
        self.written();
        out
    }

    async fn delete_memories(&self, request: &DeleteRequest) -> StorageResult<DeleteReport> {
        let out = self.local.delete_memories(request).await;
        self.written();
        out
    }

    async fn cleanup_duplicates(&self) -> StorageResult<CleanupReport> {
        let out = self.local.cleanup_duplicates().await;
        self.written();
        out
    }

    async fn update_memory_metadata(
        &self,
        hash: &ContentHash,
        updates: MemoryUpdate,
        preserve_timestamps: bool,
    ) -> StorageResult<Memory> {
        let out = self
            .local
            .update_memory_metadata(hash, updates, preserve_timestamps)
            .await;
        self.written();
        out
    }

    async fn get_stats(&self) -> StorageResult<StorageStats> {
        let mut stats = self.local.get_stats().await?;
        stats.backend = self.backend_name().to_owned();
        let status = self.engine.status().await?;
        stats.extra.insert(
            "sync".to_owned(),
            serde_json::to_value(status).unwrap_or_default(),
        );
        Ok(stats)
    }

    async fn get_all_tags(&self) -> StorageResult<Vec<TagCount>> {
        self.local.get_all_tags().await
    }

    async fn purge_deleted(&self, older_than: Option<Timestamp>) -> StorageResult<u64> {
        self.local.purge_deleted(older_than).await
    }

    /// The local store's check, then this device against the deployment
    /// ([`SyncEngine::compare`]: [`IssueKind::Unsynced`](memory_storage::IssueKind::Unsynced)
    /// for each memory whose liveness differs once everything in flight is set aside).
    /// Needs Cloudflare: offline, it fails saying so rather than claim a comparison it did
    /// not make (the local part alone is `mcp-memory check` on the embedded default).
    async fn check(&self) -> StorageResult<ConsistencyReport> {
        let mut report = self.local.check().await?;
        report.backend = self.backend_name().to_owned();
        let local_issues = report.issues.len();
        let remote =
            self.engine
                .compare(COMPARE_WAIT)
                .await
                .map_err(|e| StorageError::Unavailable {
                    backend: "hybrid".to_owned(),
                    message: format!(
                        "the local store checked with {local_issues} issue(s), but it could not \
                     be compared with Cloudflare ({e}); check again when Cloudflare answers"
                    ),
                    source: Some(Box::new(e)),
                })?;
        report.issues.extend(remote);
        report.sort();
        Ok(report)
    }

    /// The local store's repair, then a full sync (which writes this device's merged state
    /// upstream and stores what only Cloudflare holds), then the check again.
    async fn repair(&self) -> StorageResult<RepairReport> {
        let found = self.check().await?;
        let local = self.local.repair().await?;
        let mut actions = local.actions;
        let mut fixed = local.fixed;
        let unsynced = found
            .issues
            .iter()
            .filter(|i| i.kind == memory_storage::IssueKind::Unsynced)
            .count() as u64;
        if unsynced > 0 {
            let full = self.engine.sync_full(&|_| {}).await?;
            fixed += full.imported + full.reprojected;
            actions.push(format!(
                "full sync: stored {} memories only Cloudflare held, wrote {} to Cloudflare's \
                 tables again",
                full.imported, full.reprojected
            ));
        }
        let remaining = self.check().await?.issues;
        Ok(RepairReport {
            found,
            fixed,
            actions,
            remaining,
        })
    }

    /// A one-shot command's end: when it left changes in the outbox, one round within the
    /// settle budget; if Cloudflare does not answer in time (or fails) the changes stay in
    /// the outbox for the next sync, and this answers `false` without an error (the write
    /// itself succeeded).
    async fn warm_up(&self) -> StorageResult<()> {
        self.local.warm_up().await
    }

    async fn settle(&self) -> StorageResult<bool> {
        if self.local.outbox_len().await? == 0 {
            return Ok(true);
        }
        match tokio::time::timeout(self.settle_budget, self.engine.sync_once(false, &|_| {})).await
        {
            Ok(Ok(report)) => Ok(report.skipped.is_none()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not push this command's changes to Cloudflare; they stay in the outbox for the next sync");
                Ok(false)
            }
            Err(_) => Ok(false),
        }
    }

    async fn recall_memory_at(
        &self,
        query: &str,
        n: usize,
        now: DateTime<Utc>,
    ) -> StorageResult<Vec<MemoryQueryResult>> {
        self.local.recall_memory_at(query, n, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memory_storage::StorageError;

    fn idle() -> StorageResult<SyncReport> {
        Ok(SyncReport::default())
    }

    #[test]
    fn waits_double_to_their_caps_and_work_resets_them() {
        let i = Duration::from_secs(5);
        let mut w = i;
        for _ in 0..10 {
            w = next_wait(w, i, &idle());
        }
        assert_eq!(
            w, MAX_IDLE_INTERVAL,
            "an idle device still pulls every 30 s"
        );
        let failed: StorageResult<SyncReport> = Err(StorageError::invalid("x", "down"));
        for _ in 0..10 {
            w = next_wait(w, i, &failed);
        }
        assert_eq!(
            w, MAX_SYNC_INTERVAL,
            "a failing Cloudflare is retried every 2 min"
        );
        let moved = Ok(SyncReport {
            pulled: 1,
            ..SyncReport::default()
        });
        assert_eq!(next_wait(w, i, &moved), i, "work brings the interval back");
        assert_eq!(
            next_wait(i, Duration::from_secs(60), &idle()),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn a_burst_is_held_until_it_pauses_or_the_cap() {
        let i = Duration::from_secs(5);
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        // Never sooner than the interval after the first write.
        assert_eq!(burst_hold(t0, t0, at(1.0), i), Some(at(5.0)));
        // One write, nothing since: push at the interval.
        assert_eq!(burst_hold(t0, t0, at(5.0), i), None);
        // Writes still coming (the last 0.5 s ago): wait for a 1 s pause.
        assert_eq!(burst_hold(t0, at(4.5), at(5.0), i), Some(at(5.5)));
        assert_eq!(burst_hold(t0, at(4.5), at(5.5), i), None);
        // A burst that never pauses is pushed at the cap, 6 intervals after it began.
        assert_eq!(burst_hold(t0, at(29.5), at(29.6), i), Some(at(30.0)));
        assert_eq!(burst_hold(t0, at(30.0), at(30.0), i), None);
    }

    #[test]
    fn the_first_write_since_a_round_started_is_what_a_hold_counts_from() {
        let writes = Writes::new();
        assert_eq!(
            writes.first(),
            None,
            "no write yet: a timer round runs at once"
        );
        writes.record();
        let first = writes.first().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        writes.record();
        assert_eq!(writes.first(), Some(first), "later writes keep the first");
        assert!(writes.last() > first);
        writes.take_first();
        assert_eq!(writes.first(), None, "a round started: its push takes them");
        writes.record();
        assert!(writes.first().unwrap() > first);
    }
}
