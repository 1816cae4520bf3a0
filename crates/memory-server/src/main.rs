//! `mcp-memory`: long-term semantic memory for AI assistants.
//!
//! This binary is the CLI over the [`MemoryStorage`](memory_storage::MemoryStorage) trait on
//! the embedded default backend (SQLite + a local embedding model), and the MCP server
//! (`mcp-memory serve`, see [`mcp`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use memory_core::{ContentHash, Memory, Metadata, Tags};
use memory_storage::{
    DeleteRequest, DeleteSelector, ListQuery, MemoryFilter, MemoryStorage, MemoryUpdate,
    SemanticQuery, TagFilter, TagMatch,
};

mod backend;
mod config;
mod consistency;
mod eval;
mod health;
mod input;
mod mcp;
mod output;
mod sync;
mod transfer;

use config::{Config, Overrides};
use health::HealthReport;
use output::Output;

#[derive(Parser)]
#[command(
    name = "mcp-memory",
    version,
    about = "Long-term semantic memory for AI assistants"
)]
struct Cli {
    /// The SQLite database file (overrides MCP_MEMORY_SQLITE_PATH).
    #[arg(long, global = true, value_name = "FILE")]
    db: Option<PathBuf>,
    /// The backend: sqlite, cloudflare or hybrid (overrides MCP_MEMORY_STORAGE_BACKEND).
    #[arg(long, global = true, value_name = "BACKEND")]
    backend: Option<String>,
    /// The TOML configuration file (overrides MCP_MEMORY_CONFIG; default
    /// <config dir>/mcp-memory/config.toml if it exists).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Store a memory.
    Store(StoreArgs),
    /// Search memories by meaning.
    Search(SearchArgs),
    /// Recall memories with a natural-language time ("last week", "yesterday morning about X").
    Recall {
        /// The query; a time expression in it restricts when the memories were created.
        query: String,
        /// How many results.
        #[arg(short = 'n', long, default_value_t = 10)]
        limit: usize,
    },
    /// List memories, newest first.
    List(ListArgs),
    /// List tags with how many memories carry each.
    Tags,
    /// Delete memories by hash, or by tags and time.
    Delete(DeleteArgs),
    /// Change a memory's tags, type or metadata.
    Update(UpdateArgs),
    /// Show figures about the store.
    Stats,
    /// Check that the store answers and the embedding model works.
    Health(health::HealthArgs),
    /// Write memories as JSON Lines (one memory per line).
    Export(transfer::ExportArgs),
    /// Store memories from JSON Lines (batched, resumable, duplicates skipped).
    Import(transfer::ImportArgs),
    /// Copy every memory from one backend to the other (resumable).
    Migrate(transfer::MigrateArgs),
    /// Check that the backend's parts agree (rows, vectors, objects, tag links).
    Check(consistency::CheckArgs),
    /// Fix what `check` finds.
    Repair(consistency::RepairArgs),
    /// Run the local Cloudflare API emulator (for development without an account; built
    /// with `--features emulator`).
    #[cfg(feature = "emulator")]
    Emulator(cloudflare_emulator::cli::EmulatorArgs),
    /// Print the effective configuration, secrets masked.
    Config,
    /// Run the MCP server (stdio by default; --http for streamable HTTP).
    Serve(mcp::ServeArgs),
    /// Measure retrieval quality on a benchmark file (DevBench format), on a fresh
    /// temporary store with the configured model: recall@5/10, NDCG@10, MRR per category.
    Eval(eval::EvalArgs),
    /// Sync the hybrid backend with Cloudflare: `status`, `now` (default), `--full`,
    /// `pause`, `resume`.
    Sync(sync::SyncArgs),
}

