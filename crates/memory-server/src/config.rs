//! Effective configuration, from flags, environment variables and an optional TOML file.
//!
//! **Precedence:** command-line flag > environment variable > config file > built-in default.
//! An empty variable counts as unset (the file's value, else the default, applies).
//!
//! **The file** is optional: `--config FILE`, else `MCP_MEMORY_CONFIG`, else
//! `<config dir>/mcp-memory/config.toml` (`~/.config/mcp-memory/config.toml` on Linux) if it
//! exists. A file named by `--config` or `MCP_MEMORY_CONFIG` that cannot be read is an error
//! naming it. Every key maps to exactly one variable:
//!
//! | variable | file key | meaning | default |
//! |---|---|---|---|
//! | `MCP_MEMORY_STORAGE_BACKEND` | `storage.backend` | `sqlite` (aliases `sqlite_vec`, upstream's name, and `sqlite-vec`) or `cloudflare`; flag `--backend` | `sqlite` |
//! | `MCP_MEMORY_SQLITE_PATH` | `sqlite.path` | the database file; flag `--db` | `<data dir>/mcp-memory/memories.db` |
//! | `MCP_MEMORY_EMBEDDING_MODEL` | `embedding.model` | embedding model id | `sentence-transformers/all-MiniLM-L6-v2` |
//! | `MCP_MEMORY_MODEL_DIR` | `embedding.model_dir` | directory holding the model files | `<cache dir>/mcp-memory/models/<model>` |
//! | `MCP_MEMORY_API_KEY` | `http.api_key` | key clients of `serve --http` must send (secret); flag `serve --api-key` | none |
//! | `MCP_MEMORY_SESSION_IDLE_TIMEOUT` | `http.session_idle_timeout` | seconds without a request after which an HTTP session ends; flag `serve --session-idle-timeout` | `1800` |
//! | `MCP_MEMORY_MAX_SESSIONS` | `http.max_sessions` | most HTTP sessions live at once; flag `serve --max-sessions` | `200` |
//! | `CLOUDFLARE_API_TOKEN` | `cloudflare.api_token` | API token (secret) | required |
//! | `CLOUDFLARE_ACCOUNT_ID` | `cloudflare.account_id` | account id | required |
//! | `CLOUDFLARE_VECTORIZE_INDEX` | `cloudflare.vectorize_index` | Vectorize index name | required |
//! | `CLOUDFLARE_D1_DATABASE_ID` | `cloudflare.d1_database_id` | D1 database id (a UUID) | required |
//! | `CLOUDFLARE_R2_BUCKET` | `cloudflare.r2_bucket` | R2 bucket for large content | none: large content refused |
//! | `CLOUDFLARE_EMBEDDING_MODEL` | `cloudflare.embedding_model` | Workers AI embedding model | `@cf/baai/bge-base-en-v1.5` |
//! | `CLOUDFLARE_LARGE_CONTENT_THRESHOLD` | `cloudflare.large_content_threshold` | bytes above which content goes to R2 | `1048576` |
//! | `CLOUDFLARE_MAX_RETRIES` | `cloudflare.max_retries` | retries of a failed call | `3` |
//! | `CLOUDFLARE_BASE_DELAY` | `cloudflare.base_delay` | first retry delay, seconds | `1` |
//! | `CLOUDFLARE_API_BASE_URL` | `cloudflare.api_base_url` | API base URL, e.g. the local emulator | `https://api.cloudflare.com/client/v4` |
//! | `CLOUDFLARE_NAMESPACE` | `cloudflare.namespace` | isolates several stores in one account | none |
//! | `CLOUDFLARE_REQUEST_TIMEOUT` | `cloudflare.request_timeout` | limit of one attempt, seconds | `40` |
//! | `CLOUDFLARE_RATE_LIMIT` | `cloudflare.rate_limit` | requests per 5 minutes (`0`: no limit) | `1200` |
//!
//! Only `MCP_MEMORY_CONFIG` itself and `MCP_MEMORY_LOG` (the log filter, read before the file
//! is) have no file key.
//!
//! ```toml
//! [storage]
//! backend = "cloudflare"
//!
//! [cloudflare]
//! account_id = "023e105f4ecef8ad9ca31a8372d0c353"
//! vectorize_index = "mcp-memory"
//! d1_database_id = "5c4a9f1e-7d2b-4c3a-8e6f-1a2b3c4d5e6f"
//! rate_limit = 600
//! ```
//!
//! Values are strings; numeric settings also take TOML numbers. A relative `sqlite.path` or
//! `embedding.model_dir` in the file is relative to the file's directory. Unknown sections and
//! keys are errors listing the valid ones, and syntax errors give the line and column. A file
//! holding a secret that other users can read (Unix mode `& 0o077`) draws a warning.
//!
//! With `MCP_MEMORY_STORAGE_BACKEND=cloudflare` the `CLOUDFLARE_*` settings apply instead of
//! the SQLite and model ones (see [`memory_cloudflare::config`]); every missing or malformed
//! one is reported at once, each named where its value came from (`CLOUDFLARE_ACCOUNT_ID`, or
//! `cloudflare.account_id in /path/config.toml`). Secrets never appear in `Debug` output,
//! messages or `mcp-memory config` (masked as `***`, with at most the last 4 characters).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memory_cloudflare::config::{
    ACCOUNT_ENV, API_BASE_URL_ENV, BASE_DELAY_ENV, CloudflareConfig, CloudflareSettings,
    D1_DATABASE_ENV, EMBEDDING_MODEL_ENV, Field, LARGE_CONTENT_THRESHOLD_ENV, MAX_RETRIES_ENV,
    NAMESPACE_ENV, R2_BUCKET_ENV, RATE_LIMIT_ENV, REQUEST_TIMEOUT_ENV, TOKEN_ENV,
    VECTORIZE_INDEX_ENV,
};
use serde_json::json;
use thiserror::Error;

