//! [`BaseUriLayer`]: sends every request to the configured base URL.
//!
//! Requests carry only the API path (e.g. `/accounts/{id}/d1/database`); the layer takes
//! scheme, host and path prefix from the base URL (`https://api.cloudflare.com/client/v4`
//! by default, or a local emulator such as `http://127.0.0.1:8787/client/v4`).

use std::task::{Context, Poll};

use http::Uri;
use http::uri::PathAndQuery;

/// Why a base URL was rejected by [`BaseUriLayer::new`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid Cloudflare base URL {url:?}: {reason}; use an absolute http(s) URL such as \
     https://api.cloudflare.com/client/v4"
)]
pub struct InvalidBaseUrl {
    /// The rejected URL.
    pub url: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Layer rewriting each request URI to `base_url` + the request's path and query.
///
/// Only the request's path and query are kept; its scheme and host (if any) are replaced,
/// so the token is only ever sent to the base URL's host.
#[derive(Debug, Clone)]
pub(crate) struct BaseUriLayer {
    base: Uri,
}

impl BaseUriLayer {
    /// Builds the layer.
    ///
    /// # Errors
    ///
    /// [`InvalidBaseUrl`] unless `base` is an absolute `http` or `https` URL without a query.
    pub(crate) fn new(base: Uri) -> Result<Self, InvalidBaseUrl> {
        let reject = |reason| InvalidBaseUrl {
            url: base.to_string(),
            reason,
        };
        match base.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(reject("the scheme must be http or https")),
        }
        if base.authority().is_none() {
            return Err(reject("the host is missing"));
        }
        if base.query().is_some() {
            return Err(reject("a query string is not allowed"));
        }
        Ok(Self { base })
    }

    /// `base` + `request`'s path and query.
    fn join(&self, request: &Uri) -> Uri {
        let prefix = self.base.path().trim_end_matches('/');
        let tail = request.path_and_query().map_or("/", PathAndQuery::as_str);
        let sep = if tail.starts_with('/') { "" } else { "/" };
        let mut parts = self.base.clone().into_parts();
        parts.path_and_query = PathAndQuery::try_from(format!("{prefix}{sep}{tail}")).ok();
        // Both halves were valid URI parts, so the join is too.
        Uri::from_parts(parts).unwrap_or_else(|_| self.base.clone())
    }
}

impl<S> tower::Layer<S> for BaseUriLayer {
    type Service = BaseUri<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BaseUri {
            inner,
            layer: self.clone(),
        }
    }
}

/// Service made by [`BaseUriLayer`].
#[derive(Debug, Clone)]
pub(crate) struct BaseUri<S> {
    inner: S,
    layer: BaseUriLayer,
}

impl<S, B> tower::Service<http::Request<B>> for BaseUri<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        *request.uri_mut() = self.layer.join(request.uri());
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(base: &str, path: &str) -> String {
        BaseUriLayer::new(base.parse().unwrap())
            .unwrap()
            .join(&path.parse().unwrap())
            .to_string()
    }

    #[test]
    fn prefixes_the_base_path() {
        assert_eq!(
            join(
                "https://api.cloudflare.com/client/v4",
                "/accounts/a/d1?page=2"
            ),
            "https://api.cloudflare.com/client/v4/accounts/a/d1?page=2"
        );
        assert_eq!(
            join("http://127.0.0.1:8787/client/v4/", "/accounts"),
            "http://127.0.0.1:8787/client/v4/accounts"
        );
        assert_eq!(join("http://127.0.0.1:1", "/x"), "http://127.0.0.1:1/x");
        assert_eq!(
            join(
                "https://api.cloudflare.com/client/v4",
                "http://evil.example/steal"
            ),
            "https://api.cloudflare.com/client/v4/steal"
        );
    }

    #[test]
    fn rejects_relative_or_odd_urls() {
        for url in ["/client/v4", "ftp://host/x", "https://host/x?a=1"] {
            let err = BaseUriLayer::new(url.parse().unwrap()).unwrap_err();
            assert!(
                err.to_string().contains("invalid Cloudflare base URL"),
                "{err}"
            );
        }
    }
}
