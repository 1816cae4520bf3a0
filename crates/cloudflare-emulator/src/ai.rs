//! Workers AI text embeddings: `POST /client/v4/accounts/{account_id}/ai/run/{model}`
//! (model ids contain slashes, e.g. `@cf/baai/bge-small-en-v1.5`).
//!
//! A model id is answered only when [`EmulatorConfig::models`] names a local stand-in for
//! it ([`ModelStandIn`]); the vectors are the local model's (`memory-embed`, loaded on first
//! call), NOT Cloudflare's, and every answer says so in the `cf-emulator-stand-in` header.
//!
//! Request (the spec's embedding paths): `{"text": str | [str; ≤100], "pooling"?: "mean" | "cls"}`.
//! Answer: `{"result": {"shape": [n, d], "data": [[f32; d]; n], "pooling": ...}, "success": true,
//! "errors": [], "messages": []}` with `d` the stand-in's dimensions.
//!
//! Errors, with Workers AI's codes (<https://developers.cloudflare.com/workers-ai/platform/errors/>),
//! in a failure envelope whose `result` is `{}` (the spec's 400 schema types it as an object):
//! - unknown model id → 400 / 5007 "No such model … or task", listing the stand-ins;
//! - invalid model path → 404 / 3042; missing body → 400 / 3003; body over
//!   [`MAX_REQUEST_BYTES`] → 413 / 3006;
//! - input breaking the model's schema (no `text`, an empty string, more than
//!   100 texts, a bad `pooling`, malformed JSON) → 400 / 5006, the code Workers AI
//!   answers input-validation failures with ("Bad input"; observed, not in the docs' table);
//! - an empty `text` array → 400 / 5006 (the schema allows it; the emulator refuses it so
//!   that a caller's bug does not pass silently — a deliberate deviation);
//! - `pooling` other than the stand-in's own → 400 / 5006: `memory-embed` cannot switch a
//!   model's pooling, and the emulator will not return mean-pooled vectors labelled `cls`
//!   (or the reverse). With the default stand-in (all-MiniLM-L6-v2, mean pooling) requests
//!   with `"pooling": "mean"` or no pooling work and `"cls"` is refused;
//! - the stand-in's weights absent or unloadable → 503 / 3099
//!   (an emulator-only code) naming `cargo xtask fetch-model` and `MCP_MEMORY_MODEL_DIR`.
//!
//! - a text of more than the model's input tokens → 400 / 5006 naming the text, its
//!   count and the limit (see below).
//!
//! # Input tokens
//!
//! Cloudflare documents "Max input tokens: 512" for `@cf/baai/bge-small-en-v1.5`, `-base-`
//! and `-large-` (each model's page,
//! <https://developers.cloudflare.com/workers-ai/models/bge-base-en-v1.5/>) but not what
//! happens to a longer text. What is public points to a refusal rather than a silent cut:
//! users report errors for long texts in batches well under 100 texts
//! (cloudflare/cloudflare-docs#11316), and the schema of `@cf/baai/bge-m3` has a
//! `truncate_inputs` flag ("When provided with too long context should the model error
//! out or truncate the context to fit?"), so refusing is the behaviour a caller must be
//! ready for. The emulator is strict by choice, whatever Cloudflare does in a given
//! month: a text of more than 512 tokens for those three ids is refused with 400 / 5006,
//! so a client that would send one is caught in tests. The tokens are counted, `[CLS]` and
//! `[SEP]` included, with the stand-in's tokenizer, untruncated: right for the default
//! stand-in, all-MiniLM-L6-v2, whose WordPiece vocabulary (bert-base-uncased's) is the BGE
//! models' own. Other model ids are not limited. Texts within the limit but longer than
//! the stand-in's own window are truncated by it (MiniLM keeps 256 tokens).

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use memory_embed::{
    BertEmbedder, EmbedError, Embedder, ModelLocation, ModelSpec, Pooling, TokenCounter,
};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::config::{EmulatorConfig, ModelStandIn};

