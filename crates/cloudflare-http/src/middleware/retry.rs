//! [`RetryPolicy`]: a [`tower::retry::Policy`] for Cloudflare calls.
//!
//! Retries 408, 429, 5xx, transport errors and timeouts; waits `retry-after` when the
//! response has one, else a decorrelated-jitter backoff ([`crate::BackoffConfig`]); stops after
//! [`RetryConfig::max_retries`] retries or when the next wait would exceed
//! [`RetryConfig::total_budget`]. A request [`is_idempotent`] rejects is retried only after
//! a 429: Cloudflare refuses it before doing anything, so sending it again cannot apply it
//! twice (<https://developers.cloudflare.com/fundamentals/api/reference/limits/>). A 429 whose
//! `retry-after` outlasts the budget becomes [`CloudflareError::RateLimited`], saying when to
//! try again.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use http::{Request, Response, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::{Instant, Sleep};

use crate::backoff::RetryConfig;
// The status rule lives with the error's classification (`CloudflareError::is_retryable`),
// so that `error` never has to import this layer; re-exported here where retrying uses it.
pub(crate) use crate::error::is_retryable_status;
use crate::error::{CloudflareError, envelope_errors, retry_after_from_headers};
use crate::idempotency::is_idempotent;
use crate::operation::Attempt;

/// Retry policy for `Service<http::Request<B>, Response = http::Response<_>, Error = CloudflareError>`.
///
/// Tower clones the policy for every call, so the retry count and time budget are per call;
/// the RNG is shared between the clones so concurrent calls draw different jitter.
#[derive(Debug)]
pub(crate) struct RetryPolicy<R = StdRng> {
    config: RetryConfig,
    rng: Arc<Mutex<R>>,
    retries: u32,
    previous: Option<Duration>,
    started: Option<Instant>,
}

impl<R> Clone for RetryPolicy<R> {
    fn clone(&self) -> Self {
        Self {
            config: self.config,
            rng: Arc::clone(&self.rng),
            retries: self.retries,
            previous: self.previous,
            started: self.started,
        }
    }
}

impl RetryPolicy<StdRng> {
    /// A policy with jitter from the operating system's entropy.
    #[must_use]
    pub(crate) fn new(config: RetryConfig) -> Self {
        Self::with_rng(config, StdRng::from_os_rng())
    }
}

impl<R: Rng> RetryPolicy<R> {
    /// A policy drawing jitter from `rng` (seed it to make delays reproducible).
    #[must_use]
    pub(crate) fn with_rng(config: RetryConfig, rng: R) -> Self {
        Self {
            config,
            rng: Arc::new(Mutex::new(rng)),
            retries: 0,
            previous: None,
            started: None,
        }
    }

    fn next_backoff(&mut self) -> Duration {
        let backoff = self.config.backoff;
        let previous = self.previous.unwrap_or(backoff.init_backoff());
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        let delay = backoff.next_delay(previous, &mut *rng);
        self.previous = Some(delay);
        delay
    }
}

impl<R, B, ResB> tower::retry::Policy<Request<B>, Response<ResB>, CloudflareError>
    for RetryPolicy<R>
