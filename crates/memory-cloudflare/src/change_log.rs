//! The hybrid backend's change log in D1: every device pushes its changes here (with the
//! content and vectors it holds) and pulls the other devices' changes from here, in order.
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
//! * `content` — a store's content inline, or, above the store's large-content threshold,
//!   `content_r2_key`: the R2 object holding it, under the key the backend gives the
//!   memory's own large content (content is the memory's identity, so one object serves
//!   the log and upstream's row).
//!
//! A push is one D1 statement per page: `INSERT OR IGNORE … SELECT … FROM json_each(?)` with
//! the page as one JSON text parameter of at most [`MAX_PAGE_BYTES`] (D1 allows 2,000,000
//! bytes per string or row and 100 bound parameters per query, so row-per-parameter inserts
//! would need 50 times the requests). A pull is one query per page of at most
//! [`MAX_READ_ROWS`] rows and [`MAX_PAGE_BYTES`] of payload.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use cloudflare_d1::{D1Api, Param, Row, Statement};
use cloudflare_r2::{GetObject, PutObject, R2Api, R2Error};
use futures::{StreamExt, TryStreamExt};
use memory_core::ContentHash;
use memory_storage::{StorageError, StorageResult};
use memory_sync::{Change, DeviceId, SyncedChange};
use serde_json::{Value, json};

use crate::config::R2_BUCKET_ENV;
use crate::error_map::{bad_row, d1_error, r2_error};
use crate::rows::{int, text};
use crate::storage::DEFAULT_LARGE_CONTENT_THRESHOLD;

/// The most bytes of JSON pushed in one statement, and of payload pulled in one page: under
/// D1's 2,000,000-byte limit on a string or row, with room for the statement.
pub const MAX_PAGE_BYTES: usize = 1_800_000;

/// The most rows one [`ChangeLog::read_after`] returns, whatever the limit asked: a store
/// with a 384-dimension vector is about 2,048 bytes of base64, 400 of change and, typically,
/// under 1 KB of content, so 500 rows stay near 1.75 MB. Rows with more content end the page
/// earlier: the query also stops at [`MAX_PAGE_BYTES`] of payload.
pub const MAX_READ_ROWS: usize = 500;

/// R2 reads or writes sent at once for the large content of one page.
const PARALLEL_R2: usize = 6;

/// A change as pulled: its position in the log, the device that pushed it, and the change
/// with what travelled with it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedChange {
    /// The position in the log: pull the next page after the greatest one seen.
    pub seq: i64,
    /// The device that pushed it.
    pub device: DeviceId,
    /// The change, with its content and vector (both `None` when the read skipped this
    /// device's payloads, see [`ChangeLog::read_after`]).
    pub synced: SyncedChange,
}

/// What one [`ChangeLog::append`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Appended {
    /// D1 requests sent.
    pub requests: u64,
    /// R2 objects written (content above the large-content threshold).
    pub r2_requests: u64,
    /// Rows added (a change already in the log is not added again).
    pub added: u64,
}

/// Where content above the threshold goes: the store's bucket and key scheme.
#[derive(Clone)]
struct LargeContent {
    r2: Option<Arc<dyn R2Api>>,
    threshold: usize,
    /// The store's R2 key prefix; a memory's key is this and its hash.
    key_prefix: String,
}

/// The change log of one D1 database (and namespace).
#[derive(Clone)]
pub struct ChangeLog {
    d1: Arc<dyn D1Api>,
    table: String,
    large: LargeContent,
}

impl std::fmt::Debug for ChangeLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeLog")
            .field("table", &self.table)
            .field("r2", &self.large.r2.is_some())
            .field("large_content_threshold", &self.large.threshold)
            .finish_non_exhaustive()
    }
}

impl ChangeLog {
    /// The log of `d1`, for `namespace` (validated, see [`crate::Namespace`]) or none,
    /// without an R2 bucket: content above the default large-content threshold is refused.
    /// [`crate::CloudflareStorage::change_log`] gives the log of a store, with its bucket,
    /// threshold and key scheme.
    #[must_use]
    pub fn new(d1: Arc<dyn D1Api>, namespace: Option<&crate::Namespace>) -> Self {
        let key_prefix = match namespace {
            Some(n) => format!("{}/memories/", n.as_str()),
            None => "memories/".into(),
        };
        Self::with_large_content(
            d1,
            namespace,
            None,
            DEFAULT_LARGE_CONTENT_THRESHOLD,
            key_prefix,
        )
    }

