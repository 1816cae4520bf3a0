//! `mcp-memory export`: JSON Lines, one memory per line, newest first; each line is
//! memory-core's [`MemoryRecord`] (with the stored vector and model id under `--embeddings`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use memory_core::{MemoryRecord, Tags, TimeRange, Timestamp};
use memory_storage::{MemoryFilter, MemoryStorage, TagFilter};
use serde_json::json;

use super::{MAX_PAGE, Pager, ProgressMode, memories, parse_time_flag, sibling};
use crate::output::Output;

/// `mcp-memory export` options.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to this file (replaced only once the export is complete) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Include each memory's stored vector and the model id (when the backend can hand
    /// them out), so an import into a store of the same model embeds nothing.
    #[arg(long)]
    embeddings: bool,
    /// Only memories with any of these tags (comma-separated or a JSON array).
    #[arg(short, long)]
    tags: Option<String>,
    /// Only memories of this type.
    #[arg(long = "type", value_name = "TYPE")]
    memory_type: Option<String>,
    /// Only memories created at or after this ISO-8601 time.
    #[arg(long, value_name = "TIME")]
    after: Option<String>,
    /// Only memories created at or before this ISO-8601 time.
    #[arg(long, value_name = "TIME")]
    before: Option<String>,
}

/// A file being written under a temporary name; removed unless [`PartialFile::commit`]ted.
struct PartialFile {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl PartialFile {
    fn create(target: &Path) -> Result<(Self, std::fs::File)> {
        let tmp = sibling(target, &format!(".partial-{}", std::process::id()));
        let file = std::fs::File::create(&tmp).with_context(|| {
            format!(
                "creating {} (the export is written there, then renamed to {}); check that the directory exists and is writable",
                tmp.display(),
                target.display()
            )
        })?;
        Ok((
            Self {
                tmp,
                target: target.to_owned(),
                committed: false,
            },
            file,
        ))
    }

    fn commit(mut self, file: std::fs::File) -> Result<()> {
        file.sync_all()
            .with_context(|| format!("flushing {}", self.tmp.display()))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.target).with_context(|| {
            format!(
                "renaming {} to {}",
                self.tmp.display(),
                self.target.display()
            )
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn filter_of(args: &ExportArgs) -> Result<MemoryFilter> {
    let mut filter = MemoryFilter::all();
    if let Some(t) = &args.tags {
        filter.tags = Some(
            TagFilter::requested(Tags::parse(t.as_str())?, memory_storage::TagMatch::Any)
                .context("--tags")?,
        );
    }
    filter.memory_type = args.memory_type.clone();
    let after = parse_time_flag("after", args.after.as_deref())?;
    let before = parse_time_flag("before", args.before.as_deref())?;
    if after.is_some() || before.is_some() {
        let start = match after {
            Some(t) => t,
            // Year 1 and year 9999: wide enough for any stored time.
            None => Timestamp::from_epoch_seconds(-62_135_596_800.0)?,
        };
        let end = match before {
            Some(t) => t,
            None => Timestamp::from_epoch_seconds(253_402_300_799.0)?,
        };
        if start > end {
            anyhow::bail!("--after ({start}) is later than --before ({end})");
        }
        filter = filter.with_time(TimeRange { start, end });
    }
    Ok(filter)
}

/// Writes memories as JSON Lines.
pub async fn export(store: &dyn MemoryStorage, args: ExportArgs, out: &Output) -> Result<()> {
    let filter = filter_of(&args)?;
    let total = store.count(&filter).await.context("counting memories")?;
    let model = if args.embeddings {
        Some(store.get_stats().await?.embedding_model)
    } else {
        None
    };
    let (partial, mut sink) = match &args.output {
        Some(path) => {
            let (partial, file) = PartialFile::create(path)?;
            (
                Some(partial),
                Sink::File(std::io::BufWriter::with_capacity(1 << 20, file)),
            )
        }
        None => (
            None,
            Sink::Stdout(std::io::BufWriter::new(std::io::stdout())),
        ),
    };
    let where_to = args
        .output
        .as_ref()
        .map_or_else(|| "standard output".to_owned(), |p| p.display().to_string());
    let bar = ProgressMode::detect().bar(Some(total), "memories");
    let mut pager = Pager::new(filter, MAX_PAGE);
    let (mut written, mut with_vector) = (0u64, 0u64);
    loop {
        let page = pager.next_page(store).await?;
        if page.is_empty() {
            break;
        }
        let vectors = match &model {
            Some(_) => {
                let hashes: Vec<_> = page.iter().map(|m| m.content_hash().clone()).collect();
                store.get_embeddings(&hashes).await.context(
                    "reading the stored vectors (omit --embeddings to export without them)",
                )?
            }
            None => vec![None; page.len()],
        };
        for (m, v) in page
            .into_iter()
            .zip(vectors.into_iter().chain(std::iter::repeat(None)))
        {
            // Only the vector read for the export is written, with the store's model id.
            let (vector, id) = match (v, &model) {
                (Some(v), Some(id)) => (Some(v), Some(id.clone())),
                _ => (None, None),
            };
            with_vector += u64::from(vector.is_some());
            let record = MemoryRecord::from(m).with_vector(vector, id);
            let mut line = serde_json::to_vec(&record)?;
            line.push(b'\n');
            if let Err(e) = sink.write_all(&line) {
                // `export | head`: the reader has what it wanted; stop quietly.
                if e.kind() == std::io::ErrorKind::BrokenPipe && args.output.is_none() {
                    return Ok(());
                }
                return Err(e).with_context(|| format!("writing to {where_to}"));
            }
            written += 1;
        }
        bar.set_length(total.max(written));
        bar.set_position(written);
    }
    bar.finish_and_clear();
    let file = match sink.finish() {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe && args.output.is_none() => {
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("writing to {where_to}")),
    };
    if let (Some(partial), Some(file)) = (partial, file) {
        partial.commit(file)?;
    }
    let mut text = format!("exported {} to {where_to}", memories(written));
    if let Some(id) = &model {
        text.push_str(&format!(", {with_vector} with their {id} vector"));
        if with_vector < written {
            text.push_str(&format!(
                " ({} without: the {} backend does not hand out stored vectors, or they are missing)",
                written - with_vector,
                store.backend_name()
            ));
        }
    }
    out.transfer_summary(
        json!({
            "exported": written,
            "output": args.output,
            "embeddings": model.as_ref().map(|id| json!({"model": id, "with_vector": with_vector})),
        }),
        &text,
        args.output.is_none(),
    );
    Ok(())
}

/// Where the lines go.
enum Sink {
    File(std::io::BufWriter<std::fs::File>),
    Stdout(std::io::BufWriter<std::io::Stdout>),
}

impl Sink {
    /// Flushes; the file back, to be synced and renamed (`None` for stdout).
    fn finish(self) -> std::io::Result<Option<std::fs::File>> {
        match self {
            Self::File(w) => w.into_inner().map(Some).map_err(|e| e.into_error()),
            Self::Stdout(mut w) => w.flush().map(|()| None),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::File(w) => w.write(buf),
            Self::Stdout(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Self::File(w) => w.write_all(buf),
            Self::Stdout(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::File(w) => w.flush(),
            Self::Stdout(w) => w.flush(),
        }
    }
}
