//! R2 objects: upload, get, delete, list and bulk delete, against the emulator directly and
//! through Prism's validating proxy of Cloudflare's spec; limits and malformed requests
//! directly only (they break the spec on purpose).

mod common;

use bytes::Bytes;
use cloudflare_emulator::EmulatorConfig;
use common::{Harness, Reply};
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BUCKET: &str = "test-bucket";

fn objects(h: &Harness) -> String {
    h.path(&format!("r2/buckets/{BUCKET}/objects"))
}

fn object(h: &Harness, encoded_key: &str) -> String {
    format!("{}/{encoded_key}", objects(h))
}

async fn put(h: &Harness, encoded_key: &str, body: &'static [u8]) -> Value {
    h.send(
        Method::PUT,
        &object(h, encoded_key),
        Some("application/octet-stream"),
        Bytes::from_static(body),
    )
    .await
    .result()
}

/// A request with extra headers, straight to the emulator (the harness sends only
/// `Content-Type` and `Authorization`).
async fn raw(
    h: &Harness,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", h.emulator.base_url()))
        .header("authorization", format!("Bearer {}", h.token));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// Stores `key` straight in the emulator, bypassing Prism (which cannot route a key with
/// slashes), so that listing and deleting can then go through it.
async fn seed(h: &Harness, key: &str, body: &[u8]) {
    let headers = [("content-type", "application/octet-stream")];
    let reply = raw(h, Method::PUT, &object(h, key), &headers, body.to_vec()).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}

/// Runs `scenario` as two tests in module `test`: `direct`, and `via_prism` (asserting no
/// violation; ignored when Prism is not installed).
macro_rules! both {
    ($test:ident: $scenario:ident) => {
        mod $test {
            use super::*;

            #[tokio::test]
            async fn direct() {
                let h = Harness::direct(EmulatorConfig::default()).await;
                $scenario(&h).await;
            }

            cloudflare_testkit::prism_tests! {
                #[tokio::test]
                async fn via_prism() {
                    let h = Harness::via_prism(EmulatorConfig::default()).await;
                    $scenario(&h).await;
                    h.assert_no_violations();
                }
            }
        }
    };
}

async fn put_get_delete(h: &Harness) {
    // A percent-encoded space (slashes: `keys_keep_slashes_and_decode_the_rest`, direct
    // only, as Prism cannot route a multi-segment key).
    let stored = put(h, "2024%20q1.md", b"hello").await;
    assert_eq!(stored["key"], "2024 q1.md");
    assert_eq!(
        stored["size"], "5",
        "the spec gives the put size as a string"
    );
    assert_eq!(
        stored["etag"], "5d41402abc4b2a76b9719d911017c592",
        "MD5 of the body"
    );
    assert_eq!(stored["storage_class"], "Standard");
    assert!(
        stored["uploaded"].as_str().unwrap().ends_with('Z'),
        "{stored}"
    );
    assert_eq!(stored["version"].as_str().unwrap().len(), 36);

    let got = h.get(&object(h, "2024%20q1.md")).await;
    assert_eq!(got.status, 200);
    assert_eq!(&got.body[..], b"hello");
    assert_eq!(got.headers["etag"], "\"5d41402abc4b2a76b9719d911017c592\"");
    assert_eq!(got.headers["content-type"], "application/octet-stream");
    assert_eq!(got.headers["content-length"], "5");
    assert_eq!(got.headers["cf-r2-storage-class"], "Standard");
    assert!(
        got.headers["last-modified"]
            .to_str()
            .unwrap()
            .ends_with(" GMT")
    );

    // Replacing keeps one object with the new body.
    put(h, "2024%20q1.md", b"bye").await;
    let got = h.get(&object(h, "2024%20q1.md")).await;
    assert_eq!(&got.body[..], b"bye");

    let deleted = h
        .send(
            Method::DELETE,
            &object(h, "2024%20q1.md"),
            None,
            Bytes::new(),
        )
        .await
        .result();
    assert_eq!(deleted, json!({"key": "2024 q1.md"}));
    let message = h.get(&object(h, "2024%20q1.md")).await.error(404, 10007);
    assert!(message.contains("does not exist"), "{message}");
    // Deleting a missing key succeeds, as in S3 and the Workers binding.
    let again = h
        .send(
            Method::DELETE,
            &object(h, "2024%20q1.md"),
            None,
            Bytes::new(),
        )
        .await
        .result();
    assert_eq!(again["key"], "2024 q1.md");
}

both!(put_get_delete_roundtrip: put_get_delete);

/// Empty and binary objects, direct only: the spec marks the upload body `required`, so
/// Prism refuses an empty one (422), and Prism's proxy re-encodes bodies as UTF-8, which
/// mangles bytes that are not.
#[tokio::test]
async fn empty_and_binary_objects() {
    let h = Harness::direct(EmulatorConfig::default()).await;
    let empty = put(&h, "empty", b"").await;
    assert_eq!(empty["etag"], "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(empty["size"], "0");
    let got = h.get(&object(&h, "empty")).await;
    assert_eq!((got.status.as_u16(), got.body.len()), (200, 0));
    assert_eq!(got.headers["content-length"], "0");
    let bytes: Vec<u8> = (0..=255).collect();
    let reply = h
        .send(Method::PUT, &object(&h, "bin"), None, bytes.clone())
        .await;
    reply.result();
    assert_eq!(&h.get(&object(&h, "bin")).await.body[..], &bytes[..]);
}

async fn keys_with_reserved_characters(h: &Harness) {
    for (encoded, key) in [
        ("a%3Fb%23c%25d", "a?b#c%d"),
        ("%C3%A9t%C3%A9/%E2%9C%93", "été/✓"),
        ("deep/er/and/deeper/", "deep/er/and/deeper/"),
        ("plus+sign", "plus+sign"),
    ] {
        assert_eq!(put(h, encoded, b"x").await["key"], key);
        assert_eq!(h.get(&object(h, encoded)).await.status, 200, "{key}");
    }
    let listed = h
        .get(&format!("{}?per_page=100", objects(h)))
        .await
        .result();
    let keys: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["a?b#c%d", "deep/er/and/deeper/", "plus+sign", "été/✓"]
    );
}

#[tokio::test]
async fn keys_keep_slashes_and_decode_the_rest() {
    let h = Harness::direct(EmulatorConfig::default()).await;
    keys_with_reserved_characters(&h).await;
}

async fn listing(h: &Harness) {
    for key in ["a/1", "a/2", "a/b/3", "b", "c/1", "d"] {
        seed(h, key, b"12").await;
    }
    // Everything, default page.
    let reply = h.get(&objects(h)).await;
    let all = reply.result();
    assert_eq!(all.as_array().unwrap().len(), 6);
    let first = &all[0];
    assert_eq!(first["key"], "a/1");
    assert_eq!(first["size"], 2);
    assert_eq!(first["etag"], "c20ad4d76fe97759aa27a0c99bff6710");
    assert_eq!(first["storage_class"], "Standard");
    assert_eq!(
        first["http_metadata"]["contentType"],
        "application/octet-stream"
    );
    assert_eq!(first["custom_metadata"], json!({}));
    assert!(first["last_modified"].as_str().unwrap().ends_with('Z'));
    let info = &reply.json()["result_info"];
    assert_eq!(info["is_truncated"], false);
    assert_eq!(info["per_page"], 20);
    assert!(info.get("cursor").is_none());

    // Prefix.
    let a = h.get(&format!("{}?prefix=a/", objects(h))).await.result();
    assert_eq!(a.as_array().unwrap().len(), 3);

    // Delimiter: objects and common prefixes; per_page counts both.
    let reply = h
        .get(&format!("{}?delimiter=/&per_page=2", objects(h)))
        .await;
    let page1 = reply.result();
    let info = reply.json()["result_info"].clone();
    assert_eq!(page1.as_array().unwrap().len(), 1, "{page1}");
    assert_eq!(page1[0]["key"], "b");
    assert_eq!(info["delimited"], json!(["a/"]));
    assert_eq!(info["is_truncated"], true);
    let cursor = info["cursor"].as_str().unwrap().to_owned();
    let reply = h
        .get(&format!(
            "{}?delimiter=/&per_page=2&cursor={cursor}",
            objects(h)
        ))
        .await;
    let page2 = reply.result();
    let info = reply.json()["result_info"].clone();
    assert_eq!(page2[0]["key"], "d");
    assert_eq!(info["delimited"], json!(["c/"]));
    assert_eq!(info["is_truncated"], false);

    // Nested grouping under a prefix.
    let reply = h
        .get(&format!("{}?prefix=a/&delimiter=/", objects(h)))
        .await;
    let keys: Vec<String> = reply
        .result()
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, ["a/1", "a/2"]);
    assert_eq!(reply.json()["result_info"]["delimited"], json!(["a/b/"]));

    // start_after.
    let after = h
        .get(&format!("{}?start_after=b", objects(h)))
        .await
        .result();
    let keys: Vec<&str> = after
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["c/1", "d"]);

    // Paging one at a time visits every key once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("?per_page=1&cursor={c}"),
            None => "?per_page=1".to_owned(),
        };
        let reply = h.get(&format!("{}{query}", objects(h))).await;
        let page = reply.result();
        seen.extend(
            page.as_array()
                .unwrap()
                .iter()
                .map(|o| o["key"].as_str().unwrap().to_owned()),
        );
        let info = &reply.json()["result_info"];
        assert_eq!(info["per_page"], 1);
        if info["is_truncated"] == false {
            break;
        }
        cursor = Some(info["cursor"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["a/1", "a/2", "a/b/3", "b", "c/1", "d"]);

    // per_page's documented maximum is accepted.
    let max = h.get(&format!("{}?per_page=1000", objects(h))).await;
    assert_eq!(max.json()["result_info"]["per_page"], 1000);

    // A bucket never written to lists empty (buckets exist on first use).
    let fresh = h
        .get(&h.path("r2/buckets/never-used/objects"))
        .await
        .result();
    assert_eq!(fresh, json!([]));
}

