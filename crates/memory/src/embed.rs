//! Embedders, chosen by `[memory] embedder`: the local in-process model (run on a blocking
//! thread, one batch at a time), an OpenAI-compatible `/embeddings` endpoint, or none.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use coworker_core::config::{EmbedderKind, MemoryConfig};
use coworker_embed_local::LocalEmbedder;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::MemoryError;

/// Texts sent to a remote endpoint in one request.
pub const REMOTE_BATCH_TEXTS: usize = 64;

/// How long one remote embedding request may take.
pub const REMOTE_TIMEOUT: Duration = Duration::from_secs(60);

/// The directory `coworker memory install-model` installs to when `model_dir` is empty:
/// `$XDG_DATA_HOME/coworker/models/all-MiniLM-L6-v2`, else under `~/.local/share`.
pub fn default_model_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/share"))
        })?;
    Some(base.join("coworker/models/all-MiniLM-L6-v2"))
}

/// The model directory a configuration means: `model_dir`, else the installed default.
pub fn configured_model_dir(config: &MemoryConfig) -> Option<PathBuf> {
    if config.model_dir.trim().is_empty() {
        default_model_dir()
    } else {
        Some(PathBuf::from(config.model_dir.trim()))
    }
}

/// An OpenAI-compatible embeddings endpoint.
pub struct RemoteEmbedder {
    client: reqwest::Client,
    url: String,
    model: String,
    api_key: Option<SecretString>,
}

/// Turns text into unit vectors (or, for `None`, declines to).
#[derive(Clone)]
pub enum Embedder {
    /// No vectors: full text only.
    None,
    /// The local model.
    Local(Arc<LocalEmbedder>, Arc<tokio::sync::Semaphore>),
    /// A remote endpoint.
    Remote(Arc<RemoteEmbedder>),
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Embedder {
    /// Builds the configured embedder. `Ok((embedder, Some(note)))` carries a line for the
    /// start-up log (full text only, and how to install a model). A configured model that is
    /// missing or broken is an error here, at start-up, never at the first search.
    pub fn from_config(config: &MemoryConfig) -> Result<(Embedder, Option<String>), MemoryError> {
        match config.embedder {
            EmbedderKind::None => Ok((
                Embedder::None,
                Some("memory: embedder = \"none\": retrieval uses full text only".to_owned()),
            )),
            EmbedderKind::Openai => {
                let api_key = std::env::var(&config.openai_api_key_env)
                    .ok()
                    .filter(|k| !k.is_empty())
                    .map(SecretString::from);
                let client = reqwest::Client::builder()
                    .timeout(REMOTE_TIMEOUT)
                    .build()
                    .map_err(|e| MemoryError::Embedding(format!("cannot build the HTTP client: {e}")))?;
                Ok((
                    Embedder::Remote(Arc::new(RemoteEmbedder {
                        client,
                        url: format!("{}/embeddings", config.openai_base_url.trim_end_matches('/')),
                        model: config.openai_model.clone(),
                        api_key,
                    })),
                    None,
                ))
            }
            EmbedderKind::Local => {
                let explicit = !config.model_dir.trim().is_empty();
                let Some(dir) = configured_model_dir(config) else {
                    return Ok((Embedder::None, Some(no_model_note())));
                };
                if !explicit && !dir.exists() {
                    return Ok((Embedder::None, Some(no_model_note())));
                }
                Ok((Embedder::local(&dir)?, None))
            }
        }
    }

    /// Loads the local model in `dir`.
    pub fn local(dir: &Path) -> Result<Embedder, MemoryError> {
        let model = LocalEmbedder::load(dir)?;
        Ok(Embedder::Local(
            Arc::new(model),
            Arc::new(tokio::sync::Semaphore::new(1)),
        ))
    }

    /// A stable name for the vectors this embedder makes (stored with each vector, so a
    /// change of embedder is detected and `reindex` knows what to redo); `None` for `none`.
    pub fn id(&self) -> Option<String> {
        match self {
            Embedder::None => None,
            Embedder::Local(model, _) => {
                let name = model
                    .dir()
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Some(format!("local:{name}:{}", model.dims()))
            }
            Embedder::Remote(r) => Some(format!("openai:{}", r.model)),
        }
    }

    /// One line for `doctor` and logs.
    pub fn describe(&self) -> String {
        match self {
            Embedder::None => "none (full-text retrieval only)".to_owned(),
            Embedder::Local(model, _) => format!("local model at {} ({} dims)", model.dir().display(), model.dims()),
            Embedder::Remote(r) => format!("OpenAI-compatible endpoint {} (model {})", r.url, r.model),
        }
    }

    /// Embeds `texts` into unit vectors; `Ok(None)` for the `none` embedder.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Option<Vec<Vec<f32>>>, MemoryError> {
        match self {
            Embedder::None => Ok(None),
            Embedder::Local(model, gate) => {
                // One batch at a time: the model already uses every core for a batch.
                let _permit = gate
                    .acquire()
                    .await
                    .map_err(|_| MemoryError::Embedding("the embedder was shut down".into()))?;
                let model = model.clone();
                let vectors = tokio::task::spawn_blocking(move || model.embed(&texts))
                    .await
                    .map_err(|e| MemoryError::Embedding(format!("the embedding thread failed: {e}")))??;
                Ok(Some(vectors))
            }
            Embedder::Remote(remote) => {
                let mut out = Vec::with_capacity(texts.len());
                for chunk in texts.chunks(REMOTE_BATCH_TEXTS) {
                    out.extend(remote.embed(chunk).await?);
                }
                Ok(Some(out))
            }
        }
    }
}

fn no_model_note() -> String {
    "memory: no local embedding model is installed, so retrieval uses full text only; run \
     `coworker memory install-model` (or set [memory] model_dir), then restart and run `coworker memory reindex`"
        .to_owned()
}

impl RemoteEmbedder {
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, MemoryError> {
        let mut request = self
            .client
            .post(&self.url)
            .json(&json!({"model": self.model, "input": texts}));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response = request
            .send()
            .await
            .map_err(|e| MemoryError::Embedding(format!("POST {}: {e}", self.url)))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| MemoryError::Embedding(format!("POST {}: unreadable response: {e}", self.url)))?;
        if !status.is_success() {
            return Err(MemoryError::Embedding(format!(
                "POST {} answered {status}: {body}",
                self.url
            )));
        }
        let data = body
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| MemoryError::Embedding(format!("POST {}: the response has no \"data\" array", self.url)))?;
        let mut rows: Vec<(usize, Vec<f32>)> = Vec::with_capacity(data.len());
        for (i, item) in data.iter().enumerate() {
            let index = item.get("index").and_then(Value::as_u64).map_or(i, |n| n as usize);
            let values = item
                .get("embedding")
                .and_then(Value::as_array)
                .ok_or_else(|| MemoryError::Embedding(format!("POST {}: item {i} has no embedding", self.url)))?;
            let v: Vec<f32> = values.iter().filter_map(Value::as_f64).map(|x| x as f32).collect();
            rows.push((index, normalise(v)));
        }
        rows.sort_by_key(|(i, _)| *i);
        if rows.len() != texts.len() {
            return Err(MemoryError::Embedding(format!(
                "POST {}: asked for {} embeddings, got {}",
                self.url,
                texts.len(),
                rows.len()
            )));
        }
        Ok(rows.into_iter().map(|(_, v)| v).collect())
    }
}

/// Scales a vector to unit length (a zero vector is returned as is).
pub fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}
