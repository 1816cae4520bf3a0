//! `mcp-memory eval FILE`: retrieval quality on a benchmark, measured on a fresh temporary
//! store of the embedded default with the configured embedding model (never on the user's
//! memories, which would compete for the top ranks). See `memory_eval` and docs/QUALITY.md.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use memory_eval::{Dataset, evaluate};
use memory_sqlite::SqliteConfig;
use serde_json::json;

use crate::backend;
use crate::config::Config;
use crate::output::Output;

/// `eval` arguments.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The benchmark, in the DevBench format ({"memories": [...], "queries": [...]}).
    pub file: PathBuf,
}

/// Loads the benchmark into a fresh temporary store and prints its scores (a Markdown
/// table, or the report as JSON with `--json`).
///
/// # Errors
///
/// The benchmark file's problem, the model's, or the store's.
pub async fn run(config: &Config, args: EvalArgs, out: &Output) -> Result<()> {
    let data = Dataset::load(&args.file)?;
    let dir = tempfile::tempdir().context("a temporary directory for the evaluation store")?;
    let store = SqliteConfig::new(dir.path().join("eval.db"))
        .open(backend::local_embedder(config)?)
        .await
        .context("opening the evaluation store")?;
    let report = evaluate(&store, &data).await?;
    if out.is_json() {
        out.json(json!({
            "benchmark": args.file.display().to_string(),
            "backend": "sqlite",
            "mode": "semantic",
            "model": config.embedding_model,
            "report": report,
        }));
    } else {
        println!(
            "{}: {} memories, {} queries; semantic search on a fresh embedded store, model {}\n",
            args.file.display(),
            report.memories,
            report.queries,
            config.embedding_model
        );
        print!("{}", report.to_markdown());
    }
    Ok(())
}
