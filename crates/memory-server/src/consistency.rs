//! `mcp-memory check` and `mcp-memory repair`: do the backend's parts agree?
//!
//! Both go through [`MemoryStorage::check`] / [`MemoryStorage::repair`], so they work on
//! every backend: on Cloudflare, D1 rows against Vectorize vectors and R2 objects; on the
//! embedded default, rows against their embeddings and tag links.

use anyhow::Result;
use clap::Args;
use memory_storage::{ConsistencyReport, MemoryStorage, RepairReport};
use serde_json::json;

use crate::output::{AlreadyReported, Output};

/// At most this many issues are listed in text output (all are counted; `--json` has all).
const LISTED: usize = 20;

/// `mcp-memory check` options.
#[derive(Args, Debug)]
pub struct CheckArgs {}

/// `mcp-memory repair` options.
#[derive(Args, Debug)]
pub struct RepairArgs {}

/// Reports disagreements between the backend's parts; exits 1 when there are any, so
/// scripts can act on it.
pub async fn check(store: &dyn MemoryStorage, _args: CheckArgs, out: &Output) -> Result<()> {
    let report = store.check().await?;
    if out.is_json() {
        out.json(json!(report));
    } else {
        print_report(&report);
    }
    if report.is_consistent() {
        Ok(())
    } else {
        Err(AlreadyReported(format!(
            "{} problem(s) found; `mcp-memory repair` fixes them",
            report.issues.len()
        ))
        .into())
    }
}

/// Fixes what `check` finds, then checks again; exits 1 when something could not be fixed.
pub async fn repair(store: &dyn MemoryStorage, _args: RepairArgs, out: &Output) -> Result<()> {
    let report = store.repair().await?;
    if out.is_json() {
        out.json(json!(report));
    } else {
        print_repair(&report);
    }
    if report.remaining.is_empty() {
        Ok(())
    } else {
        Err(AlreadyReported(format!(
            "{} problem(s) could not be repaired (listed above)",
            report.remaining.len()
        ))
        .into())
    }
}

fn print_report(report: &ConsistencyReport) {
    println!(
        "{}: {} memories checked, {} problem(s)",
        report.backend,
        report.memories_checked,
        report.issues.len()
    );
    print_issues(&report.issues);
}

fn print_repair(report: &RepairReport) {
    print_report(&report.found);
    for action in &report.actions {
        println!("repaired: {action}");
    }
    println!("{} fixed", report.fixed);
    if !report.remaining.is_empty() {
        println!("still inconsistent after repair:");
        print_issues(&report.remaining);
    }
}

fn print_issues(issues: &[memory_storage::ConsistencyIssue]) {
    for issue in issues.iter().take(LISTED) {
        println!(
            "  {:<20} {}  {}",
            issue.kind.as_str(),
            issue.subject,
            issue.detail
        );
    }
    if issues.len() > LISTED {
        println!("  … and {} more (--json lists all)", issues.len() - LISTED);
    }
}
