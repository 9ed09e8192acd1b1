//! PDFs for tests: minimal valid ones with one line of text per page, encrypted ones, classic
//! table-xref ones and the damaged and hostile variants the extraction tests need.

use lopdf::content::{Content, Operation};
use lopdf::{
    Document, EncryptionState, EncryptionVersion, Object, Permissions, Stream, dictionary,
};

fn build(pages: &[&str]) -> Document {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(
        dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Courier" },
    );
    let resources_id = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
    let mut kids = Vec::new();
    for text in pages {
        let content = Content {
            operations: vec![
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 12.into()]),
                Operation::new("Td", vec![72.into(), 720.into()]),
                Operation::new("Tj", vec![Object::string_literal(*text)]),
                Operation::new("ET", vec![]),
            ],
        };
        let content_id = doc.add_object(Stream::new(
            dictionary! {},
            content.encode().expect("encodable content"),
        ));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        });
        kids.push(page_id.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    doc
}

fn save(mut doc: Document) -> Vec<u8> {
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("PDF written to memory");
    out
}

/// A PDF whose page `i` shows `pages[i]` (ASCII text).
pub fn pdf(pages: &[&str]) -> Vec<u8> {
    save(build(pages))
}

/// A PDF protected by a user password (`secret`; standard security handler, RC4 128-bit):
/// readers cannot open it without the password.
pub fn encrypted_pdf(pages: &[&str]) -> Vec<u8> {
    encrypted_with(pages, "secret")
}

/// A PDF encrypted with only an owner password (permissions): the user password is empty, so
/// readers open it without asking, as most readers do with such "protected" files.
pub fn owner_password_pdf(pages: &[&str]) -> Vec<u8> {
    encrypted_with(pages, "")
}

fn encrypted_with(pages: &[&str], user_password: &str) -> Vec<u8> {
    let mut doc = build(pages);
    let id = Object::string_literal(vec![7u8; 16]);
    doc.trailer.set("ID", vec![id.clone(), id]);
    let state = EncryptionState::try_from(EncryptionVersion::V2 {
        document: &doc,
        owner_password: "owner-password",
        user_password,
        key_length: 128,
        permissions: Permissions::default(),
    })
    .expect("encryption parameters");
    doc.encrypt(&state).expect("PDF encrypted");
    save(doc)
}

/// A PDF 1.4 of these objects (object `i + 1` is `objects[i]`; 1 must be the catalog), with
/// a classic cross-reference table and trailer, as most writers make them;
/// `(bytes, offset of "xref")`.
pub fn classic_pdf_of(objects: &[Vec<u8>]) -> (Vec<u8>, usize) {
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    (out, xref)
}

/// A stream object's body: `dict` entries plus `/Length`, then `data`.
pub fn pdf_stream(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut out = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\nendstream");
    out
}

/// The catalog, page tree and font of a classic PDF whose page `i` is object `4 + 2i` (its
/// content `5 + 2i`).
fn classic_head(pages: usize) -> Vec<Vec<u8>> {
    vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {pages} >>",
            (0..pages)
                .map(|i| format!("{} 0 R", 4 + 2 * i))
                .collect::<Vec<_>>()
                .join(" ")
        )
        .into_bytes(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
    ]
}

fn classic_page(i: usize) -> Vec<u8> {
    format!(
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
        5 + 2 * i
    )
    .into_bytes()
}

fn show(text: &str) -> Vec<u8> {
    format!("BT /F1 20 Tf 60 700 Td ({text}) Tj ET").into_bytes()
}

/// Pages of text in Helvetica, one line each, as a classic (uncompressed, table-xref) PDF;
/// `(bytes, offset of "xref")`.
pub fn classic_pdf(pages: &[&str]) -> (Vec<u8>, usize) {
    let mut objects = classic_head(pages.len());
    for (i, text) in pages.iter().enumerate() {
        objects.push(classic_page(i));
        objects.push(pdf_stream("", &show(text)));
    }
    classic_pdf_of(&objects)
}

