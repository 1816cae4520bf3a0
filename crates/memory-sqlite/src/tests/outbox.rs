//! The change log: which changes each write records, that they share its transaction, the
//! clock across reopening and processes, paging and acks, and the log off.

use memory_storage::{DeleteRequest, DeleteSelector};
use memory_sync::{Change, Hlc};

use super::*;
use crate::outbox::fields_of;

/// A store with the change log on, in its own directory (one device, to the sync tests).
pub(super) struct Logged {
    pub(super) dir: TempDir,
    pub(super) embedder: Arc<WordsEmbedder>,
    pub(super) store: SqliteStorage,
}

impl Logged {
    pub(super) async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let embedder = WordsEmbedder::new(DIMS);
        let store = Self::open_at(&dir, &embedder).await;
        Self {
            dir,
            embedder,
            store,
        }
    }

    pub(super) async fn open_at(dir: &TempDir, embedder: &Arc<WordsEmbedder>) -> SqliteStorage {
        SqliteConfig::new(dir.path().join("m.db"))
            .change_log(true)
            .open(embedder.clone())
            .await
            .unwrap()
    }

    /// Another store on the same file with the log on, as a second process would open it.
    pub(super) async fn second(&self) -> SqliteStorage {
        Self::open_at(&self.dir, &self.embedder).await
    }

    /// Every pending change, oldest first.
    pub(super) async fn changes(&self) -> Vec<Change> {
        self.store
            .pending_changes(0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.change)
            .collect()
    }

    pub(super) fn raw(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.store.path()).unwrap()
    }

    /// Moves the row of `from` to the hash `to` behind the store's back (a stale or legacy
    /// hash, as older versions or other tools leave them).
    pub(super) fn rekey_behind_the_back(&self, from: &ContentHash, to: &ContentHash) {
        self.raw()
            .execute(
                "UPDATE memories SET content_hash = ?2 WHERE content_hash = ?1",
                [from.as_str(), to.as_str()],
            )
            .unwrap();
    }

    pub(super) fn outbox_rows(&self) -> i64 {
        self.raw()
            .query_row("SELECT COUNT(*) FROM sync_outbox", [], |r| r.get(0))
            .unwrap()
    }
}

/// `(kind, hash)` of each change, for compact comparisons.
fn kinds(changes: &[Change]) -> Vec<(&'static str, ContentHash)> {
    changes
        .iter()
        .map(|c| {
            let kind = match c {
                Change::Store { .. } => "store",
                Change::Update { .. } => "update",
                Change::Delete { .. } => "delete",
            };
            (kind, c.hash().clone())
        })
        .collect()
}

pub(super) fn h(text: &str) -> ContentHash {
    ContentHash::of(text)
}

fn fields(c: &Change) -> &memory_sync::Fields {
    match c {
        Change::Store { fields, .. } | Change::Update { fields, .. } => fields,
        Change::Delete { .. } => panic!("a delete has no fields"),
    }
}

