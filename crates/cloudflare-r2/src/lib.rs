//! Cloudflare R2 client: object put/get/delete/list over the REST API as a tower service.
//!
//! [`R2Client`] talks to one bucket through the `/accounts/{account_id}/r2/buckets/{bucket}/objects`
//! endpoints of the Cloudflare v4 API, over the shared [`cloudflare_http::Client`] (its
//! `"r2"` service: auth, base URL, rate limit, retries, circuit breaker, accounting and
//! timeout are all applied there). It offers:
//!
//! - [`R2Client::put_object`] / [`R2Client::put`]: upload raw bytes (`PUT`, retried: it
//!   replaces the whole object);
//! - [`R2Client::get_object`] / [`R2Client::get`]: the raw object bytes plus
//!   `Content-Type`, `ETag`, `Last-Modified`, storage class; a missing key is
//!   [`R2Error::NotFound`];
//! - [`R2Client::delete_object`] / [`R2Client::delete`]: a missing key is not an error, so
//!   deletes can be repeated;
//! - [`R2Client::list_objects`]: one page (prefix, delimiter, cursor, per page,
//!   start after), and [`R2Client::list_all`] / [`list_all_pages`]: every page, following
//!   the cursor;
//! - [`R2Client::delete_prefix`]: delete every key under a prefix as a bucket job.
//!
//! Each operation is also a `tower::Service` over its typed request ([`PutObject`],
//! [`GetObject`], [`DeleteObject`], [`ListObjects`], [`DeletePrefix`]) and a method of the
//! object-safe [`R2Api`] trait (mock it with `MockR2Api`, feature `mock`).
//!
//! Every input is validated before anything is sent, with an error naming the limit.
//! Keys are sent as the R2 REST API requires: each `/`-separated part percent-encoded, the
//! slashes literal ([`encode_key`]); so a key may not have a `.` or `..` segment, which URL
//! normalisation would rewrite.
//!
//! ```no_run
//! use cloudflare_http::{ApiToken, ClientBuilder, ClientConfig};
//! use cloudflare_r2::R2Client;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ClientConfig::new("023e105f4ecef8ad9ca31a8372d0c353", ApiToken::new("token"));
//! let client = ClientBuilder::new(config).build()?;
//! let r2 = R2Client::new(&client, "memory-blobs")?;
//! let put = r2.put("notes/2024 q1.md", "# Q1\n").await?;
//! println!("stored {} ({:?})", put.key, put.etag);
//! let object = r2.get("notes/2024 q1.md").await?;
//! assert_eq!(object.body.as_ref(), b"# Q1\n");
//! for info in r2.list_all("notes/").await? {
//!     println!("{} {:?} bytes", info.key, info.size);
//! }
//! r2.delete("notes/2024 q1.md").await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Limits
//!
//! | Limit | Value | Constant | Source |
//! |---|---|---|---|
//! | Object key length | 1,024 bytes of UTF-8 | [`MAX_KEY_BYTES`] | [R2 limits](https://developers.cloudflare.com/r2/platform/limits/) |
//! | Body of one PUT on the REST API | 300 MB | [`MAX_PUT_BYTES`] | [Upload Object](https://developers.cloudflare.com/api/resources/r2/subresources/buckets/subresources/objects/) |
//! | Objects per list page | 1 to 1,000 (default 20) | [`MAX_PER_PAGE`] | [List Objects](https://developers.cloudflare.com/api/resources/r2/subresources/buckets/subresources/objects/) |
//! | Bucket name | 3 to 63 of `a-z 0-9 -` | [`MIN_BUCKET_NAME_BYTES`], [`MAX_BUCKET_NAME_BYTES`] | [Create buckets](https://developers.cloudflare.com/r2/buckets/create-buckets/) |
//! | API requests | 1,200 per 5 minutes per user, across all its tokens and the dashboard | [`cloudflare_http::RATE_LIMIT_REQUESTS`], paced by [`cloudflare_http::AccountBudget`] | [API limits](https://developers.cloudflare.com/fundamentals/api/reference/limits/) |
//! | Writes to one key | 1 per second | — | [R2 limits](https://developers.cloudflare.com/r2/platform/limits/) |

// `pub` is for other crates: an item no other crate can reach is `pub(crate)`.
#![warn(unreachable_pub)]

mod client;
mod envelope;
mod error;
mod key;
mod model;

#[cfg(any(test, feature = "mock"))]
pub use client::MockR2Api;
pub use client::{R2Api, R2Client, list_all_pages};
pub use error::R2Error;
pub use key::validate_bucket_name;
pub use model::{
    BucketJob, DeleteObject, DeletePrefix, DeletedObject, GetObject, HttpMetadata, JobStatus,
    Jurisdiction, ListObjects, ObjectBody, ObjectInfo, ObjectList, PrefixDeleteInfo, PutObject,
    PutObjectResult, StorageClass,
};

/// The service name this crate uses on the shared [`cloudflare_http::Client`].
pub(crate) const SERVICE: &str = "r2";

/// Longest object key, in bytes of UTF-8. Also bounds prefixes and `start_after`.
///
/// See <https://developers.cloudflare.com/r2/platform/limits/> ("Object key length").
pub(crate) const MAX_KEY_BYTES: usize = 1024;

/// Largest body of one PUT on the REST API: 300 MB (taken as 300,000,000 bytes, the
/// smaller reading of "MB"). Larger objects need the S3 API's multipart upload.
///
/// See <https://developers.cloudflare.com/api/resources/r2/subresources/buckets/subresources/objects/>
/// ("The maximum upload size for this endpoint is 300 MB") and
/// <https://developers.cloudflare.com/r2/platform/limits/>.
pub(crate) const MAX_PUT_BYTES: u64 = 300 * 1000 * 1000;

/// Most objects one list page returns (`per_page` is 1 to this; the API's default is 20).
///
/// See <https://developers.cloudflare.com/api/resources/r2/subresources/buckets/subresources/objects/>.
pub(crate) const MAX_PER_PAGE: u32 = 1000;

/// Shortest bucket name.
///
/// See <https://developers.cloudflare.com/r2/buckets/create-buckets/>.
pub(crate) const MIN_BUCKET_NAME_BYTES: usize = 3;

/// Longest bucket name.
///
/// See <https://developers.cloudflare.com/r2/buckets/create-buckets/>.
pub(crate) const MAX_BUCKET_NAME_BYTES: usize = 63;

#[cfg(test)]
mod tests;