/// The default embedding model (upstream's default local model too).
pub const DEFAULT_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// `MCP_MEMORY_CONFIG`: the configuration file to read (overridden by `--config`).
pub const CONFIG_ENV: &str = "MCP_MEMORY_CONFIG";
/// `MCP_MEMORY_STORAGE_BACKEND`: the backend.
pub const BACKEND_ENV: &str = "MCP_MEMORY_STORAGE_BACKEND";
/// `MCP_MEMORY_SQLITE_PATH`: the SQLite database file.
pub const SQLITE_PATH_ENV: &str = "MCP_MEMORY_SQLITE_PATH";
/// `MCP_MEMORY_EMBEDDING_MODEL`: the local embedding model id.
pub const EMBEDDING_MODEL_ID_ENV: &str = "MCP_MEMORY_EMBEDDING_MODEL";
/// `MCP_MEMORY_MODEL_DIR`: the directory holding the local model's files.
pub const MODEL_DIR_ENV: &str = "MCP_MEMORY_MODEL_DIR";
/// `MCP_MEMORY_API_KEY`: the key clients of `serve --http` must send.
pub const API_KEY_ENV: &str = "MCP_MEMORY_API_KEY";
/// Seconds an idle HTTP session lives.
pub const SESSION_IDLE_TIMEOUT_ENV: &str = "MCP_MEMORY_SESSION_IDLE_TIMEOUT";
/// Most HTTP sessions live at once.
pub const MAX_SESSIONS_ENV: &str = "MCP_MEMORY_MAX_SESSIONS";

/// The order in which sources win, for messages and `mcp-memory config`.
pub const PRECEDENCE: &str =
    "command-line flag > environment variable > config file > built-in default";

/// Which backend serves the memories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The embedded default: SQLite + in-process vector search + a local model.
    Sqlite,
    /// Cloudflare: D1, Vectorize, R2 and Workers AI (`memory_cloudflare`).
    Cloudflare,
}

/// The values `MCP_MEMORY_STORAGE_BACKEND` accepts, for messages.
pub const SUPPORTED_BACKENDS: &str =
    "sqlite_vec, sqlite-vec, sqlite (the embedded default) or cloudflare";

impl std::str::FromStr for BackendKind {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sqlite" | "sqlite_vec" | "sqlite-vec" => Ok(Self::Sqlite),
            "cloudflare" => Ok(Self::Cloudflare),
            _ => Err(ConfigError::Invalid {
                variable: BACKEND_ENV,
                value: s.to_owned(),
                expected: SUPPORTED_BACKENDS,
            }),
        }
    }
}

/// What kind of value a setting holds, for the file's value types and for masking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A string.
    Text,
    /// A secret string: masked wherever it is shown.
    Secret,
    /// A file or directory; relative in the file means relative to the file's directory.
    Path,
    /// A whole number (a TOML integer or a string).
    Integer,
    /// A number (a TOML integer, float or a string).
    Number,
}

/// One setting: its variable, its key in the file and its command-line flag, if any.
#[derive(Debug)]
pub struct Setting {
    /// The environment variable, e.g. `CLOUDFLARE_ACCOUNT_ID`.
    pub env: &'static str,
    /// The file key, `section.key`, e.g. `cloudflare.account_id`.
    pub key: &'static str,
    /// The global command-line flag that overrides it, if any.
    pub flag: Option<&'static str>,
    /// The kind of value.
    pub kind: ValueKind,
}

impl Setting {
    /// The file section (`cloudflare` of `cloudflare.account_id`).
    #[must_use]
    pub fn section(&self) -> &'static str {
        self.key.split_once('.').map_or(self.key, |(s, _)| s)
    }

    /// The key within its section (`account_id` of `cloudflare.account_id`).
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.key.split_once('.').map_or(self.key, |(_, k)| k)
    }

    /// Whether the value is a secret.
    #[must_use]
    pub fn is_secret(&self) -> bool {
        self.kind == ValueKind::Secret
    }
}

