//! [`WorkersAiEmbedder`]: the [`memory_embed::Embedder`] over Cloudflare Workers AI, and the
//! local fallback policy (`fallback_embedder`, feature `local-embedding`).
//!
//! # The embedder
//!
//! [`WorkersAiEmbedder`] adapts any [`WorkersAiApi`] (in production a
//! [`cloudflare_ai::WorkersAiClient`], whose HTTP stack retries, rate-limits and guards every
//! call) to the [`Embedder`] contract:
//! - its model id is the Workers AI id (`@cf/baai/bge-base-en-v1.5`), its dimensions the
//!   model's, so the store records and compares exactly what produced its vectors;
//! - texts go out in calls of at most 100 (Workers AI's limit; the API does the
//!   batching), and each text is first cut to what the model reads: for the BGE English
//!   models, 512 tokens, counted with a local tokenizer of the same vocabulary when one is
//!   given ([`WorkersAiEmbedder::with_token_counter`], feature `local-embedding`), else by a
//!   character budget that can never exceed them (at most 510 characters, fewer for scripts
//!   whose characters become several tokens; the proof is in `cut`'s docs); for other
//!   models, 2,000 characters. A longer text would be refused (or silently cut) by Workers
//!   AI; the cut keeps its beginning, which is what the model would have read anyway;
//! - every vector is L2-normalised (the contract: a dot product is a cosine);
//! - errors become [`EmbedError`]s that say what to do: `EmbedError` has no variant for a
//!   remote service, so API failures map to [`EmbedError::Other`] (the closest, documented
//!   as "errors of embedders outside this crate") and a wrong number of vectors to
//!   [`EmbedError::WrongVectorCount`]. Blank texts, which Workers AI refuses, are reported
//!   (naming their index) instead of being embedded; the stores refuse empty content and
//!   queries before embedding, so this does not arise through them.
//!
//! # Local fallback policy
//!
//! The fallback runs a BERT model on this machine, so it exists only with the crate's
//! `local-embedding` feature (which compiles `memory-embed`'s `bert`: candle and tokenizers);
//! without it this module is the Workers AI embedder alone and nothing here can embed
//! locally.
//!
//! A local model may stand in for Workers AI only when its vectors are the same vectors:
//! the same weights AND the same pooling. Vectors of another model (even one with as many
//! dimensions, such as all-MiniLM-L6-v2 for `@cf/baai/bge-small-en-v1.5`) would sit in the
//! same index without being comparable, and searches would silently return noise.
//! `fallback_embedder` therefore returns a local embedder only when
//! 1. the Workers AI model is one whose weights the local registry knows under the same
//!    name (`@cf/baai/bge-small-en-v1.5` ↔ `BAAI/bge-small-en-v1.5`, likewise base and
//!    large; `@cf/google/embeddinggemma-300m` has no local equivalent),
//! 2. the local model pools as Workers AI is asked to: the BGE models' authors pool with
//!    `cls`, but Workers AI defaults to `mean` (which upstream uses, and the backend sends),
//!    so the local model is loaded with that pooling
//!    ([`LazyEmbedder::with_pooling`]) whatever its files say, and
//! 3. the weights are in the per-user model cache (`cargo xtask fetch-model` puts them
//!    there, and the `hub` download of `memory-embed` writes the same layout), or in a
//!    directory given explicitly (`fallback_embedder_in`; `CLOUDFLARE_EMBEDDING_FALLBACK_DIR`
//!    through `connect`). `MCP_MEMORY_MODEL_DIR` is deliberately not consulted: it usually
//!    names the embedded backend's model, which may be a different model of the same size.
//!
//! Otherwise it returns an error saying which condition failed. The fallback reports the
//! Workers AI model id, so a store built on it accepts the same index and D1 records.
//!
//! When Workers AI fails, `WorkersAiWithFallback` hands the texts to that local model and
//! counts why (`fallback`'s docs list the failures that fall back and those that do not);
//! `compare_embeddings` measures, on a real account, whether the two sides agree.

use std::fmt;
#[cfg(feature = "local-embedding")]
use std::path::PathBuf;
use std::sync::Arc;

