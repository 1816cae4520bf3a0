//! The MCP server at the protocol level, driven with raw bytes rather than rmcp's client
//! (which cannot send broken messages): every message it cannot take gets a JSON-RPC error
//! answer, over stdio and streamable HTTP, and it keeps serving afterwards; HTTP takes
//! bodies as large as stdio does; HTTP sessions are reclaimed.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

mod support;
use support::{http_client, http_command, mcp_memory_serve, start_http};

/// Longest wait for one answer (a debug build on a loaded two-core machine).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// What a stdio line or HTTP body is sent as, and the answer it must get.
struct Case {
    name: &'static str,
    message: Vec<u8>,
    /// The JSON-RPC error code of the answer.
    code: i64,
    /// The answer's id (`null` when the message has none that can be read).
    id: Value,
    /// Words the error message must contain.
    fragments: &'static [&'static str],
}

/// `{"jsonrpc":"2.0","id":<id>,"method":"tools/call","params":{"name":"memory_store",
/// "arguments":{"content":"x","metadata":<metadata>}}}` with `metadata` as raw text.
fn store_with_raw_metadata(id: u32, metadata: &str) -> Vec<u8> {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"memory_store","arguments":{{"content":"x","metadata":{metadata}}}}}}}"#
    )
    .into_bytes()
}

