//! Request and response models of the Vectorize v2 API (field names as in Cloudflare's
//! OpenAPI spec), and the validation of the values they carry.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::VectorizeError;
use crate::filter::Filter;
use crate::{
    MAX_DIMENSIONS, MAX_ID_BYTES, MAX_INDEX_NAME_BYTES, MAX_LIST_COUNT, MAX_METADATA_BYTES,
    MAX_NAMESPACE_BYTES, MAX_TOP_K, MAX_TOP_K_WITH_VALUES_OR_METADATA,
};

/// Metadata of a vector: a JSON object.
pub type Metadata = Map<String, Value>;

/// The distance metric of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Cosine similarity (scores from -1 to 1, higher is closer).
    Cosine,
    /// Euclidean (L2) distance (lower is closer).
    Euclidean,
    /// Dot product (higher is closer).
    DotProduct,
}

/// A preset configuration: the dimensions and metric of a known embedding model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Preset {
    /// `@cf/baai/bge-small-en-v1.5` (384 dimensions).
    #[serde(rename = "@cf/baai/bge-small-en-v1.5")]
    BgeSmallEnV15,
    /// `@cf/baai/bge-base-en-v1.5` (768 dimensions).
    #[serde(rename = "@cf/baai/bge-base-en-v1.5")]
    BgeBaseEnV15,
    /// `@cf/baai/bge-large-en-v1.5` (1024 dimensions).
    #[serde(rename = "@cf/baai/bge-large-en-v1.5")]
    BgeLargeEnV15,
    /// `openai/text-embedding-ada-002` (1536 dimensions).
    #[serde(rename = "openai/text-embedding-ada-002")]
    OpenAiTextEmbeddingAda002,
    /// `cohere/embed-multilingual-v2.0` (768 dimensions).
    #[serde(rename = "cohere/embed-multilingual-v2.0")]
    CohereEmbedMultilingualV20,
}

impl Preset {
    /// The dimensions of the model's embeddings.
    #[must_use]
    pub const fn dimensions(self) -> u32 {
        match self {
            Self::BgeSmallEnV15 => 384,
            Self::BgeBaseEnV15 | Self::CohereEmbedMultilingualV20 => 768,
            Self::BgeLargeEnV15 => 1024,
            Self::OpenAiTextEmbeddingAda002 => 1536,
        }
    }
}

/// How a new index is configured: explicit dimensions and metric, or a [`Preset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IndexConfig {
    /// Explicit dimensions (1 to [`MAX_DIMENSIONS`]) and metric.
    Dimensions {
        /// Dimensions of every vector.
        dimensions: u32,
        /// The distance metric.
        metric: Metric,
    },
    /// A model preset.
    Preset {
        /// The preset.
        preset: Preset,
    },
}

impl IndexConfig {
    /// The dimensions vectors of this index have.
    #[must_use]
    pub const fn dimensions(&self) -> u32 {
        match self {
            Self::Dimensions { dimensions, .. } => *dimensions,
            Self::Preset { preset } => preset.dimensions(),
        }
    }
}

/// Request: create an index (`POST /accounts/{a}/vectorize/v2/indexes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateIndex {
    /// The index name (1 to [`MAX_INDEX_NAME_BYTES`] bytes).
    pub name: String,
    /// Dimensions and metric, or a preset.
    pub config: IndexConfig,
    /// A free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl CreateIndex {
    /// An index `name` of `dimensions` dimensions compared by `metric`.
    #[must_use]
    pub fn new(name: impl Into<String>, dimensions: u32, metric: Metric) -> Self {
        Self {
            name: name.into(),
            config: IndexConfig::Dimensions { dimensions, metric },
            description: None,
        }
    }

    /// An index `name` configured by `preset`.
    #[must_use]
    pub fn with_preset(name: impl Into<String>, preset: Preset) -> Self {
        Self {
            name: name.into(),
            config: IndexConfig::Preset { preset },
            description: None,
        }
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Checks the name and the dimensions.
    ///
    /// # Errors
    ///
    /// [`VectorizeError::InvalidIndexName`] or [`VectorizeError::DimensionsOutOfRange`].
    pub fn validate(&self) -> Result<(), VectorizeError> {
        validate_index_name(&self.name)?;
        let dimensions = self.config.dimensions();
        if dimensions == 0 || dimensions > MAX_DIMENSIONS {
            return Err(VectorizeError::DimensionsOutOfRange { actual: dimensions });
        }
        Ok(())
    }
}

