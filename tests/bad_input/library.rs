//! The library surface of the bad-input corpus: every case with a `library` input, run on a
//! [`MemoryStorage`] through the public API (memory-core constructors, then the trait).
//!
//! `#[path]`-included next to `corpus.rs` by the backends' `tests/bad_input.rs`.

#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;

use memory_core::{ContentHash, Memory, Metadata, TagInput, Tags, Timestamp, ValidationError};
use memory_storage::{
    DeleteRequest, ListQuery, MemoryFilter, MemoryStorage, MemoryUpdate, SemanticQuery,
    StorageError, TagFilter,
};
use serde_json::Value;

use crate::corpus::{self, Case, Corpus};

/// A backend's own vector search (`SqliteStorage::search_by_vector`): vector and limit in,
/// number of results out.
pub type VectorSearch<'a> = &'a (
        dyn Fn(
    Vec<f32>,
    usize,
) -> Pin<Box<dyn Future<Output = Result<usize, StorageError>> + Send + 'a>>
            + Sync
    );

/// What a library call failed with: a core constructor's error or the store's.
#[derive(Debug)]
pub enum LibError {
    /// From `Memory::new`, `Tags::parse`, `Metadata::parse`, `Timestamp`, `ContentHash`.
    Core(ValidationError),
    /// From a [`MemoryStorage`] method.
    Storage(StorageError),
}

impl From<ValidationError> for LibError {
    fn from(e: ValidationError) -> Self {
        Self::Core(e)
    }
}

impl From<StorageError> for LibError {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}

/// The error's kind, ValidationError variant, field and full message (with its sources).
pub struct Classified {
    /// `Validation`, `InvalidInput`, `NotFound`, `Embedding`, ...
    pub kind: &'static str,
    /// The ValidationError variant, for `Validation`.
    pub variant: Option<String>,
    /// The field the error names.
    pub field: Option<String>,
    /// Display of the error and its sources.
    pub message: String,
}

fn variant_name(v: &ValidationError) -> String {
    format!("{v:?}")
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect()
}

fn classify(e: &LibError) -> Classified {
    let mut message = match e {
        LibError::Core(v) => v.to_string(),
        LibError::Storage(s) => s.to_string(),
    };
    if let LibError::Storage(s) = e {
        let mut source = std::error::Error::source(s);
        while let Some(x) = source {
            message.push_str(": ");
            message.push_str(&x.to_string());
            source = x.source();
        }
    }
    let validation = |v: &ValidationError| Classified {
        kind: "Validation",
        variant: Some(variant_name(v)),
        field: Some(v.field().to_owned()),
        message: message.clone(),
    };
    match e {
        LibError::Core(v) | LibError::Storage(StorageError::Validation(v)) => validation(v),
        LibError::Storage(s) => {
            let (kind, field) = match s {
                StorageError::InvalidInput { field, .. } => ("InvalidInput", Some(*field)),
                StorageError::NotFound { .. } => ("NotFound", None),
                StorageError::Embedding { .. } => ("Embedding", None),
                StorageError::ModelMismatch { .. } => ("ModelMismatch", None),
                StorageError::Unavailable { .. } => ("Unavailable", None),
                StorageError::Backend { .. } => ("Backend", None),
                _ => ("Other", None),
            };
            Classified {
                kind,
                variant: None,
                field: field.map(str::to_owned),
                message,
            }
        }
    }
}

/// Everything observable about the store's contents: every live memory (all fields),
/// its stored vector's bits, and the counts of live memories and tombstones.
pub async fn snapshot(store: &dyn MemoryStorage) -> String {
    let memories = store
        .list(&ListQuery::all(MemoryFilter::all()))
        .await
        .unwrap_or_else(|e| panic!("listing for the digest: {e}"));
    let hashes: Vec<ContentHash> = memories.iter().map(|m| m.content_hash().clone()).collect();
    let vectors = store
        .get_embeddings(&hashes)
        .await
        .unwrap_or_else(|e| panic!("reading vectors for the digest: {e}"));
    let stats = store
        .get_stats()
        .await
        .unwrap_or_else(|e| panic!("stats for the digest: {e}"));
    let mut out = format!(
        "count={} tombstones={} tags={}\n",
        store.count(&MemoryFilter::all()).await.expect("count"),
        stats.tombstones,
        stats.unique_tags
    );
    for (m, v) in memories.iter().zip(vectors) {
        out.push_str(&serde_json::to_string(m).expect("a memory serialises"));
        let bits: Vec<u32> = v.unwrap_or_default().iter().map(|x| x.to_bits()).collect();
        out.push_str(&format!(
            " vector={}\n",
            corpus::digest(&format!("{bits:?}"))
        ));
    }
    out
}

