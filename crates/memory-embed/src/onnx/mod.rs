//! The BERT encoder on ONNX Runtime: the graph is built in memory from the same
//! `model.safetensors` and `config.json` candle reads (ONNX Runtime's Model Editor API), so
//! no ONNX file has to be downloaded or kept in step with the weights, and the two engines
//! compute the same function of the same numbers.
//!
//! ONNX Runtime is a shared library loaded at run time ([`runtime_library`]): from
//! `MCP_MEMORY_ONNXRUNTIME` (or `ort`'s own `ORT_DYLIB_PATH`), else the per-user cache that
//! `cargo xtask fetch-model` fills from the `onnxruntime` package on PyPI. Nothing is
//! downloaded at build time; without the library the embedder runs on candle.
//!
//! The graph is the BERT encoder exactly as candle's `BertModel` computes it (and as
//! `transformers` does): embeddings (word + position + token type) and LayerNorm, then per
//! layer self-attention (one fused Q/K/V projection, scaled dot product, the additive mask,
//! softmax), output projection, residual and LayerNorm, the feed-forward block with exact
//! (erf) GELU, residual and LayerNorm. It returns the last hidden states; pooling and
//! normalisation are the caller's, shared with the candle engine.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::editor::{Graph, Model, Node, ONNX_DOMAIN, Opset};
use ort::memory::Allocator;
use ort::operator::Attribute;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::value::{Outlet, Shape, SymbolicDimensions, Tensor, TensorElementType, ValueType};
use safetensors::SafeTensors;

use crate::error::EmbedError;

pub mod session_cache;

/// The variable naming the ONNX Runtime shared library (`libonnxruntime.so.*`,
/// `libonnxruntime.*.dylib` or `onnxruntime.dll`).
pub const RUNTIME_ENV: &str = "MCP_MEMORY_ONNXRUNTIME";
/// `ort`'s own variable for the same library, honoured too.
const ORT_ENV: &str = "ORT_DYLIB_PATH";
/// The ONNX Runtime release `cargo xtask fetch-model` installs (from PyPI's `onnxruntime`).
pub const RUNTIME_VERSION: &str = "1.32.0";
/// The ONNX opset the graph is written in (LayerNormalization is 17, Gelu 20).
const OPSET: u32 = 22;

/// The ONNX Runtime library to load: `MCP_MEMORY_ONNXRUNTIME`, else `ORT_DYLIB_PATH`, else
/// the per-user cache's copy (`<cache>/onnxruntime/<version>/`), if any. `None` when none
/// is set or present.
pub fn runtime_library() -> Option<PathBuf> {
    for var in [RUNTIME_ENV, ORT_ENV] {
        if let Some(path) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(path));
        }
    }
    let dir = cached_runtime_dir()?;
    std::fs::read_dir(&dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| is_runtime_library(p))
}

/// Where `cargo xtask fetch-model` puts the ONNX Runtime library:
/// `<per-user cache>/onnxruntime/<RUNTIME_VERSION>/`.
pub fn cached_runtime_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|cache| {
        cache
            .join("mcp-memory")
            .join("onnxruntime")
            .join(RUNTIME_VERSION)
    })
}

/// Whether `path` names an ONNX Runtime library by its file name.
fn is_runtime_library(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    // `libonnxruntime.so.1.32.0`, `libonnxruntime.1.32.0.dylib`; not the wheel's
    // `libonnxruntime_providers_shared.so`.
    name.starts_with("libonnxruntime.") || name == "onnxruntime.dll"
}

/// The process's ONNX Runtime environment, loaded once from the first library asked for
/// (a process can hold one ONNX Runtime): a later call naming another library gets the
/// first one's environment, or its error, which names the library that failed.
fn environment(library: &Path) -> Result<&'static ort::environment::Environment, EmbedError> {
    type Loaded = (PathBuf, Result<ort::environment::Environment, String>);
    static ENV: OnceLock<Loaded> = OnceLock::new();
    let (loaded_from, env) = ENV.get_or_init(|| {
        let env = if library.is_file() {
            ort::init_from(library)
                .map_err(|e| e.to_string())
                .and_then(|b| b.with_name("mcp-memory").build().map_err(|e| e.to_string()))
        } else {
            Err(format!(
                "no such file; set {RUNTIME_ENV} to the library's path or run `cargo xtask fetch-model`"
            ))
        };
        (library.to_path_buf(), env)
    });
    env.as_ref().map_err(|reason| EmbedError::Runtime {
        library: loaded_from.clone(),
        reason: reason.clone(),
    })
}

/// The BERT dimensions the graph is built for, from `config.json`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BertShape {
    /// Hidden size (the vector length).
    pub hidden: usize,
    /// Attention heads.
    pub heads: usize,
    /// Encoder layers.
    pub layers: usize,
    /// Feed-forward inner size.
    pub intermediate: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
}

