//! Test support for the Cloudflare clients: [`Prism`], a mock server of Cloudflare's
//! official OpenAPI spec (the subset in `spec/`), started per test on 127.0.0.1 and
//! killed when dropped, with a client that records every spec violation Prism reports.
//!
//! Prism answers every path of the spec with a schema-valid example and refuses a request
//! that breaks the spec with 422 and an `sl-violations` header; [`Prism::client`]
//! records those, so a test ends with [`Prism::assert_no_violations`].
//!
//! Where Prism comes from, first found wins: `PRISM_BIN`; the per-user tool cache
//! (`<cache>/mcp-memory/tools/prism/node_modules/.bin/prism`, filled by
//! `cargo xtask fetch-prism`); `prism` on `PATH` (`find_prism`).
//!
//! Tests that need Prism go inside [`prism_tests!`]: when this crate was built without
//! Prism and without `CI`, they are compiled `#[ignore]`d, so the test runner reports them
//! as ignored (never as passed); under `CI` they always run, and a missing Prism fails them.
//! The build script decides, with the same search (`find_prism`'s source file).

// `pub` is for other crates: an item no other crate can reach is `pub(crate)`.
#![warn(unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cloudflare_http::{
    ApiToken, Client, ClientBuilder, ClientConfig, HttpRequest, HttpResponse, HttpService,
    Operation,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tower::ServiceExt;

/// The account id the spec's examples use; any 32-hex id would do.
pub const PRISM_ACCOUNT_ID: &str = "023e105f4ecef8ad9ca31a8372d0c353";

/// The token [`Prism::client`] sends (Prism only checks that one is present).
pub(crate) const PRISM_TOKEN: &str = "prism-test-token-0000";

/// How long Prism may take to load the spec and listen.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The OpenAPI subset shipped with this crate (a copy of Cloudflare's official spec,
/// cut to the paths the clients call).
#[must_use]
pub(crate) fn spec_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("spec")
        .join("cloudflare-openapi-subset.json")
}

/// Where Prism is found: the one search, shared with the build script.
mod locate;

use locate::{PRISM_BIN_ENV, find_prism};

/// Wraps tests that need Prism. Built without Prism (and without `CI`), each is marked
/// `#[ignore = "Prism is not installed…"]`, so `cargo test` and `cargo nextest` report it as
/// ignored; otherwise the tests are left as they are (and fail if Prism cannot start).
///
/// Two forms: items (test functions, with their own `#[test]`/`#[tokio::test]`), or one
/// invocation of a macro that takes trailing `#[attr]`s, which gets the `#[ignore]` added
/// to its arguments (for generated suites such as `memory_storage::conformance_tests!`).
///
/// ```ignore
/// cloudflare_testkit::prism_tests! {
///     #[tokio::test]
///     async fn every_operation_conforms_to_the_spec() {
///         let prism = Prism::start().await;
///         // ...
///     }
/// }
/// cloudflare_testkit::prism_tests!(suite memory_storage::conformance_tests!(prism_store));
/// ```
#[cfg(prism)]
#[macro_export]
macro_rules! prism_tests {
    (suite $($mac:ident)::+ ! ( $($args:tt)* )) => {
        $($mac)::+ ! ( $($args)* );
    };
    ($($item:item)*) => {
        $($item)*
    };
}

