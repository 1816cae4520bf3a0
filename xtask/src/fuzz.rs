//! `cargo xtask fuzz`: runs the cargo-fuzz targets of `fuzz/` one after the other.
//!
//! * cargo-fuzz is installed with `cargo install --locked cargo-fuzz` if `cargo fuzz` is
//!   missing (into `$CARGO_INSTALL_ROOT` when set, as CI sets it; its `bin/` is put on `PATH`);
//! * the targets are built and run with the nightly toolchain (`cargo +nightly fuzz run`),
//!   in their own target directory: `$MCP_MEMORY_FUZZ_TARGET_DIR`, else `fuzz/target`
//!   (sanitizer builds must not share the main target directory);
//! * each target runs for `--time` seconds over the committed seeds of `fuzz/corpus/<target>/`
//!   (read only) and a working corpus `<fuzz target dir>/corpus/<target>/` that grows from run
//!   to run; crash inputs go to `fuzz/artifacts/<target>/`;
//! * a summary lists each target's time, executions, corpus size and result; the task fails
//!   if any target crashed, naming the crash input and how to replay it.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Seconds libFuzzer waits on one input before calling it a hang (a finding, like a crash).
const INPUT_TIMEOUT_SECS: u64 = 30;

/// What one target's run produced.
struct Outcome {
    target: String,
    seconds: f64,
    execs: Option<u64>,
    execs_per_sec: Option<u64>,
    corpus: usize,
    new_units: Option<u64>,
    /// `None` when the run ended cleanly; else what went wrong.
    failure: Option<String>,
    /// The input that crashed it, if libFuzzer wrote one.
    artifact: Option<String>,
}

/// Runs `targets` (all of `fuzz/fuzz_targets/` when empty) for `time` seconds each.
pub fn run(root: &Path, time: u64, targets: &[String]) -> Result<()> {
    if time == 0 {
        bail!("--time must be at least 1 second per target");
    }
    let fuzz_dir = root.join("fuzz");
    let available = list_targets(&fuzz_dir)?;
    let targets: Vec<String> = if targets.is_empty() {
        available.clone()
    } else {
        for t in targets {
            if !available.contains(t) {
                bail!(
                    "unknown fuzz target {t:?}: the targets are {} (fuzz/fuzz_targets/*.rs)",
                    available.join(", ")
                );
            }
        }
        targets.to_vec()
    };
    let path = tool_path()?;
    ensure_cargo_fuzz(&path)?;
    let target_dir = std::env::var_os("MCP_MEMORY_FUZZ_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| fuzz_dir.join("target"), PathBuf::from);
    eprintln!(
        "==> fuzzing {} for {time} s each (build dir {})",
        targets.join(", "),
        target_dir.display()
    );

    let mut outcomes = Vec::new();
    for target in &targets {
        outcomes.push(run_target(&fuzz_dir, &target_dir, &path, target, time)?);
    }

    eprintln!("\n==> fuzz summary ({time} s per target)");
    eprintln!(
        "{:<12} {:>9} {:>12} {:>9} {:>8} {:>6}  result",
        "target", "seconds", "execs", "execs/s", "corpus", "new"
    );
    let show = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |n| n.to_string());
    for o in &outcomes {
        eprintln!(
            "{:<12} {:>9.0} {:>12} {:>9} {:>8} {:>6}  {}",
            o.target,
            o.seconds,
            show(o.execs),
            show(o.execs_per_sec),
            o.corpus,
            show(o.new_units),
            o.failure.as_deref().unwrap_or("ok, no crash")
        );
    }
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.failure.is_some()).collect();
    if failed.is_empty() {
        return Ok(());
    }
    for o in &failed {
        match &o.artifact {
            Some(a) => eprintln!(
                "==> {}: crash input {a}\n    replay: cargo +nightly fuzz run {} {a}\n    \
                 minimise: cargo +nightly fuzz tmin {} {a}",
                o.target, o.target, o.target
            ),
            None => eprintln!(
                "==> {}: no crash input was written; see the log above",
                o.target
            ),
        }
    }
    bail!(
        "{} fuzz target(s) failed: {}; fix the crash, add a regression test beside the code, \
         and run the target again",
        failed.len(),
        failed
            .iter()
            .map(|o| o.target.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The fuzz targets: the stems of `fuzz/fuzz_targets/*.rs`, sorted.
fn list_targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let dir = fuzz_dir.join("fuzz_targets");
    let mut targets = Vec::new();
    for entry in
        std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs")
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            targets.push(stem.to_owned());
        }
    }
    targets.sort();
    if targets.is_empty() {
        bail!("no fuzz targets in {}", dir.display());
    }
    Ok(targets)
}

/// `PATH` with `$CARGO_INSTALL_ROOT/bin` in front, so a cargo-fuzz installed there is found.
fn tool_path() -> Result<OsString> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(root) = std::env::var_os("CARGO_INSTALL_ROOT").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(root).join("bin"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).context("PATH holds a directory that cannot be joined back")
}

