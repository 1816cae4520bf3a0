//! [`VectorizeClient`] (index management) and [`IndexClient`] (one index's vectors and
//! metadata indexes): ergonomic async methods, the object-safe [`VectorizeApi`] and
//! [`IndexApi`] traits, and `tower::Service` impls over the typed request structs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use cloudflare_http::{
    Client, ServiceClient, body_request, empty_request, encode_segment, idempotent, json_request,
    not_idempotent,
};
use http::Method;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::error::VectorizeError;
use crate::ndjson::{ChunkLimits, ChunkSink, NDJSON_CONTENT_TYPE, WriteMode, write_chunks};
use crate::types::{
    CreateIndex, CreateMetadataIndex, DeleteByIds, DeleteIndex, DeleteMetadataIndex, GetByIds,
    GetIndex, GetIndexInfo, IndexDescription, IndexInfo, InsertVectors, ListIndexes,
    ListMetadataIndexes, ListVectors, MetadataIndex, MetadataIndexList, MetadataIndexType,
    Mutation, MutationBatch, QueryResult, QueryVectors, UpsertVectors, Vector, VectorIdPage,
    check_id_count, validate_ids, validate_index_name,
};

/// The name of this crate's service in [`Client::service`].
pub(crate) const SERVICE: &str = "vectorize";

/// The boxed future of this crate's `tower::Service` impls.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, VectorizeError>> + Send>>;

/// Index management for one account: create, get, delete and list indexes; hands out
/// [`IndexClient`]s. Cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct VectorizeClient {
    service: ServiceClient,
}

impl VectorizeClient {
    /// A client over `client`'s `"vectorize"` service (its own circuit breaker; shared
    /// retries, rate limit and accounting).
    #[must_use]
    pub fn new(client: &Client) -> Self {
        Self::from_service(client.service(SERVICE))
    }

    /// A client over an existing service client.
    #[must_use]
    pub fn from_service(service: ServiceClient) -> Self {
        Self { service }
    }

    /// The underlying service client.
    #[must_use]
    pub fn service(&self) -> &ServiceClient {
        &self.service
    }

    /// The client of index `name` (the name is checked on each call).
    #[must_use]
    pub fn index(&self, name: impl Into<String>) -> IndexClient {
        IndexClient {
            service: self.service.clone(),
            name: Arc::from(name.into()),
            dimensions: None,
            limits: ChunkLimits::default(),
        }
    }

    fn indexes_path(&self) -> String {
        format!(
            "/accounts/{}/vectorize/v2/indexes",
            encode_segment(self.service.account_id())
        )
    }

    fn index_path(&self, name: &str) -> Result<String, VectorizeError> {
        validate_index_name(name)?;
        Ok(format!("{}/{}", self.indexes_path(), encode_segment(name)))
    }

    /// Creates an index. Not retried (a second create would conflict).
    ///
    /// # Errors
    ///
    /// A validation error ([`CreateIndex::validate`]) or the API's.
    pub async fn create_index(
        &self,
        request: &CreateIndex,
    ) -> Result<IndexDescription, VectorizeError> {
        request.validate()?;
        let http = not_idempotent(json_request(Method::POST, &self.indexes_path(), request)?);
        result(&self.service, "create_index", http).await
    }

    /// Describes index `name`.
    ///
    /// # Errors
    ///
    /// [`VectorizeError::InvalidIndexName`] or the API's (404 for an unknown index).
    pub async fn get_index(&self, name: &str) -> Result<IndexDescription, VectorizeError> {
        let http = empty_request(Method::GET, &self.index_path(name)?)?;
        result(&self.service, "get_index", http).await
    }

    /// Deletes index `name` and all its vectors.
    ///
    /// # Errors
    ///
    /// [`VectorizeError::InvalidIndexName`] or the API's.
    pub async fn delete_index(&self, name: &str) -> Result<(), VectorizeError> {
        let http = empty_request(Method::DELETE, &self.index_path(name)?)?;
        let _: IgnoredAny = result(&self.service, "delete_index", http).await?;
        Ok(())
    }

