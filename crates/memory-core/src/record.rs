//! [`MemoryRecord`]: a memory as JSON, the one shape of the export file, the import file,
//! the MCP tools' memory objects and `--json` output.
//!
//! The shape is the Python service's (its `Memory` dataclass, its export, and the memory
//! objects its `MemoryService` hands to the MCP and HTTP layers): upstream's field names, each
//! time twice (epoch seconds and ISO-8601), and the vector only when asked for.
//!
//! ```
//! use memory_core::{HashCheck, Memory, MemoryRecord, Tags};
//! let m = Memory::new("Use rustls, not openssl")?.with_tags(Tags::parse("decision,tls")?);
//! let json = serde_json::to_string(&MemoryRecord::from(&m)).unwrap();
//! assert!(json.starts_with(r#"{"content":"Use rustls, not openssl","content_hash":""#));
//! let back: MemoryRecord = serde_json::from_str(&json).unwrap();
//! assert_eq!(back.into_memory(HashCheck::Verify)?, m);
//! # Ok::<(), memory_core::ValidationError>(())
//! ```
//!
//! Reading is lenient where upstream's files vary and strict where a mistake would corrupt a
//! store; every refusal names its field ([`RecordError`]):
//!
//! * `tags`: an array of strings, a comma-separated or JSON-array string, or `null`;
//! * `metadata`: an object, JSON text of an object (upstream's rows keep it so), or `null`;
//! * times: epoch seconds (a number), an ISO-8601 string in the seconds field, the `_iso` field
//!   alone, or nothing (now; `updated_at` then defaults to `created_at`);
//! * `content_hash`: optional; whether it must be the hash of the content is the reader's
//!   choice ([`HashCheck`]), made when the record becomes a [`Memory`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::json_kind;
use crate::memory::{normalise_memory_type, validate_content};
use crate::{ContentHash, Memory, Metadata, Tags, Timestamp, ValidationError};

/// One memory as JSON.
///
/// On the wire, in this order (an export line is exactly this):
///
/// | field | JSON | meaning |
/// | --- | --- | --- |
/// | `content` | string | the text, exactly as stored |
/// | `content_hash` | string or `null` | SHA-256 of the stripped, lower-cased content (the id) |
/// | `tags` | array of strings | normalised tags, in order |
/// | `memory_type` | string or `null` | `note`, `decision`, ... |
/// | `metadata` | object | caller-defined fields |
/// | `created_at` | number | epoch seconds, microsecond fraction |
/// | `created_at_iso` | string | the same instant, ISO-8601 UTC with microseconds |
/// | `updated_at` | number | epoch seconds of the last change |
/// | `updated_at_iso` | string | the same instant, ISO-8601 |
/// | `embedding` | array of numbers | the vector; absent unless carried |
/// | `embedding_model` | string | the model that made `embedding`; absent unless carried |
///
/// The Rust fields hold each time once, as a [`Timestamp`], so its two renderings cannot
/// disagree.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryRecord {
    /// The text, exactly as given (never trimmed: the hash ignores surrounding white space,
    /// the content keeps it).
    pub content: String,
    /// The id as written or read: always the memory's hash when built from a [`Memory`];
    /// optional when read, and checked against the content by [`MemoryRecord::into_memory`].
    pub content_hash: Option<ContentHash>,
    /// Normalised tags, in order.
    pub tags: Tags,
    /// The memory type, trimmed; `None` when not given or blank.
    pub memory_type: Option<String>,
    /// Caller-defined JSON object (`tags` and `type` keys are left as they are; see
    /// [`Memory::lift_reserved_metadata`]).
    pub metadata: Metadata,
    /// When the memory was first stored (`created_at` and `created_at_iso` on the wire).
    pub created_at: Timestamp,
    /// When the memory was last changed (`updated_at` and `updated_at_iso` on the wire).
    pub updated_at: Timestamp,
    /// The vector, when carried (an export with `--embeddings`, or a memory holding one).
    pub embedding: Option<Vec<f32>>,
    /// The model that made [`embedding`](Self::embedding), when known.
    pub embedding_model: Option<String>,
}

