//! [`Client`]: the Cloudflare API client, and [`ClientBuilder`], which assembles its
//! default tower stack from a [`ClientConfig`] in one place.
//!
//! The stack, outermost first: the user's layers ([`ClientBuilder::with_layer`]), the
//! request timeout ([`TimeoutLayer`]), the `Authorization` header ([`AuthLayer`]), the
//! base URL ([`BaseUriLayer`]) and the HTTP service, a hyper-util legacy client over
//! rustls (ring, Mozilla roots) that collects the response body so every layer sees a
//! complete response.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::de::DeserializeOwned;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceBuilder, ServiceExt};

use crate::envelope::{Envelope, decode};
use crate::error::CloudflareError;
use crate::middleware::auth::{AuthLayer, InvalidToken};
use crate::middleware::base_uri::{BaseUriLayer, InvalidBaseUrl};
use crate::middleware::timeout::TimeoutLayer;
use crate::secret::ApiToken;

/// Default TCP connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit for a whole request (connect, send, read the response body).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time an idle pooled connection is kept open.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Default number of idle connections kept per host.
pub const DEFAULT_POOL_MAX_IDLE_PER_HOST: usize = 8;

/// A request as the stack takes it: the URI holds only the API path and query
/// (e.g. `/accounts/{id}/d1/database`), [`BaseUriLayer`] adds the rest.
pub type HttpRequest = http::Request<Full<Bytes>>;
/// A response as the stack returns it, with the body fully read.
pub type HttpResponse = http::Response<Bytes>;
/// The type-erased client stack.
pub type HttpService = BoxCloneSyncService<HttpRequest, HttpResponse, CloudflareError>;

/// Settings of a [`Client`].
///
/// `Debug` never shows the token ([`ApiToken`] prints `***`).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The Cloudflare account id.
    pub account_id: String,
    /// The API token sent as `Authorization: Bearer`.
    pub token: ApiToken,
    /// Base URL of the API: [`crate::DEFAULT_BASE_URL`], or e.g.
    /// `http://127.0.0.1:PORT/client/v4` for a local emulator or a Prism proxy.
    pub base_url: Uri,
    /// TCP connect timeout ([`DEFAULT_CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// Whole-request timeout ([`DEFAULT_REQUEST_TIMEOUT`]).
    pub request_timeout: Duration,
    /// How long idle pooled connections stay open ([`DEFAULT_POOL_IDLE_TIMEOUT`]).
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per host ([`DEFAULT_POOL_MAX_IDLE_PER_HOST`]).
    pub pool_max_idle_per_host: usize,
}

impl ClientConfig {
    /// A config for `account_id` and `token` with every other setting at its default.
    pub fn new(account_id: impl Into<String>, token: ApiToken) -> Self {
        Self {
            account_id: account_id.into(),
            token,
            base_url: Uri::from_static(crate::DEFAULT_BASE_URL),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
            pool_max_idle_per_host: DEFAULT_POOL_MAX_IDLE_PER_HOST,
        }
    }

    /// Replaces the base URL (e.g. a local emulator).
    #[must_use]
    pub fn with_base_url(mut self, base_url: Uri) -> Self {
        self.base_url = base_url;
        self
    }
}

/// Why [`ClientBuilder::build`] failed. Messages never contain the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The base URL is not an absolute http(s) URL.
    #[error(transparent)]
    BaseUrl(#[from] InvalidBaseUrl),
    /// The token cannot be sent in an HTTP header.
    #[error(transparent)]
    Token(#[from] InvalidToken),
    /// rustls rejected the TLS configuration.
    #[error("could not set up TLS for the Cloudflare client: {source}; this is a bug, report it")]
    Tls {
        /// The rustls error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// A user layer, applied by [`ClientBuilder::build`].
type BoxedLayer = Box<dyn FnOnce(HttpService) -> HttpService + Send>;

/// Builds a [`Client`] from a [`ClientConfig`]: the default stack plus user layers.
pub struct ClientBuilder {
    config: ClientConfig,
    layers: Vec<BoxedLayer>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .field("layers", &self.layers.len())
            .finish()
    }
}

impl ClientBuilder {
    /// A builder with the default stack for `config`.
    #[must_use]
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config,
            layers: Vec::new(),
        }
    }

    /// Wraps `layer` around the stack built so far: the last layer added is the outermost.
    /// User layers see requests before the timeout, auth and base-URL layers (the URI is
    /// still the bare API path) and complete responses.
    #[must_use]
    pub fn with_layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<HttpService> + Send + 'static,
        L::Service: tower::Service<HttpRequest, Response = HttpResponse, Error = CloudflareError>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<HttpRequest>>::Future: Send + 'static,
    {
        self.layers.push(Box::new(move |inner| {
            BoxCloneSyncService::new(layer.layer(inner))
        }));
        self
    }

    /// Builds the client. Needs a Tokio runtime when requests are sent, not here.
    ///
    /// # Errors
    ///
    /// [`ClientError`] if the base URL or the token is unusable, or TLS setup fails.
    pub fn build(self) -> Result<Client, ClientError> {
        let Self { config, layers } = self;
        let base = BaseUriLayer::new(config.base_url.clone())?;
        let auth = AuthLayer::new(&config.token)?;

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        let https = HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| ClientError::Tls {
                source: Box::new(e),
            })?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let hyper = HyperClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .build(https);

        let mut service = BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(TimeoutLayer::new(config.request_timeout))
                .layer(auth)
                .layer(base)
                .service(Hyper { client: hyper }),
        );
        for layer in layers {
            service = layer(service);
        }
        Ok(Client {
            service,
            account_id: config.account_id,
            base_url: config.base_url,
        })
    }
}

