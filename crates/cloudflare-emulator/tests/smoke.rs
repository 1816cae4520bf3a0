//! The harness reaches the emulator directly and through Prism.

mod common;

use cloudflare_emulator::EmulatorConfig;
use common::Harness;

#[tokio::test]
async fn unknown_route_is_a_7003_error_directly_and_through_prism() {
    let h = Harness::direct(EmulatorConfig::default()).await;
    let reply = h.get(&h.path("no/such/thing")).await;
    reply.error(404, 7003);
}
