//! Vectorize metadata filters: parsing (with Cloudflare's documented rules) and evaluation
//! against the values a vector had indexed when it was written.
//!
//! Rules, from <https://developers.cloudflare.com/vectorize/reference/metadata-filtering/>:
//! - the filter is a non-empty object whose compact JSON is shorter than 2048 bytes;
//! - keys are not empty, do not contain `"`, do not start with `$`, are at most 512
//!   characters; a `.` in a key is the nesting separator (`"a.b"` looks in `{"a": {"b": ..}}`);
//! - a bare value is an implicit `$eq`; several keys are an implicit AND;
//! - `$eq`/`$ne` take a string, number, boolean or null; `$in`/`$nin` an array of those;
//! - range operators take a string or a number; an upper bound (`$lt`/`$lte`) may be combined
//!   with a lower bound (`$gt`/`$gte`), no other combination of operators is allowed;
//! - strings compare lexicographically; string metadata is indexed (and so compared) on its
//!   first 64 bytes, cut on a UTF-8 character boundary.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest compact JSON of a filter is this minus one byte.
pub(crate) const MAX_FILTER_BYTES: usize = 2048;
/// Longest filter key, in characters.
pub(crate) const MAX_FILTER_KEY_CHARS: usize = 512;
/// Bytes of a string metadata value that a metadata index keeps.
pub(crate) const INDEXED_STRING_BYTES: usize = 64;

/// A value as a metadata index holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Indexed {
    /// A boolean.
    Bool(bool),
    /// A number (float64 precision).
    Num(f64),
    /// A string, cut to [`INDEXED_STRING_BYTES`].
    Str(String),
}

impl Indexed {
    /// The value as JSON.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Self::Bool(b) => Value::Bool(*b),
            // Integral numbers print as integers, like Cloudflare's JavaScript.
            #[allow(clippy::cast_possible_truncation, clippy::float_cmp)]
            Self::Num(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Value::from(*n as i64),
            Self::Num(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
            Self::Str(s) => Value::String(s.clone()),
        }
    }
}

/// The first `max` bytes of `s`, cut on a character boundary.
pub(crate) fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A filter operand.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
}

impl Scalar {
    fn parse(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(Self::Null),
            Value::Bool(b) => Some(Self::Bool(*b)),
            Value::Number(n) => n.as_f64().map(Self::Num),
            Value::String(s) => Some(Self::Str(truncate_utf8(s, INDEXED_STRING_BYTES).to_owned())),
            _ => None,
        }
    }

    fn equals(&self, indexed: &Indexed) -> bool {
        match (self, indexed) {
            (Self::Bool(a), Indexed::Bool(b)) => a == b,
            (Self::Num(a), Indexed::Num(b)) => a == b,
            (Self::Str(a), Indexed::Str(b)) => a == b,
            _ => false,
        }
    }

    /// `indexed` compared to `self`, when both are numbers or both strings.
    fn compare(&self, indexed: &Indexed) -> Option<Ordering> {
        match (self, indexed) {
            (Self::Num(a), Indexed::Num(b)) => b.partial_cmp(a),
            (Self::Str(a), Indexed::Str(b)) => Some(b.as_bytes().cmp(a.as_bytes())),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    Eq(Scalar),
    Ne(Scalar),
    In(Vec<Scalar>),
    Nin(Vec<Scalar>),
    Range {
        lower: Option<(Scalar, bool)>,
        upper: Option<(Scalar, bool)>,
    },
}

/// A parsed filter: an AND of conditions on (dotted) property paths.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Filter {
    clauses: Vec<(String, Condition)>,
}

fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("filter keys cannot be empty".into());
    }
    if key.contains('"') {
        return Err(format!("filter key {key:?} cannot contain '\"'"));
    }
    if key.starts_with('$') {
        return Err(format!("filter key {key:?} cannot start with '$'"));
    }
    if key.chars().count() > MAX_FILTER_KEY_CHARS {
        return Err(format!(
            "filter key is longer than {MAX_FILTER_KEY_CHARS} characters"
        ));
    }
    if key.split('.').any(str::is_empty) {
        return Err(format!("filter key {key:?} has an empty nesting segment"));
    }
    Ok(())
}

