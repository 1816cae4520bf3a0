//! Opening the hybrid backend: the local store at once, the deployment on first sync.

use std::sync::Arc;

use memory_cloudflare::config::CloudflareConfig;
use memory_cloudflare::{CloudflareStorage, ReplicaModel};
use memory_embed::Embedder;
use memory_sqlite::SqliteConfig;
use memory_storage::{MemoryStorage, StorageResult};

use crate::engine::{Connect, Remote, SyncEngine, SyncOptions};
use crate::storage::HybridStorage;

/// Opens the hybrid backend: `sqlite` (with its change log turned on) serves every call at
/// once; `cloudflare` is connected by the first sync round, in replica mode: the
/// deployment's embedding model must be `embedder`'s (recorded in D1 by the first device,
/// refused with both names on any other), and no Workers AI call is ever made.
///
/// # Errors
///
/// The local store's (a file that cannot be opened, another model recorded locally).
pub async fn open(
    sqlite: SqliteConfig,
    cloudflare: CloudflareConfig,
    embedder: Arc<dyn Embedder>,
    options: SyncOptions,
) -> StorageResult<HybridStorage> {
    let model = ReplicaModel::new(embedder.model_id(), embedder.dimensions());
    let local = Arc::new(sqlite.change_log(true).open(embedder).await?);
    let connect: Connect = Box::new(move || {
        let cloudflare = cloudflare.clone();
        let model = model.clone();
        Box::pin(async move { connect_remote(&cloudflare, model).await })
    });
    Ok(HybridStorage::new(SyncEngine::new(
        local, connect, options,
    )?))
}

/// Connects to the deployment in replica mode for a device whose model is `model`: creates
/// what is missing (upstream's tables, the index, the change log), checks the model
/// recorded in D1, and hands out the storage and the log.
///
/// # Errors
///
/// Cloudflare's (unreachable, a bad token), or [`StorageError::ModelMismatch`](memory_storage::StorageError::ModelMismatch)
/// naming both models when the deployment records another.
pub async fn connect_remote(
    cloudflare: &CloudflareConfig,
    model: ReplicaModel,
) -> StorageResult<Remote> {
    connect_remote_with(CloudflareStorage::connect_replica(cloudflare, model)?).await
}

/// [`connect_remote`] for a replica-mode store already built (over a client of the
/// caller's, with its own accounting or layers).
///
/// # Errors
///
/// As [`connect_remote`].
pub async fn connect_remote_with(storage: CloudflareStorage) -> StorageResult<Remote> {
    storage.initialize().await?;
    let log = storage.change_log();
    log.ensure_table().await?;
    Ok(Remote {
        storage: Arc::new(storage),
        log,
    })
}
