//! Running a request's statements on one SQLite connection, all-or-nothing, and writing
//! D1's result elements (`/query` rows as objects, `/raw` columns + rows as arrays).

use std::fmt::Write as _;
use std::time::Instant;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, StatementStatus};
use serde_json::{Value, json};

use super::split::{leading_keyword, split_statements};

/// D1's limit on the length of a string, BLOB or row, in bytes
/// (<https://developers.cloudflare.com/d1/platform/limits/>).
pub(crate) const MAX_LENGTH: i32 = 2_000_000;
/// D1's limit on the length of one SQL statement, in bytes.
pub(crate) const MAX_SQL_LENGTH: i32 = 100_000;
/// D1's limit on bound parameters per statement.
pub(crate) const MAX_BOUND_PARAMETERS: i32 = 100;
/// D1's limit on columns per table.
pub(crate) const MAX_COLUMNS: i32 = 100;
/// D1's limit on arguments per SQL function.
pub(crate) const MAX_FUNCTION_ARGS: i32 = 32;
/// D1's limit on the bytes of a `LIKE` or `GLOB` pattern.
pub(crate) const MAX_LIKE_PATTERN_LENGTH: i32 = 50;

/// Which result shape an endpoint answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `/query`: `results` is an array of row objects.
    Objects,
    /// `/raw`: `results` is `{columns, rows}`.
    Raw,
}

/// One bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// Text (the spec's only type; SQLite's column affinity converts numeric text).
    Text(String),
    /// A JSON integer (outside the spec, accepted as D1's JavaScript API would bind it).
    Integer(i64),
    /// A JSON real (outside the spec).
    Real(f64),
    /// JSON `null` (outside the spec).
    Null,
}

/// One `{sql, params}` of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// One or more statements joined by semicolons.
    pub sql: String,
    /// Bound to the (last) statement.
    pub params: Vec<Param>,
}

/// A failed request: the message D1 reports with code 7500.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SqlError(pub String);

/// The message of a statement with parameters that is not the last of several.
pub(crate) const PARAMS_NOT_LAST: &str = "When executing multiple SQL statements in a single call, only the last statement can have parameters.";
/// The message of a parameter count that does not match the statement's.
pub(crate) const WRONG_PARAMETER_COUNT: &str = "Wrong number of parameter bindings for SQL query.";
/// The message of a transaction-control statement (D1 runs each request as its own
/// transaction; workerd's SQLite rejects `BEGIN`, `SAVEPOINT` … with this message).
pub(crate) const NO_TRANSACTIONS: &str = "To execute a transaction, please use the state.storage.transaction() or state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT statements. The JavaScript API is safer because it will automatically roll back on exceptions, and because it interacts correctly with Durable Objects' automatic atomic write coalescing.: SQLITE_AUTH";
/// The message of a request that ran past the time limit.
pub(crate) const TIMED_OUT: &str =
    "D1 DB storage operation exceeded timeout which caused object to be reset.";

/// SQLite's name of a primary result code, as D1 appends it to messages.
fn code_name(code: i32) -> &'static str {
    match code & 0xff {
        2 => "SQLITE_INTERNAL",
        3 => "SQLITE_PERM",
        4 => "SQLITE_ABORT",
        5 => "SQLITE_BUSY",
        6 => "SQLITE_LOCKED",
        7 => "SQLITE_NOMEM",
        8 => "SQLITE_READONLY",
        9 => "SQLITE_INTERRUPT",
        10 => "SQLITE_IOERR",
        11 => "SQLITE_CORRUPT",
        12 => "SQLITE_NOTFOUND",
        13 => "SQLITE_FULL",
        14 => "SQLITE_CANTOPEN",
        15 => "SQLITE_PROTOCOL",
        16 => "SQLITE_EMPTY",
        17 => "SQLITE_SCHEMA",
        18 => "SQLITE_TOOBIG",
        19 => "SQLITE_CONSTRAINT",
        20 => "SQLITE_MISMATCH",
        21 => "SQLITE_MISUSE",
        22 => "SQLITE_NOLFS",
        23 => "SQLITE_AUTH",
        24 => "SQLITE_FORMAT",
        25 => "SQLITE_RANGE",
        26 => "SQLITE_NOTADB",
        _ => "SQLITE_ERROR",
    }
}

