//! Applying changes pulled from other devices: two stores on two files are two devices;
//! the changes one records are applied on the other, in the orders a sync engine could
//! deliver them, and both end with the same memories and the same replicas.

use memory_sync::{Change, DeviceId, Hlc, MAX_DRIFT_MS, Replica, SyncedChange};

use super::outbox::{Logged, h};
use super::*;
use crate::ApplyReport;
use crate::outbox::fields_of;

/// The changes `l` recorded after `after_seq`, as a push carries them: each store with the
/// memory's content and stored vector when it is still live (none when deleted since).
async fn push(l: &Logged, after_seq: u64) -> Vec<SyncedChange> {
    let mut out = Vec::new();
    for entry in l.store.pending_changes(after_seq, 10_000).await.unwrap() {
        let mut synced = SyncedChange::bare(entry.change);
        if let Change::Store { hash, .. } = &synced.change {
            synced.content = l
                .store
                .get_by_hash(hash)
                .await
                .unwrap()
                .map(|m| m.content().to_owned());
            synced.vector = l.store.get_embedding(hash).await.unwrap();
        }
        out.push(synced);
    }
    out
}

/// The last seq of `l`'s outbox (0 when empty).
async fn last_seq(l: &Logged) -> u64 {
    let all = l.store.pending_changes(0, 10_000).await.unwrap();
    all.last().map_or(0, |e| e.seq)
}

async fn apply(l: &Logged, changes: Vec<SyncedChange>) -> ApplyReport {
    l.store.apply_remote(changes, 0).await.unwrap()
}

async fn replicas(l: &Logged, hashes: &[ContentHash]) -> Vec<Option<Replica>> {
    l.store.replicas(hashes).await.unwrap()
}

/// A stamp of another device at `millis`.
fn stamp(millis: u64) -> Hlc {
    Hlc {
        millis,
        counter: 0,
        device: DeviceId::from_u128(7),
    }
}

