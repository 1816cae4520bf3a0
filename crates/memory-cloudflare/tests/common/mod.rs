//! Test harness of the Cloudflare backend's integration tests: an emulator of Cloudflare's
//! API on 127.0.0.1 (a fresh D1 database, Vectorize index and R2 bucket per test), the real
//! clients over one `cloudflare_http::Client` pointed at it, optionally through Prism's
//! validating proxy of Cloudflare's OpenAPI spec (every violation recorded), and the
//! `CloudflareStorage` built from those clients.
//!
//! ```ignore
//! let env = TestEnv::start(Setup::direct()).await;
//! let store = env.storage().await;
//! store.store(memory).await?;
//! assert_eq!(env.calls("d1"), 2);
//! env.assert_no_violations();
//! ```

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cloudflare_ai::{EmbeddingModel, WorkersAiClient};
use cloudflare_d1::D1Client;
use cloudflare_emulator::{Emulator, EmulatorConfig, EmulatorHandle, FaultRule};
use cloudflare_http::{
    Accounting, ApiToken, Client, ClientBuilder, ClientConfig, Operation, OperationStats,
};
use cloudflare_r2::R2Client;
use cloudflare_testkit::{Prism, ViolationLog};
use cloudflare_vectorize::{IndexClient, VectorizeClient};
use memory_cloudflare::config::{self, CloudflareConfig};
use memory_cloudflare::embedder::WorkersAiEmbedder;
use memory_cloudflare::{CloudflareStorage, Options, Parts, ReplicaModel};
use memory_embed::CachedEmbedder;
use memory_storage::MemoryStorage;

/// The Workers AI model the tests use: the emulator answers it with all-MiniLM-L6-v2 (384
/// dimensions), the model the project's tests have locally.
pub const MODEL: EmbeddingModel = EmbeddingModel::BGE_SMALL_EN_V1_5;

/// Emulator path patterns (substrings of the path after `/client/v4`) of each service, for
/// fault rules.
pub mod paths {
    /// Every D1 call.
    pub const D1: &str = "/d1/database/";
    /// Every Vectorize call.
    pub const VECTORIZE: &str = "/vectorize/v2/";
    /// Vectorize upserts.
    pub const VECTORIZE_UPSERT: &str = "/upsert";
    /// Workers AI calls.
    pub const AI: &str = "/ai/run/";
    /// R2 calls.
    pub const R2: &str = "/r2/buckets/";
}

/// How a test reaches the emulator.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Through `prism proxy --errors` (only in tests inside `cloudflare_testkit::prism_tests!`,
    /// which are ignored when Prism is not installed).
    pub via_prism: bool,
    /// Applied to the client config before building (timeouts, retries, breaker).
    pub client: fn(&mut ClientConfig),
    /// Applied to the emulator config before starting.
    pub emulator: fn(&mut EmulatorConfig),
}

impl Setup {
    /// Straight to the emulator, default settings (no client rate limit, no emulator rate
    /// limit: the tests send many requests from one token).
    pub fn direct() -> Self {
        Self {
            via_prism: false,
            client: |_| {},
            emulator: |_| {},
        }
    }

    /// Through Prism's validating proxy.
    pub fn via_prism() -> Self {
        Self {
            via_prism: true,
            ..Self::direct()
        }
    }

    /// With a client config tweak.
    pub fn with_client(mut self, tweak: fn(&mut ClientConfig)) -> Self {
        self.client = tweak;
        self
    }

    /// With an emulator config tweak.
    pub fn with_emulator(mut self, tweak: fn(&mut EmulatorConfig)) -> Self {
        self.emulator = tweak;
        self
    }
}

