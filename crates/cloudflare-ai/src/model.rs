//! [`EmbeddingModel`] (a validated Workers AI model id plus the dimensions its vectors
//! have) and [`Pooling`].

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::AiError;

/// A Workers AI text-embedding model: its id (`@cf/<vendor>/<name>`) and the number of
/// dimensions of the vectors it returns.
///
/// The four models this crate knows are associated constants; [`EmbeddingModel::default`]
/// is [`EmbeddingModel::BGE_BASE_EN_V1_5`]. Any other model needs its dimensions
/// ([`EmbeddingModel::new`]). The id is validated on construction, so it is always safe
/// to put into a request path literally.
///
/// ```
/// use cloudflare_ai::EmbeddingModel;
///
/// assert_eq!(EmbeddingModel::default().dimensions(), 768);
/// let small: EmbeddingModel = "@cf/baai/bge-small-en-v1.5".parse()?;
/// assert_eq!(small, EmbeddingModel::BGE_SMALL_EN_V1_5);
/// let custom = EmbeddingModel::new("@cf/acme/embed-2", 512)?;
/// assert_eq!(custom.id(), "@cf/acme/embed-2");
/// assert!(EmbeddingModel::new("@cf/../x", 512).is_err());
/// # Ok::<(), cloudflare_ai::AiError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmbeddingModel {
    id: Cow<'static, str>,
    dimensions: usize,
}

impl EmbeddingModel {
    /// `@cf/baai/bge-small-en-v1.5`: 384 dimensions.
    ///
    /// See <https://developers.cloudflare.com/workers-ai/models/bge-small-en-v1.5/>.
    pub const BGE_SMALL_EN_V1_5: Self = Self::known_const("@cf/baai/bge-small-en-v1.5", 384);
    /// `@cf/baai/bge-base-en-v1.5`: 768 dimensions; the default.
    ///
    /// See <https://developers.cloudflare.com/workers-ai/models/bge-base-en-v1.5/>.
    pub const BGE_BASE_EN_V1_5: Self = Self::known_const("@cf/baai/bge-base-en-v1.5", 768);
    /// `@cf/baai/bge-large-en-v1.5`: 1024 dimensions (rate limit 1500 requests per minute,
    /// half the 3000 of the other text-embedding models).
    ///
    /// See <https://developers.cloudflare.com/workers-ai/models/bge-large-en-v1.5/>.
    pub const BGE_LARGE_EN_V1_5: Self = Self::known_const("@cf/baai/bge-large-en-v1.5", 1024);
    /// `@cf/google/embeddinggemma-300m`: 768 dimensions.
    ///
    /// See <https://developers.cloudflare.com/workers-ai/models/embeddinggemma-300m/>.
    pub const EMBEDDINGGEMMA_300M: Self = Self::known_const("@cf/google/embeddinggemma-300m", 768);

    /// Every model this crate knows the dimensions of.
    pub const KNOWN: [Self; 4] = [
        Self::BGE_SMALL_EN_V1_5,
        Self::BGE_BASE_EN_V1_5,
        Self::BGE_LARGE_EN_V1_5,
        Self::EMBEDDINGGEMMA_300M,
    ];

    const fn known_const(id: &'static str, dimensions: usize) -> Self {
        Self {
            id: Cow::Borrowed(id),
            dimensions,
        }
    }

    /// A model by id with the dimensions of its vectors; for a model this crate does not
    /// know, or to state a known one's dimensions explicitly.
    ///
    /// # Errors
    ///
    /// - [`AiError::InvalidModelId`] if `id` is not `@cf/<vendor>/<name>` with only
    ///   `A-Z a-z 0-9 . _ -` in vendor and name (and neither is `.` or `..`);
    /// - [`AiError::InvalidDimensions`] if `dimensions` is 0;
    /// - [`AiError::KnownModelDimensions`] if `id` is a known model with other dimensions.
    pub fn new(id: impl Into<String>, dimensions: usize) -> Result<Self, AiError> {
        let id = id.into();
        validate_model_id(&id)?;
        if dimensions == 0 {
            return Err(AiError::InvalidDimensions { model: id });
        }
        if let Some(known) = Self::known(&id)
            && known.dimensions != dimensions
        {
            return Err(AiError::KnownModelDimensions {
                model: id,
                expected: known.dimensions,
                actual: dimensions,
            });
        }
        Ok(Self {
            id: Cow::Owned(id),
            dimensions,
        })
    }

