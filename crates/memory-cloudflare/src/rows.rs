//! Row mapping: D1 rows into [`Memory`] values and memory fields into D1 parameters
//! (timestamps, tags, vector ids), plus the vector checks shared with the writes.

use std::str::FromStr;

use cloudflare_d1::Row;
use memory_core::{ContentHash, Memory, Metadata, Tags, Timestamp};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error_map::bad_row;
use memory_storage::StorageResult;

/// Characters of a large memory's content kept in its D1 row as a preview.
pub(crate) const PREVIEW_CHARS: usize = 1000;

/// Characters of the content that are embedded (Workers AI truncates at 512 tokens anyway).
pub(crate) const EMBED_PREFIX_CHARS: usize = 8000;

/// The columns every memory read selects from `memories m`, in the order
/// [`StoredRow::from_row`] reads them by name. `tags_csv` is the `tags` column, or, on a
/// row that has none (written by an older upstream), its link-table tags.
pub(crate) fn row_columns(memory_tags: &str, tags: &str) -> String {
    format!(
        "m.id, m.content_hash, m.content, m.memory_type, m.created_at, m.created_at_iso, \
         m.updated_at, m.updated_at_iso, m.metadata_json, m.vector_id, m.r2_key, m.deleted_at, \
         COALESCE(m.tags, (SELECT group_concat(t.name, ',') FROM {memory_tags} mt \
         JOIN {tags} t ON t.id = mt.tag_id WHERE mt.memory_id = m.id)) AS tags_csv"
    )
}

/// A memories row as read from D1.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredRow {
    /// Row id.
    pub id: i64,
    /// The memory (content is the R2 preview when `r2_key` is set).
    pub memory: Memory,
    /// Vectorize id.
    pub vector_id: Option<String>,
    /// R2 key of the full content.
    pub r2_key: Option<String>,
    /// Soft-delete time.
    pub deleted_at: Option<f64>,
}

