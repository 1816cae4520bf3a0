//! Tracing of every HTTP attempt with tower-http's [`TraceLayer`]: one span per attempt
//! with the [`Operation`], method, path (never headers, query or body, so neither the
//! token nor data reaches the log), attempt number, then the status and latency.
//!
//! The layer wraps the raw hyper client, below the auth layer; it logs no header, so the
//! `Authorization` header it sees is never written anywhere.

use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{
    DefaultOnBodyChunk, DefaultOnEos, DefaultOnFailure, DefaultOnRequest, DefaultOnResponse,
    MakeSpan, TraceLayer,
};
use tracing::{Level, Span};

use crate::operation::{Attempt, Operation};

/// Target of the spans and events, for filters such as `RUST_LOG=cloudflare_http=debug`.
pub(crate) const TRACE_TARGET: &str = "cloudflare_http";

/// Makes the span of one attempt: `cloudflare{op=d1.query method=POST path=... attempt=1}`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MakeCloudflareSpan;

impl<B> MakeSpan<B> for MakeCloudflareSpan {
    fn make_span(&mut self, request: &http::Request<B>) -> Span {
        tracing::debug_span!(
            target: TRACE_TARGET,
            "cloudflare",
            op = %Operation::of(request),
            method = %request.method(),
            path = request.uri().path(),
            attempt = Attempt::number_of(request),
        )
    }
}

/// The tracing layer of the client stack.
pub(crate) type CloudflareTraceLayer = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    MakeCloudflareSpan,
    DefaultOnRequest,
    DefaultOnResponse,
    DefaultOnBodyChunk,
    DefaultOnEos,
    DefaultOnFailure,
>;

/// The layer: request start and response (status, latency in µs) at DEBUG, 5xx and
/// connection failures at WARN.
#[must_use]
pub(crate) fn trace_layer() -> CloudflareTraceLayer {
    TraceLayer::new_for_http()
        .make_span_with(MakeCloudflareSpan)
        .on_request(DefaultOnRequest::new().level(Level::DEBUG))
        .on_response(
            DefaultOnResponse::new()
                .level(Level::DEBUG)
                .latency_unit(tower_http::LatencyUnit::Micros),
        )
        .on_failure(
            DefaultOnFailure::new()
                .level(Level::WARN)
                .latency_unit(tower_http::LatencyUnit::Micros),
        )
}
