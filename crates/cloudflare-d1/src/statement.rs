//! [`Statement`]: SQL, its parameters, whether it may be retried, and its validation.

use serde::Serialize;

use crate::error::D1Error;
use crate::param::Param;
use crate::{MAX_BOUND_PARAMS, MAX_STATEMENT_BYTES, MAX_VALUE_BYTES};

/// One SQL statement with its bound parameters.
///
/// Not retried unless marked [`Statement::idempotent`]: a retry after a lost response
/// runs the statement twice.
///
/// ```
/// use cloudflare_d1::Statement;
///
/// let st = Statement::new("SELECT * FROM notes WHERE id = ? AND score > ?")
///     .bind("n1")
///     .bind(0.5)
///     .idempotent(true);
/// assert_eq!(st.params().len(), 2);
/// assert!(st.is_idempotent());
/// st.validate()?;
/// # Ok::<(), cloudflare_d1::D1Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Statement {
    sql: String,
    params: Vec<Param>,
    idempotent: bool,
}

impl Statement {
    /// A statement without parameters, not idempotent.
    #[must_use]
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            params: Vec::new(),
            idempotent: false,
        }
    }

    /// Binds the next parameter (`?` in order, or `?1`, `?2`…).
    #[must_use]
    pub fn bind(mut self, param: impl Into<Param>) -> Self {
        self.params.push(param.into());
        self
    }

    /// Binds every parameter of `params`, after those already bound.
    #[must_use]
    pub fn bind_all<P: Into<Param>>(mut self, params: impl IntoIterator<Item = P>) -> Self {
        self.params.extend(params.into_iter().map(Into::into));
        self
    }

    /// Marks whether running the statement twice is harmless (a `SELECT`, an upsert, an
    /// `INSERT OR REPLACE` keyed by the caller, a `DELETE … WHERE id = ?`), so the
    /// transport may retry it after a transient failure. Default: `false`.
    #[must_use]
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// The SQL text.
    #[must_use]
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The bound parameters.
    #[must_use]
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Whether the statement may be retried.
    #[must_use]
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// Checks the statement against D1's limits without sending it.
    ///
    /// # Errors
    ///
    /// [`D1Error::EmptySql`], [`D1Error::StatementTooLong`], [`D1Error::TooManyParams`],
    /// [`D1Error::ValueTooLarge`] or [`D1Error::NonFiniteReal`], with `statement` 0.
    pub fn validate(&self) -> Result<(), D1Error> {
        self.validate_at(0)
    }

    /// [`Statement::validate`] for the statement at position `statement` of a batch.
    pub(crate) fn validate_at(&self, statement: usize) -> Result<(), D1Error> {
        if self.sql.trim().is_empty() {
            return Err(D1Error::EmptySql { statement });
        }
        if self.sql.len() > MAX_STATEMENT_BYTES {
            return Err(D1Error::StatementTooLong {
                statement,
                actual: self.sql.len(),
            });
        }
        if self.params.len() > MAX_BOUND_PARAMS {
            return Err(D1Error::TooManyParams {
                statement,
                actual: self.params.len(),
            });
        }
        for (i, param) in self.params.iter().enumerate() {
            let param_no = i + 1;
            if let Param::Real(value) = param
                && !value.is_finite()
            {
                return Err(D1Error::NonFiniteReal {
                    statement,
                    param: param_no,
                    value: *value,
                });
            }
            let actual = param.value_bytes();
            if actual > MAX_VALUE_BYTES {
                return Err(D1Error::ValueTooLarge {
                    statement,
                    param: param_no,
                    actual,
                });
            }
        }
        Ok(())
    }

    /// The statement as the API's `single-query` object.
    pub(crate) fn wire(&self) -> WireQuery<'_> {
        WireQuery {
            sql: &self.sql,
            params: &self.params,
        }
    }
}

impl From<&str> for Statement {
    fn from(sql: &str) -> Self {
        Self::new(sql)
    }
}

impl From<String> for Statement {
    fn from(sql: String) -> Self {
        Self::new(sql)
    }
}

/// The spec's `d1_single-query`: `{"sql": string, "params": [string]}` (`params` left out
/// when empty; it is optional).
#[derive(Debug, Serialize)]
pub(crate) struct WireQuery<'a> {
    sql: &'a str,
    #[serde(skip_serializing_if = "<[Param]>::is_empty")]
    params: &'a [Param],
}

/// The spec's "multiple queries" form of `d1_batch-query`: `{"batch": [single-query]}`.
#[derive(Debug, Serialize)]
pub(crate) struct WireBatch<'a> {
    pub(crate) batch: Vec<WireQuery<'a>>,
}

