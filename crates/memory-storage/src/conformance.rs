//! The conformance suite: the behaviour of [`MemoryStorage`] written once, run against every
//! backend (the way `object_store`'s `integration.rs` proves each of its stores).
//!
//! A backend's integration test hands the suite a factory of fresh, empty stores; the
//! [`conformance_tests!`](crate::conformance_tests) macro expands to one `#[test]` per case,
//! each on a new store and its own multi-threaded Tokio runtime (attributes given after the
//! factory, such as `#[ignore = "needs an account"]`, go on every test):
//!
//! ```ignore
//! // crates/memory-sqlite/tests/conformance.rs
//! use std::sync::{Arc, OnceLock};
//!
//! use memory_embed::{BertEmbedder, DEFAULT_MODEL_ID, Embedder};
//! use memory_sqlite::SqliteStorage;
//! use tempfile::TempDir;
//!
//! /// The model, loaded once for every case.
//! fn embedder() -> Arc<dyn Embedder> {
//!     static MODEL: OnceLock<Arc<dyn Embedder>> = OnceLock::new();
//!     let load = || Arc::new(BertEmbedder::open(DEFAULT_MODEL_ID).unwrap()) as Arc<dyn Embedder>;
//!     MODEL.get_or_init(load).clone()
//! }
//!
//! /// A new, empty store in its own directory; the directory lives as long as the store.
//! async fn fresh_store() -> (SqliteStorage, TempDir) {
//!     let dir = tempfile::tempdir().unwrap();
//!     let store = SqliteStorage::open(dir.path().join("memories.db"), embedder()).await.unwrap();
//!     (store, dir)
//! }
//!
//! memory_storage::conformance_tests!(fresh_store);
//! ```
//!
//! The factory is anything callable with no arguments that returns a future of a
//! [`Fixture`]: a store, a `(store, guard)` pair (the guard, e.g. a `TempDir`, is dropped after
//! the case), an `Arc<dyn MemoryStorage>` or a `Box<dyn MemoryStorage>`. Each case runs on its
//! own runtime, so share expensive things between cases (the embedding model) through a
//! `static`, never a Tokio resource bound to one runtime.
//!
//! Without the macro, [`CASES`] lists the cases for a custom harness, and each case is also a
//! plain `pub async fn` taking `&dyn MemoryStorage`.
//!
//! # What a passing backend has proven
//! * **Store and read**: every field round-trips exactly (content, hash, tags in order, type,
//!   metadata, both timestamps to the microsecond), Unicode and 1 MB content included; a
//!   second store of the same normalised content is [`StoreOutcome::Duplicate`] and changes
//!   nothing; an embedding of the wrong size or with a non-finite value is refused, a huge
//!   finite one is scaled; a hash that is not the content's is refused; `metadata.tags` and
//!   `metadata.type` become the memory's own tags and type (on store and on update).
//! * **Soft delete**: a deleted memory vanishes from every read (hash lookup, search, list,
//!   count, tag and time queries, recent, recall, tag counts, stats); deleting unknown or
//!   deleted hashes is [`StorageError::NotFound`]; storing the content again revives it with
//!   the new fields; purging removes tombstones for good.
//! * **Tags and time**: any/all tag matching, empty tag filters match nothing, time bounds are
//!   inclusive at both ends to the microsecond.
//! * **Bulk delete**: by hashes, tags (any/all), before, after and their AND; dry runs report
//!   exactly what a real run deletes; an empty selector is refused.
//! * **Updates**: tags replaced, type set and cleared, metadata merged, timestamp rules with
//!   and without `preserve_timestamps`; unknown and deleted hashes are not found.
//! * **Ordering and paging**: newest first with ties by hash descending; pages cover every
//!   memory exactly once; counts agree with lists for every filter.
//! * **Semantic search**: a verbatim query ranks its memory first with relevance near 1.0,
//!   results are ordered and limited, filters give the true top `n` among matching memories
//!   (not a post-filtered global top `n`), `min_similarity` holds; limits and empty queries are
//!   refused naming the field. Nothing deeper about meaning is assumed, so the suite holds for
//!   any sane embedding model.
//! * **Recall**: a pure time expression returns exactly that range, time plus text ranks
//!   within the range only, no time expression behaves like retrieve.
//! * **Figures**: stats (totals, tags, last-7-days, content bytes, tombstones, backend and
//!   model), tag counts ordered by use then name, duplicate cleanup is a no-op on a clean store.
//! * **Embeddings and consistency**: `get_embeddings` gives stored vectors in input order (a
//!   carried unit vector bit for bit, a longer one scaled to unit length), `None` for unknown
//!   and deleted hashes, nothing for nothing; `check` of a healthy store finds nothing and
//!   `repair` of it fixes 0 and changes no memory.
//! * **Batches and concurrency**: batch outcomes in input order with per-item duplicates;
//!   50 concurrent stores all land; concurrent stores of one content store it exactly once;
//!   `initialize` is idempotent and keeps data.

use std::collections::HashSet;
use std::fmt::{self, Debug};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::join_all;
use memory_core::{ContentHash, Memory, MemoryQueryResult, Metadata, Tags, TimeRange, Timestamp};

use crate::{
    DeleteReport, DeleteRequest, DeleteSelector, ListQuery, MAX_RESULTS, MemoryFilter,
    MemoryStorage, MemoryUpdate, SemanticQuery, StorageError, StorageResult, StoreOutcome,
    TagCount, TagFilter,
};

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/// Something a backend's factory returns that holds a store for the length of one case.
pub trait Fixture: Send + Sync {
    /// The store under test.
    fn storage(&self) -> &dyn MemoryStorage;
}

impl<S: MemoryStorage + 'static> Fixture for S {
    fn storage(&self) -> &dyn MemoryStorage {
        self
    }
}

/// A store and a guard (a temporary directory, an emulator handle) dropped after it.
impl<S: MemoryStorage + 'static, G: Send + Sync> Fixture for (S, G) {
    fn storage(&self) -> &dyn MemoryStorage {
        &self.0
    }
}

impl Fixture for Arc<dyn MemoryStorage> {
    fn storage(&self) -> &dyn MemoryStorage {
        self.as_ref()
    }
}

impl Fixture for Box<dyn MemoryStorage> {
    fn storage(&self) -> &dyn MemoryStorage {
        self.as_ref()
    }
}

/// The future a [`Case`] returns; it panics when the store breaks the trait's contract.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// One conformance case: a named check run against a fresh, empty store.
#[derive(Clone, Copy)]
pub struct Case {
    /// The case's name, a specification (`deleted_memory_is_invisible_to_every_read`).
    pub name: &'static str,
    /// Runs the case against a store.
    pub run: for<'a> fn(&'a dyn MemoryStorage) -> CaseFuture<'a>,
}

impl Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Runs one case on a fresh store from `make_store`, on a new multi-threaded Tokio runtime.
/// This is what each test of [`conformance_tests!`](crate::conformance_tests) calls.
pub fn run_case<F, Fut>(make_store: F, case: Case)
where
    F: FnOnce() -> Fut,
    Fut: Future,
    Fut::Output: Fixture,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building a Tokio runtime for a conformance case");
    runtime.block_on(async move {
        let fixture = make_store().await;
        (case.run)(fixture.storage()).await;
    });
}

/// Expands to one `#[test]` per conformance case, each running on a fresh store.
///
/// The first argument is a factory: a path to an `async fn` or a closure returning a future,
/// whose output is a [`Fixture`](crate::conformance::Fixture) (a store, or a
/// `(store, guard)` pair). Attributes after it are put on every generated test, e.g. to gate
/// a run against a real account. See the [module docs](crate::conformance) for a full
/// example.
///
/// ```ignore
/// memory_storage::conformance_tests!(fresh_store);
/// memory_storage::conformance_tests!(|| async { MyStore::in_memory() });
/// memory_storage::conformance_tests!(cloudflare_store, #[ignore = "needs a Cloudflare account"]);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($make_store:expr $(, #[$attr:meta])* $(,)?) => {
        $crate::__conformance_cases!(__conformance_test_fns(($make_store) ($(#[$attr])*)));
    };
}

/// Calls `$crate::$callback! { ($args) [case, ...] }` with the name of every case: the one
/// list the tests of [`conformance_tests!`] and the table [`conformance::CASES`] are built from.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($callback:ident ($($args:tt)*)) => {
        $crate::$callback! { ($($args)*) [
            // store and read
            store_reports_stored_for_new_content,
            store_then_get_by_hash_round_trips_every_field,
            get_by_hash_of_unknown_hash_is_none,
            storing_the_same_content_twice_is_a_duplicate_and_keeps_the_original,
            content_differing_only_in_case_and_surrounding_space_is_a_duplicate,
            unicode_content_round_trips,
            one_megabyte_content_round_trips_byte_exact_and_is_searchable,
            an_embedding_of_the_wrong_size_or_non_finite_is_refused,
            a_huge_finite_embedding_is_scaled_not_refused,
            a_hash_that_is_not_the_contents_is_refused,
            metadata_tags_and_type_become_the_memorys_own,
            reads_of_an_empty_store_are_empty,
            // soft delete
            deleted_memory_is_gone_from_get_by_hash,
            deleted_memory_is_invisible_to_every_read,
            storing_deleted_content_again_revives_it_with_the_new_fields,
            deleting_an_unknown_hash_is_not_found,
            deleting_twice_is_not_found_the_second_time,
            // tags and time
            search_by_tag_matches_any_of_the_tags,
            search_by_tags_any_and_all_differ,
            empty_tag_filter_matches_nothing,
            tag_search_time_bounds_are_inclusive_at_both_ends,
            time_range_is_inclusive_at_both_ends,
            time_range_with_start_after_end_is_invalid,
            // delete by tag and bulk delete
            delete_by_tag_returns_the_count_and_keeps_the_rest,
            delete_by_tag_normalises_the_tag,
            delete_by_tag_of_an_unused_tag_deletes_nothing,
            delete_memories_by_hashes_deletes_exactly_those,
            delete_memories_by_any_tag_deletes_newest_first,
            delete_memories_by_all_tags_needs_every_tag,
            delete_memories_before_is_inclusive,
            delete_memories_after_is_inclusive,
            delete_memories_conditions_combine_with_and,
            delete_memories_dry_run_reports_the_same_hashes_and_deletes_nothing,
            delete_memories_with_an_empty_or_inconsistent_selector_is_invalid,
            // updates
            update_replaces_tags_and_keeps_the_rest,
            update_sets_and_clears_memory_type,
            update_merges_metadata,
            update_moves_metadata_tags_and_type_into_the_memorys_own,
            update_preserving_timestamps_keeps_created_at_and_advances_updated_at,
            update_without_preserving_timestamps_uses_the_given_created_at,
            update_without_preserving_timestamps_or_created_at_sets_created_at_to_now,
            update_of_an_unknown_hash_is_not_found,
            update_of_a_deleted_memory_is_not_found,
            // ordering, paging, counting
            recent_memories_are_newest_first_and_limited_to_n,
            recent_memories_with_n_out_of_range_is_invalid,
            list_is_newest_first_with_ties_broken_by_hash_descending,
            list_pages_cover_every_memory_exactly_once,
            list_filters_by_tags_memory_type_and_time,
            count_with_filters_equals_list_length,
            // semantic search
            retrieve_ranks_the_verbatim_text_first_with_relevance_near_one,
            search_results_are_ordered_by_relevance_and_limited,
            search_with_a_tag_filter_returns_the_true_top_n_among_tagged,
            search_honours_memory_type_and_time_filters,
            search_with_limit_out_of_range_is_invalid_naming_the_field,
            search_with_an_empty_query_is_invalid,
            search_honours_min_similarity,
            search_of_an_empty_store_is_empty,
            // recall
            recall_of_a_pure_time_expression_returns_exactly_that_day,
            recall_with_time_and_text_ranks_within_the_range_only,
            recall_without_a_time_expression_behaves_like_retrieve,
            recall_with_invalid_input_is_refused,
            // figures and maintenance
            stats_report_totals_tags_week_bytes_and_model,
            stats_count_tombstones_after_a_delete,
            all_tags_are_counted_most_used_first_then_alphabetically,
            purge_deleted_removes_tombstones_and_frees_the_hash,
            purge_deleted_honours_older_than,
            cleanup_duplicates_on_a_clean_store_changes_nothing,
            // embeddings and consistency
            get_embeddings_returns_stored_vectors_in_input_order,
            get_embeddings_of_many_hashes_matches_each_one,
            check_of_an_empty_store_is_consistent,
            check_and_repair_of_a_healthy_store_find_and_change_nothing,
            // batches, concurrency, lifecycle
            store_batch_reports_outcomes_in_input_order,
            concurrent_stores_of_distinct_content_all_succeed,
            concurrent_stores_of_the_same_content_store_it_exactly_once,
            initialize_is_idempotent_and_keeps_data,
        ] }
    };
}

/// Emits one `#[test]` per case (the body of [`conformance_tests!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test_fns {
    ((($make_store:expr) $attrs:tt) [$($case:ident),* $(,)?]) => {
        $(
            $crate::__conformance_test_fn! { $attrs ($make_store) $case }
        )*
    };
}

/// Emits the `#[test]` of one case.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test_fn {
    (($(#[$attr:meta])*) ($make_store:expr) $case:ident) => {
        $(#[$attr])*
        #[test]
        fn $case() {
            fn run<'a>(store: &'a dyn $crate::MemoryStorage) -> $crate::conformance::CaseFuture<'a> {
                ::std::boxed::Box::pin($crate::conformance::$case(store))
            }
            $crate::conformance::run_case(
                $make_store,
                $crate::conformance::Case {
                    name: ::std::stringify!($case),
                    run,
                },
            );
        }
    };
}

/// Emits the [`CASES`](conformance::CASES) table.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_case_table {
    (() [$($case:ident),* $(,)?]) => {
        /// Every conformance case, in a stable order (the same list as the tests of
        /// [`conformance_tests!`](crate::conformance_tests)).
        pub const CASES: &[Case] = &[
            $(
                Case {
                    name: ::std::stringify!($case),
                    run: {
                        fn run<'a>(store: &'a dyn MemoryStorage) -> CaseFuture<'a> {
                            ::std::boxed::Box::pin($case(store))
                        }
                        run
                    },
                },
            )*
        ];
    };
}

