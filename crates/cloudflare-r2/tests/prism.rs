//! Every R2 operation against Prism's mock of Cloudflare's OpenAPI spec: the requests must
//! conform, the spec's example answers must decode.
//!
//! Keys here have no `/`: the spec sends a key's slashes literally (`allowReserved`), and
//! Prism cannot route a multi-segment `{object_key}`; the unit tests cover slashed keys.

use cloudflare_r2::{
    DeleteObject, DeletePrefix, GetObject, JobStatus, Jurisdiction, ListObjects, PutObject, R2Api,
    R2Client, R2Error, StorageClass,
};
use cloudflare_testkit::Prism;

cloudflare_testkit::prism_tests! {
    #[tokio::test]
    async fn every_operation_conforms_to_the_spec() {
        every_operation(Prism::start().await).await;
    }
}

/// Calls every operation through `prism`'s mock and checks the answers and the requests.
async fn every_operation(prism: Prism) {
    let client = prism.client();
    let r2 = R2Client::new(&client, "example-bucket").unwrap();

    let put = r2
        .put_object(
            PutObject::new("notes 2024 q1.md", "# Q1\n").storage_class(StorageClass::Standard),
        )
        .await
        .unwrap();
    assert!(!put.key.is_empty());
    assert!(put.etag.is_some() && put.size.is_some(), "{put:?}");

    let object = r2
        .get_object(GetObject::new("notes 2024 q1.md"))
        .await
        .unwrap();
    assert_eq!(object.key, "notes 2024 q1.md");

    let deleted = r2
        .delete_object(DeleteObject::new("a?b#c.md"))
        .await
        .unwrap();
    assert!(!deleted.key.is_empty());

    let page = r2
        .list_objects(
            ListObjects::new()
                .prefix("notes/")
                .delimiter("/")
                .cursor("eyJrIjoiYSJ9")
                .per_page(1000)
                .start_after("notes/a"),
        )
        .await
        .unwrap();
    assert!(!page.objects.is_empty());
    assert!(!page.objects[0].key.is_empty());
    assert!(page.cursor.is_some(), "{page:?}");
    let plain = r2.list_objects(ListObjects::new()).await.unwrap();
    assert!(!plain.objects.is_empty());

    let job = r2.delete_prefix(DeletePrefix::new("notes/")).await.unwrap();
    assert!(!job.id.is_empty());
    assert_ne!(job.status, JobStatus::Unknown);

    // The jurisdiction header and the trait object path conform too.
    let eu: Box<dyn R2Api> = Box::new(r2.clone().with_jurisdiction(Jurisdiction::Eu));
    eu.list_objects(ListObjects::new().per_page(1))
        .await
        .unwrap();

    // Prism always hands back the same cursor, so paging stops with CursorStuck.
    let err = r2.list_all("notes/").await.unwrap_err();
    assert!(matches!(err, R2Error::CursorStuck { .. }), "{err:?}");

    prism.assert_no_violations();
}
