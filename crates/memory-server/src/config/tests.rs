//! The configuration's unit tests: precedence, the file, problems, secrets and `show`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use memory_cloudflare::config::CloudflareConfig;

use super::file::FileOrigin;
use super::problem::{ConfigError, Problem, Source};
use super::resolve::{BackendKind, Config, Entry, Overrides, Resolution};
use super::settings::{
    CONFIG_ENV, DEFAULT_MODEL, PRECEDENCE, SETTINGS, Secret, Setting, SettingId, mask,
};

/// The setting read from `env`, if any.
fn setting_for_env(env: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.env == env)
}

const SECRET: &str = "secret-token-value-9876";

fn resolve(vars: &[(&str, &str)], overrides: &Overrides) -> Resolution {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Resolution::resolve(overrides, &|k| map.get(k).cloned(), None)
}

fn load(vars: &[(&str, &str)], overrides: Overrides) -> Result<Config, ConfigError> {
    resolve(vars, &overrides).into_config()
}

/// A directory holding `config.toml` with `text`.
fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn with_file(path: &Path) -> Overrides {
    Overrides {
        config_file: Some(path.to_path_buf()),
        ..Overrides::default()
    }
}

fn problems_of(err: &ConfigError) -> &[Problem] {
    match err {
        ConfigError::Problems(p) => &p.0,
        ConfigError::Invalid { .. } => &[],
    }
}

fn entry<'a>(r: &'a Resolution, key: &str) -> &'a Entry {
    r.entries.iter().find(|e| e.setting.key == key).unwrap()
}

#[test]
fn defaults_to_sqlite_and_minilm() {
    let r = resolve(&[], &Overrides::default());
    assert!(r.file.is_none());
    assert_eq!(entry(&r, "storage.backend").source, Some(Source::Default));
    let c = r.into_config().unwrap();
    assert_eq!(c.backend, BackendKind::Sqlite);
    assert_eq!(c.embedding_model, DEFAULT_MODEL);
    assert!(c.sqlite_path.ends_with("mcp-memory/memories.db"));
    assert!(c.api_key.is_none() && c.model_dir.is_none());
}

