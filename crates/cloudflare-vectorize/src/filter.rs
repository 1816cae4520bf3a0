//! [`Filter`]: a metadata filter for queries, built with typed methods or parsed from JSON,
//! and validated against Vectorize's rules before sending.
//!
//! Shape: `{"<property>": <scalar>}` (equality) or `{"<property>": {"$op": <operand>, ...}}`
//! with the operators `$eq $ne $lt $lte $gt $gte` (a string, number, boolean or null
//! operand) and `$in $nin` (an array of those). A dotted key (`"author.id"`) addresses a
//! nested property. Filtering on a property needs a metadata index on it.
//!
//! See <https://developers.cloudflare.com/vectorize/reference/metadata-filtering/>.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::VectorizeError;
use crate::{MAX_FILTER_BYTES, MAX_FILTER_KEY_CHARS};

/// The filter operators Vectorize supports.
pub(crate) const OPERATORS: [&str; 8] = ["$eq", "$ne", "$in", "$nin", "$lt", "$lte", "$gt", "$gte"];

/// A metadata filter: a JSON object mapping property names to conditions.
///
/// ```
/// use cloudflare_vectorize::Filter;
/// use serde_json::json;
///
/// let filter = Filter::new().eq("kind", "note").gte("year", 2024).nin("tag", ["x", "y"]);
/// assert_eq!(
///     filter.to_value(),
///     json!({"kind": {"$eq": "note"}, "year": {"$gte": 2024}, "tag": {"$nin": ["x", "y"]}})
/// );
/// assert!(filter.validate().is_ok());
/// assert!(Filter::from_value(json!({"kind": {"$like": "n%"}})).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Filter(Map<String, Value>);

impl Filter {
    /// An empty filter (invalid until a condition is added).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses and validates a filter given as JSON.
    ///
    /// # Errors
    ///
    /// As [`Filter::validate`], or [`VectorizeError::InvalidFilter`] if `value` is not an
    /// object.
    pub fn from_value(value: Value) -> Result<Self, VectorizeError> {
        let Value::Object(map) = value else {
            return Err(VectorizeError::InvalidFilter {
                reason: format!("a filter must be a JSON object, not {}", kind(&value)),
            });
        };
        let filter = Self(map);
        filter.validate()?;
        Ok(filter)
    }

