//! [`CloudflareStorage::connect`]: the production wiring from a [`CloudflareConfig`].
//!
//! One [`cloudflare_http::Client`] (base URL, retries, timeout and rate limit from the
//! config) carries every call, so the services share its connection pool, its token bucket
//! and its request accounting ([`CloudflareStorage::accounting`]). Over it:
//! - D1: a [`D1Client`] for `CLOUDFLARE_D1_DATABASE_ID`;
//! - Vectorize: an [`IndexClient`] for `CLOUDFLARE_VECTORIZE_INDEX`, declared with the
//!   model's dimensions (vectors are checked before sending), and a [`VectorizeClient`]
//!   so `initialize` can create the index if it is missing;
//! - R2: an [`R2Client`] for `CLOUDFLARE_R2_BUCKET`, if set;
//! - embeddings: a [`WorkersAiEmbedder`] for `CLOUDFLARE_EMBEDDING_MODEL` behind an LRU
//!   [`CachedEmbedder`] (repeated queries and re-stores cost no call). With feature
//!   `local-embedding` it cuts BGE texts by counted tokens when a tokenizer of their
//!   vocabulary is found (the fallback model's own, else all-MiniLM-L6-v2's in the per-user
//!   cache), and is wrapped in `WorkersAiWithFallback` per `CLOUDFLARE_EMBEDDING_FALLBACK`:
//!   unset, the local equivalent takes over when Workers AI fails if its weights are found
//!   (in `CLOUDFLARE_EMBEDDING_FALLBACK_DIR`, else the per-user cache), and the fallback is
//!   off otherwise; `local` requires them (`connect` fails naming what is missing; with
//!   feature `hub` and no directory given it first downloads them into the per-user
//!   cache); `off` never falls back. See [`crate::embedder`] for when a local model is equivalent.
//!
//! `connect` sends nothing; call [`MemoryStorage::initialize`](memory_storage::MemoryStorage::initialize)
//! before use (it creates the tables and the index, and checks the recorded model).

#[cfg(feature = "local-embedding")]
use std::path::Path;
use std::sync::Arc;

use cloudflare_ai::WorkersAiClient;
use cloudflare_d1::D1Client;
use cloudflare_http::{Client, ClientBuilder};
use cloudflare_r2::R2Client;
use cloudflare_vectorize::{IndexClient, VectorizeClient};
use memory_embed::{CachedEmbedder, Embedder};
use memory_storage::{StorageError, StorageResult};

use crate::config::{
    API_BASE_URL_ENV, CloudflareConfig, EMBEDDING_FALLBACK_ENV, EMBEDDING_MODEL_ENV,
    EmbeddingFallback, R2_BUCKET_ENV, TOKEN_ENV,
};
use crate::embedder::WorkersAiEmbedder;
use crate::storage::replica::ReplicaModel;
use crate::storage::{CloudflareStorage, Options, Parts};

/// The backend name in errors.
const BACKEND: &str = "cloudflare";

impl CloudflareStorage {
    /// The store `config` describes, over a new HTTP client built from `config.client`.
    /// Sends nothing: call `initialize` next.
    ///
    /// # Errors
    ///
    /// [`StorageError::Backend`] if the HTTP client cannot be built (the message names
    /// `CLOUDFLARE_API_BASE_URL` or `CLOUDFLARE_API_TOKEN`), and as
    /// [`CloudflareStorage::connect_with_client`].
    pub fn connect(config: &CloudflareConfig) -> StorageResult<Self> {
        Self::connect_with_client(config, &http_client(config)?)
    }

