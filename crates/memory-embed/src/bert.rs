//! [`BertEmbedder`]: a BERT-family sentence model (MiniLM, BGE, ...) on CPU with candle.
//!
//! ```no_run
//! use memory_embed::{BertEmbedder, Embedder, DEFAULT_MODEL_ID};
//!
//! # async fn demo() -> Result<(), memory_embed::EmbedError> {
//! // Finds the files via MCP_MEMORY_MODEL_DIR or the per-user cache (`cargo xtask fetch-model`).
//! let embedder = BertEmbedder::open(DEFAULT_MODEL_ID)?;
//! let vectors = embedder.embed(&["The cat sits on the mat.".to_owned()]).await?;
//! assert_eq!(vectors[0].len(), 384);
//! # Ok(())
//! # }
//! ```
//!
//! A model directory holds `config.json`, `tokenizer.json` and `model.safetensors`, and
//! optionally `1_Pooling/config.json` (pooling mode) and `sentence_bert_config.json`
//! (`max_seq_length`) as sentence-transformers publishes them.
//!
//! Embedding a batch: each text is cut to [`CHARS_PER_TOKEN_BOUND`] × max-tokens characters
//! (so a 1 MB note costs no more than a page), tokenized and truncated to the model's token
//! limit, sorted by length and run in chunks of [`DEFAULT_BATCH_SIZE`] with padding and an
//! attention mask, pooled (mean over the mask, or `[CLS]`) and L2-normalised. Inference runs
//! on tokio's blocking pool, never on the async workers.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::{Tokenizer, TruncationParams};

use crate::error::EmbedError;
use crate::location::ModelLocation;
use crate::spec::{self, BERT_MAX_TOKENS, ModelSpec, Pooling};
use crate::{Embedder, truncate_chars};

/// Texts per forward pass. Bounds memory: the attention scores of one chunk take
/// `batch × heads × tokens² × 4` bytes (32 × 12 × 256² × 4 B ≈ 100 MB for MiniLM at its limit).
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// Characters kept per allowed token before tokenizing. WordPiece tokens average about four
/// characters of English, so ten per token keeps every text that could fill the token limit
/// while a megabyte-long note is cut to a few kilobytes before the tokenizer sees it.
pub(crate) const CHARS_PER_TOKEN_BOUND: usize = 10;

// The file names are part of the model's description (`spec`), shared with `hub`'s download
// without `hub` importing this module.
use crate::spec::files;

/// A local BERT-family sentence embedder on CPU. Cheap to clone (the model is shared).
#[derive(Clone)]
pub struct BertEmbedder {
    model_id: String,
    dimensions: usize,
    dir: PathBuf,
    batch_size: usize,
    runner: Arc<Runner>,
}

/// Which inference engine runs the encoder. Both compute the same function of the same
/// weights (vectors agree to a cosine ≥ 0.9999, a test); ONNX Runtime is 3–5× faster on
/// CPU (docs/ARCHITECTURE.md has the figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// candle, pure Rust: builds and runs everywhere.
    Candle,
    /// ONNX Runtime (feature `onnx`), loaded at run time; see [`crate::onnx`].
    Onnx,
}

impl Engine {
    /// The engine's name, as `MCP_MEMORY_EMBED_ENGINE` spells it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Candle => "candle",
            Self::Onnx => "onnx",
        }
    }
}

/// The engine asked for: `MCP_MEMORY_EMBED_ENGINE` = `auto` (the default: ONNX Runtime when
/// its library is found and loads, else candle), `onnx` (ONNX Runtime or an error) or
/// `candle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineChoice {
    /// ONNX Runtime when available, else candle.
    #[default]
    Auto,
    /// Exactly this engine; loading fails if it cannot run.
    Only(Engine),
}

/// The variable choosing the embedding engine.
pub const ENGINE_ENV: &str = "MCP_MEMORY_EMBED_ENGINE";

impl EngineChoice {
    /// The choice `MCP_MEMORY_EMBED_ENGINE` makes (unset or empty: [`EngineChoice::Auto`]).
    ///
    /// # Errors
    /// [`EmbedError::InvalidEngine`] for any other value than `auto`, `onnx` or `candle`.
    pub fn from_env() -> Result<Self, EmbedError> {
        match std::env::var(ENGINE_ENV) {
            Ok(v) => Self::parse(&v),
            Err(_) => Ok(Self::Auto),
        }
    }

    /// Parses `auto`, `onnx` or `candle` (case-insensitive; empty is `auto`).
    ///
    /// # Errors
    /// [`EmbedError::InvalidEngine`] for anything else.
    pub fn parse(value: &str) -> Result<Self, EmbedError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Self::Auto),
            "candle" => Ok(Self::Only(Engine::Candle)),
            "onnx" => Ok(Self::Only(Engine::Onnx)),
            _ => Err(EmbedError::InvalidEngine {
                value: value.to_owned(),
            }),
        }
    }
}

