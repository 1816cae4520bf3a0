//! Every D1 operation against a Prism mock of Cloudflare's OpenAPI spec: the requests
//! must conform to the spec, and the spec's example responses must decode.

use cloudflare_d1::{
    BatchRequest, D1Api, D1Client, D1Error, Param, QueryRequest, RawBatchRequest, RawRequest,
    Statement,
};
use cloudflare_testkit::{PRISM_ACCOUNT_ID, Prism};
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
    let d1 = D1Client::from_service(client.service("d1"), "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx");
    assert_eq!(d1.service().account_id(), PRISM_ACCOUNT_ID);

    // Every kind of parameter, so each travels as a spec-conforming string.
    let all_kinds = Statement::new(
        "INSERT OR REPLACE INTO t (id, n, x, flag, data) VALUES (?, ?, ?, ?, unhex(?))",
    )
    .bind("id-1")
    .bind(-42)
    .bind(0.5)
    .bind(true)
    .bind(Param::blob(vec![0u8, 1, 255]))
    .idempotent(true);
    let select = Statement::new("SELECT * FROM t WHERE id = ?").bind("id-1");
    let bare = Statement::new("SELECT 1");

    // query
    let result = d1.query(all_kinds.clone()).await.unwrap();
    assert!(result.success);
    let _ = result.meta.changes;
    let result = d1.query(bare.clone()).await.unwrap();
    assert!(result.success);

    // batch
    let results = d1.batch(vec![all_kinds.clone(), select.clone()]).await;
    // Prism answers with the spec's example (a one-element list) whatever was sent, so a
    // two-statement batch decodes but fails the per-statement count check; the request
    // itself is still checked against the spec below.
    assert!(
        matches!(
            results,
            Err(D1Error::ResultCount {
                expected: 2,
                actual: 1
            })
        ),
        "{results:?}"
    );
    let results = d1.batch(vec![all_kinds.clone()]).await.unwrap();
    assert_eq!(results.len(), 1);

    // raw and raw_batch: single-element batches, so the example's one result matches.
    let raw = d1.raw(select.clone()).await.unwrap();
    assert!(raw.success);
    let raws = d1.raw_batch(vec![select.clone()]).await.unwrap();
    assert_eq!(raws.len(), 1);

    // The same operations as tower services and through the trait.
    let r = d1
        .clone()
        .oneshot(QueryRequest::new(select.clone()))
        .await
        .unwrap();
    assert!(r.success);
    let rs = d1
        .clone()
        .oneshot(BatchRequest::new([bare.clone()]))
        .await
        .unwrap();
    assert_eq!(rs.len(), 1);
    let r = d1
        .clone()
        .oneshot(RawRequest::new(bare.clone()))
        .await
        .unwrap();
    assert!(r.success);
    let rs = d1
        .clone()
        .oneshot(RawBatchRequest::new([bare.clone()]))
        .await
        .unwrap();
    assert_eq!(rs.len(), 1);
    let api: &dyn D1Api = &d1;
    api.query(bare.clone()).await.unwrap();
    api.batch(vec![bare.clone()]).await.unwrap();
    api.raw(bare.clone()).await.unwrap();
    api.raw_batch(vec![bare]).await.unwrap();

    prism.assert_no_violations();
}
