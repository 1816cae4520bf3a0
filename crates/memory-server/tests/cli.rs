//! The `mcp-memory` CLI, driven as a user would: the built binary on a temporary database.

use std::path::Path;
use std::process::{Command, Output};

mod support;
use support::mcp_memory;

fn cli(db: &Path, args: &[&str]) -> Output {
    mcp_memory(db).args(args).output().expect("run mcp-memory")
}

fn ok(db: &Path, args: &[&str]) -> String {
    let out = cli(db, args);
    assert!(
        out.status.success(),
        "mcp-memory {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn fails(db: &Path, args: &[&str]) -> String {
    let out = cli(db, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "mcp-memory {args:?} should fail"
    );
    String::from_utf8(out.stderr).expect("UTF-8 errors")
}

#[test]
fn store_then_search_finds_the_memory_by_meaning() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    ok(
        &db,
        &["store", "The cat sits on the mat.", "--tags", "pets"],
    );
    ok(&db, &["store", "Quarterly revenue grew by twelve percent."]);

    let out = ok(&db, &["search", "a kitten resting on a rug", "-n", "2"]);

    let first = out.lines().next().expect("a result line");
    assert!(first.contains("The cat sits on the mat."), "{out}");
    assert!(first.contains("[pets]"), "{out}");
}

#[test]
fn json_output_is_machine_readable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let stored: serde_json::Value = serde_json::from_str(&ok(
        &db,
        &["--json", "store", "Use rustls", "--type", "decision"],
    ))
    .unwrap();
    assert_eq!(stored["outcome"], "stored");

    let listed: serde_json::Value = serde_json::from_str(&ok(&db, &["--json", "list"])).unwrap();
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["memories"][0]["memory_type"], "decision");
    assert_eq!(
        listed["memories"][0]["content_hash"],
        stored["content_hash"]
    );
}

#[test]
fn bad_input_is_refused_with_the_field_named_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    ok(&db, &["store", "keep me", "--tags", "a"]);
    let long_tag = "x".repeat(101);
    let bad_file = dir.path().join("latin1.txt");
    std::fs::write(&bad_file, b"caf\xe9").unwrap();
    let bad_file = bad_file.to_str().unwrap();
    let cases: [(&[&str], &str); 8] = [
        (&["store", "   "], "content"),
        (&["store", "x", "--tags", &long_tag], "tags"),
        (&["store", "x", "--tags", "[\"a\","], "tags"),
        (&["store", "x", "--metadata", "{\"n\": NaN}"], "metadata"),
        (&["store", "x", "--metadata", "[1]"], "metadata"),
        (&["store", "--file", bad_file], "UTF-8"),
        (&["search", "q", "-n", "0"], "limit"),
        (&["delete", "not-a-hash"], "content_hash"),
    ];
    for (args, field) in cases {
        let err = fails(&db, args);
        assert!(err.contains(field), "{args:?}: {err:?} should name {field}");
    }
    let unknown = "a".repeat(64);
    assert!(fails(&db, &["delete", &unknown]).contains("not found"));
    assert!(ok(&db, &["store", "Keep me  "]).starts_with("already stored, unchanged"));
    let dup: serde_json::Value =
        serde_json::from_str(&ok(&db, &["--json", "store", "KEEP ME"])).unwrap();
    assert_eq!(dup["outcome"], "duplicate");

    let listed: serde_json::Value = serde_json::from_str(&ok(&db, &["--json", "list"])).unwrap();
    assert_eq!(listed["total"], 1, "nothing was added or removed");
    assert_eq!(listed["memories"][0]["tags"][0], "a");
}

#[test]
fn commands_that_do_not_embed_work_without_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let no_model = dir.path().join("no-model");
    let run = |args: &[&str]| {
        mcp_memory(&db)
            .args(args)
            .env("MCP_MEMORY_MODEL_DIR", &no_model)
            .output()
            .unwrap()
    };
    for cmd in [&["list"][..], &["tags"], &["stats"]] {
        let out = run(cmd);
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = run(&["store", "needs the model"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-model") && err.contains("fetch-model"),
        "{err}"
    );
}

#[test]
fn recall_and_delete_by_tag_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    ok(
        &db,
        &["store", "Standup moved to 9:30", "--tags", "team,meetings"],
    );
    ok(&db, &["store", "Bought oat milk", "--tags", "shopping"]);

    let recalled = ok(&db, &["recall", "today"]);
    assert_eq!(recalled.lines().count(), 2, "{recalled}");

    let dry = ok(&db, &["delete", "--tags", "meetings", "--dry-run"]);
    assert!(dry.starts_with("would delete 1 memory"), "{dry}");
    let done = ok(&db, &["delete", "--tags", "meetings"]);
    assert!(done.starts_with("deleted 1 memory"), "{done}");
    let tags = ok(&db, &["tags"]);
    assert_eq!(tags.trim(), "1  shopping");
}

