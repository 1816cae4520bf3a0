//! A local emulator of the part of Cloudflare's REST API the memory service uses, so the
//! Cloudflare backend can be developed, tested and benchmarked without an account or a
//! network: D1 on real SQLite, Vectorize v2, R2 objects and Workers AI text embeddings
//! (answered by a local model that stands in for the Cloudflare one, and says so).
//!
//! It follows Cloudflare's official OpenAPI spec and documentation: same paths under
//! `/client/v4`, same envelopes, status codes, error codes and limits.
//!
//! # Where the spec and Cloudflare disagree, and what the emulator does
//!
//! The emulator follows Cloudflare's documentation, or the live API's observed answers
//! (quoted in public client code and issue threads), over the OpenAPI spec where they differ:
//!
//! | topic | spec | emulator (source) |
//! |---|---|---|
//! | missing `Authorization` | bearer security (401) | 400, code 9106 (live API) |
//! | rate limit | error codes ≥ 1000 | 429, code 971, `retry-after` (live API) |
//! | Vectorize `get_by_ids` result | `type: object` beside an array `$ref` | the array (the `$ref`, the docs) |
//! | Vectorize create index status | 200 | 200 (docs say 201) |
//! | Vectorize insert body | `application/x-ndjson` | NDJSON or multipart (docs' example) |
//! | Vectorize dot-product score | — | negative dot product, lower first (docs) |
//! | D1 `/raw` row items | number, string or object | also `null` and byte arrays, as D1 returns |
//! | D1 `meta.changes` | from `sqlite3_total_changes()` | per statement, including trigger rows (as D1 reports) |
//! | R2 bucket name length | ≤ 64 | 3–63 (docs) |
//! | R2 bulk delete by keys | no request body declared | JSON list of keys (the description) |
//! | R2 empty upload | body required | empty objects stored (as R2 does) |
//! | R2 `EntityTooLarge` | — | HTTP 400 (docs) |
//!
//! Deliberate deviations, each switchable or documented in its module: D1 databases (any UUID)
//! and R2 buckets are created on first use because the spec subset has no endpoints to create
//! them ([`d1::D1::set_create_on_first_use`] restores Cloudflare's 404); Workers AI answers with
//! a configured local stand-in model, named at start and in the `cf-emulator-stand-in` header.
//! Error codes Cloudflare does not document are marked as chosen in each module.
//!
//! Prism's validating proxy does not check answers the spec declares as `4XX`, so the
//! emulator's test harness checks every error answer's envelope shape itself.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use cloudflare_emulator::{Emulator, EmulatorConfig};
//!
//! let emulator = Emulator::start(EmulatorConfig::default()).await?;
//! println!("point CLOUDFLARE_API_BASE_URL at {}", emulator.base_url());
//! # Ok(()) }
//! ```

// `pub` is for other crates: an item no other crate can reach is `pub(crate)`.
#![warn(unreachable_pub)]

pub mod ai;
mod auth;
pub mod cli;
mod config;
mod control;
mod counters;
pub mod d1;
mod envelope;
mod faults;
mod r2;
mod rate_limit;
mod server;
mod vectorize;

pub use config::{DEFAULT_MUTATION_DELAY, EmulatorConfig, ModelStandIn};
pub use counters::{Counters, CountersSnapshot};
pub use envelope::ApiError;
pub use faults::{ActiveRule, Fault, FaultHandle, FaultRule, InvalidFault};
pub use r2::R2;
pub use server::{Emulator, EmulatorHandle};
pub use vectorize::Vectorize;
