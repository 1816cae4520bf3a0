//! Request-body helpers: multipart extraction, query strings, timestamps and ids.

use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// The boundary of a `multipart/form-data` content type, if it is one.
pub(crate) fn multipart_boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    let mime = parts.next()?.trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    parts.find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The content of the part named `name` of a multipart body (or of its first part when no
/// part has that name); `None` when the body is not well-formed multipart.
pub(crate) fn multipart_part<'a>(body: &'a [u8], boundary: &str, name: &str) -> Option<&'a [u8]> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut first = None;
    let mut pos = find(body, delimiter, 0)? + delimiter.len();
    loop {
        if body.get(pos..pos + 2) == Some(b"--") {
            break;
        }
        let headers_end = find(body, b"\r\n\r\n", pos)?;
        let headers = String::from_utf8_lossy(&body[pos..headers_end]);
        let content_start = headers_end + 4;
        let next = find(body, delimiter, content_start)?;
        let mut content_end = next;
        if content_end >= content_start + 2 && &body[content_end - 2..content_end] == b"\r\n" {
            content_end -= 2;
        }
        let content = &body[content_start..content_end];
        let named = headers.lines().any(|line| {
            line.to_ascii_lowercase().starts_with("content-disposition")
                && line.contains(&format!("name=\"{name}\""))
        });
        if named {
            return Some(content);
        }
        first.get_or_insert(content);
        pos = next + delimiter.len();
    }
    first
}

/// Decodes `%XX` and `+` in a query-string component.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| char::from(c).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `key` in a raw query string.
pub(crate) fn query_param(raw: Option<&str>, key: &str) -> Option<String> {
    raw?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == key).then(|| percent_decode(v))
    })
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// An ISO 8601 UTC timestamp with microseconds, like Cloudflare's
/// `2022-11-15T18:25:44.442097Z`, of `us` microseconds since the epoch.
pub(crate) fn iso8601(us: u64) -> String {
    let secs = us / 1_000_000;
    let micros = us % 1_000_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// A UUID-shaped (8-4-4-4-12, version 4 bits) id derived from `seed` and `salt`.
pub(crate) fn uuid_like(seed: u64, salt: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(seed.to_le_bytes());
    hasher.update(salt.as_bytes());
    let mut b: [u8; 16] = [0; 16];
    b.copy_from_slice(&hasher.finalize()[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn timestamps_are_iso8601() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            iso8601(1_668_536_744_442_097),
            "2022-11-15T18:25:44.442097Z"
        );
        assert_eq!(iso8601(951_782_400_000_000), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn ids_look_like_uuids() {
        let id = uuid_like(7, "x");
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert_ne!(id, uuid_like(7, "y"));
    }

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            query_param(Some("count=5&cursor=a%2Bb+c"), "cursor").as_deref(),
            Some("a+b c")
        );
        assert_eq!(query_param(Some("count"), "count").as_deref(), Some(""));
        assert_eq!(query_param(None, "count"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn multipart_parts_are_found() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nnope\r\n--XX\r\nContent-Disposition: form-data; name=\"vectors\"; filename=\"v.ndjson\"\r\nContent-Type: application/octet-stream\r\n\r\n{\"id\":\"a\"}\n\r\n--XX--\r\n";
        assert_eq!(
            multipart_boundary("multipart/form-data; boundary=XX").as_deref(),
            Some("XX")
        );
        assert_eq!(multipart_boundary("application/x-ndjson"), None);
        assert_eq!(
            multipart_part(body, "XX", "vectors"),
            Some(&b"{\"id\":\"a\"}\n"[..])
        );
        assert_eq!(multipart_part(body, "XX", "none"), Some(&b"nope"[..]));
        assert_eq!(multipart_part(b"garbage", "XX", "vectors"), None);
    }

    proptest! {
        #[test]
        fn multipart_and_query_parsers_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300), q in "\\PC{0,60}") {
            let _ = multipart_part(&body, "b", "vectors");
            let mut framed = b"--b\r\n".to_vec();
            framed.extend_from_slice(&body);
            let _ = multipart_part(&framed, "b", "vectors");
            let _ = query_param(Some(&q), "cursor");
            let _ = percent_decode(&q);
        }
    }
}