#[test]
fn several_processes_storing_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    ok(&db, &["stats"]); // create the file and schema first, as a running server would have
    let children: Vec<_> = (0..8)
        .map(|i| {
            mcp_memory(&db)
                .args([
                    "store",
                    &format!("note {i} written by process {i}"),
                    "--tags",
                    "race",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn mcp-memory")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "a concurrent store failed: {err}");
        assert!(!err.contains("locked"), "{err}");
    }
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&db, &["--json", "list", "--tags", "race"])).unwrap();
    assert_eq!(listed["total"], 8, "every process's memory is there");
}

#[test]
fn update_changes_tags_type_and_metadata_and_keeps_creation_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let stored: serde_json::Value = serde_json::from_str(&ok(
        &db,
        &["--json", "store", "Ship on Tuesdays", "--tags", "ops"],
    ))
    .unwrap();
    let hash = stored["content_hash"].as_str().unwrap().to_owned();
    let before: serde_json::Value = serde_json::from_str(&ok(&db, &["--json", "list"])).unwrap();

    let updated: serde_json::Value = serde_json::from_str(&ok(
        &db,
        &[
            "--json",
            "update",
            &hash,
            "--tags",
            "release,ops",
            "--type",
            "decision",
            "--metadata",
            r#"{"owner": "sam"}"#,
        ],
    ))
    .unwrap();

    let m = &updated["updated"];
    assert_eq!(m["content_hash"], hash.as_str());
    assert_eq!(m["tags"], serde_json::json!(["release", "ops"]));
    assert_eq!(m["memory_type"], "decision");
    assert_eq!(m["metadata"]["owner"], "sam");
    assert_eq!(m["created_at"], before["memories"][0]["created_at"]);
    let listed: serde_json::Value = serde_json::from_str(&ok(&db, &["--json", "list"])).unwrap();
    assert_eq!(listed["memories"][0]["memory_type"], "decision");

    // An empty type clears it; nothing to change, unknown and malformed hashes are refused.
    let cleared: serde_json::Value =
        serde_json::from_str(&ok(&db, &["--json", "update", &hash, "--type", ""])).unwrap();
    assert!(cleared["updated"]["memory_type"].is_null(), "{cleared}");
    assert!(fails(&db, &["update", &hash]).contains("nothing to change"));
    let unknown = "0".repeat(64);
    let err = fails(&db, &["update", &unknown, "--tags", "x"]);
    assert!(err.contains(&unknown[..8]), "{err}");
    assert!(fails(&db, &["update", "not-a-hash", "--tags", "x"]).contains("hash"));
    assert!(fails(&db, &["update", &hash, "--metadata", "[1]"]).contains("metadata"));
}

#[test]
fn health_reports_each_check_and_fails_when_the_model_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    ok(&db, &["store", "something to find"]);
    let report: serde_json::Value = serde_json::from_str(&ok(&db, &["--json", "health"])).unwrap();
    assert_eq!(report["status"], "healthy", "{report}");
    assert_eq!(report["backend"], "sqlite");
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2, "{report}");
    assert!(checks.iter().all(|c| c["ok"] == true), "{report}");
    assert_eq!(report["stats"]["total_memories"], 1);

    // Without the model files the embedding check fails, the command exits 1 and says why.
    let out = mcp_memory(&db)
        .arg("health")
        .env("MCP_MEMORY_MODEL_DIR", dir.path().join("no-model-here"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ok") && stdout.contains("FAILED"),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not healthy"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With --json: status 1 and exactly one document, saying which check failed.
    let out = mcp_memory(&db)
        .args(["--json", "health"])
        .env("MCP_MEMORY_MODEL_DIR", dir.path().join("no-model-here"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "unhealthy");
    assert_eq!(report["checks"][1]["ok"], false, "{report}");
}

#[cfg(feature = "emulator")]
#[test]
fn emulator_command_serves_the_cloudflare_api_until_killed() {
    use std::io::{BufRead, BufReader, Read, Write};

    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-memory"))
        .args(["emulator", "--port", "0"])
        .env("MCP_MEMORY_LOG", "off")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("base URL: ").map(str::to_owned))
        .expect("the emulator prints its base URL");
    let addr = base
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "GET /client/v4/user/tokens/verify HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer emulator-token\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"success\":true"), "{answer}");
}

