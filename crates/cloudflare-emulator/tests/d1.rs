//! D1 `/query` and `/raw` against the emulator, directly and through Prism's validating
//! proxy of Cloudflare's OpenAPI spec: results, meta, transactions, every documented
//! limit just inside and just outside, errors, persistence and concurrency.

mod common;

use cloudflare_emulator::EmulatorConfig;
use common::{Harness, Reply};
use http::Method;
use serde_json::{Value, json};

const DB: &str = "6f2c1b0e-9d8a-4c3b-a1e2-f3d4c5b6a798";

/// Runs scenario `$name` as two tests: `direct`, and `via_prism` (asserting no spec
/// violation; ignored when Prism is not installed).
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn direct() {
                let h = super::Harness::direct(super::EmulatorConfig::default()).await;
                super::$name(&h).await;
            }

            cloudflare_testkit::prism_tests! {
                #[tokio::test]
                async fn via_prism() {
                    let h = super::Harness::via_prism(super::EmulatorConfig::default()).await;
                    super::$name(&h).await;
                    h.assert_no_violations();
                }
            }
        }
    };
}

async fn query(h: &Harness, db: &str, body: &Value) -> Reply {
    h.json(
        Method::POST,
        &h.path(&format!("d1/database/{db}/query")),
        body,
    )
    .await
}

async fn raw(h: &Harness, db: &str, body: &Value) -> Reply {
    h.json(
        Method::POST,
        &h.path(&format!("d1/database/{db}/raw")),
        body,
    )
    .await
}

/// The rows of the single statement of `sql`.
async fn rows(h: &Harness, sql: &str) -> Vec<Value> {
    let result = query(h, DB, &json!({"sql": sql})).await.result();
    result[0]["results"].as_array().cloned().unwrap_or_default()
}

/// Asserts a 400/7500 whose message contains `needle` and ends with `suffix`.
fn sql_error(reply: &Reply, needle: &str, suffix: &str) {
    let message = reply.error(400, 7500);
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    assert!(
        message.ends_with(suffix),
        "{message:?} does not end with {suffix:?}"
    );
}

// ---------------------------------------------------------------------------------------

both!(single_queries_bind_text_and_return_rows_with_meta);
async fn single_queries_bind_text_and_return_rows_with_meta(h: &Harness) {
    let created = query(
        h,
        DB,
        &json!({"sql": "CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER, r REAL, s TEXT)"}),
    )
    .await
    .result();
    assert_eq!(created.as_array().map(Vec::len), Some(1));
    assert_eq!(created[0]["success"], true);
    assert_eq!(created[0]["results"], json!([]));
    assert_eq!(created[0]["meta"]["changed_db"], true);

    let inserted = query(
        h,
        DB,
        &json!({"sql": "INSERT INTO t(n, r, s) VALUES (?, ?, ?)", "params": ["42", "2.5", "007"]}),
    )
    .await
    .result();
    let meta = &inserted[0]["meta"];
    for field in [
        "changed_db",
        "changes",
        "duration",
        "last_row_id",
        "rows_read",
        "rows_written",
        "served_by_colo",
        "served_by_primary",
        "served_by_region",
        "size_after",
        "timings",
    ] {
        assert!(meta.get(field).is_some(), "meta lacks {field}: {meta}");
    }
    assert_eq!(meta["changes"], 1);
    assert_eq!(meta["last_row_id"], 1);
    assert_eq!(meta["rows_written"], 1);
    assert_eq!(meta["changed_db"], true);
    assert!(meta["size_after"].as_f64().unwrap() > 0.0);
    assert!(meta["timings"]["sql_duration_ms"].as_f64().unwrap() >= 0.0);

    // "42" bound as TEXT became INTEGER 42 through the column's affinity, as on D1.
    let row = rows(
        h,
        "SELECT n, typeof(n) AS tn, r, typeof(r) AS tr, s, typeof(s) AS ts FROM t",
    )
    .await;
    assert_eq!(
        row,
        vec![json!({"n": 42, "tn": "integer", "r": 2.5, "tr": "real", "s": "007", "ts": "text"})]
    );

    let selected = query(
        h,
        DB,
        &json!({"sql": "SELECT id FROM t WHERE n = ?", "params": ["42"]}),
    )
    .await
    .result();
    assert_eq!(selected[0]["results"], json!([{"id": 1}]));
    assert_eq!(selected[0]["meta"]["changed_db"], false);
    assert_eq!(selected[0]["meta"]["changes"], 0);
    assert!(selected[0]["meta"]["rows_read"].as_u64().unwrap() >= 1);
}

