//! Effective configuration, from flags and environment variables.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `MCP_MEMORY_STORAGE_BACKEND` | `sqlite` (aliases `sqlite_vec`, upstream's name, and `sqlite-vec`) or `cloudflare` | `sqlite` |
//! | `MCP_MEMORY_SQLITE_PATH` | the database file | `<data dir>/mcp-memory/memories.db` |
//! | `MCP_MEMORY_EMBEDDING_MODEL` | embedding model id | `sentence-transformers/all-MiniLM-L6-v2` |
//! | `MCP_MEMORY_MODEL_DIR` | directory holding the model files | `<cache dir>/mcp-memory/models/<model>` |
//!
//! With `MCP_MEMORY_STORAGE_BACKEND=cloudflare` the `CLOUDFLARE_*` variables apply instead of
//! the SQLite and model ones (see [`memory_cloudflare::config`]: `CLOUDFLARE_API_TOKEN`,
//! `CLOUDFLARE_ACCOUNT_ID`, `CLOUDFLARE_VECTORIZE_INDEX` and `CLOUDFLARE_D1_DATABASE_ID` are
//! required); every missing or malformed one is reported at once.
//!
//! A command-line flag beats the variable, which beats the default.

use std::path::PathBuf;

use memory_cloudflare::config::{CloudflareConfig, ConfigErrors};
use thiserror::Error;

/// The default embedding model (upstream's default local model too).
pub const DEFAULT_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

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
                variable: "MCP_MEMORY_STORAGE_BACKEND",
                value: s.to_owned(),
                expected: SUPPORTED_BACKENDS,
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
    /// The Cloudflare backend is selected but its variables are missing or malformed: all
    /// of them are listed.
    #[error(transparent)]
    Cloudflare(#[from] ConfigErrors),
    /// No per-user data directory and no explicit path.
    #[error(
        "no per-user data directory on this system; set MCP_MEMORY_SQLITE_PATH to the database file"
    )]
    NoDataDir,
}

/// The effective configuration. `Debug` never shows the Cloudflare token.
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
        let cloudflare = match backend {
            BackendKind::Cloudflare => Some(CloudflareConfig::from_lookup(&var)?),
            BackendKind::Sqlite => None,
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
            cloudflare,
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
        assert!(matches!(err, ConfigError::Cloudflare(_)), "{err:?}");
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
