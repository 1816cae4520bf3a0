//! Test and benchmark helpers (feature `testing`): a Cloudflare deployment on the local
//! emulator (with the transport's request accounting) and devices on it, each a local
//! SQLite file. The crate's integration tests, its benchmarks and other crates' tests
//! share these, so a device is built one way everywhere.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::{Connect, HybridStorage, SyncEngine, SyncOptions, connect_remote_with};
use async_trait::async_trait;
use cloudflare_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use cloudflare_http::{Accounting, ApiToken, Client, ClientBuilder, ClientConfig};
use memory_cloudflare::config::{self, CloudflareConfig};
use memory_cloudflare::{CloudflareStorage, ReplicaModel};
use memory_embed::{BertEmbedder, DEFAULT_MODEL_ID, EmbedError, Embedder};
use memory_sqlite::SqliteConfig;

/// The MiniLM model, loaded once.
pub fn minilm() -> Arc<dyn Embedder> {
    static MODEL: OnceLock<Arc<dyn Embedder>> = OnceLock::new();
    MODEL
        .get_or_init(|| match BertEmbedder::open(DEFAULT_MODEL_ID) {
            Ok(model) => Arc::new(model),
            Err(e) => panic!("loading {DEFAULT_MODEL_ID} (run `cargo xtask fetch-model`): {e}"),
        })
        .clone()
}

/// An embedder that remembers every text it embedded (to prove a device never embeds
/// what another device embedded).
#[derive(Debug)]
pub struct Counting {
    inner: Arc<dyn Embedder>,
    texts: Mutex<Vec<String>>,
}

impl Counting {
    /// Counting `inner`'s calls.
    pub fn new(inner: Arc<dyn Embedder>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            texts: Mutex::new(Vec::new()),
        })
    }

    /// Every text embedded so far.
    pub fn texts(&self) -> Vec<String> {
        self.texts.lock().unwrap().clone()
    }
}

#[async_trait]
impl Embedder for Counting {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }
    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.texts.lock().unwrap().extend(texts.iter().cloned());
        self.inner.embed(texts).await
    }
}

/// One Cloudflare deployment on a fresh emulator (default Vectorize mutation delay), and a
/// client whose accounting counts every request the devices send.
pub struct Deployment {
    /// The emulator.
    pub emulator: EmulatorHandle,
    /// The backend settings of the deployment.
    pub config: CloudflareConfig,
    /// The client every device uses.
    pub client: Client,
}

impl Deployment {
    /// A fresh deployment; `tweak` adjusts the emulator (latency, budget).
    pub async fn start_with(tweak: impl FnOnce(&mut EmulatorConfig)) -> Self {
        let mut emulator_config = EmulatorConfig {
            rate_limit: u32::MAX,
            ..EmulatorConfig::default()
        };
        tweak(&mut emulator_config);
        let emulator = Emulator::start(emulator_config)
            .await
            .unwrap_or_else(|e| panic!("starting the emulator: {e:#}"));
        let vars: HashMap<&str, String> = [
            (config::TOKEN_ENV, emulator.config().tokens[0].clone()),
            (
                config::ACCOUNT_ENV,
                emulator.config().account_ids[0].clone(),
            ),
            (config::VECTORIZE_INDEX_ENV, "hybrid-test".to_owned()),
            (
                config::D1_DATABASE_ENV,
                cloudflare_emulator::d1::new_database_id(),
            ),
            (config::R2_BUCKET_ENV, "hybrid-test".to_owned()),
            (config::API_BASE_URL_ENV, emulator.base_url()),
        ]
        .into_iter()
        .collect();
        let config = CloudflareConfig::from_lookup(|k| vars.get(k).cloned())
            .unwrap_or_else(|e| panic!("the test config: {e}"));
        let mut client_config = ClientConfig::new(
            emulator.config().account_ids[0].clone(),
            ApiToken::new(emulator.config().tokens[0].clone()),
        )
        .with_base_url(emulator.base_url().parse().expect("the emulator's URL"));
        client_config.rate_limit = None;
        client_config.request_timeout = Duration::from_secs(30);
        let client = ClientBuilder::new(client_config)
            .with_accounting(Accounting::new())
            .build()
            .unwrap_or_else(|e| panic!("building the client: {e}"));
        Self {
            emulator,
            config,
            client,
        }
    }

    /// A fresh deployment with the emulator's defaults.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Requests sent by every device so far (retries not counted), by service.
    pub fn requests(&self, service: &str) -> u64 {
        self.client.accounting().service_totals(service).calls
    }

    /// Requests sent so far to D1, Vectorize and R2 together (Workers AI apart).
    pub fn storage_requests(&self) -> u64 {
        ["d1", "vectorize", "r2"]
            .iter()
            .map(|s| self.requests(s))
            .sum()
    }

    /// Forgets the counts.
    pub fn reset_counts(&self) {
        self.client.accounting().reset();
    }

    /// How a device connects to this deployment (replica mode over the shared client).
    pub fn connect(&self, model: ReplicaModel) -> Connect {
        let config = self.config.clone();
        let client = self.client.clone();
        Box::new(move || {
            let config = config.clone();
            let client = client.clone();
            let model = model.clone();
            Box::pin(async move {
                connect_remote_with(CloudflareStorage::connect_replica_with_client(
                    &config, &client, model,
                )?)
                .await
            })
        })
    }

    /// A device: the file `name.db` in `dir`, with `embedder`, syncing with `options`.
    pub async fn device_with(
        &self,
        dir: &Path,
        name: &str,
        embedder: Arc<dyn Embedder>,
        options: SyncOptions,
    ) -> HybridStorage {
        let model = ReplicaModel::new(embedder.model_id(), embedder.dimensions());
        let local = SqliteConfig::new(dir.join(format!("{name}.db")))
            .change_log(true)
            .open(embedder)
            .await
            .unwrap_or_else(|e| panic!("opening device {name}: {e}"));
        let engine = SyncEngine::new(Arc::new(local), self.connect(model), options)
            .unwrap_or_else(|e| panic!("the engine of {name}: {e}"));
        HybridStorage::new(engine)
    }

    /// A device with a counting MiniLM embedder and default pages; returns the counter too.
    pub async fn device(&self, dir: &Path, name: &str) -> (HybridStorage, Arc<Counting>) {
        let counting = Counting::new(minilm());
        let device = self
            .device_with(dir, name, counting.clone(), SyncOptions::default())
            .await;
        (device, counting)
    }
}

/// Runs rounds on every device, in turn, until a whole pass moves nothing; panics after
/// `max_passes`.
pub async fn sync_until_quiet(devices: &[&HybridStorage], max_passes: usize) {
    for _ in 0..max_passes {
        let mut moved = false;
        for d in devices {
            let r = d
                .engine()
                .sync_once(true, &|_| {})
                .await
                .unwrap_or_else(|e| panic!("a sync round failed: {e}"));
            moved |= r.did_work();
        }
        if !moved {
            return;
        }
    }
    panic!("the devices still move changes after {max_passes} passes");
}

/// A deterministic unit vector of `dims` dimensions, different for each `seed`: for memories
/// stored with a carried vector, so that filling a store embeds nothing.
#[must_use]
pub fn unit_vector(seed: u64, dims: usize) -> Vec<f32> {
    // xorshift64: cheap, deterministic, and far from zero after the first step.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..dims)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-6);
    v.into_iter().map(|a| a / n).collect()
}
