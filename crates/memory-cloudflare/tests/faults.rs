//! Failures injected by the emulator: a store that fails half-way never leaves a silent
//! orphan (it errors and compensates, and what compensation could not undo is found by
//! `check` and fixed by `repair`), and the circuit breaker opens on a 503 storm and closes
//! again once the storm ends.

mod common;

use std::time::Duration;

use cloudflare_emulator::FaultRule;
use cloudflare_http::{BreakerConfig, BreakerState, ClientConfig};
use common::{Setup, TestEnv, paths};
use memory_cloudflare::{CloudflareStorage, Options};
use memory_core::{ContentHash, Memory};
use memory_storage::{IssueKind, MemoryStorage, StorageError, StoreOutcome};

/// No retries, so each injected failure reaches the store at once.
fn no_retries(config: &mut ClientConfig) {
    config.retry.max_retries = 0;
}

/// No retries and a breaker that opens after 3 failures for 300 ms.
fn quick_breaker(config: &mut ClientConfig) {
    config.retry.max_retries = 0;
    config.breaker = Some(
        BreakerConfig::new("cloudflare", 3, Duration::from_millis(300), 1)
            .unwrap_or_else(|e| panic!("breaker config: {e}")),
    );
}

fn memory(content: &str) -> Memory {
    Memory::new(content).unwrap_or_else(|e| panic!("memory: {e}"))
}

async fn live(store: &CloudflareStorage, hash: &ContentHash) -> bool {
    store
        .get_by_hash(hash)
        .await
        .unwrap_or_else(|e| panic!("get_by_hash: {e}"))
        .is_some()
}