#[test]
fn flag_beats_variable() {
    let c = load(
        &[("MCP_MEMORY_SQLITE_PATH", "/env.db")],
        Overrides {
            sqlite_path: Some("/flag.db".into()),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(c.sqlite_path, PathBuf::from("/flag.db"));
}

#[test]
fn each_layer_beats_the_next() {
    let (_dir, path) = file(
        "[storage]\nbackend = \"cloudflare\"\n[sqlite]\npath = \"/file.db\"\n\
         [embedding]\nmodel = \"file/model\"\nmodel_dir = \"/file-models\"\n",
    );
    // File beats default.
    let r = resolve(&[], &with_file(&path));
    let file_source = |key| Source::File {
        path: path.clone(),
        key,
    };
    assert_eq!(
        entry(&r, "sqlite.path").source,
        Some(file_source("sqlite.path"))
    );
    assert_eq!(
        entry(&r, "embedding.model").value.as_deref(),
        Some("file/model")
    );
    assert_eq!(
        entry(&r, "storage.backend").source,
        Some(file_source("storage.backend"))
    );
    // Environment beats file.
    let vars = [
        ("MCP_MEMORY_STORAGE_BACKEND", "sqlite"),
        ("MCP_MEMORY_SQLITE_PATH", "/env.db"),
        ("MCP_MEMORY_EMBEDDING_MODEL", "env/model"),
    ];
    let r = resolve(&vars, &with_file(&path));
    assert_eq!(
        entry(&r, "sqlite.path").source,
        Some(Source::Env("MCP_MEMORY_SQLITE_PATH"))
    );
    let c = r.into_config().unwrap();
    assert_eq!(c.backend, BackendKind::Sqlite);
    assert_eq!(c.sqlite_path, PathBuf::from("/env.db"));
    assert_eq!(c.embedding_model, "env/model");
    assert_eq!(c.model_dir, Some(PathBuf::from("/file-models")));
    // Flag beats environment.
    let overrides = Overrides {
        sqlite_path: Some("/flag.db".into()),
        backend: Some("sqlite-vec".into()),
        config_file: Some(path.clone()),
        api_key: None,
    };
    let vars = [
        ("MCP_MEMORY_STORAGE_BACKEND", "cloudflare"),
        ("MCP_MEMORY_SQLITE_PATH", "/env.db"),
    ];
    let r = resolve(&vars, &overrides);
    assert_eq!(
        entry(&r, "storage.backend").source,
        Some(Source::Flag("--backend"))
    );
    assert_eq!(entry(&r, "sqlite.path").source, Some(Source::Flag("--db")));
    let c = r.into_config().unwrap();
    assert_eq!(c.backend, BackendKind::Sqlite);
    assert_eq!(c.sqlite_path, PathBuf::from("/flag.db"));
}

#[test]
fn a_blank_variable_lets_the_file_apply() {
    let (_dir, path) = file("[embedding]\nmodel = \"file/model\"\n");
    let c = load(&[("MCP_MEMORY_EMBEDDING_MODEL", "  ")], with_file(&path)).unwrap();
    assert_eq!(c.embedding_model, "file/model");
}

#[test]
fn the_file_is_found_by_flag_then_variable_then_default_location() {
    let (_a, flag_file) = file("[embedding]\nmodel = \"from/flag\"\n");
    let (_b, env_file) = file("[embedding]\nmodel = \"from/env\"\n");
    let (_c, default_file) = file("[embedding]\nmodel = \"from/default\"\n");
    let env_path = env_file.display().to_string();
    let vars: HashMap<&str, &str> = [(CONFIG_ENV, env_path.as_str())].into();
    let var = |k: &str| vars.get(k).map(|v| (*v).to_owned());
    let model = |r: Resolution| r.into_config().unwrap().embedding_model;

    let r = Resolution::resolve(&with_file(&flag_file), &var, Some(default_file.clone()));
    assert_eq!(r.file, Some((flag_file.clone(), FileOrigin::Flag)));
    assert_eq!(model(r), "from/flag");
    let r = Resolution::resolve(&Overrides::default(), &var, Some(default_file.clone()));
    assert_eq!(r.file, Some((env_file.clone(), FileOrigin::Env)));
    assert_eq!(model(r), "from/env");
    let none = |_: &str| None;
    let r = Resolution::resolve(&Overrides::default(), &none, Some(default_file.clone()));
    assert_eq!(
        r.file,
        Some((default_file.clone(), FileOrigin::DefaultLocation))
    );
    assert_eq!(model(r), "from/default");
    // A default-location file that does not exist is simply absent.
    let missing = default_file.with_file_name("absent.toml");
    let r = Resolution::resolve(&Overrides::default(), &none, Some(missing));
    assert!(r.file.is_none());
    assert!(r.problems.is_empty(), "{:?}", r.problems);
}

#[test]
fn an_explicit_file_that_does_not_exist_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let err = load(&[], with_file(&missing)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert!(text.contains("--config"), "{text}");
    let shown = missing.display().to_string();
    let err = load(&[(CONFIG_ENV, shown.as_str())], Overrides::default()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&shown) && text.contains(CONFIG_ENV), "{text}");
}

#[test]
fn unknown_keys_and_sections_are_errors_listing_the_valid_ones() {
    let (_dir, path) = file(
        "backend = \"sqlite\"\n[cloudflare]\nacount_id = \"x\"\n\n[databse]\npath = \"/x.db\"\n",
    );
    let err = load(&[], with_file(&path)).unwrap_err();
    let problems = problems_of(&err);
    assert_eq!(problems.len(), 3, "{err}");
    let shown = path.display().to_string();
    // In file order, each with its line and column.
    assert_eq!(problems[0].location, format!("{shown}:1:1"));
    assert!(problems[0].message.contains("storage.backend"), "{err}");
    assert_eq!(problems[1].location, format!("{shown}:3:1"));
    assert!(problems[1].message.contains("acount_id"), "{err}");
    for key in ["account_id", "api_token", "rate_limit", "d1_database_id"] {
        assert!(problems[1].message.contains(key), "{err} lacks {key}");
    }
    assert_eq!(problems[2].location, format!("{shown}:5:2"));
    for want in [
        "[databse]",
        "[storage]",
        "[sqlite]",
        "[cloudflare]",
        "[http]",
    ] {
        assert!(problems[2].message.contains(want), "{err} lacks {want}");
    }
}

#[test]
fn syntax_errors_give_line_and_column() {
    let (_dir, path) = file("[storage]\nbackend = \"sqlite\"\n[sqlite]\npath = /x.db\n");
    let err = load(&[], with_file(&path)).unwrap_err();
    let problems = problems_of(&err);
    assert_eq!(problems.len(), 1, "{err}");
    assert_eq!(
        problems[0].location,
        format!("{}:4:8", path.display()),
        "{err}"
    );
    assert!(problems[0].message.contains("TOML syntax error"), "{err}");
}

#[test]
fn values_of_the_wrong_type_are_errors_and_numbers_become_strings() {
    let (_dir, path) = file(
        "[storage]\nbackend = \"cloudflare\"\n[cloudflare]\napi_token = \"t\"\n\
         account_id = \"023e105f4ecef8ad9ca31a8372d0c353\"\nvectorize_index = \"idx\"\n\
         d1_database_id = \"5c4a9f1e-7d2b-4c3a-8e6f-1a2b3c4d5e6f\"\nrate_limit = 600\n\
         base_delay = 0.25\nrequest_timeout = 2\nmax_retries = 0x5\n",
    );
    let c = load(&[], with_file(&path)).unwrap();
    let cf = c.cloudflare.unwrap();
    assert_eq!(cf.client.rate_limit.unwrap().requests(), 600);
    assert_eq!(cf.client.retry.max_retries, 5);
    assert_eq!(cf.client.request_timeout, std::time::Duration::from_secs(2));
    assert_eq!(
        cf.client.retry.backoff.init_backoff(),
        std::time::Duration::from_millis(250)
    );

    let (_dir, path) =
        file("[sqlite]\npath = 3\n[cloudflare]\nrate_limit = 1.5\nr2_bucket = [\"a\"]\n");
    let err = load(&[], with_file(&path)).unwrap_err();
    let text = err.to_string();
    assert_eq!(problems_of(&err).len(), 3, "{text}");
    for want in [
        "sqlite.path must be a string",
        "cloudflare.rate_limit must be a whole number",
        "cloudflare.r2_bucket must be a string",
    ] {
        assert!(text.contains(want), "{text} lacks {want}");
    }
}

#[test]
fn http_session_limits_come_from_the_environment_or_the_file() {
    let (_dir, path) = file("[http]\nsession_idle_timeout = 60\nmax_sessions = 7\n");
    let c = load(&[], with_file(&path)).unwrap();
    assert_eq!(
        (c.session_idle_timeout, c.max_sessions),
        (Some(60), Some(7))
    );
    let c = load(&[("MCP_MEMORY_MAX_SESSIONS", "9")], with_file(&path)).unwrap();
    assert_eq!(c.max_sessions, Some(9), "the environment beats the file");
    let (_dir, path) = file("[http]\nmax_sessions = 0\n");
    let err = load(&[], with_file(&path)).unwrap_err().to_string();
    assert!(
        err.contains("http.max_sessions") && err.contains("at least 1"),
        "{err}"
    );
}

#[test]
fn relative_paths_in_the_file_are_relative_to_its_directory() {
    let (dir, path) = file("[sqlite]\npath = \"data/m.db\"\n[embedding]\nmodel_dir = \"models\"\n");
    let c = load(&[], with_file(&path)).unwrap();
    assert_eq!(c.sqlite_path, dir.path().join("data/m.db"));
    assert_eq!(c.model_dir, Some(dir.path().join("models")));
    // An absolute one stays, and a relative variable is left to the working directory.
    let (_d, path) = file("[sqlite]\npath = \"/abs/m.db\"\n");
    let c = load(&[], with_file(&path)).unwrap();
    assert_eq!(c.sqlite_path, PathBuf::from("/abs/m.db"));
    let c = load(&[("MCP_MEMORY_SQLITE_PATH", "rel.db")], with_file(&path)).unwrap();
    assert_eq!(c.sqlite_path, PathBuf::from("rel.db"));
}

#[test]
fn secrets_never_show() {
    let (_dir, path) = file(&format!(
        "[http]\napi_key = \"{SECRET}\"\n[cloudflare]\napi_token = \"{SECRET}\"\n"
    ));
    let vars = [
        ("MCP_MEMORY_STORAGE_BACKEND", "cloudflare"),
        ("CLOUDFLARE_ACCOUNT_ID", "023e105f4ecef8ad9ca31a8372d0c353"),
        ("CLOUDFLARE_VECTORIZE_INDEX", "mcp-memory"),
        (
            "CLOUDFLARE_D1_DATABASE_ID",
            "5c4a9f1e-7d2b-4c3a-8e6f-1a2b3c4d5e6f",
        ),
    ];
    let r = resolve(&vars, &with_file(&path));
    let shown = [format!("{r}"), r.to_json().to_string(), format!("{r:?}")];
    for text in &shown {
        assert!(!text.contains(SECRET), "{text}");
        assert!(text.contains("***9876"), "{text}");
    }
    assert_eq!(entry(&r, "http.api_key").value.as_deref(), Some("***9876"));
    let c = r.into_config().unwrap();
    assert_eq!(c.api_key.as_ref().map(Secret::expose), Some(SECRET));
    assert_eq!(c.cloudflare.as_ref().unwrap().client.token.expose(), SECRET);
    for text in [format!("{c:?}"), format!("{c:#?}")] {
        assert!(!text.contains(SECRET), "{text}");
    }
    assert_eq!(mask("short"), "***");
    assert_eq!(Secret::new(SECRET).to_string(), "***");
    // A bad value elsewhere never quotes the token either.
    let err = load(
        &[
            ("CLOUDFLARE_D1_DATABASE_ID", "x"),
            ("MCP_MEMORY_STORAGE_BACKEND", "cloudflare"),
        ],
        with_file(&path),
    )
    .unwrap_err();
    assert!(!err.to_string().contains(SECRET) && !format!("{err:?}").contains(SECRET));
}

#[cfg(unix)]
#[test]
fn a_secret_in_a_file_others_can_read_draws_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path) = file(&format!("[cloudflare]\napi_token = \"{SECRET}\"\n"));
    let set_mode = |mode| {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    set_mode(0o644);
    let r = resolve(&[], &with_file(&path));
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(r.warnings[0].contains("chmod 600"), "{:?}", r.warnings);
    assert!(r.warnings[0].contains("cloudflare.api_token"));
    assert!(!r.warnings[0].contains(SECRET));
    // Only a warning: the configuration is still valid.
    assert!(r.problems.is_empty());
    set_mode(0o600);
    assert!(resolve(&[], &with_file(&path)).warnings.is_empty());
    // No secret in the file: no warning whatever the mode.
    let (_d, plain) = file("[sqlite]\npath = \"/x.db\"\n");
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(resolve(&[], &with_file(&plain)).warnings.is_empty());
}

