//! The embedded default backend: memories, tags and embeddings in one SQLite file (WAL),
//! searched by an in-process vector index, embedded by a local model.
//!
//! ```
//! # use std::sync::Arc;
//! # use async_trait::async_trait;
//! # use memory_embed::{EmbedError, Embedder};
//! use memory_core::{Memory, Tags};
//! use memory_sqlite::SqliteStorage;
//! use memory_storage::MemoryStorage;
//!
//! # #[derive(Debug)]
//! # struct Letters;
//! # #[async_trait]
//! # impl Embedder for Letters {
//! #     fn model_id(&self) -> &str { "letters" }
//! #     fn dimensions(&self) -> usize { 26 }
//! #     async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
//! #         Ok(texts.iter().map(|t| {
//! #             let mut v = vec![0.0f32; 26];
//! #             for b in t.to_lowercase().bytes().filter(u8::is_ascii_lowercase) { v[(b - b'a') as usize] += 1.0; }
//! #             let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
//! #             v.iter().map(|x| x / n).collect()
//! #         }).collect())
//! #     }
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("memories.db");
//! // The binary passes `<data dir>/mcp-memory/memories.db` and the local MiniLM model.
//! let store = SqliteStorage::open(path, Arc::new(Letters)).await?;
//! store.store(Memory::new("Deploys go out on Tuesdays")?.with_tags(Tags::parse("ops")?)).await?;
//! store.store(Memory::new("The cat is called Zazie")?).await?;
//!
//! let hits = store.retrieve("when do deploys go out?", 1).await?;
//! assert_eq!(hits[0].memory.content(), "Deploys go out on Tuesdays");
//! # Ok(())
//! # }
//! ```
//!
//! * [`SqliteStorage`] implements [`MemoryStorage`](memory_storage::MemoryStorage); open it
//!   with [`SqliteStorage::open`] or, for options, [`SqliteConfig`].
//! * With [`SqliteConfig::change_log`] on, every write also records its
//!   [`memory_sync::Change`]s in a change log ("outbox") in the same transaction, for the
//!   hybrid backend to push: [`SqliteStorage::pending_changes`] and
//!   [`SqliteStorage::ack_changes`]. Changes pulled from other devices are applied with
//!   [`SqliteStorage::apply_remote`] (merged by `memory_sync`'s rules, never recorded), and
//!   [`SqliteStorage::replicas`] and [`SqliteStorage::sync_hashes`] hand out what this
//!   device holds.
//! * [`vector`] is the brute-force search it uses, callable on its own for benchmarks.
//! * The schema and its migrations are described in the `schema` module's source, with
//!   the version it writes (`PRAGMA user_version`).
//!
//! # Concurrency
//! One writer connection (behind a mutex) and a pool of readers; every call runs on tokio's
//! blocking pool. Writes are `BEGIN IMMEDIATE` transactions with a busy timeout and a
//! bounded retry, so another process writing to the same file makes a write wait, not
//! fail; only a lock held past the whole budget gives
//! [`StorageError::Unavailable`](memory_storage::StorageError::Unavailable).
//! Each process's vector index follows the others' writes through a change sequence
//! (see `live_index`), checked with `PRAGMA data_version` before every search.

// `pub` is for other crates: an item no other crate can reach is `pub(crate)`.
#![warn(unreachable_pub)]

mod codec;
mod conditions;
mod config;
mod connection;
mod live_index;
mod outbox;
mod schema;
mod storage;
pub mod vector;

#[cfg(test)]
mod tests;

pub use config::SqliteConfig;
pub use outbox::{OutboxEntry, OutboxError};
pub use storage::{ApplyReport, SqliteStorage};
