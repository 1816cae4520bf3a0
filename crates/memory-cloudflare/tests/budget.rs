//! Cloudflare's account-wide request budget (issue 14, point 3): 1,200 requests per 5
//! minutes per user, across all the user's tokens and the dashboard; past it every call of
//! the window gets a 429 (<https://developers.cloudflare.com/fundamentals/api/reference/limits/>).
//! The emulator counts per account across tokens and sends the `ratelimit` headers; these
//! tests shrink the window to seconds.

mod common;

use std::time::Duration;

use cloudflare_d1::Statement;
use cloudflare_emulator::{EmulatorConfig, FaultRule};
use cloudflare_http::{ApiToken, Client, ClientBuilder, ClientConfig, empty_request};
use common::{Setup, TestEnv, paths};
use memory_core::{Memory, Tags};
use memory_storage::{MemoryFilter, MemoryStorage};
use tokio::time::Instant;

/// The second token of the test account (the harness's client uses the first).
const OTHER_TOKEN: &str = "second-token-of-the-account";
/// Requests per window in these tests.
const LIMIT: u32 = 40;
/// The window in these tests.
const WINDOW: Duration = Duration::from_secs(4);
/// Requests the other token leaves to the backend.
const LEFT: u64 = 5;

fn small_budget(config: &mut EmulatorConfig) {
    config.rate_limit = LIMIT;
    config.rate_window = WINDOW;
    config.tokens.push(OTHER_TOKEN.to_owned());
}

fn memory(content: &str) -> Memory {
    let tags = Tags::parse(vec!["budget".to_owned()]).unwrap_or_else(|e| panic!("tags: {e}"));
    Memory::new(content)
        .unwrap_or_else(|e| panic!("memory: {e}"))
        .with_tags(tags)
}

/// A client of the same account with the other token: another consumer of its budget
/// (a script, the dashboard), sharing nothing with the backend's client.
fn other_consumer(env: &TestEnv) -> Client {
    let mut config = ClientConfig::new(env.client.account_id(), ApiToken::new(OTHER_TOKEN))
        .with_base_url(env.client.base_url().clone());
    config.rate_limit = None;
    config.retry.max_retries = 0;
    ClientBuilder::new(config)
        .build()
        .unwrap_or_else(|e| panic!("the other client: {e}"))
}

/// One cheap request of the other consumer; returns `(requests left, seconds to reset)`
/// from its `ratelimit` header.
async fn spend_one(other: &Client) -> (u64, u64) {
    let path = format!("/accounts/{}/tokens/verify", other.account_id());
    let request = empty_request(http::Method::GET, &path).unwrap_or_else(|e| panic!("{e}"));
    let response = other
        .service("other")
        .send("verify", request)
        .await
        .unwrap_or_else(|e| panic!("the other consumer's request: {e}"));
    assert_eq!(
        response.status(),
        200,
        "the other consumer stays within the budget"
    );
    let header = response.headers()["ratelimit"]
        .to_str()
        .unwrap_or_else(|e| panic!("{e}"));
    let param = |key: &str| -> u64 {
        header
            .split(';')
            .find_map(|p| p.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {header:?}"))
    };
    (param("r"), param("t"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_token_draining_the_account_budget_slows_the_client_down_not_fails() {
    let env = TestEnv::start(Setup::direct().with_emulator(small_budget)).await;
    let store = env.storage().await;
    let other = other_consumer(&env);
    // Start from a fresh window, so that its start is known: wait out the current one.
    let (_, reset) = spend_one(&other).await;
    tokio::time::sleep(Duration::from_secs(reset)).await;
    // The window opens with the other consumer's first request, then it spends all but LEFT.
    let window_start = Instant::now();
    let mut left = spend_one(&other).await.0;
    while left > LEFT {
        left = spend_one(&other).await.0;
    }
    env.reset_counts();

    // 8 stores of 3 requests each (embedding, D1 batch, Vectorize upsert): 24 > LEFT.
    for i in 0..8 {
        store
            .store(memory(&format!("Budget note {i}: pace, do not fail.")))
            .await
            .unwrap_or_else(|e| panic!("store {i} failed instead of waiting: {e}"));
    }
    let found = store
        .count(&MemoryFilter::all())
        .await
        .unwrap_or_else(|e| panic!("count: {e}"));
    assert_eq!(found, 8);

    assert!(
        window_start.elapsed() >= WINDOW,
        "the workload could not fit in what was left, so it must have waited for the reset \
         ({:?} after the window opened)",
        window_start.elapsed()
    );
    // Not a single 429 was met: no call failed and none was retried.
    for (op, stats) in env.accounting().snapshot() {
        assert_eq!(stats.failures, 0, "{op} failed: {}", env.describe_calls());
        assert_eq!(
            stats.retries(),
            0,
            "{op} was retried: {}",
            env.describe_calls()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_on_a_store_is_retried() {
    let env = TestEnv::start(Setup::direct()).await;
    let store = env.storage().await;
    env.reset_counts();
    // The store's D1 write: a POST batch (its statements are upserts marked idempotent).
    env.fault(FaultRule::fail_next(paths::D1, 1, 429).with_method("POST"));
    let started = Instant::now();
    store
        .store(memory(
            "A 429 is refused before processing, so it is safe to repeat.",
        ))
        .await
        .unwrap_or_else(|e| panic!("store after a 429: {e}"));
    let batch = env.op("d1", "batch");
    assert_eq!(
        (batch.calls, batch.attempts, batch.failures),
        (1, 2, 0),
        "exactly one repeat: {}",
        env.describe_calls()
    );
    let retries: u64 = env
        .accounting()
        .snapshot()
        .iter()
        .map(|(_, s)| s.retries())
        .sum();
    assert_eq!(retries, 1, "{}", env.describe_calls());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retry-after: 1 was honoured"
    );
    let found = store
        .count(&MemoryFilter::all())
        .await
        .unwrap_or_else(|e| panic!("count: {e}"));
    assert_eq!(found, 1, "stored once");

    // A POST the transport may not otherwise repeat (a plain INSERT, not marked idempotent)
    // is sent again after a 429 too: Cloudflare refused it before running anything.
    let d1 = env.d1();
    d1.query(Statement::new("CREATE TABLE budget_probe (n INTEGER)"))
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    env.reset_counts();
    env.fault(FaultRule::fail_next(paths::D1, 1, 429).with_method("POST"));
    d1.query(Statement::new("INSERT INTO budget_probe VALUES (1)"))
        .await
        .unwrap_or_else(|e| panic!("a non-idempotent INSERT after a 429: {e}"));
    let query = env.op("d1", "query");
    assert_eq!(
        (query.calls, query.attempts),
        (1, 2),
        "{}",
        env.describe_calls()
    );
    let rows = d1
        .query(Statement::new("SELECT n FROM budget_probe"))
        .await
        .unwrap_or_else(|e| panic!("select: {e}"))
        .rows;
    assert_eq!(rows.len(), 1, "inserted once: {rows:?}");
}
