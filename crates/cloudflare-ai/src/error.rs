//! [`AiError`]: everything that can go wrong embedding texts, with what to do about it.

use std::fmt;

use cloudflare_http::CloudflareError;

use crate::MAX_TEXTS_PER_CALL;

/// Why an embedding call failed. Validation errors are raised before anything is sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AiError {
    /// The model id is not of the form `@cf/<vendor>/<name>`; nothing was sent.
    #[error(
        "invalid Workers AI model id {model:?}: {reason}; use an id of the form \
         @cf/<vendor>/<name>, e.g. \"@cf/baai/bge-base-en-v1.5\""
    )]
    InvalidModelId {
        /// The id given.
        model: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A model was given 0 dimensions.
    #[error("the embedding model {model} was given 0 dimensions; give the length of its vectors")]
    InvalidDimensions {
        /// The model id.
        model: String,
    },

    /// A known model was given dimensions other than its own.
    #[error(
        "the embedding model {model} returns {expected}-dimensional vectors, not {actual}; \
         use {expected} (or a model with {actual} dimensions)"
    )]
    KnownModelDimensions {
        /// The model id.
        model: String,
        /// Its real dimensions.
        expected: usize,
        /// The dimensions given.
        actual: usize,
    },

    /// A well-formed model id this crate does not know the dimensions of.
    #[error(
        "unknown embedding model {model}; give its dimensions with EmbeddingModel::new(id, dimensions)"
    )]
    UnknownModel {
        /// The model id.
        model: String,
    },

    /// More texts than one call may carry; nothing was sent.
    #[error(
        "{actual} texts exceed the Workers AI limit of {max} texts per embedding call; \
         split the batch into chunks of at most {max} (embed() does this for you)"
    )]
    TooManyTexts {
        /// The limit, [`MAX_TEXTS_PER_CALL`].
        max: usize,
        /// The number of texts given.
        actual: usize,
    },

    /// A text is empty or only whitespace; nothing was sent.
    #[error(
        "text {index} is empty or only whitespace, which Workers AI cannot embed; \
         remove it or give it content"
    )]
    EmptyText {
        /// Its 0-based index in the input.
        index: usize,
    },

    /// Cloudflare answered, but the embeddings do not have the shape the request implies:
    /// one row per text, each of the model's dimensions, every value finite.
    #[error(
        "Workers AI returned embeddings of the wrong shape from {model}: expected {expected}, \
         got {got}; check the model's dimensions (EmbeddingModel::new) and, if they are right, \
         retry or report it"
    )]
    Shape {
        /// The model id.
        model: String,
        /// What the request implies.
        expected: ExpectedShape,
        /// The first thing found to differ.
        got: ShapeMismatch,
    },

    /// A call of a multi-batch [`crate::WorkersAiApi::embed`] failed; the batches before it
    /// succeeded but their results are discarded.
    #[error("{batch} failed: {source}")]
    Batch {
        /// Which batch, and which texts it held.
        batch: BatchPosition,
        /// Why it failed.
        #[source]
        source: Box<AiError>,
    },

    /// The Cloudflare API call failed (HTTP, envelope, auth, rate limit, breaker).
    #[error(transparent)]
    Cloudflare(#[from] CloudflareError),
}

impl AiError {
    /// The error beneath any [`AiError::Batch`] wrappers.
    #[must_use]
    pub fn root(&self) -> &Self {
        match self {
            Self::Batch { source, .. } => source.root(),
            other => other,
        }
    }

    /// Whether sending the same texts again may succeed: a retryable Cloudflare error
    /// (see [`CloudflareError::is_retryable`]). Validation and shape errors are not.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self.root() {
            Self::Cloudflare(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// Wraps `self` as failing in `batch`.
    pub(crate) fn in_batch(self, batch: BatchPosition) -> Self {
        Self::Batch {
            batch,
            source: Box::new(self),
        }
    }
}

/// The shape a response must have: `rows` vectors of `dimensions` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedShape {
    /// The number of texts sent.
    pub rows: usize,
    /// The model's dimensions.
    pub dimensions: usize,
}

impl fmt::Display for ExpectedShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shape [{}, {}] ({} vectors of {} finite values)",
            self.rows, self.dimensions, self.rows, self.dimensions
        )
    }
}

