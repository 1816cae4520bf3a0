//! Measures MCP start-up: process spawn → `initialize` answered, over stdio.
//!
//! ```text
//! cargo build --release -p memory-server
//! cargo run --release -p memory-server --example mcp_startup -- [BINARY] [RUNS]
//! ```
//!
//! `BINARY` defaults to `target/release/mcp-memory` next to this example; `RUNS` to 20. Each
//! run uses a fresh temporary database (so the run includes creating it) and prints the
//! minimum, median and maximum. Nothing here asserts a timing.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"mcp_startup","version":"1"}}}"#;

fn main() {
    let mut args = std::env::args().skip(1);
    let binary = args.next().map(PathBuf::from).unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("current exe");
        // target/release/examples/mcp_startup → target/release/mcp-memory
        exe.parent()
            .and_then(|p| p.parent())
            .map(|p| p.join("mcp-memory"))
            .expect("target directory")
    });
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(20);
    let dir = std::env::temp_dir().join(format!("mcp_startup_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    for i in 0..runs {
        let db = dir.join(format!("m{i}.db"));
        let started = Instant::now();
        let mut child = Command::new(&binary)
            .arg("--db")
            .arg(&db)
            .arg("serve")
            .env("MCP_MEMORY_LOG", "off")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "{INITIALIZE}").expect("write initialize");
        stdin.flush().expect("flush");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the answer");
        let elapsed = started.elapsed();
        assert!(line.contains("\"serverInfo\""), "unexpected answer: {line}");
        times.push(elapsed);
        drop(stdin); // EOF: the server exits
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{}: spawn → initialize answered over {runs} runs: min {:.1} ms, median {:.1} ms, max {:.1} ms",
        binary.display(),
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
    );
}
