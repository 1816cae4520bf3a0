//! Benchmarks in the DevBench format.

use std::path::Path;

use serde::Deserialize;

/// A benchmark: memories to store and queries to ask.
#[derive(Debug, Clone, Deserialize)]
pub struct Dataset {
    /// The memories, stored before any query is asked.
    pub memories: Vec<EvalMemory>,
    /// The queries.
    pub queries: Vec<EvalQuery>,
}

/// One memory of a benchmark.
#[derive(Debug, Clone, Deserialize)]
pub struct EvalMemory {
    /// The benchmark's id of the memory (informational; answers are matched by tags).
    #[serde(default)]
    pub id: String,
    /// Its text.
    pub content: String,
    /// Its tags, including the `bench:*` tag queries name it by.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Its type, if any.
    #[serde(default)]
    pub memory_type: Option<String>,
    /// When it was created (ISO 8601), if given.
    #[serde(default)]
    pub created_at_iso: Option<String>,
}

/// One query of a benchmark.
#[derive(Debug, Clone, Deserialize)]
pub struct EvalQuery {
    /// The benchmark's id of the query.
    pub id: String,
    /// Its category (DevBench: `exact`, `semantic`, `cross_type`, `negative`).
    pub category: String,
    /// What is asked.
    pub question: String,
    /// The tags of the memories that answer it; empty for a negative query.
    #[serde(default)]
    pub expected_tags: Vec<String>,
}

/// Why a benchmark file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The file could not be read.
    #[error("cannot read the benchmark {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a benchmark in the DevBench format.
    #[error(
        "{path} is not a DevBench-format benchmark ({source}); expected {{\"memories\": [{{\"content\", \"tags\", ...}}], \"queries\": [{{\"id\", \"category\", \"question\", \"expected_tags\"}}]}}"
    )]
    Format {
        /// The file.
        path: String,
        /// What did not parse.
        source: serde_json::Error,
    },
    /// The benchmark parses but cannot be scored.
    #[error("{path}: {problem}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
}

impl Dataset {
    /// Reads a benchmark file.
    ///
    /// # Errors
    /// [`DatasetError`] naming the file: unreadable, not the format, or with no memory or
    /// no query.
    pub fn load(path: &Path) -> Result<Self, DatasetError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            DatasetError::Format { source, .. } => DatasetError::Format {
                path: shown.clone(),
                source,
            },
            DatasetError::Invalid { problem, .. } => DatasetError::Invalid {
                path: shown.clone(),
                problem,
            },
            other => other,
        })
    }

    /// Parses a benchmark from its JSON text.
    ///
    /// # Errors
    /// [`DatasetError::Format`] or [`DatasetError::Invalid`] (with an empty path).
    pub fn parse(text: &str) -> Result<Self, DatasetError> {
        let data: Self = serde_json::from_str(text).map_err(|source| DatasetError::Format {
            path: String::new(),
            source,
        })?;
        let invalid = |problem: &str| DatasetError::Invalid {
            path: String::new(),
            problem: problem.to_owned(),
        };
        if data.memories.is_empty() {
            return Err(invalid("it has no memories"));
        }
        if data.queries.is_empty() {
            return Err(invalid("it has no queries"));
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_devbench_file_parses_with_its_optional_fields() {
        let d = Dataset::parse(
            r#"{"memories": [{"id": "m", "content": "c", "tags": ["bench:m"],
                "memory_type": "decision", "created_at_iso": "2025-06-12T09:15:00Z"},
               {"content": "bare"}],
               "queries": [{"id": "q", "category": "exact", "question": "?",
                "expected_tags": ["bench:m"]}, {"id": "n", "category": "negative", "question": "?"}]}"#,
        )
        .unwrap();
        assert_eq!(d.memories.len(), 2);
        assert!(d.memories[1].tags.is_empty());
        assert!(d.queries[1].expected_tags.is_empty());
    }

    #[test]
    fn what_cannot_be_scored_is_refused_with_the_reason() {
        let err = Dataset::parse(r#"{"memories": [], "queries": []}"#).unwrap_err();
        assert!(err.to_string().contains("no memories"), "{err}");
        let err = Dataset::parse(r#"{"memories": [{"content": "c"}]}"#).unwrap_err();
        assert!(err.to_string().contains("DevBench-format"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = Dataset::load(&dir.path().join("missing.json")).unwrap_err();
        assert!(err.to_string().contains("missing.json"), "{err}");
    }
}
