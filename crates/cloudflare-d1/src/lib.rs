//! Cloudflare D1 client: query, batch and raw SQL over the REST API as a tower service.
//!
//! [`D1Client`] sends SQL to one D1 database through a [`cloudflare_http::Client`]
//! (whose stack already retries, rate-limits, times out and guards every call with a
//! circuit breaker). It offers four operations, each as an async method, as a
//! [`tower::Service`] over a typed request, and through the object-safe [`D1Api`] trait
//! (mockable with the `mock` feature):
//!
//! | operation | request | endpoint | result |
//! |---|---|---|---|
//! | [`D1Client::query`] | [`QueryRequest`] | `POST …/d1/database/{id}/query` `{"sql","params"}` | [`QueryResult`] (rows as objects) |
//! | [`D1Client::batch`] | [`BatchRequest`] | `POST …/query` `{"batch":[{"sql","params"}…]}` | one [`QueryResult`] per statement |
//! | [`D1Client::raw`] | [`RawRequest`] | `POST …/d1/database/{id}/raw` `{"sql","params"}` | [`RawResult`] (columns + rows as arrays) |
//! | [`D1Client::raw_batch`] | [`RawBatchRequest`] | `POST …/raw` `{"batch":[…]}` | one [`RawResult`] per statement |
//!
//! A batch runs in one HTTP request, and D1 runs it as one transaction.
//!
//! # Parameters
//!
//! Cloudflare's API spec types every bound parameter as a JSON **string**, so every
//! [`Param`] travels as text (see [`Param`] for each variant): integers and reals as their
//! decimal text (SQLite's column affinity turns numeric text back into a number in an
//! `INTEGER`, `REAL` or `NUMERIC` column; write `CAST(? AS INTEGER)` where there is no
//! affinity, e.g. in `LIMIT ?` or a comparison with an expression), blobs as lowercase hex
//! (write `unhex(?)`). There is no NULL parameter, because a JSON `null` is outside the
//! spec: write `NULL` in the SQL, or bind an empty string and write `NULLIF(?, '')`.
//!
//! # Retries
//!
//! Every call is a POST, which the transport does not retry unless told it is safe. A
//! [`Statement`] is retried only when marked with [`Statement::idempotent`] (a `SELECT`,
//! an `INSERT OR REPLACE`, an upsert keyed by the caller…), and a batch only when all of
//! its statements are. A plain `INSERT` must stay unmarked: a retry after a lost response
//! would insert twice.
//!
//! # Errors
//!
//! [`D1Error`]: a limit broken before sending (the message names the limit, the maximum
//! and the actual value), an SQL error reported by SQLite ([`D1Error::Sql`], Cloudflare's
//! code 7500), or any other API or transport failure
//! ([`D1Error::Cloudflare`]).
//!
//! # Example
//!
//! ```no_run
//! use cloudflare_d1::{D1Client, Statement};
//! use cloudflare_http::{ApiToken, ClientBuilder, ClientConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ClientConfig::new("023e105f4ecef8ad9ca31a8372d0c353", ApiToken::new("token"));
//! let client = ClientBuilder::new(config).build()?;
//! let d1 = D1Client::new(&client, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx");
//!
//! let upsert = Statement::new(
//!     "INSERT INTO notes (id, body, score) VALUES (?, ?, ?) \
//!      ON CONFLICT(id) DO UPDATE SET body = excluded.body, score = excluded.score",
//! )
//! .bind("n1")
//! .bind("hello")
//! .bind(0.5)
//! .idempotent(true); // an upsert by key may be retried
//! let select = Statement::new("SELECT id, body FROM notes WHERE score >= ?")
//!     .bind(0.25)
//!     .idempotent(true);
//! let results = d1.batch(vec![upsert, select]).await?;
//! println!("{} rows written", results[0].meta.rows_written.unwrap_or(0));
//!
//! #[derive(serde::Deserialize)]
//! struct Note { id: String, body: String }
//! let notes: Vec<Note> = results[1].deserialize_rows()?;
//! # Ok(()) }
//! ```
//!
//! # Limits
//!
//! Checked before sending ([D1 limits](https://developers.cloudflare.com/d1/platform/limits/)):
//!
//! | limit | constant | value |
//! |---|---|---|
//! | [bound parameters per query](https://developers.cloudflare.com/d1/platform/limits/) | [`MAX_BOUND_PARAMS`] | 100 |
//! | [SQL statement length](https://developers.cloudflare.com/d1/platform/limits/) | [`MAX_STATEMENT_BYTES`] | 100,000 bytes |
//! | [string, BLOB or row size](https://developers.cloudflare.com/d1/platform/limits/) (per bound value) | [`MAX_VALUE_BYTES`] | 2,000,000 bytes |
//!
//! Not checked here: the 30 s query duration (the transport's timeout covers it), the
//! 2 MB row size of the stored row (only the database knows it) and the 50 MB result size.
//! Cloudflare documents no limit on the number of statements in a REST batch.

// `pub` is for other crates: an item no other crate can reach is `pub(crate)`.
#![warn(unreachable_pub)]

mod client;
mod error;
mod model;
mod number;
mod param;
mod statement;

#[cfg(any(test, feature = "mock"))]
pub use client::MockD1Api;
pub use client::{BatchRequest, D1Api, D1Client, QueryRequest, RawBatchRequest, RawRequest};
pub use error::D1Error;
pub use model::{QueryMeta, QueryResult, QueryTimings, RawResult, Row};
pub use param::Param;
pub use statement::Statement;

/// Most parameters one statement may bind.
///
/// "Maximum bound parameters per query: 100" —
/// <https://developers.cloudflare.com/d1/platform/limits/>.
pub const MAX_BOUND_PARAMS: usize = 100;

/// Longest SQL text of one statement, in bytes (UTF-8).
///
/// "Maximum SQL statement length: 100,000 bytes (100 KB)" —
/// <https://developers.cloudflare.com/d1/platform/limits/>.
pub const MAX_STATEMENT_BYTES: usize = 100_000;

/// Largest value one parameter may carry, in bytes (the text's UTF-8 bytes, or the
/// blob's bytes before hex encoding).
///
/// "Maximum string, BLOB or table row size: 2,000,000 bytes (2 MB)" —
/// <https://developers.cloudflare.com/d1/platform/limits/>.
pub const MAX_VALUE_BYTES: usize = 2_000_000;
