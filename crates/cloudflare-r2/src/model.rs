//! Typed requests and results of the R2 object endpoints, shaped after Cloudflare's
//! OpenAPI schemas (`r2_r2_object`, `r2_r2_put_object_result`, `r2_r2_delete_object_result`,
//! `r2_r2_list_objects_result_info`, `r2_r2_bucket_job`). Every field the spec leaves
//! optional is an `Option` or defaults, so a sparse answer still decodes.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize};

/// Storage class of an object (`cf-r2-storage-class`).
///
/// See <https://developers.cloudflare.com/r2/buckets/storage-classes/>.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StorageClass {
    /// The default class.
    Standard,
    /// Cheaper storage, with a retrieval fee and a 30-day minimum.
    InfrequentAccess,
    /// A class this client does not know yet.
    #[serde(other)]
    Unknown,
}

impl StorageClass {
    /// The header / JSON value (`"Standard"`, `"InfrequentAccess"`), `None` for
    /// [`StorageClass::Unknown`].
    #[must_use]
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Self::Standard => Some("Standard"),
            Self::InfrequentAccess => Some("InfrequentAccess"),
            Self::Unknown => None,
        }
    }

    fn from_header(value: &str) -> Self {
        match value {
            "Standard" => Self::Standard,
            "InfrequentAccess" => Self::InfrequentAccess,
            _ => Self::Unknown,
        }
    }
}

/// Jurisdiction of a bucket (`cf-r2-jurisdiction`), for buckets created in one.
///
/// See <https://developers.cloudflare.com/r2/reference/data-location/#jurisdictional-restrictions>.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Jurisdiction {
    /// No jurisdiction (the header is not sent).
    #[default]
    Default,
    /// The European Union.
    Eu,
    /// FedRAMP.
    Fedramp,
}

impl Jurisdiction {
    /// The header value: `"default"`, `"eu"` or `"fedramp"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Eu => "eu",
            Self::Fedramp => "fedramp",
        }
    }
}

/// Uploads `body` under `key` (`PUT .../objects/{key}`), replacing any object there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutObject {
    /// The object key (at most [`crate::MAX_KEY_BYTES`] bytes).
    pub key: String,
    /// The object's bytes (at most [`crate::MAX_PUT_BYTES`]).
    pub body: Bytes,
    /// The storage class, overriding the bucket default.
    pub storage_class: Option<StorageClass>,
}

impl PutObject {
    /// A PUT of `body` under `key`, in the bucket's default storage class.
    #[must_use]
    pub fn new(key: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            key: key.into(),
            body: body.into(),
            storage_class: None,
        }
    }

    /// Sets the storage class.
    #[must_use]
    pub fn storage_class(mut self, class: StorageClass) -> Self {
        self.storage_class = Some(class);
        self
    }
}

/// The result of a PUT (`r2_r2_put_object_result`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutObjectResult {
    /// The key of the uploaded object.
    #[serde(default)]
    pub key: String,
    /// Its entity tag (hex digest, without quotes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Its size in bytes (the API sends it as a string; a number is accepted too).
    #[serde(
        default,
        deserialize_with = "u64_from_string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub size: Option<u64>,
    /// Its storage class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<StorageClass>,
    /// When it was uploaded (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded: Option<String>,
    /// The version UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Reads an object (`GET .../objects/{key}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetObject {
    /// The object key.
    pub key: String,
}

impl GetObject {
    /// A GET of `key`.
    #[must_use]
    pub fn new(key: impl Into<String>) -> Self {
        Self { key: key.into() }
    }
}

/// An object read by [`GetObject`]: its raw bytes and the headers that describe them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectBody {
    /// The key asked for.
    pub key: String,
    /// The object's bytes.
    pub body: Bytes,
    /// `Content-Type`, if sent.
    pub content_type: Option<String>,
    /// `ETag` with its surrounding quotes (and any `W/` prefix) removed, so it compares
    /// equal to [`ObjectInfo::etag`] and [`PutObjectResult::etag`].
    pub etag: Option<String>,
    /// `Last-Modified` (an HTTP date), if sent.
    pub last_modified: Option<String>,
    /// `cf-r2-storage-class`, if sent.
    pub storage_class: Option<StorageClass>,
}

impl ObjectBody {
    /// Builds the result from a 2xx response's headers and body.
    pub(crate) fn from_response(key: String, headers: &http::HeaderMap, body: Bytes) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Self {
            key,
            body,
            content_type: text(http::header::CONTENT_TYPE.as_str()),
            etag: text(http::header::ETAG.as_str()).map(|e| unquote_etag(&e)),
            last_modified: text(http::header::LAST_MODIFIED.as_str()),
            storage_class: text("cf-r2-storage-class").map(|c| StorageClass::from_header(&c)),
        }
    }
}

