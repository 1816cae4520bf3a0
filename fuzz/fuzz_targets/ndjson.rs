//! Vectorize NDJSON: the encoder and chunker of insert/upsert bodies
//! (`cloudflare_vectorize::plan_chunks`, `encode_ndjson`, `encode_line`) on structured
//! vectors, and NDJSON lines as a server reads them back (`serde_json` into `Vector`).
//!
//! Invariants: nothing panics; a plan keeps every chunk within its limits, loses and
//! reorders nothing (the chunks concatenated are `encode_ndjson` of the input) and every line
//! decodes back to its vector; a decoded and valid vector re-encodes to one line that decodes
//! to the same vector.
//!
//! The emulator's own NDJSON parser (`cloudflare-emulator/src/vectorize/mod.rs`,
//! `parse_vectors`) is private, so it is not fuzzed here.
#![no_main]

use arbitrary::Arbitrary;
use cloudflare_vectorize::{
    ChunkLimits, Metadata, Vector, encode_line, encode_ndjson, plan_chunks,
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Value {
    /// A finite value on a 1/256 grid (most vectors are valid).
    Small(i16),
    /// Any float, NaN and infinities included.
    Raw(f32),
}

#[derive(Debug, Arbitrary)]
enum Meta {
    Text(String),
    Number(i32),
    Float(f64),
    Flag(bool),
}

#[derive(Debug, Arbitrary)]
struct FuzzVector {
    id: String,
    values: Vec<Value>,
    metadata: Option<Vec<(String, Meta)>>,
    namespace: Option<String>,
}

#[derive(Debug, Arbitrary)]
enum Input {
    Plan {
        vectors: Vec<FuzzVector>,
        dimensions: Option<u8>,
        max_vectors: u8,
        max_bytes: u16,
    },
    Lines(Vec<u8>),
}

fn vector_of(v: FuzzVector) -> Vector {
    let values = v
        .values
        .into_iter()
        .map(|x| match x {
            Value::Small(i) => f32::from(i) / 256.0,
            Value::Raw(f) => f,
        })
        .collect();
    let mut vector = Vector::new(v.id, values);
    if let Some(pairs) = v.metadata {
        let mut map = Metadata::new();
        for (key, value) in pairs {
            let value = match value {
                Meta::Text(s) => serde_json::Value::from(s),
                Meta::Number(n) => serde_json::Value::from(n),
                // `from(f64)` is `null` for non-finite values, as JSON has no such numbers.
                Meta::Float(f) => serde_json::Value::from(f),
                Meta::Flag(b) => serde_json::Value::from(b),
            };
            map.insert(key, value);
        }
        vector = vector.with_metadata(map);
    }
    vector.namespace = v.namespace;
    vector
}

/// Same id, values and namespace (metadata floats may differ in the last digit after a JSON
/// round trip, so metadata is compared by key set).
fn same(a: &Vector, b: &Vector) -> bool {
    a.id == b.id
        && a.values == b.values
        && a.namespace == b.namespace
        && a.metadata.as_ref().map(|m| m.keys().collect::<Vec<_>>())
            == b.metadata.as_ref().map(|m| m.keys().collect::<Vec<_>>())
}

fn decode_line(line: &[u8]) -> Vector {
    serde_json::from_slice(line).unwrap_or_else(|e| panic!("encoded line does not decode: {e}"))
}

fuzz_target!(|input: Input| match input {
    Input::Plan {
        vectors,
        dimensions,
        max_vectors,
        max_bytes,
    } => {
        let vectors: Vec<Vector> = vectors.into_iter().map(vector_of).collect();
        let limits = ChunkLimits::new(usize::from(max_vectors), usize::from(max_bytes));
        let Ok(chunks) = plan_chunks(&vectors, dimensions.map(u32::from), limits) else {
            return;
        };
        let all = encode_ndjson(&vectors).expect("valid vectors encode");
        let mut joined = Vec::new();
        let mut total = 0;
        for chunk in &chunks {
            assert!(chunk.vectors >= 1 && chunk.vectors <= limits.max_vectors);
            assert!(
                chunk.body.len() <= limits.max_bytes,
                "chunk over the byte limit"
            );
            let lines: Vec<&[u8]> = chunk.body.split(|b| *b == b'\n').collect();
            assert_eq!(lines.last(), Some(&&b""[..]), "a chunk ends with a newline");
            assert_eq!(lines.len() - 1, chunk.vectors, "one line per vector");
            for (line, vector) in lines[..chunk.vectors].iter().zip(&vectors[total..]) {
                assert!(same(&decode_line(line), vector), "line does not round-trip");
            }
            total += chunk.vectors;
            joined.extend_from_slice(&chunk.body);
        }
        assert_eq!(total, vectors.len(), "vectors lost or added");
        assert_eq!(
            joined,
            all.as_ref(),
            "chunks are not the encoded input in order"
        );
    }
    Input::Lines(bytes) => {
        for line in bytes.split(|b| *b == b'\n') {
            let Ok(vector) = serde_json::from_slice::<Vector>(line) else {
                continue;
            };
            if vector.validate(None).is_err() {
                continue;
            }
            let encoded = encode_line(&vector).expect("a valid vector encodes");
            assert_eq!(encoded.iter().filter(|b| **b == b'\n').count(), 1);
            assert_eq!(encoded.last(), Some(&b'\n'));
            assert!(
                same(&decode_line(&encoded), &vector),
                "re-encoded line differs"
            );
        }
    }
});
