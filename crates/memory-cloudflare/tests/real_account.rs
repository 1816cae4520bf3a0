//! `CloudflareStorage` against a real Cloudflare account, when one is configured:
//! `CLOUDFLARE_API_TOKEN`, `CLOUDFLARE_ACCOUNT_ID`, `CLOUDFLARE_VECTORIZE_INDEX` and
//! `CLOUDFLARE_D1_DATABASE_ID` (optional: `CLOUDFLARE_R2_BUCKET`,
//! `CLOUDFLARE_EMBEDDING_MODEL`, the other variables of `memory_cloudflare::config`).
//! Without them the test prints `SKIPPED: set …` naming the missing variables and passes.
//!
//! Each run works in a namespace of its own (`t<random>`: its own D1 tables, Vectorize
//! namespace and R2 prefix), so it never touches other data in the account, and cleans up
//! whatever happens: it deletes and purges every memory it stored (vectors and R2 objects
//! included) and drops its namespaced tables.

use std::time::Duration;

use cloudflare_d1::{D1Client, Statement};
use cloudflare_http::ClientBuilder;
use futures::FutureExt;
use memory_cloudflare::config::{self, CloudflareConfig};
use memory_cloudflare::schema::Tables;
use memory_cloudflare::{CloudflareStorage, Namespace};
use memory_core::{Memory, Tags, Timestamp};
use memory_storage::{DeleteRequest, DeleteSelector, MemoryStorage, StoreOutcome};

/// The variables without which the test cannot run.
const REQUIRED: [&str; 4] = [
    config::TOKEN_ENV,
    config::ACCOUNT_ENV,
    config::VECTORIZE_INDEX_ENV,
    config::D1_DATABASE_ENV,
];

/// How long Vectorize may take to make a write visible to queries.
const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(90);

/// The config for this run, or `None` after printing which variables are missing.
fn config_from_env() -> Option<CloudflareConfig> {
    let missing: Vec<&str> = REQUIRED
        .into_iter()
        .filter(|v| std::env::var(v).map_or(true, |s| s.trim().is_empty()))
        .collect();
    if !missing.is_empty() {
        let why = format!(
            "SKIPPED: set {} to run against a real Cloudflare account",
            missing.join(", ")
        );
        println!("{why}");
        eprintln!("{why}");
        return None;
    }
    match CloudflareConfig::from_lookup(|k| std::env::var(k).ok()) {
        Ok(config) => Some(config),
        Err(e) => panic!("the Cloudflare variables are set but unusable: {e}"),
    }
}

fn memory(content: &str, tags: &[&str]) -> Memory {
    let tags = Tags::parse(tags.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>())
        .unwrap_or_else(|e| panic!("tags: {e}"));
    Memory::new(content)
        .unwrap_or_else(|e| panic!("memory: {e}"))
        .with_tags(tags)
}

