//! A static embedding model: one vector per token of a vocabulary, a text's vector the mean of
//! its tokens' vectors. Distilled here, once and offline, from the local sentence-embedding
//! model: after the Model2Vec recipe, every token is run through the model on its own, the
//! model's output at the token taken, the vectors centred, then weighted down by how common
//! the token is; then the table is fitted to the model's vectors of WordNet's glosses
//! (Tokenlearn's idea). It needs no download beyond what `scripts/env.sh`
//! installs. A hundred or more times cheaper than running the transformer, for a smaller loss
//! in retrieval quality than feature hashing (docs/benchmarks.md).
//!
//! The folder (`model.safetensors` with an `embeddings` tensor of `[vocabulary, dimension]`,
//! `tokenizer.json`, `config.json`) is the layout Model2Vec writes, so its own models load too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use super::sentence_fit;
use super::wordpiece::WordPiece;
use super::{Embedder, EmbedderIdentity, LocalEmbedder, TokenCount};
use crate::{Error, Result};

/// The files of a static model folder.
const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];
/// Tokens per text that count (Model2Vec's default); the rest of a longer text is ignored.
const MAX_TOKENS: usize = 512;
/// Tokens run through the teacher together while distilling.
const DISTILL_BATCH: usize = 512;
/// The SIF weighting's smoothing: a token of probability `p` weighs `a / (a + p)`.
/// Model2Vec's published value: SciFact's train queries do not separate it from 3e-4 or 1e-3
/// (docs/benchmarks.md, "The static model's distillation").
const SIF_A: f64 = 1e-4;
/// How [`distill`] makes a model, recorded in its `config.json` (with the sentences it was
/// fitted to, if any): a folder made by an earlier recipe keeps working (tables hold its
/// identity) until it is removed and re-distilled.
const RECIPE: &str = "token-output, centred, sif 1e-4 by zipf rank";
/// The WordNet database `scripts/env.sh` installs, beside the teacher's folder.
const WORDNET_FOLDER: &str = "wordnet-3.0";
/// Glosses the table is fitted to by default: 10,000 rank about as 40,000 do
/// (docs/benchmarks.md); 12,000 take the teacher about five minutes on 2 cores.
const DEFAULT_SENTENCES: usize = 12_000;

/// What [`distill`] fits the table to after distilling it token by token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistillOptions {
    /// A WordNet 3.0 database folder whose glosses the table is fitted to; `None` leaves the
    /// table as distilled token by token (a weaker model).
    pub wordnet: Option<PathBuf>,
    /// At most this many glosses, spread evenly over the database.
    pub sentences: usize,
}

impl DistillOptions {
    /// The defaults for the model in `teacher`: the WordNet database installed beside it, if
    /// there is one, and 12,000 of its glosses.
    pub fn for_teacher(teacher: &Path) -> Self {
        let wordnet = teacher
            .parent()
            .map(|p| p.join(WORDNET_FOLDER))
            .filter(|w| sentence_fit::is_wordnet(w));
        Self {
            wordnet,
            sentences: DEFAULT_SENTENCES,
        }
    }

    /// The recipe these options make, as recorded in `config.json`.
    fn recipe(&self) -> String {
        match &self.wordnet {
            Some(_) => format!(
                "{RECIPE}; fitted to up to {} WordNet glosses",
                self.sentences
            ),
            None => RECIPE.to_string(),
        }
    }
}

/// `config.json` of a static model folder.
#[derive(Debug, Serialize, Deserialize)]
struct StaticConfig {
    #[serde(default = "static_type")]
    model_type: String,
    #[serde(default = "yes")]
    normalize: bool,
    #[serde(default)]
    hidden_dim: Option<usize>,
    #[serde(default)]
    distilled_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    distillation: Option<String>,
}

fn static_type() -> String {
    "model2vec".into()
}

fn yes() -> bool {
    true
}

/// A static embedding model loaded from a folder. Cheap to clone.
#[derive(Clone)]
pub struct StaticEmbedder {
    inner: Arc<Loaded>,
}

