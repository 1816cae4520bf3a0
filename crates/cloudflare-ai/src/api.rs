//! The operations as an object-safe trait ([`WorkersAiApi`]), their typed requests and
//! responses, the wire format, the shape check, and the batching behind
//! [`WorkersAiApi::embed`] ([`embed_in_batches`]).

use serde::{Deserialize, Deserializer, Serialize};

use crate::MAX_TEXTS_PER_CALL;
use crate::error::{AiError, BatchPosition, ExpectedShape, ShapeMismatch};
use crate::model::{EmbeddingModel, Pooling};

/// Embeds texts with one model. Implemented by [`crate::WorkersAiClient`]; with the
/// `mock` feature (or in this crate's tests) `MockWorkersAiApi` is a mockall mock of it.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait::async_trait]
pub trait WorkersAiApi: Send + Sync {
    /// The model every call uses (its dimensions are the length of every vector).
    fn model(&self) -> &EmbeddingModel;

    /// Embeds at most [`MAX_TEXTS_PER_CALL`] texts in one call: one vector per text, in
    /// order. Empty input gives empty output without a call.
    ///
    /// # Errors
    ///
    /// [`AiError::TooManyTexts`] or [`AiError::EmptyText`] before sending;
    /// [`AiError::Cloudflare`] if the call fails; [`AiError::Shape`] if the answer does not
    /// hold one finite vector of the model's dimensions per text.
    async fn embed_batch(&self, texts: &[String]) -> Result<Embeddings, AiError>;

    /// Embeds any number of texts: one vector per text, in order, sent as consecutive
    /// calls of at most [`MAX_TEXTS_PER_CALL`] texts ([`embed_in_batches`]). Empty input
    /// gives empty output without a call.
    ///
    /// # Errors
    ///
    /// [`AiError::EmptyText`] (naming the index in `texts`) before sending anything; then
    /// as [`WorkersAiApi::embed_batch`], wrapped in [`AiError::Batch`] naming the batch
    /// when there is more than one. Results of earlier batches are discarded.
    async fn embed(&self, texts: &[String]) -> Result<Embeddings, AiError>;
}

/// Vectors returned by an embedding call, one per text, in the order of the texts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Embeddings {
    /// One vector per text; each has the model's dimensions and only finite values.
    pub vectors: Vec<Vec<f32>>,
    /// The pooling Cloudflare reports having used, if it said.
    pub pooling: Option<Pooling>,
}

impl Embeddings {
    /// The number of vectors.
    #[must_use]
    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    /// Whether there are no vectors.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// The vectors.
    #[must_use]
    pub fn into_vectors(self) -> Vec<Vec<f32>> {
        self.vectors
    }
}

/// One call's texts ([`WorkersAiApi::embed_batch`]), as a request to the
/// [`crate::WorkersAiClient`] tower service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbedBatchRequest {
    /// At most [`MAX_TEXTS_PER_CALL`] non-blank texts.
    pub texts: Vec<String>,
}

/// Any number of texts ([`WorkersAiApi::embed`]), as a request to the
/// [`crate::WorkersAiClient`] tower service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbedRequest {
    /// Non-blank texts.
    pub texts: Vec<String>,
}

impl EmbedBatchRequest {
    /// A request for `texts`.
    pub fn new<S: Into<String>>(texts: impl IntoIterator<Item = S>) -> Self {
        Self {
            texts: texts.into_iter().map(Into::into).collect(),
        }
    }
}

impl EmbedRequest {
    /// A request for `texts`.
    pub fn new<S: Into<String>>(texts: impl IntoIterator<Item = S>) -> Self {
        Self {
            texts: texts.into_iter().map(Into::into).collect(),
        }
    }
}

/// The JSON body of `POST /accounts/{account_id}/ai/run/{model}` for a text-embedding
/// model: `{"text": [..], "pooling": "mean" | "cls"}`.
///
/// This client always sends `text` as an array; reading accepts a single string too, as
/// the API does. See <https://developers.cloudflare.com/workers-ai/models/bge-base-en-v1.5/>.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TextEmbeddingInput {
    /// The texts, at most [`MAX_TEXTS_PER_CALL`], none empty.
    #[serde(deserialize_with = "one_or_many")]
    pub text: Vec<String>,
    /// The pooling; omitted means Cloudflare's default, [`Pooling::Mean`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooling: Option<Pooling>,
}