/// The innermost service: sends over hyper and reads the whole body.
#[derive(Clone)]
struct Hyper {
    client: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl tower::Service<HttpRequest> for Hyper {
    type Response = HttpResponse;
    type Error = CloudflareError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, CloudflareError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let client = self.client.clone();
        Box::pin(async move {
            // hyper errors carry no request headers, so the token cannot leak here.
            let response = client
                .request(request)
                .await
                .map_err(CloudflareError::transport)?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(CloudflareError::transport)?
                .to_bytes();
            Ok(http::Response::from_parts(parts, body))
        })
    }
}

/// A Cloudflare API client: cheap to clone, `Send + Sync`.
///
/// ```no_run
/// use cloudflare_http::{ApiToken, ClientBuilder, ClientConfig};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = ClientConfig::new("account-id", ApiToken::from_env()?);
/// let client = ClientBuilder::new(config).build()?;
/// let path = format!("/accounts/{}/d1/database", client.account_id());
/// let request = http::Request::get(path).body(Default::default())?;
/// let databases: cloudflare_http::Envelope<serde_json::Value> = client.send_json(request).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    service: HttpService,
    account_id: String,
    base_url: Uri,
}

impl Client {
    /// The configured account id.
    #[must_use]
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The configured base URL.
    #[must_use]
    pub fn base_url(&self) -> &Uri {
        &self.base_url
    }

    /// A clone of the whole stack, to call directly.
    #[must_use]
    pub fn service(&self) -> HttpService {
        self.service.clone()
    }

