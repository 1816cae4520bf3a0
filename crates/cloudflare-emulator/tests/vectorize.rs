//! Vectorize v2 against the emulator, directly and through Prism (spec conformance).

mod common;

use std::time::Duration;

use cloudflare_emulator::EmulatorConfig;
use common::Harness;
use http::Method;
use serde_json::{Value, json};

const NDJSON: &str = "application/x-ndjson";

fn ix(h: &Harness, name: &str, tail: &str) -> String {
    h.path(&format!("vectorize/v2/indexes/{name}{tail}"))
}

async fn create(h: &Harness, name: &str, dims: usize, metric: &str) -> Value {
    h.json(
        Method::POST,
        &h.path("vectorize/v2/indexes"),
        &json!({"name": name, "config": {"dimensions": dims, "metric": metric}}),
    )
    .await
    .result()
}

fn ndjson(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

async fn write(h: &Harness, name: &str, op: &str, lines: &[Value]) -> String {
    let r = h
        .send(
            Method::POST,
            &ix(h, name, &format!("/{op}")),
            Some(NDJSON),
            ndjson(lines),
        )
        .await
        .result();
    r["mutationId"].as_str().expect("a mutation id").to_owned()
}

async fn query(h: &Harness, name: &str, body: Value) -> Value {
    h.json(Method::POST, &ix(h, name, "/query"), &body)
        .await
        .result()
}

/// Every number as a float (Prism re-encodes `1.0` as `1`).
fn floats(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(a) => Value::Array(a.iter().map(floats).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), floats(v))).collect()),
        other => other.clone(),
    }
}

