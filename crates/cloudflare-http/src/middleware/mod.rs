//! Tower layers of the Cloudflare client, one job each.

pub mod retry;
