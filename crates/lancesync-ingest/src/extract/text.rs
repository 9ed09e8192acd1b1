//! Plain text and Markdown: UTF-8 (with or without BOM), UTF-16 with BOM, lossy fallback.

use std::collections::BTreeMap;

use super::{DocType, Extracted, failed};
use crate::Result;

/// How much of the start of a file is checked for NUL bytes, the mark of binary content.
const BINARY_SNIFF: usize = 8192;

pub(super) fn extract_plain(bytes: &[u8]) -> Result<Extracted> {
    let (text, warnings) = decode(bytes, DocType::Txt)?;
    Ok(Extracted {
        text,
        warnings,
        ..Default::default()
    })
}

pub(super) fn extract_markdown(bytes: &[u8]) -> Result<Extracted> {
    let (text, warnings) = decode(bytes, DocType::Md)?;
    let (mut metadata, text) = match front_matter(&text) {
        Some((fields, body)) => (fields, body.to_string()),
        None => (BTreeMap::new(), text),
    };
    let title = metadata
        .remove("title")
        .or_else(|| {
            text.lines()
                .map(str::trim)
                .find_map(|l| l.strip_prefix("# "))
                .map(|t| t.trim().to_string())
        })
        .filter(|t| !t.is_empty());
    Ok(Extracted {
        text,
        title,
        metadata,
        warnings,
        ..Default::default()
    })
}

/// A YAML front matter block (`---` lines around `key: value` lines, as Hugo, Jekyll,
/// Obsidian and lancesync's Notion pages write it): its top-level fields, with list items
/// joined by ", " and double-quoted values unescaped, and the text after it. `None` when the
/// text does not open with one.
fn front_matter(text: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))?;
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    let mut offset = text.len() - rest.len();
    for line in rest.split_inclusive('\n').take(200) {
        offset += line.len();
        let line = line.trim_end_matches(['\n', '\r']);
        if line == "---" || line == "..." {
            return Some((fields, &text[offset..]));
        }
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t', '-']) {
            // A list item or a continuation of the last field.
            let key = last.as_ref()?;
            let item = unquote(line.trim().trim_start_matches('-').trim());
            let value = fields.entry(key.clone()).or_default();
            if !value.is_empty() {
                value.push_str(", ");
            }
            value.push_str(&item);
            continue;
        }
        let (key, value) = line.split_once(':')?;
        let key = key.trim();
        if key.is_empty() || key.contains(['{', '[', '"']) {
            return None;
        }
        fields.insert(key.to_string(), unquote(value.trim()));
        last = Some(key.to_string());
    }
    None
}

/// A YAML scalar's text: double quotes unescaped as JSON strings, single quotes dropped.
fn unquote(value: &str) -> String {
    if value.starts_with('"')
        && let Ok(s) = serde_json::from_str::<String>(value)
    {
        return s;
    }
    value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .map(|v| v.replace("''", "'"))
        .unwrap_or_else(|| value.to_string())
}

/// Decode text bytes, returning the text and any warnings.
pub(crate) fn decode(bytes: &[u8], doc_type: DocType) -> Result<(String, Vec<String>)> {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, u16::from_le_bytes, doc_type);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, u16::from_be_bytes, doc_type);
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    if bytes[..bytes.len().min(BINARY_SNIFF)].contains(&0) {
        return Err(failed(
            doc_type,
            "binary content (NUL bytes) in a text file",
        ));
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok((s.to_string(), Vec::new())),
        Err(_) => {
            let text = String::from_utf8_lossy(bytes).into_owned();
            let replaced = text.matches('\u{FFFD}').count();
            Ok((
                text,
                vec![format!(
                    "not valid UTF-8: {replaced} invalid byte sequence(s) replaced with U+FFFD"
                )],
            ))
        }
    }
}

fn utf16(
    bytes: &[u8],
    word: fn([u8; 2]) -> u16,
    doc_type: DocType,
) -> Result<(String, Vec<String>)> {
    if !bytes.len().is_multiple_of(2) {
        return Err(failed(doc_type, "UTF-16 text with an odd number of bytes"));
    }
    let units = bytes.chunks_exact(2).map(|c| word([c[0], c[1]]));
    let mut warnings = Vec::new();
    let mut bad = 0usize;
    let text: String = char::decode_utf16(units)
        .map(|r| {
            r.unwrap_or_else(|_| {
                bad += 1;
                '\u{FFFD}'
            })
        })
        .collect();
    if bad > 0 {
        warnings.push(format!(
            "invalid UTF-16: {bad} unit(s) replaced with U+FFFD"
        ));
    }
    Ok((text, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodings() {
        assert_eq!(
            decode(b"hello", DocType::Txt).unwrap(),
            ("hello".into(), vec![])
        );
        assert_eq!(
            decode(b"\xEF\xBB\xBFhello", DocType::Txt).unwrap().0,
            "hello"
        );
        assert_eq!(decode(b"\xFF\xFEh\0i\0", DocType::Txt).unwrap().0, "hi");
        assert_eq!(decode(b"\xFE\xFF\0h\0i", DocType::Txt).unwrap().0, "hi");
        let (text, warnings) = decode(b"caf\xE9 ok", DocType::Txt).unwrap();
        assert_eq!(text, "caf\u{FFFD} ok");
        assert_eq!(warnings.len(), 1);
        assert!(
            decode(b"\x7FELF\x02\x01\x01\0\0\0", DocType::Txt)
                .unwrap_err()
                .to_string()
                .contains("binary content")
        );
        assert_eq!(decode(b"", DocType::Txt).unwrap().0, "");
    }

    #[test]
    fn markdown_title_is_the_first_heading() {
        let e = extract_markdown(b"intro\n\n# The Title\n\n## Sub\n").unwrap();
        assert_eq!(e.title.as_deref(), Some("The Title"));
        assert_eq!(extract_markdown(b"no heading").unwrap().title, None);
    }

    #[test]
    fn front_matter_is_metadata_not_text() {
        let doc = "---\ntitle: \"Roadmap: Q3\"\nStatus: \"In progress\"\ntags:\n  - a\n  - 'b'\n---\n# Heading\n\nBody.\n";
        let e = extract_markdown(doc.as_bytes()).unwrap();
        assert_eq!(e.title.as_deref(), Some("Roadmap: Q3"));
        assert_eq!(e.metadata["Status"], "In progress");
        assert_eq!(e.metadata["tags"], "a, b");
        assert_eq!(e.text, "# Heading\n\nBody.\n");
        // A thematic break that opens a document is not front matter.
        let e = extract_markdown(b"---\nJust a rule, then text.\n").unwrap();
        assert!(e.text.contains("Just a rule") && e.metadata.is_empty());
    }
}
