//! `mcp-memory import`: JSON Lines (or the Python service's export document) into a store,
//! batched, duplicates skipped, bad lines reported by number, resumable.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use memory_core::{HashCheck, Memory, MemoryRecord, RecordError, ValidationError};
use memory_storage::{MemoryStorage, StoreOutcome};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    Interrupt, LISTED_PROBLEMS, LOG_EVERY_BATCHES, ProgressMode, memories, same_model, sibling,
    store_identity, write_atomic,
};
use crate::config::Config;
use crate::input::{Line, MAX_IMPORT_LINE_BYTES, read_line_bounded};
use crate::output::Output;

/// `mcp-memory import` options.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The JSON Lines file (as `export` writes it, or the Python service's export
    /// document); `-` reads standard input (not resumable).
    #[arg(value_name = "FILE")]
    input: PathBuf,
    /// Memories stored per batch (1..=1000); progress is recorded after each batch.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    batch_size: u64,
    /// Stop at the first bad line instead of reporting it and going on.
    #[arg(long)]
    strict: bool,
    /// Ignore a checkpoint of an earlier interrupted run and start from the first line.
    #[arg(long)]
    restart: bool,
    /// Store a memory whose `content_hash` is not the hash of its content (an export of an
    /// older version that hashed metadata too, say) under the hash of its content, instead
    /// of reporting the line as bad.
    #[arg(long)]
    rehash: bool,
}

/// Largest Python-service export document read (it is parsed whole); JSON Lines have no
/// such limit, only one per line.
const MAX_DOCUMENT_BYTES: u64 = 1 << 30;

/// Bytes of the input hashed to recognise it again when resuming.
const HEAD_BYTES: u64 = 64 * 1024;

/// The progress file's format version.
const CHECKPOINT_VERSION: u32 = 1;

/// A problem with one input line (or one memory of an upstream document).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Problem {
    /// 1-based line (or memory) number.
    line: u64,
    /// What is wrong, naming the field.
    error: String,
}

/// Running figures, kept in the checkpoint so a resumed run reports the whole import.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Counts {
    imported: u64,
    duplicates: u64,
    invalid: u64,
    problems: Vec<Problem>,
    vectors_reused: u64,
    vectors_dropped: u64,
    embedded: u64,
    /// Model ids of dropped vectors (`""` for vectors without a model id).
    dropped_models: BTreeSet<String>,
}

impl Counts {
    fn invalid(&mut self, line: u64, error: String) {
        self.invalid += 1;
        if self.problems.len() < LISTED_PROBLEMS {
            self.problems.push(Problem { line, error });
        }
    }
}

/// `<input>.import-progress`: how far an import got. Written atomically after each batch
/// the store committed; removed when the import completes.
#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    version: u32,
    input: PathBuf,
    input_size: u64,
    input_head_sha256: String,
    database: String,
    /// `jsonl`: `offset` is a byte offset; `document`: the index of the next memory.
    format: Format,
    offset: u64,
    /// Lines (memories) read so far.
    line: u64,
    counts: Counts,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Format {
    /// One JSON object per line.
    Jsonl,
    /// The Python service's `{"export_metadata": ..., "memories": [...]}` document.
    Document,
}

impl Format {
    fn unit(self) -> &'static str {
        match self {
            Self::Jsonl => "line",
            Self::Document => "memory",
        }
    }
}

/// Where the items come from.
enum Source {
    Lines {
        reader: Box<dyn BufRead + Send>,
        offset: u64,
        line: u64,
        first: Option<Vec<u8>>,
    },
    Document {
        items: std::vec::IntoIter<Value>,
        index: u64,
    },
}

/// One raw item and its number.
enum Raw {
    Text(Vec<u8>),
    Value(Value),
}

