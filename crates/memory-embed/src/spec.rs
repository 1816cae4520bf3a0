//! Known models: id → dimensions, pooling, token limit, cache directory name.
//!
//! ```
//! use memory_embed::{ModelSpec, Pooling, DEFAULT_MODEL_ID};
//!
//! let spec = ModelSpec::known(DEFAULT_MODEL_ID).unwrap();
//! assert_eq!((spec.dimensions, spec.pooling, spec.max_tokens), (384, Pooling::Mean, 256));
//! assert_eq!(ModelSpec::dir_name_for("BAAI/bge-base-en-v1.5"), "bge-base-en-v1.5");
//! ```
//!
//! Models not listed here still load from a directory: their dimensions come from
//! `config.json` (`hidden_size`), their pooling from `1_Pooling/config.json` (mean when absent).

#[cfg(feature = "bert")]
use std::path::Path;

#[cfg(feature = "bert")]
use serde::Deserialize;

#[cfg(feature = "bert")]
use crate::error::EmbedError;

/// File names inside a model directory.
#[cfg(feature = "bert")]
pub(crate) mod files {
    /// Model hyper-parameters (BERT `config.json`).
    pub(crate) const CONFIG: &str = "config.json";
    /// The tokenizer, in the `tokenizers` JSON format.
    pub(crate) const TOKENIZER: &str = "tokenizer.json";
    /// The weights.
    pub(crate) const WEIGHTS: &str = "model.safetensors";
    /// sentence-transformers pooling configuration (optional).
    pub(crate) const POOLING: &str = "1_Pooling/config.json";
    /// sentence-transformers settings, for `max_seq_length` (optional).
    pub(crate) const SENTENCE_BERT: &str = "sentence_bert_config.json";
    /// Files a model directory must hold.
    pub(crate) const REQUIRED: [&str; 3] = [CONFIG, TOKENIZER, WEIGHTS];
    /// Files read when present (by `hub`'s download and the tests).
    #[cfg(any(test, feature = "hub"))]
    pub(crate) const OPTIONAL: [&str; 2] = [POOLING, SENTENCE_BERT];
}

/// The default local model, also upstream MCP Memory Service's default, so vectors are comparable.
pub const DEFAULT_MODEL_ID: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// BERT's position-embedding limit: the token limit of models that state none.
#[cfg(feature = "bert")]
pub(crate) const BERT_MAX_TOKENS: usize = 512;

/// Prefix of Cloudflare Workers AI model names (`@cf/baai/bge-base-en-v1.5`), whose remainder
/// is the Hub id in lower case.
pub const CLOUDFLARE_PREFIX: &str = "@cf/";

/// How token vectors become one text vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Pooling {
    /// Average of the token vectors, padding excluded (sentence-transformers' `mean_tokens`).
    Mean,
    /// The `[CLS]` token's vector (the BGE family).
    Cls,
}

/// A model this crate knows by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    /// Hub id, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    pub id: &'static str,
    /// Vector length.
    pub dimensions: usize,
    /// Pooling used when the model directory has no `1_Pooling/config.json` (the authors'
    /// choice). A caller may pool otherwise with the same weights
    /// (`BertEmbedder::load_with_pooling`, `LazyEmbedder::with_pooling`): Cloudflare Workers
    /// AI runs the BGE models with `mean` by default, so a local equivalent of Workers AI
    /// loads them with mean pooling.
    pub pooling: Pooling,
    /// Tokens kept per text (longer texts are truncated), as trained.
    pub max_tokens: usize,
    /// Directory name under the per-user model cache.
    pub dir_name: &'static str,
}

/// The registry. Sources: each model's `sentence_bert_config.json` (`max_seq_length`),
/// `1_Pooling/config.json` and `config.json` (`hidden_size`) as published by its authors.
pub(crate) const KNOWN_MODELS: &[ModelSpec] = &[
    ModelSpec {
        id: DEFAULT_MODEL_ID,
        dimensions: 384,
        pooling: Pooling::Mean,
        max_tokens: 256,
        dir_name: "all-MiniLM-L6-v2",
    },
    ModelSpec {
        id: "BAAI/bge-small-en-v1.5",
        dimensions: 384,
        pooling: Pooling::Cls,
        max_tokens: 512,
        dir_name: "bge-small-en-v1.5",
    },
    ModelSpec {
        id: "BAAI/bge-base-en-v1.5",
        dimensions: 768,
        pooling: Pooling::Cls,
        max_tokens: 512,
        dir_name: "bge-base-en-v1.5",
    },
    ModelSpec {
        id: "BAAI/bge-large-en-v1.5",
        dimensions: 1024,
        pooling: Pooling::Cls,
        max_tokens: 512,
        dir_name: "bge-large-en-v1.5",
    },
];