struct Loaded {
    tokenizer: Tokenizer,
    /// The same tokenization without offsets, when the tokenizer is BERT's WordPiece.
    wordpiece: Option<WordPiece>,
    /// `[vocabulary × dimension]`, row-major.
    table: Vec<f32>,
    dimension: usize,
    normalize: bool,
    identity: EmbedderIdentity,
    folder: PathBuf,
    /// How the model was distilled, when lancesync distilled it.
    recipe: Option<String>,
}

impl std::fmt::Debug for StaticEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticEmbedder")
            .field("identity", &self.inner.identity)
            .field("folder", &self.inner.folder)
            .finish()
    }
}

fn load_error(folder: &Path, what: impl std::fmt::Display) -> Error {
    Error::Embed(format!(
        "cannot load the static embedding model in {}: {what}",
        folder.display()
    ))
}

impl StaticEmbedder {
    /// Whether `folder` holds a static model.
    pub fn is_model_folder(folder: &Path) -> bool {
        FILES.iter().all(|f| folder.join(f).is_file())
    }

    /// The folder a static model distilled from the model in `teacher` is kept in.
    pub fn folder_for(teacher: &Path) -> PathBuf {
        teacher.join("static")
    }

    /// Load the static model in `folder`.
    pub fn load(folder: &Path) -> Result<Self> {
        let config: StaticConfig = serde_json::from_slice(
            &std::fs::read(folder.join("config.json"))
                .map_err(|e| load_error(folder, format!("config.json: {e}")))?,
        )
        .map_err(|e| load_error(folder, format!("config.json: {e}")))?;
        let tokenizer_json = std::fs::read_to_string(folder.join("tokenizer.json"))
            .map_err(|e| load_error(folder, format!("tokenizer.json: {e}")))?;
        let mut tokenizer: Tokenizer = tokenizer_json
            .parse()
            .map_err(|e| load_error(folder, format!("tokenizer.json: {e}")))?;
        tokenizer
            .with_truncation(None)
            .map_err(|e| load_error(folder, format!("tokenizer: {e}")))?;
        tokenizer.with_padding(None);
        let wordpiece = WordPiece::from_json(&tokenizer_json);
        let bytes = std::fs::read(folder.join("model.safetensors"))
            .map_err(|e| load_error(folder, format!("model.safetensors: {e}")))?;
        let fingerprint = blake3::hash(&bytes).to_hex()[..12].to_string();
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| load_error(folder, format!("model.safetensors: {e}")))?;
        let embeddings = tensors
            .get("embeddings")
            .ok_or_else(|| load_error(folder, "model.safetensors has no `embeddings` tensor"))?
            .to_dtype(DType::F32)
            .map_err(|e| load_error(folder, e))?;
        let (vocabulary, dimension) = embeddings.dims2().map_err(|e| load_error(folder, e))?;
        if vocabulary < tokenizer.get_vocab_size(true) {
            return Err(load_error(
                folder,
                format!(
                    "{vocabulary} vectors for a vocabulary of {}",
                    tokenizer.get_vocab_size(true)
                ),
            ));
        }
        let table = embeddings
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| load_error(folder, e))?;
        let name = config.distilled_from.clone().unwrap_or_else(|| {
            folder
                .file_name()
                .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned())
        });
        Ok(Self {
            inner: Arc::new(Loaded {
                tokenizer,
                wordpiece,
                table,
                dimension,
                normalize: config.normalize,
                identity: EmbedderIdentity {
                    name: "static".into(),
                    model: format!("{name}@{fingerprint}"),
                    dimension,
                },
                folder: folder.to_path_buf(),
                recipe: config.distillation.clone(),
            }),
        })
    }

    /// The static model distilled from the sentence-embedding model in `teacher`: loaded
    /// from [`StaticEmbedder::folder_for`] when it is there, else distilled first (about six
    /// minutes on 2 cores, with [`DistillOptions::for_teacher`]) and written there for next
    /// time.
    pub fn load_or_distill(teacher: &Path) -> Result<Self> {
        let folder = Self::folder_for(teacher);
        let options = DistillOptions::for_teacher(teacher);
        if !Self::is_model_folder(&folder) {
            if options.wordnet.is_none() {
                tracing::warn!(teacher = %teacher.display(), "no WordNet database beside the model (scripts/env.sh installs it): the static model is distilled without fitting it to sentences, and ranks worse");
            }
            tracing::info!(teacher = %teacher.display(), "distilling a static embedding model from the local model (once; a few minutes)");
            let started = std::time::Instant::now();
            distill(&LocalEmbedder::load(teacher)?, &folder, &options)?;
            tracing::info!(
                folder = %folder.display(),
                seconds = started.elapsed().as_secs_f64(),
                "static embedding model distilled"
            );
        }
        let model = Self::load(&folder)?;
        if model.inner.recipe.as_deref() != Some(options.recipe().as_str()) {
            tracing::info!(
                folder = %folder.display(),
                "the static model was distilled by an earlier recipe; it stays in use (the tables hold its identity). To move to the current one, remove the folder and run `sync-cli reindex`"
            );
        }
        Ok(model)
    }

    /// The folder the model was loaded from.
    pub fn folder(&self) -> &Path {
        &self.inner.folder
    }

    /// Embed texts on this thread.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        Ok(self.embed_counted_blocking(texts)?.0)
    }

    /// Embed texts on this thread, with the number of tokens they were (the tokenizing is
    /// done once for both).
    pub fn embed_counted_blocking(&self, texts: &[String]) -> Result<(Vec<Vec<f32>>, u64)> {
        let one = |ids: &[u32]| (self.inner.vector(ids), ids.len() as u64);
        let pairs: Vec<(Vec<f32>, u64)> = if self.inner.wordpiece.is_none() {
            self.general_ids(texts)?
                .iter()
                .map(|ids| one(ids))
                .collect()
        } else {
            let text = |text: &String| self.text_ids(text).map(|ids| one(&ids));
            if texts.len() <= 8 {
                texts.iter().map(text).collect::<Result<_>>()?
            } else {
                texts.par_iter().map(text).collect::<Result<_>>()?
            }
        };
        let tokens = pairs.iter().map(|(_, n)| n).sum();
        Ok((pairs.into_iter().map(|(v, _)| v).collect(), tokens))
    }

    /// How many tokens the texts are, counted by the model's tokenizer without embedding them:
    /// the model's own speed limit (a static model's vector is a table lookup and a mean of
    /// these tokens' rows), and the measure of what embedding them costs.
    pub fn count_tokens(&self, texts: &[String]) -> Result<usize> {
        Ok(self.token_ids(texts)?.iter().map(Vec::len).sum())
    }

    /// Each text's token ids, without special tokens: by the specialised WordPiece where it
    /// applies (3.6 times `tokenizers`' rate; docs/benchmarks.md), else by `tokenizers`.
    pub fn token_ids(&self, texts: &[String]) -> Result<Vec<Vec<u32>>> {
        if self.inner.wordpiece.is_none() {
            return self.general_ids(texts);
        }
        texts.par_iter().map(|text| self.text_ids(text)).collect()
    }

    /// One text's token ids (the specialised path is known to apply or not be needed).
    fn text_ids(&self, text: &String) -> Result<Vec<u32>> {
        match &self.inner.wordpiece {
            Some(wordpiece) if !wordpiece.needs_general(text) => {
                let mut ids = Vec::with_capacity(text.len() / 4);
                wordpiece.encode_into(text, &mut ids);
                Ok(ids)
            }
            _ => Ok(self.general_ids(std::slice::from_ref(text))?.remove(0)),
        }
    }

    /// Whether the model's tokenizer is BERT's uncased WordPiece, which the static model runs
    /// by its own specialised code; any other runs through `tokenizers`.
    pub fn has_specialised_tokenizer(&self) -> bool {
        self.inner.wordpiece.is_some()
    }

    /// Each text's token ids by the general `tokenizers` pipeline.
    pub fn general_ids(&self, texts: &[String]) -> Result<Vec<Vec<u32>>> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        Ok(self
            .inner
            .tokenizer
            .encode_batch(inputs, false)
            .map_err(|e| Error::Embed(format!("static model: {e}")))?
            .iter()
            .map(|e| e.get_ids().to_vec())
            .collect())
    }
}

