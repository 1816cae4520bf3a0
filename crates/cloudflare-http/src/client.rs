//! [`Client`]: the Cloudflare API client, [`ClientBuilder`], which assembles its tower
//! stack from a [`ClientConfig`] in one place, and [`ServiceClient`], the view of it one
//! service (D1, Vectorize, R2, Workers AI) sends through.
//!
//! Each service gets its own stack over one shared connection pool, outermost first:
//!
//! | layer | job | shared by |
//! |---|---|---|
//! | the user's ([`ClientBuilder::with_layer`]) | anything | — |
//! | [`AccountingLayer`] | calls, failures, attempts, latency per [`Operation`] | all services |
//! | [`RetryPolicy`] | 408/429/5xx/transport retries, `retry-after`, budget | per call |
//! | [`BreakerLayer`] | fail fast while the service is unhealthy | one per service |
//! | [`RateLimitLayer`] | a token bucket, and the account's budget from `ratelimit` headers: waiting | all services |
//! | [`TimeoutLayer`] | one attempt's deadline | — |
//! | [`AuthLayer`], [`BaseUriLayer`] | `Authorization`, base URL | — |
//! | [`trace_layer`] (tower-http) | a span per attempt, status, latency | — |
//! | hyper-util client, hyper-rustls | pooled HTTP/1.1 + HTTP/2 over rustls (ring) | all services |
//!
//! The breaker sits inside the retry layer so a failing service opens it after the
//! threshold whatever the retry count, and outside the rate limiter so calls refused by an
//! open breaker spend no budget.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::de::DeserializeOwned;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceBuilder, ServiceExt};

use crate::backoff::RetryConfig;
use crate::envelope::{Envelope, decode};
use crate::error::CloudflareError;
use crate::middleware::accounting::{Accounting, AccountingLayer};
use crate::middleware::auth::{AuthLayer, InvalidToken};
use crate::middleware::base_uri::{BaseUriLayer, InvalidBaseUrl};
use crate::middleware::breaker::{BreakerConfig, BreakerHandle, BreakerLayer};
use crate::middleware::rate_limit::{
    AccountBudget, CallDeadline, RateLimitConfig, RateLimitLayer, TokenBucket, deadline_after,
};
use crate::middleware::retry::RetryPolicy;
use crate::middleware::timeout::TimeoutLayer;
use crate::middleware::trace::trace_layer;
use crate::operation::Operation;
use crate::secret::ApiToken;

/// Default TCP connect timeout.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit for one attempt (connect, send, read the response body). D1 allows a
/// query 30 s, so this leaves room for the network.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(40);
/// Default time an idle pooled connection is kept open.
pub(crate) const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Default number of idle connections kept per host.
pub(crate) const DEFAULT_POOL_MAX_IDLE_PER_HOST: usize = 8;

/// A request as the stack takes it: the URI holds only the API path and query
/// (e.g. `/accounts/{id}/d1/database`), [`BaseUriLayer`] adds the rest.
pub type HttpRequest = http::Request<Full<Bytes>>;
/// A response as the stack returns it, with the body fully read.
pub type HttpResponse = http::Response<Bytes>;
/// The type-erased client stack.
pub type HttpService = BoxCloneSyncService<HttpRequest, HttpResponse, CloudflareError>;

