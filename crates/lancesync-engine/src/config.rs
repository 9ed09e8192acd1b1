//! How an engine is configured: from lancesync's settings, or by hand; and the embedder the
//! settings choose.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lancesync_ingest::{ChunkConfig, Embedder, ExtractOptions};

use crate::{LegacyFallback, Result, Storage, TableSettings};

/// The mass-delete guard: a run may not delete more than `max_share` of a source's documents
/// (when that is at least `min_documents`) unless told to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MassDeleteGuard {
    /// Largest share of a source's documents one run may delete, 0 to 1.
    pub max_share: f64,
    /// Fewer deletions than this never trip the guard.
    pub min_documents: usize,
}

impl Default for MassDeleteGuard {
    fn default() -> Self {
        Self {
            max_share: 0.5,
            min_documents: 10,
        }
    }
}

/// How the engine works.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `LANCEDB_URI`: the folder holding `users/{user_id}` databases (or, with S3 as
    /// primary, their local replicas).
    pub base_dir: PathBuf,
    /// Where each user's database is written and read, and its S3 copies.
    pub storage: Arc<Storage>,
    /// Table names and maintenance thresholds.
    pub tables: TableSettings,
    /// Chunk size and overlap.
    pub chunking: ChunkConfig,
    /// `MAX_CONCURRENT_PROCESSING`.
    pub max_concurrency: usize,
    /// `MAX_RETRIES`.
    pub max_retries: u64,
    /// First wait before retrying a failed document; doubles per attempt.
    pub retry_backoff: Duration,
    /// `CHECKSUM_ENABLED`.
    pub checksum_enabled: bool,
    /// How far extraction may go for one document: `OCR_ENABLED`, `EXTRACT_TIMEOUT`,
    /// `EXTRACT_MEMORY_MB`, `MAX_DOCUMENT_TEXT_MB`.
    pub extract: ExtractOptions,
    /// `DOCUMENT_TIMEOUT`: how long extracting, chunking and embedding one document may take
    /// in all; past it the document is a recorded failure and the work is abandoned.
    pub document_timeout: Duration,
    /// Documents per write batch.
    pub batch_docs: usize,
    /// Chunks per write batch (a batch closes at whichever limit comes first).
    pub batch_chunks: usize,
    /// The mass-delete guard.
    pub mass_delete: MassDeleteGuard,
    /// `CHUNK_SIZE_MB`: the largest document read, in bytes; a larger one is a recorded
    /// failure (not read at all when its listed size says so).
    pub max_document_bytes: u64,
    /// `ENABLE_LEGACY_FALLBACK` with `LEGACY_FALLBACK_URL`: where documents lancesync cannot
    /// take are posted instead of only failing.
    pub legacy_fallback: Option<LegacyFallback>,
    /// `SEARCH_VECTOR_WEIGHT`: the vector half's share of a hybrid search's score; `None`
    /// takes [`crate::default_vector_weight`] for the embedder.
    pub search_vector_weight: Option<f32>,
    /// `EMBEDDING_PRICE_PER_MILLION_TOKENS`: what a dry run prices its tokens at.
    pub embedding_price_per_million_tokens: Option<f64>,
    /// `REINDEX_KEEP_DAYS`: how long a re-index keeps the generation it replaced, for
    /// rollback.
    pub reindex_keep: Duration,
}

impl EngineConfig {
    /// The engine part of a loaded configuration, in its storage mode.
    pub fn from_config(config: &lancesync_config::Config) -> Result<Self> {
        let storage = Storage::from_settings(config.settings(), config.storage_mode())?;
        Ok(Self::from_settings(config.settings()).with_storage(Arc::new(storage)))
    }

