//! [`R2Client`]: the R2 object operations over a [`cloudflare_http::ServiceClient`], as
//! async methods, as the object-safe [`R2Api`] trait and as tower services over the typed
//! requests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use cloudflare_http::{
    HttpRequest, ServiceClient, body_request, empty_request, encode_segment, idempotent,
    not_idempotent,
};
use http::{HeaderValue, Method};

use crate::envelope::{decode, error_codes, error_of, is_no_such_bucket, is_not_found};
use crate::error::R2Error;
use crate::key::{
    encode_key, validate_bucket_name, validate_key_as, validate_path_key, validate_prefix,
};
use crate::model::{
    BucketJob, DeleteObject, DeletePrefix, DeletedObject, GetObject, Jurisdiction, ListObjects,
    ObjectBody, ObjectInfo, ObjectList, PutObject, PutObjectResult,
};
use crate::{MAX_PER_PAGE, MAX_PUT_BYTES, SERVICE};

/// The boxed future of the tower services.
pub(crate) type R2Future<T> = Pin<Box<dyn Future<Output = Result<T, R2Error>> + Send + 'static>>;

/// The R2 object operations, one request each, object-safe so callers can hold a
/// `dyn R2Api` and tests can use its mockall mock (`MockR2Api`, feature `mock`).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait::async_trait]
pub trait R2Api: Send + Sync {
    /// Uploads an object (see [`PutObject`]).
    async fn put_object(&self, request: PutObject) -> Result<PutObjectResult, R2Error>;

    /// Reads an object; [`R2Error::NotFound`] when it does not exist.
    async fn get_object(&self, request: GetObject) -> Result<ObjectBody, R2Error>;

    /// Deletes an object; succeeds when it does not exist.
    async fn delete_object(&self, request: DeleteObject) -> Result<DeletedObject, R2Error>;

    /// Lists one page of objects.
    async fn list_objects(&self, request: ListObjects) -> Result<ObjectList, R2Error>;

    /// Deletes every object under a prefix, as a bucket job.
    async fn delete_prefix(&self, request: DeletePrefix) -> Result<BucketJob, R2Error>;
}

/// Lists every object `request` matches by following the cursor from page to page with
/// `api`'s single-page [`R2Api::list_objects`], until a page has no next cursor (absent
/// or empty). A request without `per_page` asks for [`MAX_PER_PAGE`] (1,000) objects a
/// page.
///
/// # Errors
///
/// The first page's error, and [`R2Error::CursorStuck`] if the API hands back the cursor it
/// was sent (which would loop forever).
pub async fn list_all_pages<A: R2Api + ?Sized>(
    api: &A,
    mut request: ListObjects,
) -> Result<Vec<ObjectInfo>, R2Error> {
    // The API's default page is 20 objects: 50 times the requests of full pages, each
    // spending the account's budget.
    request.per_page.get_or_insert(MAX_PER_PAGE);
    let mut objects = Vec::new();
    let mut pages = 0;
    loop {
        let page = api.list_objects(request.clone()).await?;
        pages += 1;
        objects.extend(page.objects);
        match page.cursor.filter(|c| !c.is_empty()) {
            None => return Ok(objects),
            Some(next) if request.cursor.as_deref() == Some(next.as_str()) => {
                return Err(R2Error::CursorStuck { pages });
            }
            Some(next) => request.cursor = Some(next),
        }
    }
}

/// The R2 client of one bucket. Cheap to clone; every clone shares the HTTP stack
/// (rate limit, retries, circuit breaker, accounting) of the [`cloudflare_http::Client`]
/// it was built from.
#[derive(Debug, Clone)]
pub struct R2Client {
    service: ServiceClient,
    bucket: Arc<str>,
    jurisdiction: Jurisdiction,
}