/// Whether a record's `content_hash` must be the hash of its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashCheck {
    /// A supplied hash that is not the content's is refused
    /// ([`ValidationError::HashMismatch`]): a memory under another text's id would make that
    /// text a "duplicate" of it forever.
    Verify,
    /// A supplied hash is ignored and the memory gets the hash of its content (exports of
    /// older versions that hashed metadata too).
    Rehash,
}

/// A JSON value that is not a record, naming the field at fault (`None`: the whole value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// The field at fault, as spelled on the wire.
    pub field: Option<&'static str>,
    /// What is wrong with it.
    pub reason: String,
}

impl RecordError {
    /// An error about `field`.
    pub fn field(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            reason: reason.into(),
        }
    }

    /// An error about the whole value.
    pub fn whole(reason: impl Into<String>) -> Self {
        Self {
            field: None,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.field {
            Some(field) => write!(f, "field `{field}`: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for RecordError {}

impl MemoryRecord {
    /// Replaces the carried vector and its model id (`None` drops them).
    #[must_use]
    pub fn with_vector(mut self, embedding: Option<Vec<f32>>, model: Option<String>) -> Self {
        self.embedding = embedding;
        self.embedding_model = model;
        self
    }

    /// Reads a record from a JSON value, checking every field (see the module docs). A
    /// supplied `content_hash` is only parsed here; [`MemoryRecord::into_memory`] checks it.
    ///
    /// # Errors
    ///
    /// [`RecordError`] naming the first field at fault.
    pub fn from_value(value: Value) -> Result<Self, RecordError> {
        let Value::Object(obj) = value else {
            return Err(RecordError::whole(format!(
                "expected a JSON object, found {}",
                json_kind(&value)
            )));
        };
        let content = match obj.get("content") {
            None | Some(Value::Null) => return Err(RecordError::field("content", "missing")),
            Some(Value::String(s)) => {
                validate_content(s).map_err(|e| RecordError::field("content", e.to_string()))?;
                s.clone()
            }
            Some(other) => return Err(expected("content", "a string", other)),
        };
        let content_hash = match obj.get("content_hash") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(
                s.parse::<ContentHash>()
                    .map_err(|e| RecordError::field("content_hash", e.to_string()))?,
            ),
            Some(other) => {
                return Err(expected("content_hash", "a 64-character hex string", other));
            }
        };
        let tags = match obj.get("tags") {
            None => Tags::empty(),
            Some(v) => Tags::from_json(v).map_err(|e| RecordError::field("tags", e.to_string()))?,
        };
        let memory_type = match obj.get("memory_type") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => normalise_memory_type(s)
                .map_err(|e| RecordError::field("memory_type", e.to_string()))?,
            Some(other) => return Err(expected("memory_type", "a string", other)),
        };
        let metadata = match obj.get("metadata") {
            None | Some(Value::Null) => Metadata::new(),
            // Upstream's SQLite rows keep metadata as JSON text.
            Some(Value::String(s)) => {
                Metadata::parse(s).map_err(|e| RecordError::field("metadata", e.to_string()))?
            }
            Some(v @ Value::Object(_)) => Metadata::from_value(v.clone())
                .map_err(|e| RecordError::field("metadata", e.to_string()))?,
            Some(other) => return Err(expected("metadata", "a JSON object", other)),
        };
        let created_at =
            time_field(&obj, "created_at", "created_at_iso")?.unwrap_or_else(Timestamp::now);
        let updated_at = time_field(&obj, "updated_at", "updated_at_iso")?.unwrap_or(created_at);
        let embedding_model = match obj.get("embedding_model") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(expected("embedding_model", "a model id string", other)),
        };
        let embedding = match obj.get("embedding") {
            None | Some(Value::Null) => None,
            Some(Value::Array(values)) => {
                let mut v = Vec::with_capacity(values.len());
                for (i, x) in values.iter().enumerate() {
                    match x.as_f64() {
                        Some(f) if f.is_finite() && (f as f32).is_finite() => v.push(f as f32),
                        _ => {
                            return Err(RecordError::field(
                                "embedding",
                                format!(
                                    "element {i} is {}, expected a finite number",
                                    json_kind(x)
                                ),
                            ));
                        }
                    }
                }
                Some(v)
            }
            Some(other) => return Err(expected("embedding", "an array of numbers", other)),
        };
        Ok(Self {
            content,
            content_hash,
            tags,
            memory_type,
            metadata,
            created_at,
            updated_at,
            embedding,
            embedding_model,
        })
    }

    /// The memory this record describes, with the hash of its content as its id (the
    /// vector is kept; its model id is not part of a memory).
    ///
    /// # Errors
    ///
    /// [`ValidationError::HashMismatch`] when `check` is [`HashCheck::Verify`] and the
    /// supplied hash is not the content's; [`ValidationError::EmptyContent`] and
    /// [`ValidationError::ContentTooLarge`] for content a memory cannot hold (a record read
    /// by [`MemoryRecord::from_value`] was checked already).
    pub fn into_memory(self, check: HashCheck) -> Result<Memory, ValidationError> {
        validate_content(&self.content)?;
        let computed = ContentHash::of(&self.content);
        if let Some(supplied) = self.content_hash
            && supplied != computed
            && check == HashCheck::Verify
        {
            return Err(ValidationError::HashMismatch { supplied, computed });
        }
        Ok(Memory::from_parts(
            self.content,
            computed,
            self.tags,
            self.memory_type,
            self.metadata,
            self.embedding,
            self.created_at,
            self.updated_at,
        ))
    }
}

fn expected(field: &'static str, what: &str, found: &Value) -> RecordError {
    RecordError::field(
        field,
        format!("expected {what}, found {}", json_kind(found)),
    )
}

/// Reads one time from its epoch-seconds field `secs` (a number, or an ISO-8601 string as
/// some writers put there) and its ISO field `iso`. When both are given and the ISO time
/// renders as exactly the given seconds, the ISO time is taken: it keeps every microsecond,
/// which seconds in an `f64` do not for all years. Otherwise the seconds win, as upstream
/// prefers them when the two disagree.
fn time_field(
    obj: &serde_json::Map<String, Value>,
    secs: &'static str,
    iso: &'static str,
) -> Result<Option<Timestamp>, RecordError> {
    let from_secs = match obj.get(secs) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            let f = n
                .as_f64()
                .ok_or_else(|| RecordError::field(secs, "not a finite number"))?;
            let t = Timestamp::from_epoch_seconds_for(secs, f)
                .map_err(|e| RecordError::field(secs, e.to_string()))?;
            Some((t, Some(f)))
        }
        Some(Value::String(s)) => Some((
            Timestamp::parse_iso(s).map_err(|e| RecordError::field(secs, e.to_string()))?,
            None,
        )),
        Some(other) => {
            return Err(expected(secs, "epoch seconds or an ISO-8601 string", other));
        }
    };
    let from_iso = match obj.get(iso) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            // A bad ISO field beside good seconds is still a bad field.
            Some(Timestamp::parse_iso(s).map_err(|e| RecordError::field(iso, e.to_string()))?)
        }
        Some(other) => return Err(expected(iso, "an ISO-8601 string", other)),
    };
    Ok(match (from_secs, from_iso) {
        (Some((_, Some(f))), Some(exact)) if exact.epoch_seconds() == f => Some(exact),
        (Some((t, _)), _) => Some(t),
        (None, exact) => exact,
    })
}