    /// Lists the account's indexes.
    ///
    /// # Errors
    ///
    /// The API's.
    pub async fn list_indexes(&self) -> Result<Vec<IndexDescription>, VectorizeError> {
        let http = empty_request(Method::GET, &self.indexes_path())?;
        result(&self.service, "list_indexes", http).await
    }
}

/// One index: vector writes, queries, ids and metadata indexes. Cheap to clone,
/// `Send + Sync`.
///
/// Writes are asynchronous on Cloudflare's side: they return a mutation id at once and
/// become visible to queries after a few seconds, when [`IndexInfo`]'s
/// `processed_up_to_mutation` reaches it.
#[derive(Debug, Clone)]
pub struct IndexClient {
    service: ServiceClient,
    name: Arc<str>,
    dimensions: Option<u32>,
    limits: ChunkLimits,
}

impl IndexClient {
    /// The index name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The index's dimensions, if set with [`IndexClient::with_dimensions`].
    #[must_use]
    pub fn dimensions(&self) -> Option<u32> {
        self.dimensions
    }

    /// Declares the index's dimensions, so every written and query vector is checked
    /// against them before sending.
    #[must_use]
    pub fn with_dimensions(mut self, dimensions: u32) -> Self {
        self.dimensions = Some(dimensions);
        self
    }

    /// Sets the chunk limits of inserts and upserts (default: Vectorize's maximums).
    #[must_use]
    pub fn with_chunk_limits(mut self, limits: ChunkLimits) -> Self {
        self.limits = ChunkLimits::new(limits.max_vectors, limits.max_bytes);
        self
    }

    /// The chunk limits of inserts and upserts.
    #[must_use]
    pub fn chunk_limits(&self) -> ChunkLimits {
        self.limits
    }

    fn path(&self, suffix: &str) -> Result<String, VectorizeError> {
        validate_index_name(&self.name)?;
        Ok(format!(
            "/accounts/{}/vectorize/v2/indexes/{}/{suffix}",
            encode_segment(self.service.account_id()),
            encode_segment(&self.name)
        ))
    }

    /// The index's dimensions, vector count and last processed mutation.
    ///
    /// # Errors
    ///
    /// [`VectorizeError::InvalidIndexName`] or the API's.
    pub async fn info(&self) -> Result<IndexInfo, VectorizeError> {
        let http = empty_request(Method::GET, &self.path("info")?)?;
        result(&self.service, "info", http).await
    }

    /// Inserts `vectors` (an existing id is an error), in chunks of at most
    /// [`crate::MAX_VECTORS_PER_UPSERT`] vectors and [`crate::MAX_UPSERT_BYTES`] bytes.
    /// Chunks are never retried. An empty input sends nothing.
    ///
    /// # Errors
    ///
    /// A validation error (nothing sent), the API's for chunk 1, or
    /// [`VectorizeError::PartialWrite`] for a later chunk.
    pub async fn insert(&self, vectors: &[Vector]) -> Result<MutationBatch, VectorizeError> {
        self.path("insert")?;
        write_chunks(
            self,
            WriteMode::Insert,
            vectors,
            self.dimensions,
            self.limits,
        )
        .await
    }

    /// Inserts or replaces `vectors`, chunked like [`IndexClient::insert`]. Each chunk is
    /// idempotent, so it is retried; after a [`VectorizeError::PartialWrite`] the whole
    /// call can simply be repeated.
    ///
    /// # Errors
    ///
    /// As [`IndexClient::insert`].
    pub async fn upsert(&self, vectors: &[Vector]) -> Result<MutationBatch, VectorizeError> {
        self.path("upsert")?;
        write_chunks(
            self,
            WriteMode::Upsert,
            vectors,
            self.dimensions,
            self.limits,
        )
        .await
    }

    /// The nearest neighbours of a vector. Read-only, so retried.
    ///
    /// # Errors
    ///
    /// A validation error ([`QueryVectors::validate`]) or the API's.
    pub async fn query(&self, query: &QueryVectors) -> Result<QueryResult, VectorizeError> {
        query.validate(self.dimensions)?;
        let http = idempotent(json_request(Method::POST, &self.path("query")?, query)?);
        result(&self.service, "query", http).await
    }

