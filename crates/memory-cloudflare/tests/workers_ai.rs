//! The backend's embeddings through the emulator's Workers AI, end to end from
//! `CloudflareStorage::connect`: texts are cut to the model's 512 input tokens (which the
//! emulator enforces), and, with feature `local-embedding`, the local model takes over
//! when Workers AI fails.
//!
//! The emulator answers `@cf/baai/bge-small-en-v1.5` with all-MiniLM-L6-v2 (a stand-in of
//! the same size and vocabulary, not BGE), and the fallback test loads the same MiniLM
//! files as the "local bge-small": both sides are the stand-in, so the test checks the
//! plumbing (and that vectors stay comparable), never BGE's own vectors.

use std::collections::HashMap;

use cloudflare_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use memory_cloudflare::CloudflareStorage;
use memory_cloudflare::config::{self, CloudflareConfig};
use memory_core::Memory;
use memory_embed::{DEFAULT_MODEL_ID, ModelLocation, TokenCounter};
use memory_storage::{MemoryStorage, SemanticQuery, StoreOutcome};

const MODEL: &str = "@cf/baai/bge-small-en-v1.5";

/// An emulator in its default configuration (Vectorize writes visible after its delay, as
/// on Cloudflare: the searches below find fresh memories through read-your-writes).
async fn emulator() -> EmulatorHandle {
    Emulator::start(EmulatorConfig::default())
        .await
        .expect("starting the emulator")
}

/// The config of a store on `emulator` over Workers AI (no retries), with `extra` variables.
fn config_with(emulator: &EmulatorHandle, extra: &[(&str, String)]) -> CloudflareConfig {
    let mut vars: HashMap<&str, String> = [
        (config::TOKEN_ENV, emulator.config().tokens[0].clone()),
        (
            config::ACCOUNT_ENV,
            emulator.config().account_ids[0].clone(),
        ),
        (config::VECTORIZE_INDEX_ENV, "memories".to_owned()),
        (
            config::D1_DATABASE_ENV,
            "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d".to_owned(),
        ),
        (config::EMBEDDING_MODEL_ENV, MODEL.to_owned()),
        (config::API_BASE_URL_ENV, emulator.base_url()),
        (config::MAX_RETRIES_ENV, "0".to_owned()),
    ]
    .into_iter()
    .collect();
    vars.extend(extra.iter().cloned());
    CloudflareConfig::from_lookup(|k| vars.get(k).cloned()).expect("the config")
}

/// A store on `emulator` over Workers AI with `extra` variables, initialized.
async fn store(emulator: &EmulatorHandle, extra: &[(&str, String)]) -> CloudflareStorage {
    let store = CloudflareStorage::connect(&config_with(emulator, extra)).expect("connecting");
    store.initialize().await.expect("initializing");
    store
}

fn minilm_dir() -> std::path::PathBuf {
    ModelLocation::resolve(DEFAULT_MODEL_ID)
        .unwrap_or_else(|e| panic!("run `cargo xtask fetch-model`: {e}"))
        .dir
}

async fn top_hit(store: &CloudflareStorage, query: &str) -> String {
    let hits = store
        .search(&SemanticQuery::new(query, 1))
        .await
        .expect("searching");
    assert_eq!(hits.len(), 1, "no hit for {query:?}");
    hits[0].memory.content().to_owned()
}

/// Issue 14 point 4: a 600-token CJK note used to be cut at 2,000 characters (600 tokens),
/// which Workers AI's BGE models (and the emulator) refuse; it is cut to 512 tokens now.
/// Passes with and without `local-embedding` (token count or the character budget).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_600_token_cjk_text_is_embedded_without_a_400() {
    let emulator = emulator().await;
    // Workers AI only: the note must go through the emulator's Workers AI.
    let store = store(
        &emulator,
        &[(config::EMBEDDING_FALLBACK_ENV, "off".to_owned())],
    )
    .await;
    let sentence = "长期记忆服务把笔记存进数据库，并用向量搜索找回相关的内容。";
    let note = sentence.repeat(21);
    let counter = TokenCounter::from_dir(&minilm_dir()).unwrap();
    let tokens = counter.count(&note).unwrap();
    assert!((600..700).contains(&tokens), "{tokens} tokens");
    assert!(
        note.chars().count() < 2_000,
        "the old cut would not have cut it"
    );

    // Initializing may meet 400s of its own (e.g. a metadata index that exists already).
    let refused_before = refused(&emulator);
    store
        .store(Memory::new("Lunch on Friday is pizza with the ops team.").unwrap())
        .await
        .unwrap();
    let outcome = store.store(Memory::new(note.clone()).unwrap()).await;
    assert!(
        matches!(outcome, Ok(StoreOutcome::Stored)),
        "storing a {tokens}-token note: {outcome:?}"
    );
    assert_eq!(top_hit(&store, "向量搜索找回笔记").await, note);
    assert_eq!(refused(&emulator), refused_before, "no request was refused");
}

/// The 400 answers the emulator gave so far.
fn refused(emulator: &EmulatorHandle) -> u64 {
    let snapshot = emulator.counters().snapshot();
    snapshot.statuses.get(&400).copied().unwrap_or(0)
}

