//! [`CloudflareConfig`]: the Cloudflare backend's settings, read from the environment.
//!
//! Upstream MCP Memory Service's variables keep their names and meaning, so an existing
//! upstream configuration works unchanged; four of ours are added.
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
//!
//! Reading never stops at the first problem: [`CloudflareConfig::from_lookup`] checks every
//! variable and returns [`ConfigErrors`], which lists each missing or malformed one with what
//! is expected. The token is never printed: `Debug` of the config shows `***`, and no
//! message quotes it.
//!
//! ```
//! use memory_cloudflare::config::CloudflareConfig;
//!
//! let err = CloudflareConfig::from_lookup(|_| None).unwrap_err();
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
use std::time::Duration;

use crate::namespace::Namespace;
use cloudflare_ai::EmbeddingModel;
use cloudflare_http::middleware::rate_limit::DEFAULT_BURST;
use cloudflare_http::secret::API_TOKEN_ENV;
use cloudflare_http::{
    ACCOUNT_ID_ENV, BASE_URL_ENV, ClientConfig, RATE_LIMIT_REQUESTS, RATE_LIMIT_WINDOW,
    RateLimitConfig, RetryConfig,
};

/// `CLOUDFLARE_API_TOKEN`: the API token.
pub const TOKEN_ENV: &str = API_TOKEN_ENV;
/// `CLOUDFLARE_ACCOUNT_ID`: the account id.
pub const ACCOUNT_ENV: &str = ACCOUNT_ID_ENV;
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
pub const MAX_RETRIES_ENV: &str = cloudflare_http::backoff::MAX_RETRIES_ENV;
/// `CLOUDFLARE_BASE_DELAY`: the first retry delay in seconds.
pub const BASE_DELAY_ENV: &str = cloudflare_http::backoff::BASE_DELAY_ENV;
/// `CLOUDFLARE_API_BASE_URL`: the API base URL (e.g. a local emulator).
pub const API_BASE_URL_ENV: &str = BASE_URL_ENV;
/// `CLOUDFLARE_NAMESPACE`: a namespace isolating this store's tables, vectors and objects.
pub const NAMESPACE_ENV: &str = "CLOUDFLARE_NAMESPACE";
/// `CLOUDFLARE_REQUEST_TIMEOUT`: the limit of one attempt, in seconds.
pub const REQUEST_TIMEOUT_ENV: &str = "CLOUDFLARE_REQUEST_TIMEOUT";
/// `CLOUDFLARE_RATE_LIMIT`: requests per 5 minutes this process may send (`0` = no limit).
pub const RATE_LIMIT_ENV: &str = "CLOUDFLARE_RATE_LIMIT";

/// Default [`CloudflareConfig::embedding_model`]: upstream's default,
/// `@cf/baai/bge-base-en-v1.5` (768 dimensions).
pub const DEFAULT_EMBEDDING_MODEL: EmbeddingModel = EmbeddingModel::BGE_BASE_EN_V1_5;

/// Default [`CloudflareConfig::large_content_threshold`]: 1 MiB, upstream's default.
pub const DEFAULT_LARGE_CONTENT_THRESHOLD: usize = crate::storage::DEFAULT_LARGE_CONTENT_THRESHOLD;

/// Largest accepted [`CloudflareConfig::large_content_threshold`]: D1's limit on one bound
/// value ([`cloudflare_d1::MAX_VALUE_BYTES`]), since content up to the threshold is stored in
/// the D1 row.
pub const MAX_LARGE_CONTENT_THRESHOLD: usize = cloudflare_d1::MAX_VALUE_BYTES;

/// One missing or malformed variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The variable, e.g. `CLOUDFLARE_ACCOUNT_ID`.
    pub variable: &'static str,
    /// What is wrong and what is expected (never contains the token).
    pub problem: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.problem)
    }
}

/// Every problem found reading the configuration, in the order of the variable table.
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

    /// The variables with a problem, in order.
    #[must_use]
    pub fn variables(&self) -> Vec<&'static str> {
        self.0.iter().map(|p| p.variable).collect()
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
}