#[cfg(feature = "local-embedding")]
mod compare;
mod cut;
#[cfg(feature = "local-embedding")]
mod fallback;

#[cfg(feature = "local-embedding")]
pub use compare::{CompareError, EmbeddingComparison, PROBES, ProbeComparison, compare_embeddings};
#[cfg(feature = "local-embedding")]
pub use fallback::{FallbackReason, REPORT_KEY, WorkersAiWithFallback};

use async_trait::async_trait;
use cloudflare_ai::{AiError, EmbeddingModel, ShapeMismatch, WorkersAiApi};
use memory_embed::{EmbedError, Embedder};
#[cfg(feature = "local-embedding")]
use memory_embed::{LazyEmbedder, ModelLocation, ModelSpec};

/// Characters of each text sent to a Workers AI model whose tokens this crate cannot count
/// (see the [module docs](self)).
pub(crate) const DEFAULT_MAX_CHARS: usize = 2_000;

/// An [`Embedder`] over Cloudflare Workers AI (see the [module docs](self)).
#[derive(Clone)]
pub struct WorkersAiEmbedder {
    api: Arc<dyn WorkersAiApi>,
    model: EmbeddingModel,
    /// A cut by characters, applied first: given explicitly, or the default for models of
    /// an unknown vocabulary.
    max_chars: Option<usize>,
    /// The cut to the input tokens of a WordPiece model.
    wordpiece: Option<cut::WordPieceCut>,
}

impl fmt::Debug for WorkersAiEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkersAiEmbedder")
            .field("model", &self.model.id())
            .field("dimensions", &self.model.dimensions())
            .field("max_chars", &self.max_chars)
            .field("cut_by_tokens", &self.cuts_by_tokens())
            .finish_non_exhaustive()
    }
}

impl WorkersAiEmbedder {
    /// An embedder for `api`'s model. A BGE English model's texts are cut to its 512 input
    /// tokens by a character budget that cannot exceed them
    /// ([`with_token_counter`](Self::with_token_counter) cuts by counted tokens instead);
    /// other models' at 2,000 characters.
    #[must_use]
    pub fn new(api: Arc<dyn WorkersAiApi>) -> Self {
        let model = api.model().clone();
        let wordpiece = cut::uses_uncased_wordpiece(&model)
            .then(|| cut::WordPieceCut::bound(cut::BGE_MAX_INPUT_TOKENS));
        let max_chars = wordpiece.is_none().then_some(DEFAULT_MAX_CHARS);
        Self {
            api,
            model,
            max_chars,
            wordpiece,
        }
    }

    /// Also cuts each text at `max_chars` characters (at least 1), before any token cut.
    #[must_use]
    pub fn with_max_chars(mut self, max_chars: usize) -> Self {
        self.max_chars = Some(max_chars.max(1));
        self
    }

    /// Cuts a BGE English model's texts to its 512 input tokens as counted by `counter`, a
    /// tokenizer of BERT's uncased WordPiece vocabulary (the BGE model's own, or
    /// all-MiniLM-L6-v2's: the same vocabulary). Ignored for other models, whose tokens it
    /// would miscount. Feature `local-embedding`.
    #[cfg(feature = "local-embedding")]
    #[must_use]
    pub fn with_token_counter(mut self, counter: memory_embed::TokenCounter) -> Self {
        if self.wordpiece.is_some() {
            self.wordpiece = Some(cut::WordPieceCut::tokens(
                counter,
                cut::BGE_MAX_INPUT_TOKENS,
            ));
        }
        self
    }

    /// The Workers AI model.
    #[must_use]
    pub fn model(&self) -> &EmbeddingModel {
        &self.model
    }

    /// The characters kept of each text before any token cut, if limited.
    #[must_use]
    pub fn max_chars(&self) -> Option<usize> {
        self.max_chars
    }

    /// Whether texts are cut by counted tokens (with a tokenizer) rather than by a
    /// character budget.
    #[must_use]
    pub fn cuts_by_tokens(&self) -> bool {
        self.wordpiece
            .as_ref()
            .is_some_and(cut::WordPieceCut::by_tokens)
    }