/// Issue 14 point 5: Workers AI fails (503 on every call), the local equivalent embeds,
/// store and search keep working, and the store's statistics (what `mcp-memory stats` and
/// `health` print) count the fallbacks by reason.
#[cfg(feature = "local-embedding")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_takes_over_when_workers_ai_fails_and_health_says_so() {
    use cloudflare_emulator::FaultRule;
    use memory_cloudflare::embedder::REPORT_KEY;

    let emulator = emulator().await;
    let store = store(
        &emulator,
        &[
            (config::EMBEDDING_FALLBACK_ENV, "local".to_owned()),
            (
                config::EMBEDDING_FALLBACK_DIR_ENV,
                minilm_dir().display().to_string(),
            ),
        ],
    )
    .await;
    // Stored through Workers AI while it works ...
    let runbook = "The deployment runbook lives in the ops wiki.";
    store.store(Memory::new(runbook).unwrap()).await.unwrap();
    let stats = store.get_stats().await.unwrap();
    assert_eq!(stats.extra[REPORT_KEY]["mode"], "local");
    assert_eq!(stats.extra[REPORT_KEY]["texts"], 0);

    // ... then Workers AI fails on every call.
    emulator
        .faults()
        .add(FaultRule::error("/ai/run/", 503, 1.0))
        .unwrap();
    let lunch = "Lunch on Friday is pizza with the ops team.";
    let budget = "The quarterly budget review is on Tuesday at ten.";
    for text in [lunch, budget] {
        let outcome = store.store(Memory::new(text).unwrap()).await.unwrap();
        assert!(matches!(outcome, StoreOutcome::Stored), "{outcome:?}");
    }
    // Local query vectors find both the local and the Workers AI (stand-in) vectors.
    assert_eq!(
        top_hit(&store, "where is the runbook for deploying?").await,
        runbook
    );
    assert_eq!(top_hit(&store, "what is for lunch on Friday?").await, lunch);

    let stats = store.get_stats().await.unwrap();
    let report = &stats.extra[REPORT_KEY];
    assert_eq!(report["mode"], "local", "{report}");
    // Two notes and two queries, each one text; Workers AI answered 503 (or, once the
    // client's breaker opened after the failures, was not called at all).
    assert_eq!(report["texts"], 4, "{report}");
    let by_reason = &report["texts_by_reason"];
    let server = by_reason["server_error"].as_u64().unwrap();
    let breaker = by_reason["breaker_open"].as_u64().unwrap();
    assert!(server >= 1 && server + breaker == 4, "{report}");
    assert_eq!(report["local_failures"], 0, "{report}");
    let last = report["last_reason"].as_str().unwrap();
    assert!(["server_error", "breaker_open"].contains(&last), "{report}");
}

/// `mcp-memory health --compare-embeddings`'s measure: with the MiniLM stand-in on both
/// sides every probe's cosine is about 1.
#[cfg(feature = "local-embedding")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_embeddings_gives_a_cosine_per_probe() {
    use memory_cloudflare::embedder::{PROBES, compare_embeddings};

    let emulator = emulator().await;
    let config = config_with(
        &emulator,
        &[(
            config::EMBEDDING_FALLBACK_DIR_ENV,
            minilm_dir().display().to_string(),
        )],
    );
    let comparison = compare_embeddings(&config).await.unwrap();
    assert_eq!(comparison.model, MODEL);
    assert_eq!(comparison.local_model, "BAAI/bge-small-en-v1.5");
    assert_eq!(comparison.probes.len(), PROBES.len());
    assert!(comparison.min_cosine() > 0.999, "{comparison:?}");
}

/// Workers AI's spent daily allocation (429, code 3036) falls back too, reported as
/// `quota_exhausted` rather than as a passing rate limit.
#[cfg(feature = "local-embedding")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_daily_quota_falls_back_as_quota_exhausted() {
    use cloudflare_emulator::FaultRule;
    use memory_cloudflare::embedder::REPORT_KEY;

    let emulator = emulator().await;
    let store = store(
        &emulator,
        &[(
            config::EMBEDDING_FALLBACK_DIR_ENV,
            minilm_dir().display().to_string(),
        )],
    )
    .await;
    emulator
        .faults()
        .add(FaultRule::quota_exhausted("/ai/run/", 1.0))
        .unwrap();
    let lunch = "Lunch on Friday is pizza with the ops team.";
    store.store(Memory::new(lunch).unwrap()).await.unwrap();
    assert_eq!(top_hit(&store, "what is for lunch?").await, lunch);
    let stats = store.get_stats().await.unwrap();
    let report = &stats.extra[REPORT_KEY];
    // Unset CLOUDFLARE_EMBEDDING_FALLBACK with the weights found: on.
    assert_eq!(report["mode"], "local", "{report}");
    assert_eq!(report["texts"], 2, "{report}");
    assert_eq!(report["texts_by_reason"]["quota_exhausted"], 2, "{report}");
    assert_eq!(report["texts_by_reason"]["rate_limited"], 0, "{report}");
}