/// How a response differs from its [`ExpectedShape`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ShapeMismatch {
    /// The response's `shape` field is not `[rows, dimensions]`.
    DeclaredShape(Vec<f64>),
    /// `data` has this many rows.
    Rows(usize),
    /// Row `row` (0-based) has `len` values.
    RowLength {
        /// The row.
        row: usize,
        /// Its length.
        len: usize,
    },
    /// The value at `row`, `column` (0-based) is not finite (it overflowed `f32`).
    NonFinite {
        /// The row.
        row: usize,
        /// The column.
        column: usize,
    },
}

impl fmt::Display for ShapeMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DeclaredShape(shape) => {
                f.write_str("shape [")?;
                for (i, n) in shape.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{n}")?;
                }
                f.write_str("]")
            }
            Self::Rows(rows) => write!(f, "{rows} vectors"),
            Self::RowLength { row, len } => write!(f, "vector {row} with {len} values"),
            Self::NonFinite { row, column } => {
                write!(f, "a non-finite value in vector {row} at position {column}")
            }
        }
    }
}

/// Where a batch sits in a multi-batch [`crate::WorkersAiApi::embed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPosition {
    /// 1-based batch number.
    pub number: usize,
    /// Number of batches.
    pub of: usize,
    /// 0-based index of the batch's first text in the input.
    pub first_text: usize,
    /// Number of texts in the batch.
    pub len: usize,
}

impl fmt::Display for BatchPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "embedding batch {} of {} (texts {}..{})",
            self.number,
            self.of,
            self.first_text,
            self.first_text + self.len
        )
    }
}

/// [`AiError::TooManyTexts`] for `actual` texts.
pub(crate) fn too_many(actual: usize) -> AiError {
    AiError::TooManyTexts {
        max: MAX_TEXTS_PER_CALL,
        actual,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn messages_name_limit_values_and_remedy() {
        let text = too_many(250).to_string();
        assert!(
            text.contains("250") && text.contains("100") && text.contains("split the batch"),
            "{text}"
        );
        let text = AiError::EmptyText { index: 7 }.to_string();
        assert!(
            text.contains("text 7") && text.contains("remove it"),
            "{text}"
        );
        let err = AiError::Shape {
            model: "@cf/baai/bge-base-en-v1.5".into(),
            expected: ExpectedShape {
                rows: 2,
                dimensions: 768,
            },
            got: ShapeMismatch::DeclaredShape(vec![1.0, 768.0]),
        };
        let text = err.to_string();
        assert!(
            text.contains("expected shape [2, 768]") && text.contains("got shape [1, 768]"),
            "{text}"
        );
        for (got, want) in [
            (ShapeMismatch::Rows(3), "got 3 vectors"),
            (
                ShapeMismatch::RowLength { row: 1, len: 5 },
                "got vector 1 with 5 values",
            ),
            (
                ShapeMismatch::NonFinite { row: 0, column: 9 },
                "vector 0 at position 9",
            ),
        ] {
            let err = AiError::Shape {
                model: "m".into(),
                expected: ExpectedShape {
                    rows: 2,
                    dimensions: 8,
                },
                got,
            };
            assert!(err.to_string().contains(want), "{err}");
        }
    }

    #[test]
    fn batch_wrapper_names_the_batch_and_keeps_the_root() {
        let err = AiError::EmptyText { index: 1 }.in_batch(BatchPosition {
            number: 2,
            of: 3,
            first_text: 100,
            len: 100,
        });
        let text = err.to_string();
        assert!(
            text.starts_with("embedding batch 2 of 3 (texts 100..200) failed: text 1"),
            "{text}"
        );
        assert!(matches!(err.root(), AiError::EmptyText { index: 1 }));
        assert!(std::error::Error::source(&err).is_some());
        assert!(!err.is_retryable());
    }

    #[test]
    fn retryable_follows_the_cloudflare_error() {
        let busy = AiError::from(CloudflareError::Api {
            status: StatusCode::SERVICE_UNAVAILABLE,
            errors: vec![],
            retry_after: None,
        });
        assert!(busy.is_retryable());
        let bad = AiError::from(CloudflareError::Api {
            status: StatusCode::BAD_REQUEST,
            errors: vec![],
            retry_after: None,
        });
        assert!(!bad.is_retryable());
        let wrapped = busy.in_batch(BatchPosition {
            number: 1,
            of: 2,
            first_text: 0,
            len: 100,
        });
        assert!(wrapped.is_retryable());
        assert!(!too_many(101).is_retryable());
    }
}
