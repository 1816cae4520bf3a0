//! What the hybrid backend's tests share: a deployment on the emulator (with the
//! transport's request accounting) and devices on it, each a local file with a counting
//! MiniLM embedder. The helpers live in `memory_hybrid::testing` (feature `testing`), so
//! the benchmarks use the same ones.
// Each test file uses a subset of these helpers.
#![allow(unused_imports)]

pub use memory_hybrid::testing::{Counting, Deployment, minilm, sync_until_quiet, unit_vector};
