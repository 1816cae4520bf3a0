//! The DevBench baseline on the embedded default: a fresh SQLite store with the local
//! all-MiniLM-L6-v2, semantic search, the figures as a Markdown table.
//!
//! ```text
//! cargo run --release -p memory-eval --example devbench -- [FILE]
//! ```
//!
//! FILE defaults to `../shared/eval/devbench.json` beside the checkout. Needs the model
//! (`cargo xtask fetch-model`).

use std::path::PathBuf;
use std::sync::Arc;

use memory_embed::{BertEmbedder, DEFAULT_MODEL_ID, ModelLocation};
use memory_eval::{Dataset, evaluate};
use memory_sqlite::SqliteConfig;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = std::env::args().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/eval/devbench.json"),
        PathBuf::from,
    );
    let data = Dataset::load(&file)?;
    let dir = ModelLocation::resolve(DEFAULT_MODEL_ID)?.dir;
    let model = Arc::new(BertEmbedder::load(&dir, DEFAULT_MODEL_ID)?);
    let tmp = tempfile::tempdir()?;
    let store = SqliteConfig::new(tmp.path().join("eval.db"))
        .open(model)
        .await?;
    let report = evaluate(&store, &data).await?;
    println!(
        "{} memories, {} queries, semantic search (embedded default, {DEFAULT_MODEL_ID})\n",
        report.memories, report.queries
    );
    print!("{}", report.to_markdown());
    Ok(())
}