/// Which root certificates TLS trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RootStore {
    /// Mozilla's roots, compiled in (webpki-roots): works in any container.
    #[default]
    Webpki,
    /// The operating system's store (feature `native-roots`), for corporate proxies that
    /// re-sign TLS with their own root.
    #[cfg(feature = "native-roots")]
    Native,
}

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
    /// Timeout of one attempt ([`DEFAULT_REQUEST_TIMEOUT`]).
    pub request_timeout: Duration,
    /// How long idle pooled connections stay open ([`DEFAULT_POOL_IDLE_TIMEOUT`]).
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per host ([`DEFAULT_POOL_MAX_IDLE_PER_HOST`]).
    pub pool_max_idle_per_host: usize,
    /// Retries ([`RetryConfig::default`]; `max_retries: 0` turns them off).
    pub retry: RetryConfig,
    /// The circuit breaker every service gets (its name is replaced by the service's),
    /// or `None` for no breaker.
    pub breaker: Option<BreakerConfig>,
    /// The token bucket shared by all services ([`RateLimitConfig::default`]: Cloudflare's
    /// 1200 per 5 minutes), or `None` for none. Either way the client also paces itself by
    /// the `ratelimit` headers Cloudflare sends ([`AccountBudget`]), which count every
    /// consumer of the account.
    pub rate_limit: Option<RateLimitConfig>,
    /// Root certificates ([`RootStore::Webpki`]).
    pub root_store: RootStore,
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
            retry: RetryConfig::default(),
            breaker: Some(BreakerConfig::named("cloudflare")),
            rate_limit: Some(RateLimitConfig::default()),
            root_store: RootStore::default(),
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
    /// rustls rejected the TLS configuration, or the native root store could not be read.
    #[error("could not set up TLS for the Cloudflare client: {source}")]
    Tls {
        /// The rustls or I/O error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// A user layer, applied to each service's stack by [`ClientBuilder::build`].
type SharedLayer = Arc<dyn Fn(HttpService) -> HttpService + Send + Sync>;

/// Builds a [`Client`] from a [`ClientConfig`]: the default stack plus user layers.
pub struct ClientBuilder {
    config: ClientConfig,
    layers: Vec<SharedLayer>,
    accounting: Accounting,
    transport: Option<HttpService>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// A builder with the default stack for `config`.
    #[must_use]
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config,
            layers: Vec::new(),
            accounting: Accounting::new(),
            transport: None,
        }
    }

    /// Sends over `transport` instead of the hyper connection pool (and its tracing
    /// layer); every other layer stays. For tests that script Cloudflare's answers, and for
    /// callers bringing their own HTTP stack. `transport` gets absolute URIs with the
    /// `Authorization` header set.
    #[must_use]
    pub fn with_transport(mut self, transport: HttpService) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Wraps `layer` around every service's stack: the last layer added is the outermost.
    /// User layers see requests before every default layer (the URI is still the bare API
    /// path, the [`Operation`] is set) and complete responses.
    #[must_use]
    pub fn with_layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<HttpService> + Send + Sync + 'static,
        L::Service: tower::Service<HttpRequest, Response = HttpResponse, Error = CloudflareError>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<HttpRequest>>::Future: Send + 'static,
    {
        self.layers.push(Arc::new(move |inner| {
            BoxCloneSyncService::new(layer.layer(inner))
        }));
        self
    }

    /// Records into `accounting` instead of a fresh registry (to share one between clients).
    #[must_use]
    pub fn with_accounting(mut self, accounting: Accounting) -> Self {
        self.accounting = accounting;
        self
    }

    /// Builds the client. Needs a Tokio runtime when requests are sent, not here.
    ///
    /// # Errors
    ///
    /// [`ClientError`] if the base URL or the token is unusable, or TLS setup fails.
    pub fn build(self) -> Result<Client, ClientError> {
        let Self {
            config,
            layers,
            accounting,
            transport,
        } = self;
        let base = BaseUriLayer::new(config.base_url.clone())?;
        let auth = AuthLayer::new(&config.token)?;

        let wire = match transport {
            Some(transport) => transport,
            None => Self::hyper_transport(&config)?,
        };
        let transport = BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(TimeoutLayer::new(config.request_timeout))
                .layer(auth)
                .layer(base)
                .service(wire),
        );
        Ok(Client {
            shared: Arc::new(Shared {
                account_id: config.account_id,
                base_url: config.base_url,
                transport,
                retry: config.retry,
                breaker: config.breaker,
                bucket: config.rate_limit.map(TokenBucket::new),
                budget: AccountBudget::new(),
                accounting,
                layers,
                services: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// hyper-util's pooled client over hyper-rustls, traced, bodies collected.
    fn hyper_transport(config: &ClientConfig) -> Result<HttpService, ClientError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        let tls = |e: std::io::Error| ClientError::Tls {
            source: Box::new(e),
        };
        let provider = rustls::crypto::ring::default_provider();
        let https = match config.root_store {
            RootStore::Webpki => HttpsConnectorBuilder::new()
                .with_provider_and_webpki_roots(provider)
                .map_err(|e| ClientError::Tls {
                    source: Box::new(e),
                })?,
            #[cfg(feature = "native-roots")]
            RootStore::Native => HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(provider)
                .map_err(tls)?,
        }
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
        let _ = tls;
        let hyper = HyperClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .build(https);
        let wire = ServiceBuilder::new()
            .map_err(CloudflareError::transport)
            .map_response(|r: http::Response<_>| r.map(BodyExt::boxed))
            .layer(trace_layer())
            .service(hyper);
        Ok(BoxCloneSyncService::new(Collect {
            inner: BoxCloneSyncService::new(wire),
        }))
    }
}

/// The raw wire service: hyper + tracing, bodies still streaming.
type WireService = BoxCloneSyncService<
    HttpRequest,
    http::Response<http_body_util::combinators::BoxBody<Bytes, hyper::Error>>,
    CloudflareError,
>;

/// Reads the whole response body so every layer above sees a complete response.
#[derive(Clone)]
struct Collect {
    inner: WireService,
}

impl tower::Service<HttpRequest> for Collect {
    type Response = HttpResponse;
    type Error = CloudflareError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, CloudflareError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let call = self.inner.call(request);
        Box::pin(async move {
            // hyper errors carry no request headers, so the token cannot leak here.
            let (parts, body) = call.await?.into_parts();
            let body = body
                .collect()
                .await
                .map_err(CloudflareError::transport)?
                .to_bytes();
            Ok(http::Response::from_parts(parts, body))
        })
    }
}

/// What all clones of a [`Client`] share.
struct Shared {
    account_id: String,
    base_url: Uri,
    transport: HttpService,
    retry: RetryConfig,
    breaker: Option<BreakerConfig>,
    bucket: Option<TokenBucket>,
    budget: AccountBudget,
    accounting: Accounting,
    layers: Vec<SharedLayer>,
    services: Mutex<HashMap<&'static str, ServiceClient>>,
}

/// A Cloudflare API client: cheap to clone, `Send + Sync`. Hand out one
/// [`ServiceClient`] per service with [`Client::service`].
///
/// ```no_run
/// use cloudflare_http::{ApiToken, ClientBuilder, ClientConfig};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = ClientConfig::new("023e105f4ecef8ad9ca31a8372d0c353", ApiToken::new("token"));
/// let client = ClientBuilder::new(config).build()?;
/// let d1 = client.service("d1");
/// let path = format!("/accounts/{}/d1/database", d1.account_id());
/// let request = cloudflare_http::empty_request(http::Method::GET, &path)?;
/// let databases: cloudflare_http::Envelope<serde_json::Value> =
///     d1.send_json("list", request).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl Client {
    /// The configured account id.
    #[must_use]
    pub fn account_id(&self) -> &str {
        &self.shared.account_id
    }

    /// The configured base URL.
    #[must_use]
    pub fn base_url(&self) -> &Uri {
        &self.shared.base_url
    }

    /// The client for `service` (e.g. `"d1"`), with its own circuit breaker; built on first
    /// use, then shared.
    #[must_use]
    pub fn service(&self, service: &'static str) -> ServiceClient {
        let mut services = self
            .shared
            .services
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        services
            .entry(service)
            .or_insert_with(|| self.build_service(service))
            .clone()
    }

    /// The breakers of the services used so far, by service name.
    #[must_use]
    pub fn breakers(&self) -> Vec<BreakerHandle> {
        let services = self
            .shared
            .services
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut handles: Vec<BreakerHandle> = services
            .values()
            .filter_map(|s| s.breaker.clone())
            .collect();
        handles.sort_by_key(|h| h.config().name());
        handles
    }

    /// Calls, failures, attempts and latency per operation, for every service.
    #[must_use]
    pub fn accounting(&self) -> &Accounting {
        &self.shared.accounting
    }

    /// The token bucket shared by all services, if rate limiting is on.
    #[must_use]
    pub fn rate_limiter(&self) -> Option<&TokenBucket> {
        self.shared.bucket.as_ref()
    }

    /// The account's request budget as Cloudflare last reported it, shared by all services
    /// and clones of this client.
    #[must_use]
    pub fn account_budget(&self) -> &AccountBudget {
        &self.shared.budget
    }

    /// Sends `request` as [`Operation::UNNAMED`] through the `"api"` service's stack and
    /// decodes the envelope.
    ///
    /// # Errors
    ///
    /// As [`ServiceClient::send_json`].
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        request: HttpRequest,
    ) -> Result<Envelope<T>, CloudflareError> {
        self.service(Operation::UNNAMED.service)
            .send_json(Operation::UNNAMED.name, request)
            .await
    }

    fn build_service(&self, name: &'static str) -> ServiceClient {
        let shared = &self.shared;
        let mut stack = shared.transport.clone();
        stack = BoxCloneSyncService::new(
            RateLimitLayer::new(
                shared.bucket.clone(),
                shared.budget.clone(),
                shared.retry.total_budget,
            )
            .layer(stack),
        );
        let breaker = shared.breaker.map(|config| {
            let layer = BreakerLayer::new(config.for_service(name));
            let handle = layer.handle();
            stack = BoxCloneSyncService::new(layer.layer(stack.clone()));
            handle
        });
        if shared.retry.max_retries > 0 {
            stack = BoxCloneSyncService::new(
                tower::retry::RetryLayer::new(RetryPolicy::new(shared.retry)).layer(stack),
            );
        }
        stack =
            BoxCloneSyncService::new(AccountingLayer::new(shared.accounting.clone()).layer(stack));
        for layer in &shared.layers {
            stack = layer(stack);
        }
        ServiceClient {
            name,
            account_id: shared.account_id.clone(),
            stack,
            breaker,
            total_budget: shared.retry.total_budget,
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("account_id", &self.shared.account_id)
            .field("base_url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

/// One service's view of a [`Client`]: its own breaker, the shared pool, rate limit and
/// accounting. Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct ServiceClient {
    name: &'static str,
    account_id: String,
    stack: HttpService,
    breaker: Option<BreakerHandle>,
    /// The retry budget: how long one call may take, waits included.
    total_budget: Duration,
}

impl fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceClient")
            .field("name", &self.name)
            .field("account_id", &self.account_id)
            .field("breaker", &self.breaker.as_ref().map(BreakerHandle::state))
            .finish_non_exhaustive()
    }
}