/// The `result` of a text-embedding call:
/// `{"shape": [n, d], "data": [[f32; d]; n], "pooling": "mean" | "cls"}`.
///
/// The spec marks every field optional; a missing `data` reads as no rows (which the
/// shape check then reports) and a missing `shape` is not checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct TextEmbeddingOutput {
    /// `[rows, dimensions]` as Cloudflare declares them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Vec<f64>>,
    /// One vector per input text.
    #[serde(default)]
    pub data: Vec<Vec<f32>>,
    /// The pooling used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooling: Option<Pooling>,
}

/// `"a"` or `["a", "b"]` as a list.
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(text) => vec![text],
        OneOrMany::Many(texts) => texts,
    })
}

/// Refuses blank texts, naming the index (`offset` + position in `texts`).
pub(crate) fn check_texts<S: AsRef<str>>(texts: &[S], offset: usize) -> Result<(), AiError> {
    match texts.iter().position(|t| t.as_ref().trim().is_empty()) {
        Some(i) => Err(AiError::EmptyText { index: offset + i }),
        None => Ok(()),
    }
}

/// Checks that `vectors` holds `rows` vectors of `model`'s dimensions, all finite.
pub(crate) fn check_vectors(
    model: &EmbeddingModel,
    rows: usize,
    vectors: &[Vec<f32>],
) -> Result<(), AiError> {
    let dimensions = model.dimensions();
    let mismatch = |got| AiError::Shape {
        model: model.id().to_owned(),
        expected: ExpectedShape { rows, dimensions },
        got,
    };
    if vectors.len() != rows {
        return Err(mismatch(ShapeMismatch::Rows(vectors.len())));
    }
    for (row, vector) in vectors.iter().enumerate() {
        if vector.len() != dimensions {
            return Err(mismatch(ShapeMismatch::RowLength {
                row,
                len: vector.len(),
            }));
        }
        if let Some(column) = vector.iter().position(|v| !v.is_finite()) {
            return Err(mismatch(ShapeMismatch::NonFinite { row, column }));
        }
    }
    Ok(())
}

/// Checks a decoded response against the `rows` texts sent to `model`: the declared
/// `shape` (if present), then the vectors.
pub(crate) fn check_output(
    model: &EmbeddingModel,
    rows: usize,
    output: TextEmbeddingOutput,
) -> Result<Embeddings, AiError> {
    if let Some(shape) = &output.shape {
        // Exact: both are small integers, which f64 represents exactly.
        #[allow(clippy::cast_precision_loss)]
        let expected = [rows as f64, model.dimensions() as f64];
        if shape.as_slice() != expected {
            return Err(AiError::Shape {
                model: model.id().to_owned(),
                expected: ExpectedShape {
                    rows,
                    dimensions: model.dimensions(),
                },
                got: ShapeMismatch::DeclaredShape(shape.clone()),
            });
        }
    }
    check_vectors(model, rows, &output.data)?;
    Ok(Embeddings {
        vectors: output.data,
        pooling: output.pooling,
    })
}