/// D1's message for an SQLite error: `<sqlite message>[ at offset N]: <SQLITE_CODE>`.
pub(crate) fn sql_error(error: &rusqlite::Error) -> SqlError {
    SqlError(match error {
        rusqlite::Error::SqliteFailure(e, message) => {
            let message = message.clone().unwrap_or_else(|| e.to_string());
            if e.code == rusqlite::ErrorCode::OperationInterrupted {
                return SqlError(TIMED_OUT.to_owned());
            }
            format!("{message}: {}", code_name(e.extended_code))
        }
        rusqlite::Error::SqlInputError {
            error, msg, offset, ..
        } => {
            if *offset >= 0 {
                format!(
                    "{msg} at offset {offset}: {}",
                    code_name(error.extended_code)
                )
            } else {
                format!("{msg}: {}", code_name(error.extended_code))
            }
        }
        other => format!("{other}: SQLITE_ERROR"),
    })
}

/// Applies D1's limits to a connection, so SQLite itself enforces them.
pub(crate) fn apply_limits(conn: &Connection) {
    use rusqlite::limits::Limit;
    let limits = [
        (Limit::SQLITE_LIMIT_LENGTH, MAX_LENGTH),
        (Limit::SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_LENGTH),
        (Limit::SQLITE_LIMIT_VARIABLE_NUMBER, MAX_BOUND_PARAMETERS),
        (Limit::SQLITE_LIMIT_COLUMN, MAX_COLUMNS),
        (Limit::SQLITE_LIMIT_FUNCTION_ARG, MAX_FUNCTION_ARGS),
        (
            Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH,
            MAX_LIKE_PATTERN_LENGTH,
        ),
        (Limit::SQLITE_LIMIT_ATTACHED, 0),
    ];
    for (limit, value) in limits {
        // Only fails for a limit id SQLite does not know; these are all standard.
        let _ = conn.set_limit(limit, value);
    }
}

/// The database's size in bytes (`page_count * page_size`).
fn size_of(conn: &Connection) -> i64 {
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap_or(0);
    let size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap_or(0);
    pages * size
}

fn schema_version(conn: &Connection) -> i64 {
    conn.query_row("PRAGMA schema_version", [], |r| r.get(0))
        .unwrap_or(0)
}

/// The largest integer a JavaScript number holds exactly (`Number.MAX_SAFE_INTEGER`).
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// A number as JavaScript's `JSON.stringify` writes it (D1's API is JavaScript): an
/// integral value below 1e21 without a fraction or exponent (`3`, `9223372036854776000`),
/// a non-finite one as `null`, others in their shortest round-trip form.
#[must_use]
pub(crate) fn js_number(f: f64) -> String {
    if !f.is_finite() {
        return "null".to_owned();
    }
    if f == 0.0 {
        return "0".to_owned();
    }
    if f.fract() == 0.0 && f.abs() < 1e21 {
        let scientific = format!("{f:e}");
        if let Some((mantissa, exponent)) = scientific.split_once('e')
            && let Ok(exponent) = exponent.parse::<usize>()
        {
            let (sign, mantissa) = match mantissa.strip_prefix('-') {
                Some(m) => ("-", m),
                None => ("", mantissa),
            };
            let digits = mantissa.replace('.', "");
            let zeros = (exponent + 1).saturating_sub(digits.len());
            return format!("{sign}{digits}{}", "0".repeat(zeros));
        }
    }
    Value::from(f).to_string()
}

