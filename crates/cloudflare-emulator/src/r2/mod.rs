//! R2 objects through Cloudflare's REST API:
//! `/client/v4/accounts/{account_id}/r2/buckets/{bucket_name}/objects[/{object_key}]`.
//!
//! | Operation | Route |
//! |---|---|
//! | Upload Object (`r2-put-object`) | `PUT .../objects/{key}`, raw body |
//! | Get Object (`r2-get-object`) | `GET .../objects/{key}`, raw body + `ETag`, `Last-Modified`, `Content-Type`, `cf-r2-storage-class`; `If-None-Match` / `If-Modified-Since` → 304 |
//! | Delete Object (`r2-delete-object`) | `DELETE .../objects/{key}` |
//! | List Objects (`r2-list-objects`) | `GET .../objects?prefix&delimiter&cursor&per_page&start_after` |
//! | Delete Objects (`r2-delete-objects`) | `DELETE .../objects` with a JSON array of keys, or `?prefix=` (a job, completed at once) |
//!
//! Fidelity notes (what the spec and the docs say, and where the emulator departs):
//! - Object keys come after `/objects/` with their slashes literal (the spec's
//!   `allowReserved`); the rest is percent-decoded. Keys are 1–1024 bytes
//!   ([`MAX_KEY_BYTES`], error 10020 `InvalidObjectName` beyond).
//! - Bucket names: 3–63 characters of `a-z0-9-`, starting and ending alphanumeric (the R2
//!   docs; the spec's schema says `maxLength: 64`, the docs win), else 400 / 10005.
//! - **Buckets exist on first use.** The spec subset has no bucket endpoints, so every
//!   valid bucket name is an (initially empty) bucket and 10006 `NoSuchBucket` is never
//!   answered. Buckets are separate per account and per `cf-r2-jurisdiction`.
//! - ETag: the hex MD5 of the body, as R2 (and S3) give single-part uploads; quoted in the
//!   `ETag` header, bare in JSON (the spec says so for both).
//! - Uploads: at most [`MAX_PUT_BYTES`] (the spec's "300 MB", read as 300,000,000 bytes),
//!   else 400 / 100100 `EntityTooLarge` (the docs' code and status) — checked on
//!   `Content-Length` before reading, and while reading a body of unknown length.
//!   The spec's put result gives `size` as a string; list results give it as an integer.
//! - Only `Content-Type` is kept as HTTP metadata (the only one the spec's PUT takes);
//!   custom metadata cannot be set through this API, so it is always `{}`.
//! - Deleting a missing key succeeds (as in S3 and the Workers binding).
//! - `per_page` counts objects and `delimited` prefixes together (as S3's `MaxKeys`).
//! - Codes Cloudflare documents none for (chosen here): 10022 for an invalid query
//!   argument, cursor, storage class, jurisdiction or delete body.
//!
//! Storage: one SQLite database per bucket, in memory, or with `data_dir` at
//! `data_dir/r2/<account>/<jurisdiction>/<bucket>/objects.sqlite3`.

