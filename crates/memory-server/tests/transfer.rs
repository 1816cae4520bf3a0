//! `mcp-memory export`, `import` and `migrate`, driven as a user would: the built binary on
//! temporary databases (and the local Cloudflare emulator for `migrate`).
//!
//! Big volumes carry precomputed vectors made for the store's model, so nothing is embedded
//! and the tests stay quick.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cloudflare_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use serde_json::{Value, json};

mod support;
use support::mcp_memory;

const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";
const BGE_SMALL: &str = "BAAI/bge-small-en-v1.5";
const DIMS: usize = 384;

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

fn total(db: &Path, env: &[(&str, String)]) -> u64 {
    ok_json(db, env, &["stats"])["total_memories"]
        .as_u64()
        .expect("total_memories")
}

/// A deterministic unit vector for memory `i`.
fn vector(i: usize) -> Vec<f32> {
    let raw: Vec<f32> = (0..DIMS)
        .map(|d| (((i * 7919 + d * 104_729) % 2001) as f32 - 1000.0) / 1000.0)
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    raw.iter()
        .map(|x| ((x / norm) * 1000.0).round() / 1000.0)
        .collect()
}

/// Memory `i` as an import line: tags in a deliberate order, a type, nested metadata and
/// timestamps with microseconds spread over several years (updated after created).
fn record(i: usize, model: Option<&str>) -> Value {
    let created = 1_500_000_000_000_000i64 + (i as i64) * 9_876_543_211 + (i as i64 % 997);
    let updated = created + 1_234_567;
    let mut r = json!({
        "content": format!("Memory number {i}: the quick brown fox #{} jumps.", i * 31),
        "tags": [format!("zeta{}", i % 5), "alpha", format!("group-{}", i % 3)],
        "memory_type": (["note", "decision", "reference"][i % 3]),
        "metadata": {"n": i, "source": {"kind": "test", "nested": [1, 2.5, "x"]}, "flag": i.is_multiple_of(2)},
        "created_at": created as f64 / 1e6,
        "updated_at": updated as f64 / 1e6,
    });
    if let Some(model) = model {
        r["embedding"] = json!(vector(i));
        r["embedding_model"] = json!(model);
    }
    r
}

fn write_jsonl(path: &Path, lines: impl IntoIterator<Item = String>) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    f.flush().unwrap();
}

fn generate(path: &Path, n: usize, model: Option<&str>) -> BTreeSet<String> {
    write_jsonl(path, (0..n).map(|i| record(i, model).to_string()));
    (0..n)
        .map(|i| {
            let content = record(i, None)["content"].as_str().unwrap().to_owned();
            sha256_hex(content.trim().to_lowercase().as_bytes())
        })
        .collect()
}

