//! `cargo xtask eval`: retrieval quality on the development set (DevBench, beside the
//! checkout in `../shared/eval/devbench.json`), measured by `mcp-memory eval` on a fresh
//! embedded store, written into docs/QUALITY.md between its `devbench` markers.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::bench::command_line;
use crate::{cargo, model};

/// Where the generated block starts and ends in docs/QUALITY.md.
const BEGIN: &str = "<!-- devbench:begin (cargo xtask eval writes this block) -->";
const END: &str = "<!-- devbench:end -->";

/// Runs the evaluation and rewrites the DevBench block of docs/QUALITY.md.
pub fn run(root: &Path) -> Result<()> {
    model::fetch(false)?;
    let bench = root.join("../shared/eval/devbench.json");
    if !bench.is_file() {
        bail!(
            "{} not found: the development set lives beside the checkout, in ../shared/eval/",
            bench.display()
        );
    }
    eprintln!("==> mcp-memory eval {}", bench.display());
    let output = cargo()
        .args([
            "run",
            "--release",
            "-q",
            "-p",
            "memory-server",
            "--bin",
            "mcp-memory",
            "--",
            "eval",
        ])
        .arg(&bench)
        // The figures are the default model's, whatever the user configured.
        .env(
            "MCP_MEMORY_EMBEDDING_MODEL",
            "sentence-transformers/all-MiniLM-L6-v2",
        )
        .env_remove("MCP_MEMORY_MODEL_DIR")
        .output()
        .context("running mcp-memory eval")?;
    if !output.status.success() {
        bail!(
            "mcp-memory eval failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let table: String = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| format!("{l}\n"))
        .collect();
    print!("{table}");
    let commit = command_line("git", &["rev-parse", "--short=12", "HEAD"]);
    let block = format!(
        "{BEGIN}\nCommit `{commit}`, `cargo xtask eval` (which runs `mcp-memory eval \
         ../shared/eval/devbench.json`):\n\n{table}{END}"
    );
    let path = root.join("docs/QUALITY.md");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let (Some(start), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        bail!("{} lacks the markers {BEGIN} … {END}", path.display());
    };
    let updated = format!("{}{block}{}", &text[..start], &text[end + END.len()..]);
    std::fs::write(&path, updated).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("==> {} updated", path.display());
    Ok(())
}
