//! [`CloudflareConfig`]: the Cloudflare backend's settings, checked from the values the
//! binary read ([`CloudflareSettings`]).
//!
//! This crate reads no environment: the `mcp-memory` binary resolves each setting (variable,
//! then configuration file, then the default below) and hands the values over as
//! [`CloudflareSettings`]. Upstream MCP Memory Service's variables keep their names and
//! meaning, so an existing upstream configuration works unchanged; six of ours are added.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `CLOUDFLARE_API_TOKEN` | API token (D1 Edit, Vectorize Edit, Workers AI Read, R2 Edit) | required |
//! | `CLOUDFLARE_ACCOUNT_ID` | account id (32 hexadecimal characters) | required |
//! | `CLOUDFLARE_VECTORIZE_INDEX` | Vectorize index name (created if missing) | required |
//! | `CLOUDFLARE_D1_DATABASE_ID` | D1 database id (a UUID) | required |
//! | `CLOUDFLARE_R2_BUCKET` | R2 bucket for content over the threshold | none: large content is refused |
//! | `CLOUDFLARE_EMBEDDING_MODEL` | Workers AI embedding model | `@cf/baai/bge-base-en-v1.5` |
//! | `CLOUDFLARE_LARGE_CONTENT_THRESHOLD` | bytes above which content goes to R2 | 1048576 (1 MiB) |
//! | `CLOUDFLARE_MAX_RETRIES` | retries of a failed call | 3 |
//! | `CLOUDFLARE_BASE_DELAY` | first retry delay, seconds | 1 |
//! | `CLOUDFLARE_API_BASE_URL` (ours) | API base URL, e.g. a local emulator | `https://api.cloudflare.com/client/v4` |
//! | `CLOUDFLARE_NAMESPACE` (ours) | isolates several stores in one account: `[a-z0-9_]{1,32}` | none |
//! | `CLOUDFLARE_REQUEST_TIMEOUT` (ours) | limit of one attempt, seconds | 40 |
//! | `CLOUDFLARE_RATE_LIMIT` (ours) | requests per 5 minutes for this process; `0` = no limit | 1200 |
//! | `CLOUDFLARE_EMBEDDING_FALLBACK` (ours) | `local`: embed locally when Workers AI fails (refused at start for a model without local weights; with feature `hub`, missing weights are first downloaded into the per-user cache); `off`: never | `local` when the weights are found, else `off` |
//! | `CLOUDFLARE_EMBEDDING_FALLBACK_DIR` (ours) | directory holding the local model's files | the per-user model cache |
//!
//! Checking never stops at the first problem: [`CloudflareSettings::into_config`] checks
//! every value and returns [`ConfigErrors`], which lists each missing or malformed one as a
//! [`ConfigProblem`]: the [`Field`] at fault and the reason. The token is an [`ApiToken`]
//! from the start and is never printed: `Debug` of the settings and the config shows `***`,
//! and no message quotes it.
//!
//! ```
//! use memory_cloudflare::config::{CloudflareSettings, Field};
//!
//! let err = CloudflareSettings::default().into_config().unwrap_err();
//! assert_eq!(
//!     err.fields(),
//!     [Field::ApiToken, Field::AccountId, Field::VectorizeIndex, Field::D1DatabaseId]
//! );
//! let text = err.to_string();
//! for variable in [
//!     "CLOUDFLARE_API_TOKEN",
//!     "CLOUDFLARE_ACCOUNT_ID",
//!     "CLOUDFLARE_VECTORIZE_INDEX",
//!     "CLOUDFLARE_D1_DATABASE_ID",
//! ] {
//!     assert!(text.contains(variable), "{text}");
//! }
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::namespace::Namespace;
use cloudflare_ai::EmbeddingModel;
pub use cloudflare_http::ApiToken;
use cloudflare_http::middleware::rate_limit::DEFAULT_BURST;
use cloudflare_http::{ClientConfig, RATE_LIMIT_WINDOW, RateLimitConfig, RetryConfig};

