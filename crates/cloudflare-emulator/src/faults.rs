//! Fault injection: added latency, error answers at a rate, connection resets, hangs and
//! "fail the next N requests", per path pattern and method, deterministic under
//! [`EmulatorConfig::seed`](crate::EmulatorConfig::seed).
//!
//! A [`FaultRule`] matches a request when its `method` (if any) equals the request's and its
//! `path` matches the request path after `/client/v4` (e.g.
//! `/accounts/023e…/d1/database/x/query`): a pattern with `*` (any run of characters, `/`
//! included) or `?` (one character) is a glob over the whole path; a pattern without them
//! matches as a substring; the empty pattern matches every path. Only `/client/v4` requests
//! are subject to faults (the `/__emulator` control endpoints never are).
//!
//! For each request the rules are visited in the order they were added: every matching
//! latency rule adds its delay (fixed + uniform jitter); the first matching rule that
//! decides the request's fate (an error, a reset, a hang, a pending "fail next") wins. Each
//! matching rule with a `rate` draws one number from the emulator's random generator
//! (`StdRng` seeded with `config.seed`) whether or not an earlier rule already decided, so the
//! same seed and the same sequence of requests give the same faults; [`FaultHandle::clear`]
//! rewinds the generator to the seed.
//!
//! Error answers are Cloudflare envelopes: 429 → code 971 `Please wait and consider
//! throttling your request speed` with `retry-after`; 503 → code 7009 `Upstream service
//! unavailable` (the code Workers AI uses); 500 and any other status → code 10002 `An
//! internal error occurred` (Cloudflare documents no code for its generic 5xx; this one is
//! the emulator's choice). A `quota_exhausted` rule answers like Workers AI once an
//! account's daily free allocation is spent: 429, code 3036 `You have used up your daily
//! free allocation of 10,000 neurons…`, no `retry-after` (the allocation resets at 00:00
//! UTC; <https://developers.cloudflare.com/workers-ai/platform/errors/>). A reset drops the connection without an answer (the response body
//! fails before anything is written, so hyper aborts the connection and the client sees a
//! transport error). A hang waits up to [`MAX_FAULT_DELAY`] (10 minutes) before answering
//! normally, and ends with a reset when the emulator shuts down.
//!
//! JSON form (the control endpoint `POST /__emulator/faults` takes it):
//!
//! ```json
//! {"path": "/d1/database/*/query", "method": "POST", "type": "error", "status": 503, "rate": 0.25}
//! {"path": "vectorize", "type": "latency", "fixed_ms": 200, "jitter_ms": 50}
//! {"type": "reset", "rate": 1.0}
//! {"type": "hang", "seconds": 600}
//! {"type": "fail_next", "count": 3, "status": 500}
//! {"path": "/ai/run/", "type": "quota_exhausted"}
//! ```

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::auth::API_PREFIX;
use crate::counters::ResetMarker;
use crate::envelope::ApiError;

/// The longest delay a fault may add (latency or hang): 10 minutes.
pub(crate) const MAX_FAULT_DELAY: Duration = Duration::from_secs(600);

fn one() -> f64 {
    1.0
}

fn default_hang_seconds() -> u64 {
    MAX_FAULT_DELAY.as_secs()
}

fn default_retry_after() -> u64 {
    1
}