/// Validates every statement of a batch, in order.
pub(crate) fn validate_batch(statements: &[Statement]) -> Result<(), D1Error> {
    if statements.is_empty() {
        return Err(D1Error::EmptyBatch);
    }
    statements
        .iter()
        .enumerate()
        .try_for_each(|(i, st)| st.validate_at(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builder_collects_params_and_the_marker() {
        let st = Statement::new("SELECT ?, ?, ?")
            .bind(1)
            .bind_all(["a", "b"])
            .idempotent(true);
        assert_eq!(st.sql(), "SELECT ?, ?, ?");
        assert_eq!(
            st.params(),
            &[Param::Integer(1), Param::from("a"), Param::from("b")]
        );
        assert!(st.is_idempotent());
        assert!(!Statement::from("SELECT 1").is_idempotent());
        assert!(!Statement::default().is_idempotent());
        assert_eq!(Statement::from("x".to_owned()).sql(), "x");
    }

    #[test]
    fn wire_shapes_match_the_spec() {
        let st = Statement::new("SELECT ?").bind(42).bind(0.5);
        assert_eq!(
            serde_json::to_value(st.wire()).unwrap(),
            json!({"sql": "SELECT ?", "params": ["42", "0.5"]})
        );
        let bare = Statement::new("SELECT 1");
        assert_eq!(
            serde_json::to_value(bare.wire()).unwrap(),
            json!({"sql": "SELECT 1"})
        );
        let batch = WireBatch {
            batch: vec![st.wire(), bare.wire()],
        };
        assert_eq!(
            serde_json::to_value(batch).unwrap(),
            json!({"batch": [{"sql": "SELECT ?", "params": ["42", "0.5"]}, {"sql": "SELECT 1"}]})
        );
    }

    #[test]
    fn limits_are_inclusive() {
        let at_limit = Statement::new("x".repeat(MAX_STATEMENT_BYTES))
            .bind_all(std::iter::repeat_n(1, MAX_BOUND_PARAMS - 1))
            .bind("v".repeat(MAX_VALUE_BYTES));
        assert_eq!(at_limit.params().len(), MAX_BOUND_PARAMS);
        at_limit.validate().unwrap();
        Statement::new("SELECT ?")
            .bind(Param::blob(vec![0; MAX_VALUE_BYTES]))
            .validate()
            .unwrap();
    }

    #[test]
    fn every_limit_is_checked() {
        let err = Statement::new("  \n").validate().unwrap_err();
        assert!(matches!(err, D1Error::EmptySql { statement: 0 }), "{err:?}");

        let err = Statement::new("x".repeat(MAX_STATEMENT_BYTES + 1))
            .validate()
            .unwrap_err();
        assert!(
            matches!(err, D1Error::StatementTooLong { statement: 0, actual } if actual == MAX_STATEMENT_BYTES + 1),
            "{err:?}"
        );
        // Bytes, not characters: 'é' is two bytes.
        let err = Statement::new("é".repeat(MAX_STATEMENT_BYTES / 2 + 1))
            .validate()
            .unwrap_err();
        assert!(matches!(err, D1Error::StatementTooLong { .. }), "{err:?}");

        let err = Statement::new("SELECT 1")
            .bind_all(std::iter::repeat_n("a", MAX_BOUND_PARAMS + 1))
            .validate()
            .unwrap_err();
        assert!(
            matches!(err, D1Error::TooManyParams { statement: 0, actual } if actual == MAX_BOUND_PARAMS + 1),
            "{err:?}"
        );

        let err = Statement::new("SELECT ?, ?")
            .bind(1)
            .bind("v".repeat(MAX_VALUE_BYTES + 1))
            .validate()
            .unwrap_err();
        assert!(
            matches!(err, D1Error::ValueTooLarge { statement: 0, param: 2, actual } if actual == MAX_VALUE_BYTES + 1),
            "{err:?}"
        );
        let err = Statement::new("SELECT ?")
            .bind(Param::blob(vec![0; MAX_VALUE_BYTES + 1]))
            .validate()
            .unwrap_err();
        assert!(matches!(err, D1Error::ValueTooLarge { .. }), "{err:?}");

        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = Statement::new("SELECT ?").bind(bad).validate().unwrap_err();
            assert!(
                matches!(
                    err,
                    D1Error::NonFiniteReal {
                        statement: 0,
                        param: 1,
                        ..
                    }
                ),
                "{err:?}"
            );
        }
    }

    #[test]
    fn batch_validation_names_the_statement() {
        assert!(matches!(validate_batch(&[]), Err(D1Error::EmptyBatch)));
        let ok = Statement::new("SELECT 1");
        let bad = Statement::new("SELECT 1").bind_all(std::iter::repeat_n(0, 101));
        let err = validate_batch(&[ok.clone(), ok.clone(), bad]).unwrap_err();
        assert!(
            matches!(err, D1Error::TooManyParams { statement: 2, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("statement 2"), "{err}");
        validate_batch(&[ok]).unwrap();
    }
}
