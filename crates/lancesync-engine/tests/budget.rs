//! Every document's work is bounded: text of any shape chunks in time linear in its length,
//! a document over `DOCUMENT_TIMEOUT` or `MAX_DOCUMENT_TEXT_MB` is a recorded failure while
//! the rest of the run is indexed, over real LanceDB tables in temp dirs.
//! Run: cargo test -p lancesync-engine --test budget

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lancesync_engine::{Engine, EngineConfig, NoProgress, SyncOptions, SyncReport};
use lancesync_ingest::{Embedder, EmbedderIdentity, HashingEmbedder};
use lancesync_sources::{LocalFsConfig, LocalFsSource};
use lancesync_testkit::Docx;

/// The hashing embedder, plus a pause per text: a slow model, so a document's embedding
/// outlasts a short deadline.
#[derive(Debug, Default)]
struct SlowEmbedder {
    inner: HashingEmbedder,
    per_text: Duration,
}

#[async_trait]
impl Embedder for SlowEmbedder {
    fn identity(&self) -> EmbedderIdentity {
        self.inner.identity()
    }
    async fn embed(&self, texts: &[String]) -> lancesync_ingest::Result<Vec<Vec<f32>>> {
        tokio::time::sleep(self.per_text * texts.len() as u32).await;
        self.inner.embed(texts).await
    }
}

/// Sentences with no line break between them: `bytes` long. They start in lowercase, so
/// under Unicode's sentence rules none of them ends: one endless sentence, the shape whose
/// chunking was quadratic.
fn one_paragraph(bytes: usize) -> String {
    let sentence = "the tide turns twice a day and the marsh floods slowly. ";
    sentence.repeat(bytes / sentence.len() + 1)[..bytes].to_string()
}

async fn sync(docs: &Path, config: EngineConfig, embedder: SlowEmbedder) -> SyncReport {
    let engine = Engine::new(config, Arc::new(embedder)).unwrap();
    let source = LocalFsSource::new(
        "docs",
        LocalFsConfig::new([docs.to_str().unwrap()]),
        &BTreeMap::new(),
    )
    .unwrap();
    engine
        .sync("alice", &source, SyncOptions::default(), &NoProgress)
        .await
        .unwrap()
}

fn reason<'r>(report: &'r SyncReport, name: &str) -> &'r str {
    &report
        .failures
        .iter()
        .find(|f| f.uri.ends_with(name))
        .unwrap_or_else(|| panic!("{name} did not fail: {:?}", report.failures))
        .reason
}

/// The shapes that made the splitter quadratic (a DOCX whose text is one long paragraph, a
/// Markdown file of one line) are indexed like any other document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_paragraph_documents_are_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let paragraph = one_paragraph(2 << 20);
    let docx = Docx::new().paragraph(&paragraph).build();
    assert!(docx.len() < 200_000, "a small file: {} bytes", docx.len());
    std::fs::write(docs.join("tides.docx"), &docx).unwrap();
    std::fs::write(docs.join("line.md"), one_paragraph(3 << 20)).unwrap();
    std::fs::write(docs.join("note.txt"), "A short note about herons.").unwrap();
    let started = Instant::now();
    let report = sync(
        &docs,
        EngineConfig::new(dir.path().join("db")),
        SlowEmbedder::default(),
    )
    .await;
    assert_eq!(report.created, 3, "{:?}", report.failures);
    assert_eq!(report.failed, 0);
    // 5 MB of text in chunks of at most 1,000 characters.
    assert!(report.chunks_written > 5_000, "{}", report.chunks_written);
    let took = started.elapsed();
    eprintln!(
        "indexed 5 MB of one-paragraph text (the DOCX is {} bytes) in {took:?}",
        docx.len()
    );
    // Linear chunking takes a few seconds here; the quadratic splitter took over a minute.
    assert!(took < Duration::from_secs(30), "{took:?}");
}

/// A document whose work outlasts DOCUMENT_TIMEOUT is a recorded failure naming the setting,
/// the run goes on with the others, and the run does not wait for the abandoned work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_over_its_time_budget_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    // About 600 chunks at 10 ms each: 6 s of embedding against a 1.5 s budget.
    std::fs::write(docs.join("long.txt"), one_paragraph(600 * 900)).unwrap();
    std::fs::write(
        docs.join("short.txt"),
        "Herons wade in the shallows at dawn.",
    )
    .unwrap();
    let mut config = EngineConfig::new(dir.path().join("db"));
    config.document_timeout = Duration::from_millis(1500);
    let started = Instant::now();
    let report = sync(
        &docs,
        config,
        SlowEmbedder {
            per_text: Duration::from_millis(10),
            ..Default::default()
        },
    )
    .await;
    let took = started.elapsed();
    assert_eq!(report.created, 1, "{:?}", report.failures);
    assert_eq!(report.failed, 1);
    let why = reason(&report, "long.txt");
    assert!(
        why.contains("timed out") && why.contains("DOCUMENT_TIMEOUT"),
        "{why}"
    );
    // Stopped at the deadline (within one batch of 256 chunks), not after all 6 s.
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// A small DOCX that unpacks to more text than MAX_DOCUMENT_TEXT_MB is refused before it
/// is chunked or embedded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_over_the_limit_is_a_recorded_failure() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let docx = Docx::new().paragraph(&one_paragraph(3 << 20)).build();
    std::fs::write(docs.join("bomb.docx"), &docx).unwrap();
    std::fs::write(docs.join("ok.md"), "# Fine\n\nA normal note.").unwrap();
    let mut config = EngineConfig::new(dir.path().join("db"));
    config.extract.max_text_bytes = 1 << 20;
    let report = sync(&docs, config, SlowEmbedder::default()).await;
    assert_eq!(report.created, 1);
    let why = reason(&report, "bomb.docx");
    assert!(
        why.contains("MAX_DOCUMENT_TEXT_MB") && why.contains("over the limit of 1048576 bytes"),
        "{why}"
    );
}
