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
//!
//! The `probe_*` tests settle what only a real account can (issue 14): the ids-per-call cap
//! of `delete_by_ids`/`get_by_ids`, whether a REST D1 batch is one transaction, Workers AI's
//! answer to a text beyond 512 tokens, Vectorize's mutation visibility lag, the `ratelimit`
//! headers, and local BGE (mean pooling, feature `local-embedding`) against Workers AI. Each
//! prints what it saw on lines starting `OBSERVED <topic>:` (run with `--no-capture`) and
//! asserts only what the backend relies on. With `CLOUDFLARE_API_BASE_URL` pointing at the
//! emulator (`cargo xtask emulator`, then create the index) the whole file runs against it.

use std::time::Duration;

use cloudflare_ai::WorkersAiClient;
use cloudflare_d1::{D1Client, Statement};
use cloudflare_http::{
    ClientBuilder, HttpRequest, HttpResponse, ServiceClient, empty_request, encode_segment,
    json_request,
};
use cloudflare_vectorize::{IndexClient, QueryVectors, Vector, VectorizeClient};
use futures::FutureExt;
use http::Method;
use memory_cloudflare::config::{self, CloudflareConfig};
use memory_cloudflare::schema::Tables;
use memory_cloudflare::{CloudflareStorage, Namespace};
use memory_core::{Memory, Tags, Timestamp};
use memory_embed::{ModelLocation, TokenCounter};
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

// ---------------------------------------------------------------------------------------
// Probes: what only a real account can settle (issue 14, point 6). Each prints what it
// observed on lines starting `OBSERVED <topic>:` and asserts only what the backend relies
// on. They use the per-service clients (and raw requests where a client would refuse to
// send), work under names of their own (`t<random>…`) and remove what they made. With
// `CLOUDFLARE_API_BASE_URL` pointing at the emulator they run against it too.
// ---------------------------------------------------------------------------------------

/// One probe's clients, over one `cloudflare_http::Client` built from the environment.
struct Probe {
    config: CloudflareConfig,
    client: cloudflare_http::Client,
    /// `t<12 hex>`: a name prefix no other run uses.
    run: String,
}

impl Probe {
    /// The probe's clients, or `None` after printing `SKIPPED` (no credentials).
    fn from_env(topic: &str) -> Option<Self> {
        let Some(config) = config_from_env() else {
            println!("OBSERVED {topic}: SKIPPED (no Cloudflare account configured)");
            return None;
        };
        let client = ClientBuilder::new(config.client.clone())
            .build()
            .unwrap_or_else(|e| panic!("client: {e}"));
        let run = format!("t{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
        println!("{topic}: run {run} against {}", client.base_url());
        Some(Self {
            config,
            client,
            run,
        })
    }

    fn d1(&self) -> D1Client {
        D1Client::new(&self.client, self.config.d1_database_id.clone())
    }

    fn index(&self) -> IndexClient {
        VectorizeClient::new(&self.client).index(self.config.vectorize_index.clone())
    }

    fn ai(&self) -> WorkersAiClient {
        WorkersAiClient::new(&self.client).with_model(self.config.embedding_model.clone())
    }

    /// `/accounts/{id}/vectorize/v2/indexes/{index}/{suffix}`, for raw requests.
    fn index_path(&self, suffix: &str) -> String {
        format!(
            "/accounts/{}/vectorize/v2/indexes/{}/{suffix}",
            encode_segment(self.config.account_id()),
            encode_segment(&self.config.vectorize_index)
        )
    }

    /// The index's dimensions (from its info).
    async fn dimensions(&self) -> usize {
        let info = self
            .index()
            .info()
            .await
            .unwrap_or_else(|e| panic!("vectorize info: {e}"));
        info.dimensions
            .and_then(|d| usize::try_from(d).ok())
            .unwrap_or_else(|| panic!("the index info names no dimensions: {info:?}"))
    }
}

/// A raw answer: status, selected headers, the envelope's error codes and messages.
fn describe_answer(response: &HttpResponse) -> String {
    let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap_or_default();
    let errors: Vec<String> = body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| format!("{} {}", e["code"], e["message"]))
                .collect()
        })
        .unwrap_or_default();
    format!(
        "HTTP {} success={} errors={errors:?}",
        response.status().as_u16(),
        body["success"]
    )
}

