//! The API token never reaches a log line, a `Debug` print or an error message: every
//! span and event of the stack is captured at TRACE level while calls succeed, fail,
//! retry, time out and meet an open breaker, then the capture is searched for the token.

use std::convert::Infallible;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cloudflare_http::{
    ApiToken, BreakerConfig, ClientBuilder, ClientConfig, CloudflareError, Envelope, empty_request,
    idempotent, json_request,
};
use http::Method;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const TOKEN: &str = "do-not-log-me-7c1e0f2a9b";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A loopback server for `requests` requests: `/ok` → 200, `/unauthorized` → 401,
/// `/broken` → 500, `/slow` → waits 2 s. It echoes nothing from the request.
async fn serve(requests: usize) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..requests {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let svc = service_fn(|req: http::Request<Incoming>| async move {
                let path = req.uri().path().to_owned();
                let (status, body) = if path.ends_with("/ok") {
                    (200, r#"{"success":true,"errors":[],"result":1}"#)
                } else if path.ends_with("/unauthorized") {
                    (
                        401,
                        r#"{"success":false,"errors":[{"code":10000,"message":"Authentication error"}]}"#,
                    )
                } else if path.ends_with("/slow") {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    (200, r#"{"success":true,"errors":[],"result":1}"#)
                } else {
                    (
                        500,
                        r#"{"success":false,"errors":[{"code":7,"message":"boom"}]}"#,
                    )
                };
                Ok::<_, Infallible>(
                    http::Response::builder()
                        .status(status)
                        .body(Full::new(Bytes::from_static(body.as_bytes())))
                        .unwrap(),
                )
            });
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn the_token_never_reaches_logs_debug_output_or_errors() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let addr = serve(64).await;
    let mut config = ClientConfig::new("acc", ApiToken::new(TOKEN))
        .with_base_url(format!("http://{addr}/client/v4").parse().unwrap());
    config.request_timeout = Duration::from_millis(300);
    config.retry.max_retries = 2;
    config.retry.backoff = cloudflare_http::BackoffConfig::new(
        Duration::from_millis(5),
        Duration::from_millis(20),
        2.0,
    )
    .unwrap();
    config.breaker = Some(BreakerConfig::new("x", 6, Duration::from_secs(60), 1).unwrap());
    let mut printed = vec![format!("{config:?}"), format!("{config:#?}")];
    let builder = ClientBuilder::new(config);
    printed.push(format!("{builder:?}"));
    let client = builder.build().unwrap();
    printed.push(format!("{client:?}"));
    let d1 = client.service("d1");
    printed.push(format!("{d1:?}"));

    let path = |tail: &str| format!("/accounts/acc/d1/database/db/{tail}");
    let env: Envelope<i64> = d1
        .send_json("query", empty_request(Method::GET, &path("ok")).unwrap())
        .await
        .unwrap();
    assert_eq!(env.result, 1);

    let mut errors: Vec<CloudflareError> = Vec::new();
    for tail in ["unauthorized", "broken", "slow"] {
        let request = idempotent(
            json_request(
                Method::POST,
                &path(tail),
                &serde_json::json!({"sql": "SELECT 1"}),
            )
            .unwrap(),
        );
        errors.push(d1.send_json::<i64>("query", request).await.expect_err(tail));
    }
    // Six counted failures (500 ×3, then 3 timeouts) opened the breaker.
    errors.push(
        d1.send_json::<i64>("query", empty_request(Method::GET, &path("ok")).unwrap())
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(errors[2], CloudflareError::Timeout { .. }),
        "{:?}",
        errors[2]
    );
    assert!(matches!(
        errors.last(),
        Some(CloudflareError::CircuitOpen { .. })
    ));
    for err in &errors {
        printed.push(err.to_string());
        printed.push(format!("{err:?}"));
        printed.push(format!("{err:#?}"));
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            printed.push(s.to_string());
            printed.push(format!("{s:?}"));
            source = s.source();
        }
    }

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    // The capture really holds the stack's spans: operation, path, attempt, status.
    assert!(logs.contains("op=d1.query"), "{logs}");
    assert!(
        logs.contains("/client/v4/accounts/acc/d1/database/db/broken"),
        "{logs}"
    );
    assert!(logs.contains("attempt=3"), "{logs}");
    assert!(logs.contains("status=500"), "{logs}");
    assert!(logs.contains("status=401"), "{logs}");
    assert!(!logs.contains(TOKEN), "the token leaked into the logs");
    assert!(
        !logs.contains("Bearer"),
        "an Authorization header was logged"
    );
    for text in &printed {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
    }
    assert!(printed.iter().any(|p| p.contains("***")));
}
