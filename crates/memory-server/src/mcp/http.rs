//! Streamable HTTP transport: rmcp's [`StreamableHttpService`] at `/mcp`, behind an optional
//! bearer-key check.
//!
//! Loopback binds (the default, `127.0.0.1`) keep rmcp's `Host` check against DNS
//! rebinding. Any other bind needs an API key: every request must then carry
//! `Authorization: Bearer <key>`, else it gets `401` (the key, not the `Host` header, guards
//! such a server, so the `Host` check is lifted for it).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use tokio_util::sync::CancellationToken;

use super::tools::{MemoryServer, StoreHandle};

/// Where and how to listen.
pub struct HttpOptions {
    /// Address to bind.
    pub host: IpAddr,
    /// Port; 0 picks a free one (the bound address is printed to stderr).
    pub port: u16,
    /// Required bearer key, if any.
    pub api_key: Option<String>,
}

/// Refuses a non-loopback bind without an API key.
pub fn check_exposure(host: IpAddr, api_key: Option<&str>) -> Result<()> {
    if !host.is_loopback() && api_key.is_none() {
        anyhow::bail!(
            "refusing to serve on {host} without an API key: a non-loopback address is reachable \
             from other machines. Set MCP_MEMORY_API_KEY (or pass --api-key) and have clients \
             send `Authorization: Bearer <key>`, or bind 127.0.0.1"
        );
    }
    Ok(())
}

/// The axum app: `/mcp` plus the bearer check when a key is set.
pub fn router(store: StoreHandle, opts: &HttpOptions, ct: CancellationToken) -> Router {
    let mut config = StreamableHttpServerConfig::default().with_cancellation_token(ct);
    if !opts.host.is_loopback() {
        config = config.disable_allowed_hosts();
    }
    let service = StreamableHttpService::new(
        move || Ok(MemoryServer::new(store.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let app = Router::new().nest_service("/mcp", service);
    match &opts.api_key {
        Some(key) => app.layer(middleware::from_fn_with_state(
            Arc::new(key.clone()),
            require_bearer,
        )),
        None => app,
    }
}

/// Binds, prints the endpoint to stderr, and serves until Ctrl-C / SIGTERM.
pub async fn serve(store: StoreHandle, opts: HttpOptions) -> Result<()> {
    check_exposure(opts.host, opts.api_key.as_deref())?;
    let addr = SocketAddr::new(opts.host, opts.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let ct = CancellationToken::new();
    let app = router(store, &opts, ct.child_token());
    eprintln!("mcp-memory: serving MCP (streamable HTTP) at http://{local}/mcp");
    tracing::info!(%local, auth = opts.api_key.is_some(), "streamable HTTP server listening");
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
async fn require_bearer(State(key): State<Arc<String>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    match presented {
        Some(token) if same_secret(token.as_bytes(), key.as_bytes()) => next.run(request).await,
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
        assert!(check_exposure(any, Some("k")).is_ok());
        assert!(check_exposure("127.0.0.1".parse().unwrap(), None).is_ok());
        assert!(check_exposure("::1".parse().unwrap(), None).is_ok());
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
