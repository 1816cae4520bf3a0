//! Conversions between core values and column values: embedding blobs, the comma-joined
//! tag copy, rows into [`Memory`].

use std::str::FromStr;

use memory_core::{ContentHash, Memory, Metadata, Tags, Timestamp, ValidationError};
use rusqlite::Row;
use rusqlite::types::{Type, ValueRef};

/// Bytes per stored vector element (little-endian `f32`).
const F32_BYTES: usize = 4;

/// Columns read to rebuild a [`Memory`], in the order [`memory_from_row`] expects them.
/// The embedding is not among them: returned memories do not carry it.
pub(crate) const MEMORY_COLUMNS: &str = "m.id, m.content, m.content_hash, m.tags, m.memory_type, m.metadata, m.created_at_us, m.updated_at_us";

/// The blob form of a vector: `f32` little-endian, one after the other.
pub(crate) fn encode_embedding(vector: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(vector.len() * F32_BYTES);
    for x in vector {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Decodes a blob written by [`encode_embedding`] into `out` (cleared first).
/// Returns the blob's length when it is not `dims` vectors elements long.
pub(crate) fn decode_embedding_into(
    blob: &[u8],
    dims: usize,
    out: &mut Vec<f32>,
) -> Result<(), usize> {
    if blob.len() != dims * F32_BYTES {
        return Err(blob.len());
    }
    out.clear();
    out.extend(
        blob.chunks_exact(F32_BYTES)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
    );
    Ok(())
}

/// How far a stored vector's squared norm may be from 1 before `check` calls it unusable
/// (every vector this crate writes is within
/// [`UNIT_NORM_TOLERANCE`](memory_storage::prepare::UNIT_NORM_TOLERANCE)).
const STORED_NORM_TOLERANCE: f32 = 1e-3;

/// Why a stored embedding cannot be searched with (see [`decode_stored`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredProblem {
    /// True when there is no vector at all (NULL, empty, not a blob); false when there is
    /// one but it is unusable.
    pub(crate) missing: bool,
    /// What is wrong, as a sentence fragment (`the embedding has 12 bytes, ...`).
    pub(crate) detail: String,
}

impl StoredProblem {
    fn missing(detail: impl Into<String>) -> Self {
        Self {
            missing: true,
            detail: detail.into(),
        }
    }

    fn invalid(detail: impl Into<String>) -> Self {
        Self {
            missing: false,
            detail: detail.into(),
        }
    }
}

/// Decodes an `embedding` column value into `out` (cleared first) and checks that it can be
/// searched with: a blob of `dims` finite little-endian `f32`s of unit length.
pub(crate) fn decode_stored(
    value: ValueRef<'_>,
    dims: usize,
    out: &mut Vec<f32>,
) -> Result<(), StoredProblem> {
    let blob = match value {
        ValueRef::Blob([]) => {
            return Err(StoredProblem::missing("the embedding is empty"));
        }
        ValueRef::Blob(b) => b,
        ValueRef::Null => return Err(StoredProblem::missing("the embedding is NULL")),
        other => {
            return Err(StoredProblem::missing(format!(
                "the embedding is {} {:?} value, not a blob",
                if matches!(other.data_type(), Type::Integer) {
                    "an"
                } else {
                    "a"
                },
                other.data_type()
            )));
        }
    };
    decode_embedding_into(blob, dims, out).map_err(|bytes| {
        StoredProblem::invalid(format!(
            "the embedding has {bytes} bytes, not {} ({dims} dimensions)",
            dims * F32_BYTES
        ))
    })?;
    if let Some(i) = out.iter().position(|x| !x.is_finite()) {
        return Err(StoredProblem::invalid(format!(
            "element {i} of the embedding is NaN or infinite"
        )));
    }
    let norm_sq: f32 = out.iter().map(|x| x * x).sum();
    if norm_sq == 0.0 {
        return Err(StoredProblem::invalid("the embedding is all zeros"));
    }
    if !norm_sq.is_finite() || (norm_sq - 1.0).abs() > STORED_NORM_TOLERANCE {
        return Err(StoredProblem::invalid(format!(
            "the embedding is not unit length (squared norm {norm_sq})"
        )));
    }
    Ok(())
}

pub(crate) use memory_storage::prepare::unit_vector;

/// Rebuilds tags from the comma-joined column. Stored tags never hold a comma (the core
/// model turns one into `-`), so splitting is exact and keeps their order.
pub(crate) fn split_tags(joined: &str) -> Result<Tags, ValidationError> {
    if joined.is_empty() {
        return Ok(Tags::empty());
    }
    Tags::parse(joined.split(',').map(str::to_owned).collect::<Vec<_>>())
}

/// A column value that does not parse, as a rusqlite error naming the column.
fn bad_column(
    index: usize,
    ty: Type,
    err: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, ty, Box::new(err))
}

