//! [`RateLimitLayer`]: pacing by a token bucket shared by every service that uses one API
//! token, and by the account's budget as Cloudflare reports it.
//!
//! Cloudflare allows [`crate::RATE_LIMIT_REQUESTS`] requests per [`crate::RATE_LIMIT_WINDOW`]
//! per user, across all the user's tokens and the dashboard
//! (<https://developers.cloudflare.com/fundamentals/api/reference/limits/>). Two mechanisms
//! keep a client under it, in one layer:
//!
//! * a [`TokenBucket`] hands out one token every `per / requests`, holding up to `burst` of
//!   them; a [`RateLimit`] service waits in `poll_ready` (a `tokio::time` sleep) until its
//!   token is due instead of failing. Waiting calls are served in the order they asked. It
//!   sees only this client's requests;
//! * an [`AccountBudget`] reads the `ratelimit` / `ratelimit-policy` headers of every answer
//!   (requests left, seconds to the reset, quota), which count every consumer of the
//!   account, and when little is left spreads the remaining requests over the time to the
//!   reset, or holds them until the reset when nothing is left. A wait longer than the
//!   call's retry budget (`CallDeadline`) fails at once with
//!   [`CloudflareError::RateLimited`], saying when to try again.
//!
//! Clones of a [`TokenBucket`] or an [`AccountBudget`] share one budget: a
//! [`crate::Client`] builds one of each and gives them to every service (D1, Vectorize...).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::error::{CloudflareError, retry_after_from_headers};
use crate::ratelimit_header::Observation;

/// Default number of requests that may go out at once before the steady rate applies.
///
/// In the worst case one [`crate::RATE_LIMIT_WINDOW`] then sees `burst` requests above the
/// steady rate; keep it small next to [`crate::RATE_LIMIT_REQUESTS`]. See
/// <https://developers.cloudflare.com/fundamentals/api/reference/limits/>.
pub const DEFAULT_BURST: u32 = 20;

/// Why a [`RateLimitConfig`] was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRateLimit {
    /// `requests` is zero.
    #[error("invalid rate limit: requests must be at least 1")]
    ZeroRequests,
    /// `burst` is zero.
    #[error("invalid rate limit: burst must be at least 1")]
    ZeroBurst,
    /// `per / requests` is below one nanosecond (including `per == 0`).
    #[error("invalid rate limit: {requests} requests per {per:?} is too fast; raise per")]
    TooFast {
        /// The rejected `requests`.
        requests: u32,
        /// The rejected `per`.
        per: Duration,
    },
}

/// How fast one API token may send requests: `requests` per `per`, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    requests: u32,
    per: Duration,
    burst: u32,
}

impl Default for RateLimitConfig {
    /// Cloudflare's limit: [`crate::RATE_LIMIT_REQUESTS`] per [`crate::RATE_LIMIT_WINDOW`],
    /// with a burst of [`DEFAULT_BURST`].
    fn default() -> Self {
        Self {
            requests: crate::RATE_LIMIT_REQUESTS,
            per: crate::RATE_LIMIT_WINDOW,
            burst: DEFAULT_BURST,
        }
    }
}

impl RateLimitConfig {
    /// Validates and builds a config.
    ///
    /// # Errors
    ///
    /// [`InvalidRateLimit`] if `requests` or `burst` is zero, or `per / requests` is below
    /// one nanosecond.
    pub fn new(requests: u32, per: Duration, burst: u32) -> Result<Self, InvalidRateLimit> {
        if requests == 0 {
            return Err(InvalidRateLimit::ZeroRequests);
        }
        if burst == 0 {
            return Err(InvalidRateLimit::ZeroBurst);
        }
        if (per / requests).is_zero() {
            return Err(InvalidRateLimit::TooFast { requests, per });
        }
        Ok(Self {
            requests,
            per,
            burst,
        })
    }