impl ServiceClient {
    /// The service name, e.g. `"d1"`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The account id, for building paths.
    #[must_use]
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// This service's circuit breaker, if breakers are on.
    #[must_use]
    pub fn breaker(&self) -> Option<&BreakerHandle> {
        self.breaker.as_ref()
    }

    /// The whole stack, to call as a tower service (requests should carry an [`Operation`]).
    #[must_use]
    pub fn stack(&self) -> HttpService {
        self.stack.clone()
    }

    /// Sends `request` as operation `operation` of this service and returns the response
    /// whatever its status (after retries). Use [`crate::check_status`] or [`decode`].
    ///
    /// # Errors
    ///
    /// [`CloudflareError::Transport`], [`CloudflareError::Timeout`] or
    /// [`CloudflareError::CircuitOpen`] when no response came;
    /// [`CloudflareError::RateLimited`] when the account's budget is spent for longer than
    /// the retry budget.
    pub async fn send(
        &self,
        operation: &'static str,
        mut request: HttpRequest,
    ) -> Result<HttpResponse, CloudflareError> {
        let deadline = deadline_after(tokio::time::Instant::now(), self.total_budget);
        let extensions = request.extensions_mut();
        extensions.insert(Operation::new(self.name, operation));
        extensions.insert(CallDeadline(deadline));
        self.stack.clone().oneshot(request).await
    }

    /// [`ServiceClient::send`], then decodes the Cloudflare envelope with [`decode`].
    ///
    /// # Errors
    ///
    /// As [`ServiceClient::send`], then whatever [`decode`] reports.
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        request: HttpRequest,
    ) -> Result<Envelope<T>, CloudflareError> {
        let response = self.send(operation, request).await?;
        let (parts, body) = response.into_parts();
        decode(parts.status, &parts.headers, &body)
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
        // These tests look at single attempts; the stack tests (tests/stack.rs) cover retries.
        config.retry.max_retries = 0;
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
