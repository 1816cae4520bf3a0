//! `cargo xtask bench`: runs the criterion suites and the start-up and resident-memory
//! measurements, then writes `docs/BENCHMARKS.md` from what they measured.
//!
//! Every figure in the document is read from this run's output: criterion's
//! `<target>/criterion/<group>/<bench>/new/{benchmark,estimates,sample}.json` (only files
//! written after the suite started, so a stale result never appears), the request counts
//! the Cloudflare bench writes to `$MCP_MEMORY_BENCH_OUT/cloudflare_requests.json`, the
//! hybrid backend's ratios and sync lag (`hybrid_ratios.json`, `hybrid_sync.json` there),
//! and the JSON line of `examples/mcp_startup`. Nothing is hard-coded but the choice of which
//! figures the summary shows.
//!
//! xtask has no JSON dependency (it must build fast on a cold machine), hence the small
//! parser at the end of this file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;

/// Where the Cloudflare bench writes its request counts (read by this task).
const OUT_ENV: &str = "MCP_MEMORY_BENCH_OUT";

/// Options of `cargo xtask bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Shorter measurements (criterion `--warm-up-time 1 --measurement-time 3
    /// --sample-size 10`): minutes instead of tens of minutes, wider confidence intervals.
    #[arg(long)]
    quick: bool,
    /// Pass criterion's own `--quick` (stops at 5% noise; only 2 samples, so no spread).
    #[arg(long)]
    criterion_quick: bool,
    /// Only benchmarks whose id matches this regular expression (criterion's filter).
    #[arg(long)]
    filter: Option<String>,
    /// Only these suites (repeatable): sqlite_backend, embedding, import, cloudflare_backend,
    /// hybrid_backend, hybrid_sync, vector_search, transport, emulator. Default: all.
    #[arg(long = "suite", value_name = "SUITE")]
    suites: Vec<String>,
    /// Skip the start-up and resident-memory measurements.
    #[arg(long)]
    no_startup: bool,
    /// Start-up runs (spawn → `initialize` answered) the median is taken over.
    #[arg(long, default_value_t = 20)]
    startup_runs: usize,
    /// Memories in the store the resident-memory measurement opens and searches.
    #[arg(long, default_value_t = 10_000)]
    rss_store: usize,
    /// A remark printed in the document's notes (e.g. that the machine was busy).
    #[arg(long)]
    note: Option<String>,
    /// The document to write.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    out: PathBuf,
    /// Extra arguments for the criterion binaries (after `--`).
    #[arg(last = true)]
    criterion_args: Vec<String>,
}

/// One criterion suite: a bench target and the groups it writes.
struct Suite {
    name: &'static str,
    /// `cargo bench` arguments selecting the target.
    cargo: &'static [&'static str],
    /// Prefixes of the criterion group ids this suite writes.
    groups: &'static [&'static str],
    /// What the suite measures, for the document.
    about: &'static str,
}

const SUITES: &[Suite] = &[
    Suite {
        name: "sqlite_backend",
        cargo: &["--bench", "sqlite_backend"],
        groups: &["sqlite_"],
        about: "Embedded backend (SQLite + in-process vector search + local all-MiniLM-L6-v2) at \
                1k, 10k and 100k memories. `with_embedding`: the model embeds every new text or \
                query; `without_embedding`: the memory carries its vector / the query vector \
                comes from the LRU cache. Fill memories carry random unit vectors. \
                `search_by_tag/5_percent` returns n/20 memories; `recall/*` has a time \
                expression (\"last week\", ~8% of the store). See `benches/sqlite_backend.rs`.",
    },
    Suite {
        name: "embedding",
        cargo: &["--bench", "embedding"],
        groups: &["embedding"],
        about: "Local all-MiniLM-L6-v2 on this CPU, no cache, on each engine side by side: \
                candle (pure Rust) and ONNX Runtime (the same encoder built from the same \
                weights). Ids are `embedding/<case>/<engine>`: one 8-word query, one 64-word \
                text, one text at the 256-token window, batches of 32 short and 32 long texts \
                (one call each), and loading the model. Throughput in texts/s. See \
                `benches/embedding.rs`.",
    },
    Suite {
        name: "import",
        cargo: &["--bench", "import"],
        groups: &[],
        about: "A 10,000-memory import with no carried vectors (batches of 100 through \
                `store_batch` of the embedded default, as `mcp-memory import` does), on each \
                embedding engine: candle (before) and ONNX Runtime (after). Not a criterion \
                bench: one timed run per engine. See `benches/import.rs`.",
    },
    Suite {
        name: "cloudflare_backend",
        cargo: &["-p", "memory-cloudflare", "--bench", "cloudflare_backend"],
        groups: &["cloudflare_"],
        about: "CloudflareStorage on the local emulator with 0 ms and 50 ms latency injected on \
                every API call. Embeddings come from the emulator's Workers AI stand-in (the \
                local model on this CPU). `bulk_import/10000` sends memories carrying their \
                vectors (as `import`/`migrate` do), so it measures D1 batches + Vectorize \
                upserts, not embedding; `bulk_import_embedded/100` has the stand-in embed. \
                See `crates/memory-cloudflare/benches/cloudflare_backend.rs`.",
    },
    Suite {
        name: "hybrid_backend",
        cargo: &["-p", "memory-hybrid", "--bench", "hybrid_backend"],
        groups: &["hybrid_"],
        about: "The cost of local-first: the hybrid backend (local SQLite with its change \
                log, background sync running at the default interval, Cloudflare on the \
                emulator with 50 ms on every request) against the embedded default (plain \
                SQLite), both holding the same 10,000 memories with carried vectors. `store` \
                carries its vector, `retrieve` asks the same question (its vector from the LRU \
                cache of the real all-MiniLM-L6-v2), so backends are compared, not the model. \
                Target: hybrid / embedded ≤ 1.1 for each. See \
                `crates/memory-hybrid/benches/hybrid_backend.rs`.",
    },
    Suite {
        name: "hybrid_sync",
        cargo: &["-p", "memory-hybrid", "--bench", "hybrid_sync_lag"],
        groups: &[],
        about: "Sync lag of the hybrid backend (not a criterion bench: one measurement of a few \
                minutes): two devices syncing in the background at the default interval, 50 ms \
                on every Cloudflare request; device A stores 100 memories at random gaps (mean: \
                the interval), the lag is A's store returning → the memory's vector in device \
                B's store; requests per synced memory from the transport's accounting, both \
                devices' rounds included. See `crates/memory-hybrid/benches/hybrid_sync_lag.rs`.",
    },
    Suite {
        name: "vector_search",
        cargo: &["--bench", "vector_search"],
        groups: &["vector_search"],
        about: "In-process scan vs sqlite-vec `vec0`, top 10 of 384-d unit vectors. See \
                `benches/vector_search.rs`.",
    },
    Suite {
        name: "transport",
        cargo: &["--bench", "transport"],
        groups: &["transport"],
        about: "The Cloudflare HTTP transport stack against a local hyper server. See \
                `benches/transport.rs`.",
    },
    Suite {
        name: "emulator",
        cargo: &["-p", "cloudflare-emulator", "--bench", "emulator"],
        groups: &["emulator_"],
        about: "The emulator's own request handling. See \
                `crates/cloudflare-emulator/benches/emulator.rs`.",
    },
];