    /// The vectors with these ids (unknown ids are skipped). Read-only, so retried. An
    /// empty list returns nothing without a request.
    ///
    /// # Errors
    ///
    /// [`VectorizeError::TooManyIds`] for more than [`MAX_IDS_PER_CALL`] ids (nothing is
    /// sent), [`VectorizeError::InvalidId`] or the API's.
    pub async fn get_by_ids(&self, ids: &[String]) -> Result<Vec<Vector>, VectorizeError> {
        check_id_count("get_by_ids", ids)?;
        validate_ids(ids)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let body = GetByIds { ids: ids.to_vec() };
        let http = idempotent(json_request(
            Method::POST,
            &self.path("get_by_ids")?,
            &body,
        )?);
        result(&self.service, "get_by_ids", http).await
    }

    /// Deletes the vectors with these ids (unknown ids are ignored). Idempotent, so
    /// retried.
    ///
    /// # Errors
    ///
    /// [`VectorizeError::Empty`] for no ids, [`VectorizeError::TooManyIds`] for more than
    /// [`MAX_IDS_PER_CALL`] (nothing is sent), [`VectorizeError::InvalidId`] or the API's.
    pub async fn delete_by_ids(&self, ids: &[String]) -> Result<Mutation, VectorizeError> {
        if ids.is_empty() {
            return Err(VectorizeError::Empty { what: "vector ids" });
        }
        check_id_count("delete_by_ids", ids)?;
        validate_ids(ids)?;
        let body = DeleteByIds { ids: ids.to_vec() };
        let http = idempotent(json_request(
            Method::POST,
            &self.path("delete_by_ids")?,
            &body,
        )?);
        result(&self.service, "delete_by_ids", http).await
    }

    /// A page of vector ids; pass the page's `next_cursor` to get the next one.
    ///
    /// # Errors
    ///
    /// [`VectorizeError::ListCountOutOfRange`] or the API's.
    pub async fn list_vectors(
        &self,
        request: &ListVectors,
    ) -> Result<VectorIdPage, VectorizeError> {
        request.validate()?;
        let mut path = self.path("list")?;
        let mut sep = '?';
        if let Some(count) = request.count {
            path.push_str(&format!("{sep}count={count}"));
            sep = '&';
        }
        if let Some(cursor) = &request.cursor {
            path.push_str(&format!("{sep}cursor={}", encode_segment(cursor)));
        }
        let http = empty_request(Method::GET, &path)?;
        result(&self.service, "list_vectors", http).await
    }

    /// Indexes metadata property `property_name` as `index_type`, so filters can use it
    /// (for vectors written afterwards). At most [`crate::MAX_METADATA_INDEXES`] per index:
    /// Cloudflare refuses more. Not retried.
    ///
    /// # Errors
    ///
    /// [`VectorizeError::EmptyPropertyName`] or the API's.
    pub async fn create_metadata_index(
        &self,
        property_name: &str,
        index_type: MetadataIndexType,
    ) -> Result<Mutation, VectorizeError> {
        if property_name.is_empty() {
            return Err(VectorizeError::EmptyPropertyName);
        }
        let body = CreateMetadataIndex {
            property_name: property_name.to_owned(),
            index_type,
        };
        let http = json_request(Method::POST, &self.path("metadata_index/create")?, &body)?;
        result(&self.service, "create_metadata_index", http).await
    }

    /// The index's metadata indexes.
    ///
    /// # Errors
    ///
    /// The API's.
    pub async fn list_metadata_indexes(&self) -> Result<Vec<MetadataIndex>, VectorizeError> {
        let http = empty_request(Method::GET, &self.path("metadata_index/list")?)?;
        let list: MetadataIndexList = result(&self.service, "list_metadata_indexes", http).await?;
        Ok(list.metadata_indexes)
    }

    /// Drops the metadata index on `property_name`. Not retried.
    ///
    /// # Errors
    ///
    /// [`VectorizeError::EmptyPropertyName`] or the API's.
    pub async fn delete_metadata_index(
        &self,
        property_name: &str,
    ) -> Result<Mutation, VectorizeError> {
        if property_name.is_empty() {
            return Err(VectorizeError::EmptyPropertyName);
        }
        let body = DeleteMetadataIndex {
            property_name: property_name.to_owned(),
        };
        let http = json_request(Method::POST, &self.path("metadata_index/delete")?, &body)?;
        result(&self.service, "delete_metadata_index", http).await
    }
}

