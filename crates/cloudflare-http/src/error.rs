//! [`CloudflareError`]: every way a Cloudflare API call can fail, each saying what to do.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

/// Cloudflare error code for "Authentication error" (bad, expired or under-privileged token).
///
/// See <https://developers.cloudflare.com/fundamentals/api/troubleshooting/>.
pub(crate) const CODE_AUTHENTICATION_ERROR: i64 = 10000;

/// The most characters of a response body quoted in a [`CloudflareError::Decode`] message.
pub const BODY_EXCERPT_CHARS: usize = 200;

/// One entry of a Cloudflare envelope's `errors` or `messages` list.
///
/// See <https://developers.cloudflare.com/fundamentals/api/how-to/make-api-calls/>.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiMessage {
    /// Cloudflare's numeric code (0 when the API sent none).
    #[serde(default)]
    pub code: i64,
    /// Human-readable text.
    #[serde(default)]
    pub message: String,
}

/// A failed Cloudflare API call.
///
/// Build the HTTP variants with [`crate::decode`]; the transport produces
/// [`CloudflareError::Transport`] and [`CloudflareError::Timeout`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CloudflareError {
    /// Cloudflare answered with a non-2xx status and a well-formed envelope.
    #[error("Cloudflare API returned {status}{}: {}", list(.errors), hint(.status, .errors, .retry_after))]
    Api {
        /// HTTP status of the response.
        status: StatusCode,
        /// The envelope's `errors` list.
        errors: Vec<ApiMessage>,
        /// Parsed `retry-after` header, if any.
        retry_after: Option<Duration>,
    },

    /// Cloudflare answered 2xx but the envelope says `"success": false`.
    #[error(
        "Cloudflare API returned {status} but \"success\": false{}: the request was not applied; \
         fix it according to the error codes above (https://developers.cloudflare.com/api/)",
        list(.errors)
    )]
    Unsuccessful {
        /// HTTP status of the response (2xx).
        status: StatusCode,
        /// The envelope's `errors` list.
        errors: Vec<ApiMessage>,
    },

    /// The body is not JSON, not an envelope, or its `result` is not of the expected shape.
    #[error(
        "could not decode the Cloudflare response ({status}): expected {expected}, but {detail}; \
         body starts with {body:?}; {}",
        decode_hint(.status, .retry_after)
    )]
    Decode {
        /// HTTP status of the response.
        status: StatusCode,
        /// What the decoder expected, e.g. "a Cloudflare envelope (a JSON object with `success`)".
        expected: String,
        /// What went wrong (the JSON parser's message).
        detail: String,
        /// At most [`BODY_EXCERPT_CHARS`] characters of the body.
        body: String,
        /// Parsed `retry-after` header, if any.
        retry_after: Option<Duration>,
    },

    /// The request never got an HTTP response (DNS, TCP, TLS, connection reset...).
    #[error(
        "could not reach the Cloudflare API: {source}; check network access and the base URL, \
         the call can be retried"
    )]
    Transport {
        /// The underlying I/O or client error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// No response within the configured timeout.
    #[error(
        "the Cloudflare API did not answer within {after:?}; retry later or raise the request timeout"
    )]
    Timeout {
        /// The timeout that expired.
        after: Duration,
    },

    /// A circuit breaker ([`crate::BreakerLayer`]) is open for this service after repeated
    /// failures, so the call was not sent.
    #[error(
        "the circuit breaker for the Cloudflare {service} API is open after repeated failures, \
         so the call was not sent; it will try again in {retry_in:?}"
    )]
    CircuitOpen {
        /// The guarded service, e.g. `"d1"`.
        service: &'static str,
        /// How long until the breaker lets a probe call through.
        retry_in: Duration,
    },

    /// Cloudflare's account-wide request budget is spent (a 429 said so, or its `ratelimit`
    /// header left nothing) and the wait for the reset is longer than the call's retry
    /// budget, so the call gave up at once.
    ///
    /// See <https://developers.cloudflare.com/fundamentals/api/reference/limits/>.
    #[error(
        "Cloudflare's account-wide API budget is spent{}; try again in {} s (after {}): \
         {} requests per {} s are shared by every token and the dashboard of the account",
        list(.errors),
        ceil_secs(*.retry_after),
        httpdate::fmt_http_date(*.until),
        crate::RATE_LIMIT_REQUESTS,
        crate::RATE_LIMIT_WINDOW.as_secs()
    )]
    RateLimited {
        /// Time until the budget's window resets.
        retry_after: Duration,
        /// When it resets (the wall-clock instant of `retry_after`).
        until: SystemTime,
        /// The 429's envelope `errors` (empty when the client refused without sending).
        errors: Vec<ApiMessage>,
    },

    /// The request could not be built (an invalid path or body); nothing was sent.
    #[error("the Cloudflare request could not be built: {reason}; nothing was sent")]
    InvalidRequest {
        /// What is wrong with it.
        reason: String,
    },
}

