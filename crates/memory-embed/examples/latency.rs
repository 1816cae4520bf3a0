//! Measures [`BertEmbedder`] latency and resident memory on this machine, on one engine.
//!
//! ```text
//! cargo run --release -p memory-embed --features onnx --example latency -- [--engine auto|onnx|candle] [model-id]
//! ```
//!
//! Prints the engine, the load time and the resident memory after it (Linux: `VmRSS`, peak
//! `VmHWM`, and `Pss`), one short sentence (median of 20), a batch of 32 sentences per text (median of
//! 5), texts of 8 to 250 words, one at the token limit, a 1 MB note, and the resident
//! memory at the end. One engine per process, so each one's memory is its own; the
//! criterion bench `embedding` compares their speed in one run. Needs the model locally
//! (`cargo xtask fetch-model`, which also installs ONNX Runtime).

use std::time::{Duration, Instant};

use memory_embed::{BertEmbedder, DEFAULT_MODEL_ID, EmbedError, EngineChoice, ModelLocation};

/// Runs of the single-sentence measurement.
const SINGLE_RUNS: usize = 20;
/// Runs of the batch measurement.
const BATCH_RUNS: usize = 5;

/// 32 different sentences of everyday length (8–20 words).
fn sentences() -> Vec<String> {
    [
        "The cat sits on the mat.",
        "A kitten is resting on a rug.",
        "Quarterly revenue grew by twelve percent.",
        "Remember to renew the TLS certificate before the end of the month.",
        "The deployment failed because the database migration timed out.",
        "Alice prefers tea over coffee in the afternoon.",
        "Our team decided to move the weekly sync to Thursday mornings.",
        "The API returns a 429 status when the rate limit is exceeded.",
        "Bob's birthday is on the fourteenth of March.",
        "Use the staging cluster for load tests, never production.",
        "The new onboarding flow reduced drop-off by a third.",
        "Rust's borrow checker prevents data races at compile time.",
        "The meeting notes are stored in the shared drive under Q3.",
        "Switch the embeddings model only after re-indexing all memories.",
        "The conference talk covered vector search and hybrid ranking.",
        "Paris is the capital of France and its largest city.",
        "Water boils at one hundred degrees Celsius at sea level.",
        "The customer asked for an invoice in euros instead of dollars.",
        "Backups run nightly at two in the morning and are kept for thirty days.",
        "The design review flagged the missing error states in the form.",
        "Latency spikes correlate with garbage collection pauses.",
        "She finished the marathon in just under four hours.",
        "The library closes early on public holidays.",
        "Please summarise the incident report in three bullet points.",
        "The recommendation model overfits on last week's data.",
        "Tomatoes grow best with plenty of sun and regular watering.",
        "The contract renewal is due at the end of the fiscal year.",
        "Our SLO for search latency is two hundred milliseconds at p99.",
        "He keeps his passwords in an encrypted password manager.",
        "The roadmap prioritises offline support for mobile clients.",
        "An index on the created_at column made the query ten times faster.",
        "The train to Berlin leaves from platform seven at noon.",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `VmRSS` and `VmHWM` of this process, and its proportional set size (Linux), for
/// printing. RSS counts a file mapped twice twice (ONNX Runtime's batch workers map the
/// same cached weights as the main session); PSS counts each page once.
fn memory() -> String {
    let read = |file: &str| std::fs::read_to_string(file).unwrap_or_default();
    let (status, rollup) = (read("/proc/self/status"), read("/proc/self/smaps_rollup"));
    let field = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map_or("?".to_owned(), |v| v.trim().to_owned())
    };
    format!(
        "RSS {}, peak {}, PSS {}",
        field(&status, "VmRSS:"),
        field(&status, "VmHWM:"),
        field(&rollup, "Pss:")
    )
}

fn main() -> Result<(), EmbedError> {
    let mut engine = EngineChoice::from_env()?;
    let mut model_id = DEFAULT_MODEL_ID.to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--engine" {
            engine = EngineChoice::parse(&args.next().unwrap_or_default())?;
        } else {
            model_id = arg;
        }
    }

    let dir = ModelLocation::resolve(&model_id)?.dir;
    let started = Instant::now();
    let embedder = BertEmbedder::load_with(&dir, &model_id, None, engine)?;
    let load = started.elapsed();
    println!("model       {model_id} from {}", embedder.dir().display());
    println!("engine      {}", embedder.engine().name());
    println!("load        {:8.1} ms ({})", ms(load), memory());

    let batch = sentences();
    embedder.embed_blocking(&batch)?; // warm up

    let one = vec![batch[0].clone()];
    let singles = (0..SINGLE_RUNS)
        .map(|_| {
            let t = Instant::now();
            embedder.embed_blocking(&one).map(|_| t.elapsed())
        })
        .collect::<Result<Vec<_>, _>>()?;
    println!(
        "1 text      {:8.1} ms (median of {SINGLE_RUNS})",
        ms(median(singles))
    );

    let batches = (0..BATCH_RUNS)
        .map(|_| {
            let t = Instant::now();
            embedder.embed_blocking(&batch).map(|_| t.elapsed())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let per_batch = median(batches);
    println!(
        "32 texts    {:8.1} ms per batch, {:.1} ms per text (median of {BATCH_RUNS})",
        ms(per_batch),
        ms(per_batch) / batch.len() as f64
    );

    for words in [8, 32, 64, 128, 250] {
        let text = vec!["alpha ".repeat(words)];
        let t = Instant::now();
        embedder.embed_blocking(&text)?;
        println!("{words:3} words   {:8.1} ms", ms(t.elapsed()));
    }

    let limit = vec!["alpha beta gamma delta ".repeat(80)]; // > 256 tokens
    let t = Instant::now();
    embedder.embed_blocking(&limit)?;
    println!(
        "1 text at the token limit ({} tokens) {:8.1} ms",
        embedder.max_tokens(),
        ms(t.elapsed())
    );

    let note = vec!["Notes about the quarterly planning meeting. ".repeat(24_000)];
    let t = Instant::now();
    embedder.embed_blocking(&note)?;
    println!(
        "1 MB note   {:8.1} ms ({} bytes)",
        ms(t.elapsed()),
        note[0].len()
    );
    // Batch size sweep: 128 sentences embedded in calls of `size` texts each (sorted and
    // padded per call as the embedder does), to choose the bulk paths' batch size.
    let many: Vec<String> = (0..128)
        .map(|i| format!("{} (item {i})", batch[i % batch.len()]))
        .collect();
    for size in [1usize, 4, 8, 16, 32, 64, 128] {
        let sized = embedder.clone().with_batch_size(size);
        let runs = (0..3)
            .map(|_| {
                let t = Instant::now();
                sized.embed_blocking(&many).map(|_| t.elapsed())
            })
            .collect::<Result<Vec<_>, _>>()?;
        println!(
            "batch {size:3}   {:8.2} ms per text (128 sentences, median of 3)",
            ms(median(runs)) / many.len() as f64
        );
    }
    println!("memory at the end: {}", memory());
    Ok(())
}
