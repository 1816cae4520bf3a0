//! SQL of the D1 reads and writes: `WHERE` clauses for filters and selectors (always
//! restricted to live rows, lists of values as one JSON parameter through `json_each`,
//! numbers compared through `CAST(? AS REAL)`), and the statement sets of a store and an
//! update.

use cloudflare_d1::{Param, Statement};
use memory_core::{Memory, Tags, Timestamp};
use memory_storage::{DeleteSelector, MemoryFilter, TagFilter, TagMatch};

use crate::rows::{epoch_text, json_strings};
use crate::schema::Tables;

/// A `WHERE` clause over `memories m` and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Conditions {
    /// The clause, `AND`-joined.
    pub sql: String,
    /// Values for its `?` placeholders, in order.
    pub params: Vec<Param>,
}

impl Conditions {
    fn live() -> Self {
        Self {
            sql: "m.deleted_at IS NULL".into(),
            params: Vec::new(),
        }
    }

    fn and(&mut self, clause: &str, params: impl IntoIterator<Item = Param>) {
        self.sql.push_str(" AND ");
        self.sql.push_str(clause);
        self.params.extend(params);
    }

    /// Adds a tag condition over the link tables (the list is not empty: see
    /// [`MemoryFilter::matches_nothing`]).
    fn tags(&mut self, t: &Tables, filter: &TagFilter) {
        let list = Param::Text(json_strings(filter.tags.iter().map(String::as_str)));
        let base = format!(
            "SELECT mt.memory_id FROM {mt} mt JOIN {tg} tg ON tg.id = mt.tag_id \
             WHERE tg.name IN (SELECT value FROM json_each(?))",
            mt = t.memory_tags,
            tg = t.tags
        );
        match filter.mode {
            TagMatch::Any => self.and(&format!("m.id IN ({base})"), [list]),
            TagMatch::All => self.and(
                &format!(
                    "m.id IN ({base} GROUP BY mt.memory_id \
                     HAVING COUNT(DISTINCT tg.name) = CAST(? AS INTEGER))"
                ),
                [list, Param::Integer(filter.tags.len() as i64)],
            ),
        }
    }

    /// Live rows matching `filter`; `None` when nothing can match.
    pub(crate) fn for_filter(t: &Tables, filter: &MemoryFilter) -> Option<Self> {
        if filter.matches_nothing() {
            return None;
        }
        let mut c = Self::live();
        if let Some(tags) = &filter.tags {
            c.tags(t, tags);
        }
        if let Some(ty) = &filter.memory_type {
            c.and("m.memory_type = ?", [Param::Text(ty.clone())]);
        }
        if let Some(range) = filter.time {
            c.and(
                "m.created_at BETWEEN CAST(? AS REAL) AND CAST(? AS REAL)",
                [
                    Param::Text(epoch_text(range.start)),
                    Param::Text(epoch_text(range.end)),
                ],
            );
        }
        Some(c)
    }

    /// Live rows selected by `selector` (validated first); `None` when nothing can match.
    pub(crate) fn for_selector(t: &Tables, selector: &DeleteSelector) -> Option<Self> {
        let mut c = Self::live();
        if !selector.hashes.is_empty() {
            c.and(
                "m.content_hash IN (SELECT value FROM json_each(?))",
                [Param::Text(json_strings(
                    selector.hashes.iter().map(|h| h.as_str()),
                ))],
            );
        }
        // `validate` refuses an empty tag list (and in SQL one would match no row).
        if let Some(tags) = &selector.tags {
            c.tags(t, tags);
        }
        if let Some(before) = selector.before {
            c.and(
                "m.created_at <= CAST(? AS REAL)",
                [Param::Text(epoch_text(before))],
            );
        }
        if let Some(after) = selector.after {
            c.and(
                "m.created_at >= CAST(? AS REAL)",
                [Param::Text(epoch_text(after))],
            );
        }
        Some(c)
    }
}

/// What a store writes into the row (content may be an R2 preview).
pub(crate) struct RowValues<'a> {
    /// The memory.
    pub memory: &'a Memory,
    /// The content column (the full content, or a preview when in R2).
    pub content: &'a str,
    /// Vectorize id.
    pub vector_id: &'a str,
    /// R2 key, when the content is there.
    pub r2_key: Option<&'a str>,
}