/// A running emulator (and Prism, when asked for) with the clients of one test.
pub struct TestEnv {
    /// The emulator; dropped (stopped) with the environment.
    pub emulator: EmulatorHandle,
    /// The validating proxy, when the setup asked for it.
    pub prism: Option<Prism>,
    /// The client every service goes through: through Prism when there is one, except the
    /// calls Prism cannot check ([`bypasses_prism`]), which go straight to the emulator over
    /// a second client sharing this one's accounting.
    pub client: Client,
    /// This test's D1 database (a fresh UUID).
    pub database_id: String,
    /// This test's Vectorize index (fresh name).
    pub index_name: String,
    /// This test's R2 bucket (fresh name).
    pub bucket: String,
    violations: ViolationLog,
}

impl std::fmt::Debug for TestEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestEnv")
            .field("base_url", &self.emulator.base_url())
            .field("prism", &self.prism.as_ref().map(Prism::base_url))
            .field("database_id", &self.database_id)
            .field("index_name", &self.index_name)
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

/// A short random suffix for names.
fn suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl TestEnv {
    /// Starts an emulator (and Prism, when asked for) per `setup`. A Prism setup belongs in
    /// a test inside `cloudflare_testkit::prism_tests!` (ignored when Prism is not installed).
    ///
    /// # Panics
    ///
    /// When the emulator or Prism cannot start or a client cannot be built.
    pub async fn start(setup: Setup) -> Self {
        let mut config = EmulatorConfig {
            rate_limit: u32::MAX,
            ..EmulatorConfig::default()
        };
        (setup.emulator)(&mut config);
        let emulator = Emulator::start(config)
            .await
            .unwrap_or_else(|e| panic!("starting the Cloudflare emulator: {e:#}"));
        let prism = if setup.via_prism {
            Some(Prism::start_proxy(&emulator.base_url()).await)
        } else {
            None
        };
        let token = ApiToken::new(emulator.config().tokens[0].clone());
        let account = emulator.config().account_ids[0].clone();
        let mut direct = ClientConfig::new(account, token).with_base_url(
            emulator
                .base_url()
                .parse()
                .unwrap_or_else(|e| panic!("the emulator's base URL: {e}")),
        );
        direct.rate_limit = None;
        direct.request_timeout = Duration::from_secs(30);
        (setup.client)(&mut direct);
        let violations = ViolationLog::default();
        let accounting = Accounting::new();
        let build = |config: ClientConfig, bypass: Option<Client>| {
            ClientBuilder::new(config)
                .with_accounting(accounting.clone())
                .with_layer(violations.recorder(bypass.map(|c| (c, bypasses_prism as fn(_) -> _))))
                .build()
                .unwrap_or_else(|e| panic!("building the Cloudflare client: {e}"))
        };
        let client = match &prism {
            Some(prism) => {
                let proxied = direct.clone().with_base_url(
                    prism
                        .base_url()
                        .parse()
                        .unwrap_or_else(|e| panic!("Prism's base URL: {e}")),
                );
                build(proxied, Some(build(direct, None)))
            }
            None => build(direct, None),
        };
        Self {
            emulator,
            prism,
            client,
            database_id: cloudflare_emulator::d1::new_database_id(),
            index_name: format!("mem-test-{}", suffix()),
            bucket: format!("mem-test-{}", suffix()),
            violations,
        }
    }

    /// A D1 client of this test's database.
    pub fn d1(&self) -> D1Client {
        D1Client::new(&self.client, self.database_id.clone())
    }

    /// The Vectorize index management client.
    pub fn vectorize(&self) -> VectorizeClient {
        VectorizeClient::new(&self.client)
    }

    /// Waits until the emulator's Vectorize has applied every write accepted so far (its
    /// mutation delay, then a read, which applies what is due), and until each of `stores`
    /// knows its own writes applied ([`CloudflareStorage::wait_for_vectors`]), so that what
    /// a `check` reports next is an issue, not a write on its way.
    ///
    /// # Panics
    ///
    /// When the index cannot be read or a store's writes do not settle within 30 s.
    pub async fn settle(&self, stores: &[&CloudflareStorage]) {
        tokio::time::sleep(self.emulator.config().mutation_delay + Duration::from_millis(100))
            .await;
        self.index()
            .info()
            .await
            .unwrap_or_else(|e| panic!("reading the index's progress: {e}"));
        for store in stores {
            let settled = store
                .wait_for_vectors(Duration::from_secs(30))
                .await
                .unwrap_or_else(|e| panic!("waiting for the index: {e}"));
            assert!(
                settled,
                "the store's vector writes were not applied within 30 s"
            );
        }
    }

    /// This test's index.
    pub fn index(&self) -> IndexClient {
        self.vectorize()
            .index(self.index_name.clone())
            .with_dimensions(u32::try_from(MODEL.dimensions()).unwrap_or(384))
    }

    /// This test's bucket.
    ///
    /// # Panics
    ///
    /// Never: the bucket name is valid.
    pub fn r2(&self) -> R2Client {
        R2Client::new(&self.client, self.bucket.clone())
            .unwrap_or_else(|e| panic!("the test bucket name: {e}"))
    }

    /// The Workers AI client of [`MODEL`].
    pub fn ai(&self) -> WorkersAiClient {
        WorkersAiClient::new(&self.client).with_model(MODEL)
    }

    /// The transport's per-operation accounting (shared by every client of this test).
    pub fn accounting(&self) -> &Accounting {
        self.client.accounting()
    }

    /// Calls made to `service` (`"d1"`, `"vectorize"`, `"r2"`, `"ai"`) since the last
    /// [`reset_counts`](Self::reset_counts) (retries not counted).
    pub fn calls(&self, service: &str) -> u64 {
        self.accounting().service_totals(service).calls
    }

    /// The counters of one operation.
    pub fn op(&self, service: &'static str, name: &'static str) -> OperationStats {
        self.accounting().get(Operation::new(service, name))
    }

    /// Calls per service: `(ai, d1, vectorize, r2)`.
    pub fn call_counts(&self) -> Counts {
        Counts {
            ai: self.calls("ai"),
            d1: self.calls("d1"),
            vectorize: self.calls("vectorize"),
            r2: self.calls("r2"),
        }
    }

    /// Forgets every counter.
    pub fn reset_counts(&self) {
        self.accounting().reset();
    }

    /// Every operation called, `service.name × calls`, for failure messages.
    pub fn describe_calls(&self) -> String {
        self.accounting()
            .snapshot()
            .iter()
            .map(|(op, s)| format!("{op}×{}", s.calls))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The backend's config for this test's database, index and bucket, the emulator's
    /// account and token and [`MODEL`] (the HTTP settings in it are not used: stores are
    /// built over [`TestEnv::client`]).
    ///
    /// # Panics
    ///
    /// If the config is refused.
    pub fn config(&self) -> CloudflareConfig {
        let vars: HashMap<&str, String> = [
            (config::TOKEN_ENV, self.emulator.config().tokens[0].clone()),
            (config::ACCOUNT_ENV, self.client.account_id().to_owned()),
            (config::VECTORIZE_INDEX_ENV, self.index_name.clone()),
            (config::D1_DATABASE_ENV, self.database_id.clone()),
            (config::R2_BUCKET_ENV, self.bucket.clone()),
            (config::EMBEDDING_MODEL_ENV, MODEL.id().to_owned()),
            (config::API_BASE_URL_ENV, self.emulator.base_url()),
        ]
        .into_iter()
        .collect();
        CloudflareConfig::from_lookup(|k| vars.get(k).cloned())
            .unwrap_or_else(|e| panic!("the test config: {e}"))
    }

    /// The collaborators of a store over this test's database, index and bucket, with the
    /// production embedder (Workers AI behind an LRU cache), for tests that replace one.
    pub fn parts(&self) -> Parts {
        Parts {
            d1: Arc::new(self.d1()),
            vectorize: Arc::new(self.index()),
            vectorize_admin: Some(Arc::new(self.vectorize())),
            index_name: self.index_name.clone(),
            r2: Some(Arc::new(self.r2())),
            embedder: Arc::new(CachedEmbedder::new(WorkersAiEmbedder::new(Arc::new(
                self.ai(),
            )))),
            accounting: Some(self.accounting().clone()),
        }
    }

    /// An initialised store wired as in production ([`CloudflareStorage::connect_with_client`])
    /// over this test's client.
    ///
    /// # Panics
    ///
    /// If the store cannot be built or initialised.
    pub async fn storage(&self) -> CloudflareStorage {
        self.storage_from(&self.config()).await
    }

    /// An initialised store for `config` over this test's client.
    ///
    /// # Panics
    ///
    /// If the store cannot be built or initialised.
    pub async fn storage_from(&self, config: &CloudflareConfig) -> CloudflareStorage {
        let store = CloudflareStorage::connect_with_client(config, &self.client)
            .unwrap_or_else(|e| panic!("building the Cloudflare store: {e}"));
        initialised(store).await
    }

    /// An initialised store over `parts` with `options`.
    ///
    /// # Panics
    ///
    /// If the store cannot be built or initialised.
    pub async fn storage_with(&self, parts: Parts, options: Options) -> CloudflareStorage {
        let store = CloudflareStorage::from_parts(parts, options)
            .unwrap_or_else(|e| panic!("building the Cloudflare store: {e}"));
        initialised(store).await
    }

    /// An initialised store in replica mode (the hybrid backend's, see
    /// [`memory_cloudflare::ReplicaModel`]) for `config` over this test's client.
    ///
    /// # Errors
    ///
    /// The store's refusal to build or initialise (a model mismatch, say).
    pub async fn replica_from(
        &self,
        config: &CloudflareConfig,
        model: ReplicaModel,
    ) -> memory_storage::StorageResult<CloudflareStorage> {
        let store = CloudflareStorage::connect_replica_with_client(config, &self.client, model)?;
        store.initialize().await?;
        Ok(store)
    }

    /// Adds a fault rule to the emulator.
    ///
    /// # Panics
    ///
    /// If the emulator refuses the rule.
    pub fn fault(&self, rule: FaultRule) -> u64 {
        self.emulator
            .faults()
            .add(rule)
            .unwrap_or_else(|e| panic!("adding a fault rule: {e}"))
    }

    /// Every exchange Prism flagged (empty when direct).
    pub fn violations(&self) -> Vec<String> {
        self.violations.violations()
    }

    /// # Panics
    ///
    /// If Prism flagged any request or response, listing each.
    pub fn assert_no_violations(&self) {
        self.violations.assert_no_violations();
    }
}

/// `store` after `initialize`.
async fn initialised(store: CloudflareStorage) -> CloudflareStorage {
    store
        .initialize()
        .await
        .unwrap_or_else(|e| panic!("initialising the Cloudflare store: {e}"));
    store
}

/// Calls per service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Workers AI.
    pub ai: u64,
    /// D1.
    pub d1: u64,
    /// Vectorize.
    pub vectorize: u64,
    /// R2.
    pub r2: u64,
}

impl Counts {
    /// Every call.
    pub fn total(&self) -> u64 {
        self.ai + self.d1 + self.vectorize + self.r2
    }
}

/// Calls that skip Prism and go straight to the emulator, because Prism cannot check them:
/// * every R2 call: the backend's object keys have slashes (`memories/<hash>`), which Prism
///   cannot route to the spec's `{object_name}` path parameter;
/// * Vectorize `get_by_ids`: the spec puts `type: object` beside the `$ref` of the array
///   Cloudflare (and the emulator) answer, and Prism applies both, so every correct answer
///   is flagged and replaced by a 500 (the emulator's own tests check this call directly
///   only, for the same reason).
pub fn bypasses_prism(operation: Operation) -> bool {
    operation.service == "r2" || operation == Operation::new("vectorize", "get_by_ids")
}

/// `text`'s vector from `store`'s own embedder (a Workers AI call unless cached).
///
/// # Panics
///
/// When the embedder fails.
pub async fn embed(store: &CloudflareStorage, text: &str) -> Vec<f32> {
    store
        .embedder()
        .embed(&[text.to_owned()])
        .await
        .unwrap_or_else(|e| panic!("embed: {e}"))
        .remove(0)
}