const fn setting(env: &'static str, key: &'static str, kind: ValueKind) -> Setting {
    Setting {
        env,
        key,
        flag: None,
        kind,
    }
}

/// Every setting, in the order `mcp-memory config` shows them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        flag: Some("--backend"),
        ..setting(BACKEND_ENV, "storage.backend", ValueKind::Text)
    },
    Setting {
        flag: Some("--db"),
        ..setting(SQLITE_PATH_ENV, "sqlite.path", ValueKind::Path)
    },
    setting(EMBEDDING_MODEL_ID_ENV, "embedding.model", ValueKind::Text),
    setting(MODEL_DIR_ENV, "embedding.model_dir", ValueKind::Path),
    setting(API_KEY_ENV, "http.api_key", ValueKind::Secret),
    setting(
        SESSION_IDLE_TIMEOUT_ENV,
        "http.session_idle_timeout",
        ValueKind::Integer,
    ),
    setting(MAX_SESSIONS_ENV, "http.max_sessions", ValueKind::Integer),
    setting(TOKEN_ENV, "cloudflare.api_token", ValueKind::Secret),
    setting(ACCOUNT_ENV, "cloudflare.account_id", ValueKind::Text),
    setting(
        VECTORIZE_INDEX_ENV,
        "cloudflare.vectorize_index",
        ValueKind::Text,
    ),
    setting(
        D1_DATABASE_ENV,
        "cloudflare.d1_database_id",
        ValueKind::Text,
    ),
    setting(R2_BUCKET_ENV, "cloudflare.r2_bucket", ValueKind::Text),
    setting(
        EMBEDDING_MODEL_ENV,
        "cloudflare.embedding_model",
        ValueKind::Text,
    ),
    setting(
        LARGE_CONTENT_THRESHOLD_ENV,
        "cloudflare.large_content_threshold",
        ValueKind::Integer,
    ),
    setting(
        MAX_RETRIES_ENV,
        "cloudflare.max_retries",
        ValueKind::Integer,
    ),
    setting(BASE_DELAY_ENV, "cloudflare.base_delay", ValueKind::Number),
    setting(API_BASE_URL_ENV, "cloudflare.api_base_url", ValueKind::Text),
    setting(NAMESPACE_ENV, "cloudflare.namespace", ValueKind::Text),
    setting(
        REQUEST_TIMEOUT_ENV,
        "cloudflare.request_timeout",
        ValueKind::Number,
    ),
    setting(RATE_LIMIT_ENV, "cloudflare.rate_limit", ValueKind::Integer),
];

/// The setting read from `env`, if any.
#[must_use]
pub fn setting_for_env(env: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.env == env)
}

/// The file's sections, in table order.
fn sections() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for s in SETTINGS {
        if !out.contains(&s.section()) {
            out.push(s.section());
        }
    }
    out
}

/// `secret` as it may be shown: `***`, followed by its last 4 characters when it is long
/// enough (16 characters or more) that they give nothing useful away.
#[must_use]
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.trim().chars().collect();
    if chars.len() >= 16 {
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("***{tail}")
    } else {
        "***".to_owned()
    }
}

/// A secret string (the HTTP API key; the Cloudflare API token is the same type):
/// `Debug` and `Display` show `***` only, [`Secret::expose`] gives the value.
pub use memory_cloudflare::config::ApiToken as Secret;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag, e.g. `--db`.
    Flag(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// A key in the configuration file.
    File {
        /// The file.
        path: PathBuf,
        /// The key, e.g. `sqlite.path`.
        key: &'static str,
    },
    /// The built-in default.
    Default,
}

impl Source {
    /// `flag`, `env`, `file` or `default`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Flag(_) => "flag",
            Self::Env(_) => "env",
            Self::File { .. } => "file",
            Self::Default => "default",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(flag) => write!(f, "flag {flag}"),
            Self::Env(var) => write!(f, "env {var}"),
            Self::File { path, key } => write!(f, "file {}:{key}", path.display()),
            Self::Default => f.write_str("default"),
        }
    }
}

/// How the configuration file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOrigin {
    /// `--config FILE`.
    Flag,
    /// `MCP_MEMORY_CONFIG`.
    Env,
    /// `<config dir>/mcp-memory/config.toml`, which exists.
    DefaultLocation,
}

impl fmt::Display for FileOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flag => "--config",
            Self::Env => CONFIG_ENV,
            Self::DefaultLocation => "the default location",
        })
    }
}

/// The default configuration file, `<config dir>/mcp-memory/config.toml`, whether or not it
/// exists (`None` when the platform has no per-user configuration directory).
#[must_use]
pub fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("mcp-memory").join("config.toml"))
}

