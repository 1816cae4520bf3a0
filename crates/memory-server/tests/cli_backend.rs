//! Backend selection through `MCP_MEMORY_STORAGE_BACKEND`, driven as a user would: the built
//! binary, with the Cloudflare backend served by the local emulator.

use std::path::Path;
use std::process::Output;

use cloudflare_emulator::{Emulator, EmulatorConfig};

mod support;
use support::mcp_memory;

fn run(db: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    mcp_memory(db)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run mcp-memory")
}

fn stderr_of_failure(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "should fail; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr.clone()).expect("UTF-8 errors")
}

fn stdout_of_success(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

#[test]
fn an_unknown_backend_is_refused_with_the_supported_values() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &dir.path().join("m.db"),
        &[("MCP_MEMORY_STORAGE_BACKEND", "mongo")],
        &["list"],
    );
    let err = stderr_of_failure(&out);
    for want in [
        "MCP_MEMORY_STORAGE_BACKEND",
        "mongo",
        "sqlite_vec",
        "sqlite-vec",
        "cloudflare",
    ] {
        assert!(err.contains(want), "{err} lacks {want}");
    }
    assert!(!dir.path().join("m.db").exists(), "nothing was opened");
}

#[test]
fn sqlite_names_select_the_embedded_backend() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["sqlite_vec", "sqlite-vec", "sqlite"] {
        let out = run(
            &dir.path().join("m.db"),
            &[("MCP_MEMORY_STORAGE_BACKEND", name)],
            &["--json", "list"],
        );
        let listed: serde_json::Value = serde_json::from_str(&stdout_of_success(&out)).unwrap();
        assert_eq!(listed["total"], 0, "{name}");
    }
}

