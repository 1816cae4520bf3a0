//! Request counters: how many requests each route received and how many answers of each
//! status the emulator sent, so tests can assert "exactly one retry" or "no request reached
//! D1" without instrumenting the client.
//!
//! Routes are keyed by method and route pattern relative to the account, e.g.
//! `POST /d1/database/{database_id}/query` (the `/client/v4/accounts/{account_id}` prefix is
//! dropped; routes outside an account keep their path after `/client/v4`, e.g.
//! `GET /user/tokens/verify`). A request no route matched counts as `GET (no route)`.
//!
//! The counters middleware is the outermost layer, so it sees every answer: faults, auth
//! errors, rate limiting and the services' own. A connection reset (fault injection) counts
//! in [`CountersSnapshot::resets`], not as a status. The control endpoints under
//! `/__emulator` are not counted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;

/// Marks a response the fault injector turned into a connection reset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResetMarker;

/// A shared, cloneable handle on the emulator's request counters.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    inner: Arc<Mutex<CountersSnapshot>>,
}

/// The counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CountersSnapshot {
    /// Every request counted.
    pub total: u64,
    /// Requests per `METHOD /route/{pattern}`.
    pub routes: BTreeMap<String, u64>,
    /// Answers per HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Connections the fault injector reset instead of answering.
    pub resets: u64,
}

impl Counters {
    /// New, all zero.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, CountersSnapshot> {
        // A poisoned lock only means a panic elsewhere; the counts are still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of every count.
    #[must_use]
    pub fn snapshot(&self) -> CountersSnapshot {
        self.lock().clone()
    }

    /// Requests counted for `route` (`"POST /d1/database/{database_id}/query"`).
    #[must_use]
    pub fn route(&self, route: &str) -> u64 {
        self.lock().routes.get(route).copied().unwrap_or(0)
    }

    /// Answers sent with `status`.
    #[must_use]
    pub fn status(&self, status: u16) -> u64 {
        self.lock().statuses.get(&status).copied().unwrap_or(0)
    }

    /// Every request counted.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.lock().total
    }

    /// Connections reset by fault injection.
    #[must_use]
    pub fn resets(&self) -> u64 {
        self.lock().resets
    }

    /// Sets every count back to zero.
    pub fn reset(&self) {
        *self.lock() = CountersSnapshot::default();
    }

    pub(crate) fn record_request(&self, route: String) {
        let mut counts = self.lock();
        counts.total += 1;
        *counts.routes.entry(route).or_default() += 1;
    }

    pub(crate) fn record_status(&self, status: u16) {
        *self.lock().statuses.entry(status).or_default() += 1;
    }

    pub(crate) fn record_reset(&self) {
        self.lock().resets += 1;
    }
}

/// The route key of a request: method and route pattern relative to the account.
pub(crate) fn route_key(method: &http::Method, pattern: Option<&str>) -> String {
    match pattern {
        Some(pattern) => format!("{method} {}", relative_pattern(pattern)),
        None => format!("{method} (no route)"),
    }
}

/// `/client/v4/accounts/{account_id}/d1/…` → `/d1/…`; `/client/v4/user/…` → `/user/…`.
fn relative_pattern(pattern: &str) -> &str {
    let tail = pattern.strip_prefix("/client/v4").unwrap_or(pattern);
    if let Some(rest) = tail.strip_prefix("/accounts/{")
        && let Some(end) = rest.find('}')
    {
        let after = &rest[end + 1..];
        return if after.is_empty() { "/" } else { after };
    }
    tail
}

/// The counting middleware (outermost).
pub(crate) async fn middleware(
    State(counters): State<Counters>,
    request: Request,
    next: Next,
) -> Response {
    let pattern = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    counters.record_request(route_key(request.method(), pattern.as_deref()));
    let response = next.run(request).await;
    if response.extensions().get::<ResetMarker>().is_some() {
        counters.record_reset();
    } else {
        counters.record_status(response.status().as_u16());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_keys_drop_the_account_prefix() {
        let post = http::Method::POST;
        assert_eq!(
            route_key(
                &post,
                Some("/client/v4/accounts/{account_id}/d1/database/{database_id}/query")
            ),
            "POST /d1/database/{database_id}/query"
        );
        assert_eq!(
            route_key(&http::Method::GET, Some("/client/v4/user/tokens/verify")),
            "GET /user/tokens/verify"
        );
        assert_eq!(
            route_key(&http::Method::GET, Some("/client/v4/accounts/{a}")),
            "GET /"
        );
        assert_eq!(route_key(&post, None), "POST (no route)");
    }

    #[test]
    fn counts_and_reset() {
        let c = Counters::new();
        c.record_request("GET /x".into());
        c.record_request("GET /x".into());
        c.record_status(200);
        c.record_reset();
        assert_eq!(c.route("GET /x"), 2);
        assert_eq!(c.status(200), 1);
        assert_eq!(c.total(), 2);
        assert_eq!(c.resets(), 1);
        c.reset();
        assert_eq!(c.snapshot(), CountersSnapshot::default());
    }
}
