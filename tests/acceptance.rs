//! The foundation's acceptance points, end to end on the embedded default with the real
//! all-MiniLM-L6-v2 model (`cargo xtask fetch-model` puts it in the per-user cache).

use std::sync::{Arc, OnceLock};

use memory_core::{ContentHash, Memory, Metadata, Tags, ValidationError};
use memory_embed::{BertEmbedder, DEFAULT_MODEL_ID, EmbedError, Embedder};
use memory_sqlite::{SqliteConfig, SqliteStorage};
use memory_storage::{MemoryStorage, MemoryUpdate, StorageError};
use sha2::{Digest, Sha256};

fn model() -> Arc<BertEmbedder> {
    static MODEL: OnceLock<Arc<BertEmbedder>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            Arc::new(BertEmbedder::open(DEFAULT_MODEL_ID).unwrap_or_else(|e| {
                panic!("the real test model is needed: {e} (run `cargo xtask fetch-model`)")
            }))
        })
        .clone()
}

async fn store_in(dir: &tempfile::TempDir) -> SqliteStorage {
    let embedder: Arc<dyn Embedder> = model();
    SqliteConfig::new(dir.path().join("memories.db"))
        .open(embedder)
        .await
        .expect("open the store")
}

#[tokio::test]
async fn kitten_outranks_revenue_for_cat_on_a_mat() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir).await;
    store
        .store(Memory::new("Quarterly revenue grew by twelve percent.").unwrap())
        .await
        .unwrap();
    store
        .store(Memory::new("A kitten is resting on a rug.").unwrap())
        .await
        .unwrap();

    let hits = store.retrieve("cat on a mat", 2).await.unwrap();

    let order: Vec<&str> = hits.iter().map(|h| h.memory.content()).collect();
    assert_eq!(
        order,
        [
            "A kitten is resting on a rug.",
            "Quarterly revenue grew by twelve percent."
        ],
        "scores: {:?}",
        hits.iter().map(|h| h.relevance_score).collect::<Vec<_>>()
    );
    assert!(hits[0].relevance_score > hits[1].relevance_score + 0.2);
}

#[test]
fn content_hash_matches_upstream_for_padded_mixed_case_text() {
    let expected = hex_sha256("hello world");
    assert_eq!(ContentHash::of("  Hello World ").as_str(), expected);
}

fn hex_sha256(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Stores one memory, runs `bad`, and checks the error names `field` and the store is unchanged.
async fn refused_without_change<F, Fut>(field: &str, bad: F)
where
    F: FnOnce(SqliteStorage, Memory) -> Fut,
    Fut: std::future::Future<Output = (SqliteStorage, Result<(), String>)>,
{
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir).await;
    let original = Memory::new("The deploy window is Tuesday 10:00 UTC.")
        .unwrap()
        .with_tags(Tags::parse("ops").unwrap())
        .with_metadata(Metadata::parse(r#"{"team":"infra"}"#).unwrap());
    store.store(original.clone()).await.unwrap();

    let (store, result) = bad(store, original.clone()).await;

    let message = result.expect_err("bad input must be refused");
    assert!(
        message.contains(field),
        "error {message:?} must name {field:?}"
    );
    let after = store
        .get_by_hash(original.content_hash())
        .await
        .unwrap()
        .expect("the stored memory survives");
    assert_eq!(after.content(), original.content());
    assert_eq!(after.tags, original.tags);
    assert_eq!(after.metadata, original.metadata);
    assert_eq!(after.updated_at, original.updated_at);
    assert_eq!(store.count(&Default::default()).await.unwrap(), 1);
}

#[tokio::test]
async fn empty_content_is_refused_naming_content() {
    // Built without the constructor's check, so the store itself must refuse it.
    for text in ["", "   \n\t ", "\u{200b}\u{feff}"] {
        refused_without_change("content", |store, _| async move {
            let blank = Memory::from_parts(
                text.to_owned(),
                ContentHash::of(text),
                Tags::empty(),
                None,
                Metadata::new(),
                None,
                memory_core::Timestamp::now(),
                memory_core::Timestamp::now(),
            );
            let r = store
                .store(blank)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string());
            (store, r)
        })
        .await;
    }
}

/// An update whose metadata carries `tags` (which become the memory's tags) as the store
/// receives it from a client: the store must refuse it and change nothing.
async fn update_with_metadata_tags(
    store: &SqliteStorage,
    original: &Memory,
    tags: &str,
) -> Result<(), String> {
    store
        .update_memory_metadata(
            original.content_hash(),
            MemoryUpdate {
                metadata: Some(Metadata::parse(tags).expect("valid JSON")),
                ..Default::default()
            },
            true,
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn tag_over_100_chars_is_refused_naming_tags() {
    refused_without_change("tags", |store, original| async move {
        let long = format!(r#"{{"tags": ["{}"]}}"#, "x".repeat(101));
        let r = update_with_metadata_tags(&store, &original, &long).await;
        (store, r)
    })
    .await;
}

#[tokio::test]
async fn malformed_tag_json_is_refused_naming_tags() {
    refused_without_change("tags", |store, original| async move {
        let r = update_with_metadata_tags(&store, &original, r#"{"tags": "[\"ops\", \"release"}"#)
            .await;
        (store, r)
    })
    .await;
}

/// JSON has no NaN: metadata holding one cannot even be built, so no store ever sees it.
#[test]
fn nan_in_metadata_cannot_be_built() {
    let err = Metadata::parse(r#"{"score": NaN}"#).unwrap_err();
    assert!(err.to_string().contains("metadata"), "{err}");
    assert!(matches!(
        Metadata::new().insert_f64("score", f64::NAN),
        Err(ValidationError::InvalidMetadata { .. })
    ));
}

#[tokio::test]
async fn unknown_hash_is_not_found_naming_the_hash() {
    let unknown = ContentHash::of("never stored");
    let expected = unknown.to_string();
    refused_without_change(&expected, |store, _| async move {
        let delete = store.delete(&unknown).await;
        assert!(
            matches!(delete, Err(StorageError::NotFound { .. })),
            "{delete:?}"
        );
        let r = store
            .update_memory_metadata(&unknown, MemoryUpdate::default(), true)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        (store, r)
    })
    .await;
}

#[test]
fn model_directory_without_weights_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = model().dir().to_path_buf();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(model_dir.join(f), dir.path().join(f)).unwrap();
    }
    let err = BertEmbedder::load(dir.path(), DEFAULT_MODEL_ID).unwrap_err();
    assert!(matches!(err, EmbedError::MissingFile { .. }), "{err:?}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}