/// `"abc"` → `abc`, `W/"abc"` → `abc`, `abc` → `abc`.
pub(crate) fn unquote_etag(value: &str) -> String {
    let value = value.trim();
    let value = value.strip_prefix("W/").unwrap_or(value);
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
        .to_owned()
}

/// Deletes one object (`DELETE .../objects/{key}`).
///
/// Deleting a key that does not exist succeeds: R2 deletes like S3 (no error for a missing
/// key), and a 404 "no such key" (code 10007) answer is mapped to success too, so a delete
/// can be repeated or retried safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteObject {
    /// The object key.
    pub key: String,
}

impl DeleteObject {
    /// A DELETE of `key`.
    #[must_use]
    pub fn new(key: impl Into<String>) -> Self {
        Self { key: key.into() }
    }
}

/// The result of a delete (`r2_r2_delete_object_result`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedObject {
    /// The key deleted (the requested key when the API did not echo it).
    #[serde(default)]
    pub key: String,
}

/// Lists objects (`GET .../objects?prefix&delimiter&cursor&per_page&start_after`); one page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListObjects {
    /// Only keys starting with this prefix.
    pub prefix: Option<String>,
    /// One character grouping keys into [`ObjectList::delimited`] prefixes (e.g. `/`).
    pub delimiter: Option<String>,
    /// The cursor of the previous page ([`ObjectList::cursor`]).
    pub cursor: Option<String>,
    /// Page size, 1 to [`crate::MAX_PER_PAGE`] (the API's default is 20).
    pub per_page: Option<u32>,
    /// Only keys after this one in lexicographic order.
    pub start_after: Option<String>,
}

impl ListObjects {
    /// The first page of every object, at the API's default page size.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Only keys starting with `prefix`.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Groups keys by `delimiter` (one character).
    #[must_use]
    pub fn delimiter(mut self, delimiter: impl Into<String>) -> Self {
        self.delimiter = Some(delimiter.into());
        self
    }

    /// Continues after a previous page.
    #[must_use]
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// Sets the page size.
    #[must_use]
    pub fn per_page(mut self, per_page: u32) -> Self {
        self.per_page = Some(per_page);
        self
    }

    /// Only keys after `key`.
    #[must_use]
    pub fn start_after(mut self, key: impl Into<String>) -> Self {
        self.start_after = Some(key.into());
        self
    }
}

/// Metadata of one listed object (`r2_r2_object`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    /// The key.
    #[serde(default)]
    pub key: String,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Entity tag (hex digest, without quotes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Last modification (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// HTTP metadata stored with the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_metadata: Option<HttpMetadata>,
    /// Custom metadata.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub custom_metadata: BTreeMap<String, String>,
    /// Storage class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<StorageClass>,
    /// Whether it is encrypted with a customer-supplied key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssec: Option<bool>,
}

/// HTTP metadata of an object (`r2_r2_object_http_metadata`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpMetadata {
    /// `Content-Type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `Content-Encoding`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// `Content-Language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// `Content-Disposition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    /// `Cache-Control`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// When the cache entry expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_expiry: Option<String>,
}

/// The list page's `result_info` (`r2_r2_list_objects_result_info`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ListResultInfo {
    /// Cursor of the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Common prefixes when a delimiter was given.
    #[serde(default, deserialize_with = "null_as_default")]
    pub delimited: Vec<String>,
    /// Whether more objects follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_truncated: Option<bool>,
    /// The page size used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_page: Option<u64>,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectList {
    /// The objects on this page.
    pub objects: Vec<ObjectInfo>,
    /// Common prefixes ("directories") when a delimiter was given.
    pub delimited: Vec<String>,
    /// The cursor for the next page; `None` when this is the last page.
    pub cursor: Option<String>,
    /// The page size the API used, if it said.
    pub per_page: Option<u64>,
}

impl ObjectList {
    /// Builds a page from the objects and `result_info`. There is a next page when the
    /// cursor is non-empty, unless the API says `is_truncated: false`.
    pub(crate) fn from_parts(objects: Vec<ObjectInfo>, info: Option<ListResultInfo>) -> Self {
        let info = info.unwrap_or_default();
        let cursor = match info.is_truncated {
            Some(false) => None,
            _ => info.cursor.filter(|c| !c.is_empty()),
        };
        Self {
            objects,
            delimited: info.delimited,
            cursor,
            per_page: info.per_page,
        }
    }
}

/// Deletes every object whose key starts with `prefix` (`DELETE .../objects?prefix=`),
/// as a bucket job. The prefix must be non-empty and end in `/`; emptying a whole bucket
/// is deliberately not offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePrefix {
    /// The prefix, e.g. `"notes/"`.
    pub prefix: String,
}

impl DeletePrefix {
    /// A delete of every key under `prefix`.
    #[must_use]
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }
}