/// The wire form, borrowed: one field order for records and memories.
#[derive(Serialize)]
struct Wire<'a> {
    content: &'a str,
    content_hash: Option<&'a ContentHash>,
    tags: &'a Tags,
    memory_type: Option<&'a str>,
    metadata: &'a Metadata,
    created_at: Timestamp,
    created_at_iso: String,
    updated_at: Timestamp,
    updated_at_iso: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    embedding: Option<&'a [f32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    embedding_model: Option<&'a str>,
}

impl<'a> Wire<'a> {
    fn of_record(r: &'a MemoryRecord) -> Self {
        Self {
            content: &r.content,
            content_hash: r.content_hash.as_ref(),
            tags: &r.tags,
            memory_type: r.memory_type.as_deref(),
            metadata: &r.metadata,
            created_at: r.created_at,
            created_at_iso: r.created_at.to_iso(),
            updated_at: r.updated_at,
            updated_at_iso: r.updated_at.to_iso(),
            embedding: r.embedding.as_deref(),
            embedding_model: r.embedding_model.as_deref(),
        }
    }

    fn of_memory(m: &'a Memory) -> Self {
        Self {
            content: m.content(),
            content_hash: Some(m.content_hash()),
            tags: &m.tags,
            memory_type: m.memory_type.as_deref(),
            metadata: &m.metadata,
            created_at: m.created_at,
            created_at_iso: m.created_at.to_iso(),
            updated_at: m.updated_at,
            updated_at_iso: m.updated_at.to_iso(),
            embedding: m.embedding.as_deref(),
            embedding_model: None,
        }
    }
}

