//! The embedded default backend (placeholder while it is written).
