//! `mcp-memory sync`: the hybrid backend's sync, by hand. `status` shows the device's
//! state; `now` (the default) runs one round (push, pull, projection) with progress;
//! `--full` adds the content-hash diff in both directions; `pause`/`resume` stop and
//! restart every process's background sync on this database.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use memory_hybrid::{FullSyncReport, HybridStorage, SyncProgress, SyncReport, SyncStatus};
use serde_json::json;

use crate::output::Output;
use crate::transfer::{ProgressMode, finish_bar};

/// `mcp-memory sync`.
#[derive(Args)]
pub struct SyncArgs {
    /// What to do (default: `now`).
    #[command(subcommand)]
    action: Option<SyncAction>,
    /// A full sync: one round, a content-hash diff of every memory in both directions
    /// (finds memories the Python service wrote to Cloudflare), then another round.
    #[arg(long)]
    full: bool,
}

#[derive(Subcommand, Clone, Copy, PartialEq, Eq)]
enum SyncAction {
    /// Backlog, last push and pull, log cursor, last error, device id.
    Status,
    /// Push and pull once (with a progress bar for a large backlog).
    Now,
    /// Stop background sync on this database (every process) until `resume`.
    Pause,
    /// Restart background sync after `pause`.
    Resume,
}

/// Runs `mcp-memory sync`.
pub async fn run(store: &HybridStorage, args: SyncArgs, out: &Output) -> Result<()> {
    let engine = store.engine();
    match args.action.unwrap_or(SyncAction::Now) {
        SyncAction::Status => {
            if args.full {
                bail!("--full goes with `sync` or `sync now`, not `sync status`");
            }
            status(&engine.status().await?, out);
        }
        SyncAction::Pause | SyncAction::Resume => {
            let pause = args.action == Some(SyncAction::Pause);
            engine.set_paused(pause).await?;
            if out.is_json() {
                out.json(json!({"paused": pause}));
            } else if pause {
                println!(
                    "sync paused: local writes go on and wait in the outbox (`mcp-memory sync resume`)"
                );
            } else {
                println!("sync resumed");
            }
        }
        SyncAction::Now => {
            let backlog = engine.status().await?.backlog;
            let bar = ProgressMode::detect().bar(Some(backlog), "changes pushed");
            let progress = |p: SyncProgress| match p {
                SyncProgress::Pushed { done } => bar.set_position(done),
                SyncProgress::Pulled { done, cursor } => {
                    bar.set_message(format!("pulled {done} (log position {cursor})"));
                }
                SyncProgress::Projected { done } => {
                    bar.set_message(format!("written to Cloudflare's tables: {done}"));
                }
            };
            if args.full {
                let report = engine.sync_full(&progress).await;
                finish_bar(&bar);
                full(&report?, out);
            } else {
                let report = engine.sync_once(true, &progress).await;
                finish_bar(&bar);
                round(&report?, out);
            }
        }
    }
    Ok(())
}

fn status(s: &SyncStatus, out: &Output) {
    if out.is_json() {
        out.json(json!(s));
        return;
    }
    let or_never = |v: &Option<String>| v.clone().unwrap_or_else(|| "never".to_owned());
    println!("device             {}", s.device);
    println!(
        "state              {}",
        if s.paused { "paused" } else { "syncing" }
    );
    println!("backlog            {} changes to push", s.backlog);
    println!("last push          {}", or_never(&s.last_push));
    println!("last pull          {}", or_never(&s.last_pull));
    println!("log cursor         {}", s.pull_cursor);
    println!("projected up to    {}", s.project_cursor);
    if let Some(e) = &s.last_error {
        println!("last error         {e}");
    }
}

fn round_json(r: &SyncReport) -> serde_json::Value {
    json!({
        "skipped": r.skipped.map(|s| format!("{s:?}").to_lowercase()),
        "pushed": r.pushed,
        "pushed_new": r.pushed_new,
        "pulled": r.pulled,
        "applied": r.applied,
        "embedded": r.embedded,
        "projected": r.projected,
        "stale_projections": r.stale_projections,
        "imported": r.imported,
        "unresolved": r.unresolved,
        "requests": r.requests,
    })
}

fn round(r: &SyncReport, out: &Output) {
    if out.is_json() {
        out.json(round_json(r));
        return;
    }
    match r.skipped {
        Some(memory_hybrid::Skipped::Paused) => {
            println!("sync is paused (`mcp-memory sync resume`)");
        }
        Some(memory_hybrid::Skipped::Busy) => {
            println!("another process on this database is syncing now; nothing done");
        }
        None => println!(
            "pushed {} changes, pulled {} ({} applied), wrote {} memories to Cloudflare's \
             tables, stored {} found only there; {} requests",
            r.pushed, r.pulled, r.applied, r.projected, r.imported, r.requests
        ),
    }
    if !r.unresolved.is_empty() {
        println!(
            "{} memories changed elsewhere are not on this device; run `mcp-memory sync --full`",
            r.unresolved.len()
        );
    }
}

fn full(r: &FullSyncReport, out: &Output) {
    if out.is_json() {
        out.json(json!({
            "imported": r.imported,
            "embedded": r.embedded,
            "reprojected": r.reprojected,
            "rounds": r.rounds.iter().map(round_json).collect::<Vec<_>>(),
        }));
        return;
    }
    for r in &r.rounds {
        round(r, out);
    }
    println!(
        "full diff: {} memories found only in Cloudflare stored here ({} embedded here), {} \
         written again to Cloudflare's tables",
        r.imported, r.embedded, r.reprojected
    );
}
