//! What every backend does around its own storage calls, written once: the check of an
//! embedder's answer, the `store_batch` scaffolding (check each memory, embed each distinct
//! new text once, put the outcomes back in input order) and the union of tag lists.
//!
//! A backend's `store_batch` reads:
//!
//! ```ignore
//! let (mut outcomes, mut items) = backend::check_each(memories, |m| prepare_memory(m, dims));
//! let wanted = backend::to_embed(&items, |hash| already_live(hash));
//! let texts: Vec<&str> = wanted.iter().map(|&k| items[k].1.memory.content()).collect();
//! let vectors = backend::checked_vectors(model, dims, texts.len(), embed(&texts).await?, "")?;
//! backend::give_vectors(&mut items, &wanted, vectors);
//! // ... write `items`, then `outcomes.set(position, outcome)` for each ...
//! Ok(outcomes.finish())
//! ```

use std::collections::{HashMap, HashSet};

use memory_core::{ContentHash, Memory, Tags, ValidationError, limits};

use crate::prepare::{Prepared, unit_vector};
use crate::{CleanupReport, StorageError, StorageResult, StoreOutcome};

/// Checks what an embedder returned for `texts` texts: one vector per text, each of `dims`
/// finite numbers and not all zero. Returns them scaled to unit length.
///
/// `hint` is appended to the message about an unusable vector (e.g. what to check).
///
/// # Errors
///
/// [`StorageError::Embedding`] naming `model` when the count or a vector is wrong.
pub fn checked_vectors(
    model: &str,
    dims: usize,
    texts: usize,
    vectors: Vec<Vec<f32>>,
    hint: &str,
) -> StorageResult<Vec<Vec<f32>>> {
    if vectors.len() != texts {
        return Err(StorageError::Embedding {
            message: format!(
                "model {model} returned {} vectors for {texts} texts; the embedder is broken",
                vectors.len(),
            ),
            source: None,
        });
    }
    vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            unit_vector(v, dims).map_err(|problem| StorageError::Embedding {
                message: format!(
                    "model {model} returned an unusable vector for text {i}: it {problem}{hint}"
                ),
                source: None,
            })
        })
        .collect()
}

/// The outcomes of a `store_batch`, one per input memory in input order, filled in as they
/// become known.
#[derive(Debug)]
pub struct BatchOutcomes(Vec<Option<StorageResult<StoreOutcome>>>);

impl BatchOutcomes {
    /// Records the outcome of the memory at input `position`.
    pub fn set(&mut self, position: usize, outcome: StorageResult<StoreOutcome>) {
        self.0[position] = Some(outcome);
    }

    /// The outcomes in input order. Every position must have been set (by
    /// [`check_each`] or [`set`](Self::set)); an unset one is left out.
    #[must_use]
    pub fn finish(self) -> Vec<StorageResult<StoreOutcome>> {
        self.0.into_iter().flatten().collect()
    }
}

/// Checks each memory with `check`: a refusal is that memory's outcome, the others are
/// returned with their input position for the backend to write.
pub fn check_each<T>(
    memories: Vec<Memory>,
    mut check: impl FnMut(Memory) -> StorageResult<T>,
) -> (BatchOutcomes, Vec<(usize, T)>) {
    let mut outcomes = Vec::with_capacity(memories.len());
    let mut items = Vec::with_capacity(memories.len());
    for (position, memory) in memories.into_iter().enumerate() {
        match check(memory) {
            Ok(item) => {
                outcomes.push(None);
                items.push((position, item));
            }
            Err(e) => outcomes.push(Some(Err(e))),
        }
    }
    (BatchOutcomes(outcomes), items)
}