impl Source {
    /// The next item with its 1-based number; `None` at the end. Blank lines are skipped.
    fn next(&mut self) -> Result<Option<(u64, Raw)>> {
        match self {
            Self::Lines {
                reader,
                offset,
                line,
                first,
            } => loop {
                let buf = match first.take() {
                    Some(b) => b,
                    None => {
                        let mut buf = Vec::new();
                        match read_line_bounded(reader.as_mut(), &mut buf, MAX_IMPORT_LINE_BYTES)
                            .with_context(|| format!("reading line {}", *line + 1))?
                        {
                            Line::End => return Ok(None),
                            Line::TooLong => return Err(too_long(*line + 1)),
                            Line::Read(_) => buf,
                        }
                    }
                };
                *offset += buf.len() as u64;
                *line += 1;
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some((*line, Raw::Text(buf))));
            },
            Self::Document { items, index } => Ok(items.next().map(|v| {
                *index += 1;
                (*index, Raw::Value(v))
            })),
        }
    }

    /// The position to resume from and the number of items read.
    fn position(&self) -> (u64, u64) {
        match self {
            Self::Lines { offset, line, .. } => (*offset, *line),
            Self::Document { index, .. } => (*index, *index),
        }
    }
}

/// The store's embedding model, to decide about carried vectors.
struct StoreModel {
    id: String,
    dims: usize,
    /// `--rehash`: a supplied hash that is not the content's is replaced, not refused.
    rehash: bool,
}

/// What happened to a carried vector.
#[derive(Debug, PartialEq)]
enum Vector {
    None,
    Reused,
    Dropped(String),
}

/// Validates one item (memory-core's [`MemoryRecord`], read field by field) and builds its
/// memory: the carried vector is kept when its model is the store's, and the id is the hash
/// of the content (`--rehash` or not deciding what a supplied hash that disagrees means).
fn memory_of(value: Value, store: &StoreModel) -> Result<(Memory, Vector), RecordError> {
    let mut record = MemoryRecord::from_value(value)?;
    let (embedding, fate) = match (record.embedding.take(), record.embedding_model.take()) {
        (None, _) => (None, Vector::None),
        (Some(v), Some(id)) if same_model(&id, v.len(), &store.id, store.dims) => {
            (Some(v), Vector::Reused)
        }
        (Some(v), Some(id)) if same_model(&id, store.dims, &store.id, store.dims) => {
            return Err(RecordError::field(
                "embedding",
                format!(
                    "has {} values but {} vectors have {} dimensions",
                    v.len(),
                    store.id,
                    store.dims
                ),
            ));
        }
        (Some(_), Some(id)) => (None, Vector::Dropped(id)),
        (Some(_), None) => (None, Vector::Dropped(String::new())),
    };
    record.embedding = embedding;
    let check = if store.rehash {
        HashCheck::Rehash
    } else {
        HashCheck::Verify
    };
    let memory = record.into_memory(check).map_err(|e| match e {
        // An export of another tool or an older version may hash differently.
        ValidationError::HashMismatch { supplied, computed } => RecordError::field(
            "content_hash",
            format!(
                "{supplied} is not the hash of the content ({computed}); an export of another \
                 tool or an older version may hash differently: add --rehash to store such \
                 memories under the hash of their content"
            ),
        ),
        other => RecordError::field(other.field(), other.to_string()),
    })?;
    Ok((memory, fate))
}

/// Parses a raw item.
fn parse(raw: Raw, store: &StoreModel) -> Result<(Memory, Vector), RecordError> {
    let value = match raw {
        Raw::Value(v) => v,
        Raw::Text(bytes) => {
            let text = std::str::from_utf8(&bytes).map_err(|e| {
                RecordError::whole(format!(
                    "not valid UTF-8 (first bad byte at column {})",
                    e.valid_up_to() + 1
                ))
            })?;
            serde_json::from_str(text.trim())
                .map_err(|e| RecordError::whole(format!("invalid JSON: {e}")))?
        }
    };
    memory_of(value, store)
}

/// The identity of an input file: its size and the SHA-256 of its first 64 KiB.
fn input_identity(path: &Path) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = f
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let mut head = Vec::new();
    (&mut f)
        .take(HEAD_BYTES)
        .read_to_end(&mut head)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok((size, hex::encode(Sha256::digest(&head))))
}

/// Decides the format from the first non-blank line: a line that is a whole JSON object
/// without `export_metadata` means JSON Lines; anything else that starts with `{` is tried
/// as one document.
fn detect(first_line: &[u8]) -> Format {
    let text = String::from_utf8_lossy(first_line);
    let t = text.trim();
    if !t.starts_with('{') {
        return Format::Jsonl;
    }
    match serde_json::from_str::<Value>(t) {
        Ok(Value::Object(o))
            if o.contains_key("export_metadata")
                || (o.contains_key("memories") && !o.contains_key("content")) =>
        {
            Format::Document
        }
        Ok(_) => Format::Jsonl,
        Err(_) => Format::Document,
    }
}