/// One criterion result.
struct Figure {
    full_id: String,
    median_ns: f64,
    ci_low_ns: f64,
    ci_high_ns: f64,
    mad_ns: f64,
    samples: usize,
    elements: Option<u64>,
}

impl Figure {
    /// Half the 95% confidence interval of the median, relative to it.
    fn relative_spread(&self) -> f64 {
        let half = (self.median_ns - self.ci_low_ns).max(self.ci_high_ns - self.median_ns);
        if self.median_ns > 0.0 {
            half / self.median_ns
        } else {
            0.0
        }
    }

    /// Elements per second at the median, when the bench declared a throughput.
    fn per_second(&self) -> Option<f64> {
        self.elements
            .filter(|_| self.median_ns > 0.0)
            .map(|n| n as f64 / (self.median_ns / 1e9))
    }
}

/// The start-up and memory measurement of `examples/mcp_startup`.
struct Startup {
    command: String,
    /// On the default engine (ONNX Runtime when installed).
    json: Json,
    /// The same on candle (`MCP_MEMORY_EMBED_ENGINE=candle`), if it ran.
    candle: Option<Json>,
}

/// Everything the document is written from.
struct Report {
    machine: Vec<(String, String)>,
    criterion_args: Vec<String>,
    suites: Vec<(&'static Suite, Vec<Figure>, String)>,
    requests: Option<Json>,
    /// `hybrid_ratios.json` of the hybrid bench.
    hybrid_ratios: Option<Json>,
    /// `import.json` of the import measurement.
    import: Option<Json>,
    /// `hybrid_sync.json` of the sync lag measurement.
    hybrid_sync: Option<Json>,
    startup: Option<Startup>,
    note: Option<String>,
    load_before: String,
    load_after: String,
    elapsed: Duration,
    failures: Vec<String>,
}

/// Runs the suites and measurements and writes the document.
pub fn run(args: &BenchArgs) -> Result<()> {
    let began = Instant::now();
    let target = target_dir()?;
    let criterion_dir = std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("criterion"));
    let extra_out = target.join("bench-data").join("out");
    std::fs::create_dir_all(&extra_out)
        .with_context(|| format!("creating {}", extra_out.display()))?;

    let selected: Vec<&'static Suite> = if args.suites.is_empty() {
        SUITES.iter().collect()
    } else {
        let mut v = Vec::new();
        for name in &args.suites {
            match SUITES.iter().find(|s| s.name == name) {
                Some(s) => v.push(s),
                None => bail!(
                    "unknown suite {name:?}; choose from: {}",
                    SUITES.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                ),
            }
        }
        v
    };

    let mut criterion_args: Vec<String> = vec!["--noplot".into()];
    if args.criterion_quick {
        criterion_args.push("--quick".into());
    } else if args.quick {
        criterion_args.extend(
            [
                "--warm-up-time",
                "1",
                "--measurement-time",
                "3",
                "--sample-size",
                "10",
            ]
            .map(String::from),
        );
    }
    criterion_args.extend(args.criterion_args.iter().cloned());

    let machine = machine();
    let load_before = load_average();
    let mut suites = Vec::new();
    let mut failures = Vec::new();
    let mut requests = None;
    let mut hybrid_ratios = None;
    let mut hybrid_sync = None;
    let mut import = None;
    for suite in selected {
        let started = SystemTime::now();
        let mut cmd = crate::cargo();
        cmd.arg("bench")
            .args(suite.cargo)
            .arg("--")
            .args(&criterion_args)
            .env(OUT_ENV, &extra_out);
        if let Some(filter) = &args.filter {
            cmd.arg(filter);
        }
        eprintln!("==> suite {}: {cmd:?}", suite.name);
        if let Err(e) = crate::run(&mut cmd) {
            // Keep going: the document lists the failed suite and whatever else ran.
            eprintln!("==> suite {} failed: {e:#}", suite.name);
            failures.push(format!("suite `{}`: {e:#}", suite.name));
        }
        let figures = collect(&criterion_dir, suite.groups, started)?;
        eprintln!("==> suite {}: {} results", suite.name, figures.len());
        if suite.name == "cloudflare_backend" {
            let path = extra_out.join("cloudflare_requests.json");
            if modified_since(&path, started) {
                requests = Some(read_json(&path)?);
            }
        }
        for (name, file, slot) in [
            ("hybrid_backend", "hybrid_ratios.json", &mut hybrid_ratios),
            ("hybrid_sync", "hybrid_sync.json", &mut hybrid_sync),
            ("import", "import.json", &mut import),
        ] {
            let path = extra_out.join(file);
            if suite.name == name && modified_since(&path, started) {
                *slot = Some(read_json(&path)?);
            }
        }
        let command = format!(
            "cargo bench {} -- {}",
            suite.cargo.join(" "),
            criterion_args.join(" ")
        );
        suites.push((suite, figures, command));
    }

    let startup = if args.no_startup {
        None
    } else {
        match startup(&target, args.startup_runs, args.rss_store) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("==> start-up measurement failed: {e:#}");
                failures.push(format!("start-up and memory measurement: {e:#}"));
                None
            }
        }
    };

    let report = Report {
        machine,
        criterion_args,
        suites,
        requests,
        hybrid_ratios,
        hybrid_sync,
        import,
        startup,
        note: args.note.clone(),
        load_before,
        load_after: load_average(),
        elapsed: began.elapsed(),
        failures,
    };
    let text = render(&report);
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, &text).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "==> wrote {} ({:.0} s)",
        args.out.display(),
        report.elapsed.as_secs_f64()
    );
    println!("{}", summary_table(&report));
    if !report.failures.is_empty() {
        bail!(
            "{} part(s) failed (listed in {}): {}",
            report.failures.len(),
            args.out.display(),
            report.failures.join("; ")
        );
    }
    Ok(())
}