/// Wraps tests that need Prism (this build has no Prism: they are ignored).
#[cfg(not(prism))]
#[macro_export]
macro_rules! prism_tests {
    (suite $($mac:ident)::+ ! ( $($args:tt)* )) => {
        $($mac)::+ ! ( $($args)*, #[ignore = "Prism is not installed: run `cargo xtask fetch-prism` (needs npm) or set PRISM_BIN"] );
    };
    ($($item:item)*) => {
        $(
            #[ignore = "Prism is not installed: run `cargo xtask fetch-prism` (needs npm) or set PRISM_BIN"]
            $item
        )*
    };
}

/// A running `prism mock` of the spec in `spec/` on a free 127.0.0.1 port; killed on drop.
#[derive(Debug)]
pub struct Prism {
    port: u16,
    violations: ViolationLog,
    _child: Child,
}

impl Prism {
    /// Starts Prism and waits until it listens. Call it only from tests inside
    /// [`prism_tests!`], which are ignored when Prism is not installed.
    ///
    /// # Panics
    ///
    /// When Prism is not installed (possible only under `CI`, or if it was removed after
    /// the build), fails to start, or does not listen within a minute.
    pub async fn start() -> Self {
        Self::spawn(&["mock"], None).await
    }

    /// Starts `prism proxy --errors` in front of `upstream` (e.g. an emulator's
    /// `http://127.0.0.1:PORT/client/v4`): it forwards every request and answers 500 with a
    /// JSON list of violations when the request or the upstream's response breaks the spec.
    ///
    /// # Panics
    ///
    /// As [`Prism::start`].
    pub async fn start_proxy(upstream: &str) -> Self {
        Self::spawn(&["proxy", "--errors"], Some(upstream)).await
    }

    async fn spawn(mode: &[&str], upstream: Option<&str>) -> Self {
        let bin = find_prism().unwrap_or_else(|| {
            panic!(
                "Prism is not installed: run `cargo xtask fetch-prism` (needs npm) or set \
                 {PRISM_BIN_ENV}{}",
                if locate::under_ci() {
                    " (CI is set, so the Prism tests must run)"
                } else {
                    ""
                }
            )
        });
        let port = free_port();
        let mut child = Command::new(&bin)
            .args(mode)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .arg(spec_path())
            .args(upstream)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut lines = BufReader::new(stdout).lines();
        let waited = tokio::time::timeout(STARTUP_TIMEOUT, async {
            let mut seen = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("Prism is listening") {
                    return Ok(());
                }
                seen.push(line);
            }
            Err(seen)
        })
        .await;
        match waited {
            Ok(Ok(())) => {}
            Ok(Err(seen)) => {
                let mut err = String::new();
                let mut stderr = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = stderr.next_line().await {
                    err.push_str(&line);
                    err.push('\n');
                }
                panic!("Prism exited before listening:\n{}\n{err}", seen.join("\n"));
            }
            Err(_) => panic!("Prism did not listen within {STARTUP_TIMEOUT:?}"),
        }
        // Keep draining Prism's output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(_)) = lines.next_line().await {}
        });
        Self {
            port,
            violations: ViolationLog::default(),
            _child: child,
        }
    }

    /// Prism's base URL (`http://127.0.0.1:PORT`; Prism serves the spec's paths without
    /// the `/client/v4` prefix).
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A config for the mock: [`PRISM_ACCOUNT_ID`], a fixed token, no retries and no rate
    /// limit (a violation must show up at once, not after backoff).
    #[must_use]
    pub fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(PRISM_ACCOUNT_ID, ApiToken::new(PRISM_TOKEN))
            .with_base_url(self.base_url().parse().expect("a valid URL"));
        config.retry.max_retries = 0;
        config.rate_limit = None;
        config.request_timeout = Duration::from_secs(20);
        config
    }

    /// A client for the mock (see [`Prism::config`]) that records every violation.
    ///
    /// # Panics
    ///
    /// Never for the built-in config.
    #[must_use]
    pub fn client(&self) -> Client {
        self.builder()
            .build()
            .expect("the Prism client config is valid")
    }

    /// A builder for the mock with the violation recorder installed, to add layers.
    #[must_use]
    pub fn builder(&self) -> ClientBuilder {
        ClientBuilder::new(self.config()).with_layer(self.violations.recorder(None))
    }

    /// Every violation recorded so far: `"<operation> <method> <path>: <what>"`.
    #[must_use]
    pub fn violations(&self) -> Vec<String> {
        self.violations.violations()
    }

    /// # Panics
    ///
    /// If Prism flagged any request, listing each.
    pub fn assert_no_violations(&self) {
        self.violations.assert_no_violations();
    }
}

/// What Prism flagged in one answer, if anything — the one rule every harness uses: an
/// `sl-violations` header (`prism proxy` found the request or the response off the spec), or
/// one of Prism's problem documents (`https://stoplight.io/prism/errors#…`) as a 422 (a
/// request violation) or a 500 (an upstream response violation under `--errors`). The text
/// names the status, the header and up to 1,000 characters of the body.
#[must_use]
pub fn prism_violation(
    headers: &http::HeaderMap,
    status: http::StatusCode,
    body: &[u8],
) -> Option<String> {
    let header = headers
        .get("sl-violations")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let text = String::from_utf8_lossy(body);
    let problem = text.contains("stoplight.io/prism/errors")
        && matches!(
            status,
            http::StatusCode::UNPROCESSABLE_ENTITY | http::StatusCode::INTERNAL_SERVER_ERROR
        );
    if header.is_none() && !problem {
        return None;
    }
    let excerpt: String = text.chars().take(1000).collect();
    Some(format!("{status} {} {excerpt}", header.unwrap_or_default()))
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("127.0.0.1 has a free port")
}

/// Calls that skip Prism: the operations the function accepts go through the client's stack.
pub type Bypass = (Client, fn(Operation) -> bool);

/// Where a test's clients record what Prism flagged: one log shared by every client of the
/// test (a Prism mock's, or a backend's whose calls go through `prism proxy`).
#[derive(Debug, Clone, Default)]
pub struct ViolationLog(Arc<Mutex<Vec<String>>>);

