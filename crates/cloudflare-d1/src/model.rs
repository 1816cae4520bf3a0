//! Results: [`QueryResult`], [`RawResult`] and their [`QueryMeta`].
//!
//! Every field of the spec's `d1_query-result-response`, `d1_raw-result-response` and
//! `d1_query-meta` is optional, so absent (or `null`) lists decode as empty and absent
//! counters as `None`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::D1Error;
use crate::number::{opt_i64, opt_u64};

/// One row of a [`QueryResult`]: column name → value (JSON string, number, `null`…).
pub type Row = serde_json::Map<String, Value>;

/// What D1 reports about one statement's execution (the spec's `d1_query-meta`). Every
/// field is optional in the spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryMeta {
    /// Whether the statement changed the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_db: Option<bool>,
    /// Rows modified (SQLite's `sqlite3_total_changes()`, roughly).
    #[serde(
        default,
        deserialize_with = "opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub changes: Option<u64>,
    /// Execution time inside the database, in milliseconds (no network time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// Rowid of the last inserted row (tables with a rowid only).
    #[serde(
        default,
        deserialize_with = "opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_row_id: Option<i64>,
    /// Rows read, including index entries.
    #[serde(
        default,
        deserialize_with = "opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub rows_read: Option<u64>,
    /// Rows written, including index entries.
    #[serde(
        default,
        deserialize_with = "opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub rows_written: Option<u64>,
    /// Database size after the statement committed, in bytes.
    #[serde(
        default,
        deserialize_with = "opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub size_after: Option<u64>,
    /// Airport code of the colo that ran the statement, e.g. `LHR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by_colo: Option<String>,
    /// Whether the primary instance ran the statement (not a read replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by_primary: Option<bool>,
    /// Region hint of the instance that ran it: `WNAM`, `ENAM`, `WEUR`, `EEUR`, `APAC`
    /// or `OC` in the spec (kept as text so a new region does not break decoding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by_region: Option<String>,
    /// Finer timings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<QueryTimings>,
}

/// The `timings` of a [`QueryMeta`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryTimings {
    /// Execution time inside the database, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_duration_ms: Option<f64>,
}

/// The result of one statement from the `query` endpoint: rows as objects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// The rows, one object per row (empty for statements that return none).
    #[serde(rename = "results", default, deserialize_with = "null_as_default")]
    pub rows: Vec<Row>,
    /// Execution statistics.
    #[serde(default, deserialize_with = "null_as_default")]
    pub meta: QueryMeta,
    /// The statement's `success` flag (`true` when absent).
    #[serde(default = "yes")]
    pub success: bool,
}

impl QueryResult {
    /// The rows deserialized into `T` (a struct whose fields are the column names).
    ///
    /// Numbers arrive as JSON numbers and text as strings, as SQLite typed the value.
    ///
    /// # Errors
    ///
    /// [`D1Error::Row`] naming the first row that does not fit `T`.
    pub fn deserialize_rows<T: DeserializeOwned>(&self) -> Result<Vec<T>, D1Error> {
        self.rows
            .iter()
            .enumerate()
            .map(|(row, value)| {
                T::deserialize(value).map_err(|source| D1Error::Row { row, source })
            })
            .collect()
    }
}

/// The result of one statement from the `raw` endpoint: column names and rows as arrays
/// (cheaper to send than [`QueryResult`] for wide results).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawResult {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// The rows, each a list of values in column order.
    pub rows: Vec<Vec<Value>>,
    /// Execution statistics.
    pub meta: QueryMeta,
    /// The statement's `success` flag (`true` when absent).
    pub success: bool,
}

impl RawResult {
    /// The rows as [`Row`] objects keyed by column name (a later duplicate column name
    /// overwrites an earlier one).
    #[must_use]
    pub fn to_rows(&self) -> Vec<Row> {
        self.rows
            .iter()
            .map(|values| {
                self.columns
                    .iter()
                    .cloned()
                    .zip(values.iter().cloned())
                    .collect()
            })
            .collect()
    }
}

/// The spec's `d1_raw-result-response` as sent.
#[derive(Deserialize)]
struct WireRawResult {
    #[serde(default, deserialize_with = "null_as_default")]
    results: WireRawRows,
    #[serde(default, deserialize_with = "null_as_default")]
    meta: QueryMeta,
    #[serde(default = "yes")]
    success: bool,
}

#[derive(Default, Deserialize)]
struct WireRawRows {
    #[serde(default, deserialize_with = "null_as_default")]
    columns: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    rows: Vec<Vec<Value>>,
}

impl<'de> Deserialize<'de> for RawResult {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireRawResult::deserialize(deserializer)?;
        Ok(Self {
            columns: wire.results.columns,
            rows: wire.results.rows,
            meta: wire.meta,
            success: wire.success,
        })
    }
}

/// The `success` flag a statement result carries.
pub(crate) trait StatementOutcome {
    /// Whether the statement succeeded.
    fn succeeded(&self) -> bool;
}

impl StatementOutcome for QueryResult {
    fn succeeded(&self) -> bool {
        self.success
    }
}

impl StatementOutcome for RawResult {
    fn succeeded(&self) -> bool {
        self.success
    }
}

fn yes() -> bool {
    true
}

