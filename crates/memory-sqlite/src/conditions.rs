//! SQL `WHERE` clauses for [`MemoryFilter`] and [`DeleteSelector`], always restricted to
//! live rows. Tag conditions are set-based (one sub-query on `memory_tags`), lists of
//! values travel as one JSON array parameter (`json_each`), never as string splicing.

use memory_storage::{DeleteSelector, MemoryFilter, TagFilter, TagMatch};
use rusqlite::types::Value;

use crate::codec::json_strings;

/// A `WHERE` clause over `memories m` and its positional parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Conditions {
    /// The clause, `AND`-joined.
    pub(crate) sql: String,
    /// Values for its `?` placeholders, in order.
    pub(crate) params: Vec<Value>,
}

impl Conditions {
    /// Live rows only.
    fn live() -> Self {
        Self {
            sql: "m.deleted_at IS NULL".into(),
            params: Vec::new(),
        }
    }

    fn and(&mut self, clause: &str, params: impl IntoIterator<Item = Value>) {
        self.sql.push_str(" AND ");
        self.sql.push_str(clause);
        self.params.extend(params);
    }

    /// Adds a tag condition (the list is not empty: see [`MemoryFilter::matches_nothing`]).
    fn tags(&mut self, filter: &TagFilter) {
        let list = Value::Text(json_strings(filter.tags.iter().map(String::as_str)));
        match filter.mode {
            TagMatch::Any => self.and(
                "m.id IN (SELECT memory_id FROM memory_tags \
                 WHERE tag IN (SELECT value FROM json_each(?)))",
                [list],
            ),
            TagMatch::All => self.and(
                "m.id IN (SELECT memory_id FROM memory_tags \
                 WHERE tag IN (SELECT value FROM json_each(?)) \
                 GROUP BY memory_id HAVING COUNT(*) = ?)",
                // Tags are de-duplicated, so "all" means as many matches as tags.
                [list, Value::Integer(filter.tags.len() as i64)],
            ),
        }
    }

    /// Live rows matching `filter`; `None` when nothing can match.
    pub(crate) fn for_filter(filter: &MemoryFilter) -> Option<Self> {
        if filter.matches_nothing() {
            return None;
        }
        let mut c = Self::live();
        if let Some(tags) = &filter.tags {
            c.tags(tags);
        }
        if let Some(t) = &filter.memory_type {
            c.and("m.memory_type = ?", [Value::Text(t.clone())]);
        }
        if let Some(range) = filter.time {
            c.and(
                "m.created_at_us BETWEEN ? AND ?",
                [
                    Value::Integer(range.start.epoch_micros()),
                    Value::Integer(range.end.epoch_micros()),
                ],
            );
        }
        Some(c)
    }

    /// Live rows selected by `selector` (validate it first); `None` when nothing can match.
    pub(crate) fn for_selector(selector: &DeleteSelector) -> Option<Self> {
        let mut c = Self::live();
        if !selector.hashes.is_empty() {
            let list = json_strings(selector.hashes.iter().map(|h| h.as_str()));
            c.and(
                "m.content_hash IN (SELECT value FROM json_each(?))",
                [Value::Text(list)],
            );
        }
        // `validate` refuses an empty tag list (and in SQL one would match no row).
        if let Some(tags) = &selector.tags {
            c.tags(tags);
        }
        if let Some(before) = selector.before {
            c.and(
                "m.created_at_us <= ?",
                [Value::Integer(before.epoch_micros())],
            );
        }
        if let Some(after) = selector.after {
            c.and(
                "m.created_at_us >= ?",
                [Value::Integer(after.epoch_micros())],
            );
        }
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memory_core::Tags;

    #[test]
    fn empty_tag_filter_matches_nothing() {
        let f = MemoryFilter::all().with_tags(TagFilter::any(Tags::empty()));
        assert_eq!(Conditions::for_filter(&f), None);
    }

    #[test]
    fn no_conditions_means_live_rows() {
        let c = Conditions::for_filter(&MemoryFilter::all()).unwrap();
        assert_eq!(c.sql, "m.deleted_at IS NULL");
        assert!(c.params.is_empty());
    }

    #[test]
    fn all_tags_counts_the_matches() {
        let f = MemoryFilter::all().with_tags(TagFilter::all(Tags::parse("a,b").unwrap()));
        let c = Conditions::for_filter(&f).unwrap();
        assert!(c.sql.contains("HAVING COUNT(*) = ?"));
        assert_eq!(c.params[1], Value::Integer(2));
    }
}