/// Indices into `items` of the memories to embed: the first of each hash that came without
/// a vector and that `skip` does not exclude (a backend skips memories it knows are live,
/// which can only be duplicates). Later memories of the same hash share that vector.
pub fn to_embed(items: &[(usize, Prepared)], skip: impl Fn(&ContentHash) -> bool) -> Vec<usize> {
    let mut seen = HashSet::new();
    items
        .iter()
        .enumerate()
        .filter(|(_, (_, p))| seen.insert(p.memory.content_hash()))
        .filter(|(_, (_, p))| p.vector.is_none() && !skip(p.memory.content_hash()))
        .map(|(k, _)| k)
        .collect()
}

/// Gives every memory without a vector the one embedded for its hash (`wanted[i]` is the
/// index into `items` whose text made `vectors[i]`, as [`to_embed`] chose them).
pub fn give_vectors(items: &mut [(usize, Prepared)], wanted: &[usize], vectors: Vec<Vec<f32>>) {
    let by_hash: HashMap<ContentHash, Vec<f32>> = wanted
        .iter()
        .map(|&k| items[k].1.memory.content_hash().clone())
        .zip(vectors)
        .collect();
    for (_, p) in items {
        if p.vector.is_none() {
            p.vector = by_hash.get(p.memory.content_hash()).cloned();
        }
    }
}

/// Merges tags into one list, keeping each tag's first occurrence in order and at most
/// [`limits::MAX_TAGS`] tags: what duplicate clean-up and repair keep of merged memories
/// (pass their tag lists one after the other, the keeper's first).
///
/// # Errors
///
/// A tag that breaks a tag rule cannot come from valid memories; it is reported as is.
pub fn union_tags<'a>(tags: impl IntoIterator<Item = &'a str>) -> Result<Tags, ValidationError> {
    let mut union: Vec<&str> = Vec::new();
    for tag in tags {
        if !union.contains(&tag) {
            union.push(tag);
        }
    }
    union.truncate(limits::MAX_TAGS);
    Tags::parse(union)
}

/// The plan of a duplicate clean-up (`cleanup_duplicates`), made the same way by every
/// backend from its live rows, oldest first.
///
/// Each row has two keys: its stored hash and the hash of its content recomputed by today's
/// rule (rows written under an older hashing rule differ). Rows sharing any key, directly
/// or through others, are one memory: the first (oldest) of a group is kept and absorbs the
/// others' tags; the rest are removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupPlan {
    /// Groups of two or more row indices, each in input order, ordered by their first row.
    pub groups: Vec<Vec<usize>>,
    /// The report so far: rows examined and groups found; the backend fills `removed`.
    pub report: CleanupReport,
}

impl CleanupPlan {
    /// Groups rows by their `[stored hash, recomputed hash]` keys, given in row order.
    pub fn new<'a>(keys: impl IntoIterator<Item = [&'a str; 2]>) -> Self {
        let keys: Vec<[&str; 2]> = keys.into_iter().collect();
        let groups = duplicate_groups(&keys);
        Self {
            report: CleanupReport {
                examined: keys.len() as u64,
                duplicate_groups: groups.len() as u64,
                removed: Vec::new(),
            },
            groups,
        }
    }
}

