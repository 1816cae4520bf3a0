//! `mcp-memory serve`, driven as an MCP client would: rmcp's client over stdio (the built
//! binary as a child process) and over streamable HTTP, on both backends: SQLite (temporary
//! database) and Cloudflare (the in-process emulator, whose Workers AI stand-in embeds with
//! the local MiniLM model).
//!
//! The tool-by-tool scenario and the table of bad calls are functions of a connected client
//! and the backend's name, run once per backend and transport.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;

use cloudflare_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ErrorCode};
use rmcp::service::ServiceError;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

mod support;
use support::{Client, http_client, http_command, mcp_memory_serve, start_http};

/// Where a server keeps its memories: a temporary directory (the SQLite database, or an
/// unused path on Cloudflare) and, for Cloudflare, the emulator serving the account.
struct Backend {
    name: &'static str,
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
    _emulator: Option<EmulatorHandle>,
}

impl Backend {
    fn sqlite() -> Self {
        Self {
            name: "sqlite",
            dir: tempfile::tempdir().unwrap(),
            env: Vec::new(),
            _emulator: None,
        }
    }

    /// Starts an emulator on this test's runtime (127.0.0.1, stopped on drop).
    async fn cloudflare() -> Self {
        let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
        let mut env = support::emulator_env(
            &emulator,
            "3f2a1b4c-5d6e-4f70-8192-a3b4c5d6e7f8",
            "mcp-test",
        );
        // The client paces itself to Cloudflare's 1200 requests per 5 minutes (one
        // every 250 ms); the emulator of one test is not shared, so no pacing.
        env.extend([
            ("MCP_MEMORY_STORAGE_BACKEND", "cloudflare".to_owned()),
            ("CLOUDFLARE_RATE_LIMIT", "0".to_owned()),
        ]);
        Self {
            name: "cloudflare",
            dir: tempfile::tempdir().unwrap(),
            env,
            _emulator: Some(emulator),
        }
    }

    fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("m.db")
    }

    /// `mcp-memory serve` (stdio) on this backend.
    fn stdio_command(&self) -> tokio::process::Command {
        let mut cmd = base_command(&self.db());
        cmd.envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        cmd
    }

    /// `mcp-memory serve --http --port 0` on this backend.
    fn http_command(&self) -> std::process::Command {
        let mut cmd = http_command(&self.db(), &[]);
        cmd.envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        cmd
    }

    /// Asserts that the SQLite backend wrote its database and the Cloudflare one did not.
    fn assert_storage_used(&self) {
        assert_eq!(
            self.db().exists(),
            self.name == "sqlite",
            "{}: the SQLite file exists only on the SQLite backend",
            self.name
        );
    }
}

fn base_command(db: &Path) -> tokio::process::Command {
    mcp_memory_serve(db)
}

async fn stdio_client(cmd: tokio::process::Command) -> Client {
    let (transport, _stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mcp-memory serve");
    ().serve(transport).await.expect("MCP handshake")
}

/// Calls a tool; returns (is_error, text).
async fn call(client: &Client, tool: &str, args: Value) -> (bool, String) {
    let Value::Object(map) = args else {
        panic!("arguments must be an object")
    };
    let result: CallToolResult = client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(map))
        .await
        .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"));
    let text = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n");
    (result.is_error == Some(true), text)
}

async fn ok(client: &Client, tool: &str, args: Value) -> Value {
    let (is_error, text) = call(client, tool, args.clone()).await;
    assert!(!is_error, "{tool} {args} failed: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{tool}: not JSON ({e}): {text}"))
}

async fn fails(client: &Client, tool: &str, args: Value) -> String {
    let (is_error, text) = call(client, tool, args.clone()).await;
    assert!(is_error, "{tool} {args} should fail, got {text}");
    text
}

/// A refused call's message: a tool result with `isError: true`, or a JSON-RPC
/// invalid-params error (what an unroutable call gets). Anything else fails the test.
async fn refused(client: &Client, tool: &str, args: Value) -> String {
    let Value::Object(map) = args.clone() else {
        panic!("arguments must be an object")
    };
    match client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(map))
        .await
    {
        Ok(result) => {
            let text = result
                .content
                .iter()
                .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                .collect::<Vec<_>>()
                .join("\n");
            assert_eq!(
                result.is_error,
                Some(true),
                "{tool} {args} should fail, got {text}"
            );
            text
        }
        Err(ServiceError::McpError(e)) => {
            assert_eq!(e.code, ErrorCode::INVALID_PARAMS, "{tool} {args}: {e:?}");
            e.message.into_owned()
        }
        Err(e) => panic!("{tool} {args}: the call broke instead of being refused: {e}"),
    }
}

