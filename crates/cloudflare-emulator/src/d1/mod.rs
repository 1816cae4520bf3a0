//! D1: each database is a real SQLite database (in memory, or
//! `data_dir/d1/<database_id>.sqlite3` when [`EmulatorConfig::data_dir`] is set), served
//! through Cloudflare's two REST endpoints:
//!
//! | endpoint | body | result |
//! |---|---|---|
//! | `POST /accounts/{account_id}/d1/database/{database_id}/query` | `{"sql", "params"}` or `{"batch": [{"sql", "params"}…]}` | one `{results: [row objects], success, meta}` per statement |
//! | `POST /accounts/{account_id}/d1/database/{database_id}/raw` | the same | one `{results: {columns, rows: [[…]]}, success, meta}` per statement |
//!
//! # Semantics (from Cloudflare's OpenAPI spec and the D1 documentation)
//!
//! - **One transaction per request.** Every statement of a request — the statements of a
//!   `batch`, and the semicolon-joined statements of one `sql` — runs in one SQLite
//!   transaction: if any fails, everything the request did is rolled back and the answer
//!   is the error alone. `BEGIN`, `COMMIT`, `SAVEPOINT`… in the SQL are refused (D1 runs on
//!   workerd's SQLite, which refuses them with the message of `exec::NO_TRANSACTIONS`).
//! - **Statements** are split where SQLite's `sqlite3_complete()` would end them (quotes,
//!   comments and trigger bodies are respected); each gets its own result element.
//! - **Parameters** bind to the last statement of a multi-statement `sql`; an earlier
//!   statement with parameters is an error, as D1 documents for multi-statement queries.
//!   A count that does not match the statement's is D1's "Wrong number of parameter
//!   bindings for SQL query.". The spec types parameters as strings and they are bound as
//!   TEXT, so SQLite's column affinity turns numeric text into INTEGER/REAL in such
//!   columns, as on D1. JSON numbers, booleans and `null` (outside the spec, which
//!   Cloudflare's API accepts from its JavaScript callers) are bound as INTEGER/REAL/NULL.
//! - **Values out**: INTEGER and REAL are JSON numbers (a non-finite REAL is `null`, as
//!   JavaScript serializes it), TEXT a string, NULL `null`, BLOB an array of byte values
//!   (what D1 returns for an `ArrayBuffer` column).
//! - **Errors**: an SQL error is HTTP 400 with code 7500 and D1's message,
//!   `<SQLite message>[ at offset N]: <SQLITE_PRIMARY_CODE>`, e.g.
//!   `no such table: x: SQLITE_ERROR`. A database id that is not a UUID is HTTP 400 code
//!   7400 "The request is malformed: failed to decode id" (what Cloudflare answers); a
//!   body that is not valid JSON of the spec's shape is HTTP 400 code 7400 too.
//! - **Limits** (<https://developers.cloudflare.com/d1/platform/limits/>) are set on each
//!   connection so SQLite itself enforces them, with SQLite's own messages: 100 bound
//!   parameters per statement, 100,000-byte statements, 2,000,000-byte strings/BLOBs/rows,
//!   100 columns per table, 32 arguments per SQL function, 50-byte LIKE/GLOB patterns, no
//!   ATTACH; and 30 seconds per request (`MAX_QUERY_DURATION`).
//! - **meta**: `changes` (rows changed by the statement, from `sqlite3_total_changes()`),
//!   `last_row_id` (`last_insert_rowid()`), `changed_db`, `duration` and
//!   `timings.sql_duration_ms` (milliseconds), `rows_read` (best effort: the larger of the
//!   rows returned and SQLite's full-scan steps), `rows_written` (best effort: rows changed,
//!   without index entries), `size_after` (`page_count * page_size`), and fixed
//!   `served_by_region` `WEUR`, `served_by_colo` `LHR`, `served_by_primary` `true`.
//!
//! # Deviations (deliberate)
//!
//! - **Databases are created on first use**: the spec subset has no database management
//!   endpoints (create/list/delete are not among the paths this project uses), so any
//!   well-formed database id (a UUID) names a database that is created, empty, by its first
//!   query. Cloudflare instead answers an unknown id with HTTP 404 (code 7404 here); call
//!   [`D1::set_create_on_first_use`]`(false)` to get that behaviour, and
//!   [`D1::create_database`] / [`D1::delete_database`] to manage databases from Rust.
//! - Limits not emulated: database size (10 GB), result size (50 MB), per-account counts.
//! - The 30 s limit interrupts SQLite (`exec::TIMED_OUT` is the message, code 7500); the
//!   D1 wording of that error is not documented.
//!
//! [`EmulatorConfig::data_dir`]: crate::EmulatorConfig::data_dir

