//! A sentence-embedding model run in process: BERT-family weights (safetensors) with their
//! Hugging Face tokenizer, on the CPU, offline. Written for sentence-transformers models such
//! as all-MiniLM-L6-v2, whose folder holds `config.json`, `tokenizer.json`,
//! `model.safetensors`, `modules.json`, `sentence_bert_config.json` and
//! `1_Pooling/config.json`; the pooling, normalisation and sequence length come from those
//! files, as sentence-transformers itself reads them, so the vectors match its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use serde::Deserialize;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::{Embedder, EmbedderIdentity, TokenCount};
use crate::{Error, Result};

/// Texts run through the model together. Larger batches pad more (to the longest text in the
/// batch) for little gain on a CPU.
const BATCH: usize = 32;

/// The files of a model folder that must be there.
const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// A sentence-transformers model loaded from a folder. Cheap to clone.
#[derive(Clone)]
pub struct LocalEmbedder {
    inner: Arc<Loaded>,
}

struct Loaded {
    model: BertModel,
    tokenizer: Tokenizer,
    normalize: bool,
    identity: EmbedderIdentity,
    folder: PathBuf,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("identity", &self.inner.identity)
            .field("folder", &self.inner.folder)
            .finish()
    }
}

#[derive(Deserialize)]
struct Pooling {
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
}

fn load_error(folder: &Path, what: impl std::fmt::Display) -> Error {
    Error::Embed(format!(
        "cannot load the embedding model in {}: {what}",
        folder.display()
    ))
}