/// Status of a bucket job (`r2_r2_bucket_job_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobStatus {
    /// Waiting to run.
    Enqueued,
    /// Running.
    Running,
    /// Finished.
    Completed,
    /// Failed.
    Failed,
    /// Cancelled.
    Cancelled,
    /// A status this client does not know yet.
    #[serde(other)]
    Unknown,
}

/// A prefix-delete job (`r2_r2_bucket_job`). Small jobs finish at once (`COMPLETED`);
/// larger ones continue in the background.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketJob {
    /// The job id (to poll with Cloudflare's Get Bucket Job endpoint).
    pub id: String,
    /// Always `"prefixDelete"` here.
    #[serde(default)]
    pub job_type: String,
    /// Its status.
    pub status: JobStatus,
    /// When it was created (RFC 3339).
    #[serde(default)]
    pub start_time: Option<String>,
    /// When it finished (RFC 3339), absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// The prefix-delete details.
    pub prefix_delete: PrefixDeleteInfo,
}

/// Details of a prefix-delete job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrefixDeleteInfo {
    /// The prefix (empty = the whole bucket).
    #[serde(default)]
    pub prefix: String,
    /// Objects deleted so far.
    #[serde(default)]
    pub deleted_objects: u64,
    /// Whether the job clears the whole bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_bucket_clear: Option<bool>,
}

