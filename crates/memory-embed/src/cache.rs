//! [`CachedEmbedder`]: an LRU cache in front of any [`Embedder`].
//!
//! ```
//! use memory_embed::{CachedEmbedder, Embedder, EmbedError};
//!
//! /// A toy embedder: the text's length, as a unit vector of one component.
//! #[derive(Debug)]
//! struct Toy;
//!
//! #[async_trait::async_trait]
//! impl Embedder for Toy {
//!     fn model_id(&self) -> &str { "toy" }
//!     fn dimensions(&self) -> usize { 1 }
//!     async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
//!         Ok(texts.iter().map(|_| vec![1.0]).collect())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), EmbedError> {
//! let cached = CachedEmbedder::new(Toy);
//! let texts = vec!["hello".to_owned()];
//! cached.embed(&texts).await?; // miss: goes to Toy
//! cached.embed(&texts).await?; // hit: answered from the cache
//! let stats = cached.stats();
//! assert_eq!((stats.hits, stats.misses), (1, 1));
//! # Ok(())
//! # }
//! ```
//!
//! Entries are keyed by the SHA-256 digest of (model id, text), so the cache holds 32 bytes
//! per key however long the text, and never mixes vectors of two models. The lock is a
//! [`std::sync::Mutex`] held only for map look-ups and inserts, never across the inner
//! embedder's `await`. Two concurrent calls missing on the same text both ask the inner
//! embedder (no request coalescing): the result is the same, only the work is doubled.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use lru::LruCache;
use sha2::{Digest, Sha256};

use crate::Embedder;
use crate::error::EmbedError;

/// Entries kept by [`CachedEmbedder::new`]: 1024 vectors of 384 floats ≈ 1.6 MB.
pub(crate) const DEFAULT_CACHE_CAPACITY: NonZeroUsize = NonZeroUsize::new(1024).unwrap();

/// SHA-256 of (model id, text).
type CacheKey = [u8; 32];

/// Counters of a [`CachedEmbedder`], for statistics endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Texts answered without asking the inner embedder (from the cache, or a repeat of a
    /// text earlier in the same call).
    pub hits: u64,
    /// Texts sent to the inner embedder.
    pub misses: u64,
    /// Entries held now.
    pub len: usize,
    /// Entries held at most.
    pub capacity: usize,
}

