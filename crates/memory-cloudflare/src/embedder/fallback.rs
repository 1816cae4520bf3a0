//! [`WorkersAiWithFallback`]: Workers AI, and its local equivalent when Workers AI fails
//! (feature `local-embedding`).
//!
//! Workers AI is asked first, always. When the call fails in a way that says Workers AI is
//! unavailable rather than that the request is wrong, and a [`LocalEquivalent`] is
//! configured, the same texts (cut the same way) are embedded locally with the same weights
//! and the same pooling, so the vectors stay comparable with the stored ones. Each fallback
//! is counted by [`FallbackReason`] and reported through [`Embedder::report`] (the store's
//! `stats` and `health`).
//!
//! Which failures fall back, and why only those:
//! - `breaker_open`: the client's circuit breaker for Workers AI is open, so nothing was
//!   sent;
//! - `server_error`: a 5xx answer, after the client's retries;
//! - `rate_limited`: a 429 other than the daily quota (Cloudflare's API limit, code 971, or
//!   Workers AI's "Out of capacity", 3040), after the retries;
//! - `quota_exhausted`: 429 with Workers AI's code 3036, "you have used up your daily free
//!   allocation of 10,000 neurons" (<https://developers.cloudflare.com/workers-ai/platform/errors/>);
//! - `unreachable`: no answer (connection failures, timeouts).
//!
//! Other failures (401/403 token problems, 400 bad input, 404 unknown model, malformed
//! answers) are returned as they are: they need fixing, and a silent local fallback would
//! hide them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use cloudflare_ai::AiError;
use cloudflare_http::CloudflareError;
use memory_embed::{EmbedError, Embedder};
use serde_json::{Map, Value, json};

use super::{LocalEquivalent, RawError, WorkersAiEmbedder};

/// Workers AI's error code for an exhausted daily free allocation (HTTP 429).
const QUOTA_EXHAUSTED_CODE: i64 = 3036;

/// The key of [`WorkersAiWithFallback`]'s entry in [`Embedder::report`].
pub const REPORT_KEY: &str = "embedding_fallback";

/// Why an embedding call fell back to the local model. Only these failures fall back;
/// request errors (401/403 token problems, 400 bad input, 404 unknown model, malformed
/// answers) are returned as they are, since a silent fallback would hide what needs fixing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FallbackReason {
    /// The circuit breaker for Workers AI was open; nothing was sent.
    BreakerOpen,
    /// Workers AI answered 5xx, after retries.
    ServerError,
    /// Workers AI answered 429 (not the daily quota), after retries.
    RateLimited,
    /// The account's daily free Workers AI allocation is used up (429, code 3036).
    QuotaExhausted,
    /// No answer: the connection failed or timed out.
    Unreachable,
}

impl FallbackReason {
    /// Every reason, in report order.
    pub const ALL: [Self; 5] = [
        Self::BreakerOpen,
        Self::ServerError,
        Self::RateLimited,
        Self::QuotaExhausted,
        Self::Unreachable,
    ];

