//! Workers AI text embeddings answered by the local stand-in model (all-MiniLM-L6-v2 from
//! the per-user model cache, or `MCP_MEMORY_MODEL_DIR`), directly and through Prism;
//! limits and malformed requests directly only (they break the spec on purpose).

mod common;

use cloudflare_emulator::{EmulatorConfig, ModelStandIn};
use common::{Harness, Reply};
use http::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SMALL: &str = "@cf/baai/bge-small-en-v1.5";
const BASE: &str = "@cf/baai/bge-base-en-v1.5";
const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";

fn config() -> EmulatorConfig {
    EmulatorConfig {
        models: vec![
            ModelStandIn::default_small(),
            ModelStandIn {
                cloudflare_model: BASE.to_owned(),
                local_model: MINILM.to_owned(),
                local_dir: None,
            },
        ],
        ..EmulatorConfig::default()
    }
}

async fn run(h: &Harness, model: &str, body: &Value) -> Reply {
    h.json(Method::POST, &h.path(&format!("ai/run/{model}")), body)
        .await
}

fn vectors(result: &Value) -> Vec<Vec<f64>> {
    result["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

async fn embeddings(h: &Harness) {
    // One text.
    let reply = run(h, SMALL, &json!({"text": "The cat sits on the mat."})).await;
    assert_eq!(reply.headers["cf-emulator-stand-in"], MINILM);
    assert_eq!(reply.headers["content-type"], "application/json");
    let body = reply.json();
    assert_eq!(body["errors"], json!([]));
    assert_eq!(body["messages"], json!([]));
    let result = reply.result();
    assert_eq!(result["shape"], json!([1, 384]));
    assert_eq!(result["pooling"], "mean");
    let one = vectors(&result);
    assert_eq!((one.len(), one[0].len()), (1, 384));
    assert!((dot(&one[0], &one[0]) - 1.0).abs() < 1e-3, "unit length");

    // A batch: same text, same vector; semantic sanity.
    let reply = run(
        h,
        SMALL,
        &json!({"text": ["a cat on a mat", "a kitten on a rug", "quarterly revenue grew 4%",
                         "The cat sits on the mat."], "pooling": "mean"}),
    )
    .await;
    let result = reply.result();
    assert_eq!(result["shape"], json!([4, 384]));
    let v = vectors(&result);
    assert!(
        dot(&v[0], &v[1]) > dot(&v[0], &v[2]) + 0.2,
        "cat/kitten {} vs cat/revenue {}",
        dot(&v[0], &v[1]),
        dot(&v[0], &v[2])
    );
    assert!((dot(&v[3], &one[0]) - 1.0).abs() < 1e-4, "deterministic");

    // The documented maximum of 100 texts.
    let texts: Vec<String> = (0..100).map(|i| format!("note number {i}")).collect();
    let result = run(h, SMALL, &json!({ "text": texts })).await.result();
    assert_eq!(result["shape"], json!([100, 384]));
    assert_eq!(vectors(&result).len(), 100);

    // A second configured model id: the stand-in's dimensions, and it says which it is.
    let reply = run(h, BASE, &json!({"text": "hello"})).await;
    assert_eq!(reply.headers["cf-emulator-stand-in"], MINILM);
    assert_eq!(reply.result()["shape"], json!([1, 384]));
}

#[tokio::test]
async fn embeddings_from_the_stand_in() {
    let h = Harness::direct(config()).await;
    embeddings(&h).await;
}

cloudflare_testkit::prism_tests! {
    #[tokio::test]
    async fn embeddings_from_the_stand_in_through_prism() {
        let h = Harness::via_prism(config()).await;
        embeddings(&h).await;
        h.assert_no_violations();
    }
}

#[tokio::test]
async fn input_limits_and_malformed_requests() {
    let h = Harness::direct(config()).await;
    let too_many: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    let reply = run(&h, SMALL, &json!({ "text": too_many })).await;
    let message = reply.error(400, 5006);
    assert!(message.contains("100"), "{message}");
    assert_eq!(reply.headers["cf-emulator-stand-in"], MINILM);
    assert_eq!(reply.json()["result"], json!({}));
    for bad in [
        json!({}),
        json!({"text": []}),
        json!({"text": ""}),
        json!({"text": ["fine", ""]}),
        json!({"text": [1]}),
        json!({"text": {"a": 1}}),
        json!({"text": "x", "pooling": "max"}),
        json!(["x"]),
    ] {
        run(&h, SMALL, &bad).await.error(400, 5006);
    }
    let path = h.path(&format!("ai/run/{SMALL}"));
    h.send(Method::POST, &path, Some("application/json"), "{\"text\": ")
        .await
        .error(400, 5006);
    h.send(Method::POST, &path, Some("application/json"), "")
        .await
        .error(400, 3003);
    h.send(Method::GET, &path, None, "").await.error(405, 7001);
}

#[tokio::test]
async fn cls_pooling_is_refused_not_faked() {
    let h = Harness::direct(config()).await;
    let reply = run(&h, SMALL, &json!({"text": "x", "pooling": "cls"})).await;
    let message = reply.error(400, 5006);
    assert!(
        message.contains("mean") && message.contains(MINILM),
        "{message}"
    );
}

#[tokio::test]
async fn unknown_models_are_named_with_the_stand_ins() {
    let h = Harness::direct(config()).await;
    let reply = run(&h, "@cf/meta/llama-3-8b-instruct", &json!({"text": "x"})).await;
    let message = reply.error(400, 5007);
    assert!(
        message.contains("@cf/meta/llama-3-8b-instruct"),
        "{message}"
    );
    assert!(
        message.contains(SMALL) && message.contains(BASE),
        "{message}"
    );
    assert_eq!(reply.headers["cf-emulator-stand-in"], "none");

    let none = Harness::direct(EmulatorConfig {
        models: Vec::new(),
        ..EmulatorConfig::default()
    })
    .await;
    let message = run(&none, SMALL, &json!({"text": "x"}))
        .await
        .error(400, 5007);
    assert!(message.contains("none"), "{message}");
}

#[tokio::test]
async fn missing_weights_say_how_to_get_them() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::direct(EmulatorConfig {
        models: vec![ModelStandIn {
            local_dir: Some(dir.path().join("absent")),
            ..ModelStandIn::default_small()
        }],
        ..EmulatorConfig::default()
    })
    .await;
    let reply = run(&h, SMALL, &json!({"text": "x"})).await;
    let message = reply.error(503, 3099);
    assert!(message.contains("cargo xtask fetch-model"), "{message}");
    assert!(message.contains("MCP_MEMORY_MODEL_DIR"), "{message}");
    assert_eq!(reply.headers["cf-emulator-stand-in"], MINILM);
}

#[tokio::test]
async fn bodies_over_the_request_limit_are_413() {
    let h = Harness::direct(config()).await;
    let mut stream = tokio::net::TcpStream::connect(h.emulator.addr())
        .await
        .unwrap();
    let head = format!(
        "POST /client/v4{} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        h.path(&format!("ai/run/{SMALL}")),
        h.token,
        cloudflare_emulator::ai::MAX_REQUEST_BYTES + 1
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"{\"text\": \"").await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"code\":3006"), "{answer}");
}

/// Workers AI's BGE models read at most 512 input tokens; the emulator refuses more with
/// 400 / 5006 (its documented strict choice), counting `[CLS]` and `[SEP]`.
#[tokio::test]
async fn texts_over_512_tokens_are_refused_for_bge_models() {
    let h = Harness::direct(config()).await;
    // One token per CJK ideograph, plus [CLS] and [SEP]: 510 fit, 511 do not.
    let fits = "记".repeat(510);
    let over = "记".repeat(511);
    assert_eq!(
        run(&h, SMALL, &json!({ "text": fits })).await.result()["shape"],
        json!([1, 384])
    );
    let reply = run(&h, SMALL, &json!({ "text": ["short", over] })).await;
    let message = reply.error(400, 5006);
    assert!(
        message.contains("text 1") && message.contains("513 tokens") && message.contains("512"),
        "{message}"
    );
    run(&h, BASE, &json!({ "text": "word ".repeat(600) }))
        .await
        .error(400, 5006);
}