/// `null` decodes as the default (an empty list, an empty meta).
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_a_full_query_result() {
        let value = json!({
            "results": [{"id": "n1", "score": 0.5, "n": 3, "gone": null}],
            "success": true,
            "meta": {
                "changed_db": false, "changes": 0, "duration": 0.25, "last_row_id": 12,
                "rows_read": 4, "rows_written": 0, "size_after": 8192,
                "served_by_colo": "LHR", "served_by_primary": true, "served_by_region": "EEUR",
                "timings": {"sql_duration_ms": 0.25}
            }
        });
        let r: QueryResult = serde_json::from_value(value).unwrap();
        assert_eq!(r.rows.len(), 1);
        assert_eq!(r.rows[0]["id"], "n1");
        assert_eq!(r.rows[0]["gone"], Value::Null);
        assert!(r.success);
        let m = &r.meta;
        assert_eq!(m.changed_db, Some(false));
        assert_eq!(m.changes, Some(0));
        assert_eq!(m.duration, Some(0.25));
        assert_eq!(m.last_row_id, Some(12));
        assert_eq!(m.rows_read, Some(4));
        assert_eq!(m.rows_written, Some(0));
        assert_eq!(m.size_after, Some(8192));
        assert_eq!(m.served_by_colo.as_deref(), Some("LHR"));
        assert_eq!(m.served_by_primary, Some(true));
        assert_eq!(m.served_by_region.as_deref(), Some("EEUR"));
        assert_eq!(
            m.timings.as_ref().and_then(|t| t.sql_duration_ms),
            Some(0.25)
        );
    }

    #[test]
    fn every_field_is_optional() {
        let r: QueryResult = serde_json::from_value(json!({})).unwrap();
        assert_eq!(
            r,
            QueryResult {
                success: true,
                ..QueryResult::default()
            }
        );
        let r: QueryResult =
            serde_json::from_value(json!({"results": null, "meta": null, "success": false}))
                .unwrap();
        assert!(r.rows.is_empty() && !r.success);
        let r: RawResult = serde_json::from_value(json!({})).unwrap();
        assert!(r.columns.is_empty() && r.rows.is_empty() && r.success);
        let r: RawResult = serde_json::from_value(json!({"results": {}})).unwrap();
        assert!(r.columns.is_empty());
        let m: QueryMeta = serde_json::from_value(json!({"unknown_new_field": 1})).unwrap();
        assert_eq!(m, QueryMeta::default());
    }

    #[test]
    fn counters_sent_as_whole_floats_decode() {
        let m: QueryMeta =
            serde_json::from_value(json!({"changes": 2.0, "last_row_id": 7.0, "size_after": 0}))
                .unwrap();
        assert_eq!(
            (m.changes, m.last_row_id, m.size_after),
            (Some(2), Some(7), Some(0))
        );
        assert!(serde_json::from_value::<QueryMeta>(json!({"changes": 1.5})).is_err());
    }

    #[test]
    fn meta_serializes_back_without_absent_fields() {
        let m = QueryMeta {
            changes: Some(1),
            ..QueryMeta::default()
        };
        assert_eq!(serde_json::to_value(&m).unwrap(), json!({"changes": 1}));
        let back: QueryMeta = serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn decodes_a_raw_result_and_converts_rows() {
        let value = json!({
            "results": {"columns": ["id", "n", "meta"], "rows": [["a", 1, {"k": "v"}], ["b", 2.5, null]]},
            "success": true,
            "meta": {"rows_read": 2}
        });
        let r: RawResult = serde_json::from_value(value).unwrap();
        assert_eq!(r.columns, ["id", "n", "meta"]);
        assert_eq!(r.rows[1][1], json!(2.5));
        assert_eq!(r.meta.rows_read, Some(2));
        let rows = r.to_rows();
        assert_eq!(rows[0]["id"], "a");
        assert_eq!(rows[0]["meta"]["k"], "v");
        assert_eq!(rows[1]["meta"], Value::Null);
    }

    #[test]
    fn rows_deserialize_into_structs() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct Note {
            id: String,
            score: f64,
        }
        let r: QueryResult = serde_json::from_value(json!({
            "results": [{"id": "a", "score": 1.0}, {"id": "b", "score": 2}]
        }))
        .unwrap();
        let notes: Vec<Note> = r.deserialize_rows().unwrap();
        assert_eq!(
            notes[1],
            Note {
                id: "b".into(),
                score: 2.0
            }
        );

        let bad: QueryResult = serde_json::from_value(json!({
            "results": [{"id": "a", "score": 1.0}, {"id": 3, "score": 2}]
        }))
        .unwrap();
        let err = bad.deserialize_rows::<Note>().unwrap_err();
        assert!(matches!(err, D1Error::Row { row: 1, .. }), "{err:?}");
        assert!(err.to_string().contains("row 1"), "{err}");
    }

    #[test]
    fn spec_examples_decode() {
        // What Prism serves for the spec's schemas: every property with a static example.
        let query = json!({
            "meta": {"changed_db": true, "changes": 0, "duration": 0, "last_row_id": 0,
                     "rows_read": 0, "rows_written": 0, "served_by_colo": "LHR",
                     "served_by_primary": true, "served_by_region": "EEUR", "size_after": 0,
                     "timings": {"sql_duration_ms": 0}},
            "results": [{}],
            "success": true
        });
        let r: QueryResult = serde_json::from_value(query).unwrap();
        assert_eq!(r.rows.len(), 1);
        let raw = json!({
            "meta": {"changes": 0},
            "results": {"columns": ["string"], "rows": [[0]]},
            "success": true
        });
        let r: RawResult = serde_json::from_value(raw).unwrap();
        assert_eq!(r.columns, ["string"]);
    }
}