impl ModelSpec {
    /// The registry entry for `model_id`: matched by full id, by Cloudflare Workers AI's name
    /// for it (`@cf/baai/bge-base-en-v1.5`), or by its directory name (`all-MiniLM-L6-v2`),
    /// ignoring ASCII case.
    pub fn known(model_id: &str) -> Option<&'static ModelSpec> {
        let model_id = model_id.strip_prefix(CLOUDFLARE_PREFIX).unwrap_or(model_id);
        KNOWN_MODELS.iter().find(|spec| {
            spec.id.eq_ignore_ascii_case(model_id) || spec.dir_name.eq_ignore_ascii_case(model_id)
        })
    }

    /// Directory name of a model under the per-user cache: the registry's, else the id's
    /// last `/`-separated part (`org/name` → `name`).
    pub fn dir_name_for(model_id: &str) -> &str {
        match Self::known(model_id) {
            Some(spec) => spec.dir_name,
            None => model_id.rsplit('/').next().unwrap_or(model_id),
        }
    }
}

/// `1_Pooling/config.json` of a sentence-transformers model.
#[cfg(feature = "bert")]
#[derive(Debug, Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

/// `sentence_bert_config.json` of a sentence-transformers model.
#[cfg(feature = "bert")]
#[derive(Debug, Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

/// Reads a JSON file, or `None` when it does not exist.
#[cfg(feature = "bert")]
pub(crate) fn read_optional_json<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, EmbedError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(EmbedError::InvalidConfig {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| EmbedError::InvalidConfig {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Pooling declared by `1_Pooling/config.json`, if the file exists.
#[cfg(feature = "bert")]
pub(crate) fn read_pooling(path: &Path) -> Result<Option<Pooling>, EmbedError> {
    let Some(config) = read_optional_json::<PoolingConfig>(path)? else {
        return Ok(None);
    };
    let unsupported = |mode: &str| EmbedError::InvalidConfig {
        path: path.to_path_buf(),
        reason: format!("pooling mode `{mode}` is not supported (supported: mean, cls)"),
    };
    if config.pooling_mode_max_tokens {
        return Err(unsupported("max_tokens"));
    }
    if config.pooling_mode_mean_sqrt_len_tokens {
        return Err(unsupported("mean_sqrt_len_tokens"));
    }
    match (
        config.pooling_mode_cls_token,
        config.pooling_mode_mean_tokens,
    ) {
        (true, false) => Ok(Some(Pooling::Cls)),
        (false, true) => Ok(Some(Pooling::Mean)),
        (true, true) => Err(unsupported("cls_token + mean_tokens")),
        (false, false) => Err(EmbedError::InvalidConfig {
            path: path.to_path_buf(),
            reason: "no supported pooling mode is enabled (supported: mean, cls)".to_owned(),
        }),
    }
}

/// `max_seq_length` declared by `sentence_bert_config.json`, if the file exists and states one.
#[cfg(feature = "bert")]
pub(crate) fn read_max_seq_length(path: &Path) -> Result<Option<usize>, EmbedError> {
    Ok(read_optional_json::<SentenceBertConfig>(path)?.and_then(|c| c.max_seq_length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_knows_minilm_and_the_bge_family() {
        let dims: Vec<_> = [
            DEFAULT_MODEL_ID,
            "BAAI/bge-small-en-v1.5",
            "BAAI/bge-base-en-v1.5",
            "BAAI/bge-large-en-v1.5",
        ]
        .iter()
        .map(|id| ModelSpec::known(id).map(|s| (s.dimensions, s.pooling)))
        .collect();
        assert_eq!(
            dims,
            vec![
                Some((384, Pooling::Mean)),
                Some((384, Pooling::Cls)),
                Some((768, Pooling::Cls)),
                Some((1024, Pooling::Cls)),
            ]
        );
    }

    #[test]
    fn lookup_accepts_the_bare_directory_name_in_any_case() {
        assert_eq!(
            ModelSpec::known("ALL-minilm-l6-v2").map(|s| s.id),
            Some(DEFAULT_MODEL_ID)
        );
    }

    #[test]
    fn cloudflare_names_map_to_the_bge_entries() {
        assert_eq!(
            ModelSpec::known("@cf/baai/bge-base-en-v1.5").map(|s| (s.id, s.dimensions)),
            Some(("BAAI/bge-base-en-v1.5", 768))
        );
    }

    #[test]
    fn unknown_model_dir_name_is_the_last_id_segment() {
        assert_eq!(
            ModelSpec::dir_name_for("acme/tiny-embedder"),
            "tiny-embedder"
        );
        assert_eq!(ModelSpec::dir_name_for("plain"), "plain");
    }

    #[cfg(feature = "bert")]
    #[test]
    fn pooling_config_selects_cls_or_mean() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"word_embedding_dimension": 384, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#,
        )
        .unwrap();
        assert_eq!(read_pooling(&path).unwrap(), Some(Pooling::Cls));
    }

    #[cfg(feature = "bert")]
    #[test]
    fn absent_pooling_config_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_pooling(&dir.path().join("nope.json")).unwrap(), None);
    }

    #[cfg(feature = "bert")]
    #[test]
    fn max_pooling_is_rejected_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"pooling_mode_max_tokens": true}"#).unwrap();
        let err = read_pooling(&path).unwrap_err().to_string();
        assert!(
            err.contains("max_tokens") && err.contains("config.json"),
            "{err}"
        );
    }
}
