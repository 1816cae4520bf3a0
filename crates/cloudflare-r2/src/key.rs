//! Object keys, prefixes and bucket names: validation before sending, and the encoding of a
//! key into the request path.
//!
//! The R2 REST API takes the key as the rest of the path after `/objects/`, with its
//! slashes sent literally (the spec: "Slashes (`/`) within the key MUST be sent literally
//! and MUST NOT be percent-encoded (i.e. `%2F`); other reserved characters should be
//! percent-encoded as usual"). So [`encode_key`] percent-encodes each `/`-separated part of
//! the key with [`cloudflare_http::encode_segment`] and joins the parts with `/`: the
//! server decodes the whole tail back into exactly the key.

use cloudflare_http::encode_segment;

use crate::error::R2Error;
use crate::{MAX_BUCKET_NAME_BYTES, MAX_KEY_BYTES, MIN_BUCKET_NAME_BYTES};

/// Checks an object key: non-empty, at most [`MAX_KEY_BYTES`] bytes of UTF-8, and no `.`
/// or `..` path segment (which URL normalisation would rewrite, since slashes are literal).
///
/// # Errors
///
/// [`R2Error::EmptyKey`], [`R2Error::KeyTooLong`] or [`R2Error::DotSegment`].
pub(crate) fn validate_key(key: &str) -> Result<(), R2Error> {
    validate_key_as("object key", key)
}

pub(crate) fn validate_key_as(what: &'static str, key: &str) -> Result<(), R2Error> {
    if key.is_empty() {
        return Err(R2Error::EmptyKey { what });
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(R2Error::key_too_long(what, key.len()));
    }
    Ok(())
}

/// [`validate_key`] plus the dot-segment check needed when the key goes into the path.
pub(crate) fn validate_path_key(key: &str) -> Result<(), R2Error> {
    validate_key(key)?;
    for segment in key.split('/') {
        let dots = match segment {
            "." => ".",
            ".." => "..",
            _ => continue,
        };
        return Err(R2Error::DotSegment {
            key: key.to_owned(),
            segment: dots,
        });
    }
    Ok(())
}

/// Checks a list or delete prefix: at most [`MAX_KEY_BYTES`] bytes (it may be empty).
pub(crate) fn validate_prefix(prefix: &str) -> Result<(), R2Error> {
    if prefix.len() > MAX_KEY_BYTES {
        return Err(R2Error::key_too_long("prefix", prefix.len()));
    }
    Ok(())
}

/// Encodes a key for the request path: every character but RFC 3986 unreserved ones and
/// `/` is percent-encoded; `/` stays literal, as the R2 REST API requires.
#[must_use]
pub(crate) fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 8);
    for (i, part) in key.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(&encode_segment(part));
    }
    out
}