impl CacheStats {
    /// `hits / (hits + misses)`, or 0 before any lookup.
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// An [`Embedder`] that remembers the vectors of the last `capacity` distinct texts and sends
/// only the misses, in one batch, to the embedder it wraps.
#[derive(Debug)]
pub struct CachedEmbedder<E> {
    inner: E,
    cache: Mutex<LruCache<CacheKey, Vec<f32>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<E: Embedder> CachedEmbedder<E> {
    /// Wraps `inner` with room for 1024 entries (`DEFAULT_CACHE_CAPACITY`).
    pub fn new(inner: E) -> Self {
        Self::with_capacity(inner, DEFAULT_CACHE_CAPACITY)
    }

    /// Wraps `inner`, keeping at most `capacity` vectors.
    pub fn with_capacity(inner: E, capacity: NonZeroUsize) -> Self {
        Self {
            inner,
            cache: Mutex::new(LruCache::new(capacity)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The wrapped embedder.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// Hit and miss counts since creation, and the current fill.
    pub fn stats(&self) -> CacheStats {
        let cache = self.lock();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            len: cache.len(),
            capacity: cache.cap().get(),
        }
    }

    /// Drops every cached vector (the counters stay).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The cache, even if a panicking thread poisoned the lock: entries are whole vectors
    /// inserted in one call, so a poisoned cache is still consistent.
    fn lock(&self) -> MutexGuard<'_, LruCache<CacheKey, Vec<f32>>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn key(&self, text: &str) -> CacheKey {
        let model_id = self.inner.model_id();
        let mut hasher = Sha256::new();
        hasher.update((model_id.len() as u64).to_le_bytes());
        hasher.update(model_id.as_bytes());
        hasher.update(text.as_bytes());
        hasher.finalize().into()
    }
}

#[async_trait]
impl<E: Embedder> Embedder for CachedEmbedder<E> {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn report(&self) -> serde_json::Map<String, serde_json::Value> {
        self.inner.report()
    }

    async fn warm_up(&self) -> Result<(), EmbedError> {
        self.inner.warm_up().await
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }

    /// Cached vectors for the hits; the misses (each distinct text once) in one call to the
    /// inner embedder. An inner error is returned as is and caches nothing.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<CacheKey> = texts.iter().map(|t| self.key(t)).collect();
        let mut found: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        // Distinct missing texts, and for each the positions it fills.
        let mut missing: Vec<(CacheKey, String, Vec<usize>)> = Vec::new();
        let mut hits = 0u64;
        {
            let mut index: HashMap<CacheKey, usize> = HashMap::new();
            let mut cache = self.lock();
            for (position, key) in keys.iter().enumerate() {
                if let Some(vector) = cache.get(key) {
                    found[position] = Some(vector.clone());
                    hits += 1;
                } else if let Some(&slot) = index.get(key) {
                    missing[slot].2.push(position);
                    hits += 1;
                } else {
                    index.insert(*key, missing.len());
                    missing.push((*key, texts[position].clone(), vec![position]));
                }
            }
        }
        self.hits.fetch_add(hits, Ordering::Relaxed);

        if !missing.is_empty() {
            self.misses
                .fetch_add(missing.len() as u64, Ordering::Relaxed);
            let miss_texts: Vec<String> = missing
                .iter_mut()
                .map(|(_, text, _)| std::mem::take(text))
                .collect();
            let vectors = self.inner.embed(&miss_texts).await?;
            if vectors.len() != miss_texts.len() {
                return Err(EmbedError::WrongVectorCount {
                    model_id: self.inner.model_id().to_owned(),
                    expected: miss_texts.len(),
                    got: vectors.len(),
                });
            }
            let mut cache = self.lock();
            for ((key, _, positions), vector) in missing.into_iter().zip(vectors) {
                for &position in &positions {
                    found[position] = Some(vector.clone());
                }
                cache.put(key, vector);
            }
        }
        found
            .into_iter()
            .map(|vector| {
                vector.ok_or_else(|| {
                    EmbedError::Other("cache lost a vector it had just filled (a bug)".to_owned())
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use mockall::predicate::eq;

    use super::*;
    use crate::MockEmbedder;

    fn texts(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    /// A vector that identifies its text: its length in the first component.
    fn fake_vectors(texts: &[String]) -> Vec<Vec<f32>> {
        texts.iter().map(|t| vec![t.len() as f32, 1.0]).collect()
    }

    fn mock() -> MockEmbedder {
        let mut inner = MockEmbedder::new();
        inner
            .expect_model_id()
            .return_const("mock/model".to_owned());
        inner.expect_dimensions().return_const(2usize);
        inner
    }

    #[tokio::test]
    async fn misses_go_through_once_and_hits_never() {
        let mut inner = mock();
        inner
            .expect_embed()
            .with(eq(texts(&["a", "bb"])))
            .times(1)
            .returning(|t| Ok(fake_vectors(t)));
        let cached = CachedEmbedder::new(inner);

        let first = cached.embed(&texts(&["a", "bb"])).await.unwrap();
        let second = cached.embed(&texts(&["a", "bb"])).await.unwrap();

        assert_eq!(
            (first, second.clone()),
            (second, fake_vectors(&texts(&["a", "bb"])))
        );
    }

    #[tokio::test]
    async fn only_the_misses_are_sent_in_one_batch() {
        let mut inner = mock();
        inner
            .expect_embed()
            .with(eq(texts(&["a"])))
            .times(1)
            .returning(|t| Ok(fake_vectors(t)));
        inner
            .expect_embed()
            .with(eq(texts(&["bb", "ccc"])))
            .times(1)
            .returning(|t| Ok(fake_vectors(t)));
        let cached = CachedEmbedder::new(inner);

        cached.embed(&texts(&["a"])).await.unwrap();
        let mixed = cached.embed(&texts(&["bb", "a", "ccc"])).await.unwrap();

        assert_eq!(mixed, fake_vectors(&texts(&["bb", "a", "ccc"])));
    }

    #[tokio::test]
    async fn counters_report_hits_and_misses() {
        let mut inner = mock();
        inner
            .expect_embed()
            .times(1)
            .returning(|t| Ok(fake_vectors(t)));
        let cached = CachedEmbedder::new(inner);

        cached.embed(&texts(&["a", "b"])).await.unwrap();
        cached.embed(&texts(&["a", "b", "a"])).await.unwrap();

        assert_eq!(
            cached.stats(),
            CacheStats {
                hits: 3,
                misses: 2,
                len: 2,
                capacity: 1024
            }
        );
    }

    #[tokio::test]
    async fn a_text_repeated_in_one_call_is_embedded_once() {
        let mut inner = mock();
        inner
            .expect_embed()
            .with(eq(texts(&["same"])))
            .times(1)
            .returning(|t| Ok(fake_vectors(t)));
        let cached = CachedEmbedder::new(inner);

        let out = cached
            .embed(&texts(&["same", "same", "same"]))
            .await
            .unwrap();

        assert_eq!(out, fake_vectors(&texts(&["same", "same", "same"])));
    }

    #[tokio::test]
    async fn empty_input_does_not_reach_the_inner_embedder() {
        let mut inner = mock();
        inner.expect_embed().times(0);
        let cached = CachedEmbedder::new(inner);

        assert!(cached.embed(&[]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_least_recently_used_entry_is_evicted_at_capacity() {
        let mut inner = mock();
        inner
            .expect_embed()
            .with(eq(texts(&["a"])))
            .times(2)
            .returning(|t| Ok(fake_vectors(t)));
        inner
            .expect_embed()
            .with(eq(texts(&["b"])))
            .times(1)
            .returning(|t| Ok(fake_vectors(t)));
        let cached = CachedEmbedder::with_capacity(inner, NonZeroUsize::new(1).unwrap());

        for text in ["a", "b", "a"] {
            cached.embed(&texts(&[text])).await.unwrap();
        }

        assert_eq!(cached.stats().len, 1);
    }

    #[tokio::test]
    async fn an_inner_error_is_returned_and_caches_nothing() {
        let mut inner = mock();
        let mut seq = mockall::Sequence::new();
        inner
            .expect_embed()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Err(EmbedError::Other("backend down".to_owned())));
        inner
            .expect_embed()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|t| Ok(fake_vectors(t)));
        let cached = CachedEmbedder::new(inner);

        assert!(cached.embed(&texts(&["a"])).await.is_err());
        assert_eq!(
            cached.embed(&texts(&["a"])).await.unwrap(),
            fake_vectors(&texts(&["a"]))
        );
    }

    #[tokio::test]
    async fn a_wrong_vector_count_from_the_inner_embedder_is_an_error() {
        let mut inner = mock();
        inner.expect_embed().returning(|_| Ok(Vec::new()));
        let cached = CachedEmbedder::new(inner);

        let err = cached.embed(&texts(&["a", "b"])).await.unwrap_err();

        assert!(matches!(
            err,
            EmbedError::WrongVectorCount {
                expected: 2,
                got: 0,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn clear_forgets_vectors_but_keeps_counters() {
        let mut inner = mock();
        inner
            .expect_embed()
            .times(2)
            .returning(|t| Ok(fake_vectors(t)));
        let cached = CachedEmbedder::new(inner);

        cached.embed(&texts(&["a"])).await.unwrap();
        cached.clear();
        cached.embed(&texts(&["a"])).await.unwrap();

        assert_eq!((cached.stats().misses, cached.stats().len), (2, 1));
    }

    #[test]
    fn identity_comes_from_the_inner_embedder() {
        let cached = CachedEmbedder::new(mock());
        assert_eq!((cached.model_id(), cached.dimensions()), ("mock/model", 2));
    }

    #[test]
    fn works_behind_a_trait_object_shared_between_threads() {
        let shared: std::sync::Arc<dyn Embedder> = std::sync::Arc::new(CachedEmbedder::new(mock()));
        assert_eq!(shared.model_id(), "mock/model");
    }
}
