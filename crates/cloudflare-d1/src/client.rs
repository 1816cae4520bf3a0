//! [`D1Client`], its typed requests, its [`tower::Service`] impls and the [`D1Api`] trait.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use cloudflare_http::{
    Client, ServiceClient, encode_segment, idempotent, json_request, not_idempotent,
};
use http::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::D1Error;
use crate::model::{QueryResult, RawResult, StatementOutcome};
use crate::statement::{Statement, WireBatch, validate_batch};

/// The service name D1 calls are accounted under (`client.service("d1")`).
pub(crate) const SERVICE: &str = "d1";

/// A boxed, `Send` future, as the [`tower::Service`] impls return.
type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, D1Error>> + Send + 'static>>;

/// The endpoints of one database.
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    /// `/query`: rows as objects.
    Query,
    /// `/raw`: rows as arrays.
    Raw,
}

/// A client for one D1 database. Cheap to clone, `Send + Sync`.
///
/// Every method validates against D1's limits first ([`Statement::validate`]), then sends
/// one POST through the `"d1"` service of the [`cloudflare_http::Client`].
#[derive(Clone)]
pub struct D1Client {
    service: ServiceClient,
    database_id: Arc<str>,
    query_path: Arc<str>,
    raw_path: Arc<str>,
}

impl fmt::Debug for D1Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("D1Client")
            .field("account_id", &self.service.account_id())
            .field("database_id", &self.database_id)
            .finish_non_exhaustive()
    }
}

impl D1Client {
    /// A client for database `database_id` (its UUID) of `client`'s account.
    #[must_use]
    pub fn new(client: &Client, database_id: impl Into<String>) -> Self {
        Self::from_service(client.service(SERVICE), database_id)
    }

    /// A client over an existing service client (normally `client.service("d1")`).
    #[must_use]
    pub fn from_service(service: ServiceClient, database_id: impl Into<String>) -> Self {
        let database_id: String = database_id.into();
        let base = format!(
            "/accounts/{}/d1/database/{}",
            encode_segment(service.account_id()),
            encode_segment(&database_id)
        );
        Self {
            query_path: format!("{base}/query").into(),
            raw_path: format!("{base}/raw").into(),
            database_id: database_id.into(),
            service,
        }
    }

    /// The database id.
    #[must_use]
    pub fn database_id(&self) -> &str {
        &self.database_id
    }

    /// The service client the calls go through (its breaker, account id).
    #[must_use]
    pub fn service(&self) -> &ServiceClient {
        &self.service
    }

    /// Runs one statement and returns its rows as objects.
    ///
    /// # Errors
    ///
    /// A limit variant of [`D1Error`] before sending; [`D1Error::Sql`] when SQLite rejects
    /// the statement; [`D1Error::ResultCount`] when the SQL held several statements;
    /// [`D1Error::Cloudflare`] for any other failure.
    pub async fn query(&self, statement: impl Into<Statement>) -> Result<QueryResult, D1Error> {
        self.single(Endpoint::Query, "query", statement.into())
            .await
    }

    /// [`D1Client::query`], then [`QueryResult::deserialize_rows`] into `T`.
    ///
    /// # Errors
    ///
    /// As [`D1Client::query`], and [`D1Error::Row`] when a row does not fit `T`.
    pub async fn query_as<T: DeserializeOwned>(
        &self,
        statement: impl Into<Statement>,
    ) -> Result<Vec<T>, D1Error> {
        self.query(statement).await?.deserialize_rows()
    }

    /// Runs `statements` in one request (one transaction) and returns one result per
    /// statement, in order. Retried only if every statement is idempotent.
    ///
    /// # Errors
    ///
    /// As [`D1Client::query`], with [`D1Error::EmptyBatch`] for no statements; a limit
    /// error names the offending statement's position.
    pub async fn batch(
        &self,
        statements: impl IntoIterator<Item = Statement>,
    ) -> Result<Vec<QueryResult>, D1Error> {
        let statements: Vec<Statement> = statements.into_iter().collect();
        self.many(Endpoint::Query, "batch", &statements).await
    }

