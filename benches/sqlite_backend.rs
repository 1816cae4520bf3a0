//! The embedded backend (SQLite + in-process vector search + the local all-MiniLM-L6-v2) at
//! 1k, 10k and 100k memories: store, retrieve, search_by_tag and recall, with and without
//! the time spent embedding. Run with `cargo bench --bench sqlite_backend` (needs the model:
//! `cargo xtask fetch-model`); `BENCH_SQLITE_SIZES=1000,10000` picks other sizes.
//!
//! * Memories that fill the store carry seeded random unit vectors (ranking cost does not
//!   depend on what vectors mean, and embedding 100k texts would take hours on a CPU). Their
//!   `created_at` is spread evenly over the 90 days before a fixed instant, each carries one
//!   of 20 `topicN` tags, and the first 10 also carry `pinned`.
//! * Filled stores are built once per size and kept under `<target dir>/bench-data/` (a
//!   100k store takes a while to build); each run works on a fresh copy, so what the store
//!   benches add does not leak into the next run. Delete that directory to rebuild.
//! * `…/with_embedding`: the real model embeds every stored text / query (a new text each
//!   iteration). `…/without_embedding`: store gets a memory carrying its vector; retrieve's
//!   and recall's query vector comes from the LRU embedding cache (the same query each
//!   time), so what is measured is the backend: filter, vector ranking, row fetch.
//!   `search_by_vector/no_embedder` is the same without even the cache lookup.
//! * `search_by_tag/10_matches` returns the 10 `pinned` memories; `search_by_tag/5_percent`
//!   returns every memory of one topic (n / 20 memories, all rows read and decoded).
//! * `recall/*` is upstream's `recall_memory` with a time expression ("… last week"), relative
//!   to the fixed instant: the time filter keeps ~8% of the store, the rest of the query
//!   ranks by meaning. `recall/time_only` ("last week" alone) lists the newest of the range.
//! * Each store adds a memory, so the store grows a little during the run (≤ a few percent
//!   at 1k, negligible above).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use memory_core::{Memory, Tags, Timestamp};
use memory_embed::{BertEmbedder, CachedEmbedder, DEFAULT_MODEL_ID, Embedder};
use memory_sqlite::{SqliteConfig, SqliteStorage};
use memory_storage::{MemoryFilter, MemoryStorage};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::runtime::Runtime;

/// Store sizes, unless `BENCH_SQLITE_SIZES` says otherwise.
const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
/// Memories per `store_batch` while filling.
const FILL_BATCH: usize = 1_000;
/// Bump when the fill changes, so cached stores are rebuilt.
const FILL_VERSION: u32 = 1;
/// The days over which `created_at` is spread.
const SPAN_DAYS: i64 = 90;

/// The instant the fill's timestamps and every recall are relative to (2025-06-01 12:00 UTC).
const ANCHOR_EPOCH_SECONDS: f64 = 1_748_779_200.0;

fn random_unit(rng: &mut StdRng, dims: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dims).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn sizes() -> Vec<usize> {
    std::env::var("BENCH_SQLITE_SIZES")
        .ok()
        .map(|s| {
            s.split(',')
                .filter_map(|n| n.trim().replace('_', "").parse().ok())
                .filter(|n| *n > 0)
                .collect::<Vec<usize>>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| SIZES.to_vec())
}

/// `<target dir>/bench-data`: this bench runs as `<target>/<profile>/deps/sqlite_backend-…`.
fn cache_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(std::env::temp_dir)
        .join("bench-data")
}

