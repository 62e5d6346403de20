//! Local sentence embeddings with a BERT-family model (e.g. all-MiniLM-L6-v2) on the CPU.
//!
//! Directory layout (sentence-transformers / HF export): `config.json`, `model.safetensors`,
//! `tokenizer.json`. Embedding = mean of the last hidden states over the attention mask,
//! L2-normalised.

use std::path::{Path, PathBuf};

use super::catch_panic;
use anyhow::{Result, anyhow, bail};
use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use tokenizers::{Tokenizer, TruncationParams};

/// Longest input in tokens (sentence-transformers' `max_seq_length` for MiniLM is 256).
const MAX_TOKENS: usize = 256;
/// Texts are run through the model in padded batches of at most this many.
const MAX_BATCH: usize = 64;

/// A loaded BERT sentence-embedding model. `Send + Sync`: load once, share behind an `Arc`.
pub struct LocalEmbeddingModel {
    dir: PathBuf,
    model: BertModel,
    tokenizer: Tokenizer,
    dimensions: usize,
    pad_id: u32,
    device: Device,
}

impl std::fmt::Debug for LocalEmbeddingModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbeddingModel")
            .field("dir", &self.dir)
            .field("dimensions", &self.dimensions)
            .finish_non_exhaustive()
    }
}

impl LocalEmbeddingModel {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        catch_panic(
            || format!("loading embedding model {}", dir.display()),
            || Self::load_inner(dir),
        )
    }

    fn load_inner(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            bail!(
                "embedding model directory {} does not exist or is not a directory",
                dir.display()
            );
        }
        let config_path = dir.join("config.json");
        let config_text = std::fs::read_to_string(&config_path)
            .map_err(|e| anyhow!("cannot read {}: {e}", config_path.display()))?;
        let config: Config = serde_json::from_str(&config_text)
            .map_err(|e| anyhow!("{} is not a valid BERT config: {e}", config_path.display()))?;
        if config.hidden_size == 0
            || config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
            || config.max_position_embeddings == 0
        {
            bail!(
                "{}: inconsistent BERT config (hidden_size={}, num_attention_heads={}, max_position_embeddings={})",
                config_path.display(),
                config.hidden_size,
                config.num_attention_heads,
                config.max_position_embeddings
            );
        }

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| anyhow!("cannot load tokenizer {}: {e}", tokenizer_path.display()))?;
        // tokenizer.json of sentence-transformers exports pads to a fixed 128: pad per batch instead.
        let pad_id = tokenizer
            .get_padding()
            .map(|p| p.pad_id)
            .unwrap_or(config.pad_token_id as u32);
        tokenizer.with_padding(None);
        let max_len = config.max_position_embeddings.min(MAX_TOKENS);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| anyhow!("{}: cannot set truncation: {e}", tokenizer_path.display()))?;

        let weights_path = dir.join("model.safetensors");
        let bytes = std::fs::read(&weights_path)
            .map_err(|e| anyhow!("cannot read {}: {e}", weights_path.display()))?;
        let device = Device::Cpu;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DTYPE, &device).map_err(|e| {
            anyhow!(
                "{} is not a valid safetensors file: {e}",
                weights_path.display()
            )
        })?;
        let model = BertModel::load(vb, &config)
            .map_err(|e| anyhow!("{}: cannot load BERT weights: {e}", weights_path.display()))?;

        Ok(Self {
            dir: dir.to_path_buf(),
            model,
            tokenizer,
            dimensions: config.hidden_size,
            pad_id,
            device,
        })
    }

    /// One L2-normalised embedding per text, in order. Blocking and CPU-bound.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(MAX_BATCH) {
            let embs = catch_panic(
                || format!("{}: embedding", self.dir.display()),
                || self.embed_batch(batch),
            )?;
            out.extend(embs);
        }
        Ok(out)
    }

    fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let shown = self.dir.display();
        let encodings = self
            .tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|e| anyhow!("{shown}: tokenization failed: {e}"))?;
        let batch = encodings.len();
        let seq = encodings.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![self.pad_id; batch * seq];
        let mut mask = vec![0u32; batch * seq];
        for (row, enc) in encodings.iter().enumerate() {
            let n = enc.len();
            ids[row * seq..row * seq + n].copy_from_slice(enc.get_ids());
            mask[row * seq..row * seq + n].copy_from_slice(enc.get_attention_mask());
        }
        let err = |e: candle_core::Error| anyhow!("{shown}: BERT forward pass failed: {e}");
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let ids = Tensor::from_vec(ids, (batch, seq), &self.device)?;
            let mask = Tensor::from_vec(mask, (batch, seq), &self.device)?;
            let type_ids = ids.zeros_like()?;
            let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?; // (b, seq, h)
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (b, seq, 1)
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // (b, h)
            let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?; // (b, 1)
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean
                .sqr()?
                .sum_keepdim(D::Minus1)?
                .sqrt()?
                .clamp(1e-12f32, f32::MAX)?;
            mean.broadcast_div(&norm)?.to_vec2::<f32>()
        };
        run().map_err(err)
    }
}