/// `CLOUDFLARE_API_TOKEN`: the API token.
pub const TOKEN_ENV: &str = "CLOUDFLARE_API_TOKEN";
/// `CLOUDFLARE_ACCOUNT_ID`: the account id.
pub const ACCOUNT_ENV: &str = "CLOUDFLARE_ACCOUNT_ID";
/// `CLOUDFLARE_VECTORIZE_INDEX`: the Vectorize index name.
pub const VECTORIZE_INDEX_ENV: &str = "CLOUDFLARE_VECTORIZE_INDEX";
/// `CLOUDFLARE_D1_DATABASE_ID`: the D1 database id (a UUID).
pub const D1_DATABASE_ENV: &str = "CLOUDFLARE_D1_DATABASE_ID";
/// `CLOUDFLARE_R2_BUCKET`: the R2 bucket for large content (optional).
pub const R2_BUCKET_ENV: &str = "CLOUDFLARE_R2_BUCKET";
/// `CLOUDFLARE_EMBEDDING_MODEL`: the Workers AI embedding model id.
pub const EMBEDDING_MODEL_ENV: &str = "CLOUDFLARE_EMBEDDING_MODEL";
/// `CLOUDFLARE_LARGE_CONTENT_THRESHOLD`: bytes above which content is stored in R2.
pub const LARGE_CONTENT_THRESHOLD_ENV: &str = "CLOUDFLARE_LARGE_CONTENT_THRESHOLD";
/// `CLOUDFLARE_MAX_RETRIES`: retries of a failed call.
pub const MAX_RETRIES_ENV: &str = "CLOUDFLARE_MAX_RETRIES";
/// `CLOUDFLARE_BASE_DELAY`: the first retry delay in seconds.
pub const BASE_DELAY_ENV: &str = "CLOUDFLARE_BASE_DELAY";
/// `CLOUDFLARE_API_BASE_URL`: the API base URL (e.g. a local emulator).
pub const API_BASE_URL_ENV: &str = "CLOUDFLARE_API_BASE_URL";
/// `CLOUDFLARE_NAMESPACE`: a namespace isolating this store's tables, vectors and objects.
pub const NAMESPACE_ENV: &str = "CLOUDFLARE_NAMESPACE";
/// `CLOUDFLARE_REQUEST_TIMEOUT`: the limit of one attempt, in seconds.
pub const REQUEST_TIMEOUT_ENV: &str = "CLOUDFLARE_REQUEST_TIMEOUT";
/// `CLOUDFLARE_RATE_LIMIT`: requests per 5 minutes this process may send (`0` = no limit).
pub const RATE_LIMIT_ENV: &str = "CLOUDFLARE_RATE_LIMIT";
/// `CLOUDFLARE_EMBEDDING_FALLBACK`: `local` or `off` ([`EmbeddingFallback`]).
pub const EMBEDDING_FALLBACK_ENV: &str = "CLOUDFLARE_EMBEDDING_FALLBACK";
/// `CLOUDFLARE_EMBEDDING_FALLBACK_DIR`: the directory of the local fallback model's files.
pub const EMBEDDING_FALLBACK_DIR_ENV: &str = "CLOUDFLARE_EMBEDDING_FALLBACK_DIR";

/// Whether the backend embeds locally when Workers AI fails ([`EMBEDDING_FALLBACK_ENV`]);
/// see `embedder` for when a local model is equivalent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmbeddingFallback {
    /// Not set: the fallback is on when the local equivalent's weights are found, and off
    /// (with a log line saying why) otherwise.
    #[default]
    Auto,
    /// `local`: required; the store refuses to start when the model has no local
    /// equivalent or its weights are missing.
    Local,
    /// `off`: Workers AI only.
    Off,
}

impl EmbeddingFallback {
    /// The accepted values, for messages.
    pub const ACCEPTED: &'static str = "local or off";
}

/// Default [`CloudflareConfig::embedding_model`]: upstream's default,
/// `@cf/baai/bge-base-en-v1.5` (768 dimensions).
pub(crate) const DEFAULT_EMBEDDING_MODEL: EmbeddingModel = EmbeddingModel::BGE_BASE_EN_V1_5;

/// Default [`CloudflareConfig::large_content_threshold`]: 1 MiB, upstream's default.
pub(crate) const DEFAULT_LARGE_CONTENT_THRESHOLD: usize =
    crate::storage::DEFAULT_LARGE_CONTENT_THRESHOLD;