    /// The filter as JSON.
    #[must_use]
    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }

    /// The filter's conditions by property.
    #[must_use]
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// Adds `operator: operand` to `key`'s conditions (several operators on one key make
    /// a range, e.g. `$gte` and `$lt`).
    #[must_use]
    pub fn condition(mut self, key: impl Into<String>, operator: &str, operand: Value) -> Self {
        let key = key.into();
        let entry = self
            .0
            .entry(key)
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            // An implicit equality (`"k": v`) becomes `{"$eq": v}` so operators can join it.
            let eq = entry.take();
            *entry = Value::Object(Map::from_iter([("$eq".to_owned(), eq)]));
        }
        if let Value::Object(conditions) = entry {
            conditions.insert(operator.to_owned(), operand);
        }
        self
    }

    /// `key` equals `value`.
    #[must_use]
    pub fn eq(self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.condition(key, "$eq", value.into())
    }

    /// `key` differs from `value`.
    #[must_use]
    pub fn ne(self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.condition(key, "$ne", value.into())
    }

    /// `key` is one of `values`.
    #[must_use]
    pub fn in_<V: Into<Value>>(
        self,
        key: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        let values = values.into_iter().map(Into::into).collect();
        self.condition(key, "$in", Value::Array(values))
    }

    /// `key` is none of `values`.
    #[must_use]
    pub fn nin<V: Into<Value>>(
        self,
        key: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        let values = values.into_iter().map(Into::into).collect();
        self.condition(key, "$nin", Value::Array(values))
    }

    /// `key` is less than `value`.
    #[must_use]
    pub fn lt(self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.condition(key, "$lt", value.into())
    }

    /// `key` is at most `value`.
    #[must_use]
    pub fn lte(self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.condition(key, "$lte", value.into())
    }

    /// `key` is greater than `value`.
    #[must_use]
    pub fn gt(self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.condition(key, "$gt", value.into())
    }

    /// `key` is at least `value`.
    #[must_use]
    pub fn gte(self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.condition(key, "$gte", value.into())
    }

    /// Checks the filter against Vectorize's rules: a non-empty object under
    /// [`MAX_FILTER_BYTES`] as compact JSON; keys non-empty, without `"`, not starting with
    /// `$`, at most [`MAX_FILTER_KEY_CHARS`] characters, without empty dotted segments;
    /// values scalars or objects of known [`OPERATORS`] with scalar (or, for `$in`/`$nin`,
    /// array of scalars) operands.
    ///
    /// # Errors
    ///
    /// [`VectorizeError::InvalidFilter`], [`VectorizeError::FilterKeyTooLong`] or
    /// [`VectorizeError::FilterTooLarge`].
    pub fn validate(&self) -> Result<(), VectorizeError> {
        if self.0.is_empty() {
            return Err(invalid(
                "the filter is empty; add a condition or send no filter".to_owned(),
            ));
        }
        for (key, condition) in &self.0 {
            validate_key(key)?;
            match condition {
                Value::Object(operators) => {
                    if operators.is_empty() {
                        return Err(invalid(format!("the condition on {key:?} is empty")));
                    }
                    for (operator, operand) in operators {
                        validate_operator(key, operator, operand)?;
                    }
                }
                Value::Array(_) => {
                    return Err(invalid(format!(
                        "the condition on {key:?} is an array; use {{\"$in\": [...]}}"
                    )));
                }
                _ => {}
            }
        }
        let actual = serde_json::to_vec(&self.0).map_or(usize::MAX, |bytes| bytes.len());
        if actual >= MAX_FILTER_BYTES {
            return Err(VectorizeError::FilterTooLarge { actual });
        }
        Ok(())
    }
}

impl TryFrom<Value> for Filter {
    type Error = VectorizeError;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        Self::from_value(value)
    }
}

fn invalid(reason: String) -> VectorizeError {
    VectorizeError::InvalidFilter { reason }
}

fn validate_key(key: &str) -> Result<(), VectorizeError> {
    if key.is_empty() {
        return Err(invalid("a filter key is empty".to_owned()));
    }
    if key.contains('"') {
        return Err(invalid(format!(
            "filter key {key:?} contains a double quote"
        )));
    }
    if key.starts_with('$') {
        return Err(invalid(format!(
            "filter key {key:?} starts with '$'; operators go inside a property's condition, \
             e.g. {{\"year\": {{\"$gte\": 2024}}}}"
        )));
    }
    if key.split('.').any(str::is_empty) {
        return Err(invalid(format!(
            "filter key {key:?} has an empty dotted segment (dots separate nested properties)"
        )));
    }
    let chars = key.chars().count();
    if chars > MAX_FILTER_KEY_CHARS {
        return Err(VectorizeError::FilterKeyTooLong { actual: chars });
    }
    Ok(())
}

