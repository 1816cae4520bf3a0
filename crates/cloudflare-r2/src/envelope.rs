//! Decoding of R2's JSON answers.
//!
//! R2 answers with Cloudflare's envelope, with two differences from the generic one that
//! [`cloudflare_http::decode`] reads: its `messages` are plain strings (schema
//! `r2_messages`), and a list's `result_info` carries `delimited` and `is_truncated`. So
//! this module decodes the envelope itself, with the same error variants as the generic
//! decoder.

use std::time::SystemTime;

use cloudflare_http::{ApiMessage, CloudflareError, HttpResponse, retry_after_from_headers};
use http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::model::ListResultInfo;

/// R2's "no such bucket" error code.
///
/// See <https://developers.cloudflare.com/r2/api/error-codes/>.
pub(crate) const CODE_NO_SUCH_BUCKET: i64 = 10006;

/// R2's "no such key" error code.
///
/// See <https://developers.cloudflare.com/r2/api/error-codes/>.
pub(crate) const CODE_NO_SUCH_KEY: i64 = 10007;

/// The envelope, `result` still undecoded; `messages` is ignored (strings in R2).
#[derive(Deserialize)]
struct RawEnvelope {
    success: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    errors: Vec<ApiMessage>,
    #[serde(default)]
    result: serde_json::Value,
    #[serde(default)]
    result_info: Option<serde_json::Value>,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A decoded R2 success: the result and a list's `result_info`.
#[derive(Debug)]
pub(crate) struct R2Envelope<T> {
    pub(crate) result: T,
    pub(crate) result_info: Option<ListResultInfo>,
}

fn decode_error(response: &HttpResponse, expected: String, detail: String) -> CloudflareError {
    CloudflareError::Decode {
        status: response.status(),
        expected,
        detail,
        body: cloudflare_http::body_excerpt(response.body()),
        retry_after: retry_after_from_headers(response.headers(), SystemTime::now()),
    }
}

/// The error a non-2xx response stands for: [`CloudflareError::Api`] with the envelope's
/// error codes, or, when the body is not an envelope, what
/// [`cloudflare_http::check_status`] makes of it ([`CloudflareError::Decode`]).
pub(crate) fn error_of(response: HttpResponse) -> CloudflareError {
    let status = response.status();
    let retry_after = retry_after_from_headers(response.headers(), SystemTime::now());
    if let Ok(raw) = serde_json::from_slice::<RawEnvelope>(response.body()) {
        return CloudflareError::Api {
            status,
            errors: raw.errors,
            retry_after,
        };
    }
    match cloudflare_http::check_status(response) {
        Err(e) => e,
        // Not reached for a non-2xx status; keep the status anyway.
        Ok(_) => CloudflareError::Api {
            status,
            errors: Vec::new(),
            retry_after,
        },
    }
}

/// The error codes of a non-2xx response, if its body is an envelope.
pub(crate) fn error_codes(response: &HttpResponse) -> Vec<i64> {
    serde_json::from_slice::<RawEnvelope>(response.body())
        .map(|raw| raw.errors.iter().map(|e| e.code).collect())
        .unwrap_or_default()
}

/// Decodes a response into its `result` of type `T` (and `result_info`).
///
/// # Errors
///
/// Non-2xx → [`error_of`]; `"success": false` → [`CloudflareError::Unsuccessful`];
/// not an envelope, or a `result` not shaped like `T` → [`CloudflareError::Decode`].
pub(crate) fn decode<T: DeserializeOwned>(
    response: HttpResponse,
) -> Result<R2Envelope<T>, CloudflareError> {
    if !response.status().is_success() {
        return Err(error_of(response));
    }
    let raw: RawEnvelope = match serde_json::from_slice(response.body()) {
        Ok(raw) => raw,
        Err(e) => {
            let detail = if response.body().is_empty() {
                "the body is empty".to_owned()
            } else {
                e.to_string()
            };
            return Err(decode_error(
                &response,
                "an R2 envelope (a JSON object with `success`, `errors` and `result`)".to_owned(),
                detail,
            ));
        }
    };
    if !raw.success {
        return Err(CloudflareError::Unsuccessful {
            status: response.status(),
            errors: raw.errors,
        });
    }
    let result = T::deserialize(&raw.result).map_err(|e| {
        decode_error(
            &response,
            format!("a `result` of type {}", std::any::type_name::<T>()),
            e.to_string(),
        )
    })?;
    let result_info = match raw.result_info {
        None | Some(serde_json::Value::Null) => None,
        Some(info) => Some(ListResultInfo::deserialize(&info).map_err(|e| {
            decode_error(
                &response,
                "a list `result_info` (cursor, delimited, is_truncated, per_page)".to_owned(),
                e.to_string(),
            )
        })?),
    };
    Ok(R2Envelope {
        result,
        result_info,
    })
}

/// Whether a 404 is R2's "no such bucket" (a configuration problem, not a missing object).
pub(crate) fn is_no_such_bucket(codes: &[i64]) -> bool {
    codes.contains(&CODE_NO_SUCH_BUCKET)
}

/// Whether a status is 404.
pub(crate) fn is_not_found(status: StatusCode) -> bool {
    status == StatusCode::NOT_FOUND
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ObjectInfo, PutObjectResult};
    use bytes::Bytes;
    use proptest::prelude::*;
    use serde_json::json;

