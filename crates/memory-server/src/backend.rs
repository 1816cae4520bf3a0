//! Opens the configured backend.
//!
//! PLACEHOLDER until the SQLite backend and local model land.

use std::sync::Arc;

use anyhow::Result;
use memory_storage::MemoryStorage;

use crate::config::Config;

/// Opens the storage the configuration names.
pub async fn open(config: &Config) -> Result<Arc<dyn MemoryStorage>> {
    anyhow::bail!("backend {:?} is not wired yet", config.backend)
}