/// The link-table statements (store steps 2–4): they act only on the live row with this
/// hash whose `tags` column equals `csv` (and on nothing else), making its links exactly
/// its tags.
pub(crate) fn link_statements(t: &Tables, hash: &str, tags: &Tags) -> Vec<Statement> {
    let csv = tags.joined();
    let json = json_strings(tags.iter().map(String::as_str));
    let (m, tg, mt) = (&t.memories, &t.tags, &t.memory_tags);
    vec![
        Statement::new(format!(
            "INSERT OR IGNORE INTO {tg}(name) SELECT value FROM json_each(?1) \
             WHERE EXISTS (SELECT 1 FROM {m} WHERE content_hash = ?2 AND deleted_at IS NULL \
             AND tags IS ?3)"
        ))
        .bind(json.clone())
        .bind(hash)
        .bind(csv.clone())
        .idempotent(true),
        Statement::new(format!(
            "DELETE FROM {mt} WHERE memory_id = (SELECT id FROM {m} WHERE content_hash = ?1 \
             AND deleted_at IS NULL AND tags IS ?2) AND tag_id NOT IN \
             (SELECT id FROM {tg} WHERE name IN (SELECT value FROM json_each(?3)))"
        ))
        .bind(hash)
        .bind(csv.clone())
        .bind(json.clone())
        .idempotent(true),
        Statement::new(format!(
            "INSERT OR IGNORE INTO {mt}(memory_id, tag_id) SELECT m.id, t.id FROM {m} m \
             JOIN {tg} t ON t.name IN (SELECT value FROM json_each(?1)) \
             WHERE m.content_hash = ?2 AND m.deleted_at IS NULL AND m.tags IS ?3"
        ))
        .bind(json)
        .bind(hash)
        .bind(csv)
        .idempotent(true),
    ]
}

/// Statements [`store_statements`] sends per memory: the pre-state, the upsert, the three
/// link statements and the post-state. A store batch's results are read in strides of it.
pub(crate) const STATEMENTS_PER_MEMORY: usize = 6;

/// The [`STATEMENTS_PER_MEMORY`] statements of a store (see the crate design): pre-state,
/// upsert that revives a tombstone and leaves a live row alone, three link statements,
/// post-state.
pub(crate) fn store_statements(t: &Tables, v: &RowValues<'_>, columns: &str) -> Vec<Statement> {
    let m = &t.memories;
    let memory = v.memory;
    let hash = memory.content_hash().as_str();
    let (c, u) = (memory.created_at, memory.updated_at);
    let mut out = vec![
        Statement::new(format!(
            "SELECT id, deleted_at FROM {m} WHERE content_hash = ?"
        ))
        .bind(hash)
        .idempotent(true),
        Statement::new(format!(
            "INSERT INTO {m} (content_hash, content, memory_type, created_at, created_at_iso, \
             updated_at, updated_at_iso, metadata_json, vector_id, content_size, r2_key, tags, \
             deleted_at) VALUES (?1, ?2, NULLIF(?3, ''), ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
             NULLIF(?11, ''), ?12, NULL) \
             ON CONFLICT(content_hash) DO UPDATE SET content = excluded.content, \
             memory_type = excluded.memory_type, created_at = excluded.created_at, \
             created_at_iso = excluded.created_at_iso, updated_at = excluded.updated_at, \
             updated_at_iso = excluded.updated_at_iso, metadata_json = excluded.metadata_json, \
             vector_id = excluded.vector_id, content_size = excluded.content_size, \
             r2_key = excluded.r2_key, tags = excluded.tags, deleted_at = NULL \
             WHERE {m}.deleted_at IS NOT NULL"
        ))
        .bind(hash)
        .bind(v.content)
        .bind(memory.memory_type.clone().unwrap_or_default())
        .bind(epoch_text(c))
        .bind(c.to_iso())
        .bind(epoch_text(u))
        .bind(u.to_iso())
        .bind(memory.metadata.to_json_string())
        .bind(v.vector_id)
        .bind(Param::Integer(memory.content().len() as i64))
        .bind(v.r2_key.unwrap_or_default())
        .bind(memory.tags.joined())
        .idempotent(true),
    ];
    out.extend(link_statements(t, hash, &memory.tags));
    out.push(
        Statement::new(format!(
            "SELECT {columns} FROM {m} m WHERE m.content_hash = ?"
        ))
        .bind(hash)
        .idempotent(true),
    );
    debug_assert_eq!(out.len(), STATEMENTS_PER_MEMORY);
    out
}

/// Epoch-seconds text of now, for `deleted_at`.
pub(crate) fn now_text() -> String {
    epoch_text(Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_tag_filter_matches_nothing() {
        let t = Tables::new(None);
        let f = MemoryFilter::all().with_tags(TagFilter::any(Tags::empty()));
        assert_eq!(Conditions::for_filter(&t, &f), None);
    }

    #[test]
    fn filters_use_the_namespaced_tables_and_json_lists() {
        let t = Tables::new(Some("ns"));
        let f = MemoryFilter::all()
            .with_tags(TagFilter::all(Tags::parse("a,b").unwrap()))
            .with_memory_type("note");
        let c = Conditions::for_filter(&t, &f).unwrap();
        assert!(c.sql.contains("ns_memory_tags"), "{}", c.sql);
        assert_eq!(c.params.len(), 3);
        assert_eq!(c.params[0], Param::Text(r#"["a","b"]"#.into()));
        assert_eq!(c.params[1], Param::Integer(2));
    }

    #[test]
    fn store_statements_bind_within_d1_limits() {
        let t = Tables::new(None);
        let m = Memory::new("x")
            .unwrap()
            .with_tags(Tags::parse("a").unwrap());
        let v = RowValues {
            memory: &m,
            content: m.content(),
            vector_id: m.content_hash().as_str(),
            r2_key: None,
        };
        let s = store_statements(&t, &v, "m.id");
        assert_eq!(s.len(), 6);
        for st in &s {
            st.validate().unwrap();
            assert!(st.is_idempotent());
        }
    }
}
