//! Query, filter, update and report types of [`MemoryStorage`](crate::MemoryStorage).

use memory_core::{ContentHash, Metadata, Tags, TimeRange, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{StorageError, StorageResult};

/// Most results one search, list or recall may ask for.
pub const MAX_RESULTS: usize = 1000;

/// Checks a result count: `1..=MAX_RESULTS`.
pub(crate) fn validate_limit(field: &'static str, n: usize) -> StorageResult<()> {
    if n == 0 || n > MAX_RESULTS {
        return Err(StorageError::invalid(
            field,
            format!("{n} is outside the allowed range 1..={MAX_RESULTS}"),
        ));
    }
    Ok(())
}

/// How several tags combine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagMatch {
    /// A memory matches when it carries at least one of the tags (OR).
    #[default]
    Any,
    /// A memory matches when it carries every one of the tags (AND).
    All,
}

/// A tag condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    /// Normalised tags; an empty list matches nothing.
    pub tags: Tags,
    /// Any or all.
    pub mode: TagMatch,
}

impl TagFilter {
    /// Memories with at least one of `tags`.
    pub fn any(tags: Tags) -> Self {
        Self {
            tags,
            mode: TagMatch::Any,
        }
    }

    /// Memories with all of `tags`.
    pub fn all(tags: Tags) -> Self {
        Self {
            tags,
            mode: TagMatch::All,
        }
    }

    /// The filter a caller asked for with a tag list and a mode — the one constructor of
    /// every front end (CLI flags, MCP arguments). An empty list is refused naming `tags`:
    /// asked for, it would silently match nothing.
    ///
    /// # Errors
    ///
    /// [`StorageError::InvalidInput`] naming `tags` for an empty list.
    pub fn requested(tags: Tags, mode: TagMatch) -> StorageResult<Self> {
        if tags.is_empty() {
            return Err(StorageError::invalid(
                "tags",
                "the tag list is empty; give at least one tag or leave the tags out",
            ));
        }
        Ok(Self { tags, mode })
    }

    /// Whether a memory's tags satisfy the filter (reference semantics for backends).
    pub fn matches(&self, memory_tags: &Tags) -> bool {
        if self.tags.is_empty() {
            return false;
        }
        match self.mode {
            TagMatch::Any => self.tags.iter().any(|t| memory_tags.contains(t)),
            TagMatch::All => self.tags.iter().all(|t| memory_tags.contains(t)),
        }
    }
}

/// Conditions shared by list, count and search. All given conditions must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryFilter {
    /// Tag condition.
    pub tags: Option<TagFilter>,
    /// Exact memory type.
    pub memory_type: Option<String>,
    /// `created_at` within this inclusive range.
    pub time: Option<TimeRange>,
}

impl MemoryFilter {
    /// No conditions: every live memory.
    pub fn all() -> Self {
        Self::default()
    }

    /// Adds a tag condition.
    pub fn with_tags(mut self, tags: TagFilter) -> Self {
        self.tags = Some(tags);
        self
    }

    /// Adds a memory-type condition.
    pub fn with_memory_type(mut self, t: impl Into<String>) -> Self {
        self.memory_type = Some(t.into());
        self
    }

    /// Adds a time condition.
    pub fn with_time(mut self, range: TimeRange) -> Self {
        self.time = Some(range);
        self
    }

    /// Whether no memory can match: a tag condition with an empty tag list matches
    /// nothing, so a backend answers without querying (or embedding) anything.
    pub fn matches_nothing(&self) -> bool {
        self.tags.as_ref().is_some_and(|t| t.tags.is_empty())
    }

    /// Reference semantics: whether `memory` satisfies every condition.
    pub fn matches(&self, memory: &memory_core::Memory) -> bool {
        self.tags.as_ref().is_none_or(|f| f.matches(&memory.tags))
            && self
                .memory_type
                .as_ref()
                .is_none_or(|t| memory.memory_type.as_deref() == Some(t.as_str()))
            && self.time.is_none_or(|r| r.contains(memory.created_at))
    }
}

