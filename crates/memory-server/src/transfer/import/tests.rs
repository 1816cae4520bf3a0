//! Unit tests of `import`: parsing lines, formats and carried vectors.

use super::*;

fn minilm() -> StoreModel {
    StoreModel {
        rehash: false,
        id: "sentence-transformers/all-MiniLM-L6-v2".into(),
        dims: 3,
    }
}

fn err(line: &str) -> String {
    match parse(Raw::Text(line.as_bytes().to_vec()), &minilm()) {
        Ok(_) => panic!("{line} should be refused"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_items_name_the_field() {
    assert!(err("{\"content\": 1").starts_with("invalid JSON"));
    assert_eq!(err("[1]"), "expected a JSON object, found an array");
    assert_eq!(err("{\"tags\": []}"), "field `content`: missing");
    assert_eq!(
        err("{\"content\": \"x\", \"tags\": [\"a\", 2]}"),
        "field `tags`: element 1 is a number, expected a string"
    );
    assert!(
        err("{\"content\": \"x\", \"created_at\": \"yesterday\"}")
            .starts_with("field `created_at`")
    );
    assert!(err("{\"content\": \"x\", \"metadata\": [1]}").starts_with("field `metadata`"));
    assert_eq!(
        err(
            r#"{"content": "x", "embedding": [1, 2], "embedding_model": "sentence-transformers/all-MiniLM-L6-v2"}"#
        ),
        "field `embedding`: has 2 values but sentence-transformers/all-MiniLM-L6-v2 vectors have 3 dimensions"
    );
}

#[test]
fn vectors_of_another_model_are_dropped_and_of_the_same_kept() {
    let (m, fate) = parse(
        Raw::Text(
            br#"{"content": "x", "embedding": [1, 2], "embedding_model": "acme/other"}"#.to_vec(),
        ),
        &minilm(),
    )
    .map_err(|e| e.to_string())
    .unwrap();
    assert_eq!(fate, Vector::Dropped("acme/other".into()));
    assert!(m.embedding.is_none());
    let (m, fate) = parse(
        Raw::Text(
            br#"{"content": "x", "embedding": [1, 2, 3], "embedding_model": "all-MiniLM-L6-v2"}"#
                .to_vec(),
        ),
        &minilm(),
    )
    .map_err(|e| e.to_string())
    .unwrap();
    assert_eq!(fate, Vector::Reused);
    assert_eq!(m.embedding, Some(vec![1.0, 2.0, 3.0]));
}

#[test]
fn the_format_is_told_from_the_first_line() {
    assert_eq!(detect(b"{\"content\": \"x\"}\n"), Format::Jsonl);
    assert_eq!(detect(b"{\n"), Format::Document);
    assert_eq!(
        detect(b"{\"export_metadata\": {}, \"memories\": []}"),
        Format::Document
    );
    assert_eq!(detect(b"not json"), Format::Jsonl);
}
