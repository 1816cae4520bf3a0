//! Replica mode on the emulator: the hybrid backend's projection of merged memories into
//! upstream's tables, tag links, Vectorize and R2 ([`CloudflareStorage::put_replicas`]), read
//! back through the ordinary backend; the stale-projection guard; the request budget; the
//! model check; and the reads of a full sync.

mod common;

use common::{MODEL, Setup, TestEnv};
use memory_cloudflare::{CloudflareStorage, ProjectReport, ReplicaModel};
use memory_core::{ContentHash, Memory, Metadata, Tags, Timestamp};
use memory_storage::{MemoryFilter, MemoryStorage, SemanticQuery, StorageError};
use memory_sync::{Change, DeviceId, Fields, Hlc, HybridClock, MemoryState, Replica};

/// Content over this many bytes goes to R2 in these tests.
const THRESHOLD: usize = 300;

fn model() -> ReplicaModel {
    ReplicaModel::new(MODEL.id(), MODEL.dimensions())
}

fn time(micros: i64) -> Timestamp {
    Timestamp::from_epoch_micros(micros).expect("a valid time")
}

fn fields(tags: &[&str], micros: i64) -> Fields {
    let mut metadata = Metadata::new();
    metadata.insert("source", serde_json::json!({"device": "laptop", "n": 3}));
    Fields {
        tags: Tags::parse(tags.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>()).expect("tags"),
        memory_type: Some("note".into()),
        metadata,
        created_at: time(1_700_000_000_123_457),
        updated_at: time(micros),
    }
}

fn tick(clock: &HybridClock) -> Hlc {
    clock.tick(1_000).expect("tick")
}

/// A live replica of `content` with `fields` and `vector`.
fn live(clock: &HybridClock, content: &str, fields: Fields, vector: Vec<f32>) -> Replica {
    let state = MemoryState::of(&Change::Store {
        hash: ContentHash::of(content),
        fields,
        at: tick(clock),
    });
    Replica {
        state,
        content: Some(content.to_owned()),
        vector: Some(vector),
    }
}

/// `replica` deleted after what it holds.
fn dead(clock: &HybridClock, replica: &Replica) -> Replica {
    Replica {
        state: replica.state.clone().apply(&Change::Delete {
            hash: replica.hash().clone(),
            at: tick(clock),
        }),
        content: None,
        vector: None,
    }
}

/// The replica store (threshold [`THRESHOLD`]) and an ordinary store on the same
/// database, index and bucket, reading what it projects.
async fn stores(env: &TestEnv) -> (CloudflareStorage, CloudflareStorage) {
    let mut config = env.config();
    config.large_content_threshold = THRESHOLD;
    let replica = env
        .replica_from(&config, model())
        .await
        .unwrap_or_else(|e| panic!("replica store: {e}"));
    (replica, env.storage_from(&config).await)
}

/// The memory `replica` describes, as a read returns it.
fn expected(replica: &Replica) -> Memory {
    let f = replica.state.live_fields().expect("a live replica").clone();
    Memory::from_parts(
        replica.content.clone().expect("content"),
        replica.hash().clone(),
        f.tags,
        f.memory_type,
        f.metadata,
        None,
        f.created_at,
        f.updated_at,
    )
}

async fn project(store: &CloudflareStorage, items: &[(i64, Replica)]) -> ProjectReport {
    store
        .put_replicas(items)
        .await
        .unwrap_or_else(|e| panic!("put_replicas: {e}"))
}

