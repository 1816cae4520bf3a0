//! The D1 schema: the Python MCP Memory Service's tables, so this backend can serve an
//! existing upstream deployment, plus one key/value table of our own.
//!
//! Upstream's tables (`memories`, `tags`, `memory_tags`) are created as upstream creates
//! them. Migrations only add what upstream tolerates: the `tags` and `deleted_at` columns
//! older deployments lack, and the `mcp_memory_meta` table recording the schema version and
//! the embedding model. A fresh D1 answers `PRAGMA table_info` with no rows; every step is
//! idempotent, so two processes starting at once cannot break each other.
//!
//! With a namespace, every table name carries it as a prefix (`ns_memories`…), so two
//! tenants on one database never share a row, a tag or a UNIQUE constraint.

/// Version of the schema this crate writes, recorded in the meta table.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// Meta keys.
pub(crate) mod meta_keys {
    /// Schema version.
    pub(crate) const SCHEMA_VERSION: &str = "schema_version";
    /// Embedding model id every vector was made with.
    pub(crate) const EMBEDDING_MODEL: &str = "embedding_model";
    /// Its dimensions.
    pub(crate) const EMBEDDING_DIMENSIONS: &str = "embedding_dimensions";
    /// This store's random identity, marking the vectors and R2 objects it writes (see
    /// [`crate::CloudflareStorage::store_id`]).
    pub(crate) const STORE_ID: &str = "store_id";
}

/// Table names, with the namespace prefix applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// Memories.
    pub memories: String,
    /// Tag names.
    pub tags: String,
    /// Memory ↔ tag links.
    pub memory_tags: String,
    /// Our key/value table.
    pub meta: String,
    prefix: String,
}

impl Tables {
    /// The tables of `namespace` (`None` = upstream's own table names). The namespace must
    /// already be validated (`[a-z0-9_]`, see [`crate::Namespace`]).
    #[must_use]
    pub fn new(namespace: Option<&str>) -> Self {
        let prefix = namespace.map(|n| format!("{n}_")).unwrap_or_default();
        Self {
            memories: format!("{prefix}memories"),
            tags: format!("{prefix}tags"),
            memory_tags: format!("{prefix}memory_tags"),
            meta: format!("{prefix}mcp_memory_meta"),
            prefix,
        }
    }

