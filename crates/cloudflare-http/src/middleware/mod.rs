//! Tower layers of the Cloudflare client, one job each.

pub mod accounting;
pub mod auth;
pub mod base_uri;
pub mod breaker;
pub mod rate_limit;
pub mod retry;
pub mod timeout;
pub mod trace;

pub use accounting::{Accounted, Accounting, AccountingLayer, OperationStats};
pub use auth::{Auth, AuthLayer, InvalidToken};
pub use base_uri::{BaseUri, BaseUriLayer, InvalidBaseUrl};
pub use breaker::{
    Breaker, BreakerConfig, BreakerHandle, BreakerLayer, BreakerState, InvalidBreaker,
};
pub use rate_limit::{InvalidRateLimit, RateLimit, RateLimitConfig, RateLimitLayer, TokenBucket};
pub use retry::RetryPolicy;
pub use timeout::{Timeout, TimeoutLayer};
pub use trace::{CloudflareTraceLayer, MakeCloudflareSpan, TRACE_TARGET, trace_layer};