/// A random unit vector.
fn random_unit(dimensions: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dimensions)
        .map(|_| rand::random::<f32>() - 0.5)
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    for x in &mut v {
        *x /= norm;
    }
    v
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// How many ids `delete_by_ids` and `get_by_ids` take: the backend sends at most
/// `MAX_IDS_PER_CALL` (20), which must work; 21 is sent raw (the client refuses it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_vectorize_ids_per_call_cap() {
    let Some(p) = Probe::from_env("ids-cap") else {
        return;
    };
    let ids = |n: usize| -> Vec<String> { (0..n).map(|i| format!("{}-cap-{i}", p.run)).collect() };
    let index = p.index();
    let twenty = ids(cloudflare_vectorize::MAX_IDS_PER_CALL);
    let deleted = index.delete_by_ids(&twenty).await;
    println!("OBSERVED ids-cap: delete_by_ids with 20 ids: {deleted:?}");
    let got = index.get_by_ids(&twenty).await;
    println!(
        "OBSERVED ids-cap: get_by_ids with 20 ids: {:?}",
        got.as_ref().map(Vec::len)
    );
    let service = VectorizeClient::new(&p.client).service().clone();
    let body = serde_json::json!({ "ids": ids(21) });
    for op in ["delete_by_ids", "get_by_ids"] {
        let request = json_request(Method::POST, &p.index_path(op), &body)
            .unwrap_or_else(|e| panic!("request: {e}"));
        let answer = service
            .send("probe", request)
            .await
            .unwrap_or_else(|e| panic!("{op} with 21 ids: no answer: {e}"));
        println!(
            "OBSERVED ids-cap: {op} with 21 ids: {}",
            describe_answer(&answer)
        );
    }
    deleted.unwrap_or_else(|e| panic!("delete_by_ids of 20 ids (what the backend sends): {e}"));
    got.unwrap_or_else(|e| panic!("get_by_ids of 20 ids (what the backend sends): {e}"));
}

