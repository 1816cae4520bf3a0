//! The emulator's command line, shared by the `cloudflare-emulator` binary and
//! `mcp-memory emulator`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{DEFAULT_MUTATION_DELAY, DEFAULT_RATE_LIMIT, DEFAULT_RATE_WINDOW};
use crate::{Emulator, EmulatorConfig, ModelStandIn};

/// A local emulator of Cloudflare's REST API (D1, Vectorize v2, R2 objects, Workers AI
/// embeddings) for development and tests.
/// The emulator's command-line options (the `cloudflare-emulator` binary and
/// `mcp-memory emulator`).
#[derive(Debug, Clone, clap::Args)]
pub struct EmulatorArgs {
    /// Port to listen on (0 = any free port).
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Where D1 databases, Vectorize indexes and R2 objects persist (default: in memory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// An accepted API token (repeatable; default `emulator-token`).
    #[arg(long = "token")]
    pub tokens: Vec<String>,
    /// An account id served (repeatable; default `023e105f4ecef8ad9ca31a8372d0c353`).
    #[arg(long = "account")]
    pub accounts: Vec<String>,
    /// Requests per window per account, all tokens together, before 429 (0 = no limit).
    #[arg(long, default_value_t = DEFAULT_RATE_LIMIT)]
    pub rate_limit: u32,
    /// The rate limit window, seconds.
    #[arg(long, default_value_t = DEFAULT_RATE_WINDOW.as_secs())]
    pub rate_window: u64,
    /// How long a Vectorize mutation takes to become visible, milliseconds (Cloudflare:
    /// typically a few seconds; 0 = at once).
    #[arg(long, default_value_t = u64::try_from(DEFAULT_MUTATION_DELAY.as_millis()).unwrap_or(1000))]
    pub mutation_delay: u64,
    /// A Workers AI stand-in, `CF_MODEL=LOCAL_MODEL[@DIR]` (repeatable; default
    /// `@cf/baai/bge-small-en-v1.5=sentence-transformers/all-MiniLM-L6-v2`).
    #[arg(long = "stand-in", value_parser = parse_stand_in)]
    pub stand_ins: Vec<ModelStandIn>,
    /// Seed of fault injection's random choices.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory holding the local model's files for stand-ins that name none (when it is a
    /// directory; else the per-user cache is used).
    #[arg(long, env = "MCP_MEMORY_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
}

/// Parses `CF_MODEL=LOCAL_MODEL[@DIR]` (the Cloudflare id may itself start with `@`).
fn parse_stand_in(text: &str) -> Result<ModelStandIn, String> {
    let (cloudflare_model, local) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not CF_MODEL=LOCAL_MODEL[@DIR]"))?;
    let (local_model, local_dir) = match local.split_once('@') {
        Some((model, dir)) => (model, Some(PathBuf::from(dir))),
        None => (local, None),
    };
    if cloudflare_model.is_empty() || local_model.is_empty() {
        return Err(format!("{text:?} is not CF_MODEL=LOCAL_MODEL[@DIR]"));
    }
    if local_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
        return Err(format!("{text:?}: the directory after @ is empty"));
    }
    Ok(ModelStandIn {
        cloudflare_model: cloudflare_model.to_owned(),
        local_model: local_model.to_owned(),
        local_dir,
    })
}

impl EmulatorArgs {
    /// The emulator configuration these options describe.
    pub fn config(self) -> EmulatorConfig {
        let defaults = EmulatorConfig::default();
        EmulatorConfig {
            account_ids: if self.accounts.is_empty() {
                defaults.account_ids
            } else {
                self.accounts
            },
            tokens: if self.tokens.is_empty() {
                defaults.tokens
            } else {
                self.tokens
            },
            data_dir: self.data_dir,
            rate_limit: self.rate_limit,
            rate_window: Duration::from_secs(self.rate_window.max(1)),
            mutation_delay: Duration::from_millis(self.mutation_delay),
            models: {
                let mut models = if self.stand_ins.is_empty() {
                    defaults.models
                } else {
                    self.stand_ins
                };
                if let Some(dir) = self.model_dir.filter(|d| d.is_dir()) {
                    for model in models.iter_mut().filter(|m| m.local_dir.is_none()) {
                        model.local_dir = Some(dir.clone());
                    }
                }
                models
            },
            seed: self.seed,
        }
    }
}

