//! The Vectorize v2 service: indexes, NDJSON insert/upsert, exact nearest-neighbour
//! queries with metadata filters and namespaces, get/delete by ids, id listing and
//! metadata indexes, with Cloudflare's limits, error codes and asynchronous mutations
//! (visible after [`EmulatorConfig::mutation_delay`], applied lazily when next read).
//!
//! Built from Cloudflare's OpenAPI spec and <https://developers.cloudflare.com/vectorize/>.
//! Every Vectorize error is HTTP 400 (the spec only says `4XX`; the not-found code 3000
//! was observed with 400). Error codes: observed in Cloudflare's answers where noted,
//! otherwise chosen (see [`codes`]).

mod body;
pub(crate) mod filter;
mod index;
mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use crate::config::EmulatorConfig;
use crate::envelope::{ApiError, ApiResult, ok};
use body::{iso8601, now_ms, now_us, query_param, uuid_like};
use filter::Filter;
use index::{Index, IndexType, Metric, NewVector, Op, Pending, Search, Stored, indexed_metadata};
use store::Store;

/// Cloudflare's Vectorize error codes as the emulator answers them.
pub(crate) mod codes {
    /// `vectorize.index.not_found` (observed).
    pub(crate) const INDEX_NOT_FOUND: u32 = 3000;
    /// Invalid index name or configuration (chosen; Cloudflare's is undocumented).
    pub(crate) const INVALID_INDEX: u32 = 3001;
    /// `vectorize.index.duplicate_name` (observed).
    pub(crate) const DUPLICATE_NAME: u32 = 3002;
    /// Too many vectors in one insert/upsert (chosen).
    pub(crate) const TOO_MANY_VECTORS: u32 = 40005;
    /// Query vector of the wrong dimensions (observed).
    pub(crate) const QUERY_DIMENSIONS: u32 = 40006;
    /// Too many ids in get_by_ids or delete_by_ids (observed for both: "too many ids in
    /// payload; max id count is 20").
    pub(crate) const TOO_MANY_IDS: u32 = 40007;
    /// Vector id empty or longer than 64 bytes (observed for "id too long").
    pub(crate) const INVALID_ID: u32 = 40008;
    /// Metadata larger than 10 KiB (chosen).
    pub(crate) const METADATA_TOO_LARGE: u32 = 40009;
    /// Invalid metadata key (chosen).
    pub(crate) const INVALID_METADATA_KEY: u32 = 40010;
    /// Namespace empty or longer than 64 bytes (chosen).
    pub(crate) const INVALID_NAMESPACE: u32 = 40011;
    /// Inserted vector of the wrong dimensions (observed).
    pub(crate) const VECTOR_DIMENSIONS: u32 = 40012;
    /// Body larger than 100 MB (chosen).
    pub(crate) const BODY_TOO_LARGE: u32 = 40013;
    /// NDJSON that does not parse (observed).
    pub(crate) const UNPARSABLE_VECTORS: u32 = 40023;
    /// topK out of range (observed).
    pub(crate) const TOP_K: u32 = 40025;
    /// A JSON body that does not parse or has a wrong field (observed for query).
    pub(crate) const INVALID_BODY: u32 = 40026;
    /// Invalid metadata filter (chosen).
    pub(crate) const INVALID_FILTER: u32 = 40030;
    /// More than 10 metadata indexes (chosen).
    pub(crate) const TOO_MANY_METADATA_INDEXES: u32 = 40031;
    /// Deleting a metadata index that does not exist (chosen).
    pub(crate) const METADATA_INDEX_NOT_FOUND: u32 = 40032;
    /// list: `count` out of range or invalid cursor (chosen).
    pub(crate) const INVALID_LIST_PARAMS: u32 = 40034;
    /// The emulator's own storage failed (chosen).
    pub(crate) const INTERNAL: u32 = 10002;
}