/// Largest accepted [`CloudflareConfig::large_content_threshold`]: D1's limit on one bound
/// value ([`cloudflare_d1::MAX_VALUE_BYTES`]), since content up to the threshold is stored in
/// the D1 row.
pub(crate) const MAX_LARGE_CONTENT_THRESHOLD: usize = cloudflare_d1::MAX_VALUE_BYTES;

/// Default retries of a failed call ([`Field::MaxRetries`]).
pub(crate) const DEFAULT_MAX_RETRIES: u32 = cloudflare_http::backoff::DEFAULT_MAX_RETRIES;

/// Default first retry delay ([`Field::BaseDelay`]).
pub(crate) const DEFAULT_BASE_DELAY: Duration = cloudflare_http::backoff::DEFAULT_INIT_BACKOFF;

/// Default API base URL ([`Field::ApiBaseUrl`]): Cloudflare's.
pub(crate) const DEFAULT_API_BASE_URL: &str = cloudflare_http::DEFAULT_BASE_URL;

/// Default limit of one attempt ([`Field::RequestTimeout`]).
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration =
    cloudflare_http::client::DEFAULT_REQUEST_TIMEOUT;

/// Default requests per 5 minutes ([`Field::RateLimit`]): Cloudflare's limit per user
/// (across all its tokens and the dashboard; the client also paces from the answers'
/// `ratelimit` headers, which see every consumer).
pub(crate) const DEFAULT_RATE_LIMIT: u32 = cloudflare_http::RATE_LIMIT_REQUESTS;

/// One Cloudflare setting, in the order of the variable table (and of [`ConfigErrors`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// [`TOKEN_ENV`]: the API token (secret).
    ApiToken,
    /// [`ACCOUNT_ENV`]: the account id.
    AccountId,
    /// [`VECTORIZE_INDEX_ENV`]: the Vectorize index name.
    VectorizeIndex,
    /// [`D1_DATABASE_ENV`]: the D1 database id.
    D1DatabaseId,
    /// [`R2_BUCKET_ENV`]: the R2 bucket for large content.
    R2Bucket,
    /// [`EMBEDDING_MODEL_ENV`]: the Workers AI embedding model.
    EmbeddingModel,
    /// [`LARGE_CONTENT_THRESHOLD_ENV`]: bytes above which content goes to R2.
    LargeContentThreshold,
    /// [`MAX_RETRIES_ENV`]: retries of a failed call.
    MaxRetries,
    /// [`BASE_DELAY_ENV`]: the first retry delay, seconds.
    BaseDelay,
    /// [`API_BASE_URL_ENV`]: the API base URL.
    ApiBaseUrl,
    /// [`NAMESPACE_ENV`]: the namespace.
    Namespace,
    /// [`REQUEST_TIMEOUT_ENV`]: the limit of one attempt, seconds.
    RequestTimeout,
    /// [`RATE_LIMIT_ENV`]: requests per 5 minutes.
    RateLimit,
    /// [`EMBEDDING_FALLBACK_ENV`]: `local` or `off`.
    EmbeddingFallback,
    /// [`EMBEDDING_FALLBACK_DIR_ENV`]: the local fallback model's directory.
    EmbeddingFallbackDir,
}

impl Field {
    /// Every field, in table order.
    pub const ALL: [Self; 15] = [
        Self::ApiToken,
        Self::AccountId,
        Self::VectorizeIndex,
        Self::D1DatabaseId,
        Self::R2Bucket,
        Self::EmbeddingModel,
        Self::LargeContentThreshold,
        Self::MaxRetries,
        Self::BaseDelay,
        Self::ApiBaseUrl,
        Self::Namespace,
        Self::RequestTimeout,
        Self::RateLimit,
        Self::EmbeddingFallback,
        Self::EmbeddingFallbackDir,
    ];