    /// The known model with this id, if any.
    #[must_use]
    pub fn known(id: &str) -> Option<Self> {
        Self::KNOWN.into_iter().find(|m| m.id == id)
    }

    /// The model id, e.g. `@cf/baai/bge-base-en-v1.5`.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The number of values in each vector the model returns.
    #[must_use]
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }
}

impl Default for EmbeddingModel {
    /// [`EmbeddingModel::BGE_BASE_EN_V1_5`].
    fn default() -> Self {
        Self::BGE_BASE_EN_V1_5
    }
}

impl fmt::Display for EmbeddingModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl FromStr for EmbeddingModel {
    type Err = AiError;

    /// A known model by id.
    ///
    /// # Errors
    ///
    /// [`AiError::InvalidModelId`] for a malformed id, [`AiError::UnknownModel`] for a
    /// well-formed id this crate does not know (use [`EmbeddingModel::new`]).
    fn from_str(id: &str) -> Result<Self, AiError> {
        validate_model_id(id)?;
        Self::known(id).ok_or_else(|| AiError::UnknownModel {
            model: id.to_owned(),
        })
    }
}

/// How a model pools token embeddings into one vector (`pooling` in the request).
///
/// Cloudflare's default, used when the request omits it, is [`Pooling::Mean`]. `cls`
/// gives more accurate vectors on larger inputs, but vectors made with `cls` and `mean`
/// are not comparable. See
/// <https://developers.cloudflare.com/workers-ai/models/bge-base-en-v1.5/>.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean of the token embeddings (the default).
    #[default]
    Mean,
    /// The `[CLS]` token's embedding.
    Cls,
}

impl fmt::Display for Pooling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mean => "mean",
            Self::Cls => "cls",
        })
    }
}