/// Issue 12, item 16: `mcp-memory list | head -1` ends quietly when the reader goes away,
/// instead of panicking with "failed printing to stdout: Broken pipe" (status 101).
#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let lines: String = (0..3000)
        .map(|i| format!("{{\"content\": \"note number {i} about pipes\"}}\n"))
        .collect();
    let input = dir.path().join("many.jsonl");
    std::fs::write(&input, lines).unwrap();
    ok(&db, &["import", input.to_str().unwrap()]);
    for args in [
        &["list", "--page-size", "100"][..],
        &["export"][..],
        &["tags"][..],
    ] {
        let mut child = mcp_memory(&db)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read nothing and close the pipe: every write of the command then fails.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {stderr}");
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert!(
                out.status.success() || out.status.signal() == Some(13),
                "{args:?} ended by SIGPIPE or with status 0, not {:?}: {stderr}",
                out.status
            );
        }
    }
}

/// Issue 12, item 17: the CLI's `--before`/`--after` take what the MCP tools take (a date
/// counts as the whole day), through one parser.
#[test]
fn before_and_after_take_dates_and_epochs_like_the_mcp_tools() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"content\": \"old note\", \"created_at_iso\": \"2020-06-01T12:00:00Z\"}\n\
         {\"content\": \"last note of the day\", \"created_at_iso\": \"2021-03-04T23:59:59.5Z\"}\n\
         {\"content\": \"new note\", \"created_at_iso\": \"2030-01-01T00:00:00Z\"}\n",
    )
    .unwrap();
    ok(&db, &["import", input.to_str().unwrap()]);
    let dry = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["--json", "delete", "--dry-run"];
        all.extend_from_slice(args);
        let v: serde_json::Value = serde_json::from_str(&ok(&db, &all)).unwrap();
        let mut n: Vec<String> = v["deleted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_owned())
            .collect();
        n.sort();
        n
    };
    // A date as --before includes that whole day (to 23:59:59.999999).
    assert_eq!(dry(&["--before", "2021-03-04"]).len(), 2);
    assert_eq!(dry(&["--after", "2021-03-05"]).len(), 1);
    assert_eq!(dry(&["--before", "2100-01-01"]).len(), 3);
    // Epoch seconds and ISO-8601 as before.
    assert_eq!(dry(&["--before", "1600000000"]).len(), 1);
    assert_eq!(dry(&["--after", "2029-12-31T00:00:00Z"]).len(), 1);
    let err = fails(&db, &["delete", "--before", "next tuesday"]);
    assert!(
        err.contains("--before") && err.contains("2024-05-01"),
        "{err}"
    );
    // The recall fallback agrees with memory_search's time_expr: refused, not searched as text.
    let err = fails(&db, &["recall", "last 99999999999 days"]);
    assert!(err.contains("calendar"), "{err}");
}

/// Issue 12, item 1: an import line whose `content_hash` is another text's is a reported
/// bad line; that other text then stores normally; `--rehash` stores the line under the
/// hash of its content.
#[test]
fn import_refuses_a_hash_of_other_content_unless_asked_to_rehash() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let other_hash = {
        use std::fmt::Write;
        // SHA-256 of "other text", as the Python service computes it.
        let out = Command::new("python3")
            .args([
                "-c",
                "import hashlib;print(hashlib.sha256(b'other text').hexdigest(),end='')",
            ])
            .output();
        match out {
            Ok(o) if o.status.success() => String::from_utf8(o.stdout).unwrap(),
            _ => {
                let mut s = String::new();
                for b in [0u8; 32] {
                    write!(s, "{b:02x}").unwrap();
                }
                s
            }
        }
    };
    let input = dir.path().join("forged.jsonl");
    std::fs::write(
        &input,
        format!(
            "{{\"content\": \"buy milk\", \"content_hash\": \"{other_hash}\"}}\n\
             {{\"content\": \"a fine line\"}}\n"
        ),
    )
    .unwrap();
    let err = fails(&db, &["import", input.to_str().unwrap()]);
    assert!(
        err.contains("line 1") && err.contains("content_hash") && err.contains("--rehash"),
        "{err}"
    );
    // The other text is not a "duplicate" of anything.
    let stored: serde_json::Value =
        serde_json::from_str(&ok(&db, &["--json", "store", "Other text"])).unwrap();
    assert_eq!(stored["outcome"], "stored", "{stored}");
    assert_eq!(stored["content_hash"], other_hash.as_str());
    // With --rehash the line is stored under the hash of its content.
    ok(
        &db,
        &["import", "--rehash", "--restart", input.to_str().unwrap()],
    );
    let listed: serde_json::Value = serde_json::from_str(&ok(&db, &["--json", "list"])).unwrap();
    let hashes: Vec<&str> = listed["memories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content_hash"].as_str().unwrap())
        .collect();
    assert_eq!(listed["total"], 3, "{listed}");
    let milk = listed["memories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["content"] == "buy milk")
        .unwrap();
    assert_ne!(milk["content_hash"], other_hash.as_str(), "{hashes:?}");
    let check: serde_json::Value = serde_json::from_str(&ok(&db, &["--json", "check"])).unwrap();
    assert_eq!(check["issues"], serde_json::json!([]), "{check}");
}