/// One configuration problem: where (a setting, variable, flag or file position) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file key of the setting at fault, when one is.
    pub setting: Option<&'static str>,
    /// Where the bad value came from, e.g. `CLOUDFLARE_ACCOUNT_ID`,
    /// `cloudflare.account_id in /home/me/.config/mcp-memory/config.toml`, or `FILE:3:1`.
    pub location: String,
    /// What is wrong and what is expected (never a secret).
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl Problem {
    /// A problem with `setting`'s value from `source` (`None`: not set anywhere).
    fn at(setting: &'static Setting, source: Option<&Source>, message: impl Into<String>) -> Self {
        let location = match source {
            Some(Source::Flag(flag)) => (*flag).to_owned(),
            Some(Source::Env(var)) => (*var).to_owned(),
            Some(Source::File { path, key }) => format!("{key} in {}", path.display()),
            Some(Source::Default) => setting.env.to_owned(),
            None => format!("{} (or {} in the config file)", setting.env, setting.key),
        };
        Self {
            setting: Some(setting.key),
            location,
            message: message.into(),
        }
    }

    /// A problem with the file itself, at `path` (and a position, if known).
    fn in_file(path: &Path, position: Option<(usize, usize)>, message: impl Into<String>) -> Self {
        let location = match position {
            Some((line, column)) => format!("{}:{line}:{column}", path.display()),
            None => path.display().to_string(),
        };
        Self {
            setting: None,
            location,
            message: message.into(),
        }
    }
}

/// Every problem found, listed one per line by `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "the configuration is not valid: {n} problem{} (precedence: {PRECEDENCE}; \
             `mcp-memory config` shows every value and its source)",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// A configuration problem, naming the variable, flag or file key to fix.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A variable holds a value we do not understand.
    #[error("{variable}={value:?} is not valid; expected {expected}")]
    Invalid {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What would be accepted.
        expected: &'static str,
    },
    /// Everything wrong with the configuration (file, flags, variables, and with the
    /// Cloudflare backend selected every missing or malformed Cloudflare setting), each
    /// named where its value came from.
    #[error("{0}")]
    Problems(Problems),
}

