//! The bad-input corpus (`tests/bad_input/cases.json`): loading it, expanding its value
//! generators, and the expectations of each case on each surface.
//!
//! Shared by the test targets that run the corpus (`#[path]`-included, so this file is not a
//! test target of its own): the library surface (memory-sqlite, memory-cloudflare) and the
//! CLI and MCP surfaces (memory-server). Adding a case is adding an entry to the JSON file.

#![allow(dead_code)]

use serde_json::{Map, Value};

/// The corpus file, relative to the workspace root.
pub const CORPUS: &str = "tests/bad_input/cases.json";

/// Every category the issues name (7: the first thirteen; 12: the rest); each must have at
/// least one case.
pub const CATEGORIES: [&str; 17] = [
    "empty content",
    "whitespace content",
    "huge content",
    "invalid UTF-8",
    "NUL bytes",
    "SQL-looking tags",
    "10k tags",
    "malformed JSON metadata",
    "metadata over Vectorize's 10 KiB",
    "NaN/Infinity",
    "wrong-dimension vectors",
    "absurd time expressions",
    "negative or enormous limits",
    "invisible content",
    "forged content hash",
    "reserved metadata",
    "unbounded input",
];

/// One entry of the corpus.
#[derive(Debug, Clone)]
pub struct Case {
    /// Unique, stable id (used in failure messages).
    pub id: String,
    /// One of [`CATEGORIES`] or "unknown hashes".
    pub category: String,
    /// What the case is about.
    pub description: String,
    raw: Map<String, Value>,
}

impl Case {
    /// The input for `surface` (`library`, `cli`, `mcp`), if the case applies to it.
    pub fn input(&self, surface: &str) -> Option<&Value> {
        self.raw.get(surface)
    }