/// Asserts D1, Vectorize and R2 agree: no row without its vector, no vector or R2 object
/// without its row.
async fn assert_consistent(store: &CloudflareStorage) {
    let report = store.check().await.unwrap_or_else(|e| panic!("check: {e}"));
    assert!(report.is_consistent(), "orphans left behind: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_vector_upsert_removes_the_new_row_again() {
    let env = TestEnv::start(Setup::direct().with_client(no_retries)).await;
    let store = env.storage().await;
    let m = memory("The failover runbook is in the shared drive.");
    let hash = m.content_hash().clone();
    env.fault(FaultRule::fail_next(paths::VECTORIZE_UPSERT, 1, 503));

    let err = store
        .store(m.clone())
        .await
        .expect_err("the upsert failed, so the store must fail");

    assert!(
        matches!(
            err,
            StorageError::Unavailable { .. } | StorageError::Backend { .. }
        ),
        "{err:?}"
    );
    assert!(!live(&store, &hash).await, "the row was compensated away");
    assert_consistent(&store).await;
    // Nothing is left to make the retry a duplicate.
    let outcome = store
        .store(m)
        .await
        .unwrap_or_else(|e| panic!("the retry stores: {e}"));
    assert_eq!(outcome, StoreOutcome::Stored);
    assert!(live(&store, &hash).await);
    assert_consistent(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_vector_upsert_of_a_revival_leaves_the_memory_deleted() {
    let env = TestEnv::start(Setup::direct().with_client(no_retries)).await;
    let store = env.storage().await;
    let m = memory("Revived memories must not come back half-way.");
    let hash = m.content_hash().clone();
    store
        .store(m.clone())
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));
    store
        .delete(&hash)
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    env.fault(FaultRule::fail_next(paths::VECTORIZE_UPSERT, 1, 503));

    let err = store.store(m.clone()).await;

    assert!(err.is_err(), "{err:?}");
    assert!(!live(&store, &hash).await, "the row was re-tombstoned");
    assert_consistent(&store).await;
    let outcome = store
        .store(m)
        .await
        .unwrap_or_else(|e| panic!("the retry revives: {e}"));
    assert_eq!(outcome, StoreOutcome::Revived);
    assert_consistent(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_d1_batch_deletes_the_vector_again() {
    let env = TestEnv::start(Setup::direct().with_client(no_retries)).await;
    let store = env.storage().await;
    let m = memory("The D1 write of this memory fails.");
    let hash = m.content_hash().clone();
    env.fault(FaultRule::fail_next(paths::D1, 1, 503));

    env.reset_counts();

    let err = store.store(m).await;

    assert!(err.is_err(), "{err:?}");
    assert_eq!(
        env.op("vectorize", "delete_by_ids").calls,
        1,
        "the vector written in parallel is deleted again: {}",
        env.describe_calls()
    );
    assert!(!live(&store, &hash).await);
    assert_consistent(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_d1_write_fails_removes_its_vectors_and_says_nothing_was_stored() {
    // store_batch shares store's write path: the same compensation, the same words.
    let env = TestEnv::start(Setup::direct().with_client(no_retries)).await;
    let store = env.storage().await;
    let batch = vec![
        memory("The first memory of a batch whose D1 write fails."),
        memory("The second memory of that batch."),
    ];
    let hashes: Vec<ContentHash> = batch.iter().map(|m| m.content_hash().clone()).collect();
    env.fault(FaultRule::fail_next(paths::D1, 1, 503));

    let outcomes = store
        .store_batch(batch)
        .await
        .unwrap_or_else(|e| panic!("store_batch reports per memory: {e}"));

    assert_eq!(outcomes.len(), 2);
    for outcome in &outcomes {
        let err = outcome.as_ref().expect_err("the D1 batch failed");
        assert!(err.to_string().contains("nothing was stored"), "{err}");
    }
    for hash in &hashes {
        assert!(!live(&store, hash).await);
    }
    assert_consistent(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_the_compensation_could_not_remove_is_found_and_repaired() {
    let env = TestEnv::start(Setup::direct().with_client(no_retries)).await;
    let store = env.storage().await;
    let m = memory("Both the D1 write and the clean-up of this memory fail.");
    let hash = m.content_hash().clone();
    // D1 fails the store's batch; Vectorize wrote the vector, and deleting it fails too.
    env.fault(FaultRule::fail_next(paths::D1, 1, 503));
    env.fault(FaultRule::fail_next("/delete_by_ids", 1, 503));

    let err = store
        .store(m)
        .await
        .expect_err("the D1 write failed, so the store must fail");

    let message = err.to_string();
    assert!(
        message.contains("repair") || message.contains("check"),
        "the error says how the orphan is fixed: {message}"
    );
    assert!(!live(&store, &hash).await);
    let found = store.check().await.unwrap_or_else(|e| panic!("check: {e}"));
    assert_eq!(found.vectors_without_rows.len(), 1, "{found:?}");
    assert!(found.rows_without_vectors.is_empty(), "{found:?}");

    let repaired = store
        .repair()
        .await
        .unwrap_or_else(|e| panic!("repair: {e}"));
    assert_eq!(repaired.vectors_deleted, 1, "{repaired:?}");
    assert_consistent(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_writes_the_vector_of_a_row_that_lost_it() {
    let env = TestEnv::start(Setup::direct()).await;
    let store = env.storage().await;
    let m = memory("This memory's vector disappears behind the store's back.");
    let hash = m.content_hash().clone();
    store
        .store(m)
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));
    // Someone deletes the vector straight in Vectorize.
    env.index()
        .delete_by_ids(&[hash.as_str().to_owned()])
        .await
        .unwrap_or_else(|e| panic!("deleting the vector: {e}"));

    let found = store.check().await.unwrap_or_else(|e| panic!("check: {e}"));
    assert_eq!(found.rows_without_vectors, vec![hash.clone()], "{found:?}");

    let repaired = store
        .repair()
        .await
        .unwrap_or_else(|e| panic!("repair: {e}"));
    assert_eq!(repaired.vectors_written, 1, "{repaired:?}");
    assert_consistent(&store).await;
    let hits = store
        .retrieve("vector disappears behind the store's back", 1)
        .await
        .unwrap_or_else(|e| panic!("retrieve: {e}"));
    assert_eq!(hits.first().map(|h| h.memory.content_hash()), Some(&hash));
}

/// Issue 12 item 6: the vector delete fails, the row is deleted; the delete must say so
/// (not report a clean success), and `check`/`repair` must find and remove the vector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_whose_vector_delete_fails_reports_the_vector_as_pending() {
    let env = TestEnv::start(Setup::direct().with_client(no_retries)).await;
    let store = env.storage().await;
    let m = memory("The vector of this memory outlives its delete.");
    let hash = m.content_hash().clone();
    store
        .store(m)
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));
    env.fault(FaultRule::fail_next("/delete_by_ids", 1, 503));

    let report = store
        .delete(&hash)
        .await
        .unwrap_or_else(|e| panic!("the row is deleted, so the delete succeeds: {e}"));

    assert_eq!(report.hashes, std::slice::from_ref(&hash));
    let vid = hash.as_str();
    assert!(
        report.cleanup_pending.len() == 1 && report.cleanup_pending[0].contains(vid),
        "the pending clean-up names the vector left behind: {:?}",
        report.cleanup_pending
    );
    assert!(!live(&store, &hash).await, "the memory is deleted");
    let found = MemoryStorage::check(&store)
        .await
        .unwrap_or_else(|e| panic!("check: {e}"));
    let strays: Vec<&str> = found
        .of_kind(IssueKind::StrayVector)
        .map(|i| i.subject.as_str())
        .collect();
    assert_eq!(strays, [vid], "check finds the leftover vector: {found:?}");
    let repaired = MemoryStorage::repair(&store)
        .await
        .unwrap_or_else(|e| panic!("repair: {e}"));
    assert_eq!(repaired.fixed, 1, "{repaired:?}");
    assert_consistent(&store).await;
}

/// A store keeping content over 64 bytes in R2, holding one such memory (`text` four
/// times), and a fault that fails every R2 delete from now on (its id, to remove it).
async fn large_memory_whose_r2_delete_fails(
    env: &TestEnv,
    text: &str,
) -> (CloudflareStorage, ContentHash, u64) {
    let options = Options {
        large_content_threshold: 64,
        ..Options::default()
    };
    let store = env.storage_with(env.parts(), options).await;
    let m = memory(&text.repeat(4));
    let hash = m.content_hash().clone();
    store
        .store(m)
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));
    let fault = env.fault(FaultRule::error(paths::R2, 503, 1.0).with_method("DELETE"));
    (store, hash, fault)
}

/// Issue 12 item 7: the R2 delete fails after the row is deleted; the delete must not
/// report an error (a retry would say "not found"), but the object as pending clean-up,
/// which `check` finds and `repair` removes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_whose_r2_delete_fails_succeeds_and_reports_the_object_as_pending() {
    let env = TestEnv::start(Setup::direct().with_client(no_retries)).await;
    let (store, hash, fault) = large_memory_whose_r2_delete_fails(
        &env,
        "Large content kept in R2, whose object delete fails. ",
    )
    .await;

    let report = store
        .delete(&hash)
        .await
        .unwrap_or_else(|e| panic!("the row is deleted, so the delete succeeds: {e}"));

    assert_eq!(report.hashes, std::slice::from_ref(&hash));
    assert!(
        report.cleanup_pending.len() == 1
            && report.cleanup_pending[0].contains("R2 object")
            && report.cleanup_pending[0].contains(hash.as_str()),
        "the pending clean-up names the R2 object left behind: {:?}",
        report.cleanup_pending
    );
    assert!(!live(&store, &hash).await, "the memory is deleted");
    assert!(
        matches!(
            store.delete(&hash).await,
            Err(StorageError::NotFound { .. })
        ),
        "a second delete finds nothing: the first one did delete"
    );
    assert!(env.emulator.faults().remove(fault));
    let found = MemoryStorage::check(&store)
        .await
        .unwrap_or_else(|e| panic!("check: {e}"));
    let strays: Vec<&str> = found
        .of_kind(IssueKind::StrayObject)
        .map(|i| i.subject.as_str())
        .collect();
    assert!(
        strays.len() == 1 && strays[0].contains(hash.as_str()),
        "check finds the leftover object: {found:?}"
    );
    let repaired = MemoryStorage::repair(&store)
        .await
        .unwrap_or_else(|e| panic!("repair: {e}"));
    assert_eq!(repaired.fixed, 1, "{repaired:?}");
    assert_consistent(&store).await;
}

/// A purge whose R2 delete fails still reports the rows it purged (they are gone), and the
/// object left behind is this store's: `check` finds it and `repair` removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_whose_r2_delete_fails_counts_the_purged_rows_and_leaves_the_object_to_repair() {
    let env = TestEnv::start(Setup::direct().with_client(no_retries)).await;
    let (store, hash, fault) = large_memory_whose_r2_delete_fails(
        &env,
        "Large content whose object outlives both delete and purge. ",
    )
    .await;
    let report = store
        .delete(&hash)
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    assert_eq!(report.cleanup_pending.len(), 1, "{report:?}");

    let purged = store
        .purge_deleted(None)
        .await
        .unwrap_or_else(|e| panic!("the rows are purged, so the purge succeeds: {e}"));
    assert_eq!(purged, 1);
    assert!(env.emulator.faults().remove(fault));
    let found = MemoryStorage::check(&store)
        .await
        .unwrap_or_else(|e| panic!("check: {e}"));
    assert_eq!(
        found.of_kind(IssueKind::StrayObject).count(),
        1,
        "check finds the leftover object: {found:?}"
    );
    let repaired = MemoryStorage::repair(&store)
        .await
        .unwrap_or_else(|e| panic!("repair: {e}"));
    assert_eq!(repaired.fixed, 1, "{repaired:?}");
    assert_consistent(&store).await;
}

