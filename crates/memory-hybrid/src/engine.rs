//! The sync engine: one round pushes the local outbox to the D1 change log, pulls what the
//! other devices logged since this device's cursor and merges it locally, then writes the
//! merged state of this device's own changes into upstream's tables and the Vectorize index.
//!
//! # Why this order, and why only its own changes
//!
//! * **Push before pull**: a page pulled after our push holds our own changes in log order
//!   with everyone else's, so the local merge sees them in the order every device sees them.
//! * **The log is the truth; upstream's tables are a projection.** Each device projects
//!   only the memories its own changes touched, once those changes are back from the log
//!   (so their merged state includes every change logged before them). Projecting every
//!   pulled change would multiply Cloudflare requests by the number of devices; projecting
//!   only one's own still covers every change, since each has exactly one author. A stale
//!   projection (two devices projecting one memory at once) is refused by D1 itself: each
//!   projection carries the log position it reflects, and an older one never overwrites a
//!   newer one (`CloudflareStorage::put_replicas`).
//! * **Crash safety**: the outbox is acknowledged only once the log holds a page, the pull
//!   cursor moves in the same local transaction as the merge, and the projection cursor
//!   (`sync_project_cursor`) only after the projection; a crash anywhere repeats work, which
//!   every step absorbs (the log ignores a change it holds, the merge is idempotent, a
//!   projection of the same position changes nothing).
//! * **One process at a time per database**: two processes sharing the file (the MCP
//!   server and a CLI command) take an exclusive lock on `<database>.sync-lock` for a
//!   round; the loser skips the round. The OS drops the lock when its holder dies, even by
//!   `kill -9`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{SecondsFormat, Utc};
use memory_cloudflare::CloudflareStorage;
use memory_cloudflare::change_log::ChangeLog;
use memory_core::{ContentHash, Memory};
use memory_sqlite::SqliteStorage;
use memory_storage::{ConsistencyIssue, IssueKind, MemoryStorage, StorageError, StorageResult};
use memory_sync::{Change, DeviceId, Replica, SyncedChange};

/// Changes read from the outbox per push page by default.
pub const DEFAULT_PUSH_PAGE: usize = 500;
/// Changes read from the D1 log per pull page by default (with 384-dimension vectors and
/// typical content, a page stays under ~2 MB of JSON).
pub const DEFAULT_PULL_PAGE: usize = 500;
/// Hashes per page of a full sync's diff (64 hex digits each: a page is ~0.4 MB).
const HASH_PAGE: usize = 5000;
/// Memories projected into upstream's tables per call.
pub const DEFAULT_PROJECT_PAGE: usize = 1000;

/// `meta` key: the log position up to which this device's own changes are projected.
const META_PROJECT_CURSOR: &str = "sync_project_cursor";
/// `meta` key: when this device last diffed against upstream by content hash.
const META_DIFFED: &str = "sync_full_diff_at";
/// `meta` key: `1` while sync is paused (`mcp-memory sync pause`), absent otherwise.
pub(crate) const META_PAUSED: &str = "sync_paused";
/// `meta` key: when the last round pushed successfully (RFC 3339).
const META_LAST_PUSH: &str = "sync_last_push";
/// `meta` key: when the last round pulled successfully (RFC 3339).
const META_LAST_PULL: &str = "sync_last_pull";
/// `meta` key: the last round's error, absent after a successful round.
const META_LAST_ERROR: &str = "sync_last_error";

/// Page sizes of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncOptions {
    /// Outbox changes per push page.
    pub push_page: usize,
    /// Log rows per pull page.
    pub pull_page: usize,
    /// Memories per projection call.
    pub project_page: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            push_page: DEFAULT_PUSH_PAGE,
            pull_page: DEFAULT_PULL_PAGE,
            project_page: DEFAULT_PROJECT_PAGE,
        }
    }
}

