//! The `mcp-memory` CLI, driven as a user would: the built binary on a temporary database.

use std::path::Path;
use std::process::{Command, Output};

fn cli(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcp-memory"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("MCP_MEMORY_STORAGE_BACKEND")
        .env("MCP_MEMORY_LOG", "off")
        .output()
        .expect("run mcp-memory")
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
        Command::new(env!("CARGO_BIN_EXE_mcp-memory"))
            .arg("--db")
            .arg(&db)
            .args(args)
            .env("MCP_MEMORY_MODEL_DIR", &no_model)
            .env("MCP_MEMORY_LOG", "off")
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
            Command::new(env!("CARGO_BIN_EXE_mcp-memory"))
                .arg("--db")
                .arg(&db)
                .args([
                    "store",
                    &format!("note {i} written by process {i}"),
                    "--tags",
                    "race",
                ])
                .env("MCP_MEMORY_LOG", "off")
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
