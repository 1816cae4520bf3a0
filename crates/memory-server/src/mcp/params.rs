//! Tool arguments: their JSON schemas (what the assistant sees) and their conversion into the
//! storage types, with every validation failure naming the argument to fix.
//!
//! Parameter names follow the Python MCP Memory Service (`content`, `tags`, `memory_type`,
//! `metadata`, `query`, `mode`, `time_expr`, `after`, `before`, `limit`, `page`,
//! `page_size`, `content_hash`, `dry_run`, `updates`, `preserve_timestamps`, `n_results`).

use chrono::{DateTime, Utc};
use memory_core::{Metadata, TagInput, Tags, TimeRange, Timestamp, try_parse_time_expression};
use memory_storage::{MemoryUpdate, TagFilter, TagMatch};
use rmcp::schemars::JsonSchema;
use serde::Deserialize;

/// Most results a search may return, and most memories one list page may hold.
pub const MAX_TOOL_RESULTS: usize = 100;

/// A failed argument check: `"<argument>: <what is wrong and what is allowed>"`.
#[derive(Debug)]
pub struct ArgError(pub String);

impl ArgError {
    /// An error about `field`. A reason that already starts with `"<field>: "` (as
    /// `memory_core`'s validation errors do) is not prefixed twice.
    pub fn new(field: &str, reason: impl std::fmt::Display) -> Self {
        let reason = reason.to_string();
        let reason = reason
            .strip_prefix(field)
            .and_then(|r| r.strip_prefix(": "))
            .unwrap_or(&reason);
        Self(format!("invalid argument `{field}`: {reason}"))
    }
}

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Field-naming deserializers for tool arguments.
///
/// serde's own message for a JSON value of the wrong shape (`invalid type: integer `42`,
/// expected a map`, `data did not match any variant of untagged enum TagsArg`) does not say
/// which argument is wrong. Every argument field goes through one of these instead, so the
/// message names it, says what it should be and shows (the start of) what was sent:
/// ``invalid argument `tags`: expected a list of strings ... or one comma-separated string,
/// got 42``. An error from a nested argument (inside `updates`) is passed through as is.
mod named {
    use serde::de::{DeserializeOwned, Error};
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    /// Longest excerpt of a rejected value shown in a message, in characters.
    const SHOWN_CHARS: usize = 60;

    /// The rejected value as compact JSON, cut at [`SHOWN_CHARS`].
    fn shown(v: &Value) -> String {
        let text = v.to_string();
        match text.char_indices().nth(SHOWN_CHARS) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text,
        }
    }

    /// Converts `v` into the field's type, or an error naming `field` and `expected`.
    pub(super) fn convert<T: DeserializeOwned, E: Error>(
        field: &str,
        expected: &str,
        v: Value,
    ) -> Result<T, E> {
        let got = shown(&v);
        serde_json::from_value(v).map_err(|e| {
            let inner = e.to_string();
            if inner.starts_with("invalid argument `") {
                E::custom(inner)
            } else {
                E::custom(format!(
                    "invalid argument `{field}`: expected {expected}, got {got}"
                ))
            }
        })
    }

    /// Reads the field's raw JSON value.
    pub(super) fn raw<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    macro_rules! fields {
        ($($name:ident: $expected:expr;)*) => {$(
            #[doc = concat!("Deserializers for the `", stringify!($name), "` argument.")]
            pub(super) mod $name {
                use super::*;

                /// A required (or defaulted) argument.
                #[allow(dead_code)]
                pub fn req<'de, D, T>(d: D) -> Result<T, D::Error>
                where
                    D: Deserializer<'de>,
                    T: DeserializeOwned,
                {
                    convert(stringify!($name), $expected, raw(d)?)
                }

                /// An optional argument; `null` is the same as leaving it out.
                #[allow(dead_code)]
                pub fn opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
                where
                    D: Deserializer<'de>,
                    T: DeserializeOwned,
                {
                    match raw(d)? {
                        Value::Null => Ok(None),
                        v => convert(stringify!($name), $expected, v).map(Some),
                    }
                }
            }
        )*};
    }

    const TAGS: &str = "a list of strings ([\"project-x\", \"decision\"]) or one comma-separated \
                        string (\"project-x, decision\")";
    const TIME: &str = "an ISO-8601 time (\"2024-05-01T12:00:00Z\"), a date (\"2024-05-01\") or \
                        Unix epoch seconds (1714564800)";
    const TEXT: &str = "a string";
    const METADATA: &str = "a JSON object ({\"source\": \"meeting\"})";
    const LIMIT: &str = "a whole number from 1 to 100";

    fields! {
        content: TEXT;
        query: TEXT;
        memory_type: TEXT;
        content_hash: "a content hash string (64 hex characters)";
        tag: TEXT;
        tags: TAGS;
        metadata: METADATA;
        mode: "\"semantic\", \"exact\" or \"hybrid\"";
        tag_match: "\"any\" or \"all\"";
        time_expr: "a string such as \"last week\" or \"yesterday\"";
        after: TIME;
        before: TIME;
        limit: LIMIT;
        n_results: LIMIT;
        page: "a whole number from 1";
        page_size: LIMIT;
        min_similarity: "a number from -1.0 to 1.0";
        dry_run: "true or false";
        preserve_timestamps: "true or false";
        updates: "an object with tags, memory_type and/or metadata";
    }
}