/// A page of memories, newest first (`created_at` descending, then hash descending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Conditions.
    pub filter: MemoryFilter,
    /// Memories to skip.
    pub offset: usize,
    /// At most this many; `None` means all that match.
    pub limit: Option<usize>,
}

impl ListQuery {
    /// Every live memory matching `filter`.
    pub fn all(filter: MemoryFilter) -> Self {
        Self {
            filter,
            offset: 0,
            limit: None,
        }
    }

    /// Page `page` (1-based) of `page_size` memories.
    pub fn page(filter: MemoryFilter, page: usize, page_size: usize) -> StorageResult<Self> {
        if page == 0 {
            return Err(StorageError::invalid("page", "pages are numbered from 1"));
        }
        validate_limit("page_size", page_size)?;
        Ok(Self {
            filter,
            offset: (page - 1).saturating_mul(page_size),
            limit: Some(page_size),
        })
    }

    /// Validates the limit (when given, within `1..=`[`MAX_RESULTS`]).
    ///
    /// # Errors
    ///
    /// [`StorageError::InvalidInput`] naming `limit`.
    pub fn validate(&self) -> StorageResult<()> {
        match self.limit {
            Some(limit) => validate_limit("limit", limit),
            None => Ok(()),
        }
    }
}

/// A semantic search.
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticQuery {
    /// The text whose meaning is searched for.
    pub text: String,
    /// How many results at most (`1..=MAX_RESULTS`).
    pub limit: usize,
    /// Only memories matching this are ranked: the result is the true top `limit` among them.
    pub filter: MemoryFilter,
    /// Drop results whose cosine similarity is below this.
    pub min_similarity: Option<f32>,
}

impl SemanticQuery {
    /// Top `limit` memories closest in meaning to `text`.
    pub fn new(text: impl Into<String>, limit: usize) -> Self {
        Self {
            text: text.into(),
            limit,
            filter: MemoryFilter::default(),
            min_similarity: None,
        }
    }

    /// Restricts the search.
    pub fn with_filter(mut self, filter: MemoryFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Validates the text and limit.
    pub fn validate(&self) -> StorageResult<()> {
        if self.text.trim().is_empty() {
            return Err(StorageError::invalid("query", "must not be empty"));
        }
        validate_limit("limit", self.limit)?;
        if let Some(s) = self.min_similarity
            && !(-1.0..=1.0).contains(&s)
        {
            return Err(StorageError::invalid(
                "min_similarity",
                format!("{s} is outside -1.0..=1.0"),
            ));
        }
        Ok(())
    }

    /// Validates the query, then says whether it can match anything: the start of every
    /// backend's `search`, which answers `Ok(vec![])` without embedding the text when not.
    ///
    /// # Errors
    ///
    /// What [`SemanticQuery::validate`] refuses.
    pub fn can_match(&self) -> StorageResult<bool> {
        self.validate()?;
        Ok(!self.filter.matches_nothing())
    }
}

/// What a store did with one memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreOutcome {
    /// A new memory was written.
    Stored,
    /// A soft-deleted memory with the same hash came back to life with the new fields.
    Revived,
    /// A live memory with this hash exists already; nothing changed (it keeps its content,
    /// tags, type, metadata and timestamps). Its hash is the stored memory's own.
    Duplicate,
}

/// Changes for [`update_memory_metadata`](crate::MemoryStorage::update_memory_metadata).
/// `None` fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryUpdate {
    /// Replaces the tags.
    pub tags: Option<Tags>,
    /// Replaces the memory type (`Some(None)` clears it).
    pub memory_type: Option<Option<String>>,
    /// Merged into the metadata: each key replaces the same key.
    pub metadata: Option<Metadata>,
    /// New `created_at`, honoured only when timestamps are not preserved.
    pub created_at: Option<Timestamp>,
}

