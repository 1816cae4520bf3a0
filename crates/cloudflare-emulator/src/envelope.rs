//! Cloudflare's response envelope, as the emulator sends it:
//! `{"success", "errors": [{"code", "message"}], "messages": [], "result", "result_info"?}`.
//!
//! Every handler answers with [`ok`] / [`ok_with_info`] or an [`ApiError`].

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

/// A successful answer with `result`.
pub(crate) fn ok<T: Serialize>(result: T) -> Response {
    ok_with_info(result, None)
}

/// A successful answer with `result` and a `result_info` object (pagination).
pub(crate) fn ok_with_info<T: Serialize>(result: T, result_info: Option<Value>) -> Response {
    let mut body = json!({
        "success": true,
        "errors": [],
        "messages": [],
        "result": result,
    });
    if let Some(info) = result_info {
        body["result_info"] = info;
    }
    (StatusCode::OK, Json(body)).into_response()
}

/// A Cloudflare error answer: an HTTP status and one `{code, message}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} code {code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Cloudflare's error code.
    pub code: u32,
    /// Its message.
    pub message: String,
    /// Extra headers (e.g. `retry-after`).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 with `code`.
    pub fn not_found(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// Adds a response header.
    #[must_use]
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "success": false,
            "errors": [{"code": self.code, "message": self.message}],
            "messages": [],
            "result": null,
        });
        let mut response = (self.status, Json(body)).into_response();
        for (name, value) in self.headers {
            if let Ok(value) = value.parse() {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// What handlers return.
pub(crate) type ApiResult = Result<Response, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn success_and_error_envelopes() {
        let v = body(ok_with_info(json!([1]), Some(json!({"cursor": "c"})))).await;
        assert_eq!(v["success"], true);
        assert_eq!(v["result"], json!([1]));
        assert_eq!(v["result_info"]["cursor"], "c");
        let response = ApiError::bad_request(7500, "no such table: x: SQLITE_ERROR")
            .with_header("retry-after", "3")
            .into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()["retry-after"], "3");
        let v = body(response).await;
        assert_eq!(v["success"], false);
        assert_eq!(v["errors"][0]["code"], 7500);
        assert_eq!(v["result"], Value::Null);
    }
}
