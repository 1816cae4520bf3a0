//! The hybrid backend's change log in D1: every device pushes its changes here (with the
//! vectors it computed) and pulls the other devices' changes from here, in order.
//!
//! One table, `[namespace_]mcp_memory_sync_changes`, beside upstream's (which it does not
//! touch, so the Python service keeps reading those):
//!
//! * `seq INTEGER PRIMARY KEY AUTOINCREMENT` — the pull order. D1 runs one transaction at a
//!   time, so rows commit in `seq` order and a page boundary (`seq > cursor`) can never skip
//!   a row committed later with a smaller `seq`.
//! * `hlc`, `device`, `content_hash`, `kind` — the change's stamp and subject, in columns so
//!   that `UNIQUE (hlc, content_hash)` makes a push idempotent: a page pushed again (its
//!   answer lost, the request retried) adds nothing.
//! * `change_json` — the [`Change`] as JSON; `vector` — the memory's vector for a store,
//!   little-endian `f32`s in base64, so a device pulls memories *with* their vectors from D1
//!   in pages of hundreds (Vectorize's `get_by_ids` takes 20 ids a call) and never embeds
//!   what another device embedded.
//!
//! A push is one D1 statement per page: `INSERT OR IGNORE … SELECT … FROM json_each(?)` with
//! the page as one JSON text parameter of at most [`MAX_PAGE_BYTES`] (D1 allows 2,000,000
//! bytes per string or row and 100 bound parameters per query, so row-per-parameter inserts
//! would need 50 times the requests).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use cloudflare_d1::{D1Api, Param, Statement};
use memory_storage::{StorageError, StorageResult};
use memory_sync::Change;
use serde_json::{Value, json};

use crate::error_map::{bad_row, d1_error};
use crate::rows::{int, text};

/// The most bytes of JSON pushed in one statement: under D1's 2,000,000-byte limit on a
/// string, with room for the statement.
pub const MAX_PAGE_BYTES: usize = 1_800_000;

/// A change as pushed: the change and, for a store, the vector of the memory.
#[derive(Debug, Clone, PartialEq)]
pub struct PushedChange {
    /// The change.
    pub change: Change,
    /// The memory's vector (stores only; `None` for updates and deletes).
    pub vector: Option<Vec<f32>>,
}

/// A change as pulled: its position in the log, the change, and the vector if one travelled
/// with it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedChange {
    /// The position in the log: pull the next page after the greatest one seen.
    pub seq: i64,
    /// The change.
    pub change: Change,
    /// The memory's vector, for a store.
    pub vector: Option<Vec<f32>>,
}

/// What one [`ChangeLog::append`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Appended {
    /// D1 requests sent.
    pub requests: u64,
    /// Rows added (a change already in the log is not added again).
    pub added: u64,
}

/// The change log of one D1 database (and namespace).
#[derive(Clone)]
pub struct ChangeLog {
    d1: Arc<dyn D1Api>,
    table: String,
}

