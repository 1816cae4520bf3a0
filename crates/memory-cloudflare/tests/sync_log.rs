//! The hybrid backend's change log in D1 ([`memory_cloudflare::change_log`]) on the
//! emulator: content inline and through R2, payloads skipped for the reading device, an
//! old table upgraded in place, and the positions the sync engine re-derives after a crash.

mod common;

use common::{Setup, TestEnv};
use memory_cloudflare::change_log::{ChangeLog, LoggedChange};
use memory_cloudflare::{CloudflareStorage, Options};
use memory_core::{ContentHash, Metadata, Tags, Timestamp};
use memory_sync::{Change, DeviceId, Fields, HybridClock, SyncedChange};

/// Content over this many bytes goes to R2 in these tests.
const THRESHOLD: usize = 200;

fn fields(tag: &str) -> Fields {
    Fields {
        tags: Tags::parse(vec![tag.to_owned()]).unwrap_or_else(|e| panic!("tags: {e}")),
        memory_type: Some("note".into()),
        metadata: Metadata::default(),
        created_at: Timestamp::from_epoch_micros(1_700_000_000_123_456).expect("a valid time"),
        updated_at: Timestamp::from_epoch_micros(1_700_000_100_000_001).expect("a valid time"),
    }
}

/// A store of `content` stamped by `clock`, with a vector.
fn store(clock: &HybridClock, content: &str) -> SyncedChange {
    let at = clock.tick(1_000).unwrap_or_else(|e| panic!("tick: {e}"));
    SyncedChange {
        change: Change::Store {
            hash: ContentHash::of(content),
            fields: fields("sync"),
            at,
        },
        content: Some(content.to_owned()),
        vector: Some((0..384).map(|i| i as f32 / 384.0).collect()),
    }
}

fn delete(clock: &HybridClock, content: &str) -> SyncedChange {
    let at = clock.tick(1_000).unwrap_or_else(|e| panic!("tick: {e}"));
    SyncedChange::bare(Change::Delete {
        hash: ContentHash::of(content),
        at,
    })
}

/// A store over the test's database, index and bucket with a threshold of [`THRESHOLD`].
async fn storage(env: &TestEnv, r2: bool) -> CloudflareStorage {
    let mut parts = env.parts();
    if !r2 {
        parts.r2 = None;
    }
    let options = Options {
        large_content_threshold: THRESHOLD,
        ..Options::default()
    };
    env.storage_with(parts, options).await
}

