//! Minimal, valid PDFs with one line of text per page.

use lopdf::content::{Content, Operation};
use lopdf::{Document, Object, Stream, dictionary};

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

/// A PDF protected by a user password (standard security handler, RC4 128-bit): readers
/// cannot open it without the password.
pub fn encrypted_pdf(pages: &[&str]) -> Vec<u8> {
    let mut doc = build(pages);
    let id = Object::string_literal(vec![7u8; 16]);
    doc.trailer.set("ID", vec![id.clone(), id]);
    let encrypt_id = doc.add_object(dictionary! {
        "Filter" => "Standard",
        "V" => 2,
        "R" => 3,
        "Length" => 128,
        "P" => -44,
        "O" => Object::string_literal(vec![0x11u8; 32]),
        "U" => Object::string_literal(vec![0x22u8; 32]),
    });
    doc.trailer.set("Encrypt", encrypt_id);
    save(doc)
}