/// Union-find over the rows' keys: the older root (smaller index) always stays the root,
/// so each group's first row is its oldest.
fn duplicate_groups(keys: &[[&str; 2]]) -> Vec<Vec<usize>> {
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut parent: Vec<usize> = (0..keys.len()).collect();
    let mut owner: HashMap<&str, usize> = HashMap::new();
    for (i, pair) in keys.iter().enumerate() {
        for key in pair {
            match owner.get(key) {
                Some(&j) => {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                    parent[a.max(b)] = a.min(b);
                }
                None => {
                    owner.insert(key, i);
                }
            }
        }
    }
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..keys.len() {
        let root = find(&mut parent, i);
        groups.entry(root).or_default().push(i);
    }
    let mut out: Vec<Vec<usize>> = groups.into_values().filter(|g| g.len() > 1).collect();
    out.sort_by_key(|g| g[0]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(content: &str, vector: Option<Vec<f32>>) -> Prepared {
        Prepared {
            memory: Memory::new(content).unwrap(),
            vector,
        }
    }

    #[test]
    fn each_distinct_text_without_a_vector_is_embedded_once_and_shared() {
        let mut items: Vec<(usize, Prepared)> = vec![
            (0, prepared("a", None)),
            (2, prepared("b", Some(vec![1.0, 0.0]))),
            (3, prepared("a", None)),
            (4, prepared("c", None)),
        ];
        let live = items[3].1.memory.content_hash().clone();
        let wanted = to_embed(&items, |h| *h == live);
        assert_eq!(wanted, vec![0]);
        give_vectors(&mut items, &wanted, vec![vec![0.0, 1.0]]);
        assert_eq!(items[2].1.vector, Some(vec![0.0, 1.0]));
        assert_eq!(items[1].1.vector, Some(vec![1.0, 0.0]));
        assert_eq!(items[3].1.vector, None);
    }

    #[test]
    fn outcomes_come_back_in_input_order() {
        let memories = vec![Memory::new("x").unwrap(), Memory::new("y").unwrap()];
        let (mut outcomes, items) = check_each(memories, |m| {
            if m.content() == "x" {
                Err(StorageError::invalid("content", "no x"))
            } else {
                Ok(m)
            }
        });
        assert_eq!(items.len(), 1);
        outcomes.set(items[0].0, Ok(StoreOutcome::Stored));
        let out = outcomes.finish();
        assert!(matches!(out[0], Err(StorageError::InvalidInput { .. })));
        assert!(matches!(out[1], Ok(StoreOutcome::Stored)));
    }

    #[test]
    fn a_wrong_count_or_vector_is_an_embedding_error() {
        assert!(checked_vectors("m", 2, 2, vec![vec![1.0, 0.0]], "").is_err());
        let e = checked_vectors("m", 2, 1, vec![vec![0.0, 0.0]], "; check it").unwrap_err();
        assert!(e.to_string().contains("text 0"), "{e}");
        assert!(e.to_string().ends_with("; check it"), "{e}");
        let ok = checked_vectors("m", 2, 1, vec![vec![3.0, 4.0]], "").unwrap();
        assert!((ok[0][0] - 0.6).abs() < 1e-6);
    }

    #[test]
    fn tag_union_keeps_first_occurrences_in_order() {
        let a = Tags::parse("x,y").unwrap();
        let b = Tags::parse("y,z").unwrap();
        let all = [&a, &b]
            .into_iter()
            .flat_map(|t| t.iter().map(String::as_str));
        assert_eq!(union_tags(all).unwrap().joined(), "x,y,z");
    }

    #[test]
    fn rows_sharing_a_key_directly_or_through_others_are_one_group_oldest_first() {
        // Row 0 and 2 share a stored hash; 3 reaches them through 2's recomputed hash;
        // 1 and 4 stand alone.
        let plan = CleanupPlan::new([
            ["a", "a"],
            ["b", "b"],
            ["old", "a"],
            ["c", "old"],
            ["d", "e"],
        ]);
        assert_eq!(plan.groups, vec![vec![0, 2, 3]]);
        assert_eq!(plan.report.examined, 5);
        assert_eq!(plan.report.duplicate_groups, 1);
        assert!(plan.report.removed.is_empty());
    }

    #[test]
    fn a_later_row_linking_two_groups_makes_one_kept_by_the_oldest() {
        // Row 3 shares "b" with row 1 and "a" with row 0: all three are one memory.
        let plan = CleanupPlan::new([["a", "a"], ["b", "b"], ["c", "c"], ["b", "a"]]);
        assert_eq!(plan.groups, vec![vec![0, 1, 3]]);
        assert_eq!(plan.report.duplicate_groups, 1);
    }

    #[test]
    fn no_rows_and_distinct_rows_plan_nothing() {
        assert!(CleanupPlan::new([]).groups.is_empty());
        let plan = CleanupPlan::new([["a", "a"], ["b", "b"]]);
        assert!(plan.groups.is_empty());
        assert_eq!(plan.report.examined, 2);
    }
}
