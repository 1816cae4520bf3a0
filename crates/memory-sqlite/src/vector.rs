//! Brute-force vector search over an in-memory matrix of L2-normalised embeddings.
//!
//! The SQLite backend keeps every live embedding in one contiguous `Vec<f32>` and ranks a
//! query by dot product (which is cosine similarity for unit vectors), keeping the best `k`
//! in a small heap. A filter decides per row, *before* ranking, which rows take part, so
//! the result is the true top `k` among the rows the filter keeps.
//!
//! This module has no SQLite in it, so benchmarks can call it directly:
//!
//! ```
//! use std::num::NonZeroUsize;
//! use memory_sqlite::vector::VectorIndex;
//!
//! let dims = NonZeroUsize::new(2).expect("2 is not zero");
//! let mut index: VectorIndex<&str> = VectorIndex::new(dims);
//! index.upsert(1, &[1.0, 0.0], "east")?;
//! index.upsert(2, &[0.0, 1.0], "north")?;
//! index.upsert(3, &[0.6, 0.8], "north-east")?;
//!
//! let hits = index.search(&[1.0, 0.0], 2, None, |_| true)?;
//! assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), [1, 3]);
//!
//! // Only rows whose attribute starts with "north" are ranked.
//! let hits = index.search(&[1.0, 0.0], 1, None, |a| a.starts_with("north"))?;
//! assert_eq!(hits[0].id, 3);
//! # Ok::<(), memory_sqlite::vector::DimensionMismatch>(())
//! ```

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::num::NonZeroUsize;

use thiserror::Error;

/// Lanes of the dot-product loop: sixteen independent accumulators, which LLVM turns into
/// SIMD multiply-adds (four SSE or two AVX registers, enough in flight to hide their
/// latency) without any `unsafe`. Measured faster than eight lanes at 384 dimensions.
const LANES: usize = 16;

/// Largest finite half-precision value; an index holding larger components scans in `f32`.
const HALF_MAX: f32 = 65504.0;

/// Relative rounding error of a half-precision value (11 significant bits).
const HALF_RELATIVE_ERROR: f32 = 1.0 / 2048.0;

/// Dot products of half-precision rows with an `f32` query, where the CPU converts halves in
/// hardware (x86-64 with AVX2, FMA and F16C, detected at run time). Elsewhere
/// [`available`](half_scan::available) is false and the index scans its `f32` copy.
mod half_scan {
    /// Whether [`dot`] runs on hardware conversion here.
    pub(super) fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Dot product of half-precision bit patterns with `f32` values (equal lengths).
    /// Callers check [`available`] first; without it this falls back to software conversion.
    pub(super) fn dot(halves: &[u16], query: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if available() {
            // SAFETY: the CPU has AVX2, FMA and F16C, checked just above.
            return unsafe { dot_f16c(halves, query) };
        }
        halves
            .iter()
            .zip(query)
            .map(|(&h, &q)| half::f16::from_bits(h).to_f32() * q)
            .sum()
    }