/// Most dimensions of an index.
pub(crate) const MAX_DIMENSIONS: usize = 1536;
/// Longest vector id, namespace and index name, in bytes.
pub(crate) const MAX_NAME_BYTES: usize = 64;
/// Largest metadata of one vector (compact JSON), in bytes.
pub(crate) const MAX_METADATA_BYTES: usize = 10 * 1024;
/// topK cap with values or all metadata.
pub(crate) const MAX_TOP_K_WITH_DATA: u64 = 20;
/// topK cap otherwise.
pub(crate) const MAX_TOP_K: u64 = 100;
/// Vectors per HTTP insert/upsert.
pub(crate) const MAX_VECTORS_PER_WRITE: usize = 5000;
/// Largest upload, in bytes.
pub(crate) const MAX_UPLOAD_BYTES: usize = 100 * 1000 * 1000;
/// Largest JSON body of the other operations, in bytes (chosen).
pub(crate) const MAX_JSON_BYTES: usize = 10 * 1024 * 1024;
/// Most ids per get_by_ids or delete_by_ids (observed for both; undocumented).
pub(crate) const MAX_IDS: usize = 20;
/// Most ids per list page.
pub(crate) const MAX_LIST_COUNT: usize = 1000;
/// Most metadata indexes per index.
pub(crate) const MAX_METADATA_INDEXES: usize = 10;

type Key = (String, String);

#[derive(Debug)]
struct Inner {
    indexes: HashMap<Key, Index>,
    store: Option<Store>,
}

/// The Vectorize service's state.
#[derive(Debug)]
pub struct Vectorize {
    config: Arc<EmulatorConfig>,
    inner: Mutex<Inner>,
    counter: AtomicU64,
}

fn bad(code: u32, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

fn internal(e: &anyhow::Error) -> ApiError {
    tracing::error!("vectorize storage: {e:#}");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        codes::INTERNAL,
        format!("internal error: {e}"),
    )
}

fn not_found(name: &str) -> ApiError {
    bad(
        codes::INDEX_NOT_FOUND,
        format!("vectorize.index.not_found - Index name \"{name}\""),
    )
}

/// Index names: `^[a-z]+[a-z0-9_-]*[a-z0-9]+$` (the full spec's `vectorize_index-name`
/// pattern), at most 64 bytes.
fn valid_index_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b.len() <= MAX_NAME_BYTES
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
        && b.last()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        bad(
            codes::INVALID_BODY,
            format!("Failed to parse the request body as JSON: {e}"),
        )
    })
}

async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::BODY_TOO_LARGE,
            format!("request body is larger than {limit} bytes"),
        )
    })
}

fn preset(name: &str) -> Option<(usize, Metric)> {
    match name {
        "@cf/baai/bge-small-en-v1.5" => Some((384, Metric::Cosine)),
        "@cf/baai/bge-base-en-v1.5" | "cohere/embed-multilingual-v2.0" => {
            Some((768, Metric::Cosine))
        }
        "@cf/baai/bge-large-en-v1.5" => Some((1024, Metric::Cosine)),
        "openai/text-embedding-ada-002" => Some((1536, Metric::Cosine)),
        _ => None,
    }
}

fn description_json(index: &Index) -> Value {
    let mut v = json!({
        "name": index.name,
        "config": {"dimensions": index.dimensions, "metric": index.metric.name()},
        "created_on": iso8601(index.created_us),
        "modified_on": iso8601(index.modified_us),
    });
    if let Some(d) = &index.description {
        v["description"] = Value::String(d.clone());
    }
    v
}

fn check_metadata_keys(map: &Map<String, Value>) -> Result<(), String> {
    for (key, value) in map {
        if key.is_empty() || key.contains('.') || key.contains('"') || key.starts_with('$') {
            return Err(format!(
                "invalid metadata key {key:?}: keys cannot be empty, contain '.' or '\"', or start with '$'"
            ));
        }
        if let Value::Object(inner) = value {
            check_metadata_keys(inner)?;
        }
    }
    Ok(())
}

fn number_list(value: &Value) -> Option<Vec<f32>> {
    value
        .as_array()?
        .iter()
        .map(|v| {
            #[allow(clippy::cast_possible_truncation)]
            v.as_f64().map(|f| f as f32)
        })
        .collect()
}

