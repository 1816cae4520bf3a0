//! The test harness itself: the clients reach the emulator directly and through Prism, every
//! call is accounted, and Prism's violations are caught.

mod common;

use cloudflare_d1::Statement;
use cloudflare_r2::PutObject;
use cloudflare_vectorize::{CreateIndex, Metric};
use common::{MODEL, Setup, TestEnv};

async fn every_service_answers(env: &TestEnv) {
    let d1 = env.d1();
    let rows = d1
        .query(Statement::new("SELECT ? AS x").bind("1"))
        .await
        .unwrap_or_else(|e| panic!("D1: {e}"));
    assert_eq!(rows.rows.len(), 1);

    let dims = u32::try_from(MODEL.dimensions()).unwrap();
    env.vectorize()
        .create_index(&CreateIndex::new(
            env.index_name.clone(),
            dims,
            Metric::Cosine,
        ))
        .await
        .unwrap_or_else(|e| panic!("Vectorize: {e}"));
    let info = env.index().info().await.unwrap();
    assert_eq!(info.dimensions, Some(dims));

    let vectors = env
        .ai()
        .embed(&["hello world".to_owned()])
        .await
        .unwrap_or_else(|e| panic!("Workers AI: {e}"));
    assert_eq!(vectors.vectors[0].len(), MODEL.dimensions());

    env.r2()
        .put_object(PutObject::new("memories/abc", b"hello".to_vec()))
        .await
        .unwrap_or_else(|e| panic!("R2: {e}"));

    let counts = env.call_counts();
    assert_eq!(
        (counts.d1, counts.vectorize, counts.ai, counts.r2),
        (1, 2, 1, 1),
        "{}",
        env.describe_calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_answers_directly() {
    let env = TestEnv::start(Setup::direct()).await;
    every_service_answers(&env).await;
}

cloudflare_testkit::prism_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_service_answers_through_prism_without_violations() {
        let env = TestEnv::start(Setup::via_prism()).await;
        every_service_answers(&env).await;
        env.assert_no_violations();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_breaking_the_spec_is_recorded() {
        a_request_breaking_the_spec(TestEnv::start(Setup::via_prism()).await).await;
    }
}

/// Sends a D1 query whose parameter is a number (the spec types them as strings) through
/// Prism: exactly one violation is recorded.
async fn a_request_breaking_the_spec(env: TestEnv) {
    // The spec types D1 params as strings: a number breaks it.
    let path = format!(
        "/accounts/{}/d1/database/{}/query",
        env.client.account_id(),
        env.database_id
    );
    let bad = cloudflare_http::json_request(
        http::Method::POST,
        &path,
        &serde_json::json!({"sql": "SELECT ?", "params": [1]}),
    )
    .unwrap();
    let _ = env
        .client
        .service("d1")
        .send_json::<serde_json::Value>("query", bad)
        .await;
    assert_eq!(env.violations().len(), 1, "{:?}", env.violations());
}
