//! One Vectorize index in memory: its vectors, metadata indexes and pending mutations,
//! and exact (brute-force) nearest-neighbour search.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::filter::{Filter, INDEXED_STRING_BYTES, Indexed, truncate_utf8};

/// A distance metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Metric {
    /// Cosine similarity, -1 to 1, higher is closer.
    #[serde(rename = "cosine")]
    Cosine,
    /// Euclidean (L2) distance, lower is closer.
    #[serde(rename = "euclidean")]
    Euclidean,
    /// Negative dot product, lower is closer (Cloudflare's documented definition).
    #[serde(rename = "dot-product")]
    DotProduct,
}

impl Metric {
    /// Parses the spec's name.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "cosine" => Some(Self::Cosine),
            "euclidean" => Some(Self::Euclidean),
            "dot-product" => Some(Self::DotProduct),
            _ => None,
        }
    }

    /// The spec's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Cosine => "cosine",
            Self::Euclidean => "euclidean",
            Self::DotProduct => "dot-product",
        }
    }

    fn higher_is_closer(self) -> bool {
        matches!(self, Self::Cosine)
    }
}

/// A metadata index's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum IndexType {
    /// Strings (first 64 bytes).
    String,
    /// Numbers (float64).
    Number,
    /// Booleans.
    Boolean,
}

impl IndexType {
    /// Parses the spec's name.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "string" => Some(Self::String),
            "number" => Some(Self::Number),
            "boolean" => Some(Self::Boolean),
            _ => None,
        }
    }

    /// The spec's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Boolean => "boolean",
        }
    }

    fn index(self, value: &Value) -> Option<Indexed> {
        match (self, value) {
            (Self::String, Value::String(s)) => Some(Indexed::Str(
                truncate_utf8(s, INDEXED_STRING_BYTES).to_owned(),
            )),
            (Self::Number, Value::Number(n)) => n.as_f64().map(Indexed::Num),
            (Self::Boolean, Value::Bool(b)) => Some(Indexed::Bool(*b)),
            _ => None,
        }
    }
}

/// A vector as written (one NDJSON line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct NewVector {
    /// Its id.
    pub id: String,
    /// Its values (stored as float32, like Cloudflare).
    pub values: Vec<f32>,
    /// Its metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Its namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A stored vector.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stored {
    /// The vector.
    pub vector: NewVector,
    /// Its Euclidean norm.
    pub norm: f32,
    /// The values of its metadata that the metadata indexes existing when it was written
    /// hold, by property path.
    pub indexed: HashMap<String, Indexed>,
}

/// A mutation's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Op {
    /// Insert (an existing id keeps its vector).
    Insert {
        /// The vectors.
        vectors: Vec<NewVector>,
    },
    /// Upsert (an existing id is replaced).
    Upsert {
        /// The vectors.
        vectors: Vec<NewVector>,
    },
    /// Delete by ids.
    Delete {
        /// The ids.
        ids: Vec<String>,
    },
    /// Create a metadata index.
    CreateMetadataIndex {
        /// Property path.
        property: String,
        /// Type.
        index_type: IndexType,
    },
    /// Delete a metadata index.
    DeleteMetadataIndex {
        /// Property path.
        property: String,
    },
}

/// An accepted mutation not yet visible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Pending {
    /// Its id.
    pub id: String,
    /// When it becomes visible (ms since the epoch).
    pub due_ms: u64,
    /// What it does.
    pub op: Op,
}

/// What a mutation changed, for persistence.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// Ids written or rewritten.
    pub written: Vec<String>,
    /// Ids deleted.
    pub deleted: Vec<String>,
}

/// One index.
#[derive(Debug, Clone)]
pub(crate) struct Index {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Dimensions.
    pub dimensions: usize,
    /// Metric.
    pub metric: Metric,
    /// Creation time (µs since the epoch).
    pub created_us: u64,
    /// Last configuration change (µs since the epoch).
    pub modified_us: u64,
    /// Visible vectors.
    pub slots: Vec<Stored>,
    /// Position of each id in `slots`.
    pub by_id: HashMap<String, usize>,
    /// Visible metadata indexes, in creation order.
    pub metadata_indexes: Vec<(String, IndexType)>,
    /// Accepted, not yet visible mutations, oldest first.
    pub pending: VecDeque<Pending>,
    /// The last visible mutation.
    pub processed_mutation: Option<String>,
    /// When it became visible (µs since the epoch).
    pub processed_us: Option<u64>,
}