/// Parses an insert/upsert body into vectors, with Cloudflare's per-vector checks.
fn parse_vectors(
    text: &[u8],
    dimensions: usize,
    discard_unparsable: bool,
) -> Result<Vec<NewVector>, ApiError> {
    let mut vectors = Vec::new();
    let unparsable = |detail: String| {
        bad(
            codes::UNPARSABLE_VECTORS,
            format!("failed to parse upsert vectors request in json format: {detail}"),
        )
    };
    for (n, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed: Result<NewVector, String> = serde_json::from_slice::<Value>(line)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                let id = v["id"]
                    .as_str()
                    .ok_or("\"id\" must be a string")?
                    .to_owned();
                let values =
                    number_list(&v["values"]).ok_or("\"values\" must be an array of numbers")?;
                let metadata = match &v["metadata"] {
                    Value::Null => None,
                    Value::Object(m) => Some(m.clone()),
                    _ => return Err("\"metadata\" must be an object".into()),
                };
                let namespace = match &v["namespace"] {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    _ => return Err("\"namespace\" must be a string".into()),
                };
                Ok(NewVector {
                    id,
                    values,
                    metadata,
                    namespace,
                })
            });
        let vector = match parsed {
            Ok(v) => v,
            Err(_) if discard_unparsable => continue,
            Err(e) => return Err(unparsable(format!("line {}: {e}", n + 1))),
        };
        if vector.id.is_empty() {
            return Err(bad(
                codes::INVALID_ID,
                "id is empty; vector ids must be 1 to 64 bytes",
            ));
        }
        if vector.id.len() > MAX_NAME_BYTES {
            return Err(bad(
                codes::INVALID_ID,
                format!(
                    "id too long; max is 64 bytes, got {} bytes",
                    vector.id.len()
                ),
            ));
        }
        if vector.values.len() != dimensions {
            return Err(bad(
                codes::VECTOR_DIMENSIONS,
                format!(
                    "invalid vector for id=\"{}\", expected {dimensions} dimensions, and got {} dimensions",
                    vector.id,
                    vector.values.len()
                ),
            ));
        }
        if vector.values.iter().any(|v| !v.is_finite()) {
            return Err(bad(
                codes::VECTOR_DIMENSIONS,
                format!(
                    "invalid vector for id=\"{}\": values must be finite float32",
                    vector.id
                ),
            ));
        }
        if let Some(metadata) = &vector.metadata {
            let size = Value::Object(metadata.clone()).to_string().len();
            if size > MAX_METADATA_BYTES {
                return Err(bad(
                    codes::METADATA_TOO_LARGE,
                    format!(
                        "metadata too large for id=\"{}\"; max is {MAX_METADATA_BYTES} bytes, got {size} bytes",
                        vector.id
                    ),
                ));
            }
            check_metadata_keys(metadata).map_err(|e| bad(codes::INVALID_METADATA_KEY, e))?;
        }
        if let Some(ns) = &vector.namespace
            && (ns.is_empty() || ns.len() > MAX_NAME_BYTES)
        {
            return Err(bad(
                codes::INVALID_NAMESPACE,
                format!(
                    "invalid namespace for id=\"{}\"; namespaces are 1 to 64 bytes, got {} bytes",
                    vector.id,
                    ns.len()
                ),
            ));
        }
        vectors.push(vector);
        if vectors.len() > MAX_VECTORS_PER_WRITE {
            return Err(bad(
                codes::TOO_MANY_VECTORS,
                format!("too many vectors in request; max is {MAX_VECTORS_PER_WRITE}"),
            ));
        }
    }
    if vectors.is_empty() {
        return Err(unparsable("the request contains no vectors".into()));
    }
    Ok(vectors)
}

fn ids_of(body: &Value) -> Result<Vec<String>, ApiError> {
    let Some(ids) = body.get("ids").and_then(Value::as_array) else {
        return Err(bad(
            codes::INVALID_BODY,
            "Failed to parse the request body as JSON: ids: expected an array of strings",
        ));
    };
    ids.iter()
        .map(|id| {
            let id = id.as_str().ok_or_else(|| {
                bad(
                    codes::INVALID_BODY,
                    "Failed to parse the request body as JSON: ids: expected an array of strings",
                )
            })?;
            if id.len() > MAX_NAME_BYTES {
                return Err(bad(
                    codes::INVALID_ID,
                    format!("id too long; max is 64 bytes, got {} bytes", id.len()),
                ));
            }
            Ok(id.to_owned())
        })
        .collect()
}