/// The dimensions and metric of an existing index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDimensionConfig {
    /// Dimensions of every vector.
    pub dimensions: u32,
    /// The distance metric.
    pub metric: Metric,
}

/// An index as Cloudflare describes it (create, get, list). Every field is optional in
/// the spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndexDescription {
    /// The index name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Dimensions and metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<IndexDimensionConfig>,
    /// The description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Creation time (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_on: Option<String>,
    /// Last modification time (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_on: Option<String>,
}

/// Request: get an index (`GET .../indexes/{name}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GetIndex {
    /// The index name.
    pub name: String,
}

/// Request: delete an index (`DELETE .../indexes/{name}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeleteIndex {
    /// The index name.
    pub name: String,
}

/// Request: list the account's indexes (`GET .../indexes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ListIndexes;

/// Request: an index's statistics (`GET .../indexes/{name}/info`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct GetIndexInfo;

/// An index's statistics. Mutations are asynchronous: `processed_up_to_mutation` tells
/// which writes are visible.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexInfo {
    /// Dimensions of every vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// Number of vectors in the index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_count: Option<u64>,
    /// The last mutation applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_up_to_mutation: Option<String>,
    /// When the last mutation batch was applied (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_up_to_datetime: Option<String>,
}

/// A vector: what insert and upsert send (one NDJSON line each) and get-by-ids returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vector {
    /// The id (1 to [`MAX_ID_BYTES`] bytes).
    pub id: String,
    /// The values, one per index dimension (finite float32).
    #[serde(default)]
    pub values: Vec<f32>,
    /// Metadata (at most [`MAX_METADATA_BYTES`] as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// The namespace (1 to [`MAX_NAMESPACE_BYTES`] bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl Vector {
    /// A vector without metadata or namespace.
    #[must_use]
    pub fn new(id: impl Into<String>, values: Vec<f32>) -> Self {
        Self {
            id: id.into(),
            values,
            metadata: None,
            namespace: None,
        }
    }

    /// Sets the metadata.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// Sets the namespace.
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Checks the id, the values (against `dimensions` when known), the metadata size and
    /// the namespace.
    ///
    /// # Errors
    ///
    /// The first limit broken, as a [`VectorizeError`] validation variant.
    pub fn validate(&self, dimensions: Option<u32>) -> Result<(), VectorizeError> {
        validate_id(&self.id)?;
        validate_values(&self.id, &self.values, dimensions)?;
        if let Some(metadata) = &self.metadata {
            let actual = serde_json::to_vec(metadata).map_or(usize::MAX, |bytes| bytes.len());
            if actual > MAX_METADATA_BYTES {
                return Err(VectorizeError::MetadataTooLarge {
                    id: self.id.clone(),
                    actual,
                });
            }
        }
        if let Some(namespace) = &self.namespace {
            validate_namespace(namespace)?;
        }
        Ok(())
    }
}

/// Request: insert vectors (`POST .../insert`, NDJSON). Not idempotent: an id that
/// exists already is an error, so a chunk is never retried.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct InsertVectors {
    /// The vectors.
    pub vectors: Vec<Vector>,
}

/// Request: insert or replace vectors (`POST .../upsert`, NDJSON). Idempotent.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct UpsertVectors {
    /// The vectors.
    pub vectors: Vec<Vector>,
}

/// The result of one asynchronous mutation: its id. The change is visible once
/// [`IndexInfo::processed_up_to_mutation`] reaches it (usually after a few seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mutation {
    /// The mutation id.
    pub mutation_id: String,
}

/// The result of a chunked insert or upsert: one mutation per chunk, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MutationBatch {
    /// The mutation id of each chunk, in input order.
    pub mutation_ids: Vec<String>,
    /// Vectors sent.
    pub vectors: usize,
}

impl MutationBatch {
    /// The last mutation id: once [`IndexInfo::processed_up_to_mutation`] reaches it, the
    /// whole batch is visible. `None` when nothing was sent.
    #[must_use]
    pub fn last_mutation_id(&self) -> Option<&str> {
        self.mutation_ids.last().map(String::as_str)
    }
}

