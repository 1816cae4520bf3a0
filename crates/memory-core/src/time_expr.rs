//! Natural-language time expressions for recall ("last week", "2024-05-01", ...).
//!
//! PLACEHOLDER: the full parser is being written; this module's API is fixed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// An inclusive UTC time range `[start, end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    /// First instant included.
    pub start: Timestamp,
    /// Last instant included.
    pub end: Timestamp,
}

impl TimeRange {
    /// Whether `t` lies inside the range (both ends included).
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t <= self.end
    }
}

/// Parses a whole expression relative to `now`; unknown text gives `None`.
pub fn parse_time_expression(text: &str, now: DateTime<Utc>) -> Option<TimeRange> {
    let _ = (text, now);
    None
}

/// Finds a time expression inside a recall query and returns the query without it.
pub fn extract_time_expression(query: &str, now: DateTime<Utc>) -> (String, Option<TimeRange>) {
    let _ = now;
    (query.to_owned(), None)
}