    /// `text` as sent: cut to what the model reads.
    fn cut<'a>(&self, text: &'a str) -> &'a str {
        let text = match self.max_chars {
            Some(max) => memory_embed::truncate_chars(text, max),
            None => text,
        };
        match &self.wordpiece {
            Some(wordpiece) => wordpiece.cut(text),
            None => text,
        }
    }

    /// [`Embedder::embed`] keeping Workers AI's own error, for callers that act on it (the
    /// local fallback decides by it whether to take over).
    pub(crate) async fn embed_raw(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, RawError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let cut: Vec<String> = texts.iter().map(|t| self.cut(t).to_owned()).collect();
        let vectors = self
            .api
            .embed(&cut)
            .await
            .map_err(RawError::Api)?
            .into_vectors();
        let id = self.model.id();
        if vectors.len() != texts.len() {
            return Err(RawError::Embed(EmbedError::WrongVectorCount {
                model_id: id.to_owned(),
                expected: texts.len(),
                got: vectors.len(),
            }));
        }
        let dims = self.model.dimensions();
        vectors
            .into_iter()
            .enumerate()
            .map(|(i, mut v)| {
                if v.len() != dims || v.iter().any(|x| !x.is_finite()) {
                    return Err(RawError::Embed(EmbedError::Other(format!(
                        "Workers AI returned vector {i} from {id} with {} values (or a \
                         non-finite one) where {dims} finite values were expected; check \
                         CLOUDFLARE_EMBEDDING_MODEL, and retry or report it",
                        v.len()
                    ))));
                }
                memory_embed::normalise(&mut v);
                Ok(v)
            })
            .collect()
    }

    /// `e` as the [`EmbedError`] [`Embedder::embed`] returns for `texts` texts.
    pub(crate) fn embed_error(&self, texts: usize, e: RawError) -> EmbedError {
        match e {
            RawError::Api(e) => ai_error(self.model.id(), texts, &e),
            RawError::Embed(e) => e,
        }
    }
}

/// Why [`WorkersAiEmbedder::embed_raw`] failed: Workers AI's error, or an answer that breaks
/// the embedder's contract.
#[derive(Debug)]
pub(crate) enum RawError {
    /// The API call failed.
    Api(AiError),
    /// The answer had the wrong number or shape of vectors.
    Embed(EmbedError),
}

#[async_trait]
impl Embedder for WorkersAiEmbedder {
    fn model_id(&self) -> &str {
        self.model.id()
    }

    fn dimensions(&self) -> usize {
        self.model.dimensions()
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_raw(texts)
            .await
            .map_err(|e| self.embed_error(texts.len(), e))
    }
}

/// An [`AiError`] as an [`EmbedError`] that says what to do (never the token: Cloudflare
/// errors carry none).
fn ai_error(model: &str, texts: usize, e: &AiError) -> EmbedError {
    let root = e.root();
    if let AiError::Shape {
        expected,
        got: ShapeMismatch::Rows(got),
        ..
    } = root
    {
        return EmbedError::WrongVectorCount {
            model_id: model.to_owned(),
            expected: expected.rows,
            got: *got,
        };
    }
    let status = match root {
        AiError::Cloudflare(c) => c.status().map(|s| s.as_u16()),
        _ => None,
    };
    let advice = if e.is_retryable() {
        "; Workers AI is unavailable or rate-limited right now: retrying later may help"
    } else {
        match status {
            Some(401 | 403) => {
                "; the token in CLOUDFLARE_API_TOKEN needs the Workers AI Read permission"
            }
            Some(404) => {
                "; check that CLOUDFLARE_EMBEDDING_MODEL names a Workers AI text-embedding model \
                 and CLOUDFLARE_ACCOUNT_ID the account"
            }
            _ => "",
        }
    };
    let plural = if texts == 1 { "" } else { "s" };
    EmbedError::Other(format!(
        "Workers AI could not embed {texts} text{plural} with {model}: {e}{advice}"
    ))
}

