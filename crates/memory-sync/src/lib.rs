//! The replication rules of the hybrid backend (local-first memory on every device, synced
//! through Cloudflare): what a change is, how it is stamped, and how every device merges
//! changes so that all of them, and Cloudflare, converge to the same memories whatever the
//! order and number of deliveries.
//!
//! - [`hlc`]: hybrid logical clocks ([`Hlc`], [`HybridClock`]) and device ids ([`DeviceId`]):
//!   a total order of changes that every device computes the same way, with a text form
//!   whose order is the stamps' (for a database column that pages by it).
//! - [`state`]: one memory's replicated state ([`MemoryState`]) and the merge of
//!   [`Change`]s, with the written rules (content immutable, latest change wins for fields
//!   and for liveness, a delete beats a concurrent update, a deleted memory never comes back
//!   unless stored after the delete).
//! - [`payload`]: what travels with a change ([`SyncedChange`]: content and vector of a
//!   store) and a device's merged view of one memory ([`Replica`]).
//!
//! This crate holds no I/O: the outbox, the push and pull, and the storage of states are
//! built on it.

pub mod hlc;
pub mod payload;
pub mod state;

pub use hlc::{ClockError, DeviceId, Hlc, HybridClock, MAX_DRIFT_MS};
pub use payload::{Replica, SyncedChange};
pub use state::{Change, Fields, Life, MemoryState, Stamped};