impl MemoryUpdate {
    /// True when the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.tags.is_none()
            && self.memory_type.is_none()
            && self.metadata.is_none()
            && self.created_at.is_none()
    }

    /// The same update with its memory type normalised (trimmed; blank means none), so a
    /// bad type is refused before anything is read or written.
    ///
    /// # Errors
    ///
    /// [`StorageError::Validation`] naming `memory_type`.
    pub fn normalised(&self) -> StorageResult<Self> {
        let mut update = self.clone();
        // As on store: `metadata.tags`/`metadata.type` are the memory's own fields. Given
        // in an update's metadata they set the tags (added to the update's own `tags`) and
        // the type (unless the update sets one), and never land in the metadata.
        if let Some(metadata) = &mut update.metadata {
            let lifted = metadata.take_reserved()?;
            if let Some(extra) = lifted.tags {
                update.tags = Some(match update.tags.take() {
                    Some(own) => Tags::from_list(own.iter().chain(extra.iter()))?,
                    None => extra,
                });
            }
            if update.memory_type.is_none() {
                update.memory_type = lifted.memory_type;
            }
        }
        update.memory_type = match update.memory_type {
            Some(Some(t)) => Some(memory_core::memory::normalise_memory_type(&t)?),
            other => other,
        };
        Ok(update)
    }

    /// Applies a [normalised](MemoryUpdate::normalised) update to `memory`, as every
    /// backend does: tags and type replaced, metadata merged, `updated_at` set to `now`,
    /// and unless `preserve_timestamps`, `created_at` set to the update's or `now`.
    pub fn apply(
        &self,
        memory: &mut memory_core::Memory,
        preserve_timestamps: bool,
        now: Timestamp,
    ) {
        if let Some(tags) = &self.tags {
            memory.tags = tags.clone();
        }
        if let Some(t) = &self.memory_type {
            memory.memory_type = t.clone();
        }
        if let Some(m) = &self.metadata {
            memory.metadata.merge(m.clone());
        }
        memory.updated_at = now;
        if !preserve_timestamps {
            memory.created_at = self.created_at.unwrap_or(now);
        }
    }
}

/// Which memories a bulk delete selects. Given conditions combine with AND; at least one
/// is required (deleting everything takes an explicit wide time range).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteSelector {
    /// Exactly these hashes.
    pub hashes: Vec<ContentHash>,
    /// A tag condition.
    pub tags: Option<TagFilter>,
    /// `created_at <= before` (inclusive).
    pub before: Option<Timestamp>,
    /// `created_at >= after` (inclusive).
    pub after: Option<Timestamp>,
}

impl DeleteSelector {
    /// True when no condition is set.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
            && self.tags.is_none()
            && self.before.is_none()
            && self.after.is_none()
    }

    /// Checks that at least one condition is set and the time bounds are ordered.
    pub fn validate(&self) -> StorageResult<()> {
        if self.is_empty() {
            return Err(StorageError::invalid(
                "selector",
                "give hashes, tags, before or after; an empty selector would delete everything",
            ));
        }
        if let Some(t) = &self.tags
            && t.tags.is_empty()
        {
            return Err(StorageError::invalid("tags", "the tag list is empty"));
        }
        if let (Some(b), Some(a)) = (self.before, self.after)
            && a > b
        {
            return Err(StorageError::invalid(
                "after",
                format!("after ({a}) is later than before ({b})"),
            ));
        }
        Ok(())
    }

    /// Reference semantics: whether `memory` is selected.
    pub fn matches(&self, memory: &memory_core::Memory) -> bool {
        (self.hashes.is_empty() || self.hashes.contains(memory.content_hash()))
            && self.tags.as_ref().is_none_or(|f| f.matches(&memory.tags))
            && self.before.is_none_or(|b| memory.created_at <= b)
            && self.after.is_none_or(|a| memory.created_at >= a)
    }
}

/// A bulk delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteRequest {
    /// Which memories.
    pub selector: DeleteSelector,
    /// Report what would be deleted without deleting.
    pub dry_run: bool,
}