/// The response header naming the local model that computed the answer.
pub(crate) const STAND_IN_HEADER: &str = "cf-emulator-stand-in";
/// Texts per request (the spec's `maxItems: 100`).
pub(crate) const MAX_TEXTS: usize = 100;
/// The largest request body accepted. Workers AI documents no number for its 413 / 3006
/// "Request is too large"; the emulator uses the Workers request body limit of the Free
/// and Pro plans, 100 MB.
pub const MAX_REQUEST_BYTES: u64 = 100_000_000;

/// Input tokens, `[CLS]` and `[SEP]` included, of the Workers AI models whose pages say
/// "Max input tokens: 512" (see the [module docs](self#input-tokens)).
pub(crate) const BGE_MAX_INPUT_TOKENS: usize = 512;

/// The most input tokens `cloudflare_model` accepts, when the emulator enforces a limit:
/// the BGE English models' documented 512; `None` (no limit) for any other id.
fn max_input_tokens(cloudflare_model: &str) -> Option<usize> {
    const LIMITED: [&str; 3] = [
        "@cf/baai/bge-small-en-v1.5",
        "@cf/baai/bge-base-en-v1.5",
        "@cf/baai/bge-large-en-v1.5",
    ];
    LIMITED
        .contains(&cloudflare_model)
        .then_some(BGE_MAX_INPUT_TOKENS)
}

/// Workers AI error codes, and the emulator's own.
mod codes {
    /// 400 "Request is missing headers or body".
    pub(crate) const INCOMPLETE_REQUEST: u32 = 3003;
    /// 413 "Request is too large".
    pub(crate) const REQUEST_TOO_LARGE: u32 = 3006;
    /// 404 "The model name is invalid".
    pub(crate) const INVALID_MODEL_ID: u32 = 3042;
    /// 400 input validation ("Bad input"): observed from Workers AI, not in its docs.
    pub(crate) const BAD_INPUT: u32 = 5006;
    /// 400 "No such model ${model} or task".
    pub(crate) const NO_SUCH_MODEL: u32 = 5007;
    /// 503 / 500: the local stand-in model could not be loaded or failed. Emulator-only:
    /// Cloudflare has no such situation, so no code of its own.
    pub(crate) const STAND_IN_UNAVAILABLE: u32 = 3099;
}

const RUN: &str = "/client/v4/accounts/{account_id}/ai/run/{*model_name}";

/// One configured stand-in and its model, loaded on first use.
#[derive(Debug)]
struct StandIn {
    config: ModelStandIn,
    model: OnceCell<BertEmbedder>,
    /// The model's tokenizer, untruncated, to enforce [`max_input_tokens`].
    counter: OnceCell<TokenCounter>,
}

impl StandIn {
    /// The model, loading it on first call (a failed load is retried on the next call).
    async fn load(&self) -> Result<&BertEmbedder, EmbedError> {
        self.model
            .get_or_try_init(|| async {
                let dir: PathBuf = match &self.config.local_dir {
                    Some(dir) => dir.clone(),
                    None => ModelLocation::resolve(&self.config.local_model)?.dir,
                };
                BertEmbedder::load_async(dir, self.config.local_model.clone()).await
            })
            .await
    }

    /// The loaded model's tokenizer without truncation (made once: it copies the vocabulary).
    async fn counter(&self, model: &BertEmbedder) -> Result<&TokenCounter, EmbedError> {
        self.counter
            .get_or_try_init(|| async { model.token_counter() })
            .await
    }
}

/// The first text of `texts` with more than `max` tokens: its index and count.
fn first_too_long(
    counter: &TokenCounter,
    texts: &[String],
    max: usize,
) -> Result<Option<(usize, usize)>, EmbedError> {
    for (i, text) in texts.iter().enumerate() {
        let n = counter.count(text)?;
        if n > max {
            return Ok(Some((i, n)));
        }
    }
    Ok(None)
}

/// The Workers AI service's state: the stand-ins.
#[derive(Debug)]
pub(crate) struct Ai {
    stand_ins: Vec<StandIn>,
}

