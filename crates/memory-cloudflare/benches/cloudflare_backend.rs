//! `CloudflareStorage` on the local Cloudflare emulator, with 0 ms and with 50 ms of latency
//! injected on every API path (50 ms: a round trip to Cloudflare's edge), so what is measured
//! is how many round trips each operation waits for, and which of them run in parallel:
//!
//! * `store`: a new memory each time — the embedding call, then the D1 batch and the
//!   Vectorize upsert in parallel: about 2 × 50 ms, not 3 × 50 ms;
//! * `retrieve/new_query`: a query never seen before (embedding, Vectorize query, D1 rows:
//!   3 round trips), `retrieve/cached_query`: the same query again (its vector comes from the
//!   LRU cache: 2 round trips);
//! * `search_by_tag`: one D1 query;
//! * `bulk_import/10000`: 10,000 memories through `store_batch` into a fresh database and
//!   index, each memory **carrying its vector** (as `mcp-memory import`/`migrate` send them
//!   when both stores use the same model), so what is measured is the backend — ≤ 50
//!   memories per D1 batch, one after another, in parallel with ≤ 5000 vectors per Vectorize
//!   upsert — not the emulator's CPU stand-in for Workers AI. 10 samples (set
//!   `BENCH_BULK_MEMORIES` for another size);
//! * `bulk_import_embedded/100`: 100 memories without vectors, so one Workers AI call
//!   embeds them; that call runs the local all-MiniLM-L6-v2 on this machine's CPU, which is
//!   far slower than Workers AI: read it as an upper bound;
//! * the heavy paths on a 10,000-memory store (group `cloudflare_<ms>_10k`, built on first
//!   use, carried vectors, each memory tagged one of 20 `topic<n>`):
//!   `search_exact_by_tag/10000` is a semantic search filtered by one tag (500 memories),
//!   which Vectorize's top 100 cannot serve, so it takes the exact path (the matching ids
//!   from D1, their vectors, ranked locally); `check/10000` is the consistency check. Their
//!   figure of interest is the API requests per call (printed, and in the JSON), the
//!   budget they spend of Cloudflare's 1,200 per 5 minutes.
//!
//! After each bench the API calls per operation (from the transport's accounting: calls,
//! retries, failures, mean latency of the call) are printed, in total and per iteration,
//! and, when `MCP_MEMORY_BENCH_OUT` names a directory, written to
//! `cloudflare_requests.json` there (`cargo xtask bench` reads it for docs/BENCHMARKS.md).
//! Criterion's warm-up iterations are counted too, so the per-iteration figures divide by
//! every iteration run.
//!
//! Run with `cargo bench -p memory-cloudflare --bench cloudflare_backend` (needs the model:
//! `cargo xtask fetch-model`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cloudflare_emulator::FaultRule;
use common::{Setup, TestEnv};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use memory_cloudflare::CloudflareStorage;
use memory_core::{Memory, Tags};
use memory_storage::MemoryStorage;
use memory_storage::{MemoryFilter, SemanticQuery, TagFilter};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use tokio::sync::OnceCell;

/// Latencies added to every API call, one bench group each.
const LATENCIES: [Duration; 2] = [Duration::ZERO, Duration::from_millis(50)];
/// Memories in the store the read benches run on.
const FILL: usize = 200;
/// Memories per bulk import (carried vectors), unless `BENCH_BULK_MEMORIES` says otherwise.
const BULK: usize = 10_000;
/// Memories per bulk import that Workers AI embeds.
const BULK_EMBEDDED: usize = 100;
/// Memories in the store of the heavy paths (exact search, check).
const HEAVY: usize = 10_000;
/// Vector length of the emulator's stand-in model.
const DIMS: usize = 384;
/// The environment variable naming the directory the request counts are written to.
const OUT_ENV: &str = "MCP_MEMORY_BENCH_OUT";

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

fn random_unit(rng: &mut StdRng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIMS).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// API calls per bench, collected for `cloudflare_requests.json`.
#[derive(Default)]
struct Requests(Mutex<BTreeMap<String, Value>>);

