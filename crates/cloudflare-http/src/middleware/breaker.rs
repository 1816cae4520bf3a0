//! [`BreakerLayer`]: a circuit breaker in front of one Cloudflare service (D1, Vectorize...).
//!
//! Closed, it counts consecutive failures that say Cloudflare is unhealthy
//! ([`CloudflareError::counts_for_breaker`], or an `Ok` response with status 429 or 5xx).
//! After [`BreakerConfig::failure_threshold`] of them it opens: for
//! [`BreakerConfig::open_for`] every call fails at once with [`CloudflareError::CircuitOpen`]
//! without reaching the inner service. Then it is half-open: up to
//! [`BreakerConfig::half_open_probes`] calls go through; a success closes it, a counted failure
//! opens it again. Other 4xx and successes reset the failure count.
//!
//! All services made by one layer, and all their clones, share one state, which
//! [`BreakerHandle`] exposes.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Response, StatusCode};
use tokio::time::Instant;

use crate::error::CloudflareError;

/// Default number of consecutive counted failures that open the breaker.
pub(crate) const DEFAULT_FAILURE_THRESHOLD: u32 = 5;

/// Default time the breaker stays open before letting probes through.
pub(crate) const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(30);

/// Default number of probe calls let through while half-open.
pub(crate) const DEFAULT_HALF_OPEN_PROBES: u32 = 1;

/// Why a [`BreakerConfig`] was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidBreaker {
    /// `failure_threshold` is zero.
    #[error("invalid circuit breaker for {service}: failure_threshold must be at least 1")]
    ZeroThreshold {
        /// The service the breaker guards.
        service: &'static str,
    },
    /// `open_for` is zero.
    #[error("invalid circuit breaker for {service}: open_for must be greater than zero")]
    ZeroOpenFor {
        /// The service the breaker guards.
        service: &'static str,
    },
    /// `half_open_probes` is zero.
    #[error("invalid circuit breaker for {service}: half_open_probes must be at least 1")]
    ZeroProbes {
        /// The service the breaker guards.
        service: &'static str,
    },
}

/// Settings of one service's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    name: &'static str,
    failure_threshold: u32,
    open_for: Duration,
    half_open_probes: u32,
}

impl BreakerConfig {
    /// The defaults ([`DEFAULT_FAILURE_THRESHOLD`], [`DEFAULT_OPEN_FOR`],
    /// [`DEFAULT_HALF_OPEN_PROBES`]) for the service `name`, e.g. `"d1"` or `"vectorize"`.
    #[must_use]
    pub fn named(name: &'static str) -> Self {
        Self {
            name,
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            open_for: DEFAULT_OPEN_FOR,
            half_open_probes: DEFAULT_HALF_OPEN_PROBES,
        }
    }

    /// Validates and builds a config.
    ///
    /// # Errors
    ///
    /// [`InvalidBreaker`] if `failure_threshold`, `open_for` or `half_open_probes` is zero.
    pub fn new(
        name: &'static str,
        failure_threshold: u32,
        open_for: Duration,
        half_open_probes: u32,
    ) -> Result<Self, InvalidBreaker> {
        if failure_threshold == 0 {
            return Err(InvalidBreaker::ZeroThreshold { service: name });
        }
        if open_for.is_zero() {
            return Err(InvalidBreaker::ZeroOpenFor { service: name });
        }
        if half_open_probes == 0 {
            return Err(InvalidBreaker::ZeroProbes { service: name });
        }
        Ok(Self {
            name,
            failure_threshold,
            open_for,
            half_open_probes,
        })
    }

    /// The same settings for the service `name` (the client gives each service its own
    /// breaker from one template).
    #[must_use]
    pub fn for_service(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// The guarded service's name, quoted in [`CloudflareError::CircuitOpen`].
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Consecutive counted failures that open the breaker.
    #[must_use]
    pub fn failure_threshold(&self) -> u32 {
        self.failure_threshold
    }

    /// How long the breaker stays open.
    #[must_use]
    pub fn open_for(&self) -> Duration {
        self.open_for
    }

    /// Calls let through while half-open.
    #[must_use]
    pub fn half_open_probes(&self) -> u32 {
        self.half_open_probes
    }
}

/// What a breaker currently does with calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls fail at once with [`CloudflareError::CircuitOpen`] until `until`.
    Open {
        /// When probes will be let through.
        until: Instant,
    },
    /// A few probe calls go through to find out whether the service recovered.
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probes_left: u32 },
}

