use super::*;
use std::sync::Mutex;

use cloudflare_http::{
    ApiToken, ClientBuilder, ClientConfig, HttpRequest, HttpResponse, Operation, RetryConfig,
    is_idempotent,
};
use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::{Service, ServiceExt};

use crate::{Filter, MetadataIndexType, ReturnMetadata};

/// What the capture layer saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    operation: Operation,
    method: Method,
    uri: String,
    content_type: Option<String>,
    idempotent: bool,
    body: Bytes,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A client whose user layer records each request and answers `reply(path)` as the
/// envelope's result, without any network.
fn client(reply: fn(&Method, &str) -> (u16, Value)) -> (Client, Log) {
    let log: Log = Arc::default();
    let seen = Arc::clone(&log);
    let layer = tower::layer::layer_fn(move |_inner: cloudflare_http::HttpService| {
        let seen = Arc::clone(&seen);
        tower::service_fn(move |request: HttpRequest| {
            let seen = Arc::clone(&seen);
            async move {
                let operation = Operation::of(&request);
                let idempotent = is_idempotent(&request);
                let (parts, body) = request.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                let uri = parts.uri.to_string();
                let (status, result) = reply(&parts.method, parts.uri.path());
                seen.lock().unwrap().push(Seen {
                    operation,
                    method: parts.method,
                    uri,
                    content_type: parts
                        .headers
                        .get(http::header::CONTENT_TYPE)
                        .map(|v| v.to_str().unwrap().to_owned()),
                    idempotent,
                    body,
                });
                let envelope = if status < 300 {
                    json!({"success": true, "errors": [], "messages": [], "result": result})
                } else {
                    json!({"success": false, "errors": [{"code": 1000, "message": "nope"}], "messages": [], "result": null})
                };
                Ok::<HttpResponse, cloudflare_http::CloudflareError>(
                    http::Response::builder()
                        .status(StatusCode::from_u16(status).unwrap())
                        .body(Bytes::from(envelope.to_string()))
                        .unwrap(),
                )
            }
        })
    });
    let mut config = ClientConfig::new("acc/1", ApiToken::new("t"));
    config.retry = RetryConfig {
        max_retries: 0,
        ..RetryConfig::default()
    };
    config.breaker = None;
    config.rate_limit = None;
    let client = ClientBuilder::new(config)
        .with_layer(layer)
        .build()
        .unwrap();
    (client, log)
}

fn reply(method: &Method, path: &str) -> (u16, Value) {
    let index = json!({"name": "idx", "config": {"dimensions": 3, "metric": "cosine"}, "created_on": "2024-01-01T00:00:00Z"});
    let result = if path.ends_with("/indexes") && method == Method::GET {
        json!([index])
    } else if path.ends_with("/info") {
        json!({"dimensions": 3, "vectorCount": 7, "processedUpToMutation": "m0", "processedUpToDatetime": null})
    } else if path.ends_with("/query") {
        json!({"count": 1, "matches": [{"id": "a", "score": 0.5, "metadata": {"k": 1}}]})
    } else if path.ends_with("/get_by_ids") {
        json!([{"id": "a", "values": [1.0, 2.0, 3.0], "namespace": null}])
    } else if path.ends_with("/metadata_index/list") {
        json!({"metadataIndexes": [{"propertyName": "kind", "indexType": "string"}]})
    } else if path.ends_with("/list") {
        json!({"count": 1, "totalCount": 9, "isTruncated": true, "nextCursor": "c2", "vectors": [{"id": "a"}]})
    } else if path.ends_with("/insert")
        || path.ends_with("/upsert")
        || path.ends_with("/delete_by_ids")
        || path.contains("/metadata_index/")
    {
        json!({"mutationId": "mut-1"})
    } else {
        index
    };
    (200, result)
}

const PREFIX: &str = "/accounts/acc%2F1/vectorize/v2/indexes";

#[tokio::test]
async fn index_management_requests_match_the_spec() {
    let (client, log) = client(reply);
    let vectorize = VectorizeClient::new(&client);
    let created = vectorize
        .create_index(&CreateIndex::new("idx", 3, crate::Metric::DotProduct).description("d"))
        .await
        .unwrap();
    assert_eq!(created.name.as_deref(), Some("idx"));
    let got = vectorize.get_index("my idx/1").await.unwrap();
    assert_eq!(got.config.unwrap().dimensions, 3);
    vectorize.delete_index("idx").await.unwrap();
    assert_eq!(vectorize.list_indexes().await.unwrap().len(), 1);

    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    assert_eq!(
        seen[0].operation,
        Operation::new("vectorize", "create_index")
    );
    assert_eq!(
        (seen[0].method.clone(), seen[0].uri.as_str()),
        (Method::POST, PREFIX)
    );
    assert_eq!(seen[0].content_type.as_deref(), Some("application/json"));
    assert!(!seen[0].idempotent);
    assert_eq!(
        seen[0].json(),
        json!({"name": "idx", "config": {"dimensions": 3, "metric": "dot-product"}, "description": "d"})
    );
    assert_eq!(seen[1].method, Method::GET);
    assert_eq!(seen[1].uri, format!("{PREFIX}/my%20idx%2F1"));
    assert_eq!(seen[2].method, Method::DELETE);
    assert_eq!(seen[2].uri, format!("{PREFIX}/idx"));
    assert!(seen[2].idempotent);
    assert_eq!(
        (seen[3].method.clone(), seen[3].uri.as_str()),
        (Method::GET, PREFIX)
    );
}