/// The Python service's export document. Its memories stay JSON values here and are read
/// one by one as [`MemoryRecord`]s, so one bad memory is reported by number, not the file.
#[derive(Deserialize)]
struct Document {
    memories: Vec<Value>,
}

/// Reads the next line, at most [`MAX_IMPORT_LINE_BYTES`] long; `line` is its number.
fn first_line(reader: &mut dyn BufRead, line: u64) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    match read_line_bounded(reader, &mut buf, MAX_IMPORT_LINE_BYTES)? {
        Line::TooLong => Err(too_long(line)),
        Line::End | Line::Read(_) => Ok(buf),
    }
}

/// A line too long to be one memory stops the import: where the next record starts is
/// unknown (the input may have no line breaks at all, like `/dev/zero`).
fn too_long(line: u64) -> anyhow::Error {
    anyhow::anyhow!(
        "line {line} is longer than {MAX_IMPORT_LINE_BYTES} bytes (64 MiB), more than one \
         memory can take (its content is at most 16 MiB); the input is not JSON Lines with one \
         memory per line. Memories before it were imported; fix or remove the line and run the \
         same command again to resume"
    )
}

/// Opens the source; `resume` is the checkpoint's (format, offset, line).
fn open_source(input: &Path, resume: Option<(Format, u64, u64)>) -> Result<(Source, Format)> {
    let stdin = input == Path::new("-");
    let mut reader: Box<dyn BufRead + Send> = if stdin {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?,
        ))
    };
    let mut head =
        first_line(reader.as_mut(), 1).with_context(|| format!("reading {}", input.display()))?;
    let mut skipped = Vec::new();
    let mut blank = 0;
    while !head.is_empty() && head.iter().all(u8::is_ascii_whitespace) {
        skipped.extend_from_slice(&head);
        blank += 1;
        head = first_line(reader.as_mut(), blank + 1)?;
    }
    let format = detect(&head);
    if format == Format::Document {
        let mut all = skipped;
        all.extend_from_slice(&head);
        reader
            .take(MAX_DOCUMENT_BYTES + 1)
            .read_to_end(&mut all)
            .with_context(|| format!("reading {}", input.display()))?;
        if all.len() as u64 > MAX_DOCUMENT_BYTES {
            anyhow::bail!(
                "{} looks like one JSON document (the Python service's export) but is larger \
                 than {MAX_DOCUMENT_BYTES} bytes (1 GiB), the most read whole; export it as \
                 JSON Lines (one memory per line, as `mcp-memory export` writes), which has no \
                 size limit",
                input.display()
            );
        }
        match serde_json::from_slice::<Document>(&all) {
            Ok(doc) => {
                let skip = resume.map_or(0, |(_, offset, _)| offset);
                let mut items = doc.memories.into_iter();
                for _ in 0..skip {
                    items.next();
                }
                return Ok((Source::Document { items, index: skip }, format));
            }
            Err(e) if e.is_data() => {
                anyhow::bail!(
                    "{} looks like the Python service's export document but {e}; expected \
                     {{\"export_metadata\": {{...}}, \"memories\": [...]}}",
                    input.display()
                )
            }
            // Not one JSON document: read it as JSON Lines (and report its bad lines).
            Err(_) => {
                let reader: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(all));
                return lines_from(reader, input, resume, stdin);
            }
        }
    }
    if let Some((_, offset, line)) = resume
        && !stdin
    {
        // Reopen the file at the checkpoint's offset.
        let mut file =
            std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
        file.seek(SeekFrom::Start(offset))
            .with_context(|| format!("seeking to byte {offset} of {}", input.display()))?;
        return Ok((
            Source::Lines {
                reader: Box::new(BufReader::with_capacity(1 << 20, file)),
                offset,
                line,
                first: None,
            },
            Format::Jsonl,
        ));
    }
    // Blank lines before the first one were read already: start counting after them.
    Ok((
        Source::Lines {
            reader,
            offset: skipped.len() as u64,
            line: skipped.iter().filter(|b| **b == b'\n').count() as u64,
            first: (!head.is_empty()).then_some(head),
        },
        Format::Jsonl,
    ))
}