#[derive(Debug)]
struct Inner {
    state: State,
    consecutive_failures: u32,
    opened: u64,
    rejected: u64,
    /// Bumped on every state change, so late results of older calls are told apart.
    epoch: u64,
}

#[derive(Debug)]
struct Shared {
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

/// How a call was admitted.
#[derive(Debug, Clone, Copy)]
struct Ticket {
    epoch: u64,
    probe: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves an expired `Open` to `HalfOpen`.
    fn refresh(&self, inner: &mut Inner, now: Instant) {
        if let State::Open { until } = inner.state
            && now >= until
        {
            inner.state = State::HalfOpen {
                probes_left: self.config.half_open_probes,
            };
            inner.epoch += 1;
        }
    }

    fn open(&self, inner: &mut Inner, now: Instant) {
        inner.state = State::Open {
            until: now + self.config.open_for,
        };
        inner.opened += 1;
        inner.consecutive_failures = 0;
        inner.epoch += 1;
    }

    /// Lets a call through, or says how long until the breaker will try again.
    fn admit(&self) -> Result<Ticket, Duration> {
        let now = Instant::now();
        let mut inner = self.lock();
        self.refresh(&mut inner, now);
        let epoch = inner.epoch;
        match &mut inner.state {
            State::Closed => Ok(Ticket {
                epoch,
                probe: false,
            }),
            State::HalfOpen { probes_left } if *probes_left > 0 => {
                *probes_left -= 1;
                Ok(Ticket { epoch, probe: true })
            }
            State::HalfOpen { .. } => {
                inner.rejected += 1;
                // The probes in flight decide; try again soon.
                Err(Duration::ZERO)
            }
            State::Open { until } => {
                let retry_in = until.saturating_duration_since(now);
                inner.rejected += 1;
                Err(retry_in)
            }
        }
    }

    /// Records the outcome of an admitted call: `failed` if it counts for the breaker.
    fn record(&self, ticket: Ticket, failed: bool) {
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.state {
            State::Closed => {
                if failed {
                    inner.consecutive_failures += 1;
                    if inner.consecutive_failures >= self.config.failure_threshold {
                        self.open(&mut inner, now);
                    }
                } else {
                    inner.consecutive_failures = 0;
                }
            }
            State::HalfOpen { .. } if ticket.probe && ticket.epoch == inner.epoch => {
                if failed {
                    self.open(&mut inner, now);
                } else {
                    inner.state = State::Closed;
                    inner.consecutive_failures = 0;
                    inner.epoch += 1;
                }
            }
            // A call admitted before the breaker opened, or a probe of an older round.
            State::HalfOpen { .. } | State::Open { .. } => {}
        }
    }

    /// Gives back the slot of a probe dropped before it finished.
    fn cancel(&self, ticket: Ticket) {
        let mut inner = self.lock();
        if ticket.probe
            && ticket.epoch == inner.epoch
            && let State::HalfOpen { probes_left } = &mut inner.state
        {
            *probes_left += 1;
        }
    }
}

/// A read-only view of a breaker's state, shared with its layer and services.
#[derive(Debug, Clone)]
pub struct BreakerHandle {
    shared: Arc<Shared>,
}

impl BreakerHandle {
    /// The settings in force.
    #[must_use]
    pub fn config(&self) -> &BreakerConfig {
        &self.shared.config
    }

