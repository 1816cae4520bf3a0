//! The embedded backend's store and retrieve at 1k and 10k memories, with and without the
//! time spent embedding. Run with `cargo bench --bench sqlite_backend` (needs the model:
//! `cargo xtask fetch-model`).
//!
//! * Memories that fill the store carry seeded random unit vectors (ranking cost does not
//!   depend on what vectors mean, and embedding 10k texts would dominate set-up time).
//! * `with_embedding`: the real all-MiniLM-L6-v2 embeds every stored text / query.
//! * `without_embedding`: store gets a memory carrying its vector; retrieve's query vector
//!   comes from the LRU embedding cache (the same query each time), so what is measured is
//!   the backend: filter, vector ranking, row fetch. `search_by_vector` is the same without
//!   even the cache lookup.
//! * Each store adds a memory, so the store grows a little during the run (≤ a few percent).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use memory_core::{Memory, Tags};
use memory_embed::{BertEmbedder, CachedEmbedder, DEFAULT_MODEL_ID, Embedder};
use memory_sqlite::{SqliteConfig, SqliteStorage};
use memory_storage::{MemoryFilter, MemoryStorage};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::runtime::Runtime;

const SIZES: [usize; 2] = [1_000, 10_000];
const FILL_BATCH: usize = 500;

fn random_unit(rng: &mut StdRng, dims: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dims).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

struct Fixture {
    _dir: tempfile::TempDir,
    /// One store, as a process has: the model behind the LRU cache, so a repeated query
    /// is not embedded again while every new text is.
    store: SqliteStorage,
    rng: StdRng,
    dims: usize,
}

async fn fixture(n: usize, model: Arc<BertEmbedder>) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let dims = model.dimensions();
    let embedder: Arc<dyn Embedder> = Arc::new(CachedEmbedder::new(model));
    let store = SqliteConfig::new(dir.path().join("bench.db"))
        .open(embedder)
        .await
        .expect("open store");
    let mut rng = StdRng::seed_from_u64(42);
    let mut i = 0;
    while i < n {
        let batch: Vec<Memory> = (i..(i + FILL_BATCH).min(n))
            .map(|j| {
                Memory::new(format!(
                    "bench memory number {j}: notes about topic {}",
                    j % 97
                ))
                .expect("valid content")
                .with_tags(Tags::parse(format!("topic{}", j % 20)).expect("valid tag"))
                .with_embedding(random_unit(&mut rng, dims))
            })
            .collect();
        i += batch.len();
        for outcome in store.store_batch(batch).await.expect("batch stored") {
            outcome.expect("each memory stored");
        }
    }
    Fixture {
        _dir: dir,
        store,
        rng,
        dims,
    }
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let model = Arc::new(BertEmbedder::open(DEFAULT_MODEL_ID).expect(
        "the all-MiniLM-L6-v2 model files: run `cargo xtask fetch-model` or set MCP_MEMORY_MODEL_DIR",
    ));
    let counter = AtomicU64::new(0);
    for n in SIZES {
        let mut fx = rt.block_on(fixture(n, model.clone()));

        let dims = fx.dims;
        let vectors: Vec<Vec<f32>> = (0..2_000).map(|_| random_unit(&mut fx.rng, dims)).collect();
        let (store, vectors, counter) = (&fx.store, &vectors, &counter);

        let mut group = c.benchmark_group(format!("sqlite_{n}"));
        group.sample_size(30);

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

criterion_group!(benches, bench);
criterion_main!(benches);