/// The batching behind [`WorkersAiApi::embed`], for any implementation of
/// [`WorkersAiApi::embed_batch`]: refuses blank texts (naming their index) before sending
/// anything, returns empty output for empty input without a call, else sends consecutive
/// chunks of at most [`MAX_TEXTS_PER_CALL`] texts in order, checks each answer's shape and
/// concatenates the vectors in order. With more than one batch, an error is wrapped in
/// [`AiError::Batch`] naming the batch; the first error stops the rest.
///
/// # Errors
///
/// As [`WorkersAiApi::embed`].
pub(crate) async fn embed_in_batches<A: WorkersAiApi + ?Sized>(
    api: &A,
    texts: &[String],
) -> Result<Embeddings, AiError> {
    check_texts(texts, 0)?;
    let of = texts.len().div_ceil(MAX_TEXTS_PER_CALL);
    let mut out = Embeddings {
        vectors: Vec::with_capacity(texts.len()),
        pooling: None,
    };
    for (i, chunk) in texts.chunks(MAX_TEXTS_PER_CALL).enumerate() {
        let position = BatchPosition {
            number: i + 1,
            of,
            first_text: i * MAX_TEXTS_PER_CALL,
            len: chunk.len(),
        };
        let wrap = |e: AiError| if of > 1 { e.in_batch(position) } else { e };
        let batch = api.embed_batch(chunk).await.map_err(wrap)?;
        check_vectors(api.model(), chunk.len(), &batch.vectors).map_err(wrap)?;
        out.pooling = out.pooling.or(batch.pooling);
        out.vectors.extend(batch.vectors);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mockall::Sequence;
    use proptest::prelude::*;
    use serde_json::json;

    const DIMS: usize = 4;

    fn model() -> EmbeddingModel {
        EmbeddingModel::new("@cf/test/tiny", DIMS).unwrap()
    }

    fn texts(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("text {i}")).collect()
    }

    /// The vector a fake model gives `text {i}`: `[i, i, i, i]`.
    fn vector_for(text: &str) -> Vec<f32> {
        let i: f32 = text
            .strip_prefix("text ")
            .and_then(|n| n.parse::<u16>().ok())
            .map(f32::from)
            .unwrap();
        vec![i; DIMS]
    }

    fn answer(texts: &[String]) -> Embeddings {
        Embeddings {
            vectors: texts.iter().map(|t| vector_for(t)).collect(),
            pooling: Some(Pooling::Mean),
        }
    }

    fn mock() -> MockWorkersAiApi {
        let mut api = MockWorkersAiApi::new();
        api.expect_model().return_const(model());
        api
    }

    #[tokio::test]
    async fn large_input_goes_in_batches_of_100_in_order_and_is_concatenated() {
        let mut api = mock();
        let mut seq = Sequence::new();
        for (first, len) in [(0, 100), (100, 100), (200, 50)] {
            api.expect_embed_batch()
                .withf(move |t: &[String]| {
                    t.len() == len
                        && t.iter()
                            .enumerate()
                            .all(|(i, s)| *s == format!("text {}", first + i))
                })
                .times(1)
                .in_sequence(&mut seq)
                .returning(|t| Ok(answer(t)));
        }
        let input = texts(250);
        let out = embed_in_batches(&api, &input).await.unwrap();
        assert_eq!(out.len(), 250);
        assert_eq!(out.pooling, Some(Pooling::Mean));
        for (i, v) in out.vectors.iter().enumerate() {
            assert_eq!(v, &vector_for(&format!("text {i}")));
        }
    }

    #[tokio::test]
    async fn exactly_100_texts_is_one_unwrapped_call() {
        let mut api = mock();
        api.expect_embed_batch()
            .withf(|t: &[String]| t.len() == 100)
            .times(1)
            .returning(|_| Err(AiError::EmptyText { index: 3 }));
        let err = embed_in_batches(&api, &texts(100)).await.unwrap_err();
        assert!(matches!(err, AiError::EmptyText { index: 3 }), "{err:?}");
    }

    #[tokio::test]
    async fn a_shape_mismatch_in_batch_2_names_the_batch_and_stops() {
        let mut api = mock();
        let mut seq = Sequence::new();
        api.expect_embed_batch()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|t| Ok(answer(t)));
        // Batch 2 answers one vector short; batch 3 must never be sent.
        api.expect_embed_batch()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|t| Ok(answer(&t[1..])));
        let err = embed_in_batches(&api, &texts(250)).await.unwrap_err();
        let AiError::Batch { batch, source } = &err else {
            panic!("expected a batch error, got {err:?}");
        };
        assert_eq!(
            *batch,
            BatchPosition {
                number: 2,
                of: 3,
                first_text: 100,
                len: 100
            }
        );
        assert!(
            matches!(
                **source,
                AiError::Shape {
                    expected: ExpectedShape {
                        rows: 100,
                        dimensions: DIMS
                    },
                    got: ShapeMismatch::Rows(99),
                    ..
                }
            ),
            "{source:?}"
        );
        assert!(matches!(err.root(), AiError::Shape { .. }));
        let text = err.to_string();
        assert!(
            text.contains("batch 2 of 3") && text.contains("texts 100..200"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_cloudflare_error_in_batch_3_names_the_batch() {
        let mut api = mock();
        let mut seq = Sequence::new();
        for _ in 0..2 {
            api.expect_embed_batch()
                .times(1)
                .in_sequence(&mut seq)
                .returning(|t| Ok(answer(t)));
        }
        api.expect_embed_batch()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| {
                Err(AiError::Cloudflare(
                    cloudflare_http::CloudflareError::Timeout {
                        after: std::time::Duration::from_secs(1),
                    },
                ))
            });
        let err = embed_in_batches(&api, &texts(201)).await.unwrap_err();
        assert!(
            matches!(&err, AiError::Batch { batch, .. } if batch.number == 3 && batch.len == 1),
            "{err:?}"
        );
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn wrong_dimensions_from_a_batch_are_caught() {
        let mut api = mock();
        api.expect_embed_batch().times(1).returning(|t| {
            let mut out = answer(t);
            out.vectors[1].push(0.0);
            Ok(out)
        });
        let err = embed_in_batches(&api, &texts(3)).await.unwrap_err();
        assert!(
            matches!(
                err,
                AiError::Shape {
                    got: ShapeMismatch::RowLength { row: 1, len: 5 },
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn empty_input_sends_nothing() {
        let mut api = mock();
        api.expect_embed_batch().never();
        let out = embed_in_batches(&api, &[]).await.unwrap();
        assert!(out.is_empty());
        assert_eq!(out, Embeddings::default());
    }

    #[tokio::test]
    async fn a_blank_text_anywhere_is_refused_before_sending() {
        let mut api = mock();
        api.expect_embed_batch().never();
        let mut input = texts(250);
        input[217] = " \t\n".into();
        let err = embed_in_batches(&api, &input).await.unwrap_err();
        assert!(matches!(err, AiError::EmptyText { index: 217 }), "{err:?}");
        input[217] = String::new();
        input[5] = String::new();
        let err = embed_in_batches(&api, &input).await.unwrap_err();
        assert!(matches!(err, AiError::EmptyText { index: 5 }), "{err:?}");
    }

    #[test]
    fn input_serialises_as_the_spec_says() {
        let body = TextEmbeddingInput {
            text: vec!["a".into(), "b".into()],
            pooling: None,
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"text": ["a", "b"]})
        );
        let body = TextEmbeddingInput {
            text: vec!["a".into()],
            pooling: Some(Pooling::Cls),
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"text": ["a"], "pooling": "cls"})
        );
        let one: TextEmbeddingInput = serde_json::from_value(json!({"text": "x"})).unwrap();
        assert_eq!(one.text, ["x"]);
        let many: TextEmbeddingInput =
            serde_json::from_value(json!({"text": ["x", "y"], "pooling": "mean"})).unwrap();
        assert_eq!(many.text, ["x", "y"]);
        assert_eq!(many.pooling, Some(Pooling::Mean));
        assert!(serde_json::from_value::<TextEmbeddingInput>(json!({})).is_err());
    }

    #[test]
    fn output_decodes_the_spec_example_and_tolerates_missing_fields() {
        let example = json!({"shape": [1, 4], "data": [[0.0, 0.5, -1, 2e-3]], "pooling": "mean"});
        let out: TextEmbeddingOutput = serde_json::from_value(example).unwrap();
        assert_eq!(out.shape, Some(vec![1.0, 4.0]));
        assert_eq!(out.data, [[0.0, 0.5, -1.0, 0.002]]);
        let got = check_output(&model(), 1, out).unwrap();
        assert_eq!(got.pooling, Some(Pooling::Mean));
        assert_eq!(got.vectors.len(), 1);

        let bare: TextEmbeddingOutput = serde_json::from_value(json!({})).unwrap();
        assert_eq!(bare, TextEmbeddingOutput::default());
        let err = check_output(&model(), 1, bare).unwrap_err();
        assert!(
            matches!(
                err,
                AiError::Shape {
                    got: ShapeMismatch::Rows(0),
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn shape_check_reports_each_mismatch() {
        let row = || vec![0.25_f32; DIMS];
        let out = |shape: Option<Vec<f64>>, data: Vec<Vec<f32>>| TextEmbeddingOutput {
            shape,
            data,
            pooling: None,
        };
        let got = |o| match check_output(&model(), 2, o) {
            Err(AiError::Shape { got, expected, .. }) => {
                assert_eq!(
                    expected,
                    ExpectedShape {
                        rows: 2,
                        dimensions: DIMS
                    }
                );
                got
            }
            other => panic!("expected a shape error, got {other:?}"),
        };
        assert_eq!(
            got(out(Some(vec![1.0, 4.0]), vec![row(), row()])),
            ShapeMismatch::DeclaredShape(vec![1.0, 4.0])
        );
        assert_eq!(
            got(out(Some(vec![2.0, 768.0]), vec![row(), row()])),
            ShapeMismatch::DeclaredShape(vec![2.0, 768.0])
        );
        assert_eq!(
            got(out(Some(vec![2.0]), vec![row(), row()])),
            ShapeMismatch::DeclaredShape(vec![2.0])
        );
        assert_eq!(got(out(None, vec![row()])), ShapeMismatch::Rows(1));
        assert_eq!(
            got(out(Some(vec![2.0, 4.0]), vec![row(), row(), row()])),
            ShapeMismatch::Rows(3)
        );
        assert_eq!(
            got(out(None, vec![row(), vec![1.0; 3]])),
            ShapeMismatch::RowLength { row: 1, len: 3 }
        );
        let mut bad = row();
        bad[2] = f32::INFINITY;
        assert_eq!(
            got(out(None, vec![row(), bad])),
            ShapeMismatch::NonFinite { row: 1, column: 2 }
        );
        let mut nan = row();
        nan[0] = f32::NAN;
        assert_eq!(
            got(out(None, vec![nan, row()])),
            ShapeMismatch::NonFinite { row: 0, column: 0 }
        );
        let ok = check_output(&model(), 2, out(Some(vec![2.0, 4.0]), vec![row(), row()]));
        assert_eq!(ok.unwrap().vectors, vec![row(), row()]);
    }

    #[test]
    fn an_overflowing_number_is_caught_as_non_finite() {
        let out: TextEmbeddingOutput =
            serde_json::from_value(json!({"data": [[1e39, 0, 0, 0]]})).unwrap();
        let err = check_output(&model(), 1, out).unwrap_err();
        assert!(
            matches!(
                err,
                AiError::Shape {
                    got: ShapeMismatch::NonFinite { row: 0, column: 0 },
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn request_constructors_collect_texts() {
        assert_eq!(EmbedRequest::new(["a", "b"]).texts, ["a", "b"]);
        assert_eq!(EmbedBatchRequest::new(vec![String::from("c")]).texts, ["c"]);
        assert_eq!(
            Embeddings {
                vectors: vec![vec![1.0]],
                pooling: None
            }
            .into_vectors(),
            [[1.0]]
        );
    }

    /// A hand-written fake (proptest runs many cases; a mock per case would be noise) that
    /// records each batch's size.
    struct Recorder {
        model: EmbeddingModel,
        sizes: std::sync::Mutex<Vec<usize>>,
    }

    #[async_trait::async_trait]
    impl WorkersAiApi for Recorder {
        fn model(&self) -> &EmbeddingModel {
            &self.model
        }
        async fn embed_batch(&self, texts: &[String]) -> Result<Embeddings, AiError> {
            self.sizes.lock().unwrap().push(texts.len());
            Ok(answer(texts))
        }
        async fn embed(&self, texts: &[String]) -> Result<Embeddings, AiError> {
            embed_in_batches(self, texts).await
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn batching_preserves_order_and_bounds_batch_size(n in 0usize..=420) {
            let api = Recorder { model: model(), sizes: std::sync::Mutex::new(Vec::new()) };
            let input = texts(n);
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let out = rt.block_on(api.embed(&input)).unwrap();
            prop_assert_eq!(out.len(), n);
            for (i, v) in out.vectors.iter().enumerate() {
                prop_assert_eq!(v, &vector_for(&input[i]));
            }
            let sizes = api.sizes.lock().unwrap().clone();
            prop_assert_eq!(sizes.iter().sum::<usize>(), n);
            prop_assert_eq!(sizes.len(), n.div_ceil(MAX_TEXTS_PER_CALL));
            prop_assert!(sizes.iter().all(|&s| (1..=MAX_TEXTS_PER_CALL).contains(&s)));
            prop_assert!(sizes.iter().rev().skip(1).all(|&s| s == MAX_TEXTS_PER_CALL));
        }
    }
}