fn validate_operator(key: &str, operator: &str, operand: &Value) -> Result<(), VectorizeError> {
    match operator {
        "$eq" | "$ne" | "$lt" | "$lte" | "$gt" | "$gte" => {
            if !is_scalar(operand) {
                return Err(invalid(format!(
                    "{operator} on {key:?} takes a string, number, boolean or null, not {}",
                    kind(operand)
                )));
            }
        }
        "$in" | "$nin" => match operand {
            Value::Array(items) => {
                if let Some(item) = items.iter().find(|v| !is_scalar(v)) {
                    return Err(invalid(format!(
                        "{operator} on {key:?} takes an array of strings, numbers, booleans or \
                         nulls, but it holds {}",
                        kind(item)
                    )));
                }
            }
            other => {
                return Err(invalid(format!(
                    "{operator} on {key:?} takes an array, not {}",
                    kind(other)
                )));
            }
        },
        other => {
            return Err(invalid(format!(
                "unknown operator {other:?} on {key:?}; Vectorize supports {}",
                OPERATORS.join(" ")
            )));
        }
    }
    Ok(())
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reason(value: Value) -> String {
        match Filter::from_value(value) {
            Err(VectorizeError::InvalidFilter { reason }) => reason,
            other => panic!("expected InvalidFilter, got {other:?}"),
        }
    }

    #[test]
    fn builder_produces_operator_objects_and_ranges() {
        let filter = Filter::new()
            .eq("kind", "note")
            .ne("deleted", true)
            .gte("year", 2020)
            .lt("year", 2025)
            .lte("score", 0.5)
            .gt("rank", 1)
            .in_("tag", ["a", "b"])
            .nin("lang", ["de"]);
        assert_eq!(
            filter.to_value(),
            json!({
                "kind": {"$eq": "note"},
                "deleted": {"$ne": true},
                "year": {"$gte": 2020, "$lt": 2025},
                "score": {"$lte": 0.5},
                "rank": {"$gt": 1},
                "tag": {"$in": ["a", "b"]},
                "lang": {"$nin": ["de"]},
            })
        );
        filter.validate().unwrap();
        assert_eq!(serde_json::to_value(&filter).unwrap(), filter.to_value());
    }

    #[test]
    fn implicit_equality_joins_operators() {
        let filter = Filter::from_value(json!({"kind": "note"}))
            .unwrap()
            .ne("kind", "draft");
        assert_eq!(
            filter.to_value(),
            json!({"kind": {"$eq": "note", "$ne": "draft"}})
        );
    }

    #[test]
    fn accepts_the_spec_example_and_nested_keys() {
        Filter::from_value(json!({"has_viewed": {"$ne": true}, "streaming_platform": "netflix"}))
            .unwrap();
        Filter::from_value(json!({"author.id": {"$in": ["u1", 2, null, false]}, "x": null}))
            .unwrap();
    }

    #[test]
    fn rejects_malformed_filters() {
        assert!(reason(json!([])).contains("JSON object, not an array"));
        assert!(reason(json!({})).contains("empty"));
        assert!(reason(json!({"": 1})).contains("empty"));
        assert!(reason(json!({"a\"b": 1})).contains("double quote"));
        assert!(reason(json!({"$and": 1})).contains("starts with '$'"));
        assert!(reason(json!({"a..b": 1})).contains("dotted segment"));
        assert!(reason(json!({".a": 1})).contains("dotted segment"));
        assert!(reason(json!({"a": [1, 2]})).contains("$in"));
        assert!(reason(json!({"a": {}})).contains("empty"));
        let unknown = reason(json!({"a": {"$like": "x"}}));
        assert!(
            unknown.contains("$like") && unknown.contains("$eq $ne $in $nin"),
            "{unknown}"
        );
        assert!(reason(json!({"a": {"$eq": [1]}})).contains("not an array"));
        assert!(reason(json!({"a": {"$gt": {"b": 1}}})).contains("not an object"));
        assert!(reason(json!({"a": {"$in": 1}})).contains("takes an array, not a number"));
        assert!(reason(json!({"a": {"$nin": [[1]]}})).contains("holds an array"));
    }

    #[test]
    fn long_keys_and_large_filters_are_refused() {
        let long = "k".repeat(MAX_FILTER_KEY_CHARS + 1);
        let err = Filter::new().eq(long, 1).validate().unwrap_err();
        assert!(
            matches!(err, VectorizeError::FilterKeyTooLong { actual } if actual == MAX_FILTER_KEY_CHARS + 1)
        );
        assert!(err.to_string().contains("512"), "{err}");
        Filter::new()
            .eq("k".repeat(MAX_FILTER_KEY_CHARS), 1)
            .validate()
            .unwrap();

        let big = Filter::new().in_("tag", (0..400).map(|i| format!("tag-{i}")));
        let err = big.validate().unwrap_err();
        let VectorizeError::FilterTooLarge { actual } = err else {
            panic!("{err:?}")
        };
        assert!(actual >= MAX_FILTER_BYTES);
        let text = VectorizeError::FilterTooLarge { actual }.to_string();
        assert!(
            text.contains("2048") && text.contains(&actual.to_string()),
            "{text}"
        );
    }
}