/// A parsed configuration file: values by variable name. `Debug` masks secrets.
#[derive(Clone)]
pub struct ConfigFile {
    /// The file.
    pub path: PathBuf,
    values: BTreeMap<&'static str, String>,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

impl fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values: BTreeMap<&str, String> = self
            .values
            .iter()
            .map(|(env, v)| {
                let secret = setting_for_env(env).is_some_and(Setting::is_secret);
                (*env, if secret { mask(v) } else { v.clone() })
            })
            .collect();
        f.debug_struct("ConfigFile")
            .field("path", &self.path)
            .field("values", &values)
            .finish_non_exhaustive()
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

impl ConfigFile {
    /// Reads and parses `path` (see [`ConfigFile::parse`]), warning when a file holding a
    /// secret is readable by other users.
    ///
    /// # Errors
    /// A [`Problem`] naming the file, how it was chosen, and what failed.
    pub fn read(path: &Path, origin: FileOrigin) -> Result<Self, Problem> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let hint = match origin {
                FileOrigin::Flag => "fix the path given to --config, or drop the flag",
                FileOrigin::Env => "fix MCP_MEMORY_CONFIG, or unset it",
                FileOrigin::DefaultLocation => "fix the file's permissions, or remove it",
            };
            Problem::in_file(
                path,
                None,
                format!("cannot read the config file (named by {origin}): {e}; {hint}"),
            )
        })?;
        let mut file = Self::parse(path, &text)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let secrets: Vec<&str> = SETTINGS
                .iter()
                .filter(|s| s.is_secret() && file.values.contains_key(s.env))
                .map(|s| s.key)
                .collect();
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.permissions().mode() & 0o777;
                if !secrets.is_empty() && mode & 0o077 != 0 {
                    file.warnings.push(format!(
                        "{} holds a secret ({}) and other users can read it (mode {mode:04o}); \
                         run `chmod 600 {}`",
                        path.display(),
                        secrets.join(", "),
                        path.display()
                    ));
                }
            }
        }
        Ok(file)
    }

    /// Parses `text`, the contents of `path`. Unknown sections and keys, and values of the
    /// wrong type, are recorded as problems (each with its line and column) while the valid
    /// keys are kept; relative paths are made relative to `path`'s directory.
    ///
    /// # Errors
    /// A [`Problem`] with the line and column of a TOML syntax error.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Problem> {
        let document = toml::de::DeTable::parse(text).map_err(|e| {
            let at = e.span().map(|s| position(text, s.start));
            Problem::in_file(
                path,
                at,
                format!("TOML syntax error: {}; fix the file", e.message()),
            )
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new(""));
        let mut file = Self {
            path: path.to_path_buf(),
            values: BTreeMap::new(),
            problems: Vec::new(),
            warnings: Vec::new(),
        };
        let mut found: Vec<(usize, Problem)> = Vec::new();
        let all_sections = sections();
        for (section_name, section_value) in document.get_ref() {
            let section = section_name.get_ref().as_ref();
            let start = section_name.span().start;
            let toml::de::DeValue::Table(table) = section_value.get_ref() else {
                let keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
                found.push((
                    start,
                    Problem::in_file(
                        path,
                        Some(position(text, start)),
                        format!(
                            "`{section}` is not in a section; the valid keys are {}",
                            keys.join(", ")
                        ),
                    ),
                ));
                continue;
            };
            if !all_sections.contains(&section) {
                found.push((
                    start,
                    Problem::in_file(
                        path,
                        Some(position(text, start)),
                        format!(
                            "unknown section [{section}]; the valid sections are {}",
                            all_sections
                                .iter()
                                .map(|s| format!("[{s}]"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                ));
                continue;
            }
            for (key, value) in table {
                let name = key.get_ref().as_ref();
                let at = key.span().start;
                let Some(setting) = SETTINGS
                    .iter()
                    .find(|s| s.section() == section && s.name() == name)
                else {
                    let valid: Vec<&str> = SETTINGS
                        .iter()
                        .filter(|s| s.section() == section)
                        .map(Setting::name)
                        .collect();
                    found.push((
                        at,
                        Problem::in_file(
                            path,
                            Some(position(text, at)),
                            format!(
                                "unknown key `{name}` in [{section}]; the valid keys there are {}",
                                valid.join(", ")
                            ),
                        ),
                    ));
                    continue;
                };
                match file_value(setting, value.get_ref()) {
                    Ok(v) => {
                        let v = if setting.kind == ValueKind::Path && !v.trim().is_empty() {
                            base.join(v.trim()).display().to_string()
                        } else {
                            v
                        };
                        file.values.insert(setting.env, v);
                    }
                    Err(expected) => {
                        let at = value.span().start;
                        found.push((
                            at,
                            Problem::in_file(
                                path,
                                Some(position(text, at)),
                                format!("{} must be {expected}", setting.key),
                            ),
                        ));
                    }
                }
            }
        }
        found.sort_by_key(|(at, _)| *at);
        file.problems = found.into_iter().map(|(_, p)| p).collect();
        Ok(file)
    }

    /// The value the file gives the variable `env` (blank counts as unset).
    #[must_use]
    pub fn get(&self, env: &str) -> Option<&str> {
        self.values
            .get(env)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
}

/// `value` as the string the variable's parser expects, or what was expected instead.
fn file_value(setting: &Setting, value: &toml::de::DeValue<'_>) -> Result<String, &'static str> {
    use toml::de::DeValue;
    let expected = match setting.kind {
        ValueKind::Integer => "a whole number or a string",
        ValueKind::Number => "a number or a string",
        ValueKind::Text | ValueKind::Secret | ValueKind::Path => "a string",
    };
    match (value, setting.kind) {
        (DeValue::String(s), _) => Ok(s.to_string()),
        (DeValue::Integer(i), ValueKind::Integer | ValueKind::Number) => {
            i128::from_str_radix(i.as_str(), i.radix())
                .map(|n| n.to_string())
                .map_err(|_| expected)
        }
        (DeValue::Float(x), ValueKind::Number) => Ok(x.as_str().to_owned()),
        _ => Err(expected),
    }
}

/// Values given on the command line, overriding the environment and the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--db`.
    pub sqlite_path: Option<PathBuf>,
    /// `--backend`.
    pub backend: Option<String>,
    /// `--config`: the configuration file.
    pub config_file: Option<PathBuf>,
}

/// One setting's effective value and where it came from.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The setting.
    pub setting: &'static Setting,
    /// The value as it may be shown (secrets masked); `None` when unset with no default.
    pub value: Option<String>,
    /// Where it came from; `None` when unset with no default.
    pub source: Option<Source>,
}

/// Every source consulted, in precedence order.
struct Layers<'a> {
    overrides: &'a Overrides,
    var: &'a dyn Fn(&str) -> Option<String>,
    file: Option<&'a ConfigFile>,
}

impl Layers<'_> {
    /// `setting`'s value and its source, if any layer sets it.
    fn get(&self, setting: &'static Setting) -> Option<(String, Source)> {
        let flag = match setting.env {
            SQLITE_PATH_ENV => self
                .overrides
                .sqlite_path
                .as_ref()
                .map(|p| p.display().to_string()),
            BACKEND_ENV => self.overrides.backend.clone(),
            _ => None,
        };
        if let (Some(v), Some(name)) = (flag, setting.flag) {
            return Some((v, Source::Flag(name)));
        }
        if let Some(v) = (self.var)(setting.env).filter(|v| !v.trim().is_empty()) {
            return Some((v, Source::Env(setting.env)));
        }
        let file = self.file?;
        file.get(setting.env).map(|v| {
            (
                v.to_owned(),
                Source::File {
                    path: file.path.clone(),
                    key: setting.key,
                },
            )
        })
    }
}

/// The effective configuration with the source of every value, every warning and every
/// problem: what `mcp-memory config` prints, and what [`Config::load`] checks.
#[derive(Debug)]
pub struct Resolution {
    /// The configuration file read (or that failed to read), and how it was chosen.
    pub file: Option<(PathBuf, FileOrigin)>,
    /// Every setting, in [`SETTINGS`] order.
    pub entries: Vec<Entry>,
    /// Warnings, e.g. a secret in a file others can read.
    pub warnings: Vec<String>,
    /// Every problem found; empty when the configuration is valid.
    pub problems: Vec<Problem>,
    config: Option<Config>,
}

impl Resolution {
    /// Resolves `overrides`, the process environment and the configuration file.
    #[must_use]
    pub fn load(overrides: &Overrides) -> Self {
        Self::resolve(overrides, &|k| std::env::var(k).ok(), default_config_path())
    }

    /// Resolves `overrides`, the variables `var` gives and the configuration file (from
    /// `--config`, else `MCP_MEMORY_CONFIG`, else `default_file` if it exists).
    #[must_use]
    pub fn resolve(
        overrides: &Overrides,
        var: &dyn Fn(&str) -> Option<String>,
        default_file: Option<PathBuf>,
    ) -> Self {
        let located = match (
            &overrides.config_file,
            var(CONFIG_ENV).filter(|v| !v.trim().is_empty()),
        ) {
            (Some(p), _) => Some((p.clone(), FileOrigin::Flag)),
            (None, Some(p)) => Some((PathBuf::from(p.trim()), FileOrigin::Env)),
            (None, None) => default_file
                .filter(|p| p.is_file())
                .map(|p| (p, FileOrigin::DefaultLocation)),
        };
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let file =
            located
                .as_ref()
                .and_then(|(path, origin)| match ConfigFile::read(path, *origin) {
                    Ok(f) => {
                        problems.extend(f.problems.iter().cloned());
                        warnings.extend(f.warnings.iter().cloned());
                        Some(Arc::new(f))
                    }
                    Err(p) => {
                        problems.push(p);
                        None
                    }
                });
        let layers = Layers {
            overrides,
            var,
            file: file.as_deref(),
        };

        let mut entries = Vec::with_capacity(SETTINGS.len());
        let mut found: BTreeMap<&'static str, (String, Source)> = BTreeMap::new();
        for setting in SETTINGS {
            let (value, source) = match layers.get(setting) {
                Some((v, source)) => {
                    found.insert(setting.env, (v.clone(), source.clone()));
                    (Some(v), Some(source))
                }
                None => {
                    let default = match setting.env {
                        BACKEND_ENV => Some("sqlite".to_owned()),
                        SQLITE_PATH_ENV => default_sqlite_path().map(|p| p.display().to_string()),
                        EMBEDDING_MODEL_ID_ENV => Some(DEFAULT_MODEL.to_owned()),
                        MODEL_DIR_ENV => memory_embed::ModelLocation::user_cache_dir(
                            found
                                .get(EMBEDDING_MODEL_ID_ENV)
                                .map_or(DEFAULT_MODEL, |(v, _)| v.trim()),
                        )
                        .map(|p| p.display().to_string()),
                        SESSION_IDLE_TIMEOUT_ENV => Some(
                            crate::mcp::sessions::SessionLimits::DEFAULT_IDLE_TIMEOUT
                                .as_secs()
                                .to_string(),
                        ),
                        MAX_SESSIONS_ENV => Some(
                            crate::mcp::sessions::SessionLimits::DEFAULT_MAX_SESSIONS.to_string(),
                        ),
                        env => Field::from_env_name(env).and_then(Field::default_value),
                    };
                    let source = default.as_ref().map(|_| Source::Default);
                    (default, source)
                }
            };
            let value = match value {
                Some(v) if setting.is_secret() => Some(mask(&v)),
                other => other,
            };
            entries.push(Entry {
                setting,
                value,
                source,
            });
        }

        let source_of = |env: &str| found.get(env).map(|(_, s)| s.clone());
        let text = |env: &str| {
            found
                .get(env)
                .map(|(v, _)| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let by_env = |env: &str| setting_for_env(env).unwrap_or(&SETTINGS[0]);

        let backend = match text(BACKEND_ENV) {
            None => Some(BackendKind::Sqlite),
            Some(v) => match v.parse::<BackendKind>() {
                Ok(kind) => Some(kind),
                Err(_) => {
                    problems.push(Problem::at(
                        by_env(BACKEND_ENV),
                        source_of(BACKEND_ENV).as_ref(),
                        format!("{v:?} is not valid; expected {SUPPORTED_BACKENDS}"),
                    ));
                    None
                }
            },
        };
        // Checked whichever backend is selected (`migrate` needs both), but only a problem
        // when Cloudflare is.
        let cloudflare_any = cloudflare_from(&found);
        let cloudflare = match (backend, &cloudflare_any) {
            (Some(BackendKind::Cloudflare), Ok(c)) => Some(c.clone()),
            (Some(BackendKind::Cloudflare), Err(cf)) => {
                problems.extend(cf.iter().cloned());
                None
            }
            _ => None,
        };
        let sqlite_path = match found.get(SQLITE_PATH_ENV) {
            Some((_, Source::Flag(_))) => overrides.sqlite_path.clone(),
            Some((v, _)) => Some(PathBuf::from(v.trim())),
            None => default_sqlite_path(),
        };
        if sqlite_path.is_none() {
            problems.push(Problem::at(
                by_env(SQLITE_PATH_ENV),
                None,
                "no per-user data directory on this system: set it, or pass --db FILE",
            ));
        }

        // A positive whole number, or a problem naming where the value came from.
        let mut positive = |env: &'static str| -> Option<u64> {
            let (v, source) = found.get(env)?;
            match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    problems.push(Problem::at(
                        by_env(env),
                        Some(source),
                        format!("{v:?} is not a whole number of at least 1"),
                    ));
                    None
                }
            }
        };
        let session_idle_timeout = positive(SESSION_IDLE_TIMEOUT_ENV);
        let max_sessions =
            positive(MAX_SESSIONS_ENV).map(|n| usize::try_from(n).unwrap_or(usize::MAX));

        let config = match (backend, sqlite_path) {
            (Some(backend), Some(sqlite_path)) if problems.is_empty() => Some(Config {
                backend,
                cloudflare,
                sqlite_path,
                embedding_model: text(EMBEDDING_MODEL_ID_ENV)
                    .unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
                model_dir: text(MODEL_DIR_ENV).map(PathBuf::from),
                api_key: text(API_KEY_ENV).map(Secret::new),
                session_idle_timeout,
                max_sessions,
                file,
                cloudflare_any,
            }),
            _ => None,
        };
        Self {
            file: located,
            entries,
            warnings,
            problems,
            config,
        }
    }

    /// The configuration, or every problem found.
    ///
    /// # Errors
    /// [`ConfigError::Problems`] listing each problem with where its value came from.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        match self.config {
            Some(c) if self.problems.is_empty() => Ok(c),
            _ => Err(ConfigError::Problems(Problems(self.problems))),
        }
    }

    /// The JSON document `mcp-memory config --json` prints.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let settings: Vec<serde_json::Value> = self
            .entries
            .iter()
            .map(|e| {
                json!({
                    "key": e.setting.key,
                    "env": e.setting.env,
                    "flag": e.setting.flag,
                    "secret": e.setting.is_secret(),
                    "value": e.value,
                    "source": e.source.as_ref().map_or("unset", Source::kind),
                    "from": e.source.as_ref().map(ToString::to_string),
                })
            })
            .collect();
        let problems: Vec<serde_json::Value> = self
            .problems
            .iter()
            .map(|p| {
                json!({
                    "setting": p.setting,
                    "location": p.location,
                    "message": p.message,
                })
            })
            .collect();
        json!({
            "config_file": self.file.as_ref().map(|(p, _)| p.display().to_string()),
            "config_file_from": self.file.as_ref().map(|(_, o)| o.to_string()),
            "precedence": PRECEDENCE,
            "settings": settings,
            "warnings": self.warnings,
            "problems": problems,
            "valid": self.problems.is_empty(),
        })
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some((path, origin)) => {
                writeln!(f, "config file: {} (from {origin})", path.display())?;
            }
            None => writeln!(f, "config file: none")?,
        }
        writeln!(f, "precedence: {PRECEDENCE}")?;
        writeln!(f)?;
        let width = SETTINGS.iter().map(|s| s.key.len()).max().unwrap_or(0);
        for e in &self.entries {
            let value = e.value.as_deref().unwrap_or("(not set)");
            let source = e.source.as_ref().map_or_else(
                || format!("unset ({} or {})", e.setting.env, e.setting.key),
                ToString::to_string,
            );
            writeln!(f, "{:<width$}  {value}  [{source}]", e.setting.key)?;
        }
        if !self.warnings.is_empty() {
            writeln!(f, "\nwarnings:")?;
            for w in &self.warnings {
                writeln!(f, "  - {w}")?;
            }
        }
        if !self.problems.is_empty() {
            let n = self.problems.len();
            writeln!(f, "\n{n} problem{}:", if n == 1 { "" } else { "s" })?;
            for p in &self.problems {
                writeln!(f, "  - {p}")?;
            }
        }
        Ok(())
    }
}

