//! The hybrid backend's sync on the emulator: devices converge (fields, vectors,
//! deletions, conflicts), nothing is embedded twice, Cloudflare's tables follow, the bulk
//! budgets hold, and a device works offline and catches up.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use cloudflare_emulator::FaultRule;
use common::{Deployment, sync_until_quiet};
use memory_core::{ContentHash, Memory, Metadata, Tags};
use memory_hybrid::{HybridStorage, Skipped, SyncOptions};
use memory_storage::{ListQuery, MemoryFilter, MemoryStorage, MemoryUpdate};

fn memory(text: &str, tags: &[&str]) -> Memory {
    Memory::new(text)
        .unwrap()
        .with_tags(Tags::parse(tags.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>()).unwrap())
}

/// Every live memory of `store` by hash, as `list` returns it.
async fn live(store: &dyn MemoryStorage) -> BTreeMap<ContentHash, Memory> {
    store
        .list(&ListQuery::all(MemoryFilter::all()))
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.content_hash().clone(), m))
        .collect()
}

fn tags(t: &[&str]) -> MemoryUpdate {
    MemoryUpdate {
        tags: Some(Tags::parse(t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()),
        ..MemoryUpdate::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_converge_with_vectors_deletions_and_a_conflict_without_embedding_twice() {
    let cf = Deployment::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, a_model) = cf.device(dir.path(), "laptop").await;
    let (b, b_model) = cf.device(dir.path(), "desktop").await;

    let boiler = memory("The boiler service is booked for March.", &["home"]);
    let vault = memory("Passwords live in the family vault, not in notes.", &[]);
    let lunch = memory("Lunch with Priya moved to Thursday.", &["work"]);
    for m in [&boiler, &vault, &lunch] {
        a.store(m.clone()).await.unwrap();
    }
    let mut meta = Metadata::new();
    meta.insert("source", serde_json::json!("phone"));
    a.update_memory_metadata(
        vault.content_hash(),
        MemoryUpdate {
            metadata: Some(meta),
            ..tags(&["security"])
        },
        true,
    )
    .await
    .unwrap();
    a.delete(lunch.content_hash()).await.unwrap();
    let train = memory(
        "The train to Leeds leaves at 07:12 from platform 4.",
        &["travel"],
    );
    b.store(train.clone()).await.unwrap();

    sync_until_quiet(&[&a, &b], 6).await;

    let on_a = live(&a).await;
    let on_b = live(&b).await;
    assert_eq!(on_a, on_b, "both devices hold the same live memories");
    assert_eq!(on_a.len(), 3, "{on_a:?}");
    assert!(
        !on_b.contains_key(lunch.content_hash()),
        "a delete reaches the other device"
    );
    assert_eq!(
        on_b[vault.content_hash()].metadata.get("source"),
        Some(&serde_json::json!("phone"))
    );
    let hashes: Vec<ContentHash> = on_a.keys().cloned().collect();
    assert_eq!(
        a.get_embeddings(&hashes).await.unwrap(),
        b.get_embeddings(&hashes).await.unwrap(),
        "vectors travel bit for bit"
    );
    assert_eq!(
        a_model.texts().len(),
        3,
        "A embedded its own three stores only"
    );
    assert_eq!(
        b_model.texts(),
        vec![train.content().to_owned()],
        "B embedded its own store only"
    );

    // Cloudflare's tables (what the Python service reads) follow, tombstones included.
    let remote = a.engine().remote().await.unwrap();
    remote.storage.settle().await.unwrap();
    let upstream = live(remote.storage.as_ref()).await;
    assert_eq!(
        upstream, on_a,
        "upstream's tables hold the same live memories"
    );

    // A conflict: both devices change the same memory's tags before syncing; the later
    // change (by the hybrid clock) wins on both, and so upstream.
    a.update_memory_metadata(boiler.content_hash(), tags(&["laptop-edit"]), true)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    b.update_memory_metadata(boiler.content_hash(), tags(&["desktop-edit"]), true)
        .await
        .unwrap();
    sync_until_quiet(&[&a, &b], 6).await;
    let a_tags = a.get_by_hash(boiler.content_hash()).await.unwrap().unwrap();
    let b_tags = b.get_by_hash(boiler.content_hash()).await.unwrap().unwrap();
    assert_eq!(a_tags, b_tags);
    assert_eq!(
        a_tags.tags.as_slice(),
        ["desktop-edit"],
        "the later edit wins"
    );
    let up = remote
        .storage
        .get_by_hash(boiler.content_hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(up.tags, a_tags.tags);

    // A delete on one device and a concurrent update on the other: the delete wins.
    b.delete(train.content_hash()).await.unwrap();
    a.update_memory_metadata(train.content_hash(), tags(&["late-edit"]), true)
        .await
        .unwrap();
    sync_until_quiet(&[&a, &b], 6).await;
    assert!(a.get_by_hash(train.content_hash()).await.unwrap().is_none());
    assert!(b.get_by_hash(train.content_hash()).await.unwrap().is_none());
    assert_eq!(a_model.texts().len(), 3);
    assert_eq!(b_model.texts().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_memories_push_in_at_most_250_requests_and_a_new_device_pulls_them_in_100_without_embedding()
 {
    const N: u64 = 10_000;
    let cf = Deployment::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, a_model) = cf.device(dir.path(), "first").await;
    let dims = common::minilm().dimensions();
    let batch: Vec<Memory> = (0..N)
        .map(|i| {
            memory(
                &format!(
                    "Memory number {i}: a note about project {} and its follow-up.",
                    i % 97
                ),
                &["bulk", if i % 2 == 0 { "even" } else { "odd" }],
            )
            .with_embedding(common::unit_vector(i, dims))
        })
        .collect();
    for r in a.store_batch(batch).await.unwrap() {
        r.unwrap();
    }
    assert!(
        a_model.texts().is_empty(),
        "carried vectors are not embedded"
    );

    cf.reset_counts();
    let first = a.engine().sync_once(true, &|_| {}).await.unwrap();
    let push_requests = cf.storage_requests();
    println!("initial push of {N}: {push_requests} requests ({first:?})");
    assert_eq!(first.pushed, N);
    assert!(
        push_requests <= 250,
        "initial push took {push_requests} requests"
    );
    assert_eq!(
        cf.requests("ai"),
        0,
        "the hybrid path never calls Workers AI"
    );

    let (b, b_model) = cf.device(dir.path(), "second").await;
    cf.reset_counts();
    let join = b.engine().sync_once(true, &|_| {}).await.unwrap();
    let pull_requests = cf.storage_requests();
    println!("initial pull of {N}: {pull_requests} requests ({join:?})");
    assert_eq!(join.pulled, N);
    assert!(
        pull_requests <= 100,
        "initial pull took {pull_requests} requests"
    );
    assert!(
        b_model.texts().is_empty(),
        "the new device embedded nothing"
    );
    assert_eq!(cf.requests("ai"), 0);
    assert_eq!(b.count(&MemoryFilter::all()).await.unwrap(), N);
    let sample: Vec<ContentHash> = live(&a).await.into_keys().step_by(997).collect();
    assert_eq!(
        a.get_embeddings(&sample).await.unwrap(),
        b.get_embeddings(&sample).await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_writes_wait_in_the_outbox_and_go_out_when_cloudflare_is_back() {
    let cf = Deployment::start().await;
    let dir = tempfile::tempdir().unwrap();
    let options = SyncOptions::default();
    let a = cf
        .device_with(dir.path(), "a", common::minilm(), options)
        .await;
    let (b, _) = cf.device(dir.path(), "b").await;

    let outage = cf
        .emulator
        .faults()
        .add(FaultRule::error("/", 503, 1.0))
        .unwrap();
    for i in 0..5 {
        a.store(memory(
            &format!("Written offline, number {i}."),
            &["offline"],
        ))
        .await
        .unwrap();
    }
    let failed = a.engine().sync_once(true, &|_| {}).await;
    assert!(failed.is_err(), "a round fails while Cloudflare is down");
    let status = a.engine().status().await.unwrap();
    assert_eq!(status.backlog, 5, "{status:?}");
    assert!(status.last_error.is_some());
    assert_eq!(
        a.count(&MemoryFilter::all()).await.unwrap(),
        5,
        "local reads go on"
    );

    cf.emulator.faults().remove(outage);
    sync_until_quiet(&[&a, &b], 6).await;
    assert_eq!(b.count(&MemoryFilter::all()).await.unwrap(), 5);
    let status = a.engine().status().await.unwrap();
    assert_eq!((status.backlog, status.last_error), (0, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_sync_does_nothing_until_resumed_and_one_database_runs_one_round_at_a_time() {
    let cf = Deployment::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = cf.device(dir.path(), "a").await;
    a.store(memory("Paused, then resumed.", &[])).await.unwrap();
    a.engine().set_paused(true).await.unwrap();
    let r = a.engine().sync_once(false, &|_| {}).await.unwrap();
    assert_eq!(r.skipped, Some(Skipped::Paused));
    a.engine().set_paused(false).await.unwrap();

    // A second engine on the same file (another process, say): rounds at the same time
    // never push one change twice.
    for i in 0..200 {
        a.store(memory(&format!("Concurrent round material {i}."), &[]))
            .await
            .unwrap();
    }
    let (twin, _) = cf.device(dir.path(), "a").await;
    let (x, y) = tokio::join!(
        a.engine().sync_once(false, &|_| {}),
        twin.engine().sync_once(false, &|_| {})
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.pushed + y.pushed, 201, "{x:?} {y:?}");
    assert_eq!(x.pushed_new + y.pushed_new, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_with_another_model_is_refused_naming_both_and_keeps_working_locally() {
    let cf = Deployment::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = cf.device(dir.path(), "a").await;
    a.store(memory("Recorded with MiniLM.", &[])).await.unwrap();
    a.engine().sync_once(true, &|_| {}).await.unwrap();

    let other: std::sync::Arc<dyn memory_embed::Embedder> =
        std::sync::Arc::new(Renamed(common::minilm()));
    let b: HybridStorage = cf
        .device_with(dir.path(), "b", other, SyncOptions::default())
        .await;
    b.store(memory("Stored locally anyway.", &[]))
        .await
        .unwrap();
    let err = b
        .engine()
        .sync_once(true, &|_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("all-MiniLM-L6-v2") && err.contains("another-model"),
        "{err}"
    );
    assert_eq!(b.count(&MemoryFilter::all()).await.unwrap(), 1);
}

/// MiniLM under another name: a device configured with another model.
#[derive(Debug)]
struct Renamed(std::sync::Arc<dyn memory_embed::Embedder>);

#[async_trait::async_trait]
impl memory_embed::Embedder for Renamed {
    fn model_id(&self) -> &str {
        "another-model"
    }
    fn dimensions(&self) -> usize {
        self.0.dimensions()
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, memory_embed::EmbedError> {
        self.0.embed(texts).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_what_differs_from_cloudflare_and_repair_fixes_it_both_ways() {
    let cf = Deployment::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, a_model) = cf.device(dir.path(), "a").await;
    let kept = memory("Kept on the device, lost upstream.", &["x"]);
    a.store(kept.clone()).await.unwrap();
    sync_until_quiet(&[&a], 4).await;
    assert!(a.check().await.unwrap().is_consistent());

    // Damage behind the engine's back: the row vanishes upstream, and a memory appears
    // there that no log row names (as the Python service would write it).
    let remote = a.engine().remote().await.unwrap();
    remote.storage.delete(kept.content_hash()).await.unwrap();
    let foreign = memory("Written upstream by another client.", &["python"])
        .with_embedding(common::unit_vector(7, common::minilm().dimensions()));
    remote.storage.store(foreign.clone()).await.unwrap();
    remote.storage.settle().await.unwrap();

    let found = a.check().await.unwrap();
    let mut subjects: Vec<&str> = found.issues.iter().map(|i| i.subject.as_str()).collect();
    subjects.sort_unstable();
    let mut expected = vec![
        kept.content_hash().as_str(),
        foreign.content_hash().as_str(),
    ];
    expected.sort_unstable();
    assert_eq!(subjects, expected, "{found:?}");
    assert!(
        found
            .issues
            .iter()
            .all(|i| i.kind == memory_storage::IssueKind::Unsynced)
    );

    let repaired = a.repair().await.unwrap();
    assert!(repaired.remaining.is_empty(), "{repaired:?}");
    assert_eq!(repaired.fixed, 2, "{repaired:?}");
    assert!(
        remote
            .storage
            .get_by_hash(kept.content_hash())
            .await
            .unwrap()
            .is_some()
    );
    let imported = a
        .get_by_hash(foreign.content_hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(imported.tags, foreign.tags);
    assert_eq!(
        a_model.texts().len(),
        1,
        "the foreign memory's vector came from Vectorize"
    );
}
