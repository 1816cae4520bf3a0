//! Pushing the local outbox to the D1 change log, on the emulator.

use std::sync::Arc;

use cloudflare_d1::D1Client;
use cloudflare_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use cloudflare_http::{ApiToken, ClientBuilder, ClientConfig};
use memory_cloudflare::change_log::ChangeLog;
use memory_core::{Memory, Tags};
use memory_embed::{BertEmbedder, DEFAULT_MODEL_ID, Embedder};
use memory_hybrid::push_pending;
use memory_sqlite::{SqliteConfig, SqliteStorage};
use memory_storage::{MemoryStorage, MemoryUpdate};
use memory_sync::{Change, SyncedChange};

async fn local(dir: &tempfile::TempDir) -> SqliteStorage {
    let model = BertEmbedder::open(DEFAULT_MODEL_ID)
        .unwrap_or_else(|e| panic!("run `cargo xtask fetch-model`: {e}"));
    let embedder: Arc<dyn Embedder> = Arc::new(model);
    SqliteConfig::new(dir.path().join("device.db"))
        .change_log(true)
        .open(embedder)
        .await
        .unwrap_or_else(|e| panic!("opening the local store: {e}"))
}

async fn log_on(emulator: &EmulatorHandle) -> ChangeLog {
    let config = ClientConfig::new(
        emulator.config().account_ids[0].clone(),
        ApiToken::new(emulator.config().tokens[0].clone()),
    )
    .with_base_url(emulator.base_url().parse().unwrap());
    let client = ClientBuilder::new(config).build().unwrap();
    let d1 = D1Client::new(&client, "5b0c9d1e-2f3a-4b5c-8d6e-7f8091a2b3c4");
    let log = ChangeLog::new(Arc::new(d1), None);
    log.ensure_table().await.unwrap();
    log
}

fn memory(text: &str) -> Memory {
    Memory::new(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_reaches_the_log_with_vectors_once_even_when_an_ack_was_lost() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = local(&dir).await;
    let log = log_on(&emulator).await;

    let a = memory("The boiler service is booked for March.");
    let b = memory("Passwords live in the family vault, not in notes.");
    let c = memory("Lunch with Priya moved to Thursday.");
    for m in [&a, &b, &c] {
        store.store(m.clone()).await.unwrap();
    }
    let update = MemoryUpdate {
        tags: Some(Tags::parse(vec!["home".to_owned()]).unwrap()),
        ..MemoryUpdate::default()
    };
    store
        .update_memory_metadata(a.content_hash(), update, false)
        .await
        .unwrap();
    store.delete(c.content_hash()).await.unwrap();

    // A push whose acknowledgement was lost: the first change reached the log, the outbox
    // still holds it.
    let early = store.pending_changes(0, 1).await.unwrap();
    log.append(
        &early
            .iter()
            .map(|e| SyncedChange::bare(e.change.clone()))
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();

    let report = push_pending(&store, &log, 2).await.unwrap();
    assert_eq!(report.changes, 5, "{report:?}");
    assert_eq!(
        report.added, 4,
        "the one already in the log is not added again"
    );
    assert!(store.pending_changes(0, 10).await.unwrap().is_empty());
    assert_eq!(push_pending(&store, &log, 2).await.unwrap().changes, 0);

    let pulled = log.read_after(0, 100, None).await.unwrap();
    let kinds: Vec<(&str, &str)> = pulled
        .iter()
        .map(|l| {
            let kind = match l.synced.change {
                Change::Store { .. } => "store",
                Change::Update { .. } => "update",
                Change::Delete { .. } => "delete",
            };
            (kind, l.synced.change.hash().as_str())
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("store", a.content_hash().as_str()),
            ("store", b.content_hash().as_str()),
            ("store", c.content_hash().as_str()),
            ("update", a.content_hash().as_str()),
            ("delete", c.content_hash().as_str()),
        ]
    );
    // The stores pushed by push_pending carry the local vector; a deleted memory has none
    // left to send (its Delete follows).
    let local_b = store
        .get_embeddings(std::slice::from_ref(b.content_hash()))
        .await
        .unwrap()
        .remove(0);
    assert!(local_b.is_some());
    assert_eq!(
        pulled[0].synced.vector, None,
        "pushed by the lost-ack round, without a vector"
    );
    assert_eq!(
        pulled[1].synced.vector, local_b,
        "b's vector travels with its store"
    );
    assert_eq!(
        pulled[2].synced.vector, None,
        "c was deleted before the push"
    );
    let stamps: Vec<_> = pulled.iter().map(|l| l.synced.change.at()).collect();
    assert!(
        stamps.windows(2).all(|w| w[0] < w[1]),
        "one device's stamps grow"
    );
}
