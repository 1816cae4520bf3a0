//! Downloading models from the Hugging Face Hub into the per-user cache (feature `hub`).
//!
//! ```no_run
//! use memory_embed::{BertEmbedder, DEFAULT_MODEL_ID};
//!
//! # fn demo() -> Result<(), memory_embed::EmbedError> {
//! // Blocking: downloads only when the model is not found locally.
//! let embedder = BertEmbedder::open_or_download(DEFAULT_MODEL_ID)?;
//! # Ok(())
//! # }
//! ```
//!
//! Files land flat in `<cache dir>/mcp-memory/models/<dir name>/`, the layout
//! `cargo xtask fetch-model` writes and [`ModelLocation::resolve`] reads. The download goes
//! through a staging directory beside it and each file is moved into place whole, so an
//! interrupted download never leaves a half-written `model.safetensors` behind. The client
//! honours `HF_ENDPOINT` (mirrors), `HF_HOME` (the token file) and the usual proxy variables.
//! Blocking (HTTP via `ureq`); from async code run it in `tokio::task::spawn_blocking`.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;

use crate::error::EmbedError;
use crate::location::{LocationSource, ModelLocation};
use crate::spec::files;

/// Staging directory name, beside the model directories.
const STAGING_DIR: &str = ".download";

/// [`ModelLocation::resolve`], downloading the model into the per-user cache when it is not
/// found anywhere.
///
/// # Errors
/// [`EmbedError::ModelNotFound`] if the platform has no user cache directory, else as
/// [`download`].
pub(crate) fn resolve_or_download(model_id: &str) -> Result<ModelLocation, EmbedError> {
    match ModelLocation::resolve(model_id) {
        Ok(location) => Ok(location),
        Err(EmbedError::ModelNotFound { searched, .. }) => {
            let Some(dir) = ModelLocation::user_cache_dir(model_id) else {
                return Err(EmbedError::ModelNotFound {
                    model_id: model_id.to_owned(),
                    searched,
                });
            };
            download(model_id, &dir)?;
            Ok(ModelLocation {
                dir,
                source: LocationSource::UserCache,
            })
        }
        Err(other) => Err(other),
    }
}

impl ModelLocation {
    /// [`resolve`](Self::resolve), downloading the model from the Hugging Face Hub into the
    /// per-user cache when it is not found there. Blocking (HTTP); from async code run it on
    /// a blocking thread. Feature `hub`.
    ///
    /// # Errors
    /// As [`resolve`](Self::resolve) when the platform has no user cache directory, else
    /// [`EmbedError::Download`] or [`EmbedError::Io`].
    pub fn resolve_or_download(model_id: &str) -> Result<Self, EmbedError> {
        resolve_or_download(model_id)
    }
}

/// Downloads `model_id`'s required files ([`files::REQUIRED`]) and, when the repository has
/// them, the optional ones ([`files::OPTIONAL`]) into `dest`, creating it. Files already in
/// `dest` are kept.
///
/// # Errors
/// [`EmbedError::Download`] when a required file cannot be fetched, [`EmbedError::Io`] when
/// `dest` cannot be written.
pub(crate) fn download(model_id: &str, dest: &Path) -> Result<(), EmbedError> {
    let staging = dest
        .parent()
        .unwrap_or(dest)
        .join(STAGING_DIR)
        .join(crate::spec::ModelSpec::dir_name_for(model_id));
    std::fs::create_dir_all(dest).map_err(|e| EmbedError::io(dest, e))?;
    std::fs::create_dir_all(&staging).map_err(|e| EmbedError::io(&staging, e))?;
    let download_error = |reason: String| EmbedError::Download {
        model_id: model_id.to_owned(),
        reason,
    };
    let api = ApiBuilder::from_env()
        .with_cache_dir(staging.clone())
        .with_progress(false)
        .with_retries(3)
        .build()
        .map_err(|e| download_error(e.to_string()))?;
    let repo = api.model(model_id.to_owned());

    let wanted = files::REQUIRED
        .iter()
        .map(|name| (*name, true))
        .chain(files::OPTIONAL.iter().map(|name| (*name, false)));
    for (name, required) in wanted {
        let target = dest.join(name);
        if target.is_file() {
            continue;
        }
        tracing::info!(model_id, file = name, "downloading model file");
        match repo.get(name) {
            Ok(fetched) => move_into_place(&fetched, &target)?,
            Err(e) if required => return Err(download_error(format!("{name}: {e}"))),
            Err(e) => {
                tracing::debug!(model_id, file = name, error = %e, "optional model file not fetched");
            }
        }
    }
    if let Err(e) = std::fs::remove_dir_all(&staging) {
        tracing::warn!(dir = %staging.display(), error = %e, "could not remove the download staging directory");
    }
    Ok(())
}

/// Moves a downloaded file (a symlink into the hub's blob store) to `target` whole.
fn move_into_place(fetched: &Path, target: &Path) -> Result<(), EmbedError> {
    let blob: PathBuf = std::fs::canonicalize(fetched).map_err(|e| EmbedError::io(fetched, e))?;
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| EmbedError::io(parent, e))?;
    }
    // Same file system (staging is beside `dest`): a rename is atomic. Otherwise copy to a
    // temporary name and rename that.
    if std::fs::rename(&blob, target).is_ok() {
        return Ok(());
    }
    let partial = target.with_extension("partial");
    std::fs::copy(&blob, &partial).map_err(|e| EmbedError::io(&partial, e))?;
    std::fs::rename(&partial, target).map_err(|e| EmbedError::io(target, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_downloaded_symlink_is_replaced_by_its_blob() {
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("blob");
        std::fs::write(&blob, b"weights").unwrap();
        let link = dir.path().join("snapshot-link");
        std::os::unix::fs::symlink(&blob, &link).unwrap();
        let target = dir.path().join("model/1_Pooling/config.json");

        move_into_place(&link, &target).unwrap();

        assert_eq!(std::fs::read(&target).unwrap(), b"weights");
    }
}
