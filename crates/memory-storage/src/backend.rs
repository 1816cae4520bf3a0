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
use crate::{StorageError, StorageResult, StoreOutcome};

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
}
