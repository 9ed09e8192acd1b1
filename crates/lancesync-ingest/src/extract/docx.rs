//! DOCX: paragraphs, headings (as `#` markers), list items (`- `), tables (`| a | b |`) and
//! the core properties, read from the Office Open XML parts with zip and quick-xml.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;
use zip::ZipArchive;

use super::{DocType, Extracted, failed};
use crate::Result;

/// The largest XML part read, so a zip bomb is a failure and not an out-of-memory kill.
const MAX_PART_BYTES: u64 = 256 * 1024 * 1024;
/// The signature of an OLE compound file: legacy .doc, or an encrypted .docx.
const OLE_MAGIC: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

pub(super) fn extract(bytes: &[u8]) -> Result<Extracted> {
    if bytes.starts_with(&OLE_MAGIC) {
        return Err(failed(
            DocType::Docx,
            "encrypted (password-protected) or legacy .doc file; save it as an unprotected .docx",
        ));
    }
    let mut zip = ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| failed(DocType::Docx, format!("not a valid DOCX (zip): {e}")))?;
    let document = read_part(&mut zip, "word/document.xml")?.ok_or_else(|| {
        failed(
            DocType::Docx,
            "not a valid DOCX: word/document.xml is missing",
        )
    })?;
    let heading_styles = match read_part(&mut zip, "word/styles.xml")? {
        Some(xml) => heading_styles(&xml)?,
        None => HashMap::new(),
    };
    let mut out = Extracted {
        text: body_text(&document, &heading_styles)?,
        ..Default::default()
    };
    if let Some(core) = read_part(&mut zip, "docProps/core.xml")? {
        out.metadata = core_properties(&core)?;
        out.title = out.metadata.get("title").cloned().filter(|t| !t.is_empty());
    }
    Ok(out)
}

fn read_part(zip: &mut ZipArchive<Cursor<&[u8]>>, name: &str) -> Result<Option<String>> {
    let file = match zip.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(failed(DocType::Docx, format!("cannot read {name}: {e}"))),
    };
    let mut xml = String::new();
    file.take(MAX_PART_BYTES + 1)
        .read_to_string(&mut xml)
        .map_err(|e| failed(DocType::Docx, format!("cannot read {name}: {e}")))?;
    if xml.len() as u64 > MAX_PART_BYTES {
        return Err(failed(
            DocType::Docx,
            format!("{name} is larger than {MAX_PART_BYTES} bytes uncompressed"),
        ));
    }
    Ok(Some(xml))
}

fn xml_error(e: impl std::fmt::Display) -> crate::Error {
    failed(DocType::Docx, format!("malformed DOCX XML: {e}"))
}

fn attr(e: &BytesStart<'_>, key: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == key)
        .and_then(|a| a.normalized_value(quick_xml::XmlVersion::default()).ok())
        .map(|v| v.into_owned())
}