    /// The log with the store's bucket, threshold and R2 key prefix.
    pub(crate) fn with_large_content(
        d1: Arc<dyn D1Api>,
        namespace: Option<&crate::Namespace>,
        r2: Option<Arc<dyn R2Api>>,
        threshold: usize,
        key_prefix: String,
    ) -> Self {
        let prefix = namespace
            .map(|n| format!("{}_", n.as_str()))
            .unwrap_or_default();
        Self {
            d1,
            table: format!("{prefix}mcp_memory_sync_changes"),
            large: LargeContent {
                r2,
                threshold,
                key_prefix,
            },
        }
    }

    /// The table's name.
    #[must_use]
    pub fn table(&self) -> &str {
        &self.table
    }

    fn r2_key(&self, hash: &ContentHash) -> String {
        format!("{}{}", self.large.key_prefix, hash.as_str())
    }

    /// Creates the table and its index if missing, and adds the `content` and
    /// `content_r2_key` columns to a table created before they existed. Safe to run from
    /// several devices at once.
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
                 content TEXT, content_r2_key TEXT, UNIQUE (hlc, content_hash))"
            ))
            .idempotent(true),
            Statement::new(format!(
                "CREATE INDEX IF NOT EXISTS idx_{t}_hash ON {t}(content_hash)"
            ))
            .idempotent(true),
            Statement::new(format!("PRAGMA table_info({t})")).idempotent(true),
        ];
        let results = self
            .d1
            .batch(statements)
            .await
            .map_err(|e| d1_error("creating the sync change log", e))?;
        let columns = results.last().map(column_names).unwrap_or_default();
        let alters = self.missing_columns(&columns);
        if alters.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.d1.batch(alters).await {
            // Another device may have added them at the same moment: fine if they are there.
            let again = self
                .d1
                .query(Statement::new(format!("PRAGMA table_info({t})")).idempotent(true))
                .await
                .map_err(|e| d1_error("reading the sync change log's columns", e))?;
            if !self.missing_columns(&column_names(&again)).is_empty() {
                return Err(d1_error("adding columns to the sync change log", e));
            }
        }
        Ok(())
    }

    /// `ALTER TABLE … ADD COLUMN` for the columns a log created by an older version lacks.
    fn missing_columns(&self, existing: &[String]) -> Vec<Statement> {
        ["content", "content_r2_key"]
            .into_iter()
            .filter(|c| !existing.iter().any(|e| e.eq_ignore_ascii_case(c)))
            .map(|c| {
                Statement::new(format!("ALTER TABLE {} ADD COLUMN {c} TEXT", self.table))
                    .idempotent(true)
            })
            .collect()
    }

    /// Appends `changes` in order, in pages of at most [`MAX_PAGE_BYTES`] of JSON, one D1
    /// request per page. Content above the large-content threshold is written to R2 first
    /// (so a row never names an object not yet written) and the row keeps its key.
    /// Idempotent: a change already in the log is skipped, so a page whose answer was lost
    /// can be sent again.
    ///
    /// # Errors
    ///
    /// [`StorageError::InvalidInput`] for a single change too large for one page, or for
    /// content above the threshold without an R2 bucket (naming `CLOUDFLARE_R2_BUCKET`);
    /// R2's or D1's error for a failed page (the pages before it are in the log).
    pub async fn append(&self, changes: &[SyncedChange]) -> StorageResult<Appended> {
        let mut done = Appended::default();
        let mut page: Vec<String> = Vec::new();
        let mut uploads: Vec<(String, &str)> = Vec::new();
        let mut bytes = 2;
        for c in changes {
            let r2_key = match c.content.as_deref() {
                Some(content) if content.len() > self.large.threshold => {
                    if self.large.r2.is_none() {
                        return Err(StorageError::invalid(
                            "content",
                            format!(
                                "memory {} has {} bytes of content, over the large-content \
                                 threshold of {} bytes, and no R2 bucket is configured; set \
                                 {R2_BUCKET_ENV}",
                                c.change.hash(),
                                content.len(),
                                self.large.threshold
                            ),
                        ));
                    }
                    let key = self.r2_key(c.change.hash());
                    uploads.push((key.clone(), content));
                    Some(key)
                }
                _ => None,
            };
            let item = row_json(c, r2_key.as_deref())?;
            if item.len() + 2 > MAX_PAGE_BYTES {
                return Err(StorageError::invalid(
                    "change",
                    format!(
                        "the change of memory {} is {} bytes as JSON, more than one D1 \
                         page holds ({MAX_PAGE_BYTES}); lower CLOUDFLARE_LARGE_CONTENT_THRESHOLD \
                         so such content goes to R2",
                        c.change.hash(),
                        item.len()
                    ),
                ));
            }
            if bytes + item.len() + 1 > MAX_PAGE_BYTES {
                done = self.push_page(&page, &mut uploads, done).await?;
                page.clear();
                bytes = 2;
            }
            bytes += item.len() + 1;
            page.push(item);
        }
        if !page.is_empty() {
            done = self.push_page(&page, &mut uploads, done).await?;
        }
        Ok(done)
    }

    /// Writes the page's R2 objects (taking them from `uploads`), then its rows.
    async fn push_page(
        &self,
        page: &[String],
        uploads: &mut Vec<(String, &str)>,
        mut done: Appended,
    ) -> StorageResult<Appended> {
        if let Some(r2) = &self.large.r2 {
            let n = uploads.len();
            // Owned bytes, not `&str`: a closure over a borrowed argument makes the future
            // not provably `Send` for every lifetime, and the sync engine spawns it.
            let owned: Vec<(String, Vec<u8>)> = uploads
                .drain(..)
                .map(|(key, content)| (key, content.as_bytes().to_vec()))
                .collect();
            futures::stream::iter(owned)
                .map(|(key, bytes)| async move {
                    r2.put_object(PutObject::new(key, bytes))
                        .await
                        .map(|_| ())
                        .map_err(|e| {
                            r2_error(
                                "writing large content for the sync log (nothing was pushed)",
                                e,
                            )
                        })
                })
                .buffer_unordered(PARALLEL_R2)
                .try_collect::<Vec<()>>()
                .await?;
            done.r2_requests += n as u64;
        }
        let t = &self.table;
        let s = Statement::new(format!(
            "INSERT OR IGNORE INTO {t} (hlc, device, content_hash, kind, change_json, vector, \
             content, content_r2_key) \
             SELECT json_extract(value, '$.hlc'), json_extract(value, '$.device'), \
             json_extract(value, '$.hash'), json_extract(value, '$.kind'), \
             json_extract(value, '$.change'), json_extract(value, '$.vector'), \
             json_extract(value, '$.content'), json_extract(value, '$.content_r2_key') \
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

    /// Up to `limit` changes after `cursor` (0 = from the start), in log order, in one D1
    /// query. A page holds at most [`MAX_READ_ROWS`] rows and stops before
    /// [`MAX_PAGE_BYTES`] of payload (always at least one row), so it may be shorter than
    /// `limit` with more to come: read until a page is empty.
    ///
    /// Rows pushed by `skip_payload_of` come without content or vector (that device
    /// holds them already; they are most of the bytes). Content kept in R2 is read back;
    /// an object that is gone reads as no content: it is removed only when the memory is
    /// deleted, and that Delete follows in the log.
    ///
    /// # Errors
    ///
    /// D1's or R2's error; a row that does not decode is an error naming its `seq`; a row
    /// whose content is in R2 without a bucket configured names `CLOUDFLARE_R2_BUCKET`.
    pub async fn read_after(
        &self,
        cursor: i64,
        limit: usize,
        skip_payload_of: Option<DeviceId>,
    ) -> StorageResult<Vec<LoggedChange>> {
        let limit = i64::try_from(limit.clamp(1, MAX_READ_ROWS)).unwrap_or(1);
        let skip = skip_payload_of.map(|d| d.to_string()).unwrap_or_default();
        // The payload columns are blanked for the skipped device *before* the running
        // byte count, so its rows cost nothing against the page's bound. `LIMIT` applies
        // first (in `page`), so the window only ever runs over one page of rows.
        let s = Statement::new(format!(
            "WITH page AS (SELECT seq, device, change_json, \
             CASE WHEN device = ?2 THEN NULL ELSE vector END AS vector, \
             CASE WHEN device = ?2 THEN NULL ELSE content END AS content, \
             CASE WHEN device = ?2 THEN NULL ELSE content_r2_key END AS content_r2_key \
             FROM {t} WHERE seq > CAST(?1 AS INTEGER) ORDER BY seq LIMIT CAST(?3 AS INTEGER)), \
             sized AS (SELECT *, SUM(length(change_json) + IFNULL(length(vector), 0) + \
             IFNULL(length(CAST(content AS BLOB)), 0)) OVER (ORDER BY seq) AS running FROM page) \
             SELECT seq, device, change_json, vector, content, content_r2_key FROM sized \
             WHERE running <= CAST(?4 AS INTEGER) OR seq = (SELECT MIN(seq) FROM page) \
             ORDER BY seq",
            t = self.table
        ))
        .bind(Param::Integer(cursor))
        .bind(skip)
        .bind(Param::Integer(limit))
        .bind(Param::Integer(MAX_PAGE_BYTES as i64))
        .idempotent(true);
        let r = self
            .d1
            .query(s)
            .await
            .map_err(|e| d1_error("pulling changes from the sync log", e))?;
        let decoded: Vec<(LoggedChange, Option<String>)> = r
            .rows
            .iter()
            .map(decode_row)
            .collect::<StorageResult<_>>()?;
        futures::stream::iter(decoded)
            .map(|(mut logged, key)| async move {
                if let Some(key) = key {
                    logged.synced.content = self.read_object(logged.seq, &key).await?;
                }
                Ok::<_, StorageError>(logged)
            })
            .buffered(PARALLEL_R2)
            .try_collect()
            .await
    }

    /// The content kept in R2 under `key` for log row `seq`; `None` when the object is gone.
    async fn read_object(&self, seq: i64, key: &str) -> StorageResult<Option<String>> {
        let Some(r2) = &self.large.r2 else {
            return Err(StorageError::Backend {
                backend: crate::error_map::BACKEND.into(),
                message: format!(
                    "sync log row {seq} keeps its content in R2 ({key}) but no R2 bucket is \
                     configured; set {R2_BUCKET_ENV}"
                ),
                source: None,
            });
        };
        match r2.get_object(GetObject::new(key)).await {
            Ok(o) => String::from_utf8(o.body.to_vec())
                .map(Some)
                .map_err(|_| bad_row(format!("the R2 object {key} is not UTF-8 text"))),
            Err(R2Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(r2_error("reading large content from the sync log", e)),
        }
    }

    /// The greatest `seq` in the log (0 when it is empty).
    ///
    /// # Errors
    ///
    /// D1's error.
    pub async fn latest_seq(&self) -> StorageResult<i64> {
        let s =
            Statement::new(format!("SELECT MAX(seq) AS seq FROM {}", self.table)).idempotent(true);
        let r = self
            .d1
            .query(s)
            .await
            .map_err(|e| d1_error("reading the sync log's last position", e))?;
        Ok(r.rows.first().and_then(|row| int(row, "seq")).unwrap_or(0))
    }

    /// The memories `device` changed at positions after `after` up to `up_to` (inclusive),
    /// with each position, in log order: what a device must project again after a crash
    /// between pulling its own changes and projecting them. One D1 query of about 100
    /// bytes per row.
    ///
    /// # Errors
    ///
    /// D1's error; a row with a malformed hash is an error naming its `seq`.
    pub async fn hashes_of_device_between(
        &self,
        after: i64,
        up_to: i64,
        device: DeviceId,
    ) -> StorageResult<Vec<(i64, ContentHash)>> {
        let s = Statement::new(format!(
            "SELECT seq, content_hash FROM {} WHERE seq > CAST(? AS INTEGER) \
             AND seq <= CAST(? AS INTEGER) AND device = ? ORDER BY seq",
            self.table
        ))
        .bind(Param::Integer(after))
        .bind(Param::Integer(up_to))
        .bind(device.to_string())
        .idempotent(true);
        let r = self
            .d1
            .query(s)
            .await
            .map_err(|e| d1_error("reading a device's changes from the sync log", e))?;
        r.rows
            .iter()
            .map(|row| {
                let seq = int(row, "seq").ok_or_else(|| bad_row("a sync log row without seq"))?;
                let hash = text(row, "content_hash")
                    .unwrap_or_default()
                    .parse::<ContentHash>()
                    .map_err(|e| bad_row(format!("sync log row {seq}: {e}")))?;
                Ok((seq, hash))
            })
            .collect()
    }

    /// Which of `hashes` the log holds any change of (one D1 query per 1,000 hashes, on
    /// the hash index). What a full sync must not import from upstream's tables as if no
    /// device had written it: those memories reach every device through the log, with
    /// their own stamps.
    ///
    /// # Errors
    ///
    /// D1's error.
    pub async fn logged_hashes(
        &self,
        hashes: &[ContentHash],
    ) -> StorageResult<std::collections::BTreeSet<ContentHash>> {
        let mut found = std::collections::BTreeSet::new();
        for chunk in hashes.chunks(1000) {
            let list: Vec<&str> = chunk.iter().map(ContentHash::as_str).collect();
            let s = Statement::new(format!(
                "SELECT DISTINCT content_hash FROM {} WHERE content_hash IN \
                 (SELECT value FROM json_each(?))",
                self.table
            ))
            .bind(Value::from(list).to_string())
            .idempotent(true);
            let r = self
                .d1
                .query(s)
                .await
                .map_err(|e| d1_error("looking memories up in the sync log", e))?;
            for row in &r.rows {
                if let Some(Ok(hash)) = text(row, "content_hash").map(|t| t.parse()) {
                    found.insert(hash);
                }
            }
        }
        Ok(found)
    }
}

/// The names in a `PRAGMA table_info` answer.
fn column_names(r: &cloudflare_d1::QueryResult) -> Vec<String> {
    r.rows.iter().filter_map(|row| text(row, "name")).collect()
}

/// One pulled row, and the R2 key of its content when that is in R2.
fn decode_row(row: &Row) -> StorageResult<(LoggedChange, Option<String>)> {
    let seq = int(row, "seq").ok_or_else(|| bad_row("a sync log row without seq"))?;
    let fail = |what: String| bad_row(format!("sync log row {seq}: {what}"));
    let device = text(row, "device")
        .unwrap_or_default()
        .parse::<DeviceId>()
        .map_err(|e| fail(e.to_string()))?;
    let json = text(row, "change_json").ok_or_else(|| fail("no change".into()))?;
    let change: Change = serde_json::from_str(&json).map_err(|e| fail(e.to_string()))?;
    let vector = text(row, "vector")
        .map(|v| decode_vector(&v))
        .transpose()
        .map_err(fail)?;
    let logged = LoggedChange {
        seq,
        device,
        synced: SyncedChange {
            change,
            content: text(row, "content"),
            vector,
        },
    };
    Ok((logged, text(row, "content_r2_key")))
}

/// One change as the JSON object the push statement reads: content inline, or the R2 key
/// holding it.
fn row_json(c: &SyncedChange, r2_key: Option<&str>) -> StorageResult<String> {
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
        "content": if r2_key.is_some() { None } else { c.content.as_deref() },
        "content_r2_key": r2_key,
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

    fn changes(n: usize) -> Vec<SyncedChange> {
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
                let store = matches!(change, Change::Store { .. });
                SyncedChange {
                    change,
                    content: store.then(|| format!("memory {i}")),
                    vector: store.then(|| vec![i as f32; 384]),
                }
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
            let page = log.read_after(cursor, 300, None).await.unwrap();
            let Some(last) = page.last() else { break };
            cursor = last.seq;
            pulled.extend(page);
        }
        assert_eq!(pulled.len(), 1_000);
        assert!(pulled.windows(2).all(|w| w[0].seq < w[1].seq));
        for (p, l) in pushed.iter().zip(&pulled) {
            assert_eq!(p, &l.synced);
            assert_eq!(l.device, DeviceId::from_u128(7));
        }
    }
}
