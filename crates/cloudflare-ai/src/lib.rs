//! Cloudflare Workers AI client for text embeddings: texts in, one `f32` vector per text
//! out, in batches of at most 100 texts, as a tower service.
//!
//! [`WorkersAiClient`] is built from a [`cloudflare_http::Client`] (whose stack does the
//! retries, timeouts, rate limiting, circuit breaking and accounting) and an
//! [`EmbeddingModel`] (a validated model id and the dimensions of its vectors; default
//! [`EmbeddingModel::BGE_BASE_EN_V1_5`], 768 dimensions). It sends
//! `POST /accounts/{account_id}/ai/run/{model}` with `{"text": [..], "pooling": ..}`,
//! marked idempotent (embedding is read-only), and checks that the answer holds exactly
//! one finite vector of the model's dimensions per text ([`AiError::Shape`] if not).
//!
//! - [`WorkersAiClient::embed`] takes any number of texts, sends them in order in calls
//!   of at most 100 and concatenates the vectors in order; empty input costs no call.
//! - [`WorkersAiClient::embed_batch`] is one call.
//! - [`WorkersAiApi`] is the same as an object-safe trait (mockall mock
//!   `MockWorkersAiApi` with the `mock` feature), and the client is a
//!   `tower::Service` over [`EmbedBatchRequest`] and [`EmbedRequest`].
//!
//! ```no_run
//! use cloudflare_ai::{EmbeddingModel, WorkersAiClient};
//! use cloudflare_http::{ApiToken, ClientBuilder, ClientConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ClientConfig::new("023e105f4ecef8ad9ca31a8372d0c353", ApiToken::new("token"));
//! let client = ClientBuilder::new(config).build()?;
//! let ai = WorkersAiClient::new(&client).with_model(EmbeddingModel::BGE_SMALL_EN_V1_5);
//! let embeddings = ai.embed(&["first memory", "second memory"]).await?;
//! assert_eq!(embeddings.vectors.len(), 2);
//! assert_eq!(embeddings.vectors[0].len(), 384);
//! # Ok(()) }
//! ```
//!
//! # Limits
//!
//! | limit | value | checked here | source |
//! |---|---|---|---|
//! | texts per call | 100 | yes: [`AiError::TooManyTexts`]; `embed` splits | [limits](https://developers.cloudflare.com/workers-ai/platform/limits/) |
//! | tokens per text (`@cf/baai/bge-*`) | 512 | no (no tokenizer here): Cloudflare fails the whole call with 400, it does not truncate; keep texts to roughly 350 English words | [limits](https://developers.cloudflare.com/workers-ai/platform/limits/), [bge-base-en-v1.5](https://developers.cloudflare.com/workers-ai/models/bge-base-en-v1.5/) |
//! | empty or blank text | refused | yes: [`AiError::EmptyText`] naming the index | [bge-base-en-v1.5](https://developers.cloudflare.com/workers-ai/models/bge-base-en-v1.5/) (`minLength: 1`) |
//! | text-embedding requests per minute, per account | 3000 (bge-large: 1500) | no: 429s are retried by the transport | [limits](https://developers.cloudflare.com/workers-ai/platform/limits/) |
//! | API requests per user (all its tokens and the dashboard) | 1200 per 5 minutes | by the transport's rate limiter, paced by the `ratelimit` headers ([`cloudflare_http::AccountBudget`]) | [API limits](https://developers.cloudflare.com/fundamentals/api/reference/limits/) |
//! | vector dimensions | per model: 384 / 768 / 1024 / 768 | yes: [`AiError::Shape`] | [models](https://developers.cloudflare.com/workers-ai/models/) |

// `pub` is for other crates: an item no other crate can reach is `pub(crate)`.
#![warn(unreachable_pub)]

mod api;
mod client;
mod error;
mod model;

#[cfg(any(test, feature = "mock"))]
pub use api::MockWorkersAiApi;
pub use api::{EmbedBatchRequest, EmbedRequest, Embeddings, WorkersAiApi};
pub use client::WorkersAiClient;
pub use error::{AiError, BatchPosition, ExpectedShape, ShapeMismatch};
pub use model::{EmbeddingModel, Pooling};

/// The service name this crate's calls go through ([`cloudflare_http::Client::service`]).
pub(crate) const SERVICE: &str = "ai";

/// The operation name of an embedding call (accounting and tracing).
pub(crate) const OPERATION_EMBED: &str = "embed";

/// Most texts one embedding call may carry; more is a 400 from Cloudflare, so
/// [`WorkersAiClient::embed_batch`] refuses it and [`WorkersAiClient::embed`] splits.
///
/// See <https://developers.cloudflare.com/workers-ai/platform/limits/>.
pub(crate) const MAX_TEXTS_PER_CALL: usize = 100;