    /// Runs one statement through the `raw` endpoint: column names plus rows as arrays.
    ///
    /// # Errors
    ///
    /// As [`D1Client::query`].
    pub async fn raw(&self, statement: impl Into<Statement>) -> Result<RawResult, D1Error> {
        self.single(Endpoint::Raw, "raw", statement.into()).await
    }

    /// [`D1Client::batch`] through the `raw` endpoint.
    ///
    /// # Errors
    ///
    /// As [`D1Client::batch`].
    pub async fn raw_batch(
        &self,
        statements: impl IntoIterator<Item = Statement>,
    ) -> Result<Vec<RawResult>, D1Error> {
        let statements: Vec<Statement> = statements.into_iter().collect();
        self.many(Endpoint::Raw, "raw_batch", &statements).await
    }

    /// Validates, sends `{"sql","params"}` and expects exactly one result.
    async fn single<T>(
        &self,
        endpoint: Endpoint,
        operation: &'static str,
        statement: Statement,
    ) -> Result<T, D1Error>
    where
        T: DeserializeOwned + StatementOutcome,
    {
        statement.validate()?;
        let mut results: Vec<T> = self
            .send(
                endpoint,
                operation,
                &statement.wire(),
                statement.is_idempotent(),
            )
            .await?;
        check_results(&results, 1)?;
        results.pop().ok_or(D1Error::ResultCount {
            expected: 1,
            actual: 0,
        })
    }

    /// Validates, sends `{"batch": [...]}` and expects one result per statement.
    async fn many<T>(
        &self,
        endpoint: Endpoint,
        operation: &'static str,
        statements: &[Statement],
    ) -> Result<Vec<T>, D1Error>
    where
        T: DeserializeOwned + StatementOutcome,
    {
        validate_batch(statements)?;
        let body = WireBatch {
            batch: statements.iter().map(Statement::wire).collect(),
        };
        let retry = statements.iter().all(Statement::is_idempotent);
        let results: Vec<T> = self.send(endpoint, operation, &body, retry).await?;
        check_results(&results, statements.len())?;
        Ok(results)
    }

    /// POSTs `body` to `endpoint`, marked idempotent or not, and decodes the result list.
    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        operation: &'static str,
        body: &B,
        retry: bool,
    ) -> Result<Vec<T>, D1Error> {
        let path = match endpoint {
            Endpoint::Query => &self.query_path,
            Endpoint::Raw => &self.raw_path,
        };
        let request = json_request(Method::POST, path, body)?;
        let request = if retry {
            idempotent(request)
        } else {
            not_idempotent(request)
        };
        self.service
            .send_json::<Vec<T>>(operation, request)
            .await
            .map(|envelope| envelope.result)
            .map_err(D1Error::from_cloudflare)
    }
}

/// Checks the result count and every statement's `success` flag.
fn check_results<T: StatementOutcome>(results: &[T], expected: usize) -> Result<(), D1Error> {
    if let Some(statement) = results.iter().position(|r| !r.succeeded()) {
        return Err(D1Error::StatementFailed { statement });
    }
    if results.len() != expected {
        return Err(D1Error::ResultCount {
            expected,
            actual: results.len(),
        });
    }
    Ok(())
}

/// Run one statement through the `query` endpoint ([`D1Client::query`]).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRequest {
    /// The statement.
    pub statement: Statement,
}

/// Run statements in one request through the `query` endpoint ([`D1Client::batch`]).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRequest {
    /// The statements, in order.
    pub statements: Vec<Statement>,
}

/// Run one statement through the `raw` endpoint ([`D1Client::raw`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RawRequest {
    /// The statement.
    pub statement: Statement,
}

/// Run statements in one request through the `raw` endpoint ([`D1Client::raw_batch`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RawBatchRequest {
    /// The statements, in order.
    pub statements: Vec<Statement>,
}