#[derive(Args)]
struct UpdateArgs {
    /// The memory's content hash.
    hash: String,
    /// Replace the tags (comma-separated or a JSON array; empty clears them).
    #[arg(short, long)]
    tags: Option<String>,
    /// Replace the memory type (empty clears it).
    #[arg(long = "type", value_name = "TYPE")]
    memory_type: Option<String>,
    /// Metadata to merge, as a JSON object (each key replaces the same key).
    #[arg(long, value_name = "JSON")]
    metadata: Option<String>,
    /// Also set `created_at` to now (by default creation time is kept).
    #[arg(long)]
    reset_created: bool,
}

#[derive(Args)]
struct StoreArgs {
    /// The text to remember; `-` reads it from standard input.
    #[arg(required_unless_present = "file")]
    content: Option<String>,
    /// Read the text from a UTF-8 file instead.
    #[arg(long, conflicts_with = "content", value_name = "PATH")]
    file: Option<PathBuf>,
    /// Tags: comma-separated, or a JSON array.
    #[arg(short, long)]
    tags: Option<String>,
    /// Memory type (note, decision, reference, ...).
    #[arg(long = "type", value_name = "TYPE")]
    memory_type: Option<String>,
    /// Metadata as a JSON object.
    #[arg(long, value_name = "JSON")]
    metadata: Option<String>,
}

#[derive(Args)]
struct SearchArgs {
    /// What to look for.
    query: String,
    /// How many results.
    #[arg(short = 'n', long, default_value_t = 5)]
    limit: usize,
    /// Only memories with these tags (comma-separated or JSON array).
    #[arg(short, long)]
    tags: Option<String>,
    /// Require all the tags instead of any.
    #[arg(long, requires = "tags")]
    all_tags: bool,
    /// Only memories of this type.
    #[arg(long = "type", value_name = "TYPE")]
    memory_type: Option<String>,
    /// Drop results less similar than this (cosine, -1..1).
    #[arg(long)]
    min_score: Option<f32>,
}

#[derive(Args)]
struct ListArgs {
    /// Page number, from 1.
    #[arg(long, default_value_t = 1)]
    page: usize,
    /// Memories per page.
    #[arg(long, default_value_t = 20)]
    page_size: usize,
    /// Only memories with any of these tags.
    #[arg(short, long)]
    tags: Option<String>,
    /// Only memories of this type.
    #[arg(long = "type", value_name = "TYPE")]
    memory_type: Option<String>,
}

#[derive(Args)]
struct DeleteArgs {
    /// Hashes of the memories to delete.
    hashes: Vec<String>,
    /// Delete memories with these tags (comma-separated or JSON array).
    #[arg(short, long)]
    tags: Option<String>,
    /// Require all the tags instead of any.
    #[arg(long, requires = "tags")]
    all_tags: bool,
    /// Only memories created at or before this time: ISO-8601, a date (through its end) or
    /// epoch seconds.
    #[arg(long, value_name = "TIME")]
    before: Option<String>,
    /// Only memories created at or after this time: ISO-8601, a date (from its start) or
    /// epoch seconds.
    #[arg(long, value_name = "TIME")]
    after: Option<String>,
    /// Show what would be deleted without deleting.
    #[arg(long)]
    dry_run: bool,
}

