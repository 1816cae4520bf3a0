//! Where a model's files are: [`ModelLocation::resolve`] and [`ModelLocation::resolve_in`].
//!
//! This crate reads no environment: a directory configured by the user (the `mcp-memory`
//! binary's `MCP_MEMORY_MODEL_DIR` or `embedding.model_dir`) is passed in by the caller.
//! Looked at in order:
//! 1. the directory the caller gives, if any ([`ModelLocation::resolve_in`]);
//! 2. the per-user cache, `<cache dir>/mcp-memory/models/<dir name>/` (see
//!    [`ModelSpec::dir_name_for`]), where `cargo xtask fetch-model` (and the `hub` feature) put
//!    models. `<cache dir>` is the platform's user cache directory (`$XDG_CACHE_HOME` or
//!    `~/.cache` on Linux, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows).
//!
//! ```
//! use memory_embed::{EmbedError, ModelLocation};
//!
//! // With no directory given and no cache, the error lists every place looked at.
//! let err = ModelLocation::resolve_in("acme/absent-model", None, None).unwrap_err();
//! assert!(matches!(err, EmbedError::ModelNotFound { .. }));
//! assert!(err.is_missing_model());
//! assert!(err.to_string().contains("config.json, tokenizer.json and model.safetensors"));
//! ```

use std::path::{Path, PathBuf};

use crate::error::EmbedError;
use crate::spec::ModelSpec;

/// Path of the per-user model cache below the platform cache directory.
pub(crate) const CACHE_SUBDIR: &str = "mcp-memory/models";

/// Where a model directory was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationSource {
    /// The directory the caller gave ([`ModelLocation::resolve_in`]).
    Given,
    /// From the per-user cache.
    UserCache,
}

/// A model directory that exists (its files are checked when loading).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelLocation {
    /// The directory holding the model files.
    pub dir: PathBuf,
    /// Which rule found it.
    pub source: LocationSource,
}

impl ModelLocation {
    /// Finds `model_id`'s directory in the per-user cache (a configured directory is the
    /// caller's to pass to [`resolve_in`](Self::resolve_in)).
    ///
    /// # Errors
    /// [`EmbedError::ModelNotFound`] listing the directory looked at.
    pub fn resolve(model_id: &str) -> Result<Self, EmbedError> {
        Self::resolve_in(model_id, None, dirs::cache_dir().as_deref())
    }

    /// Finds `model_id`'s directory: `dir` when given, then the per-user cache below
    /// `cache_dir` (the platform's, or a test's). A given `dir` that is not a directory is
    /// passed over (and listed in the error if nothing else is found).
    ///
    /// # Errors
    /// [`EmbedError::ModelNotFound`] listing every directory looked at.
    pub fn resolve_in(
        model_id: &str,
        dir: Option<&Path>,
        cache_dir: Option<&Path>,
    ) -> Result<Self, EmbedError> {
        let candidates = dir
            .map(|dir| (dir.to_path_buf(), LocationSource::Given))
            .into_iter()
            .chain(
                cache_dir
                    .map(|cache| (model_cache_dir(cache, model_id), LocationSource::UserCache)),
            );
        let mut searched = Vec::new();
        for (dir, source) in candidates {
            if dir.is_dir() {
                tracing::debug!(model_id, dir = %dir.display(), ?source, "model directory found");
                return Ok(Self { dir, source });
            }
            searched.push(dir);
        }
        Err(EmbedError::ModelNotFound {
            model_id: model_id.to_owned(),
            searched,
        })
    }

    /// The per-user cache directory for `model_id` (whether or not it exists), or `None` when
    /// the platform has no user cache directory.
    pub fn user_cache_dir(model_id: &str) -> Option<PathBuf> {
        dirs::cache_dir().map(|cache| model_cache_dir(&cache, model_id))
    }
}

/// `<cache>/mcp-memory/models/<dir name>`.
fn model_cache_dir(cache: &Path, model_id: &str) -> PathBuf {
    cache
        .join(CACHE_SUBDIR)
        .join(ModelSpec::dir_name_for(model_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_dir_wins_over_the_cache() {
        let env = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(cache.path().join("mcp-memory/models/all-MiniLM-L6-v2")).unwrap();
        let found = ModelLocation::resolve_in(
            crate::DEFAULT_MODEL_ID,
            Some(env.path()),
            Some(cache.path()),
        )
        .unwrap();
        assert_eq!(found.source, LocationSource::Given);
    }

    #[test]
    fn cache_dir_is_used_when_env_dir_is_absent() {
        let cache = tempfile::tempdir().unwrap();
        let expected = cache.path().join("mcp-memory/models/bge-base-en-v1.5");
        std::fs::create_dir_all(&expected).unwrap();
        let found = ModelLocation::resolve_in(
            "BAAI/bge-base-en-v1.5",
            Some(&cache.path().join("not-there")),
            Some(cache.path()),
        )
        .unwrap();
        assert_eq!(
            found,
            ModelLocation {
                dir: expected,
                source: LocationSource::UserCache
            }
        );
    }

    #[test]
    fn not_found_lists_every_place_and_says_what_to_do() {
        let cache = tempfile::tempdir().unwrap();
        let env_dir = cache.path().join("from-env");
        let err =
            ModelLocation::resolve_in(crate::DEFAULT_MODEL_ID, Some(&env_dir), Some(cache.path()))
                .unwrap_err()
                .to_string();
        for needle in [
            env_dir.display().to_string(),
            cache
                .path()
                .join("mcp-memory/models/all-MiniLM-L6-v2")
                .display()
                .to_string(),
            "config.json, tokenizer.json and model.safetensors".to_owned(),
        ] {
            assert!(err.contains(&needle), "{needle:?} not in: {err}");
        }
    }
}
