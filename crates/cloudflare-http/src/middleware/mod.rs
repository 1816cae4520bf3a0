//! Tower layers of the Cloudflare client, one job each.

pub mod breaker;
pub mod rate_limit;
pub mod retry;

pub use breaker::{
    Breaker, BreakerConfig, BreakerHandle, BreakerLayer, BreakerState, InvalidBreaker,
};
pub use rate_limit::{InvalidRateLimit, RateLimit, RateLimitConfig, RateLimitLayer, TokenBucket};
pub use retry::RetryPolicy;