#[test]
fn every_cloudflare_problem_is_reported_with_its_source() {
    let (_dir, path) = file(
        "[storage]\nbackend = \"cloudflare\"\n[cloudflare]\naccount_id = \"acc/123\"\n\
         rate_limit = \"lots\"\n",
    );
    let err = load(
        &[("CLOUDFLARE_D1_DATABASE_ID", "not-a-uuid")],
        with_file(&path),
    )
    .unwrap_err();
    let text = err.to_string();
    let shown = path.display().to_string();
    let locations: Vec<&str> = problems_of(&err)
        .iter()
        .map(|p| p.location.as_str())
        .collect();
    assert_eq!(
        locations,
        vec![
            "CLOUDFLARE_API_TOKEN (or cloudflare.api_token in the config file)".to_owned(),
            format!("cloudflare.account_id in {shown}"),
            "CLOUDFLARE_VECTORIZE_INDEX (or cloudflare.vectorize_index in the config file)"
                .to_owned(),
            "CLOUDFLARE_D1_DATABASE_ID".to_owned(),
            format!("cloudflare.rate_limit in {shown}"),
        ],
        "{text}"
    );
    assert!(text.contains("\"acc/123\" is not an account id"), "{text}");
    assert!(text.contains("5 problems"), "{text}");
}