mod store;
mod time;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::header::{
    CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::EmulatorConfig;
use crate::envelope::{ApiError, ApiResult, ok, ok_with_info};
use store::{BucketId, ObjectMeta, Start, Store, successor};

/// The largest body of one Upload Object request: "The maximum upload size for this
/// endpoint is 300 MB" (spec, `r2-put-object`).
pub(crate) const MAX_PUT_BYTES: u64 = 300_000_000;
/// The longest object key, in bytes (R2 docs, error 10020).
pub(crate) const MAX_KEY_BYTES: usize = 1024;
/// The largest `per_page` of List Objects (spec: `maximum: 1000`).
pub(crate) const MAX_PER_PAGE: u32 = 1000;
/// `per_page` when absent (spec: `default: 20`).
pub(crate) const DEFAULT_PER_PAGE: u32 = 20;
/// Bucket name length bounds (R2 docs: 3–63 characters).
pub(crate) const BUCKET_NAME_LEN: std::ops::RangeInclusive<usize> = 3..=63;

/// R2 error codes (<https://developers.cloudflare.com/r2/api/error-codes/>), plus the
/// ones the emulator had to choose.
pub(crate) mod codes {
    /// 500 `InternalError`.
    pub(crate) const INTERNAL_ERROR: u32 = 10001;
    /// 400 `InvalidBucketName`.
    pub(crate) const INVALID_BUCKET_NAME: u32 = 10005;
    /// 404 `NoSuchKey`.
    pub(crate) const NO_SUCH_KEY: u32 = 10007;
    /// 400 `InvalidObjectName` (bad or over-long key).
    pub(crate) const INVALID_OBJECT_NAME: u32 = 10020;
    /// 400 invalid argument. Not documented by Cloudflare for the REST API: chosen by the
    /// emulator for a bad query parameter, cursor, header value or delete body.
    pub(crate) const INVALID_ARGUMENT: u32 = 10022;
    /// 400 `ClientDisconnect`: the body could not be read to its end.
    pub(crate) const CLIENT_DISCONNECT: u32 = 10054;
    /// 400 `EntityTooLarge`.
    pub(crate) const ENTITY_TOO_LARGE: u32 = 100_100;
}

const OBJECTS: &str = "/client/v4/accounts/{account_id}/r2/buckets/{bucket_name}/objects";
const OBJECT: &str =
    "/client/v4/accounts/{account_id}/r2/buckets/{bucket_name}/objects/{*object_key}";

/// The R2 service's state: the buckets.
#[derive(Debug)]
pub struct R2 {
    store: Store,
}

impl R2 {
    /// Opens the service's storage (`data_dir/r2`, or memory).
    ///
    /// # Errors
    ///
    /// If its storage directory cannot be created.
    pub fn new(config: &Arc<EmulatorConfig>) -> anyhow::Result<Arc<Self>> {
        let root = config.data_dir.as_ref().map(|d| d.join("r2"));
        if let Some(root) = &root {
            std::fs::create_dir_all(root)?;
        }
        Ok(Arc::new(Self {
            store: Store::new(root),
        }))
    }

    /// The service's routes (full paths under `/client/v4/accounts/{account_id}/`).
    pub fn router(self: &Arc<Self>) -> Router {
        // Other methods: the server's 405 / 7001 envelope.
        Router::new()
            .route(OBJECTS, get(list_objects).delete(delete_objects))
            .route(
                OBJECT,
                get(get_object).put(put_object).delete(delete_object),
            )
            // Bodies are read and limited by the handlers, with R2's errors.
            .layer(DefaultBodyLimit::disable())
            .with_state(Arc::clone(self))
    }

    fn bucket(&self, id: &BucketId) -> Result<Arc<store::Bucket>, ApiError> {
        self.store.bucket(id).map_err(internal)
    }
}

#[derive(Debug, Deserialize)]
struct BucketPath {
    account_id: String,
    bucket_name: String,
}

#[derive(Debug, Deserialize)]
struct ObjectPath {
    account_id: String,
    bucket_name: String,
    object_key: String,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "r2 emulator storage error");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        codes::INTERNAL_ERROR,
        format!("We encountered an internal error. Please try again. ({e})"),
    )
}

fn invalid_argument(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(codes::INVALID_ARGUMENT, message)
}

/// Checks a bucket name against R2's rules.
///
/// # Errors
///
/// 400 / 10005 naming the rule broken.
pub(crate) fn validate_bucket_name(name: &str) -> Result<(), ApiError> {
    let bad = |why: &str| {
        Err(ApiError::bad_request(
            codes::INVALID_BUCKET_NAME,
            format!("The specified bucket name is not valid: {why}."),
        ))
    };
    if !BUCKET_NAME_LEN.contains(&name.len()) {
        return bad("bucket names must be 3-63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad(
            "bucket names may contain only lowercase letters (a-z), digits (0-9) and hyphens (-)",
        );
    }
    if name.starts_with('-') || name.ends_with('-') {
        return bad("bucket names must begin and end with a letter or digit");
    }
    Ok(())
}

/// Checks an object key: 1–[`MAX_KEY_BYTES`] bytes.
///
/// # Errors
///
/// 400 / 10020.
pub(crate) fn validate_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(ApiError::bad_request(
            codes::INVALID_OBJECT_NAME,
            format!(
                "The specified object name is not valid: keys are 1 to {MAX_KEY_BYTES} bytes of UTF-8, this one is {} bytes.",
                key.len()
            ),
        ));
    }
    Ok(())
}

