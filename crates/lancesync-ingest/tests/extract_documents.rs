//! Extraction of real files of every type, and the bad inputs that must become clear
//! per-document failures.
//! Run: cargo test -p lancesync-ingest --test extract_documents

use lancesync_ingest::{ChunkConfig, Chunker, DocType, Error, extract};
use lancesync_testkit::{Docx, encrypted_pdf, pdf};

#[test]
fn pdf_text_keeps_page_numbers_through_chunking() {
    let bytes = pdf(&[
        "Alpha page talks about rivers.",
        "Beta page talks about mountains.",
        "Gamma page talks about the sea.",
    ]);
    let doc = extract(&bytes, DocType::Pdf).unwrap();
    for word in ["Alpha", "Beta", "Gamma", "mountains"] {
        assert!(
            doc.text.contains(word),
            "{word} missing from {:?}",
            doc.text
        );
    }
    assert_eq!(doc.page_starts.len(), 3);
    assert_eq!(doc.metadata.get("pages").map(String::as_str), Some("3"));
    let chunks = Chunker::new(ChunkConfig {
        size: 40,
        overlap: 0,
    })
    .unwrap()
    .chunk(&doc, DocType::Pdf);
    let page_of = |word: &str| {
        chunks
            .iter()
            .find(|c| c.text.contains(word))
            .and_then(|c| c.page_start)
    };
    assert_eq!(
        (page_of("Alpha"), page_of("Beta"), page_of("Gamma")),
        (Some(1), Some(2), Some(3))
    );
}

#[test]
fn docx_paragraphs_headings_lists_tables_and_core_properties() {
    let bytes = Docx::new()
        .title("Quarterly Report")
        .creator("Ada Lovelace")
        .heading(1, "Summary")
        .paragraph("Revenue grew in every region & segment.")
        .heading(2, "Details")
        .list_item("first point")
        .list_item("second point")
        .table(&[&["Region", "Growth"], &["North", "12%"]])
        .build();
    let doc = extract(&bytes, DocType::Docx).unwrap();
    assert_eq!(doc.title.as_deref(), Some("Quarterly Report"));
    assert_eq!(
        doc.metadata.get("creator").map(String::as_str),
        Some("Ada Lovelace")
    );
    assert_eq!(
        doc.text,
        "# Summary\n\nRevenue grew in every region & segment.\n\n## Details\n\n- first point\n\n- second point\n\n| Region | Growth |\n| North | 12% |"
    );
}

#[test]
fn html_markdown_and_text() {
    let html = extract(b"<html><head><title>T</title><script>x()</script></head><body><p>Hello <i>world</i></p></body></html>", DocType::Html).unwrap();
    assert_eq!(
        (html.title.as_deref(), html.text.as_str()),
        (Some("T"), "Hello world")
    );
    let md = extract("# Título\n\nÜnïcödé text".as_bytes(), DocType::Md).unwrap();
    assert_eq!(md.title.as_deref(), Some("Título"));
    let txt = extract(b"\xEF\xBB\xBFplain", DocType::Txt).unwrap();
    assert_eq!(txt.text, "plain");
    let lossy = extract(b"latin-1 caf\xE9", DocType::Txt).unwrap();
    assert_eq!(
        lossy.warnings.len(),
        1,
        "a lossy decode is recorded as a warning"
    );
}

#[test]
fn bad_inputs_are_clear_failures_not_crashes() {
    let truncated_pdf = {
        let mut b = pdf(&["some text here"]);
        b.truncate(b.len() / 3);
        b
    };
    let mut garbage_pdf = b"%PDF-1.7\n".to_vec();
    garbage_pdf.extend((0..4000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    let cases: Vec<(&str, Vec<u8>, DocType, &str)> = vec![
        (
            "encrypted pdf",
            encrypted_pdf(&["secret"]),
            DocType::Pdf,
            "encrypted PDF",
        ),
        ("truncated pdf", truncated_pdf, DocType::Pdf, "corrupt PDF"),
        ("garbage pdf", garbage_pdf, DocType::Pdf, "corrupt PDF"),
        (
            "not a pdf",
            b"hello".to_vec(),
            DocType::Pdf,
            "no %PDF- header",
        ),
        ("zero-byte pdf", Vec::new(), DocType::Pdf, "no %PDF- header"),
        ("image-only pdf", pdf(&[""]), DocType::Pdf, "no text layer"),
        (
            "zip that is not docx",
            zip_with("other.txt", "x"),
            DocType::Docx,
            "word/document.xml is missing",
        ),
        (
            "not a zip",
            b"plain text".to_vec(),
            DocType::Docx,
            "not a valid DOCX",
        ),
        (
            "zero-byte docx",
            Vec::new(),
            DocType::Docx,
            "not a valid DOCX",
        ),
        (
            "encrypted docx",
            [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0].to_vec(),
            DocType::Docx,
            "password-protected",
        ),
        (
            "malformed docx xml",
            zip_with("word/document.xml", "<w:document><w:body><w:p></w:body>"),
            DocType::Docx,
            "malformed DOCX XML",
        ),
        (
            "binary as text",
            b"\x00\x01\x02ELF".to_vec(),
            DocType::Txt,
            "binary content",
        ),
        (
            "binary as markdown",
            b"PK\x03\x04\x00\x00".to_vec(),
            DocType::Md,
            "binary content",
        ),
    ];
    for (what, bytes, doc_type, needle) in cases {
        let err = extract(&bytes, doc_type).expect_err(what);
        assert!(err.to_string().contains(needle), "{what}: {err}");
        if what == "encrypted pdf" {
            assert!(matches!(err, Error::Encrypted));
        }
    }
    // Zero-byte text files are empty documents, not failures.
    assert_eq!(extract(b"", DocType::Txt).unwrap().text, "");
}

#[test]
fn unknown_extensions_are_unsupported() {
    use std::path::Path;
    assert_eq!(DocType::from_path(Path::new("a/B.PDF")), Some(DocType::Pdf));
    assert_eq!(DocType::from_path(Path::new("x.htm")), Some(DocType::Html));
    assert_eq!(
        DocType::from_path(Path::new("x.markdown")),
        Some(DocType::Md)
    );
    assert_eq!(DocType::from_path(Path::new("photo.jpg")), None);
    assert_eq!(DocType::from_path(Path::new("Makefile")), None);
    assert!(
        "jpg"
            .parse::<DocType>()
            .unwrap_err()
            .to_string()
            .contains("unsupported document type: jpg")
    );
}

fn zip_with(name: &str, body: &str) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(body.as_bytes()).unwrap();
    zip.finish().unwrap().into_inner()
}