both!(list_prefix_delimiter_cursor_start_after: listing);

async fn bulk_delete(h: &Harness) {
    for key in ["logs/1", "logs/2", "logs/x/3", "logsbook", "keep"] {
        seed(h, key, b"x").await;
    }
    // Delete by prefix: a job, completed at once.
    let job = h
        .send(
            Method::DELETE,
            &format!("{}?prefix=logs/", objects(h)),
            None,
            Bytes::new(),
        )
        .await
        .result();
    assert_eq!(job["jobType"], "prefixDelete");
    assert_eq!(job["status"], "COMPLETED");
    assert_eq!(
        job["prefixDelete"],
        json!({"prefix": "logs/", "deletedObjects": 3, "isBucketClear": false})
    );
    assert_eq!(job["id"].as_str().unwrap().len(), 36);
    assert!(job["startTime"].is_string() && job["endTime"].is_string());
    let left = h.get(&objects(h)).await.result();
    let keys: Vec<&str> = left
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["keep", "logsbook"]);

    // Empty the bucket: `?prefix=`.
    put(h, "z", b"x").await;
    let job = h
        .send(
            Method::DELETE,
            &format!("{}?prefix=", objects(h)),
            None,
            Bytes::new(),
        )
        .await
        .result();
    assert_eq!(
        job["prefixDelete"],
        json!({"prefix": "", "deletedObjects": 3, "isBucketClear": true})
    );
    assert_eq!(h.get(&objects(h)).await.result(), json!([]));

    // A non-empty prefix must end in '/'.
    h.send(
        Method::DELETE,
        &format!("{}?prefix=logs", objects(h)),
        None,
        Bytes::new(),
    )
    .await
    .error(400, 10022);
}

