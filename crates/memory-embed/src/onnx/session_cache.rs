//! Built sessions kept on disk, so that a process after the first skips building the graph
//! and prepacking its weights (two thirds of a load: on MiniLM, 40 ms copying the weights
//! into the graph and 30 ms of ONNX Runtime rearranging them for its matrix kernels).
//!
//! The first load builds the graph as always and asks ONNX Runtime to also write the
//! session it made: the optimised model (`model.onnx`) with every initializer, prepacked
//! ones included, in one external file (`model.data`), which a later load maps instead of
//! copying (`session.save_external_prepacked_constant_initializers`). ONNX Runtime writes
//! them into a fresh directory, renamed into place only once complete, so a reader never
//! sees half an entry and two processes building at once just keep the first.
//!
//! An entry is named by a hash of everything its bytes depend on: the weights file and the
//! ONNX Runtime library (path, size, modification time), the graph this build writes
//! ([`GRAPH_VERSION`], the opset, the model's dimensions) and the CPU's vector extensions
//! (prepacked layouts are specific to the kernels the CPU selects). Changing any of them
//! makes a new entry; the entry for the same weights it replaces is removed.
//!
//! Nothing read from the cache is trusted blindly: the entry holds the encoder's output
//! for a fixed probe input, computed by the session that wrote it, and a loaded session
//! must reproduce it, or the entry is removed and the graph built again. The cache is an
//! optimisation only: any failure to read or write it is logged and the load goes on.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

/// Bumped whenever `build_graph` changes what it builds, so that no session cached by an
/// older build is ever loaded.
pub(super) const GRAPH_VERSION: u32 = 1;

/// The model file ONNX Runtime writes in an entry.
pub(super) const MODEL_FILE: &str = "model.onnx";
/// The external-initializer file it writes beside it (a name relative to the model).
pub(super) const DATA_FILE: &str = "model.data";
/// The probe output the writing session computed (little-endian `f32`).
const PROBE_FILE: &str = "probe.f32";
/// The weights file the entry was built from (for replacing a stale entry of it).
const SOURCE_FILE: &str = "source.txt";

/// Token ids of the probe input: `[CLS] the memory service [SEP]` in BERT's uncased
/// vocabulary; any ids inside the vocabulary would do.
pub(super) const PROBE_IDS: [u32; 5] = [101, 1996, 3638, 2326, 102];

/// Largest difference allowed between a loaded session's probe output and the stored one.
/// The same graph and weights on the same kernels give the same numbers; this only leaves
/// room for summation order.
const PROBE_TOLERANCE: f32 = 1e-4;

/// The variable that moves the session cache (a directory) or turns it off (`off`).
pub const CACHE_ENV: &str = "MCP_MEMORY_ONNX_SESSION_CACHE";

/// Where built sessions are cached: [`CACHE_ENV`] if set (`None` when it says `off`),
/// else `<per-user cache>/mcp-memory/onnx-sessions/`.
#[must_use]
pub fn default_root() -> Option<PathBuf> {
    match std::env::var_os(CACHE_ENV) {
        Some(v) if v == "off" => None,
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => dirs::cache_dir().map(|cache| cache.join("mcp-memory").join("onnx-sessions")),
    }
}

/// One cache entry: the directory a session for these weights, library, graph and CPU is
/// kept in.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    root: PathBuf,
    dir: PathBuf,
    source: String,
}

impl Entry {
    /// The entry under `root` for a session of `weights` on `library` with the graph
    /// described by `graph` (the builder's dimensions). `None` when a file's metadata
    /// cannot be read (then nothing is cached).
    pub(super) fn new(root: &Path, library: &Path, weights: &Path, graph: &str) -> Option<Self> {
        let mut hash = Sha256::new();
        hash.update(format!("graph {GRAPH_VERSION} {graph}\n"));
        for file in [weights, library] {
            let path = fs::canonicalize(file).ok()?;
            let meta = fs::metadata(&path).ok()?;
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            hash.update(format!("{} {} {modified}\n", path.display(), meta.len()));
        }
        hash.update(cpu_features());
        let digest = hash.finalize();
        let name: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        Some(Self {
            root: root.to_path_buf(),
            dir: root.join(name),
            source: fs::canonicalize(weights).ok()?.display().to_string(),
        })
    }

    /// The entry's model file, if the entry is complete (renamed into place).
    pub(super) fn model(&self) -> Option<PathBuf> {
        let model = self.dir.join(MODEL_FILE);
        (model.is_file() && self.dir.join(PROBE_FILE).is_file()).then_some(model)
    }

    /// Whether `output` (the loaded session's output for [`PROBE_IDS`]) is what the writing
    /// session computed.
    pub(super) fn probe_matches(&self, output: &[f32]) -> bool {
        let Ok(bytes) = fs::read(self.dir.join(PROBE_FILE)) else {
            return false;
        };
        let stored: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        stored.len() == output.len()
            && stored
                .iter()
                .zip(output)
                .all(|(a, b)| (a - b).abs() <= PROBE_TOLERANCE)
    }

