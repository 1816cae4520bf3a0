//! `cargo xtask fetch-python`: the Python "MCP Memory Service" (PyPI `mcp-memory-service`)
//! whose `CloudflareStorage` the compatibility test drives against the emulator
//! (`crates/memory-cloudflare/tests/python_compat.rs`).
//!
//! A virtual environment in the per-user tool cache, `<cache dir>/mcp-memory/tools/python-compat/`
//! (`MCP_MEMORY_COMPAT_VENV` instead, when set), gets exactly the packages pinned in
//! `crates/memory-cloudflare/tests/python/requirements.txt`: `pip install --no-deps` of the
//! list, then `pip check` (so a missing pin fails here, instead of pip quietly choosing a
//! version), then an import of `CloudflareStorage`. A copy of the list, written last, marks
//! the environment complete; when the list changes, the environment is made anew.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The pinned list, relative to the workspace root.
const REQUIREMENTS: &str = "crates/memory-cloudflare/tests/python/requirements.txt";
/// Environment variable naming the virtual environment's directory.
const VENV_ENV: &str = "MCP_MEMORY_COMPAT_VENV";
/// The copy of the installed list inside the environment (the test compares it too).
const STAMP: &str = "mcp-memory-compat-requirements.txt";

/// Where the environment goes: `MCP_MEMORY_COMPAT_VENV`, else the per-user tool cache.
fn venv_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(VENV_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let cache = dirs::cache_dir().context(
        "no per-user cache directory on this system; set MCP_MEMORY_COMPAT_VENV to a directory",
    )?;
    Ok(cache.join("mcp-memory").join("tools").join("python-compat"))
}

/// The environment's interpreter.
fn python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// Ensures the environment holds the pinned packages; returns its interpreter.
pub fn fetch(force: bool) -> Result<PathBuf> {
    let wanted =
        std::fs::read_to_string(REQUIREMENTS).with_context(|| format!("reading {REQUIREMENTS}"))?;
    let venv = venv_dir()?;
    let python = python(&venv);
    let stamp = venv.join(STAMP);
    let installed = std::fs::read_to_string(&stamp).ok();
    if !force && python.is_file() && installed.as_deref() == Some(wanted.as_str()) {
        eprintln!(
            "==> python compat environment present in {}",
            venv.display()
        );
        return Ok(python);
    }
    eprintln!(
        "==> creating the python compat environment ({REQUIREMENTS}) in {}",
        venv.display()
    );
    if venv.exists() {
        std::fs::remove_dir_all(&venv)
            .with_context(|| format!("removing the old environment {}", venv.display()))?;
    }
    if let Some(parent) = venv.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv (Python 3.10+ with its venv module is needed: apt-get install python3-venv)",
    )?;
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--requirement",
            ])
            .arg(REQUIREMENTS),
        "pip install of the pinned list (is the package registry reachable?)",
    )?;
    run(
        Command::new(&python).args(["-m", "pip", "check", "--disable-pip-version-check"]),
        "pip check: a dependency is missing from the pinned list",
    )?;
    run(
        Command::new(&python).args([
            "-c",
            "from mcp_memory_service.storage.cloudflare import CloudflareStorage",
        ]),
        "importing CloudflareStorage from the installed package",
    )?;
    std::fs::write(&stamp, &wanted).with_context(|| format!("writing {}", stamp.display()))?;
    eprintln!("==> python compat environment ready: {}", python.display());
    Ok(python)
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("could not start {cmd:?}: {what}"))?;
    if !status.success() {
        bail!("{what}: {cmd:?} exited with {status}");
    }
    Ok(())
}
