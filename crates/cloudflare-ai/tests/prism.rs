//! Every operation against a Prism mock of Cloudflare's OpenAPI spec: the requests must
//! conform, and the spec's example answers must decode and pass the shape check.
//!
//! Prism answers with the spec's example, which is always one vector (`shape: [1, d]`),
//! so every call here sends exactly one text.

use cloudflare_ai::{
    EmbedBatchRequest, EmbedRequest, EmbeddingModel, Pooling, WorkersAiApi, WorkersAiClient,
};
use cloudflare_testkit::Prism;
use tower::ServiceExt;

cloudflare_testkit::prism_tests! {
    #[tokio::test]
    async fn every_operation_conforms_to_the_spec() {
        every_operation(Prism::start().await).await;
    }
}

/// Calls every operation through `prism`'s mock and checks the answers and the requests.
async fn every_operation(prism: Prism) {
    let client = prism.client();

    for model in EmbeddingModel::KNOWN {
        let dims = model.dimensions();
        let ai = WorkersAiClient::new(&client).with_model(model.clone());

        // One call, inherent method.
        let out = ai.embed_batch(&["a memory worth keeping"]).await.unwrap();
        assert_eq!(out.vectors.len(), 1, "{model}");
        assert_eq!(out.vectors[0].len(), dims, "{model}");
        assert_eq!(out.pooling, Some(Pooling::Mean), "{model}");

        // The batching path, and the single-text helper.
        let out = ai.embed(&["another one"]).await.unwrap();
        assert_eq!(out.vectors.len(), 1, "{model}");
        assert_eq!(ai.embed_one("third").await.unwrap().len(), dims, "{model}");

        // Both tower services, with pooling sent explicitly.
        let cls = ai.clone().with_pooling(Pooling::Cls);
        let out = cls
            .clone()
            .oneshot(EmbedBatchRequest::new(["with cls pooling"]))
            .await
            .unwrap();
        assert_eq!(out.vectors[0].len(), dims, "{model}");
        let out = cls
            .clone()
            .oneshot(EmbedRequest::new(["through the batching service"]))
            .await
            .unwrap();
        assert_eq!(out.vectors[0].len(), dims, "{model}");

        // The trait object the storage backend uses.
        let api: &dyn WorkersAiApi = &ai;
        assert_eq!(api.model(), &model);
        let out = api.embed(&["via the trait".to_owned()]).await.unwrap();
        assert_eq!(out.vectors[0].len(), dims, "{model}");
        let out = api
            .embed_batch(&["via the trait, one call".to_owned()])
            .await
            .unwrap();
        assert_eq!(out.vectors[0].len(), dims, "{model}");
    }

    // Empty input sends nothing; validation refuses before sending.
    let ai = WorkersAiClient::new(&client);
    let none: [&str; 0] = [];
    assert!(ai.embed(&none).await.unwrap().is_empty());
    assert!(ai.embed_batch(&[" "]).await.is_err());

    // 7 calls per model, all answered 2xx; the empty and blank inputs sent nothing.
    let stats = client
        .accounting()
        .get(cloudflare_http::Operation::new("ai", "embed"));
    assert_eq!(stats.calls, 28, "{stats:?}");
    assert_eq!(stats.failures, 0, "{stats:?}");
    prism.assert_no_violations();
}