/// Whether a REST D1 batch (`/query` with `{"batch": [...]}`, what `D1Client::batch` and so
/// the backend send) is one transaction: a batch whose second statement fails leaves the
/// first statement's insert or not. The same for several statements in one `sql` string.
/// The backend's store compensation assumes the batch form is atomic, so that is asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_d1_batch_is_one_transaction() {
    let Some(p) = Probe::from_env("d1-batch") else {
        return;
    };
    let d1 = p.d1();
    let table = format!("{}_batch_probe", p.run);
    d1.query(Statement::new(format!(
        "CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"
    )))
    .await
    .unwrap_or_else(|e| panic!("create {table}: {e}"));
    let count = |id: i64| {
        let d1 = d1.clone();
        let table = table.clone();
        async move {
            let r = d1
                .query(
                    Statement::new(format!("SELECT COUNT(*) AS n FROM {table} WHERE id = ?"))
                        .bind(id),
                )
                .await
                .unwrap_or_else(|e| panic!("count: {e}"));
            r.rows
                .first()
                .and_then(|row| row.get("n"))
                .and_then(serde_json::Value::as_i64)
                .unwrap_or_else(|| panic!("no count in {r:?}"))
        }
    };

    // The batch form: the second insert violates the primary key.
    let batch = d1
        .batch(vec![
            Statement::new(format!("INSERT INTO {table} (id, v) VALUES (1, 'first')")),
            Statement::new(format!("INSERT INTO {table} (id, v) VALUES (1, 'second')")),
        ])
        .await;
    let after_batch = count(1).await;
    println!(
        "OBSERVED d1-batch: batch [insert id 1, insert id 1 again]: {}; rows with id 1 \
         afterwards: {after_batch} ({})",
        batch
            .as_ref()
            .map_or_else(|e| format!("failed: {e}"), |_| "succeeded".to_owned()),
        if after_batch == 0 {
            "rolled back: one transaction"
        } else {
            "first insert kept: NOT one transaction"
        }
    );

    // Several statements in one `sql` string (sent raw: D1Client::query expects one result).
    let service = d1.service().clone();
    let path = format!(
        "/accounts/{}/d1/database/{}/query",
        encode_segment(p.config.account_id()),
        encode_segment(&p.config.d1_database_id)
    );
    let request = json_request(
        Method::POST,
        &path,
        &serde_json::json!({
            "sql": format!(
                "INSERT INTO {table} (id, v) VALUES (2, 'first'); \
                 INSERT INTO {table} (id, v) VALUES (2, 'second');"
            )
        }),
    )
    .unwrap_or_else(|e| panic!("request: {e}"));
    let answer = service
        .send("probe", request)
        .await
        .unwrap_or_else(|e| panic!("multi-statement sql: no answer: {e}"));
    let after_multi = count(2).await;
    println!(
        "OBSERVED d1-batch: one sql string 'insert id 2; insert id 2 again': {}; rows with id 2 \
         afterwards: {after_multi} ({})",
        describe_answer(&answer),
        if after_multi == 0 {
            "rolled back"
        } else {
            "first statement kept"
        }
    );

    if let Err(e) = d1
        .query(Statement::new(format!("DROP TABLE IF EXISTS {table}")))
        .await
    {
        eprintln!("clean-up: dropping {table} failed: {e}; drop it by hand");
    }
    assert!(
        batch.is_err(),
        "the failing batch was reported as a success"
    );
    assert_eq!(
        after_batch, 0,
        "a failed REST D1 batch kept its first statement's write: the store's compensation \
         (storage/write.rs) assumes a batch is one transaction"
    );
}

/// What Workers AI does with a text beyond the BGE models' documented 512 input tokens:
/// refuse it (400) or cut it silently (then its embedding equals that of its first 512
/// tokens). Texts of exactly 512 tokens must be embedded (the backend cuts to that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_workers_ai_input_beyond_512_tokens() {
    let Some(p) = Probe::from_env("ai-tokens") else {
        return;
    };
    // BGE's WordPiece vocabulary is bert-base-uncased's, as is all-MiniLM-L6-v2's (the
    // project's test model): its tokenizer counts exactly what BGE counts.
    let counter = [
        "sentence-transformers/all-MiniLM-L6-v2",
        "BAAI/bge-small-en-v1.5",
    ]
    .into_iter()
    .find_map(|id| {
        ModelLocation::resolve(id)
            .ok()
            .and_then(|l| TokenCounter::from_dir(&l.dir).ok())
    });
    let Some(counter) = counter else {
        println!(
            "OBSERVED ai-tokens: SKIPPED (no local tokenizer to count tokens: run `cargo xtask \
             fetch-model`)"
        );
        return;
    };
    // A first part about one topic, then a different one, so an embedding that used the
    // tokens past 512 differs from that of the first 512.
    let head = "The telescope observed distant galaxies and faint stars across the night sky. ";
    let tail = "Fresh bread needs flour, water, salt and yeast, baked in a hot oven until golden. ";
    let mut text = String::new();
    while counter.count(&text).unwrap_or(0) < 520 {
        text.push_str(head);
    }
    while counter.count(&text).unwrap_or(0) < 600 {
        text.push_str(tail);
    }
    let ai = p.ai();
    let mut vectors = Vec::new();
    // Texts of 512, 513, 514 and 600 tokens, each a prefix of the next.
    for max in [512, 513, 514, 600] {
        let probe_text = counter
            .cut(&text, max)
            .unwrap_or_else(|e| panic!("cut: {e}"));
        let n = counter.count(probe_text).unwrap_or(0);
        let answer = ai.embed_one(probe_text).await;
        println!(
            "OBSERVED ai-tokens: {} with a text of {n} tokens ([CLS] and [SEP] included): {}",
            p.config.embedding_model.id(),
            match &answer {
                Ok(v) => format!("embedded ({} dimensions)", v.len()),
                Err(e) => format!("refused: {e}"),
            }
        );
        vectors.push((n, answer.ok()));
    }
    let base = vectors[0]
        .1
        .clone()
        .unwrap_or_else(|| panic!("a text of 512 tokens was refused: the backend sends those"));
    for (n, v) in &vectors[1..] {
        if let Some(v) = v {
            let c = cosine(&base, v);
            println!(
                "OBSERVED ai-tokens: cosine(embedding of {n} tokens, embedding of its first 512) \
                 = {c:.6} ({})",
                if c >= 0.9999 {
                    "the same: cut silently at 512"
                } else {
                    "different: tokens past 512 were used"
                }
            );
        }
    }
}