/// A content hash: SHA-256 of the trimmed, lower-cased content, in hex.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Every content hash in an export.
fn hashes_of(export: &str) -> Vec<String> {
    export
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["content_hash"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Polls until `path` exists and holds a checkpoint past its first batch, or `child` ends.
fn wait_for_checkpoint(child: &mut std::process::Child, path: &Path) -> bool {
    for _ in 0..6000 {
        if let Ok(text) = std::fs::read_to_string(path)
            && serde_json::from_str::<Value>(&text).is_ok()
        {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn no_env() -> Vec<(&'static str, String)> {
    Vec::new()
}

#[test]
fn export_import_export_is_byte_identical_with_and_without_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let env = no_env();
    let input = dir.path().join("in.jsonl");
    generate(&input, 40, Some(MINILM));
    let a = dir.path().join("a.db");
    ok(&a, &env, &["import", input.to_str().unwrap()]);

    for (name, extra) in [("plain", &[][..]), ("vectors", &["--embeddings"][..])] {
        let first = dir.path().join(format!("{name}-1.jsonl"));
        let mut args = vec!["export", "--output", first.to_str().unwrap()];
        args.extend_from_slice(extra);
        ok(&a, &env, &args);
        let first_text = std::fs::read_to_string(&first).unwrap();
        assert_eq!(first_text.lines().count(), 40, "{name}");
        if name == "vectors" {
            let line: Value = serde_json::from_str(first_text.lines().next().unwrap()).unwrap();
            assert_eq!(line["embedding_model"], MINILM, "{line}");
            assert_eq!(line["embedding"].as_array().map(Vec::len), Some(DIMS));
        } else {
            assert!(!first_text.contains("\"embedding\""));
        }

        let b = dir.path().join(format!("{name}-b.db"));
        let summary = ok_json(&b, &env, &["import", first.to_str().unwrap()]);
        assert_eq!(summary["imported"], 40, "{summary}");
        let mut args = vec!["export"];
        args.extend_from_slice(extra);
        let second = ok(&b, &env, &args);
        assert_eq!(
            first_text, second,
            "{name}: the round trip changed something"
        );
    }

    // The export holds exactly what was imported: content, hash, tags in order, type,
    // metadata and both timestamps to the microsecond.
    let exported = ok(&a, &env, &["export"]);
    let by_hash: std::collections::HashMap<String, Value> = exported
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["content_hash"].as_str().unwrap().to_owned(), v)
        })
        .collect();
    for i in 0..40 {
        let want = record(i, None);
        let hash = sha256_hex(
            want["content"]
                .as_str()
                .unwrap()
                .trim()
                .to_lowercase()
                .as_bytes(),
        );
        let got = &by_hash[&hash];
        for field in [
            "content",
            "tags",
            "memory_type",
            "metadata",
            "created_at",
            "updated_at",
        ] {
            assert_eq!(got[field], want[field], "memory {i} field {field}");
        }
    }
    // Newest first, the order of `list`.
    let times: Vec<f64> = exported
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["created_at"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]));
}