    /// The store `config` describes, over `client` (whose own settings apply instead of
    /// `config.client`'s): for callers that add layers or a scripted transport to the
    /// client ([`ClientBuilder::with_layer`], [`ClientBuilder::with_transport`]).
    ///
    /// # Errors
    ///
    /// [`StorageError::InvalidInput`] naming `CLOUDFLARE_R2_BUCKET` or
    /// `CLOUDFLARE_EMBEDDING_MODEL` when the config (built by hand rather than read with
    /// [`CloudflareConfig::from_lookup`]) holds an invalid bucket name or a model whose
    /// dimensions Vectorize cannot hold.
    pub fn connect_with_client(config: &CloudflareConfig, client: &Client) -> StorageResult<Self> {
        let model = config.embedding_model.clone();
        let dimensions = index_dimensions(model.id(), model.dimensions(), EMBEDDING_MODEL_ENV)?;
        let ai = WorkersAiClient::new(client).with_model(model);
        let embedder = workers_ai_embedder(config, WorkersAiEmbedder::new(Arc::new(ai)))?;
        let (parts, options) = parts(config, client, dimensions, embedder)?;
        Self::from_parts(parts, options)
    }

    /// The store `config` describes in replica mode, for the hybrid backend (see
    /// [`ReplicaModel`]): `model` — the devices' local model — instead of Workers AI
    /// (`config.embedding_model` and the fallback settings are not used). Sends nothing:
    /// call `initialize` next, which records `model` in D1, creates the index with its
    /// dimensions if missing, and refuses a database or index made with another model.
    ///
    /// # Errors
    ///
    /// As [`CloudflareStorage::connect`], and [`StorageError::InvalidInput`] when `model`
    /// has dimensions Vectorize cannot hold.
    pub fn connect_replica(config: &CloudflareConfig, model: ReplicaModel) -> StorageResult<Self> {
        Self::connect_replica_with_client(config, &http_client(config)?, model)
    }

    /// [`connect_replica`](Self::connect_replica) over `client` (as
    /// [`connect_with_client`](Self::connect_with_client)).
    ///
    /// # Errors
    ///
    /// As [`CloudflareStorage::connect_replica`].
    pub fn connect_replica_with_client(
        config: &CloudflareConfig,
        client: &Client,
        model: ReplicaModel,
    ) -> StorageResult<Self> {
        let dimensions = index_dimensions(
            model.model_id(),
            model.dimensions(),
            "the hybrid backend's embedding model",
        )?;
        let embedder: Arc<dyn Embedder> = Arc::new(model.clone());
        let (parts, options) = parts(config, client, dimensions, embedder)?;
        Self::replica_from_parts(parts, options, model)
    }
}

/// The HTTP client `config.client` describes.
fn http_client(config: &CloudflareConfig) -> StorageResult<Client> {
    ClientBuilder::new(config.client.clone())
        .build()
        .map_err(|e| {
            let message = format!(
                "could not build the Cloudflare HTTP client: {e}; check {API_BASE_URL_ENV} \
             (an http(s) URL) and {TOKEN_ENV} (printable characters only)"
            );
            StorageError::backend(BACKEND, message, e)
        })
}

/// A model's dimensions as a Vectorize index takes them, or an error naming `setting`.
fn index_dimensions(id: &str, dimensions: usize, setting: &str) -> StorageResult<u32> {
    u32::try_from(dimensions)
        .ok()
        .filter(|d| (1..=cloudflare_vectorize::MAX_DIMENSIONS).contains(d))
        .ok_or_else(|| {
            StorageError::invalid(
                "embedding_model",
                format!(
                    "{id} has {dimensions} dimensions but a Vectorize index holds 1 to {}; set \
                     {setting} to another model",
                    cloudflare_vectorize::MAX_DIMENSIONS
                ),
            )
        })
}

