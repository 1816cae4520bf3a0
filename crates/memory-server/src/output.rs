//! Human-readable and `--json` rendering of command results.

use memory_core::{ContentHash, Memory, MemoryQueryResult};
use memory_storage::{DeleteReport, StorageStats, StoreOutcome, TagCount};
use serde_json::json;

use crate::health::HealthReport;

/// A failure whose details the command already printed (its report names every problem).
///
/// The process exits with status 1; with `--json` nothing more is printed, so scripts read
/// exactly one JSON document; in text mode the message goes to stderr.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AlreadyReported(pub String);

/// Where results go: text for people, or one JSON document for scripts.
pub struct Output {
    json: bool,
}

const PREVIEW_CHARS: usize = 100;

impl Output {
    /// Text (`json == false`) or JSON output.
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    fn print_json(&self, value: serde_json::Value) {
        println!("{value:#}");
    }

    /// True with `--json`.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints one JSON document (for commands that render their own text).
    pub fn json(&self, value: serde_json::Value) {
        self.print_json(value);
    }

    /// After a store: what it did with the memory of `hash`.
    pub fn stored(&self, hash: &ContentHash, outcome: StoreOutcome) {
        let (word, text) = match outcome {
            StoreOutcome::Stored => ("stored", "stored"),
            StoreOutcome::Revived => ("revived", "stored (revived a deleted memory)"),
            StoreOutcome::Duplicate => ("duplicate", "already stored, unchanged:"),
        };
        if self.json {
            self.print_json(json!({"content_hash": hash, "outcome": word}));
        } else {
            println!("{text} {hash}");
        }
    }

    /// Search or recall hits.
    pub fn results(&self, results: &[MemoryQueryResult]) {
        if self.json {
            self.print_json(json!(results));
            return;
        }
        if results.is_empty() {
            println!("no memories found");
        }
        for r in results {
            println!("{:>6.3}  {}", r.relevance_score, line(&r.memory));
        }
    }

    /// A page of memories.
    pub fn memories(&self, memories: &[Memory], page: Option<(usize, u64)>) {
        if self.json {
            let mut v = json!({"memories": memories});
            if let Some((page, total)) = page {
                v["page"] = json!(page);
                v["total"] = json!(total);
            }
            self.print_json(v);
            return;
        }
        if memories.is_empty() {
            println!("no memories");
        }
        for m in memories {
            println!("{}", line(m));
        }
        if let Some((page, total)) = page {
            println!("-- page {page}, {total} memories in all");
        }
    }

    /// Tag counts.
    pub fn tags(&self, tags: &[TagCount]) {
        if self.json {
            self.print_json(json!(tags));
            return;
        }
        if tags.is_empty() {
            println!("no tags");
        }
        for t in tags {
            println!("{:>6}  {}", t.count, t.tag);
        }
    }

    /// After a delete.
    pub fn deleted(&self, report: &DeleteReport) {
        let (hashes, dry_run) = (&report.hashes, report.dry_run);
        let pending = &report.cleanup_pending;
        if self.json {
            let mut v = json!({"deleted": hashes, "dry_run": dry_run});
            if !pending.is_empty() {
                v["cleanup_pending"] = json!(pending);
            }
            self.print_json(v);
            return;
        }
        let verb = if dry_run { "would delete" } else { "deleted" };
        println!(
            "{verb} {} memor{}",
            hashes.len(),
            if hashes.len() == 1 { "y" } else { "ies" }
        );
        for h in hashes {
            println!("  {h}");
        }
        if !pending.is_empty() {
            // The memories are deleted; what is left behind only costs space until repaired.
            println!(
                "clean-up pending ({}): the memories are deleted, but these were left behind; \
                 `mcp-memory check` lists them and `mcp-memory repair` removes them",
                pending.len()
            );
            for p in pending {
                println!("  {p}");
            }
        }
    }

    /// After an update: the memory as stored.
    pub fn updated(&self, memory: &Memory) {
        if self.json {
            self.print_json(json!({"updated": memory}));
            return;
        }
        println!("updated {}", line(memory));
        if let Some(t) = &memory.memory_type {
            println!("  type      {t}");
        }
        if !memory.metadata.is_empty() {
            println!("  metadata  {}", json!(memory.metadata));
        }
    }

    /// Health checks.
    pub fn health(&self, report: &HealthReport) {
        if self.json {
            let mut v = json!(report);
            v["status"] = json!(if report.healthy() {
                "healthy"
            } else {
                "unhealthy"
            });
            self.print_json(v);
            return;
        }
        println!("backend  {}", report.backend);
        for c in &report.checks {
            let mark = if c.ok { "ok    " } else { "FAILED" };
            println!("{mark}  {:<18} {:>6} ms  {}", c.name, c.millis, c.detail);
        }
        if let Some(probes) = &report.embedding_comparison {
            println!("cosine  probe (Workers AI vs local)");
            for p in probes {
                let text: String = p.text.chars().take(60).collect();
                println!("{:.4}  {text}", p.cosine);
            }
        }
    }