macro_rules! single_request {
    ($($request:ident),*) => {$(
        impl $request {
            /// A request for `statement`.
            #[must_use]
            pub fn new(statement: impl Into<Statement>) -> Self {
                Self { statement: statement.into() }
            }
        }
        impl From<Statement> for $request {
            fn from(statement: Statement) -> Self {
                Self { statement }
            }
        }
    )*};
}
single_request!(QueryRequest, RawRequest);

macro_rules! batch_request {
    ($($request:ident),*) => {$(
        impl $request {
            /// A request for `statements`, in order.
            #[must_use]
            pub fn new(statements: impl IntoIterator<Item = Statement>) -> Self {
                Self { statements: statements.into_iter().collect() }
            }
        }
        impl From<Vec<Statement>> for $request {
            fn from(statements: Vec<Statement>) -> Self {
                Self { statements }
            }
        }
    )*};
}
batch_request!(BatchRequest, RawBatchRequest);

macro_rules! service_impl {
    ($request:ty, $response:ty, |$client:ident, $req:ident| $body:expr) => {
        impl tower::Service<$request> for D1Client {
            type Response = $response;
            type Error = D1Error;
            type Future = BoxFuture<$response>;

            /// Always ready: back-pressure is applied inside the transport stack.
            fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), D1Error>> {
                Poll::Ready(Ok(()))
            }

            fn call(&mut self, $req: $request) -> Self::Future {
                let $client = self.clone();
                Box::pin(async move { $body.await })
            }
        }
    };
}
service_impl!(QueryRequest, QueryResult, |client, req| client
    .query(req.statement));
service_impl!(BatchRequest, Vec<QueryResult>, |client, req| client
    .batch(req.statements));
service_impl!(RawRequest, RawResult, |client, req| client
    .raw(req.statement));
service_impl!(RawBatchRequest, Vec<RawResult>, |client, req| client
    .raw_batch(req.statements));

/// The D1 operations as an object-safe trait, implemented by [`D1Client`]; with the `mock`
/// feature (or in this crate's tests) `MockD1Api` is its mockall mock.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait::async_trait]
pub trait D1Api: Send + Sync {
    /// [`D1Client::query`].
    async fn query(&self, statement: Statement) -> Result<QueryResult, D1Error>;
    /// [`D1Client::batch`].
    async fn batch(&self, statements: Vec<Statement>) -> Result<Vec<QueryResult>, D1Error>;
    /// [`D1Client::raw`].
    async fn raw(&self, statement: Statement) -> Result<RawResult, D1Error>;
    /// [`D1Client::raw_batch`].
    async fn raw_batch(&self, statements: Vec<Statement>) -> Result<Vec<RawResult>, D1Error>;
}

#[async_trait::async_trait]
impl D1Api for D1Client {
    async fn query(&self, statement: Statement) -> Result<QueryResult, D1Error> {
        D1Client::query(self, statement).await
    }

    async fn batch(&self, statements: Vec<Statement>) -> Result<Vec<QueryResult>, D1Error> {
        D1Client::batch(self, statements).await
    }

    async fn raw(&self, statement: Statement) -> Result<RawResult, D1Error> {
        D1Client::raw(self, statement).await
    }

