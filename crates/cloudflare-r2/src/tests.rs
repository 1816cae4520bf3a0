//! Unit tests of [`R2Client`] against a scripted transport (request shapes, answers,
//! validation before sending) and of the pager against a mockall [`MockR2Api`].

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use cloudflare_http::{
    ApiToken, Client, ClientBuilder, ClientConfig, CloudflareError, HttpRequest, HttpResponse,
    HttpService,
};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use mockall::predicate::eq;
use serde_json::json;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

use super::*;
use crate::envelope::{CODE_NO_SUCH_BUCKET, CODE_NO_SUCH_KEY};

const ACCOUNT: &str = "acc123";
const BASE: &str = "https://api.cloudflare.com/client/v4/accounts/acc123/r2/buckets/my-bucket";

/// A request as the transport saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    uri: String,
    headers: HeaderMap,
    body: Bytes,
    idempotent: bool,
}

type Answer = Arc<dyn Fn(&Seen) -> HttpResponse + Send + Sync>;

/// A client whose transport records each request and answers with `answer`.
fn scripted(
    answer: impl Fn(&Seen) -> HttpResponse + Send + Sync + 'static,
) -> (Client, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let answer: Answer = Arc::new(answer);
    let log = Arc::clone(&seen);
    let transport: HttpService =
        BoxCloneSyncService::new(tower::service_fn(move |req: HttpRequest| {
            let log = Arc::clone(&log);
            let answer = Arc::clone(&answer);
            async move {
                let idempotent = cloudflare_http::is_idempotent(&req);
                let (parts, body) = req.into_parts();
                let body = body
                    .collect()
                    .await
                    .map_err(CloudflareError::transport)?
                    .to_bytes();
                let seen = Seen {
                    method: parts.method,
                    uri: parts.uri.to_string(),
                    headers: parts.headers,
                    body,
                    idempotent,
                };
                let response = answer(&seen);
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(seen);
                Ok::<_, CloudflareError>(response)
            }
        }));
    let mut config = ClientConfig::new(ACCOUNT, ApiToken::new("test-token"));
    config.retry.max_retries = 0;
    config.rate_limit = None;
    let client = ClientBuilder::new(config)
        .with_transport(transport)
        .build()
        .unwrap();
    (client, seen)
}

fn r2(client: &Client) -> R2Client {
    R2Client::new(client, "my-bucket").unwrap()
}

fn envelope(status: u16, body: &serde_json::Value) -> HttpResponse {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Bytes::from(body.to_string()))
        .unwrap()
}

fn ok(result: serde_json::Value) -> HttpResponse {
    envelope(
        200,
        &json!({"success": true, "errors": [], "messages": [], "result": result}),
    )
}

fn failure(status: u16, code: i64) -> HttpResponse {
    envelope(
        status,
        &json!({"success": false, "errors": [{"code": code, "message": "m"}], "messages": [], "result": null}),
    )
}

fn requests(seen: &Arc<Mutex<Vec<Seen>>>) -> Vec<Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

#[tokio::test]
async fn put_sends_raw_bytes_to_the_key_path() {
    let (client, seen) = scripted(|_| {
        ok(
            json!({"key": "notes/2024 q1.md", "etag": "e1", "size": "5", "storage_class": "Standard",
                  "uploaded": "2024-01-15T10:30:00Z", "version": "v1"}),
        )
    });
    let r2 = r2(&client).with_jurisdiction(Jurisdiction::Eu);
    let put = PutObject::new("notes/2024 q1.md", &b"hello"[..])
        .storage_class(StorageClass::InfrequentAccess);
    let result = r2.put_object(put).await.unwrap();
    assert_eq!(result.size, Some(5));
    assert_eq!(result.etag.as_deref(), Some("e1"));
    let req = &requests(&seen)[0];
    assert_eq!(req.method, Method::PUT);
    assert_eq!(req.uri, format!("{BASE}/objects/notes/2024%20q1.md"));
    assert_eq!(req.headers["content-type"], "application/octet-stream");
    assert_eq!(req.headers["cf-r2-storage-class"], "InfrequentAccess");
    assert_eq!(req.headers["cf-r2-jurisdiction"], "eu");
    assert_eq!(req.headers["authorization"], "Bearer test-token");
    assert_eq!(req.body.as_ref(), b"hello");
    assert!(
        req.idempotent,
        "a PUT replaces the object, so it may be retried"
    );
}

