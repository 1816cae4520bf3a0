//! [`WorkersAiClient`]: the HTTP implementation of [`WorkersAiApi`], also a tower
//! `Service` over [`EmbedBatchRequest`] and [`EmbedRequest`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use cloudflare_http::{
    Client, HttpRequest, ServiceClient, encode_segment, idempotent, json_request,
};
use http::Method;

use crate::api::{
    EmbedBatchRequest, EmbedRequest, Embeddings, TextEmbeddingInput, TextEmbeddingOutput,
    WorkersAiApi, check_output, check_texts, embed_in_batches,
};
use crate::error::{AiError, too_many};
use crate::model::{EmbeddingModel, Pooling};
use crate::{MAX_TEXTS_PER_CALL, OPERATION_EMBED, SERVICE};

/// The boxed future of the tower services.
pub(crate) type AiFuture<T> = Pin<Box<dyn Future<Output = Result<T, AiError>> + Send + 'static>>;

/// Workers AI text embeddings over the Cloudflare API, for one [`EmbeddingModel`].
///
/// Cheap to clone, `Send + Sync`. Retries, timeouts, rate limiting and the circuit
/// breaker are the [`cloudflare_http::Client`]'s; an embedding call is read-only, so it is
/// sent as idempotent (retried like a GET).
#[derive(Debug, Clone)]
pub struct WorkersAiClient {
    service: ServiceClient,
    model: EmbeddingModel,
    pooling: Option<Pooling>,
}

impl WorkersAiClient {
    /// A client using `client`'s `"ai"` service, the default model
    /// ([`EmbeddingModel::BGE_BASE_EN_V1_5`]) and Cloudflare's default pooling.
    #[must_use]
    pub fn new(client: &Client) -> Self {
        Self {
            service: client.service(SERVICE),
            model: EmbeddingModel::default(),
            pooling: None,
        }
    }

    /// Uses `model` instead.
    #[must_use]
    pub fn with_model(mut self, model: EmbeddingModel) -> Self {
        self.model = model;
        self
    }

    /// Sends `pooling` with every call (by default the field is omitted, which means
    /// [`Pooling::Mean`]).
    #[must_use]
    pub fn with_pooling(mut self, pooling: Pooling) -> Self {
        self.pooling = Some(pooling);
        self
    }

    /// The model every call uses.
    #[must_use]
    pub fn model(&self) -> &EmbeddingModel {
        &self.model
    }

    /// The pooling sent, or `None` if omitted (Cloudflare's default, mean).
    #[must_use]
    pub fn pooling(&self) -> Option<Pooling> {
        self.pooling
    }

    /// The underlying service client (its breaker, account id).
    #[must_use]
    pub fn service(&self) -> &ServiceClient {
        &self.service
    }

    /// Embeds any number of texts, in calls of at most [`MAX_TEXTS_PER_CALL`]: see
    /// [`WorkersAiApi::embed`].
    ///
    /// # Errors
    ///
    /// As [`WorkersAiApi::embed`].
    pub async fn embed<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Embeddings, AiError> {
        let owned: Vec<String> = texts.iter().map(|t| t.as_ref().to_owned()).collect();
        embed_in_batches(self, &owned).await
    }

    /// Embeds one text.
    ///
    /// # Errors
    ///
    /// As [`WorkersAiApi::embed_batch`].
    pub async fn embed_one(&self, text: &str) -> Result<Vec<f32>, AiError> {
        let mut out = self.embed_batch(&[text]).await?;
        // The shape check guarantees exactly one vector.
        out.vectors.pop().ok_or_else(|| AiError::Shape {
            model: self.model.id().to_owned(),
            expected: crate::ExpectedShape {
                rows: 1,
                dimensions: self.model.dimensions(),
            },
            got: crate::ShapeMismatch::Rows(0),
        })
    }

    /// Embeds at most [`MAX_TEXTS_PER_CALL`] texts in one call: see
    /// [`WorkersAiApi::embed_batch`].
    ///
    /// # Errors
    ///
    /// As [`WorkersAiApi::embed_batch`].
    pub async fn embed_batch<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
    ) -> Result<Embeddings, AiError> {
        if texts.len() > MAX_TEXTS_PER_CALL {
            return Err(too_many(texts.len()));
        }
        check_texts(texts, 0)?;
        if texts.is_empty() {
            return Ok(Embeddings::default());
        }
        let request = build_request(
            self.service.account_id(),
            &self.model,
            texts.iter().map(|t| t.as_ref().to_owned()).collect(),
            self.pooling,
        )?;
        let envelope = self
            .service
            .send_json::<TextEmbeddingOutput>(OPERATION_EMBED, request)
            .await?;
        check_output(&self.model, texts.len(), envelope.result)
    }
}

