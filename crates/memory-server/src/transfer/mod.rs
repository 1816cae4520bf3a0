//! `export`, `import` and `migrate`: moving memories in and out of a store.
//!
//! * [`export`] writes JSON Lines, one memory per line, every field exactly as stored
//!   (timestamps as epoch seconds with microseconds *and* ISO-8601), optionally with the
//!   stored vectors and their model id.
//! * [`import`] reads that format (and the Python service's single-document export), stores
//!   in batches, skips duplicates, reports bad lines by number, and resumes after a crash or
//!   Ctrl-C from a checkpoint file beside the input.
//! * [`migrate`] copies every memory from one backend to the other, carrying the vectors
//!   when both stores use the same model, resumable from a checkpoint beside the SQLite file.
//!
//! All three walk a store with [`Pager`], which pages through `list` (newest first) and
//! stays correct while the store changes underneath: each page starts at the last memory
//! already seen, so memories stored meanwhile (which shift offsets) are never emitted twice,
//! and deletions (which shift offsets back) are detected and the page re-read from earlier.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use memory_core::{Memory, Timestamp};
use memory_embed::ModelSpec;
use memory_storage::{ListQuery, MemoryFilter, MemoryStorage};

use crate::config::{BackendKind, Config};

mod export;
mod import;
mod migrate;

pub use export::{ExportArgs, export};
pub use import::{ImportArgs, import};
pub use migrate::{MigrateArgs, migrate};

/// The largest page read from a store at once (the storage API's `MAX_RESULTS`).
const MAX_PAGE: usize = memory_storage::MAX_RESULTS;

/// How many problems (bad lines, failed memories) a summary lists; all are counted.
const LISTED_PROBLEMS: usize = 20;

/// Where a memory sorts in `list` order (newest first: `created_at` descending, then hash
/// descending): a later memory in the list has a smaller key.
pub(crate) type SortKey = (i64, String);

/// The sort key of `m`.
pub(crate) fn sort_key(m: &Memory) -> SortKey {
    (
        m.created_at.epoch_micros(),
        m.content_hash().as_str().to_owned(),
    )
}

/// Pages through `list` in its stable order, robust to a store changing underneath.
///
/// Invariant: after a page, `start` is the offset of the last memory returned and `last` its
/// key. The next page starts there, so its first memory must be that one again (or, when
/// memories were stored meanwhile, one sorting before it). A first memory sorting *after*
/// it means memories were deleted and offsets moved back: the pager steps back a page and
/// reads again. Only memories sorting after `last` are returned, so none is returned twice.
#[derive(Debug, Clone)]
pub(crate) struct Pager {
    filter: MemoryFilter,
    page_size: usize,
    start: usize,
    last: Option<SortKey>,
    done: bool,
}

impl Pager {
    /// From the newest memory. `page_size` is clamped to `2..=MAX_PAGE`.
    pub(crate) fn new(filter: MemoryFilter, page_size: usize) -> Self {
        Self {
            filter,
            page_size: page_size.clamp(2, MAX_PAGE),
            start: 0,
            last: None,
            done: false,
        }
    }

    /// Continues after the memory `last`, believed to be at offset `start`.
    pub(crate) fn resume(
        filter: MemoryFilter,
        page_size: usize,
        start: usize,
        last: SortKey,
    ) -> Self {
        Self {
            start,
            last: Some(last),
            ..Self::new(filter, page_size)
        }
    }

    /// Where the pager stands: the offset and key of the last memory returned.
    pub(crate) fn position(&self) -> (usize, Option<&SortKey>) {
        (self.start, self.last.as_ref())
    }

