//! The `cloudflare-emulator` binary: serves the emulator until Ctrl-C.
//!
//! ```text
//! cloudflare-emulator [--port 8787] [--host 127.0.0.1] [--data-dir DIR] [--token T]...
//!     [--account ID]... [--rate-limit N --rate-window SECS] [--mutation-delay MS]
//!     [--stand-in CF_MODEL=LOCAL_MODEL[@DIR]]... [--seed N]
//! ```
//!
//! It prints the base URL (`--port 0` picks a free port and prints the real one), the
//! tokens, the account ids, the model stand-ins and the environment lines that point the
//! memory service at it.

use clap::Parser;
use cloudflare_emulator::cli::{EmulatorArgs, run};

#[derive(Debug, Parser)]
#[command(name = "cloudflare-emulator", version, about)]
struct Args {
    #[command(flatten)]
    emulator: EmulatorArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    run(Args::parse().emulator).await
}