/// `POST /accounts/{account_id}/ai/run/{model}` with the texts, marked idempotent. The
/// model id goes into the path literally (its slashes are path separators the API
/// expects); it was validated when the [`EmbeddingModel`] was made.
pub(crate) fn build_request(
    account_id: &str,
    model: &EmbeddingModel,
    text: Vec<String>,
    pooling: Option<Pooling>,
) -> Result<HttpRequest, AiError> {
    let path = format!(
        "/accounts/{}/ai/run/{}",
        encode_segment(account_id),
        model.id()
    );
    let body = TextEmbeddingInput { text, pooling };
    Ok(idempotent(json_request(Method::POST, &path, &body)?))
}

#[async_trait::async_trait]
impl WorkersAiApi for WorkersAiClient {
    fn model(&self) -> &EmbeddingModel {
        &self.model
    }

    async fn embed_batch(&self, texts: &[String]) -> Result<Embeddings, AiError> {
        Self::embed_batch(self, texts).await
    }

    async fn embed(&self, texts: &[String]) -> Result<Embeddings, AiError> {
        embed_in_batches(self, texts).await
    }
}

impl tower::Service<EmbedBatchRequest> for WorkersAiClient {
    type Response = Embeddings;
    type Error = AiError;
    type Future = AiFuture<Embeddings>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), AiError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: EmbedBatchRequest) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.embed_batch(&request.texts).await })
    }
}

