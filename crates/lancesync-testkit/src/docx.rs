//! Real DOCX files (Office Open XML in a zip) with headings, paragraphs, lists, tables and
//! core properties, as Word writes them.

use std::io::Write;

use zip::write::SimpleFileOptions;

/// A DOCX under construction.
#[derive(Debug, Default, Clone)]
pub struct Docx {
    body: String,
    title: Option<String>,
    creator: Option<String>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Docx {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// A `Heading{level}` paragraph.
    pub fn heading(mut self, level: u8, text: &str) -> Self {
        self.body.push_str(&format!(r#"<w:p><w:pPr><w:pStyle w:val="Heading{level}"/></w:pPr><w:r><w:t>{}</w:t></w:r></w:p>"#, esc(text)));
        self
    }

    /// A plain paragraph; its text is split into two runs to test run joining.
    pub fn paragraph(mut self, text: &str) -> Self {
        let mid = text
            .char_indices()
            .nth(text.chars().count() / 2)
            .map_or(0, |(i, _)| i);
        let (a, b) = text.split_at(mid);
        self.body.push_str(&format!(
            r#"<w:p><w:r><w:t xml:space="preserve">{}</w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve">{}</w:t></w:r></w:p>"#,
            esc(a),
            esc(b)
        ));
        self
    }

    /// A bulleted list item.
    pub fn list_item(mut self, text: &str) -> Self {
        self.body.push_str(&format!(
            r#"<w:p><w:pPr><w:pStyle w:val="ListParagraph"/><w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr></w:pPr><w:r><w:t>{}</w:t></w:r></w:p>"#,
            esc(text)
        ));
        self
    }

    /// A table of rows of cells.
    pub fn table(mut self, rows: &[&[&str]]) -> Self {
        self.body.push_str("<w:tbl>");
        for row in rows {
            self.body.push_str("<w:tr>");
            for cell in *row {
                self.body.push_str(&format!(
                    "<w:tc><w:p><w:r><w:t>{}</w:t></w:r></w:p></w:tc>",
                    esc(cell)
                ));
            }
            self.body.push_str("</w:tr>");
        }
        self.body.push_str("</w:tbl>");
        self
    }

    /// Core property `dc:title`.
    pub fn title(mut self, title: &str) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Core property `dc:creator`.
    pub fn creator(mut self, creator: &str) -> Self {
        self.creator = Some(creator.into());
        self
    }

    /// The .docx bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = SimpleFileOptions::default();
        let mut part = |name: &str, body: &str| {
            zip.start_file(name, opts).expect("zip entry");
            zip.write_all(body.as_bytes()).expect("zip write");
        };
        part(
            "[Content_Types].xml",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/><Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/></Types>"#,
        );
        part(
            "_rels/.rels",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/></Relationships>"#,
        );
        part(
            "word/document.xml",
            &format!(
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{}<w:sectPr/></w:body></w:document>"#,
                self.body
            ),
        );
        part(
            "word/styles.xml",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:styles xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/></w:style><w:style w:type="paragraph" w:styleId="Heading2"><w:name w:val="heading 2"/></w:style><w:style w:type="paragraph" w:styleId="berschrift3"><w:name w:val="heading 3"/></w:style></w:styles>"#,
        );
        let prop = |tag: &str, v: &Option<String>| {
            v.as_ref()
                .map(|v| format!("<{tag}>{}</{tag}>", esc(v)))
                .unwrap_or_default()
        };
        part(
            "docProps/core.xml",
            &format!(
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/">{}{}</cp:coreProperties>"#,
                prop("dc:title", &self.title),
                prop("dc:creator", &self.creator)
            ),
        );
        zip.finish().expect("zip finished").into_inner()
    }
}
