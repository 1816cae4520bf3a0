//! [`AuthLayer`]: adds `Authorization: Bearer <token>` to every request.
//!
//! See <https://developers.cloudflare.com/fundamentals/api/how-to/make-api-calls/>.

use std::fmt;
use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, HeaderValue};

use crate::secret::ApiToken;

/// The token holds characters that cannot appear in an HTTP header value.
///
/// The message never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the Cloudflare API token contains characters not allowed in an HTTP header; \
     check CLOUDFLARE_API_TOKEN (no newlines or control characters)"
)]
pub struct InvalidToken;

/// Layer adding `Authorization: Bearer <token>` (marked sensitive) to every request,
/// replacing any `Authorization` header already set.
#[derive(Clone)]
pub(crate) struct AuthLayer {
    value: HeaderValue,
}

impl AuthLayer {
    /// Builds the layer from `token`.
    ///
    /// # Errors
    ///
    /// [`InvalidToken`] if the token cannot be an HTTP header value.
    pub(crate) fn new(token: &ApiToken) -> Result<Self, InvalidToken> {
        let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose()))
            .map_err(|_| InvalidToken)?;
        value.set_sensitive(true);
        Ok(Self { value })
    }
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("value", &format_args!("Bearer ***"))
            .finish()
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            value: self.value.clone(),
        }
    }
}

/// Service made by [`AuthLayer`].
#[derive(Clone)]
pub(crate) struct Auth<S> {
    inner: S,
    value: HeaderValue,
}

impl<S> fmt::Debug for Auth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("value", &format_args!("Bearer ***"))
            .finish_non_exhaustive()
    }
}

impl<S, B> tower::Service<http::Request<B>> for Auth<S>
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
        request
            .headers_mut()
            .insert(AUTHORIZATION, self.value.clone());
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer, ServiceExt, service_fn};

    const SECRET: &str = "auth-layer-secret";

    #[tokio::test]
    async fn sets_a_sensitive_bearer_header() {
        let layer = AuthLayer::new(&ApiToken::new(SECRET)).unwrap();
        assert!(!format!("{layer:?}").contains(SECRET));
        let svc = layer.layer(service_fn(|req: http::Request<()>| async move {
            let value = req.headers()[AUTHORIZATION].clone();
            Ok::<_, std::convert::Infallible>(value)
        }));
        assert!(!format!("{svc:?}").contains(SECRET));
        let request = http::Request::builder()
            .header(AUTHORIZATION, "Bearer old")
            .body(())
            .unwrap();
        let value = svc.oneshot(request).await.unwrap();
        assert_eq!(value, format!("Bearer {SECRET}").as_str());
        assert!(value.is_sensitive());
    }

    #[test]
    fn rejects_a_token_with_a_newline_without_showing_it() {
        let err = AuthLayer::new(&ApiToken::new("abc\ndef")).unwrap_err();
        assert!(!err.to_string().contains("abc"));
        assert!(err.to_string().contains("CLOUDFLARE_API_TOKEN"));
    }
}