impl ViolationLog {
    /// A layer for [`ClientBuilder::with_layer`] that records every answer
    /// [`prism_violation`] flags as `"<operation> <method> <path>: <what>"`. With `bypass`,
    /// the calls of operations its function accepts go through its client's stack instead
    /// (calls Prism cannot check).
    #[must_use]
    pub fn recorder(&self, bypass: Option<Bypass>) -> RecorderLayer {
        RecorderLayer {
            bypass,
            log: self.clone(),
        }
    }

    /// Every violation recorded so far.
    #[must_use]
    pub fn violations(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// # Panics
    ///
    /// If any answer was flagged, listing each.
    pub fn assert_no_violations(&self) {
        let violations = self.violations();
        assert!(
            violations.is_empty(),
            "{} answer(s) broke Cloudflare's OpenAPI spec:\n{}",
            violations.len(),
            violations.join("\n")
        );
    }

    fn record(&self, entry: String) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(entry);
    }
}

/// The layer of [`ViolationLog::recorder`].
#[derive(Clone)]
pub struct RecorderLayer {
    bypass: Option<Bypass>,
    log: ViolationLog,
}

impl tower::Layer<HttpService> for RecorderLayer {
    type Service = Recorder;

    fn layer(&self, inner: HttpService) -> Recorder {
        Recorder {
            inner,
            bypass: self.bypass.clone(),
            log: self.log.clone(),
        }
    }
}

/// The service of [`ViolationLog::recorder`]: records what Prism flagged in each answer.
#[derive(Clone)]
pub struct Recorder {
    inner: HttpService,
    bypass: Option<Bypass>,
    log: ViolationLog,
}

impl tower::Service<HttpRequest> for Recorder {
    type Response = HttpResponse;
    type Error = cloudflare_http::CloudflareError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let operation = Operation::of(&request);
        let what = format!("{operation} {} {}", request.method(), request.uri());
        let inner = match &self.bypass {
            Some((direct, bypasses)) if bypasses(operation) => {
                direct.service(operation.service).stack()
            }
            _ => self.inner.clone(),
        };
        let log = self.log.clone();
        Box::pin(async move {
            let response = inner.oneshot(request).await?;
            if let Some(found) =
                prism_violation(response.headers(), response.status(), response.body())
            {
                log.record(format!("{what}: {found}"));
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prism_violations_are_told_from_ordinary_answers() {
        let none = http::HeaderMap::new();
        let problem = br#"{"type":"https://stoplight.io/prism/errors#UNPROCESSABLE_ENTITY"}"#;
        assert!(prism_violation(&none, http::StatusCode::OK, b"{}").is_none());
        // An API's own 422 or 500 is an answer, not a violation.
        assert!(prism_violation(&none, http::StatusCode::UNPROCESSABLE_ENTITY, b"{}").is_none());
        let found = prism_violation(&none, http::StatusCode::UNPROCESSABLE_ENTITY, problem);
        assert!(found.is_some_and(|f| f.starts_with("422")));
        assert!(prism_violation(&none, http::StatusCode::INTERNAL_SERVER_ERROR, problem).is_some());
        let mut flagged = http::HeaderMap::new();
        flagged.insert(
            "sl-violations",
            "response body: missing success".parse().unwrap(),
        );
        let found = prism_violation(&flagged, http::StatusCode::OK, b"{}").unwrap();
        assert!(found.contains("missing success"), "{found}");
    }

    #[test]
    fn shipped_spec_is_the_shared_one_when_present() {
        let shipped = std::fs::read(spec_path()).expect("the spec ships with the crate");
        let shared = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/cloudflare-api/cloudflare-openapi-subset.json");
        if let Ok(shared) = std::fs::read(&shared) {
            assert!(
                shared == shipped,
                "spec/ differs from ../shared: copy it again"
            );
        }
        let spec: serde_json::Value = serde_json::from_slice(&shipped).unwrap();
        assert_eq!(spec["openapi"], "3.0.3");
    }

    crate::prism_tests! {
    #[tokio::test]
    async fn prism_flags_a_request_that_breaks_the_spec() {
        let prism = Prism::start().await;
        let client = prism.client();
        let d1 = client.service("d1");
        let path = format!("/accounts/{PRISM_ACCOUNT_ID}/d1/database/db/query");
        // The spec types params as strings: a number is a violation.
        let bad = cloudflare_http::json_request(
            http::Method::POST,
            &path,
            &serde_json::json!({"sql": "SELECT ?", "params": [1]}),
        )
        .unwrap();
        let err = d1
            .send_json::<serde_json::Value>("query", bad)
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(http::StatusCode::UNPROCESSABLE_ENTITY));
        let violations = prism.violations();
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].contains("d1.query POST"), "{violations:?}");
        let good = cloudflare_http::json_request(
            http::Method::POST,
            &path,
            &serde_json::json!({"sql": "SELECT ?", "params": ["1"]}),
        )
        .unwrap();
        d1.send_json::<serde_json::Value>("query", good)
            .await
            .unwrap();
        assert_eq!(prism.violations().len(), 1);
    }
    }
}
