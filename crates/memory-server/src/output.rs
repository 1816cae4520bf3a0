//! Human-readable and `--json` rendering of command results.

use memory_core::{ContentHash, Memory, MemoryQueryResult};
use memory_storage::{StorageStats, StoreOutcome, TagCount};
use serde_json::json;

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

    /// After a store: `None` when the same content was already stored (nothing changed).
    pub fn stored(&self, hash: &ContentHash, outcome: Option<StoreOutcome>) {
        let (word, text) = match outcome {
            Some(StoreOutcome::Stored) => ("stored", "stored"),
            Some(StoreOutcome::Revived) => ("revived", "stored (revived a deleted memory)"),
            None => ("duplicate", "already stored, unchanged:"),
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
    pub fn deleted(&self, hashes: &[ContentHash], dry_run: bool) {
        if self.json {
            self.print_json(json!({"deleted": hashes, "dry_run": dry_run}));
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
        if self.json {
            let causes: Vec<String> = e.chain().skip(1).map(|c| c.to_string()).collect();
            self.print_json(json!({"error": e.to_string(), "causes": causes}));
        } else {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
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
