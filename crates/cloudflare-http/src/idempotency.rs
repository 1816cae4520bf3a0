//! Which requests may be retried: the [`Idempotent`] marker and [`is_idempotent`].

use http::{Method, Request};

/// Whether a request may be sent twice without harm. Request builders store it in the
/// request's [`http::Extensions`] to override the per-method default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Idempotent {
    /// Safe to retry (e.g. a POST that upserts by key).
    Yes,
    /// Never retry.
    No,
}

impl Idempotent {
    /// The default for a method: GET, HEAD, PUT, DELETE, OPTIONS and TRACE are idempotent
    /// (RFC 9110 §9.2.2, <https://www.rfc-editor.org/rfc/rfc9110#name-idempotent-methods>);
    /// POST, PATCH and others are not.
    #[must_use]
    pub(crate) fn for_method(method: &Method) -> Self {
        if [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
            Method::TRACE,
        ]
        .contains(method)
        {
            Self::Yes
        } else {
            Self::No
        }
    }
}

/// Whether `request` may be retried: its [`Idempotent`] marker if it has one,
/// else [`Idempotent::for_method`].
#[must_use]
pub fn is_idempotent<B>(request: &Request<B>) -> bool {
    let marker = request
        .extensions()
        .get::<Idempotent>()
        .copied()
        .unwrap_or_else(|| Idempotent::for_method(request.method()));
    marker == Idempotent::Yes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_overrides_post() {
        let mut req = Request::post("https://example.invalid/").body(()).unwrap();
        assert!(!is_idempotent(&req));
        req.extensions_mut().insert(Idempotent::Yes);
        assert!(is_idempotent(&req));
    }

    fn request(method: Method, marker: Option<Idempotent>) -> Request<()> {
        let mut req = Request::builder().method(method).uri("/").body(()).unwrap();
        if let Some(m) = marker {
            req.extensions_mut().insert(m);
        }
        req
    }

    #[test]
    fn method_defaults() {
        for m in [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ] {
            assert!(is_idempotent(&request(m.clone(), None)), "{m}");
        }
        for m in [Method::POST, Method::PATCH] {
            assert!(!is_idempotent(&request(m.clone(), None)), "{m}");
        }
    }

    #[test]
    fn marker_overrides_the_method() {
        assert!(is_idempotent(&request(Method::POST, Some(Idempotent::Yes))));
        assert!(!is_idempotent(&request(Method::GET, Some(Idempotent::No))));
        assert!(!is_idempotent(&request(Method::POST, Some(Idempotent::No))));
    }
}