    /// Requests allowed per [`Self::per`].
    #[must_use]
    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// The window of [`Self::requests`].
    #[must_use]
    pub fn per(&self) -> Duration {
        self.per
    }

    /// Requests that may go out at once after a quiet spell.
    #[must_use]
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The steady gap between two requests: `per / requests`.
    #[must_use]
    pub fn interval(&self) -> Duration {
        self.per / self.requests
    }
}

/// A token bucket; clones share it (one per API token).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    config: RateLimitConfig,
    /// When the bucket will be full again if no more tokens are taken
    /// (the "theoretical arrival time" of the generic cell rate algorithm).
    full_at: Arc<Mutex<Option<Instant>>>,
}

impl TokenBucket {
    /// A full bucket.
    #[must_use]
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            config,
            full_at: Arc::new(Mutex::new(None)),
        }
    }

    /// The settings in force.
    #[must_use]
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Takes a token now, returning when it may be used (now, or later if the bucket is empty).
    #[must_use]
    pub fn reserve(&self) -> Instant {
        let now = Instant::now();
        let interval = self.config.interval();
        let tolerance = interval.saturating_mul(self.config.burst - 1);
        let mut full_at = self.full_at.lock().unwrap_or_else(PoisonError::into_inner);
        let tat = full_at.map_or(now, |t| t.max(now));
        let wait = (tat - now).saturating_sub(tolerance);
        *full_at = Some(tat + interval);
        now + wait
    }

    /// Tokens that could be taken right now without waiting.
    #[must_use]
    pub fn available(&self) -> u32 {
        let now = Instant::now();
        let interval = self.config.interval();
        let full_at = self.full_at.lock().unwrap_or_else(PoisonError::into_inner);
        let owed = full_at.map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
        // Tokens still refilling, rounded up.
        let refilling = owed.as_nanos().div_ceil(interval.as_nanos());
        let refilling = u32::try_from(refilling).unwrap_or(u32::MAX);
        self.config.burst.saturating_sub(refilling)
    }
}

/// Percentage of the account's quota kept in reserve: below it, requests are spread over
/// the time left in the window instead of going out at once.
///
/// With Cloudflare's 1,200 per 5 minutes pacing starts when 120 requests are left.
pub const PACING_RESERVE_PERCENT: u64 = 10;

/// The account's request budget as Cloudflare last reported it, shared by every clone of a
/// [`crate::Client`] (so every service of the account paces together).
///
/// Cloudflare counts [`crate::RATE_LIMIT_REQUESTS`] per [`crate::RATE_LIMIT_WINDOW`] per
/// user, across all the user's tokens and the dashboard, and after a 429 refuses every call
/// until the window ends (<https://developers.cloudflare.com/fundamentals/api/reference/limits/>).
/// A [`TokenBucket`] cannot see the other consumers; the `ratelimit` header of each answer
/// can. While more than the reserve ([`PACING_RESERVE_PERCENT`] of the quota) is left,
/// requests go out at once; below it, each waits its turn, spaced `t / (r + 1)` apart
/// (`r` requests left, `t` until the reset); with nothing left, requests wait for the reset.
#[derive(Debug, Clone, Default)]
pub struct AccountBudget {
    state: Arc<Mutex<Option<Window>>>,
}

/// The current window as last observed, with this client's own spending since.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// Requests left (the server's `r`, minus requests reserved since).
    remaining: u64,
    /// When the window resets.
    reset_at: Instant,
    /// Requests per window, if a policy header said.
    quota: Option<u64>,
    /// The earliest time the next paced request may go.
    next_slot: Instant,
}

/// What an [`AccountBudget`] knows, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetSnapshot {
    /// Requests left in the window (as reported, minus requests sent since).
    pub remaining: u64,
    /// Time until the window resets.
    pub reset_in: Duration,
    /// Requests per window, if Cloudflare sent a `ratelimit-policy`.
    pub quota: Option<u64>,
}

