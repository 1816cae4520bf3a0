//! [`TimeoutLayer`]: fails a call with [`CloudflareError::Timeout`] when the whole
//! request (connect, send, response body) takes longer than a limit.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::CloudflareError;

/// Layer bounding each call of the inner service to `after` (a `tokio::time` timer).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeoutLayer {
    after: Duration,
}

impl TimeoutLayer {
    /// Calls taking longer than `after` fail with [`CloudflareError::Timeout`].
    #[must_use]
    pub(crate) fn new(after: Duration) -> Self {
        Self { after }
    }
}

impl<S> tower::Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout {
            inner,
            after: self.after,
        }
    }
}

/// Service made by [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Timeout<S> {
    inner: S,
    after: Duration,
}

impl<S, R> tower::Service<R> for Timeout<S>
where
    S: tower::Service<R, Error = CloudflareError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = CloudflareError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, CloudflareError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let after = self.after;
        let call = self.inner.call(request);
        Box::pin(async move {
            tokio::time::timeout(after, call)
                .await
                .unwrap_or(Err(CloudflareError::Timeout { after }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer, ServiceExt, service_fn};

    #[tokio::test(start_paused = true)]
    async fn slow_calls_time_out_and_fast_ones_pass() {
        let svc =
            TimeoutLayer::new(Duration::from_secs(1)).layer(service_fn(|wait: u64| async move {
                tokio::time::sleep(Duration::from_millis(wait)).await;
                Ok::<_, CloudflareError>(wait)
            }));
        assert_eq!(svc.clone().oneshot(10).await.unwrap(), 10);
        let err = svc.oneshot(5_000).await.unwrap_err();
        assert!(
            matches!(err, CloudflareError::Timeout { after } if after == Duration::from_secs(1)),
            "{err:?}"
        );
    }
}