impl Requests {
    /// Prints the calls per operation since the last reset, in total and per iteration,
    /// keeps them under `bench` (a criterion id), and resets the counters. A bench that did
    /// not run (filtered out) reports nothing.
    fn report(&self, env: &TestEnv, bench: &str, iterations: u64) {
        if iterations == 0 {
            env.reset_counts();
            return;
        }
        let per = iterations.max(1) as f64;
        println!("{bench}: API calls over {iterations} iterations");
        let mut ops = serde_json::Map::new();
        for (op, stats) in env.accounting().snapshot() {
            let mean_ms = stats
                .mean_latency()
                .map(|d| d.as_secs_f64() * 1000.0)
                .unwrap_or(0.0);
            println!(
                "  {:<24} {:>8} calls ({:.2}/iteration), {} retries, {} failures, mean {:.1} ms",
                op.to_string(),
                stats.calls,
                stats.calls as f64 / per,
                stats.retries(),
                stats.failures,
                mean_ms
            );
            ops.insert(
                op.to_string(),
                json!({
                    "calls": stats.calls,
                    "per_iteration": stats.calls as f64 / per,
                    "retries": stats.retries(),
                    "failures": stats.failures,
                    "mean_latency_ms": mean_ms,
                }),
            );
        }
        env.reset_counts();
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                bench.to_owned(),
                json!({ "iterations": iterations, "operations": ops }),
            );
    }

    /// Writes what was collected to `$MCP_MEMORY_BENCH_OUT/cloudflare_requests.json`, if set.
    fn write(&self) {
        let Some(dir) = std::env::var_os(OUT_ENV) else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        let path = dir.join("cloudflare_requests.json");
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let text = serde_json::to_string_pretty(&*map)
            .unwrap_or_else(|e| panic!("serialising the request counts: {e}"));
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&path, text))
            .unwrap_or_else(|e| panic!("writing {} ({OUT_ENV}): {e}", path.display()));
        println!("request counts written to {}", path.display());
    }
}

/// A store on a fresh database and index of the bench's emulator.
async fn fresh_store(env: &TestEnv) -> CloudflareStorage {
    let mut config = env.config();
    config.d1_database_id = cloudflare_emulator::d1::new_database_id();
    config.vectorize_index = format!("bench-{:016x}", rand::random::<u64>());
    env.storage_from(&config).await
}