/// Store, read, search (waiting for Vectorize to apply the writes), delete.
async fn scenario(store: &CloudflareStorage) {
    let first = memory(
        "The on-call rotation changes every Monday at nine.",
        &["oncall", "ops"],
    );
    let second = memory("The coffee machine on floor three is broken.", &["office"]);
    let large = memory(
        &"A long design document stored through the real API. ".repeat(40),
        &["docs"],
    );
    for m in [&first, &second, &large] {
        let outcome = store
            .store(m.clone())
            .await
            .unwrap_or_else(|e| panic!("store: {e}"));
        assert_eq!(outcome, StoreOutcome::Stored);
    }
    let got = store
        .get_by_hash(first.content_hash())
        .await
        .unwrap_or_else(|e| panic!("get_by_hash: {e}"))
        .unwrap_or_else(|| panic!("the memory just stored is found"));
    assert_eq!(got.content(), first.content());
    assert_eq!(got.tags, first.tags);
    let got = store
        .get_by_hash(large.content_hash())
        .await
        .unwrap_or_else(|e| panic!("get_by_hash: {e}"))
        .unwrap_or_else(|| panic!("the large memory is found"));
    assert_eq!(got.content(), large.content());

    let ops = Tags::parse(vec!["ops".to_owned()]).unwrap_or_else(|e| panic!("{e}"));
    let tagged = store
        .search_by_tag(&ops)
        .await
        .unwrap_or_else(|e| panic!("search_by_tag: {e}"));
    assert_eq!(tagged.len(), 1);

    // Vectorize applies writes asynchronously: wait until the vector is queryable.
    let started = tokio::time::Instant::now();
    loop {
        let hits = store
            .retrieve("when does the on-call rotation change?", 1)
            .await
            .unwrap_or_else(|e| panic!("retrieve: {e}"));
        if hits.first().map(|h| h.memory.content_hash()) == Some(first.content_hash()) {
            break;
        }
        assert!(
            started.elapsed() < VISIBILITY_TIMEOUT,
            "Vectorize did not return the stored memory within {VISIBILITY_TIMEOUT:?}: {hits:?}"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    }

    store
        .delete(second.content_hash())
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    assert!(
        store
            .get_by_hash(second.content_hash())
            .await
            .unwrap_or_else(|e| panic!("get_by_hash: {e}"))
            .is_none()
    );
    let stats = store
        .get_stats()
        .await
        .unwrap_or_else(|e| panic!("get_stats: {e}"));
    assert_eq!(stats.total_memories, 2, "{stats:?}");
    assert_eq!(stats.tombstones, 1, "{stats:?}");
}

/// Deletes and purges everything of this run's namespace, then drops its tables.
async fn clean_up(store: &CloudflareStorage, config: &CloudflareConfig) {
    let everything = DeleteRequest {
        selector: DeleteSelector {
            after: Some(
                Timestamp::from_epoch_seconds(0.0).unwrap_or_else(|e| panic!("epoch: {e}")),
            ),
            ..DeleteSelector::default()
        },
        dry_run: false,
    };
    if let Err(e) = store.delete_memories(&everything).await {
        eprintln!("clean-up: deleting this run's memories failed: {e}");
    }
    if let Err(e) = store.purge_deleted(None).await {
        eprintln!("clean-up: purging this run's memories failed: {e}");
    }
    let client = match ClientBuilder::new(config.client.clone()).build() {
        Ok(client) => client,
        Err(e) => {
            eprintln!("clean-up: no client to drop the tables: {e}");
            return;
        }
    };
    let d1 = D1Client::new(&client, config.d1_database_id.clone());
    let tables = store.tables().clone();
    let drops = [
        &tables.memory_tags,
        &tables.tags,
        &tables.memories,
        &tables.meta,
    ]
    .into_iter()
    .map(|t| Statement::new(format!("DROP TABLE IF EXISTS {t}")))
    .collect::<Vec<_>>();
    if let Err(e) = d1.batch(drops).await {
        eprintln!(
            "clean-up: dropping the tables {} failed: {e}; drop them by hand",
            describe(&tables)
        );
    }
}

fn describe(tables: &Tables) -> String {
    format!(
        "{}, {}, {}, {}",
        tables.memories, tables.tags, tables.memory_tags, tables.meta
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_reads_searches_and_cleans_up_in_a_namespace_of_its_own() {
    let Some(mut config) = config_from_env() else {
        return;
    };
    let namespace = format!("t{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
    config.namespace =
        Some(Namespace::new(namespace.clone()).unwrap_or_else(|e| panic!("namespace: {e}")));
    // Small enough that the test's large memory goes to R2 when a bucket is configured.
    if config.r2_bucket.is_some() {
        config.large_content_threshold = 1024;
    }
    println!("real account run in namespace {namespace}");
    let store = CloudflareStorage::connect(&config).unwrap_or_else(|e| panic!("connect: {e}"));
    store
        .initialize()
        .await
        .unwrap_or_else(|e| panic!("initialize: {e}"));

    let outcome = std::panic::AssertUnwindSafe(scenario(&store))
        .catch_unwind()
        .await;
    clean_up(&store, &config).await;
    if let Some(accounting) = store.accounting() {
        for (op, stats) in accounting.snapshot() {
            println!("{op}: {} calls, {} retries", stats.calls, stats.retries());
        }
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
