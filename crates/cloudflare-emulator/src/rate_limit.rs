//! Cloudflare's global API rate limit, per account, as a fixed window.
//!
//! Cloudflare: "The global rate limit for the Cloudflare API is 1,200 requests per five minute
//! period per user, and applies cumulatively regardless of whether the request is made via the
//! dashboard, API key, or API token. If you exceed this limit, all API calls for the next five
//! minutes will be blocked, receiving a HTTP 429 response"
//! (<https://developers.cloudflare.com/fundamentals/api/reference/limits/>). The emulator
//! counts [`EmulatorConfig::rate_limit`](crate::EmulatorConfig::rate_limit) requests per
//! [`EmulatorConfig::rate_window`](crate::EmulatorConfig::rate_window) per budget, the window
//! starting at the budget's first request. Every token the emulator accepts works for every
//! account it serves, so it cannot tell a token's user; it counts by the account instead: a
//! request whose path names a served account (`/accounts/{id}/…`) spends that account's
//! budget, whichever token sent it (two tokens of one account share one budget, like a user's
//! tokens and dashboard do), and a request with no served account in its path (the
//! token check `/user/tokens/verify`, a path naming an account the emulator does not serve)
//! spends its token's own budget ([`budget_key`]). Past the limit every request of the window is
//! answered 429 with code 971 `Please wait and consider throttling your request speed` (the
//! live API's code; the spec's `response_info` declares `code` ≥ 1000, so Prism flags it) and
//! `retry-after`: the whole seconds, rounded up, until the window ends.
//!
//! Every authenticated answer — a success, a service's error, a 404 of an unknown route, the
//! account check's 403 and the 429 itself — carries the documented headers
//! `ratelimit: "default";r=<remaining>;t=<seconds to reset>` and
//! `ratelimit-policy: "default";q=<limit>;w=<window seconds>`
//! (<https://developers.cloudflare.com/fundamentals/api/reference/limits/>: "The following
//! headers are returned when calling REST APIs"). Answers refused by authentication (no
//! token, a malformed or unknown one) name no user, so they spend no budget and carry no
//! headers. A limit of 0 turns rate limiting off. Time is `tokio::time`, so paused-time tests
//! work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::auth::{ApiToken, path_account};
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

/// Fixed windows, one per budget ([`budget_key`]).
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: u32,
    window: Duration,
    /// The accounts served: only these get a budget of their own.
    accounts: Vec<String>,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

/// Whose budget a request to `path` sent with `token` spends: the account in the path when
/// `accounts` (the accounts served) has it, else the token.
///
/// Why not always the path's account: an account the emulator does not serve is answered
/// 403 by the account check, and letting made-up ids open fresh budgets would let a client
/// dodge the limit; the token is the only user it names then.
pub(crate) fn budget_key(path: &str, token: &str, accounts: &[String]) -> String {
    match path_account(path) {
        Some(account) if accounts.iter().any(|a| a == account) => format!("account:{account}"),
        _ => format!("token:{token}"),
    }
}

fn ceil_secs(d: Duration) -> u64 {
    let secs = d.as_secs();
    if d.subsec_nanos() > 0 { secs + 1 } else { secs }
}

impl RateLimiter {
    /// `limit` requests per `window` per budget (0 = unlimited); `accounts` are the accounts
    /// served (see [`budget_key`]).
    pub(crate) fn new(limit: u32, window: Duration, accounts: Vec<String>) -> Self {
        Self {
            limit,
            window,
            accounts,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request against budget `key` ([`budget_key`]) at `now`.
    pub(crate) fn check(&self, key: &str, now: Instant) -> Verdict {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
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

/// The rate limiting middleware: after authentication (it reads the [`ApiToken`]), before the
/// account check (so its 403 carries the headers too).
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
    let key = budget_key(request.uri().path(), &token, &limiter.accounts);
    let (mut response, ratelimit) = match limiter.check(&key, Instant::now()) {
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
        let limiter = RateLimiter::new(2, Duration::from_secs(300), Vec::new());
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
        // Another budget has its own window.
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

    #[test]
    fn a_served_account_in_the_path_is_the_budget_else_the_token() {
        let served = vec!["acc1".to_owned(), "acc2".to_owned()];
        let key = |path: &str, token: &str| budget_key(path, token, &served);
        // Two tokens on one account share its budget; another account has its own.
        assert_eq!(
            key("/client/v4/accounts/acc1/d1/database", "t1"),
            key("/client/v4/accounts/acc1/vectorize/v2/indexes", "t2")
        );
        assert_ne!(
            key("/client/v4/accounts/acc1/d1/database", "t1"),
            key("/client/v4/accounts/acc2/d1/database", "t1")
        );
        // No account, or one not served: the token's own budget.
        assert_eq!(key("/client/v4/user/tokens/verify", "t1"), "token:t1");
        assert_eq!(
            key("/client/v4/accounts/other/d1/database", "t1"),
            "token:t1"
        );
        assert_ne!(
            key("/client/v4/user/tokens/verify", "t1"),
            key("/client/v4/user/tokens/verify", "t2")
        );
    }
}
