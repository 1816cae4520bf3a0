//! Transport core for the Cloudflare v4 API: the secret [`ApiToken`], the response
//! envelope [`decode`]r with its typed [`CloudflareError`], retry timing
//! ([`BackoffConfig`], [`RetryConfig`]), the [`Idempotent`] marker, the
//! [`RetryPolicy`] tower retry policy, the [`BreakerLayer`] circuit breaker and the
//! [`RateLimitLayer`] token bucket, and the HTTP [`Client`] built by [`ClientBuilder`]
//! from a [`ClientConfig`] (hyper + rustls, with [`TimeoutLayer`], [`AuthLayer`] and
//! [`BaseUriLayer`]).
//!
//! Everything but [`client`] and [`middleware`] is I/O-free.
//!
//! ```
//! use cloudflare_http::{decode, Envelope};
//! use http::{HeaderMap, StatusCode};
//!
//! let body = br#"{"success":true,"errors":[],"messages":[],"result":{"id":"abc"}}"#;
//! let env: Envelope<serde_json::Value> = decode(StatusCode::OK, &HeaderMap::new(), body)?;
//! assert_eq!(env.result["id"], "abc");
//!
//! let body = br#"{"success":false,"errors":[{"code":10000,"message":"Authentication error"}]}"#;
//! let err = decode::<serde_json::Value>(StatusCode::FORBIDDEN, &HeaderMap::new(), body).unwrap_err();
//! assert!(err.to_string().contains("check CLOUDFLARE_API_TOKEN"));
//! assert!(!err.is_retryable());
//! # Ok::<(), cloudflare_http::CloudflareError>(())
//! ```

#![warn(missing_docs)]

use std::time::Duration;

pub mod backoff;
pub mod client;
pub mod envelope;
pub mod error;
pub mod idempotency;
pub mod middleware;
pub mod operation;
pub mod request;
pub mod secret;

pub use backoff::{Backoff, BackoffConfig, InvalidBackoff, RetryConfig};
pub use client::{
    Client, ClientBuilder, ClientConfig, ClientError, HttpRequest, HttpResponse, HttpService,
    RootStore, ServiceClient,
};
pub use envelope::{Envelope, ResultInfo, decode, decode_at};
pub use error::{
    ApiMessage, CloudflareError, body_excerpt, parse_retry_after, retry_after_from_headers,
};
pub use idempotency::{Idempotent, is_idempotent};
pub use middleware::accounting::{Accounting, AccountingLayer, OperationStats};
pub use middleware::auth::{AuthLayer, InvalidToken};
pub use middleware::base_uri::{BaseUriLayer, InvalidBaseUrl};
pub use middleware::breaker::{
    Breaker, BreakerConfig, BreakerHandle, BreakerLayer, BreakerState, InvalidBreaker,
};
pub use middleware::rate_limit::{
    InvalidRateLimit, RateLimit, RateLimitConfig, RateLimitLayer, TokenBucket,
};
pub use middleware::retry::RetryPolicy;
pub use middleware::timeout::TimeoutLayer;
pub use middleware::trace::{TRACE_TARGET, trace_layer};
pub use operation::{Attempt, Operation};
pub use request::{
    body_request, check_status, empty_request, encode_segment, idempotent, json_request,
    not_idempotent,
};
pub use secret::ApiToken;

/// Default base URL of the Cloudflare v4 API.
///
/// See <https://developers.cloudflare.com/fundamentals/api/how-to/make-api-calls/>.
pub const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4";

/// Requests allowed per [`RATE_LIMIT_WINDOW`] per API token.
///
/// See <https://developers.cloudflare.com/fundamentals/api/reference/limits/>.
pub const RATE_LIMIT_REQUESTS: u32 = 1200;

/// The window of [`RATE_LIMIT_REQUESTS`]: five minutes.
///
/// See <https://developers.cloudflare.com/fundamentals/api/reference/limits/>.
pub const RATE_LIMIT_WINDOW: Duration = Duration::from_secs(5 * 60);
