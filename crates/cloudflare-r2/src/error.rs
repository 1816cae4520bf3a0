//! The crate's error type: validation failures (refused before anything is sent), a
//! missing object, and the transport's [`CloudflareError`].

use cloudflare_http::CloudflareError;

use crate::{
    MAX_BUCKET_NAME_BYTES, MAX_KEY_BYTES, MAX_PER_PAGE, MAX_PUT_BYTES, MIN_BUCKET_NAME_BYTES,
};

/// A failed R2 call.
///
/// The validation variants are returned before any request is sent; their message names
/// the limit, its maximum, the actual value and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum R2Error {
    /// An object key (or `start_after`) is the empty string.
    #[error("the R2 {what} is empty; give it at least one character")]
    EmptyKey {
        /// What was empty: `"object key"` or `"start_after key"`.
        what: &'static str,
    },

    /// An object key, prefix or `start_after` is longer than [`MAX_KEY_BYTES`].
    #[error(
        "the R2 {what} is {actual} bytes of UTF-8, over R2's object key limit \
         (MAX_KEY_BYTES = {max} bytes, https://developers.cloudflare.com/r2/platform/limits/); \
         shorten it"
    )]
    KeyTooLong {
        /// What was too long: `"object key"`, `"prefix"` or `"start_after key"`.
        what: &'static str,
        /// Its length in bytes.
        actual: usize,
        /// [`MAX_KEY_BYTES`].
        max: usize,
    },

    /// A key has a `.` or `..` path segment (e.g. `notes/../x`). Slashes in keys are sent
    /// literally, as the R2 REST API requires, so such a segment would be rewritten by URL
    /// normalisation on the way and address another object.
    #[error(
        "the R2 object key {key:?} has a {segment:?} path segment, which URL normalisation \
         would rewrite (slashes in keys are sent literally); rename the key"
    )]
    DotSegment {
        /// The key.
        key: String,
        /// The offending segment, `"."` or `".."`.
        segment: &'static str,
    },

    /// A PUT body is over [`MAX_PUT_BYTES`].
    #[error(
        "the R2 object body is {actual} bytes, over the REST API's limit of one PUT \
         (MAX_PUT_BYTES = {max} bytes, https://developers.cloudflare.com/r2/platform/limits/); \
         split the object into smaller objects or upload it with the S3 API's multipart upload"
    )]
    BodyTooLarge {
        /// The body's size in bytes.
        actual: u64,
        /// [`MAX_PUT_BYTES`].
        max: u64,
    },

    /// `per_page` is 0 or over [`MAX_PER_PAGE`].
    #[error(
        "per_page is {actual}, but R2 lists 1 to {max} objects per page (MAX_PER_PAGE, \
         https://developers.cloudflare.com/api/resources/r2/); pick a value in that range and \
         follow the cursor for more"
    )]
    PerPageOutOfRange {
        /// The requested page size.
        actual: u32,
        /// [`MAX_PER_PAGE`].
        max: u32,
    },

    /// A list delimiter is not exactly one character.
    #[error(
        "the R2 list delimiter {delimiter:?} is {actual} characters, but the API takes exactly \
         {max} character (e.g. \"/\"); pass a single character"
    )]
    InvalidDelimiter {
        /// The delimiter given.
        delimiter: String,
        /// Its length in characters.
        actual: usize,
        /// Always 1.
        max: usize,
    },

    /// A prefix delete was asked for a prefix that is empty or does not end in `/`.
    #[error(
        "cannot delete by prefix {prefix:?}: the R2 API requires a non-empty prefix that ends \
         in '/' (an empty prefix would empty the whole bucket); pass a prefix like \"notes/\""
    )]
    InvalidDeletePrefix {
        /// The prefix given.
        prefix: String,
    },

    /// The bucket name breaks R2's naming rules.
    #[error(
        "the R2 bucket name {bucket:?} is invalid: {reason} (R2 bucket names are \
         {min} to {max} lowercase letters, digits and hyphens, starting and ending with a \
         letter or digit, https://developers.cloudflare.com/r2/buckets/create-buckets/); \
         fix the bucket name in the configuration"
    )]
    InvalidBucketName {
        /// The name given.
        bucket: String,
        /// What is wrong with it.
        reason: &'static str,
        /// [`MIN_BUCKET_NAME_BYTES`].
        min: usize,
        /// [`MAX_BUCKET_NAME_BYTES`].
        max: usize,
    },

    /// The object does not exist (HTTP 404 other than "no such bucket").
    #[error("the R2 object {key:?} does not exist")]
    NotFound {
        /// The key asked for.
        key: String,
    },

    /// A list page came back with the cursor that was sent for it, so paging would never end.
    #[error(
        "the R2 list cursor did not advance after {pages} page(s) (the API returned the \
         cursor it was sent); stopped paging to avoid an endless loop, retry later"
    )]
    CursorStuck {
        /// Pages fetched before the repeat was seen.
        pages: usize,
    },

    /// The request failed in transport or was refused by Cloudflare.
    #[error(transparent)]
    Cloudflare(#[from] CloudflareError),
}

impl R2Error {
    /// Whether sending the same request again may succeed (a retryable transport error,
    /// 408, 429 or 5xx). Validation errors and [`R2Error::NotFound`] never are.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Cloudflare(e) => e.is_retryable(),
            _ => false,
        }
    }

    pub(crate) fn key_too_long(what: &'static str, actual: usize) -> Self {
        Self::KeyTooLong {
            what,
            actual,
            max: MAX_KEY_BYTES,
        }
    }

    pub(crate) fn body_too_large(actual: u64) -> Self {
        Self::BodyTooLarge {
            actual,
            max: MAX_PUT_BYTES,
        }
    }

    pub(crate) fn per_page(actual: u32) -> Self {
        Self::PerPageOutOfRange {
            actual,
            max: MAX_PER_PAGE,
        }
    }

    pub(crate) fn bucket(bucket: &str, reason: &'static str) -> Self {
        Self::InvalidBucketName {
            bucket: bucket.to_owned(),
            reason,
            min: MIN_BUCKET_NAME_BYTES,
            max: MAX_BUCKET_NAME_BYTES,
        }
    }
}
