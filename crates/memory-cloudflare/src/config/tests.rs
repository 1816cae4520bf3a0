//! The settings' checks: defaults, every value, every problem at once, and the token.

use std::collections::HashMap;

use super::*;

const SECRET: &str = "cf-secret-token-value-1234";
const UUID: &str = "0f8e6a4c-2b1d-4e3f-9a8b-7c6d5e4f3a2b";

fn required() -> Vec<(&'static str, &'static str)> {
    vec![
        (TOKEN_ENV, SECRET),
        (ACCOUNT_ENV, "023e105f4ecef8ad9ca31a8372d0c353"),
        (VECTORIZE_INDEX_ENV, "mcp-memory"),
        (D1_DATABASE_ENV, UUID),
    ]
}

fn read(vars: &[(&'static str, &str)]) -> Result<CloudflareConfig, ConfigErrors> {
    let map: HashMap<&str, String> = vars.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    CloudflareConfig::from_lookup(|k| map.get(k).cloned())
}

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut vars = required();
    for (k, v) in extra {
        vars.retain(|(key, _)| key != k);
        vars.push((k, v));
    }
    vars
}

fn only_problem(vars: &[(&'static str, &str)], variable: &str) -> ConfigProblem {
    let err = read(vars).unwrap_err();
    assert_eq!(err.variables(), vec![variable], "{err}");
    err.0[0].clone()
}

#[test]
fn defaults() {
    let c = read(&required()).unwrap();
    assert_eq!(c.client.token.expose(), SECRET);
    assert_eq!(c.account_id(), "023e105f4ecef8ad9ca31a8372d0c353");
    assert_eq!(c.vectorize_index, "mcp-memory");
    assert_eq!(c.d1_database_id, UUID);
    assert_eq!(c.r2_bucket, None);
    assert_eq!(c.embedding_model, EmbeddingModel::BGE_BASE_EN_V1_5);
    assert_eq!(c.embedding_model.dimensions(), 768);
    assert_eq!(c.large_content_threshold, 1_048_576);
    assert_eq!(c.namespace, None);
    assert_eq!(c.client.base_url, cloudflare_http::DEFAULT_BASE_URL);
    assert_eq!(c.client.retry, RetryConfig::default());
    assert_eq!(
        c.client.request_timeout,
        cloudflare_http::client::DEFAULT_REQUEST_TIMEOUT
    );
    assert_eq!(c.client.rate_limit, Some(RateLimitConfig::default()));
}

#[test]
fn every_value_is_read_and_trimmed() {
    let c = read(&with(&[
        (TOKEN_ENV, "  tok \n"),
        (R2_BUCKET_ENV, "mcp-memory-content"),
        (EMBEDDING_MODEL_ENV, "@cf/baai/bge-small-en-v1.5"),
        (LARGE_CONTENT_THRESHOLD_ENV, " 4096 "),
        (MAX_RETRIES_ENV, "5"),
        (BASE_DELAY_ENV, "0.25"),
        (API_BASE_URL_ENV, "http://127.0.0.1:9999/client/v4"),
        (NAMESPACE_ENV, "team_a"),
        (REQUEST_TIMEOUT_ENV, "2.5"),
        (RATE_LIMIT_ENV, "600"),
    ]))
    .unwrap();
    assert_eq!(c.client.token.expose(), "tok");
    assert_eq!(c.r2_bucket.as_deref(), Some("mcp-memory-content"));
    assert_eq!(c.embedding_model, EmbeddingModel::BGE_SMALL_EN_V1_5);
    assert_eq!(c.large_content_threshold, 4096);
    assert_eq!(c.client.retry.max_retries, 5);
    assert_eq!(
        c.client.retry.backoff.init_backoff(),
        Duration::from_millis(250)
    );
    assert_eq!(c.client.base_url, "http://127.0.0.1:9999/client/v4");
    assert_eq!(c.namespace.as_ref().map(Namespace::as_str), Some("team_a"));
    assert_eq!(c.client.request_timeout, Duration::from_millis(2500));
    let limit = c.client.rate_limit.unwrap();
    assert_eq!(
        (limit.requests(), limit.per(), limit.burst()),
        (600, RATE_LIMIT_WINDOW, DEFAULT_BURST)
    );
}

#[test]
fn rate_limit_zero_turns_it_off_and_small_limits_cap_the_burst() {
    let c = read(&with(&[(RATE_LIMIT_ENV, "0")])).unwrap();
    assert_eq!(c.client.rate_limit, None);
    let c = read(&with(&[(RATE_LIMIT_ENV, "5")])).unwrap();
    assert_eq!(c.client.rate_limit.unwrap().burst(), 5);
}

#[test]
fn each_missing_required_variable_is_named() {
    for variable in [TOKEN_ENV, ACCOUNT_ENV, VECTORIZE_INDEX_ENV, D1_DATABASE_ENV] {
        let mut vars = required();
        vars.retain(|(k, _)| *k != variable);
        let p = only_problem(&vars, variable);
        assert!(p.reason.contains("is not set"), "{p}");
        // Blank counts as unset.
        vars.push((variable, "   "));
        assert_eq!(only_problem(&vars, variable), p);
    }
}

#[test]
fn each_malformed_variable_is_named_with_what_is_expected() {
    let cases: &[(&'static str, &'static str, &str)] = &[
        (ACCOUNT_ENV, "acc/123", "letters and digits"),
        (VECTORIZE_INDEX_ENV, "My Index", "lowercase"),
        (
            VECTORIZE_INDEX_ENV,
            "a-very-long-index-name-that-goes-well-beyond-the-sixty-four-byte-limit",
            "1 to 64",
        ),
        (D1_DATABASE_ENV, "mcp-memory", "UUID"),
        (D1_DATABASE_ENV, "0f8e6a4c2b1d4e3f9a8b7c6d5e4f3a2b", "UUID"),
        (R2_BUCKET_ENV, "Bad_Bucket", "bucket"),
        (
            EMBEDDING_MODEL_ENV,
            "@cf/acme/unknown",
            "@cf/baai/bge-base-en-v1.5",
        ),
        (EMBEDDING_MODEL_ENV, "bge-small", "@cf/<vendor>/<name>"),
        (LARGE_CONTENT_THRESHOLD_ENV, "1MB", "whole number of bytes"),
        (LARGE_CONTENT_THRESHOLD_ENV, "0", "from 1"),
        (LARGE_CONTENT_THRESHOLD_ENV, "3000000", "2000000"),
        (MAX_RETRIES_ENV, "three", "whole number"),
        (BASE_DELAY_ENV, "-1", "positive"),
        (API_BASE_URL_ENV, "not a url", "http(s) URL"),
        (API_BASE_URL_ENV, "ftp://example.com/client/v4", "http(s)"),
        (API_BASE_URL_ENV, "/client/v4", "http(s)"),
        (NAMESPACE_ENV, "Team-A", "a-z, 0-9 and _"),
        (
            NAMESPACE_ENV,
            "a_namespace_longer_than_32_characters",
            "1 to 32",
        ),
        (REQUEST_TIMEOUT_ENV, "0", "positive number of seconds"),
        (REQUEST_TIMEOUT_ENV, "soon", "positive number of seconds"),
        (RATE_LIMIT_ENV, "-5", "whole number of requests"),
    ];
    for (variable, value, expected) in cases {
        let p = only_problem(&with(&[(variable, value)]), variable);
        assert!(
            p.reason.contains(expected),
            "{variable}={value}: {p} lacks {expected:?}"
        );
    }
}

#[test]
fn all_problems_are_reported_together() {
    let err = read(&[
        (D1_DATABASE_ENV, "not-a-uuid"),
        (MAX_RETRIES_ENV, "x"),
        (BASE_DELAY_ENV, "y"),
        (EMBEDDING_MODEL_ENV, "@cf/acme/unknown"),
        (RATE_LIMIT_ENV, "lots"),
        (NAMESPACE_ENV, "BAD"),
    ])
    .unwrap_err();
    assert_eq!(
        err.variables(),
        vec![
            TOKEN_ENV,
            ACCOUNT_ENV,
            VECTORIZE_INDEX_ENV,
            D1_DATABASE_ENV,
            EMBEDDING_MODEL_ENV,
            MAX_RETRIES_ENV,
            BASE_DELAY_ENV,
            NAMESPACE_ENV,
            RATE_LIMIT_ENV,
        ]
    );
    let text = err.to_string();
    assert!(text.contains("9 problems"), "{text}");
    for variable in err.variables() {
        assert!(text.contains(&format!("\n  - {variable}: ")), "{text}");
    }
}

#[test]
fn typed_settings_are_checked_like_variables() {
    let mut settings = CloudflareSettings {
        account_id: Some("023e105f4ecef8ad9ca31a8372d0c353".to_owned()),
        vectorize_index: Some("mcp-memory".to_owned()),
        d1_database_id: Some(UUID.to_owned()),
        max_retries: Some("x".to_owned()),
        ..CloudflareSettings::default()
    };
    let err = settings.clone().into_config().unwrap_err();
    assert_eq!(err.fields(), vec![Field::ApiToken, Field::MaxRetries]);
    assert!(err.0[1].reason.starts_with("\"x\" is invalid"), "{err}");
    settings.set(Field::ApiToken, SECRET);
    settings.set(Field::MaxRetries, "4");
    let c = settings.clone().into_config().unwrap();
    assert_eq!(c.client.retry.max_retries, 4);
    assert_eq!(c.client.token.expose(), SECRET);
    for text in [format!("{settings:?}"), format!("{settings:#?}")] {
        assert!(!text.contains(SECRET), "{text}");
    }
}

#[test]
fn fields_name_their_variables_and_defaults() {
    for field in Field::ALL {
        assert_eq!(Field::from_env_name(field.env()), Some(field));
    }
    let c = read(&required()).unwrap();
    let shown = |field: Field| field.default_value().unwrap();
    assert_eq!(shown(Field::EmbeddingModel), c.embedding_model.id());
    assert_eq!(
        shown(Field::LargeContentThreshold),
        c.large_content_threshold.to_string()
    );
    assert_eq!(
        shown(Field::MaxRetries),
        c.client.retry.max_retries.to_string()
    );
    assert_eq!(shown(Field::BaseDelay), "1");
    assert_eq!(shown(Field::ApiBaseUrl), c.client.base_url.to_string());
    assert_eq!(shown(Field::RequestTimeout), "40");
    assert_eq!(
        shown(Field::RateLimit),
        c.client.rate_limit.unwrap().requests().to_string()
    );
    for field in [Field::ApiToken, Field::R2Bucket, Field::Namespace] {
        assert_eq!(field.default_value(), None, "{field}");
    }
}

#[test]
fn the_token_never_shows() {
    let c = read(&required()).unwrap();
    for text in [format!("{c:?}"), format!("{c:#?}")] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(text.contains("***"), "{text}");
    }
    // Problems with other variables never quote the token.
    let err = read(&with(&[(D1_DATABASE_ENV, "x"), (ACCOUNT_ENV, "a/b")])).unwrap_err();
    assert!(!err.to_string().contains(SECRET));
    assert!(!format!("{err:?}").contains(SECRET));
}

#[test]
fn the_embedding_fallback_is_local_off_or_unset() {
    let c = read(&required()).unwrap();
    assert_eq!(c.embedding_fallback, EmbeddingFallback::Auto);
    assert_eq!(c.embedding_fallback_dir, None);
    for (value, want) in [
        ("local", EmbeddingFallback::Local),
        ("OFF", EmbeddingFallback::Off),
    ] {
        let c = read(&with(&[
            (EMBEDDING_FALLBACK_ENV, value),
            (EMBEDDING_FALLBACK_DIR_ENV, "/models/bge"),
        ]))
        .unwrap();
        assert_eq!(c.embedding_fallback, want, "{value}");
        assert_eq!(c.embedding_fallback_dir, Some(PathBuf::from("/models/bge")));
    }
    let p = only_problem(
        &with(&[(EMBEDDING_FALLBACK_ENV, "remote")]),
        EMBEDDING_FALLBACK_ENV,
    );
    assert!(
        p.reason.contains("\"remote\"") && p.reason.contains("local or off"),
        "{p}"
    );
}
