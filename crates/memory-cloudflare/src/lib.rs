//! `CloudflareStorage`: the [`memory_storage::MemoryStorage`] backend on Cloudflare — D1 holds
//! the rows and tags (the Python MCP Memory Service's schema), Vectorize the vectors, R2 the
//! content over the large-content threshold, and Workers AI makes the embeddings.

#![warn(missing_docs)]

pub mod schema;
