//! [`EmbedError`]: everything that can go wrong while finding, loading or running a model.
//!
//! Every message says what failed: the model, the file, the directories looked in. How to get
//! a model (a command, a variable) is the binary's to add: it knows its own commands.

use std::path::PathBuf;

use thiserror::Error;

/// What a model directory holds: shared by several messages.
pub(crate) const MODEL_FILES: &str =
    "a model directory holds config.json, tokenizer.json and model.safetensors";

/// Errors of embedding.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// No model directory was found in any of the places looked at.
    #[error(
        "model `{model_id}` not found; looked in: {}; {MODEL_FILES}",
        display_paths(.searched)
    )]
    ModelNotFound {
        /// The model id asked for.
        model_id: String,
        /// Every directory looked at, in order.
        searched: Vec<PathBuf>,
    },

    /// The model directory exists but lacks a file the model needs.
    #[error("model file missing: {}: {hint}", .path.display())]
    MissingFile {
        /// The path looked for, e.g. `.../all-MiniLM-L6-v2/model.safetensors`.
        path: PathBuf,
        /// How to get the model.
        hint: String,
    },

    /// A JSON configuration file (`config.json`, `1_Pooling/config.json`,
    /// `sentence_bert_config.json`) is unreadable, malformed or unsupported.
    #[error(
        "invalid model configuration {}: {reason}; replace it with the model's original file",
        .path.display()
    )]
    InvalidConfig {
        /// The file that was read.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },

    /// `tokenizer.json` is unreadable or malformed.
    #[error(
        "invalid tokenizer {}: {reason}; replace it with the model's original tokenizer.json",
        .path.display()
    )]
    InvalidTokenizer {
        /// The file that was read.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },

    /// `model.safetensors` cannot be mapped, or its tensors do not match `config.json`.
    #[error(
        "invalid model weights {}: {reason}; the weights must be a BERT-family model matching \
         config.json in the same directory: download the model again",
        .path.display()
    )]
    InvalidWeights {
        /// The weights file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },

    /// `MCP_MEMORY_EMBED_ENGINE` names no engine.
    #[error("MCP_MEMORY_EMBED_ENGINE={value:?} is not an engine; use auto, onnx or candle")]
    InvalidEngine {
        /// The value given.
        value: String,
    },

    /// The ONNX Runtime library cannot be loaded, or refuses the model's graph.
    #[error(
        "ONNX Runtime at {} is unusable: {reason}; set MCP_MEMORY_ONNXRUNTIME to a working \
         libonnxruntime (`cargo xtask fetch-model` installs one), or MCP_MEMORY_EMBED_ENGINE=candle \
         to embed without it",
        .library.display()
    )]
    Runtime {
        /// The library that was loaded.
        library: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// The directory holds a different model than the id claims
    /// (e.g. 384-d files loaded as `BAAI/bge-base-en-v1.5`, which is 768-d).
    #[error(
        "the model in {} has {found} dimensions but `{model_id}` has {expected}; \
         point to a directory holding `{model_id}`, or load it under its own model id",
        .dir.display()
    )]
    ModelMismatch {
        /// The model id asked for.
        model_id: String,
        /// The directory that was loaded.
        dir: PathBuf,
        /// Dimensions the model id is known to have.
        expected: usize,
        /// Dimensions the directory's `config.json` declares.
        found: usize,
    },

    /// The tokenizer rejected a text.
    #[error(
        "tokenization failed: {reason}; check the text is valid and the tokenizer.json is the model's own"
    )]
    Tokenize {
        /// The tokenizer's message.
        reason: String,
    },

    /// The forward pass or pooling failed.
    #[error("inference failed: {reason}; the model files may be corrupt: download the model again")]
    Inference {
        /// The tensor library's message.
        reason: String,
    },

    /// An inner embedder returned a different number of vectors than texts.
    #[error(
        "embedder `{model_id}` returned {got} vectors for {expected} texts; \
         that embedder breaks the `Embedder` contract and must be fixed"
    )]
    WrongVectorCount {
        /// The misbehaving embedder's model id.
        model_id: String,
        /// Number of texts sent.
        expected: usize,
        /// Number of vectors returned.
        got: usize,
    },

    /// The blocking task that ran the model panicked or was cancelled.
    #[error(
        "the embedding task did not finish: {reason}; if the runtime is shutting down this is \
         expected, otherwise it is a bug: report it with the log"
    )]
    TaskFailed {
        /// The runtime's message.
        reason: String,
    },

    /// Reading or writing a model file failed (e.g. while storing a download).
    #[error("I/O error on {}: {source}; check the path's permissions and free disk space", .path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// Downloading a model from the Hugging Face Hub failed (feature `hub` only).
    #[error(
        "downloading `{model_id}` failed: {reason}; check the network and the model id, \
         or put the files in place by hand"
    )]
    Download {
        /// The model id being downloaded.
        model_id: String,
        /// What failed.
        reason: String,
    },

    /// Errors of embedders outside this crate (e.g. a remote embedding API).
    #[error("embedding failed: {0}")]
    Other(String),
}

impl EmbedError {
    /// A [`EmbedError::MissingFile`] for `path`.
    #[cfg(feature = "bert")]
    pub(crate) fn missing_file(path: PathBuf) -> Self {
        Self::MissingFile {
            path,
            hint: MODEL_FILES.to_owned(),
        }
    }

    /// Whether the model's files are absent or damaged, so that getting the model again
    /// (the binary says how) is the fix.
    #[must_use]
    pub fn is_missing_model(&self) -> bool {
        matches!(
            self,
            Self::ModelNotFound { .. }
                | Self::MissingFile { .. }
                | Self::InvalidConfig { .. }
                | Self::InvalidTokenizer { .. }
                | Self::InvalidWeights { .. }
        )
    }

    /// A [`EmbedError::Io`] for `path`.
    #[cfg(feature = "hub")]
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `a, b, c` for a message.
fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nowhere (no per-user cache directory on this system and no directory given)"
            .to_owned();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