/// `<data dir>/mcp-memory/memories.db`, if the platform has a data directory.
fn default_sqlite_path() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("mcp-memory").join("memories.db"))
}

/// The Cloudflare settings among the values `found` (each with its source), checked; every
/// problem named where its value came from.
fn cloudflare_from(
    found: &BTreeMap<&'static str, (String, Source)>,
) -> Result<CloudflareConfig, Vec<Problem>> {
    let mut settings = CloudflareSettings::default();
    for field in Field::ALL {
        if let Some((value, _)) = found.get(field.env()) {
            settings.set(field, value.as_str());
        }
    }
    settings.into_config().map_err(|errors| {
        errors
            .problems()
            .iter()
            .map(|p| {
                let env = p.field.env();
                let source = found.get(env).map(|(_, source)| source);
                match setting_for_env(env) {
                    Some(setting) => Problem::at(setting, source, p.reason.clone()),
                    None => Problem {
                        setting: None,
                        location: env.to_owned(),
                        message: p.reason.clone(),
                    },
                }
            })
            .collect()
    })
}

/// The effective configuration. `Debug` never shows a secret.
#[derive(Debug, Clone)]
pub struct Config {
    /// The backend.
    pub backend: BackendKind,
    /// The Cloudflare settings, read when [`BackendKind::Cloudflare`] is selected.
    pub cloudflare: Option<CloudflareConfig>,
    /// The SQLite file.
    pub sqlite_path: PathBuf,
    /// Embedding model id.
    pub embedding_model: String,
    /// Explicit model directory, if configured.
    pub model_dir: Option<PathBuf>,
    /// The API key for `serve --http` from the environment or the file (`--api-key` beats
    /// both), if any.
    pub api_key: Option<Secret>,
    /// Seconds an idle HTTP session lives, from the environment or the file
    /// (`--session-idle-timeout` beats both), if set.
    pub session_idle_timeout: Option<u64>,
    /// Most HTTP sessions live at once, from the environment or the file (`--max-sessions`
    /// beats both), if set.
    pub max_sessions: Option<usize>,
    /// The configuration file read, if any.
    pub file: Option<Arc<ConfigFile>>,
    /// The Cloudflare settings checked whichever backend is selected, or their problems.
    cloudflare_any: Result<CloudflareConfig, Vec<Problem>>,
}

