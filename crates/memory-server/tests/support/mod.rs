//! Helpers shared by the MCP test files: the built binary, a clean environment for it, and
//! a `serve --http` child with an rmcp client.
// Each test file uses a subset of these helpers; the rest would be dead code there.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

/// An rmcp client with no handler of its own.
pub type Client = RunningService<RoleClient, ()>;

/// The `mcp-memory` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_mcp-memory");

/// Every variable the binary reads, cleared so the caller's environment cannot leak into a
/// test (the model directory stays: tests find the model where `fetch-model` put it).
pub const BINARY_VARS: [&str; 21] = [
    "MCP_MEMORY_STORAGE_BACKEND",
    "MCP_HYBRID_SYNC_INTERVAL",
    "MCP_MEMORY_SQLITE_PATH",
    "MCP_MEMORY_EMBEDDING_MODEL",
    "MCP_MEMORY_API_KEY",
    "MCP_MEMORY_CONFIG",
    "MCP_MEMORY_SESSION_IDLE_TIMEOUT",
    "MCP_MEMORY_MAX_SESSIONS",
    "CLOUDFLARE_API_TOKEN",
    "CLOUDFLARE_ACCOUNT_ID",
    "CLOUDFLARE_VECTORIZE_INDEX",
    "CLOUDFLARE_D1_DATABASE_ID",
    "CLOUDFLARE_R2_BUCKET",
    "CLOUDFLARE_EMBEDDING_MODEL",
    "CLOUDFLARE_LARGE_CONTENT_THRESHOLD",
    "CLOUDFLARE_MAX_RETRIES",
    "CLOUDFLARE_BASE_DELAY",
    "CLOUDFLARE_API_BASE_URL",
    "CLOUDFLARE_NAMESPACE",
    "CLOUDFLARE_REQUEST_TIMEOUT",
    "CLOUDFLARE_RATE_LIMIT",
];

/// A command of the binary isolated from the machine it runs on.
pub trait Isolated {
    /// Clears every variable the binary reads ([`BINARY_VARS`]), makes `config_home` the
    /// per-user configuration directory (so no `~/.config/mcp-memory/config.toml` of the
    /// developer's is read) and turns logging off.
    fn isolated(&mut self, config_home: &Path) -> &mut Self;
}

macro_rules! isolated_for {
    ($command:ty) => {
        impl Isolated for $command {
            fn isolated(&mut self, config_home: &Path) -> &mut Self {
                for var in BINARY_VARS {
                    self.env_remove(var);
                }
                self.env("XDG_CONFIG_HOME", config_home)
                    .env("MCP_MEMORY_LOG", "off")
            }
        }
    };
}

isolated_for!(std::process::Command);
isolated_for!(tokio::process::Command);

/// `mcp-memory --db <db> ARGS...`, isolated with the database's directory as the config
/// home.
pub fn mcp_memory(db: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(BIN);
    cmd.isolated(db.parent().expect("the database has a directory"))
        .arg("--db")
        .arg(db);
    cmd
}

/// `mcp-memory --db <db> serve` for an MCP client over stdio, isolated like [`mcp_memory`].
pub fn mcp_memory_serve(db: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.isolated(db.parent().expect("the database has a directory"))
        .arg("--db")
        .arg(db)
        .arg("serve");
    cmd
}

/// A `serve --http` child, killed on drop.
pub struct HttpServer {
    /// The server process.
    pub child: Child,
    /// `http://127.0.0.1:<port>/mcp`.
    pub url: String,
}

impl HttpServer {
    /// The server's `/mcp` URL on 127.0.0.1, also when it listens on every address
    /// (`--host 0.0.0.0` prints that address).
    pub fn loopback_url(&self) -> String {
        let port = self
            .url
            .rsplit(':')
            .next()
            .expect("the printed URL has a port")
            .trim_end_matches("/mcp");
        format!("http://127.0.0.1:{port}/mcp")
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mcp-memory --db <db> serve --http --port 0 <extra>` with a clean environment and
/// stderr piped (for [`start_http`]).
pub fn http_command(db: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = mcp_memory(db);
    cmd.args(["serve", "--http", "--port", "0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Starts the server and reads the bound URL from its stderr.
pub fn start_http(mut cmd: std::process::Command) -> HttpServer {
    let mut child = cmd.spawn().expect("spawn mcp-memory serve --http");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://"))
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server prints its address");
    HttpServer { child, url }
}

/// An rmcp client of the server at `url`, sending `key` as the bearer if given.
pub async fn http_client(url: &str, key: Option<&str>) -> Client {
    // reqwest is built without a default TLS provider (plain http here); it still wants one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    if let Some(k) = key {
        config = config.auth_header(k.to_owned());
    }
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("MCP handshake over HTTP")
}

/// The variables pointing the binary's Cloudflare backend at `emulator`: its URL, token and
/// account, the D1 database `database_id` and the Vectorize index `index`, and the model the
/// emulator's default stand-in answers (`@cf/baai/bge-small-en-v1.5`). The backend is not
/// chosen here (`migrate` names both); tests add `MCP_MEMORY_STORAGE_BACKEND` and their own
/// settings (rate limit, retries, fallback) to the list.
pub fn emulator_env(
    emulator: &cloudflare_emulator::EmulatorHandle,
    database_id: &str,
    index: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("CLOUDFLARE_API_BASE_URL", emulator.base_url()),
        ("CLOUDFLARE_API_TOKEN", emulator.config().tokens[0].clone()),
        (
            "CLOUDFLARE_ACCOUNT_ID",
            emulator.config().account_ids[0].clone(),
        ),
        ("CLOUDFLARE_D1_DATABASE_ID", database_id.to_owned()),
        ("CLOUDFLARE_VECTORIZE_INDEX", index.to_owned()),
        (
            "CLOUDFLARE_EMBEDDING_MODEL",
            "@cf/baai/bge-small-en-v1.5".to_owned(),
        ),
    ]
}