    /// `CREATE TABLE IF NOT EXISTS` and `CREATE INDEX IF NOT EXISTS` statements, in order,
    /// each safe to run again. Upstream's column list and types, exactly.
    #[must_use]
    pub fn create_statements(&self) -> Vec<String> {
        let Self {
            memories,
            tags,
            memory_tags,
            meta,
            prefix,
        } = self;
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {memories} (\
                 id INTEGER PRIMARY KEY AUTOINCREMENT, \
                 content_hash TEXT UNIQUE NOT NULL, \
                 content TEXT NOT NULL, \
                 memory_type TEXT, \
                 created_at REAL NOT NULL, \
                 created_at_iso TEXT NOT NULL, \
                 updated_at REAL, \
                 updated_at_iso TEXT, \
                 metadata_json TEXT, \
                 vector_id TEXT UNIQUE, \
                 content_size INTEGER DEFAULT 0, \
                 r2_key TEXT, \
                 tags TEXT, \
                 deleted_at REAL DEFAULT NULL)"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {tags} (\
                 id INTEGER PRIMARY KEY AUTOINCREMENT, \
                 name TEXT UNIQUE NOT NULL)"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {memory_tags} (\
                 memory_id INTEGER, \
                 tag_id INTEGER, \
                 PRIMARY KEY (memory_id, tag_id), \
                 FOREIGN KEY (memory_id) REFERENCES {memories}(id) ON DELETE CASCADE, \
                 FOREIGN KEY (tag_id) REFERENCES {tags}(id) ON DELETE CASCADE)"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS idx_{prefix}memories_content_hash ON {memories}(content_hash)"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS idx_{prefix}memories_created_at ON {memories}(created_at)"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS idx_{prefix}memories_vector_id ON {memories}(vector_id)"
            ),
            format!("CREATE INDEX IF NOT EXISTS idx_{prefix}tags_name ON {tags}(name)"),
            format!(
                "CREATE TABLE IF NOT EXISTS {meta} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            ),
        ]
    }

    /// The hybrid backend's projection guard: the log position of each memory's latest
    /// projection (see [`crate::CloudflareStorage::put_replicas`]).
    #[must_use]
    pub fn sync_projection(&self) -> String {
        format!("{}mcp_memory_sync_projection", self.prefix)
    }

    /// The index on `deleted_at`, created after the column is known to exist (older
    /// deployments get the column from [`Tables::missing_column_statements`] first).
    #[must_use]
    pub fn deleted_at_index(&self) -> String {
        format!(
            "CREATE INDEX IF NOT EXISTS idx_{p}memories_deleted_at ON {m}(deleted_at)",
            p = self.prefix,
            m = self.memories
        )
    }

    /// `PRAGMA table_info` of the memories table (a fresh database answers no rows).
    #[must_use]
    pub fn table_info(&self) -> String {
        format!("PRAGMA table_info({})", self.memories)
    }

    /// `ALTER TABLE … ADD COLUMN` for the columns older upstream deployments lack, given
    /// the column names the table has.
    #[must_use]
    pub fn missing_column_statements(&self, existing: &[String]) -> Vec<String> {
        let has = |name: &str| existing.iter().any(|c| c.eq_ignore_ascii_case(name));
        let mut out = Vec::new();
        if !has("tags") {
            out.push(format!(
                "ALTER TABLE {} ADD COLUMN tags TEXT",
                self.memories
            ));
        }
        if !has("deleted_at") {
            out.push(format!(
                "ALTER TABLE {} ADD COLUMN deleted_at REAL DEFAULT NULL",
                self.memories
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_names_without_namespace_and_prefixed_with_one() {
        let t = Tables::new(None);
        assert_eq!(
            (&*t.memories, &*t.tags, &*t.memory_tags, &*t.meta),
            ("memories", "tags", "memory_tags", "mcp_memory_meta")
        );
        let t = Tables::new(Some("team_a"));
        assert_eq!(t.memories, "team_a_memories");
        assert!(
            t.create_statements()
                .iter()
                .all(|s| !s.contains(" memories("))
        );
        assert!(t.deleted_at_index().contains("team_a_memories(deleted_at)"));
    }

    #[test]
    fn statements_run_twice_on_sqlite_and_migrations_add_only_missing_columns() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let t = Tables::new(None);
        // An older upstream deployment: no tags, no deleted_at.
        conn.execute_batch(
            "CREATE TABLE memories (id INTEGER PRIMARY KEY AUTOINCREMENT, content_hash TEXT UNIQUE NOT NULL, \
             content TEXT NOT NULL, memory_type TEXT, created_at REAL NOT NULL, created_at_iso TEXT NOT NULL, \
             updated_at REAL, updated_at_iso TEXT, metadata_json TEXT, vector_id TEXT UNIQUE, \
             content_size INTEGER DEFAULT 0, r2_key TEXT)",
        )
        .unwrap();
        for _ in 0..2 {
            for s in t.create_statements() {
                conn.execute_batch(&s).unwrap();
            }
            let cols: Vec<String> = conn
                .prepare(&t.table_info())
                .unwrap()
                .query_map([], |r| r.get::<_, String>(1))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            for s in t.missing_column_statements(&cols) {
                conn.execute_batch(&s).unwrap();
            }
            conn.execute_batch(&t.deleted_at_index()).unwrap();
        }
        let cols: Vec<String> = conn
            .prepare(&t.table_info())
            .unwrap()
            .query_map([], |r| r.get::<_, String>(1))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(cols.contains(&"tags".to_owned()) && cols.contains(&"deleted_at".to_owned()));
        assert!(t.missing_column_statements(&cols).is_empty());
    }
}