both!(bulk_delete_by_prefix_and_empty_bucket: bulk_delete);

/// Delete by list: the operation's description says to send a JSON array of keys, but its
/// schema declares no request body, so Prism refuses any body (415): direct only.
#[tokio::test]
async fn bulk_delete_by_list() {
    let h = Harness::direct(EmulatorConfig::default()).await;
    for key in ["keep/1", "keep/2", "other"] {
        put(&h, key, b"x").await;
    }
    let deleted = h
        .json(
            Method::DELETE,
            &objects(&h),
            &json!(["keep/1", "not-there"]),
        )
        .await
        .result();
    assert_eq!(deleted, json!([{"key": "keep/1"}, {"key": "not-there"}]));
    let left = h.get(&objects(&h)).await.result();
    let keys: Vec<&str> = left
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["keep/2", "other"]);
}

#[tokio::test]
async fn conditional_gets_storage_class_and_jurisdictions() {
    let h = Harness::direct(EmulatorConfig::default()).await;
    let path = object(&h, "doc.txt");
    let stored = raw(
        &h,
        Method::PUT,
        &path,
        &[
            ("content-type", "text/plain"),
            ("cf-r2-storage-class", "InfrequentAccess"),
        ],
        b"text".to_vec(),
    )
    .await;
    assert_eq!(stored.status, 200);
    let stored = stored.result();
    assert_eq!(stored["storage_class"], "InfrequentAccess");
    let etag = format!("\"{}\"", stored["etag"].as_str().unwrap());

    let got = raw(&h, Method::GET, &path, &[], Vec::new()).await;
    assert_eq!(got.headers["content-type"], "text/plain");
    assert_eq!(got.headers["cf-r2-storage-class"], "InfrequentAccess");
    let last_modified = got.headers["last-modified"].to_str().unwrap().to_owned();
    let listed = h.get(&objects(&h)).await.result();
    assert_eq!(
        listed[0]["http_metadata"],
        json!({"contentType": "text/plain"})
    );
    assert_eq!(listed[0]["storage_class"], "InfrequentAccess");

    // If-None-Match.
    let not_modified = raw(
        &h,
        Method::GET,
        &path,
        &[("if-none-match", &etag)],
        Vec::new(),
    )
    .await;
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.headers["etag"], etag.as_str());
    let changed = raw(
        &h,
        Method::GET,
        &path,
        &[("if-none-match", "\"other\"")],
        Vec::new(),
    )
    .await;
    assert_eq!(changed.status, 200);
    // If-Modified-Since.
    let same = raw(
        &h,
        Method::GET,
        &path,
        &[("if-modified-since", &last_modified)],
        Vec::new(),
    )
    .await;
    assert_eq!(same.status, 304);
    let old = raw(
        &h,
        Method::GET,
        &path,
        &[("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT")],
        Vec::new(),
    )
    .await;
    assert_eq!(old.status, 200);
    let garbage = raw(
        &h,
        Method::GET,
        &path,
        &[("if-modified-since", "yesterday")],
        Vec::new(),
    )
    .await;
    assert_eq!(garbage.status, 200, "an invalid date is ignored");

    // Buckets are per jurisdiction.
    let eu = raw(
        &h,
        Method::GET,
        &path,
        &[("cf-r2-jurisdiction", "eu")],
        Vec::new(),
    )
    .await;
    eu.error(404, 10007);
    raw(
        &h,
        Method::PUT,
        &path,
        &[("cf-r2-jurisdiction", "eu")],
        b"eu".to_vec(),
    )
    .await
    .result();
    let eu = raw(
        &h,
        Method::GET,
        &path,
        &[("cf-r2-jurisdiction", "eu")],
        Vec::new(),
    )
    .await;
    assert_eq!(&eu.body[..], b"eu");
    assert_eq!(
        &raw(&h, Method::GET, &path, &[], Vec::new()).await.body[..],
        b"text"
    );

    // Bad header values.
    raw(
        &h,
        Method::PUT,
        &path,
        &[("cf-r2-storage-class", "Glacier")],
        Vec::new(),
    )
    .await
    .error(400, 10022);
    raw(
        &h,
        Method::GET,
        &path,
        &[("cf-r2-jurisdiction", "mars")],
        Vec::new(),
    )
    .await
    .error(400, 10022);
}

