//! Cloudflare's global API rate limit, per token, as a fixed window.
//!
//! Cloudflare: "The global rate limit for the Cloudflare API is 1200 requests per five minutes
//! per user … If you exceed this limit, all API calls for the next five minutes will be
//! blocked, receiving a HTTP 429 response"
//! (<https://developers.cloudflare.com/fundamentals/api/reference/limits/>). The emulator
//! counts [`EmulatorConfig::rate_limit`](crate::EmulatorConfig::rate_limit) requests per
//! [`EmulatorConfig::rate_window`](crate::EmulatorConfig::rate_window) per token, the window
//! starting at the token's first request; past the limit every request of the window is
//! answered 429 with code 971 `Please wait and consider throttling your request speed` (the
//! live API's code; the spec's `response_info` declares `code` ≥ 1000, so Prism flags it) and
//! `retry-after`: the whole seconds, rounded up, until the window ends.
//!
//! Every answer carries the documented headers `ratelimit: "default";r=<remaining>;t=<seconds
//! to reset>` and `ratelimit-policy: "default";q=<limit>;w=<window seconds>`.
//! A limit of 0 turns rate limiting off. Time is `tokio::time`, so paused-time tests work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::auth::ApiToken;
use crate::envelope::ApiError;

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Allowed; `remaining` requests left, window resets in `reset_secs`.
    Allowed {
        /// Requests left in the window.
        remaining: u32,
        /// Seconds (rounded up) until the window ends.
        reset_secs: u64,
    },
    /// Over the limit; retry after `retry_after` seconds.
    Limited {
        /// Seconds (rounded up, at least 1) until the window ends.
        retry_after: u64,
    },
}

/// Per-token fixed windows.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: u32,
    window: Duration,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

fn ceil_secs(d: Duration) -> u64 {
    let secs = d.as_secs();
    if d.subsec_nanos() > 0 { secs + 1 } else { secs }
}

impl RateLimiter {
    /// `limit` requests per `window` per token (0 = unlimited).
    pub(crate) fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request of `token` at `now`.
    pub(crate) fn check(&self, token: &str, now: Instant) -> Verdict {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = windows.entry(token.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        let left = (entry.0 + self.window).saturating_duration_since(now);
        if entry.1 >= self.limit {
            return Verdict::Limited {
                retry_after: ceil_secs(left).max(1),
            };
        }
        entry.1 += 1;
        Verdict::Allowed {
            remaining: self.limit - entry.1,
            reset_secs: ceil_secs(left),
        }
    }
}

/// The rate limiting middleware (after authentication: it reads the [`ApiToken`]).
pub(crate) async fn middleware(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    if limiter.limit == 0 {
        return next.run(request).await;
    }
    let Some(ApiToken(token)) = request.extensions().get::<ApiToken>().cloned() else {
        return next.run(request).await;
    };
    let policy = format!(
        "\"default\";q={};w={}",
        limiter.limit,
        ceil_secs(limiter.window)
    );
    let (mut response, ratelimit) = match limiter.check(&token, Instant::now()) {
        Verdict::Limited { retry_after } => (
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                971,
                "Please wait and consider throttling your request speed",
            )
            .with_header("retry-after", retry_after.to_string())
            .into_response(),
            format!("\"default\";r=0;t={retry_after}"),
        ),
        Verdict::Allowed {
            remaining,
            reset_secs,
        } => (
            next.run(request).await,
            format!("\"default\";r={remaining};t={reset_secs}"),
        ),
    };
    let headers = response.headers_mut();
    if let Ok(v) = ratelimit.parse() {
        headers.insert("ratelimit", v);
    }
    if let Ok(v) = policy.parse() {
        headers.insert("ratelimit-policy", v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_window_blocks_for_the_rest_of_the_window() {
        let limiter = RateLimiter::new(2, Duration::from_secs(300));
        let t0 = Instant::now();
        assert_eq!(
            limiter.check("a", t0),
            Verdict::Allowed {
                remaining: 1,
                reset_secs: 300
            }
        );
        assert_eq!(
            limiter.check("a", t0 + Duration::from_millis(500)),
            Verdict::Allowed {
                remaining: 0,
                reset_secs: 300
            }
        );
        assert_eq!(
            limiter.check("a", t0 + Duration::from_secs(100)),
            Verdict::Limited { retry_after: 200 }
        );
        // Another token has its own window.
        assert!(matches!(
            limiter.check("b", t0 + Duration::from_secs(100)),
            Verdict::Allowed { .. }
        ));
        assert_eq!(
            limiter.check("a", t0 + Duration::from_millis(299_500)),
            Verdict::Limited { retry_after: 1 }
        );
        assert_eq!(
            limiter.check("a", t0 + Duration::from_secs(300)),
            Verdict::Allowed {
                remaining: 1,
                reset_secs: 300
            }
        );
    }
}