impl Command {
    /// Whether the command serves until stopped (a closed pipe must not end it).
    fn is_server(&self) -> bool {
        #[cfg(feature = "emulator")]
        if matches!(self, Self::Emulator(_)) {
            return true;
        }
        matches!(self, Self::Serve(_))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !cli.command.is_server() {
        default_sigpipe();
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MCP_MEMORY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let out = Output::new(cli.json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, &out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            out.error(&e);
            ExitCode::FAILURE
        }
    }
}

/// Lets a closed pipe end a command the conventional way (`mcp-memory list | head -1`):
/// quietly, by SIGPIPE, instead of Rust's default of ignoring the signal and panicking on
/// the failed write. Servers keep ignoring it: a client going away is not a reason to die.
fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called at start-up before any thread is spawned; restoring a signal's default
    // disposition has no other effect on the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

async fn run(cli: Cli, out: &Output) -> Result<()> {
    let mut command = cli.command;
    let overrides = Overrides {
        sqlite_path: cli.db,
        backend: cli.backend,
        config_file: cli.config,
        // `serve --api-key` is one layer of the configuration, as secret as the others.
        api_key: match &mut command {
            Command::Serve(args) => args.api_key.take(),
            _ => None,
        },
    };
    let command = match command {
        #[cfg(feature = "emulator")]
        Command::Emulator(args) => return cloudflare_emulator::cli::run(args).await,
        Command::Config => return config::show(&overrides, cli.json),
        other => other,
    };
    let config = Config::load(&overrides)?;
    let command = match command {
        Command::Serve(args) => return mcp::serve(config, args).await,
        Command::Migrate(args) => return transfer::migrate(&config, args, out).await,
        Command::Eval(args) => return eval::run(&config, args, out).await,
        Command::Sync(args) => {
            let store = backend::open_hybrid(&config).await?;
            return sync::run(&store, args, out).await;
        }
        other => other,
    };
    let store = backend::open(&config).await?;
    let store: &dyn MemoryStorage = store.as_ref();
    let result = run_on(store, command, &config, out).await;
    // The next command is another process: it must find what this one wrote, even when
    // this one failed half-way (an import with bad lines stores the good ones).
    let settled = backend::settle(store).await;
    result?;
    settled
}

/// Runs a command that works on the configured store.
async fn run_on(
    store: &dyn MemoryStorage,
    command: Command,
    config: &Config,
    out: &Output,
) -> Result<()> {
    match command {
        Command::Store(args) => {
            let memory = build_memory(args)?;
            let hash = memory.content_hash().clone();
            // Storing what is already stored is not a failure: the memory is there,
            // unchanged. Scripts see `"outcome": "duplicate"` with --json.
            out.stored(&hash, store.store(memory).await?);
        }
        Command::Search(args) => {
            let mut filter = MemoryFilter::all();
            if let Some(t) = &args.tags {
                filter.tags = Some(tag_filter(t, args.all_tags)?);
            }
            filter.memory_type = args.memory_type;
            let mut query = SemanticQuery::new(args.query, args.limit).with_filter(filter);
            query.min_similarity = args.min_score;
            out.results(&store.search(&query).await?);
        }
        Command::Recall { query, limit } => {
            out.results(&store.recall_memory(&query, limit).await?);
        }
        Command::List(args) => {
            let mut filter = MemoryFilter::all();
            if let Some(t) = &args.tags {
                filter.tags = Some(tag_filter(t, false)?);
            }
            filter.memory_type = args.memory_type;
            let total = store.count(&filter).await?;
            let query = ListQuery::page(filter, args.page, args.page_size)?;
            out.memories(&store.list(&query).await?, Some((args.page, total)));
        }
        Command::Tags => out.tags(&store.get_all_tags().await?),
        Command::Delete(args) => delete(store, args, out).await?,
        Command::Update(args) => update(store, args, out).await?,
        Command::Stats => out.stats(&store.get_stats().await?),
        Command::Health(args) => health(store, config, &args, out).await?,
        Command::Export(args) => transfer::export(store, args, out).await?,
        Command::Import(args) => transfer::import(store, config, args, out).await?,
        Command::Check(args) => consistency::check(store, args, out).await?,
        Command::Repair(args) => consistency::repair(store, args, out).await?,
        #[cfg(feature = "emulator")]
        Command::Emulator(_) => unreachable!("handled above"),
        Command::Serve(_)
        | Command::Migrate(_)
        | Command::Sync(_)
        | Command::Eval(_)
        | Command::Config => {
            unreachable!("handled above")
        }
    }
    Ok(())
}

/// `--tags` (and `--all-tags`) as the storage filter, through the constructor the MCP tools
/// use too.
fn tag_filter(tags: &str, all: bool) -> Result<TagFilter> {
    let mode = if all { TagMatch::All } else { TagMatch::Any };
    Ok(TagFilter::requested(Tags::parse(tags)?, mode)?)
}

fn build_memory(args: StoreArgs) -> Result<Memory> {
    let content = match (args.content, args.file) {
        (_, Some(path)) => {
            let file = std::fs::File::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            // A regular file says its size: refuse it without reading a byte.
            if let Ok(meta) = file.metadata()
                && meta.is_file()
                && meta.len() > memory_core::limits::MAX_CONTENT_BYTES as u64
            {
                return Err(memory_core::ValidationError::ContentTooLarge {
                    bytes: usize::try_from(meta.len()).unwrap_or(usize::MAX),
                    limit: memory_core::limits::MAX_CONTENT_BYTES,
                }
                .into());
            }
            input::read_content(file, &path.display().to_string())?
        }
        (Some(c), None) if c == "-" => {
            input::read_content(std::io::stdin().lock(), "standard input")?
        }
        (Some(c), None) => c,
        (None, None) => anyhow::bail!("give the text to store, `-` for standard input, or --file"),
    };
    let mut memory = Memory::new(content)?;
    if let Some(t) = args.tags {
        memory = memory.with_tags(Tags::parse(t)?);
    }
    if let Some(t) = args.memory_type {
        memory = memory.with_memory_type(t)?;
    }
    if let Some(m) = args.metadata {
        memory = memory.with_metadata(Metadata::parse(&m)?);
    }
    Ok(memory)
}

async fn delete(store: &dyn MemoryStorage, args: DeleteArgs, out: &Output) -> Result<()> {
    let hashes = args
        .hashes
        .iter()
        .map(|h| h.parse::<ContentHash>())
        .collect::<Result<Vec<_>, _>>()?;
    let only_one_hash = hashes.len() == 1
        && args.tags.is_none()
        && args.before.is_none()
        && args.after.is_none()
        && !args.dry_run;
    if only_one_hash {
        let report = store.delete(&hashes[0]).await?;
        out.deleted(&report);
        return Ok(());
    }
    let tags = match &args.tags {
        Some(t) => Some(tag_filter(t, args.all_tags)?),
        None => None,
    };
    let request = DeleteRequest {
        selector: DeleteSelector {
            hashes,
            tags,
            before: transfer::parse_time_flag("before", args.before.as_deref())?,
            after: transfer::parse_time_flag("after", args.after.as_deref())?,
        },
        dry_run: args.dry_run,
    };
    let report = store.delete_memories(&request).await?;
    out.deleted(&report);
    Ok(())
}

async fn update(store: &dyn MemoryStorage, args: UpdateArgs, out: &Output) -> Result<()> {
    let hash: ContentHash = args.hash.parse()?;
    let updates = MemoryUpdate {
        tags: args.tags.map(Tags::parse).transpose()?,
        memory_type: args
            .memory_type
            .map(|t| Some(t).filter(|t| !t.trim().is_empty())),
        metadata: args.metadata.as_deref().map(Metadata::parse).transpose()?,
        created_at: None,
    };
    if updates.is_empty() && !args.reset_created {
        anyhow::bail!("nothing to change: give --tags, --type, --metadata or --reset-created");
    }
    let memory = store
        .update_memory_metadata(&hash, updates, !args.reset_created)
        .await?;
    out.updated(&memory);
    Ok(())
}

async fn health(
    store: &dyn MemoryStorage,
    config: &Config,
    args: &health::HealthArgs,
    out: &Output,
) -> Result<()> {
    let mut report = HealthReport::run(store).await;
    if args.compare_embeddings {
        let cloudflare = match config.backend {
            config::BackendKind::Cloudflare => config.cloudflare_config().ok(),
            // The hybrid backend embeds locally only: nothing to compare with.
            config::BackendKind::Sqlite | config::BackendKind::Hybrid => None,
        };
        report.compare_embeddings(cloudflare.as_ref()).await;
    }
    out.health(&report);
    if report.healthy() {
        Ok(())
    } else {
        Err(output::AlreadyReported(
            "the store is not healthy (see the failed checks above)".to_owned(),
        )
        .into())
    }
}