    /// Store figures.
    pub fn stats(&self, s: &StorageStats) {
        if self.json {
            self.print_json(json!(s));
            return;
        }
        println!("backend            {}", s.backend);
        println!("memories           {}", s.total_memories);
        println!("this week          {}", s.memories_this_week);
        println!("unique tags        {}", s.unique_tags);
        println!("content bytes      {}", s.content_bytes);
        println!("deleted (pending)  {}", s.tombstones);
        println!(
            "embedding model    {} ({} dims)",
            s.embedding_model, s.embedding_dimensions
        );
        if let Some(b) = s.storage_bytes {
            println!("file size          {b} bytes");
        }
        for (k, v) in &s.extra {
            println!("{k:<18} {v}");
        }
    }

    /// A failed command: the error and its causes, to stderr (or as JSON on stdout).
    pub fn error(&self, e: &anyhow::Error) {
        if self.json && e.is::<AlreadyReported>() {
            return;
        }
        let mut messages = distinct_messages(e.chain());
        let top = messages.remove(0);
        let hint = hint(e.chain());
        if self.json {
            self.print_json(json!({"error": top, "causes": messages, "hint": hint}));
        } else {
            eprintln!("error: {top}");
            for cause in messages {
                eprintln!("  caused by: {cause}");
            }
            if let Some(hint) = hint {
                eprintln!("  hint: {hint}");
            }
        }
    }

    /// The summary of `export`, `import` or `migrate`: `json` with `--json`, else `text`.
    /// `to_stderr` when stdout carries the data itself (`export` to stdout).
    pub fn transfer_summary(&self, json: serde_json::Value, text: &str, to_stderr: bool) {
        match (self.json, to_stderr) {
            (true, false) => self.print_json(json),
            (true, true) => eprintln!("{json:#}"),
            (false, false) => println!("{text}"),
            (false, true) => eprintln!("{text}"),
        }
    }
}

/// One line: short hash, date, tags, first line of content.
fn line(m: &Memory) -> String {
    let first: String = m
        .content()
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .chars()
        .take(PREVIEW_CHARS)
        .collect();
    let more = if m.content().chars().count() > first.chars().count() {
        "…"
    } else {
        ""
    };
    let tags = if m.tags.is_empty() {
        String::new()
    } else {
        format!(" [{}]", m.tags.joined())
    };
    let date = m.created_at.as_datetime().format("%Y-%m-%d %H:%M");
    format!("{}  {date}{tags}  {first}{more}", m.content_hash().short())
}

/// How to get the embedding model, in this binary's commands and settings (libraries say
/// only which model and which files were missing).
pub const MODEL_HINT: &str = "get the model: `cargo xtask fetch-model` (in a source checkout) \
     puts it into the per-user cache; or set MCP_MEMORY_MODEL_DIR (file key embedding.model_dir) \
     to a directory holding config.json, tokenizer.json and model.safetensors; or build with \
     `--features hub` to download it on first use";

/// What a person can do about an error the libraries reported, if this binary knows.
pub fn hint<'a>(
    chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> Option<&'static str> {
    chain.into_iter().find_map(|e| {
        e.downcast_ref::<memory_embed::EmbedError>()
            .filter(|embed| embed.is_missing_model())
            .map(|_| MODEL_HINT)
    })
}

/// The messages of an error and its causes, each said once: a cause whose text an earlier
/// message already holds (errors often quote their source) is left out. Never empty.
pub fn distinct_messages<'a>(
    chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in chain {
        let text = e.to_string();
        if text.is_empty() || out.iter().any(|said| said.contains(&text)) {
            continue;
        }
        out.push(text);
    }
    if out.is_empty() {
        out.push("unknown error".to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cloudflare unavailable: d1 timed out after 30 s")]
    struct Quoting(#[source] std::io::Error);

    #[test]
    fn a_cause_already_quoted_is_said_once() {
        let io = std::io::Error::other("d1 timed out after 30 s");
        let e = anyhow::Error::new(Quoting(io)).context("storing memory 1 of 3");
        assert_eq!(
            distinct_messages(e.chain()),
            [
                "storing memory 1 of 3",
                "cloudflare unavailable: d1 timed out after 30 s"
            ]
        );
        let plain = anyhow::anyhow!("top").context("outer");
        assert_eq!(distinct_messages(plain.chain()), ["outer", "top"]);
    }
}
