//! Embedding throughput of the local all-MiniLM-L6-v2 (384 dimensions, candle on CPU): one
//! text, and a batch of 32 texts (the embedder's default batch size, so one forward pass).
//! Run with `cargo bench --bench embedding` (needs the model: `cargo xtask fetch-model`).
//!
//! * No cache: `BertEmbedder` itself, so every iteration runs the model.
//! * Texts are memory-sized sentences (15–25 words); each iteration embeds different texts
//!   (a counter in the text), although without a cache that does not matter.
//! * Throughput is reported in texts per second.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use memory_embed::{BertEmbedder, DEFAULT_BATCH_SIZE, DEFAULT_MODEL_ID};

/// Sentence templates of typical memory length.
const TEMPLATES: [&str; 4] = [
    "The staging database is rebuilt every night at two, so migrations must be idempotent (note {k}).",
    "Alice prefers short status updates on Fridays and wants the release notes reviewed before tagging {k}.",
    "Remember that the billing service retries failed webhooks three times with exponential backoff, case {k}.",
    "Our on-call rotation changes every Monday morning; escalations go to the platform channel first ({k}).",
];

fn text(k: u64) -> String {
    TEMPLATES[(k % TEMPLATES.len() as u64) as usize].replace("{k}", &k.to_string())
}

fn bench(c: &mut Criterion) {
    let model = BertEmbedder::open(DEFAULT_MODEL_ID).expect(
        "the all-MiniLM-L6-v2 model files: run `cargo xtask fetch-model` or set MCP_MEMORY_MODEL_DIR",
    );
    let counter = AtomicU64::new(0);
    let mut group = c.benchmark_group("embedding");
    for batch in [1usize, DEFAULT_BATCH_SIZE] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(
            BenchmarkId::new("minilm_l6_v2", format!("batch_{batch}")),
            |b| {
                b.iter_batched(
                    || {
                        (0..batch)
                            .map(|_| text(counter.fetch_add(1, Ordering::Relaxed)))
                            .collect::<Vec<String>>()
                    },
                    |texts| black_box(model.embed_blocking(&texts).expect("embed")),
                    criterion::BatchSize::SmallInput,
                )
            },
        );
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
