//! Helpers the per-service clients use to build requests: bodies, path segments and the
//! idempotency marker, and [`check_status`] for endpoints whose success body is not an
//! envelope (an R2 object).

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::Full;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::client::{HttpRequest, HttpResponse};
use crate::envelope::decode;
use crate::error::CloudflareError;
use crate::idempotency::Idempotent;

/// Characters escaped in one path segment: everything but RFC 3986 unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`), so `/`, `?`, `#`, `%` and spaces in ids and keys stay inside
/// their segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `value` as one URL path segment (an index name, an object key).
///
/// ```
/// assert_eq!(cloudflare_http::encode_segment("notes/2024 q1.md"), "notes%2F2024%20q1.md");
/// assert_eq!(cloudflare_http::encode_segment("plain-id_1.x~"), "plain-id_1.x~");
/// ```
#[must_use]
pub fn encode_segment(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

/// A request without a body to `path_and_query` (the API path, e.g.
/// `/accounts/{id}/vectorize/v2/indexes`).
///
/// # Errors
///
/// [`CloudflareError::InvalidRequest`] if `path_and_query` is not a valid URI path.
pub fn empty_request(method: Method, path_and_query: &str) -> Result<HttpRequest, CloudflareError> {
    body_request(method, path_and_query, None, Bytes::new())
}

/// A request with a JSON body.
///
/// # Errors
///
/// [`CloudflareError::InvalidRequest`] if the path is invalid or `body` cannot be
/// serialised (e.g. a map with non-string keys).
pub fn json_request<T: serde::Serialize + ?Sized>(
    method: Method,
    path_and_query: &str,
    body: &T,
) -> Result<HttpRequest, CloudflareError> {
    let bytes = serde_json::to_vec(body).map_err(|e| CloudflareError::InvalidRequest {
        reason: format!("the JSON body could not be serialised: {e}"),
    })?;
    body_request(
        method,
        path_and_query,
        Some("application/json"),
        Bytes::from(bytes),
    )
}

/// A request with `body` sent as `content_type` (e.g. `application/x-ndjson`), or
/// without a `Content-Type` header when `content_type` is `None`.
///
/// # Errors
///
/// [`CloudflareError::InvalidRequest`] if the path or the content type is invalid.
pub fn body_request(
    method: Method,
    path_and_query: &str,
    content_type: Option<&str>,
    body: Bytes,
) -> Result<HttpRequest, CloudflareError> {
    let mut builder = Request::builder().method(method).uri(path_and_query);
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    builder
        .body(Full::new(body))
        .map_err(|e| CloudflareError::InvalidRequest {
            reason: format!("invalid request line or header for {path_and_query:?}: {e}"),
        })
}

/// Marks `request` as safe to retry (e.g. a Vectorize upsert or an idempotent SQL
/// statement sent with POST).
#[must_use]
pub fn idempotent(mut request: HttpRequest) -> HttpRequest {
    request.extensions_mut().insert(Idempotent::Yes);
    request
}

/// Marks `request` as never to be retried, whatever its method.
#[must_use]
pub fn not_idempotent(mut request: HttpRequest) -> HttpRequest {
    request.extensions_mut().insert(Idempotent::No);
    request
}

/// Passes a 2xx response through; turns any other into the [`CloudflareError`] its
/// envelope describes (for endpoints such as an R2 object GET, whose success body is the
/// raw object but whose errors are envelopes).
///
/// # Errors
///
/// The decoded error: [`CloudflareError::Api`], or [`CloudflareError::Decode`] when the
/// error body is not an envelope.
pub fn check_status(response: HttpResponse) -> Result<HttpResponse, CloudflareError> {
    if response.status().is_success() {
        return Ok(response);
    }
    match decode::<serde_json::Value>(response.status(), response.headers(), response.body()) {
        Err(e) => Err(e),
        // A non-2xx status with "success": true is still a failure.
        Ok(_) => Err(CloudflareError::Api {
            status: response.status(),
            errors: Vec::new(),
            retry_after: crate::error::retry_after_from_headers(
                response.headers(),
                std::time::SystemTime::now(),
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use proptest::prelude::*;

    #[test]
    fn builders_set_method_path_type_and_marker() {
        let req = json_request(Method::POST, "/a/b?x=1", &serde_json::json!({"k": 1})).unwrap();
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri().path(), "/a/b");
        assert_eq!(req.headers()[header::CONTENT_TYPE], "application/json");
        assert!(!crate::is_idempotent(&req));
        assert!(crate::is_idempotent(&idempotent(req)));
        let req = not_idempotent(empty_request(Method::GET, "/x").unwrap());
        assert!(!crate::is_idempotent(&req));
        assert!(req.headers().get(header::CONTENT_TYPE).is_none());
        let err = empty_request(Method::GET, "/bad path").unwrap_err();
        assert!(
            matches!(err, CloudflareError::InvalidRequest { .. }),
            "{err}"
        );
    }

    #[test]
    fn check_status_decodes_error_envelopes() {
        let ok = http::Response::new(Bytes::from_static(b"raw object bytes"));
        assert_eq!(
            check_status(ok).unwrap().body().as_ref(),
            b"raw object bytes"
        );
        let missing = http::Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Bytes::from_static(
                br#"{"success":false,"errors":[{"code":10007,"message":"The specified key does not exist."}],"result":null}"#,
            ))
            .unwrap();
        let err = check_status(missing).unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
        assert_eq!(err.errors()[0].code, 10007);
        let odd = http::Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Bytes::from_static(
                br#"{"success":true,"errors":[],"result":null}"#,
            ))
            .unwrap();
        assert_eq!(
            check_status(odd).unwrap_err().status(),
            Some(StatusCode::BAD_GATEWAY)
        );
    }

    proptest! {
        #[test]
        fn encoded_segments_round_trip_and_stay_one_segment(value in "\\PC{0,40}") {
            let encoded = encode_segment(&value);
            prop_assert!(!encoded.contains('/'));
            prop_assert!(!encoded.contains('?'));
            let path = format!("/objects/{encoded}");
            prop_assert!(path.parse::<http::uri::PathAndQuery>().is_ok());
            let decoded = percent_encoding::percent_decode_str(&encoded).decode_utf8().unwrap();
            prop_assert_eq!(decoded, value);
        }
    }
}