#[test]
fn every_variable_cloudflare_reads_has_a_file_key() {
    let asked = std::cell::RefCell::new(Vec::new());
    let _ = CloudflareConfig::from_lookup(|k| {
        asked.borrow_mut().push(k.to_owned());
        None
    });
    let asked = asked.into_inner();
    assert!(asked.len() >= 13, "{asked:?}");
    for variable in asked {
        assert!(
            setting_for_env(&variable).is_some(),
            "{variable} has no file key"
        );
    }
}

#[test]
fn the_module_docs_table_lists_every_setting() {
    let source = include_str!("mod.rs");
    for s in SETTINGS {
        let row = format!("//! | `{}` | `{}` |", s.env, s.key);
        assert!(source.contains(&row), "the module docs lack {row}");
    }
    // And each key maps to exactly one variable.
    for (i, a) in SETTINGS.iter().enumerate() {
        for b in &SETTINGS[i + 1..] {
            assert!(a.env != b.env && a.key != b.key, "{a:?} {b:?}");
        }
    }
}

#[test]
fn show_lists_every_setting_with_its_source_and_every_problem() {
    let (_dir, path) = file("[storage]\nbackend = \"cloudflare\"\n");
    let r = resolve(&[("CLOUDFLARE_ACCOUNT_ID", "acc/1")], &with_file(&path));
    let text = r.to_string();
    let shown = path.display().to_string();
    assert!(
        text.contains(&format!("config file: {shown} (from --config)")),
        "{text}"
    );
    assert!(text.contains(PRECEDENCE), "{text}");
    for s in SETTINGS {
        assert!(text.contains(s.key), "{text} lacks {}", s.key);
    }
    assert!(
        text.contains(&format!("[file {shown}:storage.backend]")),
        "{text}"
    );
    assert!(text.contains("[env CLOUDFLARE_ACCOUNT_ID]"), "{text}");
    assert!(text.contains("4 problems:"), "{text}");
    let json = r.to_json();
    assert_eq!(json["valid"], false);
    assert_eq!(json["config_file"], shown.as_str());
    assert_eq!(json["problems"].as_array().unwrap().len(), 4);
    assert_eq!(json["settings"].as_array().unwrap().len(), SETTINGS.len());
    assert_eq!(json["settings"][0]["source"], "file");
    assert_eq!(
        resolve(&[], &Overrides::default()).to_json()["config_file"],
        serde_json::Value::Null
    );
}