where
    R: Rng,
    B: Clone,
    ResB: AsRef<[u8]>,
{
    type Future = Sleep;

    fn retry(
        &mut self,
        request: &mut Request<B>,
        result: &mut Result<Response<ResB>, CloudflareError>,
    ) -> Option<Sleep> {
        let idempotent = is_idempotent(request);
        let (retry_after, too_many) = match result {
            Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => (
                retry_after_from_headers(response.headers(), SystemTime::now()),
                true,
            ),
            Ok(response) if idempotent && is_retryable_status(response.status()) => (
                retry_after_from_headers(response.headers(), SystemTime::now()),
                false,
            ),
            Ok(_) => return None,
            Err(e) if idempotent && e.is_retryable() => (e.retry_after(), false),
            Err(_) => return None,
        };
        if self.retries >= self.config.max_retries {
            return None;
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        let delay = retry_after.unwrap_or_else(|| self.next_backoff());
        if started.elapsed().saturating_add(delay) > self.config.total_budget {
            if let (true, Some(wait), Ok(response)) = (too_many, retry_after, &*result) {
                // Waiting out the 429 would outlast the call: say when the budget is back.
                *result = Err(CloudflareError::RateLimited {
                    retry_after: wait,
                    until: SystemTime::now() + wait,
                    errors: envelope_errors(response.body().as_ref()),
                });
            }
            return None;
        }
        self.retries += 1;
        if let Some(attempt) = request.extensions().get::<Attempt>() {
            attempt.bump();
        }
        Some(tokio::time::sleep(delay))
    }

    fn clone_request(&mut self, request: &Request<B>) -> Option<Request<B>> {
        // Every request is kept, even a POST: a 429 may be retried whatever the method
        // (`retry` checks idempotency for everything else). Bodies are `Bytes`: cheap.
        // Tower calls this on the service's own policy before each new call (never retried,
        // so `retries == 0`), then clones the policy into the call: stamp the call's start.
        if self.retries == 0 {
            self.started = Some(Instant::now());
        }
        let mut clone = Request::new(request.body().clone());
        *clone.method_mut() = request.method().clone();
        *clone.uri_mut() = request.uri().clone();
        *clone.version_mut() = request.version();
        *clone.headers_mut() = request.headers().clone();
        *clone.extensions_mut() = request.extensions().clone();
        Some(clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::BackoffConfig;
    use crate::idempotency::Idempotent;
    use http::StatusCode;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::retry::Retry;
    use tower::{Service, ServiceExt};

    type Reply = Result<Response<String>, CloudflareError>;

    /// A service answering with `replies[n]` on call `n` (the last one repeated), counting calls.
    fn scripted(
        replies: Vec<fn() -> Reply>,
    ) -> (
        Arc<AtomicUsize>,
        impl tower::Service<
            Request<String>,
            Response = Response<String>,
            Error = CloudflareError,
            Future: Send,
        > + Clone,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let svc = tower::service_fn(move |_req: Request<String>| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let reply = replies[n.min(replies.len() - 1)]();
            async move { reply }
        });
        (calls, svc)
    }

    fn status(code: u16) -> Reply {
        Ok(Response::builder()
            .status(code)
            .body(String::new())
            .unwrap())
    }

    fn rate_limited_3s() -> Reply {
        Ok(Response::builder()
            .status(429)
            .header(http::header::RETRY_AFTER, "3")
            .body(String::new())
            .unwrap())
    }

    fn get() -> Request<String> {
        Request::get("https://api.cloudflare.com/client/v4/x")
            .body(String::new())
            .unwrap()
    }

    fn post() -> Request<String> {
        Request::post("https://api.cloudflare.com/client/v4/x")
            .body("{}".into())
            .unwrap()
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::with_rng(RetryConfig::default(), StdRng::seed_from_u64(7))
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limit_with_retry_after_3s_waits_3s() {
        let (calls, svc) = scripted(vec![rate_limited_3s, || status(200)]);
        let start = Instant::now();
        let response = Retry::new(policy(), svc).oneshot(get()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn server_errors_follow_the_seeded_backoff_then_give_up() {
        let (calls, svc) = scripted(vec![|| status(503)]);
        let config = RetryConfig::default();
        let expected: Duration = config
            .backoff
            .backoff_with_rng(StdRng::seed_from_u64(7))
            .take(config.max_retries as usize)
            .sum();
        let start = Instant::now();
        let response = Retry::new(policy(), svc).oneshot(get()).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1 + config.max_retries as usize
        );
        // Tokio's timer rounds each sleep up to the next millisecond.
        let elapsed = start.elapsed();
        let slack = Duration::from_millis(u64::from(config.max_retries));
        assert!(
            elapsed >= expected && elapsed <= expected + slack,
            "{elapsed:?} vs {expected:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn transport_errors_are_retried() {
        let (calls, svc) = scripted(vec![|| Err(CloudflareError::transport("reset")), || {
            status(200)
        }]);
        let response = Retry::new(policy(), svc).oneshot(get()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn client_errors_are_not_retried() {
        for reply in [|| status(400), || status(404), || status(200)] {
            let (calls, svc) = scripted(vec![reply]);
            let _ = Retry::new(policy(), svc).oneshot(get()).await.unwrap();
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn post_is_retried_only_when_marked_idempotent() {
        let (calls, svc) = scripted(vec![|| status(503), || status(200)]);
        let response = Retry::new(policy(), svc).oneshot(post()).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let (calls, svc) = scripted(vec![|| status(503), || status(200)]);
        let mut request = post();
        request.extensions_mut().insert(Idempotent::Yes);
        let response = Retry::new(policy(), svc).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_beyond_the_budget_gives_up_at_once_saying_when() {
        let (calls, svc) = scripted(vec![
            || {
                Ok(Response::builder()
                    .status(429)
                    .header(http::header::RETRY_AFTER, "400")
                    .body(
                        r#"{"success":false,"errors":[{"code":971,"message":"Please wait"}]}"#
                            .into(),
                    )
                    .unwrap())
            },
            || status(200),
        ]);
        let start = Instant::now();
        let err = Retry::new(policy(), svc).oneshot(post()).await.unwrap_err();
        match &err {
            CloudflareError::RateLimited {
                retry_after,
                errors,
                ..
            } => {
                assert_eq!(*retry_after, Duration::from_secs(400));
                assert_eq!(errors[0].code, 971);
            }
            other => panic!("expected RateLimited, got {other:?}"),
        }
        assert!(err.to_string().contains("try again in 400 s"), "{err}");
        assert!(err.to_string().contains("code 971: Please wait"), "{err}");
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_is_retried_even_for_a_post_but_a_5xx_is_not() {
        let (calls, svc) = scripted(vec![rate_limited_3s, || status(200)]);
        let start = Instant::now();
        let response = Retry::new(policy(), svc).oneshot(post()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        for reply in [|| status(500), || status(503), || status(408)] {
            let (calls, svc) = scripted(vec![reply, || status(200)]);
            let response = Retry::new(policy(), svc).oneshot(post()).await.unwrap();
            assert_ne!(response.status(), StatusCode::OK);
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        }
        let (calls, svc) = scripted(vec![|| Err(CloudflareError::transport("reset")), || {
            status(200)
        }]);
        Retry::new(policy(), svc).oneshot(post()).await.unwrap_err();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a POST that may have landed is not resent"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn service_can_be_reused_and_each_call_gets_its_own_budget() {
        let config = RetryConfig {
            max_retries: 1,
            backoff: BackoffConfig::default(),
            total_budget: Duration::from_secs(5),
        };
        let (calls, svc) = scripted(vec![rate_limited_3s]);
        let mut retry = Retry::new(RetryPolicy::with_rng(config, StdRng::seed_from_u64(1)), svc);
        for round in 1..=2 {
            let response = retry.ready().await.unwrap().call(get()).await.unwrap();
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(calls.load(Ordering::SeqCst), 2 * round);
        }
    }
}
