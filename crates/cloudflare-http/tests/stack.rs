//! The whole default stack (accounting → retry → breaker → rate limit → timeout → auth →
//! base URL) over a scripted transport, with paused Tokio time: what a caller sees when
//! Cloudflare rate-limits, fails or stays down.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cloudflare_http::{
    ApiToken, BreakerConfig, BreakerState, Client, ClientBuilder, ClientConfig, CloudflareError,
    HttpRequest, HttpResponse, HttpService, Operation, RateLimitConfig, empty_request, idempotent,
    json_request,
};
use http::{Method, StatusCode};
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;

const TOKEN: &str = "stack-test-secret-5b4a";

/// One scripted answer.
#[derive(Clone)]
enum Reply {
    Status(u16, Option<&'static str>),
    /// A status with extra headers.
    Headers(u16, &'static [(&'static str, &'static str)]),
    Refused,
}

/// A transport answering from a script (then 200 forever) and logging when each request
/// arrived, relative to the first.
#[derive(Clone, Default)]
struct Script {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Script {
    fn new(replies: impl IntoIterator<Item = Reply>) -> Self {
        Self {
            replies: Arc::new(Mutex::new(replies.into_iter().collect())),
            seen: Arc::default(),
        }
    }

    fn transport(&self) -> HttpService {
        let script = self.clone();
        BoxCloneSyncService::new(tower::service_fn(move |req: HttpRequest| {
            let script = script.clone();
            async move {
                let auth = req.headers()[http::header::AUTHORIZATION].clone();
                assert_eq!(auth, format!("Bearer {TOKEN}").as_str());
                script
                    .seen
                    .lock()
                    .unwrap()
                    .push((Instant::now(), req.uri().to_string()));
                let reply = script
                    .replies
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or(Reply::Status(200, None));
                let (reply, extra) = match reply {
                    Reply::Headers(code, headers) => (Reply::Status(code, None), headers),
                    other => (other, &[][..]),
                };
                match reply {
                    Reply::Refused | Reply::Headers(..) => {
                        Err(CloudflareError::transport("connection refused"))
                    }
                    Reply::Status(code, retry_after) => {
                        let body = if code < 300 {
                            r#"{"success":true,"errors":[],"messages":[],"result":{"ok":true}}"#
                        } else {
                            r#"{"success":false,"errors":[{"code":10000,"message":"scripted failure"}],"result":null}"#
                        };
                        let mut response = http::Response::builder().status(code);
                        if let Some(secs) = retry_after {
                            response = response.header(http::header::RETRY_AFTER, secs);
                        }
                        for (name, value) in extra {
                            response = response.header(*name, *value);
                        }
                        Ok::<HttpResponse, CloudflareError>(
                            response.body(Bytes::from_static(body.as_bytes())).unwrap(),
                        )
                    }
                }
            }
        }))
    }

    /// Gaps between consecutive requests.
    fn gaps(&self) -> Vec<Duration> {
        let seen = self.seen.lock().unwrap();
        seen.windows(2).map(|w| w[1].0 - w[0].0).collect()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn config() -> ClientConfig {
    let mut config = ClientConfig::new("acc", ApiToken::new(TOKEN))
        .with_base_url("https://api.example.invalid/client/v4".parse().unwrap());
    config.rate_limit = None;
    config.retry.max_retries = 3;
    config.breaker = Some(BreakerConfig::new("template", 5, Duration::from_secs(30), 1).unwrap());
    config
}

fn client(config: ClientConfig, script: &Script) -> Client {
    ClientBuilder::new(config)
        .with_transport(script.transport())
        .build()
        .unwrap()
}

fn get() -> HttpRequest {
    empty_request(Method::GET, "/accounts/acc/d1/database").unwrap()
}

fn post() -> HttpRequest {
    json_request(
        Method::POST,
        "/accounts/acc/d1/database/db/query",
        &serde_json::json!({"sql": "INSERT INTO t VALUES (1)"}),
    )
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_429_with_retry_after_3_waits_3_seconds_then_succeeds() {
    let script = Script::new([Reply::Status(429, Some("3"))]);
    let client = client(config(), &script);
    let d1 = client.service("d1");
    let started = Instant::now();
    let env = d1
        .send_json::<serde_json::Value>("list", get())
        .await
        .unwrap();
    assert_eq!(env.result["ok"], true);
    assert_eq!(script.gaps(), [Duration::from_secs(3)]);
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    let stats = client.accounting().get(Operation::new("d1", "list"));
    assert_eq!((stats.calls, stats.attempts, stats.failures), (1, 2, 0));
    assert_eq!(d1.breaker().unwrap().state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_up_to_the_limit_then_reported() {
    let script = Script::new(vec![Reply::Status(503, None); 10]);
    let client = client(config(), &script);
    let err = client
        .service("vectorize")
        .send_json::<serde_json::Value>("query", idempotent(post()))
        .await
        .unwrap_err();
    assert_eq!(script.count(), 4, "1 attempt + 3 retries");
    assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(err.to_string().contains("scripted failure"), "{err}");
    assert!(err.to_string().contains("503"), "{err}");
    let stats = client
        .accounting()
        .get(Operation::new("vectorize", "query"));
    assert_eq!((stats.calls, stats.attempts, stats.failures), (1, 4, 1));
    assert_eq!(stats.retries(), 3);
}

#[tokio::test(start_paused = true)]
async fn client_errors_are_never_retried() {
    for code in [400, 401, 403, 404, 409, 422] {
        let script = Script::new([Reply::Status(code, None)]);
        let client = client(config(), &script);
        let err = client
            .service("d1")
            .send_json::<serde_json::Value>("list", get())
            .await
            .unwrap_err();
        assert_eq!(script.count(), 1, "{code} was retried");
        assert_eq!(err.status().map(|s| s.as_u16()), Some(code));
    }
}

#[tokio::test(start_paused = true)]
async fn a_non_idempotent_call_is_not_retried_but_a_marked_one_is() {
    let script = Script::new([Reply::Status(502, None), Reply::Refused]);
    let client = client(config(), &script);
    let d1 = client.service("d1");
    let err = d1
        .send_json::<serde_json::Value>("query", post())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::BAD_GATEWAY));
    assert_eq!(script.count(), 1);
    let err = d1
        .send_json::<serde_json::Value>("query", post())
        .await
        .unwrap_err();
    assert!(matches!(err, CloudflareError::Transport { .. }), "{err:?}");
    assert_eq!(script.count(), 2, "a POST is never resent");
    // The same POST marked idempotent goes through after a retry.
    let script = Script::new([Reply::Refused]);
    let client = self::client(config(), &script);
    client
        .service("d1")
        .send_json::<serde_json::Value>("query", idempotent(post()))
        .await
        .unwrap();
    assert_eq!(script.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_fails_fast_and_closes_after_a_good_probe() {
    let mut config = config();
    config.retry.max_retries = 0;
    let script = Script::new(vec![Reply::Status(500, None); 5]);
    let client = client(config, &script);
    let r2 = client.service("r2");
    let d1 = client.service("d1");
    for _ in 0..5 {
        r2.send("get", get()).await.unwrap();
    }
    let breaker = r2.breaker().unwrap();
    assert_eq!(breaker.config().name(), "r2");
    assert!(matches!(breaker.state(), BreakerState::Open { .. }));
    // Open: fails fast, names the service and when it tries again, sends nothing.
    let wall = std::time::Instant::now();
    let err = r2.send("get", get()).await.unwrap_err();
    let took = wall.elapsed();
    assert!(
        took < Duration::from_millis(1),
        "open breaker took {took:?}"
    );
    match &err {
        CloudflareError::CircuitOpen { service, retry_in } => {
            assert_eq!(*service, "r2");
            assert!(*retry_in <= Duration::from_secs(30));
        }
        other => panic!("expected CircuitOpen, got {other:?}"),
    }
    assert!(err.to_string().contains("r2"), "{err}");
    assert_eq!(script.count(), 5);
    // Other services have their own breaker.
    d1.send_json::<serde_json::Value>("list", get())
        .await
        .unwrap();
    assert_eq!(d1.breaker().unwrap().state(), BreakerState::Closed);
    assert_eq!(
        client
            .breakers()
            .iter()
            .map(|b| b.config().name())
            .collect::<Vec<_>>(),
        ["d1", "r2"]
    );
    // After open_for, one probe goes through; its success closes the breaker.
    tokio::time::advance(Duration::from_secs(30)).await;
    let response = r2.send("get", get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.opened_count(), 1);
    assert!(breaker.rejected_count() >= 1);
}

#[tokio::test(start_paused = true)]
async fn the_rate_limiter_spaces_a_burst_across_services() {
    let mut config = config();
    // 10 requests per second, burst 2: requests 3.. are 100 ms apart.
    config.rate_limit = Some(RateLimitConfig::new(10, Duration::from_secs(1), 2).unwrap());
    let script = Script::new([]);
    let client = client(config, &script);
    let services = [client.service("d1"), client.service("vectorize")];
    let calls = (0..6).map(|i| {
        let svc = services[i % 2].clone();
        async move { svc.send("get", get()).await.unwrap() }
    });
    futures_join_all(calls).await;
    let gaps = script.gaps();
    assert_eq!(gaps.len(), 5);
    assert_eq!(gaps[0], Duration::ZERO);
    for gap in &gaps[1..] {
        assert_eq!(*gap, Duration::from_millis(100), "{gaps:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_post_answered_429_is_sent_again_after_retry_after() {
    let script = Script::new([Reply::Status(429, Some("2"))]);
    let client = client(config(), &script);
    let env = client
        .service("d1")
        .send_json::<serde_json::Value>("query", post())
        .await
        .unwrap();
    assert_eq!(env.result["ok"], true);
    assert_eq!(script.gaps(), [Duration::from_secs(2)]);
    let stats = client.accounting().get(Operation::new("d1", "query"));
    assert_eq!((stats.calls, stats.attempts, stats.failures), (1, 2, 0));
}

/// The account's budget is spent for 200 s (another consumer of the account spent it).
const BLOCKED: &[(&str, &str)] = &[
    ("retry-after", "200"),
    ("ratelimit", "\"default\";r=0;t=200"),
    ("ratelimit-policy", "\"default\";q=1200;w=300"),
];

#[tokio::test(start_paused = true)]
async fn a_spent_account_budget_holds_every_service_until_the_reset() {
    let script = Script::new([Reply::Headers(429, BLOCKED)]);
    let client = client(config(), &script);
    let d1 = client.service("d1");
    let vectorize = client.service("vectorize");
    let started = Instant::now();
    let post =
        tokio::spawn(async move { d1.send_json::<serde_json::Value>("query", post()).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let budget = client.account_budget().snapshot().unwrap();
    assert_eq!((budget.remaining, budget.quota), (0, Some(1200)));
    // Another service waits for the same reset instead of spending a request on a 429.
    vectorize
        .send_json::<serde_json::Value>("list", get())
        .await
        .unwrap();
    post.await.unwrap().unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(200));
    assert_eq!(
        script.count(),
        3,
        "the 429, then one request per call at the reset"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reset_beyond_the_retry_budget_fails_at_once_saying_when() {
    let mut config = config();
    config.retry.total_budget = Duration::from_secs(60);
    let script = Script::new([Reply::Headers(429, BLOCKED)]);
    let client = client(config, &script);
    let started = Instant::now();
    let err = client
        .service("d1")
        .send_json::<serde_json::Value>("query", post())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CloudflareError::RateLimited { retry_after, .. } if *retry_after == Duration::from_secs(200)),
        "{err:?}"
    );
    assert!(err.to_string().contains("try again in 200 s"), "{err}");
    // The other services of the account know it too: they fail without sending.
    let err = client
        .service("vectorize")
        .send_json::<serde_json::Value>("list", get())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CloudflareError::RateLimited { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("try again in 200 s"), "{err}");
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(script.count(), 1);
    assert!(err.is_retryable() && !err.counts_for_breaker());
}

/// Runs futures concurrently and waits for all of them.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>)
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for f in futures {
        set.spawn(f);
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
}
