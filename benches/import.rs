//! A 10,000-memory import with no carried vectors, on each embedding engine: the time
//! `mcp-memory import` spends storing (batches of 100, its default, through `store_batch`
//! of the embedded default, every text embedded by the local all-MiniLM-L6-v2), before
//! (candle) and after (ONNX Runtime) the engine change.
//!
//! Not a criterion bench (one measurement of tens of seconds per engine): it prints a
//! summary and, when `MCP_MEMORY_BENCH_OUT` names a directory, writes `import.json` there,
//! which `cargo xtask bench` reads. Run with `cargo bench --bench import` (needs the model
//! and ONNX Runtime: `cargo xtask fetch-model`); `BENCH_IMPORT_MEMORIES` changes the count.

use std::sync::Arc;
use std::time::Instant;

use memory_core::{Memory, Tags};
use memory_embed::{BertEmbedder, DEFAULT_MODEL_ID, Engine, EngineChoice, ModelLocation};
use memory_sqlite::SqliteConfig;
use memory_storage::MemoryStorage;
use serde_json::json;

/// Memories stored per `store_batch`, as `mcp-memory import` does by default.
const BATCH: usize = 100;

/// Memory `i`: a 15–40 word note, different for every `i`.
fn memory(i: usize) -> Memory {
    let topics = [
        "the staging database migration",
        "Alice's preferences for status updates",
        "the billing service webhook retries",
        "the on-call rotation and escalations",
        "the quarterly planning meeting",
        "the search latency objective",
    ];
    let text = format!(
        "Note {i} about {}: decided on day {} to revisit it after release {}.{} with the \
         team, keeping the previous behaviour behind a flag until the metrics confirm it.",
        topics[i % topics.len()],
        i % 365,
        i / 100,
        i % 10
    );
    Memory::new(text)
        .unwrap_or_else(|e| panic!("memory {i}: {e}"))
        .with_tags(Tags::parse(format!("topic{}", i % 20)).unwrap_or_else(|e| panic!("tags: {e}")))
}

fn main() {
    let count: usize = std::env::var("BENCH_IMPORT_MEMORIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = ModelLocation::resolve(DEFAULT_MODEL_ID)
        .unwrap_or_else(|e| panic!("the model: run `cargo xtask fetch-model` ({e})"))
        .dir;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a Tokio runtime: {e}"));
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"));
    let mut results = serde_json::Map::new();
    for engine in [Engine::Candle, Engine::Onnx] {
        let model =
            match BertEmbedder::load_with(&dir, DEFAULT_MODEL_ID, None, EngineChoice::Only(engine))
            {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("import bench: {} not measured: {e}", engine.name());
                    continue;
                }
            };
        let seconds = runtime.block_on(async {
            let store = SqliteConfig::new(tmp.path().join(format!("{}.db", engine.name())))
                .open(Arc::new(model))
                .await
                .unwrap_or_else(|e| panic!("opening the store: {e}"));
            let started = Instant::now();
            let mut i = 0;
            while i < count {
                let batch: Vec<Memory> = (i..(i + BATCH).min(count)).map(memory).collect();
                i += batch.len();
                for outcome in store
                    .store_batch(batch)
                    .await
                    .unwrap_or_else(|e| panic!("store_batch: {e}"))
                {
                    outcome.unwrap_or_else(|e| panic!("a memory: {e}"));
                }
            }
            started.elapsed().as_secs_f64()
        });
        println!(
            "import of {count} memories (batches of {BATCH}, embedded) on {}: {seconds:.1} s, \
             {:.0} memories/s",
            engine.name(),
            count as f64 / seconds
        );
        results.insert(
            engine.name().to_owned(),
            json!({"seconds": seconds, "per_second": count as f64 / seconds}),
        );
    }
    let out = json!({"memories": count, "batch": BATCH, "engines": results});
    if let Some(dir) = std::env::var_os("MCP_MEMORY_BENCH_OUT") {
        let path = std::path::PathBuf::from(dir).join("import.json");
        std::fs::write(&path, out.to_string())
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        println!("written to {}", path.display());
    }
}