impl std::fmt::Debug for ChangeLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeLog")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl ChangeLog {
    /// The log of `d1`, for `namespace` (validated, see [`crate::Namespace`]) or none.
    #[must_use]
    pub fn new(d1: Arc<dyn D1Api>, namespace: Option<&crate::Namespace>) -> Self {
        let prefix = namespace
            .map(|n| format!("{}_", n.as_str()))
            .unwrap_or_default();
        Self {
            d1,
            table: format!("{prefix}mcp_memory_sync_changes"),
        }
    }

    /// The table's name.
    #[must_use]
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table and its index if missing (safe to run from several devices at once).
    ///
    /// # Errors
    ///
    /// D1's error.
    pub async fn ensure_table(&self) -> StorageResult<()> {
        let t = &self.table;
        let statements = vec![
            Statement::new(format!(
                "CREATE TABLE IF NOT EXISTS {t} (seq INTEGER PRIMARY KEY AUTOINCREMENT, \
                 hlc TEXT NOT NULL, device TEXT NOT NULL, content_hash TEXT NOT NULL, \
                 kind TEXT NOT NULL, change_json TEXT NOT NULL, vector TEXT, \
                 UNIQUE (hlc, content_hash))"
            ))
            .idempotent(true),
            Statement::new(format!(
                "CREATE INDEX IF NOT EXISTS idx_{t}_hash ON {t}(content_hash)"
            ))
            .idempotent(true),
        ];
        self.d1
            .batch(statements)
            .await
            .map(|_| ())
            .map_err(|e| d1_error("creating the sync change log", e))
    }

    /// Appends `changes` in order, in pages of at most [`MAX_PAGE_BYTES`] of JSON, one D1
    /// request per page. Idempotent: a change already in the log is skipped, so a page
    /// whose answer was lost can be sent again.
    ///
    /// # Errors
    ///
    /// [`StorageError::InvalidInput`] for a single change too large for one page; D1's error
    /// for a failed page (the pages before it are in the log).
    pub async fn append(&self, changes: &[PushedChange]) -> StorageResult<Appended> {
        let mut done = Appended::default();
        let mut page: Vec<String> = Vec::new();
        let mut bytes = 2;
        for c in changes {
            let item = row_json(c)?;
            if item.len() + 2 > MAX_PAGE_BYTES {
                return Err(StorageError::invalid(
                    "change",
                    format!(
                        "the change of memory {} is {} bytes as JSON, more than one D1 \
                         page holds ({MAX_PAGE_BYTES})",
                        c.change.hash(),
                        item.len()
                    ),
                ));
            }
            if bytes + item.len() + 1 > MAX_PAGE_BYTES {
                done = self.push_page(&page, done).await?;
                page.clear();
                bytes = 2;
            }
            bytes += item.len() + 1;
            page.push(item);
        }
        if !page.is_empty() {
            done = self.push_page(&page, done).await?;
        }
        Ok(done)
    }

    async fn push_page(&self, page: &[String], mut done: Appended) -> StorageResult<Appended> {
        let t = &self.table;
        let s = Statement::new(format!(
            "INSERT OR IGNORE INTO {t} (hlc, device, content_hash, kind, change_json, vector) \
             SELECT json_extract(value, '$.hlc'), json_extract(value, '$.device'), \
             json_extract(value, '$.hash'), json_extract(value, '$.kind'), \
             json_extract(value, '$.change'), json_extract(value, '$.vector') \
             FROM json_each(?) ORDER BY key"
        ))
        .bind(format!("[{}]", page.join(",")))
        // `UNIQUE (hlc, content_hash)` makes a repeat add nothing.
        .idempotent(true);
        let r = self
            .d1
            .query(s)
            .await
            .map_err(|e| d1_error("pushing changes to the sync log", e))?;
        done.requests += 1;
        done.added += r.meta.changes.unwrap_or(0);
        Ok(done)
    }

    /// Up to `limit` changes after `cursor` (0 = from the start), in log order.
    ///
    /// # Errors
    ///
    /// D1's error; a row that does not decode is an error naming its `seq`.
    pub async fn read_after(&self, cursor: i64, limit: usize) -> StorageResult<Vec<LoggedChange>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let s = Statement::new(format!(
            "SELECT seq, change_json, vector FROM {} WHERE seq > CAST(? AS INTEGER) \
             ORDER BY seq LIMIT CAST(? AS INTEGER)",
            self.table
        ))
        .bind(Param::Integer(cursor))
        .bind(Param::Integer(limit))
        .idempotent(true);
        let r = self
            .d1
            .query(s)
            .await
            .map_err(|e| d1_error("pulling changes from the sync log", e))?;
        r.rows
            .iter()
            .map(|row| {
                let seq = int(row, "seq").ok_or_else(|| bad_row("a sync log row without seq"))?;
                let json = text(row, "change_json")
                    .ok_or_else(|| bad_row(format!("sync log row {seq} has no change")))?;
                let change: Change = serde_json::from_str(&json)
                    .map_err(|e| bad_row(format!("sync log row {seq}: {e}")))?;
                let vector = text(row, "vector")
                    .map(|v| decode_vector(&v))
                    .transpose()
                    .map_err(|e| bad_row(format!("sync log row {seq}: {e}")))?;
                Ok(LoggedChange {
                    seq,
                    change,
                    vector,
                })
            })
            .collect()
    }
}

