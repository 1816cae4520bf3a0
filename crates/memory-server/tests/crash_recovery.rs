//! Crash recovery (issue 7): `import` and `migrate` (SQLite → Cloudflare emulator) are
//! killed with SIGKILL three times, each time at a later checkpoint, restarted each time, and
//! the last run finishes with exactly the input set: every memory once, nothing else, and
//! (Cloudflare) D1 and Vectorize in agreement.
//!
//! Sizes: `MCP_MEMORY_SOAK_CRASH_N` memories for import (default 3000) and a fifth of that
//! for migrate (at least 300); `cargo xtask soak` raises it. Memories carry precomputed
//! vectors, so nothing is embedded.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use cloudflare_emulator::{Emulator, EmulatorConfig};
use serde_json::{Value, json};

mod support;
use support::mcp_memory;

const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";
const BGE_SMALL: &str = "BAAI/bge-small-en-v1.5";
const DIMS: usize = 384;
/// How many memories the import test uses (`cargo xtask soak` raises it).
const SIZE_ENV: &str = "MCP_MEMORY_SOAK_CRASH_N";
const DEFAULT_SIZE: usize = 3000;
/// Kills per run.
const KILLS: usize = 3;

fn size() -> usize {
    std::env::var(SIZE_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n >= 100)
        .unwrap_or(DEFAULT_SIZE)
}

fn command(db: &Path, env: &[(&str, String)], args: &[&str]) -> Command {
    let mut c = mcp_memory(db);
    c.args(args).envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    c
}

fn run(db: &Path, env: &[(&str, String)], args: &[&str]) -> Output {
    command(db, env, args).output().expect("run mcp-memory")
}