/// Starts the emulator with `args`, prints where it listens, the tokens, account ids,
/// stand-ins and the `CLOUDFLARE_*` lines to export, and serves until Ctrl-C.
///
/// # Errors
///
/// The address cannot be bound, or a data directory cannot be opened.
pub async fn run(args: EmulatorArgs) -> anyhow::Result<()> {
    let addr = SocketAddr::new(args.host, args.port);
    let emulator = Emulator::start_on(args.config(), addr).await?;
    let config = emulator.config();
    println!("Cloudflare API emulator listening");
    println!("base URL: {}", emulator.base_url());
    println!("tokens: {}", config.tokens.join(", "));
    println!("account ids: {}", config.account_ids.join(", "));
    match &config.data_dir {
        Some(dir) => println!("data dir: {}", dir.display()),
        None => println!("data dir: none (in memory; lost at exit)"),
    }
    if config.rate_limit == 0 {
        println!("rate limit: off");
    } else {
        println!(
            "rate limit: {} requests per {} s per account (all tokens together)",
            config.rate_limit,
            config.rate_window.as_secs()
        );
    }
    for model in &config.models {
        println!(
            "Workers AI stand-in (not the real model): {} is answered by the local model {}{}",
            model.cloudflare_model,
            model.local_model,
            model
                .local_dir
                .as_ref()
                .map(|d| format!(" from {}", d.display()))
                .unwrap_or_default()
        );
    }
    println!("control: http://{}/__emulator/info", emulator.addr());
    println!("environment:");
    println!("  CLOUDFLARE_API_BASE_URL={}", emulator.base_url());
    println!(
        "  CLOUDFLARE_API_TOKEN={}",
        config.tokens.first().map_or("", String::as_str)
    );
    println!(
        "  CLOUDFLARE_ACCOUNT_ID={}",
        config.account_ids.first().map_or("", String::as_str)
    );
    println!("Ctrl-C stops it.");
    tokio::signal::ctrl_c().await?;
    eprintln!("stopping");
    emulator.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        inner: EmulatorArgs,
    }

    #[test]
    fn parses_stand_ins() {
        let s = parse_stand_in("@cf/baai/bge-small-en-v1.5=sentence-transformers/all-MiniLM-L6-v2")
            .unwrap();
        assert_eq!(s.cloudflare_model, "@cf/baai/bge-small-en-v1.5");
        assert_eq!(s.local_model, "sentence-transformers/all-MiniLM-L6-v2");
        assert_eq!(s.local_dir, None);
        let s =
            parse_stand_in("@cf/baai/bge-base-en-v1.5=BAAI/bge-base-en-v1.5@/models/base").unwrap();
        assert_eq!(s.local_model, "BAAI/bge-base-en-v1.5");
        assert_eq!(s.local_dir, Some(PathBuf::from("/models/base")));
        for bad in ["nothing", "=x", "a=", "a=b@"] {
            assert!(parse_stand_in(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arguments_make_a_config() {
        let args = Args::parse_from([
            "cloudflare-emulator",
            "--port",
            "0",
            "--token",
            "t1",
            "--token",
            "t2",
            "--account",
            "acc",
            "--rate-limit",
            "5",
            "--rate-window",
            "2",
            "--mutation-delay",
            "250",
            "--seed",
            "9",
        ]);
        let config = args.inner.config();
        assert_eq!(config.tokens, ["t1", "t2"]);
        assert_eq!(config.account_ids, ["acc"]);
        assert_eq!(config.rate_limit, 5);
        assert_eq!(config.rate_window, Duration::from_secs(2));
        assert_eq!(config.mutation_delay, Duration::from_millis(250));
        assert_eq!(config.seed, 9);
        assert_eq!(config.models, vec![ModelStandIn::default_small()]);
        let config = Args::parse_from(["cloudflare-emulator"]).inner.config();
        assert_eq!(config.tokens, EmulatorConfig::default().tokens);
        assert_eq!(config.rate_limit, DEFAULT_RATE_LIMIT);
        // Strict by default: writes are not visible at once, as on Cloudflare.
        assert_eq!(config.mutation_delay, DEFAULT_MUTATION_DELAY);
        assert!(!config.mutation_delay.is_zero());
    }

    #[test]
    fn model_dir_serves_the_stand_ins_that_name_none() {
        let dir = std::env::temp_dir();
        let shown = dir.display().to_string();
        let config = Args::parse_from([
            "cloudflare-emulator",
            "--stand-in",
            "@cf/a/x=acme/x",
            "--stand-in",
            "@cf/a/y=acme/y@/models/y",
            "--model-dir",
            shown.as_str(),
        ])
        .inner
        .config();
        let dirs: Vec<Option<PathBuf>> = config.models.into_iter().map(|m| m.local_dir).collect();
        assert_eq!(dirs, [Some(dir), Some(PathBuf::from("/models/y"))]);
        // A directory that does not exist is passed over: the per-user cache applies.
        let config = Args::parse_from(["cloudflare-emulator", "--model-dir", "/no/such/dir"])
            .inner
            .config();
        assert_eq!(config.models, vec![ModelStandIn::default_small()]);
    }
}
