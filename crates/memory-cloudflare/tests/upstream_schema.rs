//! `CloudflareStorage` reads a D1 database written by the Python MCP Memory Service: the
//! tables are created and filled by hand-written SQL in upstream's schema (sent through the
//! D1 client to the emulator), one row's full content is PUT into the emulator's R2 under
//! an upstream-style key, and then the store — initialised over the existing tables —
//! reads it all: `get_by_hash`, `list`, `search_by_tag`, the tombstone invisible, the R2
//! content transparent.

mod common;

use cloudflare_d1::Statement;
use cloudflare_r2::PutObject;
use common::{Setup, TestEnv};
use memory_core::{ContentHash, Memory, Tags, Timestamp};
use memory_storage::{ListQuery, MemoryFilter, MemoryStorage};

/// Upstream's tables, as its Cloudflare backend creates them (with the `tags` and
/// `deleted_at` columns of its later versions).
const UPSTREAM_SCHEMA: [&str; 5] = [
    "CREATE TABLE IF NOT EXISTS memories (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        content_hash TEXT UNIQUE NOT NULL,
        content TEXT NOT NULL,
        memory_type TEXT,
        created_at REAL NOT NULL,
        created_at_iso TEXT NOT NULL,
        updated_at REAL,
        updated_at_iso TEXT,
        metadata_json TEXT,
        vector_id TEXT UNIQUE,
        content_size INTEGER DEFAULT 0,
        r2_key TEXT,
        tags TEXT,
        deleted_at REAL DEFAULT NULL
    )",
    "CREATE TABLE IF NOT EXISTS tags (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT UNIQUE NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS memory_tags (
        memory_id INTEGER,
        tag_id INTEGER,
        PRIMARY KEY (memory_id, tag_id),
        FOREIGN KEY (memory_id) REFERENCES memories(id) ON DELETE CASCADE,
        FOREIGN KEY (tag_id) REFERENCES tags(id) ON DELETE CASCADE
    )",
    "CREATE INDEX IF NOT EXISTS idx_memories_content_hash ON memories(content_hash)",
    "CREATE INDEX IF NOT EXISTS idx_memories_created_at ON memories(created_at)",
];

/// One row as upstream writes it.
struct UpstreamRow {
    content: String,
    /// What the `content` column holds (a preview when the content is in R2).
    stored_content: String,
    tags: &'static [&'static str],
    /// Whether upstream's link tables carry the tags (older rows have only the column).
    linked: bool,
    memory_type: Option<&'static str>,
    metadata_json: &'static str,
    created_at: f64,
    updated_at: f64,
    r2_key: Option<String>,
    deleted_at: Option<f64>,
}

impl UpstreamRow {
    fn hash(&self) -> ContentHash {
        Memory::new(self.content.clone())
            .unwrap_or_else(|e| panic!("content: {e}"))
            .content_hash()
            .clone()
    }

    /// The statements writing this row and its tags.
    fn statements(&self) -> Vec<Statement> {
        let hash = self.hash();
        let iso = |secs: f64| {
            Timestamp::from_epoch_seconds(secs)
                .unwrap_or_else(|e| panic!("time: {e}"))
                .to_iso()
        };
        let mut out = vec![
            Statement::new(
                "INSERT INTO memories (content_hash, content, memory_type, created_at, \
                 created_at_iso, updated_at, updated_at_iso, metadata_json, vector_id, \
                 content_size, r2_key, tags, deleted_at) \
                 VALUES (?, ?, NULLIF(?, ''), ?, ?, ?, ?, ?, ?, ?, NULLIF(?, ''), ?, \
                 CAST(NULLIF(?, '') AS REAL))",
            )
            .bind(hash.as_str())
            .bind(self.stored_content.as_str())
            .bind(self.memory_type.unwrap_or(""))
            .bind(format!("{:.6}", self.created_at))
            .bind(iso(self.created_at))
            .bind(format!("{:.6}", self.updated_at))
            .bind(iso(self.updated_at))
            .bind(self.metadata_json)
            .bind(hash.as_str())
            .bind(self.content.len().to_string())
            .bind(self.r2_key.clone().unwrap_or_default())
            .bind(self.tags.join(","))
            .bind(
                self.deleted_at
                    .map(|d| format!("{d:.6}"))
                    .unwrap_or_default(),
            ),
        ];
        if self.linked {
            for tag in self.tags {
                out.push(Statement::new("INSERT OR IGNORE INTO tags (name) VALUES (?)").bind(*tag));
                out.push(
                    Statement::new(
                        "INSERT INTO memory_tags (memory_id, tag_id) \
                         SELECT m.id, t.id FROM memories m, tags t \
                         WHERE m.content_hash = ? AND t.name = ?",
                    )
                    .bind(hash.as_str())
                    .bind(*tag),
                );
            }
        }
        out
    }
}