fn lines_from(
    mut reader: Box<dyn BufRead + Send>,
    input: &Path,
    resume: Option<(Format, u64, u64)>,
    stdin: bool,
) -> Result<(Source, Format)> {
    let (offset, line) = match resume {
        Some((_, offset, line)) if !stdin => (offset, line),
        _ => (0, 0),
    };
    if offset > 0 {
        // Only files are resumed; a Cursor or BufReader<File> both seek.
        let mut skip = (&mut reader).take(offset);
        std::io::copy(&mut skip, &mut std::io::sink())
            .with_context(|| format!("seeking to byte {offset} of {}", input.display()))?;
    }
    Ok((
        Source::Lines {
            reader,
            offset,
            line,
            first: None,
        },
        Format::Jsonl,
    ))
}

/// Counts the lines of `input` for the progress bar (files only).
fn count_lines(input: &Path, format: Format) -> Option<u64> {
    if input == Path::new("-") || format == Format::Document {
        return None;
    }
    let mut f = BufReader::with_capacity(1 << 20, std::fs::File::open(input).ok()?);
    let mut n = 0u64;
    let mut last = b'\n';
    loop {
        let buf = f.fill_buf().ok()?;
        if buf.is_empty() {
            break;
        }
        n += buf.iter().filter(|b| **b == b'\n').count() as u64;
        last = buf[buf.len() - 1];
        let len = buf.len();
        f.consume(len);
    }
    Some(n + u64::from(last != b'\n'))
}