mod exec;
mod split;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use rusqlite::Connection;
use serde_json::Value;

use crate::config::EmulatorConfig;
use crate::envelope::{ApiError, ApiResult};
pub use exec::{Param, Query, Shape};

/// D1's limit on the duration of a query (30 seconds).
pub(crate) const MAX_QUERY_DURATION: Duration = Duration::from_secs(30);
/// The largest request body accepted (Cloudflare's request body limit, 100 MB).
pub(crate) const MAX_BODY_BYTES: usize = 100_000_000;
/// Cloudflare's code for an SQL error.
pub(crate) const CODE_SQL_ERROR: u32 = 7500;
/// Cloudflare's code for a malformed request.
pub(crate) const CODE_MALFORMED: u32 = 7400;
/// The code for an unknown database (with [`D1::set_create_on_first_use`]`(false)`); not
/// documented by Cloudflare, chosen to match its 7xxx D1 codes and HTTP 404.
pub(crate) const CODE_NOT_FOUND: u32 = 7404;
/// The code for a method a D1 path does not serve (not documented; plausible).
pub(crate) const CODE_METHOD_NOT_ALLOWED: u32 = 7001;

/// One database: its connection, and what the time limit needs to interrupt it.
struct Database {
    conn: Mutex<Connection>,
    interrupt: rusqlite::InterruptHandle,
    /// The request running on the connection (0 = none).
    running: AtomicU64,
}

impl Database {
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The D1 service's state: its databases.
pub struct D1 {
    dir: Option<PathBuf>,
    databases: Mutex<HashMap<String, Arc<Database>>>,
    create_on_first_use: AtomicBool,
    query_timeout_ms: AtomicU64,
    next_request: AtomicU64,
}

impl std::fmt::Debug for D1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("D1")
            .field("dir", &self.dir)
            .field("databases", &self.database_ids())
            .field("create_on_first_use", &self.creates_on_first_use())
            .finish_non_exhaustive()
    }
}

/// The canonical (lower-case) form of a UUID database id, or `None` if `id` is not one.
#[must_use]
pub(crate) fn normalize_database_id(id: &str) -> Option<String> {
    let groups: Vec<&str> = id.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    if groups.len() != lengths.len()
        || groups
            .iter()
            .zip(lengths)
            .any(|(g, n)| g.len() != n || !g.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return None;
    }
    Some(id.to_ascii_lowercase())
}

/// A fresh random database id (a version 4 UUID, as Cloudflare assigns).
#[must_use]
pub fn new_database_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn malformed(detail: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(
        CODE_MALFORMED,
        format!("The request is malformed: {detail}"),
    )
}

fn parse_param(value: &Value) -> Result<Param, ApiError> {
    Ok(match value {
        Value::String(s) => Param::Text(s.clone()),
        Value::Null => Param::Null,
        Value::Bool(b) => Param::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Param::Integer(i),
            None => Param::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::Array(_) | Value::Object(_) => {
            return Err(malformed("params must be an array of strings"));
        }
    })
}

fn parse_query(value: &Value) -> Result<Query, ApiError> {
    let object = value
        .as_object()
        .ok_or_else(|| malformed("a query must be an object with `sql`"))?;
    let sql = object
        .get("sql")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("`sql` is required and must be a string"))?;
    let params = match object.get("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(parse_param).collect::<Result<_, _>>()?,
        Some(_) => return Err(malformed("params must be an array of strings")),
    };
    Ok(Query {
        sql: sql.to_owned(),
        params,
    })
}

/// Parses a `/query` or `/raw` body: `{"sql", "params"}` or `{"batch": [...]}`.
///
/// # Errors
///
/// HTTP 400 code 7400 when the body is not JSON of that shape.
pub(crate) fn parse_body(body: &[u8]) -> Result<Vec<Query>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(malformed)?;
    match value.as_object().and_then(|o| o.get("batch")) {
        Some(Value::Array(items)) => items.iter().map(parse_query).collect(),
        Some(_) => Err(malformed("`batch` must be an array of queries")),
        None => Ok(vec![parse_query(&value)?]),
    }
}

