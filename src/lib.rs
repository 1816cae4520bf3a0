//! Root package of the `mcp-memory` workspace.
//!
//! It owns the cross-crate integration tests (`tests/`) and the criterion benchmarks
//! (`benches/`), and re-exports the workspace crates so those can name everything
//! through one path.

pub use memory_core as core;
pub use memory_embed as embed;
pub use memory_sqlite as sqlite;
pub use memory_storage as storage;