/// What a rule does to the requests it matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Fault {
    /// Delays the answer by `fixed_ms` plus a uniform draw in `0..=jitter_ms`.
    Latency {
        /// Fixed delay, milliseconds.
        #[serde(default)]
        fixed_ms: u64,
        /// Upper bound of the uniform jitter, milliseconds.
        #[serde(default)]
        jitter_ms: u64,
    },
    /// Answers a fraction `rate` of requests with `status` (a Cloudflare error envelope).
    Error {
        /// HTTP status, 400–599 (429, 500 and 503 are the usual ones).
        status: u16,
        /// Fraction of matching requests that fail, 0–1.
        #[serde(default = "one")]
        rate: f64,
        /// `retry-after` seconds of a 429.
        #[serde(default = "default_retry_after")]
        retry_after: u64,
    },
    /// Drops the connection without answering a fraction `rate` of requests.
    Reset {
        /// Fraction, 0–1.
        #[serde(default = "one")]
        rate: f64,
    },
    /// Holds a fraction `rate` of requests for `seconds` (≤ 600) before answering.
    Hang {
        /// Fraction, 0–1.
        #[serde(default = "one")]
        rate: f64,
        /// How long, seconds (at most 600).
        #[serde(default = "default_hang_seconds")]
        seconds: u64,
    },
    /// Answers a fraction `rate` of requests like Workers AI with an exhausted daily free
    /// allocation: 429, code 3036, no `retry-after`.
    QuotaExhausted {
        /// Fraction, 0–1.
        #[serde(default = "one")]
        rate: f64,
    },
    /// Answers exactly the next `count` matching requests with `status`, then nothing.
    FailNext {
        /// How many requests fail.
        count: u32,
        /// HTTP status, 400–599.
        status: u16,
        /// `retry-after` seconds of a 429.
        #[serde(default = "default_retry_after")]
        retry_after: u64,
    },
}

/// One fault injection rule: which requests (path pattern, method) and what happens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// Path pattern after `/client/v4`: a glob with `*` / `?`, otherwise a substring;
    /// empty = every path.
    #[serde(default)]
    pub path: String,
    /// HTTP method (case-insensitive); `None` = any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The fault.
    #[serde(flatten)]
    pub fault: Fault,
}

/// A rule the emulator refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fault rule: {0}")]
pub struct InvalidFault(pub String);

impl FaultRule {
    /// A rule matching `path` (any method) with `fault`.
    pub fn new(path: impl Into<String>, fault: Fault) -> Self {
        Self {
            path: path.into(),
            method: None,
            fault,
        }
    }

    /// Added latency: `fixed` plus uniform jitter up to `jitter`.
    pub fn latency(path: impl Into<String>, fixed: Duration, jitter: Duration) -> Self {
        Self::new(
            path,
            Fault::Latency {
                fixed_ms: u64::try_from(fixed.as_millis()).unwrap_or(u64::MAX),
                jitter_ms: u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX),
            },
        )
    }

    /// Error answers with `status` at `rate` (a 429 carries `retry-after: 1`).
    pub fn error(path: impl Into<String>, status: u16, rate: f64) -> Self {
        Self::new(
            path,
            Fault::Error {
                status,
                rate,
                retry_after: default_retry_after(),
            },
        )
    }

    /// Workers AI's spent daily allocation (429, code 3036) at `rate`.
    pub fn quota_exhausted(path: impl Into<String>, rate: f64) -> Self {
        Self::new(path, Fault::QuotaExhausted { rate })
    }

    /// Connection resets at `rate`.
    pub fn reset(path: impl Into<String>, rate: f64) -> Self {
        Self::new(path, Fault::Reset { rate })
    }

    /// Hangs of `duration` (at most 600 seconds) at `rate`.
    pub fn hang(path: impl Into<String>, rate: f64, duration: Duration) -> Self {
        Self::new(
            path,
            Fault::Hang {
                rate,
                seconds: duration.as_secs().max(1),
            },
        )
    }

    /// The next `count` matching requests fail with `status`.
    pub fn fail_next(path: impl Into<String>, count: u32, status: u16) -> Self {
        Self::new(
            path,
            Fault::FailNext {
                count,
                status,
                retry_after: default_retry_after(),
            },
        )
    }

    /// Restricts the rule to `method`.
    #[must_use]
    pub fn with_method(mut self, method: impl AsRef<str>) -> Self {
        self.method = Some(method.as_ref().to_owned());
        self
    }

    /// Checks rates (0–1), statuses (400–599) and delays (≤ 10 minutes).
    ///
    /// # Errors
    ///
    /// [`InvalidFault`] naming the first problem.
    pub fn validate(&self) -> Result<(), InvalidFault> {
        let rate_ok = |rate: f64| rate.is_finite() && (0.0..=1.0).contains(&rate);
        let status_ok = |status: u16| (400..=599).contains(&status);
        let max_ms = u64::try_from(MAX_FAULT_DELAY.as_millis()).unwrap_or(u64::MAX);
        match &self.fault {
            Fault::Latency {
                fixed_ms,
                jitter_ms,
            } => {
                if fixed_ms.saturating_add(*jitter_ms) > max_ms {
                    return Err(InvalidFault(format!(
                        "latency fixed_ms + jitter_ms must be at most {max_ms}"
                    )));
                }
            }
            Fault::Error { status, rate, .. } => {
                if !status_ok(*status) {
                    return Err(InvalidFault(format!("status {status} is not 400-599")));
                }
                if !rate_ok(*rate) {
                    return Err(InvalidFault(format!("rate {rate} is not within 0-1")));
                }
            }
            Fault::Reset { rate } | Fault::QuotaExhausted { rate } => {
                if !rate_ok(*rate) {
                    return Err(InvalidFault(format!("rate {rate} is not within 0-1")));
                }
            }
            Fault::Hang { rate, seconds } => {
                if !rate_ok(*rate) {
                    return Err(InvalidFault(format!("rate {rate} is not within 0-1")));
                }
                if *seconds > MAX_FAULT_DELAY.as_secs() {
                    return Err(InvalidFault(format!(
                        "hang seconds must be at most {}",
                        MAX_FAULT_DELAY.as_secs()
                    )));
                }
            }
            Fault::FailNext { status, .. } => {
                if !status_ok(*status) {
                    return Err(InvalidFault(format!("status {status} is not 400-599")));
                }
            }
        }
        if let Some(method) = &self.method
            && http::Method::from_bytes(method.as_bytes()).is_err()
        {
            return Err(InvalidFault(format!("{method:?} is not an HTTP method")));
        }
        Ok(())
    }

    fn matches(&self, method: &http::Method, path: &str) -> bool {
        if let Some(m) = &self.method
            && !m.eq_ignore_ascii_case(method.as_str())
        {
            return false;
        }
        path_matches(&self.path, path)
    }
}