fn read_json<T: serde::de::DeserializeOwned>(folder: &Path, file: &str) -> Result<Option<T>> {
    let path = folder.join(file);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| load_error(folder, format!("{file}: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(load_error(folder, format!("{file}: {e}"))),
    }
}

impl LocalEmbedder {
    /// Whether `folder` holds the files a model needs.
    pub fn is_model_folder(folder: &Path) -> bool {
        MODEL_FILES.iter().all(|f| folder.join(f).is_file())
    }

    /// Load the model in `folder`. The identity stored with the tables is the folder's name
    /// and a hash of the weights, so another model (or other weights under the same name)
    /// asks for a re-index instead of mixing vectors.
    pub fn load(folder: &Path) -> Result<Self> {
        for file in MODEL_FILES {
            if !folder.join(file).is_file() {
                return Err(load_error(
                    folder,
                    format!(
                        "{file} is missing (scripts/env.sh's lancesync_model_setup installs all-MiniLM-L6-v2)"
                    ),
                ));
            }
        }
        let config: BertConfig = read_json(folder, "config.json")?
            .ok_or_else(|| load_error(folder, "config.json is missing"))?;
        let pooling: Option<Pooling> = read_json(folder, "1_Pooling/config.json")?;
        if let Some(p) = &pooling
            && (!p.pooling_mode_mean_tokens
                || p.pooling_mode_cls_token
                || p.pooling_mode_max_tokens
                || p.pooling_mode_mean_sqrt_len_tokens)
        {
            return Err(load_error(
                folder,
                "only mean pooling is supported (1_Pooling/config.json asks for another)",
            ));
        }
        let modules: Option<Vec<Module>> = read_json(folder, "modules.json")?;
        // sentence-transformers normalises only when the model lists a Normalize module.
        let normalize = modules.is_none_or(|m| m.iter().any(|m| m.kind.ends_with(".Normalize")));
        let max_len = read_json::<SentenceBertConfig>(folder, "sentence_bert_config.json")?
            .and_then(|c| c.max_seq_length)
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);

        let mut tokenizer = Tokenizer::from_file(folder.join("tokenizer.json"))
            .map_err(|e| load_error(folder, format!("tokenizer.json: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..TruncationParams::default()
            }))
            .map_err(|e| load_error(folder, format!("tokenizer truncation: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));

        let weights = std::fs::read(folder.join("model.safetensors"))
            .map_err(|e| load_error(folder, format!("model.safetensors: {e}")))?;
        let fingerprint = blake3::hash(&weights).to_hex()[..12].to_string();
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| load_error(folder, format!("model.safetensors: {e}")))?;
        let model = BertModel::load(vb, &config)
            .map_err(|e| load_error(folder, format!("weights: {e}")))?;
        let name = folder
            .file_name()
            .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
        Ok(Self {
            inner: Arc::new(Loaded {
                model,
                tokenizer,
                normalize,
                identity: EmbedderIdentity {
                    name: "local".into(),
                    model: format!("{name}@{fingerprint}"),
                    dimension: config.hidden_size,
                },
                folder: folder.to_path_buf(),
            }),
        })
    }

    /// The folder the model was loaded from.
    pub fn folder(&self) -> &Path {
        &self.inner.folder
    }

    pub(crate) fn tokenizer(&self) -> &Tokenizer {
        &self.inner.tokenizer
    }

    pub(crate) fn identity_dimension(&self) -> usize {
        self.inner.identity.dimension
    }

    pub(crate) fn identity_model(&self) -> String {
        self.inner.identity.model.clone()
    }

    /// The model's output at `position` of each row of token ids (all of one length, no
    /// padding): a token's vector in the context the rows give it.
    pub(crate) fn output_at(&self, rows: &[Vec<u32>], position: usize) -> Result<Vec<Vec<f32>>> {
        let failed = |e: &dyn std::fmt::Display| Error::Embed(format!("local model: {e}"));
        let width = rows.first().map_or(0, Vec::len);
        if rows.iter().any(|r| r.len() != width) || position >= width {
            return Err(failed(
                &"rows of token ids differ in length or are too short",
            ));
        }
        let flat: Vec<u32> = rows.iter().flatten().copied().collect();
        let ids =
            Tensor::from_vec(flat, (rows.len(), width), &Device::Cpu).map_err(|e| failed(&e))?;
        let types = ids.zeros_like().map_err(|e| failed(&e))?;
        let mask = ids.ones_like().map_err(|e| failed(&e))?;
        self.inner
            .model
            .forward(&ids, &types, Some(&mask))
            .and_then(|hidden| hidden.narrow(1, position, 1)?.squeeze(1)?.to_vec2::<f32>())
            .map_err(|e| failed(&e))
    }

    /// Embed texts on this thread (CPU work: call it off async workers).
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        Ok(self.embed_counted_blocking(texts)?.0)
    }

    /// Embed texts on this thread, with the tokens the model read (special tokens included,
    /// after truncation to the model's length).
    pub fn embed_counted_blocking(&self, texts: &[String]) -> Result<(Vec<Vec<f32>>, u64)> {
        let mut out = Vec::with_capacity(texts.len());
        let mut tokens = 0;
        for batch in texts.chunks(BATCH) {
            let (vectors, n) = self.inner.embed_batch(batch)?;
            out.extend(vectors);
            tokens += n;
        }
        Ok((out, tokens))
    }
}

/// The tokens the model reads of these encodings: the real ones, not padding.
fn real_tokens(encodings: &[tokenizers::Encoding]) -> u64 {
    encodings
        .iter()
        .map(|e| e.get_attention_mask().iter().filter(|&&m| m != 0).count() as u64)
        .sum()
}

impl Loaded {
    fn encode(&self, texts: &[String]) -> Result<Vec<tokenizers::Encoding>> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| Error::Embed(format!("local model: {e}")))
    }

    fn embed_batch(&self, texts: &[String]) -> Result<(Vec<Vec<f32>>, u64)> {
        let failed = |e: &dyn std::fmt::Display| Error::Embed(format!("local model: {e}"));
        let encodings = self.encode(texts)?;
        let rows = encodings.len();
        let width = encodings.first().map_or(0, |e| e.get_ids().len());
        let column = |pick: fn(&tokenizers::Encoding) -> &[u32]| {
            let flat: Vec<u32> = encodings.iter().flat_map(|e| pick(e).to_vec()).collect();
            Tensor::from_vec(flat, (rows, width), &Device::Cpu)
        };
        let ids = column(tokenizers::Encoding::get_ids).map_err(|e| failed(&e))?;
        let types = column(tokenizers::Encoding::get_type_ids).map_err(|e| failed(&e))?;
        let mask = column(tokenizers::Encoding::get_attention_mask).map_err(|e| failed(&e))?;
        let vectors = self
            .pooled(&ids, &types, &mask, self.normalize)
            .map_err(|e| failed(&e))?;
        Ok((vectors, real_tokens(&encodings)))
    }

    /// The model's output, mean-pooled over the real tokens (padding is masked out of sum and
    /// count), normalised when `normalize` is set.
    fn pooled(
        &self,
        ids: &Tensor,
        types: &Tensor,
        mask: &Tensor,
        normalize: bool,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let hidden = self.model.forward(ids, types, Some(mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
        let mut pooled = summed.broadcast_div(&counts)?;
        if normalize {
            let norms = pooled
                .sqr()?
                .sum_keepdim(1)?
                .sqrt()?
                .clamp(1e-12f32, f32::MAX)?;
            pooled = pooled.broadcast_div(&norms)?;
        }
        pooled.to_vec2::<f32>()
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn identity(&self) -> EmbedderIdentity {
        self.inner.identity.clone()
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        Ok(self.embed_counted(texts).await?.0)
    }

    fn count_tokens(&self, texts: &[String]) -> Result<TokenCount> {
        let mut tokens = 0;
        for batch in texts.chunks(BATCH) {
            tokens += real_tokens(&self.inner.encode(batch)?);
        }
        Ok(TokenCount::exact(tokens))
    }

    async fn embed_counted(&self, texts: &[String]) -> Result<(Vec<Vec<f32>>, TokenCount)> {
        let this = self.clone();
        let texts = texts.to_vec();
        let (vectors, tokens) =
            tokio::task::spawn_blocking(move || this.embed_counted_blocking(&texts))
                .await
                .map_err(|e| Error::Embed(format!("local model stopped: {e}")))??;
        Ok((vectors, TokenCount::exact(tokens)))
    }
}