/// Which metadata a query returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReturnMetadata {
    /// No metadata (the default).
    #[default]
    None,
    /// Only indexed metadata properties.
    Indexed,
    /// All metadata (caps topK at [`MAX_TOP_K_WITH_VALUES_OR_METADATA`]).
    All,
}

/// Request: nearest-neighbour query (`POST .../query`). Read-only, so retried.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryVectors {
    /// The query vector.
    pub vector: Vec<f32>,
    /// Results wanted: 1 to [`MAX_TOP_K`], or to [`MAX_TOP_K_WITH_VALUES_OR_METADATA`] with
    /// values or all metadata.
    pub top_k: u32,
    /// Whether to return the matches' values.
    pub return_values: bool,
    /// Which metadata to return.
    pub return_metadata: ReturnMetadata,
    /// A metadata filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    /// Only search this namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl QueryVectors {
    /// Default topK of a query (the API's default).
    pub const DEFAULT_TOP_K: u32 = 5;

    /// A query for the [`Self::DEFAULT_TOP_K`] nearest neighbours of `vector`, without
    /// values or metadata.
    #[must_use]
    pub fn new(vector: Vec<f32>) -> Self {
        Self {
            vector,
            top_k: Self::DEFAULT_TOP_K,
            return_values: false,
            return_metadata: ReturnMetadata::None,
            filter: None,
            namespace: None,
        }
    }

    /// Sets topK.
    #[must_use]
    pub fn top_k(mut self, top_k: u32) -> Self {
        self.top_k = top_k;
        self
    }

    /// Sets whether values are returned.
    #[must_use]
    pub fn return_values(mut self, return_values: bool) -> Self {
        self.return_values = return_values;
        self
    }

    /// Sets which metadata is returned.
    #[must_use]
    pub fn return_metadata(mut self, return_metadata: ReturnMetadata) -> Self {
        self.return_metadata = return_metadata;
        self
    }

    /// Sets the metadata filter.
    #[must_use]
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Restricts the query to `namespace`.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// The topK cap that applies to this query.
    #[must_use]
    pub fn max_top_k(&self) -> u32 {
        if self.return_values || self.return_metadata == ReturnMetadata::All {
            MAX_TOP_K_WITH_VALUES_OR_METADATA
        } else {
            MAX_TOP_K
        }
    }

    /// Checks the vector (against `dimensions` when known), topK, the filter and the
    /// namespace.
    ///
    /// # Errors
    ///
    /// The first limit broken, as a [`VectorizeError`] validation variant.
    pub fn validate(&self, dimensions: Option<u32>) -> Result<(), VectorizeError> {
        validate_values("query", &self.vector, dimensions)?;
        let max = self.max_top_k();
        if self.top_k == 0 || self.top_k > max {
            let capped = max == MAX_TOP_K_WITH_VALUES_OR_METADATA;
            return Err(VectorizeError::TopKOutOfRange {
                actual: self.top_k,
                max,
                when: if capped {
                    "when returnValues is true or returnMetadata is \"all\""
                } else {
                    "without values or all metadata"
                },
                constant: if capped {
                    "MAX_TOP_K_WITH_VALUES_OR_METADATA"
                } else {
                    "MAX_TOP_K"
                },
                advice: if capped {
                    "lower topK, or query without values and with returnMetadata \"indexed\" or \
                     \"none\" and fetch the rest with get_by_ids"
                } else {
                    "lower topK"
                },
            });
        }
        if let Some(filter) = &self.filter {
            filter.validate()?;
        }
        if let Some(namespace) = &self.namespace {
            validate_namespace(namespace)?;
        }
        Ok(())
    }
}

/// The result of a query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// Number of matches.
    #[serde(default)]
    pub count: u64,
    /// The matches, best first.
    #[serde(default)]
    pub matches: Vec<QueryMatch>,
}