/// The collaborators and options `config` describes over `client`, with `embedder`.
fn parts(
    config: &CloudflareConfig,
    client: &Client,
    dimensions: u32,
    embedder: Arc<dyn Embedder>,
) -> StorageResult<(Parts, Options)> {
    let r2 = match &config.r2_bucket {
        None => None,
        Some(bucket) => {
            let r2 = R2Client::new(client, bucket.clone()).map_err(|e| {
                StorageError::invalid(
                    "r2_bucket",
                    format!("{e}; fix {R2_BUCKET_ENV}, or unset it to store no content in R2"),
                )
            })?;
            Some(Arc::new(r2) as Arc<dyn cloudflare_r2::R2Api>)
        }
    };
    let index: IndexClient = VectorizeClient::new(client)
        .index(config.vectorize_index.clone())
        .with_dimensions(dimensions);
    let parts = Parts {
        d1: Arc::new(D1Client::new(client, config.d1_database_id.clone())),
        vectorize: Arc::new(index),
        vectorize_admin: Some(Arc::new(VectorizeClient::new(client))),
        index_name: config.vectorize_index.clone(),
        r2,
        embedder,
        accounting: Some(client.accounting().clone()),
    };
    let options = Options {
        namespace: config.namespace.clone(),
        large_content_threshold: config.large_content_threshold,
    };
    Ok((parts, options))
}

/// The files a local model needs (`memory-embed`'s required set).
#[cfg(feature = "local-embedding")]
const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// The local equivalent of `config`'s Workers AI model, its files checked present, or why
/// there is none. Pooling: the backend sends none, so Workers AI pools with mean, and so
/// must the local model.
#[cfg(feature = "local-embedding")]
pub(crate) fn local_equivalent(
    config: &CloudflareConfig,
) -> Result<crate::embedder::LocalEquivalent, String> {
    #[cfg(feature = "hub")]
    if config.embedding_fallback == EmbeddingFallback::Local
        && config.embedding_fallback_dir.is_none()
    {
        download_equivalent(&config.embedding_model)?;
    }
    let local = crate::embedder::fallback_embedder_in(
        &config.embedding_model,
        cloudflare_ai::Pooling::Mean,
        config.embedding_fallback_dir.clone(),
    )
    .map_err(|e| e.to_string())?;
    let dir = local
        .local()
        .dir()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    match MODEL_FILES.iter().find(|f| !dir.join(f).is_file()) {
        None => Ok(local),
        Some(missing) => Err(format!(
            "the local model's {missing} is not in {}",
            dir.display()
        )),
    }
}

/// Downloads the local equivalent of `model` (same name, so the same weights) into the
/// per-user cache when it is missing there. Feature `hub`.
///
/// Why at `connect`: the fallback is for when Workers AI, and often the network, fails; a
/// download then would fail too.
#[cfg(feature = "hub")]
fn download_equivalent(model: &cloudflare_ai::EmbeddingModel) -> Result<(), String> {
    use memory_embed::{ModelLocation, ModelSpec};
    use tokio::runtime::{Handle, RuntimeFlavor};

    let Some(spec) = model
        .id()
        .strip_prefix(memory_embed::spec::CLOUDFLARE_PREFIX)
        .and_then(ModelSpec::known)
    else {
        // No equivalent: `fallback_embedder_in` says so.
        return Ok(());
    };
    let fetch = || {
        ModelLocation::resolve_or_download(spec.id)
            .map(|_| ())
            .map_err(|e| format!("downloading {} failed: {e}", spec.id))
    };
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(fetch)
        }
        Ok(_) => Err(format!(
            "{} cannot be downloaded from a single-threaded runtime; fetch its files first \
             or give CLOUDFLARE_EMBEDDING_FALLBACK_DIR",
            spec.id
        )),
        Err(_) => fetch(),
    }
}