/// Progress of a round, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncProgress {
    /// `done` changes pushed so far this round.
    Pushed {
        /// Changes pushed so far.
        done: u64,
    },
    /// `done` log rows pulled so far this round, up to log position `cursor`.
    Pulled {
        /// Rows pulled so far.
        done: u64,
        /// The log position reached.
        cursor: i64,
    },
    /// `done` memories projected into upstream's tables so far this round.
    Projected {
        /// Memories projected so far.
        done: u64,
    },
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Why the round did nothing, if it did nothing.
    pub skipped: Option<Skipped>,
    /// Outbox changes pushed (and acknowledged).
    pub pushed: u64,
    /// Of those, changes the log did not hold yet.
    pub pushed_new: u64,
    /// Log rows pulled (own and other devices').
    pub pulled: u64,
    /// Pulled changes that changed local state.
    pub applied: u64,
    /// Memories embedded locally while applying (a store that travelled without its
    /// vector); 0 in every normal round.
    pub embedded: u64,
    /// Memories written into upstream's tables and index.
    pub projected: u64,
    /// Projections refused as older than one already there.
    pub stale_projections: u64,
    /// Memories found only in upstream's tables by the first round's content-hash diff
    /// and stored here.
    pub imported: u64,
    /// Memories another device changed that this device cannot apply (an update of a
    /// memory it never received); `sync --full` fetches them.
    pub unresolved: Vec<ContentHash>,
    /// Cloudflare requests the round sent (D1, Vectorize, R2).
    pub requests: u64,
}

impl SyncReport {
    /// Whether the round moved anything (pushed, pulled or projected).
    #[must_use]
    pub fn did_work(&self) -> bool {
        self.pushed + self.pulled + self.projected + self.imported > 0
    }
}

/// Why a round did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// Sync is paused (`mcp-memory sync pause`).
    Paused,
    /// Another process on this database is running a round.
    Busy,
}

/// The sync state of one device, for `sync status`, stats and health.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncStatus {
    /// This database's device id.
    pub device: String,
    /// Local changes not pushed yet.
    pub backlog: u64,
    /// The D1 log position pulled up to.
    pub pull_cursor: i64,
    /// The D1 log position up to which this device's changes are in upstream's tables.
    pub project_cursor: i64,
    /// Whether sync is paused.
    pub paused: bool,
    /// When a round last pushed successfully.
    pub last_push: Option<String>,
    /// When a round last pulled successfully.
    pub last_pull: Option<String>,
    /// The last round's error, if it failed.
    pub last_error: Option<String>,
}

/// What a full sync (content-hash diff in both directions) did, on top of its rounds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FullSyncReport {
    /// Memories found only in upstream's tables (written by the Python service or the
    /// Cloudflare backend) and stored locally, to be pushed to the log like local stores.
    pub imported: u64,
    /// Of those, memories that had no vector in Vectorize and were embedded locally.
    pub embedded: u64,
    /// Memories this device holds whose projection upstream was missing or different,
    /// written again.
    pub reprojected: u64,
    /// The rounds before and after the diff.
    pub rounds: Vec<SyncReport>,
}

/// The deployment's side of sync: its Cloudflare storage in replica mode (no Workers AI)
/// and its D1 change log.
#[derive(Debug, Clone)]
pub struct Remote {
    /// Upstream's tables, index and bucket, written by projection.
    pub storage: Arc<CloudflareStorage>,
    /// The change log.
    pub log: ChangeLog,
}

/// Connects to the deployment (and checks it: tables, index, recorded model). Called by
/// the first round that needs Cloudflare, not at open: a device must start, and serve
/// every read and write, while Cloudflare is unreachable.
pub type Connect =
    Box<dyn Fn() -> futures::future::BoxFuture<'static, StorageResult<Remote>> + Send + Sync>;

/// The sync engine of one device: its local store and, once connected, the deployment.
pub struct SyncEngine {
    local: Arc<SqliteStorage>,
    connect: Connect,
    remote: tokio::sync::OnceCell<Remote>,
    device: DeviceId,
    options: SyncOptions,
    lock_path: PathBuf,
    rounds: AtomicU64,
}