/// Appends the JSON of one SQLite value as D1 answers it: INTEGER and REAL as JavaScript
/// numbers (so an integer beyond ±(2^53 - 1) loses precision exactly as on D1, and a
/// non-finite real is `null`), TEXT as a string, NULL as `null`, BLOB as an array of byte
/// values.
fn write_value(out: &mut String, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => out.push_str("null"),
        ValueRef::Integer(i) if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i) => {
            let _ = write!(out, "{i}");
        }
        #[allow(clippy::cast_precision_loss)] // the precision D1's JavaScript numbers have
        ValueRef::Integer(i) => out.push_str(&js_number(i as f64)),
        ValueRef::Real(f) => out.push_str(&js_number(f)),
        ValueRef::Text(t) => out.push_str(&Value::from(String::from_utf8_lossy(t)).to_string()),
        ValueRef::Blob(b) => {
            out.push('[');
            for (i, byte) in b.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{byte}");
            }
            out.push(']');
        }
    }
}

fn write_str(out: &mut String, s: &str) {
    out.push_str(&Value::from(s).to_string());
}

/// Runs one statement, appending its result element to `out`.
fn run_statement(
    conn: &Connection,
    sql: &str,
    params: &[Param],
    shape: Shape,
    out: &mut String,
) -> Result<(), SqlError> {
    let started = Instant::now();
    let changes_before = conn.total_changes();
    let mut stmt = conn.prepare(sql).map_err(|e| sql_error(&e))?;
    if stmt.parameter_count() != params.len() {
        return Err(SqlError(WRONG_PARAMETER_COUNT.to_owned()));
    }
    for (i, param) in params.iter().enumerate() {
        let bound = match param {
            Param::Text(s) => stmt.raw_bind_parameter(i + 1, s.as_str()),
            Param::Integer(n) => stmt.raw_bind_parameter(i + 1, n),
            Param::Real(f) => stmt.raw_bind_parameter(i + 1, f),
            Param::Null => stmt.raw_bind_parameter(i + 1, rusqlite::types::Null),
        };
        bound.map_err(|e| sql_error(&e))?;
    }
    let readonly = stmt.readonly();
    let schema_before = if readonly { 0 } else { schema_version(conn) };
    let columns: Vec<String> = stmt
        .column_names()
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    let mut body = String::new();
    let mut returned: u64 = 0;
    {
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next().map_err(|e| sql_error(&e))? {
            if returned > 0 {
                body.push(',');
            }
            returned += 1;
            body.push(if shape == Shape::Objects { '{' } else { '[' });
            for (i, name) in columns.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                if shape == Shape::Objects {
                    write_str(&mut body, name);
                    body.push(':');
                }
                let value = row.get_ref(i).map_err(|e| sql_error(&e))?;
                write_value(&mut body, value);
            }
            body.push(if shape == Shape::Objects { '}' } else { ']' });
        }
    }
    let fullscan = u64::try_from(stmt.get_status(StatementStatus::FullscanStep)).unwrap_or(0);
    drop(stmt);
    let changes = conn.total_changes().saturating_sub(changes_before);
    let schema_changed = !readonly && schema_version(conn) != schema_before;
    let duration = started.elapsed().as_secs_f64() * 1000.0;
    let rows_read = returned.max(fullscan);
    let rows_written = changes;
    let meta = json!({
        "served_by_region": "WEUR",
        "served_by_colo": "LHR",
        "served_by_primary": true,
        "timings": {"sql_duration_ms": duration},
        "duration": duration,
        "changes": changes,
        "last_row_id": conn.last_insert_rowid(),
        "changed_db": changes > 0 || schema_changed,
        "size_after": size_of(conn),
        "rows_read": rows_read,
        "rows_written": rows_written,
    });
    out.push_str("{\"results\":");
    match shape {
        Shape::Objects => {
            out.push('[');
            out.push_str(&body);
            out.push(']');
        }
        Shape::Raw => {
            out.push_str("{\"columns\":");
            out.push_str(&Value::from(columns).to_string());
            out.push_str(",\"rows\":[");
            out.push_str(&body);
            out.push_str("]}");
        }
    }
    out.push_str(",\"success\":true,\"meta\":");
    out.push_str(&meta.to_string());
    out.push('}');
    Ok(())
}