/// Tags: a list of strings, or one string (comma-separated, or a JSON array).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(untagged)]
pub enum TagsArg {
    /// `["project-x", "decision"]`.
    List(Vec<String>),
    /// `"project-x, decision"`.
    Text(String),
}

impl TagsArg {
    /// Normalised tags (trimmed, lower-cased, de-duplicated).
    pub fn parse(&self, field: &str) -> Result<Tags, ArgError> {
        let input = match self {
            Self::List(l) => TagInput::List(l.clone()),
            Self::Text(t) => TagInput::Text(t.clone()),
        };
        Tags::parse(input).map_err(|e| ArgError::new(field, e))
    }
}

/// A point in time: ISO-8601 (`2024-05-01T12:00:00Z`), a date (`2024-05-01`, UTC), or Unix
/// epoch seconds (`1714564800`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(untagged)]
pub enum TimeArg {
    /// Unix epoch seconds.
    Epoch(f64),
    /// ISO-8601 date-time or date, or epoch seconds as a string.
    Text(String),
}

pub use memory_core::timestamp::DayEdge;

impl TimeArg {
    /// The instant, or an error naming `field` (the shared parser,
    /// [`Timestamp::parse_point`], also behind the CLI's `--before`/`--after`).
    pub fn parse(&self, field: &'static str, edge: DayEdge) -> Result<Timestamp, ArgError> {
        match self {
            Self::Epoch(secs) => {
                Timestamp::from_epoch_seconds_for(field, *secs).map_err(|e| ArgError::new(field, e))
            }
            Self::Text(text) => {
                Timestamp::parse_point(field, text, edge).map_err(|e| ArgError::new(field, e))
            }
        }
    }
}

/// How several tags combine.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(rename_all = "lowercase")]
pub enum TagMatchArg {
    /// At least one of the tags (OR). The default.
    #[default]
    Any,
    /// Every one of the tags (AND).
    All,
}

impl From<TagMatchArg> for TagMatch {
    fn from(m: TagMatchArg) -> Self {
        match m {
            TagMatchArg::Any => TagMatch::Any,
            TagMatchArg::All => TagMatch::All,
        }
    }
}

/// Builds a tag filter; an empty tag list is refused (it would match nothing).
pub fn tag_filter(
    tags: Option<&TagsArg>,
    mode: Option<TagMatchArg>,
) -> Result<Option<TagFilter>, ArgError> {
    let Some(tags) = tags else {
        return Ok(None);
    };
    let tags = tags.parse("tags")?;
    TagFilter::requested(tags, mode.unwrap_or_default().into())
        .map(Some)
        .map_err(|e| match e {
            memory_storage::StorageError::InvalidInput { field, reason } => {
                ArgError::new(field, reason)
            }
            other => ArgError::new("tags", other),
        })
}

/// Checks a result count against `1..=max`, naming `field`.
pub fn check_count(field: &str, n: usize, max: usize) -> Result<usize, ArgError> {
    if n == 0 || n > max {
        return Err(ArgError::new(
            field,
            format!("{n} is outside the allowed range 1..={max}"),
        ));
    }
    Ok(n)
}