/// A timestamp column, from epoch microseconds.
fn timestamp_column(
    row: &Row<'_>,
    index: usize,
    field: &'static str,
) -> rusqlite::Result<Timestamp> {
    let micros: i64 = row.get(index)?;
    Timestamp::from_epoch_micros(micros).ok_or_else(|| {
        bad_column(
            index,
            Type::Integer,
            ValidationError::InvalidTimestamp {
                field,
                reason: format!("{micros} microseconds is outside the supported range"),
            },
        )
    })
}

/// The row id and the memory of a row selected with [`MEMORY_COLUMNS`].
pub(crate) fn memory_from_row(row: &Row<'_>) -> rusqlite::Result<(i64, Memory)> {
    let id: i64 = row.get(0)?;
    let content: String = row.get(1)?;
    let hash: String = row.get(2)?;
    let hash = ContentHash::from_str(&hash).map_err(|e| bad_column(2, Type::Text, e))?;
    let tags: String = row.get(3)?;
    let tags = split_tags(&tags).map_err(|e| bad_column(3, Type::Text, e))?;
    let memory_type: Option<String> = row.get(4)?;
    let metadata: String = row.get(5)?;
    let metadata = Metadata::parse(&metadata).map_err(|e| bad_column(5, Type::Text, e))?;
    let created_at = timestamp_column(row, 6, "created_at")?;
    let updated_at = timestamp_column(row, 7, "updated_at")?;
    Ok((
        id,
        Memory::from_parts(
            content,
            hash,
            tags,
            memory_type,
            metadata,
            None,
            created_at,
            updated_at,
        ),
    ))
}

/// A JSON array literal of ids, for `IN (SELECT value FROM json_each(?))`.
pub(crate) fn json_ids(ids: impl IntoIterator<Item = i64>) -> String {
    let mut out = String::from("[");
    for (i, id) in ids.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&id.to_string());
    }
    out.push(']');
    out
}

/// A JSON array literal of strings, for `IN (SELECT value FROM json_each(?))`.
pub(crate) fn json_strings<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    serde_json::Value::Array(
        items
            .into_iter()
            .map(|s| serde_json::Value::String(s.to_owned()))
            .collect(),
    )
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_blob_round_trips_bit_for_bit() {
        let v = vec![0.0, -0.0, 1.5, f32::MIN_POSITIVE, -3.25e-7, 0.1];
        let blob = encode_embedding(&v);
        assert_eq!(blob.len(), 24);
        let mut back = Vec::new();
        decode_embedding_into(&blob, 6, &mut back).unwrap();
        assert_eq!(
            back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn embedding_blob_is_little_endian() {
        assert_eq!(encode_embedding(&[1.0]), [0x00, 0x00, 0x80, 0x3f]);
    }

    #[test]
    fn blob_of_the_wrong_length_is_refused() {
        assert_eq!(decode_embedding_into(&[0; 12], 4, &mut Vec::new()), Err(12));
    }

    #[test]
    fn stored_embeddings_are_told_apart_missing_invalid_and_usable() {
        let mut out = Vec::new();
        let check = |v: ValueRef<'_>, out: &mut Vec<f32>| decode_stored(v, 2, out);
        assert!(check(ValueRef::Blob(&encode_embedding(&[0.6, 0.8])), &mut out).is_ok());
        assert_eq!(out, [0.6, 0.8]);
        for missing in [
            ValueRef::Null,
            ValueRef::Blob(&[]),
            ValueRef::Text(b"x"),
            ValueRef::Integer(1),
        ] {
            let p = check(missing, &mut out).unwrap_err();
            assert!(p.missing, "{p:?}");
        }
        for (blob, says) in [
            (vec![0u8; 12], "12 bytes, not 8"),
            (encode_embedding(&[f32::NAN, 1.0]), "element 0"),
            (encode_embedding(&[0.0, 0.0]), "all zeros"),
            (encode_embedding(&[3.0, 4.0]), "not unit length"),
        ] {
            let p = check(ValueRef::Blob(&blob), &mut out).unwrap_err();
            assert!(
                !p.missing && p.detail.contains(says),
                "{p:?} should say {says}"
            );
        }
    }

    #[test]
    fn tags_split_back_in_their_stored_order() {
        let tags = Tags::parse("zeta, alpha, [x, ü").unwrap();
        assert_eq!(split_tags(&tags.joined()).unwrap(), tags);
        assert!(split_tags("").unwrap().is_empty());
    }

    #[test]
    fn json_literals_are_valid_json() {
        assert_eq!(json_ids([1, -2, 3]), "[1,-2,3]");
        assert_eq!(json_ids([]), "[]");
        assert_eq!(json_strings(["a\"b", "ü"]), r#"["a\"b","ü"]"#);
    }
}
