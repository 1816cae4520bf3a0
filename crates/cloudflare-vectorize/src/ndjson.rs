//! The NDJSON encoder of insert/upsert bodies and the chunker that splits a large write
//! into requests of at most [`MAX_VECTORS_PER_UPSERT`] vectors and [`MAX_UPSERT_BYTES`]
//! bytes, sending them one after the other through a [`ChunkSink`].
//!
//! Every vector is validated and encoded before the first chunk is sent, so an invalid or
//! oversize vector anywhere in the input means nothing is written.

use async_trait::async_trait;
use bytes::Bytes;
use cloudflare_http::CloudflareError;

use crate::error::VectorizeError;
use crate::types::{Mutation, MutationBatch, Vector};
use crate::{MAX_UPSERT_BYTES, MAX_VECTORS_PER_UPSERT};

/// Content type of insert and upsert bodies.
pub(crate) const NDJSON_CONTENT_TYPE: &str = "application/x-ndjson";

/// Which write a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum WriteMode {
    /// `insert`: fails on existing ids; never retried.
    Insert,
    /// `upsert`: replaces existing ids; idempotent, retried.
    Upsert,
}

impl WriteMode {
    /// The path suffix and operation name (`"insert"` or `"upsert"`).
    #[must_use]
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Upsert => "upsert",
        }
    }
}

/// How large one write request may get. [`ChunkLimits::default`] is Vectorize's limits;
/// smaller values are allowed (e.g. to keep requests short), larger ones are clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Vectors per request (1 to [`MAX_VECTORS_PER_UPSERT`]).
    pub max_vectors: usize,
    /// Body bytes per request (1 to [`MAX_UPSERT_BYTES`]).
    pub max_bytes: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        Self {
            max_vectors: MAX_VECTORS_PER_UPSERT,
            max_bytes: MAX_UPSERT_BYTES,
        }
    }
}

impl ChunkLimits {
    /// Limits of `max_vectors` and `max_bytes`, clamped to 1..=Vectorize's maximum.
    #[must_use]
    pub fn new(max_vectors: usize, max_bytes: usize) -> Self {
        Self {
            max_vectors: max_vectors.clamp(1, MAX_VECTORS_PER_UPSERT),
            max_bytes: max_bytes.clamp(1, MAX_UPSERT_BYTES),
        }
    }
}

/// One request's worth of vectors, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The NDJSON body.
    pub body: Bytes,
    /// Vectors in it.
    pub vectors: usize,
}

/// Sends one encoded chunk and returns its mutation. [`crate::IndexClient`] implements it
/// over HTTP; tests use a mock.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub(crate) trait ChunkSink: Send + Sync {
    /// Sends `body` (NDJSON holding `vectors` vectors) as an insert or upsert.
    async fn send_chunk(
        &self,
        mode: WriteMode,
        body: Bytes,
        vectors: usize,
    ) -> Result<Mutation, VectorizeError>;
}

/// One vector as an NDJSON line (`{"id":..,"values":[..],"metadata":{..},"namespace":..}`
/// and `\n`), without validation. JSON escapes newlines inside strings, so the line
/// holds exactly one object.
///
/// # Errors
///
/// [`CloudflareError::InvalidRequest`] if serde cannot serialise it (never for a valid
/// vector: non-finite values are refused by validation first).
pub fn encode_line(vector: &Vector) -> Result<Vec<u8>, VectorizeError> {
    let mut line = serde_json::to_vec(vector).map_err(|e| CloudflareError::InvalidRequest {
        reason: format!("vector {:?} could not be serialised: {e}", vector.id),
    })?;
    line.push(b'\n');
    Ok(line)
}

/// The NDJSON body of `vectors` (one line each), without validation or chunking.
///
/// # Errors
///
/// As [`encode_line`].
pub fn encode_ndjson(vectors: &[Vector]) -> Result<Bytes, VectorizeError> {
    let mut body = Vec::new();
    for vector in vectors {
        body.extend_from_slice(&encode_line(vector)?);
    }
    Ok(Bytes::from(body))
}