/// Intersects a natural-language time expression with explicit `after`/`before` bounds.
pub fn time_range(
    time_expr: Option<&str>,
    after: Option<&TimeArg>,
    before: Option<&TimeArg>,
    now: DateTime<Utc>,
) -> Result<Option<TimeRange>, ArgError> {
    let mut range: Option<TimeRange> = None;
    if let Some(expr) = time_expr.map(str::trim).filter(|e| !e.is_empty()) {
        range = Some(
            try_parse_time_expression(expr, now)
                .map_err(|e| ArgError::new("time_expr", e))?
                .ok_or_else(|| {
                    ArgError::new(
                        "time_expr",
                        format!(
                            "{expr:?} is not a time expression I understand; try \"yesterday\", \
                     \"last week\", \"3 days ago\", \"this month\", \"january 2024\", or use \
                     `after`/`before`"
                        ),
                    )
                })?,
        );
    }
    let after = after
        .map(|a| a.parse("after", DayEdge::Start))
        .transpose()?;
    let before = before
        .map(|b| b.parse("before", DayEdge::End))
        .transpose()?;
    if after.is_none() && before.is_none() {
        return Ok(range);
    }
    let min = Timestamp::from_epoch_seconds(-8.0e12).map_err(|e| ArgError::new("after", e))?;
    let max = Timestamp::from_epoch_seconds(8.0e12).map_err(|e| ArgError::new("before", e))?;
    let mut r = range.unwrap_or(TimeRange {
        start: min,
        end: max,
    });
    if let Some(a) = after {
        r.start = r.start.max(a);
    }
    if let Some(b) = before {
        r.end = r.end.min(b);
    }
    if r.start > r.end {
        return Err(ArgError::new(
            "after",
            format!(
                "the time window is empty: it starts at {} but ends at {}",
                r.start.to_iso(),
                r.end.to_iso()
            ),
        ));
    }
    Ok(Some(r))
}

/// `memory_store` / `store_memory`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct StoreParams {
    /// The text to remember. Required; must not be blank.
    #[serde(deserialize_with = "named::content::req")]
    pub content: String,
    /// Tags to file the memory under: a list (["project-x", "decision"]) or one
    /// comma-separated string ("project-x, decision"). Tags are lower-cased.
    #[serde(default, deserialize_with = "named::tags::opt")]
    pub tags: Option<TagsArg>,
    /// Kind of memory, e.g. "note", "decision", "task", "reference", "fact".
    #[serde(default, deserialize_with = "named::memory_type::opt")]
    pub memory_type: Option<String>,
    /// Extra key/value data as a JSON object (e.g. {"source": "meeting"}).
    #[serde(default, deserialize_with = "named::metadata::opt")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Search strategy of `memory_search`.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[schemars(crate = "rmcp::schemars")]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Semantic search where a keyword index exists; on this server (no keyword index) it
    /// runs the semantic search and says so in the result. The default.
    #[default]
    Hybrid,
    /// By meaning (embedding similarity).
    Semantic,
    /// Case-insensitive substring match on the content.
    Exact,
}

impl SearchMode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hybrid => "hybrid",
            Self::Semantic => "semantic",
            Self::Exact => "exact",
        }
    }
}

/// `memory_search`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct SearchParams {
    /// What to look for. Required unless a time filter (time_expr/after/before) is given, in
    /// which case the newest memories of that window are returned.
    #[serde(default, deserialize_with = "named::query::opt")]
    pub query: Option<String>,
    /// "semantic" (by meaning), "exact" (content contains the query, case-insensitive) or
    /// "hybrid" (default; semantic here, as this server has no keyword index).
    #[serde(default, deserialize_with = "named::mode::opt")]
    pub mode: Option<SearchMode>,
    /// Natural-language time window for when the memory was created: "yesterday",
    /// "last week", "3 days ago", "this month", "january 2024".
    #[serde(default, deserialize_with = "named::time_expr::opt")]
    pub time_expr: Option<String>,
    /// Only memories created at or after this time (ISO-8601, YYYY-MM-DD, or epoch seconds).
    #[serde(default, deserialize_with = "named::after::opt")]
    pub after: Option<TimeArg>,
    /// Only memories created at or before this time (ISO-8601, YYYY-MM-DD, or epoch seconds).
    #[serde(default, deserialize_with = "named::before::opt")]
    pub before: Option<TimeArg>,
    /// Only memories with these tags (list or comma-separated string).
    #[serde(default, deserialize_with = "named::tags::opt")]
    pub tags: Option<TagsArg>,
    /// "any" (default: at least one tag) or "all" (every tag).
    #[serde(default, deserialize_with = "named::tag_match::opt")]
    pub tag_match: Option<TagMatchArg>,
    /// Only memories of this type.
    #[serde(default, deserialize_with = "named::memory_type::opt")]
    pub memory_type: Option<String>,
    /// Most results to return, 1-100 (default 10).
    #[serde(default, deserialize_with = "named::limit::opt")]
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<usize>,
    /// Semantic modes only: drop results with a cosine similarity below this (-1.0 to 1.0).
    #[serde(default, deserialize_with = "named::min_similarity::opt")]
    pub min_similarity: Option<f32>,
}