#[test]
fn cloudflare_without_its_variables_lists_every_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &dir.path().join("m.db"),
        &[
            ("MCP_MEMORY_STORAGE_BACKEND", "cloudflare"),
            ("CLOUDFLARE_REQUEST_TIMEOUT", "never"),
        ],
        &["list"],
    );
    let err = stderr_of_failure(&out);
    for want in [
        "CLOUDFLARE_API_TOKEN",
        "CLOUDFLARE_ACCOUNT_ID",
        "CLOUDFLARE_VECTORIZE_INDEX",
        "CLOUDFLARE_D1_DATABASE_ID",
        "CLOUDFLARE_REQUEST_TIMEOUT",
        "5 problems",
    ] {
        assert!(err.contains(want), "{err} lacks {want}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudflare_stores_and_searches_through_the_emulator() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let base_url = emulator.base_url();
    let token = emulator.config().tokens[0].clone();
    let account = emulator.config().account_ids[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("unused.db");
    let outputs = tokio::task::spawn_blocking(move || {
        let env = [
            ("MCP_MEMORY_STORAGE_BACKEND", "cloudflare"),
            ("CLOUDFLARE_API_BASE_URL", base_url.as_str()),
            ("CLOUDFLARE_API_TOKEN", token.as_str()),
            ("CLOUDFLARE_ACCOUNT_ID", account.as_str()),
            (
                "CLOUDFLARE_D1_DATABASE_ID",
                "3f2a1b4c-5d6e-4f70-8192-a3b4c5d6e7f8",
            ),
            ("CLOUDFLARE_VECTORIZE_INDEX", "cli-test"),
            ("CLOUDFLARE_EMBEDDING_MODEL", "@cf/baai/bge-small-en-v1.5"),
        ];
        let stored = run(
            &db,
            &env,
            &[
                "--json",
                "store",
                "The cat sits on the mat.",
                "--tags",
                "pets",
            ],
        );
        let other = run(
            &db,
            &env,
            &["store", "Quarterly revenue grew by twelve percent."],
        );
        let again = run(&db, &env, &["--json", "store", "The cat sits on the mat."]);
        let search = run(
            &db,
            &env,
            &["search", "a kitten resting on a rug", "-n", "1"],
        );
        let listed = run(&db, &env, &["--json", "list"]);
        (stored, other, again, search, listed, db)
    })
    .await
    .unwrap();
    let (stored, other, again, search, listed, db) = outputs;

    let stored: serde_json::Value = serde_json::from_str(&stdout_of_success(&stored)).unwrap();
    assert_eq!(stored["outcome"], "stored");
    stdout_of_success(&other);
    let again: serde_json::Value = serde_json::from_str(&stdout_of_success(&again)).unwrap();
    assert_eq!(again["outcome"], "duplicate");
    assert_eq!(again["content_hash"], stored["content_hash"]);

    let search = stdout_of_success(&search);
    let first = search.lines().next().expect("a result line");
    assert!(first.contains("The cat sits on the mat."), "{search}");
    assert!(first.contains("[pets]"), "{search}");

    let listed: serde_json::Value = serde_json::from_str(&stdout_of_success(&listed)).unwrap();
    assert_eq!(listed["total"], 2);
    assert!(
        !db.exists(),
        "the Cloudflare backend never opens the SQLite file"
    );
}

/// One raw HTTP/1.1 request to the emulator (the test's way to break the store behind the
/// backend's back); returns the status line and body.
fn raw_post(base_url: &str, path: &str, token: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let addr = base_url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .expect("an http base URL");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /client/v4{path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_a_lost_vector_and_repair_restores_it() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let base_url = emulator.base_url();
    let token = emulator.config().tokens[0].clone();
    let account = emulator.config().account_ids[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("unused.db");
    tokio::task::spawn_blocking(move || {
        let env = [
            ("MCP_MEMORY_STORAGE_BACKEND", "cloudflare"),
            ("CLOUDFLARE_API_BASE_URL", base_url.as_str()),
            ("CLOUDFLARE_API_TOKEN", token.as_str()),
            ("CLOUDFLARE_ACCOUNT_ID", account.as_str()),
            (
                "CLOUDFLARE_D1_DATABASE_ID",
                "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
            ),
            ("CLOUDFLARE_VECTORIZE_INDEX", "check-test"),
            ("CLOUDFLARE_EMBEDDING_MODEL", "@cf/baai/bge-small-en-v1.5"),
        ];
        let stored: serde_json::Value = serde_json::from_str(&stdout_of_success(&run(
            &db,
            &env,
            &["--json", "store", "The cat sits on the mat."],
        )))
        .unwrap();
        let hash = stored["content_hash"].as_str().unwrap().to_owned();
        stdout_of_success(&run(&db, &env, &["store", "Revenue grew."]));
        let clean = stdout_of_success(&run(&db, &env, &["check"]));
        assert!(
            clean.contains("2 memories checked, 0 problem(s)"),
            "{clean}"
        );

        // The vector disappears from Vectorize behind the backend's back.
        let answer = raw_post(
            &base_url,
            &format!("/accounts/{account}/vectorize/v2/indexes/check-test/delete_by_ids"),
            &token,
            &format!(r#"{{"ids": ["{hash}"]}}"#),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        let found = run(&db, &env, &["check"]);
        let err = stderr_of_failure(&found);
        assert!(
            err.contains("1 problem(s) found; `mcp-memory repair`"),
            "{err}"
        );
        assert!(String::from_utf8_lossy(&found.stdout).contains(&hash));
        // With --json: exactly one JSON document on stdout, status 1.
        let found = run(&db, &env, &["--json", "check"]);
        assert!(stderr_of_failure(&found).is_empty());
        let report: serde_json::Value = serde_json::from_slice(&found.stdout).unwrap();
        assert_eq!(report["issues"][0]["kind"], "missing_vector", "{report}");
        assert_eq!(report["issues"][0]["subject"], hash.as_str(), "{report}");

        let repaired: serde_json::Value =
            serde_json::from_str(&stdout_of_success(&run(&db, &env, &["--json", "repair"])))
                .unwrap();
        assert_eq!(repaired["fixed"], 1, "{repaired}");
        assert_eq!(repaired["remaining"], serde_json::json!([]), "{repaired}");
        let clean = stdout_of_success(&run(&db, &env, &["check"]));
        assert!(clean.contains("0 problem(s)"), "{clean}");
        let search =
            stdout_of_success(&run(&db, &env, &["search", "a kitten on a rug", "-n", "1"]));
        assert!(search.contains("The cat sits on the mat."), "{search}");
    })
    .await
    .unwrap();
}

#[test]
fn check_and_repair_of_a_sound_sqlite_store_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    stdout_of_success(&run(&db, &[], &["store", "one memory", "--tags", "a,b"]));
    let checked = stdout_of_success(&run(&db, &[], &["check"]));
    assert!(
        checked.starts_with("sqlite: 1 memories checked, 0 problem(s)"),
        "{checked}"
    );
    let repaired: serde_json::Value =
        serde_json::from_str(&stdout_of_success(&run(&db, &[], &["--json", "repair"]))).unwrap();
    assert_eq!(repaired["fixed"], 0, "{repaired}");
    assert_eq!(repaired["found"]["memories_checked"], 1, "{repaired}");
}