    /// Removes the entry (unreadable, or its probe differs).
    pub(super) fn remove(&self) {
        if let Err(e) = fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove a bad ONNX session cache entry");
        }
    }

    /// A fresh directory for ONNX Runtime to write a new entry into, beside the final one.
    pub(super) fn staging(&self) -> std::io::Result<Staging> {
        fs::create_dir_all(&self.root)?;
        let dir = tempfile::Builder::new()
            .prefix(".staging-")
            .tempdir_in(&self.root)?;
        Ok(Staging { dir })
    }

    /// Completes a staged entry: records the probe output and the source, flushes every
    /// file, renames the directory into place (another process that got there first
    /// keeps its own), and removes older entries of the same weights.
    pub(super) fn commit(&self, staging: Staging, probe: &[f32]) -> std::io::Result<()> {
        let dir = staging.dir.path();
        let mut bytes = Vec::with_capacity(probe.len() * 4);
        for v in probe {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        for (name, content) in [
            (PROBE_FILE, bytes),
            (SOURCE_FILE, self.source.clone().into_bytes()),
        ] {
            let mut file = fs::File::create(dir.join(name))?;
            file.write_all(&content)?;
        }
        for name in [MODEL_FILE, DATA_FILE, PROBE_FILE, SOURCE_FILE] {
            fs::File::open(dir.join(name))?.sync_all()?;
        }
        let staged = staging.dir.keep();
        if let Err(e) = fs::rename(&staged, &self.dir) {
            let _ = fs::remove_dir_all(&staged);
            if self.model().is_some() {
                return Ok(()); // another process completed the same entry first
            }
            return Err(e);
        }
        self.remove_stale();
        Ok(())
    }

    /// Removes the other complete entries built from the same weights file (an older
    /// library, graph version or file).
    fn remove_stale(&self) {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            // Another process's staging directory may hold a source file just before
            // its rename: only complete entries are ever removed.
            let staging = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".staging-"));
            if path == self.dir || staging {
                continue;
            }
            let same_source =
                fs::read_to_string(path.join(SOURCE_FILE)).is_ok_and(|s| s == self.source);
            if same_source {
                let _ = fs::remove_dir_all(&path);
            }
        }
    }
}

/// A directory ONNX Runtime writes a new entry into; removed if never committed.
#[derive(Debug)]
pub(super) struct Staging {
    dir: tempfile::TempDir,
}

impl Staging {
    /// Where ONNX Runtime writes the model.
    pub(super) fn model(&self) -> PathBuf {
        self.dir.path().join(MODEL_FILE)
    }
}

/// The vector extensions the CPU offers, which select ONNX Runtime's kernels and so the
/// layout of prepacked weights.
fn cpu_features() -> String {
    #[allow(unused_mut)]
    let mut found: Vec<&str> = vec![std::env::consts::ARCH];
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! detect {
            ($($f:tt),*) => {$(if std::arch::is_x86_feature_detected!($f) { found.push($f); })*};
        }
        detect!(
            "sse4.1",
            "avx",
            "avx2",
            "fma",
            "f16c",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avx512bf16",
            "avxvnni"
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! detect {
            ($($f:tt),*) => {$(if std::arch::is_aarch64_feature_detected!($f) { found.push($f); })*};
        }
        detect!("neon", "dotprod", "i8mm", "bf16", "sve", "sve2", "fp16");
    }
    found.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> (PathBuf, PathBuf) {
        let weights = dir.join("model.safetensors");
        let library = dir.join("libonnxruntime.so.1");
        fs::write(&weights, b"weights").unwrap();
        fs::write(&library, b"library").unwrap();
        (weights, library)
    }

    #[test]
    fn an_entry_is_named_by_what_its_bytes_depend_on() {
        let dir = tempfile::tempdir().unwrap();
        let (weights, library) = files(dir.path());
        let root = dir.path().join("cache");
        let a = Entry::new(&root, &library, &weights, "384x6").unwrap();
        assert_eq!(
            a.dir,
            Entry::new(&root, &library, &weights, "384x6").unwrap().dir
        );
        assert_ne!(
            a.dir,
            Entry::new(&root, &library, &weights, "768x12").unwrap().dir
        );
        fs::write(&weights, b"other weights").unwrap();
        assert_ne!(
            a.dir,
            Entry::new(&root, &library, &weights, "384x6").unwrap().dir
        );
        assert!(Entry::new(&root, &dir.path().join("missing"), &weights, "384x6").is_none());
    }

    #[test]
    fn a_committed_entry_is_complete_checks_its_probe_and_replaces_the_stale_one() {
        let dir = tempfile::tempdir().unwrap();
        let (weights, library) = files(dir.path());
        let root = dir.path().join("cache");
        let stage = |entry: &Entry| {
            let staging = entry.staging().unwrap();
            fs::write(staging.model(), b"model").unwrap();
            fs::write(staging.model().with_file_name(DATA_FILE), b"data").unwrap();
            staging
        };
        let old = Entry::new(&root, &library, &weights, "v1").unwrap();
        assert!(old.model().is_none(), "nothing cached yet");
        old.commit(stage(&old), &[1.0, 2.0]).unwrap();
        assert!(old.model().is_some());

        let new = Entry::new(&root, &library, &weights, "v2").unwrap();
        let staging = stage(&new);
        assert!(new.model().is_none(), "a staged entry is not visible");
        new.commit(staging, &[1.0, 2.0]).unwrap();
        assert!(new.model().is_some());
        assert!(
            old.model().is_none(),
            "the stale entry of the same weights is gone"
        );
        let left: Vec<_> = fs::read_dir(&root).unwrap().collect();
        assert_eq!(left.len(), 1, "no staging directory is left behind");

        assert!(new.probe_matches(&[1.0, 2.00001]));
        assert!(!new.probe_matches(&[1.0, 2.1]));
        assert!(!new.probe_matches(&[1.0]));
        new.remove();
        assert!(new.model().is_none());
    }
}