impl Vectorize {
    /// Opens the service's storage.
    ///
    /// # Errors
    ///
    /// If its storage cannot be opened.
    pub fn new(config: &Arc<EmulatorConfig>) -> anyhow::Result<Arc<Self>> {
        let (store, indexes) = match &config.data_dir {
            Some(dir) => {
                let store = Store::open(&dir.join("vectorize"))?;
                let indexes = store.load()?;
                (Some(store), indexes)
            }
            None => (None, HashMap::new()),
        };
        Ok(Arc::new(Self {
            config: Arc::clone(config),
            inner: Mutex::new(Inner { indexes, store }),
            counter: AtomicU64::new(0),
        }))
    }

    /// The service's routes (full paths under `/client/v4/accounts/{account_id}/`).
    pub fn router(self: &Arc<Self>) -> Router {
        let base = "/client/v4/accounts/{account_id}/vectorize/v2/indexes";
        let one = |tail: &str| format!("{base}/{{index_name}}{tail}");
        Router::new()
            .route(base, get(list_indexes).post(create_index))
            .route(&one(""), get(get_index).delete(delete_index))
            .route(&one("/info"), get(info))
            .route(&one("/insert"), post(insert))
            .route(&one("/upsert"), post(upsert))
            .route(&one("/query"), post(query))
            .route(&one("/get_by_ids"), post(get_by_ids))
            .route(&one("/delete_by_ids"), post(delete_by_ids))
            .route(&one("/list"), get(list_vectors))
            .route(&one("/metadata_index/create"), post(create_metadata_index))
            .route(&one("/metadata_index/list"), get(list_metadata_indexes))
            .route(&one("/metadata_index/delete"), post(delete_metadata_index))
            .with_state(Arc::clone(self))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn mutation_id(&self, account: &str, index: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        uuid_like(
            self.config.seed,
            &format!("{account}/{index}/{n}/{}", now_us()),
        )
    }

    /// Applies the due mutations of an index (and persists them), then returns it.
    fn visible<'a>(
        inner: &'a mut Inner,
        account: &str,
        name: &str,
    ) -> Result<&'a mut Index, ApiError> {
        let key = (account.to_owned(), name.to_owned());
        let Inner { indexes, store } = inner;
        let index = indexes.get_mut(&key).ok_or_else(|| not_found(name))?;
        let due = index.due(now_ms());
        if due.is_empty() {
            return Ok(index);
        }
        let now = now_us();
        let mut changes = Vec::with_capacity(due.len());
        for pending in &due {
            changes.push(index.apply(pending, now));
        }
        if let Some(store) = store {
            store
                .transaction(|conn| {
                    for applied in &changes {
                        for id in &applied.deleted {
                            Store::delete_vector(conn, account, name, id)?;
                        }
                        for id in &applied.written {
                            if let Some(&slot) = index.by_id.get(id) {
                                Store::put_vector(conn, account, name, &index.slots[slot])?;
                            }
                        }
                    }
                    Store::pop_pending(conn, account, name, due.len())?;
                    Store::save_index(conn, account, index)
                })
                .map_err(|e| internal(&e))?;
        }
        Ok(index)
    }

    /// Accepts a mutation: queues it (visible after the mutation delay) and returns its id.
    fn mutate(&self, account: &str, name: &str, op: Op) -> ApiResult {
        let id = self.mutation_id(account, name);
        let delay = u64::try_from(self.config.mutation_delay.as_millis()).unwrap_or(u64::MAX);
        let pending = Pending {
            id: id.clone(),
            due_ms: now_ms().saturating_add(delay),
            op,
        };
        let mut inner = self.lock();
        Self::visible(&mut inner, account, name)?;
        if let Some(store) = &mut inner.store {
            store
                .transaction(|conn| Store::push_pending(conn, account, name, &pending))
                .map_err(|e| internal(&e))?;
        }
        let key = (account.to_owned(), name.to_owned());
        if let Some(index) = inner.indexes.get_mut(&key) {
            index.pending.push_back(pending);
        }
        Self::visible(&mut inner, account, name)?;
        Ok(ok(json!({ "mutationId": id })))
    }
}