/// The `j`th of `n` fill memories.
fn fill_memory(j: usize, n: usize, rng: &mut StdRng, dims: usize) -> Memory {
    let mut tags = vec![format!("topic{}", j % 20)];
    if j < 10 {
        tags.push("pinned".to_owned());
    }
    let span = SPAN_DAYS * 86_400;
    let age = span * (j as i64) / (n as i64);
    let created =
        Timestamp::from_epoch_seconds(ANCHOR_EPOCH_SECONDS - age as f64).expect("a valid instant");
    Memory::new(format!(
        "bench memory number {j}: notes about topic {} and project {}",
        j % 97,
        j % 13
    ))
    .expect("valid content")
    .with_tags(Tags::parse(tags).expect("valid tags"))
    .with_created_at(created)
    .with_embedding(random_unit(rng, dims))
}

/// The path of a filled store of `n` memories, built (once) if missing.
async fn cached_store(n: usize, embedder: Arc<dyn Embedder>) -> PathBuf {
    let dir = cache_dir().join(format!("sqlite_{n}_v{FILL_VERSION}"));
    let db = dir.join("bench.db");
    if db.exists() {
        return db;
    }
    let building = cache_dir().join(format!(
        "sqlite_{n}_v{FILL_VERSION}.building-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(&building).expect("the bench-data directory");
    let began = std::time::Instant::now();
    {
        let dims = embedder.dimensions();
        let store = SqliteConfig::new(building.join("bench.db"))
            .open(embedder)
            .await
            .expect("open store");
        let mut rng = StdRng::seed_from_u64(42);
        let mut i = 0;
        while i < n {
            let batch: Vec<Memory> = (i..(i + FILL_BATCH).min(n))
                .map(|j| fill_memory(j, n, &mut rng, dims))
                .collect();
            i += batch.len();
            for outcome in store.store_batch(batch).await.expect("batch stored") {
                outcome.expect("each memory stored");
            }
        }
    }
    // An interrupted build leaves only a `.building-…` directory, never a half-filled store.
    std::fs::rename(&building, &dir).expect("publishing the filled store");
    eprintln!(
        "sqlite_backend: built a store of {n} memories in {:.1} s ({})",
        began.elapsed().as_secs_f64(),
        dir.display()
    );
    db
}

struct Fixture {
    _dir: tempfile::TempDir,
    /// One store, as a process has: the model behind the LRU cache, so a repeated query
    /// is not embedded again while every new text is.
    store: SqliteStorage,
    rng: StdRng,
    dims: usize,
}

/// A fresh copy of the cached store of `n` memories, opened.
async fn fixture(n: usize, model: Arc<BertEmbedder>) -> Fixture {
    let dims = model.dimensions();
    let embedder: Arc<dyn Embedder> = Arc::new(CachedEmbedder::new(model));
    let source = cached_store(n, embedder.clone()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.db");
    std::fs::copy(&source, &db).expect("copying the cached store");
    let wal = source.with_extension("db-wal");
    if wal.exists() {
        std::fs::copy(&wal, db.with_extension("db-wal")).expect("copying the cached WAL");
    }
    let store = SqliteConfig::new(db)
        .open(embedder)
        .await
        .expect("open store");
    assert_eq!(
        store.indexed_vectors(),
        n,
        "the cached store {} holds {n} memories; delete it to rebuild",
        source.display()
    );
    Fixture {
        _dir: dir,
        store,
        rng: StdRng::seed_from_u64(7),
        dims,
    }
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let model = Arc::new(BertEmbedder::open(DEFAULT_MODEL_ID).expect(
        "the all-MiniLM-L6-v2 model files: run `cargo xtask fetch-model` or set MCP_MEMORY_MODEL_DIR",
    ));
    let counter = AtomicU64::new(0);
    let now = Timestamp::from_epoch_seconds(ANCHOR_EPOCH_SECONDS)
        .expect("a valid instant")
        .as_datetime();
    for n in sizes() {
        let mut fx = rt.block_on(fixture(n, model.clone()));

        let dims = fx.dims;
        let vectors: Vec<Vec<f32>> = (0..2_000).map(|_| random_unit(&mut fx.rng, dims)).collect();
        let (store, vectors, counter) = (&fx.store, &vectors, &counter);
        let pinned = Tags::parse("pinned").expect("valid tag");
        let topic = Tags::parse("topic7").expect("valid tag");
        let (pinned, topic) = (&pinned, &topic);

        let mut group = c.benchmark_group(format!("sqlite_{n}"));

        group.bench_function(BenchmarkId::new("retrieve", "without_embedding"), |b| {
            b.to_async(&rt).iter(|| async move {
                black_box(
                    store
                        .retrieve("notes about topic 42", 5)
                        .await
                        .expect("retrieve"),
                )
            })
        });
        let query_vector = rt
            .block_on(model.embed(&["notes about topic 42".to_owned()]))
            .expect("embed the query")
            .remove(0);
        let query_vector = &query_vector;
        group.bench_function(BenchmarkId::new("search_by_vector", "no_embedder"), |b| {
            b.to_async(&rt).iter(|| async move {
                black_box(
                    store
                        .search_by_vector(query_vector.clone(), 5, MemoryFilter::all(), None)
                        .await
                        .expect("search by vector"),
                )
            })
        });
        group.bench_function(BenchmarkId::new("retrieve", "with_embedding"), |b| {
            b.to_async(&rt).iter(|| async move {
                let k = counter.fetch_add(1, Ordering::Relaxed);
                let q = format!("what did I write about topic {k}?");
                black_box(store.retrieve(&q, 5).await.expect("retrieve"))
            })
        });
        group.bench_function(BenchmarkId::new("search_by_tag", "10_matches"), |b| {
            b.to_async(&rt).iter(|| async move {
                let found = store.search_by_tag(pinned).await.expect("search_by_tag");
                assert_eq!(found.len(), 10, "the 10 pinned memories");
                black_box(found)
            })
        });
        group.bench_function(BenchmarkId::new("search_by_tag", "5_percent"), |b| {
            b.to_async(&rt).iter(|| async move {
                black_box(store.search_by_tag(topic).await.expect("search_by_tag"))
            })
        });
        group.bench_function(BenchmarkId::new("recall", "without_embedding"), |b| {
            b.to_async(&rt).iter(|| async move {
                black_box(
                    store
                        .recall_memory_at("notes about project 7 last week", 5, now)
                        .await
                        .expect("recall"),
                )
            })
        });
        group.bench_function(BenchmarkId::new("recall", "with_embedding"), |b| {
            b.to_async(&rt).iter(|| async move {
                let k = counter.fetch_add(1, Ordering::Relaxed);
                let q = format!("what did I note about project {k} last week");
                black_box(store.recall_memory_at(&q, 5, now).await.expect("recall"))
            })
        });
        group.bench_function(BenchmarkId::new("recall", "time_only"), |b| {
            b.to_async(&rt).iter(|| async move {
                black_box(
                    store
                        .recall_memory_at("last week", 5, now)
                        .await
                        .expect("recall"),
                )
            })
        });
        group.bench_function(BenchmarkId::new("store", "with_embedding"), |b| {
            b.to_async(&rt).iter(|| async move {
                let k = counter.fetch_add(1, Ordering::Relaxed);
                let m = Memory::new(format!("fresh note {k} about the release plan"))
                    .expect("valid content");
                black_box(store.store(m).await.expect("store"))
            })
        });
        group.bench_function(BenchmarkId::new("store", "without_embedding"), |b| {
            b.to_async(&rt).iter(|| async move {
                let k = counter.fetch_add(1, Ordering::Relaxed);
                let m = Memory::new(format!("pre-embedded note {k}"))
                    .expect("valid content")
                    .with_embedding(vectors[k as usize % vectors.len()].clone());
                black_box(store.store(m).await.expect("store"))
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    // Defaults for a plain `cargo bench`; `--sample-size`, `--measurement-time` and
    // `--warm-up-time` on the command line override them (`cargo xtask bench --quick`).
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_secs(2))
        .measurement_time(std::time::Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