fn timestamp(secs: f64) -> Timestamp {
    Timestamp::from_epoch_seconds(secs).unwrap_or_else(|e| panic!("time: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_by_upstream_are_read_back() {
    let env = TestEnv::start(Setup::direct()).await;
    let large = format!(
        "Quarterly architecture review. {}",
        "The ingestion tier keeps three replicas per region. ".repeat(40)
    );
    let r2_key = format!(
        "content/{}.txt",
        Memory::new(large.clone())
            .unwrap_or_else(|e| panic!("{e}"))
            .content_hash()
            .as_str()
    );
    let rows = [
        UpstreamRow {
            content: "Deploys go out on Tuesdays after the standup.".to_owned(),
            stored_content: "Deploys go out on Tuesdays after the standup.".to_owned(),
            tags: &["ops", "deploy"],
            linked: true,
            memory_type: Some("note"),
            metadata_json: r#"{"source":"upstream","priority":2}"#,
            created_at: 1_700_000_000.123_456,
            updated_at: 1_700_000_100.5,
            r2_key: None,
            deleted_at: None,
        },
        UpstreamRow {
            content: "An older row whose tags live only in the tags column.".to_owned(),
            stored_content: "An older row whose tags live only in the tags column.".to_owned(),
            tags: &["legacy"],
            linked: false,
            memory_type: None,
            metadata_json: "{}",
            created_at: 1_690_000_000.0,
            updated_at: 1_690_000_000.0,
            r2_key: None,
            deleted_at: None,
        },
        UpstreamRow {
            content: "A deleted memory about ops that must stay invisible.".to_owned(),
            stored_content: "A deleted memory about ops that must stay invisible.".to_owned(),
            tags: &["ops"],
            linked: true,
            memory_type: Some("note"),
            metadata_json: "{}",
            created_at: 1_710_000_000.0,
            updated_at: 1_710_000_000.0,
            r2_key: None,
            deleted_at: Some(1_710_000_500.0),
        },
        UpstreamRow {
            stored_content: large.chars().take(200).collect(),
            content: large.clone(),
            tags: &["ops", "review"],
            linked: true,
            memory_type: Some("document"),
            metadata_json: r#"{"pages":12}"#,
            created_at: 1_705_000_000.25,
            updated_at: 1_705_000_000.25,
            r2_key: Some(r2_key.clone()),
            deleted_at: None,
        },
    ];
    let [tuesday, legacy, deleted, review] = &rows;

    // Upstream's database, written by hand through the D1 client.
    let d1 = env.d1();
    d1.batch(
        UPSTREAM_SCHEMA
            .iter()
            .map(|s| Statement::new(*s))
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap_or_else(|e| panic!("creating upstream's tables: {e}"));
    for row in &rows {
        d1.batch(row.statements())
            .await
            .unwrap_or_else(|e| panic!("writing an upstream row: {e}"));
    }
    env.r2()
        .put_object(PutObject::new(r2_key.clone(), large.clone().into_bytes()))
        .await
        .unwrap_or_else(|e| panic!("putting the large content into R2: {e}"));

    let store = env.storage().await;

    // get_by_hash: every field of a plain row.
    let got = store
        .get_by_hash(&tuesday.hash())
        .await
        .unwrap_or_else(|e| panic!("get_by_hash: {e}"))
        .unwrap_or_else(|| panic!("the upstream row is found"));
    assert_eq!(got.content(), tuesday.content);
    let mut tags = got.tags.as_slice().to_vec();
    tags.sort();
    assert_eq!(tags, ["deploy", "ops"]);
    assert_eq!(got.memory_type.as_deref(), Some("note"));
    assert_eq!(
        got.metadata.get("source"),
        Some(&serde_json::json!("upstream"))
    );
    assert_eq!(got.metadata.get("priority"), Some(&serde_json::json!(2)));
    assert_eq!(got.created_at, timestamp(tuesday.created_at));
    assert_eq!(got.updated_at, timestamp(tuesday.updated_at));

    // A row with tags only in the column still shows them.
    let got = store
        .get_by_hash(&legacy.hash())
        .await
        .unwrap_or_else(|e| panic!("get_by_hash: {e}"))
        .unwrap_or_else(|| panic!("the legacy row is found"));
    assert_eq!(got.tags.as_slice(), ["legacy"]);
    assert_eq!(got.memory_type, None);

    // The R2-backed row: the full content, fetched transparently.
    let got = store
        .get_by_hash(&review.hash())
        .await
        .unwrap_or_else(|e| panic!("get_by_hash: {e}"))
        .unwrap_or_else(|| panic!("the R2-backed row is found"));
    assert_eq!(
        got.content(),
        large,
        "the content comes from R2, not the preview"
    );
    assert_eq!(got.content_hash(), &review.hash());

    // The tombstone is invisible.
    assert!(
        store
            .get_by_hash(&deleted.hash())
            .await
            .unwrap_or_else(|e| panic!("get_by_hash: {e}"))
            .is_none()
    );

    // list: the live rows, newest first.
    let listed = store
        .list(&ListQuery::all(MemoryFilter::all()))
        .await
        .unwrap_or_else(|e| panic!("list: {e}"));
    let hashes: Vec<ContentHash> = listed.iter().map(|m| m.content_hash().clone()).collect();
    assert_eq!(hashes, [review.hash(), tuesday.hash(), legacy.hash()]);
    assert_eq!(listed[0].content(), large);
    assert_eq!(
        store
            .count(&MemoryFilter::all())
            .await
            .unwrap_or_else(|e| panic!("count: {e}")),
        3
    );

    // search_by_tag over upstream's link tables: the tombstone tagged `ops` stays out.
    let ops = Tags::parse(vec!["ops".to_owned()]).unwrap_or_else(|e| panic!("{e}"));
    let found = store
        .search_by_tag(&ops)
        .await
        .unwrap_or_else(|e| panic!("search_by_tag: {e}"));
    let hashes: Vec<ContentHash> = found.iter().map(|m| m.content_hash().clone()).collect();
    assert_eq!(hashes, [review.hash(), tuesday.hash()]);
    assert_eq!(found[0].content(), large);

    // Tag counts over live memories only.
    let all_tags = store
        .get_all_tags()
        .await
        .unwrap_or_else(|e| panic!("get_all_tags: {e}"));
    let ops_count = all_tags.iter().find(|t| t.tag == "ops").map(|t| t.count);
    assert_eq!(ops_count, Some(2), "{all_tags:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_migrates_an_older_upstream_table_without_losing_rows() {
    let env = TestEnv::start(Setup::direct()).await;
    let d1 = env.d1();
    // The oldest upstream schema: no `tags`, no `deleted_at`.
    let old = UPSTREAM_SCHEMA[0].replace(
        "r2_key TEXT,\n        tags TEXT,\n        deleted_at REAL DEFAULT NULL",
        "r2_key TEXT",
    );
    assert!(!old.contains("deleted_at"), "{old}");
    let mut statements = vec![Statement::new(old)];
    statements.extend(UPSTREAM_SCHEMA[1..].iter().map(|s| Statement::new(*s)));
    d1.batch(statements)
        .await
        .unwrap_or_else(|e| panic!("creating upstream's old tables: {e}"));
    let content = "A memory from before soft deletes existed.";
    let hash = Memory::new(content)
        .unwrap_or_else(|e| panic!("{e}"))
        .content_hash()
        .clone();
    d1.query(
        Statement::new(
            "INSERT INTO memories (content_hash, content, created_at, created_at_iso, \
             vector_id, content_size) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(hash.as_str())
        .bind(content)
        .bind("1700000000.0")
        .bind("2023-11-14T22:13:20Z")
        .bind(hash.as_str())
        .bind(content.len().to_string()),
    )
    .await
    .unwrap_or_else(|e| panic!("writing an old row: {e}"));

    let store = env.storage().await;

    let got = store
        .get_by_hash(&hash)
        .await
        .unwrap_or_else(|e| panic!("get_by_hash: {e}"))
        .unwrap_or_else(|| panic!("the old row is found"));
    assert_eq!(got.content(), content);
    assert!(got.tags.is_empty());
    assert_eq!(got.created_at, timestamp(1_700_000_000.0));
    // The migration added `deleted_at`, so deleting works.
    store
        .delete(&hash)
        .await
        .unwrap_or_else(|e| panic!("delete after migrating: {e}"));
    assert!(
        store
            .get_by_hash(&hash)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none()
    );
}