both!(raw_returns_columns_and_row_arrays);
async fn raw_returns_columns_and_row_arrays(h: &Harness) {
    query(h, DB, &json!({"sql": "CREATE TABLE t(a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'x'), (2, 'y')"}))
        .await
        .result();
    let result = raw(
        h,
        DB,
        &json!({"sql": "SELECT a, b, a * 1.5 AS c FROM t ORDER BY a DESC"}),
    )
    .await
    .result();
    assert_eq!(
        result[0]["results"],
        json!({"columns": ["a", "b", "c"], "rows": [[2, "y", 3], [1, "x", 1.5]]})
    );
    assert_eq!(result[0]["success"], true);
    assert!(result[0]["meta"]["duration"].is_number());
    let batch = raw(
        h,
        DB,
        &json!({"batch": [
            {"sql": "SELECT count(*) AS n FROM t"},
            {"sql": "SELECT b FROM t WHERE a = ?", "params": ["2"]},
            {"sql": "DELETE FROM t WHERE a = ?", "params": ["1"]},
        ]}),
    )
    .await
    .result();
    assert_eq!(batch[0]["results"]["rows"], json!([[2]]));
    assert_eq!(
        batch[1]["results"],
        json!({"columns": ["b"], "rows": [["y"]]})
    );
    assert_eq!(batch[2]["results"], json!({"columns": [], "rows": []}));
    assert_eq!(batch[2]["meta"]["changes"], 1);
}

both!(column_order_and_value_types_are_kept);
async fn column_order_and_value_types_are_kept(h: &Harness) {
    let reply = query(h, DB, &json!({"sql": "SELECT 3 AS z, 'a' AS y, 1.25 AS x, x'00ff10' AS w, -9007199254740993 AS big, 4.0 AS four"})).await;
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    assert!(
        text.contains(
            r#"{"z":3,"y":"a","x":1.25,"w":[0,255,16],"big":-9007199254740992,"four":4}"#
        ),
        "{text}"
    );
    // Integers beyond 2^53 lose precision as D1's JavaScript numbers do.
    let nulls = rows(h, "SELECT NULL AS missing").await;
    assert_eq!(nulls, vec![json!({"missing": null})]);
}

both!(semicolon_joined_statements_each_get_a_result);
async fn semicolon_joined_statements_each_get_a_result(h: &Harness) {
    let result = query(h, DB, &json!({"sql":
        "CREATE TABLE t(x TEXT); INSERT INTO t VALUES ('a;b'); -- a comment; with a semicolon\n SELECT x FROM t WHERE x <> ?;",
        "params": ["zzz"]}))
    .await
    .result();
    assert_eq!(result.as_array().map(Vec::len), Some(3));
    assert_eq!(result[2]["results"], json!([{"x": "a;b"}]));
    // Parameters bind to the last statement only.
    sql_error(
        &query(
            h,
            DB,
            &json!({"sql": "SELECT ?; SELECT 1", "params": ["a"]}),
        )
        .await,
        "only the last statement can have parameters",
        ".",
    );
    // A trigger body's semicolons do not split it.
    let result = query(h, DB, &json!({"sql":
        "CREATE TABLE log(x); CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.x); INSERT INTO log VALUES ('again'); END; INSERT INTO t VALUES ('c'); SELECT count(*) AS n FROM log"}))
    .await
    .result();
    assert_eq!(result.as_array().map(Vec::len), Some(4));
    assert_eq!(result[3]["results"], json!([{"n": 2}]));
    assert_eq!(
        result[2]["meta"]["changes"], 3,
        "changes counts trigger rows, like sqlite3_total_changes()"
    );
}