/// The encoder, on one engine.
enum Encoder {
    Candle(BertModel),
    #[cfg(feature = "onnx")]
    Onnx(crate::onnx::OnnxBert),
}

impl Encoder {
    fn engine(&self) -> Engine {
        match self {
            Self::Candle(_) => Engine::Candle,
            #[cfg(feature = "onnx")]
            Self::Onnx(_) => Engine::Onnx,
        }
    }
}

/// The loaded model, shared with blocking tasks.
struct Runner {
    encoder: Encoder,
    tokenizer: Tokenizer,
    pooling: Pooling,
    max_tokens: usize,
    pad_id: u32,
    device: Device,
}

impl fmt::Debug for BertEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BertEmbedder")
            .field("model_id", &self.model_id)
            .field("dimensions", &self.dimensions)
            .field("engine", &self.runner.encoder.engine())
            .field("pooling", &self.runner.pooling)
            .field("max_tokens", &self.runner.max_tokens)
            .field("batch_size", &self.batch_size)
            .field("dir", &self.dir)
            .finish()
    }
}

impl BertEmbedder {
    /// Loads the model in `dir` under the id `model_id`.
    ///
    /// For a model in the registry ([`ModelSpec::known`]) the directory's `hidden_size` must
    /// match the registry's dimensions; pooling comes from `1_Pooling/config.json` when present,
    /// else the registry, else mean; the token limit from `sentence_bert_config.json`, else the
    /// registry, else 512, never above `max_position_embeddings`.
    ///
    /// Blocking (memory-maps and copies the weights, parses the tokenizer: about 150 ms for
    /// MiniLM); from async code use [`load_async`](Self::load_async).
    ///
    /// # Errors
    /// [`EmbedError::ModelNotFound`] if `dir` is not a directory, [`EmbedError::MissingFile`]
    /// naming the first absent required file, [`EmbedError::InvalidConfig`],
    /// [`EmbedError::InvalidTokenizer`] or [`EmbedError::InvalidWeights`] naming the bad file,
    /// [`EmbedError::ModelMismatch`] when the files are another model than `model_id`.
    pub fn load(dir: impl AsRef<Path>, model_id: &str) -> Result<Self, EmbedError> {
        Self::load_with_pooling(dir, model_id, None)
    }

