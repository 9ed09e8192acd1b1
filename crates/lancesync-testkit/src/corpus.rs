//! Deterministic benchmark corpora: a mixed md/txt/html/pdf/docx document set, a tree of many
//! small text files, and a mutation that changes a share of a corpus's documents in place.

use std::io;
use std::path::{Path, PathBuf};

use crate::{Docx, pdf};

/// Words the generated prose is drawn from, so full-text search and chunking see real words.
const WORDS: &[&str] = &[
    "garden",
    "tomato",
    "water",
    "soil",
    "vector",
    "database",
    "index",
    "search",
    "query",
    "document",
    "sync",
    "chunk",
    "embedding",
    "model",
    "storage",
    "bucket",
    "cache",
    "backup",
    "restore",
    "latency",
    "throughput",
    "memory",
    "batch",
    "table",
    "column",
    "schema",
    "version",
    "fragment",
    "compaction",
    "manifest",
    "merge",
    "insert",
    "delete",
    "update",
    "rename",
    "folder",
    "file",
    "page",
    "paragraph",
    "sentence",
    "heading",
    "list",
    "report",
    "invoice",
    "meeting",
    "notes",
    "project",
    "budget",
    "quarter",
    "customer",
    "contract",
    "policy",
    "security",
    "network",
    "server",
    "client",
    "request",
    "response",
    "error",
    "retry",
    "schedule",
    "health",
    "metric",
    "user",
    "account",
    "token",
    "secret",
    "river",
    "mountain",
    "forest",
    "coffee",
    "recipe",
    "travel",
    "museum",
    "history",
    "science",
    "physics",
    "chemistry",
    "biology",
    "music",
    "guitar",
    "piano",
    "football",
    "weather",
    "summer",
    "winter",
    "harvest",
    "bread",
];

/// A small, fast, deterministic generator (xorshift64*): corpora are identical run to run.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn word(&mut self) -> &'static str {
        WORDS[self.below(WORDS.len())]
    }
    fn sentence(&mut self) -> String {
        let n = 6 + self.below(12);
        let mut s: Vec<&str> = (0..n).map(|_| self.word()).collect();
        let first = s[0];
        let capital = first[..1].to_uppercase() + &first[1..];
        s[0] = "";
        format!("{capital}{}.", s.join(" "))
    }
    fn paragraph(&mut self) -> String {
        let n = 3 + self.below(5);
        (0..n)
            .map(|_| self.sentence())
            .collect::<Vec<_>>()
            .join(" ")
    }
    fn paragraphs(&mut self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.paragraph()).collect()
    }
}

/// What a generator wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CorpusStats {
    /// Files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
}

impl CorpusStats {
    fn add(&mut self, bytes: usize) {
        self.files += 1;
        self.bytes += bytes as u64;
    }
}

/// The document types of a mixed corpus, in the shares they appear: of every 20 documents,
/// 6 md, 5 txt, 4 html, 3 pdf, 2 docx.
const MIX: [&str; 20] = [
    "md", "txt", "html", "md", "pdf", "txt", "md", "docx", "html", "txt", "md", "pdf", "html",
    "txt", "md", "docx", "html", "txt", "md", "pdf",
];

/// The relative path of mixed-corpus document `i` (100 documents per folder).
pub fn mixed_path(i: usize) -> PathBuf {
    let ext = MIX[i % MIX.len()];
    PathBuf::from(format!("d{:04}/doc{i:07}.{ext}", i / 100))
}

