//! Client errors of D1, Vectorize, R2 and the embedder mapped to [`StorageError`], each
//! saying which service failed and what to do. No message ever holds the API token (the
//! clients never put it in an error).

use cloudflare_d1::D1Error;
use cloudflare_http::CloudflareError;
use cloudflare_r2::R2Error;
use cloudflare_vectorize::VectorizeError;
use memory_embed::EmbedError;
use memory_storage::StorageError;

/// The backend name in errors and stats.
pub(crate) const BACKEND: &str = "cloudflare";

/// The permissions the API token needs.
const PERMISSIONS: &str = "D1 Edit, Vectorize Edit, Workers AI Read and (with a bucket) R2 Edit";

/// Maps a transport-level error of `service` (`D1`, `Vectorize`, `R2`) during `action`.
pub(crate) fn cloudflare_error(service: &str, action: &str, e: CloudflareError) -> StorageError {
    let status = e.status().map(|s| s.as_u16());
    if matches!(status, Some(401 | 403)) {
        return StorageError::Backend {
            backend: BACKEND.into(),
            message: format!(
                "Cloudflare {service} refused the API token while {action}: check that \
                 CLOUDFLARE_API_TOKEN is valid and has the permissions {PERMISSIONS}, and \
                 that CLOUDFLARE_ACCOUNT_ID is its account: {e}"
            ),
            source: Some(Box::new(e)),
        };
    }
    let transient = e.is_retryable()
        || matches!(e, CloudflareError::CircuitOpen { .. })
        || status.is_some_and(|s| s == 429 || s >= 500);
    if transient {
        StorageError::Unavailable {
            backend: BACKEND.into(),
            message: format!(
                "Cloudflare {service} failed while {action}; retrying later may help: {e}"
            ),
            source: Some(Box::new(e)),
        }
    } else {
        StorageError::Backend {
            backend: BACKEND.into(),
            message: format!("Cloudflare {service} failed while {action}: {e}"),
            source: Some(Box::new(e)),
        }
    }
}

/// Maps a D1 error during `action`.
pub(crate) fn d1_error(action: &str, e: D1Error) -> StorageError {
    match e {
        D1Error::Cloudflare(c) => cloudflare_error("D1", action, c),
        D1Error::Sql { .. } => StorageError::Backend {
            backend: BACKEND.into(),
            message: format!("D1 rejected the SQL while {action}: {e}"),
            source: Some(Box::new(e)),
        },
        other => StorageError::Backend {
            backend: BACKEND.into(),
            message: format!("D1 call failed while {action}: {other}"),
            source: Some(Box::new(other)),
        },
    }
}

/// Maps a Vectorize error during `action`.
pub(crate) fn vectorize_error(action: &str, e: VectorizeError) -> StorageError {
    match e {
        VectorizeError::Cloudflare(c) => cloudflare_error("Vectorize", action, c),
        other => StorageError::Backend {
            backend: BACKEND.into(),
            message: format!("Vectorize call failed while {action}: {other}"),
            source: Some(Box::new(other)),
        },
    }
}

/// Maps an R2 error during `action`.
pub(crate) fn r2_error(action: &str, e: R2Error) -> StorageError {
    match e {
        R2Error::Cloudflare(c) => cloudflare_error("R2", action, c),
        other => StorageError::Backend {
            backend: BACKEND.into(),
            message: format!("R2 call failed while {action}: {other}"),
            source: Some(Box::new(other)),
        },
    }
}

/// Maps an embedder error for `texts` texts of `model`.
pub(crate) fn embed_error(model: &str, texts: usize, e: EmbedError) -> StorageError {
    StorageError::Embedding {
        message: format!("model {model} could not embed {texts} text(s): {e}"),
        source: Some(Box::new(e)),
    }
}

/// A malformed value read back from D1 (a row another writer broke).
pub(crate) fn bad_row(what: impl Into<String>) -> StorageError {
    StorageError::Backend {
        backend: BACKEND.into(),
        message: format!(
            "a D1 row is malformed: {}; fix or delete the row (see `check`)",
            what.into()
        ),
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudflare_http::ApiMessage;

    fn api(status: u16) -> CloudflareError {
        CloudflareError::Api {
            status: status.try_into().unwrap(),
            errors: vec![ApiMessage {
                code: 10000,
                message: "boom".into(),
            }],
            retry_after: None,
        }
    }

    #[test]
    fn auth_failures_name_the_token_and_permissions() {
        let e = d1_error("storing", D1Error::Cloudflare(api(403)));
        let text = e.to_string();
        assert!(text.contains("CLOUDFLARE_API_TOKEN"), "{text}");
        assert!(text.contains("Vectorize Edit"), "{text}");
        assert!(!e.is_transient());
    }

    #[test]
    fn rate_limits_and_server_errors_are_unavailable() {
        for status in [429, 500, 503] {
            let e = vectorize_error("querying", VectorizeError::Cloudflare(api(status)));
            assert!(e.is_transient(), "{status}: {e}");
            assert!(e.to_string().contains("Vectorize"));
        }
        let e = cloudflare_error(
            "D1",
            "x",
            CloudflareError::Timeout {
                after: std::time::Duration::from_secs(1),
            },
        );
        assert!(e.is_transient());
    }

    #[test]
    fn sql_errors_are_backend_errors_with_sqlites_message() {
        let e = d1_error(
            "listing",
            D1Error::Sql {
                message: "no such table: memories".into(),
                code: 7500,
            },
        );
        assert!(!e.is_transient());
        assert!(e.to_string().contains("no such table: memories"));
    }
}