impl Ai {
    /// Registers the configured stand-ins (nothing is loaded until a model is called).
    ///
    /// # Errors
    ///
    /// Never at present; the signature is the services' common one.
    pub(crate) fn new(config: &Arc<EmulatorConfig>) -> anyhow::Result<Arc<Self>> {
        for m in &config.models {
            tracing::info!(
                cloudflare_model = %m.cloudflare_model,
                local_model = %m.local_model,
                "Workers AI stand-in: answers come from the local model, not Cloudflare's"
            );
            let cf = ModelSpec::known(&m.cloudflare_model).map(|s| s.dimensions);
            let local = ModelSpec::known(&m.local_model).map(|s| s.dimensions);
            if let (Some(cf), Some(local)) = (cf, local)
                && cf != local
            {
                tracing::warn!(
                    cloudflare_model = %m.cloudflare_model,
                    local_model = %m.local_model,
                    cloudflare_dimensions = cf,
                    local_dimensions = local,
                    "the stand-in's vectors have a different length than the real model's"
                );
            }
        }
        Ok(Arc::new(Self {
            stand_ins: config
                .models
                .iter()
                .map(|m| StandIn {
                    config: m.clone(),
                    model: OnceCell::new(),
                    counter: OnceCell::new(),
                })
                .collect(),
        }))
    }

    /// The service's routes (full paths under `/client/v4/accounts/{account_id}/`).
    pub(crate) fn router(self: &Arc<Self>) -> Router {
        Router::new()
            // Other methods: the server's 405 / 7001 envelope.
            .route(RUN, post(run))
            // The handler reads and limits the body itself, with Workers AI's error.
            .layer(DefaultBodyLimit::disable())
            .with_state(Arc::clone(self))
    }

    fn stand_in(&self, model: &str) -> Option<&StandIn> {
        self.stand_ins
            .iter()
            .find(|s| s.config.cloudflare_model == model)
    }

    fn served(&self) -> String {
        if self.stand_ins.is_empty() {
            return "none (EmulatorConfig::models is empty)".to_owned();
        }
        self.stand_ins
            .iter()
            .map(|s| {
                format!(
                    "{} (stand-in: {})",
                    s.config.cloudflare_model, s.config.local_model
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A Workers AI failure: status, code, message, and the stand-in that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AiError {
    status: StatusCode,
    code: u32,
    message: String,
    stand_in: Option<String>,
}

impl AiError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            stand_in: None,
        }
    }

    fn bad_input(message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::BAD_INPUT,
            format!("AiError: Bad input: {message}"),
        )
    }
}

fn with_stand_in(mut response: Response, stand_in: Option<&str>) -> Response {
    let value = stand_in
        .and_then(|s| HeaderValue::from_str(s).ok())
        .unwrap_or_else(|| HeaderValue::from_static("none"));
    response.headers_mut().insert(STAND_IN_HEADER, value);
    response
}

impl IntoResponse for AiError {
    fn into_response(self) -> Response {
        let body = json!({
            "success": false,
            "errors": [{"code": self.code, "message": self.message}],
            "messages": [],
            "result": {},
        });
        with_stand_in(
            (self.status, axum::Json(body)).into_response(),
            self.stand_in.as_deref(),
        )
    }
}

/// A validated embedding request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EmbedRequest {
    texts: Vec<String>,
    pooling: &'static str,
}