impl R2Client {
    /// The client of `bucket`, over `client`'s `"r2"` service.
    ///
    /// # Errors
    ///
    /// [`R2Error::InvalidBucketName`] if `bucket` breaks R2's naming rules.
    pub fn new(
        client: &cloudflare_http::Client,
        bucket: impl Into<String>,
    ) -> Result<Self, R2Error> {
        let bucket = bucket.into();
        validate_bucket_name(&bucket)?;
        Ok(Self {
            service: client.service(SERVICE),
            bucket: bucket.into(),
            jurisdiction: Jurisdiction::Default,
        })
    }

    /// Sends `cf-r2-jurisdiction` with every request, for a bucket created in a
    /// jurisdiction.
    #[must_use]
    pub fn with_jurisdiction(mut self, jurisdiction: Jurisdiction) -> Self {
        self.jurisdiction = jurisdiction;
        self
    }

    /// The bucket name.
    #[must_use]
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The jurisdiction sent with requests.
    #[must_use]
    pub fn jurisdiction(&self) -> Jurisdiction {
        self.jurisdiction
    }

    /// The underlying service client (its breaker, name and account id).
    #[must_use]
    pub fn service(&self) -> &ServiceClient {
        &self.service
    }

    /// `/accounts/{account}/r2/buckets/{bucket}/objects`.
    fn objects_path(&self) -> String {
        format!(
            "/accounts/{}/r2/buckets/{}/objects",
            encode_segment(self.service.account_id()),
            encode_segment(&self.bucket)
        )
    }

    /// `.../objects/{key}`, the key's slashes literal.
    fn object_path(&self, key: &str) -> String {
        format!("{}/{}", self.objects_path(), encode_key(key))
    }

    /// Adds the headers every request carries.
    fn finish(&self, mut request: HttpRequest) -> HttpRequest {
        if self.jurisdiction != Jurisdiction::Default {
            request.headers_mut().insert(
                "cf-r2-jurisdiction",
                HeaderValue::from_static(self.jurisdiction.as_str()),
            );
        }
        request
    }

    /// Uploads `request.body` under `request.key` (sent as `application/octet-stream`, the
    /// only body type the API takes). A PUT replaces the whole object, so it is retried.
    ///
    /// # Errors
    ///
    /// Key validation errors, [`R2Error::BodyTooLarge`] over [`MAX_PUT_BYTES`] (nothing is
    /// sent), or the API's error.
    pub async fn put_object(&self, request: PutObject) -> Result<PutObjectResult, R2Error> {
        validate_path_key(&request.key)?;
        let size = u64::try_from(request.body.len()).unwrap_or(u64::MAX);
        if size > MAX_PUT_BYTES {
            return Err(R2Error::body_too_large(size));
        }
        let mut http = body_request(
            Method::PUT,
            &self.object_path(&request.key),
            Some("application/octet-stream"),
            request.body,
        )?;
        if let Some(class) = request.storage_class.and_then(|c| c.as_str()) {
            http.headers_mut()
                .insert("cf-r2-storage-class", HeaderValue::from_static(class));
        }
        let response = self
            .service
            .send("put_object", idempotent(self.finish(http)))
            .await?;
        let mut result = decode::<Option<PutObjectResult>>(response)?
            .result
            .unwrap_or_default();
        if result.key.is_empty() {
            result.key = request.key;
        }
        Ok(result)
    }

    /// Reads an object: its raw bytes and describing headers.
    ///
    /// # Errors
    ///
    /// [`R2Error::NotFound`] on a 404 (unless R2 says the bucket itself is missing, code
    /// 10006, which stays a [`cloudflare_http::CloudflareError`]), key validation errors, or
    /// the API's error.
    pub async fn get_object(&self, request: GetObject) -> Result<ObjectBody, R2Error> {
        validate_path_key(&request.key)?;
        let http = empty_request(Method::GET, &self.object_path(&request.key))?;
        let response = self.service.send("get_object", self.finish(http)).await?;
        if is_not_found(response.status()) && !is_no_such_bucket(&error_codes(&response)) {
            return Err(R2Error::NotFound { key: request.key });
        }
        if !response.status().is_success() {
            return Err(error_of(response).into());
        }
        let (parts, body) = response.into_parts();
        Ok(ObjectBody::from_response(request.key, &parts.headers, body))
    }

