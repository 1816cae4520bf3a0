//! [`RateLimitLayer`]: a token bucket shared by every service that uses one API token.
//!
//! Cloudflare allows [`crate::RATE_LIMIT_REQUESTS`] requests per [`crate::RATE_LIMIT_WINDOW`]
//! per token (<https://developers.cloudflare.com/fundamentals/api/reference/limits/>). A
//! [`TokenBucket`] hands out one token every `per / requests`, holding up to `burst` of them;
//! a [`RateLimit`] service waits in `poll_ready` (a `tokio::time` sleep) until its token is
//! due instead of failing. Waiting calls are served in the order they asked.
//!
//! Clones of a [`TokenBucket`] share one budget: build one bucket per token and give a
//! [`RateLimitLayer`] made from it to every service (D1, Vectorize...) using that token.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

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

/// A [`tower::Layer`] making services wait for a token of one shared [`TokenBucket`].
#[derive(Debug, Clone)]
pub(crate) struct RateLimitLayer {
    bucket: TokenBucket,
}

impl RateLimitLayer {
    /// A layer drawing from `bucket` (share the bucket between layers to share the budget).
    #[must_use]
    pub(crate) fn new(bucket: TokenBucket) -> Self {
        Self { bucket }
    }
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            bucket: self.bucket.clone(),
            wait: Wait::Idle,
        }
    }
}

/// A service that waits for a token before each call; build it with [`RateLimitLayer`].
///
/// It waits in `poll_ready`, so call it the tower way (`ready().await` then `call`);
/// a clone starts without a token of its own.
#[derive(Debug)]
pub(crate) struct RateLimit<S> {
    inner: S,
    bucket: TokenBucket,
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
            wait: Wait::Idle,
        }
    }
}

impl<S, Req> tower::Service<Req> for RateLimit<S>
where
    S: tower::Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        loop {
            match &mut self.wait {
                Wait::Idle => {
                    let due = self.bucket.reserve();
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
    fn call(&mut self, request: Req) -> S::Future {
        assert!(
            matches!(self.wait, Wait::Holding),
            "RateLimit::call without a token: poll_ready must return Ready first"
        );
        self.wait = Wait::Idle;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::{Layer, Service, ServiceExt};

    /// A service recording how long after `start` each call reached it.
    fn recording(
        start: Instant,
        log: Arc<Mutex<Vec<Duration>>>,
    ) -> impl Service<(), Response = (), Error = Infallible, Future: Send> + Clone + Send + 'static
    {
        tower::service_fn(move |()| {
            log.lock().unwrap().push(start.elapsed());
            async { Ok::<_, Infallible>(()) }
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
        let mut svc = RateLimitLayer::new(bucket.clone()).layer(recording(start, Arc::clone(&log)));
        assert_eq!(bucket.available(), 3);
        for _ in 0..7 {
            svc.ready().await.unwrap().call(()).await.unwrap();
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
        let d1 = RateLimitLayer::new(bucket.clone()).layer(recording(start, Arc::clone(&log)));
        let vectorize = RateLimitLayer::new(bucket).layer(recording(start, Arc::clone(&log)));
        let mut tasks = Vec::new();
        for i in 0..8 {
            let svc = if i % 2 == 0 {
                d1.clone()
            } else {
                vectorize.clone()
            };
            tasks.push(tokio::spawn(svc.oneshot(())));
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
        let layer = RateLimitLayer::new(TokenBucket::new(RateLimitConfig::default()));
        let mut svc = layer.layer(recording(start, Arc::clone(&log)));
        let n = DEFAULT_BURST + 4;
        for _ in 0..n {
            svc.ready().await.unwrap().call(()).await.unwrap();
        }
        let log = log.lock().unwrap();
        assert!(log[..DEFAULT_BURST as usize].iter().all(Duration::is_zero));
        assert_eq!(log[log.len() - 1], Duration::from_millis(4 * 250));
    }
}