#[tokio::test]
async fn index_operations_send_the_documented_requests() {
    let (client, log) = client(reply);
    let index = VectorizeClient::new(&client)
        .index("idx")
        .with_dimensions(3);
    assert_eq!(index.name(), "idx");
    assert_eq!(index.dimensions(), Some(3));

    let info = index.info().await.unwrap();
    assert_eq!(info.vector_count, Some(7));
    let vectors = [
        Vector::new("a", vec![1.0, 2.0, 3.0]).with_namespace("ns"),
        Vector::new("b", vec![4.0, 5.0, 6.0]),
    ];
    let batch = index.insert(&vectors).await.unwrap();
    assert_eq!(
        (batch.mutation_ids.as_slice(), batch.vectors),
        (&["mut-1".to_owned()][..], 2)
    );
    index.upsert(&vectors).await.unwrap();
    let query = QueryVectors::new(vec![1.0, 0.0, 0.0])
        .top_k(3)
        .return_metadata(ReturnMetadata::Indexed)
        .filter(Filter::new().eq("k", 1))
        .namespace("ns");
    let result = index.query(&query).await.unwrap();
    assert_eq!(result.matches[0].id, "a");
    let got = index.get_by_ids(&["a".to_owned()]).await.unwrap();
    assert_eq!(got[0].values, [1.0, 2.0, 3.0]);
    index.delete_by_ids(&["a".to_owned()]).await.unwrap();
    let page = index
        .list_vectors(&ListVectors {
            count: Some(50),
            cursor: Some("a+b/c=".to_owned()),
        })
        .await
        .unwrap();
    assert_eq!(page.next_cursor.as_deref(), Some("c2"));
    index.list_vectors(&ListVectors::default()).await.unwrap();
    index
        .create_metadata_index("kind", MetadataIndexType::Boolean)
        .await
        .unwrap();
    let listed = index.list_metadata_indexes().await.unwrap();
    assert_eq!(listed[0].index_type, MetadataIndexType::String);
    index.delete_metadata_index("kind").await.unwrap();

    let seen = log.lock().unwrap().clone();
    let summary: Vec<(&str, Method, String, bool)> = seen
        .iter()
        .map(|s| {
            (
                s.operation.name,
                s.method.clone(),
                s.uri.trim_start_matches(PREFIX).to_owned(),
                s.idempotent,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("info", Method::GET, "/idx/info".to_owned(), true),
            ("insert", Method::POST, "/idx/insert".to_owned(), false),
            ("upsert", Method::POST, "/idx/upsert".to_owned(), true),
            ("query", Method::POST, "/idx/query".to_owned(), true),
            (
                "get_by_ids",
                Method::POST,
                "/idx/get_by_ids".to_owned(),
                true
            ),
            (
                "delete_by_ids",
                Method::POST,
                "/idx/delete_by_ids".to_owned(),
                true
            ),
            (
                "list_vectors",
                Method::GET,
                "/idx/list?count=50&cursor=a%2Bb%2Fc%3D".to_owned(),
                true
            ),
            ("list_vectors", Method::GET, "/idx/list".to_owned(), true),
            (
                "create_metadata_index",
                Method::POST,
                "/idx/metadata_index/create".to_owned(),
                false
            ),
            (
                "list_metadata_indexes",
                Method::GET,
                "/idx/metadata_index/list".to_owned(),
                true
            ),
            (
                "delete_metadata_index",
                Method::POST,
                "/idx/metadata_index/delete".to_owned(),
                false
            ),
        ]
    );
    for write in &seen[1..3] {
        assert_eq!(write.content_type.as_deref(), Some("application/x-ndjson"));
        assert_eq!(
            std::str::from_utf8(&write.body).unwrap(),
            "{\"id\":\"a\",\"values\":[1.0,2.0,3.0],\"namespace\":\"ns\"}\n{\"id\":\"b\",\"values\":[4.0,5.0,6.0]}\n"
        );
    }
    assert_eq!(
        seen[3].json(),
        json!({"vector": [1.0, 0.0, 0.0], "topK": 3, "returnValues": false, "returnMetadata": "indexed", "filter": {"k": {"$eq": 1}}, "namespace": "ns"})
    );
    assert_eq!(seen[4].json(), json!({"ids": ["a"]}));
    assert_eq!(seen[5].json(), json!({"ids": ["a"]}));
    assert_eq!(
        seen[8].json(),
        json!({"propertyName": "kind", "indexType": "boolean"})
    );
    assert_eq!(seen[10].json(), json!({"propertyName": "kind"}));
    assert!(seen[0].body.is_empty() && seen[0].content_type.is_none());
}

#[tokio::test]
async fn validation_errors_send_nothing() {
    let (client, log) = client(reply);
    let vectorize = VectorizeClient::new(&client);
    let long = "x".repeat(65);
    let err = vectorize.get_index(&long).await.unwrap_err();
    assert!(matches!(
        err,
        VectorizeError::InvalidIndexName { actual: 65, .. }
    ));
    assert!(err.to_string().contains("64 bytes"), "{err}");
    assert!(vectorize.index("").info().await.is_err());
    let err = vectorize
        .create_index(&CreateIndex::new("i", 1537, crate::Metric::Cosine))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("1537") && err.to_string().contains("1536"),
        "{err}"
    );
    assert!(err.is_validation());

    let index = vectorize.index("idx").with_dimensions(3);
    let err = index
        .query(&QueryVectors::new(vec![1.0, 2.0]))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        VectorizeError::DimensionMismatch {
            expected: 3,
            actual: 2,
            ..
        }
    ));
    let err = index
        .query(
            &QueryVectors::new(vec![1.0; 3])
                .top_k(21)
                .return_values(true),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        VectorizeError::TopKOutOfRange {
            actual: 21,
            max: 20,
            ..
        }
    ));
    assert!(
        err.to_string()
            .contains("MAX_TOP_K_WITH_VALUES_OR_METADATA"),
        "{err}"
    );
    let err = index
        .get_by_ids(std::slice::from_ref(&long))
        .await
        .unwrap_err();
    assert!(matches!(err, VectorizeError::InvalidId { actual: 65, .. }));
    assert!(err.to_string().contains("64 bytes"), "{err}");
    assert!(index.get_by_ids(&[]).await.unwrap().is_empty());
    assert!(matches!(
        index.delete_by_ids(&[]).await.unwrap_err(),
        VectorizeError::Empty { what: "vector ids" }
    ));
    assert!(matches!(
        index.delete_by_ids(&[String::new()]).await.unwrap_err(),
        VectorizeError::InvalidId { actual: 0, .. }
    ));
    let err = index
        .list_vectors(&ListVectors {
            count: Some(1001),
            cursor: None,
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("1001") && err.to_string().contains("1000"),
        "{err}"
    );
    assert!(matches!(
        index
            .create_metadata_index("", MetadataIndexType::Number)
            .await
            .unwrap_err(),
        VectorizeError::EmptyPropertyName
    ));
    assert!(matches!(
        index.delete_metadata_index("").await.unwrap_err(),
        VectorizeError::EmptyPropertyName
    ));
    let err = index
        .upsert(&[Vector::new("a", vec![1.0, 2.0])])
        .await
        .unwrap_err();
    assert!(matches!(err, VectorizeError::DimensionMismatch { .. }));
    assert_eq!(index.upsert(&[]).await.unwrap(), MutationBatch::default());
    // 21 ids: Cloudflare's cap (40007) is checked before anything is sent, for both calls.
    let ids: Vec<String> = (0..21).map(|i| format!("v{i}")).collect();
    let err = index.get_by_ids(&ids).await.unwrap_err();
    assert!(matches!(
        err,
        VectorizeError::TooManyIds {
            operation: "get_by_ids",
            actual: 21
        }
    ));
    assert!(err.is_validation());
    let err = index.delete_by_ids(&ids).await.unwrap_err();
    assert!(matches!(
        err,
        VectorizeError::TooManyIds {
            operation: "delete_by_ids",
            actual: 21
        }
    ));
    assert!(log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn api_errors_come_through_typed() {
    let (client, _log) = client(|_, _| (404, Value::Null));
    let index = VectorizeClient::new(&client).index("gone");
    let err = index.info().await.unwrap_err();
    assert_eq!(
        err.cloudflare()
            .and_then(cloudflare_http::CloudflareError::status),
        Some(StatusCode::NOT_FOUND)
    );
    assert!(!err.is_validation());
}

#[tokio::test]
async fn the_clients_are_tower_services() {
    let (client, log) = client(reply);
    let mut vectorize = VectorizeClient::new(&client);
    std::future::poll_fn(|cx| Service::<ListIndexes>::poll_ready(&mut vectorize, cx))
        .await
        .unwrap();
    assert_eq!(vectorize.call(ListIndexes).await.unwrap().len(), 1);
    let described = vectorize
        .clone()
        .oneshot(GetIndex { name: "idx".into() })
        .await
        .unwrap();
    assert_eq!(described.name.as_deref(), Some("idx"));
    vectorize
        .clone()
        .oneshot(DeleteIndex { name: "idx".into() })
        .await
        .unwrap();
    vectorize
        .clone()
        .oneshot(CreateIndex::with_preset("p", crate::Preset::BgeSmallEnV15))
        .await
        .unwrap();
    let index = vectorize.index("idx");
    index.clone().oneshot(GetIndexInfo).await.unwrap();
    let vectors = vec![Vector::new("a", vec![1.0])];
    index
        .clone()
        .oneshot(InsertVectors {
            vectors: vectors.clone(),
        })
        .await
        .unwrap();
    index
        .clone()
        .oneshot(UpsertVectors { vectors })
        .await
        .unwrap();
    index
        .clone()
        .oneshot(QueryVectors::new(vec![1.0]))
        .await
        .unwrap();
    index
        .clone()
        .oneshot(GetByIds {
            ids: vec!["a".into()],
        })
        .await
        .unwrap();
    index
        .clone()
        .oneshot(DeleteByIds {
            ids: vec!["a".into()],
        })
        .await
        .unwrap();
    index.clone().oneshot(ListVectors::default()).await.unwrap();
    index
        .clone()
        .oneshot(CreateMetadataIndex {
            property_name: "k".into(),
            index_type: MetadataIndexType::Number,
        })
        .await
        .unwrap();
    index.clone().oneshot(ListMetadataIndexes).await.unwrap();
    index
        .clone()
        .oneshot(DeleteMetadataIndex {
            property_name: "k".into(),
        })
        .await
        .unwrap();
    assert_eq!(log.lock().unwrap().len(), 14);
    assert_eq!(
        log.lock().unwrap()[3].json(),
        json!({"name": "p", "config": {"preset": "@cf/baai/bge-small-en-v1.5"}})
    );
}

#[tokio::test]
async fn the_traits_are_object_safe_and_delegate() {
    let (client, log) = client(reply);
    let vectorize = VectorizeClient::new(&client);
    let api: Arc<dyn VectorizeApi> = Arc::new(vectorize.clone());
    assert_eq!(api.list_indexes().await.unwrap().len(), 1);
    api.get_index("idx".into()).await.unwrap();
    api.delete_index("idx".into()).await.unwrap();
    api.create_index(CreateIndex::new("i", 2, crate::Metric::Euclidean))
        .await
        .unwrap();
    let index: Arc<dyn IndexApi> = Arc::new(vectorize.index("idx"));
    index.info().await.unwrap();
    index
        .insert(vec![Vector::new("a", vec![1.0])])
        .await
        .unwrap();
    index
        .upsert(vec![Vector::new("a", vec![1.0])])
        .await
        .unwrap();
    index.query(QueryVectors::new(vec![1.0])).await.unwrap();
    index.get_by_ids(vec!["a".into()]).await.unwrap();
    index.delete_by_ids(vec!["a".into()]).await.unwrap();
    index.list_vectors(ListVectors::default()).await.unwrap();
    index
        .create_metadata_index(CreateMetadataIndex {
            property_name: "k".into(),
            index_type: MetadataIndexType::String,
        })
        .await
        .unwrap();
    index.list_metadata_indexes().await.unwrap();
    index.delete_metadata_index("k".into()).await.unwrap();
    assert_eq!(log.lock().unwrap().len(), 14);

    let mut mock = MockIndexApi::new();
    mock.expect_info().returning(|| Ok(IndexInfo::default()));
    let mocked: Arc<dyn IndexApi> = Arc::new(mock);
    assert_eq!(mocked.info().await.unwrap(), IndexInfo::default());
    let mut mock = MockVectorizeApi::new();
    mock.expect_list_indexes().returning(|| Ok(vec![]));
    assert!(mock.list_indexes().await.unwrap().is_empty());
}

#[test]
fn clients_are_clone_send_sync() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<VectorizeClient>();
    assert_traits::<IndexClient>();
}

#[tokio::test]
async fn chunk_limits_are_applied_by_the_client() {
    let (client, log) = client(reply);
    let index = VectorizeClient::new(&client)
        .index("idx")
        .with_chunk_limits(ChunkLimits::new(2, usize::MAX));
    assert_eq!(index.chunk_limits().max_vectors, 2);
    let vectors: Vec<Vector> = (0..5)
        .map(|i| Vector::new(format!("v{i}"), vec![1.0]))
        .collect();
    let batch = index.upsert(&vectors).await.unwrap();
    assert_eq!(batch.mutation_ids.len(), 3);
    assert_eq!(log.lock().unwrap().len(), 3);
}