/// Runs every statement of `queries` in one transaction and returns the JSON array of
/// result elements (one per statement); on any error the transaction is rolled back
/// and nothing is kept.
pub(crate) fn run(conn: &Connection, queries: &[Query], shape: Shape) -> Result<String, SqlError> {
    conn.execute_batch("BEGIN").map_err(|e| sql_error(&e))?;
    let mut out = String::from("[");
    let mut first = true;
    let outcome = (|| {
        for query in queries {
            let statements = split_statements(&query.sql);
            if statements.is_empty() {
                return Err(SqlError("SQL code did not contain a statement.".to_owned()));
            }
            let last = statements.len() - 1;
            for (i, sql) in statements.iter().enumerate() {
                if matches!(
                    leading_keyword(sql).as_str(),
                    "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE"
                ) {
                    return Err(SqlError(NO_TRANSACTIONS.to_owned()));
                }
                let params: &[Param] = if i == last {
                    &query.params
                } else {
                    // Parameters bind to the last statement only; an earlier one must have none.
                    let stmt = conn.prepare(sql).map_err(|e| sql_error(&e))?;
                    if stmt.parameter_count() > 0 {
                        return Err(SqlError(PARAMS_NOT_LAST.to_owned()));
                    }
                    &[]
                };
                if !first {
                    out.push(',');
                }
                first = false;
                run_statement(conn, sql, params, shape, &mut out)?;
            }
        }
        Ok(())
    })();
    match outcome {
        Ok(()) => {
            if let Err(e) = conn.execute_batch("COMMIT") {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(sql_error(&e));
            }
            out.push(']');
            Ok(out)
        }
        Err(e) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        apply_limits(&conn);
        conn
    }

    fn q(sql: &str, params: &[&str]) -> Query {
        Query {
            sql: sql.to_owned(),
            params: params
                .iter()
                .map(|p| Param::Text((*p).to_owned()))
                .collect(),
        }
    }

    fn results(conn: &Connection, queries: &[Query], shape: Shape) -> Value {
        serde_json::from_str(&run(conn, queries, shape).unwrap()).unwrap()
    }

    #[test]
    fn numbers_are_written_as_javascript_writes_them() {
        assert_eq!(js_number(3.0), "3");
        assert_eq!(js_number(-0.0), "0");
        assert_eq!(js_number(1.25), "1.25");
        assert_eq!(js_number(-9_007_199_254_740_992.0), "-9007199254740992");
        assert_eq!(js_number(9.223_372_036_854_776e18), "9223372036854776000");
        assert_eq!(js_number(1e21), "1e+21");
        assert_eq!(js_number(f64::NAN), "null");
        let c = conn();
        let out = run(
            &c,
            &[q(
                "SELECT 9223372036854775807 AS max, 9007199254740991 AS safe, 2.0 AS two",
                &[],
            )],
            Shape::Objects,
        )
        .unwrap();
        assert!(
            out.contains(r#"{"max":9223372036854776000,"safe":9007199254740991,"two":2}"#),
            "{out}"
        );
    }

    #[test]
    fn numeric_text_takes_the_column_affinity() {
        let c = conn();
        let v = results(
            &c,
            &[
                q("CREATE TABLE t(n INTEGER, r REAL, s TEXT, b BLOB)", &[]),
                q(
                    "INSERT INTO t VALUES (?, ?, ?, ?)",
                    &["42", "1.5", "7", "x"],
                ),
                q(
                    "SELECT n, typeof(n) AS tn, r, typeof(r) AS tr, s, typeof(s) AS ts, typeof(b) AS tb FROM t",
                    &[],
                ),
            ],
            Shape::Objects,
        );
        let row = &v[2]["results"][0];
        assert_eq!(row["n"], 42);
        assert_eq!(row["tn"], "integer");
        assert_eq!(row["r"], 1.5);
        assert_eq!(row["tr"], "real");
        assert_eq!(row["s"], "7");
        assert_eq!(row["ts"], "text");
        assert_eq!(row["tb"], "text");
    }

    #[test]
    fn values_rows_and_column_order() {
        let c = conn();
        let out = run(
            &c,
            &[q(
                "SELECT 2 AS z, NULL AS a, x'0102ff' AS b, 1e999 AS inf, 'é' AS t",
                &[],
            )],
            Shape::Objects,
        )
        .unwrap();
        assert!(
            out.contains(r#"{"z":2,"a":null,"b":[1,2,255],"inf":null,"t":"é"}"#),
            "{out}"
        );
        let raw = results(
            &c,
            &[q("SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y'", &[])],
            Shape::Raw,
        );
        assert_eq!(
            raw[0]["results"],
            json!({"columns": ["a", "b"], "rows": [[1, "x"], [2, "y"]]})
        );
    }

    #[test]
    fn meta_is_computed() {
        let c = conn();
        let v = results(
            &c,
            &[
                q("CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT)", &[]),
                q("INSERT INTO t(x) VALUES ('a'), ('b'), ('c')", &[]),
                q("SELECT * FROM t", &[]),
                q("DELETE FROM t WHERE id > 1", &[]),
            ],
            Shape::Objects,
        );
        assert_eq!(v[0]["meta"]["changed_db"], true);
        assert_eq!(v[0]["meta"]["changes"], 0);
        assert_eq!(v[1]["meta"]["changes"], 3);
        assert_eq!(v[1]["meta"]["last_row_id"], 3);
        assert_eq!(v[1]["meta"]["rows_written"], 3);
        assert_eq!(v[2]["meta"]["changed_db"], false);
        assert_eq!(v[2]["meta"]["rows_read"], 3);
        assert_eq!(v[3]["meta"]["changes"], 2);
        assert!(v[3]["meta"]["size_after"].as_i64().unwrap() > 0);
        assert!(v[3]["meta"]["duration"].as_f64().unwrap() >= 0.0);
        assert_eq!(
            v[3]["meta"]["timings"]["sql_duration_ms"],
            v[3]["meta"]["duration"]
        );
    }

    #[test]
    fn a_failure_rolls_everything_back() {
        let c = conn();
        run(&c, &[q("CREATE TABLE t(x UNIQUE)", &[])], Shape::Objects).unwrap();
        let err = run(
            &c,
            &[
                q("INSERT INTO t VALUES (1)", &[]),
                q("INSERT INTO t VALUES (2)", &[]),
                q("INSERT INTO t VALUES (1)", &[]),
            ],
            Shape::Objects,
        )
        .unwrap_err();
        assert_eq!(err.0, "UNIQUE constraint failed: t.x: SQLITE_CONSTRAINT");
        let v = results(&c, &[q("SELECT count(*) AS n FROM t", &[])], Shape::Objects);
        assert_eq!(v[0]["results"][0]["n"], 0);
        assert!(c.is_autocommit());
    }

    #[test]
    fn error_messages() {
        let c = conn();
        let e = run(&c, &[q("SELECT * FROM nope", &[])], Shape::Objects).unwrap_err();
        assert!(e.0.starts_with("no such table: nope"), "{}", e.0);
        assert!(e.0.ends_with(": SQLITE_ERROR"), "{}", e.0);
        let e = run(&c, &[q("SELECT ?", &[])], Shape::Objects).unwrap_err();
        assert_eq!(e.0, WRONG_PARAMETER_COUNT);
        let e = run(&c, &[q("SELECT ?; SELECT 1", &["a"])], Shape::Objects).unwrap_err();
        assert_eq!(e.0, PARAMS_NOT_LAST);
        let v = results(
            &c,
            &[q("SELECT 1 AS a; SELECT ? AS b", &["x"])],
            Shape::Objects,
        );
        assert_eq!(v[1]["results"][0]["b"], "x");
        let e = run(&c, &[q("BEGIN; SELECT 1; COMMIT", &[])], Shape::Objects).unwrap_err();
        assert_eq!(e.0, NO_TRANSACTIONS);
        let e = run(&c, &[q("  -- nothing\n", &[])], Shape::Objects).unwrap_err();
        assert_eq!(e.0, "SQL code did not contain a statement.");
        let e = run(&c, &[q("ATTACH 'x.db' AS x", &[])], Shape::Objects).unwrap_err();
        assert!(e.0.contains("too many attached databases"), "{}", e.0);
    }
}