/// What a delete did (or would do, on a dry run).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteReport {
    /// The hashes deleted (or that would be), newest first.
    pub hashes: Vec<ContentHash>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Clean-up the backend could not finish after the memories were deleted, one entry per
    /// leftover naming it and the error (Cloudflare: `vector <id>: …`, `R2 object <key>: …`).
    /// The memories are deleted all the same (no read returns them); `check` reports each
    /// leftover and `repair` removes it. Empty when everything was cleaned up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cleanup_pending: Vec<String>,
}

/// What [`cleanup_duplicates`](crate::MemoryStorage::cleanup_duplicates) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupReport {
    /// Live memories examined.
    pub examined: u64,
    /// Groups of memories whose content normalises to the same text.
    pub duplicate_groups: u64,
    /// Hashes removed (the oldest of each group is kept; its tags absorb the others').
    pub removed: Vec<ContentHash>,
}

/// A tag and how many live memories carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagCount {
    /// The tag.
    pub tag: String,
    /// Live memories carrying it.
    pub count: u64,
}

/// Figures about a store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StorageStats {
    /// Backend name (`sqlite`, `cloudflare`, ...).
    pub backend: String,
    /// Live memories.
    pub total_memories: u64,
    /// Distinct tags on live memories.
    pub unique_tags: u64,
    /// Live memories created in the last 7 days.
    pub memories_this_week: u64,
    /// Bytes of content of live memories.
    pub content_bytes: u64,
    /// Soft-deleted memories not yet purged.
    pub tombstones: u64,
    /// Embedding model id.
    pub embedding_model: String,
    /// Embedding dimensions.
    pub embedding_dimensions: usize,
    /// Bytes the store occupies on disk, where known.
    pub storage_bytes: Option<u64>,
    /// Backend-specific figures (vectors, R2 objects, ...).
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// What kind of disagreement [`check`](crate::MemoryStorage::check) found inside a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IssueKind {
    /// A live memory has no vector (Cloudflare: none in Vectorize; SQLite: an empty or
    /// non-blob embedding): semantic search cannot find it. Repair embeds it again.
    MissingVector,
    /// A live memory's vector is unusable (wrong size, NaN or infinite values, all zeros).
    /// Repair embeds it again.
    InvalidVector,
    /// A vector with no live memory (Cloudflare: a Vectorize id of this store's namespace
    /// no live row points to). Repair deletes it.
    StrayVector,
    /// A stored object no live memory points to (Cloudflare: an R2 key under this store's
    /// prefix). Repair deletes it.
    StrayObject,
    /// The tag link rows (`memory_tags`) of a memory differ from its `tags` column, or link
    /// rows point to no memory: tag filters and tag counts disagree with the memory.
    /// Repair rebuilds the links from the column.
    TagLinksMismatch,
    /// The backend's in-memory search index disagrees with the stored rows (SQLite).
    /// Repair rebuilds the index.
    IndexMismatch,
    /// A live memory's content hash is not the hash of its content (a row written under
    /// another rule, or by an import that trusted a supplied hash): storing that content
    /// again would be called a duplicate of the wrong memory. Repair re-keys the memory
    /// under the hash of its content (merging it into a live memory that already has it).
    HashMismatch,
    /// A live memory's content lives in an object that is missing (Cloudflare: the R2
    /// object of content over the threshold). Only that memory's reads fail; the detail
    /// says what repair keeps of it.
    MissingObject,
    /// The storage itself is damaged (SQLite `PRAGMA integrity_check` not "ok"). Cannot be
    /// repaired in place: restore a backup, or export and import into a new store.
    Corruption,
    /// A memory's liveness on this device differs from the deployment's although every
    /// change of it has been exchanged (hybrid: live here but not in Cloudflare's tables,
    /// or the reverse). Repair runs a full sync, which writes this device's merged state
    /// upstream and stores what only Cloudflare holds.
    Unsynced,
}