fn ids(result: &Value) -> Vec<String> {
    result["matches"]
        .as_array()
        .expect("matches")
        .iter()
        .map(|m| m["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Runs `scenario` (on `config()`) as two tests in module `test`: `direct`, and `via_prism`
/// (asserting no violation; ignored when Prism is not installed).
macro_rules! both {
    ($test:ident: $scenario:ident on $config:path) => {
        mod $test {
            use super::*;

            #[tokio::test]
            async fn direct() {
                $scenario(Harness::direct($config()).await).await;
            }

            cloudflare_testkit::prism_tests! {
                #[tokio::test]
                async fn via_prism() {
                    let h = $scenario(Harness::via_prism($config()).await).await;
                    h.assert_no_violations();
                }
            }
        }
    };
}

async fn index_lifecycle(h: Harness) -> Harness {
    let created = create(&h, "docs-index", 3, "cosine").await;
    assert_eq!(created["name"], "docs-index");
    assert_eq!(
        created["config"],
        json!({"dimensions": 3, "metric": "cosine"})
    );
    assert!(created["created_on"].as_str().unwrap().ends_with('Z'));
    let preset = h
        .json(
            Method::POST,
            &h.path("vectorize/v2/indexes"),
            &json!({"name": "preset-index", "description": "d", "config": {"preset": "@cf/baai/bge-small-en-v1.5"}}),
        )
        .await
        .result();
    assert_eq!(
        preset["config"],
        json!({"dimensions": 384, "metric": "cosine"})
    );
    assert_eq!(preset["description"], "d");
    let dup = h
        .json(
            Method::POST,
            &h.path("vectorize/v2/indexes"),
            &json!({"name": "docs-index", "config": {"dimensions": 3, "metric": "cosine"}}),
        )
        .await;
    assert!(
        dup.error(400, 3002)
            .contains("vectorize.index.duplicate_name")
    );
    let list = h.get(&h.path("vectorize/v2/indexes")).await.result();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["docs-index", "preset-index"]);
    let got = h.get(&ix(&h, "docs-index", "")).await.result();
    assert_eq!(got, created);
    let info = h.get(&ix(&h, "docs-index", "/info")).await.result();
    assert_eq!(info["dimensions"], 3);
    assert_eq!(info["vectorCount"], 0);
    assert_eq!(info["processedUpToDatetime"], Value::Null);
    h.send(Method::DELETE, &ix(&h, "docs-index", ""), None, "")
        .await
        .result();
    h.get(&ix(&h, "docs-index", "")).await.error(400, 3000);
    h.get(&ix(&h, "docs-index", "/info")).await.error(400, 3000);
    h.send(Method::DELETE, &ix(&h, "docs-index", ""), None, "")
        .await
        .error(400, 3000);
    // The name can be reused after deletion.
    create(&h, "docs-index", 2, "euclidean").await;
    h
}

both!(indexes_are_created_listed_read_and_deleted: index_lifecycle on immediate);

async fn vectors(h: Harness) -> Harness {
    create(&h, "vec", 2, "cosine").await;
    let m1 = write(
        &h,
        "vec",
        "insert",
        &[
            json!({"id": "a", "values": [1.0, 0.0], "metadata": {"kind": "x"}}),
            json!({"id": "b", "values": [0.0, 1.0], "namespace": "ns1"}),
            json!({"id": "c", "values": [-1.0, 0.1]}),
        ],
    )
    .await;
    assert_eq!(m1.len(), 36);
    // insert keeps the first vector of an id, upsert replaces it.
    write(
        &h,
        "vec",
        "insert",
        &[json!({"id": "a", "values": [0.0, -1.0]})],
    )
    .await;
    // get_by_ids answers an array (the spec's referenced schema); Prism also applies the
    // `type: object` the spec puts beside that `$ref`, so it is checked directly only.
    if !h.via_prism_proxy() {
        let got = h
            .json(
                Method::POST,
                &ix(&h, "vec", "/get_by_ids"),
                &json!({"ids": ["a", "zz"]}),
            )
            .await
            .result();
        assert_eq!(
            got,
            json!([{"id": "a", "values": [1.0, 0.0], "metadata": {"kind": "x"}}])
        );
    }
    let m3 = write(
        &h,
        "vec",
        "upsert",
        &[json!({"id": "c", "values": [-1.0, 0.0], "metadata": {"v": 2}})],
    )
    .await;
    let info = h.get(&ix(&h, "vec", "/info")).await.result();
    assert_eq!(info["vectorCount"], 3);
    assert_eq!(info["processedUpToMutation"], m3.as_str());
    assert!(info["processedUpToDatetime"].is_string());

    let r = query(&h, "vec", json!({"vector": [1.0, 0.0]})).await;
    assert_eq!(ids(&r), ["a", "b", "c"]);
    assert_eq!(r["count"], 3);
    assert!((r["matches"][0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-6);
    assert!((r["matches"][2]["score"].as_f64().unwrap() + 1.0).abs() < 1e-6);
    assert!(r["matches"][0].get("values").is_none());
    assert!(r["matches"][0].get("metadata").is_none());
    let r = query(
        &h,
        "vec",
        json!({"vector": [1.0, 0.0], "topK": 1, "returnValues": true, "returnMetadata": "all"}),
    )
    .await;
    assert_eq!(
        floats(&r["matches"]),
        floats(
            &json!([{"id": "a", "score": 1.0, "values": [1.0, 0.0], "metadata": {"kind": "x"}}])
        )
    );
    let r = query(&h, "vec", json!({"vector": [1.0, 0.0], "namespace": "ns1"})).await;
    assert_eq!(ids(&r), ["b"]);
    assert_eq!(r["matches"][0]["namespace"], "ns1");

    // list with cursor paging, in id order
    let page = h
        .get(&format!("{}?count=2", ix(&h, "vec", "/list")))
        .await
        .result();
    assert_eq!(page["count"], 2);
    assert_eq!(page["totalCount"], 3);
    assert_eq!(page["isTruncated"], true);
    assert_eq!(page["vectors"], json!([{"id": "a"}, {"id": "b"}]));
    let cursor = page["nextCursor"].as_str().unwrap();
    let page = h
        .get(&format!(
            "{}?count=2&cursor={cursor}",
            ix(&h, "vec", "/list")
        ))
        .await
        .result();
    assert_eq!(page["vectors"], json!([{"id": "c"}]));
    assert_eq!(page["isTruncated"], false);
    assert_eq!(page["nextCursor"], Value::Null);

    let del = h
        .json(
            Method::POST,
            &ix(&h, "vec", "/delete_by_ids"),
            &json!({"ids": ["a", "nope"]}),
        )
        .await
        .result();
    assert!(del["mutationId"].is_string());
    let r = query(&h, "vec", json!({"vector": [1.0, 0.0]})).await;
    assert_eq!(ids(&r), ["b", "c"]);
    h.json(
        Method::POST,
        &ix(&h, "missing", "/query"),
        &json!({"vector": [1.0, 0.0]}),
    )
    .await
    .error(400, 3000);
    h
}

both!(vectors_are_written_queried_read_listed_and_deleted: vectors on immediate);

async fn metrics(h: Harness) -> Harness {
    create(&h, "euc", 2, "euclidean").await;
    create(&h, "dot", 2, "dot-product").await;
    let lines = [
        json!({"id": "near", "values": [1.0, 0.0]}),
        json!({"id": "far", "values": [4.0, 4.0]}),
    ];
    write(&h, "euc", "upsert", &lines).await;
    write(&h, "dot", "upsert", &lines).await;
    let r = query(&h, "euc", json!({"vector": [1.0, 1.0]})).await;
    assert_eq!(ids(&r), ["near", "far"]);
    assert!((r["matches"][0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-6);
    assert!((r["matches"][1]["score"].as_f64().unwrap() - 18f64.sqrt()).abs() < 1e-5);
    // dot-product: the negative dot product, lower is closer.
    let r = query(&h, "dot", json!({"vector": [1.0, 1.0]})).await;
    assert_eq!(ids(&r), ["far", "near"]);
    assert!((r["matches"][0]["score"].as_f64().unwrap() + 8.0).abs() < 1e-6);
    h
}

both!(scores_follow_each_metric: metrics on immediate);

async fn filters(h: Harness) -> Harness {
    create(&h, "flt", 2, "cosine").await;
    write(
        &h,
        "flt",
        "upsert",
        &[json!({"id": "before", "values": [1.0, 0.0], "metadata": {"kind": "note", "n": 1}})],
    )
    .await;
    for (p, t) in [
        ("kind", "string"),
        ("n", "number"),
        ("deep.flag", "boolean"),
    ] {
        let r = h
            .json(
                Method::POST,
                &ix(&h, "flt", "/metadata_index/create"),
                &json!({"propertyName": p, "indexType": t}),
            )
            .await
            .result();
        assert!(r["mutationId"].is_string());
    }
    let list = h.get(&ix(&h, "flt", "/metadata_index/list")).await.result();
    assert_eq!(
        list["metadataIndexes"],
        json!([
            {"propertyName": "kind", "indexType": "string"},
            {"propertyName": "n", "indexType": "number"},
            {"propertyName": "deep.flag", "indexType": "boolean"}
        ])
    );
    write(
        &h,
        "flt",
        "upsert",
        &[
            json!({"id": "n1", "values": [1.0, 0.1], "metadata": {"kind": "note", "n": 1, "deep": {"flag": true}}}),
            json!({"id": "n2", "values": [1.0, 0.2], "metadata": {"kind": "note", "n": 5, "deep": {"flag": false}}}),
            json!({"id": "t1", "values": [1.0, 0.3], "metadata": {"kind": "task", "n": 9}}),
        ],
    )
    .await;
    let q = |filter: Value| json!({"vector": [1.0, 0.0], "filter": filter});
    // "before" was written before the metadata indexes existed: no filter matches it.
    assert_eq!(
        ids(&query(&h, "flt", q(json!({"kind": "note"}))).await),
        ["n1", "n2"]
    );
    assert_eq!(
        ids(&query(&h, "flt", q(json!({"kind": {"$ne": "note"}}))).await),
        ["t1"]
    );
    assert_eq!(
        ids(&query(&h, "flt", q(json!({"kind": {"$in": ["task", "x"]}}))).await),
        ["t1"]
    );
    assert_eq!(
        ids(&query(&h, "flt", q(json!({"kind": {"$nin": ["task"]}}))).await),
        ["n1", "n2"]
    );
    assert_eq!(
        ids(&query(&h, "flt", q(json!({"n": {"$gt": 1, "$lte": 9}}))).await),
        ["n2", "t1"]
    );
    assert_eq!(
        ids(&query(&h, "flt", q(json!({"n": {"$lt": 5}}))).await),
        ["n1"]
    );
    assert_eq!(
        ids(&query(&h, "flt", q(json!({"n": {"$gte": 5}, "kind": "note"}))).await),
        ["n2"]
    );
    assert_eq!(
        ids(&query(&h, "flt", q(json!({"deep.flag": true}))).await),
        ["n1"]
    );
    assert_eq!(
        ids(&query(&h, "flt", q(json!({"kind": {"$gte": "no", "$lt": "np"}}))).await),
        ["n1", "n2"]
    );
    assert!(ids(&query(&h, "flt", q(json!({"other": "x"}))).await).is_empty());
    // Re-upserting "before" indexes it.
    write(
        &h,
        "flt",
        "upsert",
        &[json!({"id": "before", "values": [1.0, 0.0], "metadata": {"kind": "note", "n": 1}})],
    )
    .await;
    assert_eq!(
        ids(&query(&h, "flt", q(json!({"kind": "note"}))).await),
        ["before", "n1", "n2"]
    );
    let r = query(&h, "flt", json!({"vector": [1.0, 0.0], "topK": 1, "returnMetadata": "indexed", "filter": {"deep.flag": true}})).await;
    assert_eq!(
        floats(&r["matches"][0]["metadata"]),
        floats(&json!({"kind": "note", "n": 1, "deep": {"flag": true}}))
    );
    // Deleting a metadata index stops filtering on it.
    h.json(
        Method::POST,
        &ix(&h, "flt", "/metadata_index/delete"),
        &json!({"propertyName": "kind"}),
    )
    .await
    .result();
    assert!(ids(&query(&h, "flt", q(json!({"kind": "note"}))).await).is_empty());
    let list = h.get(&ix(&h, "flt", "/metadata_index/list")).await.result();
    assert_eq!(list["metadataIndexes"].as_array().unwrap().len(), 2);
    h
}

both!(filters_apply_to_indexed_metadata_only: filters on immediate);

/// Mutations visible at once: for the tests of everything but visibility (the default
/// config delays them by [`cloudflare_emulator::DEFAULT_MUTATION_DELAY`], as Cloudflare does).
fn immediate() -> EmulatorConfig {
    EmulatorConfig {
        mutation_delay: Duration::ZERO,
        ..EmulatorConfig::default()
    }
}

fn delayed() -> EmulatorConfig {
    EmulatorConfig {
        mutation_delay: Duration::from_millis(400),
        ..EmulatorConfig::default()
    }
}

async fn eventual(h: Harness) -> Harness {
    create(&h, "slow", 2, "cosine").await;
    let m = write(
        &h,
        "slow",
        "upsert",
        &[json!({"id": "a", "values": [1.0, 0.0]})],
    )
    .await;
    let info = h.get(&ix(&h, "slow", "/info")).await.result();
    assert_eq!(info["vectorCount"], 0);
    assert!(info.get("processedUpToMutation").is_none());
    assert!(ids(&query(&h, "slow", json!({"vector": [1.0, 0.0]})).await).is_empty());
    tokio::time::sleep(Duration::from_millis(600)).await;
    let info = h.get(&ix(&h, "slow", "/info")).await.result();
    assert_eq!(info["vectorCount"], 1);
    assert_eq!(info["processedUpToMutation"], m.as_str());
    assert_eq!(
        ids(&query(&h, "slow", json!({"vector": [1.0, 0.0]})).await),
        ["a"]
    );
    h
}

both!(mutations_become_visible_after_the_delay: eventual on delayed);

/// Requests outside the spec's or Cloudflare's limits: direct only (Prism refuses some).
#[tokio::test]
async fn limits_are_enforced_with_cloudflare_errors() {
    let h = Harness::direct(immediate()).await;
    let idx = h.path("vectorize/v2/indexes");
    for (body, code) in [
        (
            json!({"name": "Bad", "config": {"dimensions": 2, "metric": "cosine"}}),
            3001,
        ),
        (
            json!({"name": "a".repeat(65), "config": {"dimensions": 2, "metric": "cosine"}}),
            3001,
        ),
        (
            json!({"name": "ok-name", "config": {"dimensions": 1537, "metric": "cosine"}}),
            3001,
        ),
        (
            json!({"name": "ok-name", "config": {"dimensions": 0, "metric": "cosine"}}),
            3001,
        ),
        (
            json!({"name": "ok-name", "config": {"dimensions": 2, "metric": "manhattan"}}),
            3001,
        ),
        (
            json!({"name": "ok-name", "config": {"preset": "nope"}}),
            3001,
        ),
        (json!({"name": "ok-name"}), 3001),
    ] {
        h.json(Method::POST, &idx, &body).await.error(400, code);
    }
    h.send(Method::POST, &idx, Some("application/json"), "{not json")
        .await
        .error(400, 40026);
    create(&h, &"a".repeat(64), 1536, "cosine").await;
    create(&h, "lim", 2, "cosine").await;

    let v = |id: &str| json!({"id": id, "values": [1.0, 0.5]});
    write(&h, "lim", "upsert", &[v(&"i".repeat(64))]).await;
    let too_long = h
        .send(
            Method::POST,
            &ix(&h, "lim", "/upsert"),
            Some(NDJSON),
            ndjson(&[v(&"i".repeat(65))]),
        )
        .await;
    assert!(
        too_long
            .error(400, 40008)
            .contains("id too long; max is 64 bytes, got 65 bytes")
    );
    let dims = h
        .send(
            Method::POST,
            &ix(&h, "lim", "/insert"),
            Some(NDJSON),
            ndjson(&[json!({"id": "x", "values": [1.0]})]),
        )
        .await;
    assert!(
        dims.error(400, 40012)
            .contains("expected 2 dimensions, and got 1 dimensions")
    );
    h.send(
        Method::POST,
        &ix(&h, "lim", "/upsert"),
        Some(NDJSON),
        "{oops\n",
    )
    .await
    .error(400, 40023);
    // unparsable-behavior=discard skips the bad line.
    h.send(
        Method::POST,
        &format!("{}?unparsable-behavior=discard", ix(&h, "lim", "/upsert")),
        Some(NDJSON),
        format!("{{oops\n{}\n", v("ok")),
    )
    .await
    .result();
    // metadata: 10 KiB passes, one byte more fails.
    let overhead = json!({"t": ""}).to_string().len();
    let meta = |n: usize| json!({"id": "m", "values": [1.0, 0.5], "metadata": {"t": "x".repeat(n - overhead)}});
    write(&h, "lim", "upsert", &[meta(10 * 1024)]).await;
    h.send(
        Method::POST,
        &ix(&h, "lim", "/upsert"),
        Some(NDJSON),
        ndjson(&[meta(10 * 1024 + 1)]),
    )
    .await
    .error(400, 40009);
    h.send(
        Method::POST,
        &ix(&h, "lim", "/upsert"),
        Some(NDJSON),
        ndjson(&[json!({"id": "k", "values": [1.0, 0.5], "metadata": {"$x": 1}})]),
    )
    .await
    .error(400, 40010);
    h.send(
        Method::POST,
        &ix(&h, "lim", "/upsert"),
        Some(NDJSON),
        ndjson(&[json!({"id": "k", "values": [1.0, 0.5], "namespace": "n".repeat(65)})]),
    )
    .await
    .error(400, 40011);
    // 5000 vectors per request pass, 5001 fail.
    let batch: Vec<Value> = (0..5000).map(|i| v(&format!("b{i}"))).collect();
    write(&h, "lim", "upsert", &batch).await;
    let mut over = batch.clone();
    over.push(v("one-more"));
    h.send(
        Method::POST,
        &ix(&h, "lim", "/upsert"),
        Some(NDJSON),
        ndjson(&over),
    )
    .await
    .error(400, 40005);

    // topK caps.
    let qpath = ix(&h, "lim", "/query");
    let q = |body: Value| {
        let h = &h;
        let qpath = qpath.clone();
        async move { h.json(Method::POST, &qpath, &body).await }
    };
    assert_eq!(
        q(json!({"vector": [1.0, 0.5], "topK": 100})).await.result()["count"],
        100
    );
    q(json!({"vector": [1.0, 0.5], "topK": 101}))
        .await
        .error(400, 40025);
    assert_eq!(
        q(json!({"vector": [1.0, 0.5], "topK": 20, "returnValues": true}))
            .await
            .result()["count"],
        20
    );
    assert!(
        q(json!({"vector": [1.0, 0.5], "topK": 21, "returnValues": true}))
            .await
            .error(400, 40025)
            .contains("max top K is 20")
    );
    q(json!({"vector": [1.0, 0.5], "topK": 21, "returnMetadata": "all"}))
        .await
        .error(400, 40025);
    assert_eq!(
        q(json!({"vector": [1.0, 0.5], "topK": 100, "returnMetadata": "indexed"}))
            .await
            .result()["count"],
        100
    );
    q(json!({"vector": [1.0, 0.5], "topK": 0}))
        .await
        .error(400, 40025);
    q(json!({"vector": [1.0, 0.5], "returnMetadata": true}))
        .await
        .error(400, 40026);
    q(json!({"vector": [1.0]})).await.error(400, 40006);
    q(json!({"vector": [1.0, 0.5], "filter": {"a": {"$regex": "x"}}}))
        .await
        .error(400, 40030);
    q(json!({"vector": [1.0, 0.5], "filter": {}}))
        .await
        .error(400, 40030);
    h.send(
        Method::POST,
        &ix(&h, "lim", "/query"),
        Some("application/json"),
        "nope",
    )
    .await
    .error(400, 40026);

    // get_by_ids: 20 ids pass, 21 fail.
    let some: Vec<String> = (0..21).map(|i| format!("b{i}")).collect();
    let got = h
        .json(
            Method::POST,
            &ix(&h, "lim", "/get_by_ids"),
            &json!({"ids": &some[..20]}),
        )
        .await
        .result();
    assert_eq!(got.as_array().unwrap().len(), 20);
    h.json(
        Method::POST,
        &ix(&h, "lim", "/get_by_ids"),
        &json!({"ids": some}),
    )
    .await
    .error(400, 40007);
    // delete_by_ids has the same cap (undocumented; observed in production).
    h.json(
        Method::POST,
        &ix(&h, "lim", "/delete_by_ids"),
        &json!({"ids": some}),
    )
    .await
    .error(400, 40007);
    assert!(
        h.json(
            Method::POST,
            &ix(&h, "lim", "/delete_by_ids"),
            &json!({"ids": &some[..20]}),
        )
        .await
        .result()["mutationId"]
            .is_string()
    );
    h.json(
        Method::POST,
        &ix(&h, "lim", "/delete_by_ids"),
        &json!({"ids": "x"}),
    )
    .await
    .error(400, 40026);

    // list count 1..=1000.
    let list = ix(&h, "lim", "/list");
    assert_eq!(
        h.get(&format!("{list}?count=1000")).await.result()["count"],
        1000
    );
    assert_eq!(h.get(&list).await.result()["count"], 100);
    h.get(&format!("{list}?count=1001")).await.error(400, 40034);
    h.get(&format!("{list}?count=0")).await.error(400, 40034);
    h.get(&format!("{list}?cursor=zz")).await.error(400, 40034);

    // 10 metadata indexes, not 11.
    for i in 0..10 {
        h.json(
            Method::POST,
            &ix(&h, "lim", "/metadata_index/create"),
            &json!({"propertyName": format!("p{i}"), "indexType": "string"}),
        )
        .await
        .result();
    }
    h.json(
        Method::POST,
        &ix(&h, "lim", "/metadata_index/create"),
        &json!({"propertyName": "p10", "indexType": "string"}),
    )
    .await
    .error(400, 40031);
    h.json(
        Method::POST,
        &ix(&h, "lim", "/metadata_index/create"),
        &json!({"propertyName": "x", "indexType": "date"}),
    )
    .await
    .error(400, 40026);
    h.json(
        Method::POST,
        &ix(&h, "lim", "/metadata_index/delete"),
        &json!({"propertyName": "nope"}),
    )
    .await
    .error(400, 40032);
}

#[tokio::test]
async fn multipart_uploads_are_accepted_like_the_docs_python_example() {
    let h = Harness::direct(immediate()).await;
    create(&h, "mp", 2, "cosine").await;
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"vectors\"; filename=\"v.ndjson\"\r\nContent-Type: application/octet-stream\r\n\r\n{\"id\":\"a\",\"values\":[1,0]}\n{\"id\":\"b\",\"values\":[0,1]}\n\r\n--XyZ--\r\n";
    h.send(
        Method::POST,
        &ix(&h, "mp", "/insert"),
        Some("multipart/form-data; boundary=XyZ"),
        body,
    )
    .await
    .result();
    assert_eq!(
        h.get(&ix(&h, "mp", "/info")).await.result()["vectorCount"],
        2
    );
}

#[tokio::test]
async fn state_survives_a_restart_with_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let config = || EmulatorConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..immediate()
    };
    {
        let h = Harness::direct(config()).await;
        create(&h, "keep", 2, "cosine").await;
        h.json(
            Method::POST,
            &ix(&h, "keep", "/metadata_index/create"),
            &json!({"propertyName": "k", "indexType": "string"}),
        )
        .await
        .result();
        write(
            &h,
            "keep",
            "upsert",
            &[
                json!({"id": "a", "values": [1.0, 0.0], "metadata": {"k": "v"}, "namespace": "n"}),
                json!({"id": "b", "values": [0.0, 1.0]}),
            ],
        )
        .await;
        h.json(
            Method::POST,
            &ix(&h, "keep", "/delete_by_ids"),
            &json!({"ids": ["b"]}),
        )
        .await
        .result();
        h.emulator.shutdown().await;
    }
    let h = Harness::direct(config()).await;
    let r = query(
        &h,
        "keep",
        json!({"vector": [1.0, 0.0], "filter": {"k": "v"}, "returnMetadata": "all"}),
    )
    .await;
    assert_eq!(
        floats(&r["matches"]),
        floats(&json!([{"id": "a", "score": 1.0, "metadata": {"k": "v"}, "namespace": "n"}]))
    );
    assert_eq!(
        h.get(&ix(&h, "keep", "/info")).await.result()["vectorCount"],
        1
    );
}

#[tokio::test]
async fn pending_mutations_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || EmulatorConfig {
        data_dir: Some(dir.path().to_path_buf()),
        mutation_delay: Duration::from_millis(300),
        ..EmulatorConfig::default()
    };
    {
        let h = Harness::direct(config()).await;
        create(&h, "later", 2, "cosine").await;
        write(
            &h,
            "later",
            "upsert",
            &[json!({"id": "a", "values": [1.0, 0.0]})],
        )
        .await;
        h.emulator.shutdown().await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let h = Harness::direct(config()).await;
    assert_eq!(
        h.get(&ix(&h, "later", "/info")).await.result()["vectorCount"],
        1
    );
}

#[tokio::test]
async fn a_query_over_10k_vectors_of_384_dimensions_ranks_exactly() {
    // Speed is measured by `cargo bench -p cloudflare-emulator --bench emulator`; here the
    // 10k-vector index must return the exact top 10, best first.
    let h = Harness::direct(immediate()).await;
    create(&h, "big", 384, "cosine").await;
    for batch in 0..2 {
        let lines: Vec<Value> = (0..5000)
            .map(|i| {
                let n = batch * 5000 + i;
                let values: Vec<f32> = (0..384)
                    .map(|d| ((n * 31 + d * 7) % 97) as f32 / 97.0 - 0.5)
                    .collect();
                json!({"id": format!("v{n}"), "values": values})
            })
            .collect();
        write(&h, "big", "upsert", &lines).await;
    }
    // The query is stored vector v1234 itself (the generator repeats every 97 ids, so
    // v70, v167, … are the same vector): the top 10 are copies of it, with score 1.
    let n: u32 = 1234;
    let vector: Vec<f32> = (0..384)
        .map(|d| ((n * 31 + d * 7) % 97) as f32 / 97.0 - 0.5)
        .collect();
    let r = query(&h, "big", json!({"vector": vector, "topK": 10})).await;
    assert_eq!(r["count"], 10);
    let matches = r["matches"].as_array().unwrap();
    for m in matches {
        let id: u32 = m["id"].as_str().unwrap()[1..].parse().unwrap();
        assert_eq!(id % 97, n % 97, "{m}");
        assert!((m["score"].as_f64().unwrap() - 1.0).abs() < 1e-4, "{m}");
    }
    let scores: Vec<f64> = matches
        .iter()
        .map(|m| m["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
}