fn jurisdiction(headers: &HeaderMap) -> Result<&'static str, ApiError> {
    match headers.get("cf-r2-jurisdiction").map(HeaderValue::as_bytes) {
        None | Some(b"default") => Ok("default"),
        Some(b"eu") => Ok("eu"),
        Some(b"fedramp") => Ok("fedramp"),
        Some(other) => Err(invalid_argument(format!(
            "Invalid cf-r2-jurisdiction header {:?}: expected default, eu or fedramp.",
            String::from_utf8_lossy(other)
        ))),
    }
}

fn bucket_id(account: String, bucket: String, headers: &HeaderMap) -> Result<BucketId, ApiError> {
    validate_bucket_name(&bucket)?;
    Ok(BucketId {
        account,
        jurisdiction: jurisdiction(headers)?,
        name: bucket,
    })
}

fn object_path(path: Result<Path<ObjectPath>, PathRejection>) -> Result<ObjectPath, ApiError> {
    path.map(|Path(p)| p).map_err(|e| {
        ApiError::bad_request(
            codes::INVALID_OBJECT_NAME,
            format!("The specified object name is not valid: {e}"),
        )
    })
}

fn bucket_path(path: Result<Path<BucketPath>, PathRejection>) -> Result<BucketPath, ApiError> {
    path.map(|Path(p)| p).map_err(|e| {
        ApiError::bad_request(
            codes::INVALID_BUCKET_NAME,
            format!("The specified bucket name is not valid: {e}"),
        )
    })
}

/// Runs storage work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(internal)?
}

/// A random version-4 UUID.
fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn too_large(size: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(
        codes::ENTITY_TOO_LARGE,
        format!(
            "Your proposed upload exceeds the maximum allowed object size: {size} bytes, \
             the limit of this endpoint is {MAX_PUT_BYTES} bytes (300 MB)."
        ),
    )
}