    /// [`load`](Self::load), pooling with `pooling` when given instead of what the directory
    /// or the registry says.
    ///
    /// Why: the same weights may be served with another pooling than their authors'. Cloudflare
    /// Workers AI runs the BGE models (published with `cls`) with `mean` pooling unless asked
    /// otherwise, so a local stand-in for Workers AI must pool the same way to produce
    /// comparable vectors.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn load_with_pooling(
        dir: impl AsRef<Path>,
        model_id: &str,
        pooling: Option<Pooling>,
    ) -> Result<Self, EmbedError> {
        Self::load_with(dir, model_id, pooling, EngineChoice::from_env()?)
    }

    /// [`load_with_pooling`](Self::load_with_pooling) on the engine `engine` chooses rather
    /// than `MCP_MEMORY_EMBED_ENGINE`'s.
    ///
    /// # Errors
    /// As [`load`](Self::load), plus [`EmbedError::Runtime`] when
    /// [`EngineChoice::Only`]`(`[`Engine::Onnx`]`)` cannot run (no library, or the feature
    /// `onnx` is off).
    pub fn load_with(
        dir: impl AsRef<Path>,
        model_id: &str,
        pooling: Option<Pooling>,
        engine: EngineChoice,
    ) -> Result<Self, EmbedError> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(EmbedError::ModelNotFound {
                model_id: model_id.to_owned(),
                searched: vec![dir.to_path_buf()],
            });
        }
        for name in files::REQUIRED {
            let path = dir.join(name);
            if !path.is_file() {
                return Err(EmbedError::missing_file(path));
            }
        }
        let started = std::time::Instant::now();
        let known = ModelSpec::known(model_id);

        let config_path = dir.join(files::CONFIG);
        let config: BertConfig = spec::read_optional_json(&config_path)?
            .ok_or_else(|| EmbedError::missing_file(config_path.clone()))?;
        if let Some(spec) = known
            && spec.dimensions != config.hidden_size
        {
            return Err(EmbedError::ModelMismatch {
                model_id: model_id.to_owned(),
                dir: dir.to_path_buf(),
                expected: spec.dimensions,
                found: config.hidden_size,
            });
        }

        let declared = spec::read_pooling(&dir.join(files::POOLING))?;
        let pooling = pooling
            .or(declared)
            .or(known.map(|s| s.pooling))
            .unwrap_or(Pooling::Mean);
        let max_tokens = spec::read_max_seq_length(&dir.join(files::SENTENCE_BERT))?
            .or(known.map(|s| s.max_tokens))
            .unwrap_or(BERT_MAX_TOKENS)
            .min(config.max_position_embeddings);

        let tokenizer_path = dir.join(files::TOKENIZER);
        let weights_path = dir.join(files::WEIGHTS);
        let device = Device::Cpu;
        // The tokenizer (a JSON parse) and the weights (a copy, and on ONNX Runtime the
        // library's start) load on two threads: the slower of the two is the load time.
        let (tokenizer, encoder) = std::thread::scope(|scope| {
            let tokenizer = scope.spawn(|| load_tokenizer(&tokenizer_path, max_tokens, &config));
            let encoder = load_encoder(&weights_path, &config, engine, &device);
            let tokenizer = tokenizer.join().unwrap_or_else(|_| {
                Err(EmbedError::InvalidTokenizer {
                    path: tokenizer_path.clone(),
                    reason: "the tokenizer's loading thread panicked".to_owned(),
                })
            });
            (tokenizer, encoder)
        });
        let (tokenizer, pad_id) = tokenizer?;
        let encoder = encoder?;
        tracing::info!(
            model_id,
            dir = %dir.display(),
            dimensions = config.hidden_size,
            engine = encoder.engine().name(),
            ?pooling,
            max_tokens,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "embedding model loaded"
        );
        Ok(Self {
            model_id: model_id.to_owned(),
            dimensions: config.hidden_size,
            dir: dir.to_path_buf(),
            batch_size: DEFAULT_BATCH_SIZE,
            runner: Arc::new(Runner {
                encoder,
                tokenizer,
                pooling,
                max_tokens,
                pad_id,
                device,
            }),
        })
    }

    /// [`load`](Self::load) on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`load`](Self::load), plus [`EmbedError::TaskFailed`] if the task panics.
    pub async fn load_async(
        dir: impl Into<PathBuf>,
        model_id: impl Into<String>,
    ) -> Result<Self, EmbedError> {
        Self::load_async_with_pooling(dir, model_id, None).await
    }

    /// [`load_with_pooling`](Self::load_with_pooling) on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`load_async`](Self::load_async).
    pub async fn load_async_with_pooling(
        dir: impl Into<PathBuf>,
        model_id: impl Into<String>,
        pooling: Option<Pooling>,
    ) -> Result<Self, EmbedError> {
        let (dir, model_id) = (dir.into(), model_id.into());
        tokio::task::spawn_blocking(move || Self::load_with_pooling(dir, &model_id, pooling))
            .await
            .map_err(|e| EmbedError::TaskFailed {
                reason: e.to_string(),
            })?
    }

    /// Finds `model_id` with [`ModelLocation::resolve`] (`MCP_MEMORY_MODEL_DIR`, then the
    /// per-user cache) and [loads](Self::load) it. Blocking.
    ///
    /// # Errors
    /// [`EmbedError::ModelNotFound`] listing the places looked at, or any error of
    /// [`load`](Self::load).
    pub fn open(model_id: &str) -> Result<Self, EmbedError> {
        let location = ModelLocation::resolve(model_id)?;
        Self::load(&location.dir, model_id)
    }

    /// Like [`open`](Self::open), but downloads the model into the per-user cache first when it
    /// is found nowhere (feature `hub`; blocking network I/O).
    ///
    /// # Errors
    /// [`EmbedError::Download`] when the download fails, or any error of [`load`](Self::load).
    #[cfg(feature = "hub")]
    pub fn open_or_download(model_id: &str) -> Result<Self, EmbedError> {
        let location = crate::hub::resolve_or_download(model_id)?;
        Self::load(&location.dir, model_id)
    }

    /// Texts per forward pass from now on (at least 1). Smaller saves memory, larger may
    /// save a little time. Default [`DEFAULT_BATCH_SIZE`].
    #[must_use]
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// The engine running the encoder.
    pub fn engine(&self) -> Engine {
        self.runner.encoder.engine()
    }

    /// The pooling in use.
    pub fn pooling(&self) -> Pooling {
        self.runner.pooling
    }

    /// Tokens kept per text, special tokens included.
    pub fn max_tokens(&self) -> usize {
        self.runner.max_tokens
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The model's tokenizer without truncation, to count or cut texts by tokens.
    ///
    /// # Errors
    /// [`EmbedError::Tokenize`] if the tokenizer refuses to drop its truncation.
    pub fn token_counter(&self) -> Result<crate::TokenCounter, EmbedError> {
        crate::TokenCounter::from_tokenizer(self.runner.tokenizer.clone())
    }

    /// [`Embedder::embed`] on the calling thread. For benchmarks and synchronous callers;
    /// async code should call [`Embedder::embed`], which does this on the blocking pool.
    ///
    /// # Errors
    /// [`EmbedError::Tokenize`] or [`EmbedError::Inference`].
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let limit = self.char_limit();
        let cut: Vec<&str> = texts.iter().map(|t| truncate_chars(t, limit)).collect();
        self.runner.embed(&cut, self.batch_size)
    }

    fn char_limit(&self) -> usize {
        self.runner.max_tokens.saturating_mul(CHARS_PER_TOKEN_BOUND)
    }
}

