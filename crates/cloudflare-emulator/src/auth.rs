//! Authentication and the account check, as Cloudflare's API gateway answers them.
//!
//! Every request under `/client/v4` needs `Authorization: Bearer <token>` with a token of
//! [`EmulatorConfig::tokens`](crate::EmulatorConfig::tokens). Cloudflare's answers (its docs
//! do not list them; these are the shapes the live API returns, as recorded in public
//! client code and issue reports):
//!
//! | request | status | code | message |
//! |---|---|---|---|
//! | no `Authorization` (nor `X-Auth-Key`/`X-Auth-Email`) | 400 | 9106 | `Missing X-Auth-Key, X-Auth-Email or Authorization headers` |
//! | `Authorization` not `Bearer <token>`, or a token with characters no Cloudflare token has | 400 | 6003 | `Invalid request headers`, with `error_chain` `[{6111, "Invalid format for Authorization header"}]` |
//! | a well-formed token the emulator does not know (or only legacy `X-Auth-Key` headers) | 401 | 10000 | `Authentication error` |
//! | a valid token on an account id not in [`EmulatorConfig::account_ids`](crate::EmulatorConfig::account_ids) | 403 | 10000 | `Authentication error` |
//!
//! (Prism's mock answers a missing `Authorization` with 401 because the spec declares
//! bearer security; the live API answers 400 / 9106, which the emulator follows.)

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::config::EmulatorConfig;
use crate::envelope::ApiError;

/// The API prefix every authenticated path starts with.
pub(crate) const API_PREFIX: &str = "/client/v4";

/// The token a request was authenticated with (a request extension for later layers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiToken(pub String);

/// Cloudflare's answer to a request without credentials.
fn missing_credentials() -> Response {
    ApiError::bad_request(
        9106,
        "Missing X-Auth-Key, X-Auth-Email or Authorization headers",
    )
    .into_response()
}

/// Cloudflare's answer to a malformed `Authorization` header (with its `error_chain`).
fn invalid_header_format() -> Response {
    let body = json!({
        "success": false,
        "errors": [{
            "code": 6003,
            "message": "Invalid request headers",
            "error_chain": [{"code": 6111, "message": "Invalid format for Authorization header"}],
        }],
        "messages": [],
        "result": null,
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// `Authentication error` with `status` (401 bad token, 403 no access to the account).
pub(crate) fn authentication_error(status: StatusCode) -> ApiError {
    ApiError::new(status, 10000, "Authentication error")
}

/// What an `Authorization` header holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Credentials<'a> {
    /// No usable header at all.
    Missing,
    /// Only the legacy `X-Auth-Key` / `X-Auth-Email` scheme (not supported by the emulator).
    LegacyKey,
    /// A header that is not `Bearer <token>`.
    Malformed,
    /// A well-formed bearer token.
    Bearer(&'a str),
}

/// Characters of a Cloudflare API token: URL-safe base64 (`[A-Za-z0-9_-]`), plus `.`, `~`, `+`
/// and `/` which some token formats use; anything else (spaces, quotes, control characters)
/// is a format error.
fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/' | '=')
}

/// Classifies the credential headers of a request.
pub(crate) fn credentials(headers: &http::HeaderMap) -> Credentials<'_> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        if headers.contains_key("x-auth-key") || headers.contains_key("x-auth-email") {
            return Credentials::LegacyKey;
        }
        return Credentials::Missing;
    };
    let Ok(value) = value.to_str() else {
        return Credentials::Malformed;
    };
    let mut parts = value.splitn(2, ' ');
    let scheme = parts.next().unwrap_or_default();
    let token = parts.next().unwrap_or_default().trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || !token.chars().all(token_char)
    {
        return Credentials::Malformed;
    }
    Credentials::Bearer(token)
}

/// The account id of an API path (`/client/v4/accounts/{id}/…`), if it has one.
pub(crate) fn path_account(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(API_PREFIX)?.strip_prefix("/accounts/")?;
    let id = rest.split('/').next().unwrap_or_default();
    (!id.is_empty()).then_some(id)
}

/// The authentication middleware: checks the bearer token of every `/client/v4` request and
/// records it as an [`ApiToken`] extension.
pub(crate) async fn middleware(
    State(config): State<Arc<EmulatorConfig>>,
    mut request: Request,
    next: Next,
) -> Response {
    if !request.uri().path().starts_with(API_PREFIX) {
        return next.run(request).await;
    }
    let token = match credentials(request.headers()) {
        Credentials::Missing => return missing_credentials(),
        Credentials::Malformed => return invalid_header_format(),
        Credentials::LegacyKey => {
            return authentication_error(StatusCode::UNAUTHORIZED).into_response();
        }
        Credentials::Bearer(token) => token.to_owned(),
    };
    if !config.tokens.contains(&token) {
        return authentication_error(StatusCode::UNAUTHORIZED).into_response();
    }
    request.extensions_mut().insert(ApiToken(token));
    next.run(request).await
}

/// The account middleware: a path account id the emulator does not serve is answered like an
/// account the token cannot access (403, code 10000).
pub(crate) async fn account_middleware(
    State(config): State<Arc<EmulatorConfig>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(account) = path_account(request.uri().path())
        && !config.account_ids.iter().any(|a| a == account)
    {
        return authentication_error(StatusCode::FORBIDDEN).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn classifies_credentials() {
        assert_eq!(credentials(&headers(&[])), Credentials::Missing);
        assert_eq!(
            credentials(&headers(&[("x-auth-key", "k"), ("x-auth-email", "a@b.c")])),
            Credentials::LegacyKey
        );
        assert_eq!(
            credentials(&headers(&[("authorization", "Bearer abc_DEF-123")])),
            Credentials::Bearer("abc_DEF-123")
        );
        assert_eq!(
            credentials(&headers(&[("authorization", "bearer t")])),
            Credentials::Bearer("t")
        );
        for bad in [
            "abc",
            "Bearer",
            "Bearer ",
            "Basic abc",
            "Bearer a b",
            "Bearer \"t\"",
        ] {
            assert_eq!(
                credentials(&headers(&[("authorization", bad)])),
                Credentials::Malformed,
                "{bad}"
            );
        }
    }

    #[test]
    fn finds_the_path_account() {
        assert_eq!(path_account("/client/v4/accounts/abc/d1/x"), Some("abc"));
        assert_eq!(path_account("/client/v4/accounts/abc"), Some("abc"));
        assert_eq!(path_account("/client/v4/accounts/"), None);
        assert_eq!(path_account("/client/v4/user/tokens/verify"), None);
        assert_eq!(path_account("/accounts/abc"), None);
    }

    proptest! {
        #[test]
        fn any_header_value_is_classified_without_panicking(value in "[ -~]{0,80}") {
            if let Ok(v) = value.parse() {
                let mut map = http::HeaderMap::new();
                map.insert(http::header::AUTHORIZATION, v);
                let _ = credentials(&map);
            }
        }

        #[test]
        fn well_formed_tokens_round_trip(token in "[A-Za-z0-9_-]{1,64}") {
            let mut map = http::HeaderMap::new();
            map.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
            prop_assert_eq!(credentials(&map), Credentials::Bearer(&token));
        }

        #[test]
        fn any_path_is_parsed_without_panicking(path in "\\PC{0,60}") {
            let _ = path_account(&path);
        }
    }
}