/// A store of `text` stamped `at`, carrying its content and (the test embedder's) vector.
fn remote_store(l: &Logged, text: &str, at: Hlc) -> SyncedChange {
    let m = memory(text).with_created_at(super::at(5));
    SyncedChange {
        change: Change::Store {
            hash: h(text),
            fields: fields_of(&m),
            at,
        },
        content: Some(text.to_owned()),
        vector: Some(l.embedder.vector(text)),
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[tokio::test]
async fn changes_of_one_device_give_another_the_same_memories_and_vectors_without_embedding() {
    let (a, b) = (Logged::new().await, Logged::new().await);
    let first = tagged("deploys go out on tuesdays", "ops,release")
        .with_memory_type("note")
        .unwrap()
        .with_metadata(Metadata::parse(r#"{"k":[1,2]}"#).unwrap())
        .with_created_at(at(10));
    a.store.store(first).await.unwrap();
    a.store
        .store(memory("the cat is called zazie"))
        .await
        .unwrap();
    a.store.store(memory("short lived")).await.unwrap();
    a.store
        .update_memory_metadata(
            &h("the cat is called zazie"),
            MemoryUpdate {
                tags: Some(tags("pets")),
                ..MemoryUpdate::default()
            },
            true,
        )
        .await
        .unwrap();
    a.store.delete(&h("short lived")).await.unwrap();
    let page = push(&a, 0).await;
    let embeds = b.embedder.calls();

    let report = b.store.apply_remote(page.clone(), 5).await.unwrap();
    // "short lived" was deleted before the push: its store carries no content, and is
    // applied with its delete (a tombstone), not reported as unresolved.
    assert!(page[2].content.is_none());
    assert_eq!(
        report,
        ApplyReport {
            applied: 4,
            ..ApplyReport::default()
        }
    );
    assert_eq!(b.embedder.calls(), embeds, "B embedded what A had embedded");
    assert_eq!(
        b.outbox_rows(),
        0,
        "pulled changes were recorded as B's own"
    );
    let all = [
        h("deploys go out on tuesdays"),
        h("the cat is called zazie"),
        h("short lived"),
    ];
    for hash in &all[..2] {
        let (ma, mb) = (
            a.store.get_by_hash(hash).await.unwrap().unwrap(),
            b.store.get_by_hash(hash).await.unwrap().unwrap(),
        );
        assert_eq!(mb, ma);
        assert_eq!(
            (mb.created_at, mb.updated_at),
            (ma.created_at, ma.updated_at)
        );
        let (va, vb) = (
            a.store.get_embedding(hash).await.unwrap().unwrap(),
            b.store.get_embedding(hash).await.unwrap().unwrap(),
        );
        assert_eq!(bits(&vb), bits(&va));
    }
    assert!(b.store.get_by_hash(&all[2]).await.unwrap().is_none());
    assert_eq!(replicas(&b, &all).await, replicas(&a, &all).await);
    // The index follows: B finds the memory by meaning, and by tag.
    assert_eq!(b.store.indexed_vectors(), 2);
    let hits = b.store.retrieve("when do deploys go out", 1).await.unwrap();
    assert_eq!(hits[0].memory.content(), "deploys go out on tuesdays");
    let pets = b
        .store
        .list(&memory_storage::ListQuery::all(MemoryFilter {
            tags: Some(TagFilter::any(tags("pets"))),
            ..MemoryFilter::default()
        }))
        .await
        .unwrap();
    assert_eq!(contents(&pets), ["the cat is called zazie"]);

    // The same page again changes nothing.
    let seq_before = b
        .raw()
        .query_row("SELECT value FROM meta WHERE key = 'seq'", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    let again = b.store.apply_remote(page, 5).await.unwrap();
    assert_eq!((again.applied, again.ignored), (0, 5));
    let seq_after = b
        .raw()
        .query_row("SELECT value FROM meta WHERE key = 'seq'", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    assert_eq!(seq_after, seq_before);
    assert_eq!(replicas(&b, &all).await, replicas(&a, &all).await);
}

/// Gives `b` everything of `a` (and nothing back): B's outbox stays empty.
async fn share(a: &Logged, b: &Logged) {
    let page = push(a, 0).await;
    apply(b, page).await;
}

#[tokio::test]
async fn a_concurrent_update_on_both_devices_resolves_the_same_on_both() {
    let (a, b) = (Logged::new().await, Logged::new().await);
    a.store.store(tagged("shared", "start")).await.unwrap();
    share(&a, &b).await;
    let a_seen = last_seq(&a).await;
    let retag = |t: &'static str| MemoryUpdate {
        tags: Some(tags(t)),
        ..MemoryUpdate::default()
    };
    a.store
        .update_memory_metadata(&h("shared"), retag("from-a"), true)
        .await
        .unwrap();
    b.store
        .update_memory_metadata(&h("shared"), retag("from-b"), true)
        .await
        .unwrap();
    let (from_a, from_b) = (push(&a, a_seen).await, push(&b, 0).await);
    let later = if from_a[0].change.at() > from_b[0].change.at() {
        "from-a"
    } else {
        "from-b"
    };
    apply(&b, from_a).await;
    apply(&a, from_b).await;
    let (ra, rb) = (
        replicas(&a, &[h("shared")]).await,
        replicas(&b, &[h("shared")]).await,
    );
    assert_eq!(ra, rb);
    assert_eq!(
        ra[0].as_ref().unwrap().state.live_fields().unwrap().tags,
        tags(later)
    );
    for l in [&a, &b] {
        let m = l.store.get_by_hash(&h("shared")).await.unwrap().unwrap();
        assert_eq!(m.tags, tags(later));
    }
}

#[tokio::test]
async fn a_delete_beats_a_concurrent_update() {
    let (a, b) = (Logged::new().await, Logged::new().await);
    a.store.store(memory("contested")).await.unwrap();
    share(&a, &b).await;
    let a_seen = last_seq(&a).await;
    a.store.delete(&h("contested")).await.unwrap();
    // B's update is stamped after A's delete: it still does not revive the memory.
    b.store
        .update_memory_metadata(
            &h("contested"),
            MemoryUpdate {
                tags: Some(tags("late")),
                ..MemoryUpdate::default()
            },
            true,
        )
        .await
        .unwrap();
    let (from_a, from_b) = (push(&a, a_seen).await, push(&b, 0).await);
    let deleted_ms = from_a[0].change.at().millis;
    apply(&b, from_a).await;
    apply(&a, from_b).await;
    // A pulled delete takes the delete's time, not the time it arrived.
    let deleted_at: f64 = b
        .raw()
        .query_row("SELECT deleted_at FROM memories", [], |r| r.get(0))
        .unwrap();
    assert_eq!(deleted_at, deleted_ms as f64 / 1000.0);
    let (ra, rb) = (
        replicas(&a, &[h("contested")]).await,
        replicas(&b, &[h("contested")]).await,
    );
    assert_eq!(ra, rb);
    assert!(!ra[0].as_ref().unwrap().is_live());
    for l in [&a, &b] {
        assert!(
            l.store
                .get_by_hash(&h("contested"))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(l.store.indexed_vectors(), 0);
    }
}

#[tokio::test]
async fn a_delete_of_an_unknown_memory_keeps_older_stores_out_but_not_newer_ones() {
    let b = Logged::new().await;
    let t = 1_700_000_000_000;
    let delete = SyncedChange::bare(Change::Delete {
        hash: h("never seen"),
        at: stamp(t),
    });
    assert_eq!(apply(&b, vec![delete]).await.applied, 1);
    assert_eq!(
        b.store.sync_hashes(None, 10).await.unwrap(),
        [(h("never seen"), false)]
    );
    // The older store's fields are kept (invisible): the memory stays deleted.
    apply(&b, vec![remote_store(&b, "never seen", stamp(t - 1))]).await;
    assert!(
        b.store
            .get_by_hash(&h("never seen"))
            .await
            .unwrap()
            .is_none()
    );
    let newer = apply(&b, vec![remote_store(&b, "never seen", stamp(t + 1))]).await;
    assert_eq!(newer.applied, 1);
    assert!(
        b.store
            .get_by_hash(&h("never seen"))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        b.store.sync_hashes(None, 10).await.unwrap(),
        [(h("never seen"), true)]
    );
}

#[tokio::test]
async fn a_tombstone_keeps_the_fields_of_an_update_for_a_later_store_older_than_it() {
    let b = Logged::new().await;
    let t = 1_700_000_000_000;
    let updated = memory("kept fields").with_tags(tags("from-update"));
    let page = vec![
        SyncedChange::bare(Change::Delete {
            hash: h("kept fields"),
            at: stamp(t),
        }),
        SyncedChange::bare(Change::Update {
            hash: h("kept fields"),
            fields: fields_of(&updated),
            at: stamp(t + 3),
        }),
    ];
    assert_eq!(apply(&b, page).await.applied, 2);
    // Newer than the delete (revives), older than the update (its fields lose).
    apply(&b, vec![remote_store(&b, "kept fields", stamp(t + 2))]).await;
    let got = b
        .store
        .get_by_hash(&h("kept fields"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.tags, tags("from-update"));
}

#[tokio::test]
async fn a_purged_tombstone_still_keeps_an_older_store_out() {
    let b = Logged::new().await;
    b.store.store(memory("purged")).await.unwrap();
    b.store.delete(&h("purged")).await.unwrap();
    let deleted_at = b.changes().await[1].at();
    assert_eq!(b.store.purge_deleted(None).await.unwrap(), 1);
    let older = Hlc {
        millis: deleted_at.millis - 1,
        ..stamp(0)
    };
    apply(&b, vec![remote_store(&b, "purged", older)]).await;
    assert!(b.store.get_by_hash(&h("purged")).await.unwrap().is_none());
    let r = replicas(&b, &[h("purged")]).await;
    assert_eq!(
        r[0].as_ref().unwrap().state.life.as_ref().unwrap().at,
        deleted_at
    );
    // A local store again is newer than the tombstone, which goes.
    b.store.store(memory("purged")).await.unwrap();
    let tombstones: i64 = b
        .raw()
        .query_row("SELECT COUNT(*) FROM sync_tombstones", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tombstones, 0);
}

#[tokio::test]
async fn an_update_of_a_memory_this_device_never_got_is_unresolved_not_invented() {
    let b = Logged::new().await;
    let m = memory("elsewhere");
    let update = SyncedChange::bare(Change::Update {
        hash: h("elsewhere"),
        fields: fields_of(&m),
        at: stamp(1_700_000_000_000),
    });
    let mut store_without_content = remote_store(&b, "elsewhere too", stamp(1_700_000_000_001));
    store_without_content.content = None;
    let report = apply(&b, vec![update, store_without_content]).await;
    assert_eq!(report.unresolved, [h("elsewhere")]);
    assert_eq!(report.applied, 0);
    // The store without content is kept (as a tombstone at its stamp, see the next test),
    // the update of a memory never received is not.
    assert_eq!(
        b.store.sync_hashes(None, 10).await.unwrap(),
        [(h("elsewhere too"), false)]
    );
    // Its store later in the same page resolves it, with the (newer) update's fields.
    let newer = m.clone().with_tags(tags("updated"));
    let update = SyncedChange::bare(Change::Update {
        hash: h("elsewhere"),
        fields: fields_of(&newer),
        at: stamp(1_700_000_000_005),
    });
    let store = remote_store(&b, "elsewhere", stamp(1_700_000_000_002));
    let report = apply(&b, vec![update, store]).await;
    assert_eq!((report.applied, report.unresolved.len()), (1, 0));
    let got = b.store.get_by_hash(&h("elsewhere")).await.unwrap().unwrap();
    assert_eq!(got.tags, tags("updated"));
}

#[tokio::test]
async fn a_store_without_a_vector_is_embedded_once_and_a_bad_change_does_not_fail_the_page() {
    let b = Logged::new().await;
    let t = 1_700_000_000_000;
    let mut no_vector = remote_store(&b, "needs a vector", stamp(t));
    no_vector.vector = None;
    let mut wrong_content = remote_store(&b, "claimed text", stamp(t + 1));
    wrong_content.content = Some("other text".into());
    let mut wrong_size = remote_store(&b, "wrong size", stamp(t + 2));
    wrong_size.vector = Some(vec![1.0; DIMS + 1]);
    let good = remote_store(&b, "fine", stamp(t + 3));
    let calls = b.embedder.calls();
    let report = b
        .store
        .apply_remote(vec![no_vector, wrong_content, wrong_size, good], 9)
        .await
        .unwrap();
    assert_eq!((report.applied, report.embedded), (2, 1));
    assert_eq!(b.embedder.calls(), calls + 1);
    let rejected: Vec<&ContentHash> = report.rejected.iter().map(|(h, _)| h).collect();
    assert_eq!(rejected, [&h("claimed text"), &h("wrong size")]);
    assert!(report.rejected[0].1.contains("hashes to"), "{report:?}");
    assert_eq!(b.store.pull_cursor().await.unwrap(), 9);
    assert_eq!(
        bits(
            &b.store
                .get_embedding(&h("needs a vector"))
                .await
                .unwrap()
                .unwrap()
        ),
        bits(&b.embedder.vector("needs a vector"))
    );
}

#[tokio::test]
async fn the_pull_cursor_is_kept_across_reopening() {
    let b = Logged::new().await;
    assert_eq!(b.store.pull_cursor().await.unwrap(), 0);
    b.store.apply_remote(Vec::new(), 42).await.unwrap();
    assert_eq!(b.second().await.pull_cursor().await.unwrap(), 42);
}

#[tokio::test]
async fn pulled_stamps_move_the_clock_unless_too_far_ahead() {
    let b = Logged::new().await;
    let now = u64::try_from(Timestamp::now().epoch_micros() / 1000).unwrap();
    let hour_ahead = stamp(now + 3_600_000);
    let report = apply(&b, vec![remote_store(&b, "from the future", hour_ahead)]).await;
    assert_eq!((report.applied, report.clock_skewed), (1, 0));
    b.store.store(memory("after it")).await.unwrap();
    assert!(b.changes().await[0].at() > hour_ahead);

    let far = stamp(now + 2 * MAX_DRIFT_MS);
    let report = apply(&b, vec![remote_store(&b, "much later", far)]).await;
    assert_eq!((report.applied, report.clock_skewed), (1, 1));
    assert!(
        b.store
            .get_by_hash(&h("much later"))
            .await
            .unwrap()
            .is_some()
    );
    b.store.store(memory("still now")).await.unwrap();
    assert!(b.changes().await[1].at() < far);
}

#[tokio::test]
async fn memories_written_before_the_log_was_on_are_pushed_once() {
    let dir = tempfile::tempdir().unwrap();
    let embedder = WordsEmbedder::new(DIMS);
    {
        let plain = SqliteStorage::open(dir.path().join("m.db"), embedder.clone())
            .await
            .unwrap();
        for text in ["old one", "old two", "old gone"] {
            plain.store(memory(text)).await.unwrap();
        }
        plain.delete(&h("old gone")).await.unwrap();
    }
    let logged = Logged::open_at(&dir, &embedder).await;
    let pending = logged.pending_changes(0, 10).await.unwrap();
    let stored: Vec<ContentHash> = pending
        .iter()
        .map(|e| {
            assert!(matches!(e.change, Change::Store { .. }));
            e.change.hash().clone()
        })
        .collect();
    assert_eq!(stored, [h("old one"), h("old two")]);
    let again = Logged::open_at(&dir, &embedder).await;
    assert_eq!(again.pending_changes(0, 10).await.unwrap().len(), 2);
    let r = again
        .replicas(&[h("old one"), h("old gone")])
        .await
        .unwrap();
    assert_eq!(
        r[0].as_ref().unwrap().state.latest(),
        Some(pending[0].change.at())
    );
    assert!(
        r[1].is_none(),
        "a memory deleted before the log is unknown to sync"
    );
}

#[tokio::test]
async fn sync_hashes_page_through_rows_and_tombstones_in_hash_order() {
    let b = Logged::new().await;
    for text in ["p1", "p2", "p3"] {
        b.store.store(memory(text)).await.unwrap();
    }
    b.store.delete(&h("p2")).await.unwrap();
    apply(
        &b,
        vec![SyncedChange::bare(Change::Delete {
            hash: h("p4"),
            at: stamp(1),
        })],
    )
    .await;
    let mut expected = vec![
        (h("p1"), true),
        (h("p2"), false),
        (h("p3"), true),
        (h("p4"), false),
    ];
    expected.sort_by(|x, y| x.0.as_str().cmp(y.0.as_str()));
    let first = b.store.sync_hashes(None, 3).await.unwrap();
    let rest = b.store.sync_hashes(Some(&first[2].0), 3).await.unwrap();
    assert_eq!([first, rest].concat(), expected);
}

#[tokio::test]
async fn sync_meta_keeps_the_engines_keys_and_refuses_the_stores() {
    let b = Logged::new().await;
    assert_eq!(b.store.sync_meta("sync_state").await.unwrap(), None);
    b.store
        .set_sync_meta("sync_state", Some("v1"))
        .await
        .unwrap();
    assert_eq!(
        b.store.sync_meta("sync_state").await.unwrap().as_deref(),
        Some("v1")
    );
    b.store.set_sync_meta("sync_state", None).await.unwrap();
    assert_eq!(b.store.sync_meta("sync_state").await.unwrap(), None);
    for key in ["seq", "sync_device_id", "sync_last_hlc", "sync_pull_cursor"] {
        let err = b.store.set_sync_meta(key, Some("x")).await.unwrap_err();
        assert!(matches!(err, StorageError::InvalidInput { .. }), "{err}");
        assert!(err.to_string().contains(key), "{err}");
    }
}

#[tokio::test]
async fn with_the_log_off_applying_is_refused() {
    let f = Fixture::new().await;
    let err = f.store.apply_remote(Vec::new(), 1).await.unwrap_err();
    assert!(err.to_string().contains("change_log(true)"), "{err}");
}

/// A small deterministic generator (no extra dependency for one test).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

const TEXTS: [&str; 3] = ["alpha memory", "beta memory", "gamma memory"];

/// Random local writes on one device: stores, re-tags and deletes of a few texts.
async fn random_writes(l: &Logged, rng: &mut Lcg) {
    for _ in 0..8 {
        let text = TEXTS[rng.below(TEXTS.len())];
        let tag = ["x", "y", "z"][rng.below(3)];
        match rng.below(3) {
            0 => drop(l.store.store(tagged(text, tag)).await.unwrap()),
            1 => drop(
                l.store
                    .update_memory_metadata(
                        &h(text),
                        MemoryUpdate {
                            tags: Some(tags(tag)),
                            ..MemoryUpdate::default()
                        },
                        true,
                    )
                    .await,
            ),
            _ => drop(l.store.delete(&h(text)).await),
        }
    }
}

/// Every change `l` recorded, each store carrying its content and vector as a push right
/// after the write would have.
async fn pushed_at_once(l: &Logged) -> Vec<SyncedChange> {
    l.changes()
        .await
        .into_iter()
        .map(|change| {
            let mut synced = SyncedChange::bare(change);
            if let Change::Store { hash, .. } = &synced.change {
                let text = TEXTS.into_iter().find(|t| h(t) == *hash).unwrap();
                synced.content = Some(text.to_owned());
                synced.vector = Some(l.embedder.vector(text));
            }
            synced
        })
        .collect()
}

/// A random interleaving of two devices' changes, each device's in its own order (as the
/// remote log holds them).
fn interleave(rng: &mut Lcg, a: &[SyncedChange], b: &[SyncedChange]) -> Vec<SyncedChange> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if j == b.len() || (i < a.len() && rng.below(2) == 0) {
            out.push(a[i].clone());
            i += 1;
        } else {
            out.push(b[j].clone());
            j += 1;
        }
    }
    out
}

#[tokio::test]
async fn devices_converge_whatever_the_interleaving_of_two_devices_changes() {
    let hashes: Vec<ContentHash> = TEXTS.iter().map(|t| h(t)).collect();
    for seed in 0..12 {
        let mut rng = Lcg(seed);
        let (a, b) = (Logged::new().await, Logged::new().await);
        random_writes(&a, &mut rng).await;
        random_writes(&b, &mut rng).await;
        let (from_a, from_b) = (pushed_at_once(&a).await, pushed_at_once(&b).await);
        // The reference: memory_sync's merge of everything.
        let expected: Vec<Option<memory_sync::MemoryState>> = hashes
            .iter()
            .map(|hash| {
                from_a
                    .iter()
                    .chain(&from_b)
                    .filter(|c| c.change.hash() == hash)
                    .fold(None, |s: Option<memory_sync::MemoryState>, c| {
                        Some(match s {
                            Some(s) => s.apply(&c.change),
                            None => memory_sync::MemoryState::of(&c.change),
                        })
                    })
            })
            .collect();
        let (c, d) = (Logged::new().await, Logged::new().await);
        apply(&c, interleave(&mut rng, &from_a, &from_b)).await;
        // D gets the page twice, in another order, the second time reversed per device.
        apply(&d, interleave(&mut rng, &from_a, &from_b)).await;
        apply(&d, [from_b.clone(), from_a.clone()].concat()).await;
        apply(&a, from_b.clone()).await;
        apply(&b, from_a.clone()).await;
        let reference = replicas(&c, &hashes).await;
        let states: Vec<_> = reference
            .iter()
            .map(|r| r.as_ref().map(|r| r.state.clone()))
            .collect();
        assert_eq!(states, expected, "seed {seed}");
        for other in [&d, &a, &b] {
            assert_eq!(replicas(other, &hashes).await, reference, "seed {seed}");
        }
        for r in reference.iter().flatten() {
            assert_eq!(r.is_live(), r.content.is_some(), "seed {seed}");
        }
    }
}

#[tokio::test]
async fn a_rekeyed_memorys_old_hash_is_known_as_deleted_and_its_new_one_as_live() {
    let l = Logged::new().await;
    l.store.store(tagged("rekey me", "t")).await.unwrap();
    let stale = ContentHash::of("stale");
    l.rekey_behind_the_back(&h("rekey me"), &stale);
    l.store.repair().await.unwrap();
    let r = replicas(&l, &[stale.clone(), h("rekey me")]).await;
    let (old, new) = (r[0].as_ref().unwrap(), r[1].as_ref().unwrap());
    assert!(!old.is_live() && new.is_live(), "{r:?}");
    let changes = l.changes().await;
    assert_eq!(old.state.life.as_ref().unwrap().at, changes[1].at());
    assert_eq!(new.state.latest(), Some(changes[2].at()));
    assert_eq!(new.content.as_deref(), Some("rekey me"));
}

#[tokio::test]
async fn a_store_without_content_in_one_page_keeps_its_fields_for_its_delete_in_a_later_one() {
    // Device X stored a memory, deleted it, then pushed: its Store travels without content
    // and its Delete follows, here in a later page; a third device's older store with
    // content arrives last. Every device must end with X's fields (the latest) and X's
    // delete, as the fold of the three changes says.
    let b = Logged::new().await;
    let t = 1_700_000_000_000;
    let mut x_store = remote_store(&b, "short-lived", stamp(t + 2));
    x_store.content = None;
    x_store.vector = None;
    let Change::Store {
        fields: x_fields, ..
    } = &x_store.change
    else {
        unreachable!()
    };
    let x_fields = x_fields.clone();
    let report = apply(&b, vec![x_store]).await;
    assert!(report.unresolved.is_empty(), "{report:?}");
    apply(
        &b,
        vec![SyncedChange::bare(Change::Delete {
            hash: h("short-lived"),
            at: stamp(t + 4),
        })],
    )
    .await;
    let mut older = remote_store(&b, "short-lived", stamp(t + 1));
    if let Change::Store { fields, .. } = &mut older.change {
        fields.tags = tags("older");
    }
    apply(&b, vec![older]).await;
    let r = replicas(&b, &[h("short-lived")]).await;
    let state = &r[0].as_ref().unwrap().state;
    assert_eq!(state.life.as_ref().unwrap().at, stamp(t + 4), "{state:?}");
    assert_eq!(
        state.life.as_ref().unwrap().value,
        memory_sync::Life::Deleted
    );
    let fields = state.fields.as_ref().unwrap();
    assert_eq!((fields.at, &fields.value), (stamp(t + 2), &x_fields));
}
