//! The Cloudflare backend's local embedding fallback seen from the binary: `health` says
//! how many texts fell back and why, and `health --compare-embeddings` prints the cosine of
//! Workers AI's and the local vector for each probe text.
//!
//! The emulator's Workers AI answers `@cf/baai/bge-small-en-v1.5` with all-MiniLM-L6-v2, and
//! the fallback loads the same MiniLM files as its "local bge-small": a stand-in on both
//! sides (hence cosines of about 1), not BGE.

use std::path::Path;
use std::process::Output;

use cloudflare_emulator::{Emulator, EmulatorConfig, FaultRule};
use memory_embed::{DEFAULT_MODEL_ID, ModelLocation};
use serde_json::Value;

mod support;
use support::mcp_memory;

fn run(db: &Path, env: &[(&str, String)], args: &[&str]) -> Output {
    mcp_memory(db)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v.as_str())))
        .output()
        .expect("run mcp-memory")
}

fn json_of_success(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn check<'a>(health: &'a Value, name: &str) -> &'a Value {
    health["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {health}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_fallbacks_by_reason_and_compares_embeddings() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let minilm = ModelLocation::resolve(DEFAULT_MODEL_ID)
        .unwrap_or_else(|e| panic!("run `cargo xtask fetch-model`: {e}"))
        .dir;
    let mut env = support::emulator_env(
        &emulator,
        "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        "cli-fallback",
    );
    env.extend([
        ("MCP_MEMORY_STORAGE_BACKEND", "cloudflare".into()),
        ("CLOUDFLARE_MAX_RETRIES", "0".into()),
        ("CLOUDFLARE_EMBEDDING_FALLBACK", "local".into()),
        (
            "CLOUDFLARE_EMBEDDING_FALLBACK_DIR",
            minilm.display().to_string(),
        ),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("unused.db");
    let faults = emulator.faults();
    let (healthy, stored, failing, searched, compared) = tokio::task::spawn_blocking(move || {
        let healthy = run(&db, &env, &["--json", "health"]);
        let stored = run(
            &db,
            &env,
            &[
                "--json",
                "store",
                "The deployment runbook lives in the ops wiki.",
            ],
        );
        faults.add(FaultRule::error("/ai/run/", 503, 1.0)).unwrap();
        let failing = run(&db, &env, &["--json", "health"]);
        let searched = run(
            &db,
            &env,
            &["--json", "search", "deploy runbook", "-n", "1"],
        );
        faults.clear();
        let compared = run(&db, &env, &["--json", "health", "--compare-embeddings"]);
        (healthy, stored, failing, searched, compared)
    })
    .await
    .unwrap();

    // Workers AI works: the fallback is on and unused.
    let health = json_of_success(&healthy);
    let fallback = check(&health, "embedding fallback");
    assert_eq!(fallback["ok"], true, "{health}");
    let detail = fallback["detail"].as_str().unwrap();
    assert!(
        detail.contains("on (BAAI/bge-small-en-v1.5, mean pooling): 0 text(s)"),
        "{detail}"
    );
    assert_eq!(json_of_success(&stored)["outcome"], "stored");

    // Workers AI answers 503: health's own query falls back, and health says so.
    let health = json_of_success(&failing);
    assert_eq!(health["status"], "healthy", "{health}");
    let detail = check(&health, "embedding fallback")["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        detail.contains("1 text(s) embedded locally (server_error 1)"),
        "{detail}"
    );
    let entry = &health["stats"]["extra"]["embedding_fallback"];
    assert_eq!(entry["texts_by_reason"]["server_error"], 1, "{entry}");
    assert_eq!(entry["last_reason"], "server_error", "{entry}");
    // Search still finds what Workers AI embedded, with a locally embedded query.
    let hits = json_of_success(&searched);
    assert!(hits.to_string().contains("deployment runbook"), "{hits}");

    // The comparison: one cosine per probe, about 1 with the stand-in on both sides.
    let health = json_of_success(&compared);
    let compare = check(&health, "compare embeddings");
    assert_eq!(compare["ok"], true, "{compare}");
    let probes = health["embedding_comparison"].as_array().unwrap();
    assert_eq!(probes.len(), 12);
    for p in probes {
        assert!(p["cosine"].as_f64().unwrap() > 0.999, "{p}");
    }
    assert!(
        probes
            .iter()
            .any(|p| p["text"].as_str().unwrap().contains("记忆"))
    );
}
