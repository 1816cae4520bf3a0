//! Effective configuration, from flags and environment variables.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `MCP_MEMORY_STORAGE_BACKEND` | `sqlite` (alias `sqlite_vec`, upstream's name) | `sqlite` |
//! | `MCP_MEMORY_SQLITE_PATH` | the database file | `<data dir>/mcp-memory/memories.db` |
//! | `MCP_MEMORY_EMBEDDING_MODEL` | embedding model id | `sentence-transformers/all-MiniLM-L6-v2` |
//! | `MCP_MEMORY_MODEL_DIR` | directory holding the model files | `<cache dir>/mcp-memory/models/<model>` |
//!
//! A command-line flag beats the variable, which beats the default.

use std::path::PathBuf;

use thiserror::Error;

/// The default embedding model (upstream's default local model too).
pub const DEFAULT_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// Which backend serves the memories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The embedded default: SQLite + in-process vector search + a local model.
    Sqlite,
}

impl std::str::FromStr for BackendKind {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sqlite" | "sqlite_vec" | "sqlite-vec" => Ok(Self::Sqlite),
            "cloudflare" => Err(ConfigError::Unsupported {
                what: "MCP_MEMORY_STORAGE_BACKEND=cloudflare",
                why: "the Cloudflare backend is not built yet; use sqlite",
            }),
            other => Err(ConfigError::Invalid {
                variable: "MCP_MEMORY_STORAGE_BACKEND",
                value: other.to_owned(),
                expected: "sqlite (or its alias sqlite_vec)",
            }),
        }
    }
}

/// A configuration problem, naming the variable to fix.
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
    /// A known but unavailable choice.
    #[error("{what} is not supported: {why}")]
    Unsupported {
        /// The setting.
        what: &'static str,
        /// Why, and what to use instead.
        why: &'static str,
    },
    /// No per-user data directory and no explicit path.
    #[error(
        "no per-user data directory on this system; set MCP_MEMORY_SQLITE_PATH to the database file"
    )]
    NoDataDir,
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The backend.
    pub backend: BackendKind,
    /// The SQLite file.
    pub sqlite_path: PathBuf,
    /// Embedding model id.
    pub embedding_model: String,
    /// Explicit model directory, if configured.
    pub model_dir: Option<PathBuf>,
}

/// Values given on the command line, overriding the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--db`.
    pub sqlite_path: Option<PathBuf>,
}

impl Config {
    /// Reads the configuration from `overrides` and the process environment.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::from_lookup(overrides, |k| std::env::var(k).ok())
    }

    /// Reads the configuration from `overrides` and a variable lookup (tests pass a map).
    pub fn from_lookup(
        overrides: &Overrides,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let non_empty = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let backend = match non_empty("MCP_MEMORY_STORAGE_BACKEND") {
            Some(v) => v.parse()?,
            None => BackendKind::Sqlite,
        };
        let sqlite_path = match (&overrides.sqlite_path, non_empty("MCP_MEMORY_SQLITE_PATH")) {
            (Some(p), _) => p.clone(),
            (None, Some(p)) => PathBuf::from(p),
            (None, None) => dirs::data_dir()
                .ok_or(ConfigError::NoDataDir)?
                .join("mcp-memory")
                .join("memories.db"),
        };
        Ok(Self {
            backend,
            sqlite_path,
            embedding_model: non_empty("MCP_MEMORY_EMBEDDING_MODEL")
                .unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
            model_dir: non_empty("MCP_MEMORY_MODEL_DIR").map(PathBuf::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)], overrides: Overrides) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(&overrides, |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_to_sqlite_and_minilm() {
        let c = load(&[], Overrides::default()).unwrap();
        assert_eq!(c.backend, BackendKind::Sqlite);
        assert_eq!(c.embedding_model, DEFAULT_MODEL);
        assert!(c.sqlite_path.ends_with("mcp-memory/memories.db"));
    }

    #[test]
    fn flag_beats_variable() {
        let c = load(
            &[("MCP_MEMORY_SQLITE_PATH", "/env.db")],
            Overrides {
                sqlite_path: Some("/flag.db".into()),
            },
        )
        .unwrap();
        assert_eq!(c.sqlite_path, PathBuf::from("/flag.db"));
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
    fn unknown_backend_names_the_variable() {
        let err = load(
            &[("MCP_MEMORY_STORAGE_BACKEND", "mongo")],
            Overrides::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("MCP_MEMORY_STORAGE_BACKEND"),
            "{err}"
        );
    }
}