#[tokio::test]
async fn put_fills_the_key_when_the_result_is_sparse() {
    let (client, seen) = scripted(|_| ok(json!(null)));
    let r2 = r2(&client);
    let result = r2.put("a b", "x").await.unwrap();
    assert_eq!(result.key, "a b");
    let req = &requests(&seen)[0];
    assert!(req.headers.get("cf-r2-jurisdiction").is_none());
    assert!(req.headers.get("cf-r2-storage-class").is_none());
}

#[tokio::test]
async fn put_over_the_limit_is_refused_before_sending() {
    let (client, seen) = scripted(|_| ok(json!({})));
    let r2 = r2(&client);
    let too_big = usize::try_from(MAX_PUT_BYTES).unwrap() + 1;
    let err = r2
        .put("big", Bytes::from(vec![0u8; too_big]))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, R2Error::BodyTooLarge { actual, max } if actual == MAX_PUT_BYTES + 1 && max == MAX_PUT_BYTES)
    );
    assert!(
        text.contains("MAX_PUT_BYTES = 300000000") && text.contains("300000001 bytes"),
        "{text}"
    );
    assert!(text.contains("split"), "{text}");
    assert!(!err.is_retryable());
    assert!(requests(&seen).is_empty());
}

#[tokio::test]
async fn invalid_keys_are_refused_before_sending() {
    let (client, seen) = scripted(|_| ok(json!({})));
    let r2 = r2(&client);
    let long = "k".repeat(MAX_KEY_BYTES + 1);
    assert!(matches!(
        r2.put("", "x").await,
        Err(R2Error::EmptyKey { .. })
    ));
    assert!(matches!(
        r2.get(long.clone()).await,
        Err(R2Error::KeyTooLong { .. })
    ));
    assert!(matches!(
        r2.delete("a/../b").await,
        Err(R2Error::DotSegment { .. })
    ));
    assert!(matches!(
        r2.put(long, "x").await,
        Err(R2Error::KeyTooLong { .. })
    ));
    assert!(requests(&seen).is_empty());
}

#[tokio::test]
async fn get_returns_raw_bytes_and_headers() {
    let (client, seen) = scripted(|_| {
        http::Response::builder()
            .status(200)
            .header("content-type", "text/markdown")
            .header("etag", "\"abc\"")
            .header("last-modified", "Tue, 15 Jan 2024 10:30:00 GMT")
            .body(Bytes::from_static(b"{\"not\": \"an envelope\"}"))
            .unwrap()
    });
    let r2 = r2(&client);
    let object = r2.get("dir/file?.md").await.unwrap();
    assert_eq!(object.body.as_ref(), b"{\"not\": \"an envelope\"}");
    assert_eq!(object.content_type.as_deref(), Some("text/markdown"));
    assert_eq!(object.etag.as_deref(), Some("abc"));
    assert_eq!(object.key, "dir/file?.md");
    let req = &requests(&seen)[0];
    assert_eq!(req.method, Method::GET);
    assert_eq!(req.uri, format!("{BASE}/objects/dir/file%3F.md"));
    assert!(req.idempotent);
}

#[tokio::test]
async fn get_of_a_missing_key_is_not_found() {
    for missing in [
        failure(404, CODE_NO_SUCH_KEY),
        http::Response::builder()
            .status(404)
            .body(Bytes::from_static(b"not json"))
            .unwrap(),
    ] {
        let missing = Arc::new(Mutex::new(Some(missing)));
        let (client, _) = scripted(move |_| missing.lock().unwrap().take().unwrap());
        let err = r2(&client).get("gone").await.unwrap_err();
        assert!(
            matches!(&err, R2Error::NotFound { key } if key == "gone"),
            "{err:?}"
        );
        assert!(err.to_string().contains("\"gone\" does not exist"), "{err}");
    }
}

