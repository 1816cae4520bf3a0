//! Test helpers: a [`CloudflareStorage`] over the real clients talking to a fresh local
//! emulator.

use std::sync::{Arc, OnceLock};

use cloudflare_d1::D1Client;
use cloudflare_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use cloudflare_http::{Accounting, ApiToken, ClientBuilder, ClientConfig};
use cloudflare_r2::R2Client;
use cloudflare_vectorize::VectorizeClient;
use memory_embed::{BertEmbedder, DEFAULT_MODEL_ID, Embedder};
use memory_storage::MemoryStorage;

use crate::{CloudflareStorage, Namespace, Options, Parts};

/// The local MiniLM model (384 dimensions), loaded once for every test.
pub(crate) fn local_embedder() -> Arc<dyn Embedder> {
    static MODEL: OnceLock<Arc<dyn Embedder>> = OnceLock::new();
    MODEL
        .get_or_init(|| match BertEmbedder::open(DEFAULT_MODEL_ID) {
            Ok(m) => Arc::new(m),
            Err(e) => panic!("loading {DEFAULT_MODEL_ID} for the tests: {e}"),
        })
        .clone()
}

/// A fresh emulator and the parts of a store on it (a new D1 database, index and bucket).
pub(crate) async fn emulator_parts(embedder: Arc<dyn Embedder>) -> (Parts, EmulatorHandle) {
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .expect("starting the emulator");
    let parts = parts_on(&emulator, embedder, true);
    (parts, emulator)
}

/// The parts of a store on `emulator` (database `6f1b…`, index `memories`, bucket
/// `memory-blobs`), with or without the bucket; each call has its own HTTP client and
/// accounting.
pub(crate) fn parts_on(emulator: &EmulatorHandle, embedder: Arc<dyn Embedder>, r2: bool) -> Parts {
    let account = emulator.config().account_ids[0].clone();
    let token = emulator.config().tokens[0].clone();
    let accounting = Accounting::new();
    let config = ClientConfig::new(account, ApiToken::new(token))
        .with_base_url(emulator.base_url().parse().expect("base url"));
    let client = ClientBuilder::new(config)
        .with_accounting(accounting.clone())
        .build()
        .expect("building the client");
    let vectorize = VectorizeClient::new(&client);
    Parts {
        d1: Arc::new(D1Client::new(
            &client,
            "6f1b4f3e-8a51-4c1e-9d39-2f6a5c0b7e11",
        )),
        vectorize: Arc::new(vectorize.index("memories").with_dimensions(384)),
        vectorize_admin: Some(Arc::new(vectorize)),
        index_name: "memories".into(),
        r2: r2.then(|| {
            Arc::new(R2Client::new(&client, "memory-blobs").expect("bucket"))
                as Arc<dyn cloudflare_r2::R2Api>
        }),
        embedder,
        accounting: Some(accounting),
    }
}

/// An initialized store on a fresh emulator, with `options`.
pub(crate) async fn emulator_storage_with(options: Options) -> (CloudflareStorage, EmulatorHandle) {
    let (parts, emulator) = emulator_parts(local_embedder()).await;
    let store = CloudflareStorage::from_parts(parts, options).expect("building the store");
    store.initialize().await.expect("initializing the store");
    (store, emulator)
}

/// An initialized store on a fresh emulator, no namespace, default threshold.
pub(crate) async fn emulator_storage() -> (CloudflareStorage, EmulatorHandle) {
    emulator_storage_with(Options::default()).await
}

/// The same with a namespace.
#[allow(dead_code)]
pub(crate) async fn emulator_storage_ns(ns: &str) -> (CloudflareStorage, EmulatorHandle) {
    emulator_storage_with(Options {
        namespace: Some(Namespace::new(ns).expect("namespace")),
        ..Options::default()
    })
    .await
}