    /// The environment variable that names this setting, e.g. `CLOUDFLARE_ACCOUNT_ID`.
    #[must_use]
    pub const fn env(self) -> &'static str {
        match self {
            Self::ApiToken => TOKEN_ENV,
            Self::AccountId => ACCOUNT_ENV,
            Self::VectorizeIndex => VECTORIZE_INDEX_ENV,
            Self::D1DatabaseId => D1_DATABASE_ENV,
            Self::R2Bucket => R2_BUCKET_ENV,
            Self::EmbeddingModel => EMBEDDING_MODEL_ENV,
            Self::LargeContentThreshold => LARGE_CONTENT_THRESHOLD_ENV,
            Self::MaxRetries => MAX_RETRIES_ENV,
            Self::BaseDelay => BASE_DELAY_ENV,
            Self::ApiBaseUrl => API_BASE_URL_ENV,
            Self::Namespace => NAMESPACE_ENV,
            Self::RequestTimeout => REQUEST_TIMEOUT_ENV,
            Self::RateLimit => RATE_LIMIT_ENV,
            Self::EmbeddingFallback => EMBEDDING_FALLBACK_ENV,
            Self::EmbeddingFallbackDir => EMBEDDING_FALLBACK_DIR_ENV,
        }
    }

    /// The field named by the variable `env`, if any.
    #[must_use]
    pub fn from_env_name(env: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.env() == env)
    }

    /// Whether the value is a secret (only the token is).
    #[must_use]
    pub const fn is_secret(self) -> bool {
        matches!(self, Self::ApiToken)
    }

    /// The value used when the setting is not given, as text (what `mcp-memory config`
    /// shows); `None` for required settings and optional ones without a default.
    #[must_use]
    pub fn default_value(self) -> Option<String> {
        Some(match self {
            Self::EmbeddingModel => DEFAULT_EMBEDDING_MODEL.id().to_owned(),
            Self::LargeContentThreshold => DEFAULT_LARGE_CONTENT_THRESHOLD.to_string(),
            Self::MaxRetries => DEFAULT_MAX_RETRIES.to_string(),
            Self::BaseDelay => DEFAULT_BASE_DELAY.as_secs_f64().to_string(),
            Self::ApiBaseUrl => DEFAULT_API_BASE_URL.to_owned(),
            Self::RequestTimeout => DEFAULT_REQUEST_TIMEOUT.as_secs_f64().to_string(),
            Self::RateLimit => DEFAULT_RATE_LIMIT.to_string(),
            Self::ApiToken
            | Self::AccountId
            | Self::VectorizeIndex
            | Self::D1DatabaseId
            | Self::R2Bucket
            | Self::Namespace
            | Self::EmbeddingFallback
            | Self::EmbeddingFallbackDir => return None,
        })
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.env())
    }
}

/// One missing or malformed setting: which, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The setting at fault.
    pub field: Field,
    /// What is wrong and what is expected (never contains the token), e.g.
    /// `"acc/123" is not an account id: expected letters and digits only (…)`.
    pub reason: String,
}

impl ConfigProblem {
    /// The variable naming the setting, e.g. `CLOUDFLARE_ACCOUNT_ID`.
    #[must_use]
    pub fn variable(&self) -> &'static str {
        self.field.env()
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Every problem found checking the settings, in the order of the variable table.
///
/// `Display` lists each on its own line, naming the variable and what is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl ConfigErrors {
    /// The problems.
    #[must_use]
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.0
    }

    /// The fields with a problem, in order.
    #[must_use]
    pub fn fields(&self) -> Vec<Field> {
        self.0.iter().map(|p| p.field).collect()
    }

    /// The variables with a problem, in order.
    #[must_use]
    pub fn variables(&self) -> Vec<&'static str> {
        self.0.iter().map(ConfigProblem::variable).collect()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "the Cloudflare backend (MCP_MEMORY_STORAGE_BACKEND=cloudflare) is not configured \
             correctly: {n} problem{}",
            if n == 1 { "" } else { "s" }
        )?;
        for problem in &self.0 {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The Cloudflare settings as given, one field per [`Field`], before checking: the token a
/// secret from the start, every other value its text (`None` or blank: not given, so the
/// default applies). The binary fills it from flags, the environment and its configuration
/// file; [`CloudflareSettings::into_config`] checks it. `Debug` never shows the token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudflareSettings {
    /// [`Field::ApiToken`].
    pub api_token: Option<ApiToken>,
    /// [`Field::AccountId`].
    pub account_id: Option<String>,
    /// [`Field::VectorizeIndex`].
    pub vectorize_index: Option<String>,
    /// [`Field::D1DatabaseId`].
    pub d1_database_id: Option<String>,
    /// [`Field::R2Bucket`].
    pub r2_bucket: Option<String>,
    /// [`Field::EmbeddingModel`].
    pub embedding_model: Option<String>,
    /// [`Field::LargeContentThreshold`], bytes.
    pub large_content_threshold: Option<String>,
    /// [`Field::MaxRetries`].
    pub max_retries: Option<String>,
    /// [`Field::BaseDelay`], seconds.
    pub base_delay: Option<String>,
    /// [`Field::ApiBaseUrl`].
    pub api_base_url: Option<String>,
    /// [`Field::Namespace`].
    pub namespace: Option<String>,
    /// [`Field::RequestTimeout`], seconds.
    pub request_timeout: Option<String>,
    /// [`Field::RateLimit`], requests per 5 minutes.
    pub rate_limit: Option<String>,
    /// [`Field::EmbeddingFallback`].
    pub embedding_fallback: Option<String>,
    /// [`Field::EmbeddingFallbackDir`].
    pub embedding_fallback_dir: Option<String>,
}