crate::__conformance_cases!(__conformance_case_table());

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Tolerance for comparing a backend's "now" with the test's: remote backends may stamp
/// times with their own clock.
const CLOCK_SLACK: TimeDelta = TimeDelta::seconds(60);

/// Relevance a verbatim query must reach: the same text embeds to the same vector, so any
/// sane model gives ~1.0; the margin absorbs quantised or approximate indexes.
const VERBATIM_RELEVANCE: f32 = 0.95;

/// A memory with `content` and comma-separated `tags`, created now.
fn mem(content: &str, tags: &str) -> Memory {
    Memory::new(content)
        .expect("test content is valid")
        .with_tags(tag_list(tags))
}

/// `memory` with a memory type.
fn typed(memory: Memory, memory_type: &str) -> Memory {
    memory
        .with_memory_type(memory_type)
        .expect("test memory type is valid")
}

/// Normalised tags from a comma-separated list.
fn tag_list(tags: &str) -> Tags {
    Tags::parse(tags).expect("test tags are valid")
}

/// Metadata from JSON text.
fn meta(json: &str) -> Metadata {
    Metadata::parse(json).expect("test metadata is valid")
}

/// A timestamp from ISO-8601 text.
fn iso(text: &str) -> Timestamp {
    Timestamp::parse_iso(text).expect("test timestamp is valid")
}

/// `t` moved by `micros` microseconds.
fn shift(t: Timestamp, micros: i64) -> Timestamp {
    Timestamp::from_epoch_micros(t.epoch_micros() + micros).expect("shifted timestamp in range")
}

/// The instant `delta` before now.
fn ago(delta: TimeDelta) -> Timestamp {
    Timestamp::from_datetime(Utc::now() - delta)
}

/// An inclusive time range.
fn range(start: Timestamp, end: Timestamp) -> TimeRange {
    TimeRange { start, end }
}

/// The start of a content, for messages.
fn preview(content: &str) -> String {
    let head: String = content.chars().take(60).collect();
    if head.len() < content.len() {
        format!("{head}…")
    } else {
        head
    }
}

/// Stores `memory`, which must be new, and returns it.
async fn put(store: &dyn MemoryStorage, memory: Memory) -> Memory {
    match store.store(memory.clone()).await {
        Ok(StoreOutcome::Stored) => memory,
        other => panic!(
            "storing new content {:?} should give Ok(Stored), got {other:?}",
            preview(memory.content())
        ),
    }
}

/// Stores every memory (all new) through `store_batch` and returns them.
async fn put_batch(store: &dyn MemoryStorage, memories: Vec<Memory>) -> Vec<Memory> {
    let outcomes = store
        .store_batch(memories.clone())
        .await
        .expect("store_batch of new content should succeed");
    assert_eq!(
        outcomes.len(),
        memories.len(),
        "store_batch should give one outcome per memory"
    );
    for (memory, outcome) in memories.iter().zip(&outcomes) {
        assert!(
            matches!(outcome, Ok(StoreOutcome::Stored)),
            "store_batch of new content {:?} should give Ok(Stored), got {outcome:?}",
            preview(memory.content())
        );
    }
    memories
}

/// The live memory with `hash`, if any.
async fn get(store: &dyn MemoryStorage, hash: &ContentHash) -> Option<Memory> {
    store
        .get_by_hash(hash)
        .await
        .unwrap_or_else(|e| panic!("get_by_hash({hash}) should succeed, got {e:?}"))
}

/// The live memory with `hash`, which must exist.
async fn must_get(store: &dyn MemoryStorage, hash: &ContentHash, context: &str) -> Memory {
    get(store, hash)
        .await
        .unwrap_or_else(|| panic!("{context}: memory {hash} should be live"))
}

/// Hashes of every live memory, in list order.
async fn live(store: &dyn MemoryStorage) -> Vec<ContentHash> {
    hashes(&list(store, MemoryFilter::all()).await)
}

/// Every live memory matching `filter`, in list order.
async fn list(store: &dyn MemoryStorage, filter: MemoryFilter) -> Vec<Memory> {
    store
        .list(&ListQuery::all(filter.clone()))
        .await
        .unwrap_or_else(|e| panic!("list({filter:?}) should succeed, got {e:?}"))
}

/// Number of live memories matching `filter`.
async fn count(store: &dyn MemoryStorage, filter: MemoryFilter) -> u64 {
    store
        .count(&filter)
        .await
        .unwrap_or_else(|e| panic!("count({filter:?}) should succeed, got {e:?}"))
}

/// Results of a semantic search, which must succeed.
async fn search(store: &dyn MemoryStorage, query: SemanticQuery) -> Vec<MemoryQueryResult> {
    store
        .search(&query)
        .await
        .unwrap_or_else(|e| panic!("search({query:?}) should succeed, got {e:?}"))
}

/// Runs a bulk delete, which must succeed.
async fn delete_where(
    store: &dyn MemoryStorage,
    selector: DeleteSelector,
    dry_run: bool,
) -> DeleteReport {
    let request = DeleteRequest { selector, dry_run };
    store
        .delete_memories(&request)
        .await
        .unwrap_or_else(|e| panic!("delete_memories({request:?}) should succeed, got {e:?}"))
}

/// Deletes one memory, which must succeed.
async fn delete(store: &dyn MemoryStorage, hash: &ContentHash) {
    let report = store
        .delete(hash)
        .await
        .unwrap_or_else(|e| panic!("delete({hash}) of a live memory should succeed, got {e:?}"));
    assert_eq!(
        report.hashes,
        std::slice::from_ref(hash),
        "delete reports the hash deleted"
    );
    assert!(!report.dry_run, "a delete is not a dry run");
    assert!(
        report.cleanup_pending.is_empty(),
        "nothing failed, so no clean-up is pending: {:?}",
        report.cleanup_pending
    );
}

/// Runs an update, which must succeed, and checks that a read returns what it returned.
async fn update(
    store: &dyn MemoryStorage,
    hash: &ContentHash,
    updates: MemoryUpdate,
    preserve_timestamps: bool,
) -> Memory {
    let returned = store
        .update_memory_metadata(hash, updates.clone(), preserve_timestamps)
        .await
        .unwrap_or_else(|e| panic!("update_memory_metadata({hash}, {updates:?}) failed: {e:?}"));
    let read = must_get(store, hash, "after update_memory_metadata").await;
    assert_same(
        &read,
        &returned,
        "get_by_hash after an update vs the update's result",
    );
    returned
}

/// The hashes of `memories`, in order.
fn hashes(memories: &[Memory]) -> Vec<ContentHash> {
    memories.iter().map(|m| m.content_hash().clone()).collect()
}

/// The hashes of search results, in order.
fn hit_hashes(results: &[MemoryQueryResult]) -> Vec<ContentHash> {
    results
        .iter()
        .map(|r| r.memory.content_hash().clone())
        .collect()
}

/// The hashes of `memories` in the order every list must give: `created_at` descending,
/// ties by hash descending.
fn newest_first(memories: &[&Memory]) -> Vec<ContentHash> {
    let mut sorted: Vec<&Memory> = memories.to_vec();
    sorted.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.content_hash().cmp(a.content_hash()))
    });
    sorted.iter().map(|m| m.content_hash().clone()).collect()
}

/// Asserts that two memories agree on every stored field (the embedding is not compared:
/// backends may or may not return it).
fn assert_same(actual: &Memory, expected: &Memory, context: &str) {
    let what = preview(expected.content());
    assert_eq!(
        actual.content(),
        expected.content(),
        "{context}: content of {what:?}"
    );
    assert_eq!(
        actual.content_hash(),
        expected.content_hash(),
        "{context}: content_hash of {what:?}"
    );
    assert_eq!(
        actual.tags, expected.tags,
        "{context}: tags (in order) of {what:?}"
    );
    assert_eq!(
        actual.memory_type, expected.memory_type,
        "{context}: memory_type of {what:?}"
    );
    assert_eq!(
        actual.metadata, expected.metadata,
        "{context}: metadata of {what:?}"
    );
    assert_eq!(
        actual.created_at, expected.created_at,
        "{context}: created_at of {what:?} (exact to the microsecond)"
    );
    assert_eq!(
        actual.updated_at, expected.updated_at,
        "{context}: updated_at of {what:?} (exact to the microsecond)"
    );
}

/// Asserts an [`StorageError::InvalidInput`] naming one of `fields`.
fn assert_invalid<T: Debug>(result: StorageResult<T>, fields: &[&str], context: &str) {
    match result {
        Err(StorageError::InvalidInput { field, .. }) if fields.contains(&field) => {}
        other => panic!("{context}: expected InvalidInput naming {fields:?}, got {other:?}"),
    }
}

/// Asserts a [`StorageError::NotFound`] for `hash`.
fn assert_not_found<T: Debug>(result: StorageResult<T>, hash: &ContentHash, context: &str) {
    match result {
        Err(StorageError::NotFound { hash: h }) if &h == hash => {}
        other => panic!("{context}: expected NotFound {{ hash: {hash} }}, got {other:?}"),
    }
}

/// Asserts that a store of content whose memory (`hash`) is live was reported as
/// [`StoreOutcome::Duplicate`].
fn assert_duplicate(result: &StorageResult<StoreOutcome>, hash: &ContentHash, context: &str) {
    match result {
        Ok(StoreOutcome::Duplicate) => {}
        other => panic!("{context}: expected Ok(Duplicate) for {hash}, got {other:?}"),
    }
}

/// Asserts that `t` was stamped by the backend between `before` and `after` (with slack).
fn assert_stamped_now(t: Timestamp, before: Timestamp, after: Timestamp, context: &str) {
    let low = Timestamp::from_datetime(before.as_datetime() - CLOCK_SLACK);
    let high = Timestamp::from_datetime(after.as_datetime() + CLOCK_SLACK);
    assert!(
        low <= t && t <= high,
        "{context}: {t} should be the time of the call ({before} .. {after})"
    );
}

/// Asserts results are ordered by relevance, most relevant first, within `[-1, 1]`.
fn assert_ordered_by_relevance(results: &[MemoryQueryResult], context: &str) {
    for r in results {
        assert!(
            (-1.0 - 1e-4..=1.0 + 1e-4).contains(&r.relevance_score),
            "{context}: relevance {} of {:?} is outside [-1, 1]",
            r.relevance_score,
            preview(r.memory.content())
        );
    }
    for pair in results.windows(2) {
        assert!(
            pair[0].relevance_score >= pair[1].relevance_score,
            "{context}: results must be most relevant first, but {} precedes {}",
            pair[0].relevance_score,
            pair[1].relevance_score
        );
    }
}

/// Three memories about unrelated subjects (no time words, so recall leaves them alone).
async fn three_subjects(store: &dyn MemoryStorage) -> [Memory; 3] {
    let lighthouse = put(
        store,
        mem(
            "The lighthouse keeper logs every passing ship in a leather-bound book",
            "sea",
        ),
    )
    .await;
    let sourdough = put(
        store,
        mem(
            "Sourdough starter must be fed with rye flour and warm water",
            "kitchen",
        ),
    )
    .await;
    let kubernetes = put(
        store,
        mem(
            "Kubernetes restarts a pod when its liveness probe fails three times",
            "ops",
        ),
    )
    .await;
    [lighthouse, sourdough, kubernetes]
}

/// Four memories for the bulk-delete cases: `a` red+blue (January), `b` red (February),
/// `c` blue (March), `d` green (April), all 2024.
async fn palette(store: &dyn MemoryStorage) -> [Memory; 4] {
    let a = mem("Palette A is painted red and blue", "red,blue")
        .with_created_at(iso("2024-01-01T00:00:00Z"));
    let b = mem("Palette B is painted red", "red").with_created_at(iso("2024-02-01T00:00:00Z"));
    let c = mem("Palette C is painted blue", "blue").with_created_at(iso("2024-03-01T00:00:00Z"));
    let d = mem("Palette D is painted green", "green").with_created_at(iso("2024-04-01T00:00:00Z"));
    [
        put(store, a).await,
        put(store, b).await,
        put(store, c).await,
        put(store, d).await,
    ]
}

