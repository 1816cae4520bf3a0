//! `mcp-memory health`: does the store answer, and does the embedding model work?

use std::time::Instant;

use memory_cloudflare::config::CloudflareConfig;
use memory_cloudflare::embedder::compare_embeddings;
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

/// `mcp-memory health` options.
#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// Also embed a dozen probe texts (prose, code, CJK, ...) with Workers AI and with the
    /// local fallback model, and print the cosine of each pair (Cloudflare backend; the
    /// same weights and pooling give about 1).
    #[arg(long)]
    pub compare_embeddings: bool,
}

/// The lowest probe cosine `--compare-embeddings` accepts: the same weights and pooling
/// differ only by float and kernel rounding (cosines of 0.999 and up); a different model or
/// pooling gives far lower ones.
pub const MIN_COMPARISON_COSINE: f32 = 0.99;

/// One probe of `--compare-embeddings`.
#[derive(Debug, Serialize)]
pub struct ProbeCosine {
    /// The probe text.
    pub text: &'static str,
    /// The cosine of Workers AI's and the local vector.
    pub cosine: f32,
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
    /// Each probe's cosine, with `--compare-embeddings` when the comparison ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_comparison: Option<Vec<ProbeCosine>>,
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
        // The Cloudflare backend's local fallback: read after the search, so that a query
        // the fallback just embedded is counted.
        let mut stats = stats;
        if stats
            .as_ref()
            .is_some_and(|s| s.extra.contains_key(FALLBACK_KEY))
            && let Ok(fresh) = store.get_stats().await
        {
            stats = Some(fresh);
        }
        if let Some(entry) = stats.as_ref().and_then(|s| s.extra.get(FALLBACK_KEY)) {
            checks.push(Check {
                name: "embedding fallback",
                ok: entry["local_failures"].as_u64().unwrap_or(0) == 0,
                millis: 0,
                detail: fallback_detail(entry),
            });
        }
        Self {
            backend: store.backend_name(),
            checks,
            stats,
            embedding_comparison: None,
        }
    }

    /// Adds the `compare embeddings` check: Workers AI's and the local model's vectors of
    /// the probe texts (`memory_cloudflare::embedder::PROBES`), each pair's cosine kept in
    /// [`Self::embedding_comparison`]. Fails when `cloudflare` is `None` (another backend),
    /// when either side cannot embed, or when a cosine is under [`MIN_COMPARISON_COSINE`].
    pub async fn compare_embeddings(&mut self, cloudflare: Option<&CloudflareConfig>) {
        let started = Instant::now();
        let Some(config) = cloudflare else {
            self.checks.push(Check {
                name: "compare embeddings",
                ok: false,
                millis: 0,
                detail: "--compare-embeddings compares Workers AI with its local equivalent: \
                         it needs MCP_MEMORY_STORAGE_BACKEND=cloudflare"
                    .to_owned(),
            });
            return;
        };
        let (ok, detail) = match compare_embeddings(config).await {
            Ok(c) => {
                let min = c.min_cosine();
                let detail = format!(
                    "{} probes, {} vs local {}: min cosine {min:.4}, mean {:.4}{}",
                    c.probes.len(),
                    c.model,
                    c.local_model,
                    c.mean_cosine(),
                    if min < MIN_COMPARISON_COSINE {
                        format!(
                            "; under {MIN_COMPARISON_COSINE}: the local vectors are not \
                             Workers AI's, set CLOUDFLARE_EMBEDDING_FALLBACK=off"
                        )
                    } else {
                        String::new()
                    }
                );
                self.embedding_comparison = Some(
                    c.probes
                        .iter()
                        .map(|p| ProbeCosine {
                            text: p.text,
                            cosine: p.cosine,
                        })
                        .collect(),
                );
                (min >= MIN_COMPARISON_COSINE, detail)
            }
            Err(e) => (false, e.to_string()),
        };
        self.checks.push(Check {
            name: "compare embeddings",
            ok,
            millis: elapsed_ms(started),
            detail,
        });
    }

    /// True when every check passed.
    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// The key under which the Cloudflare backend reports its local embedding fallback.
const FALLBACK_KEY: &str = memory_cloudflare::embedder::REPORT_KEY;

/// One line about the fallback: off and why, or on with how many texts fell back and why.
fn fallback_detail(entry: &serde_json::Value) -> String {
    if entry["mode"] != "local" {
        return format!("off: {}", entry["why"].as_str().unwrap_or("not configured"));
    }
    let local = entry["local_model"].as_str().unwrap_or("?");
    let pooling = entry["pooling"].as_str().unwrap_or("?");
    let texts = entry["texts"].as_u64().unwrap_or(0);
    let reasons: Vec<String> = entry["texts_by_reason"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect();
    let mut line = format!("on ({local}, {pooling} pooling): {texts} text(s) embedded locally");
    if !reasons.is_empty() {
        line.push_str(&format!(" ({})", reasons.join(", ")));
    }
    let failures = entry["local_failures"].as_u64().unwrap_or(0);
    if failures > 0 {
        line.push_str(&format!("; the local model failed {failures} time(s)"));
    }
    line
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}