impl SyncEngine {
    /// An engine for `local` (opened with its change log on), syncing through `remote`
    /// and `log` (of the same D1 database).
    ///
    /// # Errors
    ///
    /// [`StorageError::InvalidInput`] when `local` was opened without its change log.
    pub fn new(
        local: Arc<SqliteStorage>,
        connect: Connect,
        options: SyncOptions,
    ) -> StorageResult<Self> {
        let device = local.device_id().ok_or_else(|| {
            StorageError::invalid(
                "change_log",
                "the local store was opened without its change log; open it with \
                 SqliteConfig::change_log(true) for the hybrid backend",
            )
        })?;
        let lock_path = lock_path_of(local.path());
        Ok(Self {
            local,
            connect,
            remote: tokio::sync::OnceCell::new(),
            device,
            options,
            lock_path,
            rounds: AtomicU64::new(0),
        })
    }

    /// This device's id.
    #[must_use]
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// The local store.
    #[must_use]
    pub fn local(&self) -> &Arc<SqliteStorage> {
        &self.local
    }

    /// The deployment, connected on first use; a failed connection is tried again by the
    /// next call.
    ///
    /// # Errors
    ///
    /// The connection's error (Cloudflare unreachable, a bad token, another embedding
    /// model recorded in D1).
    pub async fn remote(&self) -> StorageResult<&Remote> {
        self.remote.get_or_try_init(|| (self.connect)()).await
    }

    /// Rounds run by this engine (not skipped), for tests and stats.
    #[must_use]
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// One round: push, pull, project. Skipped when paused (unless `force`) or when another
    /// process on this database holds the sync lock. The outcome (time or error) is
    /// recorded in the database for `sync status`.
    ///
    /// # Errors
    ///
    /// The first failing step's error; what was done before it stays done, the rest waits
    /// for the next round.
    pub async fn sync_once(
        &self,
        force: bool,
        progress: &(dyn Fn(SyncProgress) + Send + Sync),
    ) -> StorageResult<SyncReport> {
        if !force && self.is_paused().await? {
            return Ok(SyncReport {
                skipped: Some(Skipped::Paused),
                ..SyncReport::default()
            });
        }
        let Some(_lock) = self.try_lock()? else {
            return Ok(SyncReport {
                skipped: Some(Skipped::Busy),
                ..SyncReport::default()
            });
        };
        self.rounds.fetch_add(1, Ordering::Relaxed);
        let mut report = SyncReport::default();
        let outcome = self.round(&mut report, progress).await;
        let error = outcome.as_ref().err().map(ToString::to_string);
        self.local
            .set_sync_meta(META_LAST_ERROR, error.as_deref())
            .await?;
        outcome.map(|()| report)
    }

    async fn round(
        &self,
        report: &mut SyncReport,
        progress: &(dyn Fn(SyncProgress) + Send + Sync),
    ) -> StorageResult<()> {
        let remote = self.remote().await?;
        self.push(remote, report, progress).await?;
        self.local
            .set_sync_meta(META_LAST_PUSH, Some(&now_text()))
            .await?;
        let own = self.pull(remote, report, progress).await?;
        self.local
            .set_sync_meta(META_LAST_PULL, Some(&now_text()))
            .await?;
        self.project(remote, own, report, progress).await?;
        // A device's first round also diffs by content hash: a deployment used by the
        // Python service or the Cloudflare backend holds memories no log row names.
        if self.local.sync_meta(META_DIFFED).await?.is_none() {
            let diff = self.diff(remote).await?;
            report.imported = diff.imported;
            report.embedded += diff.embedded;
        }
        Ok(())
    }

