//! `mcp-memory migrate`: every memory from one backend to the other, resumable.

use std::collections::HashSet;

use anyhow::{Context, Result};
use clap::Args;
use memory_core::ContentHash;
use memory_storage::{MemoryFilter, MemoryStorage, StoreOutcome};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    Interrupt, LISTED_PROBLEMS, LOG_EVERY_BATCHES, MAX_PAGE, Pager, ProgressMode, backend_name,
    memories, same_model, sibling, store_identity, write_atomic,
};
use crate::backend::open_kind;
use crate::config::{BackendKind, Config};
use crate::output::Output;

/// `mcp-memory migrate` options.
#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The backend to copy from (`sqlite`, `sqlite_vec`, `sqlite-vec` or `cloudflare`).
    #[arg(long, value_name = "BACKEND")]
    from: BackendKind,
    /// The backend to copy to. The SQLite side is `--db` / MCP_MEMORY_SQLITE_PATH, the
    /// Cloudflare side the CLOUDFLARE_* variables.
    #[arg(long, value_name = "BACKEND")]
    to: BackendKind,
    /// Memories copied per batch (1..=999); progress is recorded after each batch.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=999))]
    batch_size: u64,
    /// Ignore a checkpoint of an earlier interrupted migration and start from the newest memory.
    #[arg(long)]
    restart: bool,
    /// Only count what would be copied and what is already there; change nothing.
    #[arg(long)]
    dry_run: bool,
}

const CHECKPOINT_VERSION: u32 = 1;

/// A memory the destination refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Failure {
    content_hash: String,
    error: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Counts {
    copied: u64,
    already_present: u64,
    failed: u64,
    failures: Vec<Failure>,
    vectors_reused: u64,
    re_embedded: u64,
}

/// How far a migration got: the source's list order (newest first) is stable, so the
/// position is the last memory copied (its sort key) and its offset then.
#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    version: u32,
    source: String,
    destination: String,
    /// Offset in the source's list of the last memory handled.
    offset: usize,
    /// `created_at` in microseconds and the hash of that memory.
    last_created_at_us: i64,
    last_content_hash: String,
    counts: Counts,
}

