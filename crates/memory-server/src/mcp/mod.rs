//! `mcp-memory serve`: the MCP server, over stdio (default) or streamable HTTP (`--http`).
//!
//! * stdio: JSON-RPC on stdin/stdout; logs go to stderr only (`MCP_MEMORY_LOG`).
//! * `--http`: `http://<host>:<port>/mcp`, `127.0.0.1:8000` by default. Binding any
//!   non-loopback address requires an API key (`--api-key`, `MCP_MEMORY_API_KEY` or the
//!   file's `http.api_key`, resolved with the rest of the configuration), which clients send
//!   as `Authorization: Bearer <key>`; other requests get `401`.
//!
//! The store opens in the background: `initialize` is answered at once, and the first tool
//! call waits for the store (the embedding model itself loads on the first embed).

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use rmcp::ServiceExt;

use crate::backend;
use crate::config::Config;
use crate::config::settings::Secret;

pub mod http;
pub mod jsonrpc;
pub mod params;
pub mod sessions;
pub mod stdio;
pub mod tools;

pub use tools::MemoryServer;

/// `mcp-memory serve` options.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Serve streamable HTTP instead of stdio.
    #[arg(long)]
    pub http: bool,
    /// Address to bind with --http. Any non-loopback address requires an API key.
    #[arg(long, default_value = "127.0.0.1", requires = "http")]
    pub host: IpAddr,
    /// Port to bind with --http (0 picks a free port; the address is printed to stderr).
    #[arg(long, default_value_t = 8000, requires = "http")]
    pub port: u16,
    /// API key clients must send as `Authorization: Bearer <key>` (with --http). Else
    /// MCP_MEMORY_API_KEY or the file's `http.api_key`. Taken into the configuration
    /// ([`crate::config::Overrides::api_key`]) before `serve` runs.
    #[arg(long, value_name = "KEY", value_parser = parse_secret)]
    pub api_key: Option<Secret>,
    /// With --http: end a session after this many seconds without a request (the client
    /// then starts a new one). Else MCP_MEMORY_SESSION_IDLE_TIMEOUT, the file's
    /// `http.session_idle_timeout`, or 1800.
    #[arg(
        long,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub session_idle_timeout: Option<u64>,
    /// With --http: most sessions live at once; a new one ends the one idle the longest.
    /// Else MCP_MEMORY_MAX_SESSIONS, the file's `http.max_sessions`, or 200.
    #[arg(
        long,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub max_sessions: Option<usize>,
}

/// Longest JSON-RPC message read on stdio: room for the largest content a memory may hold
/// (16 MiB) with JSON escaping, so over-limit content gets a clear tool error.
pub const MAX_STDIO_LINE_BYTES: usize = 4 * memory_core::limits::MAX_CONTENT_BYTES;

/// `--api-key`'s value, held as a secret from the moment it is parsed.
fn parse_secret(value: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(value))
}

/// Runs the server until the client disconnects (stdio) or a shutdown signal (HTTP). The
/// API key is `config`'s (`--api-key` is one layer of its resolution: see
/// [`crate::config::Overrides::api_key`]).
pub async fn serve(config: Config, args: ServeArgs) -> Result<()> {
    let api_key = config.api_key.clone();
    if args.http {
        http::check_exposure(args.host, api_key.as_ref())?;
    }
    // Flag, else environment or file (read into `config`), else the default.
    let limits = sessions::SessionLimits {
        idle_timeout: std::time::Duration::from_secs(
            args.session_idle_timeout
                .or(config.session_idle_timeout)
                .unwrap_or(sessions::SessionLimits::DEFAULT_IDLE_TIMEOUT.as_secs()),
        ),
        max_sessions: args
            .max_sessions
            .or(config.max_sessions)
            .unwrap_or(sessions::SessionLimits::DEFAULT_MAX_SESSIONS),
    };
    let store = tools::open_in_background(async move {
        let store = backend::open_serving(&config).await?;
        // Warm the model up now, off every request's path: the first search then waits
        // only for what is left of it (it shares the same load), not for all of it.
        let warming = Arc::clone(&store);
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            match warming.warm_up().await {
                Ok(()) => tracing::info!(
                    ms = started.elapsed().as_millis() as u64,
                    "embedding model warmed up"
                ),
                Err(e) => tracing::warn!("warming the embedding model up failed: {e}"),
            }
        });
        Ok(store)
    });
    if args.http {
        return http::serve(
            store,
            http::HttpOptions {
                host: args.host,
                port: args.port,
                api_key,
                sessions: limits,
            },
        )
        .await;
    }
    tracing::info!("serving MCP on stdio");
    // Lines up to 4× the content limit are read, so an over-limit memory gets a tool error
    // naming the limit; longer lines, and lines that do not parse, get a JSON-RPC error
    // from the transport (rmcp's own stdio transport drops them unanswered).
    let transport = stdio::LineTransport::new(
        tokio::io::stdin(),
        tokio::io::stdout(),
        MAX_STDIO_LINE_BYTES,
    );
    let running = MemoryServer::new(store)
        .serve(transport)
        .await
        .map_err(|e| anyhow::anyhow!("MCP handshake on stdio failed: {e}"))?;
    running.waiting().await?;
    Ok(())
}