#[tokio::test]
async fn get_from_a_missing_bucket_or_a_failing_api_is_a_cloudflare_error() {
    let (client, _) = scripted(|_| failure(404, CODE_NO_SUCH_BUCKET));
    let err = r2(&client).get("k").await.unwrap_err();
    let R2Error::Cloudflare(inner) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(inner.status(), Some(StatusCode::NOT_FOUND));
    assert_eq!(inner.errors()[0].code, CODE_NO_SUCH_BUCKET);
    let (client, _) = scripted(|_| failure(503, 10001));
    let err = r2(&client).get("k").await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let (client, _) = scripted(|_| failure(403, 10000));
    let err = r2(&client).get("k").await.unwrap_err();
    assert!(err.to_string().contains("CLOUDFLARE_API_TOKEN"), "{err}");
}

#[tokio::test]
async fn delete_is_idempotent_friendly() {
    let (client, seen) = scripted(|_| ok(json!({"key": "notes/a"})));
    let r2c = r2(&client);
    assert_eq!(r2c.delete("notes/a").await.unwrap().key, "notes/a");
    let req = &requests(&seen)[0];
    assert_eq!(req.method, Method::DELETE);
    assert_eq!(req.uri, format!("{BASE}/objects/notes/a"));
    assert!(req.idempotent);

    let (client, _) = scripted(|_| failure(404, CODE_NO_SUCH_KEY));
    assert_eq!(r2(&client).delete("gone").await.unwrap().key, "gone");
    let (client, _) = scripted(|_| ok(json!(null)));
    assert_eq!(r2(&client).delete("x").await.unwrap().key, "x");
    let (client, _) = scripted(|_| failure(404, CODE_NO_SUCH_BUCKET));
    assert!(matches!(
        r2(&client).delete("x").await,
        Err(R2Error::Cloudflare(_))
    ));
}

#[tokio::test]
async fn list_sends_the_spec_query_and_reads_the_cursor() {
    let (client, seen) = scripted(|_| {
        envelope(
            200,
            &json!({
                "success": true, "errors": [], "messages": ["string"],
                "result": [{"key": "notes/a b", "size": 3}, {"key": "notes/c"}],
                "result_info": {"cursor": "next==", "delimited": ["notes/sub/"], "is_truncated": true, "per_page": 2}
            }),
        )
    });
    let r2c = r2(&client);
    let page = r2c
        .list_objects(
            ListObjects::new()
                .prefix("notes/")
                .delimiter("/")
                .cursor("c+1=")
                .per_page(2)
                .start_after("notes/0"),
        )
        .await
        .unwrap();
    assert_eq!(page.objects.len(), 2);
    assert_eq!(page.objects[0].key, "notes/a b");
    assert_eq!(page.cursor.as_deref(), Some("next=="));
    assert_eq!(page.delimited, ["notes/sub/"]);
    let req = &requests(&seen)[0];
    assert_eq!(req.method, Method::GET);
    assert_eq!(
        req.uri,
        format!(
            "{BASE}/objects?prefix=notes%2F&delimiter=%2F&cursor=c%2B1%3D&per_page=2&start_after=notes%2F0"
        )
    );
    r2c.list_objects(ListObjects::new().prefix("").cursor(""))
        .await
        .unwrap();
    assert_eq!(requests(&seen)[1].uri, format!("{BASE}/objects"));
}