#[async_trait]
impl ChunkSink for IndexClient {
    /// POSTs one NDJSON chunk to `insert` (never retried) or `upsert` (retried).
    async fn send_chunk(
        &self,
        mode: WriteMode,
        body: Bytes,
        _vectors: usize,
    ) -> Result<Mutation, VectorizeError> {
        let request = body_request(
            Method::POST,
            &self.path(mode.as_str())?,
            Some(NDJSON_CONTENT_TYPE),
            body,
        )?;
        let request = match mode {
            WriteMode::Insert => not_idempotent(request),
            WriteMode::Upsert => idempotent(request),
        };
        result(&self.service, mode.as_str(), request).await
    }
}

/// Sends `request` as `operation` and returns the envelope's `result`.
async fn result<T: DeserializeOwned>(
    service: &ServiceClient,
    operation: &'static str,
    request: cloudflare_http::HttpRequest,
) -> Result<T, VectorizeError> {
    Ok(service.send_json(operation, request).await?.result)
}

/// Index management, object-safe (mock it with `MockVectorizeApi`, feature `mock`).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait VectorizeApi: Send + Sync {
    /// See [`VectorizeClient::create_index`].
    async fn create_index(&self, request: CreateIndex) -> Result<IndexDescription, VectorizeError>;
    /// See [`VectorizeClient::get_index`].
    async fn get_index(&self, name: String) -> Result<IndexDescription, VectorizeError>;
    /// See [`VectorizeClient::delete_index`].
    async fn delete_index(&self, name: String) -> Result<(), VectorizeError>;
    /// See [`VectorizeClient::list_indexes`].
    async fn list_indexes(&self) -> Result<Vec<IndexDescription>, VectorizeError>;
}

#[async_trait]
impl VectorizeApi for VectorizeClient {
    async fn create_index(&self, request: CreateIndex) -> Result<IndexDescription, VectorizeError> {
        Self::create_index(self, &request).await
    }
    async fn get_index(&self, name: String) -> Result<IndexDescription, VectorizeError> {
        Self::get_index(self, &name).await
    }
    async fn delete_index(&self, name: String) -> Result<(), VectorizeError> {
        Self::delete_index(self, &name).await
    }
    async fn list_indexes(&self) -> Result<Vec<IndexDescription>, VectorizeError> {
        Self::list_indexes(self).await
    }
}

/// One index's operations, object-safe (mock it with `MockIndexApi`, feature `mock`).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait IndexApi: Send + Sync {
    /// See [`IndexClient::info`].
    async fn info(&self) -> Result<IndexInfo, VectorizeError>;
    /// See [`IndexClient::insert`].
    async fn insert(&self, vectors: Vec<Vector>) -> Result<MutationBatch, VectorizeError>;
    /// See [`IndexClient::upsert`].
    async fn upsert(&self, vectors: Vec<Vector>) -> Result<MutationBatch, VectorizeError>;
    /// See [`IndexClient::query`].
    async fn query(&self, query: QueryVectors) -> Result<QueryResult, VectorizeError>;
    /// See [`IndexClient::get_by_ids`].
    async fn get_by_ids(&self, ids: Vec<String>) -> Result<Vec<Vector>, VectorizeError>;
    /// See [`IndexClient::delete_by_ids`].
    async fn delete_by_ids(&self, ids: Vec<String>) -> Result<Mutation, VectorizeError>;
    /// See [`IndexClient::list_vectors`].
    async fn list_vectors(&self, request: ListVectors) -> Result<VectorIdPage, VectorizeError>;
    /// See [`IndexClient::create_metadata_index`].
    async fn create_metadata_index(
        &self,
        request: CreateMetadataIndex,
    ) -> Result<Mutation, VectorizeError>;
    /// See [`IndexClient::list_metadata_indexes`].
    async fn list_metadata_indexes(&self) -> Result<Vec<MetadataIndex>, VectorizeError>;
    /// See [`IndexClient::delete_metadata_index`].
    async fn delete_metadata_index(
        &self,
        property_name: String,
    ) -> Result<Mutation, VectorizeError>;
}

