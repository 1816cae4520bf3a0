//! [`D1Error`]: every way a D1 call can fail.

use cloudflare_http::CloudflareError;

use crate::{MAX_BOUND_PARAMS, MAX_STATEMENT_BYTES, MAX_VALUE_BYTES};

/// The Cloudflare error code of an SQL error: D1's HTTP API answers an invalid query with
/// HTTP 400, this code and SQLite's message, e.g. `no such table: notes: SQLITE_ERROR`.
/// (D1 has also been seen to send it with a 5xx for an internal failure; that stays a
/// retryable [`D1Error::Cloudflare`].)
///
/// See <https://developers.cloudflare.com/api/resources/d1/subresources/database/methods/query/>.
pub(crate) const SQL_ERROR_CODE: i64 = 7500;

/// A failed D1 call. The limit variants are raised before anything is sent; `statement`
/// is the statement's 0-based position in its batch (0 for a single query).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum D1Error {
    /// A statement has no SQL (empty or only whitespace).
    #[error("statement {statement} has no SQL; give it a statement or leave it out of the batch")]
    EmptySql {
        /// Position of the statement in the batch.
        statement: usize,
    },

    /// A batch has no statements.
    #[error("the batch has no statements; send at least one")]
    EmptyBatch,

    /// A statement binds more parameters than D1 allows.
    #[error(
        "statement {statement} binds {actual} parameters, but D1 allows at most \
         {max} bound parameters per query (MAX_BOUND_PARAMS, \
         https://developers.cloudflare.com/d1/platform/limits/); split it into several \
         statements of a batch, each binding fewer",
        max = MAX_BOUND_PARAMS
    )]
    TooManyParams {
        /// Position of the statement in the batch.
        statement: usize,
        /// How many parameters it binds.
        actual: usize,
    },

    /// A statement's SQL text is longer than D1 allows.
    #[error(
        "statement {statement} is {actual} bytes of SQL, but D1 allows at most \
         {max} bytes per SQL statement (MAX_STATEMENT_BYTES, \
         https://developers.cloudflare.com/d1/platform/limits/); bind values as parameters \
         instead of inlining them, or split it into several statements",
        max = MAX_STATEMENT_BYTES
    )]
    StatementTooLong {
        /// Position of the statement in the batch.
        statement: usize,
        /// Length of its SQL in bytes.
        actual: usize,
    },

    /// A bound value is larger than D1 stores.
    #[error(
        "parameter {param} of statement {statement} is {actual} bytes, but D1 allows at \
         most {max} bytes per string or BLOB (MAX_VALUE_BYTES, \
         https://developers.cloudflare.com/d1/platform/limits/); store the value elsewhere \
         (e.g. R2) and keep a reference, or split it",
        max = MAX_VALUE_BYTES
    )]
    ValueTooLarge {
        /// Position of the statement in the batch.
        statement: usize,
        /// 1-based position of the parameter (SQLite numbers parameters from 1).
        param: usize,
        /// Size of the value in bytes.
        actual: usize,
    },

    /// A real parameter is NaN or infinite, which D1 cannot store as a number.
    #[error(
        "parameter {param} of statement {statement} is {value}, which D1 cannot store as a \
         number; bind a finite value, or write NULL in the SQL"
    )]
    NonFiniteReal {
        /// Position of the statement in the batch.
        statement: usize,
        /// 1-based position of the parameter.
        param: usize,
        /// The value.
        value: f64,
    },

    /// SQLite rejected a statement (Cloudflare error code 7500): a syntax
    /// error, a missing table, a constraint violation… The whole request was rolled back.
    #[error(
        "D1 rejected the SQL: {message} (code {code}); fix the statement, retrying will not help"
    )]
    Sql {
        /// SQLite's message, e.g. `no such table: notes: SQLITE_ERROR`.
        message: String,
        /// Cloudflare's error code (7500 for SQL errors).
        code: i64,
    },

    /// A statement's result says `"success": false` although the request succeeded.
    #[error(
        "D1 reported statement {statement} as failed without an error message; \
         check the statement, then retry"
    )]
    StatementFailed {
        /// Position of the statement in the batch.
        statement: usize,
    },

    /// D1 returned a different number of results than statements were sent (e.g. one SQL
    /// string held several `;`-separated statements). The statements were executed.
    #[error(
        "D1 returned {actual} results for {expected} statements; the statements were \
         executed, but send one statement per query (use batch for several)"
    )]
    ResultCount {
        /// Statements sent.
        expected: usize,
        /// Results received.
        actual: usize,
    },

    /// A row could not be deserialized into the caller's type.
    #[error(
        "row {row} does not match the requested type: {source}; check the column names and types of the SELECT"
    )]
    Row {
        /// 0-based index of the row.
        row: usize,
        /// serde's message.
        #[source]
        source: serde_json::Error,
    },

    /// Any other failure of the call: API error, transport error, timeout, open circuit.
    #[error(transparent)]
    Cloudflare(#[from] CloudflareError),
}