/// `pages` as a classic PDF damaged in each of four ways that poppler repairs and pdf-extract
/// cannot read: a `startxref` past the end, every object offset wrong, a garbled table under
/// an intact trailer, and an incremental update with a broken trailer.
pub fn damaged_pdfs(pages: &[&str]) -> Vec<(&'static str, Vec<u8>)> {
    let (good, xref) = classic_pdf(pages);
    let text = String::from_utf8_lossy(&good).to_string();
    let startxref = good.windows(9).rposition(|w| w == b"startxref").unwrap();
    let trailer = good.windows(7).rposition(|w| w == b"trailer").unwrap();

    let mut wrong_startxref = good[..startxref].to_vec();
    wrong_startxref.extend_from_slice(b"startxref\n999999\n%%EOF\n");
    let mut wrong_offsets = good[..xref].to_vec();
    for line in text[xref..].lines() {
        if line.len() == 18 && line.ends_with(" n") {
            wrong_offsets.extend_from_slice(b"0000000003 00000 n \n");
        } else {
            wrong_offsets.extend_from_slice(format!("{line}\n").as_bytes());
        }
    }
    let mut garbled_table = good[..xref].to_vec();
    garbled_table.extend_from_slice(b"xref\n0 8\n#!garbled#!garbled#!\n@@@@@@@@@@@@@@@@@@\n");
    garbled_table.extend_from_slice(&good[trailer..]);
    let mut broken_update = good.clone();
    broken_update.extend_from_slice(
        b"9 0 obj\n<< /Producer (an editor) >>\nendobj\nxref\n0 1\nnot a table\ntrailer\n<< /Size 10 /Root 1 0 R /Prev 77777 /Info 9 0 R\nstartxref\n31337\n%%EOF\n",
    );
    vec![
        ("wrong startxref", wrong_startxref),
        ("wrong object offsets", wrong_offsets),
        ("garbled table", garbled_table),
        ("broken incremental update", broken_update),
    ]
}

/// A one-page PDF showing `text` whose content stream is Flate-compressed and inflates to
/// `inflated_bytes` (the text, then spaces): a decompression bomb about a thousandth of
/// that size.
pub fn flate_bomb_pdf(text: &str, inflated_bytes: usize) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let content = show(text);
    encoder.write_all(&content).expect("in memory");
    let spaces = vec![b' '; 1 << 20];
    let mut left = inflated_bytes.saturating_sub(content.len());
    while left > 0 {
        let n = left.min(spaces.len());
        encoder.write_all(&spaces[..n]).expect("in memory");
        left -= n;
    }
    let compressed = encoder.finish().expect("in memory");
    let mut objects = classic_head(1);
    objects.push(classic_page(0));
    objects.push(pdf_stream("/Filter /FlateDecode", &compressed));
    classic_pdf_of(&objects).0
}

/// A one-page PDF showing `text` and drawing form XObject 6, whose forms are `forms`
/// (object `6 + i` is `forms[i]`, a content stream; each may draw `/X{j}`, which is object
/// `6 + j`).
fn pdf_with_forms(text: &str, forms: &[String]) -> Vec<u8> {
    let names: String = (0..forms.len())
        .map(|j| format!("/X{j} {} 0 R ", 6 + j))
        .collect();
    let resources = format!("<< /Font << /F1 3 0 R >> /XObject << {names}>> >>");
    let mut objects = classic_head(1);
    objects.push(
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources {resources} /Contents 5 0 R >>"
        )
        .into_bytes(),
    );
    let mut content = show(text);
    content.extend_from_slice(b" /X0 Do");
    objects.push(pdf_stream("", &content));
    for form in forms {
        objects.push(pdf_stream(
            &format!("/Type /XObject /Subtype /Form /BBox [0 0 595 842] /Resources {resources}"),
            form.as_bytes(),
        ));
    }
    classic_pdf_of(&objects).0
}

/// A one-page PDF showing `text` whose page draws a form that draws itself: a parser that
/// follows forms without a depth limit recurses until its stack overflows.
pub fn recursive_form_pdf(text: &str) -> Vec<u8> {
    pdf_with_forms(text, &["/X0 Do".to_string()])
}

/// A one-page PDF showing `text` whose page draws a form that draws the next one `fan_out`
/// times, `levels` deep: `fan_out ^ levels` draws of the last form (a "billion laughs" for
/// PDF parsers), a few hundred bytes that keep a parser busy for as long as it is let.
pub fn fan_out_form_pdf(text: &str, levels: usize, fan_out: usize) -> Vec<u8> {
    let forms: Vec<String> = (0..levels)
        .map(|level| {
            if level + 1 == levels {
                "BT /F1 1 Tf 0 0 Td (x) Tj ET".to_string()
            } else {
                vec![format!("/X{} Do", level + 1); fan_out].join(" ")
            }
        })
        .collect();
    pdf_with_forms(text, &forms)
}