type Shared = State<Arc<Vectorize>>;

async fn list_indexes(State(s): Shared, Path(account): Path<String>) -> ApiResult {
    let inner = s.lock();
    let mut list: Vec<&Index> = inner
        .indexes
        .iter()
        .filter(|((a, _), _)| *a == account)
        .map(|(_, i)| i)
        .collect();
    list.sort_by(|a, b| (a.created_us, &a.name).cmp(&(b.created_us, &b.name)));
    Ok(ok(list
        .into_iter()
        .map(description_json)
        .collect::<Vec<_>>()))
}

async fn create_index(State(s): Shared, Path(account): Path<String>, body: Body) -> ApiResult {
    let body = parse_json(&read_body(body, MAX_JSON_BYTES).await?)?;
    let invalid = |m: String| bad(codes::INVALID_INDEX, m);
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("\"name\" is required and must be a string".into()))?;
    if !valid_index_name(name) {
        return Err(invalid(format!(
            "invalid index name {name:?}: index names are 2 to 64 bytes of lowercase letters, digits, '-' and '_', start with a letter and end with a letter or digit"
        )));
    }
    let description = match body.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => Some(d.clone()),
        Some(_) => return Err(invalid("\"description\" must be a string".into())),
    };
    let config = body
        .get("config")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("\"config\" is required and must be an object".into()))?;
    let (dimensions, metric) = if let Some(p) = config.get("preset") {
        p.as_str()
            .and_then(preset)
            .ok_or_else(|| invalid(format!("unknown preset {p}")))?
    } else {
        let dimensions = config
            .get("dimensions")
            .and_then(Value::as_u64)
            .and_then(|d| usize::try_from(d).ok())
            .filter(|d| (1..=MAX_DIMENSIONS).contains(d))
            .ok_or_else(|| {
                invalid(format!(
                    "config.dimensions must be an integer from 1 to {MAX_DIMENSIONS}"
                ))
            })?;
        let metric = config
            .get("metric")
            .and_then(Value::as_str)
            .and_then(Metric::parse)
            .ok_or_else(|| {
                invalid("config.metric must be one of cosine, euclidean, dot-product".into())
            })?;
        (dimensions, metric)
    };
    let mut inner = s.lock();
    let key = (account.clone(), name.to_owned());
    if inner.indexes.contains_key(&key) {
        return Err(bad(
            codes::DUPLICATE_NAME,
            format!("vectorize.index.duplicate_name - Index name \"{name}\""),
        ));
    }
    let index = Index::new(name.to_owned(), description, dimensions, metric, now_us());
    if let Some(store) = &mut inner.store {
        store
            .transaction(|conn| {
                Store::delete_index(conn, &account, name)?;
                Store::save_index(conn, &account, &index)
            })
            .map_err(|e| internal(&e))?;
    }
    let result = description_json(&index);
    inner.indexes.insert(key, index);
    Ok(ok(result))
}

async fn get_index(State(s): Shared, Path((account, name)): Path<(String, String)>) -> ApiResult {
    let mut inner = s.lock();
    let index = Vectorize::visible(&mut inner, &account, &name)?;
    Ok(ok(description_json(index)))
}

async fn delete_index(
    State(s): Shared,
    Path((account, name)): Path<(String, String)>,
) -> ApiResult {
    let mut inner = s.lock();
    let key = (account.clone(), name.clone());
    if !inner.indexes.contains_key(&key) {
        return Err(not_found(&name));
    }
    if let Some(store) = &mut inner.store {
        store
            .transaction(|conn| Store::delete_index(conn, &account, &name))
            .map_err(|e| internal(&e))?;
    }
    inner.indexes.remove(&key);
    // The spec's result is `anyOf: [object, string]` (Prism refuses `null`): an empty object.
    Ok(ok(json!({})))
}