impl D1Error {
    /// Turns a transport error into [`D1Error::Sql`] when the envelope carries
    /// [`SQL_ERROR_CODE`] with a status below 500 (a 4xx, or a 2xx saying
    /// `"success": false`), else wraps it in [`D1Error::Cloudflare`].
    #[must_use]
    pub fn from_cloudflare(error: CloudflareError) -> Self {
        let client_side = error.status().is_some_and(|s| !s.is_server_error());
        let sql = error
            .errors()
            .iter()
            .find(|e| client_side && e.code == SQL_ERROR_CODE)
            .map(|e| (e.message.clone(), e.code));
        match sql {
            Some((message, code)) => Self::Sql { message, code },
            None => Self::Cloudflare(error),
        }
    }

    /// Whether sending the same request again may succeed (only transport-level failures:
    /// 408/429/5xx, timeouts, connection errors). The transport already retried
    /// idempotent statements.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Cloudflare(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// Whether this is an SQL error reported by SQLite.
    #[must_use]
    pub fn is_sql(&self) -> bool {
        matches!(self, Self::Sql { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudflare_http::ApiMessage;
    use http::StatusCode;

    fn api(status: u16, code: i64, message: &str) -> CloudflareError {
        CloudflareError::Api {
            status: StatusCode::from_u16(status).unwrap(),
            errors: vec![ApiMessage {
                code,
                message: message.into(),
            }],
            retry_after: None,
        }
    }

    #[test]
    fn code_7500_is_an_sql_error() {
        let err = D1Error::from_cloudflare(api(400, 7500, "no such table: x: SQLITE_ERROR"));
        let D1Error::Sql { message, code } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(message, "no such table: x: SQLITE_ERROR");
        assert_eq!(*code, SQL_ERROR_CODE);
        assert!(err.is_sql() && !err.is_retryable());
        assert!(err.to_string().contains("no such table: x"), "{err}");
        let unsuccessful = CloudflareError::Unsuccessful {
            status: StatusCode::OK,
            errors: vec![ApiMessage {
                code: 7500,
                message: "near \"SELEC\": syntax error".into(),
            }],
        };
        assert!(D1Error::from_cloudflare(unsuccessful).is_sql());
    }

    #[test]
    fn other_errors_stay_cloudflare_errors() {
        let err = D1Error::from_cloudflare(api(404, 7404, "database not found"));
        assert!(matches!(err, D1Error::Cloudflare(_)), "{err:?}");
        assert!(!err.is_sql() && !err.is_retryable());
        let err = D1Error::from_cloudflare(api(503, 0, "unavailable"));
        assert!(err.is_retryable());
        // 7500 with a 5xx is D1 failing internally, not the caller's SQL.
        let err = D1Error::from_cloudflare(api(500, 7500, "Internal error"));
        assert!(
            matches!(err, D1Error::Cloudflare(_)) && err.is_retryable(),
            "{err:?}"
        );
        let err: D1Error = CloudflareError::Timeout {
            after: std::time::Duration::from_secs(1),
        }
        .into();
        assert!(err.is_retryable());
    }

    #[test]
    fn limit_messages_name_the_limit_the_maximum_and_the_value() {
        let text = D1Error::TooManyParams {
            statement: 2,
            actual: 101,
        }
        .to_string();
        for part in ["MAX_BOUND_PARAMS", "100", "101", "statement 2", "split"] {
            assert!(text.contains(part), "{part}: {text}");
        }
        let text = D1Error::StatementTooLong {
            statement: 0,
            actual: 100_001,
        }
        .to_string();
        for part in ["MAX_STATEMENT_BYTES", "100000", "100001", "split"] {
            assert!(text.contains(part), "{part}: {text}");
        }
        let text = D1Error::ValueTooLarge {
            statement: 0,
            param: 3,
            actual: 2_000_001,
        }
        .to_string();
        for part in ["MAX_VALUE_BYTES", "2000000", "2000001", "parameter 3"] {
            assert!(text.contains(part), "{part}: {text}");
        }
        let text = D1Error::NonFiniteReal {
            statement: 1,
            param: 1,
            value: f64::NAN,
        }
        .to_string();
        assert!(text.contains("NaN") && text.contains("NULL"), "{text}");
        let text = D1Error::ResultCount {
            expected: 1,
            actual: 2,
        }
        .to_string();
        assert!(text.contains("batch"), "{text}");
    }
}
