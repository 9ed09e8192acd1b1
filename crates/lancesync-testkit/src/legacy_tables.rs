//! The original system's LanceDB tables, written by LanceDB's Python package as the original
//! wrote them (`fixtures/legacy_lancedb.py`), for migration tests.

use std::process::Command;

use serde_json::{Value, json};

const WRITER: &str = include_str!("fixtures/legacy_lancedb.py");

/// Whether `python3` can import lancedb. Under CI its absence is a failure (scripts/test.sh
/// installs it); elsewhere tests print a loud skip.
pub fn python_lancedb_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import lancedb"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with lancedb is required in CI (scripts/test.sh installs it)"
        );
        eprintln!("SKIPPED: python3 -c 'import lancedb' failed; run scripts/test.sh to install it");
    }
    ok
}

/// One table of the original system: rows as JSON objects with its column names.
#[derive(Debug, Clone)]
pub struct LegacyTable {
    name: String,
    kind: &'static str,
    dim: usize,
    omit: Vec<String>,
    timestamps: bool,
    rows: Vec<Value>,
    appends: Vec<Vec<Value>>,
}

impl LegacyTable {
    /// `processed_documents` with `dim`-long vectors.
    pub fn documents(dim: usize) -> Self {
        Self::new("processed_documents", "documents", dim)
    }

    /// `document_chunks` with `dim`-long vectors.
    pub fn chunks(dim: usize) -> Self {
        Self::new("document_chunks", "chunks", dim)
    }

    fn new(name: &str, kind: &'static str, dim: usize) -> Self {
        Self {
            name: name.into(),
            kind,
            dim,
            omit: Vec::new(),
            timestamps: false,
            rows: Vec::new(),
            appends: Vec::new(),
        }
    }

    /// Another table name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// Leave these columns out, as earlier versions did.
    pub fn without(mut self, columns: &[&str]) -> Self {
        self.omit.extend(columns.iter().map(|c| c.to_string()));
        self
    }

    /// Store times as timestamps rather than ISO strings.
    pub fn with_timestamps(mut self) -> Self {
        self.timestamps = true;
        self
    }

    /// Rows of the first write.
    pub fn rows(mut self, rows: impl IntoIterator<Item = Value>) -> Self {
        self.rows.extend(rows);
        self
    }

    /// A later `table.add` of `rows` (how re-ingestion appended duplicates).
    pub fn append(mut self, rows: impl IntoIterator<Item = Value>) -> Self {
        self.appends.push(rows.into_iter().collect());
        self
    }
}

/// Write `tables` into the LanceDB database at `uri` (a folder, or `s3://` with
/// `storage_options`) with Python's lancedb. Panics with Python's error output on failure.
pub fn write_legacy_tables(uri: &str, storage_options: Option<Value>, tables: &[LegacyTable]) {
    let request = json!({
        "uri": uri,
        "storage_options": storage_options,
        "tables": tables.iter().map(|t| json!({
            "name": t.name,
            "kind": t.kind,
            "dim": t.dim,
            "omit": t.omit,
            "timestamps": t.timestamps,
            "rows": t.rows,
            "appends": t.appends,
        })).collect::<Vec<_>>(),
    });
    let mut child = Command::new("python3")
        .args(["-c", WRITER])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(request.to_string().as_bytes())
            .expect("request written");
    }
    let out = child.wait_with_output().expect("python3 finishes");
    assert!(
        out.status.success(),
        "writing legacy tables with Python's lancedb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A document row as the original wrote it.
pub fn legacy_document(
    doc_id: &str,
    user_id: &str,
    source_uri: &str,
    checksum: &str,
    chunks: usize,
    vector: &[f32],
) -> Value {
    let name = source_uri.rsplit('/').next().unwrap_or(source_uri);
    json!({
        "doc_id": doc_id,
        "user_id": user_id,
        "source_uri": source_uri,
        "doc_type": name.rsplit('.').next().unwrap_or("txt"),
        "title": name,
        "metadata_json": json!({"original": true}).to_string(),
        "ingested_at": "2024-05-01T10:00:00Z",
        "processing_status": "completed",
        "error_message": null,
        "total_chunks": chunks,
        "checksum": checksum,
        "last_synced": "2024-05-01T10:00:00Z",
        "vector": vector,
    })
}

/// A chunk row as the original wrote it.
pub fn legacy_chunk(
    doc_id: &str,
    user_id: &str,
    index: usize,
    text: &str,
    vector: &[f32],
) -> Value {
    json!({
        "chunk_id": format!("{doc_id}_{index}"),
        "doc_id": doc_id,
        "user_id": user_id,
        "chunk_index": index,
        "chunk_text": text,
        "metadata": json!({"chunk_size": text.len()}).to_string(),
        "created_at": "2024-05-01T10:00:00Z",
        "checksum": md5_hex(text.as_bytes()),
        "vector": vector,
    })
}

/// MD5 as the original computed checksums, hex.
pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest as _;
    md5::Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