impl Loaded {
    /// The mean of the tokens' rows (normalised if the model says so).
    fn vector(&self, ids: &[u32]) -> Vec<f32> {
        let d = self.dimension;
        let mut sum = vec![0f32; d];
        let mut count = 0usize;
        for &id in ids.iter().take(MAX_TOKENS) {
            let start = id as usize * d;
            if let Some(row) = self.table.get(start..start + d) {
                sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
                count += 1;
            }
        }
        if count > 0 {
            let n = count as f32;
            sum.iter_mut().for_each(|s| *s /= n);
        }
        if self.normalize {
            let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                sum.iter_mut().for_each(|s| *s /= norm);
            }
        }
        sum
    }
}

/// Distil a static model from `teacher` into `out` (written to a temporary folder beside it,
/// then renamed, so a half-written model is never loaded).
///
/// Each token of the teacher's vocabulary is run through the teacher on its own (with the
/// tokenizer's special tokens around it) and the output at the token is its vector (it ranks
/// better than the teacher's mean that takes in the special tokens too: SciFact's train
/// queries +0.02, docs/benchmarks.md); the vectors are centred on their mean
/// (the direction every token shares carries no meaning) and weighted by SIF,
/// `a / (a + p)`, with `p` a Zipf estimate of the token's frequency from its rank. WordPiece
/// vocabularies list their special and single-character entries first and then words by
/// frequency, so a word's rank counts from the first word (`the`); the entries before it
/// (punctuation, characters) count as the most frequent.
///
/// With a WordNet database in `options`, the table is then fitted to the teacher's vectors of
/// its glosses (ridge regression toward the token-by-token table; docs/benchmarks.md).
pub fn distill(teacher: &LocalEmbedder, out: &Path, options: &DistillOptions) -> Result<()> {
    let failed = |e: &dyn std::fmt::Display| Error::Embed(format!("distilling: {e}"));
    let tokenizer = teacher.tokenizer();
    let vocabulary = tokenizer.get_vocab_size(true);
    let wrapped = tokenizer
        .encode("", true)
        .map_err(|e| failed(&e))?
        .get_ids()
        .to_vec();
    let (prefix, suffix) = wrapped.split_at(wrapped.len().min(1));
    let dimension = teacher.identity_dimension();
    let mut table = vec![0f32; vocabulary * dimension];
    let ids: Vec<u32> = (0..vocabulary as u32).collect();
    for (b, batch) in ids.chunks(DISTILL_BATCH).enumerate() {
        let rows: Vec<Vec<u32>> = batch
            .iter()
            .map(|&id| {
                let mut row = prefix.to_vec();
                row.push(id);
                row.extend_from_slice(suffix);
                row
            })
            .collect();
        let vectors = teacher.output_at(&rows, prefix.len())?;
        for (i, v) in vectors.into_iter().enumerate() {
            let at = (b * DISTILL_BATCH + i) * dimension;
            table[at..at + dimension].copy_from_slice(&v);
        }
    }
    // Centre.
    let mut mean = vec![0f64; dimension];
    for row in table.chunks(dimension) {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += *v as f64);
    }
    mean.iter_mut().for_each(|m| *m /= vocabulary as f64);
    // SIF weights from Zipf ranks.
    let first_word = tokenizer.token_to_id("the").unwrap_or(0) as usize;
    let harmonic: f64 = (1..=vocabulary).map(|r| 1.0 / r as f64).sum();
    for (id, row) in table.chunks_mut(dimension).enumerate() {
        let rank = id.saturating_sub(first_word) + 1;
        let p = 1.0 / (rank as f64 * harmonic);
        let weight = SIF_A / (SIF_A + p);
        row.iter_mut()
            .zip(&mean)
            .for_each(|(v, m)| *v = ((*v as f64 - m) * weight) as f32);
    }
    if let Some(wordnet) = &options.wordnet {
        fit_to_glosses(teacher, wordnet, options.sentences, &mut table, dimension)?;
    }

    let parent = out
        .parent()
        .ok_or_else(|| failed(&"the output has no parent folder"))?;
    std::fs::create_dir_all(parent).map_err(|e| failed(&e))?;
    let staging = parent.join(format!(
        ".{}.partial-{}",
        out.file_name()
            .map_or("static".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| failed(&e))?;
    let tensor =
        Tensor::from_vec(table, (vocabulary, dimension), &Device::Cpu).map_err(|e| failed(&e))?;
    candle_core::safetensors::save(
        &HashMap::from([("embeddings".to_string(), tensor)]),
        staging.join("model.safetensors"),
    )
    .map_err(|e| failed(&e))?;
    std::fs::copy(
        teacher.folder().join("tokenizer.json"),
        staging.join("tokenizer.json"),
    )
    .map_err(|e| failed(&e))?;
    let config = StaticConfig {
        model_type: static_type(),
        normalize: true,
        hidden_dim: Some(dimension),
        distilled_from: Some(teacher.identity_model()),
        distillation: Some(options.recipe()),
    };
    std::fs::write(
        staging.join("config.json"),
        serde_json::to_vec_pretty(&config).map_err(|e| failed(&e))?,
    )
    .map_err(|e| failed(&e))?;
    // Another process may have finished first: its model stands (tables may already hold
    // its identity), and this one is dropped.
    match std::fs::rename(&staging, out) {
        Ok(()) => Ok(()),
        Err(_) if StaticEmbedder::is_model_folder(out) => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(failed(&e))
        }
    }
}