/// Whether `pattern` (a glob with `*`/`?`, else a substring) matches `path`.
pub(crate) fn path_matches(pattern: &str, path: &str) -> bool {
    if pattern.contains(['*', '?']) {
        glob(pattern.as_bytes(), path.as_bytes())
    } else {
        path.contains(pattern)
    }
}

/// Iterative wildcard match (`*` any run, `?` one byte) with single-star backtracking.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// A rule with its id and, for `fail_next`, how many failures are left.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActiveRule {
    /// The id [`FaultHandle::add`] returned.
    pub id: u64,
    /// The rule.
    #[serde(flatten)]
    pub rule: FaultRule,
    /// `fail_next` failures still to come.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u32>,
}

#[derive(Debug)]
struct FaultState {
    seed: u64,
    rng: StdRng,
    next_id: u64,
    rules: Vec<ActiveRule>,
}

/// The fate of one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decision {
    pub latency: Duration,
    pub action: Option<Action>,
}

/// A fault that replaces the normal answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    Error { status: u16, retry_after: u64 },
    QuotaExhausted,
    Reset,
    Hang(Duration),
}

/// A shared, cloneable handle on the emulator's fault rules.
#[derive(Debug, Clone)]
pub struct FaultHandle {
    inner: Arc<Mutex<FaultState>>,
}

impl FaultHandle {
    /// No rules; random draws seeded with `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(FaultState {
                seed,
                rng: StdRng::seed_from_u64(seed),
                next_id: 1,
                rules: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a rule (after every existing one); returns its id.
    ///
    /// # Errors
    ///
    /// [`InvalidFault`] when [`FaultRule::validate`] refuses it.
    pub fn add(&self, rule: FaultRule) -> Result<u64, InvalidFault> {
        rule.validate()?;
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        let remaining = match rule.fault {
            Fault::FailNext { count, .. } => Some(count),
            _ => None,
        };
        state.rules.push(ActiveRule {
            id,
            rule,
            remaining,
        });
        Ok(id)
    }