    /// The engine part of lancesync's settings, with local storage at `LANCEDB_URI`
    /// ([`EngineConfig::from_config`] applies the configured storage mode).
    pub fn from_settings(settings: &lancesync_config::Settings) -> Self {
        let mut c = Self::new(&settings.lancedb.uri);
        c.tables.documents_table = settings.lancedb.documents_table.clone();
        c.tables.chunks_table = settings.lancedb.chunks_table.clone();
        c.chunking = ChunkConfig {
            size: settings.embedding.chunk_characters as usize,
            overlap: settings.embedding.chunk_overlap as usize,
        };
        c.max_concurrency = settings.sync.max_concurrent_processing as usize;
        c.max_retries = settings.sync.max_retries;
        c.checksum_enabled = settings.sync.checksum_enabled;
        c.extract = ExtractOptions {
            ocr: settings.sync.ocr_enabled,
            timeout: settings.sync.extract_timeout,
            memory_bytes: settings.sync.extract_memory_mb.saturating_mul(1 << 20),
            max_text_bytes: usize::try_from(settings.sync.max_document_text_mb)
                .unwrap_or(usize::MAX)
                .saturating_mul(1 << 20),
        };
        c.document_timeout = settings.sync.document_timeout;
        c.mass_delete.max_share = settings.sync.mass_delete_max_share;
        c.reindex_keep = Duration::from_secs(settings.sync.reindex_keep_days * 86_400);
        c.max_document_bytes = settings.sync.chunk_size_mb.saturating_mul(1 << 20);
        c.search_vector_weight = settings.embedding.search_vector_weight.map(|w| w as f32);
        c.embedding_price_per_million_tokens = settings.embedding.price_per_million_tokens;
        c.legacy_fallback = match &settings.integration.legacy_fallback_url {
            Some(url) if settings.integration.legacy_fallback => {
                match LegacyFallback::new(url.clone(), Duration::from_secs(120)) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        tracing::error!(error = %e, "legacy fallback off");
                        None
                    }
                }
            }
            _ => None,
        };
        c
    }

    /// Use `storage` (its local base becomes `base_dir`).
    pub fn with_storage(mut self, storage: Arc<Storage>) -> Self {
        self.base_dir = storage.local_base().to_path_buf();
        self.storage = storage;
        self
    }

    /// Defaults with local databases under `base_dir`.
    pub fn new(base_dir: impl Into<PathBuf>) -> Self {
        let base_dir = base_dir.into();
        Self {
            storage: Arc::new(Storage::local(base_dir.clone())),
            base_dir,
            tables: TableSettings::default(),
            chunking: ChunkConfig::default(),
            max_concurrency: 5,
            max_retries: 3,
            retry_backoff: Duration::from_secs(60),
            checksum_enabled: true,
            extract: ExtractOptions::default(),
            document_timeout: Duration::from_secs(300),
            batch_docs: 256,
            batch_chunks: 8192,
            mass_delete: MassDeleteGuard::default(),
            max_document_bytes: 50 << 20,
            legacy_fallback: None,
            search_vector_weight: None,
            embedding_price_per_million_tokens: None,
            reindex_keep: Duration::from_secs(7 * 86_400),
        }
    }
}

/// Builds the embedder of a stored identity, for queries of tables another embedder built:
/// `Ok(None)` when it cannot (the model is not on this machine).
pub type EmbedderResolver = Arc<
    dyn Fn(
            &lancesync_ingest::EmbedderIdentity,
        ) -> lancesync_ingest::Result<Option<Arc<dyn Embedder>>>
        + Send
        + Sync,
>;

/// The built-in embedder, if it is what `identity` names (it needs nothing but its length).
pub(crate) fn builtin_for(
    identity: &lancesync_ingest::EmbedderIdentity,
) -> Option<Arc<dyn Embedder>> {
    let hashing: Arc<dyn Embedder> =
        Arc::new(lancesync_ingest::HashingEmbedder::new(identity.dimension));
    (hashing.identity() == *identity).then_some(hashing)
}

