//! `CloudflareStorage` on the local Cloudflare emulator with 50 ms of latency injected on
//! every API path (a round trip to Cloudflare's edge), so what is measured is how many
//! round trips each operation waits for, and which of them run in parallel:
//!
//! * `store`: a new memory each time — the embedding call, then the D1 batch and the
//!   Vectorize upsert in parallel: about 2 × 50 ms, not 3 × 50 ms;
//! * `retrieve/new_query`: a query never seen before (embedding, Vectorize query, D1 rows:
//!   3 round trips), `retrieve/cached_query`: the same query again (its vector comes from the
//!   LRU cache: 2 round trips);
//! * `search_by_tag`: one D1 query;
//! * `bulk_import`: 10,000 memories through `store_batch` into a fresh database and index
//!   (≤ 100 texts per Workers AI call, ≤ 50 memories per D1 batch, ≤ 5000 vectors per
//!   upsert), reported as memories/s; 10 samples (set `BENCH_BULK_MEMORIES` for another
//!   size).
//!
//! After each bench the request counts per operation (from the transport's accounting) are
//! printed, in total and per iteration. Embeddings come from the emulator's Workers AI
//! stand-in (the local all-MiniLM-L6-v2), so the bulk import also measures local inference.
//!
//! Run with `cargo bench -p memory-cloudflare --bench cloudflare_backend` (needs the model:
//! `cargo xtask fetch-model`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cloudflare_emulator::FaultRule;
use common::{Setup, TestEnv};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use memory_cloudflare::CloudflareStorage;
use memory_core::{Memory, Tags};
use memory_storage::MemoryStorage;
use tokio::runtime::Runtime;

/// Latency added to every API call.
const LATENCY: Duration = Duration::from_millis(50);
/// Memories in the store the read benches run on.
const FILL: usize = 200;
/// Memories per bulk import, unless `BENCH_BULK_MEMORIES` says otherwise.
const BULK: usize = 10_000;

fn memory(i: u64, tag: &str) -> Memory {
    let content = format!(
        "bench memory {i}: notes about topic {} and project {}",
        i % 97,
        i % 13
    );
    let tags = Tags::parse(vec![tag.to_owned(), format!("topic{}", i % 20)])
        .unwrap_or_else(|e| panic!("tags: {e}"));
    Memory::new(content)
        .unwrap_or_else(|e| panic!("memory: {e}"))
        .with_tags(tags)
}

/// Prints the calls per operation since the last reset, in total and per iteration.
fn report(env: &TestEnv, bench: &str, iterations: u64) {
    let per = iterations.max(1) as f64;
    println!("{bench}: API calls over {iterations} iterations");
    for (op, stats) in env.accounting().snapshot() {
        println!(
            "  {:<24} {:>8} calls ({:.2}/iteration), {} retries, {} failures",
            op.to_string(),
            stats.calls,
            stats.calls as f64 / per,
            stats.retries(),
            stats.failures
        );
    }
    env.reset_counts();
}