/// The bytes of mixed-corpus document `i`, version `version` (0 when first written; a higher
/// version is the same document with other content).
pub fn mixed_document(i: usize, version: u64) -> Vec<u8> {
    let mut rng = Rng::new((i as u64) << 16 | version);
    let title = format!("{} {} {i}", rng.word(), rng.word());
    let count = 3 + rng.below(6);
    let paragraphs = rng.paragraphs(count);
    match MIX[i % MIX.len()] {
        "md" => {
            let mut out = format!("# {title}\n\n");
            for (n, p) in paragraphs.iter().enumerate() {
                if n % 3 == 2 {
                    out.push_str(&format!("## {}\n\n", rng.sentence()));
                }
                out.push_str(p);
                out.push_str("\n\n");
            }
            out.into_bytes()
        }
        "txt" => format!("{title}\n\n{}\n", paragraphs.join("\n\n")).into_bytes(),
        "html" => {
            let body: String = paragraphs.iter().map(|p| format!("<p>{p}</p>\n")).collect();
            format!(
                "<!doctype html><html><head><title>{title}</title><style>p{{margin:0}}</style>\
                 <script>var tracking = 1;</script></head><body><h1>{title}</h1>\n{body}</body></html>\n"
            )
            .into_bytes()
        }
        "pdf" => {
            let pages: Vec<&str> = paragraphs.iter().map(String::as_str).collect();
            pdf(&pages)
        }
        "docx" => {
            let mut doc = Docx::new().title(&title).heading(1, &title);
            for (n, p) in paragraphs.iter().enumerate() {
                doc = if n % 4 == 3 {
                    doc.list_item(p)
                } else {
                    doc.paragraph(p)
                };
            }
            doc.build()
        }
        other => unreachable!("no generator for {other}"),
    }
}

fn write(root: &Path, relative: &Path, bytes: &[u8]) -> io::Result<()> {
    let path = root.join(relative);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, bytes)
}

/// Write a mixed corpus of `documents` documents under `root`.
pub fn write_mixed(root: &Path, documents: usize) -> io::Result<CorpusStats> {
    let mut stats = CorpusStats::default();
    for i in 0..documents {
        let bytes = mixed_document(i, 0);
        write(root, &mixed_path(i), &bytes)?;
        stats.add(bytes.len());
    }
    Ok(stats)
}

/// Write `files` small text files (a few hundred bytes each) under `root`, 1,000 per folder.
pub fn write_small_files(root: &Path, files: usize) -> io::Result<CorpusStats> {
    let mut stats = CorpusStats::default();
    for i in 0..files {
        let mut rng = Rng::new(i as u64);
        let text = format!("note {i}\n{}\n", rng.paragraph());
        write(
            root,
            &PathBuf::from(format!("n{:03}/note{i:07}.txt", i / 1000)),
            text.as_bytes(),
        )?;
        stats.add(text.len());
    }
    Ok(stats)
}

/// Give every `1 / share`-th document of a mixed corpus of `documents` new content
/// (`version`), spread evenly across the corpus and its types.
pub fn mutate_mixed(
    root: &Path,
    documents: usize,
    share: f64,
    version: u64,
) -> io::Result<CorpusStats> {
    let mut stats = CorpusStats::default();
    let step = (1.0 / share.clamp(f64::MIN_POSITIVE, 1.0)).round().max(1.0) as usize;
    for i in (0..documents).step_by(step) {
        let bytes = mixed_document(i, version);
        write(root, &mixed_path(i), &bytes)?;
        stats.add(bytes.len());
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpora_are_deterministic_mixed_and_mutable() {
        assert_eq!(mixed_document(7, 0), mixed_document(7, 0));
        assert_ne!(mixed_document(7, 0), mixed_document(7, 1));
        let dir = tempfile::tempdir().unwrap();
        let stats = write_mixed(dir.path(), 40).unwrap();
        assert_eq!(stats.files, 40);
        let count = |ext: &str| {
            (0..40)
                .filter(|&i| mixed_path(i).extension().unwrap() == ext)
                .count()
        };
        assert_eq!(
            [
                count("md"),
                count("txt"),
                count("html"),
                count("pdf"),
                count("docx")
            ],
            [12, 10, 8, 6, 4]
        );
        assert!(
            std::fs::read(dir.path().join(mixed_path(4)))
                .unwrap()
                .starts_with(b"%PDF-")
        );
        assert!(
            std::fs::read(dir.path().join(mixed_path(7)))
                .unwrap()
                .starts_with(b"PK")
        );
        let changed = mutate_mixed(dir.path(), 40, 0.1, 1).unwrap();
        assert_eq!(changed.files, 4);
        assert_eq!(
            std::fs::read(dir.path().join(mixed_path(10))).unwrap(),
            mixed_document(10, 1)
        );
        assert_eq!(
            std::fs::read(dir.path().join(mixed_path(11))).unwrap(),
            mixed_document(11, 0)
        );
        let small = write_small_files(&dir.path().join("small"), 25).unwrap();
        assert_eq!(small.files, 25);
        assert!(small.bytes > 25 * 50);
    }
}