/// The protocol's bad-input corpus: messages that do not parse or are not JSON-RPC.
fn cases() -> Vec<Case> {
    let deep = format!("{}1{}", r#"{"a":"#.repeat(130), "}".repeat(130));
    let mut bad_utf8 = br#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"memory_store","arguments":{"content":""#.to_vec();
    bad_utf8.extend_from_slice(b"caf\xe9 \xff\xfe");
    bad_utf8.extend_from_slice(br#""}}}"#);
    let parse = |name, message, fragments| Case {
        name,
        message,
        code: -32700,
        id: Value::Null,
        fragments,
    };
    vec![
        parse("not-json", b"hello, server".to_vec(), &["Parse error"]),
        parse(
            "nan",
            store_with_raw_metadata(2, r#"{"n":NaN}"#),
            &["Parse error"],
        ),
        parse(
            "infinity",
            store_with_raw_metadata(3, r#"{"n":-Infinity}"#),
            &["Parse error"],
        ),
        parse(
            "number-beyond-f64",
            store_with_raw_metadata(4, r#"{"n":1e309}"#),
            &["Parse error", "number out of range"],
        ),
        parse(
            "nested-130-deep",
            store_with_raw_metadata(5, &deep),
            &["Parse error", "recursion limit", "128"],
        ),
        parse("invalid-utf8", bad_utf8, &["Parse error", "UTF-8"]),
        parse(
            "truncated",
            br#"{"jsonrpc":"2.0","id":7,"method":"ping""#.to_vec(),
            &["Parse error"],
        ),
        Case {
            name: "batch",
            message: br#"[{"jsonrpc":"2.0","id":8,"method":"ping"}]"#.to_vec(),
            code: -32600,
            id: Value::Null,
            fragments: &["Invalid Request", "batch"],
        },
        Case {
            name: "wrong-jsonrpc-version",
            message: br#"{"jsonrpc":"1.0","id":9,"method":"ping"}"#.to_vec(),
            code: -32600,
            id: json!(9),
            fragments: &["Invalid Request", "jsonrpc"],
        },
        Case {
            name: "method-not-a-string",
            message: br#"{"jsonrpc":"2.0","id":"ten","method":10}"#.to_vec(),
            code: -32600,
            id: json!("ten"),
            fragments: &["Invalid Request", "method"],
        },
        Case {
            name: "not-an-object",
            message: b"42".to_vec(),
            code: -32600,
            id: Value::Null,
            fragments: &["Invalid Request", "object"],
        },
    ]
}

/// `tools/call` whose `arguments` is not an object: invalid params naming `arguments`.
fn bad_arguments_cases() -> Vec<Case> {
    [("string", r#""content""#), ("array", "[1]"), ("number", "5")]
        .into_iter()
        .enumerate()
        .map(|(i, (kind, args))| Case {
            name: kind,
            message: format!(
                r#"{{"jsonrpc":"2.0","id":{},"method":"tools/call","params":{{"name":"memory_list","arguments":{args}}}}}"#,
                20 + i
            )
            .into_bytes(),
            code: -32602,
            id: json!(20 + i),
            fragments: &["`arguments`", "object"],
        })
        .collect()
}

fn check_answer(case: &Case, answer: &Value) -> Result<(), String> {
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    let missing: Vec<_> = case
        .fragments
        .iter()
        .filter(|f| !message.contains(**f))
        .collect();
    if answer["jsonrpc"] != "2.0"
        || answer.get("id") != Some(&case.id)
        || answer["error"]["code"] != case.code
        || !missing.is_empty()
    {
        return Err(format!(
            "{}: expected code {} id {} with {:?}, got {answer}",
            case.name, case.code, case.id, case.fragments
        ));
    }
    Ok(())
}

// ---- stdio ------------------------------------------------------------------------------

/// `mcp-memory serve` on stdio, spoken to line by line.
struct RawStdio {
    _child: Child,
    stdin: ChildStdin,
    stdout: tokio::io::Lines<BufReader<ChildStdout>>,
}

impl RawStdio {
    /// Starts the server and completes the MCP handshake.
    async fn start(db: &Path) -> Self {
        let mut cmd = mcp_memory_serve(db);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn mcp-memory serve");
        let mut server = Self {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
            _child: child,
        };
        server
            .send(br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#)
            .await;
        let answer = server.answer().await;
        assert_eq!(answer["id"], 0, "{answer}");
        server
            .send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        server
    }

    async fn send(&mut self, line: &[u8]) {
        self.stdin.write_all(line).await.unwrap();
        self.stdin.write_all(b"\n").await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The next line the server writes, as JSON.
    async fn answer(&mut self) -> Value {
        let line = tokio::time::timeout(ANSWER_TIMEOUT, self.stdout.next_line())
            .await
            .expect("the server answers (no answer means the line was dropped)")
            .unwrap()
            .expect("the server is still running");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Sends `case`, then a ping; returns the case's answer once the ping is answered too
    /// (the server kept serving).
    async fn exchange(&mut self, message: &[u8], ping_id: u64) -> Value {
        self.send(message).await;
        self.send(format!(r#"{{"jsonrpc":"2.0","id":{ping_id},"method":"ping"}}"#).as_bytes())
            .await;
        let (mut answer, mut pong) = (None, None);
        // Two answers are expected; tool calls run concurrently, so either may come first.
        for _ in 0..2 {
            let a = self.answer().await;
            if a["id"] == ping_id && a.get("result").is_some() {
                pong = Some(a);
            } else {
                answer = Some(a);
            }
        }
        assert!(
            pong.is_some(),
            "the ping after the message was not answered"
        );
        answer.expect("an answer to the message")
    }
}

#[tokio::test]
async fn stdio_answers_every_line_it_cannot_take_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = RawStdio::start(&dir.path().join("m.db")).await;
    let mut failures = Vec::new();
    for (i, case) in cases().iter().chain(&bad_arguments_cases()).enumerate() {
        let answer = server.exchange(&case.message, 1000 + i as u64).await;
        if let Err(e) = check_answer(case, &answer) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn stdio_answers_a_line_over_the_limit_with_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = RawStdio::start(&dir.path().join("m.db")).await;
    let limit = 4 * memory_core::limits::MAX_CONTENT_BYTES;
    let head = br#"{"jsonrpc":"2.0","id":99,"method":"tools/call","params":{"name":"memory_store","arguments":{"content":""#;
    let tail = br#""}}}"#;
    let mut line = head.to_vec();
    line.resize(limit + 1 - tail.len(), b'a');
    line.extend_from_slice(tail);
    let answer = server.exchange(&line, 100).await;
    let case = Case {
        name: "over-the-line-limit",
        message: Vec::new(),
        code: -32600,
        id: json!(99),
        fragments: &["Invalid Request", "67108864 bytes", "16777216"],
    };
    check_answer(&case, &answer).unwrap();
}

// ---- streamable HTTP ----------------------------------------------------------------------

/// A raw HTTP/1.1 response: status, headers (lower-case names) and the body when it has a
/// `Content-Length`.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "HTTP {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// POSTs `body` to `url` as an MCP client would (JSON, accepting JSON and SSE), with
/// `extra` header lines; `declared_length` overrides the `Content-Length` sent.
async fn raw_post(
    url: &str,
    extra: &[String],
    body: &[u8],
    declared_length: Option<usize>,
) -> RawResponse {
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        declared_length.unwrap_or(body.len())
    );
    for h in extra {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut reader = BufReader::new(stream);
    let read = async {
        let mut status_line = String::new();
        reader.read_line(&mut status_line).await.unwrap();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let mut response = RawResponse {
            status,
            headers,
            body: Vec::new(),
        };
        if let Some(n) = response.header("content-length") {
            let mut body = vec![0; n.parse().unwrap()];
            reader.read_exact(&mut body).await.unwrap();
            response.body = body;
        }
        response
    };
    tokio::time::timeout(ANSWER_TIMEOUT, read)
        .await
        .expect("the server answers")
}

const INITIALIZE: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

#[tokio::test]
async fn http_answers_bodies_it_cannot_take_with_json_rpc_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_http(http_command(&dir.path().join("m.db"), &[]));
    let mut failures = Vec::new();
    for case in cases() {
        let response = raw_post(&server.url, &[], &case.message, None).await;
        // The streamable HTTP transport: a message the server cannot accept gets an HTTP
        // error status (400), with a JSON-RPC error as the body.
        if response.status != 400 || response.header("content-type") != Some("application/json") {
            failures.push(format!(
                "{}: HTTP {} {:?}: {}",
                case.name,
                response.status,
                response.header("content-type"),
                String::from_utf8_lossy(&response.body)
            ));
            continue;
        }
        if let Err(e) = check_answer(&case, &response.json()) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // And it keeps serving.
    assert_eq!(
        raw_post(&server.url, &[], INITIALIZE, None).await.status,
        200
    );
}

#[tokio::test]
async fn http_tools_call_with_arguments_not_an_object_is_invalid_params() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_http(http_command(&dir.path().join("m.db"), &[]));
    let init = raw_post(&server.url, &[], INITIALIZE, None).await;
    let session = init
        .header("mcp-session-id")
        .expect("a session id")
        .to_owned();
    let headers = [
        format!("Mcp-Session-Id: {session}"),
        "MCP-Protocol-Version: 2025-06-18".to_owned(),
    ];
    let initialized = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(
        raw_post(&server.url, &headers, initialized, None)
            .await
            .status,
        202
    );
    for case in bad_arguments_cases() {
        // The answer comes as a server-sent event: `data: <json>`.
        let rest = server.url.strip_prefix("http://").unwrap();
        let (authority, path) = rest.split_at(rest.find('/').unwrap());
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\n{}\r\n{}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            headers[0],
            headers[1],
            case.message.len()
        );
        let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.write_all(&case.message).await.unwrap();
        let mut reader = BufReader::new(stream).lines();
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, async {
            // Bounded by the timeout; an SSE stream ends after its one response.
            while let Some(line) = reader.next_line().await.unwrap() {
                if let Some(data) = line.strip_prefix("data:")
                    && let Ok(v) = serde_json::from_str::<Value>(data.trim())
                    && v.get("id").is_some()
                {
                    return v;
                }
            }
            panic!("{}: no answer in the event stream", case.name)
        })
        .await
        .expect("the server answers");
        check_answer(&case, &answer).unwrap();
    }
}

#[tokio::test]
async fn http_stores_content_over_4_mib_like_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_http(http_command(&dir.path().join("m.db"), &[]));
    let client = http_client(&server.url, None).await;
    // 5 MiB: over rmcp's default body cap of 4 MiB, under the 16 MiB content limit.
    let content = "large memory. ".repeat(5 * 1024 * 1024 / 14);
    let mut args = serde_json::Map::new();
    args.insert("content".into(), json!(content));
    let result = client
        .call_tool(rmcp::model::CallToolRequestParams::new("memory_store").with_arguments(args))
        .await
        .expect("a 5 MiB memory is not refused by the transport");
    let text = result.content[0].as_text().unwrap().text.clone();
    assert_ne!(result.is_error, Some(true), "{text}");
    assert!(text.contains("\"stored\""), "{text}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn http_refuses_a_body_over_the_cap_with_a_json_rpc_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_http(http_command(&dir.path().join("m.db"), &[]));
    let limit = 4 * memory_core::limits::MAX_CONTENT_BYTES;
    // The declared length is refused before a byte of the body is read, so none is sent
    // (`Expect: 100-continue` is how a client asks first).
    let response = raw_post(
        &server.url,
        &["Expect: 100-continue".to_owned()],
        b"",
        Some(limit + 1),
    )
    .await;
    assert_eq!(response.status, 413);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let case = Case {
        name: "body-over-the-cap",
        message: Vec::new(),
        code: -32600,
        id: Value::Null,
        fragments: &["Invalid Request", "67108864 bytes", "16777216"],
    };
    check_answer(&case, &response.json()).unwrap();
}

/// Starts a session with a raw `initialize`; returns its id.
async fn open_session(url: &str) -> String {
    let response = raw_post(url, &[], INITIALIZE, None).await;
    assert_eq!(response.status, 200);
    response
        .header("mcp-session-id")
        .expect("a session id")
        .to_owned()
}

/// Whether the server still knows `session`: 202 for a notification in a live session,
/// 404 once the session has ended.
async fn session_status(url: &str, session: &str) -> u16 {
    let headers = [
        format!("Mcp-Session-Id: {session}"),
        "MCP-Protocol-Version: 2025-06-18".to_owned(),
    ];
    let body = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    raw_post(url, &headers, body, None).await.status
}

#[tokio::test]
async fn http_sessions_over_the_cap_end_the_one_idle_the_longest() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_http(http_command(
        &dir.path().join("m.db"),
        &["--max-sessions", "3"],
    ));
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(open_session(&server.url).await);
    }
    // The first is used again, so the second is now the one idle the longest.
    assert_eq!(session_status(&server.url, &sessions[0]).await, 202);
    let fourth = open_session(&server.url).await;
    assert_eq!(session_status(&server.url, &sessions[1]).await, 404);
    for live in [&sessions[0], &sessions[2], &fourth] {
        assert_eq!(session_status(&server.url, live).await, 202);
    }
}

#[tokio::test]
async fn http_sessions_end_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_http(http_command(
        &dir.path().join("m.db"),
        &["--session-idle-timeout", "1"],
    ));
    let session = open_session(&server.url).await;
    assert_eq!(session_status(&server.url, &session).await, 202);
    // Every probe is a request that keeps the session alive, so each wait is longer than
    // the timeout, doubling in case the machine is slow (bounded: 2 + 4 + 8 + 16 s).
    let mut status = 202;
    for wait in [2, 4, 8, 16] {
        tokio::time::sleep(Duration::from_secs(wait)).await;
        status = session_status(&server.url, &session).await;
        if status != 202 {
            break;
        }
    }
    assert_eq!(status, 404, "the idle session was not ended");
}
