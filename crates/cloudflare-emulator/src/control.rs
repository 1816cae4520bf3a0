//! The emulator's own control endpoints, outside `/client/v4`: not Cloudflare's API, not
//! subject to authentication, rate limiting, fault injection or counting. Answers use the
//! same envelope as the API (`{"success", "errors", "messages", "result"}`).
//!
//! | endpoint | does |
//! |---|---|
//! | `GET /__emulator/info` | base URL, tokens, account ids, model stand-ins, data dir, rate limit, seed |
//! | `GET /__emulator/counters` | request counts per route and per status ([`CountersSnapshot`](crate::counters::CountersSnapshot)) |
//! | `DELETE /__emulator/counters` | sets the counters to zero |
//! | `GET /__emulator/faults` | the fault rules in force, with ids |
//! | `POST /__emulator/faults` | adds a [`FaultRule`] (JSON, see [`crate::faults`]); result `{"id"}` |
//! | `DELETE /__emulator/faults` | removes every rule (and rewinds the fault generator to the seed) |
//! | `DELETE /__emulator/faults/{id}` | removes one rule |

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{delete, get};
use serde_json::json;

use crate::config::EmulatorConfig;
use crate::counters::Counters;
use crate::envelope::{ApiError, ApiResult, ok};
use crate::faults::{FaultHandle, FaultRule};

/// What the control endpoints reach.
#[derive(Debug, Clone)]
pub(crate) struct Control {
    pub addr: SocketAddr,
    pub config: Arc<EmulatorConfig>,
    pub faults: FaultHandle,
    pub counters: Counters,
}

/// What `GET /__emulator/info` answers (also what the binary prints).
pub(crate) fn info(addr: SocketAddr, config: &EmulatorConfig) -> serde_json::Value {
    json!({
        "base_url": format!("http://{addr}/client/v4"),
        "tokens": config.tokens,
        "account_ids": config.account_ids,
        "models": config.models.iter().map(|m| json!({
            "cloudflare_model": m.cloudflare_model,
            "local_model": m.local_model,
            "local_dir": m.local_dir,
            "note": "stand-in, not the real model: the vectors are the local model's",
        })).collect::<Vec<_>>(),
        "data_dir": config.data_dir,
        "rate_limit": {
            "requests": config.rate_limit,
            "window_secs": config.rate_window.as_secs_f64(),
        },
        "mutation_delay_ms": u64::try_from(config.mutation_delay.as_millis()).unwrap_or(u64::MAX),
        "seed": config.seed,
    })
}

async fn get_info(State(c): State<Control>) -> ApiResult {
    Ok(ok(info(c.addr, &c.config)))
}

async fn get_counters(State(c): State<Control>) -> ApiResult {
    Ok(ok(c.counters.snapshot()))
}

async fn reset_counters(State(c): State<Control>) -> ApiResult {
    c.counters.reset();
    Ok(ok(json!({})))
}

async fn list_faults(State(c): State<Control>) -> ApiResult {
    Ok(ok(c.faults.rules()))
}

async fn add_fault(State(c): State<Control>, body: Bytes) -> ApiResult {
    let rule: FaultRule = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(10001, format!("invalid fault rule JSON: {e}")))?;
    let id = c
        .faults
        .add(rule)
        .map_err(|e| ApiError::bad_request(10001, e.to_string()))?;
    Ok(ok(json!({ "id": id })))
}

async fn clear_faults(State(c): State<Control>) -> ApiResult {
    c.faults.clear();
    Ok(ok(json!({})))
}

async fn remove_fault(State(c): State<Control>, Path(id): Path<String>) -> ApiResult {
    let removed = id.parse::<u64>().is_ok_and(|id| c.faults.remove(id));
    if removed {
        Ok(ok(json!({ "id": id })))
    } else {
        Err(ApiError::not_found(10001, format!("no fault rule {id}")))
    }
}

/// The control routes.
pub(crate) fn router(control: Control) -> Router {
    Router::new()
        .route("/__emulator/info", get(get_info))
        .route(
            "/__emulator/counters",
            get(get_counters).delete(reset_counters),
        )
        .route(
            "/__emulator/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/__emulator/faults/{id}", delete(remove_fault))
        .with_state(control)
}