    /// The next memories in order; empty when every memory has been returned.
    pub(crate) async fn next_page(&mut self, store: &dyn MemoryStorage) -> Result<Vec<Memory>> {
        loop {
            if self.done {
                return Ok(Vec::new());
            }
            let page = store
                .list(&ListQuery {
                    filter: self.filter.clone(),
                    offset: self.start,
                    limit: Some(self.page_size),
                })
                .await
                .with_context(|| {
                    format!(
                        "listing memories {}..{}",
                        self.start,
                        self.start + self.page_size
                    )
                })?;
            if let Some(last) = &self.last
                && self.start > 0
                && page.first().is_none_or(|m| sort_key(m) < *last)
            {
                // Deletions moved the memories we have not seen yet to lower offsets.
                self.start = self.start.saturating_sub(self.page_size - 1);
                continue;
            }
            if page.len() < self.page_size {
                self.done = true;
            }
            let Some(tail) = page.last() else {
                return Ok(Vec::new());
            };
            let tail_key = sort_key(tail);
            self.start += page.len() - 1;
            let last = self.last.replace(tail_key);
            let fresh: Vec<Memory> = page
                .into_iter()
                .filter(|m| last.as_ref().is_none_or(|l| sort_key(m) < *l))
                .collect();
            if fresh.is_empty() && !self.done {
                continue;
            }
            return Ok(fresh);
        }
    }
}

/// Whether vectors made by `a` (`a_dims` long) can serve a store of model `b`: the same
/// length and the same model, by id (ignoring case) or by the embedding registry, which
/// knows `@cf/baai/bge-small-en-v1.5` (Workers AI) and `BAAI/bge-small-en-v1.5` (local) as
/// one model.
pub(crate) fn same_model(a: &str, a_dims: usize, b: &str, b_dims: usize) -> bool {
    if a_dims != b_dims {
        return false;
    }
    if a.trim().eq_ignore_ascii_case(b.trim()) {
        return true;
    }
    matches!(
        (ModelSpec::known(a.trim()), ModelSpec::known(b.trim())),
        (Some(x), Some(y)) if x.id == y.id
    )
}

/// A store's identity for checkpoints: which database a resumed run must write to. Never
/// holds a secret.
pub(crate) fn store_identity(config: &Config, kind: BackendKind) -> Result<String> {
    Ok(match kind {
        // The hybrid backend's memories are its local file's (Cloudflare follows by sync).
        BackendKind::Sqlite | BackendKind::Hybrid => {
            let path = std::fs::canonicalize(&config.sqlite_path)
                .unwrap_or_else(|_| config.sqlite_path.clone());
            format!("{}:{}", backend_name(kind), path.display())
        }
        BackendKind::Cloudflare => {
            let c = config.cloudflare_config()?;
            format!(
                "cloudflare:{}/accounts/{}/d1/{}/vectorize/{}{}",
                c.client.base_url,
                c.client.account_id,
                c.d1_database_id,
                c.vectorize_index,
                c.namespace
                    .as_ref()
                    .map(|n| format!("/namespace/{n}"))
                    .unwrap_or_default()
            )
        }
    })
}

/// The name of a backend as `--from`/`--to` and `MCP_MEMORY_STORAGE_BACKEND` spell it.
pub(crate) fn backend_name(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Sqlite => "sqlite",
        BackendKind::Cloudflare => "cloudflare",
        BackendKind::Hybrid => "hybrid",
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, flushed to disk, then
/// renamed over it, so a crash leaves the old file or the new one, never half of one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = sibling(path, ".tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Whether progress is drawn as a bar or only logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProgressMode {
    /// An animated bar on stderr (count/total, rate, ETA).
    Bar,
    /// No bar: an `info` log line every [`LOG_EVERY_BATCHES`] batches (`MCP_MEMORY_LOG=info`).
    Log,
}

/// Batches between two progress log lines when no bar is drawn.
pub(crate) const LOG_EVERY_BATCHES: u64 = 50;

impl ProgressMode {
    /// A bar only when stderr is a terminal: a pipe or a log file gets no control codes.
    pub(crate) fn decide(stderr_is_terminal: bool) -> Self {
        if stderr_is_terminal {
            Self::Bar
        } else {
            Self::Log
        }
    }

    /// The mode for this process.
    pub(crate) fn detect() -> Self {
        Self::decide(std::io::stderr().is_terminal())
    }

