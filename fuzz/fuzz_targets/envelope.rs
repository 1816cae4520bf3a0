//! The Cloudflare envelope decoder (`cloudflare_http::decode_at`): any status, any
//! `retry-after`, any body bytes, decoded as several result types.
//!
//! Invariants: nothing panics; `Ok` only for a 2xx status; a non-2xx status is always an
//! error carrying that status; a `Decode` error's body excerpt is bounded; the error's
//! `Display`/`Debug` and classification methods work on whatever was decoded.
#![no_main]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use cloudflare_http::error::BODY_EXCERPT_CHARS;
use cloudflare_http::{CloudflareError, decode_at, retry_after_from_headers};
use http::{HeaderMap, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A seed is 12 bytes of little-endian numbers, then the body. With `retry_kind % 4 == 3`
/// the body's first line is the raw `retry-after` value and the rest is the body.
#[derive(Debug, Arbitrary)]
struct Input {
    status: u16,
    now_secs: u32,
    shape: u8,
    /// 0: no `retry-after`; 1: delta seconds; 2: an HTTP date; 3: raw bytes (see above).
    retry_kind: u8,
    retry_secs: u32,
    body: Vec<u8>,
}

/// A result shaped like a D1 query answer, to exercise nested typed decoding.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct QueryLike {
    results: Vec<BTreeMap<String, serde_json::Value>>,
    success: bool,
    meta: Option<BTreeMap<String, serde_json::Value>>,
}

fn check<T: DeserializeOwned + std::fmt::Debug>(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) {
    let expected_retry = retry_after_from_headers(headers, now);
    match decode_at::<T>(status, headers, body, now) {
        Ok(envelope) => {
            assert!(status.is_success(), "Ok for status {status}");
            let _ = format!("{envelope:?}");
            let _ = expected_retry;
        }
        Err(e) => {
            if !status.is_success() {
                assert_eq!(e.status(), Some(status), "{e:?}");
            }
            if let CloudflareError::Decode { body: excerpt, .. } = &e {
                assert!(excerpt.chars().count() <= BODY_EXCERPT_CHARS + 1);
            }
            if matches!(e, CloudflareError::Api { .. }) {
                assert!(!status.is_success());
            }
            if matches!(
                e,
                CloudflareError::Api { .. } | CloudflareError::Decode { .. }
            ) {
                assert_eq!(e.retry_after(), expected_retry, "retry-after lost: {e:?}");
            }
            let _ = e.to_string();
            let _ = format!("{e:?}");
            let _ = (
                e.is_retryable(),
                e.counts_for_breaker(),
                e.retry_after(),
                e.errors(),
            );
        }
    }
}

fuzz_target!(|input: Input| {
    let Ok(status) = StatusCode::from_u16(input.status) else {
        return;
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(input.now_secs));
    let mut body = input.body.as_slice();
    let retry_after: Option<Vec<u8>> = match input.retry_kind % 4 {
        0 => None,
        1 => Some(input.retry_secs.to_string().into_bytes()),
        2 => {
            let when = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(input.retry_secs));
            Some(httpdate::fmt_http_date(when).into_bytes())
        }
        _ => {
            let split = body.iter().position(|b| *b == b'\n').unwrap_or(body.len());
            let raw = body[..split].to_vec();
            body = body.get(split + 1..).unwrap_or_default();
            Some(raw)
        }
    };
    let mut headers = HeaderMap::new();
    if let Some(v) = &retry_after
        && let Ok(value) = HeaderValue::from_bytes(v)
    {
        headers.insert(http::header::RETRY_AFTER, value);
    }
    if input.retry_kind % 4 == 1 {
        assert_eq!(
            retry_after_from_headers(&headers, now),
            Some(Duration::from_secs(u64::from(input.retry_secs)))
        );
    }
    match input.shape % 4 {
        0 => check::<serde_json::Value>(status, &headers, body, now),
        1 => check::<Vec<String>>(status, &headers, body, now),
        2 => check::<QueryLike>(status, &headers, body, now),
        _ => check::<Option<u64>>(status, &headers, body, now),
    }
});
