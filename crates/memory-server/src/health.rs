//! `mcp-memory health`: does the store answer, and does the embedding model work?

use std::time::Instant;

use memory_storage::{MemoryStorage, SemanticQuery, StorageStats};
use serde::Serialize;

/// One health check's result.
#[derive(Debug, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Whether it worked.
    pub ok: bool,
    /// How long it took, milliseconds.
    pub millis: u64,
    /// What was found, or the error.
    pub detail: String,
}

/// Every check, in the order run, and the store's figures when they could be read.
#[derive(Debug, Serialize)]
pub struct HealthReport {
    /// The backend's name.
    pub backend: &'static str,
    /// The checks.
    pub checks: Vec<Check>,
    /// The store's figures, when `stats` worked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<StorageStats>,
}

impl HealthReport {
    /// Reads the store's figures, then runs a one-result semantic search, which embeds a
    /// query (loading the model, or calling Workers AI) and reads the vector index.
    pub async fn run(store: &dyn MemoryStorage) -> Self {
        let mut checks = Vec::new();
        let started = Instant::now();
        let stats = match store.get_stats().await {
            Ok(stats) => {
                checks.push(Check {
                    name: "stats",
                    ok: true,
                    millis: elapsed_ms(started),
                    detail: format!(
                        "{} memories, model {} ({} dims)",
                        stats.total_memories, stats.embedding_model, stats.embedding_dimensions
                    ),
                });
                Some(stats)
            }
            Err(e) => {
                checks.push(Check {
                    name: "stats",
                    ok: false,
                    millis: elapsed_ms(started),
                    detail: e.to_string(),
                });
                None
            }
        };
        let started = Instant::now();
        let search = store
            .search(&SemanticQuery::new("mcp-memory health check", 1))
            .await;
        checks.push(Check {
            name: "embed and search",
            ok: search.is_ok(),
            millis: elapsed_ms(started),
            detail: match search {
                Ok(hits) => format!("query embedded, {} result(s)", hits.len()),
                Err(e) => e.to_string(),
            },
        });
        Self {
            backend: store.backend_name(),
            checks,
            stats,
        }
    }

    /// True when every check passed.
    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}
