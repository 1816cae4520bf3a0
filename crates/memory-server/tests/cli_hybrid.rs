//! The hybrid backend as a user drives it: the built binary with
//! `MCP_MEMORY_STORAGE_BACKEND=hybrid` on two database files (two devices) and the local
//! emulator standing in for Cloudflare.

use std::path::Path;
use std::process::Output;

use cloudflare_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use serde_json::{Value, json};

mod support;
use support::{emulator_env, http_client, http_command, mcp_memory, start_http};

/// The variables of a hybrid device on `emulator`'s database `db_id`.
fn hybrid_env(emulator: &EmulatorHandle, db_id: &str) -> Vec<(&'static str, String)> {
    let mut env = emulator_env(emulator, db_id, "hybrid-cli");
    env.push(("MCP_MEMORY_STORAGE_BACKEND", "hybrid".to_owned()));
    env
}

fn run(db: &Path, env: &[(&'static str, String)], args: &[&str]) -> Output {
    mcp_memory(db)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run mcp-memory")
}

fn ok_json(db: &Path, env: &[(&'static str, String)], args: &[&str]) -> Value {
    let out = run(db, env, &[&["--json"], args].concat());
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

async fn emulator() -> EmulatorHandle {
    Emulator::start(EmulatorConfig::default())
        .await
        .expect("starting the emulator")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_on_one_device_is_pushed_before_the_command_ends_and_found_on_the_other() {
    let emulator = emulator().await;
    let env = hybrid_env(&emulator, &cloudflare_emulator::d1::new_database_id());
    let dir = tempfile::tempdir().unwrap();
    let (laptop, desktop) = (dir.path().join("laptop.db"), dir.path().join("desktop.db"));

    let stored = ok_json(
        &laptop,
        &env,
        &[
            "store",
            "The spare key is under the blue pot.",
            "-t",
            "home",
        ],
    );
    assert_eq!(stored["outcome"], "stored");
    let status = ok_json(&laptop, &env, &["sync", "status"]);
    assert_eq!(
        status["backlog"], 0,
        "the store was pushed as the command ended: {status}"
    );
    assert!(status["last_push"].is_string(), "{status}");
    assert_eq!(status["last_error"], Value::Null);

    let round = ok_json(&desktop, &env, &["sync", "now"]);
    assert_eq!(round["embedded"], 0, "{round}");
    assert!(round["pulled"].as_u64().unwrap() >= 1, "{round}");
    let found = ok_json(
        &desktop,
        &env,
        &["search", "where is the spare key", "-n", "1"],
    );
    let hit = &found.as_array().expect("a list of hits")[0];
    assert_eq!(
        hit["memory"]["content"], "The spare key is under the blue pot.",
        "{found}"
    );
    assert_eq!(hit["memory"]["tags"], json!(["home"]));

    let stats = ok_json(&desktop, &env, &["stats"]);
    assert_eq!(stats["backend"], "hybrid");
    assert_eq!(stats["extra"]["sync"]["backlog"], 0, "{stats}");
    assert_eq!(
        ok_json(&desktop, &env, &["check"])["issues"],
        json!([]),
        "the device and Cloudflare agree"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_a_write_succeeds_and_waits_in_the_outbox_and_pause_holds_sync() {
    let emulator = emulator().await;
    let mut env = hybrid_env(&emulator, &cloudflare_emulator::d1::new_database_id());
    // Nothing listens there: every Cloudflare call is refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    for (k, v) in &mut env {
        if *k == "CLOUDFLARE_API_BASE_URL" {
            *v = format!("http://127.0.0.1:{port}/client/v4");
        }
    }
    env.push(("CLOUDFLARE_MAX_RETRIES", "0".to_owned()));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("offline.db");
    let stored = ok_json(
        &db,
        &env,
        &["store", "Written on the train without a signal."],
    );
    assert_eq!(stored["outcome"], "stored");
    let status = ok_json(&db, &env, &["sync", "status"]);
    assert_eq!(status["backlog"], 1, "{status}");
    assert!(status["last_error"].is_string(), "{status}");
    assert_eq!(
        ok_json(&db, &env, &["list"])["memories"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    assert_eq!(ok_json(&db, &env, &["sync", "pause"])["paused"], true);
    let text = run(&db, &env, &["sync", "status"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("paused"));
    assert_eq!(ok_json(&db, &env, &["sync", "resume"])["paused"], false);
}

#[test]
fn sync_on_another_backend_says_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&dir.path().join("m.db"), &[], &["sync", "status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MCP_MEMORY_STORAGE_BACKEND=hybrid"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_server_syncs_in_the_background() {
    let emulator = emulator().await;
    let env = hybrid_env(&emulator, &cloudflare_emulator::d1::new_database_id());
    let dir = tempfile::tempdir().unwrap();
    let (server_db, other_db) = (dir.path().join("server.db"), dir.path().join("other.db"));
    let mut cmd = http_command(&server_db, &[]);
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("MCP_HYBRID_SYNC_INTERVAL", "0.2");
    let server = start_http(cmd);
    let client = http_client(&server.url, None).await;
    let Value::Object(args) = json!({"content": "Stored through MCP, synced in the background."})
    else {
        unreachable!()
    };
    let result = client
        .call_tool(rmcp::model::CallToolRequestParams::new("store_memory").with_arguments(args))
        .await
        .expect("store_memory");
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let health = client
        .call_tool(rmcp::model::CallToolRequestParams::new("memory_health"))
        .await
        .expect("memory_health");
    let text = health.content[0]
        .as_text()
        .expect("a text answer")
        .text
        .clone();
    let health: Value = serde_json::from_str(&text).expect("health is JSON");
    assert_eq!(health["backend"], "hybrid", "{health}");
    assert!(health["sync"]["device"].is_string(), "{health}");

    // Another device sees it without anyone running `sync` on the server's database.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        ok_json(&other_db, &env, &["sync", "now"]);
        let listed = ok_json(&other_db, &env, &["list"]);
        if listed["memories"].as_array().is_some_and(|a| a.len() == 1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server's store never reached the other device"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_default_user_turns_hybrid_on_and_the_memories_are_pushed_with_vectors() {
    let emulator = emulator().await;
    let env = hybrid_env(&emulator, &cloudflare_emulator::d1::new_database_id());
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old.db"), dir.path().join("new.db"));
    for text in [
        "Kept since last year.",
        "Also from before hybrid.",
        "A third old note.",
    ] {
        ok_json(&old, &[], &["store", text]);
    }
    let first = ok_json(&old, &env, &["sync", "now"]);
    assert_eq!(first["pushed"], 3, "the existing memories go out: {first}");
    let joined = ok_json(&new, &env, &["sync", "now"]);
    assert_eq!(
        (joined["pulled"].as_u64(), joined["embedded"].as_u64()),
        (Some(3), Some(0)),
        "{joined}"
    );
    assert_eq!(
        ok_json(&new, &env, &["list"])["memories"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloudflare_backend_user_turns_hybrid_on_and_the_device_pulls_everything() {
    let emulator = emulator().await;
    let db_id = cloudflare_emulator::d1::new_database_id();
    let mut cloudflare = emulator_env(&emulator, &db_id, "hybrid-cli");
    cloudflare.push(("MCP_MEMORY_STORAGE_BACKEND", "cloudflare".to_owned()));
    let dir = tempfile::tempdir().unwrap();
    let unused = dir.path().join("unused.db");
    for text in [
        "Stored by the Cloudflare backend.",
        "Embedded by Workers AI.",
    ] {
        ok_json(&unused, &cloudflare, &["store", text, "-t", "cf"]);
    }

    // The device runs the deployment's model locally (same weights, Workers AI's pooling).
    let minilm = memory_embed::ModelLocation::resolve(memory_embed::DEFAULT_MODEL_ID)
        .unwrap_or_else(|e| panic!("run `cargo xtask fetch-model`: {e}"))
        .dir;
    let mut env = hybrid_env(&emulator, &db_id);
    env.push((
        "MCP_MEMORY_EMBEDDING_MODEL",
        "@cf/baai/bge-small-en-v1.5".to_owned(),
    ));
    env.push((
        "CLOUDFLARE_EMBEDDING_FALLBACK_DIR",
        minilm.display().to_string(),
    ));
    let device = dir.path().join("device.db");
    let first = ok_json(&device, &env, &["sync", "now"]);
    assert_eq!(first["imported"], 2, "{first}");
    assert_eq!(first["embedded"], 0, "vectors come from Vectorize: {first}");
    let listed = ok_json(&device, &env, &["list"]);
    assert_eq!(listed["memories"].as_array().unwrap().len(), 2, "{listed}");

    // What the device writes reaches the Cloudflare backend's readers.
    ok_json(&device, &env, &["store", "Written on the hybrid device."]);
    let upstream = ok_json(&unused, &cloudflare, &["list"]);
    assert_eq!(
        upstream["memories"].as_array().unwrap().len(),
        3,
        "{upstream}"
    );
}
