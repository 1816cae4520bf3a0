//! Measures what streamable-HTTP sessions cost the server: its resident memory (Linux
//! `VmRSS`) idle, after `N` `initialize` calls (each opens a session that is never closed)
//! and after `N` more.
//!
//! ```text
//! cargo build --release -p memory-server
//! cargo run --release -p memory-server --example http_sessions -- [BINARY] [N] [-- SERVE ARGS...]
//! ```
//!
//! * `BINARY` defaults to `target/release/mcp-memory` next to this example; `N` to 3000.
//! * Arguments after `--` go to `mcp-memory serve --http` (e.g. `--max-sessions 100000` to
//!   see the cost of sessions that are never reclaimed, `--session-idle-timeout 5`).
//!
//! The server listens on 127.0.0.1 on a free port, on a temporary database, and is killed
//! at the end. Nothing here asserts a figure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"http_sessions","version":"1"}}}"#;

/// Resident and peak memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One `initialize` POST; returns whether the answer carried a session id.
fn initialize(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(10)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{INITIALIZE}",
        INITIALIZE.len()
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    // The headers are enough: the session exists once its id is sent.
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head)
        .to_ascii_lowercase()
        .contains("mcp-session-id")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut serve_args = Vec::new();
    while let Some(a) = args.next() {
        if a == "--" {
            serve_args.extend(args.by_ref());
            break;
        }
        positional.push(a);
    }
    let binary = positional.first().map(PathBuf::from).unwrap_or_else(|| {
        std::env::current_exe()
            .expect("the example's path")
            .parent()
            .and_then(|d| d.parent())
            .expect("target/<profile>/examples")
            .join("mcp-memory")
    });
    let n: usize = positional
        .get(1)
        .map(|s| s.parse().expect("N is a whole number"))
        .unwrap_or(3000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut child = Command::new(&binary)
        .arg("--db")
        .arg(dir.path().join("m.db"))
        .args(["serve", "--http", "--port", "0"])
        .args(&serve_args)
        .env("XDG_CONFIG_HOME", dir.path())
        .env("MCP_MEMORY_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
    let pid = child.id();
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    let addr: SocketAddr = loop {
        line.clear();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = child.kill();
            panic!("the server ended before it said where it listens");
        }
        if let Some(rest) = line.split("http://").nth(1) {
            break rest
                .trim()
                .trim_end_matches("/mcp")
                .parse()
                .expect("host:port");
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in stderr.lines() {});

    let idle = rss_kib(pid);
    let mut opened = 0;
    for _ in 0..n {
        opened += usize::from(initialize(addr));
    }
    let first = rss_kib(pid);
    for _ in 0..n {
        opened += usize::from(initialize(addr));
    }
    let second = rss_kib(pid);
    let _ = child.kill();
    let _ = child.wait();
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("serve --http {}", serve_args.join(" "));
    println!("sessions opened: {opened} of {}", 2 * n);
    println!(
        "resident: idle {:.0} MiB, after {n} initialize {:.0} MiB, after {} {:.0} MiB (peak {:.0} MiB)",
        mib(idle.0),
        mib(first.0),
        2 * n,
        mib(second.0),
        mib(second.1)
    );
}