/// The query embedders lancesync's settings can build besides the configured one: the
/// built-in embedder of any length, the static and local models in `EMBEDDING_MODEL_PATH`
/// (loaded, never distilled, and only if their fingerprint matches), and another model or
/// length of the configured OpenAI-compatible server.
pub fn embedder_resolver_from_settings(settings: &lancesync_config::Settings) -> EmbedderResolver {
    let e = settings.embedding.clone();
    Arc::new(move |identity| {
        if let Some(hashing) = builtin_for(identity) {
            return Ok(Some(hashing));
        }
        let folder = e.model_path.as_deref();
        let built: Option<Arc<dyn Embedder>> = match identity.name.as_str() {
            "static" => match folder.map(lancesync_ingest::StaticEmbedder::folder_for) {
                Some(f) if lancesync_ingest::StaticEmbedder::is_model_folder(&f) => {
                    Some(Arc::new(lancesync_ingest::StaticEmbedder::load(&f)?))
                }
                _ => None,
            },
            "local" => match folder {
                Some(f) if lancesync_ingest::LocalEmbedder::is_model_folder(f) => {
                    Some(Arc::new(lancesync_ingest::LocalEmbedder::load(f)?))
                }
                _ => None,
            },
            "openai-compatible" => {
                let mut c = lancesync_ingest::OpenAiConfig::new(
                    e.base_url.clone(),
                    identity.model.clone(),
                    identity.dimension,
                );
                c.api_key = e.api_key.clone();
                c.batch_size = e.batch_size as usize;
                Some(Arc::new(lancesync_ingest::OpenAiEmbedder::new(c)?))
            }
            _ => None,
        };
        Ok(built.filter(|b| b.identity() == *identity))
    })
}

/// The embedder lancesync's settings choose. `auto` takes the static model distilled from the
/// local model when `EMBEDDING_MODEL_PATH` holds one (distilling it on first use, about six
/// minutes on 2 cores, then loading it from `EMBEDDING_MODEL_PATH/static`), else the built-in
/// embedder; `local` runs the local model itself (better, and about a hundred times slower);
/// `static` insists on the static model.
pub fn embedder_from_settings(settings: &lancesync_config::Settings) -> Result<Arc<dyn Embedder>> {
    use lancesync_config::EmbeddingProvider;
    let e = &settings.embedding;
    let hashing = || Arc::new(lancesync_ingest::HashingEmbedder::new(e.dimension as usize));
    let model_folder = e.model_path.as_deref().filter(|p| {
        lancesync_ingest::LocalEmbedder::is_model_folder(p)
            || lancesync_ingest::StaticEmbedder::is_model_folder(
                &lancesync_ingest::StaticEmbedder::folder_for(p),
            )
    });
    Ok(match e.provider {
        EmbeddingProvider::Auto => match model_folder {
            Some(folder) => Arc::new(lancesync_ingest::StaticEmbedder::load_or_distill(folder)?),
            None => {
                tracing::info!(
                    model_path = ?e.model_path,
                    "no local embedding model: using the built-in (feature-hashing) embedder"
                );
                hashing()
            }
        },
        EmbeddingProvider::Local => {
            let folder = e.model_path.as_deref().ok_or_else(|| {
                lancesync_ingest::Error::Embed(
                    "EMBEDDING_PROVIDER=local needs EMBEDDING_MODEL_PATH (or HOME, for the default folder)"
                        .into(),
                )
            })?;
            Arc::new(lancesync_ingest::LocalEmbedder::load(folder)?)
        }
        EmbeddingProvider::Static => {
            let folder = e.model_path.as_deref().ok_or_else(|| {
                lancesync_ingest::Error::Embed(
                    "EMBEDDING_PROVIDER=static needs EMBEDDING_MODEL_PATH (or HOME, for the default folder)"
                        .into(),
                )
            })?;
            Arc::new(lancesync_ingest::StaticEmbedder::load_or_distill(folder)?)
        }
        EmbeddingProvider::Builtin => hashing(),
        EmbeddingProvider::OpenAi => {
            let mut c = lancesync_ingest::OpenAiConfig::new(
                e.base_url.clone(),
                e.model.clone(),
                e.dimension as usize,
            );
            c.api_key = e.api_key.clone();
            c.batch_size = e.batch_size as usize;
            Arc::new(lancesync_ingest::OpenAiEmbedder::new(c)?)
        }
    })
}
