//! [`compare_embeddings`]: the same probe texts embedded by Workers AI and by the local
//! equivalent, with the cosine of each pair (`mcp-memory health --compare-embeddings`;
//! feature `local-embedding`).
//!
//! The fallback is only sound if both sides compute the same vectors; this measures it on
//! the configured account. Same weights and pooling should give cosines of about 1 (float
//! and kernel differences aside); a clearly lower figure means the local files or the
//! pooling are not Workers AI's, and the fallback should be turned off
//! (`CLOUDFLARE_EMBEDDING_FALLBACK=off`) until they are.

use std::sync::Arc;

use cloudflare_ai::WorkersAiClient;
use cloudflare_http::ClientBuilder;
use memory_embed::{EmbedError, Embedder};

use super::WorkersAiEmbedder;
use crate::config::{API_BASE_URL_ENV, CloudflareConfig, TOKEN_ENV};

/// Varied short texts: English prose, a question, code, numbers, CJK, Korean, accents,
/// a URL, an emoji, a long-ish paragraph.
pub const PROBES: [&str; 12] = [
    "The deployment runbook lives in the ops wiki.",
    "What did we decide about the database migration last week?",
    "fn main() { let v: Vec<u32> = (0..10).map(|x| x * x).collect(); println!(\"{v:?}\"); }",
    "SELECT id, content FROM memories WHERE deleted_at IS NULL ORDER BY created_at DESC;",
    "Quarterly revenue grew by 12.5% to $4.2M; churn fell from 3.1% to 2.4%.",
    "长期记忆服务把笔记存进数据库，并用向量搜索找回相关的内容。",
    "会議は火曜日の午前十時からです。資料を事前に確認してください。",
    "한국어 문장도 임베딩할 수 있어야 합니다.",
    "Café crème, naïve résumé, Zürich and São Paulo.",
    "See https://example.com/docs/setup#step-3 for the install steps.",
    "Remember to water the plants 🌱 before leaving on Friday!",
    "Long-term memory for assistants stores notes with tags and timestamps, finds them by \
     meaning with vector search, and keeps working when the embedding service is down by \
     computing the same vectors locally.",
];

/// One probe's two vectors compared.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeComparison {
    /// The probe text.
    pub text: &'static str,
    /// The cosine of Workers AI's and the local vector (both unit length).
    pub cosine: f32,
}

/// What [`compare_embeddings`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingComparison {
    /// The Workers AI model.
    pub model: String,
    /// The local model standing in for it.
    pub local_model: String,
    /// One entry per probe, in [`PROBES`] order.
    pub probes: Vec<ProbeComparison>,
}

impl EmbeddingComparison {
    /// The lowest cosine.
    #[must_use]
    pub fn min_cosine(&self) -> f32 {
        self.probes
            .iter()
            .map(|p| p.cosine)
            .fold(f32::INFINITY, f32::min)
    }

    /// The mean cosine.
    #[must_use]
    pub fn mean_cosine(&self) -> f32 {
        let n = self.probes.len().max(1) as f32;
        self.probes.iter().map(|p| p.cosine).sum::<f32>() / n
    }
}

/// Why the comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// The Workers AI model has no local equivalent, or its files are missing.
    #[error(
        "no local model to compare with: {0}; put the model's files in \
         CLOUDFLARE_EMBEDDING_FALLBACK_DIR (or the per-user model cache)"
    )]
    NoLocalModel(String),
    /// The HTTP client could not be built from the configuration.
    #[error(
        "could not build the Cloudflare HTTP client: {0}; check {API_BASE_URL_ENV} and \
         {TOKEN_ENV}"
    )]
    Client(String),
    /// Workers AI could not embed the probes.
    #[error("Workers AI could not embed the probe texts: {0}")]
    WorkersAi(#[source] EmbedError),
    /// The local model could not embed the probes.
    #[error("the local model could not embed the probe texts: {0}")]
    Local(#[source] EmbedError),
}

/// Embeds [`PROBES`] with `config`'s Workers AI model and with its local equivalent (the
/// one the fallback would use, whatever `CLOUDFLARE_EMBEDDING_FALLBACK` says), both cut the
/// same way, and compares each pair.
///
/// # Errors
/// [`CompareError`] saying which side failed and what to do.
pub async fn compare_embeddings(
    config: &CloudflareConfig,
) -> Result<EmbeddingComparison, CompareError> {
    let local = crate::connect::local_equivalent(config).map_err(CompareError::NoLocalModel)?;
    let client = ClientBuilder::new(config.client.clone())
        .build()
        .map_err(|e| CompareError::Client(e.to_string()))?;
    let ai = WorkersAiClient::new(&client).with_model(config.embedding_model.clone());
    let workers_ai =
        crate::connect::with_token_cut(WorkersAiEmbedder::new(Arc::new(ai)), Some(&local));
    let texts: Vec<String> = PROBES
        .iter()
        .map(|t| workers_ai.cut(t).to_owned())
        .collect();
    let remote = workers_ai
        .embed(&texts)
        .await
        .map_err(CompareError::WorkersAi)?;
    let here = local.embed(&texts).await.map_err(CompareError::Local)?;
    let probes = PROBES
        .iter()
        .zip(remote.iter().zip(&here))
        .map(|(text, (a, b))| ProbeComparison {
            text,
            cosine: a.iter().zip(b).map(|(x, y)| x * y).sum(),
        })
        .collect();
    Ok(EmbeddingComparison {
        model: config.embedding_model.id().to_owned(),
        local_model: local.local().model_id().to_owned(),
        probes,
    })
}