    /// The current state (an `Open` whose time is up reads as `HalfOpen`).
    #[must_use]
    pub fn state(&self) -> BreakerState {
        let mut inner = self.shared.lock();
        self.shared.refresh(&mut inner, Instant::now());
        match inner.state {
            State::Closed => BreakerState::Closed,
            State::Open { until } => BreakerState::Open { until },
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// How many times the breaker has opened.
    #[must_use]
    pub fn opened_count(&self) -> u64 {
        self.shared.lock().opened
    }

    /// How many calls were failed fast without reaching the service.
    #[must_use]
    pub fn rejected_count(&self) -> u64 {
        self.shared.lock().rejected
    }

    /// Counted failures in a row since the last success (while closed).
    #[must_use]
    pub fn consecutive_failures(&self) -> u32 {
        self.shared.lock().consecutive_failures
    }
}

/// A [`tower::Layer`] wrapping services in one shared [`Breaker`].
#[derive(Debug, Clone)]
pub(crate) struct BreakerLayer {
    shared: Arc<Shared>,
}

impl BreakerLayer {
    /// A closed breaker with `config`.
    #[must_use]
    pub(crate) fn new(config: BreakerConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                inner: Mutex::new(Inner {
                    state: State::Closed,
                    consecutive_failures: 0,
                    opened: 0,
                    rejected: 0,
                    epoch: 0,
                }),
            }),
        }
    }