async fn tagged(store: &CloudflareStorage, tag: &str) -> Vec<ContentHash> {
    store
        .search_by_tag(&Tags::parse(vec![tag.to_owned()]).expect("tag"))
        .await
        .unwrap_or_else(|e| panic!("search_by_tag: {e}"))
        .into_iter()
        .map(|m| m.content_hash().clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_then_dead_then_revived_replicas_read_back_through_the_backend() {
    let env = TestEnv::start(Setup::direct()).await;
    let (replica, reader) = stores(&env).await;
    let clock = HybridClock::new(DeviceId::from_u128(1), None);
    let text = "The boiler service is booked for the first week of March.";
    let large = format!("A long runbook. {}", "step ".repeat(100));
    let a = live(
        &clock,
        text,
        fields(&["home", "boiler"], 1_700_000_100_000_001),
        common::embed(&reader, text).await,
    );
    let b = live(
        &clock,
        &large,
        fields(&["ops"], 1_700_000_200_000_000),
        common::embed(&reader, &large).await,
    );
    env.reset_counts();
    let report = project(&replica, &[(1, a.clone()), (2, b.clone())]).await;
    assert_eq!((report.projected, report.stale), (2, 0), "{report:?}");
    assert_eq!(
        (
            report.d1_requests,
            report.vectorize_requests,
            report.r2_requests
        ),
        (1, 1, 1),
        "{report:?}"
    );
    assert_eq!(
        env.calls("ai"),
        0,
        "replica mode never embeds: {}",
        env.describe_calls()
    );

    for r in [&a, &b] {
        let got = reader
            .get_by_hash(r.hash())
            .await
            .unwrap_or_else(|e| panic!("get_by_hash: {e}"));
        assert_eq!(got, Some(expected(r)), "exact fields and full content");
    }
    assert_eq!(tagged(&reader, "boiler").await, vec![a.hash().clone()]);
    env.settle(&[&replica, &reader]).await;
    let found = reader
        .search(&SemanticQuery::new("when is the boiler serviced?", 1))
        .await
        .unwrap_or_else(|e| panic!("search: {e}"));
    assert_eq!(
        found.first().map(|r| r.memory.content_hash()),
        Some(a.hash())
    );

    // Dead: soft-deleted, its vector and large content removed.
    let (a_dead, b_dead) = (dead(&clock, &a), dead(&clock, &b));
    let report = project(&replica, &[(3, a_dead.clone()), (4, b_dead)]).await;
    assert_eq!(
        (
            report.projected,
            report.vectorize_requests,
            report.r2_requests
        ),
        (2, 1, 1)
    );
    assert_eq!(reader.get_by_hash(a.hash()).await.ok().flatten(), None);
    assert!(tagged(&reader, "boiler").await.is_empty());
    assert_eq!(reader.count(&MemoryFilter::all()).await.ok(), Some(0));
    env.settle(&[&replica]).await;
    let left = env
        .index()
        .get_by_ids(&[a.hash().as_str().to_owned(), b.hash().as_str().to_owned()])
        .await
        .unwrap_or_else(|e| panic!("get_by_ids: {e}"));
    assert!(left.is_empty(), "the vectors are deleted: {left:?}");

    // Revived with other fields: live again with exactly those.
    let a_again = live(
        &clock,
        text,
        fields(&["home", "heating"], 1_700_000_300_000_000),
        common::embed(&reader, text).await,
    );
    let report = project(&replica, &[(5, a_again.clone())]).await;
    assert_eq!(report.projected, 1);
    assert_eq!(
        reader.get_by_hash(a.hash()).await.ok().flatten(),
        Some(expected(&a_again))
    );
    assert_eq!(tagged(&reader, "heating").await, vec![a.hash().clone()]);
    assert!(
        tagged(&reader, "boiler").await.is_empty(),
        "old links are gone"
    );
    env.settle(&[&replica]).await;
    let found = reader
        .search(&SemanticQuery::new("when is the boiler serviced?", 1))
        .await
        .unwrap_or_else(|e| panic!("search: {e}"));
    assert_eq!(
        found.first().map(|r| r.memory.content_hash()),
        Some(a.hash())
    );
    env.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_projection_does_not_overwrite_a_newer_one() {
    let env = TestEnv::start(Setup::direct()).await;
    let (replica, reader) = stores(&env).await;
    let clock = HybridClock::new(DeviceId::from_u128(2), None);
    let text = "Passwords live in the family vault, not in notes.";
    let vector = common::embed(&reader, text).await;
    let older = live(
        &clock,
        text,
        fields(&["old"], 1_700_000_100_000_000),
        vector.clone(),
    );
    let newer = live(
        &clock,
        text,
        fields(&["new"], 1_700_000_200_000_000),
        vector,
    );

    assert_eq!(project(&replica, &[(10, newer.clone())]).await.projected, 1);
    env.reset_counts();
    // Another device, behind: its live and dead projections of an earlier position lose.
    let report = project(&replica, &[(9, older.clone())]).await;
    assert_eq!((report.projected, report.stale), (0, 1), "{report:?}");
    let report = project(&replica, &[(8, dead(&clock, &older))]).await;
    assert_eq!((report.projected, report.stale), (0, 1), "{report:?}");
    assert_eq!(
        env.calls("vectorize") + env.calls("r2"),
        0,
        "losers send nothing beyond D1: {}",
        env.describe_calls()
    );
    assert_eq!(
        reader.get_by_hash(newer.hash()).await.ok().flatten(),
        Some(expected(&newer))
    );
    assert_eq!(tagged(&reader, "new").await, vec![newer.hash().clone()]);
    assert!(tagged(&reader, "old").await.is_empty());
    // In one call, the greatest position of a memory is the one projected.
    let report = project(&replica, &[(12, newer.clone()), (11, older)]).await;
    assert_eq!((report.projected, report.stale), (1, 0), "{report:?}");
    assert_eq!(tagged(&reader, "new").await, vec![newer.hash().clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projecting_10k_new_memories_stays_within_40_requests() {
    let env = TestEnv::start(Setup::direct()).await;
    let (replica, reader) = stores(&env).await;
    let clock = HybridClock::new(DeviceId::from_u128(3), None);
    let items: Vec<(i64, Replica)> = (0..10_000)
        .map(|n| {
            // A unit vector per memory, no embedding needed.
            let mut v = vec![0.0_f32; 384];
            v[n % 384] = 0.6;
            v[(n / 384) % 384] += 0.8;
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            let content = format!("Memory number {n}: a short note of the usual length.");
            (
                n as i64 + 1,
                live(
                    &clock,
                    &content,
                    fields(&["bulk", "sync"], 1_700_000_000_200_000),
                    v,
                ),
            )
        })
        .collect();
    env.reset_counts();
    let report = project(&replica, &items).await;
    let counts = env.call_counts();
    println!(
        "projecting 10,000 memories: {report:?}; calls {counts:?}: {}",
        env.describe_calls()
    );
    assert_eq!(report.projected, 10_000);
    assert_eq!(
        report.d1_requests + report.vectorize_requests + report.r2_requests,
        counts.total(),
        "the report counts every request: {}",
        env.describe_calls()
    );
    assert!(counts.total() <= 40, "{counts:?}: {}", env.describe_calls());
    assert_eq!(reader.count(&MemoryFilter::all()).await.ok(), Some(10_000));
    assert_eq!(tagged(&reader, "bulk").await.len(), 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_another_model_is_refused_naming_both() {
    let env = TestEnv::start(Setup::direct()).await;
    // The Cloudflare backend recorded its Workers AI model.
    let _ = env.storage().await;
    let err = env
        .replica_from(
            &env.config(),
            ReplicaModel::new("sentence-transformers/other-model", 384),
        )
        .await
        .expect_err("another model is refused");
    let text = err.to_string();
    assert!(matches!(err, StorageError::ModelMismatch { .. }), "{err:?}");
    assert!(
        text.contains(MODEL.id()) && text.contains("other-model"),
        "{text}"
    );
    assert!(
        text.contains(&format!("set it to {}", MODEL.id())),
        "{text}"
    );
    // The same model is accepted, and so is the index's dimension check of another one.
    env.replica_from(&env.config(), model())
        .await
        .unwrap_or_else(|e| panic!("the same model: {e}"));
    let mut other = env.config();
    other.namespace = Some(memory_cloudflare::Namespace::new("wide").expect("namespace"));
    let err = env
        .replica_from(&other, ReplicaModel::new("local/wide-model", 768))
        .await
        .expect_err("the index has 384 dimensions");
    assert!(
        err.to_string().contains("768") && err.to_string().contains("384"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_lists_live_hashes_in_pages_and_fetches_rows_with_vectors() {
    let env = TestEnv::start(Setup::direct()).await;
    let (replica, reader) = stores(&env).await;
    let texts = [
        "First note from the Python service.",
        "Second one.",
        "Third one, deleted.",
    ];
    let mut hashes = Vec::new();
    for t in texts {
        reader
            .store(Memory::new(t).expect("memory"))
            .await
            .unwrap_or_else(|e| panic!("store: {e}"));
        hashes.push(ContentHash::of(t));
    }
    reader
        .delete(&hashes[2])
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    let mut live_hashes = hashes[..2].to_vec();
    live_hashes.sort();
    let first = replica.live_hashes_page(None, 1).await.expect("page");
    let second = replica
        .live_hashes_page(first.last(), 1)
        .await
        .expect("page");
    let third = replica
        .live_hashes_page(second.last(), 1)
        .await
        .expect("page");
    assert_eq!([first, second].concat(), live_hashes);
    assert!(third.is_empty());

    env.settle(&[&reader]).await;
    let fetched = replica
        .fetch_replicas_of(&hashes)
        .await
        .unwrap_or_else(|e| panic!("fetch_replicas_of: {e}"));
    assert_eq!(fetched.len(), 3);
    for (k, f) in fetched.iter().enumerate().take(2) {
        let (memory, vector) = f.as_ref().expect("a live memory");
        assert_eq!(memory.content(), texts[k]);
        assert_eq!(vector.as_ref().map(Vec::len), Some(384));
    }
    assert!(fetched[2].is_none(), "a deleted memory is not fetched");
}
