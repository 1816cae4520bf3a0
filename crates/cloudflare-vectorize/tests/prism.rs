//! Every Vectorize operation against a Prism mock of Cloudflare's OpenAPI spec: the
//! requests must conform to the spec and the spec's example responses must decode.

use cloudflare_testkit::Prism;
use cloudflare_vectorize::{
    CreateIndex, Filter, ListVectors, MetadataIndexType, Metric, Preset, QueryVectors,
    ReturnMetadata, Vector, VectorizeClient,
};
use serde_json::json;

cloudflare_testkit::prism_tests! {
    #[tokio::test]
    async fn every_operation_conforms_to_the_spec() {
        every_operation(Prism::start().await).await;
    }
}

/// Calls every operation through `prism`'s mock and checks the answers and the requests.
async fn every_operation(prism: Prism) {
    let client = prism.client();
    let vectorize = VectorizeClient::new(&client);

    let created = vectorize
        .create_index(
            &CreateIndex::new("example-index", 768, Metric::Cosine).description("memories"),
        )
        .await
        .unwrap();
    assert!(created.name.is_some(), "{created:?}");
    vectorize
        .create_index(&CreateIndex::with_preset(
            "example-index",
            Preset::BgeSmallEnV15,
        ))
        .await
        .unwrap();
    let described = vectorize.get_index("example-index").await.unwrap();
    assert!(described.config.is_some(), "{described:?}");
    let listed = vectorize.list_indexes().await.unwrap();
    assert!(!listed.is_empty());

    let index = vectorize.index("example-index").with_dimensions(3);
    let info = index.info().await.unwrap();
    assert!(info.dimensions.is_some(), "{info:?}");

    let mut metadata = serde_json::Map::new();
    metadata.insert("kind".into(), json!("note"));
    let vectors = vec![
        Vector::new("a", vec![0.1, 0.2, 0.3])
            .with_metadata(metadata)
            .with_namespace("ns"),
        Vector::new("b", vec![0.4, 0.5, 0.6]),
    ];
    let inserted = index.insert(&vectors).await.unwrap();
    assert_eq!(inserted.mutation_ids.len(), 1);
    assert!(!inserted.mutation_ids[0].is_empty());
    let upserted = index.upsert(&vectors).await.unwrap();
    assert!(upserted.last_mutation_id().is_some());

    let query = QueryVectors::new(vec![0.5, 0.5, 0.5])
        .top_k(5)
        .return_values(true)
        .return_metadata(ReturnMetadata::All)
        .filter(Filter::new().eq("kind", "note").ne("has_viewed", true))
        .namespace("ns");
    let result = index.query(&query).await.unwrap();
    assert!(
        result.matches.iter().all(|m| !m.id.is_empty()),
        "{result:?}"
    );

    let got = index.get_by_ids(&["a".into(), "b".into()]).await.unwrap();
    assert!(got.iter().all(|v| !v.id.is_empty()), "{got:?}");
    let deleted = index.delete_by_ids(&["a".into()]).await.unwrap();
    assert!(!deleted.mutation_id.is_empty());

    let page = index
        .list_vectors(&ListVectors {
            count: Some(50),
            cursor: Some("suUTaDY5PFUiRweVccnzyt9n75suNPbXHPshvCzue5mHjtj7Letjvzlza9eGj099".into()),
        })
        .await
        .unwrap();
    assert!(page.vectors.iter().all(|v| !v.id.is_empty()), "{page:?}");
    index.list_vectors(&ListVectors::default()).await.unwrap();

    let created = index
        .create_metadata_index("kind", MetadataIndexType::String)
        .await
        .unwrap();
    assert!(!created.mutation_id.is_empty());
    let indexes = index.list_metadata_indexes().await.unwrap();
    assert!(!indexes.is_empty());
    let dropped = index.delete_metadata_index("kind").await.unwrap();
    assert!(!dropped.mutation_id.is_empty());

    vectorize.delete_index("example-index").await.unwrap();

    // Cloudflare's spec declares get_by_ids' `result` as `type: object` next to a `$ref`
    // to an array schema, so Prism flags its own (array) example response. That is a spec
    // inconsistency on the response side; every request must still conform.
    let unexpected: Vec<String> = prism
        .violations()
        .into_iter()
        .filter(|v| !is_get_by_ids_spec_quirk(v))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{} request(s) broke Cloudflare's OpenAPI spec:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}

/// The known response-side violation of get_by_ids (see above) and nothing else.
fn is_get_by_ids_spec_quirk(violation: &str) -> bool {
    violation.starts_with("vectorize.get_by_ids ")
        && violation.contains(r#""location":["response","body","result"]"#)
        && violation.contains("must be object,null")
        && !violation.contains(r#""location":["request""#)
}
