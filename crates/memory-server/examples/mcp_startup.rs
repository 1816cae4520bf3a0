//! Measures MCP start-up (process spawn → `initialize` answered, over stdio) and, with
//! `--rss`, the server's resident memory.
//!
//! ```text
//! cargo build --release -p memory-server
//! cargo run --release -p memory-server --example mcp_startup -- [BINARY] [RUNS] [--rss N] [--json]
//! ```
//!
//! * `BINARY` defaults to `target/release/mcp-memory` next to this example; `RUNS` to 20.
//!   Each start-up run uses a fresh temporary database (so the run includes creating it) and
//!   the minimum, quartiles, median and maximum are printed.
//! * `--rss N` also measures resident memory (Linux: `VmRSS` and the peak `VmHWM` of the
//!   server from `/proc/<pid>/status`) at three points: idle right after `initialize` was
//!   answered (empty store); with a store of `N` memories open (after a `memory_list` call,
//!   which waits for the store; the model not loaded yet); and after a `memory_search` on that
//!   store (the model loaded, the query embedded and ranked). The store is built here first,
//!   its memories carrying seeded random unit vectors (no embedding time), in a temporary
//!   directory removed afterwards.
//! * `--first-search N` measures the cold first search: `N` runs, each a fresh server on a
//!   store of 1,000 memories, as a client talks to it: `initialize`, `initialized`,
//!   `tools/list`, then at once a `memory_search` (the first: the model loads in the
//!   background from start-up, and this search waits for what is left), then another
//!   (warm; another query, so no cache answers it). Reported: the medians of both and of
//!   their difference per run, also for a first search sent 500 ms after `tools/list` (a
//!   client that is a person typing never asks sooner). `MCP_MEMORY_EMBED_ENGINE` passes
//!   through to the server, so each engine can be measured.
//! * `--json` prints one JSON object instead of text (for `cargo xtask bench`).
//!
//! Nothing here asserts a timing.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memory_core::{Memory, Tags};
use memory_embed::{DEFAULT_MODEL_ID, Embedder, LazyEmbedder};
use memory_sqlite::SqliteConfig;
use memory_storage::MemoryStorage;
use serde_json::{Value, json};

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"mcp_startup","version":"1"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// Command-line options.
struct Options {
    binary: PathBuf,
    runs: usize,
    rss_store: Option<usize>,
    first_search: Option<usize>,
    json: bool,
}

fn options() -> Options {
    let mut positional = Vec::new();
    let mut rss_store = None;
    let mut first_search = None;
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = true,
            "--rss" => {
                let n = args
                    .next()
                    .and_then(|n| n.replace('_', "").parse::<usize>().ok())
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| panic!("--rss needs a store size, e.g. --rss 10000"));
                rss_store = Some(n);
            }
            "--first-search" => {
                let n = args
                    .next()
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| panic!("--first-search needs a number of runs, e.g. 10"));
                first_search = Some(n);
            }
            _ => positional.push(arg),
        }
    }
    let mut positional = positional.into_iter();
    let binary = positional.next().map(PathBuf::from).unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("current exe");
        // target/release/examples/mcp_startup → target/release/mcp-memory
        exe.parent()
            .and_then(|p| p.parent())
            .map(|p| p.join("mcp-memory"))
            .expect("target directory")
    });
    let runs = positional
        .next()
        .map(|r| {
            r.parse()
                .unwrap_or_else(|_| panic!("RUNS must be a number, not {r:?}"))
        })
        .unwrap_or(20usize)
        .max(1);
    Options {
        binary,
        runs,
        rss_store,
        first_search,
        json,
    }
}