/// `null` → the default value.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `"1048576"` or `1048576` (or `null`) → `Some(1048576)` / `None`.
fn u64_from_string_or_number<'de, D>(deserializer: D) -> Result<Option<u64>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Number(u64),
        Text(String),
    }
    match Option::<Size>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Size::Number(n)) => Ok(Some(n)),
        Some(Size::Text(s)) => s.trim().parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!("size {s:?} is not a non-negative integer"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn object_info_decodes_the_spec_example() {
        let value = json!({
            "custom_metadata": {"a": "b"},
            "etag": "d41d8cd98f00b204e9800998ecf8427e",
            "http_metadata": {
                "cacheControl": "max-age=3600", "cacheExpiry": "2024-12-31T23:59:59Z",
                "contentDisposition": "attachment; filename=\"example.jpg\"",
                "contentEncoding": "gzip", "contentLanguage": "en-US", "contentType": "image/jpeg"
            },
            "key": "path/to/my-object.txt",
            "last_modified": "2024-01-15T10:30:00Z",
            "size": 1048576, "ssec": false, "storage_class": "Standard"
        });
        let info: ObjectInfo = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(info.key, "path/to/my-object.txt");
        assert_eq!(info.size, Some(1_048_576));
        assert_eq!(info.storage_class, Some(StorageClass::Standard));
        assert_eq!(info.custom_metadata["a"], "b");
        let http = info.http_metadata.clone().unwrap();
        assert_eq!(http.content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(http.cache_expiry.as_deref(), Some("2024-12-31T23:59:59Z"));
        // Serialises back to the spec's field names.
        assert_eq!(serde_json::to_value(&info).unwrap(), value);
    }

    #[test]
    fn sparse_and_odd_objects_still_decode() {
        let info: ObjectInfo = serde_json::from_value(json!({})).unwrap();
        assert_eq!(info, ObjectInfo::default());
        let info: ObjectInfo = serde_json::from_value(
            json!({"key": "k", "custom_metadata": null, "storage_class": "Glacier"}),
        )
        .unwrap();
        assert_eq!(info.storage_class, Some(StorageClass::Unknown));
        assert!(info.custom_metadata.is_empty());
    }

    #[test]
    fn put_result_size_is_a_string_in_the_spec() {
        let result: PutObjectResult = serde_json::from_value(json!({
            "etag": "d41d8cd98f00b204e9800998ecf8427e", "key": "path/to/my-object.txt",
            "size": "1048576", "storage_class": "InfrequentAccess",
            "uploaded": "2024-01-15T10:30:00Z", "version": "3fd5b4a8-1234-5678-abcd-ef0123456789"
        }))
        .unwrap();
        assert_eq!(result.size, Some(1_048_576));
        assert_eq!(result.storage_class, Some(StorageClass::InfrequentAccess));
        let numeric: PutObjectResult = serde_json::from_value(json!({"size": 5})).unwrap();
        assert_eq!(numeric.size, Some(5));
        let none: PutObjectResult = serde_json::from_value(json!({"size": null})).unwrap();
        assert_eq!(none.size, None);
        let err = serde_json::from_value::<PutObjectResult>(json!({"size": "big"})).unwrap_err();
        assert!(err.to_string().contains("\"big\""), "{err}");
    }

    #[test]
    fn bucket_job_decodes_both_spec_examples() {
        let done: BucketJob = serde_json::from_value(json!({
            "endTime": "2026-07-20T12:00:00.000Z", "id": "69f94626-a3fe-47bc-9615-e791b4d53c53",
            "jobType": "prefixDelete",
            "prefixDelete": {"deletedObjects": 0, "isBucketClear": true, "prefix": ""},
            "startTime": "2026-07-20T12:00:00.000Z", "status": "COMPLETED"
        }))
        .unwrap();
        assert_eq!(done.status, JobStatus::Completed);
        assert_eq!(done.prefix_delete.is_bucket_clear, Some(true));
        assert!(done.end_time.is_some());
        let queued: BucketJob = serde_json::from_value(json!({
            "id": "7f24658b", "jobType": "prefixDelete",
            "prefixDelete": {"deletedObjects": 3, "prefix": "notes/"},
            "startTime": "2026-07-20T12:00:00.000Z", "status": "ENQUEUED"
        }))
        .unwrap();
        assert_eq!(queued.status, JobStatus::Enqueued);
        assert_eq!(queued.prefix_delete.deleted_objects, 3);
        assert_eq!(queued.end_time, None);
        let odd: BucketJob = serde_json::from_value(json!({
            "id": "x", "status": "PAUSED", "prefixDelete": {"prefix": "a/", "deletedObjects": 1}
        }))
        .unwrap();
        assert_eq!(odd.status, JobStatus::Unknown);
    }

    #[test]
    fn list_pages_end_without_a_cursor_or_when_not_truncated() {
        let info = |v| serde_json::from_value::<ListResultInfo>(v).unwrap();
        let page = ObjectList::from_parts(
            vec![],
            Some(info(json!({
                "cursor": "c2", "delimited": ["path/to/", "another/path/"],
                "is_truncated": true, "per_page": 20
            }))),
        );
        assert_eq!(page.cursor.as_deref(), Some("c2"));
        assert_eq!(page.delimited, ["path/to/", "another/path/"]);
        assert_eq!(page.per_page, Some(20));
        let cursor_only = ObjectList::from_parts(vec![], Some(info(json!({"cursor": "c3"}))));
        assert_eq!(cursor_only.cursor.as_deref(), Some("c3"));
        for last in [
            json!({"cursor": "", "is_truncated": true}),
            json!({"cursor": "c", "is_truncated": false}),
            json!({"delimited": null}),
            json!({}),
        ] {
            assert_eq!(
                ObjectList::from_parts(vec![], Some(info(last))).cursor,
                None
            );
        }
        assert_eq!(ObjectList::from_parts(vec![], None), ObjectList::default());
    }

    #[test]
    fn etags_lose_their_quotes() {
        assert_eq!(unquote_etag("\"abc\""), "abc");
        assert_eq!(unquote_etag("W/\"abc\""), "abc");
        assert_eq!(unquote_etag("abc"), "abc");
        assert_eq!(unquote_etag("\""), "\"");
    }

    #[test]
    fn object_body_reads_the_headers() {
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", "text/markdown".parse().unwrap());
        headers.insert("etag", "\"d41d8\"".parse().unwrap());
        headers.insert(
            "last-modified",
            "Tue, 15 Jan 2024 10:30:00 GMT".parse().unwrap(),
        );
        headers.insert("cf-r2-storage-class", "InfrequentAccess".parse().unwrap());
        let got = ObjectBody::from_response("k".into(), &headers, Bytes::from_static(b"hi"));
        assert_eq!(got.content_type.as_deref(), Some("text/markdown"));
        assert_eq!(got.etag.as_deref(), Some("d41d8"));
        assert_eq!(got.storage_class, Some(StorageClass::InfrequentAccess));
        assert_eq!(got.body.as_ref(), b"hi");
        let bare = ObjectBody::from_response("k".into(), &http::HeaderMap::new(), Bytes::new());
        assert_eq!(bare.content_type, None);
        assert_eq!(bare.etag, None);
        assert_eq!(bare.storage_class, None);
    }

    #[test]
    fn builders_fill_the_requests() {
        let list = ListObjects::new()
            .prefix("notes/")
            .delimiter("/")
            .cursor("c")
            .per_page(5)
            .start_after("notes/a");
        assert_eq!(list.prefix.as_deref(), Some("notes/"));
        assert_eq!(list.per_page, Some(5));
        assert_eq!(list.start_after.as_deref(), Some("notes/a"));
        let put = PutObject::new("k", &b"v"[..]).storage_class(StorageClass::Standard);
        assert_eq!(put.storage_class, Some(StorageClass::Standard));
        assert_eq!(StorageClass::Unknown.as_str(), None);
        assert_eq!(Jurisdiction::Eu.as_str(), "eu");
        assert_eq!(
            JobStatus::Cancelled,
            serde_json::from_value(json!("CANCELLED")).unwrap()
        );
    }
}