/// `workers_ai` cutting by counted tokens when a tokenizer of its vocabulary is found: the
/// local model's own, else all-MiniLM-L6-v2's in the per-user cache (the same vocabulary).
#[cfg(feature = "local-embedding")]
pub(crate) fn with_token_cut(
    workers_ai: WorkersAiEmbedder,
    local: Option<&crate::embedder::LocalEquivalent>,
) -> WorkersAiEmbedder {
    use memory_embed::{DEFAULT_MODEL_ID, ModelLocation, TokenCounter};

    let dirs = local
        .and_then(|l| l.local().dir().map(Path::to_path_buf))
        .into_iter()
        .chain(ModelLocation::resolve(DEFAULT_MODEL_ID).ok().map(|l| l.dir));
    let counter = dirs
        .filter(|dir| dir.join("tokenizer.json").is_file())
        .find_map(|dir| TokenCounter::from_dir(&dir).ok());
    match counter {
        Some(counter) => workers_ai.with_token_counter(counter),
        None => workers_ai,
    }
}

/// Workers AI behind the cache, with the token cut and the local fallback `config` asks for
/// (see the [module docs](self)).
#[cfg(feature = "local-embedding")]
fn workers_ai_embedder(
    config: &CloudflareConfig,
    workers_ai: WorkersAiEmbedder,
) -> StorageResult<Arc<dyn Embedder>> {
    use crate::embedder::WorkersAiWithFallback;

    let model = &config.embedding_model;
    let local = match config.embedding_fallback {
        EmbeddingFallback::Off => Err(format!("{EMBEDDING_FALLBACK_ENV}=off")),
        EmbeddingFallback::Auto | EmbeddingFallback::Local => local_equivalent(config),
    };
    let workers_ai = with_token_cut(workers_ai, local.as_ref().ok());
    let embedder = match (config.embedding_fallback, local) {
        (_, Ok(local)) => {
            tracing::info!(
                model = model.id(),
                local_model = local.local().model_id(),
                "local embedding fallback on: the same weights embed locally when Workers AI fails"
            );
            WorkersAiWithFallback::new(workers_ai, local)
        }
        (EmbeddingFallback::Local, Err(why)) => {
            return Err(StorageError::invalid(
                "embedding_fallback",
                format!(
                    "{EMBEDDING_FALLBACK_ENV}=local but {why}; put the model's files in \
                     CLOUDFLARE_EMBEDDING_FALLBACK_DIR (or the per-user model cache), or set \
                     {EMBEDDING_FALLBACK_ENV}=off"
                ),
            ));
        }
        (_, Err(why)) => {
            tracing::info!(model = model.id(), why = %why, "local embedding fallback off");
            WorkersAiWithFallback::off(workers_ai, why)
        }
    };
    Ok(Arc::new(CachedEmbedder::new(embedder)))
}

