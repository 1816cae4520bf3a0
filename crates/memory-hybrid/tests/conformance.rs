//! The shared conformance suite (`memory_storage::conformance`) on [`HybridStorage`]: one
//! test per case, each on a fresh device of a fresh deployment on the emulator, with the
//! background sync running every 100 ms, so the cases' writes are pushed, pulled back and
//! projected while the case reads.

mod common;

use std::time::Duration;

use common::{Deployment, minilm};
use memory_hybrid::{HybridStorage, SyncOptions};
use tempfile::TempDir;

/// A fresh device syncing in the background; the deployment and directory live as long as
/// the case.
async fn fresh_device() -> (HybridStorage, (Deployment, TempDir)) {
    let cf = Deployment::start().await;
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let device = cf
        .device_with(dir.path(), "device", minilm(), SyncOptions::default())
        .await;
    device.start_background(Duration::from_millis(100));
    (device, (cf, dir))
}

memory_storage::conformance_tests!(fresh_device);