    async fn raw_batch(&self, statements: Vec<Statement>) -> Result<Vec<RawResult>, D1Error> {
        D1Client::raw_batch(self, statements).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use bytes::Bytes;
    use cloudflare_http::{
        ApiToken, ClientBuilder, ClientConfig, HttpRequest, HttpResponse, HttpService, Operation,
        is_idempotent,
    };
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use tower::{Service, ServiceExt};

    /// What the fake server saw of one request.
    #[derive(Debug, Clone)]
    struct Seen {
        operation: Operation,
        method: Method,
        path: String,
        content_type: Option<String>,
        body: Value,
        idempotent: bool,
    }

    /// A client whose outermost layer answers every request with `(status, body)` and
    /// records it, so nothing reaches the network.
    fn fake(status: u16, reply: Value) -> (Client, Arc<Mutex<Vec<Seen>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let layer = tower::layer::layer_fn(move |_inner: HttpService| {
            let log = Arc::clone(&log);
            let reply = reply.clone();
            tower::service_fn(move |req: HttpRequest| {
                let log = Arc::clone(&log);
                let reply = reply.clone();
                async move {
                    let idempotent = is_idempotent(&req);
                    let operation = Operation::of(&req);
                    let (parts, body) = req.into_parts();
                    let bytes = body.collect().await.unwrap().to_bytes();
                    log.lock().unwrap().push(Seen {
                        operation,
                        method: parts.method,
                        path: parts.uri.to_string(),
                        content_type: parts
                            .headers
                            .get(http::header::CONTENT_TYPE)
                            .map(|v| v.to_str().unwrap().to_owned()),
                        body: serde_json::from_slice(&bytes).unwrap(),
                        idempotent,
                    });
                    let response: HttpResponse = http::Response::builder()
                        .status(status)
                        .body(Bytes::from(reply.to_string()))
                        .unwrap();
                    Ok::<_, cloudflare_http::CloudflareError>(response)
                }
            })
        });
        let config = ClientConfig::new("acc/1", ApiToken::new("secret-token-for-tests"));
        let client = ClientBuilder::new(config)
            .with_layer(layer)
            .build()
            .unwrap();
        (client, seen)
    }

    fn ok(result: Value) -> Value {
        json!({"success": true, "errors": [], "messages": [], "result": result})
    }

    fn one_row() -> Value {
        json!({"results": [{"id": "a", "n": 1}], "success": true, "meta": {"changes": 0, "duration": 0.1}})
    }

    #[test]
    fn client_is_clone_send_sync_and_paths_are_encoded() {
        fn assert_traits<T: Clone + Send + Sync + 'static>() {}
        assert_traits::<D1Client>();
        let (client, _) = fake(200, ok(json!([])));
        let d1 = D1Client::new(&client, "db id/x");
        assert_eq!(d1.database_id(), "db id/x");
        assert_eq!(
            &*d1.query_path,
            "/accounts/acc%2F1/d1/database/db%20id%2Fx/query"
        );
        assert_eq!(
            &*d1.raw_path,
            "/accounts/acc%2F1/d1/database/db%20id%2Fx/raw"
        );
        assert_eq!(d1.service().name(), SERVICE);
        let debug = format!("{d1:?}");
        assert!(
            debug.contains("db id/x") && !debug.contains("secret-token"),
            "{debug}"
        );
    }

    #[tokio::test]
    async fn query_sends_a_single_query_and_decodes_rows() {
        let (client, seen) = fake(200, ok(json!([one_row()])));
        let d1 = D1Client::new(&client, "db1");
        let result = d1
            .query(
                Statement::new("SELECT * FROM t WHERE id = ? AND n > ?")
                    .bind("a")
                    .bind(0),
            )
            .await
            .unwrap();
        assert_eq!(result.rows[0]["id"], "a");
        assert_eq!(result.meta.changes, Some(0));
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        let s = &seen[0];
        assert_eq!(s.operation, Operation::new("d1", "query"));
        assert_eq!(s.method, Method::POST);
        assert_eq!(s.path, "/accounts/acc%2F1/d1/database/db1/query");
        assert_eq!(s.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            s.body,
            json!({"sql": "SELECT * FROM t WHERE id = ? AND n > ?", "params": ["a", "0"]})
        );
        assert!(!s.idempotent, "a statement is not retried unless marked");
    }

    #[tokio::test]
    async fn idempotency_follows_the_statements() {
        let (client, seen) = fake(200, ok(json!([one_row(), one_row()])));
        let d1 = D1Client::new(&client, "db1");
        let read = Statement::new("SELECT 1").idempotent(true);
        let insert = Statement::new("INSERT INTO t VALUES (1)");
        d1.query(Statement::new("SELECT 1").idempotent(true))
            .await
            .unwrap_err(); // two results for one statement
        d1.batch(vec![read.clone(), read.clone()]).await.unwrap();
        d1.batch(vec![read.clone(), insert.clone()]).await.unwrap();
        let seen = seen.lock().unwrap().clone();
        let flags: Vec<bool> = seen.iter().map(|s| s.idempotent).collect();
        assert_eq!(flags, [true, true, false]);
        assert_eq!(seen[1].operation, Operation::new("d1", "batch"));
        assert_eq!(
            seen[2].body,
            json!({"batch": [{"sql": "SELECT 1"}, {"sql": "INSERT INTO t VALUES (1)"}]})
        );
    }

    #[tokio::test]
    async fn raw_and_raw_batch_use_the_raw_endpoint() {
        let raw = json!({"results": {"columns": ["id"], "rows": [["a"], ["b"]]}, "success": true, "meta": {}});
        let (client, seen) = fake(200, ok(json!([raw])));
        let d1 = D1Client::new(&client, "db1");
        let r = d1.raw("SELECT id FROM t").await.unwrap();
        assert_eq!(r.columns, ["id"]);
        assert_eq!(r.rows.len(), 2);
        let rs = d1
            .raw_batch(vec![Statement::new("SELECT id FROM t")])
            .await
            .unwrap();
        assert_eq!(rs.len(), 1);
        let seen = seen.lock().unwrap().clone();
        assert!(
            seen.iter().all(|s| s.path.ends_with("/db1/raw")),
            "{seen:?}"
        );
        assert_eq!(seen[0].operation.name, "raw");
        assert_eq!(seen[1].operation.name, "raw_batch");
        assert_eq!(
            seen[1].body,
            json!({"batch": [{"sql": "SELECT id FROM t"}]})
        );
    }

    #[tokio::test]
    async fn sql_errors_are_a_distinct_variant() {
        let body = json!({"success": false, "errors": [{"code": 7500, "message": "no such table: x: SQLITE_ERROR"}], "messages": [], "result": null});
        let (client, _) = fake(400, body);
        let d1 = D1Client::new(&client, "db1");
        let err = d1.query("SELECT * FROM x").await.unwrap_err();
        match &err {
            D1Error::Sql { message, code } => {
                assert_eq!(message, "no such table: x: SQLITE_ERROR");
                assert_eq!(*code, 7500);
            }
            other => panic!("{other:?}"),
        }
        let err = d1
            .batch(vec!["SELECT 1".into(), "SELECT * FROM x".into()])
            .await
            .unwrap_err();
        assert!(err.is_sql(), "{err:?}");
    }

    #[tokio::test]
    async fn other_api_errors_stay_cloudflare_errors() {
        let body = json!({"success": false, "errors": [{"code": 7404, "message": "database not found"}], "messages": [], "result": null});
        let (client, _) = fake(404, body);
        let d1 = D1Client::new(&client, "db1");
        let err = d1.query("SELECT 1").await.unwrap_err();
        let D1Error::Cloudflare(inner) = &err else {
            panic!("{err:?}");
        };
        assert_eq!(inner.status(), Some(http::StatusCode::NOT_FOUND));
        assert!(!err.to_string().contains("secret-token"));
    }

    #[tokio::test]
    async fn validation_happens_before_sending() {
        let (client, seen) = fake(200, ok(json!([one_row()])));
        let d1 = D1Client::new(&client, "db1");
        let too_many = Statement::new("SELECT 1").bind_all(std::iter::repeat_n(1, 101));
        let err = d1.query(too_many.clone()).await.unwrap_err();
        assert!(matches!(err, D1Error::TooManyParams { .. }), "{err:?}");
        let err = d1.batch(vec![]).await.unwrap_err();
        assert!(matches!(err, D1Error::EmptyBatch), "{err:?}");
        let err = d1
            .raw_batch(vec![Statement::new("SELECT 1"), too_many])
            .await
            .unwrap_err();
        assert!(
            matches!(err, D1Error::TooManyParams { statement: 1, .. }),
            "{err:?}"
        );
        let err = d1.raw("").await.unwrap_err();
        assert!(matches!(err, D1Error::EmptySql { .. }), "{err:?}");
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn result_count_and_success_flags_are_checked() {
        let (client, _) = fake(200, ok(json!([one_row()])));
        let d1 = D1Client::new(&client, "db1");
        let err = d1
            .batch(vec!["SELECT 1".into(), "SELECT 2".into()])
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                D1Error::ResultCount {
                    expected: 2,
                    actual: 1
                }
            ),
            "{err:?}"
        );

        let (client, _) = fake(200, ok(json!([])));
        let err = D1Client::new(&client, "db1")
            .query("SELECT 1")
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                D1Error::ResultCount {
                    expected: 1,
                    actual: 0
                }
            ),
            "{err:?}"
        );

        let failed = json!({"results": [], "success": false});
        let (client, _) = fake(200, ok(json!([one_row(), failed])));
        let err = D1Client::new(&client, "db1")
            .batch(vec!["SELECT 1".into(), "SELECT 2".into()])
            .await
            .unwrap_err();
        assert!(
            matches!(err, D1Error::StatementFailed { statement: 1 }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn undecodable_results_are_decode_errors() {
        let (client, _) = fake(200, ok(json!({"not": "a list"})));
        let err = D1Client::new(&client, "db1")
            .query("SELECT 1")
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                D1Error::Cloudflare(cloudflare_http::CloudflareError::Decode { .. })
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn query_as_deserializes_rows() {
        #[derive(serde::Deserialize)]
        struct R {
            id: String,
            n: i64,
        }
        let (client, _) = fake(200, ok(json!([one_row()])));
        let rows: Vec<R> = D1Client::new(&client, "db1")
            .query_as("SELECT id, n FROM t")
            .await
            .unwrap();
        assert_eq!((rows[0].id.as_str(), rows[0].n), ("a", 1));
    }

    #[tokio::test]
    async fn tower_services_call_the_same_code() {
        let (client, seen) = fake(200, ok(json!([one_row()])));
        let mut d1 = D1Client::new(&client, "db1");
        let r: QueryResult = ServiceExt::<QueryRequest>::ready(&mut d1)
            .await
            .unwrap()
            .call(QueryRequest::new("SELECT 1"))
            .await
            .unwrap();
        assert_eq!(r.rows.len(), 1);
        let rs = d1
            .clone()
            .oneshot(BatchRequest::new([Statement::new("SELECT 1")]))
            .await
            .unwrap();
        assert_eq!(rs.len(), 1);
        let err = d1
            .clone()
            .oneshot(RawRequest::from(Statement::new("SELECT 1")))
            .await
            .unwrap_err(); // the fake's rows are objects, not a raw result
        assert!(matches!(err, D1Error::Cloudflare(_)), "{err:?}");
        let _ = d1
            .clone()
            .oneshot(RawBatchRequest::from(vec![Statement::new("SELECT 1")]))
            .await;
        let ops: Vec<&str> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.operation.name)
            .collect();
        assert_eq!(ops, ["query", "batch", "raw", "raw_batch"]);
    }

    #[tokio::test]
    async fn the_trait_is_object_safe_and_mockable() {
        let (client, _) = fake(200, ok(json!([one_row()])));
        let real: Arc<dyn D1Api> = Arc::new(D1Client::new(&client, "db1"));
        assert_eq!(
            real.query(Statement::new("SELECT 1"))
                .await
                .unwrap()
                .rows
                .len(),
            1
        );

        let mut mock = MockD1Api::new();
        mock.expect_batch()
            .withf(|statements| {
                statements.len() == 2 && statements.iter().all(Statement::is_idempotent)
            })
            .times(1)
            .returning(|statements| Ok(vec![QueryResult::default(); statements.len()]));
        let api: Arc<dyn D1Api> = Arc::new(mock);
        let read = Statement::new("SELECT 1").idempotent(true);
        let results = api.batch(vec![read.clone(), read]).await.unwrap();
        assert_eq!(results.len(), 2);
    }
}