/// Vectorize requests the emulator received.
fn vectorize_requests(env: &TestEnv) -> u64 {
    env.emulator
        .counters()
        .snapshot()
        .routes
        .iter()
        .filter(|(route, _)| route.contains("/vectorize/"))
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_on_a_503_storm_and_recovers_after_it() {
    let env = TestEnv::start(Setup::direct().with_client(quick_breaker)).await;
    let store = env.storage().await;
    store
        .store(memory("Searchable before, during and after the storm."))
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));
    let breaker = env
        .client
        .service("vectorize")
        .breaker()
        .cloned()
        .unwrap_or_else(|| panic!("breakers are on"));
    assert_eq!(breaker.state(), BreakerState::Closed);

    let storm = env.fault(FaultRule::error(paths::VECTORIZE, 503, 1.0));
    for _ in 0..3 {
        let err = store
            .retrieve("the storm", 1)
            .await
            .expect_err("Vectorize answers 503");
        assert!(err.is_transient(), "a 503 is worth retrying later: {err:?}");
    }
    assert!(
        matches!(breaker.state(), BreakerState::Open { .. }),
        "{:?}",
        breaker.state()
    );
    // While open, calls fail at once without reaching Vectorize.
    let before = vectorize_requests(&env);
    let err = store
        .retrieve("the storm", 1)
        .await
        .expect_err("the breaker is open");
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("vectorize"), "{err}");
    assert_eq!(
        vectorize_requests(&env),
        before,
        "no request reached Vectorize"
    );
    assert!(breaker.rejected_count() >= 1);

    // The storm ends; after `open_for` a probe goes through and the breaker closes.
    assert!(env.emulator.faults().remove(storm));
    tokio::time::sleep(breaker.config().open_for() + Duration::from_millis(100)).await;
    let hits = store
        .retrieve("searchable before during and after the storm", 1)
        .await
        .unwrap_or_else(|e| panic!("Vectorize is back: {e}"));
    assert_eq!(hits.len(), 1);
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.opened_count(), 1);
}
