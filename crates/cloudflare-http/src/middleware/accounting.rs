//! [`AccountingLayer`]: counts calls, failures, attempts and latency per
//! [`Operation`], in an [`Accounting`] registry that health checks, tests and benchmarks
//! read.
//!
//! The layer sits outside the retry layer, so one call is counted once however many
//! attempts it took; [`OperationStats::attempts`] says how many were sent.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tokio::time::Instant;

use crate::error::CloudflareError;
use crate::operation::{Attempt, Operation};

/// Counters of one [`Operation`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperationStats {
    /// Calls made (retries not included).
    pub calls: u64,
    /// Calls that ended in an error or a non-2xx response.
    pub failures: u64,
    /// HTTP requests sent for these calls, retries included.
    pub attempts: u64,
    /// Sum of the calls' latencies (retries and waits included).
    pub total_latency: Duration,
    /// The slowest call.
    pub max_latency: Duration,
}

impl OperationStats {
    /// Mean latency of a call, if any was made.
    #[must_use]
    pub fn mean_latency(&self) -> Option<Duration> {
        u32::try_from(self.calls)
            .ok()
            .filter(|n| *n > 0)
            .map(|n| self.total_latency / n)
    }

    /// Retries sent: attempts beyond the first of each call.
    #[must_use]
    pub fn retries(&self) -> u64 {
        self.attempts.saturating_sub(self.calls)
    }

    fn record(&mut self, latency: Duration, failed: bool, attempts: u32) {
        self.calls += 1;
        self.failures += u64::from(failed);
        self.attempts += u64::from(attempts);
        self.total_latency += latency;
        self.max_latency = self.max_latency.max(latency);
    }

    fn add(&mut self, other: &Self) {
        self.calls += other.calls;
        self.failures += other.failures;
        self.attempts += other.attempts;
        self.total_latency += other.total_latency;
        self.max_latency = self.max_latency.max(other.max_latency);
    }
}

/// A shared registry of [`OperationStats`]; clones see the same counters.
#[derive(Debug, Clone, Default)]
pub struct Accounting {
    stats: Arc<Mutex<BTreeMap<Operation, OperationStats>>>,
}

impl Accounting {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Every operation seen so far, sorted by service then name.
    #[must_use]
    pub fn snapshot(&self) -> Vec<(Operation, OperationStats)> {
        self.lock().iter().map(|(op, s)| (*op, *s)).collect()
    }

    /// The counters of `operation` (all zero if it was never called).
    #[must_use]
    pub fn get(&self, operation: Operation) -> OperationStats {
        self.lock().get(&operation).copied().unwrap_or_default()
    }

    /// The counters of every operation of `service`, added up.
    #[must_use]
    pub fn service_totals(&self, service: &str) -> OperationStats {
        let mut total = OperationStats::default();
        for (_, stats) in self.lock().iter().filter(|(op, _)| op.service == service) {
            total.add(stats);
        }
        total
    }

    /// Forgets every counter (e.g. between benchmark phases).
    pub fn reset(&self) {
        self.lock().clear();
    }

    fn record(&self, operation: Operation, latency: Duration, failed: bool, attempts: u32) {
        self.lock()
            .entry(operation)
            .or_default()
            .record(latency, failed, attempts);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Operation, OperationStats>> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Layer recording every call in an [`Accounting`] registry.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccountingLayer {
    accounting: Accounting,
}

impl AccountingLayer {
    /// Records into `accounting`.
    #[must_use]
    pub(crate) fn new(accounting: Accounting) -> Self {
        Self { accounting }
    }
}

impl<S> tower::Layer<S> for AccountingLayer {
    type Service = Accounted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Accounted {
            inner,
            accounting: self.accounting.clone(),
        }
    }
}

/// Service made by [`AccountingLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Accounted<S> {
    inner: S,
    accounting: Accounting,
}

impl<S, B, ResB> tower::Service<Request<B>> for Accounted<S>
where
    S: tower::Service<Request<B>, Response = Response<ResB>, Error = CloudflareError>,
    S::Future: Send + 'static,
{
    type Response = Response<ResB>;
    type Error = CloudflareError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResB>, CloudflareError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CloudflareError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let operation = Operation::of(&request);
        let attempt = request
            .extensions()
            .get::<Attempt>()
            .cloned()
            .unwrap_or_else(|| {
                let attempt = Attempt::new();
                request.extensions_mut().insert(attempt.clone());
                attempt
            });
        let accounting = self.accounting.clone();
        let started = Instant::now();
        let call = self.inner.call(request);
        Box::pin(async move {
            let result = call.await;
            let failed = match &result {
                Ok(response) => !response.status().is_success(),
                Err(_) => true,
            };
            accounting.record(operation, started.elapsed(), failed, attempt.current());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use tower::{Layer, ServiceExt};

    fn request(op: Operation) -> Request<()> {
        let mut req = Request::get("/").body(()).unwrap();
        req.extensions_mut().insert(op);
        req
    }

    #[tokio::test(start_paused = true)]
    async fn counts_calls_failures_attempts_and_latency_per_operation() {
        let accounting = Accounting::new();
        let svc = AccountingLayer::new(accounting.clone()).layer(tower::service_fn(
            |req: Request<()>| async move {
                // Pretend two retries happened for "slow" calls.
                let op = Operation::of(&req);
                if op.name == "slow" {
                    let attempt = req.extensions().get::<Attempt>().unwrap();
                    attempt.bump();
                    attempt.bump();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    return Err(CloudflareError::Timeout {
                        after: Duration::from_millis(100),
                    });
                }
                let status = if op.name == "missing" {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::OK
                };
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok(Response::builder().status(status).body(()).unwrap())
            },
        ));
        let ok = Operation::new("d1", "query");
        let slow = Operation::new("d1", "slow");
        let missing = Operation::new("r2", "missing");
        for _ in 0..3 {
            svc.clone().oneshot(request(ok)).await.unwrap();
        }
        svc.clone().oneshot(request(slow)).await.unwrap_err();
        svc.clone().oneshot(request(missing)).await.unwrap();
        svc.clone()
            .oneshot(Request::get("/").body(()).unwrap())
            .await
            .unwrap();

        let q = accounting.get(ok);
        assert_eq!((q.calls, q.failures, q.attempts, q.retries()), (3, 0, 3, 0));
        assert_eq!(q.total_latency, Duration::from_millis(30));
        assert_eq!(q.mean_latency(), Some(Duration::from_millis(10)));
        let s = accounting.get(slow);
        assert_eq!((s.calls, s.failures, s.attempts, s.retries()), (1, 1, 3, 2));
        assert_eq!(s.max_latency, Duration::from_millis(300));
        assert_eq!(accounting.get(missing).failures, 1);
        assert_eq!(accounting.get(Operation::UNNAMED).calls, 1);
        let d1 = accounting.service_totals("d1");
        assert_eq!((d1.calls, d1.failures, d1.attempts), (4, 1, 6));
        assert_eq!(d1.max_latency, Duration::from_millis(300));
        let names: Vec<String> = accounting
            .snapshot()
            .iter()
            .map(|(op, _)| op.to_string())
            .collect();
        assert_eq!(names, ["api.request", "d1.query", "d1.slow", "r2.missing"]);
        accounting.reset();
        assert!(accounting.snapshot().is_empty());
        assert_eq!(accounting.get(ok), OperationStats::default());
        assert_eq!(OperationStats::default().mean_latency(), None);
    }
}