impl D1 {
    /// Opens the service's storage (`data_dir/d1/`, created if missing).
    ///
    /// # Errors
    ///
    /// If its directory cannot be created.
    pub fn new(config: &Arc<EmulatorConfig>) -> anyhow::Result<Arc<Self>> {
        let dir = match &config.data_dir {
            Some(data_dir) => {
                let dir = data_dir.join("d1");
                std::fs::create_dir_all(&dir)?;
                Some(dir)
            }
            None => None,
        };
        Ok(Arc::new(Self {
            dir,
            databases: Mutex::default(),
            create_on_first_use: AtomicBool::new(true),
            query_timeout_ms: AtomicU64::new(millis(MAX_QUERY_DURATION)),
            next_request: AtomicU64::new(1),
        }))
    }

    /// Whether an unknown (well-formed) database id is created by its first query (the
    /// default), or answered with HTTP 404 code 7404 as Cloudflare does.
    pub fn set_create_on_first_use(&self, create: bool) {
        self.create_on_first_use.store(create, Ordering::Relaxed);
    }

    /// See [`D1::set_create_on_first_use`].
    #[must_use]
    pub fn creates_on_first_use(&self) -> bool {
        self.create_on_first_use.load(Ordering::Relaxed)
    }

    /// Changes the per-request time limit (default 30 seconds).
    pub fn set_query_timeout(&self, timeout: Duration) {
        self.query_timeout_ms
            .store(millis(timeout).max(1), Ordering::Relaxed);
    }

    fn query_timeout(&self) -> Duration {
        Duration::from_millis(self.query_timeout_ms.load(Ordering::Relaxed))
    }

    fn databases(&self) -> MutexGuard<'_, HashMap<String, Arc<Database>>> {
        self.databases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn file_of(&self, id: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|dir| dir.join(format!("{id}.sqlite3")))
    }

    fn open(&self, id: &str) -> anyhow::Result<Arc<Database>> {
        let conn = match self.file_of(id) {
            Some(path) => {
                let conn = Connection::open(path)?;
                conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
                conn
            }
            None => Connection::open_in_memory()?,
        };
        // D1 enforces foreign keys by default.
        conn.execute_batch("PRAGMA foreign_keys = ON;")?;
        exec::apply_limits(&conn);
        Ok(Arc::new(Database {
            interrupt: conn.get_interrupt_handle(),
            conn: Mutex::new(conn),
            running: AtomicU64::new(0),
        }))
    }

    /// The database `id` (canonical form), opening it from disk or creating it if allowed.
    fn database(&self, id: &str, create: bool) -> Result<Arc<Database>, ApiError> {
        let mut databases = self.databases();
        if let Some(db) = databases.get(id) {
            return Ok(Arc::clone(db));
        }
        let on_disk = self.file_of(id).is_some_and(|p| p.exists());
        if !on_disk && !create {
            return Err(ApiError::not_found(
                CODE_NOT_FOUND,
                format!("The database {id} could not be found."),
            ));
        }
        let db = self.open(id).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                CODE_SQL_ERROR,
                format!("could not open the database: {e}"),
            )
        })?;
        databases.insert(id.to_owned(), Arc::clone(&db));
        Ok(db)
    }

    /// Creates the database `id` (a UUID); `Ok(false)` if it already exists.
    ///
    /// # Errors
    ///
    /// If `id` is not a UUID or the database cannot be opened.
    pub fn create_database(&self, id: &str) -> anyhow::Result<bool> {
        let id = normalize_database_id(id)
            .ok_or_else(|| anyhow::anyhow!("a D1 database id is a UUID, not {id:?}"))?;
        let existed =
            self.databases().contains_key(&id) || self.file_of(&id).is_some_and(|p| p.exists());
        self.database(&id, true)
            .map_err(|e| anyhow::anyhow!(e.message))?;
        Ok(!existed)
    }

    /// Creates the database `id` unless it exists.
    ///
    /// # Errors
    ///
    /// As [`D1::create_database`].
    pub fn ensure_database(&self, id: &str) -> anyhow::Result<()> {
        self.create_database(id).map(|_| ())
    }

    /// Deletes the database `id` and its file; `Ok(false)` if there was none.
    ///
    /// # Errors
    ///
    /// If `id` is not a UUID or its file cannot be removed.
    pub fn delete_database(&self, id: &str) -> anyhow::Result<bool> {
        let id = normalize_database_id(id)
            .ok_or_else(|| anyhow::anyhow!("a D1 database id is a UUID, not {id:?}"))?;
        let mut existed = self.databases().remove(&id).is_some();
        if let Some(path) = self.file_of(&id) {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let file = PathBuf::from(format!("{}{suffix}", path.display()));
                if file.exists() {
                    std::fs::remove_file(&file)?;
                    existed = true;
                }
            }
        }
        Ok(existed)
    }

    /// The ids of every database (open, or on disk).
    #[must_use]
    pub fn database_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.databases().keys().cloned().collect();
        if let Some(dir) = &self.dir
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(id) = name.strip_suffix(".sqlite3")
                    && normalize_database_id(id).is_some()
                    && !ids.iter().any(|known| known == id)
                {
                    ids.push(id.to_owned());
                }
            }
        }
        ids.sort();
        ids
    }

    /// Runs `queries` on database `database_id` in one transaction; the JSON array of
    /// result elements.
    ///
    /// # Errors
    ///
    /// Cloudflare's errors: 7400 for a malformed id, 7404 for an unknown database when
    /// databases are not created on first use, 7500 for an SQL error.
    pub async fn execute(
        self: &Arc<Self>,
        database_id: &str,
        queries: Vec<Query>,
        shape: Shape,
    ) -> Result<String, ApiError> {
        let id =
            normalize_database_id(database_id).ok_or_else(|| malformed("failed to decode id"))?;
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (started, on_start) = tokio::sync::oneshot::channel::<Arc<Database>>();
        let this = Arc::clone(self);
        let work = tokio::task::spawn_blocking(move || {
            let db = this.database(&id, this.creates_on_first_use())?;
            let conn = db.lock();
            db.running.store(request, Ordering::SeqCst);
            let _ = started.send(Arc::clone(&db));
            let outcome = exec::run(&conn, &queries, shape);
            db.running.store(0, Ordering::SeqCst);
            drop(conn);
            outcome.map_err(|e| ApiError::bad_request(CODE_SQL_ERROR, e.0))
        });
        let timeout = self.query_timeout();
        let watchdog = tokio::spawn(async move {
            if let Ok(db) = on_start.await {
                tokio::time::sleep(timeout).await;
                if db.running.load(Ordering::SeqCst) == request {
                    db.interrupt.interrupt();
                }
            }
        });
        let outcome = work.await;
        watchdog.abort();
        outcome.unwrap_or_else(|e| {
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                CODE_SQL_ERROR,
                format!("internal error: {e}"),
            ))
        })
    }

    /// The service's routes (full paths under `/client/v4/accounts/{account_id}/`).
    pub fn router(self: &Arc<Self>) -> Router {
        let base = "/client/v4/accounts/{account_id}/d1/database/{database_id}";
        Router::new()
            .route(
                &format!("{base}/query"),
                post(query_handler).fallback(method_not_allowed),
            )
            .route(
                &format!("{base}/raw"),
                post(raw_handler).fallback(method_not_allowed),
            )
            .with_state(Arc::clone(self))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        CODE_METHOD_NOT_ALLOWED,
        "Method not allowed",
    )
}