/// `memory_list`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct ListParams {
    /// Page number, from 1 (default 1).
    #[serde(default, deserialize_with = "named::page::opt")]
    #[schemars(range(min = 1))]
    pub page: Option<usize>,
    /// Memories per page, 1-100 (default 20).
    #[serde(default, deserialize_with = "named::page_size::opt")]
    #[schemars(range(min = 1, max = 100))]
    pub page_size: Option<usize>,
    /// Only memories with these tags (list or comma-separated string).
    #[serde(default, deserialize_with = "named::tags::opt")]
    pub tags: Option<TagsArg>,
    /// "any" (default) or "all".
    #[serde(default, deserialize_with = "named::tag_match::opt")]
    pub tag_match: Option<TagMatchArg>,
    /// Only memories of this type.
    #[serde(default, deserialize_with = "named::memory_type::opt")]
    pub memory_type: Option<String>,
}

/// `memory_delete`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct DeleteParams {
    /// Delete the memory with this content hash (64 hex characters).
    #[serde(default, deserialize_with = "named::content_hash::opt")]
    pub content_hash: Option<String>,
    /// Delete memories with these tags (list or comma-separated string).
    #[serde(default, deserialize_with = "named::tags::opt")]
    pub tags: Option<TagsArg>,
    /// "any" (default: memories with at least one of the tags) or "all".
    #[serde(default, deserialize_with = "named::tag_match::opt")]
    pub tag_match: Option<TagMatchArg>,
    /// Only memories created at or before this time (ISO-8601, YYYY-MM-DD, or epoch seconds).
    #[serde(default, deserialize_with = "named::before::opt")]
    pub before: Option<TimeArg>,
    /// Only memories created at or after this time (ISO-8601, YYYY-MM-DD, or epoch seconds).
    #[serde(default, deserialize_with = "named::after::opt")]
    pub after: Option<TimeArg>,
    /// Only report what would be deleted (default false). Use it before a wide delete.
    #[serde(default, deserialize_with = "named::dry_run::req")]
    pub dry_run: bool,
}

/// The fields `memory_update` / `update_memory_metadata` may change.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct UpdateFields {
    /// New tags, replacing the old ones (list or comma-separated string).
    #[serde(default, deserialize_with = "named::tags::opt")]
    pub tags: Option<TagsArg>,
    /// New memory type; "" clears it.
    #[serde(default, deserialize_with = "named::memory_type::opt")]
    pub memory_type: Option<String>,
    /// Metadata keys to set (merged: each key replaces the same key, others stay).
    #[serde(default, deserialize_with = "named::metadata::opt")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

impl UpdateFields {
    /// Merges `other` into `self` (fields of `self` win).
    pub fn or(self, other: UpdateFields) -> UpdateFields {
        UpdateFields {
            tags: self.tags.or(other.tags),
            memory_type: self.memory_type.or(other.memory_type),
            metadata: self.metadata.or(other.metadata),
        }
    }

    /// The storage update; an update that changes nothing is refused.
    pub fn into_update(self) -> Result<MemoryUpdate, ArgError> {
        let tags = self.tags.map(|t| t.parse("tags")).transpose()?;
        let memory_type = self
            .memory_type
            .map(|t| {
                memory_core::memory::normalise_memory_type(&t)
                    .map_err(|e| ArgError::new("memory_type", e))
            })
            .transpose()?;
        let metadata = self
            .metadata
            .map(|m| {
                Metadata::from_value(serde_json::Value::Object(m))
                    .map_err(|e| ArgError::new("metadata", e))
            })
            .transpose()?;
        let update = MemoryUpdate {
            tags,
            memory_type,
            metadata,
            created_at: None,
        };
        if update.is_empty() {
            return Err(ArgError::new(
                "updates",
                "nothing to change; give tags, memory_type or metadata",
            ));
        }
        Ok(update)
    }
}