impl CloudflareError {
    /// Wraps a transport-level error.
    pub fn transport(
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self::Transport {
            source: source.into(),
        }
    }

    /// HTTP status of the response, if one arrived.
    #[must_use]
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. }
            | Self::Unsuccessful { status, .. }
            | Self::Decode { status, .. } => Some(*status),
            Self::Transport { .. }
            | Self::Timeout { .. }
            | Self::CircuitOpen { .. }
            | Self::RateLimited { .. }
            | Self::InvalidRequest { .. } => None,
        }
    }

    /// The envelope's `errors` list (empty when there was no envelope).
    #[must_use]
    pub fn errors(&self) -> &[ApiMessage] {
        match self {
            Self::Api { errors, .. }
            | Self::Unsuccessful { errors, .. }
            | Self::RateLimited { errors, .. } => errors,
            _ => &[],
        }
    }

    /// The response's `retry-after`, if any.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { retry_after, .. } | Self::Decode { retry_after, .. } => *retry_after,
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Whether the same request may succeed if sent again:
    /// 408, 429, 5xx, transport errors, timeouts, and a spent budget (after
    /// [`Self::retry_after`]).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::Timeout { .. } | Self::RateLimited { .. } => true,
            Self::Unsuccessful { .. } | Self::CircuitOpen { .. } | Self::InvalidRequest { .. } => {
                false
            }
            Self::Api { status, .. } | Self::Decode { status, .. } => is_retryable_status(*status),
        }
    }

    /// Whether this failure is a sign that Cloudflare (or the path to it) is unhealthy,
    /// so a circuit breaker should count it: 429, 5xx, transport errors and timeouts.
    /// Other 4xx are the caller's fault and never count, nor does a call the rate limiter
    /// refused without sending ([`Self::RateLimited`]).
    #[must_use]
    pub fn counts_for_breaker(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::Timeout { .. } => true,
            Self::Unsuccessful { .. }
            | Self::CircuitOpen { .. }
            | Self::RateLimited { .. }
            | Self::InvalidRequest { .. } => false,
            Self::Api { status, .. } | Self::Decode { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
            }
        }
    }
}

/// ` (code 10000: Authentication error; code 9109: ...)`, or nothing for an empty list.
fn list(errors: &[ApiMessage]) -> String {
    let mut out = String::new();
    for (i, e) in errors.iter().enumerate() {
        out.push_str(if i == 0 { " (" } else { "; " });
        let _ = write!(out, "code {}: {}", e.code, e.message);
    }
    if !out.is_empty() {
        out.push(')');
    }
    out
}

/// What the caller should do about an API error.
fn hint(status: &StatusCode, errors: &[ApiMessage], retry_after: &Option<Duration>) -> String {
    let (status, retry_after) = (*status, *retry_after);
    let auth_code = errors.iter().any(|e| e.code == CODE_AUTHENTICATION_ERROR);
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            "check CLOUDFLARE_API_TOKEN and its permissions (and the account id)".to_owned()
        }
        _ if auth_code => "check CLOUDFLARE_API_TOKEN and its permissions".to_owned(),
        StatusCode::TOO_MANY_REQUESTS => match retry_after {
            Some(wait) => format!(
                "rate limited by Cloudflare ({} requests per {} s per account, across its tokens); \
                 retry after {wait:?}",
                crate::RATE_LIMIT_REQUESTS,
                crate::RATE_LIMIT_WINDOW.as_secs()
            ),
            None => format!(
                "rate limited by Cloudflare ({} requests per {} s per account, across its tokens); \
                 slow down and retry later",
                crate::RATE_LIMIT_REQUESTS,
                crate::RATE_LIMIT_WINDOW.as_secs()
            ),
        },
        StatusCode::NOT_FOUND => {
            "check the account id and the resource id or name in the request".to_owned()
        }
        StatusCode::REQUEST_TIMEOUT => {
            "the request timed out on Cloudflare's side; retry".to_owned()
        }
        s if s.is_server_error() => "Cloudflare-side failure; retry later".to_owned(),
        _ => "the request was rejected; fix it according to the error codes \
              (https://developers.cloudflare.com/api/)"
            .to_owned(),
    }
}

