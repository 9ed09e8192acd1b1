//! The tables open and search correctly with LanceDB's Python package, the original backend's
//! reader. `scripts/test.sh` installs it; under CI its absence is a failure, elsewhere a loud skip.
//! Run: cargo test -p sync-cli --test python_reader

use std::process::Command;

const READER: &str = r#"
import json, sys, lancedb
db = lancedb.connect(sys.argv[1])
docs = db.open_table("processed_documents")
chunks = db.open_table("document_chunks")
rows = docs.to_arrow().to_pylist()
first = chunks.to_arrow().to_pylist()[0]
near = chunks.search(first["vector"]).limit(1).to_list()
fts = chunks.search("sourdough", query_type="fts").limit(1).to_list()
print(json.dumps({
    "documents": len(rows),
    "chunks": chunks.count_rows(),
    "columns": sorted(docs.schema.names),
    "chunk_columns": sorted(chunks.schema.names),
    "statuses": sorted({r["processing_status"] for r in rows}),
    "nearest_is_itself": near[0]["chunk_id"] == first["chunk_id"],
    "fts_top": fts[0]["source_uri"] if fts else None,
}))
"#;

#[test]
fn python_lancedb_reads_and_searches_our_tables() {
    let python_has_lancedb = Command::new("python3")
        .args(["-c", "import lancedb"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !python_has_lancedb {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with lancedb is required in CI (scripts/test.sh installs it)"
        );
        eprintln!("SKIPPED: python3 -c 'import lancedb' failed; run scripts/test.sh to install it");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let samples = std::path::Path::new(&checkout_dir()).join("../../examples/sample-docs");
    let out = Command::new(env!("CARGO_BIN_EXE_sync-cli"))
        .args(["sync", samples.to_str().unwrap(), "--user", "reader"])
        .current_dir(work.path())
        .env_clear()
        .env("HOME", work.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let db = work.path().join("data/lancedb/users/reader");
    let out = Command::new("python3")
        .args(["-c", READER, db.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["documents"], 5);
    assert_eq!(report["statuses"], serde_json::json!(["completed"]));
    assert!(report["chunks"].as_u64().unwrap() >= 5);
    for column in [
        "doc_id",
        "user_id",
        "source_uri",
        "doc_type",
        "title",
        "metadata_json",
        "ingested_at",
        "processing_status",
        "error_message",
        "total_chunks",
        "checksum",
        "last_synced",
        "vector",
    ] {
        assert!(
            report["columns"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == column),
            "{column} missing: {report}"
        );
    }
    for column in [
        "chunk_id",
        "doc_id",
        "user_id",
        "chunk_index",
        "chunk_text",
        "metadata",
        "created_at",
        "checksum",
        "vector",
    ] {
        assert!(
            report["chunk_columns"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == column),
            "{column} missing: {report}"
        );
    }
    assert_eq!(report["nearest_is_itself"], true);
    assert!(
        report["fts_top"].as_str().unwrap().ends_with("bread.md"),
        "{report}"
    );
}

/// This package's folder in the checkout under test: read when the test runs, since a test
/// binary reused from a shared target directory may have been compiled in another checkout.
fn checkout_dir() -> std::ffi::OsString {
    std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR")
}