#[test]
fn upstream_backend_name_is_accepted() {
    let c = load(
        &[("MCP_MEMORY_STORAGE_BACKEND", "sqlite_vec")],
        Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.backend, BackendKind::Sqlite);
}

#[test]
fn unknown_backend_names_the_variable_and_lists_the_supported_values() {
    let err = load(
        &[("MCP_MEMORY_STORAGE_BACKEND", "mongo")],
        Overrides::default(),
    )
    .unwrap_err();
    let text = err.to_string();
    for want in [
        "MCP_MEMORY_STORAGE_BACKEND",
        "\"mongo\"",
        "sqlite_vec",
        "sqlite-vec",
        "sqlite",
        "cloudflare",
    ] {
        assert!(text.contains(want), "{text} lacks {want}");
    }
    let err = load(
        &[],
        Overrides {
            backend: Some("mongo".into()),
            ..Overrides::default()
        },
    )
    .unwrap_err();
    assert_eq!(problems_of(&err)[0].location, "--backend");
}

#[test]
fn every_sqlite_name_selects_the_embedded_backend() {
    for name in ["sqlite_vec", "sqlite-vec", "sqlite", " SQLite_Vec "] {
        let c = load(
            &[("MCP_MEMORY_STORAGE_BACKEND", name)],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.backend, BackendKind::Sqlite, "{name}");
        assert!(c.cloudflare.is_none());
    }
}

