//! `CloudflareStorage`: the [`memory_storage::MemoryStorage`] backend on Cloudflare — D1 holds
//! the rows and tags (the Python MCP Memory Service's schema), Vectorize the vectors, R2 the
//! content over the large-content threshold, and Workers AI makes the embeddings.

#![warn(missing_docs)]

pub mod config;
mod connect;
pub mod embedder;
mod error_map;
pub mod namespace;
mod rows;
pub mod schema;
mod sql;
pub mod storage;
#[cfg(test)]
mod testing;

pub use namespace::{InvalidNamespace, Namespace};
pub use storage::consistency::{self, CloudflareCheck, CloudflareRepair};
pub use storage::{CloudflareStorage, Options, Parts};