#[async_trait]
impl Embedder for BertEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// Runs the model once on a short text: the engine's first call sets up its buffers
    /// and threads (ONNX Runtime's take tens of milliseconds); on ONNX Runtime also opens
    /// the batch workers, so the first batch does not wait for them.
    async fn warm_up(&self) -> Result<(), EmbedError> {
        self.embed(&["warm up".to_owned()]).await?;
        #[cfg(feature = "onnx")]
        if matches!(self.runner.encoder, Encoder::Onnx(_)) {
            let runner = Arc::clone(&self.runner);
            tokio::task::spawn_blocking(move || {
                if let Encoder::Onnx(model) = &runner.encoder {
                    model.prepare_workers();
                }
            })
            .await
            .map_err(|e| EmbedError::TaskFailed {
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// One unit vector per text, in order. An empty slice gives an empty result without
    /// touching the model; an empty string is a valid text (`[CLS] [SEP]`).
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let limit = self.char_limit();
        let cut: Vec<String> = texts
            .iter()
            .map(|t| truncate_chars(t, limit).to_owned())
            .collect();
        let runner = Arc::clone(&self.runner);
        let batch_size = self.batch_size;
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = cut.iter().map(String::as_str).collect();
            runner.embed(&refs, batch_size)
        })
        .await
        .map_err(|e| EmbedError::TaskFailed {
            reason: e.to_string(),
        })?
    }
}

impl Runner {
    /// Tokenizes all texts, then runs them shortest-first in chunks so that each chunk pads
    /// to similar lengths.
    fn embed(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenize {
                reason: e.to_string(),
            })?;
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());

        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(batch_size) {
            let batch: Vec<&tokenizers::Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
            let vectors = self
                .forward(&batch)
                .map_err(|reason| EmbedError::Inference { reason })?;
            for (&i, vector) in chunk.iter().zip(vectors) {
                out[i] = vector;
            }
        }
        Ok(out)
    }

    /// One forward pass: pad to the longest encoding, encode, pool, normalise.
    fn forward(&self, batch: &[&tokenizers::Encoding]) -> Result<Vec<Vec<f32>>, String> {
        let rows = batch.len();
        let len = batch.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows * len);
        let mut type_ids = Vec::with_capacity(rows * len);
        let mut mask = Vec::with_capacity(rows * len);
        for encoding in batch {
            let pad = len - encoding.len();
            ids.extend_from_slice(encoding.get_ids());
            ids.extend(std::iter::repeat_n(self.pad_id, pad));
            type_ids.extend_from_slice(encoding.get_type_ids());
            type_ids.extend(std::iter::repeat_n(0, pad));
            mask.extend_from_slice(encoding.get_attention_mask());
            mask.extend(std::iter::repeat_n(0, pad));
        }
        let hidden = match &self.encoder {
            Encoder::Candle(model) => {
                candle_hidden(model, &self.device, ids, type_ids, mask.clone(), rows, len)
                    .map_err(|e| e.to_string())?
            }
            #[cfg(feature = "onnx")]
            Encoder::Onnx(model) => model
                .forward(&ids, &type_ids, &mask, rows, len)
                .map_err(|e| e.to_string())?,
        };
        Ok(pool(&hidden, &mask, rows, len, self.pooling))
    }
}

/// The last hidden states on candle, `rows × len × dims` row-major.
fn candle_hidden(
    model: &BertModel,
    device: &Device,
    ids: Vec<u32>,
    type_ids: Vec<u32>,
    mask: Vec<u32>,
    rows: usize,
    len: usize,
) -> candle_core::Result<Vec<f32>> {
    let ids = Tensor::from_vec(ids, (rows, len), device)?;
    let type_ids = Tensor::from_vec(type_ids, (rows, len), device)?;
    let mask = Tensor::from_vec(mask, (rows, len), device)?;
    model
        .forward(&ids, &type_ids, Some(&mask))? // (rows, len, dims)
        .flatten_all()?
        .to_vec1::<f32>()
}

/// Pools each row's hidden states (`rows × len × dims`; `mask` 1 for a token, 0 for
/// padding) into one L2-normalised vector: the mean over the row's tokens, or its first
/// (`[CLS]`) token. The one pooling both engines share.
fn pool(hidden: &[f32], mask: &[u32], rows: usize, len: usize, pooling: Pooling) -> Vec<Vec<f32>> {
    let dims = hidden.len().checked_div(rows * len).unwrap_or(0);
    (0..rows)
        .map(|r| {
            let token = |t: usize| &hidden[(r * len + t) * dims..(r * len + t + 1) * dims];
            let mut v = match pooling {
                Pooling::Mean => {
                    let mut sum = vec![0.0f32; dims];
                    let mut count = 0.0f32;
                    for t in (0..len).filter(|&t| mask[r * len + t] != 0) {
                        for (s, x) in sum.iter_mut().zip(token(t)) {
                            *s += x;
                        }
                        count += 1.0;
                    }
                    let count = count.max(1.0);
                    sum.iter_mut().for_each(|s| *s /= count);
                    sum
                }
                Pooling::Cls => token(0).to_vec(),
            };
            crate::normalise(&mut v);
            v
        })
        .collect()
}

