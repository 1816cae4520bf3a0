//! The cost of local-first: the hybrid backend against the embedded default (a plain
//! `SqliteStorage`) at 10,000 memories, with Cloudflare (the local emulator) answering every
//! request 50 ms late and the hybrid device's background sync running at its default
//! interval ([`DEFAULT_SYNC_INTERVAL`]). Every call of the hybrid backend is the local
//! store's, so the figures should be the embedded backend's plus the change-log write and
//! whatever the background rounds take from the same file and CPU; the target is a
//! ratio hybrid / embedded ≤ 1.1 for each operation.
//!
//! * Both stores hold the same 10,000 memories, carrying seeded random unit vectors (set-up
//!   stays fast, and ranking cost does not depend on what vectors mean), each tagged one of
//!   20 `topic<n>`, the first 10 also `pinned`. The hybrid device's are pushed, pulled back
//!   and projected before the latency is injected and the background sync started, so the
//!   measurements start in steady state.
//! * Both embed with the real all-MiniLM-L6-v2 behind the LRU cache, as the SQLite bench's
//!   `…/without_embedding` figures do: `store/*` stores a memory carrying its vector,
//!   `retrieve/*` asks the same question each time (its vector comes from the cache), so
//!   what is compared is the backend, not the model.
//! * `search_by_tag/10_matches` returns the 10 `pinned` memories, `search_by_tag/5_percent`
//!   one topic (500 memories, all rows read and decoded).
//! * Each operation runs on the embedded store, then on the hybrid device, back to back
//!   (the reads first, on exactly the fill; `store` last, as every store grows the store);
//!   `store/carried_vector/change_log_only` runs it once more on a third store, the hybrid
//!   device's kind of local store (change log on) without any sync, which tells the change
//!   log's cost from the background rounds'.
//!
//! Criterion measures each backend in turn, so a change of the machine's load between the
//! two runs of an operation would pass for a difference of the backends (on a shared
//! machine it does, by ±30%). The ratios are therefore measured right after criterion's runs of each operation, paired: 40
//! rounds, each a ~25 ms block of iterations on the embedded store and one on the hybrid
//! device in alternating order; the ratio is the median of the rounds' ratios (the ratio of
//! criterion's own medians is kept beside it). They are printed and, when
//! `MCP_MEMORY_BENCH_OUT` names a directory, written to `hybrid_ratios.json` there (with the
//! Cloudflare requests the background rounds sent meanwhile), which `cargo xtask bench`
//! reads.
//!
//! Run with `cargo bench -p memory-hybrid --bench hybrid_backend` (needs the model:
//! `cargo xtask fetch-model`).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloudflare_emulator::FaultRule;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use memory_core::{Memory, Tags};
use memory_embed::{CachedEmbedder, Embedder};
use memory_hybrid::testing::{Deployment, minilm, sync_until_quiet};
use memory_hybrid::{DEFAULT_SYNC_INTERVAL, HybridStorage, SyncOptions};
use memory_sqlite::SqliteConfig;
use memory_storage::MemoryStorage;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use tokio::runtime::Runtime;

/// Memories in each store.
const MEMORIES: usize = 10_000;
/// Latency injected on every Cloudflare request.
const LATENCY: Duration = Duration::from_millis(50);
/// Memories per `store_batch` while filling.
const FILL_BATCH: usize = 1_000;
/// The target for hybrid / embedded.
const TARGET_RATIO: f64 = 1.1;
/// The environment variable naming the directory the ratios are written to.
const OUT_ENV: &str = "MCP_MEMORY_BENCH_OUT";

fn random_unit(rng: &mut StdRng, dims: usize) -> Vec<f32> {
    memory_hybrid::testing::unit_vector(rng.random(), dims)
}