/// Issue 12, item 5: `metadata.tags` and `metadata.type` become the memory's own tags and
/// type through the CLI's store, update and import, so tag search finds them.
#[test]
fn metadata_tags_and_type_move_into_the_memory_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let stored: serde_json::Value = serde_json::from_str(&ok(
        &db,
        &[
            "--json",
            "store",
            "Stored with metadata tags",
            "--metadata",
            r#"{"tags": "alpha, beta", "type": "decision", "k": 1}"#,
        ],
    ))
    .unwrap();
    let hash = stored["content_hash"].as_str().unwrap().to_owned();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"content\": \"Imported with metadata tags\", \"metadata\": {\"tags\": [\"gamma\"], \"type\": \"fact\"}}\n",
    )
    .unwrap();
    ok(&db, &["import", input.to_str().unwrap()]);
    ok(
        &db,
        &["update", &hash, "--metadata", r#"{"tags": ["delta"]}"#],
    );
    let list = |tag: &str| -> serde_json::Value {
        serde_json::from_str(&ok(&db, &["--json", "list", "--tags", tag])).unwrap()
    };
    assert_eq!(list("gamma")["total"], 1);
    assert_eq!(list("gamma")["memories"][0]["memory_type"], "fact");
    assert_eq!(list("delta")["total"], 1);
    let updated = &list("delta")["memories"][0];
    assert_eq!(updated["memory_type"], "decision");
    assert_eq!(updated["metadata"], serde_json::json!({"k": 1}));
}

/// One tag-filter constructor for the CLI and the MCP tools: an empty tag list is refused
/// naming `tags` (it used to match nothing, silently, on the CLI only).
#[test]
fn an_empty_tag_filter_is_refused_like_the_mcp_tools_refuse_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    ok(&db, &["store", "tagged note", "--tags", "a"]);
    for args in [
        &["list", "--tags", ","][..],
        &["delete", "--tags", " , ", "--dry-run"][..],
        &["export", "--tags", ""][..],
    ] {
        let err = fails(&db, args);
        assert!(
            err.contains("tags") && err.contains("empty"),
            "{args:?}: {err}"
        );
    }
}

/// Issue 13 part 5: libraries say which model and files are missing; the binary adds how to
/// get them, in its own commands and settings.
#[test]
fn a_missing_model_is_reported_with_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let out = mcp_memory(&db)
        .args(["search", "anything"])
        .env("MCP_MEMORY_MODEL_DIR", dir.path().join("no-model-here"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("model.safetensors"), "{err}");
    assert!(
        err.contains("hint:") && err.contains("cargo xtask fetch-model"),
        "{err}"
    );
}

#[test]
fn eval_scores_a_benchmark_on_a_fresh_store_and_leaves_the_users_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    ok(
        &db,
        &["store", "A memory of the user's own.", "--tags", "mine"],
    );
    let bench = dir.path().join("bench.json");
    std::fs::write(
        &bench,
        r#"{"memories": [
             {"id": "cat", "content": "The cat sleeps on the warm windowsill all afternoon.", "tags": ["bench:cat"]},
             {"id": "db", "content": "The database migration timed out during the deployment.", "tags": ["bench:db"]}],
           "queries": [
             {"id": "q", "category": "semantic", "question": "Where does the cat nap?", "expected_tags": ["bench:cat"]},
             {"id": "n", "category": "negative", "question": "What is the capital of Peru?", "expected_tags": []}]}"#,
    )
    .unwrap();
    let out = ok(&db, &["--json", "eval", bench.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["report"]["overall"]["mrr"], 1.0, "{v}");
    assert_eq!(v["report"]["memories"], 2);
    // The benchmark went into its own store: the user's holds only the user's memory.
    let listed = ok(&db, &["--json", "list"]);
    assert!(
        listed.contains("own") && !listed.contains("windowsill"),
        "{listed}"
    );
    let err = fails(
        &db,
        &["eval", dir.path().join("none.json").to_str().unwrap()],
    );
    assert!(err.contains("none.json"), "{err}");
}
