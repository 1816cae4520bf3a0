//! Running a benchmark against a store.

use std::collections::BTreeMap;

use memory_core::{Memory, Tags, Timestamp, ValidationError};
use memory_storage::{MemoryStorage, SemanticQuery, StorageError};
use serde::Serialize;

use crate::dataset::{Dataset, EvalMemory};
use crate::metrics::Scores;
use crate::{DEPTH, NEGATIVE_SCORE_FLOOR};

/// What [`evaluate`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The mean scores over every query with answers; `None` when the benchmark has none.
    pub overall: Option<ScoresJson>,
    /// Per category, in name order.
    pub categories: Vec<CategoryReport>,
    /// Memories stored.
    pub memories: usize,
    /// Queries asked.
    pub queries: usize,
}

/// The figures of one category.
#[derive(Debug, Clone, Serialize)]
pub struct CategoryReport {
    /// Its name.
    pub category: String,
    /// Queries in it.
    pub queries: usize,
    /// Mean scores over its queries with answers (`None`: only negative queries).
    pub scores: Option<ScoresJson>,
    /// Of its negative queries (nothing expected), how many had a best result scoring at
    /// or above [`NEGATIVE_SCORE_FLOOR`].
    pub negative_false_alarms: usize,
    /// Its negative queries.
    pub negatives: usize,
}

/// [`Scores`] as serialised in a report.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ScoresJson {
    /// Mean recall in the top 5.
    pub recall_5: f64,
    /// Mean recall in the top 10.
    pub recall_10: f64,
    /// Mean NDCG over the top 10.
    pub ndcg_10: f64,
    /// Mean reciprocal rank.
    pub mrr: f64,
}

impl From<Scores> for ScoresJson {
    fn from(s: Scores) -> Self {
        Self {
            recall_5: s.recall_5,
            recall_10: s.recall_10,
            ndcg_10: s.ndcg_10,
            mrr: s.mrr,
        }
    }
}

/// Why a benchmark could not be run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A memory of the benchmark is not a valid memory here.
    #[error("benchmark memory {id:?} cannot be stored: {source}")]
    Memory {
        /// The benchmark's id of it.
        id: String,
        /// Why.
        source: ValidationError,
    },
    /// A query's expected tags are not valid tags, so nothing could ever match them.
    #[error("benchmark query {id:?} expects tags that are not valid: {source}")]
    Query {
        /// The benchmark's id of the query.
        id: String,
        /// Why.
        source: ValidationError,
    },
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Stores `data`'s memories in `store` (which should be empty: other memories would
/// compete for the top ranks) and asks each query for its top [`DEPTH`] by meaning.
///
/// # Errors
/// [`EvalError::Memory`] naming a memory that is not valid (bad tags, type or time),
/// [`EvalError::Query`] naming a query whose expected tags are not valid, or the store's
/// error.
pub async fn evaluate(store: &dyn MemoryStorage, data: &Dataset) -> Result<Report, EvalError> {
    let memories = data
        .memories
        .iter()
        .map(to_memory)
        .collect::<Result<Vec<_>, _>>()?;
    // Expected tags go through the same normalisation as stored ones; checked before
    // anything is stored.
    let expected: Vec<Vec<String>> = data
        .queries
        .iter()
        .map(|q| {
            Tags::parse(q.expected_tags.clone())
                .map(|t| t.iter().cloned().collect())
                .map_err(|source| EvalError::Query {
                    id: q.id.clone(),
                    source,
                })
        })
        .collect::<Result<_, _>>()?;
    for outcome in store.store_batch(memories).await? {
        outcome?;
    }

    let mut by_category: BTreeMap<&str, (Vec<Scores>, usize, usize, usize)> = BTreeMap::new();
    let mut all = Vec::new();
    for (query, expected) in data.queries.iter().zip(&expected) {
        let results = store
            .search(&SemanticQuery::new(query.question.clone(), DEPTH))
            .await?;
        let tags: Vec<Vec<String>> = results
            .iter()
            .map(|r| r.memory.tags.iter().cloned().collect())
            .collect();
        let entry = by_category.entry(query.category.as_str()).or_default();
        entry.1 += 1;
        match Scores::of(&tags, expected) {
            Some(scores) => {
                entry.0.push(scores);
                all.push(scores);
            }
            None => {
                entry.2 += 1;
                let best = results.first().map_or(f32::MIN, |r| r.relevance_score);
                if best >= NEGATIVE_SCORE_FLOOR {
                    entry.3 += 1;
                }
            }
        }
    }
    Ok(Report {
        overall: Scores::mean(&all).map(Into::into),
        categories: by_category
            .into_iter()
            .map(
                |(category, (scores, queries, negatives, alarms))| CategoryReport {
                    category: category.to_owned(),
                    queries,
                    scores: Scores::mean(&scores).map(Into::into),
                    negative_false_alarms: alarms,
                    negatives,
                },
            )
            .collect(),
        memories: data.memories.len(),
        queries: data.queries.len(),
    })
}

/// A benchmark memory as a memory of this service.
fn to_memory(m: &EvalMemory) -> Result<Memory, EvalError> {
    let invalid = |source| EvalError::Memory {
        id: m.id.clone(),
        source,
    };
    let mut memory = Memory::new(m.content.clone())
        .map_err(invalid)?
        .with_tags(Tags::parse(m.tags.clone()).map_err(invalid)?);
    if let Some(t) = &m.memory_type {
        memory = memory.with_memory_type(t).map_err(invalid)?;
    }
    if let Some(at) = &m.created_at_iso {
        memory = memory.with_created_at(Timestamp::parse_iso(at).map_err(invalid)?);
    }
    Ok(memory)
}

impl Report {
    /// The report as a Markdown table: overall, then each category.
    #[must_use]
    pub fn to_markdown(&self) -> String {
        let pct = |v: f64| format!("{:.1}", v * 100.0);
        let mut out = String::from(
            "| category | queries | R@5 | R@10 | NDCG@10 | MRR | negatives: best ≥ floor |\n\
             |---|---:|---:|---:|---:|---:|---:|\n",
        );
        let row = |name: &str, queries: usize, s: Option<ScoresJson>, neg: String| {
            let (r5, r10, n, m) = s.map_or(
                ("—".into(), "—".into(), "—".into(), "—".into()),
                |s| {
                    (
                        pct(s.recall_5),
                        pct(s.recall_10),
                        pct(s.ndcg_10),
                        pct(s.mrr),
                    )
                },
            );
            format!("| {name} | {queries} | {r5} | {r10} | {n} | {m} | {neg} |\n")
        };
        let (negatives, alarms) = self.categories.iter().fold((0, 0), |(n, a), c| {
            (n + c.negatives, a + c.negative_false_alarms)
        });
        let neg = |n: usize, a: usize| {
            if n == 0 {
                "—".to_owned()
            } else {
                format!("{a} of {n}")
            }
        };
        out.push_str(&row(
            "**overall**",
            self.queries,
            self.overall,
            neg(negatives, alarms),
        ));
        for c in &self.categories {
            out.push_str(&row(
                &c.category,
                c.queries,
                c.scores,
                neg(c.negatives, c.negative_false_alarms),
            ));
        }
        out
    }
}