    /// Sixteen halves per step: two hardware conversions to `f32` and two fused
    /// multiply-adds into independent accumulators; the tail is converted in software.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_f16c(halves: &[u16], query: &[f32]) -> f32 {
        use std::arch::x86_64::{
            __m128i, _mm_loadu_si128, _mm256_add_ps, _mm256_cvtph_ps, _mm256_fmadd_ps,
            _mm256_loadu_ps, _mm256_setzero_ps, _mm256_storeu_ps,
        };
        let n = halves.len().min(query.len());
        let steps = n / 16;
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        for i in 0..steps {
            let p = i * 16;
            // SAFETY: p + 16 <= n, so both 8-lane reads of each slice stay in bounds;
            // the loads are unaligned loads.
            unsafe {
                let h0 = _mm_loadu_si128(halves.as_ptr().add(p).cast::<__m128i>());
                let h1 = _mm_loadu_si128(halves.as_ptr().add(p + 8).cast::<__m128i>());
                let q0 = _mm256_loadu_ps(query.as_ptr().add(p));
                let q1 = _mm256_loadu_ps(query.as_ptr().add(p + 8));
                acc0 = _mm256_fmadd_ps(_mm256_cvtph_ps(h0), q0, acc0);
                acc1 = _mm256_fmadd_ps(_mm256_cvtph_ps(h1), q1, acc1);
            }
        }
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` has room for eight f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(acc0, acc1)) };
        let tail: f32 = halves[steps * 16..n]
            .iter()
            .zip(&query[steps * 16..n])
            .map(|(&h, &q)| half::f16::from_bits(h).to_f32() * q)
            .sum();
        lanes.iter().sum::<f32>() + tail
    }
}

/// A vector whose length differs from the index's dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error(
    "vector has {got} dimensions but the index holds {expected}-dimensional vectors; \
     embed with the model the index was built with"
)]
pub struct DimensionMismatch {
    /// Dimensions of the index.
    pub expected: usize,
    /// Length of the vector given.
    pub got: usize,
}

/// One search result: the caller's id of the row and its dot product with the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The id the row was inserted with.
    pub id: i64,
    /// Dot product with the query (cosine similarity when both are unit vectors).
    pub score: f32,
}

/// Dot product of two equally long slices, summed in sixteen independent lanes so the
/// compiler vectorises it. Extra elements of the longer slice are ignored.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let chunks_a = a.chunks_exact(LANES);
    let chunks_b = b.chunks_exact(LANES);
    let tail: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for ((s, x), y) in acc.iter_mut().zip(ca).zip(cb) {
            *s += x * y;
        }
    }
    // Pairwise reduction keeps the rounding error of the lanes balanced.
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        let (low, high) = acc.split_at_mut(width);
        for (l, h) in low.iter_mut().zip(&high[..width]) {
            *l += *h;
        }
    }
    acc[0] + tail
}

/// A candidate in the top-k heap: greater means better (higher score, then smaller key).
#[derive(Debug, Clone, Copy)]
struct Ranked {
    score: f32,
    key: i64,
    row: usize,
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.key.cmp(&self.key))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

/// Ranks the rows of a row-major `matrix` (`dims` floats per row) against `query` and
/// returns the best `k` as `(row, score)`, best first.
///
/// Rows for which `keep(row)` is false, and rows scoring below `min_score`, take no part.
/// Ties are broken by the smaller `tie_key(row)` (an id, for the index). `query` must be
/// `dims` long (extra values are ignored, missing ones count as zero). Nothing is
/// allocated besides the `k`-sized heap.
fn top_k_by(
    matrix: &[f32],
    dims: NonZeroUsize,
    query: &[f32],
    k: usize,
    min_score: Option<f32>,
    mut keep: impl FnMut(usize) -> bool,
    tie_key: impl Fn(usize) -> i64,
) -> Vec<(usize, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let min_score = min_score.unwrap_or(f32::NEG_INFINITY);
    let mut heap: BinaryHeap<Reverse<Ranked>> = BinaryHeap::with_capacity(k + 1);
    // The worst score still in a full heap; anything strictly below cannot enter.
    let mut floor = f32::NEG_INFINITY;
    for (row, vector) in matrix.chunks_exact(dims.get()).enumerate() {
        if !keep(row) {
            continue;
        }
        let score = dot(vector, query);
        if score < min_score || score < floor || score.is_nan() {
            continue;
        }
        let candidate = Ranked {
            score,
            key: tie_key(row),
            row,
        };
        if heap.len() < k {
            heap.push(Reverse(candidate));
        } else if let Some(mut worst) = heap.peek_mut()
            && candidate > worst.0
        {
            *worst = Reverse(candidate);
        }
        if heap.len() == k
            && let Some(worst) = heap.peek()
        {
            floor = worst.0.score;
        }
    }
    heap.into_sorted_vec()
        .into_iter()
        .map(|Reverse(r)| (r.row, r.score))
        .collect()
}

/// An in-memory set of fixed-size vectors, each with a caller id and an attribute `A`
/// (for the SQLite backend: creation time, type and tags, so filters need no SQL).
///
/// Vectors live in one contiguous row-major buffer; removing a row moves the last row into
/// its place, so the buffer never has holes.
#[derive(Debug, Clone)]
pub struct VectorIndex<A = ()> {
    dims: NonZeroUsize,
    data: Vec<f32>,
    /// `data` rounded to IEEE half precision (bit patterns), scanned first where the CPU
    /// converts halves in hardware: half the bytes to read per query.
    halves: Vec<u16>,
    /// Largest L2 norm of any vector ever inserted (bounds the half-precision error).
    max_norm: f32,
    /// False once a component beyond half precision's range was inserted.
    halves_usable: bool,
    ids: Vec<i64>,
    attrs: Vec<A>,
    rows: HashMap<i64, usize>,
}

impl<A> VectorIndex<A> {
    /// An empty index of `dims`-dimensional vectors.
    pub fn new(dims: NonZeroUsize) -> Self {
        Self {
            dims,
            data: Vec::new(),
            halves: Vec::new(),
            max_norm: 0.0,
            halves_usable: true,
            ids: Vec::new(),
            attrs: Vec::new(),
            rows: HashMap::new(),
        }
    }

    /// An empty index with room for `rows` vectors.
    pub fn with_capacity(dims: NonZeroUsize, rows: usize) -> Self {
        Self {
            dims,
            data: Vec::with_capacity(rows.saturating_mul(dims.get())),
            halves: Vec::with_capacity(rows.saturating_mul(dims.get())),
            max_norm: 0.0,
            halves_usable: true,
            ids: Vec::with_capacity(rows),
            attrs: Vec::with_capacity(rows),
            rows: HashMap::with_capacity(rows),
        }
    }

    /// Length of every vector.
    pub fn dims(&self) -> usize {
        self.dims.get()
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when the index holds no vector.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether a vector with this id is present.
    pub fn contains(&self, id: i64) -> bool {
        self.rows.contains_key(&id)
    }

    /// The ids present, in storage order.
    pub fn ids(&self) -> &[i64] {
        &self.ids
    }

    /// The vector stored under `id`.
    pub fn vector(&self, id: i64) -> Option<&[f32]> {
        let row = *self.rows.get(&id)?;
        let d = self.dims.get();
        self.data.get(row * d..(row + 1) * d)
    }

    /// The attribute stored under `id`.
    pub fn attrs(&self, id: i64) -> Option<&A> {
        self.rows.get(&id).and_then(|&row| self.attrs.get(row))
    }

    /// Inserts a vector, or replaces the vector and attribute already stored under `id`.
    pub fn upsert(&mut self, id: i64, vector: &[f32], attrs: A) -> Result<(), DimensionMismatch> {
        let d = self.dims.get();
        if vector.len() != d {
            return Err(DimensionMismatch {
                expected: d,
                got: vector.len(),
            });
        }
        self.max_norm = self.max_norm.max(dot(vector, vector).sqrt());
        self.halves_usable &= vector.iter().all(|x| x.abs() <= HALF_MAX);
        let halves = vector.iter().map(|&x| half::f16::from_f32(x).to_bits());
        match self.rows.get(&id) {
            Some(&row) => {
                self.data[row * d..(row + 1) * d].copy_from_slice(vector);
                for (slot, h) in self.halves[row * d..(row + 1) * d].iter_mut().zip(halves) {
                    *slot = h;
                }
                self.attrs[row] = attrs;
            }
            None => {
                self.rows.insert(id, self.ids.len());
                self.ids.push(id);
                self.attrs.push(attrs);
                self.data.extend_from_slice(vector);
                self.halves.extend(halves);
            }
        }
        Ok(())
    }

    /// Removes the vector stored under `id`; returns whether there was one.
    pub fn remove(&mut self, id: i64) -> bool {
        let Some(row) = self.rows.remove(&id) else {
            return false;
        };
        let d = self.dims.get();
        let last = self.ids.len() - 1;
        if row != last {
            self.data.copy_within(last * d..(last + 1) * d, row * d);
            self.halves.copy_within(last * d..(last + 1) * d, row * d);
            let moved = self.ids[last];
            self.rows.insert(moved, row);
        }
        self.ids.swap_remove(row);
        self.attrs.swap_remove(row);
        self.data.truncate(last * d);
        self.halves.truncate(last * d);
        true
    }

    /// Keeps only the vectors whose id satisfies `keep`.
    pub fn retain(&mut self, mut keep: impl FnMut(i64) -> bool) {
        let gone: Vec<i64> = self.ids.iter().copied().filter(|&id| !keep(id)).collect();
        for id in gone {
            self.remove(id);
        }
    }

    /// Removes every vector.
    pub fn clear(&mut self) {
        self.data.clear();
        self.halves.clear();
        self.max_norm = 0.0;
        self.halves_usable = true;
        self.ids.clear();
        self.attrs.clear();
        self.rows.clear();
    }

    /// The best `k` vectors for `query` among those whose attribute passes `filter`, best
    /// first; vectors scoring below `min_score` are left out. Ties go to the smaller id.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        min_score: Option<f32>,
        mut filter: impl FnMut(&A) -> bool,
    ) -> Result<Vec<Hit>, DimensionMismatch> {
        if query.len() != self.dims.get() {
            return Err(DimensionMismatch {
                expected: self.dims.get(),
                got: query.len(),
            });
        }
        if self.halves_usable && half_scan::available() {
            return Ok(self.search_halves(query, k, min_score, filter));
        }
        let ids = &self.ids;
        let attrs = &self.attrs;
        Ok(top_k_by(
            &self.data,
            self.dims,
            query,
            k,
            min_score,
            |row| filter(&attrs[row]),
            |row| ids[row],
        )
        .into_iter()
        .map(|(row, score)| Hit {
            id: ids[row],
            score,
        })
        .collect())
    }

    /// [`search`](Self::search) in two passes with the same result: half-precision scores
    /// for every kept row (half the memory traffic), then exact `f32` scores for the rows
    /// whose approximate score is within twice the rounding bound of the `k`-th best. A row
    /// of the true top `k` cannot fall outside that band, so the answer is exact.
    fn search_halves(
        &self,
        query: &[f32],
        k: usize,
        min_score: Option<f32>,
        mut filter: impl FnMut(&A) -> bool,
    ) -> Vec<Hit> {
        if k == 0 {
            return Vec::new();
        }
        let d = self.dims.get();
        // |q·v − q·ṽ| ≤ Σ|qᵢ||vᵢ − ṽᵢ| ≤ 2⁻¹¹·|q|·|v| (11 significant bits, Cauchy–Schwarz);
        // twice that covers subnormal rounding and the different summation orders.
        let bound = dot(query, query).sqrt() * self.max_norm * HALF_RELATIVE_ERROR * 2.0;
        let min_score = min_score.unwrap_or(f32::NEG_INFINITY);
        let mut approx = vec![f32::NEG_INFINITY; self.ids.len()];
        let mut best: BinaryHeap<Reverse<Ranked>> = BinaryHeap::with_capacity(k + 1);
        for (row, halves) in self.halves.chunks_exact(d).enumerate() {
            if !filter(&self.attrs[row]) {
                continue;
            }
            let score = half_scan::dot(halves, query);
            if score.is_nan() || score < min_score - bound {
                continue;
            }
            approx[row] = score;
            let candidate = Ranked { score, key: 0, row };
            if best.len() < k {
                best.push(Reverse(candidate));
            } else if let Some(mut worst) = best.peek_mut()
                && score > worst.0.score
            {
                *worst = Reverse(candidate);
            }
        }
        let cutoff = match best.peek() {
            Some(worst) if best.len() == k => worst.0.score - 2.0 * bound,
            _ => f32::NEG_INFINITY,
        };
        let mut exact: BinaryHeap<Reverse<Ranked>> = BinaryHeap::with_capacity(k + 1);
        for (row, &a) in approx.iter().enumerate() {
            if a == f32::NEG_INFINITY || a < cutoff {
                continue;
            }
            let score = dot(&self.data[row * d..(row + 1) * d], query);
            if score < min_score || score.is_nan() {
                continue;
            }
            let candidate = Ranked {
                score,
                key: self.ids[row],
                row,
            };
            if exact.len() < k {
                exact.push(Reverse(candidate));
            } else if let Some(mut worst) = exact.peek_mut()
                && candidate > worst.0
            {
                *worst = Reverse(candidate);
            }
        }
        exact
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(r)| Hit {
                id: self.ids[r.row],
                score: r.score,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap()
    }

    /// A deterministic pseudo-random unit vector (xorshift), so tests need no RNG crate.
    fn unit_vector(seed: u64, n: usize) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut v: Vec<f32> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }

    fn naive_top_k(
        index: &VectorIndex<u32>,
        q: &[f32],
        k: usize,
        keep: impl Fn(&u32) -> bool,
    ) -> Vec<i64> {
        let mut all: Vec<(i64, f32)> = index
            .ids()
            .iter()
            .filter(|&&id| keep(index.attrs(id).unwrap()))
            .map(|&id| {
                let v = index.vector(id).unwrap();
                (id, v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>())
            })
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.into_iter().take(k).map(|(id, _)| id).collect()
    }

    #[test]
    fn dot_matches_naive_sum_for_lengths_around_the_lane_width() {
        for n in [1, 7, 8, 9, 15, 16, 17, 31, 32, 383, 384, 385] {
            let a = unit_vector(1, n);
            let b = unit_vector(2, n);
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - naive).abs() < 1e-5, "n={n}");
        }
    }

    #[test]
    fn top_k_equals_a_full_sort_on_random_vectors() {
        let mut index = VectorIndex::new(dims(384));
        for id in 0..2000 {
            index
                .upsert(id, &unit_vector(id as u64 + 10, 384), (id % 7) as u32)
                .unwrap();
        }
        for (q, k) in [(1u64, 1usize), (2, 10), (3, 100), (4, 5000)] {
            let query = unit_vector(q, 384);
            let got: Vec<i64> = index
                .search(&query, k, None, |_| true)
                .unwrap()
                .iter()
                .map(|h| h.id)
                .collect();
            assert_eq!(got, naive_top_k(&index, &query, k, |_| true), "k={k}");
        }
    }

    #[test]
    fn filter_is_applied_before_ranking_so_the_top_k_is_among_matches() {
        let mut index = VectorIndex::new(dims(64));
        for id in 0..500 {
            index
                .upsert(id, &unit_vector(id as u64, 64), (id % 50) as u32)
                .unwrap();
        }
        let query = unit_vector(999, 64);
        let got: Vec<i64> = index
            .search(&query, 10, None, |a| *a == 3)
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect();
        assert_eq!(got.len(), 10);
        assert_eq!(got, naive_top_k(&index, &query, 10, |a| *a == 3));
    }

    #[test]
    fn min_score_drops_weaker_rows() {
        let mut index: VectorIndex = VectorIndex::new(dims(2));
        index.upsert(1, &[1.0, 0.0], ()).unwrap();
        index.upsert(2, &[0.0, 1.0], ()).unwrap();
        let hits = index.search(&[1.0, 0.0], 10, Some(0.5), |_| true).unwrap();
        assert_eq!(hits, [Hit { id: 1, score: 1.0 }]);
    }

    #[test]
    fn equal_scores_are_ordered_by_id() {
        let mut index: VectorIndex = VectorIndex::new(dims(2));
        for id in [5, 9, 3] {
            index.upsert(id, &[1.0, 0.0], ()).unwrap();
        }
        let ids: Vec<i64> = index
            .search(&[1.0, 0.0], 2, None, |_| true)
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect();
        assert_eq!(ids, [3, 5]);
    }

    #[test]
    fn remove_moves_the_last_row_and_keeps_lookups_right() {
        let mut index = VectorIndex::new(dims(2));
        index.upsert(1, &[1.0, 0.0], 'a').unwrap();
        index.upsert(2, &[0.0, 1.0], 'b').unwrap();
        index.upsert(3, &[0.6, 0.8], 'c').unwrap();
        assert!(index.remove(1));
        assert!(!index.remove(1));
        assert_eq!(index.len(), 2);
        assert_eq!(index.vector(3), Some(&[0.6, 0.8][..]));
        assert_eq!(index.attrs(3), Some(&'c'));
        assert_eq!(index.vector(2), Some(&[0.0, 1.0][..]));
        let hits = index.search(&[1.0, 0.0], 5, None, |_| true).unwrap();
        assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), [3, 2]);
    }

    #[test]
    fn upsert_replaces_in_place() {
        let mut index = VectorIndex::new(dims(2));
        index.upsert(7, &[1.0, 0.0], 1).unwrap();
        index.upsert(7, &[0.0, 1.0], 2).unwrap();
        assert_eq!(index.len(), 1);
        assert_eq!(index.vector(7), Some(&[0.0, 1.0][..]));
        assert_eq!(index.attrs(7), Some(&2));
    }

    #[test]
    fn wrong_dimensions_are_refused() {
        let mut index: VectorIndex = VectorIndex::new(dims(3));
        assert_eq!(
            index.upsert(1, &[1.0], ()),
            Err(DimensionMismatch {
                expected: 3,
                got: 1
            })
        );
        assert!(index.search(&[1.0, 0.0], 1, None, |_| true).is_err());
    }

    #[test]
    fn retain_keeps_only_chosen_ids() {
        let mut index: VectorIndex = VectorIndex::new(dims(1));
        for id in 0..10 {
            index.upsert(id, &[id as f32], ()).unwrap();
        }
        index.retain(|id| id % 2 == 0);
        let mut ids = index.ids().to_vec();
        ids.sort();
        assert_eq!(ids, [0, 2, 4, 6, 8]);
        assert_eq!(index.vector(8), Some(&[8.0][..]));
    }

    /// The exact answer from the `f32` copy alone, for comparing with [`VectorIndex::search`].
    fn exact_top_k<A>(
        index: &VectorIndex<A>,
        q: &[f32],
        k: usize,
        min_score: Option<f32>,
        keep: impl Fn(&A) -> bool + Sync,
    ) -> Vec<(i64, f32)>
    where
        A: Sync,
    {
        top_k_by(
            &index.data,
            index.dims,
            q,
            k,
            min_score,
            |row| keep(&index.attrs[row]),
            |row| index.ids[row],
        )
        .into_iter()
        .map(|(row, score)| (index.ids[row], score))
        .collect()
    }

    #[test]
    fn half_precision_pass_returns_exactly_the_f32_answer() {
        let mut index = VectorIndex::new(dims(384));
        for id in 0..3000 {
            index
                .upsert(id, &unit_vector(id as u64 + 77, 384), (id % 5) as u32)
                .unwrap();
        }
        for (q, k, min) in [
            (1u64, 1usize, None),
            (2, 10, None),
            (3, 50, Some(0.05)),
            (4, 3000, None),
        ] {
            let query = unit_vector(q + 5000, 384);
            let got: Vec<(i64, f32)> = index
                .search(&query, k, min, |a| *a != 2)
                .unwrap()
                .iter()
                .map(|h| (h.id, h.score))
                .collect();
            assert_eq!(
                got,
                exact_top_k(&index, &query, k, min, |a| *a != 2),
                "k={k}"
            );
        }
    }

    #[test]
    fn near_ties_below_half_precision_are_ranked_by_the_exact_score() {
        // Vectors that round to the same halves but differ in f32: only the exact second
        // pass can order them.
        let base = unit_vector(9, 64);
        let mut index = VectorIndex::new(dims(64));
        for id in 0..20i64 {
            let mut v = base.clone();
            v[0] += id as f32 * 1e-6;
            index.upsert(id, &v, ()).unwrap();
        }
        let mut query = vec![0.0f32; 64];
        query[0] = 1.0;
        let got: Vec<i64> = index
            .search(&query, 3, None, |_| true)
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect();
        assert_eq!(got, [19, 18, 17]);
    }

    #[test]
    fn components_beyond_half_range_fall_back_to_f32() {
        let mut index = VectorIndex::new(dims(2));
        index.upsert(1, &[70000.0, 0.0], ()).unwrap();
        index.upsert(2, &[1.0, 1.0], ()).unwrap();
        assert!(!index.halves_usable);
        let hits = index.search(&[1.0, 0.0], 1, None, |_| true).unwrap();
        assert_eq!((hits[0].id, hits[0].score), (1, 70000.0));
    }

    #[test]
    fn removal_keeps_the_half_copy_in_step() {
        let mut index = VectorIndex::new(dims(32));
        for id in 0..10 {
            index.upsert(id, &unit_vector(id as u64, 32), ()).unwrap();
        }
        index.remove(3);
        index.remove(0);
        index.upsert(5, &unit_vector(99, 32), ()).unwrap();
        let query = unit_vector(99, 32);
        let hits = index.search(&query, 10, None, |_| true).unwrap();
        assert_eq!(hits.len(), 8);
        assert_eq!(hits[0].id, 5);
        assert_eq!(
            hits.iter().map(|h| (h.id, h.score)).collect::<Vec<_>>(),
            exact_top_k(&index, &query, 10, None, |_| true)
        );
    }
}
