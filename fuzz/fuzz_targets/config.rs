//! The Cloudflare backend's configuration parser,
//! `memory_cloudflare::config::CloudflareConfig::from_lookup`, with arbitrary values for
//! every variable.
//!
//! Invariants: nothing panics; a problem names a known variable; the token never shows in
//! an error's `Display`/`Debug` or the config's `Debug`; an accepted config holds the
//! trimmed values it was given.
//!
//! The `mcp-memory` TOML config file parser (`crates/memory-server/src/config.rs`) lives in
//! the binary crate, which has no library target, so it is not reachable from here.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memory_cloudflare::config::{
    ACCOUNT_ENV, API_BASE_URL_ENV, BASE_DELAY_ENV, CloudflareConfig, D1_DATABASE_ENV,
    EMBEDDING_MODEL_ENV, LARGE_CONTENT_THRESHOLD_ENV, MAX_RETRIES_ENV, NAMESPACE_ENV,
    R2_BUCKET_ENV, RATE_LIMIT_ENV, REQUEST_TIMEOUT_ENV, TOKEN_ENV, VECTORIZE_INDEX_ENV,
};

const VARIABLES: [&str; 14] = [
    TOKEN_ENV,
    ACCOUNT_ENV,
    VECTORIZE_INDEX_ENV,
    D1_DATABASE_ENV,
    R2_BUCKET_ENV,
    EMBEDDING_MODEL_ENV,
    LARGE_CONTENT_THRESHOLD_ENV,
    MAX_RETRIES_ENV,
    BASE_DELAY_ENV,
    API_BASE_URL_ENV,
    NAMESPACE_ENV,
    REQUEST_TIMEOUT_ENV,
    RATE_LIMIT_ENV,
    "CLOUDFLARE_UNRELATED",
];

/// A marker no message text contains, so finding it in output means the token leaked.
const TOKEN_MARKER: &str = "zQ7tokenMARKERq";

/// The input: one flag byte, then lines `<letter>=<value>` where the letter `a`, `b`, ...
/// picks the variable of [`VARIABLES`] (wrapping), so seeds are easy to write. A later line
/// for the same variable replaces an earlier one; a line without `=` sets an empty value.
///
/// Flag bit 0: fill the required variables with valid values where unset (so the optional
/// ones are reached with a complete configuration). Bit 1: prefix the token with
/// [`TOKEN_MARKER`] and check that it never shows.
fn values_of(data: &[u8]) -> Option<(Vec<Option<String>>, bool)> {
    let (&flags, rest) = data.split_first()?;
    let text = std::str::from_utf8(rest).ok()?;
    let mut values: Vec<Option<String>> = vec![None; VARIABLES.len()];
    for line in text.split('\n') {
        let Some(&key) = line.as_bytes().first() else {
            continue;
        };
        let slot = usize::from(key.wrapping_sub(b'a')) % VARIABLES.len();
        let value = line.get(1..).unwrap_or_default();
        let value = value.strip_prefix('=').unwrap_or(value);
        values[slot] = Some(value.to_owned());
    }
    if flags & 1 == 1 {
        let defaults = [
            "token-value",
            "0123456789abcdef0123456789abcdef",
            "mcp-memory",
            "01234567-89ab-cdef-0123-456789abcdef",
        ];
        for (slot, default) in values.iter_mut().zip(defaults) {
            if slot.is_none() {
                *slot = Some(default.to_owned());
            }
        }
    }
    let mark = flags & 2 == 2;
    if mark {
        values[0] = Some(format!(
            "{TOKEN_MARKER}{}",
            values[0].as_deref().unwrap_or("")
        ));
    }
    Some((values, mark))
}

fuzz_target!(|data: &[u8]| {
    let Some((values, mark_token)) = values_of(data) else {
        return;
    };
    let lookup = |key: &str| {
        VARIABLES
            .iter()
            .position(|v| *v == key)
            .and_then(|i| values[i].clone())
    };
    let marker_elsewhere = values[1..]
        .iter()
        .flatten()
        .any(|v| v.contains(TOKEN_MARKER));
    let leaks = |text: &str| mark_token && !marker_elsewhere && text.contains(TOKEN_MARKER);

    match CloudflareConfig::from_lookup(lookup) {
        Ok(config) => {
            let debug = format!("{config:?}");
            assert!(
                !leaks(&debug),
                "the token shows in the config's Debug: {debug}"
            );
            let trimmed = |i: usize| values[i].as_deref().map(str::trim).unwrap_or_default();
            assert_eq!(config.account_id(), trimmed(1));
            assert_eq!(config.vectorize_index, trimmed(2));
            assert_eq!(config.d1_database_id, trimmed(3));
            assert!(config.large_content_threshold >= 1);
        }
        Err(errors) => {
            assert!(!errors.problems().is_empty(), "an error without a problem");
            for problem in errors.problems() {
                assert!(VARIABLES.contains(&problem.variable), "{problem:?}");
                assert!(!problem.problem.is_empty());
            }
            let display = errors.to_string();
            let debug = format!("{errors:?}");
            assert!(!leaks(&display), "the token shows in the error: {display}");
            assert!(
                !leaks(&debug),
                "the token shows in the error's Debug: {debug}"
            );
        }
    }
});
