//! Two `mcp-memory serve` processes on one SQLite file, each driven by 4 concurrent
//! writers and 4 concurrent readers through its own rmcp client (8 writers and 8 readers in
//! all): no "database is locked" (or busy) error reaches any client, readers never see an
//! error, and every acknowledged write is in the store at the end, seen by both processes.
//!
//! Size: 8 writers × `MCP_MEMORY_CONCURRENCY_WRITES` memories each (default 12; every
//! store embeds on the CPU, so the soak sets it higher).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};

mod support;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};
use support::mcp_memory_serve;

type Client = RunningService<RoleClient, ()>;

const PROCESSES: usize = 2;
const WRITERS_PER_PROCESS: usize = 4;
const READERS_PER_PROCESS: usize = 4;

fn writes_per_writer() -> usize {
    std::env::var("MCP_MEMORY_CONCURRENCY_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

async fn serve(db: &Path) -> Client {
    let cmd = mcp_memory_serve(db);
    let (transport, _stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mcp-memory serve");
    ().serve(transport).await.expect("MCP handshake")
}

/// Calls a tool: the JSON answer, or the error text (a tool error or a protocol error).
async fn call(client: &Client, tool: &str, args: Value) -> Result<Value, String> {
    let Value::Object(map) = args else {
        panic!("arguments must be an object")
    };
    let result = client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(map))
        .await
        .map_err(|e| format!("{tool}: protocol error: {e}"))?;
    let text = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n");
    if result.is_error == Some(true) {
        return Err(format!("{tool}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("{tool}: not JSON ({e}): {text}"))
}

/// Every live memory's hash, through every page of `memory_list`.
async fn all_hashes(client: &Client) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for page in 1.. {
        let v = call(
            client,
            "memory_list",
            json!({"page": page, "page_size": 100}),
        )
        .await
        .unwrap_or_else(|e| panic!("listing: {e}"));
        for m in v["memories"].as_array().expect("memories") {
            out.insert(m["content_hash"].as_str().expect("hash").to_owned());
        }
        if v["has_more"] != json!(true) {
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_writers_and_eight_readers_in_two_processes_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let mut clients = Vec::new();
    for _ in 0..PROCESSES {
        clients.push(Arc::new(serve(&db).await));
    }
    // Both processes have the store open (and the model loaded) before the clock starts.
    for (p, c) in clients.iter().enumerate() {
        call(
            c,
            "memory_store",
            json!({"content": format!("warm-up of process {p}")}),
        )
        .await
        .unwrap_or_else(|e| panic!("warm-up: {e}"));
    }
    let per_writer = writes_per_writer();
    let writing = Arc::new(AtomicBool::new(true));
    let reads = Arc::new(AtomicU64::new(0));

    let mut writers = Vec::new();
    for (p, client) in clients.iter().enumerate() {
        for w in 0..WRITERS_PER_PROCESS {
            let client = Arc::clone(client);
            writers.push(tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut errors = Vec::new();
                for i in 0..per_writer {
                    let content = format!(
                        "Process {p} writer {w} note {i}: the build on shelf {} passed.",
                        p * 1000 + w * 100 + i
                    );
                    let args = json!({
                        "content": content,
                        "tags": [format!("p{p}"), format!("w{w}")],
                        "metadata": {"i": i},
                    });
                    match call(&client, "memory_store", args).await {
                        Ok(v) if v["outcome"] == "stored" => {
                            acknowledged.push(v["content_hash"].as_str().expect("hash").to_owned())
                        }
                        Ok(v) => errors.push(format!("unexpected outcome {v}")),
                        Err(e) => errors.push(e),
                    }
                }
                (acknowledged, errors)
            }));
        }
    }
    let mut readers = Vec::new();
    for (p, client) in clients.iter().enumerate() {
        for r in 0..READERS_PER_PROCESS {
            let client = Arc::clone(client);
            let writing = Arc::clone(&writing);
            let reads = Arc::clone(&reads);
            readers.push(tokio::spawn(async move {
                let mut errors = Vec::new();
                let mut n = 0u64;
                // At least one read of each kind, then until the writers are done.
                while n < 3 || writing.load(Ordering::Relaxed) {
                    let (tool, args) = match (n + r as u64) % 3 {
                        0 => (
                            "memory_list",
                            json!({"page_size": 50, "tags": format!("p{}", 1 - p)}),
                        ),
                        1 => (
                            "memory_search",
                            json!({"query": "shelf", "mode": "exact", "limit": 20}),
                        ),
                        _ => (
                            "memory_search",
                            json!({"query": "which build passed", "limit": 5}),
                        ),
                    };
                    if let Err(e) = call(&client, tool, args).await {
                        errors.push(e);
                    }
                    n += 1;
                    reads.fetch_add(1, Ordering::Relaxed);
                }
                errors
            }));
        }
    }

    let mut acknowledged = BTreeSet::new();
    let mut write_errors = Vec::new();
    for w in writers {
        let (acks, errors) = w.await.expect("a writer task");
        acknowledged.extend(acks);
        write_errors.extend(errors);
    }
    writing.store(false, Ordering::Relaxed);
    let mut read_errors = Vec::new();
    for r in readers {
        read_errors.extend(r.await.expect("a reader task"));
    }

    let locked: Vec<&String> = write_errors
        .iter()
        .chain(&read_errors)
        .filter(|e| {
            let e = e.to_lowercase();
            e.contains("locked") || e.contains("busy")
        })
        .collect();
    assert!(
        locked.is_empty(),
        "lock errors reached a client: {locked:?}"
    );
    assert!(
        write_errors.is_empty(),
        "writers saw errors: {write_errors:?}"
    );
    assert!(
        read_errors.is_empty(),
        "readers saw errors: {read_errors:?}"
    );
    let expected = PROCESSES * WRITERS_PER_PROCESS * per_writer;
    assert_eq!(acknowledged.len(), expected, "every write was acknowledged");
    assert!(reads.load(Ordering::Relaxed) >= (PROCESSES * READERS_PER_PROCESS * 3) as u64);

    // Every acknowledged write is there, seen the same by both processes.
    for (p, client) in clients.iter().enumerate() {
        let mut seen = all_hashes(client).await;
        assert_eq!(
            seen.len(),
            expected + PROCESSES,
            "process {p} sees every memory"
        );
        seen.retain(|h| acknowledged.contains(h));
        assert_eq!(
            seen, acknowledged,
            "process {p}: an acknowledged write is missing"
        );
        // Semantic search in each process finds the other process's writes too.
        let other = format!("p{}", 1 - p);
        let hits = call(
            client,
            "memory_search",
            json!({"query": "which build passed", "tags": other, "limit": 100}),
        )
        .await
        .unwrap_or_else(|e| panic!("search: {e}"));
        assert_eq!(
            hits["count"].as_u64(),
            Some((WRITERS_PER_PROCESS * per_writer).min(100) as u64),
            "process {p}'s index follows the other process's writes"
        );
    }
    for c in clients {
        Arc::into_inner(c)
            .expect("no task holds a client any more")
            .cancel()
            .await
            .unwrap();
    }
}