/// The content hashes in a search (`results`) or list/tag search (`memories`) answer.
fn hashes(answer: &Value) -> BTreeSet<String> {
    let items = answer
        .get("results")
        .or_else(|| answer.get("memories"))
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no results or memories in {answer}"));
    items
        .iter()
        .map(|m| m["content_hash"].as_str().unwrap().to_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn hash_of(stored: &Value) -> String {
    let h = stored["content_hash"].as_str().unwrap().to_owned();
    assert_eq!(h.len(), 64, "{stored}");
    assert!(h.bytes().all(|b| b.is_ascii_hexdigit()), "{stored}");
    h
}

const ALL_TOOLS: [&str; 17] = [
    "memory_store",
    "memory_search",
    "memory_list",
    "memory_delete",
    "memory_update",
    "memory_cleanup",
    "memory_health",
    "memory_stats",
    "store_memory",
    "retrieve_memory",
    "recall_memory",
    "search_by_tag",
    "delete_memory",
    "delete_by_tag",
    "cleanup_duplicates",
    "update_memory_metadata",
    "check_database_health",
];

#[tokio::test]
async fn every_tool_is_listed_with_a_schema_and_a_description() {
    let dir = tempfile::tempdir().unwrap();
    let client = stdio_client(base_command(&dir.path().join("m.db"))).await;
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("mcp-memory")
    );

    let tools = client.list_all_tools().await.unwrap();
    for name in ALL_TOOLS {
        let tool = tools
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} is not listed"));
        assert!(
            tool.description.as_deref().is_some_and(|d| d.len() > 20),
            "{name} needs a description an assistant can follow"
        );
        assert_eq!(
            tool.input_schema.get("type"),
            Some(&json!("object")),
            "{name}"
        );
    }
    let schema = |name: &str| {
        serde_json::to_value(&*tools.iter().find(|t| t.name == name).unwrap().input_schema).unwrap()
    };
    let store = schema("memory_store");
    assert_eq!(store["required"], json!(["content"]));
    for field in ["content", "tags", "memory_type", "metadata"] {
        assert!(
            store["properties"].get(field).is_some(),
            "memory_store.{field}"
        );
    }
    let search = schema("memory_search").to_string();
    for field in [
        "query",
        "mode",
        "time_expr",
        "after",
        "before",
        "tag_match",
        "limit",
    ] {
        assert!(
            search.contains(&format!("\"{field}\"")),
            "memory_search.{field}: {search}"
        );
    }
    assert!(
        search.contains("exact") && search.contains("hybrid"),
        "{search}"
    );
    client.cancel().await.unwrap();
}

/// Records which tools a scenario called successfully, so it can prove it called them all.
struct Tools<'a> {
    client: &'a Client,
    called: Mutex<BTreeSet<String>>,
}

impl Tools<'_> {
    async fn ok(&self, tool: &str, args: Value) -> Value {
        let v = ok(self.client, tool, args).await;
        self.called.lock().unwrap().insert(tool.to_owned());
        v
    }

    /// Every memory in the store (one page of up to 100), by hash.
    async fn all(&self) -> BTreeSet<String> {
        hashes(&self.ok("memory_list", json!({"page_size": 100})).await)
    }

    /// One memory as `memory_list` shows it.
    async fn get(&self, hash: &str) -> Value {
        let listed = self.ok("memory_list", json!({"page_size": 100})).await;
        listed["memories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["content_hash"] == hash)
            .unwrap_or_else(|| panic!("{hash} not listed: {listed}"))
            .clone()
    }
}

