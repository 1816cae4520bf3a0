//! The decoder for Cloudflare's response envelope.
//!
//! Every Cloudflare v4 API response has the shape
//! `{"success": bool, "errors": [{"code", "message"}], "messages": [...], "result": ..., "result_info": {...}}`.
//! See <https://developers.cloudflare.com/fundamentals/api/how-to/make-api-calls/>.

use std::time::SystemTime;

use http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{ApiMessage, CloudflareError, body_excerpt, retry_after_from_headers};

/// What [`decode`] expects when the body is not an envelope at all.
const EXPECTED_ENVELOPE: &str =
    "a Cloudflare envelope (a JSON object with `success`, `errors` and `result`)";

/// Pagination data of a list response. Every field is optional: endpoints send
/// page-based (`page`, `per_page`, `total_count`) or cursor-based (`cursor`) info.
///
/// See <https://developers.cloudflare.com/fundamentals/api/how-to/make-api-calls/#pagination>.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultInfo {
    /// Current page (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u64>,
    /// Items per page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_page: Option<u64>,
    /// Items on this page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Items across all pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_count: Option<u64>,
    /// Cursor for the next page (cursor-paginated endpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A successful Cloudflare response.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<T> {
    /// The decoded `result`.
    pub result: T,
    /// The `result_info` (pagination), if sent.
    pub result_info: Option<ResultInfo>,
    /// Informational `messages`, if any.
    pub messages: Vec<ApiMessage>,
}

/// The envelope as sent, `result` still undecoded.
#[derive(Deserialize)]
struct RawEnvelope {
    success: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    errors: Vec<ApiMessage>,
    #[serde(default, deserialize_with = "null_as_default")]
    messages: Vec<ApiMessage>,
    #[serde(default)]
    result: serde_json::Value,
    #[serde(default)]
    result_info: Option<ResultInfo>,
}