/// Stores memories from JSON Lines.
pub async fn import(
    store: &dyn MemoryStorage,
    config: &Config,
    args: ImportArgs,
    out: &Output,
) -> Result<()> {
    let stdin = args.input == Path::new("-");
    let stats = store
        .get_stats()
        .await
        .context("reading the store's embedding model")?;
    let model = StoreModel {
        rehash: args.rehash,
        id: stats.embedding_model,
        dims: stats.embedding_dimensions,
    };
    let database = store_identity(config, config.backend)?;
    let progress_path = (!stdin).then(|| sibling(&args.input, ".import-progress"));
    if let Some(path) = &progress_path {
        // Fail before storing anything if progress could not be recorded.
        let probe = sibling(path, ".probe");
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .with_context(|| {
                format!(
                    "import records its progress in {} so an interrupted import can resume, but \
                     that directory is not writable; copy the input somewhere writable, or pipe \
                     it in (`mcp-memory import - < FILE`, not resumable)",
                    path.display()
                )
            })?;
    }
    let identity = if stdin {
        None
    } else {
        Some(input_identity(&args.input)?)
    };

    // A checkpoint of an earlier run of this same import?
    let mut resumed: Option<Checkpoint> = None;
    if let (Some(path), Some((size, head))) = (&progress_path, &identity)
        && path.exists()
        && !args.restart
    {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let cp: Checkpoint = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a checkpoint this version understands; delete it or add --restart",
                path.display()
            )
        })?;
        if cp.version != CHECKPOINT_VERSION {
            anyhow::bail!(
                "{} was written by another version; add --restart to import from the first line",
                path.display()
            );
        }
        if cp.input_size > *size
            || cp.input_head_sha256 != *head
            || (cp.input_size != *size && cp.format == Format::Document)
        {
            anyhow::bail!(
                "{} changed since the interrupted import recorded in {} (size or first 64 KiB differ); \
                 add --restart to import it from the first line (memories already stored are skipped as duplicates)",
                args.input.display(),
                path.display()
            );
        }
        if cp.database != database {
            anyhow::bail!(
                "{} records an import into {}, not {database}; import into that store to resume, \
                 or add --restart to import into this one from the first line",
                path.display(),
                cp.database
            );
        }
        resumed = Some(cp);
    }

    let resume_at = resumed.as_ref().map(|cp| (cp.format, cp.offset, cp.line));
    let (mut source, format) = open_source(&args.input, resume_at)?;
    let unit = format.unit();
    let mut counts = resumed
        .as_ref()
        .map(|cp| cp.counts.clone())
        .unwrap_or_default();
    if let Some(cp) = &resumed {
        eprintln!(
            "resuming at {unit} {} of {} ({} imported before; --restart starts over)",
            cp.line + 1,
            args.input.display(),
            cp.counts.imported
        );
    }
    let input_name = if stdin {
        "standard input".to_owned()
    } else {
        args.input.display().to_string()
    };
    let how_to_resume = if stdin {
        "standard input cannot be resumed: run the import again (memories already stored are skipped as duplicates)".to_owned()
    } else {
        format!(
            "run the same command again to resume (progress is kept in {})",
            progress_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )
    };
    let interrupt = Interrupt::install(how_to_resume.clone());
    let mode = ProgressMode::detect();
    let bar = mode.bar(
        if mode == ProgressMode::Bar {
            count_lines(&args.input, format)
        } else {
            None
        },
        &format!("{unit}s"),
    );
    bar.set_position(source.position().1);

    let batch_size = args.batch_size as usize;
    let mut batch: Vec<Memory> = Vec::with_capacity(batch_size);
    let mut batch_lines: Vec<u64> = Vec::with_capacity(batch_size);
    let mut batches = 0u64;
    let mut interrupted = false;
    let mut ended = false;
    while !ended {
        match source.next()? {
            Some((line, raw)) => match parse(raw, &model) {
                Ok((memory, fate)) => {
                    match fate {
                        Vector::None => counts.embedded += 1,
                        Vector::Reused => counts.vectors_reused += 1,
                        Vector::Dropped(id) => {
                            counts.vectors_dropped += 1;
                            counts.dropped_models.insert(id);
                        }
                    }
                    batch.push(memory);
                    batch_lines.push(line);
                }
                Err(e) => {
                    if args.strict {
                        bar.abandon();
                        anyhow::bail!(
                            "{input_name} {unit} {line}: {e}; --strict stops at the first bad {unit} \
                             (the {} before it in this batch were not stored); fix it, or drop --strict to skip bad {unit}s",
                            batch.len()
                        );
                    }
                    counts.invalid(line, e.to_string());
                }
            },
            None => ended = true,
        }
        let full = batch.len() >= batch_size;
        let last_batch = ended && !batch.is_empty();
        if !full && !last_batch {
            continue;
        }
        let (first, last) = (batch_lines[0], batch_lines[batch_lines.len() - 1]);
        let results = store
            .store_batch(std::mem::take(&mut batch))
            .await
            .with_context(|| {
                format!(
                    "storing {unit}s {first}-{last} of {input_name}; nothing from {unit} {first} on is recorded as done: {how_to_resume}"
                )
            })?;
        // A backend that was unavailable for some items fails the whole batch before the
        // checkpoint moves, so a re-run sends it again; only refusals of a memory itself
        // are reported as bad lines.
        if let Some(e) = results
            .iter()
            .find_map(|r| r.as_ref().err().filter(|e| e.is_transient()))
        {
            bar.abandon();
            anyhow::bail!(
                "storing {unit}s {first}-{last} of {input_name}: {e}; nothing from {unit} {first} on is recorded as done: {how_to_resume}"
            );
        }
        for (result, line) in results.into_iter().zip(batch_lines.drain(..)) {
            match result {
                Ok(StoreOutcome::Duplicate) => counts.duplicates += 1,
                Ok(StoreOutcome::Stored | StoreOutcome::Revived) => counts.imported += 1,
                Err(e) => {
                    if args.strict {
                        bar.abandon();
                        anyhow::bail!(
                            "{input_name} {unit} {line}: the store refused it: {e} (--strict)"
                        );
                    }
                    counts.invalid(line, format!("the store refused it: {e}"));
                }
            }
        }
        batches += 1;
        let (offset, line) = source.position();
        if let (Some(path), Some((size, head))) = (&progress_path, &identity)
            && !ended
        {
            let cp = Checkpoint {
                version: CHECKPOINT_VERSION,
                input: std::fs::canonicalize(&args.input).unwrap_or_else(|_| args.input.clone()),
                input_size: *size,
                input_head_sha256: head.clone(),
                database: database.clone(),
                format,
                offset,
                line,
                counts: counts.clone(),
            };
            write_atomic(path, &serde_json::to_vec_pretty(&cp)?).with_context(|| {
                format!(
                    "recording progress in {} (the directory of the input must be writable)",
                    path.display()
                )
            })?;
        }
        bar.set_position(line);
        if mode == ProgressMode::Log && batches.is_multiple_of(LOG_EVERY_BATCHES) {
            tracing::info!("import: {line} {unit}s read, {} imported", counts.imported);
        }
        if interrupt.requested() && !ended {
            interrupted = true;
            break;
        }
    }
    super::finish_bar(&bar);
    let (_, lines) = source.position();
    if interrupted {
        anyhow::bail!(
            "interrupted after {unit} {lines} of {input_name} ({} imported, {} duplicates skipped, {} invalid so far); {how_to_resume}",
            counts.imported,
            counts.duplicates,
            counts.invalid
        );
    }
    if let Some(path) = &progress_path
        && path.exists()
    {
        std::fs::remove_file(path)
            .with_context(|| format!("removing {} after the import completed", path.display()))?;
    }
    summarize(
        &counts,
        &input_name,
        unit,
        lines,
        &model,
        resumed.map(|cp| cp.line + 1),
        out,
    );
    if counts.invalid > 0 {
        // Everything valid is stored; the status tells scripts that some input was not.
        // The first problem is repeated on stderr, where a person piping stdout away looks.
        let first = counts
            .problems
            .first()
            .map(|p| format!("; the first, {unit} {}: {}", p.line, p.error))
            .unwrap_or_default();
        return Err(crate::output::AlreadyReported(format!(
            "{} invalid {unit}(s) skipped (listed above{first}); fix them and import again \
             (what is already stored is skipped as duplicates)",
            counts.invalid
        ))
        .into());
    }
    Ok(())
}

