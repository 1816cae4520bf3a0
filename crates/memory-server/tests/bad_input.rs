//! The bad-input corpus (`tests/bad_input/cases.json`) through the `mcp-memory` CLI and the
//! MCP server (stdio, rmcp's client), on the embedded backend.
//!
//! For every case: the refusal is clear (CLI: exit status 1, or 2 for a usage error, and
//! the stderr fragments; MCP: an `isError` tool result or an invalid-params error with the
//! fragments), the store is unchanged afterwards (an export / every page of `memory_list`
//! compared before and after) and the process did not panic (the server still answers).

#[path = "../../../tests/bad_input/corpus.rs"]
mod corpus;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use corpus::{CATEGORIES, Case, Corpus};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ErrorCode};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

mod support;
use support::{mcp_memory, mcp_memory_serve};

/// Longest wait for one tool call (the 16 MiB content case included, on a loaded machine).
const CALL_TOOL_SECS: u64 = 120;
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(CALL_TOOL_SECS);

fn corpus() -> Corpus {
    Corpus::load(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_corpus_has_50_cases_covering_every_category() {
    let corpus = corpus();
    let per_surface: BTreeMap<&str, usize> = ["library", "cli", "mcp"]
        .into_iter()
        .map(|s| (s, corpus.on(s).count()))
        .collect();
    let total: usize = per_surface.values().sum();
    assert!(total >= 50, "{total} cases: {per_surface:?}");
    for category in CATEGORIES {
        assert!(
            corpus.cases.iter().any(|c| c.category == category),
            "no case for {category}"
        );
    }
    for case in &corpus.cases {
        assert!(
            CATEGORIES.contains(&case.category.as_str()) || case.category == "unknown hashes",
            "{}: unknown category {}",
            case.id,
            case.category
        );
        for surface in ["cli", "mcp"] {
            if case.input(surface).is_some()
                && !["ok", "any"].contains(&case.kind(surface).as_str())
            {
                assert!(
                    !case.fragments(surface).is_empty(),
                    "{}: a refusal on {surface} must name what is wrong (fragments)",
                    case.id
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// CLI

fn cli(db: &Path, args: &[String]) -> Output {
    mcp_memory(db)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run mcp-memory")
}

fn cli_ok(db: &Path, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let out = cli(db, &args);
    assert!(
        out.status.success(),
        "mcp-memory {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Every live memory, as `export` writes it (all fields, full precision), plus the stats.
fn cli_snapshot(db: &Path) -> String {
    let mut lines: Vec<String> = cli_ok(db, &["export"]).lines().map(str::to_owned).collect();
    lines.sort();
    let stats: Value = serde_json::from_str(&cli_ok(db, &["--json", "stats"])).expect("stats");
    format!(
        "total={} tombstones={}\n{}",
        stats["total_memories"],
        stats["tombstones"],
        lines.join("\n")
    )
}

fn seed_cli(db: &Path, corpus: &Corpus) -> Vec<String> {
    corpus
        .seeds
        .iter()
        .map(|s| {
            let tags: Vec<&str> = s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            let tags = tags.join(",");
            let metadata = s["metadata"].to_string();
            let mut args = vec![
                "--json",
                "store",
                s["content"].as_str().unwrap(),
                "--tags",
                &tags,
                "--metadata",
                &metadata,
            ];
            if let Some(t) = s.get("memory_type").and_then(Value::as_str) {
                args.extend(["--type", t]);
            }
            let out: Value = serde_json::from_str(&cli_ok(db, &args)).expect("JSON");
            assert_eq!(out["outcome"], "stored", "{out}");
            out["content_hash"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// The CLI arguments of a case, with `$seed_hash` and `$file` expanded.
fn cli_args(case: &Case, dir: &Path, seeds: &[String]) -> Vec<String> {
    let mut files = 0;
    let expanded = corpus::expand(
        &case.input("cli").unwrap()["args"],
        &mut |name, arg| match name {
            "$seed_hash" => Some(json!(seeds[arg.as_u64().unwrap() as usize])),
            "$file" => {
                files += 1;
                let path: PathBuf = dir.join(format!("{}-{files}.input", case.id));
                std::fs::write(&path, corpus::file_bytes(arg)).expect("writing the input file");
                Some(json!(path.to_str().expect("a UTF-8 path")))
            }
            _ => None,
        },
    );
    expanded
        .as_array()
        .expect("cli.args is a list")
        .iter()
        .map(|a| a.as_str().expect("CLI arguments are strings").to_owned())
        .collect()
}

fn judge_cli(case: &Case, out: &Output) -> Vec<String> {
    let expect = case.expect("cli");
    let kind = case.kind("cli");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut problems = Vec::new();
    if stderr.contains("panicked") || out.status.code().is_none_or(|c| c > 2) {
        problems.push(format!("crashed ({}): {stderr}", out.status));
        return problems;
    }
    let exit = match expect.get("exit") {
        Some(Value::String(s)) if s == "any" => None,
        Some(v) => Some(v.as_i64().expect("exit is a number") as i32),
        None if kind == "ok" => Some(0),
        None => Some(1),
    };
    if let Some(exit) = exit
        && out.status.code() != Some(exit)
    {
        problems.push(format!(
            "expected exit {exit}, got {}: stdout {stdout:?} stderr {stderr:?}",
            out.status
        ));
    }
    let message = if out.status.success() {
        &stdout
    } else {
        &stderr
    };
    let missing = corpus::missing_fragments(message, &case.fragments("cli"));
    if !missing.is_empty() {
        problems.push(format!("output {message:?} lacks {missing:?}"));
    }
    if !out.status.success() && !stderr.trim_start().starts_with("error") {
        problems.push(format!("stderr does not start with `error`: {stderr:?}"));
    }
    problems
}

#[test]
fn every_cli_case_is_refused_clearly_and_changes_nothing() {
    let corpus = corpus();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let seeds = seed_cli(&db, &corpus);
    let mut before = cli_snapshot(&db);
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in corpus.on("cli") {
        let args = cli_args(case, dir.path(), &seeds);
        eprintln!("cli: {}", case.id);
        let out = cli(&db, &args);
        let mut problems = judge_cli(case, &out);
        let after = cli_snapshot(&db);
        if after != before {
            problems.push(format!(
                "the store changed: {} -> {}",
                corpus::digest(&before),
                corpus::digest(&after)
            ));
            before = after;
        }
        if !problems.is_empty() {
            failures.push(format!("{}\n    {}", case.label(), problems.join("\n    ")));
        }
        ran += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} CLI cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(ran >= 20, "only {ran} CLI cases");
}

// ---------------------------------------------------------------------------------------
// MCP

type Client = RunningService<RoleClient, ()>;

async fn mcp_client(db: &Path) -> Client {
    let cmd = mcp_memory_serve(db);
    let (transport, _stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mcp-memory serve");
    ().serve(transport).await.expect("MCP handshake")
}

/// How a call ended: a tool result (is_error, text) or a JSON-RPC error (code, message).
enum Reply {
    Tool { is_error: bool, text: String },
    Rpc { code: ErrorCode, message: String },
}

async fn mcp_call(client: &Client, tool: &str, args: Value) -> Result<Reply, String> {
    let Value::Object(map) = args else {
        panic!("arguments must be an object")
    };
    // A call the server never answers (a panicking handler) fails the case instead of
    // hanging the test.
    let call = client.call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(map));
    let Ok(reply) = tokio::time::timeout(CALL_TIMEOUT, call).await else {
        return Err(format!(
            "{tool}: no answer within {CALL_TIMEOUT:?} (did the handler panic?)"
        ));
    };
    match reply {
        Ok(r) => Ok(Reply::Tool {
            is_error: r.is_error == Some(true),
            text: r
                .content
                .iter()
                .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                .collect::<Vec<_>>()
                .join("\n"),
        }),
        Err(ServiceError::McpError(e)) => Ok(Reply::Rpc {
            code: e.code,
            message: e.message.into_owned(),
        }),
        Err(e) => Err(format!("the call broke: {e}")),
    }
}

async fn mcp_ok(client: &Client, tool: &str, args: Value) -> Value {
    match mcp_call(client, tool, args.clone()).await {
        Ok(Reply::Tool {
            is_error: false,
            text,
        }) => serde_json::from_str(&text).expect("a JSON answer"),
        Ok(Reply::Tool { text, .. }) => panic!("{tool} {args}: {text}"),
        Ok(Reply::Rpc { message, .. }) => panic!("{tool} {args}: {message}"),
        Err(e) => panic!("{tool} {args}: {e}"),
    }
}

/// Every page of `memory_list` (all fields) plus the health figures: what a client can see.
async fn mcp_snapshot(client: &Client) -> String {
    let mut out = String::new();
    for page in 1.. {
        let v = mcp_ok(
            client,
            "memory_list",
            json!({"page": page, "page_size": 100}),
        )
        .await;
        out.push_str(&v["memories"].to_string());
        if v["has_more"] != json!(true) {
            out.push_str(&format!(" total={}", v["total"]));
            break;
        }
    }
    let stats = mcp_ok(client, "memory_stats", json!({})).await;
    out.push_str(&format!(" tombstones={}", stats["tombstones"]));
    out
}

fn judge_mcp(case: &Case, reply: &Result<Reply, String>) -> Vec<String> {
    let expect = case.expect("mcp");
    let kind = case.kind("mcp");
    let fragments = case.fragments("mcp");
    let mut problems = Vec::new();
    let (refused, message) = match reply {
        Err(e) => return vec![e.clone()],
        Ok(Reply::Tool { is_error, text }) => (*is_error, text.clone()),
        Ok(Reply::Rpc { code, message }) => {
            if *code != ErrorCode::INVALID_PARAMS {
                problems.push(format!(
                    "a JSON-RPC error {code:?} that is not invalid-params"
                ));
            }
            (true, message.clone())
        }
    };
    match (kind.as_str(), refused) {
        ("ok", true) => problems.push(format!("expected success, got {message:?}")),
        ("ok" | "any", false) => {
            if let Some(r) = expect.get("results").and_then(Value::as_u64) {
                let v: Value = serde_json::from_str(&message).unwrap_or(Value::Null);
                let n = v
                    .get("count")
                    .or_else(|| v.get("total"))
                    .and_then(Value::as_u64)
                    .or_else(|| v["memories"].as_array().map(|a| a.len() as u64))
                    .or_else(|| v["results"].as_array().map(|a| a.len() as u64));
                if n != Some(r) {
                    problems.push(format!("expected {r} results: {message}"));
                }
            }
        }
        ("any", true) => {}
        (_, false) => problems.push(format!("expected a refusal, got {message:?}")),
        (_, true) => {}
    }
    if refused {
        let missing = corpus::missing_fragments(&message, &fragments);
        if !missing.is_empty() {
            problems.push(format!("message {message:?} lacks {missing:?}"));
        }
        for bad in ["panicked", "locked", "internal error"] {
            if message.contains(bad) {
                problems.push(format!("message mentions {bad}: {message:?}"));
            }
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mcp_case_is_refused_clearly_and_changes_nothing() {
    let corpus = corpus();
    let dir = tempfile::tempdir().unwrap();
    let client = mcp_client(&dir.path().join("m.db")).await;
    let mut seeds = Vec::new();
    for s in &corpus.seeds {
        let mut args = s.clone();
        if args.get("memory_type").is_none() {
            args.as_object_mut().unwrap().remove("memory_type");
        }
        let v = mcp_ok(&client, "memory_store", args).await;
        assert_eq!(v["outcome"], "stored", "{v}");
        seeds.push(v["content_hash"].as_str().unwrap().to_owned());
    }
    let mut before = mcp_snapshot(&client).await;
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in corpus.on("mcp") {
        let input = corpus::expand(case.input("mcp").unwrap(), &mut |name, arg| match name {
            "$seed_hash" => Some(json!(seeds[arg.as_u64().unwrap() as usize])),
            _ => None,
        });
        let tool = input["tool"].as_str().expect("mcp.tool");
        eprintln!("mcp: {}", case.id);
        let reply = mcp_call(&client, tool, input["args"].clone()).await;
        let mut problems = judge_mcp(case, &reply);
        // The server still answers, and nothing changed.
        let after = mcp_snapshot(&client).await;
        if after != before {
            problems.push(format!(
                "the store changed: {} -> {}",
                corpus::digest(&before),
                corpus::digest(&after)
            ));
            before = after;
        }
        if !problems.is_empty() {
            failures.push(format!("{}\n    {}", case.label(), problems.join("\n    ")));
        }
        ran += 1;
    }
    client.cancel().await.unwrap();
    assert!(
        failures.is_empty(),
        "{} of {ran} MCP cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(ran >= 30, "only {ran} MCP cases");
}