/// `memory_update`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct UpdateParams {
    /// Content hash of the memory to change.
    #[serde(deserialize_with = "named::content_hash::req")]
    pub content_hash: String,
    /// New tags, replacing the old ones (list or comma-separated string).
    #[serde(default, deserialize_with = "named::tags::opt")]
    pub tags: Option<TagsArg>,
    /// New memory type; "" clears it.
    #[serde(default, deserialize_with = "named::memory_type::opt")]
    pub memory_type: Option<String>,
    /// Metadata keys to set (merged into the existing metadata).
    #[serde(default, deserialize_with = "named::metadata::opt")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// The same fields as an object ({"tags": ..., "memory_type": ..., "metadata": ...}), as
    /// upstream's update_memory_metadata takes them. Top-level fields win.
    #[serde(default, deserialize_with = "named::updates::opt")]
    pub updates: Option<UpdateFields>,
    /// Keep the creation time (default true); false makes the memory count as created now.
    #[serde(default, deserialize_with = "named::preserve_timestamps::opt")]
    pub preserve_timestamps: Option<bool>,
}

/// `update_memory_metadata` (legacy).
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct LegacyUpdateParams {
    /// Content hash of the memory to change.
    #[serde(deserialize_with = "named::content_hash::req")]
    pub content_hash: String,
    /// Fields to change: {"tags": [...], "memory_type": "...", "metadata": {...}}.
    #[serde(deserialize_with = "named::updates::req")]
    pub updates: UpdateFields,
    /// Keep the creation time (default true).
    #[serde(default, deserialize_with = "named::preserve_timestamps::opt")]
    pub preserve_timestamps: Option<bool>,
}

/// `retrieve_memory` and `recall_memory` (legacy).
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct QueryParams {
    /// What to look for. For recall_memory it may hold a time expression
    /// ("what did we decide about the release last week").
    #[serde(deserialize_with = "named::query::req")]
    pub query: String,
    /// Most results to return, 1-100 (default 5).
    #[serde(default, deserialize_with = "named::n_results::opt")]
    #[schemars(range(min = 1, max = 100))]
    pub n_results: Option<usize>,
    /// retrieve_memory only: drop results with a cosine similarity below this (-1.0 to 1.0).
    #[serde(default, deserialize_with = "named::min_similarity::opt")]
    pub min_similarity: Option<f32>,
}

/// `search_by_tag` (legacy).
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct TagSearchParams {
    /// Tags to look for (list or comma-separated string); a memory matches with any of them.
    #[serde(deserialize_with = "named::tags::req")]
    pub tags: TagsArg,
}

/// `delete_memory` (legacy).
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct HashParams {
    /// Content hash of the memory (64 hex characters).
    #[serde(deserialize_with = "named::content_hash::req")]
    pub content_hash: String,
}