/// A local model that computes the same vectors as a Workers AI model (see the
/// [module docs](self)); it reports the Workers AI model id. Feature `local-embedding`.
#[cfg(feature = "local-embedding")]
#[derive(Debug)]
pub struct LocalEquivalent {
    model_id: String,
    inner: LazyEmbedder,
}

#[cfg(feature = "local-embedding")]
impl LocalEquivalent {
    /// The local registry entry standing in.
    #[must_use]
    pub fn local(&self) -> &LazyEmbedder {
        &self.inner
    }
}

#[cfg(feature = "local-embedding")]
#[async_trait]
impl Embedder for LocalEquivalent {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.inner.embed(texts).await
    }
}

/// The local equivalent of Workers AI `model` called with `pooling`, from the per-user model
/// cache (see the [module docs](self) for the policy).
///
/// # Errors
///
/// [`EmbedError::Other`] naming the condition that fails: no local model with the same
/// weights, a different pooling, or no files in the per-user cache (the message names the
/// directory and `cargo xtask fetch-model`).
#[cfg(feature = "local-embedding")]
pub fn fallback_embedder(
    model: &EmbeddingModel,
    pooling: cloudflare_ai::Pooling,
) -> Result<LocalEquivalent, EmbedError> {
    fallback_embedder_in(model, pooling, None)
}

/// The local equivalent of the Workers AI model `model_id` as Workers AI runs it by
/// default (mean pooling), with its files in `dir` (when given) else the per-user cache:
/// how a hybrid device joins a deployment whose vectors Workers AI computed.
///
/// # Errors
///
/// As [`fallback_embedder`], and for an id that is no Workers AI embedding model known here.
#[cfg(feature = "local-embedding")]
pub fn local_equivalent_of(
    model_id: &str,
    dir: Option<PathBuf>,
) -> Result<LocalEquivalent, EmbedError> {
    let model = EmbeddingModel::known(model_id).ok_or_else(|| {
        EmbedError::Other(format!(
            "{model_id} is not a Workers AI embedding model this build knows (local \
             equivalents exist for @cf/baai/bge-small-en-v1.5, @cf/baai/bge-base-en-v1.5 \
             and @cf/baai/bge-large-en-v1.5)"
        ))
    })?;
    fallback_embedder_in(&model, cloudflare_ai::Pooling::Mean, dir)
}