/// A BERT encoder session. `run` takes `&mut` in ONNX Runtime's binding, so one call at a
/// time; each call already uses every core (ONNX Runtime's intra-op pool).
pub(crate) struct OnnxBert {
    session: Mutex<Session>,
    hidden: usize,
    words: WordTable,
    /// Whether the session came from the session cache (else the graph was built).
    from_cache: bool,
    /// Where the batch workers come from; `None` without a cached session or with one core.
    workers_from: Option<WorkerSource>,
    /// One single-threaded session per core, opened from the cached model on the first
    /// batch (see [`forward`](Self::forward)); empty when they could not be opened.
    workers: OnceLock<Vec<Mutex<Session>>>,
}

/// What opening a batch worker needs: the cached model and the runtime's environment.
struct WorkerSource {
    model: PathBuf,
    env: &'static ort::environment::Environment,
    count: usize,
}

/// The word-embedding table, read in place from the memory-mapped checkpoint: the lookup
/// of a text's rows is done here, not in the graph, so the table (half of MiniLM's weights)
/// is never copied and only the rows of words actually seen are ever resident.
struct WordTable {
    map: memmap2::Mmap,
    rows: usize,
    hidden: usize,
}

impl WordTable {
    /// Appends the embedding of token `id` to `out`.
    fn push_row(&self, id: u32, out: &mut Vec<f32>) -> Result<(), ort::Error> {
        let id = id as usize;
        if id >= self.rows {
            return Err(ort::Error::new(format!(
                "token id {id} is outside the vocabulary of {} words",
                self.rows
            )));
        }
        let start = id * self.hidden * 4;
        let bytes = &self.map[start..start + self.hidden * 4];
        out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        Ok(())
    }
}

impl std::fmt::Debug for OnnxBert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxBert")
            .field("hidden", &self.hidden)
            .field("from_cache", &self.from_cache)
            .finish_non_exhaustive()
    }
}