impl Config {
    /// Reads the configuration from `overrides`, the process environment and the
    /// configuration file; warnings are logged.
    ///
    /// # Errors
    /// [`ConfigError::Problems`] listing every problem found.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::from_lookup(overrides, |k| std::env::var(k).ok())
    }

    /// Reads the configuration from `overrides`, a variable lookup (tests pass a map) and
    /// the configuration file it leads to.
    ///
    /// # Errors
    /// [`ConfigError::Problems`] listing every problem found.
    pub fn from_lookup(
        overrides: &Overrides,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let resolution = Resolution::resolve(overrides, &var, default_config_path());
        for warning in &resolution.warnings {
            tracing::warn!("{warning}");
        }
        resolution.into_config()
    }

    /// The Cloudflare settings whichever backend is selected (`migrate` needs both), as
    /// resolved with the rest of the configuration.
    ///
    /// # Errors
    /// [`ConfigError::Problems`] listing every missing or malformed Cloudflare setting.
    pub fn cloudflare_config(&self) -> Result<CloudflareConfig, ConfigError> {
        self.cloudflare_any
            .clone()
            .map_err(|p| ConfigError::Problems(Problems(p)))
    }
}

/// `mcp-memory config`: prints the effective configuration, every value with its source and
/// secrets masked, then every problem; fails (status 1) if there is any.
///
/// # Errors
/// The configuration is not valid (the problems are printed first).
pub fn show(overrides: &Overrides, json: bool) -> anyhow::Result<()> {
    let resolution = Resolution::load(overrides);
    if json {
        println!("{:#}", resolution.to_json());
        if !resolution.problems.is_empty() {
            // The document above already lists the problems: no second JSON document.
            return Err(crate::output::AlreadyReported(format!(
                "the configuration is not valid: {} problem(s)",
                resolution.problems.len()
            ))
            .into());
        }
        return Ok(());
    }
    print!("{resolution}");
    let n = resolution.problems.len();
    if n > 0 {
        anyhow::bail!(
            "the configuration is not valid: {n} problem{} (listed above)",
            if n == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
        assert!(c.api_key.is_none() && c.file.is_none() && c.model_dir.is_none());
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
        let (dir, path) =
            file("[sqlite]\npath = \"data/m.db\"\n[embedding]\nmodel_dir = \"models\"\n");
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
        let source = include_str!("config.rs");
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
}