both!(a_batch_is_one_transaction);
async fn a_batch_is_one_transaction(h: &Harness) {
    query(
        h,
        DB,
        &json!({"sql": "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)"}),
    )
    .await
    .result();
    let ok = query(
        h,
        DB,
        &json!({"batch": [
            {"sql": "INSERT INTO t(v) VALUES (?)", "params": ["one"]},
            {"sql": "INSERT INTO t(v) VALUES (?)", "params": ["two"]},
            {"sql": "SELECT v FROM t ORDER BY id"},
        ]}),
    )
    .await
    .result();
    assert_eq!(ok.as_array().map(Vec::len), Some(3));
    assert_eq!(ok[1]["meta"]["last_row_id"], 2);
    assert_eq!(ok[2]["results"], json!([{"v": "one"}, {"v": "two"}]));

    // Statement 3 fails: 1 and 2 are rolled back, and only the error is answered.
    let failed = query(
        h,
        DB,
        &json!({"batch": [
            {"sql": "INSERT INTO t(v) VALUES ('three')"},
            {"sql": "UPDATE t SET v = 'changed'"},
            {"sql": "INSERT INTO t(id, v) VALUES (1, 'duplicate')"},
        ]}),
    )
    .await;
    sql_error(
        &failed,
        "UNIQUE constraint failed: t.id",
        ": SQLITE_CONSTRAINT",
    );
    assert_eq!(
        rows(h, "SELECT v FROM t ORDER BY id").await,
        vec![json!({"v": "one"}), json!({"v": "two"})]
    );

    // The same for semicolon-joined statements of one `sql`.
    sql_error(
        &query(
            h,
            DB,
            &json!({"sql": "DELETE FROM t; INSERT INTO t(v) VALUES (NULL)"}),
        )
        .await,
        "NOT NULL constraint failed: t.v",
        ": SQLITE_CONSTRAINT",
    );
    assert_eq!(
        rows(h, "SELECT count(*) AS n FROM t").await,
        vec![json!({"n": 2})]
    );

    // Transaction statements are refused (each request is already a transaction).
    sql_error(
        &query(h, DB, &json!({"sql": "BEGIN TRANSACTION"})).await,
        "SAVEPOINT",
        ": SQLITE_AUTH",
    );
    sql_error(
        &query(h, DB, &json!({"sql": "SAVEPOINT a"})).await,
        "SAVEPOINT",
        ": SQLITE_AUTH",
    );

    // An empty batch runs nothing.
    assert_eq!(
        query(h, DB, &json!({"batch": []})).await.result(),
        json!([])
    );
}

both!(sql_errors_are_400_7500_with_sqlite_messages);
async fn sql_errors_are_400_7500_with_sqlite_messages(h: &Harness) {
    sql_error(
        &query(h, DB, &json!({"sql": "SELECT * FROM missing"})).await,
        "no such table: missing",
        ": SQLITE_ERROR",
    );
    sql_error(
        &raw(h, DB, &json!({"sql": "SELEC 1"})).await,
        "syntax error",
        ": SQLITE_ERROR",
    );
    sql_error(
        &query(h, DB, &json!({"sql": "SELECT nope()"})).await,
        "no such function: nope",
        ": SQLITE_ERROR",
    );
    let message = query(h, DB, &json!({"sql": "SELECT ?, ?", "params": ["1"]}))
        .await
        .error(400, 7500);
    assert_eq!(message, "Wrong number of parameter bindings for SQL query.");
    query(h, DB, &json!({"sql": "CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE c(p INTEGER REFERENCES p(id))"}))
        .await
        .result();
    // D1 enforces foreign keys.
    sql_error(
        &query(h, DB, &json!({"sql": "INSERT INTO c VALUES (9)"})).await,
        "FOREIGN KEY constraint failed",
        ": SQLITE_CONSTRAINT",
    );
    sql_error(
        &query(h, DB, &json!({"sql": "ATTACH 'other.db' AS o"})).await,
        "too many attached databases",
        ": SQLITE_ERROR",
    );
    sql_error(
        &query(h, DB, &json!({"sql": "   -- nothing here\n"})).await,
        "did not contain a statement",
        ".",
    );
}