#[async_trait]
impl IndexApi for IndexClient {
    async fn info(&self) -> Result<IndexInfo, VectorizeError> {
        Self::info(self).await
    }
    async fn insert(&self, vectors: Vec<Vector>) -> Result<MutationBatch, VectorizeError> {
        Self::insert(self, &vectors).await
    }
    async fn upsert(&self, vectors: Vec<Vector>) -> Result<MutationBatch, VectorizeError> {
        Self::upsert(self, &vectors).await
    }
    async fn query(&self, query: QueryVectors) -> Result<QueryResult, VectorizeError> {
        Self::query(self, &query).await
    }
    async fn get_by_ids(&self, ids: Vec<String>) -> Result<Vec<Vector>, VectorizeError> {
        Self::get_by_ids(self, &ids).await
    }
    async fn delete_by_ids(&self, ids: Vec<String>) -> Result<Mutation, VectorizeError> {
        Self::delete_by_ids(self, &ids).await
    }
    async fn list_vectors(&self, request: ListVectors) -> Result<VectorIdPage, VectorizeError> {
        Self::list_vectors(self, &request).await
    }
    async fn create_metadata_index(
        &self,
        request: CreateMetadataIndex,
    ) -> Result<Mutation, VectorizeError> {
        Self::create_metadata_index(self, &request.property_name, request.index_type).await
    }
    async fn list_metadata_indexes(&self) -> Result<Vec<MetadataIndex>, VectorizeError> {
        Self::list_metadata_indexes(self).await
    }
    async fn delete_metadata_index(
        &self,
        property_name: String,
    ) -> Result<Mutation, VectorizeError> {
        Self::delete_metadata_index(self, &property_name).await
    }
}

/// `impl tower::Service<$request> for $client`: always ready, boxed `Send` future that
/// runs `$body` with `$this` (a clone of the client) and `$req` (the request).
macro_rules! service {
    ($client:ty, $request:ty => $response:ty, |$this:ident, $req:pat_param| $body:expr) => {
        impl tower::Service<$request> for $client {
            type Response = $response;
            type Error = VectorizeError;
            type Future = BoxFuture<$response>;

            fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), VectorizeError>> {
                Poll::Ready(Ok(()))
            }

            fn call(&mut self, request: $request) -> Self::Future {
                let $this = self.clone();
                let $req = request;
                Box::pin(async move { $body })
            }
        }
    };
}

service!(VectorizeClient, CreateIndex => IndexDescription, |this, r| this.create_index(&r).await);
service!(VectorizeClient, GetIndex => IndexDescription, |this, r| this.get_index(&r.name).await);
service!(VectorizeClient, DeleteIndex => (), |this, r| this.delete_index(&r.name).await);
service!(VectorizeClient, ListIndexes => Vec<IndexDescription>, |this, _r| this.list_indexes().await);
service!(IndexClient, GetIndexInfo => IndexInfo, |this, _r| this.info().await);
service!(IndexClient, InsertVectors => MutationBatch, |this, r| this.insert(&r.vectors).await);
service!(IndexClient, UpsertVectors => MutationBatch, |this, r| this.upsert(&r.vectors).await);
service!(IndexClient, QueryVectors => QueryResult, |this, r| this.query(&r).await);
service!(IndexClient, GetByIds => Vec<Vector>, |this, r| this.get_by_ids(&r.ids).await);
service!(IndexClient, DeleteByIds => Mutation, |this, r| this.delete_by_ids(&r.ids).await);
service!(IndexClient, ListVectors => VectorIdPage, |this, r| this.list_vectors(&r).await);
service!(IndexClient, CreateMetadataIndex => Mutation, |this, r| {
    this.create_metadata_index(&r.property_name, r.index_type).await
});
service!(IndexClient, ListMetadataIndexes => Vec<MetadataIndex>, |this, _r| {
    this.list_metadata_indexes().await
});
service!(IndexClient, DeleteMetadataIndex => Mutation, |this, r| {
    this.delete_metadata_index(&r.property_name).await
});

#[cfg(test)]
mod tests;