/// Copies every memory from one backend to the other.
pub async fn migrate(config: &Config, args: MigrateArgs, out: &Output) -> Result<()> {
    let (from, to) = (backend_name(args.from), backend_name(args.to));
    if args.from == args.to {
        anyhow::bail!(
            "--from and --to are both {from}: migrate copies between two different backends \
             (--from sqlite --to cloudflare, or --from cloudflare --to sqlite)"
        );
    }
    let local = |k| matches!(k, BackendKind::Sqlite | BackendKind::Hybrid);
    if local(args.from) && local(args.to) {
        anyhow::bail!(
            "--from {from} --to {to} name the same local file ({}): to turn the hybrid backend \
             on for it, set MCP_MEMORY_STORAGE_BACKEND=hybrid; its memories are pushed to \
             Cloudflare by the first sync (`mcp-memory sync now`)",
            config.sqlite_path.display()
        );
    }
    if local(args.from) && !config.sqlite_path.exists() {
        anyhow::bail!(
            "the source database {} does not exist; pass --db FILE or set MCP_MEMORY_SQLITE_PATH \
             (`mcp-memory config` shows which file is used)",
            config.sqlite_path.display()
        );
    }
    let source = open_kind(config, args.from)
        .await
        .with_context(|| format!("opening the source ({from})"))?;
    let dest = open_kind(config, args.to)
        .await
        .with_context(|| format!("opening the destination ({to})"))?;
    let (source, dest): (&dyn MemoryStorage, &dyn MemoryStorage) = (source.as_ref(), dest.as_ref());
    let src_stats = source
        .get_stats()
        .await
        .context("reading the source's figures")?;
    let dst_stats = dest
        .get_stats()
        .await
        .context("reading the destination's figures")?;
    let total = src_stats.total_memories;
    let reuse = same_model(
        &src_stats.embedding_model,
        src_stats.embedding_dimensions,
        &dst_stats.embedding_model,
        dst_stats.embedding_dimensions,
    );
    let decision = if reuse {
        format!(
            "both stores use {} ({} dims): stored vectors are carried over",
            dst_stats.embedding_model, dst_stats.embedding_dimensions
        )
    } else {
        format!(
            "the source's vectors are {} ({} dims), the destination's {} ({} dims): the destination embeds every memory again",
            src_stats.embedding_model,
            src_stats.embedding_dimensions,
            dst_stats.embedding_model,
            dst_stats.embedding_dimensions
        )
    };
    if args.dry_run {
        return dry_run(source, dest, from, to, &decision, out).await;
    }

    let src_id = store_identity(config, args.from)?;
    let dst_id = store_identity(config, args.to)?;
    let progress_path = sibling(
        &config.sqlite_path,
        &format!(".migrate-{from}-to-{to}.progress"),
    );
    let page = args.batch_size as usize + 1;
    let mut counts = Counts::default();
    let mut pager = Pager::new(MemoryFilter::all(), page);
    let mut resumed_after = None;
    if progress_path.exists() && !args.restart {
        let cp: Checkpoint = serde_json::from_slice(
            &std::fs::read(&progress_path)
                .with_context(|| format!("reading {}", progress_path.display()))?,
        )
        .with_context(|| {
            format!(
                "{} is not a checkpoint this version understands; add --restart",
                progress_path.display()
            )
        })?;
        if cp.version != CHECKPOINT_VERSION || cp.source != src_id || cp.destination != dst_id {
            anyhow::bail!(
                "{} records a migration from {} to {}, not from {src_id} to {dst_id}; \
                 add --restart to start this one from the beginning",
                progress_path.display(),
                cp.source,
                cp.destination
            );
        }
        pager = Pager::resume(
            MemoryFilter::all(),
            page,
            cp.offset,
            (cp.last_created_at_us, cp.last_content_hash),
        );
        let done = cp.counts.copied + cp.counts.already_present + cp.counts.failed;
        eprintln!(
            "resuming after {} of {total} (progress in {}; --restart starts over)",
            memories(done),
            progress_path.display()
        );
        resumed_after = Some(done);
        counts = cp.counts;
    }

    let interrupt = Interrupt::install(format!(
        "run the same command again to resume (progress is kept in {} after each batch)",
        progress_path.display()
    ));
    let mode = ProgressMode::detect();
    let bar = mode.bar(Some(total), "memories");
    let done = |c: &Counts| c.copied + c.already_present + c.failed;
    bar.set_position(done(&counts));
    let mut batches = 0u64;
    let mut interrupted = false;
    loop {
        let mut batch = pager
            .next_page(source)
            .await
            .context("reading the source")?;
        if batch.is_empty() {
            break;
        }
        let hashes: Vec<ContentHash> = batch.iter().map(|m| m.content_hash().clone()).collect();
        let vectors = if reuse {
            source
                .get_embeddings(&hashes)
                .await
                .context("reading the source's stored vectors")?
        } else {
            Vec::new()
        };
        for (i, m) in batch.iter_mut().enumerate() {
            match vectors.get(i).cloned().flatten() {
                Some(v) if v.len() == dst_stats.embedding_dimensions => {
                    m.embedding = Some(v);
                    counts.vectors_reused += 1;
                }
                _ => counts.re_embedded += 1,
            }
        }
        let results = match dest.store_batch(batch.clone()).await {
            Ok(results) => results,
            // A batch refused as a whole (a Cloudflare batch fails when Vectorize refuses
            // one of its vectors) is sent again one memory at a time, so the others are
            // copied and only what the destination refuses is listed.
            Err(e) if !e.is_transient() => {
                tracing::warn!(error = %e, "the destination refused a whole batch; storing its memories one at a time");
                let mut one_by_one = Vec::with_capacity(batch.len());
                for m in batch {
                    one_by_one.push(dest.store(m).await);
                }
                one_by_one
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "storing a batch into {to}; nothing of it is recorded as done: {}",
                    how_to_resume(&progress_path)
                )));
            }
        };
        // A backend that was unavailable for some items fails the whole batch, before the
        // checkpoint moves: a re-run sends it again (what did get stored is then skipped as
        // already present). Only refusals of the memory itself count as failures.
        if let Some(e) = results
            .iter()
            .find_map(|r| r.as_ref().err().filter(|e| e.is_transient()))
        {
            anyhow::bail!(
                "storing a batch into {to}: {e}; nothing of it is recorded as done: {}",
                how_to_resume(&progress_path)
            );
        }
        for (result, hash) in results.into_iter().zip(&hashes) {
            match result {
                Ok(StoreOutcome::Duplicate) => counts.already_present += 1,
                Ok(StoreOutcome::Stored | StoreOutcome::Revived) => counts.copied += 1,
                Err(e) => {
                    counts.failed += 1;
                    if counts.failures.len() < LISTED_PROBLEMS {
                        counts.failures.push(Failure {
                            content_hash: hash.to_string(),
                            error: e.to_string(),
                        });
                    }
                }
            }
        }
        let (offset, last) = pager.position();
        if let Some((us, hash)) = last {
            let cp = Checkpoint {
                version: CHECKPOINT_VERSION,
                source: src_id.clone(),
                destination: dst_id.clone(),
                offset,
                last_created_at_us: *us,
                last_content_hash: hash.clone(),
                counts: counts.clone(),
            };
            write_atomic(&progress_path, &serde_json::to_vec_pretty(&cp)?).with_context(|| {
                format!(
                    "recording progress in {} (its directory must be writable)",
                    progress_path.display()
                )
            })?;
        }
        batches += 1;
        bar.set_length(total.max(done(&counts)));
        bar.set_position(done(&counts));
        if mode == ProgressMode::Log && batches.is_multiple_of(LOG_EVERY_BATCHES) {
            tracing::info!("migrate: {} of {total} handled", done(&counts));
        }
        if interrupt.requested() {
            interrupted = true;
            break;
        }
    }
    super::finish_bar(&bar);
    if interrupted {
        anyhow::bail!(
            "interrupted after {} of {total} ({} copied, {} already present, {} failed); {}",
            memories(done(&counts)),
            counts.copied,
            counts.already_present,
            counts.failed,
            how_to_resume(&progress_path)
        );
    }
    if progress_path.exists() {
        std::fs::remove_file(&progress_path).with_context(|| {
            format!(
                "removing {} after the migration completed",
                progress_path.display()
            )
        })?;
    }
    // Searchable by the next command too, not only by this process (Cloudflare's index
    // applies writes a few seconds after accepting them).
    crate::backend::settle(dest).await?;
    let mut text = format!(
        "migrated {from} -> {to}: {} copied, {} already present, {} failed{}",
        counts.copied,
        counts.already_present,
        counts.failed,
        resumed_after
            .map(|n| format!(" (resumed after {n})"))
            .unwrap_or_default()
    );
    for f in &counts.failures {
        text.push_str(&format!("\n  failed {}: {}", f.content_hash, f.error));
    }
    if counts.failed > counts.failures.len() as u64 {
        text.push_str(&format!(
            "\n  ... and {} more",
            counts.failed - counts.failures.len() as u64
        ));
    }
    text.push_str(&format!(
        "\n  vectors: {} reused, {} embedded again ({decision})",
        counts.vectors_reused, counts.re_embedded
    ));
    out.transfer_summary(
        json!({
            "from": from,
            "to": to,
            "dry_run": false,
            "source_total": total,
            "copied": counts.copied,
            "already_present": counts.already_present,
            "failed": counts.failed,
            "failures": counts.failures,
            "vectors": {
                "reused": counts.vectors_reused,
                "re_embedded": counts.re_embedded,
                "same_model": reuse,
                "decision": decision,
            },
            "resumed_after": resumed_after,
        }),
        &text,
        false,
    );
    if counts.failed > 0 {
        return Err(crate::output::AlreadyReported(format!(
            "{} memories were refused by {to} (listed above); fix the cause and run \
             `mcp-memory migrate --from {from} --to {to} --restart` (what was copied is skipped)",
            counts.failed
        ))
        .into());
    }
    Ok(())
}

