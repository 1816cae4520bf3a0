//! Embedding speed of the local all-MiniLM-L6-v2 (384 dimensions, CPU) on each engine,
//! side by side in one run: candle (pure Rust) and ONNX Runtime (the same encoder built
//! from the same weights; `memory_embed::onnx`). Run with `cargo bench --bench embedding`
//! (needs the model and ONNX Runtime: `cargo xtask fetch-model`; without ONNX Runtime only
//! candle is measured, and the run says so).
//!
//! Ids are `embedding/<case>/<engine>`:
//! * `query_8_words`: one 8-word query (a search);
//! * `text_64_words`: one 64-word memory (a store);
//! * `text_256_tokens`: one text at the model's 256-token window;
//! * `batch_32_short`: 32 sentences of 15–25 words, one call (an import's batch);
//! * `batch_32_long`: 32 texts at the token window, one call;
//! * `load`: loading the model from its files (page cache warm). ONNX Runtime loads the
//!   session it cached on the first load, as every start after the first does; run with
//!   `MCP_MEMORY_ONNX_SESSION_CACHE=off` to measure building it each time.
//!
//! No cache: `BertEmbedder` itself, so every iteration runs the model. Throughput is in
//! texts per second. Load time and resident memory per engine in separate processes:
//! `cargo run --release -p memory-embed --features onnx --example latency -- --engine E`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use memory_embed::{BertEmbedder, DEFAULT_MODEL_ID, Engine, EngineChoice, ModelLocation};

/// Sentence templates of typical memory length (15–25 words).
const TEMPLATES: [&str; 4] = [
    "The staging database is rebuilt every night at two, so migrations must be idempotent (note {k}).",
    "Alice prefers short status updates on Fridays and wants the release notes reviewed before tagging {k}.",
    "Remember that the billing service retries failed webhooks three times with exponential backoff, case {k}.",
    "Our on-call rotation changes every Monday morning; escalations go to the platform channel first ({k}).",
];

fn sentence(k: u64) -> String {
    TEMPLATES[(k % TEMPLATES.len() as u64) as usize].replace("{k}", &k.to_string())
}

/// `words` words of running prose, varied by `k`.
fn words(k: u64, words: usize) -> String {
    let mut out = Vec::with_capacity(words);
    let mut i = 0;
    while out.len() < words {
        out.extend(sentence(k + i).split_whitespace().map(str::to_owned));
        i += 1;
    }
    out.truncate(words);
    out.join(" ")
}

/// A case: its id, texts per call, and the maker of text `k`.
type Case = (&'static str, usize, fn(u64) -> String);

/// The cases.
fn cases() -> [Case; 5] {
    [
        ("query_8_words", 1, |k| words(k, 8)),
        ("text_64_words", 1, |k| words(k, 64)),
        // 300 words are well over 256 WordPiece tokens: the text fills the window.
        ("text_256_tokens", 1, |k| words(k, 300)),
        ("batch_32_short", 32, sentence),
        ("batch_32_long", 32, |k| words(k, 300)),
    ]
}

fn bench(c: &mut Criterion) {
    let dir = ModelLocation::resolve(DEFAULT_MODEL_ID)
        .expect("the all-MiniLM-L6-v2 model files: run `cargo xtask fetch-model` or set MCP_MEMORY_MODEL_DIR")
        .dir;
    let load = |engine: Engine| {
        BertEmbedder::load_with(&dir, DEFAULT_MODEL_ID, None, EngineChoice::Only(engine))
    };
    let mut engines = vec![(Engine::Candle, load(Engine::Candle).expect("candle"))];
    match load(Engine::Onnx) {
        Ok(model) => engines.push((Engine::Onnx, model)),
        Err(e) => eprintln!("embedding bench: ONNX Runtime not measured: {e}"),
    }
    let counter = AtomicU64::new(0);
    let mut group = c.benchmark_group("embedding");
    for (case, batch, make) in cases() {
        group.throughput(Throughput::Elements(batch as u64));
        for (engine, model) in &engines {
            group.bench_function(BenchmarkId::new(case, engine.name()), |b| {
                b.iter_batched(
                    || {
                        (0..batch)
                            .map(|_| make(counter.fetch_add(1, Ordering::Relaxed)))
                            .collect::<Vec<String>>()
                    },
                    |texts| black_box(model.embed_blocking(&texts).expect("embed")),
                    criterion::BatchSize::SmallInput,
                )
            });
        }
    }
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    for (engine, _) in &engines {
        group.bench_function(BenchmarkId::new("load", engine.name()), |b| {
            b.iter(|| black_box(load(*engine).expect("load")));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Defaults for a plain `cargo bench`; command-line options override them.
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
