//! What travels between a device and Cloudflare besides the bare [`Change`]: a memory's
//! content and vector, which the change itself does not hold (content is the memory's
//! identity and never changes; the vector is computed once, by the device that stored it).

use memory_core::ContentHash;

use crate::state::{Change, MemoryState};

/// A change with what a receiving device needs to apply it without asking anyone else: for
/// a store, the memory's content and vector.
///
/// Both are `None` for updates and deletes, and for a store whose memory was deleted on
/// its device before the push (its Delete follows in the log, so no device keeps it).
#[derive(Debug, Clone, PartialEq)]
pub struct SyncedChange {
    /// The change.
    pub change: Change,
    /// The memory's content (stores only).
    pub content: Option<String>,
    /// The memory's vector, as the store keeps it (unit length; stores only).
    pub vector: Option<Vec<f32>>,
}

impl SyncedChange {
    /// A change that carries nothing (an update, a delete).
    #[must_use]
    pub fn bare(change: Change) -> Self {
        Self {
            change,
            content: None,
            vector: None,
        }
    }
}

/// One memory as a device holds it after merging everything it has seen: its replicated
/// state (fields and liveness with their stamps) and, when it is live, its content and
/// vector. What the sync engine writes to Cloudflare's tables and index.
#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    /// The merged state.
    pub state: MemoryState,
    /// The content, when the device holds it (always for a live memory).
    pub content: Option<String>,
    /// The vector, when the device holds it (always for a live memory).
    pub vector: Option<Vec<f32>>,
}

impl Replica {
    /// The memory.
    #[must_use]
    pub fn hash(&self) -> &ContentHash {
        &self.state.hash
    }

    /// Whether the memory is live (stored and not deleted since) with known fields.
    #[must_use]
    pub fn is_live(&self) -> bool {
        self.state.live_fields().is_some()
    }
}
