//! Test harness: an emulator on 127.0.0.1, reached directly or through a Prism validating
//! proxy of Cloudflare's OpenAPI spec, with a raw HTTP client (no retries, no layers) so
//! tests see exactly what the emulator answers.
//!
//! Scenarios take a `&Harness` and run as two tests: one on `Harness::direct`, one on
//! `Harness::via_prism` (which records every spec violation Prism reports; end with
//! `harness.assert_no_violations()`) inside `cloudflare_testkit::prism_tests!`, so that it is
//! reported as ignored when Prism is not installed.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cloudflare_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use cloudflare_testkit::Prism;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The envelope's `result`, asserting `success: true` and a 2xx status.
    pub fn result(&self) -> Value {
        let v = self.json();
        assert!(self.status.is_success(), "{}: {v}", self.status);
        assert_eq!(v["success"], true, "{v}");
        v["result"].clone()
    }

    /// Asserts a Cloudflare error with `status` and `code`; returns its message.
    pub fn error(&self, status: u16, code: u64) -> String {
        let v = self.json();
        assert_eq!(self.status.as_u16(), status, "{v}");
        assert_eq!(v["success"], false, "{v}");
        assert_eq!(v["errors"][0]["code"], code, "{v}");
        v["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// An emulator and the way to reach it.
pub struct Harness {
    pub emulator: EmulatorHandle,
    prism: Option<Prism>,
    base: String,
    http: Client<HttpConnector, Full<Bytes>>,
    pub token: String,
    pub account: String,
    violations: Arc<Mutex<Vec<String>>>,
}

impl Harness {
    /// An emulator with `config`, reached directly.
    pub async fn direct(config: EmulatorConfig) -> Self {
        let emulator = Emulator::start(config).await.expect("the emulator starts");
        let base = emulator.base_url();
        Self::new(emulator, None, base)
    }

    /// An emulator with `config` behind `prism proxy --errors`. Only for tests inside
    /// `cloudflare_testkit::prism_tests!` (ignored when Prism is not installed).
    pub async fn via_prism(config: EmulatorConfig) -> Self {
        let emulator = Emulator::start(config).await.expect("the emulator starts");
        let prism = Prism::start_proxy(&emulator.base_url()).await;
        let base = prism.base_url();
        Self::new(emulator, Some(prism), base)
    }

    fn new(emulator: EmulatorHandle, prism: Option<Prism>, base: String) -> Self {
        let token = emulator.config().tokens[0].clone();
        let account = emulator.config().account_ids[0].clone();
        Self {
            emulator,
            prism,
            base,
            http: Client::builder(TokioExecutor::new()).build_http(),
            token,
            account,
            violations: Arc::default(),
        }
    }

    /// Whether requests go through Prism.
    pub fn via_prism_proxy(&self) -> bool {
        self.prism.is_some()
    }

    /// `/accounts/{account}/` + `tail`.
    pub fn path(&self, tail: &str) -> String {
        format!("/accounts/{}/{tail}", self.account)
    }

    /// Sends a request (path = the API path after `/client/v4`) with the harness token.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Reply {
        let token = self.token.clone();
        self.send_with(method, path, content_type, body, Some(&token))
            .await
    }

    /// Sends a request with `token` (`None` = no Authorization header).
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
        token: Option<&str>,
    ) -> Reply {
        let mut request = http::Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(ct) = content_type {
            request = request.header(http::header::CONTENT_TYPE, ct);
        }
        let request = request
            .body(Full::new(body.into()))
            .expect("a valid request");
        let response = self
            .http
            .request(request)
            .await
            .expect("the server answers");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("the body arrives").to_bytes();
        let reply = Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        };
        let from_prism = String::from_utf8_lossy(&reply.body).contains("stoplight.io/prism/errors");
        if !from_prism {
            check_error_shape(&method, path, &reply);
        }
        if self.prism.is_some()
            && let Some(found) =
                cloudflare_testkit::prism_violation(&reply.headers, reply.status, &reply.body)
        {
            self.violations
                .lock()
                .unwrap()
                .push(format!("{method} {path}: {found}"));
        }
        reply
    }

    /// JSON request.
    pub async fn json(&self, method: Method, path: &str, body: &Value) -> Reply {
        self.send(method, path, Some("application/json"), body.to_string())
            .await
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, Bytes::new()).await
    }

    /// Every violation Prism reported.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }

    /// Panics listing each violation Prism reported (no-op when direct).
    pub fn assert_no_violations(&self) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "{} exchange(s) broke Cloudflare's OpenAPI spec:\n{}",
            v.len(),
            v.join("\n")
        );
    }
}

/// Every non-2xx answer with a body must be Cloudflare's error envelope:
/// `success: false`, a non-empty `errors` list of `{code: integer, message: string}`, and
/// `messages` (if present) a list. Prism's validating proxy does not check responses the spec
/// declares as `4XX`, so the harness checks their shape itself, on every request.
pub fn check_error_shape(method: &Method, path: &str, reply: &Reply) {
    if reply.status.is_success()
        || reply.status == StatusCode::NOT_MODIFIED
        || *method == Method::HEAD
        || reply.body.is_empty() && reply.status.is_redirection()
    {
        return;
    }
    let v: Value = serde_json::from_slice(&reply.body).unwrap_or_else(|e| {
        panic!(
            "{method} {path}: {} error body is not JSON ({e}): {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        )
    });
    let context = || format!("{method} {path}: {} {v}", reply.status);
    assert_eq!(v["success"], false, "{}", context());
    let errors = v["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors list: {}", context()));
    assert!(!errors.is_empty(), "empty errors list: {}", context());
    for e in errors {
        assert!(
            e["code"].is_u64(),
            "error code is not an integer: {}",
            context()
        );
        assert!(
            e["message"].is_string(),
            "error message is not a string: {}",
            context()
        );
    }
    assert!(
        v.get("messages").is_none_or(Value::is_array),
        "messages is not a list: {}",
        context()
    );
    assert!(
        reply
            .headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|ct| ct
                .to_str()
                .is_ok_and(|ct| ct.starts_with("application/json"))),
        "error without a JSON content type: {}",
        context()
    );
}