async fn info(State(s): Shared, Path((account, name)): Path<(String, String)>) -> ApiResult {
    let mut inner = s.lock();
    let index = Vectorize::visible(&mut inner, &account, &name)?;
    let mut v = json!({
        "dimensions": index.dimensions,
        "vectorCount": index.slots.len(),
        "processedUpToDatetime": index.processed_us.map(iso8601),
    });
    if let Some(m) = &index.processed_mutation {
        v["processedUpToMutation"] = Value::String(m.clone());
    }
    Ok(ok(v))
}

async fn write(
    s: &Vectorize,
    account: &str,
    name: &str,
    raw_query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
    upsert: bool,
) -> ApiResult {
    let dimensions = {
        let mut inner = s.lock();
        Vectorize::visible(&mut inner, account, name)?.dimensions
    };
    let discard = match query_param(raw_query, "unparsable-behavior").as_deref() {
        None | Some("error") => false,
        Some("discard") => true,
        Some(other) => {
            return Err(bad(
                codes::UNPARSABLE_VECTORS,
                format!("invalid unparsable-behavior {other:?}: expected error or discard"),
            ));
        }
    };
    let bytes = read_body(body, MAX_UPLOAD_BYTES).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let text: &[u8] = match body::multipart_boundary(content_type) {
        Some(boundary) => body::multipart_part(&bytes, &boundary, "vectors").ok_or_else(|| {
            bad(
                codes::UNPARSABLE_VECTORS,
                "failed to parse upsert vectors request: malformed multipart body",
            )
        })?,
        None => &bytes,
    };
    let vectors = parse_vectors(text, dimensions, discard)?;
    let op = if upsert {
        Op::Upsert { vectors }
    } else {
        Op::Insert { vectors }
    };
    s.mutate(account, name, op)
}