    /// Removes the rule `id`; whether it existed.
    pub fn remove(&self, id: u64) -> bool {
        let mut state = self.lock();
        let before = state.rules.len();
        state.rules.retain(|r| r.id != id);
        state.rules.len() != before
    }

    /// Removes every rule and rewinds the random generator to the seed.
    pub fn clear(&self) {
        let mut state = self.lock();
        state.rules.clear();
        state.rng = StdRng::seed_from_u64(state.seed);
    }

    /// The rules in force, in order.
    #[must_use]
    pub fn rules(&self) -> Vec<ActiveRule> {
        self.lock().rules.clone()
    }

    /// Decides the fate of a request (`path` after `/client/v4`).
    pub(crate) fn decide(&self, method: &http::Method, path: &str) -> Decision {
        let mut state = self.lock();
        let FaultState { rng, rules, .. } = &mut *state;
        let mut latency = Duration::ZERO;
        let mut action = None;
        for active in rules.iter_mut() {
            if !active.rule.matches(method, path) {
                continue;
            }
            match &active.rule.fault {
                Fault::Latency {
                    fixed_ms,
                    jitter_ms,
                } => {
                    let jitter = if *jitter_ms > 0 {
                        rng.random_range(0..=*jitter_ms)
                    } else {
                        0
                    };
                    latency += Duration::from_millis(fixed_ms.saturating_add(jitter));
                }
                Fault::Error {
                    status,
                    rate,
                    retry_after,
                } => {
                    let hit = rng.random::<f64>() < *rate;
                    if hit && action.is_none() {
                        action = Some(Action::Error {
                            status: *status,
                            retry_after: *retry_after,
                        });
                    }
                }
                Fault::Reset { rate } => {
                    let hit = rng.random::<f64>() < *rate;
                    if hit && action.is_none() {
                        action = Some(Action::Reset);
                    }
                }
                Fault::QuotaExhausted { rate } => {
                    let hit = rng.random::<f64>() < *rate;
                    if hit && action.is_none() {
                        action = Some(Action::QuotaExhausted);
                    }
                }
                Fault::Hang { rate, seconds } => {
                    let hit = rng.random::<f64>() < *rate;
                    if hit && action.is_none() {
                        let d = Duration::from_secs(*seconds).min(MAX_FAULT_DELAY);
                        action = Some(Action::Hang(d));
                    }
                }
                Fault::FailNext {
                    status,
                    retry_after,
                    ..
                } => {
                    if action.is_none()
                        && let Some(left) = active.remaining.as_mut().filter(|l| **l > 0)
                    {
                        *left -= 1;
                        action = Some(Action::Error {
                            status: *status,
                            retry_after: *retry_after,
                        });
                    }
                }
            }
        }
        rules.retain(|r| r.remaining != Some(0));
        Decision {
            latency: latency.min(MAX_FAULT_DELAY),
            action,
        }
    }
}

/// The Cloudflare envelope of an injected error.
pub(crate) fn error_answer(status: u16, retry_after: u64) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let error = match status {
        429 => ApiError::new(
            code,
            971,
            "Please wait and consider throttling your request speed",
        )
        .with_header("retry-after", retry_after.to_string()),
        503 => ApiError::new(code, 7009, "Upstream service unavailable"),
        _ => ApiError::new(code, 10002, "An internal error occurred"),
    };
    error.into_response()
}

/// Workers AI's answer once the account's daily free allocation is spent.
pub(crate) fn quota_answer() -> Response {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        3036,
        "You have used up your daily free allocation of 10,000 neurons. Please upgrade to \
         Cloudflare's Workers Paid plan if you would like to continue usage.",
    )
    .into_response()
}

/// A response whose body fails before any byte is sent: hyper aborts the connection and the
/// client sees a transport error instead of an answer.
pub(crate) fn reset_answer() -> Response {
    let body = Body::from_stream(futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by fault injection",
        ))
    }));
    let mut response = Response::new(body);
    response.extensions_mut().insert(ResetMarker);
    response
}