/// Workers AI behind the cache; this build cannot embed locally, so an explicit
/// `CLOUDFLARE_EMBEDDING_FALLBACK=local` is refused.
#[cfg(not(feature = "local-embedding"))]
fn workers_ai_embedder(
    config: &CloudflareConfig,
    workers_ai: WorkersAiEmbedder,
) -> StorageResult<Arc<dyn Embedder>> {
    if config.embedding_fallback == EmbeddingFallback::Local {
        return Err(StorageError::invalid(
            "embedding_fallback",
            format!(
                "{EMBEDDING_FALLBACK_ENV}=local but this build cannot embed locally \
                 (memory-cloudflare without its local-embedding feature); set it to off or \
                 unset it"
            ),
        ));
    }
    Ok(Arc::new(CachedEmbedder::new(workers_ai)))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use cloudflare_emulator::{Emulator, EmulatorConfig};
    use memory_core::Memory;
    use memory_storage::{MemoryStorage, SemanticQuery, StoreOutcome};

    use super::*;
    use crate::config::{ACCOUNT_ENV, D1_DATABASE_ENV, NAMESPACE_ENV, VECTORIZE_INDEX_ENV};

    const UUID: &str = "5c4a9f1e-7d2b-4c3a-8e6f-1a2b3c4d5e6f";

    fn config(vars: &[(&'static str, String)]) -> CloudflareConfig {
        let map: HashMap<&str, String> = vars.iter().cloned().collect();
        CloudflareConfig::from_lookup(|k| map.get(k).cloned()).unwrap()
    }

    fn base(url: &str) -> Vec<(&'static str, String)> {
        vec![
            (TOKEN_ENV, "emulator-token".to_owned()),
            (ACCOUNT_ENV, "023e105f4ecef8ad9ca31a8372d0c353".to_owned()),
            (VECTORIZE_INDEX_ENV, "mcp-memory".to_owned()),
            (D1_DATABASE_ENV, UUID.to_owned()),
            (API_BASE_URL_ENV, url.to_owned()),
        ]
    }

    #[test]
    fn connect_wires_the_config_without_sending() {
        let mut vars = base("http://127.0.0.1:9/client/v4");
        vars.push((NAMESPACE_ENV, "team_a".to_owned()));
        vars.push((R2_BUCKET_ENV, "mcp-content".to_owned()));
        vars.push((EMBEDDING_MODEL_ENV, "@cf/baai/bge-small-en-v1.5".to_owned()));
        let store = CloudflareStorage::connect(&config(&vars)).unwrap();
        assert_eq!(store.namespace().map(|n| n.as_str()), Some("team_a"));
        let accounting = store.accounting().expect("connect shares its accounting");
        assert!(accounting.snapshot().is_empty(), "nothing was sent");
        let debug = format!("{store:?}");
        assert!(debug.contains("@cf/baai/bge-small-en-v1.5"), "{debug}");
        assert!(debug.contains("r2: true"), "{debug}");
        assert!(!debug.contains("emulator-token"), "{debug}");
    }

    #[test]
    fn a_hand_built_config_with_a_bad_bucket_names_the_variable() {
        let mut config = config(&base("http://127.0.0.1:9/client/v4"));
        config.r2_bucket = Some("Bad_Bucket".to_owned());
        let err = CloudflareStorage::connect(&config).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::InvalidInput {
                    field: "r2_bucket",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains(R2_BUCKET_ENV), "{err}");
    }

    /// A token the account refuses fails at `initialize`, naming the variable, never the value.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_token_is_named_not_shown() {
        let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
        let mut vars = base(&emulator.base_url());
        vars[0].1 = "wrong-token-value-42".to_owned();
        vars[1].1 = emulator.config().account_ids[0].clone();
        vars.push((crate::config::MAX_RETRIES_ENV, "0".to_owned()));
        let store = CloudflareStorage::connect(&config(&vars)).unwrap();
        let err = store.initialize().await.unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(text.contains("CLOUDFLARE_API_TOKEN"), "{text}");
        assert!(!text.contains("wrong-token-value-42"), "{text}");
    }

    /// End to end over the emulator: connect, initialize, store, search.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stores_and_searches_through_the_emulator() {
        let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
        let mut vars = base(&emulator.base_url());
        vars[0].1 = emulator.config().tokens[0].clone();
        vars[1].1 = emulator.config().account_ids[0].clone();
        vars.push((EMBEDDING_MODEL_ENV, "@cf/baai/bge-small-en-v1.5".to_owned()));
        vars.push((crate::config::MAX_RETRIES_ENV, "0".to_owned()));
        let store = CloudflareStorage::connect(&config(&vars)).unwrap();
        store.initialize().await.unwrap();
        let outcome = store
            .store(Memory::new("The deployment runbook lives in the ops wiki.").unwrap())
            .await
            .unwrap();
        assert!(matches!(outcome, StoreOutcome::Stored), "{outcome:?}");
        store
            .store(Memory::new("Lunch on Friday is pizza.").unwrap())
            .await
            .unwrap();
        let results = store
            .search(&SemanticQuery::new(
                "where is the runbook for deploying?",
                1,
            ))
            .await
            .unwrap();
        assert_eq!(results.len(), 1);
        assert!(
            results[0].memory.content().contains("runbook"),
            "{:?}",
            results[0].memory.content()
        );
        let accounting = store.accounting().unwrap();
        assert!(!accounting.snapshot().is_empty());
    }
}
