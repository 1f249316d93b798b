//! A local sentence embedder: a MiniLM-class BERT (e.g. all-MiniLM-L6-v2) loaded from a
//! directory holding `model.safetensors`, `tokenizer.json` and `config.json`, run on the CPU
//! with candle; mean pooling over the attention mask, then L2 normalisation.
//!
//! This crate owns the ML dependencies (candle, tokenizers) so that nothing else in the
//! workspace compiles them. It is synchronous and CPU-bound: callers run it off their async
//! threads (`spawn_blocking`). It does no I/O beyond reading the model directory once.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Files a model directory must hold.
pub const MODEL_FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];

/// Longest input, in tokens, the embedder reads; longer texts are truncated (MiniLM was
/// trained on 256-token windows; sentence-transformers uses the same cut-off).
pub const MAX_INPUT_TOKENS: usize = 256;

/// Largest number of texts embedded in one forward pass; bigger batches are split so a bulk
/// import cannot allocate an unbounded activation tensor.
pub const MAX_BATCH_TEXTS: usize = 32;

/// Why a model could not be loaded or run. Messages name the directory and the fix.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The model directory or one of its files is missing.
    #[error(
        "local embedding model: {path} is missing; run `coworker memory install-model` or set [memory] model_dir to a directory holding model.safetensors, tokenizer.json and config.json"
    )]
    Missing {
        /// The missing path.
        path: PathBuf,
    },
    /// A file exists but cannot be read as what it should be.
    #[error(
        "local embedding model: {path} is not a usable {what}: {detail}; reinstall it with `coworker memory install-model --force`"
    )]
    Corrupt {
        /// The offending file.
        path: PathBuf,
        /// What the file should be.
        what: &'static str,
        /// The underlying error.
        detail: String,
    },
    /// Running the model failed (an invariant broke, or the input could not be tokenised).
    #[error("local embedding model: inference failed: {0}")]
    Inference(String),
}

/// A loaded local model. Embedding is `&self` and thread-safe; the model is loaded once.
pub struct LocalEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    dims: usize,
    dir: PathBuf,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("dir", &self.dir)
            .field("dims", &self.dims)
            .finish()
    }
}

impl LocalEmbedder {
    /// Loads the model in `dir` and checks it by embedding one word, so a broken directory
    /// fails here (at start-up) rather than at the first search.
    pub fn load(dir: &Path) -> Result<LocalEmbedder, EmbedError> {
        if !dir.is_dir() {
            return Err(EmbedError::Missing {
                path: dir.to_path_buf(),
            });
        }
        for file in MODEL_FILES {
            let path = dir.join(file);
            if !path.is_file() {
                return Err(EmbedError::Missing { path });
            }
        }
        let config_path = dir.join("config.json");
        let config_text = std::fs::read_to_string(&config_path).map_err(|e| corrupt(&config_path, "BERT config", e))?;
        let config: Config = serde_json::from_str(&config_text).map_err(|e| corrupt(&config_path, "BERT config", e))?;
        let dims = config.hidden_size;

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| corrupt(&tokenizer_path, "tokenizer", e))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_INPUT_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| corrupt(&tokenizer_path, "tokenizer", e))?;

        let weights_path = dir.join("model.safetensors");
        let device = Device::Cpu;
        let tensors = candle_core::safetensors::load(&weights_path, &device)
            .map_err(|e| corrupt(&weights_path, "safetensors weight file", e))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = BertModel::load(vb, &config).map_err(|e| corrupt(&weights_path, "BERT weight file", e))?;

        let embedder = LocalEmbedder {
            model,
            tokenizer,
            dims,
            dir: dir.to_path_buf(),
        };
        let probe = embedder
            .embed(&["ok"])
            .map_err(|e| corrupt(&weights_path, "BERT weight file", e))?;
        if probe.first().map(Vec::len) != Some(dims) {
            return Err(corrupt(
                &weights_path,
                "BERT weight file",
                "the probe embedding has the wrong size",
            ));
        }
        Ok(embedder)
    }

    /// Width of the vectors this model produces (384 for MiniLM-L6).
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Embeds texts into unit-length vectors, in batches of at most [`MAX_BATCH_TEXTS`].
    /// CPU-bound: call from a blocking thread.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(MAX_BATCH_TEXTS) {
            out.extend(self.embed_batch(chunk)?);
        }
        Ok(out)
    }

    fn embed_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inputs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| EmbedError::Inference(e.to_string()))?;
        let width = encodings.iter().map(|e| e.get_ids().len()).max().unwrap_or(0).max(1);
        let rows = encodings.len();
        let mut ids = Vec::with_capacity(rows * width);
        let mut mask = Vec::with_capacity(rows * width);
        for encoding in &encodings {
            let mut row_ids: Vec<u32> = encoding.get_ids().to_vec();
            let mut row_mask: Vec<u32> = encoding.get_attention_mask().to_vec();
            row_ids.resize(width, 0);
            row_mask.resize(width, 0);
            ids.extend(row_ids);
            mask.extend(row_mask);
        }
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let device = Device::Cpu;
            let ids = Tensor::from_vec(ids, (rows, width), &device)?;
            let mask = Tensor::from_vec(mask, (rows, width), &device)?;
            let types = ids.zeros_like()?;
            let hidden = self.model.forward(&ids, &types, Some(&mask))?; // (rows, width, dims)
            let mask_f = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (rows, width, 1)
            let summed = hidden.broadcast_mul(&mask_f)?.sum(1)?; // (rows, dims)
            let counts = mask_f.sum(1)?.clamp(1e-9, f64::MAX)?; // (rows, 1)
            let mean = summed.broadcast_div(&counts)?;
            let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
            mean.broadcast_div(&norms)?.to_vec2::<f32>()
        };
        run().map_err(|e| EmbedError::Inference(e.to_string()))
    }
}

fn corrupt(path: &Path, what: &'static str, detail: impl std::fmt::Display) -> EmbedError {
    EmbedError::Corrupt {
        path: path.to_path_buf(),
        what,
        detail: detail.to_string(),
    }
}
