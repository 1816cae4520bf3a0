//! Opens the configured backend.
//!
//! The embedded default is a [`SqliteStorage`] whose model ([`LazyEmbedder`]) loads only
//! when something is embedded: `list`, `tags`, `stats` and `delete` never read the weights,
//! and work even before `cargo xtask fetch-model`.
//!
//! The Cloudflare backend ([`CloudflareStorage`]) is built from the `CLOUDFLARE_*` variables
//! and initialized here (tables and the Vectorize index created if missing, the recorded
//! embedding model checked), so a wrong token or database id fails at start with a message
//! naming the variable.
//!
//! The hybrid backend ([`HybridStorage`]) opens the local store (change log on) at once and
//! connects to Cloudflare only when it first syncs, so it starts and serves every call
//! while Cloudflare is unreachable. Only the MCP server syncs in the background
//! ([`open_serving`]); a one-shot command pushes its own change in
//! [`settle`](MemoryStorage::settle) when Cloudflare answers quickly.

use std::sync::Arc;

use anyhow::bail;
use anyhow::{Context, Result};
use memory_cloudflare::CloudflareStorage;
use memory_embed::{CachedEmbedder, Embedder, LazyEmbedder};
use memory_hybrid::HybridStorage;
use memory_sqlite::SqliteConfig;
use memory_storage::MemoryStorage;

use crate::config::{BackendKind, Config};

/// Opens the storage the configuration names.
pub async fn open(config: &Config) -> Result<Arc<dyn MemoryStorage>> {
    open_kind(config, config.backend).await
}

/// Opens the configured storage for the MCP server: as [`open`], and the hybrid backend
/// also syncs in the background (every `MCP_HYBRID_SYNC_INTERVAL` while there is work).
pub async fn open_serving(config: &Config) -> Result<Arc<dyn MemoryStorage>> {
    if config.backend != BackendKind::Hybrid {
        return open(config).await;
    }
    let store = open_hybrid(config).await?;
    store.start_background(
        config
            .sync_interval
            .unwrap_or(memory_hybrid::DEFAULT_SYNC_INTERVAL),
    );
    Ok(store)
}

/// Opens the hybrid backend (for `mcp-memory sync`, which needs its engine).
///
/// # Errors
///
/// When the hybrid backend is not the configured one (saying what to set), or the local
/// store cannot be opened.
pub async fn open_hybrid(config: &Config) -> Result<Arc<HybridStorage>> {
    if config.backend != BackendKind::Hybrid {
        bail!(
            "`sync` works on the hybrid backend only; set MCP_MEMORY_STORAGE_BACKEND=hybrid \
             (or storage.backend = \"hybrid\" in the config file, or --backend hybrid) with \
             the CLOUDFLARE_* variables"
        );
    }
    let cloudflare = config.cloudflare_config()?;
    let embedder = hybrid_embedder(config, &cloudflare)?;
    let store = memory_hybrid::open(
        SqliteConfig::new(&config.sqlite_path),
        cloudflare,
        embedder,
        memory_hybrid::SyncOptions::default(),
    )
    .await
    .with_context(|| format!("opening {}", config.sqlite_path.display()))?;
    Ok(Arc::new(store))
}

/// The hybrid device's model: `MCP_MEMORY_EMBEDDING_MODEL`, which may name a Workers AI
/// model (`@cf/baai/bge-small-en-v1.5`) to join a deployment the Cloudflare backend (or
/// the Python service) built: the device then runs the same weights locally, pooled as
/// Workers AI pools them, and reports the Workers AI id, so the model recorded in D1
/// matches and the deployment's vectors are this device's too. Its files come from
/// `MCP_MEMORY_MODEL_DIR`, else `CLOUDFLARE_EMBEDDING_FALLBACK_DIR`, else the model cache.
fn hybrid_embedder(
    config: &Config,
    cloudflare: &memory_cloudflare::config::CloudflareConfig,
) -> Result<Arc<dyn Embedder>> {
    if !config
        .embedding_model
        .starts_with(memory_embed::spec::CLOUDFLARE_PREFIX)
    {
        return local_embedder(config);
    }
    let dir = config
        .model_dir
        .clone()
        .or_else(|| cloudflare.embedding_fallback_dir.clone());
    let local = memory_cloudflare::embedder::local_equivalent_of(&config.embedding_model, dir)
        .context("MCP_MEMORY_EMBEDDING_MODEL")?;
    Ok(Arc::new(CachedEmbedder::new(local)))
}

/// The local model, loaded on first use.
pub(crate) fn local_embedder(config: &Config) -> Result<Arc<dyn Embedder>> {
    let model = LazyEmbedder::new(&config.embedding_model, config.model_dir.clone())
        .context("MCP_MEMORY_EMBEDDING_MODEL")?;
    Ok(Arc::new(CachedEmbedder::new(model)))
}

/// Opens the backend `kind` with the settings of `config`, whichever backend `config`
/// selects (`migrate` opens both).
pub async fn open_kind(config: &Config, kind: BackendKind) -> Result<Arc<dyn MemoryStorage>> {
    match kind {
        BackendKind::Sqlite => {
            let store = SqliteConfig::new(&config.sqlite_path)
                .open(local_embedder(config)?)
                .await
                .with_context(|| format!("opening {}", config.sqlite_path.display()))?;
            Ok(Arc::new(store))
        }
        BackendKind::Cloudflare => {
            let cloudflare = &config.cloudflare_config()?;
            let store = CloudflareStorage::connect(cloudflare)?;
            store.initialize().await.with_context(|| {
                format!(
                    "initializing the Cloudflare backend (D1 database {}, Vectorize index {})",
                    cloudflare.d1_database_id, cloudflare.vectorize_index
                )
            })?;
            Ok(Arc::new(store))
        }
        BackendKind::Hybrid => Ok(open_hybrid(config).await?),
    }
}

/// Waits, before a command ends, until what it wrote is visible to the next command, which
/// is another process ([`MemoryStorage::settle`]: on Cloudflare, until Vectorize has applied
/// the writes, typically a few seconds; immediate when nothing was written). When the
/// backend's bound passes first, says so on stderr and goes on: the writes are stored, only
/// semantic search elsewhere misses them for a while.
///
/// # Errors
///
/// The backend's error when it cannot tell (for example, its index is unreachable).
pub async fn settle(store: &dyn MemoryStorage) -> Result<()> {
    let settled = store
        .settle()
        .await
        .context("waiting for the backend's search index to apply this command's writes")?;
    if !settled {
        tracing::warn!(
            "the search index has not applied every write of this command yet; semantic \
             searches from other processes may miss them for a while (`mcp-memory check` \
             lists what is still pending)"
        );
    }
    Ok(())
}
