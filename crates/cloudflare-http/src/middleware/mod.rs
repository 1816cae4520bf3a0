//! Tower layers of the Cloudflare client, one job each.

pub(crate) mod accounting;
pub(crate) mod auth;
pub(crate) mod base_uri;
pub(crate) mod breaker;
pub mod rate_limit;
pub(crate) mod retry;
pub(crate) mod timeout;
pub(crate) mod trace;