/// Validates every vector (against `dimensions` when known) and splits the encoded lines
/// into chunks within `limits`, keeping input order.
///
/// # Errors
///
/// The first invalid vector's validation error, or [`VectorizeError::VectorTooLarge`]
/// when one line alone exceeds `limits.max_bytes`.
pub fn plan_chunks(
    vectors: &[Vector],
    dimensions: Option<u32>,
    limits: ChunkLimits,
) -> Result<Vec<Chunk>, VectorizeError> {
    let limits = ChunkLimits::new(limits.max_vectors, limits.max_bytes);
    let mut chunks = Vec::new();
    let mut body: Vec<u8> = Vec::new();
    let mut count = 0;
    for vector in vectors {
        vector.validate(dimensions)?;
        let line = encode_line(vector)?;
        if line.len() > limits.max_bytes {
            return Err(VectorizeError::VectorTooLarge {
                id: vector.id.clone(),
                actual: line.len(),
                max: limits.max_bytes,
            });
        }
        if count == limits.max_vectors || body.len() + line.len() > limits.max_bytes {
            chunks.push(Chunk {
                body: Bytes::from(std::mem::take(&mut body)),
                vectors: count,
            });
            count = 0;
        }
        body.extend_from_slice(&line);
        count += 1;
    }
    if count > 0 {
        chunks.push(Chunk {
            body: Bytes::from(body),
            vectors: count,
        });
    }
    Ok(chunks)
}