/// Heading level of a style id, from `Heading1`..`Heading9`/`Title` or styles.xml names
/// ("heading 1", "Title"), which localized documents keep even when their ids differ.
fn heading_styles(xml: &str) -> Result<HashMap<String, usize>> {
    let mut map = HashMap::new();
    let mut reader = Reader::from_str(xml);
    let mut current: Option<String> = None;
    loop {
        match reader.read_event().map_err(xml_error)? {
            Event::Start(e) if e.name().as_ref() == "w:style" => current = attr(&e, "w:styleId"),
            Event::Empty(e) | Event::Start(e) if e.name().as_ref() == "w:name" => {
                if let (Some(id), Some(name)) = (&current, attr(&e, "w:val"))
                    && let Some(level) = heading_level(&name)
                {
                    map.insert(id.clone(), level);
                }
            }
            Event::End(e) if e.name().as_ref() == "w:style" => current = None,
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(map)
}

fn heading_level(name: &str) -> Option<usize> {
    let lower = name.to_ascii_lowercase().replace(' ', "");
    if lower == "title" {
        return Some(1);
    }
    lower
        .strip_prefix("heading")?
        .parse::<usize>()
        .ok()
        .filter(|l| (1..=9).contains(l))
}

#[derive(Default)]
struct Paragraph {
    text: String,
    heading: Option<usize>,
    list: bool,
}

fn body_text(xml: &str, styles: &HashMap<String, usize>) -> Result<String> {
    let mut reader = Reader::from_str(xml);
    let mut blocks: Vec<String> = Vec::new();
    let mut para: Option<Paragraph> = None;
    let mut in_text = false;
    // Table nesting: rows of cells of paragraphs.
    let mut tables: Vec<(Vec<String>, Vec<String>, Vec<String>)> = Vec::new();
    loop {
        match reader.read_event().map_err(xml_error)? {
            Event::Start(e) => match e.name().as_ref() {
                "w:p" => para = Some(Paragraph::default()),
                "w:t" => in_text = true,
                "w:tbl" => tables.push(Default::default()),
                "w:tr" => {
                    if let Some(t) = tables.last_mut() {
                        t.1.clear();
                    }
                }
                "w:tc" => {
                    if let Some(t) = tables.last_mut() {
                        t.2.clear();
                    }
                }
                _ => paragraph_property(&e, &mut para, styles),
            },
            Event::Empty(e) => match e.name().as_ref() {
                "w:tab" => push(&mut para, "\t"),
                "w:br" | "w:cr" => push(&mut para, "\n"),
                _ => paragraph_property(&e, &mut para, styles),
            },
            Event::Text(t) if in_text => push(&mut para, &t.xml10_content()),
            Event::GeneralRef(r) if in_text => push(&mut para, &resolve_ref(&r)),
            Event::End(e) => match e.name().as_ref() {
                "w:t" => in_text = false,
                "w:p" => {
                    let Some(p) = para.take() else { continue };
                    let text = p.text.trim();
                    if let Some(t) = tables.last_mut() {
                        if !text.is_empty() {
                            t.2.push(text.to_string());
                        }
                    } else if !text.is_empty() {
                        blocks.push(match (p.heading, p.list) {
                            (Some(level), _) => format!("{} {text}", "#".repeat(level)),
                            (None, true) => format!("- {text}"),
                            (None, false) => text.to_string(),
                        });
                    }
                }
                "w:tc" => {
                    if let Some(t) = tables.last_mut() {
                        let cell = t.2.join(" ");
                        t.1.push(cell);
                    }
                }
                "w:tr" => {
                    if let Some(t) = tables.last_mut() {
                        let row = format!("| {} |", t.1.join(" | "));
                        t.0.push(row);
                    }
                }
                "w:tbl" => {
                    if let Some((rows, _, _)) = tables.pop() {
                        let table = rows.join("\n");
                        match tables.last_mut() {
                            // A nested table becomes text inside its parent's cell.
                            Some(parent) => parent.2.push(table),
                            None if !table.is_empty() => blocks.push(table),
                            None => {}
                        }
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(blocks.join("\n\n"))
}

/// A paragraph's style (heading level) or numbering (list item); either may be an empty or a
/// start tag.
fn paragraph_property(
    e: &BytesStart<'_>,
    para: &mut Option<Paragraph>,
    styles: &HashMap<String, usize>,
) {
    let Some(p) = para.as_mut() else { return };
    match e.name().as_ref() {
        "w:pStyle" => {
            if let Some(id) = attr(e, "w:val") {
                p.heading = styles.get(&id).copied().or_else(|| heading_level(&id));
            }
        }
        "w:numPr" => p.list = true,
        _ => {}
    }
}

/// The text of an entity or character reference (`&amp;`, `&#233;`).
fn resolve_ref(r: &quick_xml::events::BytesRef<'_>) -> String {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return c.to_string();
    }
    let name = r.xml10_content();
    match quick_xml::escape::resolve_predefined_entity(&name) {
        Some(text) => text.to_string(),
        None => format!("&{name};"),
    }
}

fn push(para: &mut Option<Paragraph>, s: &str) {
    if let Some(p) = para.as_mut() {
        p.text.push_str(s);
    }
}

/// docProps/core.xml: title, subject, creator, keywords, description, dates.
fn core_properties(xml: &str) -> Result<std::collections::BTreeMap<String, String>> {
    let mut reader = Reader::from_str(xml);
    let mut props = std::collections::BTreeMap::new();
    let mut current: Option<String> = None;
    loop {
        match reader.read_event().map_err(xml_error)? {
            Event::Start(e) => {
                let name = e.name().as_ref().to_string();
                let key = name.rsplit(':').next().unwrap_or(&name).to_string();
                current = matches!(
                    key.as_str(),
                    "title"
                        | "subject"
                        | "creator"
                        | "keywords"
                        | "description"
                        | "lastModifiedBy"
                        | "created"
                        | "modified"
                        | "category"
                )
                .then_some(key);
            }
            Event::Text(t) => {
                if let Some(key) = &current {
                    props
                        .entry(key.clone())
                        .or_insert_with(String::new)
                        .push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(key) = &current {
                    props
                        .entry(key.clone())
                        .or_insert_with(String::new)
                        .push_str(&resolve_ref(&r));
                }
            }
            Event::End(_) => current = None,
            Event::Eof => break,
            _ => {}
        }
    }
    props.retain(|_, v| {
        *v = v.trim().to_string();
        !v.is_empty()
    });
    Ok(props)
}