/// [`fallback_embedder`] with the model files in `dir` (when given) instead of the
/// per-user cache.
///
/// # Errors
///
/// As [`fallback_embedder`].
#[cfg(feature = "local-embedding")]
pub fn fallback_embedder_in(
    model: &EmbeddingModel,
    pooling: cloudflare_ai::Pooling,
    dir: Option<PathBuf>,
) -> Result<LocalEquivalent, EmbedError> {
    let id = model.id();
    let no = |why: String| {
        EmbedError::Other(format!(
            "no local fallback for the Workers AI model {id}: {why}; embeddings need Workers AI \
             (a different local model would make vectors that cannot be compared with the \
             stored ones)"
        ))
    };
    let spec = id
        .strip_prefix(memory_embed::spec::CLOUDFLARE_PREFIX)
        .and_then(|rest| ModelSpec::known(rest).filter(|s| s.id.eq_ignore_ascii_case(rest)))
        .ok_or_else(|| {
            no(
                "no local model has the same weights (local equivalents exist for \
                @cf/baai/bge-small-en-v1.5, @cf/baai/bge-base-en-v1.5 and \
                @cf/baai/bge-large-en-v1.5)"
                    .to_owned(),
            )
        })?;
    if spec.dimensions != model.dimensions() {
        return Err(no(format!(
            "the local {} has {} dimensions, not {}",
            spec.id,
            spec.dimensions,
            model.dimensions()
        )));
    }
    // Why an override rather than a check: Workers AI pools the BGE weights with `mean` by
    // default while their files declare `cls`; the same weights with the same pooling give
    // the same vectors, so the local model pools as Workers AI is asked to.
    let wanted = match pooling {
        cloudflare_ai::Pooling::Mean => memory_embed::Pooling::Mean,
        cloudflare_ai::Pooling::Cls => memory_embed::Pooling::Cls,
    };
    let dir = match dir {
        Some(dir) => dir,
        None => {
            let dir = ModelLocation::user_cache_dir(spec.id).ok_or_else(|| {
                no("this system has no per-user cache directory to hold its files".to_owned())
            })?;
            if !dir.is_dir() {
                return Err(no(format!(
                    "its files ({}) are not in {}",
                    spec.id,
                    dir.display()
                )));
            }
            dir
        }
    };
    let inner = LazyEmbedder::new(spec.id, Some(dir))?.with_pooling(wanted);
    Ok(LocalEquivalent {
        model_id: id.to_owned(),
        inner,
    })
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "local-embedding")]
    use cloudflare_ai::Pooling;
    use cloudflare_ai::{BatchPosition, Embeddings, ExpectedShape, MockWorkersAiApi};
    use cloudflare_http::CloudflareError;
    use http::StatusCode;

    use super::*;

    fn mock(model: EmbeddingModel) -> MockWorkersAiApi {
        let mut api = MockWorkersAiApi::new();
        api.expect_model().return_const(model);
        api
    }

    fn embedder(api: MockWorkersAiApi) -> WorkersAiEmbedder {
        WorkersAiEmbedder::new(Arc::new(api))
    }

    fn tiny() -> EmbeddingModel {
        EmbeddingModel::new("@cf/test/tiny", 2).unwrap()
    }

    fn strings(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|t| (*t).to_owned()).collect()
    }

    fn api_error(status: StatusCode) -> AiError {
        AiError::Cloudflare(CloudflareError::Api {
            status,
            errors: vec![],
            retry_after: None,
        })
    }

    #[test]
    fn reports_the_workers_ai_model_id_and_dimensions() {
        let e = embedder(mock(EmbeddingModel::BGE_SMALL_EN_V1_5));
        assert_eq!(e.model_id(), "@cf/baai/bge-small-en-v1.5");
        assert_eq!(e.dimensions(), 384);
        let debug = format!("{e:?}");
        assert!(debug.contains("@cf/baai/bge-small-en-v1.5"), "{debug}");
    }

    #[tokio::test]
    async fn empty_input_makes_no_call() {
        let mut api = mock(tiny());
        api.expect_embed().never();
        assert!(embedder(api).embed(&[]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn vectors_come_back_in_order_and_normalised() {
        let mut api = mock(tiny());
        api.expect_embed()
            .withf(|t: &[String]| t == ["a", "b"])
            .times(1)
            .returning(|_| {
                Ok(Embeddings {
                    vectors: vec![vec![3.0, 4.0], vec![0.0, 2.0]],
                    pooling: None,
                })
            });
        let out = embedder(api).embed(&strings(&["a", "b"])).await.unwrap();
        assert_eq!(out, vec![vec![0.6, 0.8], vec![0.0, 1.0]]);
    }

    #[tokio::test]
    async fn long_texts_are_cut_at_max_chars_on_a_char_boundary() {
        let mut api = mock(tiny());
        api.expect_embed()
            .withf(|t: &[String]| t.len() == 2 && t[0] == "ééé" && t[1] == "ab")
            .times(1)
            .returning(|t| {
                Ok(Embeddings {
                    vectors: vec![vec![1.0, 0.0]; t.len()],
                    pooling: None,
                })
            });
        let e = embedder(api).with_max_chars(3);
        assert_eq!(e.max_chars(), Some(3));
        e.embed(&strings(&["éééé", "ab"])).await.unwrap();
        assert_eq!(
            memory_embed::truncate_chars(&"x".repeat(5000), DEFAULT_MAX_CHARS).len(),
            2000
        );
    }

    #[tokio::test]
    async fn bge_texts_are_cut_to_512_tokens_not_2000_characters() {
        let mut api = mock(EmbeddingModel::BGE_SMALL_EN_V1_5);
        api.expect_embed()
            .withf(|t: &[String]| {
                // 510 ideographs and [CLS], [SEP]: 512 tokens; English keeps 510 characters.
                t[0].chars().count() == 510 && t[1].chars().count() == 510 && t[2] == "short"
            })
            .times(1)
            .returning(|t| {
                Ok(Embeddings {
                    vectors: vec![vec![1.0; 384]; t.len()],
                    pooling: None,
                })
            });
        let e = embedder(api);
        assert_eq!(e.max_chars(), None);
        assert!(!e.cuts_by_tokens());
        e.embed(&strings(&[
            &"记忆".repeat(300),
            &"word ".repeat(500),
            "short",
        ]))
        .await
        .unwrap();
    }

    /// With a tokenizer, English keeps far more than the character budget: its 512 tokens.
    #[cfg(feature = "local-embedding")]
    #[tokio::test]
    async fn with_a_tokenizer_bge_texts_are_cut_by_counted_tokens() {
        use memory_embed::{DEFAULT_MODEL_ID, ModelLocation, TokenCounter};
        let dir = ModelLocation::resolve(DEFAULT_MODEL_ID)
            .unwrap_or_else(|e| panic!("run `cargo xtask fetch-model`: {e}"))
            .dir;
        let counter = TokenCounter::from_dir(&dir).unwrap();
        let check = counter.clone();
        let mut api = mock(EmbeddingModel::BGE_BASE_EN_V1_5);
        api.expect_embed()
            .withf(move |t: &[String]| {
                let n: Vec<usize> = t.iter().map(|t| check.count(t).unwrap()).collect();
                n[0] == 512 && n[1] <= 512 && n[1] >= 505 && t[1].len() > 2000
            })
            .times(1)
            .returning(|t| {
                Ok(Embeddings {
                    vectors: vec![vec![1.0; 768]; t.len()],
                    pooling: None,
                })
            });
        let e = embedder(api).with_token_counter(counter);
        assert!(e.cuts_by_tokens());
        e.embed(&strings(&[&"记忆".repeat(300), &"words ".repeat(600)]))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_wrong_number_of_vectors_is_reported() {
        let mut api = mock(tiny());
        api.expect_embed().returning(|_| {
            Ok(Embeddings {
                vectors: vec![vec![1.0, 0.0]],
                pooling: None,
            })
        });
        let err = embedder(api)
            .embed(&strings(&["a", "b"]))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                EmbedError::WrongVectorCount {
                    expected: 2,
                    got: 1,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_wrong_vector_length_is_reported() {
        let mut api = mock(tiny());
        api.expect_embed().returning(|_| {
            Ok(Embeddings {
                vectors: vec![vec![1.0, 0.0, 0.0]],
                pooling: None,
            })
        });
        let err = embedder(api).embed(&strings(&["a"])).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("3 values") && text.contains("CLOUDFLARE_EMBEDDING_MODEL"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn shape_row_mismatches_become_wrong_vector_count() {
        let mut api = mock(tiny());
        api.expect_embed().returning(|_| {
            Err(AiError::Shape {
                model: "@cf/test/tiny".into(),
                expected: ExpectedShape {
                    rows: 2,
                    dimensions: 2,
                },
                got: ShapeMismatch::Rows(5),
            })
        });
        let err = embedder(api)
            .embed(&strings(&["a", "b"]))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                EmbedError::WrongVectorCount {
                    expected: 2,
                    got: 5,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn api_errors_say_what_to_do() {
        let cases: Vec<(AiError, &str)> = vec![
            (api_error(StatusCode::SERVICE_UNAVAILABLE), "retrying later"),
            (api_error(StatusCode::TOO_MANY_REQUESTS), "retrying later"),
            (api_error(StatusCode::FORBIDDEN), "Workers AI Read"),
            (api_error(StatusCode::UNAUTHORIZED), "CLOUDFLARE_API_TOKEN"),
            (
                api_error(StatusCode::NOT_FOUND),
                "CLOUDFLARE_EMBEDDING_MODEL",
            ),
            (AiError::EmptyText { index: 1 }, "text 1 is empty"),
            (
                api_error(StatusCode::BAD_GATEWAY).in_batch_for_test(),
                "retrying later",
            ),
        ];
        for (error, want) in cases {
            let mut api = mock(tiny());
            let error = std::sync::Mutex::new(Some(error));
            api.expect_embed()
                .returning(move |_| Err(error.lock().unwrap().take().unwrap()));
            let err = embedder(api)
                .embed(&strings(&["a", " "]))
                .await
                .unwrap_err();
            assert!(matches!(err, EmbedError::Other(_)), "{err:?}");
            let text = err.to_string();
            assert!(
                text.contains(want) && text.contains("@cf/test/tiny") && text.contains("2 texts"),
                "{text} lacks {want:?}"
            );
        }
    }

    /// Builds a batch-wrapped error the way `embed_in_batches` does.
    trait InBatch {
        fn in_batch_for_test(self) -> AiError;
    }

    impl InBatch for AiError {
        fn in_batch_for_test(self) -> AiError {
            AiError::Batch {
                batch: BatchPosition {
                    number: 2,
                    of: 2,
                    first_text: 100,
                    len: 1,
                },
                source: Box::new(self),
            }
        }
    }

    #[cfg(feature = "local-embedding")]
    #[test]
    fn fallback_needs_the_same_weights() {
        let err = fallback_embedder(&EmbeddingModel::EMBEDDINGGEMMA_300M, Pooling::Mean)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("@cf/google/embeddinggemma-300m") && err.contains("same weights"),
            "{err}"
        );
        // A local directory name is not a model name.
        let custom = EmbeddingModel::new("@cf/acme/all-MiniLM-L6-v2", 384);
        let err = fallback_embedder(&custom.unwrap(), Pooling::Mean)
            .unwrap_err()
            .to_string();
        assert!(err.contains("same weights"), "{err}");
        // The same name is the same weights, whatever the case.
        let custom = EmbeddingModel::new("@cf/sentence-transformers/all-minilm-l6-v2", 384);
        let dir = tempfile::tempdir().unwrap();
        let local =
            fallback_embedder_in(&custom.unwrap(), Pooling::Mean, Some(dir.path().into())).unwrap();
        assert_eq!(
            local.model_id(),
            "@cf/sentence-transformers/all-minilm-l6-v2"
        );
    }

    #[cfg(feature = "local-embedding")]
    #[test]
    fn fallback_pools_as_workers_ai_is_asked_to() {
        let dir = tempfile::tempdir().unwrap();
        for (asked, local) in [
            (Pooling::Mean, memory_embed::Pooling::Mean),
            (Pooling::Cls, memory_embed::Pooling::Cls),
        ] {
            let e = fallback_embedder_in(
                &EmbeddingModel::BGE_SMALL_EN_V1_5,
                asked,
                Some(dir.path().to_path_buf()),
            )
            .unwrap();
            assert_eq!(e.local().pooling_override(), Some(local));
        }
    }

    #[cfg(feature = "local-embedding")]
    #[test]
    fn fallback_needs_the_files() {
        // An explicit directory is taken as given (checked when loading) ...
        let dir = tempfile::tempdir().unwrap();
        let local = fallback_embedder_in(
            &EmbeddingModel::BGE_LARGE_EN_V1_5,
            Pooling::Cls,
            Some(dir.path().to_path_buf()),
        )
        .unwrap();
        assert_eq!(local.model_id(), "@cf/baai/bge-large-en-v1.5");
        assert_eq!(local.dimensions(), 1024);
        assert_eq!(local.local().model_id(), "BAAI/bge-large-en-v1.5");
        // ... while the per-user cache must hold them.
        match fallback_embedder(&EmbeddingModel::BGE_LARGE_EN_V1_5, Pooling::Cls) {
            Ok(local) => assert_eq!(local.model_id(), "@cf/baai/bge-large-en-v1.5"),
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains("are not in"), "{text}");
            }
        }
    }

    #[cfg(feature = "local-embedding")]
    #[tokio::test]
    async fn a_fallback_without_weights_fails_when_embedding_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let local = fallback_embedder_in(
            &EmbeddingModel::BGE_SMALL_EN_V1_5,
            Pooling::Cls,
            Some(dir.path().to_path_buf()),
        )
        .unwrap();
        assert!(local.embed(&strings(&["x"])).await.is_err());
    }
}