/// Reads a body of at most `limit` bytes; `declared` (its `Content-Length`, at most
/// `limit`) sizes the buffer.
async fn read_limited(body: Body, limit: u64, declared: Option<u64>) -> Result<Vec<u8>, ApiError> {
    let mut body = std::pin::pin!(body);
    let capacity = declared.filter(|n| *n <= limit).unwrap_or(0);
    let mut out = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.map_err(|e| {
            ApiError::bad_request(
                codes::CLIENT_DISCONNECT,
                format!("The request body could not be read to its end: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            let total = out.len() as u64 + data.len() as u64;
            if total > limit {
                return Err(too_large(format!("more than {total}")));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

fn storage_class(headers: &HeaderMap) -> Result<&'static str, ApiError> {
    match headers
        .get("cf-r2-storage-class")
        .map(HeaderValue::as_bytes)
    {
        None | Some(b"Standard") => Ok("Standard"),
        Some(b"InfrequentAccess") => Ok("InfrequentAccess"),
        Some(other) => Err(invalid_argument(format!(
            "Invalid cf-r2-storage-class header {:?}: expected Standard or InfrequentAccess.",
            String::from_utf8_lossy(other)
        ))),
    }
}

async fn put_object(
    State(r2): State<Arc<R2>>,
    path: Result<Path<ObjectPath>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let ObjectPath {
        account_id,
        bucket_name,
        object_key: key,
    } = object_path(path)?;
    let id = bucket_id(account_id, bucket_name, &headers)?;
    validate_key(&key)?;
    let class = storage_class(&headers)?;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(size) = declared
        && size > MAX_PUT_BYTES
    {
        return Err(too_large(size));
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bucket = r2.bucket(&id)?;
    let bytes = read_limited(body, MAX_PUT_BYTES, declared).await?;
    let meta = blocking(move || {
        let meta = ObjectMeta {
            size: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
            etag: hex::encode(<md5::Md5 as md5::Digest>::digest(&bytes)),
            uploaded_ms: time::now_ms(),
            content_type,
            storage_class: class.to_owned(),
            version: uuid_v4(),
            key,
        };
        bucket.put(&meta, &bytes).map_err(internal)?;
        Ok(meta)
    })
    .await?;
    Ok(ok(json!({
        "key": meta.key,
        "size": meta.size.to_string(),
        "etag": meta.etag,
        "storage_class": meta.storage_class,
        "uploaded": time::rfc3339_ms(meta.uploaded_ms),
        "version": meta.version,
    })))
}

fn no_such_key(key: &str) -> ApiError {
    ApiError::not_found(
        codes::NO_SUCH_KEY,
        format!("The specified key does not exist: {key}"),
    )
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison, `*` matches all).
fn none_match_hits(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").trim_matches('"') == etag)
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

async fn get_object(
    State(r2): State<Arc<R2>>,
    path: Result<Path<ObjectPath>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult {
    let ObjectPath {
        account_id,
        bucket_name,
        object_key: key,
    } = object_path(path)?;
    let id = bucket_id(account_id, bucket_name, &headers)?;
    validate_key(&key)?;
    let bucket = r2.bucket(&id)?;
    let lookup = key.clone();
    let Some((meta, body)) = blocking(move || bucket.get(&lookup).map_err(internal)).await? else {
        return Err(no_such_key(&key));
    };
    let modified_secs = meta.uploaded_ms.div_euclid(1000);
    let not_modified = match headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        Some(tags) => none_match_hits(tags, &meta.etag),
        None => headers
            .get(IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(time::parse_http_date)
            .is_some_and(|since| modified_secs <= since),
    };
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Body::from(body).into_response();
        response.headers_mut().insert(
            CONTENT_TYPE,
            header_value(
                meta.content_type
                    .as_deref()
                    .unwrap_or("application/octet-stream"),
            ),
        );
        response
    };
    let h = response.headers_mut();
    h.insert(ETAG, header_value(&format!("\"{}\"", meta.etag)));
    h.insert(LAST_MODIFIED, header_value(&time::http_date(modified_secs)));
    h.insert("cf-r2-storage-class", header_value(&meta.storage_class));
    Ok(response)
}

async fn delete_object(
    State(r2): State<Arc<R2>>,
    path: Result<Path<ObjectPath>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult {
    let ObjectPath {
        account_id,
        bucket_name,
        object_key: key,
    } = object_path(path)?;
    let id = bucket_id(account_id, bucket_name, &headers)?;
    validate_key(&key)?;
    let bucket = r2.bucket(&id)?;
    let doomed = key.clone();
    blocking(move || bucket.delete(&doomed).map_err(internal)).await?;
    Ok(ok(json!({ "key": key })))
}

/// Where a list page resumes. Opaque to clients: hex of a tag byte and a key or prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cursor {
    /// After this object key.
    Key(String),
    /// After every key starting with this delimited prefix.
    Prefix(String),
}

impl Cursor {
    fn encode(&self) -> String {
        let (tag, text) = match self {
            Self::Key(k) => (b'k', k),
            Self::Prefix(p) => (b'p', p),
        };
        let mut bytes = vec![tag];
        bytes.extend_from_slice(text.as_bytes());
        hex::encode(bytes)
    }

    fn decode(text: &str) -> Option<Self> {
        let bytes = hex::decode(text).ok()?;
        let (tag, rest) = bytes.split_first()?;
        let rest = String::from_utf8(rest.to_vec()).ok()?;
        match tag {
            b'k' => Some(Self::Key(rest)),
            b'p' => Some(Self::Prefix(rest)),
            _ => None,
        }
    }

    /// The scan start just after this cursor; `None` when nothing can follow.
    fn start(&self) -> Option<Start> {
        match self {
            Self::Key(k) => Some(Start::After(k.as_bytes().to_vec())),
            Self::Prefix(p) => successor(p.as_bytes()).map(Start::Including),
        }
    }
}

/// The later of two scan starts.
fn later(a: Start, b: Start) -> Start {
    let key = |s: &Start| match s {
        Start::Including(k) => (k.clone(), 0u8),
        Start::After(k) => (k.clone(), 1u8),
    };
    if key(&a) >= key(&b) { a } else { b }
}

/// The parsed query of List Objects.
#[derive(Debug, Default, PartialEq, Eq)]
struct ListQuery {
    prefix: String,
    delimiter: Option<char>,
    cursor: Option<Cursor>,
    per_page: u32,
    start_after: Option<String>,
}

fn first_param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn parse_list_query(params: &[(String, String)]) -> Result<ListQuery, ApiError> {
    let per_page = match first_param(params, "per_page") {
        None => DEFAULT_PER_PAGE,
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=MAX_PER_PAGE).contains(&n) => n,
            _ => {
                return Err(invalid_argument(format!(
                    "per_page must be an integer from 1 to {MAX_PER_PAGE}, got {text:?}."
                )));
            }
        },
    };
    let delimiter = match first_param(params, "delimiter") {
        None | Some("") => None,
        Some(text) => {
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Some(c),
                _ => {
                    return Err(invalid_argument(format!(
                        "delimiter must be a single character, got {text:?}."
                    )));
                }
            }
        }
    };
    let cursor = match first_param(params, "cursor") {
        None | Some("") => None,
        Some(text) => Some(
            Cursor::decode(text)
                .ok_or_else(|| invalid_argument(format!("Invalid cursor {text:?}.")))?,
        ),
    };
    Ok(ListQuery {
        prefix: first_param(params, "prefix").unwrap_or_default().to_owned(),
        delimiter,
        cursor,
        per_page,
        start_after: first_param(params, "start_after")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    })
}

/// One page of a listing.
#[derive(Debug, Default, PartialEq, Eq)]
struct Page {
    objects: Vec<ObjectMeta>,
    delimited: Vec<String>,
    next: Option<Cursor>,
}

fn list_page(bucket: &store::Bucket, q: &ListQuery) -> rusqlite::Result<Page> {
    let end = successor(q.prefix.as_bytes());
    let end = if q.prefix.is_empty() { None } else { end };
    let mut start = Some(Start::Including(q.prefix.as_bytes().to_vec()));
    if let Some(after) = &q.start_after {
        start = start.map(|s| later(s, Start::After(after.as_bytes().to_vec())));
    }
    if let Some(cursor) = &q.cursor {
        start = match (start, cursor.start()) {
            (Some(s), Some(c)) => Some(later(s, c)),
            _ => None,
        };
    }
    let mut page = Page::default();
    let mut last: Option<Cursor> = None;
    let mut count = 0u32;
    while let Some(from) = start.take() {
        let Some(meta) = bucket.first(&from, end.as_deref())? else {
            break;
        };
        if count == q.per_page {
            page.next = last.take();
            break;
        }
        count += 1;
        let common = q.delimiter.and_then(|d| {
            let rest = meta.key.get(q.prefix.len()..)?;
            let at = rest.find(d)?;
            Some(format!("{}{}", q.prefix, &rest[..at + d.len_utf8()]))
        });
        match common {
            Some(prefix) => {
                start = successor(prefix.as_bytes()).map(Start::Including);
                page.delimited.push(prefix.clone());
                last = Some(Cursor::Prefix(prefix));
            }
            None => {
                start = Some(Start::After(meta.key.as_bytes().to_vec()));
                last = Some(Cursor::Key(meta.key.clone()));
                page.objects.push(meta);
            }
        }
    }
    Ok(page)
}

fn object_json(meta: &ObjectMeta) -> Value {
    let mut http_metadata = serde_json::Map::new();
    if let Some(ct) = &meta.content_type {
        http_metadata.insert("contentType".to_owned(), json!(ct));
    }
    json!({
        "key": meta.key,
        "size": meta.size,
        "etag": meta.etag,
        "last_modified": time::rfc3339_ms(meta.uploaded_ms),
        "http_metadata": http_metadata,
        "custom_metadata": {},
        "storage_class": meta.storage_class,
    })
}

fn query_params(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Vec<(String, String)>, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| invalid_argument(format!("Invalid query string: {e}")))
}

async fn list_objects(
    State(r2): State<Arc<R2>>,
    path: Result<Path<BucketPath>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult {
    let BucketPath {
        account_id,
        bucket_name,
    } = bucket_path(path)?;
    let id = bucket_id(account_id, bucket_name, &headers)?;
    let q = parse_list_query(&query_params(query)?)?;
    let bucket = r2.bucket(&id)?;
    let per_page = q.per_page;
    let page = blocking(move || list_page(&bucket, &q).map_err(internal)).await?;
    let mut info = json!({
        "is_truncated": page.next.is_some(),
        "per_page": per_page,
        "delimited": page.delimited,
    });
    if let Some(next) = &page.next {
        info["cursor"] = json!(next.encode());
    }
    let objects: Vec<Value> = page.objects.iter().map(object_json).collect();
    Ok(ok_with_info(objects, Some(info)))
}

async fn delete_objects(
    State(r2): State<Arc<R2>>,
    path: Result<Path<BucketPath>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let BucketPath {
        account_id,
        bucket_name,
    } = bucket_path(path)?;
    let id = bucket_id(account_id, bucket_name, &headers)?;
    let params = query_params(query)?;
    // A delete body is a JSON list of keys, bounded like an upload.
    let body = read_limited(body, MAX_PUT_BYTES, None).await?;
    let bucket = r2.bucket(&id)?;
    if let Some(prefix) = first_param(&params, "prefix") {
        if !body.iter().all(u8::is_ascii_whitespace) {
            return Err(invalid_argument(
                "Send either a prefix query parameter or a JSON array of keys, not both.",
            ));
        }
        if !prefix.is_empty() && !prefix.ends_with('/') {
            return Err(invalid_argument(format!(
                "A non-empty prefix must end in '/', got {prefix:?}; use ?prefix= to empty the bucket."
            )));
        }
        let prefix = prefix.to_owned();
        let started = time::now_ms();
        let doomed = prefix.clone();
        let deleted = blocking(move || bucket.delete_prefix(&doomed).map_err(internal)).await?;
        let ended = time::now_ms();
        return Ok(ok(json!({
            "id": uuid_v4(),
            "jobType": "prefixDelete",
            "status": "COMPLETED",
            "startTime": time::rfc3339_ms(started),
            "endTime": time::rfc3339_ms(ended),
            "prefixDelete": {
                "prefix": prefix,
                "deletedObjects": deleted,
                "isBucketClear": prefix.is_empty(),
            },
        })));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid_argument(
            "Delete by list needs a JSON array of object keys in the body (or a prefix query parameter).",
        ));
    }
    let keys: Vec<String> = serde_json::from_slice(&body).map_err(|e| {
        invalid_argument(format!("The body must be a JSON array of object keys: {e}"))
    })?;
    for key in &keys {
        validate_key(key)?;
    }
    let deleted = blocking(move || {
        for key in &keys {
            bucket.delete(key).map_err(internal)?;
        }
        Ok(keys)
    })
    .await?;
    let result: Vec<Value> = deleted
        .into_iter()
        .map(|key| json!({ "key": key }))
        .collect();
    Ok(ok(result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bucket_names_follow_the_docs() {
        for good in ["abc", "my-bucket-01", &"a".repeat(63)] {
            assert!(validate_bucket_name(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "-abc",
            "abc-",
            "ABC",
            "a_b",
            "a.bc",
            "ab c",
        ] {
            assert_eq!(validate_bucket_name(bad).unwrap_err().code, 10005, "{bad}");
        }
    }

    #[test]
    fn keys_are_1_to_1024_bytes() {
        assert!(validate_key(&"é".repeat(512)).is_ok());
        assert_eq!(validate_key(&"é".repeat(513)).unwrap_err().code, 10020);
        assert_eq!(validate_key("").unwrap_err().code, 10020);
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_entity_too_large() {
        let body = read_limited(Body::from(vec![7u8; 10]), 10, Some(10))
            .await
            .unwrap();
        assert_eq!(body.len(), 10);
        let err = read_limited(Body::from(vec![7u8; 11]), 10, None)
            .await
            .unwrap_err();
        assert_eq!(
            (err.status.as_u16(), err.code),
            (400, codes::ENTITY_TOO_LARGE)
        );
    }

    #[test]
    fn uuids_are_version_4() {
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn if_none_match_forms() {
        assert!(none_match_hits("\"abc\"", "abc"));
        assert!(none_match_hits("W/\"abc\"", "abc"));
        assert!(none_match_hits("\"x\", \"abc\"", "abc"));
        assert!(none_match_hits("*", "abc"));
        assert!(!none_match_hits("\"abd\"", "abc"));
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn list_query_limits() {
        let q = parse_list_query(&params(&[])).unwrap();
        assert_eq!(q.per_page, DEFAULT_PER_PAGE);
        assert_eq!(
            parse_list_query(&params(&[("per_page", "1000")]))
                .unwrap()
                .per_page,
            1000
        );
        assert_eq!(
            parse_list_query(&params(&[("per_page", "1")]))
                .unwrap()
                .per_page,
            1
        );
        for bad in ["0", "1001", "-1", "x", ""] {
            assert_eq!(
                parse_list_query(&params(&[("per_page", bad)]))
                    .unwrap_err()
                    .code,
                codes::INVALID_ARGUMENT,
                "{bad}"
            );
        }
        assert_eq!(
            parse_list_query(&params(&[("delimiter", "é")]))
                .unwrap()
                .delimiter,
            Some('é')
        );
        assert!(parse_list_query(&params(&[("delimiter", "//")])).is_err());
        assert!(parse_list_query(&params(&[("cursor", "zz")])).is_err());
        assert!(parse_list_query(&params(&[("cursor", "78")])).is_err());
    }

    fn bucket_with(keys: &[&str]) -> Arc<store::Bucket> {
        let store = Store::new(None);
        let bucket = store
            .bucket(&BucketId {
                account: "a".into(),
                jurisdiction: "default",
                name: "bkt".into(),
            })
            .unwrap();
        for key in keys {
            let meta = ObjectMeta {
                key: (*key).to_owned(),
                size: 0,
                etag: String::new(),
                uploaded_ms: 0,
                content_type: None,
                storage_class: "Standard".into(),
                version: String::new(),
            };
            bucket.put(&meta, b"").unwrap();
        }
        bucket
    }

    /// Every page of a listing, following cursors: (keys, delimited prefixes).
    fn list_all(bucket: &store::Bucket, mut q: ListQuery) -> (Vec<String>, Vec<String>, usize) {
        let (mut keys, mut prefixes, mut pages) = (Vec::new(), Vec::new(), 0);
        loop {
            let page = list_page(bucket, &q).unwrap();
            pages += 1;
            assert!(page.objects.len() + page.delimited.len() <= q.per_page as usize);
            keys.extend(page.objects.into_iter().map(|m| m.key));
            prefixes.extend(page.delimited);
            match page.next {
                Some(next) => q.cursor = Some(Cursor::decode(&next.encode()).unwrap()),
                None => return (keys, prefixes, pages),
            }
        }
    }

    #[test]
    fn delimiter_groups_and_pages_resume_after_groups() {
        let bucket = bucket_with(&["a/1", "a/2", "a/b/3", "b", "c/1", "c/2", "d"]);
        let q = ListQuery {
            delimiter: Some('/'),
            per_page: 2,
            ..ListQuery::default()
        };
        let (keys, prefixes, pages) = list_all(&bucket, q);
        assert_eq!(keys, ["b", "d"]);
        assert_eq!(prefixes, ["a/", "c/"]);
        assert_eq!(pages, 2);
        let q = ListQuery {
            prefix: "a/".into(),
            delimiter: Some('/'),
            per_page: 10,
            ..ListQuery::default()
        };
        let (keys, prefixes, _) = list_all(&bucket, q);
        assert_eq!(keys, ["a/1", "a/2"]);
        assert_eq!(prefixes, ["a/b/"]);
    }

    #[test]
    fn start_after_and_exact_last_page() {
        let bucket = bucket_with(&["k1", "k2", "k3", "k4"]);
        let q = ListQuery {
            start_after: Some("k1".into()),
            per_page: 3,
            ..ListQuery::default()
        };
        let page = list_page(&bucket, &q).unwrap();
        assert_eq!(page.objects.len(), 3);
        assert_eq!(
            page.next, None,
            "an exactly full last page is not truncated"
        );
    }

    proptest! {
        #[test]
        fn paging_lists_every_key_once_in_order(
            keys in proptest::collection::btree_set("[ab/é]{1,6}", 0..40),
            per_page in 1u32..7,
            prefix in "[ab/]{0,2}",
            delimited in any::<bool>(),
        ) {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let bucket = bucket_with(&refs);
            let q = ListQuery {
                prefix: prefix.clone(),
                delimiter: delimited.then_some('/'),
                per_page,
                ..ListQuery::default()
            };
            let (listed, prefixes, _) = list_all(&bucket, q);
            let mut expected_keys = Vec::new();
            let mut expected_prefixes: Vec<String> = Vec::new();
            for key in keys.iter().filter(|k| k.starts_with(&prefix)) {
                let rest = &key[prefix.len()..];
                match rest.find('/').filter(|_| delimited) {
                    Some(at) => {
                        let p = format!("{prefix}{}", &rest[..=at]);
                        if expected_prefixes.last() != Some(&p) {
                            expected_prefixes.push(p);
                        }
                    }
                    None => expected_keys.push(key.clone()),
                }
            }
            prop_assert_eq!(listed, expected_keys);
            prop_assert_eq!(prefixes, expected_prefixes);
        }

        #[test]
        fn cursors_round_trip(text in "\\PC{0,20}", tag in any::<bool>()) {
            let cursor = if tag { Cursor::Key(text) } else { Cursor::Prefix(text) };
            prop_assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        }

        #[test]
        fn cursor_parser_never_panics(text in "\\PC{0,40}") {
            let _ = Cursor::decode(&text);
        }
    }
}