impl Serialize for MemoryRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire::of_record(self).serialize(s)
    }
}

/// Reads as [`MemoryRecord::from_value`] does; the error names the field.
impl<'de> Deserialize<'de> for MemoryRecord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Self::from_value(value).map_err(serde::de::Error::custom)
    }
}

impl From<&Memory> for MemoryRecord {
    /// Everything the memory holds, its vector included; no model id (a memory does not
    /// know it: add it with [`MemoryRecord::with_vector`]).
    fn from(m: &Memory) -> Self {
        Self {
            content: m.content().to_owned(),
            content_hash: Some(m.content_hash().clone()),
            tags: m.tags.clone(),
            memory_type: m.memory_type.clone(),
            metadata: m.metadata.clone(),
            created_at: m.created_at,
            updated_at: m.updated_at,
            embedding: m.embedding.clone(),
            embedding_model: None,
        }
    }
}

impl From<Memory> for MemoryRecord {
    /// As `From<&Memory>`, without copying.
    fn from(mut m: Memory) -> Self {
        let content_hash = Some(m.content_hash().clone());
        Self {
            content_hash,
            tags: std::mem::take(&mut m.tags),
            memory_type: m.memory_type.take(),
            metadata: std::mem::take(&mut m.metadata),
            created_at: m.created_at,
            updated_at: m.updated_at,
            embedding: m.embedding.take(),
            embedding_model: None,
            content: m.into_content(),
        }
    }
}

/// A memory serialises as its record ([`MemoryRecord`]'s wire form, no model id).
impl Serialize for Memory {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire::of_memory(self).serialize(s)
    }
}