fn summarize(
    counts: &Counts,
    input: &str,
    unit: &str,
    lines: u64,
    model: &StoreModel,
    resumed_at: Option<u64>,
    out: &Output,
) {
    let dropped_note = (counts.vectors_dropped > 0).then(|| {
        let ids: Vec<String> = counts
            .dropped_models
            .iter()
            .map(|id| {
                if id.is_empty() {
                    "no model id".to_owned()
                } else {
                    id.clone()
                }
            })
            .collect();
        format!(
            "{} carried vectors dropped and re-embedded: made by {}, not the store's {} ({} dims)",
            counts.vectors_dropped,
            ids.join(", "),
            model.id,
            model.dims
        )
    });
    let mut text = format!(
        "imported {} from {input} ({lines} {unit}s read{})",
        memories(counts.imported),
        resumed_at
            .map(|l| format!(", resumed at {unit} {l}"))
            .unwrap_or_default()
    );
    text.push_str(&format!("\n  duplicates skipped  {}", counts.duplicates));
    text.push_str(&format!("\n  invalid {unit}s  {:>6}", counts.invalid));
    for p in &counts.problems {
        text.push_str(&format!("\n    {unit} {}: {}", p.line, p.error));
    }
    if counts.invalid > counts.problems.len() as u64 {
        text.push_str(&format!(
            "\n    ... and {} more",
            counts.invalid - counts.problems.len() as u64
        ));
    }
    text.push_str(&format!(
        "\n  vectors             {} carried, {} embedded",
        counts.vectors_reused,
        counts.embedded + counts.vectors_dropped
    ));
    if let Some(note) = &dropped_note {
        text.push_str(&format!("\n  note: {note}"));
    }
    out.transfer_summary(
        json!({
            "input": input,
            "lines_read": lines,
            "imported": counts.imported,
            "duplicates_skipped": counts.duplicates,
            "invalid": counts.invalid,
            "invalid_lines": counts.problems,
            "resumed_at_line": resumed_at,
            "vectors": {
                "carried": counts.vectors_reused,
                "dropped": counts.vectors_dropped,
                "embedded": counts.embedded + counts.vectors_dropped,
                "note": dropped_note,
            },
            "store_model": {"id": model.id, "dimensions": model.dims},
        }),
        &text,
        false,
    );
}

#[cfg(test)]
mod tests;
