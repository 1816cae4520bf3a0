//! Starting the emulator: the router of every service behind Cloudflare's gateway behaviour,
//! served on 127.0.0.1.
//!
//! Every request under `/client/v4` passes, in order: the request [counters](crate::counters)
//! → [fault injection](crate::faults) → [authentication](crate::auth) → the
//! [rate limit](crate::rate_limit) (per account) → the account check → the service routes. A path no route serves is 404
//! code 7003 `Could not route to <path>, perhaps your object identifier is invalid?`; a known
//! path with another method is 405 code 7001 `Method <M> not available for that URI.` (the
//! live API's answers). The [control endpoints](crate::control) under `/__emulator` bypass
//! all of it.
//!
//! Besides the four services the emulator serves Cloudflare's token check,
//! `GET /client/v4/user/tokens/verify` and `GET /client/v4/accounts/{account_id}/tokens/verify`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::auth::ApiToken;
use crate::config::EmulatorConfig;
use crate::control::Control;
use crate::counters::Counters;
use crate::envelope::ApiError;
use crate::faults::{FaultHandle, FaultLayer};
use crate::rate_limit::RateLimiter;

/// Starts emulators.
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// Binds an ephemeral port on 127.0.0.1 and serves until the handle is dropped.
    ///
    /// # Errors
    ///
    /// If the port cannot be bound or a service cannot open its storage.
    pub async fn start(config: EmulatorConfig) -> anyhow::Result<EmulatorHandle> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Like [`Emulator::start`] on a chosen address (port 0 = any free port; see
    /// [`EmulatorHandle::addr`]).
    ///
    /// # Errors
    ///
    /// As [`Emulator::start`].
    pub async fn start_on(
        config: EmulatorConfig,
        addr: SocketAddr,
    ) -> anyhow::Result<EmulatorHandle> {
        let config = Arc::new(config);
        let d1 = crate::d1::D1::new(&config)?;
        let vectorize = crate::vectorize::Vectorize::new(&config)?;
        let r2 = crate::r2::R2::new(&config)?;
        let ai = crate::ai::Ai::new(&config)?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;

        let faults = FaultHandle::new(config.seed);
        let counters = Counters::new();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let limiter = Arc::new(RateLimiter::new(
            config.rate_limit,
            config.rate_window,
            config.account_ids.clone(),
        ));

        let api = Router::new()
            .merge(d1.router())
            .merge(vectorize.router())
            .merge(r2.router())
            .merge(ai.router())
            .route("/client/v4/user/tokens/verify", get(verify_token))
            .route(
                "/client/v4/accounts/{account_id}/tokens/verify",
                get(verify_token),
            )
            .fallback(no_route)
            // Innermost first: the last layer added runs first.
            .layer(from_fn(method_not_allowed))
            .layer(from_fn_with_state(
                Arc::clone(&config),
                crate::auth::account_middleware,
            ))
            // Outside the account check, so its 403 carries the rate limit headers too.
            .layer(from_fn_with_state(
                Arc::clone(&limiter),
                crate::rate_limit::middleware,
            ))
            .layer(from_fn_with_state(
                Arc::clone(&config),
                crate::auth::middleware,
            ))
            .layer(from_fn_with_state(
                FaultLayer {
                    handle: faults.clone(),
                    shutdown: shutdown_rx,
                },
                crate::faults::middleware,
            ))
            .layer(from_fn_with_state(
                counters.clone(),
                crate::counters::middleware,
            ));
        let app = api.merge(crate::control::router(Control {
            addr,
            config: Arc::clone(&config),
            faults: faults.clone(),
            counters: counters.clone(),
        }));

        let (stop, stopped) = oneshot::channel::<()>();
        let join = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(EmulatorHandle {
            addr,
            config,
            d1,
            vectorize,
            r2,
            faults,
            counters,
            shutdown: shutdown_tx,
            stop: Some(stop),
            join: Some(join),
        })
    }
}

/// Cloudflare's answer to a path no route serves.
async fn no_route(uri: Uri) -> ApiError {
    ApiError::not_found(
        7003,
        format!(
            "Could not route to {}, perhaps your object identifier is invalid?",
            uri.path()
        ),
    )
}

/// Turns axum's bare 405 (a known path, another method) into Cloudflare's envelope.
async fn method_not_allowed(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    if response.status() != StatusCode::METHOD_NOT_ALLOWED
        || response.headers().contains_key(http::header::CONTENT_TYPE)
    {
        return response;
    }
    let allow = response.headers().get(http::header::ALLOW).cloned();
    let mut answer = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        7001,
        format!("Method {method} not available for that URI."),
    )
    .into_response();
    if let Some(allow) = allow {
        answer.headers_mut().insert(http::header::ALLOW, allow);
    }
    answer
}

/// `GET /user/tokens/verify`: Cloudflare's token check (the token id is derived from the
/// token, so it is stable).
async fn verify_token(request: Request) -> Response {
    let token = request
        .extensions()
        .get::<ApiToken>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    let id = hex::encode(&Sha256::digest(token.as_bytes())[..16]);
    axum::Json(json!({
        "success": true,
        "errors": [],
        "messages": [{"code": 10000, "message": "This API Token is valid and active", "type": null}],
        "result": {"id": id, "status": "active"},
    }))
    .into_response()
}

/// A running emulator; dropping it stops the server.
#[derive(Debug)]
pub struct EmulatorHandle {
    addr: SocketAddr,
    config: Arc<EmulatorConfig>,
    d1: Arc<crate::d1::D1>,
    vectorize: Arc<crate::vectorize::Vectorize>,
    r2: Arc<crate::r2::R2>,
    faults: FaultHandle,
    counters: Counters,
    shutdown: watch::Sender<bool>,
    stop: Option<oneshot::Sender<()>>,
    join: Option<tokio::task::JoinHandle<()>>,
}

impl EmulatorHandle {
    /// The D1 service: create or delete databases, switch off create-on-first-use.
    #[must_use]
    pub fn d1(&self) -> &Arc<crate::d1::D1> {
        &self.d1
    }

    /// The Vectorize service.
    #[must_use]
    pub fn vectorize(&self) -> &Arc<crate::vectorize::Vectorize> {
        &self.vectorize
    }

    /// The R2 service.
    #[must_use]
    pub fn r2(&self) -> &Arc<crate::r2::R2> {
        &self.r2
    }

    /// The address served.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API base URL, `http://127.0.0.1:PORT/client/v4`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}/client/v4", self.addr)
    }

    /// The configuration served.
    #[must_use]
    pub fn config(&self) -> &EmulatorConfig {
        &self.config
    }

    /// The fault injection rules (add, remove, clear).
    #[must_use]
    pub fn faults(&self) -> FaultHandle {
        self.faults.clone()
    }

    /// The request counters (per route, per status; reset).
    #[must_use]
    pub fn counters(&self) -> Counters {
        self.counters.clone()
    }

    /// Stops the server (ending hangs and delays in progress with a connection reset) and
    /// waits for it.
    pub async fn shutdown(mut self) {
        self.signal_stop();
        if let Some(join) = self.join.take() {
            let _ = join.await;
        }
    }

    fn signal_stop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        self.signal_stop();
    }
}