#[tokio::test]
async fn bucket_name_and_key_limits() {
    let h = Harness::direct(EmulatorConfig::default()).await;
    for good in ["abc", &"a".repeat(63), "my-bucket-9"] {
        let path = h.path(&format!("r2/buckets/{good}/objects/k"));
        h.send(Method::PUT, &path, None, Bytes::from_static(b"x"))
            .await
            .result();
    }
    for bad in [
        "ab",
        &"a".repeat(64),
        "-abc",
        "abc-",
        "Upper",
        "under_score",
    ] {
        let path = h.path(&format!("r2/buckets/{bad}/objects/k"));
        h.send(Method::PUT, &path, None, Bytes::from_static(b"x"))
            .await
            .error(400, 10005);
        h.get(&h.path(&format!("r2/buckets/{bad}/objects")))
            .await
            .error(400, 10005);
    }
    let longest = "k".repeat(1024);
    put(&h, &longest, b"x").await;
    assert_eq!(h.get(&object(&h, &longest)).await.status, 200);
    let too_long = "k".repeat(1025);
    h.send(
        Method::PUT,
        &object(&h, &too_long),
        None,
        Bytes::from_static(b"x"),
    )
    .await
    .error(400, 10020);
    h.get(&object(&h, &too_long)).await.error(400, 10020);
    // Invalid UTF-8 after percent-decoding.
    h.get(&object(&h, "bad%FFkey")).await.error(400, 10020);
}