    /// Deletes an object. A missing key is not an error: R2 answers a delete of a missing
    /// key like S3 (success), and a 404 with code 10007 ("no such key") is mapped to
    /// success as well, so deletes are safe to repeat and are retried.
    ///
    /// # Errors
    ///
    /// Key validation errors or the API's error (e.g. a missing bucket).
    pub async fn delete_object(&self, request: DeleteObject) -> Result<DeletedObject, R2Error> {
        validate_path_key(&request.key)?;
        let http = empty_request(Method::DELETE, &self.object_path(&request.key))?;
        let response = self
            .service
            .send("delete_object", self.finish(http))
            .await?;
        if is_not_found(response.status())
            && error_codes(&response).contains(&crate::envelope::CODE_NO_SUCH_KEY)
        {
            return Ok(DeletedObject { key: request.key });
        }
        let mut result = decode::<Option<DeletedObject>>(response)?
            .result
            .unwrap_or_default();
        if result.key.is_empty() {
            result.key = request.key;
        }
        Ok(result)
    }

    /// Lists one page of objects (the cursor of the next one is [`ObjectList::cursor`]).
    ///
    /// # Errors
    ///
    /// [`R2Error::PerPageOutOfRange`], [`R2Error::InvalidDelimiter`], prefix or
    /// `start_after` length errors (nothing is sent), or the API's error.
    pub async fn list_objects(&self, request: ListObjects) -> Result<ObjectList, R2Error> {
        let query = list_query(&request)?;
        let path = if query.is_empty() {
            self.objects_path()
        } else {
            format!("{}?{query}", self.objects_path())
        };
        let http = empty_request(Method::GET, &path)?;
        let response = self.service.send("list_objects", self.finish(http)).await?;
        let envelope = decode::<Option<Vec<ObjectInfo>>>(response)?;
        Ok(ObjectList::from_parts(
            envelope.result.unwrap_or_default(),
            envelope.result_info,
        ))
    }

    /// Deletes every object whose key starts with `request.prefix` (non-empty, ending in
    /// `/`). Not retried: each request starts a new bucket job, and R2 limits the active
    /// jobs per bucket.
    ///
    /// # Errors
    ///
    /// [`R2Error::InvalidDeletePrefix`] (nothing is sent), or the API's error (e.g. 409 when
    /// event notifications are configured, 429 when too many jobs are active).
    pub async fn delete_prefix(&self, request: DeletePrefix) -> Result<BucketJob, R2Error> {
        validate_prefix(&request.prefix)?;
        if request.prefix.is_empty() || !request.prefix.ends_with('/') {
            return Err(R2Error::InvalidDeletePrefix {
                prefix: request.prefix,
            });
        }
        let path = format!(
            "{}?prefix={}",
            self.objects_path(),
            encode_segment(&request.prefix)
        );
        let http = empty_request(Method::DELETE, &path)?;
        let response = self
            .service
            .send("delete_prefix", not_idempotent(self.finish(http)))
            .await?;
        Ok(decode::<BucketJob>(response)?.result)
    }

    /// Uploads `body` under `key` ([`R2Client::put_object`]).
    ///
    /// # Errors
    ///
    /// As [`R2Client::put_object`].
    pub async fn put(
        &self,
        key: impl Into<String>,
        body: impl Into<Bytes>,
    ) -> Result<PutObjectResult, R2Error> {
        self.put_object(PutObject::new(key, body)).await
    }

    /// Reads `key` ([`R2Client::get_object`]).
    ///
    /// # Errors
    ///
    /// As [`R2Client::get_object`].
    pub async fn get(&self, key: impl Into<String>) -> Result<ObjectBody, R2Error> {
        self.get_object(GetObject::new(key)).await
    }