/// The encoder on the engine `choice` asks for (see [`EngineChoice`]).
fn load_encoder(
    weights_path: &Path,
    config: &BertConfig,
    choice: EngineChoice,
    device: &Device,
) -> Result<Encoder, EmbedError> {
    #[cfg(feature = "onnx")]
    {
        let library = crate::onnx::runtime_library();
        match (choice, library) {
            (EngineChoice::Only(Engine::Candle), _) => {}
            (EngineChoice::Only(Engine::Onnx), None) => {
                return Err(EmbedError::Runtime {
                    library: crate::onnx::cached_runtime_dir().unwrap_or_default(),
                    reason: format!(
                        "MCP_MEMORY_EMBED_ENGINE=onnx but no library: {} is unset and the cache holds none",
                        crate::onnx::RUNTIME_ENV
                    ),
                });
            }
            (_, Some(library)) => {
                let shape = crate::onnx::BertShape {
                    hidden: config.hidden_size,
                    heads: config.num_attention_heads,
                    layers: config.num_hidden_layers,
                    intermediate: config.intermediate_size,
                    layer_norm_eps: config.layer_norm_eps,
                };
                let threads = std::thread::available_parallelism().map_or(1, usize::from);
                let cache = crate::onnx::session_cache::default_root();
                match crate::onnx::OnnxBert::load(
                    &library,
                    weights_path,
                    shape,
                    threads,
                    cache.as_deref(),
                ) {
                    Ok(model) => return Ok(Encoder::Onnx(model)),
                    Err(e) if choice == EngineChoice::Auto => {
                        tracing::warn!(error = %e, "ONNX Runtime unusable; embedding on candle");
                    }
                    Err(e) => return Err(e),
                }
            }
            (EngineChoice::Auto, None) => {}
        }
    }
    #[cfg(not(feature = "onnx"))]
    if choice == EngineChoice::Only(Engine::Onnx) {
        return Err(EmbedError::Runtime {
            library: std::path::PathBuf::new(),
            reason: "this build has no ONNX Runtime support (feature `onnx`)".to_owned(),
        });
    }
    let invalid_weights = |e: candle_core::Error| EmbedError::InvalidWeights {
        path: weights_path.to_path_buf(),
        reason: e.to_string(),
    };
    // SAFETY: the file is memory-mapped only while `BertModel::load` copies the tensors
    // into CPU memory; `load` consumes `vb`, which unmaps it. Writing into the file during
    // those milliseconds would be undefined behaviour; replacing it by rename (as the `hub`
    // download does) leaves the mapped inode intact and is safe.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights_path], DType::F32, device) }
        .map_err(invalid_weights)?;
    Ok(Encoder::Candle(
        BertModel::load(vb, config).map_err(invalid_weights)?,
    ))
}