/// What the caller should do about an undecodable response.
fn decode_hint(status: &StatusCode, retry_after: &Option<Duration>) -> String {
    let (status, retry_after) = (*status, *retry_after);
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        match retry_after {
            Some(wait) => format!("Cloudflare or a proxy failed; retry after {wait:?}"),
            None => "Cloudflare or a proxy failed; retry later".to_owned(),
        }
    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        "check CLOUDFLARE_API_TOKEN and its permissions".to_owned()
    } else {
        "check the base URL; if it is right, the API changed or this client has a bug, \
         report it with the body above"
            .to_owned()
    }
}

/// Whole seconds of `d`, rounded up (a wait of 0.2 s says 1 s, never 0 s).
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The envelope's `errors` of a response body, or none when it is not an envelope.
pub(crate) fn envelope_errors(body: &[u8]) -> Vec<ApiMessage> {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<ApiMessage>,
    }
    serde_json::from_slice::<Errors>(body)
        .map(|e| e.errors)
        .unwrap_or_default()
}

/// First [`BODY_EXCERPT_CHARS`] characters of `body` (lossy UTF-8), with `…` if cut.
#[must_use]
pub fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut chars = text.chars();
    let mut out: String = chars.by_ref().take(BODY_EXCERPT_CHARS).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// Parses a `retry-after` header value: delta-seconds (`"120"`) or an HTTP date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`), relative to `now`. A date in the past is zero.
///
/// See <https://www.rfc-editor.org/rfc/rfc9110#field.retry-after>.
#[must_use]
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The parsed `retry-after` header of `headers`, relative to `now`.
#[must_use]
pub fn retry_after_from_headers(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, now)
}

/// Whether a response status is worth retrying: 408, 429 or 5xx.
#[must_use]
pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> CloudflareError {
        CloudflareError::Api {
            status: StatusCode::from_u16(status).unwrap(),
            errors: vec![],
            retry_after: None,
        }
    }

    #[test]
    fn retryable_and_breaker_classification() {
        for (status, retry, breaker) in [
            (400, false, false),
            (401, false, false),
            (403, false, false),
            (404, false, false),
            (408, true, false),
            (409, false, false),
            (429, true, true),
            (500, true, true),
            (502, true, true),
            (503, true, true),
        ] {
            let err = api(status);
            assert_eq!(err.is_retryable(), retry, "{status}");
            assert_eq!(err.counts_for_breaker(), breaker, "{status}");
        }
        let transport = CloudflareError::transport("connection reset");
        assert!(transport.is_retryable() && transport.counts_for_breaker());
        let timeout = CloudflareError::Timeout {
            after: Duration::from_secs(30),
        };
        assert!(timeout.is_retryable() && timeout.counts_for_breaker());
        let unsuccessful = CloudflareError::Unsuccessful {
            status: StatusCode::OK,
            errors: vec![],
        };
        assert!(!unsuccessful.is_retryable() && !unsuccessful.counts_for_breaker());
        let open = CloudflareError::CircuitOpen {
            service: "d1",
            retry_in: Duration::from_secs(12),
        };
        assert!(!open.is_retryable() && !open.counts_for_breaker());
        assert_eq!(open.status(), None);
        let text = open.to_string();
        assert!(text.contains("d1") && text.contains("12s"), "{text}");
    }

    #[test]
    fn auth_errors_say_to_check_the_token() {
        for status in [401, 403, 400] {
            let err = CloudflareError::Api {
                status: StatusCode::from_u16(status).unwrap(),
                errors: vec![ApiMessage {
                    code: CODE_AUTHENTICATION_ERROR,
                    message: "Authentication error".into(),
                }],
                retry_after: None,
            };
            let text = err.to_string();
            assert!(
                text.contains("check CLOUDFLARE_API_TOKEN and its permissions"),
                "{text}"
            );
            assert!(text.contains("code 10000: Authentication error"), "{text}");
        }
    }

    #[test]
    fn rate_limit_message_mentions_the_wait() {
        let err = CloudflareError::Api {
            status: StatusCode::TOO_MANY_REQUESTS,
            errors: vec![],
            retry_after: Some(Duration::from_secs(3)),
        };
        assert!(err.to_string().contains("retry after 3s"), "{err}");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21 07:28:00
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);

        let mut headers = HeaderMap::new();
        assert_eq!(retry_after_from_headers(&headers, now), None);
        headers.insert(http::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(
            retry_after_from_headers(&headers, now),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn body_excerpt_is_bounded() {
        let long = "x".repeat(1000);
        let excerpt = body_excerpt(long.as_bytes());
        assert_eq!(excerpt.chars().count(), BODY_EXCERPT_CHARS + 1);
        assert!(excerpt.ends_with('…'));
        assert_eq!(body_excerpt(b"short"), "short");
    }
}
