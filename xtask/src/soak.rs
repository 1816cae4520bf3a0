//! `cargo xtask soak`: the fault matrix and the crash-recovery tests at soak sizes.
//!
//! CI runs both test files at small sizes; this task raises the sizes through environment
//! variables the tests read, runs them with nextest (or `cargo test`), and prints a summary:
//! the per-row figures the matrix prints (`[fault-matrix] ...`), the kill points of the
//! crash-recovery tests (`[crash-recovery] ...`), the outcome and the wall time. Opt-in:
//! never part of `cargo xtask ci`.
//!
//! | variable | read by | meaning |
//! |---|---|---|
//! | `MCP_MEMORY_SOAK_OPS` | `memory-cloudflare/tests/fault_matrix.rs` | operations per matrix row and seed |
//! | `MCP_MEMORY_SOAK_SEEDS` | same | seeds 1..=K per row, a fresh emulator each |
//! | `MCP_MEMORY_SOAK_CRASH_N` | `memory-server/tests/crash_recovery.rs` | memories imported (a fifth, at least 300, migrated) |

use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Soak sizes.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Operations per matrix row and seed.
    pub ops: usize,
    /// Seeds per matrix row.
    pub seeds: usize,
    /// Memories of the crash-recovery import (a fifth, at least 300, for migrate).
    pub crash_n: usize,
}

/// One test target of the soak.
struct Target {
    package: &'static str,
    test: &'static str,
}

const TARGETS: [Target; 2] = [
    Target {
        package: "memory-cloudflare",
        test: "fault_matrix",
    },
    Target {
        package: "memory-server",
        test: "crash_recovery",
    },
];

/// Runs the soak and prints its summary.
///
/// # Errors
///
/// When a test fails or cannot be started.
pub fn run(sizes: Sizes, nextest: bool) -> Result<()> {
    eprintln!(
        "==> soak: {} ops x {} seed(s) per fault-matrix row, {} memories for crash recovery",
        sizes.ops, sizes.seeds, sizes.crash_n
    );
    let started = Instant::now();
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for target in &TARGETS {
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        if nextest {
            cmd.args(["nextest", "run", "--no-fail-fast", "--no-capture"]);
        } else {
            cmd.args(["test", "--no-fail-fast"]);
        }
        cmd.args(["-p", target.package, "--test", target.test]);
        if !nextest {
            cmd.args(["--", "--nocapture", "--test-threads", "1"]);
        }
        cmd.env("MCP_MEMORY_SOAK_OPS", sizes.ops.to_string())
            .env("MCP_MEMORY_SOAK_SEEDS", sizes.seeds.to_string())
            .env("MCP_MEMORY_SOAK_CRASH_N", sizes.crash_n.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        eprintln!("==> {} --test {}", target.package, target.test);
        let t = Instant::now();
        let output = cmd
            .output()
            .with_context(|| format!("could not start {cmd:?}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with("[fault-matrix]")
                || line.starts_with("[crash-recovery]")
                || line.starts_with("PASS")
                || line.starts_with("FAIL")
                || line.starts_with("test ")
                || line.contains("panicked")
            {
                lines.push(line.to_owned());
            }
        }
        let secs = t.elapsed().as_secs_f64();
        if output.status.success() {
            lines.push(format!(
                "ok: {} --test {} in {secs:.1}s",
                target.package, target.test
            ));
        } else {
            eprintln!("{text}");
            failures.push(format!(
                "{} --test {} ({})",
                target.package, target.test, output.status
            ));
        }
    }
    println!("\n==> soak summary");
    for line in &lines {
        println!("{line}");
    }
    println!(
        "total: {:.1}s, {} target(s) failed",
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    if !failures.is_empty() {
        bail!("soak failed: {}", failures.join(", "));
    }
    Ok(())
}