/// Every tool and legacy alias, called with its result checked, on whatever backend and
/// transport `client` is connected to. `backend` is the name health and stats must report.
async fn tool_by_tool(client: &Client, backend: &str) {
    let t = Tools {
        client,
        called: Mutex::new(BTreeSet::new()),
    };

    // An empty store.
    for tool in ["memory_health", "check_database_health"] {
        let health = t.ok(tool, json!({})).await;
        assert_eq!(health["status"], "healthy", "{tool}");
        assert_eq!(health["backend"], backend, "{tool}");
        assert_eq!(health["total_memories"], 0, "{tool}");
        assert_eq!(health["embedding_dimensions"], 384, "{tool}");
    }

    // Stores, both names; a duplicate changes nothing.
    let cat = t
        .ok(
            "memory_store",
            json!({"content": "The cat sits on the mat.", "tags": ["Pets", "home"],
                   "memory_type": "note", "metadata": {"source": "test"}}),
        )
        .await;
    assert_eq!(cat["outcome"], "stored");
    let cat = hash_of(&cat);
    let rev = t
        .ok(
            "store_memory",
            json!({"content": "Quarterly revenue grew by twelve percent.",
                   "tags": "finance, report"}),
        )
        .await;
    assert_eq!(rev["outcome"], "stored");
    let rev = hash_of(&rev);
    let food = t
        .ok(
            "memory_store",
            json!({"content": "The budget for pet food is forty euros a month.",
                   "tags": "[\"pets\", \"finance\"]", "memory_type": "decision"}),
        )
        .await;
    let food = hash_of(&food);
    let dup = t
        .ok(
            "memory_store",
            json!({"content": "the cat sits on the mat.  ", "tags": "other"}),
        )
        .await;
    assert_eq!(dup["outcome"], "duplicate");
    assert_eq!(dup["content_hash"], cat.as_str());
    assert_eq!(
        t.all().await,
        set(&[&cat, &rev, &food]),
        "stored hashes are listed"
    );
    let cat_created = t.get(&cat).await["created_at"].clone();
    let food_created = t.get(&food).await["created_at"].clone();

    // Semantic, with the memory as stored.
    let hits = t
        .ok(
            "memory_search",
            json!({"query": "a kitten resting on a rug", "mode": "semantic", "limit": 2}),
        )
        .await;
    assert_eq!(hits["mode"], "semantic");
    assert_eq!(hits["count"], 2, "{hits}");
    let top = &hits["results"][0];
    assert_eq!(top["content_hash"], cat.as_str(), "{hits}");
    assert_eq!(top["content"], "The cat sits on the mat.");
    assert_eq!(top["tags"], json!(["pets", "home"]));
    assert_eq!(top["memory_type"], "note");
    assert_eq!(top["metadata"], json!({"source": "test"}));
    assert_eq!(top["created_at"], cat_created);
    // A memory is memory-core's record, as upstream renders one: each time as epoch
    // seconds and as ISO-8601, the two the same instant; no vector.
    let secs = top["created_at"]
        .as_f64()
        .expect("created_at is epoch seconds");
    let iso = top["created_at_iso"].as_str().expect("created_at_iso");
    assert!(iso.ends_with('Z'), "{top}");
    let parsed = chrono::DateTime::parse_from_rfc3339(iso).unwrap();
    assert!(
        (parsed.timestamp_micros() as f64 / 1e6 - secs).abs() < 1e-5,
        "{top}"
    );
    assert!(
        top["updated_at"].is_f64() && top["updated_at_iso"].is_string(),
        "{top}"
    );
    assert!(top.get("embedding").is_none(), "{top}");
    assert!(top["relevance_score"].as_f64().unwrap() > 0.2, "{hits}");
    assert!(
        top["relevance_score"].as_f64() >= hits["results"][1]["relevance_score"].as_f64(),
        "best first: {hits}"
    );

    // Hybrid (the default) says it ran a semantic search.
    let hybrid = t
        .ok(
            "memory_search",
            json!({"query": "quarterly revenue growth"}),
        )
        .await;
    assert_eq!(hybrid["mode"], "hybrid");
    assert_eq!(hybrid["search"], "semantic");
    assert!(
        hybrid["note"].as_str().unwrap().contains("semantic"),
        "{hybrid}"
    );
    assert_eq!(
        hybrid["results"][0]["content_hash"],
        rev.as_str(),
        "{hybrid}"
    );

    // Exact: case-insensitive substring, within the filters.
    let exact = t
        .ok("memory_search", json!({"query": "TWELVE", "mode": "exact"}))
        .await;
    assert_eq!(hashes(&exact), set(&[&rev]), "{exact}");
    assert_eq!(exact["results"][0]["relevance_score"], 1.0);
    let exact_the = t
        .ok("memory_search", json!({"query": "the ", "mode": "exact"}))
        .await;
    assert_eq!(hashes(&exact_the), set(&[&cat, &food]), "{exact_the}");
    let none = t
        .ok(
            "memory_search",
            json!({"query": "twelve", "mode": "exact", "tags": "pets"}),
        )
        .await;
    assert_eq!(none["count"], 0, "{none}");

    // Tags: any vs all give different sets; memory_type filters.
    let any = t
        .ok(
            "memory_search",
            json!({"query": "cat", "tags": ["pets", "finance"], "tag_match": "any"}),
        )
        .await;
    assert_eq!(hashes(&any), set(&[&cat, &rev, &food]), "{any}");
    let all = t
        .ok(
            "memory_search",
            json!({"query": "cat", "tags": ["pets", "finance"], "tag_match": "all"}),
        )
        .await;
    assert_eq!(hashes(&all), set(&[&food]), "{all}");
    let home = t
        .ok("memory_search", json!({"query": "cat", "tags": "home"}))
        .await;
    assert_eq!(hashes(&home), set(&[&cat]), "{home}");
    let decisions = t
        .ok(
            "memory_search",
            json!({"query": "money", "memory_type": "decision"}),
        )
        .await;
    assert_eq!(hashes(&decisions), set(&[&food]), "{decisions}");
    let listed_all = t
        .ok(
            "memory_list",
            json!({"tags": "pets,finance", "tag_match": "all"}),
        )
        .await;
    assert_eq!(listed_all["total"], 1);
    assert_eq!(hashes(&listed_all), set(&[&food]));
    let listed_any = t
        .ok("memory_list", json!({"tags": ["pets", "finance"]}))
        .await;
    assert_eq!(listed_any["total"], 3);

    // Time: a natural-language window, explicit bounds in each accepted form.
    let recent = t
        .ok("memory_search", json!({"time_expr": "last 7 days"}))
        .await;
    assert_eq!(recent["search"], "time");
    assert_eq!(hashes(&recent), set(&[&cat, &rev, &food]), "{recent}");
    let long_ago = t
        .ok("memory_search", json!({"time_expr": "2001-01-01"}))
        .await;
    assert_eq!(long_ago["count"], 0, "{long_ago}");
    let recent_cat = t
        .ok(
            "memory_search",
            json!({"query": "cat", "time_expr": "last 7 days", "limit": 3}),
        )
        .await;
    assert_eq!(recent_cat["count"], 3, "{recent_cat}");
    let past = t
        .ok(
            "memory_search",
            json!({"query": "cat", "before": "2001-01-01"}),
        )
        .await;
    assert_eq!(past["count"], 0, "{past}");
    let since = t
        .ok("memory_search", json!({"query": "cat", "after": 978307200}))
        .await;
    assert_eq!(since["count"], 3, "{since}");
    let window = t
        .ok(
            "memory_search",
            json!({"query": "cat", "after": "2001-01-01T00:00:00Z", "before": "2999-12-31"}),
        )
        .await;
    assert_eq!(window["count"], 3, "{window}");
    let future = t
        .ok(
            "memory_search",
            json!({"query": "cat", "after": "2999-01-01"}),
        )
        .await;
    assert_eq!(future["count"], 0, "{future}");

    // Legacy reads.
    let retrieved = t
        .ok(
            "retrieve_memory",
            json!({"query": "feline", "n_results": 1}),
        )
        .await;
    assert_eq!(hashes(&retrieved), set(&[&cat]), "{retrieved}");
    let recalled = t
        .ok(
            "recall_memory",
            json!({"query": "what did I note about revenue recently"}),
        )
        .await;
    assert_eq!(
        recalled["results"][0]["content_hash"],
        rev.as_str(),
        "{recalled}"
    );
    let old = t
        .ok("recall_memory", json!({"query": "revenue in january 2001"}))
        .await;
    assert_eq!(old["count"], 0, "{old}");
    let by_tag = t.ok("search_by_tag", json!({"tags": "home"})).await;
    assert_eq!(hashes(&by_tag), set(&[&cat]), "{by_tag}");
    let by_tags = t.ok("search_by_tag", json!({"tags": ["finance"]})).await;
    assert_eq!(hashes(&by_tags), set(&[&rev, &food]), "{by_tags}");

    // Paging: two pages, no overlap, together everything.
    let p1 = t
        .ok("memory_list", json!({"page": 1, "page_size": 2}))
        .await;
    assert_eq!(p1["total"], 3);
    assert_eq!(p1["has_more"], true);
    let p2 = t
        .ok("memory_list", json!({"page": 2, "page_size": 2}))
        .await;
    assert_eq!(p2["has_more"], false);
    let (h1, h2) = (hashes(&p1), hashes(&p2));
    assert_eq!((h1.len(), h2.len()), (2, 1));
    assert!(h1.is_disjoint(&h2));
    assert_eq!(&h1 | &h2, set(&[&cat, &rev, &food]));
    let typed = t.ok("memory_list", json!({"memory_type": "note"})).await;
    assert_eq!(hashes(&typed), set(&[&cat]));

    // Updates: tags replaced, type set, metadata merged; created_at kept unless asked.
    let updated = t
        .ok(
            "memory_update",
            json!({"content_hash": cat, "tags": "pets,animals", "memory_type": "observation",
                   "metadata": {"mood": "calm"}}),
        )
        .await;
    let m = &updated["memory"];
    assert_eq!(m["tags"], json!(["pets", "animals"]));
    assert_eq!(m["memory_type"], "observation");
    assert_eq!(m["metadata"], json!({"source": "test", "mood": "calm"}));
    assert_eq!(
        m["created_at"], cat_created,
        "preserve_timestamps defaults to true"
    );
    let stored = t.get(&cat).await;
    assert_eq!(stored["tags"], m["tags"], "the update is stored");
    assert_eq!(stored["metadata"], m["metadata"]);
    let legacy = t
        .ok(
            "update_memory_metadata",
            json!({"content_hash": rev, "updates": {"memory_type": "decision",
                   "tags": ["finance", "report", "q3"]}, "preserve_timestamps": true}),
        )
        .await;
    assert_eq!(legacy["memory"]["memory_type"], "decision");
    assert_eq!(legacy["memory"]["tags"], json!(["finance", "report", "q3"]));
    let restamped = t
        .ok(
            "memory_update",
            json!({"content_hash": food, "updates": {"tags": "pets,finance,budget"},
                   "preserve_timestamps": false}),
        )
        .await;
    assert_eq!(
        restamped["memory"]["tags"],
        json!(["pets", "finance", "budget"])
    );
    let new_created = restamped["memory"]["created_at"].as_f64().unwrap();
    assert!(new_created > food_created.as_f64().unwrap(), "{restamped}");
    let decisions = t
        .ok("memory_list", json!({"memory_type": "decision"}))
        .await;
    assert_eq!(hashes(&decisions), set(&[&rev, &food]));

    // Figures.
    let stats = t.ok("memory_stats", json!({})).await;
    assert_eq!(stats["backend"], backend);
    assert_eq!(stats["total_memories"], 3);
    assert_eq!(stats["memories_this_week"], 3);
    let top_tags = stats["top_tags"].as_array().unwrap();
    let count_of = |tag: &str| {
        top_tags
            .iter()
            .find(|t| t["tag"] == tag)
            .map(|t| t["count"].clone())
    };
    assert_eq!(count_of("pets"), Some(json!(2)), "{stats}");
    assert_eq!(count_of("q3"), Some(json!(1)), "{stats}");
    assert_eq!(count_of("home"), None, "replaced tags are gone: {stats}");
    for tool in ["memory_health", "check_database_health"] {
        let health = t.ok(tool, json!({})).await;
        assert_eq!(health["backend"], backend);
        assert_eq!(health["total_memories"], 3);
    }
    for tool in ["memory_cleanup", "cleanup_duplicates"] {
        let cleaned = t.ok(tool, json!({})).await;
        assert_eq!(cleaned["removed_count"], 0, "{tool}: {cleaned}");
        assert_eq!(cleaned["duplicate_groups"], 0, "{tool}: {cleaned}");
    }
    assert_eq!(t.all().await.len(), 3);

    // Deletes: dry runs change nothing.
    let dry = t
        .ok("memory_delete", json!({"tags": "animals", "dry_run": true}))
        .await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["would_delete"], json!([cat]));
    let dry_hash = t
        .ok(
            "memory_delete",
            json!({"content_hash": cat, "dry_run": true}),
        )
        .await;
    assert_eq!(dry_hash["would_delete"], json!([cat]));
    let dry_old = t
        .ok(
            "memory_delete",
            json!({"before": "2001-01-01", "dry_run": true}),
        )
        .await;
    assert_eq!(dry_old["count"], 0);
    let dry_window = t
        .ok(
            "memory_delete",
            json!({"after": 978307200, "before": "2999-12-31", "dry_run": true}),
        )
        .await;
    assert_eq!(dry_window["count"], 3);
    assert_eq!(
        t.all().await,
        set(&[&cat, &rev, &food]),
        "dry runs deleted nothing"
    );

    // ... real ones do.
    let gone = t.ok("memory_delete", json!({"content_hash": cat})).await;
    assert_eq!(gone["deleted"], json!([cat]));
    assert_eq!(gone["count"], 1);
    assert_eq!(t.all().await, set(&[&rev, &food]));
    let kitten = t
        .ok(
            "memory_search",
            json!({"query": "a kitten on a mat", "limit": 5}),
        )
        .await;
    assert!(
        !hashes(&kitten).contains(&cat),
        "deleted is not found: {kitten}"
    );
    let m1 = hash_of(
        &t.ok(
            "store_memory",
            json!({"content": "Standup at 9:30", "tags": "meetings"}),
        )
        .await,
    );
    let m2 = hash_of(
        &t.ok(
            "store_memory",
            json!({"content": "Retro on Friday", "tags": ["meetings", "team"]}),
        )
        .await,
    );
    let by_tag = t.ok("delete_by_tag", json!({"tag": "meetings"})).await;
    assert_eq!(by_tag["count"], 2);
    assert_eq!(
        by_tag["deleted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_owned())
            .collect::<BTreeSet<_>>(),
        set(&[&m1, &m2])
    );
    let budget = t
        .ok(
            "memory_delete",
            json!({"tags": ["finance", "budget"], "tag_match": "all"}),
        )
        .await;
    assert_eq!(budget["deleted"], json!([food]));
    let last = t.ok("delete_memory", json!({"content_hash": rev})).await;
    assert_eq!(last["count"], 1);
    assert!(t.all().await.is_empty());
    assert_eq!(t.ok("memory_health", json!({})).await["total_memories"], 0);

    // A deleted memory stored again comes back.
    let back = t
        .ok(
            "memory_store",
            json!({"content": "The cat sits on the mat."}),
        )
        .await;
    assert_eq!(back["outcome"], "revived", "{back}");
    assert_eq!(back["content_hash"], cat.as_str());
    assert_eq!(t.all().await, set(&[&cat]));

    let called = t.called.into_inner().unwrap();
    for tool in ALL_TOOLS {
        assert!(called.contains(tool), "the scenario never called {tool}");
    }
}