/// The `j`th fill memory (the same in both stores: the vector comes from `rng`, seeded
/// alike for each).
fn fill_memory(j: usize, rng: &mut StdRng, dims: usize) -> Memory {
    let mut tags = vec![format!("topic{}", j % 20)];
    if j < 10 {
        tags.push("pinned".to_owned());
    }
    Memory::new(format!(
        "bench memory number {j}: notes about topic {} and project {}",
        j % 97,
        j % 13
    ))
    .unwrap_or_else(|e| panic!("memory: {e}"))
    .with_tags(Tags::parse(tags).unwrap_or_else(|e| panic!("tags: {e}")))
    .with_embedding(random_unit(rng, dims))
}

/// Fills `store` with the [`MEMORIES`] fill memories.
async fn fill(store: &dyn MemoryStorage, dims: usize) {
    let mut rng = StdRng::seed_from_u64(42);
    let mut i = 0;
    while i < MEMORIES {
        let batch: Vec<Memory> = (i..(i + FILL_BATCH).min(MEMORIES))
            .map(|j| fill_memory(j, &mut rng, dims))
            .collect();
        i += batch.len();
        for outcome in store
            .store_batch(batch)
            .await
            .unwrap_or_else(|e| panic!("filling: {e}"))
        {
            outcome.unwrap_or_else(|e| panic!("filling: {e}"));
        }
    }
}

/// The time per iteration of every sample measured, by bench id.
#[derive(Default)]
struct Samples(Mutex<BTreeMap<String, Vec<f64>>>);

impl Samples {
    fn record(&self, id: &str, iters: u64, elapsed: Duration) {
        if iters == 0 {
            return;
        }
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(id.to_owned())
            .or_default()
            .push(elapsed.as_secs_f64() * 1e9 / iters as f64);
    }

    /// The median time per iteration of `id`, in nanoseconds.
    fn median(&self, id: &str) -> Option<f64> {
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut v = map.get(id)?.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        Some(if v.len().is_multiple_of(2) {
            (v[mid - 1] + v[mid]) / 2.0
        } else {
            v[mid]
        })
    }
}

/// What every operation needs besides its store.
struct Ctx {
    counter: AtomicU64,
    vectors: Vec<Vec<f32>>,
    pinned: Tags,
    topic: Tags,
}

/// Runs `op` `iters` times on `store`; the time taken.
async fn run(op: &str, store: &dyn MemoryStorage, ctx: &Ctx, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        match op {
            "store" => {
                let k = ctx.counter.fetch_add(1, Ordering::Relaxed);
                let m = Memory::new(format!("pre-embedded note {k}"))
                    .unwrap_or_else(|e| panic!("memory: {e}"))
                    .with_embedding(ctx.vectors[k as usize % ctx.vectors.len()].clone());
                black_box(
                    store
                        .store(m)
                        .await
                        .unwrap_or_else(|e| panic!("store: {e}")),
                );
            }
            "retrieve" => {
                black_box(
                    store
                        .retrieve("notes about topic 42", 5)
                        .await
                        .unwrap_or_else(|e| panic!("retrieve: {e}")),
                );
            }
            "search_by_tag/10" => {
                let found = store
                    .search_by_tag(&ctx.pinned)
                    .await
                    .unwrap_or_else(|e| panic!("search_by_tag: {e}"));
                assert_eq!(found.len(), 10, "the 10 pinned memories");
                black_box(found);
            }
            _ => {
                black_box(
                    store
                        .search_by_tag(&ctx.topic)
                        .await
                        .unwrap_or_else(|e| panic!("search_by_tag: {e}")),
                );
            }
        }
    }
    start.elapsed()
}