    /// Pushes the outbox to the log page by page, each store with its content and vector.
    async fn push(
        &self,
        remote: &Remote,
        report: &mut SyncReport,
        progress: &(dyn Fn(SyncProgress) + Send + Sync),
    ) -> StorageResult<()> {
        // Read after the last seq pushed, not from 0: the loop ends even if an ack removed
        // nothing (another process acked first, which the lock makes unlikely but harmless).
        let mut after = 0;
        loop {
            let entries = self
                .local
                .pending_changes(after, self.options.push_page.max(1))
                .await?;
            let Some(last) = entries.last().map(|e| e.seq) else {
                return Ok(());
            };
            after = last;
            let stores: Vec<ContentHash> = entries
                .iter()
                .filter(|e| matches!(e.change, Change::Store { .. }))
                .map(|e| e.change.hash().clone())
                .collect();
            let replicas = self.local.replicas(&stores).await?;
            let mut payloads = stores.into_iter().zip(replicas);
            let page: Vec<SyncedChange> = entries
                .into_iter()
                .map(|e| match e.change {
                    // `payloads` is in the order of this page's stores. A memory deleted
                    // since has no content to send: its Delete follows in the outbox.
                    Change::Store { .. } => {
                        let replica = payloads.next().and_then(|(_, r)| r);
                        let (content, vector) = match replica {
                            Some(r) if r.is_live() => (r.content, r.vector),
                            _ => (None, None),
                        };
                        SyncedChange {
                            change: e.change,
                            content,
                            vector,
                        }
                    }
                    change => SyncedChange::bare(change),
                })
                .collect();
            let appended = remote.log.append(&page).await?;
            self.local.ack_changes(last).await?;
            report.pushed += page.len() as u64;
            report.pushed_new += appended.added;
            report.requests += appended.requests;
            progress(SyncProgress::Pushed {
                done: report.pushed,
            });
        }
    }

    /// Pulls the log after the cursor and merges it locally; returns this device's own
    /// changes met on the way (log position and memory), which it must project.
    async fn pull(
        &self,
        remote: &Remote,
        report: &mut SyncReport,
        progress: &(dyn Fn(SyncProgress) + Send + Sync),
    ) -> StorageResult<Vec<(i64, ContentHash)>> {
        let start = self.local.pull_cursor().await?;
        let project_cursor = self.project_cursor().await?;
        let mut own = Vec::new();
        // Own changes pulled by an earlier round whose projection did not finish (a crash,
        // an error): find them again in the log.
        if project_cursor < start {
            own = remote
                .log
                .hashes_of_device_between(project_cursor, start, self.device)
                .await?;
            report.requests += 1;
        }
        let mut cursor = start;
        loop {
            let page = remote
                .log
                .read_after(cursor, self.options.pull_page.max(1), Some(self.device))
                .await?;
            report.requests += 1;
            let Some(last) = page.last().map(|c| c.seq) else {
                return Ok(own);
            };
            let mut changes = Vec::with_capacity(page.len());
            for logged in page {
                if logged.device == self.device {
                    own.push((logged.seq, logged.synced.change.hash().clone()));
                }
                changes.push(logged.synced);
            }
            report.pulled += changes.len() as u64;
            let applied = self.local.apply_remote(changes, last).await?;
            report.applied += applied.applied;
            report.embedded += applied.embedded;
            report.unresolved.extend(applied.unresolved);
            cursor = last;
            progress(SyncProgress::Pulled {
                done: report.pulled,
                cursor,
            });
        }
    }