/// Imports `size` memories (from `make`) into a fresh store per iteration, timing only the
/// `store_batch` call; the counters are reset before each import.
#[allow(clippy::too_many_arguments)]
fn bulk(
    c: &mut Criterion,
    runtime: &Runtime,
    env: &TestEnv,
    requests: &Requests,
    group_name: &str,
    bench_name: &str,
    size: usize,
    make: &(dyn Fn(u64) -> Memory + Sync),
    next: &AtomicU64,
) {
    let mut group = c.benchmark_group(group_name);
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_millis(1));
    group.throughput(Throughput::Elements(size as u64));
    let imports = AtomicU64::new(0);
    group.bench_function(bench_name, |b| {
        b.to_async(runtime).iter_custom(|iters| {
            let imports = &imports;
            async move {
                let mut measured = Duration::ZERO;
                for _ in 0..iters {
                    let store = fresh_store(env).await;
                    let start = next.fetch_add(size as u64, Ordering::Relaxed);
                    let memories: Vec<Memory> = (start..start + size as u64).map(make).collect();
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
    let runs = imports.load(Ordering::Relaxed);
    requests.report(env, &format!("{group_name}/{bench_name}"), runs.min(1));
    println!(
        "{group_name}/{bench_name}: {} imports run",
        imports.load(Ordering::Relaxed)
    );
    group.finish();
}

/// A fresh store of [`HEAVY`] memories carrying `vectors`, settled (Vectorize has applied
/// every write), with the counters reset after it.
async fn heavy_store(env: &TestEnv, vectors: &[Vec<f32>]) -> CloudflareStorage {
    let store = fresh_store(env).await;
    let memories: Vec<Memory> = (0..HEAVY as u64)
        .map(|i| memory(i, "heavy").with_embedding(vectors[i as usize % vectors.len()].clone()))
        .collect();
    for outcome in store
        .store_batch(memories)
        .await
        .unwrap_or_else(|e| panic!("filling the 10k store: {e}"))
    {
        outcome.unwrap_or_else(|e| panic!("filling the 10k store: {e}"));
    }
    tokio::time::sleep(env.emulator.config().mutation_delay + Duration::from_millis(500)).await;
    env.reset_counts();
    store
}

/// The heavy paths on a [`HEAVY`]-memory store: an exact (filtered) search and `check`,
/// with their API requests per call. The store is built when the first of them runs, so a
/// filter that skips both builds nothing.
fn heavy(
    c: &mut Criterion,
    runtime: &Runtime,
    env: &TestEnv,
    requests: &Requests,
    group_name: &str,
    vectors: &[Vec<f32>],
) {
    let store: OnceCell<CloudflareStorage> = OnceCell::new();
    let store = &store;
    let mut group = c.benchmark_group(group_name);
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    let tags = Tags::parse(vec!["topic7".to_owned()]).unwrap_or_else(|e| panic!("tags: {e}"));
    let query = SemanticQuery::new("notes about topic 7", 10)
        .with_filter(MemoryFilter::all().with_tags(TagFilter::any(tags)));
    let query = &query;
    let iterations = AtomicU64::new(0);
    let iterations = &iterations;
    let search = format!("search_exact_by_tag/{HEAVY}");
    group.bench_function(&search, |b| {
        b.to_async(runtime).iter(|| async {
            let store = store.get_or_init(|| heavy_store(env, vectors)).await;
            iterations.fetch_add(1, Ordering::Relaxed);
            let found = store
                .search(query)
                .await
                .unwrap_or_else(|e| panic!("exact search: {e}"));
            let method = found
                .first()
                .and_then(|r| r.debug_info.as_ref())
                .map(|d| d.method.as_str());
            assert_eq!(
                method,
                Some("semantic_exact"),
                "the filtered search took the exact path"
            );
            black_box(found)
        });
    });
    requests.report(
        env,
        &format!("{group_name}/{search}"),
        iterations.swap(0, Ordering::Relaxed),
    );
    let check = format!("check/{HEAVY}");
    group.bench_function(&check, |b| {
        b.to_async(runtime).iter(|| async {
            let store = store.get_or_init(|| heavy_store(env, vectors)).await;
            iterations.fetch_add(1, Ordering::Relaxed);
            black_box(store.check().await.unwrap_or_else(|e| panic!("check: {e}")))
        });
    });
    requests.report(
        env,
        &format!("{group_name}/{check}"),
        iterations.swap(0, Ordering::Relaxed),
    );
    group.finish();
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a Tokio runtime: {e}"));
    let runtime: &Runtime = &runtime;
    let requests = Requests::default();
    let next = AtomicU64::new(1_000_000);
    let iterations = AtomicU64::new(0);
    let bulk_size = std::env::var("BENCH_BULK_MEMORIES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(BULK);
    let vectors = {
        let mut rng = StdRng::seed_from_u64(42);
        (0..4_096)
            .map(|_| random_unit(&mut rng))
            .collect::<Vec<_>>()
    };

    for latency in LATENCIES {
        let ms = latency.as_millis();
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
        if !latency.is_zero() {
            env.fault(FaultRule::latency("", latency, Duration::ZERO));
        }
        let (env, store, next, iterations, requests) =
            (&env, &store, &next, &iterations, &requests);

        let group_name = format!("cloudflare_{ms}ms");
        let mut group = c.benchmark_group(&group_name);
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
        requests.report(
            env,
            &format!("{group_name}/store"),
            iterations.swap(0, Ordering::Relaxed),
        );

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
        requests.report(
            env,
            &format!("{group_name}/retrieve/new_query"),
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
        requests.report(
            env,
            &format!("{group_name}/retrieve/cached_query"),
            iterations.swap(0, Ordering::Relaxed),
        );

        let tags = Tags::parse(vec!["topic7".to_owned()]).unwrap_or_else(|e| panic!("tags: {e}"));
        let tags = &tags;
        group.bench_function("search_by_tag", |b| {
            b.to_async(runtime).iter(|| async {
                iterations.fetch_add(1, Ordering::Relaxed);
                black_box(
                    store
                        .search_by_tag(tags)
                        .await
                        .unwrap_or_else(|e| panic!("search_by_tag: {e}")),
                )
            });
        });
        requests.report(
            env,
            &format!("{group_name}/search_by_tag"),
            iterations.swap(0, Ordering::Relaxed),
        );
        group.finish();

        let vectors = &vectors;
        let carried = move |i: u64| {
            memory(i, "bulk").with_embedding(vectors[i as usize % vectors.len()].clone())
        };
        bulk(
            c,
            runtime,
            env,
            requests,
            &format!("{group_name}_bulk"),
            &format!("bulk_import/{bulk_size}"),
            bulk_size,
            &carried,
            next,
        );
        let embedded = |i: u64| memory(i, "bulk-embedded");
        bulk(
            c,
            runtime,
            env,
            requests,
            &format!("{group_name}_bulk"),
            &format!("bulk_import_embedded/{BULK_EMBEDDED}"),
            BULK_EMBEDDED,
            &embedded,
            next,
        );
        heavy(
            c,
            runtime,
            env,
            requests,
            &format!("{group_name}_10k"),
            vectors,
        );
    }
    requests.write();
}

criterion_group! {
    name = benches;
    // Defaults for a plain `cargo bench`; command-line options override them (the bulk
    // groups fix their own: 10 flat samples).
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