/// Waits until the hybrid device's background rounds have pushed its whole outbox, pulled
/// its own changes back and projected them into upstream's tables (the projection cursor
/// at the pull cursor: the rounds have nothing left to do), or [`DRAIN_LIMIT`] passed;
/// says how long that took.
async fn drain(hybrid: &HybridStorage) {
    let began = Instant::now();
    let status = || async {
        hybrid
            .engine()
            .status()
            .await
            .unwrap_or_else(|e| panic!("sync status: {e}"))
    };
    let backlog = status().await.backlog;
    // Rounds run one after another: once two more rounds have started than had when the
    // outbox was seen empty, one round that began after the push has finished, and with
    // it the pull of the pushed changes and their projection.
    let mut empty_at: Option<u64> = None;
    loop {
        let now = status().await;
        let rounds = hybrid.engine().rounds();
        if now.backlog > 0 {
            empty_at = None;
        } else if empty_at.is_none() {
            empty_at = Some(rounds);
        }
        let settled =
            empty_at.is_some_and(|r| rounds >= r + 2) && now.project_cursor >= now.pull_cursor;
        if settled || began.elapsed() > DRAIN_LIMIT {
            eprintln!(
                "hybrid_backend: background sync pushed {} of a backlog of {backlog}, pulled to \
                 {} and projected to {} in {:.1} s",
                backlog.saturating_sub(now.backlog),
                now.pull_cursor,
                now.project_cursor,
                began.elapsed().as_secs_f64()
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The longest [`drain`] waits.
const DRAIN_LIMIT: Duration = Duration::from_secs(600);

/// Rounds of the paired measurement, and the time each backend's block of a round aims at.
const ROUNDS: usize = 40;
const BLOCK: Duration = Duration::from_millis(25);

/// Per-iteration times (ns) of each round's blocks, and the per-round ratios.
#[derive(Default)]
struct Paired {
    iterations: u64,
    embedded: Vec<f64>,
    hybrid: Vec<f64>,
    log_only: Vec<f64>,
    ratio: Vec<f64>,
    log_ratio: Vec<f64>,
    /// Cloudflare requests the background rounds sent during the rounds.
    requests: u64,
}

/// The paired measurement of `op`: [`ROUNDS`] rounds, each a block of iterations on the
/// embedded store and one on the hybrid device (and one on `with_log`), in an order that
/// alternates, so both see the same machine; the ratio of each round's blocks.
async fn pair(
    op: &str,
    ctx: &Ctx,
    embedded: &dyn MemoryStorage,
    hybrid: &dyn MemoryStorage,
    with_log: Option<&dyn MemoryStorage>,
) -> Paired {
    let probe = run(op, embedded, ctx, 10).await / 10;
    let iterations = (BLOCK.as_secs_f64() / probe.as_secs_f64().max(1e-7)).clamp(1.0, 2_000.0);
    let iterations = iterations as u64;
    let ns = |d: Duration| d.as_secs_f64() * 1e9 / iterations as f64;
    let mut p = Paired {
        iterations,
        ..Paired::default()
    };
    for round in 0..ROUNDS {
        let (e, h) = if round % 2 == 0 {
            let e = run(op, embedded, ctx, iterations).await;
            (e, run(op, hybrid, ctx, iterations).await)
        } else {
            let h = run(op, hybrid, ctx, iterations).await;
            (run(op, embedded, ctx, iterations).await, h)
        };
        let (e, h) = (ns(e), ns(h));
        p.embedded.push(e);
        p.hybrid.push(h);
        p.ratio.push(h / e);
        if let Some(store) = with_log {
            let l = ns(run(op, store, ctx, iterations).await);
            p.log_only.push(l);
            p.log_ratio.push(l / e);
        }
    }
    p
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a Tokio runtime: {e}"));
    let rt: &Runtime = &runtime;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"));
    let model = minilm();
    let dims = model.dimensions();

    let began = Instant::now();
    let (embedded, change_log, cf, hybrid) = rt.block_on(async {
        // One cache per store, as each process has its own.
        let embedded = SqliteConfig::new(dir.path().join("embedded.db"))
            .open(Arc::new(CachedEmbedder::new(model.clone())))
            .await
            .unwrap_or_else(|e| panic!("opening the embedded store: {e}"));
        fill(&embedded, dims).await;
        // The hybrid device's local store alone (change log on, no sync): what the
        // change log costs a store, apart from the background rounds.
        let change_log = SqliteConfig::new(dir.path().join("change_log.db"))
            .change_log(true)
            .open(Arc::new(CachedEmbedder::new(model.clone())))
            .await
            .unwrap_or_else(|e| panic!("opening the change-log store: {e}"));
        fill(&change_log, dims).await;

        let cf = Deployment::start().await;
        let hybrid = cf
            .device_with(
                dir.path(),
                "hybrid",
                Arc::new(CachedEmbedder::new(model.clone())),
                SyncOptions::default(),
            )
            .await;
        fill(&hybrid, dims).await;
        // Pushed, pulled back and projected at 0 ms, so the bench starts in steady state.
        sync_until_quiet(&[&hybrid], 10).await;
        cf.emulator
            .faults()
            .add(FaultRule::latency("", LATENCY, Duration::ZERO))
            .unwrap_or_else(|e| panic!("injecting latency: {e}"));
        hybrid.start_background(DEFAULT_SYNC_INTERVAL);
        cf.reset_counts();
        (embedded, change_log, cf, hybrid)
    });
    eprintln!(
        "hybrid_backend: three stores of {MEMORIES} memories ready in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    let measuring = Instant::now();

    let samples = Samples::default();
    let counter = AtomicU64::new(0);
    let vectors: Vec<Vec<f32>> = {
        let mut rng = StdRng::seed_from_u64(7);
        (0..2_000).map(|_| random_unit(&mut rng, dims)).collect()
    };
    let ctx = Ctx {
        counter,
        vectors,
        pinned: Tags::parse("pinned").unwrap_or_else(|e| panic!("tags: {e}")),
        topic: Tags::parse("topic7").unwrap_or_else(|e| panic!("tags: {e}")),
    };
    let stores: [(&str, &dyn MemoryStorage); 3] = [
        ("embedded", &embedded),
        ("hybrid", &hybrid),
        ("change_log_only", &change_log),
    ];
    // The reads first, so they run on exactly the fill in both stores; each store adds a
    // memory (tens of thousands in a run), so `store` comes last.
    let ops = ["retrieve", "search_by_tag/10", "search_by_tag/5", "store"];
    let id_of = |op: &str| match op {
        "store" => ("store", "carried_vector"),
        "retrieve" => ("retrieve", "cached_query"),
        "search_by_tag/10" => ("search_by_tag_10_matches", ""),
        _ => ("search_by_tag_5_percent", ""),
    };

    let group_name = format!("hybrid_{MEMORIES}");
    let mut group = c.benchmark_group(&group_name);
    let mut paired: BTreeMap<&str, Paired> = BTreeMap::new();
    for op in ops {
        for (backend, store) in stores {
            if backend == "change_log_only" && op != "store" {
                continue; // a read is the same local call with or without the log
            }
            let (name, variant) = id_of(op);
            let function = if variant.is_empty() {
                name.to_owned()
            } else {
                format!("{name}/{variant}")
            };
            let id = BenchmarkId::new(function.clone(), backend);
            let full = format!("{group_name}/{function}/{backend}");
            let (samples, ctx, full) = (&samples, &ctx, &full);
            group.bench_function(id, |b| {
                b.to_async(rt).iter_custom(|iters| async move {
                    let elapsed = run(op, store, ctx, iters).await;
                    samples.record(full, iters, elapsed);
                    elapsed
                });
            });
        }
        // The ratio: paired, right after criterion's runs of `op` (so on the same stores),
        // unless the filter skipped them.
        let (name, variant) = id_of(op);
        let function = if variant.is_empty() {
            name.to_owned()
        } else {
            format!("{name}/{variant}")
        };
        if samples
            .median(&format!("{group_name}/{function}/embedded"))
            .is_some()
        {
            let with_log: Option<&dyn MemoryStorage> = (op == "store").then_some(&change_log);
            if op == "store" {
                // Criterion's runs left a backlog of tens of thousands of stores, far more
                // than an assistant writes; its push would run through the paired rounds.
                // Pair from the steady state instead: the outbox drained.
                rt.block_on(drain(&hybrid));
            }
            let sent = || -> u64 {
                ["d1", "vectorize", "r2"]
                    .map(|s| cf.requests(s))
                    .iter()
                    .sum()
            };
            let before = sent();
            let mut p = rt.block_on(pair(op, &ctx, &embedded, &hybrid, with_log));
            p.requests = sent() - before;
            paired.insert(op, p);
        }
    }
    group.finish();
    let measured_for = measuring.elapsed();

    // The ratios, and what the background sync did meanwhile.
    let mut operations = serde_json::Map::new();
    let mut worst: f64 = 0.0;
    println!("hybrid / embedded at {MEMORIES} memories, {LATENCY:?} latency, background sync on:");
    for op in ops {
        let (name, variant) = id_of(op);
        let function = if variant.is_empty() {
            name.to_owned()
        } else {
            format!("{name}/{variant}")
        };
        let Some(p) = paired.get(op) else {
            continue; // filtered out
        };
        let (e, h, ratio) = (median(&p.embedded), median(&p.hybrid), median(&p.ratio));
        worst = worst.max(ratio);
        let sequential = samples
            .median(&format!("{group_name}/{function}/hybrid"))
            .zip(samples.median(&format!("{group_name}/{function}/embedded")))
            .map(|(h, e)| h / e);
        println!(
            "  {function:<28} embedded {:>9.1} µs, hybrid {:>9.1} µs, ratio {ratio:.3} \
             (paired, {} rounds, {} requests meanwhile; criterion samples: {:.3})",
            e / 1e3,
            h / 1e3,
            p.ratio.len(),
            p.requests,
            sequential.unwrap_or(f64::NAN)
        );
        let mut entry = json!({
            "embedded_median_ns": e,
            "hybrid_median_ns": h,
            "ratio": ratio,
            "rounds": p.ratio.len(),
            "requests_during_rounds": p.requests,
            "iterations_per_round": p.iterations,
            "within_target": ratio <= TARGET_RATIO,
            "criterion_samples_ratio": sequential,
        });
        if !p.log_ratio.is_empty() {
            let (l, r) = (median(&p.log_only), median(&p.log_ratio));
            println!(
                "  {:<28} change log on, no sync {:>9.1} µs, ratio {r:.3}",
                "",
                l / 1e3
            );
            entry["change_log_only_median_ns"] = json!(l);
            entry["change_log_only_ratio"] = json!(r);
        }
        operations.insert(function, entry);
    }
    let status = rt
        .block_on(hybrid.engine().status())
        .unwrap_or_else(|e| panic!("sync status: {e}"));
    let requests: BTreeMap<&str, u64> = ["d1", "vectorize", "r2"]
        .into_iter()
        .map(|s| (s, cf.requests(s)))
        .collect();
    println!(
        "  background sync meanwhile ({:.0} s): {requests:?} requests, backlog at the end {}",
        measured_for.as_secs_f64(),
        status.backlog
    );
    if operations.is_empty() {
        return;
    }
    let out = json!({
        "memories": MEMORIES,
        "latency_ms": LATENCY.as_millis() as u64,
        "sync_interval_ms": DEFAULT_SYNC_INTERVAL.as_millis() as u64,
        "target_ratio": TARGET_RATIO,
        "worst_ratio": worst,
        "operations": Value::Object(operations),
        "background": {
            "seconds": measured_for.as_secs_f64(),
            "requests": requests,
            "backlog_at_end": status.backlog,
        },
    });
    if let Some(dir) = std::env::var_os(OUT_ENV) {
        let dir = std::path::PathBuf::from(dir);
        let path = dir.join("hybrid_ratios.json");
        let text = serde_json::to_string_pretty(&out)
            .unwrap_or_else(|e| panic!("serialising the ratios: {e}"));
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&path, text))
            .unwrap_or_else(|e| panic!("writing {} ({OUT_ENV}): {e}", path.display()));
        println!("ratios written to {}", path.display());
    }
    let _inside = rt.enter();
    drop(hybrid);
    drop(cf);
}

criterion_group! {
    name = benches;
    // Defaults for a plain `cargo bench`; command-line options override them.
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