fn ok(db: &Path, env: &[(&str, String)], args: &[&str]) -> String {
    let out = run(db, env, args);
    assert!(
        out.status.success(),
        "mcp-memory {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn ok_json(db: &Path, env: &[(&str, String)], args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let text = ok(db, env, &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A deterministic unit vector for memory `i`.
fn vector(i: usize) -> Vec<f32> {
    let raw: Vec<f32> = (0..DIMS)
        .map(|d| (((i * 7919 + d * 104_729) % 2001) as f32 - 1000.0) / 1000.0)
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    raw.iter().map(|x| x / norm).collect()
}

/// Writes `n` memories with vectors of `model` as JSON Lines; returns their content hashes
/// (SHA-256 of the trimmed, lower-cased content).
fn generate(path: &Path, n: usize, model: &str) -> BTreeSet<String> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hashes = BTreeSet::new();
    for i in 0..n {
        let content = format!("Crash recovery memory {i}: kept exactly once after {i} kills.");
        let line = json!({
            "content": content,
            "tags": [format!("crash-{}", i % 7), "recovery"],
            "memory_type": "note",
            "metadata": {"n": i},
            "created_at": 1_600_000_000.0 + i as f64,
            "embedding": vector(i),
            "embedding_model": model,
        });
        writeln!(f, "{line}").unwrap();
        use sha2::Digest;
        hashes.insert(hex::encode(sha2::Sha256::digest(
            content.trim().to_lowercase().as_bytes(),
        )));
    }
    f.flush().unwrap();
    hashes
}

/// Every content hash of an export, each once; panics on a duplicate.
fn hashes_of(export: &str) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for line in export.lines() {
        let hash = serde_json::from_str::<Value>(line).unwrap()["content_hash"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(set.insert(hash.clone()), "{hash} exported twice");
    }
    set
}

/// The checkpoint's `field`, if the file exists and parses.
fn checkpoint(path: &Path, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str::<Value>(&text).ok()?[field].as_u64()
}

/// Starts `spawn()` and SIGKILLs it once its checkpoint `field` reaches `target` (and moved
/// past `after`); returns the checkpoint value the killed run left.
///
/// # Panics
///
/// If the run ends before reaching the target (the input is too small to kill it there).
fn kill_at(mut child: Child, progress: &Path, field: &str, target: u64, after: u64) -> u64 {
    loop {
        if checkpoint(progress, field).is_some_and(|v| v >= target && v > after) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the run ended ({status}) before its checkpoint reached {field} {target}; \
                 raise {SIZE_ENV}"
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    checkpoint(progress, field).expect("a killed run leaves its checkpoint")
}

/// Kills the command of `args` [`KILLS`] times at spread checkpoints; returns the
/// checkpoint values it was killed at.
fn kill_repeatedly(
    db: &Path,
    env: &[(&str, String)],
    args: &[&str],
    progress: &Path,
    field: &str,
    total: u64,
) -> Vec<u64> {
    let mut at = Vec::new();
    let mut last = 0;
    for k in 0..KILLS as u64 {
        // The first kill at the first checkpoint, then at about 1/3 and 2/3 of the input.
        let target = (total * k / KILLS as u64).max(1);
        let child = command(db, env, args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        last = kill_at(child, progress, field, target, last);
        assert!(last < total, "killed before the end: {field} {last}");
        at.push(last);
    }
    at
}

#[test]
fn import_killed_three_times_at_different_checkpoints_ends_with_exactly_the_input_set() {
    let n = size();
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(&str, String)> = Vec::new();
    let input = dir.path().join("in.jsonl");
    let want = generate(&input, n, MINILM);
    let progress = dir.path().join("in.jsonl.import-progress");
    let db = dir.path().join("m.db");
    let args = [
        "--json",
        "import",
        input.to_str().unwrap(),
        "--batch-size",
        "10",
    ];

    let kills = kill_repeatedly(&db, &env, &args, &progress, "line", n as u64);
    eprintln!("[crash-recovery] import of {n}: killed at lines {kills:?}");
    assert!(kills.windows(2).all(|w| w[0] < w[1]), "{kills:?}");

    let out = run(&db, &env, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let last = kills[KILLS - 1];
    assert!(
        stderr.contains(&format!("resuming at line {}", last + 1)),
        "{stderr}"
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["invalid"], 0, "{summary}");
    assert_eq!(summary["resumed_at_line"], last + 1, "{summary}");
    assert!(!progress.exists(), "the checkpoint is removed at the end");

    let got = hashes_of(&ok(&db, &env, &["export"]));
    assert_eq!(got.len(), n, "every memory exactly once");
    assert!(got == want, "the store holds exactly the input set");
    assert_eq!(ok_json(&db, &env, &["stats"])["total_memories"], n as u64);
    let check = ok_json(&db, &env, &["check"]);
    assert_eq!(check["issues"], json!([]), "{check}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_to_cloudflare_killed_three_times_ends_with_exactly_the_input_set() {
    let emulator = Emulator::start(EmulatorConfig {
        rate_limit: 1_000_000,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let mut cloudflare = support::emulator_env(
        &emulator,
        "0c7e3f2a-1b4d-4e6f-8a9b-2c3d4e5f6a7b",
        "crash-test",
    );
    cloudflare.extend([
        ("CLOUDFLARE_RATE_LIMIT", "1000000".to_owned()),
        // The SQLite source uses the local name of the same model, so vectors are carried.
        ("MCP_MEMORY_EMBEDDING_MODEL", BGE_SMALL.to_owned()),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().to_owned();
    let n = (size() / 5).max(300);
    tokio::task::spawn_blocking(move || {
        let env = cloudflare;
        let input = root.join("in.jsonl");
        let want = generate(&input, n, BGE_SMALL);
        let a = root.join("a.db");
        let imported = ok_json(&a, &env, &["import", input.to_str().unwrap()]);
        assert_eq!(imported["imported"], n as u64, "{imported}");

        let progress = root.join("a.db.migrate-sqlite-to-cloudflare.progress");
        let args = [
            "--json",
            "migrate",
            "--from",
            "sqlite",
            "--to",
            "cloudflare",
            "--batch-size",
            "10",
        ];
        let kills = kill_repeatedly(&a, &env, &args, &progress, "offset", n as u64);
        eprintln!("[crash-recovery] migrate of {n}: killed at offsets {kills:?}");
        assert!(kills.windows(2).all(|w| w[0] < w[1]), "{kills:?}");

        let out = run(&a, &env, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("resuming after"), "{stderr}");
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["failed"], 0, "{summary}");
        assert!(!progress.exists(), "the checkpoint is removed at the end");

        // The destination, read through the Cloudflare backend itself.
        let mut on_cloudflare = env.clone();
        on_cloudflare.push(("MCP_MEMORY_STORAGE_BACKEND", "cloudflare".to_owned()));
        let unused = root.join("unused.db");
        let got = hashes_of(&ok(&unused, &on_cloudflare, &["export"]));
        assert_eq!(got.len(), n, "every memory exactly once");
        assert!(got == want, "Cloudflare holds exactly the input set");
        let check = ok_json(&unused, &on_cloudflare, &["check"]);
        assert_eq!(
            check["issues"],
            json!([]),
            "D1 and Vectorize agree: {check}"
        );
    })
    .await
    .unwrap();
    drop(emulator);
}
