//! What a request is, for the layers that account, trace and guard it: the
//! [`Operation`] (service and call name) and the [`Attempt`] counter shared by the retries
//! of one call. Both travel in the request's [`http::Extensions`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// The service and call a request belongs to, e.g. `d1` / `query`.
///
/// [`crate::ServiceClient`] stores it in every request it sends; the accounting and
/// tracing layers read it. Requests without one are accounted as [`Operation::UNNAMED`].
///
/// ```
/// use cloudflare_http::Operation;
///
/// let op = Operation::new("vectorize", "query");
/// assert_eq!(op.to_string(), "vectorize.query");
/// let mut req = http::Request::get("/").body(()).unwrap();
/// req.extensions_mut().insert(op);
/// assert_eq!(Operation::of(&req), op);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Operation {
    /// The Cloudflare service, e.g. `"d1"`, `"vectorize"`, `"r2"`, `"ai"`.
    pub service: &'static str,
    /// The call, e.g. `"query"` or `"upsert"`.
    pub name: &'static str,
}

impl Operation {
    /// A request sent without naming its operation.
    pub const UNNAMED: Self = Self::new("api", "request");

    /// The operation `name` of `service`.
    #[must_use]
    pub const fn new(service: &'static str, name: &'static str) -> Self {
        Self { service, name }
    }

    /// The operation stored in `request`, or [`Operation::UNNAMED`].
    #[must_use]
    pub fn of<B>(request: &http::Request<B>) -> Self {
        request
            .extensions()
            .get::<Self>()
            .copied()
            .unwrap_or(Self::UNNAMED)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.service, self.name)
    }
}

/// The 1-based number of the attempt a request is, shared by every retry of one call
/// (clones share the counter). The accounting layer inserts it, the retry policy bumps it
/// before each retry, the tracing layer reports it.
#[derive(Debug, Clone)]
pub(crate) struct Attempt(Arc<AtomicU32>);

impl Default for Attempt {
    fn default() -> Self {
        Self::new()
    }
}

impl Attempt {
    /// A counter at attempt 1.
    #[must_use]
    pub(crate) fn new() -> Self {
        Self(Arc::new(AtomicU32::new(1)))
    }

    /// The attempt being sent (1 = the first).
    #[must_use]
    pub(crate) fn current(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// Moves to the next attempt and returns its number.
    pub(crate) fn bump(&self) -> u32 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The attempt number of `request`: its counter's value, or 1 without one.
    #[must_use]
    pub(crate) fn number_of<B>(request: &http::Request<B>) -> u32 {
        request.extensions().get::<Self>().map_or(1, Self::current)
    }
}

#[cfg(test)]
mod tests {
    use super::Attempt;

    #[test]
    fn clones_share_the_counter() {
        let attempt = Attempt::new();
        let retry = attempt.clone();
        assert_eq!(attempt.current(), 1);
        retry.bump();
        assert_eq!(attempt.current(), 2);
    }
}