/// `delete_by_tag` (legacy).
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct DeleteByTagParams {
    /// One tag: every memory carrying it is deleted.
    #[serde(default, deserialize_with = "named::tag::opt")]
    pub tag: Option<String>,
    /// Several tags (list or comma-separated string): memories with any of them are deleted.
    #[serde(default, deserialize_with = "named::tags::opt")]
    pub tags: Option<TagsArg>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-06-15T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn time_args_accept_iso_dates_and_epochs() {
        let iso = TimeArg::Text("2024-05-01T00:00:00Z".into());
        let date = TimeArg::Text("2024-05-01".into());
        let epoch = TimeArg::Epoch(1_714_521_600.0);
        let epoch_text = TimeArg::Text("1714521600".into());
        let a = iso.parse("after", DayEdge::Start).unwrap();
        assert_eq!(a, date.parse("after", DayEdge::Start).unwrap());
        assert_eq!(a, epoch.parse("after", DayEdge::Start).unwrap());
        assert_eq!(a, epoch_text.parse("after", DayEdge::Start).unwrap());
        let end = date.parse("before", DayEdge::End).unwrap();
        assert_eq!(end.to_iso(), "2024-05-01T23:59:59.999999Z");
        let err = TimeArg::Text("soon".into())
            .parse("before", DayEdge::End)
            .unwrap_err();
        assert!(err.0.contains("`before`"), "{err}");
    }

    #[test]
    fn time_expr_and_bounds_intersect() {
        let after = TimeArg::Text("2024-06-12".into());
        let r = time_range(Some("this month"), Some(&after), None, now())
            .unwrap()
            .unwrap();
        assert_eq!(r.start.to_iso(), "2024-06-12T00:00:00.000000Z");
        assert!(time_range(Some("whenever-ish"), None, None, now()).is_err());
        assert!(time_range(None, None, None, now()).unwrap().is_none());
        let late = TimeArg::Text("2030-01-01".into());
        let early = TimeArg::Text("2020-01-01".into());
        assert!(time_range(None, Some(&late), Some(&early), now()).is_err());
    }

    #[test]
    fn counts_are_checked() {
        assert!(check_count("limit", 0, 100).is_err());
        assert!(
            check_count("limit", 1000, 100)
                .unwrap_err()
                .0
                .contains("1..=100")
        );
        assert_eq!(check_count("limit", 100, 100).unwrap(), 100);
    }

    #[test]
    fn wrong_json_types_name_the_argument() {
        use serde_json::json;
        let search = |v| {
            serde_json::from_value::<SearchParams>(v)
                .unwrap_err()
                .to_string()
        };
        let store = |v| {
            serde_json::from_value::<StoreParams>(v)
                .unwrap_err()
                .to_string()
        };
        let err = search(json!({"query": "q", "mode": "fuzzy"}));
        assert!(err.starts_with("invalid argument `mode`:"), "{err}");
        assert!(err.ends_with("got \"fuzzy\""), "{err}");
        let err = search(json!({"query": "q", "tag_match": 3}));
        assert!(err.starts_with("invalid argument `tag_match`:"), "{err}");
        let err = search(json!({"query": "q", "limit": -1}));
        assert!(err.starts_with("invalid argument `limit`:"), "{err}");
        let err = search(json!({"after": {"t": 1}}));
        assert!(err.starts_with("invalid argument `after`:"), "{err}");
        for tags in [json!(42), json!({"a": 1}), json!([["a"]])] {
            let err = store(json!({"content": "x", "tags": tags}));
            assert!(err.starts_with("invalid argument `tags`:"), "{err}");
        }
        let err = store(json!({"content": "x", "metadata": [1]}));
        assert!(
            err.contains("`metadata`") && err.contains("JSON object"),
            "{err}"
        );
        let err = store(json!({"content": "x", "metadata": "m".repeat(500)}));
        assert!(
            err.ends_with('…') && err.len() < 400,
            "long values are cut: {err}"
        );
        let err = serde_json::from_value::<LegacyUpdateParams>(
            json!({"content_hash": "h", "updates": {"metadata": 5}}),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("invalid argument `metadata`:"),
            "nested: {err}"
        );
    }

    #[test]
    fn null_is_the_same_as_leaving_an_argument_out() {
        let p: SearchParams = serde_json::from_value(serde_json::json!({
            "query": "q", "limit": null, "mode": null, "tags": null, "after": null
        }))
        .unwrap();
        assert!(p.limit.is_none() && p.mode.is_none() && p.tags.is_none() && p.after.is_none());
        let p: SearchParams =
            serde_json::from_value(serde_json::json!({"query": "q", "mode": "exact", "limit": 3}))
                .unwrap();
        assert_eq!((p.mode, p.limit), (Some(SearchMode::Exact), Some(3)));
    }

    #[test]
    fn arg_errors_name_the_field_once() {
        assert_eq!(
            ArgError::new("tags", "tags: too many").0,
            "invalid argument `tags`: too many"
        );
        assert_eq!(
            ArgError::new("tag", "tags: too many").0,
            "invalid argument `tag`: tags: too many"
        );
    }

    #[test]
    fn empty_update_is_refused() {
        assert!(UpdateFields::default().into_update().is_err());
        let u = UpdateFields {
            memory_type: Some(String::new()),
            ..UpdateFields::default()
        }
        .into_update()
        .unwrap();
        assert_eq!(u.memory_type, Some(None));
    }
}