/// How to go on after a failed or interrupted run, naming the progress file only when
/// there is one: before the first batch is recorded there is nothing to resume from.
fn how_to_resume(progress_path: &std::path::Path) -> String {
    if progress_path.exists() {
        format!(
            "run the same command again to resume (progress is kept in {})",
            progress_path.display()
        )
    } else {
        "run the same command again; no batch was recorded as done, so it starts from the \
         beginning (memories already copied are then skipped as already present)"
            .to_owned()
    }
}

/// Counts what a migration would copy: the destination's hashes, then the source's.
async fn dry_run(
    source: &dyn MemoryStorage,
    dest: &dyn MemoryStorage,
    from: &str,
    to: &str,
    decision: &str,
    out: &Output,
) -> Result<()> {
    let mut present: HashSet<ContentHash> = HashSet::new();
    let mut pager = Pager::new(MemoryFilter::all(), MAX_PAGE);
    loop {
        let page = pager
            .next_page(dest)
            .await
            .context("reading the destination")?;
        if page.is_empty() {
            break;
        }
        present.extend(page.iter().map(|m| m.content_hash().clone()));
    }
    let (mut would_copy, mut already) = (0u64, 0u64);
    let mut pager = Pager::new(MemoryFilter::all(), MAX_PAGE);
    loop {
        let page = pager
            .next_page(source)
            .await
            .context("reading the source")?;
        if page.is_empty() {
            break;
        }
        for m in &page {
            if present.contains(m.content_hash()) {
                already += 1;
            } else {
                would_copy += 1;
            }
        }
    }
    out.transfer_summary(
        json!({
            "from": from,
            "to": to,
            "dry_run": true,
            "source_total": would_copy + already,
            "would_copy": would_copy,
            "already_present": already,
            "vectors": {"decision": decision},
        }),
        &format!(
            "dry run {from} -> {to}: would copy {}, {already} already present; nothing changed\n  vectors: {decision}",
            memories(would_copy)
        ),
        false,
    );
    Ok(())
}