#[tokio::test]
async fn list_validation_happens_before_sending() {
    let (client, seen) = scripted(|_| ok(json!([])));
    let r2c = r2(&client);
    for (request, needle) in [
        (ListObjects::new().per_page(0), "per_page is 0"),
        (
            ListObjects::new().per_page(MAX_PER_PAGE + 1),
            "per_page is 1001",
        ),
        (ListObjects::new().delimiter("//"), "2 characters"),
        (ListObjects::new().delimiter(""), "0 characters"),
        (
            ListObjects::new().prefix("p".repeat(MAX_KEY_BYTES + 1)),
            "prefix is 1025 bytes",
        ),
        (
            ListObjects::new().start_after(""),
            "start_after key is empty",
        ),
    ] {
        let err = r2c.list_objects(request).await.unwrap_err();
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
    let err = r2c
        .list_objects(ListObjects::new().per_page(5000))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("1 to 1000"), "{err}");
    assert!(requests(&seen).is_empty());
    assert!(
        r2c.list_objects(ListObjects::new().per_page(MAX_PER_PAGE))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn list_all_follows_the_client_pages() {
    let (client, seen) = scripted(|req| {
        let (objects, info) = if req.uri.contains("cursor=p2") {
            (
                json!([{"key": "b"}]),
                json!({"is_truncated": false, "cursor": "ignored"}),
            )
        } else {
            (
                json!([{"key": "a"}]),
                json!({"is_truncated": true, "cursor": "p2"}),
            )
        };
        envelope(
            200,
            &json!({"success": true, "errors": [], "messages": [], "result": objects, "result_info": info}),
        )
    });
    let all = r2(&client).list_all("notes/").await.unwrap();
    assert_eq!(
        all.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let uris: Vec<String> = requests(&seen).into_iter().map(|s| s.uri).collect();
    assert_eq!(
        uris,
        [
            format!("{BASE}/objects?prefix=notes%2F&per_page=1000"),
            format!("{BASE}/objects?prefix=notes%2F&cursor=p2&per_page=1000"),
        ]
    );
}

#[tokio::test]
async fn delete_prefix_starts_a_job_once() {
    let (client, seen) = scripted(|_| {
        ok(
            json!({"id": "job1", "jobType": "prefixDelete", "status": "ENQUEUED",
                  "startTime": "2026-07-20T12:00:00.000Z",
                  "prefixDelete": {"prefix": "notes/", "deletedObjects": 0}}),
        )
    });
    let r2c = r2(&client);
    let job = r2c
        .delete_prefix(DeletePrefix::new("notes/"))
        .await
        .unwrap();
    assert_eq!(job.id, "job1");
    assert_eq!(job.status, JobStatus::Enqueued);
    let req = &requests(&seen)[0];
    assert_eq!(req.method, Method::DELETE);
    assert_eq!(req.uri, format!("{BASE}/objects?prefix=notes%2F"));
    assert!(req.body.is_empty());
    assert!(!req.idempotent, "each prefix delete starts a new job");
    for bad in ["", "notes"] {
        let err = r2c.delete_prefix(DeletePrefix::new(bad)).await.unwrap_err();
        assert!(matches!(err, R2Error::InvalidDeletePrefix { .. }), "{err}");
        assert!(err.to_string().contains("ends in '/'"), "{err}");
    }
    assert_eq!(requests(&seen).len(), 1);
}

#[tokio::test]
async fn the_client_is_a_tower_service_per_operation() {
    let (client, seen) = scripted(|req| match req.method {
        Method::PUT => ok(json!({"key": "k", "size": "1"})),
        Method::DELETE if req.uri.contains("?prefix=") => ok(json!({
            "id": "j", "jobType": "prefixDelete", "status": "COMPLETED",
            "startTime": "t", "prefixDelete": {"prefix": "p/", "deletedObjects": 2}
        })),
        Method::DELETE => ok(json!({"key": "k"})),
        _ if req.uri.ends_with("/objects") => ok(json!([{"key": "k"}])),
        _ => http::Response::new(Bytes::from_static(b"v")),
    });
    let svc = r2(&client);
    assert_eq!(
        svc.clone()
            .oneshot(PutObject::new("k", "v"))
            .await
            .unwrap()
            .size,
        Some(1)
    );
    assert_eq!(
        svc.clone()
            .oneshot(GetObject::new("k"))
            .await
            .unwrap()
            .body
            .as_ref(),
        b"v"
    );
    assert_eq!(
        svc.clone()
            .oneshot(ListObjects::new())
            .await
            .unwrap()
            .objects[0]
            .key,
        "k"
    );
    assert_eq!(
        svc.clone()
            .oneshot(DeleteObject::new("k"))
            .await
            .unwrap()
            .key,
        "k"
    );
    assert_eq!(
        svc.clone()
            .oneshot(DeletePrefix::new("p/"))
            .await
            .unwrap()
            .prefix_delete
            .deleted_objects,
        2
    );
    assert_eq!(requests(&seen).len(), 5);
    // And as a trait object.
    let api: Arc<dyn R2Api> = Arc::new(svc);
    assert_eq!(
        api.get_object(GetObject::new("k"))
            .await
            .unwrap()
            .body
            .as_ref(),
        b"v"
    );
}

#[test]
fn bucket_names_are_checked_and_clients_are_send_sync_clone() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<R2Client>();
    let (client, _) = scripted(|_| ok(json!({})));
    let err = R2Client::new(&client, "Bad_Bucket").unwrap_err();
    assert!(matches!(err, R2Error::InvalidBucketName { .. }), "{err}");
    let r2c = r2(&client);
    assert_eq!(r2c.bucket(), "my-bucket");
    assert_eq!(r2c.service().name(), "r2");
    assert_eq!(r2c.jurisdiction(), Jurisdiction::Default);
}

fn page(keys: &[&str], cursor: Option<&str>) -> ObjectList {
    ObjectList {
        objects: keys
            .iter()
            .map(|k| ObjectInfo {
                key: (*k).to_owned(),
                ..ObjectInfo::default()
            })
            .collect(),
        cursor: cursor.map(str::to_owned),
        ..ObjectList::default()
    }
}

fn listing(prefix: &str, cursor: Option<&str>) -> ListObjects {
    let mut request = ListObjects::new().prefix(prefix).per_page(MAX_PER_PAGE);
    request.cursor = cursor.map(str::to_owned);
    request
}

#[tokio::test]
async fn pager_follows_cursors_across_three_pages() {
    let mut api = MockR2Api::new();
    let mut seq = mockall::Sequence::new();
    for (cursor, keys, next) in [
        (None, &["a", "b"][..], Some("c1")),
        (Some("c1"), &["c"][..], Some("c2")),
        (Some("c2"), &["d"][..], None),
    ] {
        api.expect_list_objects()
            .with(eq(listing("n/", cursor)))
            .times(1)
            .in_sequence(&mut seq)
            .return_once(move |_| Ok(page(keys, next)));
    }
    let all = list_all_pages(&api, listing("n/", None)).await.unwrap();
    assert_eq!(
        all.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c", "d"]
    );
}

#[tokio::test]
async fn pager_asks_for_pages_of_1000_unless_told_otherwise() {
    let mut api = MockR2Api::new();
    api.expect_list_objects()
        .with(eq(ListObjects::new().prefix("n/").per_page(1000)))
        .times(1)
        .return_once(|_| Ok(page(&["a"], None)));
    api.expect_list_objects()
        .with(eq(ListObjects::new().per_page(7)))
        .times(1)
        .return_once(|_| Ok(page(&["b"], None)));
    list_all_pages(&api, ListObjects::new().prefix("n/"))
        .await
        .unwrap();
    list_all_pages(&api, ListObjects::new().per_page(7))
        .await
        .unwrap();
    assert_eq!(MAX_PER_PAGE, 1000);
}

#[tokio::test]
async fn pager_stops_on_an_empty_cursor() {
    let mut api = MockR2Api::new();
    api.expect_list_objects()
        .times(1)
        .return_once(|_| Ok(page(&["only"], Some(""))));
    let all = list_all_pages(&api, ListObjects::new()).await.unwrap();
    assert_eq!(all.len(), 1);
}

#[tokio::test]
async fn pager_propagates_an_error_from_page_two() {
    let mut api = MockR2Api::new();
    let mut seq = mockall::Sequence::new();
    api.expect_list_objects()
        .with(eq(listing("n/", None)))
        .times(1)
        .in_sequence(&mut seq)
        .return_once(|_| Ok(page(&["a"], Some("c1"))));
    api.expect_list_objects()
        .with(eq(listing("n/", Some("c1"))))
        .times(1)
        .in_sequence(&mut seq)
        .return_once(|_| {
            Err(R2Error::Cloudflare(CloudflareError::Api {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                errors: vec![],
                retry_after: None,
            }))
        });
    let err = list_all_pages(&api, listing("n/", None)).await.unwrap_err();
    let R2Error::Cloudflare(inner) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(inner.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
}

#[tokio::test]
async fn pager_refuses_a_cursor_that_does_not_advance() {
    let mut api = MockR2Api::new();
    api.expect_list_objects()
        .times(2)
        .returning(|_| Ok(page(&["a"], Some("same"))));
    let err = list_all_pages(&api, ListObjects::new()).await.unwrap_err();
    assert!(matches!(err, R2Error::CursorStuck { pages: 2 }), "{err:?}");
    assert!(err.to_string().contains("did not advance"), "{err}");
}