    /// Sends `request` (URI = API path and query) through the stack and decodes the
    /// Cloudflare envelope with [`decode`].
    ///
    /// # Errors
    ///
    /// [`CloudflareError::Transport`] or [`CloudflareError::Timeout`] if no response came,
    /// otherwise whatever [`decode`] reports.
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        request: HttpRequest,
    ) -> Result<Envelope<T>, CloudflareError> {
        let response = self.service().oneshot(request).await?;
        let (parts, body) = response.into_parts();
        decode(parts.status, &parts.headers, &body)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("account_id", &self.account_id)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::net::SocketAddr;

    use http::StatusCode;
    use hyper::body::Incoming;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use serde_json::json;
    use tokio::net::TcpListener;

    const SECRET: &str = "test-secret-token-9f8e7d";
    const ACCOUNT: &str = "acc123";
    const PREFIX: &str = "/client/v4/accounts/acc123/";

    /// Serves `connections` connections on 127.0.0.1, then stops accepting. Every request
    /// waits `delay`, then gets `reply` if it carries the bearer token and the path prefix,
    /// or a 418 envelope saying what was wrong.
    async fn serve(
        connections: usize,
        delay: Duration,
        reply: (u16, serde_json::Value),
    ) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..connections {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let reply = reply.clone();
                let svc = service_fn(move |req: http::Request<Incoming>| {
                    let reply = reply.clone();
                    async move {
                        tokio::time::sleep(delay).await;
                        let auth = req.headers().get(http::header::AUTHORIZATION);
                        let (status, body) = if auth
                            .is_none_or(|v| v != format!("Bearer {SECRET}").as_str())
                        {
                            (
                                418,
                                json!({"success": false, "errors": [{"code": 1, "message": "bad auth header"}]}),
                            )
                        } else if !req.uri().path().starts_with(PREFIX) {
                            let msg = format!("bad path {}", req.uri());
                            (
                                418,
                                json!({"success": false, "errors": [{"code": 2, "message": msg}]}),
                            )
                        } else {
                            reply
                        };
                        let response = http::Response::builder()
                            .status(status)
                            .header(http::header::CONTENT_TYPE, "application/json")
                            .body(Full::new(Bytes::from(body.to_string())))
                            .unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        addr
    }

    fn client(addr: SocketAddr, request_timeout: Duration) -> Client {
        let mut config = ClientConfig::new(ACCOUNT, ApiToken::new(SECRET))
            .with_base_url(format!("http://{addr}/client/v4").parse().unwrap());
        config.request_timeout = request_timeout;
        config.connect_timeout = Duration::from_secs(2);
        ClientBuilder::new(config).build().unwrap()
    }

    fn get(client: &Client, tail: &str) -> HttpRequest {
        http::Request::get(format!("/accounts/{}/{tail}", client.account_id()))
            .body(Full::default())
            .unwrap()
    }

    fn assert_no_secret(text: &str) {
        assert!(!text.contains(SECRET), "token leaked: {text}");
    }

    fn assert_error_hides_secret(err: &CloudflareError) {
        assert_no_secret(&err.to_string());
        assert_no_secret(&format!("{err:?}"));
        assert_no_secret(&format!("{err:#?}"));
    }

    #[test]
    fn client_is_send_sync_and_debug_hides_the_token() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Client>();
        let config = ClientConfig::new(ACCOUNT, ApiToken::new(SECRET));
        assert_no_secret(&format!("{config:?}"));
        assert_eq!(config.base_url, crate::DEFAULT_BASE_URL);
        assert_eq!(config.request_timeout, DEFAULT_REQUEST_TIMEOUT);
        let builder = ClientBuilder::new(config);
        assert_no_secret(&format!("{builder:?}"));
        let client = builder.build().unwrap();
        assert_no_secret(&format!("{client:?}"));
        assert_no_secret(&format!("{client:#?}"));
        assert_eq!(client.account_id(), ACCOUNT);
        assert_eq!(client.base_url(), crate::DEFAULT_BASE_URL);
    }

    #[test]
    fn build_rejects_a_relative_base_url() {
        let config = ClientConfig::new(ACCOUNT, ApiToken::new(SECRET))
            .with_base_url(Uri::from_static("/client/v4"));
        let err = ClientBuilder::new(config).build().unwrap_err();
        assert!(matches!(err, ClientError::BaseUrl(_)), "{err:?}");
    }

    #[tokio::test]
    async fn send_json_decodes_the_result() {
        let reply = json!({"success": true, "errors": [], "messages": [], "result": {"id": "db1"}});
        let addr = serve(1, Duration::ZERO, (200, reply)).await;
        let client = client(addr, Duration::from_secs(5));
        assert_no_secret(&format!("{client:?}"));
        let env: Envelope<serde_json::Value> = client
            .send_json(get(&client, "d1/database?page=1"))
            .await
            .unwrap();
        assert_eq!(env.result["id"], "db1");
        // A second call reuses the pooled connection (the server accepts only one).
        let env: Envelope<serde_json::Value> = client
            .clone()
            .send_json(get(&client, "d1/database"))
            .await
            .unwrap();
        assert_eq!(env.result["id"], "db1");
    }

    #[tokio::test]
    async fn unauthorized_envelope_is_an_api_error() {
        let reply = json!({"success": false, "errors": [{"code": 10000, "message": "Authentication error"}]});
        let addr = serve(1, Duration::ZERO, (401, reply)).await;
        let client = client(addr, Duration::from_secs(5));
        let err = client
            .send_json::<serde_json::Value>(get(&client, "d1/database"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CloudflareError::Api { status, .. } if *status == StatusCode::UNAUTHORIZED),
            "{err:?}"
        );
        assert_eq!(err.errors()[0].code, 10000);
        assert!(
            err.to_string().contains("check CLOUDFLARE_API_TOKEN"),
            "{err}"
        );
        assert_error_hides_secret(&err);
    }

    #[tokio::test]
    async fn slow_server_times_out() {
        let reply = json!({"success": true, "errors": [], "result": null});
        let addr = serve(1, Duration::from_secs(2), (200, reply)).await;
        let after = Duration::from_millis(200);
        let client = client(addr, after);
        let started = std::time::Instant::now();
        let err = client
            .send_json::<serde_json::Value>(get(&client, "d1/database"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, CloudflareError::Timeout { after: a } if a == after),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(err.is_retryable());
        assert_error_hides_secret(&err);
    }

    #[tokio::test]
    async fn closed_port_is_a_transport_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = client(addr, Duration::from_secs(5));
        let err = client
            .send_json::<serde_json::Value>(get(&client, "d1/database"))
            .await
            .unwrap_err();
        assert!(matches!(err, CloudflareError::Transport { .. }), "{err:?}");
        assert!(err.is_retryable());
        assert_error_hides_secret(&err);
    }

    #[tokio::test]
    async fn with_layer_wraps_the_stack() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        let reply = json!({"success": true, "errors": [], "result": 7});
        let addr = serve(1, Duration::ZERO, (200, reply)).await;
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&seen);
        let counting = tower::layer::layer_fn(move |inner: HttpService| {
            let counter = Arc::clone(&counter);
            tower::util::MapRequest::new(inner, move |req: HttpRequest| {
                counter.fetch_add(1, Ordering::SeqCst);
                req
            })
        });
        let mut config = ClientConfig::new(ACCOUNT, ApiToken::new(SECRET))
            .with_base_url(format!("http://{addr}/client/v4").parse().unwrap());
        config.request_timeout = Duration::from_secs(5);
        let client = ClientBuilder::new(config)
            .with_layer(counting)
            .build()
            .unwrap();
        let env: Envelope<i64> = client.send_json(get(&client, "x")).await.unwrap();
        assert_eq!(env.result, 7);
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }
}