fn scalar(op: &str, value: &Value) -> Result<Scalar, String> {
    Scalar::parse(value)
        .ok_or_else(|| format!("{op} takes a string, number, boolean or null value, got {value}"))
}

fn range_operand(op: &str, value: &Value) -> Result<Scalar, String> {
    match value {
        Value::Number(_) | Value::String(_) => scalar(op, value),
        _ => Err(format!("{op} takes a string or number value, got {value}")),
    }
}

fn list(op: &str, value: &Value) -> Result<Vec<Scalar>, String> {
    let Value::Array(items) = value else {
        return Err(format!("{op} takes an array of values, got {value}"));
    };
    items.iter().map(|item| scalar(op, item)).collect()
}

fn condition(key: &str, value: &Value) -> Result<Condition, String> {
    let Value::Object(ops) = value else {
        return Ok(Condition::Eq(scalar("$eq", value)?));
    };
    if ops.is_empty() {
        return Err(format!("filter on {key:?} has no operator"));
    }
    let mut lower = None;
    let mut upper = None;
    let mut single = None;
    for (op, operand) in ops {
        match op.as_str() {
            "$eq" | "$ne" | "$in" | "$nin" => {
                if ops.len() != 1 {
                    return Err(format!(
                        "{op} cannot be combined with another operator on {key:?}"
                    ));
                }
                single = Some(match op.as_str() {
                    "$eq" => Condition::Eq(scalar(op, operand)?),
                    "$ne" => Condition::Ne(scalar(op, operand)?),
                    "$in" => Condition::In(list(op, operand)?),
                    _ => Condition::Nin(list(op, operand)?),
                });
            }
            "$gt" | "$gte" => {
                if lower.is_some() {
                    return Err(format!("two lower bounds on {key:?}"));
                }
                lower = Some((range_operand(op, operand)?, op == "$gte"));
            }
            "$lt" | "$lte" => {
                if upper.is_some() {
                    return Err(format!("two upper bounds on {key:?}"));
                }
                upper = Some((range_operand(op, operand)?, op == "$lte"));
            }
            other => return Err(format!("unsupported operator {other:?} on {key:?}")),
        }
    }
    Ok(single.unwrap_or(Condition::Range { lower, upper }))
}

impl Filter {
    /// Parses and validates a filter.
    ///
    /// # Errors
    ///
    /// A message saying which rule the filter breaks.
    pub(crate) fn parse(value: &Value) -> Result<Self, String> {
        let Value::Object(map) = value else {
            return Err("filter must be an object".into());
        };
        if map.is_empty() {
            return Err("filter must be a non-empty object".into());
        }
        let compact = value.to_string().len();
        if compact >= MAX_FILTER_BYTES {
            return Err(format!(
                "filter is {compact} bytes as compact JSON, it must be less than {MAX_FILTER_BYTES}"
            ));
        }
        let mut clauses = Vec::with_capacity(map.len());
        for (key, value) in map {
            check_key(key)?;
            clauses.push((key.clone(), condition(key, value)?));
        }
        Ok(Self { clauses })
    }