both!(bound_parameters_limit_is_100);
async fn bound_parameters_limit_is_100(h: &Harness) {
    let placeholders = |n: usize| {
        (0..n)
            .map(|i| format!("? AS c{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let params = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>();
    let inside = query(
        h,
        DB,
        &json!({"sql": format!("SELECT {}", placeholders(100)), "params": params(100)}),
    )
    .await
    .result();
    assert_eq!(
        inside[0]["results"][0].as_object().map(|o| o.len()),
        Some(100)
    );
    sql_error(
        &query(
            h,
            DB,
            &json!({"sql": format!("SELECT {}", placeholders(101)), "params": params(101)}),
        )
        .await,
        "too many SQL variables",
        ": SQLITE_ERROR",
    );
    // The limit is per statement: a batch may bind more in total.
    let batch: Vec<Value> = (0..3)
        .map(|_| json!({"sql": format!("SELECT {}", placeholders(100)), "params": params(100)}))
        .collect();
    assert_eq!(
        query(h, DB, &json!({"batch": batch}))
            .await
            .result()
            .as_array()
            .map(Vec::len),
        Some(3)
    );
}

both!(statement_length_limit_is_100000_bytes);
async fn statement_length_limit_is_100000_bytes(h: &Harness) {
    // `SELECT '<pad>' AS s` of exactly n bytes.
    let statement = |n: usize| format!("SELECT '{}' AS s", "a".repeat(n - "SELECT '' AS s".len()));
    assert_eq!(statement(100_000).len(), 100_000);
    query(h, DB, &json!({"sql": statement(100_000)}))
        .await
        .result();
    sql_error(
        &query(h, DB, &json!({"sql": statement(100_001)})).await,
        "statement too long",
        ": SQLITE_TOOBIG",
    );
    // Per statement: two statements of 100,000 bytes pass together.
    let two = format!("{};{}", statement(99_999), statement(100_000));
    assert_eq!(
        query(h, DB, &json!({"sql": two}))
            .await
            .result()
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

both!(string_blob_and_row_limit_is_2000000_bytes);
async fn string_blob_and_row_limit_is_2000000_bytes(h: &Harness) {
    let length = query(
        h,
        DB,
        &json!({"sql": "SELECT length(?) AS n", "params": ["x".repeat(2_000_000)]}),
    )
    .await
    .result();
    assert_eq!(length[0]["results"][0]["n"], 2_000_000);
    sql_error(
        &query(
            h,
            DB,
            &json!({"sql": "SELECT length(?) AS n", "params": ["x".repeat(2_000_001)]}),
        )
        .await,
        "string or blob too big",
        ": SQLITE_TOOBIG",
    );
    assert_eq!(
        rows(h, "SELECT length(zeroblob(2000000)) AS n").await,
        vec![json!({"n": 2_000_000})]
    );
    sql_error(
        &query(h, DB, &json!({"sql": "SELECT zeroblob(2000001)"})).await,
        "string or blob too big",
        ": SQLITE_TOOBIG",
    );
    // A row is limited as a whole: two 999,990-byte values fit, two 1,000,000-byte values do not.
    query(h, DB, &json!({"sql": "CREATE TABLE big(a BLOB, b BLOB)"}))
        .await
        .result();
    query(
        h,
        DB,
        &json!({"sql": "INSERT INTO big VALUES (zeroblob(999990), zeroblob(999990))"}),
    )
    .await
    .result();
    sql_error(
        &query(
            h,
            DB,
            &json!({"sql": "INSERT INTO big VALUES (zeroblob(1000000), zeroblob(1000000))"}),
        )
        .await,
        "too big",
        ": SQLITE_TOOBIG",
    );
    assert_eq!(
        rows(h, "SELECT count(*) AS n FROM big").await,
        vec![json!({"n": 1})]
    );
}

both!(columns_function_arguments_and_like_pattern_limits);
async fn columns_function_arguments_and_like_pattern_limits(h: &Harness) {
    let columns = |n: usize| {
        (0..n)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    query(
        h,
        DB,
        &json!({"sql": format!("CREATE TABLE wide({})", columns(100))}),
    )
    .await
    .result();
    sql_error(
        &query(
            h,
            DB,
            &json!({"sql": format!("CREATE TABLE wider({})", columns(101))}),
        )
        .await,
        "too many columns on wider",
        ": SQLITE_ERROR",
    );
    let args = |n: usize| vec!["1"; n].join(", ");
    assert_eq!(
        rows(h, &format!("SELECT max({}) AS m", args(32))).await,
        vec![json!({"m": 1})]
    );
    sql_error(
        &query(h, DB, &json!({"sql": format!("SELECT max({})", args(33))})).await,
        "too many arguments on function max",
        ": SQLITE_ERROR",
    );
    let like = |n: usize| json!({"sql": "SELECT 'a' LIKE ? AS m", "params": ["%".repeat(n)]});
    assert_eq!(
        query(h, DB, &like(50)).await.result()[0]["results"][0]["m"],
        1
    );
    sql_error(
        &query(h, DB, &like(51)).await,
        "LIKE or GLOB pattern too complex",
        ": SQLITE_ERROR",
    );
}

both!(database_ids_are_uuids_and_databases_are_separate);
async fn database_ids_are_uuids_and_databases_are_separate(h: &Harness) {
    let other = "6F2C1B0E-9D8A-4C3B-A1E2-000000000001";
    query(h, DB, &json!({"sql": "CREATE TABLE only_here(x)"}))
        .await
        .result();
    sql_error(
        &query(h, other, &json!({"sql": "SELECT * FROM only_here"})).await,
        "no such table",
        ": SQLITE_ERROR",
    );
    // The same UUID in upper case names the same database.
    query(
        h,
        &DB.to_uppercase(),
        &json!({"sql": "SELECT * FROM only_here"}),
    )
    .await
    .result();
    let message = query(h, "not-a-uuid", &json!({"sql": "SELECT 1"}))
        .await
        .error(400, 7400);
    assert_eq!(message, "The request is malformed: failed to decode id");
    raw(h, "not-a-uuid", &json!({"sql": "SELECT 1"}))
        .await
        .error(400, 7400);
}

both!(concurrent_requests_on_one_database_are_serialized);
async fn concurrent_requests_on_one_database_are_serialized(h: &Harness) {
    query(
        h,
        DB,
        &json!({"sql": "CREATE TABLE c(id INTEGER PRIMARY KEY, v TEXT)"}),
    )
    .await
    .result();
    let writes = (0..20).map(|i| async move {
        query(
            h,
            DB,
            &json!({"batch": [
                {"sql": "INSERT INTO c(v) VALUES (?)", "params": [format!("a{i}")]},
                {"sql": "INSERT INTO c(v) VALUES (?)", "params": [format!("b{i}")]},
            ]}),
        )
        .await
        .result()
    });
    let results = futures_join_all(writes).await;
    assert_eq!(results.len(), 20);
    for result in &results {
        let first = result[0]["meta"]["last_row_id"].as_i64().unwrap();
        assert_eq!(
            result[1]["meta"]["last_row_id"].as_i64().unwrap(),
            first + 1,
            "a batch is not interleaved"
        );
    }
    assert_eq!(
        rows(h, "SELECT count(*) AS n FROM c").await,
        vec![json!({"n": 40})]
    );
}

/// Polls every future concurrently until all are done (`join_all` without the futures crate).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.map(|f| Some(Box::pin(f))).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (slot, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *output = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

// ---------------------------------------------------------------------------------------
// Deliberately outside the spec: direct only.

#[tokio::test]
async fn raw_nulls_and_blobs_directly() {
    // The spec types raw row items as number | string | object; D1 still answers NULL as
    // `null` and a BLOB as an array of bytes, and so does the emulator.
    let h = Harness::direct(EmulatorConfig::default()).await;
    let result = raw(&h, DB, &json!({"sql": "SELECT NULL AS n, x'0102' AS b"}))
        .await
        .result();
    assert_eq!(result[0]["results"]["rows"], json!([[null, [1, 2]]]));
}

#[tokio::test]
async fn malformed_bodies_are_400_7400_envelopes() {
    let h = Harness::direct(EmulatorConfig::default()).await;
    let path = h.path(&format!("d1/database/{DB}/query"));
    for body in [
        "{not json",
        "[]",
        "{}",
        r#"{"sql": 1}"#,
        r#"{"sql": "SELECT ?", "params": "x"}"#,
        r#"{"sql": "SELECT ?", "params": [[1]]}"#,
        r#"{"batch": {"sql": "SELECT 1"}}"#,
        r#"{"batch": [{"params": []}]}"#,
        "",
    ] {
        let reply = h
            .send(
                Method::POST,
                &path,
                Some("application/json"),
                body.to_owned(),
            )
            .await;
        let message = reply.error(400, 7400);
        assert!(
            message.starts_with("The request is malformed"),
            "{body}: {message}"
        );
    }
    let wrong_method = h.get(&path).await;
    wrong_method.error(405, 7001);
}

#[tokio::test]
async fn non_string_params_are_bound_by_their_json_type_directly() {
    let h = Harness::direct(EmulatorConfig::default()).await;
    let result = query(&h, DB, &json!({"sql": "SELECT typeof(?) AS a, typeof(?) AS b, typeof(?) AS c, typeof(?) AS d", "params": [1, 1.5, null, true]}))
        .await
        .result();
    assert_eq!(
        result[0]["results"],
        json!([{"a": "integer", "b": "real", "c": "null", "d": "integer"}])
    );
}

#[tokio::test]
async fn databases_persist_across_restarts_with_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmulatorConfig {
        data_dir: Some(dir.path().to_owned()),
        ..EmulatorConfig::default()
    };
    {
        let h = Harness::direct(config.clone()).await;
        query(
            &h,
            DB,
            &json!({"sql": "CREATE TABLE kept(x); INSERT INTO kept VALUES ('still here')"}),
        )
        .await
        .result();
        h.emulator.shutdown().await;
    }
    let h = Harness::direct(config).await;
    assert_eq!(
        raw(&h, DB, &json!({"sql": "SELECT x FROM kept"}))
            .await
            .result()[0]["results"]["rows"],
        json!([["still here"]])
    );
    assert!(dir.path().join("d1").join(format!("{DB}.sqlite3")).exists());
}