/// The latest instant at which a call may still start: its retry budget's end.
///
/// [`crate::ServiceClient::send`] stores it in each request; without one, the rate limiter
/// allows waits up to the retry budget from when the attempt reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallDeadline(pub(crate) Instant);

impl AccountBudget {
    /// A budget that knows nothing yet (no pacing until an answer reports one).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The budget as last reported, or `None` before any report or once its window is over.
    #[must_use]
    pub fn snapshot(&self) -> Option<BudgetSnapshot> {
        let now = Instant::now();
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.filter(|w| w.reset_at > now).map(|w| BudgetSnapshot {
            remaining: w.remaining,
            reset_in: w.reset_at - now,
            quota: w.quota,
        })
    }

    /// Records what an answer with `status` and `headers` says about the budget, at `now`.
    ///
    /// Answers without a `ratelimit` header (an emulator's injected fault) say nothing about
    /// the account and change nothing; a 429 whose header leaves nothing blocks the account
    /// until its `retry-after` if that is later than the header's reset.
    pub(crate) fn observe(
        &self,
        status: http::StatusCode,
        headers: &http::HeaderMap,
        now: Instant,
    ) {
        let Some(seen) = Observation::from_headers(headers) else {
            return;
        };
        let mut reset = seen.reset;
        let remaining = seen.remaining;
        // A 429 with budget left is another limit's (a service's own); with none left the
        // account is blocked until the later of both reset times.
        if status == http::StatusCode::TOO_MANY_REQUESTS
            && remaining == 0
            && let Some(wait) = retry_after_from_headers(headers, SystemTime::now())
        {
            reset = reset.max(wait);
        }
        let reset_at = now + reset;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let window = match *state {
            // Same window (t is whole seconds, so within 1 s): answers of requests sent
            // before ours may arrive later with a larger `r`; our own count is lower.
            Some(w)
                if w.reset_at > now && abs_diff(w.reset_at, reset_at) <= Duration::from_secs(1) =>
            {
                Window {
                    remaining: w.remaining.min(remaining),
                    reset_at,
                    quota: seen.quota.or(w.quota),
                    next_slot: w.next_slot,
                }
            }
            _ => Window {
                remaining,
                reset_at,
                quota: seen.quota,
                next_slot: now,
            },
        };
        *state = Some(window);
    }

    /// Takes the next request's turn at `now`: when it may go, or, if that is after
    /// `deadline`, the error saying when the budget refills (the turn is not taken then).
    pub(crate) fn reserve(
        &self,
        now: Instant,
        deadline: Instant,
    ) -> Result<Instant, CloudflareError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(w) = state.as_mut().filter(|w| w.reset_at > now) else {
            return Ok(now);
        };
        let quota = w.quota.unwrap_or(u64::from(crate::RATE_LIMIT_REQUESTS));
        let reserve = (quota.saturating_mul(PACING_RESERVE_PERCENT) / 100).max(1);
        let (due, next_slot) = if w.remaining == 0 {
            (w.reset_at, w.next_slot)
        } else if w.remaining <= reserve {
            let due = w.next_slot.max(now);
            // Spread what is left evenly over the rest of the window.
            let gap = (w.reset_at.saturating_duration_since(due))
                / u32::try_from(w.remaining + 1).unwrap_or(u32::MAX);
            (due, due + gap)
        } else {
            (now, w.next_slot)
        };
        if due > deadline {
            let retry_after = w.reset_at - now;
            return Err(CloudflareError::RateLimited {
                retry_after,
                until: SystemTime::now() + retry_after,
                errors: Vec::new(),
            });
        }
        w.remaining = w.remaining.saturating_sub(1);
        w.next_slot = next_slot;
        Ok(due)
    }
}

/// `now + wait`, or a time decades away when that overflows (a `Duration::MAX` budget).
pub(crate) fn deadline_after(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 24 * 3600))
}

