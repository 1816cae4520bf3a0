//! `mcp-memory` (placeholder while the CLI is written).
fn main() {}
