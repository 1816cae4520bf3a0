//! Text embeddings.
//!
//! PLACEHOLDER while the local model is written; the [`Embedder`] trait is fixed.

use async_trait::async_trait;
use thiserror::Error;

/// Errors of embedding.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// The model directory lacks a file.
    #[error("model file missing: {path}: {hint}")]
    MissingFile {
        /// The path looked for.
        path: std::path::PathBuf,
        /// How to get the model.
        hint: String,
    },
    /// Anything else.
    #[error("embedding failed: {0}")]
    Other(String),
}

/// Turns texts into vectors.
#[async_trait]
pub trait Embedder: Send + Sync + std::fmt::Debug {
    /// Model id, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    fn model_id(&self) -> &str;
    /// Vector length.
    fn dimensions(&self) -> usize;
    /// One vector per text, in order, each L2-normalised.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}