#[tokio::test]
async fn a_store_records_its_fields_and_a_duplicate_records_nothing() {
    let l = Logged::new().await;
    let m = tagged("deploys go out on tuesdays", "ops,release")
        .with_memory_type("note")
        .unwrap()
        .with_created_at(at(10));
    l.store.store(m.clone()).await.unwrap();
    let dup = l.store.store(m.clone()).await.unwrap();
    assert_eq!(dup, StoreOutcome::Duplicate);
    let changes = l.changes().await;
    assert_eq!(kinds(&changes), [("store", m.content_hash().clone())]);
    let stored = l
        .store
        .get_by_hash(m.content_hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fields(&changes[0]), &fields_of(&stored));
    assert_eq!(fields(&changes[0]).tags, tags("ops,release"));
    assert_eq!(Some(changes[0].at().device), l.store.device_id());
    // The row's columns agree with the JSON.
    let (hlc, hash, kind): (String, String, String) = l
        .raw()
        .query_row("SELECT hlc, content_hash, kind FROM sync_outbox", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(hlc.parse::<Hlc>().unwrap(), changes[0].at());
    assert_eq!(
        (hash.as_str(), kind.as_str()),
        (m.content_hash().as_str(), "store")
    );
}

#[tokio::test]
async fn a_revive_records_a_store_with_the_new_fields_after_the_delete() {
    let l = Logged::new().await;
    l.store.store(tagged("short lived", "old")).await.unwrap();
    l.store.delete(&h("short lived")).await.unwrap();
    let outcome = l.store.store(tagged("short lived", "new")).await.unwrap();
    assert_eq!(outcome, StoreOutcome::Revived);
    let changes = l.changes().await;
    assert_eq!(
        kinds(&changes),
        [
            ("store", h("short lived")),
            ("delete", h("short lived")),
            ("store", h("short lived"))
        ]
    );
    assert_eq!(fields(&changes[2]).tags, tags("new"));
    assert!(changes[0].at() < changes[1].at() && changes[1].at() < changes[2].at());
}

#[tokio::test]
async fn a_batch_records_one_store_per_stored_item_only() {
    let l = Logged::new().await;
    l.store.store(memory("already here")).await.unwrap();
    let bad = memory("wrong size").with_embedding(vec![1.0; DIMS + 1]);
    let results = l
        .store
        .store_batch(vec![
            memory("first"),
            memory("already here"),
            bad,
            memory("second"),
            memory("first"),
        ])
        .await
        .unwrap();
    assert!(results[2].is_err(), "{results:?}");
    let changes = l.changes().await;
    assert_eq!(
        kinds(&changes),
        [
            ("store", h("already here")),
            ("store", h("first")),
            ("store", h("second"))
        ]
    );
}

#[tokio::test]
async fn an_update_records_the_fields_after_it_and_a_missing_memory_records_nothing() {
    let l = Logged::new().await;
    l.store.store(tagged("to update", "a")).await.unwrap();
    let updated = l
        .store
        .update_memory_metadata(
            &h("to update"),
            MemoryUpdate {
                tags: Some(tags("b,c")),
                memory_type: Some(Some("fact".into())),
                metadata: Some(Metadata::parse(r#"{"k":1}"#).unwrap()),
                ..MemoryUpdate::default()
            },
            true,
        )
        .await
        .unwrap();
    let missing = l
        .store
        .update_memory_metadata(&h("nothing"), MemoryUpdate::default(), true)
        .await;
    assert!(
        matches!(missing, Err(StorageError::NotFound { .. })),
        "{missing:?}"
    );
    let changes = l.changes().await;
    assert_eq!(
        kinds(&changes),
        [("store", h("to update")), ("update", h("to update"))]
    );
    assert_eq!(fields(&changes[1]), &fields_of(&updated));
    assert_eq!(fields(&changes[1]).memory_type.as_deref(), Some("fact"));
}

#[tokio::test]
async fn deletes_record_one_delete_per_memory_and_failures_or_dry_runs_record_nothing() {
    let l = Logged::new().await;
    for (text, t, secs) in [
        ("one", "x", 1),
        ("two", "x", 2),
        ("three", "y", 3),
        ("four", "z", 4),
    ] {
        l.store
            .store(tagged(text, t).with_created_at(at(secs)))
            .await
            .unwrap();
    }
    let before = l.changes().await.len();
    l.store.delete(&h("four")).await.unwrap();
    assert!(matches!(
        l.store.delete(&h("four")).await,
        Err(StorageError::NotFound { .. })
    ));
    let by_tag = DeleteSelector {
        tags: Some(TagFilter::any(tags("x"))),
        ..DeleteSelector::default()
    };
    let dry = l
        .store
        .delete_memories(&DeleteRequest {
            selector: by_tag.clone(),
            dry_run: true,
        })
        .await
        .unwrap();
    assert_eq!(dry.hashes.len(), 2);
    assert!(
        l.store
            .delete_memories(&DeleteRequest {
                selector: DeleteSelector::default(),
                dry_run: false,
            })
            .await
            .is_err()
    );
    l.store
        .delete_memories(&DeleteRequest {
            selector: by_tag,
            dry_run: false,
        })
        .await
        .unwrap();
    l.store
        .delete_memories(&DeleteRequest {
            selector: DeleteSelector {
                after: Some(at(3)),
                ..DeleteSelector::default()
            },
            dry_run: false,
        })
        .await
        .unwrap();
    let changes = l.changes().await;
    assert_eq!(
        kinds(&changes[before..]),
        [
            ("delete", h("four")),
            ("delete", h("two")),
            ("delete", h("one")),
            ("delete", h("three"))
        ]
    );
}

#[tokio::test]
async fn cleanup_records_the_removed_hashes_and_the_merged_keeper() {
    let l = Logged::new().await;
    let legacy = ContentHash::of("legacy rule output");
    l.store
        .store(tagged("Hello World", "a").with_created_at(at(1)))
        .await
        .unwrap();
    l.rekey_behind_the_back(&h("hello world"), &legacy);
    l.store
        .store(tagged("hello world", "b").with_created_at(at(2)))
        .await
        .unwrap();
    let before = l.changes().await.len();
    l.store.cleanup_duplicates().await.unwrap();
    let changes = l.changes().await;
    // The newer duplicate held today's hash, which the keeper takes: no Delete of it, the
    // keeper's legacy hash goes and its merged row arrives under today's hash.
    assert_eq!(
        kinds(&changes[before..]),
        [("delete", legacy), ("store", h("hello world"))]
    );
    let kept = l
        .store
        .get_by_hash(&h("hello world"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fields(&changes[before + 1]), &fields_of(&kept));
    assert_eq!(kept.tags, tags("a,b"));
    // Nothing to clean: nothing recorded.
    l.store.cleanup_duplicates().await.unwrap();
    assert_eq!(l.changes().await.len(), changes.len());
}

#[tokio::test]
async fn cleanup_without_a_rekey_records_deletes_and_an_update_of_the_keeper() {
    let l = Logged::new().await;
    // Two rows of one text: the older (the keeper) under today's hash, the newer under a
    // stale one, so the keeper is only re-tagged, not re-keyed.
    l.store
        .store(tagged("same text", "a").with_created_at(at(1)))
        .await
        .unwrap();
    l.store
        .store(tagged("other text", "b").with_created_at(at(2)))
        .await
        .unwrap();
    let stale = ContentHash::of("stale");
    // The second row now holds the first one's text under a stale hash.
    l.raw()
        .execute(
            "UPDATE memories SET content = 'same text', content_hash = ?2 WHERE content_hash = ?1",
            [h("other text").as_str(), stale.as_str()],
        )
        .unwrap();
    let before = l.changes().await.len();
    l.store.cleanup_duplicates().await.unwrap();
    let changes = l.changes().await;
    assert_eq!(
        kinds(&changes[before..]),
        [("delete", stale), ("update", h("same text"))]
    );
    assert_eq!(fields(&changes[before + 1]).tags, tags("a,b"));
}

#[tokio::test]
async fn purging_tombstones_keeps_their_unpushed_deletes() {
    let l = Logged::new().await;
    l.store.store(memory("gone soon")).await.unwrap();
    l.store.delete(&h("gone soon")).await.unwrap();
    assert_eq!(l.store.purge_deleted(None).await.unwrap(), 1);
    assert_eq!(
        kinds(&l.changes().await),
        [("store", h("gone soon")), ("delete", h("gone soon"))]
    );
}

#[tokio::test]
async fn the_change_and_its_outbox_row_commit_together_or_not_at_all() {
    let l = Logged::new().await;
    // Fails the transaction after both the memory row and its outbox row are written: the
    // stamp is the last thing a recorded change writes.
    l.raw()
        .execute_batch(
            "CREATE TRIGGER fail_stamp BEFORE INSERT ON meta WHEN NEW.key = 'sync_last_hlc' \
             BEGIN SELECT RAISE(ABORT, 'forced failure'); END;",
        )
        .unwrap();
    let err = l.store.store(memory("never stored")).await.unwrap_err();
    assert!(err.to_string().contains("storing a memory"), "{err}");
    assert!(
        l.store
            .get_by_hash(&h("never stored"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(l.outbox_rows(), 0);
    l.raw().execute_batch("DROP TRIGGER fail_stamp").unwrap();
    l.store.store(memory("stored")).await.unwrap();
    assert_eq!(kinds(&l.changes().await), [("store", h("stored"))]);
}

#[tokio::test]
async fn stamps_keep_growing_across_reopening_and_processes() {
    let l = Logged::new().await;
    let device = l.store.device_id().unwrap();
    l.store.store(memory("before")).await.unwrap();
    let first = l.changes().await[0].at();
    let seqs = l.store.pending_changes(0, 10).await.unwrap();
    l.store.ack_changes(seqs[0].seq).await.unwrap();
    // A stamp far ahead of the wall clock (as if this machine's clock went back a week
    // since): the restored clock continues after it.
    let ahead = Hlc {
        millis: first.millis + 7 * 24 * 3_600_000,
        counter: 5,
        device,
    };
    l.raw()
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'sync_last_hlc'",
            [ahead.to_string()],
        )
        .unwrap();
    let reopened = l.second().await;
    assert_eq!(reopened.device_id(), Some(device));
    reopened.store(memory("after")).await.unwrap();
    // The first store, still open, reads the stamp the other wrote before its own.
    l.store.store(memory("from the first")).await.unwrap();
    reopened.store(memory("from the second")).await.unwrap();
    let changes = l.changes().await;
    assert_eq!(changes.len(), 3);
    assert!(changes[0].at() > ahead, "{} after {ahead}", changes[0].at());
    assert!(
        changes.windows(2).all(|w| w[0].at() < w[1].at()),
        "{changes:?}"
    );
    assert!(changes.iter().all(|c| c.at().device == device));
}

#[tokio::test]
async fn pages_follow_seq_order_and_acks_are_idempotent() {
    let l = Logged::new().await;
    for text in ["a1", "a2", "a3", "a4", "a5"] {
        l.store.store(memory(text)).await.unwrap();
    }
    let page1 = l.store.pending_changes(0, 2).await.unwrap();
    let page2 = l.store.pending_changes(page1[1].seq, 2).await.unwrap();
    let page3 = l.store.pending_changes(page2[1].seq, 2).await.unwrap();
    let hashes: Vec<ContentHash> = [&page1, &page2, &page3]
        .into_iter()
        .flatten()
        .map(|e| e.change.hash().clone())
        .collect();
    assert_eq!(hashes, ["a1", "a2", "a3", "a4", "a5"].map(h));
    assert!(page1[0].seq < page1[1].seq && page1[1].seq < page2[0].seq);
    let other = l.second().await;
    assert_eq!(other.ack_changes(page1[1].seq).await.unwrap(), 2);
    assert_eq!(l.store.ack_changes(page1[1].seq).await.unwrap(), 0);
    assert_eq!(l.store.ack_changes(0).await.unwrap(), 0);
    let rest = l.store.pending_changes(0, 10).await.unwrap();
    assert_eq!(rest.len(), 3);
    assert_eq!(rest[0].seq, page2[0].seq);
    // Acking everything, then writing: the new row's seq is past every acked one.
    l.store.ack_changes(u64::MAX).await.unwrap();
    l.store.store(memory("a6")).await.unwrap();
    let next = l.store.pending_changes(0, 10).await.unwrap();
    assert!(next[0].seq > page3.last().unwrap().seq);
}

#[tokio::test]
async fn with_the_log_off_nothing_is_recorded() {
    let f = Fixture::new().await;
    assert_eq!(f.store.device_id(), None);
    f.store.store(tagged("quiet", "a")).await.unwrap();
    f.store
        .update_memory_metadata(
            &h("quiet"),
            MemoryUpdate {
                tags: Some(tags("b")),
                ..MemoryUpdate::default()
            },
            true,
        )
        .await
        .unwrap();
    f.store.delete(&h("quiet")).await.unwrap();
    let conn = rusqlite::Connection::open(f.store.path()).unwrap();
    let (rows, meta): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM sync_outbox), \
             (SELECT COUNT(*) FROM meta WHERE key LIKE 'sync_%')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((rows, meta), (0, 0));
    assert!(f.store.pending_changes(0, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn repair_records_a_rekeyed_memory_as_a_delete_and_a_store() {
    let l = Logged::new().await;
    l.store.store(tagged("rekey me", "t")).await.unwrap();
    let stale = ContentHash::of("stale");
    l.rekey_behind_the_back(&h("rekey me"), &stale);
    let before = l.changes().await.len();
    l.store.repair().await.unwrap();
    let changes = l.changes().await;
    assert_eq!(
        kinds(&changes[before..]),
        [("delete", stale), ("store", h("rekey me"))]
    );
    assert_eq!(fields(&changes[before + 1]).tags, tags("t"));
}