    /// The expectation on `surface`: the common `expect`, overridden key by key by the
    /// case's `<surface>_expect` and then by the surface input's own `expect`.
    pub fn expect(&self, surface: &str) -> Map<String, Value> {
        let mut out = self
            .raw
            .get("expect")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let overrides = [
            self.raw.get(&format!("{surface}_expect")),
            self.input(surface).and_then(|i| i.get("expect")),
        ];
        for o in overrides.into_iter().flatten() {
            if let Some(o) = o.as_object() {
                for (k, v) in o {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        out
    }

    /// The message fragments the error must contain on `surface`.
    pub fn fragments(&self, surface: &str) -> Vec<String> {
        self.expect(surface)
            .get("fragments")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|f| f.as_str().expect("fragments are strings").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The expected kind on `surface` (`ok`, `any`, or an error kind); `error` if unset.
    pub fn kind(&self, surface: &str) -> String {
        self.expect(surface)
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("error")
            .to_owned()
    }

    /// `"<id> (<category>): <description>"`, for failure messages.
    pub fn label(&self) -> String {
        format!("{} ({}): {}", self.id, self.category, self.description)
    }
}

/// The corpus: its seed memories and its cases.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Memories every run stores first (content, tags, memory_type, metadata).
    pub seeds: Vec<Value>,
    /// The cases, in file order.
    pub cases: Vec<Case>,
}

impl Corpus {
    /// Reads the corpus; `manifest_dir` is the including crate's `CARGO_MANIFEST_DIR`.
    pub fn load(manifest_dir: &str) -> Corpus {
        let path = std::path::Path::new(manifest_dir)
            .join("../..")
            .join(CORPUS);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading the corpus {}: {e}", path.display()));
        let doc: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
        let seeds = doc["seeds"].as_array().expect("seeds").clone();
        let mut ids = std::collections::BTreeSet::new();
        let cases = doc["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .map(|c| {
                let raw = c.as_object().expect("a case is an object").clone();
                let s = |k: &str| {
                    raw.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_else(|| panic!("case {c}: `{k}` is required"))
                        .to_owned()
                };
                let case = Case {
                    id: s("id"),
                    category: s("category"),
                    description: s("description"),
                    raw,
                };
                assert!(ids.insert(case.id.clone()), "duplicate case id {}", case.id);
                assert!(
                    ["library", "cli", "mcp"]
                        .iter()
                        .any(|s| case.input(s).is_some()),
                    "case {} applies to no surface",
                    case.id
                );
                case
            })
            .collect();
        Corpus { seeds, cases }
    }

    /// The cases that apply to `surface`.
    pub fn on(&self, surface: &str) -> impl Iterator<Item = &Case> {
        let surface = surface.to_owned();
        self.cases
            .iter()
            .filter(move |c| c.input(&surface).is_some())
    }
}

/// Expands the value generators in `v` (see the corpus's `about`). `hook` handles the
/// surface-specific ones (`$seed_hash`, `$file`, `$vector`): given the generator's name and
/// argument it returns the replacement, or `None` to leave the generator unknown (a panic).
pub fn expand(v: &Value, hook: &mut dyn FnMut(&str, &Value) -> Option<Value>) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(|i| expand(i, hook)).collect()),
        Value::Object(map) => {
            if let Some((name, arg)) = map.iter().find(|(k, _)| k.starts_with('$')) {
                return match name.as_str() {
                    "$repeat" => {
                        let s = arg.as_str().expect("$repeat takes a string");
                        let n = map["times"].as_u64().expect("$repeat needs times") as usize;
                        Value::String(s.repeat(n))
                    }
                    "$join" => Value::String(tag_list(arg).join(",")),
                    "$list" => Value::Array(tag_list(arg).into_iter().map(Value::String).collect()),
                    other => hook(other, arg)
                        .unwrap_or_else(|| panic!("unknown generator {other} in {v}")),
                };
            }
            Value::Object(
                map.iter()
                    .map(|(k, x)| (k.clone(), expand(x, hook)))
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

/// `{"prefix": p, "count": n, "pad": width?}`: `p0, p1, ...`, each padded with `x` to `width`.
fn tag_list(arg: &Value) -> Vec<String> {
    let prefix = arg["prefix"].as_str().unwrap_or("t");
    let count = arg["count"].as_u64().expect("count") as usize;
    let pad = arg.get("pad").and_then(Value::as_u64).unwrap_or(0) as usize;
    (0..count)
        .map(|i| {
            let mut t = format!("{prefix}{i}");
            while t.chars().count() < pad {
                t.push('x');
            }
            t
        })
        .collect()
}

/// The bytes a `$file` generator describes: `text`, `bytes` or `repeat` × `times`, then
/// optional `then_bytes`.
pub fn file_bytes(arg: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(t) = arg.get("text").and_then(Value::as_str) {
        out.extend_from_slice(t.as_bytes());
    }
    if let Some(b) = arg.get("bytes").and_then(Value::as_array) {
        out.extend(b.iter().map(|x| x.as_u64().expect("a byte") as u8));
    }
    if let Some(r) = arg.get("repeat").and_then(Value::as_str) {
        let n = arg["times"].as_u64().expect("times") as usize;
        out.extend_from_slice(r.repeat(n).as_bytes());
    }
    if let Some(b) = arg.get("then_bytes").and_then(Value::as_array) {
        out.extend(b.iter().map(|x| x.as_u64().expect("a byte") as u8));
    }
    out
}

/// A number from the corpus, where the strings `NaN`, `inf` and `-inf` stand for what JSON
/// cannot hold.
pub fn number(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().expect("a number"),
        Value::String(s) => match s.as_str() {
            "NaN" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {other}")),
        },
        other => panic!("not a number: {other}"),
    }
}

/// The f32 vector a `$vector` generator describes: `dims` values of `fill`, with the
/// entries of `at` (index → number) replaced.
pub fn vector(arg: &Value) -> Vec<f32> {
    let dims = arg["dims"].as_u64().expect("dims") as usize;
    let fill = arg.get("fill").map_or(0.05, number) as f32;
    let mut v = vec![fill; dims];
    if let Some(at) = arg.get("at").and_then(Value::as_object) {
        for (i, x) in at {
            v[i.parse::<usize>().expect("an index")] = number(x) as f32;
        }
    }
    v
}

/// Whether `message` contains every fragment (case-insensitive); the missing ones otherwise.
pub fn missing_fragments(message: &str, fragments: &[String]) -> Vec<String> {
    let lower = message.to_lowercase();
    fragments
        .iter()
        .filter(|f| !lower.contains(&f.to_lowercase()))
        .cloned()
        .collect()
}

/// A short digest of a canonical text (for reports; comparisons use the full text).
pub fn digest(text: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    format!("{:016x} ({} bytes)", h.finish(), text.len())
}
