//! Prism, the OpenAPI mock and validating proxy the Cloudflare clients' conformance tests
//! run (as Cloudflare's own SDKs do), installed from npm into the per-user tool cache that
//! `cloudflare-testkit` searches: `<cache dir>/mcp-memory/tools/prism/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The Prism release the tests are written against.
pub const PACKAGE: &str = "@stoplight/prism-cli@5.16.0";

/// The install prefix.
fn prefix() -> Result<PathBuf> {
    let cache = dirs::cache_dir().context(
        "no per-user cache directory on this system; install Prism yourself and set PRISM_BIN",
    )?;
    Ok(cache.join("mcp-memory").join("tools").join("prism"))
}

fn binary(prefix: &Path) -> PathBuf {
    prefix.join("node_modules").join(".bin").join("prism")
}

fn version_ok(bin: &Path) -> bool {
    Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "5.16.0")
        .unwrap_or(false)
}

/// Installs Prism unless `PRISM_BIN` is set or the right version is already there;
/// returns the executable.
pub fn fetch(force: bool) -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("PRISM_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            bail!("PRISM_BIN={} is not a file", bin.display());
        }
        return Ok(bin);
    }
    let prefix = prefix()?;
    let bin = binary(&prefix);
    if !force && version_ok(&bin) {
        return Ok(bin);
    }
    std::fs::create_dir_all(&prefix)
        .with_context(|| format!("could not create {}", prefix.display()))?;
    eprintln!("==> npm install {PACKAGE} into {}", prefix.display());
    let status = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"])
        .arg(&prefix)
        .arg(PACKAGE)
        .status()
        .context("could not run npm: install Node.js 18+ with npm, or install Prism yourself and set PRISM_BIN")?;
    if !status.success() {
        bail!("npm install {PACKAGE} failed ({status}); see npm's message above");
    }
    if !version_ok(&bin) {
        bail!(
            "{} does not answer `--version` with 5.16.0 after installing",
            bin.display()
        );
    }
    Ok(bin)
}
