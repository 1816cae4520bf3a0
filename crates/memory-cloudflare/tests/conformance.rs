//! The shared conformance suite (`memory_storage::conformance`) on [`CloudflareStorage`]
//! against the local Cloudflare emulator: once straight to the emulator, once through
//! Prism's validating proxy of Cloudflare's OpenAPI spec, where every case ends by asserting
//! that no request and no response broke the spec.
//!
//! Each case gets its own emulator, with a fresh D1 database, Vectorize index and R2 bucket.
//! Embeddings come from the emulator's Workers AI stand-in (all-MiniLM-L6-v2 answering for
//! `@cf/baai/bge-small-en-v1.5`), found through `MCP_MEMORY_MODEL_DIR` or the per-user cache
//! that `cargo xtask fetch-model` fills. The Prism run is reported as ignored when Prism
//! is not installed (`cargo xtask fetch-prism`), except under `CI`, where it fails.

mod common;

use common::{Setup, TestEnv};
use memory_cloudflare::CloudflareStorage;

/// Ends a case: Prism must not have flagged any exchange. Not checked when the case is
/// already failing (a second panic while unwinding would abort the test binary).
struct Guard(TestEnv);

impl Drop for Guard {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.0.assert_no_violations();
        }
    }
}

/// A fresh store straight on a fresh emulator.
async fn direct_store() -> (CloudflareStorage, TestEnv) {
    let env = TestEnv::start(Setup::direct()).await;
    let store = env.storage().await;
    (store, env)
}

/// A fresh store behind Prism's validating proxy.
async fn prism_store() -> (CloudflareStorage, Guard) {
    let env = TestEnv::start(Setup::via_prism()).await;
    let store = env.storage().await;
    (store, Guard(env))
}

/// Straight to the emulator.
mod direct {
    memory_storage::conformance_tests!(super::direct_store);
}

/// Through Prism's validating proxy, asserting no spec violation at the end of each case
/// (ignored when Prism is not installed).
mod via_prism {
    cloudflare_testkit::prism_tests!(suite memory_storage::conformance_tests!(super::prism_store));
}