/// One match of a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryMatch {
    /// The vector id.
    pub id: String,
    /// The score under the index's metric (cosine: -1 to 1, higher is closer).
    pub score: f64,
    /// The values, if asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<f32>>,
    /// The metadata, if asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// The namespace, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Request: fetch vectors by id (`POST .../get_by_ids`). Read-only, so retried.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GetByIds {
    /// The ids.
    pub ids: Vec<String>,
}

/// Request: delete vectors by id (`POST .../delete_by_ids`). Idempotent (deleting twice
/// is harmless), so retried.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeleteByIds {
    /// The ids.
    pub ids: Vec<String>,
}

/// Request: a page of vector ids (`GET .../list?count=&cursor=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListVectors {
    /// Ids per page: 1 to [`MAX_LIST_COUNT`] (the API's default is 100).
    pub count: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListVectors {
    /// Checks `count`.
    ///
    /// # Errors
    ///
    /// [`VectorizeError::ListCountOutOfRange`].
    pub fn validate(&self) -> Result<(), VectorizeError> {
        match self.count {
            Some(count) if count == 0 || count > MAX_LIST_COUNT => {
                Err(VectorizeError::ListCountOutOfRange { actual: count })
            }
            _ => Ok(()),
        }
    }
}

/// A page of vector ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VectorIdPage {
    /// Ids in this page.
    pub count: u64,
    /// Vectors in the index.
    pub total_count: u64,
    /// Whether more pages follow.
    pub is_truncated: bool,
    /// The cursor of the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// When the cursor expires (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_expiration_timestamp: Option<String>,
    /// The ids.
    pub vectors: Vec<VectorId>,
}

/// One entry of a [`VectorIdPage`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorId {
    /// The vector id.
    pub id: String,
}

/// The type of an indexed metadata property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetadataIndexType {
    /// String values (the first 64 bytes are indexed).
    String,
    /// Numbers (float64 precision).
    Number,
    /// Booleans.
    Boolean,
}

/// Request: index a metadata property (`POST .../metadata_index/create`). At most
/// [`crate::MAX_METADATA_INDEXES`] per index; only vectors written afterwards are
/// filterable on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateMetadataIndex {
    /// The metadata property.
    pub property_name: String,
    /// Its type.
    pub index_type: MetadataIndexType,
}

/// Request: the index's metadata indexes (`GET .../metadata_index/list`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ListMetadataIndexes;

/// Request: drop a metadata index (`POST .../metadata_index/delete`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeleteMetadataIndex {
    /// The metadata property.
    pub property_name: String,
}

/// One metadata index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataIndex {
    /// The metadata property.
    pub property_name: String,
    /// Its type.
    pub index_type: MetadataIndexType,
}

/// The result of listing metadata indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MetadataIndexList {
    /// The metadata indexes.
    #[serde(default)]
    pub metadata_indexes: Vec<MetadataIndex>,
}

/// Checks an index name: 1 to [`MAX_INDEX_NAME_BYTES`] bytes.
///
/// # Errors
///
/// [`VectorizeError::InvalidIndexName`].
pub fn validate_index_name(name: &str) -> Result<(), VectorizeError> {
    if name.is_empty() || name.len() > MAX_INDEX_NAME_BYTES {
        return Err(VectorizeError::InvalidIndexName {
            name: name.to_owned(),
            actual: name.len(),
        });
    }
    Ok(())
}

/// Checks a vector id: 1 to [`MAX_ID_BYTES`] bytes.
///
/// # Errors
///
/// [`VectorizeError::InvalidId`].
pub(crate) fn validate_id(id: &str) -> Result<(), VectorizeError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(VectorizeError::InvalidId {
            id: id.to_owned(),
            actual: id.len(),
        });
    }
    Ok(())
}

/// Checks a namespace: 1 to [`MAX_NAMESPACE_BYTES`] bytes.
///
/// # Errors
///
/// [`VectorizeError::InvalidNamespace`].
pub(crate) fn validate_namespace(namespace: &str) -> Result<(), VectorizeError> {
    if namespace.is_empty() || namespace.len() > MAX_NAMESPACE_BYTES {
        return Err(VectorizeError::InvalidNamespace {
            namespace: namespace.to_owned(),
            actual: namespace.len(),
        });
    }
    Ok(())
}