/// Cloudflare sometimes sends `null` instead of an empty list.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Decodes a Cloudflare response into its `result` of type `T`, or the error it reports.
///
/// - non-2xx with an envelope → [`CloudflareError::Api`] (status, codes, `retry-after`);
/// - 2xx with `"success": false` → [`CloudflareError::Unsuccessful`];
/// - a body that is not an envelope, or a `result` not shaped like `T` → [`CloudflareError::Decode`].
///
/// # Errors
///
/// As above. Never panics, whatever the bytes.
pub(crate) fn decode<T: DeserializeOwned>(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Envelope<T>, CloudflareError> {
    decode_at(status, headers, body, SystemTime::now())
}

/// [`decode`] with an explicit clock for HTTP-date `retry-after` values.
///
/// # Errors
///
/// See [`decode`].
pub fn decode_at<T: DeserializeOwned>(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<Envelope<T>, CloudflareError> {
    let retry_after = retry_after_from_headers(headers, now);
    let raw: RawEnvelope = match serde_json::from_slice(body) {
        Ok(raw) => raw,
        Err(e) => {
            return Err(CloudflareError::Decode {
                status,
                expected: EXPECTED_ENVELOPE.to_owned(),
                detail: if body.is_empty() {
                    "the body is empty".to_owned()
                } else {
                    e.to_string()
                },
                body: body_excerpt(body),
                retry_after,
            });
        }
    };
    if !status.is_success() {
        return Err(CloudflareError::Api {
            status,
            errors: raw.errors,
            retry_after,
        });
    }
    if !raw.success {
        return Err(CloudflareError::Unsuccessful {
            status,
            errors: raw.errors,
        });
    }
    match T::deserialize(raw.result) {
        Ok(result) => Ok(Envelope {
            result,
            result_info: raw.result_info,
            messages: raw.messages,
        }),
        Err(e) => Err(CloudflareError::Decode {
            status,
            expected: format!("`result` of type {}", std::any::type_name::<T>()),
            detail: e.to_string(),
            body: body_excerpt(body),
            retry_after,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::time::Duration;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Item {
        id: String,
        n: i64,
        tags: Vec<String>,
    }

    fn ok<T: DeserializeOwned>(body: &serde_json::Value) -> Result<Envelope<T>, CloudflareError> {
        decode(
            StatusCode::OK,
            &HeaderMap::new(),
            body.to_string().as_bytes(),
        )
    }

    #[test]
    fn decodes_a_success() {
        let body = json!({
            "success": true, "errors": [], "messages": [{"code": 1, "message": "hi"}],
            "result": {"id": "a", "n": 1, "tags": ["x"]},
            "result_info": {"page": 1, "per_page": 20, "count": 1, "total_count": 1}
        });
        let env: Envelope<Item> = ok(&body).unwrap();
        assert_eq!(env.result.id, "a");
        assert_eq!(env.result_info.unwrap().total_count, Some(1));
        assert_eq!(env.messages[0].message, "hi");
    }

    #[test]
    fn null_lists_and_missing_result_are_accepted() {
        let body = json!({"success": true, "errors": null, "messages": null});
        let env: Envelope<Option<Item>> = ok(&body).unwrap();
        assert_eq!(env.result, None);
        assert_eq!(env.result_info, None);
    }

    #[test]
    fn api_error_carries_status_codes_and_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, "3".parse().unwrap());
        let body = json!({"success": false, "errors": [{"code": 10000, "message": "Authentication error"}], "result": null});
        let err = decode::<Item>(StatusCode::FORBIDDEN, &headers, body.to_string().as_bytes())
            .unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::FORBIDDEN));
        assert_eq!(err.errors()[0].code, 10000);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        assert!(err.to_string().contains("CLOUDFLARE_API_TOKEN"), "{err}");
        assert!(!err.is_retryable());
    }

    #[test]
    fn success_false_with_200_is_unsuccessful() {
        let body = json!({"success": false, "errors": [{"code": 7003, "message": "No route"}]});
        let err = ok::<Item>(&body).unwrap_err();
        assert!(
            matches!(err, CloudflareError::Unsuccessful { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("code 7003: No route"), "{err}");
    }

    #[test]
    fn html_error_page_is_a_retryable_decode_error() {
        let body = format!("<html>{}</html>", "bad gateway ".repeat(100));
        let err = decode::<Item>(StatusCode::BAD_GATEWAY, &HeaderMap::new(), body.as_bytes())
            .unwrap_err();
        let CloudflareError::Decode {
            body: excerpt,
            expected,
            ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert!(excerpt.chars().count() <= crate::error::BODY_EXCERPT_CHARS + 1);
        assert!(expected.contains("envelope"));
        assert!(err.is_retryable() && err.counts_for_breaker());
        assert!(err.to_string().contains("retry later"), "{err}");
    }

    #[test]
    fn wrong_result_shape_names_the_type() {
        let body = json!({"success": true, "errors": [], "result": [1, 2]});
        let err = ok::<Item>(&body).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("Item"), "{text}");
        assert!(!err.is_retryable());
    }

    #[test]
    fn empty_body_says_so() {
        let err = decode::<Item>(StatusCode::OK, &HeaderMap::new(), b"").unwrap_err();
        assert!(err.to_string().contains("the body is empty"), "{err}");
    }

    fn item() -> impl Strategy<Value = Item> {
        (
            ".{0,12}",
            any::<i64>(),
            proptest::collection::vec(".{0,6}", 0..3),
        )
            .prop_map(|(id, n, tags)| Item { id, n, tags })
    }

    fn result_info() -> impl Strategy<Value = ResultInfo> {
        (
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
            proptest::option::of(".{0,16}"),
        )
            .prop_map(|(page, per_page, count, total_count, cursor)| ResultInfo {
                page,
                per_page,
                count,
                total_count,
                cursor,
            })
    }

    fn message() -> impl Strategy<Value = ApiMessage> {
        (any::<i64>(), ".{0,20}").prop_map(|(code, message)| ApiMessage { code, message })
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(
            status in 100u16..600,
            body in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let status = StatusCode::from_u16(status).unwrap();
            let _ = decode::<serde_json::Value>(status, &HeaderMap::new(), &body);
            let _ = decode::<Item>(status, &HeaderMap::new(), &body);
        }

        #[test]
        fn round_trips_valid_envelopes(
            items in proptest::collection::vec(item(), 0..4),
            info in proptest::option::of(result_info()),
            messages in proptest::collection::vec(message(), 0..3),
        ) {
            let body = json!({
                "success": true, "errors": [], "messages": messages,
                "result": items, "result_info": info,
            });
            let env: Envelope<Vec<Item>> = ok(&body).unwrap();
            prop_assert_eq!(env, Envelope { result: items, result_info: info, messages });
        }

        #[test]
        fn round_trips_error_envelopes(
            status in 400u16..600,
            errors in proptest::collection::vec(message(), 0..4),
        ) {
            let status = StatusCode::from_u16(status).unwrap();
            let body = json!({"success": false, "errors": errors, "messages": [], "result": null});
            let err = decode::<Item>(status, &HeaderMap::new(), body.to_string().as_bytes()).unwrap_err();
            prop_assert_eq!(err.status(), Some(status));
            prop_assert_eq!(err.errors(), errors.as_slice());
        }
    }
}