#[tokio::test]
async fn every_tool_on_sqlite_over_stdio() {
    let backend = Backend::sqlite();
    let client = stdio_client(backend.stdio_command()).await;
    tool_by_tool(&client, "sqlite").await;
    client.cancel().await.unwrap();
    backend.assert_storage_used();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_on_cloudflare_over_stdio() {
    let backend = Backend::cloudflare().await;
    let client = stdio_client(backend.stdio_command()).await;
    tool_by_tool(&client, "cloudflare").await;
    client.cancel().await.unwrap();
    backend.assert_storage_used();
}

#[tokio::test]
async fn every_tool_on_sqlite_over_http() {
    let backend = Backend::sqlite();
    let server = start_http(backend.http_command());
    let client = http_client(&server.url, None).await;
    tool_by_tool(&client, "sqlite").await;
    client.cancel().await.unwrap();
    backend.assert_storage_used();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_on_cloudflare_over_http() {
    let backend = Backend::cloudflare().await;
    let server = start_http(backend.http_command());
    let client = http_client(&server.url, None).await;
    tool_by_tool(&client, "cloudflare").await;
    client.cancel().await.unwrap();
    backend.assert_storage_used();
}

// ---- bad calls ----------------------------------------------------------------------------

/// Every memory as `memory_list` shows it (all fields), to prove bad calls changed nothing.
async fn snapshot(client: &Client) -> Value {
    let listed = ok(client, "memory_list", json!({"page_size": 100})).await;
    listed["memories"].clone()
}

/// Runs the table of bad calls: each is refused with a message holding every fragment, the
/// server answers a normal call after each, and the store is unchanged at the end.
async fn bad_calls(client: &Client, backend: &str) {
    let kept = ok(
        client,
        "memory_store",
        json!({"content": "keep me", "tags": ["a", "b"], "metadata": {"k": 1}}),
    )
    .await;
    let kept = hash_of(&kept);
    ok(
        client,
        "store_memory",
        json!({"content": "keep me too", "tags": "b"}),
    )
    .await;
    let before = snapshot(client).await;
    assert_eq!(before.as_array().unwrap().len(), 2);

    let unknown = "a".repeat(64);
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        // content
        ("memory_store", json!({}), vec!["`content`"]),
        ("store_memory", json!({"tags": "x"}), vec!["`content`"]),
        (
            "memory_store",
            json!({"content": "   "}),
            vec!["invalid argument `content`: must not be empty"],
        ),
        ("store_memory", json!({"content": ""}), vec!["content"]),
        (
            "memory_store",
            json!({"content": 42}),
            vec!["`content`", "42"],
        ),
        ("memory_store", json!({"content": null}), vec!["content"]),
        // tags
        (
            "memory_store",
            json!({"content": "x", "tags": 42}),
            vec!["`tags`", "42"],
        ),
        (
            "memory_store",
            json!({"content": "x", "tags": {"a": 1}}),
            vec!["`tags`", "list of strings"],
        ),
        (
            "memory_store",
            json!({"content": "x", "tags": [["a"], "b"]}),
            vec!["`tags`", "[[\"a\"]"],
        ),
        (
            "memory_store",
            json!({"content": "x", "tags": [1, 2]}),
            vec!["`tags`"],
        ),
        (
            "memory_store",
            json!({"content": "x", "tags": "[\"a\","}),
            vec!["tags", "malformed"],
        ),
        (
            "memory_store",
            json!({"content": "x", "tags": ["y".repeat(101)]}),
            vec!["tags", "limit"],
        ),
        (
            "memory_search",
            json!({"query": "q", "tags": true}),
            vec!["`tags`"],
        ),
        ("memory_list", json!({"tags": {"b": true}}), vec!["`tags`"]),
        ("memory_list", json!({"tags": []}), vec!["`tags`", "empty"]),
        ("memory_delete", json!({"tags": 7}), vec!["`tags`"]),
        ("search_by_tag", json!({"tags": 3}), vec!["`tags`"]),
        ("search_by_tag", json!({"tags": ""}), vec!["tag"]),
        ("delete_by_tag", json!({"tags": {"x": 1}}), vec!["`tags`"]),
        (
            "memory_update",
            json!({"content_hash": kept, "tags": [1]}),
            vec!["`tags`"],
        ),
        // metadata
        (
            "memory_store",
            json!({"content": "x", "metadata": [1]}),
            vec!["`metadata`", "JSON object"],
        ),
        (
            "store_memory",
            json!({"content": "x", "metadata": "source=x"}),
            vec!["`metadata`"],
        ),
        (
            "memory_update",
            json!({"content_hash": kept, "metadata": 5}),
            vec!["`metadata`"],
        ),
        (
            "update_memory_metadata",
            json!({"content_hash": kept, "updates": {"metadata": [1]}}),
            vec!["`metadata`"],
        ),
        // limits and pages
        (
            "memory_search",
            json!({"query": "q", "limit": 0}),
            vec!["`limit`", "1..=100"],
        ),
        (
            "memory_search",
            json!({"query": "q", "limit": 1000}),
            vec!["`limit`", "1..=100"],
        ),
        (
            "memory_search",
            json!({"query": "q", "limit": -1}),
            vec!["`limit`"],
        ),
        (
            "memory_search",
            json!({"query": "q", "limit": "ten"}),
            vec!["`limit`"],
        ),
        (
            "memory_search",
            json!({"query": "q", "limit": 2.5}),
            vec!["`limit`"],
        ),
        (
            "retrieve_memory",
            json!({"query": "q", "n_results": 0}),
            vec!["`n_results`"],
        ),
        (
            "recall_memory",
            json!({"query": "q", "n_results": 1000}),
            vec!["`n_results`"],
        ),
        ("memory_list", json!({"page": 0}), vec!["`page`"]),
        (
            "memory_list",
            json!({"page_size": 0}),
            vec!["`page_size`", "1..=100"],
        ),
        (
            "memory_list",
            json!({"page_size": 101}),
            vec!["`page_size`", "1..=100"],
        ),
        // modes
        (
            "memory_search",
            json!({"query": "q", "mode": "fuzzy"}),
            vec!["`mode`", "fuzzy"],
        ),
        (
            "memory_search",
            json!({"query": "q", "mode": 1}),
            vec!["`mode`"],
        ),
        (
            "memory_search",
            json!({"query": "q", "tags": "a", "tag_match": "some"}),
            vec!["`tag_match`", "some"],
        ),
        (
            "memory_list",
            json!({"tags": "a", "tag_match": "most"}),
            vec!["`tag_match`"],
        ),
        (
            "memory_delete",
            json!({"tags": "a", "tag_match": "every", "dry_run": true}),
            vec!["`tag_match`"],
        ),
        // queries and time
        ("memory_search", json!({}), vec!["query"]),
        ("memory_search", json!({"query": "  "}), vec!["query"]),
        ("retrieve_memory", json!({}), vec!["`query`"]),
        ("recall_memory", json!({"query": " "}), vec!["query"]),
        (
            "memory_search",
            json!({"query": "q", "time_expr": "when pigs fly"}),
            vec!["`time_expr`", "when pigs fly"],
        ),
        (
            "memory_search",
            json!({"time_expr": 7}),
            vec!["`time_expr`"],
        ),
        (
            "memory_search",
            json!({"query": "q", "after": "soon"}),
            vec!["`after`", "soon"],
        ),
        (
            "memory_search",
            json!({"query": "q", "before": true}),
            vec!["`before`"],
        ),
        (
            "memory_search",
            json!({"query": "q", "after": "2030-01-01", "before": "2020-01-01"}),
            vec!["`after`", "empty"],
        ),
        (
            "memory_search",
            json!({"time_expr": "january 2001", "after": "2020-01-01"}),
            vec!["`after`", "empty"],
        ),
        (
            "memory_delete",
            json!({"after": "2030-01-01", "before": "2020-01-01"}),
            vec!["`after`", "`before`"],
        ),
        (
            "memory_delete",
            json!({"before": "yesterday-ish"}),
            vec!["`before`"],
        ),
        (
            "memory_search",
            json!({"query": "q", "min_similarity": 2.0}),
            vec!["min_similarity"],
        ),
        // hashes
        (
            "memory_delete",
            json!({}),
            vec!["content_hash, tags, before or after"],
        ),
        (
            "memory_delete",
            json!({"content_hash": unknown}),
            vec!["not found", unknown.as_str()],
        ),
        (
            "memory_delete",
            json!({"content_hash": "zz"}),
            vec!["content_hash", "zz"],
        ),
        (
            "memory_delete",
            json!({"content_hash": 12}),
            vec!["`content_hash`"],
        ),
        (
            "memory_delete",
            json!({"content_hash": kept, "dry_run": "yes"}),
            vec!["`dry_run`"],
        ),
        (
            "delete_memory",
            json!({"content_hash": unknown}),
            vec!["not found"],
        ),
        ("delete_memory", json!({}), vec!["`content_hash`"]),
        (
            "delete_memory",
            json!({"content_hash": "xyz"}),
            vec!["content_hash"],
        ),
        ("delete_by_tag", json!({}), vec!["tag"]),
        ("delete_by_tag", json!({"tag": "  "}), vec!["tag"]),
        (
            "memory_update",
            json!({"content_hash": unknown, "tags": "x"}),
            vec!["not found", unknown.as_str()],
        ),
        (
            "memory_update",
            json!({"content_hash": kept}),
            vec!["nothing to change"],
        ),
        (
            "memory_update",
            json!({"content_hash": "zz", "tags": "x"}),
            vec!["content_hash"],
        ),
        (
            "memory_update",
            json!({"tags": "x"}),
            vec!["`content_hash`"],
        ),
        (
            "memory_update",
            json!({"content_hash": kept, "tags": "x", "preserve_timestamps": "no"}),
            vec!["`preserve_timestamps`"],
        ),
        (
            "update_memory_metadata",
            json!({"content_hash": kept}),
            vec!["`updates`"],
        ),
        (
            "update_memory_metadata",
            json!({"content_hash": kept, "updates": "tags=x"}),
            vec!["`updates`"],
        ),
        (
            "update_memory_metadata",
            json!({"content_hash": unknown, "updates": {"tags": "x"}}),
            vec!["not found"],
        ),
        // unknown tool
        (
            "no_such_tool",
            json!({}),
            vec!["tool not found", "no_such_tool", "memory_store"],
        ),
        ("memory_stor", json!({"content": "x"}), vec!["memory_stor`"]),
    ];
    for (tool, args, needles) in cases {
        let msg = refused(client, tool, args.clone()).await;
        for needle in needles {
            assert!(
                msg.contains(needle),
                "{backend}: {tool} {args}: {msg:?} should mention {needle:?}"
            );
        }
        // The server is still there and answers.
        let health = ok(client, "memory_health", json!({})).await;
        assert_eq!(
            health["total_memories"], 2,
            "{backend}: after {tool} {args}"
        );
    }

    // A normal call still works, and nothing stored changed.
    let found = ok(
        client,
        "memory_search",
        json!({"query": "KEEP ME", "mode": "exact", "tags": "a"}),
    )
    .await;
    assert_eq!(hashes(&found), set(&[&kept]));
    let stats = ok(client, "memory_stats", json!({})).await;
    assert_eq!(stats["backend"], backend);
    assert_eq!(stats["total_memories"], 2);
    assert_eq!(
        snapshot(client).await,
        before,
        "{backend}: bad calls changed the store"
    );
}

#[tokio::test]
async fn bad_calls_on_sqlite_are_refused_and_the_server_keeps_serving() {
    let backend = Backend::sqlite();
    let client = stdio_client(backend.stdio_command()).await;
    bad_calls(&client, "sqlite").await;
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calls_on_cloudflare_are_refused_and_the_server_keeps_serving() {
    let backend = Backend::cloudflare().await;
    let client = stdio_client(backend.stdio_command()).await;
    bad_calls(&client, "cloudflare").await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn bad_calls_over_http_are_refused_and_the_server_keeps_serving() {
    let backend = Backend::sqlite();
    let server = start_http(backend.http_command());
    let client = http_client(&server.url, None).await;
    bad_calls(&client, "sqlite").await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn initialize_and_non_embedding_tools_work_without_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = base_command(&dir.path().join("m.db"));
    cmd.env("MCP_MEMORY_MODEL_DIR", dir.path().join("no-model"));
    let client = stdio_client(cmd).await;
    assert_eq!(ok(&client, "memory_list", json!({})).await["total"], 0);
    ok(&client, "memory_health", json!({})).await;
    let err = fails(
        &client,
        "memory_store",
        json!({"content": "needs the model"}),
    )
    .await;
    assert!(
        err.contains("no-model") && err.contains("fetch-model"),
        "{err}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_store_that_cannot_open_is_a_tool_error_not_a_dead_server() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the database file should be.
    let client = stdio_client(base_command(dir.path())).await;
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), ALL_TOOLS.len());
    let err = fails(&client, "memory_list", json!({})).await;
    assert!(err.contains("memory store is unavailable"), "{err}");
    client.cancel().await.unwrap();
}

// ---- streamable HTTP ----------------------------------------------------------------------

/// A raw `initialize` POST; returns the status code.
async fn raw_post(url: &str, authorization: Option<&str>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{auth}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 64];
    let n = stream.read(&mut head).await.unwrap();
    let line = String::from_utf8_lossy(&head[..n]).to_string();
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {line:?}"))
}

#[tokio::test]
async fn streamable_http_serves_the_same_tools() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_http(http_command(&dir.path().join("m.db"), &[]));
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    let client = http_client(&server.url, None).await;
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), ALL_TOOLS.len());
    let stored = ok(
        &client,
        "memory_store",
        json!({"content": "over HTTP", "tags": "web"}),
    )
    .await;
    assert_eq!(stored["outcome"], "stored");
    let listed = ok(&client, "memory_list", json!({"tags": ["web"]})).await;
    assert_eq!(listed["total"], 1);
    let msg = fails(&client, "memory_search", json!({"query": "x", "limit": 0})).await;
    assert!(msg.contains("limit"), "{msg}");
    assert_eq!(
        ok(&client, "memory_health", json!({})).await["status"],
        "healthy"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn non_loopback_bind_without_a_key_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = http_command(&dir.path().join("m.db"), &["--host", "0.0.0.0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MCP_MEMORY_API_KEY") && err.contains("0.0.0.0"),
        "{err}"
    );
}

#[tokio::test]
async fn with_an_api_key_requests_need_the_bearer() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = http_command(&dir.path().join("m.db"), &["--host", "0.0.0.0"]);
    cmd.env("MCP_MEMORY_API_KEY", "s3cret-key");
    let server = start_http(cmd);
    let url = server.loopback_url();

    assert_eq!(raw_post(&url, None).await, 401);
    assert_eq!(raw_post(&url, Some("Bearer wrong")).await, 401);
    assert_eq!(raw_post(&url, Some("Basic s3cret-key")).await, 401);
    assert_eq!(raw_post(&url, Some("Bearer s3cret-key")).await, 200);

    let client = http_client(&url, Some("s3cret-key")).await;
    assert_eq!(ok(&client, "memory_list", json!({})).await["total"], 0);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn the_api_key_flag_beats_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = http_command(
        &dir.path().join("m.db"),
        &["--host", "0.0.0.0", "--api-key", "flag-key"],
    );
    cmd.env("MCP_MEMORY_API_KEY", "env-key");
    let server = start_http(cmd);
    let url = server.loopback_url();

    assert_eq!(raw_post(&url, Some("Bearer env-key")).await, 401);
    assert_eq!(raw_post(&url, Some("Bearer flag-key")).await, 200);
}