impl tower::Service<EmbedRequest> for WorkersAiClient {
    type Response = Embeddings;
    type Error = AiError;
    type Future = AiFuture<Embeddings>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), AiError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: EmbedRequest) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { embed_in_batches(&this, &request.texts).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use cloudflare_http::{
        ApiToken, ClientBuilder, ClientConfig, HttpResponse, HttpService, Operation, is_idempotent,
    };
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use crate::ShapeMismatch;

    #[test]
    fn client_is_clone_send_sync_and_the_trait_is_object_safe() {
        fn check<T: Clone + Send + Sync + 'static>() {}
        check::<WorkersAiClient>();
        fn object(_: &dyn WorkersAiApi) {}
        let _ = object;
    }

    async fn body_json(request: HttpRequest) -> (http::request::Parts, Value) {
        let (parts, body) = request.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (parts, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn request_puts_the_model_in_the_path_literally_and_is_idempotent() {
        for model in EmbeddingModel::KNOWN {
            let request = build_request("acc 1", &model, vec!["hello".into()], None).unwrap();
            assert!(is_idempotent(&request));
            assert_eq!(request.method(), Method::POST);
            assert_eq!(
                request.uri().path(),
                format!("/accounts/acc%201/ai/run/{}", model.id())
            );
            assert_eq!(
                request.headers()[http::header::CONTENT_TYPE],
                "application/json"
            );
            let (_, body) = body_json(request).await;
            assert_eq!(body, json!({"text": ["hello"]}));
        }
        let request = build_request(
            "acc",
            &EmbeddingModel::BGE_SMALL_EN_V1_5,
            vec!["a".into(), "b".into()],
            Some(Pooling::Cls),
        )
        .unwrap();
        assert_eq!(
            request.uri().path(),
            "/accounts/acc/ai/run/@cf/baai/bge-small-en-v1.5"
        );
        let (_, body) = body_json(request).await;
        assert_eq!(body, json!({"text": ["a", "b"], "pooling": "cls"}));
    }

    /// What the fake transport saw.
    #[derive(Default)]
    struct Seen {
        requests: Vec<(String, Operation, bool, Value)>,
    }

    /// A client whose every request is answered by `reply(texts sent)` without touching
    /// the network: a user layer that never calls the real stack.
    fn fake_client(
        reply: impl Fn(usize) -> (u16, Value) + Clone + Send + Sync + 'static,
    ) -> (Client, Arc<Mutex<Seen>>) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let record = Arc::clone(&seen);
        let layer = tower::layer::layer_fn(move |_inner: HttpService| {
            let reply = reply.clone();
            let record = Arc::clone(&record);
            tower::service_fn(move |request: HttpRequest| {
                let reply = reply.clone();
                let record = Arc::clone(&record);
                async move {
                    let operation = Operation::of(&request);
                    let retry = is_idempotent(&request);
                    let (parts, body) = body_json(request).await;
                    let n = body["text"].as_array().map_or(0, Vec::len);
                    record.lock().unwrap().requests.push((
                        parts.uri.path().to_owned(),
                        operation,
                        retry,
                        body,
                    ));
                    let (status, json) = reply(n);
                    let response: HttpResponse = http::Response::builder()
                        .status(status)
                        .header(http::header::CONTENT_TYPE, "application/json")
                        .body(Bytes::from(json.to_string()))
                        .unwrap();
                    Ok::<_, cloudflare_http::CloudflareError>(response)
                }
            })
        });
        let mut config = ClientConfig::new("acc", ApiToken::new("test-token"));
        config.retry.max_retries = 0;
        config.rate_limit = None;
        let client = ClientBuilder::new(config)
            .with_layer(layer)
            .build()
            .unwrap();
        (client, seen)
    }

    fn ok(rows: usize, dims: usize) -> (u16, Value) {
        let data: Vec<Vec<f32>> = (0..rows).map(|i| vec![i as f32; dims]).collect();
        (
            200,
            json!({"success": true, "errors": [], "messages": [],
                   "result": {"shape": [rows, dims], "data": data, "pooling": "mean"}}),
        )
    }

    #[tokio::test]
    async fn embed_sends_batches_through_the_stack_and_checks_the_shape() {
        let (client, seen) = fake_client(|n| ok(n, 384));
        let ai = WorkersAiClient::new(&client).with_model(EmbeddingModel::BGE_SMALL_EN_V1_5);
        assert_eq!(ai.service().name(), "ai");
        assert_eq!(WorkersAiApi::model(&ai).dimensions(), 384);
        let texts: Vec<String> = (0..150).map(|i| format!("t{i}")).collect();
        let out = ai.embed(&texts).await.unwrap();
        assert_eq!(out.len(), 150);
        assert_eq!(out.vectors[99], vec![99.0; 384]);
        assert_eq!(out.vectors[100], vec![0.0; 384]);
        assert_eq!(out.pooling, Some(Pooling::Mean));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.requests.len(), 2);
        for (i, (path, op, retry, body)) in seen.requests.iter().enumerate() {
            assert_eq!(path, "/accounts/acc/ai/run/@cf/baai/bge-small-en-v1.5");
            assert_eq!(*op, Operation::new("ai", "embed"));
            assert!(retry);
            assert_eq!(body["text"][0], format!("t{}", i * 100));
        }
        assert_eq!(seen.requests[1].3["text"].as_array().unwrap().len(), 50);
    }

    #[tokio::test]
    async fn tower_services_and_trait_object_answer() {
        let (client, seen) = fake_client(|n| ok(n, 768));
        let ai = WorkersAiClient::new(&client).with_pooling(Pooling::Cls);
        assert_eq!(ai.pooling(), Some(Pooling::Cls));
        let out = ai
            .clone()
            .oneshot(EmbedBatchRequest::new(["a", "b"]))
            .await
            .unwrap();
        assert_eq!(out.len(), 2);
        let out = ai.clone().oneshot(EmbedRequest::new(["c"])).await.unwrap();
        assert_eq!(out.len(), 1);
        let api: Arc<dyn WorkersAiApi> = Arc::new(ai.clone());
        assert_eq!(api.embed(&["d".into()]).await.unwrap().len(), 1);
        assert_eq!(api.embed_batch(&["e".into()]).await.unwrap().len(), 1);
        assert_eq!(ai.embed_one("f").await.unwrap().len(), 768);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.requests.len(), 5);
        assert!(seen.requests.iter().all(|(path, _, _, body)| {
            path.ends_with("/ai/run/@cf/baai/bge-base-en-v1.5") && body["pooling"] == "cls"
        }));
    }

    #[tokio::test]
    async fn a_wrong_shape_from_the_wire_is_a_shape_error() {
        // One row too few, declared honestly.
        let (client, _) = fake_client(|n| ok(n - 1, 768));
        let ai = WorkersAiClient::new(&client);
        let err = ai.embed_batch(&["a", "b"]).await.unwrap_err();
        assert!(
            matches!(
                err,
                AiError::Shape {
                    got: ShapeMismatch::DeclaredShape(_),
                    ..
                }
            ),
            "{err:?}"
        );
        // Right rows, wrong dimensions (a 384-d model configured as the 768-d default).
        let (client, _) = fake_client(|n| ok(n, 384));
        let err = WorkersAiClient::new(&client)
            .embed(&["a"])
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("[1, 768]") && text.contains("[1, 384]"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn api_errors_and_validation_come_back_typed() {
        let (client, seen) = fake_client(|_| {
            (
                400,
                json!({"success": false, "errors": [{"code": 5006, "message": "input too long"}]}),
            )
        });
        let ai = WorkersAiClient::new(&client);
        let err = ai.embed(&["a"]).await.unwrap_err();
        let AiError::Cloudflare(inner) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(inner.errors()[0].code, 5006);
        assert!(!err.is_retryable());

        let many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
        let err = ai.embed_batch(&many).await.unwrap_err();
        assert!(
            matches!(
                err,
                AiError::TooManyTexts {
                    max: 100,
                    actual: 101
                }
            ),
            "{err:?}"
        );
        let err = ai.embed_batch(&["ok", ""]).await.unwrap_err();
        assert!(matches!(err, AiError::EmptyText { index: 1 }), "{err:?}");
        let err = ai.embed_one("  ").await.unwrap_err();
        assert!(matches!(err, AiError::EmptyText { index: 0 }), "{err:?}");
        let none: [&str; 0] = [];
        assert!(ai.embed_batch(&none).await.unwrap().is_empty());
        assert!(ai.embed(&none).await.unwrap().is_empty());
        // Only the first call reached the transport.
        assert_eq!(seen.lock().unwrap().requests.len(), 1);
    }
}