/// Validates and chunks `vectors` ([`plan_chunks`]), then sends the chunks in order
/// through `sink`, stopping at the first failure. An empty input sends nothing.
///
/// # Errors
///
/// A validation error (nothing sent); the error of chunk 1 as is (nothing written); or
/// [`VectorizeError::PartialWrite`] naming the failed chunk, the vectors written before it
/// and their mutation ids.
pub(crate) async fn write_chunks(
    sink: &dyn ChunkSink,
    mode: WriteMode,
    vectors: &[Vector],
    dimensions: Option<u32>,
    limits: ChunkLimits,
) -> Result<MutationBatch, VectorizeError> {
    let chunks = plan_chunks(vectors, dimensions, limits)?;
    let total = chunks.len();
    let mut batch = MutationBatch::default();
    for (i, chunk) in chunks.into_iter().enumerate() {
        match sink.send_chunk(mode, chunk.body, chunk.vectors).await {
            Ok(mutation) => {
                batch.mutation_ids.push(mutation.mutation_id);
                batch.vectors += chunk.vectors;
            }
            Err(e) if i == 0 => return Err(e),
            Err(e) => {
                return Err(VectorizeError::PartialWrite {
                    chunk: i + 1,
                    chunks: total,
                    vectors_written: batch.vectors,
                    mutation_ids: batch.mutation_ids,
                    source: Box::new(e),
                });
            }
        }
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_METADATA_BYTES;
    use http::StatusCode;
    use mockall::Sequence;
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    fn vectors(n: usize) -> Vec<Vector> {
        (0..n)
            .map(|i| Vector::new(format!("v{i}"), vec![0.25, -1.5, 3.0]))
            .collect()
    }

    fn ids(body: &[u8]) -> Vec<String> {
        body.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice::<Vector>(l).unwrap().id)
            .collect()
    }

    fn mutation(n: usize) -> Mutation {
        Mutation {
            mutation_id: format!("m{n}"),
        }
    }

    #[test]
    fn lines_have_the_documented_shape() {
        let mut metadata = Map::new();
        metadata.insert("kind".into(), json!("note\nwith newline"));
        let vector = Vector::new("a", vec![1.0, 0.5])
            .with_metadata(metadata)
            .with_namespace("ns");
        let line = encode_line(&vector).unwrap();
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        assert!(line.ends_with(b"\n"));
        let value: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            value,
            json!({"id": "a", "values": [1.0, 0.5], "metadata": {"kind": "note\nwith newline"}, "namespace": "ns"})
        );
        let bare: Value =
            serde_json::from_slice(&encode_line(&Vector::new("b", vec![2.0])).unwrap()).unwrap();
        assert_eq!(bare, json!({"id": "b", "values": [2.0]}));
        assert_eq!(encode_ndjson(&[]).unwrap(), Bytes::new());
    }

    #[tokio::test]
    async fn twelve_thousand_and_one_vectors_go_out_as_5000_5000_2001() {
        let input = vectors(12_001);
        let mut sink = MockChunkSink::new();
        let mut seq = Sequence::new();
        for (n, (size, first)) in [(5000, 0), (5000, 5000), (2001, 10_000)]
            .into_iter()
            .enumerate()
        {
            sink.expect_send_chunk()
                .times(1)
                .in_sequence(&mut seq)
                .withf(move |mode, body, vectors| {
                    let ids = ids(body);
                    *mode == WriteMode::Upsert
                        && *vectors == size
                        && ids.len() == size
                        && ids[0] == format!("v{first}")
                        && ids[size - 1] == format!("v{}", first + size - 1)
                })
                .returning(move |_, _, _| Ok(mutation(n)));
        }
        let batch = write_chunks(
            &sink,
            WriteMode::Upsert,
            &input,
            Some(3),
            ChunkLimits::default(),
        )
        .await
        .unwrap();
        assert_eq!(batch.vectors, 12_001);
        assert_eq!(batch.mutation_ids, ["m0", "m1", "m2"]);
        assert_eq!(batch.last_mutation_id(), Some("m2"));
    }

    #[tokio::test]
    async fn the_byte_limit_splits_before_the_count_limit() {
        let input = vectors(10);
        let line = encode_line(&input[0]).unwrap().len();
        // Room for 3 lines (and a bit) per request.
        let limits = ChunkLimits::new(5000, line * 3 + line / 2);
        let mut sink = MockChunkSink::new();
        let mut seq = Sequence::new();
        for (n, size) in [3, 3, 3, 1].into_iter().enumerate() {
            sink.expect_send_chunk()
                .times(1)
                .in_sequence(&mut seq)
                .withf(move |mode, body, vectors| {
                    *mode == WriteMode::Insert
                        && *vectors == size
                        && body.len() == size * line
                        && body.len() <= line * 3 + line / 2
                })
                .returning(move |_, _, _| Ok(mutation(n)));
        }
        let batch = write_chunks(&sink, WriteMode::Insert, &input, None, limits)
            .await
            .unwrap();
        assert_eq!(batch.mutation_ids.len(), 4);
        assert_eq!(batch.vectors, 10);
    }

    #[tokio::test]
    async fn an_exact_fit_does_not_split() {
        let input = vectors(4);
        let line = encode_line(&input[0]).unwrap().len();
        let chunks = plan_chunks(&input, None, ChunkLimits::new(4, line * 4)).unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].vectors, 4);
        let chunks = plan_chunks(&input, None, ChunkLimits::new(4, line * 4 - 1)).unwrap();
        assert_eq!(chunks.iter().map(|c| c.vectors).collect::<Vec<_>>(), [3, 1]);
    }

    #[tokio::test]
    async fn one_oversize_vector_is_refused_before_anything_is_sent() {
        // Over the metadata limit, at the end of a batch that would need 3 chunks.
        let mut input = vectors(12_000);
        let mut metadata = Map::new();
        metadata.insert("text".into(), json!("x".repeat(MAX_METADATA_BYTES)));
        input.push(Vector::new("huge", vec![1.0, 2.0, 3.0]).with_metadata(metadata));
        let mut sink = MockChunkSink::new();
        sink.expect_send_chunk().never();
        let err = write_chunks(
            &sink,
            WriteMode::Upsert,
            &input,
            Some(3),
            ChunkLimits::default(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, VectorizeError::MetadataTooLarge { id, actual } if id == "huge" && *actual > MAX_METADATA_BYTES),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("10240") && text.contains("huge"), "{text}");

        // A line larger than a (custom) body limit.
        let input = vectors(5);
        let line = encode_line(&input[0]).unwrap().len();
        let mut sink = MockChunkSink::new();
        sink.expect_send_chunk().never();
        let err = write_chunks(
            &sink,
            WriteMode::Upsert,
            &input,
            None,
            ChunkLimits::new(10, line - 1),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, VectorizeError::VectorTooLarge { id, actual, max } if id == "v0" && *actual == line && *max == line - 1),
            "{err:?}"
        );
        assert!(err.to_string().contains("shrink its metadata"), "{err}");
    }

    #[tokio::test]
    async fn an_invalid_vector_anywhere_sends_nothing() {
        let mut input = vectors(7000);
        input[6500].values[1] = f32::NAN;
        let mut sink = MockChunkSink::new();
        sink.expect_send_chunk().never();
        let err = write_chunks(
            &sink,
            WriteMode::Insert,
            &input,
            None,
            ChunkLimits::default(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, VectorizeError::NonFiniteValue { id, position: 1, .. } if id == "v6500"),
            "{err:?}"
        );
        let mut input = vectors(3);
        input[2].values.pop();
        let err = write_chunks(
            &sink,
            WriteMode::Insert,
            &input,
            Some(3),
            ChunkLimits::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(
            err,
            VectorizeError::DimensionMismatch {
                expected: 3,
                actual: 2,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn an_error_on_chunk_2_stops_and_reports_what_was_written() {
        let input = vectors(12_001);
        let mut sink = MockChunkSink::new();
        let mut seq = Sequence::new();
        sink.expect_send_chunk()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _| Ok(mutation(0)));
        sink.expect_send_chunk()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _| {
                Err(CloudflareError::Api {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    errors: vec![],
                    retry_after: None,
                }
                .into())
            });
        // No third call: mockall panics on an unexpected one.
        let err = write_chunks(
            &sink,
            WriteMode::Upsert,
            &input,
            None,
            ChunkLimits::default(),
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        let VectorizeError::PartialWrite {
            chunk,
            chunks,
            vectors_written,
            mutation_ids,
            source,
        } = err
        else {
            panic!("{err:?}")
        };
        assert_eq!((chunk, chunks, vectors_written), (2, 3, 5000));
        assert_eq!(mutation_ids, ["m0"]);
        assert_eq!(
            source.cloudflare().and_then(CloudflareError::status),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert!(
            text.contains("chunk 2 of 3") && text.contains("5000 vectors"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_error_on_chunk_1_is_returned_as_is() {
        let mut sink = MockChunkSink::new();
        sink.expect_send_chunk().times(1).returning(|_, _, _| {
            Err(CloudflareError::Api {
                status: StatusCode::BAD_REQUEST,
                errors: vec![],
                retry_after: None,
            }
            .into())
        });
        let err = write_chunks(
            &sink,
            WriteMode::Insert,
            &vectors(3),
            None,
            ChunkLimits::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, VectorizeError::Cloudflare(_)), "{err:?}");
        assert!(!err.is_validation());
    }

    #[tokio::test]
    async fn an_empty_input_sends_nothing() {
        let mut sink = MockChunkSink::new();
        sink.expect_send_chunk().never();
        let batch = write_chunks(&sink, WriteMode::Upsert, &[], None, ChunkLimits::default())
            .await
            .unwrap();
        assert_eq!(batch, MutationBatch::default());
        assert_eq!(batch.last_mutation_id(), None);
    }

    #[test]
    fn limits_are_clamped() {
        assert_eq!(
            ChunkLimits::new(0, usize::MAX),
            ChunkLimits {
                max_vectors: 1,
                max_bytes: MAX_UPSERT_BYTES
            }
        );
        assert_eq!(
            ChunkLimits::new(10_000, 0).max_vectors,
            MAX_VECTORS_PER_UPSERT
        );
    }

    fn metadata_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,20}".prop_map(Value::from),
            Just(Value::Null),
        ]
    }

    fn vector() -> impl Strategy<Value = Vector> {
        (
            "[\\PC]{1,16}",
            prop::collection::vec(-1.0e6f32..1.0e6f32, 1..16),
            prop::option::of(prop::collection::btree_map(
                "[\\PC]{1,10}",
                metadata_value(),
                0..5,
            )),
            prop::option::of("[a-z0-9\n\"\\\\-]{1,20}"),
        )
            .prop_map(|(id, values, metadata, namespace)| Vector {
                id,
                values,
                metadata: metadata.map(|m| m.into_iter().collect()),
                namespace,
            })
    }

    proptest! {
        #[test]
        fn ndjson_has_one_object_per_line_that_round_trips(input in prop::collection::vec(vector(), 0..20)) {
            let body = encode_ndjson(&input).unwrap();
            let text = std::str::from_utf8(&body).unwrap();
            prop_assert!(input.is_empty() || text.ends_with('\n'));
            let lines: Vec<&str> = text.lines().collect();
            prop_assert_eq!(lines.len(), input.len());
            for (line, original) in lines.iter().zip(&input) {
                let value: Value = serde_json::from_str(line).unwrap();
                prop_assert!(value.is_object());
                let decoded: Vector = serde_json::from_value(value).unwrap();
                prop_assert_eq!(&decoded, original);
            }
        }

        #[test]
        fn chunks_respect_limits_and_keep_order(
            n in 0usize..60,
            max_vectors in 1usize..10,
            extra_bytes in 0usize..200,
        ) {
            let input = vectors(n);
            let line = encode_line(&Vector::new("v00", vec![0.25, -1.5, 3.0])).unwrap().len();
            let limits = ChunkLimits::new(max_vectors, line + extra_bytes);
            let chunks = plan_chunks(&input, Some(3), limits).unwrap();
            let mut all = Vec::new();
            for chunk in &chunks {
                prop_assert!(chunk.vectors >= 1 && chunk.vectors <= max_vectors);
                prop_assert!(chunk.body.len() <= line + extra_bytes);
                let chunk_ids = ids(&chunk.body);
                prop_assert_eq!(chunk_ids.len(), chunk.vectors);
                all.extend(chunk_ids);
            }
            let expected: Vec<String> = input.iter().map(|v| v.id.clone()).collect();
            prop_assert_eq!(all, expected);
        }
    }
}