/// Fit `table` to the teacher's vectors of up to `limit` WordNet glosses.
fn fit_to_glosses(
    teacher: &LocalEmbedder,
    wordnet: &Path,
    limit: usize,
    table: &mut [f32],
    dimension: usize,
) -> Result<()> {
    let started = std::time::Instant::now();
    let mut glosses = sentence_fit::wordnet_glosses(wordnet, limit)?;
    // By length, so that the teacher's batches pad little.
    glosses.sort_by_key(String::len);
    let targets = teacher.embed_blocking(&glosses)?;
    let tokenizer = teacher.tokenizer();
    let sentences: Vec<Vec<u32>> = glosses
        .par_iter()
        .map(|g| {
            tokenizer
                .encode(g.as_str(), false)
                .map(|e| e.get_ids().iter().take(MAX_TOKENS).copied().collect())
                .map_err(|e| Error::Embed(format!("distilling: {e}")))
        })
        .collect::<Result<_>>()?;
    let embedded = started.elapsed().as_secs_f64();
    sentence_fit::fit(table, dimension, &sentences, &targets);
    tracing::info!(
        glosses = glosses.len(),
        teacher_seconds = embedded,
        fit_seconds = started.elapsed().as_secs_f64() - embedded,
        "static model fitted to WordNet's glosses"
    );
    Ok(())
}

#[async_trait]
impl Embedder for StaticEmbedder {
    fn identity(&self) -> EmbedderIdentity {
        self.inner.identity.clone()
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        Ok(self.embed_counted(texts).await?.0)
    }

    fn count_tokens(&self, texts: &[String]) -> Result<TokenCount> {
        Ok(TokenCount::exact(
            StaticEmbedder::count_tokens(self, texts)? as u64,
        ))
    }

    async fn embed_counted(&self, texts: &[String]) -> Result<(Vec<Vec<f32>>, TokenCount)> {
        // Cheap enough to run inline for short batches; long ones go off the async workers.
        let (vectors, tokens) = if texts.len() <= 8 {
            self.embed_counted_blocking(texts)?
        } else {
            let this = self.clone();
            let texts = texts.to_vec();
            tokio::task::spawn_blocking(move || this.embed_counted_blocking(&texts))
                .await
                .map_err(|e| Error::Embed(format!("static model stopped: {e}")))??
        };
        Ok((vectors, TokenCount::exact(tokens)))
    }
}
