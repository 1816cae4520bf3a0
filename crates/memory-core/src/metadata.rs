//! [`Metadata`]: a memory's free-form JSON object.
//!
//! ```
//! use memory_core::Metadata;
//! let m = Metadata::parse(r#"{"source": "chat", "score": 0.5}"#)?;
//! assert_eq!(m.get("source").and_then(|v| v.as_str()), Some("chat"));
//! assert!(Metadata::parse(r#"{"x": NaN}"#).is_err());
//! assert!(Metadata::parse("[1, 2]").is_err());
//! # Ok::<(), memory_core::ValidationError>(())
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ValidationError;
// Lives in `error` (the vocabulary of error messages) so `tags` can use it without importing
// this module, which imports `tags`; re-exported here, its public path.
pub use crate::error::json_kind;

/// A JSON object of caller-defined fields. Numbers are always finite (JSON has no NaN).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Metadata(Map<String, Value>);

impl Metadata {
    /// An empty object.
    pub fn new() -> Self {
        Self(Map::new())
    }

    /// Parses a JSON object from text. `NaN`/`Infinity`, arrays, scalars and bad JSON are refused.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| ValidationError::InvalidMetadata {
                reason: format!("not valid JSON ({e}); NaN and Infinity are not JSON numbers"),
            })?;
        Self::from_value(value)
    }

    /// Accepts a JSON value if it is an object (`null` gives an empty object).
    pub fn from_value(value: Value) -> Result<Self, ValidationError> {
        match value {
            Value::Object(map) => Ok(Self(map)),
            Value::Null => Ok(Self::new()),
            other => Err(ValidationError::InvalidMetadata {
                reason: format!("must be a JSON object, got {}", json_kind(&other)),
            }),
        }
    }

    /// Sets a number field, refusing NaN and infinities.
    pub fn insert_f64(
        &mut self,
        key: impl Into<String>,
        value: f64,
    ) -> Result<(), ValidationError> {
        let key = key.into();
        let n = serde_json::Number::from_f64(value).ok_or_else(|| {
            ValidationError::InvalidMetadata {
                reason: format!("field {key:?}: {value} is not a finite number"),
            }
        })?;
        self.0.insert(key, Value::Number(n));
        Ok(())
    }

    /// Sets a field.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        self.0.insert(key.into(), value.into())
    }

    /// Reads a field.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// Shallow merge: every key of `other` replaces the same key here.
    pub fn merge(&mut self, other: Metadata) {
        for (k, v) in other.0 {
            self.0.insert(k, v);
        }
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The underlying map.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The JSON text of the object.
    pub fn to_json_string(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }

    /// Consumes into a JSON value.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

/// What [`Metadata::take_reserved`] lifted out of a metadata object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reserved {
    /// `metadata.tags`, normalised, when it was present and not null.
    pub tags: Option<crate::Tags>,
    /// `metadata.type`, normalised (`Some(None)` for an empty string), when present and not null.
    pub memory_type: Option<Option<String>>,
}

impl Metadata {
    /// The metadata keys that belong to a memory's own fields: `tags` and `type`.
    pub const RESERVED: [&'static str; 2] = ["tags", "type"];

    /// Removes `tags` and `type` from the object and returns them parsed, as the Python
    /// service does (it moves `metadata.tags` into the memory's tags and `metadata.type`
    /// into its type, so tag search finds them and they never shadow the real fields).
    ///
    /// `tags` may be a list of strings, a comma-separated string or a JSON-array string;
    /// `type` a string. `null` is removed and ignored.
    ///
    /// ```
    /// use memory_core::Metadata;
    /// let mut m = Metadata::parse(r#"{"tags": "a, B", "type": "decision", "k": 1}"#)?;
    /// let lifted = m.take_reserved()?;
    /// assert_eq!(lifted.tags.unwrap().as_slice(), ["a", "b"]);
    /// assert_eq!(lifted.memory_type, Some(Some("decision".to_owned())));
    /// assert_eq!(m.to_json_string(), r#"{"k":1}"#);
    /// # Ok::<(), memory_core::ValidationError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ValidationError::InvalidMetadata`] naming `metadata.tags` or `metadata.type` when
    /// one has the wrong JSON type; tag and type rule errors as for the real fields.
    pub fn take_reserved(&mut self) -> Result<Reserved, ValidationError> {
        let tags = match self.0.get("tags") {
            None | Some(Value::Null) => None,
            Some(v) => Some(crate::Tags::from_json(v).map_err(|e| match e {
                crate::tags::TagJsonError::Rule(rule) => rule,
                shape => ValidationError::InvalidMetadata {
                    reason: format!("metadata.tags: {shape}"),
                },
            })?),
        };
        let memory_type = match self.0.get("type") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(crate::memory::normalise_memory_type(s)?),
            Some(other) => {
                return Err(ValidationError::InvalidMetadata {
                    reason: format!("metadata.type is {}; give a string", json_kind(other)),
                });
            }
        };
        for key in Self::RESERVED {
            self.0.remove(key);
        }
        Ok(Reserved { tags, memory_type })
    }
}

impl From<Map<String, Value>> for Metadata {
    fn from(map: Map<String, Value>) -> Self {
        Self(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_in_text_is_refused_naming_metadata() {
        let err = Metadata::parse(r#"{"a": NaN}"#).unwrap_err();
        assert_eq!(err.field(), "metadata");
    }

    #[test]
    fn insert_f64_refuses_non_finite() {
        let mut m = Metadata::new();
        assert!(m.insert_f64("x", f64::NAN).is_err());
        assert!(m.insert_f64("x", f64::NEG_INFINITY).is_err());
        assert!(m.insert_f64("x", 1.5).is_ok());
    }

    #[test]
    fn merge_replaces_same_keys_and_keeps_others() {
        let mut a = Metadata::parse(r#"{"a":1,"b":2}"#).unwrap();
        a.merge(Metadata::parse(r#"{"b":3,"c":4}"#).unwrap());
        assert_eq!(a.to_json_string(), r#"{"a":1,"b":3,"c":4}"#);
    }
}