/// A memory reads as its record, with [`HashCheck::Verify`]: the hash is always the hash of
/// the content, and a supplied one that disagrees is refused.
impl<'de> Deserialize<'de> for Memory {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        MemoryRecord::deserialize(d)?
            .into_memory(HashCheck::Verify)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn read(v: Value) -> Result<MemoryRecord, String> {
        MemoryRecord::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn the_wire_form_is_upstreams_fields_in_export_order() {
        let m = Memory::new("  Buy milk ")
            .unwrap()
            .with_tags(Tags::parse("errand,Shop").unwrap())
            .with_memory_type("task")
            .unwrap()
            .with_metadata(Metadata::parse(r#"{"b": 1, "a": [true, null]}"#).unwrap())
            .with_created_at(Timestamp::from_epoch_seconds(1_700_000_000.25).unwrap());
        let hash = ContentHash::of("buy milk");
        let line = serde_json::to_string(&MemoryRecord::from(&m)).unwrap();
        assert_eq!(
            line,
            format!(
                r#"{{"content":"  Buy milk ","content_hash":"{hash}","tags":["errand","shop"],"memory_type":"task","metadata":{{"a":[true,null],"b":1}},"created_at":1700000000.25,"created_at_iso":"2023-11-14T22:13:20.250000Z","updated_at":1700000000.25,"updated_at_iso":"2023-11-14T22:13:20.250000Z"}}"#
            )
        );
        // A memory serialises exactly as its record.
        assert_eq!(serde_json::to_string(&m).unwrap(), line);
        let with = MemoryRecord::from(&m).with_vector(Some(vec![0.5, -1.0]), Some("acme/m".into()));
        let line = serde_json::to_string(&with).unwrap();
        assert!(
            line.ends_with(r#""embedding":[0.5,-1.0],"embedding_model":"acme/m"}"#),
            "{line}"
        );
    }

    #[test]
    fn missing_times_are_now_and_updated_defaults_to_created() {
        let before = Timestamp::now();
        let r = read(json!({"content": "Hi"})).unwrap();
        assert!(r.created_at >= before);
        assert_eq!(r.updated_at, r.created_at);
        assert_eq!(r.content_hash, None);
        let m = r.into_memory(HashCheck::Verify).unwrap();
        assert_eq!(m.content_hash(), &ContentHash::of("hi"));
        let r = read(json!({"content": "Hi", "created_at": 10.5})).unwrap();
        assert_eq!(r.updated_at.epoch_seconds(), 10.5);
    }

    #[test]
    fn times_are_read_from_seconds_iso_or_either_field() {
        let iso = |v: Value| read(v).unwrap().created_at.to_iso();
        assert_eq!(
            iso(json!({"content": "x", "created_at_iso": "2024-01-02T03:04:05Z"})),
            "2024-01-02T03:04:05.000000Z"
        );
        assert_eq!(
            iso(json!({"content": "x", "created_at": "2024-01-02T03:04:05+01:00"})),
            "2024-01-02T02:04:05.000000Z"
        );
        // Seconds win when the two disagree (as upstream prefers them).
        assert_eq!(
            iso(
                json!({"content": "x", "created_at": 0.5, "created_at_iso": "2024-01-02T03:04:05Z"})
            ),
            "1970-01-01T00:00:00.500000Z"
        );
        // The ISO field keeps the microsecond that seconds in an f64 round away.
        let t = Timestamp::from_epoch_micros(3_999_999_999_999_999_999).unwrap();
        let r = read(
            json!({"content": "x", "created_at": t.epoch_seconds(), "created_at_iso": t.to_iso()}),
        )
        .unwrap();
        assert_eq!(r.created_at, t);
    }

    #[test]
    fn bad_fields_are_named() {
        let err = |v: Value| read(v).unwrap_err();
        assert_eq!(err(json!([1])), "expected a JSON object, found an array");
        assert_eq!(err(json!({"tags": []})), "field `content`: missing");
        assert_eq!(
            err(json!({"content": 5})),
            "field `content`: expected a string, found a number"
        );
        assert!(err(json!({"content": " \u{200b} "})).starts_with("field `content`: content"));
        assert!(
            err(json!({"content": "x", "content_hash": "abc"})).starts_with("field `content_hash`")
        );
        assert_eq!(
            err(json!({"content": "x", "tags": ["a", 2]})),
            "field `tags`: element 1 is a number, expected a string"
        );
        assert_eq!(
            err(json!({"content": "x", "memory_type": 1})),
            "field `memory_type`: expected a string, found a number"
        );
        assert!(
            err(json!({"content": "x", "metadata": "{\"a\": NaN}"}))
                .starts_with("field `metadata`")
        );
        assert!(err(json!({"content": "x", "metadata": [1]})).starts_with("field `metadata`"));
        assert!(
            err(json!({"content": "x", "created_at": "yesterday"}))
                .starts_with("field `created_at`")
        );
        assert_eq!(
            err(json!({"content": "x", "updated_at": true})),
            "field `updated_at`: expected epoch seconds or an ISO-8601 string, found a boolean"
        );
        assert!(
            err(json!({"content": "x", "updated_at_iso": "soon"}))
                .starts_with("field `updated_at_iso`")
        );
        assert_eq!(
            err(json!({"content": "x", "embedding": [0.1, "NaN"]})),
            "field `embedding`: element 1 is a string, expected a finite number"
        );
        assert_eq!(
            err(json!({"content": "x", "embedding": [1e300]})),
            "field `embedding`: element 0 is a number, expected a finite number"
        );
        assert_eq!(
            err(json!({"content": "x", "embedding_model": 3})),
            "field `embedding_model`: expected a model id string, found a number"
        );
    }

    #[test]
    fn lenient_shapes_of_upstream_files_are_read() {
        let r = read(json!({
            "content": "x", "tags": "B, a", "metadata": "{\"k\": 1}", "memory_type": "  ",
            "embedding": null, "embedding_model": null, "id": 7
        }))
        .unwrap();
        assert_eq!(r.tags.as_slice(), ["b", "a"]);
        assert_eq!(r.metadata.to_json_string(), r#"{"k":1}"#);
        assert_eq!(r.memory_type, None);
        let r = read(json!({"content": "x", "tags": null, "metadata": null})).unwrap();
        assert!(r.tags.is_empty() && r.metadata.is_empty());
    }

    #[test]
    fn a_hash_of_other_content_is_refused_unless_rehashed() {
        let other = ContentHash::of("other text");
        let r = read(json!({"content": "buy milk", "content_hash": other})).unwrap();
        let err = r.clone().into_memory(HashCheck::Verify).unwrap_err();
        assert_eq!(
            err,
            ValidationError::HashMismatch {
                supplied: other,
                computed: ContentHash::of("buy milk")
            }
        );
        let m = r.into_memory(HashCheck::Rehash).unwrap();
        assert_eq!(m.content_hash(), &ContentHash::of("buy milk"));
        // Through serde the same refusal names the field.
        let json = format!(
            r#"{{"content":"buy milk","content_hash":"{}"}}"#,
            ContentHash::of("x")
        );
        let err = serde_json::from_str::<Memory>(&json)
            .unwrap_err()
            .to_string();
        assert!(err.contains("content_hash"), "{err}");
        // A record carrying no hash writes null and reads back without one.
        let r = read(json!({"content": "x"})).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["content_hash"], Value::Null);
        assert_eq!(read(v).unwrap(), r);
    }

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::from),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        json_leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("\\PC{0,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Any instant a timestamp takes from epoch seconds: years 1906–2096 (where seconds in
    /// an `f64` keep microseconds to within rounding) and ±250,000 years (where they do not).
    fn micros() -> impl Strategy<Value = i64> {
        prop_oneof![
            -2_000_000_000_000_000i64..4_000_000_000_000_000i64,
            -8_000_000_000_000_000_000i64..8_000_000_000_000_000_000i64,
        ]
    }

    prop_compose! {
        fn arb_memory()(
            content in "[ \\t\\n]{0,2}\\PC{1,80}[ \\t\\n]{0,2}",
            tags in proptest::collection::vec("\\PC{0,20}", 0..8),
            memory_type in proptest::option::of("\\PC{0,20}"),
            metadata in proptest::collection::btree_map("\\PC{0,10}", json_value(), 0..5),
            created in micros(),
            updated in micros(),
            embedding in proptest::option::of(proptest::collection::vec(
                any::<f32>().prop_filter("finite", |f| f.is_finite()), 0..8)),
        ) -> Option<Memory> {
            let mut m = Memory::new(content).ok()?
                .with_tags(Tags::from_list(tags).ok()?)
                .with_metadata(Metadata::from(metadata.into_iter().collect::<serde_json::Map<_, _>>()));
            if let Some(t) = memory_type {
                m = m.with_memory_type(t).ok()?;
            }
            m.created_at = Timestamp::from_epoch_micros(created)?;
            m.updated_at = Timestamp::from_epoch_micros(updated)?;
            m.embedding = embedding;
            Some(m)
        }
    }

    proptest! {
        #[test]
        fn memory_record_json_record_memory_is_the_same_memory(m in arb_memory()) {
            let Some(m) = m else { return Ok(()) };
            let record = MemoryRecord::from(&m);
            let text = serde_json::to_string(&record).unwrap();
            let back: MemoryRecord = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&back, &record);
            prop_assert_eq!(back.into_memory(HashCheck::Verify).unwrap(), m.clone());
            // By value, and through the memory's own serde, the same.
            prop_assert_eq!(MemoryRecord::from(m.clone()), record);
            prop_assert_eq!(serde_json::to_string(&m).unwrap(), text.clone());
            prop_assert_eq!(serde_json::from_str::<Memory>(&text).unwrap(), m);
        }
    }
}