impl CloudflareSettings {
    /// Sets `field` to `value` (the token becomes an [`ApiToken`]).
    pub fn set(&mut self, field: Field, value: impl Into<String>) {
        let value = value.into();
        let slot = match field {
            Field::ApiToken => {
                self.api_token = Some(ApiToken::new(value));
                return;
            }
            Field::AccountId => &mut self.account_id,
            Field::VectorizeIndex => &mut self.vectorize_index,
            Field::D1DatabaseId => &mut self.d1_database_id,
            Field::R2Bucket => &mut self.r2_bucket,
            Field::EmbeddingModel => &mut self.embedding_model,
            Field::LargeContentThreshold => &mut self.large_content_threshold,
            Field::MaxRetries => &mut self.max_retries,
            Field::BaseDelay => &mut self.base_delay,
            Field::ApiBaseUrl => &mut self.api_base_url,
            Field::Namespace => &mut self.namespace,
            Field::RequestTimeout => &mut self.request_timeout,
            Field::RateLimit => &mut self.rate_limit,
            Field::EmbeddingFallback => &mut self.embedding_fallback,
            Field::EmbeddingFallbackDir => &mut self.embedding_fallback_dir,
        };
        *slot = Some(value);
    }

    /// Settings with each field the value `lookup` gives its variable name (for callers and
    /// tests holding values by variable; this crate reads no environment itself).
    #[must_use]
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut settings = Self::default();
        for field in Field::ALL {
            if let Some(value) = lookup(field.env()) {
                settings.set(field, value);
            }
        }
        settings
    }

    /// The text of `field` (the token's exposed), trimmed; `None` when not given or blank.
    fn text(&self, field: Field) -> Option<String> {
        let value = match field {
            Field::ApiToken => self.api_token.as_ref().map(ApiToken::expose),
            Field::AccountId => self.account_id.as_deref(),
            Field::VectorizeIndex => self.vectorize_index.as_deref(),
            Field::D1DatabaseId => self.d1_database_id.as_deref(),
            Field::R2Bucket => self.r2_bucket.as_deref(),
            Field::EmbeddingModel => self.embedding_model.as_deref(),
            Field::LargeContentThreshold => self.large_content_threshold.as_deref(),
            Field::MaxRetries => self.max_retries.as_deref(),
            Field::BaseDelay => self.base_delay.as_deref(),
            Field::ApiBaseUrl => self.api_base_url.as_deref(),
            Field::Namespace => self.namespace.as_deref(),
            Field::RequestTimeout => self.request_timeout.as_deref(),
            Field::RateLimit => self.rate_limit.as_deref(),
            Field::EmbeddingFallback => self.embedding_fallback.as_deref(),
            Field::EmbeddingFallbackDir => self.embedding_fallback_dir.as_deref(),
        };
        value
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// The configuration these settings describe, every value checked.
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`] listing every missing or malformed setting, not just the first.
    pub fn into_config(self) -> Result<CloudflareConfig, ConfigErrors> {
        let read = |field: Field| self.text(field);
        let mut problems = Vec::new();
        let mut problem = |field: Field, reason: String| {
            problems.push(ConfigProblem { field, reason });
        };

        // Required values.
        let token = read(Field::ApiToken);
        if token.is_none() {
            problem(
                Field::ApiToken,
                "is not set: create an API token in the Cloudflare dashboard (My Profile > API \
                 Tokens) with D1 Edit, Vectorize Edit, Workers AI Read and (for large content) \
                 R2 Edit permissions, and export it"
                    .to_owned(),
            );
        }
        let account = read(Field::AccountId);
        match &account {
            None => problem(
                Field::AccountId,
                "is not set: copy the account id (32 hexadecimal characters) from the Cloudflare \
                 dashboard (Workers & Pages, right column)"
                    .to_owned(),
            ),
            Some(v) if !v.bytes().all(|b| b.is_ascii_alphanumeric()) => problem(
                Field::AccountId,
                format!(
                    "{v:?} is not an account id: expected letters and digits only \
                     (Cloudflare's are 32 hexadecimal characters)"
                ),
            ),
            Some(_) => {}
        }
        let index = read(Field::VectorizeIndex);
        match &index {
            None => problem(
                Field::VectorizeIndex,
                "is not set: name the Vectorize index to use (it is created with the embedding \
                 model's dimensions and the cosine metric if it does not exist), e.g. \
                 mcp-memory"
                    .to_owned(),
            ),
            Some(v) => {
                if let Some(why) = index_name_problem(v) {
                    problem(Field::VectorizeIndex, format!("{v:?} {why}"));
                }
            }
        }
        let database = read(Field::D1DatabaseId);
        match &database {
            None => problem(
                Field::D1DatabaseId,
                "is not set: create a D1 database (`wrangler d1 create mcp-memory`) and give \
                 its id, a UUID like 01234567-89ab-cdef-0123-456789abcdef"
                    .to_owned(),
            ),
            Some(v) if !is_uuid(v) => problem(
                Field::D1DatabaseId,
                format!(
                    "{v:?} is not a D1 database id: expected a UUID like \
                     01234567-89ab-cdef-0123-456789abcdef (`wrangler d1 list` shows it)"
                ),
            ),
            Some(_) => {}
        }

        // Optional values.
        let r2_bucket = read(Field::R2Bucket);
        if let Some(v) = &r2_bucket
            && let Err(e) = cloudflare_r2::validate_bucket_name(v)
        {
            problem(
                Field::R2Bucket,
                format!("{e}; unset it to store no content in R2"),
            );
        }
        let embedding_model = match read(Field::EmbeddingModel) {
            None => Some(DEFAULT_EMBEDDING_MODEL),
            Some(v) => match v.parse::<EmbeddingModel>() {
                Ok(model) => Some(model),
                Err(e) => {
                    let known = EmbeddingModel::KNOWN
                        .iter()
                        .map(|m| format!("{} ({} dimensions)", m.id(), m.dimensions()))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let why = match e {
                        cloudflare_ai::AiError::UnknownModel { .. } => {
                            format!("{v:?} is not a known Workers AI embedding model")
                        }
                        other => other.to_string(),
                    };
                    problem(
                        Field::EmbeddingModel,
                        format!(
                            "{why}; expected one of: {known}; unset it to use {}",
                            DEFAULT_EMBEDDING_MODEL.id()
                        ),
                    );
                    None
                }
            },
        };
        let large_content_threshold = match read(Field::LargeContentThreshold) {
            None => DEFAULT_LARGE_CONTENT_THRESHOLD,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LARGE_CONTENT_THRESHOLD).contains(&n) => n,
                _ => {
                    problem(
                        Field::LargeContentThreshold,
                        format!(
                            "{v:?} is not a valid size: expected a whole number of bytes from 1 \
                             to {MAX_LARGE_CONTENT_THRESHOLD} (D1's limit on one value); unset \
                             it to use {DEFAULT_LARGE_CONTENT_THRESHOLD} (1 MiB)"
                        ),
                    );
                    DEFAULT_LARGE_CONTENT_THRESHOLD
                }
            },
        };
        // The retry settings, each on its own so that both are reported.
        let invalid = |v: &str, reason: &str| {
            format!("{v:?} is invalid: {reason}; unset it to use the default")
        };
        let max_retries = match read(Field::MaxRetries) {
            None => Some(DEFAULT_MAX_RETRIES),
            Some(v) => match v.parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => {
                    problem(
                        Field::MaxRetries,
                        invalid(&v, "expected a whole number of retries, e.g. 3"),
                    );
                    None
                }
            },
        };
        let base_delay = match read(Field::BaseDelay) {
            None => Some(DEFAULT_BASE_DELAY),
            Some(v) => match positive_seconds(&v) {
                Some(d) => Some(d),
                None => {
                    problem(
                        Field::BaseDelay,
                        invalid(&v, "expected a positive number of seconds, e.g. 1.0"),
                    );
                    None
                }
            },
        };
        let retry = match (max_retries, base_delay) {
            (Some(retries), Some(delay)) => match RetryConfig::new(retries, delay) {
                Ok(retry) => Some(retry),
                Err(e) => {
                    let v = delay.as_secs_f64().to_string();
                    problem(Field::BaseDelay, invalid(&v, &e.to_string()));
                    None
                }
            },
            _ => None,
        };
        let base_url = match read(Field::ApiBaseUrl) {
            None => None,
            Some(v) => match base_url_problem(&v) {
                None => Some(v),
                Some(why) => {
                    problem(
                        Field::ApiBaseUrl,
                        format!(
                            "{v:?} {why}: expected an http(s) URL such as {DEFAULT_API_BASE_URL} \
                             or http://127.0.0.1:8787/client/v4 for a local emulator; unset it \
                             to use the former"
                        ),
                    );
                    None
                }
            },
        };
        let namespace = match read(Field::Namespace).map(Namespace::new).transpose() {
            Ok(namespace) => namespace,
            Err(e) => {
                problem(Field::Namespace, format!("{e}; unset it for no namespace"));
                None
            }
        };
        let request_timeout = match read(Field::RequestTimeout) {
            None => DEFAULT_REQUEST_TIMEOUT,
            Some(v) => match positive_seconds(&v) {
                Some(d) => d,
                None => {
                    problem(
                        Field::RequestTimeout,
                        format!(
                            "{v:?} is not a valid timeout: expected a positive number of \
                             seconds, e.g. 40 or 2.5; unset it to use {}",
                            DEFAULT_REQUEST_TIMEOUT.as_secs()
                        ),
                    );
                    DEFAULT_REQUEST_TIMEOUT
                }
            },
        };
        let rate_limit = match read(Field::RateLimit) {
            None => Some(RateLimitConfig::default()),
            Some(v) => match v.parse::<u32>() {
                Ok(0) => None,
                Ok(n) => RateLimitConfig::new(n, RATE_LIMIT_WINDOW, n.min(DEFAULT_BURST)).ok(),
                Err(_) => {
                    problem(
                        Field::RateLimit,
                        format!(
                            "{v:?} is not a valid rate limit: expected a whole number of \
                             requests per 5 minutes (0 for no limit); unset it to use \
                             Cloudflare's {DEFAULT_RATE_LIMIT}"
                        ),
                    );
                    None
                }
            },
        };

        let embedding_fallback = match read(Field::EmbeddingFallback) {
            None => EmbeddingFallback::Auto,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "local" => EmbeddingFallback::Local,
                "off" => EmbeddingFallback::Off,
                _ => {
                    problem(
                        Field::EmbeddingFallback,
                        format!(
                            "{v:?} is not a fallback mode: expected {}; unset it to fall back \
                             locally when the model's weights are found",
                            EmbeddingFallback::ACCEPTED
                        ),
                    );
                    EmbeddingFallback::Auto
                }
            },
        };
        let embedding_fallback_dir = read(Field::EmbeddingFallbackDir).map(PathBuf::from);

        if !problems.is_empty() {
            return Err(ConfigErrors(problems));
        }
        // Everything was checked above, so these hold; a failure here would be a bug in the
        // checks, reported rather than panicking.
        let (
            Some(token),
            Some(account),
            Some(index),
            Some(database),
            Some(embedding_model),
            Some(retry),
        ) = (token, account, index, database, embedding_model, retry)
        else {
            return Err(ConfigErrors(vec![ConfigProblem {
                field: Field::ApiToken,
                reason: "the configuration could not be read (internal error); report it"
                    .to_owned(),
            }]));
        };
        let mut client = ClientConfig::new(account, ApiToken::new(token));
        if let Some(url) = base_url {
            // Checked by `base_url_problem` above.
            if let Ok(uri) = url.parse() {
                client.base_url = uri;
            }
        }
        client.retry = retry;
        client.request_timeout = request_timeout;
        client.rate_limit = rate_limit;
        Ok(CloudflareConfig {
            client,
            vectorize_index: index,
            d1_database_id: database,
            r2_bucket,
            embedding_model,
            large_content_threshold,
            namespace,
            embedding_fallback,
            embedding_fallback_dir,
        })
    }
}

/// The Cloudflare backend's settings (see the [module docs](self) for the variables).
///
/// `Debug` never shows the token: [`ClientConfig`] prints it as `***`.
#[derive(Debug, Clone)]
pub struct CloudflareConfig {
    /// The HTTP client's settings: account id, token, base URL, retries, the timeout of
    /// one attempt and the rate limit.
    pub client: ClientConfig,
    /// The Vectorize index name.
    pub vectorize_index: String,
    /// The D1 database id (a UUID).
    pub d1_database_id: String,
    /// The R2 bucket for content over [`Self::large_content_threshold`], if any.
    pub r2_bucket: Option<String>,
    /// The Workers AI embedding model (id and dimensions).
    pub embedding_model: EmbeddingModel,
    /// Content of more bytes than this is stored in R2.
    pub large_content_threshold: usize,
    /// The namespace, if any.
    pub namespace: Option<Namespace>,
    /// Whether to embed locally when Workers AI fails.
    pub embedding_fallback: EmbeddingFallback,
    /// Where the local fallback model's files are; `None` = the per-user model cache.
    pub embedding_fallback_dir: Option<PathBuf>,
}

impl CloudflareConfig {
    /// Checks the values `lookup` gives each variable name
    /// ([`CloudflareSettings::from_lookup`], then [`CloudflareSettings::into_config`]).
    /// Unset and blank mean the same; values are trimmed.
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`] listing every missing or malformed setting, not just the first.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigErrors> {
        CloudflareSettings::from_lookup(lookup).into_config()
    }

    /// The account id.
    #[must_use]
    pub fn account_id(&self) -> &str {
        &self.client.account_id
    }
}