fn lookup<'a>(metadata: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut segments = path.split('.');
    let mut value = metadata.get(segments.next()?)?;
    for segment in segments {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}

fn norm(values: &[f32]) -> f32 {
    dot(values, values).sqrt()
}

/// Dot product, in 8 lanes so it vectorises.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    let mut sum: f32 = lanes.iter().sum();
    for i in chunks * 8..a.len().min(b.len()) {
        sum += a[i] * b[i];
    }
    sum
}

fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for l in 0..8 {
            let d = x[l] - y[l];
            lanes[l] += d * d;
        }
    }
    let mut sum: f32 = lanes.iter().sum();
    for i in chunks * 8..a.len().min(b.len()) {
        let d = a[i] - b[i];
        sum += d * d;
    }
    sum
}

/// A query's parameters.
#[derive(Debug)]
pub(crate) struct Search<'a> {
    /// The query vector.
    pub vector: &'a [f32],
    /// How many matches.
    pub top_k: usize,
    /// Only this namespace.
    pub namespace: Option<&'a str>,
    /// Only vectors matching this.
    pub filter: Option<&'a Filter>,
}

impl Index {
    /// A new, empty index.
    pub(crate) fn new(
        name: String,
        description: Option<String>,
        dimensions: usize,
        metric: Metric,
        now_us: u64,
    ) -> Self {
        Self {
            name,
            description,
            dimensions,
            metric,
            created_us: now_us,
            modified_us: now_us,
            slots: Vec::new(),
            by_id: HashMap::new(),
            metadata_indexes: Vec::new(),
            pending: VecDeque::new(),
            processed_mutation: None,
            processed_us: None,
        }
    }

    /// A stored vector from a written one, indexing its metadata with the current
    /// metadata indexes.
    pub(crate) fn store(&self, vector: NewVector) -> Stored {
        let mut indexed = HashMap::new();
        if let Some(metadata) = &vector.metadata {
            for (property, index_type) in &self.metadata_indexes {
                if let Some(value) = lookup(metadata, property).and_then(|v| index_type.index(v)) {
                    indexed.insert(property.clone(), value);
                }
            }
        }
        Stored {
            norm: norm(&vector.values),
            vector,
            indexed,
        }
    }

    /// Adds or replaces a stored vector.
    pub(crate) fn put(&mut self, stored: Stored) {
        if let Some(&slot) = self.by_id.get(&stored.vector.id) {
            self.slots[slot] = stored;
        } else {
            self.by_id
                .insert(stored.vector.id.clone(), self.slots.len());
            self.slots.push(stored);
        }
    }

    fn remove(&mut self, id: &str) -> bool {
        let Some(slot) = self.by_id.remove(id) else {
            return false;
        };
        self.slots.swap_remove(slot);
        if let Some(moved) = self.slots.get(slot) {
            self.by_id.insert(moved.vector.id.clone(), slot);
        }
        true
    }

    /// The metadata indexes once every pending mutation is applied.
    pub(crate) fn projected_metadata_indexes(&self) -> Vec<(String, IndexType)> {
        let mut list = self.metadata_indexes.clone();
        for pending in &self.pending {
            apply_metadata_op(&mut list, &pending.op);
        }
        list
    }

    /// Applies one mutation.
    pub(crate) fn apply(&mut self, pending: &Pending, now_us: u64) -> Applied {
        let mut applied = Applied::default();
        match &pending.op {
            Op::Insert { vectors } | Op::Upsert { vectors } => {
                let replace = matches!(pending.op, Op::Upsert { .. });
                for vector in vectors {
                    if !replace && self.by_id.contains_key(&vector.id) {
                        continue;
                    }
                    applied.written.push(vector.id.clone());
                    let stored = self.store(vector.clone());
                    self.put(stored);
                }
            }
            Op::Delete { ids } => {
                for id in ids {
                    if self.remove(id) {
                        applied.deleted.push(id.clone());
                    }
                }
            }
            Op::CreateMetadataIndex { .. } => {
                apply_metadata_op(&mut self.metadata_indexes, &pending.op);
            }
            Op::DeleteMetadataIndex { property } => {
                apply_metadata_op(&mut self.metadata_indexes, &pending.op);
                for stored in &mut self.slots {
                    if stored.indexed.remove(property).is_some() {
                        applied.written.push(stored.vector.id.clone());
                    }
                }
            }
        }
        self.processed_mutation = Some(pending.id.clone());
        self.processed_us = Some(now_us);
        applied
    }

