//! Extraction of real files of every type, and the bad inputs that must become clear
//! per-document failures.
//! Run: cargo test -p lancesync-ingest --test extract_documents

use lancesync_ingest::{
    ChunkConfig, Chunker, DocType, Error, ExtractOptions, extract, extract_with,
};
use lancesync_testkit::{
    Docx, classic_pdf, classic_pdf_of, damaged_pdfs, encrypted_pdf, pdf, pdf_stream,
};

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
        (
            "truncated pdf",
            truncated_pdf,
            DocType::Pdf,
            "damaged beyond repair",
        ),
        (
            "garbage pdf",
            garbage_pdf,
            DocType::Pdf,
            "damaged beyond repair",
        ),
        (
            "not a pdf",
            b"hello".to_vec(),
            DocType::Pdf,
            "no %PDF- header",
        ),
        ("zero-byte pdf", Vec::new(), DocType::Pdf, "no %PDF- header"),
        (
            "image-only pdf",
            pdf(&[""]),
            DocType::Pdf,
            "image-only (no text layer)",
        ),
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

/// Pages that are only pictures: each a grayscale image (no text layer), as a scanner makes.
fn image_pdf(images: &[(usize, usize, Vec<u8>)]) -> Vec<u8> {
    let n = images.len();
    let mut objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {n} >>",
            (0..n)
                .map(|i| format!("{} 0 R", 3 + 3 * i))
                .collect::<Vec<_>>()
                .join(" ")
        )
        .into_bytes(),
    ];
    for (i, (w, h, gray)) in images.iter().enumerate() {
        let (image, content) = (4 + 3 * i, 5 + 3 * i);
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im1 {image} 0 R >> >> /Contents {content} 0 R >>"
        ).into_bytes());
        objects.push(pdf_stream(
            &format!("/Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray /BitsPerComponent 8"),
            gray,
        ));
        objects.push(pdf_stream("", b"q 595 0 0 842 0 0 cm /Im1 Do Q"));
    }
    classic_pdf_of(&objects).0
}

/// Page `page` of `pdf` rendered in gray by poppler's pdftoppm: (width, height, pixels).
fn render(pdf: &[u8], page: usize) -> (usize, usize, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pdf");
    std::fs::write(&input, pdf).unwrap();
    let out = dir.path().join("page");
    let n = page.to_string();
    let status = std::process::Command::new("pdftoppm")
        .args(["-r", "100", "-gray", "-singlefile", "-f", &n, "-l", &n])
        .arg(&input)
        .arg(&out)
        .status()
        .expect("pdftoppm (poppler-utils) runs");
    assert!(status.success());
    let pgm = std::fs::read(out.with_extension("pgm")).unwrap();
    // P5 <width> <height> <maxval> then the pixels.
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while pgm[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !pgm[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&pgm[start..at]).to_string());
    }
    let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let pixels = pgm[at + 1..].to_vec();
    assert_eq!(pixels.len(), w * h);
    (w, h, pixels)
}

/// Scanned pages (images, no text layer) are an image-only failure, or with OCR on (needs
/// pdftoppm and tesseract, which scripts/env.sh installs) text with its page numbers.
#[test]
fn scanned_pages_are_read_with_ocr_when_it_is_on() {
    let (text_pdf, _) = classic_pdf(&[
        "Lighthouse keepers log every ship",
        "Spring tides flood the marsh",
    ]);
    let scanned = image_pdf(&[render(&text_pdf, 1), render(&text_pdf, 2)]);
    let plain = extract(&scanned, DocType::Pdf).unwrap_err().to_string();
    assert!(
        plain.contains("image-only (no text layer) in 2 page(s)"),
        "{plain}"
    );
    let read = extract_with(
        &scanned,
        DocType::Pdf,
        &ExtractOptions {
            ocr: true,
            ..ExtractOptions::default()
        },
    )
    .unwrap();
    let lower = read.text.to_lowercase();
    assert!(
        lower.contains("lighthouse") && lower.contains("ship"),
        "{:?}",
        read.text
    );
    assert!(
        lower.contains("tides") && lower.contains("marsh"),
        "{:?}",
        read.text
    );
    assert_eq!(read.page_starts.len(), 2, "page numbers kept");
    let second = &read.text[read.page_starts[1]..].to_lowercase();
    assert!(
        second.contains("marsh") && !second.contains("lighthouse"),
        "{:?}",
        read.text
    );
    assert_eq!(
        read.metadata.get("extracted_by").map(String::as_str),
        Some("tesseract (OCR)")
    );
}

/// Damaged files that poppler's pdftotext rebuilds are indexed (and say which path read
/// them); the rest fail with a reason that is true. Needs `pdftotext` (poppler-utils, which
/// scripts/env.sh installs).
#[test]
fn damaged_pdfs_are_repaired_and_failures_say_why() {
    let pages = [
        "The lighthouse keeper logs every passing ship.",
        "A second page about tides.",
    ];
    let (good, _) = classic_pdf(&pages);

    assert_eq!(
        extract(&good, DocType::Pdf)
            .unwrap()
            .metadata
            .get("extracted_by")
            .map(String::as_str),
        Some("pdf-extract")
    );
    let mut repaired = Vec::new();
    for (name, bytes) in damaged_pdfs(&pages) {
        let out = extract(&bytes, DocType::Pdf).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            out.text.contains("lighthouse keeper"),
            "{name}: {:?}",
            out.text
        );
        assert!(out.text.contains("tides"), "{name}: {:?}", out.text);
        assert_eq!(out.page_starts.len(), 2, "{name}: pages kept");
        let by = out.metadata.get("extracted_by").map(String::as_str);
        match by {
            Some("pdftotext (repaired)") => repaired.push(name),
            Some("pdf-extract") => {}
            other => panic!("{name}: read by {other:?}"),
        }
    }
    // pdf-extract reads none of them; before the repair path all four were failures.
    assert_eq!(repaired.len(), 4, "repaired: {repaired:?}");

    // True reasons for what cannot be read.
    let reason = |bytes: &[u8]| extract(bytes, DocType::Pdf).unwrap_err();
    assert!(matches!(
        reason(&encrypted_pdf(&["secret"])),
        Error::Encrypted
    ));
    assert!(
        reason(&pdf(&["", ""]))
            .to_string()
            .contains("image-only (no text layer) in 2 page(s)")
    );
    assert!(
        reason(b"%PDF-1.4\n%garbage only\n")
            .to_string()
            .contains("damaged beyond repair")
    );
}