/// A positive, finite number of seconds as a non-zero duration, if `text` is one.
fn positive_seconds(text: &str) -> Option<Duration> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| !d.is_zero())
}

/// Why `name` cannot be a Vectorize index name, if it cannot: 1 to
/// [`cloudflare_vectorize::MAX_INDEX_NAME_BYTES`] bytes of `a-z`, `0-9`, `-` and `_` (it goes
/// into URL paths unescaped).
fn index_name_problem(name: &str) -> Option<String> {
    if cloudflare_vectorize::types::validate_index_name(name).is_err() {
        return Some(format!(
            "is not a valid Vectorize index name: expected 1 to {} characters",
            cloudflare_vectorize::MAX_INDEX_NAME_BYTES
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Some(
            "is not a valid Vectorize index name: expected lowercase letters, digits, '-' and \
             '_' only, e.g. mcp-memory"
                .to_owned(),
        );
    }
    None
}

/// Whether `s` is a hyphenated UUID (`8-4-4-4-12` hexadecimal digits).
fn is_uuid(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Why `url` cannot be the API base URL, if it cannot.
fn base_url_problem(url: &str) -> Option<&'static str> {
    let mut probe = ClientConfig::new("probe", ApiToken::new("probe"));
    match url.parse() {
        Ok(uri) => probe.base_url = uri,
        Err(_) => return Some("is not a URL"),
    }
    match probe.base_url.scheme_str() {
        Some("http" | "https") if probe.base_url.authority().is_some() => None,
        Some("http" | "https") => Some("has no host"),
        _ => Some("is not an http(s) URL"),
    }
}

#[cfg(test)]
mod tests;
