//! [`EmulatorConfig`]: accounts, tokens, storage, limits and model stand-ins.

use std::path::PathBuf;
use std::time::Duration;

/// The account id the emulator serves by default.
pub(crate) const DEFAULT_ACCOUNT_ID: &str = "023e105f4ecef8ad9ca31a8372d0c353";
/// The token the emulator accepts by default.
pub(crate) const DEFAULT_TOKEN: &str = "emulator-token";
/// Cloudflare's API limit: requests per [`DEFAULT_RATE_WINDOW`] per user (account).
/// See <https://developers.cloudflare.com/fundamentals/api/reference/limits/>.
pub(crate) const DEFAULT_RATE_LIMIT: u32 = 1200;
/// The window of [`DEFAULT_RATE_LIMIT`].
pub(crate) const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(300);
/// How long a Vectorize mutation stays invisible by default. Cloudflare: writes become
/// visible "typically within a few seconds" (minutes have been observed under heavy load).
/// One second keeps test suites quick while every read that follows a write in the same
/// breath still misses it, as it would on Cloudflare; 0 turns the delay off.
pub const DEFAULT_MUTATION_DELAY: Duration = Duration::from_secs(1);

/// Which local embedding model stands in for a Workers AI model id. The emulator says so
/// at start and in the `cf-emulator-stand-in` response header; the vectors are the local
/// model's, not Cloudflare's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelStandIn {
    /// The Workers AI model id served, e.g. `@cf/baai/bge-small-en-v1.5`.
    pub cloudflare_model: String,
    /// The local model answering for it (a `memory-embed` model id), e.g.
    /// `sentence-transformers/all-MiniLM-L6-v2`.
    pub local_model: String,
    /// Where its weights are; `None` = the per-user cache (`memory-embed`'s
    /// [`ModelLocation::resolve`](memory_embed::ModelLocation::resolve)). The command line
    /// fills it from `--model-dir` (or `MCP_MEMORY_MODEL_DIR`) when given.
    pub local_dir: Option<PathBuf>,
}

impl ModelStandIn {
    /// The default: all-MiniLM-L6-v2 (384 dimensions, the model the project's tests have
    /// locally) answers for `@cf/baai/bge-small-en-v1.5` (also 384).
    #[must_use]
    pub fn default_small() -> Self {
        Self {
            cloudflare_model: "@cf/baai/bge-small-en-v1.5".to_owned(),
            local_model: "sentence-transformers/all-MiniLM-L6-v2".to_owned(),
            local_dir: None,
        }
    }
}

/// Settings of an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Account ids served; requests for any other get Cloudflare's 403 shape.
    pub account_ids: Vec<String>,
    /// Accepted API tokens.
    pub tokens: Vec<String>,
    /// Where D1 databases, Vectorize indexes and R2 objects persist; `None` = in memory.
    pub data_dir: Option<PathBuf>,
    /// Requests per `rate_window` per account (all tokens together; per token for paths
    /// naming no served account) before 429; 0 = no limit.
    pub rate_limit: u32,
    /// The rate limit window.
    pub rate_window: Duration,
    /// How long a Vectorize mutation takes to become visible (eventual consistency;
    /// default [`DEFAULT_MUTATION_DELAY`], `Duration::ZERO` = at once).
    pub mutation_delay: Duration,
    /// Workers AI stand-ins.
    pub models: Vec<ModelStandIn>,
    /// Seed of every random choice (fault injection).
    pub seed: u64,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            account_ids: vec![DEFAULT_ACCOUNT_ID.to_owned()],
            tokens: vec![DEFAULT_TOKEN.to_owned()],
            data_dir: None,
            rate_limit: DEFAULT_RATE_LIMIT,
            rate_window: DEFAULT_RATE_WINDOW,
            mutation_delay: DEFAULT_MUTATION_DELAY,
            models: vec![ModelStandIn::default_small()],
            seed: 0,
        }
    }
}