    /// A view of the breaker's state.
    #[must_use]
    pub(crate) fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S> tower::Layer<S> for BreakerLayer {
    type Service = Breaker<S>;

    fn layer(&self, inner: S) -> Breaker<S> {
        Breaker {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// A service behind a circuit breaker; build it with [`BreakerLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Breaker<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Breaker<S> {
    /// A view of the breaker's state.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Whether a response status says Cloudflare is unhealthy: 429 or 5xx.
fn status_counts(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

impl<S, Req, B> tower::Service<Req> for Breaker<S>
where
    S: tower::Service<Req, Response = Response<B>, Error = CloudflareError>,
{
    type Response = Response<B>;
    type Error = CloudflareError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CloudflareError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let kind = match self.shared.admit() {
            Ok(ticket) => Kind::Called {
                future: Box::pin(self.inner.call(request)),
                shared: Arc::clone(&self.shared),
                ticket: Some(ticket),
            },
            Err(retry_in) => Kind::Rejected(Some(CloudflareError::CircuitOpen {
                service: self.shared.config.name,
                retry_in,
            })),
        };
        ResponseFuture { kind }
    }
}

/// The future of a [`Breaker`] call.
pub(crate) struct ResponseFuture<F> {
    kind: Kind<F>,
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::Rejected(_) => "rejected",
            Kind::Called { .. } => "called",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

enum Kind<F> {
    Rejected(Option<CloudflareError>),
    Called {
        future: Pin<Box<F>>,
        shared: Arc<Shared>,
        /// `None` once the outcome is recorded.
        ticket: Option<Ticket>,
    },
}

impl<F, B> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, CloudflareError>>,
{
    type Output = Result<Response<B>, CloudflareError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // `Kind` is `Unpin`: the inner future is boxed.
        match &mut self.get_mut().kind {
            Kind::Rejected(error) => Poll::Ready(Err(error
                .take()
                .expect("breaker ResponseFuture polled after completion"))),
            Kind::Called {
                future,
                shared,
                ticket,
            } => {
                let result = std::task::ready!(future.as_mut().poll(cx));
                let failed = match &result {
                    Ok(response) => status_counts(response.status()),
                    Err(e) => e.counts_for_breaker(),
                };
                if let Some(ticket) = ticket.take() {
                    shared.record(ticket, failed);
                }
                Poll::Ready(result)
            }
        }
    }
}

impl<F> Drop for ResponseFuture<F> {
    fn drop(&mut self) {
        if let Kind::Called {
            shared,
            ticket: Some(ticket),
            ..
        } = &self.kind
        {
            shared.cancel(*ticket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::{Layer, Service, ServiceExt};

    type Reply = Result<Response<String>, CloudflareError>;

    /// A service answering with `reply()` and counting calls.
    fn counting(
        reply: fn() -> Reply,
    ) -> (
        Arc<AtomicUsize>,
        impl Service<(), Response = Response<String>, Error = CloudflareError, Future: Send> + Clone,
    ) {
        switchable(Arc::new(Mutex::new(reply)))
    }

    /// A service answering with whatever `script` currently holds, counting calls.
    fn switchable(
        script: Arc<Mutex<fn() -> Reply>>,
    ) -> (
        Arc<AtomicUsize>,
        impl Service<(), Response = Response<String>, Error = CloudflareError, Future: Send> + Clone,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let svc = tower::service_fn(move |()| {
            counter.fetch_add(1, Ordering::SeqCst);
            let reply = (*script.lock().unwrap())();
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

    fn api_503() -> Reply {
        Err(CloudflareError::Api {
            status: StatusCode::SERVICE_UNAVAILABLE,
            errors: vec![],
            retry_after: None,
        })
    }

    fn config() -> BreakerConfig {
        BreakerConfig::new("d1", 3, Duration::from_secs(10), 1).unwrap()
    }

    async fn call<S>(svc: &mut S) -> Reply
    where
        S: Service<(), Response = Response<String>, Error = CloudflareError>,
    {
        svc.ready().await?.call(()).await
    }

    #[test]
    fn config_is_validated() {
        let d = BreakerConfig::named("vectorize");
        assert_eq!(d.name(), "vectorize");
        assert_eq!(d.failure_threshold(), DEFAULT_FAILURE_THRESHOLD);
        assert_eq!(d.open_for(), DEFAULT_OPEN_FOR);
        assert_eq!(d.half_open_probes(), DEFAULT_HALF_OPEN_PROBES);
        let s = Duration::from_secs(1);
        assert_eq!(
            BreakerConfig::new("d1", 0, s, 1),
            Err(InvalidBreaker::ZeroThreshold { service: "d1" })
        );
        assert_eq!(
            BreakerConfig::new("d1", 1, Duration::ZERO, 1),
            Err(InvalidBreaker::ZeroOpenFor { service: "d1" })
        );
        assert_eq!(
            BreakerConfig::new("d1", 1, s, 0),
            Err(InvalidBreaker::ZeroProbes { service: "d1" })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_and_fails_fast() {
        let (calls, inner) = counting(|| status(503));
        let layer = BreakerLayer::new(config());
        let handle = layer.handle();
        let mut svc = layer.layer(inner);

        for n in 1..=2 {
            assert_eq!(call(&mut svc).await.unwrap().status(), 503);
            assert_eq!(handle.state(), BreakerState::Closed);
            assert_eq!(handle.consecutive_failures(), n);
        }
        let opened_at = Instant::now();
        assert_eq!(call(&mut svc).await.unwrap().status(), 503);
        assert_eq!(
            handle.state(),
            BreakerState::Open {
                until: opened_at + Duration::from_secs(10)
            }
        );
        assert_eq!(handle.opened_count(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        tokio::time::advance(Duration::from_secs(4)).await;
        // Fail-fast: no waiting (zero paused time) and no inner call. Its wall-clock cost
        // belongs in a benchmark, not in a timed unit test on a shared machine.
        let paused = Instant::now();
        let err = call(&mut svc).await.unwrap_err();
        assert_eq!(paused.elapsed(), Duration::ZERO);
        assert!(
            matches!(
                err,
                CloudflareError::CircuitOpen { service: "d1", retry_in }
                    if retry_in == Duration::from_secs(6)
            ),
            "{err:?}"
        );
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("d1"), "{err}");
        assert_eq!(calls.load(Ordering::SeqCst), 3, "inner service was called");
        assert_eq!(handle.rejected_count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn api_errors_and_transport_errors_count_too() {
        for reply in [
            api_503 as fn() -> Reply,
            || Err(CloudflareError::transport("reset")),
            || {
                Err(CloudflareError::Timeout {
                    after: Duration::from_secs(30),
                })
            },
            || status(429),
        ] {
            let (_, inner) = counting(reply);
            let layer = BreakerLayer::new(config());
            let mut svc = layer.layer(inner);
            for _ in 0..3 {
                let _ = call(&mut svc).await;
            }
            assert!(matches!(layer.handle().state(), BreakerState::Open { .. }));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_probe_success_closes_it() {
        let script: Arc<Mutex<fn() -> Reply>> = Arc::new(Mutex::new(api_503));
        let (calls, inner) = switchable(Arc::clone(&script));
        let layer = BreakerLayer::new(config());
        let handle = layer.handle();
        let mut svc = layer.layer(inner);
        for _ in 0..3 {
            let _ = call(&mut svc).await;
        }
        assert!(matches!(handle.state(), BreakerState::Open { .. }));

        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(handle.state(), BreakerState::HalfOpen);
        *script.lock().unwrap() = || status(200);
        assert_eq!(call(&mut svc).await.unwrap().status(), 200);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(handle.state(), BreakerState::Closed);
        assert_eq!(handle.consecutive_failures(), 0);
        assert_eq!(handle.opened_count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn failing_probe_reopens_it() {
        let (calls, inner) = counting(api_503);
        let layer = BreakerLayer::new(config());
        let handle = layer.handle();
        let mut svc = layer.layer(inner);
        for _ in 0..3 {
            let _ = call(&mut svc).await;
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        let probed_at = Instant::now();
        assert!(matches!(
            call(&mut svc).await,
            Err(CloudflareError::Api { .. })
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(
            handle.state(),
            BreakerState::Open {
                until: probed_at + Duration::from_secs(10)
            }
        );
        assert_eq!(handle.opened_count(), 2);
        assert!(matches!(
            call(&mut svc).await,
            Err(CloudflareError::CircuitOpen { .. })
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_allowed_probes_go_through_and_a_dropped_probe_is_given_back() {
        let (calls, inner) = counting(|| status(502));
        let layer = BreakerLayer::new(config());
        let handle = layer.handle();
        let mut svc = layer.layer(inner);
        for _ in 0..3 {
            let _ = call(&mut svc).await;
        }
        tokio::time::advance(Duration::from_secs(10)).await;

        let probe = svc.ready().await.unwrap().call(());
        let err = call(&mut svc).await.unwrap_err();
        assert!(
            matches!(err, CloudflareError::CircuitOpen { retry_in, .. } if retry_in.is_zero()),
            "{err:?}"
        );
        drop(probe);
        assert_eq!(handle.state(), BreakerState::HalfOpen);
        assert_eq!(call(&mut svc).await.unwrap().status(), 502);
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        assert!(matches!(handle.state(), BreakerState::Open { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn client_errors_never_open_it_and_reset_the_count() {
        let script: Arc<Mutex<fn() -> Reply>> = Arc::new(Mutex::new(|| status(500)));
        let (calls, inner) = switchable(Arc::clone(&script));
        let layer = BreakerLayer::new(config());
        let handle = layer.handle();
        let mut svc = layer.layer(inner);
        for _ in 0..2 {
            let _ = call(&mut svc).await;
        }
        assert_eq!(handle.consecutive_failures(), 2);
        *script.lock().unwrap() = || {
            Err(CloudflareError::Api {
                status: StatusCode::NOT_FOUND,
                errors: vec![],
                retry_after: None,
            })
        };
        let _ = call(&mut svc).await;
        assert_eq!(handle.consecutive_failures(), 0);
        for reply in [|| status(400), || status(404), || status(200)] {
            *script.lock().unwrap() = reply;
            for _ in 0..10 {
                let _ = call(&mut svc).await;
            }
        }
        assert_eq!(handle.state(), BreakerState::Closed);
        assert_eq!(handle.opened_count(), 0);
        assert_eq!(calls.load(Ordering::SeqCst), 33);
    }

    #[tokio::test(start_paused = true)]
    async fn clones_and_layered_services_share_one_state() {
        let (calls, inner) = counting(|| status(503));
        let layer = BreakerLayer::new(config());
        let mut a = layer.layer(inner.clone());
        let mut b = a.clone();
        let mut c = layer.layer(inner);
        let _ = call(&mut a).await;
        let _ = call(&mut b).await;
        let _ = call(&mut c).await;
        assert!(matches!(a.handle().state(), BreakerState::Open { .. }));
        assert!(call(&mut b).await.is_err());
        assert!(call(&mut c).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(layer.handle().rejected_count(), 2);
    }
}
