//! The conformance suite (placeholder while it is written).