/// Checks a bucket name against R2's rules: 3 to 63 characters of `a-z`, `0-9` and `-`,
/// starting and ending with a letter or digit.
///
/// # Errors
///
/// [`R2Error::InvalidBucketName`] naming the broken rule.
pub fn validate_bucket_name(bucket: &str) -> Result<(), R2Error> {
    if bucket.len() < MIN_BUCKET_NAME_BYTES {
        return Err(R2Error::bucket(bucket, "it is too short"));
    }
    if bucket.len() > MAX_BUCKET_NAME_BYTES {
        return Err(R2Error::bucket(bucket, "it is too long"));
    }
    if !bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(R2Error::bucket(
            bucket,
            "it has a character other than a-z, 0-9 and '-'",
        ));
    }
    if bucket.starts_with('-') || bucket.ends_with('-') {
        return Err(R2Error::bucket(bucket, "it starts or ends with '-'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_key_keeps_slashes() {
        assert_eq!(encode_key("notes/2024 q1.md"), "notes/2024%20q1.md");
        assert_eq!(encode_key("a?b#c%d"), "a%3Fb%23c%25d");
    }
    use proptest::prelude::*;

    #[test]
    fn keys_keep_their_slashes_and_encode_the_rest() {
        assert_eq!(encode_key("notes/2024 q1.md"), "notes/2024%20q1.md");
        assert_eq!(encode_key("plain"), "plain");
        assert_eq!(encode_key("a%2Fb"), "a%252Fb");
        assert_eq!(encode_key("é/ü"), "%C3%A9/%C3%BC");
        assert_eq!(encode_key("/lead//trail/"), "/lead//trail/");
        assert_eq!(encode_key("q?x=1#f"), "q%3Fx%3D1%23f");
    }

    #[test]
    fn key_validation_names_the_limit() {
        assert!(validate_path_key("notes/2024 q1.md").is_ok());
        assert!(validate_path_key("...").is_ok());
        assert!(validate_path_key("a/.b/c..").is_ok());
        let err = validate_key("").unwrap_err();
        assert!(matches!(err, R2Error::EmptyKey { .. }), "{err}");
        assert!(err.to_string().contains("empty"), "{err}");
        let max = "k".repeat(MAX_KEY_BYTES);
        assert!(validate_key(&max).is_ok());
        let err = validate_key(&format!("{max}k")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("MAX_KEY_BYTES = 1024") && text.contains("1025 bytes"),
            "{text}"
        );
        assert!(text.contains("shorten"), "{text}");
        // Bytes, not characters: 512 two-byte characters fit, 513 do not.
        assert!(validate_key(&"é".repeat(512)).is_ok());
        assert!(matches!(
            validate_key(&"é".repeat(513)),
            Err(R2Error::KeyTooLong { actual: 1026, .. })
        ));
        for (key, segment) in [("..", ".."), ("a/../b", ".."), ("./a", "."), ("a/.", ".")] {
            let err = validate_path_key(key).unwrap_err();
            assert!(
                matches!(&err, R2Error::DotSegment { segment: s, .. } if *s == segment),
                "{key}: {err}"
            );
            assert!(err.to_string().contains("rename the key"), "{err}");
        }
    }

    #[test]
    fn prefixes_may_be_empty_but_not_too_long() {
        assert!(validate_prefix("").is_ok());
        assert!(validate_prefix("notes/").is_ok());
        let err = validate_prefix(&"p".repeat(MAX_KEY_BYTES + 1)).unwrap_err();
        assert!(err.to_string().contains("prefix"), "{err}");
    }

    #[test]
    fn bucket_names_follow_r2_rules() {
        for ok in ["abc", "memory-store", "a1-b2", &"b".repeat(63)] {
            assert!(validate_bucket_name(ok).is_ok(), "{ok}");
        }
        for (bad, reason) in [
            ("ab", "too short"),
            (&"b".repeat(64) as &str, "too long"),
            ("My-Bucket", "character"),
            ("my_bucket", "character"),
            ("my bucket", "character"),
            ("-bucket", "starts or ends"),
            ("bucket-", "starts or ends"),
        ] {
            let err = validate_bucket_name(bad).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(reason), "{bad}: {text}");
            assert!(text.contains("3 to 63"), "{text}");
        }
    }

    /// Any key the validation accepts.
    fn valid_key() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                "[a-zA-Z0-9 ._~-]{1,12}",
                "\\PC{1,8}",
                Just("%2F".to_owned()),
                Just(String::new()),
            ],
            1..6,
        )
        .prop_map(|parts| parts.join("/"))
        .prop_filter("valid keys only", |key| validate_path_key(key).is_ok())
    }

    proptest! {
        #[test]
        fn valid_keys_round_trip_through_the_path(key in valid_key()) {
            let encoded = encode_key(&key);
            // Only the key's own slashes are literal; nothing else can end the path.
            prop_assert_eq!(encoded.matches('/').count(), key.matches('/').count());
            prop_assert!(!encoded.contains('?') && !encoded.contains('#'));
            let path = format!("/accounts/a/r2/buckets/b/objects/{encoded}");
            let parsed: http::uri::PathAndQuery = path.parse().unwrap();
            prop_assert_eq!(parsed.query(), None);
            let tail = parsed.path().strip_prefix("/accounts/a/r2/buckets/b/objects/").unwrap();
            let decoded = percent_encoding::percent_decode_str(tail).decode_utf8().unwrap();
            prop_assert_eq!(decoded, key);
        }

        #[test]
        fn validation_never_panics(key in "\\PC{0,40}") {
            let _ = validate_path_key(&key);
            let _ = validate_bucket_name(&key);
        }
    }
}
