//! `CloudflareStorage`: the [`memory_storage::MemoryStorage`] backend on Cloudflare — D1 holds
//! the rows and tags (the Python MCP Memory Service's schema), Vectorize the vectors, R2 the
//! content over the large-content threshold, and Workers AI makes the embeddings.
//!
//! # Features
//! - `local-embedding` (off by default): `embedder::fallback_embedder`, a local model
//!   standing in for Workers AI when it computes the same vectors. It needs `memory-embed`'s
//!   `bert` feature (candle, tokenizers); without it this crate compiles no BERT runtime and
//!   embeds only through Workers AI. The `mcp-memory` binary enables it.

// `pub` is for other crates: an item no other crate can reach is `pub(crate)`.
#![warn(unreachable_pub)]

pub mod change_log;
pub mod config;
mod connect;
pub mod embedder;
mod error_map;
mod namespace;
mod rows;
pub mod schema;
mod sql;
pub mod storage;
#[cfg(test)]
mod testing;

pub use namespace::{InvalidNamespace, Namespace};
pub use storage::consistency::{CloudflareCheck, CloudflareRepair, HashMismatch, MissingObject};
pub use storage::replica::{ProjectReport, ReplicaModel};
pub use storage::{CloudflareStorage, Options, Parts};