/// A store on a fresh database and index of the bench's emulator.
async fn fresh_store(env: &TestEnv) -> CloudflareStorage {
    let mut config = env.config();
    config.d1_database_id = cloudflare_emulator::d1::new_database_id();
    config.vectorize_index = format!("bench-{:016x}", rand::random::<u64>());
    env.storage_from(&config).await
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a Tokio runtime: {e}"));
    let runtime: &Runtime = &runtime;
    let env = runtime.block_on(TestEnv::start(Setup::direct()));
    let store = runtime.block_on(async {
        let store = env.storage().await;
        let fill: Vec<Memory> = (0..FILL as u64).map(|i| memory(i, "bench")).collect();
        for outcome in store
            .store_batch(fill)
            .await
            .unwrap_or_else(|e| panic!("filling the store: {e}"))
        {
            outcome.unwrap_or_else(|e| panic!("filling the store: {e}"));
        }
        store
    });
    env.fault(FaultRule::latency("", LATENCY, Duration::ZERO));
    let next = AtomicU64::new(1_000_000);
    let iterations = AtomicU64::new(0);

    let mut group = c.benchmark_group("cloudflare_50ms");
    env.reset_counts();
    group.bench_function("store", |b| {
        b.to_async(runtime).iter(|| async {
            iterations.fetch_add(1, Ordering::Relaxed);
            let m = memory(next.fetch_add(1, Ordering::Relaxed), "stored");
            black_box(
                store
                    .store(m)
                    .await
                    .unwrap_or_else(|e| panic!("store: {e}")),
            )
        });
    });
    report(&env, "store", iterations.swap(0, Ordering::Relaxed));

    group.bench_function("retrieve/new_query", |b| {
        b.to_async(runtime).iter(|| async {
            iterations.fetch_add(1, Ordering::Relaxed);
            let query = format!(
                "what are the notes about topic {}?",
                next.fetch_add(1, Ordering::Relaxed)
            );
            black_box(
                store
                    .retrieve(&query, 5)
                    .await
                    .unwrap_or_else(|e| panic!("retrieve: {e}")),
            )
        });
    });
    report(
        &env,
        "retrieve/new_query",
        iterations.swap(0, Ordering::Relaxed),
    );

    group.bench_function("retrieve/cached_query", |b| {
        b.to_async(runtime).iter(|| async {
            iterations.fetch_add(1, Ordering::Relaxed);
            black_box(
                store
                    .retrieve("what are the notes about project 7?", 5)
                    .await
                    .unwrap_or_else(|e| panic!("retrieve: {e}")),
            )
        });
    });
    report(
        &env,
        "retrieve/cached_query",
        iterations.swap(0, Ordering::Relaxed),
    );

    let tags = Tags::parse(vec!["topic7".to_owned()]).unwrap_or_else(|e| panic!("tags: {e}"));
    group.bench_function("search_by_tag", |b| {
        b.to_async(runtime).iter(|| async {
            iterations.fetch_add(1, Ordering::Relaxed);
            black_box(
                store
                    .search_by_tag(&tags)
                    .await
                    .unwrap_or_else(|e| panic!("search_by_tag: {e}")),
            )
        });
    });
    report(&env, "search_by_tag", iterations.swap(0, Ordering::Relaxed));
    group.finish();

    let bulk = std::env::var("BENCH_BULK_MEMORIES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(BULK);
    let mut group = c.benchmark_group("cloudflare_50ms_bulk");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(1));
    group.throughput(Throughput::Elements(bulk as u64));
    let imports = AtomicU64::new(0);
    group.bench_function(format!("bulk_import/{bulk}"), |b| {
        b.to_async(runtime).iter_custom(|iters| {
            let env = &env;
            let next = &next;
            let imports = &imports;
            async move {
                let mut measured = Duration::ZERO;
                for _ in 0..iters {
                    let store = fresh_store(env).await;
                    let start = next.fetch_add(bulk as u64, Ordering::Relaxed);
                    let memories: Vec<Memory> = (start..start + bulk as u64)
                        .map(|i| memory(i, "bulk"))
                        .collect();
                    env.reset_counts();
                    let began = Instant::now();
                    let outcomes = store
                        .store_batch(memories)
                        .await
                        .unwrap_or_else(|e| panic!("store_batch: {e}"));
                    measured += began.elapsed();
                    imports.fetch_add(1, Ordering::Relaxed);
                    assert!(outcomes.iter().all(Result::is_ok), "every memory stored");
                    black_box(outcomes);
                }
                measured
            }
        });
    });
    // The counters were reset before each import: these are the last import's.
    report(&env, &format!("bulk_import/{bulk} (last import)"), 1);
    println!(
        "bulk_import/{bulk}: {} imports run",
        imports.load(Ordering::Relaxed)
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