/// A running `mcp-memory serve` over stdio.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Server {
    fn spawn(binary: &Path, db: &Path) -> Self {
        let mut child = Command::new(binary)
            .arg("--db")
            .arg(db)
            .arg("serve")
            .env("MCP_MEMORY_LOG", "off")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Self {
            child,
            stdin: Some(stdin),
            stdout,
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to the server");
        stdin.flush().expect("flush");
    }

    /// Reads lines until the answer to request `id`.
    fn answer(&mut self, id: u64) -> Value {
        loop {
            let mut line = String::new();
            let n = self
                .stdout
                .read_line(&mut line)
                .expect("read from the server");
            assert!(
                n > 0,
                "the server closed stdout before answering request {id}"
            );
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if value.get("id").and_then(Value::as_u64) == Some(id) {
                assert!(value.get("error").is_none(), "request {id} failed: {value}");
                return value;
            }
        }
    }

    /// Calls tool `name` and returns its result, which must not be a tool error.
    fn call_tool(&mut self, id: u64, name: &str, arguments: Value) -> Value {
        let request = json!({
            "jsonrpc": "2.0",
            "id": id,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        });
        self.send(&request.to_string());
        let answer = self.answer(id);
        let result = answer.get("result").cloned().unwrap_or(Value::Null);
        assert!(
            result.get("isError").and_then(Value::as_bool) != Some(true),
            "{name} failed: {answer}"
        );
        result
    }

    /// `VmRSS` and `VmHWM` in KiB (Linux only).
    fn memory(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Closes stdin (EOF: the server exits) and waits.
    fn stop(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Spawn → `initialize` answered, `runs` times, each on a fresh database in `dir`.
fn startup(binary: &Path, runs: usize, dir: &Path) -> Vec<Duration> {
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs {
        let db = dir.join(format!("m{i}.db"));
        let started = Instant::now();
        let mut server = Server::spawn(binary, &db);
        server.send(INITIALIZE);
        let answer = server.answer(1);
        let elapsed = started.elapsed();
        assert!(
            answer.pointer("/result/serverInfo").is_some(),
            "unexpected answer: {answer}"
        );
        times.push(elapsed);
        server.stop();
    }
    times.sort();
    times
}

/// A tiny seeded generator (xorshift64*), enough for random unit vectors.
struct Rng(u64);

impl Rng {
    fn unit_vector(&mut self, dims: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dims)
            .map(|_| {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
                (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect();
        let norm = v
            .iter()
            .map(|x| x * x)
            .sum::<f32>()
            .sqrt()
            .max(f32::MIN_POSITIVE);
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }
}

/// Builds a store of `n` memories carrying random vectors at `db`.
fn build_store(db: &Path, n: usize) {
    let runtime = tokio::runtime::Runtime::new().expect("a Tokio runtime");
    runtime.block_on(async {
        let embedder: Arc<dyn Embedder> =
            Arc::new(LazyEmbedder::new(DEFAULT_MODEL_ID, None).expect("the default model"));
        let dims = embedder.dimensions();
        let store = SqliteConfig::new(db)
            .open(embedder)
            .await
            .expect("open the store");
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut i = 0;
        while i < n {
            let batch: Vec<Memory> = (i..(i + 1_000).min(n))
                .map(|j| {
                    Memory::new(format!(
                        "memory number {j}: notes about topic {} and project {}",
                        j % 97,
                        j % 13
                    ))
                    .expect("valid content")
                    .with_tags(Tags::parse(format!("topic{}", j % 20)).expect("valid tag"))
                    .with_embedding(rng.unit_vector(dims))
                })
                .collect();
            i += batch.len();
            for outcome in store.store_batch(batch).await.expect("store a batch") {
                outcome.expect("store a memory");
            }
        }
    });
}

/// Resident memory of the server at the three points (see the crate docs).
fn rss(binary: &Path, n: usize, dir: &Path) -> Value {
    let kib = |m: Option<(u64, u64)>| match m {
        Some((rss, hwm)) => json!({"rss_kib": rss, "hwm_kib": hwm}),
        None => Value::Null,
    };
    // Idle right after initialize, empty store.
    let mut server = Server::spawn(binary, &dir.join("idle.db"));
    server.send(INITIALIZE);
    server.answer(1);
    server.send(INITIALIZED);
    let idle = kib(server.memory());
    server.stop();

    let db = dir.join(format!("store_{n}.db"));
    build_store(&db, n);
    let mut server = Server::spawn(binary, &db);
    server.send(INITIALIZE);
    server.answer(1);
    server.send(INITIALIZED);
    server.call_tool(2, "memory_list", json!({"page_size": 1}));
    let opened = kib(server.memory());
    let result = server.call_tool(
        3,
        "memory_search",
        json!({"query": "notes about project 7", "limit": 5}),
    );
    assert!(!result.is_null(), "memory_search answered nothing");
    let searched = kib(server.memory());
    server.stop();
    json!({
        "store_memories": n,
        "idle_after_initialize": idle,
        "store_open": opened,
        "after_search": searched,
    })
}

/// The cold first search against a warm one (see the crate docs): medians in ms.
fn first_search(binary: &Path, runs: usize, dir: &Path) -> Value {
    let db = dir.join("first_search.db");
    build_store(&db, 1_000);
    let tools_list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let measure = |pause: Duration| {
        let (mut first, mut warm, mut extra) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..runs {
            let mut server = Server::spawn(binary, &db);
            server.send(INITIALIZE);
            server.answer(1);
            server.send(INITIALIZED);
            server.send(tools_list);
            server.answer(2);
            std::thread::sleep(pause);
            let timed = |server: &mut Server, id: u64, query: String| {
                let started = Instant::now();
                server.call_tool(id, "memory_search", json!({"query": query, "limit": 5}));
                started.elapsed()
            };
            let cold = timed(&mut server, 3, format!("notes about project {run} (first)"));
            let hot = timed(&mut server, 4, format!("notes about topic {run} (second)"));
            server.stop();
            first.push(cold);
            warm.push(hot);
            extra.push(cold.as_secs_f64() - hot.as_secs_f64());
        }
        let med = |mut v: Vec<Duration>| {
            v.sort();
            v[v.len() / 2].as_secs_f64() * 1000.0
        };
        extra.sort_by(f64::total_cmp);
        json!({
            "pause_ms": pause.as_millis() as u64,
            "runs": runs,
            "first_search_ms": med(first),
            "warm_search_ms": med(warm),
            "first_minus_warm_ms": extra[extra.len() / 2] * 1000.0,
        })
    };
    json!({
        "store_memories": 1_000,
        "at_once": measure(Duration::ZERO),
        "after_500_ms": measure(Duration::from_millis(500)),
    })
}

fn main() {
    let options = options();
    let dir = std::env::temp_dir().join(format!("mcp_startup_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    let times = startup(&options.binary, options.runs, &dir);
    let rss = options.rss_store.map(|n| rss(&options.binary, n, &dir));
    let first = options
        .first_search
        .map(|runs| first_search(&options.binary, runs, &dir));
    let _ = std::fs::remove_dir_all(&dir);

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| ms(times[((times.len() - 1) as f64 * q).round() as usize]);
    if options.json {
        let out = json!({
            "binary": options.binary.display().to_string(),
            "startup_ms": {
                "runs": times.len(),
                "min": at(0.0),
                "q1": at(0.25),
                "median": at(0.5),
                "q3": at(0.75),
                "max": at(1.0),
            },
            "rss": rss.unwrap_or(Value::Null),
            "first_search": first.unwrap_or(Value::Null),
        });
        println!("{out}");
        return;
    }
    println!(
        "{}: spawn → initialize answered over {} runs: min {:.1} ms, median {:.1} ms, max {:.1} ms",
        options.binary.display(),
        times.len(),
        at(0.0),
        at(0.5),
        at(1.0),
    );
    if let Some(rss) = rss {
        println!(
            "resident memory (KiB): {}",
            serde_json::to_string_pretty(&rss).expect("json")
        );
    }
    if let Some(first) = first {
        println!(
            "first search after start vs a warm one (ms, medians): {}",
            serde_json::to_string_pretty(&first).expect("json")
        );
    }
}