impl IssueKind {
    /// The snake_case name, as serialised (`missing_vector`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingVector => "missing_vector",
            Self::InvalidVector => "invalid_vector",
            Self::StrayVector => "stray_vector",
            Self::StrayObject => "stray_object",
            Self::TagLinksMismatch => "tag_links_mismatch",
            Self::IndexMismatch => "index_mismatch",
            Self::HashMismatch => "hash_mismatch",
            Self::MissingObject => "missing_object",
            Self::Corruption => "corruption",
            Self::Unsynced => "unsynced",
        }
    }

    /// Whether [`repair`](crate::MemoryStorage::repair) can fix this kind of issue.
    #[must_use]
    pub fn is_repairable(self) -> bool {
        !matches!(self, Self::Corruption)
    }
}

impl std::fmt::Display for IssueKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One disagreement found by [`check`](crate::MemoryStorage::check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyIssue {
    /// What kind of problem.
    pub kind: IssueKind,
    /// What it concerns: a content hash, a vector id, an object key, or the database file.
    pub subject: String,
    /// A human explanation, saying what is wrong and what fixes it.
    pub detail: String,
}

impl ConsistencyIssue {
    /// An issue of `kind` about `subject`.
    pub fn new(kind: IssueKind, subject: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind,
            subject: subject.into(),
            detail: detail.into(),
        }
    }
}

/// What [`check`](crate::MemoryStorage::check) found. Reading it changed nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyReport {
    /// Backend name (`sqlite`, `cloudflare`, ...).
    pub backend: String,
    /// Live memories examined.
    pub memories_checked: u64,
    /// Every disagreement found, grouped by kind, then by subject.
    pub issues: Vec<ConsistencyIssue>,
}

impl ConsistencyReport {
    /// True when no issue was found.
    #[must_use]
    pub fn is_consistent(&self) -> bool {
        self.issues.is_empty()
    }

    /// The issues of one kind.
    pub fn of_kind(&self, kind: IssueKind) -> impl Iterator<Item = &ConsistencyIssue> {
        self.issues.iter().filter(move |i| i.kind == kind)
    }

    /// Sorts the issues by kind, then subject (the order backends report them in).
    pub fn sort(&mut self) {
        self.issues
            .sort_by(|a, b| (a.kind, &a.subject).cmp(&(b.kind, &b.subject)));
    }
}

/// What [`repair`](crate::MemoryStorage::repair) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairReport {
    /// What the check before repairing found.
    pub found: ConsistencyReport,
    /// Issues fixed (vectors written or deleted, link sets rebuilt, objects deleted, ...).
    pub fixed: u64,
    /// One line per kind of fix, with its count (`re-embedded 3 memories ...`); empty when
    /// nothing needed fixing.
    pub actions: Vec<String>,
    /// What a check after repairing still finds: what could not be fixed (each issue's
    /// detail says what to do instead).
    pub remaining: Vec<ConsistencyIssue>,
}

impl RepairReport {
    /// True when the check after repairing found nothing.
    #[must_use]
    pub fn is_consistent(&self) -> bool {
        self.remaining.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_that_can_match_nothing_is_still_validated_first() {
        let nothing = MemoryFilter::all().with_tags(TagFilter::any(Tags::empty()));
        assert!(nothing.matches_nothing());
        assert!(!MemoryFilter::all().matches_nothing());
        // A bad query is refused even when its filter would make the answer empty.
        let bad = SemanticQuery::new(" ", 5).with_filter(nothing.clone());
        assert!(matches!(
            bad.can_match(),
            Err(StorageError::InvalidInput { .. })
        ));
        let empty = SemanticQuery::new("text", 5).with_filter(nothing);
        assert!(!empty.can_match().unwrap());
        assert!(SemanticQuery::new("text", 5).can_match().unwrap());
    }

    #[test]
    fn a_list_limit_outside_the_range_is_refused_naming_it() {
        let mut q = ListQuery::all(MemoryFilter::all());
        assert!(q.validate().is_ok());
        for bad in [0, MAX_RESULTS + 1] {
            q.limit = Some(bad);
            let err = q.validate().unwrap_err();
            assert!(err.to_string().contains("limit"), "{err}");
        }
        q.limit = Some(MAX_RESULTS);
        assert!(q.validate().is_ok());
    }
}
