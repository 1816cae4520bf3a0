//! The scores of one query's ranked results. A result is given as its tags; it answers
//! the query when it holds one of the expected tags (DevBench names each answering memory
//! by a tag of its own).

use std::collections::HashSet;

/// The expected tags found among the top `k` results, as a share of the expected tags
/// (the Python service's definition). `None` for a query with nothing expected.
#[must_use]
pub fn recall_at(k: usize, results: &[Vec<String>], expected: &[String]) -> Option<f64> {
    if expected.is_empty() {
        return None;
    }
    let found = expected
        .iter()
        .filter(|e| results.iter().take(k).any(|tags| tags.contains(e)))
        .count();
    Some(found as f64 / expected.len() as f64)
}

/// Normalised discounted cumulative gain over the top `k`, with binary gains: a result
/// gains 1 when it holds an expected tag no higher result held (a second copy of an answer
/// gains nothing), discounted by `log2(rank + 1)`; the ideal ranks one answer per expected
/// tag first. `None` for a query with nothing expected.
#[must_use]
pub fn ndcg_at(k: usize, results: &[Vec<String>], expected: &[String]) -> Option<f64> {
    if expected.is_empty() {
        return None;
    }
    let discount = |rank: usize| 1.0 / ((rank + 2) as f64).log2();
    let mut seen: HashSet<&String> = HashSet::new();
    let mut dcg = 0.0;
    for (rank, tags) in results.iter().take(k).enumerate() {
        let new = expected
            .iter()
            .filter(|e| tags.contains(e) && !seen.contains(e))
            .collect::<Vec<_>>();
        if !new.is_empty() {
            dcg += discount(rank);
            seen.extend(new);
        }
    }
    let ideal: f64 = (0..expected.len().min(k)).map(discount).sum();
    Some(dcg / ideal)
}

/// 1 / the rank of the first result that answers the query (0 when none does). `None` for
/// a query with nothing expected.
#[must_use]
pub fn reciprocal_rank(results: &[Vec<String>], expected: &[String]) -> Option<f64> {
    if expected.is_empty() {
        return None;
    }
    Some(
        results
            .iter()
            .position(|tags| expected.iter().any(|e| tags.contains(e)))
            .map_or(0.0, |rank| 1.0 / (rank + 1) as f64),
    )
}

/// The scores of one query with answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// Recall in the top 5.
    pub recall_5: f64,
    /// Recall in the top 10.
    pub recall_10: f64,
    /// NDCG over the top 10.
    pub ndcg_10: f64,
    /// Reciprocal rank of the first answer.
    pub mrr: f64,
}

impl Scores {
    /// The scores of `results` (best first) against `expected`; `None` when nothing is
    /// expected (a negative query).
    #[must_use]
    pub fn of(results: &[Vec<String>], expected: &[String]) -> Option<Self> {
        Some(Self {
            recall_5: recall_at(5, results, expected)?,
            recall_10: recall_at(10, results, expected)?,
            ndcg_10: ndcg_at(10, results, expected)?,
            mrr: reciprocal_rank(results, expected)?,
        })
    }

    /// The mean of each score over `all`; `None` when empty.
    #[must_use]
    pub fn mean(all: &[Self]) -> Option<Self> {
        if all.is_empty() {
            return None;
        }
        let n = all.len() as f64;
        let sum = |f: fn(&Self) -> f64| all.iter().map(f).sum::<f64>() / n;
        Some(Self {
            recall_5: sum(|s| s.recall_5),
            recall_10: sum(|s| s.recall_10),
            ndcg_10: sum(|s| s.ndcg_10),
            mrr: sum(|s| s.mrr),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn worked_example() {
        // Two answers expected; one at rank 2, the other at rank 7, a repeat at rank 3.
        let expected = tags(&["a", "b"]);
        let mut results: Vec<Vec<String>> = (0..10).map(|i| tags(&[&format!("x{i}")])).collect();
        results[1] = tags(&["a", "t"]);
        results[2] = tags(&["a"]);
        results[6] = tags(&["b"]);
        assert_eq!(recall_at(5, &results, &expected), Some(0.5));
        assert_eq!(recall_at(10, &results, &expected), Some(1.0));
        assert_eq!(reciprocal_rank(&results, &expected), Some(0.5));
        let dcg = 1.0 / 3f64.log2() + 1.0 / 8f64.log2();
        let ideal = 1.0 + 1.0 / 3f64.log2();
        let ndcg = ndcg_at(10, &results, &expected).unwrap();
        assert!((ndcg - dcg / ideal).abs() < 1e-12, "{ndcg}");
        assert_eq!(
            Scores::of(&results, &[]),
            None,
            "negative queries have no scores"
        );
    }

    #[test]
    fn a_perfect_ranking_scores_one_and_none_scores_zero() {
        let expected = tags(&["a", "b", "c"]);
        let perfect = vec![tags(&["a"]), tags(&["b"]), tags(&["c"])];
        let s = Scores::of(&perfect, &expected).unwrap();
        assert_eq!((s.recall_5, s.recall_10, s.mrr), (1.0, 1.0, 1.0));
        assert!((s.ndcg_10 - 1.0).abs() < 1e-12);
        let none = Scores::of(&[tags(&["x"])], &expected).unwrap();
        assert_eq!((none.recall_10, none.ndcg_10, none.mrr), (0.0, 0.0, 0.0));
    }

    proptest! {
        #[test]
        fn scores_are_shares_and_recall_grows_with_k(
            ranks in proptest::collection::vec(proptest::collection::vec(0u8..6, 0..3), 0..=10),
            expected in proptest::collection::vec(0u8..6, 1..4),
        ) {
            let results: Vec<Vec<String>> = ranks
                .iter()
                .map(|r| r.iter().map(|t| format!("t{t}")).collect())
                .collect();
            let expected: Vec<String> = expected.iter().map(|t| format!("t{t}")).collect();
            let s = Scores::of(&results, &expected).unwrap();
            for v in [s.recall_5, s.recall_10, s.ndcg_10, s.mrr] {
                prop_assert!((0.0..=1.0 + 1e-12).contains(&v), "{v}");
            }
            prop_assert!(s.recall_5 <= s.recall_10);
            // Within the top 10, an answer is found by every score or by none.
            prop_assert_eq!(s.mrr > 0.0, s.recall_10 > 0.0);
            prop_assert_eq!(s.ndcg_10 > 0.0, s.recall_10 > 0.0);
        }
    }
}
