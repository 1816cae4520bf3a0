//! `evaluate` end to end on the embedded store, with a scripted embedder (mockall) whose
//! vectors count three keywords, so the ranking each query gets is known in advance.

use std::sync::Arc;

use memory_embed::MockEmbedder;
use memory_eval::{Dataset, evaluate};
use memory_sqlite::{SqliteConfig, SqliteStorage};
use memory_storage::{MemoryFilter, MemoryStorage};

/// A unit vector counting `sqlite`, `model` and `billing` (a fourth axis for none).
fn vector(text: &str) -> Vec<f32> {
    let t = text.to_lowercase();
    let mut v: Vec<f32> = ["sqlite", "model", "billing"]
        .iter()
        .map(|k| t.matches(k).count() as f32)
        .collect();
    v.push(if v.iter().all(|&x| x == 0.0) {
        1.0
    } else {
        0.0
    });
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

/// An empty embedded store whose embedder is the scripted [`vector`].
async fn store() -> (tempfile::TempDir, SqliteStorage) {
    let mut embedder = MockEmbedder::new();
    embedder
        .expect_model_id()
        .return_const("scripted".to_owned());
    embedder.expect_dimensions().return_const(4usize);
    embedder
        .expect_embed()
        .returning(|texts| Ok(texts.iter().map(|t| vector(t)).collect()));
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteConfig::new(dir.path().join("eval.db"))
        .open(Arc::new(embedder))
        .await
        .unwrap();
    (dir, store)
}

const DATA: &str = r#"{
  "memories": [
    {"id": "a", "content": "We chose SQLite for storage; sqlite is serverless.", "tags": ["bench:a"]},
    {"id": "b", "content": "The embedding model is MiniLM.", "tags": ["bench:b"], "memory_type": "decision",
     "created_at_iso": "2025-06-12T09:15:00Z"},
    {"id": "c", "content": "Release notes go out on Fridays.", "tags": ["bench:c"]}
  ],
  "queries": [
    {"id": "q1", "category": "exact", "question": "Which model embeds?", "expected_tags": ["bench:b"]},
    {"id": "q2", "category": "exact", "question": "sqlite or model?", "expected_tags": ["bench:a", "bench:b"]},
    {"id": "n1", "category": "negative", "question": "How does billing work?", "expected_tags": []}
  ]
}"#;

#[tokio::test]
async fn every_query_is_scored_against_its_expected_memories() {
    let (_dir, store) = store().await;
    let data = Dataset::parse(DATA).unwrap();
    let report = evaluate(&store, &data).await.unwrap();

    assert_eq!((report.memories, report.queries), (3, 3));
    // q1 finds b first; q2 finds a and b (tied) in its top 2, both expected: every
    // answerable query scores 1 on recall and MRR.
    let overall = report.overall.unwrap();
    assert_eq!((overall.recall_5, overall.mrr), (1.0, 1.0));
    let exact = &report.categories[0];
    assert_eq!(
        (exact.category.as_str(), exact.queries, exact.negatives),
        ("exact", 2, 0)
    );
    // The negative query's best result shares no keyword: similarity 0, below the floor.
    let negative = &report.categories[1];
    assert_eq!((negative.negatives, negative.negative_false_alarms), (1, 0));
    assert!(negative.scores.is_none());
    let table = report.to_markdown();
    assert!(table.contains("| **overall** | 3 | 100.0 |"), "{table}");
    assert!(table.contains("| negative | 1 | — |"), "{table}");
}

#[tokio::test]
async fn a_memory_that_is_not_valid_here_is_named() {
    let data = Dataset::parse(
        r#"{"memories": [{"id": "bad", "content": "x", "created_at_iso": "not a time"}],
            "queries": [{"id": "q", "category": "c", "question": "?"}]}"#,
    )
    .unwrap();
    let (_dir, store) = store().await;
    let err = evaluate(&store, &data).await.unwrap_err();
    assert!(err.to_string().contains("\"bad\""), "{err}");
    // A query whose expected tag could never match is refused before anything is stored.
    let too_long = "t".repeat(1_000);
    let data = Dataset::parse(&format!(
        r#"{{"memories": [{{"id": "ok", "content": "x"}}],
            "queries": [{{"id": "q-bad", "category": "c", "question": "?",
                         "expected_tags": ["{too_long}"]}}]}}"#
    ))
    .unwrap();
    let err = evaluate(&store, &data).await.unwrap_err();
    assert!(err.to_string().contains("\"q-bad\""), "{err}");
    assert_eq!(store.count(&MemoryFilter::all()).await.unwrap(), 0);
}
