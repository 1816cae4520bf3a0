//! Issue 14's acceptance check: the Python service's `CloudflareStorage` (PyPI
//! `mcp-memory-service`, unpatched, every package pinned in `python/requirements.txt`)
//! completes a store / get / search / tag search / update / delete workload against the
//! emulator, started with its default configuration (so Vectorize mutations become visible
//! after 1 s: the driver polls), with zero non-2xx answers.
//!
//! The driver, `python/cloudflare_compat.py`, records every HTTP answer the client receives
//! and prints `COMPAT-SUMMARY <json>`; this test asserts its exit status, its summary, and
//! the emulator's own per-status counters (`GET /__emulator/counters`).
//!
//! The interpreter is the virtual environment `cargo xtask fetch-python` makes
//! (`MCP_MEMORY_COMPAT_VENV`, else `<cache dir>/mcp-memory/tools/python-compat/`). Without it
//! (or with one made from another pin list) the test fails under CI (`CI` set) and prints
//! `SKIPPED: …` and passes elsewhere.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cloudflare_emulator::{Emulator, EmulatorConfig};
use serde_json::Value;

/// The pinned list; `cargo xtask fetch-python` leaves a copy of the list it installed in the
/// environment, so a stale environment is noticed.
const REQUIREMENTS: &str = include_str!("python/requirements.txt");
/// That copy's name inside the environment (as xtask writes it).
const STAMP: &str = "mcp-memory-compat-requirements.txt";
const DRIVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/python/cloudflare_compat.py"
);
/// How long the whole Python workload may take (it waits up to 30 s per search itself).
const DRIVER_TIMEOUT: Duration = Duration::from_secs(240);

/// The environment's interpreter, or why there is none to use.
fn compat_python() -> Result<PathBuf, String> {
    let venv = match std::env::var_os("MCP_MEMORY_COMPAT_VENV").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => dirs::cache_dir()
            .ok_or("no per-user cache directory; set MCP_MEMORY_COMPAT_VENV")?
            .join("mcp-memory")
            .join("tools")
            .join("python-compat"),
    };
    let python = if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    };
    if !python.is_file() {
        return Err(format!(
            "no Python compat environment at {} (run `cargo xtask fetch-python`)",
            venv.display()
        ));
    }
    match std::fs::read_to_string(venv.join(STAMP)) {
        Ok(installed) if installed == REQUIREMENTS => Ok(python),
        _ => Err(format!(
            "the Python compat environment at {} is incomplete or holds another pin list than \
             tests/python/requirements.txt (run `cargo xtask fetch-python`)",
            venv.display()
        )),
    }
}

/// `GET path` on the emulator's control endpoints, the `result` of the envelope.
fn control_get(addr: SocketAddr, path: &str) -> Value {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("timeout: {e}"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap_or_else(|e| panic!("send GET {path}: {e}"));
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .unwrap_or_else(|e| panic!("read GET {path}: {e}"));
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no header end in {answer:?}"));
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "GET {path}: {head}\n{body}"
    );
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "GET {path}: chunked answer, not expected from the control endpoints"
    );
    let envelope: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"));
    envelope["result"].clone()
}

/// Status codes (as JSON object keys) outside 200..300, with their counts.
fn non_2xx(statuses: &Value) -> Vec<(String, Value)> {
    statuses
        .as_object()
        .unwrap_or_else(|| panic!("statuses is not an object: {statuses}"))
        .iter()
        .filter(|(status, _)| !status.starts_with('2') || status.len() != 3)
        .map(|(s, n)| (s.clone(), n.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_cloudflare_storage_runs_its_workload_against_the_emulator_without_errors() {
    let python = match compat_python() {
        Ok(python) => python,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("under CI the Python compat check must run: {why}")
        }
        Err(why) => {
            println!("SKIPPED: {why}");
            eprintln!("SKIPPED: {why}");
            return;
        }
    };

    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .unwrap_or_else(|e| panic!("emulator: {e}"));
    let config = emulator.config().clone();
    let database = {
        let hex = format!("{:032x}", rand::random::<u128>());
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    };
    let out_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let stdout_path = out_dir.path().join("stdout");
    let stderr_path = out_dir.path().join("stderr");
    let file = |p: &PathBuf| std::fs::File::create(p).unwrap_or_else(|e| panic!("{e}"));

    let mut command = Command::new(&python);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("CLOUDFLARE_") || name.starts_with("COMPAT_") {
            command.env_remove(name);
        }
    }
    command
        .arg(DRIVER)
        .env("CLOUDFLARE_API_BASE_URL", emulator.base_url())
        .env("CLOUDFLARE_API_TOKEN", &config.tokens[0])
        .env("CLOUDFLARE_ACCOUNT_ID", &config.account_ids[0])
        .env("CLOUDFLARE_VECTORIZE_INDEX", "python-compat")
        .env("CLOUDFLARE_D1_DATABASE_ID", &database)
        .env("CLOUDFLARE_R2_BUCKET", "python-compat")
        .env("CLOUDFLARE_EMBEDDING_MODEL", "@cf/baai/bge-small-en-v1.5")
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(file(&stdout_path))
        .stderr(file(&stderr_path));
    let started = Instant::now();
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", python.display()));
    // Polled, so the emulator (on this runtime) keeps answering meanwhile.
    let status = loop {
        if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("wait: {e}")) {
            break status;
        }
        if started.elapsed() > DRIVER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the Python driver did not finish within {DRIVER_TIMEOUT:?}; stderr:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    println!(
        "python compat: driver exited with {status} after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("{stdout}");
    assert!(
        status.success(),
        "the Python driver failed ({status})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );

    let summary: Value = stdout
        .lines()
        .find_map(|line| line.strip_prefix("COMPAT-SUMMARY "))
        .map(|json| serde_json::from_str(json).unwrap_or_else(|e| panic!("summary: {e}")))
        .unwrap_or_else(|| panic!("no COMPAT-SUMMARY line\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    let package = summary["package"].as_str().unwrap_or_default();
    assert!(
        REQUIREMENTS.lines().any(|line| line == package),
        "the driver ran {package:?}, not the pinned version"
    );
    assert_eq!(non_2xx(&summary["statuses"]), vec![], "{summary}");
    assert_eq!(summary["client_errors_logged"], 0, "{summary}");
    let requests = summary["requests"].as_u64().unwrap_or(0);
    // Every service the workload exercises was reached.
    for service in ["ai", "d1", "r2", "vectorize"] {
        assert!(
            summary["per_service"][service].as_u64().unwrap_or(0) > 0,
            "no {service} request: {summary}"
        );
    }

    let addr = emulator.addr();
    let counters = tokio::task::spawn_blocking(move || control_get(addr, "/__emulator/counters"))
        .await
        .unwrap_or_else(|e| panic!("counters: {e}"));
    println!("python compat: emulator counters {counters}");
    assert_eq!(non_2xx(&counters["statuses"]), vec![], "{counters}");
    assert_eq!(counters["resets"], 0, "{counters}");
    assert_eq!(
        counters["total"].as_u64(),
        Some(requests),
        "the emulator counted other requests than the client received answers: {counters}"
    );
}