/// How long a Vectorize upsert takes to be visible to queries, and how the index info's
/// `processedUpToMutation` moves meanwhile; then the same for a delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_vectorize_mutation_visibility_lag() {
    let Some(p) = Probe::from_env("vectorize-lag") else {
        return;
    };
    let index = p.index();
    let dimensions = p.dimensions().await;
    let namespace = format!("{}-lag", p.run);
    let id = format!("{}-lag-0", p.run);
    let values = random_unit(dimensions);
    let query = QueryVectors::new(values.clone())
        .top_k(1)
        .namespace(namespace.clone());
    let before = index.info().await.unwrap_or_else(|e| panic!("info: {e}"));
    println!(
        "OBSERVED vectorize-lag: before: processedUpToMutation={:?} at {:?}, {:?} vectors",
        before.processed_up_to_mutation, before.processed_up_to_datetime, before.vector_count
    );
    let started = tokio::time::Instant::now();
    let written = index
        .upsert(&[Vector::new(id.clone(), values).with_namespace(namespace.clone())])
        .await
        .unwrap_or_else(|e| panic!("upsert: {e}"));
    let mutation = written.last_mutation_id().unwrap_or_default().to_owned();
    println!(
        "OBSERVED vectorize-lag: upsert answered after {:.2} s, mutation {mutation}",
        started.elapsed().as_secs_f64()
    );

    // Polls the query until the vector's presence is `want_hit`, printing every change of
    // processedUpToMutation and when it reached the upsert's mutation.
    let watch = |what: &'static str, want_hit: bool| {
        let index = index.clone();
        let query = query.clone();
        let id = id.clone();
        let mutation = mutation.clone();
        async move {
            let since = tokio::time::Instant::now();
            let mut last = None;
            let mut reached = None;
            loop {
                let info = index.info().await.unwrap_or_else(|e| panic!("info: {e}"));
                if info.processed_up_to_mutation != last {
                    println!(
                        "OBSERVED vectorize-lag: {what} +{:.2} s: processedUpToMutation={:?} \
                         at {:?}, {:?} vectors",
                        since.elapsed().as_secs_f64(),
                        info.processed_up_to_mutation,
                        info.processed_up_to_datetime,
                        info.vector_count
                    );
                    last.clone_from(&info.processed_up_to_mutation);
                }
                if reached.is_none() && info.processed_up_to_mutation.as_deref() == Some(&*mutation)
                {
                    reached = Some(since.elapsed());
                }
                let hits = index
                    .query(&query)
                    .await
                    .unwrap_or_else(|e| panic!("query: {e}"));
                let hit = hits.matches.iter().any(|m| m.id == id);
                if hit == want_hit {
                    return Some((since.elapsed(), reached));
                }
                if since.elapsed() > VISIBILITY_TIMEOUT {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let shown = watch("after upsert", true).await;
    match shown {
        Some((t, reached)) => println!(
            "OBSERVED vectorize-lag: upserted vector visible to query after {:.2} s \
             (processedUpToMutation reached its mutation after {})",
            t.as_secs_f64(),
            reached.map_or("— not seen".to_owned(), |r| format!(
                "{:.2} s",
                r.as_secs_f64()
            ))
        ),
        None => println!(
            "OBSERVED vectorize-lag: upserted vector NOT visible within {VISIBILITY_TIMEOUT:?}"
        ),
    }
    let deleted = index
        .delete_by_ids(std::slice::from_ref(&id))
        .await
        .unwrap_or_else(|e| panic!("delete_by_ids: {e}"));
    let mutation_deleted = deleted.mutation_id.clone();
    // A delete's lag means something only once the vector was visible.
    let gone = if shown.is_some() {
        let since = tokio::time::Instant::now();
        loop {
            let hits = index
                .query(&query)
                .await
                .unwrap_or_else(|e| panic!("query: {e}"));
            if !hits.matches.iter().any(|m| m.id == id) {
                break Some(since.elapsed());
            }
            if since.elapsed() > VISIBILITY_TIMEOUT {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    } else {
        None
    };
    let after = index.info().await.unwrap_or_else(|e| panic!("info: {e}"));
    println!(
        "OBSERVED vectorize-lag: delete (mutation {mutation_deleted}) visible after {}; \
         info then: processedUpToMutation={:?} at {:?}",
        match (shown, gone) {
            (None, _) => "— (not measured: the upsert never showed)".to_owned(),
            (Some(_), None) => format!("more than {VISIBILITY_TIMEOUT:?}"),
            (Some(_), Some(t)) => format!("{:.2} s", t.as_secs_f64()),
        },
        after.processed_up_to_mutation,
        after.processed_up_to_datetime
    );
    assert!(
        shown.is_some(),
        "an upsert was not visible within {VISIBILITY_TIMEOUT:?}"
    );
    assert!(
        gone.is_some(),
        "a delete was not visible within {VISIBILITY_TIMEOUT:?}"
    );
}

/// Whether each service's answers carry the `ratelimit` and `ratelimit-policy` headers
/// (IETF draft RateLimit fields), and their values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_rate_limit_headers() {
    let Some(p) = Probe::from_env("ratelimit") else {
        return;
    };
    let account = encode_segment(p.config.account_id()).to_string();
    let mut probes: Vec<(&str, ServiceClient, HttpRequest)> = vec![
        (
            "d1",
            p.d1().service().clone(),
            json_request(
                Method::POST,
                &format!(
                    "/accounts/{account}/d1/database/{}/query",
                    encode_segment(&p.config.d1_database_id)
                ),
                &serde_json::json!({ "sql": "SELECT 1" }),
            )
            .unwrap_or_else(|e| panic!("{e}")),
        ),
        (
            "vectorize",
            VectorizeClient::new(&p.client).service().clone(),
            empty_request(Method::GET, &p.index_path("info")).unwrap_or_else(|e| panic!("{e}")),
        ),
        (
            "ai",
            p.ai().service().clone(),
            json_request(
                Method::POST,
                &format!(
                    "/accounts/{account}/ai/run/{}",
                    p.config.embedding_model.id()
                ),
                &serde_json::json!({ "text": ["rate limit headers"] }),
            )
            .unwrap_or_else(|e| panic!("{e}")),
        ),
    ];
    if let Some(bucket) = &p.config.r2_bucket {
        probes.push((
            "r2",
            p.client.service("r2"),
            empty_request(
                Method::GET,
                &format!(
                    "/accounts/{account}/r2/buckets/{}/objects",
                    encode_segment(bucket)
                ),
            )
            .unwrap_or_else(|e| panic!("{e}")),
        ));
    }
    let mut with_headers = 0;
    for (service, client, request) in probes {
        let answer = client
            .send("probe", request)
            .await
            .unwrap_or_else(|e| panic!("{service}: no answer: {e}"));
        let header = |name: &str| {
            answer
                .headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let (limit, policy) = (header("ratelimit"), header("ratelimit-policy"));
        if limit.is_some() && policy.is_some() {
            with_headers += 1;
        }
        println!(
            "OBSERVED ratelimit: {service}: HTTP {}; ratelimit: {}; ratelimit-policy: {}; \
             retry-after: {}",
            answer.status().as_u16(),
            limit.as_deref().unwrap_or("(absent)"),
            policy.as_deref().unwrap_or("(absent)"),
            header("retry-after").as_deref().unwrap_or("(absent)")
        );
    }
    println!("OBSERVED ratelimit: {with_headers} service(s) answered with both headers");
}

/// Whether the local BGE model, pooled by mean as Workers AI pools it, computes the vectors
/// Workers AI computes (cosine ≥ 0.999 for each text): what a local fallback for Workers AI
/// relies on. Needs the `local-embedding` feature and the model's weights in the per-user
/// model cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_local_bge_matches_workers_ai() {
    let Some(p) = Probe::from_env("local-vs-ai") else {
        return;
    };
    #[cfg(not(feature = "local-embedding"))]
    {
        println!(
            "OBSERVED local-vs-ai: SKIPPED (built without the `local-embedding` feature: \
             `--features local-embedding`); {} not compared",
            p.config.embedding_model.id()
        );
    }
    #[cfg(feature = "local-embedding")]
    {
        use memory_embed::{BertEmbedder, Embedder, ModelSpec, Pooling};
        let cf_model = p.config.embedding_model.id().to_owned();
        let Some(spec) = ModelSpec::known(&cf_model) else {
            println!("OBSERVED local-vs-ai: SKIPPED ({cf_model} has no local equivalent)");
            return;
        };
        let Ok(location) = ModelLocation::resolve(spec.id) else {
            println!(
                "OBSERVED local-vs-ai: SKIPPED (no weights of {} in the per-user model cache: \
                 {})",
                spec.id,
                ModelLocation::user_cache_dir(spec.id)
                    .map_or_else(|| "no cache dir".to_owned(), |d| d.display().to_string())
            );
            return;
        };
        // The emulator answers with a stand-in model, not BGE: nothing to compare.
        let ai = p.ai();
        let stand_in = {
            let request = json_request(
                Method::POST,
                &format!(
                    "/accounts/{}/ai/run/{cf_model}",
                    encode_segment(p.config.account_id())
                ),
                &serde_json::json!({ "text": ["stand-in?"] }),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            ai.service()
                .send("probe", request)
                .await
                .unwrap_or_else(|e| panic!("ai: no answer: {e}"))
                .headers()
                .get("cf-emulator-stand-in")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        if let Some(stand_in) = stand_in {
            println!(
                "OBSERVED local-vs-ai: SKIPPED (Workers AI is the emulator's stand-in {stand_in}, \
                 not {cf_model})"
            );
            return;
        }
        let local =
            BertEmbedder::load_async_with_pooling(&location.dir, spec.id, Some(Pooling::Mean))
                .await
                .unwrap_or_else(|e| panic!("loading {}: {e}", spec.id));
        let texts: Vec<String> = [
            "The on-call rotation changes every Monday at nine.",
            "Rust is a systems programming language focused on memory safety.",
            "Photosynthesis converts sunlight into chemical energy in green plants.",
            "a",
            "Meeting notes: ship the release on Friday, after the security review.",
        ]
        .map(str::to_owned)
        .to_vec();
        let remote = ai
            .embed(&texts)
            .await
            .unwrap_or_else(|e| panic!("Workers AI: {e}"))
            .into_vectors();
        let locals = local
            .embed(&texts)
            .await
            .unwrap_or_else(|e| panic!("local: {e}"));
        let mut worst = f32::MAX;
        for ((text, r), l) in texts.iter().zip(&remote).zip(&locals) {
            let c = cosine(r, l);
            worst = worst.min(c);
            println!(
                "OBSERVED local-vs-ai: {cf_model} vs local {} (mean): {c:.6} for {text:?}",
                spec.id
            );
        }
        assert!(
            worst >= 0.999,
            "the local {} (mean pooling) is not Workers AI's {cf_model}: worst cosine {worst}",
            spec.id
        );
    }
}