/// The cargo target directory (`cargo metadata`), which may be outside the repository.
fn target_dir() -> Result<PathBuf> {
    let out = crate::cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let json = Json::parse(&String::from_utf8_lossy(&out.stdout))?;
    json.get("target_directory")
        .and_then(Json::as_str)
        .map(PathBuf::from)
        .context("cargo metadata printed no target_directory")
}

fn modified_since(path: &Path, since: SystemTime) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(|t| t >= since)
        .unwrap_or(false)
}

fn read_json(path: &Path) -> Result<Json> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Json::parse(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Every criterion result under `dir` of a group starting with one of `groups`, written
/// since `since`, sorted by id (numbers in ids compared as numbers).
fn collect(dir: &Path, groups: &[&str], since: SystemTime) -> Result<Vec<Figure>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "new") {
                    found.push(path);
                } else if path
                    .file_name()
                    .is_none_or(|n| n != "report" && n != "base")
                {
                    stack.push(path);
                }
            }
        }
    }
    let mut figures = Vec::new();
    for new in found {
        let estimates = new.join("estimates.json");
        if !modified_since(&estimates, since) {
            continue;
        }
        let bench = read_json(&new.join("benchmark.json"))?;
        let Some(full_id) = bench.get("full_id").and_then(Json::as_str) else {
            continue;
        };
        let group = bench.get("group_id").and_then(Json::as_str).unwrap_or("");
        if !groups.iter().any(|g| group.starts_with(g)) {
            continue;
        }
        let est = read_json(&estimates)?;
        let num = |path: &[&str]| est.path(path).and_then(Json::as_f64).unwrap_or(f64::NAN);
        let samples = read_json(&new.join("sample.json"))
            .ok()
            .and_then(|s| s.get("iters").and_then(Json::as_array).map(<[Json]>::len))
            .unwrap_or(0);
        let elements = bench
            .get("throughput")
            .and_then(|t| t.get("Elements").or_else(|| t.get("Bytes")))
            .and_then(Json::as_f64)
            .map(|n| n as u64);
        figures.push(Figure {
            full_id: full_id.to_owned(),
            median_ns: num(&["median", "point_estimate"]),
            ci_low_ns: num(&["median", "confidence_interval", "lower_bound"]),
            ci_high_ns: num(&["median", "confidence_interval", "upper_bound"]),
            mad_ns: num(&["median_abs_dev", "point_estimate"]),
            samples,
            elements,
        });
    }
    figures.sort_by_key(|f| natural_key(&f.full_id));
    Ok(figures)
}

/// A sort key comparing digit runs as numbers (`sqlite_1000` < `sqlite_10000`).
fn natural_key(s: &str) -> Vec<(u8, u64, String)> {
    let mut key = Vec::new();
    let mut digits = String::new();
    let mut text = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !text.is_empty() {
                key.push((1, 0, std::mem::take(&mut text)));
            }
            digits.push(c);
        } else {
            if !digits.is_empty() {
                key.push((0, digits.parse().unwrap_or(u64::MAX), String::new()));
                digits.clear();
            }
            text.push(c);
        }
    }
    if !digits.is_empty() {
        key.push((0, digits.parse().unwrap_or(u64::MAX), String::new()));
    }
    if !text.is_empty() {
        key.push((1, 0, text));
    }
    key
}

/// Builds the server and the start-up example, then runs it.
fn startup(target: &Path, runs: usize, rss_store: usize) -> Result<Startup> {
    crate::step(
        "cargo build --release -p memory-server (binary and mcp_startup)",
        {
            let mut c = crate::cargo();
            c.args([
                "build",
                "--release",
                "-p",
                "memory-server",
                "--bin",
                "mcp-memory",
                "--example",
                "mcp_startup",
            ]);
            c
        },
    )?;
    let release = target.join("release");
    let example = release.join("examples").join("mcp_startup");
    let binary = release.join("mcp-memory");
    // The default engine, then candle (fewer start-up runs: start-up does not load the model).
    let run = |engine: Option<&str>, runs: usize| -> Result<Json> {
        let mut cmd = Command::new(&example);
        cmd.arg(&binary).arg(runs.to_string()).args([
            "--rss",
            &rss_store.to_string(),
            "--first-search",
            &FIRST_SEARCH_RUNS.to_string(),
            "--json",
        ]);
        if let Some(engine) = engine {
            cmd.env("MCP_MEMORY_EMBED_ENGINE", engine);
        }
        eprintln!("==> {cmd:?}");
        let out = cmd
            .output()
            .with_context(|| format!("running {}", example.display()))?;
        if !out.status.success() {
            bail!(
                "{} exited with {}: {}",
                example.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .context("mcp_startup printed no JSON")?;
        Json::parse(line)
    };
    let json = run(None, runs)?;
    let candle = match run(Some("candle"), 3) {
        Ok(j) => Some(j),
        Err(e) => {
            eprintln!("==> the candle start-up measurement failed: {e:#}");
            None
        }
    };
    Ok(Startup {
        command: format!(
            "cargo build --release -p memory-server && cargo run --release -p memory-server \
             --example mcp_startup -- <target>/release/mcp-memory {runs} --rss {rss_store} \
             --first-search {FIRST_SEARCH_RUNS} (and with MCP_MEMORY_EMBED_ENGINE=candle)"
        ),
        json,
        candle,
    })
}

/// Runs of the first-search measurement.
const FIRST_SEARCH_RUNS: usize = 10;

/// Cores, memory, CPU, kernel, toolchain, date and commit.
fn machine() -> Vec<(String, String)> {
    let mut m = Vec::new();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    m.push(("CPU".into(), cpu));
    let cores = std::thread::available_parallelism()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "unknown".into());
    m.push(("cores (available to this process)".into(), cores));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into());
    m.push(("memory (MemTotal)".into(), mem));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("{} {}", std::env::consts::OS, s.trim()))
        .unwrap_or_else(|_| std::env::consts::OS.to_owned());
    m.push(("OS".into(), kernel));
    m.push(("rustc".into(), command_line("rustc", &["--version"])));
    m.push(("date (UTC)".into(), utc_now()));
    let commit = command_line("git", &["rev-parse", "--short=12", "HEAD"]);
    // Read-only: --no-optional-locks keeps status from refreshing the index.
    let dirty = Command::new("git")
        .args([
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=no",
        ])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    m.push((
        "git commit".into(),
        if dirty {
            format!("{commit} (with uncommitted changes)")
        } else {
            commit
        },
    ));
    m
}