fn abs_diff(a: Instant, b: Instant) -> Duration {
    if a > b { a - b } else { b - a }
}

/// A [`tower::Layer`] pacing services by the account's budget and, if given, by a
/// [`TokenBucket`]; share both between layers to share the budget.
#[derive(Debug, Clone)]
pub(crate) struct RateLimitLayer {
    bucket: Option<TokenBucket>,
    budget: AccountBudget,
    max_wait: Duration,
}

impl RateLimitLayer {
    /// A layer drawing from `bucket` (if any) and `budget`, letting a request without a
    /// [`CallDeadline`] wait at most `max_wait` for the budget.
    #[must_use]
    pub(crate) fn new(
        bucket: Option<TokenBucket>,
        budget: AccountBudget,
        max_wait: Duration,
    ) -> Self {
        Self {
            bucket,
            budget,
            max_wait,
        }
    }
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            bucket: self.bucket.clone(),
            budget: self.budget.clone(),
            max_wait: self.max_wait,
            wait: Wait::Idle,
        }
    }
}

/// A service that waits for a token of its bucket (in `poll_ready`) and for the account's
/// budget (in the call, which knows the request's deadline); build it with
/// [`RateLimitLayer`].
///
/// Call it the tower way (`ready().await` then `call`); a clone starts without a token.
#[derive(Debug)]
pub(crate) struct RateLimit<S> {
    inner: S,
    bucket: Option<TokenBucket>,
    budget: AccountBudget,
    max_wait: Duration,
    wait: Wait,
}

#[derive(Debug)]
enum Wait {
    /// No token reserved.
    Idle,
    /// A token is reserved and due when the sleep ends.
    Sleeping(Pin<Box<Sleep>>),
    /// A token is held for the next call.
    Holding,
}