/// A unit vector of `dims` values, different for each `i`.
fn seed_vector(i: usize, dims: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dims)
        .map(|d| (((d * 7 + i * 13) % 17) as f32 - 8.0) / 8.0)
        .collect();
    v[i % dims] += 3.0;
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// Stores the corpus's seeds with carried vectors; returns their hashes in order.
pub async fn seed(store: &dyn MemoryStorage, corpus: &Corpus) -> Vec<ContentHash> {
    let dims = store.get_stats().await.expect("stats").embedding_dimensions;
    let mut hashes = Vec::new();
    for (i, s) in corpus.seeds.iter().enumerate() {
        let mut m = Memory::new(s["content"].as_str().expect("seed content"))
            .expect("seed memory")
            .with_tags(Tags::parse(tag_input(&s["tags"])).expect("seed tags"))
            .with_metadata(Metadata::from_value(s["metadata"].clone()).expect("seed metadata"))
            .with_embedding(seed_vector(i, dims));
        if let Some(t) = s.get("memory_type").and_then(Value::as_str) {
            m = m.with_memory_type(t).expect("seed type");
        }
        hashes.push(m.content_hash().clone());
        store.store(m).await.expect("storing a seed");
    }
    hashes
}

fn tag_input(v: &Value) -> TagInput {
    match v {
        Value::String(s) => TagInput::Text(s.clone()),
        Value::Array(a) => TagInput::List(
            a.iter()
                .map(|x| x.as_str().expect("a tag string").to_owned())
                .collect(),
        ),
        Value::Null => TagInput::List(Vec::new()),
        other => panic!("tags must be a string or a list: {other}"),
    }
}

fn usize_of(v: &Value, key: &str) -> usize {
    let n = v
        .get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("`{key}` must be a whole number in {v}"));
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("`{key}` must be a string in {v}"))
}

fn filter(input: &Value) -> Result<MemoryFilter, LibError> {
    let mut f = MemoryFilter::all();
    if let Some(t) = input.get("tags") {
        f.tags = Some(TagFilter::any(Tags::parse(tag_input(t))?));
    }
    Ok(f)
}

/// Runs one library input; `Ok` carries how many memories the call returned or touched.
async fn call(
    store: &dyn MemoryStorage,
    input: &Value,
    vector_search: Option<VectorSearch<'_>>,
) -> Result<usize, LibError> {
    let op = text(input, "op");
    match op {
        "store" => {
            let mut m = Memory::new(text(input, "content"))?;
            if let Some(h) = input.get("content_hash") {
                // A memory under a hash nobody checked, as a backend reading rows builds it.
                let hash: ContentHash = h.as_str().expect("content_hash text").parse()?;
                m = Memory::from_parts(
                    m.content().to_owned(),
                    hash,
                    m.tags.clone(),
                    None,
                    Metadata::new(),
                    None,
                    m.created_at,
                    m.updated_at,
                );
            }
            if let Some(t) = input.get("tags") {
                m = m.with_tags(Tags::parse(tag_input(t))?);
            }
            if let Some(t) = input.get("memory_type") {
                m = m.with_memory_type(t.as_str().expect("memory_type"))?;
            }
            if let Some(md) = input.get("metadata") {
                m = m.with_metadata(Metadata::parse(md.as_str().expect("metadata text"))?);
            }
            if let Some(e) = input.get("embedding") {
                m = m.with_embedding(e_vector(e));
            }
            store.store(m).await?;
            Ok(1)
        }
        "retrieve" => Ok(store
            .retrieve(text(input, "query"), usize_of(input, "n"))
            .await?
            .len()),
        "recall" => Ok(store
            .recall_memory(text(input, "query"), usize_of(input, "n"))
            .await?
            .len()),
        "search" => {
            let mut q = SemanticQuery::new(text(input, "query"), usize_of(input, "limit"))
                .with_filter(filter(input)?);
            q.min_similarity = input
                .get("min_similarity")
                .map(|s| corpus::number(s) as f32);
            Ok(store.search(&q).await?.len())
        }
        "list" => {
            let f = filter(input)?;
            let q = if input.get("page").is_some() {
                ListQuery::page(f, usize_of(input, "page"), usize_of(input, "page_size"))?
            } else {
                ListQuery::all(f)
            };
            Ok(store.list(&q).await?.len())
        }
        "recent" => Ok(store.get_recent_memories(usize_of(input, "n")).await?.len()),
        "time_range" => {
            let start =
                Timestamp::from_epoch_seconds_for("start", corpus::number(&input["start"]))?;
            let end = Timestamp::from_epoch_seconds_for("end", corpus::number(&input["end"]))?;
            Ok(store.get_memories_by_time_range(start, end).await?.len())
        }
        "delete" => {
            let hash: ContentHash = text(input, "hash").parse()?;
            store.delete(&hash).await?;
            Ok(1)
        }
        "get_by_hash" => {
            let hash: ContentHash = text(input, "hash").parse()?;
            Ok(usize::from(store.get_by_hash(&hash).await?.is_some()))
        }
        "delete_by_tag" => Ok(store.delete_by_tag(text(input, "tag")).await?),
        "delete_memories" => Ok(store
            .delete_memories(&DeleteRequest::default())
            .await?
            .hashes
            .len()),
        "update" => {
            let hash: ContentHash = text(input, "hash").parse()?;
            let update = MemoryUpdate {
                tags: input
                    .get("tags")
                    .map(|t| Tags::parse(tag_input(t)))
                    .transpose()?,
                memory_type: input
                    .get("memory_type")
                    .map(|t| Some(t.as_str().expect("memory_type").to_owned())),
                metadata: input
                    .get("metadata")
                    .map(|m| Metadata::parse(m.as_str().expect("metadata text")))
                    .transpose()?,
                created_at: None,
            };
            store.update_memory_metadata(&hash, update, true).await?;
            Ok(1)
        }
        "search_by_vector" => {
            let search = vector_search.expect("search_by_vector needs the backend's hook");
            Ok(search(e_vector(&input["vector"]), usize_of(input, "limit")).await?)
        }
        other => panic!("unknown library op {other}"),
    }
}

