//! The configuration file and `mcp-memory config`, driven through the built binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod support;
use support::Isolated;

const TOKEN: &str = "cf-file-token-abcdefgh-1234";

/// `mcp-memory ARGS` with a clean environment plus `env`; the per-user config directory is
/// `home`, so no configuration file of the machine's user is read.
fn run(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(support::BIN);
    // The model directory too: `config` shows where it comes from.
    command
        .isolated(&home.join("xdg-config"))
        .env_remove("MCP_MEMORY_MODEL_DIR")
        .args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run mcp-memory")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn setting<'a>(doc: &'a Value, key: &str) -> &'a Value {
    doc["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("no setting {key} in {doc:#}"))
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn problem_locations(doc: &Value) -> Vec<String> {
    doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["location"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn config_json_shows_each_value_with_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "[sqlite]\npath = \"data/memories.db\"\n\n[embedding]\nmodel = \"from/file\"\n",
    );
    let shown = path.display().to_string();
    let out = run(
        dir.path(),
        &["--config", &shown, "config", "--json"],
        &[("MCP_MEMORY_EMBEDDING_MODEL", "from/env")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = json(&out);
    assert_eq!(doc["config_file"], shown.as_str());
    assert_eq!(doc["config_file_from"], "--config");
    assert_eq!(doc["valid"], true);
    assert_eq!(
        doc["precedence"],
        "command-line flag > environment variable > config file > built-in default"
    );
    let sqlite = setting(&doc, "sqlite.path");
    assert_eq!(sqlite["source"], "file");
    assert_eq!(sqlite["from"], format!("file {shown}:sqlite.path"));
    // Relative to the file's directory.
    assert_eq!(
        sqlite["value"],
        dir.path().join("data/memories.db").display().to_string()
    );
    let model = setting(&doc, "embedding.model");
    assert_eq!(model["source"], "env");
    assert_eq!(model["from"], "env MCP_MEMORY_EMBEDDING_MODEL");
    assert_eq!(model["value"], "from/env");
    assert_eq!(setting(&doc, "storage.backend")["source"], "default");
    assert_eq!(setting(&doc, "storage.backend")["value"], "sqlite");
    assert_eq!(setting(&doc, "cloudflare.api_token")["source"], "unset");

    // The flag beats both.
    let db = dir.path().join("flag.db").display().to_string();
    let out = run(
        dir.path(),
        &["--config", &shown, "--db", &db, "config", "--json"],
        &[("MCP_MEMORY_SQLITE_PATH", "/env.db")],
    );
    let doc = json(&out);
    assert_eq!(setting(&doc, "sqlite.path")["from"], "flag --db");
    assert_eq!(setting(&doc, "sqlite.path")["value"], db.as_str());

    // The text form says the same.
    let out = run(dir.path(), &["--config", &shown, "config"], &[]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("config file: {shown} (from --config)")),
        "{text}"
    );
    assert!(
        text.contains(&format!("[file {shown}:embedding.model]")),
        "{text}"
    );
}

#[test]
fn without_a_file_config_says_none() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["config", "--json"], &[]);
    assert!(out.status.success());
    let doc = json(&out);
    assert_eq!(doc["config_file"], Value::Null);
    // The default location is used when it exists.
    let default_dir = dir.path().join("xdg-config/mcp-memory");
    std::fs::create_dir_all(&default_dir).unwrap();
    let path = write_config(&default_dir, "[embedding]\nmodel = \"from/default\"\n");
    let doc = json(&run(dir.path(), &["config", "--json"], &[]));
    assert_eq!(doc["config_file"], path.display().to_string());
    assert_eq!(doc["config_file_from"], "the default location");
    assert_eq!(setting(&doc, "embedding.model")["value"], "from/default");
}

#[test]
fn a_cloudflare_file_with_missing_ids_lists_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        &format!(
            "[storage]\nbackend = \"cloudflare\"\n\n[cloudflare]\napi_token = \"{TOKEN}\"\n\
             account_id = \"acc/123\"\n"
        ),
    );
    let shown = path.display().to_string();
    let out = run(
        dir.path(),
        &["config", "--json"],
        &[("MCP_MEMORY_CONFIG", &shown)],
    );
    assert_eq!(out.status.code(), Some(1));
    let doc = json(&out);
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["config_file_from"], "MCP_MEMORY_CONFIG");
    assert_eq!(
        problem_locations(&doc),
        vec![
            format!("cloudflare.account_id in {shown}"),
            "CLOUDFLARE_VECTORIZE_INDEX (or cloudflare.vectorize_index in the config file)"
                .to_owned(),
            "CLOUDFLARE_D1_DATABASE_ID (or cloudflare.d1_database_id in the config file)"
                .to_owned(),
        ]
    );
    // What could be read is still shown, the token masked.
    let token = setting(&doc, "cloudflare.api_token");
    assert_eq!(token["value"], "***1234");
    assert_eq!(token["source"], "file");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(TOKEN), "{stdout}");

    // Text: the report on stdout, then the failure on stderr.
    let out = run(dir.path(), &["config"], &[("MCP_MEMORY_CONFIG", &shown)]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("3 problems:"), "{stdout}");
    assert!(stdout.contains("cloudflare.account_id in"), "{stdout}");
    assert!(!stdout.contains(TOKEN), "{stdout}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("not valid: 3 problems"), "{stderr}");

    // Any other command refuses with the same list.
    let out = run(dir.path(), &["--config", &shown, "stats"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    for want in [
        "CLOUDFLARE_VECTORIZE_INDEX",
        "CLOUDFLARE_D1_DATABASE_ID",
        "cloudflare.account_id in",
    ] {
        assert!(stderr.contains(want), "{stderr} lacks {want}");
    }
    assert!(!stderr.contains(TOKEN), "{stderr}");
}

#[test]
fn the_environment_beats_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[storage]\nbackend = \"cloudflare\"\n");
    let shown = path.display().to_string();
    let db = dir.path().join("m.db").display().to_string();
    let env = [("MCP_MEMORY_STORAGE_BACKEND", "sqlite")];
    let out = run(dir.path(), &["--config", &shown, "config", "--json"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let doc = json(&out);
    let backend = setting(&doc, "storage.backend");
    assert_eq!(backend["value"], "sqlite");
    assert_eq!(backend["from"], "env MCP_MEMORY_STORAGE_BACKEND");
    // And the SQLite store opens (stats never loads the model).
    let out = run(
        dir.path(),
        &["--config", &shown, "--db", &db, "stats", "--json"],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // --backend beats the environment.
    let doc = json(&run(
        dir.path(),
        &[
            "--config",
            &shown,
            "--backend",
            "cloudflare",
            "config",
            "--json",
        ],
        &env,
    ));
    assert_eq!(setting(&doc, "storage.backend")["from"], "flag --backend");
    assert_eq!(doc["valid"], false);
}

#[test]
fn file_mistakes_are_reported_with_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.toml").display().to_string();
    let out = run(dir.path(), &["--config", &missing, "config"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(&missing) && stdout.contains("--config"),
        "{stdout}"
    );

    let path = write_config(dir.path(), "[sqlite]\npth = \"x.db\"\n");
    let shown = path.display().to_string();
    let doc = json(&run(
        dir.path(),
        &["--config", &shown, "config", "--json"],
        &[],
    ));
    assert_eq!(problem_locations(&doc), vec![format!("{shown}:2:1")]);
    let message = doc["problems"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("pth") && message.contains("path"),
        "{message}"
    );

    let path = write_config(dir.path(), "[sqlite\npath = \"x.db\"\n");
    let out = run(dir.path(), &["--config", &shown, "list"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!("{}:1:", path.display())) && stderr.contains("TOML syntax"),
        "{stderr}"
    );
}

#[test]
fn the_api_key_is_shown_masked_with_its_source() {
    const KEY: &str = "http-api-key-from-somewhere-4321";
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &format!("[http]\napi_key = \"{KEY}\"\n"));
    let shown = path.display().to_string();
    for (env, from) in [
        (vec![], format!("file {shown}:http.api_key")),
        (
            vec![("MCP_MEMORY_API_KEY", KEY)],
            "env MCP_MEMORY_API_KEY".to_owned(),
        ),
    ] {
        let out = run(dir.path(), &["--config", &shown, "config", "--json"], &env);
        let doc = json(&out);
        let key = setting(&doc, "http.api_key");
        assert_eq!(key["value"], "***4321", "{doc:#}");
        assert_eq!(key["from"], from.as_str(), "{doc:#}");
        assert_eq!(key["flag"], "--api-key", "{doc:#}");
        let text = run(dir.path(), &["--config", &shown, "config"], &env);
        for stream in [&out.stdout, &out.stderr, &text.stdout, &text.stderr] {
            let stream = String::from_utf8_lossy(stream);
            assert!(!stream.contains(KEY), "{stream}");
        }
    }
}