/// Checks vector values: non-empty, at most [`MAX_DIMENSIONS`], `dimensions` long when
/// known, all finite.
///
/// # Errors
///
/// [`VectorizeError::EmptyValues`], [`VectorizeError::TooManyValues`],
/// [`VectorizeError::DimensionMismatch`] or [`VectorizeError::NonFiniteValue`].
pub(crate) fn validate_values(
    id: &str,
    values: &[f32],
    dimensions: Option<u32>,
) -> Result<(), VectorizeError> {
    if values.is_empty() {
        return Err(VectorizeError::EmptyValues { id: id.to_owned() });
    }
    if values.len() > MAX_DIMENSIONS as usize {
        return Err(VectorizeError::TooManyValues {
            id: id.to_owned(),
            actual: values.len(),
        });
    }
    if let Some(expected) = dimensions
        && values.len() != expected as usize
    {
        return Err(VectorizeError::DimensionMismatch {
            id: id.to_owned(),
            expected,
            actual: values.len(),
        });
    }
    if let Some((position, value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(VectorizeError::NonFiniteValue {
            id: id.to_owned(),
            position,
            value: *value,
        });
    }
    Ok(())
}

/// Refuses more ids than one `operation` call takes ([`crate::MAX_IDS_PER_CALL`]).
pub(crate) fn check_id_count(
    operation: &'static str,
    ids: &[String],
) -> Result<(), VectorizeError> {
    if ids.len() > crate::MAX_IDS_PER_CALL {
        return Err(VectorizeError::TooManyIds {
            operation,
            actual: ids.len(),
        });
    }
    Ok(())
}

/// Checks a list of ids for get/delete by ids.
pub(crate) fn validate_ids(ids: &[String]) -> Result<(), VectorizeError> {
    ids.iter().try_for_each(|id| validate_id(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn twenty_ids_pass_and_twenty_one_are_refused_naming_the_cap() {
        let ids: Vec<String> = (0..21).map(|i| format!("v{i}")).collect();
        assert!(check_id_count("get_by_ids", &ids[..20]).is_ok());
        let err = check_id_count("delete_by_ids", &ids).unwrap_err();
        assert!(matches!(
            err,
            VectorizeError::TooManyIds {
                operation: "delete_by_ids",
                actual: 21
            }
        ));
        assert!(err.to_string().contains("at most 20"), "{err}");
    }

    #[test]
    fn create_index_serialises_both_config_shapes() {
        let explicit = CreateIndex::new("idx", 768, Metric::Cosine).description("notes");
        assert_eq!(
            serde_json::to_value(&explicit).unwrap(),
            json!({"name": "idx", "config": {"dimensions": 768, "metric": "cosine"}, "description": "notes"})
        );
        let preset = CreateIndex::with_preset("idx", Preset::CohereEmbedMultilingualV20);
        assert_eq!(
            serde_json::to_value(&preset).unwrap(),
            json!({"name": "idx", "config": {"preset": "cohere/embed-multilingual-v2.0"}})
        );
        assert_eq!(preset.config.dimensions(), 768);
        for (metric, text) in [
            (Metric::Cosine, "cosine"),
            (Metric::Euclidean, "euclidean"),
            (Metric::DotProduct, "dot-product"),
        ] {
            assert_eq!(serde_json::to_value(metric).unwrap(), json!(text));
        }
        let round: CreateIndex =
            serde_json::from_value(serde_json::to_value(&preset).unwrap()).unwrap();
        assert_eq!(round, preset);
        assert_eq!(Preset::OpenAiTextEmbeddingAda002.dimensions(), 1536);
        assert_eq!(Preset::BgeLargeEnV15.dimensions(), 1024);
    }

    #[test]
    fn create_index_validation() {
        CreateIndex::new("i", MAX_DIMENSIONS, Metric::Cosine)
            .validate()
            .unwrap();
        for dims in [0, MAX_DIMENSIONS + 1] {
            let err = CreateIndex::new("i", dims, Metric::Cosine)
                .validate()
                .unwrap_err();
            assert!(
                matches!(err, VectorizeError::DimensionsOutOfRange { actual } if actual == dims)
            );
            assert!(err.to_string().contains("MAX_DIMENSIONS"), "{err}");
        }
        let err = CreateIndex::new("", 3, Metric::Cosine)
            .validate()
            .unwrap_err();
        assert!(matches!(
            err,
            VectorizeError::InvalidIndexName { actual: 0, .. }
        ));
        validate_index_name(&"n".repeat(MAX_INDEX_NAME_BYTES)).unwrap();
    }

    #[test]
    fn responses_decode_the_spec_shapes() {
        let index: IndexDescription = serde_json::from_value(json!({
            "config": {"dimensions": 768, "metric": "dot-product"},
            "created_on": "2022-11-15T18:25:44.442097Z",
            "description": "This is my example index.",
            "modified_on": "2022-11-15T18:25:44.442097Z",
            "name": "example-index"
        }))
        .unwrap();
        assert_eq!(index.config.unwrap().metric, Metric::DotProduct);
        assert_eq!(
            serde_json::from_value::<IndexDescription>(json!({})).unwrap(),
            IndexDescription::default()
        );
        let info: IndexInfo = serde_json::from_value(json!({
            "dimensions": 768, "processedUpToDatetime": null,
            "processedUpToMutation": "0000aaaa-11bb-22cc-33dd-444444eeeeee", "vectorCount": 300000
        }))
        .unwrap();
        assert_eq!(info.vector_count, Some(300_000));
        assert_eq!(info.processed_up_to_datetime, None);
        let got: Vec<Vector> = serde_json::from_value(json!([
            {"id": "some-vector-id", "metadata": {"another-key": "another-value", "customer-id": 442}, "values": [0.812, 0.621, 0.261]},
            {"id": "other-vector-id", "metadata": {"customer-id": 2151}, "namespace": "namespaced", "values": [0.961, 0.751, 0.661]}
        ]))
        .unwrap();
        assert_eq!(got[1].namespace.as_deref(), Some("namespaced"));
        assert_eq!(got[0].metadata.as_ref().unwrap()["customer-id"], 442);
        let query: QueryResult = serde_json::from_value(json!({
            "count": 1,
            "matches": [{"id": "a", "score": -0.25, "values": null, "metadata": null, "namespace": null}]
        }))
        .unwrap();
        assert_eq!(query.matches[0].values, None);
        let page: VectorIdPage = serde_json::from_value(json!({
            "count": 100, "cursorExpirationTimestamp": "2025-08-12T20:32:52.469144957+00:00",
            "isTruncated": true, "nextCursor": null, "totalCount": 500, "vectors": [{"id": "x"}]
        }))
        .unwrap();
        assert!(page.is_truncated && page.next_cursor.is_none());
        let list: MetadataIndexList = serde_json::from_value(json!({"metadataIndexes": [
            {"indexType": "number", "propertyName": "some-num-prop"},
            {"indexType": "boolean", "propertyName": "some-bool-prop"}
        ]}))
        .unwrap();
        assert_eq!(
            list.metadata_indexes[1].index_type,
            MetadataIndexType::Boolean
        );
        let mutation: Mutation =
            serde_json::from_value(json!({"mutationId": "0000aaaa-11bb-22cc-33dd-444444eeeeee"}))
                .unwrap();
        assert_eq!(mutation.mutation_id.len(), 36);
    }

    #[test]
    fn query_serialises_camel_case_and_defaults() {
        let query = QueryVectors::new(vec![0.5, 0.5]);
        assert_eq!(
            serde_json::to_value(&query).unwrap(),
            json!({"vector": [0.5, 0.5], "topK": 5, "returnValues": false, "returnMetadata": "none"})
        );
        let all = query.clone().return_metadata(ReturnMetadata::All);
        assert_eq!(serde_json::to_value(&all).unwrap()["returnMetadata"], "all");
    }

    #[test]
    fn top_k_caps_depend_on_what_is_returned() {
        let base = QueryVectors::new(vec![1.0]);
        base.clone().top_k(MAX_TOP_K).validate(None).unwrap();
        base.clone()
            .top_k(MAX_TOP_K)
            .return_metadata(ReturnMetadata::Indexed)
            .validate(None)
            .unwrap();
        let err = base
            .clone()
            .top_k(MAX_TOP_K + 1)
            .validate(None)
            .unwrap_err();
        assert!(matches!(
            err,
            VectorizeError::TopKOutOfRange {
                actual: 101,
                max: 100,
                ..
            }
        ));
        assert!(err.to_string().contains("MAX_TOP_K)"), "{err}");
        let err = base.clone().top_k(0).validate(None).unwrap_err();
        assert!(matches!(
            err,
            VectorizeError::TopKOutOfRange { actual: 0, .. }
        ));
        for capped in [
            base.clone().return_values(true),
            base.clone().return_metadata(ReturnMetadata::All),
        ] {
            capped.clone().top_k(20).validate(None).unwrap();
            let err = capped.top_k(21).validate(None).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("21") && text.contains("20"), "{text}");
            assert!(text.contains("get_by_ids"), "{text}");
        }
        let err = base
            .clone()
            .filter(crate::Filter::new())
            .validate(None)
            .unwrap_err();
        assert!(matches!(err, VectorizeError::InvalidFilter { .. }));
        let err = base.namespace("n".repeat(65)).validate(None).unwrap_err();
        assert!(matches!(
            err,
            VectorizeError::InvalidNamespace { actual: 65, .. }
        ));
        assert!(err.to_string().contains("MAX_NAMESPACE_BYTES"), "{err}");
    }

    #[test]
    fn vector_validation_names_each_limit() {
        Vector::new("a".repeat(MAX_ID_BYTES), vec![1.0; MAX_DIMENSIONS as usize])
            .validate(Some(MAX_DIMENSIONS))
            .unwrap();
        // Multi-byte characters count in bytes.
        let err = Vector::new("é".repeat(33), vec![1.0])
            .validate(None)
            .unwrap_err();
        assert!(matches!(err, VectorizeError::InvalidId { actual: 66, .. }));
        assert!(err.to_string().contains("MAX_ID_BYTES"), "{err}");
        assert!(matches!(
            Vector::new("a", vec![]).validate(None).unwrap_err(),
            VectorizeError::EmptyValues { .. }
        ));
        let err = Vector::new("a", vec![0.0; 1537])
            .validate(None)
            .unwrap_err();
        assert!(matches!(
            err,
            VectorizeError::TooManyValues { actual: 1537, .. }
        ));
        assert!(err.to_string().contains("1536"), "{err}");
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let err = Vector::new("a", vec![0.0, bad]).validate(None).unwrap_err();
            assert!(
                matches!(err, VectorizeError::NonFiniteValue { position: 1, .. }),
                "{err:?}"
            );
        }
        let err = Vector::new("a", vec![0.0; 4])
            .validate(Some(3))
            .unwrap_err();
        assert!(
            err.to_string().contains("4 values but the index has 3"),
            "{err}"
        );

        let mut metadata = Metadata::new();
        // {"t":"…"} is 8 bytes of framing.
        metadata.insert("t".into(), json!("x".repeat(MAX_METADATA_BYTES - 8)));
        let fits = Vector::new("a", vec![1.0]).with_metadata(metadata.clone());
        fits.validate(None).unwrap();
        metadata.insert("t".into(), json!("x".repeat(MAX_METADATA_BYTES - 7)));
        let err = Vector::new("a", vec![1.0])
            .with_metadata(metadata)
            .validate(None)
            .unwrap_err();
        assert!(
            matches!(err, VectorizeError::MetadataTooLarge { actual, .. } if actual == MAX_METADATA_BYTES + 1)
        );
        assert!(
            err.to_string().contains("10241") && err.to_string().contains("10240"),
            "{err}"
        );

        let err = Vector::new("a", vec![1.0])
            .with_namespace("")
            .validate(None)
            .unwrap_err();
        assert!(matches!(
            err,
            VectorizeError::InvalidNamespace { actual: 0, .. }
        ));
    }

    #[test]
    fn list_count_bounds() {
        for ok in [None, Some(1), Some(MAX_LIST_COUNT)] {
            ListVectors {
                count: ok,
                cursor: None,
            }
            .validate()
            .unwrap();
        }
        for bad in [0, MAX_LIST_COUNT + 1] {
            let err = ListVectors {
                count: Some(bad),
                cursor: None,
            }
            .validate()
            .unwrap_err();
            assert!(matches!(err, VectorizeError::ListCountOutOfRange { actual } if actual == bad));
        }
    }
}