    /// Pops the mutations due at `now_ms`, oldest first.
    pub(crate) fn due(&mut self, now_ms: u64) -> Vec<Pending> {
        let mut due = Vec::new();
        while self.pending.front().is_some_and(|p| p.due_ms <= now_ms) {
            if let Some(p) = self.pending.pop_front() {
                due.push(p);
            }
        }
        due
    }

    /// The `top_k` nearest visible vectors: `(slot, score)`, best first (ties by id).
    pub(crate) fn search(&self, search: &Search<'_>) -> Vec<(usize, f64)> {
        let query_norm = norm(search.vector);
        let mut scored: Vec<(usize, f64)> = Vec::new();
        for (slot, stored) in self.slots.iter().enumerate() {
            if let Some(ns) = search.namespace
                && stored.vector.namespace.as_deref() != Some(ns)
            {
                continue;
            }
            if let Some(filter) = search.filter
                && !filter.matches(&stored.indexed)
            {
                continue;
            }
            let values = &stored.vector.values;
            let score = match self.metric {
                Metric::Cosine => {
                    let denominator = query_norm * stored.norm;
                    if denominator > 0.0 {
                        (f64::from(dot(search.vector, values)) / f64::from(denominator))
                            .clamp(-1.0, 1.0)
                    } else {
                        0.0
                    }
                }
                Metric::Euclidean => f64::from(squared_distance(search.vector, values)).sqrt(),
                Metric::DotProduct => -f64::from(dot(search.vector, values)),
            };
            scored.push((slot, score));
        }
        let higher = self.metric.higher_is_closer();
        let order = |a: &(usize, f64), b: &(usize, f64)| {
            let by_score = if higher {
                b.1.total_cmp(&a.1)
            } else {
                a.1.total_cmp(&b.1)
            };
            by_score.then_with(|| self.slots[a.0].vector.id.cmp(&self.slots[b.0].vector.id))
        };
        if scored.len() > search.top_k && search.top_k > 0 {
            scored.select_nth_unstable_by(search.top_k - 1, order);
            scored.truncate(search.top_k);
        }
        scored.truncate(search.top_k);
        scored.sort_by(order);
        scored
    }
}

fn apply_metadata_op(list: &mut Vec<(String, IndexType)>, op: &Op) {
    match op {
        Op::CreateMetadataIndex {
            property,
            index_type,
        } => {
            if let Some(existing) = list.iter_mut().find(|(p, _)| p == property) {
                existing.1 = *index_type;
            } else {
                list.push((property.clone(), *index_type));
            }
        }
        Op::DeleteMetadataIndex { property } => list.retain(|(p, _)| p != property),
        _ => {}
    }
}