    fn response(status: u16, body: impl Into<Bytes>) -> HttpResponse {
        http::Response::builder()
            .status(status)
            .header("retry-after", "4")
            .body(body.into())
            .unwrap()
    }

    fn json_response(status: u16, body: &serde_json::Value) -> HttpResponse {
        response(status, body.to_string())
    }

    #[test]
    fn decodes_a_list_with_string_messages_and_r2_result_info() {
        // The shape Prism serves from the spec: messages are strings.
        let body = json!({
            "errors": [{"code": 1000, "message": "string", "documentation_url": "string",
                        "source": {"pointer": "string"}}],
            "messages": ["string"],
            "result": [{"key": "path/to/my-object.txt", "size": 1048576}],
            "result_info": {"cursor": "eyJr", "delimited": ["path/to/"], "is_truncated": true, "per_page": 20},
            "success": true
        });
        let env: R2Envelope<Vec<ObjectInfo>> = decode(json_response(200, &body)).unwrap();
        assert_eq!(env.result[0].key, "path/to/my-object.txt");
        let info = env.result_info.unwrap();
        assert_eq!(info.cursor.as_deref(), Some("eyJr"));
        assert_eq!(info.delimited, ["path/to/"]);
        assert_eq!(info.is_truncated, Some(true));
    }

    #[test]
    fn error_envelopes_become_api_errors() {
        let body = json!({"success": false, "errors": [{"code": 10007, "message": "The specified key does not exist."}],
                          "messages": ["x"], "result": null});
        let err = decode::<PutObjectResult>(json_response(404, &body)).unwrap_err();
        let CloudflareError::Api {
            status,
            errors,
            retry_after,
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(status.as_u16(), 404);
        assert_eq!(errors[0].code, CODE_NO_SUCH_KEY);
        assert_eq!(retry_after.map(|d| d.as_secs()), Some(4));
        assert_eq!(error_codes(&json_response(404, &body)), [CODE_NO_SUCH_KEY]);
        assert!(is_no_such_bucket(&[CODE_NO_SUCH_BUCKET]));
        assert!(!is_no_such_bucket(&[CODE_NO_SUCH_KEY]));
    }

    #[test]
    fn non_envelope_errors_and_bodies_are_decode_errors() {
        let err = decode::<PutObjectResult>(response(502, "<html>bad gateway</html>")).unwrap_err();
        assert!(matches!(err, CloudflareError::Decode { .. }), "{err:?}");
        assert!(err.is_retryable());
        assert!(error_codes(&response(502, "<html>")).is_empty());
        let err = decode::<PutObjectResult>(response(200, "")).unwrap_err();
        assert!(err.to_string().contains("the body is empty"), "{err}");
        let long = "x".repeat(1000);
        let CloudflareError::Decode { body, .. } =
            decode::<PutObjectResult>(response(200, long)).unwrap_err()
        else {
            panic!("expected a decode error");
        };
        assert_eq!(
            body.chars().count(),
            cloudflare_http::error::BODY_EXCERPT_CHARS + 1
        );
    }

    #[test]
    fn unsuccessful_and_wrong_shapes_are_reported() {
        let body = json!({"success": false, "errors": [{"code": 7003, "message": "No route"}]});
        let err = decode::<PutObjectResult>(json_response(200, &body)).unwrap_err();
        assert!(
            matches!(err, CloudflareError::Unsuccessful { .. }),
            "{err:?}"
        );
        let body = json!({"success": true, "errors": [], "result": [1]});
        let err = decode::<PutObjectResult>(json_response(200, &body)).unwrap_err();
        assert!(err.to_string().contains("PutObjectResult"), "{err}");
        let body =
            json!({"success": true, "errors": [], "result": [], "result_info": {"per_page": "x"}});
        let err = decode::<Vec<ObjectInfo>>(json_response(200, &body)).unwrap_err();
        assert!(err.to_string().contains("result_info"), "{err}");
        let body = json!({"success": true, "errors": null, "result": [], "result_info": null});
        let env = decode::<Vec<ObjectInfo>>(json_response(200, &body)).unwrap();
        assert!(env.result_info.is_none());
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(
            status in 200u16..600,
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let _ = decode::<Vec<ObjectInfo>>(response(status, body.clone()));
            let _ = error_codes(&response(status, body));
        }
    }
}