const CLOUDFLARE_VARS: [(&str, &str); 5] = [
    ("MCP_MEMORY_STORAGE_BACKEND", "cloudflare"),
    ("CLOUDFLARE_API_TOKEN", "secret-token-value"),
    ("CLOUDFLARE_ACCOUNT_ID", "023e105f4ecef8ad9ca31a8372d0c353"),
    ("CLOUDFLARE_VECTORIZE_INDEX", "mcp-memory"),
    (
        "CLOUDFLARE_D1_DATABASE_ID",
        "5c4a9f1e-7d2b-4c3a-8e6f-1a2b3c4d5e6f",
    ),
];

#[test]
fn cloudflare_reads_the_cloudflare_variables() {
    let c = load(&CLOUDFLARE_VARS, Overrides::default()).unwrap();
    assert_eq!(c.backend, BackendKind::Cloudflare);
    let cf = c.cloudflare.as_ref().unwrap();
    assert_eq!(cf.vectorize_index, "mcp-memory");
    assert_eq!(cf.embedding_model.id(), "@cf/baai/bge-base-en-v1.5");
    assert!(!format!("{c:?}").contains("secret-token-value"));
}

#[test]
fn cloudflare_defaults_are_shown() {
    let r = resolve(&[], &Overrides::default());
    for (key, want) in [
        ("cloudflare.embedding_model", "@cf/baai/bge-base-en-v1.5"),
        ("cloudflare.large_content_threshold", "1048576"),
        ("cloudflare.max_retries", "3"),
        ("cloudflare.base_delay", "1"),
        ("cloudflare.request_timeout", "40"),
        ("cloudflare.rate_limit", "1200"),
    ] {
        assert_eq!(entry(&r, key).value.as_deref(), Some(want), "{key}");
        assert_eq!(entry(&r, key).source, Some(Source::Default), "{key}");
    }
    assert!(
        entry(&r, "cloudflare.api_base_url")
            .value
            .as_deref()
            .unwrap()
            .starts_with("https://api.cloudflare.com")
    );
    for key in [
        "cloudflare.api_token",
        "cloudflare.r2_bucket",
        "http.api_key",
    ] {
        assert_eq!(entry(&r, key).value, None, "{key}");
        assert_eq!(entry(&r, key).source, None, "{key}");
    }
}

#[test]
fn cloudflare_with_missing_variables_lists_them_all() {
    let err = load(
        &[
            ("MCP_MEMORY_STORAGE_BACKEND", "cloudflare"),
            ("CLOUDFLARE_ACCOUNT_ID", "023e105f4ecef8ad9ca31a8372d0c353"),
            ("CLOUDFLARE_MAX_RETRIES", "many"),
        ],
        Overrides::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Problems(_)), "{err:?}");
    let text = err.to_string();
    for want in [
        "CLOUDFLARE_API_TOKEN",
        "CLOUDFLARE_VECTORIZE_INDEX",
        "CLOUDFLARE_D1_DATABASE_ID",
        "CLOUDFLARE_MAX_RETRIES",
    ] {
        assert!(text.contains(want), "{text} lacks {want}");
    }
    assert!(!text.contains("CLOUDFLARE_ACCOUNT_ID"), "{text}");
}

#[test]
fn every_typed_key_has_exactly_one_row() {
    for field in memory_cloudflare::config::Field::ALL {
        let row = Setting::of(SettingId::Cloudflare(field));
        assert_eq!(row.id, SettingId::Cloudflare(field));
        assert_eq!(row.env, field.env());
        assert_eq!(row.is_secret(), field.is_secret(), "{field}");
    }
    for (i, a) in SETTINGS.iter().enumerate() {
        assert_eq!(Setting::of(a.id).key, a.key);
        for b in &SETTINGS[i + 1..] {
            assert_ne!(a.id, b.id);
        }
    }
}