async fn read_all(log: &ChangeLog, skip: Option<DeviceId>) -> Vec<LoggedChange> {
    let mut all: Vec<LoggedChange> = Vec::new();
    let mut cursor = 0;
    loop {
        let page = log
            .read_after(cursor, 100, skip)
            .await
            .unwrap_or_else(|e| panic!("read_after: {e}"));
        let Some(last) = page.last() else {
            return all;
        };
        cursor = last.seq;
        all.extend(page);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_and_vectors_round_trip_and_large_content_goes_through_r2() {
    let env = TestEnv::start(Setup::direct()).await;
    let store_ = storage(&env, true).await;
    let log = store_.change_log();
    log.ensure_table()
        .await
        .unwrap_or_else(|e| panic!("ensure_table: {e}"));
    let clock = HybridClock::new(DeviceId::from_u128(1), None);
    let large = "L".repeat(THRESHOLD + 1);
    let pushed = vec![
        store(&clock, "A small memory travels inline."),
        store(&clock, &large),
        delete(&clock, "A small memory travels inline."),
    ];
    env.reset_counts();
    let appended = log
        .append(&pushed)
        .await
        .unwrap_or_else(|e| panic!("append: {e}"));
    assert_eq!(
        (appended.added, appended.requests, appended.r2_requests),
        (3, 1, 1)
    );
    assert_eq!(env.calls("r2"), 1, "{}", env.describe_calls());
    let key = format!(
        "memories/{}/{}",
        store_.store_id().unwrap_or_default(),
        ContentHash::of(&large).as_str()
    );
    let object = env
        .r2()
        .get_object(cloudflare_r2::GetObject::new(key.clone()))
        .await
        .unwrap_or_else(|e| panic!("the large content is in R2 under the store's key {key}: {e}"));
    assert_eq!(object.body.len(), large.len());

    let pulled = read_all(&log, None).await;
    let got: Vec<&SyncedChange> = pulled.iter().map(|l| &l.synced).collect();
    assert_eq!(got, pushed.iter().collect::<Vec<_>>());
    assert!(pulled.iter().all(|l| l.device == DeviceId::from_u128(1)));
    assert_eq!(log.latest_seq().await.unwrap_or_default(), pulled[2].seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_content_without_a_bucket_is_refused_naming_the_setting() {
    let env = TestEnv::start(Setup::direct()).await;
    let log = storage(&env, false).await.change_log();
    log.ensure_table()
        .await
        .unwrap_or_else(|e| panic!("ensure_table: {e}"));
    let clock = HybridClock::new(DeviceId::from_u128(1), None);
    let err = log
        .append(&[store(&clock, &"x".repeat(THRESHOLD + 1))])
        .await
        .expect_err("content over the threshold needs a bucket");
    assert!(err.to_string().contains("CLOUDFLARE_R2_BUCKET"), "{err}");
    assert_eq!(
        log.latest_seq().await.unwrap_or(-1),
        0,
        "nothing was pushed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reading_devices_own_payloads_are_skipped_and_its_positions_found_again() {
    let env = TestEnv::start(Setup::direct()).await;
    let store_ = storage(&env, true).await;
    let log = store_.change_log();
    log.ensure_table()
        .await
        .unwrap_or_else(|e| panic!("ensure_table: {e}"));
    let me = DeviceId::from_u128(1);
    let other = DeviceId::from_u128(2);
    let (mine, theirs) = (HybridClock::new(me, None), HybridClock::new(other, None));
    let large = "Q".repeat(THRESHOLD * 2);
    let pushed = vec![
        store(&mine, "mine, small"),
        store(&theirs, "theirs, small"),
        store(&mine, &large),
        store(&theirs, &"T".repeat(THRESHOLD * 2)),
    ];
    log.append(&pushed)
        .await
        .unwrap_or_else(|e| panic!("append: {e}"));
    env.reset_counts();
    let pulled = read_all(&log, Some(me)).await;
    assert_eq!(pulled.len(), 4);
    for (p, l) in pushed.iter().zip(&pulled) {
        assert_eq!(p.change, l.synced.change);
        if l.device == me {
            assert_eq!((&l.synced.content, &l.synced.vector), (&None, &None));
        } else {
            assert_eq!(p, &l.synced, "another device's payload comes whole");
        }
    }
    assert_eq!(
        env.calls("r2"),
        1,
        "only the other device's large content is read: {}",
        env.describe_calls()
    );
    let seqs: Vec<i64> = pulled.iter().map(|l| l.seq).collect();
    let mine_between = log
        .hashes_of_device_between(seqs[0], seqs[3], me)
        .await
        .unwrap_or_else(|e| panic!("hashes_of_device_between: {e}"));
    assert_eq!(mine_between, vec![(seqs[2], ContentHash::of(&large))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_table_from_before_content_gains_its_columns_once() {
    let env = TestEnv::start(Setup::direct()).await;
    let store_ = storage(&env, true).await;
    let log = store_.change_log();
    let d1 = env.d1();
    // The table as the first version created it, with a row.
    d1.query(cloudflare_d1::Statement::new(format!(
        "CREATE TABLE {} (seq INTEGER PRIMARY KEY AUTOINCREMENT, hlc TEXT NOT NULL, \
         device TEXT NOT NULL, content_hash TEXT NOT NULL, kind TEXT NOT NULL, \
         change_json TEXT NOT NULL, vector TEXT, UNIQUE (hlc, content_hash))",
        log.table()
    )))
    .await
    .unwrap_or_else(|e| panic!("old table: {e}"));
    let clock = HybridClock::new(DeviceId::from_u128(3), None);
    let old = delete(&clock, "deleted before the upgrade");
    d1.query(
        cloudflare_d1::Statement::new(format!(
            "INSERT INTO {} (hlc, device, content_hash, kind, change_json) VALUES (?, ?, ?, 'delete', ?)",
            log.table()
        ))
        .bind(old.change.at().to_string())
        .bind(old.change.at().device.to_string())
        .bind(old.change.hash().as_str())
        .bind(serde_json::to_string(&old.change).unwrap_or_default()),
    )
    .await
    .unwrap_or_else(|e| panic!("old row: {e}"));

    log.ensure_table()
        .await
        .unwrap_or_else(|e| panic!("upgrade: {e}"));
    log.ensure_table()
        .await
        .unwrap_or_else(|e| panic!("again: {e}"));
    let new = store(&clock, "stored after the upgrade");
    log.append(std::slice::from_ref(&new))
        .await
        .unwrap_or_else(|e| panic!("append: {e}"));
    let pulled = read_all(&log, None).await;
    let got: Vec<SyncedChange> = pulled.into_iter().map(|l| l.synced).collect();
    assert_eq!(got, vec![old, new]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_stops_before_its_byte_bound_and_still_moves_on() {
    let env = TestEnv::start(Setup::direct()).await;
    let log = ChangeLog::new(std::sync::Arc::new(env.d1()), None);
    log.ensure_table()
        .await
        .unwrap_or_else(|e| panic!("ensure_table: {e}"));
    let clock = HybridClock::new(DeviceId::from_u128(4), None);
    // Five 500 KB contents, inline (under the default 1 MiB threshold): 2.5 MB in all.
    let pushed: Vec<SyncedChange> = (0..5)
        .map(|i| store(&clock, &format!("{i}{}", "c".repeat(500_000))))
        .collect();
    let appended = log
        .append(&pushed)
        .await
        .unwrap_or_else(|e| panic!("append: {e}"));
    assert_eq!(appended.added, 5);
    let first = log
        .read_after(0, 100, None)
        .await
        .unwrap_or_else(|e| panic!("read_after: {e}"));
    assert_eq!(
        first.len(),
        3,
        "three rows fit under {} bytes",
        memory_cloudflare::change_log::MAX_PAGE_BYTES
    );
    let all = read_all(&log, None).await;
    assert_eq!(
        all.into_iter().map(|l| l.synced).collect::<Vec<_>>(),
        pushed
    );
}
