//! [`StorageError`]: what a backend can fail with, each variant saying what to do.

use memory_core::{ContentHash, ValidationError};
use thiserror::Error;

/// A boxed error from a backend's own machinery (SQLite, HTTP, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of [`MemoryStorage`](crate::MemoryStorage) methods.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StorageError {
    /// No live memory has this hash.
    #[error("memory {hash} not found (it may have been deleted)")]
    NotFound {
        /// The hash asked for.
        hash: ContentHash,
    },
    /// Input refused by the core model's rules.
    #[error("invalid input: {0}")]
    Validation(#[from] ValidationError),
    /// Input refused by a storage rule (a limit, a missing selector, ...).
    #[error("invalid input: {field}: {reason}")]
    InvalidInput {
        /// The offending field (`limit`, `query`, `selector`, ...).
        field: &'static str,
        /// What rule it broke and the allowed range.
        reason: String,
    },
    /// The embedding model could not produce vectors.
    #[error("embedding failed: {message}")]
    Embedding {
        /// What went wrong and how to fix it.
        message: String,
        /// The embedder's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The data was written with another embedding model or dimension than the configured one.
    #[error(
        "embedding model mismatch: the store was built with {recorded} but {configured} is configured; \
         configure {recorded} again, or re-embed into a new store (export, then import with the new model)"
    )]
    ModelMismatch {
        /// Model id and dims recorded with the data, e.g. `all-MiniLM-L6-v2 (384 dims)`.
        recorded: String,
        /// Model id and dims configured now.
        configured: String,
    },
    /// The backend cannot be reached or is temporarily refusing work; retrying later may help.
    #[error("{backend} unavailable: {message}")]
    Unavailable {
        /// Which backend or service.
        backend: String,
        /// What happened and what to check.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other backend failure, with the backend's error as source.
    #[error("{backend} error: {message}")]
    Backend {
        /// Which backend.
        backend: String,
        /// What happened.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

impl StorageError {
    /// An [`InvalidInput`](Self::InvalidInput) error.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// A [`Backend`](Self::Backend) error wrapping `source`.
    pub fn backend(
        backend: impl Into<String>,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::Backend {
            backend: backend.into(),
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// True for errors where the same call may succeed later (backend unavailable).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Result alias for storage calls.
pub type StorageResult<T> = Result<T, StorageError>;