#[test]
fn secrets_are_one_type_from_every_source_and_never_print() {
    use super::file::ConfigFile;
    use super::settings::Value;
    let (_dir, path) = file(&format!(
        "[http]\napi_key = \"{SECRET}\"\n[cloudflare]\napi_token = \"{SECRET}\"\n"
    ));
    let parsed = ConfigFile::read(&path, FileOrigin::Flag).unwrap();
    for id in [
        SettingId::ApiKey,
        SettingId::Cloudflare(memory_cloudflare::config::Field::ApiToken),
    ] {
        assert!(matches!(parsed.get(id), Some(Value::Secret(_))), "{id:?}");
    }
    for text in [format!("{parsed:?}"), format!("{parsed:#?}")] {
        assert!(!text.contains(SECRET), "{text}");
    }
    // From the environment too, and the API key and the token are the same type.
    let vars = [
        ("MCP_MEMORY_API_KEY", SECRET),
        ("MCP_MEMORY_STORAGE_BACKEND", "cloudflare"),
        ("CLOUDFLARE_API_TOKEN", SECRET),
        ("CLOUDFLARE_ACCOUNT_ID", "023e105f4ecef8ad9ca31a8372d0c353"),
        ("CLOUDFLARE_VECTORIZE_INDEX", "mcp-memory"),
        (
            "CLOUDFLARE_D1_DATABASE_ID",
            "5c4a9f1e-7d2b-4c3a-8e6f-1a2b3c4d5e6f",
        ),
    ];
    let c = load(&vars, Overrides::default()).unwrap();
    let key: &Secret = c.api_key.as_ref().unwrap();
    let token: &Secret = &c.cloudflare.as_ref().unwrap().client.token;
    assert_eq!((key.expose(), token.expose()), (SECRET, SECRET));
    for text in [
        format!("{key:?}"),
        key.to_string(),
        format!("{token:?}"),
        token.to_string(),
        format!("{c:?}"),
        format!("{:?}", Value::Secret(key.clone())),
    ] {
        assert!(!text.contains(SECRET), "{text}");
    }
}

#[test]
fn the_api_key_flag_is_a_layer_reported_masked_with_its_source() {
    let (_dir, path) = file("[http]\napi_key = \"from-the-file-key\"\n");
    let vars = [("MCP_MEMORY_API_KEY", "from-the-environment-key")];
    let overrides = Overrides {
        api_key: Some(Secret::new(SECRET)),
        ..with_file(&path)
    };
    // The flag beats the environment and the file.
    let r = resolve(&vars, &overrides);
    let key = entry(&r, "http.api_key");
    assert_eq!(key.source, Some(Source::Flag("--api-key")));
    assert_eq!(key.value.as_deref(), Some("***9876"));
    let shown = [
        format!("{r}"),
        r.to_json().to_string(),
        format!("{r:?}"),
        format!("{overrides:?}"),
    ];
    for text in &shown {
        assert!(!text.contains(SECRET), "{text}");
    }
    assert!(shown[0].contains("--api-key"), "{}", shown[0]);
    let c = r.into_config().unwrap();
    assert_eq!(c.api_key.as_ref().map(Secret::expose), Some(SECRET));
    // Without the flag: the environment, then the file; an empty flag is no flag.
    let blank = Overrides {
        api_key: Some(Secret::new("  ")),
        ..with_file(&path)
    };
    let r = resolve(&vars, &blank);
    assert_eq!(
        entry(&r, "http.api_key").source,
        Some(Source::Env("MCP_MEMORY_API_KEY"))
    );
    let c = r.into_config().unwrap();
    assert_eq!(
        c.api_key.as_ref().map(Secret::expose),
        Some("from-the-environment-key")
    );
    let c = load(&[], with_file(&path)).unwrap();
    assert_eq!(
        c.api_key.as_ref().map(Secret::expose),
        Some("from-the-file-key")
    );
}
