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
//! | `MCP_MEMORY_STORAGE_BACKEND` | `storage.backend` | `sqlite` (aliases `sqlite_vec`, upstream's name, and `sqlite-vec`), `cloudflare` or `hybrid`; flag `--backend` | `sqlite` |
//! | `MCP_MEMORY_SQLITE_PATH` | `sqlite.path` | the database file; flag `--db` | `<data dir>/mcp-memory/memories.db` |
//! | `MCP_MEMORY_EMBEDDING_MODEL` | `embedding.model` | embedding model id | `sentence-transformers/all-MiniLM-L6-v2` |
//! | `MCP_MEMORY_MODEL_DIR` | `embedding.model_dir` | directory holding the model files | `<cache dir>/mcp-memory/models/<model>` |
//! | `MCP_MEMORY_API_KEY` | `http.api_key` | key clients of `serve --http` must send (secret); flag `serve --api-key` | none |
//! | `MCP_MEMORY_SESSION_IDLE_TIMEOUT` | `http.session_idle_timeout` | seconds without a request after which an HTTP session ends; flag `serve --session-idle-timeout` | `1800` |
//! | `MCP_MEMORY_MAX_SESSIONS` | `http.max_sessions` | most HTTP sessions live at once; flag `serve --max-sessions` | `200` |
//! | `MCP_HYBRID_SYNC_INTERVAL` | `hybrid.sync_interval` | seconds between the hybrid backend's background sync rounds while there is work (0.05–86400) | `5` |
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
//! | `CLOUDFLARE_EMBEDDING_FALLBACK` | `cloudflare.embedding_fallback` | `local`: embed with the same weights on this machine when Workers AI fails (start refused if they are missing); `off`: never | `local` if the weights are found, else `off` |
//! | `CLOUDFLARE_EMBEDDING_FALLBACK_DIR` | `cloudflare.embedding_fallback_dir` | directory holding the fallback model's files | the per-user model cache |
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
//!
//! # Layout
//! - [`settings`]: the table (every setting's typed [`SettingId`](settings::SettingId),
//!   variable, file key, flag and kind) and [`Value`](settings::Value), text or a
//!   [`Secret`](settings::Secret).
//! - [`file`]: finding and parsing the TOML file.
//! - [`resolve`]: the layers in precedence order, [`Resolution`](resolve::Resolution) and
//!   the typed [`Config`] (the Cloudflare settings are checked by `memory_cloudflare`, each
//!   problem mapped back to where its value came from).
//! - [`problem`]: [`Source`](problem::Source), [`Problem`](problem::Problem) and
//!   [`ConfigError`](problem::ConfigError).
//! - [`report`]: `mcp-memory config` ([`show`]).

pub mod file;
pub mod problem;
pub mod report;
pub mod resolve;
pub mod settings;
#[cfg(test)]
mod tests;

pub use report::show;
pub use resolve::{BackendKind, Config, Overrides};