/// State of the fault middleware.
#[derive(Debug, Clone)]
pub(crate) struct FaultLayer {
    pub handle: FaultHandle,
    pub shutdown: watch::Receiver<bool>,
}

/// Waits for `d`; `false` if the emulator began shutting down first.
async fn wait(d: Duration, shutdown: &watch::Receiver<bool>) -> bool {
    if d.is_zero() {
        return true;
    }
    let mut shutdown = shutdown.clone();
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        _ = shutdown.wait_for(|stopping| *stopping) => false,
    }
}

/// The fault injection middleware (after the counters, before authentication).
pub(crate) async fn middleware(
    State(layer): State<FaultLayer>,
    request: Request,
    next: Next,
) -> Response {
    let Some(path) = request.uri().path().strip_prefix(API_PREFIX) else {
        return next.run(request).await;
    };
    let decision = layer.handle.decide(request.method(), path);
    if !wait(decision.latency, &layer.shutdown).await {
        return reset_answer();
    }
    match decision.action {
        None => next.run(request).await,
        Some(Action::Error {
            status,
            retry_after,
        }) => error_answer(status, retry_after),
        Some(Action::QuotaExhausted) => quota_answer(),
        Some(Action::Reset) => reset_answer(),
        Some(Action::Hang(d)) => {
            if wait(d, &layer.shutdown).await {
                next.run(request).await
            } else {
                reset_answer()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn globs_and_substrings() {
        assert!(path_matches("", "/anything"));
        assert!(path_matches("d1", "/accounts/a/d1/database/x/query"));
        assert!(!path_matches("r2", "/accounts/a/d1/database/x/query"));
        assert!(path_matches(
            "/accounts/*/d1/*/query",
            "/accounts/a/d1/database/x/query"
        ));
        assert!(!path_matches(
            "/accounts/*/d1/*/raw",
            "/accounts/a/d1/database/x/query"
        ));
        assert!(path_matches("*query", "/x/query"));
        assert!(path_matches("/x/quer?", "/x/query"));
        assert!(!path_matches("/x/quer?", "/x/quer"));
        assert!(path_matches("*", ""));
        assert!(path_matches("a*b*c", "aXXbYYbZc"));
    }

    #[test]
    fn same_seed_same_faults_and_clear_rewinds() {
        let run = |h: &FaultHandle| {
            (0..50)
                .map(|_| h.decide(&http::Method::GET, "/x").action.is_some())
                .collect::<Vec<_>>()
        };
        let a = FaultHandle::new(7);
        let b = FaultHandle::new(7);
        a.add(FaultRule::error("", 500, 0.5)).unwrap();
        b.add(FaultRule::error("", 500, 0.5)).unwrap();
        let seq = run(&a);
        assert_eq!(seq, run(&b));
        assert!(seq.iter().any(|x| *x) && seq.iter().any(|x| !*x), "{seq:?}");
        a.clear();
        a.add(FaultRule::error("", 500, 0.5)).unwrap();
        assert_eq!(seq, run(&a));
        let c = FaultHandle::new(8);
        c.add(FaultRule::error("", 500, 0.5)).unwrap();
        assert_ne!(seq, run(&c));
    }

    #[test]
    fn fail_next_fails_exactly_n_then_goes_away() {
        let h = FaultHandle::new(0);
        h.add(FaultRule::fail_next("d1", 3, 503).with_method("post"))
            .unwrap();
        assert_eq!(h.decide(&http::Method::GET, "/d1").action, None);
        for _ in 0..3 {
            assert_eq!(
                h.decide(&http::Method::POST, "/d1").action,
                Some(Action::Error {
                    status: 503,
                    retry_after: 1
                })
            );
        }
        assert_eq!(h.decide(&http::Method::POST, "/d1").action, None);
        assert!(h.rules().is_empty());
    }

    #[test]
    fn latency_adds_up_and_first_decisive_rule_wins() {
        let h = FaultHandle::new(0);
        h.add(FaultRule::latency(
            "",
            Duration::from_millis(100),
            Duration::ZERO,
        ))
        .unwrap();
        h.add(FaultRule::reset("", 1.0)).unwrap();
        h.add(FaultRule::latency(
            "",
            Duration::from_millis(50),
            Duration::from_millis(10),
        ))
        .unwrap();
        h.add(FaultRule::error("", 500, 1.0)).unwrap();
        let d = h.decide(&http::Method::GET, "/x");
        assert!(d.latency >= Duration::from_millis(150) && d.latency <= Duration::from_millis(160));
        assert_eq!(d.action, Some(Action::Reset));
        assert!(h.remove(2));
        assert!(!h.remove(2));
        let d = h.decide(&http::Method::GET, "/x");
        assert!(matches!(d.action, Some(Action::Error { status: 500, .. })));
    }

    #[test]
    fn quota_exhausted_answers_like_workers_ai() {
        let rule: FaultRule =
            serde_json::from_str(r#"{"path": "/ai/run/", "type": "quota_exhausted"}"#).unwrap();
        assert_eq!(rule, FaultRule::quota_exhausted("/ai/run/", 1.0));
        assert!(FaultRule::quota_exhausted("", 2.0).validate().is_err());
        let h = FaultHandle::new(0);
        h.add(rule).unwrap();
        assert_eq!(h.decide(&http::Method::POST, "/d1").action, None);
        assert_eq!(
            h.decide(&http::Method::POST, "/accounts/a/ai/run/@cf/x")
                .action,
            Some(Action::QuotaExhausted)
        );
        let answer = quota_answer();
        assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(answer.headers().get("retry-after").is_none());
    }

    #[test]
    fn validation() {
        assert!(FaultRule::error("", 200, 0.5).validate().is_err());
        assert!(FaultRule::error("", 503, 1.5).validate().is_err());
        assert!(FaultRule::error("", 503, f64::NAN).validate().is_err());
        assert!(FaultRule::reset("", -0.1).validate().is_err());
        assert!(
            FaultRule::hang("", 1.0, Duration::from_secs(601))
                .validate()
                .is_err()
        );
        assert!(
            FaultRule::latency("", Duration::from_secs(600), Duration::from_millis(1))
                .validate()
                .is_err()
        );
        assert!(
            FaultRule::reset("", 1.0)
                .with_method("NOT A METHOD")
                .validate()
                .is_err()
        );
        assert!(FaultRule::fail_next("", 1, 429).validate().is_ok());
    }

    #[test]
    fn json_form() {
        let rule: FaultRule = serde_json::from_str(
            r#"{"path": "/d1/*", "method": "POST", "type": "error", "status": 503, "rate": 0.25}"#,
        )
        .unwrap();
        assert_eq!(rule, {
            let mut r = FaultRule::error("/d1/*", 503, 0.25).with_method("POST");
            r.method = Some("POST".into());
            r
        });
        let rule: FaultRule = serde_json::from_str(r#"{"type": "hang"}"#).unwrap();
        assert_eq!(
            rule.fault,
            Fault::Hang {
                rate: 1.0,
                seconds: 600
            }
        );
        let back: FaultRule = serde_json::from_value(serde_json::to_value(&rule).unwrap()).unwrap();
        assert_eq!(back, rule);
        assert!(serde_json::from_str::<FaultRule>(r#"{"type": "nope"}"#).is_err());
    }

    proptest! {
        #[test]
        fn glob_star_matches_everything(text in "\\PC{0,40}") {
            prop_assert!(path_matches("*", &text));
        }

        #[test]
        fn glob_literal_is_equality(a in "[a-z/]{0,12}", b in "[a-z/]{0,12}") {
            let pattern = format!("{a}?");
            let text = format!("{b}x");
            prop_assert_eq!(path_matches(&pattern, &text), a == b);
        }

        #[test]
        fn glob_prefix_star(prefix in "[a-z/]{0,12}", rest in "\\PC{0,20}") {
            let pattern = format!("{prefix}*");
            let text = format!("{prefix}{rest}");
            prop_assert!(path_matches(&pattern, &text));
        }
    }
}