/// A `cargo +nightly` command: the rustup proxy, never `$CARGO` (the stable cargo that runs
/// xtask, which knows no `+toolchain`).
fn nightly_cargo(path: &OsString) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly")
        .env("PATH", path)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC");
    cmd
}

fn ensure_cargo_fuzz(path: &OsString) -> Result<()> {
    let nightly = nightly_cargo(path)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !nightly {
        bail!(
            "the nightly toolchain is missing (cargo-fuzz needs it for the sanitizers): \
             install it with `rustup toolchain install nightly`"
        );
    }
    let present = nightly_cargo(path)
        .args(["fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if present {
        return Ok(());
    }
    eprintln!("==> cargo install --locked cargo-fuzz");
    let status = Command::new("cargo")
        .args(["install", "--locked", "cargo-fuzz"])
        .env("PATH", path)
        .status()
        .context("could not start `cargo install cargo-fuzz`")?;
    if !status.success() {
        bail!("`cargo install --locked cargo-fuzz` failed ({status}); see its output above");
    }
    Ok(())
}

fn run_target(
    fuzz_dir: &Path,
    target_dir: &Path,
    path: &OsString,
    target: &str,
    time: u64,
) -> Result<Outcome> {
    let seeds = fuzz_dir.join("corpus").join(target);
    let work = target_dir.join("corpus").join(target);
    std::fs::create_dir_all(&work)
        .with_context(|| format!("cannot create the working corpus {}", work.display()))?;
    eprintln!("\n==> cargo +nightly fuzz run {target} (-max_total_time={time})");
    let mut cmd = nightly_cargo(path);
    cmd.current_dir(fuzz_dir.parent().unwrap_or(fuzz_dir))
        .env("CARGO_TARGET_DIR", target_dir)
        .args(["fuzz", "run", target])
        .arg(&work);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={time}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
        .arg("-print_final_stats=1")
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start `cargo fuzz run {target}`"))?;
    let mut stats = Stats::default();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            stats.read(&line);
            eprintln!("{line}");
        }
    }
    let status = child.wait().context("waiting for cargo fuzz")?;
    let corpus = std::fs::read_dir(&work).map_or(0, |d| d.count());
    let failure = if status.success() {
        None
    } else if stats.artifact.is_some() {
        Some(format!("CRASH ({status})"))
    } else {
        Some(format!(
            "failed ({status}); build error or libFuzzer error, see the log"
        ))
    };
    Ok(Outcome {
        target: target.to_owned(),
        seconds: started.elapsed().as_secs_f64(),
        execs: stats.execs,
        execs_per_sec: stats.execs_per_sec,
        corpus,
        new_units: stats.new_units,
        failure,
        artifact: stats.artifact,
    })
}

/// What the libFuzzer log says (`-print_final_stats=1` lines and the crash-input line).
#[derive(Default)]
struct Stats {
    execs: Option<u64>,
    execs_per_sec: Option<u64>,
    new_units: Option<u64>,
    artifact: Option<String>,
}

impl Stats {
    fn read(&mut self, line: &str) {
        let number = |prefix: &str| {
            line.strip_prefix(prefix)
                .and_then(|rest| rest.trim().parse::<u64>().ok())
        };
        if let Some(n) = number("stat::number_of_executed_units:") {
            self.execs = Some(n);
        } else if let Some(n) = number("stat::average_exec_per_sec:") {
            self.execs_per_sec = Some(n);
        } else if let Some(n) = number("stat::new_units_added:") {
            self.new_units = Some(n);
        } else if let Some((_, path)) = line.split_once("Test unit written to ") {
            self.artifact = Some(path.trim().to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_read_from_the_libfuzzer_log() {
        let mut stats = Stats::default();
        for line in [
            "#1024\tpulse  cov: 10 ft: 12 corp: 3/30b exec/s: 512 rss: 40Mb",
            "stat::number_of_executed_units: 123456",
            "stat::average_exec_per_sec:     2057",
            "stat::new_units_added:          17",
            "artifact_prefix='fuzz/artifacts/tags/'; Test unit written to fuzz/artifacts/tags/crash-abc",
        ] {
            stats.read(line);
        }
        assert_eq!(stats.execs, Some(123_456));
        assert_eq!(stats.execs_per_sec, Some(2057));
        assert_eq!(stats.new_units, Some(17));
        assert_eq!(
            stats.artifact.as_deref(),
            Some("fuzz/artifacts/tags/crash-abc")
        );
    }

    #[test]
    fn targets_are_the_sources_of_fuzz_targets() {
        let dir = std::env::temp_dir().join(format!("xtask-fuzz-list-{}", std::process::id()));
        let targets = dir.join("fuzz_targets");
        std::fs::create_dir_all(&targets).unwrap();
        for f in ["b.rs", "a.rs", "notes.txt"] {
            std::fs::write(targets.join(f), "").unwrap();
        }
        let listed = list_targets(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(listed.unwrap(), ["a", "b"]);
    }
}