    /// Writes the merged state of the memories this device's changes touched into
    /// upstream's tables and index, then moves the projection cursor to the pull cursor.
    async fn project(
        &self,
        remote: &Remote,
        own: Vec<(i64, ContentHash)>,
        report: &mut SyncReport,
        progress: &(dyn Fn(SyncProgress) + Send + Sync),
    ) -> StorageResult<()> {
        let cursor = self.local.pull_cursor().await?;
        // One projection per memory, at the greatest log position of its changes: its
        // merged state includes everything logged up to there.
        let mut latest: BTreeMap<ContentHash, i64> = Default::default();
        for (seq, hash) in own {
            let e = latest.entry(hash).or_insert(seq);
            *e = (*e).max(seq);
        }
        let items: Vec<(ContentHash, i64)> = latest.into_iter().collect();
        for chunk in items.chunks(self.options.project_page.max(1)) {
            let hashes: Vec<ContentHash> = chunk.iter().map(|(h, _)| h.clone()).collect();
            let replicas = self.local.replicas(&hashes).await?;
            let batch: Vec<(i64, Replica)> = chunk
                .iter()
                .zip(replicas)
                .filter_map(|((_, seq), r)| r.map(|r| (*seq, r)))
                .collect();
            let done = remote.storage.put_replicas(&batch).await?;
            report.projected += done.projected;
            report.stale_projections += done.stale;
            report.requests += done.d1_requests + done.vectorize_requests + done.r2_requests;
            progress(SyncProgress::Projected {
                done: report.projected,
            });
        }
        if self.project_cursor().await? < cursor {
            self.local
                .set_sync_meta(META_PROJECT_CURSOR, Some(&cursor.to_string()))
                .await?;
        }
        Ok(())
    }

    /// A full sync: a round, then a content-hash diff of upstream's live memories against
    /// this device's in both directions, then another round to push what the diff stored.
    ///
    /// * A memory only upstream (written by the Python service or the Cloudflare backend,
    ///   which log nothing) is stored locally with its Vectorize vector, or embedded here
    ///   when it has none, and then travels through the log like a local store.
    /// * A memory this device holds (live or deleted) whose upstream row is missing or
    ///   disagrees in liveness is projected again at the current log position.
    ///
    /// # Errors
    ///
    /// The first failing call's error; what was imported before it stays imported.
    pub async fn sync_full(
        &self,
        progress: &(dyn Fn(SyncProgress) + Send + Sync),
    ) -> StorageResult<FullSyncReport> {
        let mut full = FullSyncReport::default();
        full.rounds.push(self.sync_once(true, progress).await?);
        let Some(_lock) = self.try_lock()? else {
            return Err(StorageError::Unavailable {
                backend: "hybrid".to_owned(),
                message: "another process on this database is syncing; run `sync --full` \
                          again when it is done"
                    .to_owned(),
                source: None,
            });
        };
        let remote = self.remote().await?;
        let diff = self.diff(remote).await?;
        full.imported = diff.imported;
        full.embedded = diff.embedded;
        full.reprojected = diff.reprojected;
        drop(_lock);
        full.rounds.push(self.sync_once(true, progress).await?);
        Ok(full)
    }

    /// The content-hash diff of upstream's live memories against this device's, both ways
    /// (see [`sync_full`](Self::sync_full)); called with the sync lock held. Records that
    /// the device has done it once (the first round of a device does it by itself).
    async fn diff(&self, remote: &Remote) -> StorageResult<FullSyncReport> {
        let mut full = FullSyncReport::default();
        let upstream = upstream_live_hashes(remote).await?;
        let local = self.local_hashes().await?;
        // Upstream only and in no log row: import. Stored locally like a local write, so it
        // reaches the other devices through the log, and they never diff for it. A memory
        // the log names is another device's, projected after this device's pull: it comes
        // with the next pull under its own stamps, and importing it here would give it a
        // newer Store that could undo a delete logged meanwhile.
        let candidates: Vec<ContentHash> = upstream
            .iter()
            .filter(|h| !local.contains_key(*h))
            .cloned()
            .collect();
        let logged = remote.log.logged_hashes(&candidates).await?;
        let missing: Vec<ContentHash> = candidates
            .into_iter()
            .filter(|h| !logged.contains(h))
            .collect();
        // 100 a call: a fetch reads vectors with Vectorize `get_by_ids`, 20 ids a request.
        for chunk in missing.chunks(100) {
            let fetched = remote.storage.fetch_replicas_of(chunk).await?;
            let mut batch = Vec::new();
            for (memory, vector) in fetched.into_iter().flatten() {
                if vector.is_none() {
                    full.embedded += 1;
                }
                batch.push(with_embedding(memory, vector));
            }
            for outcome in self.local.store_batch(batch).await? {
                if outcome.is_ok() {
                    full.imported += 1;
                }
            }
        }
        // Held here with another liveness upstream (or missing there): project again, at
        // the current log position so that no older projection can win over it.
        let cursor = self.local.pull_cursor().await?;
        let again: Vec<ContentHash> = local
            .iter()
            .filter(|(h, live)| **live != upstream.contains(*h))
            .map(|(h, _)| h.clone())
            .collect();
        for chunk in again.chunks(self.options.project_page.max(1)) {
            let replicas = self.local.replicas(chunk).await?;
            let batch: Vec<(i64, Replica)> = replicas
                .into_iter()
                .flatten()
                .map(|r| (cursor, r))
                .collect();
            let done = remote.storage.put_replicas(&batch).await?;
            full.reprojected += done.projected;
        }
        self.local
            .set_sync_meta(META_DIFFED, Some(&now_text()))
            .await?;
        Ok(full)
    }