/// The indexed values of a stored vector as a (nested) metadata object, for
/// `returnMetadata: "indexed"`.
pub(crate) fn indexed_metadata(stored: &Stored) -> Map<String, Value> {
    fn insert(node: &mut Map<String, Value>, segments: &[&str], value: Value) {
        match segments {
            [] => {}
            [last] => {
                node.insert((*last).to_owned(), value);
            }
            [first, rest @ ..] => {
                let entry = node
                    .entry((*first).to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(child) = entry {
                    insert(child, rest, value);
                }
            }
        }
    }
    let mut out = Map::new();
    let mut keys: Vec<&String> = stored.indexed.keys().collect();
    keys.sort();
    for key in keys {
        let segments: Vec<&str> = key.split('.').collect();
        insert(&mut out, &segments, stored.indexed[key].to_json());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(id: &str, values: &[f32], metadata: Value) -> NewVector {
        NewVector {
            id: id.into(),
            values: values.to_vec(),
            metadata: metadata.as_object().cloned(),
            namespace: None,
        }
    }

    fn mutation(id: &str, op: Op) -> Pending {
        Pending {
            id: id.into(),
            due_ms: 0,
            op,
        }
    }

    #[test]
    fn scores_follow_the_documented_metrics() {
        for (metric, expected) in [
            (Metric::Cosine, vec![("a", 1.0), ("b", 0.0), ("c", -1.0)]),
            (
                Metric::Euclidean,
                vec![("a", 1.0), ("b", 2f64.sqrt()), ("c", 2.0)],
            ),
            (
                Metric::DotProduct,
                vec![("a", -2.0), ("b", 0.0), ("c", 1.0)],
            ),
        ] {
            let mut index = Index::new("i".into(), None, 2, metric, 0);
            index.apply(
                &mutation(
                    "m",
                    Op::Upsert {
                        vectors: vec![
                            v("c", &[-1.0, 0.0], json!(null)),
                            v("a", &[2.0, 0.0], json!(null)),
                            v("b", &[0.0, 1.0], json!(null)),
                        ],
                    },
                ),
                0,
            );
            let hits = index.search(&Search {
                vector: &[1.0, 0.0],
                top_k: 10,
                namespace: None,
                filter: None,
            });
            let got: Vec<(&str, f64)> = hits
                .iter()
                .map(|(s, score)| (index.slots[*s].vector.id.as_str(), *score))
                .collect();
            assert_eq!(got.len(), 3);
            for ((gid, gs), (eid, es)) in got.iter().zip(&expected) {
                assert_eq!(gid, eid, "{metric:?}");
                assert!((gs - es).abs() < 1e-6, "{metric:?} {gs} {es}");
            }
        }
    }

    #[test]
    fn insert_keeps_first_upsert_replaces_delete_swaps() {
        let mut index = Index::new("i".into(), None, 1, Metric::Euclidean, 0);
        index.apply(
            &mutation(
                "1",
                Op::Insert {
                    vectors: vec![v("a", &[1.0], json!(null)), v("a", &[2.0], json!(null))],
                },
            ),
            0,
        );
        assert_eq!(index.slots[index.by_id["a"]].vector.values, vec![1.0]);
        index.apply(
            &mutation(
                "2",
                Op::Upsert {
                    vectors: vec![v("a", &[3.0], json!(null)), v("b", &[4.0], json!(null))],
                },
            ),
            0,
        );
        assert_eq!(index.slots[index.by_id["a"]].vector.values, vec![3.0]);
        index.apply(
            &mutation(
                "3",
                Op::Delete {
                    ids: vec!["a".into(), "zz".into()],
                },
            ),
            0,
        );
        assert_eq!(index.slots.len(), 1);
        assert_eq!(index.by_id["b"], 0);
        assert_eq!(index.processed_mutation.as_deref(), Some("3"));
    }

    #[test]
    fn metadata_is_indexed_only_when_written_after_the_index() {
        let mut index = Index::new("i".into(), None, 1, Metric::Cosine, 0);
        index.apply(
            &mutation(
                "1",
                Op::Upsert {
                    vectors: vec![v("old", &[1.0], json!({"k": "x", "n": {"d": 1}}))],
                },
            ),
            0,
        );
        for (property, index_type) in [("k", IndexType::String), ("n.d", IndexType::Number)] {
            index.apply(
                &mutation(
                    "2",
                    Op::CreateMetadataIndex {
                        property: property.into(),
                        index_type,
                    },
                ),
                0,
            );
        }
        index.apply(
            &mutation(
                "3",
                Op::Upsert {
                    vectors: vec![v("new", &[1.0], json!({"k": "x", "n": {"d": 1}}))],
                },
            ),
            0,
        );
        let filter = Filter::parse(&json!({"k": "x", "n.d": 1})).unwrap();
        let hits = index.search(&Search {
            vector: &[1.0],
            top_k: 5,
            namespace: None,
            filter: Some(&filter),
        });
        assert_eq!(hits.len(), 1);
        assert_eq!(index.slots[hits[0].0].vector.id, "new");
        assert_eq!(
            Value::Object(indexed_metadata(&index.slots[hits[0].0])),
            json!({"k": "x", "n": {"d": 1}})
        );
    }
}