    /// Whether a vector whose indexed values are `indexed` matches. A property the vector
    /// has no indexed value for matches no condition (not even `$ne`/`$nin`).
    pub(crate) fn matches(&self, indexed: &HashMap<String, Indexed>) -> bool {
        self.clauses.iter().all(|(key, condition)| {
            let Some(value) = indexed.get(key) else {
                return false;
            };
            match condition {
                Condition::Eq(s) => s.equals(value),
                Condition::Ne(s) => !s.equals(value),
                Condition::In(list) => list.iter().any(|s| s.equals(value)),
                Condition::Nin(list) => !list.iter().any(|s| s.equals(value)),
                Condition::Range { lower, upper } => {
                    let lower_ok = lower.as_ref().is_none_or(|(bound, inclusive)| {
                        matches!(
                            (bound.compare(value), inclusive),
                            (Some(Ordering::Greater), _) | (Some(Ordering::Equal), true)
                        )
                    });
                    let upper_ok = upper.as_ref().is_none_or(|(bound, inclusive)| {
                        matches!(
                            (bound.compare(value), inclusive),
                            (Some(Ordering::Less), _) | (Some(Ordering::Equal), true)
                        )
                    });
                    lower_ok && upper_ok
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn idx(pairs: &[(&str, Indexed)]) -> HashMap<String, Indexed> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn implicit_eq_and_explicit_operators() {
        let v = idx(&[
            ("platform", Indexed::Str("netflix".into())),
            ("n", Indexed::Num(5.0)),
            ("ok", Indexed::Bool(true)),
        ]);
        let yes = [
            json!({"platform": "netflix"}),
            json!({"platform": {"$ne": "hbo"}}),
            json!({"platform": {"$in": ["hbo", "netflix"]}}),
            json!({"platform": {"$nin": ["hbo"]}}),
            json!({"n": {"$gte": 5, "$lt": 6}}),
            json!({"n": {"$gt": 4}}),
            json!({"n": {"$lte": 5}}),
            json!({"platform": {"$gte": "net", "$lt": "neu"}}),
            json!({"ok": true, "n": 5}),
        ];
        for f in yes {
            assert!(Filter::parse(&f).unwrap().matches(&v), "{f}");
        }
        let no = [
            json!({"platform": "hbo"}),
            json!({"platform": {"$ne": "netflix"}}),
            json!({"n": {"$gt": 5}}),
            json!({"n": {"$lt": 5}}),
            json!({"n": "5"}),
            json!({"missing": {"$ne": 1}}),
            json!({"ok": true, "n": 6}),
        ];
        for f in no {
            assert!(!Filter::parse(&f).unwrap().matches(&v), "{f}");
        }
    }

    #[test]
    fn invalid_filters_are_refused() {
        let bad = [
            json!({}),
            json!([]),
            json!({"": 1}),
            json!({"$a": 1}),
            json!({"a\"b": 1}),
            json!({"a..b": 1}),
            json!({"a": {"$eq": 1, "$ne": 2}}),
            json!({"a": {"$eq": 1, "$lt": 2}}),
            json!({"a": {"$gt": 1, "$gte": 2}}),
            json!({"a": {"$lt": true}}),
            json!({"a": {"$in": 1}}),
            json!({"a": {"$regex": "x"}}),
            json!({"a": {}}),
            json!({"a": [1]}),
            json!({"a": {"b": 1}}),
            json!({"k".repeat(513): 1}),
            json!({"a": "x".repeat(2040)}),
        ];
        for f in bad {
            assert!(Filter::parse(&f).is_err(), "{f}");
        }
        assert!(Filter::parse(&json!({"k".repeat(512): 1})).is_ok());
    }

    #[test]
    fn strings_compare_on_their_first_64_bytes() {
        let long = "é".repeat(40);
        assert_eq!(truncate_utf8(&long, 64).len(), 64);
        assert_eq!(truncate_utf8("aé", 2), "a");
        let v = idx(&[("s", Indexed::Str(truncate_utf8(&long, 64).to_owned()))]);
        assert!(Filter::parse(&json!({"s": long})).unwrap().matches(&v));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            if let Ok(value) = serde_json::from_str::<Value>(&s) {
                let _ = Filter::parse(&value);
            }
        }

        #[test]
        fn ne_is_the_negation_of_eq_on_indexed_values(a in -5i32..5, b in -5i32..5) {
            let v = idx(&[("x", Indexed::Num(f64::from(a)))]);
            let eq = Filter::parse(&json!({"x": b})).unwrap().matches(&v);
            let ne = Filter::parse(&json!({"x": {"$ne": b}})).unwrap().matches(&v);
            prop_assert_eq!(eq, !ne);
            let lt = Filter::parse(&json!({"x": {"$lt": b}})).unwrap().matches(&v);
            prop_assert_eq!(lt, a < b);
        }
    }
}