    /// Compares this device with the deployment: every memory whose liveness here differs
    /// from upstream's tables, leaving out what is still on its way (changes in the
    /// outbox, log rows not pulled yet, own changes not projected yet), which are not
    /// disagreements. Waits up to `wait` for a running round to finish, so that a round
    /// half done is not reported.
    ///
    /// # Errors
    ///
    /// Cloudflare's (unreachable: nothing could be compared), or
    /// [`StorageError::Unavailable`] when a round holds the lock for all of `wait`.
    pub async fn compare(&self, wait: std::time::Duration) -> StorageResult<Vec<ConsistencyIssue>> {
        let deadline = tokio::time::Instant::now() + wait;
        let _lock = loop {
            if let Some(lock) = self.try_lock()? {
                break lock;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StorageError::Unavailable {
                    backend: "hybrid".to_owned(),
                    message: "a sync round held this database's sync lock for the whole \
                              check; run the check again"
                        .to_owned(),
                    source: None,
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        let remote = self.remote().await?;
        let mut in_flight: BTreeSet<ContentHash> = BTreeSet::new();
        let mut after = 0;
        loop {
            let page = self
                .local
                .pending_changes(after, self.options.push_page.max(1))
                .await?;
            let Some(last) = page.last().map(|e| e.seq) else {
                break;
            };
            after = last;
            in_flight.extend(page.into_iter().map(|e| e.change.hash().clone()));
        }
        let pulled = self.local.pull_cursor().await?;
        let mut cursor = pulled;
        loop {
            let page = remote
                .log
                .read_after(cursor, self.options.pull_page.max(1), Some(self.device))
                .await?;
            let Some(last) = page.last().map(|c| c.seq) else {
                break;
            };
            cursor = last;
            in_flight.extend(page.into_iter().map(|c| c.synced.change.hash().clone()));
        }
        let projected = self.project_cursor().await?;
        if projected < pulled {
            let own = remote
                .log
                .hashes_of_device_between(projected, pulled, self.device)
                .await?;
            in_flight.extend(own.into_iter().map(|(_, h)| h));
        }
        let upstream = upstream_live_hashes(remote).await?;
        let local = self.local_hashes().await?;
        let mut issues = Vec::new();
        for (hash, live) in &local {
            if *live != upstream.contains(hash) && !in_flight.contains(hash) {
                let detail = if *live {
                    "live on this device but not in Cloudflare's tables; repair (a full \
                     sync) writes it there"
                } else {
                    "deleted on this device but live in Cloudflare's tables; repair (a full \
                     sync) writes the delete there"
                };
                issues.push(ConsistencyIssue::new(
                    IssueKind::Unsynced,
                    hash.as_str(),
                    detail,
                ));
            }
        }
        for hash in upstream
            .iter()
            .filter(|h| !local.contains_key(*h) && !in_flight.contains(*h))
        {
            issues.push(ConsistencyIssue::new(
                IssueKind::Unsynced,
                hash.as_str(),
                "live in Cloudflare's tables but unknown on this device (written by the \
                 Python service or the Cloudflare backend?); repair (a full sync) stores it here",
            ));
        }
        Ok(issues)
    }

    async fn local_hashes(&self) -> StorageResult<BTreeMap<ContentHash, bool>> {
        let mut all = BTreeMap::new();
        let mut after: Option<ContentHash> = None;
        loop {
            let page = self.local.sync_hashes(after.as_ref(), HASH_PAGE).await?;
            let Some((last, _)) = page.last().cloned() else {
                return Ok(all);
            };
            all.extend(page);
            after = Some(last);
        }
    }

    /// The device's sync state.
    ///
    /// # Errors
    ///
    /// The local store's error.
    pub async fn status(&self) -> StorageResult<SyncStatus> {
        Ok(SyncStatus {
            device: self.device.to_string(),
            backlog: self.local.outbox_len().await?,
            pull_cursor: self.local.pull_cursor().await?,
            project_cursor: self.project_cursor().await?,
            paused: self.is_paused().await?,
            last_push: self.local.sync_meta(META_LAST_PUSH).await?,
            last_pull: self.local.sync_meta(META_LAST_PULL).await?,
            last_error: self.local.sync_meta(META_LAST_ERROR).await?,
        })
    }

    /// Pauses or resumes sync for every process on this database (kept in the database).
    ///
    /// # Errors
    ///
    /// The local store's error.
    pub async fn set_paused(&self, paused: bool) -> StorageResult<()> {
        self.local
            .set_sync_meta(META_PAUSED, paused.then_some("1"))
            .await
    }

    /// Whether sync is paused.
    ///
    /// # Errors
    ///
    /// The local store's error.
    pub async fn is_paused(&self) -> StorageResult<bool> {
        Ok(self.local.sync_meta(META_PAUSED).await?.is_some())
    }

    async fn project_cursor(&self) -> StorageResult<i64> {
        let text = self.local.sync_meta(META_PROJECT_CURSOR).await?;
        Ok(text.and_then(|t| t.parse().ok()).unwrap_or(0))
    }

    /// Takes this database's sync lock if free; `None` when another process holds it.
    fn try_lock(&self) -> StorageResult<Option<File>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .map_err(|e| {
                StorageError::backend(
                    "hybrid",
                    format!(
                        "cannot open the sync lock file {}; check that its directory is \
                         writable",
                        self.lock_path.display()
                    ),
                    e,
                )
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(StorageError::backend(
                "hybrid",
                format!("cannot lock {}", self.lock_path.display()),
                e,
            )),
        }
    }
}

/// Every live memory in upstream's tables, paged by hash.
async fn upstream_live_hashes(remote: &Remote) -> StorageResult<BTreeSet<ContentHash>> {
    let mut all = BTreeSet::new();
    let mut after: Option<ContentHash> = None;
    loop {
        let page = remote
            .storage
            .live_hashes_page(after.as_ref(), HASH_PAGE)
            .await?;
        let Some(last) = page.last().cloned() else {
            return Ok(all);
        };
        all.extend(page);
        after = Some(last);
    }
}

/// `<database>.sync-lock`, beside the database.
fn lock_path_of(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".sync-lock");
    db.with_file_name(name)
}

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `memory` carrying `vector` (a memory fetched from upstream keeps its timestamps).
fn with_embedding(memory: Memory, vector: Option<Vec<f32>>) -> Memory {
    match vector {
        Some(v) => memory.with_embedding(v),
        None => memory,
    }
}

impl std::fmt::Debug for SyncEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncEngine")
            .field("device", &self.device)
            .field("connected", &self.remote.initialized())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}