impl CloudflareConfig {
    /// Reads the process environment ([`CloudflareConfig::from_lookup`]).
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`] listing every missing or malformed variable.
    pub fn from_env() -> Result<Self, ConfigErrors> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads the variables through `lookup`. Unset and blank mean the same; values are
    /// trimmed.
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`] listing every missing or malformed variable, not just the first.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigErrors> {
        let read = |key: &str| {
            lookup(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut problems = Vec::new();
        let mut problem = |variable: &'static str, text: String| {
            problems.push(ConfigProblem {
                variable,
                problem: text,
            });
        };

        // Required values.
        let token = read(TOKEN_ENV);
        if token.is_none() {
            problem(
                TOKEN_ENV,
                "is not set: create an API token in the Cloudflare dashboard (My Profile > API \
                 Tokens) with D1 Edit, Vectorize Edit, Workers AI Read and (for large content) \
                 R2 Edit permissions, and export it"
                    .to_owned(),
            );
        }
        let account = read(ACCOUNT_ENV);
        match &account {
            None => problem(
                ACCOUNT_ENV,
                "is not set: copy the account id (32 hexadecimal characters) from the Cloudflare \
                 dashboard (Workers & Pages, right column)"
                    .to_owned(),
            ),
            Some(v) if !v.bytes().all(|b| b.is_ascii_alphanumeric()) => problem(
                ACCOUNT_ENV,
                format!(
                    "{v:?} is not an account id: expected letters and digits only \
                     (Cloudflare's are 32 hexadecimal characters)"
                ),
            ),
            Some(_) => {}
        }
        let index = read(VECTORIZE_INDEX_ENV);
        match &index {
            None => problem(
                VECTORIZE_INDEX_ENV,
                "is not set: name the Vectorize index to use (it is created with the embedding \
                 model's dimensions and the cosine metric if it does not exist), e.g. \
                 mcp-memory"
                    .to_owned(),
            ),
            Some(v) => {
                if let Some(why) = index_name_problem(v) {
                    problem(VECTORIZE_INDEX_ENV, format!("{v:?} {why}"));
                }
            }
        }
        let database = read(D1_DATABASE_ENV);
        match &database {
            None => problem(
                D1_DATABASE_ENV,
                "is not set: create a D1 database (`wrangler d1 create mcp-memory`) and give \
                 its id, a UUID like 01234567-89ab-cdef-0123-456789abcdef"
                    .to_owned(),
            ),
            Some(v) if !is_uuid(v) => problem(
                D1_DATABASE_ENV,
                format!(
                    "{v:?} is not a D1 database id: expected a UUID like \
                     01234567-89ab-cdef-0123-456789abcdef (`wrangler d1 list` shows it)"
                ),
            ),
            Some(_) => {}
        }

        // Optional values.
        let r2_bucket = read(R2_BUCKET_ENV);
        if let Some(v) = &r2_bucket
            && let Err(e) = cloudflare_r2::validate_bucket_name(v)
        {
            problem(
                R2_BUCKET_ENV,
                format!("{e}; unset it to store no content in R2"),
            );
        }
        let embedding_model = match read(EMBEDDING_MODEL_ENV) {
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
                        EMBEDDING_MODEL_ENV,
                        format!(
                            "{why}; expected one of: {known}; unset it to use {}",
                            DEFAULT_EMBEDDING_MODEL.id()
                        ),
                    );
                    None
                }
            },
        };
        let large_content_threshold = match read(LARGE_CONTENT_THRESHOLD_ENV) {
            None => DEFAULT_LARGE_CONTENT_THRESHOLD,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LARGE_CONTENT_THRESHOLD).contains(&n) => n,
                _ => {
                    problem(
                        LARGE_CONTENT_THRESHOLD_ENV,
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
        // The retry variables, each on its own so that both are reported.
        let mut retry_ok = true;
        for variable in [MAX_RETRIES_ENV, BASE_DELAY_ENV] {
            let only = |key: &str| if key == variable { read(key) } else { None };
            if let Err(e) = RetryConfig::from_env_lookup(only) {
                retry_ok = false;
                let text = e.to_string();
                let text = text
                    .strip_prefix(&format!("{variable}="))
                    .unwrap_or(&text)
                    .to_owned();
                problem(variable, text);
            }
        }
        let retry = if retry_ok {
            RetryConfig::from_env_lookup(|key| read(key)).ok()
        } else {
            None
        };
        let base_url = read(API_BASE_URL_ENV);
        if let Some(v) = &base_url
            && let Some(why) = base_url_problem(v)
        {
            problem(
                API_BASE_URL_ENV,
                format!(
                    "{v:?} {why}: expected an http(s) URL such as {} or \
                     http://127.0.0.1:8787/client/v4 for a local emulator; unset it to use the \
                     former",
                    cloudflare_http::DEFAULT_BASE_URL
                ),
            );
        }
        let namespace = match read(NAMESPACE_ENV).map(Namespace::new).transpose() {
            Ok(namespace) => namespace,
            Err(e) => {
                problem(NAMESPACE_ENV, format!("{e}; unset it for no namespace"));
                None
            }
        };
        let request_timeout = match read(REQUEST_TIMEOUT_ENV) {
            None => cloudflare_http::client::DEFAULT_REQUEST_TIMEOUT,
            Some(v) => match v
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
            {
                Some(d) => d,
                None => {
                    problem(
                        REQUEST_TIMEOUT_ENV,
                        format!(
                            "{v:?} is not a valid timeout: expected a positive number of \
                             seconds, e.g. 40 or 2.5; unset it to use {}",
                            cloudflare_http::client::DEFAULT_REQUEST_TIMEOUT.as_secs()
                        ),
                    );
                    cloudflare_http::client::DEFAULT_REQUEST_TIMEOUT
                }
            },
        };
        let rate_limit = match read(RATE_LIMIT_ENV) {
            None => Some(RateLimitConfig::default()),
            Some(v) => match v.parse::<u32>() {
                Ok(0) => None,
                Ok(n) => RateLimitConfig::new(n, RATE_LIMIT_WINDOW, n.min(DEFAULT_BURST)).ok(),
                Err(_) => {
                    problem(
                        RATE_LIMIT_ENV,
                        format!(
                            "{v:?} is not a valid rate limit: expected a whole number of \
                             requests per 5 minutes (0 for no limit); unset it to use \
                             Cloudflare's {RATE_LIMIT_REQUESTS}"
                        ),
                    );
                    None
                }
            },
        };

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
                variable: TOKEN_ENV,
                problem: "the configuration could not be read (internal error); report it"
                    .to_owned(),
            }]));
        };
        let mut client = ClientConfig::new(account, cloudflare_http::ApiToken::new(token));
        if let Some(url) = base_url {
            match url.parse() {
                Ok(uri) => client.base_url = uri,
                Err(e) => {
                    return Err(ConfigErrors(vec![ConfigProblem {
                        variable: API_BASE_URL_ENV,
                        problem: format!("{url:?} is not a URL: {e}"),
                    }]));
                }
            }
        }
        client.retry = retry;
        client.request_timeout = request_timeout;
        client.rate_limit = rate_limit;
        Ok(Self {
            client,
            vectorize_index: index,
            d1_database_id: database,
            r2_bucket,
            embedding_model,
            large_content_threshold,
            namespace,
        })
    }

    /// The account id.
    #[must_use]
    pub fn account_id(&self) -> &str {
        &self.client.account_id
    }
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
    let mut probe = ClientConfig::new("probe", cloudflare_http::ApiToken::new("probe"));
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
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SECRET: &str = "cf-secret-token-value-1234";
    const UUID: &str = "0f8e6a4c-2b1d-4e3f-9a8b-7c6d5e4f3a2b";

    fn required() -> Vec<(&'static str, &'static str)> {
        vec![
            (TOKEN_ENV, SECRET),
            (ACCOUNT_ENV, "023e105f4ecef8ad9ca31a8372d0c353"),
            (VECTORIZE_INDEX_ENV, "mcp-memory"),
            (D1_DATABASE_ENV, UUID),
        ]
    }

    fn read(vars: &[(&'static str, &str)]) -> Result<CloudflareConfig, ConfigErrors> {
        let map: HashMap<&str, String> = vars.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        CloudflareConfig::from_lookup(|k| map.get(k).cloned())
    }

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut vars = required();
        for (k, v) in extra {
            vars.retain(|(key, _)| key != k);
            vars.push((k, v));
        }
        vars
    }

    fn only_problem(vars: &[(&'static str, &str)], variable: &str) -> ConfigProblem {
        let err = read(vars).unwrap_err();
        assert_eq!(err.variables(), vec![variable], "{err}");
        err.0[0].clone()
    }

    #[test]
    fn defaults() {
        let c = read(&required()).unwrap();
        assert_eq!(c.client.token.expose(), SECRET);
        assert_eq!(c.account_id(), "023e105f4ecef8ad9ca31a8372d0c353");
        assert_eq!(c.vectorize_index, "mcp-memory");
        assert_eq!(c.d1_database_id, UUID);
        assert_eq!(c.r2_bucket, None);
        assert_eq!(c.embedding_model, EmbeddingModel::BGE_BASE_EN_V1_5);
        assert_eq!(c.embedding_model.dimensions(), 768);
        assert_eq!(c.large_content_threshold, 1_048_576);
        assert_eq!(c.namespace, None);
        assert_eq!(c.client.base_url, cloudflare_http::DEFAULT_BASE_URL);
        assert_eq!(c.client.retry, RetryConfig::default());
        assert_eq!(
            c.client.request_timeout,
            cloudflare_http::client::DEFAULT_REQUEST_TIMEOUT
        );
        assert_eq!(c.client.rate_limit, Some(RateLimitConfig::default()));
    }

    #[test]
    fn every_value_is_read_and_trimmed() {
        let c = read(&with(&[
            (TOKEN_ENV, "  tok \n"),
            (R2_BUCKET_ENV, "mcp-memory-content"),
            (EMBEDDING_MODEL_ENV, "@cf/baai/bge-small-en-v1.5"),
            (LARGE_CONTENT_THRESHOLD_ENV, " 4096 "),
            (MAX_RETRIES_ENV, "5"),
            (BASE_DELAY_ENV, "0.25"),
            (API_BASE_URL_ENV, "http://127.0.0.1:9999/client/v4"),
            (NAMESPACE_ENV, "team_a"),
            (REQUEST_TIMEOUT_ENV, "2.5"),
            (RATE_LIMIT_ENV, "600"),
        ]))
        .unwrap();
        assert_eq!(c.client.token.expose(), "tok");
        assert_eq!(c.r2_bucket.as_deref(), Some("mcp-memory-content"));
        assert_eq!(c.embedding_model, EmbeddingModel::BGE_SMALL_EN_V1_5);
        assert_eq!(c.large_content_threshold, 4096);
        assert_eq!(c.client.retry.max_retries, 5);
        assert_eq!(
            c.client.retry.backoff.init_backoff(),
            Duration::from_millis(250)
        );
        assert_eq!(c.client.base_url, "http://127.0.0.1:9999/client/v4");
        assert_eq!(c.namespace.as_ref().map(Namespace::as_str), Some("team_a"));
        assert_eq!(c.client.request_timeout, Duration::from_millis(2500));
        let limit = c.client.rate_limit.unwrap();
        assert_eq!(
            (limit.requests(), limit.per(), limit.burst()),
            (600, RATE_LIMIT_WINDOW, DEFAULT_BURST)
        );
    }

    #[test]
    fn rate_limit_zero_turns_it_off_and_small_limits_cap_the_burst() {
        let c = read(&with(&[(RATE_LIMIT_ENV, "0")])).unwrap();
        assert_eq!(c.client.rate_limit, None);
        let c = read(&with(&[(RATE_LIMIT_ENV, "5")])).unwrap();
        assert_eq!(c.client.rate_limit.unwrap().burst(), 5);
    }

    #[test]
    fn each_missing_required_variable_is_named() {
        for variable in [TOKEN_ENV, ACCOUNT_ENV, VECTORIZE_INDEX_ENV, D1_DATABASE_ENV] {
            let mut vars = required();
            vars.retain(|(k, _)| *k != variable);
            let p = only_problem(&vars, variable);
            assert!(p.problem.contains("is not set"), "{p}");
            // Blank counts as unset.
            vars.push((variable, "   "));
            assert_eq!(only_problem(&vars, variable), p);
        }
    }

    #[test]
    fn each_malformed_variable_is_named_with_what_is_expected() {
        let cases: &[(&'static str, &'static str, &str)] = &[
            (ACCOUNT_ENV, "acc/123", "letters and digits"),
            (VECTORIZE_INDEX_ENV, "My Index", "lowercase"),
            (
                VECTORIZE_INDEX_ENV,
                "a-very-long-index-name-that-goes-well-beyond-the-sixty-four-byte-limit",
                "1 to 64",
            ),
            (D1_DATABASE_ENV, "mcp-memory", "UUID"),
            (D1_DATABASE_ENV, "0f8e6a4c2b1d4e3f9a8b7c6d5e4f3a2b", "UUID"),
            (R2_BUCKET_ENV, "Bad_Bucket", "bucket"),
            (
                EMBEDDING_MODEL_ENV,
                "@cf/acme/unknown",
                "@cf/baai/bge-base-en-v1.5",
            ),
            (EMBEDDING_MODEL_ENV, "bge-small", "@cf/<vendor>/<name>"),
            (LARGE_CONTENT_THRESHOLD_ENV, "1MB", "whole number of bytes"),
            (LARGE_CONTENT_THRESHOLD_ENV, "0", "from 1"),
            (LARGE_CONTENT_THRESHOLD_ENV, "3000000", "2000000"),
            (MAX_RETRIES_ENV, "three", "whole number"),
            (BASE_DELAY_ENV, "-1", "positive"),
            (API_BASE_URL_ENV, "not a url", "http(s) URL"),
            (API_BASE_URL_ENV, "ftp://example.com/client/v4", "http(s)"),
            (API_BASE_URL_ENV, "/client/v4", "http(s)"),
            (NAMESPACE_ENV, "Team-A", "a-z, 0-9 and _"),
            (
                NAMESPACE_ENV,
                "a_namespace_longer_than_32_characters",
                "1 to 32",
            ),
            (REQUEST_TIMEOUT_ENV, "0", "positive number of seconds"),
            (REQUEST_TIMEOUT_ENV, "soon", "positive number of seconds"),
            (RATE_LIMIT_ENV, "-5", "whole number of requests"),
        ];
        for (variable, value, expected) in cases {
            let p = only_problem(&with(&[(variable, value)]), variable);
            assert!(
                p.problem.contains(expected),
                "{variable}={value}: {p} lacks {expected:?}"
            );
        }
    }

    #[test]
    fn all_problems_are_reported_together() {
        let err = read(&[
            (D1_DATABASE_ENV, "not-a-uuid"),
            (MAX_RETRIES_ENV, "x"),
            (BASE_DELAY_ENV, "y"),
            (EMBEDDING_MODEL_ENV, "@cf/acme/unknown"),
            (RATE_LIMIT_ENV, "lots"),
            (NAMESPACE_ENV, "BAD"),
        ])
        .unwrap_err();
        assert_eq!(
            err.variables(),
            vec![
                TOKEN_ENV,
                ACCOUNT_ENV,
                VECTORIZE_INDEX_ENV,
                D1_DATABASE_ENV,
                EMBEDDING_MODEL_ENV,
                MAX_RETRIES_ENV,
                BASE_DELAY_ENV,
                NAMESPACE_ENV,
                RATE_LIMIT_ENV,
            ]
        );
        let text = err.to_string();
        assert!(text.contains("9 problems"), "{text}");
        for variable in err.variables() {
            assert!(text.contains(&format!("\n  - {variable}: ")), "{text}");
        }
    }

    #[test]
    fn the_token_never_shows() {
        let c = read(&required()).unwrap();
        for text in [format!("{c:?}"), format!("{c:#?}")] {
            assert!(!text.contains(SECRET), "{text}");
            assert!(text.contains("***"), "{text}");
        }
        // Problems with other variables never quote the token.
        let err = read(&with(&[(D1_DATABASE_ENV, "x"), (ACCOUNT_ENV, "a/b")])).unwrap_err();
        assert!(!err.to_string().contains(SECRET));
        assert!(!format!("{err:?}").contains(SECRET));
    }
}