impl OnnxBert {
    /// Opens a session of the encoder for `weights` (a BERT `model.safetensors`) on the
    /// ONNX Runtime `library` with `threads` intra-op threads: from the session cache under
    /// `cache` when it holds one for these weights, library and CPU (see
    /// [`session_cache`]), else by building the graph, which then also fills the cache.
    ///
    /// # Errors
    /// [`EmbedError::Runtime`] when the library cannot be loaded or refuses the graph;
    /// [`EmbedError::InvalidWeights`] when a tensor is missing or misshapen.
    pub(crate) fn load(
        library: &Path,
        weights: &Path,
        shape: BertShape,
        threads: usize,
        cache: Option<&Path>,
    ) -> Result<Self, EmbedError> {
        let env = environment(library)?;
        let runtime = |e: ort::Error| EmbedError::Runtime {
            library: library.to_path_buf(),
            reason: e.to_string(),
        };
        let invalid = |reason: String| EmbedError::InvalidWeights {
            path: weights.to_path_buf(),
            reason,
        };
        let build_error = |e: BuildError| match e {
            BuildError::Weights(reason) => invalid(reason),
            BuildError::Ort(e) => runtime(e),
        };
        let file = std::fs::File::open(weights).map_err(|e| invalid(e.to_string()))?;
        // SAFETY: the map is read while the graph's initializers are copied out of it, then
        // dropped; a file replaced by rename (as downloads do) leaves the mapped inode intact.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| invalid(e.to_string()))?;
        let tensors = SafeTensors::deserialize(&map).map_err(|e| invalid(e.to_string()))?;
        let checkpoint = Weights {
            tensors: &tensors,
            prefix: if tensors.names().iter().any(|n| n.starts_with("bert.")) {
                "bert."
            } else {
                ""
            },
        };
        let word_table = "embeddings.word_embeddings.weight";
        let rows = checkpoint.rows(word_table).map_err(build_error)?;
        let table = checkpoint
            .bytes(word_table, &[rows, shape.hidden])
            .map_err(build_error)?;
        let table_at = (table.as_ptr() as usize - map.as_ptr() as usize) as u64;
        let table_len = table.len();
        // SAFETY: as above; the table's bytes are only ever read. A map of the table alone:
        // the pages of the other tensors, read once to build the graph, leave with the
        // checkpoint's full map.
        let words = || -> Result<WordTable, EmbedError> {
            let map = unsafe {
                memmap2::MmapOptions::new()
                    .offset(table_at)
                    .len(table_len)
                    .map(&file)
            }
            .map_err(|e| invalid(e.to_string()))?;
            Ok(WordTable {
                map,
                rows,
                hidden: shape.hidden,
            })
        };
        let builder = || -> Result<SessionBuilder, EmbedError> {
            SessionBuilder::new(env)
                .map_err(runtime)?
                .with_intra_threads(threads.max(1))
                .map_err(|e| runtime(e.into()))?
                // Memory patterns plan buffers for one input shape; every batch has its own
                // shape here, so they only keep memory (30 MB measured), never speed
                // anything up.
                .with_memory_pattern(false)
                .map_err(|e| runtime(e.into()))
        };
        let entry = cache.and_then(|root| {
            session_cache::Entry::new(root, library, weights, &format!("{shape:?} opset {OPSET}"))
        });

        // A session cached by an earlier process: no graph to build, nothing to prepack.
        if let Some(entry) = &entry
            && let Some(model_file) = entry.model()
        {
            let started = std::time::Instant::now();
            let loaded = builder()?
                // Already optimised when it was written.
                .with_optimization_level(GraphOptimizationLevel::Disable)
                .map_err(|e| runtime(e.into()))?
                .commit_from_file(&model_file)
                .map_err(runtime);
            match loaded {
                Ok(session) => {
                    let model = Self {
                        session: Mutex::new(session),
                        hidden: shape.hidden,
                        words: words()?,
                        from_cache: true,
                        workers_from: (threads > 1).then(|| WorkerSource {
                            model: model_file.clone(),
                            env,
                            count: threads,
                        }),
                        workers: OnceLock::new(),
                    };
                    match model.probe() {
                        Ok(out) if entry.probe_matches(&out) => {
                            tracing::debug!(
                                ms = started.elapsed().as_millis() as u64,
                                model = %model_file.display(),
                                "ONNX Runtime encoder loaded from the session cache"
                            );
                            return Ok(model);
                        }
                        Ok(_) => tracing::warn!(
                            model = %model_file.display(),
                            "a cached ONNX session computes other numbers than when it was \
                             written; building the graph again"
                        ),
                        Err(e) => tracing::warn!(model = %model_file.display(), error = %e,
                            "a cached ONNX session fails; building the graph again"),
                    }
                }
                Err(e) => tracing::warn!(model = %model_file.display(), error = %e,
                    "a cached ONNX session does not load; building the graph again"),
            }
            entry.remove();
        }

        let started = std::time::Instant::now();
        let graph = build_graph(&checkpoint, shape).map_err(build_error)?;
        let mut model =
            Model::new([Opset::new(ONNX_DOMAIN, OPSET).map_err(runtime)?]).map_err(runtime)?;
        model.set_graph(graph).map_err(runtime)?;
        let mut builder = builder()?
            // Measured on MiniLM: the extended and layout levels' fusions gain nothing on
            // this graph and cost start-up time; basic (constant folding) is kept.
            .with_optimization_level(GraphOptimizationLevel::Level1)
            .map_err(|e| runtime(e.into()))?;
        // Also write the session for the next process (see `session_cache`).
        let staging = match entry.as_ref().map(session_cache::Entry::staging) {
            Some(Ok(staging)) => {
                builder = builder
                    .with_optimized_model_path(staging.model())
                    .map_err(|e| runtime(e.into()))?;
                for (key, value) in [
                    (
                        "session.optimized_model_external_initializers_file_name",
                        session_cache::DATA_FILE,
                    ),
                    (
                        "session.optimized_model_external_initializers_min_size_in_bytes",
                        "1024",
                    ),
                    ("session.save_external_prepacked_constant_initializers", "1"),
                ] {
                    builder = builder
                        .with_config_entry(key, value)
                        .map_err(|e| runtime(e.into()))?;
                }
                Some(staging)
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "no ONNX session cache: its directory cannot be written");
                None
            }
            None => None,
        };
        let built = started.elapsed();
        let session = model.into_session(&builder).map_err(runtime)?;
        tracing::debug!(
            graph_ms = built.as_millis() as u64,
            session_ms = (started.elapsed() - built).as_millis() as u64,
            "ONNX Runtime encoder built"
        );
        drop(tensors);
        drop(map);
        let mut model = Self {
            session: Mutex::new(session),
            hidden: shape.hidden,
            words: words()?,
            from_cache: false,
            workers_from: None,
            workers: OnceLock::new(),
        };
        if let (Some(entry), Some(staging)) = (&entry, staging) {
            let saved = model
                .probe()
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|out| entry.commit(staging, &out));
            match saved {
                Ok(()) => {
                    model.workers_from =
                        entry
                            .model()
                            .filter(|_| threads > 1)
                            .map(|model| WorkerSource {
                                model,
                                env,
                                count: threads,
                            });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not save the ONNX session for the next start");
                }
            }
        }
        Ok(model)
    }

    /// The encoder's output for the session cache's probe input.
    fn probe(&self) -> Result<Vec<f32>, ort::Error> {
        // Inside any vocabulary, however small.
        let rows = u32::try_from(self.words.rows).unwrap_or(u32::MAX).max(1);
        let ids = session_cache::PROBE_IDS.map(|id| id % rows);
        let n = ids.len();
        self.forward(&ids, &vec![0; n], &vec![1; n], 1, n)
    }

    /// The last hidden states, `rows × len × hidden`, row-major, for `rows` texts padded to
    /// `len` tokens: `ids` and `type_ids` are `rows × len`, `mask` is 1 for a token, 0 for
    /// padding.
    ///
    /// A batch is split between the batch workers, one single-threaded session per core
    /// running a contiguous share of the rows at the same time; one text runs on the main
    /// session, whose intra-op threads share each operator. Why: on short texts ONNX
    /// Runtime's intra-op threads meet at every one of the graph's ~180 operators, and
    /// running whole rows apart is faster on short texts (measured on 2 cores, the
    /// `latency` example's 32 sentences: 1.0–1.1 ms per text against 1.1–1.5 ms; on the
    /// embedding bench's longer sentences no faster); on one text only the intra-op
    /// threads can share the work.
    pub(crate) fn forward(
        &self,
        ids: &[u32],
        type_ids: &[u32],
        mask: &[u32],
        rows: usize,
        len: usize,
    ) -> Result<Vec<f32>, ort::Error> {
        let workers = if rows >= 2 { self.workers() } else { &[] };
        if workers.len() < 2 {
            return self.forward_on(&self.session, ids, type_ids, mask, rows, len);
        }
        let parts = workers.len().min(rows);
        // Rows `rows * k / parts ..` of part `k`, padded to the part's own longest row: the
        // runner sends rows shortest first, so every part but the last pads less than the
        // batch's longest row asks.
        let run_part = |k: usize, worker: &Mutex<Session>| -> Result<Vec<f32>, ort::Error> {
            let (from, to) = (rows * k / parts, rows * (k + 1) / parts);
            let used = (from..to)
                .map(|r| {
                    mask[r * len..(r + 1) * len]
                        .iter()
                        .rposition(|&m| m != 0)
                        .map_or(1, |p| p + 1)
                })
                .max()
                .unwrap_or(len);
            let trim = |v: &[u32]| -> Vec<u32> {
                (from..to)
                    .flat_map(|r| v[r * len..r * len + used].iter().copied())
                    .collect()
            };
            let part_rows = to - from;
            let out = self.forward_on(
                worker,
                &trim(ids),
                &trim(type_ids),
                &trim(mask),
                part_rows,
                used,
            )?;
            if used == len {
                return Ok(out);
            }
            // Back to the batch's length; the padding positions stay zero, which pooling
            // never reads (it reads the mask's tokens, or the first).
            let h = self.hidden;
            let mut full = vec![0.0; part_rows * len * h];
            for r in 0..part_rows {
                full[r * len * h..(r * len + used) * h]
                    .copy_from_slice(&out[r * used * h..(r + 1) * used * h]);
            }
            Ok(full)
        };
        let outputs: Vec<Result<Vec<f32>, ort::Error>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (1..parts)
                .map(|k| {
                    let (worker, run_part) = (&workers[k], &run_part);
                    scope.spawn(move || run_part(k, worker))
                })
                .collect();
            let first = run_part(0, &workers[0]);
            std::iter::once(first)
                .chain(handles.into_iter().map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(ort::Error::new("a batch worker panicked")))
                }))
                .collect()
        });
        let mut hidden = Vec::with_capacity(rows * len * self.hidden);
        for part in outputs {
            hidden.extend(part?);
        }
        Ok(hidden)
    }

    /// The batch workers, opened on first use; empty when there are none to open or they
    /// failed to open (then the main session runs batches too).
    fn workers(&self) -> &[Mutex<Session>] {
        self.workers.get_or_init(|| {
            let Some(source) = &self.workers_from else {
                return Vec::new();
            };
            let open = || -> Result<Session, ort::Error> {
                let plain = |e: ort::Error<SessionBuilder>| -> ort::Error { e.into() };
                SessionBuilder::new(source.env)?
                    .with_intra_threads(1)
                    .map_err(plain)?
                    .with_memory_pattern(false)
                    .map_err(plain)?
                    // Already optimised when it was written.
                    .with_optimization_level(GraphOptimizationLevel::Disable)
                    .map_err(plain)?
                    .commit_from_file(&source.model)
            };
            match (0..source.count).map(|_| open().map(Mutex::new)).collect() {
                Ok(workers) => workers,
                Err(e) => {
                    tracing::warn!(error = %e, "ONNX batch workers did not open; batches run on one session");
                    Vec::new()
                }
            }
        })
    }

    /// Opens the batch workers now rather than on the first batch (the server's warm-up).
    pub(crate) fn prepare_workers(&self) {
        let _ = self.workers();
    }

    /// [`forward`](Self::forward) on one session.
    fn forward_on(
        &self,
        session: &Mutex<Session>,
        ids: &[u32],
        type_ids: &[u32],
        mask: &[u32],
        rows: usize,
        len: usize,
    ) -> Result<Vec<f32>, ort::Error> {
        let as_i64 = |v: &[u32]| v.iter().map(|&x| i64::from(x)).collect::<Vec<_>>();
        let (r, l) = (rows as i64, len as i64);
        let mut words = Vec::with_capacity(ids.len() * self.hidden);
        for &id in ids {
            self.words.push_row(id, &mut words)?;
        }
        let words = Tensor::from_array(([r, l, self.hidden as i64], words))?;
        let type_ids = Tensor::from_array(([r, l], as_i64(type_ids)))?;
        let positions = Tensor::from_array(([l], (0..l).collect::<Vec<i64>>()))?;
        // candle's and transformers' extended mask: 0 for a token, the lowest f32 for padding.
        let bias: Vec<f32> = mask
            .iter()
            .map(|&m| if m == 0 { f32::MIN } else { 0.0 })
            .collect();
        let bias = Tensor::from_array(([r, 1, 1, l], bias))?;
        let mut session = session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let outputs = session.run(ort::inputs![
            "word_embeddings" => words,
            "token_type_ids" => type_ids,
            "position_ids" => positions,
            "mask_bias" => bias,
        ])?;
        let (_, hidden) = outputs["hidden"].try_extract_tensor::<f32>()?;
        debug_assert_eq!(hidden.len(), rows * len * self.hidden);
        Ok(hidden.to_vec())
    }
}