    /// The name in reports: `breaker_open`, `server_error`, `rate_limited`,
    /// `quota_exhausted`, `unreachable`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BreakerOpen => "breaker_open",
            Self::ServerError => "server_error",
            Self::RateLimited => "rate_limited",
            Self::QuotaExhausted => "quota_exhausted",
            Self::Unreachable => "unreachable",
        }
    }

    /// The reason `e` warrants a fallback, or `None` when it must be reported instead.
    #[must_use]
    pub fn of(e: &AiError) -> Option<Self> {
        let AiError::Cloudflare(e) = e.root() else {
            return None;
        };
        match e {
            CloudflareError::CircuitOpen { .. } => Some(Self::BreakerOpen),
            CloudflareError::Transport { .. } | CloudflareError::Timeout { .. } => {
                Some(Self::Unreachable)
            }
            CloudflareError::Api { status, .. } | CloudflareError::Decode { status, .. } => {
                if status.as_u16() == 429 {
                    // Why by code: both limits answer 429, but the daily quota lasts until
                    // midnight UTC while the rate limit passes in seconds; the report tells
                    // an operator which one to act on.
                    if e.errors().iter().any(|m| m.code == QUOTA_EXHAUSTED_CODE) {
                        Some(Self::QuotaExhausted)
                    } else {
                        Some(Self::RateLimited)
                    }
                } else if status.is_server_error() {
                    Some(Self::ServerError)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

impl std::fmt::Display for FallbackReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many calls and texts fell back, by reason.
#[derive(Debug, Default)]
struct Counters {
    calls: [AtomicU64; FallbackReason::ALL.len()],
    texts: [AtomicU64; FallbackReason::ALL.len()],
    /// Calls where the local model failed too.
    local_failures: AtomicU64,
    /// The last Workers AI error that caused a fallback, with its reason.
    last: Mutex<Option<(FallbackReason, String)>>,
}

/// The Workers AI embedder with the local fallback: Workers AI is asked first, always; when
/// it fails for a [`FallbackReason`] and a local equivalent is configured, the same texts,
/// cut the same way, are embedded locally with the same weights and pooling, and counted by
/// reason in [`Embedder::report`] (under [`REPORT_KEY`]). Its model id and dimensions are
/// Workers AI's.
#[derive(Debug)]
pub struct WorkersAiWithFallback {
    primary: WorkersAiEmbedder,
    local: Option<LocalEquivalent>,
    /// Why there is no local model, when there is none.
    off_because: Option<String>,
    counters: Counters,
}

impl WorkersAiWithFallback {
    /// Workers AI falling back to `local`.
    #[must_use]
    pub fn new(primary: WorkersAiEmbedder, local: LocalEquivalent) -> Self {
        Self {
            primary,
            local: Some(local),
            off_because: None,
            counters: Counters::default(),
        }
    }

    /// Workers AI alone, reporting that the fallback is off and `why`.
    #[must_use]
    pub fn off(primary: WorkersAiEmbedder, why: impl Into<String>) -> Self {
        Self {
            primary,
            local: None,
            off_because: Some(why.into()),
            counters: Counters::default(),
        }
    }

    /// The Workers AI embedder.
    #[must_use]
    pub fn primary(&self) -> &WorkersAiEmbedder {
        &self.primary
    }

    /// The local equivalent, when the fallback is on.
    #[must_use]
    pub fn local(&self) -> Option<&LocalEquivalent> {
        self.local.as_ref()
    }

    /// Texts embedded locally because of `reason` so far.
    #[must_use]
    pub fn fallback_texts(&self, reason: FallbackReason) -> u64 {
        self.counters.texts[reason.index()].load(Ordering::Relaxed)
    }

    fn record(&self, reason: FallbackReason, texts: usize, error: &EmbedError) {
        let i = reason.index();
        self.counters.calls[i].fetch_add(1, Ordering::Relaxed);
        self.counters.texts[i].fetch_add(texts as u64, Ordering::Relaxed);
        *self
            .counters
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((reason, error.to_string()));
    }
}

#[async_trait]
impl Embedder for WorkersAiWithFallback {
    fn model_id(&self) -> &str {
        self.primary.model_id()
    }

    fn dimensions(&self) -> usize {
        self.primary.dimensions()
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let error = match self.primary.embed_raw(texts).await {
            Ok(vectors) => return Ok(vectors),
            Err(error) => error,
        };
        let reason = match &error {
            RawError::Api(e) => FallbackReason::of(e),
            RawError::Embed(_) => None,
        };
        let remote = self.primary.embed_error(texts.len(), error);
        let (Some(reason), Some(local)) = (reason, &self.local) else {
            return Err(remote);
        };
        // The local model gets the texts Workers AI would have read, cut the same way, so
        // both sides embed the same tokens.
        let cut: Vec<String> = texts
            .iter()
            .map(|t| self.primary.cut(t).to_owned())
            .collect();
        match local.embed(&cut).await {
            Ok(vectors) => {
                tracing::warn!(
                    %reason,
                    texts = texts.len(),
                    local_model = local.local().model_id(),
                    error = %remote,
                    "Workers AI failed; embedded with the local equivalent"
                );
                self.record(reason, texts.len(), &remote);
                Ok(vectors)
            }
            Err(e) => {
                self.counters.local_failures.fetch_add(1, Ordering::Relaxed);
                Err(EmbedError::Other(format!(
                    "{remote}; the local fallback ({}) failed too: {e}; fix the local model \
                     files or set CLOUDFLARE_EMBEDDING_FALLBACK=off",
                    local.local().model_id()
                )))
            }
        }
    }

    fn report(&self) -> Map<String, Value> {
        let entry = match &self.local {
            None => json!({
                "mode": "off",
                "why": self.off_because.clone().unwrap_or_default(),
            }),
            Some(local) => {
                let mut by_reason = Map::new();
                let (mut calls, mut texts) = (0, 0);
                for reason in FallbackReason::ALL {
                    let i = reason.index();
                    let n = self.counters.texts[i].load(Ordering::Relaxed);
                    calls += self.counters.calls[i].load(Ordering::Relaxed);
                    texts += n;
                    by_reason.insert(reason.as_str().to_owned(), json!(n));
                }
                let last = self
                    .counters
                    .last
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                json!({
                    "mode": "local",
                    "local_model": local.local().model_id(),
                    "pooling": match local.local().pooling_override() {
                        Some(memory_embed::Pooling::Cls) => "cls",
                        _ => "mean",
                    },
                    "calls": calls,
                    "texts": texts,
                    "texts_by_reason": by_reason,
                    "local_failures": self.counters.local_failures.load(Ordering::Relaxed),
                    "last_reason": last.as_ref().map(|(r, _)| r.as_str()),
                    "last_error": last.map(|(_, e)| e),
                })
            }
        };
        let mut report = Map::new();
        report.insert(REPORT_KEY.to_owned(), entry);
        report
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use cloudflare_ai::{EmbeddingModel, MockWorkersAiApi, Pooling};
    use cloudflare_http::ApiMessage;
    use http::StatusCode;

    use super::*;
    use crate::embedder::fallback_embedder_in;

    fn api_error(status: StatusCode, code: i64) -> AiError {
        AiError::Cloudflare(CloudflareError::Api {
            status,
            errors: vec![ApiMessage {
                code,
                message: "x".into(),
            }],
            retry_after: None,
        })
    }

    #[test]
    fn reasons_follow_the_failure() {
        let cases = [
            (
                api_error(StatusCode::SERVICE_UNAVAILABLE, 7009),
                Some(FallbackReason::ServerError),
            ),
            (
                api_error(StatusCode::INTERNAL_SERVER_ERROR, 10002),
                Some(FallbackReason::ServerError),
            ),
            (
                api_error(StatusCode::TOO_MANY_REQUESTS, 971),
                Some(FallbackReason::RateLimited),
            ),
            (
                api_error(StatusCode::TOO_MANY_REQUESTS, 3040),
                Some(FallbackReason::RateLimited),
            ),
            (
                api_error(StatusCode::TOO_MANY_REQUESTS, 3036),
                Some(FallbackReason::QuotaExhausted),
            ),
            (
                AiError::Cloudflare(CloudflareError::CircuitOpen {
                    service: "ai",
                    retry_in: Duration::from_secs(1),
                }),
                Some(FallbackReason::BreakerOpen),
            ),
            (
                AiError::Cloudflare(CloudflareError::Timeout {
                    after: Duration::from_secs(1),
                }),
                Some(FallbackReason::Unreachable),
            ),
            (api_error(StatusCode::FORBIDDEN, 10000), None),
            (api_error(StatusCode::BAD_REQUEST, 5006), None),
            (AiError::EmptyText { index: 0 }, None),
        ];
        for (error, want) in cases {
            assert_eq!(FallbackReason::of(&error), want, "{error}");
        }
    }

    fn failing_api(error: fn() -> AiError) -> WorkersAiEmbedder {
        let mut api = MockWorkersAiApi::new();
        api.expect_model()
            .return_const(EmbeddingModel::BGE_SMALL_EN_V1_5);
        api.expect_embed().returning(move |_| Err(error()));
        WorkersAiEmbedder::new(Arc::new(api))
    }

    /// The MiniLM files stand in for bge-small's (same size, same vocabulary): the test
    /// checks the plumbing, not BGE's vectors.
    fn minilm_as_bge_small() -> LocalEquivalent {
        let dir = memory_embed::ModelLocation::resolve(memory_embed::DEFAULT_MODEL_ID)
            .unwrap_or_else(|e| panic!("run `cargo xtask fetch-model`: {e}"))
            .dir;
        fallback_embedder_in(&EmbeddingModel::BGE_SMALL_EN_V1_5, Pooling::Mean, Some(dir)).unwrap()
    }

    #[tokio::test]
    async fn a_quota_error_falls_back_and_is_counted_by_reason() {
        let e = WorkersAiWithFallback::new(
            failing_api(|| api_error(StatusCode::TOO_MANY_REQUESTS, 3036)),
            minilm_as_bge_small(),
        );
        let texts = vec!["a note".to_owned(), "another".to_owned()];
        let vectors = e.embed(&texts).await.unwrap();
        assert_eq!((vectors.len(), vectors[0].len()), (2, 384));
        assert_eq!(e.fallback_texts(FallbackReason::QuotaExhausted), 2);
        let report = Value::Object(e.report());
        let entry = &report[REPORT_KEY];
        assert_eq!(entry["mode"], "local");
        assert_eq!(entry["texts"], 2);
        assert_eq!(entry["calls"], 1);
        assert_eq!(entry["texts_by_reason"]["quota_exhausted"], 2);
        assert_eq!(entry["last_reason"], "quota_exhausted");
        assert_eq!(entry["pooling"], "mean");
    }

    #[tokio::test]
    async fn a_request_error_is_returned_not_hidden() {
        let e = WorkersAiWithFallback::new(
            failing_api(|| api_error(StatusCode::FORBIDDEN, 10000)),
            minilm_as_bge_small(),
        );
        let err = e.embed(&["x".to_owned()]).await.unwrap_err().to_string();
        assert!(err.contains("Workers AI Read"), "{err}");
        let report = Value::Object(e.report());
        assert_eq!(report[REPORT_KEY]["texts"], 0);
    }

    #[tokio::test]
    async fn off_reports_why_and_passes_failures_through() {
        let e = WorkersAiWithFallback::off(
            failing_api(|| api_error(StatusCode::SERVICE_UNAVAILABLE, 7009)),
            "CLOUDFLARE_EMBEDDING_FALLBACK=off",
        );
        assert!(e.embed(&["x".to_owned()]).await.is_err());
        let report = Value::Object(e.report());
        assert_eq!(report[REPORT_KEY]["mode"], "off");
        assert_eq!(
            report[REPORT_KEY]["why"],
            "CLOUDFLARE_EMBEDDING_FALLBACK=off"
        );
    }
}