/// One change as the JSON object the push statement reads.
fn row_json(c: &PushedChange) -> StorageResult<String> {
    let kind = match &c.change {
        Change::Store { .. } => "store",
        Change::Update { .. } => "update",
        Change::Delete { .. } => "delete",
    };
    let at = c.change.at();
    let change = serde_json::to_string(&c.change)
        .map_err(|e| StorageError::invalid("change", e.to_string()))?;
    let obj = json!({
        "hlc": at.to_string(),
        "device": at.device.to_string(),
        "hash": c.change.hash().as_str(),
        "kind": kind,
        "change": change,
        "vector": c.vector.as_deref().map(encode_vector),
    });
    Ok(Value::to_string(&obj))
}

/// A vector as base64 of its little-endian `f32`s.
fn encode_vector(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    BASE64.encode(bytes)
}

/// The inverse of [`encode_vector`].
fn decode_vector(text: &str) -> Result<Vec<f32>, String> {
    let bytes = BASE64
        .decode(text)
        .map_err(|e| format!("the vector is not base64: {e}"))?;
    if bytes.len() % 4 != 0 {
        return Err(format!(
            "the vector has {} bytes, not a whole number of f32s",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use memory_core::{ContentHash, Metadata, Tags, Timestamp};
    use memory_sync::{DeviceId, Fields, HybridClock};
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn vectors_round_trip_bit_for_bit(v in proptest::collection::vec(any::<f32>(), 0..400)) {
            let back = decode_vector(&encode_vector(&v)).unwrap();
            prop_assert_eq!(
                back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn a_truncated_vector_is_an_error_saying_why() {
        let err = decode_vector(&BASE64.encode([1u8, 2, 3])).unwrap_err();
        assert!(err.contains("whole number of f32s"), "{err}");
    }

    fn changes(n: usize) -> Vec<PushedChange> {
        let clock = HybridClock::new(DeviceId::from_u128(7), None);
        (0..n)
            .map(|i| {
                let hash = ContentHash::of(&format!("memory {i}"));
                let at = clock.tick(1_000).unwrap();
                let change = if i % 3 == 2 {
                    Change::Delete { hash, at }
                } else {
                    Change::Store {
                        hash,
                        fields: Fields {
                            tags: Tags::parse(vec![format!("t{i}")]).unwrap(),
                            memory_type: Some("note".into()),
                            metadata: Metadata::default(),
                            created_at: Timestamp::from_epoch_seconds(1.0).unwrap(),
                            updated_at: Timestamp::from_epoch_seconds(1.0).unwrap(),
                        },
                        at,
                    }
                };
                let vector = matches!(change, Change::Store { .. }).then(|| vec![i as f32; 384]);
                PushedChange { change, vector }
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changes_are_pushed_in_few_pages_once_and_pulled_in_order_with_their_vectors() {
        let (parts, _emulator) =
            crate::testing::emulator_parts(crate::testing::local_embedder()).await;
        let log = ChangeLog::new(parts.d1.clone(), None);
        log.ensure_table().await.unwrap();
        log.ensure_table().await.unwrap();
        let pushed = changes(1_000);
        let first = log.append(&pushed).await.unwrap();
        assert_eq!(first.added, 1_000);
        // About 1.4 KB per store (a 384-dimension vector in base64): two pages of 1.8 MB.
        assert!(first.requests <= 2, "{first:?}");
        let again = log.append(&pushed[..500]).await.unwrap();
        assert_eq!(again.added, 0, "a page pushed again adds nothing");

        let mut pulled: Vec<LoggedChange> = Vec::new();
        let mut cursor = 0;
        loop {
            let page = log.read_after(cursor, 300).await.unwrap();
            let Some(last) = page.last() else { break };
            cursor = last.seq;
            pulled.extend(page);
        }
        assert_eq!(pulled.len(), 1_000);
        assert!(pulled.windows(2).all(|w| w[0].seq < w[1].seq));
        for (p, l) in pushed.iter().zip(&pulled) {
            assert_eq!(p.change, l.change);
            assert_eq!(p.vector, l.vector);
        }
    }
}
