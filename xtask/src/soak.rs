//! `cargo xtask soak`: the fault matrix, the crash-recovery tests and the hybrid backend's
//! convergence under faults at soak sizes.
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
//! | `MCP_MEMORY_SOAK_SCALE` | `memory-server/tests/hybrid_convergence.rs` | size multiplier of the hybrid convergence test (rounds, operations, the killed backlog) |
//! | `MCP_MEMORY_SOAK_SEED` | same | its seed (printed; random when not given) |

use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Soak sizes.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Operations per matrix row and seed.
    pub ops: usize,
    /// Seeds per matrix row.
    pub seeds: usize,
    /// Memories of the crash-recovery import (a fifth, at least 300, for migrate).
    pub crash_n: usize,
    /// Size multiplier of the hybrid convergence test.
    pub scale: usize,
    /// Seed of the hybrid convergence test.
    pub seed: u64,
    /// Run only the test target of this name (e.g. `hybrid_convergence`).
    pub only: Option<String>,
}

/// One test target of the soak.
struct Target {
    package: &'static str,
    test: &'static str,
}

const TARGETS: [Target; 3] = [
    Target {
        package: "memory-cloudflare",
        test: "fault_matrix",
    },
    Target {
        package: "memory-server",
        test: "crash_recovery",
    },
    Target {
        package: "memory-server",
        test: "hybrid_convergence",
    },
];

/// A seed from the clock, for a run not given one (printed, so it can be replayed).
#[must_use]
pub fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Fold the 128 bits, and mix in the process id so two runs in one tick differ.
    (nanos as u64) ^ ((nanos >> 64) as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

/// Runs the soak and prints its summary.
///
/// # Errors
///
/// When a test fails or cannot be started.
pub fn run(sizes: Sizes, nextest: bool) -> Result<()> {
    eprintln!(
        "==> soak: {} ops x {} seed(s) per fault-matrix row, {} memories for crash recovery, \
         hybrid convergence at scale {} with seed {} (replay: MCP_MEMORY_SOAK_SEED={})",
        sizes.ops, sizes.seeds, sizes.crash_n, sizes.scale, sizes.seed, sizes.seed
    );
    let started = Instant::now();
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for target in TARGETS
        .iter()
        .filter(|t| sizes.only.as_deref().is_none_or(|o| o == t.test))
    {
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
            .env("MCP_MEMORY_SOAK_SCALE", sizes.scale.to_string())
            .env("MCP_MEMORY_SOAK_SEED", sizes.seed.to_string())
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
                || line.starts_with("[convergence]")
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