/// Checks that `id` is `@cf/<vendor>/<name>` with only `[A-Za-z0-9._-]` in vendor and
/// name, neither empty nor a dot segment (`.`, `..`), so that it can go into a path
/// literally without changing the path's meaning.
pub(crate) fn validate_model_id(id: &str) -> Result<(), AiError> {
    let invalid = |reason: &'static str| AiError::InvalidModelId {
        model: id.to_owned(),
        reason,
    };
    let rest = id
        .strip_prefix("@cf/")
        .ok_or_else(|| invalid("it must start with \"@cf/\""))?;
    let (vendor, name) = rest
        .split_once('/')
        .ok_or_else(|| invalid("it must have the form @cf/<vendor>/<name>"))?;
    for (part, what) in [(vendor, "vendor"), (name, "name")] {
        if part.is_empty() {
            return Err(invalid(if what == "vendor" {
                "the vendor is empty"
            } else {
                "the name is empty"
            }));
        }
        if !part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(invalid(
                "vendor and name may contain only A-Z, a-z, 0-9, '.', '_' and '-' (one '/' between them)",
            ));
        }
        if part == "." || part == ".." {
            return Err(invalid("vendor and name may not be \".\" or \"..\""));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_models_and_default() {
        assert_eq!(EmbeddingModel::default(), EmbeddingModel::BGE_BASE_EN_V1_5);
        let known = EmbeddingModel::KNOWN;
        let dims: Vec<(&str, usize)> = known.iter().map(|m| (m.id(), m.dimensions())).collect();
        assert_eq!(
            dims,
            [
                ("@cf/baai/bge-small-en-v1.5", 384),
                ("@cf/baai/bge-base-en-v1.5", 768),
                ("@cf/baai/bge-large-en-v1.5", 1024),
                ("@cf/google/embeddinggemma-300m", 768),
            ]
        );
        for model in EmbeddingModel::KNOWN {
            validate_model_id(model.id()).unwrap();
            assert_eq!(model.id().parse::<EmbeddingModel>().unwrap(), model);
            assert_eq!(
                EmbeddingModel::new(model.id(), model.dimensions()).unwrap(),
                model
            );
            assert_eq!(model.to_string(), model.id());
        }
    }

    #[test]
    fn unknown_models_need_dimensions() {
        let custom = EmbeddingModel::new("@cf/acme/text-embed_2.0", 256).unwrap();
        assert_eq!(custom.dimensions(), 256);
        assert_eq!(EmbeddingModel::known("@cf/acme/text-embed_2.0"), None);
        let err = "@cf/acme/text-embed_2.0"
            .parse::<EmbeddingModel>()
            .unwrap_err();
        assert!(matches!(err, AiError::UnknownModel { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("@cf/acme/text-embed_2.0") && text.contains("EmbeddingModel::new"),
            "{text}"
        );
    }

    #[test]
    fn zero_and_conflicting_dimensions_are_refused() {
        let err = EmbeddingModel::new("@cf/acme/x", 0).unwrap_err();
        assert!(matches!(err, AiError::InvalidDimensions { .. }), "{err:?}");
        assert!(err.to_string().contains("@cf/acme/x"), "{err}");
        let err = EmbeddingModel::new("@cf/baai/bge-base-en-v1.5", 384).unwrap_err();
        assert!(
            matches!(
                err,
                AiError::KnownModelDimensions {
                    expected: 768,
                    actual: 384,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("768") && text.contains("384"), "{text}");
    }

    #[test]
    fn malformed_ids_are_refused() {
        for id in [
            "",
            "bge-base-en-v1.5",
            "@cf/bge-base-en-v1.5",
            "@hf/baai/bge-base-en-v1.5",
            "@cf//bge",
            "@cf/baai/",
            "@cf/baai/bge/extra",
            "@cf/baai/bge base",
            "@cf/baai/bge?x=1",
            "@cf/baai/bge#frag",
            "@cf/baai/bge%2F",
            "@cf/../bge",
            "@cf/baai/..",
            "@cf/./x",
            "@cf/baai/bgé",
            "/@cf/baai/bge",
        ] {
            let err = EmbeddingModel::new(id, 768).unwrap_err();
            assert!(
                matches!(err, AiError::InvalidModelId { .. }),
                "{id}: {err:?}"
            );
            let text = err.to_string();
            assert!(text.contains("@cf/<vendor>/<name>"), "{text}");
            assert!(id.parse::<EmbeddingModel>().is_err(), "{id}");
        }
    }

    #[test]
    fn pooling_serialises_lowercase() {
        assert_eq!(serde_json::to_string(&Pooling::Mean).unwrap(), "\"mean\"");
        assert_eq!(serde_json::to_string(&Pooling::Cls).unwrap(), "\"cls\"");
        assert_eq!(
            serde_json::from_str::<Pooling>("\"cls\"").unwrap(),
            Pooling::Cls
        );
        assert!(serde_json::from_str::<Pooling>("\"max\"").is_err());
        assert_eq!(Pooling::default(), Pooling::Mean);
        assert_eq!(Pooling::Cls.to_string(), "cls");
    }

    proptest! {
        #[test]
        fn well_formed_ids_are_accepted_and_stay_literal_in_the_path(
            vendor in "[A-Za-z0-9._-]{1,20}",
            name in "[A-Za-z0-9._-]{1,40}",
        ) {
            prop_assume!(vendor != "." && vendor != ".." && name != "." && name != "..");
            let id = format!("@cf/{vendor}/{name}");
            let model = EmbeddingModel::new(id.clone(), 16).unwrap();
            let path = format!("/accounts/abc/ai/run/{}", model.id());
            let parsed: http::uri::PathAndQuery = path.parse().unwrap();
            prop_assert_eq!(parsed.path(), path.as_str());
            prop_assert!(parsed.query().is_none());
        }

        #[test]
        fn validation_matches_the_grammar(id in "(@cf/)?[A-Za-z0-9._/ %?#é@-]{0,30}") {
            let expected = id.strip_prefix("@cf/").and_then(|rest| rest.split_once('/')).is_some_and(|(v, n)| {
                [v, n].iter().all(|p| {
                    !p.is_empty()
                        && *p != "."
                        && *p != ".."
                        && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                })
            });
            prop_assert_eq!(validate_model_id(&id).is_ok(), expected, "{}", id);
        }
    }
}
