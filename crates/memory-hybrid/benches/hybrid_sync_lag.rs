//! Sync lag and requests per synced memory of the hybrid backend: two devices on one
//! deployment (the local Cloudflare emulator, 50 ms injected on every request), both
//! syncing in the background at [`DEFAULT_SYNC_INTERVAL`], as two MCP servers do.
//!
//! Device A stores memories (100 by default, `BENCH_SYNC_STORES`), one after another with a
//! random gap of 0 to 2 × the interval between them (`BENCH_SYNC_GAP_MS` sets the mean gap;
//! default: the interval), so stores fall at every phase of both devices' rounds. A watcher
//! polls device B every 10 ms for each pending memory's vector (a memory with its vector in
//! B's store is what B's semantic search ranks). **Lag** is the time from A's `store`
//! returning to the memory being there on B; median, p95 and max are over every store.
//! At the end B's semantic search is asked for the last memory's content, which must rank
//! it first.
//!
//! **Requests per synced memory**: every Cloudflare request both devices sent (D1,
//! Vectorize, R2; counted by the transport's accounting) from the first store until every
//! memory reached B and both devices' next rounds ran, divided by the memories stored: the
//! push, A's pull of its own change, the projection into upstream's tables and index, B's
//! pull, and the idle rounds in between, shared by the memories.
//!
//! Not a criterion bench (one long measurement, not a micro-benchmark): it prints a
//! summary and, when `MCP_MEMORY_BENCH_OUT` names a directory, writes `hybrid_sync.json`
//! there, which `cargo xtask bench` reads. Run with
//! `cargo bench -p memory-hybrid --bench hybrid_sync_lag` (needs the model:
//! `cargo xtask fetch-model`); criterion's arguments are ignored.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloudflare_emulator::FaultRule;
use memory_core::{ContentHash, Memory, Tags};
use memory_embed::CachedEmbedder;
use memory_hybrid::testing::{Deployment, minilm, sync_until_quiet};
use memory_hybrid::{DEFAULT_SYNC_INTERVAL, SyncOptions};
use memory_storage::MemoryStorage;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;

/// Latency injected on every Cloudflare request.
const LATENCY: Duration = Duration::from_millis(50);
/// Memories device A stores, unless `BENCH_SYNC_STORES` says otherwise.
const STORES: usize = 100;
/// How often the watcher looks at device B.
const POLL: Duration = Duration::from_millis(10);
/// The environment variable naming the directory the figures are written to.
const OUT_ENV: &str = "MCP_MEMORY_BENCH_OUT";

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
}

