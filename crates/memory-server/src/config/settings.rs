//! The settings table: every setting's typed [`SettingId`], variable, file key, flag and kind, the
//! variable names, and how a value is held ([`Value`]: text, or a [`Secret`]).

use std::fmt;

use memory_cloudflare::config::Field;

/// A secret string: the HTTP API key, the Cloudflare API token and every secret read from
/// the file are this one type. `Debug` and `Display` show `***` only; [`Secret::expose`]
/// gives the value to the one place that needs it.
pub use memory_cloudflare::config::ApiToken as Secret;

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
/// Seconds between background sync rounds of the hybrid backend (the Python service's
/// variable; ours is the interval while there is work, see `memory_hybrid`).
pub const SYNC_INTERVAL_ENV: &str = "MCP_HYBRID_SYNC_INTERVAL";

/// The order in which sources win, for messages and `mcp-memory config`.
pub const PRECEDENCE: &str =
    "command-line flag > environment variable > config file > built-in default";

/// The values `MCP_MEMORY_STORAGE_BACKEND` accepts, for messages.
pub const SUPPORTED_BACKENDS: &str =
    "sqlite_vec, sqlite-vec, sqlite (the embedded default), cloudflare or hybrid";

/// Which setting: the typed key of every row of [`SETTINGS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SettingId {
    /// `storage.backend`.
    Backend,
    /// `sqlite.path`.
    SqlitePath,
    /// `embedding.model`.
    EmbeddingModel,
    /// `embedding.model_dir`.
    ModelDir,
    /// `http.api_key` (secret).
    ApiKey,
    /// `http.session_idle_timeout`.
    SessionIdleTimeout,
    /// `http.max_sessions`.
    MaxSessions,
    /// `hybrid.sync_interval`.
    SyncInterval,
    /// A `cloudflare.*` setting, checked by `memory_cloudflare`.
    Cloudflare(Field),
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

/// One setting: its typed key, its variable, its key in the file and its command-line flag,
/// if any.
#[derive(Debug)]
pub struct Setting {
    /// The typed key.
    pub id: SettingId,
    /// The environment variable, e.g. `CLOUDFLARE_ACCOUNT_ID`.
    pub env: &'static str,
    /// The file key, `section.key`, e.g. `cloudflare.account_id`.
    pub key: &'static str,
    /// The command-line flag that overrides it, if any (global, or `serve`'s `--api-key`).
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

    /// The row of `id` (every key has one: a test checks it).
    #[must_use]
    pub fn of(id: SettingId) -> &'static Self {
        SETTINGS.iter().find(|s| s.id == id).unwrap_or(&SETTINGS[0])
    }
}

const fn setting(id: SettingId, env: &'static str, key: &'static str, kind: ValueKind) -> Setting {
    Setting {
        id,
        env,
        key,
        flag: None,
        kind,
    }
}

/// A Cloudflare setting: its variable is the field's.
const fn cloudflare(field: Field, key: &'static str, kind: ValueKind) -> Setting {
    setting(SettingId::Cloudflare(field), field.env(), key, kind)
}

/// Every setting, in the order `mcp-memory config` shows them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        flag: Some("--backend"),
        ..setting(
            SettingId::Backend,
            BACKEND_ENV,
            "storage.backend",
            ValueKind::Text,
        )
    },
    Setting {
        flag: Some("--db"),
        ..setting(
            SettingId::SqlitePath,
            SQLITE_PATH_ENV,
            "sqlite.path",
            ValueKind::Path,
        )
    },
    setting(
        SettingId::EmbeddingModel,
        EMBEDDING_MODEL_ID_ENV,
        "embedding.model",
        ValueKind::Text,
    ),
    setting(
        SettingId::ModelDir,
        MODEL_DIR_ENV,
        "embedding.model_dir",
        ValueKind::Path,
    ),
    Setting {
        flag: Some("--api-key"),
        ..setting(
            SettingId::ApiKey,
            API_KEY_ENV,
            "http.api_key",
            ValueKind::Secret,
        )
    },
    setting(
        SettingId::SessionIdleTimeout,
        SESSION_IDLE_TIMEOUT_ENV,
        "http.session_idle_timeout",
        ValueKind::Integer,
    ),
    setting(
        SettingId::MaxSessions,
        MAX_SESSIONS_ENV,
        "http.max_sessions",
        ValueKind::Integer,
    ),
    setting(
        SettingId::SyncInterval,
        SYNC_INTERVAL_ENV,
        "hybrid.sync_interval",
        ValueKind::Number,
    ),
    cloudflare(Field::ApiToken, "cloudflare.api_token", ValueKind::Secret),
    cloudflare(Field::AccountId, "cloudflare.account_id", ValueKind::Text),
    cloudflare(
        Field::VectorizeIndex,
        "cloudflare.vectorize_index",
        ValueKind::Text,
    ),
    cloudflare(
        Field::D1DatabaseId,
        "cloudflare.d1_database_id",
        ValueKind::Text,
    ),
    cloudflare(Field::R2Bucket, "cloudflare.r2_bucket", ValueKind::Text),
    cloudflare(
        Field::EmbeddingModel,
        "cloudflare.embedding_model",
        ValueKind::Text,
    ),
    cloudflare(
        Field::LargeContentThreshold,
        "cloudflare.large_content_threshold",
        ValueKind::Integer,
    ),
    cloudflare(
        Field::MaxRetries,
        "cloudflare.max_retries",
        ValueKind::Integer,
    ),
    cloudflare(Field::BaseDelay, "cloudflare.base_delay", ValueKind::Number),
    cloudflare(
        Field::ApiBaseUrl,
        "cloudflare.api_base_url",
        ValueKind::Text,
    ),
    cloudflare(Field::Namespace, "cloudflare.namespace", ValueKind::Text),
    cloudflare(
        Field::RequestTimeout,
        "cloudflare.request_timeout",
        ValueKind::Number,
    ),
    cloudflare(
        Field::RateLimit,
        "cloudflare.rate_limit",
        ValueKind::Integer,
    ),
    cloudflare(
        Field::EmbeddingFallback,
        "cloudflare.embedding_fallback",
        ValueKind::Text,
    ),
    cloudflare(
        Field::EmbeddingFallbackDir,
        "cloudflare.embedding_fallback_dir",
        ValueKind::Path,
    ),
];

/// The file's sections, in table order.
pub(super) fn sections() -> Vec<&'static str> {
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

/// A setting's value as given (by a flag, a variable or the file): text, or a [`Secret`]
/// from the moment it is read. `Debug` never shows a secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// A value that may be shown.
    Text(String),
    /// A secret's value.
    Secret(Secret),
}

impl Value {
    /// `text` as the value of `setting`: a [`Value::Secret`] if the setting is one.
    #[must_use]
    pub fn of(setting: &Setting, text: String) -> Self {
        if setting.is_secret() {
            Self::Secret(Secret::new(text))
        } else {
            Self::Text(text)
        }
    }

    /// The value itself, for parsing (a secret's included: never print it).
    #[must_use]
    pub fn expose(&self) -> &str {
        match self {
            Self::Text(text) => text,
            Self::Secret(secret) => secret.expose(),
        }
    }

    /// The value as it may be shown: a secret masked ([`mask`]).
    #[must_use]
    pub fn shown(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Secret(secret) => mask(secret.expose()),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => fmt::Debug::fmt(text, f),
            Self::Secret(secret) => f.write_str(&mask(secret.expose())),
        }
    }
}
