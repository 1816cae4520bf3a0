//! Throughput of the emulator through HTTP on loopback, as a client sees it:
//!
//! - `d1_select_by_pk_10k_rows`: `POST …/d1/database/{id}/query` with
//!   `SELECT … WHERE id = ?` on a 10,000-row table (a random key each time);
//! - `vectorize_query_top10_10k_x384`: `POST …/vectorize/v2/indexes/{name}/query` with
//!   `topK: 10` on an index of 10,000 vectors of 384 dimensions (cosine).
//!
//! Requests are raw JSON over a hyper-util client (keep-alive), with the rate limit off.
//! A service whose setup fails is reported and skipped.

use std::time::Duration;

use bytes::Bytes;
use cloudflare_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const ROWS: u32 = 10_000;
const VECTORS: usize = 10_000;
const DIMENSIONS: usize = 384;
const DATABASE: &str = "6f2c7a3e-0d1b-4c55-9a8e-3b7d2f1e0c9a";
const INDEX: &str = "bench-index";

#[derive(Clone)]
struct Api {
    http: Client<HttpConnector, Full<Bytes>>,
    base: String,
    token: String,
    account: String,
}

impl Api {
    fn new(emulator: &EmulatorHandle) -> Self {
        Self {
            http: Client::builder(TokioExecutor::new()).build_http(),
            base: emulator.base_url(),
            token: emulator.config().tokens[0].clone(),
            account: emulator.config().account_ids[0].clone(),
        }
    }

    /// Sends `body` to `/accounts/{account}/{tail}`; status and body bytes.
    async fn call(
        &self,
        method: Method,
        tail: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), String> {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}/accounts/{}/{tail}", self.base, self.account))
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    }

    /// A JSON call that must succeed; its `result`.
    async fn ok(
        &self,
        method: Method,
        tail: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<Value, String> {
        let (status, body) = self.call(method, tail, content_type, body).await?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| {
            format!(
                "{status}: not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        })?;
        if status.is_success() && v["success"] == true {
            Ok(v["result"].clone())
        } else {
            Err(format!("{tail}: {status} {v}"))
        }
    }
}

fn d1_tail() -> String {
    format!("d1/database/{DATABASE}/query")
}

async fn setup_d1(api: &Api) -> Result<(), String> {
    let statements = [
        "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, body TEXT NOT NULL)".to_owned(),
        format!(
            "INSERT INTO items (id, body) WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {ROWS}) SELECT x, 'item number ' || x FROM n"
        ),
    ];
    for sql in statements {
        let body = json!({ "sql": sql }).to_string();
        api.ok(Method::POST, &d1_tail(), "application/json", body.into())
            .await?;
    }
    let count = api
        .ok(
            Method::POST,
            &d1_tail(),
            "application/json",
            json!({"sql": "SELECT count(*) AS n FROM items"})
                .to_string()
                .into(),
        )
        .await?;
    match count[0]["results"][0]["n"].as_u64() {
        Some(n) if n == u64::from(ROWS) => Ok(()),
        _ => Err(format!("unexpected count: {count}")),
    }
}

fn vector(rng: &mut StdRng) -> Vec<f32> {
    (0..DIMENSIONS)
        .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * 1000.0)
        .map(|x| x.round() / 1000.0)
        .collect()
}

async fn setup_vectorize(api: &Api) -> Result<(), String> {
    let base = "vectorize/v2/indexes";
    api.ok(
        Method::POST,
        base,
        "application/json",
        json!({"name": INDEX, "config": {"dimensions": DIMENSIONS, "metric": "cosine"}})
            .to_string()
            .into(),
    )
    .await?;
    let mut rng = StdRng::seed_from_u64(1);
    // 500 vectors (~1.6 MB of NDJSON) per request.
    for chunk in 0..VECTORS / 500 {
        let mut ndjson = String::new();
        for i in 0..500 {
            let id = chunk * 500 + i;
            ndjson.push_str(
                &json!({"id": format!("v{id}"), "values": vector(&mut rng), "metadata": {"n": id}})
                    .to_string(),
            );
            ndjson.push('\n');
        }
        api.ok(
            Method::POST,
            &format!("{base}/{INDEX}/insert"),
            "application/x-ndjson",
            ndjson.into(),
        )
        .await?;
    }
    // Mutations are asynchronous: wait until every vector is visible.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let info = api
            .ok(
                Method::GET,
                &format!("{base}/{INDEX}/info"),
                "application/json",
                Bytes::new(),
            )
            .await?;
        if info["vectorCount"].as_u64() == Some(VECTORS as u64) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("vectors not visible after 120 s: {info}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let emulator = rt
        .block_on(Emulator::start(EmulatorConfig {
            rate_limit: 0,
            ..EmulatorConfig::default()
        }))
        .expect("the emulator starts");
    let api = Api::new(&emulator);
    let mut group = c.benchmark_group("emulator_http");
    group.throughput(Throughput::Elements(1));

    match rt.block_on(setup_d1(&api)) {
        Ok(()) => {
            let mut rng = StdRng::seed_from_u64(2);
            group.bench_function("d1_select_by_pk_10k_rows", |b| {
                b.to_async(&rt).iter(|| {
                    let id = rng.random_range(1..=ROWS).to_string();
                    let api = api.clone();
                    async move {
                        let body = json!({"sql": "SELECT id, body FROM items WHERE id = ?", "params": [id]})
                            .to_string();
                        let (status, _) = api
                            .call(Method::POST, &d1_tail(), "application/json", body.into())
                            .await
                            .expect("an answer");
                        assert_eq!(status, StatusCode::OK);
                    }
                });
            });
        }
        Err(e) => eprintln!("skipping d1_select_by_pk_10k_rows: D1 setup failed: {e}"),
    }

    match rt.block_on(setup_vectorize(&api)) {
        Ok(()) => {
            let mut rng = StdRng::seed_from_u64(3);
            let tail = format!("vectorize/v2/indexes/{INDEX}/query");
            group.bench_function("vectorize_query_top10_10k_x384", |b| {
                b.to_async(&rt).iter(|| {
                    let body = json!({"vector": vector(&mut rng), "topK": 10}).to_string();
                    let api = api.clone();
                    let tail = tail.clone();
                    async move {
                        let (status, _) = api
                            .call(Method::POST, &tail, "application/json", body.into())
                            .await
                            .expect("an answer");
                        assert_eq!(status, StatusCode::OK);
                    }
                });
            });
        }
        Err(e) => eprintln!("skipping vectorize_query_top10_10k_x384: Vectorize setup failed: {e}"),
    }
    group.finish();
    rt.block_on(emulator.shutdown());
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