/// Reads `tokenizer.json`, sets truncation to `max_tokens` and turns padding off (batches are
/// padded by hand). Returns the tokenizer and the padding token id.
fn load_tokenizer(
    path: &Path,
    max_tokens: usize,
    config: &BertConfig,
) -> Result<(Tokenizer, u32), EmbedError> {
    let invalid = |reason: String| EmbedError::InvalidTokenizer {
        path: path.to_path_buf(),
        reason,
    };
    let mut tokenizer = Tokenizer::from_file(path).map_err(|e| invalid(e.to_string()))?;
    let pad_id = tokenizer
        .get_padding()
        .map(|p| p.pad_id)
        .or_else(|| u32::try_from(config.pad_token_id).ok())
        .unwrap_or(0);
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            ..TruncationParams::default()
        }))
        .map_err(|e| invalid(e.to_string()))?;
    Ok((tokenizer, pad_id))
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;
    use crate::DEFAULT_MODEL_ID;

    // ---- helpers -------------------------------------------------------------------------

    /// The real all-MiniLM-L6-v2, loaded once for the whole file. Fails (never skips) when
    /// absent, saying how to get it.
    fn minilm() -> &'static BertEmbedder {
        static MODEL: OnceLock<BertEmbedder> = OnceLock::new();
        MODEL.get_or_init(|| {
            BertEmbedder::open(DEFAULT_MODEL_ID).unwrap_or_else(|e| {
                panic!(
                    "these tests need the real {DEFAULT_MODEL_ID} model: run `cargo xtask fetch-model` \
                     (or set MCP_MEMORY_MODEL_DIR to its directory). Error: {e}"
                )
            })
        })
    }

    /// Model tests share the CPU; the timing test takes this exclusively so that it measures
    /// the model, not its neighbours.
    static TIMING_GATE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

    /// [`minilm`] for a test that embeds, holding the gate shared.
    async fn shared_minilm() -> (
        tokio::sync::RwLockReadGuard<'static, ()>,
        &'static BertEmbedder,
    ) {
        (TIMING_GATE.read().await, minilm())
    }

    async fn embed_one(embedder: &BertEmbedder, text: &str) -> Vec<f32> {
        embedder
            .embed(&[text.to_owned()])
            .await
            .unwrap()
            .pop()
            .unwrap()
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn norm(v: &[f32]) -> f32 {
        v.iter().map(|x| x * x).sum::<f32>().sqrt()
    }

    const CAT: &str = "The cat sits on the mat.";
    const KITTEN: &str = "A kitten is resting on a rug.";
    const REVENUE: &str = "Quarterly revenue grew by twelve percent.";

    /// A directory with a valid MiniLM `config.json` and the given extra files.
    fn model_dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        dir
    }

    const MINILM_CONFIG: &str = r#"{
        "architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 384,
        "initializer_range": 0.02, "intermediate_size": 1536, "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
        "num_hidden_layers": 6, "pad_token_id": 0, "position_embedding_type": "absolute",
        "type_vocab_size": 2, "vocab_size": 30522
    }"#;

    /// A copy of the real model directory (links where possible) with a replaced file.
    fn minilm_variant(replace: &[(&str, &str)]) -> tempfile::TempDir {
        let src = minilm().dir().to_path_buf();
        let dir = tempfile::tempdir().unwrap();
        for name in files::REQUIRED.iter().chain(files::OPTIONAL.iter()) {
            let from = src.join(name);
            if from.is_file() {
                let to = dir.path().join(name);
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                if std::fs::hard_link(&from, &to).is_err() {
                    std::fs::copy(&from, &to).unwrap();
                }
            }
        }
        for (name, content) in replace {
            let to = dir.path().join(name);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            let _ = std::fs::remove_file(&to);
            std::fs::write(to, content).unwrap();
        }
        dir
    }

    // ---- pooling (shared by both engines) -----------------------------------------------

    #[test]
    fn mean_pooling_ignores_padding_and_cls_takes_the_first_token() {
        // Two rows of 3 tokens, 2 dims; the second row has one padding token whose
        // (huge) hidden state must not count.
        let hidden = [
            3.0, 0.0, 1.0, 0.0, 2.0, 0.0, // row 0: mean (2, 0) → (1, 0)
            0.0, 1.0, 0.0, 3.0, 1e6, 1e6, // row 1: mean of 2 tokens (0, 2) → (0, 1)
        ];
        let mask = [1, 1, 1, 1, 1, 0];
        let mean = pool(&hidden, &mask, 2, 3, Pooling::Mean);
        assert_eq!(mean, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
        let cls = pool(&hidden, &mask, 2, 3, Pooling::Cls);
        assert_eq!(cls, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
        // A zero vector stays finite (no division by zero).
        let zero = pool(&[0.0, 0.0], &[1], 1, 1, Pooling::Mean);
        assert!(zero[0].iter().all(|x| x.is_finite()));
    }

    // ---- the real model ------------------------------------------------------------------

    #[test]
    fn minilm_reports_its_registry_shape() {
        let m = minilm();
        assert_eq!(
            (m.model_id(), m.dimensions(), m.pooling(), m.max_tokens()),
            (DEFAULT_MODEL_ID, 384, Pooling::Mean, 256)
        );
    }

    #[tokio::test]
    async fn a_pooling_override_beats_the_directory_and_the_registry() {
        let (_gate, m) = shared_minilm().await;
        let cls = BertEmbedder::load_async_with_pooling(
            m.dir().to_path_buf(),
            DEFAULT_MODEL_ID,
            Some(Pooling::Cls),
        )
        .await
        .unwrap();
        assert_eq!(cls.pooling(), Pooling::Cls);
        let (mean, first) = (embed_one(m, CAT).await, embed_one(&cls, CAT).await);
        assert!(cosine(&mean, &first) < 0.99, "cls and mean pooling differ");
        let counter = cls.token_counter().unwrap();
        // The model truncates at 256 tokens; its counter does not.
        assert_eq!(counter.count(&"word ".repeat(300)).unwrap(), 302);
    }

    #[tokio::test]
    async fn vectors_have_384_unit_length_components() {
        let (_gate, m) = shared_minilm().await;
        let texts = [CAT, KITTEN, REVENUE, ""].map(str::to_owned);
        let vectors = m.embed(&texts).await.unwrap();
        assert!(
            vectors
                .iter()
                .all(|v| v.len() == 384 && (norm(v) - 1.0).abs() < 1e-4),
            "norms: {:?}",
            vectors.iter().map(|v| norm(v)).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn paraphrases_are_close_and_unrelated_texts_are_not() {
        let (_gate, m) = shared_minilm().await;
        let (cat, kitten, revenue) = (
            embed_one(m, CAT).await,
            embed_one(m, KITTEN).await,
            embed_one(m, REVENUE).await,
        );
        let (close, far) = (cosine(&cat, &kitten), cosine(&cat, &revenue));
        // Upstream sentence-transformers gives 0.641 and -0.016 for these pairs.
        assert!(
            close > 0.5 && (close - 0.641).abs() < 0.02,
            "cat~kitten = {close}"
        );
        assert!(far < 0.2, "cat~revenue = {far}");
    }

    #[tokio::test]
    async fn a_batch_gives_the_same_vectors_as_one_by_one() {
        // Batch size 3 so that several padded chunks of mixed lengths are exercised.
        let (_gate, m) = shared_minilm().await;
        let m = m.clone().with_batch_size(3);
        let texts: Vec<String> = [
            CAT,
            "Short.",
            REVENUE,
            "A considerably longer sentence, with several clauses, which pads every shorter neighbour in its chunk.",
            KITTEN,
            "",
            "Zwei Katzen schlafen auf dem Sofa.",
        ]
        .map(str::to_owned)
        .to_vec();
        let batch = m.embed(&texts).await.unwrap();
        for (text, from_batch) in texts.iter().zip(&batch) {
            let alone = embed_one(&m, text).await;
            let diff = alone
                .iter()
                .zip(from_batch)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-5, "{text:?}: max difference {diff}");
        }
    }

    #[tokio::test]
    async fn empty_input_gives_empty_output() {
        let (_gate, m) = shared_minilm().await;
        assert!(m.embed(&[]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_megabyte_text_costs_one_forward_pass_at_the_token_limit() {
        // Speed is a benchmark's job (examples/latency.rs); here: a megabyte of text is cut
        // at the token limit before the model runs, so it embeds exactly like its first few
        // thousand characters and its cost does not grow with its size.
        let (_gate, m) = shared_minilm().await;
        let text = "Notes about the quarterly planning meeting. ".repeat((1 << 20) / 44 + 1);
        assert!(text.len() > 1_000_000);
        let prefix: String = text.chars().take(8_000).collect();
        let whole = embed_one(m, &text).await;
        let head = embed_one(m, &prefix).await;
        assert_eq!(whole.len(), 384);
        let cosine: f32 = whole.iter().zip(&head).map(|(a, b)| a * b).sum();
        assert!(cosine > 0.9999, "cosine {cosine}");
    }

    #[tokio::test]
    async fn unicode_and_emoji_texts_embed_to_finite_unit_vectors() {
        let texts = [
            "Café ☕ mit Crème brûlée",
            "日本語のテキストも埋め込める",
            "🎉🚀🔥",
            "emoji 👩‍👩‍👧‍👦 family and a flag 🇩🇪",
        ]
        .map(str::to_owned);
        let (_gate, m) = shared_minilm().await;
        let vectors = m.embed(&texts).await.unwrap();
        assert!(
            vectors
                .iter()
                .all(|v| v.iter().all(|x| x.is_finite()) && (norm(v) - 1.0).abs() < 1e-4)
        );
    }

    #[tokio::test]
    async fn text_beyond_the_token_limit_embeds_like_its_prefix() {
        // Everything past 256 tokens is dropped, so appending more text changes nothing.
        let (_gate, m) = shared_minilm().await;
        let base = "alpha beta gamma delta ".repeat(100); // 400 tokens
        let longer = format!("{base} and a completely different ending about finance");
        let (a, b) = (embed_one(m, &base).await, embed_one(m, &longer).await);
        assert!((cosine(&a, &b) - 1.0).abs() < 1e-5);
    }

    #[tokio::test]
    async fn cls_pooling_from_the_pooling_config_is_used() {
        // MiniLM's files as a stand-in for a CLS-pooled model (the BGE path); not BGE output.
        let dir = minilm_variant(&[(
            files::POOLING,
            r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#,
        )]);
        let cls = BertEmbedder::load(dir.path(), "test/minilm-cls-stand-in").unwrap();
        assert_eq!(cls.pooling(), Pooling::Cls);
        let (_gate, mean) = shared_minilm().await;
        let (a, b) = (embed_one(&cls, CAT).await, embed_one(mean, CAT).await);
        assert!((norm(&a) - 1.0).abs() < 1e-4 && cosine(&a, &b) < 0.99);
    }

    #[test]
    fn unknown_model_takes_dimensions_from_config_and_mean_pooling_by_default() {
        let _gate = TIMING_GATE.blocking_read();
        let dir = minilm_variant(&[]);
        std::fs::remove_file(dir.path().join(files::POOLING)).unwrap();
        std::fs::remove_file(dir.path().join(files::SENTENCE_BERT)).unwrap();
        let m = BertEmbedder::load(dir.path(), "acme/unknown").unwrap();
        assert_eq!(
            (m.dimensions(), m.pooling(), m.max_tokens()),
            (384, Pooling::Mean, BERT_MAX_TOKENS)
        );
    }

    #[test]
    fn registry_pooling_applies_without_a_pooling_config() {
        let _gate = TIMING_GATE.blocking_read();
        let dir = minilm_variant(&[]);
        std::fs::remove_file(dir.path().join(files::POOLING)).unwrap();
        let m = BertEmbedder::load(dir.path(), "BAAI/bge-small-en-v1.5").unwrap();
        assert_eq!(m.pooling(), Pooling::Cls);
    }

    // ---- errors --------------------------------------------------------------------------

    #[test]
    fn nonexistent_dir_says_which_model_and_files_are_missing() {
        let dir = tempfile::tempdir().unwrap();
        let err = BertEmbedder::load(dir.path().join("absent"), DEFAULT_MODEL_ID).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, EmbedError::ModelNotFound { .. })
                && err.is_missing_model()
                && msg.contains("model.safetensors"),
            "{msg}"
        );
    }

    #[test]
    fn missing_weights_are_named() {
        let dir = model_dir_with(&[(files::CONFIG, MINILM_CONFIG), (files::TOKENIZER, "{}")]);
        match BertEmbedder::load(dir.path(), DEFAULT_MODEL_ID) {
            Err(err @ EmbedError::MissingFile { .. }) => {
                assert!(err.to_string().contains("model.safetensors"), "{err}");
            }
            other => panic!("expected MissingFile, got {other:?}"),
        }
    }

    #[test]
    fn missing_tokenizer_is_named() {
        let dir = model_dir_with(&[(files::CONFIG, MINILM_CONFIG), (files::WEIGHTS, "")]);
        match BertEmbedder::load(dir.path(), DEFAULT_MODEL_ID) {
            Err(EmbedError::MissingFile { path, .. }) => {
                assert_eq!(path, dir.path().join("tokenizer.json"));
            }
            other => panic!("expected MissingFile, got {other:?}"),
        }
    }

    #[test]
    fn invalid_config_is_named() {
        let dir = model_dir_with(&[
            (files::CONFIG, "{ not json"),
            (files::TOKENIZER, "{}"),
            (files::WEIGHTS, ""),
        ]);
        match BertEmbedder::load(dir.path(), DEFAULT_MODEL_ID) {
            Err(err @ EmbedError::InvalidConfig { .. }) => {
                assert!(err.to_string().contains("config.json"), "{err}");
            }
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn invalid_tokenizer_is_named() {
        let dir = model_dir_with(&[
            (files::CONFIG, MINILM_CONFIG),
            (files::TOKENIZER, "{\"truncated"),
            (files::WEIGHTS, ""),
        ]);
        match BertEmbedder::load(dir.path(), DEFAULT_MODEL_ID) {
            Err(err @ EmbedError::InvalidTokenizer { .. }) => {
                assert!(err.to_string().contains("tokenizer.json"), "{err}");
            }
            other => panic!("expected InvalidTokenizer, got {other:?}"),
        }
    }

    #[test]
    fn invalid_weights_are_named() {
        let _gate = TIMING_GATE.blocking_read();
        let dir = minilm_variant(&[(files::WEIGHTS, "not a safetensors file")]);
        match BertEmbedder::load(dir.path(), DEFAULT_MODEL_ID) {
            Err(err @ EmbedError::InvalidWeights { .. }) => {
                assert!(err.to_string().contains("model.safetensors"), "{err}");
            }
            other => panic!("expected InvalidWeights, got {other:?}"),
        }
    }

    #[test]
    fn a_384_d_directory_is_refused_as_a_768_d_model() {
        let dir = model_dir_with(&[
            (files::CONFIG, MINILM_CONFIG),
            (files::TOKENIZER, "{}"),
            (files::WEIGHTS, ""),
        ]);
        match BertEmbedder::load(dir.path(), "BAAI/bge-base-en-v1.5") {
            Err(EmbedError::ModelMismatch {
                expected, found, ..
            }) => assert_eq!((expected, found), (768, 384)),
            other => panic!("expected ModelMismatch, got {other:?}"),
        }
    }

    // ---- helpers under test --------------------------------------------------------------

    #[test]
    fn truncation_cuts_at_a_character_boundary() {
        assert_eq!(truncate_chars("héllo wörld", 7), "héllo w");
        assert_eq!(truncate_chars("🎉🎉🎉", 2), "🎉🎉");
        assert_eq!(truncate_chars("short", 100), "short");
    }
}
