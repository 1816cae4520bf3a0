//! What the Cloudflare client's layers cost per request: the full default stack
//! (accounting, retry, circuit breaker, rate limiter, timeout, auth, base URL, tower-http
//! tracing, body collection) against a bare hyper-util client, both sending `GET` to the
//! same loopback HTTP/1.1 server over a kept-alive connection. Run with
//! `cargo bench --bench transport`; the ratio `full_stack / bare_hyper` is the overhead.
//!
//! * `bare_hyper`: hyper-util's legacy client, request built by hand, body collected.
//! * `full_stack`: `ServiceClient::send` (same request, every layer, no envelope decode).
//! * `full_stack_json`: `ServiceClient::send_json`, adding the envelope decode.
//!
//! The rate limiter is set far above the request rate so it runs without making anyone
//! wait; no tracing subscriber is installed, as in a service that logs at `info`.

use std::convert::Infallible;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use cloudflare_http::{
    ApiToken, ClientBuilder, ClientConfig, Envelope, RateLimitConfig, empty_request,
};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const BODY: &str =
    r#"{"success":true,"errors":[],"messages":[],"result":{"id":"db1","name":"memories"}}"#;

/// A loopback server answering every request with [`BODY`] until `stop` fires.
async fn serve(stop: oneshot::Receiver<()>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let accept = async {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let svc = service_fn(|_req: http::Request<Incoming>| async {
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
                        BODY.as_bytes(),
                    ))))
                });
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        };
        tokio::select! {
            () = accept => {}
            _ = stop => {}
        }
    });
    addr
}

fn transport(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (stop, stopped) = oneshot::channel();
    let addr = runtime.block_on(serve(stopped));
    let path = "/accounts/acc/d1/database/db";

    let bare = HyperClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let bare_uri: http::Uri = format!("http://{addr}/client/v4{path}").parse().unwrap();

    let mut config = ClientConfig::new("acc", ApiToken::new("bench-token"))
        .with_base_url(format!("http://{addr}/client/v4").parse().unwrap());
    config.rate_limit =
        Some(RateLimitConfig::new(1_000_000, Duration::from_secs(1), 1000).unwrap());
    let client = runtime.block_on(async { ClientBuilder::new(config).build().unwrap() });
    let d1 = client.service("d1");

    let mut group = c.benchmark_group("transport");
    group.bench_function("bare_hyper", |b| {
        b.to_async(&runtime).iter(|| async {
            let request = http::Request::get(bare_uri.clone())
                .header(http::header::AUTHORIZATION, "Bearer bench-token")
                .body(Full::new(Bytes::new()))
                .unwrap();
            let response = bare.request(request).await.unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            black_box(body)
        });
    });
    group.bench_function("full_stack", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = d1
                .send("get", empty_request(Method::GET, path).unwrap())
                .await
                .unwrap();
            black_box(response)
        });
    });
    group.bench_function("full_stack_json", |b| {
        b.to_async(&runtime).iter(|| async {
            let env: Envelope<serde_json::Value> = d1
                .send_json("get", empty_request(Method::GET, path).unwrap())
                .await
                .unwrap();
            black_box(env)
        });
    });
    group.finish();

    let stats = client.accounting().service_totals("d1");
    assert_eq!(stats.failures, 0, "the stack saw failures: {stats:?}");
    assert_eq!(stats.retries(), 0);
    let _ = stop.send(());
}

criterion_group!(benches, transport);
criterion_main!(benches);
