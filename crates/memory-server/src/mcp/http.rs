//! Streamable HTTP transport: rmcp's [`StreamableHttpService`] at `/mcp`, behind an optional
//! bearer-key check.
//!
//! Loopback binds (the default, `127.0.0.1`) keep rmcp's `Host` check against DNS
//! rebinding. Any other bind needs an API key: every request must then carry
//! `Authorization: Bearer <key>`, else it gets `401` (the key, not the `Host` header, guards
//! such a server, so the `Host` check is lifted for it).
//!
//! A POST body is checked before rmcp sees it, so every message the server cannot take
//! gets a JSON-RPC error body (rmcp answers `415` in plain text): `400` with `-32700` for a
//! body that is not JSON, `400` with `-32600` for JSON that is not one JSON-RPC message
//! (batches included: the 2025-06-18 transport allows one message per POST), and `413`
//! with `-32600` naming the limit for a body over [`MAX_HTTP_BODY_BYTES`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::jsonrpc::{self, Refusal};
use super::sessions::{BoundedSessions, SessionLimits};
use super::tools::{MemoryServer, StoreHandle};
use crate::config::settings::Secret;

/// Largest POST body: the same bound as one stdio line, derived from the content limit, so
/// content stdio and the CLI accept is accepted over HTTP too (the content check then
/// refuses over-limit content with a tool error naming the limit).
pub const MAX_HTTP_BODY_BYTES: usize = super::MAX_STDIO_LINE_BYTES;

/// Where and how to listen. `Debug` never shows the key.
#[derive(Debug)]
pub struct HttpOptions {
    /// Address to bind.
    pub host: IpAddr,
    /// Port; 0 picks a free one (the bound address is printed to stderr).
    pub port: u16,
    /// Required bearer key, if any.
    pub api_key: Option<Secret>,
    /// Session idle timeout and cap.
    pub sessions: SessionLimits,
}

/// Refuses a non-loopback bind without an API key.
pub fn check_exposure(host: IpAddr, api_key: Option<&Secret>) -> Result<()> {
    if !host.is_loopback() && api_key.is_none() {
        anyhow::bail!(
            "refusing to serve on {host} without an API key: a non-loopback address is reachable \
             from other machines. Set MCP_MEMORY_API_KEY (or pass --api-key) and have clients \
             send `Authorization: Bearer <key>`, or bind 127.0.0.1"
        );
    }
    Ok(())
}

/// The axum app: `/mcp` (behind the body check, and the bearer check when a key is set),
/// and the session manager, to count live sessions.
pub fn router(
    store: StoreHandle,
    opts: &HttpOptions,
    ct: CancellationToken,
) -> (Router, Arc<BoundedSessions>) {
    let mut config = StreamableHttpServerConfig::default()
        .with_cancellation_token(ct)
        .with_max_request_body_bytes(MAX_HTTP_BODY_BYTES);
    if !opts.host.is_loopback() {
        config = config.disable_allowed_hosts();
    }
    let sessions = Arc::new(BoundedSessions::new(opts.sessions));
    let service = StreamableHttpService::new(
        move || Ok(MemoryServer::new(store.clone())),
        sessions.clone(),
        config,
    );
    let app = Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn(check_body));
    let app = match &opts.api_key {
        Some(key) => app.layer(middleware::from_fn_with_state(
            Arc::new(key.clone()),
            require_bearer,
        )),
        None => app,
    };
    (app, sessions)
}

/// Binds, prints the endpoint to stderr, and serves until Ctrl-C / SIGTERM.
pub async fn serve(store: StoreHandle, opts: HttpOptions) -> Result<()> {
    check_exposure(opts.host, opts.api_key.as_ref())?;
    let addr = SocketAddr::new(opts.host, opts.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let ct = CancellationToken::new();
    let (app, _sessions) = router(store, &opts, ct.child_token());
    eprintln!("mcp-memory: serving MCP (streamable HTTP) at http://{local}/mcp");
    tracing::info!(
        %local,
        auth = opts.api_key.is_some(),
        idle_timeout_s = opts.sessions.idle_timeout.as_secs(),
        max_sessions = opts.sessions.max_sessions,
        "streamable HTTP server listening"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            ct.cancel();
        })
        .await
        .context("serving HTTP")?;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Lets a request through only with `Authorization: Bearer <key>`.
async fn require_bearer(State(key): State<Arc<Secret>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    match presented {
        Some(token) if same_secret(token.as_bytes(), key.expose().as_bytes()) => {
            next.run(request).await
        }
        _ => {
            let mut response = (
                StatusCode::UNAUTHORIZED,
                "missing or wrong API key: send `Authorization: Bearer <MCP_MEMORY_API_KEY>`\n",
            )
                .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"mcp-memory\""),
            );
            response
        }
    }
}

/// Reads a JSON POST body (at most [`MAX_HTTP_BODY_BYTES`]) and answers what rmcp would
/// refuse in plain text with a JSON-RPC error; passes everything else on unchanged.
async fn check_body(request: Request, next: Next) -> Response {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    // Other methods and content types are rmcp's to answer (405, 406, 415 are right there).
    if request.method() != Method::POST || !is_json {
        return next.run(request).await;
    }
    let too_large = || {
        let refusal = Refusal::Invalid {
            id: serde_json::Value::Null,
            reason: format!(
                "the request body exceeds the limit of {MAX_HTTP_BODY_BYTES} bytes; memory \
                 content is limited to {} bytes",
                memory_core::limits::MAX_CONTENT_BYTES
            ),
        };
        json_rpc_error(StatusCode::PAYLOAD_TOO_LARGE, &refusal)
    };
    // A declared length over the limit is refused before the body is read (a client that
    // sent `Expect: 100-continue` then never sends it).
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_HTTP_BODY_BYTES as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    let mut bytes = Vec::new();
    let mut chunks = body.into_data_stream();
    // Counted while streaming, so a body without a length (chunked) is bounded too.
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(chunk) if bytes.len() + chunk.len() > MAX_HTTP_BODY_BYTES => return too_large(),
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("reading the request body failed: {e}\n"),
                )
                    .into_response();
            }
        }
    }
    if let Err(refusal) = jsonrpc::parse_message(&bytes) {
        return match refusal {
            // An unknown notification is accepted and ignored, as on stdio.
            Refusal::Ignore => StatusCode::ACCEPTED.into_response(),
            refusal => json_rpc_error(StatusCode::BAD_REQUEST, &refusal),
        };
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A JSON-RPC error body with `status`.
fn json_rpc_error(status: StatusCode, refusal: &Refusal) -> Response {
    let body = refusal.answer_text().unwrap_or_default();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_a_key() {
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let err = check_exposure(any, None).unwrap_err().to_string();
        assert!(err.contains("MCP_MEMORY_API_KEY"), "{err}");
        assert!(check_exposure(any, Some(&Secret::new("k"))).is_ok());
        assert!(check_exposure("127.0.0.1".parse().unwrap(), None).is_ok());
        assert!(check_exposure("::1".parse().unwrap(), None).is_ok());
    }

    #[test]
    fn options_never_show_the_key() {
        let key = "the-bearer-key-5150";
        let opts = HttpOptions {
            host: "0.0.0.0".parse().unwrap(),
            port: 8000,
            api_key: Some(Secret::new(key)),
            sessions: SessionLimits {
                idle_timeout: std::time::Duration::from_secs(60),
                max_sessions: 2,
            },
        };
        for text in [format!("{opts:?}"), format!("{opts:#?}")] {
            assert!(!text.contains(key), "{text}");
            assert!(text.contains("api_key: Some("), "{text}");
        }
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