fn parse_request(body: &[u8]) -> Result<EmbedRequest, AiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(AiError::new(
            StatusCode::BAD_REQUEST,
            codes::INCOMPLETE_REQUEST,
            "Request is missing headers or body: body",
        ));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| AiError::bad_input(format!("the body is not JSON: {e}")))?;
    let Value::Object(input) = value else {
        return Err(AiError::bad_input("Error: type at '/' is not 'object'"));
    };
    let texts = match input.get("text") {
        None => {
            return Err(AiError::bad_input(
                "Error: required properties at '/' are 'text'",
            ));
        }
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) => {
            if items.len() > MAX_TEXTS {
                return Err(AiError::bad_input(format!(
                    "Error: array at '/text' has {} items, more than maxItems {MAX_TEXTS}",
                    items.len()
                )));
            }
            if items.is_empty() {
                return Err(AiError::bad_input(
                    "Error: '/text' is an empty array: there is nothing to embed",
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(AiError::bad_input(format!(
                        "Error: type at '/text/{i}' is not 'string'"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(_) => {
            return Err(AiError::bad_input(
                "Error: '/text' must be a string or an array of strings",
            ));
        }
    };
    if let Some(i) = texts.iter().position(String::is_empty) {
        let at = if matches!(input.get("text"), Some(Value::Array(_))) {
            format!("/text/{i}")
        } else {
            "/text".to_owned()
        };
        return Err(AiError::bad_input(format!(
            "Error: string at '{at}' is shorter than minLength 1"
        )));
    }
    let pooling = match input.get("pooling") {
        None => "mean",
        Some(Value::String(p)) if p == "mean" => "mean",
        Some(Value::String(p)) if p == "cls" => "cls",
        Some(other) => {
            return Err(AiError::bad_input(format!(
                "Error: '/pooling' must be one of 'mean', 'cls', got {other}"
            )));
        }
    };
    Ok(EmbedRequest { texts, pooling })
}

fn pooling_name(pooling: Pooling) -> &'static str {
    match pooling {
        Pooling::Cls => "cls",
        _ => "mean",
    }
}

fn too_large() -> AiError {
    AiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        codes::REQUEST_TOO_LARGE,
        format!("Request is too large: the emulator's limit is {MAX_REQUEST_BYTES} bytes"),
    )
}

async fn read_limited(body: Body, limit: u64) -> Result<Vec<u8>, AiError> {
    let mut body = std::pin::pin!(body);
    let mut out = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.map_err(|e| {
            AiError::new(
                StatusCode::BAD_REQUEST,
                codes::INCOMPLETE_REQUEST,
                format!("Request is missing headers or body: the body could not be read ({e})"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            if out.len() as u64 + data.len() as u64 > limit {
                return Err(too_large());
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

#[derive(Serialize)]
struct EmbedResult<'a> {
    shape: [usize; 2],
    data: &'a [Vec<f32>],
    pooling: &'static str,
}

#[derive(Serialize)]
struct Envelope<'a> {
    result: EmbedResult<'a>,
    success: bool,
    errors: [(); 0],
    messages: [(); 0],
}

async fn run(
    State(ai): State<Arc<Ai>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AiError> {
    let Path((_account, model)) = path.map_err(|e| {
        AiError::new(
            StatusCode::NOT_FOUND,
            codes::INVALID_MODEL_ID,
            format!("The model name is invalid: {e}"),
        )
    })?;
    let Some(stand_in) = ai.stand_in(&model) else {
        return Err(AiError::new(
            StatusCode::BAD_REQUEST,
            codes::NO_SUCH_MODEL,
            format!(
                "AiError: No such model {model} or task. This emulator answers only models with a \
                 configured local stand-in: {}",
                ai.served()
            ),
        ));
    };
    let local = stand_in.config.local_model.as_str();
    let tag = |mut e: AiError| {
        e.stand_in = Some(local.to_owned());
        e
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REQUEST_BYTES) {
        return Err(tag(too_large()));
    }
    let body = read_limited(body, MAX_REQUEST_BYTES).await.map_err(tag)?;
    let request = parse_request(&body).map_err(tag)?;
    let embedder = stand_in.load().await.map_err(|e| {
        tag(AiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::STAND_IN_UNAVAILABLE,
            format!(
                "The emulator's local stand-in for {model} ({local}) is unavailable: {e}. \
                 Fetch it with `cargo xtask fetch-model`, or set MCP_MEMORY_MODEL_DIR (or the \
                 stand-in's local_dir) to a directory holding config.json, tokenizer.json and \
                 model.safetensors."
            ),
        ))
    })?;
    let pooling = pooling_name(embedder.pooling());
    if request.pooling != pooling {
        return Err(tag(AiError::bad_input(format!(
            "pooling '{}' is not available in this emulator: the local stand-in {local} for \
             {model} computes '{pooling}' pooling only, and the emulator does not relabel \
             vectors; send \"pooling\": \"{pooling}\" (or configure a stand-in with '{}' pooling)",
            request.pooling, request.pooling
        ))));
    }
    if let Some(max) = max_input_tokens(&model) {
        let failed = |e: EmbedError| {
            tag(AiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                codes::STAND_IN_UNAVAILABLE,
                format!("The emulator could not count tokens with {local}'s tokenizer: {e}"),
            ))
        };
        let counter = stand_in.counter(embedder).await.map_err(failed)?;
        if let Some((i, n)) = first_too_long(counter, &request.texts, max).map_err(failed)? {
            return Err(tag(AiError::bad_input(format!(
                "text {i} has {n} tokens, more than the {max} input tokens of {model}; \
                 shorten it (the emulator refuses rather than truncates, see its docs)"
            ))));
        }
    }
    let vectors = embedder.embed(&request.texts).await.map_err(|e| {
        tag(AiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::STAND_IN_UNAVAILABLE,
            format!("The emulator's local stand-in {local} failed: {e}"),
        ))
    })?;
    let dims = embedder.dimensions();
    let envelope = Envelope {
        result: EmbedResult {
            shape: [vectors.len(), dims],
            data: &vectors,
            pooling,
        },
        success: true,
        errors: [],
        messages: [],
    };
    let bytes = serde_json::to_vec(&envelope).map_err(|e| {
        tag(AiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::STAND_IN_UNAVAILABLE,
            format!("could not encode the embeddings: {e}"),
        ))
    })?;
    let mut response = Response::new(Body::from(bytes));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(with_stand_in(response, Some(local)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(body: &str) -> u32 {
        parse_request(body.as_bytes()).unwrap_err().code
    }

    #[test]
    fn accepts_the_documented_shapes() {
        let r = parse_request(br#"{"text": "hello"}"#).unwrap();
        assert_eq!(
            (r.texts.as_slice(), r.pooling),
            (&["hello".to_owned()][..], "mean")
        );
        let r = parse_request(br#"{"text": ["a", "b"], "pooling": "cls", "extra": 1}"#).unwrap();
        assert_eq!((r.texts.len(), r.pooling), (2, "cls"));
        let hundred = serde_json::to_vec(&json!({"text": vec!["x"; 100]})).unwrap();
        assert_eq!(parse_request(&hundred).unwrap().texts.len(), 100);
    }

    #[test]
    fn refuses_what_the_schema_refuses() {
        let many = json!({"text": vec!["x"; 101]}).to_string();
        assert_eq!(code(&many), codes::BAD_INPUT);
        for bad in [
            "{}",
            "[]",
            r#"{"text": ""}"#,
            r#"{"text": ["a", ""]}"#,
            r#"{"text": []}"#,
            r#"{"text": [1]}"#,
            r#"{"text": 1}"#,
            r#"{"text": "a", "pooling": "max"}"#,
            r#"{"text": "a", "pooling": 1}"#,
            "{not json",
        ] {
            assert_eq!(code(bad), codes::BAD_INPUT, "{bad}");
        }
        assert_eq!(code(""), codes::INCOMPLETE_REQUEST);
        assert_eq!(code("  \n"), codes::INCOMPLETE_REQUEST);
    }

    #[test]
    fn envelope_serializes_like_the_spec() {
        let data = vec![vec![0.5f32, 0.1]];
        let v: Value = serde_json::from_slice(
            &serde_json::to_vec(&Envelope {
                result: EmbedResult {
                    shape: [1, 2],
                    data: &data,
                    pooling: "mean",
                },
                success: true,
                errors: [],
                messages: [],
            })
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"result": {"shape": [1, 2], "data": [[0.5, 0.1]], "pooling": "mean"},
                   "success": true, "errors": [], "messages": []})
        );
    }

    proptest! {
        #[test]
        fn parser_never_panics(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_request(&body);
        }

        #[test]
        fn any_list_of_1_to_100_non_empty_strings_is_accepted(
            texts in proptest::collection::vec("\\PC{1,8}", 1..=100)
        ) {
            let body = serde_json::to_vec(&json!({"text": texts})).unwrap();
            prop_assert_eq!(parse_request(&body).unwrap().texts, texts);
        }
    }
}