async fn insert(
    State(s): Shared,
    Path((account, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    write(&s, &account, &name, q.as_deref(), &headers, body, false).await
}

async fn upsert(
    State(s): Shared,
    Path((account, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    write(&s, &account, &name, q.as_deref(), &headers, body, true).await
}

fn field_error(field: &str, expected: &str) -> ApiError {
    bad(
        codes::INVALID_BODY,
        format!("Failed to parse the request body as JSON: {field}: expected {expected}"),
    )
}

async fn query(
    State(s): Shared,
    Path((account, name)): Path<(String, String)>,
    body: Body,
) -> ApiResult {
    let body = parse_json(&read_body(body, MAX_JSON_BYTES).await?)?;
    if !body.is_object() {
        return Err(field_error("body", "an object"));
    }
    let vector =
        number_list(&body["vector"]).ok_or_else(|| field_error("vector", "an array of numbers"))?;
    let return_values = match &body["returnValues"] {
        Value::Null => false,
        Value::Bool(b) => *b,
        _ => return Err(field_error("returnValues", "a boolean")),
    };
    // The v2 API takes "none" | "indexed" | "all" only: Cloudflare refuses the v1 boolean.
    let return_metadata = match &body["returnMetadata"] {
        Value::Null => "none",
        Value::String(m) if ["none", "indexed", "all"].contains(&m.as_str()) => m.as_str(),
        _ => return Err(field_error("returnMetadata", "one of none, indexed, all")),
    };
    let namespace = match &body["namespace"] {
        Value::Null => None,
        Value::String(ns) => Some(ns.as_str()),
        _ => return Err(field_error("namespace", "a string")),
    };
    let cap = if return_values || return_metadata == "all" {
        MAX_TOP_K_WITH_DATA
    } else {
        MAX_TOP_K
    };
    let top_k = match &body["topK"] {
        Value::Null => 5,
        Value::Number(n) => {
            let k = n.as_f64().unwrap_or(-1.0);
            if k.fract() != 0.0 || k < 1.0 {
                return Err(bad(
                    codes::TOP_K,
                    format!("top K must be an integer from 1 to {cap}, but got {n}"),
                ));
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let k = k as u64;
            k
        }
        _ => return Err(field_error("topK", "a number")),
    };
    if top_k > cap {
        let message = if cap == MAX_TOP_K_WITH_DATA {
            format!(
                "with returnValues=true or returnMetadata=all, max top K is {cap}, but got {top_k}"
            )
        } else {
            format!("max top K is {cap}, but got {top_k}")
        };
        return Err(bad(codes::TOP_K, message));
    }
    let filter = match &body["filter"] {
        Value::Null => None,
        f => Some(Filter::parse(f).map_err(|e| {
            bad(
                codes::INVALID_FILTER,
                format!("invalid metadata filter: {e}"),
            )
        })?),
    };
    let mut inner = s.lock();
    let index = Vectorize::visible(&mut inner, &account, &name)?;
    if vector.len() != index.dimensions {
        return Err(bad(
            codes::QUERY_DIMENSIONS,
            format!(
                "invalid query vector, expected {} dimensions, and got {} dimensions",
                index.dimensions,
                vector.len()
            ),
        ));
    }
    let hits = index.search(&Search {
        vector: &vector,
        top_k: usize::try_from(top_k).unwrap_or(usize::MAX),
        namespace,
        filter: filter.as_ref(),
    });
    let matches: Vec<Value> = hits
        .iter()
        .map(|&(slot, score)| {
            let stored = &index.slots[slot];
            let mut m = json!({"id": stored.vector.id, "score": score});
            if return_values {
                m["values"] = values_json(stored);
            }
            match return_metadata {
                "all" => {
                    m["metadata"] =
                        Value::Object(stored.vector.metadata.clone().unwrap_or_default());
                }
                "indexed" => m["metadata"] = Value::Object(indexed_metadata(stored)),
                _ => {}
            }
            if let Some(ns) = &stored.vector.namespace {
                m["namespace"] = Value::String(ns.clone());
            }
            m
        })
        .collect();
    Ok(ok(json!({"count": matches.len(), "matches": matches})))
}

fn values_json(stored: &Stored) -> Value {
    Value::Array(
        stored
            .vector
            .values
            .iter()
            .map(|v| json!(f64::from(*v)))
            .collect(),
    )
}

async fn get_by_ids(
    State(s): Shared,
    Path((account, name)): Path<(String, String)>,
    body: Body,
) -> ApiResult {
    let body = parse_json(&read_body(body, MAX_JSON_BYTES).await?)?;
    let ids = at_most_max_ids(ids_of(&body)?)?;
    let mut inner = s.lock();
    let index = Vectorize::visible(&mut inner, &account, &name)?;
    // The result is the spec's referenced schema, an array (the spec also puts
    // `type: object` beside the `$ref`, which OpenAPI 3.0 ignores but Prism applies).
    let mut seen = std::collections::HashSet::new();
    let found: Vec<Value> = ids
        .iter()
        .filter(|id| seen.insert(id.as_str()))
        .filter_map(|id| index.by_id.get(id).map(|&slot| &index.slots[slot]))
        .map(|stored| {
            let mut v = json!({
                "id": stored.vector.id,
                "values": values_json(stored),
                "metadata": stored.vector.metadata.clone().unwrap_or_default(),
            });
            if let Some(ns) = &stored.vector.namespace {
                v["namespace"] = Value::String(ns.clone());
            }
            v
        })
        .collect();
    Ok(ok(found))
}

async fn delete_by_ids(
    State(s): Shared,
    Path((account, name)): Path<(String, String)>,
    body: Body,
) -> ApiResult {
    let body = parse_json(&read_body(body, MAX_JSON_BYTES).await?)?;
    let ids = at_most_max_ids(ids_of(&body)?)?;
    s.mutate(&account, &name, Op::Delete { ids })
}

/// Cloudflare's answer to more than [`MAX_IDS`] ids in one get or delete by ids.
fn at_most_max_ids(ids: Vec<String>) -> Result<Vec<String>, ApiError> {
    if ids.len() > MAX_IDS {
        return Err(bad(
            codes::TOO_MANY_IDS,
            format!("too many ids in payload; max id count is {MAX_IDS}"),
        ));
    }
    Ok(ids)
}

async fn list_vectors(
    State(s): Shared,
    Path((account, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let count = match query_param(q.as_deref(), "count") {
        None => 100,
        Some(c) => c
            .parse::<usize>()
            .ok()
            .filter(|c| (1..=MAX_LIST_COUNT).contains(c))
            .ok_or_else(|| {
                bad(
                    codes::INVALID_LIST_PARAMS,
                    format!("count must be an integer from 1 to {MAX_LIST_COUNT}, got {c:?}"),
                )
            })?,
    };
    let after = match query_param(q.as_deref(), "cursor") {
        None => None,
        Some(c) => Some(
            hex::decode(&c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| bad(codes::INVALID_LIST_PARAMS, format!("invalid cursor {c:?}")))?,
        ),
    };
    let mut inner = s.lock();
    let index = Vectorize::visible(&mut inner, &account, &name)?;
    let mut ids: Vec<&str> = index
        .by_id
        .keys()
        .map(String::as_str)
        .filter(|id| after.as_deref().is_none_or(|a| *id > a))
        .collect();
    ids.sort_unstable();
    let truncated = ids.len() > count;
    ids.truncate(count);
    let next = if truncated {
        ids.last().map(|last| hex::encode(last.as_bytes()))
    } else {
        None
    };
    Ok(ok(json!({
        "count": ids.len(),
        "totalCount": index.slots.len(),
        "isTruncated": truncated,
        "nextCursor": next,
        "cursorExpirationTimestamp": truncated.then(|| iso8601(now_us() + 3_600_000_000)),
        "vectors": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
    })))
}

async fn create_metadata_index(
    State(s): Shared,
    Path((account, name)): Path<(String, String)>,
    body: Body,
) -> ApiResult {
    let body = parse_json(&read_body(body, MAX_JSON_BYTES).await?)?;
    let property = body
        .get("propertyName")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| field_error("propertyName", "a non-empty string"))?
        .to_owned();
    let index_type = body
        .get("indexType")
        .and_then(Value::as_str)
        .and_then(IndexType::parse)
        .ok_or_else(|| field_error("indexType", "one of string, number, boolean"))?;
    {
        let mut inner = s.lock();
        let index = Vectorize::visible(&mut inner, &account, &name)?;
        let projected = index.projected_metadata_indexes();
        if projected.len() >= MAX_METADATA_INDEXES && !projected.iter().any(|(p, _)| *p == property)
        {
            return Err(bad(
                codes::TOO_MANY_METADATA_INDEXES,
                format!("an index can have at most {MAX_METADATA_INDEXES} metadata indexes"),
            ));
        }
    }
    s.mutate(
        &account,
        &name,
        Op::CreateMetadataIndex {
            property,
            index_type,
        },
    )
}

async fn list_metadata_indexes(
    State(s): Shared,
    Path((account, name)): Path<(String, String)>,
) -> ApiResult {
    let mut inner = s.lock();
    let index = Vectorize::visible(&mut inner, &account, &name)?;
    let list: Vec<Value> = index
        .metadata_indexes
        .iter()
        .map(|(p, t)| json!({"propertyName": p, "indexType": t.name()}))
        .collect();
    Ok(ok(json!({ "metadataIndexes": list })))
}

async fn delete_metadata_index(
    State(s): Shared,
    Path((account, name)): Path<(String, String)>,
    body: Body,
) -> ApiResult {
    let body = parse_json(&read_body(body, MAX_JSON_BYTES).await?)?;
    let property = body
        .get("propertyName")
        .and_then(Value::as_str)
        .ok_or_else(|| field_error("propertyName", "a string"))?
        .to_owned();
    {
        let mut inner = s.lock();
        let index = Vectorize::visible(&mut inner, &account, &name)?;
        if !index
            .projected_metadata_indexes()
            .iter()
            .any(|(p, _)| *p == property)
        {
            return Err(bad(
                codes::METADATA_INDEX_NOT_FOUND,
                format!("metadata index for property {property:?} not found"),
            ));
        }
    }
    s.mutate(&account, &name, Op::DeleteMetadataIndex { property })
}

#[cfg(test)]
mod tests;