/// A vector given as a `$vector` generator or a plain array of numbers.
fn e_vector(v: &Value) -> Vec<f32> {
    match v.get("$vector") {
        Some(arg) => corpus::vector(arg),
        None => v
            .as_array()
            .expect("a vector")
            .iter()
            .map(|x| corpus::number(x) as f32)
            .collect(),
    }
}

/// Checks one case's outcome against its expectation; the problems found.
fn judge(case: &Case, outcome: &Result<usize, LibError>) -> Vec<String> {
    let expect = case.expect("library");
    let kind = case.kind("library");
    let mut problems = Vec::new();
    let results = expect.get("results").and_then(Value::as_u64);
    match outcome {
        Ok(n) => {
            if kind != "ok" && kind != "any" {
                problems.push(format!("expected a {kind} error, the call succeeded ({n})"));
            }
            if let Some(r) = results
                && *n as u64 != r
            {
                problems.push(format!("expected {r} results, got {n}"));
            }
        }
        Err(e) => {
            let c = classify(e);
            if kind == "ok" {
                problems.push(format!("expected success, got {}: {}", c.kind, c.message));
                return problems;
            }
            if kind == "any" {
                if !["Validation", "InvalidInput", "NotFound"].contains(&c.kind) {
                    problems.push(format!(
                        "expected success or a typed input error, got {}: {}",
                        c.kind, c.message
                    ));
                }
                return problems;
            }
            if c.kind != kind {
                problems.push(format!(
                    "expected kind {kind}, got {}: {}",
                    c.kind, c.message
                ));
            }
            if let Some(v) = expect.get("variant").and_then(Value::as_str)
                && c.variant.as_deref() != Some(v)
            {
                problems.push(format!("expected variant {v}, got {:?}", c.variant));
            }
            if let Some(f) = expect.get("field").and_then(Value::as_str) {
                if c.field.as_deref() != Some(f) {
                    problems.push(format!("expected field {f}, got {:?}", c.field));
                }
                if !c.message.contains(f) {
                    problems.push(format!("the message does not name {f}: {}", c.message));
                }
            }
            let missing = corpus::missing_fragments(&c.message, &case.fragments("library"));
            if !missing.is_empty() {
                problems.push(format!("message {:?} lacks {missing:?}", c.message));
            }
        }
    }
    problems
}

/// Runs every library case that applies to `backend` on `store` (seeded first) and panics
/// listing every case that failed. Returns the number of cases run.
pub async fn run(
    store: &dyn MemoryStorage,
    backend: &str,
    vector_search: Option<VectorSearch<'_>>,
) -> usize {
    let corpus = Corpus::load(env!("CARGO_MANIFEST_DIR"));
    let seeds = seed(store, &corpus).await;
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in corpus.on("library") {
        let raw = case.input("library").expect("library input");
        if let Some(b) = raw.get("backends").and_then(Value::as_array)
            && !b.iter().any(|x| x.as_str() == Some(backend))
        {
            continue;
        }
        let input = corpus::expand(raw, &mut |name, arg| match name {
            "$seed_hash" => Some(Value::String(
                seeds[arg.as_u64().expect("seed index") as usize]
                    .as_str()
                    .to_owned(),
            )),
            // Kept for `e_vector`, which reads the non-JSON numbers (NaN) itself.
            "$vector" => Some(serde_json::json!({ "$vector": arg })),
            _ => None,
        });
        let before = snapshot(store).await;
        eprintln!("library/{backend}: {}", case.id);
        let outcome = call(store, &input, vector_search).await;
        let after = snapshot(store).await;
        let mut problems = judge(case, &outcome);
        if before != after {
            problems.push(format!(
                "the store changed: {} -> {}",
                corpus::digest(&before),
                corpus::digest(&after)
            ));
        }
        if !problems.is_empty() {
            failures.push(format!("{}\n    {}", case.label(), problems.join("\n    ")));
        }
        ran += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} library cases failed on {backend}:\n{}",
        failures.len(),
        failures.join("\n")
    );
    ran
}