pub(crate) fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// Now as `YYYY-MM-DD HH:MM`, UTC (civil-from-days, no date library).
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// A duration in nanoseconds, with a unit that keeps 3 significant digits readable.
fn time(ns: f64) -> String {
    if !ns.is_finite() {
        return "n/a".into();
    }
    let (v, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$} {unit}")
}

fn rate(per_second: f64) -> String {
    if per_second >= 100.0 {
        format!("{per_second:.0}/s")
    } else {
        format!("{per_second:.1}/s")
    }
}

fn mib(kib: f64) -> String {
    format!("{:.0} MiB", kib / 1024.0)
}

/// A criterion filter matching exactly `id`.
fn exact_filter(id: &str) -> String {
    let mut s = String::from("'^");
    for c in id.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            s.push('\\');
        }
        s.push(c);
    }
    s.push_str("$'");
    s
}

impl Report {
    fn figure(&self, id: &str) -> Option<&Figure> {
        self.suites
            .iter()
            .flat_map(|(_, figures, _)| figures)
            .find(|f| f.full_id == id)
    }

    /// Ids of every figure whose id starts with `prefix` and ends with `suffix`.
    fn figures_like(&self, prefix: &str, suffix: &str) -> Vec<&Figure> {
        self.suites
            .iter()
            .flat_map(|(_, figures, _)| figures)
            .filter(|f| f.full_id.starts_with(prefix) && f.full_id.ends_with(suffix))
            .collect()
    }

    /// API calls per iteration of a Cloudflare bench, `total (op n, …)`.
    fn requests_of(&self, id: &str) -> Option<String> {
        let ops = self.requests.as_ref()?.get(id)?.get("operations")?;
        let Json::Obj(ops) = ops else { return None };
        let mut total = 0.0;
        let mut parts = Vec::new();
        for (op, stats) in ops {
            let per = stats
                .get("per_iteration")
                .and_then(Json::as_f64)
                .unwrap_or(0.0);
            total += per;
            parts.push(format!("{op} {}", trim_float(per)));
        }
        Some(format!("{} ({})", trim_float(total), parts.join(", ")))
    }

    /// Mean latency per API call of a Cloudflare bench, `op x ms, …`.
    fn latency_of(&self, id: &str) -> Option<String> {
        let ops = self.requests.as_ref()?.get(id)?.get("operations")?;
        let Json::Obj(ops) = ops else { return None };
        Some(
            ops.iter()
                .map(|(op, s)| {
                    let ms = s
                        .get("mean_latency_ms")
                        .and_then(Json::as_f64)
                        .unwrap_or(f64::NAN);
                    format!("{op} {ms:.1} ms")
                })
                .collect::<Vec<_>>()
                .join(", "),
        )
    }
}

fn trim_float(v: f64) -> String {
    if (v - v.round()).abs() < 0.005 {
        format!("{}", v.round())
    } else {
        format!("{v:.2}")
    }
}