    /// Deletes `key` ([`R2Client::delete_object`]); a missing key is not an error.
    ///
    /// # Errors
    ///
    /// As [`R2Client::delete_object`].
    pub async fn delete(&self, key: impl Into<String>) -> Result<DeletedObject, R2Error> {
        self.delete_object(DeleteObject::new(key)).await
    }

    /// Every object whose key starts with `prefix` (`""` for all), fetched
    /// [`MAX_PER_PAGE`] at a time by following the cursor ([`list_all_pages`]).
    ///
    /// # Errors
    ///
    /// As [`list_all_pages`].
    pub async fn list_all(&self, prefix: impl Into<String>) -> Result<Vec<ObjectInfo>, R2Error> {
        let prefix = prefix.into();
        let mut request = ListObjects::new().per_page(MAX_PER_PAGE);
        if !prefix.is_empty() {
            request.prefix = Some(prefix);
        }
        list_all_pages(self, request).await
    }
}

/// The list query string (`prefix`, `delimiter`, `cursor`, `per_page`, `start_after`),
/// validated; values percent-encoded.
fn list_query(request: &ListObjects) -> Result<String, R2Error> {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(prefix) = request.prefix.as_deref().filter(|p| !p.is_empty()) {
        validate_prefix(prefix)?;
        pairs.push(("prefix", encode_segment(prefix)));
    }
    if let Some(delimiter) = &request.delimiter {
        let actual = delimiter.chars().count();
        if actual != 1 {
            return Err(R2Error::InvalidDelimiter {
                delimiter: delimiter.clone(),
                actual,
                max: 1,
            });
        }
        pairs.push(("delimiter", encode_segment(delimiter)));
    }
    if let Some(cursor) = request.cursor.as_deref().filter(|c| !c.is_empty()) {
        pairs.push(("cursor", encode_segment(cursor)));
    }
    if let Some(per_page) = request.per_page {
        if per_page == 0 || per_page > MAX_PER_PAGE {
            return Err(R2Error::per_page(per_page));
        }
        pairs.push(("per_page", per_page.to_string()));
    }
    if let Some(start_after) = &request.start_after {
        validate_key_as("start_after key", start_after)?;
        pairs.push(("start_after", encode_segment(start_after)));
    }
    Ok(pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&"))
}

#[async_trait::async_trait]
impl R2Api for R2Client {
    async fn put_object(&self, request: PutObject) -> Result<PutObjectResult, R2Error> {
        R2Client::put_object(self, request).await
    }

    async fn get_object(&self, request: GetObject) -> Result<ObjectBody, R2Error> {
        R2Client::get_object(self, request).await
    }

    async fn delete_object(&self, request: DeleteObject) -> Result<DeletedObject, R2Error> {
        R2Client::delete_object(self, request).await
    }

    async fn list_objects(&self, request: ListObjects) -> Result<ObjectList, R2Error> {
        R2Client::list_objects(self, request).await
    }

    async fn delete_prefix(&self, request: DeletePrefix) -> Result<BucketJob, R2Error> {
        R2Client::delete_prefix(self, request).await
    }
}

/// `impl tower::Service<$request> for R2Client` calling the method of the same operation.
macro_rules! service {
    ($request:ty => $response:ty, $method:ident) => {
        impl tower::Service<$request> for R2Client {
            type Response = $response;
            type Error = R2Error;
            type Future = R2Future<$response>;

            fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), R2Error>> {
                Poll::Ready(Ok(()))
            }

            fn call(&mut self, request: $request) -> Self::Future {
                let client = self.clone();
                Box::pin(async move { R2Client::$method(&client, request).await })
            }
        }
    };
}

service!(PutObject => PutObjectResult, put_object);
service!(GetObject => ObjectBody, get_object);
service!(DeleteObject => DeletedObject, delete_object);
service!(ListObjects => ObjectList, list_objects);
service!(DeletePrefix => BucketJob, delete_prefix);
