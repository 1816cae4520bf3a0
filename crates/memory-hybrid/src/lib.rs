//! The hybrid backend (issue 15, being built): every read and write served by the local
//! SQLite store, Cloudflare kept in step in the background, every device converging by the
//! rules of [`memory_sync`].
//!
//! Built so far: [`push_pending`], which moves the local outbox (the changes
//! `memory-sqlite` records in the same transaction as each write) to the D1 change log
//! ([`memory_cloudflare::change_log`]), with the vector of every stored memory, then
//! acknowledges it. A crash between the push and the acknowledgement only pushes the page
//! again, which the log absorbs.

use memory_cloudflare::change_log::ChangeLog;
use memory_core::ContentHash;
use memory_sqlite::SqliteStorage;
use memory_storage::{MemoryStorage, StorageResult};
use memory_sync::{Change, SyncedChange};

/// Changes read from the outbox per page by default.
pub const DEFAULT_PUSH_PAGE: usize = 500;

/// What one [`push_pending`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Changes pushed (and acknowledged locally).
    pub changes: u64,
    /// Of those, changes the log did not hold yet (a page pushed again adds nothing).
    pub added: u64,
    /// D1 requests sent.
    pub d1_requests: u64,
}

/// Pushes every change of `local`'s outbox to `log`, `page` changes at a time (oldest
/// first), each store with the memory's stored vector, and acknowledges each page once the
/// log has it.
///
/// Why the vector is read at push time: the outbox row is written in the write's own
/// transaction and keeps only the change; the vector is the row's, and a memory deleted
/// since has none to send (its later Delete follows in the same or a later page).
///
/// # Errors
///
/// The first failing read, push or acknowledgement; the pages before it stay pushed and
/// acknowledged, the rest stay in the outbox for the next call.
pub async fn push_pending(
    local: &SqliteStorage,
    log: &ChangeLog,
    page: usize,
) -> StorageResult<PushReport> {
    let mut report = PushReport::default();
    // Read after the last seq pushed, not from 0: the loop ends even if an ack removed
    // nothing (another process on the same file acked first).
    let mut after = 0;
    loop {
        let entries = local.pending_changes(after, page.max(1)).await?;
        let Some(last) = entries.last().map(|e| e.seq) else {
            return Ok(report);
        };
        after = last;
        let stores: Vec<ContentHash> = entries
            .iter()
            .filter(|e| matches!(e.change, Change::Store { .. }))
            .map(|e| e.change.hash().clone())
            .collect();
        let vectors = local.get_embeddings(&stores).await?;
        let mut by_hash = stores.into_iter().zip(vectors);
        let pushed: Vec<SyncedChange> = entries
            .into_iter()
            .map(|e| {
                let vector = match e.change {
                    // `by_hash` is in the same order as the stores of this page.
                    Change::Store { .. } => by_hash.next().and_then(|(_, v)| v),
                    _ => None,
                };
                SyncedChange {
                    change: e.change,
                    content: None,
                    vector,
                }
            })
            .collect();
        let appended = log.append(&pushed).await?;
        local.ack_changes(last).await?;
        report.changes += pushed.len() as u64;
        report.added += appended.added;
        report.d1_requests += appended.requests;
    }
}
