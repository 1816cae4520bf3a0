//! Retrieval quality, measured: a benchmark's memories are stored in a fresh
//! [`MemoryStorage`], each of its queries is asked, and the answers are scored against the
//! memories the benchmark says answer it.
//!
//! * [`Dataset`] reads the DevBench format (the Python MCP Memory Service's
//!   `devbench_dataset.json`): memories with `bench:*` tags that identify them, and queries
//!   with a category and the tags of the memories that answer them (none for a negative
//!   query).
//! * [`evaluate`] stores the memories (tags, type and creation time kept) and asks every
//!   query for its top [`DEPTH`] results; [`Report`] holds, overall and per category,
//!   recall@5, recall@10, NDCG@10 and MRR (means over the queries that have answers), and
//!   for negative queries how often the best result still scores at or above
//!   [`NEGATIVE_SCORE_FLOOR`].
//!
//! Scoring follows the Python service's harness so that figures compare: a result is
//! relevant when its tags hold one of the query's expected tags, and recall@k is the share
//! of the expected tags found among the top k results.

pub mod dataset;
pub mod metrics;
mod run;

pub use dataset::{Dataset, DatasetError, EvalMemory, EvalQuery};
pub use metrics::{Scores, ndcg_at, recall_at, reciprocal_rank};
pub use run::{CategoryReport, EvalError, Report, ScoresJson, evaluate};

/// Results asked for per query: the deepest cut-off any metric reads.
pub const DEPTH: usize = 10;

/// The similarity at or above which a negative query's best result counts as a false
/// alarm (cosine, as the semantic search reports it). A documented constant rather than a
/// tuned one: 0.5 is where all-MiniLM-L6-v2's paraphrase pairs typically start.
pub const NEGATIVE_SCORE_FLOOR: f32 = 0.5;