async fn query_handler(
    State(d1): State<Arc<D1>>,
    Path((_account_id, database_id)): Path<(String, String)>,
    body: Body,
) -> ApiResult {
    handle(&d1, &database_id, body, Shape::Objects).await
}

async fn raw_handler(
    State(d1): State<Arc<D1>>,
    Path((_account_id, database_id)): Path<(String, String)>,
    body: Body,
) -> ApiResult {
    handle(&d1, &database_id, body, Shape::Raw).await
}

async fn handle(d1: &Arc<D1>, database_id: &str, body: Body, shape: Shape) -> ApiResult {
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                CODE_MALFORMED,
                format!("The request is malformed: the body is larger than {MAX_BODY_BYTES} bytes"),
            )
        })?;
    let queries = parse_body(&body)?;
    let results = d1.execute(database_id, queries, shape).await?;
    // Written by hand so rows keep their column order.
    let body = format!(r#"{{"success":true,"errors":[],"messages":[],"result":{results}}}"#);
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Router-level tests: 404s, the time limit, persistence.
#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    fn service() -> Arc<D1> {
        D1::new(&Arc::new(EmulatorConfig::default())).unwrap()
    }

    async fn post(d1: &Arc<D1>, id: &str, endpoint: &str, body: &str) -> (StatusCode, Value) {
        let request = axum::http::Request::builder()
            .method("POST")
            .uri(format!("/client/v4/accounts/a/d1/database/{id}/{endpoint}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = d1.router().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    const ID: &str = "0b5a4c9e-3f3b-4d64-9a53-8f7d3c2e1a00";

    #[test]
    fn database_ids() {
        assert_eq!(
            normalize_database_id(&ID.to_uppercase()).as_deref(),
            Some(ID)
        );
        assert!(normalize_database_id("db1").is_none());
        assert!(normalize_database_id("0b5a4c9e-3f3b-4d64-9a53-8f7d3c2e1a0g").is_none());
        let fresh = new_database_id();
        assert_eq!(normalize_database_id(&fresh), Some(fresh.clone()));
        assert_eq!(&fresh[14..15], "4");
    }

    #[test]
    fn bodies() {
        assert_eq!(
            parse_body(br#"{"sql":"SELECT ?","params":["a", 1, 1.5, null, true]}"#).unwrap(),
            vec![Query {
                sql: "SELECT ?".into(),
                params: vec![
                    Param::Text("a".into()),
                    Param::Integer(1),
                    Param::Real(1.5),
                    Param::Null,
                    Param::Integer(1)
                ],
            }]
        );
        assert_eq!(
            parse_body(br#"{"batch":[{"sql":"A"},{"sql":"B","params":[]}]}"#)
                .unwrap()
                .len(),
            2
        );
        for bad in [
            &b"{"[..],
            b"[]",
            b"{}",
            br#"{"sql":1}"#,
            br#"{"sql":"x","params":"a"}"#,
            br#"{"sql":"x","params":[[1]]}"#,
            br#"{"batch":{}}"#,
            br#"{"batch":[1]}"#,
        ] {
            let e = parse_body(bad).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, CODE_MALFORMED),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[tokio::test]
    async fn unknown_databases_are_404_when_not_created_on_first_use() {
        let d1 = service();
        d1.set_create_on_first_use(false);
        let (status, v) = post(&d1, ID, "query", r#"{"sql":"SELECT 1"}"#).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v["errors"][0]["code"], CODE_NOT_FOUND);
        assert!(d1.create_database(ID).unwrap());
        assert!(!d1.create_database(ID).unwrap());
        let (status, v) = post(&d1, ID, "query", r#"{"sql":"SELECT 1 AS one"}"#).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["result"][0]["results"][0]["one"], 1);
        assert_eq!(d1.database_ids(), vec![ID.to_owned()]);
        assert!(d1.delete_database(ID).unwrap());
        assert!(!d1.delete_database(ID).unwrap());
        let (status, _) = post(&d1, ID, "query", r#"{"sql":"SELECT 1"}"#).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(d1.create_database("nope").is_err());
    }

    #[tokio::test]
    async fn the_time_limit_interrupts_a_long_query_and_rolls_back() {
        let d1 = service();
        d1.set_query_timeout(Duration::from_millis(200));
        let (status, _) = post(&d1, ID, "query", r#"{"sql":"CREATE TABLE t(x)"}"#).await;
        assert_eq!(status, StatusCode::OK);
        let slow = r#"{"batch":[{"sql":"INSERT INTO t VALUES (1)"},{"sql":"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) SELECT count(*) FROM c"}]}"#;
        let started = std::time::Instant::now();
        let (status, v) = post(&d1, ID, "query", slow).await;
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["errors"][0]["code"], CODE_SQL_ERROR);
        assert_eq!(v["errors"][0]["message"], exec::TIMED_OUT);
        let (_, v) = post(&d1, ID, "query", r#"{"sql":"SELECT count(*) AS n FROM t"}"#).await;
        assert_eq!(v["result"][0]["results"][0]["n"], 0);
    }

    #[tokio::test]
    async fn persistence_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let config = Arc::new(EmulatorConfig {
            data_dir: Some(dir.path().to_owned()),
            ..EmulatorConfig::default()
        });
        {
            let d1 = D1::new(&config).unwrap();
            let (status, _) = post(
                &d1,
                ID,
                "query",
                r#"{"sql":"CREATE TABLE t(x); INSERT INTO t VALUES ('kept')"}"#,
            )
            .await;
            assert_eq!(status, StatusCode::OK);
        }
        let d1 = D1::new(&config).unwrap();
        d1.set_create_on_first_use(false);
        assert_eq!(d1.database_ids(), vec![ID.to_owned()]);
        let (_, v) = post(&d1, ID, "raw", r#"{"sql":"SELECT x FROM t"}"#).await;
        assert_eq!(v["result"][0]["results"]["rows"][0][0], "kept");
        assert!(dir.path().join("d1").join(format!("{ID}.sqlite3")).exists());
    }
}