#[tokio::test]
async fn list_query_limits() {
    let h = Harness::direct(EmulatorConfig::default()).await;
    for ok in ["1", "1000"] {
        let reply = h.get(&format!("{}?per_page={ok}", objects(&h))).await;
        reply.result();
    }
    for bad in ["0", "1001", "-1", "ten"] {
        h.get(&format!("{}?per_page={bad}", objects(&h)))
            .await
            .error(400, 10022);
    }
    h.get(&format!("{}?delimiter=ab", objects(&h)))
        .await
        .error(400, 10022);
    h.get(&format!("{}?cursor=not-a-cursor", objects(&h)))
        .await
        .error(400, 10022);
}

#[tokio::test]
async fn malformed_delete_bodies_get_envelopes() {
    let h = Harness::direct(EmulatorConfig::default()).await;
    for body in ["{not json", "{\"keys\": []}", "[1, 2]"] {
        let reply = h
            .send(Method::DELETE, &objects(&h), Some("application/json"), body)
            .await;
        reply.error(400, 10022);
    }
    // No body and no prefix.
    h.send(Method::DELETE, &objects(&h), None, Bytes::new())
        .await
        .error(400, 10022);
    // Both a prefix and a body.
    h.send(
        Method::DELETE,
        &format!("{}?prefix=a/", objects(&h)),
        Some("application/json"),
        "[\"k\"]",
    )
    .await
    .error(400, 10022);
    // Keys in the list are validated.
    h.json(Method::DELETE, &objects(&h), &json!(["k".repeat(1025)]))
        .await
        .error(400, 10020);
    // Unsupported methods.
    h.send(Method::POST, &object(&h, "k"), None, Bytes::new())
        .await
        .error(405, 7001);
}

#[tokio::test]
async fn uploads_up_to_300_mb() {
    let h = Harness::direct(EmulatorConfig::default()).await;
    // Just inside: exactly 300,000,000 bytes.
    let body = Bytes::from(vec![b'r'; 300_000_000]);
    let reply = h
        .send(
            Method::PUT,
            &object(&h, "big"),
            Some("application/octet-stream"),
            body,
        )
        .await;
    assert_eq!(reply.result()["size"], "300000000");
    // Just outside: refused on its Content-Length, before the body is read.
    let mut stream = tokio::net::TcpStream::connect(h.emulator.addr())
        .await
        .unwrap();
    let head = format!(
        "PUT /client/v4{} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\n\
         content-type: application/octet-stream\r\ncontent-length: 300000001\r\n\r\n",
        object(&h, "bigger"),
        h.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[b'r'; 1024]).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"code\":100100"), "{answer}");
    h.get(&object(&h, "bigger")).await.error(404, 10007);
}

#[tokio::test]
async fn objects_survive_a_restart_with_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let config = || EmulatorConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..EmulatorConfig::default()
    };
    let h = Harness::direct(config()).await;
    put(&h, "kept/one", b"persisted").await;
    put(&h, "gone", b"x").await;
    h.send(Method::DELETE, &object(&h, "gone"), None, Bytes::new())
        .await
        .result();
    h.emulator.shutdown().await;

    let h = Harness::direct(config()).await;
    let got = h.get(&object(&h, "kept/one")).await;
    assert_eq!(&got.body[..], b"persisted");
    assert_eq!(got.headers["etag"], "\"3af65799b58d5c9938325b3af06a0d91\"");
    h.get(&object(&h, "gone")).await.error(404, 10007);
    let listed = h.get(&objects(&h)).await.result();
    assert_eq!(listed.as_array().unwrap().len(), 1);
}
