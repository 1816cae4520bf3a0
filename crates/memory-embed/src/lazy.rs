//! [`LazyEmbedder`]: a known model that loads on first use.
//!
//! Commands that never embed (list, stats, delete) then never pay for loading the weights,
//! and still work when the model files are absent; a server can answer its client before the
//! model is in memory.
//!
//! ```no_run
//! use memory_embed::{DEFAULT_MODEL_ID, Embedder, LazyEmbedder};
//! # async fn demo() -> Result<(), memory_embed::EmbedError> {
//! let embedder = LazyEmbedder::new(DEFAULT_MODEL_ID, None)?; // nothing loaded yet
//! assert_eq!(embedder.dimensions(), 384);
//! let v = embedder.embed(&["hello".to_owned()]).await?; // loads now, once
//! # Ok(()) }
//! ```

use std::path::PathBuf;

use async_trait::async_trait;
use tokio::sync::OnceCell;

#[cfg(not(feature = "hub"))]
use crate::ModelLocation;
use crate::{BertEmbedder, EmbedError, Embedder, ModelSpec, Pooling};

/// A [`BertEmbedder`] for a model of the registry, loaded when first asked to embed.
///
/// `model_id` (the registry's canonical id, whichever alias was given) and `dimensions` come
/// from the registry ([`ModelSpec`]) without touching the
/// files; loading checks that the files really are that model. A failed load is returned to
/// the caller and tried again on the next call (the files may have been fetched meanwhile).
#[derive(Debug)]
pub struct LazyEmbedder {
    spec: &'static ModelSpec,
    dir: Option<PathBuf>,
    pooling: Option<Pooling>,
    model: OnceCell<BertEmbedder>,
}

impl LazyEmbedder {
    /// A lazily loaded `model_id`, from `dir` when given (the caller's configured model
    /// directory), else from [`ModelLocation::resolve`](crate::ModelLocation::resolve) (the
    /// per-user cache) at load time; with the `hub`
    /// feature a model found nowhere is downloaded into the per-user cache first.
    ///
    /// # Errors
    /// [`EmbedError::ModelNotFound`] when `model_id` is not in the registry (its dimensions
    /// would be unknown until loaded; use [`BertEmbedder::load`] for such models).
    pub fn new(model_id: &str, dir: Option<PathBuf>) -> Result<Self, EmbedError> {
        let spec = ModelSpec::known(model_id).ok_or_else(|| {
            EmbedError::Other(format!(
                "model `{model_id}` is not in the registry of known models ({}); \
             load it eagerly with a model directory instead",
                crate::spec::KNOWN_MODELS
                    .iter()
                    .map(|m| m.id)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        Ok(Self {
            spec,
            dir,
            pooling: None,
            model: OnceCell::new(),
        })
    }

    /// Pools with `pooling` instead of what the model's files or the registry say (see
    /// [`BertEmbedder::load_with_pooling`]: Workers AI runs BGE with `mean`).
    #[must_use]
    pub fn with_pooling(mut self, pooling: Pooling) -> Self {
        self.pooling = Some(pooling);
        self
    }

    /// The pooling forced by [`with_pooling`](Self::with_pooling), if any.
    pub fn pooling_override(&self) -> Option<Pooling> {
        self.pooling
    }

    /// The model directory given to [`new`](Self::new), if any.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }

    /// Whether the weights are in memory yet.
    pub fn is_loaded(&self) -> bool {
        self.model.initialized()
    }

    /// Loads the model now (idempotent), e.g. in the background after a server starts.
    ///
    /// # Errors
    /// Any error of [`ModelLocation::resolve`](crate::ModelLocation::resolve) or [`BertEmbedder::load_async`].
    pub async fn load(&self) -> Result<&BertEmbedder, EmbedError> {
        self.model
            .get_or_try_init(|| async {
                let dir = match &self.dir {
                    Some(d) => d.clone(),
                    None => locate(self.spec.id).await?,
                };
                BertEmbedder::load_async_with_pooling(dir, self.spec.id, self.pooling).await
            })
            .await
    }
}

/// Where the files of `model_id` are: [`ModelLocation::resolve`](crate::ModelLocation::resolve); with the `hub` feature, a
/// model found nowhere is first downloaded into the per-user cache (off the async runtime).
async fn locate(model_id: &'static str) -> Result<PathBuf, EmbedError> {
    #[cfg(feature = "hub")]
    {
        tokio::task::spawn_blocking(move || crate::hub::resolve_or_download(model_id))
            .await
            .map_err(|e| EmbedError::TaskFailed {
                reason: e.to_string(),
            })?
            .map(|location| location.dir)
    }
    #[cfg(not(feature = "hub"))]
    {
        ModelLocation::resolve(model_id).map(|location| location.dir)
    }
}

#[async_trait]
impl Embedder for LazyEmbedder {
    fn model_id(&self) -> &str {
        self.spec.id
    }

    fn dimensions(&self) -> usize {
        self.spec.dimensions
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.load().await?.embed(texts).await
    }

    /// Loads the model (the same load a first `embed` would wait for, shared with it) and
    /// runs it once.
    async fn warm_up(&self) -> Result<(), EmbedError> {
        self.load().await?.warm_up().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_are_known_without_loading() {
        let e = LazyEmbedder::new("sentence-transformers/all-MiniLM-L6-v2", None).unwrap();
        assert_eq!(e.dimensions(), 384);
        assert!(!e.is_loaded());
    }

    #[test]
    fn unknown_model_is_refused_naming_known_ones() {
        let err = LazyEmbedder::new("acme/unknown", None).unwrap_err();
        assert!(err.to_string().contains("all-MiniLM-L6-v2"), "{err}");
    }

    #[tokio::test]
    async fn missing_directory_fails_at_first_embed_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = LazyEmbedder::new(
            "sentence-transformers/all-MiniLM-L6-v2",
            Some(dir.path().join("absent")),
        )
        .unwrap();
        let err = e.embed(&["x".to_owned()]).await.unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
        assert!(!e.is_loaded());
    }
}