/// A column as text (`None` for NULL or absent).
pub(crate) fn text(row: &Row, column: &str) -> Option<String> {
    match row.get(column)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A column as a float (numbers, or numeric text).
pub(crate) fn real(row: &Row, column: &str) -> Option<f64> {
    match row.get(column)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A column as an integer.
pub(crate) fn int(row: &Row, column: &str) -> Option<i64> {
    match row.get(column)? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|x| x.fract() == 0.0).map(|x| x as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A count column (0 when NULL or negative).
pub(crate) fn count(row: &Row, column: &str) -> u64 {
    int(row, column)
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

/// Epoch seconds with exactly six decimals, computed from the exact microseconds (so the
/// text is the timestamp, with no float rounding).
pub(crate) fn epoch_text(t: Timestamp) -> String {
    let micros = t.epoch_micros();
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    format!("{secs}.{frac:06}")
}

/// A timestamp from its REAL column, with its ISO column taken when they agree within a
/// millisecond (the ISO text is exact where the float may not be).
fn timestamp(
    real_secs: Option<f64>,
    iso: Option<&str>,
    field: &'static str,
) -> StorageResult<Timestamp> {
    let from_iso = iso.and_then(|s| Timestamp::parse_iso(s).ok());
    let from_real = real_secs.and_then(|x| Timestamp::from_epoch_seconds_for(field, x).ok());
    match (from_real, from_iso) {
        (Some(r), Some(i)) if (r.epoch_micros() - i.epoch_micros()).abs() < 1000 => Ok(i),
        (Some(r), _) => Ok(r),
        (None, Some(i)) => Ok(i),
        (None, None) => Err(bad_row(format!("{field} is missing or not a time"))),
    }
}

/// Tags from the comma-joined column.
pub(crate) fn split_tags(joined: &str) -> StorageResult<Tags> {
    if joined.trim().is_empty() {
        return Ok(Tags::empty());
    }
    Tags::parse(
        joined
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>(),
    )
    .map_err(|e| bad_row(format!("tags {joined:?}: {e}")))
}

impl StoredRow {
    /// Reads a row selected with [`row_columns`].
    pub(crate) fn from_row(row: &Row) -> StorageResult<Self> {
        let id = int(row, "id").ok_or_else(|| bad_row("id is missing"))?;
        let hash_text =
            text(row, "content_hash").ok_or_else(|| bad_row("content_hash is missing"))?;
        let hash = ContentHash::from_str(&hash_text)
            .map_err(|e| bad_row(format!("content_hash {hash_text:?}: {e}")))?;
        let content = text(row, "content").unwrap_or_default();
        let memory_type = text(row, "memory_type").filter(|t| !t.is_empty());
        let created_at = timestamp(
            real(row, "created_at"),
            text(row, "created_at_iso").as_deref(),
            "created_at",
        )?;
        let updated_at = match (real(row, "updated_at"), text(row, "updated_at_iso")) {
            (None, None) => created_at,
            (r, i) => timestamp(r, i.as_deref(), "updated_at")?,
        };
        let metadata = match text(row, "metadata_json") {
            Some(s) if !s.trim().is_empty() && s.trim() != "null" => {
                Metadata::parse(&s).map_err(|e| bad_row(format!("metadata_json of {hash}: {e}")))?
            }
            _ => Metadata::new(),
        };
        let tags = split_tags(&text(row, "tags_csv").unwrap_or_default())?;
        let memory = Memory::from_parts(
            content,
            hash,
            tags,
            memory_type,
            metadata,
            None,
            created_at,
            updated_at,
        );
        Ok(Self {
            id,
            memory,
            vector_id: text(row, "vector_id"),
            r2_key: text(row, "r2_key").filter(|k| !k.is_empty()),
            deleted_at: real(row, "deleted_at"),
        })
    }
}

/// The Vectorize id of a memory: its hash, or with a namespace the hex SHA-256 of
/// `namespace \0 hash` (64 bytes, Vectorize's limit).
pub(crate) fn vector_id(namespace: Option<&str>, hash: &ContentHash) -> String {
    match namespace {
        None => hash.as_str().to_owned(),
        Some(ns) => {
            let mut h = Sha256::new();
            h.update(ns.as_bytes());
            h.update([0u8]);
            h.update(hash.as_str().as_bytes());
            hex::encode(h.finalize())
        }
    }
}

/// The first `n` characters of `s`.
pub(crate) fn prefix_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A JSON array literal of strings, for `IN (SELECT value FROM json_each(?))`.
pub(crate) fn json_strings<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    Value::Array(
        items
            .into_iter()
            .map(|s| Value::String(s.to_owned()))
            .collect(),
    )
    .to_string()
}

/// Cosine similarity of two unit vectors (their dot product), in f64.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Row {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn epoch_text_is_exact_for_positive_and_negative_times() {
        let t = Timestamp::from_epoch_micros(1_700_000_000_123_456).unwrap();
        assert_eq!(epoch_text(t), "1700000000.123456");
        let t = Timestamp::from_epoch_micros(-1).unwrap();
        assert_eq!(epoch_text(t), "-1.999999");
        assert_eq!("-1.999999".parse::<f64>().unwrap(), -1.999999);
    }

    #[test]
    fn a_row_maps_to_a_memory_with_exact_timestamps() {
        let created = Timestamp::from_epoch_micros(1_700_000_000_123_457).unwrap();
        let m = Memory::new("hello").unwrap();
        let r = row(json!({
            "id": 3, "content_hash": m.content_hash().as_str(), "content": "hello",
            "memory_type": null, "created_at": 1_700_000_000.123_457_f64,
            "created_at_iso": created.to_iso(), "updated_at": 1_700_000_000.123_457_f64,
            "updated_at_iso": created.to_iso(), "metadata_json": "{\"a\":1}",
            "vector_id": m.content_hash().as_str(), "r2_key": null, "deleted_at": null,
            "tags_csv": "b,a"
        }));
        let s = StoredRow::from_row(&r).unwrap();
        assert_eq!(s.id, 3);
        assert_eq!(s.memory.created_at, created);
        assert_eq!(s.memory.tags.as_slice(), ["b", "a"]);
        assert_eq!(s.memory.metadata.get("a"), Some(&json!(1)));
        assert_eq!(s.memory.memory_type, None);
    }

    #[test]
    fn legacy_rows_without_iso_or_metadata_still_read() {
        let m = Memory::new("x").unwrap();
        let r = row(json!({
            "id": 1, "content_hash": m.content_hash().as_str(), "content": "x",
            "created_at": 1_600_000_000.5, "created_at_iso": "garbage",
            "metadata_json": null, "tags_csv": null
        }));
        let s = StoredRow::from_row(&r).unwrap();
        assert_eq!(s.memory.created_at.epoch_micros(), 1_600_000_000_500_000);
        assert_eq!(s.memory.updated_at, s.memory.created_at);
        assert!(s.memory.tags.is_empty());
    }

    #[test]
    fn vector_ids_are_the_hash_or_a_namespaced_digest() {
        let h = ContentHash::of("x");
        assert_eq!(vector_id(None, &h), h.as_str());
        let a = vector_id(Some("a"), &h);
        assert_eq!(a.len(), 64);
        assert_ne!(a, vector_id(Some("b"), &h));
    }

    #[test]
    fn prefixes_cut_on_character_boundaries() {
        assert_eq!(prefix_chars("üüü", 2), "üü");
        assert_eq!(prefix_chars("ab", 5), "ab");
    }
}