/// The `q` quantile of sorted `v` (nearest rank).
fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let stores = env_number("BENCH_SYNC_STORES").map_or(STORES, |n| n as usize);
    let mean_gap =
        env_number("BENCH_SYNC_GAP_MS").map_or(DEFAULT_SYNC_INTERVAL, Duration::from_millis);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"));
    let model = minilm();
    let cf = Deployment::start().await;
    let device = |name: &'static str| {
        let (cf, dir, model) = (&cf, dir.path(), model.clone());
        async move {
            cf.device_with(
                dir,
                name,
                Arc::new(CachedEmbedder::new(model)),
                SyncOptions::default(),
            )
            .await
        }
    };
    let a = device("a").await;
    let b = device("b").await;
    // Each device's first round (connect, content-hash diff) at 0 ms, before measuring.
    sync_until_quiet(&[&a, &b], 5).await;
    cf.emulator
        .faults()
        .add(FaultRule::latency("", LATENCY, Duration::ZERO))
        .unwrap_or_else(|e| panic!("injecting latency: {e}"));
    a.start_background(DEFAULT_SYNC_INTERVAL);
    b.start_background(DEFAULT_SYNC_INTERVAL);
    println!(
        "hybrid_sync_lag: {stores} stores on device A, mean gap {mean_gap:?}, sync interval \
         {DEFAULT_SYNC_INTERVAL:?}, {LATENCY:?} latency on every request"
    );

    let a = Arc::new(a);
    let b = Arc::new(b);
    // (hash, stored at) of memories not yet seen on B; lags of those seen.
    let pending: Arc<Mutex<Vec<(ContentHash, Instant)>>> = Arc::default();
    let lags: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let watcher = {
        let (b, pending, lags) = (b.clone(), pending.clone(), lags.clone());
        tokio::spawn(async move {
            loop {
                let waiting: Vec<(ContentHash, Instant)> = pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                if !waiting.is_empty() {
                    let hashes: Vec<ContentHash> = waiting.iter().map(|(h, _)| h.clone()).collect();
                    let found = b
                        .get_embeddings(&hashes)
                        .await
                        .unwrap_or_else(|e| panic!("reading device B: {e}"));
                    let now = Instant::now();
                    let seen: Vec<(ContentHash, Instant)> = waiting
                        .into_iter()
                        .zip(found)
                        .filter(|(_, v)| v.is_some())
                        .map(|(w, _)| w)
                        .collect();
                    if !seen.is_empty() {
                        let mut p = pending
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        let mut l = lags
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        for (hash, at) in seen {
                            p.retain(|(h, _)| *h != hash);
                            l.push(now.duration_since(at));
                        }
                    }
                }
                tokio::time::sleep(POLL).await;
            }
        })
    };

    let mut rng = StdRng::seed_from_u64(11);
    let tags = Tags::parse("lag-probe").unwrap_or_else(|e| panic!("tags: {e}"));
    cf.reset_counts();
    let began = Instant::now();
    let mut last_content = String::new();
    let mut last_hash = None;
    for i in 0..stores {
        let gap = mean_gap.mul_f64(rng.random_range(0.0..2.0));
        tokio::time::sleep(gap).await;
        let content = format!(
            "Sync lag probe {i}: the release of week {} moves to {}.",
            i % 52,
            ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"][i % 5]
        );
        let memory = Memory::new(content.clone())
            .unwrap_or_else(|e| panic!("memory: {e}"))
            .with_tags(tags.clone());
        let hash = memory.content_hash().clone();
        a.store(memory)
            .await
            .unwrap_or_else(|e| panic!("store on A: {e}"));
        let stored = Instant::now();
        pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((hash.clone(), stored));
        last_content = content;
        last_hash = Some(hash);
    }
    // Every memory on B (generously bounded), then one more interval for both devices'
    // next rounds (A's projection of the last stores).
    let deadline = Instant::now() + DEFAULT_SYNC_INTERVAL * 30;
    while !pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "memories still missing on device B"
        );
        tokio::time::sleep(POLL).await;
    }
    let all_seen = began.elapsed();
    tokio::time::sleep(DEFAULT_SYNC_INTERVAL * 2).await;
    let window = began.elapsed();
    let requests: BTreeMap<&str, u64> = ["d1", "vectorize", "r2"]
        .into_iter()
        .map(|s| (s, cf.requests(s)))
        .collect();
    let ai = cf.requests("ai");
    watcher.abort();

    // B's semantic search finds the last memory.
    let found = b
        .retrieve(&last_content, 1)
        .await
        .unwrap_or_else(|e| panic!("search on B: {e}"));
    assert_eq!(
        found.first().map(|r| r.memory.content_hash()),
        last_hash.as_ref(),
        "device B's semantic search ranks the last memory first"
    );

    let mut ms: Vec<f64> = lags
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    ms.sort_by(f64::total_cmp);
    let total: u64 = requests.values().sum();
    let per_memory = total as f64 / stores as f64;
    let (med, p95, min, max) = (median(&ms), quantile(&ms, 0.95), ms[0], ms[ms.len() - 1]);
    println!(
        "  lag A store → searchable on B over {} memories: median {med:.0} ms, p95 {p95:.0} ms \
         (min {min:.0} ms, max {max:.0} ms)",
        ms.len()
    );
    println!(
        "  Cloudflare requests in {:.0} s (every memory on B after {:.0} s): {requests:?}, \
         {total} in all = {per_memory:.2} per synced memory; Workers AI {ai}",
        window.as_secs_f64(),
        all_seen.as_secs_f64()
    );
    let out = json!({
        "stores": stores,
        "mean_gap_ms": mean_gap.as_millis() as u64,
        "sync_interval_ms": DEFAULT_SYNC_INTERVAL.as_millis() as u64,
        "latency_ms": LATENCY.as_millis() as u64,
        "lag_ms": {
            "samples": ms.len(),
            "median": med,
            "p95": p95,
            "min": min,
            "max": max,
        },
        "requests": {
            "window_seconds": window.as_secs_f64(),
            "by_service": requests,
            "total": total,
            "per_synced_memory": per_memory,
            "workers_ai": ai,
        },
    });
    if let Some(dir) = std::env::var_os(OUT_ENV) {
        let dir = std::path::PathBuf::from(dir);
        let path = dir.join("hybrid_sync.json");
        let text = serde_json::to_string_pretty(&out)
            .unwrap_or_else(|e| panic!("serialising the figures: {e}"));
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&path, text))
            .unwrap_or_else(|e| panic!("writing {} ({OUT_ENV}): {e}", path.display()));
        println!("figures written to {}", path.display());
    }
}