/// Embedded-backend sizes that were measured, ascending.
fn sqlite_sizes(report: &Report) -> Vec<u64> {
    let mut sizes: Vec<u64> = report
        .figures_like("sqlite_", "")
        .iter()
        .filter_map(|f| {
            f.full_id
                .strip_prefix("sqlite_")?
                .split('/')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

fn size_label(n: u64) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// The summary: the figures the issue asks for, one line each.
fn summary_table(report: &Report) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    let cell = |f: &Figure| {
        (
            time(f.median_ns),
            format!("±{:.0}%", f.relative_spread() * 100.0),
        )
    };

    let sizes = sqlite_sizes(report);
    for (op, label) in [
        ("store/with_embedding", "store, with embedding"),
        ("store/without_embedding", "store, carried vector"),
        (
            "retrieve/with_embedding",
            "retrieve (top 5), with embedding",
        ),
        (
            "retrieve/without_embedding",
            "retrieve (top 5), cached query vector",
        ),
        ("search_by_tag/10_matches", "search_by_tag (10 matches)"),
        ("search_by_tag/5_percent", "search_by_tag (5% of the store)"),
        (
            "recall/with_embedding",
            "recall \"… last week\", with embedding",
        ),
        (
            "recall/without_embedding",
            "recall \"… last week\", cached query vector",
        ),
    ] {
        for &n in &sizes {
            if let Some(f) = report.figure(&format!("sqlite_{n}/{op}")) {
                let (median, spread) = cell(f);
                rows.push([
                    format!("Embedded, {} memories: {label}", size_label(n)),
                    median,
                    spread,
                    String::new(),
                ]);
            }
        }
    }
    for f in report.figures_like("embedding/", "") {
        let (median, spread) = cell(f);
        let mut parts = f.full_id.split('/').skip(1);
        let case = parts.next().unwrap_or("").replace('_', " ");
        let engine = parts.next().unwrap_or("");
        rows.push([
            format!("Embedding all-MiniLM-L6-v2 ({engine}), {case}"),
            median,
            spread,
            f.per_second()
                .map(|r| format!("{} texts", rate(r)))
                .unwrap_or_default(),
        ]);
    }
    if let Some(j) = &report.import {
        for engine in ["candle", "onnx"] {
            let n = |k: &str| {
                j.path(&["engines", engine, k])
                    .and_then(Json::as_f64)
                    .unwrap_or(f64::NAN)
            };
            if !n("seconds").is_nan() {
                rows.push([
                    format!(
                        "Import of {} memories, embedded ({engine})",
                        j.path(&["memories"]).and_then(Json::as_f64).unwrap_or(0.0)
                    ),
                    time(n("seconds") * 1e9),
                    "one run".into(),
                    format!("{} memories", rate(n("per_second"))),
                ]);
            }
        }
    }
    if let Some(s) = &report.startup {
        let j = &s.json;
        if let Some(median) = j.path(&["startup_ms", "median"]).and_then(Json::as_f64) {
            let q = |k| {
                j.path(&["startup_ms", k])
                    .and_then(Json::as_f64)
                    .unwrap_or(f64::NAN)
            };
            rows.push([
                "Start-up: spawn → MCP `initialize` answered".into(),
                time(median * 1e6),
                format!("IQR {}–{}", time(q("q1") * 1e6), time(q("q3") * 1e6)),
                format!(
                    "{} runs",
                    j.path(&["startup_ms", "runs"])
                        .and_then(Json::as_f64)
                        .unwrap_or(0.0)
                ),
            ]);
        }
        let n = j
            .path(&["rss", "store_memories"])
            .and_then(Json::as_f64)
            .unwrap_or(0.0);
        for (engine, j) in [("default engine", Some(j)), ("candle", s.candle.as_ref())] {
            let Some(j) = j else { continue };
            for (pause, label) in [("at_once", "at once"), ("after_500_ms", "500 ms after")] {
                let n = |k: &str| {
                    j.path(&["first_search", pause, k])
                        .and_then(Json::as_f64)
                        .unwrap_or(f64::NAN)
                };
                if n("first_search_ms").is_nan() {
                    continue;
                }
                rows.push([
                    format!(
                        "MCP first search after start ({engine}), {label} `tools/list`: \
                         extra over a warm search"
                    ),
                    time(n("first_minus_warm_ms") * 1e6),
                    format!("{} runs", n("runs")),
                    format!(
                        "first {}, warm {}",
                        time(n("first_search_ms") * 1e6),
                        time(n("warm_search_ms") * 1e6)
                    ),
                ]);
            }
            if engine == "candle" {
                let rss = j
                    .path(&["rss", "after_search", "rss_kib"])
                    .and_then(Json::as_f64);
                let hwm = j
                    .path(&["rss", "after_search", "hwm_kib"])
                    .and_then(Json::as_f64);
                if let (Some(rss), Some(hwm)) = (rss, hwm) {
                    rows.push([
                        format!(
                            "Resident memory, {} memories open + one search, candle",
                            size_label(n as u64)
                        ),
                        mib(rss),
                        "one run".into(),
                        format!("peak (VmHWM) {}", mib(hwm)),
                    ]);
                }
            }
        }
        for (key, label) in [
            (
                "idle_after_initialize",
                "Resident memory, idle after `initialize`".to_owned(),
            ),
            (
                "after_search",
                format!(
                    "Resident memory, {} memories open + one search (model loaded)",
                    size_label(n as u64)
                ),
            ),
        ] {
            let rss = j.path(&["rss", key, "rss_kib"]).and_then(Json::as_f64);
            let hwm = j.path(&["rss", key, "hwm_kib"]).and_then(Json::as_f64);
            if let (Some(rss), Some(hwm)) = (rss, hwm) {
                rows.push([
                    label,
                    mib(rss),
                    "one run".into(),
                    format!("peak (VmHWM) {}", mib(hwm)),
                ]);
            }
        }
    }
    let mut latencies: Vec<String> = report
        .figures_like("cloudflare_", "")
        .iter()
        .filter_map(|f| f.full_id.split('/').next())
        .filter(|g| !g.ends_with("_bulk"))
        .map(str::to_owned)
        .collect();
    latencies.sort_by_key(|g| natural_key(g));
    latencies.dedup();
    for group in &latencies {
        let ms = group.trim_start_matches("cloudflare_");
        for (op, label) in [
            ("store", "store"),
            ("retrieve/new_query", "retrieve, new query"),
            ("retrieve/cached_query", "retrieve, cached query"),
            ("search_by_tag", "search_by_tag"),
        ] {
            let id = format!("{group}/{op}");
            if let Some(f) = report.figure(&id) {
                let (median, spread) = cell(f);
                rows.push([
                    format!("Cloudflare (emulator, {ms} latency): {label}"),
                    median,
                    spread,
                    report
                        .requests_of(&id)
                        .map(|r| format!("{r} requests"))
                        .unwrap_or_default(),
                ]);
            }
        }
        for f in report.figures_like(&format!("{group}_bulk/"), "") {
            let (median, spread) = cell(f);
            let what = f.full_id.split_once('/').map(|x| x.1).unwrap_or("");
            let label = if what.starts_with("bulk_import_embedded") {
                format!(
                    "bulk import of {} memories, embedded by the stand-in",
                    f.elements.unwrap_or(0)
                )
            } else {
                format!(
                    "bulk import of {} memories, carried vectors",
                    f.elements.unwrap_or(0)
                )
            };
            rows.push([
                format!("Cloudflare (emulator, {ms} latency): {label}"),
                median,
                spread,
                f.per_second()
                    .map(|r| format!("{} memories", rate(r)))
                    .unwrap_or_default(),
            ]);
        }
    }
    rows.extend(hybrid_summary_rows(report));
    let mut out = String::from(
        "| figure | median | spread | per operation / throughput |\n|---|---:|---:|---|\n",
    );
    for r in rows {
        let _ = writeln!(out, "| {} | {} | {} | {} |", r[0], r[1], r[2], r[3]);
    }
    out
}

fn render(report: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Benchmarks\n");
    let _ = writeln!(
        o,
        "Generated by `cargo xtask bench` — do not edit by hand; run it again. Every figure \
         below was measured by that run (criterion medians of this machine); each table says \
         the command that reproduces a figure.\n"
    );
    let _ = writeln!(o, "## Machine\n\n| | |\n|---|---|");
    for (k, v) in &report.machine {
        let _ = writeln!(o, "| {k} | {v} |");
    }
    let _ = writeln!(
        o,
        "| load average (1, 5, 15 min) | {} at the start, {} at the end |",
        report.load_before, report.load_after
    );
    let _ = writeln!(
        o,
        "| criterion options | `{}` |",
        report.criterion_args.join(" ")
    );
    let _ = writeln!(
        o,
        "| duration of the run | {:.1} min |\n",
        report.elapsed.as_secs_f64() / 60.0
    );

    let _ = writeln!(o, "## Notes\n");
    if let Some(note) = &report.note {
        let _ = writeln!(o, "* {note}");
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get() as f64)
        .unwrap_or(1.0);
    let busiest = [&report.load_before, &report.load_after]
        .iter()
        .filter_map(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .fold(0.0f64, f64::max);
    if busiest > cores * 0.5 {
        let _ = writeln!(
            o,
            "* The machine was busy while this ran (1-minute load average up to {busiest:.1} on \
             {cores:.0} cores, part of it other work): absolute figures are pessimistic, and \
             spreads wider than on an idle machine."
        );
    }
    let _ = writeln!(
        o,
        "* **median** is criterion's median time per iteration; **spread** in the summary is \
         half the 95% confidence interval of that median, relative to it; the suite tables \
         give the interval itself and the median absolute deviation (MAD) of the samples.\n\
         * Embedding runs on this CPU (no GPU; ONNX Runtime when installed, else candle): every `with_embedding` figure and every \
         Cloudflare figure that embeds (the emulator's Workers AI stand-in runs the same local \
         model) is dominated by it. Real Workers AI embeds on Cloudflare's side.\n\
         * Cloudflare figures are on the local emulator with the latency injected on every \
         API call; requests per operation come from the transport's accounting (criterion's \
         warm-up iterations included), not from a timing.\n"
    );

    let _ = writeln!(o, "## Summary\n\n{}", summary_table(report));

    for (suite, figures, command) in &report.suites {
        let _ = writeln!(o, "## Suite `{}`\n\n{}\n", suite.name, suite.about);
        if suite.name == "hybrid_sync" {
            render_hybrid_sync(&mut o, report, command);
            continue;
        }
        if suite.name == "import" {
            render_import(&mut o, report, command);
            continue;
        }
        if figures.is_empty() {
            let _ = writeln!(
                o,
                "No results from this run (filtered out, or it failed).\n"
            );
            continue;
        }
        let _ = writeln!(
            o,
            "Whole suite: `{command}`. One figure: add its id as criterion's filter, e.g. \
             `cargo bench {} -- {} {}`.\n",
            suite.cargo.join(" "),
            report.criterion_args.join(" "),
            exact_filter(&figures[0].full_id)
        );
        let _ = writeln!(
            o,
            "| benchmark | median | 95% CI of the median | MAD | samples | throughput |\n\
             |---|---:|---:|---:|---:|---:|"
        );
        for f in figures {
            let _ = writeln!(
                o,
                "| `{}` | {} | {} – {} | {} | {} | {} |",
                f.full_id,
                time(f.median_ns),
                time(f.ci_low_ns),
                time(f.ci_high_ns),
                time(f.mad_ns),
                f.samples,
                f.per_second().map(rate).unwrap_or_default()
            );
        }
        let _ = writeln!(o);
        if suite.name == "hybrid_backend" {
            render_hybrid_ratios(&mut o, report);
        }
        if suite.name == "embedding" {
            render_engine_speedups(&mut o, report);
        }
        if suite.name == "cloudflare_backend" && report.requests.is_some() {
            let _ = writeln!(
                o,
                "API calls per iteration (bulk imports: per import) and the mean latency of \
                 each call, from the transport's accounting:\n\n\
                 | benchmark | requests per iteration | mean latency per call |\n|---|---|---|"
            );
            for f in figures {
                if let Some(r) = report.requests_of(&f.full_id) {
                    let _ = writeln!(
                        o,
                        "| `{}` | {} | {} |",
                        f.full_id,
                        r,
                        report.latency_of(&f.full_id).unwrap_or_default()
                    );
                }
            }
            let _ = writeln!(o);
        }
    }

    if let Some(s) = &report.startup {
        let j = &s.json;
        let _ = writeln!(
            o,
            "## Start-up and resident memory\n\nCommand: `{}`.\n\n\
             Start-up is process spawn → the answer to MCP `initialize` over stdio, each run on a \
             fresh database (the server answers before the store and the model are loaded). \
             Resident memory is the server's `VmRSS` (and peak `VmHWM`) from \
             `/proc/<pid>/status`; the store of the last two rows was built with carried random \
             vectors.\n",
            s.command
        );
        let q = |k: &str| {
            j.path(&["startup_ms", k])
                .and_then(Json::as_f64)
                .map(|v| time(v * 1e6))
        };
        if let (Some(min), Some(q1), Some(med), Some(q3), Some(max)) =
            (q("min"), q("q1"), q("median"), q("q3"), q("max"))
        {
            let runs = j
                .path(&["startup_ms", "runs"])
                .and_then(Json::as_f64)
                .unwrap_or(0.0);
            let _ = writeln!(
                o,
                "| start-up over {runs} runs | min | Q1 | median | Q3 | max |\n|---|---:|---:|---:|---:|---:|\n\
                 | spawn → `initialize` answered | {min} | {q1} | {med} | {q3} | {max} |\n"
            );
        }
        let n = j
            .path(&["rss", "store_memories"])
            .and_then(Json::as_f64)
            .unwrap_or(0.0);
        let _ = writeln!(
            o,
            "| server state | VmRSS | VmHWM (peak) |\n|---|---:|---:|"
        );
        for (key, label) in [
            (
                "idle_after_initialize",
                "idle, right after `initialize` (empty store)".to_owned(),
            ),
            (
                "store_open",
                format!(
                    "{} memories open (`memory_list` answered), model not loaded",
                    size_label(n as u64)
                ),
            ),
            (
                "after_search",
                format!(
                    "{} memories, after one `memory_search` (model loaded)",
                    size_label(n as u64)
                ),
            ),
        ] {
            let v = |k: &str| j.path(&["rss", key, k]).and_then(Json::as_f64).map(mib);
            if let (Some(rss), Some(hwm)) = (v("rss_kib"), v("hwm_kib")) {
                let _ = writeln!(o, "| {label} | {rss} | {hwm} |");
            }
        }
        let _ = writeln!(o);
    }

    if !report.failures.is_empty() {
        let _ = writeln!(o, "## What failed in this run\n");
        for f in &report.failures {
            let _ = writeln!(o, "* {f}");
        }
        let _ = writeln!(o);
    }
    o
}

/// The hybrid / embedded ratios of `hybrid_ratios.json`: (operation, embedded ns, hybrid
/// ns, ratio).
fn hybrid_ratios(report: &Report) -> Vec<(String, f64, f64, f64)> {
    let Some(Json::Obj(ops)) = report
        .hybrid_ratios
        .as_ref()
        .and_then(|j| j.get("operations"))
    else {
        return Vec::new();
    };
    ops.iter()
        .map(|(op, v)| {
            let n = |k: &str| v.get(k).and_then(Json::as_f64).unwrap_or(f64::NAN);
            (
                op.clone(),
                n("embedded_median_ns"),
                n("hybrid_median_ns"),
                n("ratio"),
            )
        })
        .collect()
}

/// Summary rows of the hybrid backend: its ratios and the sync lag.
fn hybrid_summary_rows(report: &Report) -> Vec<[String; 4]> {
    let mut rows = Vec::new();
    let context = report
        .hybrid_ratios
        .as_ref()
        .map(|j| {
            let n = |k: &str| j.get(k).and_then(Json::as_f64).unwrap_or(0.0);
            format!(
                "{} memories, {} ms latency, sync on",
                size_label(n("memories") as u64),
                n("latency_ms")
            )
        })
        .unwrap_or_default();
    for (op, embedded, hybrid, ratio) in hybrid_ratios(report) {
        rows.push([
            format!("Hybrid ({context}): {op}"),
            time(hybrid),
            "median of samples".into(),
            format!("{ratio:.2}× embedded ({})", time(embedded)),
        ]);
    }
    if let Some(j) = &report.hybrid_sync {
        let n = |p: &[&str]| j.path(p).and_then(Json::as_f64).unwrap_or(f64::NAN);
        rows.push([
            format!(
                "Hybrid sync lag, store on A → searchable on B (interval {} s, {} ms latency)",
                n(&["sync_interval_ms"]) / 1000.0,
                n(&["latency_ms"])
            ),
            time(n(&["lag_ms", "median"]) * 1e6),
            format!("p95 {}", time(n(&["lag_ms", "p95"]) * 1e6)),
            format!(
                "{} samples; {:.2} Cloudflare requests per synced memory",
                n(&["lag_ms", "samples"]),
                n(&["requests", "per_synced_memory"])
            ),
        ]);
    }
    rows
}

/// The embedding suite's engines side by side: candle's median over ONNX Runtime's.
fn render_engine_speedups(o: &mut String, report: &Report) {
    let mut cases: Vec<&str> = report
        .figures_like("embedding/", "/candle")
        .iter()
        .filter_map(|f| f.full_id.split('/').nth(1))
        .collect();
    cases.dedup();
    let rows: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let candle = report.figure(&format!("embedding/{case}/candle"))?;
            let onnx = report.figure(&format!("embedding/{case}/onnx"))?;
            Some(format!(
                "| `{case}` | {} | {} | {:.1}× |",
                time(candle.median_ns),
                time(onnx.median_ns),
                candle.median_ns / onnx.median_ns
            ))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "The engines in the same run (medians per call; speed-up = candle / ONNX Runtime; \
         `load` is the time to load the model, less is better on both):\n\n\
         | case | candle | ONNX Runtime | speed-up |\n|---|---:|---:|---:|"
    );
    for row in rows {
        let _ = writeln!(o, "{row}");
    }
    let _ = writeln!(o);
}

/// The hybrid suite's ratio table.
fn render_hybrid_ratios(o: &mut String, report: &Report) {
    let ratios = hybrid_ratios(report);
    if ratios.is_empty() {
        return;
    }
    let j = report.hybrid_ratios.as_ref();
    let n = |p: &[&str]| {
        j.and_then(|j| j.path(p))
            .and_then(Json::as_f64)
            .unwrap_or(f64::NAN)
    };
    let _ = writeln!(
        o,
        "Hybrid / embedded, the medians of the time per iteration of every sample the bench \
         measured (`hybrid_ratios.json`; target ≤ {}):\n\n\
         | operation | embedded | hybrid | hybrid / embedded |\n|---|---:|---:|---:|",
        n(&["target_ratio"])
    );
    for (op, embedded, hybrid, ratio) in ratios {
        let _ = writeln!(
            o,
            "| `{op}` | {} | {} | {ratio:.3} |",
            time(embedded),
            time(hybrid)
        );
    }
    if let Some(Json::Obj(ops)) = j.and_then(|j| j.get("operations")) {
        for (op, v) in ops {
            if let (Some(ns), Some(ratio)) = (
                v.get("change_log_only_median_ns").and_then(Json::as_f64),
                v.get("change_log_only_ratio").and_then(Json::as_f64),
            ) {
                let _ = writeln!(
                    o,
                    "\n`{op}` on the hybrid device's kind of local store (change log on) without \
                     any sync: {} ({ratio:.3} × embedded), the change log's share of the gap.",
                    time(ns)
                );
            }
        }
    }
    let _ = writeln!(
        o,
        "\nThe background sync meanwhile ({:.0} s): {} D1, {} Vectorize, {} R2 requests; {} \
         changes in the outbox at the end.\n",
        n(&["background", "seconds"]),
        n(&["background", "requests", "d1"]),
        n(&["background", "requests", "vectorize"]),
        n(&["background", "requests", "r2"]),
        n(&["background", "backlog_at_end"])
    );
}

/// The import measurement's section.
fn render_import(o: &mut String, report: &Report, command: &str) {
    let Some(j) = &report.import else {
        let _ = writeln!(
            o,
            "No results from this run (filtered out, or it failed).\n"
        );
        return;
    };
    let n = |p: &[&str]| j.path(p).and_then(Json::as_f64).unwrap_or(f64::NAN);
    let _ = writeln!(
        o,
        "`{command}`\n\n| engine | {} memories | memories/s |\n|---|---:|---:|",
        n(&["memories"])
    );
    for engine in ["candle", "onnx"] {
        let seconds = n(&["engines", engine, "seconds"]);
        if !seconds.is_nan() {
            let _ = writeln!(
                o,
                "| {engine} | {seconds:.1} s | {:.0} |",
                n(&["engines", engine, "per_second"])
            );
        }
    }
    let _ = writeln!(o);
}

/// The sync lag measurement's section.
fn render_hybrid_sync(o: &mut String, report: &Report, command: &str) {
    let Some(j) = &report.hybrid_sync else {
        let _ = writeln!(
            o,
            "No results from this run (filtered out, or it failed).\n"
        );
        return;
    };
    let n = |p: &[&str]| j.path(p).and_then(Json::as_f64).unwrap_or(f64::NAN);
    let ms = |p: &[&str]| time(n(p) * 1e6);
    let _ = writeln!(
        o,
        "Command: `{command}` (criterion's options are ignored; `BENCH_SYNC_STORES`, \
         `BENCH_SYNC_GAP_MS` change the stores and their mean gap).\n\n\
         | lag over {} stores (mean gap {}) | median | p95 | min | max |\n|---|---:|---:|---:|---:|\n\
         | A's store → searchable on B | {} | {} | {} | {} |\n",
        n(&["lag_ms", "samples"]),
        ms(&["mean_gap_ms"]),
        ms(&["lag_ms", "median"]),
        ms(&["lag_ms", "p95"]),
        ms(&["lag_ms", "min"]),
        ms(&["lag_ms", "max"])
    );
    let _ = writeln!(
        o,
        "Cloudflare requests of both devices over {:.0} s: {} D1, {} Vectorize, {} R2 = \
         **{:.2} per synced memory** (Workers AI: {}).\n",
        n(&["requests", "window_seconds"]),
        n(&["requests", "by_service", "d1"]),
        n(&["requests", "by_service", "vectorize"]),
        n(&["requests", "by_service", "r2"]),
        n(&["requests", "per_synced_memory"]),
        n(&["requests", "workers_ai"])
    );
}

/// A JSON value (just enough for criterion's and our own files).
#[derive(Debug, Clone)]
enum Json {
    Null,
    /// Parsed for completeness; no figure is a boolean.
    #[allow(dead_code)]
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> Result<Json> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            bail!("trailing characters in JSON at byte {}", p.i);
        }
        Ok(v)
    }

    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn path(&self, keys: &[&str]) -> Option<&Json> {
        keys.iter().try_fold(self, |v, k| v.get(k))
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Num(n) => Some(*n),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Arr(a) => Some(a),
            _ => None,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<()> {
        self.ws();
        if self.s.get(self.i) != Some(&c) {
            bail!("expected '{}' in JSON at byte {}", c as char, self.i);
        }
        self.i += 1;
        Ok(())
    }

    fn literal(&mut self, word: &str, v: Json) -> Result<Json> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            bail!("invalid JSON at byte {}", self.i)
        }
    }

    fn value(&mut self) -> Result<Json> {
        self.ws();
        match self.s.get(self.i) {
            None => bail!("unexpected end of JSON"),
            Some(b'{') => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(fields));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.eat(b':')?;
                    fields.push((k, self.value()?));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(fields));
                        }
                        _ => bail!("expected ',' or '}}' in JSON at byte {}", self.i),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(items));
                        }
                        _ => bail!("expected ',' or ']' in JSON at byte {}", self.i),
                    }
                }
            }
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(_) => {
                let start = self.i;
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i])?;
                text.parse::<f64>()
                    .map(Json::Num)
                    .with_context(|| format!("invalid JSON number {text:?} at byte {start}"))
            }
        }
    }

    fn string(&mut self) -> Result<String> {
        if self.s.get(self.i) != Some(&b'"') {
            bail!("expected a string in JSON at byte {}", self.i);
        }
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                bail!("unterminated JSON string");
            };
            self.i += 1;
            match c {
                b'"' => return Ok(String::from_utf8(out)?),
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        bail!("unterminated JSON escape");
                    };
                    self.i += 1;
                    let ch = match e {
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'u' => {
                            let hex = self
                                .s
                                .get(self.i..self.i + 4)
                                .context("short \\u escape in JSON")?;
                            self.i += 4;
                            let code = u32::from_str_radix(std::str::from_utf8(hex)?, 16)?;
                            char::from_u32(code).unwrap_or('\u{fffd}')
                        }
                        other => other as char,
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                _ => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_criterion_estimates() {
        let j = Json::parse(
            r#"{"median":{"confidence_interval":{"lower_bound":1.5e3,"upper_bound":2e3},"point_estimate":1750.0},"t":[1,2],"s":"a\"b\u00e9","n":null,"b":true}"#,
        )
        .expect("valid JSON");
        assert_eq!(
            j.path(&["median", "point_estimate"]).and_then(Json::as_f64),
            Some(1750.0)
        );
        assert_eq!(
            j.path(&["median", "confidence_interval", "lower_bound"])
                .and_then(Json::as_f64),
            Some(1500.0)
        );
        assert_eq!(
            j.get("t").and_then(Json::as_array).map(<[Json]>::len),
            Some(2)
        );
        assert_eq!(j.get("s").and_then(Json::as_str), Some("a\"bé"));
        assert!(Json::parse("{\"a\":}").is_err());
    }

    #[test]
    fn sorts_sizes_numerically() {
        let mut ids = vec!["sqlite_100000/x", "sqlite_1000/x", "sqlite_10000/x"];
        ids.sort_by_key(|s| natural_key(s));
        assert_eq!(ids, ["sqlite_1000/x", "sqlite_10000/x", "sqlite_100000/x"]);
    }

    #[test]
    fn formats_durations_with_units() {
        assert_eq!(time(512.0), "512 ns");
        assert_eq!(time(12_345.0), "12.3 µs");
        assert_eq!(time(1.5e9), "1.50 s");
        assert_eq!(exact_filter("a/b.c"), "'^a/b\\.c$'");
    }
}
