//! Transport core for the Cloudflare v4 API: the secret [`ApiToken`], the response
//! envelope decoder [`decode_at`] with its typed [`CloudflareError`], retry timing
//! ([`BackoffConfig`], [`RetryConfig`]), [`is_idempotent`], the circuit breaker
//! ([`BreakerConfig`]) and the token bucket ([`RateLimitConfig`]), and the HTTP [`Client`]
//! built by [`ClientBuilder`] from a [`ClientConfig`] (hyper + rustls, with tower layers
//! for timeout, authentication, base URL, retry, breaker and rate limit).
//!
//! Everything but [`client`] and [`middleware`] is I/O-free.
//!
//! ```
//! use std::time::SystemTime;
//!
//! use cloudflare_http::{decode_at, Envelope};
//! use http::{HeaderMap, StatusCode};
//!
//! let now = SystemTime::now();
//! let body = br#"{"success":true,"errors":[],"messages":[],"result":{"id":"abc"}}"#;
//! let env: Envelope<serde_json::Value> = decode_at(StatusCode::OK, &HeaderMap::new(), body, now)?;
//! assert_eq!(env.result["id"], "abc");
//!
//! let body = br#"{"success":false,"errors":[{"code":10000,"message":"Authentication error"}]}"#;
//! let err = decode_at::<serde_json::Value>(StatusCode::FORBIDDEN, &HeaderMap::new(), body, now)
//!     .unwrap_err();
//! assert!(err.to_string().contains("check CLOUDFLARE_API_TOKEN"));
//! assert!(!err.is_retryable());
//! # Ok::<(), cloudflare_http::CloudflareError>(())
//! ```

// `pub` is for other crates: an item no other crate can reach is `pub(crate)`.
#![warn(unreachable_pub)]

use std::time::Duration;

pub mod backoff;
pub mod client;
mod envelope;
pub mod error;
mod idempotency;
pub mod middleware;
mod operation;
mod ratelimit_header;
mod request;
mod secret;

pub use backoff::{Backoff, BackoffConfig, InvalidBackoff, RetryConfig};
pub use client::{
    Client, ClientBuilder, ClientConfig, ClientError, HttpRequest, HttpResponse, HttpService,
    RootStore, ServiceClient,
};
pub use envelope::{Envelope, ResultInfo, decode_at};
pub use error::{ApiMessage, CloudflareError, body_excerpt, retry_after_from_headers};
pub use idempotency::is_idempotent;
pub use middleware::accounting::{Accounting, OperationStats};
pub use middleware::auth::InvalidToken;
pub use middleware::base_uri::InvalidBaseUrl;
pub use middleware::breaker::{BreakerConfig, BreakerHandle, BreakerState, InvalidBreaker};
pub use middleware::rate_limit::{
    AccountBudget, BudgetSnapshot, InvalidRateLimit, PACING_RESERVE_PERCENT, RateLimitConfig,
    TokenBucket,
};
pub use operation::Operation;
pub use request::{
    body_request, check_status, empty_request, encode_segment, idempotent, json_request,
    not_idempotent,
};
pub use secret::ApiToken;

/// Default base URL of the Cloudflare v4 API.
///
/// See <https://developers.cloudflare.com/fundamentals/api/how-to/make-api-calls/>.
pub const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4";

/// Requests allowed per [`RATE_LIMIT_WINDOW`] per user: across all the user's API tokens
/// and the dashboard, so other consumers of the account spend it too.
///
/// See <https://developers.cloudflare.com/fundamentals/api/reference/limits/>.
pub const RATE_LIMIT_REQUESTS: u32 = 1200;

/// The window of [`RATE_LIMIT_REQUESTS`]: five minutes.
///
/// See <https://developers.cloudflare.com/fundamentals/api/reference/limits/>.
pub const RATE_LIMIT_WINDOW: Duration = Duration::from_secs(5 * 60);