impl<S: Clone> Clone for RateLimit<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            bucket: self.bucket.clone(),
            budget: self.budget.clone(),
            max_wait: self.max_wait,
            wait: Wait::Idle,
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, ResB> tower::Service<http::Request<B>> for RateLimit<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResB>, Error = CloudflareError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    ResB: Send + 'static,
{
    type Response = http::Response<ResB>;
    type Error = CloudflareError;
    type Future = BoxFuture<Result<http::Response<ResB>, CloudflareError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CloudflareError>> {
        loop {
            match &mut self.wait {
                Wait::Idle => {
                    let due = self
                        .bucket
                        .as_ref()
                        .map_or_else(Instant::now, TokenBucket::reserve);
                    self.wait = if due <= Instant::now() {
                        Wait::Holding
                    } else {
                        Wait::Sleeping(Box::pin(tokio::time::sleep_until(due)))
                    };
                }
                Wait::Sleeping(sleep) => {
                    std::task::ready!(sleep.as_mut().poll(cx));
                    self.wait = Wait::Holding;
                }
                Wait::Holding => return self.inner.poll_ready(cx),
            }
        }
    }

    /// # Panics
    ///
    /// If `poll_ready` has not returned `Ready(Ok(()))` since the last call.
    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        assert!(
            matches!(self.wait, Wait::Holding),
            "RateLimit::call without a token: poll_ready must return Ready first"
        );
        self.wait = Wait::Idle;
        let now = Instant::now();
        let deadline = request
            .extensions()
            .get::<CallDeadline>()
            .map_or_else(|| deadline_after(now, self.max_wait), |d| d.0);
        let budget = self.budget.clone();
        let due = match budget.reserve(now, deadline) {
            Ok(due) => due,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let observe = move |result: Result<http::Response<ResB>, CloudflareError>| {
            if let Ok(response) = &result {
                budget.observe(response.status(), response.headers(), Instant::now());
            }
            result
        };
        if due <= now {
            let call = self.inner.call(request);
            return Box::pin(async move { observe(call.await) });
        }
        // The ready service goes with the waiting call; this one keeps a fresh clone.
        let fresh = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, fresh);
        Box::pin(async move {
            tokio::time::sleep_until(due).await;
            let result = match ready.ready().await {
                Ok(svc) => svc.call(request).await,
                Err(e) => Err(e),
            };
            observe(result)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer, Service};

    type Req = http::Request<()>;
    type Res = http::Response<()>;

    fn req() -> Req {
        http::Request::new(())
    }

    /// A layer with `bucket` and a budget of its own, letting calls wait an hour.
    fn layer(bucket: TokenBucket) -> RateLimitLayer {
        RateLimitLayer::new(
            Some(bucket),
            AccountBudget::new(),
            Duration::from_secs(3600),
        )
    }

    /// A service recording how long after `start` each call reached it.
    fn recording(
        start: Instant,
        log: Arc<Mutex<Vec<Duration>>>,
    ) -> impl Service<Req, Response = Res, Error = CloudflareError, Future: Send> + Clone + Send + 'static
    {
        tower::service_fn(move |_: Req| {
            log.lock().unwrap().push(start.elapsed());
            async { Ok::<_, CloudflareError>(http::Response::new(())) }
        })
    }

    fn secs(list: &[u64]) -> Vec<Duration> {
        list.iter().copied().map(Duration::from_secs).collect()
    }

    /// 10 requests per 10 s (one per second), burst 3.
    fn config() -> RateLimitConfig {
        RateLimitConfig::new(10, Duration::from_secs(10), 3).unwrap()
    }

    #[test]
    fn config_is_validated() {
        let d = RateLimitConfig::default();
        assert_eq!(d.requests(), crate::RATE_LIMIT_REQUESTS);
        assert_eq!(d.per(), crate::RATE_LIMIT_WINDOW);
        assert_eq!(d.burst(), DEFAULT_BURST);
        assert_eq!(d.interval(), Duration::from_millis(250));
        let s = Duration::from_secs(1);
        assert_eq!(
            RateLimitConfig::new(0, s, 1),
            Err(InvalidRateLimit::ZeroRequests)
        );
        assert_eq!(
            RateLimitConfig::new(1, s, 0),
            Err(InvalidRateLimit::ZeroBurst)
        );
        assert!(matches!(
            RateLimitConfig::new(1, Duration::ZERO, 1),
            Err(InvalidRateLimit::TooFast { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_beyond_the_bucket_is_spaced_to_the_rate() {
        let start = Instant::now();
        let log = Arc::new(Mutex::new(Vec::new()));
        let bucket = TokenBucket::new(config());
        let mut svc = layer(bucket.clone()).layer(recording(start, Arc::clone(&log)));
        assert_eq!(bucket.available(), 3);
        for _ in 0..7 {
            svc.ready().await.unwrap().call(req()).await.unwrap();
        }
        assert_eq!(*log.lock().unwrap(), secs(&[0, 0, 0, 1, 2, 3, 4]));
        assert_eq!(bucket.available(), 0);

        // A quiet spell refills the bucket, up to `burst`.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(bucket.available(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_and_several_layers_share_one_budget() {
        let start = Instant::now();
        let log = Arc::new(Mutex::new(Vec::new()));
        let bucket = TokenBucket::new(config());
        let d1 = layer(bucket.clone()).layer(recording(start, Arc::clone(&log)));
        let vectorize = layer(bucket).layer(recording(start, Arc::clone(&log)));
        let mut tasks = Vec::new();
        for i in 0..8 {
            let svc = if i % 2 == 0 {
                d1.clone()
            } else {
                vectorize.clone()
            };
            tasks.push(tokio::spawn(svc.oneshot(req())));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let mut log = log.lock().unwrap().clone();
        log.sort();
        assert_eq!(log, secs(&[0, 0, 0, 1, 2, 3, 4, 5]));
    }

    #[tokio::test(start_paused = true)]
    async fn the_default_config_spaces_requests_250_ms_apart() {
        let start = Instant::now();
        let log = Arc::new(Mutex::new(Vec::new()));
        let layer = layer(TokenBucket::new(RateLimitConfig::default()));
        let mut svc = layer.layer(recording(start, Arc::clone(&log)));
        let n = DEFAULT_BURST + 4;
        for _ in 0..n {
            svc.ready().await.unwrap().call(req()).await.unwrap();
        }
        let log = log.lock().unwrap();
        assert!(log[..DEFAULT_BURST as usize].iter().all(Duration::is_zero));
        assert_eq!(log[log.len() - 1], Duration::from_millis(4 * 250));
    }

    /// Cloudflare's fixed window as the emulator keeps it: `limit` per `window` from the
    /// window's first request, every answer carrying `ratelimit`/`ratelimit-policy`, 429 with
    /// `retry-after` past the limit. `used` requests of the first window were spent by
    /// another consumer at the start.
    #[derive(Clone)]
    struct Account {
        limit: u64,
        window: Duration,
        state: Arc<Mutex<(Option<Instant>, u64)>>,
        log: Arc<Mutex<Vec<(Duration, u16)>>>,
        start: Instant,
    }

    impl Account {
        fn new(limit: u64, window: Duration, used: u64) -> Self {
            let start = Instant::now();
            Self {
                limit,
                window,
                state: Arc::new(Mutex::new((Some(start), used))),
                log: Arc::default(),
                start,
            }
        }

        fn answer(&self) -> Res {
            let now = Instant::now();
            let mut state = self.state.lock().unwrap();
            let opened = match state.0 {
                Some(t) if now - t < self.window => t,
                _ => {
                    *state = (Some(now), 0);
                    now
                }
            };
            let left = (opened + self.window - now).as_secs_f64().ceil();
            let policy = format!("\"default\";q={};w={}", self.limit, self.window.as_secs());
            let builder = http::Response::builder().header("ratelimit-policy", policy);
            let (status, builder) = if state.1 >= self.limit {
                (429, builder.header("retry-after", format!("{left}")))
            } else {
                state.1 += 1;
                (200, builder)
            };
            let r = self.limit - state.1.min(self.limit);
            self.log.lock().unwrap().push((now - self.start, status));
            builder
                .status(status)
                .header("ratelimit", format!("\"default\";r={r};t={left}"))
                .body(())
                .unwrap()
        }

        fn service(
            &self,
        ) -> impl Service<Req, Response = Res, Error = CloudflareError, Future: Send>
        + Clone
        + Send
        + 'static {
            let account = self.clone();
            tower::service_fn(move |_: Req| {
                let response = account.answer();
                async move { Ok::<_, CloudflareError>(response) }
            })
        }

        fn log(&self) -> Vec<(f64, u16)> {
            let log = self.log.lock().unwrap();
            log.iter().map(|(t, s)| (t.as_secs_f64(), *s)).collect()
        }
    }

    fn paced(
        account: &Account,
        budget: &AccountBudget,
        max_wait: Duration,
    ) -> RateLimit<
        impl Service<Req, Response = Res, Error = CloudflareError, Future: Send>
        + Clone
        + Send
        + 'static,
    > {
        RateLimitLayer::new(None, budget.clone(), max_wait).layer(account.service())
    }

    #[tokio::test(start_paused = true)]
    async fn a_low_budget_is_spread_over_the_window_then_waits_for_the_reset() {
        // Another consumer left 4 of 40 (the reserve is 10 %: 4); the window resets at 10 s.
        let account = Account::new(40, Duration::from_secs(10), 36);
        let budget = AccountBudget::new();
        let mut svc = paced(&account, &budget, Duration::from_secs(60));
        for _ in 0..7 {
            let response = svc.ready().await.unwrap().call(req()).await.unwrap();
            assert_eq!(response.status(), 200);
        }
        // 1st: nothing known yet; then r=3 over 10 s: gaps of t/(r+1); at r=0 the reset.
        assert_eq!(
            account.log(),
            [
                (0.0, 200),
                (0.0, 200),
                (2.5, 200),
                (5.0, 200),
                (10.0, 200),
                (10.0, 200),
                (10.0, 200)
            ]
        );
        let snapshot = budget.snapshot().unwrap();
        assert_eq!((snapshot.remaining, snapshot.quota), (37, Some(40)));
        assert_eq!(snapshot.reset_in, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn services_sharing_a_budget_wait_for_the_reset_another_one_saw() {
        let account = Account::new(10, Duration::from_secs(5), 9);
        let budget = AccountBudget::new();
        let mut d1 = paced(&account, &budget, Duration::from_secs(60));
        let vectorize = paced(&account, &budget, Duration::from_secs(60));
        d1.ready().await.unwrap().call(req()).await.unwrap();
        assert_eq!(budget.snapshot().unwrap().remaining, 0);
        let calls: Vec<_> = (0..3)
            .map(|_| tokio::spawn(vectorize.clone().oneshot(req())))
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap().unwrap().status(), 200);
        }
        assert_eq!(
            account.log(),
            [(0.0, 200), (5.0, 200), (5.0, 200), (5.0, 200)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_beyond_the_deadline_fails_at_once_saying_when_to_come_back() {
        let account = Account::new(10, Duration::from_secs(300), 9);
        let budget = AccountBudget::new();
        let mut svc = paced(&account, &budget, Duration::from_secs(60));
        svc.ready().await.unwrap().call(req()).await.unwrap();
        tokio::time::advance(Duration::from_secs(88)).await;
        let err = svc.ready().await.unwrap().call(req()).await.unwrap_err();
        match &err {
            CloudflareError::RateLimited {
                retry_after,
                errors,
                ..
            } => {
                assert_eq!(*retry_after, Duration::from_secs(212));
                assert!(errors.is_empty());
            }
            other => panic!("expected RateLimited, got {other:?}"),
        }
        assert!(err.to_string().contains("try again in 212 s"), "{err}");
        assert_eq!(account.log().len(), 1, "nothing more was sent");
        // A call whose own deadline is later waits for the reset instead.
        let mut request = req();
        request
            .extensions_mut()
            .insert(CallDeadline(Instant::now() + Duration::from_secs(300)));
        let response = svc.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(account.log()[1], (300.0, 200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_leaving_nothing_blocks_the_account_and_other_429s_do_not() {
        let budget = AccountBudget::new();
        let now = Instant::now();
        let status = http::StatusCode::TOO_MANY_REQUESTS;
        let mut headers = http::HeaderMap::new();
        headers.insert("retry-after", "30".parse().unwrap());
        budget.observe(status, &headers, now);
        assert_eq!(
            budget.snapshot(),
            None,
            "no ratelimit header: nothing known"
        );
        // Another limit's 429 (a service's own): the account still has budget.
        headers.insert("ratelimit", "\"default\";r=500;t=20".parse().unwrap());
        budget.observe(status, &headers, now);
        assert_eq!(budget.snapshot().unwrap().remaining, 500);
        assert_eq!(budget.reserve(now, now).unwrap(), now);
        // The account's budget is spent: blocked until the later of t and retry-after.
        headers.insert("ratelimit", "\"default\";r=0;t=20".parse().unwrap());
        tokio::time::advance(Duration::from_secs(25)).await;
        let now = Instant::now();
        budget.observe(status, &headers, now);
        let snapshot = budget.snapshot().unwrap();
        assert_eq!(snapshot.remaining, 0);
        assert_eq!(snapshot.reset_in, Duration::from_secs(30));
        let far = now + Duration::from_secs(3600);
        assert_eq!(
            budget.reserve(now, far).unwrap(),
            now + Duration::from_secs(30)
        );
    }
}