#[test]
fn export_filters_and_never_leaves_a_half_file() {
    let dir = tempfile::tempdir().unwrap();
    let env = no_env();
    let input = dir.path().join("in.jsonl");
    generate(&input, 30, Some(MINILM));
    let db = dir.path().join("m.db");
    ok(&db, &env, &["import", input.to_str().unwrap()]);
    let decisions = ok(&db, &env, &["export", "--type", "decision"]);
    assert_eq!(decisions.lines().count(), 10);
    let tagged = ok(&db, &env, &["export", "--tags", "zeta1"]);
    assert_eq!(tagged.lines().count(), 6);
    let bounded = ok(
        &db,
        &env,
        &[
            "export",
            "--after",
            "2017-07-14T02:40:00Z",
            "--before",
            "2017-08-14T00:00:00Z",
        ],
    );
    for l in bounded.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        let t = v["created_at"].as_f64().unwrap();
        assert!((1_499_999_999.0..=1_502_668_800.0).contains(&t), "{t}");
    }

    // A failing export (bad flag value) leaves no file behind, not even a partial one.
    let target = dir.path().join("out.jsonl");
    let out = run(
        &db,
        &env,
        &[
            "export",
            "--output",
            target.to_str().unwrap(),
            "--after",
            "nope",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--after"));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("out.jsonl"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn import_of_ten_thousand_killed_partway_resumes_to_exactly_the_input_set() {
    let dir = tempfile::tempdir().unwrap();
    let env = no_env();
    let input = dir.path().join("big.jsonl");
    let want = generate(&input, 10_000, Some(MINILM));
    let progress = dir.path().join("big.jsonl.import-progress");

    // An uninterrupted run first: the summary's figures.
    let plain = dir.path().join("plain.db");
    let summary = ok_json(&plain, &env, &["import", input.to_str().unwrap()]);
    assert_eq!(summary["imported"], 10_000, "{summary}");
    assert_eq!(summary["duplicates_skipped"], 0);
    assert_eq!(summary["invalid"], 0);
    assert_eq!(summary["lines_read"], 10_000);
    assert_eq!(summary["vectors"]["carried"], 10_000);
    assert_eq!(summary["vectors"]["embedded"], 0);
    assert!(!progress.exists(), "the checkpoint is removed at the end");
    let again = ok_json(&plain, &env, &["import", input.to_str().unwrap()]);
    assert_eq!(again["imported"], 0, "{again}");
    assert_eq!(again["duplicates_skipped"], 10_000);

    // Killed partway (SIGKILL), then run again.
    let db = dir.path().join("m.db");
    let mut child = command(
        &db,
        &env,
        &[
            "--json",
            "import",
            input.to_str().unwrap(),
            "--batch-size",
            "20",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    assert!(
        wait_for_checkpoint(&mut child, &progress),
        "the import recorded no progress before it ended"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let cp: Value = serde_json::from_str(&std::fs::read_to_string(&progress).unwrap()).unwrap();
    let resumed_line = cp["line"].as_u64().unwrap();
    assert!(resumed_line > 0 && resumed_line < 10_000, "{cp}");
    let stored_before = total(&db, &env);
    assert!(stored_before < 10_000, "killed before the end");

    let out = run(&db, &env, &["--json", "import", input.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("resuming at line {}", resumed_line + 1)),
        "{stderr}"
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Memories committed after the last checkpoint are re-sent and found duplicates.
    assert_eq!(
        summary["imported"].as_u64().unwrap() + summary["duplicates_skipped"].as_u64().unwrap(),
        10_000,
        "{summary}"
    );
    assert_eq!(summary["invalid"], 0);
    assert_eq!(summary["resumed_at_line"], resumed_line + 1);
    assert!(!progress.exists());

    assert_eq!(total(&db, &env), 10_000);
    let hashes = hashes_of(&ok(&db, &env, &["export"]));
    assert_eq!(hashes.len(), 10_000);
    let got: BTreeSet<String> = hashes.into_iter().collect();
    assert_eq!(got.len(), 10_000, "no duplicates");
    assert_eq!(got, want, "every input memory is there");
}

#[test]
fn bad_lines_are_reported_by_number_and_the_rest_imported() {
    let dir = tempfile::tempdir().unwrap();
    let env = no_env();
    let input = dir.path().join("mixed.jsonl");
    let mut wrong_dims = record(6, Some(MINILM));
    wrong_dims["embedding"] = json!([0.5, 0.5]);
    let lines = vec![
        record(0, Some(MINILM)).to_string(),
        "{\"content\": \"unterminated".to_owned(),
        record(2, Some(MINILM)).to_string(),
        json!({"tags": ["x"], "embedding": vector(3), "embedding_model": MINILM}).to_string(),
        json!({"content": "tags are numbers", "tags": [1, 2]}).to_string(),
        String::new(),
        wrong_dims.to_string(),
        record(8, Some(MINILM)).to_string(),
    ];
    write_jsonl(&input, lines);
    let db = dir.path().join("m.db");
    // Valid lines are stored; the status is 1 because some input was not, and with --json
    // stdout holds exactly the one summary document.
    let out = run(&db, &env, &["--json", "import", input.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["imported"], 3, "{summary}");
    assert_eq!(summary["invalid"], 4);
    let problems = summary["invalid_lines"].as_array().unwrap();
    let numbered: Vec<(u64, String)> = problems
        .iter()
        .map(|p| {
            (
                p["line"].as_u64().unwrap(),
                p["error"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        numbered.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        [2, 4, 5, 7]
    );
    assert!(numbered[0].1.contains("invalid JSON"), "{numbered:?}");
    assert!(numbered[1].1.contains("`content`"), "{numbered:?}");
    assert!(numbered[2].1.contains("`tags`"), "{numbered:?}");
    assert!(
        numbered[3].1.contains("`embedding`") && numbered[3].1.contains("384"),
        "{numbered:?}"
    );
    assert_eq!(total(&db, &env), 3);

    // The text summary lists them too.
    let text_db = dir.path().join("text.db");
    let out = run(&text_db, &env, &["import", input.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("4 invalid line(s) skipped"), "{err}");
    assert!(text.contains("line 2: invalid JSON"), "{text}");
    assert!(text.contains("line 7: field `embedding`"), "{text}");

    // --strict: the first bad line is fatal and nothing is stored.
    let strict = dir.path().join("strict.db");
    let out = run(
        &strict,
        &env,
        &["import", input.to_str().unwrap(), "--strict"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2") && err.contains("invalid JSON"),
        "{err}"
    );
    assert!(!err.contains("line 4"), "{err}");
    assert_eq!(total(&strict, &env), 0);
}

#[test]
fn upstream_export_documents_and_foreign_vectors_are_imported() {
    let dir = tempfile::tempdir().unwrap();
    let env = no_env();
    let doc = json!({
        "export_metadata": {"source_machine": "laptop", "export_timestamp": "2024-05-01T10:00:00"},
        "memories": [
            {"content": "Upstream note one", "content_hash": sha256_hex(b"upstream note one"),
             "tags": ["a", "b"], "created_at": 1_700_000_000.25, "updated_at": 1_700_000_100.5,
             "memory_type": "note", "metadata": {"k": 1}},
            {"content": "Upstream note two", "tags": [], "created_at": 1_600_000_000.0,
             "memory_type": null, "metadata": {}, "embedding": [0.1, 0.2], "embedding_model": "acme/other-model"}
        ]
    });
    let input = dir.path().join("upstream.json");
    std::fs::write(&input, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let db = dir.path().join("m.db");
    let summary = ok_json(&db, &env, &["import", input.to_str().unwrap()]);
    assert_eq!(summary["imported"], 2, "{summary}");
    assert_eq!(summary["vectors"]["dropped"], 1);
    assert!(
        summary["vectors"]["note"]
            .as_str()
            .unwrap()
            .contains("acme/other-model"),
        "{summary}"
    );
    let exported = ok(&db, &env, &["export"]);
    let first: Value = serde_json::from_str(exported.lines().next().unwrap()).unwrap();
    assert_eq!(first["content"], "Upstream note one");
    assert_eq!(first["created_at"], 1_700_000_000.25);
    assert_eq!(first["updated_at"], 1_700_000_100.5);
    assert_eq!(first["tags"], json!(["a", "b"]));
}

struct Cloudflare {
    _emulator: EmulatorHandle,
    env: Vec<(&'static str, String)>,
}

async fn cloudflare() -> Cloudflare {
    let emulator = Emulator::start(EmulatorConfig {
        rate_limit: 1_000_000,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let mut env = support::emulator_env(
        &emulator,
        "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        "migrate-test",
    );
    env.extend([
        ("CLOUDFLARE_RATE_LIMIT", "1000000".to_owned()),
        // Both SQLite stores use the local name of the same model, so vectors are carried.
        ("MCP_MEMORY_EMBEDDING_MODEL", BGE_SMALL.to_owned()),
    ]);
    Cloudflare {
        _emulator: emulator,
        env,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_sqlite_to_cloudflare_to_sqlite_keeps_every_memory_and_resumes() {
    let cf = cloudflare().await;
    let env = cf.env.clone();
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let input = root.join("in.jsonl");
        generate(&input, 1000, Some(BGE_SMALL));
        let a = root.join("a.db");
        let imported = ok_json(&a, &env, &["import", input.to_str().unwrap()]);
        assert_eq!(imported["vectors"]["carried"], 1000, "{imported}");

        // Refusals and the dry run first.
        let same = run(
            &a,
            &env,
            &["migrate", "--from", "sqlite", "--to", "sqlite_vec"],
        );
        assert_eq!(same.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&same.stderr).contains("different backends"));
        let dry = ok_json(
            &a,
            &env,
            &[
                "migrate",
                "--from",
                "sqlite",
                "--to",
                "cloudflare",
                "--dry-run",
            ],
        );
        assert_eq!(dry["would_copy"], 1000, "{dry}");
        assert_eq!(dry["already_present"], 0);

        // sqlite -> cloudflare, killed partway, then resumed.
        let progress = root.join("a.db.migrate-sqlite-to-cloudflare.progress");
        let mut child = command(
            &a,
            &env,
            &[
                "migrate",
                "--from",
                "sqlite",
                "--to",
                "cloudflare",
                "--batch-size",
                "10",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        assert!(
            wait_for_checkpoint(&mut child, &progress),
            "the migration recorded no progress before it ended"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(progress.exists());
        let out = run(
            &a,
            &env,
            &[
                "--json",
                "migrate",
                "--from",
                "sqlite",
                "--to",
                "cloudflare",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("resuming after"));
        let there: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            there["copied"].as_u64().unwrap() + there["already_present"].as_u64().unwrap(),
            1000,
            "{there}"
        );
        assert_eq!(there["failed"], 0);
        assert_eq!(there["vectors"]["same_model"], true, "{there}");
        assert!(!progress.exists());

        // cloudflare -> a fresh sqlite.
        let b = root.join("b.db");
        let back = ok_json(
            &b,
            &env,
            &["migrate", "--from", "cloudflare", "--to", "sqlite"],
        );
        assert_eq!(back["copied"], 1000, "{back}");
        assert_eq!(back["vectors"]["reused"], 1000, "{back}");
        assert_eq!(back["vectors"]["re_embedded"], 0, "{back}");
        let again = ok_json(
            &b,
            &env,
            &["migrate", "--from", "cloudflare", "--to", "sqlite"],
        );
        assert_eq!(again["already_present"], 1000, "{again}");

        // Every memory identical: content, hash, tags, type, metadata, both timestamps,
        // and the vectors.
        for flags in [&["export"][..], &["export", "--embeddings"]] {
            let from_a = ok(&a, &env, flags);
            let from_b = ok(&b, &env, flags);
            assert_eq!(from_a.lines().count(), 1000);
            assert!(from_a == from_b, "{flags:?}: the two SQLite stores differ");
        }
    })
    .await
    .unwrap();
}

#[test]
fn the_progress_bar_is_drawn_on_a_terminal_and_not_on_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let env = no_env();
    let input = dir.path().join("in.jsonl");
    generate(&input, 300, Some(MINILM));
    // On a pipe: no control codes, no bar.
    let piped = dir.path().join("piped.db");
    let out = run(&piped, &env, &["import", input.to_str().unwrap()]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("300/300"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");

    // On a terminal (util-linux `script` gives the command a pseudo-terminal).
    if Command::new("script").arg("--version").output().is_err() {
        // CI installs it (`.ci/run`); a developer machine without it skips, saying so.
        assert!(
            std::env::var_os("CI").is_none(),
            "`script` (util-linux) is required under CI for the terminal case"
        );
        eprintln!(
            "SKIPPED: `script` (util-linux) is not installed: the terminal case is not exercised"
        );
        return;
    }
    let db = dir.path().join("tty.db");
    let line = format!(
        "{} --db {} import {} --batch-size 10",
        env!("CARGO_BIN_EXE_mcp-memory"),
        db.display(),
        input.display()
    );
    let out = Command::new("script")
        .args(["-qfec", &line, "/dev/null"])
        .env_remove("MCP_MEMORY_STORAGE_BACKEND")
        .env_remove("MCP_MEMORY_EMBEDDING_MODEL")
        .env("MCP_MEMORY_LOG", "off")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{seen}");
    assert!(seen.contains("300/300 lines"), "no bar in {seen:?}");
    assert!(seen.contains("imported 300 memories"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_reports_refused_memories_and_a_missing_source_with_status_1() {
    let cf = cloudflare().await;
    let env = cf.env.clone();
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        // A mistyped source path is an error naming the flag, and creates nothing.
        let missing = root.join("typo.db");
        let out = run(
            &missing,
            &env,
            &["migrate", "--from", "sqlite", "--to", "cloudflare"],
        );
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("does not exist") && err.contains("--db"),
            "{err}"
        );
        assert!(!missing.exists());

        // Content over the large-content threshold with no R2 bucket is refused by the
        // Cloudflare store: the rest is copied, the refusal listed, and the status is 1.
        let input = root.join("in.jsonl");
        let mut big = record(0, Some(BGE_SMALL));
        big["content"] = json!("x".repeat(1_100_000));
        write_jsonl(
            &input,
            [
                big.to_string(),
                record(1, Some(BGE_SMALL)).to_string(),
                record(2, Some(BGE_SMALL)).to_string(),
            ],
        );
        let a = root.join("a.db");
        ok(&a, &env, &["import", input.to_str().unwrap()]);
        let out = run(
            &a,
            &env,
            &[
                "--json",
                "migrate",
                "--from",
                "sqlite",
                "--to",
                "cloudflare",
            ],
        );
        assert_eq!(out.status.code(), Some(1));
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["copied"], 2, "{summary}");
        assert_eq!(summary["failed"], 1, "{summary}");
        let reason = summary["failures"][0]["error"].as_str().unwrap();
        assert!(reason.contains("CLOUDFLARE_R2_BUCKET"), "{reason}");
    })
    .await
    .unwrap();
}

/// Issue 12 item 8: a memory the core accepts (100 tags of 100 multibyte characters) made
/// the Cloudflare batch fail as a whole, and migrate then copied nothing and pointed to a
/// progress file it had not written. Now every memory is copied; and when the destination
/// refuses whole batches, each memory is tried on its own, every refusal is listed, and the
/// message names a progress file only when there is one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_copies_every_memory_it_can_and_lists_the_rest() {
    let cf = cloudflare().await;
    let faults = cf._emulator.faults();
    let env = cf.env.clone();
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let input = root.join("in.jsonl");
        let mut heavy = record(0, Some(BGE_SMALL));
        let tags: Vec<String> = (0..100)
            .map(|n| format!("{n:02}{}", "語".repeat(98)))
            .collect();
        heavy["tags"] = json!(tags);
        write_jsonl(
            &input,
            [
                heavy.to_string(),
                record(1, Some(BGE_SMALL)).to_string(),
                record(2, Some(BGE_SMALL)).to_string(),
            ],
        );
        let a = root.join("a.db");
        ok(&a, &env, &["import", input.to_str().unwrap()]);
        let args = [
            "--json",
            "migrate",
            "--from",
            "sqlite",
            "--to",
            "cloudflare",
        ];

        // Vectorize refuses every write: nothing can be copied, and each memory says why.
        let refuse = faults
            .add(cloudflare_emulator::FaultRule::error("/upsert", 400, 1.0))
            .unwrap();
        let out = run(&a, &env, &args);
        assert_eq!(out.status.code(), Some(1));
        let summary: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(summary["copied"], 0, "{summary}");
        assert_eq!(summary["failed"], 3, "{summary}");
        assert_eq!(summary["failures"].as_array().map(Vec::len), Some(3));
        let progress = root.join("a.db.migrate-sqlite-to-cloudflare.progress");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains(&progress.display().to_string()) || progress.exists(),
            "names a progress file that does not exist: {stderr}"
        );
        assert!(faults.remove(refuse));

        // One batch refused as a whole once: its memories go one by one, all are copied.
        faults
            .add(cloudflare_emulator::FaultRule::fail_next("/upsert", 1, 400))
            .unwrap();
        let out = run(&a, &env, &args);
        let summary: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert!(out.status.success(), "{summary}");
        assert_eq!(summary["copied"], 3, "{summary}");
        assert_eq!(summary["failed"], 0, "{summary}");
        assert!(!progress.exists());
        let listed = ok(&a, &env, &["--backend", "cloudflare", "--json", "list"]);
        assert!(listed.contains(&tags[99]), "every tag arrived in D1");
    })
    .await
    .unwrap();
}