    /// A progress bar counting `unit`s out of `total` (drawn only in [`ProgressMode::Bar`]).
    pub(crate) fn bar(self, total: Option<u64>, unit: &str) -> ProgressBar {
        match self {
            Self::Log => ProgressBar::hidden(),
            Self::Bar => {
                let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
                let template = if total.is_some() {
                    format!(
                        "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit} ({{rate}}, ETA {{eta}}) {{msg}}"
                    )
                } else {
                    format!("{{spinner}} [{{elapsed_precise}}] {{pos}} {unit} ({{rate}}) {{msg}}")
                };
                if let Ok(style) = ProgressStyle::with_template(&template) {
                    bar.set_style(style.with_key(
                        "rate",
                        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = write!(w, "{:.0}/s", state.per_sec());
                        },
                    ));
                }
                bar
            }
        }
    }
}

/// Draws the bar's final state and ends its line, so what is printed next starts on a
/// line of its own.
pub(crate) fn finish_bar(bar: &ProgressBar) {
    bar.finish();
    if !bar.is_hidden() {
        eprintln!();
    }
}

/// Ctrl-C handling: the first press asks the running command to stop after the current
/// batch (its results are recorded in the checkpoint); a second press abandons the batch at
/// once (a re-run resends it and finds its memories already stored).
#[derive(Debug, Clone)]
pub(crate) struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Starts listening for Ctrl-C.
    pub(crate) fn install(how_to_resume: String) -> Self {
        let flag = Arc::new(AtomicBool::new(false));
        let set = flag.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                set.store(true, Ordering::SeqCst);
                eprintln!(
                    "\ninterrupted: finishing the current batch (press Ctrl-C again to abandon it)"
                );
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("abandoned the current batch; {how_to_resume}");
                    std::process::exit(130);
                }
            }
        });
        Self(flag)
    }

    /// Whether Ctrl-C was pressed.
    pub(crate) fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Parses the time given to `--before` or `--after` with the parser the MCP tools use
/// ([`Timestamp::parse_point`]): ISO-8601, a date (the whole day counts), or epoch seconds.
pub(crate) fn parse_time_flag(
    flag: &'static str,
    value: Option<&str>,
) -> Result<Option<Timestamp>> {
    use memory_core::timestamp::DayEdge;
    let (field, edge) = if flag == "before" {
        ("--before", DayEdge::End)
    } else {
        ("--after", DayEdge::Start)
    };
    value
        .map(|s| Timestamp::parse_point(field, s, edge).map_err(anyhow::Error::from))
        .transpose()
}

/// "1 memory", "2 memories".
pub(crate) fn memories(n: u64) -> String {
    format!("{n} memor{}", if n == 1 { "y" } else { "ies" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_is_drawn_only_on_a_terminal() {
        assert_eq!(ProgressMode::decide(true), ProgressMode::Bar);
        assert_eq!(ProgressMode::decide(false), ProgressMode::Log);
        assert!(ProgressMode::Log.bar(Some(10), "lines").is_hidden());
    }

    #[test]
    fn same_model_matches_ids_and_registry_aliases_of_equal_length() {
        let minilm = "sentence-transformers/all-MiniLM-L6-v2";
        assert!(same_model(
            minilm,
            384,
            "Sentence-Transformers/all-MiniLM-L6-v2",
            384
        ));
        assert!(same_model(
            "@cf/baai/bge-small-en-v1.5",
            384,
            "BAAI/bge-small-en-v1.5",
            384
        ));
        assert!(!same_model(minilm, 384, "@cf/baai/bge-small-en-v1.5", 384));
        assert!(!same_model(minilm, 384, minilm, 768));
        assert!(!same_model("acme/a", 3, "acme/b", 3));
    }

    #[test]
    fn sibling_appends_to_the_file_name() {
        assert_eq!(
            sibling(Path::new("/x/in.jsonl"), ".import-progress"),
            PathBuf::from("/x/in.jsonl.import-progress")
        );
    }
}