/// The memory the update cases change: tags `one, two`, type `note`, metadata `{a:1, b:2}`,
/// created 2024-01-01.
async fn update_target(store: &dyn MemoryStorage) -> Memory {
    put(
        store,
        typed(
            mem(
                "Update target: the build cache lives on the shared volume",
                "one,two",
            ),
            "note",
        )
        .with_metadata(meta(r#"{"a":1,"b":2}"#))
        .with_created_at(iso("2024-01-01T00:00:00Z")),
    )
    .await
}

/// The fixed "now" of the recall cases: 2024-05-15 12:00 UTC.
fn recall_now() -> DateTime<Utc> {
    iso("2024-05-15T12:00:00Z").as_datetime()
}

// ---------------------------------------------------------------------------------------------
// Store and read
// ---------------------------------------------------------------------------------------------

/// Storing new content gives [`StoreOutcome::Stored`] and the memory is counted.
pub async fn store_reports_stored_for_new_content(store: &dyn MemoryStorage) {
    let outcome = store
        .store(mem("A brand new memory about tide tables", "sea"))
        .await;
    assert!(
        matches!(outcome, Ok(StoreOutcome::Stored)),
        "storing new content should give Ok(Stored), got {outcome:?}"
    );
    assert_eq!(
        count(store, MemoryFilter::all()).await,
        1,
        "count after one store"
    );
}

/// Every field survives a store and a read by hash exactly.
pub async fn store_then_get_by_hash_round_trips_every_field(store: &dyn MemoryStorage) {
    let mut memory = typed(
        mem(
            "  Use rustls, not OpenSSL, for every TLS client  ",
            "decision, tls, Security",
        ),
        "decision",
    )
    .with_metadata(meta(
        r#"{"project":"mcp","score":0.5,"count":7,"nested":{"list":[1,"two",3.25],"flag":true},"nothing":null}"#,
    ));
    memory.created_at = iso("2024-02-29T08:15:30.123456Z");
    memory.updated_at = iso("2024-03-01T09:00:00.654321Z");
    put(store, memory.clone()).await;
    let read = must_get(store, memory.content_hash(), "get_by_hash after store").await;
    assert_same(&read, &memory, "get_by_hash after store");
}

/// Looking up a hash nothing was stored under gives `None`, not an error.
pub async fn get_by_hash_of_unknown_hash_is_none(store: &dyn MemoryStorage) {
    put(store, mem("Something else entirely", "")).await;
    let unknown = ContentHash::of("never stored");
    assert!(
        get(store, &unknown).await.is_none(),
        "get_by_hash of an unknown hash should be None"
    );
}

/// A second store of the same content is [`StoreOutcome::Duplicate`] and changes nothing.
pub async fn storing_the_same_content_twice_is_a_duplicate_and_keeps_the_original(
    store: &dyn MemoryStorage,
) {
    let original = put(
        store,
        typed(
            mem("The office wifi password rotates quarterly", "office"),
            "fact",
        )
        .with_metadata(meta(r#"{"v":1}"#))
        .with_created_at(iso("2024-01-10T10:00:00Z")),
    )
    .await;
    let again = typed(
        mem("The office wifi password rotates quarterly", "other"),
        "note",
    )
    .with_metadata(meta(r#"{"v":2}"#));
    let result = store.store(again).await;
    assert_duplicate(
        &result,
        original.content_hash(),
        "storing the same content again",
    );
    let read = must_get(store, original.content_hash(), "after a duplicate store").await;
    assert_same(&read, &original, "the original after a duplicate store");
    assert_eq!(
        count(store, MemoryFilter::all()).await,
        1,
        "count after a duplicate"
    );
}

/// The hash rule ignores case and surrounding white space, so such variants are duplicates.
pub async fn content_differing_only_in_case_and_surrounding_space_is_a_duplicate(
    store: &dyn MemoryStorage,
) {
    let original = put(store, mem("Hello World from the hash rule", "")).await;
    let variant = mem("  hello WORLD from the HASH rule \n", "");
    assert_eq!(variant.content_hash(), original.content_hash());
    let result = store.store(variant).await;
    assert_duplicate(&result, original.content_hash(), "a case/space variant");
    let read = must_get(store, original.content_hash(), "after a variant store").await;
    assert_eq!(
        read.content(),
        original.content(),
        "the original text is kept after a duplicate variant"
    );
}

/// CJK, emoji, right-to-left scripts and combining marks round-trip exactly, tags included.
pub async fn unicode_content_round_trips(store: &dyn MemoryStorage) {
    let texts = [
        ("記憶は大切です。長期記憶サービスのテスト", "日本語"),
        ("🦀 Rust crab meets 🚀 launch day 👩‍👩‍👧‍👦 family emoji", "émoji"),
        ("שלום עולם — مرحبا بالعالم (right to left)", "rtl"),
        (
            "e\u{301}cole, n\u{303}, a\u{30a} with combining marks",
            "Ünïcødé",
        ),
    ];
    let mut stored = Vec::new();
    for (content, tags) in texts {
        stored.push(put(store, mem(content, tags)).await);
    }
    for memory in &stored {
        let read = must_get(store, memory.content_hash(), "unicode round trip").await;
        assert_same(&read, memory, "unicode round trip");
    }
    let by_tag = store
        .search_by_tag(&tag_list("ünïcødé"))
        .await
        .expect("search_by_tag with a unicode tag");
    assert_eq!(
        hashes(&by_tag),
        vec![stored[3].content_hash().clone()],
        "search by a unicode tag"
    );
}

/// 1 MB of content (multi-byte characters included) round-trips byte-exact and is found by
/// a search for its opening.
pub async fn one_megabyte_content_round_trips_byte_exact_and_is_searchable(
    store: &dyn MemoryStorage,
) {
    let mut content =
        String::from("Release notes for the Falcon telemetry pipeline, full appendix. ");
    let mut line = 0u32;
    while content.len() < 1_000_000 {
        content.push_str(&format!(
            "Line {line:06}: sensor café-{} reported nominal values.\n",
            line % 97
        ));
        line += 1;
    }
    let big = put(store, mem(&content, "big")).await;
    put(
        store,
        mem("Grandmother's apple pie uses cinnamon and nutmeg", ""),
    )
    .await;
    put(store, mem("The tennis club final ended in a tie-break", "")).await;
    let read = must_get(store, big.content_hash(), "1 MB round trip").await;
    assert_eq!(
        read.content().len(),
        content.len(),
        "1 MB content length in bytes"
    );
    assert!(
        read.content() == content,
        "1 MB content should round-trip byte-exact"
    );
    let hits = search(
        store,
        SemanticQuery::new("Release notes for the Falcon telemetry pipeline", 3),
    )
    .await;
    assert_eq!(
        hits.first().map(|h| h.memory.content_hash()),
        Some(big.content_hash()),
        "a search for its opening should rank the 1 MB memory first"
    );
}

/// A memory carrying an embedding of the wrong size, or with a non-finite value, is refused
/// naming `embedding`, and nothing is stored.
pub async fn an_embedding_of_the_wrong_size_or_non_finite_is_refused(store: &dyn MemoryStorage) {
    let odd = mem("Penguins huddle together to survive the polar winter", "")
        .with_embedding(vec![0.5, -0.5, 0.25]);
    assert_invalid(
        store.store(odd.clone()).await,
        &["embedding"],
        "store with a 3-dimension embedding",
    );
    let stats = store.get_stats().await.expect("get_stats");
    let mut nan = vec![0.0f32; stats.embedding_dimensions];
    nan[0] = f32::NAN;
    assert_invalid(
        store.store(odd.clone().with_embedding(nan)).await,
        &["embedding"],
        "store with a NaN in the embedding",
    );
    assert_eq!(
        count(store, MemoryFilter::all()).await,
        0,
        "nothing is stored"
    );
    let stored = put(store, mem(odd.content(), "")).await;
    assert_eq!(
        stored.content_hash(),
        odd.content_hash(),
        "the same memory without an embedding is then stored"
    );
}

/// A finite vector whose squared norm overflows `f32` (every element `1e38`) is scaled to
/// unit length and stored, not refused as "all zeros".
pub async fn a_huge_finite_embedding_is_scaled_not_refused(store: &dyn MemoryStorage) {
    let dims = store
        .get_stats()
        .await
        .expect("get_stats")
        .embedding_dimensions;
    let m =
        mem("Albatrosses glide for hours without flapping", "").with_embedding(vec![1e38; dims]);
    let stored = put(store, m).await;
    let got = store
        .get_embeddings(std::slice::from_ref(stored.content_hash()))
        .await
        .expect("get_embeddings");
    let v = got[0].as_ref().expect("the vector is stored");
    let expected = (1.0 / (dims as f64).sqrt()) as f32;
    assert!(
        v.iter().all(|x| (x - expected).abs() < 1e-4),
        "scaled to unit length: {:?}",
        &v[..3]
    );
}

/// A memory whose hash is not the hash of its content (built with `Memory::from_parts`
/// from a hash nobody checked) is refused naming `content_hash`, and nothing is stored: such
/// a row would make the real owner of that hash a "duplicate" forever.
pub async fn a_hash_that_is_not_the_contents_is_refused(store: &dyn MemoryStorage) {
    let other = mem("Owls can turn their heads 270 degrees", "");
    let forged = Memory::from_parts(
        "Buy milk on the way home".into(),
        other.content_hash().clone(),
        Tags::empty(),
        None,
        Metadata::new(),
        None,
        Timestamp::now(),
        Timestamp::now(),
    );
    match store.store(forged.clone()).await {
        Err(StorageError::Validation(e)) if e.field() == "content_hash" => {}
        other => panic!("expected a content_hash validation error, got {other:?}"),
    }
    let results = store.store_batch(vec![forged]).await.expect("store_batch");
    assert!(
        matches!(&results[0], Err(StorageError::Validation(e)) if e.field() == "content_hash"),
        "store_batch refuses it per item: {results:?}"
    );
    assert_eq!(count(store, MemoryFilter::all()).await, 0, "nothing stored");
    put(store, other).await;
}

/// As the Python service does, `metadata.tags` joins the memory's tags and `metadata.type`
/// becomes its type (unless one is given); neither stays in the metadata, so tag search
/// finds the memory.
pub async fn metadata_tags_and_type_become_the_memorys_own(store: &dyn MemoryStorage) {
    let m = mem("Kestrels hover facing into the wind", "birds").with_metadata(meta(
        r#"{"tags": ["Raptors", "birds"], "type": "observation", "source": "field notes"}"#,
    ));
    let hash = m.content_hash().clone();
    store.store(m).await.expect("store");
    let read = store
        .get_by_hash(&hash)
        .await
        .expect("get_by_hash")
        .expect("stored");
    assert_eq!(
        read.tags.as_slice(),
        ["birds", "raptors"],
        "tags united, in order"
    );
    assert_eq!(read.memory_type.as_deref(), Some("observation"));
    assert_eq!(read.metadata, meta(r#"{"source": "field notes"}"#));
    let found = store
        .search_by_tag(&tag_list("raptors"))
        .await
        .expect("search_by_tag");
    assert_eq!(
        found.len(),
        1,
        "tag search finds it by a tag given in metadata"
    );
    // A comma-separated string works too, and an explicit type wins.
    let m = mem("Herons stand still for minutes before striking", "")
        .with_memory_type("note")
        .expect("type")
        .with_metadata(meta(r#"{"tags": "wading, birds", "type": "observation"}"#));
    let hash = m.content_hash().clone();
    store.store(m).await.expect("store");
    let read = store
        .get_by_hash(&hash)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(read.tags.as_slice(), ["wading", "birds"]);
    assert_eq!(read.memory_type.as_deref(), Some("note"));
    assert!(read.metadata.is_empty(), "{:?}", read.metadata);
    // A wrong JSON type is refused naming it, and nothing is stored.
    let bad = mem("Swifts sleep on the wing", "").with_metadata(meta(r#"{"tags": 7}"#));
    match store.store(bad).await {
        Err(StorageError::Validation(e)) if e.to_string().contains("metadata.tags") => {}
        other => panic!("expected an error naming metadata.tags, got {other:?}"),
    }
    assert_eq!(count(store, MemoryFilter::all()).await, 2);
}

/// Every read of an empty store succeeds and is empty.
pub async fn reads_of_an_empty_store_are_empty(store: &dyn MemoryStorage) {
    assert_eq!(count(store, MemoryFilter::all()).await, 0, "count");
    assert!(list(store, MemoryFilter::all()).await.is_empty(), "list");
    assert!(
        store.get_all_tags().await.expect("get_all_tags").is_empty(),
        "get_all_tags"
    );
    assert!(
        store
            .get_recent_memories(5)
            .await
            .expect("get_recent_memories")
            .is_empty(),
        "get_recent_memories"
    );
    assert!(
        store
            .search_by_tag(&tag_list("anything"))
            .await
            .expect("search_by_tag")
            .is_empty(),
        "search_by_tag"
    );
    assert!(
        store
            .get_memories_by_time_range(iso("2000-01-01T00:00:00Z"), iso("2100-01-01T00:00:00Z"))
            .await
            .expect("get_memories_by_time_range")
            .is_empty(),
        "get_memories_by_time_range"
    );
    let stats = store.get_stats().await.expect("get_stats");
    assert_eq!(
        (
            stats.total_memories,
            stats.unique_tags,
            stats.memories_this_week,
            stats.content_bytes,
            stats.tombstones
        ),
        (0, 0, 0, 0, 0),
        "stats of an empty store: {stats:?}"
    );
    assert_eq!(
        store.purge_deleted(None).await.expect("purge_deleted"),
        0,
        "purge of an empty store"
    );
}

// ---------------------------------------------------------------------------------------------
// Soft delete
// ---------------------------------------------------------------------------------------------

/// After a delete, `get_by_hash` gives `None`.
pub async fn deleted_memory_is_gone_from_get_by_hash(store: &dyn MemoryStorage) {
    let memory = put(store, mem("Delete me after reading", "")).await;
    delete(store, memory.content_hash()).await;
    assert!(
        get(store, memory.content_hash()).await.is_none(),
        "get_by_hash after delete should be None"
    );
}

/// A deleted memory appears in no read at all, while its live neighbour still does.
pub async fn deleted_memory_is_invisible_to_every_read(store: &dyn MemoryStorage) {
    let now = Utc::now();
    let created = ago(TimeDelta::hours(1));
    let kept = put(
        store,
        typed(
            mem(
                "Kept: the staging database lives on host alpha",
                "shared,kept-only",
            ),
            "note",
        )
        .with_created_at(created),
    )
    .await;
    let gone = put(
        store,
        typed(
            mem(
                "Gone: the staging database lives on host beta",
                "shared,gone-only",
            ),
            "note",
        )
        .with_created_at(shift(created, -1_000_000)),
    )
    .await;
    delete(store, gone.content_hash()).await;
    let g = gone.content_hash();
    let only_kept = vec![kept.content_hash().clone()];

    assert!(get(store, g).await.is_none(), "get_by_hash");
    let hits = store.retrieve(gone.content(), 10).await.expect("retrieve");
    assert_eq!(hit_hashes(&hits), only_kept, "retrieve");
    let hits = search(
        store,
        SemanticQuery::new(gone.content(), 10).with_filter(
            MemoryFilter::all()
                .with_tags(TagFilter::any(tag_list("shared,gone-only")))
                .with_memory_type("note"),
        ),
    )
    .await;
    assert_eq!(hit_hashes(&hits), only_kept, "search with filters");
    assert_eq!(live(store).await, only_kept, "list");
    assert_eq!(
        hashes(&list(store, MemoryFilter::all().with_memory_type("note")).await),
        only_kept,
        "list by memory type"
    );
    assert_eq!(count(store, MemoryFilter::all()).await, 1, "count");
    assert_eq!(
        count(
            store,
            MemoryFilter::all().with_tags(TagFilter::any(tag_list("gone-only")))
        )
        .await,
        0,
        "count by the deleted memory's tag"
    );
    let by_tag = store
        .search_by_tag(&tag_list("gone-only"))
        .await
        .expect("search_by_tag");
    assert!(by_tag.is_empty(), "search_by_tag: {:?}", hashes(&by_tag));
    let by_tags = store
        .search_by_tags(&TagFilter::any(tag_list("shared")), None)
        .await
        .expect("search_by_tags");
    assert_eq!(hashes(&by_tags), only_kept, "search_by_tags");
    let by_time = store
        .get_memories_by_time_range(ago(TimeDelta::days(1)), Timestamp::now())
        .await
        .expect("get_memories_by_time_range");
    assert_eq!(hashes(&by_time), only_kept, "get_memories_by_time_range");
    let recent = store
        .get_recent_memories(10)
        .await
        .expect("get_recent_memories");
    assert_eq!(hashes(&recent), only_kept, "get_recent_memories");
    let recalled = store
        .recall_memory_at(gone.content(), 10, now)
        .await
        .expect("recall_memory_at");
    assert!(
        !hit_hashes(&recalled).contains(g),
        "recall_memory_at returned the deleted memory"
    );
    let tags = store.get_all_tags().await.expect("get_all_tags");
    assert!(
        !tags.iter().any(|t| t.tag == "gone-only"),
        "get_all_tags lists a tag only the deleted memory carries: {tags:?}"
    );
    assert!(
        tags.contains(&TagCount {
            tag: "shared".into(),
            count: 1
        }),
        "get_all_tags should count only the live memory for `shared`: {tags:?}"
    );
    let stats = store.get_stats().await.expect("get_stats");
    assert_eq!(stats.total_memories, 1, "stats.total_memories");
    assert_eq!(
        stats.unique_tags, 2,
        "stats.unique_tags (shared, kept-only)"
    );
    assert_eq!(stats.memories_this_week, 1, "stats.memories_this_week");
    assert_eq!(
        stats.content_bytes,
        kept.content().len() as u64,
        "stats.content_bytes"
    );
    let report = delete_where(
        store,
        DeleteSelector {
            tags: Some(TagFilter::any(tag_list("gone-only"))),
            ..DeleteSelector::default()
        },
        true,
    )
    .await;
    assert!(
        report.hashes.is_empty(),
        "a dry-run delete selected the deleted memory"
    );
}

/// Storing content whose memory was deleted gives [`StoreOutcome::Revived`] and the memory
/// comes back with the new memory's fields, none of the old ones.
pub async fn storing_deleted_content_again_revives_it_with_the_new_fields(
    store: &dyn MemoryStorage,
) {
    let old = put(
        store,
        typed(
            mem("Revive me: the VPN endpoint moved", "old-tag"),
            "old-type",
        )
        .with_metadata(meta(r#"{"version":1,"old_only":true}"#))
        .with_created_at(iso("2024-01-01T00:00:00Z")),
    )
    .await;
    delete(store, old.content_hash()).await;
    let new = typed(
        mem("Revive me: the VPN endpoint moved", "new-tag"),
        "new-type",
    )
    .with_metadata(meta(r#"{"version":2}"#))
    .with_created_at(iso("2024-06-01T00:00:00Z"));
    let outcome = store.store(new.clone()).await;
    assert!(
        matches!(outcome, Ok(StoreOutcome::Revived)),
        "storing deleted content should give Ok(Revived), got {outcome:?}"
    );
    let read = must_get(store, new.content_hash(), "after revival").await;
    assert_same(&read, &new, "a revived memory");
    assert_eq!(
        count(store, MemoryFilter::all()).await,
        1,
        "count after revival"
    );
    assert!(
        store
            .search_by_tag(&tag_list("old-tag"))
            .await
            .expect("search_by_tag")
            .is_empty(),
        "the old tag should be gone after revival"
    );
    assert_eq!(
        hashes(
            &store
                .search_by_tag(&tag_list("new-tag"))
                .await
                .expect("search_by_tag")
        ),
        vec![new.content_hash().clone()],
        "the new tag finds the revived memory"
    );
}

/// Deleting a hash nothing was stored under is [`StorageError::NotFound`].
pub async fn deleting_an_unknown_hash_is_not_found(store: &dyn MemoryStorage) {
    let unrelated = put(store, mem("An unrelated survivor", "")).await;
    let unknown = ContentHash::of("never stored anywhere");
    assert_not_found(
        store.delete(&unknown).await,
        &unknown,
        "delete of an unknown hash",
    );
    assert!(
        get(store, unrelated.content_hash()).await.is_some(),
        "other memories survive"
    );
}

/// A second delete of the same hash is [`StorageError::NotFound`].
pub async fn deleting_twice_is_not_found_the_second_time(store: &dyn MemoryStorage) {
    let memory = put(store, mem("Delete me twice", "")).await;
    delete(store, memory.content_hash()).await;
    assert_not_found(
        store.delete(memory.content_hash()).await,
        memory.content_hash(),
        "the second delete",
    );
}

// ---------------------------------------------------------------------------------------------
// Tags and time
// ---------------------------------------------------------------------------------------------

/// `search_by_tag` returns memories carrying any of the tags (OR), newest first.
pub async fn search_by_tag_matches_any_of_the_tags(store: &dyn MemoryStorage) {
    let x = put(
        store,
        mem("Tagged x only", "x").with_created_at(iso("2024-01-01T00:00:00Z")),
    )
    .await;
    let y = put(
        store,
        mem("Tagged y only", "y").with_created_at(iso("2024-01-02T00:00:00Z")),
    )
    .await;
    let _z = put(
        store,
        mem("Tagged z only", "z").with_created_at(iso("2024-01-03T00:00:00Z")),
    )
    .await;
    let found = store
        .search_by_tag(&tag_list("x,y"))
        .await
        .expect("search_by_tag");
    assert_eq!(
        hashes(&found),
        newest_first(&[&x, &y]),
        "search_by_tag(x, y)"
    );
}

/// With the same tags, `Any` matches memories with at least one and `All` only those with
/// every one.
pub async fn search_by_tags_any_and_all_differ(store: &dyn MemoryStorage) {
    let both = put(
        store,
        mem("Carries x and y", "x,y").with_created_at(iso("2024-01-01T00:00:00Z")),
    )
    .await;
    let x = put(
        store,
        mem("Carries x", "x").with_created_at(iso("2024-01-02T00:00:00Z")),
    )
    .await;
    let y = put(
        store,
        mem("Carries y", "y").with_created_at(iso("2024-01-03T00:00:00Z")),
    )
    .await;
    let _z = put(
        store,
        mem("Carries z", "z").with_created_at(iso("2024-01-04T00:00:00Z")),
    )
    .await;
    let any = store
        .search_by_tags(&TagFilter::any(tag_list("x,y")), None)
        .await
        .expect("search_by_tags any");
    assert_eq!(hashes(&any), newest_first(&[&both, &x, &y]), "Any(x, y)");
    let all = store
        .search_by_tags(&TagFilter::all(tag_list("x,y")), None)
        .await
        .expect("search_by_tags all");
    assert_eq!(hashes(&all), vec![both.content_hash().clone()], "All(x, y)");
}

/// A tag filter with no tags matches nothing, wherever it is used.
pub async fn empty_tag_filter_matches_nothing(store: &dyn MemoryStorage) {
    put(store, mem("Has a tag", "x")).await;
    put(store, mem("Has no tag", "")).await;
    for filter in [TagFilter::any(Tags::empty()), TagFilter::all(Tags::empty())] {
        let found = store
            .search_by_tags(&filter, None)
            .await
            .expect("search_by_tags with an empty filter");
        assert!(found.is_empty(), "search_by_tags({filter:?})");
        let with_tags = MemoryFilter::all().with_tags(filter.clone());
        assert!(
            list(store, with_tags.clone()).await.is_empty(),
            "list({filter:?})"
        );
        assert_eq!(
            count(store, with_tags.clone()).await,
            0,
            "count({filter:?})"
        );
        let hits = search(
            store,
            SemanticQuery::new("Has a tag", 10).with_filter(with_tags),
        )
        .await;
        assert!(hits.is_empty(), "search with {filter:?}");
    }
    let found = store
        .search_by_tag(&Tags::empty())
        .await
        .expect("search_by_tag with no tags");
    assert!(found.is_empty(), "search_by_tag(no tags)");
}

/// A tag search with a time range includes memories exactly at its start and end and
/// excludes those one microsecond outside.
pub async fn tag_search_time_bounds_are_inclusive_at_both_ends(store: &dyn MemoryStorage) {
    let start = iso("2024-03-01T00:00:00Z");
    let end = iso("2024-03-31T23:59:59.999999Z");
    let before = put(
        store,
        mem("One microsecond early", "x").with_created_at(shift(start, -1)),
    )
    .await;
    let at_start = put(
        store,
        mem("Exactly at the start", "x").with_created_at(start),
    )
    .await;
    let middle = put(
        store,
        mem("In the middle", "x").with_created_at(iso("2024-03-15T12:00:00Z")),
    )
    .await;
    let at_end = put(store, mem("Exactly at the end", "x").with_created_at(end)).await;
    let after = put(
        store,
        mem("One microsecond late", "x").with_created_at(shift(end, 1)),
    )
    .await;
    put(
        store,
        mem("In the middle without the tag", "y").with_created_at(iso("2024-03-15T13:00:00Z")),
    )
    .await;
    let found = store
        .search_by_tags(&TagFilter::any(tag_list("x")), Some(range(start, end)))
        .await
        .expect("search_by_tags with a time range");
    assert_eq!(
        hashes(&found),
        newest_first(&[&at_start, &middle, &at_end]),
        "tag x within [start, end]; outside: {:?} {:?}",
        before.created_at,
        after.created_at
    );
}

/// `get_memories_by_time_range` includes both ends and nothing one microsecond outside.
pub async fn time_range_is_inclusive_at_both_ends(store: &dyn MemoryStorage) {
    let start = iso("2023-07-01T06:00:00Z");
    let end = iso("2023-07-02T06:00:00Z");
    put(
        store,
        mem("Just before the range", "").with_created_at(shift(start, -1)),
    )
    .await;
    let at_start = put(store, mem("At the range start", "").with_created_at(start)).await;
    let inside = put(
        store,
        mem("Inside the range", "t").with_created_at(iso("2023-07-01T18:00:00Z")),
    )
    .await;
    let at_end = put(store, mem("At the range end", "").with_created_at(end)).await;
    put(
        store,
        mem("Just after the range", "").with_created_at(shift(end, 1)),
    )
    .await;
    let found = store
        .get_memories_by_time_range(start, end)
        .await
        .expect("get_memories_by_time_range");
    assert_eq!(
        hashes(&found),
        newest_first(&[&at_start, &inside, &at_end]),
        "memories within [start, end]"
    );
    let single = store
        .get_memories_by_time_range(start, start)
        .await
        .expect("a one-instant range");
    assert_eq!(
        hashes(&single),
        vec![at_start.content_hash().clone()],
        "a range with start == end"
    );
}

/// A time range whose start is after its end is refused.
pub async fn time_range_with_start_after_end_is_invalid(store: &dyn MemoryStorage) {
    put(
        store,
        mem("Created between the bounds", "").with_created_at(iso("2024-01-15T00:00:00Z")),
    )
    .await;
    let start = iso("2024-02-01T00:00:00Z");
    let end = iso("2024-01-01T00:00:00Z");
    assert_invalid(
        store.get_memories_by_time_range(start, end).await,
        &["start", "end"],
        "get_memories_by_time_range with start > end",
    );
}

// ---------------------------------------------------------------------------------------------
// Delete by tag and bulk delete
// ---------------------------------------------------------------------------------------------

/// `delete_by_tag` deletes every memory carrying the tag, returns how many, and leaves the
/// rest.
pub async fn delete_by_tag_returns_the_count_and_keeps_the_rest(store: &dyn MemoryStorage) {
    let a = put(store, mem("Temporary note one", "temp")).await;
    let b = put(store, mem("Temporary note two", "temp,keep")).await;
    let c = put(store, mem("Permanent note", "keep")).await;
    let deleted = store.delete_by_tag("temp").await.expect("delete_by_tag");
    assert_eq!(deleted, 2, "delete_by_tag(temp) count");
    assert!(get(store, a.content_hash()).await.is_none(), "a deleted");
    assert!(get(store, b.content_hash()).await.is_none(), "b deleted");
    assert_eq!(live(store).await, vec![c.content_hash().clone()], "c kept");
}

/// `delete_by_tag` normalises its tag like every tag (trimmed, lower-cased); an empty tag is
/// refused.
pub async fn delete_by_tag_normalises_the_tag(store: &dyn MemoryStorage) {
    put(store, mem("Tagged shared", "shared")).await;
    let deleted = store
        .delete_by_tag("  Shared ")
        .await
        .expect("delete_by_tag with a non-normalised tag");
    assert_eq!(deleted, 1, "delete_by_tag(\"  Shared \")");
    assert_eq!(count(store, MemoryFilter::all()).await, 0, "count after");
    assert_invalid(
        store.delete_by_tag("   ").await,
        &["tag", "tags"],
        "delete_by_tag of an empty tag",
    );
}

/// `delete_by_tag` of a tag no memory carries deletes nothing and returns 0.
pub async fn delete_by_tag_of_an_unused_tag_deletes_nothing(store: &dyn MemoryStorage) {
    put(store, mem("Carries a tag", "used")).await;
    let deleted = store
        .delete_by_tag("unused")
        .await
        .expect("delete_by_tag of an unused tag");
    assert_eq!(deleted, 0, "delete_by_tag(unused)");
    assert_eq!(count(store, MemoryFilter::all()).await, 1, "count after");
}

/// `delete_memories` by hashes deletes exactly those, reported newest first.
pub async fn delete_memories_by_hashes_deletes_exactly_those(store: &dyn MemoryStorage) {
    let [a, b, c, d] = palette(store).await;
    let report = delete_where(
        store,
        DeleteSelector {
            hashes: vec![a.content_hash().clone(), c.content_hash().clone()],
            ..DeleteSelector::default()
        },
        false,
    )
    .await;
    assert_eq!(report.hashes, newest_first(&[&a, &c]), "reported hashes");
    assert!(!report.dry_run, "a real run is not reported as a dry run");
    assert_eq!(live(store).await, newest_first(&[&b, &d]), "survivors");
}

/// `delete_memories` with an any-tag condition deletes memories with at least one tag and
/// reports them newest first.
pub async fn delete_memories_by_any_tag_deletes_newest_first(store: &dyn MemoryStorage) {
    let [a, b, c, d] = palette(store).await;
    let report = delete_where(
        store,
        DeleteSelector {
            tags: Some(TagFilter::any(tag_list("red,blue"))),
            ..DeleteSelector::default()
        },
        false,
    )
    .await;
    assert_eq!(
        report.hashes,
        newest_first(&[&a, &b, &c]),
        "reported hashes"
    );
    assert_eq!(
        live(store).await,
        vec![d.content_hash().clone()],
        "survivors"
    );
}

/// `delete_memories` with an all-tags condition deletes only memories with every tag.
pub async fn delete_memories_by_all_tags_needs_every_tag(store: &dyn MemoryStorage) {
    let [a, b, c, d] = palette(store).await;
    let report = delete_where(
        store,
        DeleteSelector {
            tags: Some(TagFilter::all(tag_list("red,blue"))),
            ..DeleteSelector::default()
        },
        false,
    )
    .await;
    assert_eq!(
        report.hashes,
        vec![a.content_hash().clone()],
        "reported hashes"
    );
    assert_eq!(live(store).await, newest_first(&[&b, &c, &d]), "survivors");
}

/// `before` selects memories created at or before it.
pub async fn delete_memories_before_is_inclusive(store: &dyn MemoryStorage) {
    let [a, b, c, d] = palette(store).await;
    let report = delete_where(
        store,
        DeleteSelector {
            before: Some(b.created_at),
            ..DeleteSelector::default()
        },
        false,
    )
    .await;
    assert_eq!(
        report.hashes,
        newest_first(&[&a, &b]),
        "before = b.created_at"
    );
    assert_eq!(live(store).await, newest_first(&[&c, &d]), "survivors");
}

/// `after` selects memories created at or after it.
pub async fn delete_memories_after_is_inclusive(store: &dyn MemoryStorage) {
    let [a, b, c, d] = palette(store).await;
    let report = delete_where(
        store,
        DeleteSelector {
            after: Some(c.created_at),
            ..DeleteSelector::default()
        },
        false,
    )
    .await;
    assert_eq!(
        report.hashes,
        newest_first(&[&c, &d]),
        "after = c.created_at"
    );
    assert_eq!(live(store).await, newest_first(&[&a, &b]), "survivors");
}

/// Conditions of one selector combine with AND.
pub async fn delete_memories_conditions_combine_with_and(store: &dyn MemoryStorage) {
    let [a, b, c, d] = palette(store).await;
    let report = delete_where(
        store,
        DeleteSelector {
            hashes: vec![a.content_hash().clone(), d.content_hash().clone()],
            tags: Some(TagFilter::any(tag_list("red"))),
            ..DeleteSelector::default()
        },
        false,
    )
    .await;
    assert_eq!(
        report.hashes,
        vec![a.content_hash().clone()],
        "hashes AND tag red"
    );
    let report = delete_where(
        store,
        DeleteSelector {
            tags: Some(TagFilter::any(tag_list("red,blue,green"))),
            after: Some(b.created_at),
            before: Some(c.created_at),
            ..DeleteSelector::default()
        },
        false,
    )
    .await;
    assert_eq!(
        report.hashes,
        newest_first(&[&b, &c]),
        "tags AND after AND before"
    );
    assert_eq!(
        live(store).await,
        vec![d.content_hash().clone()],
        "survivors"
    );
}

/// A dry run deletes nothing and reports exactly the hashes the real run then deletes.
pub async fn delete_memories_dry_run_reports_the_same_hashes_and_deletes_nothing(
    store: &dyn MemoryStorage,
) {
    let [a, b, c, d] = palette(store).await;
    let selector = DeleteSelector {
        tags: Some(TagFilter::any(tag_list("blue"))),
        ..DeleteSelector::default()
    };
    let dry = delete_where(store, selector.clone(), true).await;
    assert!(dry.dry_run, "a dry run is reported as one");
    assert_eq!(dry.hashes, newest_first(&[&a, &c]), "dry-run hashes");
    assert_eq!(
        live(store).await,
        newest_first(&[&a, &b, &c, &d]),
        "a dry run deletes nothing"
    );
    let real = delete_where(store, selector, false).await;
    assert!(!real.dry_run, "a real run is not reported as a dry run");
    assert_eq!(
        real.hashes, dry.hashes,
        "the real run deletes what the dry run reported"
    );
    assert_eq!(live(store).await, newest_first(&[&b, &d]), "survivors");
}

/// An empty selector, an empty tag list and `after > before` are refused, deleting nothing.
pub async fn delete_memories_with_an_empty_or_inconsistent_selector_is_invalid(
    store: &dyn MemoryStorage,
) {
    palette(store).await;
    for dry_run in [false, true] {
        let request = DeleteRequest {
            selector: DeleteSelector::default(),
            dry_run,
        };
        assert_invalid(
            store.delete_memories(&request).await,
            &["selector"],
            "an empty selector",
        );
    }
    let request = DeleteRequest {
        selector: DeleteSelector {
            tags: Some(TagFilter::any(Tags::empty())),
            ..DeleteSelector::default()
        },
        dry_run: false,
    };
    assert_invalid(
        store.delete_memories(&request).await,
        &["tags", "selector"],
        "an empty tag list",
    );
    let request = DeleteRequest {
        selector: DeleteSelector {
            after: Some(iso("2024-03-01T00:00:00Z")),
            before: Some(iso("2024-02-01T00:00:00Z")),
            ..DeleteSelector::default()
        },
        dry_run: false,
    };
    assert_invalid(
        store.delete_memories(&request).await,
        &["after", "before", "selector"],
        "after later than before",
    );
    assert_eq!(
        count(store, MemoryFilter::all()).await,
        4,
        "nothing deleted"
    );
}

// ---------------------------------------------------------------------------------------------
// Updates
// ---------------------------------------------------------------------------------------------

/// New tags replace the old ones; type and metadata stay; tag reads follow.
pub async fn update_replaces_tags_and_keeps_the_rest(store: &dyn MemoryStorage) {
    let target = update_target(store).await;
    let updated = update(
        store,
        target.content_hash(),
        MemoryUpdate {
            tags: Some(tag_list("three, Four")),
            ..MemoryUpdate::default()
        },
        true,
    )
    .await;
    assert_eq!(updated.tags, tag_list("three,four"), "tags replaced");
    assert_eq!(updated.memory_type, target.memory_type, "type kept");
    assert_eq!(updated.metadata, target.metadata, "metadata kept");
    assert_eq!(updated.content(), target.content(), "content kept");
    assert!(
        store
            .search_by_tag(&tag_list("one,two"))
            .await
            .expect("search_by_tag")
            .is_empty(),
        "old tags no longer find the memory"
    );
    assert_eq!(
        store.get_all_tags().await.expect("get_all_tags"),
        vec![
            TagCount {
                tag: "four".into(),
                count: 1
            },
            TagCount {
                tag: "three".into(),
                count: 1
            },
        ],
        "tag counts after the update"
    );
}

/// `Some(Some(t))` sets the memory type, `Some(None)` clears it, `None` leaves it.
pub async fn update_sets_and_clears_memory_type(store: &dyn MemoryStorage) {
    let target = update_target(store).await;
    let h = target.content_hash();
    let set = MemoryUpdate {
        memory_type: Some(Some("decision".into())),
        ..MemoryUpdate::default()
    };
    let updated = update(store, h, set, true).await;
    assert_eq!(updated.memory_type.as_deref(), Some("decision"), "type set");
    assert_eq!(
        hashes(&list(store, MemoryFilter::all().with_memory_type("decision")).await),
        vec![h.clone()],
        "list by the new type"
    );
    let keep = MemoryUpdate {
        metadata: Some(meta(r#"{"touched":true}"#)),
        ..MemoryUpdate::default()
    };
    let updated = update(store, h, keep, true).await;
    assert_eq!(
        updated.memory_type.as_deref(),
        Some("decision"),
        "type left as is"
    );
    let clear = MemoryUpdate {
        memory_type: Some(None),
        ..MemoryUpdate::default()
    };
    let updated = update(store, h, clear, true).await;
    assert_eq!(updated.memory_type, None, "type cleared");
    assert!(
        list(store, MemoryFilter::all().with_memory_type("decision"))
            .await
            .is_empty(),
        "no memory has the cleared type"
    );
}

/// Metadata is merged: old keys are kept, keys given replace the same keys.
pub async fn update_merges_metadata(store: &dyn MemoryStorage) {
    let target = update_target(store).await;
    let updated = update(
        store,
        target.content_hash(),
        MemoryUpdate {
            metadata: Some(meta(r#"{"b":3,"c":{"nested":[true,null]}}"#)),
            ..MemoryUpdate::default()
        },
        true,
    )
    .await;
    assert_eq!(
        updated.metadata,
        meta(r#"{"a":1,"b":3,"c":{"nested":[true,null]}}"#),
        "merged metadata"
    );
    assert_eq!(updated.tags, target.tags, "tags kept");
}

/// An update's `metadata.tags` and `metadata.type` set the tags and type, as on store, and
/// do not land in the metadata.
pub async fn update_moves_metadata_tags_and_type_into_the_memorys_own(store: &dyn MemoryStorage) {
    let target = update_target(store).await;
    let updated = update(
        store,
        target.content_hash(),
        MemoryUpdate {
            metadata: Some(meta(r#"{"tags": ["moved"], "type": "decision", "b": 9}"#)),
            ..MemoryUpdate::default()
        },
        true,
    )
    .await;
    assert_eq!(updated.tags.as_slice(), ["moved"]);
    assert_eq!(updated.memory_type.as_deref(), Some("decision"));
    assert_eq!(updated.metadata.get("tags"), None);
    assert_eq!(updated.metadata.get("type"), None);
    assert_eq!(updated.metadata.get("b"), Some(&serde_json::json!(9)));
    let found = store
        .search_by_tag(&tag_list("moved"))
        .await
        .expect("search_by_tag");
    assert_eq!(found.len(), 1);
}

/// With `preserve_timestamps`, `created_at` is kept (even if the update gives one) and
/// `updated_at` becomes the time of the call.
pub async fn update_preserving_timestamps_keeps_created_at_and_advances_updated_at(
    store: &dyn MemoryStorage,
) {
    let target = update_target(store).await;
    let before = Timestamp::now();
    let updated = update(
        store,
        target.content_hash(),
        MemoryUpdate {
            tags: Some(tag_list("preserved")),
            created_at: Some(iso("2020-01-01T00:00:00Z")),
            ..MemoryUpdate::default()
        },
        true,
    )
    .await;
    let after = Timestamp::now();
    assert_eq!(
        updated.created_at, target.created_at,
        "created_at preserved"
    );
    assert!(
        updated.updated_at > target.updated_at,
        "updated_at should advance past {}",
        target.updated_at
    );
    assert_stamped_now(updated.updated_at, before, after, "updated_at");
}

/// Without `preserve_timestamps`, `created_at` becomes the update's `created_at`.
pub async fn update_without_preserving_timestamps_uses_the_given_created_at(
    store: &dyn MemoryStorage,
) {
    let target = update_target(store).await;
    let new_created = iso("2023-06-01T12:34:56.789012Z");
    let before = Timestamp::now();
    let updated = update(
        store,
        target.content_hash(),
        MemoryUpdate {
            created_at: Some(new_created),
            ..MemoryUpdate::default()
        },
        false,
    )
    .await;
    let after = Timestamp::now();
    assert_eq!(
        updated.created_at, new_created,
        "created_at from the update"
    );
    assert_stamped_now(updated.updated_at, before, after, "updated_at");
    let found = store
        .get_memories_by_time_range(new_created, new_created)
        .await
        .expect("time range at the new created_at");
    assert_eq!(
        hashes(&found),
        vec![target.content_hash().clone()],
        "time queries follow the new created_at"
    );
}

/// Without `preserve_timestamps` and no `created_at` in the update, `created_at` becomes now.
pub async fn update_without_preserving_timestamps_or_created_at_sets_created_at_to_now(
    store: &dyn MemoryStorage,
) {
    let target = update_target(store).await;
    let before = Timestamp::now();
    let updated = update(
        store,
        target.content_hash(),
        MemoryUpdate {
            tags: Some(tag_list("restamped")),
            ..MemoryUpdate::default()
        },
        false,
    )
    .await;
    let after = Timestamp::now();
    assert_ne!(updated.created_at, target.created_at, "created_at changed");
    assert_stamped_now(updated.created_at, before, after, "created_at");
    assert_stamped_now(updated.updated_at, before, after, "updated_at");
}

/// Updating a hash nothing was stored under is [`StorageError::NotFound`].
pub async fn update_of_an_unknown_hash_is_not_found(store: &dyn MemoryStorage) {
    update_target(store).await;
    let unknown = ContentHash::of("never stored for update");
    let result = store
        .update_memory_metadata(
            &unknown,
            MemoryUpdate {
                tags: Some(tag_list("x")),
                ..MemoryUpdate::default()
            },
            true,
        )
        .await;
    assert_not_found(result, &unknown, "update of an unknown hash");
}

/// Updating a deleted memory is [`StorageError::NotFound`] and does not bring it back.
pub async fn update_of_a_deleted_memory_is_not_found(store: &dyn MemoryStorage) {
    let target = update_target(store).await;
    delete(store, target.content_hash()).await;
    let result = store
        .update_memory_metadata(
            target.content_hash(),
            MemoryUpdate {
                tags: Some(tag_list("x")),
                ..MemoryUpdate::default()
            },
            true,
        )
        .await;
    assert_not_found(result, target.content_hash(), "update of a deleted memory");
    assert!(
        get(store, target.content_hash()).await.is_none(),
        "the deleted memory stays deleted"
    );
}

// ---------------------------------------------------------------------------------------------
// Ordering, paging, counting
// ---------------------------------------------------------------------------------------------

/// `get_recent_memories(n)` returns the `n` newest memories, newest first.
pub async fn recent_memories_are_newest_first_and_limited_to_n(store: &dyn MemoryStorage) {
    let mut stored = Vec::new();
    for day in 1..=5 {
        stored.push(
            put(
                store,
                mem(&format!("Journal entry number {day}"), "")
                    .with_created_at(iso(&format!("2024-01-0{day}T09:00:00Z"))),
            )
            .await,
        );
    }
    let recent = store
        .get_recent_memories(3)
        .await
        .expect("get_recent_memories(3)");
    assert_eq!(
        hashes(&recent),
        newest_first(&[&stored[2], &stored[3], &stored[4]]),
        "the three newest"
    );
    let all = store
        .get_recent_memories(10)
        .await
        .expect("get_recent_memories(10)");
    assert_eq!(
        hashes(&all),
        newest_first(&stored.iter().collect::<Vec<_>>()),
        "n above the count returns all"
    );
}

/// `get_recent_memories` with `n` of 0 or above [`MAX_RESULTS`] is refused naming `n`.
pub async fn recent_memories_with_n_out_of_range_is_invalid(store: &dyn MemoryStorage) {
    put(store, mem("Something recent", "")).await;
    assert_invalid(store.get_recent_memories(0).await, &["n"], "n = 0");
    assert_invalid(
        store.get_recent_memories(MAX_RESULTS + 1).await,
        &["n"],
        "n = MAX_RESULTS + 1",
    );
    let at_max = store.get_recent_memories(MAX_RESULTS).await;
    assert!(
        matches!(&at_max, Ok(v) if v.len() == 1),
        "n = MAX_RESULTS is allowed, got {at_max:?}"
    );
}

/// Lists are newest first; memories created at the same instant are ordered by hash
/// descending.
pub async fn list_is_newest_first_with_ties_broken_by_hash_descending(store: &dyn MemoryStorage) {
    let tie = iso("2024-04-04T04:04:04.040404Z");
    let older = put(
        store,
        mem("The oldest of the lot", "").with_created_at(iso("2024-04-01T00:00:00Z")),
    )
    .await;
    let tie_a = put(store, mem("Tied memory alpha", "").with_created_at(tie)).await;
    let tie_b = put(store, mem("Tied memory bravo", "").with_created_at(tie)).await;
    let tie_c = put(store, mem("Tied memory charlie", "").with_created_at(tie)).await;
    let newer = put(
        store,
        mem("The newest of the lot", "").with_created_at(iso("2024-04-09T00:00:00Z")),
    )
    .await;
    assert_eq!(
        live(store).await,
        newest_first(&[&older, &tie_a, &tie_b, &tie_c, &newer]),
        "list order"
    );
}

/// Paging by offset and limit visits every memory exactly once, in list order; past the end
/// is empty.
pub async fn list_pages_cover_every_memory_exactly_once(store: &dyn MemoryStorage) {
    let tie = iso("2024-05-05T05:05:05Z");
    let memories = (0..7)
        .map(|i| {
            let created = if i % 3 == 0 {
                tie
            } else {
                iso(&format!("2024-05-0{}T00:00:00Z", i + 1))
            };
            mem(&format!("Paged memory {i}"), "").with_created_at(created)
        })
        .collect();
    let stored = put_batch(store, memories).await;
    let everything = live(store).await;
    assert_eq!(
        everything,
        newest_first(&stored.iter().collect::<Vec<_>>()),
        "the full list"
    );
    let mut paged = Vec::new();
    for offset in [0, 3, 6] {
        let page = store
            .list(&ListQuery {
                filter: MemoryFilter::all(),
                offset,
                limit: Some(3),
            })
            .await
            .expect("list page");
        assert!(page.len() <= 3, "a page holds at most its limit");
        paged.extend(hashes(&page));
    }
    assert_eq!(paged, everything, "pages concatenated equal the full list");
    let unique: HashSet<_> = paged.iter().collect();
    assert_eq!(unique.len(), 7, "no memory appears on two pages");
    let page2 = store
        .list(&ListQuery::page(MemoryFilter::all(), 2, 3).expect("page 2 of 3"))
        .await
        .expect("ListQuery::page");
    assert_eq!(
        hashes(&page2),
        everything[3..6].to_vec(),
        "ListQuery::page(2, 3)"
    );
    let past = store
        .list(&ListQuery {
            filter: MemoryFilter::all(),
            offset: 7,
            limit: Some(3),
        })
        .await
        .expect("list past the end");
    assert!(past.is_empty(), "a page past the end is empty");
}

/// `list` applies tag, memory-type and time conditions together.
pub async fn list_filters_by_tags_memory_type_and_time(store: &dyn MemoryStorage) {
    let a = put(
        store,
        typed(mem("Filter A", "x"), "note").with_created_at(iso("2024-01-01T00:00:00Z")),
    )
    .await;
    let b = put(
        store,
        typed(mem("Filter B", "x,y"), "decision").with_created_at(iso("2024-02-01T00:00:00Z")),
    )
    .await;
    let c = put(
        store,
        typed(mem("Filter C", "y"), "note").with_created_at(iso("2024-03-01T00:00:00Z")),
    )
    .await;
    let _d = put(
        store,
        mem("Filter D", "").with_created_at(iso("2024-04-01T00:00:00Z")),
    )
    .await;
    let x = || TagFilter::any(tag_list("x"));
    let cases = [
        (
            MemoryFilter::all().with_tags(x()),
            newest_first(&[&a, &b]),
            "tag x",
        ),
        (
            MemoryFilter::all().with_memory_type("note"),
            newest_first(&[&a, &c]),
            "type note",
        ),
        (
            MemoryFilter::all().with_tags(x()).with_memory_type("note"),
            vec![a.content_hash().clone()],
            "tag x and type note",
        ),
        (
            MemoryFilter::all()
                .with_tags(TagFilter::any(tag_list("y")))
                .with_time(range(
                    iso("2024-01-15T00:00:00Z"),
                    iso("2024-02-15T00:00:00Z"),
                )),
            vec![b.content_hash().clone()],
            "tag y in the first half of February",
        ),
        (
            MemoryFilter::all().with_memory_type("no-such-type"),
            Vec::new(),
            "an unused type",
        ),
    ];
    for (filter, expected, what) in cases {
        assert_eq!(hashes(&list(store, filter).await), expected, "list: {what}");
    }
}

/// `count` agrees with the length of `list` for every filter.
pub async fn count_with_filters_equals_list_length(store: &dyn MemoryStorage) {
    let [a, _b, _c, d] = palette(store).await;
    update(
        store,
        a.content_hash(),
        MemoryUpdate {
            memory_type: Some(Some("note".into())),
            ..MemoryUpdate::default()
        },
        true,
    )
    .await;
    update(
        store,
        d.content_hash(),
        MemoryUpdate {
            memory_type: Some(Some("note".into())),
            ..MemoryUpdate::default()
        },
        true,
    )
    .await;
    let filters = [
        MemoryFilter::all(),
        MemoryFilter::all().with_tags(TagFilter::any(tag_list("red,blue"))),
        MemoryFilter::all().with_tags(TagFilter::all(tag_list("red,blue"))),
        MemoryFilter::all().with_tags(TagFilter::any(Tags::empty())),
        MemoryFilter::all().with_memory_type("note"),
        MemoryFilter::all().with_time(range(
            iso("2024-02-01T00:00:00Z"),
            iso("2024-03-01T00:00:00Z"),
        )),
        MemoryFilter::all()
            .with_tags(TagFilter::any(tag_list("red,green")))
            .with_memory_type("note")
            .with_time(range(
                iso("2024-01-01T00:00:00Z"),
                iso("2024-12-31T00:00:00Z"),
            )),
    ];
    for filter in filters {
        let listed = list(store, filter.clone()).await.len() as u64;
        assert_eq!(
            count(store, filter.clone()).await,
            listed,
            "count vs list for {filter:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Semantic search
// ---------------------------------------------------------------------------------------------

/// A query equal to one memory's text ranks it first with relevance near 1.0, returning the
/// memory with every field.
pub async fn retrieve_ranks_the_verbatim_text_first_with_relevance_near_one(
    store: &dyn MemoryStorage,
) {
    let [_, sourdough, _] = three_subjects(store).await;
    let hits = store
        .retrieve(sourdough.content(), 3)
        .await
        .expect("retrieve");
    assert!(
        !hits.is_empty() && hits.len() <= 3,
        "retrieve(3) gave {} hits",
        hits.len()
    );
    let first = &hits[0];
    assert_eq!(
        first.memory.content_hash(),
        sourdough.content_hash(),
        "the verbatim memory ranks first"
    );
    assert!(
        first.relevance_score > VERBATIM_RELEVANCE,
        "verbatim relevance {} should exceed {VERBATIM_RELEVANCE}",
        first.relevance_score
    );
    assert_same(&first.memory, &sourdough, "the memory in a search result");
}

/// Results come most relevant first, never more than asked for, each memory once.
pub async fn search_results_are_ordered_by_relevance_and_limited(store: &dyn MemoryStorage) {
    let [lighthouse, _, _] = three_subjects(store).await;
    put(
        store,
        mem("Lighthouses use Fresnel lenses to focus their beam", ""),
    )
    .await;
    put(store, mem("Quarterly revenue grew by four percent", "")).await;
    let hits = search(store, SemanticQuery::new(lighthouse.content(), 3)).await;
    assert_eq!(hits.len(), 3, "limit 3 of 5 memories");
    assert_ordered_by_relevance(&hits, "search");
    let all = search(store, SemanticQuery::new(lighthouse.content(), 50)).await;
    assert_eq!(all.len(), 5, "a limit above the count returns every memory");
    assert_ordered_by_relevance(&all, "search(50)");
    let unique: HashSet<_> = hit_hashes(&all).into_iter().collect();
    assert_eq!(unique.len(), 5, "each memory appears once");
    assert_eq!(
        hit_hashes(&hits),
        hit_hashes(&all)[..3].to_vec(),
        "the top 3 are the head of the full ranking"
    );
}

/// With a tag filter, search ranks only tagged memories and returns the true top `n` among
/// them, even when untagged memories are closer to the query.
pub async fn search_with_a_tag_filter_returns_the_true_top_n_among_tagged(
    store: &dyn MemoryStorage,
) {
    let mut batch = Vec::new();
    for i in 0..30 {
        batch.push(mem(
            &format!("Deployment checklist for the payments service, step {i}"),
            "",
        ));
    }
    for i in 0..10 {
        batch.push(mem(
            &format!("Payments service deployment checklist, reviewed item {i}"),
            "reviewed",
        ));
    }
    put_batch(store, batch).await;
    let query = "Deployment checklist for the payments service, step 7";
    let unfiltered = search(store, SemanticQuery::new(query, 5)).await;
    assert!(
        unfiltered
            .first()
            .is_some_and(|h| h.memory.content() == query && h.memory.tags.is_empty()),
        "the untagged verbatim memory ranks first without a filter, so a post-filtered \
         global top 5 would hold at most 4 tagged memories"
    );
    let filter = MemoryFilter::all().with_tags(TagFilter::any(tag_list("reviewed")));
    let top5 = search(
        store,
        SemanticQuery::new(query, 5).with_filter(filter.clone()),
    )
    .await;
    assert_eq!(
        top5.len(),
        5,
        "5 tagged results (not a post-filtered global top 5)"
    );
    for hit in &top5 {
        assert!(
            hit.memory.tags.contains("reviewed"),
            "an untagged memory passed the tag filter: {:?}",
            hit.memory.content()
        );
    }
    assert_ordered_by_relevance(&top5, "filtered search");
    let top10 = search(store, SemanticQuery::new(query, 10).with_filter(filter)).await;
    assert_eq!(top10.len(), 10, "all 10 tagged memories");
    let sixth = top10[5].relevance_score;
    for hit in &top5 {
        assert!(
            hit.relevance_score >= sixth - 1e-5,
            "the top 5 must be the best tagged memories: {} < sixth best {sixth}",
            hit.relevance_score
        );
    }
}

/// Search applies memory-type and time conditions before ranking.
pub async fn search_honours_memory_type_and_time_filters(store: &dyn MemoryStorage) {
    let wanted = put(
        store,
        typed(
            mem("Invoice numbering restarts every fiscal year", ""),
            "note",
        )
        .with_created_at(iso("2024-02-01T00:00:00Z")),
    )
    .await;
    let wrong_type = put(
        store,
        typed(
            mem("Invoice numbering restarts every fiscal period", ""),
            "task",
        )
        .with_created_at(iso("2024-02-02T00:00:00Z")),
    )
    .await;
    let wrong_time = put(
        store,
        typed(
            mem("Invoice numbering restarts every fiscal cycle", ""),
            "note",
        )
        .with_created_at(iso("2022-02-01T00:00:00Z")),
    )
    .await;
    let filter = MemoryFilter::all()
        .with_memory_type("note")
        .with_time(range(
            iso("2024-01-01T00:00:00Z"),
            iso("2024-12-31T23:59:59Z"),
        ));
    let hits = search(
        store,
        SemanticQuery::new(wrong_time.content(), 10).with_filter(filter),
    )
    .await;
    assert_eq!(
        hit_hashes(&hits),
        vec![wanted.content_hash().clone()],
        "only the note of 2024 (not {:?} nor {:?})",
        wrong_type.content(),
        wrong_time.content()
    );
}

/// A search limit of 0 or above [`MAX_RESULTS`] is refused naming the field.
pub async fn search_with_limit_out_of_range_is_invalid_naming_the_field(store: &dyn MemoryStorage) {
    put(store, mem("Anything to search", "")).await;
    assert_invalid(
        store.search(&SemanticQuery::new("anything", 0)).await,
        &["limit"],
        "search limit 0",
    );
    assert_invalid(
        store
            .search(&SemanticQuery::new("anything", MAX_RESULTS + 1))
            .await,
        &["limit"],
        "search limit MAX_RESULTS + 1",
    );
    assert_invalid(
        store.retrieve("anything", 0).await,
        &["n", "limit"],
        "retrieve n 0",
    );
    assert_invalid(
        store.retrieve("anything", MAX_RESULTS + 1).await,
        &["n", "limit"],
        "retrieve n MAX_RESULTS + 1",
    );
    let at_max = store
        .search(&SemanticQuery::new("anything", MAX_RESULTS))
        .await;
    assert!(
        matches!(&at_max, Ok(v) if v.len() == 1),
        "limit MAX_RESULTS is allowed, got {at_max:?}"
    );
}

/// An empty or white-space query is refused naming `query`.
pub async fn search_with_an_empty_query_is_invalid(store: &dyn MemoryStorage) {
    put(store, mem("Anything to search", "")).await;
    for text in ["", "   \n\t"] {
        assert_invalid(
            store.search(&SemanticQuery::new(text, 5)).await,
            &["query"],
            "search with an empty query",
        );
        assert_invalid(
            store.retrieve(text, 5).await,
            &["query"],
            "retrieve with an empty query",
        );
    }
}

/// Results below `min_similarity` are dropped; a threshold outside `[-1, 1]` is refused.
pub async fn search_honours_min_similarity(store: &dyn MemoryStorage) {
    let [lighthouse, _, _] = three_subjects(store).await;
    let ranked = search(store, SemanticQuery::new(lighthouse.content(), 3)).await;
    assert_eq!(ranked.len(), 3, "unfiltered search");
    assert!(
        ranked[0].relevance_score > ranked[1].relevance_score,
        "the verbatim memory should score above the others: {} vs {}",
        ranked[0].relevance_score,
        ranked[1].relevance_score
    );
    let threshold = (ranked[0].relevance_score + ranked[1].relevance_score) / 2.0;
    let mut query = SemanticQuery::new(lighthouse.content(), 3);
    query.min_similarity = Some(threshold);
    let kept = search(store, query.clone()).await;
    assert_eq!(
        hit_hashes(&kept),
        vec![lighthouse.content_hash().clone()],
        "min_similarity {threshold} keeps only the verbatim memory"
    );
    assert!(
        kept.iter().all(|h| h.relevance_score >= threshold),
        "every result reaches min_similarity"
    );
    query.min_similarity = Some(1.5);
    assert_invalid(
        store.search(&query).await,
        &["min_similarity"],
        "min_similarity 1.5",
    );
}

/// Searching an empty store succeeds with no results.
pub async fn search_of_an_empty_store_is_empty(store: &dyn MemoryStorage) {
    let hits = search(store, SemanticQuery::new("anything at all", 5)).await;
    assert!(hits.is_empty(), "search of an empty store");
}

// ---------------------------------------------------------------------------------------------
// Recall
// ---------------------------------------------------------------------------------------------

/// Recall of "yesterday" (relative to a fixed now) returns exactly the memories created that
/// day, newest first, with relevance 1.0, at most `n` of them.
pub async fn recall_of_a_pure_time_expression_returns_exactly_that_day(store: &dyn MemoryStorage) {
    let entry =
        |label: &str, at: &str| mem(&format!("Logbook entry {label}"), "").with_created_at(iso(at));
    put(store, entry("before", "2024-05-13T23:30:00Z")).await;
    let early = put(store, entry("early", "2024-05-14T00:30:00Z")).await;
    let noon = put(store, entry("noon", "2024-05-14T12:00:00Z")).await;
    let late = put(store, entry("late", "2024-05-14T23:30:00Z")).await;
    put(store, entry("after", "2024-05-15T00:30:00Z")).await;
    let hits = store
        .recall_memory_at("yesterday", 10, recall_now())
        .await
        .expect("recall_memory_at(yesterday)");
    assert_eq!(
        hit_hashes(&hits),
        newest_first(&[&early, &noon, &late]),
        "recall of yesterday (2024-05-14)"
    );
    for hit in &hits {
        assert!(
            (hit.relevance_score - 1.0).abs() < 1e-6,
            "a time-only recall has relevance 1.0, got {}",
            hit.relevance_score
        );
    }
    let two = store
        .recall_memory_at("yesterday", 2, recall_now())
        .await
        .expect("recall_memory_at(yesterday, 2)");
    assert_eq!(
        hit_hashes(&two),
        newest_first(&[&noon, &late]),
        "recall of yesterday limited to 2"
    );
}

/// Recall with a time expression and text ranks by meaning among the memories of that range
/// only.
pub async fn recall_with_time_and_text_ranks_within_the_range_only(store: &dyn MemoryStorage) {
    let garden = put(
        store,
        mem("The greenhouse tomatoes need watering", "")
            .with_created_at(iso("2024-05-14T10:00:00Z")),
    )
    .await;
    let taxes = put(
        store,
        mem("The quarterly tax forms were filed", "").with_created_at(iso("2024-05-14T15:00:00Z")),
    )
    .await;
    let outside = put(
        store,
        mem("The greenhouse tomatoes need watering often", "")
            .with_created_at(iso("2024-05-01T10:00:00Z")),
    )
    .await;
    let hits = store
        .recall_memory_at("greenhouse tomatoes watering yesterday", 10, recall_now())
        .await
        .expect("recall_memory_at with time and text");
    let found = hit_hashes(&hits);
    assert!(
        !found.contains(outside.content_hash()),
        "recall returned a memory outside the range: {:?}",
        outside.content()
    );
    assert!(
        found
            .iter()
            .all(|h| h == garden.content_hash() || h == taxes.content_hash()),
        "recall returned only memories of yesterday"
    );
    assert_eq!(
        found.first(),
        Some(garden.content_hash()),
        "the closest memory in the range ranks first"
    );
    assert_ordered_by_relevance(&hits, "recall with text");
}

/// Recall of a query with no time expression gives what retrieve gives.
pub async fn recall_without_a_time_expression_behaves_like_retrieve(store: &dyn MemoryStorage) {
    let [_, _, kubernetes] = three_subjects(store).await;
    let recalled = store
        .recall_memory_at(kubernetes.content(), 3, recall_now())
        .await
        .expect("recall_memory_at without a time expression");
    let retrieved = store
        .retrieve(kubernetes.content(), 3)
        .await
        .expect("retrieve");
    assert_eq!(
        hit_hashes(&recalled),
        hit_hashes(&retrieved),
        "recall without time = retrieve"
    );
    for (a, b) in recalled.iter().zip(&retrieved) {
        assert!(
            (a.relevance_score - b.relevance_score).abs() < 1e-4,
            "recall and retrieve scores differ: {} vs {}",
            a.relevance_score,
            b.relevance_score
        );
    }
}

/// Recall refuses `n` out of range (naming `n`) and an empty query (naming `query`).
pub async fn recall_with_invalid_input_is_refused(store: &dyn MemoryStorage) {
    put(store, mem("Something to recall", "")).await;
    assert_invalid(
        store.recall_memory_at("yesterday", 0, recall_now()).await,
        &["n"],
        "recall n = 0",
    );
    assert_invalid(
        store
            .recall_memory_at("yesterday", MAX_RESULTS + 1, recall_now())
            .await,
        &["n"],
        "recall n = MAX_RESULTS + 1",
    );
    assert_invalid(
        store.recall_memory_at("  ", 5, recall_now()).await,
        &["query"],
        "recall with an empty query",
    );
}

// ---------------------------------------------------------------------------------------------
// Figures and maintenance
// ---------------------------------------------------------------------------------------------

/// Stats give live totals, distinct tags, the last 7 days, content bytes, no tombstones and
/// the backend and model.
pub async fn stats_report_totals_tags_week_bytes_and_model(store: &dyn MemoryStorage) {
    let a = put(
        store,
        mem("Café au lait costs more than espresso", "a,b")
            .with_created_at(ago(TimeDelta::days(1))),
    )
    .await;
    let b = put(
        store,
        mem("Naïve estimates miss the long tail", "b").with_created_at(ago(TimeDelta::days(3))),
    )
    .await;
    let c = put(
        store,
        mem("Month-old note about bicycle gears", "c").with_created_at(ago(TimeDelta::days(30))),
    )
    .await;
    let stats = store.get_stats().await.expect("get_stats");
    assert_eq!(stats.total_memories, 3, "total_memories");
    assert_eq!(stats.unique_tags, 3, "unique_tags");
    assert_eq!(
        stats.memories_this_week, 2,
        "memories_this_week (last 7 days)"
    );
    assert_eq!(
        stats.content_bytes,
        (a.content().len() + b.content().len() + c.content().len()) as u64,
        "content_bytes = sum of content lengths in bytes"
    );
    assert_eq!(stats.tombstones, 0, "tombstones");
    assert!(!stats.backend.is_empty(), "backend name is set");
    assert_eq!(
        stats.backend,
        store.backend_name(),
        "backend = backend_name()"
    );
    assert!(!stats.embedding_model.is_empty(), "embedding model is set");
    assert!(stats.embedding_dimensions > 0, "embedding dimensions > 0");
}

/// A delete moves a memory from the live totals to the tombstones.
pub async fn stats_count_tombstones_after_a_delete(store: &dyn MemoryStorage) {
    let keep = put(store, mem("Stats keeper", "kept")).await;
    let gone = put(store, mem("Stats goner", "gone")).await;
    delete(store, gone.content_hash()).await;
    let stats = store.get_stats().await.expect("get_stats");
    assert_eq!(stats.total_memories, 1, "total_memories");
    assert_eq!(stats.tombstones, 1, "tombstones");
    assert_eq!(stats.unique_tags, 1, "unique_tags of live memories");
    assert_eq!(
        stats.content_bytes,
        keep.content().len() as u64,
        "content_bytes of live memories"
    );
}

/// `get_all_tags` counts live memories per tag, most used first, then alphabetically.
pub async fn all_tags_are_counted_most_used_first_then_alphabetically(store: &dyn MemoryStorage) {
    put(store, mem("Tag count one", "gamma, beta, alpha")).await;
    put(store, mem("Tag count two", "beta, alpha")).await;
    put(store, mem("Tag count three", "delta, beta")).await;
    let tags = store.get_all_tags().await.expect("get_all_tags");
    let expected = [("beta", 3), ("alpha", 2), ("delta", 1), ("gamma", 1)]
        .map(|(tag, count)| TagCount {
            tag: tag.into(),
            count,
        })
        .to_vec();
    assert_eq!(tags, expected, "tag counts and order");
}

/// Purging removes tombstones for good: none remain and the content stores as new.
pub async fn purge_deleted_removes_tombstones_and_frees_the_hash(store: &dyn MemoryStorage) {
    let gone = put(store, mem("Purge me completely", "p")).await;
    let keep = put(store, mem("Keep me through the purge", "k")).await;
    delete(store, gone.content_hash()).await;
    let purged = store.purge_deleted(None).await.expect("purge_deleted");
    assert_eq!(purged, 1, "one tombstone purged");
    let stats = store.get_stats().await.expect("get_stats");
    assert_eq!(stats.tombstones, 0, "no tombstones after a purge");
    assert_eq!(stats.total_memories, 1, "live memories untouched");
    assert!(
        get(store, keep.content_hash()).await.is_some(),
        "the live memory survives"
    );
    let again = store.store(mem("Purge me completely", "p")).await;
    assert!(
        matches!(again, Ok(StoreOutcome::Stored)),
        "purged content stores as new (Stored, not Revived), got {again:?}"
    );
}

/// Only tombstones deleted at or before `older_than` are purged.
pub async fn purge_deleted_honours_older_than(store: &dyn MemoryStorage) {
    let gone = put(store, mem("Deleted just now", "")).await;
    delete(store, gone.content_hash()).await;
    let purged = store
        .purge_deleted(Some(iso("2000-01-01T00:00:00Z")))
        .await
        .expect("purge_deleted(2000)");
    assert_eq!(purged, 0, "a tombstone deleted after older_than stays");
    assert_eq!(
        store.get_stats().await.expect("get_stats").tombstones,
        1,
        "tombstone kept"
    );
    let later = Timestamp::from_datetime(Utc::now() + CLOCK_SLACK);
    let purged = store
        .purge_deleted(Some(later))
        .await
        .expect("purge_deleted(now)");
    assert_eq!(purged, 1, "a tombstone deleted before older_than goes");
    assert_eq!(
        store.get_stats().await.expect("get_stats").tombstones,
        0,
        "tombstone gone"
    );
}

/// On a store without legacy duplicates, cleanup examines every memory and changes nothing.
pub async fn cleanup_duplicates_on_a_clean_store_changes_nothing(store: &dyn MemoryStorage) {
    let stored = [
        put(store, mem("Clean store memory one", "x")).await,
        put(store, mem("Clean store memory two", "y")).await,
        put(store, mem("Clean store memory three", "x,y")).await,
    ];
    let report = store
        .cleanup_duplicates()
        .await
        .expect("cleanup_duplicates");
    assert_eq!(report.examined, 3, "examined = count of live memories");
    assert_eq!(report.duplicate_groups, 0, "no duplicate groups");
    assert!(
        report.removed.is_empty(),
        "nothing removed: {:?}",
        report.removed
    );
    for memory in &stored {
        let read = must_get(store, memory.content_hash(), "after cleanup").await;
        assert_same(&read, memory, "a memory after cleanup");
    }
}

// ---------------------------------------------------------------------------------------------
// Embeddings and consistency
// ---------------------------------------------------------------------------------------------

/// A deterministic vector of `dims` elements, none zero, unit length computed in `f32` (so
/// its squared norm is 1 within rounding). `seed` makes different vectors.
fn unit_test_vector(dims: usize, seed: usize) -> Vec<f32> {
    let raw: Vec<f32> = (0..dims)
        .map(|i| {
            let k = (i * 7919 + seed * 104_729) % 201;
            // -100..=100 without 0.
            let x = k as f32 - 100.0;
            if x == 0.0 { 0.5 } else { x }
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    raw.iter().map(|x| x / norm).collect()
}

/// The store's embedding dimensions, from its stats.
async fn dimensions(store: &dyn MemoryStorage) -> usize {
    store
        .get_stats()
        .await
        .expect("get_stats")
        .embedding_dimensions
}

/// `get_embeddings` of `hashes`, which must succeed with one entry per hash.
async fn embeddings(store: &dyn MemoryStorage, hashes: &[ContentHash]) -> Vec<Option<Vec<f32>>> {
    let got = store.get_embeddings(hashes).await.unwrap_or_else(|e| {
        panic!(
            "get_embeddings of {} hashes should succeed, got {e:?}",
            hashes.len()
        )
    });
    assert_eq!(got.len(), hashes.len(), "one entry per hash asked for");
    got
}

/// Bit patterns of a vector, for exact comparison (NaN-safe, `-0.0` distinct).
fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A memory stored with a unit-length embedding gets it back bit for bit; one stored with a
/// longer vector gets it back scaled to unit length; one embedded by the store gets a unit
/// vector of the store's dimensions; unknown and deleted hashes give `None`; the output
/// follows the input order (repeats included); an empty input gives an empty output.
pub async fn get_embeddings_returns_stored_vectors_in_input_order(store: &dyn MemoryStorage) {
    let dims = dimensions(store).await;
    assert!(
        embeddings(store, &[]).await.is_empty(),
        "an empty input gives an empty output"
    );
    let unit = unit_test_vector(dims, 1);
    let long_direction = unit_test_vector(dims, 2);
    let long: Vec<f32> = long_direction.iter().map(|x| x * 3.0).collect();
    let a = put(
        store,
        mem("Carried vector kept bit for bit", "emb").with_embedding(unit.clone()),
    )
    .await;
    let b = put(
        store,
        mem("Carried vector three times too long", "emb").with_embedding(long.clone()),
    )
    .await;
    let c = put(store, mem("Embedded by the store itself", "emb")).await;
    let d = put(
        store,
        mem("Deleted before its vector is asked for", "emb")
            .with_embedding(unit_test_vector(dims, 3)),
    )
    .await;
    delete(store, d.content_hash()).await;
    let unknown = ContentHash::of("never stored anywhere, for get_embeddings");
    let asked = [
        unknown.clone(),
        b.content_hash().clone(),
        a.content_hash().clone(),
        d.content_hash().clone(),
        c.content_hash().clone(),
        a.content_hash().clone(),
    ];
    let got = embeddings(store, &asked).await;
    assert!(got[0].is_none(), "an unknown hash gives None");
    assert!(got[3].is_none(), "a deleted memory gives None");
    let a_back = got[2]
        .as_ref()
        .expect("the memory with a carried unit vector has one");
    assert_eq!(
        bits(a_back),
        bits(&unit),
        "a carried unit vector comes back bit for bit"
    );
    assert_eq!(
        got[5].as_ref().map(|v| bits(v)),
        Some(bits(&unit)),
        "a hash asked for twice gets its vector twice"
    );
    let b_back = got[1]
        .as_ref()
        .expect("the memory with a carried long vector has one");
    assert_eq!(b_back.len(), dims, "dimensions of a scaled carried vector");
    for (i, (x, y)) in b_back.iter().zip(&long_direction).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5,
            "element {i} of a carried vector of length 3 should come back scaled to unit \
             length: {x} vs {y}"
        );
    }
    let c_back = got[4]
        .as_ref()
        .expect("a memory embedded by the store has a vector");
    assert_eq!(
        c_back.len(),
        dims,
        "dimensions of a vector the store computed"
    );
    let norm_sq: f32 = c_back.iter().map(|x| x * x).sum();
    assert!(
        (norm_sq - 1.0).abs() <= 1e-3,
        "a vector the store computed is unit length (squared norm {norm_sq})"
    );
    assert!(
        c_back.iter().all(|x| x.is_finite()),
        "a vector the store computed is finite"
    );
}

/// `get_embeddings` of more hashes than one backend call takes (45 stored, asked for with
/// unknown hashes in between) gives each its own vector, in order.
pub async fn get_embeddings_of_many_hashes_matches_each_one(store: &dyn MemoryStorage) {
    let dims = dimensions(store).await;
    let memories: Vec<Memory> = (0..45)
        .map(|i| {
            mem(&format!("Vector carrier number {i}"), "many")
                .with_embedding(unit_test_vector(dims, 10 + i))
        })
        .collect();
    let stored = put_batch(store, memories).await;
    let mut asked = Vec::new();
    let mut expected: Vec<Option<Vec<u32>>> = Vec::new();
    for (i, m) in stored.iter().enumerate() {
        asked.push(m.content_hash().clone());
        expected.push(Some(bits(&unit_test_vector(dims, 10 + i))));
        if i % 10 == 3 {
            asked.push(ContentHash::of(&format!("no such memory {i}")));
            expected.push(None);
        }
    }
    let got = embeddings(store, &asked).await;
    for (k, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(
            g.as_ref().map(|v| bits(v)),
            *e,
            "entry {k} ({}) of get_embeddings",
            asked[k]
        );
    }
}

/// A new, empty store is consistent and says which backend checked it.
pub async fn check_of_an_empty_store_is_consistent(store: &dyn MemoryStorage) {
    let report = store.check().await.expect("check of an empty store");
    assert_eq!(
        report.backend,
        store.backend_name(),
        "the report names the backend"
    );
    assert_eq!(report.memories_checked, 0, "no memory to check");
    assert!(
        report.is_consistent(),
        "an empty store is consistent: {report:?}"
    );
}

/// On a store written only through the trait, `check` finds nothing, counting the live
/// memories, and `repair` fixes 0, reports no action, leaves nothing remaining and changes
/// no memory.
pub async fn check_and_repair_of_a_healthy_store_find_and_change_nothing(
    store: &dyn MemoryStorage,
) {
    let kept = [
        put(store, mem("Healthy store memory one", "health,one")).await,
        put(
            store,
            typed(mem("Healthy store memory two", "health"), "note"),
        )
        .await,
        put(store, mem("Healthy store memory three", "")).await,
    ];
    let gone = put(store, mem("Healthy store memory deleted", "health")).await;
    delete(store, gone.content_hash()).await;
    let tags_before = store.get_all_tags().await.expect("get_all_tags");

    let report = store.check().await.expect("check");
    assert_eq!(
        report.backend,
        store.backend_name(),
        "the report names the backend"
    );
    assert_eq!(report.memories_checked, 3, "live memories checked");
    assert!(
        report.is_consistent(),
        "a healthy store is consistent: {report:?}"
    );

    let repaired = store.repair().await.expect("repair");
    assert_eq!(
        repaired.found, report,
        "repair starts from what check finds"
    );
    assert_eq!(repaired.fixed, 0, "nothing to fix: {repaired:?}");
    assert!(
        repaired.actions.is_empty(),
        "no action: {:?}",
        repaired.actions
    );
    assert!(
        repaired.remaining.is_empty(),
        "nothing remains: {:?}",
        repaired.remaining
    );
    assert!(repaired.is_consistent(), "consistent after repair");

    for memory in &kept {
        let read = must_get(store, memory.content_hash(), "after repair").await;
        assert_same(&read, memory, "a memory after repair");
    }
    assert!(
        get(store, gone.content_hash()).await.is_none(),
        "the deleted memory stays deleted"
    );
    assert_eq!(
        count(store, MemoryFilter::all()).await,
        3,
        "count after repair"
    );
    assert_eq!(
        store.get_all_tags().await.expect("get_all_tags"),
        tags_before,
        "tag counts after repair"
    );
    let again = store.check().await.expect("check after repair");
    assert!(again.is_consistent(), "still consistent: {again:?}");
}

// ---------------------------------------------------------------------------------------------
// Batches, concurrency, lifecycle
// ---------------------------------------------------------------------------------------------

/// `store_batch` gives one outcome per memory in input order: new ones stored, duplicates
/// within the batch and against the store reported per item, deleted ones revived.
pub async fn store_batch_reports_outcomes_in_input_order(store: &dyn MemoryStorage) {
    let existing = put(store, mem("Already in the store", "")).await;
    let deleted = put(store, mem("Deleted before the batch", "")).await;
    delete(store, deleted.content_hash()).await;
    let first = mem("First of the batch", "batch");
    let second = mem("Second of the batch", "batch");
    let batch = vec![
        first.clone(),
        second.clone(),
        mem("  FIRST of the batch ", "other"),
        mem("already in the store", ""),
        mem("Deleted before the batch", "revived"),
    ];
    assert!(
        store
            .store_batch(Vec::new())
            .await
            .expect("an empty batch")
            .is_empty(),
        "an empty batch gives no outcomes"
    );
    let outcomes = store.store_batch(batch).await.expect("store_batch");
    assert_eq!(outcomes.len(), 5, "one outcome per memory");
    assert!(
        matches!(outcomes[0], Ok(StoreOutcome::Stored)),
        "[0] new: {:?}",
        outcomes[0]
    );
    assert!(
        matches!(outcomes[1], Ok(StoreOutcome::Stored)),
        "[1] new: {:?}",
        outcomes[1]
    );
    assert_duplicate(
        &outcomes[2],
        first.content_hash(),
        "[2] duplicate within the batch",
    );
    assert_duplicate(
        &outcomes[3],
        existing.content_hash(),
        "[3] duplicate of the store",
    );
    assert!(
        matches!(outcomes[4], Ok(StoreOutcome::Revived)),
        "[4] deleted content revived: {:?}",
        outcomes[4]
    );
    let read = must_get(store, first.content_hash(), "the first of the batch").await;
    assert_same(&read, &first, "the first copy wins within a batch");
    assert_eq!(
        count(store, MemoryFilter::all()).await,
        4,
        "count after the batch"
    );
    assert!(
        get(store, second.content_hash()).await.is_some(),
        "second stored"
    );
}

/// 50 stores of distinct content at once all succeed and all are counted.
pub async fn concurrent_stores_of_distinct_content_all_succeed(store: &dyn MemoryStorage) {
    let memories: Vec<Memory> = (0..50)
        .map(|i| {
            mem(
                &format!("Concurrent note {i}: sensor {i} calibrated"),
                "concurrent",
            )
        })
        .collect();
    let outcomes = join_all(memories.iter().map(|m| store.store(m.clone()))).await;
    for (memory, outcome) in memories.iter().zip(&outcomes) {
        assert!(
            matches!(outcome, Ok(StoreOutcome::Stored)),
            "concurrent store of {:?} gave {outcome:?}",
            memory.content()
        );
    }
    assert_eq!(
        count(store, MemoryFilter::all()).await,
        50,
        "count after 50 stores"
    );
}

/// Concurrent stores of one content store it exactly once; the rest are duplicates.
pub async fn concurrent_stores_of_the_same_content_store_it_exactly_once(
    store: &dyn MemoryStorage,
) {
    let memory = mem("Everyone writes this at once", "race");
    let outcomes = join_all((0..8).map(|_| store.store(memory.clone()))).await;
    let stored = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(StoreOutcome::Stored)))
        .count();
    assert_eq!(stored, 1, "exactly one Stored among {outcomes:?}");
    for outcome in outcomes
        .iter()
        .filter(|o| !matches!(o, Ok(StoreOutcome::Stored)))
    {
        assert_duplicate(outcome, memory.content_hash(), "a losing concurrent store");
    }
    assert_eq!(
        count(store, MemoryFilter::all()).await,
        1,
        "count after the race"
    );
}

/// `initialize` may be called again at any time and keeps the data.
pub async fn initialize_is_idempotent_and_keeps_data(store: &dyn MemoryStorage) {
    store.initialize().await.expect("first initialize");
    store.initialize().await.expect("second initialize");
    let memory = put(store, mem("Survives re-initialisation", "init")).await;
    store.initialize().await.expect("initialize with data");
    let read = must_get(store, memory.content_hash(), "after initialize").await;
    assert_same(&read, &memory, "a memory after initialize");
    assert_eq!(
        count(store, MemoryFilter::all()).await,
        1,
        "count after initialize"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CleanupReport, StorageStats};
    use async_trait::async_trait;

    /// What every method of [`Stub`] panics with.
    const STUB: &str = "stub store: not implemented";

    /// A store whose every method panics: proves that generated tests run their case on the
    /// factory's store and that a failing case fails its test.
    #[derive(Debug)]
    struct Stub;

    #[async_trait]
    impl MemoryStorage for Stub {
        fn backend_name(&self) -> &'static str {
            "stub"
        }
        async fn initialize(&self) -> StorageResult<()> {
            panic!("{STUB}")
        }
        async fn store(&self, _: Memory) -> StorageResult<StoreOutcome> {
            panic!("{STUB}")
        }
        async fn search(&self, _: &SemanticQuery) -> StorageResult<Vec<MemoryQueryResult>> {
            panic!("{STUB}")
        }
        async fn list(&self, _: &ListQuery) -> StorageResult<Vec<Memory>> {
            panic!("{STUB}")
        }
        async fn count(&self, _: &MemoryFilter) -> StorageResult<u64> {
            panic!("{STUB}")
        }
        async fn get_by_hash(&self, _: &ContentHash) -> StorageResult<Option<Memory>> {
            panic!("{STUB}")
        }
        async fn delete(&self, _: &ContentHash) -> StorageResult<DeleteReport> {
            panic!("{STUB}")
        }
        async fn delete_memories(&self, _: &DeleteRequest) -> StorageResult<DeleteReport> {
            panic!("{STUB}")
        }
        async fn cleanup_duplicates(&self) -> StorageResult<CleanupReport> {
            panic!("{STUB}")
        }
        async fn update_memory_metadata(
            &self,
            _: &ContentHash,
            _: MemoryUpdate,
            _: bool,
        ) -> StorageResult<Memory> {
            panic!("{STUB}")
        }
        async fn get_stats(&self) -> StorageResult<StorageStats> {
            panic!("{STUB}")
        }
        async fn get_all_tags(&self) -> StorageResult<Vec<TagCount>> {
            panic!("{STUB}")
        }
        async fn purge_deleted(&self, _: Option<Timestamp>) -> StorageResult<u64> {
            panic!("{STUB}")
        }
        async fn check(&self) -> StorageResult<crate::ConsistencyReport> {
            panic!("{STUB}")
        }
        async fn repair(&self) -> StorageResult<crate::RepairReport> {
            panic!("{STUB}")
        }
    }

    /// A stub with a guard, the shape of a backend that keeps a temporary directory alive.
    async fn stub_with_guard() -> (Stub, String) {
        (Stub, "guard".to_owned())
    }

    /// The macro's expansion, run against the stub: every case must reach the store.
    mod expansion {
        crate::conformance_tests!(super::stub_with_guard, #[should_panic(expected = "stub store")]);
    }

    #[test]
    #[should_panic(expected = "stub store")]
    fn run_case_accepts_a_shared_store() {
        run_case(
            || async { Arc::new(Stub) as Arc<dyn MemoryStorage> },
            CASES[0],
        );
    }

    #[test]
    fn there_are_at_least_forty_uniquely_named_cases() {
        let names: HashSet<_> = CASES.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), CASES.len(), "case names are unique");
        assert!(CASES.len() >= 40, "only {} cases", CASES.len());
    }

    #[test]
    fn newest_first_orders_by_time_then_hash_descending() {
        let t = iso("2024-01-01T00:00:00Z");
        let a = mem("a", "").with_created_at(t);
        let b = mem("b", "").with_created_at(t);
        let c = mem("c", "").with_created_at(shift(t, 1));
        let order = newest_first(&[&a, &b, &c]);
        assert_eq!(order[0], *c.content_hash());
        assert!(order[1] > order[2]);
    }
}