/// Why a graph could not be built.
enum BuildError {
    /// A tensor is missing or misshapen.
    Weights(String),
    /// ONNX Runtime refused a node or an initializer.
    Ort(ort::Error),
}

impl From<ort::Error> for BuildError {
    fn from(e: ort::Error) -> Self {
        Self::Ort(e)
    }
}

/// The checkpoint's tensors, by their `transformers` names (a `bert.` prefix tolerated).
struct Weights<'a> {
    tensors: &'a SafeTensors<'a>,
    prefix: &'static str,
}

impl<'a> Weights<'a> {
    /// The raw little-endian f32 bytes of `name`, checked to have `shape`.
    fn bytes(&self, name: &str, shape: &[usize]) -> Result<&'a [u8], BuildError> {
        let full = format!("{}{name}", self.prefix);
        let view = self
            .tensors
            .tensor(&full)
            .map_err(|e| BuildError::Weights(format!("tensor `{full}`: {e}")))?;
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(BuildError::Weights(format!(
                "tensor `{full}` is {:?}; only F32 checkpoints are supported",
                view.dtype()
            )));
        }
        if view.shape() != shape {
            return Err(BuildError::Weights(format!(
                "tensor `{full}` has shape {:?}, config.json implies {shape:?}",
                view.shape()
            )));
        }
        Ok(view.data())
    }

    /// The number of rows of the 2-d tensor `name` (an embedding table's vocabulary).
    fn rows(&self, name: &str) -> Result<usize, BuildError> {
        let full = format!("{}{name}", self.prefix);
        let view = self
            .tensors
            .tensor(&full)
            .map_err(|e| BuildError::Weights(format!("tensor `{full}`: {e}")))?;
        Ok(view.shape().first().copied().unwrap_or(0))
    }

    /// Copies `name` (of `shape`) into `dst`.
    fn copy(&self, name: &str, shape: &[usize], dst: &mut [f32]) -> Result<(), BuildError> {
        let src = self.bytes(name, shape)?;
        if cfg!(target_endian = "little") {
            // The checkpoint's bytes are the f32s' own: one memcpy.
            bytemuck::cast_slice_mut::<f32, u8>(dst).copy_from_slice(src);
        } else {
            for (d, b) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        Ok(())
    }

    /// Copies the linear layer weight `name` (`out × inp`, PyTorch's layout) into `dst`
    /// transposed to `inp × out`, as `MatMul` takes it, at column offset `at` of rows
    /// `stride` wide (so Q, K and V land side by side in one `inp × 3·out` matrix).
    fn copy_transposed(
        &self,
        name: &str,
        (out, inp): (usize, usize),
        dst: &mut [f32],
        (stride, at): (usize, usize),
    ) -> Result<(), BuildError> {
        let src = self.bytes(name, &[out, inp])?;
        // Blocks of 32 × 32 keep both sides in cache.
        const BLOCK: usize = 32;
        for o0 in (0..out).step_by(BLOCK) {
            for i0 in (0..inp).step_by(BLOCK) {
                for o in o0..(o0 + BLOCK).min(out) {
                    for i in i0..(i0 + BLOCK).min(inp) {
                        let b = &src[(o * inp + i) * 4..(o * inp + i) * 4 + 4];
                        dst[i * stride + at + o] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Adds the f32 initializer `name` of `shape`, filled by `fill`.
fn init_f32(
    graph: &mut Graph,
    name: &str,
    shape: &[usize],
    fill: impl FnOnce(&mut [f32]) -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let mut t = Tensor::<f32>::new(&Allocator::default(), dims)?;
    fill(t.extract_tensor_mut().1)?;
    // `external`: ONNX Runtime keeps this tensor (allocated by its own allocator, owned
    // by the graph and then the session) instead of copying it, which saves a copy of the
    // weights at load. It refuses that for tensors of 127 bytes or less.
    let external = shape.iter().product::<usize>() * 4 > 127;
    graph.add_initializer(name, t, external)?;
    Ok(())
}

/// Adds the f32 initializer `name`, a copy of the checkpoint's tensor of the same name.
fn init_copy(
    graph: &mut Graph,
    w: &Weights<'_>,
    name: &str,
    shape: &[usize],
) -> Result<(), BuildError> {
    init_f32(graph, name, shape, |dst| w.copy(name, shape, dst))
}

/// Adds the i64 initializer `name` (a 1-d shape operand).
fn init_i64(graph: &mut Graph, name: &str, values: &[i64]) -> ort::Result<()> {
    let mut t = Tensor::<i64>::new(&Allocator::default(), [values.len() as i64])?;
    t.extract_tensor_mut().1.copy_from_slice(values);
    graph.add_initializer(name, t, false)
}

/// A graph input or output of element type `ty` with named (dynamic) dimensions.
fn outlet(name: &str, ty: TensorElementType, dims: &[&str]) -> Outlet {
    Outlet::new(
        name,
        ValueType::Tensor {
            ty,
            shape: Shape::new(dims.iter().map(|d| if d.is_empty() { 1 } else { -1 })),
            dimension_symbols: SymbolicDimensions::new(dims.iter().map(|d| (*d).to_owned())),
        },
    )
}

/// Adds node `op` named `out`, reading `inputs` and writing the one output `out`.
fn node(
    graph: &mut Graph,
    op: &str,
    inputs: &[&str],
    out: &str,
    attributes: Vec<Attribute>,
) -> ort::Result<()> {
    graph.add_node(Node::new(op, ONNX_DOMAIN, out, inputs, [out], attributes)?)
}

/// The BERT encoder graph (see the module docs).
fn build_graph(w: &Weights<'_>, s: BertShape) -> Result<Graph, BuildError> {
    let (h, heads, inner) = (s.hidden, s.heads, s.intermediate);
    if heads == 0 || h % heads != 0 {
        return Err(BuildError::Weights(format!(
            "hidden size {h} is not a multiple of {heads} attention heads"
        )));
    }
    let head = h / heads;
    let eps = s.layer_norm_eps as f32;
    let mut g = Graph::new()?;
    g.set_inputs([
        outlet(
            "word_embeddings",
            TensorElementType::Float32,
            &["batch", "tokens", "hidden_size"],
        ),
        outlet(
            "token_type_ids",
            TensorElementType::Int64,
            &["batch", "tokens"],
        ),
        outlet("position_ids", TensorElementType::Int64, &["tokens"]),
        outlet(
            "mask_bias",
            TensorElementType::Float32,
            &["batch", "", "", "tokens"],
        ),
    ])?;
    g.set_outputs([outlet(
        "hidden",
        TensorElementType::Float32,
        &["batch", "tokens", "hidden_size"],
    )])?;

    // Shape operands: 0 keeps the input's dimension (Reshape's default, allowzero = 0).
    init_i64(&mut g, "shape.heads", &[0, 0, heads as i64, head as i64])?;
    init_i64(&mut g, "shape.hidden", &[0, 0, h as i64])?;
    let scale = 1.0 / (head as f32).sqrt();
    init_f32(&mut g, "attention.scale", &[], |d| {
        d[0] = scale;
        Ok(())
    })?;
    let ln = |g: &mut Graph, name: &str, x: &str, out: &str| -> Result<(), BuildError> {
        init_copy(g, w, &format!("{name}.weight"), &[h])?;
        init_copy(g, w, &format!("{name}.bias"), &[h])?;
        node(
            g,
            "LayerNormalization",
            &[x, &format!("{name}.weight"), &format!("{name}.bias")],
            out,
            vec![
                Attribute::new("axis", -1_i64)?,
                Attribute::new("epsilon", eps)?,
            ],
        )?;
        Ok(())
    };

    // Embeddings.
    // The word embeddings come in as an input (see `WordTable`).
    for table in ["position", "token_type"] {
        let name = format!("embeddings.{table}_embeddings.weight");
        let rows = w.rows(&name)?;
        init_copy(&mut g, w, &name, &[rows, h])?;
    }
    node(
        &mut g,
        "Gather",
        &["embeddings.position_embeddings.weight", "position_ids"],
        "emb.position",
        vec![],
    )?;
    node(
        &mut g,
        "Gather",
        &["embeddings.token_type_embeddings.weight", "token_type_ids"],
        "emb.type",
        vec![],
    )?;
    node(
        &mut g,
        "Add",
        &["word_embeddings", "emb.type"],
        "emb.sum1",
        vec![],
    )?;
    node(
        &mut g,
        "Add",
        &["emb.sum1", "emb.position"],
        "emb.sum",
        vec![],
    )?;
    ln(&mut g, "embeddings.LayerNorm", "emb.sum", "layer.0.in")?;

    for l in 0..s.layers {
        let p = format!("encoder.layer.{l}");
        let x = format!("layer.{l}.in");
        let t = |s: &str| format!("layer.{l}.{s}");
        // Q, K and V in one MatMul: [h, 3h], their biases concatenated.
        init_f32(&mut g, &t("qkv.weight"), &[h, 3 * h], |d| {
            for (j, part) in ["query", "key", "value"].into_iter().enumerate() {
                let name = format!("{p}.attention.self.{part}.weight");
                w.copy_transposed(&name, (h, h), d, (3 * h, j * h))?;
            }
            Ok(())
        })?;
        init_f32(&mut g, &t("qkv.bias"), &[3 * h], |d| {
            for (j, part) in ["query", "key", "value"].into_iter().enumerate() {
                let name = format!("{p}.attention.self.{part}.bias");
                w.copy(&name, &[h], &mut d[j * h..(j + 1) * h])?;
            }
            Ok(())
        })?;
        node(
            &mut g,
            "MatMul",
            &[&x, &t("qkv.weight")],
            &t("qkv.mm"),
            vec![],
        )?;
        node(
            &mut g,
            "Add",
            &[&t("qkv.mm"), &t("qkv.bias")],
            &t("qkv"),
            vec![],
        )?;
        g.add_node(Node::new(
            "Split",
            ONNX_DOMAIN,
            t("split"),
            [t("qkv")],
            [t("q"), t("k"), t("v")],
            [
                Attribute::new("axis", -1_i64)?,
                Attribute::new("num_outputs", 3_i64)?,
            ],
        )?)?;
        for (name, perm) in [
            ("q", [0, 2, 1, 3]),
            ("k", [0, 2, 3, 1]),
            ("v", [0, 2, 1, 3]),
        ] {
            node(
                &mut g,
                "Reshape",
                &[&t(name), "shape.heads"],
                &t(&format!("{name}.heads")),
                vec![],
            )?;
            node(
                &mut g,
                "Transpose",
                &[&t(&format!("{name}.heads"))],
                &t(&format!("{name}.t")),
                vec![Attribute::new("perm", perm.to_vec())?],
            )?;
        }
        node(
            &mut g,
            "MatMul",
            &[&t("q.t"), &t("k.t")],
            &t("scores.raw"),
            vec![],
        )?;
        node(
            &mut g,
            "Mul",
            &[&t("scores.raw"), "attention.scale"],
            &t("scores.scaled"),
            vec![],
        )?;
        node(
            &mut g,
            "Add",
            &[&t("scores.scaled"), "mask_bias"],
            &t("scores"),
            vec![],
        )?;
        node(
            &mut g,
            "Softmax",
            &[&t("scores")],
            &t("probs"),
            vec![Attribute::new("axis", -1_i64)?],
        )?;
        node(
            &mut g,
            "MatMul",
            &[&t("probs"), &t("v.t")],
            &t("context.heads"),
            vec![],
        )?;
        node(
            &mut g,
            "Transpose",
            &[&t("context.heads")],
            &t("context.t"),
            vec![Attribute::new("perm", vec![0_i64, 2, 1, 3])?],
        )?;
        node(
            &mut g,
            "Reshape",
            &[&t("context.t"), "shape.hidden"],
            &t("context"),
            vec![],
        )?;
        dense(
            &mut g,
            w,
            &format!("{p}.attention.output.dense"),
            h,
            h,
            &t("context"),
            &t("attn.out"),
        )?;
        node(
            &mut g,
            "Add",
            &[&t("attn.out"), &x],
            &t("attn.residual"),
            vec![],
        )?;
        ln(
            &mut g,
            &format!("{p}.attention.output.LayerNorm"),
            &t("attn.residual"),
            &t("attn"),
        )?;

        dense(
            &mut g,
            w,
            &format!("{p}.intermediate.dense"),
            inner,
            h,
            &t("attn"),
            &t("ffn.in"),
        )?;
        node(
            &mut g,
            "Gelu",
            &[&t("ffn.in")],
            &t("ffn.act"),
            vec![Attribute::new("approximate", "none".to_owned())?],
        )?;
        dense(
            &mut g,
            w,
            &format!("{p}.output.dense"),
            h,
            inner,
            &t("ffn.act"),
            &t("ffn.out"),
        )?;
        node(
            &mut g,
            "Add",
            &[&t("ffn.out"), &t("attn")],
            &t("ffn.residual"),
            vec![],
        )?;
        let out = if l + 1 == s.layers {
            "hidden".to_owned()
        } else {
            format!("layer.{}.in", l + 1)
        };
        ln(
            &mut g,
            &format!("{p}.output.LayerNorm"),
            &t("ffn.residual"),
            &out,
        )?;
    }
    if s.layers == 0 {
        node(&mut g, "Identity", &["layer.0.in"], "hidden", vec![])?;
    }
    Ok(g)
}

/// A linear layer `name` (`out × inp` weight and `out` bias) from `x` to `y`.
fn dense(
    g: &mut Graph,
    w: &Weights<'_>,
    name: &str,
    out: usize,
    inp: usize,
    x: &str,
    y: &str,
) -> Result<(), BuildError> {
    init_f32(g, &format!("{name}.weight"), &[inp, out], |d| {
        w.copy_transposed(&format!("{name}.weight"), (out, inp), d, (out, 0))
    })?;
    init_copy(g, w, &format!("{name}.bias"), &[out])?;
    node(
        g,
        "MatMul",
        &[x, &format!("{name}.weight")],
        &format!("{y}.mm"),
        vec![],
    )?;
    node(
        g,
        "Add",
        &[&format!("{y}.mm"), &format!("{name}.bias")],
        y,
        vec![],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default model's files and MiniLM's dimensions (read from its `config.json`).
    fn model() -> (PathBuf, PathBuf, BertShape) {
        let dir = crate::ModelLocation::resolve(crate::DEFAULT_MODEL_ID)
            .unwrap_or_else(|e| {
                panic!("this test needs the model: run `cargo xtask fetch-model`. Error: {e}")
            })
            .dir;
        let library = runtime_library().unwrap_or_else(|| {
            panic!("this test needs ONNX Runtime: run `cargo xtask fetch-model`")
        });
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        let get = |k: &str| config[k].as_u64().unwrap() as usize;
        let shape = BertShape {
            hidden: get("hidden_size"),
            heads: get("num_attention_heads"),
            layers: get("num_hidden_layers"),
            intermediate: get("intermediate_size"),
            layer_norm_eps: config["layer_norm_eps"].as_f64().unwrap(),
        };
        (library, dir.join("model.safetensors"), shape)
    }

    /// The hidden states of a two-text padded batch.
    fn run(model: &OnnxBert) -> Vec<f32> {
        let ids = [101, 7592, 2088, 102, 101, 2023, 2003, 102];
        let mask = [1, 1, 1, 1, 1, 1, 1, 0];
        model.forward(&ids, &[0; 8], &mask, 2, 4).unwrap()
    }

    #[test]
    fn a_cached_session_loads_without_building_and_computes_the_same_numbers() {
        let (library, weights, shape) = model();
        let cache = tempfile::tempdir().unwrap();
        let load = || OnnxBert::load(&library, &weights, shape, 2, Some(cache.path())).unwrap();

        let built = load();
        assert!(!built.from_cache, "nothing cached yet: the graph is built");
        let cached = load();
        assert!(cached.from_cache, "the second load comes from the cache");
        let (a, b) = (run(&built), run(&cached));
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(worst <= 1e-5, "cached session differs by {worst}");

        // An entry whose numbers differ (damaged, or written for other kernels) is never
        // used: the graph is built again and the entry rewritten.
        let entry = std::fs::read_dir(cache.path())
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| e.path().join("probe.f32").is_file())
            .unwrap()
            .path();
        let probe = entry.join("probe.f32");
        let len = std::fs::metadata(&probe).unwrap().len() as usize;
        std::fs::write(&probe, vec![0u8; len]).unwrap();
        let rebuilt = load();
        assert!(
            !rebuilt.from_cache,
            "a cached session with other numbers is not used"
        );
        assert_eq!(run(&rebuilt), a);
        assert!(load().from_cache, "the rebuilt entry is used again");
    }

    #[test]
    fn a_batch_split_between_the_workers_gives_the_main_sessions_numbers() {
        let (library, weights, shape) = model();
        let cache = tempfile::tempdir().unwrap();
        for _ in 0..2 {
            // Built (workers from the entry it just wrote), then loaded from the cache.
            let model = OnnxBert::load(&library, &weights, shape, 2, Some(cache.path())).unwrap();
            assert_eq!(model.workers().len(), 2);
            // Five rows, shortest first as the runner sends them, padded to four tokens:
            // an uneven split whose first part needs only three.
            let ids = [
                101, 1037, 102, 0, 101, 2158, 102, 0, 101, 3638, 2326, 102, 101, 7592, 2088, 102,
                101, 2023, 2003, 102,
            ];
            let mask: Vec<u32> = ids.iter().map(|&i| u32::from(i != 0)).collect();
            let split = model.forward(&ids, &[0; 20], &mask, 5, 4).unwrap();
            let whole = model
                .forward_on(&model.session, &ids, &[0; 20], &mask, 5, 4)
                .unwrap();
            assert_eq!(split.len(), whole.len());
            // Every token's hidden state (padding positions are not compared: pooling
            // never reads them).
            let h = shape.hidden;
            let worst = (0..20)
                .filter(|&t| mask[t] == 1)
                .flat_map(|t| (t * h..(t + 1) * h).map(|i| (split[i] - whole[i]).abs()))
                .fold(0.0, f32::max);
            assert!(worst <= 1e-4, "split batch differs by {worst}");
        }
    }

    #[test]
    fn without_a_writable_cache_the_graph_is_built_each_time() {
        let (library, weights, shape) = model();
        let dir = tempfile::tempdir().unwrap();
        // A file where the cache directory should be: nothing can be created under it.
        let blocked = dir.path().join("not-a-directory");
        std::fs::write(&blocked, b"").unwrap();
        for _ in 0..2 {
            let model = OnnxBert::load(&library, &weights, shape, 2, Some(&blocked)).unwrap();
            assert!(!model.from_cache);
            assert!(
                model.workers().is_empty(),
                "workers open from the cached model only"
            );
        }
    }
}
